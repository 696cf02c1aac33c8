/*
 * test_api2.c - promises of the API that a review found broken (issue 11):
 * list pages without payload and result, and what that saves; one
 * idempotency fingerprint per body, however close two bodies are; one
 * rule for wait values (fractions, quotes, clamping, 400 for the rest) on
 * GET and POST; jobd_intake_seconds measured from arrival to commit; one
 * rendered answer shared by every waiter of a job.
 *
 * Memory is measured on the daemon itself (/proc/<pid>/status, its peak
 * reset through /proc/<pid>/clear_refs where the kernel allows), against
 * the size of what the test made it hold, never against a clock.
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include "checks.h"
#include "harness.h"

static jd *d;

static void
setup(void)
{
	d = launch(2, "[server]\nmax_wait = 60s\n");
}

static void
teardown(void)
{
	jd_free(d);
	d = NULL;
}

/* ---- helpers ---- */

static struct jd_resp *
request(jd *dd, const char *method, const char *path,
        const char *const headers[], const char *body)
{
	struct jd_resp *r = jd_request(dd, method, path, headers, body);

	ck_assert_ptr_nonnull(r);
	return r;
}

static void
assert_problem(struct jd_resp *r, long status)
{
	const char *ct = jd_header(r, "Content-Type");
	cJSON *o = jd_json(r);

	ck_assert_msg(r->status == status, "status %ld, expected %ld: %s%s",
	              r->status, status, r->body, r->error);
	ck_assert_msg(ct != NULL &&
	              strcmp(ct, "application/problem+json") == 0,
	              "Content-Type %s, expected application/problem+json",
	              ct ? ct : "(none)");
	ck_assert_msg(cJSON_IsObject(o) && jd_str(o, "type") != NULL &&
	              jd_num(o, "status", -1) == (double)status,
	              "not a problem: %s", r->body);
}

static void
assert_header(const struct jd_resp *r, const char *name, const char *want)
{
	const char *v = jd_header(r, name);

	ck_assert_msg(v != NULL, "no %s header (status %ld): %s", name,
	              r->status, r->body);
	ck_assert_msg(strcmp(v, want) == 0, "%s: %s, expected %s", name, v,
	              want);
}


/* Resets the daemon's peak RSS (VmHWM) to its RSS now; false when the
 * kernel does not let us (the peak then counts from the start). */
static bool
reset_peak(pid_t pid)
{
	char path[64];
	FILE *f;
	bool ok;

	snprintf(path, sizeof(path), "/proc/%ld/clear_refs", (long)pid);
	f = fopen(path, "we");
	if (f == NULL)
		return false;
	ok = fputs("5", f) >= 0;
	ok = fclose(f) == 0 && ok;
	return ok;
}

/* POST /jobs with an Idempotency-Key. */
static struct jd_resp *
post_keyed(jd *dd, const char *key, const char *body)
{
	char kh[300];
	const char *h[] = {"Content-Type: application/json", kh, NULL};

	snprintf(kh, sizeof(kh), "Idempotency-Key: %s", key);
	return request(dd, "POST", "/jobs", h, body);
}

static struct jd_resp *
post_prefer(jd *dd, const char *prefer, const char *body)
{
	char ph[300];
	const char *h[] = {"Content-Type: application/json", ph, NULL};

	snprintf(ph, sizeof(ph), "Prefer: %s", prefer);
	return request(dd, "POST", "/jobs", h, body);
}

/* A job body whose payload is {<members>"pad": n 'x'} (a new string);
 * members is "" or ends with a comma. */
static char *
big_body(const char *type, const char *extra, const char *members, size_t n)
{
	size_t len = strlen(type) + strlen(extra) + strlen(members) + n + 64;
	char *b = malloc(len), *p;

	ck_assert_ptr_nonnull(b);
	p = b + sprintf(b, "{\"type\":\"%s\"%s,\"payload\":{%s\"pad\":\"",
	                type, extra, members);
	memset(p, 'x', n);
	p += n;
	strcpy(p, "\"}}");
	return b;
}

/* A sample of /metrics, or -1. */
static double
metric(jd *dd, const char *name)
{
	return jd_metric(dd, name);
}

/* ---- 1. list pages carry no payload and no result ---- */

