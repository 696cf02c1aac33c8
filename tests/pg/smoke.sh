#!/bin/sh
# tests/pg/smoke.sh - the test PostgreSQL of tests/pg/pg.sh works (issue 13):
#  1. start: a URI on 127.0.0.1, `select 1` answers over TCP, the server
#     is durable (fsync, synchronous_commit on) and listens on loopback
#     only; the database jobd exists and takes a write;
#  2. a second server whose first port is the first server's (the port
#     race) retries on another port and starts;
#  3. a server that cannot start (a bad setting) prints its log, fails,
#     and leaves neither a process nor its directory; a directory the
#     server cannot use (a space or quote in it, a socket path too long)
#     is refused before anything is made; stop refuses a directory it did
#     not make;
#  4. stop: every server gone (by pid), every directory gone;
#  5. with_server.sh: CMD runs with JOBD_TEST_STORE=pg and a server that
#     answers at JOBD_TEST_PG_URI, CMD's exit status is the script's, and
#     the server is gone when it returns; killed with SIGKILL while CMD
#     runs, its guard stops the server and removes its directory.
# 77 = skip (no PostgreSQL server binaries).
set -u
here=$(dirname "$0")
pg="sh $here/pg.sh"
d1=$(mktemp -d /tmp/jobd-pgsmoke.XXXXXX)
d2=$(mktemp -d /tmp/jobd-pgsmoke.XXXXXX)
d3=$(mktemp -d /tmp/jobd-pgsmoke.XXXXXX)
pids=""
cleanup() {
	for d in "$d1" "$d2" "$d3"; do
		[ -e "$d/jobd-pg" ] && $pg stop "$d" >/dev/null 2>&1
		rmdir "$d" 2>/dev/null
	done
}
trap cleanup EXIT
trap 'exit 1' INT TERM
fail() { echo "pg-smoke: FAIL: $*" >&2; exit 1; }

# Running, and not a zombie waiting for init to reap it.
alive() {
	kill -0 "$1" 2>/dev/null && ! grep -q ') Z ' "/proc/$1/stat" 2>/dev/null
}
pid_of() { head -n 1 "$1/data/postmaster.pid" 2>/dev/null | tr -dc 0-9; }

# 1. start and query
uri=$($pg start "$d1")
rc=$?
[ $rc -eq 77 ] && { echo "SKIP: no PostgreSQL server"; exit 77; }
[ $rc -eq 0 ] || fail "start exited $rc"
case $uri in
postgresql://postgres@127.0.0.1:*/jobd) ;;
*) fail "start printed '$uri', not postgresql://postgres@127.0.0.1:PORT/jobd" ;;
esac
bin=$(cat "$d1/pgbin")
psql="$bin/psql -X -A -t -q -v ON_ERROR_STOP=1"
[ "$($psql "$uri" -c 'select 1')" = 1 ] || fail "select 1 over $uri"
[ "$($psql "$uri" -c 'show synchronous_commit')" = on ] || fail "synchronous_commit is not on"
[ "$($psql "$uri" -c 'show fsync')" = on ] || fail "fsync is not on"
[ "$($psql "$uri" -c 'show listen_addresses')" = 127.0.0.1 ] || fail "listens beyond 127.0.0.1"
[ "$($psql "$uri" -c 'create table t (x int); insert into t values (42); select x from t')" = 42 ] ||
	fail "the database jobd does not take a write"
p1=$(pid_of "$d1")
alive "$p1" || fail "no postmaster pid in $d1"
pids="$p1"
port1=$(cat "$d1/port")

# 2. the port race: the first port tried is taken
uri2=$(JOBD_PG_PORT=$port1 $pg start "$d2" 2>"$d3.err") || { cat "$d3.err" >&2; fail "start on a taken port"; }
grep -q "port $port1 taken; retrying" "$d3.err" || { cat "$d3.err" >&2; fail "no retry on the taken port $port1"; }
rm -f "$d3.err"
[ "${uri2#*:"$port1"/}" = "$uri2" ] || fail "second server on the first one's port: $uri2"
[ "$($psql "$uri2" -c 'select 2')" = 2 ] || fail "select 2 over $uri2"
p2=$(pid_of "$d2")
pids="$pids $p2"

