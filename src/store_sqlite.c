/*
 * store_sqlite.c - the SQLite job store.
 *
 * One writer connection, used only by the writer thread, runs every write
 * in a BEGIN IMMEDIATE transaction (a deferred read-then-write transaction
 * would fail with SQLITE_BUSY_SNAPSHOT, which the busy handler does not
 * retry).  Readers get their own connections from a small pool; WAL lets
 * them read beside the writer.  Statements are prepared once per
 * connection and reused.
 *
 * The schema is versioned with PRAGMA user_version; migrations[] below
 * brings any older file up to date inside one transaction.
 *
 * One daemon per file: sq_open() takes an exclusive flock() on
 * "<real path>.lock" (which holds the holder's pid) and on the database
 * file itself (whatever name reaches it) before it touches the
 * database, and keeps it until sq_close(), so that a second jobd can never
 * recover - and run again - the jobs a live one is running.  The database
 * file is created 0600 (SQLite gives its -wal and -shm files the same
 * mode), and its inode is remembered: a file deleted or replaced under a
 * running daemon is noticed before every commit and by every readiness
 * check (store_file_check), so that no job is acknowledged into a file
 * that is gone.
 *
 * LOCKING: pool_mu guards the free list of reader connections (readers).
 * A reader connection is used by one thread at a time, between
 * reader_get() and reader_put().  The writer connection and its statements
 * belong to the writer thread; they take no lock.  The file's identity
 * (db_fd, dev, ino) is set at open and read-only after; file_gone is
 * atomic (any thread checks it).
 */
#include <sqlite3.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "err.h"
#include "log.h"
#include "store.h"
#include "store_backend.h"
#include "store_faults.h"

#define JOB_COLS \
	"id, type, status, priority, attempt, max_attempts, timeout_ms, " \
	"created_at, run_at, started_at, finished_at, payload, result, error, " \
	"exit_code, cancel_on_disconnect, claim, idem_key, idem_fp, " \
	"output_truncated, depends_on, progress"

static const char *const migrations[] = {
	/* 1: the jobs table and the indexes of the claim, the timer, listing
	 * and purge. */
	"CREATE TABLE jobs ("
	"  id TEXT PRIMARY KEY NOT NULL,"
	"  type TEXT NOT NULL,"
	"  status TEXT NOT NULL CHECK (status IN ('queued','running',"
	"    'succeeded','failed','cancelled')),"
	"  priority INTEGER NOT NULL DEFAULT 0,"
	"  attempt INTEGER NOT NULL DEFAULT 0,"
	"  max_attempts INTEGER NOT NULL,"
	"  timeout_ms INTEGER NOT NULL,"
	"  created_at INTEGER NOT NULL,"   /* ms since the epoch (µs from v2) */
	"  run_at INTEGER NOT NULL,"
	"  started_at INTEGER,"
	"  finished_at INTEGER,"
	"  payload TEXT NOT NULL DEFAULT 'null',"
	"  result TEXT,"
	"  error TEXT,"
	"  exit_code INTEGER,"
	"  cancel_on_disconnect INTEGER NOT NULL DEFAULT 1,"
	"  cancel_requested INTEGER NOT NULL DEFAULT 0,"
	"  claim TEXT,"
	"  idem_key TEXT,"
	"  idem_fp TEXT,"
	"  output_truncated INTEGER NOT NULL DEFAULT 0,"
	/* 1 once run_at has come: queued jobs are split into due ones (the
	 * claim's index) and waiting ones (the timer's index), so that
	 * neither query steps over rows of the other kind. */
	"  due INTEGER NOT NULL DEFAULT 1"
	");"
	/* Claim order: highest priority, then oldest; due queued rows only. */
	"CREATE INDEX jobs_queue ON jobs(priority DESC, id, type)"
	"  WHERE status = 'queued' AND due = 1;"
	/* Queued rows whose run_at is still to come, by run_at: the
	 * workers' wake-up timer and their promotion to due. */
	"CREATE INDEX jobs_waiting ON jobs(run_at)"
	"  WHERE status = 'queued' AND due = 0;"
	"CREATE INDEX jobs_status ON jobs(status, id);"
	"CREATE INDEX jobs_type ON jobs(type, id);"
	"CREATE INDEX jobs_finished ON jobs(finished_at)"
	"  WHERE finished_at IS NOT NULL;"
	"CREATE UNIQUE INDEX jobs_idem ON jobs(idem_key)"
	"  WHERE idem_key IS NOT NULL;",
	/* 2: times in microseconds since the epoch, so that pickup latency
	 * under a millisecond can be told apart (the API still shows ms). */
	"UPDATE jobs SET created_at = created_at * 1000,"
	"  run_at = run_at * 1000, started_at = started_at * 1000,"
	"  finished_at = finished_at * 1000;",
	/* 3: an attempt counts from when a worker starts it, not from its
	 * claim: attempt_started is 0 from the claim until the worker's start
	 * is written, so that recovery does not count an attempt that never
	 * began.  Rows running under an older jobd were counted at claim. */
	"ALTER TABLE jobs ADD COLUMN attempt_started INTEGER NOT NULL"
	"  DEFAULT 0;"
	"UPDATE jobs SET attempt_started = 1 WHERE status = 'running';",
	/* 4: paused types (POST /types/NAME/pause): no new attempt of a
	 * type listed here starts, across restarts. */
	"CREATE TABLE type_pauses ("
	"  type TEXT PRIMARY KEY NOT NULL,"
	"  paused_at INTEGER NOT NULL"      /* µs since the epoch */
	");",
	/* 5: the schedules' state (schedule.h): the last tick done, the
	 * last job made, the pause. */
	"CREATE TABLE schedules ("
	"  name TEXT PRIMARY KEY,"
	"  cursor_ms INTEGER,"
	"  last_run_ms INTEGER,"
	"  last_job_id TEXT,"
	"  paused INTEGER NOT NULL DEFAULT 0"
	");",
	/* 6: dependencies.  Status 'waiting' (the CHECK constraint gains it:
	 * rewritten in place, as SQLite documents for loosening a
	 * constraint, so that the columns other migrations added stay);
	 * the ids a job depends on (depends_on, as shown), how many of them
	 * have not succeeded yet (unmet), and the edges still to resolve,
	 * keyed by the dependency: a job's end finds its dependents by an
	 * index, never by a scan. */
	"PRAGMA writable_schema = ON;"
	"UPDATE sqlite_schema SET sql = replace(sql, '''cancelled'')',"
	"  '''cancelled'',''waiting'')') WHERE type = 'table'"
	"  AND name = 'jobs';"
	"PRAGMA writable_schema = RESET;"
	"ALTER TABLE jobs ADD COLUMN depends_on TEXT;"
	"ALTER TABLE jobs ADD COLUMN unmet INTEGER NOT NULL DEFAULT 0;"
	"CREATE TABLE job_deps ("
	"  dep TEXT NOT NULL,"
	"  job TEXT NOT NULL,"
	"  PRIMARY KEY (dep, job)"
	") WITHOUT ROWID;",
	/* 7: progress (DESIGN §4): the last report of the job's handler,
	 * one JSON object of at most 4 KiB. */
	"ALTER TABLE jobs ADD COLUMN progress TEXT;",
	/* 8: callbacks (DESIGN §2.1).  A job's callback_url; the outbox of
	 * deliveries owed, one row per job, put there by a trigger in the
	 * transaction that makes the job final (every path: completion,
	 * cancel, dependency, recovery) and reset when a retried job ends
	 * again; claimed by a delivery thread (claim, next_at: its lease),
	 * then pending again (next_at: the retry), delivered or failed. */
	"ALTER TABLE jobs ADD COLUMN callback_url TEXT;"
	"CREATE TABLE outbox ("
	"  job_id TEXT PRIMARY KEY NOT NULL,"
	"  url TEXT NOT NULL,"
	"  status TEXT NOT NULL DEFAULT 'pending' CHECK (status IN"
	"    ('pending', 'delivered', 'failed')),"
	"  attempts INTEGER NOT NULL DEFAULT 0,"
	"  next_at INTEGER NOT NULL DEFAULT 0,"  /* µs since the epoch */
	"  last_error TEXT,"
	"  claim TEXT"
	");"
	"CREATE INDEX outbox_due ON outbox(next_at) WHERE status = 'pending';"
	"CREATE TRIGGER jobs_outbox AFTER UPDATE OF status ON jobs"
	"  WHEN NEW.callback_url IS NOT NULL"
	"  AND NEW.status IN ('succeeded', 'failed', 'cancelled')"
	"  AND OLD.status NOT IN ('succeeded', 'failed', 'cancelled')"
	" BEGIN"
	"  INSERT INTO outbox (job_id, url) VALUES (NEW.id, NEW.callback_url)"
	"  ON CONFLICT (job_id) DO UPDATE SET url = excluded.url,"
	"  status = 'pending', attempts = 0, next_at = 0, last_error = NULL,"
	"  claim = NULL;"
	" END;"
	"CREATE TRIGGER jobs_outbox_gone AFTER DELETE ON jobs"
	"  WHEN OLD.callback_url IS NOT NULL"
	" BEGIN DELETE FROM outbox WHERE job_id = OLD.id; END;",
};
#define SCHEMA_VERSION ((int)(sizeof(migrations) / sizeof(migrations[0])))

enum {
	W_BEGIN, W_COMMIT, W_ROLLBACK, W_INSERT, W_FIND_IDEM, W_CLAIM,
	W_COMPLETE, W_CANCEL, W_STATUS_OF, W_MARK_CANCEL, W_RETRY,
	W_RECOVER_CANCEL, W_RECOVER_FAIL, W_RECOVER_REQUEUE, W_PURGE,
	W_NEXT_RUN_AT, W_PUT_BACK, W_PROMOTE, W_START, W_PAUSE, W_RESUME,
	W_PAUSES,
	W_DEP_EDGE, W_DEP_SET, W_DEP_DROP, W_DEP_CANCEL, W_DEP_MET, W_DEP_FAIL,
	W_DEP_DONE, W_DEP_SWEEP, W_PROGRESS,
	W_CB_SET, W_CB_RELEASE, W_CB_CLAIM, W_CB_NEXT, W_CB_DONE, W_NSTMT
};

