#!/bin/sh
# tests/pg/bench.sh - PostgreSQL's own figures on this machine, for the
# design of store_pg.c (docs/postgres-store.md §9).  Not part of `make
# check`: it takes about three minutes and its numbers are noise-prone on a
# shared machine.  Loopback only, a private server (tests/pg/pg.sh), removed
# at the end.
#
#   sh tests/pg/bench.sh [SECONDS]     each pgbench run lasts SECONDS (10)
#
# It measures:
#  1. pgbench tpcb-like (scale 10, 8 clients) and select-only: the
#     server's ceiling here;
#  2. the plan of the claim, a fenced completion, a list page and counts
#     over 100k queued + 100k finished jobs (schema_proto.sql), without
#     statistics (a fresh table: the plan trap) and after ANALYZE;
#  3. intake of 64 jobs per transaction, one client (jobd's one writer):
#     one multi-row INSERT ... VALUES, one INSERT ... SELECT FROM unnest of
#     an array parameter, 64 one-row INSERTs in a pipeline; and 1 row per
#     transaction for the fsync floor;
#  4. drain with one client: claim 64 (FOR UPDATE SKIP LOCKED, by primary
#     key) and complete them (fenced by the claim token), as two
#     transactions, and as one transaction that completes the previous
#     batch and claims the next (the writer's cycle);
#  5. the same shapes from C through libpq (probe.c, compiled here), each
#     transaction one pipeline as store_pg.c will send it: intake by
#     multi-row VALUES, by unnest arrays, by one-row INSERTs; drain with
#     completions by array, per row pipelined, per row a round trip each.
# PROBE_SECS (default 5) is the length of each probe run.
set -u
secs=${1:-10}
here=$(dirname "$0")
d=$(mktemp -d /tmp/jobd-pgbench.XXXXXX)
w=$(mktemp -d /tmp/jobd-pgbench-w.XXXXXX)
trap 'sh "$here/pg.sh" stop "$d" >/dev/null 2>&1; rm -rf "$w"' EXIT
trap 'exit 1' INT TERM

