/*
 * test_submit.c - unit tests of src/submit.c: POST /jobs bodies become
 * jobs, or are refused with JOBD_EINVAL (400: malformed) or JOBD_ERANGE
 * (422: well-formed but unacceptable), per DESIGN.md §2.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "config.h"
#include "err.h"
#include "job.h"
#include "submit.h"

/* 2026-01-02T03:04:05.000Z */
#define NOW_US 1767323045000000LL /* the store keeps µs */
#define YEAR_MS (366LL * 86400 * 1000)

static struct config *cfg;
static struct job job;
static char err[512];

static void
setup(void)
{
	char cerr[1024];
	int rc = config_load_string("submit.conf",
	                            "[handler.noop]\n"
	                            "builtin = noop\n"
	                            "timeout = 30s\n"
	                            "max_attempts = 5\n"
	                            "[handler.thumb]\n"
	                            "command = /bin/true\n"
	                            "[handler.a.b-c_9]\n"
	                            "builtin = echo\n",
	                            &cfg, cerr, sizeof(cerr));
	ck_assert_msg(rc == 0, "config: %s", cerr);
	job_init(&job);
	err[0] = '\0';
}

static void
teardown(void)
{
	job_clear(&job);
	config_free(cfg);
	cfg = NULL;
}

static int
parse(const char *body)
{
	job_clear(&job);
	err[0] = '\0';
	return submit_parse(body, strlen(body), cfg, NOW_US, &job, err,
	                    sizeof(err));
}

/* The job must be left as job_init() makes it. */
static void
assert_job_clear(void)
{
	ck_assert_str_eq(job.id, "");
	ck_assert_str_eq(job.type, "");
	ck_assert_ptr_null(job.payload);
	ck_assert_ptr_null(job.result);
	ck_assert_ptr_null(job.error);
	ck_assert_int_eq(job.priority, 0);
	ck_assert_int_eq(job.max_attempts, 0);
	ck_assert_int_eq(job.timeout_ms, 0);
	ck_assert_int_eq(job.created_at_us, -1);
	ck_assert_int_eq(job.run_at_us, -1);
}

static void
expect_ok(const char *body)
{
	int rc = parse(body);

	ck_assert_msg(rc == 0, "rejected (%d: %s): %s", rc, err, body);
}

static void
expect_rc(const char *body, int want)
{
	int rc = parse(body);

	ck_assert_msg(rc == want, "%s: got %d (%s), want %d (%s): %s", body, rc,
	              jobd_strerror(rc), want, jobd_strerror(want), err);
	ck_assert_msg(err[0] != '\0', "no reason given for %s", body);
	assert_job_clear();
}

#define expect_400(body) expect_rc(body, JOBD_EINVAL)
#define expect_422(body) expect_rc(body, JOBD_ERANGE)

/* ---- defaults ---- */

START_TEST(test_minimal_defaults)
{
	expect_ok("{\"type\":\"noop\"}");
	ck_assert_str_eq(job.type, "noop");
	ck_assert_str_eq(job.id, ""); /* the writer gives ids */
	ck_assert_int_eq(job.status, JOB_QUEUED);
	ck_assert_int_eq(job.priority, 0);
	ck_assert_int_eq(job.attempt, 0);
	ck_assert_str_eq(job.payload, "null");
	ck_assert_int_eq(job.max_attempts, 5);      /* the handler's */
	ck_assert_int_eq(job.timeout_ms, 30000);    /* the handler's */
	ck_assert_int_eq(job.created_at_us, NOW_US);
	ck_assert_int_eq(job.run_at_us, NOW_US);
	ck_assert_int_eq(job.started_at_us, -1);
	ck_assert_int_eq(job.finished_at_us, -1);
	ck_assert(job.cancel_on_disconnect);
	ck_assert_ptr_null(job.result);
	ck_assert_ptr_null(job.error);
	ck_assert_ptr_null(job.idem_key);
}
END_TEST

