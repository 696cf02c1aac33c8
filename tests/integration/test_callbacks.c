/*
 * test_callbacks.c - completion webhooks (DESIGN §2.1, issue 16 item 1):
 * callback_url in a submission (allowed prefixes, 422 otherwise), the
 * signed POST of the job's JSON when it ends (succeeded, failed, cancelled
 * by DELETE or by a dependency), retries with backoff up to
 * callbacks.max_attempts, a redirect that is not followed, "callback" in
 * the job JSON, jobd_callbacks_total, delivery after a restart (also one
 * killed with a delivery in flight), and two nodes on one PostgreSQL store
 * delivering each callback once.
 *
 * The receiver is a loopback HTTP server thread in the test process: it
 * verifies every request's Standard Webhooks signature with OpenSSL's HMAC
 * (its own code, not jobd's), records it, and answers as the test says
 * (200, an error for the first N, a redirect, or no answer until told).
 * Retries use [callbacks] backoff_base = 10ms.  Runs on SQLite and, under
 * tests/pg/with_server.sh, on PostgreSQL.  Nothing waits on a fixed delay:
 * the test waits on the receiver's condition variable or polls the job.
 */
#include <arpa/inet.h>
#include <check.h>
#include <errno.h>
#include <netinet/in.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "checks.h"
#include "harness.h"

#define WAIT_MS 20000
#define SECRET "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
#define MAX_REQS 256

/* ---- the receiver ---- */

struct req {
	char id[64];
	char path[128];
	long long ts;
	bool sig_ok;
	char *body;
};

struct receiver {
	int fd;
	int port;
	pthread_t thread;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	/* what to answer (guarded by mu) */
	int fail_first;         /* 500 to the first N requests */
	int status;             /* then this (0: 200) */
	bool hang;              /* hold requests unanswered while set, */
	int released;           /* except the first `released` ones, */
	int release_status[MAX_REQS]; /* answered with these (0: as above) */
	bool stop;
	int active;             /* connections being served */
	/* what came (guarded by mu) */
	int n;
	struct req reqs[MAX_REQS];
	unsigned char key[64];
	int keylen;
};

static bool
verify(const struct receiver *r, const char *id, const char *ts,
       const char *sig, const char *body, size_t len)
{
	unsigned char mac[EVP_MAX_MD_SIZE];
	unsigned int maclen = 0;
	char want[128];
	char *msg = NULL;
	int n;

	if (id == NULL || ts == NULL || sig == NULL)
		return false;
	n = asprintf(&msg, "%s.%s.", id, ts);
	if (n < 0)
		return false;
	msg = realloc(msg, (size_t)n + len + 1);
	memcpy(msg + n, body, len);
	HMAC(EVP_sha256(), r->key, r->keylen, (unsigned char *)msg,
	     (size_t)n + len, mac, &maclen);
	free(msg);
	memcpy(want, "v1,", 3);
	EVP_EncodeBlock((unsigned char *)want + 3, mac, (int)maclen);
	return strcmp(sig, want) == 0;
}

/* A header's value in the raw request head (a new string), or NULL. */
static char *
head_value(const char *head, const char *name)
{
	size_t nl = strlen(name);

	for (const char *p = strstr(head, "\r\n"); p != NULL;
	     p = strstr(p + 2, "\r\n")) {
		const char *line = p + 2;
		if (strncasecmp(line, name, nl) == 0 && line[nl] == ':') {
			const char *v = line + nl + 1;
			while (*v == ' ')
				v++;
			return strndup(v, strcspn(v, "\r\n"));
		}
	}
	return NULL;
}

static void
serve_one(struct receiver *r, int c)
{
	char buf[65536];
	size_t got = 0;
	char *end = NULL;
	long clen = 0;

	while (got < sizeof(buf) - 1) {
		ssize_t k = read(c, buf + got, sizeof(buf) - 1 - got);
		if (k <= 0)
			return;
		got += (size_t)k;
		buf[got] = '\0';
		if ((end = strstr(buf, "\r\n\r\n")) != NULL)
			break;
	}
	if (end == NULL)
		return;
	*end = '\0';
	char *cl = head_value(buf, "Content-Length");
	clen = cl ? atol(cl) : 0;
	free(cl);
	size_t body_off = (size_t)(end - buf) + 4;
	while (got < body_off + (size_t)clen && got < sizeof(buf) - 1) {
		ssize_t k = read(c, buf + got, sizeof(buf) - 1 - got);
		if (k <= 0)
			return;
		got += (size_t)k;
	}
	buf[got] = '\0';
	char *id = head_value(buf, "webhook-id");
	char *ts = head_value(buf, "webhook-timestamp");
	char *sig = head_value(buf, "webhook-signature");
	int status;

	pthread_mutex_lock(&r->mu);
	int k = r->n++;
	if (k < MAX_REQS) {
		struct req *q = &r->reqs[k];
		snprintf(q->id, sizeof(q->id), "%s", id ? id : "");
		sscanf(buf, "POST %127s", q->path);
		q->ts = ts ? atoll(ts) : -1;
		q->sig_ok = verify(r, id, ts, sig, buf + body_off,
		                   (size_t)clen);
		q->body = strndup(buf + body_off, (size_t)clen);
	}
	pthread_cond_broadcast(&r->cv);
	while (r->hang && k >= r->released && !r->stop)
		pthread_cond_wait(&r->cv, &r->mu);
	status = k < MAX_REQS && r->release_status[k] ? r->release_status[k]
	       : k < r->fail_first ? 500 : r->status ? r->status : 200;
	bool answer = !r->stop;
	pthread_mutex_unlock(&r->mu);
	free(id);
	free(ts);
	free(sig);
	if (!answer)
		return;
	char out[512];
	int n = snprintf(out, sizeof(out), "HTTP/1.1 %d X\r\nContent-Length: 0"
	                 "\r\nConnection: close\r\n%s\r\n", status,
	                 status == 302 ? "Location: /elsewhere\r\n" : "");
	(void)!send(c, out, (size_t)n, MSG_NOSIGNAL);
}

