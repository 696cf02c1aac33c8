/*
 * writer.c - the one store writer (group commit, claims, completions).
 *
 * The loop: wait until there is an op, or a claim may find work (an idle
 * worker and a job due), or the purge is due; take every waiting op; apply
 * them all plus one claim in one BEGIN IMMEDIATE transaction; commit; then
 * report outcomes (done callbacks), publish state changes and hand claimed
 * jobs to the workers.  Counters change only once a commit has succeeded.
 *
 * LOCKING: w->mu guards the op queue (head, tail), stopping, draining,
 * running, and the wake condition w->cond.  Everything else (counters,
 * per-type running counts, next_run_at) belongs to the writer thread,
 * except queued and inflight, which are atomics so other threads may read
 * them.  Lock order: w->mu is a leaf lock; callbacks run without it.
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#include "clock.h"
#include "err.h"
#include "log.h"
#include "metrics.h"
#include "writer.h"

#define PURGE_INTERVAL_MS (10 * 60 * 1000)
#define PURGE_CHUNK 1000
#define RETRY_AFTER_FAILURE_MS 200

struct type_running {
	char name[JOB_TYPE_MAX + 1];
	int64_t running;         /* claimed, completion not received */
	int64_t batch;           /* claimed in the batch being written */
	double avg_run_ms;       /* moving average of attempts; < 0 unknown */
};

/*
 * Claiming ahead: besides a job for every idle worker, the writer may
 * claim more for types whose attempts are short, so that one transaction
 * carries many claims and completions (drain throughput) while no job
 * waits in memory for more than about PREFETCH_WINDOW_MS of work, and a
 * slow type is never claimed ahead (priority order holds for it).
 */
#define PREFETCH_WINDOW_MS 5.0
/*
 * Every commit is fsynced (durability = full), and workers must not run
 * dry while the writer waits for it: the window is at least twice the
 * recent commit time, up to PREFETCH_WINDOW_MAX_MS.
 */
#define PREFETCH_WINDOW_MAX_MS 50.0
#define PREFETCH_MAX 512

/*
 * Under a backlog, attempt results that come alone (exec jobs end one at a
 * time) wait up to DEFER_MS for others, so that one transaction carries
 * several: each commit writes whole pages, whatever it carries.  Only
 * while every worker has claimed work left, so no worker waits for it;
 * never when idle, so latency at low load is unchanged.
 */
#define DEFER_MS 2
#define DEFER_MAX 64

struct writer {
	store *st;
	const struct config *cfg;
	writer_dispatch_fn dispatch;
	writer_cancel_fn cancel;
	writer_event_fn event;
	void *hook_arg;

	pthread_t thread;
	pthread_mutex_t mu;
	pthread_cond_t cond;
	struct writer_op *head, *tail; /* mu */
	bool stopping;                 /* mu: flush and exit */
	bool draining;                 /* mu: no more claims */
	bool started;

	atomic_bool healthy;
	atomic_llong counts[JOB_NSTATUS]; /* jobs per status in the store */
	atomic_llong inflight;         /* claimed, completion not received */
	atomic_llong last_batch_mono_ms; /* start of the batch in progress,
	                                    0 when idle (watchdog) */

	/* writer thread only */
	struct type_running *types;    /* attempts running per type */
	size_t ntypes, captypes;
	bool maybe_due;                /* due queued rows may exist */
	bool held_back;                /* the last claim left due rows of
	                                  capped or slow types queued */
	bool fatal;                    /* an I/O error was reported to main */
	double avg_run_ms;             /* moving average over all types */
	double avg_commit_ms;          /* moving average of commits (fsync) */
	int64_t next_run_at_us;        /* earliest future run_at, -1 none */
	int64_t next_purge_mono_ms;
	int64_t retry_at_mono_ms;      /* after a failed commit, -1 none */
	struct writer_op *pending;     /* completions to re-apply after a
	                                  failed commit */
	int64_t deferred_mono_ms;      /* since when queued results wait for
	                                  company (may_defer), -1 none */
	char boot_id[17];
	uint64_t claim_seq;
};

void
writer_op_init(struct writer_op *op, int kind)
{
	memset(op, 0, sizeof(*op));
	job_init(&op->job);
	op->kind = kind;
	op->finished_at_us = -1;
	op->run_at_us = -1;
}

void
writer_op_clear(struct writer_op *op)
{
	job_clear(&op->job);
	free(op->result);
	free(op->error);
	op->result = NULL;
	op->error = NULL;
}

