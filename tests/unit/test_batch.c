/*
 * test_batch.c - unit tests of src/batch.c: a POST /jobs array becomes
 * jobs in order, or is refused as a whole with the index of every invalid
 * element; the keys that let one Idempotency-Key cover a batch; and the
 * configuration key server.max_batch.
 */
#include <check.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "batch.h"
#include "config.h"
#include "err.h"
#include "job.h"
#include "submit.h"

#define NOW_US 1767323045000000LL

static struct config *cfg;
static struct job *jobs;
static size_t njobs;
static struct batch_error *errs;
static size_t nerrs;
static char err[512];

static void
setup(void)
{
	char cerr[1024];
	int rc = config_load_string("batch.conf",
	                            "[handler.noop]\nbuiltin = noop\n"
	                            "[handler.echo]\nbuiltin = echo\n",
	                            &cfg, cerr, sizeof(cerr));
	ck_assert_msg(rc == 0, "config: %s", cerr);
}

static void
clear(void)
{
	batch_jobs_free(jobs, njobs);
	jobs = NULL;
	njobs = 0;
	free(errs);
	errs = NULL;
	nerrs = 0;
	err[0] = '\0';
}

static void
teardown(void)
{
	clear();
	config_free(cfg);
	cfg = NULL;
}

/* len SIZE_MAX: strlen(body) */
static int
parse_n(const char *body, size_t len, int64_t max_batch)
{
	clear();
	if (len == SIZE_MAX)
		len = strlen(body);
	return batch_parse(body, len, cfg, max_batch, NOW_US, &jobs, &njobs,
	                   &errs, &nerrs, err, sizeof(err));
}

static int
parse(const char *body)
{
	return parse_n(body, strlen(body), 1000);
}

START_TEST(test_is_array)
{
	ck_assert(batch_is_array("[]", 2));
	ck_assert(batch_is_array(" \r\n\t[", 5));
	ck_assert(!batch_is_array("{}", 2));
	ck_assert(!batch_is_array("", 0));
	ck_assert(!batch_is_array("   ", 3));
	ck_assert(!batch_is_array("\"[\"", 3));
}
END_TEST

START_TEST(test_order_and_fields)
{
	const char *body = " [ {\"type\":\"noop\",\"payload\":{\"i\":0}} ,"
	                   "{\"type\":\"echo\",\"priority\":7,"
	                   "\"payload\":[1, 2]},\n{\"type\":\"noop\","
	                   "\"delay\":10} ] ";

	ck_assert_int_eq(parse(body), 0);
	ck_assert_uint_eq(njobs, 3);
	ck_assert_str_eq(jobs[0].type, "noop");
	ck_assert_str_eq(jobs[0].payload, "{\"i\":0}");
	ck_assert_str_eq(jobs[1].type, "echo");
	ck_assert_int_eq(jobs[1].priority, 7);
	ck_assert_str_eq(jobs[1].payload, "[1,2]");
	ck_assert_str_eq(jobs[2].payload, "null");
	ck_assert(jobs[2].run_at_us == NOW_US + 10000000LL);
	ck_assert_ptr_null(errs);
	ck_assert_int_eq(batch_assign_ids(jobs, njobs), 0);
	ck_assert(strcmp(jobs[0].id, jobs[1].id) < 0);
	ck_assert(strcmp(jobs[1].id, jobs[2].id) < 0);
}
END_TEST

START_TEST(test_every_invalid_index)
{
	/* 400: one element is malformed (a wrong type of field). */
	ck_assert_int_eq(parse("[{\"type\":\"noop\"},{\"type\":\"nope\"},"
	                       "{\"type\":\"noop\"},{\"priority\":\"x\","
	                       "\"type\":\"noop\"},{\"type\":\"noop\","
	                       "\"priority\":101}]"), JOBD_EINVAL);
	ck_assert_ptr_null(jobs);
	ck_assert_uint_eq(nerrs, 3);
	ck_assert_uint_eq(errs[0].index, 1);
	ck_assert_int_eq(errs[0].rc, JOBD_ERANGE);
	ck_assert_uint_eq(errs[1].index, 3);
	ck_assert_int_eq(errs[1].rc, JOBD_EINVAL);
	ck_assert_uint_eq(errs[2].index, 4);
	ck_assert_msg(strstr(errs[2].detail, "priority") != NULL, "%s",
	              errs[2].detail);
	ck_assert_msg(strstr(err, "3 of the 5") != NULL, "%s", err);
	/* 422 when every invalid element is only out of range. */
	ck_assert_int_eq(parse("[{\"type\":\"nope\"},{\"type\":\"noop\"},"
	                       "{\"type\":\"noop\",\"unknown\":1}]"),
	                 JOBD_ERANGE);
	ck_assert_uint_eq(nerrs, 2);
	ck_assert_uint_eq(errs[0].index, 0);
	ck_assert_uint_eq(errs[1].index, 2);
}
END_TEST

/* "#N" in depends_on: an earlier element only (each invalid one listed);
 * the ids outside the batch listed for the writer's check, with their
 * elements; then the references become the elements' ids. */