struct conn {
	struct receiver *r;
	int fd;
};

static void *
conn_run(void *arg)
{
	struct conn *cn = arg;
	struct receiver *r = cn->r;

	serve_one(r, cn->fd);
	close(cn->fd);
	free(cn);
	pthread_mutex_lock(&r->mu);
	r->active--;
	pthread_cond_broadcast(&r->cv);
	pthread_mutex_unlock(&r->mu);
	return NULL;
}

/* Accepts connections, each served by a thread of its own (a held
 * request does not hold the others). */
static void *
receiver_run(void *arg)
{
	struct receiver *r = arg;

	for (;;) {
		pthread_t t;
		struct conn *cn;
		int c = accept(r->fd, NULL, NULL);
		if (c < 0) {
			if (errno == EINTR)
				continue;
			return NULL; /* shut down */
		}
		cn = malloc(sizeof(*cn));
		if (cn == NULL) {
			close(c);
			continue;
		}
		*cn = (struct conn){.r = r, .fd = c};
		pthread_mutex_lock(&r->mu);
		r->active++;
		pthread_mutex_unlock(&r->mu);
		if (pthread_create(&t, NULL, conn_run, cn) != 0) {
			close(c);
			free(cn);
			pthread_mutex_lock(&r->mu);
			r->active--;
			pthread_mutex_unlock(&r->mu);
			continue;
		}
		pthread_detach(t);
	}
}

static struct receiver *
receiver_start(void)
{
	struct receiver *r = calloc(1, sizeof(*r));
	struct sockaddr_in a = {.sin_family = AF_INET};
	socklen_t alen = sizeof(a);
	const char *b64 = SECRET + 6;

	ck_assert_ptr_nonnull(r);
	r->keylen = EVP_DecodeBlock(r->key, (const unsigned char *)b64,
	                            (int)strlen(b64));
	ck_assert_int_eq(r->keylen, 24);
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	r->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	ck_assert_int_ge(r->fd, 0);
	ck_assert_int_eq(bind(r->fd, (struct sockaddr *)&a, sizeof(a)), 0);
	ck_assert_int_eq(listen(r->fd, 64), 0);
	getsockname(r->fd, (struct sockaddr *)&a, &alen);
	r->port = ntohs(a.sin_port);
	pthread_mutex_init(&r->mu, NULL);
	pthread_cond_init(&r->cv, NULL);
	ck_assert_int_eq(pthread_create(&r->thread, NULL, receiver_run, r), 0);
	return r;
}

static void
receiver_stop(struct receiver *r)
{
	pthread_mutex_lock(&r->mu);
	r->stop = true;
	pthread_cond_broadcast(&r->cv);
	pthread_mutex_unlock(&r->mu);
	shutdown(r->fd, SHUT_RDWR);
	pthread_join(r->thread, NULL);
	pthread_mutex_lock(&r->mu);
	while (r->active > 0)
		pthread_cond_wait(&r->cv, &r->mu);
	pthread_mutex_unlock(&r->mu);
	close(r->fd);
	for (int i = 0; i < r->n && i < MAX_REQS; i++)
		free(r->reqs[i].body);
	free(r);
}

static void
receiver_set(struct receiver *r, int fail_first, int status, bool hang)
{
	pthread_mutex_lock(&r->mu);
	r->fail_first = fail_first;
	r->status = status;
	r->hang = hang;
	pthread_cond_broadcast(&r->cv);
	pthread_mutex_unlock(&r->mu);
}

/* Lets the next held request go, answered with status. */
static void
receiver_release(struct receiver *r, int status)
{
	pthread_mutex_lock(&r->mu);
	if (r->released < MAX_REQS)
		r->release_status[r->released] = status;
	r->released++;
	pthread_cond_broadcast(&r->cv);
	pthread_mutex_unlock(&r->mu);
}

/* Waits until the receiver has seen n requests: true, or false after
 * timeout_ms. */
static bool
receiver_wait(struct receiver *r, int n, int timeout_ms)
{
	struct timespec dl;
	bool ok;

	clock_gettime(CLOCK_REALTIME, &dl);
	dl.tv_sec += timeout_ms / 1000;
	pthread_mutex_lock(&r->mu);
	while (r->n < n &&
	       pthread_cond_timedwait(&r->cv, &r->mu, &dl) != ETIMEDOUT)
		;
	ok = r->n >= n;
	pthread_mutex_unlock(&r->mu);
	return ok;
}