START_TEST(test_list_has_no_large_fields)
{
	char *id = submit_ok(d, "{\"type\":\"echo\",\"payload\":{\"a\":[1,2]}}");
	struct jd_resp *r, *one;
	cJSON *jobs, *j;

	jd_resp_free(wait_status(d, id, "succeeded", 10000));
	r = request(d, "GET", "/jobs", NULL, NULL);
	assert_status(r, 200);
	jobs = cJSON_GetObjectItemCaseSensitive(jd_json(r), "jobs");
	ck_assert_int_eq(cJSON_GetArraySize(jobs), 1);
	j = cJSON_GetArrayItem(jobs, 0);
	ck_assert_str_eq(jd_str(j, "id"), id);
	ck_assert_str_eq(jd_str(j, "status"), "succeeded");
	ck_assert_msg(!cJSON_HasObjectItem(j, "payload") &&
	              !cJSON_HasObjectItem(j, "result"),
	              "a list item carries payload or result: %s", r->body);
	/* every other field of the job is there */
	char path[64];
	snprintf(path, sizeof(path), "/jobs/%s", id);
	one = request(d, "GET", path, NULL, NULL);
	assert_status(one, 200);
	ck_assert_msg(cJSON_HasObjectItem(jd_json(one), "payload") &&
	              cJSON_HasObjectItem(jd_json(one), "result"),
	              "GET /jobs/<id> lost payload or result: %s", one->body);
	for (cJSON *f = jd_json(one)->child; f != NULL; f = f->next) {
		if (strcmp(f->string, "payload") == 0 ||
		    strcmp(f->string, "result") == 0)
			continue;
		ck_assert_msg(cJSON_HasObjectItem(j, f->string),
		              "the list item lacks %s: %s", f->string, r->body);
	}
	jd_resp_free(one);
	jd_resp_free(r);
	free(id);
}
END_TEST

#define BIG_JOBS 64
#define BIG_PAYLOAD (1000 * 1000)
#define LISTERS 4

struct lister {
	int port;
	long status;
	size_t items;
};

static void *
list_thread(void *arg)
{
	struct lister *l = arg;
	jd_client *c = jd_client_new(l->port);
	struct jd_resp *r;

	if (c == NULL)
		return NULL;
	r = jd_client_request(c, "GET", "/jobs?limit=1000", NULL, NULL);
	if (r != NULL) {
		l->status = r->status;
		l->items = (size_t)cJSON_GetArraySize(
			cJSON_GetObjectItemCaseSensitive(jd_json(r), "jobs"));
		jd_resp_free(r);
	}
	jd_client_free(c);
	return NULL;
}

/* Four clients list 64 jobs of 1 MB each at once: the daemon's peak RSS
 * grows by far less than the payloads it would have rendered. */
START_TEST(test_list_memory)
{
	char *body = big_body("noop", ",\"delay\":3600", "", BIG_PAYLOAD);
	struct lister l[LISTERS];
	pthread_t t[LISTERS];
	long rss0, hwm;
	const long payloads_kb = (long)BIG_JOBS * BIG_PAYLOAD / 1024;

	for (int i = 0; i < BIG_JOBS; i++)
		free(submit_ok(d, body));
	free(body);
	rss0 = jd_proc_status(d->pid, "VmRSS:");
	ck_assert_int_gt(rss0, 0);
	if (!reset_peak(d->pid))
		fprintf(stderr, "test_list_memory: cannot reset VmHWM; the "
		        "peak counts from start-up\n");
	for (int i = 0; i < LISTERS; i++) {
		l[i] = (struct lister){.port = d->port};
		ck_assert_int_eq(pthread_create(&t[i], NULL, list_thread,
		                                &l[i]), 0);
	}
	for (int i = 0; i < LISTERS; i++) {
		pthread_join(t[i], NULL);
		ck_assert_int_eq(l[i].status, 200);
		ck_assert_int_eq(l[i].items, BIG_JOBS);
	}
	hwm = jd_proc_status(d->pid, "VmHWM:");
	printf("list memory: RSS %ld kB before, peak %ld kB during %d lists "
	       "of %d jobs (%ld kB of payloads)\n", rss0, hwm, LISTERS,
	       BIG_JOBS, payloads_kb);
	/* Under sanitizers memory is not the daemon's own (shadow memory,
	 * quarantine): the figure is printed above, not judged. */
	const char *san = getenv("JOBD_SANITIZE");
	if (san == NULL || *san == '\0')
		ck_assert_msg(hwm - rss0 < payloads_kb / 4, "the lists took "
		              "the daemon from %ld kB to %ld kB (payloads: %ld "
		              "kB)", rss0, hwm, payloads_kb);
}
END_TEST

