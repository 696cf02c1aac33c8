/*
 * schedule.c - ticks of [schedule.NAME] into submissions (schedule.h has
 * the rules): the pure tick arithmetic, the leader's thread that hands
 * each tick's job to the writer, and the JSON of GET /schedules.
 *
 * LOCKING: mu guards stop, poked, op_done and leader (the thread's view,
 * read by schedules_leader_hint).  The thread owns since_ms and the ops
 * it submits; it waits for each op's done() (writer thread) on done_cond.
 * mu is a leaf lock: nothing is called under it.
 */
#include <cJSON.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "clock.h"
#include "cron.h"
#include "err.h"
#include "log.h"
#include "schedule.h"
#include "submit.h"
#include "uuid.h"

/* ---- tick arithmetic ---- */

static int64_t
floor_div(int64_t a, int64_t b)
{
	int64_t q = a / b;
	return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q;
}

int
schedule_next_tick(const struct schedule_conf *sc, int64_t after_ms,
                   int64_t *next_ms)
{
	if (sc->cron == NULL) {
		if (sc->every_ms <= 0)
			return JOBD_ENOTFOUND;
		*next_ms = (floor_div(after_ms, sc->every_ms) + 1) * sc->every_ms;
		return 0;
	}
	int64_t next_s;
	int rc = cron_next(&sc->cron_expr, floor_div(after_ms, 1000),
	                   sc->timezone == SCHEDULE_UTC, &next_s);
	if (rc != 0)
		return JOBD_ENOTFOUND;
	*next_ms = next_s * 1000;
	return 0;
}

int
schedule_last_tick_before(const struct schedule_conf *sc, int64_t after_ms,
                          int64_t before_ms, int64_t *tick_ms)
{
	int64_t t, n;

	if (before_ms <= after_ms + 1)
		return JOBD_ENOTFOUND;
	if (sc->cron == NULL) {
		if (sc->every_ms <= 0)
			return JOBD_ENOTFOUND;
		t = floor_div(before_ms - 1, sc->every_ms) * sc->every_ms;
		if (t <= after_ms)
			return JOBD_ENOTFOUND;
		*tick_ms = t;
		return 0;
	}
	/* cron only walks forward: look in windows that double back from
	 * before_ms, then walk to the last tick of the first one that has
	 * one (its later half had none, so the walk stays short). */
	for (int64_t w = 60000;; w *= 2) {
		int64_t from = before_ms - w;
		if (from < after_ms || w > ((int64_t)1 << 50))
			from = after_ms;
		if (schedule_next_tick(sc, from, &t) == 0 && t < before_ms) {
			for (int i = 0; i < 1000000 &&
			     schedule_next_tick(sc, t, &n) == 0 &&
			     n < before_ms; i++)
				t = n;
			*tick_ms = t;
			return 0;
		}
		if (from == after_ms)
			return JOBD_ENOTFOUND;
	}
}

void
schedule_step(const struct schedule_conf *sc, int64_t cursor_ms,
              int64_t since_ms, int64_t now_ms, struct schedule_step *out)
{
	int64_t t1, missed_before, last;

	*out = (struct schedule_step){.tick_ms = -1, .cursor_ms = -1,
	                              .wake_ms = -1};
	if (cursor_ms < 0) {
		/* First sight: start from now, nothing was missed. */
		out->cursor_ms = now_ms;
		return;
	}
	if (schedule_next_tick(sc, cursor_ms, &t1) != 0)
		return; /* never again */
	if (t1 > now_ms) {
		out->wake_ms = t1;
		return;
	}
	/* Ticks before this are missed: before this node ran schedules,
	 * or too long ago to be merely late. */
	missed_before = since_ms > now_ms - SCHEDULE_LATE_MS
	    ? since_ms : now_ms - SCHEDULE_LATE_MS;
	if (t1 >= missed_before) {
		out->run = true;
		out->tick_ms = t1;
		out->cursor_ms = t1;
		return;
	}
	if (schedule_last_tick_before(sc, cursor_ms, missed_before,
	                              &last) != 0)
		last = t1; /* cannot be: t1 itself is one */
	out->missed = true;
	out->cursor_ms = last;
	if (sc->catch_up == CATCH_UP_ONE) {
		out->run = true;
		out->tick_ms = last;
	}
}