START_TEST(test_defaults_of_other_handler)
{
	/* [handler.thumb] uses the table's defaults: 3 attempts, 60 s. */
	expect_ok(" \n\t{ \"type\" : \"thumb\" } \r\n");
	ck_assert_str_eq(job.type, "thumb");
	ck_assert_int_eq(job.max_attempts, 3);
	ck_assert_int_eq(job.timeout_ms, 60000);
	expect_ok("{\"type\":\"a.b-c_9\"}");
	ck_assert_str_eq(job.type, "a.b-c_9");
}
END_TEST

START_TEST(test_all_fields_valid)
{
	expect_ok("{\"type\":\"noop\",\"payload\":{\"a\":[1,2,\"x\"],\"b\":null},"
	          "\"priority\":-100,\"max_attempts\":100,\"timeout\":1.5,"
	          "\"delay\":2.5,\"cancel_on_disconnect\":false}");
	ck_assert_str_eq(job.type, "noop");
	ck_assert_str_eq(job.payload, "{\"a\":[1,2,\"x\"],\"b\":null}");
	ck_assert_int_eq(job.priority, -100);
	ck_assert_int_eq(job.max_attempts, 100);
	ck_assert_int_eq(job.timeout_ms, 1500);
	ck_assert_int_eq(job.run_at_us, NOW_US + (2500) * 1000LL);
	ck_assert_int_eq(job.created_at_us, NOW_US);
	ck_assert(!job.cancel_on_disconnect);
}
END_TEST

/* ---- payload ---- */

START_TEST(test_payload_kinds)
{
	expect_ok("{\"type\":\"noop\",\"payload\":null}");
	ck_assert_str_eq(job.payload, "null");
	expect_ok("{\"payload\":\"hello\",\"type\":\"noop\"}");
	ck_assert_str_eq(job.payload, "\"hello\"");
	expect_ok("{\"type\":\"noop\",\"payload\":42}");
	ck_assert_str_eq(job.payload, "42");
	expect_ok("{\"type\":\"noop\",\"payload\":[true,false]}");
	ck_assert_str_eq(job.payload, "[true,false]");
	expect_ok("{\"type\":\"noop\",\"payload\":{ \"k\" : [ 1 , { } ] }}");
	ck_assert_str_eq(job.payload, "{\"k\":[1,{}]}");
	expect_ok("{\"type\":\"noop\",\"payload\":\"caf\xc3\xa9 \xe2\x82\xac\"}");
	ck_assert_str_eq(job.payload, "\"caf\xc3\xa9 \xe2\x82\xac\"");
	/* Unknown fields inside the payload are the handler's business. */
	expect_ok("{\"type\":\"noop\",\"payload\":{\"type\":1,\"x\":2}}");
	ck_assert_str_eq(job.payload, "{\"type\":1,\"x\":2}");
}
END_TEST

START_TEST(test_payload_big_integer_kept)
{
	/* "passed to the handler verbatim": an id above 2^53 must not be
	 * rounded through a double. */
	expect_ok("{\"type\":\"noop\",\"payload\":{\"n\":9007199254740993}}");
	ck_assert_str_eq(job.payload, "{\"n\":9007199254740993}");
}
END_TEST

/* ---- type ---- */

START_TEST(test_type_invalid)
{
	char body[256];

	expect_400("{}");
	expect_400("{\"payload\":1}");
	expect_400("{\"type\":5}");
	expect_400("{\"type\":null}");
	expect_400("{\"type\":[\"noop\"]}");
	expect_400("{\"type\":true}");
	expect_422("{\"type\":\"nosuch\"}");
	expect_422("{\"type\":\"NOOP\"}"); /* handler names are case-sensitive */
	expect_422("{\"type\":\"\"}");
	expect_422("{\"type\":\"bad type\"}");
	expect_422("{\"type\":\"noop!\"}");
	expect_422("{\"type\":\"../noop\"}");
	expect_422("{\"type\":\"caf\xc3\xa9\"}");
	snprintf(body, sizeof(body), "{\"type\":\"%065d\"}", 0);
	expect_422(body);
}
END_TEST