/* ---- 2. one fingerprint per body ---- */

START_TEST(test_fingerprint_big_integers)
{
	struct jd_resp *r1, *r2;

	/* 2^53 + 1 and 2^53: one double, two bodies */
	r1 = post_keyed(d, "amount-1", "{\"type\":\"noop\",\"payload\":"
	                "{\"amount\":9007199254740993}}");
	assert_status(r1, 202);
	r2 = post_keyed(d, "amount-1", "{\"type\":\"noop\",\"payload\":"
	                "{\"amount\":9007199254740992}}");
	assert_problem(r2, 409);
	jd_resp_free(r2);
	/* the very same body is still a replay */
	r2 = post_keyed(d, "amount-1", "{\"type\":\"noop\",\"payload\":"
	                "{\"amount\":9007199254740993}}");
	assert_status(r2, 202);
	assert_header(r2, "Idempotent-Replayed", "true");
	ck_assert_str_eq(jd_resp_str(r2, "id"), jd_resp_str(r1, "id"));
	jd_resp_free(r2);
	jd_resp_free(r1);
}
END_TEST

START_TEST(test_fingerprint_nul_in_strings)
{
	struct jd_resp *r1, *r2;

	r1 = post_keyed(d, "nul-1", "{\"type\":\"noop\",\"payload\":"
	                "\"a\\u0000b\"}");
	assert_status(r1, 202);
	r2 = post_keyed(d, "nul-1", "{\"type\":\"noop\",\"payload\":"
	                "\"a\\u0000c\"}");
	assert_problem(r2, 409);
	jd_resp_free(r2);
	/* a key with a NUL is not the key without it */
	jd_resp_free(r1);
	r1 = post_keyed(d, "nul-2", "{\"type\":\"noop\",\"payload\":"
	                "{\"k\\u0000x\":1}}");
	assert_status(r1, 202);
	r2 = post_keyed(d, "nul-2", "{\"type\":\"noop\",\"payload\":"
	                "{\"k\\u0000y\":1}}");
	assert_problem(r2, 409);
	jd_resp_free(r2);
	jd_resp_free(r1);
	/* fractions and exponents as written */
	r1 = post_keyed(d, "num-1", "{\"type\":\"noop\",\"payload\":"
	                "[0.1000000000000000055511151231257827]}");
	assert_status(r1, 202);
	r2 = post_keyed(d, "num-1", "{\"type\":\"noop\",\"payload\":[0.1]}");
	assert_problem(r2, 409);
	jd_resp_free(r2);
	jd_resp_free(r1);
}
END_TEST

/* Order of members and whitespace still make no difference, at any
 * depth, and many members are no trouble. */
START_TEST(test_fingerprint_canonical)
{
	struct jd_resp *r1, *r2;
	size_t n = 20000, cap = n * 16 + 128, len;
	char *big = malloc(cap), *rev = malloc(cap);

	r1 = post_keyed(d, "canon-2", "{\"type\":\"noop\",\"payload\":{\"x\":"
	                "{\"b\":[1,{\"d\":1,\"c\":2}],\"a\":\"s\"}}}");
	assert_status(r1, 202);
	r2 = post_keyed(d, "canon-2", " { \"payload\" : { \"x\" : { \"a\" :"
	                " \"s\" , \"b\" : [ 1 , { \"c\" : 2 , \"d\" : 1 } ] }"
	                " } , \"type\" : \"noop\" } ");
	assert_status(r2, 202);
	assert_header(r2, "Idempotent-Replayed", "true");
	jd_resp_free(r2);
	jd_resp_free(r1);

	/* 20000 members, then the same in reverse order */
	ck_assert_ptr_nonnull(big);
	ck_assert_ptr_nonnull(rev);
	len = (size_t)sprintf(big, "{\"type\":\"noop\",\"payload\":{");
	for (size_t i = 0; i < n; i++)
		len += (size_t)sprintf(big + len, "%s\"k%zu\":%zu", i ? "," : "",
		                       i, i);
	strcpy(big + len, "}}");
	len = (size_t)sprintf(rev, "{\"type\":\"noop\",\"payload\":{");
	for (size_t i = n; i-- > 0;)
		len += (size_t)sprintf(rev + len, "%s\"k%zu\":%zu",
		                       i + 1 < n ? "," : "", i, i);
	strcpy(rev + len, "}}");
	r1 = post_keyed(d, "canon-3", big);
	assert_status(r1, 202);
	r2 = post_keyed(d, "canon-3", rev);
	assert_status(r2, 202);
	assert_header(r2, "Idempotent-Replayed", "true");
	jd_resp_free(r2);
	jd_resp_free(r1);
	free(big);
	free(rev);
}
END_TEST