void
schedule_format_tick(int64_t ms, char *buf, size_t len)
{
	time_t t = (time_t)floor_div(ms, 1000);
	struct tm tm;

	if (len == 0)
		return;
	buf[0] = '\0';
	if (gmtime_r(&t, &tm) == NULL || tm.tm_year + 1900 < 1 ||
	    tm.tm_year + 1900 > 9999)
		return;
	snprintf(buf, len, "%04d-%02d-%02dT%02d:%02d:%02dZ",
	         tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
	         tm.tm_min, tm.tm_sec);
}

int
schedule_make_job(const struct schedule_conf *sc, const struct config *cfg,
                  const char *key, int64_t now_us, struct job *job,
                  char *err, size_t errlen)
{
	char fp[SUBMIT_FINGERPRINT_LEN + 1];
	const char *payload = sc->payload ? sc->payload : "null";
	size_t len = strlen(sc->type) + strlen(payload) + 64;
	char *body = malloc(len);
	int rc;

	if (body == NULL)
		return jobd_seterr(err, errlen, JOBD_ENOMEM, "out of memory");
	/* The type is [A-Za-z0-9_.-] and the payload checked JSON. */
	snprintf(body, len, "{\"type\":\"%s\",\"payload\":%s,\"priority\":%d}",
	         sc->type, payload, (int)sc->priority);
	rc = submit_parse(body, strlen(body), cfg, now_us, job, err, errlen);
	if (rc == 0 && ((job->idem_key = strdup(key)) == NULL ||
	                submit_fingerprint(body, strlen(body), fp) != 0 ||
	                (job->idem_fp = strdup(fp)) == NULL))
		rc = jobd_seterr(err, errlen, JOBD_ENOMEM, "out of memory");
	if (rc == 0 && uuid_v7_new(job->id) != 0)
		rc = jobd_seterr(err, errlen, JOBD_EBUSY,
		                 "cannot read random bytes");
	if (rc != 0)
		job_clear(job);
	free(body);
	return rc;
}

/* ---- the stored rows ---- */

struct rows {
	struct store_schedule *v;
	size_t n, cap;
	bool oom;
};

static void
add_row(void *arg, const struct store_schedule *s)
{
	struct rows *r = arg;

	if (r->n == r->cap) {
		size_t cap = r->cap ? r->cap * 2 : 8;
		struct store_schedule *v = realloc(r->v, cap * sizeof(*v));
		if (v == NULL) {
			r->oom = true;
			return;
		}
		r->v = v;
		r->cap = cap;
	}
	r->v[r->n++] = *s;
}

static const struct store_schedule *
find_row(const struct rows *r, const char *name)
{
	for (size_t i = 0; i < r->n; i++)
		if (strcmp(r->v[i].name, name) == 0)
			return &r->v[i];
	return NULL;
}

static int
read_rows(store *st, struct rows *r, char *err, size_t errlen)
{
	int rc = store_schedules(st, add_row, r, err, errlen);

	if (rc == 0 && r->oom)
		rc = jobd_seterr(err, errlen, JOBD_ENOMEM, "out of memory");
	return rc;
}

/* ---- the thread ---- */

struct schedules {
	store *st;
	writer *w;
	pthread_t thread;
	bool started;
	pthread_mutex_t mu;
	pthread_cond_t cond;       /* poke, stop (CLOCK_MONOTONIC) */
	pthread_cond_t done_cond;  /* op_done */
	bool stop, poked, op_done; /* mu */
	bool leader;               /* mu: the thread's last look */
	int64_t since_ms;          /* thread: runs schedules since */
	bool read_failed;          /* thread: said so once */
};

schedules *
schedules_new(store *st, writer *w)
{
	schedules *s = calloc(1, sizeof(*s));
	pthread_condattr_t ca;

	if (s == NULL)
		return NULL;
	s->st = st;
	s->w = w;
	pthread_mutex_init(&s->mu, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&s->cond, &ca);
	pthread_condattr_destroy(&ca);
	pthread_cond_init(&s->done_cond, NULL);
	return s;
}

void
schedules_free(schedules *s)
{
	if (s == NULL)
		return;
	schedules_stop(s);
	pthread_cond_destroy(&s->done_cond);
	pthread_cond_destroy(&s->cond);
	pthread_mutex_destroy(&s->mu);
	free(s);
}

void
schedules_poke(schedules *s)
{
	if (s == NULL)
		return;
	pthread_mutex_lock(&s->mu);
	s->poked = true;
	pthread_cond_signal(&s->cond);
	pthread_mutex_unlock(&s->mu);
}