# 3. a server that does not come up
out=$(JOBD_PG_CONF="shared_buffers = 'lots'" $pg start "$d3" 2>&1)
rc=$?
[ $rc -eq 1 ] || fail "a bad setting: start exited $rc, not 1: $out"
echo "$out" | grep -q -- "--- $d3/log ---" || fail "a failed start did not print the server's log: $out"
echo "$out" | grep -q "shared_buffers" || fail "the printed log does not name the bad setting: $out"
[ ! -e "$d3" ] || fail "a failed start left $d3"

# 3b. directories the server cannot use are refused before anything runs
for bad in "/tmp/jobd pg smoke.$$" "/tmp/jobd'pg.$$" \
	"/tmp/$(printf '%0100d' 0)"; do
	out=$($pg start "$bad" 2>&1)
	rc=$?
	[ $rc -eq 1 ] || { $pg stop "$bad" >/dev/null 2>&1; fail "start '$bad' exited $rc: $out"; }
	[ ! -e "$bad" ] || { rm -rf "$bad"; fail "start '$bad' made it"; }
done
out=$($pg stop / 2>&1) && fail "stop / did not fail"
[ -d /tmp ] || fail "stop / removed something"

# 4. stop
$pg stop "$d1" || fail "stop $d1"
$pg stop "$d2" || fail "stop $d2"
for p in $pids; do
	alive "$p" && fail "server $p still running after stop"
done
[ ! -e "$d1" ] && [ ! -e "$d2" ] || fail "stop left a directory"
$pg stop "$d1" || fail "stop of a stopped server is not a no-op"

# gone PID DIR: 0 once PID is gone and DIR removed, 1 after 60 s.
gone() {
	i=0
	while alive "$1" || [ -e "$2" ]; do
		[ "$i" -ge 600 ] && return 1
		sleep 0.1
		i=$((i + 1))
	done
	return 0
}

# 5. with_server.sh
ws="sh $here/with_server.sh"
w=$(mktemp -d /tmp/jobd-pgsmoke.XXXXXX)
d3=$w # removed at exit
$ws sh -c 'echo "$JOBD_TEST_STORE $JOBD_TEST_PG_DIR"
	head -n 1 "$JOBD_TEST_PG_DIR/data/postmaster.pid"
	"$JOBD_TEST_PG_BIN/psql" -X -A -t -q -d "$JOBD_TEST_PG_URI" -c "select 40 + 2"
	exit 3' >"$w/out" 2>"$w/err"
rc=$?
[ $rc -eq 3 ] || { cat "$w/err" >&2; fail "with_server.sh exited $rc, not its command's 3"; }
set -- $(sed -n 1p "$w/out")
[ "${1:-}" = pg ] || fail "with_server.sh: JOBD_TEST_STORE is '${1:-}', not pg"
wdir=${2:-}
wpg=$(sed -n 2p "$w/out")
[ "$(sed -n 3p "$w/out")" = 42 ] || fail "with_server.sh: no answer at JOBD_TEST_PG_URI: $(cat "$w/out" "$w/err")"
[ -n "$wpg" ] && [ -n "$wdir" ] && gone "$wpg" "$wdir" ||
	fail "with_server.sh returned with server $wpg or $wdir still there"

$ws sh -c 'head -n 1 "$JOBD_TEST_PG_DIR/data/postmaster.pid" >"$1.tmp"
	echo "$JOBD_TEST_PG_DIR $$" >>"$1.tmp"
	mv "$1.tmp" "$1"
	exec sleep 600' cmd "$w/ready" >/dev/null 2>"$w/err" &
wrapper=$!
i=0
until [ -e "$w/ready" ]; do
	[ "$i" -ge 600 ] && { kill -KILL "$wrapper"; cat "$w/err" >&2; fail "with_server.sh did not run its command"; }
	sleep 0.1
	i=$((i + 1))
done
wpg=$(sed -n 1p "$w/ready")
set -- $(sed -n 2p "$w/ready")
wdir=$1
cmd=$2
alive "$wpg" || fail "with_server.sh: no server $wpg while its command runs"
kill -KILL "$wrapper"
gone "$wpg" "$wdir"
ok=$?
kill -KILL "$cmd" 2>/dev/null
rm -rf "$w"
[ $ok -eq 0 ] || fail "with_server.sh killed by SIGKILL: server $wpg or $wdir still there after 60 s"
echo "pg-smoke: ok"