/* ---- 3. one rule for wait ---- */

/* A finished job, so that every wait below answers at once. */
static char *
finished_job(void)
{
	char *id = submit_ok(d, "{\"type\":\"noop\"}");

	jd_resp_free(wait_status(d, id, "succeeded", 10000));
	return id;
}

static struct jd_resp *
get_with(const char *id, const char *query, const char *prefer)
{
	char path[200], ph[300];
	const char *h[] = {ph, NULL};

	snprintf(path, sizeof(path), "/jobs/%s%s", id, query ? query : "");
	snprintf(ph, sizeof(ph), "Prefer: %s", prefer ? prefer : "");
	return request(d, "GET", path, prefer ? h : NULL, NULL);
}

START_TEST(test_wait_fractions_and_quotes)
{
	char *id = finished_job();
	static const struct {
		const char *query, *prefer, *applied;
	} cases[] = {
		{"?wait=1.5", NULL, "wait=1.5"},
		{"?wait=0.25", NULL, "wait=0.25"},
		{"?wait=2", NULL, "wait=2"},
		{"?wait=0", NULL, "wait=0"},
		{"?wait=%223%22", NULL, "wait=3"},
		{NULL, "wait=1.5", "wait=1.5"},
		{NULL, "wait=\"3\"", "wait=3"},
		{NULL, "wait = 4", "wait=4"},
		{NULL, "WAIT=2.125", "wait=2.125"},
		{NULL, "respond-async, wait=2; foo=bar", "wait=2"},
		{NULL, "foo=\"a,wait=9\", wait=2", "wait=2"},
		{NULL, "wait=2, wait=5", "wait=2"},
		/* above max_wait (60 s): clamped, and said so */
		{"?wait=3600", NULL, "wait=60"},
		{NULL, "wait=9223372036854775807", "wait=60"},
		{NULL, "wait=18446744073709551616", "wait=60"},
		{"?wait=9223372036854775807", NULL, "wait=60"},
		{NULL, "wait=9223372036854775.807", "wait=60"},
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct jd_resp *r = get_with(id, cases[i].query,
		                             cases[i].prefer);
		ck_assert_msg(r->status == 200, "%s / Prefer: %s: %ld %s",
		              cases[i].query ? cases[i].query : "-",
		              cases[i].prefer ? cases[i].prefer : "-",
		              r->status, r->body);
		const char *v = jd_header(r, "Preference-Applied");
		ck_assert_msg(v != NULL && strcmp(v, cases[i].applied) == 0,
		              "%s / Prefer: %s: Preference-Applied %s, "
		              "expected %s",
		              cases[i].query ? cases[i].query : "-",
		              cases[i].prefer ? cases[i].prefer : "-",
		              v ? v : "(none)", cases[i].applied);
		jd_resp_free(r);
	}
	free(id);
}
END_TEST

static const char *const bad_waits[] = {
	"-1", "abc", "1x", "1.", ".5", "", "\"\"", "\"3", "1e3", "+1",
	"0x10", "1.5.5", "\"-1\"", "1 2",
	"000000000000000000000000000000001", /* 33 characters */
	"11111111111111111111111111111111111111111111111111111111111111111"
	"1111111111111111111111111",
};

