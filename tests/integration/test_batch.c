/*
 * test_batch.c - POST /jobs with a JSON array (DESIGN.md §2 "POST /jobs
 * with an array", issue 15): 202 with the ids in the order given, all of
 * the jobs or none (an invalid element, a key used before, a queue
 * without room for the whole batch), errors[] with the index of every
 * invalid element, server.max_batch, an empty array, hostile shapes
 * (nested arrays, 10 MB of '[', elements that are not objects), an
 * Idempotency-Key covering the batch (replay, 409, across a restart),
 * Prefer: wait ignored, and batches racing single POSTs for one key.
 * Runs on SQLite, and on PostgreSQL under JOBD_TEST_STORE=pg.
 */
#include <check.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "checks.h"
#include "harness.h"

static jd *d;

static void
setup(void)
{
	d = launch(2, NULL);
}

static void
teardown(void)
{
	jd_free(d);
	d = NULL;
}

/* ---- helpers ---- */

/* POST /jobs of body with Content-Type: application/json and, when not
 * NULL, the header extra ("Name: value"). */
static struct jd_resp *
post_c(jd_client *c, jd *dd, const char *body, const char *extra)
{
	const char *h[] = {"Content-Type: application/json", extra, NULL};
	struct jd_resp *r = c ? jd_client_request(c, "POST", "/jobs", h, body)
	                      : jd_request(dd, "POST", "/jobs", h, body);

	ck_assert_ptr_nonnull(r);
	return r;
}

static struct jd_resp *
post(const char *body, const char *extra)
{
	return post_c(NULL, d, body, extra);
}

/* A batch of n jobs of type with payload {"i": i, "tag": tag}: a new
 * string the caller frees. */
static char *
batch_body(int n, const char *type, const char *tag)
{
	size_t cap = 64 + (size_t)n * (96 + strlen(tag) + strlen(type));
	char *b = malloc(cap);
	size_t len = 0;

	ck_assert_ptr_nonnull(b);
	b[len++] = '[';
	for (int i = 0; i < n; i++)
		len += (size_t)snprintf(b + len, cap - len,
		                        "%s{\"type\":\"%s\",\"payload\":"
		                        "{\"i\":%d,\"tag\":\"%s\"}}",
		                        i ? "," : "", type, i, tag);
	snprintf(b + len, cap - len, "]");
	return b;
}

static long long
count_jobs(jd *dd)
{
	long long n = jd_sql_int(dd, "SELECT count(*) FROM jobs");

	ck_assert_msg(n >= 0, "cannot count the jobs");
	return n;
}

/* The answer's jobs array, checked: n entries of {id, status, href}. */
static cJSON *
answer_jobs(struct jd_resp *r, int n)
{
	cJSON *o = jd_json(r), *jobs;
	int i = 0;

	assert_status(r, 202);
	ck_assert_msg(cJSON_IsObject(o), "not JSON: %s", r->body);
	jobs = cJSON_GetObjectItemCaseSensitive(o, "jobs");
	ck_assert_msg(cJSON_IsArray(jobs) && cJSON_GetArraySize(jobs) == n,
	              "expected %d jobs: %.300s", n, r->body);
	for (cJSON *j = jobs->child; j; j = j->next, i++) {
		char href[64];
		const char *id = jd_str(j, "id");
		ck_assert_msg(id != NULL && strlen(id) == 36, "job %d: %s", i,
		              r->body);
		snprintf(href, sizeof(href), "/jobs/%s", id);
		ck_assert_str_eq(jd_str(j, "href"), href);
		ck_assert_ptr_nonnull(jd_str(j, "status"));
	}
	return jobs;
}

static const char *
nth_id(cJSON *jobs, int i)
{
	return jd_str(cJSON_GetArrayItem(jobs, i), "id");
}