START_TEST(test_type_with_nul_escape)
{
	/* "noop\u0000x" is not a valid type name; it must not pass as "noop". */
	expect_422("{\"type\":\"noop\\u0000x\"}");
}
END_TEST

/* ---- priority ---- */

START_TEST(test_priority)
{
	expect_ok("{\"type\":\"noop\",\"priority\":100}");
	ck_assert_int_eq(job.priority, 100);
	expect_ok("{\"type\":\"noop\",\"priority\":-100}");
	ck_assert_int_eq(job.priority, -100);
	expect_ok("{\"type\":\"noop\",\"priority\":7}");
	ck_assert_int_eq(job.priority, 7);
	expect_ok("{\"type\":\"noop\",\"priority\":1e1}");
	ck_assert_int_eq(job.priority, 10);
	expect_ok("{\"type\":\"noop\",\"priority\":-0}");
	ck_assert_int_eq(job.priority, 0);

	expect_422("{\"type\":\"noop\",\"priority\":101}");
	expect_422("{\"type\":\"noop\",\"priority\":-101}");
	expect_422("{\"type\":\"noop\",\"priority\":1e300}");
	expect_400("{\"type\":\"noop\",\"priority\":1.5}");
	expect_400("{\"type\":\"noop\",\"priority\":\"5\"}");
	expect_400("{\"type\":\"noop\",\"priority\":true}");
	expect_400("{\"type\":\"noop\",\"priority\":null}");
	expect_400("{\"type\":\"noop\",\"priority\":[1]}");
}
END_TEST

/* ---- max_attempts ---- */

START_TEST(test_max_attempts)
{
	expect_ok("{\"type\":\"noop\",\"max_attempts\":1}");
	ck_assert_int_eq(job.max_attempts, 1);
	expect_ok("{\"type\":\"noop\",\"max_attempts\":100}");
	ck_assert_int_eq(job.max_attempts, 100);

	expect_422("{\"type\":\"noop\",\"max_attempts\":0}");
	expect_422("{\"type\":\"noop\",\"max_attempts\":-1}");
	expect_422("{\"type\":\"noop\",\"max_attempts\":101}");
	expect_400("{\"type\":\"noop\",\"max_attempts\":2.5}");
	expect_400("{\"type\":\"noop\",\"max_attempts\":\"3\"}");
	expect_400("{\"type\":\"noop\",\"max_attempts\":{}}");
}
END_TEST

/* ---- timeout ---- */

START_TEST(test_timeout)
{
	expect_ok("{\"type\":\"noop\",\"timeout\":10}");
	ck_assert_int_eq(job.timeout_ms, 10000);
	expect_ok("{\"type\":\"noop\",\"timeout\":0.25}");
	ck_assert_int_eq(job.timeout_ms, 250);
	expect_ok("{\"type\":\"noop\",\"timeout\":0.001}");
	ck_assert_int_eq(job.timeout_ms, 1);
	expect_ok("{\"type\":\"noop\",\"timeout\":604800}"); /* a week */
	ck_assert_int_eq(job.timeout_ms, 604800000LL);

	expect_422("{\"type\":\"noop\",\"timeout\":0}");
	expect_422("{\"type\":\"noop\",\"timeout\":-5}");
	expect_422("{\"type\":\"noop\",\"timeout\":604801}");
	expect_422("{\"type\":\"noop\",\"timeout\":1e300}");
	expect_400("{\"type\":\"noop\",\"timeout\":\"10s\"}");
	expect_400("{\"type\":\"noop\",\"timeout\":null}");
	expect_400("{\"type\":\"noop\",\"timeout\":false}");
}
END_TEST

/* ---- delay and run_at ---- */

