/*
 * sched.h - the scheduling policy: whether to claim, how many jobs, which
 * types to hold back (caps), how far to claim ahead, and when attempt
 * results may wait for company.
 *
 * Pure functions over a struct sched that the writer thread owns: no
 * locks, no I/O, no clock.  The writer calls them and does what they say;
 * the unit tests (tests/unit/test_sched.c) drive every case.
 *
 * The claim state, one per writer:
 *
 *        a due job submitted or requeued, a retry, a run_at reached,
 *        a reload, a failed transaction, or a claim that got all it asked
 *     +-----------------------------------------------------------------+
 *     v                                                                 |
 *   [DUE] --claim got less; nothing held back--> [QUIET] --------------+
 *     |  \                                        (sleeps until the
 *     |   \                                        earliest run_at)
 *     |    +--claim got less; rows held back--> [HELD]
 *     |         (a type at its cap, or a slow     |
 *     |          job not claimed ahead)           | an attempt ended
 *     +<------------------------------------------+
 *
 * In DUE the writer claims at its next batch (an idle loop of empty
 * transactions is impossible: DUE is left by every claim that gets less
 * than it asked).  HELD waits for the end of an attempt, which frees a
 * worker or a slot under a cap.
 *
 * Claim-ahead: besides one job per idle worker, the writer may claim short
 * jobs ahead, so that one transaction carries many claims and results,
 * while no claimed job waits in memory for more than about a window of
 * work per worker.  The window is SCHED_WINDOW_MS, or twice the recent
 * commit time when commits are slower (every commit is fsynced under
 * durability = full: workers must not run dry while the writer waits for
 * the disk), up to SCHED_WINDOW_MAX_MS.  Per type: a type is short once
 * its attempts average at most SCHED_WINDOW_MS; attempts of long (or not
 * yet measured) types each hold a worker and are never claimed ahead, so
 * short work keeps its pace on the workers that long work leaves free.
 *
 * Pauses and rates: a paused type (the store's pause table, as the writer
 * last read it) is held back from every claim, as a type at its cap is.
 * A type with a rate takes a token from its bucket (rate.h) for every job
 * claimed, ahead or not; without one it is held back, and marked so that
 * the writer claims again when its next token comes
 * (sched_next_token_us), not only when an attempt ends.
 */
#ifndef JOBD_SCHED_H
#define JOBD_SCHED_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "job.h"
#include "rate.h"

#define SCHED_WINDOW_MS 5.0
#define SCHED_WINDOW_MAX_MS 50.0
#define SCHED_AHEAD_MAX 512

enum sched_state {
	SCHED_QUIET,   /* nothing claimable known; wait for run_at or news */
	SCHED_DUE,    /* due rows may be claimable: claim */
	SCHED_HELD,   /* due rows held back; claim after an attempt ends */
};

struct sched_type {
	char name[JOB_TYPE_MAX + 1];
	int64_t running;      /* claimed, end not received */
	int64_t batch;        /* claimed in the batch being written */
	double avg_run_ms;    /* moving average of its attempts, < 0 unknown */
	bool paused;          /* in the store's pause table (last read) */
	bool rate_held;       /* held back for want of a token */
	int64_t rate_n, rate_period_us; /* its rate as configured, 0: none */
	struct rate_bucket bucket;
};

struct sched {
	int64_t threads;      /* workers */
	int64_t inflight;     /* claimed, end not received (all types) */
	int state;            /* enum sched_state */
	double avg_short_ms;  /* moving average of short attempts, < 0 none */
	double avg_commit_ms; /* moving average of the writer's commits */
	struct sched_type *types;
	size_t ntypes, captypes;
	int64_t now_us;       /* monotonic µs of the batch (sched_set_now):
	                         the buckets' clock */
};

