#!/bin/sh
# deps.sh - installs what jobd needs to build and test, from Debian's
# packages, when something is missing.  Run by `make` before building.
# As root it runs one apt-get line; otherwise it prints that line and fails.
set -eu

PACKAGES="build-essential pkg-config libmicrohttpd-dev libsqlite3-dev \
libcjson-dev libinih-dev libsystemd-dev check libcurl4-openssl-dev \
curl sqlite3 wrk procps"

missing=""
for m in libmicrohttpd sqlite3 libcjson inih libsystemd check libcurl; do
	pkg-config --exists "$m" 2>/dev/null || missing="$missing $m"
done
for c in cc pkg-config curl sqlite3 wrk pgrep; do
	command -v "$c" >/dev/null 2>&1 || missing="$missing $c"
done
[ -z "$missing" ] && exit 0

line="apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y $PACKAGES"
if [ "$(id -u)" -ne 0 ]; then
	echo "jobd: missing:$missing" >&2
	echo "jobd: as root, run:" >&2
	echo "  $line" >&2
	exit 1
fi
echo "jobd: installing build dependencies (missing:$missing)" >&2
command -v pkg-config >/dev/null 2>&1 || true
apt-get update -q
DEBIAN_FRONTEND=noninteractive apt-get install -y -q $PACKAGES
