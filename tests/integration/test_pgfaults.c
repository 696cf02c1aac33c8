/*
 * test_pgfaults.c - jobd on PostgreSQL when the database or jobd itself
 * fails (issue 13, items 4 and 5): a server that is not there at start-up,
 * stopped and started again under load (fast and immediate shutdowns: a
 * COMMIT whose outcome is unknown), jobd killed by SIGKILL during a burst,
 * an attempt that ends while the database is away.  Every id that got a
 * 202 must be in the store afterwards; jobd must never exit and must come
 * back by itself.
 *
 * The suite runs its own PostgreSQL (it stops and starts it), so it runs
 * only in the PostgreSQL pass (make integration-pg, JOBD_TEST_STORE=pg).
 */
#include <check.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "checks.h"
#include "harness.h"
#include "pg.h"

static struct jd_pg srv;

/* pg_ctl ACTION on the suite's server, as the user postgres when root. */
static int
pg_ctl(const char *action)
{
	char cmd[1200];
	int st;

	if (strcmp(action, "start") == 0)
		snprintf(cmd, sizeof(cmd), "%s%s/pg_ctl -D %s/data -l %s/log -w "
		         "-t 60 -o '-p %d' start >/dev/null",
		         geteuid() == 0 ? "runuser -u postgres -- " : "",
		         srv.bin, srv.dir, srv.dir, srv.port);
	else
		snprintf(cmd, sizeof(cmd), "%s%s/pg_ctl -D %s/data -w -t 60 %s "
		         ">/dev/null 2>&1",
		         geteuid() == 0 ? "runuser -u postgres -- " : "",
		         srv.bin, srv.dir, action);
	st = system(cmd);
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static long
http_status(jd *d, const char *method, const char *path)
{
	struct jd_resp *r = jd_request(d, method, path, NULL, NULL);
	long st = r->status;

	jd_resp_free(r);
	return st;
}

/* Polls until path answers want (a condition, checked every 50 ms). */
static bool
wait_http(jd *d, const char *path, long want, int timeout_ms)
{
	int64_t until = jd_mono_ms() + timeout_ms;

	while (jd_mono_ms() < until) {
		if (http_status(d, "GET", path) == want)
			return true;
		jd_pause_ms(50);
	}
	return false;
}

/* ---- a burst of submissions from several threads ---- */

#define BURST_THREADS 16
#define MAX_ACKED 400000

struct burst {
	int port;
	atomic_bool stop;
	pthread_mutex_t mu;
	char (*acked)[40];       /* ids answered 202 */
	size_t nacked;
	atomic_long n503, nother, nfailed;
	atomic_long with_retry_after;
	pthread_t t[BURST_THREADS];
};

static void *
burst_main(void *arg)
{
	struct burst *b = arg;
	jd_client *c = jd_client_new(b->port);
	const char *const json[] = {"Content-Type: application/json", NULL};

	while (!atomic_load(&b->stop)) {
		struct jd_resp *r = jd_client_request(c, "POST", "/jobs", json,
		    "{\"type\":\"noop\",\"payload\":{\"n\":1}}");
		if (r->status == 202) {
			const char *id = jd_resp_str(r, "id");
			pthread_mutex_lock(&b->mu);
			if (id != NULL && b->nacked < MAX_ACKED)
				snprintf(b->acked[b->nacked++], 40, "%s", id);
			pthread_mutex_unlock(&b->mu);
		} else if (r->status == 503) {
			atomic_fetch_add(&b->n503, 1);
			if (jd_header(r, "Retry-After") != NULL)
				atomic_fetch_add(&b->with_retry_after, 1);
		} else if (r->status == 0) {
			/* jobd killed or restarting: connection refused */
			atomic_fetch_add(&b->nfailed, 1);
			jd_pause_ms(5);
		} else {
			fprintf(stderr, "burst: %ld %s\n", r->status, r->body);
			atomic_fetch_add(&b->nother, 1);
		}
		jd_resp_free(r);
	}
	jd_client_free(c);
	return NULL;
}

static struct burst *
burst_start(int port)
{
	struct burst *b = calloc(1, sizeof(*b));

	ck_assert_ptr_nonnull(b);
	b->acked = calloc(MAX_ACKED, sizeof(*b->acked));
	ck_assert_ptr_nonnull(b->acked);
	b->port = port;
	pthread_mutex_init(&b->mu, NULL);
	for (int i = 0; i < BURST_THREADS; i++)
		ck_assert_int_eq(pthread_create(&b->t[i], NULL, burst_main, b),
		                 0);
	return b;
}

static void
burst_stop(struct burst *b)
{
	atomic_store(&b->stop, true);
	for (int i = 0; i < BURST_THREADS; i++)
		pthread_join(b->t[i], NULL);
}

/* Waits until the burst has had n more 202s (the daemon is taking work). */
static void
burst_wait_acked(struct burst *b, size_t n, int timeout_ms)
{
	int64_t until = jd_mono_ms() + timeout_ms;
	size_t start;

	pthread_mutex_lock(&b->mu);
	start = b->nacked;
	pthread_mutex_unlock(&b->mu);
	for (;;) {
		size_t now;
		pthread_mutex_lock(&b->mu);
		now = b->nacked;
		pthread_mutex_unlock(&b->mu);
		if (now >= start + n)
			return;
		ck_assert_msg(jd_mono_ms() < until, "the burst got %zu of %zu "
		              "more 202s", now - start, n);
		jd_pause_ms(20);
	}
}

/* Every acknowledged id is in the store. */
static void
assert_all_acked_present(jd *d, struct burst *b)
{
	long long present = jd_sql_count_ids(d, b->acked[0],
	                                     sizeof(b->acked[0]), b->nacked);

	ck_assert_uint_gt(b->nacked, 0);
	ck_assert_msg(present == (long long)b->nacked, "%lld of %zu jobs that "
	              "got a 202 are in the store", present, b->nacked);
}

/* Every job ends (none stays queued or running): recovery and the give-
 * back of an unknown COMMIT's claims leave nothing behind.  max_attempt:
 * 1 when jobd never died (a noop job never needs a second attempt), 2
 * after a kill -9 (an attempt that ran but whose end was not committed
 * runs again: at least once). */
static void
assert_all_end(jd *d, int max_attempt, int timeout_ms)
{
	char sql[128];

	int64_t until = jd_mono_ms() + timeout_ms;
	long long left = -1;

	while (jd_mono_ms() < until) {
		left = jd_sql_int(d, "SELECT count(*) FROM jobs WHERE status IN "
		                  "('queued', 'running')");
		if (left == 0)
			break;
		jd_pause_ms(100);
	}
	ck_assert_msg(left == 0, "%lld jobs still queued or running", left);
	ck_assert_int_eq(jd_sql_int(d, "SELECT count(*) FROM jobs WHERE "
	                            "status <> 'succeeded'"), 0);
	snprintf(sql, sizeof(sql), "SELECT count(*) FROM jobs WHERE "
	         "attempt > %d", max_attempt);
	ck_assert_int_eq(jd_sql_int(d, sql), 0);
}

static void
burst_free(struct burst *b)
{
	pthread_mutex_destroy(&b->mu);
	free(b->acked);
	free(b);
}

/* ---- tests ---- */

/* The database is not there when jobd starts: it starts anyway, not
 * ready, answers 503 with Retry-After, and serves once it appears. */
START_TEST(test_unreachable_at_startup)
{
	jd *d = jd_new(NULL);
	const char *const json[] = {"Content-Type: application/json", NULL};
	struct jd_resp *r;
	char *id;

	ck_assert_ptr_nonnull(d);
	ck_assert_int_eq(pg_ctl("stop -m fast"), 0);
	ck_assert_int_eq(jd_start(d), 0);
	ck_assert_int_eq(http_status(d, "GET", "/readyz"), 503);
	r = jd_request(d, "POST", "/jobs", json, "{\"type\":\"noop\"}");
	ck_assert_int_eq(r->status, 503);
	ck_assert_ptr_nonnull(jd_header(r, "Retry-After"));
	jd_resp_free(r);
	ck_assert_int_eq(http_status(d, "GET", "/jobs"), 503);
	{
		char *log = jd_wait_log(d, "retries with backoff", 10000);
		ck_assert_ptr_nonnull(log);
		free(log);
	}

	ck_assert_int_eq(pg_ctl("start"), 0);
	ck_assert_msg(wait_http(d, "/readyz", 200, 30000),
	              "jobd did not become ready after the database came");
	id = jd_submit(d, "{\"type\":\"noop\"}");
	ck_assert_ptr_nonnull(id);
	jd_resp_free(jd_wait_for_status(d, id, "succeeded", 20000));
	free(id);
	ck_assert_int_eq(jd_stop(d, 20000), 0);
	jd_free(d);
}
END_TEST

/* The server stops (fast shutdown, then immediate: a COMMIT may be cut
 * off) and starts again while 16 clients submit: 503s meanwhile, no 202
 * lost, jobd recovers by itself and every job ends once. */
static void
restart_under_load(const char *how)
{
	jd *d = jd_launch(NULL);
	struct burst *b;

	ck_assert_ptr_nonnull(d);
	b = burst_start(d->port);
	for (int round = 0; round < 3; round++) {
		burst_wait_acked(b, 200, 30000);
		ck_assert_int_eq(pg_ctl(how), 0);
		/* Until jobd has noticed (its writer or its readers). */
		ck_assert(wait_http(d, "/readyz", 503, 20000));
		ck_assert_int_eq(pg_ctl("start"), 0);
		ck_assert_msg(wait_http(d, "/readyz", 200, 30000), "round %d: "
		              "jobd did not come back by itself", round);
	}
	burst_wait_acked(b, 200, 30000);
	burst_stop(b);
	fprintf(stderr, "restart (%s) x3 under load: %zu answered 202, %ld "
	        "answered 503 (%ld with Retry-After), %ld failed, %ld other\n",
	        how, b->nacked, atomic_load(&b->n503),
	        atomic_load(&b->with_retry_after), atomic_load(&b->nfailed),
	        atomic_load(&b->nother));
	ck_assert_int_eq(atomic_load(&b->nother), 0);
	ck_assert_int_eq(atomic_load(&b->n503),
	                 atomic_load(&b->with_retry_after));
	ck_assert(!jd_proc_gone(d->pid)); /* never exited */
	assert_all_acked_present(d, b);
	assert_all_end(d, 1, 60000);
	burst_free(b);
	ck_assert_int_eq(jd_stop(d, 20000), 0);
	jd_free(d);
}

START_TEST(test_fast_restart_under_load)
{
	restart_under_load("stop -m fast");
}
END_TEST

START_TEST(test_immediate_stop_under_load)
{
	restart_under_load("stop -m immediate");
}
END_TEST

/* kill -9 of jobd during a burst: after a restart every 202 is there and
 * every job runs (recovery requeues what was running). */
START_TEST(test_kill9_during_burst)
{
	jd *d = jd_launch(NULL);
	struct burst *b;

	ck_assert_ptr_nonnull(d);
	b = burst_start(d->port);
	burst_wait_acked(b, 500, 30000);
	ck_assert_int_eq(jd_kill9(d), 128 + 9);
	burst_stop(b);
	ck_assert_int_eq(jd_start(d), 0);
	assert_all_acked_present(d, b);
	assert_all_end(d, 2, 60000);
	burst_free(b);
	ck_assert_int_eq(jd_stop(d, 20000), 0);
	jd_free(d);
}
END_TEST

/* An attempt that ends while the database is away: its result is written
 * after the reconnect, and reads answer 503 meanwhile. */
START_TEST(test_result_written_after_reconnect)
{
	jd *d = jd_launch(NULL);
	struct jd_resp *r;
	char *id, path[80];

	ck_assert_ptr_nonnull(d);
	id = jd_submit(d, "{\"type\":\"sleep\",\"payload\":{\"seconds\":1}}");
	ck_assert_ptr_nonnull(id);
	jd_resp_free(jd_wait_for_status(d, id, "running", 10000));
	ck_assert_int_eq(pg_ctl("stop -m fast"), 0);
	snprintf(path, sizeof(path), "/jobs/%s", id);
	ck_assert(wait_http(d, path, 503, 10000));
	/* The attempt ends meanwhile (1 s): the writer keeps its result. */
	ck_assert(jd_wait_metric(d, "jobd_workers_busy", 0, 10000));
	ck_assert_int_eq(http_status(d, "GET", path), 503);
	ck_assert_int_eq(pg_ctl("start"), 0);
	r = jd_wait_for_status(d, id, "succeeded", 30000);
	ck_assert_int_eq(r->status, 200);
	ck_assert_int_eq(jd_num(jd_json(r), "attempt", 0), 1);
	jd_resp_free(r);
	free(id);
	ck_assert_int_eq(jd_stop(d, 20000), 0);
	jd_free(d);
}
END_TEST

/* Two nodes on one database, each under a burst of submissions, while
 * the server stops (fast) and starts again three times: 503s meanwhile,
 * every 202 present, both nodes serve again by themselves, every job ends
 * once. */
START_TEST(test_two_nodes_restart_under_load)
{
	struct jd_opts oa = {.extra = "[store]\nnode = alpha\nlease = 30s\n"};
	jd *a = jd_new(&oa), *b;
	struct burst *ba, *bb;

	ck_assert_ptr_nonnull(a);
	struct jd_opts ob = {.extra = "[store]\nnode = bravo\nlease = 30s\n",
	                     .share_store = a};
	b = jd_new(&ob);
	ck_assert_ptr_nonnull(b);
	ck_assert_int_eq(jd_start(a), 0);
	ck_assert_int_eq(jd_start(b), 0);
	ba = burst_start(a->port);
	bb = burst_start(b->port);
	for (int round = 0; round < 3; round++) {
		burst_wait_acked(ba, 100, 30000);
		burst_wait_acked(bb, 100, 30000);
		ck_assert_int_eq(pg_ctl("stop -m fast"), 0);
		ck_assert(wait_http(a, "/readyz", 503, 20000));
		ck_assert(wait_http(b, "/readyz", 503, 20000));
		ck_assert_int_eq(pg_ctl("start"), 0);
		ck_assert_msg(wait_http(a, "/readyz", 200, 30000) &&
		              wait_http(b, "/readyz", 200, 30000), "round %d: "
		              "a node did not come back by itself", round);
	}
	burst_wait_acked(ba, 100, 30000);
	burst_wait_acked(bb, 100, 30000);
	burst_stop(ba);
	burst_stop(bb);
	fprintf(stderr, "two nodes, restart x3 under load: %zu + %zu answered "
	        "202, %ld + %ld answered 503\n", ba->nacked, bb->nacked,
	        atomic_load(&ba->n503), atomic_load(&bb->n503));
	ck_assert_int_eq(atomic_load(&ba->nother) + atomic_load(&bb->nother),
	                 0);
	ck_assert(!jd_proc_gone(a->pid) && !jd_proc_gone(b->pid));
	assert_all_acked_present(a, ba);
	assert_all_acked_present(a, bb);
	assert_all_end(a, 1, 60000);
	burst_free(ba);
	burst_free(bb);
	ck_assert_int_eq(jd_stop(b, 20000), 0);
	ck_assert_int_eq(jd_stop(a, 20000), 0);
	jd_free(b);
	jd_free(a);
}
END_TEST

/* Whatever a test did to it (a failed one may leave it stopped), the
 * server runs for the next. */
static void
server_up(void)
{
	if (pg_ctl("status") != 0)
		(void)pg_ctl("start");
}

static Suite *
suite(void)
{
	Suite *s = suite_create("pgfaults");
	TCase *tc = tcase_create("pgfaults");

	tcase_add_checked_fixture(tc, NULL, server_up);
	tcase_add_unchecked_fixture(tc, NULL, server_up);
	tcase_set_timeout(tc, 240);
	tcase_add_test(tc, test_unreachable_at_startup);
	tcase_add_test(tc, test_fast_restart_under_load);
	tcase_add_test(tc, test_immediate_stop_under_load);
	tcase_add_test(tc, test_kill9_during_burst);
	tcase_add_test(tc, test_result_written_after_reconnect);
	tcase_add_test(tc, test_two_nodes_restart_under_load);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	SRunner *sr;
	int failed, rc;

	if (!jd_store_is_pg()) {
		printf("pgfaults: PostgreSQL only (make integration-pg)\n");
		return 0;
	}
	rc = jd_pg_start(&srv);
	if (rc == 77) {
		printf("pgfaults: no PostgreSQL server here; skipped\n");
		return 0;
	}
	if (rc != 0) {
		fprintf(stderr, "pgfaults: cannot start PostgreSQL\n");
		return 1;
	}
	/* The harness's daemons use this server, which the tests stop. */
	setenv("JOBD_TEST_PG_URI", srv.uri, 1);
	setenv("JOBD_TEST_PG_BIN", srv.bin, 1);
	if (jd_global_init() != 0)
		return 1;
	sr = srunner_create(suite());
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	jd_pg_stop(&srv);
	return failed ? 1 : 0;
}