static const char *const writer_sql[W_NSTMT] = {
	[W_BEGIN] = "BEGIN IMMEDIATE",
	[W_COMMIT] = "COMMIT",
	[W_ROLLBACK] = "ROLLBACK",
	[W_INSERT] = "INSERT INTO jobs (id, type, status, priority, attempt,"
		" max_attempts, timeout_ms, created_at, run_at, payload,"
		" cancel_on_disconnect, idem_key, idem_fp, due, started_at,"
		" claim, attempt_started)"
		" VALUES (?1, ?2, iif(?12 IS NULL, 'queued', 'running'), ?3,"
		" ?12 IS NOT NULL, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?7 <= ?6,"
		" ?13, ?12, ?14)",
	[W_FIND_IDEM] = "SELECT " JOB_COLS " FROM jobs WHERE idem_key = ?1",
	[W_CLAIM] = "UPDATE jobs SET status = 'running', attempt = attempt + 1,"
		" started_at = ?1, finished_at = NULL, claim = ?2,"
		" attempt_started = 0, cancel_requested = 0, progress = NULL"
		" WHERE id IN (SELECT id FROM jobs INDEXED BY jobs_queue"
		"   WHERE status = 'queued' AND due = 1"
		"   AND type IN (SELECT value FROM json_each(?3))"
		"   ORDER BY priority DESC, id LIMIT ?4)"
		" RETURNING " JOB_COLS,
	/* The store decides a race between a cancel and the attempt's end:
	 * an attempt that did not succeed while a cancel was requested ends
	 * cancelled, whatever the worker asked for (?12: finished_at then). */
	[W_COMPLETE] = "UPDATE jobs SET"
		" status = iif(cancel_requested AND ?3 <> 'succeeded',"
		"   'cancelled', ?3),"
		" run_at = iif(cancel_requested AND ?3 <> 'succeeded', run_at,"
		"   coalesce(?4, run_at)),"
		" finished_at = iif(cancel_requested AND ?3 <> 'succeeded', ?11,"
		"   ?5),"
		" result = ?6,"
		" error = iif(cancel_requested AND ?3 <> 'succeeded',"
		"   coalesce(?7, 'cancelled'), ?7),"
		" exit_code = ?8, output_truncated = ?9, claim = NULL,"
		" started_at = coalesce(?10, started_at), due = 0,"
		" cancel_requested = 0, progress = coalesce(?12, progress)"
		" WHERE id = ?1 AND claim = ?2 AND status = 'running'"
		" RETURNING status",
	[W_CANCEL] = "UPDATE jobs SET status = 'cancelled', finished_at = ?2,"
		" claim = NULL WHERE id = ?1 AND status = 'queued'",
	[W_STATUS_OF] = "SELECT status FROM jobs WHERE id = ?1",
	[W_MARK_CANCEL] = "UPDATE jobs SET cancel_requested = 1"
		" WHERE id = ?1 AND status = 'running'",
	[W_RETRY] = "UPDATE jobs SET status = 'queued', attempt = 0,"
		" run_at = ?2, started_at = NULL, finished_at = NULL,"
		" result = NULL, error = NULL, exit_code = NULL,"
		" cancel_requested = 0, claim = NULL, due = 1, progress = NULL"
		" WHERE id = ?1 AND status IN ('failed', 'cancelled')",
	/* A claim whose attempt never started (attempt_started = 0) gives
	 * its attempt back. */
	[W_RECOVER_CANCEL] = "UPDATE jobs SET status = 'cancelled',"
		" finished_at = ?1, claim = NULL,"
		" attempt = attempt - 1 + attempt_started"
		" WHERE status = 'running' AND cancel_requested = 1",
	[W_RECOVER_FAIL] = "UPDATE jobs SET status = 'failed', finished_at = ?1,"
		" claim = NULL, error = 'the daemon stopped during the last"
		" attempt (no attempts left)'"
		" WHERE status = 'running' AND attempt_started = 1"
		" AND attempt >= max_attempts",
	[W_RECOVER_REQUEUE] = "UPDATE jobs SET status = 'queued', run_at = ?1,"
		" claim = NULL, due = 1, attempt = attempt - 1 + attempt_started"
		" WHERE status = 'running'",
	[W_PURGE] = "DELETE FROM jobs WHERE rowid IN (SELECT rowid FROM jobs"
		" WHERE finished_at < ?1 AND status IN ('succeeded', 'failed',"
		" 'cancelled') LIMIT ?2) RETURNING status",
	[W_NEXT_RUN_AT] = "SELECT min(run_at) FROM jobs INDEXED BY jobs_waiting"
		" WHERE status = 'queued' AND due = 0",
	[W_PUT_BACK] = "UPDATE jobs SET"
		" status = iif(cancel_requested, 'cancelled', 'queued'),"
		" finished_at = iif(cancel_requested, ?3, NULL),"
		" error = iif(cancel_requested, 'cancelled', error),"
		" attempt = attempt - 1, attempt_started = 0, claim = NULL,"
		" due = 0, cancel_requested = 0"
		" WHERE id = ?1 AND claim = ?2 AND status = 'running'"
		" RETURNING status",
	[W_PROMOTE] = "UPDATE jobs SET due = 1 WHERE rowid IN (SELECT rowid FROM"
		" jobs INDEXED BY jobs_waiting WHERE status = 'queued' AND due = 0"
		" AND run_at <= ?1)",
	[W_START] = "UPDATE jobs SET attempt_started = 1, started_at = ?3"
		" WHERE id = ?1 AND claim = ?2 AND status = 'running'",
	[W_PAUSE] = "INSERT INTO type_pauses (type, paused_at) VALUES (?1, ?2)"
		" ON CONFLICT (type) DO NOTHING",
	[W_RESUME] = "DELETE FROM type_pauses WHERE type = ?1",
	[W_PAUSES] = "SELECT type FROM type_pauses ORDER BY type",
	/* Dependencies (deps_*): edges by dependency, resolved when it
	 * ends, in the transaction that ends it. */
	[W_DEP_EDGE] = "INSERT OR IGNORE INTO job_deps (dep, job)"
		" VALUES (?1, ?2)",
	[W_DEP_SET] = "UPDATE jobs SET status = ?2, unmet = ?3,"
		" depends_on = ?4, error = ?5, finished_at = ?6,"
		" due = iif(?2 = 'queued', due, 0) WHERE id = ?1",
	[W_DEP_DROP] = "DELETE FROM jobs WHERE id = ?1",
	[W_DEP_CANCEL] = "UPDATE jobs SET status = 'cancelled',"
		" finished_at = ?2 WHERE id = ?1 AND status = 'waiting'",
	[W_DEP_MET] = "UPDATE jobs SET unmet = unmet - 1,"
		" status = iif(unmet <= 1, 'queued', 'waiting'),"
		" due = iif(unmet <= 1, run_at <= ?2, 0)"
		" WHERE id IN (SELECT job FROM job_deps WHERE dep = ?1)"
		" AND status = 'waiting'"
		" RETURNING id, type, status, run_at",
	[W_DEP_FAIL] = "UPDATE jobs SET status = 'cancelled', finished_at = ?2,"
		" error = 'dependency ' || ?1 || ' ' || ?3"
		" WHERE id IN (SELECT job FROM job_deps WHERE dep = ?1)"
		" AND status = 'waiting'"
		" RETURNING id, type, status, run_at",
	[W_DEP_DONE] = "DELETE FROM job_deps WHERE dep = ?1",
	/* Edges whose dependency ended unseen (start-up recovery). */
	[W_DEP_SWEEP] = "SELECT DISTINCT d.dep, j.status FROM job_deps d"
		" JOIN jobs j ON j.id = d.dep"
		" WHERE j.status IN ('succeeded', 'failed', 'cancelled')",
	/* A running attempt's report, fenced by its claim. */
	[W_PROGRESS] = "UPDATE jobs SET progress = ?3"
		" WHERE id = ?1 AND claim = ?2 AND status = 'running'",
	/* Callbacks (store.h): the outbox, by its due index. */
	[W_CB_SET] = "UPDATE jobs SET callback_url = ?2 WHERE id = ?1",
	[W_CB_RELEASE] = "UPDATE outbox SET claim = NULL, next_at = ?1"
		" WHERE status = 'pending' AND claim IS NOT NULL",
	[W_CB_CLAIM] = "UPDATE outbox SET claim = ?1, next_at = ?2"
		" WHERE job_id IN (SELECT job_id FROM outbox INDEXED BY"
		"   outbox_due WHERE status = 'pending' AND next_at <= ?3"
		"   ORDER BY next_at LIMIT ?4)"
		" RETURNING job_id, url, attempts",
	[W_CB_NEXT] = "SELECT min(next_at) FROM outbox INDEXED BY outbox_due"
		" WHERE status = 'pending'",
	[W_CB_DONE] = "UPDATE outbox SET status = ?3, attempts = ?4,"
		" next_at = ?5, last_error = coalesce(?6, last_error),"
		" claim = NULL"
		" WHERE job_id = ?1 AND claim = ?2",
};

/* The API's "callback" object of a job row (reads only). */
#define CALLBACK_COL \
	", iif(callback_url IS NULL, NULL, coalesce((SELECT json_object(" \
	"'url', o.url, 'status', o.status, 'attempts', o.attempts," \
	" 'last_error', o.last_error) FROM outbox o WHERE o.job_id = jobs.id)," \
	" json_object('url', callback_url, 'status', 'pending', 'attempts', 0," \
	" 'last_error', NULL)))"

#define LIST_VARIANTS 8 /* bit 0: status, bit 1: type, bit 2: after */

struct reader {
	sqlite3 *db;
	sqlite3_stmt *get;
	sqlite3_stmt *list[LIST_VARIANTS];
	sqlite3_stmt *counts;
	sqlite3_stmt *ping;
	struct reader *next;
};

struct sq {
	char *path;
	bool durability_full;
	sqlite3 *wdb;
	sqlite3_stmt *w[W_NSTMT];
	/* INSERT of insert_many_rows[i] rows, made on first use */
	sqlite3_stmt *insert_many[3];
	pthread_mutex_t pool_mu;
	struct reader *readers; /* free list; guarded by pool_mu */
	int lock_fd;            /* "<path>.lock", flock()ed; -1 when none */
	int db_fd;              /* the database file as opened; -1 when none */
	dev_t dev;              /* its identity, to notice a deleted or */
	ino_t ino;              /* replaced file */
	atomic_bool file_gone;  /* last check found it gone (logged once) */
};

static int
map_rc(int rc)
{
	switch (rc & 0xff) {
	case SQLITE_OK: case SQLITE_DONE: case SQLITE_ROW: return 0;
	case SQLITE_FULL: return JOBD_EFULL;
	case SQLITE_IOERR: return JOBD_EIO;
	case SQLITE_BUSY: case SQLITE_LOCKED: return JOBD_EBUSY;
	case SQLITE_NOMEM: return JOBD_ENOMEM;
	case SQLITE_CONSTRAINT: return JOBD_ECONFLICT;
	default: return JOBD_EIO;
	}
}

