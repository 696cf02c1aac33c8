/*
 * test_exec2.c - what becomes of an exec attempt's process group (issue
 * 11): an attempt is judged by its command's exit status, whatever its
 * leftovers do after; and a group left running by a jobd that died is
 * killed by the next start on the same store, never a group that merely
 * reuses its number.
 *
 * As in test_exec.c, each test process is a child subreaper (so orphans
 * of the commands and of a killed jobd come to it), reaps them by pid,
 * and calls a process gone when kill() says ESRCH.  The commands are the
 * scripts in tests/integration/scripts/, run from the repository root.
 * Nothing waits on a fixed delay.
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "checks.h"
#include "harness.h"

static char scripts[PATH_MAX]; /* absolute tests/integration/scripts */

static void
setup(void)
{
	char cwd[PATH_MAX], probe[PATH_MAX + 32];

	ck_assert_msg(prctl(PR_SET_CHILD_SUBREAPER, 1) == 0,
	              "PR_SET_CHILD_SUBREAPER: %s", strerror(errno));
	ck_assert_msg(getcwd(cwd, sizeof(cwd)) != NULL, "getcwd: %s",
	              strerror(errno));
	ck_assert_msg(strlen(cwd) + sizeof("/tests/integration/scripts") <=
	              sizeof(scripts), "working directory too long");
	snprintf(scripts, sizeof(scripts), "%s/tests/integration/scripts",
	         cwd);
	snprintf(probe, sizeof(probe), "%s/straggler.sh", scripts);
	ck_assert_msg(access(probe, X_OK) == 0, "%s is not executable (%s); "
	              "run the suite from the repository root", probe,
	              strerror(errno));
}

/* ---- helpers ---- */

/* A new directory under the run's root, for a script's output. */
static char *
make_outdir(void)
{
	const char *root = getenv("JOBD_ITEST_ROOT");
	char *dir = NULL;

	ck_assert(asprintf(&dir, "%s/exec2-XXXXXX", root ? root : "/tmp") > 0);
	ck_assert_msg(mkdtemp(dir) != NULL, "mkdtemp %s: %s", dir,
	              strerror(errno));
	return dir;
}

/* The whole file, NUL-terminated (caller frees); NULL when unreadable. */
static char *
slurp(const char *path, size_t *len_out)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	char *buf = NULL;
	size_t len = 0, cap = 0;
	ssize_t n;

	if (fd < 0)
		return NULL;
	for (;;) {
		if (len + 4096 + 1 > cap) {
			size_t ncap = cap ? cap * 2 : 8192;
			char *b = realloc(buf, ncap);
			if (b == NULL) {
				free(buf);
				close(fd);
				return NULL;
			}
			buf = b;
			cap = ncap;
		}
		n = read(fd, buf + len, cap - len - 1);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		len += (size_t)n;
	}
	close(fd);
	buf[len] = '\0';
	if (len_out != NULL)
		*len_out = len;
	return buf;
}

/* Waits for dir/name to hold "<pid>\n" (the scripts write it with one
 * write). */
static pid_t
wait_pid_file(const char *dir, const char *name, int timeout_ms)
{
	int64_t deadline = jd_mono_ms() + timeout_ms;
	char path[PATH_MAX];

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	for (;;) {
		size_t len = 0;
		char *s = slurp(path, &len);
		long pid = 0;
		if (s != NULL && len > 1 && s[len - 1] == '\n')
			pid = strtol(s, NULL, 10);
		free(s);
		if (pid > 1)
			return (pid_t)pid;
		ck_assert_msg(jd_mono_ms() < deadline, "no pid in %s within "
		              "%d ms", path, timeout_ms);
		jd_pause_ms(10);
	}
}

/* Reaps pid if it is an orphan reparented to us, then: is it gone? */
static bool
proc_gone(pid_t pid)
{
	while (waitpid(pid, NULL, WNOHANG) < 0 && errno == EINTR)
		;
	return kill(pid, 0) == -1 && errno == ESRCH;
}

