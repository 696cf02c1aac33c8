/*
 * workers.c - the worker pool.
 *
 * The writer hands claimed jobs to the pool's run queue, each inside the
 * completion op that will carry its end back; a worker takes one, tells
 * the writer the attempt starts, runs the handler its type names with a
 * fresh attempt context, decides the job's next state (succeeded, retry
 * with backoff, failed, cancelled, or back to queued on shutdown) and
 * hands the op back to the writer.  Reporting needs no memory, so an
 * attempt's end is never lost to an allocation failure.  The worker does not wait for that commit: a crash
 * before it only means the job is found running at start-up and requeued
 * (at-least-once).
 *
 * LOCKING: p->mu guards the run queue (queue, qhead, qlen), stopping,
 * stop_reason, busy, and every slot's id, ctx and cancelled.  p->cond wakes
 * workers for new jobs; p->idle_cond wakes the stopper when an attempt
 * ends.  Lock order: p->mu before a ctx's own mutex
 * (handler_ctx_request_stop is called with p->mu held).
 */
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backoff.h"
#include "clock.h"
#include "err.h"
#include "handler.h"
#include "log.h"
#include "metrics.h"
#include "workers.h"

struct slot {
	char id[UUID_STR_LEN];   /* job taken here, "" when idle */
	jobd_ctx *ctx;           /* its attempt context, once made */
	bool cancelled;          /* a cancel came before the context */
};

struct worker_pool {
	const struct config *cfg;
	writer *w;
	pthread_t *threads;
	size_t nthreads, nstarted;
	struct slot *slots;

	pthread_mutex_t mu;
	pthread_cond_t cond;      /* jobs queued, or stopping */
	pthread_cond_t idle_cond; /* an attempt ended */
	struct writer_op **queue; /* ring buffer of claimed jobs */
	size_t qcap, qhead, qlen;
	bool stopping;            /* take no more jobs */
	int stop_reason;          /* given to new attempts (shutdown) */
	int busy;
	atomic_int alive;
	progress *prog;           /* running attempts' reports, or NULL */
};

struct worker_arg {
	worker_pool *p;
	size_t index;
};

worker_pool *
worker_pool_new(const struct config *cfg, writer *w)
{
	worker_pool *p = calloc(1, sizeof(*p));

	if (p == NULL)
		return NULL;
	p->cfg = cfg;
	p->w = w;
	p->nthreads = (size_t)cfg->workers.threads;
	p->threads = calloc(p->nthreads, sizeof(*p->threads));
	p->slots = calloc(p->nthreads, sizeof(*p->slots));
	p->qcap = p->nthreads * 2 + 16;
	p->queue = calloc(p->qcap, sizeof(*p->queue));
	if (p->threads == NULL || p->slots == NULL || p->queue == NULL) {
		worker_pool_free(p);
		return NULL;
	}
	pthread_mutex_init(&p->mu, NULL);
	clock_cond_init(&p->cond);
	clock_cond_init(&p->idle_cond);
	return p;
}

void
worker_pool_free(worker_pool *p)
{
	if (p == NULL)
		return;
	for (size_t i = 0; i < p->qlen; i++) {
		writer_op_clear(p->queue[(p->qhead + i) % p->qcap]);
		free(p->queue[(p->qhead + i) % p->qcap]);
	}
	free(p->queue);
	free(p->threads);
	free(p->slots);
	pthread_cond_destroy(&p->cond);
	pthread_cond_destroy(&p->idle_cond);
	pthread_mutex_destroy(&p->mu);
	free(p);
}

/* Text for a log line: at most 200 bytes, control bytes as '?'. */
static void
log_text(char *out, size_t outlen, const char *in)
{
	size_t n = 0;

	for (; in != NULL && *in != '\0' && n + 4 < outlen && n < 200; in++)
		out[n++] = (unsigned char)*in < 0x20 || *in == 0x7f ? '?' : *in;
	if (in != NULL && *in != '\0')
		out[n++] = '.', out[n++] = '.', out[n++] = '.';
	out[n] = '\0';
}

