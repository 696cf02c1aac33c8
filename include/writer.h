/*
 * writer.h - the one store writer: group commit for submissions, claims,
 * completions, cancels and retries.
 *
 * Every write to the store goes through one thread.  Other threads hand it
 * operations (struct writer_op) through a queue; the writer takes all that
 * are waiting, applies them in one BEGIN IMMEDIATE transaction together
 * with a claim of due jobs for idle workers, commits once (one fsync for
 * many 202s), and only then reports each operation's outcome through its
 * done() callback and hands the claimed jobs to the workers.  So a 202 is
 * only ever sent for a committed job.
 *
 * Claimed jobs travel as ops: each is handed to the workers inside the
 * WOP_COMPLETE op that will carry its attempt's end back (op->job), so
 * that reporting an attempt's end never needs memory it might not get.
 * A worker tells the writer when it starts the attempt (writer_started);
 * the writer records the start unless the attempt's end is already there.
 *
 * When idle the writer sleeps on a condition variable with a deadline at
 * the earliest future run_at: no polling.
 */
#ifndef JOBD_WRITER_H
#define JOBD_WRITER_H

#include <stdbool.h>
#include <stdint.h>

#include "config.h"
#include "job.h"
#include "store.h"

typedef struct writer writer;

enum writer_op_kind {
	WOP_SUBMIT,   /* insert op->job */
	WOP_CANCEL,   /* cancel op->id */
	WOP_RETRY,    /* retry op->id */
	WOP_COMPLETE, /* end of an attempt (workers); op->job: the claimed
	                 job, handed to a worker by dispatch */
	WOP_PAUSE,    /* pause (op->pause) or resume op->type */
	WOP_BATCH,    /* insert op->batch: all of its jobs or none (batch.h) */
	WOP_SCHEDULE, /* store_schedule_put(op->schedule): a pause, a resume,
	                 a tick that made no job (schedule.h) */
	WOP_PROGRESS, /* store_progress(op->id, op->claim, op->progress):
	                 a running attempt's report (progress.h) */
	WOP_OUTBOX_CLAIM, /* store_outbox_claim(op->outbox_req) (callback.h) */
	WOP_OUTBOX_DONE,  /* store_outbox_done() of each op->outbox_done[] */
};

/* What became of one callback delivery (WOP_OUTBOX_DONE). */
struct writer_outbox_done {
	char id[UUID_STR_LEN];
	char claim[CLAIM_TOKEN_MAX]; /* the claim the delivery was made under */
	int status;             /* enum store_outbox_status */
	int attempts;
	int64_t next_at_us;     /* of a retry */
	char *last_error;       /* owned by the op, or NULL */
};

struct writer_op {
	int kind;                       /* enum writer_op_kind */
	/* WOP_SUBMIT: the job to insert (the op owns its strings). */
	struct job job;
	/* WOP_BATCH: the jobs, in order (the op owns the array and their
	 * strings; batch_jobs_free); after a replay their ids and statuses
	 * are the earlier batch's. */
	struct job *batch;
	size_t nbatch;
	size_t err_element;  /* refused for element i (depends_on): i + 1 */
	/* WOP_CANCEL, WOP_RETRY, WOP_COMPLETE: the job id. */
	char id[UUID_STR_LEN];
	/* WOP_COMPLETE: the attempt's end (strings owned by the op).
	 * WOP_PAUSE: type, and pause (true) or resume (false). */
	char type[JOB_TYPE_MAX + 1];
	bool pause;
	char claim[CLAIM_TOKEN_MAX];
	int new_status;
	int attempt_delta;
	int64_t run_at_us;
	int64_t finished_at_us;
	char *result;
	char *error;
	bool has_exit_code;
	int exit_code;
	bool output_truncated;
	int64_t started_at_us;          /* when the attempt really began */
	int64_t run_us;                 /* how long it ran */
	/* WOP_PROGRESS, WOP_COMPLETE: the attempt's last report (JSON text
	 * owned by the op); NULL in a completion: keep the stored one. */
	char *progress;
	/* WOP_SCHEDULE: the row to put.  WOP_SUBMIT: a job a schedule
	 * makes when name is set; then the row (cursor, last run, and the
	 * job's id as last_job_id) is put in the job's transaction. */
	struct store_schedule schedule;
	/* WOP_OUTBOX_CLAIM: the claim (its token in claim) and, after it,
	 * the rows claimed (the op's: writer_op_clear frees them) and the
	 * earliest next_at of the pending rows left (-1 none).
	 * WOP_OUTBOX_DONE: the outcomes (the op's). */
	struct store_outbox_claim_req outbox_req;
	struct store_outbox_row *outbox_rows;
	size_t noutbox_rows;
	int64_t outbox_next_us;
	struct writer_outbox_done *outbox_done;
	size_t noutbox_done;