START_TEST(test_wait_invalid_is_400_everywhere)
{
	char *id = finished_job();
	char path[300], q[200];

	for (size_t i = 0; i < sizeof(bad_waits) / sizeof(bad_waits[0]); i++) {
		struct jd_resp *r;
		char pv[200];

		/* Prefer on GET */
		snprintf(pv, sizeof(pv), "wait=%s", bad_waits[i]);
		r = get_with(id, NULL, pv);
		ck_assert_msg(r->status == 400, "GET Prefer: %s: %ld", pv,
		              r->status);
		assert_problem(r, 400);
		jd_resp_free(r);
		/* Prefer on POST: nothing stored */
		r = post_prefer(d, pv, "{\"type\":\"noop\"}");
		ck_assert_msg(r->status == 400, "POST Prefer: %s: %ld", pv,
		              r->status);
		assert_problem(r, 400);
		jd_resp_free(r);
		/* ?wait= on GET (URL-encoded) */
		size_t o = 0;
		for (const char *s = bad_waits[i]; *s && o + 4 < sizeof(q); s++)
			o += (size_t)snprintf(q + o, sizeof(q) - o, "%%%02X",
			                      (unsigned char)*s);
		q[o] = '\0';
		snprintf(path, sizeof(path), "?wait=%s", q);
		r = get_with(id, path, NULL);
		ck_assert_msg(r->status == 400, "GET ?wait=%s: %ld",
		              bad_waits[i], r->status);
		assert_problem(r, 400);
		jd_resp_free(r);
	}
	/* a wait without a value */
	struct jd_resp *r = post_prefer(d, "wait", "{\"type\":\"noop\"}");
	assert_problem(r, 400);
	jd_resp_free(r);
	/* nothing but the one job was stored */
	ck_assert_int_eq(jd_sql_int(d, "SELECT count(*) FROM jobs"), 1);
	free(id);
}
END_TEST

/* A fractional wait is really applied: a 0.3 s wait on a job that runs
 * 30 s answers with the job still running, and says wait=0.3. */
START_TEST(test_wait_fraction_applied)
{
	char *id = submit_ok(d, "{\"type\":\"sleep\",\"payload\":"
	                     "{\"seconds\":30}}");
	struct jd_resp *r;

	jd_resp_free(wait_status(d, id, "running", 10000));
	r = get_with(id, "?wait=0.3", NULL);
	assert_status(r, 200);
	ck_assert_str_eq(jd_resp_str(r, "status"), "running");
	assert_header(r, "Preference-Applied", "wait=0.3");
	jd_resp_free(r);
	r = post_prefer(d, "wait=0.3", "{\"type\":\"sleep\",\"payload\":"
	                "{\"seconds\":30}}");
	assert_status(r, 202);
	assert_header(r, "Preference-Applied", "wait=0.3");
	jd_resp_free(r);
	free(id);
}
END_TEST

/* ---- 4. jobd_intake_seconds: arrival to commit ---- */

START_TEST(test_intake_excludes_wait)
{
	struct jd_resp *r, *job;
	double sum, count;
	int64_t run_ms;
	char path[64];

	r = post_prefer(d, "wait=15", "{\"type\":\"sleep\",\"payload\":"
	                "{\"seconds\":1.5}}");
	assert_status(r, 200);
	ck_assert_str_eq(jd_resp_str(r, "status"), "succeeded");
	snprintf(path, sizeof(path), "/jobs/%s", jd_resp_str(r, "id"));
	job = request(d, "GET", path, NULL, NULL);
	run_ms = jd_parse_time_ms(jd_resp_str(job, "finished_at")) -
	         jd_parse_time_ms(jd_resp_str(job, "started_at"));
	ck_assert_int_ge(run_ms, 1400);
	sum = metric(d, "jobd_intake_seconds_sum");
	count = metric(d, "jobd_intake_seconds_count");
	/* one submission, counted once, and its intake ended at the commit,
	 * before the job even started */
	ck_assert_msg(count == 1, "jobd_intake_seconds_count %g", count);
	ck_assert_msg(sum >= 0 && sum * 1000 < (double)run_ms,
	              "jobd_intake_seconds_sum %g s for a job that ran "
	              "%lld ms after it", sum, (long long)run_ms);
	jd_resp_free(job);
	jd_resp_free(r);
	/* a replay commits nothing: not counted */
	r = post_keyed(d, "intake-1", "{\"type\":\"noop\"}");
	assert_status(r, 202);
	jd_resp_free(r);
	r = post_keyed(d, "intake-1", "{\"type\":\"noop\"}");
	assert_status(r, 202);
	jd_resp_free(r);
	count = metric(d, "jobd_intake_seconds_count");
	ck_assert_msg(count == 2, "jobd_intake_seconds_count %g", count);
}
END_TEST

/* ---- 5. one rendered answer for all the waiters of a job ---- */

#define WAITERS 200
#define WAIT_S 3600     /* the waiters' ?wait= (their daemon's max_wait) */
#define STALL_MS 60000  /* no progress this long: something is stuck */

static bool
wait_waiters(jd *dd, long long n, int timeout_ms)
{
	return jd_wait_metric(dd, "jobd_waiters", (double)n, timeout_ms);
}