void
schedules_leader_hint(schedules *s)
{
	bool poke;

	if (s == NULL)
		return;
	pthread_mutex_lock(&s->mu);
	poke = !s->leader;
	pthread_mutex_unlock(&s->mu);
	if (poke)
		schedules_poke(s);
}

static void
op_done(struct writer_op *op, void *arg)
{
	schedules *s = arg;

	(void)op;
	pthread_mutex_lock(&s->mu);
	s->op_done = true;
	pthread_cond_signal(&s->done_cond);
	pthread_mutex_unlock(&s->mu);
}

/* Hands op to the writer and waits for its outcome (op->rc).  Returns 0,
 * or JOBD_EBUSY when the writer does not run. */
static int
submit_wait(schedules *s, struct writer_op *op)
{
	op->done = op_done;
	op->arg = s;
	pthread_mutex_lock(&s->mu);
	s->op_done = false;
	pthread_mutex_unlock(&s->mu);
	if (writer_submit(s->w, op) != 0)
		return JOBD_EBUSY;
	pthread_mutex_lock(&s->mu);
	while (!s->op_done)
		pthread_cond_wait(&s->done_cond, &s->mu);
	pthread_mutex_unlock(&s->mu);
	return 0;
}

/*
 * Applies one step of sc: the tick's job with the cursor's move, or the
 * cursor alone.  Returns 0 when done (step again), or an error that
 * makes the thread look again later (the tick stays due).
 */
static int
apply_step(schedules *s, const struct config *cfg,
           const struct schedule_conf *sc, const struct schedule_step *step)
{
	struct writer_op *op = malloc(sizeof(*op));
	char key[SCHEDULE_KEY_MAX], when[32], err[256];
	int rc;

	if (op == NULL)
		return JOBD_ENOMEM;
	writer_op_init(op, step->run ? WOP_SUBMIT : WOP_SCHEDULE);
	snprintf(op->schedule.name, sizeof(op->schedule.name), "%s", sc->name);
	op->schedule.cursor_ms = step->cursor_ms;
	op->schedule.last_run_ms = -1;
	op->schedule.paused = -1;
	if (step->run) {
		schedule_format_tick(step->tick_ms, when, sizeof(when));
		snprintf(key, sizeof(key), "schedule:%s:%s", sc->name, when);
		op->schedule.last_run_ms = step->tick_ms;
		op->schedule.unless_paused = true;
		rc = schedule_make_job(sc, cfg, key, clock_now_us(), &op->job,
		                       err, sizeof(err));
		if (rc != 0) {
			/* The type has no handler any more (a reload): the
			 * tick passes without a job. */
			log_err("schedule", "%s: tick %s makes no job: %s",
			        sc->name, when, err);
			writer_op_clear(op);
			writer_op_init(op, WOP_SCHEDULE);
			snprintf(op->schedule.name, sizeof(op->schedule.name),
			         "%s", sc->name);
			op->schedule.cursor_ms = step->cursor_ms;
			op->schedule.last_run_ms = -1;
			op->schedule.paused = -1;
		} else if (step->missed) {
			log_notice("schedule", "%s: ticks missed up to %s: "
			           "catch_up = one makes one job for them",
			           sc->name, when);
		}
	} else if (step->missed) {
		schedule_format_tick(step->cursor_ms, when, sizeof(when));
		log_notice("schedule", "%s: ticks missed up to %s: catch_up = "
		           "skip makes no job for them", sc->name, when);
	}
	rc = submit_wait(s, op);
	if (rc == 0)
		rc = op->rc;
	if (rc == JOBD_ESTALE && op->kind == WOP_SUBMIT) {
		/* Paused meanwhile (here or on another node): no job. */
		log_info("schedule", "%s: paused; tick %s makes no job",
		         sc->name, when);
		rc = 0;
	} else if (rc == JOBD_ECONFLICT && op->kind == WOP_SUBMIT) {
		/* The key's job exists with another body (the payload
		 * changed since it was made): the tick is done. */
		log_warn("schedule", "%s: tick %s was made earlier with "
		         "another payload; kept", sc->name, when);
		writer_op_clear(op);
		writer_op_init(op, WOP_SCHEDULE);
		snprintf(op->schedule.name, sizeof(op->schedule.name), "%s",
		         sc->name);
		op->schedule.cursor_ms = step->cursor_ms;
		op->schedule.last_run_ms = -1;
		op->schedule.paused = -1;
		rc = submit_wait(s, op);
		if (rc == 0)
			rc = op->rc;
	}
	if (rc != 0 && rc != JOBD_EBUSY)
		log_warn("schedule", "%s: %s", sc->name,
		         op->err[0] ? op->err : "the writer failed");
	writer_op_clear(op);
	free(op);
	return rc;
}

