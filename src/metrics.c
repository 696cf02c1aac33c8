/*
 * metrics.c - lock-free counters and histograms, rendered as Prometheus
 * text.
 *
 * LOCKING: type_mu guards adding a row to types[] (rare: a type's first
 * sighting).  Rows, once published (ntypes incremented with release
 * order), are never moved; their counters are atomics.
 */
#include <dirent.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "err.h"
#include "job.h"
#include "metrics.h"
#include "version.h"

#define MAX_TYPES 256
#define NBUCKETS 14

static const double seconds_bounds[NBUCKETS] = {
	0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5,
	10, 60,
};
static const double batch_bounds[NBUCKETS] = {
	1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192,
};

struct histogram {
	atomic_uint_fast64_t buckets[NBUCKETS + 1]; /* last: +Inf */
	atomic_uint_fast64_t sum_micro;             /* sum * 1e6 */
};

struct type_row {
	char name[JOB_TYPE_MAX + 1];
	atomic_uint_fast64_t submitted, started, retried;
	atomic_uint_fast64_t finished[JOB_NSTATUS];
	struct histogram run;
};

static pthread_mutex_t type_mu = PTHREAD_MUTEX_INITIALIZER;
static struct type_row types[MAX_TYPES];
static atomic_size_t ntypes;
static struct histogram intake, queue_wait, commit_batch;
/* HTTP answers by status code (100..599). */
static atomic_uint_fast64_t http_codes[600];
/* Store commits, those fsynced, and failed transactions by kind. */
static atomic_uint_fast64_t store_commits, store_fsyncs, store_notifies;
enum { SE_FULL, SE_IO, SE_UNAVAIL, SE_BUSY, SE_OTHER, SE_N };
static const char *const store_error_names[SE_N] = {
	"full", "io", "unavailable", "busy", "other",
};
static atomic_uint_fast64_t store_errors[SE_N];
/* Callback deliveries by result (metrics_callback). */
static const char *const callback_result_names[3] = {
	"delivered", "retried", "failed",
};
static atomic_uint_fast64_t callback_results[3];

static struct type_row *
row_for(const char *type)
{
	size_t n = atomic_load_explicit(&ntypes, memory_order_acquire);
	struct type_row *row = NULL;

	for (size_t i = 0; i < n; i++)
		if (strcmp(types[i].name, type) == 0)
			return &types[i];
	pthread_mutex_lock(&type_mu);
	n = atomic_load_explicit(&ntypes, memory_order_relaxed);
	for (size_t i = 0; i < n; i++)
		if (strcmp(types[i].name, type) == 0)
			row = &types[i];
	if (row == NULL && n < MAX_TYPES) {
		row = &types[n];
		snprintf(row->name, sizeof(row->name), "%s", type);
		atomic_store_explicit(&ntypes, n + 1, memory_order_release);
	}
	pthread_mutex_unlock(&type_mu);
	return row; /* NULL only past MAX_TYPES types: not counted */
}

static void
observe(struct histogram *h, const double *bounds, double v)
{
	size_t i = 0;

	while (i < NBUCKETS && v > bounds[i])
		i++;
	atomic_fetch_add_explicit(&h->buckets[i], 1, memory_order_relaxed);
	if (v > 0)
		atomic_fetch_add_explicit(&h->sum_micro,
		                          (uint_fast64_t)llround(v * 1e6),
		                          memory_order_relaxed);
}

#define BUMP(field) atomic_fetch_add_explicit(&(field), 1, memory_order_relaxed)

void
metrics_submitted(const char *type)
{
	struct type_row *r = row_for(type);
	if (r)
		BUMP(r->submitted);
}

void
metrics_started(const char *type)
{
	struct type_row *r = row_for(type);
	if (r)
		BUMP(r->started);
}

void
metrics_finished(const char *type, int status)
{
	struct type_row *r = row_for(type);
	if (r && status >= 0 && status < JOB_NSTATUS)
		BUMP(r->finished[status]);
}

void
metrics_retried(const char *type)
{
	struct type_row *r = row_for(type);
	if (r)
		BUMP(r->retried);
}

void
metrics_intake_seconds(double s)
{
	observe(&intake, seconds_bounds, s);
}

void
metrics_queue_wait_seconds(double s)
{
	observe(&queue_wait, seconds_bounds, s);
}

