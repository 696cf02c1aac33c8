/*
 * test_api.c - every answer of the HTTP API (DESIGN.md §2), against the
 * real daemon.
 *
 * The "api" case shares one fixture: a daemon per test (checked fixture,
 * so in fork mode it lives in the test's own process) with max_body = 4k.
 * Tests that need another configuration (one worker, a tiny max_queued,
 * a long shutdown_grace) start their own.
 */
#include <check.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "checks.h"
#include "harness.h"

static jd *d;

static const char *const json_ct[] = {"Content-Type: application/json",
                                      NULL};

static void
setup(void)
{
	struct jd_opts o = {.threads = 2, .extra = "[server]\nmax_body = 4k\n"};

	d = jd_launch(&o);
	ck_assert_msg(d != NULL, "the daemon did not start");
}

static void
teardown(void)
{
	jd_free(d);
	d = NULL;
}

/* ---- helpers ---- */

static struct jd_resp *
post_job(jd *dd, const char *body)
{
	struct jd_resp *r = jd_request(dd, "POST", "/jobs", json_ct, body);

	ck_assert_ptr_nonnull(r);
	return r;
}

static struct jd_resp *
get(jd *dd, const char *path)
{
	struct jd_resp *r = jd_request(dd, "GET", path, NULL, NULL);

	ck_assert_ptr_nonnull(r);
	return r;
}

/* NULL when r is an RFC 9457 problem with this status, else why not. */
static const char *
problem_error(struct jd_resp *r, long status)
{
	static char why[1024];
	const char *ct = jd_header(r, "Content-Type");
	cJSON *o = jd_json(r);

	if (r->status != status)
		snprintf(why, sizeof(why), "status %ld, expected %ld: %s%s",
		         r->status, status, r->body, r->error);
	else if (ct == NULL || strcmp(ct, "application/problem+json") != 0)
		snprintf(why, sizeof(why), "Content-Type %s, expected "
		         "application/problem+json", ct ? ct : "(none)");
	else if (!cJSON_IsObject(o))
		snprintf(why, sizeof(why), "body is not a JSON object: %s",
		         r->body);
	else if (jd_str(o, "type") == NULL || jd_str(o, "title") == NULL ||
	         jd_str(o, "detail") == NULL ||
	         jd_num(o, "status", -1) != (double)status)
		snprintf(why, sizeof(why), "problem lacks type/title/status/"
		         "detail: %s", r->body);
	else
		return NULL;
	return why;
}

#define assert_problem(r, st) do { \
	const char *why_ = problem_error((r), (st)); \
	ck_assert_msg(why_ == NULL, "%s", why_); \
} while (0)


/* POSTs body and expects a problem with this status. */
#define assert_post_problem(dd, body, st) do { \
	struct jd_resp *r_ = post_job((dd), (body)); \
	const char *why_ = problem_error(r_, (st)); \
	ck_assert_msg(why_ == NULL, "POST %s: %s", (body), why_); \
	jd_resp_free(r_); \
} while (0)

#define assert_get_problem(dd, path, st) do { \
	struct jd_resp *r_ = get((dd), (path)); \
	const char *why_ = problem_error(r_, (st)); \
	ck_assert_msg(why_ == NULL, "GET %s: %s", (path), why_); \
	jd_resp_free(r_); \
} while (0)

static bool
is_time_or_null(const cJSON *o, const char *field, bool null_ok)
{
	const cJSON *it = cJSON_GetObjectItemCaseSensitive(o, field);

	if (cJSON_IsNull(it))
		return null_ok;
	return cJSON_IsString(it) && jd_parse_time_ms(it->valuestring) >= 0;
}

/* ---- POST /jobs ---- */

START_TEST(test_submit_202)
{
	struct jd_resp *r = post_job(d, "{\"type\":\"echo\",\"payload\":{\"a\":1}}");
	const char *id, *loc;
	char href[64];
	cJSON *o;

	assert_status(r, 202);
	o = jd_json(r);
	ck_assert_msg(cJSON_IsObject(o), "body: %s", r->body);
	id = jd_str(o, "id");
	ck_assert_ptr_nonnull(id);
	ck_assert_uint_eq(strlen(id), 36);
	ck_assert_msg(id[14] == '7', "not a UUIDv7: %s", id);
	ck_assert_str_eq(jd_str(o, "status"), "queued");
	snprintf(href, sizeof(href), "/jobs/%s", id);
	ck_assert_str_eq(jd_str(o, "href"), href);
	loc = jd_header(r, "Location");
	ck_assert_ptr_nonnull(loc);
	ck_assert_str_eq(loc, href);
	ck_assert_ptr_nonnull(jd_header(r, "Retry-After"));
	ck_assert_str_eq(jd_header(r, "Retry-After"), "1");
	ck_assert_ptr_nonnull(jd_header(r, "Content-Type"));
	ck_assert_str_eq(jd_header(r, "Content-Type"), "application/json");

	/* Ids increase in creation order. */
	char *id2 = submit_ok(d, "{\"type\":\"noop\"}");
	ck_assert_msg(strcmp(id2, id) > 0, "%s not after %s", id2, id);
	free(id2);

	/* A media type with parameters, and the +json family, are JSON. */
	const char *const ct_params[] = {
		"Content-Type: application/json; charset=utf-8", NULL};
	struct jd_resp *r2 = jd_request(d, "POST", "/jobs", ct_params,
	                                "{\"type\":\"noop\"}");
	assert_status(r2, 202);
	jd_resp_free(r2);
	jd_resp_free(r);
}
END_TEST