static int
receiver_count(struct receiver *r)
{
	int n;

	pthread_mutex_lock(&r->mu);
	n = r->n;
	pthread_mutex_unlock(&r->mu);
	return n;
}

/* ---- the daemon ---- */

/* A daemon's [callbacks] for receiver r, and more INI text. */
static char *
callbacks_ini(const struct receiver *r, int max_attempts, const char *more)
{
	char *s = NULL;

	ck_assert_int_ge(asprintf(&s, "[handler.fail1]\nbuiltin = fail\n"
	                 "max_attempts = 1\n[callbacks]\nsecret = " SECRET
	                 "\nallow = http://127.0.0.1:%d/hook\nmax_attempts = %d"
	                 "\nbackoff_base = 10ms\n%s", r->port,
	                 max_attempts, more ? more : ""), 0);
	return s;
}

static jd *
launch_cb(const struct receiver *r, int max_attempts, const char *more,
          const jd *share)
{
	char *extra = callbacks_ini(r, max_attempts, more);
	struct jd_opts o = {.threads = 2, .extra = extra, .share_store = share};
	jd *d = jd_launch(&o);

	free(extra);
	ck_assert_msg(d != NULL, "the daemon did not start");
	return d;
}

static char *
submit_cb(jd *d, const struct receiver *r, const char *fields)
{
	char body[512];

	snprintf(body, sizeof(body), "{%s, \"callback_url\": "
	         "\"http://127.0.0.1:%d/hook\"}", fields, r->port);
	return submit_ok(d, body);
}

/* Polls the job until its callback's status is status: the last answer
 * (caller frees), or fails after timeout_ms. */
static struct jd_resp *
wait_callback(jd *d, const char *id, const char *status, int timeout_ms)
{
	char path[128];
	int64_t end = jd_mono_ms() + timeout_ms;
	const char *last = "?";

	snprintf(path, sizeof(path), "/jobs/%s", id);
	for (;;) {
		struct jd_resp *r = jd_request(d, "GET", path, NULL, NULL);
		cJSON *cb = r && jd_json(r)
		    ? cJSON_GetObjectItem(jd_json(r), "callback") : NULL;
		const char *st = cb ? jd_str(cb, "status") : NULL;
		if (st != NULL && strcmp(st, status) == 0)
			return r;
		last = st ? st : "none";
		if (jd_mono_ms() > end) {
			ck_abort_msg("job %s: callback %s, not %s, after %d ms: "
			             "%s", id, last, status, timeout_ms,
			             r ? r->body : "");
		}
		jd_resp_free(r);
		jd_pause_ms(20);
	}
}

static const cJSON *
callback_of(struct jd_resp *r)
{
	const cJSON *cb = cJSON_GetObjectItem(jd_json(r), "callback");

	ck_assert_msg(cJSON_IsObject(cb), "no callback object: %s", r->body);
	return cb;
}

static char *
replace(const char *s, const char *from, const char *to)
{
	const char *p = strstr(s, from);
	char *out = NULL;

	ck_assert_msg(p != NULL, "\"%s\" not in %s", from, s);
	ck_assert_int_ge(asprintf(&out, "%.*s%s%s", (int)(p - s), s, to,
	                          p + strlen(from)), 0);
	return out;
}

/* ---- tests ---- */

/* A succeeded job is POSTed once, signed, with the body GET showed then
 * (callback pending, attempts 0); then GET shows it delivered. */
START_TEST(test_delivered_signed)
{
	struct receiver *rv = receiver_start();
	jd *d = launch_cb(rv, 5, NULL, NULL);
	char *id = submit_cb(d, rv, "\"type\": \"echo\", \"payload\": "
	                     "{\"a\": [1, \"\\u00e9\"]}");
	ck_assert(receiver_wait(rv, 1, WAIT_MS));
	struct jd_resp *g = wait_callback(d, id, "delivered", WAIT_MS);
	const cJSON *cb = callback_of(g);
	char url[128];
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/hook", rv->port);
	ck_assert_str_eq(jd_str(cb, "url"), url);
	ck_assert_int_eq((int)jd_num(cb, "attempts", -1), 1);
	ck_assert(cJSON_IsNull(cJSON_GetObjectItem(cb, "last_error")));

	pthread_mutex_lock(&rv->mu);
	struct req q = rv->reqs[0];
	pthread_mutex_unlock(&rv->mu);
	ck_assert_str_eq(q.id, id);
	ck_assert_str_eq(q.path, "/hook");
	ck_assert_msg(q.sig_ok, "the signature does not verify");
	ck_assert_int_le(llabs(q.ts - jd_now_ms() / 1000), 60);
	/* Exactly GET's body, as it was before the delivery. */
	char *then = replace(g->body, "\"status\":\"delivered\",\"attempts\":1",
	                     "\"status\":\"pending\",\"attempts\":0");
	ck_assert_str_eq(q.body, then);
	free(then);
	ck_assert_int_eq(jd_sql_int(d, "SELECT attempts FROM outbox"), 1);
	ck_assert(jd_wait_metric(d, "jobd_callbacks_total{result=\"delivered\"}",
	                         1, WAIT_MS));
	ck_assert_int_eq(receiver_count(rv), 1);

	/* A job without callback_url: null, nothing sent. */
	char *plain = submit_ok(d, "{\"type\": \"noop\"}");
	struct jd_resp *p = wait_status(d, plain, "succeeded", WAIT_MS);
	ck_assert(cJSON_IsNull(cJSON_GetObjectItem(jd_json(p), "callback")));
	/* Listed jobs carry it too. */
	struct jd_resp *l = jd_request(d, "GET", "/jobs", NULL, NULL);
	assert_status(l, 200);
	ck_assert_ptr_nonnull(strstr(l->body, "\"status\":\"delivered\""));
	jd_resp_free(l);
	jd_resp_free(p);
	jd_resp_free(g);
	free(plain);
	free(id);
	jd_stop(d, 10000);
	jd_free(d);
	receiver_stop(rv);
}
END_TEST

