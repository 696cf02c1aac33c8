/*
 * stats.h - recent rates for the dashboard (GET /stats): how many jobs
 * were submitted and how many reached a final state, per 10-second bucket
 * over the last 10 minutes, computed by the daemon so that a page that
 * just opened sees them at once.
 *
 * A ring of STATS_BUCKETS buckets; bucket k covers monotonic time
 * [k * STATS_BUCKET_MS, (k + 1) * STATS_BUCKET_MS).  Counting is one
 * lock-free compare-and-swap per event; a bucket is recycled by the first
 * count that lands in it after STATS_BUCKETS buckets, so there is no
 * thread of its own and no lock.  Any thread may call any function here.
 */
#ifndef JOBD_STATS_H
#define JOBD_STATS_H

#include <cJSON.h>
#include <stdint.h>

#define STATS_BUCKET_MS 10000
#define STATS_BUCKETS 60    /* 10 minutes */

enum stats_kind { STATS_SUBMITTED, STATS_FINISHED, STATS_NKINDS };

typedef struct stats stats;

/* A new, empty ring (freed with stats_free, which accepts NULL); NULL when
 * out of memory. */
stats *stats_new(void);
void stats_free(stats *s);

/* Counts n events of kind at monotonic time now_mono_ms (>= 0). */
void stats_count(stats *s, int kind, uint32_t n, int64_t now_mono_ms);

/*
 * The counts of the last STATS_BUCKETS buckets at now_mono_ms, oldest
 * first (out[STATS_BUCKETS - 1] is the current, partial bucket); a bucket
 * nothing was counted in since it was last recycled reads 0.
 */
void stats_read(const stats *s, int64_t now_mono_ms,
                uint64_t out[STATS_BUCKETS][STATS_NKINDS]);

/*
 * GET /stats: {"bucket_seconds": 10, "now": "<RFC 3339>", "buckets":
 * [{"t": "<RFC 3339 start>", "submitted": N, "finished": N}, ...]}, oldest
 * first.  Bucket starts are monotonic instants shown in wall-clock time
 * (now_wall_ms - (now_mono_ms - start)).  Returns a new object the caller
 * frees with cJSON_Delete, or NULL when out of memory.
 */
cJSON *stats_json(const stats *s, int64_t now_mono_ms, int64_t now_wall_ms);

/* The daemon's ring (made on first use; never freed). */
stats *stats_global(void);

/* Shorthands on the daemon's ring at the monotonic clock's now: a job
 * accepted (not an idempotent replay), a job that reached a final state. */
void stats_submitted(void);
void stats_finished(void);

#endif
