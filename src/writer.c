/*
 * writer.c - the one store writer (group commit, claims, completions).
 *
 * The loop: wait until there is an op, or a claim may find work (an idle
 * worker and a job due), or the purge is due; take every waiting op; apply
 * them all plus one claim in one BEGIN IMMEDIATE transaction; commit; then
 * report outcomes (done callbacks), publish state changes and hand claimed
 * jobs to the workers.  Counters change only once a commit has succeeded.
 *
 * LOCKING: w->mu guards the op queue (head, tail), the start list (starts,
 * and every op's start_queued, start_skip, start_next), stopping, exited,
 * draining, stop_mono_ms and the wake condition w->cond.  Everything else (counters,
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
#include "batch.h"
#include "intake.h"
#include "log.h"
#include "metrics.h"
#include "sched.h"
#include "stats.h"
#include "writer.h"

#define PURGE_INTERVAL_MS (10 * 60 * 1000)
#define PURGE_CHUNK 1000
#define RETRY_AFTER_FAILURE_MS 200
/* Several nodes: while other nodes' wake-ups cannot reach this one (no
 * LISTEN), an idle writer looks for work this often. */
#define POLL_SHARED_MS 1000
/* At most one wake-up of the other nodes per this many ms (a NOTIFY
 * takes an instance-wide lock at commit); one owed is sent after it. */
#define NOTIFY_GAP_MS 5
/* At shutdown, attempt results the store cannot take (a full disk) are
 * given up this long after writer_stop(): recovery requeues those jobs. */
#define STOP_GIVE_UP_MS 5000
/*
 * Starts of attempts claimed ahead wait up to this long for a batch to
 * ride with (most attempts end before, and their end says they started):
 * a daemon killed meanwhile gives those attempts back (not counted).
 */
#define START_DEFER_MS 10

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
	writer_change_fn change;
	void *hook_arg;
	void (*outbox_hook)(void *arg);  /* set before start */
	void *outbox_arg;

	pthread_t thread;
	pthread_mutex_t mu;
	pthread_cond_t cond;
	struct writer_op *head, *tail; /* mu */
	struct writer_op *starts;      /* mu: attempts started, to record */
	int64_t starts_mono_ms;        /* mu: when the oldest of them came */
	bool stopping;                 /* mu: flush and exit */
	bool exited;                   /* mu: the thread left its loop */
	bool poked;                    /* mu: look at the queue again */
	int64_t hint_run_at_us;        /* mu: the leader's earliest delayed
	                                  job (writer_due_at), -1 none */
	int64_t stop_mono_ms;          /* mu: when writer_stop() was called */
	bool draining;                 /* mu: no more claims */
	bool started;

	atomic_bool healthy;
	atomic_llong counts[JOB_NSTATUS]; /* jobs per status in the store */
	atomic_llong inflight;         /* claimed, completion not received */
	atomic_llong last_batch_mono_ms; /* start of the batch in progress,
	                                    0 when idle (watchdog) */

	/* writer thread only */
	struct sched sched;            /* the claim state and per-type counts */
	bool fatal;                    /* an I/O error was reported to main */
	bool recovered;                /* start-up recovery has run (a store
	                                  unreachable at start-up: not yet,
	                                  nothing is claimed until it has) */
	int64_t next_run_at_us;        /* earliest future run_at, -1 none */
	int64_t next_purge_mono_ms;
	int64_t retry_at_mono_ms;      /* after a failed commit, -1 none */
	int last_fail_rc;              /* of the last failed batch, 0 none */
	bool shared;                   /* several nodes may use the store */
	int64_t poll_ms;               /* shared store without wake-ups:
	                                  claim at least this often while
	                                  workers are free */
	bool notify_owed;              /* a wake-up of the others waits for
	                                  NOTIFY_GAP_MS to pass */
	int64_t notified_mono_ms;      /* when the last one was sent */
	int64_t claimed_mono_ms;       /* when the last claim ran */
	int64_t fail_logged_mono_ms;   /* when a failed batch was last logged */
	int64_t fail_quiet;            /* failed batches not logged since */
	struct writer_op *pending;     /* completions to re-apply after a
	                                  failed commit */
	int64_t deferred_mono_ms;      /* since when queued results wait for
	                                  company (may_defer), -1 none */
	char boot_id[17];
	uint64_t claim_seq;
	bool pauses_known;             /* sched's pauses are the store's (one
	                                  node: kept up to date by WOP_PAUSE;
	                                  several: read again at each claim) */
};

/* With several nodes only the leader keeps a timer for the delayed jobs
 * (it wakes the others when they come due): no timer per node racing. */
static bool
keeps_timer(writer *w)
{
	return !w->shared || store_is_leader(w->st);
}

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
	batch_jobs_free(op->batch, op->nbatch);
	op->batch = NULL;
	op->nbatch = 0;
	free(op->result);
	free(op->error);
	free(op->progress);
	op->result = NULL;
	op->error = NULL;
	op->progress = NULL;
	for (size_t i = 0; i < op->noutbox_rows && op->outbox_rows; i++)
		free(op->outbox_rows[i].url);
	free(op->outbox_rows);
	op->outbox_rows = NULL;
	op->noutbox_rows = 0;
	for (size_t i = 0; i < op->noutbox_done; i++)
		free(op->outbox_done[i].last_error);
	free(op->outbox_done);
	op->outbox_done = NULL;
	op->noutbox_done = 0;
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
	sched_init(&w->sched, cfg->workers.threads);
	w->next_run_at_us = -1;
	w->retry_at_mono_ms = -1;
	/* Several nodes: other daemons' due work comes as a wake-up from
	 * the store; without one, look once a second. */
	w->shared = store_is_shared(st);
	w->poll_ms = w->shared ? POLL_SHARED_MS : 0;
	w->hint_run_at_us = -1;
	w->notified_mono_ms = -NOTIFY_GAP_MS;
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
	sched_fini(&w->sched);
	free(w);
}

