/*
 * test_deps.c - dependencies between jobs (DESIGN §3, issue 15 item 2):
 * "depends_on" in a submission, the "waiting" status, promotion to queued
 * in the transaction of the last dependency's success, transitive
 * cancellation with error "dependency <id> <status>", DELETE of a waiting
 * job, JOBD_DEPENDS_ON for exec handlers, "waiting" in list filters and
 * metrics, a restart while jobs wait, a dependency ended unseen (resolved
 * by the start-up sweep), two nodes (PostgreSQL), and a fan-out and a chain
 * of 10,000 jobs.
 *
 * Runs on SQLite and, under tests/pg/with_server.sh, on PostgreSQL.  A
 * dependency that must not end before the test says so is an exec job
 * blocked reading a FIFO (cat): the test opens and closes the FIFO's
 * write end to let it finish.  Nothing waits on a fixed delay.
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "checks.h"
#include "harness.h"

#define WAIT_MS 20000

/* ---- helpers ---- */

/* A daemon (not started) with the gate handler and more INI text. */
static jd *
new_gated(int threads, const char *more, char *fifo, size_t fifolen,
          const struct jd *share, bool gate_only)
{
	struct jd_opts o = {.threads = threads, .share_store = share,
	                    .no_default_handlers = gate_only};
	char *extra = NULL;
	jd *d;

	jd_make_fifo(fifo, fifolen, "gate");
	ck_assert(asprintf(&extra, "[handler.gate]\ncommand = /bin/cat '%s'\n"
	                   "%s", fifo, more ? more : "") > 0);
	o.extra = extra;
	d = jd_new(&o);
	free(extra);
	ck_assert_ptr_nonnull(d);
	return d;
}

/* The same, started. */
static jd *
launch_gated(int threads, const char *more, char *fifo, size_t fifolen)
{
	jd *d = new_gated(threads, more, fifo, fifolen, NULL, false);

	ck_assert_int_eq(jd_start(d), 0);
	return d;
}

static char *
submit_dep(jd *d, const char *type, const char *const *deps, size_t n,
           const char *more)
{
	char body[8192];
	size_t used = 0;

	used += (size_t)snprintf(body, sizeof(body), "{\"type\": \"%s\", "
	                         "\"depends_on\": [", type);
	for (size_t i = 0; i < n; i++)
		used += (size_t)snprintf(body + used, sizeof(body) - used,
		                         "%s\"%s\"", i ? ", " : "", deps[i]);
	snprintf(body + used, sizeof(body) - used, "]%s%s}", more ? ", " : "",
	         more ? more : "");
	return submit_ok(d, body);
}

/* POST answer for body: status code, and the "status" field in st. */
static long
post(jd *d, const char *body, char *st, size_t stlen, char *id, size_t idlen)
{
	const char *ct[] = {"Content-Type: application/json", NULL};
	struct jd_resp *r = jd_request(d, "POST", "/jobs", ct, body);
	long code;

	ck_assert_ptr_nonnull(r);
	code = r->status;
	if (st != NULL) {
		const char *s = jd_resp_str(r, "status");
		snprintf(st, stlen, "%s", s ? s : "");
	}
	if (id != NULL) {
		const char *s = jd_resp_str(r, "id");
		snprintf(id, idlen, "%s", s ? s : "");
	}
	jd_resp_free(r);
	return code;
}

static struct jd_resp *
get_job(jd *d, const char *id)
{
	char path[128];
	struct jd_resp *r;

	snprintf(path, sizeof(path), "/jobs/%s", id);
	r = jd_request(d, "GET", path, NULL, NULL);
	assert_status(r, 200);
	return r;
}

static void
assert_job_status(jd *d, const char *id, const char *want)
{
	struct jd_resp *r = get_job(d, id);

	ck_assert_msg(strcmp(jd_resp_str(r, "status"), want) == 0,
	              "job %s is %s, expected %s", id, jd_resp_str(r, "status"),
	              want);
	jd_resp_free(r);
}

static int64_t
time_of(jd *d, const char *id, const char *field)
{
	struct jd_resp *r = get_job(d, id);
	const char *s = jd_resp_str(r, field);
	int64_t t = s ? jd_parse_time_ms(s) : -1;

	jd_resp_free(r);
	return t;
}

/* The job's error once it is cancelled. */
static char *
cancelled_error(jd *d, const char *id)
{
	struct jd_resp *r = wait_status(d, id, "cancelled", WAIT_MS);
	const char *e = jd_resp_str(r, "error");
	char *copy = strdup(e ? e : "(null)");

	jd_resp_free(r);
	return copy;
}

/* ---- the rules ---- */

