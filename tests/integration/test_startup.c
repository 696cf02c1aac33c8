/*
 * test_startup.c - start-up, the store's file and --check-config (issue
 * 11, items 2, 12, 19, 20), against the real daemon:
 *  - one jobd per store: a second daemon on the same SQLite file is
 *    refused (naming the holder's pid) and leaves the first one's running
 *    job alone; a daemon that cannot bind its port recovers nothing;
 *  - the store's file deleted or replaced while jobd runs: 503, not ready,
 *    an error in the log;
 *  - --check-config runs every start-up check except opening the store and
 *    binding, and warns about commands that cannot run;
 *  - the tokens file's owner, mode and symlinks; the store's file modes;
 *    the open-files limit.
 *
 * On PostgreSQL (JOBD_TEST_STORE=pg) the tests of the SQLite file itself
 * say so and pass (SQLITE_ONLY); the others run on either store.
 *
 * Every test starts its own daemons (fork mode: they live in the test's
 * process).  Nothing waits on a fixed delay: every wait polls a condition
 * with a deadline.
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "checks.h"
#include "harness.h"

static const char *const json_ct[] = {"Content-Type: application/json",
                                      NULL};

/* ---- helpers ---- */

static void
write_file(const char *path, const char *text, mode_t mode)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);

	ck_assert_msg(fd >= 0, "%s: %s", path, strerror(errno));
	ck_assert_int_eq(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	ck_assert_int_eq(fchmod(fd, mode), 0);
	ck_assert_int_eq(close(fd), 0);
}

static void
append_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "ae");

	ck_assert_msg(f != NULL, "%s: %s", path, strerror(errno));
	fputs(text, f);
	ck_assert_int_eq(fclose(f), 0);
}

static int
count_lines(const char *path)
{
	char *s = jd_read_file(path, NULL);
	int n = 0;

	if (s == NULL)
		return 0;
	for (const char *p = s; *p; p++)
		n += *p == '\n';
	free(s);
	return n;
}


/* Polls until path has at least n lines; false after timeout_ms. */
static bool
wait_lines(const char *path, int n, int timeout_ms)
{
	int64_t deadline = jd_mono_ms() + timeout_ms;

	while (count_lines(path) < n) {
		if (jd_mono_ms() >= deadline)
			return false;
		jd_pause_ms(20);
	}
	return true;
}

/* Tests of the SQLite file itself (its lock file, its links, its modes,
 * its deletion) do not apply to PostgreSQL: a line says so, and the test
 * passes. */
#define SQLITE_ONLY(why) do { \
		if (jd_store_is_pg()) { \
			fprintf(stderr, "test_startup: %s: skipped on " \
			        "PostgreSQL: %s\n", __func__, (why)); \
			return; \
		} \
	} while (0)

static const char *
jobd_bin(void)
{
	const char *bin = getenv("JOBD_BIN");

	return bin && bin[0] ? bin : "build/jobd";
}

/*
 * Runs `jobd --check-config --config conf` with stdout and stderr into
 * one file, and waits (up to 10 s) for it to exit.  Returns its exit
 * status; *out (caller frees) gets what it printed.
 */
static int
check_config(const char *conf, char **out)
{
	char out_path[320];
	int fd, st = 0, pfd;
	pid_t pid;

	snprintf(out_path, sizeof(out_path), "%s.out", conf);
	fd = open(out_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	ck_assert_int_ge(fd, 0);
	fflush(NULL);
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		dup2(fd, 1);
		dup2(fd, 2);
		execl(jobd_bin(), jobd_bin(), "--check-config", "--config", conf,
		      (char *)NULL);
		_exit(127);
	}
	close(fd);
	pfd = (int)syscall(SYS_pidfd_open, pid, 0);
	ck_assert_int_ge(pfd, 0);
	struct pollfd p = {.fd = pfd, .events = POLLIN};
	int r = poll(&p, 1, 10000);
	close(pfd);
	if (r != 1)
		kill(pid, SIGKILL);
	ck_assert_int_eq(waitpid(pid, &st, 0), pid);
	ck_assert_msg(r == 1, "jobd --check-config did not exit within 10 s");
	*out = jd_read_file(out_path, NULL);
	ck_assert_ptr_nonnull(*out);
	ck_assert_msg(WIFEXITED(st), "jobd --check-config died: 0x%x", st);
	return WEXITSTATUS(st);
}

