/*
 * test_schedules.c - [schedule.NAME] (issue 15, item 3): a schedule's
 * ticks make one job each, keyed schedule:<name>:<tick>; a restart makes
 * no tick twice; catch_up one / skip after downtime; pauses kept in the
 * store across restarts; POST /schedules/<name>/trigger; bad lines in
 * the config with file:line; a SIGHUP adds and removes schedules; and
 * with PostgreSQL two nodes on one store make exactly one job per tick.
 *
 * Ticks are read back from the store by their keys: the keys of one
 * schedule sort in time order ("schedule:tick:2026-12-01T02:30:05Z").
 */
#include <check.h>
#include <signal.h>
#include <sys/stat.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "checks.h"
#include "harness.h"

#define EVERY_SECOND(name, extra) \
	"[schedule." name "]\nevery = 1s\ntype = noop\n" extra

/* "2026-12-01T02:30:05Z" as ms since the epoch; -1 if malformed. */
static int64_t
tick_ms(const char *s)
{
	struct tm tm = {0};
	const char *end;

	if (s == NULL)
		return -1;
	end = strptime(s, "%Y-%m-%dT%H:%M:%SZ", &tm);
	if (end == NULL || *end != '\0')
		return -1;
	return (int64_t)timegm(&tm) * 1000;
}

