/*
 * test_http.c - the HTTP layer against RFC 9112 (issue 11, items 12-16,
 * 18, 22, 26): exact bytes over raw loopback sockets, where libcurl would
 * tidy the request up, and the daemon's log and configuration.
 *
 *   "framing"   header field names that are not tokens ("Content-Length :
 *               N" smuggled a second request), Transfer-Encoding other
 *               than a lone chunked, Host, absolute-form targets.
 *   "log"       the access log escapes what a client puts in the target.
 *   "limits"    header_timeout against a trickling client, the default
 *               per_ip_connections, body buffers sized once.
 *   "socket"    [::] is dual-stack; the address is logged from the socket;
 *               a public systemd socket without auth is warned about.
 *   "tls"       empty PEM files and readable keys are refused.
 *
 * Every wait polls a condition with a generous deadline; the only paced
 * part is the trickling client, which is the scenario.  Only 127.0.0.1
 * is ever connected to.
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/sockios.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
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

static int
tcp_connect(int port)
{
	struct sockaddr_in sa = {.sin_family = AF_INET};
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (fd < 0)
		return -1;
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	sa.sin_port = htons((uint16_t)port);
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
		close(fd);
		return -1;
	}
	return fd;
}

/* What came back on one connection. */
struct raw {
	char *buf;      /* everything received, NUL-terminated */
	size_t len;
	bool eof;       /* the daemon closed the connection */
	int answers;    /* status lines at the start of a line */
	int status;     /* of the first one; -1 none */
};

static void
raw_free(struct raw *r)
{
	free(r->buf);
	r->buf = NULL;
}

/*
 * Sends bytes on a new connection, then reads until the daemon closes it
 * or nothing more comes for quiet_ms (a connection kept open after an
 * answer is the failure that quiet_ms bounds, never a pass).
 */
static struct raw
raw_exchange(int port, const void *bytes, size_t len, int quiet_ms)
{
	struct raw r = {.status = -1};
	size_t cap = 0, sent = 0;
	int fd = tcp_connect(port);

	ck_assert_msg(fd >= 0, "connect: %s", strerror(errno));
	while (sent < len) {
		ssize_t n = send(fd, (const char *)bytes + sent, len - sent,
		                 MSG_NOSIGNAL);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		sent += (size_t)n;
	}
	for (;;) {
		struct pollfd p = {.fd = fd, .events = POLLIN};
		ssize_t n;

		if (poll(&p, 1, quiet_ms) <= 0)
			break;
		if (r.len + 4096 + 1 > cap) {
			cap = cap ? cap * 2 : 16384;
			r.buf = realloc(r.buf, cap);
			ck_assert_ptr_nonnull(r.buf);
		}
		n = recv(fd, r.buf + r.len, cap - r.len - 1, 0);
		if (n <= 0) {
			r.eof = true;
			break;
		}
		r.len += (size_t)n;
		r.buf[r.len] = '\0';
	}
	close(fd);
	if (r.buf == NULL) {
		r.buf = strdup("");
		ck_assert_ptr_nonnull(r.buf);
	}
	for (const char *p = r.buf; (p = strstr(p, "HTTP/1.")) != NULL; p++)
		if (p == r.buf || p[-1] == '\n') {
			if (r.answers++ == 0)
				r.status = atoi(p + 9);
		}
	return r;
}

static struct raw
raw_str(int port, const char *req)
{
	return raw_exchange(port, req, strlen(req), 3000);
}

/* A header of the (first) answer, "Name: value" matched from its start
 * to the end of its line, case-insensitively on the name. */
static bool
has_header(const struct raw *r, const char *name, const char *value)
{
	const char *end = strstr(r->buf, "\r\n\r\n");
	size_t nl = strlen(name), vl = strlen(value);

	for (const char *p = strstr(r->buf, "\r\n"); p != NULL && p < end;
	     p = strstr(p + 2, "\r\n")) {
		const char *h = p + 2;
		if (strncasecmp(h, name, nl) == 0 && h[nl] == ':') {
			h += nl + 1;
			while (*h == ' ')
				h++;
			if (strncmp(h, value, vl) == 0 &&
			    (h[vl] == '\r' || h[vl] == ';'))
				return true;
		}
	}
	return false;
}

/* A 4xx/5xx that jobd shaped, after which it closed the connection. */
static void
assert_problem_close(const struct raw *r, int status, const char *what)
{
	ck_assert_msg(r->answers == 1 && r->status == status,
	              "%s: %d answer(s), first %d, expected one %d:\n%s",
	              what, r->answers, r->status, status, r->buf);
	ck_assert_msg(has_header(r, "Content-Type", "application/problem+json"),
	              "%s: not a problem+json:\n%s", what, r->buf);
	ck_assert_msg(has_header(r, "Connection", "close") && r->eof,
	              "%s: the connection was not closed:\n%s", what,
	              r->buf);
}