/* A proxy in the environment is not used (nothing listens at its
 * address: a delivery through it would fail). */
START_TEST(test_proxy_environment_ignored)
{
	struct receiver *rv = receiver_start();
	setenv("http_proxy", "http://127.0.0.1:9/", 1);
	setenv("HTTP_PROXY", "http://127.0.0.1:9/", 1);
	setenv("ALL_PROXY", "http://127.0.0.1:9/", 1);
	jd *d = launch_cb(rv, 1, NULL, NULL);
	unsetenv("http_proxy");
	unsetenv("HTTP_PROXY");
	unsetenv("ALL_PROXY");
	char *id = submit_cb(d, rv, "\"type\": \"noop\"");
	jd_resp_free(wait_callback(d, id, "delivered", WAIT_MS));
	ck_assert_int_eq(receiver_count(rv), 1);
	free(id);
	jd_stop(d, 10000);
	jd_free(d);
	receiver_stop(rv);
}
END_TEST

/* The first two deliveries answer 500: retried (same id, each signed),
 * delivered on the third; the metric counts two retries. */
START_TEST(test_retried_then_delivered)
{
	struct receiver *rv = receiver_start();
	receiver_set(rv, 2, 200, false);
	jd *d = launch_cb(rv, 5, NULL, NULL);
	char *id = submit_cb(d, rv, "\"type\": \"noop\"");
	struct jd_resp *g = wait_callback(d, id, "delivered", WAIT_MS);
	ck_assert_int_eq((int)jd_num(callback_of(g), "attempts", -1), 3);
	ck_assert_int_eq(receiver_count(rv), 3);
	for (int i = 0; i < 3; i++) {
		ck_assert_str_eq(rv->reqs[i].id, id);
		ck_assert(rv->reqs[i].sig_ok);
	}
	ck_assert(jd_wait_metric(d, "jobd_callbacks_total{result=\"retried\"}",
	                         2, WAIT_MS));
	ck_assert_int_eq(jd_metric(d, "jobd_callbacks_total{result=\"delivered\"}"),
	                 1);
	jd_resp_free(g);
	free(id);
	jd_stop(d, 10000);
	jd_free(d);
	receiver_stop(rv);
}
END_TEST

/* Always 500: failed after max_attempts, with the last error. */
START_TEST(test_failed_after_max_attempts)
{
	struct receiver *rv = receiver_start();
	receiver_set(rv, 0, 500, false);
	jd *d = launch_cb(rv, 3, NULL, NULL);
	char *id = submit_cb(d, rv, "\"type\": \"noop\"");
	struct jd_resp *g = wait_callback(d, id, "failed", WAIT_MS);
	const cJSON *cb = callback_of(g);
	ck_assert_int_eq((int)jd_num(cb, "attempts", -1), 3);
	ck_assert_str_eq(jd_str(cb, "last_error"), "HTTP 500");
	ck_assert_int_eq(receiver_count(rv), 3);
	ck_assert(jd_wait_metric(d, "jobd_callbacks_total{result=\"failed\"}",
	                         1, WAIT_MS));
	jd_resp_free(g);
	free(id);
	jd_stop(d, 10000);
	jd_free(d);
	receiver_stop(rv);
}
END_TEST

/* A 302 is not followed: one request, none to its Location, failed. */
START_TEST(test_redirect_not_followed)
{
	struct receiver *rv = receiver_start();
	receiver_set(rv, 0, 302, false);
	jd *d = launch_cb(rv, 1, NULL, NULL);
	char *id = submit_cb(d, rv, "\"type\": \"noop\"");
	struct jd_resp *g = wait_callback(d, id, "failed", WAIT_MS);
	ck_assert_ptr_nonnull(strstr(jd_str(callback_of(g), "last_error"),
	                             "HTTP 302"));
	ck_assert_int_eq(receiver_count(rv), 1);
	ck_assert_str_eq(rv->reqs[0].path, "/hook");
	jd_resp_free(g);
	free(id);
	jd_stop(d, 10000);
	jd_free(d);
	receiver_stop(rv);
}
END_TEST

static long
post_status(jd *d, const char *body, char **detail)
{
	const char *h[] = {"Content-Type: application/json", NULL};
	struct jd_resp *r = jd_request(d, "POST", "/jobs", h, body);
	long st = r ? r->status : 0;

	if (detail != NULL)
		*detail = strdup(r ? r->body : "");
	jd_resp_free(r);
	return st;
}