/*
 * Fills in op (the claimed job's completion op) with the attempt's end
 * and hands it to the writer.  started_at_us < 0: the attempt never
 * started, so it does not count.
 */
static void
report(worker_pool *p, struct writer_op *op, const struct handler_conf *h,
       struct jobd_result *res, int stop, int64_t started_at_us,
       int64_t run_us)
{
	const struct job *job = &op->job;
	int64_t now = clock_now_us(), backoff_us = 0;
	char why[256] = "";

	op->result = res->result;
	op->error = res->error;
	op->has_exit_code = res->has_exit_code != 0;
	op->exit_code = res->exit_code;
	op->output_truncated = res->output_truncated != 0;
	op->finished_at_us = now;
	op->run_us = run_us;
	if (started_at_us < 0)
		op->attempt_delta = -1; /* claimed, never started */

	if (res->outcome == JOBD_SUCCEEDED) {
		op->new_status = JOB_SUCCEEDED;
	} else if (stop == JOBD_STOP_CANCEL) {
		op->new_status = JOB_CANCELLED;
		if (op->error == NULL)
			op->error = strdup("cancelled");
	} else if (stop == JOBD_STOP_SHUTDOWN || h == NULL) {
		/* Not the job's fault (shutdown, or its handler was removed
		 * by a reload): back to the queue, attempt not counted. */
		op->new_status = JOB_QUEUED;
		op->attempt_delta = -1;
		op->run_at_us = now;
		op->finished_at_us = -1;
	} else if (res->outcome == JOBD_FAILED_FOR_GOOD) {
		op->new_status = JOB_FAILED;
	} else {
		if (stop == JOBD_STOP_TIMEOUT) {
			char msg[128];
			snprintf(msg, sizeof(msg), "timed out after %.3gs",
			         (double)job->timeout_ms / 1000.0);
			if (op->error != NULL) {
				size_t n = strlen(msg) + strlen(op->error) + 3;
				char *both = malloc(n);
				if (both != NULL) {
					snprintf(both, n, "%s: %s", msg, op->error);
					free(op->error);
					op->error = both;
				}
			} else {
				op->error = strdup(msg);
			}
		}
		if (job->attempt < job->max_attempts) {
			op->new_status = JOB_QUEUED;
			backoff_us = 1000 * backoff_jitter_ms(job->attempt,
			    h->backoff_base_ms, h->backoff_max_ms);
			op->run_at_us = now + backoff_us;
			op->finished_at_us = -1;
		} else {
			op->new_status = JOB_FAILED;
		}
	}

	/* One line for every attempt that did not succeed. */
	if (op->new_status != JOB_SUCCEEDED && op->attempt_delta == 0)
		log_text(why, sizeof(why), op->error ? op->error
		                                     : "no error text");
	if (op->new_status == JOB_QUEUED && op->attempt_delta == 0)
		log_notice("workers", "job %s (%s): attempt %d/%d failed: %s; "
		           "retrying in %.3gs", job->id, job->type,
		           job->attempt, job->max_attempts, why,
		           (double)backoff_us / 1e6);
	else if (op->new_status == JOB_FAILED)
		log_warn("workers", "job %s (%s): attempt %d/%d failed: %s; "
		         "no attempt left", job->id, job->type, job->attempt,
		         job->max_attempts, why);
	else if (op->new_status == JOB_CANCELLED && op->attempt_delta == 0)
		log_info("workers", "job %s (%s): attempt %d/%d cancelled",
		         job->id, job->type, job->attempt, job->max_attempts);

	/* The payload is not needed any more: do not hold it until the
	 * commit. */
	free(op->job.payload);
	op->job.payload = NULL;
	if (writer_submit(p->w, op) != 0) {
		log_warn("workers", "job %s: the writer has stopped; the job "
		         "will be requeued at the next start", op->id);
		if (op->done != NULL)
			op->done(op, op->arg);
		else {
			writer_op_clear(op);
			free(op);
		}
	}
}

