/*
 * test_types.c - pausing job types and per-type rates (issue 15, item
 * 4): POST /types/NAME/pause|resume hold and release one type's new
 * attempts while the others run, survive a restart and (PostgreSQL) hold
 * every node of the store; a `rate = 5/s` type starts its jobs spaced by
 * its rate while other types run freely; GET /types shows both.
 */
#include <check.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "checks.h"
#include "harness.h"

#define HANDLERS \
	"[handler.held]\nbuiltin = noop\n" \
	"[handler.free]\nbuiltin = noop\n" \
	"[handler.slow]\nbuiltin = sleep\n"

/* POST /types/<name>/<verb>: the answer (caller frees). */
static struct jd_resp *
type_verb(jd *d, const char *name, const char *verb)
{
	char path[160];

	snprintf(path, sizeof(path), "/types/%s/%s", name, verb);
	return jd_request(d, "POST", path, NULL, NULL);
}

/* Pauses or resumes a type and checks the answer: the type object with
 * paused as asked. */
static void
set_paused(jd *d, const char *name, bool pause)
{
	struct jd_resp *r = type_verb(d, name, pause ? "pause" : "resume");
	cJSON *o;

	assert_status(r, 200);
	o = jd_json(r);
	ck_assert_ptr_nonnull(o);
	ck_assert_str_eq(jd_str(o, "name"), name);
	ck_assert(cJSON_IsBool(cJSON_GetObjectItem(o, "paused")));
	ck_assert_int_eq(cJSON_IsTrue(cJSON_GetObjectItem(o, "paused")), pause);
	ck_assert_ptr_nonnull(cJSON_GetObjectItem(o, "queued"));
	ck_assert_ptr_nonnull(cJSON_GetObjectItem(o, "running"));
	ck_assert_ptr_nonnull(cJSON_GetObjectItem(o, "rate"));
	ck_assert_ptr_nonnull(cJSON_GetObjectItem(o, "concurrency"));
	jd_resp_free(r);
}

/* The GET /types entry of name: a new copy (caller cJSON_Deletes). */
static cJSON *
type_entry(jd *d, const char *name)
{
	struct jd_resp *r = jd_request(d, "GET", "/types", NULL, NULL);
	cJSON *arr, *e, *copy = NULL;

	assert_status(r, 200);
	arr = cJSON_GetObjectItem(jd_json(r), "types");
	cJSON_ArrayForEach(e, arr)
		if (strcmp(jd_str(e, "name"), name) == 0)
			copy = cJSON_Duplicate(e, 1);
	jd_resp_free(r);
	ck_assert_msg(copy != NULL, "no type %s in GET /types", name);
	return copy;
}

static bool
type_paused(jd *d, const char *name)
{
	cJSON *e = type_entry(d, name);
	bool p = cJSON_IsTrue(cJSON_GetObjectItem(e, "paused"));

	cJSON_Delete(e);
	return p;
}

/* A job's status now. */
static char *
status_of(jd *d, const char *id)
{
	char path[80];
	struct jd_resp *r;
	char *s;

	snprintf(path, sizeof(path), "/jobs/%s", id);
	r = jd_request(d, "GET", path, NULL, NULL);
	assert_status(r, 200);
	s = strdup(jd_resp_str(r, "status"));
	jd_resp_free(r);
	return s;
}

static void
assert_job_status(jd *d, const char *id, const char *want)
{
	char *s = status_of(d, id);

	ck_assert_msg(strcmp(s, want) == 0, "job %s is %s, expected %s", id,
	              s, want);
	free(s);
}

/* A time field of a job (ms since the epoch). */
static int64_t
job_time(jd *d, const char *id, const char *field)
{
	char path[80];
	struct jd_resp *r;
	int64_t t;

	snprintf(path, sizeof(path), "/jobs/%s", id);
	r = jd_request(d, "GET", path, NULL, NULL);
	assert_status(r, 200);
	t = jd_parse_time_ms(jd_resp_str(r, field));
	jd_resp_free(r);
	ck_assert_msg(t > 0, "job %s has no %s", id, field);
	return t;
}

static void
wait_done(jd *d, const char *id, const char *status)
{
	jd_resp_free(wait_status(d, id, status, 30000));
}

/*
 * A paused type starts no new attempt (its jobs stay queued, both those
 * inserted while workers are idle and those claimed from the queue),
 * while another type runs; a running attempt of a type paused meanwhile
 * goes on; resume releases the queued jobs.
 */
