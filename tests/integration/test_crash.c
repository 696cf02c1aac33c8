/*
 * test_crash.c - a 202 promises a stored job (DESIGN.md §2): kill -9 the
 * daemon in the middle of a burst of submissions, restart it on the same
 * store, and find every job that was acknowledged.
 *
 * 16 threads, each with its own curl handle, POST noop jobs as fast as
 * they can and record every id answered 202.  The main thread waits (on a
 * condition variable, signalled per acknowledgement) for a few hundred
 * acks or about a second, kills the daemon with SIGKILL, restarts it and
 * looks every recorded id up.  Three rounds on the same store; then
 * PRAGMA integrity_check (SQLite).  Prints "rounds=N acked=N lost=N".
 */
#include <check.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "checks.h"
#include "harness.h"

#define NTHREADS 16
#define ROUNDS 3
#define BURST_MS 1000

struct burst {
	int port;
	pthread_mutex_t mu;
	pthread_cond_t cond;     /* an ack was recorded (CLOCK_MONOTONIC) */
	char **ids;              /* mu: acknowledged ids, all rounds */
	size_t n, cap;           /* mu */
	atomic_bool stop;
	atomic_long refused;     /* answers other than 202 while alive */
};

static void
record(struct burst *b, char *id)
{
	pthread_mutex_lock(&b->mu);
	if (b->n == b->cap) {
		size_t cap = b->cap ? b->cap * 2 : 1024;
		char **ids = realloc(b->ids, cap * sizeof(*ids));
		if (ids == NULL) {
			/* cannot happen in practice; lose the record, not
			 * the job, and let the count show it */
			pthread_mutex_unlock(&b->mu);
			free(id);
			return;
		}
		b->ids = ids;
		b->cap = cap;
	}
	b->ids[b->n++] = id;
	pthread_cond_signal(&b->cond);
	pthread_mutex_unlock(&b->mu);
}

static void *
poster(void *arg)
{
	struct burst *b = arg;
	jd_client *c = jd_client_new(b->port);

	if (c == NULL)
		return NULL;
	while (!atomic_load(&b->stop)) {
		long status = 0;
		char *id = jd_client_submit(c, "{\"type\":\"noop\"}", &status);
		if (id != NULL)
			record(b, id);
		else if (status != 0)
			atomic_fetch_add(&b->refused, 1);
	}
	jd_client_free(c);
	return NULL;
}

static size_t
acked(struct burst *b)
{
	size_t n;

	pthread_mutex_lock(&b->mu);
	n = b->n;
	pthread_mutex_unlock(&b->mu);
	return n;
}

/* Waits until `target` new acks, or BURST_MS with at least one new ack,
 * or a hard deadline.  Returns the acks of this round. */
static size_t
wait_for_acks(struct burst *b, size_t before, size_t target)
{
	int64_t t0 = jd_mono_ms();
	size_t got;

	pthread_mutex_lock(&b->mu);
	for (;;) {
		int64_t now = jd_mono_ms();
		got = b->n - before;
		if (got >= target || (got > 0 && now - t0 >= BURST_MS) ||
		    now - t0 >= 20000)
			break;
		/* each ack wakes us; else the next deadline does */
		int64_t until = t0 + (now - t0 < BURST_MS ? BURST_MS : 20000);
		struct timespec ts = {.tv_sec = (time_t)(until / 1000),
		                      .tv_nsec = (long)(until % 1000) * 1000000L};
		pthread_cond_timedwait(&b->cond, &b->mu, &ts);
	}
	pthread_mutex_unlock(&b->mu);
	return got;
}

START_TEST(test_kill9_during_burst)
{
	static const size_t kill_after[ROUNDS] = {250, 400, 300};
	struct jd_opts o = {.threads = 4};
	struct burst b = {0};
	jd *d = jd_new(&o);
	size_t lost = 0, checked = 0;
	char path[96];

	ck_assert_ptr_nonnull(d);
	ck_assert_int_eq(jd_start(d), 0);
	b.port = d->port;
	pthread_mutex_init(&b.mu, NULL);
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC); /* jd_mono_ms */
	pthread_cond_init(&b.cond, &ca);
	pthread_condattr_destroy(&ca);

	for (int round = 0; round < ROUNDS; round++) {
		pthread_t th[NTHREADS];
		size_t before = acked(&b), got;
		int rc;

		atomic_store(&b.stop, false);
		for (int i = 0; i < NTHREADS; i++)
			ck_assert_int_eq(pthread_create(&th[i], NULL, poster, &b),
			                 0);
		got = wait_for_acks(&b, before, kill_after[round]);
		rc = jd_kill9(d);
		atomic_store(&b.stop, true);
		for (int i = 0; i < NTHREADS; i++)
			pthread_join(th[i], NULL);
		ck_assert_msg(rc == 128 + 9, "round %d: the daemon had already "
		              "exited (%d)", round, rc);
		ck_assert_msg(got > 0, "round %d: no job acknowledged", round);
		fprintf(stderr, "round %d: killed after %zu acks (%zu in all "
		        "this round)\n", round, got, acked(&b) - before);

		ck_assert_int_eq(jd_start(d), 0);
		/* every id acknowledged so far, this round and before */
		size_t n = acked(&b);
		lost = 0;
		for (size_t i = 0; i < n; i++) {
			struct jd_resp *r;
			snprintf(path, sizeof(path), "/jobs/%s", b.ids[i]);
			r = jd_request(d, "GET", path, NULL, NULL);
			ck_assert_ptr_nonnull(r);
			if (r->status != 200) {
				if (lost < 10)
					fprintf(stderr, "lost: %s -> %ld %s%s\n",
					        b.ids[i], r->status, r->body,
					        r->error);
				lost++;
			}
			jd_resp_free(r);
		}
		checked = n;
		ck_assert_msg(lost == 0, "round %d: %zu of %zu acknowledged "
		              "jobs lost", round, lost, n);
	}

	/* The file's own check, on SQLite; PostgreSQL's WAL replay is the
	 * server's business, not jobd's. */
	if (!jd_store_is_pg()) {
		char *ok = jd_sql_text(d, "PRAGMA integrity_check");
		ck_assert_msg(ok != NULL && strcmp(ok, "ok") == 0,
		              "integrity_check: %s", ok ? ok : "(error)");
		free(ok);
	}
	long long rows = jd_sql_int(d, "SELECT count(*) FROM jobs");
	ck_assert_msg(rows >= (long long)checked, "%lld rows for %zu acks",
	              rows, checked);

	printf("rounds=%d acked=%zu lost=%zu\n", ROUNDS, checked, lost);
	fprintf(stderr, "(%ld non-202 answers during the bursts, %lld rows)\n",
	        atomic_load(&b.refused), rows);
	fflush(stdout);

	for (size_t i = 0; i < b.n; i++)
		free(b.ids[i]);
	free(b.ids);
	pthread_cond_destroy(&b.cond);
	pthread_mutex_destroy(&b.mu);
	jd_free(d);
}
END_TEST

static Suite *
crash_suite(void)
{
	Suite *s = suite_create("crash");
	TCase *tc = tcase_create("crash");

	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_kill9_during_burst);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	return run_suite(crash_suite());
}
