/*
 * store.h - the job store, behind one interface.
 *
 * store_open() picks the backend from the path: a file path is SQLite
 * (store_sqlite.c); "postgresql://..." (or "postgres://...", a libpq URI)
 * is PostgreSQL (store_pg.c).
 * The store knows jobs and SQL, never HTTP.
 *
 * Two kinds of calls:
 *  - writer calls (store_begin .. store_commit and everything between) are
 *    made by one thread only, the writer (writer.c), which batches many
 *    operations into one transaction (group commit);
 *  - reader calls (store_get, store_list, store_count) may be made by any
 *    thread at any time; each gets a connection of its own from a pool
 *    (SQLite: one per concurrent thread; PostgreSQL: store.pool of them,
 *    a reader waits at most a second for one, then JOBD_EUNAVAIL).
 *
 * Errors, besides the per-call ones: JOBD_EFULL (no space: the batch is
 * rolled back and retried later, requests get 503), JOBD_EUNAVAIL (the
 * store cannot be reached for now, e.g. a dropped network connection: the
 * same, the backend reconnects), and JOBD_EIO (a failed write or fsync
 * left the store's state unknown: fail-stop, the daemon exits and is
 * restarted).  A backend must never report a transient condition as
 * JOBD_EIO.
 */
#ifndef JOBD_STORE_H
#define JOBD_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "job.h"

typedef struct store store;

struct store_options {
	/* Every commit durable before it returns (fsynced; SQLite
	 * synchronous = FULL): readers see a commit as soon as it is made,
	 * so a commit that waited for a later fsync could show a client a
	 * state that a power cut takes back.  false: a crash of jobd loses
	 * nothing, a power cut may lose the last commits. */
	bool durability_full;
	/* PostgreSQL: reader connections (store.pool); SQLite opens one
	 * per concurrent reader thread. */
	int pool;
	/* PostgreSQL, several daemons on one database: this daemon's node
	 * name (NULL: the host name; one live jobd per name) and lease (a
	 * node that has not written its heartbeat for this long is dead:
	 * its running jobs go back to the queue). */
	const char *node;
	int64_t lease_ms;
	/* dead nodes are forgotten (GET /nodes) after this */
	int64_t retention_ms;
};

/* What a claim asks for. */
struct store_claim_req {
	int64_t now_us;
	size_t limit;                  /* most jobs to claim */
	/* The types that may be claimed: configured, not paused, below
	 * their concurrency cap.  Jobs of other types stay queued. */
	const char *const *included;
	size_t nincluded;
	const char *claim;             /* token written to every claimed row */
};

/* The end of an attempt: its result, or a retry. */
struct store_completion {
	const char *id;
	const char *claim;     /* the attempt's claim token (fencing) */
	int status;            /* new status: queued (retry), succeeded, ... */
	int64_t run_at_us;     /* for status queued */
	int64_t finished_at_us;/* for final statuses */
	const char *result;    /* JSON text or NULL */
	const char *error;     /* text or NULL */
	bool has_exit_code;
	int exit_code;
	bool output_truncated;
	int64_t started_at_us; /* when the attempt began (-1: keep) */
	int64_t now_us;        /* finished_at when a cancel overrides status */
	const char *progress;  /* the last report (JSON) or NULL: keep */
};

/* Filters of GET /jobs. */
struct store_filter {
	int status;            /* -1: any */
	const char *type;      /* NULL: any */
	const char *after;     /* NULL, or a cursor: ids below this one */
	size_t limit;
};

/*
 * Opens (creating and migrating if needed) the store at path.  Returns 0
 * and a new store the caller closes with store_close(), or a JOBD_E* code
 * with the reason in err.
 */
int store_open(const char *path, const struct store_options *opt,
               store **out, char *err, size_t errlen);
void store_close(store *st);

/*
 * What store_open() checks of a path before it opens anything (for
 * --check-config): a backend this jobd has, and, for a file, a directory
 * that exists.  0 or JOBD_EINVAL / JOBD_ESYS with the reason in err.
 */
int store_check_path(const char *path, char *err, size_t errlen);

/*
 * The path as it may be logged: a PostgreSQL URI's password (in its user
 * part or a password= parameter) becomes "***".
 */
void store_display(const char *path, char *buf, size_t len);

/*
 * Whether the store can still keep what it is given: with SQLite, that
 * the path still names the file opened at start-up (not deleted, not
 * replaced): 0, or JOBD_EBUSY with the reason in err (logged once); with
 * PostgreSQL, that the writer's connection is up: 0 or JOBD_EUNAVAIL.
 * store_commit() refuses with the same answer, and store_ping() fails.
 * Any thread; a few microseconds.
 */
