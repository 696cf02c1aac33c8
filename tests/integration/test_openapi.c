/*
 * test_openapi.c - the OpenAPI description (issue 17, item 2):
 * GET /openapi.json serves openapi/openapi.json byte for byte, as the
 * other reads are served (HEAD, 405 with Allow, the bearer token when
 * auth is on); and a tour of every path of the API with the answers a
 * client meets, so that `make openapi-check` (tests/openapi/check.py,
 * over what the harness logs under JOBD_OPENAPI_LOG) sees every kind of
 * answer at least once, on both stores.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "checks.h"
#include "harness.h"

#define TOKEN "0123456789abcdef0123456789abcdef"

static const char *const json_ct[] = {"Content-Type: application/json", NULL};

/* method path (body with Content-Type: application/json when not NULL):
 * asserts the status and returns the answer (caller frees). */
static struct jd_resp *
expect(jd *d, const char *method, const char *path, const char *body,
       long status)
{
	struct jd_resp *r = jd_request(d, method, path,
	                               body ? json_ct : NULL, body);

	ck_assert_msg(r != NULL && r->status == status,
	              "%s %s: status %ld, expected %ld: %s%s", method, path,
	              r ? r->status : 0L, status, r ? r->body : "",
	              r ? r->error : "");
	return r;
}

static void
expect_free(jd *d, const char *method, const char *path, const char *body,
            long status)
{
	jd_resp_free(expect(d, method, path, body, status));
}

/* The served description is the file in the tree, and it is OpenAPI 3.1
 * naming every route the daemon has. */
START_TEST(test_served)
{
	jd *d = launch(2, NULL);
	struct jd_resp *r = expect(d, "GET", "/openapi.json", NULL, 200);
	size_t len = 0;
	char *file = jd_read_file("openapi/openapi.json", &len);
	static const char *const paths[] = {
		"/jobs", "/jobs/{id}", "/jobs/{id}/retry", "/events",
		"/schedules", "/schedules/{name}/trigger",
		"/schedules/{name}/pause", "/schedules/{name}/resume",
		"/types", "/types/{name}/pause", "/types/{name}/resume",
		"/nodes", "/stats", "/healthz", "/readyz", "/metrics",
		"/openapi.json", "/", NULL,
	};
	cJSON *doc, *p;

	ck_assert_ptr_nonnull(file);
	ck_assert_str_eq(jd_header(r, "Content-Type"), "application/json");
	ck_assert_uint_eq(r->body_len, len);
	ck_assert_msg(memcmp(r->body, file, len) == 0,
	              "the served description differs from the file");
	doc = jd_json(r);
	ck_assert_ptr_nonnull(doc);
	ck_assert_str_eq(jd_str(doc, "openapi"), "3.1.0");
	p = cJSON_GetObjectItemCaseSensitive(doc, "paths");
	for (size_t i = 0; paths[i] != NULL; i++)
		ck_assert_msg(cJSON_GetObjectItemCaseSensitive(p, paths[i]),
		              "no %s in the description", paths[i]);
	jd_resp_free(r);
	free(file);

	r = expect(d, "HEAD", "/openapi.json", NULL, 200);
	ck_assert_uint_eq(r->body_len, 0);
	jd_resp_free(r);
	r = expect(d, "POST", "/openapi.json", "{}", 405);
	ck_assert_str_eq(jd_header(r, "Allow"), "GET, HEAD");
	jd_resp_free(r);
	expect_free(d, "GET", "/openapi.json/", NULL, 404);
	expect_free(d, "GET", "/openapi.jso", NULL, 404);
	expect_free(d, "GET", "/openapi.json%00", NULL, 404);
	jd_free(d);
}
END_TEST

/* With auth on, the description is a read like the others: the token is
 * needed (only /healthz and /readyz are open). */
