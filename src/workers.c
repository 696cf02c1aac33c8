/*
 * workers.c - the worker pool.
 *
 * The writer hands claimed jobs to the pool's run queue; a worker takes
 * one, runs the handler its type names with a fresh attempt context,
 * decides the job's next state (succeeded, retry with backoff, failed,
 * cancelled, or back to queued on shutdown) and hands that to the writer
 * as a completion.  The worker does not wait for that commit: a crash
 * before it only means the job is found running at start-up and requeued
 * (at-least-once).
 *
 * LOCKING: p->mu guards the run queue (queue, qhead, qlen), stopping,
 * stop_reason, busy, and every slots[i].id / slots[i].ctx.  p->cond wakes
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
	char id[UUID_STR_LEN];   /* job running here, "" when idle */
	jobd_ctx *ctx;           /* its attempt context */
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
	struct job **queue;       /* ring buffer of claimed jobs */
	size_t qcap, qhead, qlen;
	bool stopping;            /* take no more jobs */
	int stop_reason;          /* given to new attempts (shutdown) */
	int busy;
	atomic_int alive;
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
	for (size_t i = 0; i < p->qlen; i++)
		job_free(p->queue[(p->qhead + i) % p->qcap]);
	free(p->queue);
	free(p->threads);
	free(p->slots);
	pthread_cond_destroy(&p->cond);
	pthread_cond_destroy(&p->idle_cond);
	pthread_mutex_destroy(&p->mu);
	free(p);
}

/* Builds the completion of an attempt and hands it to the writer. */
static void
report(worker_pool *p, const struct job *job, const struct handler_conf *h,
       struct jobd_result *res, int stop, int64_t started_at_us,
       int64_t run_us)
{
	struct writer_op *op = malloc(sizeof(*op));
	int64_t now = clock_now_us();

	if (op == NULL) {
		log_err("workers", "job %s: out of memory reporting its end; "
		        "it will be requeued at the next start", job->id);
		free(res->result);
		free(res->error);
		return;
	}
	writer_op_init(op, WOP_COMPLETE);
	memcpy(op->id, job->id, sizeof(op->id));
	memcpy(op->type, job->type, sizeof(op->type));
	memcpy(op->claim, job->claim, sizeof(op->claim));
	op->result = res->result;
	op->error = res->error;
	op->has_exit_code = res->has_exit_code != 0;
	op->exit_code = res->exit_code;
	op->output_truncated = res->output_truncated != 0;
	op->finished_at_us = now;
	op->started_at_us = started_at_us;
	op->run_us = run_us;

	if (res->outcome == JOBD_SUCCEEDED) {
		op->new_status = JOB_SUCCEEDED;
	} else if (stop == JOBD_STOP_CANCEL) {
		op->new_status = JOB_CANCELLED;
		if (op->error == NULL)
			op->error = strdup("cancelled");
	} else if (stop == JOBD_STOP_SHUTDOWN) {
		/* Not the job's fault: back to the queue, attempt not counted. */
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
			op->run_at_us = now + 1000 * backoff_jitter_ms(
			    job->attempt, h ? h->backoff_base_ms : 1000,
			    h ? h->backoff_max_ms : 3600000);
			op->finished_at_us = -1;
		} else {
			op->new_status = JOB_FAILED;
		}
	}
	if (writer_submit(p->w, op) != 0) {
		log_warn("workers", "job %s: the writer has stopped; the job "
		         "will be requeued at the next start", job->id);
		writer_op_clear(op);
		free(op);
	}
}

