#!/bin/sh
# tests/ops/man.sh - the manual pages (issue 17): jobd(8) and the generated
# jobd.conf(5) lint clean with mandoc (nothing above style level), render
# with man(1) without a warning, and jobd.conf(5) lists every key of the
# configuration table that `jobd --config-reference` prints.
set -u
JOBD=${JOBD_BIN:-build/jobd}
MAN=${JOBD_MAN:-build/man}
fail() { echo "man: FAIL: $*" >&2; exit 1; }

command -v mandoc >/dev/null 2>&1 || fail "mandoc is missing (scripts/deps.sh)"
for p in "$MAN/jobd.8" "$MAN/jobd.conf.5"; do
	[ -s "$p" ] || fail "$p is missing (make man)"
	out=$(mandoc -Tlint -Wwarning "$p" 2>&1) || fail "mandoc -Tlint $p: $out"
	out=$(MANWIDTH=80 man --warnings -l "$p" 2>&1 >/dev/null) ||
		fail "man -l $p failed: $out"
	[ -z "$out" ] || fail "man -l $p: $out"
done

# Every key of the table, section by section, is an item of jobd.conf(5),
# in the same order.
ref=$("$JOBD" --config-reference) || fail "--config-reference failed"
want=$(printf "%s\n" "$ref" | awk '
/^### `\[/ { s = $2; gsub(/[`\[\]]/, "", s) }
/^\| `/ { k = $2; gsub(/`/, "", k); print s " " k }')
got=$(awk '
/^\.Ss "\[/ { s = $2; gsub(/["\[\]]|\\&/, "", s) }
/^\.It Cm "/ { k = $3; gsub(/"/, "", k); print s " " k }' "$MAN/jobd.conf.5")
[ -n "$want" ] || fail "no key in --config-reference"
[ "$want" = "$got" ] || fail "jobd.conf.5 and the table differ:
$(printf '%s\n' "$want" >"${TMPDIR:-/tmp}/man-want.$$";
  printf '%s\n' "$got" | diff "${TMPDIR:-/tmp}/man-want.$$" -;
  rm -f "${TMPDIR:-/tmp}/man-want.$$")"
# The format comes after '=', and an unknown one is a usage error (64).
[ "$("$JOBD" --config-reference=markdown)" = "$ref" ] ||
	fail "--config-reference=markdown differs from --config-reference"
for bad in --config-reference=bogus --config-reference= \
	"--config-reference mdoc"; do
	# shellcheck disable=SC2086 # the last one is two words on purpose
	"$JOBD" $bad >/dev/null 2>&1
	rc=$?
	[ $rc -eq 64 ] || fail "jobd $bad exited $rc, not 64"
done
# The client's commands and exit codes of DESIGN §9 are in jobd(8).
for c in submit get wait ls cancel retry schedules types nodes; do
	grep -q "^\.It Cm $c\>" "$MAN/jobd.8" || fail "jobd.8: no client command $c"
done
for x in 0 1 2 64 65 69 75; do
	grep -q "^\.It $x\$" "$MAN/jobd.8" || fail "jobd.8: no exit status $x"
done
echo "man: ok ($(printf "%s\n" "$want" | wc -l) keys)"
