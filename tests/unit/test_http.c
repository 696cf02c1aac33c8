/*
 * test_http.c - what jobd makes of libmicrohttpd's own messages
 * (src/http.c): the code and title of an answer it sent by itself, HTML
 * stripped, client-caused ones told apart from the server's.
 */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "http.h"

START_TEST(test_answer_message)
{
	char out[256];
	int code = -1;

	http_mhd_message("Error processing request (HTTP response code is 400 "
	                 "('<html><head><title>Request malformed</title></head>"
	                 "<body>Your HTTP request has wrong value for <b>"
	                 "Content-Length</b> header.</body></html>')). Closing "
	                 "connection. ", out, sizeof(out), &code);
	ck_assert_int_eq(code, 400);
	ck_assert_str_eq(out, "400 Request malformed");
	http_mhd_message("Error processing request (HTTP response code is 431 "
	                 "('<html><head><title>Request too big</title></head>"
	                 "</html>')). Closing connection.", out, sizeof(out),
	                 &code);
	ck_assert_int_eq(code, 431);
	ck_assert_str_eq(out, "431 Request too big");
}
END_TEST

START_TEST(test_other_messages)
{
	char out[256];
	int code = -1;

	http_mhd_message("Failed to parse `Content-Length' header. Closing "
	                 "connection. \n", out, sizeof(out), &code);
	ck_assert_int_eq(code, 0);
	ck_assert_str_eq(out, "Failed to parse `Content-Length' header. "
	                      "Closing connection.");
	http_mhd_message("a <b>bold</b>\n  claim", out, sizeof(out), &code);
	ck_assert_str_eq(out, "a bold claim");
	http_mhd_message("", out, sizeof(out), &code);
	ck_assert_str_eq(out, "");
	http_mhd_message("<html>", out, 2, &code);
	ck_assert_str_eq(out, "");
	ck_assert(http_mhd_client_caused("Failed to parse `Content-Length' "
	                                 "header. Closing connection."));
	ck_assert(http_mhd_client_caused("Error processing request (HTTP "
	                                 "response code is 505 (...))"));
	ck_assert(!http_mhd_client_caused("Failed to create a thread: "
	                                  "Resource temporarily unavailable"));
}
END_TEST

static Suite *
http_suite(void)
{
	Suite *s = suite_create("http");
	TCase *tc = tcase_create("http");

	tcase_add_test(tc, test_answer_message);
	tcase_add_test(tc, test_other_messages);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	SRunner *sr = srunner_create(http_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
