#!/bin/sh
# embed.sh HEADER SYMBOL FILE [SYMBOL FILE ...] - prints C source that
# defines, for each FILE, `const char SYMBOL[]` (its bytes and a NUL) and
# `const size_t SYMBOL_len`: the built-in pages, embedded at build time
# (no xxd needed).
set -eu
echo "#include \"$1\""
shift
while [ $# -ge 2 ]; do
	echo "const char $1[] = {"
	od -An -v -tx1 "$2" | awk '{ for (i = 1; i <= NF; i++) printf "0x%s,", $i; print "" }'
	echo '0x00};'
	echo "const size_t $1_len = sizeof($1) - 1;"
	shift 2
done