START_TEST(test_415)
{
	const char *const text[] = {"Content-Type: text/plain", NULL};
	const char *const form[] = {
		"Content-Type: application/x-www-form-urlencoded", NULL};
	const char *body = "{\"type\":\"noop\"}";
	struct jd_resp *r;

	r = jd_request(d, "POST", "/jobs", NULL, body);
	assert_problem(r, 415);
	jd_resp_free(r);
	r = jd_request(d, "POST", "/jobs", text, body);
	assert_problem(r, 415);
	jd_resp_free(r);
	r = jd_request(d, "POST", "/jobs", form, body);
	assert_problem(r, 415);
	jd_resp_free(r);
}
END_TEST

START_TEST(test_400_malformed)
{
	assert_post_problem(d, "{\"type\":\"noop\"", 400);
	assert_post_problem(d, "not json", 400);
	assert_post_problem(d, "{\"type\":\"noop\"} trailing", 400);
	assert_post_problem(d, "", 400);
	assert_post_problem(d, "[\"noop\"]", 400);
	/* wrong field types */
	assert_post_problem(d, "{\"type\":5}", 400);
	assert_post_problem(d, "{\"type\":\"noop\",\"priority\":\"high\"}", 400);
	assert_post_problem(d, "{\"type\":\"noop\",\"priority\":1.5}", 400);
	assert_post_problem(d, "{\"type\":\"noop\",\"max_attempts\":\"3\"}",
	                    400);
	assert_post_problem(d, "{\"type\":\"noop\",\"delay\":\"soon\"}", 400);
	assert_post_problem(d, "{\"type\":\"noop\",\"timeout\":true}", 400);
	assert_post_problem(d, "{\"type\":\"noop\",\"run_at\":12}", 400);
	assert_post_problem(d, "{\"type\":\"noop\",\"run_at\":\"tomorrow\"}",
	                    400);
	/* "type" is required */
	assert_post_problem(d, "{\"payload\":1}", 400);
}
END_TEST

/* {"type":"noop","payload": <levels-1 nested arrays>}: `levels` deep. */
static char *
nested(int levels)
{
	size_t n = 64 + 2 * (size_t)levels;
	char *s = malloc(n);
	size_t k;

	ck_assert_ptr_nonnull(s);
	k = (size_t)snprintf(s, n, "{\"type\":\"noop\",\"payload\":");
	for (int i = 1; i < levels; i++)
		s[k++] = '[';
	for (int i = 1; i < levels; i++)
		s[k++] = ']';
	s[k++] = '}';
	s[k] = '\0';
	return s;
}

START_TEST(test_400_depth)
{
	char *ok = nested(32), *deep = nested(33), *id;

	id = submit_ok(d, ok);
	free(id);
	assert_post_problem(d, deep, 400);
	free(ok);
	free(deep);
}
END_TEST

START_TEST(test_400_utf8)
{
	assert_post_problem(d, "{\"type\":\"noop\",\"payload\":\"\xff\"}", 400);
	/* overlong '/' */
	assert_post_problem(d, "{\"type\":\"noop\",\"payload\":\"\xc0\xaf\"}",
	                    400);
	/* a UTF-16 surrogate encoded as UTF-8 */
	assert_post_problem(d,
	                    "{\"type\":\"noop\",\"payload\":\"\xed\xa0\x80\"}",
	                    400);
	/* truncated sequence */
	assert_post_problem(d, "{\"type\":\"noop\",\"payload\":\"\xe2\x82\"}",
	                    400);
	/* valid multi-byte UTF-8 passes */
	char *id = submit_ok(d, "{\"type\":\"noop\",\"payload\":\"\xe2\x82\xac"
	                        "\xf0\x9f\x98\x80\"}");
	free(id);
}
END_TEST