/* A directory of its own for a config file, under the run's root. */
static jd *
scratch(void)
{
	struct jd_opts o = {.no_default_handlers = true};
	jd *d = jd_new(&o);

	ck_assert_ptr_nonnull(d);
	return d;
}

/* Writes conf as d's config file, after a [server] listen on d's port. */
static void
write_conf(jd *d, const char *text)
{
	char head[128];
	FILE *f = fopen(d->conf_path, "we");

	ck_assert_ptr_nonnull(f);
	snprintf(head, sizeof(head), "[server]\nlisten = 127.0.0.1:%d\n",
	         d->port);
	fputs(head, f);
	fputs(text, f);
	ck_assert_int_eq(fclose(f), 0);
}

/* Expects jd_start(d) to fail with a non-zero exit; returns its log. */
static char *
start_refused(jd *d, const char *why)
{
	int st;

	fprintf(stderr, "test_startup: jobd must refuse to start (%s); the "
	        "harness reports the exit below\n", why);
	ck_assert_msg(jd_start(d) != 0, "jobd started although %s", why);
	st = d->wait_status;
	ck_assert_msg(d->pid <= 0 && WIFEXITED(st) && WEXITSTATUS(st) != 0,
	              "jobd did not exit non-zero (wait status 0x%x)", st);
	return jd_read_file(d->log_path, NULL);
}

/* ================================================================
 * Item 2: one daemon per store; bind before recovery
 * ================================================================ */

/*
 * The same store under another name - a symlink, a hard link - is the
 * same store (found by review: the lock was taken on the name, and a
 * daemon on a symlink re-ran the first one's job).
 */
START_TEST(test_second_daemon_other_name_refused)
{
	char sym[320], hard[320], conf[800];
	jd *d1, *d2;
	char *id, *log;

	SQLITE_ONLY("the store's file under other names (links)");
	d1 = jd_new(NULL);
	ck_assert_ptr_nonnull(d1);
	ck_assert_int_eq(jd_start(d1), 0);
	id = submit_ok(d1, "{\"type\": \"sleep\", \"payload\": "
	                   "{\"seconds\": 60}}");
	jd_resp_free(wait_status(d1, id, "running", 10000));
	snprintf(sym, sizeof(sym), "%s/other-name.db", d1->dir);
	snprintf(hard, sizeof(hard), "%s/hard-link.db", d1->dir);
	ck_assert_int_eq(symlink(d1->db_path, sym), 0);
	ck_assert_int_eq(link(d1->db_path, hard), 0);
	for (int k = 0; k < 2; k++) {
		d2 = scratch();
		snprintf(conf, sizeof(conf), "[store]\npath = %s\n"
		         "[handler.sleep]\nbuiltin = sleep\n", k ? hard : sym);
		write_conf(d2, conf);
		log = start_refused(d2, k ? "a hard link names the store"
		                          : "a symlink names the store");
		ck_assert_msg(log != NULL && strstr(log, "in use by another") !=
		              NULL, "the refusal does not say why:\n%s",
		              log ? log : "");
		ck_assert_msg(strstr(log, "recovered") == NULL, "%s", log);
		free(log);
		jd_free(d2);
	}
	/* The first daemon's attempt was left alone. */
	ck_assert_int_eq(jd_sql_int(d1, "SELECT attempt FROM jobs"), 1);
	char *status = jd_sql_text(d1, "SELECT status FROM jobs");
	ck_assert_str_eq(status, "running");
	free(status);
	free(id);
	jd_free(d1);
}
END_TEST

