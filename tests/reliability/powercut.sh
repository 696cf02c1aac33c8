#!/bin/sh
# tests/reliability/powercut.sh - cut the power under load: nothing a client
# was told may be taken back (issue 11 items 27-28; README "Guarantees").
#
# jobd runs with JOBD_FAULT_INJECT=powercut: its SQLite VFS keeps every
# write to the database and WAL in the process's memory until that file's
# next fsync (src/store_faults.c), so SIGKILL leaves on disk exactly what a
# power cut would: what was fsynced.  One round:
#   1. tests/crash/load.c ("load cut") opens 64 keep-alive connections that
#      POST noop jobs (max_attempts = 1); a third of them long-poll each
#      job they submitted (GET ?wait=2), a third submit with "Prefer:
#      wait=2"; every id answered 202 (or 200) and every final state shown
#      (id, status, finished_at) is recorded;
#   2. a random 100-600 ms after the load started, the load generator
#      SIGKILLs jobd: the power cut; in most rounds no new job is sent in
#      the last 1-50 ms before it (the waits go on), so that the last
#      transactions carry only attempt results; the -shm file is deleted
#      (a reboot would not keep it);
#   3. jobd restarts on the same files without fault injection; checks:
#      every acknowledged id of this and every earlier round is in the
#      store, PRAGMA integrity_check says ok, and every job a client saw
#      final still shows that status and finished_at (GET): it was not
#      taken back, nor run again;
#   4. SIGTERM stops it with status 0.
# POWERCUT_ROUNDS rounds (default 20) with durability = full must pass.
# Then the same test must FAIL with durability = normal (whose commits are
# not fsynced): up to POWERCUT_NORMAL_ROUNDS rounds (default 5) on a fresh
# store until one loses an acknowledged job or takes back a shown state;
# if none does, the test has lost its power to see losses and fails.
# JOBD_TEST_BIN names the daemon that is cut (the test build, default
# build/jobd-test), JOBD_BIN the one restarted (default build/jobd);
# JOBD_KEEP=1 keeps the temporary directory.  About 1 s per round.
set -u

HERE=$(cd "$(dirname "$0")" && pwd)
TMP=$(mktemp -d "${TMPDIR:-/tmp}/jobd-powercut-XXXXXX") || exit 1
. "$HERE/common.inc"

ROUNDS=${POWERCUT_ROUNDS:-20}
NORMAL_ROUNDS=${POWERCUT_NORMAL_ROUNDS:-5}
CONNS=64
LOAD=$TMP/load

