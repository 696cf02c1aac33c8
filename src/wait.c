/*
 * wait.c - requests suspended while they wait for the writer and for
 * their job's end (see wait.h for the hand-over between threads).
 *
 * LOCKING: none of its own (wait.h says who touches a wait_req when).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "err.h"
#include "job.h"
#include "log.h"
#include "metrics.h"
#include "wait.h"

struct wait_req {
	writer *w;
	events *ev;
	store *st;
	struct writer_op op;
	struct waiter waiter;
	int64_t wait_ms;        /* asked for, then honoured (-1: none) */
	int fd;
	int64_t start_us;
	bool waited;            /* a waiter was registered */
	wait_resume_fn resume;
	void *h;
};

wait_req *
wait_new(writer *w, events *ev, store *st, int kind, int64_t wait_ms,
         int fd, int64_t start_us, wait_resume_fn resume, void *h)
{
	wait_req *r = malloc(sizeof(*r));

	if (r == NULL)
		return NULL;
	*r = (struct wait_req){
		.w = w, .ev = ev, .st = st, .wait_ms = wait_ms, .fd = fd,
		.start_us = start_us, .resume = resume, .h = h,
	};
	writer_op_init(&r->op, kind);
	return r;
}

void
wait_free(wait_req *r)
{
	if (r == NULL)
		return;
	writer_op_clear(&r->op);
	free(r);
}

struct writer_op *
wait_op(wait_req *r)
{
	return &r->op;
}

bool
wait_waited(const wait_req *r)
{
	return r->waited;
}

int64_t
wait_honoured_ms(const wait_req *r)
{
	return r->wait_ms;
}

/* The waiter fired: on the publishing thread or the events thread. */
static void
waiter_fired(void *arg, int reason)
{
	wait_req *r = arg;
	struct writer_op *mine = &r->op;

	/* The client who waited for its job has gone: stop the work for
	 * nobody (unless the job said otherwise).  A long-poll GET that goes
	 * away cancels nothing. */
	if (reason == WAKE_DISCONNECT && mine->kind == WOP_SUBMIT &&
	    !mine->replayed && mine->job.cancel_on_disconnect) {
		struct writer_op *op = malloc(sizeof(*op));
		if (op != NULL) {
			writer_op_init(op, WOP_CANCEL);
			memcpy(op->id, mine->job.id, sizeof(op->id));
			if (writer_submit(r->w, op) != 0) {
				writer_op_clear(op);
				free(op);
			} else {
				log_info("wait", "job %s: its client disconnected "
				         "while waiting; cancelling it",
				         mine->job.id);
			}
		}
	}
	r->resume(r->h);
}

/* Registers the waiter on job id; false when it cannot wait (too many
 * waiters, or stopping). */
static bool
start_waiter(wait_req *r, const char *id)
{
	struct waiter *w = &r->waiter;

	memset(w, 0, sizeof(*w));
	memcpy(w->id, id, sizeof(w->id));
	w->deadline_mono_ms = clock_mono_ms() + r->wait_ms;
	w->watch_fd = r->fd;
	w->fn = waiter_fired;
	w->arg = r;
	/* Set before registering: once registered, the waiter may fire and
	 * the HTTP thread read the request at any moment. */
	r->waited = true;
	if (events_wait(r->ev, w) != 0) {
		r->waited = false;
		return false;
	}
	return true;
}

/* The op committed: on the writer thread. */
static void
op_done(struct writer_op *op, void *arg)
{
	wait_req *r = arg;

	/* Runs before any worker can have the job: the waiter cannot miss
	 * the job's end.  Intake ends here, at the commit, whatever the
	 * client then waits for (Prefer: wait). */
	if ((op->kind == WOP_SUBMIT || op->kind == WOP_BATCH) &&
	    op->rc == 0 && !op->replayed && r->start_us > 0)
		metrics_intake_seconds(
			(double)(clock_mono_us() - r->start_us) / 1e6);
	if (op->kind == WOP_SUBMIT && op->rc == 0 && r->wait_ms > 0 &&
	    !job_status_is_final(op->status)) {
		if (start_waiter(r, op->job.id))
			return;
		r->wait_ms = -1; /* too many waiters: not honoured */
	}
	r->resume(r->h);
}

void
wait_submit(wait_req *r)
{
	r->op.done = op_done;
	r->op.arg = r;
	if (writer_submit(r->w, &r->op) != 0) {
		r->op.rc = JOBD_EBUSY;
		snprintf(r->op.err, sizeof(r->op.err), "jobd is shutting down");
		r->resume(r->h);
	}
}

void
wait_job(wait_req *r, const char *id)
{
	struct job job;
	bool final;

	if (!start_waiter(r, id)) {
		/* Too many waiters: answer now, without claiming the wait
		 * was honoured. */
		r->wait_ms = -1;
		r->resume(r->h);
		return;
	}
	/* The job may have ended between the caller's read and the
	 * registration: look again. */
	job_init(&job);
	final = store_get(r->st, id, &job, NULL, 0) == 0 &&
	        job_status_is_final(job.status);
	job_clear(&job);
	if (final && events_cancel(r->ev, &r->waiter))
		r->resume(r->h);
}