/*
 * One look at every schedule: makes what is due.  Returns the wall time
 * to look again (-1: only when poked), or 0 to look again at once.
 */
static int64_t
run_once(schedules *s)
{
	struct config *cfg = config_acquire();
	struct rows rows = {0};
	int64_t wake = -1, now = clock_now_ms();
	char err[256];
	bool again = false, failed = false;

	if (cfg == NULL || cfg->nschedules == 0)
		goto out;
	if (read_rows(s->st, &rows, err, sizeof(err)) != 0) {
		/* Said once per outage; tried again every second. */
		if (!s->read_failed)
			log_warn("schedule", "cannot read the schedules (tried "
			         "again every second): %s", err);
		s->read_failed = true;
		wake = now + 1000;
		goto out;
	}
	s->read_failed = false;
	for (size_t i = 0; i < cfg->nschedules && !again; i++) {
		const struct schedule_conf *sc = &cfg->schedules[i];
		const struct store_schedule *row = find_row(&rows, sc->name);
		struct schedule_step step;
		schedule_step(sc, row ? row->cursor_ms : -1, s->since_ms, now,
		              &step);
		if (row != NULL && row->paused) {
			/* Look again at its next tick (a resume elsewhere). */
			int64_t t;
			if (schedule_next_tick(sc, now, &t) == 0 &&
			    (wake < 0 || t < wake))
				wake = t;
			continue;
		}
		if (step.run || step.cursor_ms >= 0) {
			if (apply_step(s, cfg, sc, &step) != 0)
				failed = true;
			else
				again = true;
		} else if (step.wake_ms >= 0 &&
		           (wake < 0 || step.wake_ms < wake)) {
			wake = step.wake_ms;
		}
	}
	if (again)
		wake = 0;
	else if (failed)
		wake = now + 1000; /* the store or writer failed: retry */
out:
	free(rows.v);
	config_release(cfg);
	return wake;
}

static void *
schedules_main(void *arg)
{
	schedules *s = arg;
	sigset_t set;

	sigfillset(&set);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	pthread_setname_np(pthread_self(), "jobd-schedule");
	for (;;) {
		int64_t wake = -1;
		bool leader = store_is_leader(s->st);

		pthread_mutex_lock(&s->mu);
		if (s->stop) {
			pthread_mutex_unlock(&s->mu);
			break;
		}
		s->poked = false;
		if (leader && !s->leader)
			s->since_ms = clock_now_ms();
		s->leader = leader;
		pthread_mutex_unlock(&s->mu);
		if (leader)
			wake = run_once(s);
		if (wake == 0)
			continue;
		/* Sleep on the monotonic clock until the wall clock should
		 * read wake, at most SCHEDULE_RECHECK_MS (a wall-clock jump,
		 * a follower that may become the leader); with nothing to
		 * wait for, until poked. */
		int64_t delay = wake < 0 ? -1 : wake - clock_now_ms();
		if (delay < 0 && wake >= 0)
			delay = 0;
		if (!leader || delay > SCHEDULE_RECHECK_MS)
			delay = SCHEDULE_RECHECK_MS;
		struct timespec ts;
		clock_gettime(CLOCK_MONOTONIC, &ts);
		int64_t ns = (int64_t)ts.tv_nsec + (delay % 1000) * 1000000;
		ts.tv_sec += (time_t)(delay / 1000 + ns / 1000000000);
		ts.tv_nsec = (long)(ns % 1000000000);
		pthread_mutex_lock(&s->mu);
		while (!s->stop && !s->poked) {
			if (delay < 0)
				pthread_cond_wait(&s->cond, &s->mu);
			else if (pthread_cond_timedwait(&s->cond, &s->mu,
			                                &ts) != 0)
				break;
		}
		pthread_mutex_unlock(&s->mu);
	}
	return NULL;
}