/* A completion that carried progress is written (or discarded): the
 * table shows the store's from now on.  Writer thread. */
static void
progress_written(struct writer_op *op, void *arg)
{
	worker_pool *p = arg;

	progress_forget(p->prog, op->id, op->claim);
	writer_op_clear(op);
	free(op);
}

static void
run_one(worker_pool *p, size_t index, struct writer_op *op)
{
	/* The handler as configured now (SIGHUP may have reloaded it); the
	 * reference keeps it valid for the whole attempt. */
	struct config *cfg = config_acquire();
	const struct handler_conf *h = config_handler(cfg ? cfg : p->cfg,
	                                              op->job.type);
	const struct job *job = &op->job;
	struct jobd_result res = {0};
	jobd_ctx *ctx = NULL;
	int64_t start = clock_mono_ms(), start_us = clock_mono_us();
	int64_t started_at = clock_now_us();
	int stop = JOBD_STOP_NONE;

	if (h == NULL) {
		log_warn("workers", "job %s: no handler is configured for type "
		         "%s (removed by a reload?): it stays queued until one "
		         "is", job->id, job->type);
		res.outcome = JOBD_STOPPED;
		report(p, op, NULL, &res, JOBD_STOP_NONE, -1, 0);
		config_release(cfg);
		return;
	}
	if (handler_ctx_init(&ctx, start + job->timeout_ms, h->kill_grace_ms)) {
		res.outcome = JOBD_STOPPED;
		log_err("workers", "job %s: out of memory starting its attempt; "
		        "back to the queue", job->id);
		report(p, op, h, &res, JOBD_STOP_SHUTDOWN, -1, 0);
		config_release(cfg);
		return;
	}
	pthread_mutex_lock(&p->mu);
	p->slots[index].ctx = ctx;
	if (p->slots[index].cancelled)
		handler_ctx_request_stop(ctx, JOBD_STOP_CANCEL);
	if (p->stop_reason != JOBD_STOP_NONE)
		handler_ctx_request_stop(ctx, p->stop_reason);
	pthread_mutex_unlock(&p->mu);
	handler_ctx_set_job(ctx, p->prog, op->id, op->type, op->claim);

	/* From here on the attempt counts (already, when the writer gave
	 * the job to an idle worker). */
	if (!op->prestarted)
		writer_started(p->w, op, started_at);
	struct jobd_job_view view = {
		.id = job->id, .type = job->type, .attempt = job->attempt,
		.max_attempts = job->max_attempts, .payload = job->payload,
		.payload_len = strlen(job->payload),
		.timeout_ms = job->timeout_ms,
		.depends_on = job->depends_on ? job->depends_on : "",
	};
	handler_run(h, &view, ctx, &res);
	stop = jobd_ctx_stop_reason(ctx);
	if (res.outcome == JOBD_SUCCEEDED)
		stop = JOBD_STOP_NONE;

	pthread_mutex_lock(&p->mu);
	p->slots[index].ctx = NULL;
	pthread_mutex_unlock(&p->mu);
	if (handler_ctx_reported(ctx)) {
		/* The last report goes with the completion (fenced like it);
		 * the table shows it until that is written. */
		op->progress = progress_end(p->prog, op->id, op->claim);
		op->done = progress_written;
		op->arg = p;
	}
	handler_ctx_free(ctx);
	int64_t run_us = clock_mono_us() - start_us;
	metrics_run_seconds(job->type, (double)run_us / 1e6);

	report(p, op, h, &res, stop, started_at, run_us);
	config_release(cfg);
}

