/*
 * test_reqparse.c - unit tests of src/reqparse.c: the one wait rule
 * (fractions, quotes, clamping without overflow, refusals), Prefer lists
 * (RFC 7240), Preference-Applied text, and the list parameters.
 */
#include <check.h>
#include <stdint.h>
#include <string.h>

#include "err.h"
#include "job.h"
#include "reqparse.h"

static int
wait_of(const char *s, int64_t max_ms, int64_t *ms)
{
	return reqparse_wait(s, strlen(s), max_ms, ms, NULL, 0);
}

START_TEST(test_wait_values)
{
	static const struct { const char *s; int64_t ms; } ok[] = {
		{"0", 0}, {"5", 5000}, {"1.5", 1500}, {"0.25", 250},
		{"0.0004", 0}, {"2.125999", 2125}, {"\"3\"", 3000},
		{"\"0.5\"", 500}, {"60", 60000}, {"00012", 12000},
	};
	int64_t ms;

	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		ms = -1;
		ck_assert_msg(wait_of(ok[i].s, 60000, &ms) == 0, "%s", ok[i].s);
		ck_assert_msg(ms == ok[i].ms, "%s: %lld", ok[i].s, (long long)ms);
	}
}
END_TEST

START_TEST(test_wait_clamped)
{
	int64_t ms;

	ck_assert_int_eq(wait_of("9223372036854775807", 60000, &ms), 0);
	ck_assert_int_eq(ms, 60000);
	ck_assert_int_eq(wait_of("99999999999999999999999999999999", 60000,
	                         &ms), 0);
	ck_assert_int_eq(ms, 60000);
	ck_assert_int_eq(wait_of("9223372036854775807", INT64_MAX, &ms), 0);
	ck_assert_int_eq(ms, 1000000000000LL * 1000);
	ck_assert_int_eq(wait_of("61", 60000, &ms), 0);
	ck_assert_int_eq(ms, 60000);
	ck_assert_int_eq(wait_of("5", 0, &ms), 0);
	ck_assert_int_eq(ms, 0);
	ck_assert_int_eq(wait_of("5", -1, &ms), 0);
	ck_assert_int_eq(ms, 0);
}
END_TEST

START_TEST(test_wait_refused)
{
	static const char *const bad[] = {
		"", "-1", "+1", "1.", ".5", "1e3", "0x10", "abc", " 1", "1 ",
		"\"", "\"\"", "\"3", "3\"", "\"-1\"", "1.5.5", "inf", "nan",
		"000000000000000000000000000000001",
	};
	int64_t ms = 7;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		ck_assert_msg(wait_of(bad[i], 60000, &ms) == JOBD_EINVAL,
		              "\"%s\" accepted", bad[i]);
	ck_assert_int_eq(ms, 7);
	/* a NUL inside is not the end */
	ck_assert_int_eq(reqparse_wait("1\0002", 3, 60000, &ms, NULL, 0),
	                 JOBD_EINVAL);
}
END_TEST

START_TEST(test_format_round_trip)
{
	char buf[32];
	int64_t back;

	reqparse_format_wait(1500, buf, sizeof(buf));
	ck_assert_str_eq(buf, "wait=1.5");
	reqparse_format_wait(60000, buf, sizeof(buf));
	ck_assert_str_eq(buf, "wait=60");
	reqparse_format_wait(250, buf, sizeof(buf));
	ck_assert_str_eq(buf, "wait=0.25");
	reqparse_format_wait(2125, buf, sizeof(buf));
	ck_assert_str_eq(buf, "wait=2.125");
	reqparse_format_wait(0, buf, sizeof(buf));
	ck_assert_str_eq(buf, "wait=0");
	for (int64_t ms = 0; ms < 5000; ms += 7) {
		reqparse_format_wait(ms, buf, sizeof(buf));
		ck_assert_int_eq(wait_of(buf + 5, INT64_MAX, &back), 0);
		ck_assert_int_eq(back, ms);
	}
}
END_TEST