/* A problem with errors[] holding exactly the indexes want[0..n). */
static void
assert_errors(struct jd_resp *r, long status, const int *want, int n)
{
	cJSON *o = jd_json(r), *errs;
	int i = 0;

	assert_status(r, (int)status);
	ck_assert_str_eq(jd_header(r, "Content-Type"),
	                 "application/problem+json");
	ck_assert_msg(jd_num(o, "status", -1) == (double)status, "%s",
	              r->body);
	errs = cJSON_GetObjectItemCaseSensitive(o, "errors");
	if (n == 0) {
		ck_assert_msg(errs == NULL, "errors in %s", r->body);
		return;
	}
	ck_assert_msg(cJSON_IsArray(errs) && cJSON_GetArraySize(errs) == n,
	              "expected %d errors: %s", n, r->body);
	for (cJSON *e = errs->child; e; e = e->next, i++) {
		ck_assert_msg(jd_num(e, "index", -1) == (double)want[i],
		              "errors[%d] is not index %d: %s", i, want[i],
		              r->body);
		ck_assert_msg(jd_str(e, "detail") != NULL &&
		              jd_str(e, "detail")[0] != '\0', "%s", r->body);
	}
}

/* ---- tests ---- */

START_TEST(test_ids_in_order)
{
	char *body = batch_body(100, "noop", "order");
	struct jd_resp *r = post(body, NULL);
	cJSON *jobs = answer_jobs(r, 100);

	ck_assert_ptr_null(jd_header(r, "Location"));
	ck_assert_str_eq(jd_header(r, "Content-Type"), "application/json");
	ck_assert_ptr_null(jd_header(r, "Idempotent-Replayed"));
	for (int i = 0; i < 100; i++) {
		char path[64];
		const char *id = nth_id(jobs, i);
		if (i > 0)
			ck_assert_msg(strcmp(nth_id(jobs, i - 1), id) < 0,
			              "ids out of order at %d", i);
		ck_assert_str_eq(jd_str(cJSON_GetArrayItem(jobs, i), "status"),
		                 "queued");
		snprintf(path, sizeof(path), "/jobs/%s", id);
		struct jd_resp *g = jd_request(d, "GET", path, NULL, NULL);
		assert_status(g, 200);
		cJSON *p = cJSON_GetObjectItemCaseSensitive(jd_json(g),
		                                            "payload");
		ck_assert_msg(jd_num(p, "i", -1) == i, "job %d: %s", i,
		              g->body);
		jd_resp_free(g);
	}
	ck_assert_int_eq(count_jobs(d), 100);
	/* They run like any job. */
	jd_resp_free(wait_status(d, nth_id(jobs, 99), "succeeded", 10000));
	jd_resp_free(r);
	free(body);
}
END_TEST

START_TEST(test_every_element_like_single)
{
	/* Every field a single POST takes, in an element. */
	struct jd_resp *r = post("[{\"type\":\"echo\",\"payload\":{\"a\":[1,"
	                         "2.5e3,\"\\u00e9\"]},\"priority\":-100,"
	                         "\"delay\":3600,\"max_attempts\":100,"
	                         "\"timeout\":0.5,\"cancel_on_disconnect\":"
	                         "false},{\"type\":\"noop\",\"run_at\":"
	                         "\"2020-01-01T00:00:00Z\",\"priority\":100}]",
	                         NULL);
	cJSON *jobs = answer_jobs(r, 2);
	char path[64];

	snprintf(path, sizeof(path), "/jobs/%s", nth_id(jobs, 0));
	struct jd_resp *g = jd_request(d, "GET", path, NULL, NULL);
	assert_status(g, 200);
	cJSON *o = jd_json(g);
	ck_assert_int_eq((int)jd_num(o, "priority", 0), -100);
	ck_assert_int_eq((int)jd_num(o, "max_attempts", 0), 100);
	ck_assert_str_eq(jd_str(o, "status"), "queued");
	jd_resp_free(g);
	jd_resp_free(wait_status(d, nth_id(jobs, 1), "succeeded", 10000));
	jd_resp_free(r);
}
END_TEST

START_TEST(test_one_bad_element_none_stored)
{
	char *body = batch_body(20, "noop", "x");
	/* Element 13 names no handler: the whole batch is refused. */
	char *p = strstr(body, "\"i\":13,");
	ck_assert_ptr_nonnull(p);
	while (p > body && strncmp(p, "\"noop\"", 6) != 0)
		p--;
	memcpy(p, "\"nop_\"", 6);
	struct jd_resp *r = post(body, NULL);
	int want[] = {13};

	assert_errors(r, 422, want, 1);
	ck_assert_int_eq(count_jobs(d), 0);
	jd_resp_free(r);
	free(body);
}
END_TEST