START_TEST(test_second_daemon_refused)
{
	char handler[800], runs[320], conf[1200], pidtxt[64];
	jd *d1, *d2 = NULL;
	char *id, *claim, *claim2, *log;
	struct jd_resp *r;

	SQLITE_ONLY("the refusal by flock on <store>.lock, which names the "
	            "holder's pid");
	d1 = jd_new(NULL);
	ck_assert_ptr_nonnull(d1);
	/* An exec handler that notes each start of an attempt in a file. */
	snprintf(runs, sizeof(runs), "%s/runs", d1->dir);
	snprintf(handler, sizeof(handler), "[handler.mark]\ncommand = /bin/sh "
	         "-c 'echo started >> %s; exec sleep 60'\n", runs);
	append_file(d1->conf_path, handler);
	ck_assert_int_eq(jd_start(d1), 0);
	id = submit_ok(d1, "{\"type\": \"mark\"}");
	jd_resp_free(wait_status(d1, id, "running", 10000));
	ck_assert_msg(wait_lines(runs, 1, 10000), "the attempt did not start");
	claim = jd_sql_text(d1, "SELECT claim FROM jobs");
	ck_assert_ptr_nonnull(claim);

	/* A second daemon on the same store, on a port of its own. */
	d2 = scratch();
	snprintf(conf, sizeof(conf), "[store]\npath = %s\n[handler.mark]\n"
	         "command = /bin/sh -c 'echo started >> %s; exec sleep 60'\n",
	         d1->db_path, runs);
	write_conf(d2, conf);
	log = start_refused(d2, "another jobd holds the store");
	snprintf(pidtxt, sizeof(pidtxt), "pid %ld", (long)d1->pid);
	ck_assert_msg(log != NULL && strstr(log, pidtxt) != NULL &&
	              strstr(log, d1->db_path) != NULL,
	              "the refusal does not name the store and \"%s\":\n%s",
	              pidtxt, log ? log : "");
	free(log);

	/* The first daemon runs on, its attempt untouched and alone. */
	r = jd_request(d1, "GET", "/readyz", NULL, NULL);
	assert_status(r, 200);
	jd_resp_free(r);
	claim2 = jd_sql_text(d1, "SELECT claim FROM jobs");
	ck_assert_ptr_nonnull(claim2);
	ck_assert_str_eq(claim2, claim);
	ck_assert_int_eq(jd_sql_int(d1, "SELECT attempt FROM jobs"), 1);
	char *status = jd_sql_text(d1, "SELECT status FROM jobs");
	ck_assert_str_eq(status, "running");
	free(status);
	ck_assert_int_eq(count_lines(runs), 1);

	/* It ends once, here. */
	char path[128];
	snprintf(path, sizeof(path), "/jobs/%s", id);
	r = jd_request(d1, "DELETE", path, NULL, NULL);
	assert_status(r, 202);
	jd_resp_free(r);
	jd_resp_free(wait_status(d1, id, "cancelled", 20000));
	ck_assert_int_eq(count_lines(runs), 1);
	ck_assert_int_eq(jd_stop(d1, 20000), 0);

	/* With the first one gone, the second one starts on the store. */
	ck_assert_int_eq(jd_start(d2), 0);
	ck_assert_int_eq(jd_stop(d2, 20000), 0);
	free(claim);
	free(claim2);
	free(id);
	jd_free(d2);
	jd_free(d1);
}
END_TEST

START_TEST(test_lock_file_names_holder)
{
	jd *d;
	char lock[320], *text;

	SQLITE_ONLY("<store>.lock is the SQLite store's");
	d = launch(1, NULL);
	snprintf(lock, sizeof(lock), "%s.lock", d->db_path);
	text = jd_read_file(lock, NULL);
	ck_assert_msg(text != NULL, "no lock file %s", lock);
	ck_assert_int_eq(atol(text), d->pid);
	free(text);
	ck_assert_int_eq(jd_stop(d, 20000), 0);
	jd_free(d);
}
END_TEST

START_TEST(test_lock_not_inherited_by_handlers)
{
	char handler[1400], pidfile[320], *text, *id;
	jd *d = jd_new(NULL);
	long child;

	ck_assert_ptr_nonnull(d);
	snprintf(pidfile, sizeof(pidfile), "%s/child.pid", d->dir);
	snprintf(handler, sizeof(handler), "[handler.linger]\ncommand = "
	         "/bin/sh -c 'echo $$ > %s.tmp && mv %s.tmp %s; exec sleep "
	         "600'\n", pidfile, pidfile, pidfile);
	append_file(d->conf_path, handler);
	ck_assert_int_eq(jd_start(d), 0);
	id = submit_ok(d, "{\"type\": \"linger\"}");
	ck_assert_msg(wait_lines(pidfile, 1, 10000), "the handler did not "
	              "start");
	text = jd_read_file(pidfile, NULL);
	ck_assert_ptr_nonnull(text);
	child = atol(text);
	free(text);
	ck_assert_int_gt(child, 1);
	/* The daemon dies; its handler lives on, and must not hold the
	 * store's lock: the restart gets it. */
	jd_kill9(d);
	ck_assert_int_eq(kill((pid_t)child, 0), 0);
	int rc = jd_start(d);
	kill((pid_t)child, SIGKILL);
	ck_assert_msg(rc == 0, "jobd could not restart beside the handler "
	              "its predecessor left");
	/* Recovery requeued the job; cancel its new attempt. */
	char path[128];
	struct jd_resp *r;
	snprintf(path, sizeof(path), "/jobs/%s", id);
	jd_resp_free(wait_status(d, id, "running", 10000));
	r = jd_request(d, "DELETE", path, NULL, NULL);
	ck_assert(r != NULL && (r->status == 202 || r->status == 200));
	jd_resp_free(r);
	jd_resp_free(wait_status(d, id, "cancelled", 20000));
	ck_assert_int_eq(jd_stop(d, 20000), 0);
	free(id);
	jd_free(d);
}
END_TEST