writer *
writer_new(store *st, const struct config *cfg)
{
	writer *w = calloc(1, sizeof(*w));
	uint8_t rnd[8];

	if (w == NULL)
		return NULL;
	w->st = st;
	w->cfg = cfg;
	pthread_mutex_init(&w->mu, NULL);
	clock_cond_init(&w->cond);
	atomic_init(&w->healthy, true);
	w->maybe_due = true;
	w->avg_run_ms = -1;
	w->next_run_at_us = -1;
	w->retry_at_mono_ms = -1;
	w->deferred_mono_ms = -1;
	if (getrandom(rnd, sizeof(rnd), 0) != (ssize_t)sizeof(rnd))
		memset(rnd, 0x5a, sizeof(rnd));
	for (int i = 0; i < 8; i++)
		snprintf(w->boot_id + 2 * i, 3, "%02x", rnd[i]);
	return w;
}

void
writer_free(writer *w)
{
	if (w == NULL)
		return;
	pthread_cond_destroy(&w->cond);
	pthread_mutex_destroy(&w->mu);
	free(w->types);
	free(w);
}

void
writer_set_hooks(writer *w, writer_dispatch_fn dispatch,
                 writer_cancel_fn cancel, writer_event_fn event, void *arg)
{
	w->dispatch = dispatch;
	w->cancel = cancel;
	w->event = event;
	w->hook_arg = arg;
}

/*
 * The row of a type (writer thread), added on first sight; a shared dummy
 * row when out of memory, so that callers never see NULL.
 */
static struct type_running *
type_of(writer *w, const char *type)
{
	static struct type_running dummy = {.avg_run_ms = -1};
	struct type_running *t;

	for (size_t i = 0; i < w->ntypes; i++)
		if (strcmp(w->types[i].name, type) == 0)
			return &w->types[i];
	if (w->ntypes == w->captypes) {
		size_t cap = w->captypes ? w->captypes * 2 : 16;
		t = realloc(w->types, cap * sizeof(*t));
		if (t == NULL)
			return &dummy;
		w->types = t;
		w->captypes = cap;
	}
	t = &w->types[w->ntypes++];
	snprintf(t->name, sizeof(t->name), "%s", type);
	t->running = 0;
	t->batch = 0;
	t->avg_run_ms = -1;
	return t;
}

/*
 * A completion frees its worker as soon as it arrives, whatever becomes of
 * its commit: counted once, with the attempt's duration in the averages.
 */
static void
count_completion(writer *w, struct writer_op *op)
{
	struct type_running *tr = type_of(w, op->type);
	double ms = (double)op->run_us / 1000.0;

	if (op->counted)
		return;
	op->counted = true;
	tr->running--;
	if (op->run_us > 0) {
		tr->avg_run_ms = tr->avg_run_ms < 0 ? ms
		                                    : 0.8 * tr->avg_run_ms + 0.2 * ms;
		w->avg_run_ms = w->avg_run_ms < 0 ? ms
		                                  : 0.8 * w->avg_run_ms + 0.2 * ms;
	}
	atomic_fetch_sub(&w->inflight, 1);
}

/* The claim-ahead window per worker (ms): see PREFETCH_WINDOW_MS. */
static double
prefetch_window_ms(const writer *w)
{
	double ms = 2.0 * w->avg_commit_ms;

	if (ms < PREFETCH_WINDOW_MS)
		return PREFETCH_WINDOW_MS;
	return ms > PREFETCH_WINDOW_MAX_MS ? PREFETCH_WINDOW_MAX_MS : ms;
}

/* Estimated work claimed and not done yet (ms), -1 when unknown. */
static double
work_ahead(const writer *w)
{
	double work = 0;

	for (size_t i = 0; i < w->ntypes; i++) {
		if (w->types[i].running <= 0)
			continue;
		if (w->types[i].avg_run_ms < 0)
			return -1;
		work += (double)w->types[i].running * w->types[i].avg_run_ms;
	}
	return work;
}

/*
 * How many jobs the writer may claim now: one per idle worker, plus as
 * many short ones ahead as fit in the window given the work already
 * claimed (so that a claim rarely takes rows it must put back).
 */
static int64_t
claim_capacity(writer *w)
{
	int64_t threads = w->cfg->workers.threads;
	int64_t idle = threads - atomic_load(&w->inflight);
	int64_t extra = 0;
	double work;

	if (idle < 0)
		idle = 0;
	if (w->avg_run_ms >= 0 && (work = work_ahead(w)) >= 0) {
		double per = w->avg_run_ms > 0.001 ? w->avg_run_ms : 0.001;
		double budget = (double)threads * prefetch_window_ms(w) - work;
		double e = budget > 0 ? budget / per : 0;
		extra = e > PREFETCH_MAX ? PREFETCH_MAX : (int64_t)e;
	}
	return idle + extra;
}