START_TEST(test_delay)
{
	expect_ok("{\"type\":\"noop\",\"delay\":0}");
	ck_assert_int_eq(job.run_at_us, NOW_US);
	expect_ok("{\"type\":\"noop\",\"delay\":60}");
	ck_assert_int_eq(job.run_at_us, NOW_US + (60000) * 1000LL);
	expect_ok("{\"type\":\"noop\",\"delay\":0.25}");
	ck_assert_int_eq(job.run_at_us, NOW_US + (250) * 1000LL);
	ck_assert_int_eq(job.created_at_us, NOW_US);
	expect_ok("{\"type\":\"noop\",\"delay\":31622400}"); /* 366 days */
	ck_assert_int_eq(job.run_at_us, NOW_US + (YEAR_MS) * 1000LL);

	expect_422("{\"type\":\"noop\",\"delay\":-1}");
	expect_422("{\"type\":\"noop\",\"delay\":31622401}");
	expect_422("{\"type\":\"noop\",\"delay\":1e308}");
	expect_400("{\"type\":\"noop\",\"delay\":\"5\"}");
	expect_400("{\"type\":\"noop\",\"delay\":null}");
	expect_400("{\"type\":\"noop\",\"delay\":[]}");
}
END_TEST

START_TEST(test_delay_and_run_at_both)
{
	expect_422("{\"type\":\"noop\",\"delay\":1,"
	           "\"run_at\":\"2026-01-02T03:04:15Z\"}");
	expect_422("{\"run_at\":\"2026-01-02T03:04:15Z\",\"delay\":0,"
	           "\"type\":\"noop\"}");
}
END_TEST

START_TEST(test_run_at)
{
	expect_ok("{\"type\":\"noop\",\"run_at\":\"2026-01-02T03:04:15Z\"}");
	ck_assert_int_eq(job.run_at_us, NOW_US + (10000) * 1000LL);
	ck_assert_int_eq(job.created_at_us, NOW_US);
	expect_ok("{\"type\":\"noop\",\"run_at\":\"2026-01-02T03:04:05.5Z\"}");
	ck_assert_int_eq(job.run_at_us, NOW_US + (500) * 1000LL);
	expect_ok("{\"type\":\"noop\",\"run_at\":\"2026-01-02T04:05:05+01:00\"}");
	ck_assert_int_eq(job.run_at_us, NOW_US + (60000) * 1000LL);
	expect_ok("{\"type\":\"noop\",\"run_at\":\"2026-01-01T22:04:05-05:00\"}");
	ck_assert_int_eq(job.run_at_us, NOW_US);
	/* In the past means now. */
	expect_ok("{\"type\":\"noop\",\"run_at\":\"2020-01-01T00:00:00Z\"}");
	ck_assert_int_eq(job.run_at_us, NOW_US);
	/* A year ahead (366 days) is the limit. */
	expect_ok("{\"type\":\"noop\",\"run_at\":\"2027-01-03T03:04:05Z\"}");
	ck_assert_int_eq(job.run_at_us, NOW_US + (YEAR_MS) * 1000LL);

	expect_422("{\"type\":\"noop\",\"run_at\":\"2027-01-03T03:04:05.001Z\"}");
	expect_422("{\"type\":\"noop\",\"run_at\":\"2100-01-01T00:00:00Z\"}");
	expect_400("{\"type\":\"noop\",\"run_at\":\"tomorrow\"}");
	expect_400("{\"type\":\"noop\",\"run_at\":\"2026-01-02T03:04:15\"}");
	expect_400("{\"type\":\"noop\",\"run_at\":\"2026-02-30T00:00:00Z\"}");
	expect_400("{\"type\":\"noop\",\"run_at\":\"2026-01-02 junk\"}");
	expect_400("{\"type\":\"noop\",\"run_at\":\"\"}");
	expect_400("{\"type\":\"noop\",\"run_at\":1767323055}");
	expect_400("{\"type\":\"noop\",\"run_at\":null}");
}
END_TEST

/* ---- cancel_on_disconnect ---- */

START_TEST(test_cancel_on_disconnect)
{
	expect_ok("{\"type\":\"noop\",\"cancel_on_disconnect\":true}");
	ck_assert(job.cancel_on_disconnect);
	expect_ok("{\"type\":\"noop\",\"cancel_on_disconnect\":false}");
	ck_assert(!job.cancel_on_disconnect);
	expect_400("{\"type\":\"noop\",\"cancel_on_disconnect\":0}");
	expect_400("{\"type\":\"noop\",\"cancel_on_disconnect\":\"false\"}");
	expect_400("{\"type\":\"noop\",\"cancel_on_disconnect\":null}");
}
END_TEST

