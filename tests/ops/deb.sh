#!/bin/sh
# tests/ops/deb.sh - the Debian package (issue 17, DESIGN §9): `make deb`'s
# script builds it in a copy of the tree (the tree stays as it was); it
# holds the binary, /etc/jobd/jobd.conf as a conffile (store under
# /var/lib/jobd), the systemd units (ExecStart in /usr/bin), the sysusers and
# tmpfiles entries, the plugin header, both manual pages and the bash
# completion when the tree has one; unpacked into a throwaway root
# (dpkg -x), its sysusers and tmpfiles entries make the jobd user and
# /var/lib/jobd there, and the installed binary prints its version and
# passes --check-config on the installed configuration (its paths moved
# into that root); lintian reports no error and no warning.  Exit 77
# (skipped) only when dpkg-buildpackage is not there.
set -u
command -v dpkg-buildpackage >/dev/null 2>&1 || {
	echo "deb: dpkg-buildpackage is not installed"; exit 77; }
TMP=$(mktemp -d "${TMPDIR:-/tmp}/jobd-deb-XXXXXX") || exit 1
trap 'rm -rf "$TMP"' EXIT
fail() { echo "deb: FAIL: $*" >&2; exit 1; }

before=$(git status --porcelain 2>/dev/null)
sh scripts/deb.sh >"$TMP/deb.out" || fail "scripts/deb.sh failed"
deb=$(tail -n 1 "$TMP/deb.out")
[ -f "$deb" ] || fail "no package: $deb"
case $deb in build/jobd_*_*.deb) ;; *) fail "unexpected name: $deb" ;; esac
[ "$(git status --porcelain 2>/dev/null)" = "$before" ] ||
	fail "the package build changed the tree: $(git status --porcelain)"
[ -e debian ] && fail "the package build left debian/ in the tree"

# The files.
dpkg -c "$deb" | awk '{print $6}' | sed 's#^\./#/#' >"$TMP/files"
has() { grep -qx "$1" "$TMP/files" || fail "$deb lacks $1"; }
has /usr/bin/jobd
has /etc/jobd/jobd.conf
has /usr/include/jobd/handler.h
has /usr/lib/sysusers.d/jobd.conf
has /usr/lib/tmpfiles.d/jobd.conf
has /usr/share/man/man8/jobd.8.gz
has /usr/share/man/man5/jobd.conf.5.gz
has /usr/share/jobd/examples/handlers/greet.sh
for u in jobd.service jobd.socket; do
	grep -Eqx "(/usr)?/lib/systemd/system/$u" "$TMP/files" ||
		fail "$deb lacks the unit $u"
done
for p in $(make -s --no-print-directory print-EXAMPLE_PLUGINS); do
	has "/usr/lib/jobd/plugins/$p.so"
done
if [ -f packaging/bash-completion/jobd ]; then
	has /usr/share/bash-completion/completions/jobd
fi
dpkg-deb -f "$deb" Package | grep -qx jobd || fail "package name"
dpkg-deb -e "$deb" "$TMP/control"
grep -qx /etc/jobd/jobd.conf "$TMP/control/conffiles" ||
	fail "/etc/jobd/jobd.conf is not a conffile"
grep -q 'systemd-sysusers.*jobd.conf' "$TMP/control/postinst" ||
	fail "postinst does not create the jobd user"
grep -q "deb-systemd-helper enable 'jobd.service'" "$TMP/control/postinst" ||
	fail "postinst does not enable jobd.service"

# Unpacked: the installed binary, on the installed configuration.
root=$TMP/root
dpkg -x "$deb" "$root" || fail "dpkg -x"
unit=$(ls "$root"/lib/systemd/system/jobd.service \
	"$root"/usr/lib/systemd/system/jobd.service 2>/dev/null | head -n 1)
grep -qx 'ExecStart=/usr/bin/jobd --config /etc/jobd/jobd.conf' "$unit" ||
	fail "jobd.service: $(grep ExecStart "$unit")"
grep -qx 'Documentation=man:jobd(8) man:jobd.conf(5)' "$unit" ||
	fail "jobd.service has no Documentation="
want=$(dpkg-deb -f "$deb" Version | sed 's/-[^-]*$//')
got=$("$root/usr/bin/jobd" --version) || fail "--version failed"
[ "$got" = "jobd $want" ] || fail "--version: \"$got\", package $want"
conf=$root/etc/jobd/jobd.conf
grep -qx 'path = /var/lib/jobd/jobs.db' "$conf" ||
	fail "the installed store path: $(grep '^path' "$conf")"
# What the postinst does, into the root: the jobd user, its state directory.
if command -v systemd-sysusers >/dev/null 2>&1; then
	systemd-sysusers --root="$root" jobd.conf >/dev/null 2>&1 ||
		fail "systemd-sysusers on the package's entry failed"
	uid=$(awk -F: '$1 == "jobd" && $6 == "/var/lib/jobd" { print $3 }' \
		"$root/etc/passwd")
	[ -n "$uid" ] || fail "sysusers made no jobd user: $(cat "$root/etc/passwd")"
	systemd-tmpfiles --root="$root" --create jobd.conf >/dev/null 2>&1 ||
		fail "systemd-tmpfiles on the package's entry failed"
	[ "$(stat -c '%u %a' "$root/var/lib/jobd")" = "$uid 750" ] ||
		fail "/var/lib/jobd: $(stat -c '%u %a' "$root/var/lib/jobd")"
else
	mkdir -p "$root/var/lib/jobd"
fi
sed -e "s#/var/lib/jobd#$root/var/lib/jobd#" \
	-e "s#/usr/share/jobd#$root/usr/share/jobd#" "$conf" >"$TMP/check.conf"
# A shipped plugin loads into the shipped binary (--check-config inits it).
if [ -f "$root/usr/lib/jobd/plugins/hello.so" ]; then
	printf '\n[handler.hello]\nplugin = %s\n' \
		"$root/usr/lib/jobd/plugins/hello.so" >>"$TMP/check.conf"
fi
out=$("$root/usr/bin/jobd" --check-config --config "$TMP/check.conf" 2>&1) ||
	fail "--check-config: $out"
[ "$out" = "config OK" ] || fail "--check-config said: $out"
for p in man8/jobd.8.gz man5/jobd.conf.5.gz; do
	out=$(MANWIDTH=80 man --warnings -l "$root/usr/share/man/$p" 2>&1 \
		>/dev/null) && [ -z "$out" ] || fail "man -l $p: $out"
done

# lintian: nothing at warning level or above (the notes are listed).
command -v lintian >/dev/null 2>&1 || fail "lintian is missing (scripts/deps.sh)"
lintian -I "$deb" >"$TMP/lintian" 2>&1
sed 's/^/deb: lintian: /' "$TMP/lintian"
grep -q '^[EW]: ' "$TMP/lintian" && fail "lintian reports errors or warnings"
echo "deb: ok ($deb)"
