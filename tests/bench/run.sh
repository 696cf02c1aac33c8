#!/bin/sh
# tests/bench/run.sh - `make bench`: jobd's throughput and latency (issue 5).
#
# Every scenario starts build/jobd on a free 127.0.0.1 port with its own temp
# directory, configuration and SQLite store, measures, and stops it:
#
#   1+2 ceiling and intake, once per durability (full, normal), on one daemon
#       each (workers.threads = 2, draining as configured while it accepts):
#       wrk GET /healthz -t2 -c64 (the ceiling), then POST /jobs (noop,
#       200-byte payload) at 1, 16 and 64 connections;
#   2b  batch intake (issue 15): single POSTs, then arrays of 100 and of
#       1,000 of the same jobs (batch.lua), 16 connections, durability
#       full, one daemon with its 2 workers draining, then one with them
#       held; jobs/s (target ≥ 150,000 with batches);
#   2c  promotion (issue 15): a gate job (exec, cat of a FIFO) with 1 and
#       then DEPS_N (10,000) noop dependents, submitted in batches of
#       1,000 while it runs; the gate is let go (FIFO opened and closed)
#       and its success promotes them all in its own transaction.  From
#       the store: the first dependent's start after the gate's end (the
#       promoting commit and a claim), and the last dependent's end;
#   3   drain: 100,000 queued noop jobs, workers.threads = 2 and 8
#       (durability full), time until /readyz shows queued 0 and running 0;
#       no job may have run twice (attempt != 1);
#   3b  mixed: 50,000 queued noop jobs drained by 2 of 4 workers while the
#       other 2 run long sleeps (short work beside long work);
#   4   exec drain: 20,000 jobs of an exec handler running /bin/true, beside
#       spawn_ceiling.c (posix_spawn + waitpid of /bin/true, one thread per
#       CPU) in the same run;
#   5   pickup latency: 1,000 jobs one at a time (Prefer: wait=5),
#       started_at - created_at from the store (integer µs columns);
#   6   memory: VmRSS of the daemon with 1,000,000 queued jobs.
#
# And on PostgreSQL (issue 13), with the same method and the same rows'
# shapes, one private server (tests/pg/pg.sh, fsync and synchronous_commit
# on) started for the first of them and stopped at the end, a fresh
# database per scenario:
#
#   P1  ceiling and intake: workers.threads = 2, durability = full,
#       GET /healthz -t2 -c64 (the ceiling), then POST /jobs at 64
#       connections;
#   P2  drain: 100,000 queued noop jobs, workers.threads = 2 and 8
#       (PG_DRAIN_WORKERS), durability = full; no job may have run twice;
#   P2c promotion as in 2c.
#
# And several nodes on one PostgreSQL database (issue 14), daemons n1..nN
# with lease = 30s, one fresh database per run:
#
#   P3  capacity scaling: SCALE_JOBS (3,000) queued jobs of a builtin
#       sleep of 50 ms ([handler.s50], payload {"seconds":0.05}),
#       workers.threads = 16 per node, 1 vs 2 vs 3 nodes (SCALE_NODES);
#       jobs/s per node count and the ratios 2/1 and 3/1 (targets 1.8 and
#       2.6);
#   P4  drain of P4_JOBS (100,000) queued noop jobs with 1 and 2 nodes
#       (P4_NODES), P4_WORKERS (8) per node; reported, no target.
#
# Every worker of every node is held by a block job while the jobs are
# POSTed (to n1); each block job is then cancelled on the node running it,
# all nodes at once, and the store is polled until none is left.
#
# To preload a queue that no worker drains yet, every worker is first held
# by a "block" job (builtin sleep, priority 100); the jobs are submitted
# through the API with wrk (quota.lua), and the drain starts when the
# blocking jobs are cancelled (DELETE /jobs/<id>).  A scenario that cannot
# finish within its time cap reports what it got and says so.
#
# Prints one Markdown table and writes it, with the machine, to
# tests/bench/results/YYYY-MM-DD.md.  Sized to finish in under 5 minutes on
# 2 cores.  Knobs (environment): JOBD_BIN, BENCH_TMPDIR, and the sizes
# below (DRAIN_JOBS, EXEC_JOBS, SPAWN_N, PICKUP_JOBS, MEM_JOBS);
# BENCH_STORES="sqlite pg" (the default; "sqlite" alone is the run of
# issue 5, "pg" alone runs P1 to P4 only); BENCH_ONLY (below; "scale"
# runs P3 and P4).  Without
# PostgreSQL's binaries the PostgreSQL rows say "skipped: no PostgreSQL".
set -u

cd "$(dirname "$0")/../.." || exit 1
ROOT=$(pwd)
JOBD=${JOBD_BIN:-$ROOT/build/jobd}
BENCH=$ROOT/tests/bench
NCPU=$(nproc)

CEIL_SECS=${CEIL_SECS:-5}          # wrk -d of the ceiling
INTAKE_SECS=${INTAKE_SECS:-4}      # wrk -d of each intake run
DRAIN_JOBS=${DRAIN_JOBS:-100000}
MIXED_JOBS=${MIXED_JOBS:-50000}
DEPS_N=${DEPS_N:-10000}            # 2c: dependents of the gate job
EXEC_JOBS=${EXEC_JOBS:-20000}
SPAWN_N=${SPAWN_N:-10000}          # spawns of the spawn ceiling
PICKUP_JOBS=${PICKUP_JOBS:-1000}
MEM_JOBS=${MEM_JOBS:-1000000}
PRELOAD_CAP=${PRELOAD_CAP:-15}     # s, preload of a drain scenario
DRAIN_CAP=${DRAIN_CAP:-20}         # s, wait for a drain
EXEC_CAP=${EXEC_CAP:-30}           # s, wait for the exec drain
PICKUP_CAP=${PICKUP_CAP:-30}       # s, the pickup run
MEM_CAP=${MEM_CAP:-75}             # s, preload of the memory scenario
PG_PRELOAD_CAP=${PG_PRELOAD_CAP:-45}  # s, preload of a PostgreSQL drain
PG_DRAIN_CAP=${PG_DRAIN_CAP:-90}      # s, wait for a PostgreSQL drain
PG_DRAIN_WORKERS=${PG_DRAIN_WORKERS:-2 8}  # workers.threads of P2's runs
SCALE_JOBS=${SCALE_JOBS:-3000}       # P3: 50 ms jobs per run
SCALE_NODES=${SCALE_NODES:-1 2 3}     # P3: node counts (1 first: the base)
SCALE_THREADS=${SCALE_THREADS:-16}    # P3: workers.threads per node
P4_JOBS=${P4_JOBS:-100000}            # P4: noop jobs per run
P4_NODES=${P4_NODES:-1 2}             # P4: node counts
P4_WORKERS=${P4_WORKERS:-8}           # P4: workers.threads per node
SCALE_CAP=${SCALE_CAP:-90}            # s, wait for a P3 or P4 drain
BENCH_STORES=${BENCH_STORES:-sqlite pg}
for st in $BENCH_STORES; do
	case $st in
	sqlite | pg) ;;
	*) echo "bench: BENCH_STORES: unknown store '$st' (sqlite, pg)" >&2; exit 2 ;;
	esac
