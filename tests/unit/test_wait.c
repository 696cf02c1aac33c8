/*
 * test_wait.c - the waiting side of a request (src/wait.c) over a real
 * writer, store and events registry (no HTTP, no workers): resume is
 * called exactly once, after the commit or at the job's end, the deadline,
 * or the client's close; a client that closes while waiting on its own
 * submission cancels the job, unless the job says otherwise.
 */
#include <check.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "config.h"
#include "err.h"
#include "events.h"
#include "job.h"
#include "store.h"
#include "uuid.h"
#include "wait.h"
#include "writer.h"

static char dir[] = "/tmp/jobd-test-wait-XXXXXX";
static struct config *cfg;
static store *st;
static writer *w;
static events *ev;
static atomic_int resumed;

static void
on_resume(void *h)
{
	(void)h;
	atomic_fetch_add(&resumed, 1);
}

static void
setup(void)
{
	char path[128], err[256];
	struct store_options opt = {.durability_full = false};

	ck_assert_ptr_nonnull(mkdtemp(dir));
	ck_assert_int_eq(config_load_string("test", "[workers]\nthreads = 1\n"
	                                    "[handler.noop]\nbuiltin = noop\n",
	                                    &cfg, err, sizeof(err)), 0);
	snprintf(path, sizeof(path), "%s/jobs.db", dir);
	ck_assert_int_eq(store_open(path, &opt, &st, err, sizeof(err)), 0);
	w = writer_new(st, cfg);
	ev = events_new(8);
	ck_assert(w != NULL && ev != NULL);
	ck_assert_int_eq(writer_recover(w, err, sizeof(err)), 0);
	ck_assert_int_eq(writer_start(w), 0);
	ck_assert_int_eq(events_start(ev), 0);
	atomic_store(&resumed, 0);
}

static void
teardown(void)
{
	char cmd[160];

	events_stop(ev);
	writer_stop(w);
	events_free(ev);
	writer_free(w);
	store_close(st);
	config_free(cfg);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	ck_assert_int_eq(system(cmd), 0);
}

/* Waits (bounded, 10 s) until resume has been called n times. */
static void
wait_resumed(int n)
{
	for (int i = 0; i < 10000 && atomic_load(&resumed) < n; i++) {
		struct timespec ts = {0, 1000000};
		nanosleep(&ts, NULL);
	}
	ck_assert_int_eq(atomic_load(&resumed), n);
}

/* A job in r's op, ready to submit, of a type without a handler: the
 * writer never claims it (no worker here), so it stays queued. */
static void
fill_job(wait_req *r, bool cancel_on_disconnect)
{
	struct job *j = &wait_op(r)->job;

	ck_assert_int_eq(uuid_v7_new(j->id), 0);
	snprintf(j->type, sizeof(j->type), "unrun");
	j->max_attempts = 1;
	j->timeout_ms = 1000;
	j->created_at_us = j->run_at_us = clock_now_us();
	j->payload = strdup("null");
	j->cancel_on_disconnect = cancel_on_disconnect;
}

static int
status_of(const char *id)
{
	struct job job;
	int status;

	job_init(&job);
	ck_assert_int_eq(store_get(st, id, &job, NULL, 0), 0);
	status = job.status;
	job_clear(&job);
	return status;
}

/* No wait: resumed once, after the commit, with the outcome. */
START_TEST(test_submit_without_wait)
{
	wait_req *r = wait_new(w, ev, st, WOP_SUBMIT, -1, -1, 0, on_resume,
	                       NULL);

	ck_assert_ptr_nonnull(r);
	fill_job(r, true);
	wait_submit(r);
	wait_resumed(1);
	ck_assert_int_eq(wait_op(r)->rc, 0);
	ck_assert(!wait_waited(r));
	ck_assert_int_eq(wait_honoured_ms(r), -1);
	ck_assert_int_eq(status_of(wait_op(r)->job.id), JOB_QUEUED);
	wait_free(r);
}
END_TEST