/* ---- malformed bodies ---- */

START_TEST(test_malformed_json)
{
	expect_400("{");
	expect_400("}");
	expect_400("{\"type\":}");
	expect_400("{\"type\":\"noop\",}");
	expect_400("{\"type\" \"noop\"}");
	expect_400("{'type':'noop'}");
	expect_400("{type:\"noop\"}");
	expect_400("{\"type\":\"noop\"");
	expect_400("{\"type\":\"noop}");
	expect_400("not json");
	expect_400("{\"type\":\"noop\",\"payload\":[1,2}");
	expect_400("{\"type\":\"noop\",\"payload\":NaN}");
}
END_TEST

START_TEST(test_non_object_body)
{
	expect_400("[]");
	expect_400("[{\"type\":\"noop\"}]");
	expect_400("\"noop\"");
	expect_400("42");
	expect_400("null");
	expect_400("true");
}
END_TEST

START_TEST(test_empty_body)
{
	int rc;

	err[0] = '\0';
	rc = submit_parse("", 0, cfg, NOW_US, &job, err, sizeof(err));
	ck_assert_int_eq(rc, JOBD_EINVAL);
	ck_assert_str_ne(err, "");
	assert_job_clear();
	/* Length 0 wins even if the pointer has bytes behind it. */
	rc = submit_parse("{\"type\":\"noop\"}", 0, cfg, NOW_US, &job, err,
	                  sizeof(err));
	ck_assert_int_eq(rc, JOBD_EINVAL);
	assert_job_clear();
	expect_400(" ");
	expect_400("\n\r\t ");
}
END_TEST

START_TEST(test_trailing_garbage)
{
	expect_400("{\"type\":\"noop\"} x");
	expect_400("{\"type\":\"noop\"}{}");
	expect_400("{\"type\":\"noop\"},");
	expect_400("{\"type\":\"noop\"}}");
	expect_400("{\"type\":\"noop\"}\"");
	/* Trailing whitespace is fine. */
	expect_ok("{\"type\":\"noop\"} \t\r\n ");
}
END_TEST

START_TEST(test_length_is_honoured)
{
	/* Only len bytes are the body; bytes after it do not count. */
	const char *buf = "{\"type\":\"noop\"}GARBAGE";
	int rc = submit_parse(buf, 15, cfg, NOW_US, &job, err, sizeof(err));

	ck_assert_msg(rc == 0, "%d %s", rc, err);
	ck_assert_str_eq(job.type, "noop");
	job_clear(&job);

	/* A NUL byte inside the body is garbage, not the end. */
	static const char nul[] = "{\"type\":\"noop\"}\0{}";
	rc = submit_parse(nul, sizeof(nul) - 1, cfg, NOW_US, &job, err,
	                  sizeof(err));
	ck_assert_int_eq(rc, JOBD_EINVAL);
	assert_job_clear();
}
END_TEST

START_TEST(test_duplicate_field)
{
	expect_400("{\"type\":\"noop\",\"type\":\"noop\"}");
	expect_400("{\"type\":\"noop\",\"type\":\"thumb\"}");
	expect_400("{\"type\":\"noop\",\"priority\":1,\"priority\":2}");
	expect_400("{\"payload\":1,\"type\":\"noop\",\"payload\":2}");
}
END_TEST

START_TEST(test_unknown_field)
{
	expect_422("{\"type\":\"noop\",\"colour\":\"blue\"}");
	expect_422("{\"Type\":\"noop\"}");
	expect_422("{\"type\":\"noop\",\"id\":\"0190\"}");
	expect_422("{\"type\":\"noop\",\"status\":\"succeeded\"}");
	expect_422("{\"type\":\"noop\",\"\":1}");
	ck_assert_ptr_nonnull(strstr(err, "unknown field"));
}
END_TEST