# Durable as in production; enough memory that 300k rows stay cached, and
# no checkpoint in the middle of a 10 s run.
uri=$(JOBD_PG_CONF="shared_buffers = 256MB
max_wal_size = 2GB" sh "$here/pg.sh" start "$d") || exit $?
bin=$(cat "$d/pgbin")
psql="$bin/psql -X -q -v ON_ERROR_STOP=1 -d $uri"
pgb="$bin/pgbench -n -d $uri"

echo "# PostgreSQL $($psql -Atc 'show server_version'), $(nproc) CPUs, fsync=$($psql -Atc 'show fsync'), synchronous_commit=$($psql -Atc 'show synchronous_commit'), shared_buffers=$($psql -Atc 'show shared_buffers')"
echo "# $(date -u +%FT%TZ), load average $(cut -d' ' -f1-3 /proc/loadavg)"

tps() { sed -n 's/^tps = \([0-9.]*\).*/\1/p'; }
lat() { sed -n 's/^latency average = \(.*\)$/\1/p'; }

echo
echo "## 1. pgbench"
$pgb -i -q -s 10 >/dev/null 2>&1
out=$($pgb -c 8 -j 2 -T "$secs" 2>&1)
echo "tpcb-like, scale 10, 8 clients: $(echo "$out" | tps) tps, latency $(echo "$out" | lat)"
out=$($pgb -S -c 8 -j 2 -T "$secs" 2>&1)
echo "select-only, 8 clients: $(echo "$out" | tps) tps"
out=$($pgb -S -M prepared -c 8 -j 2 -T "$secs" 2>&1)
echo "select-only prepared, 8 clients: $(echo "$out" | tps) tps"
$psql -c 'DROP TABLE pgbench_accounts, pgbench_branches, pgbench_history, pgbench_tellers'

$psql -f "$here/schema_proto.sql" >/dev/null

now=1764547200000000
pl='{"to":"someone@example.com","subject":"hello there","body":"a payload of about two hundred bytes, like the jobs of the benchmarks, with some text","n":12345}'
cols="id, type, status, priority, max_attempts, timeout_ms, created_at, run_at, payload"

# ---- 2. plans over 200k rows, first without statistics ----
fill() {
	$psql <<-EOF
	ALTER TABLE jobd.jobs SET (autovacuum_enabled = false);
	INSERT INTO jobd.jobs ($cols)
	  SELECT jobd.uuid7(), (ARRAY['noop','echo','mail','report','sleep'])[1 + i % 5],
	         0, (i % 3) - 1, 3, 30000, $now + i, $now + i, '$pl'
	    FROM generate_series(1, $1) i;
	INSERT INTO jobd.jobs ($cols, finished_at, result)
	  SELECT jobd.uuid7(), 'noop', 2, 0, 3, 30000, $now, $now, '$pl', $now + i, 'null'
	    FROM generate_series(1, $2) i;
	UPDATE jobd.counts SET n = CASE status WHEN 0 THEN $1 WHEN 2 THEN $2 ELSE 0 END;
	EOF
}
# claim_sql FILTER: the claim of 64, pkey-driven (id = ANY(ARRAY(...))).
claim_sql() {
	echo "UPDATE jobd.jobs j SET status = 1, attempt = j.attempt + 1,
  started_at = $now, finished_at = NULL, claim = 'x:1', attempt_started = false,
  cancel_requested = false
 WHERE j.id = ANY (ARRAY(SELECT id FROM jobd.jobs
   WHERE status = 0 AND due AND $1
   ORDER BY priority DESC, id LIMIT 64 FOR UPDATE SKIP LOCKED))
RETURNING j.id"
}
inc="type = ANY ('{noop,echo,mail}'::text[])"
rare="type = ANY ('{report}'::text[])"
exc="type <> ALL ('{report,sleep}'::text[])"
list_sql="SELECT id, type, status FROM jobd.jobs WHERE status = 2 ORDER BY id DESC LIMIT 50"
# explain TITLE SQL [SETUP]: the plan of SQL, run and rolled back.
explain() {
	echo "-- $1"
	$psql -At <<-EOF | grep -v '^$' | grep -E -v '^(BEGIN|ROLLBACK|SET)$'
	BEGIN;
	${3:-}
	EXPLAIN (ANALYZE, COSTS OFF) $2;
	ROLLBACK;
	EOF
}
plans() {
	echo "### $1"
	explain "claim 64, included types: $inc" "$(claim_sql "$inc")"
	explain "claim 64, one rare included type: $rare" "$(claim_sql "$rare")"
	explain "claim 64, $rare, SET LOCAL enable_sort = off" "$(claim_sql "$rare")" \
		"SET LOCAL enable_sort = off;"
	explain "claim 64, held-back types: $exc" "$(claim_sql "$exc")"
	explain "list page (status = succeeded, 50)" "$list_sql"
	explain "count(*) by status" "SELECT status, count(*) FROM jobd.jobs GROUP BY status"
	explain "jobd.counts" "SELECT status, n FROM jobd.counts"
	# The completion gets the claimed ids as an array parameter, as
	# store_pg.c will pass them.
	echo "-- complete 64, fenced, ids as an array (after a claim of 64)"
	$psql -At <<-EOF | grep -v '^$' | grep -E -v '^(BEGIN|ROLLBACK)$'
	BEGIN;
	WITH c AS ($(claim_sql "$inc")) SELECT array_agg(id) AS ids FROM c \\gset
	PREPARE done(uuid[], text) AS UPDATE jobd.jobs SET status = 2, finished_at = $now,
	  result = 'null', claim = NULL, attempt_started = true
	 WHERE id = ANY (\$1) AND claim = \$2;
	EXPLAIN (ANALYZE, COSTS OFF) EXECUTE done(:'ids', 'x:1');
	ROLLBACK;
	EOF
}
echo
echo "## 2. plans, 100k queued + 100k succeeded"
fill 100000 100000
plans "no statistics (a fresh table, autovacuum off)"
$psql -c 'ANALYZE jobd.jobs'
plans "after ANALYZE"
$psql -c 'TRUNCATE jobd.jobs' -c 'ALTER TABLE jobd.jobs RESET (autovacuum_enabled)' \
	-c 'ANALYZE jobd.jobs'

# ---- 3. intake, 64 jobs per transaction ----
row="(jobd.uuid7(), 'noop', 0, 0, 3, 30000, :now, :now, :p)"
{
	printf 'BEGIN;\nINSERT INTO jobd.jobs (%s) VALUES %s' "$cols" "$row"
	i=1; while [ $i -lt 64 ]; do printf ', %s' "$row"; i=$((i + 1)); done
	printf ';\nUPDATE jobd.counts SET n = n + 64 WHERE status = 0;\nCOMMIT;\n'
} > "$w/values64.sql"
{
	printf 'BEGIN;\nINSERT INTO jobd.jobs (%s)\n' "$cols"
	printf '  SELECT jobd.uuid7(), %s, 0, 0, 3, 30000, :now, :now, p\n' "'noop'"
	printf '    FROM unnest(:parr::text[]) p;\n'
	printf 'UPDATE jobd.counts SET n = n + 64 WHERE status = 0;\nCOMMIT;\n'
} > "$w/unnest64.sql"
{
	printf '\\startpipeline\nBEGIN;\n'
	i=0; while [ $i -lt 64 ]; do
		printf 'INSERT INTO jobd.jobs (%s) VALUES %s;\n' "$cols" "$row"
		i=$((i + 1))
	done
	printf 'UPDATE jobd.counts SET n = n + 64 WHERE status = 0;\nCOMMIT;\n\\endpipeline\n'
} > "$w/pipe64.sql"
printf 'BEGIN;\nINSERT INTO jobd.jobs (%s) VALUES %s;\nUPDATE jobd.counts SET n = n + 1 WHERE status = 0;\nCOMMIT;\n' \
	"$cols" "$row" > "$w/one.sql"
# The payload array: 64 copies, each quoted for an array literal.
qpl=$(printf '%s' "$pl" | sed 's/"/\\"/g')
parr="{\"$qpl\""
i=1; while [ $i -lt 64 ]; do parr="$parr,\"$qpl\""; i=$((i + 1)); done
parr="$parr}"

intake() { # NAME FILE ROWS
	out=$($pgb -M prepared -c 1 -j 1 -T "$secs" -D now=$now -D "p=$pl" -D "parr=$parr" \
		-f "$2" 2>&1)
	t=$(echo "$out" | tps)
	if [ -z "$t" ]; then echo "$1: failed"; echo "$out" | tail -n 5; return; fi
	echo "$1: $t txn/s = $(awk "BEGIN { printf \"%d\", $t * $3 }") jobs/s, latency $(echo "$out" | lat)"
}
echo
echo "## 3. intake, one client (jobd's writer), prepared statements, ${secs}s each"
intake "1 job per transaction (fsync floor)" "$w/one.sql" 1
intake "64 jobs: one multi-row INSERT ... VALUES" "$w/values64.sql" 64
intake "64 jobs: INSERT ... SELECT FROM unnest(\$payloads::text[])" "$w/unnest64.sql" 64
intake "64 jobs: 64 one-row INSERTs in one pipeline" "$w/pipe64.sql" 64
$psql -c 'TRUNCATE jobd.jobs' -c 'UPDATE jobd.counts SET n = 0'

# ---- 4. drain ----
claim_g="WITH c AS (UPDATE jobd.jobs j SET status = 1, attempt = j.attempt + 1,
  started_at = :now, finished_at = NULL, claim = 'b:' || :r, attempt_started = true,
  cancel_requested = false
 WHERE j.id = ANY (ARRAY(SELECT id FROM jobd.jobs
   WHERE status = 0 AND due AND type = ANY ('{noop,echo,mail,report,sleep}'::text[])
   ORDER BY priority DESC, id LIMIT 64 FOR UPDATE SKIP LOCKED))
 RETURNING j.id, j.claim)