static int
fail(sqlite3 *db, int rc, char *err, size_t errlen, const char *what)
{
	return jobd_seterr(err, errlen, map_rc(rc), "sqlite: %s: %s (%d)", what,
	                   db ? sqlite3_errmsg(db) : sqlite3_errstr(rc), rc);
}

static int
exec_sql(sqlite3 *db, const char *sql, char *err, size_t errlen)
{
	char *msg = NULL;
	int rc = sqlite3_exec(db, sql, NULL, NULL, &msg);

	if (rc != SQLITE_OK) {
		int code = jobd_seterr(err, errlen, map_rc(rc), "sqlite: %s",
		                       msg ? msg : sqlite3_errstr(rc));
		sqlite3_free(msg);
		return code;
	}
	return 0;
}

static int
open_db(const char *path, bool full, int cache_kib, sqlite3 **out, char *err,
        size_t errlen)
{
	sqlite3 *db = NULL;
	int rc;
	char sql[192];

	rc = sqlite3_open_v2(path, &db,
	                     SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE |
	                     SQLITE_OPEN_NOMUTEX, NULL);
	if (rc != SQLITE_OK) {
		rc = jobd_seterr(err, errlen, map_rc(rc), "sqlite: open %s: %s",
		                 path, db ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
		sqlite3_close(db);
		return rc;
	}
	sqlite3_extended_result_codes(db, 1);
	sqlite3_busy_timeout(db, 5000);
	/* The planner would rather use jobs_status for the claim and sort;
	 * the queries name their index (INDEXED BY) instead. */
	snprintf(sql, sizeof(sql),
	         "PRAGMA synchronous = %s; PRAGMA journal_size_limit = 67108864;"
	         " PRAGMA cache_size = -%d;", full ? "FULL" : "NORMAL",
	         cache_kib);
	rc = exec_sql(db, sql, err, errlen);
	if (rc != 0) {
		sqlite3_close(db);
		return rc;
	}
	*out = db;
	return 0;
}

static int
migrate(sqlite3 *db, char *err, size_t errlen)
{
	sqlite3_stmt *st = NULL;
	int version = 0, rc;
	char sql[64];

	rc = exec_sql(db, "BEGIN IMMEDIATE", err, errlen);
	if (rc != 0)
		return rc;
	rc = sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &st, NULL);
	if (rc == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW)
		version = sqlite3_column_int(st, 0);
	sqlite3_finalize(st);
	if (version > SCHEMA_VERSION) {
		exec_sql(db, "ROLLBACK", NULL, 0);
		return jobd_seterr(err, errlen, JOBD_EINVAL,
		                   "store schema version %d is newer than this "
		                   "jobd (%d); upgrade jobd", version,
		                   SCHEMA_VERSION);
	}
	for (int v = version; v < SCHEMA_VERSION; v++) {
		rc = exec_sql(db, migrations[v], err, errlen);
		if (rc != 0)
			goto rollback;
		log_notice("store", "migrated schema to version %d", v + 1);
	}
	snprintf(sql, sizeof(sql), "PRAGMA user_version = %d", SCHEMA_VERSION);
	rc = exec_sql(db, sql, err, errlen);
	if (rc != 0)
		goto rollback;
	return exec_sql(db, "COMMIT", err, errlen);
rollback:
	exec_sql(db, "ROLLBACK", NULL, 0);
	return rc;
}

static void sq_close(void *impl);

/* The reason an open() of a file in the store's directory failed. */
static int
open_error(const char *path, const char *file, char *err, size_t errlen)
{
	int e = errno;
	char *copy = strdup(path);
	const char *dir = copy ? dirname(copy) : ".";
	struct stat sb;
	int rc;

	if (e == ENOENT && stat(dir, &sb) != 0)
		rc = jobd_seterr(err, errlen, JOBD_ESYS, "the store's directory "
		                 "%s does not exist: create it (mkdir -p %s, "
		                 "writable only by the user jobd runs as) or set "
		                 "[store] path", dir, dir);
	else
		rc = jobd_seterr(err, errlen, JOBD_ESYS, "%s: %s", file,
		                 strerror(e));
	free(copy);
	return rc;
}

/*
 * Takes "<path>.lock" for this process: an exclusive flock() that the
 * kernel drops when the process ends, however it ends.  The file holds
 * the holder's pid, for the message a second daemon prints.  JOBD_EBUSY
 * when another process holds it.
 */
static int
lock_store(struct sq *s, const char *path, char *err, size_t errlen)
{
	char *lock_path = NULL, *real = realpath(path, NULL), pid[32];
	int fd = -1, rc = 0, n;

	/* Named after the file the path leads to, so that a symlink to the
	 * store meets the same lock (and the holder's pid in it). */
	n = asprintf(&lock_path, "%s.lock", real != NULL ? real : path);
	free(real);
	if (n < 0)
		return jobd_seterr(err, errlen, JOBD_ENOMEM, "out of memory");
	fd = open(lock_path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0) {
		rc = open_error(path, lock_path, err, errlen);
		goto out;
	}
	if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
		if (errno != EWOULDBLOCK) {
			rc = jobd_seterr(err, errlen, JOBD_ESYS, "%s: flock: %s",
			                 lock_path, strerror(errno));
			goto out;
		}
		ssize_t got = pread(fd, pid, sizeof(pid) - 1, 0);
		long holder = 0;
		pid[got > 0 ? got : 0] = '\0';
		if (sscanf(pid, "%ld", &holder) != 1 || holder <= 0)
			holder = 0;
		if (holder > 0)
			rc = jobd_seterr(err, errlen, JOBD_EBUSY, "%s is in use by "
			                 "another jobd (pid %ld, holding %s): one "
			                 "store, one daemon; stop that one first",
			                 path, holder, lock_path);
		else
			rc = jobd_seterr(err, errlen, JOBD_EBUSY, "%s is in use by "
			                 "another process (pid unknown, holding "
			                 "%s): one store, one daemon", path,
			                 lock_path);
		goto out;
	}
	/* The pid is for messages only: a full disk must not keep jobd
	 * from starting (it answers 503 until there is room). */
	n = snprintf(pid, sizeof(pid), "%ld\n", (long)getpid());
	if (ftruncate(fd, 0) != 0 || pwrite(fd, pid, (size_t)n, 0) != n)
		log_warn("store", "%s: cannot write the pid: %s", lock_path,
		         strerror(errno));
	s->lock_fd = fd;
	fd = -1;
out:
	if (fd >= 0)
		close(fd);
	free(lock_path);
	return rc;
}

/*
 * Opens (creating it 0600 if needed) the database file itself, before
 * SQLite does, and remembers which file it is.  The descriptor stays open
 * until every SQLite connection is closed: closing another descriptor of
 * the file would drop SQLite's POSIX locks on it.
 */
static int
open_file(struct sq *s, const char *path, char *err, size_t errlen)
{
	struct stat sb;

	s->db_fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (s->db_fd < 0)
		return open_error(path, path, err, errlen);
	if (fstat(s->db_fd, &sb) != 0)
		return jobd_seterr(err, errlen, JOBD_ESYS, "%s: fstat: %s", path,
		                   strerror(errno));
	if (!S_ISREG(sb.st_mode))
		return jobd_seterr(err, errlen, JOBD_EINVAL, "%s: not a regular "
		                   "file", path);
	/* The file itself is locked too (flock() locks do not meet
	 * SQLite's POSIX locks): a daemon that reaches it under another
	 * name (a hard link) is refused like one on the same path. */
	if (flock(s->db_fd, LOCK_EX | LOCK_NB) != 0)
		return jobd_seterr(err, errlen, errno == EWOULDBLOCK ? JOBD_EBUSY
		                   : JOBD_ESYS, "%s is in use by another process "
		                   "(the same file under another name?): one "
		                   "store, one daemon%s%s", path,
		                   errno == EWOULDBLOCK ? "" : ": ",
		                   errno == EWOULDBLOCK ? "" : strerror(errno));
	s->dev = sb.st_dev;
	s->ino = sb.st_ino;
	return 0;
}

/*
 * Whether the store's path still names the file opened at start-up (a
 * fstat and a stat: a few microseconds).  JOBD_EBUSY (a 503 that does
 * not stop the daemon) when it was deleted or replaced: whatever would be
 * committed now would vanish with the daemon.  Logs the change once each
 * way.  Any thread.
 */
static int
file_check(struct sq *s, char *err, size_t errlen)
{
	struct stat fd_sb, path_sb;
	const char *what = NULL;

	if (stat(s->path, &path_sb) != 0)
		what = errno == ENOENT ? "deleted" : "unreachable (stat failed)";
	else if (path_sb.st_dev != s->dev || path_sb.st_ino != s->ino)
		what = "replaced by another file";
	else if (fstat(s->db_fd, &fd_sb) != 0 || fd_sb.st_nlink == 0)
		what = "deleted";
	if (what == NULL) {
		if (atomic_exchange(&s->file_gone, false))
			log_notice("store", "%s names the store's file again; "
			           "writes resume", s->path);
		return 0;
	}
	if (!atomic_exchange(&s->file_gone, true))
		log_err("store", "%s was %s while jobd runs: every write is "
		        "refused (503) and /readyz fails until jobd restarts.  "
		        "The file jobd had open stays readable at /proc/%ld/fd/%d "
		        "while jobd runs: copy it back to %s (keep %s-wal) "
		        "before restarting jobd, or its jobs are lost", s->path,
		        what, (long)getpid(), s->db_fd, s->path, s->path);
	return jobd_seterr(err, errlen, JOBD_EBUSY, "the store file %s was %s "
	                   "while jobd runs; nothing is accepted until jobd "
	                   "restarts", s->path, what);
}

