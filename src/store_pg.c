/*
 * store_pg.c - the PostgreSQL job store (store.path = postgresql://...).
 *
 * Same table as SQLite's, column for column (schema "jobd"): status is the
 * same text, flags are smallint 0/1, times int8 microseconds from jobd's
 * clock; only the id is a uuid (16 bytes in five indexes; it sorts like
 * jobd's lowercase UUIDv7 text).  So one SQL text reads both stores.
 *
 * The writer connection runs in libpq pipeline mode: calls whose answer
 * the writer does not need at once (BEGIN, inserts, starts) are sent
 * without waiting, and their results are read with the next call that
 * needs an answer, or with the COMMIT: a batch of 64 submissions is one
 * round trip, not 64.  A failed statement fails the whole transaction (as
 * any error in PostgreSQL does); the writer rolls back and retries.
 *
 * Readers get their own connections: a fixed pool of store.pool, opened
 * on demand; a reader waits at most a second for a free one (503 after).
 *
 * Faults: a connection that breaks is closed and reopened on the next call,
 * with backoff (100 ms doubling to 5 s); meanwhile every call answers
 * JOBD_EUNAVAIL (503, batch retried).  store_open() succeeds on an
 * unreachable server (the daemon waits for it, not ready); it fails only
 * on a bad URI, a schema newer than this jobd, or another jobd holding the
 * store.  A COMMIT whose answer never came is JOBD_EUNAVAIL too: its
 * outcome is unknown, nothing of it is acknowledged.
 *
 * One daemon per database (issue 14 lifts this with leases): the writer
 * connection holds a session advisory lock; a second jobd is refused at
 * start-up, naming the holder (its application_name says "jobd pid N on
 * HOST").
 *
 * LOCKING: the writer connection (s->w) and everything in struct wconn
 * belong to the writer thread.  pool_mu guards the readers' busy flags and
 * backoff; a reader connection is used by one thread between reader_get()
 * and reader_put().  s->wstate is atomic (store_check from any thread).
 */
#include <libpq-fe.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "bus.h"
#include "clock.h"
#include "err.h"
#include "log.h"
#include "store.h"
#include "store_backend.h"
#include "store_pg.h"

#define JOB_COLS \
	"id, type, status, priority, attempt, max_attempts, timeout_ms, " \
	"created_at, run_at, started_at, finished_at, payload, result, error, " \
	"exit_code, cancel_on_disconnect, claim, idem_key, idem_fp, " \
	"output_truncated, depends_on, progress"

/* The API's "callback" object of a job row (reads only). */
#define CALLBACK_COL \
	", CASE WHEN callback_url IS NULL THEN NULL ELSE coalesce((SELECT" \
	" json_build_object('url', o.url, 'status', o.status, 'attempts'," \
	" o.attempts, 'last_error', o.last_error)::text FROM jobd.outbox o" \
	" WHERE o.job_id = jobs.id), json_build_object('url', callback_url," \
	" 'status', 'pending', 'attempts', 0, 'last_error', NULL)::text) END"

/* The migrations, in order; store_pg_migrate() applies what a database
 * lacks, in one transaction under an advisory lock. */
static const char *const migrations[] = {
	/* 1: the jobs table and the indexes of the claim (priority, then
	 * age, among due jobs), the timer, listing, purge and keys. */
	"CREATE TABLE jobd.jobs ("
	"  id uuid PRIMARY KEY,"
	"  type text NOT NULL,"
	"  status text NOT NULL CHECK (status IN ('queued','running',"
	"    'succeeded','failed','cancelled')),"
	"  priority int NOT NULL DEFAULT 0,"
	"  attempt int NOT NULL DEFAULT 0,"
	"  max_attempts int NOT NULL,"
	"  timeout_ms int8 NOT NULL,"
	"  created_at int8 NOT NULL,"
	"  run_at int8 NOT NULL,"
	"  started_at int8,"
	"  finished_at int8,"
	"  payload text NOT NULL DEFAULT 'null',"
	"  result text,"
	"  error text,"
	"  exit_code int,"
	"  cancel_on_disconnect smallint NOT NULL DEFAULT 1,"
	"  cancel_requested smallint NOT NULL DEFAULT 0,"
	"  claim text,"
	"  idem_key text,"
	"  idem_fp text,"
	"  output_truncated smallint NOT NULL DEFAULT 0,"
	"  due smallint NOT NULL DEFAULT 1,"
	"  attempt_started smallint NOT NULL DEFAULT 0,"
	"  node text"
	");"
	"CREATE INDEX jobs_queue ON jobd.jobs (priority DESC, id, type)"
	"  WHERE status = 'queued' AND due = 1;"
	"CREATE INDEX jobs_waiting ON jobd.jobs (run_at)"
	"  WHERE status = 'queued' AND due = 0;"
	"CREATE INDEX jobs_status ON jobd.jobs (status, id);"
	"CREATE INDEX jobs_type ON jobd.jobs (type, id);"
	"CREATE INDEX jobs_finished ON jobd.jobs (finished_at)"
	"  WHERE finished_at IS NOT NULL;"
	"CREATE UNIQUE INDEX jobs_idem ON jobd.jobs (idem_key)"
	"  WHERE idem_key IS NOT NULL;"
	/* A queue table churns: vacuum and analyze it early. */
	"ALTER TABLE jobd.jobs SET (autovacuum_vacuum_scale_factor = 0.01,"
	"  autovacuum_vacuum_threshold = 1000,"
	"  autovacuum_analyze_scale_factor = 0.01,"
	"  autovacuum_vacuum_cost_delay = 1);",
	/* 2: several nodes.  Each running daemon has a row (its boot id,
	 * node name, heartbeat); a running job names the boot id of the
	 * daemon that claimed it (jobs.node). */
	"CREATE TABLE jobd.nodes ("
	"  boot text PRIMARY KEY,"
	"  name text NOT NULL,"
	"  pid int NOT NULL,"
	"  started_at timestamptz NOT NULL DEFAULT now(),"
	"  seen_at timestamptz NOT NULL DEFAULT now()"
	");"
	"CREATE INDEX jobs_node ON jobd.jobs (node) WHERE status = 'running';",
	/* 3: a node found silent for a lease is marked dead (its jobs
	 * rescued) rather than deleted, so GET /nodes shows it until the
	 * retention has passed; its own heartbeat then finds it dead. */
	"ALTER TABLE jobd.nodes ADD COLUMN dead boolean NOT NULL"
	"  DEFAULT false;",
	/* 4: paused types (POST /types/NAME/pause): no node starts a new
	 * attempt of a type listed here; each reads it at every claim. */
	"CREATE TABLE jobd.type_pauses ("
	"  type text PRIMARY KEY,"
	"  paused_at int8 NOT NULL"
	");",
	/* 5: the schedules' state (schedule.h), shared by the nodes: the
	 * last tick done, the last job made, the pause. */
	"CREATE TABLE jobd.schedules ("
	"  name text PRIMARY KEY,"
	"  cursor_ms int8,"
	"  last_run_ms int8,"
	"  last_job_id uuid,"
	"  paused smallint NOT NULL DEFAULT 0"
	");",
	/* 6: dependencies (DESIGN §3).  Status 'waiting'; the ids a job
	 * depends on (depends_on, as shown) and how many have not succeeded
	 * yet (unmet); the edges still to resolve, keyed by the dependency
	 * (a job's end finds its dependents by the primary key, never by a
	 * scan).  link_deps() and resolve_deps() run the rules server-side:
	 * one round trip for a submission, one for a batch's ends, whatever
	 * the fan-out or the depth of the cascade.  Their plans are cached
	 * for the session, perhaps made when the tables were small: seq
	 * scans are off inside them, so that every step stays a key lookup
	 * however the tables have grown since.  Sorts are on (the writer's
	 * session has them off; the cost that adds to any plan with a sort
	 * would start JIT compilation, tens of ms a call), and JIT is off. */
	"ALTER TABLE jobd.jobs DROP CONSTRAINT jobs_status_check;"
	"ALTER TABLE jobd.jobs ADD CONSTRAINT jobs_status_check CHECK (status"
	"  IN ('queued','running','succeeded','failed','cancelled',"
	"  'waiting'));"
	"ALTER TABLE jobd.jobs ADD COLUMN depends_on text,"
	"  ADD COLUMN unmet int NOT NULL DEFAULT 0,"
	"  ADD COLUMN dependents smallint NOT NULL DEFAULT 0;"
	"CREATE TABLE jobd.job_deps ("
	"  dep uuid NOT NULL,"
	"  job uuid NOT NULL,"
	"  PRIMARY KEY (dep, job)"
	");"
	/* A job just inserted (queued) with its dependencies: locks them
	 * (a node ending one at this moment waits for this transaction,
	 * then sees its flag "dependents" set and resolves its edges; or
	 * this waits for that one and sees the end), then sets the job
	 * waiting, queued or cancelled.  '!<id>' for an unknown dependency
	 * (the job is removed again).  Locked in id order: two links on the
	 * same jobs never wait for each other in a cycle. */
	"CREATE FUNCTION jobd.link_deps(j uuid, deps uuid[], ids text,"
	"  now_us int8) RETURNS text LANGUAGE plpgsql"
	"  SET enable_seqscan = off SET enable_sort = on SET jit = off AS $$"
	"DECLARE r record; n int := 0; pend uuid[] := '{}'; why text;"
	"BEGIN"
	"  FOR r IN SELECT d.id AS want, x.id AS got, x.status"
	"    FROM (SELECT u FROM unnest(deps) AS u ORDER BY u) AS d(id)"
	"    LEFT JOIN LATERAL (SELECT id, status"
	"    FROM jobd.jobs WHERE id = d.id FOR SHARE) x ON true LOOP"
	"    IF r.got IS NULL THEN"
	"      DELETE FROM jobd.jobs WHERE id = j;"
	"      RETURN '!' || r.want;"
	"    END IF;"
	"    IF r.status IN ('failed', 'cancelled') AND why IS NULL THEN"
	"      why := 'dependency ' || r.got || ' ' || r.status;"
	"    ELSIF r.status NOT IN ('succeeded', 'failed', 'cancelled') THEN"
	"      pend := pend || r.got;"
	"    END IF;"
	"  END LOOP;"
	"  IF why IS NOT NULL THEN"
	"    UPDATE jobd.jobs SET status = 'cancelled', error = why,"
	"      finished_at = now_us, depends_on = ids, due = 0 WHERE id = j;"
	"    RETURN 'cancelled';"
	"  END IF;"
	"  INSERT INTO jobd.job_deps (dep, job) SELECT p, j FROM unnest(pend)"
	"    AS p ON CONFLICT DO NOTHING;"
	"  GET DIAGNOSTICS n = ROW_COUNT;"
	"  UPDATE jobd.jobs SET dependents = 1 WHERE id = ANY (pend)"
	"    AND dependents = 0;"
	"  UPDATE jobd.jobs SET depends_on = ids, unmet = n,"
	"    status = CASE WHEN n > 0 THEN 'waiting' ELSE 'queued' END,"
	"    due = CASE WHEN n > 0 THEN 0 ELSE due END WHERE id = j;"
	"  RETURN CASE WHEN n > 0 THEN 'waiting' ELSE 'queued' END;"
	"END $$;"
	/* The jobs that ended (ids, their final statuses): a success counts
	 * for each job waiting on it (queued when it was the last), a
	 * failure or cancel cancels them, and theirs, breadth first.  Each
	 * step reads the edges of one dependency by the primary key and
	 * deletes them.  Returns every job changed.  (status || '': the
	 * dependents are found by their ids, never through jobs_status,
	 * which the planner would walk over every waiting job.) */
	"CREATE FUNCTION jobd.resolve_deps(ids uuid[], sts text[], now_us int8)"
	"  RETURNS TABLE (rid uuid, rtype text, rstatus text, rrun_at int8)"
	"  LANGUAGE plpgsql SET enable_seqscan = off SET enable_sort = on SET jit = off AS $$"
	"DECLARE i int := 1; x uuid; s text; r record;"
	"BEGIN"
	"  WHILE i <= coalesce(cardinality(ids), 0) LOOP"
	"    x := ids[i]; s := sts[i]; i := i + 1;"
	"    IF s = 'succeeded' THEN"
	"      FOR r IN UPDATE jobd.jobs AS t SET unmet = t.unmet - 1,"
	"        status = CASE WHEN t.unmet <= 1 THEN 'queued'"
	"          ELSE 'waiting' END,"
	"        due = CASE WHEN t.unmet <= 1 AND t.run_at <= now_us"
	"          THEN 1 ELSE 0 END"
	"        WHERE t.id = ANY (ARRAY(SELECT d.job FROM jobd.job_deps d"
	"          WHERE d.dep = x)) AND t.status || '' = 'waiting'"
	"        RETURNING t.id, t.type, t.status, t.run_at LOOP"
	"        IF r.status = 'queued' THEN"
	"          rid := r.id; rtype := r.type; rstatus := r.status;"
	"          rrun_at := r.run_at; RETURN NEXT;"
	"        END IF;"
	"      END LOOP;"
	"    ELSIF s IN ('failed', 'cancelled') THEN"
	"      FOR r IN UPDATE jobd.jobs AS t SET status = 'cancelled',"
	"        finished_at = now_us, error = 'dependency ' || x || ' ' || s"
	"        WHERE t.id = ANY (ARRAY(SELECT d.job FROM jobd.job_deps d"
	"          WHERE d.dep = x)) AND t.status || '' = 'waiting'"
	"        RETURNING t.id, t.type, t.status, t.run_at LOOP"
	"        rid := r.id; rtype := r.type; rstatus := r.status;"
	"        rrun_at := r.run_at; RETURN NEXT;"
	"        ids := ids || r.id; sts := sts || 'cancelled'::text;"
	"      END LOOP;"
	"    END IF;"
	"    DELETE FROM jobd.job_deps d WHERE d.dep = x;"
	"  END LOOP;"
	"END $$;"
	/* Edges whose dependency ended unseen (a dead node's rescue,
	 * start-up recovery). */
	"CREATE FUNCTION jobd.sweep_deps(now_us int8)"
	"  RETURNS TABLE (rid uuid, rtype text, rstatus text, rrun_at int8)"
	"  LANGUAGE plpgsql SET enable_seqscan = off SET enable_sort = on SET jit = off AS $$"
	"DECLARE a uuid[]; b text[];"
	"BEGIN"
	"  SELECT array_agg(j.id), array_agg(j.status) INTO a, b"
	"    FROM (SELECT DISTINCT dep FROM jobd.job_deps) d"
	"    JOIN jobd.jobs j ON j.id = d.dep"
	"    WHERE j.status IN ('succeeded', 'failed', 'cancelled');"
	"  RETURN QUERY SELECT * FROM jobd.resolve_deps(a, b, now_us);"
	"END $$;",
	/* 7: progress (DESIGN §4): the last report of the job's handler,
	 * one JSON object of at most 4 KiB (text: kept as reported). */
	"ALTER TABLE jobd.jobs ADD COLUMN progress text;",
	/* 8: callbacks (DESIGN §2.1), as in SQLite: a job's callback_url,
	 * and the outbox of deliveries owed, filled by a trigger in the
	 * transaction that makes the job final (any path, any node: a
	 * rescue too), claimed by one node at a time (claim; next_at is
	 * then the claim's lease, after which another node may take it). */
	"ALTER TABLE jobd.jobs ADD COLUMN callback_url text;"
	"CREATE TABLE jobd.outbox ("
	"  job_id uuid PRIMARY KEY REFERENCES jobd.jobs (id)"
	"    ON DELETE CASCADE,"
	"  url text NOT NULL,"
	"  status text NOT NULL DEFAULT 'pending' CHECK (status IN"
	"    ('pending', 'delivered', 'failed')),"
	"  attempts int NOT NULL DEFAULT 0,"
	"  next_at int8 NOT NULL DEFAULT 0,"
	"  last_error text,"
	"  claim text"
	");"
	"CREATE INDEX outbox_due ON jobd.outbox (next_at)"
	"  WHERE status = 'pending';"
	"CREATE FUNCTION jobd.outbox_add() RETURNS trigger"
	"  LANGUAGE plpgsql AS $$"
	"BEGIN"
	"  INSERT INTO jobd.outbox (job_id, url)"
	"    VALUES (NEW.id, NEW.callback_url)"
	"    ON CONFLICT (job_id) DO UPDATE SET url = excluded.url,"
	"    status = 'pending', attempts = 0, next_at = 0,"
	"    last_error = NULL, claim = NULL;"
	"  RETURN NULL;"
	"END $$;"
	"CREATE TRIGGER jobs_outbox AFTER UPDATE OF status ON jobd.jobs"
	"  FOR EACH ROW WHEN (NEW.callback_url IS NOT NULL"
	"  AND NEW.status IN ('succeeded', 'failed', 'cancelled')"
	"  AND OLD.status NOT IN ('succeeded', 'failed', 'cancelled'))"
	"  EXECUTE FUNCTION jobd.outbox_add();",
};
#define SCHEMA_VERSION ((int)(sizeof(migrations) / sizeof(migrations[0])))