SELECT coalesce(array_agg(id), '{}') AS ids, coalesce(max(claim), 'none') AS tok FROM c \\gset"
done_g="UPDATE jobd.jobs SET status = 2, finished_at = :now, result = 'null', claim = NULL
 WHERE id = ANY (:ids::uuid[]) AND claim = :tok;"
cnt_g="UPDATE jobd.counts SET n = n + CASE status WHEN 0 THEN -64 WHEN 2 THEN 64 ELSE 0 END
 WHERE status IN (0, 2);"
printf '\\set r random(1, 2000000000)\nBEGIN;\n%s\nCOMMIT;\nBEGIN;\n%s\n%s\nCOMMIT;\n' \
	"$claim_g" "$done_g" "$cnt_g" > "$w/drain2.sql"
printf '\\set r random(1, 2000000000)\nBEGIN;\n%s\n%s\n%s\nCOMMIT;\n' \
	"$done_g" "$cnt_g" "$claim_g" > "$w/drain1.sql"
drain() { # NAME FILE
	$psql -c 'TRUNCATE jobd.jobs' >/dev/null
	fill 400000 0 >/dev/null
	$psql -c 'ALTER TABLE jobd.jobs RESET (autovacuum_enabled)' -c 'ANALYZE jobd.jobs' \
		-c 'CHECKPOINT' >/dev/null
	out=$($pgb -M prepared -c 1 -j 1 -T "$secs" -D now=$now -D ids='{}' -D tok=none \
		-f "$2" 2>&1)
	t=$(echo "$out" | tps)
	if [ -z "$t" ]; then echo "$1: failed"; echo "$out" | tail -n 5; return; fi
	left=$($psql -Atc 'SELECT count(*) FROM jobd.jobs WHERE status = 0')
	echo "$1: $t batches/s = $(awk "BEGIN { printf \"%d\", $t * 64 }") jobs/s, latency $(echo "$out" | lat) ($left of 400000 left queued)"
}
echo
echo "## 4. drain, batches of 64, one client, over 400k queued jobs"
drain "claim txn + complete txn" "$w/drain2.sql"
drain "one txn: complete previous batch + claim next" "$w/drain1.sql"
echo
echo "# size of 400k jobs (payload ~180 B, 6 indexes): $($psql -Atc "SELECT pg_size_pretty(pg_total_relation_size('jobd.jobs'))")"

# ---- 5. the libpq probe: one connection, every transaction one pipeline ----
echo
echo "## 5. libpq probe (probe.c), one connection, one pipeline per transaction, ${PROBE_SECS:-5}s each"
if cc -std=c11 -D_GNU_SOURCE -O2 $(pkg-config --cflags libpq) -o "$w/probe" \
	"$here/probe.c" $(pkg-config --libs libpq); then
	"$w/probe" "$uri" "${PROBE_SECS:-5}"
else
	echo "probe: not built (libpq-dev missing?)"
fi
