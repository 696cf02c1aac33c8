/*
 * test_events.c - waiters (src/events.c): each is woken exactly once, by
 * the first of its job's final state, its deadline, its client's close,
 * or shutdown; cancels; the max_waiters bound.
 */
#include <check.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "err.h"
#include "events.h"
#include "job.h"

struct seen {
	atomic_int calls;
	atomic_int reason;
};

static void
on_wake(void *arg, int reason)
{
	struct seen *s = arg;

	atomic_store(&s->reason, reason);
	atomic_fetch_add(&s->calls, 1);
}

static void
waiter_for(struct waiter *w, struct seen *s, const char *id,
           int64_t wait_ms, int fd)
{
	memset(w, 0, sizeof(*w));
	memset(s, 0, sizeof(*s));
	snprintf(w->id, sizeof(w->id), "%s", id);
	w->deadline_mono_ms = clock_mono_ms() + wait_ms;
	w->watch_fd = fd;
	w->fn = on_wake;
	w->arg = s;
}

/* Waits (bounded, 10 s) for s to have been called. */
static void
wait_called(struct seen *s)
{
	for (int i = 0; i < 10000 && atomic_load(&s->calls) == 0; i++) {
		struct timespec ts = {0, 1000000};
		nanosleep(&ts, NULL);
	}
	ck_assert_int_eq(atomic_load(&s->calls), 1);
}

static events *
started(size_t max)
{
	events *ev = events_new(max);

	ck_assert_ptr_nonnull(ev);
	ck_assert_int_eq(events_start(ev), 0);
	return ev;
}

START_TEST(test_final_state_wakes_only_its_job)
{
	events *ev = started(10);
	struct waiter a, b;
	struct seen sa, sb;

	waiter_for(&a, &sa, "job-a", 60000, -1);
	waiter_for(&b, &sb, "job-b", 60000, -1);
	ck_assert_int_eq(events_wait(ev, &a), 0);
	ck_assert_int_eq(events_wait(ev, &b), 0);
	ck_assert_uint_eq(events_count(ev), 2);
	events_publish(ev, "job-a", JOB_RUNNING); /* not final */
	ck_assert_int_eq(atomic_load(&sa.calls), 0);
	events_publish(ev, "job-a", JOB_SUCCEEDED);
	ck_assert_int_eq(atomic_load(&sa.calls), 1); /* on this thread */
	ck_assert_int_eq(atomic_load(&sa.reason), WAKE_FINAL);
	ck_assert_int_eq(atomic_load(&sb.calls), 0);
	ck_assert_uint_eq(events_count(ev), 1);
	events_publish(ev, "job-a", JOB_FAILED); /* nobody left: no call */
	ck_assert_int_eq(atomic_load(&sa.calls), 1);
	ck_assert(events_cancel(ev, &b));
	ck_assert(!events_cancel(ev, &a)); /* already woken */
	ck_assert_uint_eq(events_count(ev), 0);
	events_stop(ev);
	ck_assert_int_eq(atomic_load(&sb.calls), 0); /* cancelled: never */
	events_free(ev);
}
END_TEST

START_TEST(test_several_waiters_one_job)
{
	enum { N = 50 };
	events *ev = started(N);
	struct waiter w[N];
	struct seen s[N];

	for (int i = 0; i < N; i++) {
		waiter_for(&w[i], &s[i], "same", 60000, -1);
		ck_assert_int_eq(events_wait(ev, &w[i]), 0);
	}
	events_publish(ev, "same", JOB_CANCELLED);
	for (int i = 0; i < N; i++) {
		ck_assert_int_eq(atomic_load(&s[i].calls), 1);
		ck_assert_int_eq(atomic_load(&s[i].reason), WAKE_FINAL);
	}
	events_stop(ev);
	events_free(ev);
}
END_TEST

