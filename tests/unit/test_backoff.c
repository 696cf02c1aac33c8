/*
 * test_backoff.c - unit tests of src/backoff.c: the cap
 * min(max, base * 2^(attempt-1)) and full jitter in [0, cap].
 */
#include <check.h>
#include <limits.h>
#include <stdbool.h>
#include <stdint.h>

#include "backoff.h"

START_TEST(test_cap_doubles)
{
	int64_t want = 1000;

	for (int attempt = 1; attempt <= 12; attempt++) {
		ck_assert_msg(backoff_cap_ms(attempt, 1000, 3600000) == want,
		              "attempt %d: %lld, want %lld", attempt,
		              (long long)backoff_cap_ms(attempt, 1000, 3600000),
		              (long long)want);
		want *= 2;
	}
	/* 1000 * 2^11 = 2048000; 2^12 would be 4096000 > 3600000. */
	ck_assert_int_eq(backoff_cap_ms(12, 1000, 3600000), 2048000);
	ck_assert_int_eq(backoff_cap_ms(13, 1000, 3600000), 3600000);
	ck_assert_int_eq(backoff_cap_ms(14, 1000, 3600000), 3600000);
	ck_assert_int_eq(backoff_cap_ms(100, 1000, 3600000), 3600000);
}
END_TEST

START_TEST(test_cap_exactly_reached)
{
	ck_assert_int_eq(backoff_cap_ms(3, 250, 1000), 1000);
	ck_assert_int_eq(backoff_cap_ms(4, 250, 1000), 1000);
	ck_assert_int_eq(backoff_cap_ms(2, 250, 1000), 500);
	/* A cap below the base wins from the first attempt. */
	ck_assert_int_eq(backoff_cap_ms(1, 5000, 1000), 1000);
	ck_assert_int_eq(backoff_cap_ms(1, 5000, 0), 0);
	/* A base equal to the cap. */
	ck_assert_int_eq(backoff_cap_ms(1, 1000, 1000), 1000);
	ck_assert_int_eq(backoff_cap_ms(7, 1000, 1000), 1000);
}
END_TEST

START_TEST(test_attempt_below_one)
{
	ck_assert_int_eq(backoff_cap_ms(0, 1000, 3600000), 1000);
	ck_assert_int_eq(backoff_cap_ms(-1, 1000, 3600000), 1000);
	ck_assert_int_eq(backoff_cap_ms(INT_MIN, 1000, 3600000), 1000);
	for (uint64_t r = 0; r < 5000; r++) {
		int64_t d = backoff_delay_ms(0, 1000, 3600000, r);
		ck_assert_int_ge(d, 0);
		ck_assert_int_le(d, 1000);
	}
}
END_TEST

START_TEST(test_overflow_safe)
{
	/* Doubling must never wrap to a negative or small number. */
	ck_assert_int_eq(backoff_cap_ms(INT_MAX, 1000, 3600000), 3600000);
	ck_assert_int_eq(backoff_cap_ms(INT_MAX, 1000, INT64_MAX), INT64_MAX);
	ck_assert_int_eq(backoff_cap_ms(64, 1, INT64_MAX), INT64_MAX);
	ck_assert_int_eq(backoff_cap_ms(63, 1, INT64_MAX), 1LL << 62);
	ck_assert_int_eq(backoff_cap_ms(2, INT64_MAX / 2 + 1, INT64_MAX),
	                 INT64_MAX);
	ck_assert_int_eq(backoff_cap_ms(1000, INT64_MAX, INT64_MAX), INT64_MAX);
	ck_assert_int_eq(backoff_cap_ms(1000, INT64_MAX - 1, INT64_MAX - 7),
	                 INT64_MAX - 7);
	for (int attempt = 1; attempt < 200; attempt++) {
		int64_t cap = backoff_cap_ms(attempt, 3, INT64_MAX - 1);
		ck_assert_int_gt(cap, 0);
		ck_assert_int_le(cap, INT64_MAX - 1);
		if (attempt > 1)
			ck_assert_int_ge(cap, backoff_cap_ms(attempt - 1, 3,
			                                     INT64_MAX - 1));
	}
	/* The delay with the largest cap and any r stays in range. */
	ck_assert_int_eq(backoff_delay_ms(INT_MAX, 1000, INT64_MAX, UINT64_MAX),
	                 INT64_MAX);
	ck_assert_int_ge(backoff_delay_ms(INT_MAX, 1000, INT64_MAX,
	                                  (uint64_t)INT64_MAX + 12345), 0);
}
END_TEST