/* What is refused, and what is not. */
START_TEST(test_refused)
{
	struct receiver *rv = receiver_start();
	jd *d = launch_cb(rv, 5, NULL, NULL);
	char body[4096], *detail = NULL;
	const char *bad[] = {
		"\"http://127.0.0.1:1/hook\"",          /* another port */
		"\"http://127.0.0.1:%d/other\"",        /* outside the prefix */
		"\"ftp://127.0.0.1:%d/hook\"",
		"\"http://127.0.0.1:%d/hook x\"",       /* a space */
		"\"http://127.0.0.1:%d/hook\\u0000x\"", /* a NUL cuts nothing */
		"\"http://127.0.0.1:%d/hook\\r\\nX: y\"",
		"\"\"",
	};

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		char url[256];
		snprintf(url, sizeof(url), bad[i], rv->port);
		snprintf(body, sizeof(body), "{\"type\": \"noop\", "
		         "\"callback_url\": %s}", url);
		ck_assert_int_eq(post_status(d, body, &detail), 422);
		ck_assert_msg(strstr(detail, "callback_url") != NULL, "%s",
		              detail);
		free(detail);
	}
	/* Not a string: 400. */
	ck_assert_int_eq(post_status(d, "{\"type\": \"noop\", \"callback_url\":"
	                             " 1}", NULL), 400);
	ck_assert_int_eq(post_status(d, "{\"type\": \"noop\", \"callback_url\":"
	                             " null}", NULL), 400);
	/* 2,048 bytes pass, 2,049 do not. */
	int n = snprintf(body, sizeof(body), "{\"type\": \"noop\", "
	                 "\"callback_url\": \"http://127.0.0.1:%d/hook",
	                 rv->port);
	int url_len = n - (int)strlen("{\"type\": \"noop\", \"callback_url\": \"");
	memset(body + n, 'a', (size_t)(2048 - url_len));
	strcpy(body + n + (2048 - url_len), "\"}");
	ck_assert_int_eq(post_status(d, body, NULL), 202);
	memset(body + n, 'a', (size_t)(2049 - url_len));
	strcpy(body + n + (2049 - url_len), "\"}");
	ck_assert_int_eq(post_status(d, body, &detail), 422);
	ck_assert_ptr_nonnull(strstr(detail, "callback_url"));
	free(detail);
	/* In a batch: the element's index. */
	snprintf(body, sizeof(body), "[{\"type\": \"noop\"}, {\"type\": "
	         "\"noop\", \"callback_url\": \"http://x.example/\"}]");
	ck_assert_int_eq(post_status(d, body, &detail), 422);
	ck_assert_msg(strstr(detail, "\"index\":1") != NULL, "%s", detail);
	free(detail);
	/* A good batch element is told. */
	snprintf(body, sizeof(body), "[{\"type\": \"noop\"}, {\"type\": "
	         "\"noop\", \"callback_url\": \"http://127.0.0.1:%d/hook/b\"}]",
	         rv->port);
	ck_assert_int_eq(post_status(d, body, NULL), 202);
	ck_assert(receiver_wait(rv, 2, WAIT_MS)); /* the 2,048 one, and it */
	jd_stop(d, 10000);
	jd_free(d);

	/* No [callbacks] allow: every callback_url is refused. */
	d = launch(2, NULL);
	snprintf(body, sizeof(body), "{\"type\": \"noop\", \"callback_url\": "
	         "\"http://127.0.0.1:%d/hook\"}", rv->port);
	ck_assert_int_eq(post_status(d, body, NULL), 422);
	jd_stop(d, 10000);
	jd_free(d);
	receiver_stop(rv);
}
END_TEST

/* Every final state is told: failed, cancelled by DELETE, cancelled by
 * a failed dependency. */
START_TEST(test_every_final_state)
{
	struct receiver *rv = receiver_start();
	jd *d = launch_cb(rv, 5, NULL, NULL);
	char *failed = submit_cb(d, rv, "\"type\": \"fail1\"");
	char *later = submit_cb(d, rv, "\"type\": \"noop\", \"delay\": 3600");
	char path[128], fields[256];
	snprintf(path, sizeof(path), "/jobs/%s", later);
	struct jd_resp *del = jd_request(d, "DELETE", path, NULL, NULL);
	assert_status(del, 200);
	jd_resp_free(del);
	snprintf(fields, sizeof(fields), "\"type\": \"noop\", \"depends_on\": "
	         "[\"%s\"]", failed);
	char *dep = submit_cb(d, rv, fields);
	const char *ids[3] = {failed, later, dep};
	const char *want[3] = {"failed", "cancelled", "cancelled"};
	for (int i = 0; i < 3; i++) {
		struct jd_resp *g = wait_callback(d, ids[i], "delivered",
		                                  WAIT_MS);
		ck_assert_str_eq(jd_resp_str(g, "status"), want[i]);
		jd_resp_free(g);
	}
	ck_assert_int_eq(receiver_count(rv), 3);
	for (int i = 0; i < 3; i++) {
		int k;
		for (k = 0; k < 3; k++)
			if (strcmp(rv->reqs[k].id, ids[i]) == 0)
				break;
		ck_assert_msg(k < 3, "no callback for %s", ids[i]);
		cJSON *b = cJSON_Parse(rv->reqs[k].body);
		ck_assert_str_eq(jd_str(b, "status"), want[i]);
		cJSON_Delete(b);
	}
	/* A retried job is told again when it ends again. */
	snprintf(path, sizeof(path), "/jobs/%s/retry", failed);
	struct jd_resp *rt = jd_request(d, "POST", path, NULL, NULL);
	assert_status(rt, 200);
	jd_resp_free(rt);
	ck_assert(receiver_wait(rv, 4, WAIT_MS));
	jd_resp_free(wait_callback(d, failed, "delivered", WAIT_MS));
	free(failed);
	free(later);
	free(dep);
	jd_stop(d, 10000);
	jd_free(d);
	receiver_stop(rv);
}
END_TEST