static int
sq_open(const char *path, const struct store_options *opt, void **impl,
        char *err, size_t errlen)
{
	struct sq *s = calloc(1, sizeof(*s));
	sqlite3_stmt *st = NULL;
	int rc;

	if (s == NULL)
		return jobd_seterr(err, errlen, JOBD_ENOMEM, "out of memory");
	s->lock_fd = s->db_fd = -1;
	rc = store_faults_init(err, errlen);
	if (rc != 0) {
		free(s);
		return rc;
	}
	pthread_mutex_init(&s->pool_mu, NULL);
	s->durability_full = opt->durability_full;
	s->path = strdup(path);
	if (s->path == NULL) {
		rc = jobd_seterr(err, errlen, JOBD_ENOMEM, "out of memory");
		goto fail;
	}
	/* The lock first: nothing of the file is read, migrated or
	 * recovered unless this daemon is the only one on it. */
	rc = lock_store(s, path, err, errlen);
	if (rc == 0)
		rc = open_file(s, path, err, errlen);
	if (rc != 0)
		goto fail;
	rc = open_db(path, s->durability_full, 16384, &s->wdb, err, errlen);
	if (rc != 0)
		goto fail;
	/* WAL: readers beside the one writer.  The mode is persistent. */
	rc = sqlite3_prepare_v2(s->wdb, "PRAGMA journal_mode = WAL", -1, &st,
	                        NULL);
	if (rc == SQLITE_OK)
		rc = sqlite3_step(st);
	if (rc != SQLITE_ROW ||
	    strcmp((const char *)sqlite3_column_text(st, 0), "wal") != 0) {
		sqlite3_finalize(st);
		rc = jobd_seterr(err, errlen, JOBD_EIO,
		                 "sqlite: %s: cannot switch to WAL mode: %s", path,
		                 sqlite3_errmsg(s->wdb));
		goto fail;
	}
	sqlite3_finalize(st);
	rc = migrate(s->wdb, err, errlen);
	if (rc != 0)
		goto fail;
	/* The switch to WAL can fail quietly (an I/O error while it is made
	 * leaves the file in rollback-journal mode): check that it held. */
	st = NULL;
	rc = sqlite3_prepare_v2(s->wdb, "PRAGMA journal_mode", -1, &st, NULL);
	if (rc == SQLITE_OK)
		rc = sqlite3_step(st);
	if (rc != SQLITE_ROW ||
	    strcmp((const char *)sqlite3_column_text(st, 0), "wal") != 0) {
		sqlite3_finalize(st);
		rc = jobd_seterr(err, errlen, JOBD_EIO,
		                 "sqlite: %s: not in WAL mode after opening",
		                 path);
		goto fail;
	}
	sqlite3_finalize(st);
	for (int i = 0; i < W_NSTMT; i++) {
		rc = sqlite3_prepare_v3(s->wdb, writer_sql[i], -1,
		                        SQLITE_PREPARE_PERSISTENT, &s->w[i], NULL);
		if (rc != SQLITE_OK) {
			rc = fail(s->wdb, rc, err, errlen, writer_sql[i]);
			goto fail;
		}
	}
	*impl = s;
	return 0;
fail:
	sq_close(s);
	return rc;
}

static void
reader_free(struct reader *r)
{
	if (r == NULL)
		return;
	sqlite3_finalize(r->get);
	for (int i = 0; i < LIST_VARIANTS; i++)
		sqlite3_finalize(r->list[i]);
	sqlite3_finalize(r->counts);
	sqlite3_finalize(r->ping);
	sqlite3_close(r->db);
	free(r);
}

static void
sq_close(void *impl)
{
	struct sq *s = impl;

	if (s == NULL)
		return;
	while (s->readers != NULL) {
		struct reader *r = s->readers;
		s->readers = r->next;
		reader_free(r);
	}
	for (int i = 0; i < W_NSTMT; i++)
		sqlite3_finalize(s->w[i]);
	for (int i = 0; i < 3; i++)
		sqlite3_finalize(s->insert_many[i]);
	if (s->wdb != NULL && sqlite3_close(s->wdb) != SQLITE_OK)
		log_err("store", "close: %s", sqlite3_errmsg(s->wdb));
	/* After SQLite's last connection (see open_file), the lock last. */
	if (s->db_fd >= 0)
		close(s->db_fd);
	if (s->lock_fd >= 0)
		close(s->lock_fd);
	pthread_mutex_destroy(&s->pool_mu);
	free(s->path);
	free(s);
}

/* ---- rows ---- */

static char *
col_strdup(sqlite3_stmt *st, int i)
{
	const unsigned char *t = sqlite3_column_text(st, i);

	return t ? strdup((const char *)t) : NULL;
}

static int64_t
col_time(sqlite3_stmt *st, int i)
{
	return sqlite3_column_type(st, i) == SQLITE_NULL
	           ? -1 : sqlite3_column_int64(st, i);
}

static int
row_to_job(sqlite3_stmt *st, struct job *job)
{
	const char *s;

	job_init(job);
	s = (const char *)sqlite3_column_text(st, 0);
	snprintf(job->id, sizeof(job->id), "%s", s ? s : "");
	s = (const char *)sqlite3_column_text(st, 1);
	snprintf(job->type, sizeof(job->type), "%s", s ? s : "");
	s = (const char *)sqlite3_column_text(st, 2);
	job->status = s ? job_status_parse(s) : -1;
	job->priority = sqlite3_column_int(st, 3);
	job->attempt = sqlite3_column_int(st, 4);
	job->max_attempts = sqlite3_column_int(st, 5);
	job->timeout_ms = sqlite3_column_int64(st, 6);
	job->created_at_us = col_time(st, 7);
	job->run_at_us = col_time(st, 8);
	job->started_at_us = col_time(st, 9);
	job->finished_at_us = col_time(st, 10);
	job->payload = col_strdup(st, 11);
	job->result = col_strdup(st, 12);
	job->error = col_strdup(st, 13);
	job->has_exit_code = sqlite3_column_type(st, 14) != SQLITE_NULL;
	job->exit_code = sqlite3_column_int(st, 14);
	job->cancel_on_disconnect = sqlite3_column_int(st, 15) != 0;
	s = (const char *)sqlite3_column_text(st, 16);
	snprintf(job->claim, sizeof(job->claim), "%s", s ? s : "");
	job->idem_key = col_strdup(st, 17);
	job->idem_fp = col_strdup(st, 18);
	job->output_truncated = sqlite3_column_int(st, 19) != 0;
	job->depends_on = col_strdup(st, 20);
	job->progress = col_strdup(st, 21);
	if (sqlite3_column_count(st) > 22) {
		job->callback = col_strdup(st, 22);
		if (sqlite3_column_type(st, 22) != SQLITE_NULL &&
		    !job->callback) {
			job_clear(job);
			return JOBD_ENOMEM;
		}
	}
	if (job->payload == NULL ||
	    (sqlite3_column_type(st, 20) != SQLITE_NULL && !job->depends_on) ||
	    (sqlite3_column_type(st, 21) != SQLITE_NULL && !job->progress) ||
	    (sqlite3_column_type(st, 12) != SQLITE_NULL && !job->result) ||
	    (sqlite3_column_type(st, 13) != SQLITE_NULL && !job->error)) {
		job_clear(job);
		return JOBD_ENOMEM;
	}
	return 0;
}

static void
bind_text_or_null(sqlite3_stmt *st, int i, const char *s)
{
	if (s != NULL)
		sqlite3_bind_text(st, i, s, -1, SQLITE_STATIC);
	else
		sqlite3_bind_null(st, i);
}

static void
bind_time_or_null(sqlite3_stmt *st, int i, int64_t ms)
{
	if (ms >= 0)
		sqlite3_bind_int64(st, i, ms);
	else
		sqlite3_bind_null(st, i);
}

/* Runs a statement that returns no rows; resets it.  Returns sqlite rc. */
static int
step_done(sqlite3_stmt *st)
{
	int rc = sqlite3_step(st);

	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
	return rc == SQLITE_DONE || rc == SQLITE_ROW ? SQLITE_OK : rc;
}

/* ---- writer ---- */

static int
sq_begin(void *impl, char *err, size_t errlen)
{
	struct sq *s = impl;
	int rc = step_done(s->w[W_BEGIN]);

	return rc ? fail(s->wdb, rc, err, errlen, "begin") : 0;
}

static int
sq_commit(void *impl, char *err, size_t errlen)
{
	struct sq *s = impl;
	int rc = file_check(s, err, errlen);

	if (rc != 0) {
		step_done(s->w[W_ROLLBACK]);
		return rc;
	}
	rc = step_done(s->w[W_COMMIT]);
	if (rc != SQLITE_OK) {
		int code = fail(s->wdb, rc, err, errlen, "commit");
		/* A failed COMMIT may leave the transaction open (SQLITE_BUSY)
		 * or already rolled back (I/O error, full disk). */
		if (!sqlite3_get_autocommit(s->wdb))
			step_done(s->w[W_ROLLBACK]);
		return code;
	}
	return 0;
}

static void
sq_rollback(void *impl)
{
	struct sq *s = impl;

	if (!sqlite3_get_autocommit(s->wdb))
		step_done(s->w[W_ROLLBACK]);
}

static int
sq_insert(void *impl, const struct job *job, char *err, size_t errlen)
{
	struct sq *s = impl;
	sqlite3_stmt *st = s->w[W_INSERT];
	int rc;

	sqlite3_bind_text(st, 1, job->id, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, job->type, -1, SQLITE_STATIC);
	sqlite3_bind_int(st, 3, job->priority);
	sqlite3_bind_int(st, 4, job->max_attempts);
	sqlite3_bind_int64(st, 5, job->timeout_ms);
	sqlite3_bind_int64(st, 6, job->created_at_us);
	sqlite3_bind_int64(st, 7, job->run_at_us);
	sqlite3_bind_text(st, 8, job->payload ? job->payload : "null", -1,
	                  SQLITE_STATIC);
	sqlite3_bind_int(st, 9, job->cancel_on_disconnect);
	bind_text_or_null(st, 10, job->idem_key);
	bind_text_or_null(st, 11, job->idem_fp);
	if (job->status == JOB_RUNNING) {
		/* Claimed as it is inserted: its first attempt starts now. */
		sqlite3_bind_text(st, 12, job->claim, -1, SQLITE_STATIC);
		sqlite3_bind_int64(st, 13, job->started_at_us);
	}
	sqlite3_bind_int(st, 14, job->status == JOB_RUNNING &&
	                         job->attempt_started);
	rc = step_done(st);
	return rc ? fail(s->wdb, rc, err, errlen, "insert") : 0;
}

/*
 * Queued jobs, 64, 16 or 4 rows to a statement (the last 0 to 3 one by
 * one): one statement's set-up (its cursors, the CHECK's IN list, the
 * statement journal) for many rows.  The same row as W_INSERT makes
 * unclaimed.
 */
static const int insert_many_rows[3] = {64, 16, 4};
#define INSERT_MANY_COLS 11