static char *
read_text(const char *path)
{
	char *text = jd_read_file(path, NULL);

	return text != NULL ? text : strdup("");
}

/* Waits until the daemon's log contains needle; returns the log (caller
 * frees) or fails. */
static char *
wait_log(jd *dd, const char *needle, int timeout_ms)
{
	char *log = jd_wait_log(dd, needle, timeout_ms);

	if (log == NULL) {
		log = read_text(dd->log_path);
		ck_abort_msg("the log never said \"%s\"; it holds:\n%.3000s",
		             needle, log);
	}
	return log;
}

static void
assert_healthy(jd *dd)
{
	struct jd_resp *r = jd_request(dd, "GET", "/healthz", NULL, NULL);

	assert_status(r, 200);
	jd_resp_free(r);
}

/* ---- framing (items 13, 14, 15) ---- */

/*
 * "Content-Length : 40": libmicrohttpd takes the field for one named
 * "Content-Length " and frames the POST as bodyless, so the 40 bytes that
 * follow were answered as a request of their own.
 */
START_TEST(test_space_before_colon_smuggles_no_request)
{
	static const char req[] =
		"POST /jobs HTTP/1.1\r\nHost: 127.0.0.1\r\n"
		"Content-Type: application/json\r\n"
		"Content-Length : 40\r\n\r\n"
		"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n";
	struct raw r = raw_str(d->port, req);

	assert_problem_close(&r, 400, "Content-Length : 40");
	ck_assert_msg(strstr(r.buf, "\"status\":\"ok\"") == NULL,
	              "the smuggled GET was answered:\n%s", r.buf);
	raw_free(&r);
	assert_healthy(d);
}
END_TEST

/* Two Content-Lengths, one spelt with a space: the duplicate check must
 * not be bypassed. */
START_TEST(test_duplicate_content_length_with_space)
{
	static const char req[] =
		"POST /jobs HTTP/1.1\r\nHost: 127.0.0.1\r\n"
		"Content-Type: application/json\r\n"
		"Content-Length: 27\r\nContent-Length : 5\r\n\r\n"
		"{\"type\":\"noop\"}";
	struct raw r = raw_str(d->port, req);

	assert_problem_close(&r, 400, "Content-Length twice");
	raw_free(&r);
	ck_assert_int_eq(jd_sql_int(d, "SELECT count(*) FROM jobs"), 0);
}
END_TEST

START_TEST(test_field_names_must_be_tokens)
{
	static const char *const names[] = {
		"Content-Length\t", "X-Foo ", "X Foo", "X(y)", "X\"y",
		"X/y", "X\x01y", "X\x7fy", "X\xc3\x84y", "X@y", "X[y]", "X{y}",
		"X=y", "X,y", "X;y", "X\\y",
	};
	char req[256];

	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		int n = snprintf(req, sizeof(req), "GET /healthz HTTP/1.1\r\n"
		                 "Host: 127.0.0.1\r\n%s: 1\r\n\r\n", names[i]);
		struct raw r = raw_exchange(d->port, req, (size_t)n, 3000);
		char what[64];

		snprintf(what, sizeof(what), "field name #%zu", i);
		assert_problem_close(&r, 400, what);
		raw_free(&r);
	}
	/* Every tchar is fine. */
	struct raw ok = raw_str(d->port, "GET /healthz HTTP/1.1\r\n"
	                        "Host: 127.0.0.1\r\n"
	                        "X!#$%&'*+-.^_`|~09azAZ: 1\r\n"
	                        "Connection: close\r\n\r\n");
	ck_assert_msg(ok.answers == 1 && ok.status == 200, "%s", ok.buf);
	raw_free(&ok);
}
END_TEST

/*
 * RFC 9112 §6.3: a Transfer-Encoding whose last coding is not chunked
 * leaves the body's length unknown (400 and close); §6.1: a coding jobd
 * does not implement is 501.  Before, all of these got no answer at all
 * until the connection timed out.
 */
