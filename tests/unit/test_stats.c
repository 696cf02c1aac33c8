/*
 * test_stats.c - unit tests of src/stats.c: the ring of 10-second buckets
 * behind GET /stats, driven with explicit monotonic times.
 */
#include <check.h>
#include <pthread.h>
#include <stdint.h>
#include <string.h>

#include "clock.h"
#include "stats.h"

#define B STATS_BUCKET_MS
#define LAST (STATS_BUCKETS - 1)
/* Some monotonic time well after boot, at the start of a bucket. */
#define T0 ((int64_t)123456 * B)

static uint64_t c[STATS_BUCKETS][STATS_NKINDS];

static uint64_t
sum(int kind)
{
	uint64_t n = 0;

	for (int i = 0; i < STATS_BUCKETS; i++)
		n += c[i][kind];
	return n;
}

START_TEST(test_empty)
{
	stats *s = stats_new();

	ck_assert_ptr_nonnull(s);
	stats_read(s, T0, c);
	ck_assert_int_eq(sum(STATS_SUBMITTED), 0);
	ck_assert_int_eq(sum(STATS_FINISHED), 0);
	/* Early after boot (bucket numbers below 60) and at 0. */
	stats_read(s, 0, c);
	ck_assert_int_eq(sum(STATS_SUBMITTED), 0);
	stats_read(s, 5 * B, c);
	ck_assert_int_eq(sum(STATS_FINISHED), 0);
	stats_read(NULL, T0, c);
	ck_assert_int_eq(sum(STATS_FINISHED), 0);
	stats_free(s);
	stats_free(NULL);
}
END_TEST

START_TEST(test_buckets_move)
{
	stats *s = stats_new();

	stats_count(s, STATS_SUBMITTED, 3, T0);
	stats_count(s, STATS_SUBMITTED, 1, T0 + B - 1); /* same bucket */
	stats_count(s, STATS_FINISHED, 2, T0 + 5);
	stats_read(s, T0 + 7, c);
	ck_assert_int_eq(c[LAST][STATS_SUBMITTED], 4);
	ck_assert_int_eq(c[LAST][STATS_FINISHED], 2);
	ck_assert_int_eq(sum(STATS_SUBMITTED), 4);
	/* 10 s later it is the one before the current. */
	stats_read(s, T0 + B, c);
	ck_assert_int_eq(c[LAST][STATS_SUBMITTED], 0);
	ck_assert_int_eq(c[LAST - 1][STATS_SUBMITTED], 4);
	/* The oldest shown, 59 buckets later; gone at 60. */
	stats_read(s, T0 + (int64_t)LAST * B + B - 1, c);
	ck_assert_int_eq(c[0][STATS_SUBMITTED], 4);
	ck_assert_int_eq(c[0][STATS_FINISHED], 2);
	stats_read(s, T0 + (int64_t)STATS_BUCKETS * B, c);
	ck_assert_int_eq(sum(STATS_SUBMITTED), 0);
	ck_assert_int_eq(sum(STATS_FINISHED), 0);
	/* Hours later too (the slot still holds the old number). */
	stats_read(s, T0 + (int64_t)3600 * 1000 * 5, c);
	ck_assert_int_eq(sum(STATS_SUBMITTED), 0);
	stats_free(s);
}
END_TEST

START_TEST(test_slot_recycled)
{
	stats *s = stats_new();

	stats_count(s, STATS_SUBMITTED, 7, T0);
	/* Same slot, 60 buckets later: starts over, never adds up. */
	stats_count(s, STATS_SUBMITTED, 2, T0 + (int64_t)STATS_BUCKETS * B);
	stats_read(s, T0 + (int64_t)STATS_BUCKETS * B, c);
	ck_assert_int_eq(c[LAST][STATS_SUBMITTED], 2);
	ck_assert_int_eq(sum(STATS_SUBMITTED), 2);
	/* A late count for the older bucket is dropped, not mixed in. */
	stats_count(s, STATS_SUBMITTED, 5, T0);
	stats_read(s, T0 + (int64_t)STATS_BUCKETS * B, c);
	ck_assert_int_eq(sum(STATS_SUBMITTED), 2);
	stats_free(s);
}
END_TEST

START_TEST(test_bad_input_ignored)
{
	stats *s = stats_new();

	stats_count(s, -1, 1, T0);
	stats_count(s, STATS_NKINDS, 1, T0);
	stats_count(s, STATS_SUBMITTED, 0, T0);
	stats_count(NULL, STATS_SUBMITTED, 1, T0);
	stats_read(s, T0, c);
	ck_assert_int_eq(sum(STATS_SUBMITTED), 0);
	ck_assert_int_eq(sum(STATS_FINISHED), 0);
	/* A negative time counts as 0, never as a huge bucket number. */
	stats_count(s, STATS_FINISHED, 1, -5);
	stats_read(s, 0, c);
	ck_assert_int_eq(c[LAST][STATS_FINISHED], 1);
	stats_free(s);
}
END_TEST