void
writer_set_outbox_hook(writer *w, void (*fn)(void *arg), void *arg)
{
	w->outbox_hook = fn;
	w->outbox_arg = arg;
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
 * A completion frees its worker as soon as it arrives, whatever becomes of
 * its commit: counted once, with the attempt's duration in the averages.
 */
static void
count_completion(writer *w, struct writer_op *op)
{
	if (op->counted)
		return;
	op->counted = true;
	/* The type's row was made when the job was claimed. */
	sched_completed(&w->sched, sched_type(&w->sched, op->type), op->run_us);
	atomic_store(&w->inflight, w->sched.inflight);
	sched_attempt_ended(&w->sched);
}

const char *
writer_boot_id(writer *w)
{
	return w->boot_id;
}

int
writer_recover(writer *w, char *err, size_t errlen)
{
	int requeued = 0, failed = 0, rc;
	int64_t counts[JOB_NSTATUS];

	rc = store_begin(w->st, err, errlen);
	if (rc != 0) {
		atomic_store(&w->healthy, false);
		return rc;
	}
	rc = store_recover(w->st, clock_now_us(), &requeued, &failed, err,
	                   errlen);
	/* Jobs that recovery failed or cancelled, and any other end not
	 * yet seen by their dependents (counts are read again below). */
	if (rc == 0)
		rc = store_deps_sweep(w->st, clock_now_us(), NULL, NULL, err,
		                      errlen);
	if (rc == 0 && keeps_timer(w))
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
	sched_due(&w->sched);
	w->next_purge_mono_ms = clock_mono_ms(); /* purge soon after start */
	w->recovered = true;
	return 0;
}

int
writer_submit(writer *w, struct writer_op *op)
{
	pthread_mutex_lock(&w->mu);
	if (w->exited || !w->started) {
		pthread_mutex_unlock(&w->mu);
		return JOBD_EBUSY;
	}
	if (op->start_queued)
		op->start_skip = true; /* its end says it all */
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
writer_started(writer *w, struct writer_op *op, int64_t started_at_us)
{
	op->started_at_us = started_at_us;
	pthread_mutex_lock(&w->mu);
	if (!w->exited && w->started) {
		op->start_queued = true;
		op->start_skip = false;
		op->start_next = w->starts;
		if (w->starts == NULL) {
			/* The writer's next deadline changes. */
			w->starts_mono_ms = clock_mono_ms();
			pthread_cond_signal(&w->cond);
		}
		w->starts = op;
	}
	pthread_mutex_unlock(&w->mu);
}

void
writer_poke(writer *w)
{
	pthread_mutex_lock(&w->mu);
	w->poked = true;
	pthread_cond_signal(&w->cond);
	pthread_mutex_unlock(&w->mu);
}

void
writer_due_at(writer *w, int64_t run_at_us)
{
	pthread_mutex_lock(&w->mu);
	if (w->hint_run_at_us < 0 || run_at_us < w->hint_run_at_us)
		w->hint_run_at_us = run_at_us;
	pthread_cond_signal(&w->cond);
	pthread_mutex_unlock(&w->mu);
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
writer_set_counts(writer *w, int64_t queued, int64_t waiting,
                  int64_t running)
{
	atomic_store(&w->counts[JOB_QUEUED], queued);
	atomic_store(&w->counts[JOB_WAITING], waiting);
	atomic_store(&w->counts[JOB_RUNNING], running);
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

/* A job that a dependency's end changed (promoted or cancelled). */
struct dep_change {
	char id[UUID_STR_LEN];
	char type[JOB_TYPE_MAX + 1];
	int status;
};

struct dep_batch {
	char (*ended)[UUID_STR_LEN];  /* ids that reached a final status */
	int *ended_status;
	size_t nended, capended;
	struct dep_change *changes;
	size_t nchanges, capchanges;
	bool oom;                     /* a change could not be kept */
	bool foreign;                 /* promoted a type this node does not
	                                 run: the others must hear of it */
};

/* Per-batch changes, applied to the counters only after the commit. */
struct batch {
	int64_t delta[JOB_NSTATUS];   /* per-status count changes */
	bool due;                 /* due rows may have been queued */
	int64_t earliest_future;  /* earliest future run_at made, -1 none */
	struct writer_op **claimed; /* for the workers once committed */
	size_t nclaimed, capclaimed;
	int nops;                 /* ops in the batch */
	bool claimed_any;         /* a claim was made (sched_claimed) */
	bool purge;               /* the purge ran */
	int64_t purged[JOB_NSTATUS]; /* jobs it deleted, per status */
	int64_t asked, got;       /* what the claim asked for and got */
	bool held_back;           /* due rows were left queued (caps, window) */
	bool planned;             /* plan made (on first need) */
	struct sched_plan plan;   /* what may still be claimed */
	char token[CLAIM_TOKEN_MAX]; /* the batch's claim token, "" none yet */
	bool pauses_read;         /* the pause table was read in this batch */
	/* Caps as configured now (SIGHUP may reload handler sections). */
	const struct config *cfg;
	bool draining;            /* no claims at all */
	bool promoted;            /* the timer fired: the claim promoted */
	bool notified;            /* the others were woken (NOTIFY sent) */
	bool notify_owed;         /* they should be, after NOTIFY_GAP_MS */
	/* Dependencies: the jobs that ended in the batch (their dependents
	 * are resolved before the commit) and the jobs that changed so. */
	struct dep_batch deps;
	int64_t now;              /* the batch's time (µs since the epoch) */
};


static void
note_run_at(struct batch *b, int64_t run_at, int64_t now)
{
	if (run_at <= now)
		b->due = true;
	else if (b->earliest_future < 0 || run_at < b->earliest_future)
		b->earliest_future = run_at;
}

/* The batch's claim budget, worked out once, on first need. */
static struct sched_plan *
plan(writer *w, struct batch *b)
{
	if (!b->planned) {
		b->planned = true;
		sched_plan(&w->sched, &b->plan);
	}
	return &b->plan;
}

/* The sched row of handler h's type, with its rate as configured now;
 * NULL when out of memory. */
static struct sched_type *
type_of(writer *w, const struct handler_conf *h)
{
	struct sched_type *t = sched_type(&w->sched, h->name);

	if (t != NULL)
		sched_set_rate(&w->sched, t, h->rate_n, h->rate_period_us);
	return t;
}

struct pause_read {
	writer *w;
	bool failed;
};

static void
on_pause(void *arg, const char *type)
{
	struct pause_read *pr = arg;
	struct sched_type *t = sched_type(&pr->w->sched, type);

	if (t == NULL)
		pr->failed = true;
	else
		t->paused = true;
}

/*
 * Brings the paused types up to date before a claim (or a claim at
 * insert): with several nodes the pause table is read again in every
 * batch that claims (another node may have paused a type: it holds this
 * one from its next claim); with one, once after start or a failed batch
 * (WOP_PAUSE keeps it up to date).
 */
static int
load_pauses(writer *w, struct batch *b, char *err, size_t errlen)
{
	struct pause_read pr = {w, false};
	int rc;

	if (b->pauses_read || (w->pauses_known && !w->shared))
		return 0;
	sched_clear_pauses(&w->sched);
	w->pauses_known = false;
	rc = store_pauses(w->st, on_pause, &pr, err, errlen);
	if (rc == 0 && pr.failed)
		rc = jobd_seterr(err, errlen, JOBD_ENOMEM, "out of memory");
	if (rc != 0)
		return rc;
	b->pauses_read = true;
	w->pauses_known = true;
	return 0;
}

/*
 * Whether a job of this type may be claimed now (a configured handler,
 * not paused, within its cap, its rate and the claim-ahead window); when
 * it may, it is counted in the batch.
 */
static bool
may_take(writer *w, struct batch *b, const char *type)
{
	const struct handler_conf *h = config_handler(b->cfg, type);
	struct sched_type *t = h != NULL ? type_of(w, h) : NULL;

	return h != NULL && t != NULL &&
	       sched_may_take(&w->sched, plan(w, b), t, h->concurrency);
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

/*
 * A claimed job (moved out of j) in a new WOP_COMPLETE op for the workers:
 * *out, or JOBD_ENOMEM (j is left as it was).
 */
static int
claimed_op(struct job *j, struct writer_op **out)
{
	struct writer_op *op = malloc(sizeof(*op));

	if (op == NULL)
		return JOBD_ENOMEM;
	writer_op_init(op, WOP_COMPLETE);
	job_move(&op->job, j);
	memcpy(op->id, op->job.id, sizeof(op->id));
	memcpy(op->type, op->job.type, sizeof(op->type));
	memcpy(op->claim, op->job.claim, sizeof(op->claim));
	op->started_at_us = -1;
	*out = op;
	return 0;
}

static void
claimed_op_free(struct writer_op *op)
{
	writer_op_clear(op);
	free(op);
}

/*
 * Hands a claimed op, counted by may_take, to the batch's claimed list.  A
 * job that goes to an idle worker starts at once: its start is written
 * with the claim (attempt counted); one claimed ahead counts from when a
 * worker takes it (writer_started).  idle: whether it went to one (asked
 * before may_take counted it).
 */
static int
take(writer *w, struct batch *b, struct writer_op *op, bool idle,
     int64_t now, char *err, size_t errlen)
{
	if (b->nclaimed == b->capclaimed) {
		size_t cap = b->capclaimed ? b->capclaimed * 2 : 16;
		struct writer_op **c = realloc(b->claimed, cap * sizeof(*c));
		if (c == NULL)
			return jobd_seterr(err, errlen, JOBD_ENOMEM,
			                   "out of memory");
		b->claimed = c;
		b->capclaimed = cap;
	}
	if (idle && !op->job.attempt_started) {
		int rc = store_start(w->st, op->id, op->claim, now, err,
		                     errlen);
		if (rc != 0)
			return rc;
	}
	op->prestarted = idle;
	b->claimed[b->nclaimed++] = op;
	return 0;
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
	struct job j;
	struct writer_op *c = NULL;
	bool idle;
	int rc;

	*taken = false;
	if (b->draining || w->sched.state != SCHED_QUIET || b->due ||
	    op->job.run_at_us > now)
		return 0;
	rc = load_pauses(w, b, op->err, sizeof(op->err));
	if (rc != 0)
		return rc;
	idle = sched_next_is_idle(plan(w, b));
	if (!may_take(w, b, op->job.type))
		return 0;
	if (job_copy(&j, &op->job) != 0)
		return JOBD_ENOMEM;
	j.status = JOB_RUNNING;
	j.attempt = 1;
	j.started_at_us = now;
	/* To an idle worker: its start goes with the insert (one row write
	 * instead of an insert and an update). */
	j.attempt_started = idle;
	snprintf(j.claim, sizeof(j.claim), "%s", batch_token(w, b));
	rc = claimed_op(&j, &c);
	job_clear(&j);
	if (rc != 0)
		return rc;
	rc = store_insert(w->st, &c->job, op->err, sizeof(op->err));
	if (rc == 0)
		rc = take(w, b, c, idle, now, op->err, sizeof(op->err));
	if (rc != 0)
		claimed_op_free(c); /* not inserted, or the batch fails */
	else
		*taken = true;
	return rc;
}

/* The end of a job in this batch, whose dependents are resolved before
 * the commit (deps_resolve). */
static int
dep_ended(struct batch *b, const char *id, int status)
{
	struct dep_batch *d = &b->deps;

	if (d->nended == d->capended) {
		size_t cap = d->capended ? d->capended * 2 : 16;
		char (*ids)[UUID_STR_LEN] = realloc(d->ended, cap * sizeof(*ids));
		if (ids == NULL)
			return JOBD_ENOMEM;
		d->ended = ids;
		int *st = realloc(d->ended_status, cap * sizeof(*st));
		if (st == NULL)
			return JOBD_ENOMEM;
		d->ended_status = st;
		d->capended = cap;
	}
	snprintf(d->ended[d->nended], UUID_STR_LEN, "%s", id);
	d->ended_status[d->nended++] = status;
	return 0;
}

/* store_dep_fn: a job a dependency's end promoted or cancelled, counted
 * in the batch (its event and metrics after the commit). */
static void
dep_changed(void *arg, const char *id, const char *type, int status,
            int64_t run_at_us)
{
	struct batch *b = arg;
	struct dep_batch *d = &b->deps;

	b->delta[JOB_WAITING]--;
	b->delta[status]++;
	if (status == JOB_QUEUED) {
		note_run_at(b, run_at_us, b->now);
		if (config_handler(b->cfg, type) == NULL)
			d->foreign = true;
	}
	if (d->nchanges == d->capchanges) {
		size_t cap = d->capchanges ? d->capchanges * 2 : 16;
		struct dep_change *c = realloc(d->changes, cap * sizeof(*c));
		if (c == NULL) {
			d->oom = true;
			return;
		}
		d->changes = c;
		d->capchanges = cap;
	}
	struct dep_change *c = &d->changes[d->nchanges++];
	snprintf(c->id, sizeof(c->id), "%s", id);
	snprintf(c->type, sizeof(c->type), "%s", type);
	c->status = status;
}

/* Resolves the dependents of the jobs that ended in the batch. */
static int
deps_resolve(writer *w, struct batch *b, int64_t now, char *err,
             size_t errlen)
{
	struct dep_batch *d = &b->deps;
	const char **ids;
	int rc;

	if (d->nended == 0)
		return 0;
	ids = malloc(d->nended * sizeof(*ids));
	if (ids == NULL)
		return jobd_seterr(err, errlen, JOBD_ENOMEM, "out of memory");
	for (size_t i = 0; i < d->nended; i++)
		ids[i] = d->ended[i];
	rc = store_deps_resolve(w->st, ids, d->ended_status, d->nended, now,
	                        dep_changed, b, err, errlen);
	free(ids);
	if (rc == 0 && d->oom)
		rc = jobd_seterr(err, errlen, JOBD_ENOMEM, "out of memory");
	return rc;
}

static void
deps_free(struct dep_batch *d)
{
	free(d->ended);
	free(d->ended_status);
	free(d->changes);
	memset(d, 0, sizeof(*d));
}

/* A submission with depends_on: inserted, then linked to its
 * dependencies, which say whether it waits, is queued or is cancelled at
 * once (never claimed as it is inserted). */
static int
submit_dependent(writer *w, struct writer_op *op, struct batch *b,
                 int64_t now)
{
	int status = JOB_QUEUED;
	int rc = store_insert(w->st, &op->job, op->err, sizeof(op->err));

	if (rc == 0)
		rc = store_deps_link(w->st, &op->job, now, &status, op->err,
		                     sizeof(op->err));
	if (rc == JOBD_ECONFLICT || rc == JOBD_ERANGE) {
		op->rc = rc;
		return 0;
	}
	if (rc != 0)
		return rc;
	op->status = status;
	b->delta[status]++;
	if (status == JOB_QUEUED)
		note_run_at(b, op->job.run_at_us, now);
	return 0;
}

/* A submission, inside the transaction: the intake rules, then the insert
 * (claimed at once when a worker may take it). */
static int
apply_submit(writer *w, struct writer_op *op, struct batch *b, int64_t now)
{
	struct intake_prev prev;
	bool taken;
	int verdict, rc;

	rc = intake_check(w->st, &op->job,
	                  atomic_load(&w->counts[JOB_QUEUED]) +
	                  b->delta[JOB_QUEUED] +
	                  atomic_load(&w->counts[JOB_WAITING]) +
	                  b->delta[JOB_WAITING], w->cfg->store.max_queued,
	                  &verdict, &prev, op->err, sizeof(op->err));
	if (rc != 0)
		return rc;
	switch (verdict) {
	case INTAKE_REPLAY:
		memcpy(op->job.id, prev.id, sizeof(prev.id));
		op->status = prev.status;
		op->replayed = true;
		return 0;
	case INTAKE_CONFLICT:
		op->rc = JOBD_ECONFLICT;
		return 0;
	case INTAKE_FULL:
		op->rc = JOBD_EFULL;
		return 0;
	}
	/* The answer says "queued" either way: accepted, not run. */
	op->status = JOB_QUEUED;
	if (op->job.depends_on != NULL)
		return submit_dependent(w, op, b, now);
	rc = insert_claimed(w, op, b, now, &taken);
	if (rc == 0 && !taken)
		rc = store_insert(w->st, &op->job, op->err, sizeof(op->err));
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
}

/*
 * A batch's earlier jobs (its key K named an earlier batch, prev, with the
 * same body): their ids and statuses in op->batch.  A batch whose later
 * jobs were purged (finished long before its first one) cannot be
 * replayed: a conflict that says so.
 */
static int
replay_batch(writer *w, struct writer_op *op, const struct intake_prev *prev)
{
	const char *key = op->batch[0].idem_key;
	char k[BATCH_KEY_MAX + 1];
	struct job j;
	int rc;

	memcpy(op->batch[0].id, prev->id, sizeof(prev->id));
	op->batch[0].status = prev->status;
	for (size_t i = 1; i < op->nbatch; i++) {
		batch_element_key(key, i, prev->id, k, sizeof(k));
		job_init(&j);
		rc = store_find_idem(w->st, k, &j, op->err, sizeof(op->err));
		if (rc == JOBD_ENOTFOUND) {
			jobd_seterr(op->err, sizeof(op->err), JOBD_ECONFLICT,
			            "Idempotency-Key names a batch whose job "
			            "#%zu was purged after the retention", i);
			op->rc = JOBD_ECONFLICT;
			return 0;
		}
		if (rc != 0)
			return rc;
		memcpy(op->batch[i].id, j.id, sizeof(j.id));
		op->batch[i].status = j.status;
		job_clear(&j);
	}
	op->replayed = true;
	return 0;
}

/*
 * A batch's depends_on, before its first insert: every id named outside
 * the batch must name a job (else the batch is refused: 422 naming the
 * element), then its "#N" references become ids.
 */
static int
batch_deps_check(writer *w, struct writer_op *op)
{
	struct batch_deps d;
	const char **ids;
	size_t missing;
	int rc;

	if (batch_outside_deps(op->batch, op->nbatch, &d) != 0)
		return jobd_seterr(op->err, sizeof(op->err), JOBD_ENOMEM,
		                   "out of memory");
	ids = d.n > 0 ? malloc(d.n * sizeof(*ids)) : NULL;
	if (d.n > 0 && ids == NULL) {
		batch_deps_free(&d);
		return jobd_seterr(op->err, sizeof(op->err), JOBD_ENOMEM,
		                   "out of memory");
	}
	for (size_t i = 0; i < d.n; i++)
		ids[i] = d.ids[i];
	rc = store_deps_missing(w->st, ids, d.n, &missing, op->err,
	                        sizeof(op->err));
	if (rc == 0 && missing < d.n) {
		op->err_element = d.element[missing] + 1;
		jobd_seterr(op->err, sizeof(op->err), JOBD_ERANGE,
		            "\"depends_on\": no job %s", d.ids[missing]);
		op->rc = JOBD_ERANGE;
	}
	free(ids);
	batch_deps_free(&d);
	if (rc == 0 && op->rc == 0 && batch_resolve_refs(op->batch,
	                                                 op->nbatch) != 0)
		rc = jobd_seterr(op->err, sizeof(op->err), JOBD_ENOMEM,
		                 "out of memory");
	return rc;
}

/*
 * A batch, inside the transaction: all of its jobs or none.  Everything
 * that could refuse one of them is decided before the first insert (the
 * key, the queue's room for the whole batch; the jobs' own keys are
 * unique by construction, batch.h), so an insert fails only when the
 * store does, which fails the whole transaction: no savepoint needed, and
 * the other clients' ops in the transaction are untouched by a refusal.
 */
static int
apply_batch(writer *w, struct writer_op *op, struct batch *b, int64_t now)
{
	int64_t queued = atomic_load(&w->counts[JOB_QUEUED]) +
	                 b->delta[JOB_QUEUED] +
	                 atomic_load(&w->counts[JOB_WAITING]) +
	                 b->delta[JOB_WAITING];
	struct intake_prev prev;
	int verdict, rc;

	/* The key (on job 0) and a queue that holds one more job. */
	rc = intake_check(w->st, &op->batch[0], queued +
	                  (int64_t)op->nbatch - 1, w->cfg->store.max_queued,
	                  &verdict, &prev, op->err, sizeof(op->err));
	if (rc != 0)
		return rc;
	switch (verdict) {
	case INTAKE_REPLAY:
		return replay_batch(w, op, &prev);
	case INTAKE_CONFLICT:
		op->rc = JOBD_ECONFLICT;
		return 0;
	case INTAKE_FULL:
		jobd_seterr(op->err, sizeof(op->err), JOBD_EFULL, "the batch "
		            "of %zu jobs does not fit: the queue holds %lld of "
		            "store.max_queued = %lld jobs", op->nbatch,
		            (long long)queued,
		            (long long)w->cfg->store.max_queued);
		op->rc = JOBD_EFULL;
		return 0;
	}
	rc = batch_deps_check(w, op);
	if (rc != 0 || op->rc != 0)
		return rc;
	for (size_t i = 0; i < op->nbatch; i++)
		op->batch[i].status = JOB_QUEUED;
	rc = store_insert_many(w->st, op->batch, op->nbatch, op->err,
	                       sizeof(op->err));
	if (rc != 0)
		/* Fails the transaction (a partial batch must never commit);
		 * a conflict cannot be one job's alone. */
		return rc == JOBD_ECONFLICT ? JOBD_EBUSY : rc;
	for (size_t i = 0; i < op->nbatch; i++) {
		struct job *j = &op->batch[i];
		if (j->depends_on != NULL) {
			/* Its dependencies exist (checked above, or earlier
			 * in this batch): waiting, queued or cancelled. */
			rc = store_deps_link(w->st, j, now, &j->status,
			                     op->err, sizeof(op->err));
			if (rc != 0)
				return rc == JOBD_ERANGE ? JOBD_EBUSY : rc;
		}
		b->delta[j->status]++;
		if (j->status == JOB_QUEUED)
			note_run_at(b, j->run_at_us, now);
	}
	op->status = JOB_QUEUED;
	return 0;
}

/* A cancel or a retry: the store says whether the job could. */
static int
apply_cancel_retry(writer *w, struct writer_op *op, struct batch *b,
                   int64_t now)
{
	int rc;

	if (op->kind == WOP_CANCEL) {
		bool waiting = false;
		rc = store_deps_cancel(w->st, op->id, now, &waiting, op->err,
		                       sizeof(op->err));
		if (rc != 0)
			return rc;
		if (waiting) {
			op->status = JOB_CANCELLED;
			b->delta[JOB_WAITING]--;
			b->delta[JOB_CANCELLED]++;
		} else {
			rc = store_cancel(w->st, op->id, now, &op->status,
			                  op->err, sizeof(op->err));
			if (rc == 0) {
				b->delta[JOB_QUEUED]--;
				b->delta[JOB_CANCELLED]++;
			}
		}
		if (rc == 0 && dep_ended(b, op->id, JOB_CANCELLED) != 0)
			return jobd_seterr(op->err, sizeof(op->err),
			                   JOBD_ENOMEM, "out of memory");
	} else {
		rc = store_retry(w->st, op->id, now, &op->status, op->err,
		                 sizeof(op->err));
		if (rc == 0) {
			b->delta[op->status]--; /* it was failed or cancelled */
			b->delta[JOB_QUEUED]++;
			op->status = JOB_QUEUED;
			b->due = true;
		}
	}
	if (rc == JOBD_ECONFLICT || rc == JOBD_ENOTFOUND) {
		op->rc = rc;
		return 0;
	}
	return rc;
}

/* Pause or resume a type, in the store (for every node and restart) and
 * in the claim policy at once.  A resumed type's queued jobs are due
 * again: this batch claims, and the other nodes are woken. */
static int
apply_pause(writer *w, struct writer_op *op, struct batch *b, int64_t now)
{
	struct sched_type *t;
	int rc = store_set_pause(w->st, op->type, op->pause, now, op->err,
	                         sizeof(op->err));

	if (rc != 0)
		return rc;
	t = sched_type(&w->sched, op->type);
	if (t == NULL)
		return jobd_seterr(op->err, sizeof(op->err), JOBD_ENOMEM,
		                   "out of memory");
	t->paused = op->pause;
	if (!op->pause)
		b->due = true;
	return 0;
}

/* The end of an attempt (or a claim given back), fenced by its claim:
 * sent; its answer is settled after store_flush() (settle_complete). */
static int
apply_complete(writer *w, struct writer_op *op, int64_t now)
{
	struct store_completion c = {
		.id = op->id, .claim = op->claim,
		.status = op->new_status,
		.run_at_us = op->run_at_us,
		.finished_at_us = op->finished_at_us,
		.result = op->result, .error = op->error,
		.has_exit_code = op->has_exit_code,
		.exit_code = op->exit_code,
		.output_truncated = op->output_truncated,
		.started_at_us = op->started_at_us,
		.now_us = now,
		.progress = op->progress,
	};

	op->answer.rc = 0;
	op->answer.status = -1;
	op->answer.dependents = false;
	if (op->attempt_delta < 0) /* never started, or shutdown */
		return store_put_back_later(w->st, op->id, op->claim, now,
		                            &op->answer, op->err,
		                            sizeof(op->err));
	return store_complete_later(w->st, &c, &op->answer, op->err,
	                            sizeof(op->err));
}

/* What the store decided for an attempt's end (a cancel may override a
 * failure; a stale claim changes nothing). */
static void
settle_complete(writer *w, struct writer_op *op, struct batch *b,
                int64_t now)
{
	int status = op->answer.status;

	if (op->answer.rc == JOBD_ESTALE || status < 0) {
		log_warn("writer", "discarding a stale attempt result: job %s: "
		         "claim %s is no longer current", op->id, op->claim);
		op->rc = JOBD_ESTALE;
		return;
	}
	op->status = status;
	b->delta[JOB_RUNNING]--;
	b->delta[status]++;
	if (status == JOB_QUEUED)
		note_run_at(b, op->attempt_delta < 0 ? now : op->run_at_us, now);
}

/* Applies one op inside the transaction.  Returns a fatal store error
 * (EIO, EFULL, ENOMEM, EBUSY, EUNAVAIL) that aborts the batch, else 0
 * (the op's own outcome in op->rc). */
static int
apply_op(writer *w, struct writer_op *op, struct batch *b, int64_t now)
{
	op->rc = 0;
	op->err[0] = '\0';
	switch (op->kind) {
	case WOP_SUBMIT: {
		int rc;
		if (op->schedule.unless_paused) {
			/* A tick: none while its schedule is paused (the
			 * store decides a pause racing the tick). */
			struct store_schedule guard = {.cursor_ms = -1,
			    .last_run_ms = -1, .paused = -1,
			    .unless_paused = true};
			memcpy(guard.name, op->schedule.name,
			       sizeof(guard.name));
			rc = store_schedule_put(w->st, &guard, op->err,
			                        sizeof(op->err));
			if (rc == JOBD_ECONFLICT) {
				op->rc = JOBD_ESTALE;
				return 0;
			}
			if (rc != 0)
				return rc;
		}
		rc = apply_submit(w, op, b, now);
		if (rc != 0 || op->rc != 0 || op->schedule.name[0] == '\0')
			return rc;
		memcpy(op->schedule.last_job_id, op->job.id, UUID_STR_LEN);
		return store_schedule_put(w->st, &op->schedule, op->err,
		                          sizeof(op->err));
	}
	case WOP_SCHEDULE:
		return store_schedule_put(w->st, &op->schedule, op->err,
		                          sizeof(op->err));
	case WOP_CANCEL:
	case WOP_RETRY:
		return apply_cancel_retry(w, op, b, now);
	case WOP_BATCH:
		return apply_batch(w, op, b, now);
	case WOP_COMPLETE:
		return apply_complete(w, op, now);
	case WOP_PAUSE:
		return apply_pause(w, op, b, now);
	case WOP_PROGRESS: /* a stale claim changes nothing */
		return store_progress(w->st, op->id, op->claim, op->progress,
		                      op->err, sizeof(op->err));
	case WOP_OUTBOX_CLAIM:
		op->outbox_req.claim = op->claim;
		return store_outbox_claim(w->st, &op->outbox_req,
		                          &op->outbox_rows, &op->noutbox_rows,
		                          &op->outbox_next_us, op->err,
		                          sizeof(op->err));
	case WOP_OUTBOX_DONE:
		for (size_t i = 0; i < op->noutbox_done; i++) {
			const struct writer_outbox_done *d = &op->outbox_done[i];
			int rc = store_outbox_done(w->st, d->id, d->claim,
			                           d->status, d->attempts,
			                           d->next_at_us, d->last_error,
			                           op->err, sizeof(op->err));
			if (rc != 0)
				return rc;
		}
		return 0;
	}
	return 0;
}

/*
 * Claims due jobs for idle workers, of the configured types below their
 * cap (a type whose handler a reload removed stays queued).
 */
static int
claim(writer *w, struct batch *b, int64_t now, char *err, size_t errlen)
{
	const char **included = NULL;
	size_t nincluded = 0;
	struct job *jobs = NULL;
	size_t n = 0;
	const struct config *cfg = b->cfg;
	int rc = 0;

	b->asked = plan(w, b)->slots;
	/* Got all it asked for: look again when there is room.  The
	 * leader of several nodes still promotes what its timer says has
	 * come due (a claim of none), for the others to take. */
	if (b->asked <= 0 && !(w->shared && b->promoted))
		goto out;
	rc = load_pauses(w, b, err, errlen);
	if (rc != 0)
		goto out;
	sched_forget_held(&w->sched);
	included = malloc((cfg->nhandlers ? cfg->nhandlers : 1) *
	                  sizeof(*included));
	if (included == NULL) {
		rc = jobd_seterr(err, errlen, JOBD_ENOMEM, "out of memory");
		goto out;
	}
	for (size_t i = 0; i < cfg->nhandlers; i++) {
		const struct handler_conf *h = &cfg->handlers[i];
		struct sched_type *t = type_of(w, h);
		if (t != NULL && sched_claimable(&w->sched, t, h->concurrency))
			included[nincluded++] = h->name;
		else if (t == NULL || !t->paused)
			b->held_back = true; /* (a pause holds every node:
			                        nothing to look at again) */
	}
	struct store_claim_req req = {
		.now_us = now, .limit = b->asked > 0 ? (size_t)b->asked : 0,
		.included = included, .nincluded = nincluded,
		.claim = batch_token(w, b),
	};
	rc = store_claim(w->st, &req, &jobs, &n, err, errlen);
	if (rc != 0 || n == 0)
		goto out;
	for (size_t i = 0; i < n; i++) {
		struct writer_op *op;
		bool idle = sched_next_is_idle(plan(w, b));
		if (!may_take(w, b, jobs[i].type)) {
			/* Over the type's cap, or too slow to claim ahead:
			 * put the row back as it was. */
			rc = store_put_back_later(w->st, jobs[i].id, req.claim,
			                          now, NULL, err, errlen);
			if (rc != 0)
				goto out;
			/* Look again when a worker frees up or a type falls
			 * below its cap: both come as completions. */
			b->held_back = true;
			continue;
		}
		rc = claimed_op(&jobs[i], &op);
		if (rc != 0) {
			jobd_seterr(err, errlen, rc, "out of memory");
			goto out;
		}
		rc = take(w, b, op, idle, now, err, errlen);
		if (rc != 0) {
			claimed_op_free(op);
			goto out;
		}
		b->got++;
	}
out:
	for (size_t i = 0; i < n; i++)
		job_clear(&jobs[i]);
	free(jobs);
	free(included);
	return rc;
}

static void
free_claimed(struct batch *b)
{
	for (size_t i = 0; i < b->nclaimed; i++)
		claimed_op_free(b->claimed[i]);
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
		if (!op->replayed) {
			metrics_submitted(op->job.type);
			stats_submitted();
			if (op->status == JOB_CANCELLED) { /* a dependency */
				metrics_finished(op->job.type, JOB_CANCELLED);
				stats_finished();
			}
		}
		return;
	case WOP_BATCH:
		for (size_t i = 0; i < op->nbatch && !op->replayed; i++) {
			metrics_submitted(op->batch[i].type);
			stats_submitted();
			if (op->batch[i].status == JOB_CANCELLED) {
				/* a dependency, as for WOP_SUBMIT */
				metrics_finished(op->batch[i].type,
				                 JOB_CANCELLED);
				stats_finished();
			}
		}
		return;
	case WOP_COMPLETE:
		if (job_status_is_final(op->status)) {
			metrics_finished(op->type, op->status);
			stats_finished();
		} else if (op->attempt_delta == 0)
			metrics_retried(op->type);
		return;
	case WOP_CANCEL:
		stats_finished();
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

/*
 * Records the starts of attempts (a start list taken from w->starts): those
 * whose end came in the same take are skipped.  A start that is no longer
 * current (the attempt's end was written first) changes nothing.
 */
static int
apply_starts(writer *w, struct writer_op *starts, char *err, size_t errlen)
{
	for (struct writer_op *op = starts; op; op = op->start_next) {
		if (op->start_skip)
			continue;
		int rc = store_start(w->st, op->id, op->claim,
		                     op->started_at_us, err, errlen);
		if (rc != 0 && rc != JOBD_ESTALE)
			return rc;
	}
	return 0;
}

/*
 * Several nodes: whether this commit leaves due work this node cannot
 * take (rows made due and a claim that did not take them all: no claim,
 * a claim that got all it asked for, types held back, or a promotion
 * whose rows may be of types other nodes run), and then tells the others
 * with one NOTIFY in the transaction, at most one per NOTIFY_GAP_MS (one
 * owed is sent by a later batch).
 */
static int
wake_others(writer *w, struct batch *b, char *err, size_t errlen)
{
	bool all_taken = b->claimed_any && b->asked > 0 &&
	    b->got < b->asked && !b->held_back && !b->promoted;
	bool leaves = w->shared && (((b->due || b->promoted) && !all_taken) ||
	                            b->deps.foreign);

	if (!leaves && !w->notify_owed)
		return 0;
	if (clock_mono_ms() < w->notified_mono_ms + NOTIFY_GAP_MS) {
		b->notify_owed = true;
		return 0;
	}
	b->notified = true;
	return store_notify_work(w->st, err, errlen);
}

/*
 * The transaction of a batch: starts, ops, a claim, the purge when due,
 * then the commit.  Returns 0, or the error that rolls it back (err says
 * why).  Every commit is durable as configured (under durability = full
 * fsynced, attempt results and claims too): what it changes is shown
 * (GET, waiters, events) as soon as it commits, and a power cut must not
 * take back what a client has seen.  One fsync per batch, whatever it
 * carries.
 */
static int
write_batch(writer *w, struct batch *b, struct writer_op *ops,
            struct writer_op *starts, int64_t now, char *err, size_t errlen)
{
	int rc = store_begin(w->st, err, errlen);

	if (rc == 0)
		rc = apply_starts(w, starts, err, errlen);
	if (rc != 0)
		return rc;
	for (struct writer_op *op = ops; op; op = op->next) {
		rc = apply_op(w, op, b, now);
		if (rc != 0) {
			snprintf(err, errlen, "%s", op->err);
			return rc;
		}
	}
	/* The answers of the attempts' ends (one round trip for all of
	 * them with PostgreSQL), before the claim counts what is free. */
	rc = store_flush(w->st, err, errlen);
	if (rc != 0)
		return rc;
	for (struct writer_op *op = ops; op; op = op->next)
		if (op->kind == WOP_COMPLETE && op->rc == 0) {
			settle_complete(w, op, b, now);
			if (op->rc == 0 && job_status_is_final(op->status) &&
			    op->answer.dependents &&
			    dep_ended(b, op->id, op->status) != 0)
				return jobd_seterr(err, errlen, JOBD_ENOMEM,
				                   "out of memory");
		}
	/* Their dependents, in the same transaction (promoted rows are
	 * claimed below like any due row). */
	rc = deps_resolve(w, b, now, err, errlen);
	if (rc != 0)
		return rc;
	b->claimed_any = !b->draining &&
	    (sched_wants_claim(&w->sched) || b->due);
	if (b->claimed_any && (rc = claim(w, b, now, err, errlen)) != 0)
		return rc;
	rc = wake_others(w, b, err, errlen);
	if (rc != 0)
		return rc;
	if (clock_mono_ms() >= w->next_purge_mono_ms && keeps_timer(w)) {
		/* Dependencies that ended unseen (rescued on a dead node)
		 * are resolved first: a finished job is purged only once
		 * nothing waits on it. */
		rc = store_deps_sweep(w->st, now, dep_changed, b, err, errlen);
		if (rc == 0 && b->deps.oom)
			rc = jobd_seterr(err, errlen, JOBD_ENOMEM,
			                 "out of memory");
		if (rc != 0)
			return rc;
		rc = store_purge(w->st, now - w->cfg->store.retention_ms * 1000,
		                 PURGE_CHUNK, b->purged, err, errlen);
		if (rc != 0)
			return rc;
		b->purge = true;
	}
	int64_t commit_us = clock_mono_us();
	rc = store_commit(w->st, err, errlen);
	if (rc != 0)
		return rc;
	/* The claim-ahead window covers the commit's fsync. */
	sched_committed(&w->sched, clock_mono_us() - commit_us);
	metrics_store_commit(w->cfg->store.durability == DURABILITY_FULL);
	return 0;
}

void
writer_set_change_hook(writer *w, writer_change_fn change)
{
	w->change = change;
}

/* A committed op's state changes, for GET /events. */
static void
op_changes(writer *w, const struct writer_op *op)
{
	if (w->change == NULL || op->rc != 0 || op->replayed)
		return;
	switch (op->kind) {
	case WOP_SUBMIT:
		w->change(op->job.id, op->job.type, op->status,
		          op->job.attempt, w->hook_arg);
		return;
	case WOP_BATCH:
		for (size_t i = 0; i < op->nbatch; i++)
			w->change(op->batch[i].id, op->batch[i].type,
			          op->batch[i].status, op->batch[i].attempt,
			          w->hook_arg);
		return;
	case WOP_COMPLETE:
		w->change(op->id, op->job.type, op->status,
		          op->attempt_delta < 0 ? -1 : op->job.attempt,
		          w->hook_arg);
		return;
	case WOP_CANCEL:
		w->change(op->id, "", op->status, -1, w->hook_arg);
		return;
	case WOP_RETRY:
		w->change(op->id, "", op->status, 0, w->hook_arg);
		return;
	default:
		return;
	}
}

/* After the commit: the counters, the claim state, the answers, the
 * state changes and the work. */
static void
publish_batch(writer *w, struct batch *b, struct writer_op *ops,
              int64_t now)
{
	int64_t npurged = 0;
	char err[256];

	atomic_store(&w->healthy, true);
	w->retry_at_mono_ms = -1;
	w->last_fail_rc = 0;
	for (int i = 0; i < JOB_NSTATUS; i++) {
		b->delta[i] -= b->purged[i];
		npurged += b->purged[i];
	}
	b->delta[JOB_QUEUED] -= (int64_t)b->nclaimed;
	b->delta[JOB_RUNNING] += (int64_t)b->nclaimed;
	for (int i = 0; i < JOB_NSTATUS; i++)
		if (b->delta[i] != 0)
			atomic_fetch_add(&w->counts[i], b->delta[i]);
	metrics_commit_batch((size_t)b->nops + b->nclaimed);
	if (b->purge) {
		if (npurged > 0)
			log_info("writer", "purged %lld finished job(s) older "
			         "than the retention", (long long)npurged);
		w->next_purge_mono_ms = clock_mono_ms() +
		    (npurged == PURGE_CHUNK ? 0 : PURGE_INTERVAL_MS);
	}
	if (b->notified) {
		metrics_store_notify();
		w->notify_owed = false;
		w->notified_mono_ms = clock_mono_ms();
	} else if (b->notify_owed) {
		w->notify_owed = true;
	}
	if (b->earliest_future >= 0 && keeps_timer(w) &&
	    (w->next_run_at_us < 0 || b->earliest_future < w->next_run_at_us))
		w->next_run_at_us = b->earliest_future;
	sched_batch_end(&w->sched, true);
	atomic_store(&w->inflight, w->sched.inflight);
	if (b->claimed_any)
		w->claimed_mono_ms = clock_mono_ms();
	if (!b->claimed_any) {
		if (b->due) /* due rows were queued without a claim */
			sched_due(&w->sched);
	} else {
		sched_claimed(&w->sched, b->asked, b->got, b->held_back);
	}
	if (b->claimed_any && (w->sched.state == SCHED_QUIET ||
	    (w->next_run_at_us >= 0 && w->next_run_at_us <= now))) {
		/* The claim promoted every row whose run_at has come: the
		 * timer moves to the earliest future one.  (Left in the past
		 * while rows are held back, it would make the writer claim in
		 * a loop of empty transactions.)  With several nodes, rows
		 * another node was promoting at that moment were skipped:
		 * looked at again a second later. */
		int64_t next = -1;
		if (!keeps_timer(w))
			w->next_run_at_us = -1;
		else if (store_next_run_at(w->st, &next, err, sizeof(err)) == 0)
			w->next_run_at_us = next > now ? next
			    : w->shared && next >= 0 ? now + 1000000 : -1;
	}
	bool finals = false; /* outbox rows may have come: callback.c */
	for (struct writer_op *op = ops; op; op = op->next) {
		finals = finals || (op->rc == 0 &&
		                    job_status_is_final(op->status));
		/* A batch's elements each have their own status: one
		 * cancelled as it was inserted (a dependency had failed) is
		 * final while the batch as a whole says queued. */
		for (size_t i = 0; op->kind == WOP_BATCH && op->rc == 0 &&
		     !op->replayed && !finals && i < op->nbatch; i++)
			finals = job_status_is_final(op->batch[i].status);
	}
	for (size_t i = 0; i < b->deps.nchanges; i++)
		finals = finals || job_status_is_final(b->deps.changes[i].status);
	if (finals && w->outbox_hook)
		w->outbox_hook(w->outbox_arg);
	for (struct writer_op *op = ops, *next; op; op = next) {
		next = op->next;
		if (op->rc == 0)
			count_op(w, op);
		op_changes(w, op);
		if (w->event && op->rc == 0 && !op->replayed &&
		    op->kind != WOP_SUBMIT && op->kind != WOP_PAUSE &&
		    op->kind != WOP_BATCH && op->kind != WOP_SCHEDULE &&
		    op->kind != WOP_PROGRESS &&
		    op->kind != WOP_OUTBOX_CLAIM && op->kind != WOP_OUTBOX_DONE)
			w->event(op->id, op->status, w->hook_arg);
		if (op->kind == WOP_CANCEL && op->rc == JOBD_ECONFLICT &&
		    op->status == JOB_RUNNING && w->cancel)
			w->cancel(op->id, w->hook_arg);
		finish_op(op);
	}
	for (size_t i = 0; i < b->deps.nchanges; i++) {
		struct dep_change *c = &b->deps.changes[i];
		if (c->status == JOB_CANCELLED) {
			metrics_finished(c->type, JOB_CANCELLED);
			stats_finished();
		}
		if (w->event)
			w->event(c->id, c->status, w->hook_arg);
		if (w->change)
			w->change(c->id, c->type, c->status, 0, w->hook_arg);
	}
	for (size_t i = 0; i < b->nclaimed; i++) {
		struct job *j = &b->claimed[i]->job;
		metrics_started(j->type);
		metrics_queue_wait_seconds(j->run_at_us < j->started_at_us
		    ? (double)(j->started_at_us - j->run_at_us) / 1e6 : 0);
		if (w->event)
			w->event(j->id, JOB_RUNNING, w->hook_arg);
		if (w->change)
			w->change(j->id, j->type, JOB_RUNNING, j->attempt,
			          w->hook_arg);
	}
	if (b->nclaimed > 0 && w->dispatch) {
		w->dispatch(b->claimed, b->nclaimed, w->hook_arg);
		free(b->claimed);
	} else {
		free_claimed(b);
	}
}

/*
 * A rolled-back batch: nothing of it is durable.  Requests get the error
 * (503); attempt completions are kept and re-applied later (claim fencing
 * makes them safe to apply once).  An I/O error is fail-stop.
 */
static void
fail_batch(writer *w, struct batch *b, struct writer_op *ops,
           struct writer_op *starts, int rc, const char *err)
{
	store_rollback(w->st);
	free_claimed(b);
	w->pauses_known = false; /* a pause of the batch is undone */
	sched_batch_end(&w->sched, false);
	sched_due(&w->sched); /* whatever the claim saw is undone */
	atomic_store(&w->healthy, false);
	metrics_store_error(rc);
	/* A store that stays away fails a batch every retry and every
	 * request: the same error is logged at most once a second, with
	 * how many were not (jobd_store_errors_total counts them all). */
	int64_t now_mono = clock_mono_ms();
	if (rc != w->last_fail_rc || now_mono >= w->fail_logged_mono_ms + 1000) {
		char more[64] = "";
		if (w->fail_quiet > 0)
			snprintf(more, sizeof(more), "; %lld more failed in the "
			         "last second", (long long)w->fail_quiet);
		log_err("writer", "transaction of %d operation(s) failed: %s "
		        "(%s)%s", b->nops, err, jobd_strerror(rc), more);
		w->fail_logged_mono_ms = now_mono;
		w->fail_quiet = 0;
	} else {
		w->fail_quiet++;
	}
	w->last_fail_rc = rc;
	if (rc == JOBD_EIO && !w->fatal) {
		/* Policy: a full disk is survivable (503 until space is
		 * freed); an I/O error is not.  After a failed write or fsync
		 * the file's state is unknown, and retrying would pretend the
		 * data were safe ("fsyncgate").  Ask main to exit non-zero so
		 * that systemd restarts jobd on a cleanly reopened store. */
		w->fatal = true;
		kill(getpid(), SIGUSR2);
	}
	/* The starts go back to the start list (their ops are still their
	 * workers', or kept here as completions): written with the next
	 * batch that commits. */
	pthread_mutex_lock(&w->mu);
	for (struct writer_op *op = starts, *next; op; op = next) {
		next = op->start_next;
		if (op->start_skip)
			continue; /* its end is kept below, and says it all */
		op->start_queued = true;
		op->start_next = w->starts;
		if (w->starts == NULL)
			w->starts_mono_ms = clock_mono_ms();
		w->starts = op;
	}
	pthread_mutex_unlock(&w->mu);
	for (struct writer_op *op = ops, *next; op; op = next) {
		next = op->next;
		if (op->kind == WOP_COMPLETE) {
			op->next = w->pending;
			w->pending = op;
			continue;
		}
		op->replayed = false;
		if (rc == JOBD_ECONFLICT) {
			/* A constraint another node's commit made true under
			 * us (its submission with the same Idempotency-Key):
			 * not these ops' fault, and their retry gets the
			 * right answer (a replay, or 409 for another body). */
			op->rc = JOBD_EBUSY;
			snprintf(op->err, sizeof(op->err), "the transaction met "
			         "a concurrent write (another node's submission "
			         "with the same Idempotency-Key?); submit again: "
			         "%s", err);
		} else {
			op->rc = rc;
			snprintf(op->err, sizeof(op->err), "%s", err);
		}
		finish_op(op);
	}
	w->retry_at_mono_ms = clock_mono_ms() + RETRY_AFTER_FAILURE_MS;
}

/*
 * One batch: one transaction of starts, ops and a claim.  Takes ownership
 * of the op list; the start list's ops stay their workers'.
 */
static void
run_batch(writer *w, struct writer_op *ops, struct writer_op *starts,
          bool draining)
{
	struct batch b = {.earliest_future = -1, .draining = draining};
	struct config *current = config_acquire();
	char err[256] = "";
	int64_t now = clock_now_us();
	int rc;

	b.now = now;
	/* Caps as configured now (SIGHUP may reload handler sections). */
	b.cfg = current ? current : w->cfg;
	sched_set_now(&w->sched, clock_mono_us()); /* the rates' clock */
	/* A completion frees its worker as soon as it arrives, whatever
	 * becomes of the commit. */
	for (struct writer_op *op = ops; op; op = op->next) {
		b.nops++;
		if (op->kind == WOP_COMPLETE)
			count_completion(w, op);
	}
	if (w->next_run_at_us >= 0 && w->next_run_at_us <= now) {
		sched_due(&w->sched); /* waiting rows to promote */
		b.promoted = true;
	}
	rc = write_batch(w, &b, ops, starts, now, err, sizeof(err));
	if (rc == 0)
		publish_batch(w, &b, ops, now);
	else
		fail_batch(w, &b, ops, starts, rc, err);
	deps_free(&b.deps);
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
	    !sched_wants_claim(&w->sched))
		return false;
	if (w->deferred_mono_ms >= 0 &&
	    now_mono >= w->deferred_mono_ms + DEFER_MS)
		return false;
	for (const struct writer_op *op = w->head; op; op = op->next)
		if (op->kind != WOP_COMPLETE || op->counted || ++n >= DEFER_MAX)
			return false;
	return sched_may_defer(&w->sched, n);
}

/* What the writer's loop does next (see next_step). */
enum step { STEP_RUN, STEP_SLEEP, STEP_EXIT };

/*
 * Decides the loop's next step from the queue, the claim state and the
 * deadlines: STEP_RUN (with *retry when kept completions go first),
 * STEP_SLEEP until *deadline, or STEP_EXIT.  Writer thread, w->mu held.
 */
static int
next_step(writer *w, bool *retry, int64_t *deadline)
{
	int64_t now_mono = clock_mono_ms(), now = clock_now_us();
	/* After a failed transaction, wait a little before retrying anything
	 * but new requests (a full disk must not spin). */
	bool backoff = w->retry_at_mono_ms >= 0 &&
	    now_mono < w->retry_at_mono_ms;
	/* Several nodes: claims stop while the store fences this node; an
	 * idle writer polls only while other nodes' wake-ups cannot come. */
	bool may_claim = store_may_claim(w->st);
	bool polling = w->poll_ms > 0 && !store_listening(w->st);
	bool leader = keeps_timer(w);
	if (polling && may_claim && !w->draining && !backoff && !w->fatal &&
	    w->recovered && sched_capacity(&w->sched) > 0 &&
	    now_mono >= w->claimed_mono_ms + w->poll_ms)
		sched_due(&w->sched);
	/* A type held back by its rate: claim again when its token comes
	 * (while a worker is free; else an attempt's end wakes the writer). */
	int64_t token_us = -1, now_mono_us = clock_mono_us();
	if (may_claim && !w->draining && !backoff && !w->fatal &&
	    w->recovered && sched_capacity(&w->sched) > 0) {
		token_us = sched_next_token_us(&w->sched, now_mono_us);
		if (token_us >= 0 && token_us <= now_mono_us)
			sched_due(&w->sched);
	}
	bool timer = w->next_run_at_us >= 0 && w->next_run_at_us <= now;
	bool claim_due = may_claim && !w->draining && !backoff && !w->fatal &&
	    ((sched_capacity(&w->sched) > 0 &&
	      (sched_wants_claim(&w->sched) || timer)) ||
	     (w->shared && timer));
	/* The purge is the leader's (with one node: this one). */
	bool purge_due = leader && !backoff && !w->fatal &&
	    now_mono >= w->next_purge_mono_ms;
	bool notify_due = w->notify_owed && !backoff && !w->fatal &&
	    now_mono >= w->notified_mono_ms + NOTIFY_GAP_MS;
	bool starts_due = w->starts != NULL && !backoff &&
	    (w->stopping || now_mono >= w->starts_mono_ms + START_DEFER_MS);

	*retry = w->pending != NULL && (!backoff || w->fatal);
	if (!w->recovered && !w->fatal) {
		if (w->stopping)
			return STEP_EXIT;
		if (!backoff || w->head != NULL)
			return STEP_RUN;
		*deadline = w->retry_at_mono_ms;
		return STEP_SLEEP;
	}
	if (w->fatal && w->stopping && w->head == NULL && !*retry)
		return STEP_EXIT;
	if ((w->head != NULL && !may_defer(w, now_mono)) || starts_due ||
	    *retry || claim_due || purge_due || notify_due)
		return STEP_RUN;
	if (w->stopping && w->pending == NULL)
		return STEP_EXIT;
	if (w->stopping && w->pending != NULL &&
	    now_mono >= w->stop_mono_ms + STOP_GIVE_UP_MS) {
		log_err("writer", "giving up on unwritten attempt results at "
		        "shutdown; recovery will requeue those jobs");
		return STEP_EXIT;
	}
	/* Sleep until an op arrives or the next deadline. */
	*deadline = leader ? w->next_purge_mono_ms : now_mono + 3600 * 1000;
	if (w->notify_owed && w->notified_mono_ms + NOTIFY_GAP_MS < *deadline)
		*deadline = w->notified_mono_ms + NOTIFY_GAP_MS;
	if (w->head != NULL) {
		if (w->deferred_mono_ms < 0)
			w->deferred_mono_ms = now_mono;
		if (w->deferred_mono_ms + DEFER_MS < *deadline)
			*deadline = w->deferred_mono_ms + DEFER_MS;
	}
	if (backoff && w->retry_at_mono_ms < *deadline)
		*deadline = w->retry_at_mono_ms;
	if (w->starts != NULL && w->starts_mono_ms + START_DEFER_MS < *deadline)
		*deadline = w->starts_mono_ms + START_DEFER_MS;
	if (w->stopping && w->pending != NULL &&
	    w->stop_mono_ms + STOP_GIVE_UP_MS < *deadline)
		*deadline = w->stop_mono_ms + STOP_GIVE_UP_MS;
	if (polling && may_claim && !w->draining &&
	    sched_capacity(&w->sched) > 0 &&
	    w->claimed_mono_ms + w->poll_ms < *deadline)
		*deadline = w->claimed_mono_ms + w->poll_ms;
	if (token_us > now_mono_us) {
		/* µs to ms, rounded up: never wake early. */
		int64_t d = (token_us + 999) / 1000;
		if (d < *deadline)
			*deadline = d;
	}
	if (!w->draining && may_claim && w->next_run_at_us >= 0 &&
	    (sched_capacity(&w->sched) > 0 || w->shared)) {
		/* µs to ms, rounded up: never wake early. */
		int64_t d = now_mono + (w->next_run_at_us - now + 999) / 1000;
		if (d < *deadline)
			*deadline = d;
	}
	return STEP_SLEEP;
}

/* The kept completions (newest first in w->pending) in their order, ahead
 * of ops. */
static struct writer_op *
take_pending(writer *w, struct writer_op *ops)
{
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
	return rev;
}

/* After the loop: writer_submit() refuses from now on; what came before
 * gets an answer all the same.  Called with w->mu held; releases it. */
static void
answer_leftovers(writer *w)
{
	w->exited = true;
	for (struct writer_op *op = w->starts; op; op = op->start_next)
		op->start_queued = false;
	w->starts = NULL;
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
}

/*
 * The store was unreachable at start-up: recovery runs first, before any
 * batch (a claim before it would be requeued by it).  Until it has, new
 * requests are answered with the store's error (503).  Writer thread,
 * w->mu not held.
 */
static bool
recover_late(writer *w, struct writer_op *ops)
{
	char err[256];
	int rc = writer_recover(w, err, sizeof(err));

	if (rc == 0) {
		atomic_store(&w->healthy, true);
		log_notice("writer", "the store is reachable: recovery done, "
		           "serving");
		return true;
	}
	if (rc == JOBD_EIO && !w->fatal) {
		w->fatal = true;
		kill(getpid(), SIGUSR2);
	}
	for (struct writer_op *op = ops, *next; op; op = next) {
		next = op->next;
		op->rc = rc;
		op->replayed = false;
		snprintf(op->err, sizeof(op->err), "%s", err);
		finish_op(op);
	}
	w->retry_at_mono_ms = clock_mono_ms() + RETRY_AFTER_FAILURE_MS;
	return false;
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
		int64_t deadline = 0;
		bool retry;
		if (w->poked) {
			w->poked = false;
			sched_due(&w->sched);
		}
		if (w->hint_run_at_us >= 0) {
			if (keeps_timer(w) && (w->next_run_at_us < 0 ||
			    w->hint_run_at_us < w->next_run_at_us))
				w->next_run_at_us = w->hint_run_at_us;
			w->hint_run_at_us = -1;
		}
		int step = next_step(w, &retry, &deadline);
		if (step == STEP_EXIT)
			break;
		if (step == STEP_SLEEP) {
			clock_cond_wait_until(&w->cond, &w->mu, deadline);
			continue;
		}
		struct writer_op *ops = w->head;
		struct writer_op *starts = w->starts;
		w->head = w->tail = NULL;
		w->starts = NULL;
		for (struct writer_op *op = starts; op; op = op->start_next)
			op->start_queued = false;
		bool draining = w->draining || !store_may_claim(w->st);
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
		/* (Starts and results cannot exist before recovery.) */
		if (!w->recovered && !w->fatal && !recover_late(w, ops)) {
			pthread_mutex_lock(&w->mu);
			continue;
		}
		if (retry)
			ops = take_pending(w, ops);
		atomic_store(&w->last_batch_mono_ms, clock_mono_ms());
		run_batch(w, ops, starts, draining);
		atomic_store(&w->last_batch_mono_ms, 0);
		pthread_mutex_lock(&w->mu);
	}
	answer_leftovers(w);
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
	if (!w->stopping)
		w->stop_mono_ms = clock_mono_ms();
	w->stopping = true;
	w->draining = true;
	pthread_cond_signal(&w->cond);
	pthread_mutex_unlock(&w->mu);
	if (started)
		pthread_join(w->thread, NULL);
}