/* The writer's prepared statements. */
enum {
	W_INSERT, W_FIND_IDEM, W_PROMOTE, W_CLAIM, W_COMPLETE, W_PUT_BACK,
	W_START, W_CANCEL, W_STATUS_OF, W_MARK_CANCEL, W_RETRY,
	W_RECOVER_CANCEL, W_RECOVER_FAIL, W_RECOVER_REQUEUE, W_PURGE,
	W_NEXT_RUN_AT, W_INSERT_MANY, W_START_MANY, W_COMPLETE_MANY,
	W_FORGET_OLD, W_NOTIFY, W_PAUSE, W_RESUME, W_PAUSES, W_SCHEDULE_PUT,
	W_DEP_LINK, W_DEP_CANCEL, W_DEP_RESOLVE, W_DEP_SWEEP, W_DEP_MISSING,
	W_PROGRESS, W_CB_SET, W_CB_CLAIM, W_CB_NEXT, W_CB_DONE,
	W_NSTMT
};

static const char *const writer_sql[W_NSTMT] = {
	[W_INSERT] = "INSERT INTO jobd.jobs (id, type, status, priority,"
		" attempt, attempt_started, max_attempts, timeout_ms,"
		" created_at, run_at, payload, cancel_on_disconnect, idem_key,"
		" idem_fp, due, started_at, claim)"
		" VALUES ($1, $2, CASE WHEN $12::text IS NULL THEN 'queued'"
		" ELSE 'running' END, $3, (($12::text IS NOT NULL)::int),"
		" $14::int2, $4, $5, $6, $7, $8, $9, $10,"
		" $11, (($7::int8 <= $6::int8)::int), $13, $12)",
	[W_FIND_IDEM] = "SELECT " JOB_COLS " FROM jobd.jobs WHERE idem_key = $1",
	/* Idempotent, under a transaction-level advisory lock (a node
	 * whose writer is promoting at that moment does it for all), and
	 * rows locked otherwise are skipped, not waited for: any node's
	 * claim may run it. */
	[W_PROMOTE] = "UPDATE jobd.jobs SET due = 1 WHERE id = ANY (ARRAY("
		"SELECT id FROM jobd.jobs WHERE status = 'queued' AND due = 0"
		" AND run_at <= $1"
		" AND (SELECT pg_try_advisory_xact_lock(hashtext('jobd.promote')))"
		" FOR UPDATE SKIP LOCKED))",
	/* id = ANY(ARRAY(subquery)): the subquery runs once and the update
	 * is a primary key scan, whatever the statistics say; the writer's
	 * session has enable_sort = off, so that the subquery walks
	 * jobs_queue in order even on a table never analyzed. */
	[W_CLAIM] = "UPDATE jobd.jobs SET status = 'running',"
		" attempt = attempt + 1, started_at = $1, finished_at = NULL,"
		" claim = $2, attempt_started = 0, cancel_requested = 0,"
		" node = $5, progress = NULL"
		" WHERE id = ANY (ARRAY(SELECT id FROM jobd.jobs"
		"   WHERE status = 'queued' AND due = 1"
		"   AND type = ANY ($3::text[])"
		"   ORDER BY priority DESC, id LIMIT $4 FOR UPDATE SKIP LOCKED))"
		" RETURNING " JOB_COLS,
	/* The store decides a race between a cancel and the attempt's end
	 * (as in SQLite): an attempt that did not succeed while a cancel was
	 * requested ends cancelled. */
	[W_COMPLETE] = "UPDATE jobd.jobs SET"
		" status = CASE WHEN cancel_requested = 1 AND $3 <> 'succeeded'"
		"   THEN 'cancelled' ELSE $3 END,"
		" run_at = CASE WHEN cancel_requested = 1 AND $3 <> 'succeeded'"
		"   THEN run_at ELSE coalesce($4::int8, run_at) END,"
		" finished_at = CASE WHEN cancel_requested = 1 AND"
		"   $3 <> 'succeeded' THEN $11::int8 ELSE $5::int8 END,"
		" result = $6,"
		" error = CASE WHEN cancel_requested = 1 AND $3 <> 'succeeded'"
		"   THEN coalesce($7, 'cancelled') ELSE $7 END,"
		" exit_code = $8, output_truncated = $9, claim = NULL,"
		" started_at = coalesce($10::int8, started_at), due = 0,"
		" cancel_requested = 0, progress = coalesce($12, progress)"
		" WHERE id = $1 AND claim = $2 AND status = 'running'"
		" RETURNING status, dependents",
	[W_PUT_BACK] = "UPDATE jobd.jobs SET"
		" status = CASE WHEN cancel_requested = 1 THEN 'cancelled'"
		"   ELSE 'queued' END,"
		" finished_at = CASE WHEN cancel_requested = 1 THEN $3::int8"
		"   ELSE NULL END,"
		" error = CASE WHEN cancel_requested = 1 THEN 'cancelled'"
		"   ELSE error END,"
		" attempt = attempt - 1, attempt_started = 0, claim = NULL,"
		" due = 0, cancel_requested = 0"
		" WHERE id = $1 AND claim = $2 AND status = 'running'"
		" RETURNING status, dependents",
	[W_START] = "UPDATE jobd.jobs SET attempt_started = 1, started_at = $3"
		" WHERE id = $1 AND claim = $2 AND status = 'running'",
	[W_CANCEL] = "UPDATE jobd.jobs SET status = 'cancelled',"
		" finished_at = $2, claim = NULL"
		" WHERE id = $1 AND status = 'queued'",
	[W_STATUS_OF] = "SELECT status FROM jobd.jobs WHERE id = $1",
	/* The node running it hears of it at once (the channel of its
	 * boot id; its heartbeat looks too, in case it did not listen). */
	[W_MARK_CANCEL] = "WITH m AS (UPDATE jobd.jobs SET"
		" cancel_requested = 1 WHERE id = $1 AND status = 'running'"
		" RETURNING node)"
		" SELECT pg_notify('jobd_' || node, 'c ' || $1::text) FROM m"
		" WHERE node IS NOT NULL AND node <> $2",
	[W_RETRY] = "UPDATE jobd.jobs SET status = 'queued', attempt = 0,"
		" run_at = $2, started_at = NULL, finished_at = NULL,"
		" result = NULL, error = NULL, exit_code = NULL,"
		" cancel_requested = 0, claim = NULL, due = 1, progress = NULL"
		" WHERE id = $1 AND status IN ('failed', 'cancelled')",
	[W_RECOVER_CANCEL] = "UPDATE jobd.jobs SET status = 'cancelled',"
		" finished_at = $1, claim = NULL,"
		" attempt = attempt - 1 + attempt_started"
		" WHERE status = 'running' AND cancel_requested = 1"
		"   AND (node IS NULL OR node IN (SELECT boot FROM jobd.nodes"
		"     WHERE name = $2 AND boot <> $3))",
	[W_RECOVER_FAIL] = "UPDATE jobd.jobs SET status = 'failed',"
		" finished_at = $1, claim = NULL, error = 'the daemon stopped"
		" during the last attempt (no attempts left)'"
		" WHERE status = 'running' AND attempt_started = 1"
		" AND attempt >= max_attempts"
		"   AND (node IS NULL OR node IN (SELECT boot FROM jobd.nodes"
		"     WHERE name = $2 AND boot <> $3))",
	[W_RECOVER_REQUEUE] = "UPDATE jobd.jobs SET status = 'queued',"
		" run_at = $1, claim = NULL, due = 1,"
		" attempt = attempt - 1 + attempt_started"
		" WHERE status = 'running'"
		"   AND (node IS NULL OR node IN (SELECT boot FROM jobd.nodes"
		"     WHERE name = $2 AND boot <> $3))",
	/* Oldest first through jobs_finished (not every finished row of
	 * jobs_status, which the planner picks without statistics).  Under
	 * an advisory lock: two leaders for a moment delete once. */
	[W_PURGE] = "DELETE FROM jobd.jobs WHERE id = ANY (ARRAY(SELECT id"
		" FROM jobd.jobs WHERE finished_at IS NOT NULL"
		" AND finished_at < $1 AND status IN"
		" ('succeeded', 'failed', 'cancelled')"
		" AND (SELECT pg_try_advisory_xact_lock(hashtext('jobd.purge')))"
		" ORDER BY finished_at LIMIT $2 FOR UPDATE SKIP LOCKED))"
		" RETURNING status",
	[W_NEXT_RUN_AT] = "SELECT min(run_at) FROM jobd.jobs"
		" WHERE status = 'queued' AND due = 0",
	/* The same three, a batch of rows in one statement (arrays). */
	[W_INSERT_MANY] = "INSERT INTO jobd.jobs (id, type, status, priority,"
		" attempt, attempt_started, max_attempts, timeout_ms,"
		" created_at, run_at, payload, cancel_on_disconnect, idem_key,"
		" idem_fp, due, started_at, claim, node)"
		" SELECT id, type, CASE WHEN claim IS NULL THEN 'queued'"
		" ELSE 'running' END, priority, (claim IS NOT NULL)::int,"
		" started, max_attempts, timeout_ms,"
		" created_at, run_at, payload, cod, idem_key, idem_fp,"
		" (run_at <= created_at)::int, started_at, claim,"
		" CASE WHEN claim IS NULL THEN NULL ELSE $15::text END"
		" FROM unnest($1::uuid[], $2::text[], $3::int[], $4::int[],"
		" $5::int8[], $6::int8[], $7::int8[], $8::text[], $9::int2[],"
		" $10::text[], $11::text[], $12::text[], $13::int8[],"
		" $14::int2[])"
		" AS t(id, type, priority, max_attempts, timeout_ms, created_at,"
		" run_at, payload, cod, idem_key, idem_fp, claim, started_at,"
		" started)",
	/* Joined row by row: for each of the batch's rows an index lookup
	 * of its job (j.id = ANY($1) beside the join made the planner scan
	 * the batch once per job, 512 x 512 at 512 a batch: 35 ms to 1.5 s
	 * a statement, seen with auto_explain). */
	[W_START_MANY] = "UPDATE jobd.jobs j SET attempt_started = 1,"
		" started_at = s.at"
		" FROM unnest($1::uuid[], $2::text[], $3::int8[])"
		" AS s(id, claim, at)"
		" WHERE j.id = s.id"
		" AND j.claim = s.claim AND j.status = 'running'",
	[W_COMPLETE_MANY] = "UPDATE jobd.jobs j SET"
		" status = CASE WHEN j.cancel_requested = 1 AND"
		"   c.status <> 'succeeded' THEN 'cancelled' ELSE c.status END,"
		" run_at = CASE WHEN j.cancel_requested = 1 AND"
		"   c.status <> 'succeeded' THEN j.run_at"
		"   ELSE coalesce(c.run_at, j.run_at) END,"
		" finished_at = CASE WHEN j.cancel_requested = 1 AND"
		"   c.status <> 'succeeded' THEN c.now ELSE c.finished_at END,"
		" result = c.result,"
		" error = CASE WHEN j.cancel_requested = 1 AND"
		"   c.status <> 'succeeded' THEN coalesce(c.error, 'cancelled')"
		"   ELSE c.error END,"
		" exit_code = c.exit_code, output_truncated = c.trunc,"
		" claim = NULL, started_at = coalesce(c.started_at, j.started_at),"
		" due = 0, cancel_requested = 0,"
		" progress = coalesce(c.progress, j.progress)"
		" FROM unnest($1::uuid[], $2::text[], $3::text[], $4::int8[],"
		" $5::int8[], $6::text[], $7::text[], $8::int[], $9::int2[],"
		" $10::int8[], $11::int8[], $12::text[]) WITH ORDINALITY AS"
		" c(id, claim, status, run_at, finished_at, result, error,"
		" exit_code, trunc, started_at, now, progress, n)"
		" WHERE j.id = c.id"
		" AND j.claim = c.claim AND j.status = 'running'"
		" RETURNING c.n, j.status, j.dependents",
	/* After recovery: this node name's earlier incarnations are gone. */
	[W_FORGET_OLD] = "DELETE FROM jobd.nodes WHERE name = $1 AND boot <> $2",
	/* Due work this node cannot take: wakes the others (at the commit). */
	[W_NOTIFY] = "SELECT pg_notify('jobd_work', $1)",
	/* Paused types: a table of a few rows (one per type at most). */
	[W_PAUSE] = "INSERT INTO jobd.type_pauses (type, paused_at)"
		" VALUES ($1, $2) ON CONFLICT (type) DO NOTHING",
	[W_RESUME] = "DELETE FROM jobd.type_pauses WHERE type = $1",
	[W_PAUSES] = "SELECT type FROM jobd.type_pauses",
	/* A schedule's row (store.h): by its primary key. */
	[W_SCHEDULE_PUT] = "INSERT INTO jobd.schedules AS s (name, cursor_ms,"
		" last_run_ms, last_job_id, paused)"
		" VALUES ($1, $2::int8, $3::int8, $4::uuid, coalesce($5::int2, 0))"
		" ON CONFLICT (name) DO UPDATE SET"
		" cursor_ms = CASE WHEN $2::int8 IS NULL THEN s.cursor_ms"
		"   ELSE greatest(s.cursor_ms, $2::int8) END,"
		" last_job_id = CASE WHEN $3::int8 IS NOT NULL AND"
		"   (s.last_run_ms IS NULL OR $3::int8 >= s.last_run_ms)"
		"   THEN $4::uuid ELSE s.last_job_id END,"
		" last_run_ms = CASE WHEN $3::int8 IS NOT NULL AND"
		"   (s.last_run_ms IS NULL OR $3::int8 >= s.last_run_ms)"
		"   THEN $3::int8 ELSE s.last_run_ms END,"
		" paused = coalesce($5::int2, s.paused)"
		" WHERE $6::int2 IS NULL OR s.paused = 0",
	/* Dependencies: the functions of migration 4. */
	[W_DEP_LINK] = "SELECT jobd.link_deps($1::uuid, $2::uuid[], $3, $4)",
	[W_DEP_CANCEL] = "UPDATE jobd.jobs SET status = 'cancelled',"
		" finished_at = $2 WHERE id = $1 AND status = 'waiting'",
	[W_DEP_RESOLVE] = "SELECT rid, rtype, rstatus, rrun_at"
		" FROM jobd.resolve_deps($1::uuid[], $2::text[], $3)",
	[W_DEP_SWEEP] = "SELECT rid, rtype, rstatus, rrun_at"
		" FROM jobd.sweep_deps($1)",
	/* The first of a batch's outside ids that names no job. */
	[W_DEP_MISSING] = "SELECT u.i - 1 FROM unnest($1::uuid[])"
		" WITH ORDINALITY AS u(id, i) WHERE NOT EXISTS"
		" (SELECT 1 FROM jobd.jobs j WHERE j.id = u.id)"
		" ORDER BY u.i LIMIT 1",
	/* A running attempt's report, fenced by its claim. */
	[W_PROGRESS] = "UPDATE jobd.jobs SET progress = $3"
		" WHERE id = $1 AND claim = $2 AND status = 'running'",
	/* Callbacks (store.h): the outbox, by its primary key and its due
	 * index; rows another node is claiming are skipped. */
	[W_CB_SET] = "UPDATE jobd.jobs SET callback_url = $2 WHERE id = $1",
	[W_CB_CLAIM] = "UPDATE jobd.outbox SET claim = $1, next_at = $2"
		" WHERE job_id = ANY (ARRAY(SELECT job_id FROM jobd.outbox"
		"   WHERE status = 'pending' AND next_at <= $3"
		"   ORDER BY next_at LIMIT $4 FOR UPDATE SKIP LOCKED))"
		" RETURNING job_id, url, attempts",
	[W_CB_NEXT] = "SELECT min(next_at) FROM jobd.outbox"
		" WHERE status = 'pending'",
	[W_CB_DONE] = "UPDATE jobd.outbox SET status = $3, attempts = $4,"
		" next_at = $5, last_error = coalesce($6, last_error),"
		" claim = NULL"
		" WHERE job_id = $1 AND claim = $2",
};