int
writer_recover(writer *w, char *err, size_t errlen)
{
	int requeued = 0, failed = 0, rc;
	int64_t counts[JOB_NSTATUS];

	rc = store_begin(w->st, err, errlen);
	if (rc != 0)
		return rc;
	rc = store_recover(w->st, clock_now_us(), &requeued, &failed, err,
	                   errlen);
	if (rc == 0)
		rc = store_next_run_at(w->st, &w->next_run_at_us, err, errlen);
	if (rc != 0) {
		store_rollback(w->st);
		return rc;
	}
	rc = store_commit(w->st, err, errlen);
	if (rc == 0)
		rc = store_counts(w->st, counts, err, errlen);
	if (rc != 0)
		return rc;
	for (int i = 0; i < JOB_NSTATUS; i++)
		atomic_store(&w->counts[i], counts[i]);
	if (requeued || failed)
		log_notice("writer", "recovered %d interrupted job(s): %d "
		           "requeued, %d failed or cancelled", requeued + failed,
		           requeued, failed);
	w->maybe_due = true;
	w->next_purge_mono_ms = clock_mono_ms(); /* purge soon after start */
	return 0;
}

int
writer_submit(writer *w, struct writer_op *op)
{
	pthread_mutex_lock(&w->mu);
	if (w->stopping || !w->started) {
		pthread_mutex_unlock(&w->mu);
		return JOBD_EBUSY;
	}
	op->next = NULL;
	if (w->tail)
		w->tail->next = op;
	else
		w->head = op;
	w->tail = op;
	pthread_cond_signal(&w->cond);
	pthread_mutex_unlock(&w->mu);
	return 0;
}

void
writer_drain(writer *w)
{
	pthread_mutex_lock(&w->mu);
	w->draining = true;
	pthread_cond_signal(&w->cond);
	pthread_mutex_unlock(&w->mu);
}

bool
writer_healthy(writer *w)
{
	return atomic_load(&w->healthy);
}

int64_t
writer_queued(writer *w)
{
	return atomic_load(&w->counts[JOB_QUEUED]);
}

void
writer_counts(writer *w, int64_t counts[JOB_NSTATUS])
{
	for (int i = 0; i < JOB_NSTATUS; i++)
		counts[i] = atomic_load(&w->counts[i]);
}

bool
writer_stuck(writer *w, int64_t limit_ms)
{
	int64_t start = atomic_load(&w->last_batch_mono_ms);

	return start != 0 && clock_mono_ms() - start > limit_ms;
}

int64_t
writer_inflight(writer *w)
{
	return atomic_load(&w->inflight);
}

/* Per-batch changes, applied to the counters only after the commit. */
struct batch {
	int64_t delta[JOB_NSTATUS];   /* per-status count changes */
	bool due;                 /* due rows may have been queued */
	int64_t earliest_future;  /* earliest future run_at made, -1 none */
	struct job **claimed;     /* for the workers once committed */
	size_t nclaimed, capclaimed;
	bool claim_full;          /* the claim got all it asked for */
	bool held_back;           /* the claim left due rows queued */
	/* What may still be claimed (see plan_init and may_take). */
	bool planned;
	int64_t idle;             /* idle workers at the batch's start */
	int64_t slots;            /* jobs that may still be claimed */
	double work;              /* ms of claimed work not done, -1 unknown */
	char token[CLAIM_TOKEN_MAX]; /* the batch's claim token, "" none yet */
	/* Caps as configured now (SIGHUP may reload handler sections). */
	const struct config *cfg;
	bool draining;            /* no claims at all */
};

static void
note_run_at(struct batch *b, int64_t run_at, int64_t now)
{
	if (run_at <= now)
		b->due = true;
	else if (b->earliest_future < 0 || run_at < b->earliest_future)
		b->earliest_future = run_at;
}

/*
 * What the batch may claim: one job per idle worker, plus short ones ahead
 * (claim_capacity).  Worked out once per batch, on first need.
 */
static void
plan_init(writer *w, struct batch *b)
{
	if (b->planned)
		return;
	b->planned = true;
	b->idle = w->cfg->workers.threads - atomic_load(&w->inflight);
	if (b->idle < 0)
		b->idle = 0;
	b->slots = claim_capacity(w);
	b->work = work_ahead(w);
}

/*
 * Whether a job of this type may be claimed now, within the type's cap and
 * the claim-ahead window.  *work gets the estimated work once it is taken.
 * Beyond the idle workers, a job is claimed ahead only when the work
 * already claimed, plus its own, adds up to less than the window per
 * worker: short attempts only, and never behind a long one.
 */
static bool
may_take(writer *w, struct batch *b, const struct config *cfg,
         const char *type, double *work)
{
	const struct handler_conf *h = config_handler(cfg, type);
	struct type_running *tr = type_of(w, type);
	double mine = tr->avg_run_ms;

	plan_init(w, b);
	*work = b->work;
	if (b->slots <= 0)
		return false;
	if (h != NULL && h->concurrency > 0 &&
	    tr->running + tr->batch >= h->concurrency)
		return false;
	if ((int64_t)b->nclaimed >= b->idle) {
		if (mine < 0 || b->work < 0 ||
		    (b->work + mine) / (double)w->cfg->workers.threads >
		    prefetch_window_ms(w))
			return false;
		*work = b->work + mine;
	} else if (b->work >= 0) {
		*work = mine < 0 ? -1 : b->work + mine;
	}
	return true;
}

