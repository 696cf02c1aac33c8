/*
 * test_rate.c - token buckets (src/rate.c) with a fake clock: parsing
 * and formatting of N/s, N/m, N/h; capacity and refill; the moment of
 * the next token; a clock that goes back.
 */
#include <check.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "rate.h"

#define S 1000000LL

START_TEST(test_parse)
{
	int64_t n = -1, p = -1;
	char why[128];

	ck_assert_int_eq(rate_parse("20/s", &n, &p, why, sizeof(why)), 0);
	ck_assert_int_eq(n, 20);
	ck_assert_int_eq(p, S);
	ck_assert_int_eq(rate_parse(" 3 / m ", &n, &p, why, sizeof(why)), 0);
	ck_assert_int_eq(n, 3);
	ck_assert_int_eq(p, 60 * S);
	ck_assert_int_eq(rate_parse("1/h", &n, &p, why, sizeof(why)), 0);
	ck_assert_int_eq(p, 3600 * S);
	ck_assert_int_eq(rate_parse("1000000/s", &n, &p, why, sizeof(why)), 0);
	ck_assert_int_eq(n, RATE_MAX_N);
}
END_TEST

START_TEST(test_parse_refusals)
{
	const char *const bad[] = {
		"", "/s", "5", "5/", "5/x", "5/sec", "5s", "-1/s", "0/s",
		"1000001/s", "9223372036854775808/s", "99999999999999999999/s",
		"5/s/s", "5//s", "0x5/s", "5.5/s", "+5/s", "5 /s x", "s/5",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		int64_t n = 7, p = 7;
		char why[128] = "";
		ck_assert_msg(rate_parse(bad[i], &n, &p, why, sizeof(why)) ==
		              JOBD_EINVAL, "accepted \"%s\"", bad[i]);
		ck_assert_msg(why[0] != '\0', "no reason for \"%s\"", bad[i]);
		ck_assert_int_eq(n, 7); /* untouched */
	}
}
END_TEST

START_TEST(test_format)
{
	char b[RATE_TEXT_MAX];

	rate_format(5, S, b, sizeof(b));
	ck_assert_str_eq(b, "5/s");
	rate_format(12, 60 * S, b, sizeof(b));
	ck_assert_str_eq(b, "12/m");
	rate_format(RATE_MAX_N, 3600 * S, b, sizeof(b));
	ck_assert_str_eq(b, "1000000/h");
	rate_format(0, S, b, sizeof(b));
	ck_assert_str_eq(b, "");
}
END_TEST

/* No limit: always a token, never a wait. */
START_TEST(test_unlimited)
{
	struct rate_bucket b;

	rate_init(&b, 0, 0, 1, 100);
	for (int i = 0; i < 1000; i++)
		ck_assert(rate_take(&b, 100));
	ck_assert_int_eq(rate_next_us(&b, 100), -1);
}
END_TEST

/* 5/s, capacity 1: a token every 200 ms, starting full. */
START_TEST(test_refill_one_token)
{
	struct rate_bucket b;
	int64_t t = 10 * S;

	rate_init(&b, 5, S, 1, t);
	ck_assert(rate_ready(&b, t));
	ck_assert_int_eq(rate_next_us(&b, t), t);
	ck_assert(rate_take(&b, t));
	ck_assert(!rate_take(&b, t));
	ck_assert_int_eq(rate_next_us(&b, t), t + 200000);
	ck_assert(!rate_take(&b, t + 199999));
	ck_assert_int_eq(rate_next_us(&b, t + 199999), t + 200000);
	ck_assert(rate_take(&b, t + 200000));
	/* A long idle time keeps one token, not many. */
	ck_assert(rate_take(&b, t + 100 * S));
	ck_assert(!rate_take(&b, t + 100 * S));
	/* Taken as soon as they come: exactly 5 a second. */
	int n = 0;
	for (int64_t now = t + 100 * S; now <= t + 101 * S; now += 1000)
		n += rate_take(&b, now);
	ck_assert_int_eq(n, 5);
}
END_TEST

/* Capacity 3: a burst of 3, then the refill's pace. */
START_TEST(test_capacity)
{
	struct rate_bucket b;

	rate_init(&b, 10, S, 3, 0);
	for (int i = 0; i < 3; i++)
		ck_assert(rate_take(&b, 0));
	ck_assert(!rate_take(&b, 0));
	ck_assert_int_eq(rate_next_us(&b, 0), 100000);
	ck_assert(rate_take(&b, 250000));
	ck_assert(rate_take(&b, 250000));
	ck_assert(!rate_take(&b, 250000));
	ck_assert_int_eq(rate_next_us(&b, 250000), 300000);
	/* Full again after 3 intervals, never more. */
	ck_assert(rate_ready(&b, 10 * S));
	for (int i = 0; i < 3; i++)
		ck_assert(rate_take(&b, 10 * S));
	ck_assert(!rate_take(&b, 10 * S));
}
END_TEST

/* Never more than N per period: the interval is rounded up (7/s: one
 * every 142858 µs, 7 in a second at most). */
START_TEST(test_interval_rounds_up)
{
	struct rate_bucket b;
	int n = 0;

	rate_init(&b, 7, S, 1, 0);
	ck_assert_int_eq(b.interval_us, 142858);
	for (int64_t now = 0; now < S; now++)
		if (rate_take(&b, now))
			n++;
	ck_assert_int_eq(n, 7);
	/* 1/h, and the largest rate. */
	rate_init(&b, 1, 3600 * S, 1, 0);
	ck_assert(rate_take(&b, 0));
	ck_assert_int_eq(rate_next_us(&b, 5), 3600 * S);
	rate_init(&b, RATE_MAX_N, S, 1, 0);
	ck_assert_int_eq(b.interval_us, 1);
}
END_TEST

/* A clock that goes back adds nothing and takes nothing away. */
START_TEST(test_clock_back)
{
	struct rate_bucket b;

	rate_init(&b, 5, S, 1, S);
	ck_assert(rate_take(&b, S));
	ck_assert(!rate_take(&b, 0));
	ck_assert_int_eq(rate_next_us(&b, 0), S + 200000);
	ck_assert(rate_take(&b, S + 200000));
}
END_TEST

static Suite *
suite(void)
{
	Suite *s = suite_create("rate");
	TCase *tc = tcase_create("rate");

	tcase_add_test(tc, test_parse);
	tcase_add_test(tc, test_parse_refusals);
	tcase_add_test(tc, test_format);
	tcase_add_test(tc, test_unlimited);
	tcase_add_test(tc, test_refill_one_token);
	tcase_add_test(tc, test_capacity);
	tcase_add_test(tc, test_interval_rounds_up);
	tcase_add_test(tc, test_clock_back);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	SRunner *sr = srunner_create(suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
