/*
 * test_sse.c - GET /events against the real daemon (DESIGN §2, README
 * "Events"): the order and ids of a job's events, the filters, ?job= ending
 * its stream, Last-Event-ID resume and reset past the ring, hostile
 * Last-Event-ID values, pings, the max_waiters bound, the end at shutdown,
 * a reader too slow for the ring, and (PostgreSQL) a job finished on
 * another node.
 *
 * Streams are raw sockets speaking HTTP/1.0 (the body is the event stream
 * as sent, no chunk framing, and the end of the stream closes the
 * connection); one test reads a stream over HTTP/1.1 to check the chunked
 * framing.  Every wait is on a condition with a generous limit.
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
#include <sys/socket.h>
#include <unistd.h>

#include "checks.h"
#include "harness.h"

#define LIMIT_MS 20000

/* ---- a raw event-stream client ---- */

struct stream {
	int fd;
	char *buf;
	size_t len, cap;
	size_t body;       /* where the body starts, 0 before the header */
	size_t pos;        /* parsed up to here */
	int status;
	bool closed;
};

struct event {
	char kind[32];     /* "job", "progress", "reset"; ":" a comment */
	char id[64];       /* "" none */
	char data[8192];
};

static void
stream_fill(struct stream *s, int timeout_ms)
{
	struct pollfd p = {.fd = s->fd, .events = POLLIN};
	ssize_t n;

	if (s->closed || poll(&p, 1, timeout_ms) <= 0)
		return;
	if (s->len + 65536 + 1 > s->cap) {
		s->cap = s->cap ? s->cap * 2 : 131072;
		s->buf = realloc(s->buf, s->cap);
		ck_assert_ptr_nonnull(s->buf);
	}
	n = recv(s->fd, s->buf + s->len, 65536, 0);
	if (n <= 0) {
		if (n == 0 || (errno != EAGAIN && errno != EINTR))
			s->closed = true;
		return;
	}
	s->len += (size_t)n;
	s->buf[s->len] = '\0';
}

/* Connects (rcvbuf > 0: that SO_RCVBUF) and sends req. */
static void
stream_connect(struct stream *s, int port, const char *req, int rcvbuf)
{
	struct sockaddr_in sa = {.sin_family = AF_INET};
	size_t len = strlen(req), sent = 0;

	memset(s, 0, sizeof(*s));
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	sa.sin_port = htons((uint16_t)port);
	s->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	ck_assert_msg(s->fd >= 0, "socket: %s", strerror(errno));
	if (rcvbuf > 0)
		setsockopt(s->fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf,
		           sizeof(rcvbuf));
	ck_assert_msg(connect(s->fd, (struct sockaddr *)&sa, sizeof(sa)) == 0,
	              "connect: %s", strerror(errno));
	while (sent < len) {
		ssize_t n = send(s->fd, req + sent, len - sent, MSG_NOSIGNAL);
		ck_assert_msg(n > 0, "send: %s", strerror(errno));
		sent += (size_t)n;
	}
	fcntl(s->fd, F_SETFL, fcntl(s->fd, F_GETFL) | O_NONBLOCK);
}

/* Waits for the answer's header; returns its status. */
static int
stream_header(struct stream *s)
{
	int64_t end = jd_mono_ms() + LIMIT_MS;
	char *h;

	while ((h = s->buf ? strstr(s->buf, "\r\n\r\n") : NULL) == NULL &&
	       !s->closed && jd_mono_ms() < end)
		stream_fill(s, 200);
	ck_assert_msg(h != NULL, "no answer header: %.200s",
	              s->buf ? s->buf : "");
	s->body = s->pos = (size_t)(h + 4 - s->buf);
	ck_assert_msg(sscanf(s->buf, "HTTP/1.%*d %d", &s->status) == 1,
	              "not an HTTP answer: %.100s", s->buf);
	return s->status;
}

/* GET path over HTTP/1.0 with extra header lines ("" none); returns the
 * status. */