/* Reader statements, prepared on each reader connection. */
#define LIST_VARIANTS 8 /* bit 0: status, bit 1: type, bit 2: after */
enum { R_GET, R_COUNTS, R_BY_TYPE, R_PING, R_NODES, R_PAUSES, R_SCHEDULES, R_LIST0,
       R_NSTMT = R_LIST0 + LIST_VARIANTS };

/* Deferred sends read back in one go beyond this many (so that neither
 * side's socket buffer fills while the other waits). */
#define MAX_UNREAD 128
#define SINK_RING (MAX_UNREAD + 16)
#define BACKOFF_MIN_MS 100
#define BACKOFF_MAX_MS 2000
#define READER_WAIT_MS 1000
#define READER_ANSWER_MS 5000
#define MAX_TOKENS 8
#define LOCK_WAIT_MS 5000

enum wstate { WS_DOWN, WS_UP };

/* Where an unread query's answer goes. */
struct sink {
	struct store_answer *one;    /* a fenced UPDATE ... RETURNING status */
	struct store_answer **many;  /* W_COMPLETE_MANY: by ordinal (owned) */
	int nmany;
	bool commit;                 /* the COMMIT: its answer sets commit_ok */
};

/* One growing array literal ("{...}") per column. */
struct colbuf {
	char *p;
	size_t len, cap;
};

/* Rows of one kind waiting to go as one statement, in the order the
 * writer made them: inserts, starts, completions. */
enum { K_INSERT, K_START, K_COMPLETE, NKINDS };
#define MAX_COLS 14
struct rows {
	int n;
	struct colbuf col[MAX_COLS];
	struct store_answer **ans;   /* K_COMPLETE: one per row */
	int capans;
	size_t bytes;
};

struct reader {
	PGconn *c;
	bool busy;
};

struct pgs {
	char *uri;               /* as configured (logged without password) */
	bool durability_full;
	char appname[160];
	char node[64];           /* this daemon's node name (store.node) */
	int64_t lease_ms;
	/* the other nodes: heartbeat, leader, fencing, wake-ups (bus.c);
	 * it also keeps this run's boot id (jobs.node, jobd.nodes) */
	bus *bus;

	/* writer thread only */
	PGconn *w;
	int unread;              /* queries sent whose results are unread */
	/* Where each unread query's answer goes (NULL: nowhere), oldest at
	 * sink_head: a ring as deep as the unread queries can be. */
	struct sink sinks[SINK_RING];
	int sink_head;
	/* Rows gathered for the next array statement, per kind (see
	 * "batches of rows" below). */
	struct rows rows[NKINDS];
	int perr;                /* first error of the open pipeline, or 0 */
	bool perr_server;        /* ... and the server said it (SQLSTATE):
	                            the transaction did not commit */
	bool last_perr_server;   /* perr_server of the last w_sync */
	bool commit_ok;          /* the open pipeline's COMMIT answered
	                            COMMIT: it committed, whatever comes
	                            after it (a FATAL of a terminated
	                            backend, then EOF) */
	char perr_text[512];
	bool in_tx;
	bool was_up;             /* the writer connection was up once */
	/* Claim tokens written by the open transaction, and those of a
	 * transaction whose COMMIT outcome is unknown (given back after the
	 * reconnect). */
	char tx_tokens[MAX_TOKENS][CLAIM_TOKEN_MAX];
	int ntx_tokens;
	char lost_tokens[MAX_TOKENS][CLAIM_TOKEN_MAX];
	int nlost_tokens;
	int64_t w_retry_ms;      /* mono ms of the next connect attempt */
	int w_backoff_ms;
	bool w_logged_down;
	_Atomic int wstate;

	/* readers */
	pthread_mutex_t pool_mu;
	pthread_cond_t pool_cond;
	struct reader *readers;  /* store.pool of them */
	size_t nreaders;
	int64_t r_retry_ms;      /* guarded by pool_mu */
	int r_backoff_ms;

	bool notified;           /* writer: W_NOTIFY sent in this transaction */
	struct store_hooks hooks;  /* hb_mu */
	int64_t seen_finished_us;  /* the heartbeat thread's: finished_at of
	                              the last remote end it reported */
};

/* This run's boot id, copied (the bus changes it at a new life). */
static const char *
get_boot(struct pgs *s, char out[BUS_BOOT_LEN])
{
	return bus_boot(s->bus, out);
}

/* ---- errors ---- */

/* A SQLSTATE to a JOBD_E* code (docs/postgres-store.md §8.1). */
static int
map_sqlstate(const char *st)
{
	if (st == NULL || strlen(st) != 5)
		return JOBD_EUNAVAIL; /* no answer: the connection is gone */
	if (strncmp(st, "08", 2) == 0 || strcmp(st, "57P01") == 0 ||
	    strcmp(st, "57P02") == 0 || strcmp(st, "57P03") == 0 ||
	    strcmp(st, "53300") == 0 || strcmp(st, "40001") == 0 ||
	    strcmp(st, "40P01") == 0 || strcmp(st, "55P03") == 0 ||
	    strcmp(st, "57014") == 0 || strcmp(st, "53200") == 0 ||
	    strcmp(st, "53000") == 0 || strcmp(st, "25P02") == 0)
		return JOBD_EUNAVAIL;
	if (strcmp(st, "53100") == 0)
		return JOBD_EFULL;
	if (strncmp(st, "23", 2) == 0)
		return JOBD_ECONFLICT;
	if (strncmp(st, "22", 2) == 0)
		return JOBD_EINVAL;
	if (strncmp(st, "XX", 2) == 0 || strncmp(st, "58", 2) == 0)
		return JOBD_EIO;
	/* Anything else (undefined table: a schema dropped under us, ...)
	 * is not transient, but not an I/O error of ours either: the batch
	 * fails and is retried, loudly. */
	return JOBD_EUNAVAIL;
}

/* One line of libpq's message (they end with newlines, some have two). */
static int
result_error(PGconn *c, const PGresult *r, const char *what, char *err,
             size_t errlen)
{
	const char *state = r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL;
	char msg[400];
	int code;

	bus_one_line(msg, sizeof(msg), r && *PQresultErrorMessage(r)
	         ? PQresultErrorMessage(r) : PQerrorMessage(c));
	code = PQstatus(c) == CONNECTION_BAD ? JOBD_EUNAVAIL
	                                     : map_sqlstate(state);
	return jobd_seterr(err, errlen, code, "pg: %s: %s%s%s", what,
	                   state ? state : "", state ? ": " : "", msg);
}

/* ---- connections ---- */

/* The server's notices (NOTICE: schema "jobd" already exists, ...) go to
 * the debug log, not to stderr as libpq's default would. */
static void
on_notice(void *arg, const char *msg)
{
	char line[400];

	(void)arg;
	bus_one_line(line, sizeof(line), msg);
	log_debug("store", "pg: %s", line);
}

static PGconn *
connect_to(struct pgs *s, bool writer, char *err, size_t errlen)
{
	/* Defaults first: what the URI says wins (expand_dbname).  A peer
	 * cut off while data is in flight is given up after tcp_user_timeout
	 * (keepalives do not run then; the kernel would retry for minutes):
	 * 10 s, or half the lease, so that a heartbeat stuck on a dead link
	 * still lets its node fence itself in time. */
	char tcp[24], ct[24];
	int64_t t = s->lease_ms / 2 < 10000 ? s->lease_ms / 2 : 10000;
	snprintf(tcp, sizeof(tcp), "%lld", (long long)(t < 1000 ? 1000 : t));
	/* connect_timeout (s; libpq's least is 2): half the lease, 2..5 s,
	 * for the same reason. */
	t = s->lease_ms / 2000;
	snprintf(ct, sizeof(ct), "%lld", (long long)(t < 2 ? 2 : t > 5 ? 5 : t));
	const char *keys[] = {"connect_timeout", "application_name",
	                      "keepalives_idle", "keepalives_interval",
	                      "keepalives_count", "tcp_user_timeout", "dbname",
	                      NULL};
	const char *vals[] = {ct, s->appname, "10", "5", "3", tcp, s->uri,
	                      NULL};
	PGconn *c = PQconnectdbParams(keys, vals, 1);
	char msg[400];
	PGresult *r;
	char sql[256];

	if (c == NULL) {
		jobd_seterr(err, errlen, JOBD_ENOMEM, "pg: out of memory");
		return NULL;
	}
	if (PQstatus(c) != CONNECTION_OK) {
		bus_one_line(msg, sizeof(msg), PQerrorMessage(c));
		jobd_seterr(err, errlen, JOBD_EUNAVAIL, "pg: connect: %s", msg);
		PQfinish(c);
		return NULL;
	}
	PQsetNoticeProcessor(c, on_notice, NULL);
	/* Writer: commits durable as configured; no sort in any writer
	 * statement but the claim's ordered walk of jobs_queue, which this
	 * forces on a table without statistics (§9 of the design: 93 ms
	 * against 1.3 ms).  Times out a statement stuck behind a lock. */
	/* Readers: a SELECT waits only for an ACCESS EXCLUSIVE lock (an
	 * administrator's LOCK TABLE, VACUUM FULL, ALTER TABLE), in an HTTP
	 * thread: 503 after 2 s, not 30 s of every HTTP thread (/healthz
	 * stalled with them). */
	snprintf(sql, sizeof(sql), "SET synchronous_commit = %s;"
	         " SET lock_timeout = '%s'%s",
	         s->durability_full || !writer ? "on" : "off",
	         writer ? "30s" : "2s",
	         writer ? "; SET enable_sort = off" : "");
	r = PQexec(c, sql);
	if (PQresultStatus(r) != PGRES_COMMAND_OK) {
		result_error(c, r, "session settings", err, errlen);
		PQclear(r);
		PQfinish(c);
		return NULL;
	}
	PQclear(r);
	return c;
}

/*
 * Whether the idle writer connection was ended by the server: between
 * transactions nothing is expected from it, so anything to read (the
 * FATAL of an administrator's or a restart's termination, then EOF) means
 * it is gone.  One poll(), no round trip.
 */
static bool
conn_idle_broken(PGconn *c)
{
	struct pollfd p = {.fd = PQsocket(c), .events = POLLIN};

	if (p.fd < 0 || PQstatus(c) == CONNECTION_BAD)
		return true;
	return poll(&p, 1, 0) != 0;
}

static int
exec_ok(PGconn *c, const char *sql, const char *what, char *err,
        size_t errlen)
{
	PGresult *r = PQexec(c, sql);
	int rc = 0;

	if (PQresultStatus(r) != PGRES_COMMAND_OK &&
	    PQresultStatus(r) != PGRES_TUPLES_OK)
		rc = result_error(c, r, what, err, errlen);
	PQclear(r);
	return rc;
}

int
store_pg_migrate(PGconn *c, const char *const *migs, int n, char *err,
                 size_t errlen)
{
	PGresult *r;
	int version = 0, rc;
	char sql[160];

	rc = exec_ok(c, "BEGIN; SET LOCAL lock_timeout = '60s';"
	             " SELECT pg_advisory_xact_lock(hashtext('jobd.migrate'));"
	             " CREATE SCHEMA IF NOT EXISTS jobd;"
	             " CREATE TABLE IF NOT EXISTS jobd.meta (key text PRIMARY KEY,"
	             " value text NOT NULL)", "migrate: lock", err, errlen);
	if (rc != 0)
		goto rollback;
	r = PQexec(c, "SELECT value::int FROM jobd.meta"
	           " WHERE key = 'schema_version'");
	if (PQresultStatus(r) != PGRES_TUPLES_OK) {
		rc = result_error(c, r, "migrate: version", err, errlen);
		PQclear(r);
		goto rollback;
	}
	if (PQntuples(r) > 0)
		version = atoi(PQgetvalue(r, 0, 0));
	PQclear(r);
	if (version < 0) {
		/* (A damaged jobd.meta: migrations[version] would be read
		 * before the array.) */
		rc = jobd_seterr(err, errlen, JOBD_EINVAL, "store schema version "
		                 "%d is not a version (jobd.meta is damaged)",
		                 version);
		goto rollback;
	}
	if (version > n) {
		rc = jobd_seterr(err, errlen, JOBD_EINVAL, "store schema version "
		                 "%d is newer than this jobd (%d); upgrade jobd",
		                 version, n);
		goto rollback;
	}
	for (int v = version; v < n; v++) {
		char what[64];
		snprintf(what, sizeof(what), "migration %d", v + 1);
		rc = exec_ok(c, migs[v], what, err, errlen);
		if (rc != 0)
			goto rollback;
	}
	snprintf(sql, sizeof(sql), "INSERT INTO jobd.meta VALUES"
	         " ('schema_version', '%d') ON CONFLICT (key) DO UPDATE"
	         " SET value = excluded.value", n);
	rc = exec_ok(c, sql, "migrate: version", err, errlen);
	if (rc == 0)
		rc = exec_ok(c, "COMMIT", "migrate: commit", err, errlen);
	if (rc != 0)
		goto rollback;
	if (version < n) {
		log_notice("store", "migrated schema from version %d to %d",
		           version, n);
		/* Statistics now, not at autovacuum's leisure: a claim planned
		 * on a table without them sorts every queued row. */
		rc = exec_ok(c, "DO $$ BEGIN IF to_regclass('jobd.jobs') IS NOT"
		             " NULL THEN ANALYZE jobd.jobs; END IF; END $$",
		             "analyze", err, errlen);
	}
	return rc;
rollback:
	PQclear(PQexec(c, "ROLLBACK"));
	return rc;
}

/* Who holds the store (for the refusal), from pg_stat_activity. */
static void
lock_holder(struct pgs *s, PGconn *c, char *out, size_t len)
{
	char key[96];
	const char *v[1] = {key};
	PGresult *r;

	snprintf(key, sizeof(key), "jobd.node.%s", s->node);
	r = PQexecParams(c, "SELECT a.application_name || ' (backend pid '"
	                 " || a.pid || ', from ' || coalesce(host(a.client_addr),"
	                 " 'a local socket') || ')' FROM pg_locks l JOIN"
	                 " pg_stat_activity a ON a.pid = l.pid WHERE"
	                 " l.locktype = 'advisory' AND l.granted AND"
	                 " l.objid = hashtext($1)::oid"
	                 " AND a.pid <> pg_backend_pid() LIMIT 1", 1, NULL, v,
	                 NULL, NULL, 0);

	snprintf(out, len, "another session");
	if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) > 0)
		snprintf(out, len, "%s", PQgetvalue(r, 0, 0));
	PQclear(r);
}

/* ---- batches of rows ----
 *
 * Inserts, starts and completions need no answer before the next call
 * that wants one, so their rows are gathered and sent as one statement
 * each (unnest over arrays): a batch of 64 costs the server one statement,
 * not 64 (docs/postgres-store.md §9: ~2x).  They go out in the writer's
 * order: before any other statement, and when a row of an earlier kind
 * follows one of a later kind. */

static int
cb_put(struct colbuf *b, const char *text, size_t n)
{
	if (b->len + n + 2 > b->cap) {
		size_t cap = b->cap ? b->cap : 256;
		char *p;
		while (cap < b->len + n + 2)
			cap *= 2;
		p = realloc(b->p, cap);
		if (p == NULL)
			return JOBD_ENOMEM;
		b->p = p;
		b->cap = cap;
	}
	memcpy(b->p + b->len, text, n);
	b->len += n;
	b->p[b->len] = '\0';
	return 0;
}

