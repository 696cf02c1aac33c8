/*
 * test_wait.c - waiting for results against the real daemon (issue 4,
 * README "Waiting for results"): long-poll GET, synchronous submit with
 * Prefer: wait, cancel on disconnect, idempotency keys, the waiter limit,
 * and waiters answered at shutdown.
 *
 * Timing is measured, never assumed, and never judged against a budget
 * (benchmarks do that): a long-poll's answer must come after the job's
 * own finished_at and before the wait it asked for ran out; a client
 * hangs up once jobd_waiters shows it waiting; a job that must survive
 * its client's disconnect is seen running after the daemon dropped the
 * waiter, then succeeded (a cancel would have ended it cancelled).  Waiters whose connection must stay open while
 * the test does something else, or that must hang up, are raw sockets
 * (struct raw); everything else goes through the harness's libcurl client.
 *
 * The "wait" case shares a fixture (a daemon per test, 2 workers); tests
 * that need another configuration start their own daemon.
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include "checks.h"
#include "harness.h"

static jd *d;

static void
setup(void)
{
	struct jd_opts o = {.threads = 2};

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
request(jd *dd, const char *method, const char *path,
        const char *const headers[], const char *body)
{
	struct jd_resp *r = jd_request(dd, method, path, headers, body);

	ck_assert_ptr_nonnull(r);
	return r;
}

static struct jd_resp *
get_job(jd *dd, const char *id, const char *query,
        const char *const headers[])
{
	char path[160];

	snprintf(path, sizeof(path), "/jobs/%s%s", id, query ? query : "");
	return request(dd, "GET", path, headers, NULL);
}

/* The job's status now (a new string the caller frees). */
static char *
job_status(jd *dd, const char *id)
{
	struct jd_resp *r = get_job(dd, id, NULL, NULL);
	const char *s = jd_resp_str(r, "status");
	char *out;

	ck_assert_msg(r->status == 200 && s != NULL, "GET /jobs/%s: %ld %s",
	              id, r->status, r->body);
	out = strdup(s);
	jd_resp_free(r);
	return out;
}

static int64_t
time_field(struct jd_resp *r, const char *field)
{
	int64_t t = jd_parse_time_ms(jd_str(jd_json(r), field));

	ck_assert_msg(t >= 0, "%s is not a time: %s", field, r->body);
	return t;
}

/* Asserts r is an RFC 9457 problem with this status. */
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
	              jd_str(o, "title") != NULL &&
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

/* The value of jobd_waiters in /metrics; -1 when absent. */
static long long
metric_waiters(jd *dd)
{
	return (long long)jd_metric(dd, "jobd_waiters");
}

/* Polls /metrics until jobd_waiters is n; false after timeout_ms. */
static bool
wait_waiters(jd *dd, long long n, int timeout_ms)
{
	return jd_wait_metric(dd, "jobd_waiters", (double)n, timeout_ms);
}


/* The id of the newest job of this type (a new string). */
static char *
newest_job(jd *dd, const char *type)
{
	char path[128];
	struct jd_resp *r;
	cJSON *first;
	const char *id;
	char *out;

	snprintf(path, sizeof(path), "/jobs?type=%s&limit=1", type);
	r = request(dd, "GET", path, NULL, NULL);
	assert_status(r, 200);
	first = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(
	                               jd_json(r), "jobs"), 0);
	id = jd_str(first, "id");
	ck_assert_msg(id != NULL, "no %s job: %s", type, r->body);
	out = strdup(id);
	jd_resp_free(r);
	return out;
}

/* Polls the job until its status is `status`; returns the ms that took,
 * or -1 after timeout_ms. */
static int64_t
ms_until_status(jd *dd, const char *id, const char *status, int timeout_ms)
{
	int64_t t0 = jd_mono_ms();

	for (;;) {
		char *s = job_status(dd, id);
		bool ok = strcmp(s, status) == 0;
		free(s);
		if (ok)
			return jd_mono_ms() - t0;
		if (jd_mono_ms() - t0 > timeout_ms)
			return -1;
		jd_pause_ms(10);
	}
}

/* ---- raw connections ---- */

/* One HTTP exchange on its own socket, read without blocking. */
struct raw {
	int fd;
	char *buf;
	size_t len, cap;
	bool done;            /* a whole answer came, or the peer closed */
	int64_t at_real_ms;   /* when it was done (CLOCK_REALTIME) */
	int64_t at_mono_ms;
};

static void
raw_open(struct raw *c, int port)
{
	struct sockaddr_in sa = {.sin_family = AF_INET};
	int fd;

	memset(c, 0, sizeof(*c));
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	sa.sin_port = htons((uint16_t)port);
	fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	ck_assert_msg(fd >= 0, "socket: %s", strerror(errno));
	ck_assert_msg(connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0,
	              "connect: %s", strerror(errno));
	c->fd = fd;
}

/* Opens a connection and sends req (blocking), then turns non-blocking. */
static void
raw_send(struct raw *c, int port, const char *req)
{
	size_t len = strlen(req), sent = 0;

	raw_open(c, port);
	while (sent < len) {
		ssize_t n = send(c->fd, req + sent, len - sent, MSG_NOSIGNAL);
		if (n < 0 && errno == EINTR)
			continue;
		ck_assert_msg(n > 0, "send: %s", strerror(errno));
		sent += (size_t)n;
	}
	fcntl(c->fd, F_SETFL, fcntl(c->fd, F_GETFL) | O_NONBLOCK);
}

static void
raw_close(struct raw *c)
{
	if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
	free(c->buf);
	c->buf = NULL;
}

/* The whole answer's length once its header block is in; 0 before. */
static size_t
raw_answer_length(const char *buf, size_t len)
{
	const char *end = memmem(buf, len, "\r\n\r\n", 4);
	size_t body = 0;

	if (end == NULL)
		return 0;
	for (const char *p = buf; p < end; ) {
		const char *eol = memmem(p, (size_t)(end - p) + 2, "\r\n", 2);
		if (eol == NULL)
			break;
		if (strncasecmp(p, "Content-Length:", 15) == 0)
			body = strtoul(p + 15, NULL, 10);
		p = eol + 2;
	}
	return (size_t)(end - buf) + 4 + body;
}