START_TEST(test_transfer_encoding_other_than_chunked)
{
	static const struct {
		const char *te;
		int status;
	} cases[] = {
		{"gzip", 400}, {"gzip, chunked", 501}, {"foo, chunked", 501},
		{"chunked, gzip", 400}, {"chunked, chunked", 400},
		{"chunked;foo=bar", 400}, {"identity", 400}, {"", 400},
		{"deflate,chunked", 501}, {",chunked", 400},
	};
	char req[512];

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int n = snprintf(req, sizeof(req),
		                 "POST /jobs HTTP/1.1\r\nHost: 127.0.0.1\r\n"
		                 "Content-Type: application/json\r\n"
		                 "Transfer-Encoding: %s\r\n\r\n"
		                 "f\r\n{\"type\":\"noop\"}\r\n0\r\n\r\n",
		                 cases[i].te);
		struct raw r = raw_exchange(d->port, req, (size_t)n, 5000);
		char what[64];

		snprintf(what, sizeof(what), "Transfer-Encoding: %s",
		         cases[i].te);
		assert_problem_close(&r, cases[i].status, what);
		raw_free(&r);
	}
	/* Two fields that make "gzip, chunked" together. */
	struct raw two = raw_str(d->port,
	                         "POST /jobs HTTP/1.1\r\nHost: 127.0.0.1\r\n"
	                         "Content-Type: application/json\r\n"
	                         "Transfer-Encoding: gzip\r\n"
	                         "Transfer-Encoding: chunked\r\n\r\n"
	                         "f\r\n{\"type\":\"noop\"}\r\n0\r\n\r\n");
	assert_problem_close(&two, 501, "two Transfer-Encoding fields");
	raw_free(&two);
	/* The one form jobd reads: chunked alone, any case. */
	struct raw ok = raw_str(d->port,
	                        "POST /jobs HTTP/1.1\r\nHost: 127.0.0.1\r\n"
	                        "Content-Type: application/json\r\n"
	                        "Transfer-Encoding: Chunked\r\n"
	                        "Connection: close\r\n\r\n"
	                        "f\r\n{\"type\":\"noop\"}\r\n0\r\n\r\n");
	ck_assert_msg(ok.answers == 1 && ok.status == 202, "%s", ok.buf);
	raw_free(&ok);
}
END_TEST

/*
 * A Content-Length that is not a number is answered by libmicrohttpd
 * itself, before jobd sees the request (HTML, and 0.9.75 sends its status
 * line and headers twice: README, Known limitations).  What must hold
 * anyway: a 400, the connection closed, nothing after it answered.
 */
START_TEST(test_bad_content_length_smuggles_nothing)
{
	static const char *const values[] = {"-1", "+27", "27x", " 1 2",
	                                     "0x10", "1e3", "-0"};
	char req[512];

	for (size_t i = 0; i < sizeof(values) / sizeof(values[0]); i++) {
		int n = snprintf(req, sizeof(req),
		                 "POST /jobs HTTP/1.1\r\nHost: 127.0.0.1\r\n"
		                 "Content-Type: application/json\r\n"
		                 "Content-Length: %s\r\n\r\n"
		                 "GET /healthz HTTP/1.1\r\nHost: a\r\n\r\n",
		                 values[i]);
		struct raw r = raw_exchange(d->port, req, (size_t)n, 5000);
		ck_assert_msg(r.status == 400 && r.eof &&
		              strstr(r.buf, "\"status\":\"ok\"") == NULL &&
		              strstr(r.buf, " 200 ") == NULL,
		              "Content-Length: %s:\n%s", values[i], r.buf);
		raw_free(&r);
	}
	assert_healthy(d);
	/* Logged at info, as the client's doing, without the HTML page
	 * (issue 12), and counted among the answers. */
	char *log = wait_log(d, "<6>http: libmicrohttpd refused a request: "
	                     "400 Request malformed", 10000);
	ck_assert_msg(strstr(log, "<html>") == NULL && strstr(log, "<4>http: "
	              "libmicrohttpd") == NULL, "%s", log);
	free(log);
	struct jd_resp *m = jd_request(d, "GET", "/metrics", NULL, NULL);
	ck_assert_msg(strstr(m->body, "jobd_http_requests_total{code=\"400\"} ")
	              != NULL, "%s", m->body);
	jd_resp_free(m);
}
END_TEST

/* RFC 9112 §3.2: HTTP/1.1 needs exactly one Host. */
START_TEST(test_host_required_once)
{
	struct raw r;

	r = raw_str(d->port, "GET /healthz HTTP/1.1\r\n\r\n");
	assert_problem_close(&r, 400, "no Host");
	raw_free(&r);
	r = raw_str(d->port, "GET /healthz HTTP/1.1\r\nHost: a\r\n"
	            "Host: b\r\n\r\n");
	assert_problem_close(&r, 400, "two Hosts");
	raw_free(&r);
	r = raw_str(d->port, "GET /healthz HTTP/1.1\r\nHost: a\r\n"
	            "host: a\r\n\r\n");
	assert_problem_close(&r, 400, "two Hosts, same value");
	raw_free(&r);
	r = raw_str(d->port, "GET /healthz HTTP/1.1\r\nHost: a b\r\n\r\n");
	assert_problem_close(&r, 400, "Host with a space");
	raw_free(&r);
	r = raw_str(d->port, "GET /healthz HTTP/1.1\r\nHost: a/b\r\n\r\n");
	assert_problem_close(&r, 400, "Host with a slash");
	raw_free(&r);
	/* HTTP/1.0 may leave it out; IPv6 literals and ports are fine. */
	r = raw_str(d->port, "GET /healthz HTTP/1.0\r\n\r\n");
	ck_assert_msg(r.answers == 1 && r.status == 200, "%s", r.buf);
	raw_free(&r);
	r = raw_str(d->port, "GET /healthz HTTP/1.1\r\nHost: [::1]:8080\r\n"
	            "Connection: close\r\n\r\n");
	ck_assert_msg(r.answers == 1 && r.status == 200, "%s", r.buf);
	raw_free(&r);
}
END_TEST