/* Appends one element (NULL: SQL NULL) to a column's array literal,
 * quoted, with backslashes and quotes escaped. */
static int
cb_add(struct colbuf *b, const char *v)
{
	int rc = cb_put(b, b->len == 0 ? "{" : ",", 1);

	if (rc != 0)
		return rc;
	if (v == NULL)
		return cb_put(b, "NULL", 4);
	rc = cb_put(b, "\"", 1);
	while (rc == 0 && *v) {
		size_t run = strcspn(v, "\\\"");
		rc = cb_put(b, v, run);
		v += run;
		if (rc == 0 && *v) {
			char esc[2] = {'\\', *v++};
			rc = cb_put(b, esc, 2);
		}
	}
	return rc == 0 ? cb_put(b, "\"", 1) : rc;
}

static void
rows_reset(struct rows *r)
{
	for (int c = 0; c < MAX_COLS; c++)
		r->col[c].len = 0;
	r->n = 0;
	r->bytes = 0;
}

static void
rows_clear(struct pgs *s)
{
	for (int k = 0; k < NKINDS; k++)
		rows_reset(&s->rows[k]);
}

static void
rows_free(struct pgs *s)
{
	for (int k = 0; k < NKINDS; k++) {
		for (int c = 0; c < MAX_COLS; c++)
			free(s->rows[k].col[c].p);
		free(s->rows[k].ans);
	}
}

static void
w_close(struct pgs *s)
{
	if (s->w != NULL)
		PQfinish(s->w);
	s->w = NULL;
	for (int i = 0; i < SINK_RING; i++) {
		free(s->sinks[i].many);
		s->sinks[i] = (struct sink){0};
	}
	rows_clear(s);
	s->unread = 0;
	s->sink_head = 0;
	s->perr = 0;
	s->perr_server = false;
	s->in_tx = false;
	atomic_store(&s->wstate, WS_DOWN);
}

/* The writer connection broke: close it, reconnect later. */
static int
w_lost(struct pgs *s, int code)
{
	w_close(s);
	s->w_retry_ms = clock_mono_ms() + s->w_backoff_ms;
	return code;
}

/* Remembers a claim token the open transaction writes. */
static void
note_token(struct pgs *s, const char *token)
{
	for (int i = 0; i < s->ntx_tokens; i++)
		if (strcmp(s->tx_tokens[i], token) == 0)
			return;
	if (s->ntx_tokens < MAX_TOKENS)
		snprintf(s->tx_tokens[s->ntx_tokens++], CLAIM_TOKEN_MAX, "%s",
		         token);
}

static void
lose_tokens(struct pgs *s)
{
	for (int i = 0; i < s->ntx_tokens && s->nlost_tokens < MAX_TOKENS; i++)
		memcpy(s->lost_tokens[s->nlost_tokens++], s->tx_tokens[i],
		       CLAIM_TOKEN_MAX);
	s->ntx_tokens = 0;
}

/*
 * After a COMMIT whose outcome is unknown: the claims it wrote, if it did
 * commit, belong to no worker.  Gives them back (attempt not counted;
 * cancelled when a cancel was requested), before anything else runs on
 * the new connection.
 */
static int
give_back_lost(struct pgs *s, PGconn *c, char *err, size_t errlen)
{
	char arr[MAX_TOKENS * (CLAIM_TOKEN_MAX + 3) + 3];
	size_t used = 0;
	const char *v[2];
	char now[24];
	PGresult *r;
	int rc = 0;

	if (s->nlost_tokens == 0)
		return 0;
	used += (size_t)snprintf(arr, sizeof(arr), "{");
	for (int i = 0; i < s->nlost_tokens; i++)
		used += (size_t)snprintf(arr + used, sizeof(arr) - used,
		                         "%s\"%s\"", i ? "," : "",
		                         s->lost_tokens[i]);
	snprintf(arr + used, sizeof(arr) - used, "}");
	snprintf(now, sizeof(now), "%" PRId64, clock_now_us());
	v[0] = arr;
	v[1] = now;
	r = PQexecParams(c, "UPDATE jobd.jobs SET"
	                 " status = CASE WHEN cancel_requested = 1"
	                 "   THEN 'cancelled' ELSE 'queued' END,"
	                 " finished_at = CASE WHEN cancel_requested = 1"
	                 "   THEN $2::int8 ELSE NULL END,"
	                 " attempt = attempt - 1, attempt_started = 0,"
	                 " claim = NULL, due = 1, cancel_requested = 0"
	                 " WHERE status = 'running' AND claim = ANY ($1::text[])",
	                 2, NULL, v, NULL, NULL, 0);
	if (PQresultStatus(r) != PGRES_COMMAND_OK)
		rc = result_error(c, r, "give back the claims of an unknown "
		                  "commit", err, errlen);
	else if (atoi(PQcmdTuples(r)) > 0)
		log_notice("store", "gave back %s job(s) claimed by a "
		           "transaction whose COMMIT outcome was unknown",
		           PQcmdTuples(r));
	PQclear(r);
	if (rc == 0)
		s->nlost_tokens = 0;
	return rc;
}

/* This run's row in jobd.nodes (again after a reconnect: the same boot
 * id; a row marked dead stays dead, and the heartbeat starts a new life). */
static int
register_node(struct pgs *s, PGconn *c, char *err, size_t errlen)
{
	char pid[24], boot[33];
	const char *v[3] = {get_boot(s, boot), s->node, pid};
	PGresult *r;
	int rc = 0;

	snprintf(pid, sizeof(pid), "%ld", (long)getpid());
	r = PQexecParams(c, "INSERT INTO jobd.nodes (boot, name, pid)"
	                 " VALUES ($1, $2, $3) ON CONFLICT (boot) DO UPDATE"
	                 " SET seen_at = now()", 3, NULL, v, NULL, NULL, 0);
	if (PQresultStatus(r) != PGRES_COMMAND_OK)
		rc = result_error(c, r, "register the node", err, errlen);
	PQclear(r);
	return rc;
}

/* The latest heartbeat of this node name's other runs (ms since the
 * epoch, by the database's clock), or -1 when none beat lately. */
static int64_t
twin_seen(struct pgs *s, PGconn *c, char *who, size_t wholen)
{
	char boot[BUS_BOOT_LEN];
	const char *v[2] = {s->node, get_boot(s, boot)};
	PGresult *r = PQexecParams(c, "SELECT (extract(epoch FROM seen_at)"
	                           " * 1000)::int8, 'pid ' || pid || ' started "
	                           "' || started_at FROM jobd.nodes WHERE"
	                           " name = $1 AND boot <> $2 AND seen_at >"
	                           " now() - interval '10 seconds' ORDER BY"
	                           " seen_at DESC LIMIT 1", 2, NULL, v, NULL,
	                           NULL, 0);
	int64_t at = -1;

	if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) > 0) {
		at = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
		snprintf(who, wholen, "%s", PQgetvalue(r, 0, 1));
	}
	PQclear(r);
	return at;
}

/*
 * Holding the node name's lock is not proof enough that no other run of
 * this name is alive: its writer connection may have dropped (the lock
 * with it) while the daemon lives on.  Another run whose heartbeat still
 * advances is alive: refused.  One killed a moment ago stops beating:
 * waited out for two heartbeats at most.
 */
static int
refuse_live_twin(struct pgs *s, PGconn *c, char *err, size_t errlen)
{
	char who[160] = "";
	int64_t first = twin_seen(s, c, who, sizeof(who));
	int64_t every = s->lease_ms / 4 < 1000 ? s->lease_ms / 4 : 1000;
	int64_t until = clock_mono_ms() + 2 * every + 500;

	while (first >= 0 && clock_mono_ms() < until) {
		usleep(100 * 1000);
		if (twin_seen(s, c, who, sizeof(who)) > first)
			return jobd_seterr(err, errlen, JOBD_EBUSY, "the store is "
			                   "in use by another jobd as node \"%s\" "
			                   "(%s; its heartbeat goes on); give each "
			                   "jobd its own [store] node", s->node, who);
	}
	return 0;
}

/* Opens the writer connection: lock, migrations, statements.  0, or
 * JOBD_EUNAVAIL (try again later), or a refusal (JOBD_EINVAL/EBUSY). */
static int
w_connect(struct pgs *s, char *err, size_t errlen)
{
	PGconn *c = connect_to(s, true, err, errlen);
	PGresult *r;
	int rc;

	if (c == NULL)
		return JOBD_EUNAVAIL;
	{
		/* One live daemon per node name: holding the lock also proves
		 * the previous incarnation of this node is gone (its session
		 * ended), so start-up recovers its jobs at once.  A run killed
		 * a moment ago may still hold it until its backend reads the
		 * closed socket: waited for up to LOCK_WAIT_MS, then refused. */
		char key[96];
		const char *v[1] = {key};
		int64_t until = clock_mono_ms() + LOCK_WAIT_MS;
		snprintf(key, sizeof(key), "jobd.node.%s", s->node);
		for (;;) {
			r = PQexecParams(c, "SELECT pg_try_advisory_lock("
			                 "hashtext($1))", 1, NULL, v, NULL, NULL,
			                 0);
			if (PQresultStatus(r) != PGRES_TUPLES_OK ||
			    strcmp(PQgetvalue(r, 0, 0), "t") == 0 ||
			    clock_mono_ms() >= until)
				break;
			PQclear(r);
			usleep(100 * 1000);
		}
	}
	if (PQresultStatus(r) != PGRES_TUPLES_OK) {
		rc = result_error(c, r, "lock", err, errlen);
		PQclear(r);
		PQfinish(c);
		return rc;
	}
	if (strcmp(PQgetvalue(r, 0, 0), "t") != 0) {
		char who[256];
		PQclear(r);
		lock_holder(s, c, who, sizeof(who));
		PQfinish(c);
		return jobd_seterr(err, errlen, JOBD_EBUSY, "the store is in use "
		                   "by another jobd as node \"%s\": %s; give each "
		                   "jobd its own [store] node", s->node, who);
	}
	PQclear(r);
	rc = store_pg_migrate(c, migrations, SCHEMA_VERSION, err, errlen);
	if (rc == 0)
		rc = refuse_live_twin(s, c, err, errlen);
	if (rc == 0)
		rc = register_node(s, c, err, errlen);
	if (rc == 0)
		rc = give_back_lost(s, c, err, errlen);
	for (int i = 0; rc == 0 && i < W_NSTMT; i++) {
		char name[16];
		snprintf(name, sizeof(name), "w%d", i);
		r = PQprepare(c, name, writer_sql[i], 0, NULL);
		if (PQresultStatus(r) != PGRES_COMMAND_OK)
			rc = result_error(c, r, writer_sql[i], err, errlen);
		PQclear(r);
	}
	if (rc == 0 && PQenterPipelineMode(c) != 1)
		rc = jobd_seterr(err, errlen, JOBD_EUNAVAIL, "pg: cannot enter "
		                 "pipeline mode");
	if (rc != 0) {
		PQfinish(c);
		return rc;
	}
	s->w = c;
	s->unread = 0;
	s->perr = 0;
	s->in_tx = false;
	s->was_up = true;
	s->w_backoff_ms = BACKOFF_MIN_MS;
	atomic_store(&s->wstate, WS_UP);
	if (s->w_logged_down) {
		log_notice("store", "PostgreSQL is reachable again");
		s->w_logged_down = false;
	}
	return 0;
}

/* The writer connection, connecting when it is time to try. */
static int
w_ensure(struct pgs *s, char *err, size_t errlen)
{
	int rc;

	if (s->w != NULL)
		return 0;
	if (clock_mono_ms() < s->w_retry_ms)
		return jobd_seterr(err, errlen, JOBD_EUNAVAIL, "PostgreSQL is "
		                   "unreachable; reconnecting");
	rc = w_connect(s, err, errlen);
	if (rc == JOBD_EBUSY && s->was_up) {
		/* Another jobd took this node's name while our connection was
		 * down: two runs must not serve one name.  Fail-stop. */
		char why[400];
		snprintf(why, sizeof(why), "%s", err ? err : "");
		return jobd_seterr(err, errlen, JOBD_EIO, "%s; this jobd stops",
		                   why);
	}
	if (rc != 0) {
		if (!s->w_logged_down)
			log_err("store", "%s; retrying with backoff", err);
		s->w_logged_down = true;
		s->w_retry_ms = clock_mono_ms() + s->w_backoff_ms;
		s->w_backoff_ms = s->w_backoff_ms * 2 > BACKOFF_MAX_MS
		                  ? BACKOFF_MAX_MS : s->w_backoff_ms * 2;
	}
	return rc;
}

/* ---- the writer's pipeline ---- */

/* Sends a prepared statement without waiting for its answer; a fenced
 * UPDATE ... RETURNING status answers into *ans (may be NULL). */
static int rows_send(struct pgs *s, char *err, size_t errlen);

static int
w_send_to(struct pgs *s, int stmt, int n, const char *const *vals,
          struct store_answer *ans, char *err, size_t errlen)
{
	/* Gathered rows go first (the writer made them first). */
	if (stmt != W_INSERT_MANY && stmt != W_START_MANY &&
	    stmt != W_COMPLETE_MANY && s->w != NULL) {
		int rc = rows_send(s, err, errlen);
		if (rc != 0)
			return rc;
	}
	char name[16];

	if (s->w == NULL)
		return jobd_seterr(err, errlen, JOBD_EUNAVAIL, "PostgreSQL is "
		                   "unreachable");
	if (s->unread >= SINK_RING) /* never: callers drain at MAX_UNREAD */
		return jobd_seterr(err, errlen, JOBD_EUNAVAIL, "pg: pipeline "
		                   "too deep");
	snprintf(name, sizeof(name), "w%d", stmt);
	if (PQsendQueryPrepared(s->w, name, n, vals, NULL, NULL, 0) != 1) {
		char msg[300];
		bus_one_line(msg, sizeof(msg), PQerrorMessage(s->w));
		jobd_seterr(err, errlen, JOBD_EUNAVAIL, "pg: send: %s", msg);
		return w_lost(s, JOBD_EUNAVAIL);
	}
	s->sinks[(s->sink_head + s->unread) % SINK_RING] =
		(struct sink){.one = ans};
	s->unread++;
	return 0;
}

static int
w_send(struct pgs *s, int stmt, int n, const char *const *vals,
       char *err, size_t errlen)
{
	return w_send_to(s, stmt, n, vals, NULL, err, errlen);
}

static int
w_send_text(struct pgs *s, const char *sql, char *err, size_t errlen)
{
	if (strcmp(sql, "COMMIT") == 0) {
		int rc = rows_send(s, err, errlen);
		if (rc != 0)
			return rc;
	}
	if (PQsendQueryParams(s->w, sql, 0, NULL, NULL, NULL, NULL, 0) != 1) {
		char msg[300];
		bus_one_line(msg, sizeof(msg), PQerrorMessage(s->w));
		jobd_seterr(err, errlen, JOBD_EUNAVAIL, "pg: send: %s", msg);
		return w_lost(s, JOBD_EUNAVAIL);
	}
	s->sinks[(s->sink_head + s->unread) % SINK_RING] =
		(struct sink){.commit = strcmp(sql, "COMMIT") == 0};
	s->unread++;
	return 0;
}

/* Gives a query's answers to whoever waits for them: a row, the job's
 * status now; no row, a stale claim. */