/* Reads what has arrived; true once the exchange is done. */
static bool
raw_pump(struct raw *c)
{
	while (!c->done) {
		ssize_t n;
		size_t want;

		if (c->len + 4096 + 1 > c->cap) {
			size_t cap = c->cap ? c->cap * 2 : 8192;
			char *b = realloc(c->buf, cap);
			ck_assert_ptr_nonnull(b);
			c->buf = b;
			c->cap = cap;
		}
		n = recv(c->fd, c->buf + c->len, c->cap - c->len - 1, 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return false;
		if (n > 0) {
			c->len += (size_t)n;
			c->buf[c->len] = '\0';
			want = raw_answer_length(c->buf, c->len);
			if (want == 0 || c->len < want)
				continue;
		}
		/* a whole answer, EOF or an error */
		c->done = true;
		c->at_real_ms = jd_now_ms();
		c->at_mono_ms = jd_mono_ms();
	}
	return true;
}

/* Waits up to timeout_ms for the answer; true when it is in. */
static bool
raw_wait(struct raw *c, int timeout_ms)
{
	int64_t deadline = jd_mono_ms() + timeout_ms;

	while (!raw_pump(c)) {
		struct pollfd p = {.fd = c->fd, .events = POLLIN};
		int64_t left = deadline - jd_mono_ms();
		if (left <= 0)
			return false;
		poll(&p, 1, (int)left);
	}
	return true;
}

/* The status code of the answer, -1 when there is none. */
static int
raw_status(const struct raw *c)
{
	if (c->len < 12 || strncmp(c->buf, "HTTP/1.", 7) != 0)
		return -1;
	return atoi(c->buf + 9);
}

/* The value of a header of the answer, as a new string; NULL if absent. */
static char *
raw_header(const struct raw *c, const char *name)
{
	size_t n = strlen(name);
	const char *end;

	if (c->buf == NULL || (end = strstr(c->buf, "\r\n\r\n")) == NULL)
		return NULL;
	for (const char *p = strstr(c->buf, "\r\n"); p != NULL && p < end; ) {
		p += 2;
		const char *eol = strstr(p, "\r\n");
		if (strncasecmp(p, name, n) == 0 && p[n] == ':') {
			const char *v = p + n + 1;
			while (*v == ' ' || *v == '\t')
				v++;
			return strndup(v, (size_t)(eol - v));
		}
		p = eol;
	}
	return NULL;
}

/* The body of the answer parsed as JSON (caller deletes), or NULL. */
static cJSON *
raw_json(const struct raw *c)
{
	const char *end = c->buf ? strstr(c->buf, "\r\n\r\n") : NULL;

	return end ? cJSON_Parse(end + 4) : NULL;
}

static void
raw_post(struct raw *c, int port, const char *prefer, const char *body)
{
	char req[2048];

	snprintf(req, sizeof(req),
	         "POST /jobs HTTP/1.1\r\nHost: 127.0.0.1\r\n"
	         "Content-Type: application/json\r\nPrefer: %s\r\n"
	         "Content-Length: %zu\r\n\r\n%s", prefer, strlen(body), body);
	raw_send(c, port, req);
}

static void
raw_get_wait(struct raw *c, int port, const char *id, int wait_s)
{
	char req[256];

	snprintf(req, sizeof(req), "GET /jobs/%s?wait=%d HTTP/1.1\r\n"
	         "Host: 127.0.0.1\r\n\r\n", id, wait_s);
	raw_send(c, port, req);
}

/* ---- 1. long-poll GET ---- */

/* Long-polls a 1 s sleep job with these request parts and checks that the
 * answer comes at the job's end: after finished_at, and long before the
 * 10 s wait would have run out. */
static void
check_long_poll(const char *query, const char *const headers[])
{
	char *id = submit_ok(d, "{\"type\":\"sleep\",\"payload\":"
	                        "{\"seconds\":1}}");
	int64_t t0 = jd_mono_ms(), elapsed, arrived, finished;
	struct jd_resp *r = get_job(d, id, query, headers);

	elapsed = jd_mono_ms() - t0;
	arrived = jd_now_ms();
	assert_status(r, 200);
	ck_assert_str_eq(jd_resp_str(r, "id"), id);
	ck_assert_msg(strcmp(jd_resp_str(r, "status"), "succeeded") == 0,
	              "the long-poll answered before the end: %s", r->body);
	finished = time_field(r, "finished_at");
	printf("long-poll %s: answered %lld ms after finished_at, "
	       "%lld ms in all\n", query ? query : "(Prefer: wait=10)",
	       (long long)(arrived - finished), (long long)elapsed);
	ck_assert_msg(arrived - finished >= -10, "answered %lld ms before "
	              "finished_at", (long long)(finished - arrived));
	ck_assert_msg(elapsed >= 800 && elapsed < 9000,
	              "the 1 s job's long-poll took %lld ms (woken at its "
	              "end, or only when the 10 s ran out?)",
	              (long long)elapsed);
	assert_header(r, "Preference-Applied", "wait=10");
	jd_resp_free(r);
	free(id);
}

START_TEST(test_long_poll_query)
{
	check_long_poll("?wait=10", NULL);
}
END_TEST

START_TEST(test_long_poll_prefer)
{
	const char *const prefer[] = {"Prefer: wait=10", NULL};

	check_long_poll(NULL, prefer);
}
END_TEST

START_TEST(test_long_poll_times_out)
{
	char *id = submit_ok(d, "{\"type\":\"sleep\",\"payload\":"
	                        "{\"seconds\":30}}");
	int64_t t0 = jd_mono_ms(), elapsed;
	struct jd_resp *r = get_job(d, id, "?wait=1", NULL);

	elapsed = jd_mono_ms() - t0;
	assert_status(r, 200);
	ck_assert_str_eq(jd_resp_str(r, "id"), id);
	ck_assert_msg(strcmp(jd_resp_str(r, "status"), "running") == 0,
	              "after wait=1 on a 30 s job: %s", r->body);
	ck_assert_msg(elapsed >= 900, "wait=1 answered after %lld ms",
	              (long long)elapsed);
	assert_header(r, "Preference-Applied", "wait=1");
	jd_resp_free(r);
	free(id);
}
END_TEST

START_TEST(test_long_poll_bad_wait)
{
	char *id = submit_ok(d, "{\"type\":\"noop\"}");
	struct jd_resp *r = get_job(d, id, "?wait=abc", NULL);

	assert_problem(r, 400);
	jd_resp_free(r);
	r = get_job(d, id, "?wait=-1", NULL);
	assert_problem(r, 400);
	jd_resp_free(r);
	/* an unknown job is 404 at once, wait or not */
	int64_t t0 = jd_mono_ms();
	r = get_job(d, "01a2098a-e9dc-7716-9e1f-c1044eb93313", "?wait=5",
	            NULL);
	assert_problem(r, 404);
	ck_assert_int_lt(jd_mono_ms() - t0, 4500); /* it did not wait 5 s */
	jd_resp_free(r);
	free(id);
}
END_TEST

START_TEST(test_long_poll_finished)
{
	char *id = submit_ok(d, "{\"type\":\"echo\",\"payload\":{\"x\":1}}");
	const char *const prefer[] = {"Prefer: wait=10", NULL};
	struct jd_resp *r;
	int64_t t0;

	jd_resp_free(wait_status(d, id, "succeeded", 10000));
	t0 = jd_mono_ms();
	r = get_job(d, id, "?wait=10", NULL);
	ck_assert_msg(jd_mono_ms() - t0 < 9000, "a finished job's long-poll "
	              "waited (%lld ms)", (long long)(jd_mono_ms() - t0));
	assert_status(r, 200);
	ck_assert_str_eq(jd_resp_str(r, "status"), "succeeded");
	jd_resp_free(r);

	t0 = jd_mono_ms();
	r = get_job(d, id, NULL, prefer);
	ck_assert_int_lt(jd_mono_ms() - t0, 9000);
	assert_status(r, 200);
	ck_assert_str_eq(jd_resp_str(r, "status"), "succeeded");
	jd_resp_free(r);
	free(id);
}
END_TEST

START_TEST(test_long_poll_max_wait)
{
	jd *d1 = launch(2, "[server]\nmax_wait = 2s\n");
	const char *const prefer[] = {"Prefer: wait=30", NULL};
	char *id = submit_ok(d1, "{\"type\":\"sleep\",\"payload\":"
	                         "{\"seconds\":30}}");
	struct jd_resp *r;
	const char *pa;
	int64_t t0, elapsed;

	for (int i = 0; i < 2; i++) {
		t0 = jd_mono_ms();
		r = get_job(d1, id, i == 0 ? "?wait=30" : NULL,
		            i == 0 ? NULL : prefer);
		elapsed = jd_mono_ms() - t0;
		assert_status(r, 200);
		ck_assert_str_eq(jd_resp_str(r, "status"), "running");
		ck_assert_msg(elapsed >= 1800 && elapsed < 25000, "a wait of "
		              "30 s capped at max_wait = 2s answered after "
		              "%lld ms", (long long)elapsed);
		/* It waited 2 s, not 30: it may not claim otherwise. */
		pa = jd_header(r, "Preference-Applied");
		ck_assert_msg(pa == NULL || strcmp(pa, "wait=2") == 0,
		              "Preference-Applied: %s after a capped wait", pa);
		jd_resp_free(r);
	}
	free(id);
	jd_free(d1);
}
END_TEST

/* ---- 2. a thousand long-pollers ---- */

#define STORM_JOBS 100
#define STORM_WAITERS 1000
#define STORM_LEAD_MS 8000     /* submissions + connections fit in this */

static void
raise_nofile(rlim_t want)
{
	struct rlimit rl;

	ck_assert_int_eq(getrlimit(RLIMIT_NOFILE, &rl), 0);
	if (rl.rlim_cur >= want)
		return;
	if (rl.rlim_max != RLIM_INFINITY && rl.rlim_max < want)
		want = rl.rlim_max;
	rl.rlim_cur = want;
	ck_assert_msg(setrlimit(RLIMIT_NOFILE, &rl) == 0, "setrlimit: %s",
	              strerror(errno));
	ck_assert_msg(want >= STORM_WAITERS + 64, "RLIMIT_NOFILE hard limit "
	              "%llu is too small", (unsigned long long)rl.rlim_max);
}

START_TEST(test_thousand_waiters)
{
	static struct raw conns[STORM_WAITERS];
	static struct pollfd pfds[STORM_WAITERS];
	static int pidx[STORM_WAITERS];
	char *ids[STORM_JOBS];
	int64_t base, deadline, max_lat = -1, last_sample = 0;
	long threads0, rss0, threads_max, rss_max, threads_wait, rss_wait;
	int left = STORM_WAITERS;
	jd *d1;

	/* The daemon inherits the limit: raise it before the launch. */
	raise_nofile(8192);
	d1 = launch(2, "[server]\nper_ip_connections = 0\n"); /* all local */

	/* Sleep jobs of 0.1 s, due together STORM_LEAD_MS from now, then
	 * run two at a time: they end over about 5 s. */
	base = jd_now_ms() + STORM_LEAD_MS;
	for (int i = 0; i < STORM_JOBS; i++) {
		char body[160];
		double delay = (double)(base + (i % 20) * 10 - jd_now_ms())
		               / 1000.0;
		snprintf(body, sizeof(body), "{\"type\":\"sleep\",\"payload\":"
		         "{\"seconds\":0.1},\"delay\":%.3f}", delay);
		ids[i] = submit_ok(d1, body);
	}
	/* a long-poll that times out, to warm the path before measuring */
	jd_resp_free(get_job(d1, ids[0], "?wait=0.1", NULL));
	threads0 = jd_proc_status(d1->pid, "Threads:");
	rss0 = jd_proc_status(d1->pid, "VmRSS:");
	ck_assert_msg(threads0 > 0 && rss0 > 0, "cannot read /proc/%ld/status",
	              (long)d1->pid);
	threads_max = threads0;
	rss_max = rss0;

	for (int i = 0; i < STORM_WAITERS; i++)
		raw_get_wait(&conns[i], d1->port, ids[i % STORM_JOBS], 30);
	ck_assert_msg(wait_waiters(d1, STORM_WAITERS, 5000),
	              "the %d long-polls are not all waiting", STORM_WAITERS);
	ck_assert_msg(jd_now_ms() < base, "the jobs were due before the "
	              "waiters were in: the test's lead time is too short");
	threads_wait = jd_proc_status(d1->pid, "Threads:");
	rss_wait = jd_proc_status(d1->pid, "VmRSS:");
	threads_max = threads_wait > threads_max ? threads_wait : threads_max;
	rss_max = rss_wait > rss_max ? rss_wait : rss_max;

	deadline = jd_mono_ms() + STORM_LEAD_MS + 30000;
	while (left > 0 && jd_mono_ms() < deadline) {
		int n = 0;
		if (jd_mono_ms() - last_sample >= 50) {
			long t = jd_proc_status(d1->pid, "Threads:");
			long m = jd_proc_status(d1->pid, "VmRSS:");
			if (t > threads_max)
				threads_max = t;
			if (m > rss_max)
				rss_max = m;
			last_sample = jd_mono_ms();
		}
		for (int i = 0; i < STORM_WAITERS; i++)
			if (!conns[i].done) {
				pfds[n] = (struct pollfd){.fd = conns[i].fd,
				                          .events = POLLIN};
				pidx[n++] = i;
			}
		if (poll(pfds, (nfds_t)n, 50) <= 0)
			continue;
		for (int k = 0; k < n; k++)
			if (pfds[k].revents != 0 && raw_pump(&conns[pidx[k]]))
				left--;
	}
	ck_assert_msg(left == 0, "%d of %d long-polls were not answered",
	              left, STORM_WAITERS);

	for (int i = 0; i < STORM_WAITERS; i++) {
		struct raw *c = &conns[i];
		cJSON *o = raw_json(c);
		char *pa = raw_header(c, "Preference-Applied");
		const char *st = jd_str(o, "status");
		int64_t fin = jd_parse_time_ms(jd_str(o, "finished_at"));

		ck_assert_msg(raw_status(c) == 200 && o != NULL,
		              "waiter %d: %s", i, c->buf ? c->buf : "(nothing)");
		ck_assert_msg(jd_str(o, "id") != NULL &&
		              strcmp(jd_str(o, "id"), ids[i % STORM_JOBS]) == 0,
		              "waiter %d got another job: %s", i, c->buf);
		ck_assert_msg(st != NULL && strcmp(st, "succeeded") == 0,
		              "waiter %d answered before its job ended: %s", i,
		              c->buf);
		ck_assert_msg(fin >= 0 && c->at_real_ms >= fin - 10,
		              "waiter %d: answered before finished_at: %s", i,
		              c->buf);
		ck_assert_msg(pa != NULL && strcmp(pa, "wait=30") == 0,
		              "waiter %d: Preference-Applied %s", i,
		              pa ? pa : "(none)");
		if (c->at_real_ms - fin > max_lat)
			max_lat = c->at_real_ms - fin;
		free(pa);
		cJSON_Delete(o);
		raw_close(c);
	}
	printf("%d waiters, workers.threads = 2: daemon threads %ld before, "
	       "%ld with all waiting, %ld at most until all were answered; "
	       "RSS %ld kB before, %ld kB with all waiting (+%ld kB), %ld kB "
	       "at most until all were answered (+%ld kB); slowest answer "
	       "%lld ms after finished_at\n", STORM_WAITERS, threads0,
	       threads_wait, threads_max, rss0, rss_wait, rss_wait - rss0,
	       rss_max, rss_max - rss0, (long long)max_lat);
	fflush(stdout);
	/* No thread per waiter: the count may not grow with them. */
	ck_assert_msg(threads_max <= threads0 + 2, "threads grew from %ld to "
	              "%ld with %d waiters", threads0, threads_max,
	              STORM_WAITERS);
	/* Under sanitizers memory is not the daemon's own (shadow memory,
	 * quarantine): the figure is printed above, not judged. */
	const char *san = getenv("JOBD_SANITIZE");
	if (san == NULL || *san == '\0')
		ck_assert_msg(rss_max - rss0 < 20 * 1024, "RSS grew by %ld kB "
		              "with %d waiters (limit 20 MB; +%ld kB while they "
		              "all waited)", rss_max - rss0, STORM_WAITERS,
		              rss_wait - rss0);
	ck_assert(wait_waiters(d1, 0, 5000));
	for (int i = 0; i < STORM_JOBS; i++)
		free(ids[i]);
	jd_free(d1);
}
END_TEST

/* ---- 3. synchronous submit ---- */

START_TEST(test_sync_submit_short)
{
	const char *const h[] = {"Content-Type: application/json",
	                         "Prefer: wait=5", NULL};
	struct jd_resp *r = request(d, "POST", "/jobs", h,
	                            "{\"type\":\"echo\",\"payload\":"
	                            "{\"hello\":[1,2,3]}}");
	cJSON *o = jd_json(r), *res;
	char loc[64];

	assert_status(r, 200);
	ck_assert_msg(cJSON_IsObject(o), "body: %s", r->body);
	ck_assert_str_eq(jd_str(o, "status"), "succeeded");
	res = cJSON_GetObjectItemCaseSensitive(o, "result");
	ck_assert_msg(cJSON_IsObject(res) &&
	              cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(
	                  res, "hello")) == 3, "result: %s", r->body);
	ck_assert_ptr_nonnull(jd_str(o, "finished_at"));
	assert_header(r, "Preference-Applied", "wait=5");
	snprintf(loc, sizeof(loc), "/jobs/%s", jd_str(o, "id"));
	assert_header(r, "Location", loc);
	jd_resp_free(r);
}
END_TEST