/* RFC 9112 §3.2.2: what `curl -x` sends.  It used to be 404. */
START_TEST(test_absolute_form_target)
{
	char req[512], *id = submit_ok(d, "{\"type\":\"noop\"}");
	struct raw r;

	snprintf(req, sizeof(req), "GET http://127.0.0.1:%d/healthz "
	         "HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nConnection: close\r\n\r\n",
	         d->port, d->port);
	r = raw_str(d->port, req);
	ck_assert_msg(r.answers == 1 && r.status == 200, "%s", r.buf);
	raw_free(&r);
	snprintf(req, sizeof(req), "GET HTTP://localhost/jobs/%s?wait=0 "
	         "HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
	         id);
	r = raw_str(d->port, req);
	ck_assert_msg(r.answers == 1 && r.status == 200 &&
	              strstr(r.buf, id) != NULL, "%s", r.buf);
	raw_free(&r);
	/* No path at all: the root. */
	r = raw_str(d->port, "GET http://127.0.0.1 HTTP/1.1\r\n"
	            "Host: 127.0.0.1\r\nConnection: close\r\n\r\n");
	ck_assert_msg(r.answers == 1 && r.status == 200, "%s", r.buf);
	raw_free(&r);
	free(id);
}
END_TEST

/* ---- the access log (item 18) ---- */

START_TEST(test_access_log_escapes_target)
{
	static const char req[] =
		"GET /jobs/zz%1b%5b31m%22x%0aFAKE%7f%c3%a9?q=%1b&r=\"b\" "
		"HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n";
	struct raw r = raw_str(d->port, req);
	char *log, *line, *end;

	ck_assert_msg(r.answers == 1, "%s", r.buf);
	raw_free(&r);
	log = wait_log(d, "/jobs/zz", 10000);
	line = strstr(log, "access: ");
	while (line != NULL && strstr(line, "/jobs/zz") > strchr(line, '\n'))
		line = strstr(line + 1, "access: ");
	ck_assert_ptr_nonnull(line);
	end = strchr(line, '\n');
	ck_assert_ptr_nonnull(end);
	*end = '\0';
	for (const char *p = line; *p; p++)
		ck_assert_msg((unsigned char)*p >= 0x20 &&
		              (unsigned char)*p < 0x7f,
		              "byte 0x%02x in the log line: %s",
		              (unsigned char)*p, line);
	/* Exactly the two quotes around the request. */
	int quotes = 0;
	for (const char *p = line; *p; p++)
		quotes += *p == '"';
	ck_assert_msg(quotes == 2, "%d quotes: %s", quotes, line);
	ck_assert_msg(strstr(line, "?q=") != NULL && strstr(line, "&r=") != NULL,
	              "no query string: %s", line);
	ck_assert_msg(strstr(line, "FAKE") != NULL, "%s", line);
	free(log);
}
END_TEST

/* ---- limits (item 12) ---- */

/*
 * A client that trickles its header a line every 200 ms never lets the
 * idle timeout (60 s) run out; header_timeout = 1s closes it anyway.
 */
START_TEST(test_header_timeout_closes_trickler)
{
	struct jd_opts o = {.threads = 2,
	                    .extra = "[server]\nheader_timeout = 1s\n"};
	jd *dd = jd_launch(&o);
	int64_t t0, deadline;
	bool closed = false;
	int fd, lines = 0;

	ck_assert_msg(dd != NULL, "the daemon did not start with "
	              "header_timeout");
	fd = tcp_connect(dd->port);
	ck_assert_int_ge(fd, 0);
	t0 = jd_mono_ms();
	deadline = t0 + 30000;
	ck_assert(send(fd, "GET /healthz HTTP/1.1\r\n", 23, MSG_NOSIGNAL)
	          == 23);
	while (!closed && jd_mono_ms() < deadline) {
		struct pollfd p = {.fd = fd, .events = POLLIN};
		char buf[256];
		/* the pacing is the scenario: one header line per 200 ms */
		if (poll(&p, 1, 200) > 0) {
			ssize_t n = recv(fd, buf, sizeof(buf), 0);
			ck_assert_msg(n <= 0, "an answer to half a header: "
			              "%.*s", (int)n, buf);
			closed = true;
			break;
		}
		if (send(fd, "X-Slow: 1\r\n", 11, MSG_NOSIGNAL) != 11)
			closed = true;
		else
			lines++;
	}
	close(fd);
	ck_assert_msg(closed, "still open after %lld ms and %d lines",
	              (long long)(jd_mono_ms() - t0), lines);
	ck_assert_msg(jd_mono_ms() - t0 >= 1000, "closed before the deadline");
	free(wait_log(dd, "within server.header_timeout (1000 ms) after it "
	               "opened", 10000));
	/* A prompt client on a kept-alive connection is not affected, nor
	 * a request that waits (suspended) longer than the deadline. */
	assert_healthy(dd);
	char *id = submit_ok(dd, "{\"type\":\"sleep\",\"payload\":"
	                         "{\"seconds\":30}}"), path[128];
	snprintf(path, sizeof(path), "/jobs/%s?wait=2", id);
	struct jd_resp *r = jd_request(dd, "GET", path, NULL, NULL);
	assert_status(r, 200);
	jd_resp_free(r);
	assert_healthy(dd);
	free(id);
	jd_free(dd);
}
END_TEST