START_TEST(test_every_invalid_index)
{
	/* 422: every invalid element out of range or unknown. */
	struct jd_resp *r = post("[{\"type\":\"noop\"},{\"type\":\"nope\"},"
	                         "{\"type\":\"noop\",\"priority\":101},"
	                         "{\"type\":\"noop\"},{\"type\":\"noop\","
	                         "\"color\":1},{\"type\":\"noop\","
	                         "\"max_attempts\":0}]", NULL);
	int want1[] = {1, 2, 4, 5};

	assert_errors(r, 422, want1, 4);
	jd_resp_free(r);
	/* 400 as soon as one of them is malformed (a wrong type). */
	r = post("[{\"type\":\"nope\"},{\"type\":\"noop\",\"priority\":\"1\"},"
	         "{\"type\":\"noop\"},{\"payload\":1}]", NULL);
	int want2[] = {0, 1, 3};
	assert_errors(r, 400, want2, 3);
	jd_resp_free(r);
	ck_assert_int_eq(count_jobs(d), 0);
}
END_TEST

/* depends_on inside a batch is refused (422 naming the element): a
 * batch's jobs are inserted queued, so a dependent one would run at once
 * (it did, before the refusal). */
START_TEST(test_non_object_elements)
{
	struct jd_resp *r = post("[1, \"noop\", null, true, {}, "
	                         "{\"type\":\"noop\"}, -2.5e-3, false]", NULL);
	int want[] = {0, 1, 2, 3, 4, 6, 7};

	assert_errors(r, 400, want, 7);
	jd_resp_free(r);
	ck_assert_int_eq(count_jobs(d), 0);
}
END_TEST

START_TEST(test_nested_arrays)
{
	struct jd_resp *r = post("[[{\"type\":\"noop\"}]]", NULL);
	int want0[] = {0};

	assert_errors(r, 400, want0, 1);
	jd_resp_free(r);
	r = post("[{\"type\":\"noop\"},[[]],{\"type\":\"noop\"},[]]", NULL);
	int want1[] = {1, 3};
	assert_errors(r, 400, want1, 2);
	jd_resp_free(r);
	ck_assert_int_eq(count_jobs(d), 0);
}
END_TEST

START_TEST(test_empty_array)
{
	static const char *const bodies[] = {"[]", " [ \r\n\t] ", NULL};

	for (int i = 0; bodies[i]; i++) {
		struct jd_resp *r = post(bodies[i], NULL);
		assert_errors(r, 422, NULL, 0);
		ck_assert_msg(strstr(r->body, "empty") != NULL, "%s", r->body);
		jd_resp_free(r);
	}
	ck_assert_int_eq(count_jobs(d), 0);
}
END_TEST

START_TEST(test_max_batch)
{
	jd *dd = launch(2, "[server]\nmax_batch = 5\n");
	char *b5 = batch_body(5, "noop", "five");
	char *b6 = batch_body(6, "noop", "six");
	struct jd_resp *r = post_c(NULL, dd, b6, NULL);

	assert_errors(r, 422, NULL, 0);
	ck_assert_msg(strstr(r->body, "max_batch = 5") != NULL, "%s", r->body);
	jd_resp_free(r);
	ck_assert_int_eq(count_jobs(dd), 0);
	r = post_c(NULL, dd, b5, NULL);
	answer_jobs(r, 5);
	jd_resp_free(r);
	ck_assert_int_eq(count_jobs(dd), 5);
	free(b5);
	free(b6);
	jd_free(dd);

	/* The default: 1,000 in one batch, not 1,001. */
	char *b1000 = batch_body(1000, "noop", "k");
	char *b1001 = batch_body(1001, "noop", "k");
	r = post(b1001, NULL);
	assert_errors(r, 422, NULL, 0);
	jd_resp_free(r);
	r = post(b1000, NULL);
	cJSON *jobs = answer_jobs(r, 1000);
	ck_assert_int_eq(count_jobs(d), 1000);
	long long in_order = jd_sql_int(d, "SELECT count(*) FROM jobs WHERE "
	                                "type = 'noop'");
	ck_assert_int_eq(in_order, 1000);
	ck_assert(strcmp(nth_id(jobs, 0), nth_id(jobs, 999)) < 0);
	jd_resp_free(r);
	free(b1000);
	free(b1001);
}
END_TEST