START_TEST(test_sync_submit_long)
{
	const char *const h[] = {"Content-Type: application/json",
	                         "Prefer: wait=1", NULL};
	int64_t t0 = jd_mono_ms(), elapsed;
	struct jd_resp *r = request(d, "POST", "/jobs", h,
	                            "{\"type\":\"sleep\",\"payload\":"
	                            "{\"seconds\":5}}");
	cJSON *o = jd_json(r);
	const char *id, *st;
	char loc[64];

	elapsed = jd_mono_ms() - t0;
	assert_status(r, 202);
	ck_assert_msg(elapsed >= 900, "Prefer: wait=1 on a 5 s job answered "
	              "after %lld ms", (long long)elapsed);
	/* exactly as an asynchronous submit */
	id = jd_str(o, "id");
	st = jd_str(o, "status");
	ck_assert_msg(id != NULL && st != NULL && jd_str(o, "href") != NULL,
	              "body: %s", r->body);
	ck_assert_msg(strcmp(st, "running") == 0 || strcmp(st, "queued") == 0,
	              "status %s", st);
	snprintf(loc, sizeof(loc), "/jobs/%s", id);
	assert_header(r, "Location", loc);
	assert_header(r, "Retry-After", "1");
	/* answered, so nobody is left to disconnect: the job runs on */
	jd_resp_free(wait_status(d, id, "succeeded", 10000));
	jd_resp_free(r);
}
END_TEST

