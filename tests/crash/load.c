/*
 * load.c - the crash test's load generator and HTTP probe (tests/crash).
 *
 * No dependencies beyond libc and pthreads: a minimal HTTP/1.1 client over
 * keep-alive loopback sockets that parses only the status line, the
 * Content-Length and Connection headers, and the "id" of a 202 body.
 *
 *   load port
 *       print a free loopback port
 *   load wait PORT TIMEOUT_MS [PID]
 *       poll GET /healthz every 10 ms until it answers 200 (exit 0), the
 *       process PID is gone (exit 2) or the timeout passes (exit 1)
 *   load post PORT IDS_FILE CONNS KILL_PID KILL_AFTER_MS [SLEEPERS]
 *       CONNS threads, one keep-alive connection each, POST noop jobs as
 *       fast as they can; the first request of the first SLEEPERS threads
 *       is a sleep job (so that some attempts are running at the kill).
 *       KILL_AFTER_MS after every connection is open, KILL_PID gets
 *       SIGKILL; the threads then read what the dead daemon had already
 *       sent and stop.  Every id answered 202 (complete answer, status
 *       line to last body byte) is appended to IDS_FILE, one per line.
 *       Prints "sent=N acked=N refused=N neterr=N after_ms=N"; refused
 *       counts complete non-202 answers, neterr connection failures while
 *       the daemon was supposed to be alive.  Exit 0, or 1 on a setup
 *       error; the caller judges the counts.
 *   load cut PORT IDS_FILE SEEN_FILE CONNS KILL_PID KILL_AFTER_MS [QUIET_MS]
 *       as post, for the power-cut test (tests/reliability/powercut.sh),
 *       with clients that also watch their jobs end: a third of the
 *       threads only POST; a third GET /jobs/<id>?wait=2 after each 202;
 *       a third POST with "Prefer: wait=2" (a 200 is both stored and
 *       final).  Every final state a client was shown (complete answer)
 *       is appended to SEEN_FILE as "id status finished_at".  QUIET_MS
 *       before the kill, no new job is sent (the waits go on), so that
 *       the daemon's last transactions carry attempt results only.
 *   load get PORT IDS_FILE
 *       GET /jobs/<id> for each id of the file; prints "get: N ok, M bad"
 *       and each bad id with its status; exit 1 when any is not 200.
 *   load seen PORT SEEN_FILE
 *       GET /jobs/<id> for each line of SEEN_FILE; a job whose status or
 *       finished_at differs from what was seen was taken back (or ran
 *       again).  Prints each such job and "seen: N checked, M taken back";
 *       exit 1 when any was.
 *
 * Bounded everywhere: sockets time out after 10 s, a post run stops after
 * KILL_AFTER_MS + 10 s even if the kill did not end the daemon.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#define BUF_SIZE 65536
#define IO_TIMEOUT_S 10

static int port;

static int64_t
mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void
pause_ms(int ms)
{
	struct timespec ts = {.tv_sec = ms / 1000,
	                      .tv_nsec = (long)(ms % 1000) * 1000000};

	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

/* ---- a minimal keep-alive HTTP/1.1 client ---- */

struct conn {
	int fd;                 /* -1 when closed */
	char buf[BUF_SIZE];
};

struct answer {
	int status;             /* 0: no complete answer */
	const char *body;       /* into the connection's buffer */
	size_t body_len;
};