static int
stream_open(struct stream *s, jd *d, const char *path, const char *hdrs)
{
	char req[16384];

	snprintf(req, sizeof(req), "GET %s HTTP/1.0\r\n%s\r\n", path,
	         hdrs ? hdrs : "");
	stream_connect(s, d->port, req, 0);
	return stream_header(s);
}

static void
stream_close(struct stream *s)
{
	if (s->fd >= 0)
		close(s->fd);
	s->fd = -1;
	free(s->buf);
	s->buf = NULL;
}

/*
 * The next block of the stream (an event or a comment) within
 * timeout_ms: 1, 0 (timeout), -1 (the stream ended).
 */
static int
stream_block(struct stream *s, struct event *e, int timeout_ms)
{
	int64_t end = jd_mono_ms() + timeout_ms;
	char *b, *stop;

	for (;;) {
		b = s->buf + s->pos;
		stop = s->len > s->pos ? strstr(b, "\n\n") : NULL;
		if (stop != NULL)
			break;
		if (s->closed)
			return -1;
		if (jd_mono_ms() >= end)
			return 0;
		stream_fill(s, 100);
	}
	memset(e, 0, sizeof(*e));
	s->pos = (size_t)(stop + 2 - s->buf);
	for (char *line = b; line < stop;) {
		char *nl = memchr(line, '\n', (size_t)(stop - line));
		size_t n = (size_t)((nl ? nl : stop) - line);
		if (n > 0 && line[0] == ':')
			snprintf(e->kind, sizeof(e->kind), ":");
		else if (n > 7 && strncmp(line, "event: ", 7) == 0)
			snprintf(e->kind, sizeof(e->kind), "%.*s", (int)n - 7,
			         line + 7);
		else if (n > 4 && strncmp(line, "id: ", 4) == 0)
			snprintf(e->id, sizeof(e->id), "%.*s", (int)n - 4,
			         line + 4);
		else if (n > 6 && strncmp(line, "data: ", 6) == 0)
			snprintf(e->data, sizeof(e->data), "%.*s", (int)n - 6,
			         line + 6);
		line = nl ? nl + 1 : stop;
	}
	return 1;
}

/* The next event, comments skipped. */
static int
stream_event(struct stream *s, struct event *e, int timeout_ms)
{
	int64_t end = jd_mono_ms() + timeout_ms;
	int rc;

	do {
		int left = (int)(end - jd_mono_ms());
		rc = stream_block(s, e, left > 0 ? left : 0);
	} while (rc == 1 && strcmp(e->kind, ":") == 0);
	return rc;
}

/* The next event, which must come; fails the test otherwise. */
static void
expect_event(struct stream *s, struct event *e)
{
	int rc = stream_event(s, e, LIMIT_MS);

	ck_assert_msg(rc == 1, "no event (%s); the stream so far: %.2000s",
	              rc < 0 ? "the stream ended" : "timed out",
	              s->buf + s->body);
}

static const char *
ev_field(const struct event *e, const char *field, char *out, size_t len)
{
	cJSON *o = cJSON_Parse(e->data);
	const cJSON *f = cJSON_GetObjectItemCaseSensitive(o, field);

	ck_assert_msg(o != NULL, "data is not JSON: %s", e->data);
	if (cJSON_IsString(f))
		snprintf(out, len, "%s", f->valuestring);
	else if (cJSON_IsNumber(f))
		snprintf(out, len, "%lld", (long long)f->valuedouble);
	else
		snprintf(out, len, "(none)");
	cJSON_Delete(o);
	return out;
}

/* Expects "event: job" for job id with status (and attempt >= 0). */
static unsigned long long
expect_job(struct stream *s, const char *id, const char *status,
           int attempt)
{
	struct event e;
	char v[128];

	expect_event(s, &e);
	ck_assert_msg(strcmp(e.kind, "job") == 0, "event %s, expected job "
	              "(%s)", e.kind, e.data);
	ck_assert_str_eq(ev_field(&e, "id", v, sizeof(v)), id);
	ck_assert_msg(strcmp(ev_field(&e, "status", v, sizeof(v)), status)
	              == 0, "status %s, expected %s: %s", v, status, e.data);
	if (attempt >= 0)
		ck_assert_int_eq(atoi(ev_field(&e, "attempt", v, sizeof(v))),
		                 attempt);
	ck_assert_msg(e.id[0] != '\0', "no id: %s", e.data);
	return strtoull(e.id, NULL, 10);
}