START_TEST(test_422)
{
	assert_post_problem(d, "{\"type\":\"nope\"}", 422);
	assert_post_problem(d, "{\"type\":\"bad type!\"}", 422);
	assert_post_problem(d, "{\"type\":\"\"}", 422);
	assert_post_problem(d, "{\"type\":\"noop\",\"priority\":101}", 422);
	assert_post_problem(d, "{\"type\":\"noop\",\"priority\":-101}", 422);
	assert_post_problem(d, "{\"type\":\"noop\",\"max_attempts\":0}", 422);
	assert_post_problem(d, "{\"type\":\"noop\",\"max_attempts\":101}", 422);
	assert_post_problem(d, "{\"type\":\"noop\",\"timeout\":0}", 422);
	assert_post_problem(d, "{\"type\":\"noop\",\"timeout\":-1}", 422);
	assert_post_problem(d, "{\"type\":\"noop\",\"delay\":-1}", 422);
	assert_post_problem(d, "{\"type\":\"noop\",\"delay\":1e12}", 422);
	assert_post_problem(d, "{\"type\":\"noop\",\"delay\":1,"
	                    "\"run_at\":\"2030-01-01T00:00:00Z\"}", 422);
	/* the edges of the ranges are accepted */
	const char *ok[] = {
		"{\"type\":\"noop\",\"priority\":100}",
		"{\"type\":\"noop\",\"priority\":-100}",
		"{\"type\":\"noop\",\"max_attempts\":1}",
		"{\"type\":\"noop\",\"max_attempts\":100}",
		"{\"type\":\"noop\",\"timeout\":0.5}",
		"{\"type\":\"noop\",\"delay\":0}",
	};
	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++)
		free(submit_ok(d, ok[i]));
}
END_TEST

START_TEST(test_413_announced)
{
	/* Headers only: the server must answer without waiting for the
	 * 100000 bytes it was promised. */
	static const char req[] =
		"POST /jobs HTTP/1.1\r\nHost: 127.0.0.1\r\n"
		"Content-Type: application/json\r\n"
		"Content-Length: 100000\r\n\r\n";
	char *answer = NULL;
	int st = jd_raw(d, req, sizeof(req) - 1, 5000, &answer);

	ck_assert_msg(st == 413, "status %d: %s", st, answer ? answer : "");
	ck_assert_ptr_nonnull(strstr(answer, "application/problem+json"));
	free(answer);

	/* libcurl with Expect: 100-continue: refused before the body. */
	size_t n = 5000;
	char *big = malloc(n + 64);
	ck_assert_ptr_nonnull(big);
	int k = snprintf(big, n + 64, "{\"type\":\"noop\",\"payload\":\"");
	memset(big + k, 'x', n);
	strcpy(big + k + n, "\"}");
	const char *const expect[] = {"Content-Type: application/json",
	                              "Expect: 100-continue", NULL};
	struct jd_resp *r = jd_request(d, "POST", "/jobs", expect, big);
	assert_problem(r, 413);
	jd_resp_free(r);
	/* and without Expect, the whole body sent */
	r = post_job(d, big);
	assert_problem(r, 413);
	jd_resp_free(r);
	free(big);
}
END_TEST

START_TEST(test_413_chunked)
{
	static const char head[] =
		"POST /jobs HTTP/1.1\r\nHost: 127.0.0.1\r\n"
		"Content-Type: application/json\r\n"
		"Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n";
	char chunk[1024 + 16];
	char *req = malloc(sizeof(head) + 8 * sizeof(chunk) + 16);
	size_t len;
	char *answer = NULL;
	int st;

	ck_assert_ptr_nonnull(req);
	/* A small chunked body is fine... */
	len = (size_t)sprintf(req, "%sf\r\n{\"type\":\"noop\"}\r\n0\r\n\r\n",
	                      head);
	st = jd_raw(d, req, len, 5000, &answer);
	ck_assert_msg(st == 202, "status %d: %s", st, answer ? answer : "");
	free(answer);
	/* ... one that grows past max_body (4k) is not. */
	len = (size_t)sprintf(req, "%s", head);
	memset(chunk, 'x', sizeof(chunk));
	memcpy(chunk, "400\r\n", 5);
	memcpy(chunk + 5 + 1024, "\r\n", 2);
	for (int i = 0; i < 8; i++) {
		memcpy(req + len, chunk, 5 + 1024 + 2);
		len += 5 + 1024 + 2;
	}
	memcpy(req + len, "0\r\n\r\n", 5);
	len += 5;
	st = jd_raw(d, req, len, 5000, &answer);
	ck_assert_msg(st == 413, "status %d: %s", st, answer ? answer : "");
	ck_assert_ptr_nonnull(strstr(answer, "application/problem+json"));
	free(answer);
	free(req);
}
END_TEST