static int
conn_open(struct conn *c)
{
	struct sockaddr_in sa = {.sin_family = AF_INET};
	struct timeval tv = {.tv_sec = IO_TIMEOUT_S};
	int one = 1;

	c->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (c->fd < 0)
		return -1;
	setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	setsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(c->fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	sa.sin_port = htons((uint16_t)port);
	if (connect(c->fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
		close(c->fd);
		c->fd = -1;
		return -1;
	}
	return 0;
}

static void
conn_close(struct conn *c)
{
	if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
}

/* The value of header `name` in the header block [p, end), or NULL. */
static const char *
header_value(const char *p, const char *end, const char *name, size_t *len)
{
	size_t n = strlen(name);

	while (p < end) {
		const char *eol = memmem(p, (size_t)(end - p), "\r\n", 2);
		if (eol == NULL)
			eol = end;
		if ((size_t)(eol - p) > n && strncasecmp(p, name, n) == 0 &&
		    p[n] == ':') {
			const char *v = p + n + 1;
			while (v < eol && (*v == ' ' || *v == '\t'))
				v++;
			*len = (size_t)(eol - v);
			return v;
		}
		p = eol + 2;
	}
	return NULL;
}

/* Sends one request and reads its complete answer.  0 with a->status set,
 * or -1 when the connection failed (then it is closed). */
static int
conn_roundtrip(struct conn *c, const char *req, size_t req_len,
               struct answer *a)
{
	size_t have = 0, sent = 0, head = 0, total = 0;
	bool close_after = false;

	a->status = 0;
	a->body = NULL;
	a->body_len = 0;
	if (c->fd < 0 && conn_open(c) != 0)
		return -1;
	while (sent < req_len) {
		ssize_t n = send(c->fd, req + sent, req_len - sent,
		                 MSG_NOSIGNAL);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			conn_close(c);
			return -1;
		}
		sent += (size_t)n;
	}
	for (;;) {
		ssize_t n;

		if (head == 0) {
			char *end = memmem(c->buf, have, "\r\n\r\n", 4);
			if (end != NULL) {
				const char *v;
				size_t vlen = 0;
				head = (size_t)(end - c->buf) + 4;
				if (have < 12 || strncmp(c->buf, "HTTP/1.", 7) != 0) {
					conn_close(c);
					return -1;
				}
				a->status = atoi(c->buf + 9);
				v = header_value(c->buf, end, "Content-Length", &vlen);
				if (v == NULL) {
					/* Only Content-Length framing is expected. */
					a->status = 0;
					conn_close(c);
					return -1;
				}
				total = head + strtoul(v, NULL, 10);
				v = header_value(c->buf, end, "Connection", &vlen);
				close_after = v != NULL && vlen >= 5 &&
				              strncasecmp(v, "close", 5) == 0;
				if (total > sizeof(c->buf)) {
					a->status = 0;
					conn_close(c);
					return -1;
				}
			}
		}
		if (head > 0 && have >= total)
			break;
		if (have == sizeof(c->buf)) {
			conn_close(c);
			return -1;
		}
		n = recv(c->fd, c->buf + have, sizeof(c->buf) - have, 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			/* EOF or reset before the answer was complete: no
			 * answer, whatever part of it arrived. */
			a->status = 0;
			conn_close(c);
			return -1;
		}
		have += (size_t)n;
	}
	a->body = c->buf + head;
	a->body_len = total - head;
	if (close_after)
		conn_close(c);
	return 0;
}

/* The "id" string of a JSON body into out (at most 63 chars); 0 or -1. */
static int
body_id(const struct answer *a, char out[64])
{
	static const char key[] = "\"id\":\"";
	const char *p = memmem(a->body, a->body_len, key, sizeof(key) - 1);
	const char *end = a->body + a->body_len, *q;

	if (p == NULL)
		return -1;
	p += sizeof(key) - 1;
	q = memchr(p, '"', (size_t)(end - p));
	if (q == NULL || q == p || q - p > 63)
		return -1;
	memcpy(out, p, (size_t)(q - p));
	out[q - p] = '\0';
	return 0;
}

/* The string value of "key" in a JSON body into out ("null" for null),
 * 0 or -1.  Enough for jobd's answers (no escapes in these fields). */
static int
body_field(const struct answer *a, const char *key, char *out, size_t outlen)
{
	char pat[64];
	const char *p, *q, *end = a->body + a->body_len;
	int n = snprintf(pat, sizeof(pat), "\"%s\":", key);

	p = memmem(a->body, a->body_len, pat, (size_t)n);
	if (p == NULL)
		return -1;
	p += n;
	if (end - p >= 4 && memcmp(p, "null", 4) == 0) {
		snprintf(out, outlen, "null");
		return 0;
	}
	if (p >= end || *p != '"')
		return -1;
	p++;
	q = memchr(p, '"', (size_t)(end - p));
	if (q == NULL || (size_t)(q - p) >= outlen)
		return -1;
	memcpy(out, p, (size_t)(q - p));
	out[q - p] = '\0';
	return 0;
}

static bool
status_is_final(const char *s)
{
	return strcmp(s, "succeeded") == 0 || strcmp(s, "failed") == 0 ||
	       strcmp(s, "cancelled") == 0;
}

static int
request_get(struct conn *c, const char *path, struct answer *a)
{
	char req[512];
	int n = snprintf(req, sizeof(req),
	                 "GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", path);

	if (n < 0 || (size_t)n >= sizeof(req))
		return -1;
	return conn_roundtrip(c, req, (size_t)n, a);
}

static int
request_post_prefer(struct conn *c, const char *json, const char *prefer,
                    struct answer *a)
{
	char req[1024];
	int n = snprintf(req, sizeof(req),
	                 "POST /jobs HTTP/1.1\r\nHost: 127.0.0.1\r\n"
	                 "Content-Type: application/json\r\n%s%s%s"
	                 "Content-Length: %zu\r\n\r\n%s",
	                 prefer ? "Prefer: " : "", prefer ? prefer : "",
	                 prefer ? "\r\n" : "", strlen(json), json);

	if (n < 0 || (size_t)n >= sizeof(req))
		return -1;
	return conn_roundtrip(c, req, (size_t)n, a);
}

/* ---- load port ---- */

static int
cmd_port(void)
{
	struct sockaddr_in sa = {.sin_family = AF_INET};
	socklen_t len = sizeof(sa);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (fd < 0)
		return 1;
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0 ||
	    getsockname(fd, (struct sockaddr *)&sa, &len) != 0) {
		close(fd);
		return 1;
	}
	printf("%d\n", ntohs(sa.sin_port));
	close(fd);
	return 0;
}