START_TEST(test_max_batch_check_config)
{
	struct jd_opts o = {.threads = 1, .extra = "[server]\nmax_batch = 0\n"};
	jd *dd = jd_new(&o);
	const char *bin = getenv("JOBD_BIN");
	char cmd[1024], path[320];

	ck_assert_ptr_nonnull(dd);
	if (bin == NULL || bin[0] == '\0')
		bin = "build/jobd";
	snprintf(path, sizeof(path), "%s/check.out", dd->dir);
	snprintf(cmd, sizeof(cmd), "'%s' --check-config --config '%s' "
	         ">'%s' 2>&1", bin, dd->conf_path, path);
	int st = system(cmd);
	char *out = jd_read_file(path, NULL);
	ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) != 0 && out != NULL &&
	              strstr(out, "[server] max_batch") != NULL,
	              "--check-config with max_batch = 0: %s", out ? out : "");
	free(out);
	jd_free(dd);
}
END_TEST

START_TEST(test_deep_brackets)
{
	size_t n = 10u << 20;
	char *b = malloc(n + 1);

	ck_assert_ptr_nonnull(b);
	memset(b, '[', n);
	b[n] = '\0';
	/* Over the default max_body (1M): 413, answered to the announced
	 * length (Expect: 100-continue, so that curl waits for it). */
	const char *h[] = {"Content-Type: application/json",
	                   "Expect: 100-continue", NULL};
	struct jd_resp *r = jd_request(d, "POST", "/jobs", h, b);
	assert_status(r, 413);
	jd_resp_free(r);
	/* Within a max_body of 16M: 400 for the nesting, and the daemon
	 * still answers. */
	jd *dd = launch(1, "[server]\nmax_body = 16M\n");
	r = post_c(NULL, dd, b, NULL);
	assert_errors(r, 400, NULL, 0);
	jd_resp_free(r);
	/* 10 MB of "[{}," elements: counted up to max_batch + 1, no more. */
	for (size_t i = 0; i + 4 <= n; i += 4)
		memcpy(b + i, i ? ",{} " : "[{} ", 4);
	b[n - 1] = ']';
	r = post_c(NULL, dd, b, NULL);
	assert_errors(r, 422, NULL, 0);
	jd_resp_free(r);
	r = jd_request(dd, "GET", "/healthz", NULL, NULL);
	assert_status(r, 200);
	jd_resp_free(r);
	ck_assert_int_eq(count_jobs(dd), 0);
	jd_free(dd);
	free(b);
}
END_TEST

