/*
 * test_utf8.c - the one UTF-8 decoder (src/utf8.c): well-formed and
 * ill-formed sequences (RFC 3629), and the sanitised copy of exec output.
 */
#include <check.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "utf8.h"

START_TEST(test_valid)
{
	static const struct { const char *s; size_t len; bool ok; } cases[] = {
		{"", 0, true},
		{"plain ascii", 11, true},
		{"\x00", 1, true},
		{"\x7f", 1, true},
		{"\xc2\x80", 2, true},           /* U+0080 */
		{"\xc3\xa9", 2, true},           /* é */
		{"\xdf\xbf", 2, true},           /* U+07FF */
		{"\xe0\xa0\x80", 3, true},       /* U+0800 */
		{"\xe2\x82\xac", 3, true},       /* € */
		{"\xed\x9f\xbf", 3, true},       /* U+D7FF */
		{"\xee\x80\x80", 3, true},       /* U+E000 */
		{"\xef\xbf\xbf", 3, true},       /* U+FFFF */
		{"\xf0\x90\x80\x80", 4, true},   /* U+10000 */
		{"\xf0\x9f\x98\x80", 4, true},   /* 😀 */
		{"\xf4\x8f\xbf\xbf", 4, true},   /* U+10FFFF */
		{"\xc0\x80", 2, false},          /* overlong NUL */
		{"\xc1\xbf", 2, false},
		{"\xe0\x9f\xbf", 3, false},      /* overlong U+07FF */
		{"\xf0\x8f\xbf\xbf", 4, false},  /* overlong U+FFFF */
		{"\xed\xa0\x80", 3, false},      /* U+D800 */
		{"\xed\xb0\x80", 3, false},      /* U+DC00 */
		{"\xed\xbf\xbf", 3, false},      /* U+DFFF */
		{"\xf4\x90\x80\x80", 4, false},  /* U+110000 */
		{"\xf5\x80\x80\x80", 4, false},
		{"\xf8\x88\x80\x80\x80", 5, false},
		{"\xfc\x84\x80\x80\x80\x80", 6, false},
		{"\xfe", 1, false},
		{"\xff", 1, false},
		{"\x80", 1, false},
		{"\xbf", 1, false},
		{"a\x80z", 3, false},
		{"\xc3", 1, false},              /* truncated */
		{"\xe2\x82", 2, false},
		{"\xf0\x9f\x98", 3, false},
		{"\xc3\x28", 2, false},          /* bad continuation */
		{"\xe2\x28\xa1", 3, false},
		{"\xe2\x82\x28", 3, false},
		{"\xf0\x28\x8c\xbc", 4, false},
		{"\xc3\xa9", 1, false},          /* len cuts a sequence */
		{"\xe2\x82\xac", 2, false},
		{"ok\xc3\xa9ok\xe2\x82\xac", 10, true},
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		ck_assert_msg(utf8_valid(cases[i].s, cases[i].len) ==
		              cases[i].ok, "case %zu: want %s", i,
		              cases[i].ok ? "valid" : "invalid");
}
END_TEST

START_TEST(test_decode)
{
	uint32_t cp = 0;

	ck_assert_uint_eq(utf8_decode("", 0, &cp), 0);
	ck_assert_uint_eq(utf8_decode("A", 1, &cp), 1);
	ck_assert_uint_eq(cp, 'A');
	ck_assert_uint_eq(utf8_decode("\xc3\xa9", 2, &cp), 2);
	ck_assert_uint_eq(cp, 0xe9);
	ck_assert_uint_eq(utf8_decode("\xe2\x82\xac", 3, &cp), 3);
	ck_assert_uint_eq(cp, 0x20ac);
	ck_assert_uint_eq(utf8_decode("\xf0\x9f\x98\x80", 4, &cp), 4);
	ck_assert_uint_eq(cp, 0x1f600);
	ck_assert_uint_eq(utf8_decode("\xf0\x9f\x98\x80", 3, &cp), 0);
	ck_assert_uint_eq(utf8_decode("\xed\xa0\x80", 3, &cp), 0);
}
END_TEST

START_TEST(test_sanitize)
{
	static const struct { const char *in; size_t len; const char *out; }
	cases[] = {
		{"", 0, ""},
		{"plain", 5, "plain"},
		{"caf\xc3\xa9", 5, "caf\xc3\xa9"},
		{"a\0b", 3, "a\xef\xbf\xbd" "b"},         /* NUL */
		{"a\xff" "b", 3, "a\xef\xbf\xbd" "b"},        /* invalid byte */
		{"\xc3", 1, "\xef\xbf\xbd"},             /* truncated */
		{"\xe2\x82z", 3, "\xef\xbf\xbd\xef\xbf\xbdz"},
		{"\xc0\xaf", 2, "\xef\xbf\xbd\xef\xbf\xbd"}, /* overlong */
		{"\xed\xa0\x80", 3,
		 "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd"},  /* surrogate */
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char *got = utf8_sanitize(cases[i].in, cases[i].len);
		ck_assert_ptr_nonnull(got);
		ck_assert_msg(strcmp(got, cases[i].out) == 0, "case %zu", i);
		ck_assert(utf8_valid(got, strlen(got)));
		free(got);
	}
}
END_TEST

static Suite *
utf8_suite(void)
{
	Suite *s = suite_create("utf8");
	TCase *tc = tcase_create("utf8");

	tcase_add_test(tc, test_valid);
	tcase_add_test(tc, test_decode);
	tcase_add_test(tc, test_sanitize);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	SRunner *sr = srunner_create(utf8_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