static int
prepare_insert_many(struct sq *s, int which, char *err, size_t errlen)
{
	int rows = insert_many_rows[which];
	size_t cap = 256 + (size_t)rows * 160, len;
	char *sql = malloc(cap);
	int rc;

	if (sql == NULL)
		return jobd_seterr(err, errlen, JOBD_ENOMEM, "out of memory");
	len = (size_t)snprintf(sql, cap, "INSERT INTO jobs (id, type, status,"
	    " priority, attempt, max_attempts, timeout_ms, created_at, run_at,"
	    " payload, cancel_on_disconnect, idem_key, idem_fp, due,"
	    " started_at, claim, attempt_started) VALUES ");
	for (int r = 0; r < rows; r++) {
		int b = r * INSERT_MANY_COLS;
		len += (size_t)snprintf(sql + len, cap - len, "%s(?%d, ?%d, "
		    "'queued', ?%d, 0, ?%d, ?%d, ?%d, ?%d, ?%d, ?%d, ?%d, ?%d, "
		    "?%d <= ?%d, NULL, NULL, 0)", r ? "," : "", b + 1, b + 2,
		    b + 3, b + 4, b + 5, b + 6, b + 7, b + 8, b + 9, b + 10,
		    b + 11, b + 7, b + 6);
	}
	rc = sqlite3_prepare_v3(s->wdb, sql, -1, SQLITE_PREPARE_PERSISTENT,
	                        &s->insert_many[which], NULL);
	free(sql);
	return rc != SQLITE_OK ? fail(s->wdb, rc, err, errlen, "insert many")
	                       : 0;
}

/* One statement of insert_many_rows[which] jobs. */
static int
insert_chunk(struct sq *s, int which, const struct job *jobs, char *err,
             size_t errlen)
{
	sqlite3_stmt *st;
	int rc;

	if (s->insert_many[which] == NULL &&
	    (rc = prepare_insert_many(s, which, err, errlen)) != 0)
		return rc;
	st = s->insert_many[which];
	for (int r = 0; r < insert_many_rows[which]; r++) {
		const struct job *job = &jobs[r];
		int b = r * INSERT_MANY_COLS;
		sqlite3_bind_text(st, b + 1, job->id, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, b + 2, job->type, -1, SQLITE_STATIC);
		sqlite3_bind_int(st, b + 3, job->priority);
		sqlite3_bind_int(st, b + 4, job->max_attempts);
		sqlite3_bind_int64(st, b + 5, job->timeout_ms);
		sqlite3_bind_int64(st, b + 6, job->created_at_us);
		sqlite3_bind_int64(st, b + 7, job->run_at_us);
		sqlite3_bind_text(st, b + 8, job->payload ? job->payload
		                  : "null", -1, SQLITE_STATIC);
		sqlite3_bind_int(st, b + 9, job->cancel_on_disconnect);
		bind_text_or_null(st, b + 10, job->idem_key);
		bind_text_or_null(st, b + 11, job->idem_fp);
	}
	rc = step_done(st);
	return rc ? fail(s->wdb, rc, err, errlen, "insert many") : 0;
}

static int
sq_insert_many(void *impl, const struct job *jobs, size_t n, char *err,
               size_t errlen)
{
	struct sq *s = impl;
	size_t i = 0;
	int rc;

	for (int which = 0; which < 3; which++) {
		size_t rows = (size_t)insert_many_rows[which];
		for (; n - i >= rows; i += rows)
			if ((rc = insert_chunk(s, which, &jobs[i], err,
			                       errlen)) != 0)
				return rc;
	}
	for (; i < n; i++)
		if ((rc = sq_insert(impl, &jobs[i], err, errlen)) != 0)
			return rc;
	return 0;
}

static int
sq_find_idem(void *impl, const char *key, struct job *out, char *err,
             size_t errlen)
{
	struct sq *s = impl;
	sqlite3_stmt *st = s->w[W_FIND_IDEM];
	int rc;

	sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		rc = row_to_job(st, out);
	else if (rc == SQLITE_DONE)
		rc = JOBD_ENOTFOUND;
	else
		rc = fail(s->wdb, rc, err, errlen, "find idempotency key");
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
	return rc;
}

static int
sq_claim(void *impl, const struct store_claim_req *req, struct job **out,
         size_t *nout, char *err, size_t errlen)
{
	struct sq *s = impl;
	sqlite3_stmt *st = s->w[W_CLAIM];
	struct job *jobs = NULL;
	size_t n = 0, cap, used = 0, len = 3;
	char *included = NULL;
	int rc;

	*out = NULL;
	*nout = 0;
	/* Jobs whose run_at has come join the due ones, whatever can be
	 * claimed now (the earliest future run_at is then in the future). */
	sqlite3_bind_int64(s->w[W_PROMOTE], 1, req->now_us);
	rc = step_done(s->w[W_PROMOTE]);
	if (rc != SQLITE_OK)
		return fail(s->wdb, rc, err, errlen, "promote");
	if (req->limit == 0 || req->nincluded == 0)
		return 0;
	/* A JSON array of the types that may be claimed (type names need
	 * no escaping: [A-Za-z0-9_.-]). */
	for (size_t i = 0; i < req->nincluded; i++)
		len += strlen(req->included[i]) + 3;
	cap = req->limit < 16 ? req->limit : 16;
	included = malloc(len);
	jobs = malloc(cap * sizeof(*jobs));
	if (included == NULL || jobs == NULL) {
		rc = jobd_seterr(err, errlen, JOBD_ENOMEM, "out of memory");
		goto out;
	}
	used += (size_t)snprintf(included, len, "[");
	for (size_t i = 0; i < req->nincluded; i++)
		used += (size_t)snprintf(included + used, len - used, "%s\"%s\"",
		                         i ? "," : "", req->included[i]);
	snprintf(included + used, len - used, "]");

	sqlite3_bind_int64(st, 1, req->now_us);
	sqlite3_bind_text(st, 2, req->claim, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 3, included, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 4, (sqlite3_int64)req->limit);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW && n < req->limit) {
		if (n == cap) {
			/* Grow as rows come: most claims take a few. */
			struct job *more = realloc(jobs, 2 * cap * sizeof(*jobs));
			if (more == NULL) {
				rc = SQLITE_NOMEM;
				break;
			}
			jobs = more;
			cap *= 2;
		}
		if (row_to_job(st, &jobs[n]) != 0) {
			rc = SQLITE_NOMEM;
			break;
		}
		n++;
	}
	rc = rc == SQLITE_DONE ? 0 : fail(s->wdb, rc, err, errlen, "claim");
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
	if (rc == 0 && n > 0) {
		/* RETURNING gives rows in no particular order. */
		qsort(jobs, n, sizeof(*jobs), job_cmp_claim_order);
		*out = jobs;
		*nout = n;
		jobs = NULL;
		n = 0;
	}
out:
	for (size_t i = 0; i < n; i++)
		job_clear(&jobs[i]);
	free(jobs);
	free(included);
	return rc;
}

/*
 * Runs a bound UPDATE ... WHERE id AND claim ... RETURNING status: 0 with
 * the row's new status in *status (may be NULL), JOBD_ESTALE when no row
 * had that claim (fencing), else the error.  Resets st.
 */
static int
step_fenced(struct sq *s, sqlite3_stmt *st, const char *what, const char *id,
            const char *claim, int *status, char *err, size_t errlen)
{
	int rc = sqlite3_step(st);

	if (rc == SQLITE_ROW) {
		if (status != NULL)
			*status = job_status_parse(
				(const char *)sqlite3_column_text(st, 0));
		rc = 0;
	} else if (rc == SQLITE_DONE) {
		rc = jobd_seterr(err, errlen, JOBD_ESTALE,
		                 "job %s: claim %s is no longer current", id,
		                 claim);
	} else {
		rc = fail(s->wdb, rc, err, errlen, what);
	}
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
	return rc;
}

/* A fenced call's outcome as an answer: ESTALE is the op's, not an error
 * of the transaction. */
static int
answer(int rc, int status, struct store_answer *ans)
{
	if (rc != 0 && rc != JOBD_ESTALE)
		return rc;
	if (ans != NULL) {
		ans->rc = rc;
		ans->status = status;
		ans->dependents = true;
	}
	return 0;
}

static int
sq_flush(void *impl, char *err, size_t errlen)
{
	(void)impl;
	(void)err;
	(void)errlen;
	return 0; /* every answer was given at once */
}

static int
sq_complete(void *impl, const struct store_completion *c,
            struct store_answer *ans, char *err, size_t errlen)
{
	struct sq *s = impl;
	sqlite3_stmt *st = s->w[W_COMPLETE];

	sqlite3_bind_text(st, 1, c->id, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, c->claim, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 3, job_status_name(c->status), -1, SQLITE_STATIC);
	bind_time_or_null(st, 4, c->status == JOB_QUEUED ? c->run_at_us : -1);
	bind_time_or_null(st, 5, job_status_is_final(c->status)
	                             ? c->finished_at_us : -1);
	bind_text_or_null(st, 6, c->result);
	bind_text_or_null(st, 7, c->error);
	if (c->has_exit_code)
		sqlite3_bind_int(st, 8, c->exit_code);
	else
		sqlite3_bind_null(st, 8);
	sqlite3_bind_int(st, 9, c->output_truncated);
	bind_time_or_null(st, 10, c->started_at_us > 0 ? c->started_at_us : -1);
	sqlite3_bind_int64(st, 11, c->now_us);
	bind_text_or_null(st, 12, c->progress);
	int status = -1;
	int rc = step_fenced(s, st, "complete", c->id, c->claim, &status, err,
	                     errlen);
	return answer(rc, status, ans);
}

static int
sq_put_back(void *impl, const char *id, const char *claim, int64_t now_us,
            struct store_answer *ans, char *err, size_t errlen)
{
	struct sq *s = impl;
	sqlite3_stmt *st = s->w[W_PUT_BACK];

	sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, claim, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 3, now_us);
	int status = -1;
	int rc = step_fenced(s, st, "put back", id, claim, &status, err,
	                     errlen);
	return answer(rc, status, ans);
}

static int
sq_progress(void *impl, const char *id, const char *claim, const char *json,
            char *err, size_t errlen)
{
	struct sq *s = impl;
	sqlite3_stmt *st = s->w[W_PROGRESS];
	int rc;

	sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, claim, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 3, json, -1, SQLITE_STATIC);
	rc = step_done(st);
	return rc == SQLITE_OK ? 0 : fail(s->wdb, rc, err, errlen, "progress");
}

static int
sq_start(void *impl, const char *id, const char *claim, int64_t started_at_us,
         char *err, size_t errlen)
{
	struct sq *s = impl;
	sqlite3_stmt *st = s->w[W_START];
	int rc;

	sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, claim, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 3, started_at_us);
	rc = step_done(st);
	if (rc != SQLITE_OK)
		return fail(s->wdb, rc, err, errlen, "start");
	if (sqlite3_changes(s->wdb) == 0)
		return jobd_seterr(err, errlen, JOBD_ESTALE,
		                   "job %s: claim %s is no longer current", id,
		                   claim);
	return 0;
}