done
# has_store NAME: NAME is one of BENCH_STORES.
has_store() {
	case " $BENCH_STORES " in *" $1 "*) return 0 ;; esac
	return 1
}

for tool in wrk curl sqlite3 awk cc; do
	command -v "$tool" >/dev/null 2>&1 ||
		{ echo "bench: $tool not found (run scripts/deps.sh)" >&2; exit 1; }
done
[ -x "$JOBD" ] || { echo "bench: $JOBD missing: make all" >&2; exit 1; }

TMP=$(mktemp -d "${BENCH_TMPDIR:-${TMPDIR:-/tmp}}/jobd-bench.XXXXXX") ||
	exit 1
. "$BENCH/lib.sh"
trap bench_cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

T_START=$(now_ms)
SCALE_RAN=""
ROWS=$TMP/rows.md
NOTES=$TMP/notes.md
: >"$ROWS"
: >"$NOTES"
INTEGRITY_BAD=0

row() { printf '| %s | %s | %s | %s |\n' "$1" "$2" "$3" "$4" >>"$ROWS"; }
note() { printf -- '- %s\n' "$*" >>"$NOTES"; echo "   note: $*"; }
say() { echo "== $*"; }

# awk helpers for the table
commas() { awk -v n="$1" 'BEGIN { n = sprintf("%.0f", n); s = ""
	while (length(n) > 3) { s = "," substr(n, length(n) - 2) s; n = substr(n, 1, length(n) - 3) }
	print n s }'; }
ms() { awk -v us="$1" 'BEGIN { printf "%.2f", us / 1000 }'; }
# per_sec COUNT ELAPSED UNITS_PER_SECOND: COUNT / ELAPSED, per second.
per_sec() { awk -v n="$1" -v t="$2" -v u="$3" 'BEGIN { r = 0; if (t > 0) r = n * u / t; printf "%.0f", r }'; }
# pct PART WHOLE: 100 * PART / WHOLE, one decimal.
pct() { awk -v a="$1" -v b="$2" 'BEGIN { r = 0; if (b > 0) r = 100 * a / b; printf "%.1f", r }'; }

# sq SQL: one query on the current daemon's store (after it stopped);
# the same SQL on both stores (same table and columns: jobs, or jobd.jobs).
sq() {
	if [ "$STORE" = pg ]; then
		pg_psql "$PGDB" -At -c "SET search_path = jobd; $1"
	else
		sqlite3 -batch -noheader "$DDIR/jobs.db" "$1"
	fi
}

# integrity NAME: after stop_daemon, no job may have run more than once.
integrity() {
	twice=$(sq "SELECT count(*) FROM jobs WHERE attempt > 1")
	if [ "${twice:-x}" != 0 ]; then
		INTEGRITY_BAD=1
		note "$1: $twice job(s) with attempt > 1 (ran more than once)"
	fi
	[ -z "$DAEMON_DIED" ] || { INTEGRITY_BAD=1; note "$1: jobd $DAEMON_DIED"; }
}