START_TEST(test_failure_after_fields_set_leaves_job_clear)
{
	/* type, max_attempts and timeout are set before payload fails... */
	expect_400("{\"type\":\"noop\",\"priority\":5,\"timeout\":3,"
	           "\"cancel_on_disconnect\":\"yes\"}");
	expect_422("{\"type\":\"noop\",\"priority\":5,\"delay\":-3}");
	expect_400("{\"type\":\"noop\",\"priority\":5,\"run_at\":\"x\"}");
}
END_TEST

/* ---- nesting depth ---- */

static char *
nested_body(int depth_of_payload, char open, char close)
{
	size_t cap = (size_t)depth_of_payload * 8 + 64;
	char *s = malloc(cap);
	size_t n = 0;

	ck_assert_ptr_nonnull(s);
	n += (size_t)snprintf(s + n, cap - n, "{\"type\":\"noop\",\"payload\":");
	for (int i = 0; i < depth_of_payload; i++) {
		if (open == '{')
			n += (size_t)snprintf(s + n, cap - n, "{\"a\":");
		else
			s[n++] = open;
	}
	s[n++] = '1';
	for (int i = 0; i < depth_of_payload; i++)
		s[n++] = close;
	s[n++] = '}';
	s[n] = '\0';
	return s;
}

START_TEST(test_depth_32_ok_33_rejected)
{
	char *b;

	/* The body object is level 1, so a payload of 31 levels makes 32. */
	b = nested_body(31, '[', ']');
	expect_ok(b);
	ck_assert_uint_eq(strlen(job.payload), 31 * 2 + 1);
	free(b);
	b = nested_body(32, '[', ']');
	expect_400(b);
	ck_assert_ptr_nonnull(strstr(err, "32"));
	free(b);

	b = nested_body(31, '{', '}');
	expect_ok(b);
	free(b);
	b = nested_body(32, '{', '}');
	expect_400(b);
	free(b);

	/* Far deeper than cJSON's own limit. */
	b = nested_body(5000, '[', ']');
	expect_400(b);
	free(b);
}
END_TEST

START_TEST(test_depth_brackets_in_strings)
{
	char body[512];
	char brackets[101];

	memset(brackets, '[', 100);
	brackets[100] = '\0';
	snprintf(body, sizeof(body),
	         "{\"type\":\"noop\",\"payload\":\"%s\\\"%s\"}", brackets,
	         brackets);
	expect_ok(body);
	ck_assert_uint_eq(strlen(job.payload), 2 + 200 + 2);
}
END_TEST

/* ---- UTF-8 ---- */

START_TEST(test_invalid_utf8_rejected)
{
	static const char *const bad[] = {
		"\xc0\xaf",             /* overlong '/' */
		"\xc1\xbf",             /* overlong */
		"\xe0\x80\xaf",         /* overlong, 3 bytes */
		"\xf0\x80\x80\xaf",     /* overlong, 4 bytes */
		"\xed\xa0\x80",         /* U+D800, a surrogate */
		"\xed\xbf\xbf",         /* U+DFFF */
		"\xf4\x90\x80\x80",     /* above U+10FFFF */
		"\xf8\x88\x80\x80\x80", /* 5-byte form */
		"\xff",
		"\x80",                 /* lone continuation */
		"\xe2\x82",             /* truncated before the quote */
		"\xc3",
	};
	char body[128];

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		snprintf(body, sizeof(body),
		         "{\"type\":\"noop\",\"payload\":\"a%sb\"}", bad[i]);
		expect_400(body);
		ck_assert_ptr_nonnull(strstr(err, "UTF-8"));
	}
	/* Truncated at the very end of the body. */
	expect_400("{\"type\":\"noop\"}\xe2\x82");
	expect_400("{\"type\":\"noop\"}\xc3");
}
END_TEST

START_TEST(test_escaped_surrogates)
{
	/* A surrogate pair written as escapes is one valid code point, and
	 * the payload reaches the handler verbatim, escapes and all... */
	expect_ok("{\"type\":\"noop\",\"payload\":\"\\ud83d\\ude00\"}");
	ck_assert_str_eq(job.payload, "\"\\ud83d\\ude00\"");
	/* ... a lone one is not text. */
	expect_400("{\"type\":\"noop\",\"payload\":\"\\ud800\"}");
	expect_400("{\"type\":\"noop\",\"payload\":\"\\udc00\"}");
	expect_400("{\"type\":\"noop\",\"payload\":\"\\ud800x\"}");
}
END_TEST