/* Current status of a job via the writer connection, or JOBD_ENOTFOUND. */
static int
writer_status_of(struct sq *s, const char *id, int *status, char *err,
                 size_t errlen)
{
	sqlite3_stmt *st = s->w[W_STATUS_OF];
	int rc;

	sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		*status = job_status_parse((const char *)sqlite3_column_text(st, 0));
		rc = 0;
	} else if (rc == SQLITE_DONE) {
		rc = jobd_seterr(err, errlen, JOBD_ENOTFOUND, "no job %s", id);
	} else {
		rc = fail(s->wdb, rc, err, errlen, "status");
	}
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
	return rc;
}

static int
sq_cancel(void *impl, const char *id, int64_t now_us, int *status, char *err,
          size_t errlen)
{
	struct sq *s = impl;
	sqlite3_stmt *st = s->w[W_CANCEL];
	int rc;

	sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, now_us);
	rc = step_done(st);
	if (rc != SQLITE_OK)
		return fail(s->wdb, rc, err, errlen, "cancel");
	if (sqlite3_changes(s->wdb) > 0) {
		*status = JOB_CANCELLED;
		return 0;
	}
	rc = writer_status_of(s, id, status, err, errlen);
	if (rc != 0)
		return rc;
	if (*status == JOB_RUNNING) {
		st = s->w[W_MARK_CANCEL];
		sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
		rc = step_done(st);
		if (rc != SQLITE_OK)
			return fail(s->wdb, rc, err, errlen, "mark cancel");
	}
	return jobd_seterr(err, errlen, JOBD_ECONFLICT, "job %s is %s", id,
	                   job_status_name(*status));
}

static int
sq_retry(void *impl, const char *id, int64_t now_us, int *status, char *err,
         size_t errlen)
{
	struct sq *s = impl;
	sqlite3_stmt *st = s->w[W_RETRY];
	int rc, before;

	/* The status it had, for the callers' per-status counts. */
	rc = writer_status_of(s, id, &before, err, errlen);
	if (rc != 0)
		return rc;
	sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, now_us);
	rc = step_done(st);
	if (rc != SQLITE_OK)
		return fail(s->wdb, rc, err, errlen, "retry");
	if (sqlite3_changes(s->wdb) > 0) {
		*status = before;
		return 0;
	}
	*status = before;
	return jobd_seterr(err, errlen, JOBD_ECONFLICT, "job %s is %s", id,
	                   job_status_name(*status));
}

static int
sq_recover(void *impl, int64_t now_us, int *requeued, int *failed,
           char *err, size_t errlen)
{
	struct sq *s = impl;
	int rc;
	const int steps[] = {W_RECOVER_CANCEL, W_RECOVER_FAIL,
	                     W_RECOVER_REQUEUE};

	*requeued = *failed = 0;
	for (size_t i = 0; i < 3; i++) {
		sqlite3_stmt *st = s->w[steps[i]];
		sqlite3_bind_int64(st, 1, now_us);
		rc = step_done(st);
		if (rc != SQLITE_OK)
			return fail(s->wdb, rc, err, errlen, "recover");
		if (steps[i] == W_RECOVER_REQUEUE)
			*requeued += sqlite3_changes(s->wdb);
		else
			*failed += sqlite3_changes(s->wdb);
	}
	return 0;
}

static int
sq_purge(void *impl, int64_t cutoff_us, int limit,
         int64_t deleted[JOB_NSTATUS], char *err, size_t errlen)
{
	struct sq *s = impl;
	sqlite3_stmt *st = s->w[W_PURGE];
	int rc;

	sqlite3_bind_int64(st, 1, cutoff_us);
	sqlite3_bind_int(st, 2, limit);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		int status = job_status_parse(
			(const char *)sqlite3_column_text(st, 0));
		if (status >= 0)
			deleted[status]++;
	}
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
	if (rc != SQLITE_DONE)
		return fail(s->wdb, rc, err, errlen, "purge");
	return 0;
}

static int
sq_next_run_at(void *impl, int64_t *out_us, char *err, size_t errlen)
{
	struct sq *s = impl;
	sqlite3_stmt *st = s->w[W_NEXT_RUN_AT];
	int rc = sqlite3_step(st);

	if (rc == SQLITE_ROW) {
		*out_us = col_time(st, 0);
		rc = 0;
	} else {
		rc = fail(s->wdb, rc, err, errlen, "next run_at");
	}
	sqlite3_reset(st);
	return rc;
}

/* The paused types, read by the writer inside its transaction. */
static int
sq_pauses(void *impl, store_pause_fn fn, void *arg, char *err, size_t errlen)
{
	struct sq *s = impl;
	sqlite3_stmt *st = s->w[W_PAUSES];
	int rc;

	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		const char *type = (const char *)sqlite3_column_text(st, 0);
		if (type != NULL)
			fn(arg, type);
	}
	rc = rc == SQLITE_DONE ? 0 : fail(s->wdb, rc, err, errlen, "pauses");
	sqlite3_reset(st);
	return rc;
}

static int
sq_set_pause(void *impl, const char *type, bool paused, int64_t now_us,
             char *err, size_t errlen)
{
	struct sq *s = impl;
	sqlite3_stmt *st = s->w[paused ? W_PAUSE : W_RESUME];
	int rc;

	sqlite3_bind_text(st, 1, type, -1, SQLITE_STATIC);
	if (paused)
		sqlite3_bind_int64(st, 2, now_us);
	rc = step_done(st);
	if (rc != SQLITE_OK)
		return fail(s->wdb, rc, err, errlen, paused ? "pause" : "resume");
	return 0;
}

static int
sq_set_callback(void *impl, const char *id, const char *url, char *err,
                size_t errlen)
{
	struct sq *s = impl;
	sqlite3_stmt *st = s->w[W_CB_SET];
	int rc;

	sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, url, -1, SQLITE_STATIC);
	rc = step_done(st);
	return rc != SQLITE_OK ? fail(s->wdb, rc, err, errlen, "callback_url")
	                       : 0;
}

static int
sq_outbox_claim(void *impl, const struct store_outbox_claim_req *req,
                struct store_outbox_row **out, size_t *nout,
                int64_t *next_us, char *err, size_t errlen)
{
	struct sq *s = impl;
	sqlite3_stmt *st;
	struct store_outbox_row *rows = NULL;
	size_t n = 0;
	int rc;

	*out = NULL;
	*nout = 0;
	*next_us = -1;
	if (req->release) {
		st = s->w[W_CB_RELEASE];
		sqlite3_bind_int64(st, 1, req->now_us);
		rc = step_done(st);
		if (rc != SQLITE_OK)
			return fail(s->wdb, rc, err, errlen, "outbox release");
	}
	rows = calloc(req->limit ? req->limit : 1, sizeof(*rows));
	if (rows == NULL)
		return jobd_seterr(err, errlen, JOBD_ENOMEM, "out of memory");
	st = s->w[W_CB_CLAIM];
	sqlite3_bind_text(st, 1, req->claim, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, req->until_us);
	sqlite3_bind_int64(st, 3, req->now_us);
	sqlite3_bind_int64(st, 4, (sqlite3_int64)req->limit);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW && n < req->limit) {
		const char *id = (const char *)sqlite3_column_text(st, 0);
		snprintf(rows[n].id, sizeof(rows[n].id), "%s", id ? id : "");
		rows[n].url = col_strdup(st, 1);
		rows[n].attempts = sqlite3_column_int(st, 2);
		n++;
		if (rows[n - 1].url == NULL) {
			rc = SQLITE_NOMEM;
			break;
		}
	}
	if (rc == SQLITE_ROW) /* (never: LIMIT) */
		rc = SQLITE_DONE;
	rc = rc == SQLITE_DONE ? 0 : fail(s->wdb, rc, err, errlen,
	                                  "outbox claim");
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
	if (rc == 0) {
		st = s->w[W_CB_NEXT];
		int r2 = sqlite3_step(st);
		if (r2 == SQLITE_ROW)
			*next_us = col_time(st, 0);
		else
			rc = fail(s->wdb, r2, err, errlen, "outbox next");
		sqlite3_reset(st);
	}
	if (rc != 0) {
		for (size_t i = 0; i < n; i++)
			free(rows[i].url);
		free(rows);
		return rc;
	}
	*out = rows;
	*nout = n;
	return 0;
}

static int
sq_outbox_done(void *impl, const char *id, const char *claim, int status,
               int attempts, int64_t next_at_us, const char *last_error,
               char *err, size_t errlen)
{
	static const char *const names[] = {"pending", "delivered", "failed"};
	struct sq *s = impl;
	sqlite3_stmt *st = s->w[W_CB_DONE];
	int rc;

	sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, claim, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 3, names[status], -1, SQLITE_STATIC);
	sqlite3_bind_int(st, 4, attempts);
	sqlite3_bind_int64(st, 5, next_at_us);
	bind_text_or_null(st, 6, last_error);
	rc = step_done(st);
	return rc != SQLITE_OK ? fail(s->wdb, rc, err, errlen, "outbox done")
	                       : 0;
}

/* ---- readers ---- */

static int
prepare(sqlite3 *db, const char *sql, sqlite3_stmt **st, char *err,
        size_t errlen)
{
	int rc = sqlite3_prepare_v3(db, sql, -1, SQLITE_PREPARE_PERSISTENT, st,
	                            NULL);

	return rc == SQLITE_OK ? 0 : fail(db, rc, err, errlen, sql);
}

static struct reader *
reader_get(struct sq *s, char *err, size_t errlen)
{
	struct reader *r;
	int rc;

	pthread_mutex_lock(&s->pool_mu);
	r = s->readers;
	if (r != NULL)
		s->readers = r->next;
	pthread_mutex_unlock(&s->pool_mu);
	if (r != NULL)
		return r;

	r = calloc(1, sizeof(*r));
	if (r == NULL) {
		jobd_seterr(err, errlen, JOBD_ENOMEM, "out of memory");
		return NULL;
	}
	rc = open_db(s->path, s->durability_full, 4096, &r->db, err, errlen);
	if (rc == 0)
		rc = prepare(r->db, "SELECT " JOB_COLS CALLBACK_COL
		             " FROM jobs WHERE id = ?1", &r->get, err, errlen);
	for (int v = 0; rc == 0 && v < LIST_VARIANTS; v++) {
		char sql[1024];
		/* List pages leave out payload and result (each up to a
		 * MiB; DESIGN §2): never read from the file, they cost
		 * nothing here. */
		snprintf(sql, sizeof(sql),
		         "SELECT id, type, status, priority, attempt,"
		         " max_attempts, timeout_ms, created_at, run_at,"
		         " started_at, finished_at, 'null', NULL, error,"
		         " exit_code, cancel_on_disconnect, claim, idem_key,"
		         " idem_fp, output_truncated, depends_on, progress"
		         CALLBACK_COL " FROM jobs WHERE 1%s%s%s"
		         " ORDER BY id DESC LIMIT :limit",
		         v & 1 ? " AND status = :status" : "",
		         v & 2 ? " AND type = :type" : "",
		         v & 4 ? " AND id < :after" : "");
		rc = prepare(r->db, sql, &r->list[v], err, errlen);
	}
	if (rc == 0)
		rc = prepare(r->db, "SELECT status, count(*) FROM jobs"
		             " GROUP BY status", &r->counts, err, errlen);
	if (rc == 0)
		rc = prepare(r->db, "SELECT 1 FROM jobs LIMIT 1", &r->ping, err,
		             errlen);
	if (rc != 0) {
		reader_free(r);
		return NULL;
	}
	return r;
}