static void
sink_fill(struct sink *sk, const PGresult *r)
{
	if (sk->one != NULL) {
		sk->one->rc = PQntuples(r) > 0 ? 0 : JOBD_ESTALE;
		sk->one->status = PQntuples(r) > 0
		                  ? job_status_parse(PQgetvalue(r, 0, 0)) : -1;
		sk->one->dependents = PQntuples(r) > 0 && PQnfields(r) > 1 &&
		                      strcmp(PQgetvalue(r, 0, 1), "0") != 0;
	}
	if (sk->many == NULL)
		return;
	for (int i = 0; i < sk->nmany; i++)
		if (sk->many[i] != NULL) {
			sk->many[i]->rc = JOBD_ESTALE;
			sk->many[i]->status = -1;
		}
	for (int i = 0; i < PQntuples(r); i++) {
		long n = strtol(PQgetvalue(r, i, 0), NULL, 10);
		if (n >= 1 && n <= sk->nmany && sk->many[n - 1] != NULL) {
			sk->many[n - 1]->rc = 0;
			sk->many[n - 1]->status =
				job_status_parse(PQgetvalue(r, i, 1));
			sk->many[n - 1]->dependents = PQnfields(r) > 2 &&
			    strcmp(PQgetvalue(r, i, 2), "0") != 0;
		}
	}
}

/*
 * Reads the results of the oldest unread query: its last result in *out
 * (when out is not NULL; the caller clears it).  The first error of the
 * pipeline is kept in s->perr and returned for every later query (they
 * come back PIPELINE_ABORTED).
 */
static int
w_read_one(struct pgs *s, PGresult **out, char *err, size_t errlen)
{
	PGresult *r, *last = NULL;

	if (out != NULL)
		*out = NULL;
	while ((r = PQgetResult(s->w)) != NULL) {
		ExecStatusType st = PQresultStatus(r);
		if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK) {
			PQclear(last);
			last = r;
			continue;
		}
		if (s->perr == 0 && st != PGRES_PIPELINE_ABORTED) {
			s->perr = result_error(s->w, r, "statement",
			                       s->perr_text,
			                       sizeof(s->perr_text));
			s->perr_server = PQresultErrorField(r,
			                     PG_DIAG_SQLSTATE) != NULL;
		}
		PQclear(r);
		if (st == PGRES_PIPELINE_SYNC)
			break; /* cannot happen: syncs are read by w_sync */
		if (PQstatus(s->w) == CONNECTION_BAD)
			break;
	}
	struct sink *sk = &s->sinks[s->sink_head];
	s->sink_head = (s->sink_head + 1) % SINK_RING;
	s->unread--;
	/* (A COMMIT answers "ROLLBACK" when the transaction had failed, and
	 * is never run after an error of the pipeline.) */
	if (sk->commit && last != NULL &&
	    PQresultStatus(last) == PGRES_COMMAND_OK &&
	    strcmp(PQcmdStatus(last), "COMMIT") == 0)
		s->commit_ok = true;
	if (last != NULL && s->perr == 0)
		sink_fill(sk, last);
	free(sk->many);
	*sk = (struct sink){0};
	if (s->perr == 0 && PQstatus(s->w) == CONNECTION_BAD) {
		s->perr = result_error(s->w, NULL, "connection", s->perr_text,
		                       sizeof(s->perr_text));
		s->perr_server = false;
	}
	if (s->perr != 0) {
		PQclear(last);
		return jobd_seterr(err, errlen, s->perr, "%s", s->perr_text);
	}
	if (out != NULL)
		*out = last;
	else
		PQclear(last);
	return 0;
}

/* Asks the server for every answer so far and reads all of them; the
 * last query's result goes to *out (may be NULL). */
static int
w_drain(struct pgs *s, PGresult **out, char *err, size_t errlen)
{
	int rc = 0;

	if (out != NULL)
		*out = NULL;
	if (out == NULL && s->w != NULL) {
		/* (A call wanting a result sent its statement after them.) */
		rc = rows_send(s, err, errlen);
		if (rc != 0)
			return rc;
	}
	if (s->unread == 0)
		return s->perr ? jobd_seterr(err, errlen, s->perr, "%s",
		                             s->perr_text) : 0;
	if (PQsendFlushRequest(s->w) != 1 || PQflush(s->w) != 0) {
		char msg[300];
		bus_one_line(msg, sizeof(msg), PQerrorMessage(s->w));
		jobd_seterr(err, errlen, JOBD_EUNAVAIL, "pg: flush: %s", msg);
		return w_lost(s, JOBD_EUNAVAIL);
	}
	while (s->unread > 0) {
		int r1 = w_read_one(s, s->unread == 1 ? out : NULL, err,
		                    errlen);
		if (r1 != 0 && rc == 0)
			rc = r1;
		if (PQstatus(s->w) == CONNECTION_BAD)
			return w_lost(s, rc ? rc : JOBD_EUNAVAIL);
	}
	return rc;
}

/* Sends a statement and waits for its answer (and every earlier one). */
static int
w_call(struct pgs *s, int stmt, int n, const char *const *vals,
       PGresult **out, char *err, size_t errlen)
{
	int rc = w_send(s, stmt, n, vals, err, errlen);

	if (rc != 0)
		return rc;
	rc = w_drain(s, out, err, errlen);
	if (rc != 0 && out != NULL) {
		PQclear(*out);
		*out = NULL;
	}
	return rc;
}

/* A sent statement whose answer can wait (read with the next call). */
static int
w_defer_to(struct pgs *s, int stmt, int n, const char *const *vals,
           struct store_answer *ans, char *err, size_t errlen)
{
	int rc = w_send_to(s, stmt, n, vals, ans, err, errlen);

	if (rc == 0 && s->unread >= MAX_UNREAD)
		rc = w_drain(s, NULL, err, errlen);
	return rc;
}

static int
w_defer(struct pgs *s, int stmt, int n, const char *const *vals,
        char *err, size_t errlen)
{
	return w_defer_to(s, stmt, n, vals, NULL, err, errlen);
}

/* Sends the gathered rows of every kind, in order, each as one array
 * statement. */
static int
rows_send(struct pgs *s, char *err, size_t errlen)
{
	static const int stmt[NKINDS] = {W_INSERT_MANY, W_START_MANY,
	                                 W_COMPLETE_MANY};
	static const int ncols[NKINDS] = {14, 3, 12};

	for (int k = 0; k < NKINDS; k++) {
		struct rows *r = &s->rows[k];
		const char *v[MAX_COLS + 1];
		struct sink sk = {0};
		int rc;
		if (r->n == 0)
			continue;
		for (int c = 0; c < ncols[k]; c++) {
			if (cb_put(&r->col[c], "}", 1) != 0)
				return jobd_seterr(err, errlen, JOBD_ENOMEM,
				                   "out of memory");
			v[c] = r->col[c].p;
		}
		if (k == K_COMPLETE) {
			sk.many = malloc((size_t)r->n * sizeof(*sk.many));
			if (sk.many == NULL)
				return jobd_seterr(err, errlen, JOBD_ENOMEM,
				                   "out of memory");
			memcpy(sk.many, r->ans, (size_t)r->n * sizeof(*sk.many));
			sk.nmany = r->n;
		}
		/* The inserts' node: this run (for rows inserted claimed). */
		int n = ncols[k];
		char boot[BUS_BOOT_LEN];
		if (k == K_INSERT)
			v[n++] = get_boot(s, boot);
		rc = w_send_to(s, stmt[k], n, v, NULL, err, errlen);
		if (rc != 0) {
			free(sk.many);
			return rc;
		}
		/* The answers' sink (w_send_to left an empty one). */
		s->sinks[(s->sink_head + s->unread - 1) % SINK_RING] = sk;
		rows_reset(r);
	}
	return 0;
}

/*
 * Adds a row of kind k (its ncols values; ans: K_COMPLETE's answer).
 * Rows of an earlier kind than some gathered ones go out first, so that
 * statements keep the writer's order.
 */
static int
rows_add(struct pgs *s, int k, const char *const *vals, int ncols,
         struct store_answer *ans, char *err, size_t errlen)
{
	struct rows *r = &s->rows[k];
	int rc = 0;

	if (s->w == NULL)
		return jobd_seterr(err, errlen, JOBD_EUNAVAIL, "PostgreSQL is "
		                   "unreachable");
	for (int later = k + 1; later < NKINDS && rc == 0; later++)
		if (s->rows[later].n > 0)
			rc = rows_send(s, err, errlen);
	if (rc != 0)
		return rc;
	if (k == K_COMPLETE && r->n == r->capans) {
		int cap = r->capans ? r->capans * 2 : 64;
		struct store_answer **a = realloc(r->ans,
		                                  (size_t)cap * sizeof(*a));
		if (a == NULL)
			return jobd_seterr(err, errlen, JOBD_ENOMEM,
			                   "out of memory");
		r->ans = a;
		r->capans = cap;
	}
	for (int c = 0; c < ncols; c++) {
		if (cb_add(&r->col[c], vals[c]) != 0)
			return jobd_seterr(err, errlen, JOBD_ENOMEM,
			                   "out of memory");
		r->bytes += vals[c] ? strlen(vals[c]) : 4;
	}
	if (k == K_COMPLETE)
		r->ans[r->n] = ans;
	r->n++;
	/* Bounded: a statement of a few MiB at most, and the answers owed
	 * read before the pipeline gets deeper than MAX_UNREAD. */
	if (r->n >= 1024 || r->bytes >= (4u << 20))
		rc = rows_send(s, err, errlen);
	if (rc == 0 && s->unread >= MAX_UNREAD)
		rc = w_drain(s, NULL, err, errlen);
	return rc;
}

/* Ends the pipeline segment: a Sync, then every answer up to it. */
static int
w_sync(struct pgs *s, char *err, size_t errlen)
{
	PGresult *r;
	int rc = 0;

	if (PQpipelineSync(s->w) != 1) {
		char msg[300];
		bus_one_line(msg, sizeof(msg), PQerrorMessage(s->w));
		jobd_seterr(err, errlen, JOBD_EUNAVAIL, "pg: sync: %s", msg);
		return w_lost(s, JOBD_EUNAVAIL);
	}
	while (s->unread > 0) {
		int r1 = w_read_one(s, NULL, err, errlen);
		if (r1 != 0 && rc == 0)
			rc = r1;
		if (PQstatus(s->w) == CONNECTION_BAD) {
			s->last_perr_server = s->perr_server;
			return w_lost(s, rc ? rc : JOBD_EUNAVAIL);
		}
	}
	for (int nulls = 0;;) {
		r = PQgetResult(s->w);
		if (r == NULL) {
			if (PQstatus(s->w) == CONNECTION_BAD || ++nulls > 4) {
				if (rc == 0)
					rc = result_error(s->w, NULL, "sync",
					                  err, errlen);
				s->last_perr_server = s->perr_server;
				return w_lost(s, rc);
			}
			continue;
		}
		nulls = 0;
		if (PQresultStatus(r) == PGRES_PIPELINE_SYNC) {
			PQclear(r);
			break;
		}
		PQclear(r);
	}
	s->last_perr_server = s->perr_server;
	s->perr = 0;
	s->perr_server = false;
	return rc;
}

/* ---- nodes: the bus (bus.c) does heartbeats, leader, rescue, fencing
 * and wake-ups; what it needs of the store is below ---- */

static bool
node_name_ok(const char *n)
{
	size_t len = strlen(n);

	if (len < 1 || len > 63)
		return false;
	return strspn(n, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
	              "0123456789._-") == len;
}

static PGconn *
bus_connect(void *arg, char *err, size_t errlen)
{
	return connect_to(arg, false, err, errlen);
}

static int
bus_register(void *arg, PGconn *c, char *err, size_t errlen)
{
	return register_node(arg, c, err, errlen);
}

static bool
bus_writer_up(void *arg)
{
	return atomic_load(&((struct pgs *)arg)->wstate) == WS_UP;
}

static void
pg_set_hooks(void *impl, const struct store_hooks *h)
{
	bus_set_hooks(((struct pgs *)impl)->bus, h);
}

static bool
pg_may_claim(void *impl)
{
	return !bus_fenced(((struct pgs *)impl)->bus);
}

static bool
pg_listening(void *impl)
{
	return bus_listening(((struct pgs *)impl)->bus);
}

/* Writer: one NOTIFY in this transaction, sent with the next statement. */
static int
pg_notify_work(void *impl, char *err, size_t errlen)
{
	struct pgs *s = impl;
	char boot[BUS_BOOT_LEN];
	const char *v[1] = {get_boot(s, boot)};
	int rc;

	if (s->notified)
		return 0;
	rc = w_defer(s, W_NOTIFY, 1, v, err, errlen);
	if (rc == 0)
		s->notified = true;
	return rc;
}

/* ---- open, close ---- */

static int
pg_open(const char *path, const struct store_options *opt, void **impl,
        char *err, size_t errlen)
{
	struct pgs *s;
	char host[64] = "?";
	const char *node;
	int rc;

	gethostname(host, sizeof(host) - 1);
	node = opt->node != NULL && opt->node[0] ? opt->node : host;
	if (!node_name_ok(node))
		return jobd_seterr(err, errlen, JOBD_EINVAL, "[store] node must "
		                   "be 1 to 63 of A-Z a-z 0-9 . _ -");
	s = calloc(1, sizeof(*s));
	if (s == NULL)
		return jobd_seterr(err, errlen, JOBD_ENOMEM, "out of memory");
	s->uri = strdup(path);
	s->nreaders = opt->pool > 0 ? (size_t)opt->pool : 4;
	s->readers = calloc(s->nreaders, sizeof(*s->readers));
	if (s->uri == NULL || s->readers == NULL) {
		free(s->uri);
		free(s->readers);
		free(s);
		return jobd_seterr(err, errlen, JOBD_ENOMEM, "out of memory");
	}
	s->durability_full = opt->durability_full;
	s->lease_ms = opt->lease_ms > 0 ? opt->lease_ms : 30000;
	snprintf(s->node, sizeof(s->node), "%s", node);
	snprintf(s->appname, sizeof(s->appname), "jobd pid %ld on %s, node %s",
	         (long)getpid(), host, s->node);
	s->bus = bus_new(&(struct bus_config){
		.node = s->node, .lease_ms = s->lease_ms,
		.retention_ms = opt->retention_ms > 0 ? opt->retention_ms
		    : 7 * 86400000LL,
		.connect = bus_connect, .register_node = bus_register,
		.writer_up = bus_writer_up, .arg = s}, err, errlen);
	if (s->bus == NULL) {
		free(s->uri);
		free(s->readers);
		free(s);
		return JOBD_ENOMEM;
	}
	pthread_mutex_init(&s->pool_mu, NULL);
	pthread_cond_init(&s->pool_cond, NULL);
	s->w_backoff_ms = s->r_backoff_ms = BACKOFF_MIN_MS;
	atomic_store(&s->wstate, WS_DOWN);
	rc = w_connect(s, err, errlen);
	if (rc == JOBD_EUNAVAIL) {
		/* Not up yet: jobd starts, not ready, and keeps trying. */
		log_err("store", "%s; jobd starts and retries with backoff "
		        "(not ready until then)", err);
		s->w_logged_down = true;
		s->w_retry_ms = clock_mono_ms() + s->w_backoff_ms;
		rc = 0;
	}
	if (rc == 0)
		rc = bus_start(s->bus, err, errlen);
	if (rc != 0) {
		w_close(s);
		rows_free(s);
		bus_free(s->bus);
		pthread_mutex_destroy(&s->pool_mu);
		pthread_cond_destroy(&s->pool_cond);
		free(s->readers);
		free(s->uri);
		free(s);
		return rc;
	}
	*impl = s;
	return 0;
}

static void
pg_close(void *impl)
{
	struct pgs *s = impl;

	if (s == NULL)
		return;
	bus_free(s->bus);
	w_close(s);
	rows_free(s);
	for (size_t i = 0; i < s->nreaders; i++)
		if (s->readers[i].c != NULL)
			PQfinish(s->readers[i].c);
	pthread_mutex_destroy(&s->pool_mu);
	pthread_cond_destroy(&s->pool_cond);
	free(s->readers);
	free(s->uri);
	free(s);
}

/* ---- rows ---- */

static char *
val_dup(const PGresult *r, int row, int col)
{
	return PQgetisnull(r, row, col) ? NULL
	       : strdup(PQgetvalue(r, row, col));
}

static int64_t
val_time(const PGresult *r, int row, int col)
{
	return PQgetisnull(r, row, col) ? -1
	       : strtoll(PQgetvalue(r, row, col), NULL, 10);
}

static int
val_int(const PGresult *r, int row, int col)
{
	return (int)strtol(PQgetvalue(r, row, col), NULL, 10);
}