/* Waits until jobd counts n waiters (streams included). */
static void
expect_waiters(jd *d, int n)
{
	ck_assert_msg(jd_wait_metric(d, "jobd_waiters", (double)n, LIMIT_MS),
	              "jobd_waiters did not become %d", n);
}

/* ---- tests ---- */

/* A job's events in order, ids one apart, with type and attempt. */
START_TEST(test_order)
{
	jd *d = launch(2, NULL);
	struct stream s;
	unsigned long long a, b, c;
	char *id;

	ck_assert_int_eq(stream_open(&s, d, "/events", NULL), 200);
	ck_assert_msg(strstr(s.buf, "Content-Type: text/event-stream") != NULL,
	              "%.300s", s.buf);
	expect_waiters(d, 1);
	id = submit_ok(d, "{\"type\":\"noop\"}");
	a = expect_job(&s, id, "queued", 0);
	b = expect_job(&s, id, "running", 1);
	c = expect_job(&s, id, "succeeded", 1);
	ck_assert_msg(b == a + 1 && c == b + 1, "ids %llu %llu %llu", a, b, c);
	stream_close(&s);
	free(id);
	jd_free(d);
}
END_TEST

/* ?type= sees its type only; ?job= ends after that job's final state;
 * a final job's stream is that one event; bad filters are refused. */
START_TEST(test_filters)
{
	jd *d = launch(2, NULL);
	struct stream t, j, f;
	struct event e;
	char path[128], *sl, *no, *done;
	struct jd_resp *r;

	done = submit_ok(d, "{\"type\":\"noop\"}");
	jd_resp_free(wait_status(d, done, "succeeded", LIMIT_MS));
	sl = submit_ok(d, "{\"type\":\"sleep\",\"payload\":{\"seconds\":30}}");
	jd_resp_free(wait_status(d, sl, "running", LIMIT_MS));
	ck_assert_int_eq(stream_open(&t, d, "/events?type=sleep", NULL), 200);
	snprintf(path, sizeof(path), "/events?job=%s", sl);
	ck_assert_int_eq(stream_open(&j, d, path, NULL), 200);
	expect_waiters(d, 2);

	no = submit_ok(d, "{\"type\":\"noop\"}");
	jd_resp_free(wait_status(d, no, "succeeded", LIMIT_MS));
	snprintf(path, sizeof(path), "/jobs/%s", sl);
	r = jd_request(d, "DELETE", path, NULL, NULL);
	ck_assert_ptr_nonnull(r);
	jd_resp_free(r);
	/* the noop's three events went by: the type stream saw only this */
	expect_job(&t, sl, "cancelled", 1);
	expect_job(&j, sl, "cancelled", 1);
	ck_assert_int_eq(stream_event(&j, &e, LIMIT_MS), -1);
	stream_close(&j);

	/* a job already final: that one event, then the end */
	snprintf(path, sizeof(path), "/events?job=%s", done);
	ck_assert_int_eq(stream_open(&f, d, path, NULL), 200);
	expect_event(&f, &e);
	ck_assert_str_eq(e.kind, "job");
	ck_assert_msg(strstr(e.data, "\"succeeded\"") != NULL, "%s", e.data);
	ck_assert_int_eq(stream_event(&f, &e, LIMIT_MS), -1);
	stream_close(&f);

	/* an upper-case id is the same job */
	for (char *p = done; *p; p++)
		if (*p >= 'a' && *p <= 'f')
			*p = (char)(*p - 'a' + 'A');
	snprintf(path, sizeof(path), "/events?job=%s", done);
	ck_assert_int_eq(stream_open(&f, d, path, NULL), 200);
	expect_event(&f, &e);
	ck_assert_int_eq(stream_event(&f, &e, LIMIT_MS), -1);
	stream_close(&f);

	r = jd_request(d, "GET", "/events?job=00000000-0000-4000-8000-"
	               "000000000000", NULL, NULL);
	assert_status(r, 404);
	jd_resp_free(r);
	const char *bad[] = {"/events?job=abc", "/events?job=",
	                     "/events?type=", "/events?type=a%20b",
	                     "/events?type=%00", "/events?job=%00"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		r = jd_request(d, "GET", bad[i], NULL, NULL);
		ck_assert_msg(r != NULL && r->status == 400, "%s: %ld %s",
		              bad[i], r ? r->status : 0L, r ? r->body : "");
		ck_assert_ptr_nonnull(strstr(r->body, "\"status\":400"));
		jd_resp_free(r);
	}
	r = jd_request(d, "POST", "/events", NULL, NULL);
	assert_status(r, 405);
	jd_resp_free(r);
	r = jd_request(d, "HEAD", "/events", NULL, NULL);
	assert_status(r, 200);
	jd_resp_free(r);
	stream_close(&t);
	free(sl);
	free(no);
	free(done);
	jd_free(d);
}
END_TEST