START_TEST(test_bind_failure_recovers_nothing)
{
	struct sockaddr_in sa = {.sin_family = AF_INET};
	jd *d = launch(1, NULL);
	char *id, *status, *log;
	int fd, one = 1;

	id = submit_ok(d, "{\"type\": \"sleep\", \"payload\": "
	               "{\"seconds\": 600}}");
	jd_resp_free(wait_status(d, id, "running", 10000));
	jd_kill9(d); /* the job stays running in the store */

	/* Somebody else takes the port. */
	fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	ck_assert_int_ge(fd, 0);
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	sa.sin_port = htons((uint16_t)d->port);
	ck_assert_int_eq(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	ck_assert_int_eq(listen(fd, 16), 0);

	log = start_refused(d, "its port is taken");
	free(log);
	status = jd_sql_text(d, "SELECT status FROM jobs");
	ck_assert_msg(status != NULL && strcmp(status, "running") == 0,
	              "a daemon that could not serve recovered the job: %s",
	              status ? status : "(none)");
	free(status);
	ck_assert_int_eq(jd_sql_int(d, "SELECT attempt FROM jobs"), 1);

	/* Once the port is free, recovery runs. */
	close(fd);
	ck_assert_int_eq(jd_start(d), 0);
	log = jd_wait_log(d, "recovered 1 interrupted job", 10000);
	ck_assert_ptr_nonnull(log);
	free(log);
	jd_kill9(d);
	free(id);
	jd_free(d);
}
END_TEST

/* ================================================================
 * Item 19: the store's file deleted or replaced while jobd runs
 * ================================================================ */

static void
assert_store_gone(jd *d, bool readyz_first)
{
	struct jd_resp *r;
	char *log;

	for (int i = 0; i < 2; i++) {
		if ((i == 0) == readyz_first) {
			r = jd_request(d, "GET", "/readyz", NULL, NULL);
			assert_status(r, 503);
		} else {
			r = jd_request(d, "POST", "/jobs", json_ct,
			               "{\"type\": \"noop\"}");
			assert_status(r, 503);
			ck_assert_ptr_nonnull(jd_header(r, "Retry-After"));
		}
		jd_resp_free(r);
	}
	/* It stays refused. */
	r = jd_request(d, "POST", "/jobs", json_ct, "{\"type\": \"echo\"}");
	assert_status(r, 503);
	jd_resp_free(r);
	r = jd_request(d, "GET", "/readyz", NULL, NULL);
	assert_status(r, 503);
	jd_resp_free(r);
	log = jd_wait_log(d, "<3>", 10000);
	ck_assert_msg(log != NULL && strstr(log, d->db_path) != NULL,
	              "no error names the store:\n%s", log ? log : "");
	free(log);
}

START_TEST(test_store_deleted)
{
	jd *d;
	char *id;

	SQLITE_ONLY("the store's file deleted");
	d = launch(1, NULL);
	id = submit_ok(d, "{\"type\": \"noop\"}");
	jd_resp_free(wait_status(d, id, "succeeded", 10000));
	ck_assert_int_eq(unlink(d->db_path), 0);
	assert_store_gone(d, false);
	free(id);
	jd_free(d);
}
END_TEST

START_TEST(test_store_deleted_readyz_first)
{
	jd *d;

	SQLITE_ONLY("the store's file deleted");
	d = launch(1, NULL);
	ck_assert_int_eq(unlink(d->db_path), 0);
	assert_store_gone(d, true);
	jd_free(d);
}
END_TEST

START_TEST(test_store_replaced)
{
	jd *d;
	char other[320];

	SQLITE_ONLY("the store's file replaced");
	d = launch(1, NULL);
	snprintf(other, sizeof(other), "%s/other.db", d->dir);
	write_file(other, "", 0600);
	ck_assert_int_eq(rename(other, d->db_path), 0);
	assert_store_gone(d, false);
	jd_free(d);
}
END_TEST

/* ================================================================
 * Item 12: the tokens file, the store's modes, the open-files limit
 * ================================================================ */

/* A daemon whose [auth] tokens_file is path (written with mode). */
static jd *
with_tokens(const char *name, mode_t mode, char *path, size_t pathlen)
{
	struct jd_opts o = {0};
	jd *d = jd_new(&o);
	char conf[900];

	ck_assert_ptr_nonnull(d);
	snprintf(path, pathlen, "%s/%s", d->dir, name);
	write_file(path, "ci:0123456789abcdef0123\n", mode);
	snprintf(conf, sizeof(conf), "[auth]\ntokens_file = %s\n", path);
	append_file(d->conf_path, conf);
	return d;
}

static void
tokens_refused(jd *d, const char *path, const char *why, const char *word)
{
	char *log = start_refused(d, why);

	ck_assert_msg(log != NULL && strstr(log, path) != NULL &&
	              strstr(log, word) != NULL,
	              "the refusal does not name %s and say \"%s\":\n%s", path,
	              word, log ? log : "");
	ck_assert_msg(strstr(log, "0123456789abcdef0123") == NULL,
	              "the log shows the token");
	free(log);
}

START_TEST(test_tokens_group_writable)
{
	char path[320];
	jd *d = with_tokens("tokens", 0620, path, sizeof(path));

	tokens_refused(d, path, "the tokens file is group-writable",
	               "writable");
	jd_free(d);
}
END_TEST

START_TEST(test_tokens_symlink)
{
	char path[320], link[330];
	jd *d = with_tokens("tokens.real", 0600, path, sizeof(path));
	char conf[900];

	snprintf(link, sizeof(link), "%s/tokens", d->dir);
	ck_assert_int_eq(symlink(path, link), 0);
	/* Point the config at the link instead. */
	write_conf(d, "");
	snprintf(conf, sizeof(conf), "[store]\npath = %s\n[handler.noop]\n"
	         "builtin = noop\n[auth]\ntokens_file = %s\n", d->db_path, link);
	append_file(d->conf_path, conf);
	tokens_refused(d, link, "the tokens file is a symlink", "symlink");
	jd_free(d);
}
END_TEST

START_TEST(test_tokens_foreign_owner)
{
	char path[320];
	jd *d = with_tokens("tokens", 0600, path, sizeof(path));

	if (geteuid() != 0 || chown(path, 65534, 65534) != 0) {
		fprintf(stderr, "test_startup: not root: cannot give the "
		        "tokens file away; skipped\n");
		jd_free(d);
		return;
	}
	tokens_refused(d, path, "the tokens file belongs to another user",
	               "owned by");
	jd_free(d);
}
END_TEST

START_TEST(test_tokens_ok_still_starts)
{
	char path[320];
	jd *d = with_tokens("tokens", 0640, path, sizeof(path));

	ck_assert_int_eq(jd_start(d), 0);
	ck_assert_int_eq(jd_stop(d, 20000), 0);
	jd_free(d);
}
END_TEST

START_TEST(test_store_files_private)
{
	static const char *const suffix[] = {"", "-wal", "-shm", ".lock"};
	mode_t old;
	jd *d;
	char *id;

	SQLITE_ONLY("the modes of the store's files");
	old = umask(022);
	d = launch(1, NULL);
	id = submit_ok(d, "{\"type\": \"noop\"}");
	umask(old);
	jd_resp_free(wait_status(d, id, "succeeded", 10000));
	for (size_t i = 0; i < sizeof(suffix) / sizeof(suffix[0]); i++) {
		char path[330];
		struct stat sb;
		snprintf(path, sizeof(path), "%s%s", d->db_path, suffix[i]);
		ck_assert_msg(stat(path, &sb) == 0, "%s: %s", path,
		              strerror(errno));
		ck_assert_msg((sb.st_mode & 0077) == 0, "%s has mode %03o",
		              path, (unsigned)(sb.st_mode & 0777));
	}
	free(id);
	jd_free(d);
}
END_TEST

/* The soft "Max open files" of a process. */
static long long
nofile_soft(pid_t pid)
{
	char path[64], *text, *line;
	long long soft = -1;

	snprintf(path, sizeof(path), "/proc/%ld/limits", (long)pid);
	text = jd_read_file(path, NULL);
	ck_assert_ptr_nonnull(text);
	line = strstr(text, "Max open files");
	ck_assert_ptr_nonnull(line);
	sscanf(line + strlen("Max open files"), "%lld", &soft);
	free(text);
	return soft;
}

START_TEST(test_nofile_raised)
{
	struct rlimit rl;
	jd *d;

	ck_assert_int_eq(getrlimit(RLIMIT_NOFILE, &rl), 0);
	if (rl.rlim_max != RLIM_INFINITY && rl.rlim_max <= 256) {
		fprintf(stderr, "test_startup: hard NOFILE limit %llu; "
		        "skipped\n", (unsigned long long)rl.rlim_max);
		return;
	}
	/* This test's process only (fork mode): the daemon inherits it. */
	rl.rlim_cur = 256;
	ck_assert_int_eq(setrlimit(RLIMIT_NOFILE, &rl), 0);
	d = launch(1, NULL);
	ck_assert_int_gt(nofile_soft(d->pid), 256);
	ck_assert_int_eq(jd_stop(d, 20000), 0);
	jd_free(d);
}
END_TEST

START_TEST(test_nofile_too_small_warns)
{
	struct rlimit rl = {.rlim_cur = 200, .rlim_max = 200};
	char *log;
	jd *d;

	ck_assert_int_eq(setrlimit(RLIMIT_NOFILE, &rl), 0);
	d = launch(1, NULL);
	log = jd_wait_log(d, "open files", 10000);
	ck_assert_msg(log != NULL, "no warning about the open-files limit");
	ck_assert_ptr_nonnull(strstr(log, "<4>"));
	free(log);
	ck_assert_int_eq(jd_stop(d, 20000), 0);
	jd_free(d);
}
END_TEST

/* ================================================================
 * Item 20: --check-config runs the start-up's checks
 * ================================================================ */

/* --check-config of d's config (listen + text) must fail, saying word. */
static void
check_refuses(const char *text, const char *word)
{
	jd *d = scratch();
	char *out;
	int rc;

	write_conf(d, text);
	rc = check_config(d->conf_path, &out);
	ck_assert_msg(rc != 0 && strstr(out, "config OK") == NULL,
	              "--check-config accepted (exit %d):\n%s\n%s", rc, text,
	              out);
	ck_assert_msg(strstr(out, word) != NULL, "the message does not say "
	              "\"%s\":\n%s", word, out);
	/* Neither the store nor the listener was touched. */
	ck_assert_int_eq(jd_store_made(d), 0);
	free(out);
	jd_free(d);
}

START_TEST(test_check_config_missing_tokens_file)
{
	check_refuses("[store]\npath = /nonexistent-dir/jobs.db\n"
	              "[handler.noop]\nbuiltin = noop\n"
	              "[auth]\ntokens_file = /nonexistent/tokens\n",
	              "/nonexistent/tokens");
}
END_TEST

START_TEST(test_check_config_world_readable_tokens)
{
	jd *d = scratch();
	char tokens[320], conf[1200], *out;
	int rc;

	snprintf(tokens, sizeof(tokens), "%s/tokens", d->dir);
	write_file(tokens, "ci:0123456789abcdef0123\n", 0644);
	snprintf(conf, sizeof(conf), "[store]\npath = %s\n[handler.noop]\n"
	         "builtin = noop\n[auth]\ntokens_file = %s\n", d->db_path,
	         tokens);
	write_conf(d, conf);
	rc = check_config(d->conf_path, &out);
	ck_assert_msg(rc != 0 && strstr(out, tokens) != NULL,
	              "exit %d:\n%s", rc, out);
	free(out);
	jd_free(d);
}
END_TEST

START_TEST(test_check_config_postgres_path)
{
	/* A URI libpq cannot parse is refused before anything is opened
	 * (a well-formed one is checked by connecting, at start-up). */
	check_refuses("[store]\npath = postgresql://localhost:x:y/jobd?=\n"
	              "[handler.noop]\nbuiltin = noop\n",
	              "not a valid PostgreSQL URI");
}
END_TEST

START_TEST(test_check_config_bad_listen)
{
	jd *d = scratch();
	char conf[1200], *out;
	int rc;

	/* A numeric IPv6 address with a scope that names no interface:
	 * parses as host:port, and getaddrinfo refuses it without asking
	 * any resolver. */
	snprintf(conf, sizeof(conf), "[server]\nlisten = [::1%%nosuchif0]:%d\n"
	         "[store]\npath = %s\n[handler.noop]\nbuiltin = noop\n",
	         d->port, d->db_path);
	FILE *f = fopen(d->conf_path, "we");
	ck_assert_ptr_nonnull(f);
	fputs(conf, f);
	fclose(f);
	rc = check_config(d->conf_path, &out);
	ck_assert_msg(rc != 0 && strstr(out, "listen") != NULL,
	              "exit %d:\n%s", rc, out);
	free(out);
	jd_free(d);
}
END_TEST

START_TEST(test_check_config_warnings)
{
	jd *d = scratch();
	char conf[1200], *out;
	int rc;

	snprintf(conf, sizeof(conf), "[store]\npath = %s\n[handler.gone]\n"
	         "command = /nonexistent/bin/resize --quality 80\n"
	         "[handler.notonpath]\ncommand = no-such-program-here x\n"
	         "[handler.sh]\ncommand = sh -c true\n", d->db_path);
	write_conf(d, conf);
	rc = check_config(d->conf_path, &out);
	ck_assert_msg(rc == 0 && strstr(out, "config OK") != NULL,
	              "exit %d:\n%s", rc, out);
	ck_assert_msg(strstr(out, "/nonexistent/bin/resize") != NULL &&
	              strstr(out, "no-such-program-here") != NULL,
	              "no warning for commands that cannot run:\n%s", out);
	ck_assert_msg(strstr(out, "[handler.sh]") == NULL,
	              "a warning for sh, which is on the PATH:\n%s", out);
	ck_assert_int_eq(jd_store_made(d), 0);
	free(out);

	/* No handler at all: a warning. */
	snprintf(conf, sizeof(conf), "[store]\npath = %s\n", d->db_path);
	write_conf(d, conf);
	rc = check_config(d->conf_path, &out);
	ck_assert_msg(rc == 0 && strstr(out, "config OK") != NULL &&
	              strstr(out, "no handler") != NULL, "exit %d:\n%s", rc,
	              out);
	free(out);

	/* A clean config: no warning at all. */
	snprintf(conf, sizeof(conf), "[store]\npath = %s\n[handler.noop]\n"
	         "builtin = noop\n", d->db_path);
	write_conf(d, conf);
	rc = check_config(d->conf_path, &out);
	ck_assert_msg(rc == 0 && strcmp(out, "config OK\n") == 0,
	              "exit %d:\n%s", rc, out);
	free(out);
	jd_free(d);
}
END_TEST

/* ================================================================ */

static Suite *
startup_suite(void)
{
	Suite *s = suite_create("startup");
	TCase *tc = tcase_create("startup");

	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, test_second_daemon_refused);
	tcase_add_test(tc, test_second_daemon_other_name_refused);
	tcase_add_test(tc, test_lock_file_names_holder);
	tcase_add_test(tc, test_lock_not_inherited_by_handlers);
	tcase_add_test(tc, test_bind_failure_recovers_nothing);
	tcase_add_test(tc, test_store_deleted);
	tcase_add_test(tc, test_store_deleted_readyz_first);
	tcase_add_test(tc, test_store_replaced);
	tcase_add_test(tc, test_tokens_group_writable);
	tcase_add_test(tc, test_tokens_symlink);
	tcase_add_test(tc, test_tokens_foreign_owner);
	tcase_add_test(tc, test_tokens_ok_still_starts);
	tcase_add_test(tc, test_store_files_private);
	tcase_add_test(tc, test_nofile_raised);
	tcase_add_test(tc, test_nofile_too_small_warns);
	tcase_add_test(tc, test_check_config_missing_tokens_file);
	tcase_add_test(tc, test_check_config_world_readable_tokens);
	tcase_add_test(tc, test_check_config_postgres_path);
	tcase_add_test(tc, test_check_config_bad_listen);
	tcase_add_test(tc, test_check_config_warnings);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	return run_suite(startup_suite());
}