START_TEST(test_prefer)
{
	struct reqparse_prefer p;
	char err[160];

	ck_assert_int_eq(reqparse_prefer(NULL, 60000, &p, err, sizeof(err)), 0);
	ck_assert_int_eq(p.wait_ms, -1);
	ck_assert(!p.respond_async);
	ck_assert_int_eq(reqparse_prefer("respond-async, wait=1.5; x=y",
	                                 60000, &p, err, sizeof(err)), 0);
	ck_assert_int_eq(p.wait_ms, 1500);
	ck_assert(p.respond_async);
	ck_assert_int_eq(reqparse_prefer("Wait = \"3\"", 60000, &p, err,
	                                 sizeof(err)), 0);
	ck_assert_int_eq(p.wait_ms, 3000);
	/* the first wait counts; a comma inside quotes is no separator */
	ck_assert_int_eq(reqparse_prefer("foo=\"a, wait=9\", wait=2, wait=-1",
	                                 60000, &p, err, sizeof(err)), 0);
	ck_assert_int_eq(p.wait_ms, 2000);
	/* preferences jobd does not know are ignored */
	ck_assert_int_eq(reqparse_prefer("return=minimal, handling=lenient",
	                                 60000, &p, err, sizeof(err)), 0);
	ck_assert_int_eq(p.wait_ms, -1);
	ck_assert_int_eq(reqparse_prefer("waiting=5", 60000, &p, err,
	                                 sizeof(err)), 0);
	ck_assert_int_eq(p.wait_ms, -1);
	/* a malformed wait is refused, with a reason */
	static const char *const bad[] = {
		"wait", "wait=", "wait=-1", "wait=1x", "wait=1 2",
		"respond-async, wait=abc", "wait=\"3",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		err[0] = '\0';
		ck_assert_msg(reqparse_prefer(bad[i], 60000, &p, err,
		                              sizeof(err)) == JOBD_EINVAL,
		              "\"%s\" accepted", bad[i]);
		ck_assert_msg(strstr(err, "wait") != NULL, "%s", err);
	}
}
END_TEST

START_TEST(test_list_parameters)
{
	size_t limit;
	int st;
	char after[37];

	ck_assert_int_eq(reqparse_limit(NULL, &limit, NULL, 0), 0);
	ck_assert_uint_eq(limit, 50);
	ck_assert_int_eq(reqparse_limit("7", &limit, NULL, 0), 0);
	ck_assert_uint_eq(limit, 7);
	ck_assert_int_eq(reqparse_limit("5000", &limit, NULL, 0), 0);
	ck_assert_uint_eq(limit, 1000);
	ck_assert_int_eq(reqparse_limit("99999999999999999999999", &limit,
	                                NULL, 0), 0);
	ck_assert_uint_eq(limit, 1000);
	ck_assert_int_eq(reqparse_limit("0", &limit, NULL, 0), JOBD_EINVAL);
	ck_assert_int_eq(reqparse_limit("-1", &limit, NULL, 0), JOBD_EINVAL);
	ck_assert_int_eq(reqparse_limit("+5", &limit, NULL, 0), JOBD_EINVAL);
	ck_assert_int_eq(reqparse_limit(" 5", &limit, NULL, 0), JOBD_EINVAL);
	ck_assert_int_eq(reqparse_limit("", &limit, NULL, 0), JOBD_EINVAL);
	ck_assert_int_eq(reqparse_status("failed", &st, NULL, 0), 0);
	ck_assert_int_eq(st, JOB_FAILED);
	ck_assert_int_eq(reqparse_status("FAILED", &st, NULL, 0),
	                 JOBD_EINVAL);
	ck_assert_int_eq(reqparse_after("01A2098A-E9DC-7716-9E1F-C1044EB93313",
	                                after, NULL, 0), 0);
	ck_assert_str_eq(after, "01a2098a-e9dc-7716-9e1f-c1044eb93313");
	ck_assert_int_eq(reqparse_after("xyz", after, NULL, 0), JOBD_EINVAL);
	ck_assert_int_eq(reqparse_type("a.b-c_9", NULL, 0), 0);
	ck_assert_int_eq(reqparse_type("bad!", NULL, 0), JOBD_EINVAL);
	ck_assert_int_eq(reqparse_idem_key("order-1", NULL, 0), 0);
	ck_assert_int_eq(reqparse_idem_key("", NULL, 0), JOBD_EINVAL);
	ck_assert_int_eq(reqparse_idem_key("a\tb", NULL, 0), JOBD_EINVAL);
	/* Reserved for the jobs of schedules (schedule.h). */
	ck_assert_int_eq(reqparse_idem_key("schedule:a:2026-01-01T00:00:00Z",
	                                   NULL, 0), JOBD_EINVAL);
	ck_assert_int_eq(reqparse_idem_key("schedule", NULL, 0), 0);
	ck_assert_int_eq(reqparse_idem_key("Schedule:a", NULL, 0), 0);
}
END_TEST

static Suite *
reqparse_suite(void)
{
	Suite *s = suite_create("reqparse");
	TCase *tc = tcase_create("reqparse");

	tcase_add_test(tc, test_wait_values);
	tcase_add_test(tc, test_wait_clamped);
	tcase_add_test(tc, test_wait_refused);
	tcase_add_test(tc, test_format_round_trip);
	tcase_add_test(tc, test_prefer);
	tcase_add_test(tc, test_list_parameters);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	SRunner *sr = srunner_create(reqparse_suite());
	int failures;

	srunner_run_all(sr, CK_NORMAL);
	failures = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failures != 0;
}