START_TEST(test_pause_holds_one_type)
{
	jd *d = launch(4, HANDLERS);
	char *held[3], *freed[3], *slow, *slow2;
	cJSON *e;

	/* A running attempt goes on when its type is paused. */
	slow = submit_ok(d, "{\"type\":\"slow\",\"payload\":{\"seconds\":0.5}}");
	jd_resp_free(wait_status(d, slow, "running", 10000));
	set_paused(d, "slow", true);
	slow2 = submit_ok(d, "{\"type\":\"slow\",\"payload\":{\"seconds\":0}}");
	wait_done(d, slow, "succeeded");

	set_paused(d, "held", true);
	for (int i = 0; i < 3; i++)
		held[i] = submit_ok(d, "{\"type\":\"held\"}");
	for (int i = 0; i < 3; i++)
		freed[i] = submit_ok(d, "{\"type\":\"free\"}");
	/* The free jobs, submitted after the held ones, all ran. */
	for (int i = 0; i < 3; i++)
		wait_done(d, freed[i], "succeeded");
	for (int i = 0; i < 3; i++)
		assert_job_status(d, held[i], "queued");
	assert_job_status(d, slow2, "queued");
	ck_assert_int_eq(jd_sql_int(d, "SELECT count(*) FROM jobs WHERE "
	                            "type = 'held' AND attempt = 0"), 3);
	e = type_entry(d, "held");
	ck_assert(cJSON_IsTrue(cJSON_GetObjectItem(e, "paused")));
	ck_assert_int_eq((int)jd_num(e, "queued", -1), 3);
	ck_assert_int_eq((int)jd_num(e, "running", -1), 0);
	cJSON_Delete(e);
	ck_assert(!type_paused(d, "free"));

	/* Pausing twice is one pause; resuming releases them all. */
	set_paused(d, "held", true);
	set_paused(d, "held", false);
	set_paused(d, "held", false);
	for (int i = 0; i < 3; i++) {
		wait_done(d, held[i], "succeeded");
		free(held[i]);
		free(freed[i]);
	}
	set_paused(d, "slow", false);
	wait_done(d, slow2, "succeeded");
	free(slow);
	free(slow2);
	ck_assert_int_eq(jd_stop(d, 20000), 0);
	jd_free(d);
}
END_TEST

/* A pause is in the store: it holds after a restart, until a resume. */
START_TEST(test_pause_survives_restart)
{
	jd *d = launch(2, HANDLERS);
	char *held, *freed;

	set_paused(d, "held", true);
	held = submit_ok(d, "{\"type\":\"held\"}");
	ck_assert_int_eq(jd_stop(d, 20000), 0);
	ck_assert_int_eq(jd_start(d), 0);
	ck_assert(type_paused(d, "held"));
	freed = submit_ok(d, "{\"type\":\"free\"}");
	wait_done(d, freed, "succeeded");
	assert_job_status(d, held, "queued");
	set_paused(d, "held", false);
	wait_done(d, held, "succeeded");
	/* The resume holds across a restart too. */
	ck_assert_int_eq(jd_stop(d, 20000), 0);
	ck_assert_int_eq(jd_start(d), 0);
	ck_assert(!type_paused(d, "held"));
	free(held);
	free(freed);
	ck_assert_int_eq(jd_stop(d, 20000), 0);
	jd_free(d);
}
END_TEST

/* 404 for a type without a handler or a malformed path; 405 for other
 * methods; nothing is stored for a refused pause. */
START_TEST(test_pause_refusals)
{
	jd *d = launch(1, HANDLERS);
	const char *const bad[] = {
		"/types/nope/pause", "/types/nope/resume", "/types//pause",
		"/types/held/stop", "/types/held/pause/", "/types/held",
		"/types/held/pause/x", "/types/h%00eld/pause",
		"/types/held%2Fx/pause",
		/* 65 characters: longer than any type */
		"/types/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
		"aaaa/pause",
	};
	struct jd_resp *r;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		r = jd_request(d, "POST", bad[i], NULL, NULL);
		ck_assert_msg(r->status == 404, "%s: %ld %s", bad[i], r->status,
		              r->body);
		jd_resp_free(r);
	}
	r = jd_request(d, "GET", "/types/held/pause", NULL, NULL);
	assert_status(r, 405);
	ck_assert_str_eq(jd_header(r, "Allow"), "POST");
	jd_resp_free(r);
	r = jd_request(d, "DELETE", "/types/held/resume", NULL, NULL);
	assert_status(r, 405);
	jd_resp_free(r);
	ck_assert_int_eq(jd_sql_int(d, "SELECT count(*) FROM type_pauses"), 0);
	ck_assert(!type_paused(d, "held"));
	ck_assert_int_eq(jd_stop(d, 20000), 0);
	jd_free(d);
}
END_TEST

