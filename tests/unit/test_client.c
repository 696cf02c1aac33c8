/*
 * test_client.c - unit tests of the pure parts of src/client.c: the
 * progress bar (clamping, unknown and hostile percentages, small
 * buffers), relative times (units, the future, boundaries) and which
 * command lines mean the client rather than the daemon.
 */
#include <check.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "client.h"

START_TEST(test_bar)
{
	char b[64];

	ck_assert_str_eq(client_bar(0, 10, b, sizeof(b)), "[          ]   0%");
	ck_assert_str_eq(client_bar(40, 10, b, sizeof(b)), "[####      ]  40%");
	ck_assert_str_eq(client_bar(100, 10, b, sizeof(b)), "[##########] 100%");
	ck_assert_str_eq(client_bar(1e300, 10, b, sizeof(b)),
	                 "[##########] 100%");
	ck_assert_str_eq(client_bar(-1, 10, b, sizeof(b)), "[          ]");
	ck_assert_str_eq(client_bar(-1e300, 10, b, sizeof(b)), "[          ]");
	ck_assert_str_eq(client_bar(NAN, 10, b, sizeof(b)), "[          ]");
	ck_assert_str_eq(client_bar(INFINITY, 4, b, sizeof(b)), "[####] 100%");
	ck_assert_str_eq(client_bar(99.9, 10, b, sizeof(b)), "[######### ]  99%");
	/* The width never overflows the buffer. */
	{
		char small[12];
		client_bar(50, 1000, small, sizeof(small));
		ck_assert_uint_lt(strlen(small), sizeof(small));
		ck_assert_int_eq(small[0], '[');
	}
	client_bar(50, 0, b, sizeof(b));
	ck_assert_int_eq(b[0], '[');
}
END_TEST

START_TEST(test_reltime)
{
	char b[32];
	long long now = 1800000000000LL;

	ck_assert_str_eq(client_reltime(now, now, b, sizeof(b)), "just now");
	ck_assert_str_eq(client_reltime(now - 999, now, b, sizeof(b)),
	                 "just now");
	ck_assert_str_eq(client_reltime(now - 3000, now, b, sizeof(b)),
	                 "3s ago");
	ck_assert_str_eq(client_reltime(now - 59999, now, b, sizeof(b)),
	                 "59s ago");
	ck_assert_str_eq(client_reltime(now - 60000, now, b, sizeof(b)),
	                 "1m ago");
	ck_assert_str_eq(client_reltime(now - 7200000, now, b, sizeof(b)),
	                 "2h ago");
	ck_assert_str_eq(client_reltime(now - 4 * 86400000LL, now, b,
	                                sizeof(b)), "4d ago");
	ck_assert_str_eq(client_reltime(now + 10000, now, b, sizeof(b)),
	                 "in 10s");
	ck_assert_str_eq(client_reltime(now + 300000, now, b, sizeof(b)),
	                 "in 5m");
	ck_assert_str_eq(client_reltime(0, now, b, sizeof(b)), "20833d ago");
}
END_TEST

START_TEST(test_selected)
{
	static const struct {
		const char *argv[6];
		bool client;
	} cases[] = {
		{{"jobd", NULL}, true},
		{{"jobd", "ls", NULL}, true},
		{{"jobd", "frob", NULL}, true},
		{{"jobd", "--json", "ls", NULL}, true},
		{{"jobd", "--url", "http://x", "types", NULL}, true},
		{{"jobd", "--config", "ls", NULL}, false},
		{{"jobd", "-c", "ls", "--check-config", NULL}, false},
		{{"jobd", "--config=f", NULL}, false},
		{{"jobd", "--version", NULL}, false},
		{{"jobd", "--help", NULL}, false},
		{{"jobd", "--check-config", NULL}, false},
		{{"jobd", "--", NULL}, false},
		{{"jobd", "--", "ls", NULL}, true},
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int argc = 0;
		while (cases[i].argv[argc] != NULL)
			argc++;
		ck_assert_msg(client_selected(argc, (char **)cases[i].argv) ==
		              cases[i].client, "case %zu", i);
	}
}
END_TEST

static Suite *
suite(void)
{
	Suite *s = suite_create("client");
	TCase *tc = tcase_create("client");

	tcase_add_test(tc, test_bar);
	tcase_add_test(tc, test_reltime);
	tcase_add_test(tc, test_selected);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	SRunner *sr = srunner_create(suite());
	int failed;

	srunner_run_all(sr, CK_ENV);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
