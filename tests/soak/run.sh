#!/bin/sh
# tests/soak/run.sh - `make soak SOAK_SECONDS=N` (issue 7 item 7): mixed load
# for N seconds, looking for growth of the daemon's memory, fds, threads and
# WAL.
#
#   SOAK_SECONDS=N      length of the load (default 300; at least 15)
#   JOBD_BIN=PATH       the daemon under test (default build/jobd)
#   SOAK_CONNS=N        wrk connections (default 8)
#   SOAK_DELAY_MS=N     pause before each wrk request, per connection
#                       (default 4: about 1,500 requests/s on 2 cores)
#   SOAK_RETENTION=D    store.retention (default 1m, the smallest allowed,
#                       so that runs longer than the 10-minute purge interval
#                       purge during the run; 7d is the daemon's default)
#   JOBD_KEEP=1         keep the temporary directory (store, log, wrk output)
#
# The daemon runs on a free 127.0.0.1 port with a temporary store:
# server.threads = 2, workers.threads = 4, handlers noop, echo, sleep and
# fail (max_attempts 3, backoff 10-50 ms).  The load:
#   - wrk -t2 -c$SOAK_CONNS with mix.lua: POST noop/echo/fail/sleep 0.05 s,
#     GET of recent jobs, long-polls (?wait=1), listings, /healthz, /readyz,
#     /metrics, paced by delay();
#   - two curl loops: POST a job delayed by an hour and DELETE it (cancel
#     of a queued job), POST a 0.05 s sleep job and long-poll it
#     (GET ?wait=1), POST an echo job with Prefer: wait=2 (synchronous).
# Samples after a 5 s warm-up ("start"), half-way ("half"), 1 s before the
# load ends ("end"), and once more after the load has stopped and the queue
# has drained ("idle"): VmRSS, open fds (/proc/PID/fd), Threads, the size of
# the -wal file and of the store, jobs submitted and finished (from
# /metrics).  Prints a table with the deltas.
#
# Reading RSS: SQLite's page caches fill as the store grows (16 MiB for the
# writer's connection, 4 MiB per reader connection, allocated on demand),
# so RSS rises during the first minutes of any run whose store outgrows
# them, then flattens; a leak keeps rising.  The table shows the growth of
# each half of the run separately for that reason.  The writer purges
# finished jobs past the retention every 10 minutes, so the store (and the
# purge path) reaches a steady state only in runs longer than that.
#
# Exits non-zero when: the daemon died or did not stop cleanly on SIGTERM
# (exit 0), any answer was a 5xx, wrk saw socket errors, or - for runs of
# 60 s or more - RSS grew by more than 28 MiB overall (the caches) or 4 MiB
# in the second half, fds by more than 50, or the
# thread count changed between start and end.  Every wait is bounded; only
# 127.0.0.1 is contacted.
set -u

SECS=${SOAK_SECONDS:-300}
JOBD=${JOBD_BIN:-build/jobd}
CONNS=${SOAK_CONNS:-8}
PACE=${SOAK_DELAY_MS:-4}
RETENTION=${SOAK_RETENTION:-1m}
WARMUP=5
RSS_MAX_KB=${SOAK_RSS_MAX_KB:-28672}   # the page caches alone may take 24 MiB
RSS_HALF_MAX_KB=${SOAK_RSS_HALF_MAX_KB:-4096}
FDS_MAX=50
GROWTH_MIN_SECS=60

HERE=$(cd "$(dirname "$0")" && pwd)

case $SECS in ''|*[!0-9]*) echo "soak: SOAK_SECONDS must be a number" >&2
	exit 2 ;; esac
if [ "$SECS" -lt 15 ]; then
	echo "soak: SOAK_SECONDS must be at least 15 (5 s warm-up)" >&2
	exit 2
fi
for tool in wrk curl awk stat; do
	command -v "$tool" >/dev/null 2>&1 ||
		{ echo "soak: $tool not found (run scripts/deps.sh)" >&2; exit 2; }
done
[ -x "$JOBD" ] || { echo "soak: $JOBD missing: make all" >&2; exit 2; }

TMP=$(mktemp -d "${TMPDIR:-/tmp}/jobd-soak-XXXXXX") || exit 2
CONF=$TMP/jobd.conf
DB=$TMP/jobs.db
LOG=$TMP/jobd.log
DPID=
WPID=
LPIDS=

