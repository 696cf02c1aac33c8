/*
 * test_dashboard.c - what the dashboard reads besides the job API, over
 * the real daemon:
 *
 *   GET /stats  the recent rates computed by the daemon: 60 buckets of 10 s,
 *               oldest first, counting submissions (not idempotent replays)
 *               and final states (not retries);
 *   GET /types  every configured handler with its kind, concurrency and
 *               the queued and running counts from the store (DESIGN §2);
 *   auth        both ask for the token like every other route.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/stat.h>
#include <fcntl.h>
#include <unistd.h>

#include "checks.h"
#include "harness.h"

#define WAIT_MS 20000

/* Sums of a /stats answer, after checking its shape. */
struct sums {
	long long submitted, finished;
};

static struct sums
stats_sums(jd *d, const char *const hdrs[])
{
	struct jd_resp *r = jd_request(d, "GET", "/stats", hdrs, NULL);
	struct sums s = {0, 0};
	cJSON *o, *buckets, *b;
	int64_t prev = -1, now;
	int n = 0;

	assert_status(r, 200);
	ck_assert_str_eq(jd_header(r, "Content-Type"), "application/json");
	o = jd_json(r);
	ck_assert_msg(o != NULL, "not JSON: %s", r->body);
	ck_assert_int_eq((int)jd_num(o, "bucket_seconds", -1), 10);
	now = jd_parse_time_ms(jd_str(o, "now"));
	ck_assert_msg(now > 0, "no now: %s", r->body);
	buckets = cJSON_GetObjectItemCaseSensitive(o, "buckets");
	ck_assert_msg(cJSON_IsArray(buckets), "no buckets: %s", r->body);
	cJSON_ArrayForEach(b, buckets) {
		int64_t t = jd_parse_time_ms(jd_str(b, "t"));
		double sub = jd_num(b, "submitted", -1);
		double fin = jd_num(b, "finished", -1);

		ck_assert_msg(t > 0, "bucket %d: bad t: %s", n, r->body);
		/* Oldest first, 10 s apart (wall time of monotonic bucket
		 * starts: allow a millisecond of rounding). */
		if (prev >= 0)
			ck_assert_msg(t - prev >= 9999 && t - prev <= 10001,
			              "bucket %d starts %lld ms after the one "
			              "before", n, (long long)(t - prev));
		prev = t;
		ck_assert_msg(sub >= 0 && fin >= 0, "bucket %d: %s", n,
		              r->body);
		s.submitted += (long long)sub;
		s.finished += (long long)fin;
		n++;
	}
	ck_assert_int_eq(n, 60);
	/* The current, partial bucket is last: it started at most 10 s
	 * before now. */
	ck_assert_msg(prev <= now + 1 && now - prev <= 10001,
	              "last bucket at %lld, now %lld", (long long)prev,
	              (long long)now);
	jd_resp_free(r);
	return s;
}

/* Polls /stats until its finished sum reaches want (final states are
 * counted just after their commit, which a reader may see first). */
static struct sums
stats_wait_finished(jd *d, const char *const hdrs[], long long want)
{
	int64_t end = jd_mono_ms() + WAIT_MS;
	struct sums s;

	for (;;) {
		s = stats_sums(d, hdrs);
		if (s.finished >= want || jd_mono_ms() > end)
			return s;
		jd_pause_ms(20);
	}
}