static void
reader_put(struct sq *s, struct reader *r)
{
	pthread_mutex_lock(&s->pool_mu);
	r->next = s->readers;
	s->readers = r;
	pthread_mutex_unlock(&s->pool_mu);
}

static int
sq_get(void *impl, const char *id, struct job *out, char *err, size_t errlen)
{
	struct sq *s = impl;
	struct reader *r = reader_get(s, err, errlen);
	int rc;

	if (r == NULL)
		return JOBD_EIO;
	sqlite3_bind_text(r->get, 1, id, -1, SQLITE_STATIC);
	rc = sqlite3_step(r->get);
	if (rc == SQLITE_ROW)
		rc = row_to_job(r->get, out);
	else if (rc == SQLITE_DONE)
		rc = jobd_seterr(err, errlen, JOBD_ENOTFOUND, "no job %s", id);
	else
		rc = fail(r->db, rc, err, errlen, "get");
	sqlite3_reset(r->get);
	sqlite3_clear_bindings(r->get);
	reader_put(s, r);
	return rc;
}

static void
bind_named(sqlite3_stmt *st, const char *name, const char *text)
{
	int i = sqlite3_bind_parameter_index(st, name);

	if (i > 0)
		sqlite3_bind_text(st, i, text, -1, SQLITE_STATIC);
}

static int
sq_list(void *impl, const struct store_filter *f, struct job **out,
        size_t *nout, char *err, size_t errlen)
{
	struct sq *s = impl;
	struct reader *r;
	struct job *jobs;
	sqlite3_stmt *st;
	size_t n = 0;
	int rc, v;

	*out = NULL;
	*nout = 0;
	jobs = calloc(f->limit ? f->limit : 1, sizeof(*jobs));
	if (jobs == NULL)
		return jobd_seterr(err, errlen, JOBD_ENOMEM, "out of memory");
	r = reader_get(s, err, errlen);
	if (r == NULL) {
		free(jobs);
		return JOBD_EIO;
	}
	v = (f->status >= 0 ? 1 : 0) | (f->type ? 2 : 0) | (f->after ? 4 : 0);
	st = r->list[v];
	if (f->status >= 0)
		bind_named(st, ":status", job_status_name(f->status));
	if (f->type)
		bind_named(st, ":type", f->type);
	if (f->after)
		bind_named(st, ":after", f->after);
	sqlite3_bind_int64(st, sqlite3_bind_parameter_index(st, ":limit"),
	                   (sqlite3_int64)f->limit);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW && n < f->limit) {
		if (row_to_job(st, &jobs[n]) != 0) {
			rc = SQLITE_NOMEM;
			break;
		}
		n++;
	}
	if (rc != SQLITE_DONE && rc != SQLITE_ROW) {
		rc = fail(r->db, rc, err, errlen, "list");
		for (size_t i = 0; i < n; i++)
			job_clear(&jobs[i]);
		free(jobs);
		jobs = NULL;
		n = 0;
	} else {
		rc = 0;
	}
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
	reader_put(s, r);
	*out = jobs;
	*nout = n;
	return rc;
}

static int
sq_counts(void *impl, int64_t counts[JOB_NSTATUS], char *err, size_t errlen)
{
	struct sq *s = impl;
	struct reader *r = reader_get(s, err, errlen);
	int rc;

	if (r == NULL)
		return JOBD_EIO;
	for (int i = 0; i < JOB_NSTATUS; i++)
		counts[i] = 0;
	while ((rc = sqlite3_step(r->counts)) == SQLITE_ROW) {
		int status = job_status_parse(
			(const char *)sqlite3_column_text(r->counts, 0));
		if (status >= 0)
			counts[status] = sqlite3_column_int64(r->counts, 1);
	}
	rc = rc == SQLITE_DONE ? 0 : fail(r->db, rc, err, errlen, "counts");
	sqlite3_reset(r->counts);
	reader_put(s, r);
	return rc;
}

/* GET /types: queued and running jobs per type, through jobs_status. */
static int
sq_counts_by_type(void *impl, store_type_count_fn fn, void *arg, char *err,
                  size_t errlen)
{
	struct sq *s = impl;
	struct reader *r = reader_get(s, err, errlen);
	sqlite3_stmt *st = NULL;
	int rc;

	if (r == NULL)
		return JOBD_EIO;
	rc = sqlite3_prepare_v3(r->db, "SELECT type, status, count(*) FROM jobs"
	                        " WHERE status IN ('queued', 'running')"
	                        " GROUP BY type, status", -1,
	                        0, &st, NULL);
	if (rc != SQLITE_OK) {
		rc = fail(r->db, rc, err, errlen, "counts by type");
		reader_put(s, r);
		return rc;
	}
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		const char *type = (const char *)sqlite3_column_text(st, 0);
		int status = job_status_parse(
			(const char *)sqlite3_column_text(st, 1));
		if (type != NULL && status >= 0)
			fn(arg, type, status, sqlite3_column_int64(st, 2));
	}
	rc = rc == SQLITE_DONE ? 0 : fail(r->db, rc, err, errlen,
	                                  "counts by type");
	sqlite3_finalize(st);
	reader_put(s, r);
	return rc;
}

/* GET /types: the paused types as committed. */
static int
sq_read_pauses(void *impl, store_pause_fn fn, void *arg, char *err,
               size_t errlen)
{
	struct sq *s = impl;
	struct reader *r = reader_get(s, err, errlen);
	sqlite3_stmt *st = NULL;
	int rc;

	if (r == NULL)
		return JOBD_EIO;
	rc = sqlite3_prepare_v3(r->db, "SELECT type FROM type_pauses", -1, 0,
	                        &st, NULL);
	if (rc != SQLITE_OK) {
		rc = fail(r->db, rc, err, errlen, "pauses");
		reader_put(s, r);
		return rc;
	}
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		const char *type = (const char *)sqlite3_column_text(st, 0);
		if (type != NULL)
			fn(arg, type);
	}
	rc = rc == SQLITE_DONE ? 0 : fail(r->db, rc, err, errlen, "pauses");
	sqlite3_finalize(st);
	reader_put(s, r);
	return rc;
}

static int
sq_schedules(void *impl, store_schedule_fn fn, void *arg, char *err,
             size_t errlen)
{
	struct sq *s = impl;
	struct reader *r = reader_get(s, err, errlen);
	sqlite3_stmt *st = NULL;
	int rc;

	if (r == NULL)
		return JOBD_EIO;
	rc = sqlite3_prepare_v3(r->db, "SELECT name, cursor_ms, last_run_ms,"
	                        " last_job_id, paused FROM schedules", -1, 0,
	                        &st, NULL);
	if (rc != SQLITE_OK) {
		rc = fail(r->db, rc, err, errlen, "schedules");
		reader_put(s, r);
		return rc;
	}
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		struct store_schedule row = {.cursor_ms = -1,
		                             .last_run_ms = -1};
		const char *name = (const char *)sqlite3_column_text(st, 0);
		const char *job = (const char *)sqlite3_column_text(st, 3);
		if (name == NULL)
			continue;
		snprintf(row.name, sizeof(row.name), "%s", name);
		if (sqlite3_column_type(st, 1) != SQLITE_NULL)
			row.cursor_ms = sqlite3_column_int64(st, 1);
		if (sqlite3_column_type(st, 2) != SQLITE_NULL)
			row.last_run_ms = sqlite3_column_int64(st, 2);
		if (job != NULL)
			snprintf(row.last_job_id, sizeof(row.last_job_id), "%s",
			         job);
		row.paused = sqlite3_column_int(st, 4) != 0;
		fn(arg, &row);
	}
	rc = rc == SQLITE_DONE ? 0 : fail(r->db, rc, err, errlen, "schedules");
	sqlite3_finalize(st);
	reader_put(s, r);
	return rc;
}

/* The writer's upsert of a schedule row (store.h has the rules).  Rare:
 * prepared each time. */
static int
sq_schedule_put(void *impl, const struct store_schedule *u, char *err,
                size_t errlen)
{
	struct sq *s = impl;
	sqlite3_stmt *st = NULL;
	int rc = sqlite3_prepare_v3(s->wdb,
	    "INSERT INTO schedules (name, cursor_ms, last_run_ms, last_job_id,"
	    " paused) VALUES (?1, ?2, ?3, ?4, coalesce(?5, 0))"
	    " ON CONFLICT (name) DO UPDATE SET"
	    " cursor_ms = CASE WHEN ?2 IS NULL THEN cursor_ms"
	    "   WHEN cursor_ms IS NULL OR ?2 > cursor_ms THEN ?2"
	    "   ELSE cursor_ms END,"
	    " last_job_id = CASE WHEN ?3 IS NOT NULL AND (last_run_ms IS NULL"
	    "   OR ?3 >= last_run_ms) THEN ?4 ELSE last_job_id END,"
	    " last_run_ms = CASE WHEN ?3 IS NOT NULL AND (last_run_ms IS NULL"
	    "   OR ?3 >= last_run_ms) THEN ?3 ELSE last_run_ms END,"
	    " paused = coalesce(?5, paused)"
	    " WHERE ?6 IS NULL OR paused = 0", -1, 0, &st, NULL);

	if (rc != SQLITE_OK)
		return fail(s->wdb, rc, err, errlen, "schedule put");
	sqlite3_bind_text(st, 1, u->name, -1, SQLITE_STATIC);
	if (u->cursor_ms >= 0)
		sqlite3_bind_int64(st, 2, u->cursor_ms);
	if (u->last_run_ms >= 0)
		sqlite3_bind_int64(st, 3, u->last_run_ms);
	if (u->last_job_id[0] != '\0')
		sqlite3_bind_text(st, 4, u->last_job_id, -1, SQLITE_STATIC);
	if (u->paused >= 0)
		sqlite3_bind_int(st, 5, u->paused);
	if (u->unless_paused)
		sqlite3_bind_int(st, 6, 1);
	rc = sqlite3_step(st);
	rc = rc == SQLITE_DONE ? 0 : fail(s->wdb, rc, err, errlen,
	                                  "schedule put");
	if (rc == 0 && u->unless_paused && sqlite3_changes(s->wdb) == 0)
		rc = jobd_seterr(err, errlen, JOBD_ECONFLICT,
		                 "schedule %s is paused", u->name);
	sqlite3_finalize(st);
	return rc;
}