cleanup() {
	for p in $WPID $LPIDS; do
		kill "$p" 2>/dev/null
		wait "$p" 2>/dev/null
	done
	if [ -n "$DPID" ]; then
		kill -9 "$DPID" 2>/dev/null
		wait "$DPID" 2>/dev/null
	fi
	if [ -n "${JOBD_KEEP:-}" ]; then
		echo "soak: kept $TMP"
	else
		rm -rf "$TMP"
	fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP

FAILED=0
fail() {
	echo "soak: FAIL: $*" >&2
	FAILED=$((FAILED + 1))
}

now_ms() { date +%s%3N; }

# A TCP port in 20000..59999 that no local socket uses now.
free_port() {
	cat /proc/net/tcp /proc/net/tcp6 2>/dev/null |
	awk -v seed="$$$(date +%N)" '
	function hex(s,   i, n) {
		n = 0
		for (i = 1; i <= length(s); i++)
			n = n * 16 + index("0123456789ABCDEF", toupper(substr(s, i, 1))) - 1
		return n
	}
	NR > 1 && $2 ~ /:/ { split($2, a, ":"); used[hex(a[2])] = 1 }
	END {
		srand(seed)
		for (i = 0; i < 1000; i++) {
			p = 20000 + int(rand() * 40000)
			if (!(p in used)) { print p; exit }
		}
		print 0
	}'
}

write_conf() {
	cat >"$CONF" <<EOF
; written by tests/soak/run.sh
[server]
listen = 127.0.0.1:$1
; fixed, not one per CPU: every HTTP thread may hold a reader connection
; with its own 4 MiB page cache, and the RSS budget should not depend on
; the machine
threads = 2
log_level = notice
max_wait = 10s

[store]
path = $DB
retention = $RETENTION

[workers]
threads = 4
shutdown_grace = 5s

[handler.noop]
builtin = noop

[handler.echo]
builtin = echo

[handler.sleep]
builtin = sleep

[handler.fail]
builtin = fail
max_attempts = 3
backoff_base = 10ms
backoff_max = 50ms
EOF
}

# Starts the daemon; readiness is a bounded poll of /healthz (10 s).
start_daemon() {
	tries=0
	while [ "$tries" -lt 5 ]; do
		tries=$((tries + 1))
		PORT=$(free_port)
		[ "$PORT" -gt 0 ] 2>/dev/null || continue
		URL="http://127.0.0.1:$PORT"
		write_conf "$PORT"
		rm -f "$DB" "$DB-wal" "$DB-shm"
		"$JOBD" --config "$CONF" >"$LOG" 2>&1 &
		DPID=$!
		i=0
		while [ "$i" -lt 200 ]; do
			if ! kill -0 "$DPID" 2>/dev/null; then
				wait "$DPID" 2>/dev/null
				DPID=
				break
			fi
			curl -sf -m 1 -o /dev/null "$URL/healthz" && return 0
			sleep 0.05
			i=$((i + 1))
		done
		if [ -n "$DPID" ]; then
			echo "soak: jobd did not answer /healthz within 10 s" >&2
			tail -n 20 "$LOG" >&2
			exit 1
		fi
		grep -qi "in use" "$LOG" || {
			echo "soak: jobd exited at start-up:" >&2
			tail -n 20 "$LOG" >&2
			exit 1
		}
	done
	echo "soak: no free port after 5 tries" >&2
	exit 1
}

# Running, and not a zombie waiting to be reaped.
alive() {
	[ -n "$DPID" ] && [ -r "/proc/$DPID/status" ] &&
		! grep -q '^State:[[:space:]]*Z' "/proc/$DPID/status" 2>/dev/null
}

# sample NAME: VmRSS (kB), fds, threads, WAL bytes, submitted, finished,
# and the time, into $TMP/sample.NAME ("key value" lines).
sample() {
	f=$TMP/sample.$1
	if ! alive; then
		: >"$f"
		return 1
	fi
	{
		echo "t_ms $(now_ms)"
		awk '/^VmRSS:/ { print "rss_kb", $2 } /^Threads:/ { print "threads", $2 }' \
			"/proc/$DPID/status"
		echo "fds $(find "/proc/$DPID/fd" -mindepth 1 -maxdepth 1 |
			wc -l)"
		echo "wal_bytes $(stat -c %s "$DB-wal" 2>/dev/null || echo 0)"
		echo "db_bytes $(stat -c %s "$DB" 2>/dev/null || echo 0)"
		curl -s -m 10 "$URL/metrics" | awk '
			/^jobd_jobs_submitted_total/ { s += $2 }
			/^jobd_jobs_finished_total/ { f += $2 }
			/^jobd_jobs\{status="queued"\}/ { q = $2 }
			END { print "submitted", s + 0; print "finished", f + 0
			      print "queued", q + 0 }'
	} >"$f"
}

