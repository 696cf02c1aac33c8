#!/bin/sh
# tests/crash/run.sh - kill -9 jobd under load and find every acknowledged
# job after the restart (issue 7 item 1; README "Guarantees").
#
#   CRASH_ROUNDS=N   rounds on the same store (default 200; `make check`
#                    runs 20, `make check-crash` 200)
#   JOBD_BIN=PATH    the daemon under test (default build/jobd)
#   JOBD_KEEP=1      keep the temporary directory (store, logs, id lists)
#
# One round:
#   1. tests/crash/load.c opens 64 keep-alive connections and POSTs noop
#      jobs as fast as it can (the first request of 4 connections is a
#      0.2 s sleep job at priority 10, so that attempts of both kinds are
#      running), recording every id answered 202;
#   2. a random 50-500 ms after the load started, the load generator sends
#      the daemon SIGKILL itself, reads what the dead daemon had already
#      sent, and stops;
#   3. the store is read (read-only, so that the crashed WAL is left for
#      the daemon to recover) for the jobs left `running`;
#   4. jobd restarts on the same store and port; readiness is a bounded
#      poll of /healthz every 10 ms;
#   5. every id acknowledged in the round must be in the store (sqlite3,
#      read-only, while the daemon runs), a random sample of 20 must answer
#      GET 200, PRAGMA integrity_check must say ok, and every job that was
#      running at the kill must run again and succeed within 15 s, with a
#      higher attempt if its attempt had started (attempt_started = 1; a
#      job claimed ahead but not started keeps its attempt number).  (Waiting for success, not only for the
#      new claim, also lets the sleep jobs finish: otherwise every kill
#      would interrupt them again until their attempts ran out.)
# After the last round every id of every round is checked again, and the
# daemon must stop cleanly on SIGTERM (exit 0: sanitizer reports fail it).
# Prints a line per round and "rounds=N acked=N lost=N"; exits non-zero if
# a job was lost or any check failed.
set -u

ROUNDS=${CRASH_ROUNDS:-200}
JOBD=${JOBD_BIN:-build/jobd}
CONNS=64
SLEEPERS=4
READY_MS=20000      # a large store under a sanitizer starts slower
REQUEUE_S=15

HERE=$(cd "$(dirname "$0")" && pwd)
TMP=$(mktemp -d "${TMPDIR:-/tmp}/jobd-crash-XXXXXX") || exit 1
DB=$TMP/jobs.db
CONF=$TMP/jobd.conf
LOG=$TMP/jobd.log
LOAD=$TMP/load
DPID=

cleanup() {
	if [ -n "$DPID" ]; then
		kill -9 "$DPID" 2>/dev/null
		wait "$DPID" 2>/dev/null
		DPID=
	fi
	if [ -n "${JOBD_KEEP:-}" ]; then
		echo "crash: kept $TMP"
	else
		rm -rf "$TMP"
	fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP PIPE

die() {
	echo "crash: FAIL: $*" >&2
	if [ -f "$LOG" ]; then
		echo "---- tail of $LOG ----" >&2
		grep -v '"[A-Z]* /' "$LOG" | tail -n 30 >&2
		echo "---- end ----" >&2
	fi
	exit 1
}

FAILED=0
fail() {
	echo "crash: FAIL: $*" >&2
	FAILED=$((FAILED + 1))
}

[ -x "$JOBD" ] || die "no daemon at $JOBD (run make all)"
${CC_CRASH:-cc} -O2 -pthread -Wall -o "$LOAD" "$HERE/load.c" ||
	die "cannot build tests/crash/load.c"
command -v sqlite3 >/dev/null || die "sqlite3 (the CLI) is needed"

# A random integer in [lo, hi].
rand() {
	r=$(od -An -N2 -tu2 /dev/urandom | tr -d ' ')
	echo $(($1 + r % ($2 - $1 + 1)))
}

# Whether pid $1 exists and has not exited (a zombie has).
running() {
	st=$(cut -d' ' -f3 "/proc/$1/stat" 2>/dev/null) || return 1
	[ -n "$st" ] && [ "$st" != Z ] && [ "$st" != X ]
}

# Waits (bounded by $1 seconds) for the daemon ($DPID) to exit and reaps
# it; the status goes to $DSTATUS (-1: did not exit in time, killed).
reap() {
	i=0
	while running "$DPID" && [ "$i" -lt $(($1 * 20)) ]; do
		sleep 0.05
		i=$((i + 1))
	done
	if running "$DPID"; then
		kill -9 "$DPID" 2>/dev/null
		wait "$DPID" 2>/dev/null
		DSTATUS=-1
	else
		wait "$DPID"
		DSTATUS=$?
	fi
	DPID=
}

start_daemon() {
	env -u NOTIFY_SOCKET -u LISTEN_FDS -u LISTEN_PID -u JOBD_FAULT_INJECT \
		"$JOBD" --config "$CONF" >>"$LOG" 2>&1 &
	DPID=$!
	"$LOAD" wait "$PORT" "$READY_MS" "$DPID"
	case $? in
	0) return 0 ;;
	2) reap 1; echo "jobd exited with status $DSTATUS" >&2 ;;
	*) echo "jobd not ready within $READY_MS ms" >&2
	   kill -9 "$DPID" 2>/dev/null
	   reap 5 ;;
	esac
	return 1
}