/* One batch's claim budget (sched_plan, then sched_may_take per job). */
struct sched_plan {
	int64_t idle;         /* idle workers when the batch began */
	int64_t taken;        /* jobs claimed in this batch so far */
	int64_t slots;        /* jobs that may still be claimed */
	int64_t free;         /* workers not held by long attempts */
	double ahead_ms;      /* short work claimed and not done */
};

void sched_init(struct sched *s, int64_t threads);
void sched_fini(struct sched *s);

/* The row of a type, added on first sight; NULL when out of memory. */
struct sched_type *sched_type(struct sched *s, const char *name);

/* Whether a type is below its cap (concurrency <= 0: no cap), counting
 * what the batch being written claimed. */
bool sched_below_cap(const struct sched_type *t, int64_t concurrency);

/* The clock of the batch being written (monotonic µs). */
void sched_set_now(struct sched *s, int64_t now_us);

/* A type's rate as configured now: n per period_us (n <= 0: none).  A
 * changed rate starts a full bucket. */
void sched_set_rate(struct sched *s, struct sched_type *t, int64_t n,
                    int64_t period_us);

/* Forgets every pause (before the pause table is read again). */
void sched_clear_pauses(struct sched *s);

/*
 * Whether a claim may include type t now: not paused, below its cap
 * (concurrency <= 0: none) and with a token.  A type held back only by
 * its rate is marked for sched_next_token_us; one included is not.
 */
bool sched_claimable(struct sched *s, struct sched_type *t,
                     int64_t concurrency);

/* A claim begins: which types wait for a token is found again. */
void sched_forget_held(struct sched *s);

/*
 * When the next token of a type held back by its rate comes (monotonic
 * µs; now_us when one is there already), -1 when no type waits for one.
 */
int64_t sched_next_token_us(const struct sched *s, int64_t now_us);

/* The claim-ahead window per worker (ms), given the recent commits. */
double sched_window_ms(const struct sched *s);

/* A commit took commit_us (its fsync included): the window follows. */
void sched_committed(struct sched *s, int64_t commit_us);

/* Jobs the writer may claim now: idle workers plus short work ahead. */
int64_t sched_capacity(const struct sched *s);

/* The budget of a new batch. */
void sched_plan(const struct sched *s, struct sched_plan *p);

/*
 * Whether one more job of type t (cap concurrency) may be claimed in the
 * batch planned as p; when it may, counts it in p and t->batch.  Beyond
 * the idle workers, only short types, and only while the short work
 * claimed ahead, spread over the free workers, stays within the window.
 * Never a paused type; a type with a rate takes a token (none: held back,
 * marked for sched_next_token_us).
 */
bool sched_may_take(const struct sched *s, struct sched_plan *p,
                    struct sched_type *t, int64_t concurrency);

/* Whether the next job taken in the batch goes to an idle worker (its
 * attempt starts at once). */
bool sched_next_is_idle(const struct sched_plan *p);

/* The batch's claims committed (they run now) or rolled back. */
void sched_batch_end(struct sched *s, bool committed);

/* An attempt of t ended after run_us (0: never ran): frees its worker. */
void sched_completed(struct sched *s, struct sched_type *t, int64_t run_us);

/* ---- the claim state (see the diagram above) ---- */

/* Something may have become claimable (new due job, retry, reload...). */
void sched_due(struct sched *s);
/* An attempt ended: HELD becomes DUE. */
void sched_attempt_ended(struct sched *s);
/* A claim asked for `asked` jobs and got `got`; held tells whether it
 * left due rows back (caps, the window). */
void sched_claimed(struct sched *s, int64_t asked, int64_t got, bool held);
/* Whether the writer should claim at its next batch. */
bool sched_wants_claim(const struct sched *s);

/*
 * Whether attempt results queued alone may wait for company (a short
 * while, the writer's DEFER_MS): only under a backlog, while every worker
 * keeps at least two claimed jobs beside the results, so no worker waits.
 */
bool sched_may_defer(const struct sched *s, int64_t results);

#endif