# preload TYPE TOTAL PRIORITY CAP_S [WAIT_S]: submit exactly TOTAL jobs with
# wrk + quota.lua (2 threads, 64 connections; 1 and 1 with WAIT_S), stop
# wrk when every POST is answered or after CAP_S.  Sets PRE_OUT, PRE_MS.
preload() {
	if [ $# -gt 4 ]; then pt=1; pconn=1; else pt=2; pconn=64; fi
	# PRELOAD_PAYLOAD: the jobs' payload instead of quota.lua's own
	[ -z "${PRELOAD_PAYLOAD:-}" ] ||
		set -- "$1" "$2" "$3" "$4" "${5:-}" "$PRELOAD_PAYLOAD"
	mark=$TMP/mark.$$.$(now_ms)
	PRE_OUT=$TMP/preload.$(now_ms).out
	: >"$mark"
	t0=$(now_ms)
	wrk -t$pt -c$pconn -d$(($4 + 5))s --timeout 10s -s "$BENCH/quota.lua" \
		"$URL" -- $(($2 / pt)) "$1" "$3" "$mark" ${5+"$5"} ${6+"$6"} \
		>"$PRE_OUT" 2>&1 &
	WPID=$!
	deadline=$((t0 + $4 * 1000))
	while kill -0 "$WPID" 2>/dev/null; do
		[ "$(wc -l <"$mark")" -ge "$pt" ] && break
		[ "$(now_ms)" -ge "$deadline" ] && break
		sleep 0.05
	done
	PRE_MS=$(($(now_ms) - t0))
	kill -INT "$WPID" 2>/dev/null
	wait "$WPID" 2>/dev/null
	WPID=""
	[ -n "$(bench_val "$PRE_OUT" requests)" ] ||
		{ echo "bench: preload wrk failed:" >&2; cat "$PRE_OUT" >&2; }
}

# block N: hold every one of the N workers with a "block" job; sets
# BLOCKERS (ids).  Fails the run when the workers do not take them in 5 s.
block() {
	BLOCKERS=""
	i=0
	while [ "$i" -lt "$1" ]; do
		id=$(post_job '{"type":"block","priority":100,"payload":{"seconds":600}}')
		[ -n "$id" ] || die "could not submit a block job"
		BLOCKERS="$BLOCKERS $id"
		i=$((i + 1))
	done
	i=0
	while [ "$i" -lt 100 ]; do
		[ "$(readyz running)" = "$1" ] && return 0
		sleep 0.05
		i=$((i + 1))
	done
	die "workers did not claim the $1 block jobs in 5 s (running=$(readyz running))"
}

unblock() {
	for id in $BLOCKERS; do
		curl -s -m 5 -o /dev/null -X DELETE "$URL/jobs/$id"
	done
}

# drain_wait N CAP_S T0: poll /readyz until queued 0 and running 0, at most
# CAP_S seconds after T0 (ms).  Sets DR_MS (elapsed) and DR_LEFT (jobs still
# queued or running when it stopped waiting; 0 when the drain completed).
drain_wait() {
	deadline=$(($3 + $2 * 1000))
	DR_LEFT=$1
	while :; do
		st=$(curl -s -m 2 "$URL/readyz")
		q=$(json_int "$st" queued)
		r=$(json_int "$st" running)
		DR_MS=$(($(now_ms) - $3))
		if [ -n "$q" ] && [ -n "$r" ]; then
			DR_LEFT=$((q + r))
			[ "$DR_LEFT" -eq 0 ] && return 0
		fi
		[ "$(now_ms)" -ge "$deadline" ] && return 1
		# Slow polls: each one runs curl, sed and date, which would
		# compete with the drain (an exec drain most of all).
		sleep 0.25
	done
}

# ---------------------------------------------------------------- 1 + 2 --
# On PostgreSQL (STORE=pg) only at 64 connections, and the rows say so.
intake_scenario() {     # DURABILITY
	dur=$1
	if [ "$STORE" = pg ]; then
		on=" on PostgreSQL" conns=64 sname=pg
	else
		on="" conns="1 16 64" sname=""
	fi
	say "ceiling and intake$on, durability=$dur (workers.threads=2)"
	start_daemon "intake-$sname$dur" "$dur" 2
	out=$TMP/ceiling-$sname$dur.out
	run_wrk "$out" -t2 -c64 -d"${CEIL_SECS}s" --latency -s "$BENCH/get.lua" \
		"$URL/healthz"
	ceil=$(per_sec "$(bench_val "$out" requests)" "$(bench_val "$out" duration_us)" 1e6)
	echo "   ceiling GET /healthz c64: $ceil req/s"
	row "ceiling: GET /healthz, 64 conn, keep-alive (daemon of durability=$dur$on)" \
		"$(commas "$ceil") req/s" "reference" ""
	posted=0
	for c in $conns; do
		t=2
		[ "$c" -lt 2 ] && t=1
		out=$TMP/intake-$sname$dur-$c.out
		run_wrk "$out" -t$t -c$c -d"${INTAKE_SECS}s" --latency \
			-s "$BENCH/post.lua" "$URL/jobs"
		req=$(bench_val "$out" requests)
		bad=$(bench_val "$out" non2xx)
		err=$(bench_val "$out" errors)
		okn=$((${req:-0} - ${bad:-0}))
		posted=$((posted + okn))
		rate=$(per_sec "$okn" "$(bench_val "$out" duration_us)" 1e6)
		pc=$(pct "$rate" "$ceil")
		frac=$(awk -v a="$rate" -v b="$ceil" 'BEGIN { r = 0; if (b > 0) r = a / b; printf "%.3f", r }')
		p50=$(ms "$(bench_val "$out" p50_us)")
		p99=$(ms "$(bench_val "$out" p99_us)")
		echo "   intake c$c: $rate jobs/s p50 $p50 ms p99 $p99 ms ($pc % of ceiling) non-2xx ${bad:-?} socket errors ${err:-?}"
		target="—" met=""
		if [ "$STORE" = pg ] && [ "$dur" = full ]; then
			target="≥ 15,000 jobs/s (issue 13)"
			met=$(awk -v r="$rate" -v b="${bad:-0}" 'BEGIN { print ((r >= 15000 && b == 0) ? "yes" : "no") }')
		elif [ "$dur" = full ] && [ "$c" = 64 ]; then
			target="≥ 50 % of ceiling, p99 < 10 ms"
			met=$(awk -v f="$frac" -v p="$p99" 'BEGIN { print ((f >= 0.5 && p < 10) ? "yes" : "no") }')
		fi
		extra=""
		[ "${bad:-0}" != 0 ] && extra=" · **${bad} non-2xx**"
		[ "${err:-0}" != 0 ] && extra="$extra · ${err} socket errors"
		row "intake$on: POST /jobs noop 200 B, durability=$dur, $c conn" \
			"$(commas "$rate") jobs/s · p50 $p50 ms · p99 $p99 ms · $pc % of ceiling$extra" \
			"$target" "$met"
		[ "${bad:-0}" = 0 ] || note "intake$on $dur c$c: $bad answers were not 2xx"
	done
	stop_daemon
	stored=$(sq "SELECT count(*) FROM jobs")
	if [ "${stored:-0}" -lt "$posted" ]; then
		INTEGRITY_BAD=1
		note "intake$on $dur: $posted POSTs answered 2xx but only ${stored:-?} jobs in the store"
	fi
	integrity "intake$on $dur"
	drop_store
}

# ------------------------------------------------------------------- 2b --
# Batch intake (issue 15): POST /jobs with arrays of 100 and of 1,000 noop
# jobs (batch.lua) at 16 connections, durability full, beside single-job
# POSTs at 16 connections on the same daemon (workers.threads = 2,
# max_queued high enough for what comes in).  MODE drain: the workers
# drain as the jobs come in (as in scenario 1+2: each job also costs a
# claim and a completion); MODE held: every worker is held by a block job
# (intake alone, as a preload).
batch_scenario() {      # MODE
	mode=$1
	say "batch intake, durability=full, 16 conn (workers.threads=2, $mode)"
	start_daemon "batch-$mode" full 2 100000000
	[ "$mode" = held ] && block 2
	posted=0
	if [ "$mode" = held ]; then how="workers held"; else how="workers draining"; fi
	for n in 1 100 1000; do
		out=$TMP/batch-$mode-$n.out
		if [ "$n" = 1 ]; then
			run_wrk "$out" -t2 -c16 -d"${INTAKE_SECS}s" --latency \
				-s "$BENCH/post.lua" "$URL/jobs"
			what="single POST /jobs (1 job per request)"
		else
			run_wrk "$out" -t2 -c16 -d"${INTAKE_SECS}s" --timeout 10s \
				--latency -s "$BENCH/batch.lua" "$URL/jobs" -- "$n"
			what="batch POST /jobs of $n jobs"
		fi
		req=$(bench_val "$out" requests)
		bad=$(bench_val "$out" non2xx)
		okn=$(( (${req:-0} - ${bad:-0}) * n ))
		posted=$((posted + okn))
		rate=$(per_sec "$okn" "$(bench_val "$out" duration_us)" 1e6)
		p50=$(ms "$(bench_val "$out" p50_us)")
		p99=$(ms "$(bench_val "$out" p99_us)")
		echo "   batch n=$n c16 ($how): $rate jobs/s, request p50 $p50 ms p99 $p99 ms, non-2xx ${bad:-?}"
		target="—" met=""
		if [ "$n" -gt 1 ]; then
			target="≥ 150,000 jobs/s (issue 15)"
			met=$(awk -v r="$rate" -v b="${bad:-0}" 'BEGIN { print ((r >= 150000 && b == 0) ? "yes" : "no") }')
		fi
		extra=""
		[ "${bad:-0}" != 0 ] && extra=" · **${bad} non-2xx**"
		row "batch intake: $what, noop 200 B, durability=full, 16 conn, $how" \
			"$(commas "$rate") jobs/s · request p50 $p50 ms · p99 $p99 ms$extra" \
			"$target" "$met"
		[ "${bad:-0}" = 0 ] || note "batch $mode n=$n: $bad answers were not 2xx"
	done
	[ "$mode" = held ] && unblock
	stop_daemon
	stored=$(sq "SELECT count(*) FROM jobs WHERE type = 'noop'")
	if [ "${stored:-0}" -lt "$posted" ]; then
		INTEGRITY_BAD=1
		note "batch $mode: $posted jobs answered 2xx but only ${stored:-?} jobs in the store"
	fi
	integrity "batch $mode"
	drop_store
}

# ------------------------------------------------------------------- 2c --
# Promotion (issue 15): the cost of a dependency's success for its
# dependents.  One daemon per run (durability full, 2 workers): a gate job
# (exec: cat of a FIFO) runs; N noop jobs depending on it are submitted in
# batches of up to 1,000 and wait; the FIFO is opened and closed, the gate
# succeeds, and the transaction of its end promotes the N jobs.  Measured:
# the time from letting the gate go until GET /metrics shows no job
# waiting (polled back to back; the gate's exit, its completion's
# transaction with the promotion, and a scrape's resolution of a few ms),
# and from the store the last dependent's finished_at − the gate's
# finished_at.  Run with 1 dependent, then with DEPS_N: the difference is
# the promotion's cost.
deps_run() {            # N: sets DEPS_SEEN_MS DEPS_ALL_MS DEPS_BAD
	n=$1
	DEPS_BAD=""
	start_daemon "deps-$n" full 2
	mkfifo "$DDIR/gate.fifo" || die "mkfifo"
	gate=$(post_job '{"type":"gate"}')
	[ -n "$gate" ] || die "could not submit the gate job"
	left=$n
	while [ "$left" -gt 0 ]; do
		k=$left
		[ "$k" -gt 1000 ] && k=1000
		awk -v k="$k" -v g="$gate" 'BEGIN { printf "["
			for (i = 0; i < k; i++)
				printf "%s{\"type\":\"noop\",\"depends_on\":[\"%s\"]}", (i ? "," : ""), g
			printf "]" }' >"$DDIR/deps.json"
		code=$(curl -s -m 60 -o "$DDIR/deps.out" -w '%{http_code}' \
			-H 'Content-Type: application/json' \
			--data-binary "@$DDIR/deps.json" "$URL/jobs")
		[ "$code" = 202 ] || { DEPS_BAD="a batch answered $code: $(head -c 300 "$DDIR/deps.out")"; break; }
		left=$((left - k))
	done
	if [ -z "$DEPS_BAD" ]; then
		w=$(curl -s -m 5 "$URL/metrics" | sed -n 's/^jobd_jobs{status="waiting"} \([0-9]*\).*/\1/p')
		[ "$w" = "$n" ] || DEPS_BAD="$w jobs waiting, $n expected"
	fi
	t0=$(now_ms)
	: >"$DDIR/gate.fifo"    # cat reads EOF: the gate succeeds
	# Polled without a pause (one curl at a time) until none waits.
	DEPS_SEEN_MS=""
	while [ "$(($(now_ms) - t0))" -lt $((DRAIN_CAP * 1000)) ]; do
		w=$(curl -s -m 5 "$URL/metrics" | sed -n 's/^jobd_jobs{status="waiting"} \([0-9]*\).*/\1/p')
		if [ "$w" = 0 ]; then DEPS_SEEN_MS=$(($(now_ms) - t0)); break; fi
	done
	[ -n "$DEPS_SEEN_MS" ] || DEPS_BAD="${DEPS_BAD:-still $w waiting after ${DRAIN_CAP} s}"
	drain_wait "$n" "$DRAIN_CAP" "$t0" || DEPS_BAD="${DEPS_BAD:-$DR_LEFT jobs left after ${DRAIN_CAP} s}"
	stop_daemon
	gf=$(sq "SELECT finished_at FROM jobs WHERE type = 'gate'")
	DEPS_ALL_MS=$(sq "SELECT (max(finished_at) - $gf) / 1000.0 FROM jobs WHERE type = 'noop'")
	ran=$(sq "SELECT count(*) FROM jobs WHERE type = 'noop' AND status = 'succeeded' AND started_at >= $gf")
	[ "$ran" = "$n" ] || DEPS_BAD="${DEPS_BAD:-only $ran of $n dependents ran after the gate}"
	integrity "deps $n"
	drop_store
}

