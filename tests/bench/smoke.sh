#!/bin/sh
# tests/bench/smoke.sh - the smoke benchmark of `make check` (issue 5): a
# guard against gross regressions, not a measurement.  One daemon
# (durability = full, workers.threads = 2), 3 s of wrk GET /healthz and 3 s
# of wrk POST /jobs (noop, 200-byte payload), both at 64 connections.
#
# Fails (exit 1) only when intake jobs/s is below 10 % of the /healthz
# requests/s, or when any answer is not 2xx; prints both figures and the
# ratio.  JOBD_BIN selects the daemon (default build/jobd).
set -u

cd "$(dirname "$0")/../.." || exit 1
ROOT=$(pwd)
JOBD=${JOBD_BIN:-$ROOT/build/jobd}
BENCH=$ROOT/tests/bench
SECS=${SMOKE_SECS:-3}

for tool in wrk curl sqlite3 awk; do
	command -v "$tool" >/dev/null 2>&1 ||
		{ echo "smoke: $tool not found (run scripts/deps.sh)" >&2; exit 1; }
done
[ -x "$JOBD" ] || { echo "smoke: $JOBD missing: make all" >&2; exit 1; }

TMP=$(mktemp -d "${TMPDIR:-/tmp}/jobd-smoke.XXXXXX") || exit 1
. "$BENCH/lib.sh"
trap bench_cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

start_daemon smoke full 2

run_wrk "$TMP/get.out" -t2 -c64 -d"${SECS}s" -s "$BENCH/get.lua" "$URL/healthz"
run_wrk "$TMP/post.out" -t2 -c64 -d"${SECS}s" -s "$BENCH/post.lua" "$URL/jobs"
stop_daemon

fail=0
get_n=$(bench_val "$TMP/get.out" requests)
get_bad=$(bench_val "$TMP/get.out" non2xx)
post_n=$(bench_val "$TMP/post.out" requests)
post_bad=$(bench_val "$TMP/post.out" non2xx)
[ -n "$get_n" ] && [ -n "$post_n" ] || { echo "smoke: FAIL: wrk gave no result"; exit 1; }

ceil=$(awk -v n="$get_n" -v b="$get_bad" -v d="$(bench_val "$TMP/get.out" duration_us)" \
	'BEGIN { r = 0; if (d > 0) r = (n - b) * 1e6 / d; printf "%.0f", r }')
intake=$(awk -v n="$post_n" -v b="$post_bad" -v d="$(bench_val "$TMP/post.out" duration_us)" \
	'BEGIN { r = 0; if (d > 0) r = (n - b) * 1e6 / d; printf "%.0f", r }')
ratio=$(awk -v a="$intake" -v c="$ceil" 'BEGIN { r = 0; if (c > 0) r = 100 * a / c; printf "%.1f", r }')

echo "smoke: GET /healthz  64 conn: $ceil req/s (non-2xx $get_bad, socket errors $(bench_val "$TMP/get.out" errors))"
echo "smoke: POST /jobs    64 conn: $intake jobs/s (non-2xx $post_bad, socket errors $(bench_val "$TMP/post.out" errors))"
echo "smoke: intake / ceiling: $ratio % (fails below 10 %)"

if [ "$get_bad" != 0 ] || [ "$post_bad" != 0 ]; then
	echo "smoke: FAIL: non-2xx answers ($get_bad on GET /healthz, $post_bad on POST /jobs)"
	fail=1
fi
if awk -v r="$ratio" 'BEGIN { exit !(r < 10) }'; then
	echo "smoke: FAIL: intake is below 10 % of the /healthz ceiling"
	fail=1
fi
if [ -n "$DAEMON_DIED" ]; then
	echo "smoke: FAIL: jobd $DAEMON_DIED"
	fail=1
fi
[ "$fail" = 0 ] && echo "smoke: ok"
exit "$fail"