/* The defaults hold without any [server] key: 256 connections per IP. */
START_TEST(test_per_ip_default)
{
	enum { LIMIT = 256 };
	int fds[LIMIT];
	struct rlimit rl;
	struct raw r;

	ck_assert_int_eq(getrlimit(RLIMIT_NOFILE, &rl), 0);
	if (rl.rlim_cur < LIMIT + 64) {
		rl.rlim_cur = LIMIT + 64;
		ck_assert_int_eq(setrlimit(RLIMIT_NOFILE, &rl), 0);
	}
	/* 256 kept-alive connections, each answered once: the daemon has
	 * accepted them all (which of several racing connects it refuses
	 * is up to its threads). */
	for (int i = 0; i < LIMIT; i++) {
		static const char req[] = "GET /healthz HTTP/1.1\r\nHost: a\r\n\r\n";
		char buf[512];
		size_t have = 0;
		fds[i] = tcp_connect(d->port);
		ck_assert_int_ge(fds[i], 0);
		ck_assert(send(fds[i], req, sizeof(req) - 1, MSG_NOSIGNAL) ==
		          (ssize_t)(sizeof(req) - 1));
		while (have < 4 || strstr(buf, "{\"status\":\"ok\"}") == NULL) {
			struct pollfd p = {.fd = fds[i], .events = POLLIN};
			ck_assert_msg(poll(&p, 1, 10000) == 1, "connection %d: "
			              "no answer", i);
			ssize_t n = recv(fds[i], buf + have,
			                 sizeof(buf) - 1 - have, 0);
			ck_assert_msg(n > 0, "connection %d closed", i);
			have += (size_t)n;
			buf[have] = '\0';
		}
	}
	/* The kernel accepts every connect; the daemon closes the one past
	 * the limit without an answer. */
	r = raw_exchange(d->port, "GET /healthz HTTP/1.1\r\nHost: a\r\n\r\n",
	                 34, 10000);
	ck_assert_msg(r.answers == 0 && r.eof, "connection %d answered: %s",
	              LIMIT + 1, r.buf);
	raw_free(&r);
	for (int i = 0; i < LIMIT; i++)
		close(fds[i]);
	/* and takes new ones once those are gone */
	int64_t deadline = jd_mono_ms() + 10000;
	for (;;) {
		r = raw_str(d->port, "GET /healthz HTTP/1.1\r\nHost: a\r\n"
		            "Connection: close\r\n\r\n");
		bool ok = r.status == 200;
		raw_free(&r);
		if (ok)
			break;
		ck_assert_msg(jd_mono_ms() < deadline, "no answer after the "
		              "connections closed");
		jd_pause_ms(20);
	}
}
END_TEST

/* A "VmPeak:"-style field of /proc/<pid>/status, in KiB; -1 if none. */
static long
vm_kb(pid_t pid, const char *field)
{
	char path[64], *text, *p;
	long kb = -1;

	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	text = read_text(path);
	p = strstr(text, field);
	if (p != NULL)
		kb = strtol(p + strlen(field), NULL, 10);
	free(text);
	return kb;
}

/*
 * Bytes waiting in the receive queue of the daemon's end of the loopback
 * connection from client_port to port (/proc/net/tcp); -1 if not found.
 */
static long
server_rx_queue(int port, int client_port)
{
	char *text = read_text("/proc/net/tcp"), *line;
	long rx = -1;

	for (line = strchr(text, '\n'); line != NULL && rx < 0;
	     line = strchr(line + 1, '\n')) {
		unsigned lport, rport;
		unsigned long tx, rq;
		if (sscanf(line + 1, "%*d: %*x:%x %*x:%x %*x %lx:%lx", &lport,
		           &rport, &tx, &rq) == 4 &&
		    (int)lport == port && (int)rport == client_port)
			rx = (long)rq;
	}
	free(text);
	return rx;
}

/*
 * A body of max_body bytes costs one buffer of max_body bytes, not the
 * next power of two (it was doubled from 1 KiB: 33 MiB took 64 MiB).
 * Measured as the daemon's VmSize while it holds all of the body but its
 * last byte.
 */