START_TEST(test_depends_on_refs)
{
	const char *x = "01900000-0000-7000-8000-00000000000a";
	char body[1024], want[256];
	struct batch_deps d;

	snprintf(body, sizeof(body), "[{\"type\":\"noop\",\"depends_on\":"
	         "[\"#0\"]},{\"type\":\"noop\",\"depends_on\":[\"#1\"]},"
	         "{\"type\":\"noop\",\"depends_on\":[\"#0\",\"#3\"]},"
	         "{\"type\":\"noop\",\"depends_on\":[\"#2\",\"#02\"]},"
	         "{\"type\":\"noop\",\"depends_on\":[\"#3\"]}]");
	ck_assert_int_eq(parse(body), JOBD_ERANGE);
	ck_assert_uint_eq(nerrs, 4);
	for (size_t i = 0; i < 4; i++) {
		ck_assert_uint_eq(errs[i].index, i);
		ck_assert_msg(strstr(errs[i].detail, "earlier element") != NULL,
		              "%s", errs[i].detail);
	}
	snprintf(body, sizeof(body), "[{\"type\":\"noop\",\"depends_on\":"
	         "[\"%s\"]},{\"type\":\"noop\",\"depends_on\":[\"#0\"]},"
	         "{\"type\":\"noop\",\"depends_on\":[\"#1\",\"%s\",\"#0\","
	         "\"#1\"]},{\"type\":\"noop\"}]", x, x);
	ck_assert_int_eq(parse(body), 0);
	ck_assert_uint_eq(njobs, 4);
	ck_assert_str_eq(jobs[1].depends_on, "#0");
	ck_assert_int_eq(batch_assign_ids(jobs, njobs), 0);
	ck_assert_int_eq(batch_outside_deps(jobs, njobs, &d), 0);
	ck_assert_uint_eq(d.n, 2);
	ck_assert_str_eq(d.ids[0], x);
	ck_assert_uint_eq(d.element[0], 0);
	ck_assert_str_eq(d.ids[1], x);
	ck_assert_uint_eq(d.element[1], 2);
	batch_deps_free(&d);
	ck_assert_int_eq(batch_resolve_refs(jobs, njobs), 0);
	ck_assert_str_eq(jobs[0].depends_on, x);
	ck_assert_str_eq(jobs[1].depends_on, jobs[0].id);
	snprintf(want, sizeof(want), "%s %s %s", jobs[1].id, x, jobs[0].id);
	ck_assert_str_eq(jobs[2].depends_on, want);
	ck_assert_ptr_null(jobs[3].depends_on);
	/* No outside ids: an empty list. */
	ck_assert_int_eq(parse("[{\"type\":\"noop\"},{\"type\":\"noop\","
	                       "\"depends_on\":[\"#0\"]}]"), 0);
	ck_assert_int_eq(batch_outside_deps(jobs, njobs, &d), 0);
	ck_assert_uint_eq(d.n, 0);
	batch_deps_free(&d);
}
END_TEST

START_TEST(test_non_objects)
{
	ck_assert_int_eq(parse("[1, \"x\", null, true, [], [{\"type\":"
	                       "\"noop\"}], {\"type\":\"noop\"}, -0.5e3]"),
	                 JOBD_EINVAL);
	ck_assert_uint_eq(nerrs, 7);
	for (size_t i = 0; i < 6; i++)
		ck_assert_uint_eq(errs[i].index, i);
	ck_assert_uint_eq(errs[6].index, 7);
	ck_assert_msg(strstr(errs[0].detail, "object") != NULL, "%s",
	              errs[0].detail);
}
END_TEST

START_TEST(test_empty_and_max)
{
	ck_assert_int_eq(parse("[]"), JOBD_ERANGE);
	ck_assert_uint_eq(nerrs, 0);
	ck_assert_int_eq(parse(" [ \n ] "), JOBD_ERANGE);
	ck_assert_msg(strstr(err, "empty") != NULL, "%s", err);
	ck_assert_int_eq(parse_n("[{\"type\":\"noop\"},{\"type\":\"noop\"},"
	                         "{\"type\":\"noop\"}]", SIZE_MAX, 2), JOBD_ERANGE);
	ck_assert_msg(strstr(err, "max_batch = 2") != NULL, "%s", err);
	ck_assert_int_eq(parse_n("[{\"type\":\"noop\"},{\"type\":\"noop\"}]",
	                         SIZE_MAX, 2), 0);
	ck_assert_uint_eq(njobs, 2);
	/* Counted before any element is parsed: a batch of invalid
	 * elements over the limit is refused for its size. */
	ck_assert_int_eq(parse_n("[1,2,3]", SIZE_MAX, 2), JOBD_ERANGE);
	ck_assert_uint_eq(nerrs, 0);
}
END_TEST