START_TEST(test_waits_then_runs)
{
	char fifo[300], st[32], body[256], bid[64];
	jd *d = launch_gated(2, NULL, fifo, sizeof(fifo));
	char *a = submit_ok(d, "{\"type\": \"gate\"}");
	struct jd_resp *r;

	snprintf(body, sizeof(body), "{\"type\": \"noop\", \"depends_on\": "
	         "[\"%s\"]}", a);
	ck_assert_int_eq(post(d, body, st, sizeof(st), bid, sizeof(bid)), 202);
	ck_assert_str_eq(st, "waiting");
	/* Shown waiting, with its dependency, listed and counted. */
	r = get_job(d, bid);
	ck_assert_str_eq(jd_resp_str(r, "status"), "waiting");
	cJSON *deps = cJSON_GetObjectItem(jd_json(r), "depends_on");
	ck_assert(cJSON_IsArray(deps) && cJSON_GetArraySize(deps) == 1);
	ck_assert_str_eq(cJSON_GetArrayItem(deps, 0)->valuestring, a);
	jd_resp_free(r);
	r = jd_request(d, "GET", "/jobs?status=waiting", NULL, NULL);
	assert_status(r, 200);
	cJSON *jobs = cJSON_GetObjectItem(jd_json(r), "jobs");
	ck_assert_int_eq(cJSON_GetArraySize(jobs), 1);
	ck_assert_str_eq(jd_str(cJSON_GetArrayItem(jobs, 0), "id"), bid);
	ck_assert(cJSON_IsArray(cJSON_GetObjectItem(cJSON_GetArrayItem(jobs,
	          0), "depends_on")));
	jd_resp_free(r);
	ck_assert(jd_wait_metric(d, "jobd_jobs{status=\"waiting\"}", 1,
	                         WAIT_MS));
	/* A job without dependencies shows an empty list. */
	r = get_job(d, a);
	deps = cJSON_GetObjectItem(jd_json(r), "depends_on");
	ck_assert(cJSON_IsArray(deps) && cJSON_GetArraySize(deps) == 0);
	jd_resp_free(r);
	assert_job_status(d, bid, "waiting");

	jd_open_gate(fifo);
	jd_resp_free(wait_status(d, bid, "succeeded", WAIT_MS));
	ck_assert_int_le(time_of(d, a, "finished_at"),
	                 time_of(d, bid, "started_at"));
	ck_assert(jd_wait_metric(d, "jobd_jobs{status=\"waiting\"}", 0,
	                         WAIT_MS));
	free(a);
	jd_stop(d, 10000);
	jd_free(d);
}
END_TEST

START_TEST(test_diamond)
{
	char fifo[300];
	jd *d = launch_gated(4, NULL, fifo, sizeof(fifo));
	char *a = submit_ok(d, "{\"type\": \"gate\"}");
	const char *da[] = {a};
	char *b = submit_dep(d, "noop", da, 1, NULL);
	char *c = submit_dep(d, "noop", da, 1, "\"priority\": 5");
	const char *dbc[] = {b, c};
	char *e = submit_dep(d, "noop", dbc, 2, NULL);

	assert_job_status(d, e, "waiting");
	jd_open_gate(fifo);
	jd_resp_free(wait_status(d, e, "succeeded", WAIT_MS));
	int64_t bf = time_of(d, b, "finished_at");
	int64_t cf = time_of(d, c, "finished_at");
	ck_assert_int_le(time_of(d, a, "finished_at"),
	                 time_of(d, b, "started_at"));
	ck_assert_int_le(time_of(d, a, "finished_at"),
	                 time_of(d, c, "started_at"));
	ck_assert_int_le(bf > cf ? bf : cf, time_of(d, e, "started_at"));
	/* Edges are gone once resolved. */
	ck_assert_int_eq(jd_sql_int(d, "SELECT count(*) FROM "
	                 "job_deps"), 0);
	free(a);
	free(b);
	free(c);
	free(e);
	jd_stop(d, 10000);
	jd_free(d);
}
END_TEST

START_TEST(test_failure_cancels_chain)
{
	char fifo[300], want[128];
	jd *d = launch_gated(2, "[handler.once]\ncommand = /bin/false\n"
	                     "max_attempts = 1\n", fifo, sizeof(fifo));
	char *g = submit_ok(d, "{\"type\": \"gate\"}");
	/* f waits for the gate, then fails for good */
	const char *dg[] = {g};
	char *f = submit_dep(d, "once", dg, 1, NULL);
	const char *df[] = {f};
	char *b = submit_dep(d, "noop", df, 1, NULL);
	const char *dbb[] = {b};
	char *c = submit_dep(d, "noop", dbb, 1, NULL);
	const char *dcb[] = {c, g};
	char *e = submit_dep(d, "noop", dcb, 2, NULL);
	struct jd_resp *r;
	char *err;

	assert_job_status(d, c, "waiting");
	jd_open_gate(fifo);
	jd_resp_free(wait_status(d, f, "failed", WAIT_MS));
	err = cancelled_error(d, b);
	snprintf(want, sizeof(want), "dependency %s failed", f);
	ck_assert_str_eq(err, want);
	free(err);
	err = cancelled_error(d, c);
	snprintf(want, sizeof(want), "dependency %s cancelled", b);
	ck_assert_str_eq(err, want);
	free(err);
	err = cancelled_error(d, e);
	snprintf(want, sizeof(want), "dependency %s cancelled", c);
	ck_assert_str_eq(err, want);
	free(err);
	r = get_job(d, c);
	ck_assert_ptr_null(jd_resp_str(r, "started_at"));
	jd_resp_free(r);
	/* Counted as cancelled; nothing waits any more. */
	ck_assert(jd_wait_metric(d, "jobd_jobs{status=\"waiting\"}", 0,
	                         WAIT_MS));
	ck_assert(jd_wait_metric(d, "jobd_jobs{status=\"cancelled\"}", 3,
	                         WAIT_MS));
	ck_assert(jd_wait_metric(d, "jobd_jobs_finished_total{type=\"noop\","
	                         "status=\"cancelled\"}", 3, WAIT_MS));
	/* Retrying the failed dependency does not revive them. */
	char path[128];
	snprintf(path, sizeof(path), "/jobs/%s/retry", f);
	r = jd_request(d, "POST", path, NULL, NULL);
	assert_status(r, 200);
	jd_resp_free(r);
	jd_resp_free(wait_status(d, f, "failed", WAIT_MS));
	assert_job_status(d, b, "cancelled");
	free(g);
	free(f);
	free(b);
	free(c);
	free(e);
	jd_stop(d, 10000);
	jd_free(d);
}
END_TEST