START_TEST(test_body_buffer_sized_once)
{
	enum { MAX_BODY = 33 << 20 };
	struct jd_opts o = {.threads = 2,
	                    .extra = "[server]\nmax_body = 33M\nthreads = 1\n"};
	jd *dd = jd_launch(&o);
	static const char head_fmt[] =
		"POST /jobs HTTP/1.1\r\nHost: 127.0.0.1\r\n"
		"Content-Type: application/json\r\nContent-Length: %d\r\n"
		"Connection: close\r\n\r\n";
	char head[256], answer[512];
	char *body;
	long before, during;
	size_t sent = 0;
	int hl, fd, client_port, outq;
	struct sockaddr_in sa;
	socklen_t salen = sizeof(sa);
	int64_t deadline;
	ssize_t n;
	struct raw r;

	ck_assert_ptr_nonnull(dd);
	/* warm up: the HTTP thread's, the writer's and the worker's
	 * allocator arenas exist (the job waited for: a worker's first
	 * malloc after the measure began would add a 64 MiB arena to
	 * VmSize, seen once under load) */
	r = raw_str(dd->port, "POST /jobs HTTP/1.1\r\nHost: a\r\n"
	            "Content-Type: application/json\r\nContent-Length: 15\r\n"
	            "Prefer: wait=10\r\n"
	            "Connection: close\r\n\r\n{\"type\":\"noop\"}");
	ck_assert_msg(r.status == 200, "%s", r.buf);
	raw_free(&r);
	before = vm_kb(dd->pid, "VmSize:");
	ck_assert_int_gt(before, 0);

	hl = snprintf(head, sizeof(head), head_fmt, MAX_BODY);
	body = malloc(MAX_BODY);
	ck_assert_ptr_nonnull(body);
	memset(body, ' ', MAX_BODY);
	body[MAX_BODY - 1] = 'x'; /* not JSON: nothing else is kept */
	fd = tcp_connect(dd->port);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&sa, &salen), 0);
	client_port = ntohs(sa.sin_port);
	ck_assert(send(fd, head, (size_t)hl, MSG_NOSIGNAL) == hl);
	while (sent < MAX_BODY - 1) {
		n = send(fd, body + sent, MAX_BODY - 1 - sent, MSG_NOSIGNAL);
		ck_assert_msg(n > 0, "send: %s", strerror(errno));
		sent += (size_t)n;
	}
	/* Wait until the daemon has read all of it. */
	deadline = jd_mono_ms() + 30000;
	while (ioctl(fd, SIOCOUTQ, &outq) != 0 || outq > 0 ||
	       server_rx_queue(dd->port, client_port) != 0) {
		ck_assert_msg(jd_mono_ms() < deadline, "the daemon does not "
		              "read the body");
		jd_pause_ms(10);
	}
	during = vm_kb(dd->pid, "VmSize:");
	ck_assert(send(fd, body + MAX_BODY - 1, 1, MSG_NOSIGNAL) == 1);
	n = recv(fd, answer, sizeof(answer) - 1, 0);
	ck_assert_msg(n > 12 && strncmp(answer + 9, "400", 3) == 0,
	              "answer: %.*s", (int)(n > 0 ? n : 0), answer);
	close(fd);
	free(body);
	ck_assert_msg(during - before < (MAX_BODY >> 10) + 4096,
	              "VmSize grew by %ld KiB for a body of %d KiB",
	              during - before, MAX_BODY >> 10);
	jd_free(dd);
}
END_TEST

/* ---- sockets (items 22, 26) ---- */

/* Rewrites the listen line of dd's config. */
static void
set_listen(jd *dd, const char *listen)
{
	char *conf = read_text(dd->conf_path), *p, *eol;
	FILE *f;

	p = strstr(conf, "listen = ");
	ck_assert_ptr_nonnull(p);
	eol = strchr(p, '\n');
	ck_assert_ptr_nonnull(eol);
	f = fopen(dd->conf_path, "we");
	ck_assert_ptr_nonnull(f);
	fprintf(f, "%.*slisten = %s%s", (int)(p - conf), conf, listen, eol);
	fclose(f);
	free(conf);
}

START_TEST(test_ipv6_wildcard_is_dual_stack)
{
	struct jd_opts o = {.threads = 2};
	jd *dd = jd_new(&o);
	char listen[64], *log;

	ck_assert_ptr_nonnull(dd);
	snprintf(listen, sizeof(listen), "[::]:%d", dd->port);
	set_listen(dd, listen);
	ck_assert_msg(jd_start(dd) == 0, "no start on %s", listen);
	/* IPv4 loopback reaches the [::] socket */
	assert_healthy(dd);
	snprintf(listen, sizeof(listen), "listening on http://[::]:%d",
	         dd->port);
	log = wait_log(dd, listen, 10000);
	free(log);
	/* the client shows as itself, not as ::ffff:127.0.0.1 */
	log = wait_log(dd, "access: 127.0.0.1 \"GET /healthz\" 200", 10000);
	free(log);
	jd_free(dd);
}
END_TEST