write_conf() {
	cat >"$CONF" <<EOF
; written by tests/crash/run.sh
[server]
listen = 127.0.0.1:$PORT
log_level = notice
[store]
path = $DB
durability = full
[workers]
threads = 16
shutdown_grace = 2s
[handler.noop]
builtin = noop
max_attempts = 100
[handler.sleep]
builtin = sleep
concurrency = 8
max_attempts = 100
EOF
}

# Ids of file $1 missing from the store, one per line (empty: none); a
# duplicate id (two 202s with one id) counts too.
missing_ids() {
	sqlite3 -readonly -bail "$DB" <<EOF
CREATE TEMP TABLE acked(id TEXT);
.import '$1' acked
SELECT 'duplicate ' || id FROM acked GROUP BY id HAVING count(*) > 1;
SELECT id FROM acked WHERE id NOT IN (SELECT id FROM jobs);
EOF
}

# Of the jobs of file $1 (id|attempt|started|type, running at the kill),
# those not yet run again to success: still queued or running, or
# succeeded without a higher attempt when theirs had started.  Prints
# "id status attempt (was attempt, started)".
not_requeued() {
	sqlite3 -readonly -bail "$DB" <<EOF
CREATE TEMP TABLE run(id TEXT, attempt INTEGER, started INTEGER, type TEXT);
.import '$1' run
SELECT r.id || ' ' || coalesce(j.status, 'absent') || ' ' ||
       coalesce(j.attempt, -1) || ' (was ' || r.attempt || ', started ' ||
       r.started || ')'
  FROM run r LEFT JOIN jobs j ON j.id = r.id
 WHERE j.id IS NULL OR j.attempt < r.attempt + r.started OR j.attempt < 1
    OR j.status <> 'succeeded';
EOF
}

# ---- start ----

started=0
for try in 1 2 3; do
	PORT=$("$LOAD" port) || die "no free port"
	write_conf
	if start_daemon; then
		started=1
		break
	fi
done
[ "$started" = 1 ] || die "jobd does not start"
echo "crash: $JOBD on 127.0.0.1:$PORT, store $DB, $ROUNDS round(s)," \
	"$CONNS connections"