cleanup() {
	kill_jobd
	if [ -n "${JOBD_KEEP:-}" ]; then
		echo "powercut: kept $TMP"
	else
		rm -rf "$TMP"
	fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP PIPE

die() {
	echo "powercut: FAIL: $*" >&2
	if [ -f "$TMP/jobd.log" ]; then
		echo "---- tail of $TMP/jobd.log ----" >&2
		tail -n 20 "$TMP/jobd.log" >&2
		echo "---- end ----" >&2
	fi
	exit 1
}

[ -x "$JOBD" ] || die "no daemon at $JOBD (run make all)"
[ -x "$JOBD_TEST" ] || die "no test build at $JOBD_TEST (run make test-build)"
command -v sqlite3 >/dev/null || die "sqlite3 (the CLI) is needed"
${CC_CRASH:-cc} -O2 -pthread -Wall -o "$LOAD" "$HERE/../crash/load.c" ||
	die "cannot build tests/crash/load.c"

rand() {
	r=$(od -An -N2 -tu2 /dev/urandom | tr -d ' ')
	echo $(($1 + r % ($2 - $1 + 1)))
}

# write_conf DURABILITY DB
write_conf() {
	cat >"$TMP/jobd.conf" <<EOF
; written by tests/reliability/powercut.sh
[server]
listen = 127.0.0.1:$PORT
log_level = notice
[store]
path = $2
durability = $1
[workers]
threads = 4
shutdown_grace = 2s
[handler.noop]
builtin = noop
max_attempts = 1
EOF
}

# Ids of file $1 missing from store $2, one per line.
missing_ids() {
	sqlite3 -readonly -bail "$2" <<EOF
CREATE TEMP TABLE acked(id TEXT);
.import '$1' acked
SELECT id FROM acked WHERE id NOT IN (SELECT id FROM jobs);
EOF
}

# One round on store $2 with durability $1; sets LOST, BACK, ACKED, SEEN.
# Fails the test (die) only for what no durability excuses: a daemon that
# does not start or stop, a corrupt store, a load generator error.
round() {
	db=$2
	delay=$(rand 100 600)
	quiet=$(rand 0 50)
	start_jobd "$TMP/jobd.conf" powercut
	wait_ready 20 || die "round $r: jobd ($1) does not start"
	out=$("$LOAD" cut "$PORT" "$TMP/ids" "$TMP/seen" "$CONNS" "$DPID" \
		"$delay" "$quiet") || die "round $r: load generator failed"
	reap 10
	[ "$DSTATUS" = 137 ] ||
		die "round $r: jobd ended with status $DSTATUS, not by SIGKILL"
	refused=$(echo "$out" | sed -n 's/.*refused=\([0-9]*\).*/\1/p')
	[ "${refused:-1}" = 0 ] ||
		die "round $r: $refused POST(s) answered other than 202/200"
	rm -f "$db-shm"
	cat "$TMP/ids" >>"$TMP/all_ids"

	start_jobd "$TMP/jobd.conf"
	wait_ready 20 || die "round $r: jobd ($1) does not restart after the cut"
	ic=$(sqlite3 -readonly "$db" "PRAGMA integrity_check" 2>&1)
	[ "$ic" = ok ] || die "round $r: integrity_check: $ic"
	missing_ids "$TMP/all_ids" "$db" >"$TMP/missing" ||
		die "round $r: cannot read the store"
	LOST=$(wc -l <"$TMP/missing")
	head -n 5 "$TMP/missing" | sed 's/^/  lost: /'
	"$LOAD" seen "$PORT" "$TMP/seen" >"$TMP/seen.out" 2>"$TMP/seen.err"
	BACK=$(sed -n 's/.* \([0-9]*\) taken back.*/\1/p' "$TMP/seen.out")
	[ -n "$BACK" ] || die "round $r: cannot check the states seen"
	head -n 5 "$TMP/seen.err" | sed 's/^/  /'
	ACKED=$(wc -l <"$TMP/ids")
	SEEN=$(wc -l <"$TMP/seen")
	stop_jobd 20
	[ "$DSTATUS" = 0 ] || die "round $r: jobd exited with $DSTATUS on SIGTERM"
	echo "round $r ($1): cut at ${delay} ms (quiet ${quiet} ms)," \
		"acked=$ACKED seen_final=$SEEN" \
		"lost=$LOST taken_back=$BACK"
}

PORT=$(free_port)
T0=$(date +%s)

# ---- durability = full: nothing may be lost or taken back ----
write_conf full "$TMP/full.db"
: >"$TMP/all_ids"
FAILED=0
total_acked=0
total_seen=0
r=1
while [ "$r" -le "$ROUNDS" ]; do
	round full "$TMP/full.db"
	total_acked=$((total_acked + ACKED))
	total_seen=$((total_seen + SEEN))
	if [ "$LOST" -gt 0 ] || [ "$BACK" -gt 0 ]; then
		echo "powercut: FAIL: round $r: durability=full lost $LOST" \
			"acknowledged job(s), took back $BACK shown state(s)" >&2
		FAILED=$((FAILED + 1))
	fi
	r=$((r + 1))
done
echo "powercut: durability=full: $ROUNDS cuts, $total_acked acknowledged," \
	"$total_seen final states seen, $FAILED round(s) failed"

# ---- durability = normal: the same test must see losses ----
write_conf normal "$TMP/normal.db"
: >"$TMP/all_ids"
r=1
detected=0
while [ "$r" -le "$NORMAL_ROUNDS" ] && [ "$detected" = 0 ]; do
	round normal "$TMP/normal.db"
	if [ "$LOST" -gt 0 ] || [ "$BACK" -gt 0 ]; then
		detected=1
	fi
	r=$((r + 1))
done
if [ "$detected" = 1 ]; then
	echo "powercut: durability=normal: losses seen after $((r - 1))" \
		"cut(s), as expected (the test can fail)"
else
	echo "powercut: FAIL: durability=normal lost nothing in" \
		"$NORMAL_ROUNDS cuts: the test cannot see a power cut" >&2
	FAILED=$((FAILED + 1))
fi

echo "powercut: $(($(date +%s) - T0)) s"
if [ "$FAILED" -gt 0 ]; then
	echo "powercut: FAIL" >&2
	exit 1
fi
echo "powercut: ok"