START_TEST(test_idempotent_replay)
{
	const char *key = "Idempotency-Key: batch-1";
	struct jd_resp *r = post("[{\"type\":\"noop\",\"payload\":1},"
	                         "{\"type\":\"noop\",\"payload\":{\"delay\":"
	                         "30},\"delay\":3600},{\"type\":\"noop\"}]",
	                         key);
	cJSON *jobs = answer_jobs(r, 3);
	char ids[3][37];

	for (int i = 0; i < 3; i++)
		snprintf(ids[i], sizeof(ids[i]), "%s", nth_id(jobs, i));
	jd_resp_free(r);
	jd_resp_free(wait_status(d, ids[0], "succeeded", 10000));
	/* The same body (other spacing and member order): the same ids. */
	r = post(" [ {\"payload\":1,\"type\":\"noop\"}, {\"delay\":3600,"
	         "\"type\":\"noop\",\"payload\":{\"delay\":30}},"
	         "{\"type\":\"noop\"} ] ", key);
	jobs = answer_jobs(r, 3);
	ck_assert_str_eq(jd_header(r, "Idempotent-Replayed"), "true");
	for (int i = 0; i < 3; i++)
		ck_assert_str_eq(nth_id(jobs, i), ids[i]);
	/* Each with its status now. */
	ck_assert_str_eq(jd_str(cJSON_GetArrayItem(jobs, 0), "status"),
	                 "succeeded");
	ck_assert_str_eq(jd_str(cJSON_GetArrayItem(jobs, 1), "status"),
	                 "queued");
	jd_resp_free(r);
	/* Another body, another batch, or a single job with the key: 409. */
	r = post("[{\"type\":\"noop\",\"payload\":1},{\"type\":\"noop\"}]", key);
	assert_status(r, 409);
	ck_assert_msg(strstr(r->body, ids[0]) != NULL, "%s", r->body);
	jd_resp_free(r);
	r = post("{\"type\":\"noop\",\"payload\":1}", key);
	assert_status(r, 409);
	jd_resp_free(r);
	ck_assert_int_eq(count_jobs(d), 3);
	/* A key a single job took first is taken for batches too. */
	char *one = submit_ok(d, "{\"type\":\"noop\"}");
	free(one);
	const char *k2 = "Idempotency-Key: single-1";
	r = post("{\"type\":\"noop\"}", k2);
	assert_status(r, 202);
	jd_resp_free(r);
	r = post("[{\"type\":\"noop\"}]", k2);
	assert_status(r, 409);
	jd_resp_free(r);
	ck_assert_int_eq(count_jobs(d), 5);
	/* Kept across a restart. */
	ck_assert_int_eq(jd_stop(d, 20000), 0);
	ck_assert_int_eq(jd_start(d), 0);
	r = post("[{\"type\":\"noop\",\"payload\":1},{\"type\":\"noop\","
	         "\"payload\":{\"delay\":30},\"delay\":3600},"
	         "{\"type\":\"noop\"}]", key);
	jobs = answer_jobs(r, 3);
	ck_assert_str_eq(jd_header(r, "Idempotent-Replayed"), "true");
	for (int i = 0; i < 3; i++)
		ck_assert_str_eq(nth_id(jobs, i), ids[i]);
	jd_resp_free(r);
	ck_assert_int_eq(count_jobs(d), 5);
	/* A bad key is refused before anything is stored. */
	r = post("[{\"type\":\"noop\"}]", "Idempotency-Key: caf\xc3\xa9");
	assert_status(r, 400);
	jd_resp_free(r);
	ck_assert_int_eq(count_jobs(d), 5);
}
END_TEST

START_TEST(test_key_conflict_none_stored)
{
	/* The key's earlier job is found inside the writer's transaction:
	 * the batch is refused whole, nothing of it stored. */
	struct jd_resp *r = post("{\"type\":\"noop\",\"payload\":\"first\"}",
	                         "Idempotency-Key: dup");
	assert_status(r, 202);
	jd_resp_free(r);
	char *body = batch_body(50, "noop", "dup");
	r = post(body, "Idempotency-Key: dup");
	assert_status(r, 409);
	jd_resp_free(r);
	ck_assert_int_eq(count_jobs(d), 1);
	free(body);
}
END_TEST

START_TEST(test_queue_full_counts_batch)
{
	jd *dd = launch(1, "[store]\nmax_queued = 5\n");
	/* Three jobs that stay queued (an hour ahead). */
	for (int i = 0; i < 3; i++) {
		struct jd_resp *r = post_c(NULL, dd, "{\"type\":\"noop\","
		                           "\"delay\":3600}", NULL);
		assert_status(r, 202);
		jd_resp_free(r);
	}
	struct jd_resp *r = post_c(NULL, dd, "[{\"type\":\"noop\",\"delay\":"
	                           "3600},{\"type\":\"noop\",\"delay\":3600},"
	                           "{\"type\":\"noop\",\"delay\":3600}]", NULL);
	assert_status(r, 503);
	ck_assert_ptr_nonnull(jd_header(r, "Retry-After"));
	ck_assert_msg(strstr(r->body, "max_queued") != NULL, "%s", r->body);
	jd_resp_free(r);
	ck_assert_int_eq(count_jobs(dd), 3);
	r = post_c(NULL, dd, "[{\"type\":\"noop\",\"delay\":3600},"
	           "{\"type\":\"noop\",\"delay\":3600}]", NULL);
	answer_jobs(r, 2);
	jd_resp_free(r);
	ck_assert_int_eq(count_jobs(dd), 5);
	r = post_c(NULL, dd, "[{\"type\":\"noop\"}]", NULL);
	assert_status(r, 503);
	jd_resp_free(r);
	ck_assert_int_eq(count_jobs(dd), 5);
	jd_free(dd);
}
END_TEST