START_TEST(test_auth)
{
	struct jd_opts o = {.threads = 2};
	jd *d = jd_new(&o);
	char tokens[400], extra[600];
	const char *const good[] = {"Authorization: Bearer " TOKEN, NULL};
	const char *const bad[] = {"Authorization: Bearer nope", NULL};
	struct jd_resp *r;
	FILE *f;

	ck_assert_ptr_nonnull(d);
	snprintf(tokens, sizeof(tokens), "%s/tokens", d->dir);
	f = fopen(tokens, "w");
	ck_assert_ptr_nonnull(f);
	fputs("ci:" TOKEN "\n", f);
	fclose(f);
	ck_assert_int_eq(chmod(tokens, 0600), 0);
	snprintf(extra, sizeof(extra), "[auth]\ntokens_file = %s\n", tokens);
	f = fopen(d->conf_path, "a");
	ck_assert_ptr_nonnull(f);
	fputs(extra, f);
	fclose(f);
	ck_assert_int_eq(jd_start(d), 0);

	r = jd_request(d, "GET", "/openapi.json", NULL, NULL);
	assert_status(r, 401);
	ck_assert_ptr_nonnull(jd_header(r, "WWW-Authenticate"));
	jd_resp_free(r);
	r = jd_request(d, "GET", "/openapi.json", bad, NULL);
	assert_status(r, 401);
	jd_resp_free(r);
	r = jd_request(d, "GET", "/openapi.json", good, NULL);
	assert_status(r, 200);
	ck_assert_str_eq(jd_resp_str(r, "openapi"), "3.1.0");
	jd_resp_free(r);
	/* The other answers with auth on, for the conformance check. */
	static const char *const gets[] = {"/", "/jobs", "/types", "/nodes",
	                                   "/metrics", "/stats", "/schedules",
	                                   "/nope", NULL};
	for (size_t i = 0; gets[i] != NULL; i++) {
		r = jd_request(d, "GET", gets[i], NULL, NULL);
		assert_status(r, 401);
		jd_resp_free(r);
	}
	r = jd_request(d, "POST", "/jobs", json_ct, "{\"type\":\"noop\"}");
	assert_status(r, 401);
	jd_resp_free(r);
	r = jd_request(d, "GET", "/healthz", NULL, NULL);
	assert_status(r, 200);
	jd_resp_free(r);
	r = jd_request(d, "GET", "/readyz", NULL, NULL);
	assert_status(r, 200);
	jd_resp_free(r);
	jd_free(d);
}
END_TEST

/*
 * Every path, with the answers a client meets: the statuses are asserted
 * here, the bodies and headers by the conformance check over the log.
 */