START_TEST(test_ended_dependencies_at_submit)
{
	jd *d = launch(2, "[handler.once]\ncommand = /bin/false\n"
	               "max_attempts = 1\n");
	char *ok = submit_ok(d, "{\"type\": \"noop\"}");
	char *bad = submit_ok(d, "{\"type\": \"once\"}");
	char st[32], id[64], body[256], want[128], *err;

	jd_resp_free(wait_status(d, ok, "succeeded", WAIT_MS));
	jd_resp_free(wait_status(d, bad, "failed", WAIT_MS));
	/* Succeeded: met, the job is queued and runs. */
	snprintf(body, sizeof(body), "{\"type\": \"noop\", \"depends_on\": "
	         "[\"%s\"]}", ok);
	ck_assert_int_eq(post(d, body, st, sizeof(st), id, sizeof(id)), 202);
	ck_assert_str_eq(st, "queued");
	jd_resp_free(wait_status(d, id, "succeeded", WAIT_MS));
	/* Failed (beside a succeeded one): cancelled at once, still 202. */
	snprintf(body, sizeof(body), "{\"type\": \"noop\", \"depends_on\": "
	         "[\"%s\", \"%s\"]}", ok, bad);
	ck_assert_int_eq(post(d, body, st, sizeof(st), id, sizeof(id)), 202);
	ck_assert_str_eq(st, "cancelled");
	err = cancelled_error(d, id);
	snprintf(want, sizeof(want), "dependency %s failed", bad);
	ck_assert_str_eq(err, want);
	free(err);
	/* A job depending on that cancelled one: cancelled too. */
	char id2[64];
	snprintf(body, sizeof(body), "{\"type\": \"noop\", \"depends_on\": "
	         "[\"%s\"]}", id);
	ck_assert_int_eq(post(d, body, st, sizeof(st), id2, sizeof(id2)), 202);
	ck_assert_str_eq(st, "cancelled");
	free(ok);
	free(bad);
	jd_stop(d, 10000);
	jd_free(d);
}
END_TEST