START_TEST(test_prefer_wait_ignored)
{
	struct jd_resp *r = post("[{\"type\":\"noop\"}]", "Prefer: wait=30");
	cJSON *jobs = answer_jobs(r, 1);

	ck_assert_ptr_null(jd_header(r, "Preference-Applied"));
	ck_assert_str_eq(jd_str(cJSON_GetArrayItem(jobs, 0), "status"),
	                 "queued");
	jd_resp_free(r);
	/* Even a malformed preference: ignored. */
	r = post("[{\"type\":\"noop\"}]", "Prefer: wait=banana");
	answer_jobs(r, 1);
	jd_resp_free(r);
}
END_TEST

/* ---- a batch racing single POSTs for one key ---- */

#define RACERS 8
#define ROUNDS 10

struct racer {
	int port;
	int slot;                /* 0: the batch; 1..3 singles with the key;
	                            4..7 singles without a key */
	int round;
	pthread_barrier_t *go;
	long status;
	bool replayed;
};

static void *
race(void *arg)
{
	struct racer *r = arg;
	jd_client *c = jd_client_new(r->port);
	char key[64], body[256];
	struct jd_resp *a;

	snprintf(key, sizeof(key), "Idempotency-Key: race-%d", r->round);
	if (r->slot == 0)
		snprintf(body, sizeof(body), "[{\"type\":\"noop\",\"payload\":0},"
		         "{\"type\":\"noop\"},{\"type\":\"noop\"},{\"type\":"
		         "\"noop\"},{\"type\":\"noop\"}]");
	else
		snprintf(body, sizeof(body), "{\"type\":\"noop\",\"payload\":%d}",
		         r->slot);
	const char *h[] = {"Content-Type: application/json",
	                   r->slot < 4 ? key : NULL, NULL};
	pthread_barrier_wait(r->go);
	a = jd_client_request(c, "POST", "/jobs", h, body);
	r->status = a ? a->status : 0;
	r->replayed = a && jd_header(a, "Idempotent-Replayed") != NULL;
	jd_resp_free(a);
	jd_client_free(c);
	return NULL;
}

START_TEST(test_race_with_single_posts)
{
	long long expect = 0;

	for (int round = 0; round < ROUNDS; round++) {
		pthread_t t[RACERS];
		struct racer rs[RACERS];
		pthread_barrier_t go;
		int won = -1;

		pthread_barrier_init(&go, NULL, RACERS);
		for (int i = 0; i < RACERS; i++) {
			rs[i] = (struct racer){.port = d->port, .slot = i,
			                       .round = round, .go = &go};
			ck_assert_int_eq(pthread_create(&t[i], NULL, race,
			                                &rs[i]), 0);
		}
		for (int i = 0; i < RACERS; i++)
			pthread_join(t[i], NULL);
		pthread_barrier_destroy(&go);
		/* One of those with the key won; the others (other bodies)
		 * got 409; the ones without a key were not disturbed. */
		for (int i = 0; i < 4; i++) {
			ck_assert_msg(rs[i].status == 202 || rs[i].status == 409,
			              "round %d slot %d: %ld", round, i,
			              rs[i].status);
			ck_assert(!rs[i].replayed);
			if (rs[i].status == 202) {
				ck_assert_msg(won < 0, "round %d: slots %d and %d "
				              "both won", round, won, i);
				won = i;
			}
		}
		ck_assert_msg(won >= 0, "round %d: nobody won", round);
		for (int i = 4; i < RACERS; i++)
			ck_assert_msg(rs[i].status == 202, "round %d slot %d: %ld",
			              round, i, rs[i].status);
		expect += (won == 0 ? 5 : 1) + 4;
		ck_assert_int_eq(count_jobs(d), expect);
	}
}
END_TEST

/* ---- kill -9 while batches come in ---- */