int store_check(store *st, char *err, size_t errlen);

/*
 * Whether other daemons may change the store too (PostgreSQL: several
 * nodes): jobs may become due without this daemon's writer knowing.
 */
bool store_is_shared(store *st);

/* ---- writer calls (one thread) ---- */

/*
 * Starts a write transaction (SQLite: BEGIN IMMEDIATE, which takes the
 * write lock; PostgreSQL: BEGIN, sent with the next statement).
 * JOBD_EUNAVAIL while the store cannot be reached (the backend reconnects
 * with backoff on a later call).
 */
int store_begin(store *st, char *err, size_t errlen);
/*
 * Commits.  JOBD_EFULL for a full disk, JOBD_EIO for an I/O error (the
 * transaction is rolled back; nothing of it may be acknowledged).
 */
int store_commit(store *st, char *err, size_t errlen);
void store_rollback(store *st);

/*
 * Inserts a new job: queued, or - when job->status is JOB_RUNNING - already
 * claimed with job->claim, its first attempt started at job->started_at_us.
 * JOBD_ECONFLICT if the id or key exists.
 */
int store_insert(store *st, const struct job *job, char *err, size_t errlen);

/*
 * Inserts n new queued jobs (none claimed), in order, as store_insert()
 * would one by one, in fewer statements (a batch, batch.h).  An error
 * leaves some of them inserted: the caller rolls the transaction back.
 */
int store_insert_many(store *st, const struct job *jobs, size_t n,
                      char *err, size_t errlen);

/*
 * Looks up a live job by Idempotency-Key: 0 and the job in *out (which the
 * caller job_clear()s), or JOBD_ENOTFOUND.
 */
int store_find_idem(store *st, const char *key, struct job *out, char *err,
                    size_t errlen);

/*
 * Claims up to req->limit due queued jobs of the included types, highest
 * priority first, then oldest; marks them running (attempt + 1, started_at,
 * claim token; the attempt counts once store_start() records it).
 * Returns 0 and a new array of jobs in *out (caller frees each with
 * job_clear() and the array with free()), count in *nout.
 */
int store_claim(store *st, const struct store_claim_req *req,
                struct job **out, size_t *nout, char *err, size_t errlen);

/*
 * The answer of a writer call that a backend may give late.  store_pg
 * pipelines the writer's statements: the *_later() calls below only send
 * theirs, and their answers are filled in by the next store_flush(),
 * store_claim() or store_commit() (SQLite fills them at once).
 */
struct store_answer {
	int rc;                /* 0, or JOBD_ESTALE: the claim was not current */
	int status;            /* the job's status now (rc 0) */
	/* jobs may wait on it: when it ended, store_deps_resolve() it
	 * (PostgreSQL tells from a flag that link sets on the row; SQLite
	 * always says true, its resolve is a key lookup) */
	bool dependents;
};

/*
 * Records the end of an attempt (its attempt counted).  The store decides
 * a race with a cancel: when
 * a cancel was requested and the attempt did not succeed, the job ends
 * cancelled whatever c->status says.  Returns 0 with the job's status
 * now in *status (may be NULL); JOBD_ESTALE when the claim is no longer
 * current (the row is left alone).
 */
int store_complete(store *st, const struct store_completion *c, int *status,
                   char *err, size_t errlen);
/* The same, answered in *ans (may be NULL) by the next store_flush(); the
 * return value is only an error that fails the transaction. */
int store_complete_later(store *st, const struct store_completion *c,
                         struct store_answer *ans, char *err, size_t errlen);

/*
 * Gives a claim back without using its attempt (a job claimed that will
 * not run now: over a cap, too slow to claim ahead, shutdown, no handler):
 * queued again as it was, or cancelled when a cancel was requested.
 * Returns 0 with the job's status now in *status (may be NULL), or
 * JOBD_ESTALE when the claim is no longer current.
 */
int store_put_back(store *st, const char *id, const char *claim,
                   int64_t now_us, int *status, char *err, size_t errlen);
int store_put_back_later(store *st, const char *id, const char *claim,
                         int64_t now_us, struct store_answer *ans, char *err,
                         size_t errlen);

/*
 * Reads every answer the *_later() calls are owed (one round trip for
 * all of them with PostgreSQL).  0, or an error that fails the
 * transaction.
 */
int store_flush(store *st, char *err, size_t errlen);

/*
 * A running attempt's progress report (JSON text, progress.h): written
 * when claim is still the job's current claim, else nothing changes (and
 * 0 all the same: a stale report is no error).  A claim clears the
 * progress (a new attempt starts with none), as does a retry; the
 * completion writes the attempt's last one.
 */