/*
 * Waits until the daemon holds a waiter for each of the n connections,
 * for as long as their number keeps rising.  Each registration reads the
 * 1 MB job twice and renders it once (api.c answers at once were it final)
 * on one of two HTTP threads: 200 take 0.15 s normally, but 10 to 40 s
 * under TSan, whose shadow memory makes every fresh megabyte cost page
 * faults and TLB shootdowns, and more on a loaded machine: no budget for
 * the whole is right (CI saw 198 of 200 after 20 s, still rising).  Fails
 * when the count stalls for STALL_MS, and at once, naming it, when one of
 * the connections was answered or closed before the job's end: a waiter
 * lost (refused, answered early, timed out), which would never come.
 */
static void
await_waiters(jd *dd, const int *fds, int n)
{
	static struct pollfd p[WAITERS];
	int64_t stall_end = jd_mono_ms() + STALL_MS;
	double v, best = -1;

	ck_assert_int_le(n, WAITERS);
	for (int i = 0; i < n; i++)
		p[i] = (struct pollfd){.fd = fds[i],
		                       .events = POLLIN | POLLRDHUP};
	while ((v = jd_metric(dd, "jobd_waiters")) != (double)n) {
		ck_assert_msg(v < n, "jobd_waiters is %g, for %d connections",
		              v, n);
		ck_assert_msg(poll(p, (nfds_t)n, 0) >= 0, "poll: %s",
		              strerror(errno));
		for (int i = 0; i < n; i++) {
			char head[160];
			ssize_t got;

			if (p[i].revents == 0)
				continue;
			got = recv(fds[i], head, sizeof(head) - 1,
			           MSG_PEEK | MSG_DONTWAIT);
			head[got > 0 ? got : 0] = '\0';
			ck_abort_msg("connection %d of %d was %s before its "
			             "job ended (jobd_waiters %g): %s", i, n,
			             got > 0 ? "answered" : "closed", v, head);
		}
		if (v > best) {
			best = v;
			stall_end = jd_mono_ms() + STALL_MS;
		}
		ck_assert_msg(jd_mono_ms() < stall_end, "jobd_waiters stayed "
		              "at %g of %d for %d ms, and no connection was "
		              "answered", v, n, STALL_MS);
		jd_pause_ms(10);
	}
}

/* A long-poll on its own socket with a small receive buffer, so that the
 * daemon, not the kernel, holds what the client has not read yet. */
static int
slow_long_poll(int port, const char *id)
{
	struct sockaddr_in sa = {.sin_family = AF_INET};
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), rcv = 4096;
	char req[256];
	size_t len, sent = 0;

	ck_assert_msg(fd >= 0, "socket: %s", strerror(errno));
	setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcv, sizeof(rcv));
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	sa.sin_port = htons((uint16_t)port);
	ck_assert_msg(connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0,
	              "connect: %s", strerror(errno));
	len = (size_t)snprintf(req, sizeof(req), "GET /jobs/%s?wait=%d "
	                       "HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", id,
	                       WAIT_S);
	while (sent < len) {
		ssize_t n = send(fd, req + sent, len - sent, MSG_NOSIGNAL);
		ck_assert_msg(n > 0, "send: %s", strerror(errno));
		sent += (size_t)n;
	}
	return fd;
}

/* Reads the whole answer (blocking, until no byte came for stall_ms);
 * returns its status, the body's length in *body_len, and new copies of
 * the head and the body in *head_out and *body_out (the caller frees). */
static int
read_answer(int fd, size_t *body_len, char **head_out, char **body_out,
            int stall_ms)
{
	size_t cap = 1 << 16, len = 0, want = 0, hdr = 0;
	char *buf = malloc(cap);
	int64_t deadline = jd_mono_ms() + stall_ms;
	int status = -1;

	ck_assert_ptr_nonnull(buf);
	for (;;) {
		struct pollfd p = {.fd = fd, .events = POLLIN};
		int64_t left = deadline - jd_mono_ms();
		ssize_t n;

		if (left <= 0 || poll(&p, 1, (int)left) <= 0)
			break;
		if (len + 4096 > cap) {
			cap *= 2;
			buf = realloc(buf, cap);
			ck_assert_ptr_nonnull(buf);
		}
		n = recv(fd, buf + len, cap - len - 1, 0);
		if (n <= 0)
			break;
		len += (size_t)n;
		buf[len] = '\0';
		deadline = jd_mono_ms() + stall_ms;
		if (hdr == 0) {
			char *e = strstr(buf, "\r\n\r\n");
			if (e == NULL)
				continue;
			hdr = (size_t)(e - buf) + 4;
			const char *cl = strcasestr(buf, "\r\nContent-Length:");
			ck_assert_msg(cl != NULL && cl < e, "no Content-Length: "
			              "%.300s", buf);
			want = hdr + strtoul(cl + 17, NULL, 10);
		}
		if (len >= want)
			break;
	}
	if (hdr > 0 && len >= want && strncmp(buf, "HTTP/1.1 ", 9) == 0)
		status = atoi(buf + 9);
	*body_len = hdr > 0 ? len - hdr : 0;
	*head_out = strndup(buf, hdr > 0 ? hdr : len);
	*body_out = strdup(buf + (hdr > 0 ? hdr : len));
	ck_assert(*head_out != NULL && *body_out != NULL);
	free(buf);
	return status;
}