START_TEST(test_tour)
{
	jd *d = launch(2, "[handler.slow]\nbuiltin = sleep\n"
	               "[schedule.tick]\ncron = @hourly\ntype = noop\n"
	               "[schedule.often]\nevery = 15m\ntype = echo\n"
	               "payload = {\"n\": 1}\n");
	const char *const wait1[] = {"Content-Type: application/json",
	                             "Prefer: wait=5", NULL};
	const char *const key[] = {"Content-Type: application/json",
	                           "Idempotency-Key: tour-1", NULL};
	const char *const async[] = {"Content-Type: application/json",
	                             "Prefer: respond-async", NULL};
	const char *const text[] = {"Content-Type: text/plain", NULL};
	struct jd_resp *r;
	char path[200], *done, *slow, *failed, *body;
	const char *id;

	/* Operations. */
	expect_free(d, "GET", "/", NULL, 200);
	expect_free(d, "GET", "/healthz", NULL, 200);
	expect_free(d, "HEAD", "/healthz", NULL, 200);
	expect_free(d, "GET", "/readyz", NULL, 200);
	expect_free(d, "GET", "/metrics", NULL, 200);
	expect_free(d, "GET", "/stats", NULL, 200);
	expect_free(d, "GET", "/nodes", NULL, 200);
	expect_free(d, "GET", "/types", NULL, 200);
	expect_free(d, "GET", "/schedules", NULL, 200);

	/* Submissions. */
	r = jd_request(d, "POST", "/jobs", wait1,
	               "{\"type\":\"echo\",\"payload\":{\"a\":[1,\"x\",null]},"
	               "\"priority\":100,\"max_attempts\":1,\"timeout\":2.5}");
	assert_status(r, 200);
	ck_assert_str_eq(jd_resp_str(r, "status"), "succeeded");
	done = strdup(jd_resp_str(r, "id"));
	jd_resp_free(r);
	r = jd_request(d, "POST", "/jobs", key, "{\"type\":\"noop\"}");
	assert_status(r, 202);
	jd_resp_free(r);
	r = jd_request(d, "POST", "/jobs", key, "{\"type\":\"noop\"}");
	assert_status(r, 202);
	ck_assert_str_eq(jd_header(r, "Idempotent-Replayed"), "true");
	jd_resp_free(r);
	r = jd_request(d, "POST", "/jobs", key, "{\"type\":\"echo\"}");
	assert_status(r, 409);
	jd_resp_free(r);
	r = jd_request(d, "POST", "/jobs", async,
	               "{\"type\":\"noop\",\"delay\":3600,\"priority\":-100}");
	assert_status(r, 202);
	jd_resp_free(r);
	r = jd_request(d, "POST", "/jobs", text, "{\"type\":\"noop\"}");
	assert_status(r, 415);
	jd_resp_free(r);
	expect_free(d, "POST", "/jobs", "{\"type\":", 400);
	expect_free(d, "POST", "/jobs", "{\"type\":\"nope\"}", 422);
	expect_free(d, "POST", "/jobs", "{\"type\":\"noop\",\"priority\":101}",
	            422);
	expect_free(d, "POST", "/jobs", "{\"type\":\"noop\",\"bogus\":1}", 422);
	expect_free(d, "POST", "/jobs", "[]", 422);
	r = expect(d, "POST", "/jobs", "[{\"type\":\"noop\"},{\"type\":\"x y\"},"
	           "{\"type\":\"noop\",\"depends_on\":[\"#5\"]}]", 422);
	ck_assert_ptr_nonnull(cJSON_GetObjectItem(jd_json(r), "errors"));
	jd_resp_free(r);
	expect_free(d, "POST", "/jobs", "[{\"type\":\"noop\"},{\"type\":1}]",
	            400);
	r = expect(d, "POST", "/jobs", "[{\"type\":\"noop\"},{\"type\":\"echo\","
	           "\"payload\":\"x\",\"depends_on\":[\"#0\"]}]", 202);
	jd_resp_free(r);
	body = malloc(2 * 1024 * 1024);
	ck_assert_ptr_nonnull(body);
	snprintf(body, 32, "{\"type\":\"noop\",\"payload\":\"");
	memset(body + strlen(body), 'x', 1100 * 1024);
	strcpy(body + strlen("{\"type\":\"noop\",\"payload\":\"") + 1100 * 1024,
	       "\"}");
	expect_free(d, "POST", "/jobs", body, 413);
	free(body);

	/* One job through its life: slow, cancelled, retried. */
	slow = submit_ok(d, "{\"type\":\"slow\",\"payload\":{\"seconds\":30}}");
	jd_resp_free(wait_status(d, slow, "running", 10000));
	snprintf(path, sizeof(path), "/jobs/%s", slow);
	expect_free(d, "DELETE", path, NULL, 202);
	jd_resp_free(wait_status(d, slow, "cancelled", 10000));
	expect_free(d, "DELETE", path, NULL, 409);
	snprintf(path, sizeof(path), "/jobs/%s/retry", done);
	expect_free(d, "POST", path, NULL, 409);
	failed = submit_ok(d, "{\"type\":\"fail\",\"max_attempts\":1}");
	jd_resp_free(wait_status(d, failed, "failed", 10000));
	snprintf(path, sizeof(path), "/jobs/%s/retry", failed);
	expect_free(d, "POST", path, NULL, 200);
	snprintf(path, sizeof(path), "/jobs/%s?wait=0.5", done);
	r = expect(d, "GET", path, NULL, 200);
	ck_assert_ptr_nonnull(jd_header(r, "Preference-Applied"));
	jd_resp_free(r);
	snprintf(path, sizeof(path), "/jobs/%s?wait=x", done);
	expect_free(d, "GET", path, NULL, 400);
	snprintf(path, sizeof(path), "/jobs/%s", done);
	expect_free(d, "HEAD", path, NULL, 200);
	expect_free(d, "PUT", path, "{}", 405);
	free(submit_ok(d, "{\"type\":\"noop\",\"delay\":3600}"));
	expect_free(d, "GET", "/jobs/01890000-0000-7000-8000-000000000000",
	            NULL, 404);
	expect_free(d, "DELETE", "/jobs/01890000-0000-7000-8000-000000000000",
	            NULL, 404);

	/* Lists. */
	r = expect(d, "GET", "/jobs?limit=2", NULL, 200);
	id = jd_str(jd_json(r), "next");
	ck_assert_ptr_nonnull(id);
	snprintf(path, sizeof(path), "/jobs?limit=1000&after=%s", id);
	jd_resp_free(r);
	expect_free(d, "GET", path, NULL, 200);
	expect_free(d, "GET", "/jobs?status=succeeded&type=echo", NULL, 200);
	expect_free(d, "GET", "/jobs?status=bogus", NULL, 400);
	expect_free(d, "GET", "/jobs?limit=-1", NULL, 400);

	/* Types and schedules. */
	expect_free(d, "POST", "/types/slow/pause", NULL, 200);
	expect_free(d, "POST", "/types/slow/resume", NULL, 200);
	expect_free(d, "POST", "/types/none/pause", NULL, 404);
	expect_free(d, "GET", "/types/slow/pause", NULL, 405);
	expect_free(d, "POST", "/schedules/tick/trigger", NULL, 202);
	expect_free(d, "POST", "/schedules/often/pause", NULL, 200);
	expect_free(d, "POST", "/schedules/often/resume", NULL, 200);
	expect_free(d, "POST", "/schedules/none/trigger", NULL, 404);
	expect_free(d, "GET", "/schedules", NULL, 200);

	/* Events: a stream that ends after the finished job's one event
	 * (404 from a daemon without GET /events). */
	snprintf(path, sizeof(path), "/events?job=%s", done);
	r = jd_request(d, "GET", path, NULL, NULL);
	ck_assert_msg(r != NULL && (r->status == 200 || r->status == 404),
	              "GET /events: %ld", r ? r->status : 0L);
	jd_resp_free(r);

	/* Unrouted. */
	expect_free(d, "GET", "/nope", NULL, 404);
	expect_free(d, "DELETE", "/jobs", NULL, 405);
	expect_free(d, "PATCH", "/healthz", "{}", 405);
	free(done);
	free(slow);
	free(failed);
	jd_free(d);
}
END_TEST

