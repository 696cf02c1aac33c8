-- tests/pg/schema_proto.sql - the proposed migration 1 of store_pg.c
-- (docs/postgres-store.md §2), as tests/pg/bench.sh measures it.  It
-- mirrors the SQLite schema v3 of src/store_sqlite.c column for column;
-- times stay integers (µs since the epoch, the daemon's clock), status a
-- small integer (enum job_status), ids the uuid type.
CREATE SCHEMA IF NOT EXISTS jobd;

CREATE TABLE jobd.jobs (
  id uuid PRIMARY KEY,
  type text NOT NULL,
  status int2 NOT NULL CHECK (status BETWEEN 0 AND 4),
  priority int2 NOT NULL DEFAULT 0,
  attempt int NOT NULL DEFAULT 0,
  max_attempts int NOT NULL,
  timeout_ms int8 NOT NULL,
  created_at int8 NOT NULL,
  run_at int8 NOT NULL,
  started_at int8,
  finished_at int8,
  payload text NOT NULL DEFAULT 'null',
  result text,
  error text,
  exit_code int,
  cancel_on_disconnect bool NOT NULL DEFAULT true,
  cancel_requested bool NOT NULL DEFAULT false,
  claim text,
  idem_key text,
  idem_fp text,
  output_truncated bool NOT NULL DEFAULT false,
  due bool NOT NULL DEFAULT true,
  attempt_started bool NOT NULL DEFAULT false,
  node text
);
CREATE INDEX jobs_queue ON jobd.jobs (priority DESC, id, type)
  WHERE status = 0 AND due;
CREATE INDEX jobs_waiting ON jobd.jobs (run_at) WHERE status = 0 AND NOT due;
CREATE INDEX jobs_status ON jobd.jobs (status, id);
CREATE INDEX jobs_type ON jobd.jobs (type, id);
CREATE INDEX jobs_finished ON jobd.jobs (finished_at)
  WHERE finished_at IS NOT NULL;
CREATE UNIQUE INDEX jobs_idem ON jobd.jobs (idem_key)
  WHERE idem_key IS NOT NULL;
ALTER TABLE jobd.jobs SET (autovacuum_vacuum_scale_factor = 0.01,
  autovacuum_vacuum_threshold = 1000, autovacuum_analyze_scale_factor = 0.01,
  autovacuum_vacuum_cost_delay = 1);

-- Exact counts per status without count(*): every writer transaction adds
-- its deltas (one row per status; several nodes later: one per node).
CREATE TABLE jobd.counts (status int2 PRIMARY KEY, n int8 NOT NULL DEFAULT 0)
  WITH (fillfactor = 50);
INSERT INTO jobd.counts SELECT s, 0 FROM generate_series(0, 4) s;

-- Prototype only: a UUIDv7-like id made by the server (jobd makes its own
-- in C): 48 bits of milliseconds, then random bits.
CREATE FUNCTION jobd.uuid7() RETURNS uuid LANGUAGE sql VOLATILE AS $$
  SELECT encode(overlay(uuid_send(gen_random_uuid()) PLACING
    substring(int8send((extract(epoch FROM clock_timestamp()) * 1000)::int8)
    FROM 3) FROM 1 FOR 6), 'hex')::uuid
$$;