/* A batch element cancelled as it is inserted (its dependency had failed
 * already) is a final state like any other: its callback goes out at
 * once, and it counts as finished in /metrics.  (Before: the batch
 * reported "queued" as a whole, nothing woke the delivery thread, and
 * the callback waited for some later final state or a restart.) */
START_TEST(test_batch_cancelled_at_insert)
{
	struct receiver *rv = receiver_start();
	jd *d = launch_cb(rv, 5, NULL, NULL);
	char *failed = submit_cb(d, rv, "\"type\": \"fail1\"");
	char body[1024];
	const char *ct[] = {"Content-Type: application/json", NULL};
	struct jd_resp *r, *g;

	ck_assert(receiver_wait(rv, 1, WAIT_MS)); /* failed's own */
	snprintf(body, sizeof(body), "[{\"type\": \"noop\", \"depends_on\": "
	         "[\"%s\"], \"callback_url\": \"http://127.0.0.1:%d/hook\"}]",
	         failed, rv->port);
	r = jd_request(d, "POST", "/jobs", ct, body);
	assert_status(r, 202);
	cJSON *j = cJSON_GetArrayItem(cJSON_GetObjectItem(jd_json(r), "jobs"),
	                              0);
	ck_assert_str_eq(jd_str(j, "status"), "cancelled");
	char *id = strdup(jd_str(j, "id"));
	jd_resp_free(r);
	/* Nothing else ends on this daemon from now on. */
	g = wait_callback(d, id, "delivered", WAIT_MS);
	ck_assert_str_eq(jd_resp_str(g, "status"), "cancelled");
	jd_resp_free(g);
	ck_assert(jd_wait_metric(d, "jobd_jobs_finished_total{type=\"noop\","
	                         "status=\"cancelled\"}", 1, WAIT_MS));
	free(id);
	free(failed);
	jd_stop(d, 10000);
	jd_free(d);
	receiver_stop(rv);
}
END_TEST

/* A callback still pending when jobd stops is delivered after the
 * restart. */
START_TEST(test_pending_across_restart)
{
	struct receiver *rv = receiver_start();
	receiver_set(rv, 0, 503, false);
	jd *d = launch_cb(rv, 100, NULL, NULL);
	char *id = submit_cb(d, rv, "\"type\": \"noop\"");
	ck_assert(receiver_wait(rv, 1, WAIT_MS));
	ck_assert_int_eq(jd_stop(d, 10000), 0);
	receiver_set(rv, 0, 200, false);
	int before = receiver_count(rv);
	ck_assert_int_eq(jd_start(d), 0);
	jd_resp_free(wait_callback(d, id, "delivered", WAIT_MS));
	ck_assert_int_gt(receiver_count(rv), before);
	free(id);
	jd_stop(d, 10000);
	jd_free(d);
	receiver_stop(rv);
}
END_TEST

/* [callbacks] allow narrowed by a restart: a pending callback to a URL
 * no longer allowed is not sent, and fails. */
START_TEST(test_allow_narrowed_by_restart)
{
	struct receiver *rv = receiver_start();
	receiver_set(rv, 0, 503, false);
	jd *d = launch_cb(rv, 100, NULL, NULL);
	char *id = submit_cb(d, rv, "\"type\": \"noop\"");
	char was[128], now[128];
	ck_assert(receiver_wait(rv, 1, WAIT_MS));
	ck_assert_int_eq(jd_stop(d, 10000), 0);
	int before = receiver_count(rv);
	/* The same file, another prefix. */
	char *conf = jd_read_file(d->conf_path, NULL);
	ck_assert_ptr_nonnull(conf);
	snprintf(was, sizeof(was), "allow = http://127.0.0.1:%d/hook", rv->port);
	snprintf(now, sizeof(now), "allow = http://127.0.0.1:%d/else/", rv->port);
	char *edited = replace(conf, was, now);
	FILE *f = fopen(d->conf_path, "w");
	ck_assert_ptr_nonnull(f);
	fputs(edited, f);
	fclose(f);
	free(edited);
	free(conf);
	ck_assert_int_eq(jd_start(d), 0);
	struct jd_resp *g = wait_callback(d, id, "failed", WAIT_MS);
	ck_assert_str_eq(jd_str(callback_of(g), "last_error"),
	                 "not allowed by [callbacks] allow");
	ck_assert_int_eq(receiver_count(rv), before);
	/* Counted as failed, not as an attempt made. */
	ck_assert_int_eq(jd_metric(d, "jobd_callbacks_total{result=\"failed\"}"),
	                 1);
	ck_assert_int_eq(jd_metric(d, "jobd_callbacks_total{result=\"retried\"}"),
	                 0);
	/* (one sent as jobd stopped was given back uncounted) */
	long long attempts = jd_sql_int(d, "SELECT attempts FROM outbox");
	ck_assert_int_le(attempts, before);
	ck_assert_int_ge(attempts, before - 1);
	jd_resp_free(g);
	free(id);
	jd_stop(d, 10000);
	jd_free(d);
	receiver_stop(rv);
}
END_TEST