START_TEST(test_400_smuggling)
{
	static const char dup_cl[] =
		"POST /jobs HTTP/1.1\r\nHost: 127.0.0.1\r\n"
		"Content-Type: application/json\r\n"
		"Content-Length: 15\r\nContent-Length: 15\r\n"
		"Connection: close\r\n\r\n{\"type\":\"noop\"}";
	static const char cl_te[] =
		"POST /jobs HTTP/1.1\r\nHost: 127.0.0.1\r\n"
		"Content-Type: application/json\r\n"
		"Content-Length: 15\r\nTransfer-Encoding: chunked\r\n"
		"Connection: close\r\n\r\nf\r\n{\"type\":\"noop\"}\r\n0\r\n\r\n";
	static const char te_cl[] =
		"POST /jobs HTTP/1.1\r\nHost: 127.0.0.1\r\n"
		"Content-Type: application/json\r\n"
		"Transfer-Encoding: chunked\r\nContent-Length: 15\r\n"
		"Connection: close\r\n\r\nf\r\n{\"type\":\"noop\"}\r\n0\r\n\r\n";
	char *answer = NULL;
	int st;

	st = jd_raw(d, dup_cl, sizeof(dup_cl) - 1, 5000, &answer);
	ck_assert_msg(st == 400, "duplicate Content-Length: %d: %s", st,
	              answer ? answer : "");
	free(answer);
	st = jd_raw(d, cl_te, sizeof(cl_te) - 1, 5000, &answer);
	ck_assert_msg(st == 400, "Content-Length + Transfer-Encoding: %d: %s",
	              st, answer ? answer : "");
	free(answer);
	st = jd_raw(d, te_cl, sizeof(te_cl) - 1, 5000, &answer);
	ck_assert_msg(st == 400, "Transfer-Encoding + Content-Length: %d: %s",
	              st, answer ? answer : "");
	free(answer);

	/* nothing of those was stored */
	struct jd_resp *r = get(d, "/jobs");
	assert_status(r, 200);
	cJSON *jobs = cJSON_GetObjectItemCaseSensitive(jd_json(r), "jobs");
	ck_assert_msg(cJSON_GetArraySize(jobs) == 0, "stored: %s", r->body);
	jd_resp_free(r);
}
END_TEST

/* ---- GET /jobs/<id> ---- */

START_TEST(test_get_job)
{
	static const char *const fields[] = {
		"id", "type", "status", "priority", "attempt", "max_attempts",
		"created_at", "run_at", "started_at", "finished_at", "payload",
		"result", "error", "exit_code", NULL,
	};
	char *id = submit_ok(d, "{\"type\":\"echo\",\"priority\":5,"
	                        "\"payload\":{\"k\":[1,2,\"x\"]}}");
	struct jd_resp *r = jd_wait_for_status(d, id, "succeeded", 10000);
	cJSON *o, *payload;

	ck_assert_msg(r != NULL, "job %s did not succeed", id);
	ck_assert_str_eq(jd_header(r, "Content-Type"), "application/json");
	o = jd_json(r);
	for (int i = 0; fields[i] != NULL; i++)
		ck_assert_msg(cJSON_HasObjectItem(o, fields[i]),
		              "no \"%s\" in %s", fields[i], r->body);
	ck_assert_str_eq(jd_str(o, "id"), id);
	ck_assert_str_eq(jd_str(o, "type"), "echo");
	ck_assert_str_eq(jd_str(o, "status"), "succeeded");
	ck_assert(jd_num(o, "priority", -1) == 5);
	ck_assert(jd_num(o, "attempt", -1) == 1);
	ck_assert(jd_num(o, "max_attempts", -1) == 3);
	ck_assert_msg(is_time_or_null(o, "created_at", false) &&
	              is_time_or_null(o, "run_at", false) &&
	              is_time_or_null(o, "started_at", false) &&
	              is_time_or_null(o, "finished_at", false),
	              "times not RFC 3339 UTC with ms: %s", r->body);
	ck_assert(jd_parse_time_ms(jd_str(o, "started_at")) >=
	          jd_parse_time_ms(jd_str(o, "created_at")));
	ck_assert(jd_parse_time_ms(jd_str(o, "finished_at")) >=
	          jd_parse_time_ms(jd_str(o, "started_at")));
	payload = cJSON_GetObjectItemCaseSensitive(o, "payload");
	cJSON *want = cJSON_Parse("{\"k\":[1,2,\"x\"]}");
	ck_assert_msg(cJSON_Compare(payload, want, true), "payload: %s",
	              r->body);
	ck_assert_msg(cJSON_Compare(cJSON_GetObjectItemCaseSensitive(o, "result"),
	                            want, true), "result: %s", r->body);
	cJSON_Delete(want);
	ck_assert(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(o, "error")));
	ck_assert(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(o,
	                                                        "exit_code")));
	jd_resp_free(r);
	free(id);

	/* A delayed job: queued, never started, run_at = created_at + delay,
	 * payload defaults to null. */
	char path[64];
	id = submit_ok(d, "{\"type\":\"echo\",\"delay\":3600}");
	snprintf(path, sizeof(path), "/jobs/%s", id);
	r = get(d, path);
	assert_status(r, 200);
	o = jd_json(r);
	ck_assert_str_eq(jd_str(o, "status"), "queued");
	ck_assert(jd_num(o, "attempt", -1) == 0);
	ck_assert(jd_num(o, "priority", -1) == 0);
	ck_assert(is_time_or_null(o, "created_at", false));
	ck_assert(is_time_or_null(o, "run_at", false));
	ck_assert(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(o, "started_at")));
	ck_assert(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(o, "finished_at")));
	ck_assert(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(o, "payload")));
	ck_assert(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(o, "result")));
	ck_assert_int_eq(jd_parse_time_ms(jd_str(o, "run_at")) -
	                 jd_parse_time_ms(jd_str(o, "created_at")), 3600000);
	/* An upper-case id names the same job. */
	for (char *p = path + 6; *p; p++)
		if (*p >= 'a' && *p <= 'f')
			*p = (char)(*p - 'a' + 'A');
	jd_resp_free(r);
	r = get(d, path);
	assert_status(r, 200);
	ck_assert_str_eq(jd_resp_str(r, "id"), id);
	jd_resp_free(r);
	free(id);
}
END_TEST