/* The batch's claim token ("boot id:counter"), made on first use. */
static const char *
batch_token(writer *w, struct batch *b)
{
	if (b->token[0] == '\0')
		snprintf(b->token, sizeof(b->token), "%s:%llu", w->boot_id,
		         (unsigned long long)++w->claim_seq);
	return b->token;
}

/* Hands a job (moved in, heap) to the batch's claimed list. */
static int
take(writer *w, struct batch *b, struct job *j, double work)
{
	if (b->nclaimed == b->capclaimed) {
		size_t cap = b->capclaimed ? b->capclaimed * 2 : 16;
		struct job **c = realloc(b->claimed, cap * sizeof(*c));
		if (c == NULL)
			return JOBD_ENOMEM;
		b->claimed = c;
		b->capclaimed = cap;
	}
	b->claimed[b->nclaimed++] = j;
	type_of(w, j->type)->batch++;
	b->slots--;
	b->work = work;
	return 0;
}

/* Forgets what the batch counted as claimed per type (after it ended). */
static void
end_batch_counts(writer *w)
{
	for (size_t i = 0; i < w->ntypes; i++)
		w->types[i].batch = 0;
}

/*
 * A new due job claimed as it is inserted, when the queue holds nothing
 * due before it and a worker may take it: it skips the queue's index and
 * a claim.  *taken tells whether the job was inserted running (op->job
 * keeps what it was; the worker gets a copy).
 */
static int
insert_claimed(writer *w, struct writer_op *op, struct batch *b,
               int64_t now, bool *taken)
{
	struct job *j;
	double work;
	int rc;

	*taken = false;
	if (b->draining || w->maybe_due || w->held_back || b->due ||
	    op->job.run_at_us > now ||
	    !may_take(w, b, b->cfg, op->job.type, &work))
		return 0;
	j = malloc(sizeof(*j));
	if (j == NULL || job_copy(j, &op->job) != 0) {
		free(j);
		return JOBD_ENOMEM;
	}
	j->status = JOB_RUNNING;
	j->attempt = 1;
	j->started_at_us = now;
	snprintf(j->claim, sizeof(j->claim), "%s", batch_token(w, b));
	rc = store_insert(w->st, j, op->err, sizeof(op->err));
	if (rc == 0)
		rc = take(w, b, j, work);
	if (rc != 0)
		job_free(j); /* not inserted, or the batch fails: rolled back */
	else
		*taken = true;
	return rc;
}

/* Applies one op inside the transaction.  Returns a fatal store error
 * (EIO, EFULL, ENOMEM, EBUSY) that aborts the batch, else 0. */
static int
apply_op(writer *w, struct writer_op *op, struct batch *b, int64_t now)
{
	bool taken;
	int rc;

	op->rc = 0;
	op->err[0] = '\0';
	switch (op->kind) {
	case WOP_SUBMIT:
		if (op->job.idem_key != NULL) {
			struct job prev;
			job_init(&prev);
			rc = store_find_idem(w->st, op->job.idem_key, &prev,
			                     op->err, sizeof(op->err));
			if (rc == 0) {
				bool same = prev.idem_fp && op->job.idem_fp &&
				            strcmp(prev.idem_fp, op->job.idem_fp) == 0;
				if (same) {
					memcpy(op->job.id, prev.id, sizeof(prev.id));
					op->status = prev.status;
					op->replayed = true;
				} else {
					op->rc = jobd_seterr(op->err, sizeof(op->err),
					    JOBD_ECONFLICT, "Idempotency-Key was "
					    "used for a different submission (job "
					    "%s)", prev.id);
				}
				job_clear(&prev);
				return 0;
			}
			if (rc != JOBD_ENOTFOUND)
				return rc;
		}
		if (atomic_load(&w->counts[JOB_QUEUED]) + b->delta[JOB_QUEUED] >=
		    w->cfg->store.max_queued) {
			op->rc = jobd_seterr(op->err, sizeof(op->err), JOBD_EFULL,
			                     "the queue holds store.max_queued = "
			                     "%lld jobs",
			                     (long long)w->cfg->store.max_queued);
			return 0;
		}
		/* The answer says "queued" either way: accepted, not run. */
		op->status = JOB_QUEUED;
		rc = insert_claimed(w, op, b, now, &taken);
		if (rc == 0 && !taken)
			rc = store_insert(w->st, &op->job, op->err,
			                  sizeof(op->err));
		if (rc == JOBD_ECONFLICT) {
			op->rc = rc;
			return 0;
		}
		if (rc != 0)
			return rc;
		b->delta[JOB_QUEUED]++;
		if (!taken)
			note_run_at(b, op->job.run_at_us, now);
		return 0;
	case WOP_CANCEL:
		rc = store_cancel(w->st, op->id, now, &op->status, op->err,
		                  sizeof(op->err));
		if (rc == 0) {
			b->delta[JOB_QUEUED]--;
			b->delta[JOB_CANCELLED]++;
			return 0;
		}
		if (rc == JOBD_ECONFLICT || rc == JOBD_ENOTFOUND) {
			op->rc = rc;
			return 0;
		}
		return rc;
	case WOP_RETRY:
		rc = store_retry(w->st, op->id, now, &op->status, op->err,
		                 sizeof(op->err));
		if (rc == 0) {
			b->delta[op->status]--; /* it was failed or cancelled */
			b->delta[JOB_QUEUED]++;
			op->status = JOB_QUEUED;
			b->due = true;
			return 0;
		}
		if (rc == JOBD_ECONFLICT || rc == JOBD_ENOTFOUND) {
			op->rc = rc;
			return 0;
		}
		return rc;
	case WOP_COMPLETE: {
		struct store_completion c = {
			.id = op->id, .claim = op->claim,
			.status = op->new_status,
			.attempt_delta = op->attempt_delta,
			.run_at_us = op->run_at_us,
			.finished_at_us = op->finished_at_us,
			.result = op->result, .error = op->error,
			.has_exit_code = op->has_exit_code,
			.exit_code = op->exit_code,
			.output_truncated = op->output_truncated,
			.started_at_us = op->started_at_us,
		};
		rc = store_complete(w->st, &c, op->err, sizeof(op->err));
		if (rc == JOBD_ESTALE) {
			log_warn("writer", "discarding a stale attempt result: %s",
			         op->err);
			op->rc = rc;
			return 0;
		}
		if (rc != 0)
			return rc;
		op->status = op->new_status;
		b->delta[JOB_RUNNING]--;
		b->delta[op->new_status]++;
		if (op->new_status == JOB_QUEUED)
			note_run_at(b, op->run_at_us, now);
		return 0;
	}
	}
	return 0;
}