/* Reconnecting with Last-Event-ID gets every event after it, no gap,
 * including those that came while no stream was open. */
START_TEST(test_resume)
{
	jd *d = launch(2, NULL);
	struct stream s;
	struct event e;
	unsigned long long first, next;
	char hdr[128], *a, *b;

	ck_assert_int_eq(stream_open(&s, d, "/events", NULL), 200);
	expect_waiters(d, 1);
	a = submit_ok(d, "{\"type\":\"noop\"}");
	first = expect_job(&s, a, "queued", 0);
	stream_close(&s);
	jd_resp_free(wait_status(d, a, "succeeded", LIMIT_MS));
	b = submit_ok(d, "{\"type\":\"noop\"}");
	jd_resp_free(wait_status(d, b, "succeeded", LIMIT_MS));

	snprintf(hdr, sizeof(hdr), "Last-Event-ID: %llu\r\n", first);
	ck_assert_int_eq(stream_open(&s, d, "/events", hdr), 200);
	next = expect_job(&s, a, "running", 1);
	ck_assert_msg(next == first + 1, "%llu after %llu", next, first);
	ck_assert_uint_eq(expect_job(&s, a, "succeeded", 1), first + 2);
	ck_assert_uint_eq(expect_job(&s, b, "queued", 0), first + 3);
	ck_assert_uint_eq(expect_job(&s, b, "running", 1), first + 4);
	ck_assert_uint_eq(expect_job(&s, b, "succeeded", 1), first + 5);
	ck_assert_int_eq(stream_event(&s, &e, 300), 0);
	stream_close(&s);

	/* the last id: nothing to replay, the stream goes on live */
	snprintf(hdr, sizeof(hdr), "Last-Event-ID: %llu\r\n", first + 5);
	ck_assert_int_eq(stream_open(&s, d, "/events", hdr), 200);
	ck_assert_int_eq(stream_event(&s, &e, 300), 0);
	free(a);
	a = submit_ok(d, "{\"type\":\"noop\"}");
	ck_assert_uint_eq(expect_job(&s, a, "queued", 0), first + 6);
	stream_close(&s);
	free(a);
	free(b);
	jd_free(d);
}
END_TEST

/* An id that fell out of the ring: "event: reset" first, then live; the
 * reset's id resumes from there. */