int store_progress(store *st, const char *id, const char *claim,
                   const char *json, char *err, size_t errlen);

/*
 * Records that a worker started the claimed attempt (it counts from now:
 * recovery gives back the attempt of a claim that never started).
 * JOBD_ESTALE when the claim is no longer current.
 */
int store_start(store *st, const char *id, const char *claim,
                int64_t started_at_us, char *err, size_t errlen);

/*
 * Cancels a queued job.  Returns 0 when it was queued and is now cancelled;
 * JOBD_ECONFLICT with its current status in *status when it is not queued
 * (for running jobs, cancel_requested is set so that recovery honours it);
 * JOBD_ENOTFOUND.
 */
int store_cancel(store *st, const char *id, int64_t now_us, int *status,
                 char *err, size_t errlen);

/*
 * Puts a failed or cancelled job back to queued with a fresh attempt
 * budget.  Returns 0 with the status it had before (failed or cancelled)
 * in *status; JOBD_ECONFLICT (its current status in *status) or
 * JOBD_ENOTFOUND.
 */
int store_retry(store *st, const char *id, int64_t now_us, int *status,
                char *err, size_t errlen);

/*
 * Start-up recovery: jobs left running by a dead daemon go back to queued
 * with the attempt counted (when it had started), or to failed when no
 * attempt is left, or to cancelled when a cancel was requested.
 */
int store_recover(store *st, int64_t now_us, int *requeued, int *failed,
                  char *err, size_t errlen);

/*
 * Deletes up to limit finished jobs finished before cutoff_us; adds the
 * number deleted per status to deleted[] (which the caller zeroes).
 */
int store_purge(store *st, int64_t cutoff_us, int limit,
                int64_t deleted[JOB_NSTATUS], char *err, size_t errlen);

/*
 * Earliest run_at of a queued job that is not due yet (jobs become due,
 * and claimable, at the first claim after their run_at), or -1 when none.
 */
int store_next_run_at(store *st, int64_t *out_us, char *err, size_t errlen);


/* ---- reader calls (any thread) ---- */

/* 0 and the job in *out (job_init'ed by the caller), or JOBD_ENOTFOUND. */
int store_get(store *st, const char *id, struct job *out, char *err,
              size_t errlen);

/*
 * Lists jobs newest first.  Returns 0 and a new array (caller job_clear()s
 * each and frees it) of at most f->limit jobs.  Listed jobs come without
 * their large fields, never read from the store: payload is "null" and
 * result NULL (list pages leave them out, DESIGN §2).
 */
int store_list(store *st, const struct store_filter *f, struct job **out,
               size_t *nout, char *err, size_t errlen);

/* Counts per status into counts[JOB_NSTATUS]. */
int store_counts(store *st, int64_t counts[JOB_NSTATUS], char *err,
                 size_t errlen);

/*
 * Counts the queued and running jobs per type (GET /types), in one query:
 * calls fn(arg, type, status, n) for each type and status (JOB_QUEUED or
 * JOB_RUNNING) that has jobs; type is borrowed for the call only.  fn
 * runs on the caller's thread with a reader connection held: it must not
 * call the store.  0, or a JOBD_E* code with the reason in err.
 */
typedef void (*store_type_count_fn)(void *arg, const char *type, int status,
                                    int64_t n);
int store_counts_by_type(store *st, store_type_count_fn fn, void *arg,
                         char *err, size_t errlen);

/*
 * Paused types (POST /types/NAME/pause; DESIGN §2): a small table, so
 * that a pause holds across restarts and for every node of the store.
 * fn(arg, type) is called for each paused type (type borrowed for the
 * call only; fn must not call the store).  0, or a JOBD_E* code with the
 * reason in err.
 *
 * store_pauses: the writer thread, inside its transaction (it sees its
 * own changes).  store_read_pauses: any thread, through a reader (what
 * is committed).  store_set_pause: the writer thread, inside its
 * transaction; pausing a paused type or resuming one that is not changes
 * nothing.
 */
typedef void (*store_pause_fn)(void *arg, const char *type);
int store_pauses(store *st, store_pause_fn fn, void *arg, char *err,
                 size_t errlen);
int store_read_pauses(store *st, store_pause_fn fn, void *arg, char *err,
                      size_t errlen);
int store_set_pause(store *st, const char *type, bool paused, int64_t now_us,
                    char *err, size_t errlen);

