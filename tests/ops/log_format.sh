#!/bin/sh
# tests/ops/log_format.sh - log lines for journald and for a person
# (issue 12): "<3>config: ..." when stderr is not a terminal or
# JOURNAL_STREAM is set; "YYYY-MM-DDTHH:MM:SS.mmmZ error   config: ..." on a
# terminal (run under script(1) for a pty).  77 = skip (no script).
set -u
JOBD=${JOBD_BIN:-build/jobd}
command -v script >/dev/null 2>&1 || { echo "SKIP: no script(1)"; exit 77; }
fail() { echo "log-format: FAIL: $*" >&2; exit 1; }

out=$("$JOBD" --config /nonexistent/jobd.conf 2>&1)
case $out in
"<3>config: /nonexistent/jobd.conf"*) ;;
*) fail "not a terminal: $out" ;;
esac
out=$(script -qec "$JOBD --config /nonexistent/jobd.conf" /dev/null | tr -d '\r')
echo "$out" | grep -Eq '^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{3}Z error   config: /nonexistent/jobd.conf' ||
	fail "on a terminal: $out"
out=$(JOURNAL_STREAM=8:1234 script -qec "$JOBD --config /nonexistent/jobd.conf" /dev/null | tr -d '\r')
case $out in
"<3>config: /nonexistent/jobd.conf"*) ;;
*) fail "on a terminal under journald: $out" ;;
esac
echo "log-format: ok"
