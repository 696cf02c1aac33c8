/*
 * test_sched.c - the scheduling policy (src/sched.c): the claim state
 * machine, caps, claim-ahead per type, and when results may wait.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>

#include "sched.h"

static struct sched s;

static void
setup(void)
{
	sched_init(&s, 4);
}

static void
teardown(void)
{
	sched_fini(&s);
}

/* n attempts of type t running now (claimed in a committed batch). */
static struct sched_type *
running(const char *type, int n, double avg_ms)
{
	struct sched_type *t = sched_type(&s, type);

	ck_assert_ptr_nonnull(t);
	t->batch += n;
	sched_batch_end(&s, true);
	if (avg_ms >= 0)
		t->avg_run_ms = avg_ms;
	return t;
}

START_TEST(test_types_rows)
{
	struct sched_type *a = sched_type(&s, "a");

	ck_assert_ptr_nonnull(a);
	ck_assert_str_eq(a->name, "a");
	ck_assert(a->avg_run_ms < 0);
	for (int i = 0; i < 100; i++) {
		char name[16];
		snprintf(name, sizeof(name), "t%d", i);
		ck_assert_ptr_nonnull(sched_type(&s, name));
	}
	ck_assert_str_eq(sched_type(&s, "a")->name, "a");
	ck_assert_uint_eq(s.ntypes, 101);
}
END_TEST

/* The diagram of sched.h, edge by edge. */
START_TEST(test_claim_states)
{
	ck_assert(sched_wants_claim(&s)); /* a fresh writer looks */
	sched_claimed(&s, 4, 4, false);
	ck_assert_int_eq(s.state, SCHED_DUE);
	sched_claimed(&s, 4, 1, false);
	ck_assert_int_eq(s.state, SCHED_QUIET);
	ck_assert(!sched_wants_claim(&s));
	sched_attempt_ended(&s); /* nothing held: stays quiet */
	ck_assert_int_eq(s.state, SCHED_QUIET);
	sched_due(&s);
	ck_assert_int_eq(s.state, SCHED_DUE);
	sched_claimed(&s, 4, 0, true);
	ck_assert_int_eq(s.state, SCHED_HELD);
	ck_assert(!sched_wants_claim(&s)); /* no loop of empty claims */
	sched_attempt_ended(&s);
	ck_assert_int_eq(s.state, SCHED_DUE);
	sched_claimed(&s, 0, 0, false); /* no room: look again with room */
	ck_assert_int_eq(s.state, SCHED_DUE);
}
END_TEST

START_TEST(test_idle_workers_first)
{
	struct sched_plan p;
	struct sched_type *slow = sched_type(&s, "slow");

	/* Unknown run time: one per idle worker, no more. */
	sched_plan(&s, &p);
	ck_assert_int_eq(p.idle, 4);
	ck_assert_int_eq(p.slots, 4);
	for (int i = 0; i < 4; i++) {
		ck_assert(sched_next_is_idle(&p));
		ck_assert(sched_may_take(&s, &p, slow, 0));
	}
	ck_assert(!sched_next_is_idle(&p));
	ck_assert(!sched_may_take(&s, &p, slow, 0));
	ck_assert_int_eq(slow->batch, 4);
	sched_batch_end(&s, true);
	ck_assert_int_eq(slow->running, 4);
	ck_assert_int_eq(s.inflight, 4);
	ck_assert_int_eq(sched_capacity(&s), 0);
	sched_completed(&s, slow, 2000000);
	ck_assert_int_eq(s.inflight, 3);
	ck_assert_int_eq(slow->running, 3);
	ck_assert(slow->avg_run_ms > 1999 && slow->avg_run_ms < 2001);
	ck_assert_int_eq(sched_capacity(&s), 1);
}
END_TEST

START_TEST(test_rolled_back_batch_forgotten)
{
	struct sched_plan p;
	struct sched_type *a = sched_type(&s, "a");

	sched_plan(&s, &p);
	ck_assert(sched_may_take(&s, &p, a, 0));
	sched_batch_end(&s, false);
	ck_assert_int_eq(a->batch, 0);
	ck_assert_int_eq(a->running, 0);
	ck_assert_int_eq(s.inflight, 0);
}
END_TEST

START_TEST(test_cap)
{
	struct sched_plan p;
	struct sched_type *one = running("one", 1, 5000);

	ck_assert(!sched_below_cap(one, 1));
	ck_assert(sched_below_cap(one, 2));
	ck_assert(sched_below_cap(one, 0)); /* no cap */
	sched_plan(&s, &p);
	ck_assert(!sched_may_take(&s, &p, one, 1));
	ck_assert(sched_may_take(&s, &p, one, 2));
	ck_assert(!sched_may_take(&s, &p, one, 2)); /* the batch counts */
}
END_TEST