START_TEST(test_respond_async)
{
	const char *const h[] = {"Content-Type: application/json",
	                         "Prefer: respond-async", NULL};
	struct jd_resp *r = request(d, "POST", "/jobs", h,
	                            "{\"type\":\"sleep\",\"payload\":"
	                            "{\"seconds\":5}}");
	const char *st;

	assert_status(r, 202);
	/* answered before the 5 s job could end */
	st = jd_resp_str(r, "status");
	ck_assert_msg(st != NULL && (strcmp(st, "queued") == 0 ||
	                             strcmp(st, "running") == 0),
	              "body: %s", r->body);
	ck_assert_ptr_nonnull(jd_header(r, "Location"));
	assert_header(r, "Preference-Applied", "respond-async");
	jd_resp_free(r);
}
END_TEST

/* ---- 4. cancel on disconnect ---- */

START_TEST(test_disconnect_cancels)
{
	struct raw c;
	char *id;
	int64_t t0 = jd_mono_ms(), ms;

	raw_post(&c, d->port, "wait=15", "{\"type\":\"sleep\",\"payload\":"
	         "{\"seconds\":30}}");
	/* the client gives up once it is really waiting */
	ck_assert(wait_waiters(d, 1, 10000));
	ck_assert_msg(!raw_pump(&c), "answered before the job ended: %s",
	              c.buf);
	id = newest_job(d, "sleep");
	raw_close(&c);
	/* cancelled, not succeeded: the job would sleep 30 s */
	ms = ms_until_status(d, id, "cancelled", 25000);
	printf("disconnect: the sleep job was cancelled %lld ms after the "
	       "close (%lld ms after the POST)\n", (long long)ms,
	       (long long)(jd_mono_ms() - t0));
	ck_assert_msg(ms >= 0, "the job was not cancelled after its client "
	              "went away");
	free(id);
}
END_TEST