/* kill -9 with a delivery in flight (the receiver holds it): after the
 * restart it is sent again and delivered. */
START_TEST(test_killed_in_flight)
{
	struct receiver *rv = receiver_start();
	receiver_set(rv, 0, 200, true);
	/* (PostgreSQL: the dead run's claim is taken over after
	 * callbacks.timeout + store.lease.) */
	jd *d = launch_cb(rv, 5, "timeout = 2s\n[store]\nlease = 1s\n", NULL);
	char *id = submit_cb(d, rv, "\"type\": \"noop\"");
	ck_assert(receiver_wait(rv, 1, WAIT_MS));
	jd_kill9(d);
	receiver_set(rv, 0, 200, false); /* the held request: no answer */
	ck_assert_int_eq(jd_start(d), 0);
	jd_resp_free(wait_callback(d, id, "delivered", WAIT_MS));
	ck_assert_int_ge(receiver_count(rv), 2);
	ck_assert_str_eq(rv->reqs[1].id, id);
	ck_assert(rv->reqs[1].sig_ok);
	free(id);
	jd_stop(d, 10000);
	jd_free(d);
	receiver_stop(rv);
}
END_TEST

/* jobd stopped (SIGTERM) with a delivery in flight: it gives the row
 * back, so the restarted daemon sends it at once (on PostgreSQL too,
 * without waiting for the claim's lease: callbacks.timeout + store.lease,
 * 40 s here). */
START_TEST(test_stopped_in_flight)
{
	struct receiver *rv = receiver_start();
	receiver_set(rv, 0, 200, true);
	jd *d = launch_cb(rv, 5, NULL, NULL);
	char *id = submit_cb(d, rv, "\"type\": \"noop\"");
	ck_assert(receiver_wait(rv, 1, WAIT_MS));
	ck_assert_int_eq(jd_stop(d, 10000), 0);
	receiver_set(rv, 0, 200, false);
	ck_assert_int_eq(jd_start(d), 0);
	struct jd_resp *g = wait_callback(d, id, "delivered", WAIT_MS);
	/* The abandoned delivery did not count as an attempt. */
	ck_assert_int_eq((int)jd_num(callback_of(g), "attempts", -1), 1);
	ck_assert_int_eq(receiver_count(rv), 2);
	jd_resp_free(g);
	free(id);
	jd_stop(d, 10000);
	jd_free(d);
	receiver_stop(rv);
}
END_TEST

/* A failed job retried while its callback is in flight ends again: the
 * new delivery is claimed afresh, and the old one's late answer (500)
 * changes nothing of it. */
START_TEST(test_retry_during_delivery)
{
	struct receiver *rv = receiver_start();
	receiver_set(rv, 0, 200, true); /* hold every request */
	jd *d = launch_cb(rv, 5, NULL, NULL);
	char *id = submit_cb(d, rv, "\"type\": \"fail1\"");
	char path[128];
	ck_assert(receiver_wait(rv, 1, WAIT_MS));
	snprintf(path, sizeof(path), "/jobs/%s/retry", id);
	struct jd_resp *rt = jd_request(d, "POST", path, NULL, NULL);
	assert_status(rt, 200);
	jd_resp_free(rt);
	ck_assert(receiver_wait(rv, 2, WAIT_MS)); /* the second end's */
	/* The first answers 500 (its outcome is written first: the writer
	 * takes ops in order), then the second 200. */
	receiver_release(rv, 500);
	ck_assert(jd_wait_metric(d, "jobd_callbacks_total{result=\"retried\"}",
	                         1, WAIT_MS));
	receiver_release(rv, 200);
	struct jd_resp *g = wait_callback(d, id, "delivered", WAIT_MS);
	const cJSON *cb = callback_of(g);
	ck_assert_int_eq((int)jd_num(cb, "attempts", -1), 1);
	ck_assert(cJSON_IsNull(cJSON_GetObjectItem(cb, "last_error")));
	ck_assert_int_eq(receiver_count(rv), 2);
	receiver_set(rv, 0, 200, false);
	jd_resp_free(g);
	free(id);
	jd_stop(d, 10000);
	jd_free(d);
	receiver_stop(rv);
}
END_TEST