START_TEST(test_404)
{
	/* unknown (well-formed) id */
	assert_get_problem(d, "/jobs/01890000-0000-7000-8000-000000000000", 404);
	/* malformed ids */
	assert_get_problem(d, "/jobs/123", 404);
	assert_get_problem(d, "/jobs/zzzzzzzz-zzzz-zzzz-zzzz-zzzzzzzzzzzz", 404);
	assert_get_problem(d, "/jobs/01890000-0000-7000-8000-0000000000000", 404);
	assert_get_problem(d, "/jobs/01890000-0000-7000-8000-000000000000/x",
	                   404);
	/* unknown paths */
	assert_get_problem(d, "/nope", 404);
	assert_get_problem(d, "/jobsx", 404);
	assert_get_problem(d, "/healthz/x", 404);
	/* an unknown id under retry */
	struct jd_resp *r = jd_request(d, "POST",
	    "/jobs/01890000-0000-7000-8000-000000000000/retry", NULL, NULL);
	assert_problem(r, 404);
	jd_resp_free(r);
}
END_TEST

static void
expect_405(const char *method, const char *path, const char *allow)
{
	struct jd_resp *r = jd_request(d, method, path, NULL, NULL);
	const char *why = problem_error(r, 405);
	const char *a;

	ck_assert_msg(why == NULL, "%s %s: %s", method, path, why);
	a = jd_header(r, "Allow");
	ck_assert_msg(a != NULL, "%s %s: no Allow header", method, path);
	ck_assert_msg(strcmp(a, allow) == 0, "%s %s: Allow: %s, expected %s",
	              method, path, a, allow);
	jd_resp_free(r);
}

START_TEST(test_405)
{
	char *id = submit_ok(d, "{\"type\":\"noop\"}");
	char path[96];

	expect_405("PUT", "/jobs", "GET, HEAD, POST");
	expect_405("DELETE", "/jobs", "GET, HEAD, POST");
	snprintf(path, sizeof(path), "/jobs/%s", id);
	expect_405("POST", path, "GET, HEAD, DELETE");
	expect_405("PATCH", path, "GET, HEAD, DELETE");
	snprintf(path, sizeof(path), "/jobs/%s/retry", id);
	expect_405("GET", path, "POST");
	expect_405("DELETE", "/healthz", "GET, HEAD");
	expect_405("POST", "/readyz", "GET, HEAD");
	free(id);
}
END_TEST

/* ---- operations ---- */

START_TEST(test_health)
{
	struct jd_resp *r = get(d, "/healthz");

	assert_status(r, 200);
	ck_assert_str_eq(jd_header(r, "Content-Type"), "application/json");
	ck_assert_msg(cJSON_IsObject(jd_json(r)), "%s", r->body);
	jd_resp_free(r);
	r = get(d, "/readyz");
	assert_status(r, 200);
	ck_assert_str_eq(jd_header(r, "Content-Type"), "application/json");
	ck_assert_msg(cJSON_IsObject(jd_json(r)), "%s", r->body);
	jd_resp_free(r);
}
END_TEST

/* ---- GET /jobs ---- */

/* GET path; returns the ids of "jobs" (n of them) and "next". */
static char **
list_ids(const char *path, size_t *n, char **next)
{
	struct jd_resp *r = get(d, path);
	cJSON *o, *jobs, *nx, *j;
	char **ids;
	size_t k = 0;

	assert_status(r, 200);
	ck_assert_str_eq(jd_header(r, "Content-Type"), "application/json");
	o = jd_json(r);
	jobs = cJSON_GetObjectItemCaseSensitive(o, "jobs");
	nx = cJSON_GetObjectItemCaseSensitive(o, "next");
	ck_assert_msg(cJSON_IsArray(jobs), "%s: %s", path, r->body);
	ck_assert_msg(nx != NULL && (cJSON_IsNull(nx) || cJSON_IsString(nx)),
	              "%s: next: %s", path, r->body);
	*next = cJSON_IsString(nx) ? strdup(nx->valuestring) : NULL;
	ids = calloc((size_t)cJSON_GetArraySize(jobs) + 1, sizeof(*ids));
	ck_assert_ptr_nonnull(ids);
	cJSON_ArrayForEach(j, jobs) {
		ck_assert_ptr_nonnull(jd_str(j, "id"));
		ids[k++] = strdup(jd_str(j, "id"));
	}
	*n = k;
	jd_resp_free(r);
	return ids;
}