static int
row_to_job(const PGresult *r, int row, struct job *job)
{
	job_init(job);
	snprintf(job->id, sizeof(job->id), "%s", PQgetvalue(r, row, 0));
	snprintf(job->type, sizeof(job->type), "%s", PQgetvalue(r, row, 1));
	job->status = job_status_parse(PQgetvalue(r, row, 2));
	job->priority = val_int(r, row, 3);
	job->attempt = val_int(r, row, 4);
	job->max_attempts = val_int(r, row, 5);
	job->timeout_ms = val_time(r, row, 6);
	job->created_at_us = val_time(r, row, 7);
	job->run_at_us = val_time(r, row, 8);
	job->started_at_us = val_time(r, row, 9);
	job->finished_at_us = val_time(r, row, 10);
	job->payload = val_dup(r, row, 11);
	job->result = val_dup(r, row, 12);
	job->error = val_dup(r, row, 13);
	job->has_exit_code = !PQgetisnull(r, row, 14);
	job->exit_code = job->has_exit_code ? val_int(r, row, 14) : 0;
	job->cancel_on_disconnect = val_int(r, row, 15) != 0;
	snprintf(job->claim, sizeof(job->claim), "%s", PQgetvalue(r, row, 16));
	job->idem_key = val_dup(r, row, 17);
	job->idem_fp = val_dup(r, row, 18);
	job->output_truncated = val_int(r, row, 19) != 0;
	job->depends_on = PQnfields(r) > 20 ? val_dup(r, row, 20) : NULL;
	job->progress = PQnfields(r) > 21 ? val_dup(r, row, 21) : NULL;
	job->callback = PQnfields(r) > 22 ? val_dup(r, row, 22) : NULL;
	if (PQnfields(r) > 22 && !PQgetisnull(r, row, 22) && !job->callback) {
		job_clear(job);
		return JOBD_ENOMEM;
	}
	if (job->payload == NULL ||
	    (PQnfields(r) > 21 && !PQgetisnull(r, row, 21) &&
	     !job->progress) ||
	    (PQnfields(r) > 20 && !PQgetisnull(r, row, 20) &&
	     !job->depends_on) ||
	    (!PQgetisnull(r, row, 12) && !job->result) ||
	    (!PQgetisnull(r, row, 13) && !job->error) ||
	    (!PQgetisnull(r, row, 17) && !job->idem_key) ||
	    (!PQgetisnull(r, row, 18) && !job->idem_fp)) {
		job_clear(job);
		return JOBD_ENOMEM;
	}
	return 0;
}

/* The first n rows of r into jobs[] (zeroed by the caller); on failure
 * none is left to clear. */
static int
rows_to_jobs(const PGresult *r, int n, struct job *jobs, char *err,
             size_t errlen)
{
	for (int i = 0; i < n; i++) {
		if (row_to_job(r, i, &jobs[i]) != 0) {
			for (int j = 0; j < i; j++)
				job_clear(&jobs[j]);
			return jobd_seterr(err, errlen, JOBD_ENOMEM,
			                   "out of memory");
		}
	}
	return 0;
}

/* Text of an int64 parameter (buffer of 24). */
static const char *
i64(char *buf, int64_t v)
{
	snprintf(buf, 24, "%" PRId64, v);
	return buf;
}

/* ---- writer calls ---- */

static int
pg_begin(void *impl, char *err, size_t errlen)
{
	struct pgs *s = impl;
	int rc;

	/* A server that restarted (or an administrator) ended the idle
	 * connection: read what it said before sending a transaction into
	 * it, and reconnect at once. */
	if (s->w != NULL && conn_idle_broken(s->w)) {
		log_info("store", "pg: the idle writer connection was closed; "
		         "reconnecting");
		w_close(s);
		s->w_retry_ms = 0;
	}
	rc = w_ensure(s, err, errlen);
	if (rc != 0)
		return rc;
	/* Sent, not waited for: its answer comes with the next call's. */
	rc = w_send_text(s, "BEGIN", err, errlen);
	if (rc == 0)
		s->in_tx = true;
	s->notified = false;
	s->ntx_tokens = 0;
	return rc;
}

static int
pg_commit(void *impl, char *err, size_t errlen)
{
	struct pgs *s = impl;
	int rc;

	if (s->w == NULL)
		return jobd_seterr(err, errlen, JOBD_EUNAVAIL, "PostgreSQL is "
		                   "unreachable");
	s->commit_ok = false;
	rc = w_send_text(s, "COMMIT", err, errlen);
	if (rc != 0)
		return rc;
	rc = w_sync(s, err, errlen);
	if (rc != 0 && s->commit_ok) {
		/* COMMIT answered, then the connection went (a terminated
		 * backend says FATAL after the COMMIT it was running): it
		 * committed.  The next call reconnects. */
		log_info("store", "pg: the connection was lost after the "
		         "COMMIT had answered (%s); the transaction committed",
		         err ? err : "");
		s->ntx_tokens = 0;
		s->in_tx = false;
		return 0;
	}
	if (rc != 0) {
		/* An error the server reported (even FATAL) means it did not
		 * commit; a connection gone silent with COMMIT in flight may
		 * have. */
		if (s->w == NULL && !s->last_perr_server) {
			/* The connection went with the COMMIT in flight: it may
			 * or may not have committed.  Nothing of it is
			 * acknowledged (the writer answers 503); its claims are
			 * given back after the reconnect. */
			char why[400];
			snprintf(why, sizeof(why), "%s", err ? err : "");
			lose_tokens(s);
			return jobd_seterr(err, errlen, rc, "%s (the outcome "
			                   "of the COMMIT is unknown)", why);
		}
		return rc;
	}
	s->ntx_tokens = 0;
	if (PQtransactionStatus(s->w) != PQTRANS_IDLE)
		return jobd_seterr(err, errlen, JOBD_EUNAVAIL,
		                   "pg: COMMIT left the transaction open");
	s->in_tx = false;
	return 0;
}

static void
pg_rollback(void *impl)
{
	struct pgs *s = impl;
	char err[256];

	rows_clear(s);
	if (s->w == NULL)
		return;
	if (w_sync(s, err, sizeof(err)) != 0 && s->w == NULL)
		return;
	if (PQtransactionStatus(s->w) != PQTRANS_IDLE) {
		if (w_send_text(s, "ROLLBACK", err, sizeof(err)) != 0)
			return;
		w_sync(s, err, sizeof(err));
	}
	if (s->w != NULL && PQtransactionStatus(s->w) != PQTRANS_IDLE) {
		log_err("store", "pg: the transaction would not roll back; "
		        "reconnecting");
		w_lost(s, JOBD_EUNAVAIL);
	}
	s->in_tx = false;
	s->ntx_tokens = 0;
}

static int
pg_insert(void *impl, const struct job *job, char *err, size_t errlen)
{
	struct pgs *s = impl;
	char b[6][24];
	const char *v[14];
	bool claimed = job->status == JOB_RUNNING;

	v[0] = job->id;
	v[1] = job->type;
	v[2] = i64(b[0], job->priority);
	v[3] = i64(b[1], job->max_attempts);
	v[4] = i64(b[2], job->timeout_ms);
	v[5] = i64(b[3], job->created_at_us);
	v[6] = i64(b[4], job->run_at_us);
	v[7] = job->payload ? job->payload : "null";
	v[8] = job->cancel_on_disconnect ? "1" : "0";
	v[9] = job->idem_key;
	v[10] = job->idem_fp;
	v[11] = claimed ? job->claim : NULL;
	v[12] = claimed ? i64(b[5], job->started_at_us) : NULL;
	v[13] = claimed && job->attempt_started ? "1" : "0";
	if (claimed)
		note_token(s, job->claim);
	/* Gathered with the batch's other inserts: one statement (a
	 * duplicate id fails the batch then: jobd's ids are UUIDv7s, keys
	 * were looked up first). */
	return rows_add(s, K_INSERT, v, 14, NULL, err, errlen);
}

static int
pg_find_idem(void *impl, const char *key, struct job *out, char *err,
             size_t errlen)
{
	struct pgs *s = impl;
	const char *v[1] = {key};
	PGresult *r;
	int rc = w_call(s, W_FIND_IDEM, 1, v, &r, err, errlen);

	if (rc != 0)
		return rc;
	if (PQntuples(r) == 0)
		rc = JOBD_ENOTFOUND;
	else
		rc = row_to_job(r, 0, out);
	PQclear(r);
	return rc;
}

static int
pg_claim(void *impl, const struct store_claim_req *req, struct job **out,
         size_t *nout, char *err, size_t errlen)
{
	struct pgs *s = impl;
	char now[24], lim[24], boot[33], *types = NULL;
	const char *v[5];
	struct job *jobs = NULL;
	PGresult *r = NULL;
	size_t len = 3, used = 0;
	int rc, n = 0;

	*out = NULL;
	*nout = 0;
	v[0] = i64(now, req->now_us);
	/* Jobs whose run_at has come join the due ones. */
	rc = w_defer(s, W_PROMOTE, 1, v, err, errlen);
	if (rc != 0 || req->limit == 0 || req->nincluded == 0)
		return rc;
	/* An array literal of the types (names are [A-Za-z0-9_.-]). */
	for (size_t i = 0; i < req->nincluded; i++)
		len += strlen(req->included[i]) + 3;
	types = malloc(len);
	if (types == NULL)
		return jobd_seterr(err, errlen, JOBD_ENOMEM, "out of memory");
	used += (size_t)snprintf(types, len, "{");
	for (size_t i = 0; i < req->nincluded; i++)
		used += (size_t)snprintf(types + used, len - used, "%s\"%s\"",
		                         i ? "," : "", req->included[i]);
	snprintf(types + used, len - used, "}");
	v[1] = req->claim;
	note_token(s, req->claim);
	v[2] = types;
	v[3] = i64(lim, (int64_t)req->limit);
	v[4] = get_boot(s, boot);
	rc = w_call(s, W_CLAIM, 5, v, &r, err, errlen);
	free(types);
	if (rc != 0)
		return rc;
	n = PQntuples(r);
	if (n > 0) {
		jobs = calloc((size_t)n, sizeof(*jobs));
		if (jobs == NULL) {
			PQclear(r);
			return jobd_seterr(err, errlen, JOBD_ENOMEM,
			                   "out of memory");
		}
	}
	rc = rows_to_jobs(r, n, jobs, err, errlen);
	PQclear(r);
	if (rc != 0) {
		free(jobs);
		return rc;
	}
	if (n > 0) {
		/* RETURNING gives rows in no particular order. */
		qsort(jobs, (size_t)n, sizeof(*jobs), job_cmp_claim_order);
		*out = jobs;
		*nout = (size_t)n;
	}
	return 0;
}

static int
pg_complete(void *impl, const struct store_completion *c,
            struct store_answer *ans, char *err, size_t errlen)
{
	struct pgs *s = impl;
	char b[5][24];
	const char *v[12];

	v[0] = c->id;
	v[1] = c->claim;
	v[2] = job_status_name(c->status);
	v[3] = c->status == JOB_QUEUED ? i64(b[0], c->run_at_us) : NULL;
	v[4] = job_status_is_final(c->status) && c->finished_at_us >= 0
	       ? i64(b[1], c->finished_at_us) : NULL;
	v[5] = c->result;
	v[6] = c->error;
	v[7] = c->has_exit_code ? i64(b[2], c->exit_code) : NULL;
	v[8] = c->output_truncated ? "1" : "0";
	v[9] = c->started_at_us > 0 ? i64(b[3], c->started_at_us) : NULL;
	v[10] = i64(b[4], c->now_us);
	v[11] = c->progress;
	/* Gathered: a batch of results is one statement, answered by the
	 * next flush. */
	return rows_add(s, K_COMPLETE, v, 12, ans, err, errlen);
}

static int
pg_put_back(void *impl, const char *id, const char *claim, int64_t now_us,
            struct store_answer *ans, char *err, size_t errlen)
{
	char b[24];
	const char *v[3] = {id, claim, i64(b, now_us)};

	return w_defer_to(impl, W_PUT_BACK, 3, v, ans, err, errlen);
}

static int
pg_flush(void *impl, char *err, size_t errlen)
{
	struct pgs *s = impl;

	if (s->w == NULL)
		return jobd_seterr(err, errlen, JOBD_EUNAVAIL, "PostgreSQL is "
		                   "unreachable");
	return w_drain(s, NULL, err, errlen);
}

/* Deferred: a report whose claim is gone changes nothing. */
static int
pg_progress(void *impl, const char *id, const char *claim, const char *json,
            char *err, size_t errlen)
{
	const char *v[3] = {id, claim, json};

	return w_defer(impl, W_PROGRESS, 3, v, err, errlen);
}

static int
pg_start(void *impl, const char *id, const char *claim, int64_t started_at_us,
         char *err, size_t errlen)
{
	char b[24];
	const char *v[3] = {id, claim, i64(b, started_at_us)};

	/* Deferred: a start whose claim is gone changes nothing, and the
	 * writer ignores ESTALE from starts. */
	return rows_add(impl, K_START, v, 3, NULL, err, errlen);
}

static int
status_of(struct pgs *s, const char *id, int *status, char *err,
          size_t errlen)
{
	const char *v[1] = {id};
	PGresult *r;
	int rc = w_call(s, W_STATUS_OF, 1, v, &r, err, errlen);

	if (rc != 0)
		return rc;
	if (PQntuples(r) == 0)
		rc = jobd_seterr(err, errlen, JOBD_ENOTFOUND, "no job %s", id);
	else
		*status = job_status_parse(PQgetvalue(r, 0, 0));
	PQclear(r);
	return rc;
}

static int
changed(struct pgs *s, int stmt, int n, const char *const *v, int *rows,
        char *err, size_t errlen)
{
	PGresult *r;
	int rc = w_call(s, stmt, n, v, &r, err, errlen);

	if (rc != 0)
		return rc;
	*rows = atoi(PQcmdTuples(r));
	PQclear(r);
	return 0;
}

static int
pg_cancel(void *impl, const char *id, int64_t now_us, int *status, char *err,
          size_t errlen)
{
	struct pgs *s = impl;
	char b[24];
	const char *v[2] = {id, i64(b, now_us)};
	int rows, rc = changed(s, W_CANCEL, 2, v, &rows, err, errlen);

	if (rc != 0)
		return rc;
	if (rows > 0) {
		*status = JOB_CANCELLED;
		return 0;
	}
	rc = status_of(s, id, status, err, errlen);
	if (rc != 0)
		return rc;
	if (*status == JOB_RUNNING) {
		char boot[BUS_BOOT_LEN];
		const char *m[2] = {id, get_boot(s, boot)};
		rc = w_defer(s, W_MARK_CANCEL, 2, m, err, errlen);
		if (rc != 0)
			return rc;
	}
	return jobd_seterr(err, errlen, JOBD_ECONFLICT, "job %s is %s", id,
	                   job_status_name(*status));
}

static int
pg_retry(void *impl, const char *id, int64_t now_us, int *status, char *err,
         size_t errlen)
{
	struct pgs *s = impl;
	char b[24];
	const char *v[2] = {id, i64(b, now_us)};
	int before, rows, rc = status_of(s, id, &before, err, errlen);

	if (rc != 0)
		return rc;
	rc = changed(s, W_RETRY, 2, v, &rows, err, errlen);
	if (rc != 0)
		return rc;
	*status = before;
	if (rows > 0)
		return 0;
	return jobd_seterr(err, errlen, JOBD_ECONFLICT, "job %s is %s", id,
	                   job_status_name(before));
}

static int
pg_recover(void *impl, int64_t now_us, int *requeued, int *failed,
           char *err, size_t errlen)
{
	struct pgs *s = impl;
	char b[24];
	/* Only the jobs this node name's earlier runs left running: other
	 * nodes' are theirs (or the leader's rescue's). */
	char boot[BUS_BOOT_LEN];
	const char *v[3] = {i64(b, now_us), s->node, get_boot(s, boot)};
	const int steps[] = {W_RECOVER_CANCEL, W_RECOVER_FAIL,
	                     W_RECOVER_REQUEUE};
	int rows, rc;

	*requeued = *failed = 0;
	for (size_t i = 0; i < 3; i++) {
		rc = changed(s, steps[i], 3, v, &rows, err, errlen);
		if (rc != 0)
			return rc;
		if (steps[i] == W_RECOVER_REQUEUE)
			*requeued += rows;
		else
			*failed += rows;
	}
	return changed(s, W_FORGET_OLD, 2, v + 1, &rows, err, errlen);
}

