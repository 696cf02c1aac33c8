#!/bin/sh
# systemd_unit.sh - the systemd units (issue 6): systemd/jobd.service and
# systemd/jobd.socket pass `systemd-analyze verify`, and the service scores
# <= 2.0 in `systemd-analyze security --offline=true`.
#
# The checks run on copies in a temporary directory whose ExecStart= names
# the built binary (verify insists that the command exists).
#
#   JOBD_BIN=build/jobd sh tests/ops/systemd_unit.sh
#
# Exit status: 0 pass, 1 fail, 77 skip (no systemd-analyze).
set -u

top=$(cd "$(dirname "$0")/../.." && pwd) || exit 1
bin=${JOBD_BIN:-build/jobd}
case $bin in
/*) ;;
*) bin=$top/$bin ;;
esac
max_exposure=2.0
failed=0

fail() {
	echo "FAIL: $*"
	failed=1
}

if ! command -v systemd-analyze >/dev/null 2>&1; then
	echo "SKIP: systemd-analyze is not installed"
	exit 77
fi
if [ ! -x "$bin" ]; then
	echo "FAIL: $bin is not an executable (build it, or set JOBD_BIN)"
	exit 1
fi

tmp=$(mktemp -d "${TMPDIR:-/tmp}/jobd-unit-XXXXXX") || exit 1
trap 'rm -rf "$tmp"' EXIT
trap 'exit 1' INT TERM

# ---- copies whose ExecStart= is the built binary ----
sed "s|^ExecStart=[^ ]*|ExecStart=$bin|" "$top/systemd/jobd.service" \
	> "$tmp/jobd.service" || exit 1
cp "$top/systemd/jobd.socket" "$tmp/jobd.socket" || exit 1
if ! grep -q "^ExecStart=$bin " "$tmp/jobd.service"; then
	fail "jobd.service: no ExecStart= line to point at $bin"
fi

# ---- what the unit must say (issue 6, "systemd integration") ----
svc=$tmp/jobd.service
for line in \
	'Type=notify' \
	'NotifyAccess=main' \
	'WatchdogSec=[0-9]' \
	'StateDirectory=jobd' \
	'ConfigurationDirectory=jobd' \
	'User=jobd' \
	'NoNewPrivileges=yes' \
	'ProtectSystem=strict' \
	'ProtectHome=' \
	'PrivateTmp=yes' \
	'PrivateDevices=yes' \
	'RestrictAddressFamilies=' \
	'SystemCallFilter=@system-service' \
	'CapabilityBoundingSet=' \
	'ExecReload=.*HUP'
do
	grep -Eq "^$line" "$svc" || fail "jobd.service lacks $line"
done
grep -Eq '^ListenStream=' "$tmp/jobd.socket" ||
	fail "jobd.socket lacks ListenStream="

# ---- systemd-analyze verify ----
# It exits 0 on mere warnings (an unknown key, say), so any line it prints
# about our units fails the test too.
out=$(cd "$tmp" && systemd-analyze verify ./jobd.service ./jobd.socket 2>&1)
rc=$?
if [ $rc -ne 0 ]; then
	fail "systemd-analyze verify exited $rc:"
	printf '%s\n' "$out"
elif printf '%s\n' "$out" | grep -q 'jobd\.'; then
	fail "systemd-analyze verify warns about the units:"
	printf '%s\n' "$out" | grep 'jobd\.'
else
	echo "ok: systemd-analyze verify jobd.service jobd.socket"
fi

# ---- systemd-analyze security ----
if ! systemd-analyze security --help 2>/dev/null | grep -q -- '--offline'; then
	echo "SKIP: this systemd-analyze has no security --offline"
	[ $failed -eq 0 ] && exit 77
	exit 1
fi
out=$(cd "$tmp" && systemd-analyze security --offline=true ./jobd.service 2>&1)
score=$(printf '%s\n' "$out" |
	sed -n 's/.*Overall exposure level for jobd\.service: \([0-9][0-9.]*\).*/\1/p' |
	head -n 1)
if [ -z "$score" ]; then
	fail "no \"Overall exposure level for jobd.service\" from systemd-analyze security:"
	printf '%s\n' "$out" | tail -n 20
elif awk -v s="$score" -v m="$max_exposure" 'BEGIN { exit !(s + 0 <= m + 0) }'; then
	echo "ok: systemd-analyze security: exposure $score <= $max_exposure"
else
	fail "systemd-analyze security: exposure $score > $max_exposure"
	printf '%s\n' "$out" | grep -E '^✗' | head -n 40
fi

exit $failed