/* depends_on from ids already resolved (a batch's "#N" made ids first):
 * checked, deduplicated case-insensitively, lower case, space-separated. */
START_TEST(test_depends_on_ids)
{
	const char *a = "01900000-0000-7000-8000-00000000000A";
	const char *b = "01900000-0000-7000-8000-00000000000b";
	const char *ids[101] = {0};
	char *out = (char *)1;

	ck_assert_int_eq(submit_depends_on(ids, 0, &out, err, sizeof(err)), 0);
	ck_assert_ptr_null(out);
	ids[0] = a;
	ids[1] = b;
	ids[2] = "01900000-0000-7000-8000-00000000000a";
	ck_assert_int_eq(submit_depends_on(ids, 3, &out, err, sizeof(err)), 0);
	ck_assert_str_eq(out, "01900000-0000-7000-8000-00000000000a "
	                 "01900000-0000-7000-8000-00000000000b");
	free(out);
	ids[1] = "01900000-0000-7000-8000-00000000000";
	ck_assert_int_eq(submit_depends_on(ids, 2, &out, err, sizeof(err)),
	                 JOBD_ERANGE);
	ck_assert_ptr_null(out);
	ck_assert_msg(strstr(err, "[1]") != NULL, "%s", err);
	ids[1] = "#0";
	ck_assert_int_eq(submit_depends_on(ids, 2, &out, err, sizeof(err)),
	                 JOBD_ERANGE);
	for (int i = 0; i < 101; i++)
		ids[i] = a;
	ck_assert_int_eq(submit_depends_on(ids, 100, &out, err, sizeof(err)),
	                 0);
	ck_assert_str_eq(out, "01900000-0000-7000-8000-00000000000a");
	free(out);
	ck_assert_int_eq(submit_depends_on(ids, 101, &out, err, sizeof(err)),
	                 JOBD_ERANGE);
	ck_assert_ptr_null(out);
}
END_TEST

/* A batch's "#N": kept, then resolved to the ids the batch made. */
START_TEST(test_depends_on_batch_refs)
{
	struct job jobs[3];
	const char *ids[4];
	char *out = NULL;

	for (int i = 0; i < 3; i++) {
		job_init(&jobs[i]);
		snprintf(jobs[i].id, sizeof(jobs[i].id),
		         "01900000-0000-7000-8000-00000000000%d", i);
	}
	ids[0] = "#0";
	ids[1] = "#1";
	ids[2] = "01900000-0000-7000-8000-00000000000F";
	ids[3] = "#0";
	ck_assert_int_eq(submit_depends_on_batch(ids, 4, 2, &out, err,
	                 sizeof(err)), 0);
	ck_assert_str_eq(out, "#0 #1 01900000-0000-7000-8000-00000000000f");
	ck_assert_int_eq(submit_depends_on_resolve(&out, jobs, 2), 0);
	ck_assert_str_eq(out, "01900000-0000-7000-8000-000000000000 "
	                 "01900000-0000-7000-8000-000000000001 "
	                 "01900000-0000-7000-8000-00000000000f");
	free(out);
	/* Itself, forward, not a number, a leading zero, a sign: 422. */
	const char *const bad[] = {"#2", "#3", "#", "#x", "#01", "#+1", "#-1",
	                           "# 1", "#1 ", "#99999999999999999999"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++) {
		ids[0] = bad[i];
		ck_assert_msg(submit_depends_on_batch(ids, 1, 2, &out, err,
		              sizeof(err)) == JOBD_ERANGE, "%s", bad[i]);
		ck_assert_ptr_null(out);
	}
	/* Outside a batch "#0" is no job id. */
	ids[0] = "#0";
	ck_assert_int_eq(submit_depends_on(ids, 1, &out, err, sizeof(err)),
	                 JOBD_ERANGE);
	/* Resolving with fewer ids than a reference needs: refused. */
	out = strdup("#1");
	ck_assert_int_eq(submit_depends_on_resolve(&out, jobs, 1),
	                 JOBD_ERANGE);
	ck_assert_str_eq(out, "#1");
	free(out);
}
END_TEST

