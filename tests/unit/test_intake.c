/*
 * test_intake.c - the rules a submission meets before it is inserted
 * (src/intake.c): a new key, a replay, a conflict, a full queue.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "intake.h"
#include "job.h"
#include "store.h"

static char dir[] = "/tmp/jobd-test-intake-XXXXXX";
static store *st;
static char err[256];

static void
setup(void)
{
	char path[128];
	struct store_options opt = {.durability_full = false};

	ck_assert_ptr_nonnull(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/jobs.db", dir);
	ck_assert_int_eq(store_open(path, &opt, &st, err, sizeof(err)), 0);
}

static void
teardown(void)
{
	char cmd[160];

	store_close(st);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	ck_assert_int_eq(system(cmd), 0);
}

static void
make_job(struct job *j, int n, const char *key, const char *fp)
{
	job_init(j);
	snprintf(j->id, sizeof(j->id), "01900000-0000-7000-8000-%012d", n);
	snprintf(j->type, sizeof(j->type), "noop");
	j->max_attempts = 1;
	j->timeout_ms = 1000;
	j->created_at_us = j->run_at_us = 1000;
	j->payload = strdup("null");
	j->idem_key = key ? strdup(key) : NULL;
	j->idem_fp = fp ? strdup(fp) : NULL;
}

static int
check(const struct job *j, int64_t queued, int64_t max,
      struct intake_prev *prev)
{
	int verdict = -1;

	ck_assert_int_eq(store_begin(st, err, sizeof(err)), 0);
	ck_assert_int_eq(intake_check(st, j, queued, max, &verdict, prev, err,
	                              sizeof(err)), 0);
	store_rollback(st);
	return verdict;
}

START_TEST(test_verdicts)
{
	struct job first, same, other, nokey;
	struct intake_prev prev;

	make_job(&first, 1, "k", "fp-a");
	ck_assert_int_eq(check(&first, 0, 10, &prev), INTAKE_NEW);
	ck_assert_int_eq(store_begin(st, err, sizeof(err)), 0);
	ck_assert_int_eq(store_insert(st, &first, err, sizeof(err)), 0);
	ck_assert_int_eq(store_commit(st, err, sizeof(err)), 0);

	make_job(&same, 2, "k", "fp-a");
	memset(&prev, 0, sizeof(prev));
	ck_assert_int_eq(check(&same, 1, 10, &prev), INTAKE_REPLAY);
	ck_assert_str_eq(prev.id, first.id);
	ck_assert_int_eq(prev.status, JOB_QUEUED);
	/* A replay is answered even when the queue is full. */
	ck_assert_int_eq(check(&same, 10, 10, &prev), INTAKE_REPLAY);

	make_job(&other, 3, "k", "fp-b");
	ck_assert_int_eq(check(&other, 1, 10, &prev), INTAKE_CONFLICT);
	ck_assert_ptr_nonnull(strstr(err, first.id));

	make_job(&nokey, 4, NULL, NULL);
	ck_assert_int_eq(check(&nokey, 9, 10, &prev), INTAKE_NEW);
	ck_assert_int_eq(check(&nokey, 10, 10, &prev), INTAKE_FULL);
	ck_assert_ptr_nonnull(strstr(err, "max_queued"));
	job_clear(&first);
	job_clear(&same);
	job_clear(&other);
	job_clear(&nokey);
}
END_TEST

static Suite *
intake_suite(void)
{
	Suite *su = suite_create("intake");
	TCase *tc = tcase_create("intake");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_verdicts);
	suite_add_tcase(su, tc);
	return su;
}

int
main(void)
{
	SRunner *sr = srunner_create(intake_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
