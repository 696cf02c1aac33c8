/*
 * test_metrics.c - the exposition stays consistent while observations
 * come in: every histogram's le="+Inf" bucket equals its _count in each
 * rendering (they were read at two moments, and disagreed when an
 * observation fell between the reads: seen under TSan in test_ops).
 */
#include <check.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "metrics.h"

static atomic_bool stop;

static void *
observer(void *arg)
{
	(void)arg;
	while (!atomic_load(&stop))
		metrics_run_seconds("obs", 0.01);
	return NULL;
}

/* The value of the first line that starts with prefix, or -1. */
static long long
value_of(const char *text, const char *prefix)
{
	const char *p = strstr(text, prefix);

	return p == NULL ? -1 : strtoll(p + strlen(prefix), NULL, 10);
}

START_TEST(test_inf_bucket_equals_count)
{
	struct metrics_gauges g;
	pthread_t t[2];
	int disagree = 0;

	memset(&g, 0, sizeof(g));
	metrics_run_seconds("obs", 0.01); /* the type's row exists */
	atomic_store(&stop, false);
	for (int i = 0; i < 2; i++)
		ck_assert_int_eq(pthread_create(&t[i], NULL, observer, NULL), 0);
	for (int i = 0; i < 3000; i++) {
		char *text = metrics_render(&g);
		ck_assert_ptr_nonnull(text);
		long long inf = value_of(text, "jobd_run_seconds_bucket{type=\"obs\","
		                         "le=\"+Inf\"} ");
		long long count = value_of(text,
		                           "jobd_run_seconds_count{type=\"obs\"} ");
		ck_assert_int_gt(inf, 0);
		if (inf != count)
			disagree++;
		free(text);
	}
	atomic_store(&stop, true);
	for (int i = 0; i < 2; i++)
		pthread_join(t[i], NULL);
	ck_assert_msg(disagree == 0, "+Inf bucket and _count disagreed in %d "
	              "of 3000 renderings", disagree);
}
END_TEST

static Suite *
suite(void)
{
	Suite *s = suite_create("metrics");
	TCase *tc = tcase_create("metrics");

	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, test_inf_bucket_equals_count);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	SRunner *sr = srunner_create(suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? 1 : 0;
}