START_TEST(test_disconnect_kills_exec)
{
	char dir[300], extra[2048], pidfile[340], buf[32] = "";
	struct raw c;
	char *id;
	int64_t t0, ms, deadline;
	pid_t pid = 0;
	jd *d1;

	snprintf(dir, sizeof(dir), "%s/wait-XXXXXX",
	         getenv("JOBD_ITEST_ROOT"));
	ck_assert_ptr_nonnull(mkdtemp(dir));
	snprintf(pidfile, sizeof(pidfile), "%s/pid", dir);
	/* The environment is cleared: absolute paths only. */
	snprintf(extra, sizeof(extra),
	         "[handler.pidsleep]\n"
	         "command = /bin/sh -c \"echo $$ > %s.tmp && "
	         "/bin/mv %s.tmp %s && exec /bin/sleep 30\"\n"
	         "kill_grace = 1s\n", pidfile, pidfile, pidfile);
	d1 = launch(2, extra);

	t0 = jd_mono_ms();
	raw_post(&c, d1->port, "wait=15", "{\"type\":\"pidsleep\"}");
	/* the command has started when its pid file appears */
	deadline = t0 + 5000;
	for (;;) {
		FILE *f = fopen(pidfile, "re");
		if (f != NULL) {
			if (fgets(buf, sizeof(buf), f) != NULL)
				pid = (pid_t)atol(buf);
			fclose(f);
			break;
		}
		ck_assert_msg(jd_mono_ms() < deadline, "the exec job did not "
		              "start within 5 s");
		jd_pause_ms(10);
	}
	ck_assert_msg(pid > 1 && kill(pid, 0) == 0, "no process %s", buf);
	ck_assert(wait_waiters(d1, 1, 10000));
	ck_assert(!raw_pump(&c));
	id = newest_job(d1, "pidsleep");
	raw_close(&c);

	t0 = jd_mono_ms();
	ms = ms_until_status(d1, id, "cancelled", 25000);
	ck_assert_msg(ms >= 0, "the exec job was not cancelled after its "
	              "client went away");
	/* the command ran in its own process group, led by pid */
	while (kill(-pid, 0) == 0 && jd_mono_ms() - t0 < 20000)
		jd_pause_ms(10);
	ck_assert_msg(kill(-pid, 0) != 0 && errno == ESRCH, "process group "
	              "%ld is still there %lld ms after the close", (long)pid,
	              (long long)(jd_mono_ms() - t0));
	ck_assert_msg(kill(pid, 0) != 0 && errno == ESRCH, "process %ld is "
	              "still there", (long)pid);
	printf("disconnect: the exec job was cancelled %lld ms after the "
	       "close, its process group gone\n", (long long)ms);
	free(id);
	jd_free(d1);
}
END_TEST