/* Claims due jobs for idle workers, within per-type caps. */
static int
claim(writer *w, struct batch *b, int64_t now, char *err, size_t errlen)
{
	const char *excluded[256];
	size_t nexcluded = 0;
	struct job *jobs = NULL;
	size_t n = 0;
	const struct config *cfg = b->cfg;
	int rc = 0;

	plan_init(w, b);
	if (b->slots <= 0) {
		b->claim_full = true; /* took all it could: look again */
		goto out;
	}
	for (size_t i = 0; i < cfg->nhandlers && nexcluded < 256; i++) {
		const struct handler_conf *h = &cfg->handlers[i];
		struct type_running *tr = type_of(w, h->name);
		if (h->concurrency > 0 &&
		    tr->running + tr->batch >= h->concurrency)
			excluded[nexcluded++] = h->name;
	}
	struct store_claim_req req = {
		.now_us = now, .limit = (size_t)b->slots,
		.excluded = excluded, .nexcluded = nexcluded,
		.claim = batch_token(w, b),
	};
	rc = store_claim(w->st, &req, &jobs, &n, err, errlen);
	b->claim_full = rc == 0 && n == (size_t)b->slots;
	b->held_back = nexcluded > 0;
	if (rc != 0 || n == 0)
		goto out;
	for (size_t i = 0; i < n; i++) {
		double work;
		if (!may_take(w, b, cfg, jobs[i].type, &work)) {
			/* Over the type's cap, or too slow to claim ahead:
			 * put the row back as it was. */
			struct store_completion c = {
				.id = jobs[i].id, .claim = req.claim,
				.status = JOB_QUEUED, .attempt_delta = -1,
				.run_at_us = jobs[i].run_at_us,
				.result = jobs[i].result, .error = jobs[i].error,
				.has_exit_code = jobs[i].has_exit_code,
				.exit_code = jobs[i].exit_code,
				.output_truncated = jobs[i].output_truncated,
				.started_at_us = -1,
			};
			rc = store_complete(w->st, &c, err, errlen);
			if (rc != 0)
				goto out;
			/* Look again when a worker frees up or a type falls
			 * below its cap: both come as completions. */
			b->held_back = true;
			continue;
		}
		struct job *j = malloc(sizeof(*j));
		if (j == NULL) {
			rc = jobd_seterr(err, errlen, JOBD_ENOMEM,
			                 "out of memory");
			goto out;
		}
		job_move(j, &jobs[i]);
		rc = take(w, b, j, work);
		if (rc != 0) {
			job_free(j);
			jobd_seterr(err, errlen, rc, "out of memory");
			goto out;
		}
	}
out:
	for (size_t i = 0; i < n; i++)
		job_clear(&jobs[i]);
	free(jobs);
	return rc;
}

static void
free_claimed(struct batch *b)
{
	for (size_t i = 0; i < b->nclaimed; i++)
		job_free(b->claimed[i]);
	free(b->claimed);
	b->claimed = NULL;
	b->nclaimed = b->capclaimed = 0;
}