deps_scenario() {
	on=""
	[ "$STORE" = pg ] && on=" on PostgreSQL"
	say "promotion$on: a gate job with 1, then $DEPS_N dependents"
	deps_run 1
	one_seen=$DEPS_SEEN_MS one_bad=$DEPS_BAD
	deps_run "$DEPS_N"
	echo "   promotion$on: none waiting $one_seen ms after the gate went with 1 dependent, $DEPS_SEEN_MS ms with $DEPS_N; all done +$DEPS_ALL_MS ms ${DEPS_BAD:+($DEPS_BAD)}"
	res=$(awk -v a="${one_seen:-0}" -v b="${DEPS_SEEN_MS:-0}" -v c="${DEPS_ALL_MS:-0}" -v n="$DEPS_N" -v ns="$(commas "$DEPS_N")" \
		'BEGIN { printf "none waiting %d ms after the gate was let go (%d ms with 1 dependent: promotion ≈ %d ms, %.1f µs per dependent); the %s dependents all done %.0f ms after the gate ended", b, a, b - a, (b - a) * 1000 / n, ns, c }')
	[ -n "$DEPS_BAD$one_bad" ] && { res="$res · **$DEPS_BAD$one_bad**"; INTEGRITY_BAD=1; note "deps$on: $DEPS_BAD$one_bad"; }
	row "promotion$on: one job's success makes $(commas "$DEPS_N") waiting dependents queued (one transaction), durability=full" \
		"$res" "proportional to the edges (issue 15)" ""
}

# -------------------------------------------------------------------- 3 --
# On PostgreSQL (STORE=pg) with caps of its own (PG_PRELOAD_CAP,
# PG_DRAIN_CAP) and its target (issue 13).
drain_scenario() {      # WORKERS
	w=$1
	if [ "$STORE" = pg ]; then
		on=" on PostgreSQL" sname=pg pcap=$PG_PRELOAD_CAP dcap=$PG_DRAIN_CAP
		goal=20000 gtext="≥ 20,000 jobs/s, no job run twice (issue 13)"
	else
		on="" sname="" pcap=$PRELOAD_CAP dcap=$DRAIN_CAP
		goal=30000 gtext="≥ 30,000 jobs/s, no job run twice"
	fi
	say "drain $DRAIN_JOBS noop jobs$on, workers.threads=$w, durability=full"
	start_daemon "drain-$sname$w" full "$w"
	block "$w"
	preload noop "$DRAIN_JOBS" 0 "$pcap"
	queued=$(readyz queued)
	echo "   preloaded ${queued:-?} jobs in $PRE_MS ms (wrk: $(bench_val "$PRE_OUT" s202) x 202, $(bench_val "$PRE_OUT" sother) other)"
	t0=$(now_ms)
	unblock
	if drain_wait "${queued:-0}" "$dcap" "$t0"; then complete=1; else complete=0; fi
	stop_daemon
	ok=$(sq "SELECT count(*) FROM jobs WHERE type = 'noop' AND status = 'succeeded'")
	notok=$(sq "SELECT count(*) FROM jobs WHERE type = 'noop' AND status NOT IN ('succeeded', 'queued')")
	twice=$(sq "SELECT count(*) FROM jobs WHERE type = 'noop' AND status = 'succeeded' AND attempt != 1")
	span=$(sq "SELECT max(finished_at) - min(started_at) FROM jobs WHERE type = 'noop' AND status = 'succeeded'")
	integrity "drain$on w=$w"
	if [ "$complete" = 1 ]; then
		rate=$(per_sec "$queued" "${span:-0}" 1e6)
		res="$(commas "$queued") jobs in $(ms "$((${span:-0} / 1000))") s (first start to last finish, from the store) = $(commas "$rate") jobs/s; /readyz showed none left $(ms "$DR_MS") s after the unblock (polled every 0.25 s)"
	else
		done_n=$((queued - DR_LEFT))
		rate=$(per_sec "$done_n" "$DR_MS" 1000)
		res="**incomplete**: $(commas "$done_n") of $(commas "$queued") done after $(ms "$DR_MS") s = $(commas "$rate") jobs/s"
		note "drain$on w=$w: stopped waiting after ${dcap} s with $DR_LEFT jobs left"
	fi
	[ "${queued:-0}" = "$DRAIN_JOBS" ] ||
		note "drain$on w=$w: preload queued ${queued:-?} jobs, not $DRAIN_JOBS (cap ${pcap} s)"
	[ "${notok:-0}" = 0 ] || note "drain$on w=$w: $notok noop jobs ended other than succeeded"
	res="$res; succeeded $(commas "${ok:-0}"); attempt ≠ 1: ${twice:-?}"
	met=$(awk -v r="$rate" -v c="$complete" -v t="${twice:-1}" -v q="${queued:-0}" -v n="$DRAIN_JOBS" -v s="${ok:-0}" -v g="$goal" \
		'BEGIN { print ((c == 1 && q == n && s == n && r >= g && t == 0) ? "yes" : "no") }')
	echo "   $res"
	row "drain$on: $(commas "$DRAIN_JOBS") queued noop, workers.threads=$w, durability=full" \
		"$res" "$gtext" "$met"
	drop_store
}