START_TEST(test_bad_depends_on)
{
	jd *d = launch(2, NULL);
	char *ok = submit_ok(d, "{\"type\": \"noop\"}");
	char body[8192], st[32], id[64];
	size_t used;
	long long before;

	jd_resp_free(wait_status(d, ok, "succeeded", WAIT_MS));
	before = jd_sql_int(d, "SELECT count(*) FROM jobs");
	/* An id no job has: 422, nothing stored. */
	ck_assert_int_eq(post(d, "{\"type\": \"noop\", \"depends_on\": "
	                 "[\"01900000-0000-7000-8000-000000000000\"]}", NULL, 0,
	                 NULL, 0), 422);
	snprintf(body, sizeof(body), "{\"type\": \"noop\", \"depends_on\": "
	         "[\"%s\", \"01900000-0000-7000-8000-000000000001\"]}", ok);
	ck_assert_int_eq(post(d, body, NULL, 0, NULL, 0), 422);
	/* Not ids at all: 422; wrong types: 400. */
	const char *const bad422[] = {
		"[\"x\"]", "[\"\"]", "[\"01900000-0000-7000-8000-00000000000\"]",
		"[\"01900000-0000-7000-8000-0000000000000\"]",
		"[\"01900000-0000-7000-8000-00000000000\\u0000\"]",
		"[\"../../etc/passwd\"]", "[\"' OR 1=1 --\"]",
	};
	for (size_t i = 0; i < sizeof(bad422) / sizeof(*bad422); i++) {
		snprintf(body, sizeof(body), "{\"type\": \"noop\", "
		         "\"depends_on\": %s}", bad422[i]);
		ck_assert_msg(post(d, body, NULL, 0, NULL, 0) == 422, "%s",
		              body);
	}
	const char *const bad400[] = {"\"x\"", "{}", "[1]", "[null]",
	                              "[[\"x\"]]", "true", "null"};
	for (size_t i = 0; i < sizeof(bad400) / sizeof(*bad400); i++) {
		snprintf(body, sizeof(body), "{\"type\": \"noop\", "
		         "\"depends_on\": %s}", bad400[i]);
		ck_assert_msg(post(d, body, NULL, 0, NULL, 0) == 400, "%s",
		              body);
	}
	/* A known id with a NUL and more after it is not that id. */
	snprintf(body, sizeof(body), "{\"type\": \"noop\", \"depends_on\": "
	         "[\"%s\\u0000x\"]}", ok);
	ck_assert_int_eq(post(d, body, NULL, 0, NULL, 0), 422);
	/* 101 entries: 422 (100 repeats of one id: fine, one dependency). */
	used = (size_t)snprintf(body, sizeof(body), "{\"type\": \"noop\", "
	                        "\"depends_on\": [");
	for (int i = 0; i < 101; i++)
		used += (size_t)snprintf(body + used, sizeof(body) - used,
		                         "%s\"%s\"", i ? "," : "", ok);
	snprintf(body + used, sizeof(body) - used, "]}");
	ck_assert_int_eq(post(d, body, NULL, 0, NULL, 0), 422);
	ck_assert_int_eq(jd_sql_int(d, "SELECT count(*) FROM jobs"), before);
	strcpy(strrchr(body, ',') , "]}");
	ck_assert_int_eq(post(d, body, st, sizeof(st), id, sizeof(id)), 202);
	ck_assert_str_eq(st, "queued");
	struct jd_resp *r = get_job(d, id);
	cJSON *deps = cJSON_GetObjectItem(jd_json(r), "depends_on");
	ck_assert_int_eq(cJSON_GetArraySize(deps), 1);
	jd_resp_free(r);
	/* Upper case is the same job. */
	char upper[64];
	snprintf(upper, sizeof(upper), "%s", ok);
	for (char *p = upper; *p; p++)
		if (*p >= 'a' && *p <= 'f')
			*p = (char)(*p - 'a' + 'A');
	snprintf(body, sizeof(body), "{\"type\": \"noop\", \"depends_on\": "
	         "[\"%s\"]}", upper);
	ck_assert_int_eq(post(d, body, st, sizeof(st), id, sizeof(id)), 202);
	ck_assert_str_eq(st, "queued");
	/* An empty list: no dependency. */
	ck_assert_int_eq(post(d, "{\"type\": \"noop\", \"depends_on\": []}",
	                 st, sizeof(st), NULL, 0), 202);
	ck_assert_str_eq(st, "queued");
	/* ?status=waiting is a valid filter; a bogus one is not. */
	r = jd_request(d, "GET", "/jobs?status=waiting", NULL, NULL);
	assert_status(r, 200);
	jd_resp_free(r);
	free(ok);
	jd_stop(d, 10000);
	jd_free(d);
}
END_TEST

START_TEST(test_delete_in_the_middle)
{
	char fifo[300], path[128], want[128], *err;
	jd *d = launch_gated(2, NULL, fifo, sizeof(fifo));
	char *a = submit_ok(d, "{\"type\": \"gate\"}");
	const char *da[] = {a};
	char *b = submit_dep(d, "noop", da, 1, NULL);
	const char *db[] = {b};
	char *c = submit_dep(d, "noop", db, 1, NULL);
	const char *dc[] = {c};
	char *e = submit_dep(d, "noop", dc, 1, NULL);
	struct jd_resp *r;

	snprintf(path, sizeof(path), "/jobs/%s", b);
	r = jd_request(d, "DELETE", path, NULL, NULL);
	assert_status(r, 200);
	ck_assert_str_eq(jd_resp_str(r, "status"), "cancelled");
	jd_resp_free(r);
	err = cancelled_error(d, c);
	snprintf(want, sizeof(want), "dependency %s cancelled", b);
	ck_assert_str_eq(err, want);
	free(err);
	err = cancelled_error(d, e);
	snprintf(want, sizeof(want), "dependency %s cancelled", c);
	ck_assert_str_eq(err, want);
	free(err);
	/* Again: 409 (final). */
	r = jd_request(d, "DELETE", path, NULL, NULL);
	assert_status(r, 409);
	jd_resp_free(r);
	/* The dependency itself runs on. */
	assert_job_status(d, a, "running");
	jd_open_gate(fifo);
	jd_resp_free(wait_status(d, a, "succeeded", WAIT_MS));
	assert_job_status(d, b, "cancelled");
	ck_assert(jd_wait_metric(d, "jobd_jobs{status=\"waiting\"}", 0,
	                         WAIT_MS));
	free(a);
	free(b);
	free(c);
	free(e);
	jd_stop(d, 10000);
	jd_free(d);
}
END_TEST

START_TEST(test_exec_env)
{
	jd *d = launch(2, "[handler.env]\ncommand = /bin/sh -c "
	               "'printf \"%s|\" \"$JOBD_DEPENDS_ON\"'\n");
	char *a = submit_ok(d, "{\"type\": \"noop\"}");
	char *b = submit_ok(d, "{\"type\": \"noop\"}");
	const char *dab[] = {a, b};
	char *c = submit_dep(d, "env", dab, 2, NULL);
	char *e = submit_ok(d, "{\"type\": \"env\"}");
	char want[128];
	struct jd_resp *r;

	r = wait_status(d, c, "succeeded", WAIT_MS);
	snprintf(want, sizeof(want), "%s %s|", a, b);
	ck_assert_str_eq(jd_resp_str(r, "result"), want);
	jd_resp_free(r);
	r = wait_status(d, e, "succeeded", WAIT_MS);
	ck_assert_str_eq(jd_resp_str(r, "result"), "|");
	jd_resp_free(r);
	free(a);
	free(b);
	free(c);
	free(e);
	jd_stop(d, 10000);
	jd_free(d);
}
END_TEST