val() { awk -v k="$2" '$1 == k { print $2 }' "$TMP/sample.$1"; }

# One curl loop until the deadline (ms): cancels, long-polls, synchronous
# submits.  Counts go to $TMP/loop.$1.
curl_loop() {
	n=$1
	cancel_ok=0 cancel_bad=0 poll_final=0 poll_open=0 poll_bad=0
	sync_ok=0 sync_bad=0
	while [ "$(now_ms)" -lt "$2" ]; do
		id=$(curl -s -m 10 -H 'Content-Type: application/json' \
			-d '{"type":"noop","delay":3600}' "$URL/jobs" |
			sed -n 's/.*"id":"\([^"]*\)".*/\1/p')
		st=000
		[ -n "$id" ] && st=$(curl -s -m 10 -o /dev/null \
			-w '%{http_code}' -X DELETE "$URL/jobs/$id")
		if [ "$st" = 200 ]; then
			cancel_ok=$((cancel_ok + 1))
		else
			cancel_bad=$((cancel_bad + 1))
		fi
		id=$(curl -s -m 10 -H 'Content-Type: application/json' \
			-d '{"type":"sleep","payload":{"seconds":0.05}}' \
			"$URL/jobs" | sed -n 's/.*"id":"\([^"]*\)".*/\1/p')
		body=
		[ -n "$id" ] && body=$(curl -s -m 10 "$URL/jobs/$id?wait=1")
		case $body in
		*'"status":"succeeded"'*) poll_final=$((poll_final + 1)) ;;
		*'"status":"queued"'*|*'"status":"running"'*)
			poll_open=$((poll_open + 1)) ;;
		*) poll_bad=$((poll_bad + 1)) ;;
		esac
		st=$(curl -s -m 10 -o /dev/null -w '%{http_code}' \
			-H 'Content-Type: application/json' -H 'Prefer: wait=2' \
			-d '{"type":"echo","payload":[1,2,3]}' "$URL/jobs")
		case $st in
		200|202) sync_ok=$((sync_ok + 1)) ;;
		*) sync_bad=$((sync_bad + 1)) ;;
		esac
	done
	echo "cancel_ok $cancel_ok cancel_bad $cancel_bad poll_final" \
		"$poll_final poll_open $poll_open poll_bad $poll_bad sync_ok" \
		"$sync_ok sync_bad $sync_bad" >"$TMP/loop.$n"
}

# ---- run ----

start_daemon
echo "soak: jobd pid $DPID on $URL, store $DB, ${SECS} s of mixed load" \
	"(wrk -t2 -c$CONNS, ${PACE} ms pacing; 2 curl loops)"

T0=$(now_ms)
END_MS=$((T0 + SECS * 1000))
wrk -t2 -c"$CONNS" -d"${SECS}s" --timeout 10s -s "$HERE/mix.lua" \
	"$URL" -- "$PACE" >"$TMP/wrk.out" 2>&1 &
WPID=$!
curl_loop 1 "$END_MS" &
LPIDS="$!"
curl_loop 2 "$END_MS" &
LPIDS="$LPIDS $!"

# The pacing of the samples is the scenario: warm-up, then the run.
sleep "$WARMUP"
sample start || fail "jobd died during the warm-up"
left=$(( (T0 + SECS * 500 - $(now_ms)) / 1000 ))
[ "$left" -gt 0 ] && sleep "$left"
sample half || fail "jobd died during the first half"
left=$(( (END_MS - $(now_ms)) / 1000 - 1 ))
[ "$left" -gt 0 ] && sleep "$left"
sample end || fail "jobd died during the run"

wait "$WPID"
WPID=
for p in $LPIDS; do wait "$p"; done
LPIDS=
# Idle: the load has stopped; let the queue drain (bounded, 30 s).
i=0
while alive && [ "$i" -lt 300 ]; do
	q=$(curl -s -m 2 "$URL/readyz" | sed -n 's/.*"queued":\([0-9]*\).*"running":\([0-9]*\).*/\1 \2/p')
	[ "$q" = "0 0" ] && break
	sleep 0.1
	i=$((i + 1))
done
sample idle || fail "jobd died after the load"

# ---- report ----

W=$(grep '^SOAK ' "$TMP/wrk.out")
[ -n "$W" ] || { echo "soak: wrk printed no summary:" >&2
	cat "$TMP/wrk.out" >&2; fail "wrk failed"; }