# ------------------------------------------------------------------- 3b --
# Short work beside long work (issue 12): 4 workers, 2 of them kept on long
# sleeps, MIXED_JOBS noop jobs drained by the other 2.
mixed_scenario() {
	say "drain $MIXED_JOBS noop jobs beside 2 long jobs, workers.threads=4"
	start_daemon mixed full 4
	block 4
	preload noop "$MIXED_JOBS" 0 "$PRELOAD_CAP"
	queued=$(readyz queued)
	echo "   preloaded ${queued:-?} jobs in $PRE_MS ms"
	set -- $BLOCKERS
	t0=$(now_ms)
	for id in $1 $2; do
		curl -s -m 5 -o /dev/null -X DELETE "$URL/jobs/$id"
	done
	# The other two keep their workers: the drain ends at running = 2.
	deadline=$((t0 + DRAIN_CAP * 1000))
	complete=0
	while [ "$(now_ms)" -lt "$deadline" ]; do
		st=$(curl -s -m 2 "$URL/readyz")
		if [ "$(json_int "$st" queued)" = 0 ]; then complete=1; break; fi
		sleep 0.25
	done
	DR_MS=$(($(now_ms) - t0))
	stop_daemon
	ok=$(sq "SELECT count(*) FROM jobs WHERE type = 'noop' AND status = 'succeeded'")
	span=$(sq "SELECT max(finished_at) - min(started_at) FROM jobs WHERE type = 'noop' AND status = 'succeeded'")
	integrity "mixed"
	rate=$(per_sec "${ok:-0}" "${span:-0}" 1e6)
	if [ "$complete" = 1 ]; then
		res="$(commas "${ok:-0}") jobs in $(ms "$((span / 1000))") s = $(commas "$rate") jobs/s on the 2 free workers"
	else
		res="**incomplete** after $(ms "$DR_MS") s: $(commas "${ok:-0}") of $(commas "${queued:-0}") = $(commas "$rate") jobs/s"
	fi
	met=$(awk -v r="$rate" -v c="$complete" 'BEGIN { print ((c == 1 && r >= 30000) ? "yes" : "no") }')
	echo "   $res"
	row "drain beside long jobs: $(commas "$MIXED_JOBS") queued noop, 4 workers, 2 on 600 s sleeps" \
		"$res" "≥ 30,000 jobs/s (issue 18)" "$met"
	rm -rf "$DDIR"
}

# -------------------------------------------------------------------- 4 --
exec_scenario() {
	say "exec drain $EXEC_JOBS x /bin/true, workers.threads=$NCPU; spawn ceiling"
	start_daemon exec full "$NCPU"
	block "$NCPU"
	preload true "$EXEC_JOBS" 0 "$PRELOAD_CAP"
	queued=$(readyz queued)
	echo "   preloaded ${queued:-?} exec jobs in $PRE_MS ms"
	t0=$(now_ms)
	unblock
	if drain_wait "${queued:-0}" "$EXEC_CAP" "$t0"; then complete=1; else complete=0; fi
	stop_daemon
	ok=$(sq "SELECT count(*) FROM jobs WHERE type = 'true' AND status = 'succeeded'")
	bad=$(sq "SELECT count(*) FROM jobs WHERE type = 'true' AND (status = 'failed' OR attempt > 1)")
	span=$(sq "SELECT max(finished_at) - min(started_at) FROM jobs WHERE type = 'true' AND status = 'succeeded'")
	integrity "exec drain"
	if [ "${bad:-0}" != 0 ]; then
		note "exec drain: $bad jobs failed or were retried; first error: $(sq "SELECT coalesce(error, '') || ' exit=' || coalesce(exit_code, '') FROM jobs WHERE type = 'true' AND (status = 'failed' OR attempt > 1) LIMIT 1")"
	fi
	rm -rf "$DDIR"
	done_n=$((queued - DR_LEFT))
	if [ "$complete" = 1 ]; then
		rate=$(per_sec "$queued" "${span:-0}" 1e6)
	else
		rate=$(per_sec "$done_n" "$DR_MS" 1000)
	fi

	cc -O2 -pthread -o "$TMP/spawn_ceiling" "$BENCH/spawn_ceiling.c" ||
		die "cannot build spawn_ceiling"
	sout=$("$TMP/spawn_ceiling" "$SPAWN_N" "$NCPU")
	echo "   spawn ceiling: $sout"
	srate=$(echo "$sout" | sed -n 's/.*rate=\([0-9]*\).*/\1/p')
	pc=$(pct "$rate" "${srate:-0}")
	row "spawn ceiling: posix_spawn + waitpid of /bin/true, $NCPU threads, $(commas "$SPAWN_N") spawns" \
		"$(commas "${srate:-0}") spawns/s" "reference" ""
	if [ "$complete" = 1 ]; then
		res="$(commas "$queued") jobs in $(ms "$((span / 1000))") s (first start to last finish, from the store) = $(commas "$rate") jobs/s = $pc % of spawn ceiling; /readyz showed none left $(ms "$DR_MS") s after the unblock"
	else
		res="**incomplete**: $(commas "$done_n") of $(commas "$queued") after $(ms "$DR_MS") s = $(commas "$rate") jobs/s = $pc % of spawn ceiling"
		note "exec drain: stopped waiting after ${EXEC_CAP} s with $DR_LEFT jobs left"
	fi
	res="$res; succeeded $(commas "${ok:-0}"), failed or retried ${bad:-?}"
	echo "   $res"
	met=$(awk -v p="$pc" -v c="$complete" -v b="${bad:-1}" 'BEGIN { print ((c == 1 && b == 0 && p >= 70) ? "yes" : "no") }')
	row "exec drain: $(commas "$EXEC_JOBS") jobs of \`command = /bin/true\`, workers.threads=$NCPU" \
		"$res" "≥ 70 % of spawn ceiling" "$met"
}