START_TEST(test_restart_while_waiting)
{
	jd *d = launch(2, NULL);
	/* A dependency due in a while: its dependent waits across a
	 * restart, then runs after it. */
	char *a = submit_ok(d, "{\"type\": \"noop\", \"delay\": 2}");
	const char *da[] = {a};
	char *b = submit_dep(d, "noop", da, 1, NULL);
	const char *db[] = {b};
	char *c = submit_dep(d, "noop", db, 1, NULL);

	assert_job_status(d, b, "waiting");
	ck_assert_int_eq(jd_stop(d, 10000), 0);
	ck_assert_int_eq(jd_start(d), 0);
	assert_job_status(d, c, "waiting");
	ck_assert(jd_wait_metric(d, "jobd_jobs{status=\"waiting\"}", 2,
	                         WAIT_MS));
	jd_resp_free(wait_status(d, c, "succeeded", WAIT_MS));
	ck_assert_int_le(time_of(d, a, "finished_at"),
	                 time_of(d, b, "started_at"));
	ck_assert_int_le(time_of(d, b, "finished_at"),
	                 time_of(d, c, "started_at"));
	free(a);
	free(b);
	free(c);
	jd_stop(d, 10000);
	jd_free(d);
}
END_TEST

/* A dependency that ended without its dependents hearing of it (here
 * written behind jobd's back while it was stopped; in life, a dead
 * node's job rescued by another): start-up resolves its edges. */
START_TEST(test_unseen_end_is_swept)
{
	jd *d = launch(2, NULL);
	char *a = submit_ok(d, "{\"type\": \"noop\", \"delay\": 3600}");
	char *a2 = submit_ok(d, "{\"type\": \"noop\", \"delay\": 3600}");
	const char *da[] = {a};
	const char *da2[] = {a2};
	char *b = submit_dep(d, "noop", da, 1, NULL);
	char *c = submit_dep(d, "noop", da2, 1, NULL);
	char sql[256], want[128], *err;

	ck_assert_int_eq(jd_stop(d, 10000), 0);
	snprintf(sql, sizeof(sql), "UPDATE jobs SET status = 'failed', "
	         "finished_at = 1 WHERE id = '%s'", a);
	ck_assert_int_eq(jd_sql_exec(d, sql), 0);
	snprintf(sql, sizeof(sql), "UPDATE jobs SET status = 'succeeded', "
	         "finished_at = 1 WHERE id = '%s'", a2);
	ck_assert_int_eq(jd_sql_exec(d, sql), 0);
	ck_assert_int_eq(jd_start(d), 0);
	err = cancelled_error(d, b);
	snprintf(want, sizeof(want), "dependency %s failed", a);
	ck_assert_str_eq(err, want);
	free(err);
	jd_resp_free(wait_status(d, c, "succeeded", WAIT_MS));
	ck_assert_int_eq(jd_sql_int(d, "SELECT count(*) FROM job_deps"), 0);
	free(a);
	free(a2);
	free(b);
	free(c);
	jd_stop(d, 10000);
	jd_free(d);
}
END_TEST

/* Two nodes on one PostgreSQL store: node B alone runs the gate, node A
 * alone runs noop.  A job submitted on A waits for a gate job running on
 * B; B's commit of its success promotes it, and A (woken) runs it. */
START_TEST(test_two_nodes)
{
	char fifo[300], st[32], id[64], body[256];
	struct jd_opts oa = {.threads = 2,
	                     .extra = "[store]\nnode = a\nlease = 30s\n"};
	jd *a, *b;

	if (!jd_store_is_pg())
		return;
	a = jd_launch(&oa);
	ck_assert_ptr_nonnull(a);
	b = new_gated(2, "[store]\nnode = b\nlease = 30s\n", fifo,
	              sizeof(fifo), a, true);
	ck_assert_int_eq(jd_start(b), 0);
	char *g = submit_ok(b, "{\"type\": \"gate\"}");
	jd_resp_free(wait_status(b, g, "running", WAIT_MS));
	snprintf(body, sizeof(body), "{\"type\": \"noop\", \"depends_on\": "
	         "[\"%s\"]}", g);
	ck_assert_int_eq(post(a, body, st, sizeof(st), id, sizeof(id)), 202);
	ck_assert_str_eq(st, "waiting");
	jd_open_gate(fifo);
	jd_resp_free(wait_status(b, g, "succeeded", WAIT_MS));
	jd_resp_free(wait_status(a, id, "succeeded", WAIT_MS));
	ck_assert_int_le(time_of(a, g, "finished_at"),
	                 time_of(a, id, "started_at"));
	free(g);
	jd_stop(b, 10000);
	jd_stop(a, 10000);
	jd_free(b);
	jd_free(a);
}
END_TEST

/* ---- 10,000 ---- */

/* ---- depends_on inside a batch (DESIGN §2: "#N") ---- */

