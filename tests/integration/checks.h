/*
 * checks.h - Check assertions over the harness, shared by the integration
 * suites: start a daemon, submit, wait for a status, or fail the test with
 * a message that says what happened.
 */
#ifndef JOBD_TEST_CHECKS_H
#define JOBD_TEST_CHECKS_H

#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "harness.h"

#define assert_status(r, st) \
	ck_assert_msg((r) != NULL && (r)->status == (st), \
	              "status %ld, expected %d: %s%s", (r) ? (r)->status : 0L, \
	              (st), (r) ? (r)->body : "", (r) ? (r)->error : "")

/* A daemon with threads workers and extra INI text, started and ready. */
static inline jd *
launch(int threads, const char *extra)
{
	struct jd_opts o = {.threads = threads, .extra = extra};
	jd *d = jd_launch(&o);

	ck_assert_msg(d != NULL, "the daemon did not start");
	return d;
}

/* POSTs body as a job; returns its id (the caller frees) or fails. */
static inline char *
submit_ok(jd *d, const char *body)
{
	char *id = jd_submit(d, body);

	ck_assert_msg(id != NULL, "POST %s was not accepted", body);
	return id;
}

/* Polls the job until it has status, or fails after timeout_ms. */
static inline struct jd_resp *
wait_status(jd *d, const char *id, const char *status, int timeout_ms)
{
	struct jd_resp *r = jd_wait_for_status(d, id, status, timeout_ms);

	ck_assert_msg(r != NULL, "job %s did not become %s within %d ms", id,
	              status, timeout_ms);
	return r;
}

/* A suite's main(): one temp root for every daemon, then the run. */
static inline int
run_suite(Suite *s)
{
	SRunner *sr;
	int failed;

	if (jd_global_init() != 0)
		return EXIT_FAILURE;
	setvbuf(stdout, NULL, _IOLBF, 0);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_ENV);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}

/*
 * A gate for a handler that reads a FIFO (`cat FIFO`, or a script): a new
 * FIFO named PREFIX.<pid>.<n>.fifo under the run's root; the gated job
 * runs until jd_open_gate() opens the write end (which waits for the
 * reader) and closes it, so the reader sees EOF.  No fixed delays.
 */
static inline void
jd_make_fifo(char *fifo, size_t fifolen, const char *prefix)
{
	static int seq;
	const char *root = getenv("JOBD_ITEST_ROOT");

	snprintf(fifo, fifolen, "%s/%s.%ld.%d.fifo", root ? root : "/tmp",
	         prefix, (long)getpid(), ++seq);
	ck_assert_msg(mkfifo(fifo, 0600) == 0, "mkfifo %s: %s", fifo,
	              strerror(errno));
}

static inline void
jd_open_gate(const char *fifo)
{
	int fd = open(fifo, O_WRONLY);

	ck_assert_msg(fd >= 0, "open %s: %s", fifo, strerror(errno));
	close(fd);
}

#endif
