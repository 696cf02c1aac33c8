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
#include <dirent.h>
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
#include <sys/resource.h>
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
		char *s = jd_read_file(path, &len);
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


/* Is no process of group pgid left?  members are the pids of it that may
 * be our zombies (reaped first). */
static bool
group_gone(pid_t pgid, const pid_t *members, int n)
{
	for (int i = 0; i < n; i++)
		jd_proc_gone(members[i]);
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

/* Field 22 of /proc/<pid>/stat (start time, clock ticks after boot); -1
 * when unreadable. */
static long long
proc_start_ticks(pid_t pid)
{
	char path[64], *s, *p;
	long long start = -1;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	s = jd_read_file(path, NULL);
	p = s ? strrchr(s, ')') : NULL;
	/* After ") ": field 3 (state) .. field 22. */
	for (int field = 2; p != NULL && field < 22; field++)
		p = strchr(p + 1, ' ');
	if (p != NULL)
		start = strtoll(p + 1, NULL, 10);
	free(s);
	return start;
}

/* One slot of <store>.pgroups, as jobd writes it. */
struct pgroup_rec {
	int64_t pgid;
	int64_t start_ticks;
};

/* <store.path>.pgroups; on PostgreSQL, $STATE_DIRECTORY/jobd.pgroups
 * (the harness gives the daemon its directory). */
static char *
pgroups_path(jd *d)
{
	char *path = NULL;

	if (d->pg_db[0] != '\0')
		ck_assert(asprintf(&path, "%s/jobd.pgroups", d->dir) > 0);
	else
		ck_assert(asprintf(&path, "%s.pgroups", d->db_path) > 0);
	return path;
}

/* Waits until the pgroups file has a record for pgid; returns its
 * index. */
static int
wait_record(jd *d, pid_t pgid, int timeout_ms)
{
	char *path = pgroups_path(d);
	int64_t deadline = jd_mono_ms() + timeout_ms;

	for (;;) {
		size_t len = 0;
		char *s = jd_read_file(path, &len);
		for (size_t i = 0; s != NULL &&
		     (i + 1) * sizeof(struct pgroup_rec) <= len; i++) {
			struct pgroup_rec r;
			memcpy(&r, s + i * sizeof(r), sizeof(r));
			if (r.pgid == pgid) {
				free(s);
				free(path);
				return (int)i;
			}
		}
		free(s);
		ck_assert_msg(jd_mono_ms() < deadline, "%s has no record of "
		              "group %d within %d ms", path, (int)pgid,
		              timeout_ms);
		jd_pause_ms(10);
	}
}

/* Does the daemon's log hold a line containing every one of words? */
static bool
log_has(jd *d, const char *a, const char *b)
{
	char *log = jd_read_file(d->log_path, NULL);
	bool found = false;

	for (char *line = log ? strtok(log, "\n") : NULL;
	     line != NULL && !found; line = strtok(NULL, "\n"))
		found = strstr(line, a) != NULL && strstr(line, b) != NULL;
	free(log);
	return found;
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

/* ---- 2. groups left by a jobd that died ---- */

static const char hang_conf[] =
    "[handler.hang]\ncommand = '%s/hang.sh' '%s'\n"
    "timeout = 60s\nkill_grace = 500ms\nmax_attempts = %d\n"
    "backoff_base = 10ms\nbackoff_max = 20ms\n"
    "[workers]\nshutdown_grace = 100ms\n";

/*
 * jobd dies (SIGKILL) while an exec attempt runs: its command and the
 * command's background child live on.  The next start on the same store
 * kills that group before recovery requeues the job (which then runs
 * again, alone), and says so in the log.
 */
START_TEST(test_crash_leftover_group_killed)
{
	char *out = make_outdir(), *extra = NULL, *id, *path;
	pid_t pids[2];
	char pgid_text[32];
	struct jd_resp *r;
	jd *d;

	ck_assert(asprintf(&extra, hang_conf, scripts, out, 2) > 0);
	d = launch(2, extra);
	id = submit_ok(d, "{\"type\":\"hang\"}");
	jd_resp_free(wait_status(d, id, "running", 10000));
	pids[0] = wait_pid_file(out, "child.pid", 10000);
	pids[1] = wait_pid_file(out, "grandchild.pid", 10000);
	path = pgroups_path(d);
	/* The record is written just after the spawn: the command may write
	 * its pid files first. */
	wait_record(d, pids[0], 10000);

	ck_assert_int_eq(jd_kill9(d), 128 + SIGKILL);
	ck_assert_msg(!jd_proc_gone(pids[0]) && !jd_proc_gone(pids[1]),
	              "the command did not outlive jobd: nothing to test");
	ck_assert_int_eq(jd_start(d), 0);

	assert_group_gone_within(pids[0], pids, 2, 10000, "the restart");
	snprintf(pgid_text, sizeof(pgid_text), " %d ", (int)pids[0]);
	ck_assert_msg(log_has(d, "<5>", pgid_text),
	              "no notice in the log names group %d", (int)pids[0]);

	/* The job runs again, as a new group. */
	r = wait_status(d, id, "running", 10000);
	ck_assert_int_eq((int)jd_num(jd_json(r), "attempt", -1), 2);
	jd_resp_free(r);
	ck_assert_int_eq(jd_stop(d, 10000), 0);
	free(path);
	free(id);
	free(extra);
	free(out);
	jd_free(d);
}
END_TEST

/*
 * The same crash, but the record's start time no longer matches the
 * group's leader: as when the number was reused by an unrelated process
 * after the crash.  That group is left alone.
 */
START_TEST(test_crash_reused_pgid_left_alone)
{
	char *out = make_outdir(), *extra = NULL, *id, *path;
	pid_t pids[2];
	struct pgroup_rec rec;
	char pgid_text[32];
	int fd, slot;
	jd *d;

	ck_assert(asprintf(&extra, hang_conf, scripts, out, 1) > 0);
	d = launch(2, extra);
	id = submit_ok(d, "{\"type\":\"hang\"}");
	jd_resp_free(wait_status(d, id, "running", 10000));
	pids[0] = wait_pid_file(out, "child.pid", 10000);
	pids[1] = wait_pid_file(out, "grandchild.pid", 10000);
	path = pgroups_path(d);
	slot = wait_record(d, pids[0], 10000);

	ck_assert_int_eq(jd_kill9(d), 128 + SIGKILL);
	fd = open(path, O_RDWR | O_CLOEXEC);
	ck_assert_msg(fd >= 0, "%s: %s", path, strerror(errno));
	ck_assert(pread(fd, &rec, sizeof(rec), (off_t)slot * sizeof(rec)) ==
	          (ssize_t)sizeof(rec));
	ck_assert_int_eq(rec.pgid, pids[0]);
	ck_assert_int_eq(rec.start_ticks, proc_start_ticks(pids[0]));
	rec.start_ticks++;
	ck_assert(pwrite(fd, &rec, sizeof(rec), (off_t)slot * sizeof(rec)) ==
	          (ssize_t)sizeof(rec));
	close(fd);

	/* The decision is made and logged before READY=1. */
	ck_assert_int_eq(jd_start(d), 0);
	snprintf(pgid_text, sizeof(pgid_text), " %d", (int)pids[0]);
	ck_assert_msg(log_has(d, "left alone", pgid_text),
	              "no line in the log says group %d was left alone",
	              (int)pids[0]);
	ck_assert_msg(!jd_proc_gone(pids[0]) && !jd_proc_gone(pids[1]),
	              "a group whose leader started at another time was "
	              "killed");
	/* Recovery found no attempt left: the job failed, not rerun. */
	jd_resp_free(wait_status(d, id, "failed", 10000));
	kill_group(pids[0], pids, 2);
	free(path);
	free(id);
	free(extra);
	free(out);
	jd_free(d);
}
END_TEST

/* A record lives as long as its attempt: gone after a normal end. */
START_TEST(test_record_cleared_after_attempt)
{
	char *out = make_outdir(), *extra = NULL, *id, *path, *s;
	char jobpath[128];
	struct jd_resp *r;
	pid_t pids[2];
	size_t len = 0;
	jd *d;

	ck_assert(asprintf(&extra, hang_conf, scripts, out, 1) > 0);
	d = launch(1, extra);
	id = submit_ok(d, "{\"type\":\"hang\"}");
	jd_resp_free(wait_status(d, id, "running", 10000));
	pids[0] = wait_pid_file(out, "child.pid", 10000);
	pids[1] = wait_pid_file(out, "grandchild.pid", 10000);
	path = pgroups_path(d);
	wait_record(d, pids[0], 10000);

	snprintf(jobpath, sizeof(jobpath), "/jobs/%s", id);
	r = jd_request(d, "DELETE", jobpath, NULL, NULL);
	assert_status(r, 202);
	jd_resp_free(r);
	jd_resp_free(wait_status(d, id, "cancelled", 10000));
	assert_group_gone_within(pids[0], pids, 2, 10000, "the cancel");
	s = jd_read_file(path, &len);
	ck_assert_msg(s != NULL, "%s: %s", path, strerror(errno));
	for (size_t i = 0; i < len; i++)
		ck_assert_msg(s[i] == 0, "%s still holds a record at byte "
		              "%zu after the attempt ended", path, i);
	free(s);
	free(path);
	free(id);
	free(extra);
	free(out);
	jd_free(d);
}
END_TEST

/*
 * A second jobd started on the same store by mistake (another port) must
 * not kill the running one's commands: the file is locked.
 */
START_TEST(test_second_daemon_leaves_groups_alone)
{
	char *out = make_outdir(), *extra = NULL, *id, *conf, *edited;
	pid_t pids[2];
	jd *d, *d2;
	FILE *f;

	ck_assert(asprintf(&extra, hang_conf, scripts, out, 1) > 0);
	d = launch(2, extra);
	id = submit_ok(d, "{\"type\":\"hang\"}");
	jd_resp_free(wait_status(d, id, "running", 10000));
	pids[0] = wait_pid_file(out, "child.pid", 10000);
	pids[1] = wait_pid_file(out, "grandchild.pid", 10000);
	wait_record(d, pids[0], 10000);

	/* The second daemon's own config, with the first one's store. */
	d2 = jd_new(&(struct jd_opts){.threads = 2, .extra = extra});
	ck_assert_ptr_nonnull(d2);
	conf = jd_read_file(d2->conf_path, NULL);
	ck_assert_ptr_nonnull(conf);
	char *at = strstr(conf, d2->db_path);
	ck_assert_ptr_nonnull(at);
	*at = '\0';
	ck_assert(asprintf(&edited, "%s%s%s", conf, d->db_path,
	                   at + strlen(d2->db_path)) > 0);
	f = fopen(d2->conf_path, "w");
	ck_assert_ptr_nonnull(f);
	fputs(edited, f);
	fclose(f);
	/* The store's own lock refuses the second daemon before it looks
	 * at the groups (the .pgroups lock is the second line of defence). */
	ck_assert_int_eq(jd_start(d2), -1);
	ck_assert_msg(!jd_proc_gone(pids[0]) && !jd_proc_gone(pids[1]),
	              "the second daemon killed the first one's command");
	ck_assert_msg(log_has(d2, "in use by another jobd", ""),
	              "the second daemon did not say the store is taken");
	jd_free(d2);
	ck_assert_int_eq(jd_stop(d, 10000), 0);
	assert_group_gone_within(pids[0], pids, 2, 10000, "the shutdown");
	free(edited);
	free(conf);
	free(id);
	free(extra);
	free(out);
	jd_free(d);
}
END_TEST

/*
 * Records no jobd writes - a number too big for a pid whose low 32 bits
 * name a live group, a negative one, a bad start time, a torn record -
 * kill nothing and do not stop the start.  (0 and 1 are refused by the
 * same test; a test that let kill(-1) through would end every process
 * on the machine, so it names none.)
 */
START_TEST(test_hostile_records_kill_nothing)
{
	struct pgroup_rec recs[5];
	char *path;
	pid_t sleeper;
	long long start;
	jd *d;
	int fd;

	sleeper = fork();
	ck_assert_int_ge(sleeper, 0);
	if (sleeper == 0) {
		setsid();
		execl("/bin/sleep", "sleep", "60", (char *)NULL);
		_exit(127);
	}
	for (int64_t deadline = jd_mono_ms() + 5000;
	     getpgid(sleeper) != sleeper; jd_pause_ms(5))
		ck_assert_msg(jd_mono_ms() < deadline, "no setsid()");
	start = proc_start_ticks(sleeper);
	ck_assert_int_ge(start, 0);
	recs[0] = (struct pgroup_rec){((int64_t)1 << 32) + sleeper, start};
	recs[1] = (struct pgroup_rec){-(int64_t)sleeper, start};
	recs[2] = (struct pgroup_rec){sleeper, -1};
	recs[3] = (struct pgroup_rec){INT64_MIN, start};
	recs[4] = (struct pgroup_rec){0, start};

	d = jd_new(&(struct jd_opts){.threads = 2});
	ck_assert_ptr_nonnull(d);
	path = pgroups_path(d);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	ck_assert_msg(fd >= 0, "%s: %s", path, strerror(errno));
	ck_assert(write(fd, recs, sizeof(recs)) == (ssize_t)sizeof(recs));
	ck_assert(write(fd, "\xff\xff\xff\xff\xff\xff\xff", 7) == 7);
	close(fd);

	ck_assert_int_eq(jd_start(d), 0);
	ck_assert_msg(!jd_proc_gone(sleeper), "a hostile record killed a "
	              "process");
	ck_assert_msg(log_has(d, "ignoring a record", "pgroups"),
	              "the bad records were not reported");
	kill_group(sleeper, &sleeper, 1);
	free(path);
	jd_free(d);
}
END_TEST

/* ---- 3. out of file descriptors ---- */

/* The k-th lowest fd number (k >= 1) not open in process pid. */
static int
kth_free_fd(pid_t pid, int k)
{
	enum { MAXFD = 65536 };
	char path[64];
	bool *open_fd = calloc(MAXFD, sizeof(*open_fd));
	struct dirent *e;
	DIR *dir;
	int found = -1;

	ck_assert_ptr_nonnull(open_fd);
	snprintf(path, sizeof(path), "/proc/%d/fd", (int)pid);
	dir = opendir(path);
	ck_assert_msg(dir != NULL, "%s: %s", path, strerror(errno));
	while ((e = readdir(dir)) != NULL) {
		long fd = strtol(e->d_name, NULL, 10);
		if (e->d_name[0] != '.' && fd >= 0 && fd < MAXFD)
			open_fd[fd] = true;
	}
	closedir(dir);
	for (int fd = 0; fd < MAXFD && found < 0; fd++)
		if (!open_fd[fd] && --k == 0)
			found = fd;
	free(open_fd);
	ck_assert_int_ge(found, 0);
	return found;
}

static int
count_fds(pid_t pid)
{
	char path[64];
	struct dirent *e;
	DIR *dir;
	int n = 0;

	snprintf(path, sizeof(path), "/proc/%d/fd", (int)pid);
	dir = opendir(path);
	ck_assert_msg(dir != NULL, "%s: %s", path, strerror(errno));
	while ((e = readdir(dir)) != NULL)
		n += e->d_name[0] != '.';
	closedir(dir);
	return n;
}

/* Free fd numbers left to an attempt: the first, second, third or fourth
 * (progress, fd 3) of its pipes cannot be made.  (With eight, the pipes
 * fit, and the stdin pipe's two are closed again before jobd needs its
 * pidfd.) */
static const int free_fds[] = {0, 1, 3, 5, 7};

/*
 * jobd out of file descriptors (its RLIMIT_NOFILE lowered under it): the
 * attempt fails with an error that says so, is retried like any failed
 * start (queued again, attempts left), and leaks nothing.
 */
START_TEST(test_emfile_is_a_clear_retried_failure)
{
	struct rlimit low, old;
	struct jd_resp *r;
	char *id, *warm, jobpath[128];
	const char *err, *st;
	int before;
	jd *d;

	d = launch(1, "[handler.true]\ncommand = /bin/true\n"
	              "max_attempts = 2\nbackoff_base = 1h\nbackoff_max = 1h\n");
	/* A first attempt, so that what an attempt keeps (the worker's
	 * spare eventfd, the store's connections) is open already. */
	warm = submit_ok(d, "{\"type\":\"true\"}");
	jd_resp_free(wait_status(d, warm, "succeeded", 10000));
	before = count_fds(d->pid);

	ck_assert_int_eq(prlimit(d->pid, RLIMIT_NOFILE, NULL, &old), 0);
	low = old;
	low.rlim_cur = free_fds[_i] == 0 ? (rlim_t)kth_free_fd(d->pid, 1)
	                 : (rlim_t)kth_free_fd(d->pid, free_fds[_i]) + 1;
	ck_assert_int_eq(prlimit(d->pid, RLIMIT_NOFILE, &low, NULL), 0);
	id = submit_ok(d, "{\"type\":\"true\"}");
	snprintf(jobpath, sizeof(jobpath), "/jobs/%s", id);
	for (int64_t deadline = jd_mono_ms() + 10000;; jd_pause_ms(10)) {
		r = jd_request(d, "GET", jobpath, NULL, NULL);
		assert_status(r, 200);
		st = jd_resp_str(r, "status");
		if (st != NULL && strcmp(st, "running") != 0 &&
		    jd_num(jd_json(r), "attempt", 0) >= 1)
			break;
		ck_assert_msg(jd_mono_ms() < deadline, "no end of attempt 1: "
		              "%s", r->body);
		jd_resp_free(r);
	}
	ck_assert_int_eq(prlimit(d->pid, RLIMIT_NOFILE, &old, NULL), 0);
	err = jd_resp_str(r, "error");
	ck_assert_msg(strcmp(st, "queued") == 0 && err != NULL &&
	              strstr(err, "cannot run /bin/true: pipe: Too many "
	                     "open files") != NULL,
	              "with %d fds free: %s", free_fds[_i], r->body);
	jd_resp_free(r);
	ck_assert_int_eq(count_fds(d->pid), before);

	r = jd_request(d, "DELETE", jobpath, NULL, NULL);
	assert_status(r, 200);
	jd_resp_free(r);
	free(id);
	id = submit_ok(d, "{\"type\":\"true\"}");
	jd_resp_free(wait_status(d, id, "succeeded", 10000));
	free(id);
	free(warm);
	jd_free(d);
}
END_TEST

/*
 * Output that parses as JSON is kept as the command wrote it (less
 * whitespace), not re-printed: big integers and \u0000 in strings
 * survive; output that is not strict, valid UTF-8 JSON is kept as a
 * string, sanitised (found by review: cJSON's re-print rounded numbers,
 * cut strings at \u0000 and passed invalid UTF-8 through).
 */
START_TEST(test_json_output_kept_as_written)
{
	jd *d = launch(2, "[handler.cat]\ncommand = cat\n"
	                  "[handler.bad]\ncommand = printf '{\"s\":\"\\377\\300\"}'\n");
	const char *payload = "{ \"k\": \"x\\u0000y\", "
	                      "\"n\": 12345678901234567890123 }";
	char body[256];
	char *id;
	struct jd_resp *r;
	const char *start;

	snprintf(body, sizeof(body), "{\"type\":\"cat\",\"payload\":%s}",
	         payload);
	id = submit_ok(d, body);
	r = wait_status(d, id, "succeeded", 10000);
	start = strstr(r->body, "\"result\":");
	const char *want = "{\"k\":\"x\\u0000y\",\"n\":12345678901234567890123}";
	ck_assert_msg(start != NULL &&
	              strncmp(start + 9, want, strlen(want)) == 0,
	              "result not as written: %s", r->body);
	jd_resp_free(r);
	free(id);

	id = submit_ok(d, "{\"type\":\"bad\"}");
	r = wait_status(d, id, "succeeded", 10000);
	/* Not valid UTF-8: a string, with U+FFFD for the bad bytes. */
	ck_assert_msg(strstr(r->body, "\"result\":\"{\\\"s\\\":\\\"\xef\xbf\xbd"
	                     "\xef\xbf\xbd\\\"}\"") != NULL, "%s", r->body);
	jd_resp_free(r);
	free(id);
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
	tcase_add_test(tc, test_json_output_kept_as_written);
	tcase_add_test(tc, test_exit0_with_stragglers_succeeds);
	tcase_add_test(tc, test_crash_leftover_group_killed);
	tcase_add_test(tc, test_crash_reused_pgid_left_alone);
	tcase_add_test(tc, test_record_cleared_after_attempt);
	tcase_add_test(tc, test_second_daemon_leaves_groups_alone);
	tcase_add_test(tc, test_hostile_records_kill_nothing);
	tcase_add_loop_test(tc, test_emfile_is_a_clear_retried_failure, 0,
	                    sizeof(free_fds) / sizeof(free_fds[0]));
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	return run_suite(exec2_suite());
}