#define KILL_BATCH 50
#define KILL_MAX 4096

struct feeder {
	int port;
	int round;
	atomic_int acked;        /* batches answered 202 */
	char ids[KILL_MAX][2][37]; /* first and last id of each */
};

static void *
feed(void *arg)
{
	struct feeder *f = arg;
	jd_client *c = jd_client_new(f->port);

	for (int k = 0; k < KILL_MAX; k++) {
		char tag[32];
		snprintf(tag, sizeof(tag), "r%db%d", f->round, k);
		char *body = batch_body(KILL_BATCH, "noop", tag);
		const char *h[] = {"Content-Type: application/json", NULL};
		struct jd_resp *r = jd_client_request(c, "POST", "/jobs", h, body);
		free(body);
		cJSON *jobs = r && r->status == 202
		    ? cJSON_GetObjectItemCaseSensitive(jd_json(r), "jobs") : NULL;
		if (jobs == NULL) {
			jd_resp_free(r); /* the daemon was killed */
			break;
		}
		snprintf(f->ids[k][0], 37, "%s", nth_id(jobs, 0));
		snprintf(f->ids[k][1], 37, "%s", nth_id(jobs, KILL_BATCH - 1));
		jd_resp_free(r);
		atomic_store(&f->acked, k + 1);
	}
	jd_client_free(c);
	return NULL;
}

/* How many of the n ids (slots of stride bytes) are stored: an SQL text
 * for both stores (on PostgreSQL the literals become uuids). */
static long long
count_ids(jd *dd, const char *ids, size_t stride, size_t n)
{
	size_t len = 64 + n * 41, used;
	char *sql = malloc(len);
	long long got;

	ck_assert_ptr_nonnull(sql);
	used = (size_t)snprintf(sql, len, "SELECT count(*) FROM jobs WHERE "
	                        "id IN (");
	for (size_t i = 0; i < n; i++)
		used += (size_t)snprintf(sql + used, len - used, "%s'%.36s'",
		                         i ? "," : "", ids + i * stride);
	snprintf(sql + used, len - used, ")");
	got = jd_sql_int(dd, sql);
	free(sql);
	return got;
}

START_TEST(test_kill9_all_or_nothing)
{
	static struct feeder f;

	for (int round = 0; round < 3; round++) {
		pthread_t t;
		memset(&f, 0, sizeof(f));
		f.port = d->port;
		f.round = round;
		ck_assert_int_eq(pthread_create(&t, NULL, feed, &f), 0);
		/* Killed while batches come in: after a few were answered. */
		int64_t until = jd_mono_ms() + 60000;
		while (atomic_load(&f.acked) < 3 + round && jd_mono_ms() < until)
			jd_pause_ms(5);
		ck_assert_msg(atomic_load(&f.acked) >= 3 + round,
		              "round %d: no batches answered", round);
		jd_kill9(d);
		pthread_join(t, NULL);
		ck_assert_int_eq(jd_start(d), 0);
		/* No batch in part; every batch answered 202 in full. */
		long long n = count_jobs(d);
		ck_assert_msg(n % KILL_BATCH == 0, "round %d: %lld jobs, not a "
		              "multiple of %d", round, n, KILL_BATCH);
		int acked = atomic_load(&f.acked);
		ck_assert_int_eq(count_ids(d, &f.ids[0][0][0], sizeof(f.ids[0]),
		                           (size_t)acked), acked);
		ck_assert_int_eq(count_ids(d, &f.ids[0][1][0], sizeof(f.ids[0]),
		                           (size_t)acked), acked);
	}
}
END_TEST

/* ---- two nodes (PostgreSQL), one key ---- */

struct twin {
	jd *node;
	const char *body;
	const char *key;
	pthread_barrier_t *go;
	struct jd_resp *r;
};

static void *
twin_post(void *arg)
{
	struct twin *t = arg;
	jd_client *c = jd_client_new(t->node->port);
	const char *h[] = {"Content-Type: application/json", t->key, NULL};

	pthread_barrier_wait(t->go);
	t->r = jd_client_request(c, "POST", "/jobs", h, t->body);
	jd_client_free(c);
	return NULL;
}

