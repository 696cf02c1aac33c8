/*
 * test_clock.c - unit tests of src/clock.c: RFC 3339 formatting (UTC,
 * milliseconds) and parsing (RFC 3339 §5.6 date-time), and the clocks.
 */
#include <check.h>
#include <errno.h>
#include <string.h>
#include <time.h>

#include "clock.h"
#include "err.h"

#define T0 1767323045000LL /* 2026-01-02T03:04:05Z */

static void
assert_format(int64_t ms, const char *want)
{
	char buf[64];

	memset(buf, 'x', sizeof(buf));
	clock_format_rfc3339(ms, buf, sizeof(buf));
	ck_assert_str_eq(buf, want);
	ck_assert_uint_eq(strlen(buf), 24);
}

static void
assert_parse(const char *s, int64_t want)
{
	int64_t got = -12345;
	int rc = clock_parse_rfc3339(s, &got);

	ck_assert_msg(rc == 0, "\"%s\" rejected (%d)", s, rc);
	ck_assert_msg(got == want, "\"%s\" -> %lld, want %lld", s,
	              (long long)got, (long long)want);
}

static void
assert_invalid(const char *s)
{
	int64_t got = -12345;
	int rc = clock_parse_rfc3339(s, &got);

	ck_assert_msg(rc == JOBD_EINVAL, "\"%s\" accepted (-> %lld)", s,
	              (long long)got);
}

/* ---- formatting ---- */

START_TEST(test_format)
{
	assert_format(0, "1970-01-01T00:00:00.000Z");
	assert_format(1, "1970-01-01T00:00:00.001Z");
	assert_format(999, "1970-01-01T00:00:00.999Z");
	assert_format(1000, "1970-01-01T00:00:01.000Z");
	assert_format(T0, "2026-01-02T03:04:05.000Z");
	assert_format(T0 + 123, "2026-01-02T03:04:05.123Z");
	assert_format(T0 + 7, "2026-01-02T03:04:05.007Z");
	assert_format(951825600000LL, "2000-02-29T12:00:00.000Z");
	assert_format(1709164800000LL + 86400000LL - 1,
	              "2024-02-29T23:59:59.999Z");
	assert_format(4102444799999LL, "2099-12-31T23:59:59.999Z");
	assert_format(253402300799999LL, "9999-12-31T23:59:59.999Z");
}
END_TEST

START_TEST(test_format_exact_buffer)
{
	/* 24 characters and the NUL fit in 25 bytes, as the header promises. */
	char buf[25];

	clock_format_rfc3339(T0 + 45, buf, sizeof(buf));
	ck_assert_str_eq(buf, "2026-01-02T03:04:05.045Z");
	/* A short buffer is truncated, never overrun. */
	char small[8 + 1 + 4];
	memset(small, 'x', sizeof(small));
	clock_format_rfc3339(T0, small, 8);
	ck_assert_str_eq(small, "2026-01");
	ck_assert_int_eq(small[8], 'x');
}
END_TEST

/* ---- parsing ---- */

START_TEST(test_parse_valid)
{
	assert_parse("2026-01-02T03:04:05Z", T0);
	assert_parse("1970-01-01T00:00:00Z", 0);
	assert_parse("1970-01-01T00:00:01Z", 1000);
	assert_parse("2026-01-02t03:04:05z", T0);
	assert_parse("2026-01-02T03:04:05z", T0);
	assert_parse("2026-01-02t03:04:05Z", T0);
	assert_parse("2026-01-02 03:04:05Z", T0); /* RFC 3339 §5.6 NOTE */
	assert_parse("2000-02-29T12:00:00Z", 951825600000LL);
	assert_parse("2024-02-29T00:00:00Z", 1709164800000LL);
	assert_parse("2026-12-31T23:59:59Z", 1798761599000LL);
	/* a leap second is accepted (and clamped to :59) */
	assert_parse("2016-12-31T23:59:60Z", 1483228799000LL);
}
END_TEST