w() { printf '%s\n' "$W" | tr ' ' '\n' | sed -n "s/^$1=//p"; }

if [ -s "$TMP/sample.start" ] && [ -s "$TMP/sample.end" ]; then
	dt_ms=$(( $(val end t_ms) - $(val start t_ms) ))
	row() {
		printf '| %-15s | %11s | %11s | %11s | %11s | %11s | %11s | %11s |\n' \
			"$@"
	}
	echo
	row metric "start ${WARMUP}s" "half $((SECS / 2))s" \
		"end $((SECS - 1))s" "delta" "1st half" "2nd half" "idle"
	echo "|-----------------|-------------|-------------|-------------|-------------|-------------|-------------|-------------|"
	for k in rss_kb fds threads wal_bytes db_bytes queued submitted \
		finished; do
		s=$(val start $k) h=$(val half $k) e=$(val end $k)
		i=$(val idle $k)
		h=${h:-$s}
		row "$k" "$s" "$h" "$e" "$((e - s))" "$((h - s))" \
			"$((e - h))" "${i:--}"
	done
	sub=$(( $(val end submitted) - $(val start submitted) ))
	fin=$(( $(val end finished) - $(val start finished) ))
	awk -v s="$sub" -v f="$fin" -v ms="$dt_ms" 'BEGIN {
		printf "\njobs/s between the samples (%.1f s): %.0f submitted, %.0f finished\n",
			ms / 1000, s * 1000 / ms, f * 1000 / ms }'
else
	fail "no start/end samples (the daemon died)"
fi
echo "wrk: $(w requests) requests, 200 x$(w s200), 202 x$(w s202)," \
	"4xx x$(w s4xx), 5xx x$(w s5xx), other x$(w other), socket errors" \
	"$(w errors); latency p50 $(w p50_us) us, p99 $(w p99_us) us," \
	"max $(w max_us) us"
for n in 1 2; do
	echo "curl loop $n: $(cat "$TMP/loop.$n" 2>/dev/null)"
done

# ---- verdict ----

[ "$(w s5xx)" = 0 ] || fail "$(w s5xx) answers were 5xx"
[ "$(w errors)" = 0 ] || fail "wrk saw $(w errors) socket errors"
for n in 1 2; do
	for k in cancel_bad poll_bad sync_bad; do
		v=$(tr ' ' '\n' <"$TMP/loop.$n" 2>/dev/null |
			awk -v k="$k" 'p { print; exit } $0 == k { p = 1 }')
		[ "${v:-1}" = 0 ] || fail "curl loop $n: $k = ${v:-?}"
	done
done
if [ "$SECS" -ge "$GROWTH_MIN_SECS" ] && [ -s "$TMP/sample.end" ]; then
	d=$(( $(val end rss_kb) - $(val start rss_kb) ))
	[ "$d" -le "$RSS_MAX_KB" ] || fail "RSS grew by $d kB (> $RSS_MAX_KB)"
	# A leak keeps rising; SQLite's caches flatten: judge the second half
	# on its own too.
	d=$(( $(val end rss_kb) - $(val half rss_kb) ))
	[ "$d" -le "$RSS_HALF_MAX_KB" ] ||
		fail "RSS grew by $d kB in the second half (> $RSS_HALF_MAX_KB)"
	d=$(( $(val end fds) - $(val start fds) ))
	[ "$d" -le "$FDS_MAX" ] || fail "open fds grew by $d (> $FDS_MAX)"
	[ "$(val end threads)" = "$(val start threads)" ] ||
		fail "threads went from $(val start threads) to $(val end threads)"
elif [ "$SECS" -lt "$GROWTH_MIN_SECS" ]; then
	echo "soak: run shorter than $GROWTH_MIN_SECS s: growth reported," \
		"not judged"
fi

if alive; then
	kill -TERM "$DPID"
	i=0
	while alive && [ "$i" -lt 300 ]; do sleep 0.1; i=$((i + 1)); done
	if alive; then
		fail "jobd ignored SIGTERM for 30 s"
		kill -9 "$DPID"
	fi
	wait "$DPID"
	rc=$?
	DPID=
	[ "$rc" = 0 ] || fail "jobd exited with status $rc on SIGTERM"
else
	wait "$DPID"
	fail "jobd died during the soak (status $?)"
	DPID=
fi
if [ "$FAILED" -gt 0 ]; then
	echo "---- tail of $LOG ----" >&2
	tail -n 20 "$LOG" >&2
	echo "soak: FAILED ($FAILED)"
	exit 1
fi
echo "soak: ok"