/* Short jobs are claimed ahead within the window; long ones never. */
START_TEST(test_claim_ahead_short_only)
{
	struct sched_plan p;
	struct sched_type *fast, *slow;
	int taken = 0;

	fast = running("fast", 4, 0.5);
	slow = sched_type(&s, "slow");
	slow->avg_run_ms = 50;
	s.avg_short_ms = 0.5;
	sched_plan(&s, &p);
	ck_assert_int_eq(p.idle, 0);
	/* 4 workers x 5 ms = 20 ms; 2 ms claimed: 36 more of 0.5 ms. */
	ck_assert_int_eq(p.slots, 36);
	ck_assert(!sched_may_take(&s, &p, slow, 0));
	while (sched_may_take(&s, &p, fast, 0))
		taken++;
	ck_assert_int_eq(taken, 36);
	ck_assert_int_eq(fast->batch, 36);
}
END_TEST

/*
 * Issue 12: two of four workers on 60 s jobs must not stop short work from
 * being claimed ahead on the other two (it used to stop all claim-ahead).
 */
START_TEST(test_claim_ahead_beside_long_work)
{
	struct sched_plan p;
	struct sched_type *noop;
	int taken = 0;

	running("sleep", 2, 60000);
	noop = running("noop", 2, 0.01);
	s.avg_short_ms = 0.01;
	sched_plan(&s, &p);
	ck_assert_int_eq(p.free, 2);
	ck_assert_int_eq(p.slots, SCHED_AHEAD_MAX);
	while (sched_may_take(&s, &p, noop, 0))
		taken++;
	ck_assert_int_eq(taken, SCHED_AHEAD_MAX);

	/* Every worker on long work: nothing ahead at all. */
	sched_fini(&s);
	sched_init(&s, 4);
	running("sleep", 4, 60000);
	noop = sched_type(&s, "noop");
	noop->avg_run_ms = 0.01;
	s.avg_short_ms = 0.01;
	sched_plan(&s, &p);
	ck_assert_int_eq(p.slots, 0);
	ck_assert(!sched_may_take(&s, &p, noop, 0));
}
END_TEST

/* Slow commits (every one fsynced) widen the window, so that workers do
 * not run dry while the writer waits for the disk; never past its cap. */
START_TEST(test_window_follows_commits)
{
	struct sched_plan p;

	ck_assert(sched_window_ms(&s) == SCHED_WINDOW_MS);
	for (int i = 0; i < 100; i++)
		sched_committed(&s, 1000);   /* 1 ms: the base window */
	ck_assert(sched_window_ms(&s) == SCHED_WINDOW_MS);
	running("fast", 4, 0.5);
	s.avg_short_ms = 0.5;
	sched_plan(&s, &p);
	ck_assert_int_eq(p.slots, 36);
	for (int i = 0; i < 100; i++)
		sched_committed(&s, 10000);  /* 10 ms: a 20 ms window */
	ck_assert(sched_window_ms(&s) > 19.9 && sched_window_ms(&s) < 20.1);
	sched_plan(&s, &p);
	ck_assert_int_ge(p.slots, 150);      /* about (4 x 20 - 2) / 0.5 */
	ck_assert_int_le(p.slots, 156);
	for (int i = 0; i < 100; i++)
		sched_committed(&s, 200000); /* 200 ms: capped */
	ck_assert(sched_window_ms(&s) == SCHED_WINDOW_MAX_MS);
}
END_TEST

START_TEST(test_averages)
{
	struct sched_type *t = running("t", 3, -1);

	sched_completed(&s, t, 1000);     /* 1 ms */
	ck_assert(t->avg_run_ms > 0.99 && t->avg_run_ms < 1.01);
	ck_assert(s.avg_short_ms > 0.99 && s.avg_short_ms < 1.01);
	sched_completed(&s, t, 6000);     /* 6 ms: 0.8 * 1 + 0.2 * 6 = 2 */
	ck_assert(t->avg_run_ms > 1.99 && t->avg_run_ms < 2.01);
	sched_completed(&s, t, 0);        /* never ran: no sample */
	ck_assert(t->avg_run_ms > 1.99 && t->avg_run_ms < 2.01);
	ck_assert_int_eq(t->running, 0);
	ck_assert_int_eq(s.inflight, 0);
	sched_completed(&s, NULL, 0);     /* no row: the slot still frees */
	ck_assert_int_eq(s.inflight, -1);
}
END_TEST

START_TEST(test_defer)
{
	running("t", 9, 1);
	ck_assert(sched_may_defer(&s, 1));  /* 8 left for 4 workers */
	ck_assert(!sched_may_defer(&s, 2)); /* 7 left */
}
END_TEST

/* A paused type is held back from the claim and from a claim at insert;
 * the others are not; a reread of the pause table forgets old pauses. */