static int
pg_purge(void *impl, int64_t cutoff_us, int limit,
         int64_t deleted[JOB_NSTATUS], char *err, size_t errlen)
{
	struct pgs *s = impl;
	char b[2][24];
	const char *v[2] = {i64(b[0], cutoff_us), i64(b[1], limit)};
	PGresult *r;
	int rc = w_call(s, W_PURGE, 2, v, &r, err, errlen);

	if (rc != 0)
		return rc;
	for (int i = 0; i < PQntuples(r); i++) {
		int st = job_status_parse(PQgetvalue(r, i, 0));
		if (st >= 0)
			deleted[st]++;
	}
	PQclear(r);
	return 0;
}

static int
pg_next_run_at(void *impl, int64_t *out_us, char *err, size_t errlen)
{
	struct pgs *s = impl;
	PGresult *r;
	int rc;

	/* Outside a transaction too (after a commit): then it is a
	 * pipeline segment of its own. */
	rc = w_ensure(s, err, errlen);
	if (rc != 0)
		return rc;
	rc = w_call(s, W_NEXT_RUN_AT, 0, NULL, &r, err, errlen);
	if (rc == 0) {
		*out_us = PQntuples(r) > 0 ? val_time(r, 0, 0) : -1;
		PQclear(r);
	}
	if (!s->in_tx && s->w != NULL) {
		char e2[256];
		int rc2 = w_sync(s, e2, sizeof(e2));
		if (rc == 0 && rc2 != 0)
			rc = jobd_seterr(err, errlen, rc2, "%s", e2);
	}
	return rc;
}

/* The paused types, read inside the writer's transaction: one round
 * trip, at every claim (another node may have paused a type). */
static int
pg_pauses(void *impl, store_pause_fn fn, void *arg, char *err, size_t errlen)
{
	struct pgs *s = impl;
	PGresult *r;
	int rc = w_call(s, W_PAUSES, 0, NULL, &r, err, errlen);

	if (rc != 0)
		return rc;
	for (int i = 0; i < PQntuples(r); i++)
		fn(arg, PQgetvalue(r, i, 0));
	PQclear(r);
	return 0;
}

static int
pg_set_pause(void *impl, const char *type, bool paused, int64_t now_us,
             char *err, size_t errlen)
{
	char b[24];
	const char *v[2] = {type, i64(b, now_us)};

	/* Deferred: its answer comes with the next call or the commit. */
	return w_defer(impl, paused ? W_PAUSE : W_RESUME, paused ? 2 : 1, v,
	               err, errlen);
}

static int
pg_set_callback(void *impl, const char *id, const char *url, char *err,
                size_t errlen)
{
	const char *v[2] = {id, url};

	/* Deferred, after the gathered inserts (w_send_to sends them). */
	return w_defer(impl, W_CB_SET, 2, v, err, errlen);
}

static int
pg_outbox_claim(void *impl, const struct store_outbox_claim_req *req,
                struct store_outbox_row **out, size_t *nout,
                int64_t *next_us, char *err, size_t errlen)
{
	struct pgs *s = impl;
	struct store_outbox_row *rows = NULL;
	char b[3][24];
	const char *v[4] = {req->claim, i64(b[0], req->until_us),
	                    i64(b[1], req->now_us),
	                    i64(b[2], (int64_t)req->limit)};
	PGresult *r = NULL;
	int rc, n;

	/* (req->release is for a store no other daemon shares: a node of
	 * PostgreSQL waits for another's claims to run out.) */
	*out = NULL;
	*nout = 0;
	*next_us = -1;
	rc = w_call(s, W_CB_CLAIM, 4, v, &r, err, errlen);
	if (rc != 0)
		return rc;
	n = PQntuples(r);
	rows = calloc(n > 0 ? (size_t)n : 1, sizeof(*rows));
	if (rows == NULL) {
		PQclear(r);
		return jobd_seterr(err, errlen, JOBD_ENOMEM, "out of memory");
	}
	for (int i = 0; i < n; i++) {
		snprintf(rows[i].id, sizeof(rows[i].id), "%s",
		         PQgetvalue(r, i, 0));
		rows[i].url = val_dup(r, i, 1);
		rows[i].attempts = val_int(r, i, 2);
		if (rows[i].url == NULL)
			rc = jobd_seterr(err, errlen, JOBD_ENOMEM,
			                 "out of memory");
	}
	PQclear(r);
	if (rc == 0)
		rc = w_call(s, W_CB_NEXT, 0, NULL, &r, err, errlen);
	if (rc == 0) {
		*next_us = PQntuples(r) > 0 ? val_time(r, 0, 0) : -1;
		PQclear(r);
	}
	if (rc != 0) {
		for (int i = 0; i < n; i++)
			free(rows[i].url);
		free(rows);
		return rc;
	}
	*out = rows;
	*nout = (size_t)n;
	return 0;
}

static int
pg_outbox_done(void *impl, const char *id, const char *claim, int status,
               int attempts, int64_t next_at_us, const char *last_error,
               char *err, size_t errlen)
{
	static const char *const names[] = {"pending", "delivered", "failed"};
	char b[2][24];
	const char *v[6] = {id, claim, names[status], i64(b[0], attempts),
	                    i64(b[1], next_at_us), last_error};

	return w_defer(impl, W_CB_DONE, 6, v, err, errlen);
}

/* ---- readers ---- */

static int
r_prepare(PGconn *c, char *err, size_t errlen)
{
	static const char *const fixed[R_LIST0] = {
		[R_GET] = "SELECT " JOB_COLS CALLBACK_COL
			" FROM jobd.jobs WHERE id = $1",
		[R_COUNTS] = "SELECT status, count(*) FROM jobd.jobs"
			" GROUP BY status",
		[R_BY_TYPE] = "SELECT type, status, count(*) FROM jobd.jobs"
			" WHERE status IN ('queued', 'running')"
			" GROUP BY type, status",
		[R_PING] = "SELECT 1 FROM jobd.jobs LIMIT 1",
		[R_PAUSES] = "SELECT type FROM jobd.type_pauses",
		/* Oldest first; the leader is the oldest live one. */
		[R_NODES] = "SELECT n.name, n.boot,"
			" (extract(epoch FROM n.started_at) * 1000)::int8,"
			" (extract(epoch FROM n.seen_at) * 1000)::int8,"
			" (SELECT count(*) FROM jobd.jobs j WHERE j.node = n.boot"
			"   AND j.status = 'running'),"
			" n.boot IS NOT DISTINCT FROM (SELECT boot FROM jobd.nodes"
			"   WHERE seen_at >= now() - $1::interval AND NOT dead"
			"   ORDER BY started_at, boot LIMIT 1)"
			" FROM jobd.nodes n ORDER BY n.started_at, n.boot",
		[R_SCHEDULES] = "SELECT name, cursor_ms, last_run_ms,"
			" last_job_id, paused FROM jobd.schedules",
	};
	int rc = 0;

	for (int i = 0; rc == 0 && i < R_NSTMT; i++) {
		char name[16], sql[1280];
		const char *text = sql;
		PGresult *r;
		if (i < R_LIST0) {
			text = fixed[i];
		} else {
			int v = i - R_LIST0, k = 1;
			char cs[32] = "", ct[32] = "", ca[40] = "";
			if (v & 1)
				snprintf(cs, sizeof(cs), " AND status = $%d",
				         k++);
			if (v & 2)
				snprintf(ct, sizeof(ct), " AND type = $%d",
				         k++);
			if (v & 4)
				snprintf(ca, sizeof(ca), " AND id < $%d::uuid",
				         k++);
			/* List pages leave out payload and result. */
			snprintf(sql, sizeof(sql),
			         "SELECT id, type, status, priority, attempt,"
			         " max_attempts, timeout_ms, created_at, run_at,"
			         " started_at, finished_at, 'null', NULL, error,"
			         " exit_code, cancel_on_disconnect, claim,"
			         " idem_key, idem_fp, output_truncated,"
			         " depends_on, progress" CALLBACK_COL
			         " FROM jobd.jobs WHERE true%s%s%s"
			         " ORDER BY id DESC LIMIT $%d", cs, ct, ca, k);
		}
		snprintf(name, sizeof(name), "r%d", i);
		r = PQprepare(c, name, text, 0, NULL);
		if (PQresultStatus(r) != PGRES_COMMAND_OK)
			rc = result_error(c, r, text, err, errlen);
		PQclear(r);
	}
	return rc;
}

/* A reader connection for this thread's call, or NULL (err says why:
 * JOBD_EUNAVAIL when none can be had within READER_WAIT_MS). */
static struct reader *
reader_get(struct pgs *s, int *code, char *err, size_t errlen)
{
	struct timespec until;
	struct reader *rd = NULL;

	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += READER_WAIT_MS / 1000;
	pthread_mutex_lock(&s->pool_mu);
	for (;;) {
		/* An open idle one first, then a slot to open. */
		for (size_t i = 0; i < s->nreaders && rd == NULL; i++)
			if (!s->readers[i].busy && s->readers[i].c != NULL)
				rd = &s->readers[i];
		for (size_t i = 0; i < s->nreaders && rd == NULL; i++)
			if (!s->readers[i].busy)
				rd = &s->readers[i];
		if (rd != NULL)
			break;
		if (pthread_cond_timedwait(&s->pool_cond, &s->pool_mu,
		                           &until) != 0) {
			pthread_mutex_unlock(&s->pool_mu);
			*code = jobd_seterr(err, errlen, JOBD_EUNAVAIL, "pg: "
			                    "every reader connection is busy");
			return NULL;
		}
	}
	rd->busy = true;
	if (rd->c == NULL && clock_mono_ms() < s->r_retry_ms) {
		rd->busy = false;
		pthread_mutex_unlock(&s->pool_mu);
		*code = jobd_seterr(err, errlen, JOBD_EUNAVAIL, "PostgreSQL is "
		                    "unreachable; reconnecting");
		return NULL;
	}
	pthread_mutex_unlock(&s->pool_mu);
	if (rd->c != NULL && !conn_idle_broken(rd->c))
		return rd;
	if (rd->c != NULL) {
		/* Ended by the server while idle (a restart): a new one. */
		PQfinish(rd->c);
		rd->c = NULL;
	}
	rd->c = connect_to(s, false, err, errlen);
	if (rd->c != NULL && r_prepare(rd->c, err, errlen) != 0) {
		PQfinish(rd->c);
		rd->c = NULL;
	}
	pthread_mutex_lock(&s->pool_mu);
	if (rd->c == NULL) {
		rd->busy = false;
		s->r_retry_ms = clock_mono_ms() + s->r_backoff_ms;
		s->r_backoff_ms = s->r_backoff_ms * 2 > BACKOFF_MAX_MS
		                  ? BACKOFF_MAX_MS : s->r_backoff_ms * 2;
		pthread_cond_signal(&s->pool_cond);
		pthread_mutex_unlock(&s->pool_mu);
		*code = JOBD_EUNAVAIL;
		return NULL;
	}
	s->r_backoff_ms = BACKOFF_MIN_MS;
	pthread_mutex_unlock(&s->pool_mu);
	return rd;
}

static void
reader_put(struct pgs *s, struct reader *rd)
{
	if (rd->c != NULL && PQstatus(rd->c) == CONNECTION_BAD) {
		PQfinish(rd->c);
		rd->c = NULL;
	}
	pthread_mutex_lock(&s->pool_mu);
	rd->busy = false;
	pthread_cond_signal(&s->pool_cond);
	pthread_mutex_unlock(&s->pool_mu);
}

/* Runs a reader statement: 0 and its result, or the error. */
static int
r_exec(struct pgs *s, struct reader *rd, int stmt, int n,
       const char *const *v, PGresult **out, const char *what, char *err,
       size_t errlen)
{
	char name[16];
	PGresult *r = NULL, *next;
	int64_t until = clock_mono_ms() + READER_ANSWER_MS;

	snprintf(name, sizeof(name), "r%d", stmt);
	/* Answered within READER_ANSWER_MS (the server's lock_timeout is
	 * 2 s): a link that stalls (nothing delivered, TCP alive) must not
	 * hold an HTTP thread for ever.  On timeout the connection goes
	 * (reader_put drops a bad one): the request gets 503. */
	if (!PQsendQueryPrepared(rd->c, name, n, v, NULL, NULL, 0))
		return result_error(rd->c, NULL, what, err, errlen);
	for (;;) {
		while (!PQisBusy(rd->c)) {
			next = PQgetResult(rd->c);
			if (next == NULL)
				goto answered;
			PQclear(r);
			r = next;
		}
		struct pollfd p = {.fd = PQsocket(rd->c), .events = POLLIN};
		int64_t left = until - clock_mono_ms();
		if (left <= 0 || (poll(&p, 1, (int)left) < 0 && errno != EINTR) ||
		    PQconsumeInput(rd->c) != 1) {
			PQclear(r);
			PQfinish(rd->c);
			rd->c = NULL;
			return jobd_seterr(err, errlen, JOBD_EUNAVAIL, "pg: %s: "
			                   "no answer from PostgreSQL within %d ms",
			                   what, READER_ANSWER_MS);
		}
	}
answered:
	if (PQresultStatus(r) != PGRES_TUPLES_OK) {
		int rc = result_error(rd->c, r, what, err, errlen);
		PQclear(r);
		(void)s;
		return rc;
	}
	*out = r;
	return 0;
}

static int
pg_get(void *impl, const char *id, struct job *out, char *err, size_t errlen)
{
	struct pgs *s = impl;
	const char *v[1] = {id};
	struct reader *rd;
	PGresult *r;
	int rc;

	rd = reader_get(s, &rc, err, errlen);
	if (rd == NULL)
		return rc;
	rc = r_exec(s, rd, R_GET, 1, v, &r, "get", err, errlen);
	reader_put(s, rd);
	if (rc == JOBD_EINVAL) /* not a uuid: no such job */
		return jobd_seterr(err, errlen, JOBD_ENOTFOUND, "no job %s", id);
	if (rc != 0)
		return rc;
	if (PQntuples(r) == 0)
		rc = jobd_seterr(err, errlen, JOBD_ENOTFOUND, "no job %s", id);
	else
		rc = row_to_job(r, 0, out);
	PQclear(r);
	return rc;
}

static int
pg_list(void *impl, const struct store_filter *f, struct job **out,
        size_t *nout, char *err, size_t errlen)
{
	struct pgs *s = impl;
	struct reader *rd;
	struct job *jobs;
	const char *v[4];
	char lim[24];
	PGresult *r;
	int rc, n = 0, k = 0, variant;

	*out = NULL;
	*nout = 0;
	variant = (f->status >= 0 ? 1 : 0) | (f->type ? 2 : 0) |
	          (f->after ? 4 : 0);
	if (f->status >= 0)
		v[k++] = job_status_name(f->status);
	if (f->type)
		v[k++] = f->type;
	if (f->after)
		v[k++] = f->after;
	v[k++] = i64(lim, (int64_t)f->limit);
	rd = reader_get(s, &rc, err, errlen);
	if (rd == NULL)
		return rc;
	rc = r_exec(s, rd, R_LIST0 + variant, k, v, &r, "list", err, errlen);
	reader_put(s, rd);
	if (rc != 0)
		return rc;
	n = PQntuples(r);
	if ((size_t)n > f->limit)
		n = (int)f->limit;
	jobs = calloc(n > 0 ? (size_t)n : 1, sizeof(*jobs));
	if (jobs == NULL) {
		PQclear(r);
		return jobd_seterr(err, errlen, JOBD_ENOMEM, "out of memory");
	}
	rc = rows_to_jobs(r, n, jobs, err, errlen);
	PQclear(r);
	if (rc != 0) {
		free(jobs);
		return rc;
	}
	*out = jobs;
	*nout = (size_t)n;
	return 0;
}