static void
format_tick(int64_t ms, char *buf, size_t len)
{
	time_t t = (time_t)(ms / 1000);
	struct tm tm;

	gmtime_r(&t, &tm);
	strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static long long
sql_int(jd *d, const char *fmt, ...)
{
	char sql[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(sql, sizeof(sql), fmt, ap);
	va_end(ap);
	return jd_sql_int(d, sql);
}

/* Jobs of schedule name's ticks (not its manual triggers). */
static long long
tick_jobs(jd *d, const char *name)
{
	return sql_int(d, "SELECT count(*) FROM jobs WHERE idem_key LIKE "
	               "'schedule:%s:2%%'", name);
}

/* Jobs of name's ticks with from < tick < to (ms; -1: unbounded). */
static long long
tick_jobs_between(jd *d, const char *name, int64_t from, int64_t to)
{
	char a[32] = "0", b[32] = "9";

	if (from >= 0)
		format_tick(from, a, sizeof(a));
	if (to >= 0)
		format_tick(to, b, sizeof(b));
	return sql_int(d, "SELECT count(*) FROM jobs WHERE idem_key LIKE "
	               "'schedule:%s:2%%' AND idem_key > 'schedule:%s:%s' "
	               "AND idem_key < 'schedule:%s:%s'", name, name, a, name,
	               b);
}

/* The first (want_max false) or last tick of name's jobs, in ms. */
static int64_t
edge_tick(jd *d, const char *name, bool want_max)
{
	char sql[256], *key;
	int64_t t;

	snprintf(sql, sizeof(sql), "SELECT %s(idem_key) FROM jobs WHERE "
	         "idem_key LIKE 'schedule:%s:2%%'", want_max ? "max" : "min",
	         name);
	key = jd_sql_text(d, sql);
	ck_assert_msg(key != NULL, "no job of schedule %s", name);
	t = tick_ms(key + strlen("schedule:") + strlen(name) + 1);
	ck_assert_msg(t > 0, "bad key %s", key);
	free(key);
	return t;
}

/* Waits (bounded) until name has made at least n tick jobs. */
static void
wait_ticks(jd *d, const char *name, long long n, int timeout_ms)
{
	int64_t end = jd_mono_ms() + timeout_ms;
	long long got;

	while ((got = tick_jobs(d, name)) < n && jd_mono_ms() < end)
		jd_pause_ms(100);
	ck_assert_msg(got >= n, "schedule %s made %lld job(s), not %lld "
	              "within %d ms", name, got, n, timeout_ms);
}

/* Waits until name has a job for a tick after t (ms). */
static void
wait_tick_after(jd *d, const char *name, int64_t t, int timeout_ms)
{
	int64_t end = jd_mono_ms() + timeout_ms;

	while (tick_jobs_between(d, name, t, -1) == 0 && jd_mono_ms() < end)
		jd_pause_ms(100);
	ck_assert_msg(tick_jobs_between(d, name, t, -1) > 0, "schedule %s "
	              "made no job after %lld", name, (long long)t);
}

/* The ticks of name's jobs from the first at or after from to the last
 * one made so far, each once: no gap and no duplicate.  Returns how
 * many.  (Bounded by that last key: more come while it looks.) */
static long long
assert_no_gap(jd *d, const char *name, int64_t from)
{
	int64_t first, last = edge_tick(d, name, true);
	long long n, dup;
	char a[32], b[32], sql[320], *key;

	format_tick(from, a, sizeof(a));
	format_tick(last, b, sizeof(b));
	snprintf(sql, sizeof(sql), "SELECT min(idem_key) FROM jobs WHERE "
	         "idem_key LIKE 'schedule:%s:2%%' AND idem_key >= "
	         "'schedule:%s:%s'", name, name, a);
	key = jd_sql_text(d, sql);
	ck_assert_ptr_nonnull(key);
	first = tick_ms(key + strlen("schedule:") + strlen(name) + 1);
	free(key);
	n = sql_int(d, "SELECT count(*) FROM jobs WHERE idem_key LIKE "
	            "'schedule:%s:2%%' AND idem_key >= 'schedule:%s:%s' AND "
	            "idem_key <= 'schedule:%s:%s'", name, name, a, name, b);
	dup = sql_int(d, "SELECT count(*) - count(DISTINCT idem_key) FROM "
	              "jobs WHERE idem_key LIKE 'schedule:%s:2%%'", name);
	ck_assert_int_eq(dup, 0);
	ck_assert_msg((last - first) / 1000 + 1 == n, "schedule %s: %lld "
	              "job(s) for the ticks from %lld to %lld", name, n,
	              (long long)first, (long long)last);
	return n;
}

/* GET /schedules: the object of name (a copy the caller deletes). */
static cJSON *
get_schedule(jd *d, const char *name)
{
	struct jd_resp *r = jd_request(d, "GET", "/schedules", NULL, NULL);
	cJSON *arr, *it, *found = NULL;

	assert_status(r, 200);
	arr = cJSON_GetObjectItem(jd_json(r), "schedules");
	ck_assert(cJSON_IsArray(arr));
	cJSON_ArrayForEach(it, arr)
		if (strcmp(jd_str(it, "name"), name) == 0)
			found = cJSON_Duplicate(it, 1);
	jd_resp_free(r);
	return found;
}

START_TEST(test_every_second_one_job_per_tick)
{
	jd *d = launch(2, EVERY_SECOND("tick", "payload = {\"n\": 1}\n")
	               "[schedule.nightly]\ncron = 30 2 * * *\ntype = echo\n");
	cJSON *s, *s0;
	char *key, sql[256];

	wait_ticks(d, "tick", 4, 20000);
	ck_assert_int_ge(assert_no_gap(d, "tick", 0), 4);
	/* Made like POST /jobs: type, payload, run by the handler. */
	snprintf(sql, sizeof(sql), "SELECT payload FROM jobs WHERE idem_key "
	         "LIKE 'schedule:tick:2%%' ORDER BY idem_key LIMIT 1");
	key = jd_sql_text(d, sql);
	ck_assert_str_eq(key, "{\"n\":1}");
	free(key);
	ck_assert_int_eq(sql_int(d, "SELECT count(*) FROM jobs WHERE "
	                 "idem_key LIKE 'schedule:tick:%%' AND type <> 'noop'"),
	                 0);
	/* The job says which schedule made it; a client's job says null. */
	char path[80];
	snprintf(path, sizeof(path), "/jobs/%s", jd_str(s0 = get_schedule(d,
	         "tick"), "last_job_id"));
	struct jd_resp *jr = jd_request(d, "GET", path, NULL, NULL);
	assert_status(jr, 200);
	ck_assert_str_eq(jd_resp_str(jr, "schedule"), "tick");
	jd_resp_free(jr);
	cJSON_Delete(s0);
	char *own = submit_ok(d, "{\"type\": \"noop\"}");
	snprintf(path, sizeof(path), "/jobs/%s", own);
	jr = jd_request(d, "GET", path, NULL, NULL);
	ck_assert(cJSON_IsNull(cJSON_GetObjectItem(jd_json(jr), "schedule")));
	jd_resp_free(jr);
	free(own);

	s = get_schedule(d, "tick");
	ck_assert_ptr_nonnull(s);
	ck_assert(cJSON_IsNull(cJSON_GetObjectItem(s, "cron")));
	ck_assert_str_eq(jd_str(s, "every"), "1s");
	ck_assert_str_eq(jd_str(s, "type"), "noop");
	ck_assert(cJSON_IsFalse(cJSON_GetObjectItem(s, "paused")));
	int64_t last = jd_parse_time_ms(jd_str(s, "last_run_at"));
	int64_t next = jd_parse_time_ms(jd_str(s, "next_run_at"));
	ck_assert_int_gt(last, 0);
	ck_assert_int_eq(last % 1000, 0);
	ck_assert_int_gt(next, last);
	ck_assert_int_eq(next % 1000, 0);
	/* last_job_id is the job of that tick. */
	char when[32];
	format_tick(last, when, sizeof(when));
	snprintf(sql, sizeof(sql), "SELECT id FROM jobs WHERE idem_key = "
	         "'schedule:tick:%s'", when);
	key = jd_sql_text(d, sql);
	ck_assert_ptr_nonnull(key);
	ck_assert_str_eq(jd_str(s, "last_job_id"), key);
	free(key);
	cJSON_Delete(s);

	s = get_schedule(d, "nightly");
	ck_assert_ptr_nonnull(s);
	ck_assert_str_eq(jd_str(s, "cron"), "30 2 * * *");
	ck_assert(cJSON_IsNull(cJSON_GetObjectItem(s, "every")));
	ck_assert(cJSON_IsNull(cJSON_GetObjectItem(s, "last_run_at")));
	ck_assert(cJSON_IsNull(cJSON_GetObjectItem(s, "last_job_id")));
	next = jd_parse_time_ms(jd_str(s, "next_run_at"));
	ck_assert_int_gt(next, jd_now_ms());
	ck_assert_int_le(next, jd_now_ms() + 86400000LL);
	ck_assert_int_eq((next / 1000) % 86400, 2 * 3600 + 30 * 60);
	cJSON_Delete(s);
	jd_free(d);
}
END_TEST

/* Downtime of several ticks: no tick made twice, and the missed ticks
 * make one job (catch_up = one) or none (skip); the ticks after the
 * restart each make their job again. */
static void
downtime(const char *catch_up)
{
	char extra[160], when[32], needle[96], *log;
	int64_t stopped, t_begin, missed;
	jd *d;

	snprintf(extra, sizeof(extra), EVERY_SECOND("tick", "catch_up = %s\n"),
	         catch_up);
	d = launch(2, extra);
	wait_ticks(d, "tick", 2, 20000);
	ck_assert_int_eq(jd_stop(d, 10000), 0);
	stopped = edge_tick(d, "tick", true);
	/* Down for at least four ticks. */
	while (jd_now_ms() < stopped + 4500)
		jd_pause_ms(50);
	t_begin = jd_now_ms();
	ck_assert_int_eq(jd_start(d), 0);
	wait_tick_after(d, "tick", jd_now_ms() + 1000, 20000);
	/* The log names the last missed tick. */
	snprintf(needle, sizeof(needle), "catch_up = %s makes", catch_up);
	log = jd_wait_log(d, needle, 10000);
	ck_assert_msg(log != NULL, "no \"%s\" in the log", needle);
	char *at = strstr(log, "ticks missed up to ");
	ck_assert_ptr_nonnull(at);
	snprintf(when, sizeof(when), "%.20s", at + strlen("ticks missed up to "));
	missed = tick_ms(when);
	free(log);
	ck_assert_msg(missed > stopped + 3000 && missed >= t_begin - 1000,
	              "last missed tick %s", when);
	/* Missed ticks before the last one: never made. */
	ck_assert_int_eq(tick_jobs_between(d, "tick", stopped, missed), 0);
	ck_assert_int_eq(tick_jobs_between(d, "tick", missed - 1000,
	                 missed + 1000),
	                 strcmp(catch_up, "one") == 0 ? 1 : 0);
	/* After it, every tick once. */
	assert_no_gap(d, "tick", missed + 1000);
	ck_assert_int_eq(sql_int(d, "SELECT count(DISTINCT idem_key) - "
	                 "count(*) FROM jobs"), 0);
	jd_free(d);
}

START_TEST(test_restart_catch_up_one)
{
	downtime("one");
}
END_TEST

START_TEST(test_restart_catch_up_skip)
{
	downtime("skip");
}
END_TEST

/* A restart at once (no tick missed for long): the ticks go on with no
 * gap beyond the stop and none twice. */
START_TEST(test_restart_no_tick_twice)
{
	jd *d = launch(2, EVERY_SECOND("tick", ""));
	int64_t before;

	wait_ticks(d, "tick", 2, 20000);
	ck_assert_int_eq(jd_stop(d, 10000), 0);
	before = edge_tick(d, "tick", true);
	ck_assert_int_eq(jd_start(d), 0);
	wait_tick_after(d, "tick", jd_now_ms() + 1000, 20000);
	ck_assert_int_eq(sql_int(d, "SELECT count(DISTINCT idem_key) - "
	                 "count(*) FROM jobs"), 0);
	/* Ticks before the stop stayed as they were. */
	ck_assert_int_eq(tick_jobs_between(d, "tick", -1, before + 1000),
	                 (before - edge_tick(d, "tick", false)) / 1000 + 1);
	jd_free(d);
}
END_TEST

START_TEST(test_pause_persists_and_resume)
{
	jd *d = launch(2, EVERY_SECOND("tick", "") EVERY_SECOND("clock", ""));
	struct jd_resp *r;
	long long paused_jobs, clock0;
	int64_t t_resume;
	cJSON *s;

	wait_ticks(d, "tick", 1, 20000);
	r = jd_request(d, "POST", "/schedules/tick/pause", NULL, NULL);
	assert_status(r, 200);
	ck_assert_str_eq(jd_resp_str(r, "name"), "tick");
	ck_assert(cJSON_IsTrue(cJSON_GetObjectItem(jd_json(r), "paused")));
	ck_assert(cJSON_IsNull(cJSON_GetObjectItem(jd_json(r),
	                                           "next_run_at")));
	jd_resp_free(r);
	paused_jobs = tick_jobs(d, "tick");

	ck_assert_int_eq(jd_stop(d, 10000), 0);
	ck_assert_int_eq(jd_start(d), 0);
	s = get_schedule(d, "tick");
	ck_assert(cJSON_IsTrue(cJSON_GetObjectItem(s, "paused")));
	cJSON_Delete(s);
	/* Three ticks of the other schedule: none of the paused one. */
	clock0 = tick_jobs(d, "clock");
	wait_ticks(d, "clock", clock0 + 3, 20000);
	ck_assert_int_eq(tick_jobs(d, "tick"), paused_jobs);

	t_resume = jd_now_ms();
	r = jd_request(d, "POST", "/schedules/tick/resume", NULL, NULL);
	assert_status(r, 200);
	ck_assert(cJSON_IsFalse(cJSON_GetObjectItem(jd_json(r), "paused")));
	ck_assert_int_gt(jd_parse_time_ms(jd_resp_str(r, "next_run_at")),
	                 t_resume);
	jd_resp_free(r);
	wait_ticks(d, "tick", paused_jobs + 1, 20000);
	/* The ticks of the pause were not caught up. */
	ck_assert_int_eq(tick_jobs_between(d, "tick",
	                 edge_tick(d, "tick", false) - 1, t_resume),
	                 paused_jobs);
	/* Pausing twice is fine; an unknown schedule is 404. */
	r = jd_request(d, "POST", "/schedules/tick/pause", NULL, NULL);
	assert_status(r, 200);
	jd_resp_free(r);
	r = jd_request(d, "POST", "/schedules/tick/pause", NULL, NULL);
	assert_status(r, 200);
	jd_resp_free(r);
	r = jd_request(d, "POST", "/schedules/nope/resume", NULL, NULL);
	assert_status(r, 404);
	jd_resp_free(r);
	jd_free(d);
}
END_TEST

START_TEST(test_trigger)
{
	jd *d = launch(2, "[schedule.nightly]\ncron = @daily\ntype = echo\n"
	               "payload = {\"report\": \"daily\"}\npriority = 7\n");
	struct jd_resp *r, *j;
	char sql[160], *key;
	cJSON *s;

	r = jd_request(d, "POST", "/schedules/nightly/trigger", NULL, NULL);
	assert_status(r, 202);
	const char *id = jd_resp_str(r, "id");
	ck_assert_ptr_nonnull(id);
	ck_assert_ptr_nonnull(jd_header(r, "Location"));
	j = wait_status(d, id, "succeeded", 10000);
	ck_assert_str_eq(jd_resp_str(j, "type"), "echo");
	ck_assert_str_eq(jd_resp_str(j, "schedule"), "nightly");
	ck_assert_int_eq((int)jd_num(jd_json(j), "priority", 0), 7);
	jd_resp_free(j);
	snprintf(sql, sizeof(sql), "SELECT idem_key FROM jobs WHERE id = '%s'",
	         id);
	key = jd_sql_text(d, sql);
	ck_assert_msg(key != NULL && strncmp(key, "schedule:nightly:manual:",
	              24) == 0, "key %s", key ? key : "(none)");
	free(key);
	s = get_schedule(d, "nightly");
	ck_assert_str_eq(jd_str(s, "last_job_id"), id);
	ck_assert_int_gt(jd_parse_time_ms(jd_str(s, "last_run_at")), 0);
	cJSON_Delete(s);
	/* Each trigger is a job of its own. */
	j = jd_request(d, "POST", "/schedules/nightly/trigger", NULL, NULL);
	assert_status(j, 202);
	ck_assert_str_ne(jd_resp_str(j, "id"), id);
	jd_resp_free(j);
	jd_resp_free(r);

	static const struct { const char *method, *path; long status; }
	cases[] = {
		{"POST", "/schedules/nope/trigger", 404},
		{"POST", "/schedules/a%20b/trigger", 404},
		{"POST", "/schedules//trigger", 404},
		{"POST", "/schedules/nightly/explode", 404},
		{"POST", "/schedules/nightly", 404},
		{"GET", "/schedules/nightly/trigger", 405},
		{"DELETE", "/schedules/nightly/pause", 405},
		{"POST", "/schedules", 405},
		{"DELETE", "/schedules", 405},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		r = jd_request(d, cases[i].method, cases[i].path, NULL, NULL);
		ck_assert_msg(r->status == cases[i].status, "%s %s: %ld, not "
		              "%ld", cases[i].method, cases[i].path, r->status,
		              cases[i].status);
		jd_resp_free(r);
	}
	jd_free(d);
}
END_TEST

/* Write endpoints need the token like the rest of the API. */
START_TEST(test_auth)
{
	char dir[] = "/tmp/jobd-sched-XXXXXX", tokens[128], extra[256];
	struct jd_resp *r;
	FILE *f;
	jd *d;

	ck_assert_ptr_nonnull(mkdtemp(dir));
	snprintf(tokens, sizeof(tokens), "%s/tokens", dir);
	f = fopen(tokens, "w");
	ck_assert_ptr_nonnull(f);
	fputs("ci:0123456789abcdef0123456789abcdef\n", f);
	fclose(f);
	ck_assert_int_eq(chmod(tokens, 0600), 0);
	snprintf(extra, sizeof(extra), "[auth]\ntokens_file = %s\n"
	         "[schedule.s]\ncron = @hourly\ntype = noop\n", tokens);
	d = launch(2, extra);
	r = jd_request(d, "POST", "/schedules/s/trigger", NULL, NULL);
	assert_status(r, 401);
	jd_resp_free(r);
	r = jd_request(d, "GET", "/schedules", NULL, NULL);
	assert_status(r, 401);
	jd_resp_free(r);
	r = jd_request(d, "POST", "/schedules/s/pause", (const char *const[]){
	               "Authorization: Bearer 0123456789abcdef0123456789abcdef",
	               NULL}, NULL);
	assert_status(r, 200);
	jd_resp_free(r);
	jd_free(d);
	unlink(tokens);
	rmdir(dir);
}
END_TEST

/* A client cannot take a tick's key (it would replace or block the
 * tick's job): the "schedule:" prefix is reserved. */
START_TEST(test_reserved_key_prefix)
{
	jd *d = launch(2, EVERY_SECOND("tick", ""));
	char hdr[128], when[32];
	struct jd_resp *r;
	int64_t t = (jd_now_ms() / 1000 + 3) * 1000;

	format_tick(t, when, sizeof(when));
	snprintf(hdr, sizeof(hdr), "Idempotency-Key: schedule:tick:%s", when);
	r = jd_request(d, "POST", "/jobs", (const char *const[]){
	               "Content-Type: application/json", hdr, NULL},
	               "{\"type\": \"echo\", \"payload\": \"spoof\"}");
	assert_status(r, 400);
	ck_assert_ptr_nonnull(strstr(r->body, "schedule:"));
	jd_resp_free(r);
	wait_tick_after(d, "tick", t, 20000);
	ck_assert_int_eq(sql_int(d, "SELECT count(*) FROM jobs WHERE type = "
	                 "'echo'"), 0);
	/* Other keys, and the prefix in another case, are the client's. */
	r = jd_request(d, "POST", "/jobs", (const char *const[]){
	               "Content-Type: application/json",
	               "Idempotency-Key: Schedule:tick:x", NULL},
	               "{\"type\": \"echo\"}");
	assert_status(r, 202);
	jd_resp_free(r);
	jd_free(d);
}
END_TEST

/* The line of the config file that holds needle (1-based), or 0. */
static int
line_of(const char *path, const char *needle)
{
	char *text = jd_read_file(path, NULL), *at;
	int line = 1;

	ck_assert_ptr_nonnull(text);
	at = strstr(text, needle);
	if (at == NULL) {
		free(text);
		return 0;
	}
	for (char *p = text; p < at; p++)
		line += *p == '\n';
	free(text);
	return line;
}

START_TEST(test_bad_config_lines)
{
	struct jd_opts o = {.extra =
		"[schedule.bad]\ncron = 61 * * * *\ntype = noop\n"
		"[schedule.both]\ncron = @hourly\nevery = 1m\ntype = noop\n"
		"[schedule.neither]\ntype = noop\n"
		"[schedule.frac]\nevery = 1500ms\ntype = noop\n"
		"[schedule.notype]\nevery = 1m\ntype = nosuch\n"
		"[schedule.json]\nevery = 1m\ntype = noop\npayload = {\"a\":\n"
		"[schedule.tz]\nevery = 1m\ntype = noop\ntimezone = Mars\n"
		"[schedule.cu]\nevery = 1m\ntype = noop\ncatch_up = all\n"
		"[schedule.reboot]\ncron = @reboot\ntype = noop\n"
		"[schedule.key]\nevery = 1m\ntype = noop\ncolour = red\n"
		"[schedule.b@d]\nevery = 1m\ntype = noop\n"};
	jd *d = jd_new(&o);
	char cmd[900], out[8192], want[700];
	const char *bin = getenv("JOBD_BIN") ? getenv("JOBD_BIN")
	                                     : "build/jobd";
	size_t n;
	FILE *p;

	ck_assert_ptr_nonnull(d);
	snprintf(cmd, sizeof(cmd), "%s --check-config -c %s 2>&1", bin,
	         d->conf_path);
	p = popen(cmd, "r");
	ck_assert_ptr_nonnull(p);
	n = fread(out, 1, sizeof(out) - 1, p);
	out[n] = '\0';
	ck_assert_int_ne(pclose(p), 0);
	static const struct { const char *at, *msg; } errs[] = {
		{"cron = 61", "[schedule.bad] cron: minute: 61 is out of range "
		 "0-59"},
		{"every = 1m\ntype = noop\n[schedule.neither]",
		 "[schedule.both] every: \"cron\" and \"every\" exclude each "
		 "other"},
		{"[schedule.neither]", "[schedule.neither] cron: a schedule "
		 "needs \"cron\" or \"every\""},
		{"every = 1500ms", "[schedule.frac] every: must be whole "
		 "seconds"},
		{"type = nosuch", "[schedule.notype] type: no [handler.nosuch] "
		 "is configured"},
		{"payload = {\"a\":", "[schedule.json] payload: not JSON"},
		{"timezone = Mars", "[schedule.tz] timezone: \"Mars\" is not "
		 "one of: UTC, local"},
		{"catch_up = all", "[schedule.cu] catch_up: \"all\" is not one "
		 "of: one, skip"},
		{"cron = @reboot", "[schedule.reboot] cron: @reboot"},
		{"colour = red", "[schedule.key] colour: unknown key"},
		{"[schedule.b@d]", "[schedule.b@d] NAME: schedule name must "
		 "match"},
	};
	for (size_t i = 0; i < sizeof(errs) / sizeof(errs[0]); i++) {
		int line = line_of(d->conf_path, errs[i].at);
		ck_assert_int_gt(line, 0);
		snprintf(want, sizeof(want), "%s:%d: %s", d->conf_path, line,
		         errs[i].msg);
		ck_assert_msg(strstr(out, want) != NULL, "no \"%s\" in:\n%s",
		              want, out);
	}
	jd_free(d);
}
END_TEST

/* SIGHUP: a schedule added starts ticking, one removed disappears. */
START_TEST(test_reload_adds_and_removes)
{
	jd *d = launch(2, "[schedule.old]\ncron = @hourly\ntype = noop\n");
	char *text = jd_read_file(d->conf_path, NULL), *cut;
	FILE *f;
	cJSON *s;

	ck_assert_ptr_nonnull(text);
	cut = strstr(text, "[schedule.old]");
	ck_assert_ptr_nonnull(cut);
	*cut = '\0';
	f = fopen(d->conf_path, "w");
	ck_assert_ptr_nonnull(f);
	fprintf(f, "%s%s", text, EVERY_SECOND("added", ""));
	fclose(f);
	free(text);
	ck_assert_int_eq(kill(d->pid, SIGHUP), 0);
	wait_ticks(d, "added", 2, 20000);
	ck_assert_ptr_null(get_schedule(d, "old"));
	s = get_schedule(d, "added");
	ck_assert_ptr_nonnull(s);
	cJSON_Delete(s);
	jd_free(d);
}
END_TEST

/* PostgreSQL: two daemons on one store, a schedule ticking every second
 * for 10 s: exactly one job per tick (only the leader runs it; the
 * key would make a doubled tick one job anyway). */
START_TEST(test_two_nodes_one_job_per_tick)
{
	if (!jd_store_is_pg())
		return;
	const char *extra = EVERY_SECOND("tick", "")
	    EVERY_SECOND("clock", "") "[workers]\nshutdown_grace = 1s\n";
	char ea[256], eb[256];
	snprintf(ea, sizeof(ea), "[store]\nnode = alpha\n%s", extra);
	snprintf(eb, sizeof(eb), "[store]\nnode = beta\n%s", extra);
	struct jd_opts oa = {.threads = 2, .extra = ea};
	jd *a = jd_launch(&oa);
	ck_assert_ptr_nonnull(a);
	struct jd_opts ob = {.threads = 2, .extra = eb, .share_store = a};
	jd *b = jd_launch(&ob);
	ck_assert_ptr_nonnull(b);
	int64_t from = jd_now_ms();
	long long n0 = tick_jobs(a, "tick");

	wait_ticks(a, "tick", n0 + 11, 30000);
	ck_assert_int_ge(assert_no_gap(a, "tick", from - 1000), 10);
	/* Both nodes answer GET /schedules from the store. */
	cJSON *sa = get_schedule(a, "tick"), *sb = get_schedule(b, "tick");
	ck_assert_ptr_nonnull(sa);
	ck_assert_ptr_nonnull(sb);
	ck_assert_ptr_nonnull(jd_str(sb, "last_job_id"));
	cJSON_Delete(sa);
	cJSON_Delete(sb);
	/* A pause on the follower stops the leader's ticks. */
	struct jd_resp *r = jd_request(b, "POST", "/schedules/tick/pause",
	                               NULL, NULL);
	assert_status(r, 200);
	jd_resp_free(r);
	/* The store decides: no tick job commits after the pause did,
	 * while the other schedule goes on. */
	long long paused = tick_jobs(a, "tick");
	wait_ticks(a, "clock", tick_jobs(a, "clock") + 3, 20000);
	ck_assert_int_eq(tick_jobs(a, "tick"), paused);
	jd_free(b);
	jd_free(a);
}
END_TEST

/* PostgreSQL: the leader stops; the other node takes over once the
 * leader's lease has passed.  No tick twice; the ticks that fell due
 * while no node led make one job (catch_up = one); then every tick. */
START_TEST(test_two_nodes_leader_change)
{
	if (!jd_store_is_pg())
		return;
	const char *extra = EVERY_SECOND("tick", "")
	    "[workers]\nshutdown_grace = 1s\n";
	char ea[256], eb[256], when[32], *log, *at;
	snprintf(ea, sizeof(ea), "[store]\nnode = alpha\nlease = 2s\n%s",
	         extra);
	snprintf(eb, sizeof(eb), "[store]\nnode = beta\nlease = 2s\n%s",
	         extra);
	struct jd_opts oa = {.threads = 2, .extra = ea};
	jd *a = jd_launch(&oa);
	ck_assert_ptr_nonnull(a);
	struct jd_opts ob = {.threads = 2, .extra = eb, .share_store = a};
	jd *b = jd_launch(&ob);
	ck_assert_ptr_nonnull(b);
	int64_t last_a, missed;

	wait_ticks(a, "tick", tick_jobs(a, "tick") + 3, 20000);
	/* alpha, the older, leads: it stops. */
	ck_assert_int_eq(jd_stop(a, 10000), 0);
	last_a = edge_tick(b, "tick", true);
	wait_tick_after(b, "tick", jd_now_ms() + 2000, 30000);
	log = jd_wait_log(b, "catch_up = one makes", 10000);
	ck_assert_msg(log != NULL, "beta did not catch up");
	at = strstr(log, "ticks missed up to ");
	ck_assert_ptr_nonnull(at);
	snprintf(when, sizeof(when), "%.20s", at + strlen("ticks missed up to "));
	free(log);
	missed = tick_ms(when);
	ck_assert_int_gt(missed, last_a);
	/* Between alpha's last tick and the missed one: nothing; the
	 * missed one: one job; from there on: every tick once. */
	ck_assert_int_eq(tick_jobs_between(b, "tick", last_a, missed), 0);
	ck_assert_int_eq(tick_jobs_between(b, "tick", missed - 1000,
	                                   missed + 1000), 1);
	assert_no_gap(b, "tick", missed);
	/* alpha's ticks, before: every one once. */
	ck_assert_int_eq(tick_jobs_between(b, "tick", -1, last_a + 1000),
	                 (last_a - edge_tick(b, "tick", false)) / 1000 + 1);
	jd_free(b);
	jd_free(a);
}
END_TEST

static Suite *
schedules_suite(void)
{
	Suite *s = suite_create("schedules");
	TCase *tc = tcase_create("schedules");

	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, test_every_second_one_job_per_tick);
	tcase_add_test(tc, test_restart_catch_up_one);
	tcase_add_test(tc, test_restart_catch_up_skip);
	tcase_add_test(tc, test_restart_no_tick_twice);
	tcase_add_test(tc, test_pause_persists_and_resume);
	tcase_add_test(tc, test_trigger);
	tcase_add_test(tc, test_auth);
	tcase_add_test(tc, test_reserved_key_prefix);
	tcase_add_test(tc, test_bad_config_lines);
	tcase_add_test(tc, test_reload_adds_and_removes);
	tcase_add_test(tc, test_two_nodes_one_job_per_tick);
	tcase_add_test(tc, test_two_nodes_leader_change);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	return run_suite(schedules_suite());
}