static jd *
twin_node(const jd *owner, const char *name)
{
	char extra[160];
	struct jd_opts o = {.threads = 1, .extra = extra, .share_store = owner};
	jd *n;

	snprintf(extra, sizeof(extra), "[store]\nnode = %s\nlease = 30s\n",
	         name);
	n = jd_new(&o);
	ck_assert_ptr_nonnull(n);
	ck_assert_int_eq(jd_start(n), 0);
	return n;
}

/* The same batch with the same key on two nodes at once: one batch is
 * stored, never two and never part of one; both clients end with its
 * ids (the loser of a race between the nodes' transactions may be told
 * to retry, 503, and its retry replays). */
START_TEST(test_two_nodes_one_key)
{
	jd *a = twin_node(NULL, "alpha"), *b = twin_node(a, "bravo");

	for (int round = 0; round < 10; round++) {
		char key[64], tag[16];
		pthread_barrier_t go;
		pthread_t t[2];
		struct twin tw[2];
		int fresh = 0;

		snprintf(key, sizeof(key), "Idempotency-Key: twin-%d", round);
		snprintf(tag, sizeof(tag), "t%d", round);
		char *body = batch_body(20, "noop", tag);
		pthread_barrier_init(&go, NULL, 2);
		for (int i = 0; i < 2; i++) {
			tw[i] = (struct twin){.node = i ? b : a, .body = body,
			                      .key = key, .go = &go};
			ck_assert_int_eq(pthread_create(&t[i], NULL, twin_post,
			                                &tw[i]), 0);
		}
		for (int i = 0; i < 2; i++)
			pthread_join(t[i], NULL);
		pthread_barrier_destroy(&go);
		for (int i = 0; i < 2; i++) {
			/* Told to retry: the retry replays (a few tries, while
			 * the winner's transaction commits). */
			for (int tries = 0; tw[i].r->status == 503 && tries < 50;
			     tries++) {
				jd_resp_free(tw[i].r);
				jd_pause_ms(20);
				tw[i].r = post_c(NULL, tw[i].node, body, key);
			}
			answer_jobs(tw[i].r, 20);
			if (jd_header(tw[i].r, "Idempotent-Replayed") == NULL)
				fresh++;
		}
		ck_assert_msg(fresh == 1, "round %d: %d fresh answers", round,
		              fresh);
		cJSON *ja = cJSON_GetObjectItemCaseSensitive(jd_json(tw[0].r),
		                                             "jobs");
		cJSON *jb = cJSON_GetObjectItemCaseSensitive(jd_json(tw[1].r),
		                                             "jobs");
		for (int i = 0; i < 20; i++)
			ck_assert_str_eq(nth_id(ja, i), nth_id(jb, i));
		ck_assert_int_eq(count_jobs(a), 20LL * (round + 1));
		for (int i = 0; i < 2; i++)
			jd_resp_free(tw[i].r);
		free(body);
	}
	jd_free(b);
	jd_free(a);
}
END_TEST

static Suite *
batch_suite(void)
{
	Suite *s = suite_create("batch");
	TCase *tc = tcase_create("batch");

	tcase_set_timeout(tc, 120);
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_ids_in_order);
	tcase_add_test(tc, test_every_element_like_single);
	tcase_add_test(tc, test_one_bad_element_none_stored);
	tcase_add_test(tc, test_every_invalid_index);
	tcase_add_test(tc, test_non_object_elements);
	tcase_add_test(tc, test_nested_arrays);
	tcase_add_test(tc, test_empty_array);
	tcase_add_test(tc, test_max_batch);
	tcase_add_test(tc, test_max_batch_check_config);
	tcase_add_test(tc, test_deep_brackets);
	tcase_add_test(tc, test_idempotent_replay);
	tcase_add_test(tc, test_key_conflict_none_stored);
	tcase_add_test(tc, test_queue_full_counts_batch);
	tcase_add_test(tc, test_prefer_wait_ignored);
	tcase_add_test(tc, test_race_with_single_posts);
	tcase_add_test(tc, test_kill9_all_or_nothing);
	if (jd_store_is_pg())
		tcase_add_test(tc, test_two_nodes_one_key);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	return run_suite(batch_suite());
}
