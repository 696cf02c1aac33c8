#!/bin/sh
# deps.sh - installs what jobd needs to build and test, from Debian's
# packages, when something is missing.  Run by `make` before building.
# As root it runs one apt-get line; otherwise it prints that line and fails.
# libpq-dev builds the PostgreSQL store (the daemon links libpq);
# postgresql is the tests' private server (tests/pg).  mandoc lints the
# manual pages; debhelper, dpkg-dev, fakeroot and lintian build and check
# the Debian package (make deb, tests/ops).
#
#   scripts/deps.sh        build and `make check`
#   scripts/deps.sh ci     also what .ci/run adds (valgrind, clang for the
#                          fuzzers)
set -eu

PACKAGES="build-essential pkg-config libmicrohttpd-dev libsqlite3-dev \
libcjson-dev libinih-dev libsystemd-dev check libcurl4-openssl-dev \
curl sqlite3 wrk procps openssl libssl-dev systemd postgresql libpq-dev \
mandoc debhelper dpkg-dev fakeroot lintian python3 python3-jsonschema"
COMMANDS="cc pkg-config curl sqlite3 wrk pgrep openssl systemd-analyze \
mandoc dh dpkg-buildpackage fakeroot lintian python3"
if [ "${1:-}" = ci ]; then
	PACKAGES="$PACKAGES valgrind clang libclang-rt-14-dev"
	COMMANDS="$COMMANDS valgrind clang"
fi

missing=""
for m in libmicrohttpd sqlite3 libcjson inih libsystemd libcrypto check libcurl libpq; do
	pkg-config --exists "$m" 2>/dev/null || missing="$missing $m"
done
for c in $COMMANDS; do
	command -v "$c" >/dev/null 2>&1 || missing="$missing $c"
done
# tests/openapi/check.py validates answers with python3-jsonschema.
python3 -c 'import jsonschema' >/dev/null 2>&1 || missing="$missing python3-jsonschema"
# The tests' private PostgreSQL (tests/pg/pg.sh): Debian keeps the server's
# binaries off PATH, under /usr/lib/postgresql/<version>/bin.
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing="$missing postgresql"
if [ "${1:-}" = ci ] && ! clang -fsanitize=fuzzer -x c /dev/null -o /dev/null \
	-Wl,--unresolved-symbols=ignore-all >/dev/null 2>&1; then
	missing="$missing libFuzzer"
fi
[ -z "$missing" ] && exit 0

line="apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y $PACKAGES"
if [ "$(id -u)" -ne 0 ]; then
	echo "jobd: missing:$missing" >&2
	echo "jobd: as root, run:" >&2
	echo "  $line" >&2
	exit 1
fi
echo "jobd: installing build dependencies (missing:$missing)" >&2
apt-get update -q
DEBIAN_FRONTEND=noninteractive apt-get install -y -q $PACKAGES