START_TEST(test_reset)
{
	jd *d = launch(2, "[server]\nevent_buffer = 4\n");
	struct stream s;
	struct event e;
	unsigned long long first, rid;
	char hdr[128], *a, *b, *c;

	ck_assert_int_eq(stream_open(&s, d, "/events", NULL), 200);
	expect_waiters(d, 1);
	a = submit_ok(d, "{\"type\":\"noop\"}");
	first = expect_job(&s, a, "queued", 0);
	stream_close(&s);
	jd_resp_free(wait_status(d, a, "succeeded", LIMIT_MS));
	b = submit_ok(d, "{\"type\":\"noop\"}");
	jd_resp_free(wait_status(d, b, "succeeded", LIMIT_MS));
	/* 6 events, a ring of 4: first + 1 is gone */

	snprintf(hdr, sizeof(hdr), "Last-Event-ID: %llu\r\n", first);
	ck_assert_int_eq(stream_open(&s, d, "/events", hdr), 200);
	expect_event(&s, &e);
	ck_assert_str_eq(e.kind, "reset");
	rid = strtoull(e.id, NULL, 10);
	ck_assert_uint_eq(rid, first + 5);
	c = submit_ok(d, "{\"type\":\"noop\"}");
	ck_assert_uint_eq(expect_job(&s, c, "queued", 0), first + 6);
	stream_close(&s);
	/* c's 3 events are all in: the ring holds first + 5 .. first + 8
	 * (not waiting for them made the next look race c's run). */
	jd_resp_free(wait_status(d, c, "succeeded", LIMIT_MS));

	/* the oldest still in the ring: resumed, no reset */
	snprintf(hdr, sizeof(hdr), "Last-Event-ID: %llu\r\n", first + 4);
	ck_assert_int_eq(stream_open(&s, d, "/events", hdr), 200);
	ck_assert_uint_eq(expect_job(&s, b, "succeeded", 1), first + 5);
	ck_assert_uint_eq(expect_job(&s, c, "queued", 0), first + 6);
	stream_close(&s);
	free(a);
	free(b);
	free(c);
	jd_free(d);
}
END_TEST

/* An id from jobd's previous life: reset, even though the new life's ids
 * went on. */
START_TEST(test_restart)
{
	jd *d = launch(2, NULL);
	struct stream s;
	struct event e;
	unsigned long long old, now;
	char hdr[128], *a, *b;

	ck_assert_int_eq(stream_open(&s, d, "/events", NULL), 200);
	expect_waiters(d, 1);
	a = submit_ok(d, "{\"type\":\"noop\"}");
	old = expect_job(&s, a, "queued", 0);
	expect_job(&s, a, "running", 1);
	expect_job(&s, a, "succeeded", 1);
	ck_assert_int_eq(jd_stop(d, LIMIT_MS), 0);
	while (stream_event(&s, &e, LIMIT_MS) == 1)
		;
	ck_assert(s.closed);
	stream_close(&s);

	ck_assert_int_eq(jd_start(d), 0);
	ck_assert_int_eq(stream_open(&s, d, "/events", NULL), 200);
	expect_waiters(d, 1);
	b = submit_ok(d, "{\"type\":\"noop\"}");
	now = expect_job(&s, b, "queued", 0);
	ck_assert_msg(now > old + 2, "ids went back: %llu after %llu", now,
	              old);
	stream_close(&s);

	snprintf(hdr, sizeof(hdr), "Last-Event-ID: %llu\r\n", old);
	ck_assert_int_eq(stream_open(&s, d, "/events", hdr), 200);
	expect_event(&s, &e);
	ck_assert_str_eq(e.kind, "reset");
	stream_close(&s);
	free(a);
	free(b);
	jd_free(d);
}
END_TEST

/* Hostile Last-Event-ID values: reset (or a 4xx), never a crash; an
 * empty one is no id at all. */
START_TEST(test_hostile_ids)
{
	jd *d = launch(2, NULL);
	static char big[10 * 1024 + 32];
	const char *vals[] = {"-1", "18446744073709551616",
	                      "18446744073709551615", "99999999999999999999999",
	                      "abc", "1 2", "+5", "0x10", "0", "1e3",
	                      "\xff\xfe", "1796104076374600\t", big};
	struct stream s;
	struct event e;
	struct jd_resp *r;

	memset(big, '7', sizeof(big) - 1);
	for (size_t i = 0; i < sizeof(vals) / sizeof(vals[0]); i++) {
		char hdr[sizeof(big) + 64];
		int st;
		snprintf(hdr, sizeof(hdr), "Last-Event-ID: %s\r\n", vals[i]);
		st = stream_open(&s, d, "/events", hdr);
		if (st == 200) {
			expect_event(&s, &e);
			ck_assert_msg(strcmp(e.kind, "reset") == 0, "%.20s: %s",
			              vals[i], e.kind);
		} else {
			ck_assert_msg(st >= 400 && st < 500, "%.20s: %d",
			              vals[i], st);
		}
		stream_close(&s);
	}
	ck_assert_int_eq(stream_open(&s, d, "/events", "Last-Event-ID: \r\n"),
	                 200);
	ck_assert_int_eq(stream_event(&s, &e, 300), 0);
	stream_close(&s);
	r = jd_request(d, "GET", "/healthz", NULL, NULL);
	assert_status(r, 200);
	jd_resp_free(r);
	ck_assert_int_eq(jd_stop(d, LIMIT_MS), 0);
	jd_free(d);
}
END_TEST

