#!/bin/sh
# install-conf.sh SRC DEST PREFIX - writes the installed /etc/jobd/jobd.conf
# from conf/jobd.conf: the store under /var/lib/jobd, example commands under
# PREFIX/share/jobd, plugins under PREFIX/lib/jobd, and the test handlers
# (echo, sleep, fail) commented out, so that a packaged jobd runs nothing it
# was not configured for.
set -eu
awk -v prefix="$3" '
/^\[/ { test = ($0 == "[handler.echo]" || $0 == "[handler.sleep]" ||
                $0 == "[handler.fail]") }
/^path = \.\/var\/jobs\.db/ { sub(/\.\/var\/jobs\.db/, "/var/lib/jobd/jobs.db") }
/^command = examples\// { sub(/examples\//, prefix "/share/jobd/examples/") }
/\/usr\/local\/lib\/jobd\// { sub(/\/usr\/local\/lib\/jobd\//, prefix "/lib/jobd/") }
test && NF > 0 && !/^;/ { print "; " $0; next }
{ print }
' "$1" >"$2"
chmod 0644 "$2"