/* POST of a batch: the answer (202 expected). */
static struct jd_resp *
post_batch(jd *d, const char *body, const char *extra)
{
	const char *h[] = {"Content-Type: application/json", extra, NULL};
	struct jd_resp *r = jd_request(d, "POST", "/jobs", h, body);

	ck_assert_ptr_nonnull(r);
	return r;
}

/* Element i of a batch's answer: its id into id, its status into st. */
static void
batch_nth(struct jd_resp *r, int i, char *id, char *st)
{
	cJSON *jobs = cJSON_GetObjectItem(jd_json(r), "jobs");
	cJSON *j = cJSON_GetArrayItem(jobs, i);

	ck_assert_msg(j != NULL, "no element %d in %s", i, r->body);
	snprintf(id, 64, "%s", jd_str(j, "id"));
	snprintf(st, 32, "%s", jd_str(j, "status"));
}

/* The job's depends_on, as "a b c". */
static void
deps_of(jd *d, const char *id, char *out, size_t outlen)
{
	struct jd_resp *r = get_job(d, id);
	cJSON *deps = cJSON_GetObjectItem(jd_json(r), "depends_on"), *e;
	size_t used = 0;

	out[0] = '\0';
	ck_assert(cJSON_IsArray(deps));
	cJSON_ArrayForEach(e, deps)
		used += (size_t)snprintf(out + used, outlen - used, "%s%s",
		                         used ? " " : "", e->valuestring);
	jd_resp_free(r);
}

/* "#N" names an earlier element: the batch is a graph committed at once,
 * shown with real ids, run in its order; its key replays it. */
START_TEST(test_batch_refs)
{
	char fifo[300], body[1024], ids[4][64], st[4][32], want[512], got[512];
	jd *d = launch_gated(4, NULL, fifo, sizeof(fifo));
	char *g = submit_ok(d, "{\"type\": \"gate\"}");
	struct jd_resp *r;

	snprintf(body, sizeof(body), "[{\"type\": \"noop\", \"depends_on\": "
	         "[\"%s\"]}, {\"type\": \"noop\", \"depends_on\": [\"#0\"]}, "
	         "{\"type\": \"noop\", \"depends_on\": [\"#0\", \"#1\", \"%s\", "
	         "\"#1\"]}, {\"type\": \"noop\"}]", g, g);
	r = post_batch(d, body, "Idempotency-Key: graph-1");
	assert_status(r, 202);
	for (int i = 0; i < 4; i++)
		batch_nth(r, i, ids[i], st[i]);
	jd_resp_free(r);
	ck_assert_str_eq(st[0], "waiting");
	ck_assert_str_eq(st[1], "waiting");
	ck_assert_str_eq(st[2], "waiting");
	ck_assert_str_eq(st[3], "queued");
	/* Real ids, in the order given, repeats dropped. */
	deps_of(d, ids[1], got, sizeof(got));
	ck_assert_str_eq(got, ids[0]);
	deps_of(d, ids[2], got, sizeof(got));
	snprintf(want, sizeof(want), "%s %s %s", ids[0], ids[1], g);
	ck_assert_str_eq(got, want);
	ck_assert_int_eq(jd_sql_int(d, "SELECT count(*) FROM job_deps"), 5);
	jd_resp_free(wait_status(d, ids[3], "succeeded", WAIT_MS));
	assert_job_status(d, ids[2], "waiting");
	/* The same batch and key: the same ids, nothing new. */
	long long before = jd_sql_int(d, "SELECT count(*) FROM jobs");
	r = post_batch(d, body, "Idempotency-Key: graph-1");
	assert_status(r, 202);
	ck_assert_str_eq(jd_header(r, "Idempotent-Replayed"), "true");
	for (int i = 0; i < 4; i++) {
		char id[64], s[32];
		batch_nth(r, i, id, s);
		ck_assert_str_eq(id, ids[i]);
	}
	jd_resp_free(r);
	ck_assert_int_eq(jd_sql_int(d, "SELECT count(*) FROM jobs"), before);

	jd_open_gate(fifo);
	jd_resp_free(wait_status(d, ids[2], "succeeded", WAIT_MS));
	ck_assert_int_le(time_of(d, g, "finished_at"),
	                 time_of(d, ids[0], "started_at"));
	ck_assert_int_le(time_of(d, ids[0], "finished_at"),
	                 time_of(d, ids[1], "started_at"));
	ck_assert_int_le(time_of(d, ids[1], "finished_at"),
	                 time_of(d, ids[2], "started_at"));
	ck_assert_int_eq(jd_sql_int(d, "SELECT count(*) FROM job_deps"), 0);
	free(g);
	jd_stop(d, 10000);
	jd_free(d);
}
END_TEST

/* A problem whose errors[] is exactly one entry for element index. */
static void
assert_one_error(struct jd_resp *r, int index, const char *needle)
{
	cJSON *errs = cJSON_GetObjectItem(jd_json(r), "errors");

	assert_status(r, 422);
	ck_assert_msg(cJSON_IsArray(errs) && cJSON_GetArraySize(errs) == 1,
	              "%s", r->body);
	ck_assert_msg(jd_num(errs->child, "index", -1) == index, "%s",
	              r->body);
	ck_assert_msg(strstr(jd_str(errs->child, "detail"), needle) != NULL,
	              "%s", r->body);
}

