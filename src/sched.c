/*
 * sched.c - the scheduling policy as pure functions (see sched.h for the
 * claim state diagram and the claim-ahead rule).
 *
 * LOCKING: none.  A struct sched belongs to one thread (the writer).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sched.h"

void
sched_init(struct sched *s, int64_t threads)
{
	memset(s, 0, sizeof(*s));
	s->threads = threads;
	s->avg_short_ms = -1;
	s->state = SCHED_DUE; /* whatever the store holds: look */
}

void
sched_fini(struct sched *s)
{
	free(s->types);
	s->types = NULL;
	s->ntypes = s->captypes = 0;
}

struct sched_type *
sched_type(struct sched *s, const char *name)
{
	struct sched_type *t;

	for (size_t i = 0; i < s->ntypes; i++)
		if (strcmp(s->types[i].name, name) == 0)
			return &s->types[i];
	if (s->ntypes == s->captypes) {
		size_t cap = s->captypes ? s->captypes * 2 : 16;
		t = realloc(s->types, cap * sizeof(*t));
		if (t == NULL)
			return NULL;
		s->types = t;
		s->captypes = cap;
	}
	t = &s->types[s->ntypes++];
	memset(t, 0, sizeof(*t));
	snprintf(t->name, sizeof(t->name), "%s", name);
	t->avg_run_ms = -1;
	return t;
}

void
sched_set_now(struct sched *s, int64_t now_us)
{
	s->now_us = now_us;
}

void
sched_set_rate(struct sched *s, struct sched_type *t, int64_t n,
               int64_t period_us)
{
	if (n <= 0)
		n = period_us = 0;
	if (t->rate_n == n && t->rate_period_us == period_us)
		return;
	t->rate_n = n;
	t->rate_period_us = period_us;
	t->rate_held = false;
	/* One token at most: starts spaced evenly, no burst. */
	rate_init(&t->bucket, n, period_us, 1, s->now_us);
}

void
sched_clear_pauses(struct sched *s)
{
	for (size_t i = 0; i < s->ntypes; i++)
		s->types[i].paused = false;
}

bool
sched_claimable(struct sched *s, struct sched_type *t, int64_t concurrency)
{
	if (t->paused || !sched_below_cap(t, concurrency))
		return false;
	t->rate_held = !rate_ready(&t->bucket, s->now_us);
	return !t->rate_held;
}

void
sched_forget_held(struct sched *s)
{
	for (size_t i = 0; i < s->ntypes; i++)
		s->types[i].rate_held = false;
}

int64_t
sched_next_token_us(const struct sched *s, int64_t now_us)
{
	int64_t next = -1;

	for (size_t i = 0; i < s->ntypes; i++) {
		const struct sched_type *t = &s->types[i];
		if (!t->rate_held || t->paused)
			continue;
		int64_t at = rate_next_us(&t->bucket, now_us);
		if (at >= 0 && (next < 0 || at < next))
			next = at;
	}
	return next;
}

bool
sched_below_cap(const struct sched_type *t, int64_t concurrency)
{
	return concurrency <= 0 || t->running + t->batch < concurrency;
}

double
sched_window_ms(const struct sched *s)
{
	double ms = 2.0 * s->avg_commit_ms;

	if (ms < SCHED_WINDOW_MS)
		return SCHED_WINDOW_MS;
	return ms > SCHED_WINDOW_MAX_MS ? SCHED_WINDOW_MAX_MS : ms;
}

void
sched_committed(struct sched *s, int64_t commit_us)
{
	s->avg_commit_ms = 0.8 * s->avg_commit_ms +
	                   0.2 * (double)commit_us / 1000.0;
}

/* Short: measured, and at most the base window per attempt. */
static bool
is_short(const struct sched_type *t)
{
	return t->avg_run_ms >= 0 && t->avg_run_ms <= SCHED_WINDOW_MS;
}

/* Workers not held by long attempts, and the short work claimed and not
 * done (ms). */
