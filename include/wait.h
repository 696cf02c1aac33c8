/*
 * wait.h - a request suspended while it waits: for the writer to commit
 * its operation (submit, cancel, retry), then - with Prefer: wait or
 * ?wait= - for its job's final state.  A client that disconnects while it
 * waits on its own submission cancels the job (DESIGN.md §1, §2), unless
 * the job was submitted with "cancel_on_disconnect": false.
 *
 * One wait_req per suspended request, made by api on the HTTP thread.
 * Its resume callback is called exactly once: by the writer thread (the
 * operation committed and nothing more to wait for), by the events side
 * (the waiter fired: final state, deadline, disconnect, shutdown), or by
 * the caller's own thread (it could not wait).  After resume the HTTP
 * thread reads the outcome.
 *
 * LOCKING: a wait_req has no lock.  It is handed over whole: the HTTP
 * thread fills it; between wait_submit()/wait_job() and resume only the
 * writer (its op's done callback) or the events side (its waiter) touch
 * it, one after the other (the writer registers the waiter before it lets
 * go); after resume only the HTTP thread does.  The writer's and events'
 * own locks order these hand-overs.
 */
#ifndef JOBD_WAIT_H
#define JOBD_WAIT_H

#include <stdbool.h>
#include <stdint.h>

#include "events.h"
#include "store.h"
#include "writer.h"

typedef struct wait_req wait_req;

/* Called once when the request may be answered; h as given. */
typedef void (*wait_resume_fn)(void *h);

/*
 * A new wait for a request: its op is initialised as kind (enum
 * writer_op_kind; -1 for a long-poll, which has no op); wait_ms < 0 (no wait) or how long to wait for the job's
 * end; fd the client's socket (-1: not watched); start_us when the request
 * arrived (monotonic µs, 0: not measured).  All borrowed pointers must
 * outlive it.  NULL when out of memory.
 */
wait_req *wait_new(writer *w, events *ev, store *st, int kind,
                   int64_t wait_ms, int fd, int64_t start_us,
                   wait_resume_fn resume, void *h);

/* Frees it; only once resume has been called, or before it was started. */
void wait_free(wait_req *r);

/* The operation, for the caller to fill before wait_submit() and to read
 * after resume. */
struct writer_op *wait_op(wait_req *r);

/*
 * Hands the op to the writer.  After its commit: with a wait and a job not
 * final yet, waits for its end; else resume.  If the writer has stopped,
 * the op gets JOBD_EBUSY and resume is called at once.
 */
void wait_submit(wait_req *r);

/*
 * Long-poll: waits for job id to reach a final state (or the deadline).
 * Registers first, then looks at the store again, so that an end between
 * the caller's read and the registration is not missed.
 */
void wait_job(wait_req *r, const char *id);

/* After resume: whether a waiter was registered (the wait was honoured),
 * and the wait that was honoured (-1: none, e.g. too many waiters). */
bool wait_waited(const wait_req *r);
int64_t wait_honoured_ms(const wait_req *r);

#endif