/* A quiet stream gets ": ping" (every 15 s). */
START_TEST(test_ping)
{
	jd *d = launch(2, NULL);
	struct stream s;
	struct event e;
	int64_t t0 = jd_mono_ms();
	int rc;

	ck_assert_int_eq(stream_open(&s, d, "/events", NULL), 200);
	ck_assert_int_eq(stream_block(&s, &e, LIMIT_MS), 1); /* the hello */
	ck_assert_str_eq(e.kind, ":");
	rc = stream_block(&s, &e, 40000);
	ck_assert_msg(rc == 1 && strcmp(e.kind, ":") == 0, "no ping: %d %s",
	              rc, e.kind);
	ck_assert_ptr_nonnull(strstr(s.buf + s.body, ": ping\n\n"));
	printf("ping after %lld ms\n", (long long)(jd_mono_ms() - t0));
	stream_close(&s);
	jd_free(d);
}
END_TEST

/* Streams count against max_waiters: 503 past it, room again once a
 * stream's client has gone. */
START_TEST(test_max_waiters)
{
	jd *d = launch(2, "[server]\nmax_waiters = 2\n");
	struct stream a, b, c;

	ck_assert_int_eq(stream_open(&a, d, "/events", NULL), 200);
	ck_assert_int_eq(stream_open(&b, d, "/events", NULL), 200);
	expect_waiters(d, 2);
	ck_assert_int_eq(stream_open(&c, d, "/events", NULL), 503);
	ck_assert_ptr_nonnull(strstr(c.buf, "Retry-After"));
	stream_close(&c);
	stream_close(&a);
	expect_waiters(d, 1);
	ck_assert_int_eq(stream_open(&c, d, "/events", NULL), 200);
	expect_waiters(d, 2);
	stream_close(&b);
	stream_close(&c);
	expect_waiters(d, 0);
	ck_assert_int_eq(jd_stop(d, LIMIT_MS), 0);
	jd_free(d);
}
END_TEST

/* Stopping jobd ends every stream, and jobd exits cleanly. */
START_TEST(test_shutdown)
{
	jd *d = launch(2, "[workers]\nshutdown_grace = 100ms\n");
	struct stream a, b;
	struct event e;
	char path[128], *id;

	id = submit_ok(d, "{\"type\":\"sleep\",\"payload\":{\"seconds\":60}}");
	jd_resp_free(wait_status(d, id, "running", LIMIT_MS));
	ck_assert_int_eq(stream_open(&a, d, "/events", NULL), 200);
	snprintf(path, sizeof(path), "/events?job=%s", id);
	ck_assert_int_eq(stream_open(&b, d, path, NULL), 200);
	expect_waiters(d, 2);
	ck_assert_int_eq(jd_stop(d, LIMIT_MS), 0);
	while (stream_event(&a, &e, LIMIT_MS) == 1)
		;
	ck_assert(a.closed);
	while (stream_event(&b, &e, LIMIT_MS) == 1)
		;
	ck_assert(b.closed);
	stream_close(&a);
	stream_close(&b);
	free(id);
	jd_free(d);
}
END_TEST