# -------------------------------------------------------------------- 5 --
pickup_scenario() {
	say "pickup latency: $PICKUP_JOBS jobs one at a time (workers.threads=2, durability=full)"
	start_daemon pickup full 2
	preload noop "$PICKUP_JOBS" 0 "$PICKUP_CAP" 5
	out=$PRE_OUT
	stop_daemon
	integrity "pickup"
	sq "SELECT started_at - created_at FROM jobs WHERE type = 'noop' AND started_at IS NOT NULL ORDER BY 1" >"$TMP/pickup.txt"
	rm -rf "$DDIR"
	# shellcheck disable=SC2046 # four numbers, split on purpose
	set -- $(awk '{ v[NR] = $1 } END {
		if (NR == 0) { print "0 - - -"; exit }
		i50 = int((NR * 50 + 99) / 100); i99 = int((NR * 99 + 99) / 100)
		print NR, v[i50], v[i99], v[NR] }' "$TMP/pickup.txt")
	n=$1 p50=$2 p99=$3 max=$4
	rt50=$(ms "$(bench_val "$out" p50_us)")
	rt99=$(ms "$(bench_val "$out" p99_us)")
	s200=$(bench_val "$out" s200)
	res="p50 $(ms "$p50") ms · p99 $(ms "$p99") ms · max $(ms "$max") ms over $(commas "$n") jobs (stored in µs); submit→finished round trip p50 $rt50 ms · p99 $rt99 ms; ${s200:-?} answered 200 (finished within the wait)"
	echo "   $res"
	[ "$n" = "$PICKUP_JOBS" ] || note "pickup: only $n of $PICKUP_JOBS jobs ran within ${PICKUP_CAP} s"
	# Stored times are µs since the epoch.
	met=$(awk -v p="$p99" -v n="$n" -v w="$PICKUP_JOBS" 'BEGIN {
		print ((n == w && p != "-" && p + 0 < 1000) ? "yes" : "no") }')
	row "pickup latency: started_at − created_at, $(commas "$PICKUP_JOBS") jobs one at a time" \
		"$res" "p99 < 1 ms" "$met"
}

# -------------------------------------------------------------------- 6 --
memory_scenario() {
	say "memory: RSS with $MEM_JOBS queued jobs (workers.threads=2, durability=full)"
	start_daemon memory full 2 $((MEM_JOBS + MEM_JOBS / 10))
	idle=$(awk '/^VmRSS/ { print $2 }' "/proc/$DPID/status")
	block 2
	preload noop "$MEM_JOBS" 0 "$MEM_CAP"
	queued=$(readyz queued)
	sleep 1
	rss=$(awk '/^VmRSS/ { print $2 }' "/proc/$DPID/status")
	hwm=$(awk '/^VmHWM/ { print $2 }' "/proc/$DPID/status")
	dbsize=$(du -sk "$DDIR" | awk '{ print $1 }')
	echo "   queued ${queued:-?} in $PRE_MS ms; VmRSS $rss kB, VmHWM $hwm kB (idle $idle kB); store $dbsize kB"
	stop_daemon
	integrity "memory"
	rm -rf "$DDIR"
	mib() { awk -v k="$1" 'BEGIN { printf "%.1f", k / 1024 }'; }
	res="$(mib "${rss:-0}") MiB VmRSS with $(commas "${queued:-0}") queued (peak VmHWM $(mib "${hwm:-0}") MiB; idle $(mib "${idle:-0}") MiB; store $(mib "$dbsize") MiB on disk; preload $(commas "$(per_sec "${queued:-0}" "$PRE_MS" 1000)") jobs/s)"
	if [ "${queued:-0}" != "$MEM_JOBS" ]; then
		res="**only $(commas "${queued:-0}") of $(commas "$MEM_JOBS") queued within ${MEM_CAP} s**: $res"
		note "memory: the preload reached ${queued:-0} of $MEM_JOBS jobs in ${MEM_CAP} s"
	fi
	met=$(awk -v r="${rss:-0}" -v q="${queued:-0}" -v n="$MEM_JOBS" 'BEGIN { print ((q == n && r > 0 && r < 65536) ? "yes" : "no") }')
	row "memory: daemon RSS with $(commas "$MEM_JOBS") queued jobs" "$res" "< 64 MiB" "$met"
}

# ------------------------------------------------------------ P1 + P2 --
# pg_up: the private PostgreSQL runs (started by the first caller).
# PG_STATE: "" (not tried yet), up, none (no binaries), failed.
PG_STATE=""
PG_DESC=""
pg_up() {
	case $PG_STATE in
	up) return 0 ;;
	none | failed) return 1 ;;
	esac
	say "private PostgreSQL (tests/pg/pg.sh)"
	pg_server_start
	case $? in
	0)
		PG_STATE=up
		show() { pg_psql postgres -At -c "SHOW $1"; }
		PG_DESC="PostgreSQL $(show server_version) (private server of tests/pg/pg.sh, $PGDIR on $(df -PT "$PGDIR" 2>/dev/null | awk 'NR == 2 { print $2 }')), fsync = $(show fsync), synchronous_commit = $(show synchronous_commit), full_page_writes = $(show full_page_writes), shared_buffers = $(show shared_buffers), max_wal_size = $(show max_wal_size)"
		echo "   $PG_DESC"
		;;
	77)
		PG_STATE=none
		note "PostgreSQL: no server binaries under /usr/lib/postgresql/*/bin (scripts/deps.sh installs Debian's postgresql): its rows are skipped"
		;;
	*)
		PG_STATE=failed
		note "PostgreSQL: the private server did not start (tests/pg/pg.sh said why, above): its rows were not measured"
		;;
	esac
	[ "$PG_STATE" = up ]
}

# pg_scenario FUNCTION ARG: one scenario on PostgreSQL, or its row saying
# why not.
pg_scenario() {
	if pg_up; then
		STORE=pg
		"$@"
		STORE=sqlite
		return
	fi
	if [ "$PG_STATE" = none ]; then
		why="skipped: no PostgreSQL" met=""
	else
		why="**not measured**: the private PostgreSQL did not start" met="no"
	fi
	case $1 in
	intake_scenario)
		row "intake on PostgreSQL: POST /jobs noop 200 B, durability=$2, 64 conn" \
			"$why" "≥ 15,000 jobs/s (issue 13)" "$met" ;;
	drain_scenario)
		row "drain on PostgreSQL: $(commas "$DRAIN_JOBS") queued noop, workers.threads=$2, durability=full" \
			"$why" "≥ 20,000 jobs/s, no job run twice (issue 13)" "$met" ;;
	scale_scenario)
		row "P3 capacity scaling on PostgreSQL: 1 vs 2 vs 3 nodes, 50 ms sleeps" \
			"$why" "2 nodes ≥ 1.8×, 3 nodes ≥ 2.6× one node (issue 14)" "$met" ;;
	deps_scenario)
		row "promotion on PostgreSQL: $(commas "$DEPS_N") dependents" \
			"$why" "proportional to the edges (issue 15)" "$met" ;;
	p4_scenario)
		row "P4 drain on PostgreSQL: $(commas "$P4_JOBS") queued noop, 1 and 2 nodes" \
			"$why" "report only (issue 14)" "" ;;
	esac
}