/* A node of a shared store (GET /nodes). */
struct store_node {
	char name[64];
	char boot_id[40];
	int64_t started_at_ms;
	int64_t heartbeat_at_ms;
	int64_t running;       /* its running jobs */
	bool leader;
};
typedef void (*store_node_fn)(void *arg, const struct store_node *n);

/*
 * The nodes of a shared store, oldest first, each given to fn (on the
 * caller's thread; it must not call the store): 0, or JOBD_ENOTFOUND when
 * the store is not shared (SQLite: the caller shows itself), or an error.
 */
int store_nodes(store *st, store_node_fn fn, void *arg, char *err,
                size_t errlen);

/* Shared store: whether this daemon is the leader (the oldest live node)
 * and how many nodes are live, as of its last heartbeat.  Not shared:
 * true and 1. */
bool store_is_leader(store *st);
int store_live_nodes(store *st);

/*
 * What other nodes did that concerns this daemon (shared stores; found by
 * the store's heartbeat, at least once a second): a cancel requested for
 * a job running here, and jobs finished on other nodes (for the waiters
 * here).  Called on the store's own thread; may be called more than once
 * for the same job.
 */
struct store_hooks {
	void (*cancel)(void *arg, const char *id);
	void (*finished)(void *arg, const char *id, int status);
	/* this node was declared dead (silent for a lease), or could not
	 * write its heartbeat for a whole lease: its running jobs are
	 * (or will be) given to others; stop every attempt (self-fencing) */
	void (*fence)(void *arg);
	/* due work may be waiting that this node has not looked for: another
	 * node's commit left some (its NOTIFY), the wake-up channel was
	 * (re)connected, or claims are allowed again after a fence: claim */
	void (*work)(void *arg);
	/* the leader's look at the delayed jobs: the earliest run_at of a
	 * queued job not yet due, as of now (once a heartbeat) */
	void (*due_at)(void *arg, int64_t run_at_us);
	/* a job another node runs that was not running at the last look
	 * (once a heartbeat; for GET /events) */
	void (*started)(void *arg, const char *id, const char *type,
	                int attempt);
	/* a job another node runs whose stored progress (json, borrowed)
	 * changed since the last look (once a heartbeat; for GET /events) */
	void (*progress)(void *arg, const char *id, const char *type,
	                 const char *json);
	/* the store's counts of queued, waiting and running jobs, every few
	 * heartbeats: another node claims and ends the jobs this one
	 * accepted, so this node's own counts drift (writer_set_counts) */
	void (*counts)(void *arg, int64_t queued, int64_t waiting,
	               int64_t running);
	void *arg;
};
/* Copies *h (not kept); a store that is not shared ignores it.  Once it
 * returns, the hooks it replaced are not running and never run again. */
void store_set_hooks(store *st, const struct store_hooks *h);

/*
 * Shared store, writer calls.  store_may_claim(): false while this node is
 * fenced (it could not write its heartbeat for a whole lease): it claims
 * nothing, not even a job inserted for an idle worker, until it can write
 * again.  store_listening(): whether other nodes' wake-ups reach this one
 * (LISTEN is up); while not, an idle writer looks for work once a second.
 * store_notify_work(): inside the writer's transaction, tells the other
 * nodes that its commit leaves due work this node cannot take (one NOTIFY,
 * sent with the commit).  Not shared: true, true, and a no-op.
 */
bool store_may_claim(store *st);
bool store_listening(store *st);
int store_notify_work(store *st, char *err, size_t errlen);

/*
 * The state of the schedules (GET /schedules, and the leader's ticks):
 * one row per schedule name, shared by every node.  In a put, a field
 * left at -1 (or "") keeps its stored value; cursor_ms and last_run_ms
 * only move forward (the larger value wins), so a late or repeated put
 * never takes a tick back.
 */
struct store_schedule {
	char name[JOB_TYPE_MAX + 1];
	int64_t cursor_ms;      /* every tick up to here is done; -1 none */
	int64_t last_run_ms;    /* tick (or trigger) time of the last job */
	char last_job_id[UUID_STR_LEN]; /* "" none */
	int paused;             /* 0 or 1; -1 in a put: unchanged */
	bool unless_paused;     /* in a put: change nothing and answer
	                           JOBD_ECONFLICT when the row is paused */
};
typedef void (*store_schedule_fn)(void *arg, const struct store_schedule *s);

/* Every stored schedule row, each given to fn (caller's thread; fn must
 * not call the store).  Reader connection; any thread.  0 or JOBD_E*. */
int store_schedules(store *st, store_schedule_fn fn, void *arg, char *err,
                    size_t errlen);

