/*
 * test_schedule.c - unit tests of the pure parts of src/schedule.c: the
 * ticks of `every` (aligned to the Unix epoch) and of cron, the last tick
 * before a time, the step after downtime with catch_up one and skip, a
 * late tick, a clock jump, and the keys' tick format; and the
 * [schedule.NAME] sections as config_load_string reads them.
 */
#include <check.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "config.h"
#include "err.h"
#include "schedule.h"

/* "YYYY-MM-DDTHH:MM:SSZ" to Unix ms. */
static int64_t
utc(const char *s)
{
	struct tm tm = {0};
	int n = 0;

	ck_assert(sscanf(s, "%d-%d-%dT%d:%d:%dZ%n", &tm.tm_year, &tm.tm_mon,
	                 &tm.tm_mday, &tm.tm_hour, &tm.tm_min, &tm.tm_sec,
	                 &n) == 6 && (size_t)n == strlen(s));
	tm.tm_year -= 1900;
	tm.tm_mon -= 1;
	return (int64_t)timegm(&tm) * 1000;
}

static struct schedule_conf
every(int64_t ms, int catch_up)
{
	return (struct schedule_conf){.name = "s", .every_ms = ms,
	                              .type = "noop", .catch_up = catch_up};
}

static struct schedule_conf
cron(const char *expr, int catch_up)
{
	struct schedule_conf sc = {.name = "s", .cron = (char *)expr,
	                           .type = "noop", .catch_up = catch_up};
	char err[128];

	ck_assert_msg(cron_parse(&sc.cron_expr, expr, err, sizeof(err)) == 0,
	              "%s", err);
	return sc;
}

static int64_t
next(const struct schedule_conf *sc, int64_t after)
{
	int64_t t = -1;

	ck_assert_int_eq(schedule_next_tick(sc, after, &t), 0);
	return t;
}

START_TEST(test_every_aligned_to_the_epoch)
{
	struct schedule_conf q = every(15 * 60000, CATCH_UP_ONE);
	struct schedule_conf s = every(1000, CATCH_UP_ONE);
	struct schedule_conf d = every(86400000, CATCH_UP_ONE);
	struct schedule_conf odd = every(7000, CATCH_UP_ONE);

	ck_assert_int_eq(next(&q, utc("2026-12-01T02:07:13Z")),
	                 utc("2026-12-01T02:15:00Z"));
	/* Strictly after: a tick time itself gives the next one. */
	ck_assert_int_eq(next(&q, utc("2026-12-01T02:15:00Z")),
	                 utc("2026-12-01T02:30:00Z"));
	ck_assert_int_eq(next(&q, utc("2026-12-01T02:15:00Z") - 1),
	                 utc("2026-12-01T02:15:00Z"));
	ck_assert_int_eq(next(&q, utc("2026-12-01T23:59:59Z")),
	                 utc("2026-12-02T00:00:00Z"));
	ck_assert_int_eq(next(&s, 1500), 2000);
	ck_assert_int_eq(next(&s, 0), 1000);
	ck_assert_int_eq(next(&s, -1), 0);
	ck_assert_int_eq(next(&d, utc("2028-02-28T12:00:00Z")),
	                 utc("2028-02-29T00:00:00Z"));
	/* A period that does not divide a minute: multiples since 1970. */
	ck_assert_int_eq(next(&odd, 6999), 7000);
	ck_assert_int_eq(next(&odd, 7000), 14000);
}
END_TEST

START_TEST(test_cron_ticks)
{
	struct schedule_conf n = cron("30 2 * * *", CATCH_UP_ONE);
	struct schedule_conf never = cron("0 0 30 2 *", CATCH_UP_ONE);
	int64_t t;

	ck_assert_int_eq(next(&n, utc("2026-12-01T02:30:00Z")),
	                 utc("2026-12-02T02:30:00Z"));
	ck_assert_int_eq(next(&n, utc("2026-12-01T02:29:59Z") + 999),
	                 utc("2026-12-01T02:30:00Z"));
	ck_assert_int_eq(schedule_next_tick(&never, 0, &t), JOBD_ENOTFOUND);
}
END_TEST

