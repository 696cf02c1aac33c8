/*
 * test_plugins.c - handlers in shared objects (issue 16 item 4, DESIGN §4
 * "plugin"), over the real daemon and HTTP, on either store:
 *
 *  - the example plugins end to end: sha256.so against OpenSSL's digest
 *    computed here, a missing file failing for good; fetch.so against a
 *    loopback HTTP server thread of this file (200, 404, a prefix that
 *    plugin_config does not allow), and a DELETE while the server stalls
 *    mid-body, which cancels the transfer (the server sees the close);
 *  - start-up refusals, each naming the file and the reason, with a
 *    non-zero exit, and the same from --check-config: a missing file, a
 *    file that is not a shared object, no jobd_plugin symbol, another
 *    ABI, an init that fails, a jobd symbol that is not exported;
 *  - plugin_config reaching init, init/fini once per section, fini at
 *    shutdown; a C++ plugin; what jobd makes of odd returns (an unknown
 *    outcome, text that is not JSON or not UTF-8, a result over
 *    max_output, a stop nobody asked for); a DELETE of a plugin waiting
 *    in jobd_ctx_sleep; SIGHUP adding a plugin, and one that cannot load
 *    rejected with the running configuration kept.
 *
 * The plugins come from $JOBD_PLUGIN_DIR (default build/plugins) and
 * $JOBD_TEST_PLUGIN_DIR (default build/test-plugins), built by make.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <openssl/evp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "checks.h"

#define WAIT_MS 30000
#define PBUF 512      /* a path of the tests' */
#define TBUF 8192     /* what holds a few of them */

/* An absolute path of plugin name (sha256, probe, ...) in its dir. */
static void
plugin_path(char *out, size_t len, bool example, const char *name)
{
	const char *env = getenv(example ? "JOBD_PLUGIN_DIR"
	                                 : "JOBD_TEST_PLUGIN_DIR");
	char dir[PATH_MAX];

	if (env == NULL || env[0] == '\0')
		env = example ? "build/plugins" : "build/test-plugins";
	ck_assert_msg(realpath(env, dir) != NULL, "no plugin directory %s "
	              "(make test-plugins)", env);
	ck_assert_msg(strlen(dir) + strlen(name) + 5 <= len, "path too long");
	memcpy(out, dir, strlen(dir));
	snprintf(out + strlen(dir), len - strlen(dir), "/%s.so", name);
	ck_assert_msg(access(out, R_OK) == 0, "%s: missing (make "
	              "test-plugins)", out);
}

static jd *
launch_with(const char *extra, int threads)
{
	struct jd_opts o = {.threads = threads, .extra = extra};
	jd *d = jd_launch(&o);

	ck_assert_msg(d != NULL, "the daemon did not start");
	return d;
}

/* Submits {"type": type, "payload": payload_json}; the job's id. */
static char *
submit_type(jd *d, const char *type, const char *payload_json)
{
	char body[4096];

	snprintf(body, sizeof(body), "{\"type\": \"%s\", \"payload\": %s}",
	         type, payload_json);
	return submit_ok(d, body);
}

/* The job's final answer once it has status (fails otherwise). */
static struct jd_resp *
finish(jd *d, const char *id, const char *status)
{
	return wait_status(d, id, status, WAIT_MS);
}

static void
write_file(const char *path, const void *data, size_t len)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);

	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(write(fd, data, len), (ssize_t)len);
	ck_assert_int_eq(close(fd), 0);
}

/* The job's status and attempt in the store itself. */
static void
assert_stored(jd *d, const char *id, const char *status, int attempt)
{
	char sql[256];
	char *st;

	snprintf(sql, sizeof(sql), "SELECT status FROM jobs WHERE id = '%s'",
	         id);
	st = jd_sql_text(d, sql);
	ck_assert_msg(st != NULL && strcmp(st, status) == 0, "stored status "
	              "%s, expected %s", st ? st : "(none)", status);
	free(st);
	snprintf(sql, sizeof(sql), "SELECT attempt FROM jobs WHERE id = '%s'",
	         id);
	long long got = jd_sql_int(d, sql);
	if (got != attempt) {
		char path[128];
		snprintf(path, sizeof(path), "/jobs/%s", id);
		struct jd_resp *r = jd_request(d, "GET", path, NULL, NULL);
		ck_assert_msg(0, "stored attempt %lld, expected %d; GET: %s",
		              got, attempt, r ? r->body : "");
	}
}

/* Waits until a worker has started the job's attempt (the store's
 * attempt_started): "running" alone is shown from the claim on, and a
 * job claimed but not yet started is cancelled without its attempt. */
static void
wait_started(jd *d, const char *id)
{
	char sql[256];
	int64_t until = jd_mono_ms() + WAIT_MS;

	snprintf(sql, sizeof(sql), "SELECT attempt_started FROM jobs WHERE "
	         "id = '%s' AND status = 'running'", id);
	while (jd_sql_int(d, sql) != 1) {
		ck_assert_msg(jd_mono_ms() < until, "job %s was not started "
		              "within %d ms", id, WAIT_MS);
		jd_pause_ms(20);
	}
}

/* ================================================================
 * sha256.so
 * ================================================================ */