static void *
worker_main(void *arg)
{
	struct worker_arg *wa = arg;
	worker_pool *p = wa->p;
	size_t index = wa->index;
	sigset_t set;
	char name[16];

	free(wa);
	sigfillset(&set);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	snprintf(name, sizeof(name), "jobd-worker-%zu", index);
	pthread_setname_np(pthread_self(), name);

	pthread_mutex_lock(&p->mu);
	for (;;) {
		while (p->qlen == 0 && !p->stopping)
			pthread_cond_wait(&p->cond, &p->mu);
		if (p->stopping)
			break; /* worker_pool_stop hands queued jobs back */
		struct writer_op *op = p->queue[p->qhead];
		p->qhead = (p->qhead + 1) % p->qcap;
		p->qlen--;
		/* Busy from the moment it is taken, so that shutdown waits
		 * for it (and stops it) even before its context exists; and
		 * the slot names it, so that a cancel finds it then too. */
		p->busy++;
		memcpy(p->slots[index].id, op->id, sizeof(op->id));
		p->slots[index].cancelled = false;
		pthread_mutex_unlock(&p->mu);
		run_one(p, index, op); /* hands op back to the writer */
		pthread_mutex_lock(&p->mu);
		p->slots[index].id[0] = '\0';
		p->slots[index].cancelled = false;
		p->busy--;
		pthread_cond_broadcast(&p->idle_cond);
	}
	pthread_mutex_unlock(&p->mu);
	atomic_fetch_sub(&p->alive, 1);
	return NULL;
}

void
worker_pool_set_progress(worker_pool *p, progress *prog)
{
	p->prog = prog;
}

int
worker_pool_start(worker_pool *p)
{
	for (size_t i = 0; i < p->nthreads; i++) {
		struct worker_arg *wa = malloc(sizeof(*wa));
		if (wa == NULL)
			return JOBD_ENOMEM;
		wa->p = p;
		wa->index = i;
		atomic_fetch_add(&p->alive, 1);
		if (pthread_create(&p->threads[i], NULL, worker_main, wa) != 0) {
			atomic_fetch_sub(&p->alive, 1);
			free(wa);
			return JOBD_ESYS;
		}
		p->nstarted++;
	}
	return 0;
}

/* Hands back a claimed job that will not run now (attempt not counted). */
static void
put_back(worker_pool *p, struct writer_op *op, int stop)
{
	struct jobd_result res = {.outcome = JOBD_STOPPED};

	report(p, op, NULL, &res, stop, -1, 0);
}

void
worker_pool_dispatch(worker_pool *p, struct writer_op **ops, size_t n)
{
	size_t queued = 0;

	pthread_mutex_lock(&p->mu);
	for (; queued < n && !p->stopping; queued++) {
		if (p->qlen == p->qcap) {
			/* The writer claims ahead for fast job types; grow
			 * rather than drop a claimed job. */
			size_t cap = p->qcap * 2;
			struct writer_op **q = calloc(cap, sizeof(*q));
			if (q == NULL)
				break;
			for (size_t k = 0; k < p->qlen; k++)
				q[k] = p->queue[(p->qhead + k) % p->qcap];
			free(p->queue);
			p->queue = q;
			p->qcap = cap;
			p->qhead = 0;
		}
		p->queue[(p->qhead + p->qlen) % p->qcap] = ops[queued];
		p->qlen++;
		pthread_cond_signal(&p->cond);
	}
	bool stopping = p->stopping;
	pthread_mutex_unlock(&p->mu);
	if (queued < n && !stopping)
		log_err("workers", "out of memory queueing %zu claimed job(s); "
		        "back to the queue", n - queued);
	/* Claimed while shutdown began, or no memory to queue them: back to
	 * the queue, unrun and with the attempt not counted. */
	for (size_t i = queued; i < n; i++)
		put_back(p, ops[i], JOBD_STOP_SHUTDOWN);
}

