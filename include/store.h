/*
 * store.h - the job store, behind one interface.
 *
 * store_open() picks the backend from the path: a file path is SQLite
 * (store_sqlite.c); "postgresql://..." is reserved for the PostgreSQL store.
 * The store knows jobs and SQL, never HTTP.
 *
 * Two kinds of calls:
 *  - writer calls (store_begin .. store_commit and everything between) are
 *    made by one thread only, the writer (writer.c), which batches many
 *    operations into one transaction (group commit);
 *  - reader calls (store_get, store_list, store_count) may be made by any
 *    thread at any time; each thread gets its own connection from a pool.
 */
#ifndef JOBD_STORE_H
#define JOBD_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "job.h"

typedef struct store store;

struct store_options {
	bool durability_full; /* fsync every commit (synchronous=FULL) */
};

/* What a claim asks for. */
struct store_claim_req {
	int64_t now_us;
	size_t limit;                  /* most jobs to claim */
	const char *const *excluded;   /* types at their concurrency cap */
	size_t nexcluded;
	const char *claim;             /* token written to every claimed row */
};

/* The end of an attempt, or a requeue. */
struct store_completion {
	const char *id;
	const char *claim;     /* the attempt's claim token (fencing) */
	int status;            /* new status: queued (retry), succeeded, ... */
	int attempt_delta;     /* -1 to not count the attempt (shutdown) */
	int64_t run_at_us;     /* for status queued */
	int64_t finished_at_us;/* for final statuses */
	const char *result;    /* JSON text or NULL */
	const char *error;     /* text or NULL */
	bool has_exit_code;
	int exit_code;
	bool output_truncated;
	int64_t started_at_us; /* when the attempt began (-1: keep) */
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

/* ---- writer calls (one thread) ---- */

/*
 * With durability full: whether the next commits must be fsynced (true) or
 * may rely on a later fsynced commit (false: WAL frames are ordered, so an
 * fsync also makes every earlier commit durable).  The writer asks for
 * true on every transaction: readers see a commit as soon as it is made,
 * so a commit that waited for a later fsync could show a client a state
 * that a power cut takes back.  No effect with durability normal.  Call
 * between transactions.
 */
int store_set_durable(store *st, bool durable, char *err, size_t errlen);

/* Starts a write transaction (BEGIN IMMEDIATE). */
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
 * Looks up a live job by Idempotency-Key: 0 and the job in *out (which the
 * caller job_clear()s), or JOBD_ENOTFOUND.
 */
int store_find_idem(store *st, const char *key, struct job *out, char *err,
                    size_t errlen);

/*
 * Claims up to req->limit due queued jobs, highest priority first, then
 * oldest; marks them running (attempt + 1, started_at, claim token).
 * Returns 0 and a new array of jobs in *out (caller frees each with
 * job_clear() and the array with free()), count in *nout.
 */
int store_claim(store *st, const struct store_claim_req *req,
                struct job **out, size_t *nout, char *err, size_t errlen);

/*
 * Records the end of an attempt.  JOBD_ESTALE when the claim is no longer
 * current (the row is left alone).
 */
int store_complete(store *st, const struct store_completion *c, char *err,
                   size_t errlen);

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
 * with the attempt counted, or to failed when no attempt is left, or to
 * cancelled when a cancel was requested.
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

/* Number of jobs in status (writer connection; exact). */
int store_count_writer(store *st, int status, int64_t *out, char *err,
                       size_t errlen);

/* ---- reader calls (any thread) ---- */

/* 0 and the job in *out (job_init'ed by the caller), or JOBD_ENOTFOUND. */
int store_get(store *st, const char *id, struct job *out, char *err,
              size_t errlen);

/*
 * Lists jobs newest first.  Returns 0 and a new array (caller job_clear()s
 * each and frees it) of at most f->limit jobs.
 */
int store_list(store *st, const struct store_filter *f, struct job **out,
               size_t *nout, char *err, size_t errlen);

/* Counts per status into counts[JOB_NSTATUS]. */
int store_counts(store *st, int64_t counts[JOB_NSTATUS], char *err,
                 size_t errlen);

/* True when the store answers a trivial read (for /readyz). */
bool store_ping(store *st);

#endif