START_TEST(test_sha256_end_to_end)
{
	char so[PBUF], extra[TBUF], file[PBUF], payload[TBUF];
	unsigned char sum[EVP_MAX_MD_SIZE];
	unsigned int sumlen = 0;
	char hex[65];
	size_t len = (3u << 20) + 12345; /* several chunks and a tail */
	unsigned char *data = malloc(len);
	jd *d;

	plugin_path(so, sizeof(so), true, "sha256");
	snprintf(extra, sizeof(extra), "[handler.sha256]\nplugin = %s\n", so);
	d = launch_with(extra, 2);

	ck_assert_ptr_nonnull(data);
	for (size_t i = 0; i < len; i++)
		data[i] = (unsigned char)(i * 2654435761u >> 13);
	snprintf(file, sizeof(file), "%s/data.bin", d->dir);
	write_file(file, data, len);
	ck_assert_int_eq(EVP_Digest(data, len, sum, &sumlen, EVP_sha256(),
	                            NULL), 1);
	ck_assert_uint_eq(sumlen, 32);
	for (unsigned int i = 0; i < sumlen; i++)
		snprintf(hex + 2 * i, 3, "%02x", sum[i]);
	free(data);

	snprintf(payload, sizeof(payload), "{\"path\": \"%s\"}", file);
	char *id = submit_type(d, "sha256", payload);
	struct jd_resp *r = finish(d, id, "succeeded");
	const cJSON *res = cJSON_GetObjectItemCaseSensitive(jd_json(r),
	                                                    "result");
	ck_assert_ptr_nonnull(res);
	ck_assert_str_eq(jd_str(res, "sha256"), hex);
	jd_resp_free(r);
	assert_stored(d, id, "succeeded", 1);
	free(id);

	/* An empty file: the well-known digest. */
	snprintf(file, sizeof(file), "%s/empty", d->dir);
	write_file(file, "", 0);
	snprintf(payload, sizeof(payload), "{\"path\": \"%s\"}", file);
	id = submit_type(d, "sha256", payload);
	r = finish(d, id, "succeeded");
	res = cJSON_GetObjectItemCaseSensitive(jd_json(r), "result");
	ck_assert_str_eq(jd_str(res, "sha256"), "e3b0c44298fc1c149afbf4c8996f"
	                 "b92427ae41e4649b934ca495991b7852b855");
	jd_resp_free(r);
	free(id);

	/* A missing file fails for good: one attempt of three. */
	snprintf(payload, sizeof(payload), "{\"path\": \"%s/nope\"}", d->dir);
	id = submit_type(d, "sha256", payload);
	r = finish(d, id, "failed");
	ck_assert_int_eq((int)jd_num(jd_json(r), "attempt", -1), 1);
	ck_assert_ptr_nonnull(strstr(jd_resp_str(r, "error"), "nope"));
	jd_resp_free(r);
	assert_stored(d, id, "failed", 1);
	free(id);

	/* Hostile payloads: not an object, a \u0000 cutting the path short
	 * (would hash the directory's sibling), a directory, a FIFO. */
	const char *bad[] = {"null", "[1]", "{\"path\": 5}", "{\"path\": \"\"}",
	                     NULL, NULL, NULL};
	char cut[TBUF], dirp[TBUF], fifo[TBUF];
	snprintf(cut, sizeof(cut), "{\"path\": \"%s/data.bin\\u0000x\"}",
	         d->dir);
	snprintf(dirp, sizeof(dirp), "{\"path\": \"%s\"}", d->dir);
	snprintf(file, sizeof(file), "%s/fifo", d->dir);
	ck_assert_int_eq(mkfifo(file, 0600), 0);
	snprintf(fifo, sizeof(fifo), "{\"path\": \"%s\"}", file);
	bad[4] = cut, bad[5] = dirp, bad[6] = fifo;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		id = submit_type(d, "sha256", bad[i]);
		r = finish(d, id, "failed");
		ck_assert_int_eq((int)jd_num(jd_json(r), "attempt", -1), 1);
		jd_resp_free(r);
		free(id);
	}

	/* GET /types says what kind it is. */
	r = jd_request(d, "GET", "/types", NULL, NULL);
	assert_status(r, 200);
	ck_assert_ptr_nonnull(strstr(r->body, "\"plugin\""));
	jd_resp_free(r);
	jd_free(d);
}
END_TEST

/* Several workers hash at once (run is called concurrently on one
 * state); a DELETE stops a hash between chunks (a sparse terabyte: only
 * the DELETE can end it within the hour's timeout); so does shutdown,
 * which puts the job back. */