bool
worker_pool_cancel(worker_pool *p, const char *id)
{
	bool found = false;
	struct writer_op *unstarted = NULL;

	pthread_mutex_lock(&p->mu);
	/* Claimed ahead but not started yet: it ends here, never run. */
	for (size_t i = 0; i < p->qlen && unstarted == NULL; i++) {
		size_t at = (p->qhead + i) % p->qcap;
		if (strcmp(p->queue[at]->id, id) != 0)
			continue;
		unstarted = p->queue[at];
		for (size_t k = i; k + 1 < p->qlen; k++)
			p->queue[(p->qhead + k) % p->qcap] =
				p->queue[(p->qhead + k + 1) % p->qcap];
		p->qlen--;
	}
	for (size_t i = 0; i < p->nthreads; i++) {
		if (strcmp(p->slots[i].id, id) != 0)
			continue;
		if (p->slots[i].ctx != NULL)
			handler_ctx_request_stop(p->slots[i].ctx,
			                         JOBD_STOP_CANCEL);
		else /* taken, no context yet: run_one stops it at once */
			p->slots[i].cancelled = true;
		found = true;
	}
	pthread_mutex_unlock(&p->mu);
	if (unstarted != NULL) {
		put_back(p, unstarted, JOBD_STOP_CANCEL);
		found = true;
	}
	return found;
}

void
worker_pool_fence(worker_pool *p)
{
	struct writer_op *waiting[64];
	size_t n = 0;
	int running = 0;

	pthread_mutex_lock(&p->mu);
	/* Claimed ahead, not started: back (stale claims change nothing). */
	while (p->qlen > 0 && n < sizeof(waiting) / sizeof(waiting[0])) {
		waiting[n++] = p->queue[p->qhead];
		p->qhead = (p->qhead + 1) % p->qcap;
		p->qlen--;
	}
	for (size_t i = 0; i < p->nthreads; i++) {
		if (p->slots[i].ctx != NULL) {
			handler_ctx_request_stop(p->slots[i].ctx,
			                         JOBD_STOP_SHUTDOWN);
			running++;
		}
	}
	pthread_mutex_unlock(&p->mu);
	for (size_t i = 0; i < n; i++)
		put_back(p, waiting[i], JOBD_STOP_SHUTDOWN);
	if (running > 0 || n > 0)
		log_warn("workers", "fenced: stopped %d running attempt(s) and "
		         "gave back %zu waiting job(s); the others may have "
		         "taken them over", running, n);
}

void
worker_pool_stop(worker_pool *p, int64_t grace_ms)
{
	int64_t deadline = clock_mono_ms() + grace_ms;

	pthread_mutex_lock(&p->mu);
	p->stopping = true;
	/* Jobs claimed but not started: give them back to the queue now. */
	while (p->qlen > 0) {
		struct writer_op *op = p->queue[p->qhead];
		p->qhead = (p->qhead + 1) % p->qcap;
		p->qlen--;
		pthread_mutex_unlock(&p->mu);
		put_back(p, op, JOBD_STOP_SHUTDOWN);
		pthread_mutex_lock(&p->mu);
	}
	pthread_cond_broadcast(&p->cond);
	if (p->busy > 0)
		log_notice("workers", "waiting up to %lld ms for %d running "
		           "attempt(s)", (long long)grace_ms, p->busy);
	while (p->busy > 0) {
		if (clock_cond_wait_until(&p->idle_cond, &p->mu, deadline) != 0 &&
		    clock_mono_ms() >= deadline)
			break;
	}
	if (p->busy > 0) {
		log_notice("workers", "stopping %d attempt(s); their jobs go "
		           "back to the queue", p->busy);
		p->stop_reason = JOBD_STOP_SHUTDOWN;
		for (size_t i = 0; i < p->nthreads; i++)
			if (p->slots[i].ctx != NULL)
				handler_ctx_request_stop(p->slots[i].ctx,
				                         JOBD_STOP_SHUTDOWN);
	}
	pthread_mutex_unlock(&p->mu);
	for (size_t i = 0; i < p->nstarted; i++)
		pthread_join(p->threads[i], NULL);
	p->nstarted = 0;
}

int
worker_pool_busy(worker_pool *p)
{
	int busy;

	pthread_mutex_lock(&p->mu);
	busy = p->busy;
	pthread_mutex_unlock(&p->mu);
	return busy;
}

bool
worker_pool_alive(worker_pool *p)
{
	return (size_t)atomic_load(&p->alive) == p->nstarted;
}