START_TEST(test_malformed_whole)
{
	static const char *const bad[] = {
		"[", "[{\"type\":\"noop\"}", "[{\"type\":\"noop\"},]",
		"[{\"type\":\"noop\"}] x", "[01]", "[{\"type\":\"noop\"}]]",
		"[\"\x01\"]", NULL,
	};

	for (int i = 0; bad[i] != NULL; i++) {
		ck_assert_msg(parse(bad[i]) == JOBD_EINVAL, "%s", bad[i]);
		ck_assert_uint_eq(nerrs, 0);
	}
	/* Not UTF-8 */
	ck_assert_int_eq(parse("[{\"type\":\"noop\",\"payload\":\"\xff\"}]"),
	                 JOBD_EINVAL);
}
END_TEST

START_TEST(test_depth)
{
	/* An element may nest as deep as a single job (32 with the job's
	 * own object); one more is refused. */
	char body[256];
	size_t n = 0;

	n += (size_t)snprintf(body + n, sizeof(body) - n,
	                      "[{\"type\":\"noop\",\"payload\":");
	for (int i = 0; i < 31; i++)
		body[n++] = '[';
	for (int i = 0; i < 31; i++)
		body[n++] = ']';
	n += (size_t)snprintf(body + n, sizeof(body) - n, "}]");
	ck_assert_int_eq(parse_n(body, n, 1000), 0);
	n = 0;
	n += (size_t)snprintf(body + n, sizeof(body) - n,
	                      "[{\"type\":\"noop\",\"payload\":");
	for (int i = 0; i < 32; i++)
		body[n++] = '[';
	for (int i = 0; i < 32; i++)
		body[n++] = ']';
	n += (size_t)snprintf(body + n, sizeof(body) - n, "}]");
	ck_assert_int_eq(parse_n(body, n, 1000), JOBD_EINVAL);
	/* 1 MB of '[': refused without recursion that deep. */
	size_t big = 1 << 20;
	char *deep = malloc(big);
	ck_assert_ptr_nonnull(deep);
	memset(deep, '[', big);
	ck_assert_int_eq(parse_n(deep, big, 1000), JOBD_EINVAL);
	free(deep);
}
END_TEST

START_TEST(test_strings_with_brackets)
{
	/* Brackets, commas and escaped quotes inside strings do not cut
	 * elements. */
	ck_assert_int_eq(parse("[{\"type\":\"noop\",\"payload\":\"],[{\\\"\"},"
	                       "{\"type\":\"noop\",\"payload\":{\"a\":\"}\"}}]"),
	                 0);
	ck_assert_uint_eq(njobs, 2);
	ck_assert_str_eq(jobs[0].payload, "\"],[{\\\"\"");
	ck_assert_str_eq(jobs[1].payload, "{\"a\":\"}\"}");
}
END_TEST

START_TEST(test_keys)
{
	char k[BATCH_KEY_MAX + 1], key[256];

	ck_assert_int_eq(parse("[{\"type\":\"noop\"},{\"type\":\"noop\"},"
	                       "{\"type\":\"noop\"}]"), 0);
	ck_assert_int_eq(batch_assign_ids(jobs, njobs), 0);
	ck_assert_int_eq(batch_set_keys(jobs, njobs, "k1", "fp"), 0);
	ck_assert_str_eq(jobs[0].idem_key, "k1");
	batch_element_key("k1", 2, jobs[0].id, k, sizeof(k));
	ck_assert_str_eq(jobs[2].idem_key, k);
	ck_assert_ptr_nonnull(strchr(k, '\x1f')); /* never a client key */
	for (size_t i = 0; i < njobs; i++)
		ck_assert_str_eq(jobs[i].idem_fp, "fp");
	/* The longest client key fits. */
	memset(key, 'k', 255);
	key[255] = '\0';
	batch_element_key(key, 999999, jobs[0].id, k, sizeof(k));
	ck_assert_uint_eq(strlen(k), 255 + 1 + 6 + 1 + 36);
}
END_TEST

START_TEST(test_config_max_batch)
{
	struct config *c = NULL;
	char cerr[512];

	ck_assert_int_eq(cfg->server.max_batch, 1000);
	ck_assert_int_eq(config_load_string("b.conf",
	                                    "[server]\nmax_batch = 5\n", &c,
	                                    cerr, sizeof(cerr)), 0);
	ck_assert_int_eq(c->server.max_batch, 5);
	config_free(c);
	c = NULL;
	ck_assert_int_ne(config_load_string("b.conf",
	                                    "[server]\nmax_batch = 0\n", &c,
	                                    cerr, sizeof(cerr)), 0);
	ck_assert_msg(strstr(cerr, "max_batch") != NULL, "%s", cerr);
	config_free(c);
}
END_TEST

static Suite *
batch_suite(void)
{
	Suite *s = suite_create("batch");
	TCase *tc = tcase_create("batch");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_is_array);
	tcase_add_test(tc, test_order_and_fields);
	tcase_add_test(tc, test_every_invalid_index);
	tcase_add_test(tc, test_depends_on_refs);
	tcase_add_test(tc, test_non_objects);
	tcase_add_test(tc, test_empty_and_max);
	tcase_add_test(tc, test_malformed_whole);
	tcase_add_test(tc, test_depth);
	tcase_add_test(tc, test_strings_with_brackets);
	tcase_add_test(tc, test_keys);
	tcase_add_test(tc, test_config_max_batch);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	SRunner *sr = srunner_create(batch_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