START_TEST(test_stats_counts)
{
	jd *d = launch(2, "[handler.flaky]\nbuiltin = fail\nmax_attempts = 2\n"
	               "backoff_base = 10ms\nbackoff_max = 20ms\n");
	const char *key[] = {"Content-Type: application/json",
	                     "Idempotency-Key: dash-1", NULL};
	struct jd_resp *r;
	struct sums s;
	char *ids[3], *delayed, *flaky, path[64];

	/* Nothing yet: 60 empty buckets at once. */
	s = stats_sums(d, NULL);
	ck_assert_int_eq(s.submitted, 0);
	ck_assert_int_eq(s.finished, 0);

	for (int i = 0; i < 3; i++)
		ids[i] = submit_ok(d, "{\"type\":\"noop\"}");
	/* Counted before the 202 was sent. */
	s = stats_sums(d, NULL);
	ck_assert_int_eq(s.submitted, 3);

	/* An idempotent replay is not a new submission. */
	r = jd_request(d, "POST", "/jobs", key, "{\"type\":\"noop\"}");
	assert_status(r, 202);
	jd_resp_free(r);
	r = jd_request(d, "POST", "/jobs", key, "{\"type\":\"noop\"}");
	assert_status(r, 202);
	ck_assert_str_eq(jd_header(r, "Idempotent-Replayed"), "true");
	jd_resp_free(r);
	s = stats_sums(d, NULL);
	ck_assert_int_eq(s.submitted, 4);

	for (int i = 0; i < 3; i++) {
		jd_resp_free(wait_status(d, ids[i], "succeeded", WAIT_MS));
		free(ids[i]);
	}
	s = stats_wait_finished(d, NULL, 4);
	ck_assert_int_eq(s.finished, 4);

	/* A cancel is a final state; a retry of a failed attempt is not. */
	delayed = submit_ok(d, "{\"type\":\"noop\",\"delay\":3600}");
	snprintf(path, sizeof(path), "/jobs/%s", delayed);
	r = jd_request(d, "DELETE", path, NULL, NULL);
	assert_status(r, 200);
	jd_resp_free(r);
	flaky = submit_ok(d, "{\"type\":\"flaky\"}");
	r = wait_status(d, flaky, "failed", WAIT_MS);
	ck_assert_int_eq((int)jd_num(jd_json(r), "attempt", -1), 2);
	jd_resp_free(r);
	s = stats_wait_finished(d, NULL, 6);
	ck_assert_int_eq(s.submitted, 6);
	ck_assert_int_eq(s.finished, 6);

	/* Read-only: asking again changes nothing; other methods: 405. */
	s = stats_sums(d, NULL);
	ck_assert_int_eq(s.submitted, 6);
	ck_assert_int_eq(s.finished, 6);
	r = jd_request(d, "POST", "/stats", NULL, "");
	assert_status(r, 405);
	ck_assert_str_eq(jd_header(r, "Allow"), "GET, HEAD");
	jd_resp_free(r);
	free(delayed);
	free(flaky);
	jd_free(d);
}
END_TEST

/* The entry of /types for name; fails when it is missing. */
static cJSON *
type_entry(struct jd_resp *r, const char *name)
{
	cJSON *types = cJSON_GetObjectItemCaseSensitive(jd_json(r), "types");
	cJSON *t;

	ck_assert_msg(cJSON_IsArray(types), "no types: %s", r->body);
	cJSON_ArrayForEach(t, types) {
		const char *n = jd_str(t, "name");
		if (n != NULL && strcmp(n, name) == 0)
			return t;
	}
	ck_abort_msg("type %s not in %s", name, r->body);
	return NULL;
}

static void
assert_type(struct jd_resp *r, const char *name, const char *kind,
            int concurrency, int queued, int running)
{
	cJSON *t = type_entry(r, name);
	cJSON *c = cJSON_GetObjectItemCaseSensitive(t, "concurrency");

	ck_assert_str_eq(jd_str(t, "kind"), kind);
	ck_assert_msg(cJSON_IsFalse(cJSON_GetObjectItemCaseSensitive(t,
	              "paused")), "%s: paused is not false", name);
	ck_assert_msg(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(t,
	              "rate")), "%s: rate is not null", name);
	if (concurrency == 0)
		ck_assert_msg(cJSON_IsNull(c), "%s: concurrency not null",
		              name);
	else
		ck_assert_int_eq((int)jd_num(t, "concurrency", -1),
		                 concurrency);
	ck_assert_msg((int)jd_num(t, "queued", -1) == queued &&
	              (int)jd_num(t, "running", -1) == running,
	              "%s: want queued %d running %d in %s", name, queued,
	              running, r->body);
}

START_TEST(test_types)
{
	jd *d = launch(1, "[handler.slow]\nbuiltin = sleep\nconcurrency = 3\n"
	               "[handler.greet]\ncommand = /bin/cat\n");
	struct jd_resp *r;
	char *busy, *later, *w[2], path[64];
	cJSON *types;

	r = jd_request(d, "GET", "/types", NULL, NULL);
	assert_status(r, 200);
	ck_assert_str_eq(jd_header(r, "Content-Type"), "application/json");
	types = cJSON_GetObjectItemCaseSensitive(jd_json(r), "types");
	ck_assert_int_eq(cJSON_GetArraySize(types), 6);
	assert_type(r, "noop", "builtin", 0, 0, 0);
	assert_type(r, "slow", "builtin", 3, 0, 0);
	assert_type(r, "greet", "exec", 0, 0, 0);
	jd_resp_free(r);

	/* One worker, busy with a long job: what comes after waits. */
	busy = submit_ok(d, "{\"type\":\"slow\",\"payload\":{\"seconds\":60}}");
	jd_resp_free(wait_status(d, busy, "running", WAIT_MS));
	w[0] = submit_ok(d, "{\"type\":\"noop\"}");
	w[1] = submit_ok(d, "{\"type\":\"echo\",\"payload\":1}");
	later = submit_ok(d, "{\"type\":\"noop\",\"delay\":3600}");
	r = jd_request(d, "GET", "/types", NULL, NULL);
	assert_status(r, 200);
	assert_type(r, "slow", "builtin", 3, 0, 1);
	assert_type(r, "noop", "builtin", 0, 2, 0); /* delayed ones count */
	assert_type(r, "echo", "builtin", 0, 1, 0);
	assert_type(r, "greet", "exec", 0, 0, 0);
	jd_resp_free(r);

	/* The busy one cancelled: the others run and nothing is left. */
	snprintf(path, sizeof(path), "/jobs/%s", busy);
	r = jd_request(d, "DELETE", path, NULL, NULL);
	ck_assert_msg(r->status == 202 || r->status == 200, "cancel: %ld",
	              r->status);
	jd_resp_free(r);
	jd_resp_free(wait_status(d, busy, "cancelled", WAIT_MS));
	jd_resp_free(wait_status(d, w[0], "succeeded", WAIT_MS));
	jd_resp_free(wait_status(d, w[1], "succeeded", WAIT_MS));
	r = jd_request(d, "GET", "/types", NULL, NULL);
	assert_status(r, 200);
	assert_type(r, "slow", "builtin", 3, 0, 0);
	assert_type(r, "noop", "builtin", 0, 1, 0);
	assert_type(r, "echo", "builtin", 0, 0, 0);
	jd_resp_free(r);

	r = jd_request(d, "DELETE", "/types", NULL, NULL);
	assert_status(r, 405);
	jd_resp_free(r);
	r = jd_request(d, "GET", "/types/", NULL, NULL);
	assert_status(r, 404);
	jd_resp_free(r);
	free(busy);
	free(later);
	free(w[0]);
	free(w[1]);
	jd_free(d);
}
END_TEST

