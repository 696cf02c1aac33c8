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
#  4. stop: every server gone (by pid), every directory gone.
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
echo "pg-smoke: ok"