START_TEST(test_pause)
{
	struct sched_plan p;
	struct sched_type *a = sched_type(&s, "a"), *b = sched_type(&s, "b");

	a->paused = true;
	ck_assert(!sched_claimable(&s, a, 0));
	ck_assert(sched_claimable(&s, b, 0));
	sched_plan(&s, &p);
	ck_assert(!sched_may_take(&s, &p, a, 0));
	ck_assert_int_eq(p.taken, 0);
	ck_assert(sched_may_take(&s, &p, b, 0));
	ck_assert_int_eq(a->batch, 0);
	ck_assert(!a->rate_held); /* a pause needs no timer */
	sched_clear_pauses(&s);
	ck_assert(sched_claimable(&s, a, 0));
	ck_assert(sched_may_take(&s, &p, a, 0));
}
END_TEST

/* 2/s: the first job takes the token, the next is held back (and marked)
 * until the token comes 500 ms later; claimed ahead or not, each job
 * takes one; other types go on. */
START_TEST(test_rate)
{
	struct sched_plan p;
	struct sched_type *r = sched_type(&s, "r"), *o = sched_type(&s, "o");
	int64_t t = 50 * 1000000LL;

	sched_set_now(&s, t);
	sched_set_rate(&s, r, 2, 1000000);
	ck_assert_int_eq(sched_next_token_us(&s, t), -1);
	ck_assert(sched_claimable(&s, r, 0));
	sched_plan(&s, &p);
	ck_assert(sched_may_take(&s, &p, r, 0));
	ck_assert(!sched_may_take(&s, &p, r, 0));
	ck_assert(r->rate_held);
	ck_assert_int_eq(sched_next_token_us(&s, t), t + 500000);
	ck_assert(sched_may_take(&s, &p, o, 0));
	ck_assert(sched_may_take(&s, &p, o, 0));
	sched_batch_end(&s, true);

	/* The next claim leaves it out, and the writer wakes at the token. */
	sched_set_now(&s, t + 100000);
	sched_forget_held(&s);
	ck_assert_int_eq(sched_next_token_us(&s, t + 100000), -1);
	ck_assert(!sched_claimable(&s, r, 0));
	ck_assert(sched_claimable(&s, o, 0));
	ck_assert_int_eq(sched_next_token_us(&s, t + 100000), t + 500000);
	/* A paused type waits for no token. */
	r->paused = true;
	ck_assert_int_eq(sched_next_token_us(&s, t + 100000), -1);
	r->paused = false;

	/* The token has come: included, no longer waited for. */
	sched_set_now(&s, t + 500000);
	sched_forget_held(&s);
	ck_assert(sched_claimable(&s, r, 0));
	ck_assert(!r->rate_held);
	ck_assert_int_eq(sched_next_token_us(&s, t + 500000), -1);
	sched_plan(&s, &p);
	ck_assert(sched_may_take(&s, &p, r, 0));
	ck_assert(!sched_may_take(&s, &p, r, 0));
	/* A rolled-back batch does not give its token back: never more
	 * starts than the rate, at worst fewer. */
	sched_batch_end(&s, false);
	sched_plan(&s, &p);
	ck_assert(!sched_may_take(&s, &p, r, 0));

	/* A reload that changes the rate starts a full bucket; the same rate
	 * keeps its state. */
	sched_set_rate(&s, r, 2, 1000000);
	ck_assert(!sched_claimable(&s, r, 0));
	sched_set_rate(&s, r, 3, 1000000);
	ck_assert(sched_claimable(&s, r, 0));
	sched_set_rate(&s, r, 0, 0); /* rate removed: no limit */
	for (int i = 0; i < 3; i++)
		ck_assert(sched_claimable(&s, r, 0));
	ck_assert(sched_may_take(&s, &p, r, 0)); /* the last idle worker */
	ck_assert_int_eq(sched_next_token_us(&s, t + 500000), -1);
}
END_TEST

/* A cap and a rate together: the cap is checked first, so a type at its
 * cap spends no token. */
START_TEST(test_rate_with_cap)
{
	struct sched_plan p;
	struct sched_type *r = running("r", 1, -1);

	sched_set_now(&s, 0);
	sched_set_rate(&s, r, 1, 1000000);
	sched_plan(&s, &p);
	ck_assert(!sched_may_take(&s, &p, r, 1));
	ck_assert(!r->rate_held);
	ck_assert(sched_may_take(&s, &p, r, 2));
}
END_TEST

static Suite *
sched_suite(void)
{
	Suite *su = suite_create("sched");
	TCase *tc = tcase_create("sched");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_types_rows);
	tcase_add_test(tc, test_claim_states);
	tcase_add_test(tc, test_idle_workers_first);
	tcase_add_test(tc, test_rolled_back_batch_forgotten);
	tcase_add_test(tc, test_cap);
	tcase_add_test(tc, test_claim_ahead_short_only);
	tcase_add_test(tc, test_claim_ahead_beside_long_work);
	tcase_add_test(tc, test_window_follows_commits);
	tcase_add_test(tc, test_averages);
	tcase_add_test(tc, test_defer);
	tcase_add_test(tc, test_pause);
	tcase_add_test(tc, test_rate);
	tcase_add_test(tc, test_rate_with_cap);
	suite_add_tcase(su, tc);
	return su;
}

int
main(void)
{
	SRunner *sr = srunner_create(sched_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