/* Whether /types lists name now. */
static bool
types_has(jd *d, const char *name)
{
	struct jd_resp *r = jd_request(d, "GET", "/types", NULL, NULL);
	cJSON *types, *t;
	bool found = false;

	assert_status(r, 200);
	types = cJSON_GetObjectItemCaseSensitive(jd_json(r), "types");
	cJSON_ArrayForEach(t, types) {
		const char *n = jd_str(t, "name");
		if (n != NULL && strcmp(n, name) == 0)
			found = true;
	}
	jd_resp_free(r);
	return found;
}

/* A handler added by SIGHUP shows in /types (the reloaded set). */
START_TEST(test_types_after_reload)
{
	jd *d = launch(1, NULL);
	const char *more = "\n[handler.added]\ncommand = /bin/cat\n";
	int fd;

	ck_assert(!types_has(d, "added"));
	fd = open(d->conf_path, O_WRONLY | O_APPEND);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(write(fd, more, strlen(more)), (ssize_t)strlen(more));
	close(fd);
	ck_assert_int_eq(kill(d->pid, SIGHUP), 0);
	for (int64_t end = jd_mono_ms() + WAIT_MS; !types_has(d, "added");
	     jd_pause_ms(20))
		ck_assert_msg(jd_mono_ms() < end, "type \"added\" not listed "
		              "after SIGHUP");
	ck_assert(types_has(d, "noop"));
	jd_free(d);
}
END_TEST

START_TEST(test_auth_applies)
{
	struct jd_opts o = {.threads = 1};
	const char *good[] = {"Authorization: Bearer dash-secret-token-123", NULL};
	const char *bad[] = {"Authorization: Bearer dash-secret-token-12", NULL};
	const char *paths[] = {"/stats", "/types"};
	char tokens[320], conf[400];
	jd *d = jd_new(&o);
	int fd;

	ck_assert_ptr_nonnull(d);
	snprintf(tokens, sizeof(tokens), "%s/tokens", d->dir);
	fd = open(tokens, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(write(fd, "ops:dash-secret-token-123\n", 26), 26);
	close(fd);
	snprintf(conf, sizeof(conf), "[auth]\ntokens_file = %s\n", tokens);
	fd = open(d->conf_path, O_WRONLY | O_APPEND);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(write(fd, conf, strlen(conf)), (ssize_t)strlen(conf));
	close(fd);
	ck_assert_int_eq(jd_start(d), 0);

	for (int i = 0; i < 2; i++) {
		struct jd_resp *r = jd_request(d, "GET", paths[i], NULL, NULL);
		assert_status(r, 401);
		ck_assert_ptr_nonnull(jd_header(r, "WWW-Authenticate"));
		jd_resp_free(r);
		r = jd_request(d, "GET", paths[i], bad, NULL);
		assert_status(r, 401);
		jd_resp_free(r);
		r = jd_request(d, "GET", paths[i], good, NULL);
		assert_status(r, 200);
		jd_resp_free(r);
	}
	(void)stats_sums(d, good);
	jd_free(d);
}
END_TEST

static Suite *
dashboard_suite(void)
{
	Suite *s = suite_create("dashboard");
	TCase *tc = tcase_create("dashboard");

	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, test_stats_counts);
	tcase_add_test(tc, test_types);
	tcase_add_test(tc, test_types_after_reload);
	tcase_add_test(tc, test_auth_applies);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	return run_suite(dashboard_suite());
}