/* ---- load wait ---- */

/* True while pid exists and is not a zombie. */
static bool
alive(pid_t pid)
{
	char path[64], buf[256], *p;
	FILE *f;
	size_t n;

	snprintf(path, sizeof(path), "/proc/%ld/stat", (long)pid);
	f = fopen(path, "r");
	if (f == NULL)
		return false;
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	p = strrchr(buf, ')');
	return p != NULL && p[1] == ' ' && p[2] != 'Z' && p[2] != 'X';
}

static int
cmd_wait(int timeout_ms, pid_t pid)
{
	static struct conn c = {.fd = -1};
	int64_t deadline = mono_ms() + timeout_ms;

	for (;;) {
		struct answer a;
		if (request_get(&c, "/healthz", &a) == 0 && a.status == 200)
			return 0;
		conn_close(&c);
		if (pid > 0 && !alive(pid))
			return 2;
		if (mono_ms() >= deadline)
			return 1;
		pause_ms(10);
	}
}

/* ---- load get ---- */

static int
cmd_get(const char *file)
{
	static struct conn c = {.fd = -1};
	FILE *f = fopen(file, "r");
	char line[128], path[160];
	long ok = 0, bad = 0;

	if (f == NULL) {
		perror(file);
		return 1;
	}
	while (fgets(line, sizeof(line), f) != NULL) {
		struct answer a;
		line[strcspn(line, "\r\n")] = '\0';
		if (line[0] == '\0')
			continue;
		snprintf(path, sizeof(path), "/jobs/%s", line);
		if (request_get(&c, path, &a) != 0)
			request_get(&c, path, &a); /* one reconnect */
		if (a.status == 200) {
			ok++;
		} else {
			bad++;
			fprintf(stderr, "GET /jobs/%s -> %d\n", line, a.status);
		}
	}
	fclose(f);
	printf("get: %ld ok, %ld bad\n", ok, bad);
	return bad == 0 ? 0 : 1;
}

/* ---- load seen ---- */

