/*
 * test_progress.c - progress (DESIGN §4, issue 16 item 2): an exec
 * handler's JSON lines on fd 3 (JOBD_PROGRESS_FD), the last acceptable
 * one winning and every other line ignored (too long, not an object, a
 * NUL, not UTF-8, not JSON, too deep); "progress" in GET, in list items
 * and in the final state; the store within a second and at the end; the
 * builtin sleep's percentage; a new attempt starting with none (retry,
 * restart); a cancel keeping the last; a flood of reports; a second node
 * reading it from the store (PostgreSQL).
 *
 * Runs on SQLite and, under tests/pg/with_server.sh, on PostgreSQL.  The
 * commands are tests/integration/scripts/progress.sh, whose payload names
 * a scenario; where a scenario must hold the job running, the script
 * blocks reading a FIFO until the test opens and closes its write end.
 * Nothing waits on a fixed delay: the tests poll GET and the store with
 * generous limits.
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "checks.h"
#include "harness.h"

#define WAIT_MS 20000

static char scripts[PATH_MAX]; /* absolute tests/integration/scripts */

static void
setup(void)
{
	char cwd[PATH_MAX - 32], probe[PATH_MAX + 32];

	/* Orphans of a killed daemon come back to this process (reaped). */
	ck_assert(prctl(PR_SET_CHILD_SUBREAPER, 1) == 0);
	ck_assert_msg(getcwd(cwd, sizeof(cwd)) != NULL, "getcwd: %s",
	              strerror(errno));
	snprintf(scripts, sizeof(scripts), "%s/tests/integration/scripts",
	         cwd);
	snprintf(probe, sizeof(probe), "%s/progress.sh", scripts);
	ck_assert_msg(access(probe, X_OK) == 0, "%s is not executable (%s); "
	              "run the suite from the repository root", probe,
	              strerror(errno));
}

/* ---- helpers ---- */

/* A daemon (not started) whose handler "prog" runs progress.sh FIFO. */
static jd *
new_prog(const char *more, char *fifo, size_t fifolen, const jd *share)
{
	struct jd_opts o = {.threads = 2, .share_store = share};
	char *extra = NULL;
	jd *d;

	jd_make_fifo(fifo, fifolen, "progress");
	ck_assert(asprintf(&extra, "[workers]\nshutdown_grace = 200ms\n"
	                   "[handler.prog]\ncommand = %s/progress.sh '%s'\n"
	                   "max_attempts = 1\nbackoff_base = 10ms\n"
	                   "backoff_max = 10ms\n%s", scripts, fifo,
	                   more ? more : "") > 0);
	o.extra = extra;
	d = jd_new(&o);
	free(extra);
	ck_assert_ptr_nonnull(d);
	return d;
}

static jd *
launch_prog(const char *more, char *fifo, size_t fifolen)
{
	jd *d = new_prog(more, fifo, fifolen, NULL);

	ck_assert_int_eq(jd_start(d), 0);
	return d;
}