/* 200 long-polls of one job with a 1 MB payload, none of them reading
 * yet when the job ends: the daemon holds one rendering, not 200.  The
 * job's end, not a clock, ends the waits: it runs for an hour, and the
 * waits may last as long (their own daemon). */
START_TEST(test_waiters_share_one_body)
{
	char *body = big_body("sleep", "", "\"seconds\":3600,", BIG_PAYLOAD);
	static int fds[WAITERS];
	char *id, path[64], applied[32];
	struct jd_resp *r;
	long rss0, hwm;
	const long copies_kb = (long)WAITERS * BIG_PAYLOAD / 1024;

	jd_free(d);
	d = NULL;
	d = launch(2, "[server]\nmax_wait = 1h\n");
	id = submit_ok(d, body);
	free(body);
	jd_resp_free(wait_status(d, id, "running", 10000));
	for (int i = 0; i < WAITERS; i++)
		fds[i] = slow_long_poll(d->port, id);
	await_waiters(d, fds, WAITERS);
	rss0 = jd_proc_status(d->pid, "VmRSS:");
	if (!reset_peak(d->pid))
		fprintf(stderr, "test_waiters_share_one_body: cannot reset "
		        "VmHWM; the peak counts from start-up\n");

	/* the job ends: every waiter gets it at once */
	snprintf(path, sizeof(path), "/jobs/%s", id);
	r = request(d, "DELETE", path, NULL, NULL);
	ck_assert_msg(r->status == 202 || r->status == 200, "DELETE: %ld %s",
	              r->status, r->body);
	jd_resp_free(r);
	ck_assert(wait_waiters(d, 0, 20000));
	/* The answers are being written; read them one by one: each is the
	 * job as its end left it. */
	snprintf(applied, sizeof(applied), "Preference-Applied: wait=%d",
	         WAIT_S);
	for (int i = 0; i < WAITERS; i++) {
		size_t blen = 0;
		char *head, *text;
		int st = read_answer(fds[i], &blen, &head, &text, STALL_MS);
		ck_assert_msg(st == 200 && blen > BIG_PAYLOAD, "waiter %d: "
		              "status %d, %zu bytes of body: %s", i, st, blen,
		              head);
		ck_assert_msg(strstr(head, applied) != NULL, "waiter %d: %s", i,
		              head);
		ck_assert_msg(strstr(text, "\"status\":\"cancelled\"") != NULL,
		              "waiter %d: not the cancelled job: %.300s", i,
		              text);
		free(text);
		free(head);
		close(fds[i]);
	}
	hwm = jd_proc_status(d->pid, "VmHWM:");
	printf("%d waiters of a job of %d bytes: RSS %ld kB before its end, "
	       "peak %ld kB until all were answered\n", WAITERS, BIG_PAYLOAD,
	       rss0, hwm);
	/* (not judged under sanitizers, as above) */
	const char *san = getenv("JOBD_SANITIZE");
	if (san == NULL || *san == '\0')
		ck_assert_msg(hwm - rss0 < copies_kb / 8, "the answers took "
		              "the daemon from %ld kB to %ld kB (%d copies "
		              "would be %ld kB; does http.c set shared_ok and "
		              "send call->body_shared? see api.h)", rss0, hwm,
		              WAITERS, copies_kb);
	/* the job reads the same afterwards */
	r = request(d, "GET", path, NULL, NULL);
	assert_status(r, 200);
	ck_assert_str_eq(jd_resp_str(r, "status"), "cancelled");
	jd_resp_free(r);
	free(id);
}
END_TEST

/* Every JSON answer ends with a newline (issue 12: curl's output ran
 * into the prompt): objects, jobs (shared or not), lists, problems. */