START_TEST(test_parse_fractions)
{
	assert_parse("2026-01-02T03:04:05.1Z", T0 + 100);
	assert_parse("2026-01-02T03:04:05.12Z", T0 + 120);
	assert_parse("2026-01-02T03:04:05.123Z", T0 + 123);
	assert_parse("2026-01-02T03:04:05.1234Z", T0 + 123);
	assert_parse("2026-01-02T03:04:05.12345Z", T0 + 123);
	assert_parse("2026-01-02T03:04:05.123456Z", T0 + 123);
	assert_parse("2026-01-02T03:04:05.1234567Z", T0 + 123);
	assert_parse("2026-01-02T03:04:05.12345678Z", T0 + 123);
	assert_parse("2026-01-02T03:04:05.123456789Z", T0 + 123);
	assert_parse("2026-01-02T03:04:05.999999999Z", T0 + 999);
	assert_parse("2026-01-02T03:04:05.000Z", T0);
	assert_parse("2026-01-02T03:04:05.0Z", T0);
	assert_parse("2026-01-02T03:04:05.007Z", T0 + 7);
	assert_parse("2026-01-02T03:04:05.5+01:00", T0 + 500 - 3600000);
}
END_TEST

START_TEST(test_parse_offsets)
{
	assert_parse("2026-01-02T03:04:05+00:00", T0);
	assert_parse("2026-01-02T03:04:05-00:00", T0);
	assert_parse("2026-01-02T04:04:05+01:00", T0);
	assert_parse("2026-01-02T03:04:05+01:00", T0 - 3600000);
	assert_parse("2026-01-01T22:04:05-05:00", T0);
	assert_parse("2026-01-02T08:34:05+05:30", T0);
	assert_parse("2026-01-01T14:49:05-12:15", T0);
	assert_parse("2026-01-03T02:03:05+23:59", T0 - 3600000);
	/* The offset moves the instant across a day and a year. */
	assert_parse("2025-12-31T23:00:00-01:00", 1767225600000LL);
	assert_parse("1970-01-01T00:00:00+01:00", -3600000);
}
END_TEST

START_TEST(test_parse_invalid)
{
	static const char *const bad[] = {
		"",
		"2026",
		"2026-01-02",
		"2026-01-02T",
		"2026-01-02T03:04",
		"2026-01-02T03:04:05",          /* no zone */
		"2026-01-02T03:04:05.123",      /* no zone */
		"2026-01-02T03:04:05Zjunk",     /* trailing junk */
		"2026-01-02T03:04:05Z ",
		"2026-01-02T03:04:05+01:00x",
		" 2026-01-02T03:04:05Z",
		"2026-13-01T00:00:00Z",         /* month 13 */
		"2026-00-01T00:00:00Z",         /* month 0 */
		"2026-01-00T00:00:00Z",         /* day 0 */
		"2026-01-32T00:00:00Z",
		"2026-04-31T00:00:00Z",         /* April has 30 days */
		"2026-06-31T00:00:00Z",
		"2026-09-31T00:00:00Z",
		"2026-11-31T00:00:00Z",
		"2026-02-30T00:00:00Z",
		"2025-02-29T00:00:00Z",         /* not a leap year */
		"2026-02-29T00:00:00Z",
		"2100-02-29T00:00:00Z",         /* divisible by 100, not 400 */
		"2026-01-02T24:00:00Z",
		"2026-01-02T03:60:00Z",
		"2026-01-02T03:04:61Z",
		"2026-1-02T03:04:05Z",
		"2026-01-2T03:04:05Z",
		"26-01-02T03:04:05Z",
		"2026/01/02T03:04:05Z",
		"2026-01-02X03:04:05Z",
		"2026-01-02T03-04-05Z",
		"2026-01-02T3:04:05Z",
		"2026-01-02T03:04:05.Z",        /* a dot needs digits */
		"2026-01-02T03:04:05,123Z",
		"2026-01-02T03:04:05+1:00",
		"2026-01-02T03:04:05+01",
		"2026-01-02T03:04:05+0100",
		"2026-01-02T03:04:05+24:00",
		"2026-01-02T03:04:05+01:60",
		"2026-01-02T03:04:05 +01:00",
		"2026-01-02T03:04:05UTC",
		"2026-01-02T03:04:05GMT",
		"2026-0a-02T03:04:05Z",
		"tomorrow",
		"1767323045",
	};

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_invalid(bad[i]);
}
END_TEST