static int
cmd_seen(const char *file)
{
	static struct conn c = {.fd = -1};
	FILE *f = fopen(file, "r");
	char line[256], path[160], id[64], status[32], fin[64];
	long checked = 0, back = 0;

	if (f == NULL) {
		perror(file);
		return 1;
	}
	while (fgets(line, sizeof(line), f) != NULL) {
		struct answer a;
		char now_status[32] = "?", now_fin[64] = "?";
		if (sscanf(line, "%63s %31s %63s", id, status, fin) != 3)
			continue;
		snprintf(path, sizeof(path), "/jobs/%s", id);
		if (request_get(&c, path, &a) != 0)
			request_get(&c, path, &a); /* one reconnect */
		checked++;
		if (a.status == 200) {
			body_field(&a, "status", now_status, sizeof(now_status));
			body_field(&a, "finished_at", now_fin, sizeof(now_fin));
		}
		if (a.status != 200 || strcmp(now_status, status) != 0 ||
		    strcmp(now_fin, fin) != 0) {
			back++;
			if (back <= 20)
				fprintf(stderr, "taken back: %s was shown %s "
				        "(finished %s), now %d %s (finished %s)\n",
				        id, status, fin, a.status, now_status,
				        now_fin);
		}
	}
	fclose(f);
	printf("seen: %ld checked, %ld taken back\n", checked, back);
	return back == 0 ? 0 : 1;
}

/* ---- load post ---- */

static atomic_bool killing, stopping, quiet;
static atomic_long n_sent, n_acked, n_refused, n_neterr;
static pthread_mutex_t out_mu = PTHREAD_MUTEX_INITIALIZER;
static FILE *out;
static FILE *seen_out;          /* load cut: final states shown */
static atomic_long n_seen;
static pthread_barrier_t start_barrier;
static int sleepers;

struct poster {
	pthread_t tid;
	int index;
	struct conn c;
};

static void
record(const char *id)
{
	pthread_mutex_lock(&out_mu);
	fprintf(out, "%s\n", id);
	pthread_mutex_unlock(&out_mu);
}

/* Records the final state an answer showed, if it shows one. */
static void
record_seen(const struct answer *a)
{
	char id[64], status[32], fin[64];

	if (a->status != 200 || body_field(a, "id", id, sizeof(id)) != 0 ||
	    body_field(a, "status", status, sizeof(status)) != 0 ||
	    !status_is_final(status) ||
	    body_field(a, "finished_at", fin, sizeof(fin)) != 0)
		return;
	pthread_mutex_lock(&out_mu);
	fprintf(seen_out, "%s %s %s\n", id, status, fin);
	pthread_mutex_unlock(&out_mu);
	atomic_fetch_add(&n_seen, 1);
}

static void *
poster_main(void *arg)
{
	struct poster *p = arg;
	bool first = true;
	int64_t give_up = mono_ms() + 2000;

	/* The daemon is up (the caller waited for /healthz). */
	while (conn_open(&p->c) != 0 && mono_ms() < give_up)
		pause_ms(5);
	pthread_barrier_wait(&start_barrier);
	while (!atomic_load(&stopping) && !atomic_load(&quiet)) {
		struct answer a;
		const char *json = "{\"type\":\"noop\"}";
		char id[64];

		if (first && p->index < sleepers)
			json = "{\"type\":\"sleep\",\"payload\":{\"seconds\":0.2},"
			       "\"priority\":10}";
		first = false;
		atomic_fetch_add(&n_sent, 1);
		/* load cut: a third of the clients wait in the POST. */
		if (request_post_prefer(&p->c, json, seen_out && p->index % 3 == 2
		                        ? "wait=2" : NULL, &a) != 0) {
			if (atomic_load(&killing))
				break;
			atomic_fetch_add(&n_neterr, 1);
			pause_ms(10);
			continue;
		}
		if ((a.status == 202 || (seen_out && a.status == 200)) &&
		    body_id(&a, id) == 0) {
			record(id);
			atomic_fetch_add(&n_acked, 1);
			if (seen_out && a.status == 200) {
				record_seen(&a);
			} else if (seen_out && p->index % 3 == 1) {
				/* ... and a third long-poll each job. */
				char path[128];
				snprintf(path, sizeof(path), "/jobs/%s?wait=2", id);
				if (request_get(&p->c, path, &a) == 0)
					record_seen(&a);
				else if (atomic_load(&killing))
					break;
			}
		} else {
			atomic_fetch_add(&n_refused, 1);
			if (n_refused < 5)
				fprintf(stderr, "load: POST /jobs -> %d %.*s\n",
				        a.status, (int)a.body_len, a.body);
		}
	}
	conn_close(&p->c);
	return NULL;
}

