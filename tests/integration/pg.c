/*
 * pg.c - a private PostgreSQL server for integration tests: pg.h.
 *
 * The server itself is made and stopped by tests/pg/pg.sh; this file runs
 * the script, remembers what it made, and makes sure the server is
 * stopped whatever becomes of the process that started it (the guard
 * process, the exit handler).  SQL goes through psql.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "pg.h"

/* Servers this process started and has not stopped (the exit handler's). */
static struct jd_pg *live;
static pthread_mutex_t live_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_once_t exit_once = PTHREAD_ONCE_INIT;

static const char *
script(void)
{
	const char *s = getenv("JOBD_PG_SH");

	return s != NULL && *s != '\0' ? s : "tests/pg/pg.sh";
}

static void
sleep_ms(int ms)
{
	struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};

	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

/* Reads the first line of path into buf (newline removed): 0 or -1. */
static int
read_line(const char *path, char *buf, size_t len)
{
	FILE *f = fopen(path, "re");
	int rc = -1;

	if (f == NULL)
		return -1;
	if (fgets(buf, (int)len, f) != NULL) {
		buf[strcspn(buf, "\r\n")] = '\0';
		rc = 0;
	}
	fclose(f);
	return rc;
}

/* Closes every descriptor from 3 up except keep (in a fresh child). */
static void
close_from_3(int keep)
{
	long max = sysconf(_SC_OPEN_MAX);

	if (max < 0 || max > 65536)
		max = 65536;
	for (int fd = 3; fd < max; fd++)
		if (fd != keep)
			close(fd);
}

/*
 * Runs argv with stdin from /dev/null and stdout captured into a new
 * string (*out, caller frees; may be NULL to discard; NUL-terminated, and
 * may hold NUL bytes: its length in *lenp): the exit status as waitpid
 * gives it, or -1 when it could not run.
 */
static int
run_capture_len(char *const argv[], char **out, size_t *lenp)
{
	char *buf = NULL;
	size_t len = 0, cap = 0;
	int fds[2], st;
	pid_t pid;

	if (out != NULL)
		*out = NULL;
	if (pipe2(fds, O_CLOEXEC) != 0) {
		fprintf(stderr, "pg: pipe: %s\n", strerror(errno));
		return -1;
	}
	pid = fork();
	if (pid < 0) {
		fprintf(stderr, "pg: fork: %s\n", strerror(errno));
		close(fds[0]);
		close(fds[1]);
		return -1;
	}
	if (pid == 0) {
		int null = open("/dev/null", O_RDONLY | O_CLOEXEC);

		if (null >= 0)
			dup2(null, 0);
		dup2(fds[1], 1);
		execvp(argv[0], argv);
		fprintf(stderr, "pg: exec %s: %s\n", argv[0], strerror(errno));
		_exit(127);
	}
	close(fds[1]);
	for (;;) {
		ssize_t n;

		if (len + 4096 + 1 > cap) {
			size_t ncap = cap ? cap * 2 : 8192;
			char *b = realloc(buf, ncap);

			if (b == NULL)
				break; /* read on into nothing: the child must not block */
			buf = b;
			cap = ncap;
		}
		n = read(fds[0], buf + len, cap - len - 1);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		len += (size_t)n;
	}
	close(fds[0]);
	while (waitpid(pid, &st, 0) < 0) {
		if (errno != EINTR) {
			free(buf);
			return -1;
		}
	}
	if (buf != NULL)
		buf[len] = '\0';
	if (out != NULL)
		*out = buf;
	else
		free(buf);
	if (lenp != NULL)
		*lenp = buf != NULL ? len : 0;
	return st;
}

static int
run_capture(char *const argv[], char **out)
{
	return run_capture_len(argv, out, NULL);
}

/* Runs pg.sh stop DIR: 0 or -1. */
static int
script_stop(const char *dir)
{
	char *argv[] = {"sh", (char *)script(), "stop", (char *)dir, NULL};
	int st = run_capture(argv, NULL);

	if (st < 0 || !WIFEXITED(st) || WEXITSTATUS(st) != 0) {
		fprintf(stderr, "pg: %s stop %s failed\n", script(), dir);
		return -1;
	}
	return 0;
}

