#!/bin/sh
# deb.sh - `make deb`: builds the Debian package from packaging/debian in a
# copy of the tree (build/deb/jobd-VERSION, with packaging/debian as
# debian/), so that neither the tree nor build/ gets the package build's
# objects, then copies the .deb to build/ and removes the copy.  The copy holds the files git
# knows or would add (tracked and untracked, not ignored); outside a git
# checkout, everything but build/, var/ and .git.  The package build's
# output is in build/deb/build.log.  Prints the .deb's path on success.
set -eu
cd "$(dirname "$0")/.."
for c in dpkg-buildpackage dpkg-parsechangelog dh; do
	command -v "$c" >/dev/null 2>&1 || {
		echo "deb: $c is missing (scripts/deps.sh installs it)" >&2
		exit 1
	}
done
version=$(dpkg-parsechangelog -l packaging/debian/changelog -S Version)
arch=$(dpkg --print-architecture)
deb=jobd_${version}_${arch}.deb
out=build/deb
src=$out/jobd-$version

rm -rf "$out"
mkdir -p "$src"
if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
	# Files deleted in the work tree but still tracked are left out.
	git ls-files -z --cached --others --exclude-standard |
		xargs -0 sh -c 'for f; do [ -e "$f" ] && printf "%s\0" "$f"; done' sh |
		tar --null -T - -cf - | tar -xf - -C "$src"
else
	tar --exclude=./build --exclude=./var --exclude=./.git -cf - . |
		tar -xf - -C "$src"
fi
rm -rf "$src/debian" "$src/build"
cp -R packaging/debian "$src/debian"

echo "deb: dpkg-buildpackage in $src (log: $out/build.log)"
if ! (cd "$src" && DEB_BUILD_OPTIONS="parallel=${JOBS:-2}" \
	dpkg-buildpackage -b -us -uc) >"$out/build.log" 2>&1; then
	tail -n 40 "$out/build.log" >&2
	echo "deb: dpkg-buildpackage failed (all of it: $out/build.log)" >&2
	exit 1
fi
cp "$out/$deb" "build/$deb"
rm -rf "$src" # the copy and its objects; the log and the .deb stay
echo "build/$deb"