# ------------------------------------------------------------ P3 + P4 --
# Several nodes on one PostgreSQL database (issue 14, item 7).  Each run
# starts COUNT daemons (nodes n1..nCOUNT, lease 30 s, store.pool as
# default) on one fresh database, holds every worker of every node with a
# block job, preloads the jobs through node n1, then cancels each block job
# on the node that runs it (all nodes at once) and polls the store until
# no job of the type is queued or running.  The rate is the jobs divided
# by the store's span, max(finished_at) - min(started_at).

# nodes_block PER_NODE COUNT: hold PER_NODE workers on each of COUNT nodes
# with block jobs (submitted on n1; the other nodes take theirs at their
# next claim poll, within a second).  Fails the run after 15 s.
nodes_block() {
	total=$(($1 * $2))
	i=0
	while [ "$i" -lt "$total" ]; do
		post_job '{"type":"block","priority":100,"payload":{"seconds":600}}' \
			>/dev/null
		i=$((i + 1))
	done
	i=0
	while [ "$i" -lt 60 ]; do
		held=$(sq "SELECT count(*) FROM jobs WHERE type = 'block' AND status = 'running'")
		[ "$held" = "$total" ] && return 0
		sleep 0.25
		i=$((i + 1))
	done
	die "the $2 nodes did not claim the $total block jobs in 15 s (running: ${held:-?})"
}

# nodes_unblock: cancel every block job on the node that runs it (a DELETE
# sent to another node would reach it only at its next heartbeat), one curl
# per node, all nodes at once.
nodes_unblock() {
	k=1
	cpids=""
	for u in $NODE_URLS; do
		urls=$(sq "SELECT '$u/jobs/' || id FROM jobs WHERE type = 'block' AND status = 'running' AND node IN (SELECT boot FROM nodes WHERE name = 'n$k')")
		if [ -n "$urls" ]; then
			# shellcheck disable=SC2086 # one URL per word
			curl -s -m 10 -X DELETE $urls >/dev/null &
			cpids="$cpids $!"
		fi
		k=$((k + 1))
	done
	for p in $cpids; do wait "$p"; done
}

# nodes_drain_wait TYPE CAP_S T0: poll the store until no TYPE job is
# queued or running, at most CAP_S s after T0 (ms).  Sets DR_MS, DR_LEFT.
nodes_drain_wait() {
	deadline=$(($3 + $2 * 1000))
	while :; do
		DR_LEFT=$(sq "SELECT count(*) FROM jobs WHERE type = '$1' AND status IN ('queued', 'running')")
		DR_MS=$(($(now_ms) - $3))
		[ "${DR_LEFT:-x}" = 0 ] && return 0
		[ "$(now_ms)" -ge "$deadline" ] && return 1
		sleep 0.25
	done
}

# nodes_run NAME TYPE JOBS COUNT WORKERS: one measured run.  Sets SC_RATE
# (jobs/s, 0 when incomplete or not every job succeeded once), SC_RES (the
# result text) and SC_OK (1 when complete and clean).
nodes_run() {
	say "$1: $3 $2 jobs, $4 node(s) x workers.threads=$5 on one database"
	start_nodes "$1" "$4" "$5"
	nodes_block "$5" "$4"
	preload "$2" "$3" 0 "$PG_PRELOAD_CAP"
	queued=$(sq "SELECT count(*) FROM jobs WHERE type = '$2' AND status = 'queued'")
	echo "   preloaded ${queued:-?} jobs in $PRE_MS ms (wrk: $(bench_val "$PRE_OUT" s202) x 202, $(bench_val "$PRE_OUT" sother) other)"
	t0=$(now_ms)
	nodes_unblock
	if nodes_drain_wait "$2" "$SCALE_CAP" "$t0"; then complete=1; else complete=0; fi
	# jobs.node is the boot id of the node that ran the job; the nodes'
	# names are in jobd.nodes while they run
	split=$(sq "SELECT string_agg(name || ' ' || n, ', ' ORDER BY name) FROM (SELECT coalesce(d.name, '?') AS name, count(*) n FROM jobs j LEFT JOIN nodes d ON d.boot = j.node WHERE j.type = '$2' AND j.status = 'succeeded' GROUP BY 1) s")
	stop_nodes
	ok=$(sq "SELECT count(*) FROM jobs WHERE type = '$2' AND status = 'succeeded'")
	notok=$(sq "SELECT count(*) FROM jobs WHERE type = '$2' AND status NOT IN ('succeeded', 'queued')")
	twice=$(sq "SELECT count(*) FROM jobs WHERE type = '$2' AND attempt != 1 AND status != 'queued'")
	span=$(sq "SELECT max(finished_at) - min(started_at) FROM jobs WHERE type = '$2' AND status = 'succeeded'")
	integrity "$1"
	SC_OK=0
	if [ "$complete" = 1 ]; then
		SC_RATE=$(per_sec "${ok:-0}" "${span:-0}" 1e6)
		SC_RES="$(commas "${ok:-0}") jobs in $(ms "$((${span:-0} / 1000))") s (first start to last finish, from the store) = $(commas "$SC_RATE") jobs/s; per node: ${split:-?}"
		[ "${ok:-0}" = "$3" ] && [ "${queued:-0}" = "$3" ] &&
			[ "${twice:-1}" = 0 ] && SC_OK=1
	else
		SC_RATE=$(per_sec "$((${queued:-0} - ${DR_LEFT:-0}))" "$DR_MS" 1000)
		SC_RES="**incomplete**: $(commas "$((${queued:-0} - ${DR_LEFT:-0}))") of $(commas "${queued:-0}") done after $(ms "$DR_MS") s = $(commas "$SC_RATE") jobs/s"
		note "$1: stopped waiting after ${SCALE_CAP} s with ${DR_LEFT:-?} jobs left"
	fi
	[ "${queued:-0}" = "$3" ] ||
		note "$1: preload queued ${queued:-?} jobs, not $3 (cap ${PG_PRELOAD_CAP} s)"
	[ "${notok:-0}" = 0 ] || note "$1: ${notok} $2 jobs ended other than succeeded"
	[ "${twice:-0}" = 0 ] || note "$1: ${twice:-?} $2 jobs with attempt ≠ 1"
	SC_RES="$SC_RES; succeeded $(commas "${ok:-0}") of $(commas "$3"); attempt ≠ 1: ${twice:-?}"
	echo "   $SC_RES"
	drop_store
}