static bool
sq_ping(void *impl)
{
	struct sq *s = impl;
	struct reader *r;
	int rc;

	if (file_check(s, NULL, 0) != 0)
		return false;
	r = reader_get(s, NULL, 0);
	if (r == NULL)
		return false;
	rc = sqlite3_step(r->ping);
	sqlite3_reset(r->ping);
	reader_put(s, r);
	return rc == SQLITE_ROW || rc == SQLITE_DONE;
}

static int
sq_check(void *impl, char *err, size_t errlen)
{
	return file_check(impl, err, errlen);
}

/* ---- dependencies ---- */

static int
sq_deps_link(void *impl, const struct job *job, int64_t now_us, int *status,
             char *err, size_t errlen)
{
	struct sq *s = impl;
	char deps[JOB_MAX_DEPENDS_ON][UUID_STR_LEN], why[128] = "";
	bool pending[JOB_MAX_DEPENDS_ON];
	const char *p = job->depends_on;
	size_t n = 0;
	int unmet = 0, rc;
	sqlite3_stmt *st;

	while (n < JOB_MAX_DEPENDS_ON && job_depends_on_next(&p, deps[n])) {
		int dst;
		rc = writer_status_of(s, deps[n], &dst, err, errlen);
		if (rc == JOBD_ENOTFOUND) {
			st = s->w[W_DEP_DROP];
			sqlite3_bind_text(st, 1, job->id, -1, SQLITE_STATIC);
			rc = step_done(st);
			if (rc != SQLITE_OK)
				return fail(s->wdb, rc, err, errlen, "drop");
			return jobd_seterr(err, errlen, JOBD_ERANGE,
			                   "\"depends_on\": no job %s", deps[n]);
		}
		if (rc != 0)
			return rc;
		if ((dst == JOB_FAILED || dst == JOB_CANCELLED) && !why[0])
			snprintf(why, sizeof(why), "dependency %.36s %s", deps[n],
			         job_status_name(dst));
		pending[n] = !job_status_is_final(dst);
		n++;
	}
	for (size_t i = 0; i < n && !why[0]; i++) {
		if (!pending[i])
			continue;
		st = s->w[W_DEP_EDGE];
		sqlite3_bind_text(st, 1, deps[i], -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 2, job->id, -1, SQLITE_STATIC);
		rc = step_done(st);
		if (rc != SQLITE_OK)
			return fail(s->wdb, rc, err, errlen, "dependency edge");
		unmet++;
	}
	*status = why[0] ? JOB_CANCELLED : unmet > 0 ? JOB_WAITING : JOB_QUEUED;
	st = s->w[W_DEP_SET];
	sqlite3_bind_text(st, 1, job->id, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, job_status_name(*status), -1, SQLITE_STATIC);
	sqlite3_bind_int(st, 3, unmet);
	sqlite3_bind_text(st, 4, job->depends_on, -1, SQLITE_STATIC);
	bind_text_or_null(st, 5, why[0] ? why : NULL);
	bind_time_or_null(st, 6, why[0] ? now_us : -1);
	rc = step_done(st);
	return rc != SQLITE_OK ? fail(s->wdb, rc, err, errlen, "dependencies")
	                       : 0;
}

static int
sq_deps_missing(void *impl, const char *const *ids, size_t n,
                size_t *missing, char *err, size_t errlen)
{
	struct sq *s = impl;
	int status;

	for (size_t i = 0; i < n; i++) {
		int rc = writer_status_of(s, ids[i], &status, err, errlen);
		if (rc == JOBD_ENOTFOUND) {
			*missing = i;
			return 0;
		}
		if (rc != 0)
			return rc;
	}
	*missing = n;
	return 0;
}

static int
sq_deps_cancel(void *impl, const char *id, int64_t now_us, bool *cancelled,
               char *err, size_t errlen)
{
	struct sq *s = impl;
	sqlite3_stmt *st = s->w[W_DEP_CANCEL];
	int rc;

	sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, now_us);
	rc = step_done(st);
	if (rc != SQLITE_OK)
		return fail(s->wdb, rc, err, errlen, "cancel waiting");
	*cancelled = sqlite3_changes(s->wdb) > 0;
	return 0;
}

/* A job whose dependents are to be resolved. */
struct dep_end {
	char id[UUID_STR_LEN];
	int status;
};

static int
dep_push(struct dep_end **q, size_t *n, size_t *cap, const char *id,
         int status)
{
	if (*n == *cap) {
		size_t c = *cap ? *cap * 2 : 64;
		struct dep_end *more = realloc(*q, c * sizeof(**q));
		if (more == NULL)
			return JOBD_ENOMEM;
		*q = more;
		*cap = c;
	}
	snprintf((*q)[*n].id, UUID_STR_LEN, "%s", id);
	(*q)[*n].status = status;
	(*n)++;
	return 0;
}

/* Breadth first: the ends given, then the jobs their failure cancels. */
static int
sq_deps_resolve(void *impl, const char *const *ids, const int *statuses,
                size_t n, int64_t now_us, store_dep_fn fn, void *arg,
                char *err, size_t errlen)
{
	struct sq *s = impl;
	struct dep_end *q = NULL;
	size_t nq = 0, cap = 0;
	int rc = 0;

	for (size_t i = 0; i < n && rc == 0; i++)
		if (job_status_is_final(statuses[i]))
			rc = dep_push(&q, &nq, &cap, ids[i], statuses[i]);
	for (size_t i = 0; i < nq && rc == 0; i++) {
		bool ok = q[i].status == JOB_SUCCEEDED;
		sqlite3_stmt *st = s->w[ok ? W_DEP_MET : W_DEP_FAIL];
		char id[UUID_STR_LEN];
		int step;

		/* (q may move as it grows: the id is copied.) */
		snprintf(id, sizeof(id), "%s", q[i].id);
		sqlite3_bind_text(st, 1, id, -1, SQLITE_TRANSIENT);
		sqlite3_bind_int64(st, 2, now_us);
		if (!ok)
			sqlite3_bind_text(st, 3, job_status_name(q[i].status),
			                  -1, SQLITE_STATIC);
		while ((step = sqlite3_step(st)) == SQLITE_ROW) {
			const char *jid = (const char *)sqlite3_column_text(st, 0);
			const char *type = (const char *)sqlite3_column_text(st, 1);
			int to = job_status_parse(
				(const char *)sqlite3_column_text(st, 2));
			if (to == JOB_WAITING || jid == NULL || type == NULL)
				continue; /* a dependency still to come */
			if (fn != NULL)
				fn(arg, jid, type, to,
				   sqlite3_column_int64(st, 3));
			if (to == JOB_CANCELLED &&
			    dep_push(&q, &nq, &cap, jid, JOB_CANCELLED) != 0) {
				step = SQLITE_NOMEM;
				break;
			}
		}
		rc = step == SQLITE_DONE ? 0
		     : fail(s->wdb, step, err, errlen, "resolve dependents");
		sqlite3_reset(st);
		sqlite3_clear_bindings(st);
		if (rc == 0) {
			st = s->w[W_DEP_DONE];
			sqlite3_bind_text(st, 1, id, -1, SQLITE_TRANSIENT);
			step = step_done(st);
			if (step != SQLITE_OK)
				rc = fail(s->wdb, step, err, errlen,
				          "dependency edges");
		}
	}
	free(q);
	return rc;
}

static int
sq_deps_sweep(void *impl, int64_t now_us, store_dep_fn fn, void *arg,
              char *err, size_t errlen)
{
	struct sq *s = impl;
	sqlite3_stmt *st = s->w[W_DEP_SWEEP];
	struct dep_end *q = NULL;
	size_t nq = 0, cap = 0;
	const char **ids = NULL;
	int *statuses = NULL;
	int rc = 0, step;

	while ((step = sqlite3_step(st)) == SQLITE_ROW) {
		const char *id = (const char *)sqlite3_column_text(st, 0);
		int status = job_status_parse(
			(const char *)sqlite3_column_text(st, 1));
		if (id != NULL && dep_push(&q, &nq, &cap, id, status) != 0) {
			step = SQLITE_NOMEM;
			break;
		}
	}
	rc = step == SQLITE_DONE ? 0 : fail(s->wdb, step, err, errlen,
	                                    "dependency sweep");
	sqlite3_reset(st);
	if (rc == 0 && nq > 0) {
		ids = malloc(nq * sizeof(*ids));
		statuses = malloc(nq * sizeof(*statuses));
		if (ids == NULL || statuses == NULL)
			rc = jobd_seterr(err, errlen, JOBD_ENOMEM,
			                 "out of memory");
		for (size_t i = 0; rc == 0 && i < nq; i++) {
			ids[i] = q[i].id;
			statuses[i] = q[i].status;
		}
		if (rc == 0)
			rc = sq_deps_resolve(s, ids, statuses, nq, now_us, fn,
			                     arg, err, errlen);
	}
	free(ids);
	free(statuses);
	free(q);
	return rc;
}

const struct store_ops store_sqlite_ops = {
	.name = "sqlite",
	.open = sq_open,
	.close = sq_close,
	.begin = sq_begin,
	.commit = sq_commit,
	.rollback = sq_rollback,
	.insert = sq_insert,
	.insert_many = sq_insert_many,
	.find_idem = sq_find_idem,
	.claim = sq_claim,
	.complete = sq_complete,
	.start = sq_start,
	.progress = sq_progress,
	.put_back = sq_put_back,
	.flush = sq_flush,
	.cancel = sq_cancel,
	.retry = sq_retry,
	.recover = sq_recover,
	.purge = sq_purge,
	.next_run_at = sq_next_run_at,
	.get = sq_get,
	.list = sq_list,
	.counts = sq_counts,
	.counts_by_type = sq_counts_by_type,
	.ping = sq_ping,
	.check = sq_check,
	.pauses = sq_pauses,
	.read_pauses = sq_read_pauses,
	.set_pause = sq_set_pause,
	.schedules = sq_schedules,
	.schedule_put = sq_schedule_put,
	.deps_link = sq_deps_link,
	.deps_cancel = sq_deps_cancel,
	.deps_missing = sq_deps_missing,
	.deps_resolve = sq_deps_resolve,
	.deps_sweep = sq_deps_sweep,
	.set_callback = sq_set_callback,
	.outbox_claim = sq_outbox_claim,
	.outbox_done = sq_outbox_done,
};