START_TEST(test_sha256_concurrent_and_stopped)
{
	char so[PBUF], extra[TBUF], file[PBUF], payload[TBUF], path[128];
	char *ids[24];
	jd *d;

	plugin_path(so, sizeof(so), true, "sha256");
	snprintf(extra, sizeof(extra), "[handler.sha256]\nplugin = %s\n"
	         "timeout = 1h\n[workers]\nshutdown_grace = 0\n", so);
	d = launch_with(extra, 4);
	snprintf(file, sizeof(file), "%s/abc", d->dir);
	write_file(file, "abc", 3);
	snprintf(payload, sizeof(payload), "{\"path\": \"%s\"}", file);
	for (size_t i = 0; i < 24; i++)
		ids[i] = submit_type(d, "sha256", payload);
	for (size_t i = 0; i < 24; i++) {
		struct jd_resp *r = finish(d, ids[i], "succeeded");
		ck_assert_ptr_nonnull(strstr(r->body, "ba7816bf8f01cfea4141"));
		jd_resp_free(r);
		free(ids[i]);
	}

	snprintf(file, sizeof(file), "%s/sparse", d->dir);
	int fd = open(file, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(ftruncate(fd, 1LL << 40), 0);
	close(fd);
	snprintf(payload, sizeof(payload), "{\"path\": \"%s\"}", file);
	char *id = submit_type(d, "sha256", payload);
	jd_resp_free(finish(d, id, "running"));
	wait_started(d, id);
	snprintf(path, sizeof(path), "/jobs/%s", id);
	struct jd_resp *r = jd_request(d, "DELETE", path, NULL, NULL);
	assert_status(r, 202);
	jd_resp_free(r);
	jd_resp_free(finish(d, id, "cancelled"));
	assert_stored(d, id, "cancelled", 1);
	free(id);

	id = submit_type(d, "sha256", payload);
	jd_resp_free(finish(d, id, "running"));
	wait_started(d, id);
	ck_assert_int_eq(jd_stop(d, WAIT_MS), 0);
	assert_stored(d, id, "queued", 0);
	free(id);
	jd_free(d);
}
END_TEST

/* The README's minimal plugin, as shipped in examples/plugins/hello.c:
 * plugin_config, progress, stop and the result. */
START_TEST(test_hello_example)
{
	char so[PBUF], extra[TBUF];
	jd *d;

	plugin_path(so, sizeof(so), true, "hello");
	snprintf(extra, sizeof(extra), "[handler.hello]\nplugin = %s\n"
	         "plugin_config = 3\n[handler.slow]\nplugin = %s\n"
	         "plugin_config = 100\ntimeout = 250ms\nmax_attempts = 1\n",
	         so, so);
	d = launch_with(extra, 2);
	char *id = submit_type(d, "hello", "null");
	struct jd_resp *r = finish(d, id, "succeeded");
	const cJSON *res = cJSON_GetObjectItemCaseSensitive(jd_json(r),
	                                                    "result");
	ck_assert_str_eq(jd_str(res, "hello"), id);
	ck_assert_int_eq((int)jd_num(res, "attempt", -1), 1);
	jd_resp_free(r);
	free(id);
	id = submit_type(d, "hello", "\"fail\"");
	r = finish(d, id, "failed");
	ck_assert_str_eq(jd_resp_str(r, "error"), "asked to fail");
	jd_resp_free(r);
	free(id);
	/* 100 steps of 100 ms against a 250 ms timeout: stopped by it. */
	id = submit_type(d, "slow", "null");
	r = finish(d, id, "failed");
	ck_assert_ptr_nonnull(strstr(jd_resp_str(r, "error"), "timed out"));
	jd_resp_free(r);
	free(id);
	jd_free(d);
}
END_TEST

/* plugin_config confines sha256 to a directory; a bad one refuses. */
START_TEST(test_sha256_root)
{
	char so[PBUF], extra[TBUF], root[PBUF];
	char inside[PBUF + 8], outside[PBUF + 8], payload[TBUF];
	jd *d;

	plugin_path(so, sizeof(so), true, "sha256");
	snprintf(root, sizeof(root), "%s/sha-root-XXXXXX",
	         getenv("JOBD_ITEST_ROOT"));
	ck_assert_ptr_nonnull(mkdtemp(root));
	snprintf(extra, sizeof(extra), "[handler.sha256]\nplugin = %s\n"
	         "plugin_config = %s\n", so, root);
	d = launch_with(extra, 1);
	snprintf(inside, sizeof(inside), "%s/in", root);
	write_file(inside, "abc", 3);
	snprintf(outside, sizeof(outside), "%s/out", d->dir);
	write_file(outside, "abc", 3);

	snprintf(payload, sizeof(payload), "{\"path\": \"%s\"}", inside);
	char *id = submit_type(d, "sha256", payload);
	struct jd_resp *r = finish(d, id, "succeeded");
	ck_assert_ptr_nonnull(strstr(r->body, "ba7816bf8f01cfea414140de5dae2223"
	                                      "b00361a396177a9cb410ff61f20015ad"));
	jd_resp_free(r);
	free(id);
	/* Outside, and a way out through "..". */
	snprintf(payload, sizeof(payload), "{\"path\": \"%s\"}", outside);
	id = submit_type(d, "sha256", payload);
	jd_resp_free(finish(d, id, "failed"));
	free(id);
	snprintf(payload, sizeof(payload), "{\"path\": \"%s/../%s/out\"}",
	         root, strrchr(d->dir, '/') + 1);
	id = submit_type(d, "sha256", payload);
	r = finish(d, id, "failed");
	ck_assert_ptr_nonnull(strstr(jd_resp_str(r, "error"),
	                             "not under the configured directory"));
	jd_resp_free(r);
	free(id);
	jd_free(d);
	unlink(inside);
	rmdir(root);
}
END_TEST

/* ================================================================
 * fetch.so, against a loopback server thread
 * ================================================================ */

struct server {
	int fd;                 /* listening socket */
	int stop_fd;            /* eventfd: stop the thread */
	int port;
	pthread_t thread;
	atomic_int requests;    /* requests answered or stalled */
	atomic_int stalled;     /* a /stall answer is half sent */
	atomic_int closed;      /* the client closed a stalled answer */
};

static void
send_all(int fd, const char *buf, size_t len)
{
	while (len > 0) {
		ssize_t n = send(fd, buf, len, MSG_NOSIGNAL);
		if (n <= 0)
			return;
		buf += n;
		len -= (size_t)n;
	}
}

/* One connection: reads the request head, answers by path. */
static void
serve_one(struct server *s, int c)
{
	char req[4096] = "", head[256];
	size_t got = 0;

	while (got < sizeof(req) - 1 && strstr(req, "\r\n\r\n") == NULL) {
		ssize_t n = recv(c, req + got, sizeof(req) - 1 - got, 0);
		if (n <= 0)
			return;
		got += (size_t)n;
		req[got] = '\0';
	}
	atomic_fetch_add(&s->requests, 1);
	if (strncmp(req, "GET /ok ", 8) == 0) {
		static char body[100000];
		memset(body, 'x', sizeof(body));
		snprintf(head, sizeof(head), "HTTP/1.1 200 OK\r\nContent-Length:"
		         " %zu\r\nConnection: close\r\n\r\n", sizeof(body));
		send_all(c, head, strlen(head));
		send_all(c, body, sizeof(body));
	} else if (strncmp(req, "GET /stall ", 11) == 0) {
		snprintf(head, sizeof(head), "HTTP/1.1 200 OK\r\nContent-Length:"
		         " 1000000\r\nConnection: close\r\n\r\n0123456789");
		send_all(c, head, strlen(head));
		atomic_store(&s->stalled, 1);
		/* Until the client goes away (or the test ends). */
		for (;;) {
			struct pollfd p[2] = {{.fd = c, .events = POLLIN},
			                      {.fd = s->stop_fd, .events = POLLIN}};
			if (poll(p, 2, -1) < 0 && errno != EINTR)
				return;
			if (p[1].revents)
				return;
			if (p[0].revents) {
				char b[256];
				if (recv(c, b, sizeof(b), 0) <= 0) {
					atomic_store(&s->closed, 1);
					return;
				}
			}
		}
	} else {
		const char *nf = "HTTP/1.1 404 Not Found\r\nContent-Length: 9\r\n"
		                 "Connection: close\r\n\r\nnot found";
		send_all(c, nf, strlen(nf));
	}
}

static void *
server_main(void *arg)
{
	struct server *s = arg;

	for (;;) {
		struct pollfd p[2] = {{.fd = s->fd, .events = POLLIN},
		                      {.fd = s->stop_fd, .events = POLLIN}};
		if (poll(p, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			return NULL;
		}
		if (p[1].revents)
			return NULL;
		int c = accept4(s->fd, NULL, NULL, SOCK_CLOEXEC);
		if (c < 0)
			continue;
		serve_one(s, c);
		close(c);
	}
}

static struct server *
server_start(void)
{
	struct server *s = calloc(1, sizeof(*s));
	struct sockaddr_in a = {.sin_family = AF_INET,
	                        .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t al = sizeof(a);

	ck_assert_ptr_nonnull(s);
	s->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	ck_assert_int_ge(s->fd, 0);
	ck_assert_int_eq(bind(s->fd, (struct sockaddr *)&a, sizeof(a)), 0);
	ck_assert_int_eq(listen(s->fd, 16), 0);
	ck_assert_int_eq(getsockname(s->fd, (struct sockaddr *)&a, &al), 0);
	s->port = ntohs(a.sin_port);
	s->stop_fd = eventfd(0, EFD_CLOEXEC);
	ck_assert_int_ge(s->stop_fd, 0);
	ck_assert_int_eq(pthread_create(&s->thread, NULL, server_main, s), 0);
	return s;
}

static void
server_stop(struct server *s)
{
	eventfd_write(s->stop_fd, 1);
	pthread_join(s->thread, NULL);
	close(s->fd);
	close(s->stop_fd);
	free(s);
}

/* Polls (bounded) until *flag is set. */
static bool
wait_flag(atomic_int *flag, int timeout_ms)
{
	int64_t until = jd_mono_ms() + timeout_ms;

	while (atomic_load(flag) == 0 && jd_mono_ms() < until)
		jd_pause_ms(20);
	return atomic_load(flag) != 0;
}

START_TEST(test_fetch_end_to_end)
{
	char so[PBUF], extra[TBUF], payload[TBUF];
	struct server *s = server_start();
	jd *d;

	plugin_path(so, sizeof(so), true, "fetch");
	/* Only this server's URLs; an hour's timeout, so that only the
	 * DELETE can end the stalled transfer. */
	snprintf(extra, sizeof(extra), "[handler.fetch]\nplugin = %s\n"
	         "plugin_config = http://127.0.0.1:%d/\ntimeout = 1h\n"
	         "max_attempts = 2\nbackoff_base = 10ms\nbackoff_max = 10ms\n",
	         so, s->port);
	d = launch_with(extra, 2);

	snprintf(payload, sizeof(payload), "{\"url\": \"http://127.0.0.1:%d/ok\"}",
	         s->port);
	char *id = submit_type(d, "fetch", payload);
	struct jd_resp *r = finish(d, id, "succeeded");
	const cJSON *res = cJSON_GetObjectItemCaseSensitive(jd_json(r),
	                                                    "result");
	ck_assert_int_eq((int)jd_num(res, "status", -1), 200);
	ck_assert_int_eq((int)jd_num(res, "bytes", -1), 100000);
	jd_resp_free(r);
	assert_stored(d, id, "succeeded", 1);
	free(id);

	/* 404: failed for good, the status in the result. */
	snprintf(payload, sizeof(payload),
	         "{\"url\": \"http://127.0.0.1:%d/missing\"}", s->port);
	id = submit_type(d, "fetch", payload);
	r = finish(d, id, "failed");
	res = cJSON_GetObjectItemCaseSensitive(jd_json(r), "result");
	ck_assert_int_eq((int)jd_num(res, "status", -1), 404);
	ck_assert_int_eq((int)jd_num(jd_json(r), "attempt", -1), 1);
	jd_resp_free(r);
	free(id);

	/* Not under plugin_config's prefix, or not http(s): never sent. */
	int before = atomic_load(&s->requests);
	const char *refused[] = {"{\"url\": \"http://127.0.0.2:1/x\"}",
	                         "{\"url\": \"file:///etc/passwd\"}",
	                         "{\"url\": 42}", NULL, NULL, NULL};
	char nul[256], crlf[256], space[256];
	snprintf(nul, sizeof(nul), "{\"url\": \"http://127.0.0.1:%d/ok"
	         "\\u0000@evil\"}", s->port);
	snprintf(crlf, sizeof(crlf), "{\"url\": \"http://127.0.0.1:%d/ok"
	         "\\r\\nX-Injected: 1\"}", s->port);
	snprintf(space, sizeof(space), "{\"url\": \"http://127.0.0.1:%d/o k"
	         "\"}", s->port);
	refused[3] = nul, refused[4] = crlf, refused[5] = space;
	/* Each fails for good: a retry would not make it any better. */
	for (size_t i = 0; i < sizeof(refused) / sizeof(refused[0]); i++) {
		id = submit_type(d, "fetch", refused[i]);
		r = finish(d, id, "failed");
		ck_assert_msg(jd_num(jd_json(r), "attempt", -1) == 1,
		              "%s: %s", refused[i], r->body);
		jd_resp_free(r);
		free(id);
	}
	ck_assert_int_eq(atomic_load(&s->requests), before);

	/* A DELETE while the body stalls cancels the transfer. */
	snprintf(payload, sizeof(payload),
	         "{\"url\": \"http://127.0.0.1:%d/stall\"}", s->port);
	id = submit_type(d, "fetch", payload);
	ck_assert_msg(wait_flag(&s->stalled, WAIT_MS), "no stalled request");
	jd_resp_free(finish(d, id, "running"));
	wait_started(d, id);
	char path[128];
	snprintf(path, sizeof(path), "/jobs/%s", id);
	r = jd_request(d, "DELETE", path, NULL, NULL);
	assert_status(r, 202);
	jd_resp_free(r);
	r = finish(d, id, "cancelled");
	jd_resp_free(r);
	assert_stored(d, id, "cancelled", 1);
	ck_assert_msg(wait_flag(&s->closed, WAIT_MS), "the plugin did not "
	              "close the stalled connection");
	free(id);

	jd_free(d);
	server_stop(s);
}
END_TEST

/* ================================================================
 * Refusals at start-up and in --check-config
 * ================================================================ */

/* Runs `jobd --check-config --config conf`; its exit status, and what
 * it printed in *out (caller frees). */
static int
check_config(const char *conf, char **out)
{
	char out_path[PBUF];
	const char *bin = getenv("JOBD_BIN");
	int fd, st = 0;
	pid_t pid;

	if (bin == NULL || bin[0] == '\0')
		bin = "build/jobd";
	snprintf(out_path, sizeof(out_path), "%s.out", conf);
	fd = open(out_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	ck_assert_int_ge(fd, 0);
	fflush(NULL);
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		dup2(fd, 1);
		dup2(fd, 2);
		execl(bin, bin, "--check-config", "--config", conf, (char *)NULL);
		_exit(127);
	}
	close(fd);
	ck_assert_int_eq(waitpid(pid, &st, 0), pid);
	*out = jd_read_file(out_path, NULL);
	ck_assert_ptr_nonnull(*out);
	ck_assert_msg(WIFEXITED(st), "jobd --check-config died: 0x%x", st);
	return WEXITSTATUS(st);
}

/*
 * A daemon whose [handler.bad] names path (with config_line, may be "")
 * must refuse to start and --check-config must refuse too, both naming
 * the file and saying reason.
 */
static void
refused(const char *path, const char *config_line, const char *reason)
{
	char extra[TBUF];
	struct jd_opts o = {.threads = 1, .extra = extra};
	jd *d;

	snprintf(extra, sizeof(extra), "[handler.bad]\nplugin = %s\n%s", path,
	         config_line);
	d = jd_new(&o);
	ck_assert_ptr_nonnull(d);
	fprintf(stderr, "test_plugins: jobd must refuse %s (%s); the harness "
	        "reports the exit below\n", path, reason);
	ck_assert_msg(jd_start(d) != 0, "jobd started with %s", path);
	ck_assert_msg(d->pid <= 0 && WIFEXITED(d->wait_status) &&
	              WEXITSTATUS(d->wait_status) != 0,
	              "jobd did not exit non-zero (wait status 0x%x)",
	              d->wait_status);
	char *log = jd_read_file(d->log_path, NULL);
	ck_assert_ptr_nonnull(log);
	ck_assert_msg(strstr(log, path) != NULL && strstr(log, reason) != NULL
	              && strstr(log, "[handler.bad] plugin") != NULL,
	              "the log does not name %s and \"%s\":\n%s", path, reason,
	              log);
	free(log);
	/* Nothing was made in the store. */
	ck_assert_int_eq(jd_store_made(d), 0);

	char *out = NULL;
	int rc = check_config(d->conf_path, &out);
	ck_assert_msg(rc != 0 && strstr(out, "config OK") == NULL &&
	              strstr(out, path) != NULL && strstr(out, reason) != NULL,
	              "--check-config (exit %d):\n%s", rc, out);
	free(out);
	jd_free(d);
}

START_TEST(test_refuse_missing_file)
{
	refused("/nonexistent/dir/plugin.so", "",
	        "No such file or directory");
}
END_TEST

START_TEST(test_refuse_not_shared_object)
{
	char path[PBUF];

	snprintf(path, sizeof(path), "%s/not-a-plugin.so",
	         getenv("JOBD_ITEST_ROOT"));
	write_file(path, "#!/bin/sh\necho I am a script\n", 29);
	refused(path, "", "cannot load");
	unlink(path);
	/* A FIFO (dlopen would wait for a writer forever), a directory. */
	ck_assert_int_eq(mkfifo(path, 0600), 0);
	refused(path, "", "not a regular file");
	unlink(path);
	refused(getenv("JOBD_ITEST_ROOT"), "", "not a regular file");
}
END_TEST

/* A plugin file others or its group may write is refused. */
START_TEST(test_refuse_writable_file)
{
	char so[PBUF], copy[PBUF];
	size_t len;
	char *data;

	plugin_path(so, sizeof(so), false, "probe");
	data = jd_read_file(so, &len);
	ck_assert_ptr_nonnull(data);
	snprintf(copy, sizeof(copy), "%s/probe-copy.so",
	         getenv("JOBD_ITEST_ROOT"));
	write_file(copy, data, len);
	free(data);
	ck_assert_int_eq(chmod(copy, 0666), 0);
	refused(copy, "", "writable by others (mode 0666)");
	ck_assert_int_eq(chmod(copy, 0660), 0);
	refused(copy, "", "writable by its group (mode 0660)");
	unlink(copy);
}
END_TEST

START_TEST(test_refuse_no_symbol)
{
	char so[PBUF];

	plugin_path(so, sizeof(so), false, "no_symbol");
	refused(so, "", "no \"jobd_plugin\" symbol");
}
END_TEST

START_TEST(test_refuse_wrong_abi)
{
	char so[PBUF];

	plugin_path(so, sizeof(so), false, "bad_abi");
	refused(so, "", "plugin ABI 2");
}
END_TEST

START_TEST(test_refuse_init_failing)
{
	char so[PBUF];

	/* Its reason quotes plugin_config: it reached init. */
	plugin_path(so, sizeof(so), false, "init_fails");
	refused(so, "plugin_config = some settings\n",
	        "init failed (returned 7");
	refused(so, "plugin_config = some settings\n",
	        "init_fails says no to \"some settings\"");
}
END_TEST

START_TEST(test_refuse_unexported_symbol)
{
	char so[PBUF];

	/* jobd exports jobd_ctx_* only: config_load is not for plugins. */
	plugin_path(so, sizeof(so), false, "hidden_symbol");
	refused(so, "", "undefined symbol: config_load");
}
END_TEST

/* The example plugins' own init refusals. */
START_TEST(test_refuse_bad_plugin_config)
{
	char so[PBUF];

	plugin_path(so, sizeof(so), true, "sha256");
	refused(so, "plugin_config = /nonexistent-root\n",
	        "plugin_config must be a directory");
	plugin_path(so, sizeof(so), true, "fetch");
	refused(so, "plugin_config = ftp://x/\n", "not an http");
}
END_TEST

/* ================================================================
 * The probe plugin: config, init/fini, odd returns, stops, reload
 * ================================================================ */

/* How many files dir holds whose name starts with prefix. */
static int
count_files(const char *dir, const char *prefix)
{
	char cmd[TBUF];
	int n = 0;
	FILE *p;

	snprintf(cmd, sizeof(cmd), "cat %s/%s.* 2>/dev/null | wc -l", dir,
	         prefix);
	p = popen(cmd, "r");
	ck_assert_ptr_nonnull(p);
	ck_assert_int_eq(fscanf(p, "%d", &n), 1);
	pclose(p);
	return n;
}

START_TEST(test_probe_config_and_returns)
{
	char so[PBUF], cxx[PBUF], extra[TBUF], counts[PBUF];
	jd *d;

	plugin_path(so, sizeof(so), false, "probe");
	plugin_path(cxx, sizeof(cxx), false, "cplusplus");
	snprintf(counts, sizeof(counts), "%s/counts-XXXXXX",
	         getenv("JOBD_ITEST_ROOT"));
	ck_assert_ptr_nonnull(mkdtemp(counts));
	/* Two sections on one file with two configs: two inits; a third
	 * with the first's config shares its init. */
	snprintf(extra, sizeof(extra),
	         "[handler.probe]\nplugin = %s\nplugin_config = count=%s "
	         "héllo \"quoted\" \\back\nmax_attempts = 2\n"
	         "backoff_base = 10ms\nbackoff_max = 10ms\n"
	         "[handler.probe2]\nplugin = %s\nplugin_config = count=%s two\n"
	         "[handler.probe3]\nplugin = %s\nplugin_config = count=%s "
	         "héllo \"quoted\" \\back\n"
	         "[handler.cxx]\nplugin = %s\n"
	         "[workers]\nshutdown_grace = 0\n",
	         so, counts, so, counts, so, counts, cxx);
	d = launch_with(extra, 2);
	ck_assert_int_eq(count_files(counts, "init"), 2);

	/* plugin_config reached init, byte for byte; text that is not JSON
	 * is kept as a JSON string. */
	char *id = submit_type(d, "probe", "\"config\"");
	struct jd_resp *r = finish(d, id, "succeeded");
	char want[TBUF];
	snprintf(want, sizeof(want), "count=%s héllo \"quoted\" \\back", counts);
	ck_assert_str_eq(jd_resp_str(r, "result"), want);
	jd_resp_free(r);
	free(id);
	id = submit_type(d, "probe2", "\"config\"");
	r = finish(d, id, "succeeded");
	ck_assert_ptr_nonnull(strstr(jd_resp_str(r, "result"), " two"));
	jd_resp_free(r);
	free(id);

	/* JSON text is kept as JSON (compact). */
	id = submit_type(d, "probe", "\"json\"");
	r = finish(d, id, "succeeded");
	ck_assert_ptr_nonnull(strstr(r->body, "\"result\":{\"n\":[1,2,3]}"));
	jd_resp_free(r);
	free(id);

	/* An outcome jobd does not know: retried, then failed, saying so. */
	id = submit_type(d, "probe", "\"outcome\"");
	r = finish(d, id, "failed");
	ck_assert_int_eq((int)jd_num(jd_json(r), "attempt", -1), 2);
	ck_assert_ptr_nonnull(strstr(jd_resp_str(r, "error"),
	                             "returned outcome 42"));
	ck_assert_ptr_nonnull(strstr(jd_resp_str(r, "error"), ": odd"));
	jd_resp_free(r);
	assert_stored(d, id, "failed", 2);
	free(id);

	/* Failed for good: one attempt, its message. */
	id = submit_type(d, "probe", "\"forgood\"");
	r = finish(d, id, "failed");
	ck_assert_int_eq((int)jd_num(jd_json(r), "attempt", -1), 1);
	ck_assert_str_eq(jd_resp_str(r, "error"), "probe: no use retrying");
	jd_resp_free(r);
	free(id);

	/* Bytes that are not UTF-8 in the error and result: valid JSON
	 * comes out (the answer parsed), the text around them kept. */
	id = submit_type(d, "probe", "\"badutf8\"");
	r = finish(d, id, "failed");
	ck_assert_ptr_nonnull(jd_json(r));
	ck_assert_ptr_nonnull(strstr(jd_resp_str(r, "error"), " bytes"));
	ck_assert_ptr_nonnull(strstr(jd_resp_str(r, "result"), "raw "));
	jd_resp_free(r);
	free(id);

	/* A result over max_output (1M by default) is dropped. */
	id = submit_type(d, "probe", "\"big\"");
	r = finish(d, id, "succeeded");
	ck_assert_ptr_nonnull(strstr(r->body, "\"result\":null"));
	jd_resp_free(r);
	free(id);

	/* JOBD_STOPPED with no stop asked: a failed attempt, said so. */
	id = submit_type(d, "probe", "\"stopped\"");
	r = finish(d, id, "failed");
	ck_assert_ptr_nonnull(strstr(jd_resp_str(r, "error"),
	                             "stopped unasked"));
	jd_resp_free(r);
	free(id);

	/* C++. */
	id = submit_type(d, "cxx", "null");
	r = finish(d, id, "succeeded");
	ck_assert_ptr_nonnull(strstr(r->body, "\"result\":{\"lang\":\"c++\"}"));
	jd_resp_free(r);
	free(id);

	/* A DELETE reaches the plugin in jobd_ctx_sleep. */
	id = submit_type(d, "probe", "\"wait\"");
	jd_resp_free(finish(d, id, "running"));
	wait_started(d, id);
	char path[128];
	snprintf(path, sizeof(path), "/jobs/%s", id);
	r = jd_request(d, "DELETE", path, NULL, NULL);
	assert_status(r, 202);
	jd_resp_free(r);
	jd_resp_free(finish(d, id, "cancelled"));
	assert_stored(d, id, "cancelled", 1);
	free(id);

	/* Shutdown while one waits: it is stopped and requeued, then fini
	 * runs once per init. */
	id = submit_type(d, "probe3", "\"wait\"");
	jd_resp_free(finish(d, id, "running"));
	wait_started(d, id);
	ck_assert_int_eq(count_files(counts, "fini"), 0);
	ck_assert_int_eq(jd_stop(d, WAIT_MS), 0);
	ck_assert_int_eq(count_files(counts, "fini"), 2);
	assert_stored(d, id, "queued", 0);
	free(id);
	jd_free(d);
}
END_TEST

/* Waits (bounded) until d's log holds needle n times. */
static void
wait_log_count(jd *d, const char *needle, int n)
{
	int64_t until = jd_mono_ms() + WAIT_MS;

	for (;;) {
		char *log = jd_read_file(d->log_path, NULL);
		int seen = 0;
		for (const char *p = log; p && (p = strstr(p, needle)) != NULL;
		     p += strlen(needle))
			seen++;
		free(log);
		if (seen >= n)
			return;
		ck_assert_msg(jd_mono_ms() < until, "\"%s\" %d times in the "
		              "log, not %d", needle, seen, n);
		jd_pause_ms(20);
	}
}

/* SIGHUP: a new plugin section loads; one that cannot load rejects the
 * reload and the running configuration stays. */
START_TEST(test_reload)
{
	char so[PBUF], bad[PBUF], extra[TBUF];
	char more[TBUF];
	jd *d;

	char counts[PBUF];

	plugin_path(so, sizeof(so), false, "probe");
	plugin_path(bad, sizeof(bad), false, "bad_abi");
	snprintf(counts, sizeof(counts), "%s/counts-XXXXXX",
	         getenv("JOBD_ITEST_ROOT"));
	ck_assert_ptr_nonnull(mkdtemp(counts));
	snprintf(extra, sizeof(extra), "[handler.probe]\nplugin = %s\n"
	         "plugin_config = count=%s one\n", so, counts);
	d = launch_with(extra, 1);
	ck_assert_int_eq(count_files(counts, "init"), 1);

	FILE *f = fopen(d->conf_path, "a");
	ck_assert_ptr_nonnull(f);
	fprintf(f, "[handler.later]\nplugin = %s\nplugin_config = count=%s "
	        "two\n", so, counts);
	ck_assert_int_eq(fclose(f), 0);
	ck_assert_int_eq(kill(d->pid, SIGHUP), 0);
	wait_log_count(d, "SIGHUP: reloaded", 1);
	ck_assert_int_eq(count_files(counts, "init"), 2);
	char *id = submit_type(d, "later", "\"config\"");
	struct jd_resp *r = finish(d, id, "succeeded");
	ck_assert_ptr_nonnull(strstr(jd_resp_str(r, "result"), " two"));
	jd_resp_free(r);
	free(id);

	/* A reload that changes no plugin section initialises nothing. */
	ck_assert_int_eq(kill(d->pid, SIGHUP), 0);
	wait_log_count(d, "SIGHUP: reloaded", 2);
	ck_assert_int_eq(count_files(counts, "init"), 2);
	char *log;

	/* A broken plugin: rejected, naming it; "later" still runs. */
	snprintf(more, sizeof(more), "[handler.broken]\nplugin = %s\n", bad);
	f = fopen(d->conf_path, "a");
	ck_assert_ptr_nonnull(f);
	fputs(more, f);
	ck_assert_int_eq(fclose(f), 0);
	ck_assert_int_eq(kill(d->pid, SIGHUP), 0);
	log = jd_wait_log(d, "rejected; the running configuration is kept",
	                  WAIT_MS);
	ck_assert_ptr_nonnull(log);
	ck_assert_ptr_nonnull(strstr(log, bad));
	free(log);
	id = submit_type(d, "later", "\"config\"");
	jd_resp_free(finish(d, id, "succeeded"));
	free(id);
	r = jd_request(d, "POST", "/jobs", (const char *const[]){
	               "Content-Type: application/json", NULL},
	               "{\"type\": \"broken\"}");
	assert_status(r, 422);
	jd_resp_free(r);
	ck_assert_int_eq(count_files(counts, "fini"), 0);
	ck_assert_int_eq(jd_stop(d, WAIT_MS), 0);
	ck_assert_int_eq(count_files(counts, "fini"), 2);
	jd_free(d);
}
END_TEST

/* Two nodes on one PostgreSQL store: a DELETE sent to the node that
 * does not run the plugin's attempt stops it on the other (PostgreSQL
 * only: SQLite has one daemon per store). */
START_TEST(test_two_nodes_cancel)
{
	char so[PBUF], extra[TBUF], path[128];
	struct jd_opts o = {.threads = 1, .extra = extra};
	jd *a, *b;

	if (!jd_store_is_pg()) {
		fprintf(stderr, "test_plugins: test_two_nodes_cancel: PostgreSQL "
		        "only\n");
		return;
	}
	plugin_path(so, sizeof(so), false, "probe");
	snprintf(extra, sizeof(extra), "[handler.probe]\nplugin = %s\n"
	         "[store]\nnode = a\n", so);
	a = jd_launch(&o);
	ck_assert_ptr_nonnull(a);
	/* b starts once the attempt runs on a: the attempt is a's. */
	snprintf(extra, sizeof(extra), "[handler.probe]\nplugin = %s\n"
	         "[store]\nnode = b\n", so);
	o.share_store = a;
	b = jd_new(&o);
	ck_assert_ptr_nonnull(b);

	char *id = submit_type(a, "probe", "\"wait\"");
	jd_resp_free(finish(a, id, "running"));
	wait_started(a, id);
	ck_assert_int_eq(jd_start(b), 0);
	snprintf(path, sizeof(path), "/jobs/%s", id);
	struct jd_resp *r = jd_request(b, "DELETE", path, NULL, NULL);
	assert_status(r, 202);
	jd_resp_free(r);
	jd_resp_free(finish(b, id, "cancelled"));
	jd_resp_free(finish(a, id, "cancelled"));
	assert_stored(a, id, "cancelled", 1);
	free(id);
	jd_free(b);
	jd_free(a);
}
END_TEST

static Suite *
plugins_suite(void)
{
	Suite *s = suite_create("plugins");
	TCase *tc = tcase_create("plugins");

	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, test_sha256_end_to_end);
	tcase_add_test(tc, test_sha256_root);
	tcase_add_test(tc, test_sha256_concurrent_and_stopped);
	tcase_add_test(tc, test_hello_example);
	tcase_add_test(tc, test_fetch_end_to_end);
	tcase_add_test(tc, test_refuse_missing_file);
	tcase_add_test(tc, test_refuse_not_shared_object);
	tcase_add_test(tc, test_refuse_no_symbol);
	tcase_add_test(tc, test_refuse_writable_file);
	tcase_add_test(tc, test_refuse_wrong_abi);
	tcase_add_test(tc, test_refuse_init_failing);
	tcase_add_test(tc, test_refuse_unexported_symbol);
	tcase_add_test(tc, test_refuse_bad_plugin_config);
	tcase_add_test(tc, test_probe_config_and_returns);
	tcase_add_test(tc, test_reload);
	tcase_add_test(tc, test_two_nodes_cancel);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	return run_suite(plugins_suite());
}