	/* Outcome, valid in done(): rc is 0 or JOBD_E*; status is the job's
	 * status after the operation (or its current one on ECONFLICT). */
	int rc;
	int status;
	struct store_answer answer; /* the store's answer to a WOP_COMPLETE */
	bool replayed;                  /* idempotent replay of an earlier job */
	char err[256];
	bool counted;                   /* writer's: worker slot freed */
	/* writer_started(): the start waits in the writer's start list
	 * (start_queued) until written, or until the end of the attempt
	 * makes it moot (start_skip).  Guarded by the writer's mutex. */
	bool start_queued, start_skip;
	bool prestarted;                /* start written with the claim */
	struct writer_op *start_next;

	/*
	 * Called on the writer thread once the outcome is known (after the
	 * commit).  NULL: the op was malloc'ed and the writer frees it.  The
	 * callback must not block; it typically resumes an HTTP connection.
	 */
	void (*done)(struct writer_op *op, void *arg);
	void *arg;
	struct writer_op *next;         /* queue link, writer's */
};

/* Initialises an op (zeroes it, job_init()s its job). */
void writer_op_init(struct writer_op *op, int kind);

/* Frees what an op owns (not the op). */
void writer_op_clear(struct writer_op *op);

/*
 * Where claimed jobs go: takes ownership of each ops[i] (heap, kind
 * WOP_COMPLETE, op->job the claimed job), which the taker fills in with
 * the attempt's end and hands back with writer_submit().
 */
typedef void (*writer_dispatch_fn)(struct writer_op **ops, size_t n,
                                   void *arg);
/* Asks the running attempt of id to stop (cancel); true if one was found. */
typedef bool (*writer_cancel_fn)(const char *id, void *arg);
/* A job changed state (after commit): for waiters and metrics. */
typedef void (*writer_event_fn)(const char *id, int status, void *arg);

/*
 * Creates the writer for store st (borrowed) and config cfg (borrowed;
 * must outlive the writer).  Returns NULL when out of memory.
 */
writer *writer_new(store *st, const struct config *cfg);
/* This run's id (16 hex digits): the prefix of its claim tokens. */
const char *writer_boot_id(writer *w);
void writer_free(writer *w);

void writer_set_hooks(writer *w, writer_dispatch_fn dispatch,
                      writer_cancel_fn cancel, writer_event_fn event,
                      void *arg);

/* Every state change (after commit), for GET /events: with the job's type
 * ("" when the writer does not know it) and attempt (-1 likewise); called
 * with writer_set_hooks()'s arg. */
typedef void (*writer_change_fn)(const char *id, const char *type,
                                 int status, int attempt, void *arg);
void writer_set_change_hook(writer *w, writer_change_fn change);

/*
 * Start-up, before the thread starts: recovers jobs left running by a dead
 * daemon and loads the queue counters.  Returns 0 or JOBD_E* with err.
 */
int writer_recover(writer *w, char *err, size_t errlen);

/* Starts the writer thread.  Returns 0 or JOBD_ESYS. */
int writer_start(writer *w);

/*
 * Hands an op to the writer (any thread).  Accepted until the writer
 * thread has exited (also while it stops: a claim committed as shutdown
 * began is handed back and written).  Returns 0, or JOBD_EBUSY when the
 * writer is not running (done() is then not called).
 */
int writer_submit(writer *w, struct writer_op *op);

/*
 * A worker started the attempt of a dispatched op at started_at_us: from
 * now on it counts.  The op stays the worker's; the writer only reads its
 * id, claim and start time until the op comes back with writer_submit().
 */
void writer_started(writer *w, struct writer_op *op, int64_t started_at_us);

/*
 * Makes the writer look for due jobs again (after a reload changed which
 * types have handlers, or their caps; another node left due work; this
 * node became the leader).  Any thread.
 */
void writer_poke(writer *w);

/* The leader's look at the shared store: a delayed job comes due at
 * run_at_us; the writer's timer fires then at the latest.  Any thread. */
void writer_due_at(writer *w, int64_t run_at_us);

/*
 * After a commit that made a job final (so may have added an outbox row:
 * callback.c), fn(arg) is called on the writer thread; it must not block.
 * Set before writer_start().
 */
void writer_set_outbox_hook(writer *w, void (*fn)(void *arg), void *arg);
/* Stops claiming new jobs (shutdown begins).  Any thread. */
void writer_drain(writer *w);

/* Applies every op still queued, then stops and joins the thread. */
void writer_stop(writer *w);

/* True while the writer thread runs and its last commit did not fail. */
bool writer_healthy(writer *w);

/* Jobs queued (exact, for max_queued and status lines). */
int64_t writer_queued(writer *w);

/* Jobs per status in the store, kept exact by the writer.  Any thread. */
void writer_counts(writer *w, int64_t counts[JOB_NSTATUS]);

/*
 * Shared store: the store's own counts of queued, waiting and running jobs
 * replace the writer's (which drift as other nodes run the jobs this one
 * accepted).  Any thread; a batch committing at the same moment may be
 * off by its own delta until the next call.
 */
void writer_set_counts(writer *w, int64_t queued, int64_t waiting,
                       int64_t running);

/* True when a transaction has been running for more than limit_ms. */
bool writer_stuck(writer *w, int64_t limit_ms);

/* Attempts claimed and not yet completed. */
int64_t writer_inflight(writer *w);

#endif