static void
live_remove(struct jd_pg *pg)
{
	pthread_mutex_lock(&live_mu);
	for (struct jd_pg **p = &live; *p != NULL; p = &(*p)->next) {
		if (*p == pg) {
			*p = pg->next;
			break;
		}
	}
	pg->next = NULL;
	pthread_mutex_unlock(&live_mu);
}

static void
stop_all_at_exit(void)
{
	for (;;) {
		struct jd_pg *pg;

		pthread_mutex_lock(&live_mu);
		pg = live;
		while (pg != NULL && pg->owner != getpid())
			pg = pg->next;
		pthread_mutex_unlock(&live_mu);
		if (pg == NULL)
			return;
		jd_pg_stop(pg);
	}
}

static void
register_exit(void)
{
	atexit(stop_all_at_exit);
}

/*
 * The guard: a child in its own session (a ^C or a kill of the test's
 * process group does not reach it) that waits for EOF on the pipe whose
 * write end only the starter holds, then stops the server.
 */
static int
start_guard(struct jd_pg *pg)
{
	int fds[2];
	pid_t pid;

	if (pipe2(fds, O_CLOEXEC) != 0) {
		fprintf(stderr, "pg: pipe: %s\n", strerror(errno));
		return -1;
	}
	pid = fork();
	if (pid < 0) {
		fprintf(stderr, "pg: fork: %s\n", strerror(errno));
		close(fds[0]);
		close(fds[1]);
		return -1;
	}
	if (pid == 0) {
		char c;
		ssize_t n;

		/* Only the read end: holding another guard's write end
		 * would keep that guard waiting forever. */
		close_from_3(fds[0]);
		setsid();
		signal(SIGINT, SIG_IGN);
		signal(SIGHUP, SIG_IGN);
		signal(SIGPIPE, SIG_IGN);
		do
			n = read(fds[0], &c, 1);
		while (n > 0 || (n < 0 && errno == EINTR));
		execlp("sh", "sh", script(), "stop", pg->dir, (char *)NULL);
		_exit(127);
	}
	close(fds[0]);
	pg->guard_pid = pid;
	pg->guard_fd = fds[1];
	return 0;
}

int
jd_pg_start(struct jd_pg *pg)
{
	char path[400], line[64], *out = NULL;
	char *argv[] = {"sh", (char *)script(), "start", pg->dir, NULL};
	int st;

	memset(pg, 0, sizeof(*pg));
	pg->guard_fd = -1;
	pg->owner = getpid();
	/* /tmp and not JOBD_ITEST_ROOT: the user postgres must be able to
	 * reach the directory, and the harness's root is root's alone. */
	snprintf(pg->dir, sizeof(pg->dir), "/tmp/jobd-pg.XXXXXX");
	if (mkdtemp(pg->dir) == NULL) {
		fprintf(stderr, "pg: mkdtemp %s: %s\n", pg->dir, strerror(errno));
		return -1;
	}
	st = run_capture(argv, &out);
	if (st >= 0 && WIFEXITED(st) && WEXITSTATUS(st) == 77) {
		free(out);
		rmdir(pg->dir);
		return 77;
	}
	if (st < 0 || !WIFEXITED(st) || WEXITSTATUS(st) != 0 || out == NULL) {
		fprintf(stderr, "pg: %s start %s failed (status %d)\n", script(),
		        pg->dir, st);
		free(out);
		rmdir(pg->dir); /* pg.sh removed what it made */
		return -1;
	}
	out[strcspn(out, "\r\n")] = '\0';
	snprintf(pg->uri, sizeof(pg->uri), "%s", out);
	free(out);

	snprintf(path, sizeof(path), "%s/port", pg->dir);
	if (read_line(path, line, sizeof(line)) == 0)
		pg->port = atoi(line);
	snprintf(path, sizeof(path), "%s/pgbin", pg->dir);
	if (read_line(path, pg->bin, sizeof(pg->bin)) != 0)
		pg->bin[0] = '\0';
	snprintf(path, sizeof(path), "%s/data/postmaster.pid", pg->dir);
	if (read_line(path, line, sizeof(line)) == 0)
		pg->server_pid = (pid_t)atoi(line);
	if (strncmp(pg->uri, "postgresql://", 13) != 0 || pg->port <= 0 ||
	    pg->bin[0] == '\0' || pg->server_pid <= 0) {
		fprintf(stderr, "pg: %s start %s: unexpected result (uri '%s', "
		        "port %d, pid %d)\n", script(), pg->dir, pg->uri,
		        pg->port, (int)pg->server_pid);
		script_stop(pg->dir);
		return -1;
	}
	if (start_guard(pg) != 0) {
		script_stop(pg->dir);
		return -1;
	}
	pthread_once(&exit_once, register_exit);
	pthread_mutex_lock(&live_mu);
	pg->next = live;
	live = pg;
	pthread_mutex_unlock(&live_mu);
	return 0;
}