void
metrics_run_seconds(const char *type, double s)
{
	struct type_row *r = row_for(type);
	if (r)
		observe(&r->run, seconds_bounds, s);
}

void
metrics_commit_batch(size_t n)
{
	observe(&commit_batch, batch_bounds, (double)n);
}

void
metrics_store_commit(bool fsynced)
{
	atomic_fetch_add_explicit(&store_commits, 1, memory_order_relaxed);
	if (fsynced)
		atomic_fetch_add_explicit(&store_fsyncs, 1,
		                          memory_order_relaxed);
}

void
metrics_store_notify(void)
{
	atomic_fetch_add_explicit(&store_notifies, 1, memory_order_relaxed);
}

void
metrics_store_error(int code)
{
	int k = code == JOBD_EFULL ? SE_FULL : code == JOBD_EIO ? SE_IO
	      : code == JOBD_EUNAVAIL ? SE_UNAVAIL
	      : code == JOBD_EBUSY ? SE_BUSY : SE_OTHER;

	atomic_fetch_add_explicit(&store_errors[k], 1, memory_order_relaxed);
}

void
metrics_callback(int result)
{
	if (result >= 0 && result < 3)
		atomic_fetch_add_explicit(&callback_results[result], 1,
		                          memory_order_relaxed);
}

void
metrics_http_answer(int status)
{
	if (status >= 100 && status < 600)
		atomic_fetch_add_explicit(&http_codes[status], 1,
		                          memory_order_relaxed);
}

/* ---- the process (read at scrape time from /proc) ---- */

static long long
resident_bytes(void)
{
	long long size = 0, rss = -1;
	FILE *f = fopen("/proc/self/statm", "r");

	if (f == NULL)
		return -1;
	if (fscanf(f, "%lld %lld", &size, &rss) != 2)
		rss = -1;
	fclose(f);
	return rss < 0 ? -1 : rss * sysconf(_SC_PAGESIZE);
}

static long long
open_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *e;
	long long n = 0;

	if (d == NULL)
		return -1;
	while ((e = readdir(d)) != NULL)
		n += e->d_name[0] != '.';
	closedir(d);
	return n - 1; /* not the one opendir holds */
}

/* The process's start, seconds since the epoch: field 22 of
 * /proc/self/stat (clock ticks after boot) plus btime of /proc/stat. */
static double
start_time_seconds(void)
{
	char line[1024], *p;
	unsigned long long ticks = 0, btime = 0;
	FILE *f = fopen("/proc/self/stat", "r");

	if (f == NULL)
		return -1;
	p = fgets(line, sizeof(line), f);
	fclose(f);
	if (p == NULL || (p = strrchr(line, ')')) == NULL ||
	    sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %*u "
	           "%*u %*d %*d %*d %*d %*d %*d %llu", &ticks) != 1)
		return -1;
	f = fopen("/proc/stat", "r");
	if (f == NULL)
		return -1;
	while (fgets(line, sizeof(line), f) != NULL)
		if (sscanf(line, "btime %llu", &btime) == 1)
			break;
	fclose(f);
	return btime == 0 ? -1
	                  : (double)btime + (double)ticks /
	                                    (double)sysconf(_SC_CLK_TCK);
}

/* ---- rendering ---- */

struct buf {
	char *data;
	size_t len, cap;
	int failed;
};

