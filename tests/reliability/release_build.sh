#!/bin/sh
# tests/reliability/release_build.sh - the release daemon has no test hooks
# (issue 11 item 12): fault injection (JOBD_FAULT_INJECT) and the clock
# offset live only in the test build, build/jobd-test.
#
# Checks:
#   - build/jobd started with JOBD_FAULT_INJECT=write:1 (which fails the
#     first write to the store) starts, answers a POST 202, stores the job
#     and says nothing of faults in its log: it does not read the variable;
#   - the binary holds neither the variable's name nor the hooks' symbols
#     (store_faults_init, clock_set_offset_ms);
#   - build/jobd-test with the same variable does fail at start-up (a
#     non-zero exit): the hooks are in the test build, so the suites that
#     use them test something.
# JOBD_BIN and JOBD_TEST_BIN name the two builds (default build/jobd and
# build/jobd-test); JOBD_KEEP=1 keeps the temporary directory.
set -u

HERE=$(cd "$(dirname "$0")" && pwd)
TMP=$(mktemp -d "${TMPDIR:-/tmp}/jobd-release-XXXXXX") || exit 1
. "$HERE/common.inc"

cleanup() {
	kill_jobd
	if [ -n "${JOBD_KEEP:-}" ]; then
		echo "release-build: kept $TMP"
	else
		rm -rf "$TMP"
	fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP PIPE

FAILED=0
fail() {
	echo "release-build: FAIL: $*" >&2
	FAILED=$((FAILED + 1))
}

[ -x "$JOBD" ] || { echo "release-build: no daemon at $JOBD" >&2; exit 1; }
[ -x "$JOBD_TEST" ] ||
	{ echo "release-build: no test build at $JOBD_TEST" >&2; exit 1; }
command -v sqlite3 >/dev/null ||
	{ echo "release-build: sqlite3 (the CLI) is needed" >&2; exit 1; }

PORT=$(free_port)
DB=$TMP/jobs.db
cat >"$TMP/jobd.conf" <<EOF
; written by tests/reliability/release_build.sh
[server]
listen = 127.0.0.1:$PORT
log_level = notice
[store]
path = $DB
[workers]
threads = 1
[handler.noop]
builtin = noop
EOF

# 1. The release build ignores the variable.
env -u NOTIFY_SOCKET -u LISTEN_FDS -u LISTEN_PID JOBD_FAULT_INJECT=write:1 \
	"$JOBD" --config "$TMP/jobd.conf" >>"$TMP/jobd.log" 2>&1 &
DPID=$!
if wait_ready 20; then
	post '{"type":"noop"}'
	[ "$CODE" = 202 ] || fail "$JOBD with JOBD_FAULT_INJECT=write:1:" \
		"POST answered $CODE, not 202"
	if [ -n "$ID" ]; then
		n=$(sqlite3 -readonly "$DB" \
			"SELECT count(*) FROM jobs WHERE id = '$ID'")
		[ "$n" = 1 ] || fail "the job answered 202 is not in the store"
	fi
	stop_jobd 20
	[ "$DSTATUS" = 0 ] || fail "$JOBD exited with $DSTATUS on SIGTERM"
else
	fail "$JOBD with JOBD_FAULT_INJECT=write:1 did not start" \
		"(status $DSTATUS): the release build injects faults"
	kill_jobd
fi
if grep -q 'faults' "$TMP/jobd.log"; then
	fail "the release build logged about faults:"
	grep 'faults' "$TMP/jobd.log" >&2
fi

# 2. Nor does it hold the hooks.
if grep -q JOBD_FAULT_INJECT "$JOBD"; then
	fail "$JOBD contains the string JOBD_FAULT_INJECT"
fi
if command -v nm >/dev/null; then
	syms=$(nm "$JOBD" | grep -E ' (store_faults_init|clock_set_offset_ms)$')
	[ -z "$syms" ] || fail "$JOBD has test hook symbols: $syms"
fi

# 3. The test build has them.
rm -f "$DB" "$DB-wal" "$DB-shm"
: >"$TMP/jobd.log"
start_jobd "$TMP/jobd.conf" write:1
wait_ready 20
rc=$?
if [ "$rc" = 0 ]; then
	fail "$JOBD_TEST with JOBD_FAULT_INJECT=write:1 started: no hooks"
	kill_jobd
elif [ "$rc" = 2 ]; then
	[ "$DSTATUS" != 0 ] || fail "$JOBD_TEST failed to start with status 0"
else
	fail "$JOBD_TEST neither started nor exited"
	kill_jobd
fi

if [ "$FAILED" -gt 0 ]; then
	echo "release-build: FAIL" >&2
	exit 1
fi
echo "release-build: ok (no test hooks in $JOBD; $JOBD_TEST has them)"