START_TEST(test_deadline)
{
	events *ev = started(10);
	struct waiter w, later;
	struct seen s, sl;

	waiter_for(&w, &s, "slow", 20, -1);
	waiter_for(&later, &sl, "slow", 60000, -1);
	ck_assert_int_eq(events_wait(ev, &later), 0);
	ck_assert_int_eq(events_wait(ev, &w), 0);
	wait_called(&s);
	ck_assert_int_eq(atomic_load(&s.reason), WAKE_TIMEOUT);
	ck_assert_int_eq(atomic_load(&sl.calls), 0); /* its own deadline */
	events_stop(ev);
	ck_assert_int_eq(atomic_load(&sl.calls), 1);
	ck_assert_int_eq(atomic_load(&sl.reason), WAKE_SHUTDOWN);
	events_free(ev);
}
END_TEST

START_TEST(test_client_close)
{
	events *ev = started(10);
	struct waiter w;
	struct seen s;
	int sv[2];

	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	waiter_for(&w, &s, "watched", 60000, sv[0]);
	ck_assert_int_eq(events_wait(ev, &w), 0);
	close(sv[1]); /* the client hangs up */
	wait_called(&s);
	ck_assert_int_eq(atomic_load(&s.reason), WAKE_DISCONNECT);
	events_publish(ev, "watched", JOB_SUCCEEDED); /* once only */
	ck_assert_int_eq(atomic_load(&s.calls), 1);
	close(sv[0]);
	events_stop(ev);
	events_free(ev);
}
END_TEST

START_TEST(test_max_waiters_and_stopped)
{
	events *ev = started(2);
	struct waiter w[3];
	struct seen s[3];

	for (int i = 0; i < 3; i++)
		waiter_for(&w[i], &s[i], "j", 60000, -1);
	ck_assert_int_eq(events_wait(ev, &w[0]), 0);
	ck_assert_int_eq(events_wait(ev, &w[1]), 0);
	ck_assert_int_eq(events_wait(ev, &w[2]), JOBD_EBUSY);
	ck_assert(events_cancel(ev, &w[0]));
	ck_assert_int_eq(events_wait(ev, &w[2]), 0); /* room again */
	events_stop(ev);
	ck_assert_int_eq(atomic_load(&s[1].reason), WAKE_SHUTDOWN);
	ck_assert_int_eq(atomic_load(&s[2].reason), WAKE_SHUTDOWN);
	ck_assert_int_eq(atomic_load(&s[0].calls), 0);
	waiter_for(&w[0], &s[0], "j", 60000, -1);
	ck_assert_int_eq(events_wait(ev, &w[0]), JOBD_EBUSY); /* stopped */
	events_free(ev);
}
END_TEST

/* A publish racing a deadline and a cancel from other threads: still
 * exactly one call or none (cancelled), never two. */
struct racer {
	events *ev;
	struct waiter *w;
	bool cancelled;
};

static void *
cancel_thread(void *arg)
{
	struct racer *r = arg;

	r->cancelled = events_cancel(r->ev, r->w);
	return NULL;
}

START_TEST(test_races_wake_once)
{
	events *ev = started(4);

	for (int round = 0; round < 500; round++) {
		struct waiter w;
		struct seen s;
		struct racer r = {.ev = ev, .w = &w};
		pthread_t t;

		waiter_for(&w, &s, "race", round % 3, -1);
		ck_assert_int_eq(events_wait(ev, &w), 0);
		ck_assert_int_eq(pthread_create(&t, NULL, cancel_thread, &r), 0);
		events_publish(ev, "race", JOB_SUCCEEDED);
		pthread_join(t, NULL);
		if (r.cancelled)
			ck_assert_int_eq(atomic_load(&s.calls), 0);
		else
			wait_called(&s);
	}
	events_stop(ev);
	events_free(ev);
}
END_TEST

static Suite *
events_suite(void)
{
	Suite *su = suite_create("events");
	TCase *tc = tcase_create("events");

	tcase_add_test(tc, test_final_state_wakes_only_its_job);
	tcase_add_test(tc, test_several_waiters_one_job);
	tcase_add_test(tc, test_deadline);
	tcase_add_test(tc, test_client_close);
	tcase_add_test(tc, test_max_waiters_and_stopped);
	tcase_add_test(tc, test_races_wake_once);
	suite_add_tcase(su, tc);
	return su;
}

int
main(void)
{
	SRunner *sr = srunner_create(events_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
