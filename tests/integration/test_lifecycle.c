/*
 * test_lifecycle.c - a job's life through the real daemon (DESIGN.md §3):
 * success, retries with backoff until failed, priority order, delays,
 * graceful shutdown and recovery after kill -9.
 *
 * Each test starts its own daemon: several need one worker or a short
 * shutdown_grace, and the restart tests own their daemon's life.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "checks.h"
#include "harness.h"


static int64_t
time_field(struct jd_resp *r, const char *field)
{
	int64_t t = jd_parse_time_ms(jd_str(jd_json(r), field));

	ck_assert_msg(t >= 0, "%s is not a time: %s", field, r->body);
	return t;
}

static int
int_field(struct jd_resp *r, const char *field)
{
	return (int)jd_num(jd_json(r), field, -1);
}

START_TEST(test_echo_succeeds)
{
	jd *d = launch(2, NULL);
	struct jd_resp *r;
	const char *payload = "{\"n\":42,\"s\":\"h\\u00e9\",\"a\":[true,null]}";
	char body[256];
	cJSON *want;

	snprintf(body, sizeof(body), "{\"type\":\"echo\",\"payload\":%s}",
	         payload);
	r = jd_request(d, "POST", "/jobs",
	               (const char *const[]){"Content-Type: application/json",
	                                     NULL}, body);
	assert_status(r, 202);
	ck_assert_str_eq(jd_resp_str(r, "status"), "queued");
	char *id = strdup(jd_resp_str(r, "id"));
	jd_resp_free(r);

	r = wait_status(d, id, "succeeded", 10000);
	want = cJSON_Parse(payload);
	ck_assert_msg(cJSON_Compare(cJSON_GetObjectItemCaseSensitive(jd_json(r),
	                                                             "result"),
	                            want, true), "result differs: %s", r->body);
	ck_assert_int_eq(int_field(r, "attempt"), 1);
	ck_assert(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(jd_json(r),
	                                                        "error")));
	ck_assert(time_field(r, "finished_at") >= time_field(r, "started_at"));
	cJSON_Delete(want);
	jd_resp_free(r);
	free(id);
	jd_free(d);
}
END_TEST

START_TEST(test_fail_retries_then_fails)
{
	jd *d = launch(2, NULL);
	char *id = submit_ok(d, "{\"type\":\"fail\",\"max_attempts\":3}");
	struct jd_resp *r = wait_status(d, id, "failed", 20000);
	const char *err;

	ck_assert_int_eq(int_field(r, "attempt"), 3);
	ck_assert_int_eq(int_field(r, "max_attempts"), 3);
	err = jd_resp_str(r, "error");
	ck_assert_msg(err != NULL && err[0] != '\0', "no error: %s", r->body);
	ck_assert(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(jd_json(r),
	                                                        "result")));
	time_field(r, "finished_at");
	jd_resp_free(r);
	free(id);

	/* the handler's max_attempts (3) is the default */
	id = submit_ok(d, "{\"type\":\"fail\"}");
	r = wait_status(d, id, "failed", 20000);
	ck_assert_int_eq(int_field(r, "attempt"), 3);
	jd_resp_free(r);
	free(id);
	jd_free(d);
}
END_TEST

START_TEST(test_priority_order)
{
	static const int prio[4] = {-5, 10, 0, 10};
	/* expected start order: both 10s (oldest first), then 0, then -5 */
	static const int order[4] = {1, 3, 2, 0};
	jd *d = launch(1, NULL);
	char *blocker, *ids[4], body[128];
	int64_t started[4], created[4], blocker_end;
	struct jd_resp *r;

	blocker = submit_ok(d, "{\"type\":\"sleep\",\"payload\":{\"seconds\":0.5}}");
	jd_resp_free(wait_status(d, blocker, "running", 10000));
	for (int i = 0; i < 4; i++) {
		/* each sleeps 20 ms, so started_at values differ */
		snprintf(body, sizeof(body), "{\"type\":\"sleep\",\"priority\":%d,"
		         "\"payload\":{\"seconds\":0.02}}", prio[i]);
		ids[i] = submit_ok(d, body);
	}
	r = wait_status(d, blocker, "succeeded", 10000);
	blocker_end = time_field(r, "finished_at");
	jd_resp_free(r);
	for (int i = 0; i < 4; i++) {
		r = wait_status(d, ids[i], "succeeded", 10000);
		started[i] = time_field(r, "started_at");
		created[i] = time_field(r, "created_at");
		ck_assert_int_eq(int_field(r, "priority"), prio[i]);
		jd_resp_free(r);
		/* otherwise the test proves nothing */
		ck_assert_msg(created[i] <= blocker_end, "job %d was submitted "
		              "after the worker became free", i);
	}
	for (int k = 1; k < 4; k++)
		ck_assert_msg(started[order[k - 1]] < started[order[k]],
		              "start order wrong: prio %d started at %lld, "
		              "prio %d at %lld (expected 10,10,0,-5)",
		              prio[order[k - 1]],
		              (long long)started[order[k - 1]], prio[order[k]],
		              (long long)started[order[k]]);
	for (int i = 0; i < 4; i++)
		free(ids[i]);
	free(blocker);
	jd_free(d);
}
END_TEST