static char *
submit_scenario(jd *d, const char *name)
{
	char body[128];

	snprintf(body, sizeof(body), "{\"type\": \"prog\", \"payload\": "
	         "\"%s\"}", name);
	return submit_ok(d, body);
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

/* A JSON value as compact text (caller frees); "(absent)" when v is
 * NULL. */
static char *
compact(const cJSON *v)
{
	return v != NULL ? cJSON_PrintUnformatted(v) : strdup("(absent)");
}

/* The job's "progress" as GET shows it, compact (caller frees); its
 * status and attempt into st and attempt when not NULL. */
static char *
progress_of(jd *d, const char *id, char *st, size_t stlen, int *attempt)
{
	struct jd_resp *r = get_job(d, id);
	char *text = compact(cJSON_GetObjectItemCaseSensitive(jd_json(r),
	                                                      "progress"));

	if (st != NULL)
		snprintf(st, stlen, "%s", jd_resp_str(r, "status"));
	if (attempt != NULL)
		*attempt = (int)jd_num(jd_json(r), "attempt", -1);
	jd_resp_free(r);
	return text;
}

/* Polls GET until the job's progress is want (compact JSON) while its
 * status is status (NULL: any).  Fails after WAIT_MS. */
static void
wait_progress(jd *d, const char *id, const char *want, const char *status)
{
	int64_t until = jd_mono_ms() + WAIT_MS;
	char st[32], *got = NULL;

	for (;;) {
		free(got);
		got = progress_of(d, id, st, sizeof(st), NULL);
		if (strcmp(got, want) == 0 &&
		    (status == NULL || strcmp(st, status) == 0))
			break;
		ck_assert_msg(jd_mono_ms() < until, "job %s: progress %.300s "
		              "(%s), expected %s (%s)", id, got, st, want,
		              status ? status : "any status");
		jd_pause_ms(20);
	}
	free(got);
}

/* The job's progress column (caller frees; NULL when NULL). */
static char *
stored_progress(jd *d, const char *id)
{
	char sql[160];

	snprintf(sql, sizeof(sql), "SELECT progress FROM jobs WHERE id = '%s'",
	         id);
	return jd_sql_text(d, sql);
}

/* Polls the store until the job's progress column is want (NULL: NULL). */
static void
wait_stored(jd *d, const char *id, const char *want)
{
	int64_t until = jd_mono_ms() + WAIT_MS;
	char *got = NULL;

	for (;;) {
		free(got);
		got = stored_progress(d, id);
		if (want == NULL ? got == NULL
		                 : got != NULL && strcmp(got, want) == 0)
			break;
		ck_assert_msg(jd_mono_ms() < until, "job %s: stored progress "
		              "%.300s, expected %s", id, got ? got : "NULL",
		              want ? want : "NULL");
		jd_pause_ms(50);
	}
	free(got);
}

/* The final state's progress, which must be want (GET and the store). */
static void
assert_final(jd *d, const char *id, const char *status, const char *want)
{
	struct jd_resp *r = wait_status(d, id, status, WAIT_MS);
	char *got = compact(cJSON_GetObjectItemCaseSensitive(jd_json(r),
	                                                     "progress"));
	char *raw = NULL;

	/* As sent, byte for byte (cJSON here would cut at a \u0000). */
	ck_assert(asprintf(&raw, "\"progress\":%s", want) > 0);
	ck_assert_msg(strstr(r->body, raw) != NULL, "job %s ended with "
	              "progress %.300s, expected %.300s", id, got, want);
	free(raw);
	free(got);
	jd_resp_free(r);
	/* Written with the completion: the store has it at once. */
	got = stored_progress(d, id);
	ck_assert_msg(strcmp(want, "null") == 0 ? got == NULL
	              : got != NULL && strcmp(got, want) == 0,
	              "job %s: stored %.300s, expected %.300s", id,
	              got ? got : "NULL", want);
	free(got);
}

/* The progress of job id in GET /jobs?status=running (compact; caller
 * frees), or NULL when the job is not on that page. */
static char *
listed_progress(jd *d, const char *id)
{
	struct jd_resp *r = jd_request(d, "GET", "/jobs?status=running",
	                               NULL, NULL);
	const cJSON *item;
	char *text = NULL;

	assert_status(r, 200);
	cJSON_ArrayForEach(item, cJSON_GetObjectItem(jd_json(r), "jobs"))
		if (strcmp(jd_str(item, "id"), id) == 0)
			text = compact(cJSON_GetObjectItemCaseSensitive(item,
			                                               "progress"));
	jd_resp_free(r);
	return text;
}

/* ---- exec: fd 3 ---- */

/*
 * The lines of a running command: the last acceptable one is shown at
 * once by GET and by the list, reaches the store, and the junk around it
 * (too long, not an object, a NUL, not UTF-8, not JSON, too deep, empty)
 * changes nothing, up to the final state.
 */
START_TEST(test_exec_lines)
{
	char fifo[300];
	jd *d = launch_prog(NULL, fifo, sizeof(fifo));
	char *id = submit_scenario(d, "lines"), *got, path[128];
	const char *forty = "{\"percent\":40,\"message\":\"resizing\"}";
	struct jd_resp *r;

	wait_progress(d, id, forty, "running");
	got = listed_progress(d, id);
	ck_assert_msg(got != NULL && strcmp(got, forty) == 0, "listed: %s",
	              got ? got : "(not listed)");
	free(got);
	/* Reported twice within a second (10, then 40): the store has the
	 * second a second after the first. */
	wait_stored(d, id, forty);

	jd_open_gate(fifo);
	/* A long poll's answer carries it too. */
	snprintf(path, sizeof(path), "/jobs/%s?wait=20", id);
	r = jd_request(d, "GET", path, NULL, NULL);
	assert_status(r, 200);
	ck_assert_msg(strstr(r->body, "\"progress\":{\"percent\":60}") !=
	              NULL, "%s", r->body);
	jd_resp_free(r);
	assert_final(d, id, "succeeded", "{\"percent\":60}");
	free(id);
	jd_free(d);
}
END_TEST

/*
 * Line edges: a 200 KB line is skipped up to its newline and the next
 * line counts; 4096 bytes (CRLF ended too) is a report, 4097 is not; a
 * last line without a newline counts when it is a report.
 */
START_TEST(test_exec_line_edges)
{
	char fifo[300], want[4200];
	jd *d = launch_prog(NULL, fifo, sizeof(fifo));
	char *resync = submit_scenario(d, "resync");
	char *boundary = submit_scenario(d, "boundary");
	char *eof = submit_scenario(d, "eof");
	char *quotes = submit_scenario(d, "quotes");

	assert_final(d, resync, "succeeded", "{\"percent\":70}");
	snprintf(want, sizeof(want), "{\"q\":\"%0*d\"}", 4088, 0);
	memset(want + 6, 'x', 4088);
	assert_final(d, boundary, "succeeded", want);
	assert_final(d, eof, "succeeded", "{\"percent\":80}");
	assert_final(d, quotes, "succeeded", "{\"m\":\"q\\\"b\\\\s {a,b} "
	             "\\u0000 \xc3\xa9 NULL\",\"n\":null}");
	free(quotes);
	free(resync);
	free(boundary);
	free(eof);
	jd_free(d);
}
END_TEST

/*
 * JOBD_PROGRESS_FD=3 and the child's fds: 0-3, all pipes to jobd (and
 * the script file dash opens itself, on 10 or above).
 */
START_TEST(test_exec_fd3)
{
	char fifo[300], path[320], *list, *line, *save = NULL;
	jd *d = launch_prog(NULL, fifo, sizeof(fifo));
	char *id = submit_scenario(d, "fd");
	bool have[4] = {false, false, false, false};

	assert_final(d, id, "succeeded", "{\"env\":\"3\"}");
	snprintf(path, sizeof(path), "%s.fds", fifo);
	list = jd_read_file(path, NULL);
	ck_assert_msg(list != NULL, "no %s", path);
	for (line = strtok_r(list, "\n", &save); line != NULL;
	     line = strtok_r(NULL, "\n", &save)) {
		char *arrow = strstr(line, " -> "), *num;
		if (line[0] != 'l' || arrow == NULL)
			continue; /* "total 0" */
		*arrow = '\0';
		num = strrchr(line, ' ');
		ck_assert_ptr_nonnull(num);
		int fd = atoi(num + 1);
		if (fd >= 0 && fd <= 3) {
			ck_assert_msg(strncmp(arrow + 4, "pipe:", 5) == 0,
			              "fd %d is %s, not a pipe", fd, arrow + 4);
			have[fd] = true;
		} else {
			ck_assert_msg(fd >= 10 && strstr(arrow + 4,
			              "progress.sh") != NULL, "fd %d (%s) was "
			              "open when jobd ran the command", fd,
			              arrow + 4);
		}
	}
	ck_assert_msg(have[0] && have[1] && have[2] && have[3],
	              "fds 0-3 not all open");
	free(list);
	free(id);
	jd_free(d);
}
END_TEST

/*
 * Thousands of reports as fast as a shell writes them: the last one
 * wins, the daemon keeps up, and answers GET meanwhile.
 */
START_TEST(test_exec_flood)
{
	char fifo[300];
	jd *d = launch_prog(NULL, fifo, sizeof(fifo));
	char *id = submit_scenario(d, "flood");

	free(progress_of(d, id, NULL, 0, NULL));
	assert_final(d, id, "succeeded", "{\"i\":\"last\"}");
	free(id);
	jd_free(d);
}
END_TEST

/* ---- attempts ---- */

/*
 * A new attempt starts with no progress (the failed attempt's report is
 * not shown as the new one's); a cancel keeps the last report; a retry
 * clears it.
 */
START_TEST(test_attempts)
{
	char fifo[300], st[32], path[128], *got;
	jd *d = launch_prog(NULL, fifo, sizeof(fifo));
	char *id = submit_ok(d, "{\"type\": \"prog\", \"payload\": \"retry\","
	                        " \"max_attempts\": 2}");
	int64_t until = jd_mono_ms() + WAIT_MS;
	int attempt = 0;
	struct jd_resp *r;

	/* Attempt 2 waits at its gate before it reports anything. */
	for (;;) {
		got = progress_of(d, id, st, sizeof(st), &attempt);
		if (attempt == 2 && strcmp(st, "running") == 0)
			break;
		ck_assert_msg(jd_mono_ms() < until, "attempt %d, %s", attempt,
		              st);
		free(got);
		jd_pause_ms(20);
	}
	ck_assert_msg(strcmp(got, "null") == 0, "attempt 2 shows %s", got);
	free(got);
	got = stored_progress(d, id);
	ck_assert_msg(got == NULL, "attempt 2 has %s stored", got);
	jd_open_gate(fifo);
	assert_final(d, id, "succeeded", "{\"attempt\":2}");
	free(id);

	/* Cancelled while running: the last report stays. */
	id = submit_scenario(d, "hold");
	wait_progress(d, id, "{\"percent\":5}", "running");
	snprintf(path, sizeof(path), "/jobs/%s", id);
	r = jd_request(d, "DELETE", path, NULL, NULL);
	assert_status(r, 202);
	jd_resp_free(r);
	assert_final(d, id, "cancelled", "{\"percent\":5}");

	/* Retried (its type paused, so that it stays queued): none. */
	r = jd_request(d, "POST", "/types/prog/pause", NULL, "");
	assert_status(r, 200);
	jd_resp_free(r);
	snprintf(path, sizeof(path), "/jobs/%s/retry", id);
	r = jd_request(d, "POST", path, NULL, "");
	assert_status(r, 200);
	jd_resp_free(r);
	got = progress_of(d, id, st, sizeof(st), NULL);
	ck_assert_str_eq(st, "queued");
	ck_assert_str_eq(got, "null");
	free(got);
	got = stored_progress(d, id);
	ck_assert_msg(got == NULL, "a retried job keeps %s", got);
	free(id);
	ck_assert_int_eq(jd_stop(d, 20000), 0);
	jd_free(d);
}
END_TEST

/*
 * kill -9 while a job runs with its progress stored: after the restart
 * its new attempt starts with none and reports afresh.
 */
START_TEST(test_restart)
{
	char fifo[300], st[32], *got;
	jd *d = launch_prog(NULL, fifo, sizeof(fifo));
	char *id = submit_ok(d, "{\"type\": \"prog\", \"payload\": \"lines\","
	                        " \"max_attempts\": 2}");
	const char *forty = "{\"percent\":40,\"message\":\"resizing\"}";
	int attempt = 0;

	wait_progress(d, id, forty, "running");
	wait_stored(d, id, forty);
	jd_kill9(d);
	ck_assert_int_eq(jd_start(d), 0);
	/* Requeued by recovery, claimed again: attempt 2 reports again
	 * (10, then 40) and waits at the gate. */
	wait_progress(d, id, forty, "running");
	got = progress_of(d, id, st, sizeof(st), &attempt);
	ck_assert_int_eq(attempt, 2);
	free(got);
	jd_open_gate(fifo);
	assert_final(d, id, "succeeded", "{\"percent\":60}");
	free(id);
	jd_free(d);
}
END_TEST

/*
 * Two nodes on one PostgreSQL store: the node that does not run the job
 * shows its progress from the store (a second old at most), and its
 * final one.
 */
START_TEST(test_two_nodes)
{
	char fifo[300];
	jd *a, *b;
	char *id;
	const char *forty = "{\"percent\":40,\"message\":\"resizing\"}";

	if (!jd_store_is_pg()) {
		printf("test_two_nodes: PostgreSQL only; skipped\n");
		return;
	}
	a = launch_prog("[store]\nnode = alpha\n", fifo, sizeof(fifo));
	/* b has no handler "prog": it never runs the job. */
	struct jd_opts o = {.threads = 1, .share_store = a,
	                    .extra = "[store]\nnode = bravo\n"};
	b = jd_launch(&o);
	ck_assert_ptr_nonnull(b);
	id = submit_scenario(a, "lines");
	wait_progress(a, id, forty, "running");
	wait_progress(b, id, forty, "running");
	jd_open_gate(fifo);
	wait_status(a, id, "succeeded", WAIT_MS);
	wait_progress(b, id, "{\"percent\":60}", "succeeded");
	free(id);
	jd_free(b);
	jd_free(a);
}
END_TEST

/* ---- builtin sleep ---- */

/* sleep reports {"percent": N} as it sleeps: seen moving, 100 at the end. */
START_TEST(test_builtin_sleep)
{
	jd *d = launch(2, NULL);
	char *id = submit_ok(d, "{\"type\": \"sleep\", \"payload\": "
	                        "{\"seconds\": 3}}");
	int64_t until = jd_mono_ms() + WAIT_MS;
	double first = -1, later = -1;

	while (later <= first || first <= 0) {
		struct jd_resp *r = get_job(d, id);
		const cJSON *p = cJSON_GetObjectItemCaseSensitive(jd_json(r),
		                                                  "progress");
		double pc = jd_num(p, "percent", -1);
		ck_assert_msg(p == NULL || cJSON_IsNull(p) || (cJSON_IsObject(p)
		              && pc >= 0 && pc <= 100), "progress %s",
		              r->body);
		if (pc > 0 && pc < 100) {
			if (first < 0)
				first = pc;
			else
				later = pc;
		}
		ck_assert_msg(strcmp(jd_resp_str(r, "status"), "succeeded") != 0
		              || later > first, "sleep ended before its progress "
		              "was seen moving (%g, %g)", first, later);
		jd_resp_free(r);
		ck_assert_msg(jd_mono_ms() < until, "no moving progress");
		jd_pause_ms(50);
	}
	assert_final(d, id, "succeeded", "{\"percent\":100}");
	free(id);
	jd_free(d);
}
END_TEST

/*
 * The store's writes of a job's progress, logged by a trigger: sleep
 * reports every 100 ms for 3 s, the store gets a report at most about
 * once a second while it runs (commits may jitter: at least half a second
 * apart is asked), and the last one with the attempt's end.
 */
START_TEST(test_store_rate)
{
	jd *d = launch(2, NULL);
	char *id;
	long long writes, gap;
	char sql[160];
	int rc;

	if (jd_store_is_pg())
		rc = jd_sql_exec(d, "CREATE TABLE jobd.progress_log"
		    " (at float8, id text, p text);"
		    " CREATE FUNCTION jobd.log_progress() RETURNS trigger"
		    " LANGUAGE plpgsql AS $$ BEGIN INSERT INTO jobd.progress_log"
		    " VALUES (extract(epoch FROM clock_timestamp()) * 1000,"
		    " NEW.id::text, NEW.progress); RETURN NEW; END $$;"
		    " CREATE TRIGGER log_progress AFTER UPDATE OF progress"
		    " ON jobd.jobs FOR EACH ROW WHEN (NEW.progress IS NOT NULL)"
		    " EXECUTE FUNCTION jobd.log_progress();");
	else
		rc = jd_sql_exec(d, "CREATE TABLE progress_log (at REAL, id TEXT,"
		    " p TEXT);"
		    " CREATE TRIGGER log_progress AFTER UPDATE OF progress"
		    " ON jobs WHEN NEW.progress IS NOT NULL BEGIN"
		    " INSERT INTO progress_log VALUES"
		    " (julianday('now') * 86400000.0, NEW.id, NEW.progress);"
		    " END;");
	ck_assert_int_eq(rc, 0);
	id = submit_ok(d, "{\"type\": \"sleep\", \"payload\": "
	                  "{\"seconds\": 3}}");
	assert_final(d, id, "succeeded", "{\"percent\":100}");
	writes = jd_sql_int(d, "SELECT count(*) FROM progress_log");
	/* About 30 reports: a write a second after the first, about one a
	 * second after that, and the end (more than 8 would be more than
	 * one a second); more than the end alone. */
	ck_assert_msg(writes >= 2 && writes <= 8, "%lld store writes", writes);
	gap = jd_sql_int(d, "SELECT CAST(min(gap) AS INTEGER) FROM"
	                 " (SELECT at - lag(at) OVER (ORDER BY at) AS gap,"
	                 " row_number() OVER (ORDER BY at DESC) AS rn"
	                 " FROM progress_log) AS x"
	                 " WHERE rn > 1 AND gap IS NOT NULL");
	ck_assert_msg(gap >= 500, "two writes %lld ms apart", gap);
	free(id);

	/* An attempt shorter than a second (4 reports): its completion is
	 * the only write. */
	id = submit_ok(d, "{\"type\": \"sleep\", \"payload\": "
	                  "{\"seconds\": 0.4}}");
	assert_final(d, id, "succeeded", "{\"percent\":100}");
	snprintf(sql, sizeof(sql), "SELECT count(*) FROM progress_log"
	         " WHERE id = '%s'", id);
	ck_assert_int_eq(jd_sql_int(d, sql), 1);
	free(id);
	jd_free(d);
}
END_TEST

static Suite *
suite(void)
{
	Suite *s = suite_create("progress");
	TCase *tc = tcase_create("progress");

	tcase_add_checked_fixture(tc, setup, NULL);
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, test_exec_lines);
	tcase_add_test(tc, test_exec_line_edges);
	tcase_add_test(tc, test_exec_fd3);
	tcase_add_test(tc, test_exec_flood);
	tcase_add_test(tc, test_attempts);
	tcase_add_test(tc, test_restart);
	tcase_add_test(tc, test_two_nodes);
	tcase_add_test(tc, test_builtin_sleep);
	tcase_add_test(tc, test_store_rate);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	return run_suite(suite());
}