START_TEST(test_last_tick_before)
{
	struct schedule_conf s = every(1000, CATCH_UP_ONE);
	struct schedule_conf n = cron("30 2 * * *", CATCH_UP_ONE);
	struct schedule_conf jan = cron("* * 1 1 *", CATCH_UP_ONE);
	int64_t t;

	ck_assert_int_eq(schedule_last_tick_before(&s, 1000, 5000, &t), 0);
	ck_assert_int_eq(t, 4000);
	ck_assert_int_eq(schedule_last_tick_before(&s, 1000, 5001, &t), 0);
	ck_assert_int_eq(t, 5000);
	/* Only ticks strictly between. */
	ck_assert_int_eq(schedule_last_tick_before(&s, 4000, 5000, &t),
	                 JOBD_ENOTFOUND);
	ck_assert_int_eq(schedule_last_tick_before(&s, 5000, 5000, &t),
	                 JOBD_ENOTFOUND);
	ck_assert_int_eq(schedule_last_tick_before(&n,
	                 utc("2026-11-01T00:00:00Z"),
	                 utc("2026-12-01T10:00:00Z"), &t), 0);
	ck_assert_int_eq(t, utc("2026-12-01T02:30:00Z"));
	ck_assert_int_eq(schedule_last_tick_before(&n,
	                 utc("2026-12-01T02:30:00Z"),
	                 utc("2026-12-02T02:30:00Z"), &t), JOBD_ENOTFOUND);
	/* Far back through the doubling windows: the last minute of the
	 * last 1 January. */
	ck_assert_int_eq(schedule_last_tick_before(&jan,
	                 utc("2020-06-01T00:00:00Z"),
	                 utc("2026-12-01T00:00:00Z"), &t), 0);
	ck_assert_int_eq(t, utc("2026-01-01T23:59:00Z"));
}
END_TEST

/* A schedule first seen starts from now: no job, cursor now. */
START_TEST(test_step_first_sight)
{
	struct schedule_conf s = every(1000, CATCH_UP_ONE);
	struct schedule_step st;

	schedule_step(&s, -1, 0, 12345, &st);
	ck_assert(!st.run);
	ck_assert_int_eq(st.cursor_ms, 12345);
}
END_TEST

START_TEST(test_step_on_time_and_late)
{
	struct schedule_conf s = every(60000, CATCH_UP_SKIP);
	int64_t base = utc("2026-12-01T02:00:00Z");
	struct schedule_step st;

	/* Nothing due: sleep until the next tick. */
	schedule_step(&s, base, base - 3600000, base + 30000, &st);
	ck_assert(!st.run);
	ck_assert_int_eq(st.cursor_ms, -1);
	ck_assert_int_eq(st.wake_ms, base + 60000);
	/* Due now, or a few seconds late: made, even with skip. */
	schedule_step(&s, base, base - 3600000, base + 60000, &st);
	ck_assert(st.run && !st.missed);
	ck_assert_int_eq(st.tick_ms, base + 60000);
	ck_assert_int_eq(st.cursor_ms, base + 60000);
	schedule_step(&s, base, base - 3600000, base + 60000 + 59000, &st);
	ck_assert(st.run && !st.missed);
	/* More than a minute late (suspend, clock jump): missed. */
	schedule_step(&s, base, base - 3600000, base + 60000 + 60001, &st);
	ck_assert(!st.run && st.missed);
	ck_assert_int_eq(st.cursor_ms, base + 60000);
}
END_TEST

/* Down from 02:00:05 to 02:00:10.5 with every = 1s: the ticks 02:00:06
 * to 02:00:10 are missed (before since), 02:00:11 is not. */
START_TEST(test_step_after_downtime)
{
	int64_t base = utc("2026-12-01T02:00:00Z");
	int64_t cursor = base + 5000, since = base + 10500;
	struct schedule_conf one = every(1000, CATCH_UP_ONE);
	struct schedule_conf skip = every(1000, CATCH_UP_SKIP);
	struct schedule_step st;

	schedule_step(&one, cursor, since, since + 10, &st);
	ck_assert(st.run && st.missed);
	ck_assert_int_eq(st.tick_ms, base + 10000);
	ck_assert_int_eq(st.cursor_ms, base + 10000);
	/* Then nothing until 02:00:11, which is made. */
	schedule_step(&one, st.cursor_ms, since, since + 10, &st);
	ck_assert(!st.run);
	ck_assert_int_eq(st.wake_ms, base + 11000);
	schedule_step(&one, base + 10000, since, base + 11000, &st);
	ck_assert(st.run && !st.missed);
	ck_assert_int_eq(st.tick_ms, base + 11000);

	schedule_step(&skip, cursor, since, since + 10, &st);
	ck_assert(!st.run && st.missed);
	ck_assert_int_eq(st.tick_ms, -1);
	ck_assert_int_eq(st.cursor_ms, base + 10000);
	/* Started again later than a tick that came due since: that tick
	 * is made (the node ran schedules when it fell due). */
	schedule_step(&skip, base + 10000, since, base + 12500, &st);
	ck_assert(st.run && !st.missed);
	ck_assert_int_eq(st.tick_ms, base + 11000);

	/* A daily cron down for three days: one job, for the last. */
	struct schedule_conf n = cron("30 2 * * *", CATCH_UP_ONE);
	int64_t now = utc("2026-12-04T09:00:00Z");
	schedule_step(&n, utc("2026-12-01T02:30:00Z"), now - 100, now, &st);
	ck_assert(st.run && st.missed);
	ck_assert_int_eq(st.tick_ms, utc("2026-12-04T02:30:00Z"));
	/* The wall clock went back: nothing until the cursor's next tick. */
	schedule_step(&n, utc("2026-12-04T02:30:00Z"), now - 100,
	              utc("2026-12-03T00:00:00Z"), &st);
	ck_assert(!st.run);
	ck_assert_int_eq(st.cursor_ms, -1);
	ck_assert_int_eq(st.wake_ms, utc("2026-12-05T02:30:00Z"));
}
END_TEST