static int
cmd_post(const char *file, int nconns, pid_t kill_pid, int kill_after_ms,
         int quiet_ms)
{
	struct poster *ps = calloc((size_t)nconns, sizeof(*ps));

	if (ps == NULL)
		return 1;
	out = fopen(file, "w");
	if (out == NULL) {
		perror(file);
		return 1;
	}
	pthread_barrier_init(&start_barrier, NULL, (unsigned)nconns + 1);
	for (int i = 0; i < nconns; i++) {
		ps[i].index = i;
		ps[i].c.fd = -1;
		if (pthread_create(&ps[i].tid, NULL, poster_main, &ps[i]) != 0) {
			fprintf(stderr, "load: pthread_create failed\n");
			return 1;
		}
	}
	pthread_barrier_wait(&start_barrier);
	if (quiet_ms > 0 && quiet_ms < kill_after_ms) {
		pause_ms(kill_after_ms - quiet_ms);
		atomic_store(&quiet, true);
		pause_ms(quiet_ms);
	} else {
		pause_ms(kill_after_ms);
	}
	/* Connection errors from here on are the kill's doing. */
	atomic_store(&killing, true);
	if (kill_pid > 0 && kill(kill_pid, SIGKILL) != 0)
		perror("load: kill");
	atomic_store(&stopping, true);
	/* The sockets' timeouts bound the joins. */
	for (int i = 0; i < nconns; i++)
		pthread_join(ps[i].tid, NULL);
	if (fclose(out) != 0 || (seen_out != NULL && fclose(seen_out) != 0)) {
		perror(file);
		return 1;
	}
	printf("sent=%ld acked=%ld refused=%ld neterr=%ld seen=%ld "
	       "after_ms=%d\n", atomic_load(&n_sent), atomic_load(&n_acked),
	       atomic_load(&n_refused), atomic_load(&n_neterr),
	       atomic_load(&n_seen), kill_after_ms);
	free(ps);
	return 0;
}

static void
usage(void)
{
	fputs("usage: load port\n"
	      "       load wait PORT TIMEOUT_MS [PID]\n"
	      "       load post PORT IDS_FILE CONNS KILL_PID KILL_AFTER_MS "
	      "[SLEEPERS]\n"
	      "       load cut PORT IDS_FILE SEEN_FILE CONNS KILL_PID "
	      "KILL_AFTER_MS [QUIET_MS]\n"
	      "       load get PORT IDS_FILE\n"
	      "       load seen PORT SEEN_FILE\n", stderr);
}

int
main(int argc, char **argv)
{
	if (argc >= 2 && strcmp(argv[1], "port") == 0)
		return cmd_port();
	if (argc < 3) {
		usage();
		return 1;
	}
	port = atoi(argv[2]);
	if (port <= 0 || port > 65535) {
		usage();
		return 1;
	}
	if (strcmp(argv[1], "wait") == 0 && (argc == 4 || argc == 5))
		return cmd_wait(atoi(argv[3]), argc == 5 ? atoi(argv[4]) : 0);
	if (strcmp(argv[1], "get") == 0 && argc == 4)
		return cmd_get(argv[3]);
	if (strcmp(argv[1], "seen") == 0 && argc == 4)
		return cmd_seen(argv[3]);
	if (strcmp(argv[1], "cut") == 0 && (argc == 8 || argc == 9)) {
		int nconns = atoi(argv[5]);
		if (nconns < 1 || nconns > 1024) {
			usage();
			return 1;
		}
		seen_out = fopen(argv[4], "w");
		if (seen_out == NULL) {
			perror(argv[4]);
			return 1;
		}
		return cmd_post(argv[3], nconns, (pid_t)atoi(argv[6]),
		                atoi(argv[7]), argc == 9 ? atoi(argv[8]) : 0);
	}
	if (strcmp(argv[1], "post") == 0 && (argc == 7 || argc == 8)) {
		int nconns = atoi(argv[4]);
		if (nconns < 1 || nconns > 1024) {
			usage();
			return 1;
		}
		sleepers = argc == 8 ? atoi(argv[7]) : 0;
		return cmd_post(argv[3], nconns, (pid_t)atoi(argv[5]),
		                atoi(argv[6]), 0);
	}
	usage();
	return 1;
}