static void
finish_op(struct writer_op *op)
{
	if (op->done == NULL) {
		writer_op_clear(op);
		free(op);
		return;
	}
	op->done(op, op->arg);
}

/* Metrics of a committed op. */
static void
count_op(writer *w, struct writer_op *op)
{
	struct job job;

	switch (op->kind) {
	case WOP_SUBMIT:
		if (!op->replayed)
			metrics_submitted(op->job.type);
		return;
	case WOP_COMPLETE:
		if (job_status_is_final(op->new_status))
			metrics_finished(op->type, op->new_status);
		else if (op->attempt_delta == 0)
			metrics_retried(op->type);
		return;
	case WOP_CANCEL:
		/* Rare: look the type up (committed, so readers see it). */
		job_init(&job);
		if (store_get(w->st, op->id, &job, NULL, 0) == 0)
			metrics_finished(job.type, JOB_CANCELLED);
		job_clear(&job);
		return;
	default:
		return;
	}
}

/* One transaction: ops, then a claim.  Takes ownership of the op list. */
static void
run_batch(writer *w, struct writer_op *ops, bool draining)
{
	struct batch b = {.earliest_future = -1};
	struct config *current = config_acquire();
	char err[256] = "";
	int64_t now = clock_now_us();
	int rc, nops = 0;
	int64_t purged[JOB_NSTATUS] = {0}, npurged = 0;
	bool purge = false;

	/* A completion frees its worker as soon as it arrives, whatever
	 * becomes of the commit. */
	b.cfg = current ? current : w->cfg;
	b.draining = draining;
	for (struct writer_op *op = ops; op; op = op->next) {
		nops++;
		if (op->kind == WOP_COMPLETE && !op->counted) {
			count_completion(w, op);
			/* A freed worker, or a type below its cap, may take
			 * what the last claim left queued. */
			b.due = b.due || w->held_back;
		}
	}
	if (w->next_run_at_us >= 0 && w->next_run_at_us <= now)
		w->maybe_due = true; /* waiting rows to promote */

	/* Every commit is fsynced under durability = full, attempt results
	 * and claims too: what it changes is shown (GET, waiters, events)
	 * as soon as it commits, and a power cut must not take back what a
	 * client has seen.  One fsync per batch, whatever it carries. */
	rc = store_set_durable(w->st, true, err, sizeof(err));
	if (rc == 0)
		rc = store_begin(w->st, err, sizeof(err));
	if (rc != 0)
		goto failed;
	for (struct writer_op *op = ops; op; op = op->next) {
		rc = apply_op(w, op, &b, now);
		if (rc != 0) {
			snprintf(err, sizeof(err), "%s", op->err);
			goto failed;
		}
	}
	bool claimed = !draining && (w->maybe_due || b.due);
	if (claimed) {
		rc = claim(w, &b, now, err, sizeof(err));
		if (rc != 0)
			goto failed;
	}
	if (clock_mono_ms() >= w->next_purge_mono_ms) {
		rc = store_purge(w->st, now - w->cfg->store.retention_ms * 1000,
		                 PURGE_CHUNK, purged, err, sizeof(err));
		if (rc != 0)
			goto failed;
		for (int i = 0; i < JOB_NSTATUS; i++) {
			b.delta[i] -= purged[i];
			npurged += purged[i];
		}
		purge = true;
	}
	int64_t commit_us = clock_mono_us();
	rc = store_commit(w->st, err, sizeof(err));
	if (rc != 0)
		goto failed;
	commit_us = clock_mono_us() - commit_us;
	w->avg_commit_ms = 0.8 * w->avg_commit_ms + 0.2 * (double)commit_us / 1e3;

	/* Committed: now the counters, the answers and the work. */
	atomic_store(&w->healthy, true);
	w->retry_at_mono_ms = -1;
	b.delta[JOB_QUEUED] -= (int64_t)b.nclaimed;
	b.delta[JOB_RUNNING] += (int64_t)b.nclaimed;
	for (int i = 0; i < JOB_NSTATUS; i++)
		if (b.delta[i] != 0)
			atomic_fetch_add(&w->counts[i], b.delta[i]);
	metrics_commit_batch((size_t)nops + b.nclaimed);
	if (purge) {
		if (npurged > 0)
			log_info("writer", "purged %lld finished job(s) older "
			         "than the retention", (long long)npurged);
		w->next_purge_mono_ms = clock_mono_ms() +
		    (npurged == PURGE_CHUNK ? 0 : PURGE_INTERVAL_MS);
	}
	if (b.earliest_future >= 0 &&
	    (w->next_run_at_us < 0 || b.earliest_future < w->next_run_at_us))
		w->next_run_at_us = b.earliest_future;
	for (size_t i = 0; i < b.nclaimed; i++)
		type_of(w, b.claimed[i]->type)->running++;
	end_batch_counts(w);
	atomic_fetch_add(&w->inflight, (int64_t)b.nclaimed);
	if (claimed)
		w->held_back = b.held_back;
	if (!claimed) {
		/* Unchanged, or due rows were queued without a claim. */
		w->maybe_due = w->maybe_due || b.due;
	} else if (b.claim_full || b.held_back) {
		w->maybe_due = true;
	} else {
		/* The claim found less than it could take: nothing else is
		 * due now.  Sleep until the earliest future run_at. */
		int64_t next = -1;
		w->maybe_due = false;
		if (store_next_run_at(w->st, &next, err, sizeof(err)) == 0) {
			w->next_run_at_us = next;
			if (next >= 0 && next <= now)
				w->maybe_due = true; /* promoted at the next claim */
		}
	}
	for (struct writer_op *op = ops, *next; op; op = next) {
		next = op->next;
		if (op->rc == 0)
			count_op(w, op);
		if (w->event && op->rc == 0 && !op->replayed &&
		    op->kind != WOP_SUBMIT)
			w->event(op->id, op->status, w->hook_arg);
		if (op->kind == WOP_CANCEL && op->rc == JOBD_ECONFLICT &&
		    op->status == JOB_RUNNING && w->cancel)
			w->cancel(op->id, w->hook_arg);
		finish_op(op);
	}
	for (size_t i = 0; i < b.nclaimed; i++) {
		struct job *j = b.claimed[i];
		metrics_started(j->type);
		metrics_queue_wait_seconds(j->run_at_us < j->started_at_us
		    ? (double)(j->started_at_us - j->run_at_us) / 1e6 : 0);
		if (w->event)
			w->event(j->id, JOB_RUNNING, w->hook_arg);
	}
	if (b.nclaimed > 0 && w->dispatch) {
		w->dispatch(b.claimed, b.nclaimed, w->hook_arg);
		free(b.claimed);
	} else {
		free_claimed(&b);
	}
	config_release(current);
	return;

failed:
	store_rollback(w->st);
	free_claimed(&b);
	end_batch_counts(w);
	w->maybe_due = true; /* whatever the claim saw is undone */
	atomic_store(&w->healthy, false);
	log_err("writer", "transaction of %d operation(s) failed: %s (%s)",
	        nops, err, jobd_strerror(rc));
	if (rc == JOBD_EIO && !w->fatal) {
		/* Policy: a full disk is survivable (503 until space is
		 * freed); an I/O error is not.  After a failed write or fsync
		 * the file's state is unknown, and retrying would pretend the
		 * data were safe ("fsyncgate").  Ask main to exit non-zero so
		 * that systemd restarts jobd on a cleanly reopened store. */
		w->fatal = true;
		kill(getpid(), SIGUSR2);
	}
	/* Nothing of the batch is durable.  Requests get the error (503);
	 * attempt completions are kept and re-applied later: claim fencing
	 * makes them safe to apply once. */
	for (struct writer_op *op = ops, *next; op; op = next) {
		next = op->next;
		if (op->kind == WOP_COMPLETE) {
			op->next = w->pending;
			w->pending = op;
			continue;
		}
		op->rc = rc;
		op->replayed = false;
		snprintf(op->err, sizeof(op->err), "%s", err);
		finish_op(op);
	}
	w->retry_at_mono_ms = clock_mono_ms() + RETRY_AFTER_FAILURE_MS;
	config_release(current);
}