/* Submits a sleep job of `seconds` with `priority`; returns its id. */
static char *
submit_sleep(jd *d, int priority, const char *seconds)
{
	char body[128];

	snprintf(body, sizeof(body), "{\"type\":\"sleep\",\"priority\":%d,"
	         "\"payload\":{\"seconds\":%s}}", priority, seconds);
	return submit_ok(d, body);
}

/*
 * Claim order over one worker: highest priority first, then the oldest
 * among equal priorities (FIFO); and a job submitted later with a higher
 * priority still goes before one that was already waiting.
 */
START_TEST(test_claim_order_priority_then_fifo)
{
	/* phase 1: submitted in this order behind a 0.5 s blocker */
	static const int prio[5] = {0, 5, -3, 5, 10};
	/* expected start order (indexes into prio): 10, first 5, second 5,
	 * 0, -3 */
	static const int order[5] = {4, 1, 3, 0, 2};
	jd *d = launch(1, NULL);
	char *blocker, *ids[5], *busy, *a, *b;
	int64_t started[5], blocker_end, busy_end, a_start, b_start;
	struct jd_resp *r;

	blocker = submit_sleep(d, 0, "0.5");
	jd_resp_free(wait_status(d, blocker, "running", 10000));
	for (int i = 0; i < 5; i++)
		/* each sleeps 50 ms, so started_at values differ */
		ids[i] = submit_sleep(d, prio[i], "0.05");
	r = wait_status(d, blocker, "succeeded", 10000);
	blocker_end = time_field(r, "finished_at");
	jd_resp_free(r);
	for (int i = 0; i < 5; i++) {
		r = wait_status(d, ids[i], "succeeded", 10000);
		started[i] = time_field(r, "started_at");
		ck_assert_int_eq(int_field(r, "priority"), prio[i]);
		/* otherwise the test proves nothing */
		ck_assert_msg(time_field(r, "created_at") <= blocker_end,
		              "job %d was submitted after the worker became "
		              "free: %s", i, r->body);
		ck_assert_msg(started[i] >= blocker_end, "job %d started "
		              "before the only worker was free: %s", i, r->body);
		jd_resp_free(r);
	}
	for (int k = 1; k < 5; k++)
		ck_assert_msg(started[order[k - 1]] < started[order[k]],
		              "start order wrong: job %d (prio %d) started at "
		              "%lld, job %d (prio %d) at %lld (expected 10, 5, 5, "
		              "0, -3, FIFO among equals)",
		              order[k - 1], prio[order[k - 1]],
		              (long long)started[order[k - 1]], order[k],
		              prio[order[k]], (long long)started[order[k]]);

	/* phase 2: the worker is idle, so this one starts at once */
	busy = submit_sleep(d, 0, "0.3");
	jd_resp_free(wait_status(d, busy, "running", 10000));
	a = submit_sleep(d, 0, "0.05");
	b = submit_sleep(d, 1, "0.05");
	r = wait_status(d, busy, "succeeded", 10000);
	busy_end = time_field(r, "finished_at");
	jd_resp_free(r);
	r = wait_status(d, a, "succeeded", 10000);
	a_start = time_field(r, "started_at");
	ck_assert_msg(time_field(r, "created_at") <= busy_end,
	              "A was submitted after the worker became free: %s",
	              r->body);
	jd_resp_free(r);
	r = wait_status(d, b, "succeeded", 10000);
	b_start = time_field(r, "started_at");
	ck_assert_msg(time_field(r, "created_at") <= busy_end,
	              "B was submitted after the worker became free: %s",
	              r->body);
	jd_resp_free(r);
	ck_assert_msg(b_start < a_start, "B (prio 1, submitted second) "
	              "started at %lld, not before A (prio 0, waiting "
	              "first) at %lld", (long long)b_start,
	              (long long)a_start);

	for (int i = 0; i < 5; i++)
		free(ids[i]);
	free(blocker);
	free(busy);
	free(a);
	free(b);
	jd_free(d);
}
END_TEST

START_TEST(test_delay)
{
	jd *d = launch(2, NULL);
	char *id = submit_ok(d, "{\"type\":\"echo\",\"delay\":0.3,"
	                        "\"payload\":1}");
	struct jd_resp *r = wait_status(d, id, "succeeded", 10000);
	int64_t created = time_field(r, "created_at");

	ck_assert_int_eq(time_field(r, "run_at"), created + 300);
	ck_assert_msg(time_field(r, "started_at") >= created + 300,
	              "started before its delay: %s", r->body);
	jd_resp_free(r);
	free(id);
	jd_free(d);
}
END_TEST