static void
free_ids(char **ids, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(ids[i]);
	free(ids);
}

START_TEST(test_list)
{
	char *ids[7], *next = NULL, **got;
	char path[160];
	size_t n;

	/* 4 noop jobs that succeed, then 3 echo jobs that wait. */
	for (int i = 0; i < 4; i++) {
		ids[i] = submit_ok(d, "{\"type\":\"noop\"}");
		jd_resp_free(jd_wait_for_status(d, ids[i], "succeeded", 10000));
	}
	for (int i = 4; i < 7; i++)
		ids[i] = submit_ok(d, "{\"type\":\"echo\",\"delay\":3600}");

	/* all, newest first */
	got = list_ids("/jobs", &n, &next);
	ck_assert_uint_eq(n, 7);
	ck_assert_ptr_null(next);
	for (size_t i = 0; i < 7; i++)
		ck_assert_str_eq(got[i], ids[6 - i]);
	free_ids(got, n);

	/* filters */
	got = list_ids("/jobs?status=queued", &n, &next);
	ck_assert_uint_eq(n, 3);
	for (size_t i = 0; i < 3; i++)
		ck_assert_str_eq(got[i], ids[6 - i]);
	free_ids(got, n);
	free(next);
	got = list_ids("/jobs?type=noop", &n, &next);
	ck_assert_uint_eq(n, 4);
	for (size_t i = 0; i < 4; i++)
		ck_assert_str_eq(got[i], ids[3 - i]);
	free_ids(got, n);
	free(next);
	got = list_ids("/jobs?status=succeeded&type=noop", &n, &next);
	ck_assert_uint_eq(n, 4);
	free_ids(got, n);
	free(next);
	got = list_ids("/jobs?status=succeeded&type=echo", &n, &next);
	ck_assert_uint_eq(n, 0);
	ck_assert_ptr_null(next);
	free_ids(got, n);
	got = list_ids("/jobs?status=failed", &n, &next);
	ck_assert_uint_eq(n, 0);
	free_ids(got, n);
	free(next);

	/* limit */
	got = list_ids("/jobs?limit=2", &n, &next);
	ck_assert_uint_eq(n, 2);
	ck_assert_ptr_nonnull(next);
	free_ids(got, n);
	free(next);
	got = list_ids("/jobs?limit=5000", &n, &next); /* capped, not refused */
	ck_assert_uint_eq(n, 7);
	free_ids(got, n);
	free(next);

	/* pages of 3: 3 + 3 + 1, next null at the end */
	size_t seen = 0;
	snprintf(path, sizeof(path), "/jobs?limit=3");
	for (int page = 0; page < 3; page++) {
		got = list_ids(path, &n, &next);
		ck_assert_uint_eq(n, page < 2 ? 3 : 1);
		for (size_t i = 0; i < n; i++, seen++)
			ck_assert_str_eq(got[i], ids[6 - seen]);
		if (page < 2) {
			ck_assert_msg(next != NULL, "page %d: no next", page);
			ck_assert_str_eq(next, got[n - 1]);
			snprintf(path, sizeof(path), "/jobs?limit=3&after=%s",
			         next);
		} else {
			ck_assert_msg(next == NULL, "last page: next %s", next);
		}
		free_ids(got, n);
		free(next);
		next = NULL;
	}
	ck_assert_uint_eq(seen, 7);

	/* a cursor combines with a filter */
	snprintf(path, sizeof(path), "/jobs?type=noop&after=%s", ids[2]);
	got = list_ids(path, &n, &next);
	ck_assert_uint_eq(n, 2);
	ck_assert_str_eq(got[0], ids[1]);
	ck_assert_str_eq(got[1], ids[0]);
	ck_assert_ptr_null(next);
	free_ids(got, n);

	for (int i = 0; i < 7; i++)
		free(ids[i]);
}
END_TEST

START_TEST(test_list_bad_params)
{
	static const char *const bad[] = {
		"/jobs?limit=0", "/jobs?limit=-1", "/jobs?limit=abc",
		"/jobs?limit=", "/jobs?limit=3x", "/jobs?status=bogus",
		"/jobs?status=", "/jobs?after=xyz",
		"/jobs?after=zzzzzzzz-zzzz-zzzz-zzzz-zzzzzzzzzzzz",
		"/jobs?type=bad!type", NULL,
	};

	for (int i = 0; bad[i] != NULL; i++)
		assert_get_problem(d, bad[i], 400);
}
END_TEST

/* ---- DELETE /jobs/<id> ---- */