static int
cmp_i64(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;

	return x < y ? -1 : x > y;
}

/*
 * rate = 5/s: 20 jobs start spaced by the rate (never more than 5 + 1
 * starts in a window of one second, so they take more than 3 s from the
 * first start to the last), while jobs of another type submitted after
 * them all end before the rated ones' last start.  The writer waits for
 * the next token instead of polling: a few commits per job, not a loop.
 */
START_TEST(test_rate_spaces_starts)
{
	jd *d = launch(4, HANDLERS "[handler.rated]\nbuiltin = noop\n"
	               "rate = 5/s\n");
	char *rated[20], *freed[10];
	int64_t started[20], last_start;
	double commits_before, commits;
	cJSON *e;

	e = type_entry(d, "rated");
	ck_assert_str_eq(jd_str(e, "rate"), "5/s");
	cJSON_Delete(e);
	e = type_entry(d, "free");
	ck_assert(cJSON_IsNull(cJSON_GetObjectItem(e, "rate")));
	cJSON_Delete(e);
	commits_before = jd_metric(d, "jobd_store_commits_total");
	for (int i = 0; i < 20; i++)
		rated[i] = submit_ok(d, "{\"type\":\"rated\"}");
	for (int i = 0; i < 10; i++)
		freed[i] = submit_ok(d, "{\"type\":\"free\"}");
	for (int i = 0; i < 20; i++) {
		wait_done(d, rated[i], "succeeded");
		started[i] = job_time(d, rated[i], "started_at");
	}
	qsort(started, 20, sizeof(started[0]), cmp_i64);
	for (int i = 0; i + 6 < 20; i++)
		ck_assert_msg(started[i + 6] - started[i] > 1000,
		              "7 starts within %lld ms (from start %d)",
		              (long long)(started[i + 6] - started[i]), i);
	ck_assert_msg(started[19] - started[0] >= 3000, "20 starts in %lld ms",
	              (long long)(started[19] - started[0]));
	last_start = started[19];
	for (int i = 0; i < 10; i++) {
		wait_done(d, freed[i], "succeeded");
		ck_assert_msg(job_time(d, freed[i], "finished_at") < last_start,
		              "a free job waited for the rated type");
	}
	commits = jd_metric(d, "jobd_store_commits_total") - commits_before;
	ck_assert_msg(commits < 300, "%.0f commits for 30 jobs", commits);
	for (int i = 0; i < 20; i++)
		free(rated[i]);
	for (int i = 0; i < 10; i++)
		free(freed[i]);
	ck_assert_int_eq(jd_stop(d, 20000), 0);
	jd_free(d);
}
END_TEST

/* A paused rated type holds its jobs; resumed, they run at the rate. */
START_TEST(test_rate_and_pause)
{
	jd *d = launch(2, HANDLERS "[handler.rated]\nbuiltin = noop\n"
	               "rate = 2/s\n");
	char *ids[3], *freed;
	int64_t t[3];

	set_paused(d, "rated", true);
	for (int i = 0; i < 3; i++)
		ids[i] = submit_ok(d, "{\"type\":\"rated\"}");
	freed = submit_ok(d, "{\"type\":\"free\"}");
	wait_done(d, freed, "succeeded");
	for (int i = 0; i < 3; i++)
		assert_job_status(d, ids[i], "queued");
	set_paused(d, "rated", false);
	for (int i = 0; i < 3; i++) {
		wait_done(d, ids[i], "succeeded");
		t[i] = job_time(d, ids[i], "started_at");
	}
	qsort(t, 3, sizeof(t[0]), cmp_i64);
	ck_assert_msg(t[2] - t[0] >= 900, "3 starts at 2/s in %lld ms",
	              (long long)(t[2] - t[0]));
	for (int i = 0; i < 3; i++)
		free(ids[i]);
	free(freed);
	ck_assert_int_eq(jd_stop(d, 20000), 0);
	jd_free(d);
}
END_TEST