T0=$(date +%s)
total_acked=0
total_lost=0
total_running=0
total_sleep=0
: >"$TMP/all_ids"
round=1
while [ "$round" -le "$ROUNDS" ]; do
	rt0=$(date +%s%N)
	ids=$TMP/ids.$round
	delay=$(rand 50 500)

	# 1-2. load, and SIGKILL after $delay ms
	out=$("$LOAD" post "$PORT" "$ids" "$CONNS" "$DPID" "$delay" \
		"$SLEEPERS") || die "round $round: load generator failed"
	reap 10
	[ "$DSTATUS" = 137 ] ||
		die "round $round: jobd ended with status $DSTATUS," \
			"not by the SIGKILL (137)"
	acked=$(wc -l <"$ids")
	refused=$(echo "$out" | sed -n 's/.*refused=\([0-9]*\).*/\1/p')
	neterr=$(echo "$out" | sed -n 's/.*neterr=\([0-9]*\).*/\1/p')
	[ "${refused:-1}" = 0 ] ||
		fail "round $round: $refused POST(s) answered other than 202" \
			"before the kill"
	[ "${neterr:-1}" = 0 ] ||
		fail "round $round: $neterr connection error(s) before the kill"

	# 3. what was running when the daemon died
	sqlite3 -readonly -bail "$DB" \
		"SELECT id || '|' || attempt || '|' || attempt_started || '|' ||
		        type FROM jobs WHERE status = 'running'" \
		>"$TMP/running.$round" ||
		die "round $round: cannot read the store after the kill"
	nrun=$(wc -l <"$TMP/running.$round")
	nsleep=$(grep -c '|sleep$' "$TMP/running.$round")

	# 4. restart on the same store
	start_daemon || die "round $round: jobd does not restart"

	# 5. checks
	missing_ids "$ids" >"$TMP/missing.$round" ||
		die "round $round: cannot check the store"
	lost=$(wc -l <"$TMP/missing.$round")
	if [ "$lost" -gt 0 ]; then
		fail "round $round: $lost acknowledged job(s) not in the store:"
		head -n 20 "$TMP/missing.$round" >&2
	fi
	if [ "$acked" -gt 0 ]; then
		shuf -n 20 "$ids" >"$TMP/sample"
		"$LOAD" get "$PORT" "$TMP/sample" >/dev/null ||
			fail "round $round: GET of acknowledged jobs failed"
	fi
	ic=$(sqlite3 -readonly "$DB" "PRAGMA integrity_check" 2>&1)
	[ "$ic" = ok ] || fail "round $round: integrity_check: $ic"

	requeued=0
	if [ "$nrun" -gt 0 ]; then
		i=0
		while :; do
			not_requeued "$TMP/running.$round" >"$TMP/notreq" ||
				die "round $round: cannot read the store"
			[ -s "$TMP/notreq" ] || break
			if [ "$i" -ge $((REQUEUE_S * 20)) ]; then
				fail "round $round: job(s) running at the kill not" \
					"run again to success within ${REQUEUE_S}s:"
				head -n 10 "$TMP/notreq" >&2
				break
			fi
			sleep 0.05
			i=$((i + 1))
		done
		requeued=$((nrun - $(wc -l <"$TMP/notreq")))
	fi

	cat "$ids" >>"$TMP/all_ids"
	total_acked=$((total_acked + acked))
	total_lost=$((total_lost + lost))
	total_running=$((total_running + nrun))
	total_sleep=$((total_sleep + nsleep))
	rt=$((($(date +%s%N) - rt0) / 1000000))
	echo "round $round/$ROUNDS: kill at ${delay} ms, acked=$acked" \
		"lost=$lost running_at_kill=$nrun ($nsleep sleep)" \
		"rerun=$requeued" \
		"(${rt} ms)"
	rm -f "$ids" "$TMP/missing.$round" "$TMP/running.$round"
	round=$((round + 1))
done

# Every id of every round, once more, on the store as it is now.
missing_ids "$TMP/all_ids" >"$TMP/missing.all" || die "cannot check the store"
late=$(wc -l <"$TMP/missing.all")
if [ "$late" -gt "$total_lost" ]; then
	fail "$((late - total_lost)) job(s) found after their round are gone"
	head -n 20 "$TMP/missing.all" >&2
	total_lost=$late
fi
ic=$(sqlite3 -readonly "$DB" "PRAGMA integrity_check" 2>&1)
[ "$ic" = ok ] || fail "final integrity_check: $ic"

kill -TERM "$DPID"
reap 20
[ "$DSTATUS" = 0 ] || fail "jobd exited with status $DSTATUS on SIGTERM"

echo "crash: $(($(date +%s) - T0)) s, $total_running job(s) running at" \
	"the kills ($total_sleep sleep), all run again; store $(du -k "$DB" | cut -f1) KiB"
echo "rounds=$ROUNDS acked=$total_acked lost=$total_lost"
if [ "$FAILED" -gt 0 ] || [ "$total_lost" -gt 0 ]; then
	echo "crash: FAIL ($FAILED failed check(s))" >&2
	exit 1
fi
echo "crash: ok"
