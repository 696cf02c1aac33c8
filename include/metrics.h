/*
 * metrics.h - counters, gauges and histograms for GET /metrics (Prometheus
 * text exposition format 0.0.4).
 *
 * Counting is a relaxed atomic add on the hot path: no lock, no store
 * query.  Per-type series live in a fixed table of types (looked up by
 * name; new types, e.g. after a reload, take free rows).  Any thread may
 * call any function here; the registry needs no set-up.
 */
#ifndef JOBD_METRICS_H
#define JOBD_METRICS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "job.h"

void metrics_submitted(const char *type);
void metrics_started(const char *type);
void metrics_finished(const char *type, int status);
void metrics_retried(const char *type);

/* Seconds histograms. */
void metrics_intake_seconds(double s);
void metrics_queue_wait_seconds(double s);
void metrics_run_seconds(const char *type, double s);
/* Operations committed in one store transaction. */
void metrics_commit_batch(size_t n);
/* A store transaction committed (fsynced or not), or failed (JOBD_E*). */
void metrics_store_commit(bool fsynced);
/* A commit carried a wake-up of the other nodes (NOTIFY). */
void metrics_store_notify(void);
void metrics_store_error(int code);
/* An HTTP answer was sent with status (100..599). */
void metrics_http_answer(int status);
/* A callback delivery: 0 delivered, 1 retried (failed, will be tried
 * again), 2 failed (no attempt left).  Any thread. */
void metrics_callback(int result);

/* Gauges read at scrape time through callbacks set by main. */
struct metrics_gauges {
	int64_t jobs[JOB_NSTATUS]; /* per enum job_status */
	int64_t workers_busy;
	int64_t waiters;
	int64_t leader;          /* 1 when this node is the leader */
	int64_t nodes;           /* live nodes on the store (1: not shared) */
};

/*
 * Renders the exposition text.  Returns a new string (caller frees) or
 * NULL when out of memory.
 */
char *metrics_render(const struct metrics_gauges *g);

#endif