/* Writer calls, inside its transaction: inserts or updates the row of
 * s->name as described above.  0 or JOBD_E*. */
int store_schedule_put(store *st, const struct store_schedule *s, char *err,
                       size_t errlen);

/*
 * ---- dependencies (writer calls; DESIGN §3) ----
 *
 * A job with depends_on is inserted (store_insert) and then linked, in
 * the same transaction: store_deps_link() looks at each dependency and
 * sets the job's status: JOB_WAITING (some have not succeeded yet: an
 * edge (dependency, job) for each, and the number of them), JOB_QUEUED
 * (all succeeded already), or JOB_CANCELLED (one is failed or cancelled:
 * error "dependency <id> <status>").  JOBD_ERANGE (422) with "no job
 * <id>" in err when a dependency does not exist: the row is removed again.
 *
 * Whoever ends a job (complete, cancel, put back) in a transaction calls
 * store_deps_resolve() with the ids that reached a final status, before
 * the commit: a success counts for each job waiting on it, and makes it
 * queued when it was the last (its run_at then applies); a failure or
 * cancel cancels the jobs waiting on it, and theirs, transitively.  It
 * touches the edges of those ids only (an index on the dependency), and
 * deletes them.  fn (no store calls) hears of every job it changed: its
 * id, type, new status (JOB_QUEUED or JOB_CANCELLED) and run_at.
 *
 * store_deps_sweep() resolves the edges of dependencies that ended unseen
 * (start-up recovery, another node's rescue): a scan of the edges left.
 * store_deps_cancel() cancels a waiting job (DELETE): *cancelled tells
 * whether it was waiting; the caller resolves its dependents.
 *
 * store_deps_missing() looks for ids[0..n) among the jobs, before a batch
 * links its jobs (so that an unknown id refuses the batch before any of
 * it is inserted): *missing is the index of the first id that names no
 * job, or n when all do.  One statement on PostgreSQL.
 */
typedef void (*store_dep_fn)(void *arg, const char *id, const char *type,
                             int status, int64_t run_at_us);
int store_deps_link(store *st, const struct job *job, int64_t now_us,
                    int *status, char *err, size_t errlen);
int store_deps_resolve(store *st, const char *const *ids,
                       const int *statuses, size_t n, int64_t now_us,
                       store_dep_fn fn, void *arg, char *err, size_t errlen);
int store_deps_sweep(store *st, int64_t now_us, store_dep_fn fn, void *arg,
                     char *err, size_t errlen);
int store_deps_cancel(store *st, const char *id, int64_t now_us,
                      bool *cancelled, char *err, size_t errlen);
int store_deps_missing(store *st, const char *const *ids, size_t n,
                       size_t *missing, char *err, size_t errlen);

/* True when the store answers a trivial read (for /readyz). */
bool store_ping(store *st);

/*
 * Callbacks (DESIGN §2.1).  A job's callback_url is kept by store_insert();
 * when the job reaches a final state, the store itself (a trigger, so in
 * the transaction of that state, whatever path led there) puts a pending
 * row in its outbox.  The delivery thread (callback.c) claims due rows
 * and writes back what became of them, both through the writer.
 */
enum store_outbox_status {
	OUTBOX_PENDING = 0, OUTBOX_DELIVERED, OUTBOX_FAILED,
};

struct store_outbox_row {
	char id[UUID_STR_LEN];  /* the job */
	char *url;              /* owned */
	int attempts;           /* deliveries tried before this one */
};

struct store_outbox_claim_req {
	int64_t now_us;
	const char *claim;      /* token written to every claimed row */
	int64_t until_us;       /* another claimer may take it after this */
	size_t limit;
	/* first give back every claim (a single daemon's start-up: no
	 * other can hold one) */
	bool release;
};

/*
 * Writer calls.  store_outbox_claim: claims up to req->limit pending rows
 * due at now, skipping rows another node holds; returns 0 and a new array
 * in *out (free each url, then the array), the count in *nout, and the
 * earliest next_at of the pending rows left (-1: none) in *next_us.
 * store_outbox_done: records a delivery's outcome (status, attempts,
 * next_at of a retry, last_error or NULL to keep the one before) and
 * ends the claim, unless the row's claim is no longer claim (then
 * nothing changes).
 */
int store_outbox_claim(store *st, const struct store_outbox_claim_req *req,
                       struct store_outbox_row **out, size_t *nout,
                       int64_t *next_us, char *err, size_t errlen);
int store_outbox_done(store *st, const char *id, const char *claim,
                      int status, int attempts, int64_t next_at_us,
                      const char *last_error, char *err, size_t errlen);

#endif