START_TEST(test_disconnect_keep_running)
{
	struct raw c;
	char *id;

	char *st;

	raw_post(&c, d->port, "wait=15", "{\"type\":\"sleep\",\"payload\":"
	         "{\"seconds\":3},\"cancel_on_disconnect\":false}");
	ck_assert(wait_waiters(d, 1, 10000));
	ck_assert(!raw_pump(&c));
	id = newest_job(d, "sleep");
	raw_close(&c);
	/* The daemon saw the client go while the job still ran ... */
	ck_assert(wait_waiters(d, 0, 10000));
	st = job_status(d, id);
	ck_assert_msg(strcmp(st, "running") == 0, "the job was %s when its "
	              "client had gone; the test needs it running", st);
	free(st);
	/* ... and the job ran to its end (a cancel would end it cancelled,
	 * and this would never see succeeded). */
	jd_resp_free(wait_status(d, id, "succeeded", 20000));
	free(id);
}
END_TEST

START_TEST(test_disconnect_get_cancels_nothing)
{
	char *id = submit_ok(d, "{\"type\":\"sleep\",\"payload\":"
	                        "{\"seconds\":3}}");
	struct raw c;
	char *st;

	jd_resp_free(wait_status(d, id, "running", 10000));
	raw_get_wait(&c, d->port, id, 15);
	ck_assert(wait_waiters(d, 1, 10000));
	ck_assert(!raw_pump(&c));
	raw_close(&c);
	/* the waiter goes while the job runs ... */
	ck_assert(wait_waiters(d, 0, 10000));
	st = job_status(d, id);
	ck_assert_msg(strcmp(st, "running") == 0, "the job was %s when its "
	              "waiter had gone; the test needs it running", st);
	free(st);
	/* ... and the job stays: it runs to its end */
	jd_resp_free(wait_status(d, id, "succeeded", 20000));
	free(id);
}
END_TEST

/* ---- 5. idempotency keys ---- */

static struct jd_resp *
post_keyed(jd_client *c, const char *key, const char *body)
{
	char hdr[400];
	const char *const h[] = {"Content-Type: application/json", hdr, NULL};
	struct jd_resp *r;

	snprintf(hdr, sizeof(hdr), "Idempotency-Key: %s", key);
	r = jd_client_request(c, "POST", "/jobs", h, body);
	ck_assert_ptr_nonnull(r);
	return r;
}

static long long
count_key(jd *dd, const char *key)
{
	char *lit = jd_sql_literal(key), *sql = NULL;
	long long n;

	ck_assert_ptr_nonnull(lit);
	ck_assert(asprintf(&sql, "SELECT count(*) FROM jobs WHERE idem_key = "
	                   "%s", lit) > 0);
	n = jd_sql_int(dd, sql);
	free(sql);
	free(lit);
	return n;
}

START_TEST(test_idempotent_replay)
{
	const char *body = "{\"type\":\"echo\",\"payload\":{\"a\":1,\"b\":"
	                   "[1,2]},\"priority\":5}";
	struct jd_resp *r1, *r2;
	char *id;

	r1 = post_keyed(d->client, "order-1234", body);
	assert_status(r1, 202);
	ck_assert_ptr_null(jd_header(r1, "Idempotent-Replayed"));
	id = strdup(jd_resp_str(r1, "id"));

	r2 = post_keyed(d->client, "order-1234", body);
	assert_status(r2, 202);
	ck_assert_str_eq(jd_resp_str(r2, "id"), id);
	assert_header(r2, "Idempotent-Replayed", "true");
	assert_header(r2, "Location", jd_header(r1, "Location"));
	jd_resp_free(r2);

	/* once the job has finished, still the same job */
	jd_resp_free(wait_status(d, id, "succeeded", 10000));
	r2 = post_keyed(d->client, "order-1234", body);
	assert_status(r2, 202);
	ck_assert_str_eq(jd_resp_str(r2, "id"), id);
	assert_header(r2, "Idempotent-Replayed", "true");
	jd_resp_free(r2);

	ck_assert_int_eq(count_key(d, "order-1234"), 1);
	jd_resp_free(r1);
	free(id);
}
END_TEST

START_TEST(test_idempotent_canonical)
{
	const char *body = "{\"type\":\"echo\",\"payload\":{\"a\":1,\"b\":"
	                   "[1,2]},\"priority\":5}";
	/* the same members in another order, other whitespace */
	const char *reordered = " {\n \"priority\" : 5,\t\"payload\" : "
	                        "{ \"a\" : 1 , \"b\" : [ 1 , 2 ] } , "
	                        "\"type\":\"echo\" }\n";
	/* ... and the payload's own members reordered too */
	const char *nested = "{\"priority\":5,\"payload\":{\"b\":[1,2],"
	                     "\"a\":1},\"type\":\"echo\"}";
	struct jd_resp *r1, *r2;

	r1 = post_keyed(d->client, "canon-1", body);
	assert_status(r1, 202);
	r2 = post_keyed(d->client, "canon-1", reordered);
	assert_status(r2, 202);
	ck_assert_str_eq(jd_resp_str(r2, "id"), jd_resp_str(r1, "id"));
	assert_header(r2, "Idempotent-Replayed", "true");
	jd_resp_free(r2);
	r2 = post_keyed(d->client, "canon-1", nested);
	assert_status(r2, 202);
	ck_assert_str_eq(jd_resp_str(r2, "id"), jd_resp_str(r1, "id"));
	assert_header(r2, "Idempotent-Replayed", "true");
	jd_resp_free(r2);
	ck_assert_int_eq(count_key(d, "canon-1"), 1);
	jd_resp_free(r1);
}
END_TEST