/* A wait on a job no worker runs: resumed once, at the deadline. */
START_TEST(test_submit_wait_deadline)
{
	wait_req *r = wait_new(w, ev, st, WOP_SUBMIT, 50, -1, 0, on_resume,
	                       NULL);

	fill_job(r, true);
	wait_submit(r);
	wait_resumed(1);
	ck_assert(wait_waited(r));
	ck_assert_int_eq(wait_honoured_ms(r), 50);
	ck_assert_int_eq(status_of(wait_op(r)->job.id), JOB_QUEUED);
	wait_free(r);
}
END_TEST

/* The client closes while it waits on its own submission: the job is
 * cancelled; with cancel_on_disconnect false it is left alone. */
START_TEST(test_disconnect_cancels)
{
	for (int keep = 0; keep < 2; keep++) {
		int sv[2];
		ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
		atomic_store(&resumed, 0);
		wait_req *r = wait_new(w, ev, st, WOP_SUBMIT, 60000, sv[0], 0,
		                       on_resume, NULL);
		fill_job(r, !keep);
		wait_submit(r);
		/* Committed and waiting once the writer registered it. */
		for (int i = 0; i < 10000 && events_count(ev) == 0; i++) {
			struct timespec ts = {0, 1000000};
			nanosleep(&ts, NULL);
		}
		ck_assert_uint_eq(events_count(ev), 1);
		close(sv[1]);
		wait_resumed(1);
		int want = keep ? JOB_QUEUED : JOB_CANCELLED;
		for (int i = 0; i < 10000 &&
		     status_of(wait_op(r)->job.id) != want; i++) {
			struct timespec ts = {0, 1000000};
			nanosleep(&ts, NULL);
		}
		ck_assert_int_eq(status_of(wait_op(r)->job.id), want);
		close(sv[0]);
		wait_free(r);
	}
}
END_TEST

/* A long-poll of a job that is already final: resumed at once (the
 * second look after registering). */
START_TEST(test_long_poll_final_job)
{
	wait_req *s = wait_new(w, ev, st, WOP_SUBMIT, -1, -1, 0, on_resume,
	                       NULL);
	wait_req *c, *r;
	char id[UUID_STR_LEN];

	fill_job(s, true);
	wait_submit(s);
	wait_resumed(1);
	memcpy(id, wait_op(s)->job.id, sizeof(id));
	c = wait_new(w, ev, st, WOP_CANCEL, -1, -1, 0, on_resume, NULL);
	memcpy(wait_op(c)->id, id, sizeof(id));
	wait_submit(c);
	wait_resumed(2);
	ck_assert_int_eq(status_of(id), JOB_CANCELLED);

	r = wait_new(w, ev, st, -1, 60000, -1, 0, on_resume, NULL);
	wait_job(r, id);
	wait_resumed(3);
	ck_assert_uint_eq(events_count(ev), 0);
	wait_free(r);
	wait_free(c);
	wait_free(s);
}
END_TEST

/* The writer has stopped: EBUSY, resumed at once. */
START_TEST(test_writer_stopped)
{
	wait_req *r = wait_new(w, ev, st, WOP_SUBMIT, -1, -1, 0, on_resume,
	                       NULL);

	fill_job(r, true);
	writer_stop(w);
	wait_submit(r);
	ck_assert_int_eq(atomic_load(&resumed), 1);
	ck_assert_int_eq(wait_op(r)->rc, JOBD_EBUSY);
	wait_free(r);
}
END_TEST

static Suite *
wait_suite(void)
{
	Suite *su = suite_create("wait");
	TCase *tc = tcase_create("wait");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_submit_without_wait);
	tcase_add_test(tc, test_submit_wait_deadline);
	tcase_add_test(tc, test_disconnect_cancels);
	tcase_add_test(tc, test_long_poll_final_job);
	tcase_add_test(tc, test_writer_stopped);
	suite_add_tcase(su, tc);
	return su;
}

int
main(void)
{
	SRunner *sr = srunner_create(wait_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
