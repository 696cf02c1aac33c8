/*
 * stats.c - the ring of recent per-10-second counts behind GET /stats.
 *
 * Each counter is one 64-bit atomic that packs the bucket number it
 * belongs to (high 32 bits) with its count (low 32 bits).  Counting is a
 * compare-and-swap loop: a counter still holding an older bucket number
 * is restarted at this bucket with the new count, so recycling a bucket
 * and counting in it are one atomic step, with any number of counting
 * threads and no lock.  A reader takes a counter's count only when its
 * bucket number is the one it asks for.  32 bits of 10-second buckets
 * last 1361 years of monotonic time; 2^32 events per 10 s is more than
 * the writer can commit.
 *
 * LOCKING: none; every shared field is atomic.  The global ring is made
 * once (pthread_once).
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>

#include "clock.h"
#include "stats.h"

struct stats {
	/* (bucket number << 32) | count, per slot and kind. */
	_Atomic uint64_t slots[STATS_BUCKETS][STATS_NKINDS];
};

stats *
stats_new(void)
{
	stats *s = malloc(sizeof(*s));

	if (s == NULL)
		return NULL;
	for (int i = 0; i < STATS_BUCKETS; i++)
		for (int k = 0; k < STATS_NKINDS; k++)
			/* Bucket number 0 with count 0 is what an unused
			 * slot reads as: zero, whatever is asked. */
			atomic_init(&s->slots[i][k], 0);
	return s;
}

void
stats_free(stats *s)
{
	free(s);
}

static uint32_t
bucket_of(int64_t mono_ms)
{
	return (uint32_t)((mono_ms < 0 ? 0 : mono_ms) / STATS_BUCKET_MS);
}

void
stats_count(stats *s, int kind, uint32_t n, int64_t now_mono_ms)
{
	uint32_t b = bucket_of(now_mono_ms);
	_Atomic uint64_t *slot;
	uint64_t old, want;

	if (s == NULL || kind < 0 || kind >= STATS_NKINDS || n == 0)
		return;
	slot = &s->slots[b % STATS_BUCKETS][kind];
	old = atomic_load_explicit(slot, memory_order_relaxed);
	do {
		uint32_t ob = (uint32_t)(old >> 32), oc = (uint32_t)old;
		if (ob == b)
			/* Saturates rather than wrapping into the number. */
			want = old + (oc > UINT32_MAX - n ? UINT32_MAX - oc : n);
		else if ((int32_t)(ob - b) > 0)
			return; /* a later bucket took the slot: too old */
		else
			want = ((uint64_t)b << 32) | n;
	} while (!atomic_compare_exchange_weak_explicit(
	                 slot, &old, want, memory_order_relaxed,
	                 memory_order_relaxed));
}

void
stats_read(const stats *s, int64_t now_mono_ms,
           uint64_t out[STATS_BUCKETS][STATS_NKINDS])
{
	uint32_t now_b = bucket_of(now_mono_ms);

	for (int i = 0; i < STATS_BUCKETS; i++) {
		uint32_t b = now_b - (uint32_t)(STATS_BUCKETS - 1 - i);
		for (int k = 0; k < STATS_NKINDS; k++) {
			uint64_t v = s == NULL ? 0 : atomic_load_explicit(
			        (_Atomic uint64_t *)&s->slots[b % STATS_BUCKETS][k],
			        memory_order_relaxed);
			/* A slot still holding another bucket (older, or
			 * never used) counts nothing for this one. */
			out[i][k] = (uint32_t)(v >> 32) == b ? (uint32_t)v : 0;
		}
	}
}

cJSON *
stats_json(const stats *s, int64_t now_mono_ms, int64_t now_wall_ms)
{
	uint64_t counts[STATS_BUCKETS][STATS_NKINDS];
	int64_t start_ms = (int64_t)bucket_of(now_mono_ms) * STATS_BUCKET_MS -
	                   (int64_t)(STATS_BUCKETS - 1) * STATS_BUCKET_MS;
	cJSON *root = cJSON_CreateObject(), *arr;
	char t[32];

	stats_read(s, now_mono_ms, counts);
	clock_format_rfc3339(now_wall_ms, t, sizeof(t));
	if (root == NULL ||
	    !cJSON_AddNumberToObject(root, "bucket_seconds",
	                             STATS_BUCKET_MS / 1000) ||
	    !cJSON_AddStringToObject(root, "now", t) ||
	    (arr = cJSON_AddArrayToObject(root, "buckets")) == NULL)
		goto oom;
	for (int i = 0; i < STATS_BUCKETS; i++) {
		int64_t b_mono = start_ms + (int64_t)i * STATS_BUCKET_MS;
		cJSON *o = cJSON_CreateObject();

		if (o == NULL || !cJSON_AddItemToArray(arr, o)) {
			cJSON_Delete(o);
			goto oom;
		}
		clock_format_rfc3339(now_wall_ms - (now_mono_ms - b_mono), t,
		                     sizeof(t));
		if (!cJSON_AddStringToObject(o, "t", t) ||
		    !cJSON_AddNumberToObject(o, "submitted",
		                             (double)counts[i][STATS_SUBMITTED]) ||
		    !cJSON_AddNumberToObject(o, "finished",
		                             (double)counts[i][STATS_FINISHED]))
			goto oom;
	}
	return root;
oom:
	cJSON_Delete(root);
	return NULL;
}

static stats *global;
static pthread_once_t global_once = PTHREAD_ONCE_INIT;

static void
global_init(void)
{
	global = stats_new(); /* NULL when out of memory: nothing counts */
}

stats *
stats_global(void)
{
	pthread_once(&global_once, global_init);
	return global;
}

void
stats_submitted(void)
{
	stats_count(stats_global(), STATS_SUBMITTED, 1, clock_mono_ms());
}

void
stats_finished(void)
{
	stats_count(stats_global(), STATS_FINISHED, 1, clock_mono_ms());
}