static void
run_one(worker_pool *p, size_t index, struct job *job)
{
	/* The handler as configured now (SIGHUP may have reloaded it); the
	 * reference keeps it valid for the whole attempt. */
	struct config *cfg = config_acquire();
	const struct handler_conf *h = config_handler(cfg ? cfg : p->cfg,
	                                              job->type);
	struct jobd_result res = {0};
	jobd_ctx *ctx = NULL;
	int64_t start = clock_mono_ms(), start_us = clock_mono_us();
	int64_t started_at = clock_now_us();
	int stop = JOBD_STOP_NONE;

	if (h == NULL) {
		res.outcome = JOBD_FAILED_FOR_GOOD;
		res.error = strdup("no handler is configured for this type");
		report(p, job, NULL, &res, JOBD_STOP_NONE, -1, 0);
		config_release(cfg);
		return;
	}
	if (handler_ctx_init(&ctx, start + job->timeout_ms, h->kill_grace_ms)) {
		res.outcome = JOBD_RETRY;
		res.error = strdup("out of memory starting the attempt");
		report(p, job, h, &res, JOBD_STOP_NONE, -1, 0);
		config_release(cfg);
		return;
	}
	pthread_mutex_lock(&p->mu);
	memcpy(p->slots[index].id, job->id, sizeof(job->id));
	p->slots[index].ctx = ctx;
	if (p->stop_reason != JOBD_STOP_NONE)
		handler_ctx_request_stop(ctx, p->stop_reason);
	pthread_mutex_unlock(&p->mu);

	struct jobd_job_view view = {
		.id = job->id, .type = job->type, .attempt = job->attempt,
		.max_attempts = job->max_attempts, .payload = job->payload,
		.payload_len = strlen(job->payload),
		.timeout_ms = job->timeout_ms,
	};
	handler_run(h, &view, ctx, &res);
	stop = jobd_ctx_stop_reason(ctx);
	if (res.outcome == JOBD_SUCCEEDED)
		stop = JOBD_STOP_NONE;

	pthread_mutex_lock(&p->mu);
	p->slots[index].id[0] = '\0';
	p->slots[index].ctx = NULL;
	pthread_mutex_unlock(&p->mu);
	handler_ctx_free(ctx);
	int64_t run_us = clock_mono_us() - start_us;
	metrics_run_seconds(job->type, (double)run_us / 1e6);

	report(p, job, h, &res, stop, started_at, run_us);
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
		struct job *job = p->queue[p->qhead];
		p->qhead = (p->qhead + 1) % p->qcap;
		p->qlen--;
		/* Busy from the moment it is taken, so that shutdown waits
		 * for it (and stops it) even before its context exists. */
		p->busy++;
		pthread_mutex_unlock(&p->mu);
		run_one(p, index, job);
		job_free(job);
		pthread_mutex_lock(&p->mu);
		p->busy--;
		pthread_cond_broadcast(&p->idle_cond);
	}
	pthread_mutex_unlock(&p->mu);
	atomic_fetch_sub(&p->alive, 1);
	return NULL;
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

void
worker_pool_dispatch(worker_pool *p, struct job **jobs, size_t n)
{
	pthread_mutex_lock(&p->mu);
	if (p->stopping) {
		/* Claimed while shutdown began: back to the queue, unrun and
		 * with the attempt not counted. */
		pthread_mutex_unlock(&p->mu);
		for (size_t i = 0; i < n; i++) {
			struct jobd_result res = {.outcome = JOBD_STOPPED};
			report(p, jobs[i], NULL, &res, JOBD_STOP_SHUTDOWN, -1, 0);
			job_free(jobs[i]);
		}
		return;
	}
	for (size_t i = 0; i < n; i++) {
		if (p->qlen == p->qcap) {
			/* The writer claims ahead for fast job types; grow
			 * rather than drop a claimed job. */
			size_t cap = p->qcap * 2;
			struct job **q = calloc(cap, sizeof(*q));
			if (q == NULL) {
				log_err("workers", "job %s: out of memory queueing "
				        "it; it will be requeued at the next start",
				        jobs[i]->id);
				job_free(jobs[i]);
				continue;
			}
			for (size_t k = 0; k < p->qlen; k++)
				q[k] = p->queue[(p->qhead + k) % p->qcap];
			free(p->queue);
			p->queue = q;
			p->qcap = cap;
			p->qhead = 0;
		}
		p->queue[(p->qhead + p->qlen) % p->qcap] = jobs[i];
		p->qlen++;
		pthread_cond_signal(&p->cond);
	}
	pthread_mutex_unlock(&p->mu);
}

bool
worker_pool_cancel(worker_pool *p, const char *id)
{
	bool found = false;
	struct job *unstarted = NULL;

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
		if (p->slots[i].ctx != NULL && strcmp(p->slots[i].id, id) == 0) {
			handler_ctx_request_stop(p->slots[i].ctx,
			                         JOBD_STOP_CANCEL);
			found = true;
		}
	}
	pthread_mutex_unlock(&p->mu);
	if (unstarted != NULL) {
		struct jobd_result res = {.outcome = JOBD_STOPPED};
		report(p, unstarted, NULL, &res, JOBD_STOP_CANCEL, -1, 0);
		job_free(unstarted);
		found = true;
	}
	return found;
}

void
worker_pool_stop(worker_pool *p, int64_t grace_ms)
{
	int64_t deadline = clock_mono_ms() + grace_ms;

	pthread_mutex_lock(&p->mu);
	p->stopping = true;
	/* Jobs claimed but not started: give them back to the queue now. */
	while (p->qlen > 0) {
		struct job *job = p->queue[p->qhead];
		struct jobd_result res = {.outcome = JOBD_STOPPED};
		p->qhead = (p->qhead + 1) % p->qcap;
		p->qlen--;
		pthread_mutex_unlock(&p->mu);
		report(p, job, NULL, &res, JOBD_STOP_SHUTDOWN, -1, 0);
		job_free(job);
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