START_TEST(test_idempotent_conflict)
{
	struct jd_resp *r1, *r2;

	r1 = post_keyed(d->client, "conflict-1",
	                "{\"type\":\"echo\",\"payload\":{\"a\":1}}");
	assert_status(r1, 202);
	r2 = post_keyed(d->client, "conflict-1",
	                "{\"type\":\"echo\",\"payload\":{\"a\":2}}");
	assert_problem(r2, 409);
	ck_assert_ptr_null(jd_header(r2, "Idempotent-Replayed"));
	jd_resp_free(r2);
	/* another type is another submission too */
	r2 = post_keyed(d->client, "conflict-1",
	                "{\"type\":\"noop\",\"payload\":{\"a\":1}}");
	assert_problem(r2, 409);
	jd_resp_free(r2);
	ck_assert_int_eq(count_key(d, "conflict-1"), 1);
	jd_resp_free(r1);
}
END_TEST

START_TEST(test_idempotent_key_length)
{
	char key[300];
	struct jd_resp *r;

	memset(key, 'k', 256);
	key[256] = '\0';
	r = post_keyed(d->client, key, "{\"type\":\"noop\"}");
	assert_problem(r, 400);
	jd_resp_free(r);
	ck_assert_int_eq(count_key(d, key), 0);
	key[255] = '\0'; /* 255 is the longest allowed */
	r = post_keyed(d->client, key, "{\"type\":\"noop\"}");
	assert_status(r, 202);
	jd_resp_free(r);
	ck_assert_int_eq(count_key(d, key), 1);
}
END_TEST

#define RACERS 32

struct racer {
	pthread_barrier_t *barrier;
	int port;
	long status;
	bool replayed;
	char id[64];
	char body[512];
};

static void *
race_submit(void *arg)
{
	struct racer *rc = arg;
	const char *const h[] = {"Content-Type: application/json",
	                         "Idempotency-Key: race-key-1", NULL};
	const char *body = "{\"type\":\"sleep\",\"payload\":{\"seconds\":0.2}}";
	jd_client *c = jd_client_new(rc->port);
	struct jd_resp *r;

	if (c == NULL)
		return NULL;
	/* connect first, so that the requests leave together */
	jd_resp_free(jd_client_request(c, "GET", "/healthz", NULL, NULL));
	pthread_barrier_wait(rc->barrier);
	r = jd_client_request(c, "POST", "/jobs", h, body);
	if (r != NULL) {
		const char *id = jd_resp_str(r, "id");
		const char *rp = jd_header(r, "Idempotent-Replayed");
		rc->status = r->status;
		rc->replayed = rp != NULL && strcmp(rp, "true") == 0;
		snprintf(rc->id, sizeof(rc->id), "%s", id ? id : "");
		snprintf(rc->body, sizeof(rc->body), "%s%s", r->body, r->error);
	}
	jd_resp_free(r);
	jd_client_free(c);
	return NULL;
}

START_TEST(test_idempotent_race)
{
	static struct racer racers[RACERS];
	pthread_t th[RACERS];
	pthread_barrier_t barrier;
	int replayed = 0;

	pthread_barrier_init(&barrier, NULL, RACERS);
	for (int i = 0; i < RACERS; i++) {
		racers[i] = (struct racer){.barrier = &barrier, .port = d->port};
		ck_assert_int_eq(pthread_create(&th[i], NULL, race_submit,
		                                &racers[i]), 0);
	}
	for (int i = 0; i < RACERS; i++)
		pthread_join(th[i], NULL);
	pthread_barrier_destroy(&barrier);

	for (int i = 0; i < RACERS; i++) {
		ck_assert_msg(racers[i].status == 202, "racer %d: %ld %s", i,
		              racers[i].status, racers[i].body);
		ck_assert_msg(strcmp(racers[i].id, racers[0].id) == 0,
		              "racer %d got job %s, racer 0 job %s", i,
		              racers[i].id, racers[0].id);
		replayed += racers[i].replayed;
	}
	ck_assert_int_eq(count_key(d, "race-key-1"), 1);
	ck_assert_msg(replayed == RACERS - 1, "%d of %d answers say "
	              "Idempotent-Replayed (expected all but the first)",
	              replayed, RACERS);
}
END_TEST

/* ---- 6. the waiter limit ---- */

START_TEST(test_max_waiters)
{
	jd *d1 = launch(2, "[server]\nmax_waiters = 2\n");
	const char *const prefer[] = {"Content-Type: application/json",
	                              "Prefer: wait=20", NULL};
	char *id = submit_ok(d1, "{\"type\":\"sleep\",\"payload\":"
	                         "{\"seconds\":30}}");
	struct raw w[2];
	struct jd_resp *rg, *rp, *r;
	const char *pa, *post_id;
	char path[64];
	int64_t t0;

	jd_resp_free(wait_status(d1, id, "running", 10000));
	raw_get_wait(&w[0], d1->port, id, 20);
	raw_get_wait(&w[1], d1->port, id, 20);
	ck_assert(wait_waiters(d1, 2, 5000));

	/* a third long-poll: its answer at once, the current state */
	t0 = jd_mono_ms();
	rg = get_job(d1, id, "?wait=20", NULL);
	ck_assert_msg(jd_mono_ms() - t0 < 15000, "the waiter over the limit "
	              "waited %lld ms", (long long)(jd_mono_ms() - t0));
	assert_status(rg, 200);
	ck_assert_str_eq(jd_resp_str(rg, "status"), "running");

	/* a synchronous submit over the limit: the usual 202 at once */
	t0 = jd_mono_ms();
	rp = request(d1, "POST", "/jobs", prefer, "{\"type\":\"sleep\","
	             "\"payload\":{\"seconds\":30}}");
	ck_assert_msg(jd_mono_ms() - t0 < 15000, "the submit over the limit "
	              "waited %lld ms", (long long)(jd_mono_ms() - t0));
	assert_status(rp, 202);
	post_id = jd_resp_str(rp, "id");
	ck_assert_ptr_nonnull(post_id);
	ck_assert_ptr_nonnull(jd_header(rp, "Location"));
	ck_assert_int_eq(metric_waiters(d1), 2);

	/* the two still wait, and get the end */
	snprintf(path, sizeof(path), "/jobs/%s", id);
	r = request(d1, "DELETE", path, NULL, NULL);
	ck_assert_msg(r->status == 202 || r->status == 200, "DELETE: %ld %s",
	              r->status, r->body);
	jd_resp_free(r);
	for (int i = 0; i < 2; i++) {
		cJSON *o;
		ck_assert_msg(raw_wait(&w[i], 10000), "waiter %d: no answer",
		              i);
		o = raw_json(&w[i]);
		ck_assert_msg(raw_status(&w[i]) == 200 &&
		              strcmp(jd_str(o, "status"), "cancelled") == 0,
		              "waiter %d: %s", i, w[i].buf);
		cJSON_Delete(o);
		raw_close(&w[i]);
	}

	/* Neither answer over the limit waited: neither may say it did
	 * ("Preference-Applied: wait=N when honoured"). */
	pa = jd_header(rg, "Preference-Applied");
	ck_assert_msg(pa == NULL || strcmp(pa, "wait=20") != 0,
	              "GET ?wait=20 over max_waiters answered at once with "
	              "Preference-Applied: %s", pa);
	pa = jd_header(rp, "Preference-Applied");
	ck_assert_msg(pa == NULL || strcmp(pa, "wait=20") != 0,
	              "POST with Prefer: wait=20 over max_waiters answered "
	              "202 at once with Preference-Applied: %s", pa);
	jd_resp_free(rp);
	jd_resp_free(rg);
	free(id);
	jd_free(d1);
}
END_TEST