/*
 * GET /readyz's "queued" on a store two nodes share: the jobs queued in
 * the store (a count, never below zero), not what this node's writer has
 * counted of its own intake and claims (alpha took the submissions and
 * counted +N, bravo claimed some of them and counted -N: the description
 * holds queued >= 0 and openapi-check saw -12).
 */
START_TEST(test_readyz_shared_store)
{
	struct jd_opts oa = {.threads = 1,
	                     .extra = "[store]\nnode = alpha\n"};
	jd *a, *b;
	char *ids[24];
	int n = (int)(sizeof(ids) / sizeof(ids[0]));

	if (!jd_store_is_pg())
		return; /* one node: its writer's counts are the store's */
	a = jd_new(&oa);
	ck_assert_ptr_nonnull(a);
	struct jd_opts ob = {.threads = 4, .share_store = a,
	                     .extra = "[store]\nnode = bravo\n"};
	b = jd_new(&ob);
	ck_assert_ptr_nonnull(b);
	ck_assert_int_eq(jd_start(a), 0);
	ck_assert_int_eq(jd_start(b), 0);
	/* More than alpha's one worker takes: bravo claims the rest. */
	for (int i = 0; i < n; i++)
		ids[i] = submit_ok(a, "{\"type\":\"sleep\","
		                   "\"payload\":{\"seconds\":0.1}}");
	for (int i = 0; i < n; i++) {
		jd_resp_free(wait_status(a, ids[i], "succeeded", 30000));
		free(ids[i]);
	}
	ck_assert_msg(jd_sql_int(a, "SELECT count(DISTINCT node) FROM jobs") ==
	              2, "both nodes should have run jobs");
	jd *nodes[2] = {a, b};
	for (int i = 0; i < 2; i++) {
		struct jd_resp *r = expect(nodes[i], "GET", "/readyz", NULL,
		                           200);
		ck_assert_msg(jd_num(jd_json(r), "queued", -1) == 0,
		              "node %d: /readyz %s", i, r->body);
		jd_resp_free(r);
	}
	jd_free(b);
	jd_free(a);
}
END_TEST

static Suite *
suite(void)
{
	Suite *s = suite_create("openapi");
	TCase *tc = tcase_create("openapi");

	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, test_served);
	tcase_add_test(tc, test_auth);
	tcase_add_test(tc, test_tour);
	tcase_add_test(tc, test_readyz_shared_store);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	return run_suite(suite());
}