static void
out(struct buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void
out(struct buf *b, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (b->failed)
		return;
	for (;;) {
		va_start(ap, fmt);
		n = vsnprintf(b->data + b->len, b->cap - b->len, fmt, ap);
		va_end(ap);
		if (n < 0) {
			b->failed = 1;
			return;
		}
		if ((size_t)n < b->cap - b->len) {
			b->len += (size_t)n;
			return;
		}
		size_t cap = b->cap * 2 + (size_t)n;
		char *d = realloc(b->data, cap);
		if (d == NULL) {
			b->failed = 1;
			return;
		}
		b->data = d;
		b->cap = cap;
	}
}

static void
render_histogram(struct buf *b, const char *name, const char *labels,
                 const struct histogram *h, const double *bounds)
{
	uint_fast64_t cum = 0;
	const char *sep = labels[0] ? "," : "";

	for (size_t i = 0; i <= NBUCKETS; i++) {
		cum += atomic_load_explicit(&h->buckets[i], memory_order_relaxed);
		if (i < NBUCKETS)
			out(b, "%s_bucket{%s%sle=\"%g\"} %llu\n", name, labels, sep,
			    bounds[i], (unsigned long long)cum);
		else
			out(b, "%s_bucket{%s%sle=\"+Inf\"} %llu\n", name, labels,
			    sep, (unsigned long long)cum);
	}
	out(b, "%s_sum%s%s%s %.6f\n", name, labels[0] ? "{" : "", labels,
	    labels[0] ? "}" : "",
	    (double)atomic_load_explicit(&h->sum_micro,
	                                 memory_order_relaxed) / 1e6);
	/* The +Inf bucket's total, not h->count read again: an observation
	 * between the two reads made _count and the +Inf bucket disagree
	 * (an inconsistent histogram; seen under TSan in test_ops). */
	out(b, "%s_count%s%s%s %llu\n", name, labels[0] ? "{" : "", labels,
	    labels[0] ? "}" : "", (unsigned long long)cum);
}

char *
metrics_render(const struct metrics_gauges *g)
{
	struct buf b = {.cap = 8192};
	size_t n = atomic_load_explicit(&ntypes, memory_order_acquire);
	char labels[128];

	b.data = malloc(b.cap);
	if (b.data == NULL)
		return NULL;

	out(&b, "# HELP jobd_jobs_submitted_total Jobs accepted (202) and "
	        "stored.\n# TYPE jobd_jobs_submitted_total counter\n");
	for (size_t i = 0; i < n; i++)
		out(&b, "jobd_jobs_submitted_total{type=\"%s\"} %llu\n",
		    types[i].name, (unsigned long long)types[i].submitted);
	out(&b, "# HELP jobd_jobs_started_total Attempts started.\n"
	        "# TYPE jobd_jobs_started_total counter\n");
	for (size_t i = 0; i < n; i++)
		out(&b, "jobd_jobs_started_total{type=\"%s\"} %llu\n",
		    types[i].name, (unsigned long long)types[i].started);
	out(&b, "# HELP jobd_jobs_finished_total Jobs that reached a final "
	        "status.\n# TYPE jobd_jobs_finished_total counter\n");
	for (size_t i = 0; i < n; i++)
		for (int s = JOB_SUCCEEDED; s <= JOB_CANCELLED; s++)
			out(&b, "jobd_jobs_finished_total{type=\"%s\",status="
			    "\"%s\"} %llu\n", types[i].name, job_status_name(s),
			    (unsigned long long)types[i].finished[s]);
	out(&b, "# HELP jobd_job_retries_total Failed attempts scheduled "
	        "for a retry.\n# TYPE jobd_job_retries_total counter\n");
	for (size_t i = 0; i < n; i++)
		out(&b, "jobd_job_retries_total{type=\"%s\"} %llu\n",
		    types[i].name, (unsigned long long)types[i].retried);
	out(&b, "# HELP jobd_jobs Jobs in the store per status.\n"
	        "# TYPE jobd_jobs gauge\n");
	for (int s = 0; s < JOB_NSTATUS; s++)
		out(&b, "jobd_jobs{status=\"%s\"} %lld\n", job_status_name(s),
		    (long long)g->jobs[s]);
	out(&b, "# HELP jobd_workers_busy Workers running an attempt.\n"
	        "# TYPE jobd_workers_busy gauge\njobd_workers_busy %lld\n",
	    (long long)g->workers_busy);
	out(&b, "# HELP jobd_waiters Requests waiting for a job's end, and "
	        "GET /events streams.\n"
	        "# TYPE jobd_waiters gauge\njobd_waiters %lld\n",
	    (long long)g->waiters);
	out(&b, "# HELP jobd_leader 1 when this node is the leader (the oldest "
	        "live node of its store).\n"
	        "# TYPE jobd_leader gauge\njobd_leader %lld\n",
	    (long long)g->leader);
	out(&b, "# HELP jobd_nodes Live nodes on this node's store.\n"
	        "# TYPE jobd_nodes gauge\njobd_nodes %lld\n",
	    (long long)g->nodes);
	out(&b, "# HELP jobd_intake_seconds From a submission's arrival "
	        "to its commit.\n"
	        "# TYPE jobd_intake_seconds histogram\n");
	render_histogram(&b, "jobd_intake_seconds", "", &intake, seconds_bounds);
	out(&b, "# HELP jobd_queue_wait_seconds From run_at to the start of "
	        "an attempt.\n# TYPE jobd_queue_wait_seconds histogram\n");
	render_histogram(&b, "jobd_queue_wait_seconds", "", &queue_wait,
	                 seconds_bounds);
	out(&b, "# HELP jobd_run_seconds Duration of attempts.\n"
	        "# TYPE jobd_run_seconds histogram\n");
	for (size_t i = 0; i < n; i++) {
		snprintf(labels, sizeof(labels), "type=\"%.64s\"", types[i].name);
		render_histogram(&b, "jobd_run_seconds", labels, &types[i].run,
		                 seconds_bounds);
	}
	out(&b, "# HELP jobd_store_commit_batch_size Operations per store "
	        "transaction (group commit).\n"
	        "# TYPE jobd_store_commit_batch_size histogram\n");
	render_histogram(&b, "jobd_store_commit_batch_size", "", &commit_batch,
	                 batch_bounds);
	out(&b, "# HELP jobd_store_commits_total Store transactions "
	        "committed.\n# TYPE jobd_store_commits_total counter\n"
	        "jobd_store_commits_total %llu\n",
	        (unsigned long long)atomic_load(&store_commits));
	out(&b, "# HELP jobd_store_fsyncs_total Commits made durable with "
	        "an fsync (durability = full).\n"
	        "# TYPE jobd_store_fsyncs_total counter\n"
	        "jobd_store_fsyncs_total %llu\n",
	        (unsigned long long)atomic_load(&store_fsyncs));
	out(&b, "# HELP jobd_store_notifies_total Commits that woke the "
	        "other nodes (one NOTIFY each; several nodes only).\n"
	        "# TYPE jobd_store_notifies_total counter\n"
	        "jobd_store_notifies_total %llu\n",
	        (unsigned long long)atomic_load(&store_notifies));
	out(&b, "# HELP jobd_store_errors_total Store transactions that "
	        "failed, by kind.\n# TYPE jobd_store_errors_total counter\n");
	for (int k = 0; k < SE_N; k++)
		out(&b, "jobd_store_errors_total{kind=\"%s\"} %llu\n",
		    store_error_names[k],
		    (unsigned long long)atomic_load(&store_errors[k]));
	out(&b, "# HELP jobd_callbacks_total Callback deliveries, by result."
	        "\n# TYPE jobd_callbacks_total counter\n");
	for (int k = 0; k < 3; k++)
		out(&b, "jobd_callbacks_total{result=\"%s\"} %llu\n",
		    callback_result_names[k],
		    (unsigned long long)atomic_load(&callback_results[k]));
	out(&b, "# HELP jobd_http_requests_total HTTP answers, by status "
	        "code.\n# TYPE jobd_http_requests_total counter\n");
	for (int c = 100; c < 600; c++) {
		unsigned long long hits = atomic_load(&http_codes[c]);
		if (hits > 0)
			out(&b, "jobd_http_requests_total{code=\"%d\"} %llu\n",
			    c, hits);
	}
	out(&b, "# HELP jobd_build_info The running jobd.\n"
	        "# TYPE jobd_build_info gauge\n"
	        "jobd_build_info{version=\"%s\"} 1\n", JOBD_VERSION);
	long long rss = resident_bytes(), fds = open_fds();
	double started = start_time_seconds();
	if (rss >= 0)
		out(&b, "# HELP process_resident_memory_bytes Resident memory "
		        "size in bytes.\n"
		        "# TYPE process_resident_memory_bytes gauge\n"
		        "process_resident_memory_bytes %lld\n", rss);
	if (fds >= 0)
		out(&b, "# HELP process_open_fds Number of open file "
		        "descriptors.\n# TYPE process_open_fds gauge\n"
		        "process_open_fds %lld\n", fds);
	if (started >= 0)
		out(&b, "# HELP process_start_time_seconds Start time of the "
		        "process since the epoch in seconds.\n"
		        "# TYPE process_start_time_seconds gauge\n"
		        "process_start_time_seconds %.2f\n", started);
	if (b.failed) {
		free(b.data);
		return NULL;
	}
	return b.data;
}