/* ---- 7. shutdown answers waiters ---- */

START_TEST(test_shutdown_answers_waiters)
{
	jd *d1 = launch(2, "[workers]\nshutdown_grace = 2s\n");
	char *id = submit_ok(d1, "{\"type\":\"sleep\",\"payload\":"
	                         "{\"seconds\":30}}");
	char *loc, *post_id;
	struct raw g, p;
	cJSON *o;
	int rc;

	jd_resp_free(wait_status(d1, id, "running", 10000));
	raw_get_wait(&g, d1->port, id, 20);
	raw_post(&p, d1->port, "wait=20", "{\"type\":\"sleep\",\"payload\":"
	         "{\"seconds\":30}}");
	ck_assert(wait_waiters(d1, 2, 5000));
	post_id = newest_job(d1, "sleep");
	ck_assert_str_ne(post_id, id);

	kill(d1->pid, SIGTERM);
	ck_assert_msg(raw_wait(&g, 10000) && raw_status(&g) == 200,
	              "the long-poll got no answer at shutdown: %s",
	              g.buf ? g.buf : "(nothing)");
	o = raw_json(&g);
	ck_assert_msg(o != NULL && (strcmp(jd_str(o, "status"), "running") == 0
	              || strcmp(jd_str(o, "status"), "queued") == 0),
	              "at shutdown: %s", g.buf);
	cJSON_Delete(o);

	/* the synchronous submit is answered like an asynchronous one */
	ck_assert_msg(raw_wait(&p, 10000) && raw_status(&p) == 202,
	              "the waiting POST got no 202 at shutdown: %s",
	              p.buf ? p.buf : "(nothing)");
	loc = raw_header(&p, "Location");
	ck_assert_ptr_nonnull(loc);
	ck_assert_msg(strstr(loc, post_id) != NULL, "Location %s", loc);
	free(loc);

	rc = jd_stop(d1, 30000);
	ck_assert_msg(rc == 0, "jobd exited with %d", rc);
	raw_close(&g);
	raw_close(&p);

	/* being answered at shutdown is not a disconnect: nothing was
	 * cancelled, both jobs are back in the queue */
	ck_assert_int_eq(jd_start(d1), 0);
	for (int i = 0; i < 2; i++) {
		char *s = job_status(d1, i == 0 ? id : post_id);
		ck_assert_msg(strcmp(s, "queued") == 0 ||
		              strcmp(s, "running") == 0, "job %s is %s after "
		              "the restart", i == 0 ? id : post_id, s);
		free(s);
	}
	free(post_id);
	free(id);
	jd_free(d1);
}
END_TEST

static Suite *
wait_suite(void)
{
	Suite *s = suite_create("wait");
	TCase *tc = tcase_create("wait");
	TCase *own = tcase_create("own-daemon");
	TCase *storm = tcase_create("storm");

	tcase_set_timeout(tc, 60);
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_long_poll_query);
	tcase_add_test(tc, test_long_poll_prefer);
	tcase_add_test(tc, test_long_poll_times_out);
	tcase_add_test(tc, test_long_poll_bad_wait);
	tcase_add_test(tc, test_long_poll_finished);
	tcase_add_test(tc, test_sync_submit_short);
	tcase_add_test(tc, test_sync_submit_long);
	tcase_add_test(tc, test_respond_async);
	tcase_add_test(tc, test_disconnect_cancels);
	tcase_add_test(tc, test_disconnect_keep_running);
	tcase_add_test(tc, test_disconnect_get_cancels_nothing);
	tcase_add_test(tc, test_idempotent_replay);
	tcase_add_test(tc, test_idempotent_canonical);
	tcase_add_test(tc, test_idempotent_conflict);
	tcase_add_test(tc, test_idempotent_key_length);
	tcase_add_test(tc, test_idempotent_race);
	suite_add_tcase(s, tc);

	tcase_set_timeout(own, 90);
	tcase_add_test(own, test_long_poll_max_wait);
	tcase_add_test(own, test_disconnect_kills_exec);
	tcase_add_test(own, test_max_waiters);
	tcase_add_test(own, test_shutdown_answers_waiters);
	suite_add_tcase(s, own);

	tcase_set_timeout(storm, 120);
	tcase_add_test(storm, test_thousand_waiters);
	suite_add_tcase(s, storm);
	return s;
}

int
main(void)
{
	return run_suite(wait_suite());
}