/* A "#N" that is not an earlier element, or an id outside the batch that
 * names no job: 422 with that element's index, and nothing stored. */
START_TEST(test_batch_refs_refused)
{
	jd *d = launch(2, NULL);
	char *ok = submit_ok(d, "{\"type\": \"noop\"}");
	char body[1024];
	struct jd_resp *r;
	long long before;

	jd_resp_free(wait_status(d, ok, "succeeded", WAIT_MS));
	before = jd_sql_int(d, "SELECT count(*) FROM jobs");
	const char *const refs[] = {"#1", "#2", "#9", "#01", "#-1", "#",
	                            "#1x", "# 0", "#99999999999999999999",
	                            "#0\\u0000"};
	for (size_t i = 0; i < sizeof(refs) / sizeof(*refs); i++) {
		/* Element 1 names itself, a later one, or no number. */
		snprintf(body, sizeof(body), "[{\"type\": \"noop\"}, "
		         "{\"type\": \"noop\", \"depends_on\": [\"%s\"]}, "
		         "{\"type\": \"noop\"}]", refs[i]);
		r = post_batch(d, body, NULL);
		ck_assert_msg(r->status == 422, "%s: %ld", refs[i], r->status);
		assert_one_error(r, 1, "depends_on");
		jd_resp_free(r);
	}
	/* "#0" in element 0: itself.  Outside a batch: not a job id. */
	r = post_batch(d, "[{\"type\": \"noop\", \"depends_on\": [\"#0\"]}]",
	               NULL);
	assert_one_error(r, 0, "depends_on");
	jd_resp_free(r);
	r = post_batch(d, "{\"type\": \"noop\", \"depends_on\": [\"#0\"]}",
	               NULL);
	assert_status(r, 422);
	jd_resp_free(r);
	/* An unknown id in element 2, after good ones and a "#N": refused
	 * by the writer, the elements before it not stored either. */
	snprintf(body, sizeof(body), "[{\"type\": \"noop\", \"depends_on\": "
	         "[\"%s\"]}, {\"type\": \"noop\", \"depends_on\": [\"#0\"]}, "
	         "{\"type\": \"noop\", \"depends_on\": [\"#1\", \"%s\", "
	         "\"01900000-0000-7000-8000-0000000000ff\"]}]", ok, ok);
	r = post_batch(d, body, "Idempotency-Key: refused-1");
	assert_one_error(r, 2, "01900000-0000-7000-8000-0000000000ff");
	jd_resp_free(r);
	ck_assert_int_eq(jd_sql_int(d, "SELECT count(*) FROM jobs"), before);
	ck_assert_int_eq(jd_sql_int(d, "SELECT count(*) FROM job_deps"), 0);
	/* The key was not taken by the refused batch. */
	r = post_batch(d, "[{\"type\": \"noop\"}]", "Idempotency-Key: refused-1");
	assert_status(r, 202);
	jd_resp_free(r);
	free(ok);
	jd_stop(d, 10000);
	jd_free(d);
}
END_TEST

/* Ended dependencies at submission: a failed one cancels its dependent
 * in the batch at once, and the elements that name that one by "#N". */
START_TEST(test_batch_refs_ended)
{
	jd *d = launch(2, "[handler.once]\ncommand = /bin/false\n"
	               "max_attempts = 1\n");
	char *ok = submit_ok(d, "{\"type\": \"noop\"}");
	char *bad = submit_ok(d, "{\"type\": \"once\"}");
	char body[1024], ids[3][64], st[3][32], want[128], *err;
	struct jd_resp *r;

	jd_resp_free(wait_status(d, ok, "succeeded", WAIT_MS));
	jd_resp_free(wait_status(d, bad, "failed", WAIT_MS));
	snprintf(body, sizeof(body), "[{\"type\": \"noop\", \"depends_on\": "
	         "[\"%s\", \"%s\"]}, {\"type\": \"noop\", \"depends_on\": "
	         "[\"#0\"]}, {\"type\": \"noop\", \"depends_on\": [\"%s\"]}]",
	         ok, bad, ok);
	r = post_batch(d, body, NULL);
	assert_status(r, 202);
	for (int i = 0; i < 3; i++)
		batch_nth(r, i, ids[i], st[i]);
	jd_resp_free(r);
	ck_assert_str_eq(st[0], "cancelled");
	ck_assert_str_eq(st[1], "cancelled");
	ck_assert_str_eq(st[2], "queued");
	err = cancelled_error(d, ids[0]);
	snprintf(want, sizeof(want), "dependency %s failed", bad);
	ck_assert_str_eq(err, want);
	free(err);
	err = cancelled_error(d, ids[1]);
	snprintf(want, sizeof(want), "dependency %s cancelled", ids[0]);
	ck_assert_str_eq(err, want);
	free(err);
	jd_resp_free(wait_status(d, ids[2], "succeeded", WAIT_MS));
	ck_assert(jd_wait_metric(d, "jobd_jobs{status=\"waiting\"}", 0,
	                         WAIT_MS));
	free(ok);
	free(bad);
	jd_stop(d, 10000);
	jd_free(d);
}
END_TEST