static void
fail_without_store(writer *w, struct writer_op *ops)
{
	while (w->pending != NULL) {
		struct writer_op *op = w->pending;
		w->pending = op->next;
		op->next = ops;
		ops = op;
	}
	for (struct writer_op *op = ops, *next; op; op = next) {
		next = op->next;
		if (op->kind == WOP_COMPLETE)
			count_completion(w, op);
		op->rc = JOBD_EIO;
		op->replayed = false;
		snprintf(op->err, sizeof(op->err), "the store failed with an "
		         "I/O error; jobd is restarting");
		finish_op(op);
	}
}

/*
 * Whether the queued ops may wait for company (DEFER_MS): attempt results
 * only, a backlog to claim from, every worker with at least two claimed
 * jobs left beside them, and not waiting too long already.  They wait in
 * the queue itself, in their order.  Writer thread, w->mu held.
 */
static bool
may_defer(writer *w, int64_t now_mono)
{
	int64_t n = 0;

	if (w->head == NULL || w->stopping || w->draining || w->fatal ||
	    !w->maybe_due)
		return false;
	if (w->deferred_mono_ms >= 0 &&
	    now_mono >= w->deferred_mono_ms + DEFER_MS)
		return false;
	for (const struct writer_op *op = w->head; op; op = op->next)
		if (op->kind != WOP_COMPLETE || op->counted || ++n >= DEFER_MAX)
			return false;
	return atomic_load(&w->inflight) - n >= 2 * w->cfg->workers.threads;
}

