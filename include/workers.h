/*
 * workers.h - the worker pool: workers.threads pthreads that run claimed
 * jobs with their handlers and report each attempt's end to the writer.
 *
 * Workers sleep on a condition variable until the writer hands them jobs
 * (worker_pool_dispatch); they never poll the store.
 */
#ifndef JOBD_WORKERS_H
#define JOBD_WORKERS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "job.h"
#include "progress.h"
#include "writer.h"

typedef struct worker_pool worker_pool;

/* cfg and w are borrowed and must outlive the pool.  NULL on ENOMEM. */
worker_pool *worker_pool_new(const struct config *cfg, writer *w);
void worker_pool_free(worker_pool *p);

/* Starts the threads.  Returns 0 or JOBD_ESYS. */
int worker_pool_start(worker_pool *p);

/* Where the attempts' progress reports go (progress.h; borrowed, must
 * outlive the pool).  Before worker_pool_start(). */
void worker_pool_set_progress(worker_pool *p, progress *prog);

/*
 * Queues claimed jobs (each in its completion op, see writer.h); takes
 * ownership of each ops[i], which goes back to the writer when its attempt
 * ends.  Any thread.
 */
void worker_pool_dispatch(worker_pool *p, struct writer_op **ops, size_t n);

/*
 * Asks the running attempt of job id to stop as cancelled.  Returns true
 * when such an attempt was found.  Any thread.
 */
bool worker_pool_cancel(worker_pool *p, const char *id);

/*
 * This node was declared dead by the others (several nodes): stops every
 * running attempt and gives back every job claimed ahead, as a shutdown
 * does (their claims were rescued: their ends change nothing; a claim made
 * since goes back to the queue).  Workers go on taking new work.
 */
void worker_pool_fence(worker_pool *p);

/*
 * Shutdown: lets running attempts finish for up to grace_ms, then asks
 * them to stop (their jobs go back to queued), and joins the threads.
 * Jobs dispatched but not started go back to queued too.
 */
void worker_pool_stop(worker_pool *p, int64_t grace_ms);

/* Number of attempts running now. */
int worker_pool_busy(worker_pool *p);

/* True while every worker thread is alive (for the watchdog). */
bool worker_pool_alive(worker_pool *p);

#endif