static void
load(const struct sched *s, int64_t *free_workers, double *ahead_ms)
{
	int64_t held = 0;

	*ahead_ms = 0;
	for (size_t i = 0; i < s->ntypes; i++) {
		const struct sched_type *t = &s->types[i];
		int64_t n = t->running + t->batch;
		if (is_short(t))
			*ahead_ms += (double)n * t->avg_run_ms;
		else
			held += n;
	}
	*free_workers = s->threads - held;
	if (*free_workers < 0)
		*free_workers = 0;
}

static int64_t
idle_workers(const struct sched *s)
{
	int64_t idle = s->threads - s->inflight;

	return idle > 0 ? idle : 0;
}

int64_t
sched_capacity(const struct sched *s)
{
	int64_t free_workers, extra = 0;
	double ahead;

	load(s, &free_workers, &ahead);
	if (s->avg_short_ms >= 0 && free_workers > 0) {
		/* As many as fit at the short attempts' average: a claim
		 * rarely takes rows it must put back. */
		double per = s->avg_short_ms > 0.001 ? s->avg_short_ms : 0.001;
		double budget = (double)free_workers * sched_window_ms(s) -
		                ahead;
		double e = budget > 0 ? budget / per : 0;
		extra = e > SCHED_AHEAD_MAX ? SCHED_AHEAD_MAX : (int64_t)e;
	}
	return idle_workers(s) + extra;
}

void
sched_plan(const struct sched *s, struct sched_plan *p)
{
	memset(p, 0, sizeof(*p));
	p->idle = idle_workers(s);
	p->slots = sched_capacity(s);
	load(s, &p->free, &p->ahead_ms);
}

bool
sched_next_is_idle(const struct sched_plan *p)
{
	return p->taken < p->idle;
}

bool
sched_may_take(const struct sched *s, struct sched_plan *p,
               struct sched_type *t, int64_t concurrency)
{
	if (p->slots <= 0 || t->paused || !sched_below_cap(t, concurrency))
		return false;
	if (!rate_ready(&t->bucket, s->now_us)) {
		t->rate_held = true;
		return false;
	}
	if (!sched_next_is_idle(p)) {
		/* Ahead of the workers: short work only, within the window
		 * spread over the workers long attempts leave free. */
		if (!is_short(t) || p->free <= 0 ||
		    (p->ahead_ms + t->avg_run_ms) / (double)p->free >
		    sched_window_ms(s))
			return false;
	}
	if (is_short(t))
		p->ahead_ms += t->avg_run_ms;
	rate_take(&t->bucket, s->now_us);
	p->taken++;
	p->slots--;
	t->batch++;
	return true;
}

void
sched_batch_end(struct sched *s, bool committed)
{
	for (size_t i = 0; i < s->ntypes; i++) {
		if (committed) {
			s->types[i].running += s->types[i].batch;
			s->inflight += s->types[i].batch;
		}
		s->types[i].batch = 0;
	}
}

void
sched_completed(struct sched *s, struct sched_type *t, int64_t run_us)
{
	double ms = (double)run_us / 1000.0;

	s->inflight--;
	if (t == NULL)
		return;
	t->running--;
	if (run_us <= 0)
		return;
	t->avg_run_ms = t->avg_run_ms < 0 ? ms : 0.8 * t->avg_run_ms + 0.2 * ms;
	if (is_short(t))
		s->avg_short_ms = s->avg_short_ms < 0
		    ? ms : 0.8 * s->avg_short_ms + 0.2 * ms;
}

void
sched_due(struct sched *s)
{
	s->state = SCHED_DUE;
}

void
sched_attempt_ended(struct sched *s)
{
	if (s->state == SCHED_HELD)
		s->state = SCHED_DUE;
}

void
sched_claimed(struct sched *s, int64_t asked, int64_t got, bool held)
{
	if (got >= asked)
		s->state = SCHED_DUE; /* there may be more */
	else
		s->state = held ? SCHED_HELD : SCHED_QUIET;
}

bool
sched_wants_claim(const struct sched *s)
{
	return s->state == SCHED_DUE;
}

bool
sched_may_defer(const struct sched *s, int64_t results)
{
	return s->inflight - results >= 2 * s->threads;
}