START_TEST(test_saturates)
{
	stats *s = stats_new();

	stats_count(s, STATS_FINISHED, UINT32_MAX - 1, T0);
	stats_count(s, STATS_FINISHED, 5, T0);
	stats_count(s, STATS_FINISHED, UINT32_MAX, T0);
	stats_read(s, T0, c);
	ck_assert_uint_eq(c[LAST][STATS_FINISHED], UINT32_MAX);
	/* The bucket number was not touched: the next bucket starts over. */
	stats_count(s, STATS_FINISHED, 1, T0 + B);
	stats_read(s, T0 + B, c);
	ck_assert_uint_eq(c[LAST - 1][STATS_FINISHED], UINT32_MAX);
	ck_assert_uint_eq(c[LAST][STATS_FINISHED], 1);
	stats_free(s);
}
END_TEST

#define NTHREADS 4
#define PER_THREAD 200000

struct racer {
	stats *s;
	int64_t base;
};

static void *
race(void *arg)
{
	struct racer *r = arg;

	/* Every thread crosses the same bucket boundaries at once, so that
	 * recycling and counting race. */
	for (int i = 0; i < PER_THREAD; i++)
		stats_count(r->s, i & 1, 1, r->base + (int64_t)(i / 1000) * B);
	return NULL;
}

START_TEST(test_threads_lose_nothing)
{
	stats *s = stats_new();
	/* A ring that was used long ago: every slot has to be recycled. */
	struct racer r = {s, T0 + (int64_t)STATS_BUCKETS * B * 3};
	pthread_t th[NTHREADS];
	uint64_t total = 0;

	for (int i = 0; i < STATS_BUCKETS; i++)
		stats_count(s, i & 1, 9, T0 + (int64_t)i * B);
	for (int i = 0; i < NTHREADS; i++)
		ck_assert_int_eq(pthread_create(&th[i], NULL, race, &r), 0);
	for (int i = 0; i < NTHREADS; i++)
		pthread_join(th[i], NULL);
	/* 200 buckets were counted in; the last 60 are seen, whole. */
	stats_read(s, r.base + (int64_t)(PER_THREAD / 1000 - 1) * B, c);
	for (int i = 0; i < STATS_BUCKETS; i++) {
		ck_assert_uint_eq(c[i][0], NTHREADS * 500);
		ck_assert_uint_eq(c[i][1], NTHREADS * 500);
		total += c[i][0] + c[i][1];
	}
	ck_assert_uint_eq(total, (uint64_t)NTHREADS * 1000 * STATS_BUCKETS);
	stats_free(s);
}
END_TEST

START_TEST(test_json)
{
	stats *s = stats_new();
	int64_t mono = T0 + 4321, wall = 1796000000000LL; /* 2026-11-30 */
	cJSON *o, *arr, *b;
	char want[32];
	int i = 0;

	stats_count(s, STATS_SUBMITTED, 3, T0);
	stats_count(s, STATS_FINISHED, 1, T0 - B);
	o = stats_json(s, mono, wall);
	ck_assert_ptr_nonnull(o);
	ck_assert_int_eq(cJSON_GetObjectItem(o, "bucket_seconds")->valueint, 10);
	clock_format_rfc3339(wall, want, sizeof(want));
	ck_assert_str_eq(cJSON_GetObjectItem(o, "now")->valuestring, want);
	arr = cJSON_GetObjectItem(o, "buckets");
	ck_assert_int_eq(cJSON_GetArraySize(arr), STATS_BUCKETS);
	cJSON_ArrayForEach(b, arr) {
		/* The current bucket started 4.321 s before now. */
		int64_t start = wall - 4321 - (int64_t)(LAST - i) * B;
		clock_format_rfc3339(start, want, sizeof(want));
		ck_assert_str_eq(cJSON_GetObjectItem(b, "t")->valuestring, want);
		ck_assert_int_eq(cJSON_GetObjectItem(b, "submitted")->valueint,
		                 i == LAST ? 3 : 0);
		ck_assert_int_eq(cJSON_GetObjectItem(b, "finished")->valueint,
		                 i == LAST - 1 ? 1 : 0);
		i++;
	}
	cJSON_Delete(o);
	stats_free(s);
}
END_TEST

START_TEST(test_global)
{
	ck_assert_ptr_nonnull(stats_global());
	ck_assert_ptr_eq(stats_global(), stats_global());
	stats_submitted();
	stats_submitted();
	stats_finished();
	stats_read(stats_global(), clock_mono_ms(), c);
	/* Both may straddle a bucket boundary: sum them. */
	ck_assert_int_eq(sum(STATS_SUBMITTED), 2);
	ck_assert_int_eq(sum(STATS_FINISHED), 1);
}
END_TEST

static Suite *
stats_suite(void)
{
	Suite *s = suite_create("stats");
	TCase *tc = tcase_create("core");

	tcase_add_test(tc, test_empty);
	tcase_add_test(tc, test_buckets_move);
	tcase_add_test(tc, test_slot_recycled);
	tcase_add_test(tc, test_bad_input_ignored);
	tcase_add_test(tc, test_saturates);
	tcase_add_test(tc, test_threads_lose_nothing);
	tcase_add_test(tc, test_json);
	tcase_add_test(tc, test_global);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	SRunner *sr = srunner_create(stats_suite());
	int failures;

	srunner_run_all(sr, CK_NORMAL);
	failures = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failures != 0;
}