START_TEST(test_cancel)
{
	char *id = submit_ok(d, "{\"type\":\"echo\",\"delay\":3600}");
	char path[96];
	struct jd_resp *r;

	snprintf(path, sizeof(path), "/jobs/%s", id);
	r = jd_request(d, "DELETE", path, NULL, NULL);
	assert_status(r, 200);
	ck_assert_str_eq(jd_resp_str(r, "id"), id);
	ck_assert_str_eq(jd_resp_str(r, "status"), "cancelled");
	ck_assert(is_time_or_null(jd_json(r), "finished_at", false));
	jd_resp_free(r);

	r = get(d, path);
	assert_status(r, 200);
	ck_assert_str_eq(jd_resp_str(r, "status"), "cancelled");
	jd_resp_free(r);

	r = jd_request(d, "DELETE", path, NULL, NULL);
	assert_problem(r, 409);
	jd_resp_free(r);

	r = jd_request(d, "DELETE",
	               "/jobs/01890000-0000-7000-8000-000000000000", NULL, NULL);
	assert_problem(r, 404);
	jd_resp_free(r);

	/* a finished (succeeded) job cannot be cancelled either */
	char *done = submit_ok(d, "{\"type\":\"noop\"}");
	jd_resp_free(jd_wait_for_status(d, done, "succeeded", 10000));
	snprintf(path, sizeof(path), "/jobs/%s", done);
	r = jd_request(d, "DELETE", path, NULL, NULL);
	assert_problem(r, 409);
	jd_resp_free(r);
	free(done);
	free(id);
}
END_TEST

START_TEST(test_cancel_running)
{
	char *id = submit_ok(d, "{\"type\":\"sleep\",\"payload\":{\"seconds\":30}}");
	struct jd_resp *r = jd_wait_for_status(d, id, "running", 10000);
	char path[96];

	ck_assert_ptr_nonnull(r);
	jd_resp_free(r);
	snprintf(path, sizeof(path), "/jobs/%s", id);
	r = jd_request(d, "DELETE", path, NULL, NULL);
	assert_status(r, 202);
	jd_resp_free(r);
	r = jd_wait_for_status(d, id, "cancelled", 10000);
	ck_assert_ptr_nonnull(r);
	jd_resp_free(r);
	free(id);
}
END_TEST

/* ---- POST /jobs/<id>/retry (one worker, kept busy) ---- */

START_TEST(test_retry)
{
	struct jd_opts o = {.threads = 1};
	jd *d1 = jd_launch(&o);
	char path[96], *failed, *sleeper, *cancelled, *queued;
	struct jd_resp *r;

	ck_assert_ptr_nonnull(d1);
	/* a job that fails for good after one attempt */
	failed = submit_ok(d1, "{\"type\":\"fail\",\"max_attempts\":1}");
	r = jd_wait_for_status(d1, failed, "failed", 10000);
	ck_assert_ptr_nonnull(r);
	ck_assert(jd_num(jd_json(r), "attempt", -1) == 1);
	jd_resp_free(r);
	/* occupy the only worker, so nothing retried gets claimed */
	sleeper = submit_ok(d1, "{\"type\":\"sleep\",\"payload\":{\"seconds\":30}}");
	jd_resp_free(jd_wait_for_status(d1, sleeper, "running", 10000));

	snprintf(path, sizeof(path), "/jobs/%s/retry", failed);
	r = jd_request(d1, "POST", path, NULL, NULL);
	assert_status(r, 200);
	ck_assert_str_eq(jd_resp_str(r, "status"), "queued");
	ck_assert(jd_num(jd_json(r), "attempt", -1) == 0);
	ck_assert(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(jd_json(r),
	                                                        "error")));
	jd_resp_free(r);
	/* now queued: a second retry conflicts */
	r = jd_request(d1, "POST", path, NULL, NULL);
	assert_problem(r, 409);
	jd_resp_free(r);

	/* a cancelled job */
	cancelled = submit_ok(d1, "{\"type\":\"echo\",\"delay\":3600}");
	snprintf(path, sizeof(path), "/jobs/%s", cancelled);
	r = jd_request(d1, "DELETE", path, NULL, NULL);
	assert_status(r, 200);
	jd_resp_free(r);
	snprintf(path, sizeof(path), "/jobs/%s/retry", cancelled);
	r = jd_request(d1, "POST", path, NULL, NULL);
	assert_status(r, 200);
	ck_assert_str_eq(jd_resp_str(r, "status"), "queued");
	ck_assert(jd_num(jd_json(r), "attempt", -1) == 0);
	ck_assert(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(jd_json(r),
	                                                        "finished_at")));
	jd_resp_free(r);

	/* a queued job, and a running one: 409 */
	queued = submit_ok(d1, "{\"type\":\"echo\",\"delay\":3600}");
	snprintf(path, sizeof(path), "/jobs/%s/retry", queued);
	r = jd_request(d1, "POST", path, NULL, NULL);
	assert_problem(r, 409);
	jd_resp_free(r);
	snprintf(path, sizeof(path), "/jobs/%s/retry", sleeper);
	r = jd_request(d1, "POST", path, NULL, NULL);
	assert_problem(r, 409);
	jd_resp_free(r);

	free(failed);
	free(sleeper);
	free(cancelled);
	free(queued);
	jd_free(d1);
}
END_TEST