/* A reload (SIGHUP) that lifts a type's rate releases the jobs it held
 * back (1/h: the first job starts, the others wait for an hour). */
START_TEST(test_rate_reload)
{
	jd *d = launch(2, HANDLERS "[handler.rated]\nbuiltin = noop\n"
	               "rate = 1/h\n");
	char *ids[3], *text, *at, *log;
	cJSON *e;
	FILE *f;

	for (int i = 0; i < 3; i++)
		ids[i] = submit_ok(d, "{\"type\":\"rated\"}");
	wait_done(d, ids[0], "succeeded");
	assert_job_status(d, ids[1], "queued");
	assert_job_status(d, ids[2], "queued");
	text = jd_read_file(d->conf_path, NULL);
	ck_assert_ptr_nonnull(text);
	at = strstr(text, "rate = 1/h\n");
	ck_assert_ptr_nonnull(at);
	memmove(at, at + 11, strlen(at + 11) + 1); /* the line goes */
	f = fopen(d->conf_path, "w");
	ck_assert_ptr_nonnull(f);
	fputs(text, f);
	fclose(f);
	free(text);
	ck_assert_int_eq(kill(d->pid, SIGHUP), 0);
	log = jd_wait_log(d, "SIGHUP: reloaded", 10000);
	ck_assert_ptr_nonnull(log);
	free(log);
	e = type_entry(d, "rated");
	ck_assert(cJSON_IsNull(cJSON_GetObjectItem(e, "rate")));
	cJSON_Delete(e);
	/* The reload itself wakes the writer: no token timer needed. */
	for (int i = 1; i < 3; i++)
		wait_done(d, ids[i], "succeeded");
	for (int i = 0; i < 3; i++)
		free(ids[i]);
	ck_assert_int_eq(jd_stop(d, 20000), 0);
	jd_free(d);
}
END_TEST

/* PostgreSQL, two nodes: a pause made on A holds B (at B's next claim,
 * whether B inserts the job itself or claims it), and a resume made on
 * B releases them. */
START_TEST(test_pause_holds_other_node)
{
	struct jd_opts oa = {.threads = 2, .extra = "[store]\nnode = alpha\n"
	                     HANDLERS};
	jd *a = jd_new(&oa), *b;
	char *held[4], *freed[2];

	ck_assert_ptr_nonnull(a);
	ck_assert_int_eq(jd_start(a), 0);
	struct jd_opts ob = {.threads = 2, .extra = "[store]\nnode = bravo\n"
	                     HANDLERS, .share_store = a};
	b = jd_new(&ob);
	ck_assert_ptr_nonnull(b);
	ck_assert_int_eq(jd_start(b), 0);

	set_paused(a, "held", true);
	ck_assert(type_paused(b, "held"));
	for (int i = 0; i < 4; i++)
		held[i] = submit_ok(i % 2 ? a : b, "{\"type\":\"held\"}");
	for (int i = 0; i < 2; i++)
		freed[i] = submit_ok(i % 2 ? a : b, "{\"type\":\"free\"}");
	for (int i = 0; i < 2; i++)
		wait_done(b, freed[i], "succeeded");
	for (int i = 0; i < 4; i++)
		assert_job_status(b, held[i], "queued");
	set_paused(b, "held", false);
	ck_assert(!type_paused(a, "held"));
	for (int i = 0; i < 4; i++) {
		wait_done(a, held[i], "succeeded");
		free(held[i]);
	}
	for (int i = 0; i < 2; i++)
		free(freed[i]);
	ck_assert_int_eq(jd_stop(b, 20000), 0);
	ck_assert_int_eq(jd_stop(a, 20000), 0);
	jd_free(b);
	jd_free(a);
}
END_TEST

static Suite *
suite(void)
{
	Suite *s = suite_create("types");
	TCase *tc = tcase_create("types");

	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, test_pause_holds_one_type);
	tcase_add_test(tc, test_pause_survives_restart);
	tcase_add_test(tc, test_pause_refusals);
	tcase_add_test(tc, test_rate_spaces_starts);
	tcase_add_test(tc, test_rate_and_pause);
	tcase_add_test(tc, test_rate_reload);
	if (jd_store_is_pg())
		tcase_add_test(tc, test_pause_holds_other_node);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	return run_suite(suite());
}