START_TEST(test_round_trip)
{
	static const int64_t times[] = {
		0, 1, 999, 1000, 86399999, 86400000, 951825600000LL,
		1709164800000LL, T0, T0 + 1, T0 + 999, 1798761599999LL,
		4102444800000LL, 253402300799999LL,
	};
	char buf[32];
	int64_t back;

	for (size_t i = 0; i < sizeof(times) / sizeof(times[0]); i++) {
		clock_format_rfc3339(times[i], buf, sizeof(buf));
		ck_assert_int_eq(clock_parse_rfc3339(buf, &back), 0);
		ck_assert_msg(back == times[i], "%lld -> %s -> %lld",
		              (long long)times[i], buf, (long long)back);
	}
	/* Every millisecond of a second, and a step through many days. */
	for (int64_t ms = T0; ms < T0 + 1000; ms++) {
		clock_format_rfc3339(ms, buf, sizeof(buf));
		ck_assert_int_eq(clock_parse_rfc3339(buf, &back), 0);
		ck_assert_int_eq(back, ms);
	}
	for (int64_t ms = 0; ms < 4102444800000LL; ms += 86400000LL * 7 + 3661001) {
		clock_format_rfc3339(ms, buf, sizeof(buf));
		ck_assert_int_eq(clock_parse_rfc3339(buf, &back), 0);
		ck_assert_int_eq(back, ms);
	}
	/* Canonical strings come back unchanged. */
	static const char *const canon[] = {
		"2026-01-02T03:04:05.123Z", "2000-02-29T00:00:00.000Z",
		"1999-12-31T23:59:59.999Z",
	};
	for (size_t i = 0; i < sizeof(canon) / sizeof(canon[0]); i++) {
		ck_assert_int_eq(clock_parse_rfc3339(canon[i], &back), 0);
		clock_format_rfc3339(back, buf, sizeof(buf));
		ck_assert_str_eq(buf, canon[i]);
	}
}
END_TEST

/* ---- clocks ---- */

START_TEST(test_now_and_offset)
{
	struct timespec ts;
	int64_t real, now;

	clock_gettime(CLOCK_REALTIME, &ts);
	real = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
	now = clock_now_ms();
	ck_assert_int_ge(now, real);
	ck_assert_int_lt(now, real + 5000);

	clock_set_offset_ms(86400000);
	now = clock_now_ms();
	ck_assert_int_ge(now, real + 86400000);
	ck_assert_int_lt(now, real + 86400000 + 5000);
	clock_set_offset_ms(-3600000);
	now = clock_now_ms();
	ck_assert_int_ge(now, real - 3600000);
	ck_assert_int_lt(now, real - 3600000 + 5000);
	clock_set_offset_ms(0);
}
END_TEST

START_TEST(test_mono_nondecreasing)
{
	int64_t prev = clock_mono_ms();

	for (int i = 0; i < 100000; i++) {
		int64_t t = clock_mono_ms();
		ck_assert_int_ge(t, prev);
		prev = t;
	}
}
END_TEST

START_TEST(test_cond_wait_deadline)
{
	/* A deadline already passed returns ETIMEDOUT at once. */
	pthread_cond_t cond;
	pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
	int64_t start;

	ck_assert_int_eq(clock_cond_init(&cond), 0);
	pthread_mutex_lock(&mu);
	start = clock_mono_ms();
	ck_assert_int_eq(clock_cond_wait_until(&cond, &mu, start - 1000),
	                 ETIMEDOUT);
	ck_assert_int_eq(clock_cond_wait_until(&cond, &mu, 0), ETIMEDOUT);
	ck_assert_int_lt(clock_mono_ms() - start, 1000);
	pthread_mutex_unlock(&mu);
	pthread_cond_destroy(&cond);
}
END_TEST

static Suite *
clock_suite(void)
{
	Suite *s = suite_create("clock");
	TCase *tc = tcase_create("core");

	tcase_add_test(tc, test_format);
	tcase_add_test(tc, test_format_exact_buffer);
	tcase_add_test(tc, test_parse_valid);
	tcase_add_test(tc, test_parse_fractions);
	tcase_add_test(tc, test_parse_offsets);
	tcase_add_test(tc, test_parse_invalid);
	tcase_add_test(tc, test_round_trip);
	tcase_add_test(tc, test_now_and_offset);
	tcase_add_test(tc, test_mono_nondecreasing);
	tcase_add_test(tc, test_cond_wait_deadline);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	SRunner *sr = srunner_create(clock_suite());
	int failures;

	srunner_run_all(sr, CK_NORMAL);
	failures = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failures != 0;
}