/* HTTP/1.1: chunked framing that curl-like clients read. */
START_TEST(test_http11)
{
	jd *d = launch(2, NULL);
	struct stream s;
	char req[256], *id;
	int64_t end;

	snprintf(req, sizeof(req), "GET /events?type=noop HTTP/1.1\r\n"
	         "Host: 127.0.0.1\r\n\r\n");
	stream_connect(&s, d->port, req, 0);
	ck_assert_int_eq(stream_header(&s), 200);
	ck_assert_ptr_nonnull(strstr(s.buf, "Transfer-Encoding: chunked"));
	expect_waiters(d, 1);
	id = submit_ok(d, "{\"type\":\"noop\"}");
	end = jd_mono_ms() + LIMIT_MS;
	while (strstr(s.buf + s.body, "\"succeeded\"") == NULL &&
	       jd_mono_ms() < end)
		stream_fill(&s, 100);
	/* chunk sizes in hex lines between the events */
	ck_assert_msg(strstr(s.buf + s.body, "\r\nid: ") != NULL ||
	              strstr(s.buf + s.body, "\r\n: jobd") != NULL,
	              "%s", s.buf + s.body);
	ck_assert_ptr_nonnull(strstr(s.buf + s.body, id));
	stream_close(&s);
	free(id);
	jd_free(d);
}
END_TEST

/* A reader that does not read while thousands of events go by gets
 * "event: reset" and goes on; jobd holds no backlog for it. */
START_TEST(test_slow_reader)
{
	jd *d = launch(4, "[server]\nevent_buffer = 16\nmax_batch = 1000\n");
	struct stream s;
	struct event e;
	const char *const json[] = {"Content-Type: application/json", NULL};
	char *batch = malloc(1000 * 20 + 8);
	size_t n = 0;
	bool reset = false;
	int events = 0;

	ck_assert_ptr_nonnull(batch);
	n += (size_t)sprintf(batch, "[");
	for (int i = 0; i < 1000; i++)
		n += (size_t)sprintf(batch + n, "%s{\"type\":\"noop\"}",
		                     i ? "," : "");
	sprintf(batch + n, "]");
	stream_connect(&s, d->port, "GET /events HTTP/1.0\r\n\r\n", 4096);
	ck_assert_int_eq(stream_header(&s), 200);
	expect_waiters(d, 1);
	for (int k = 0; k < 6; k++) {
		struct jd_resp *r = jd_request(d, "POST", "/jobs", json, batch);
		assert_status(r, 202);
		jd_resp_free(r);
	}
	ck_assert_msg(jd_wait_metric(d, "jobd_jobs_finished_total{type=\"noop\",status=\"succeeded\"}",
	                             6000, 60000), "the jobs did not end");
	while (stream_event(&s, &e, 1000) == 1) {
		events++;
		if (strcmp(e.kind, "reset") == 0)
			reset = true;
	}
	printf("slow reader: %d events read of 18000, reset %s\n", events,
	       reset ? "seen" : "not seen");
	ck_assert_msg(reset, "no reset after %d events", events);
	stream_close(&s);
	free(batch);
	jd_free(d);
}
END_TEST

/* Clients that come and go while events flow: some hang up before the
 * answer, some after a few events, some after a ping of half a second;
 * every stream is let go, and jobd stays whole. */
struct churn {
	int port;
	int rounds;
	int opened;
};

static void *
churn_main(void *arg)
{
	struct churn *c = arg;

	for (int i = 0; i < c->rounds; i++) {
		struct stream s;
		struct event e;
		stream_connect(&s, c->port, i % 3 == 0
		               ? "GET /events?type=noop HTTP/1.0\r\n\r\n"
		               : "GET /events HTTP/1.1\r\nHost: x\r\n\r\n", 0);
		if (i % 4 != 0) {
			if (stream_header(&s) == 200)
				c->opened++;
			for (int k = 0; k < i % 5; k++)
				if (stream_block(&s, &e, 50) != 1)
					break;
		}
		stream_close(&s);
	}
	return NULL;
}

START_TEST(test_churn)
{
	jd *d = launch(4, NULL);
	struct churn c[4];
	pthread_t th[4];
	struct jd_resp *r;
	int opened = 0;

	for (int i = 0; i < 4; i++) {
		c[i] = (struct churn){.port = d->port, .rounds = 60};
		ck_assert_int_eq(pthread_create(&th[i], NULL, churn_main, &c[i]),
		                 0);
	}
	for (int i = 0; i < 100; i++)
		free(submit_ok(d, "{\"type\":\"noop\"}"));
	for (int i = 0; i < 4; i++) {
		pthread_join(th[i], NULL);
		opened += c[i].opened;
	}
	printf("churn: %d streams opened and dropped\n", opened);
	ck_assert_int_gt(opened, 0);
	expect_waiters(d, 0);
	r = jd_request(d, "GET", "/healthz", NULL, NULL);
	assert_status(r, 200);
	jd_resp_free(r);
	ck_assert_int_eq(jd_stop(d, LIMIT_MS), 0);
	jd_free(d);
}
END_TEST