START_TEST(test_format_tick)
{
	char buf[32];

	schedule_format_tick(utc("2026-12-01T02:30:00Z") + 999, buf,
	                     sizeof(buf));
	ck_assert_str_eq(buf, "2026-12-01T02:30:00Z");
	schedule_format_tick(0, buf, sizeof(buf));
	ck_assert_str_eq(buf, "1970-01-01T00:00:00Z");
	schedule_format_tick(INT64_MAX, buf, sizeof(buf));
	ck_assert_str_eq(buf, "");
	schedule_format_tick(INT64_MIN, buf, sizeof(buf));
	ck_assert_str_eq(buf, "");
}
END_TEST

START_TEST(test_config_sections)
{
	struct config *cfg = NULL;
	char err[2048];
	const struct schedule_conf *sc;

	ck_assert_int_eq(config_load_string("t.conf",
	    "[handler.noop]\nbuiltin = noop\n"
	    "[schedule.nightly]\ncron = 30 2 * * *\ntype = noop\n"
	    "payload = { \"report\" : \"daily\" }\ntimezone = local\n"
	    "catch_up = skip\npriority = -5\n"
	    "[schedule.q]\nevery = 15m\ntype = noop\n", &cfg, err,
	    sizeof(err)), 0);
	ck_assert_uint_eq(cfg->nschedules, 2);
	sc = config_schedule(cfg, "nightly");
	ck_assert_ptr_nonnull(sc);
	ck_assert_str_eq(sc->payload, "{\"report\":\"daily\"}");
	ck_assert_int_eq(sc->timezone, SCHEDULE_LOCAL);
	ck_assert_int_eq(sc->catch_up, CATCH_UP_SKIP);
	ck_assert_int_eq(sc->priority, -5);
	ck_assert_int_eq(sc->every_ms, 0);
	sc = config_schedule(cfg, "q");
	ck_assert_int_eq(sc->every_ms, 900000);
	ck_assert_str_eq(sc->payload, "null");
	ck_assert_int_eq(sc->timezone, SCHEDULE_UTC);
	ck_assert_int_eq(sc->catch_up, CATCH_UP_ONE);
	ck_assert_ptr_null(config_schedule(cfg, "nope"));
	config_free(cfg);

	cfg = NULL;
	ck_assert_int_eq(config_load_string("t.conf",
	    "[handler.noop]\nbuiltin = noop\n"
	    "[schedule.w]\ncron = 0 0 * * 8\ntype = noop\n"
	    "[schedule.b]\nevery = 0s\ntype = noop\n"
	    "[schedule.c]\nevery = 1s\ntype = noop\npriority = 101\n"
	    "[schedule.d]\nevery = 1s\ntype = noop\npayload = {\"a\":1} x\n"
	    "[schedule.e]\nevery = 1s\ntype = noop\n[schedule.e]\n",
	    &cfg, err, sizeof(err)), JOBD_EINVAL);
	ck_assert_ptr_null(cfg);
	ck_assert_msg(strstr(err, "t.conf:4: [schedule.w] cron: day-of-week: ")
	              != NULL &&
	              strstr(err, "t.conf:20: [schedule.e] NAME: schedule "
	                     "section appears twice") != NULL &&
	              strstr(err, "t.conf:7: [schedule.b] every: ") != NULL &&
	              strstr(err, "t.conf:12: [schedule.c] priority: ") !=
	              NULL &&
	              strstr(err, "t.conf:16: [schedule.d] payload: not "
	                     "JSON") != NULL, "%s", err);
}
END_TEST

static Suite *
schedule_suite(void)
{
	Suite *s = suite_create("schedule");
	TCase *tc = tcase_create("schedule");

	tcase_add_test(tc, test_every_aligned_to_the_epoch);
	tcase_add_test(tc, test_cron_ticks);
	tcase_add_test(tc, test_last_tick_before);
	tcase_add_test(tc, test_step_first_sight);
	tcase_add_test(tc, test_step_on_time_and_late);
	tcase_add_test(tc, test_step_after_downtime);
	tcase_add_test(tc, test_format_tick);
	tcase_add_test(tc, test_config_sections);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	SRunner *sr = srunner_create(schedule_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