/* Two nodes on one PostgreSQL store: every callback is delivered once. */
START_TEST(test_two_nodes_once)
{
	enum { N = 40 };
	char *ids[N];

	if (!jd_store_is_pg())
		return;
	struct receiver *rv = receiver_start();
	jd *a = launch_cb(rv, 5, "[store]\nnode = a\n", NULL);
	jd *b = launch_cb(rv, 5, "[store]\nnode = b\n", a);
	for (int i = 0; i < N; i++)
		ids[i] = submit_cb(i % 2 ? b : a, rv, "\"type\": \"noop\"");
	for (int i = 0; i < N; i++)
		jd_resp_free(wait_callback(a, ids[i], "delivered", WAIT_MS));
	ck_assert_int_eq(jd_sql_int(a, "SELECT count(*) FROM outbox WHERE"
	                            " status = 'delivered' AND attempts = 1"),
	                 N);
	ck_assert_int_eq(receiver_count(rv), N);
	for (int i = 0; i < N; i++) {
		int seen = 0;
		for (int k = 0; k < N; k++)
			seen += strcmp(rv->reqs[k].id, ids[i]) == 0;
		ck_assert_msg(seen == 1, "%s told %d times", ids[i], seen);
		free(ids[i]);
	}
	jd_stop(b, 10000);
	jd_stop(a, 10000);
	jd_free(b);
	jd_free(a);
	receiver_stop(rv);
}
END_TEST

/* Two nodes: the node delivering dies (kill -9) with the delivery in
 * flight; the other takes the row over once the claim's lease
 * (callbacks.timeout + store.lease of the dead node: 3 s) has run out. */
START_TEST(test_two_nodes_takeover)
{
	if (!jd_store_is_pg())
		return;
	struct receiver *rv = receiver_start();
	receiver_set(rv, 0, 200, true);
	jd *a = launch_cb(rv, 5, "[store]\nnode = a\nlease = 1s\n", NULL);
	jd *b = launch_cb(rv, 5, "timeout = 2s\n[store]\nnode = b\n"
	                  "lease = 1s\n[handler.bonly]\nbuiltin = noop\n", a);
	char *id = submit_cb(b, rv, "\"type\": \"bonly\"");
	ck_assert(receiver_wait(rv, 1, WAIT_MS));
	jd_kill9(b);
	receiver_set(rv, 0, 200, false);
	struct jd_resp *g = wait_callback(a, id, "delivered", WAIT_MS);
	ck_assert_int_ge(receiver_count(rv), 2);
	for (int i = 0; i < receiver_count(rv); i++) {
		ck_assert_str_eq(rv->reqs[i].id, id);
		ck_assert(rv->reqs[i].sig_ok);
	}
	jd_resp_free(g);
	free(id);
	jd_stop(a, 10000);
	jd_free(b);
	jd_free(a);
	receiver_stop(rv);
}
END_TEST

/* Two nodes: the node running a job with no attempt left dies; the
 * other's rescue fails the job, and the callback of that final state is
 * delivered. */
START_TEST(test_two_nodes_rescue_told)
{
	if (!jd_store_is_pg())
		return;
	struct receiver *rv = receiver_start();
	jd *a = launch_cb(rv, 5, "[store]\nnode = a\nlease = 2s\n", NULL);
	jd *b = launch_cb(rv, 5, "[store]\nnode = b\nlease = 2s\n"
	                  "[handler.bsleep]\nbuiltin = sleep\n", a);
	char *id = submit_cb(b, rv, "\"type\": \"bsleep\", \"max_attempts\": "
	                     "1, \"payload\": {\"seconds\": 60}");
	jd_resp_free(wait_status(b, id, "running", WAIT_MS));
	jd_kill9(b);
	struct jd_resp *g = wait_callback(a, id, "delivered", WAIT_MS);
	ck_assert_str_eq(jd_resp_str(g, "status"), "failed");
	ck_assert_int_eq(receiver_count(rv), 1);
	cJSON *body = cJSON_Parse(rv->reqs[0].body);
	ck_assert_str_eq(jd_str(body, "status"), "failed");
	cJSON_Delete(body);
	jd_resp_free(g);
	free(id);
	jd_stop(a, 10000);
	jd_free(b);
	jd_free(a);
	receiver_stop(rv);
}
END_TEST

static Suite *
callbacks_suite(void)
{
	Suite *s = suite_create("callbacks");
	TCase *tc = tcase_create("callbacks");

	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, test_delivered_signed);
	tcase_add_test(tc, test_proxy_environment_ignored);
	tcase_add_test(tc, test_retried_then_delivered);
	tcase_add_test(tc, test_failed_after_max_attempts);
	tcase_add_test(tc, test_redirect_not_followed);
	tcase_add_test(tc, test_refused);
	tcase_add_test(tc, test_every_final_state);
	tcase_add_test(tc, test_batch_cancelled_at_insert);
	tcase_add_test(tc, test_pending_across_restart);
	tcase_add_test(tc, test_killed_in_flight);
	tcase_add_test(tc, test_allow_narrowed_by_restart);
	tcase_add_test(tc, test_stopped_in_flight);
	tcase_add_test(tc, test_retry_during_delivery);
	tcase_add_test(tc, test_two_nodes_once);
	tcase_add_test(tc, test_two_nodes_takeover);
	tcase_add_test(tc, test_two_nodes_rescue_told);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	return run_suite(callbacks_suite());
}
