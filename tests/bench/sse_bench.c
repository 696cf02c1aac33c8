/*
 * sse_bench.c - GET /events with many open streams (issue 16): a fresh
 * client's request latency (p50, p99, max) and the daemon's RSS, without
 * streams and with N streams open (default 1000) that receive every event
 * of the jobs the fresh clients submit.  A measurement, not a test: it
 * prints the figures and fails only when something does not work (a
 * stream refused, an event missing).
 *
 *   make bench-sse            (JOBD_SSE_STREAMS=N, JOBD_SSE_REQUESTS=M)
 *
 * One thread reads every stream (epoll) while the main thread sends M
 * requests, each on a new connection (a new libcurl handle): POST /jobs of
 * a noop job, which makes 3 events (queued, running, succeeded) for every
 * stream.  Only 127.0.0.1.
 */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include "harness.h"

static atomic_llong events_read;
static atomic_bool stop_reader;

struct reader {
	int ep;
	int n;
};

static void *
reader_main(void *arg)
{
	struct reader *r = arg;
	struct epoll_event evs[256];
	static char buf[65536 + 8];
	/* the last 7 bytes each stream sent, so that a "\nevent:" split
	 * between two reads is counted */
	static char carry[65536][7];

	while (!atomic_load(&stop_reader)) {
		int n = epoll_wait(r->ep, evs, 256, 100);
		for (int i = 0; i < n; i++) {
			int fd = evs[i].data.fd;
			ssize_t k;
			while ((k = recv(fd, buf + 7, sizeof(buf) - 8, 0)) > 0) {
				memcpy(buf, carry[fd], 7);
				for (ssize_t j = 0; j < k; j++)
					if (memcmp(buf + j, "\nevent:", 7) == 0)
						atomic_fetch_add(&events_read, 1);
				memcpy(carry[fd], buf + k, 7);
			}
		}
	}
	return NULL;
}

static int
open_stream(int port)
{
	struct sockaddr_in sa = {.sin_family = AF_INET};
	const char *req = "GET /events HTTP/1.0\r\n\r\n";
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	sa.sin_port = htons((uint16_t)port);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0 ||
	    send(fd, req, strlen(req), MSG_NOSIGNAL) != (ssize_t)strlen(req)) {
		perror("stream");
		exit(1);
	}
	fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
	return fd;
}

static int
cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

/* m requests, each from a fresh client; prints the latency figures. */
static void
measure(jd *d, const char *label, int m)
{
	double *ms = calloc((size_t)m, sizeof(*ms));

	for (int i = 0; i < m; i++) {
		jd_client *c = jd_client_new(d->port);
		struct timespec a, b;
		long status = 0;
		char *id;

		clock_gettime(CLOCK_MONOTONIC, &a);
		id = jd_client_submit(c, "{\"type\":\"noop\"}", &status);
		clock_gettime(CLOCK_MONOTONIC, &b);
		if (id == NULL) {
			fprintf(stderr, "POST /jobs: %ld\n", status);
			exit(1);
		}
		free(id);
		jd_client_free(c);
		ms[i] = (double)(b.tv_sec - a.tv_sec) * 1e3 +
		        (double)(b.tv_nsec - a.tv_nsec) / 1e6;
	}
	qsort(ms, (size_t)m, sizeof(*ms), cmp_double);
	printf("%-28s POST /jobs from a fresh client, %d requests: "
	       "p50 %.2f ms, p99 %.2f ms, max %.2f ms\n", label, m,
	       ms[m / 2], ms[(m * 99 + 99) / 100 - 1], ms[m - 1]);
	free(ms);
}

int
main(void)
{
	const char *sn = getenv("JOBD_SSE_STREAMS");
	const char *rn = getenv("JOBD_SSE_REQUESTS");
	int n = sn ? atoi(sn) : 1000, m = rn ? atoi(rn) : 500;
	struct rlimit rl;
	struct jd_opts o = {.threads = 2, .extra =
		"[server]\nmax_connections = 20000\nper_ip_connections = 0\n"
		"max_waiters = 20000\nlog_level = notice\n"
		"[store]\ndurability = normal\n"};
	struct reader r = {0};
	pthread_t th;
	int *fds;
	jd *d;
	long long want;

	if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
	if (jd_global_init() != 0 || (d = jd_launch(&o)) == NULL) {
		fprintf(stderr, "jobd did not start\n");
		return 1;
	}
	printf("jobd pid %d, %d streams, %d requests\n", (int)d->pid, n, m);
	printf("RSS at start: %ld kB\n", jd_proc_status(d->pid, "VmRSS:"));
	measure(d, "no stream open:", m);
	printf("RSS after them: %ld kB\n", jd_proc_status(d->pid, "VmRSS:"));

	fds = calloc((size_t)n, sizeof(*fds));
	r.ep = epoll_create1(EPOLL_CLOEXEC);
	for (int i = 0; i < n; i++) {
		struct epoll_event e = {.events = EPOLLIN};
		fds[i] = open_stream(d->port);
		e.data.fd = fds[i];
		epoll_ctl(r.ep, EPOLL_CTL_ADD, fds[i], &e);
	}
	if (!jd_wait_metric(d, "jobd_waiters", n, 60000)) {
		fprintf(stderr, "jobd_waiters did not reach %d\n", n);
		return 1;
	}
	pthread_create(&th, NULL, reader_main, &r);
	printf("RSS with %d streams open: %ld kB\n", n,
	       jd_proc_status(d->pid, "VmRSS:"));
	measure(d, "streams open:", m);
	want = 3LL * m * n;
	for (int i = 0; i < 600 && atomic_load(&events_read) < want; i++)
		jd_pause_ms(100);
	printf("events read by the streams: %lld of %lld\n",
	       (long long)atomic_load(&events_read), want);
	printf("RSS after them: %ld kB\n", jd_proc_status(d->pid, "VmRSS:"));
	atomic_store(&stop_reader, true);
	pthread_join(th, NULL);
	for (int i = 0; i < n; i++)
		close(fds[i]);
	jd_wait_metric(d, "jobd_waiters", 0, 60000);
	printf("RSS after the streams closed: %ld kB (peak %ld kB)\n",
	       jd_proc_status(d->pid, "VmRSS:"),
	       jd_proc_status(d->pid, "VmHWM:"));
	free(fds);
	close(r.ep);
	jd_stop(d, 30000);
	jd_free(d);
	return atomic_load(&events_read) >= want ? 0 : 1;
}
