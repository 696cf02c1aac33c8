#!/bin/sh
# tests/ops/install_conf.sh - the installed /etc/jobd/jobd.conf (issue 12):
# the test handlers echo, sleep and fail are there but commented out, noop
# and the examples stay, the store is under /var/lib/jobd, and the file is
# a valid configuration (checked with the store moved to a temp dir).
set -u
JOBD=${JOBD_BIN:-build/jobd}
TMP=$(mktemp -d "${TMPDIR:-/tmp}/jobd-conf-XXXXXX") || exit 1
trap 'rm -rf "$TMP"' EXIT
fail() { echo "install-conf: FAIL: $*" >&2; exit 1; }

sh scripts/install-conf.sh conf/jobd.conf "$TMP/jobd.conf" /usr ||
	fail "install-conf.sh failed"
c=$TMP/jobd.conf
for h in echo sleep fail; do
	grep -q "^\[handler\.$h\]" "$c" && fail "[handler.$h] is enabled"
	grep -q "^; \[handler\.$h\]" "$c" || fail "[handler.$h] is not there"
done
grep -q '^\[handler\.noop\]' "$c" || fail "[handler.noop] is missing"
grep -q '^path = /var/lib/jobd/jobs.db' "$c" || fail "store path not rewritten"
grep -q '^command = /usr/share/jobd/examples/handlers/greet.sh' "$c" ||
	fail "example command not rewritten"
grep -q '^; ; ' "$c" && fail "a comment was commented twice"
sed "s#^path = .*#path = $TMP/jobs.db#" "$c" >"$TMP/check.conf"
out=$("$JOBD" --check-config --config "$TMP/check.conf" 2>&1) ||
	fail "--check-config: $out"
echo "$out" | grep -q 'config OK' || fail "--check-config: $out"
echo "install-conf: ok"