START_TEST(test_delay_within_range)
{
	static const uint64_t rs[] = {
		0, 1, 2, 999, 1000, 1001, 4095, 4096, 123456789,
		0x7fffffffffffffffULL, 0x8000000000000000ULL,
		0xfffffffffffffffeULL, 0xffffffffffffffffULL,
	};
	uint64_t x = 88172645463325252ULL;

	for (int attempt = 1; attempt <= 20; attempt++) {
		int64_t cap = backoff_cap_ms(attempt, 1000, 60000);
		for (size_t i = 0; i < sizeof(rs) / sizeof(rs[0]); i++) {
			int64_t d = backoff_delay_ms(attempt, 1000, 60000, rs[i]);
			ck_assert_int_ge(d, 0);
			ck_assert_int_le(d, cap);
		}
		for (int i = 0; i < 20000; i++) {
			/* xorshift64: spread r over all 64 bits */
			x ^= x << 13;
			x ^= x >> 7;
			x ^= x << 17;
			int64_t d = backoff_delay_ms(attempt, 1000, 60000, x);
			ck_assert_int_ge(d, 0);
			ck_assert_int_le(d, cap);
		}
	}
}
END_TEST

START_TEST(test_full_range_reachable)
{
	int64_t cap = backoff_cap_ms(3, 1000, 60000); /* 4000 */
	bool seen[4001] = {false};

	ck_assert_int_eq(cap, 4000);
	ck_assert_int_eq(backoff_delay_ms(3, 1000, 60000, 0), 0);
	ck_assert_int_eq(backoff_delay_ms(3, 1000, 60000, 4000), 4000);
	ck_assert_int_eq(backoff_delay_ms(3, 1000, 60000, 1234), 1234);
	ck_assert_int_eq(backoff_delay_ms(3, 1000, 60000, 4001), 0);
	/* r = 0..cap covers every value of [0, cap]. */
	for (uint64_t r = 0; r <= (uint64_t)cap; r++)
		seen[backoff_delay_ms(3, 1000, 60000, r)] = true;
	for (int v = 0; v <= cap; v++)
		ck_assert_msg(seen[v], "%d never chosen", v);
	/* And at the cap of the cap. */
	ck_assert_int_eq(backoff_delay_ms(30, 1000, 60000, 60000), 60000);
	ck_assert_int_eq(backoff_delay_ms(30, 1000, 60000, 60001), 0);
}
END_TEST

START_TEST(test_zero_base)
{
	for (int attempt = 0; attempt <= 64; attempt++)
		ck_assert_int_eq(backoff_cap_ms(attempt, 0, 3600000), 0);
	ck_assert_int_eq(backoff_delay_ms(1, 0, 3600000, 0), 0);
	ck_assert_int_eq(backoff_delay_ms(5, 0, 3600000, 12345), 0);
	ck_assert_int_eq(backoff_delay_ms(5, 0, 3600000, UINT64_MAX), 0);
	ck_assert_int_eq(backoff_delay_ms(5, 0, 0, UINT64_MAX), 0);
	for (int i = 0; i < 100; i++)
		ck_assert_int_eq(backoff_jitter_ms(3, 0, 3600000), 0);
}
END_TEST

START_TEST(test_jitter_spread)
{
	/* backoff_jitter_ms draws from its own generator: always in range, and
	 * spread over it (10000 draws all in one quarter is ~4^-10000). */
	const int64_t cap = backoff_cap_ms(5, 1000, 3600000); /* 16000 */
	int64_t min = INT64_MAX, max = -1;
	int low = 0;

	ck_assert_int_eq(cap, 16000);
	for (int i = 0; i < 10000; i++) {
		int64_t d = backoff_jitter_ms(5, 1000, 3600000);
		ck_assert_int_ge(d, 0);
		ck_assert_int_le(d, cap);
		if (d < min)
			min = d;
		if (d > max)
			max = d;
		if (d < cap / 2)
			low++;
	}
	ck_assert_int_lt(min, cap / 4);
	ck_assert_int_gt(max, cap * 3 / 4);
	ck_assert_int_gt(low, 3000);
	ck_assert_int_lt(low, 7000);
}
END_TEST

static Suite *
backoff_suite(void)
{
	Suite *s = suite_create("backoff");
	TCase *tc = tcase_create("core");

	tcase_add_test(tc, test_cap_doubles);
	tcase_add_test(tc, test_cap_exactly_reached);
	tcase_add_test(tc, test_attempt_below_one);
	tcase_add_test(tc, test_overflow_safe);
	tcase_add_test(tc, test_delay_within_range);
	tcase_add_test(tc, test_full_range_reachable);
	tcase_add_test(tc, test_zero_base);
	tcase_add_test(tc, test_jitter_spread);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	SRunner *sr = srunner_create(backoff_suite());
	int failures;

	srunner_run_all(sr, CK_NORMAL);
	failures = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failures != 0;
}
