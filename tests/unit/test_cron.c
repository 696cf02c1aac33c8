/*
 * test_cron.c - unit tests of src/cron.c: tables of expressions with a
 * start and the next fire time (worked out by hand and checked with
 * `date -u -d`, never with cron.c), tables of invalid expressions with
 * their messages, and the local-time rules of cron.h across the changes
 * of a POSIX TZ (central Europe, 2027: 28 March and 31 October).
 */
#include <check.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cron.h"
#include "err.h"

/* "YYYY-MM-DDTHH:MM:SSZ" to Unix seconds, with libc's timegm. */
static int64_t
utc(const char *s)
{
	struct tm tm = { 0 };
	int n = 0;

	ck_assert_msg(sscanf(s, "%d-%d-%dT%d:%d:%dZ%n", &tm.tm_year,
	                     &tm.tm_mon, &tm.tm_mday, &tm.tm_hour, &tm.tm_min,
	                     &tm.tm_sec, &n) == 6 &&
	                      (size_t)n == strlen(s),
	              "bad time in the table: %s", s);
	tm.tm_year -= 1900;
	tm.tm_mon -= 1;
	return (int64_t)timegm(&tm);
}

static void
show(int64_t t, char *buf, size_t len)
{
	time_t tt = (time_t)t;
	struct tm tm;

	gmtime_r(&tt, &tm);
	strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

struct next_case {
	const char *expr;
	const char *after;
	const char *want; /* NULL: never (JOBD_ENOTFOUND) */
};

static void
check_next(const struct next_case *tc, bool in_utc)
{
	struct cron c;
	char err[256] = "", got[64] = "";
	int64_t next = 0;
	int rc;

	ck_assert_msg(cron_parse(&c, tc->expr, err, sizeof(err)) == 0,
	              "%s: %s", tc->expr, err);
	rc = cron_next(&c, utc(tc->after), in_utc, &next);
	if (tc->want == NULL) {
		if (rc == 0)
			show(next, got, sizeof(got));
		ck_assert_msg(rc == JOBD_ENOTFOUND,
		              "%s after %s: rc %d (%s), want never", tc->expr,
		              tc->after, rc, got);
		return;
	}
	ck_assert_msg(rc == 0, "%s after %s: rc %d, want %s", tc->expr,
	              tc->after, rc, tc->want);
	show(next, got, sizeof(got));
	ck_assert_msg(next == utc(tc->want), "%s after %s: %s, want %s",
	              tc->expr, tc->after, got, tc->want);
	ck_assert_msg(next > utc(tc->after), "not strictly after");
	ck_assert_msg(next % 60 == 0 || !in_utc, "not at second 0");
}

static const struct next_case utc_cases[] = {
	/* every minute; strictly after; second 0 */
	{ "* * * * *", "2026-12-01T02:06:50Z", "2026-12-01T02:07:00Z" },
	{ "* * * * *", "2026-12-01T02:07:00Z", "2026-12-01T02:08:00Z" },
	{ "* * * * *", "2026-12-01T02:06:59Z", "2026-12-01T02:07:00Z" },
	{ "* * * * *", "2026-12-31T23:59:59Z", "2027-01-01T00:00:00Z" },
	/* steps, ranges with steps, "a/n", lists */
	{ "*/15 * * * *", "2026-12-01T02:07:00Z", "2026-12-01T02:15:00Z" },
	{ "*/15 * * * *", "2026-12-01T02:45:00Z", "2026-12-01T03:00:00Z" },
	{ "10-40/15 * * * *", "2026-12-01T02:26:00Z", "2026-12-01T02:40:00Z" },
	{ "10-40/15 * * * *", "2026-12-01T02:41:00Z", "2026-12-01T03:10:00Z" },
	{ "5/20 * * * *", "2026-12-01T02:25:00Z", "2026-12-01T02:45:00Z" },
	{ "5/20 * * * *", "2026-12-01T02:46:00Z", "2026-12-01T03:05:00Z" },
	{ "0,30 9-17/4 * * *", "2026-12-01T09:00:00Z", "2026-12-01T09:30:00Z" },
	{ "0,30 9-17/4 * * *", "2026-12-01T09:30:00Z", "2026-12-01T13:00:00Z" },
	{ "0,30 9-17/4 * * *", "2026-12-01T17:30:00Z", "2026-12-02T09:00:00Z" },
	{ "1,2,58-59 * * * *", "2026-12-01T02:02:00Z", "2026-12-01T02:58:00Z" },
	{ "1,2,58-59 * * * *", "2026-12-01T02:59:00Z", "2026-12-01T03:01:00Z" },
	{ "*/7,3 * * * *", "2026-12-01T02:56:00Z", "2026-12-01T03:00:00Z" },
	{ "30 4 * * *", "2026-12-01T05:00:00Z", "2026-12-02T04:30:00Z" },
	{ "59 23 31 12 *", "2026-12-31T23:59:00Z", "2027-12-31T23:59:00Z" },
	/* names, any case */
	{ "0 12 * * mon-fri", "2026-12-04T12:00:00Z", "2026-12-07T12:00:00Z" },
	{ "0 12 * * MON-Fri", "2026-12-01T11:59:59Z", "2026-12-01T12:00:00Z" },
	{ "0 0 1 jan,JUL *", "2026-12-01T00:00:00Z", "2027-01-01T00:00:00Z" },
	{ "0 0 1 jan,JUL *", "2027-01-01T00:00:00Z", "2027-07-01T00:00:00Z" },
	{ "0 0 1 jan-dec/3 *", "2027-01-01T00:00:00Z", "2027-04-01T00:00:00Z" },
	{ "0 0 1 feb/5 *", "2027-02-01T00:00:00Z", "2027-07-01T00:00:00Z" },
	{ "0 0 1 feb/5 *", "2027-07-01T00:00:00Z", "2027-12-01T00:00:00Z" },
	{ "0 0 * feb mon", "2027-01-01T00:00:00Z", "2027-02-01T00:00:00Z" },
	/* macros */
	{ "@hourly", "2026-12-01T02:06:50Z", "2026-12-01T03:00:00Z" },
	{ "@daily", "2026-12-01T02:06:50Z", "2026-12-02T00:00:00Z" },
	{ "@midnight", "2026-12-01T02:06:50Z", "2026-12-02T00:00:00Z" },
	{ "@weekly", "2026-12-01T02:06:50Z", "2026-12-06T00:00:00Z" },
	{ "@weekly", "2026-12-06T00:00:00Z", "2026-12-13T00:00:00Z" },
	{ "@monthly", "2026-12-01T02:06:50Z", "2027-01-01T00:00:00Z" },
	{ "@yearly", "2026-12-01T02:06:50Z", "2027-01-01T00:00:00Z" },
	{ "@annually", "2027-01-01T00:00:00Z", "2028-01-01T00:00:00Z" },
	{ "@DAILY", "2026-12-01T23:59:59Z", "2026-12-02T00:00:00Z" },
	{ "  @hourly \t", "2026-12-01T02:06:50Z", "2026-12-01T03:00:00Z" },
	/* month ends: the 31st of a 30-day month, the 30th of February */
	{ "0 0 31 * *", "2026-04-01T00:00:00Z", "2026-05-31T00:00:00Z" },
	{ "0 0 31 * *", "2026-05-31T00:00:00Z", "2026-07-31T00:00:00Z" },
	{ "0 0 31 * *", "2026-07-31T00:00:00Z", "2026-08-31T00:00:00Z" },
	{ "0 0 31 * *", "2026-08-31T00:00:00Z", "2026-10-31T00:00:00Z" },
	{ "0 0 30 * *", "2027-01-31T00:00:00Z", "2027-03-30T00:00:00Z" },
	{ "0 0 29 * *", "2027-01-29T00:00:00Z", "2027-03-29T00:00:00Z" },
	{ "0 0 29 * *", "2028-01-29T00:00:00Z", "2028-02-29T00:00:00Z" },
	/* leap days: every 4 years, not in 2100, in 2000 */
	{ "0 0 29 2 *", "2027-01-01T00:00:00Z", "2028-02-29T00:00:00Z" },
	{ "0 0 29 2 *", "2028-02-29T00:00:00Z", "2032-02-29T00:00:00Z" },
	{ "0 0 29 2 *", "2028-02-28T23:59:59Z", "2028-02-29T00:00:00Z" },
	{ "0 0 29 2 *", "1999-03-01T00:00:00Z", "2000-02-29T00:00:00Z" },
	{ "0 0 29 2 *", "2096-03-01T00:00:00Z", "2104-02-29T00:00:00Z" },
	{ "0 0 29 feb *", "2097-01-01T00:00:00Z", "2104-02-29T00:00:00Z" },
	{ "59 23 29 2 *", "2096-02-29T23:59:00Z", "2104-02-29T23:59:00Z" },
	{ "0 0 28 2 *", "2100-02-28T00:00:00Z", "2101-02-28T00:00:00Z" },
	/* never */
	{ "0 0 30 2 *", "2026-12-01T00:00:00Z", NULL },
	{ "0 0 31 2 *", "2026-12-01T00:00:00Z", NULL },
	{ "0 0 31 4,6,9,11 *", "2026-12-01T00:00:00Z", NULL },
	{ "0 0 30,31 feb *", "2026-12-01T00:00:00Z", NULL },
	/* day-of-month OR day-of-week when both are restricted */
	{ "0 0 13 * fri", "2026-12-01T00:00:00Z", "2026-12-04T00:00:00Z" },
	{ "0 0 13 * fri", "2026-12-04T00:00:00Z", "2026-12-11T00:00:00Z" },
	{ "0 0 13 * fri", "2026-12-11T00:00:00Z", "2026-12-13T00:00:00Z" },
	{ "0 0 13 * fri", "2026-12-13T00:00:00Z", "2026-12-18T00:00:00Z" },
	{ "0 0 29 2 mon", "2027-03-01T00:00:00Z", "2028-02-07T00:00:00Z" },
	{ "0 0 29 2 tue", "2028-02-28T00:00:00Z", "2028-02-29T00:00:00Z" },
	{ "0 0 30 2 mon", "2026-12-01T00:00:00Z", "2027-02-01T00:00:00Z" },
	/* "*" (with or without a step) in one of them: only the other */
	{ "0 0 13 * *", "2026-12-01T00:00:00Z", "2026-12-13T00:00:00Z" },
	{ "0 0 * * fri", "2026-12-01T00:00:00Z", "2026-12-04T00:00:00Z" },
	{ "0 0 */2 * fri", "2026-12-01T00:00:00Z", "2026-12-11T00:00:00Z" },
	{ "0 0 13 * */2", "2026-12-01T00:00:00Z", "2026-12-13T00:00:00Z" },
	{ "0 0 13 * */2", "2026-12-14T00:00:00Z", "2027-02-13T00:00:00Z" },
	{ "0 0 *,13 * fri", "2026-12-01T00:00:00Z", "2026-12-04T00:00:00Z" },
	/* weekday 7 is Sunday; ranges through 7; "fri-sun" */
	{ "0 0 * * 7", "2026-12-01T00:00:00Z", "2026-12-06T00:00:00Z" },
	{ "0 0 * * 0", "2026-12-01T00:00:00Z", "2026-12-06T00:00:00Z" },
	{ "0 0 * * sun", "2026-12-01T00:00:00Z", "2026-12-06T00:00:00Z" },
	{ "0 0 * * 5-7", "2026-12-04T00:00:00Z", "2026-12-05T00:00:00Z" },
	{ "0 0 * * 5-7", "2026-12-05T00:00:00Z", "2026-12-06T00:00:00Z" },
	{ "0 0 * * 5-7", "2026-12-06T00:00:00Z", "2026-12-11T00:00:00Z" },
	{ "0 0 * * fri-sun", "2026-12-05T00:00:00Z", "2026-12-06T00:00:00Z" },
	{ "0 0 * * fri-sun", "2026-12-06T00:00:00Z", "2026-12-11T00:00:00Z" },
	{ "0 0 * * 1-7/2", "2026-12-05T00:00:00Z", "2026-12-06T00:00:00Z" },
	/* the edges of the years we answer for */
	{ "0 0 1 1 *", "1969-12-31T12:00:00Z", "1970-01-01T00:00:00Z" },
	{ "* * * * *", "0001-01-01T00:00:00Z", "0001-01-01T00:01:00Z" },
	{ "* * * * *", "9999-12-31T23:58:00Z", "9999-12-31T23:59:00Z" },
	{ "* * * * *", "9999-12-31T23:59:00Z", NULL },
	{ "0 0 1 1 *", "9999-06-01T00:00:00Z", NULL },
};

START_TEST(test_next_utc)
{
	check_next(&utc_cases[_i], true);
}
END_TEST

struct bad_case {
	const char *expr;
	size_t len; /* 0: strlen(expr) */
	const char *msg;
};

static const struct bad_case bad_cases[] = {
	{ "", 0, "empty expression" },
	{ " \t ", 0, "empty expression" },
	{ "* * * *", 0, "expected 5 fields, got 4" },
	{ "* * * * * *", 0, "expected 5 fields, got 6" },
	{ "0 0 * * * 2027", 0, "expected 5 fields, got 6" },
	{ "*", 0, "expected 5 fields, got 1" },
	{ "60 * * * *", 0, "minute: 60 is out of range 0-59" },
	{ "* 24 * * *", 0, "hour: 24 is out of range 0-23" },
	{ "* * 0 * *", 0, "day-of-month: 0 is out of range 1-31" },
	{ "* * 32 * *", 0, "day-of-month: 32 is out of range 1-31" },
	{ "* * * 0 *", 0, "month: 0 is out of range 1-12" },
	{ "* * * 13 *", 0, "month: 13 is out of range 1-12" },
	{ "* * * * 8", 0, "day-of-week: 8 is out of range 0-7" },
	{ "1-60 * * * *", 0, "minute: 60 is out of range 0-59" },
	{ "99999999999999999999 * * * *", 0,
	  "minute: 99999999999999999999 is out of range 0-59" },
	{ "* * 1234567890123456789012345678901234567890 * *", 0,
	  "day-of-month: 123456789012345678901234... is out of range 1-31" },
	{ "*/0 * * * *", 0, "minute: step 0 is out of range 1-59" },
	{ "*/60 * * * *", 0, "minute: step 60 is out of range 1-59" },
	{ "* 1-5/0 * * *", 0, "hour: step 0 is out of range 1-23" },
	{ "* * * * */8", 0, "day-of-week: step 8 is out of range 1-7" },
	{ "*/99999999999999999999 * * * *", 0,
	  "minute: step 99999999999999999999 is out of range 1-59" },
	{ "5-1 * * * *", 0, "minute: range 5-1 is reversed" },
	{ "0 0 * * fri-mon", 0, "day-of-week: range fri-mon is reversed" },
	{ "0 0 * dec-jan *", 0, "month: range dec-jan is reversed" },
	{ "1- * * * *", 0, "minute: expected a number after '-'" },
	{ "1-,5 * * * *", 0, "minute: expected a number after '-'" },
	{ "1-* * * * *", 0, "minute: expected a number after '-', got '*'" },
	{ "0 0 * jan- *", 0, "month: expected a number or a name after '-'" },
	{ "*/ * * * *", 0, "minute: expected a step after '/'" },
	{ "*/x * * * *", 0, "minute: expected a step after '/', got 'x'" },
	{ "0 0 * * 1/mon", 0,
	  "day-of-week: expected a step after '/', got 'm'" },
	{ ", * * * *", 0, "minute: empty list element" },
	{ "1, * * * *", 0, "minute: empty list element" },
	{ ",1 * * * *", 0, "minute: empty list element" },
	{ "1,,2 * * * *", 0, "minute: empty list element" },
	{ "5x * * * *", 0, "minute: unexpected 'x'" },
	{ "0 0 * * *x", 0, "day-of-week: unexpected 'x'" },
	{ "0 0 * * 1x", 0, "day-of-week: unexpected 'x'" },
	{ "*-5 * * * *", 0, "minute: unexpected '-'" },
	{ "-5 * * * *", 0, "minute: unexpected '-'" },
	{ "1-5-7 * * * *", 0, "minute: unexpected '-'" },
	{ "*/5/2 * * * *", 0, "minute: unexpected '/'" },
	{ "? * * * *", 0, "minute: unexpected '?'" },
	{ "jan * * * *", 0, "minute: unexpected 'j'" },
	{ "0 0 L * *", 0, "day-of-month: unexpected 'L'" },
	{ "0 0 * * 5#2", 0, "day-of-week: unexpected '#'" },
	{ "0 0 * * 5L", 0, "day-of-week: unexpected 'L'" },
	{ "0 0 * foo *", 0, "month: unknown name \"foo\"" },
	{ "0 0 * * monday", 0, "day-of-week: unknown name \"monday\"" },
	{ "0 0 * * sunday", 0, "day-of-week: unknown name \"sunday\"" },
	{ "0 0 * * mo", 0, "day-of-week: unknown name \"mo\"" },
	{ "0 0 * * mar", 0, "day-of-week: unknown name \"mar\"" },
	{ "0 0 * sun *", 0, "month: unknown name \"sun\"" },
	{ "* * * * *\n", 0, "day-of-week: unexpected byte 0x0A" },
	{ "*\r * * * *", 0, "minute: unexpected byte 0x0D" },
	{ "@reboot", 0,
	  "@reboot is not supported: a schedule needs times of day" },
	{ "@every 5m", 0,
	  "unknown macro \"@every\" (expected @yearly, @annually, @monthly, "
	  "@weekly, @daily, @midnight or @hourly)" },
	{ "@", 0,
	  "unknown macro \"@\" (expected @yearly, @annually, @monthly, "
	  "@weekly, @daily, @midnight or @hourly)" },
	{ "@daily 5", 0, "@daily takes no fields" },
	{ "@hourly *", 0, "@hourly takes no fields" },
	{ "0 @daily", 0, "expected 5 fields, got 2" },
	{ "0 0 @daily * *", 0, "day-of-month: unexpected '@'" },
	/* a NUL inside (cron_parse_len) */
	{ "0 0 * *\0 *", 10, "month: unexpected byte 0x00" },
	{ "\0 0 * * *", 9, "minute: unexpected byte 0x00" },
	{ "0 0 * * *\0", 10, "day-of-week: unexpected byte 0x00" },
	{ "@daily\0", 7,
	  "unknown macro \"@daily\\x00\" (expected @yearly, @annually, "
	  "@monthly, @weekly, @daily, @midnight or @hourly)" },
	/* bytes outside ASCII are never copied into a message */
	{ "0 0 * * \xC3\xA9", 0, "day-of-week: unexpected byte 0xC3" },
	{ "0 0 * * mon\xC3\xA9", 0, "day-of-week: unexpected byte 0xC3" },
	{ "\xFF * * * *", 0, "minute: unexpected byte 0xFF" },
	{ "0 0\xC2\xA0* * * *", 0, "hour: unexpected byte 0xC2" },
	{ "@d\xC3\xA9j\xC3\xA0", 0,
	  "unknown macro \"@d\\xC3\\xA9j\\xC3\\xA0\" (expected @yearly, "
	  "@annually, @monthly, @weekly, @daily, @midnight or @hourly)" },
};

START_TEST(test_parse_errors)
{
	const struct bad_case *tc = &bad_cases[_i];
	size_t len = tc->len ? tc->len : strlen(tc->expr);
	struct cron c;
	char err[512] = "";
	int rc;

	memset(&c, 0xA5, sizeof(c));
	rc = cron_parse_len(&c, tc->expr, len, err, sizeof(err));
	ck_assert_msg(rc == JOBD_EINVAL, "case %d: rc %d, err \"%s\"", _i, rc,
	              err);
	ck_assert_msg(strcmp(err, tc->msg) == 0,
	              "case %d: \"%s\", want \"%s\"", _i, err, tc->msg);
	/* zeroed on failure, so it matches nothing */
	ck_assert(c.minutes == 0 && c.hours == 0 && c.days == 0 &&
	          c.months == 0 && c.weekdays == 0 && c.flags == 0);
	/* no buffer, or a tiny one, is fine */
	ck_assert_int_eq(cron_parse_len(&c, tc->expr, len, NULL, 0),
	                 JOBD_EINVAL);
	memset(err, 'z', sizeof(err));
	ck_assert_int_eq(cron_parse_len(&c, tc->expr, len, err, 4),
	                 JOBD_EINVAL);
	ck_assert(strlen(err) == 3);
}
END_TEST

/* The NUL-terminated form stops at the NUL, as any C string does. */
START_TEST(test_parse_c_string)
{
	struct cron c;
	char err[256] = "";

	ck_assert_int_eq(cron_parse(&c, "0 0 * * *\0junk", err, sizeof(err)),
	                 0);
	ck_assert_int_eq(cron_parse(&c, "0 0 * *\0 *", err, sizeof(err)),
	                 JOBD_EINVAL);
	ck_assert_str_eq(err, "expected 5 fields, got 4");
}
END_TEST

static struct cron
parsed(const char *expr)
{
	struct cron c;
	char err[256] = "";

	ck_assert_msg(cron_parse(&c, expr, err, sizeof(err)) == 0, "%s: %s",
	              expr, err);
	return c;
}

START_TEST(test_parse_bits)
{
	struct cron c = parsed("* * * * *");

	ck_assert(c.minutes == (1ULL << 60) - 1);
	ck_assert(c.hours == (1U << 24) - 1);
	ck_assert(c.days == ((1U << 31) - 1) << 1);
	ck_assert(c.months == ((1U << 12) - 1) << 1);
	ck_assert(c.weekdays == 0x7f);
	ck_assert(c.flags == (CRON_DOM_STAR | CRON_DOW_STAR));

	c = parsed(" \t0,59\t 0,23  1,31 1,12 0,6 \t");
	ck_assert(c.minutes == (1ULL | 1ULL << 59));
	ck_assert(c.hours == (1U | 1U << 23));
	ck_assert(c.days == (1U << 1 | 1U << 31));
	ck_assert(c.months == (1U << 1 | 1U << 12));
	ck_assert(c.weekdays == (1U | 1U << 6));
	ck_assert(c.flags == 0);

	ck_assert(parsed("0 0 * * 7").weekdays == 1);
	ck_assert(parsed("0 0 * * 0-7").weekdays == 0x7f);
	ck_assert(parsed("0 0 * * 6-7").weekdays == (1U | 1U << 6));
	ck_assert(parsed("0 0 * * fri-sun").weekdays ==
	          (1U | 1U << 5 | 1U << 6));
	ck_assert(parsed("0 0 * * sun-sun").weekdays == 1);
	ck_assert(parsed("0 0 * * sun-tue").weekdays == 0x7);
	ck_assert(parsed("0 0 * * 7-sun").weekdays == 1);
	ck_assert(parsed("0 0 * * */2").weekdays ==
	          (1U | 1U << 2 | 1U << 4 | 1U << 6));
	ck_assert(parsed("0 0 * * 1-7/2").weekdays ==
	          (1U | 1U << 1 | 1U << 3 | 1U << 5));
	ck_assert(parsed("0 0 * * SAT,Sun").weekdays == (1U | 1U << 6));
	ck_assert(parsed("0 0 * JAN,Feb,mAr *").months == 0xe);
}
END_TEST

/* More of the bitsets than test_parse_bits: steps and a/n. */
START_TEST(test_parse_steps)
{
	ck_assert(parsed("*/59 * * * *").minutes == (1ULL | 1ULL << 59));
	ck_assert(parsed("58/1 * * * *").minutes == (3ULL << 58));
	ck_assert(parsed("007 * * * *").minutes == 1ULL << 7);
	ck_assert(parsed("0 */23 * * *").hours == (1U | 1U << 23));
	ck_assert(parsed("0 0 */31 * *").days == 1U << 1);
	ck_assert(parsed("0 0 1 */12 *").months == 1U << 1);
	ck_assert(parsed("0 0 * * */7").weekdays == 1);
	ck_assert(parsed("0 0 * * 3/7").weekdays == 1U << 3);
	ck_assert(parsed("1-1/59 * * * *").minutes == 1ULL << 1);
}
END_TEST

START_TEST(test_parse_flags)
{
	/* Vixie: a field that starts with '*' is a star field. */
	ck_assert(parsed("0 0 */2 * 1").flags == CRON_DOM_STAR);
	ck_assert(parsed("0 0 *,13 * 1").flags == CRON_DOM_STAR);
	ck_assert(parsed("0 0 1 * */2").flags == CRON_DOW_STAR);
	ck_assert(parsed("0 0 1-31 * 0-7").flags == 0);
	ck_assert(parsed("0 0 13,* * 5").flags == 0);
}
END_TEST

static bool
same(struct cron a, struct cron b)
{
	return a.minutes == b.minutes && a.hours == b.hours &&
	       a.days == b.days && a.months == b.months &&
	       a.weekdays == b.weekdays && a.flags == b.flags;
}

START_TEST(test_macros)
{
	ck_assert(same(parsed("@yearly"), parsed("0 0 1 1 *")));
	ck_assert(same(parsed("@annually"), parsed("0 0 1 1 *")));
	ck_assert(same(parsed("@monthly"), parsed("0 0 1 * *")));
	ck_assert(same(parsed("@weekly"), parsed("0 0 * * 0")));
	ck_assert(same(parsed("@daily"), parsed("0 0 * * *")));
	ck_assert(same(parsed("@midnight"), parsed("0 0 * * *")));
	ck_assert(same(parsed("@hourly"), parsed("0 * * * *")));
	ck_assert(same(parsed("@Hourly"), parsed("0 * * * *")));
}
END_TEST

START_TEST(test_next_bad_instant)
{
	struct cron c = parsed("* * * * *");
	int64_t next = 42;

	ck_assert_int_eq(cron_next(&c, INT64_MAX, true, &next), JOBD_ERANGE);
	ck_assert_int_eq(cron_next(&c, INT64_MIN, true, &next), JOBD_ERANGE);
	ck_assert_int_eq(cron_next(&c, INT64_MAX, false, &next), JOBD_ERANGE);
	ck_assert_int_eq(cron_next(&c, INT64_MIN, false, &next), JOBD_ERANGE);
	ck_assert_int_eq(cron_next(&c, utc("0001-01-01T00:00:00Z") - 1, true,
	                           &next),
	                 JOBD_ERANGE);
	ck_assert_int_eq(cron_next(&c, utc("9999-12-31T23:59:59Z") + 1, true,
	                           &next),
	                 JOBD_ERANGE);
	ck_assert_int_eq(next, 42);
	ck_assert(!cron_matches(&c, INT64_MAX, true));
	ck_assert(!cron_matches(&c, INT64_MIN, false));
	/* a zeroed (failed) expression never fires */
	memset(&c, 0, sizeof(c));
	ck_assert_int_eq(cron_next(&c, 0, true, &next), JOBD_ENOTFOUND);
	ck_assert(!cron_matches(&c, 0, true));
}
END_TEST

START_TEST(test_matches)
{
	struct cron c = parsed("0 0 13 * fri");

	ck_assert(cron_matches(&c, utc("2026-12-04T00:00:00Z"), true));
	ck_assert(cron_matches(&c, utc("2026-12-04T00:00:59Z"), true));
	ck_assert(!cron_matches(&c, utc("2026-12-04T00:01:00Z"), true));
	ck_assert(cron_matches(&c, utc("2026-12-13T00:00:00Z"), true));
	ck_assert(!cron_matches(&c, utc("2026-12-12T00:00:00Z"), true));
	c = parsed("0 0 13 * *");
	ck_assert(!cron_matches(&c, utc("2026-12-04T00:00:00Z"), true));
	c = parsed("0 0 29 2 *");
	ck_assert(cron_matches(&c, utc("2000-02-29T00:00:00Z"), true));
	ck_assert(!cron_matches(&c, utc("2100-03-01T00:00:00Z"), true));
	c = parsed("0 0 1 1 *");
	ck_assert(cron_matches(&c, 0, true));
	ck_assert(cron_matches(&c, utc("0001-01-01T00:00:00Z"), true));
}
END_TEST

/*
 * cron_next against a search minute by minute with cron_matches, from
 * many instants, for expressions that fire at least every 40 days.
 */
START_TEST(test_next_brute_force)
{
	static const char *const exprs[] = {
		"* * * * *",         "*/7 * * * *",     "59 23 * * *",
		"0 0 13 * fri",      "0 0 */2 * fri",   "0 0 13 * */2",
		"30 4 31 * 1",       "0 12 * * mon-fri", "5/20 9-17/4 * * *",
		"0 0 1,15,31 * *",   "@weekly",         "0 0 * * 7",
		"15 3 28-31 * *",    "0 */6 * feb-apr,jul *",
	};
	uint64_t seed = 0x9E3779B97F4A7C15ULL;

	for (size_t e = 0; e < sizeof(exprs) / sizeof(exprs[0]); e++) {
		struct cron c = parsed(exprs[e]);
		for (int k = 0; k < 60; k++) {
			int64_t after, next, t;

			seed = seed * 6364136223846793005ULL +
			       1442695040888963407ULL;
			/* 1970 .. 2100, any second */
			after = (int64_t)((seed >> 11) % 4102444800ULL);
			ck_assert_int_eq(cron_next(&c, after, true, &next), 0);
			ck_assert(cron_matches(&c, next, true));
			ck_assert_int_eq(next % 60, 0);
			for (t = (after / 60 + 1) * 60; t < next; t += 60)
				ck_assert_msg(!cron_matches(&c, t, true),
				              "%s after %lld: %lld matches "
				              "before %lld",
				              exprs[e], (long long)after,
				              (long long)t, (long long)next);
		}
	}
}
END_TEST

/* ---- local time: TZ=CET-1CEST,M3.5.0,M10.5.0/3 (no tzdata needed) ---- */

static void
set_tz(void)
{
	setenv("TZ", "CET-1CEST,M3.5.0,M10.5.0/3", 1);
	tzset();
}

static void
unset_tz(void)
{
	unsetenv("TZ");
	tzset();
}

static const struct next_case local_cases[] = {
	/* an ordinary summer day: 03:00 CEST is 01:00 UTC */
	{ "0 3 * * *", "2027-06-01T00:00:00Z", "2027-06-01T01:00:00Z" },
	{ "0 0 * * *", "2027-01-10T12:00:00Z", "2027-01-10T23:00:00Z" },
	/* spring, 28 March 2027: 02:00 CET becomes 03:00 CEST (01:00 UTC);
	 * 02:30 does not exist: it fires at the change, once */
	{ "30 2 * * *", "2027-03-27T12:00:00Z", "2027-03-28T01:00:00Z" },
	{ "30 2 * * *", "2027-03-28T01:00:00Z", "2027-03-29T00:30:00Z" },
	{ "*/15 * * * *", "2027-03-28T00:45:00Z", "2027-03-28T01:00:00Z" },
	{ "*/15 * * * *", "2027-03-28T01:00:00Z", "2027-03-28T01:15:00Z" },
	{ "0 2 * * *", "2027-03-28T00:59:59Z", "2027-03-28T01:00:00Z" },
	{ "59 1 * * *", "2027-03-28T00:00:00Z", "2027-03-28T00:59:00Z" },
	{ "0 3 * * *", "2027-03-28T00:00:00Z", "2027-03-28T01:00:00Z" },
	{ "0 3 * * *", "2027-03-28T01:00:00Z", "2027-03-29T01:00:00Z" },
	/* autumn, 31 October 2027: 03:00 CEST becomes 02:00 CET (01:00
	 * UTC); 02:xx happens twice and fires at its first occurrence */
	{ "30 2 * * *", "2027-10-30T12:00:00Z", "2027-10-31T00:30:00Z" },
	{ "30 2 * * *", "2027-10-31T00:30:00Z", "2027-11-01T01:30:00Z" },
	{ "30 2 * * *", "2027-10-31T01:10:00Z", "2027-11-01T01:30:00Z" },
	{ "*/15 * * * *", "2027-10-31T00:30:00Z", "2027-10-31T00:45:00Z" },
	{ "*/15 * * * *", "2027-10-31T00:45:00Z", "2027-10-31T02:00:00Z" },
	{ "*/15 * * * *", "2027-10-31T01:10:00Z", "2027-10-31T02:00:00Z" },
	{ "0 3 * * *", "2027-10-31T00:00:00Z", "2027-10-31T02:00:00Z" },
	{ "0 0 29 2 *", "2027-03-01T00:00:00Z", "2028-02-28T23:00:00Z" },
	{ "0 0 30 2 *", "2027-03-01T00:00:00Z", NULL },
};

START_TEST(test_next_local)
{
	check_next(&local_cases[_i], false);
}
END_TEST

START_TEST(test_matches_local)
{
	struct cron c = parsed("30 2 * * *");

	ck_assert(cron_matches(&c, utc("2027-10-31T00:30:00Z"), false));
	ck_assert(cron_matches(&c, utc("2027-10-31T01:30:00Z"), false));
	ck_assert(!cron_matches(&c, utc("2027-10-31T02:30:00Z"), false));
	ck_assert(cron_matches(&c, utc("2027-06-01T00:30:00Z"), false));
	ck_assert(!cron_matches(&c, utc("2027-06-01T02:30:00Z"), false));
}
END_TEST

/* A zone half an hour off UTC, with no changes. */
START_TEST(test_next_local_half_hour)
{
	struct cron c = parsed("0 0 * * *");
	int64_t next;

	setenv("TZ", "IST-5:30", 1);
	tzset();
	ck_assert_int_eq(cron_next(&c, utc("2027-01-01T00:00:00Z"), false,
	                           &next),
	                 0);
	ck_assert_int_eq(next, utc("2027-01-01T18:30:00Z"));
	/* and UTC is not affected by TZ */
	ck_assert_int_eq(cron_next(&c, utc("2027-01-01T00:00:00Z"), true,
	                           &next),
	                 0);
	ck_assert_int_eq(next, utc("2027-01-02T00:00:00Z"));
}
END_TEST

static Suite *
cron_suite(void)
{
	Suite *s = suite_create("cron");
	TCase *tc = tcase_create("parse");
	TCase *tn = tcase_create("next");
	TCase *tl = tcase_create("local");

	tcase_add_loop_test(tc, test_parse_errors, 0,
	                    (int)(sizeof(bad_cases) / sizeof(bad_cases[0])));
	tcase_add_test(tc, test_parse_c_string);
	tcase_add_test(tc, test_parse_bits);
	tcase_add_test(tc, test_parse_steps);
	tcase_add_test(tc, test_parse_flags);
	tcase_add_test(tc, test_macros);
	suite_add_tcase(s, tc);

	tcase_add_loop_test(tn, test_next_utc, 0,
	                    (int)(sizeof(utc_cases) / sizeof(utc_cases[0])));
	tcase_add_test(tn, test_next_bad_instant);
	tcase_add_test(tn, test_matches);
	tcase_add_test(tn, test_next_brute_force);
	tcase_set_timeout(tn, 60);
	suite_add_tcase(s, tn);

	tcase_add_checked_fixture(tl, set_tz, unset_tz);
	tcase_add_loop_test(tl, test_next_local, 0,
	                    (int)(sizeof(local_cases) /
	                          sizeof(local_cases[0])));
	tcase_add_test(tl, test_matches_local);
	tcase_add_test(tl, test_next_local_half_hour);
	suite_add_tcase(s, tl);
	return s;
}

int
main(void)
{
	SRunner *sr = srunner_create(cron_suite());
	int failures;

	srunner_run_all(sr, CK_NORMAL);
	failures = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failures == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