/* PostgreSQL, two nodes: a job that runs and ends on one node reaches the
 * other node's streams (running, then its end; read from the store at the
 * heartbeat). */
START_TEST(test_two_nodes)
{
	jd *a, *b;
	struct jd_opts oa = {.threads = 2, .extra = "[store]\nnode = a\n"};
	/* b has no sleep handler: the job runs on a */
	struct jd_opts ob = {.threads = 1, .no_default_handlers = true,
	                     .extra = "[store]\nnode = b\n"
	                              "[handler.noop]\nbuiltin = noop\n"};
	struct stream s;
	struct event e;
	char *id, v[64];
	bool running = false, ended = false, progressed = false;

	if (!jd_store_is_pg())
		return;
	a = jd_launch(&oa);
	ck_assert_ptr_nonnull(a);
	ob.share_store = a;
	b = jd_launch(&ob);
	ck_assert_ptr_nonnull(b);
	ck_assert_int_eq(stream_open(&s, b, "/events", NULL), 200);
	expect_waiters(b, 1);
	id = submit_ok(a, "{\"type\":\"sleep\",\"payload\":{\"seconds\":3}}");
	while (!ended && stream_event(&s, &e, LIMIT_MS) == 1) {
		if (strstr(e.data, id) == NULL)
			continue;
		if (strcmp(e.kind, "progress") == 0) {
			/* The sleep's {"percent": N} as a stores it (once a
			 * second), seen at b's heartbeat. */
			ck_assert_msg(running && !ended, "progress outside "
			              "the run: %s", e.data);
			ck_assert_msg(strstr(e.data, "\"percent\"") != NULL,
			              "%s", e.data);
			progressed = true;
			continue;
		}
		ev_field(&e, "status", v, sizeof(v));
		if (strcmp(v, "running") == 0) {
			ck_assert_msg(!ended, "running after the end");
			running = true;
			ck_assert_str_eq(ev_field(&e, "type", v, sizeof(v)),
			                 "sleep");
			ck_assert_str_eq(ev_field(&e, "attempt", v, sizeof(v)),
			                 "1");
		} else if (strcmp(v, "succeeded") == 0) {
			ended = true;
		}
	}
	ck_assert_msg(running, "node b's stream did not see job %s run on a",
	              id);
	ck_assert_msg(ended, "node b's stream did not see job %s end on a",
	              id);
	ck_assert_msg(progressed, "node b's stream saw no progress of job %s "
	              "on a", id);
	ck_assert_str_eq(ev_field(&e, "type", v, sizeof(v)), "sleep");
	ck_assert_str_eq(ev_field(&e, "attempt", v, sizeof(v)), "1");
	stream_close(&s);
	free(id);
	jd_free(b);
	jd_free(a);
}
END_TEST

static Suite *
sse_suite(void)
{
	Suite *s = suite_create("sse");
	TCase *tc = tcase_create("events");

	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, test_order);
	tcase_add_test(tc, test_filters);
	tcase_add_test(tc, test_resume);
	tcase_add_test(tc, test_reset);
	tcase_add_test(tc, test_restart);
	tcase_add_test(tc, test_hostile_ids);
	tcase_add_test(tc, test_ping);
	tcase_add_test(tc, test_max_waiters);
	tcase_add_test(tc, test_shutdown);
	tcase_add_test(tc, test_http11);
	tcase_add_test(tc, test_slow_reader);
	tcase_add_test(tc, test_churn);
	suite_add_tcase(s, tc);
	tc = tcase_create("nodes");
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, test_two_nodes);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	return run_suite(sse_suite());
}