/* ---- 503 ---- */

START_TEST(test_503_queue_full)
{
	struct jd_opts o = {.threads = 1, .extra = "[store]\nmax_queued = 3\n"};
	jd *d1 = jd_launch(&o);
	struct jd_resp *r;

	ck_assert_ptr_nonnull(d1);
	for (int i = 0; i < 3; i++)
		free(submit_ok(d1, "{\"type\":\"noop\",\"delay\":3600}"));
	r = post_job(d1, "{\"type\":\"noop\",\"delay\":3600}");
	assert_problem(r, 503);
	ck_assert_ptr_nonnull(jd_header(r, "Retry-After"));
	jd_resp_free(r);

	/* nothing was stored for the refused one */
	r = get(d1, "/jobs");
	ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(
	                     jd_json(r), "jobs")), 3);
	jd_resp_free(r);

	/* cancelling one makes room again */
	char *id = NULL;
	char path[96];
	r = get(d1, "/jobs?limit=1");
	cJSON *first = cJSON_GetArrayItem(
	    cJSON_GetObjectItemCaseSensitive(jd_json(r), "jobs"), 0);
	snprintf(path, sizeof(path), "/jobs/%s", jd_str(first, "id"));
	jd_resp_free(r);
	r = jd_request(d1, "DELETE", path, NULL, NULL);
	assert_status(r, 200);
	jd_resp_free(r);
	id = submit_ok(d1, "{\"type\":\"noop\",\"delay\":3600}");
	free(id);
	jd_free(d1);
}
END_TEST

START_TEST(test_503_draining)
{
	struct jd_opts o = {.threads = 1,
	                    .extra = "[workers]\nshutdown_grace = 20s\n"};
	jd *d1 = jd_launch(&o);
	struct jd_resp *r;
	char *id;
	int64_t deadline;

	ck_assert_ptr_nonnull(d1);
	/* a running job keeps the daemon draining for shutdown_grace */
	id = submit_ok(d1, "{\"type\":\"sleep\",\"payload\":{\"seconds\":30}}");
	jd_resp_free(jd_wait_for_status(d1, id, "running", 10000));
	/* our keep-alive connection outlives the listener */
	r = get(d1, "/healthz");
	assert_status(r, 200);
	jd_resp_free(r);

	kill(d1->pid, SIGTERM);
	ck_assert_msg(jd_wait_notify(d1, "STOPPING=1", 10000) == 0,
	              "no STOPPING=1 after SIGTERM");
	/* readyz turns 503 once the drain has begun */
	deadline = jd_mono_ms() + 5000;
	for (;;) {
		r = get(d1, "/readyz");
		if (r->status != 200 || jd_mono_ms() > deadline)
			break;
		jd_resp_free(r);
		jd_pause_ms(20);
	}
	assert_problem(r, 503);
	jd_resp_free(r);
	r = post_job(d1, "{\"type\":\"noop\"}");
	assert_problem(r, 503);
	ck_assert_ptr_nonnull(jd_header(r, "Retry-After"));
	jd_resp_free(r);
	free(id);
	jd_free(d1);
}
END_TEST

static Suite *
api_suite(void)
{
	Suite *s = suite_create("api");
	TCase *tc = tcase_create("api");
	TCase *own = tcase_create("own-daemon");

	tcase_set_timeout(tc, 60);
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_submit_202);
	tcase_add_test(tc, test_415);
	tcase_add_test(tc, test_400_malformed);
	tcase_add_test(tc, test_400_depth);
	tcase_add_test(tc, test_400_utf8);
	tcase_add_test(tc, test_422);
	tcase_add_test(tc, test_413_announced);
	tcase_add_test(tc, test_413_chunked);
	tcase_add_test(tc, test_400_smuggling);
	tcase_add_test(tc, test_get_job);
	tcase_add_test(tc, test_404);
	tcase_add_test(tc, test_405);
	tcase_add_test(tc, test_health);
	tcase_add_test(tc, test_list);
	tcase_add_test(tc, test_list_bad_params);
	tcase_add_test(tc, test_cancel);
	tcase_add_test(tc, test_cancel_running);
	suite_add_tcase(s, tc);

	tcase_set_timeout(own, 60);
	tcase_add_test(own, test_retry);
	tcase_add_test(own, test_503_queue_full);
	tcase_add_test(own, test_503_draining);
	suite_add_tcase(s, own);
	return s;
}

int
main(void)
{
	return run_suite(api_suite());
}