static void *
writer_main(void *arg)
{
	writer *w = arg;
	sigset_t set;

	sigfillset(&set);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	pthread_setname_np(pthread_self(), "jobd-writer");

	pthread_mutex_lock(&w->mu);
	for (;;) {
		int64_t now_mono = clock_mono_ms();
		int64_t now = clock_now_us();
		/* After a failed transaction, wait a little before retrying
		 * anything but new requests (a full disk must not spin). */
		bool backoff = w->retry_at_mono_ms >= 0 &&
		    now_mono < w->retry_at_mono_ms;
		bool can_claim = !w->draining && !backoff && !w->fatal &&
		    claim_capacity(w) > 0;
		bool claim_due = can_claim &&
		    (w->maybe_due ||
		     (w->next_run_at_us >= 0 && w->next_run_at_us <= now));
		bool retry_due = w->pending != NULL && !backoff;
		bool purge_due = !backoff && !w->fatal &&
		    now_mono >= w->next_purge_mono_ms;
		if (w->fatal) {
			retry_due = w->pending != NULL;
			if (w->stopping && w->head == NULL && !retry_due)
				break;
		}

		if ((w->head == NULL || may_defer(w, now_mono)) && !retry_due &&
		    !claim_due && !purge_due) {
			if (w->stopping && w->pending == NULL)
				break;
			if (w->stopping && w->pending != NULL &&
			    now_mono >= w->retry_at_mono_ms + 5000) {
				log_err("writer", "giving up on unwritten attempt "
				        "results at shutdown; recovery will requeue "
				        "those jobs");
				break;
			}
			/* Sleep until an op arrives or the next deadline. */
			int64_t deadline = w->next_purge_mono_ms;
			if (w->head != NULL) {
				if (w->deferred_mono_ms < 0)
					w->deferred_mono_ms = now_mono;
				if (w->deferred_mono_ms + DEFER_MS < deadline)
					deadline = w->deferred_mono_ms + DEFER_MS;
			}
			if (backoff && w->retry_at_mono_ms < deadline)
				deadline = w->retry_at_mono_ms;
			if (!w->draining && w->next_run_at_us >= 0 &&
			    claim_capacity(w) > 0) {
				/* µs to ms, rounded up: never wake early. */
				int64_t d = now_mono +
				    (w->next_run_at_us - now + 999) / 1000;
				if (d < deadline)
					deadline = d;
			}
			clock_cond_wait_until(&w->cond, &w->mu, deadline);
			continue;
		}
		struct writer_op *ops = w->head;
		w->head = w->tail = NULL;
		bool draining = w->draining;
		w->deferred_mono_ms = -1;
		pthread_mutex_unlock(&w->mu);

		if (w->fatal) {
			/* After an I/O error the store is not touched again:
			 * every request is answered 503, results are dropped
			 * (recovery requeues those jobs at the next start). */
			fail_without_store(w, ops);
			pthread_mutex_lock(&w->mu);
			continue;
		}

		if (retry_due) {
			/* Re-apply kept completions first, in their order. */
			struct writer_op *rev = NULL, *last;
			while (w->pending) {
				struct writer_op *op = w->pending;
				w->pending = op->next;
				op->next = rev;
				rev = op;
			}
			for (last = rev; last->next; last = last->next)
				;
			last->next = ops;
			ops = rev;
		}
		atomic_store(&w->last_batch_mono_ms, clock_mono_ms());
		run_batch(w, ops, draining);
		atomic_store(&w->last_batch_mono_ms, 0);
		pthread_mutex_lock(&w->mu);
	}
	/* Requests that came while stopping get an answer all the same. */
	struct writer_op *ops = w->head;
	w->head = w->tail = NULL;
	pthread_mutex_unlock(&w->mu);
	for (struct writer_op *op = ops, *next; op; op = next) {
		next = op->next;
		op->rc = JOBD_EBUSY;
		snprintf(op->err, sizeof(op->err), "jobd is shutting down");
		finish_op(op);
	}
	while (w->pending) {
		struct writer_op *op = w->pending;
		w->pending = op->next;
		if (op->done == NULL) {
			writer_op_clear(op);
			free(op);
		} else {
			op->rc = JOBD_EBUSY;
			finish_op(op);
		}
	}
	return NULL;
}

int
writer_start(writer *w)
{
	int rc;

	pthread_mutex_lock(&w->mu);
	w->started = true;
	pthread_mutex_unlock(&w->mu);
	rc = pthread_create(&w->thread, NULL, writer_main, w);
	if (rc != 0) {
		pthread_mutex_lock(&w->mu);
		w->started = false;
		pthread_mutex_unlock(&w->mu);
		return JOBD_ESYS;
	}
	return 0;
}

void
writer_stop(writer *w)
{
	bool started;

	pthread_mutex_lock(&w->mu);
	started = w->started;
	w->stopping = true;
	w->draining = true;
	pthread_cond_signal(&w->cond);
	pthread_mutex_unlock(&w->mu);
	if (started)
		pthread_join(w->thread, NULL);
}