START_TEST(test_listen_address_logged)
{
	char want[64], *log;

	snprintf(want, sizeof(want), "listening on http://127.0.0.1:%d",
	         d->port);
	log = wait_log(d, want, 10000);
	free(log);
}
END_TEST

/*
 * A socket passed by systemd and bound to a public address, with no
 * [auth]: jobd warns, naming the address it found with getsockname (the
 * configured listen is ignored then).  The socket is bound to 0.0.0.0
 * with port 0 and nothing but the daemon ever uses it.
 */
START_TEST(test_systemd_public_socket_warns)
{
	struct jd_opts o = {.threads = 2};
	jd *dd = jd_new(&o);
	struct sockaddr_in sa = {.sin_family = AF_INET};
	socklen_t salen = sizeof(sa);
	const char *bin = getenv("JOBD_BIN");
	char notify_env[160], want[160], *log;
	int lfd, log_fd;
	pid_t pid;

	ck_assert_ptr_nonnull(dd);
	if (bin == NULL || bin[0] == '\0')
		bin = "build/jobd";
	lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	ck_assert_int_ge(lfd, 0);
	sa.sin_addr.s_addr = htonl(INADDR_ANY);
	ck_assert_int_eq(bind(lfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	ck_assert_int_eq(listen(lfd, 16), 0);
	ck_assert_int_eq(getsockname(lfd, (struct sockaddr *)&sa, &salen), 0);
	snprintf(notify_env, sizeof(notify_env), "@%s", dd->notify_name);
	log_fd = open(dd->log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC,
	              0644);
	ck_assert_int_ge(log_fd, 0);
	fflush(NULL);
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		char pidbuf[32];
		sigset_t none;

		prctl(PR_SET_PDEATHSIG, SIGKILL);
		sigemptyset(&none);
		sigprocmask(SIG_SETMASK, &none, NULL);
		if (dup2(log_fd, 2) < 0 || dup2(lfd, 3) != 3)
			_exit(127);
		close_range(4, ~0U, 0);
		snprintf(pidbuf, sizeof(pidbuf), "%ld", (long)getpid());
		setenv("LISTEN_FDS", "1", 1);
		setenv("LISTEN_PID", pidbuf, 1);
		setenv("NOTIFY_SOCKET", notify_env, 1);
		execl(bin, bin, "--config", dd->conf_path, (char *)NULL);
		_exit(127);
	}
	close(log_fd);
	close(lfd);
	dd->pid = pid;
	ck_assert_msg(jd_wait_notify(dd, "READY=1", JD_READY_TIMEOUT_MS) == 0,
	              "no READY=1");
	snprintf(want, sizeof(want), "bound to 0.0.0.0:%d, which is not "
	         "loopback", ntohs(sa.sin_port));
	log = wait_log(dd, want, 10000);
	free(log);
	snprintf(want, sizeof(want), "listening on http://0.0.0.0:%d",
	         ntohs(sa.sin_port));
	log = wait_log(dd, want, 10000);
	free(log);
	ck_assert_int_eq(jd_stop(dd, 10000), 0);
	jd_free(dd);
}
END_TEST

/* ---- TLS files (item 12) ---- */

static void
write_file(const char *path, const char *text, mode_t mode)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);

	ck_assert_int_ge(fd, 0);
	ck_assert(write(fd, text, strlen(text)) == (ssize_t)strlen(text));
	ck_assert_int_eq(fchmod(fd, mode), 0);
	close(fd);
}

static void
add_tls(jd *dd, const char *cert, const char *key)
{
	FILE *f = fopen(dd->conf_path, "ae");

	ck_assert_ptr_nonnull(f);
	fprintf(f, "[server]\ntls_cert = %s\ntls_key = %s\n", cert, key);
	fclose(f);
}

/* Runs `jobd --check-config --config conf`; returns its exit status and
 * its stderr in *out (caller frees). */