/* JOBD_DEPS_BIG overrides the size (for a quick look); under sanitizers
 * (JOBD_SANITIZE set: CI's second and third runs) 2,000, since the size
 * proves nothing more there and costs minutes. */
static int
big(void)
{
	const char *e = getenv("JOBD_DEPS_BIG"), *san = getenv("JOBD_SANITIZE");

	if (e != NULL && atoi(e) > 1)
		return atoi(e);
	return san != NULL && *san != '\0' ? 2000 : 10000;
}
#define BIG big()

/* One job with BIG dependents: its success promotes them all (one
 * transaction; the edges are read by the dependency's key). */
START_TEST(test_fan_out_10000)
{
	char fifo[300];
	jd *d = launch_gated(4, "[store]\ndurability = normal\nmax_queued = "
	                     "100000\n", fifo, sizeof(fifo));
	char *x = submit_ok(d, "{\"type\": \"gate\"}");
	const char *dx[] = {x};

	for (int i = 0; i < BIG; i++)
		free(submit_dep(d, "noop", dx, 1, NULL));
	ck_assert(jd_wait_metric(d, "jobd_jobs{status=\"waiting\"}", BIG,
	                         WAIT_MS));
	int64_t t0 = jd_mono_ms();
	jd_open_gate(fifo);
	ck_assert(jd_wait_metric(d, "jobd_jobs{status=\"waiting\"}", 0,
	                         60000));
	int64_t t1 = jd_mono_ms();
	ck_assert(jd_wait_metric(d, "jobd_jobs{status=\"succeeded\"}",
	                         BIG + 1, 120000));
	printf("test_deps: fan-out: %d dependents promoted %lld ms after the "
	       "gate opened, all run after %lld ms\n", BIG,
	       (long long)(t1 - t0), (long long)(jd_mono_ms() - t0));
	char sql[256];
	snprintf(sql, sizeof(sql), "SELECT count(*) FROM jobs WHERE "
	         "started_at < (SELECT finished_at FROM jobs WHERE "
	         "CAST(id AS text) = '%s') AND CAST(id AS text) <> '%s'", x, x);
	ck_assert_int_eq(jd_sql_int(d, sql), 0);
	ck_assert_int_eq(jd_sql_int(d, "SELECT count(*) FROM job_deps"), 0);
	free(x);
	jd_stop(d, 10000);
	jd_free(d);
}
END_TEST

/* A chain BIG long: each job depends on the one before; each step
 * promotes one job.  Every job ran after its predecessor ended. */
START_TEST(test_chain_10000)
{
	jd *d = launch(4, "[store]\ndurability = normal\n");
	char *prev = submit_ok(d, "{\"type\": \"noop\", \"delay\": 1}");
	char *first = strdup(prev);
	int64_t t0 = jd_mono_ms();

	for (int i = 1; i < BIG; i++) {
		const char *dp[] = {prev};
		char *next = submit_dep(d, "noop", dp, 1, NULL);
		free(prev);
		prev = next;
	}
	int64_t t1 = jd_mono_ms();
	jd_resp_free(wait_status(d, prev, "succeeded", 300000));
	printf("test_deps: chain: %d jobs submitted in %lld ms, the last "
	       "ran %lld ms after the last submission\n", BIG,
	       (long long)(t1 - t0), (long long)(jd_mono_ms() - t1));
	ck_assert_int_eq(jd_sql_int(d, "SELECT count(*) FROM jobs WHERE "
	                 "status = 'succeeded'"), BIG);
	ck_assert_int_eq(jd_sql_int(d, "SELECT count(*) FROM jobs j "
	                 "JOIN jobs p ON CAST(p.id AS text) = j.depends_on "
	                 "WHERE j.started_at < p.finished_at"), 0);
	ck_assert_int_eq(jd_sql_int(d, "SELECT count(*) FROM jobs j "
	                 "JOIN jobs p ON CAST(p.id AS text) = j.depends_on"),
	                 BIG - 1);
	free(prev);
	free(first);
	jd_stop(d, 10000);
	jd_free(d);
}
END_TEST

static Suite *
deps_suite(void)
{
	Suite *s = suite_create("deps");
	TCase *tc = tcase_create("rules");

	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, test_waits_then_runs);
	tcase_add_test(tc, test_diamond);
	tcase_add_test(tc, test_failure_cancels_chain);
	tcase_add_test(tc, test_ended_dependencies_at_submit);
	tcase_add_test(tc, test_bad_depends_on);
	tcase_add_test(tc, test_delete_in_the_middle);
	tcase_add_test(tc, test_exec_env);
	tcase_add_test(tc, test_restart_while_waiting);
	tcase_add_test(tc, test_unseen_end_is_swept);
	tcase_add_test(tc, test_two_nodes);
	tcase_add_test(tc, test_batch_refs);
	tcase_add_test(tc, test_batch_refs_refused);
	tcase_add_test(tc, test_batch_refs_ended);
	suite_add_tcase(s, tc);
	tc = tcase_create("big");
	tcase_set_timeout(tc, 600);
	tcase_add_test(tc, test_fan_out_10000);
	tcase_add_test(tc, test_chain_10000);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	return run_suite(deps_suite());
}