START_TEST(test_json_answers_end_with_newline)
{
	char *id = submit_ok(d, "{\"type\":\"echo\",\"payload\":1}");
	char path[128], wait_path[160];
	const char *paths[] = {"/healthz", "/readyz", "/jobs?limit=5", path,
	                       wait_path, "/jobs/nope", "/nowhere"};
	struct jd_resp *r;

	snprintf(path, sizeof(path), "/jobs/%s", id);
	snprintf(wait_path, sizeof(wait_path), "/jobs/%s?wait=5", id);
	jd_resp_free(wait_status(d, id, "succeeded", 10000));
	for (size_t i = 0; i < sizeof(paths) / sizeof(paths[0]); i++) {
		r = jd_request(d, "GET", paths[i], NULL, NULL);
		ck_assert_msg(r->body_len > 0 &&
		              r->body[r->body_len - 1] == '\n',
		              "GET %s: %ld without a final newline: %s", paths[i],
		              r->status, r->body);
		ck_assert_ptr_nonnull(jd_json(r));
		jd_resp_free(r);
	}
	r = jd_request(d, "POST", "/jobs",
	    (const char *const[]){"Content-Type: application/json", NULL},
	    "{\"type\":\"noop\"}");
	assert_status(r, 202);
	ck_assert(r->body[r->body_len - 1] == '\n');
	jd_resp_free(r);
	free(id);
}
END_TEST

/* The value of one series of /metrics (its whole name with labels), or
 * -1 when absent. */
static double
series_in(const char *text, const char *series)
{
	size_t n = strlen(series);

	for (const char *l = text; l != NULL && *l;
	     l = strchr(l, '\n') ? strchr(l, '\n') + 1 : NULL)
		if (strncmp(l, series, n) == 0 && l[n] == ' ')
			return strtod(l + n + 1, NULL);
	return -1;
}

/* Issue 12: build info, the process, answers by code, store commits. */
START_TEST(test_metrics_process_http_store)
{
	struct jd_resp *r;

	jd_resp_free(jd_request(d, "GET", "/healthz", NULL, NULL));
	jd_resp_free(jd_request(d, "GET", "/no/such/thing", NULL, NULL));
	free(submit_ok(d, "{\"type\":\"noop\"}"));
	r = jd_request(d, "GET", "/metrics", NULL, NULL);
	assert_status(r, 200);
	ck_assert_msg(series_in(r->body, "jobd_http_requests_total{code=\"200\"}")
	              >= 1, "%s", r->body);
	ck_assert(series_in(r->body, "jobd_http_requests_total{code=\"404\"}")
	          >= 1);
	ck_assert(series_in(r->body, "jobd_http_requests_total{code=\"202\"}")
	          >= 1);
	ck_assert(series_in(r->body, "jobd_build_info{version=\"0.1.0\"}") == 1);
	ck_assert(series_in(r->body, "process_resident_memory_bytes") > 1e6);
	ck_assert(series_in(r->body, "process_open_fds") > 3);
	ck_assert(series_in(r->body, "process_start_time_seconds") >
	          (double)jd_now_ms() / 1000 - 3600);
	ck_assert(series_in(r->body, "jobd_store_commits_total") >= 1);
	ck_assert(series_in(r->body, "jobd_store_fsyncs_total") >= 1);
	ck_assert(series_in(r->body, "jobd_store_errors_total{kind=\"io\"}") == 0);
	jd_resp_free(r);
}
END_TEST

Suite *
api2_suite(void)
{
	Suite *s = suite_create("api2");
	TCase *tc = tcase_create("api2");

	tcase_set_timeout(tc, 120);
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_list_has_no_large_fields);
	tcase_add_test(tc, test_list_memory);
	tcase_add_test(tc, test_fingerprint_big_integers);
	tcase_add_test(tc, test_fingerprint_nul_in_strings);
	tcase_add_test(tc, test_fingerprint_canonical);
	tcase_add_test(tc, test_wait_fractions_and_quotes);
	tcase_add_test(tc, test_wait_invalid_is_400_everywhere);
	tcase_add_test(tc, test_wait_fraction_applied);
	tcase_add_test(tc, test_intake_excludes_wait);
	tcase_add_test(tc, test_waiters_share_one_body);
	tcase_add_test(tc, test_json_answers_end_with_newline);
	tcase_add_test(tc, test_metrics_process_http_store);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	return run_suite(api2_suite());
}