static int
check_config(jd *dd, char **out)
{
	const char *bin = getenv("JOBD_BIN");
	char cmd[1024], path[320];
	int st;

	if (bin == NULL || bin[0] == '\0')
		bin = "build/jobd";
	snprintf(path, sizeof(path), "%s/check.out", dd->dir);
	snprintf(cmd, sizeof(cmd), "'%s' --check-config --config '%s' "
	         ">'%s' 2>&1", bin, dd->conf_path, path);
	st = system(cmd);
	*out = read_text(path);
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

START_TEST(test_tls_empty_pem_refused)
{
	struct jd_opts o = {.threads = 2};
	jd *dd = jd_new(&o);
	char cert[300], key[300], want[400], *log, *out;
	int st;

	ck_assert_ptr_nonnull(dd);
	snprintf(cert, sizeof(cert), "%s/cert.pem", dd->dir);
	snprintf(key, sizeof(key), "%s/key.pem", dd->dir);
	write_file(cert, "", 0644);
	write_file(key, "", 0600);
	add_tls(dd, cert, key);
	st = check_config(dd, &out);
	snprintf(want, sizeof(want), "[server] tls_cert: %s is empty", cert);
	ck_assert_msg(st == 78 && strstr(out, want) != NULL,
	              "--check-config: exit %d: %s", st, out);
	snprintf(want, sizeof(want), "[server] tls_key: %s is empty", key);
	ck_assert_msg(strstr(out, want) != NULL, "--check-config: %s", out);
	free(out);
	ck_assert_msg(jd_start(dd) != 0, "jobd started with empty PEM files");
	log = wait_log(dd, want, 10000);
	free(log);
	jd_free(dd);

	/* Not a regular file, so only reading it tells: still refused. */
	dd = jd_new(&o);
	ck_assert_ptr_nonnull(dd);
	snprintf(key, sizeof(key), "%s/key.pem", dd->dir);
	write_file(key, "-----BEGIN PRIVATE KEY-----\n", 0600);
	add_tls(dd, "/dev/null", key);
	ck_assert_msg(jd_start(dd) != 0, "jobd started with /dev/null");
	log = wait_log(dd, "/dev/null: empty", 10000);
	free(log);
	jd_free(dd);
}
END_TEST

START_TEST(test_tls_key_readable_refused)
{
	struct jd_opts o = {.threads = 2};
	jd *dd = jd_new(&o);
	char cert[300], key[300], want[400], *out;
	int st;

	ck_assert_ptr_nonnull(dd);
	snprintf(cert, sizeof(cert), "%s/cert.pem", dd->dir);
	snprintf(key, sizeof(key), "%s/key.pem", dd->dir);
	write_file(cert, "-----BEGIN CERTIFICATE-----\n", 0644);
	write_file(key, "-----BEGIN PRIVATE KEY-----\n", 0644);
	add_tls(dd, cert, key);
	snprintf(want, sizeof(want), "[server] tls_key: %s is readable by "
	         "others (mode 0644)", key);
	st = check_config(dd, &out);
	ck_assert_msg(st == 78 && strstr(out, want) != NULL,
	              "--check-config: exit %d: %s", st, out);
	free(out);
	ck_assert_msg(jd_start(dd) != 0, "jobd started with a 0644 key");
	free(wait_log(dd, want, 10000));
	/* 0660: writable by the group */
	ck_assert_int_eq(chmod(key, 0660), 0);
	st = check_config(dd, &out);
	ck_assert_msg(st == 78 && strstr(out, "writable by others than its "
	              "owner") != NULL, "--check-config: exit %d: %s", st, out);
	free(out);
	/* 0600 and 0640 (a group such as Debian's ssl-cert) pass the check
	 * (the PEM itself is checked at start-up) */
	for (int m = 0; m < 2; m++) {
		ck_assert_int_eq(chmod(key, m ? 0640 : 0600), 0);
		st = check_config(dd, &out);
		ck_assert_msg(st == 0, "--check-config: exit %d: %s", st, out);
		free(out);
	}
	jd_free(dd);
}
END_TEST

static Suite *
http_suite(void)
{
	Suite *s = suite_create("http");
	TCase *tc = tcase_create("framing");

	tcase_set_timeout(tc, 120);
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_space_before_colon_smuggles_no_request);
	tcase_add_test(tc, test_duplicate_content_length_with_space);
	tcase_add_test(tc, test_field_names_must_be_tokens);
	tcase_add_test(tc, test_transfer_encoding_other_than_chunked);
	tcase_add_test(tc, test_bad_content_length_smuggles_nothing);
	tcase_add_test(tc, test_host_required_once);
	tcase_add_test(tc, test_absolute_form_target);
	suite_add_tcase(s, tc);

	tc = tcase_create("log");
	tcase_set_timeout(tc, 60);
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_access_log_escapes_target);
	suite_add_tcase(s, tc);

	tc = tcase_create("limits");
	tcase_set_timeout(tc, 120);
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_per_ip_default);
	suite_add_tcase(s, tc);
	tc = tcase_create("limits_own");
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, test_header_timeout_closes_trickler);
	tcase_add_test(tc, test_body_buffer_sized_once);
	suite_add_tcase(s, tc);

	tc = tcase_create("socket");
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_ipv6_wildcard_is_dual_stack);
	tcase_add_test(tc, test_systemd_public_socket_warns);
	suite_add_tcase(s, tc);
	tc = tcase_create("socket_default");
	tcase_set_timeout(tc, 60);
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_listen_address_logged);
	suite_add_tcase(s, tc);

	tc = tcase_create("tls");
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_tls_empty_pem_refused);
	tcase_add_test(tc, test_tls_key_readable_refused);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	return run_suite(http_suite());
}