START_TEST(test_json_depth_direct)
{
	static const struct { const char *s; int limit; int want; } cases[] = {
		{"", 32, 0},
		{"1", 32, 0},
		{"\"x\"", 32, 0},
		{"{}", 32, 1},
		{"[]", 32, 1},
		{"[[]]", 32, 2},
		{"[[],[[]]]", 32, 3},
		{"{\"a\":{\"b\":[1,{\"c\":2}]}}", 32, 4},
		{"[][][]", 32, 1},
		/* brackets inside strings do not count */
		{"[\"[[[[{{{{\"]", 32, 1},
		{"{\"}}}}]]]]\":[1]}", 32, 2},
		/* an escaped quote does not end the string */
		{"[\"\\\"[[[[\"]", 32, 1},
		{"[\"\\\"\",[[]]]", 32, 3},
		/* an escaped backslash does: the bracket after it counts */
		{"[\"\\\\\",[]]", 32, 2},
		{"[\"\\\\\\\"[[\"]", 32, 1},
		/* the limit */
		{"[[[]]]", 3, 3},
		{"[[[[]]]]", 3, 4},
		{"[[[[[[[[[[", 3, 4},
		{"[[[[[[[[[[", 32, 10},
		{"{\"a\":[{\"b\":[]}]}", 0, 1},
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int d = submit_json_depth(cases[i].s, strlen(cases[i].s),
		                          cases[i].limit);
		ck_assert_msg(d == cases[i].want, "case %zu (%s, limit %d): %d, "
		              "want %d", i, cases[i].s, cases[i].limit, d,
		              cases[i].want);
	}
	/* len bounds the scan. */
	ck_assert_int_eq(submit_json_depth("[[[[", 2, 32), 2);
}
END_TEST

static Suite *
submit_suite(void)
{
	Suite *s = suite_create("submit");
	TCase *tc = tcase_create("core");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_minimal_defaults);
	tcase_add_test(tc, test_defaults_of_other_handler);
	tcase_add_test(tc, test_all_fields_valid);
	tcase_add_test(tc, test_payload_kinds);
	tcase_add_test(tc, test_payload_big_integer_kept);
	tcase_add_test(tc, test_type_invalid);
	tcase_add_test(tc, test_type_with_nul_escape);
	tcase_add_test(tc, test_priority);
	tcase_add_test(tc, test_max_attempts);
	tcase_add_test(tc, test_timeout);
	tcase_add_test(tc, test_delay);
	tcase_add_test(tc, test_delay_and_run_at_both);
	tcase_add_test(tc, test_run_at);
	tcase_add_test(tc, test_cancel_on_disconnect);
	tcase_add_test(tc, test_malformed_json);
	tcase_add_test(tc, test_non_object_body);
	tcase_add_test(tc, test_empty_body);
	tcase_add_test(tc, test_trailing_garbage);
	tcase_add_test(tc, test_length_is_honoured);
	tcase_add_test(tc, test_duplicate_field);
	tcase_add_test(tc, test_unknown_field);
	tcase_add_test(tc, test_failure_after_fields_set_leaves_job_clear);
	tcase_add_test(tc, test_depth_32_ok_33_rejected);
	tcase_add_test(tc, test_depth_brackets_in_strings);
	tcase_add_test(tc, test_invalid_utf8_rejected);
	tcase_add_test(tc, test_escaped_surrogates);
	tcase_add_test(tc, test_json_depth_direct);
	tcase_add_test(tc, test_depends_on_ids);
	tcase_add_test(tc, test_depends_on_batch_refs);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	SRunner *sr = srunner_create(submit_suite());
	int failures;

	srunner_run_all(sr, CK_NORMAL);
	failures = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failures != 0;
}