/* Is no process of group pgid left?  members are the pids of it that may
 * be our zombies (reaped first). */
static bool
group_gone(pid_t pgid, const pid_t *members, int n)
{
	for (int i = 0; i < n; i++)
		proc_gone(members[i]);
	return kill(-pgid, 0) == -1 && errno == ESRCH;
}

static void
assert_group_gone_within(pid_t pgid, const pid_t *members, int n,
                         int timeout_ms, const char *after)
{
	int64_t deadline = jd_mono_ms() + timeout_ms;

	while (!group_gone(pgid, members, n)) {
		ck_assert_msg(jd_mono_ms() < deadline, "process group %d is "
		              "still there %d ms after %s", (int)pgid,
		              timeout_ms, after);
		jd_pause_ms(10);
	}
}

/* Kills and reaps what a test started, whatever became of it. */
static void
kill_group(pid_t pgid, const pid_t *members, int n)
{
	kill(-pgid, SIGKILL);
	for (int i = 0; i < n; i++) {
		kill(members[i], SIGKILL);
		while (waitpid(members[i], NULL, 0) < 0 && errno == EINTR)
			;
	}
}

/* ---- 1. an exit 0 is a success, whatever holds stdout after it ---- */

/*
 * The command exits 0 at once; a straggler in its group and one in a
 * session of its own both hold its stdout.  jobd kills the group when the
 * command exits, and reads what is left of stdout for a while: the
 * escaped one keeps the pipe open past the attempt's timeout.  The
 * attempt still succeeded, with the output it wrote.
 */
START_TEST(test_exit0_with_stragglers_succeeds)
{
	char *out = make_outdir(), *extra = NULL, *id;
	struct jd_resp *r;
	pid_t leader, straggler, escaped;
	const char *result;
	jd *d;

	/* 900 ms: the command is done in a fraction of it, and jobd reads
	 * a held stdout for a second after the exit. */
	ck_assert(asprintf(&extra,
	    "[handler.straggle]\ncommand = '%s/straggler.sh' '%s'\n"
	    "timeout = 900ms\nkill_grace = 100ms\nmax_attempts = 1\n",
	    scripts, out) > 0);
	d = launch(2, extra);
	id = submit_ok(d, "{\"type\":\"straggle\"}");
	straggler = wait_pid_file(out, "straggler.pid", 10000);
	escaped = wait_pid_file(out, "escaped.pid", 10000);
	leader = wait_pid_file(out, "leader.pid", 10000);

	r = jd_wait_for_status(d, id, "succeeded", 10000);
	if (r == NULL) {
		r = jd_request(d, "GET", "/jobs", NULL, NULL);
		kill_group(leader, (pid_t[]){straggler, escaped}, 2);
		ck_abort_msg("the job did not succeed: %s", r ? r->body : "");
	}
	result = jd_resp_str(r, "result");
	ck_assert_msg(result != NULL && strcmp(result, "done") == 0,
	              "result: %s", r->body);
	ck_assert_int_eq((int)jd_num(jd_json(r), "exit_code", -1), 0);
	ck_assert_int_eq((int)jd_num(jd_json(r), "attempt", -1), 1);
	jd_resp_free(r);

	/* The group's straggler was killed; the escaped one is outside
	 * what jobd kills (its own session): ours to stop. */
	assert_group_gone_within(leader, &straggler, 1, 5000,
	                         "the attempt succeeded");
	kill_group(escaped, &escaped, 1);
	free(id);
	free(extra);
	free(out);
	jd_free(d);
}
END_TEST

static Suite *
exec2_suite(void)
{
	Suite *s = suite_create("exec2");
	TCase *tc = tcase_create("exec2");

	tcase_set_timeout(tc, 120);
	tcase_add_checked_fixture(tc, setup, NULL);
	tcase_add_test(tc, test_exit0_with_stragglers_succeeds);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	return run_suite(exec2_suite());
}