static int
pg_counts(void *impl, int64_t counts[JOB_NSTATUS], char *err, size_t errlen)
{
	struct pgs *s = impl;
	struct reader *rd;
	PGresult *r;
	int rc;

	for (int i = 0; i < JOB_NSTATUS; i++)
		counts[i] = 0;
	rd = reader_get(s, &rc, err, errlen);
	if (rd == NULL)
		return rc;
	rc = r_exec(s, rd, R_COUNTS, 0, NULL, &r, "counts", err, errlen);
	reader_put(s, rd);
	if (rc != 0)
		return rc;
	for (int i = 0; i < PQntuples(r); i++) {
		int st = job_status_parse(PQgetvalue(r, i, 0));
		if (st >= 0)
			counts[st] = strtoll(PQgetvalue(r, i, 1), NULL, 10);
	}
	PQclear(r);
	return 0;
}

static int
pg_counts_by_type(void *impl, store_type_count_fn fn, void *arg, char *err,
                  size_t errlen)
{
	struct pgs *s = impl;
	struct reader *rd;
	PGresult *r;
	int rc;

	rd = reader_get(s, &rc, err, errlen);
	if (rd == NULL)
		return rc;
	rc = r_exec(s, rd, R_BY_TYPE, 0, NULL, &r, "counts by type", err,
	            errlen);
	reader_put(s, rd);
	if (rc != 0)
		return rc;
	for (int i = 0; i < PQntuples(r); i++) {
		int st = job_status_parse(PQgetvalue(r, i, 1));
		if (st >= 0)
			fn(arg, PQgetvalue(r, i, 0), st,
			   strtoll(PQgetvalue(r, i, 2), NULL, 10));
	}
	PQclear(r);
	return 0;
}

static int
pg_read_pauses(void *impl, store_pause_fn fn, void *arg, char *err,
               size_t errlen)
{
	struct pgs *s = impl;
	struct reader *rd;
	PGresult *r;
	int rc;

	rd = reader_get(s, &rc, err, errlen);
	if (rd == NULL)
		return rc;
	rc = r_exec(s, rd, R_PAUSES, 0, NULL, &r, "pauses", err, errlen);
	reader_put(s, rd);
	if (rc != 0)
		return rc;
	for (int i = 0; i < PQntuples(r); i++)
		fn(arg, PQgetvalue(r, i, 0));
	PQclear(r);
	return 0;
}

static int
pg_nodes(void *impl, store_node_fn fn, void *arg, char *err, size_t errlen)
{
	struct pgs *s = impl;
	struct reader *rd;
	char lease[32];
	const char *v[1] = {lease};
	PGresult *r;
	int rc;

	snprintf(lease, sizeof(lease), "%lld milliseconds",
	         (long long)s->lease_ms);
	rd = reader_get(s, &rc, err, errlen);
	if (rd == NULL)
		return rc;
	rc = r_exec(s, rd, R_NODES, 1, v, &r, "nodes", err, errlen);
	reader_put(s, rd);
	if (rc != 0)
		return rc;
	for (int i = 0; i < PQntuples(r); i++) {
		struct store_node n = {0};
		snprintf(n.name, sizeof(n.name), "%s", PQgetvalue(r, i, 0));
		snprintf(n.boot_id, sizeof(n.boot_id), "%s", PQgetvalue(r, i, 1));
		n.started_at_ms = strtoll(PQgetvalue(r, i, 2), NULL, 10);
		n.heartbeat_at_ms = strtoll(PQgetvalue(r, i, 3), NULL, 10);
		n.running = strtoll(PQgetvalue(r, i, 4), NULL, 10);
		n.leader = strcmp(PQgetvalue(r, i, 5), "t") == 0;
		fn(arg, &n);
	}
	PQclear(r);
	return 0;
}

static int
pg_schedules(void *impl, store_schedule_fn fn, void *arg, char *err,
             size_t errlen)
{
	struct pgs *s = impl;
	struct reader *rd;
	PGresult *r;
	int rc;

	rd = reader_get(s, &rc, err, errlen);
	if (rd == NULL)
		return rc;
	rc = r_exec(s, rd, R_SCHEDULES, 0, NULL, &r, "schedules", err, errlen);
	reader_put(s, rd);
	if (rc != 0)
		return rc;
	for (int i = 0; i < PQntuples(r); i++) {
		struct store_schedule row = {.cursor_ms = -1,
		                             .last_run_ms = -1};
		snprintf(row.name, sizeof(row.name), "%s", PQgetvalue(r, i, 0));
		if (!PQgetisnull(r, i, 1))
			row.cursor_ms = strtoll(PQgetvalue(r, i, 1), NULL, 10);
		if (!PQgetisnull(r, i, 2))
			row.last_run_ms = strtoll(PQgetvalue(r, i, 2), NULL, 10);
		if (!PQgetisnull(r, i, 3))
			snprintf(row.last_job_id, sizeof(row.last_job_id), "%s",
			         PQgetvalue(r, i, 3));
		row.paused = atoi(PQgetvalue(r, i, 4)) != 0;
		fn(arg, &row);
	}
	PQclear(r);
	return 0;
}

/* The writer's upsert of a schedule row; rare, so it waits for its
 * answer. */
static int
pg_schedule_put(void *impl, const struct store_schedule *u, char *err,
                size_t errlen)
{
	char b1[24], b2[24], b3[8];
	const char *v[6] = {
		u->name,
		u->cursor_ms >= 0 ? i64(b1, u->cursor_ms) : NULL,
		u->last_run_ms >= 0 ? i64(b2, u->last_run_ms) : NULL,
		u->last_job_id[0] != '\0' ? u->last_job_id : NULL,
		NULL,
		u->unless_paused ? "1" : NULL,
	};
	int rows, rc;

	if (u->paused >= 0) {
		snprintf(b3, sizeof(b3), "%d", u->paused ? 1 : 0);
		v[4] = b3;
	}
	rc = changed(impl, W_SCHEDULE_PUT, 6, v, &rows, err, errlen);
	if (rc == 0 && u->unless_paused && rows == 0)
		rc = jobd_seterr(err, errlen, JOBD_ECONFLICT,
		                 "schedule %s is paused", u->name);
	return rc;
}

static bool
pg_is_leader(void *impl)
{
	return bus_is_leader(((struct pgs *)impl)->bus);
}

static int
pg_live_nodes(void *impl)
{
	return bus_live_nodes(((struct pgs *)impl)->bus);
}

static bool
pg_ping(void *impl)
{
	struct pgs *s = impl;
	struct reader *rd;
	PGresult *r;
	int rc;

	/* Ready means the writer can write, not only that a reader reads. */
	if (atomic_load(&s->wstate) != WS_UP)
		return false;
	rd = reader_get(s, &rc, NULL, 0);
	if (rd == NULL)
		return false;
	rc = r_exec(s, rd, R_PING, 0, NULL, &r, "ping", NULL, 0);
	reader_put(s, rd);
	if (rc != 0)
		return false;
	PQclear(r);
	return true;
}

static int
pg_check(void *impl, char *err, size_t errlen)
{
	struct pgs *s = impl;

	if (atomic_load(&s->wstate) != WS_UP)
		return jobd_seterr(err, errlen, JOBD_EUNAVAIL, "PostgreSQL is "
		                   "unreachable; reconnecting");
	return 0;
}

const char *
store_pg_writer_sql(int i)
{
	return i >= 0 && i < W_NSTMT ? writer_sql[i] : NULL;
}

int
store_pg_check_uri(const char *uri, char *err, size_t errlen)
{
	char *msg = NULL;
	PQconninfoOption *o = PQconninfoParse(uri, &msg);

	if (o == NULL) {
		char line[300];
		size_t n;
		bus_one_line(line, sizeof(line), msg ? msg : "out of memory");
		PQfreemem(msg);
		/* libpq quotes the URI, or a piece of it, from the first
		 * '"' on ("invalid percent-encoded token: \"<password>\""):
		 * when the URI may hold a password (user:pw@, password=),
		 * what follows may be it, and this goes to the journal.  The
		 * message stops before it then. */
		bool cut = (strchr(uri, '@') != NULL ||
		            strcasestr(uri, "pass") != NULL ||
		            strchr(uri, '%') != NULL) &&
		           strchr(line, '"') != NULL;
		if (cut)
			line[strcspn(line, "\"")] = '\0';
		n = strlen(line);
		while (n > 0 && (line[n - 1] == ' ' || line[n - 1] == ':'))
			line[--n] = '\0';
		return jobd_seterr(err, errlen, JOBD_EINVAL, "not a valid "
		                   "PostgreSQL URI: %s%s", line, cut
		                   ? " (the rest of libpq's message is left "
		                   "out: it may quote the password)"
		                   : "");
	}
	PQconninfoFree(o);
	return 0;
}

/* ---- dependencies (the functions of migration 4) ---- */

static int
pg_deps_link(void *impl, const struct job *job, int64_t now_us, int *status,
             char *err, size_t errlen)
{
	struct pgs *s = impl;
	char b[24], *arr = NULL, id[UUID_STR_LEN];
	const char *p = job->depends_on, *v[4];
	size_t len = strlen(job->depends_on) + 3, used = 0;
	PGresult *r;
	int rc;

	arr = malloc(len);
	if (arr == NULL)
		return jobd_seterr(err, errlen, JOBD_ENOMEM, "out of memory");
	used += (size_t)snprintf(arr, len, "{");
	while (job_depends_on_next(&p, id))
		used += (size_t)snprintf(arr + used, len - used, "%s%s",
		                         used > 1 ? "," : "", id);
	snprintf(arr + used, len - used, "}");
	v[0] = job->id;
	v[1] = arr;
	v[2] = job->depends_on;
	v[3] = i64(b, now_us);
	rc = w_call(s, W_DEP_LINK, 4, v, &r, err, errlen);
	free(arr);
	if (rc != 0)
		return rc;
	const char *t = PQntuples(r) > 0 ? PQgetvalue(r, 0, 0) : "";
	if (t[0] == '!')
		rc = jobd_seterr(err, errlen, JOBD_ERANGE,
		                 "\"depends_on\": no job %.36s", t + 1);
	else if ((*status = job_status_parse(t)) < 0)
		rc = jobd_seterr(err, errlen, JOBD_EIO, "pg: link_deps "
		                 "answered \"%.40s\"", t);
	PQclear(r);
	return rc;
}

static int
pg_deps_missing(void *impl, const char *const *ids, size_t n,
                size_t *missing, char *err, size_t errlen)
{
	struct pgs *s = impl;
	size_t len = 3 + n * (UUID_STR_LEN + 1), used = 0;
	char *arr = malloc(len);
	const char *v[1] = {arr};
	PGresult *r;
	int rc;

	if (arr == NULL)
		return jobd_seterr(err, errlen, JOBD_ENOMEM, "out of memory");
	arr[used++] = '{';
	for (size_t i = 0; i < n; i++)
		used += (size_t)snprintf(arr + used, len - used, "%s%.36s",
		                         i > 0 ? "," : "", ids[i]);
	snprintf(arr + used, len - used, "}");
	rc = w_call(s, W_DEP_MISSING, 1, v, &r, err, errlen);
	free(arr);
	if (rc != 0)
		return rc;
	*missing = PQntuples(r) > 0
	    ? (size_t)strtoull(PQgetvalue(r, 0, 0), NULL, 10) : n;
	PQclear(r);
	return 0;
}

static int
pg_deps_cancel(void *impl, const char *id, int64_t now_us, bool *cancelled,
               char *err, size_t errlen)
{
	struct pgs *s = impl;
	char b[24];
	const char *v[2] = {id, i64(b, now_us)};
	int rows, rc = changed(s, W_DEP_CANCEL, 2, v, &rows, err, errlen);

	if (rc == 0)
		*cancelled = rows > 0;
	return rc;
}

/* The rows of resolve_deps()/sweep_deps(), each given to fn. */
static int
deps_changes(struct pgs *s, int stmt, int n, const char *const *v,
             store_dep_fn fn, void *arg, char *err, size_t errlen)
{
	PGresult *r;
	int rc = w_call(s, stmt, n, v, &r, err, errlen);

	if (rc != 0)
		return rc;
	for (int i = 0; i < PQntuples(r) && fn != NULL; i++) {
		int st = job_status_parse(PQgetvalue(r, i, 2));
		if (st >= 0)
			fn(arg, PQgetvalue(r, i, 0), PQgetvalue(r, i, 1), st,
			   val_time(r, i, 3));
	}
	PQclear(r);
	return 0;
}

static int
pg_deps_resolve(void *impl, const char *const *ids, const int *statuses,
                size_t n, int64_t now_us, store_dep_fn fn, void *arg,
                char *err, size_t errlen)
{
	struct pgs *s = impl;
	char b[24], *a = NULL, *t = NULL;
	size_t used_a = 0, used_t = 0, k = 0;
	const char *v[3];
	int rc;

	/* Array literals: ids are uuids, statuses plain words. */
	a = malloc(n * (UUID_STR_LEN + 1) + 3);
	t = malloc(n * 12 + 3);
	if (a == NULL || t == NULL) {
		free(a);
		free(t);
		return jobd_seterr(err, errlen, JOBD_ENOMEM, "out of memory");
	}
	used_a += (size_t)sprintf(a, "{");
	used_t += (size_t)sprintf(t, "{");
	for (size_t i = 0; i < n; i++) {
		if (!job_status_is_final(statuses[i]))
			continue;
		used_a += (size_t)sprintf(a + used_a, "%s%.36s", k ? "," : "",
		                          ids[i]);
		used_t += (size_t)sprintf(t + used_t, "%s%s", k ? "," : "",
		                          job_status_name(statuses[i]));
		k++;
	}
	sprintf(a + used_a, "}");
	sprintf(t + used_t, "}");
	v[0] = a;
	v[1] = t;
	v[2] = i64(b, now_us);
	rc = k == 0 ? 0 : deps_changes(s, W_DEP_RESOLVE, 3, v, fn, arg, err,
	                               errlen);
	free(a);
	free(t);
	return rc;
}

static int
pg_deps_sweep(void *impl, int64_t now_us, store_dep_fn fn, void *arg,
              char *err, size_t errlen)
{
	char b[24];
	const char *v[1] = {i64(b, now_us)};

	return deps_changes(impl, W_DEP_SWEEP, 1, v, fn, arg, err, errlen);
}

const struct store_ops store_pg_ops = {
	.name = "postgresql",
	.shared = true,
	.open = pg_open,
	.close = pg_close,
	.begin = pg_begin,
	.commit = pg_commit,
	.rollback = pg_rollback,
	.insert = pg_insert,
	.find_idem = pg_find_idem,
	.claim = pg_claim,
	.complete = pg_complete,
	.start = pg_start,
	.progress = pg_progress,
	.put_back = pg_put_back,
	.flush = pg_flush,
	.cancel = pg_cancel,
	.retry = pg_retry,
	.recover = pg_recover,
	.purge = pg_purge,
	.next_run_at = pg_next_run_at,
	.get = pg_get,
	.list = pg_list,
	.counts = pg_counts,
	.counts_by_type = pg_counts_by_type,
	.ping = pg_ping,
	.pauses = pg_pauses,
	.read_pauses = pg_read_pauses,
	.set_pause = pg_set_pause,
	.nodes = pg_nodes,
	.schedules = pg_schedules,
	.schedule_put = pg_schedule_put,
	.is_leader = pg_is_leader,
	.set_hooks = pg_set_hooks,
	.live_nodes = pg_live_nodes,
	.may_claim = pg_may_claim,
	.listening = pg_listening,
	.notify_work = pg_notify_work,
	.check = pg_check,
	.deps_link = pg_deps_link,
	.deps_cancel = pg_deps_cancel,
	.deps_missing = pg_deps_missing,
	.deps_resolve = pg_deps_resolve,
	.deps_sweep = pg_deps_sweep,
	.set_callback = pg_set_callback,
	.outbox_claim = pg_outbox_claim,
	.outbox_done = pg_outbox_done,
};