void
jd_pg_stop(struct jd_pg *pg)
{
	int st;

	if (pg == NULL || pg->owner != getpid() || pg->guard_fd < 0)
		return;
	live_remove(pg);
	script_stop(pg->dir);
	/* The guard finds the directory gone and exits at once. */
	close(pg->guard_fd);
	pg->guard_fd = -1;
	for (int i = 0; i < 600; i++) { /* 60 s: pg.sh's own waits are bounded */
		pid_t r = waitpid(pg->guard_pid, &st, WNOHANG);

		if (r == pg->guard_pid || (r < 0 && errno != EINTR))
			break;
		if (i == 599) {
			fprintf(stderr, "pg: guard %d still running; killed\n",
			        (int)pg->guard_pid);
			kill(pg->guard_pid, SIGKILL);
			waitpid(pg->guard_pid, &st, 0);
		}
		sleep_ms(100);
	}
	pg->guard_pid = 0;
	pg->server_pid = 0;
}

bool
jd_pg_running(const struct jd_pg *pg)
{
	return pg->server_pid > 0 && kill(pg->server_pid, 0) == 0;
}

int
jd_pg_sql(const struct jd_pg *pg, const char *uri, const char *sql,
          char *out, size_t outlen)
{
	char psql[300], *res = NULL;
	char *argv[] = {psql, "-X", "-A", "-t", "-q", "-v", "ON_ERROR_STOP=1",
	                "-d", (char *)(uri != NULL ? uri : pg->uri), "-c",
	                (char *)sql, NULL};
	int st;

	snprintf(psql, sizeof(psql), "%s/psql", pg->bin);
	st = run_capture(argv, &res);
	if (st < 0 || !WIFEXITED(st) || WEXITSTATUS(st) != 0) {
		fprintf(stderr, "pg: psql failed (status %d) on: %s\n", st, sql);
		free(res);
		return -1;
	}
	if (out != NULL && outlen > 0) {
		size_t n = res != NULL ? strlen(res) : 0;

		while (n > 0 && res[n - 1] == '\n')
			n--;
		if (n >= outlen)
			n = outlen - 1;
		if (n > 0)
			memcpy(out, res, n);
		out[n] = '\0';
	}
	free(res);
	return 0;
}

/* What psql prints for an SQL NULL in jd_pg_sql_value(): no text value
 * holds these control bytes. */
#define NULL_MARK "\x01jd-null\x01"

int
jd_pg_sql_value(const struct jd_pg *pg, const char *uri, const char *sql,
                char **value)
{
	char psql[300], *res = NULL;
	/* -z -0: fields and records end in NUL bytes, so the first field is
	 * the first C string of the output, whatever newlines it holds. */
	char *argv[] = {psql, "-X", "-A", "-t", "-q", "-z", "-0", "-P",
	                "null=" NULL_MARK, "-v", "ON_ERROR_STOP=1", "-d",
	                (char *)(uri != NULL ? uri : pg->uri), "-c",
	                (char *)sql, NULL};
	size_t len = 0;
	int st;

	*value = NULL;
	snprintf(psql, sizeof(psql), "%s/psql", pg->bin);
	st = run_capture_len(argv, &res, &len);
	if (st < 0 || !WIFEXITED(st) || WEXITSTATUS(st) != 0) {
		fprintf(stderr, "pg: psql failed (status %d) on: %s\n", st, sql);
		free(res);
		return -1;
	}
	/* No output: no row (a row prints at least its field's NUL). */
	if (len > 0 && strcmp(res, NULL_MARK) != 0) {
		*value = strdup(res);
		if (*value == NULL) {
			fprintf(stderr, "pg: out of memory\n");
			free(res);
			return -1;
		}
	}
	free(res);
	return 0;
}