START_TEST(test_run_at_past)
{
	jd *d = launch(2, NULL);
	char *id = submit_ok(d, "{\"type\":\"echo\","
	                        "\"run_at\":\"2000-01-01T00:00:00Z\"}");
	struct jd_resp *r = wait_status(d, id, "succeeded", 5000);
	int64_t created = time_field(r, "created_at");

	/* a past run_at means now */
	ck_assert_int_eq(time_field(r, "run_at"), created);
	ck_assert_msg(time_field(r, "started_at") - created < 2000,
	              "not run at once: %s", r->body);
	jd_resp_free(r);
	free(id);

	/* a future run_at is kept as given, to the millisecond */
	int64_t at = jd_now_ms() + 86400000;
	time_t secs = (time_t)(at / 1000);
	struct tm tm;
	char stamp[40], body[128];
	gmtime_r(&secs, &tm);
	strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(body, sizeof(body), "{\"type\":\"echo\",\"run_at\":"
	         "\"%s.%03dZ\"}", stamp, (int)(at % 1000));
	id = submit_ok(d, body);
	char path[96];
	snprintf(path, sizeof(path), "/jobs/%s", id);
	r = jd_request(d, "GET", path, NULL, NULL);
	assert_status(r, 200);
	ck_assert_str_eq(jd_resp_str(r, "status"), "queued");
	ck_assert_int_eq(time_field(r, "run_at"), at);
	jd_resp_free(r);
	free(id);
	jd_free(d);
}
END_TEST

START_TEST(test_graceful_shutdown)
{
	jd *d = launch(1, "[workers]\nshutdown_grace = 200ms\n");
	char *id = submit_ok(d, "{\"type\":\"sleep\",\"payload\":{\"seconds\":30}}");
	struct jd_resp *r = wait_status(d, id, "running", 10000);
	int64_t t0;
	int rc;
	char sql[160], *status;

	ck_assert_int_eq(int_field(r, "attempt"), 1);
	jd_resp_free(r);

	t0 = jd_mono_ms();
	rc = jd_stop(d, 10000);
	ck_assert_msg(rc == 0, "exit status %d after SIGTERM", rc);
	ck_assert_msg(jd_mono_ms() - t0 < 5000, "took %lld ms to stop",
	              (long long)(jd_mono_ms() - t0));

	/* stored back as queued, the interrupted attempt not counted */
	snprintf(sql, sizeof(sql), "SELECT status FROM jobs WHERE id = '%s'",
	         id);
	status = jd_sql_text(d, sql);
	ck_assert_msg(status != NULL && strcmp(status, "queued") == 0,
	              "stored status %s", status ? status : "(none)");
	free(status);
	snprintf(sql, sizeof(sql), "SELECT attempt FROM jobs WHERE id = '%s'",
	         id);
	ck_assert_int_eq(jd_sql_int(d, sql), 0);

	ck_assert_int_eq(jd_start(d), 0);
	r = wait_status(d, id, "running", 10000);
	ck_assert_msg(int_field(r, "attempt") == 1,
	              "attempt after a graceful restart: %s", r->body);
	jd_resp_free(r);
	free(id);
	jd_free(d);
}
END_TEST

START_TEST(test_kill9_requeues)
{
	jd *d = launch(1, NULL);
	char *id = submit_ok(d, "{\"type\":\"sleep\",\"payload\":{\"seconds\":30}}");
	struct jd_resp *r = wait_status(d, id, "running", 10000);

	ck_assert_int_eq(int_field(r, "attempt"), 1);
	jd_resp_free(r);
	ck_assert_int_eq(jd_kill9(d), 128 + 9);
	ck_assert_int_eq(jd_start(d), 0);
	/* requeued at start-up with its attempt counted, then claimed */
	r = wait_status(d, id, "running", 10000);
	ck_assert_msg(int_field(r, "attempt") == 2,
	              "attempt after kill -9 and restart: %s", r->body);
	jd_resp_free(r);
	free(id);
	jd_free(d);
}
END_TEST

static Suite *
lifecycle_suite(void)
{
	Suite *s = suite_create("lifecycle");
	TCase *tc = tcase_create("lifecycle");

	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_echo_succeeds);
	tcase_add_test(tc, test_fail_retries_then_fails);
	tcase_add_test(tc, test_priority_order);
	tcase_add_test(tc, test_claim_order_priority_then_fifo);
	tcase_add_test(tc, test_delay);
	tcase_add_test(tc, test_run_at_past);
	tcase_add_test(tc, test_graceful_shutdown);
	tcase_add_test(tc, test_kill9_requeues);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	return run_suite(lifecycle_suite());
}