int
schedules_start(schedules *s)
{
	s->since_ms = clock_now_ms();
	if (pthread_create(&s->thread, NULL, schedules_main, s) != 0)
		return JOBD_ESYS;
	s->started = true;
	return 0;
}

void
schedules_stop(schedules *s)
{
	if (s == NULL || !s->started)
		return;
	pthread_mutex_lock(&s->mu);
	s->stop = true;
	pthread_cond_signal(&s->cond);
	pthread_mutex_unlock(&s->mu);
	pthread_join(s->thread, NULL);
	s->started = false;
}

/* ---- GET /schedules ---- */

static cJSON *
time_or_null(int64_t ms)
{
	char buf[40];

	if (ms < 0)
		return cJSON_CreateNull();
	clock_format_rfc3339(ms, buf, sizeof(buf));
	return cJSON_CreateString(buf);
}

static cJSON *
schedule_obj(const struct schedule_conf *sc, const struct store_schedule *row,
             int64_t now_ms)
{
	cJSON *o = cJSON_CreateObject();
	bool paused = row != NULL && row->paused;
	int64_t next = -1, from = now_ms;
	char every[32];
	bool ok = o != NULL;

	if (!ok)
		return NULL;
	if (row != NULL && row->cursor_ms > from)
		from = row->cursor_ms;
	if (!paused && schedule_next_tick(sc, from, &next) != 0)
		next = -1;
	if (sc->every_ms > 0) {
		static const struct { int64_t s; char u; } units[] = {
			{86400, 'd'}, {3600, 'h'}, {60, 'm'}, {1, 's'}};
		int64_t secs = sc->every_ms / 1000;
		size_t u = 0;
		while (secs % units[u].s != 0)
			u++;
		snprintf(every, sizeof(every), "%lld%c",
		         (long long)(secs / units[u].s), units[u].u);
	}
	ok = ok && cJSON_AddStringToObject(o, "name", sc->name);
	ok = ok && cJSON_AddItemToObject(o, "cron", sc->cron
	    ? cJSON_CreateString(sc->cron) : cJSON_CreateNull());
	ok = ok && cJSON_AddItemToObject(o, "every", sc->every_ms > 0
	    ? cJSON_CreateString(every) : cJSON_CreateNull());
	ok = ok && cJSON_AddStringToObject(o, "type", sc->type);
	ok = ok && cJSON_AddBoolToObject(o, "paused", paused);
	ok = ok && cJSON_AddItemToObject(o, "next_run_at", time_or_null(next));
	ok = ok && cJSON_AddItemToObject(o, "last_run_at",
	    time_or_null(row ? row->last_run_ms : -1));
	ok = ok && cJSON_AddItemToObject(o, "last_job_id",
	    row && row->last_job_id[0] ? cJSON_CreateString(row->last_job_id)
	                               : cJSON_CreateNull());
	if (!ok) {
		cJSON_Delete(o);
		return NULL;
	}
	return o;
}

void *
schedules_json(const struct config *cfg, store *st, const char *name,
               int64_t now_ms, int *code, char *err, size_t errlen)
{
	struct rows rows = {0};
	cJSON *root = NULL, *arr = NULL;
	int rc;

	if (name != NULL && config_schedule(cfg, name) == NULL) {
		*code = jobd_seterr(err, errlen, JOBD_ENOTFOUND,
		                    "no schedule of this name");
		return NULL;
	}
	rc = read_rows(st, &rows, err, errlen);
	if (rc != 0) {
		*code = rc;
		free(rows.v);
		return NULL;
	}
	if (name != NULL) {
		root = schedule_obj(config_schedule(cfg, name),
		                    find_row(&rows, name), now_ms);
	} else if ((root = cJSON_CreateObject()) != NULL &&
	           (arr = cJSON_AddArrayToObject(root, "schedules")) != NULL) {
		for (size_t i = 0; i < cfg->nschedules; i++) {
			const struct schedule_conf *sc = &cfg->schedules[i];
			cJSON *o = schedule_obj(sc, find_row(&rows, sc->name),
			                        now_ms);
			if (o == NULL) {
				cJSON_Delete(root);
				root = NULL;
				break;
			}
			cJSON_AddItemToArray(arr, o);
		}
	} else {
		cJSON_Delete(root);
		root = NULL;
	}
	free(rows.v);
	if (root == NULL)
		*code = jobd_seterr(err, errlen, JOBD_ENOMEM, "out of memory");
	return root;
}