int
jd_pg_sql_int(const struct jd_pg *pg, const char *uri, const char *sql,
              int64_t *out)
{
	char buf[128], *end;
	long long v;

	if (jd_pg_sql(pg, uri, sql, buf, sizeof(buf)) != 0)
		return -1;
	buf[strcspn(buf, "|\n")] = '\0';
	errno = 0;
	v = strtoll(buf, &end, 10);
	if (buf[0] == '\0' || *end != '\0' || errno != 0) {
		fprintf(stderr, "pg: not an integer: '%s' from: %s\n", buf, sql);
		return -1;
	}
	*out = v;
	return 0;
}

int
jd_pg_create_db(const struct jd_pg *pg, const char *name, char *uri,
                size_t urilen)
{
	char sql[256], admin[600];
	size_t n = strlen(name);
	int len;

	if (n == 0 || n > 63 || strspn(name, "abcdefghijklmnopqrstuvwxyz"
	                               "0123456789_") != n) {
		fprintf(stderr, "pg: bad database name '%s'\n", name);
		return -1;
	}
	/* The maintenance database, postgres, beside jobd; no NOTICE
	 * about the database that was not there to drop. */
	snprintf(admin, sizeof(admin), "postgresql://postgres@127.0.0.1:%d/"
	         "postgres?options=-cclient_min_messages%%3Dwarning", pg->port);
	snprintf(sql, sizeof(sql), "DROP DATABASE IF EXISTS %s", name);
	if (jd_pg_sql(pg, admin, sql, NULL, 0) != 0)
		return -1;
	snprintf(sql, sizeof(sql), "CREATE DATABASE %s", name);
	if (jd_pg_sql(pg, admin, sql, NULL, 0) != 0)
		return -1;
	len = snprintf(uri, urilen, "postgresql://postgres@127.0.0.1:%d/%s",
	               pg->port, name);
	return len > 0 && (size_t)len < urilen ? 0 : -1;
}

/* A name jd_pg_create_db() would accept. */
static bool
db_name_ok(const char *name)
{
	size_t n = strlen(name);

	return n > 0 && n <= 63 && strspn(name, "abcdefghijklmnopqrstuvwxyz"
	                                  "0123456789_") == n;
}

int
jd_pg_drop_db(const struct jd_pg *pg, const char *name)
{
	char sql[256], admin[600];

	if (!db_name_ok(name)) {
		fprintf(stderr, "pg: bad database name '%s'\n", name);
		return -1;
	}
	snprintf(admin, sizeof(admin), "postgresql://postgres@127.0.0.1:%d/"
	         "postgres?options=-cclient_min_messages%%3Dwarning", pg->port);
	snprintf(sql, sizeof(sql), "DROP DATABASE IF EXISTS %s WITH (FORCE)",
	         name);
	return jd_pg_sql(pg, admin, sql, NULL, 0);
}

int
jd_pg_attach(struct jd_pg *pg, const char *uri, const char *bin)
{
	static const char prefix[] = "postgresql://postgres@127.0.0.1:";
	char *end;
	long port;

	memset(pg, 0, sizeof(*pg));
	pg->guard_fd = -1;
	if (uri == NULL || bin == NULL || bin[0] == '\0' ||
	    strncmp(uri, prefix, sizeof(prefix) - 1) != 0)
		goto bad;
	errno = 0;
	port = strtol(uri + sizeof(prefix) - 1, &end, 10);
	if (errno != 0 || port <= 0 || port > 65535 || *end != '/')
		goto bad;
	if (snprintf(pg->uri, sizeof(pg->uri), "%s", uri) >= (int)sizeof(pg->uri)
	    || snprintf(pg->bin, sizeof(pg->bin), "%s", bin) >=
	    (int)sizeof(pg->bin))
		goto bad;
	pg->port = (int)port;
	return 0;
bad:
	fprintf(stderr, "pg: cannot use the server '%s' (psql in '%s')\n",
	        uri ? uri : "(none)", bin ? bin : "(none)");
	memset(pg, 0, sizeof(*pg));
	pg->guard_fd = -1;
	return -1;
}
