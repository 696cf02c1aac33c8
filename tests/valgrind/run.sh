#!/bin/sh
# tests/valgrind/run.sh - one integration run of jobd under valgrind
# memcheck: submit, run, wait, long-poll, cancel, list, metrics, bad
# input, reload, graceful stop.  Fails on any memcheck error or definite
# leak (valgrind's --error-exitcode), or if the daemon does not answer.
set -eu
cd "$(dirname "$0")/../.."
JOBD=${JOBD_BIN:-build/jobd}
command -v valgrind >/dev/null || { echo "valgrind: not installed: SKIP"; exit 0; }
TMP=$(mktemp -d /tmp/jobd-valgrind.XXXXXX)
PID=
cleanup() { [ -n "$PID" ] && kill -9 "$PID" 2>/dev/null; rm -rf "$TMP"; }
trap cleanup EXIT
PORT=$(( 20000 + $$ % 20000 ))
cat > "$TMP/jobd.conf" <<CONF
[server]
listen = 127.0.0.1:$PORT
[store]
path = $TMP/jobs.db
[workers]
threads = 2
shutdown_grace = 2s
[handler.echo]
builtin = echo
[handler.sleep]
builtin = sleep
[handler.fail]
builtin = fail
max_attempts = 2
backoff_base = 10ms
backoff_max = 20ms
[handler.sh]
command = /bin/sh -c "cat; echo done >&2; exit 3"
max_attempts = 1
CONF
valgrind --quiet --leak-check=full --show-leak-kinds=definite \
	--errors-for-leak-kinds=definite --error-exitcode=99 \
	"$JOBD" --config "$TMP/jobd.conf" 2> "$TMP/log" &
PID=$!
up=0
for _ in $(seq 1 100); do
	curl -sf "127.0.0.1:$PORT/healthz" >/dev/null 2>&1 && { up=1; break; }
	sleep 0.1
done
[ $up = 1 ] || { echo "valgrind: daemon did not start"; cat "$TMP/log"; exit 1; }
J='Content-Type: application/json'
B="127.0.0.1:$PORT"
for i in $(seq 1 20); do
	curl -sf -H "$J" -d "{\"type\":\"echo\",\"payload\":{\"i\":$i}}" "$B/jobs" >/dev/null
done
curl -sf -H "$J" -d '{"type":"fail"}' "$B/jobs" >/dev/null
curl -sf -H "$J" -d '{"type":"sh","payload":[1,2,3]}' "$B/jobs" >/dev/null
curl -s -H "$J" -H 'Prefer: wait=5' -d '{"type":"sleep","payload":{"seconds":0.2}}' "$B/jobs" >/dev/null
id=$(curl -sf -H "$J" -H 'Idempotency-Key: k1' -d '{"type":"sleep","payload":{"seconds":30}}' "$B/jobs" | sed 's/.*"id":"\([^"]*\)".*/\1/')
curl -sf -H "$J" -H 'Idempotency-Key: k1' -d '{"type":"sleep","payload":{"seconds":30}}' "$B/jobs" >/dev/null
curl -s -o /dev/null -X DELETE "$B/jobs/$id"
curl -s -o /dev/null "$B/jobs/$id?wait=5"
curl -s -o /dev/null -X POST "$B/jobs/$id/retry"
curl -s -o /dev/null "$B/jobs?limit=5&status=succeeded"
curl -s -o /dev/null "$B/metrics"
curl -s -o /dev/null "$B/"
curl -s -o /dev/null -H "$J" -d '{bad' "$B/jobs"
curl -s -o /dev/null -H "$J" -d '{"type":"nope"}' "$B/jobs"
curl -s -o /dev/null -X PUT "$B/jobs"
kill -HUP "$PID"
curl -s -o /dev/null "$B/readyz"
kill -TERM "$PID"
set +e
wait "$PID"
rc=$?
PID=
set -e
if [ $rc -ne 0 ]; then
	echo "valgrind: FAIL (exit $rc)"
	grep '==' "$TMP/log" | head -60
	exit 1
fi
echo "valgrind: PASS (no memcheck errors, no definite leaks)"
