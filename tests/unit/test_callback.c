/*
 * test_callback.c - unit tests of src/callback.c's Standard Webhooks
 * parts: the signature against the specification's own example, and the
 * [callbacks] secret (decoding, malformed ones refused by the config with
 * file:line).
 */
#include <check.h>
#include <stdio.h>
#include <string.h>

#include "callback.h"
#include "config.h"
#include "err.h"

/* The example of the Standard Webhooks specification (and of its
 * reference libraries' tests): this secret, id, timestamp and payload
 * sign to this value. */
START_TEST(test_sign_known_vector)
{
	unsigned char key[CALLBACK_KEY_MAX];
	size_t keylen = 0;
	char sig[CALLBACK_SIGNATURE_MAX];
	const char *body = "{\"test\": 2432232314}";

	ck_assert_int_eq(callback_secret_decode(
	    "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", key, &keylen), 0);
	ck_assert_uint_eq(keylen, 24);
	ck_assert_int_eq(callback_sign(key, keylen,
	                               "msg_p5jXN8AQM9LWM0D4loKWxJek",
	                               1614265330, body, strlen(body), sig), 0);
	ck_assert_str_eq(sig, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
	/* One byte more of body, another signature. */
	ck_assert_int_eq(callback_sign(key, keylen,
	                               "msg_p5jXN8AQM9LWM0D4loKWxJek",
	                               1614265330, "{\"test\": 2432232315}",
	                               strlen(body), sig), 0);
	ck_assert_str_ne(sig, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
	/* An empty body is signed too. */
	ck_assert_int_eq(callback_sign(key, keylen, "x", 0, "", 0, sig), 0);
	ck_assert_uint_eq(strlen(sig), 3 + 44);
}
END_TEST

START_TEST(test_secret_decoding)
{
	unsigned char key[CALLBACK_KEY_MAX];
	size_t n = 0;
	char big[6 + 400];

	/* Padding. */
	ck_assert_int_eq(callback_secret_decode("whsec_YQ==", key, &n), 0);
	ck_assert_uint_eq(n, 1);
	ck_assert_int_eq(key[0], 'a');
	ck_assert_int_eq(callback_secret_decode("whsec_YWI=", key, &n), 0);
	ck_assert_uint_eq(n, 2);
	const char *bad[] = {
		"", "whsec_", "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "whsec_abc",
		"whsec_ab=c", "whsec_a===", "whsec_====", "whsec_YQ==YQ==",
		"whsec_Y Q==", "whsec_YQ-_", "WHSEC_YQ==", "whsec_YQ==\n",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		ck_assert_msg(callback_secret_decode(bad[i], key, &n) ==
		              JOBD_EINVAL, "accepted \"%s\"", bad[i]);
	/* 256 bytes is the most (344 base64 characters with padding). */
	memcpy(big, "whsec_", 6);
	memset(big + 6, 'A', 348);
	big[6 + 348] = '\0'; /* 261 bytes */
	ck_assert_int_eq(callback_secret_decode(big, key, &n), JOBD_EINVAL);
	memset(big + 6, 'A', 340);
	memcpy(big + 6 + 340, "AAA=", 5); /* 344 chars: 257 bytes */
	ck_assert_int_eq(callback_secret_decode(big, key, &n), JOBD_EINVAL);
	memcpy(big + 6 + 340, "AA==", 5); /* 256 bytes */
	ck_assert_int_eq(callback_secret_decode(big, key, &n), 0);
	ck_assert_uint_eq(n, 256);
}
END_TEST

START_TEST(test_config_errors_name_the_line)
{
	struct config *cfg = NULL;
	char err[2048];

	ck_assert_int_eq(config_load_string("t.conf", "[server]\n"
	    "listen = 127.0.0.1:1\n[callbacks]\nsecret = whsec_%%%\n"
	    "allow = https://ok.example/ ftp://no.example/\n"
	    "max_attempts = 101\n", &cfg, err, sizeof(err)), JOBD_EINVAL);
	ck_assert_msg(strstr(err, "t.conf:4: [callbacks] secret:") != NULL,
	              "%s", err);
	ck_assert_msg(strstr(err, "t.conf:5: [callbacks] allow:") != NULL,
	              "%s", err);
	ck_assert_msg(strstr(err, "t.conf:6: [callbacks] max_attempts") !=
	              NULL, "%s", err);
	/* A prefix must end its host with '/': "https://a.example" would
	 * allow https://a.example.evil.net and https://a.example@evil.net. */
	const char *hostless[] = {"https://a.example", "http://",
	                          "https:///x", "http://127.0.0.1:9000"};
	for (size_t i = 0; i < sizeof(hostless) / sizeof(hostless[0]); i++) {
		char text[256];
		snprintf(text, sizeof(text), "[callbacks]\nallow = "
		         "https://ok.example/ %s\n", hostless[i]);
		ck_assert_int_eq(config_load_string("t.conf", text, &cfg, err,
		                                    sizeof(err)), JOBD_EINVAL);
		ck_assert_msg(strstr(err, "t.conf:2: [callbacks] allow:") !=
		              NULL, "%s: %s", hostless[i], err);
	}
	ck_assert_int_eq(config_load_string("t.conf", "[callbacks]\n"
	    "secret = whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw\n"
	    "allow = https://a.example/ http://127.0.0.1:9/\n", &cfg, err,
	    sizeof(err)), 0);
	ck_assert_int_eq(cfg->callbacks.max_attempts, 10);
	ck_assert_int_eq(cfg->callbacks.timeout_ms, 10000);
	ck_assert_int_eq(cfg->callbacks.backoff_base_ms, 1000);
	config_free(cfg);
}
END_TEST

static Suite *
callback_suite(void)
{
	Suite *s = suite_create("callback");
	TCase *tc = tcase_create("webhooks");

	tcase_add_test(tc, test_sign_known_vector);
	tcase_add_test(tc, test_secret_decoding);
	tcase_add_test(tc, test_config_errors_name_the_line);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	SRunner *sr = srunner_create(callback_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? 0 : 1;
}