# P3: capacity scaling with 50 ms jobs, SCALE_THREADS workers per node.
scale_scenario() {
	SCALE_RAN=1
	base=""
	for n in $SCALE_NODES; do
		PRELOAD_PAYLOAD='{"seconds":0.05}'
		nodes_run "scale-$n" s50 "$SCALE_JOBS" "$n" "$SCALE_THREADS"
		PRELOAD_PAYLOAD=""
		what="P3 capacity scaling on PostgreSQL: $(commas "$SCALE_JOBS") queued 50 ms sleeps, $n node(s) × workers.threads=$SCALE_THREADS"
		if [ "$n" = 1 ]; then
			base=$SC_RATE
			[ "$SC_OK" = 1 ] || base=""
			row "$what" "$SC_RES" "reference (ideal $(commas "$((SCALE_THREADS * 20))") jobs/s per node)" ""
			continue
		fi
		case $n in
		2) goal=1.8 ;;
		3) goal=2.6 ;;
		*) goal="" ;;
		esac
		if [ -n "$base" ] && [ "$base" -gt 0 ]; then
			ratio=$(awk -v a="$SC_RATE" -v b="$base" 'BEGIN { printf "%.2f", a / b }')
			res="$SC_RES; **${ratio}× one node**"
		else
			ratio=0
			res="$SC_RES; no ratio (no clean 1-node run before it)"
		fi
		if [ -n "$goal" ]; then
			met=$(awk -v r="$ratio" -v g="$goal" -v ok="$SC_OK" 'BEGIN { print ((ok == 1 && r >= g) ? "yes" : "no") }')
			row "$what" "$res" "≥ ${goal}× one node (issue 14)" "$met"
		else
			row "$what" "$res" "—" ""
		fi
	done
}

# P4: drain of P4_JOBS noop jobs with 1 and 2 nodes (report only: CPU-bound
# on a 2-CPU machine, where the nodes share the CPUs with PostgreSQL).
p4_scenario() {
	for n in $P4_NODES; do
		nodes_run "p4-$n" noop "$P4_JOBS" "$n" "$P4_WORKERS"
		row "P4 drain on PostgreSQL: $(commas "$P4_JOBS") queued noop, $n node(s) × workers.threads=$P4_WORKERS" \
			"$SC_RES" "report only (issue 14)" ""
	done
}

# BENCH_ONLY="exec pickup" runs some scenarios only (for a quick look; the
# table then has only their rows).  "intake" and "drain" name the
# PostgreSQL ones too; "scale" names P3 and P4.  The SQLite scenarios run first, all of them before
# the PostgreSQL server starts, so that it is not running beside them.
only() {
	[ -z "${BENCH_ONLY:-}" ] && return 0
	case " $BENCH_ONLY " in *" $1 "*) return 0 ;; esac
	return 1
}
if has_store sqlite; then
	if only intake; then intake_scenario full; intake_scenario normal; fi
	if only batch; then batch_scenario drain; batch_scenario held; fi
	if only deps; then deps_scenario; fi
	if only drain; then drain_scenario 2; drain_scenario 8; fi
	if only mixed; then mixed_scenario; fi
	if only exec; then exec_scenario; fi
	if only pickup; then pickup_scenario; fi
	if only memory; then memory_scenario; fi
fi
if has_store pg; then
	if only intake; then pg_scenario intake_scenario full; fi
	if only drain; then
		for w in $PG_DRAIN_WORKERS; do pg_scenario drain_scenario "$w"; done
	fi
	if only deps; then pg_scenario deps_scenario; fi
	if only scale; then
		pg_scenario scale_scenario
		pg_scenario p4_scenario
	fi
	pg_server_stop
fi

T_TOTAL=$(($(now_ms) - T_START))
if [ "$INTEGRITY_BAD" = 0 ]; then
	row "integrity: every 2xx POST stored; no job ran twice; no daemon died (all scenarios)" "yes" "required" "yes"
else
	row "integrity: every 2xx POST stored; no job ran twice; no daemon died (all scenarios)" "**no** (see notes)" "required" "no"
fi

# ------------------------------------------------------------- report --
commit=$(git -C "$ROOT" describe --always --dirty --abbrev=12 2>/dev/null || echo unknown)
model=$(awk -F': *' '/^model name/ { print $2; exit }' /proc/cpuinfo)
fs=$(df -PT "$TMP" 2>/dev/null | awk 'NR == 2 { print $2 " (" $1 ")" }')
mem=$(awk '/^MemTotal/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo)
libs="SQLite $(sqlite3 -version | awk '{ print $1 }'), libmicrohttpd $(pkg-config --modversion libmicrohttpd 2>/dev/null || echo '?'), $(wrk -v 2>&1 | awk 'NR == 1 { print $1, $2 }')"
day=$(date +%F)
mkdir -p "$BENCH/results"
report=$BENCH/results/$day.md
# A partial run (BENCH_ONLY, or no SQLite) does not replace the day's full
# table.
partial=""
if [ -n "${BENCH_ONLY:-}" ] || ! has_store sqlite; then partial=1; fi
[ -z "$partial" ] || report=$TMP/partial.md
{
	echo "# jobd benchmark, $day"
	echo
	echo "- machine: $NCPU CPUs ($model), $mem RAM, kernel $(uname -r)"
	echo "- jobd commit: $commit"
	echo "- store: temp dir on $fs; $libs"
	echo "- load generator (wrk, curl) on the same machine, over 127.0.0.1"
	echo "- run time: $(ms "$T_TOTAL") s (\`make bench\`, tests/bench/run.sh)"
	echo
	echo "| measurement | result | target (issue 5) | met |"
	echo "|---|---|---|---|"
	cat "$ROWS"
	if [ -s "$NOTES" ]; then
		echo
		echo "Notes:"
		echo
		cat "$NOTES"
	fi
	echo
	echo "Method: each scenario runs its own daemon (fresh store, log_level = warning)."
	echo "Intake runs with workers.threads = 2 draining as configured; ratios divide by"
	echo "the ceiling measured on the same daemon just before.  Drain and memory"
	echo "preloads hold every worker with a \`block\` job (builtin sleep) while the jobs"
	echo "are POSTed, then cancelled.  A drain's rate is its jobs divided by the"
	echo "store's span, max(finished_at) − min(started_at) (µs timestamps); the"
	echo "bench polls GET /readyz only every 0.25 s to know when it is over, since"
	echo "each poll runs processes that would compete with the drain.  Latencies are"
	echo "wrk's (coordinated omission not corrected)."
	if [ -n "$PG_DESC" ]; then
		echo
		echo "PostgreSQL rows: the same daemon, method, wrk scripts and preload with"
		echo "\`[store] path = postgresql://…\` (store.pool = 4, the default) on $PG_DESC;"
		echo "the server ran on the same $NCPU CPUs as jobd and wrk, over 127.0.0.1, after"
		echo "the SQLite scenarios (it was not running during them), with a fresh"
		echo "database per scenario.  Stored counts and the integrity checks are read"
		echo "with psql from jobd.jobs."
	fi
	if [ -n "$SCALE_RAN" ]; then
		echo
		echo "P3 and P4: N daemons (nodes n1..nN, lease 30 s) on one fresh database per"
		echo "run, every worker of every node held by a block job while the jobs were"
		echo "POSTed to n1, each block job then cancelled on its own node (all nodes at"
		echo "once), the drain timed from the store.  Idle nodes do not poll: a commit"
		echo "that leaves due work its node cannot take wakes them (LISTEN/NOTIFY); here"
		echo "every node also claims again as soon as a worker frees up.  P3's 50 ms"
		echo "jobs wait rather than compute: one node's"
		echo "ceiling is workers.threads × 20 jobs/s."
	fi
} >"$report"
echo
cat "$report"
echo
[ -n "$partial" ] || echo "written to ${report#"$ROOT"/}"
