/*
 * harness.c - start, stop and talk to the real jobd (see harness.h).
 *
 * Readiness is a datagram, not a delay: each jd binds an abstract unix
 * datagram socket, passes it to the daemon as NOTIFY_SOCKET, and waits
 * (poll, bounded) for the daemon's sd_notify("READY=1").  Process exit is
 * awaited on a pidfd.  The only timed pause is jd_pause_ms(), used between
 * two polls of the API.
 *
 * Cleaning up after a failed test: Check ends a failed forked test with
 * _exit(), skipping its teardown, then kills the test's process group.
 * The daemon stays in that group on purpose (and PR_SET_PDEATHSIG covers
 * a test killed some other way); its directory lies under the run's root
 * (jd_global_init), which the runner process removes at exit.  Every jd
 * is also on a list that an atexit() handler walks, for tests that end by
 * exit() with a daemon still running.
 *
 * PostgreSQL (JOBD_TEST_STORE=pg): one server per run, a database per jd.
 * The server belongs to whoever started it (tests/pg/with_server.sh, or
 * the runner process through jd_global_init), never to a test: a database
 * a failed test leaves behind goes with the server.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/pidfd.h>
#include <sys/prctl.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"
#include "pg.h"

extern char **environ;

struct jd_client {
	CURL *curl;
	int port;
};

/* ---- bookkeeping for atexit ---- */

#define MAX_LIVE 64

static pthread_mutex_t live_mu = PTHREAD_MUTEX_INITIALIZER;
static jd *live[MAX_LIVE];
static pid_t live_owner[MAX_LIVE];
static pthread_once_t init_once = PTHREAD_ONCE_INIT;

static void init_once_fn(void);

/* The run's PostgreSQL server (JOBD_TEST_STORE=pg), set up once per
 * process: attached from the environment, or started by the runner. */
static struct jd_pg store_pg;
static bool store_pg_ok;
static pthread_mutex_t store_mu = PTHREAD_MUTEX_INITIALIZER;

static void remove_tree(const char *dir);
static void dump_log_tail(const jd *d, size_t max);

static void
cleanup_at_exit(void)
{
	pthread_mutex_lock(&live_mu);
	for (int i = 0; i < MAX_LIVE; i++) {
		jd *d = live[i];
		if (d == NULL || live_owner[i] != getpid())
			continue;
		if (d->pid > 0) {
			kill(d->pid, SIGKILL);
			waitpid(d->pid, NULL, 0);
			d->pid = -1;
			fprintf(stderr, "harness: the test ended with the "
			        "daemon still running; its log:\n");
			dump_log_tail(d, 4096);
		}
		if (getenv("JOBD_KEEP") == NULL) {
			remove_tree(d->dir);
			if (d->pg_db[0] != '\0' && !d->db_borrowed &&
			    store_pg_ok)
				jd_pg_drop_db(&store_pg, d->pg_db);
		}
		live[i] = NULL;
	}
	pthread_mutex_unlock(&live_mu);
}

static char root_dir[256];
static pid_t root_owner;

static void
remove_root_at_exit(void)
{
	if (root_dir[0] == '\0' || root_owner != getpid())
		return;
	if (getenv("JOBD_KEEP") != NULL)
		fprintf(stderr, "harness: kept %s\n", root_dir);
	else
		remove_tree(root_dir);
}

bool
jd_store_is_pg(void)
{
	const char *s = getenv("JOBD_TEST_STORE");

	return s != NULL && strcmp(s, "pg") == 0;
}

/*
 * The run's server: the one named by JOBD_TEST_PG_URI and JOBD_TEST_PG_BIN,
 * else one started here (and exported, so that forked tests and their
 * children use it).  NULL, said on stderr, when there is none.
 */
static struct jd_pg *
store_server(void)
{
	struct jd_pg *pg = NULL;
	const char *uri, *bin;
	int rc;

	pthread_mutex_lock(&store_mu);
	if (store_pg_ok) {
		pg = &store_pg;
		goto out;
	}
	uri = getenv("JOBD_TEST_PG_URI");
	bin = getenv("JOBD_TEST_PG_BIN");
	if (uri != NULL && uri[0] != '\0') {
		if (jd_pg_attach(&store_pg, uri, bin) != 0)
			goto out;
	} else {
		rc = jd_pg_start(&store_pg);
		if (rc != 0) {
			fprintf(stderr, "harness: JOBD_TEST_STORE=pg but %s\n",
			        rc == 77 ? "this machine has no PostgreSQL "
			        "server (scripts/deps.sh installs it)"
			                 : "the PostgreSQL server did not start");
			goto out;
		}
		setenv("JOBD_TEST_PG_URI", store_pg.uri, 1);
		setenv("JOBD_TEST_PG_BIN", store_pg.bin, 1);
	}
	store_pg_ok = true;
	pg = &store_pg;
out:
	pthread_mutex_unlock(&store_mu);
	return pg;
}

int
jd_global_init(void)
{
	const char *tmp = getenv("TMPDIR");
	const char *store = getenv("JOBD_TEST_STORE");

	pthread_once(&init_once, init_once_fn);
	if (store != NULL && store[0] != '\0' && strcmp(store, "pg") != 0 &&
	    strcmp(store, "sqlite") != 0) {
		fprintf(stderr, "harness: JOBD_TEST_STORE=%s: expected pg or "
		        "sqlite\n", store);
		return -1;
	}
	/* In the runner, before Check forks: every test shares it. */
	if (jd_store_is_pg() && store_server() == NULL)
		return -1;
	if (root_dir[0] != '\0')
		return 0;
	snprintf(root_dir, sizeof(root_dir), "%s/jobd-itest-XXXXXX",
	         tmp && tmp[0] ? tmp : "/tmp");
	if (mkdtemp(root_dir) == NULL) {
		fprintf(stderr, "harness: mkdtemp %s: %s\n", root_dir,
		        strerror(errno));
		root_dir[0] = '\0';
		return -1;
	}
	root_owner = getpid();
	setenv("JOBD_ITEST_ROOT", root_dir, 1);
	atexit(remove_root_at_exit);
	return 0;
}

static void
init_once_fn(void)
{
	curl_global_init(CURL_GLOBAL_DEFAULT);
	atexit(cleanup_at_exit);
}

static void
live_add(jd *d)
{
	pthread_mutex_lock(&live_mu);
	for (int i = 0; i < MAX_LIVE; i++)
		if (live[i] == NULL) {
			live[i] = d;
			live_owner[i] = getpid();
			break;
		}
	pthread_mutex_unlock(&live_mu);
}

static void
live_remove(jd *d)
{
	pthread_mutex_lock(&live_mu);
	for (int i = 0; i < MAX_LIVE; i++)
		if (live[i] == d)
			live[i] = NULL;
	pthread_mutex_unlock(&live_mu);
}

/* ---- time ---- */

int64_t
jd_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t
jd_mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void
jd_pause_ms(int ms)
{
	struct timespec ts = {.tv_sec = ms / 1000,
	                      .tv_nsec = (long)(ms % 1000) * 1000000};

	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

/* ---- files ---- */

static int
rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	if (remove(path) != 0 && errno != ENOENT)
		fprintf(stderr, "harness: remove %s: %s\n", path,
		        strerror(errno));
	return 0;
}

static void
remove_tree(const char *dir)
{
	if (dir[0] == '\0')
		return;
	nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

static void
dump_log_tail(const jd *d, size_t max)
{
	char buf[8192];
	int fd = open(d->log_path, O_RDONLY | O_CLOEXEC);
	off_t size;
	ssize_t n;

	if (fd < 0)
		return;
	if (max > sizeof(buf))
		max = sizeof(buf);
	size = lseek(fd, 0, SEEK_END);
	lseek(fd, size > (off_t)max ? size - (off_t)max : 0, SEEK_SET);
	fprintf(stderr, "---- %s (tail) ----\n", d->log_path);
	while ((n = read(fd, buf, sizeof(buf))) > 0)
		fwrite(buf, 1, (size_t)n, stderr);
	fprintf(stderr, "---- end of log ----\n");
	close(fd);
}

static int
write_config(jd *d, const struct jd_opts *o)
{
	FILE *f = fopen(d->conf_path, "w");

	if (f == NULL) {
		fprintf(stderr, "harness: %s: %s\n", d->conf_path,
		        strerror(errno));
		return -1;
	}
	fprintf(f, "; written by tests/integration/harness.c\n"
	        "[server]\nlisten = 127.0.0.1:%d\n"
	        "[store]\npath = %s\n"
	        "[workers]\nthreads = %d\n",
	        d->port, d->db_path, o->threads > 0 ? o->threads : 4);
	if (!o->no_default_handlers)
		fputs("[handler.noop]\nbuiltin = noop\n"
		      "[handler.echo]\nbuiltin = echo\n"
		      "[handler.sleep]\nbuiltin = sleep\n"
		      "[handler.fail]\nbuiltin = fail\nmax_attempts = 3\n"
		      "backoff_base = 10ms\nbackoff_max = 50ms\n", f);
	if (o->extra != NULL)
		fprintf(f, "%s\n", o->extra);
	if (fclose(f) != 0) {
		fprintf(stderr, "harness: %s: %s\n", d->conf_path,
		        strerror(errno));
		return -1;
	}
	return 0;
}

/* ---- sockets ---- */

static int
free_port(void)
{
	struct sockaddr_in sa = {.sin_family = AF_INET};
	socklen_t len = sizeof(sa);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	int port = -1;

	if (fd < 0)
		return -1;
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	sa.sin_port = 0;
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0 &&
	    getsockname(fd, (struct sockaddr *)&sa, &len) == 0)
		port = ntohs(sa.sin_port);
	close(fd);
	return port;
}

static int
notify_socket(jd *d)
{
	static unsigned counter;
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	unsigned rnd = 0;
	size_t n;
	int fd;

	if (getrandom(&rnd, sizeof(rnd), 0) != (ssize_t)sizeof(rnd))
		rnd = (unsigned)jd_mono_ms();
	snprintf(d->notify_name, sizeof(d->notify_name),
	         "jobd-itest-%ld-%u-%08x", (long)getpid(), ++counter, rnd);
	fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return -1;
	n = strlen(d->notify_name);
	sa.sun_path[0] = '\0'; /* abstract: no file to clean up */
	memcpy(sa.sun_path + 1, d->notify_name, n);
	if (bind(fd, (struct sockaddr *)&sa,
	         (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + n))
	    != 0) {
		fprintf(stderr, "harness: bind notify socket: %s\n",
		        strerror(errno));
		close(fd);
		return -1;
	}
	d->notify_fd = fd;
	return 0;
}

/* ---- daemon ---- */

/*
 * Gives d a database of its own on the run's server, named after its
 * directory (jobd-itest-AbC123 made by process 4242 -> jd_4242_7_abc123:
 * PostgreSQL folds names to lower case, so the pid and a counter keep
 * two live jds apart), and points db_path at it.  0 or -1.
 */
static int
make_pg_db(jd *d)
{
	static unsigned counter;
	const char *base = strrchr(d->dir, '-');
	struct jd_pg *pg = store_server();
	char name[64];
	size_t n;

	if (pg == NULL)
		return -1;
	base = base != NULL ? base + 1 : "x";
	n = (size_t)snprintf(name, sizeof(name), "jd_%ld_%u_%s",
	                     (long)getpid(),
	                     __atomic_add_fetch(&counter, 1, __ATOMIC_RELAXED),
	                     base);
	if (n >= sizeof(name))
		n = sizeof(name) - 1;
	for (size_t i = 0; i < n; i++) {
		char c = name[i];

		if (c >= 'A' && c <= 'Z')
			name[i] = (char)(c - 'A' + 'a');
		else if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9')))
			name[i] = '_';
	}
	if (jd_pg_create_db(pg, name, d->db_path, sizeof(d->db_path)) != 0) {
		fprintf(stderr, "harness: cannot create the database %s\n",
		        name);
		return -1;
	}
	snprintf(d->pg_db, sizeof(d->pg_db), "%s", name);
	return 0;
}

jd *
jd_new(const struct jd_opts *opts)
{
	struct jd_opts none = {0};
	const char *tmp = getenv("JOBD_ITEST_ROOT");
	jd *d;

	pthread_once(&init_once, init_once_fn);
	if (opts == NULL)
		opts = &none;
	d = calloc(1, sizeof(*d));
	if (d == NULL)
		return NULL;
	d->notify_fd = -1;
	d->pid = -1;
	if (tmp == NULL || tmp[0] == '\0')
		tmp = getenv("TMPDIR");
	snprintf(d->dir, sizeof(d->dir), "%s/jobd-itest-XXXXXX",
	         tmp && tmp[0] ? tmp : "/tmp");
	if (mkdtemp(d->dir) == NULL) {
		fprintf(stderr, "harness: mkdtemp %s: %s\n", d->dir,
		        strerror(errno));
		free(d);
		return NULL;
	}
	live_add(d);
	snprintf(d->conf_path, sizeof(d->conf_path), "%s/jobd.conf", d->dir);
	snprintf(d->db_path, sizeof(d->db_path), "%s/jobs.db", d->dir);
	snprintf(d->log_path, sizeof(d->log_path), "%s/jobd.log", d->dir);
	if (opts->share_store != NULL && opts->share_store->pg_db[0]) {
		snprintf(d->db_path, sizeof(d->db_path), "%s",
		         opts->share_store->db_path);
		snprintf(d->pg_db, sizeof(d->pg_db), "%s",
		         opts->share_store->pg_db);
		d->db_borrowed = true;
	} else if (jd_store_is_pg() && make_pg_db(d) != 0) {
		goto fail;
	}
	d->port = free_port();
	if (d->port <= 0) {
		fprintf(stderr, "harness: no free port: %s\n", strerror(errno));
		goto fail;
	}
	if (notify_socket(d) != 0 || write_config(d, opts) != 0)
		goto fail;
	d->client = jd_client_new(d->port);
	if (d->client == NULL)
		goto fail;
	return d;
fail:
	jd_free(d);
	return NULL;
}

/* Reads every waiting datagram; true when one contained `what`. */
static bool
drain_notify(jd *d, const char *what)
{
	char buf[4096];
	bool seen = false;
	ssize_t n;

	while ((n = recv(d->notify_fd, buf, sizeof(buf) - 1, 0)) >= 0) {
		buf[n] = '\0';
		if (what != NULL && strstr(buf, what) != NULL)
			seen = true;
	}
	return seen;
}

/* Reaps the daemon if it has exited; true when it has. */
static bool
reap_if_exited(jd *d, int *status)
{
	int st;

	if (d->pid <= 0)
		return true;
	if (waitpid(d->pid, &st, WNOHANG) == d->pid) {
		d->pid = -1;
		d->wait_status = st;
		if (status != NULL)
			*status = st;
		return true;
	}
	return false;
}

int
jd_wait_notify(jd *d, const char *what, int timeout_ms)
{
	int64_t deadline = jd_mono_ms() + timeout_ms;

	for (;;) {
		struct pollfd pfd = {.fd = d->notify_fd, .events = POLLIN};
		int64_t left = deadline - jd_mono_ms();
		if (drain_notify(d, what))
			return 0;
		if (left <= 0)
			return -1;
		/* Wake at least every 100 ms to notice a daemon that died. */
		if (poll(&pfd, 1, left > 100 ? 100 : (int)left) < 0 &&
		    errno != EINTR)
			return -1;
		if (pfd.revents == 0 && reap_if_exited(d, NULL)) {
			return drain_notify(d, what) ? 0 : -1;
		}
	}
}

/*
 * The daemon's environment: ours, minus systemd's, plus NOTIFY_SOCKET
 * and, on PostgreSQL, STATE_DIRECTORY=<dir> (where jobd keeps
 * jobd.pgroups when its store is no file, as systemd's StateDirectory=
 * would give it).  *ours gets what was allocated here (caller frees).
 */
static char **
child_env(const jd *d, char **ours, char **state)
{
	static const char *const drop[] = {
		"NOTIFY_SOCKET=", "LISTEN_FDS=", "LISTEN_PID=",
		"LISTEN_FDNAMES=", "WATCHDOG_USEC=", "WATCHDOG_PID=",
		"STATE_DIRECTORY=", NULL,
	};
	size_t n = 0, k = 0;
	char **env;

	*state = NULL;
	while (environ[n] != NULL)
		n++;
	env = calloc(n + 3, sizeof(*env));
	if (env == NULL)
		return NULL;
	for (size_t i = 0; i < n; i++) {
		bool skip = false;
		for (int j = 0; drop[j] != NULL; j++)
			if (strncmp(environ[i], drop[j], strlen(drop[j])) == 0)
				skip = true;
		if (!skip)
			env[k++] = environ[i];
	}
	if (asprintf(&env[k], "NOTIFY_SOCKET=@%s", d->notify_name) < 0) {
		free(env);
		return NULL;
	}
	*ours = env[k++];
	if (d->pg_db[0] != '\0') {
		if (asprintf(&env[k], "STATE_DIRECTORY=%s", d->dir) < 0) {
			free(*ours);
			*ours = NULL;
			free(env);
			return NULL;
		}
		*state = env[k];
	}
	return env;
}

int
jd_start(jd *d)
{
	const char *bin = getenv("JOBD_BIN");
	char **env = NULL, *notify_env = NULL, *state_env = NULL;
	pid_t parent = getpid(), pid;
	int log_fd = -1, null_fd = -1, rc = -1;

	if (bin == NULL || bin[0] == '\0')
		bin = "build/jobd";
	if (d->pid > 0) {
		fprintf(stderr, "harness: the daemon already runs\n");
		return -1;
	}
	if (access(bin, X_OK) != 0) {
		fprintf(stderr, "harness: %s: %s (set JOBD_BIN)\n", bin,
		        strerror(errno));
		return -1;
	}
	drain_notify(d, NULL);
	env = child_env(d, &notify_env, &state_env);
	log_fd = open(d->log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC,
	              0644);
	null_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
	if (env == NULL || log_fd < 0 || null_fd < 0) {
		fprintf(stderr, "harness: preparing the daemon: %s\n",
		        strerror(errno));
		goto out;
	}
	fflush(NULL);
	pid = fork();
	if (pid < 0) {
		fprintf(stderr, "harness: fork: %s\n", strerror(errno));
		goto out;
	}
	if (pid == 0) {
		/* Async-signal-safe calls only from here on. */
		char *argv[] = {(char *)bin, (char *)"--config",
		                d->conf_path, NULL};
		sigset_t none;
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (getppid() != parent)
			_exit(127);
		sigemptyset(&none);
		sigprocmask(SIG_SETMASK, &none, NULL);
		signal(SIGPIPE, SIG_DFL);
		signal(SIGTERM, SIG_DFL);
		signal(SIGINT, SIG_DFL);
		if (dup2(null_fd, 0) < 0 || dup2(log_fd, 1) < 0 ||
		    dup2(log_fd, 2) < 0)
			_exit(127);
		close_range(3, ~0U, 0);
		execve(bin, argv, env);
		_exit(127);
	}
	d->pid = pid;
	if (jd_wait_notify(d, "READY=1", JD_READY_TIMEOUT_MS) != 0) {
		if (reap_if_exited(d, NULL))
			fprintf(stderr, "harness: jobd exited before READY=1 "
			        "(wait status 0x%x)\n", d->wait_status);
		else
			fprintf(stderr, "harness: no READY=1 from jobd within "
			        "%d ms\n", JD_READY_TIMEOUT_MS);
		jd_kill9(d);
		dump_log_tail(d, 4096);
		goto out;
	}
	rc = 0;
out:
	free(notify_env);
	free(state_env);
	free(env);
	if (log_fd >= 0)
		close(log_fd);
	if (null_fd >= 0)
		close(null_fd);
	return rc;
}

jd *
jd_launch(const struct jd_opts *opts)
{
	jd *d = jd_new(opts);

	if (d != NULL && jd_start(d) != 0) {
		jd_free(d);
		return NULL;
	}
	return d;
}

static int
decode_status(int st)
{
	if (WIFEXITED(st))
		return WEXITSTATUS(st);
	if (WIFSIGNALED(st))
		return 128 + WTERMSIG(st);
	return -1;
}

/* Waits up to timeout_ms (< 0: forever) for the daemon to exit. */
static int
wait_exit(jd *d, int timeout_ms)
{
	int st = 0;
	int pfd;

	if (d->pid <= 0)
		return -1;
	if (timeout_ms >= 0) {
		pfd = pidfd_open(d->pid, 0);
		if (pfd >= 0) {
			struct pollfd p = {.fd = pfd, .events = POLLIN};
			int64_t deadline = jd_mono_ms() + timeout_ms;
			int left, r;
			do {
				left = (int)(deadline - jd_mono_ms());
				r = poll(&p, 1, left > 0 ? left : 0);
			} while (r < 0 && errno == EINTR);
			close(pfd);
			if (r == 0)
				return -1;
		} else {
			/* No pidfd: poll waitpid, bounded. */
			int64_t deadline = jd_mono_ms() + timeout_ms;
			while (!reap_if_exited(d, &st)) {
				if (jd_mono_ms() >= deadline)
					return -1;
				jd_pause_ms(10);
			}
			return decode_status(st);
		}
	}
	while (waitpid(d->pid, &st, 0) < 0) {
		if (errno != EINTR) {
			d->pid = -1;
			return -1;
		}
	}
	d->pid = -1;
	d->wait_status = st;
	return decode_status(st);
}

int
jd_stop(jd *d, int timeout_ms)
{
	int rc;

	if (d->pid <= 0)
		return -1;
	kill(d->pid, SIGTERM);
	rc = wait_exit(d, timeout_ms);
	if (rc < 0 && d->pid > 0) {
		fprintf(stderr, "harness: jobd did not stop within %d ms "
		        "of SIGTERM; killing it\n", timeout_ms);
		jd_kill9(d);
		return -1;
	}
	return rc;
}

int
jd_kill9(jd *d)
{
	if (d->pid <= 0)
		return -1;
	kill(d->pid, SIGKILL);
	return wait_exit(d, -1);
}

void
jd_free(jd *d)
{
	if (d == NULL)
		return;
	if (d->pid > 0)
		jd_kill9(d);
	jd_client_free(d->client);
	if (d->notify_fd >= 0)
		close(d->notify_fd);
	if (getenv("JOBD_KEEP") != NULL) {
		fprintf(stderr, "harness: kept %s\n", d->dir);
		if (d->pg_db[0] != '\0')
			fprintf(stderr, "harness: kept the database %s\n",
			        d->db_path);
	} else {
		remove_tree(d->dir);
		if (d->pg_db[0] != '\0' && !d->db_borrowed &&
		    store_server() != NULL)
			jd_pg_drop_db(&store_pg, d->pg_db);
	}
	live_remove(d);
	free(d);
}

/* ---- HTTP ---- */

jd_client *
jd_client_new(int port)
{
	jd_client *c;

	pthread_once(&init_once, init_once_fn);
	c = calloc(1, sizeof(*c));
	if (c == NULL)
		return NULL;
	c->curl = curl_easy_init();
	if (c->curl == NULL) {
		free(c);
		return NULL;
	}
	c->port = port;
	return c;
}

void
jd_client_free(jd_client *c)
{
	if (c == NULL)
		return;
	curl_easy_cleanup(c->curl);
	free(c);
}

void
jd_resp_free(struct jd_resp *r)
{
	if (r == NULL)
		return;
	for (size_t i = 0; i < r->nheaders; i++) {
		free(r->headers[i].name);
		free(r->headers[i].value);
	}
	free(r->headers);
	free(r->body);
	cJSON_Delete(r->json);
	free(r);
}

static size_t
on_body(char *ptr, size_t size, size_t nmemb, void *arg)
{
	struct jd_resp *r = arg;
	size_t n = size * nmemb;
	char *b = realloc(r->body, r->body_len + n + 1);

	if (b == NULL)
		return 0;
	memcpy(b + r->body_len, ptr, n);
	r->body = b;
	r->body_len += n;
	r->body[r->body_len] = '\0';
	return n;
}

static void
clear_headers(struct jd_resp *r)
{
	for (size_t i = 0; i < r->nheaders; i++) {
		free(r->headers[i].name);
		free(r->headers[i].value);
	}
	r->nheaders = 0;
}

static size_t
on_header(char *ptr, size_t size, size_t nmemb, void *arg)
{
	struct jd_resp *r = arg;
	size_t n = size * nmemb, len = n, nlen;
	const char *colon, *v;
	struct jd_header *h;

	/* A new status line (after 100 Continue): start over. */
	if (n >= 5 && strncmp(ptr, "HTTP/", 5) == 0) {
		clear_headers(r);
		return n;
	}
	while (len > 0 && (ptr[len - 1] == '\r' || ptr[len - 1] == '\n'))
		len--;
	colon = memchr(ptr, ':', len);
	if (colon == NULL)
		return n;
	nlen = (size_t)(colon - ptr);
	v = colon + 1;
	while (v < ptr + len && (*v == ' ' || *v == '\t'))
		v++;
	h = realloc(r->headers, (r->nheaders + 1) * sizeof(*h));
	if (h == NULL)
		return 0;
	r->headers = h;
	h[r->nheaders].name = strndup(ptr, nlen);
	h[r->nheaders].value = strndup(v, (size_t)(ptr + len - v));
	if (h[r->nheaders].name == NULL || h[r->nheaders].value == NULL) {
		free(h[r->nheaders].name);
		free(h[r->nheaders].value);
		return 0;
	}
	r->nheaders++;
	return n;
}

static bool
has_header(const char *const headers[], const char *name)
{
	size_t n = strlen(name);

	for (size_t i = 0; headers != NULL && headers[i] != NULL; i++)
		if (strncasecmp(headers[i], name, n) == 0 &&
		    (headers[i][n] == ':' || headers[i][n] == ';'))
			return true;
	return false;
}

/* ---- the OpenAPI exchange log ---- */

/*
 * When JOBD_OPENAPI_LOG names a directory, every answer a suite receives
 * (jd_client_request, jd_raw) is appended to <dir>/<suite>.jsonl as one
 * JSON line: the request (method, target, the headers the description
 * mentions, the start of its body) and the answer (status, headers,
 * body), for tests/openapi/check.py to check against
 * openapi/openapi.json.  One write(2) with O_APPEND per line, so forked
 * tests and threads never interleave.  A body over JD_OAPI_BODY_MAX is
 * logged cut and marked (the checker does not validate it).
 */
#define JD_OAPI_BODY_MAX (4u << 20)
#define JD_OAPI_REQ_BODY_MAX (64u << 10)

static const char *const oapi_req_headers[] = {
	"Prefer", "Idempotency-Key", "Content-Type", "Last-Event-ID",
	"Authorization", NULL,
};

/* A request header's value from a "Name: value" list, or NULL. */
static const char *
oapi_find(const char *const headers[], const char *name)
{
	size_t n = strlen(name);

	for (size_t i = 0; headers != NULL && headers[i] != NULL; i++)
		if (strncasecmp(headers[i], name, n) == 0 &&
		    headers[i][n] == ':') {
			const char *v = headers[i] + n + 1;
			while (*v == ' ' || *v == '\t')
				v++;
			return v;
		}
	return NULL;
}

/* A string member from len bytes (which need not end in a NUL). */
static bool
oapi_add_bytes(cJSON *o, const char *name, const char *s, size_t len)
{
	char *copy = strndup(s ? s : "", s ? len : 0);
	bool ok = copy != NULL && cJSON_AddStringToObject(o, name, copy);

	free(copy);
	return ok;
}

static void
oapi_log(const char *via, const char *method, const char *target,
         const char *const req_headers[], const char *req_body,
         size_t req_body_len, const struct jd_resp *r)
{
	const char *dir = getenv("JOBD_OPENAPI_LOG");
	cJSON *o = NULL, *rq, *hs;
	char path[512], *line = NULL;
	size_t blen;
	int fd;

	if (dir == NULL || dir[0] == '\0' || r == NULL || r->status == 0)
		return;
	o = cJSON_CreateObject();
	if (o == NULL ||
	    !cJSON_AddStringToObject(o, "suite", program_invocation_short_name) ||
	    !cJSON_AddNumberToObject(o, "pid", (double)getpid()) ||
	    !cJSON_AddStringToObject(o, "via", via) ||
	    !cJSON_AddStringToObject(o, "method", method) ||
	    !cJSON_AddStringToObject(o, "target", target) ||
	    (rq = cJSON_AddObjectToObject(o, "request_headers")) == NULL)
		goto out;
	for (size_t i = 0; oapi_req_headers[i] != NULL; i++) {
		const char *v = oapi_find(req_headers, oapi_req_headers[i]);
		if (v != NULL && !cJSON_AddStringToObject(rq,
		                                          oapi_req_headers[i], v))
			goto out;
	}
	if (req_body != NULL &&
	    (!oapi_add_bytes(o, "request_body", req_body,
	                     req_body_len < JD_OAPI_REQ_BODY_MAX
	                     ? req_body_len : JD_OAPI_REQ_BODY_MAX) ||
	     !cJSON_AddBoolToObject(o, "request_body_cut",
	                            req_body_len > JD_OAPI_REQ_BODY_MAX)))
		goto out;
	if (!cJSON_AddNumberToObject(o, "status", (double)r->status) ||
	    (hs = cJSON_AddObjectToObject(o, "headers")) == NULL)
		goto out;
	for (size_t i = 0; i < r->nheaders; i++)
		if (!cJSON_AddStringToObject(hs, r->headers[i].name,
		                             r->headers[i].value))
			goto out;
	blen = r->body_len;
	if (blen > JD_OAPI_BODY_MAX || memchr(r->body, '\0', blen) != NULL)
		blen = strnlen(r->body, blen > JD_OAPI_BODY_MAX
		                        ? JD_OAPI_BODY_MAX : blen);
	if (!oapi_add_bytes(o, "body", r->body, blen) ||
	    !cJSON_AddBoolToObject(o, "body_cut", blen < r->body_len))
		goto out;
	line = cJSON_PrintUnformatted(o);
	if (line == NULL)
		goto out;
	snprintf(path, sizeof(path), "%s/%s.jsonl", dir,
	         program_invocation_short_name);
	fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
	if (fd >= 0) {
		size_t n = strlen(line);
		line[n] = '\n'; /* replaces the NUL: written by length */
		if (write(fd, line, n + 1) != (ssize_t)(n + 1))
			fprintf(stderr, "harness: %s: short write\n", path);
		close(fd);
	} else {
		fprintf(stderr, "harness: %s: %s\n", path, strerror(errno));
	}
out:
	free(line);
	cJSON_Delete(o);
}

/*
 * Logs what jd_raw sent and received: the request line of the bytes
 * sent, and the first answer parsed from the bytes received (nothing
 * when there is no status line).
 */
static void
oapi_log_raw(const char *bytes, size_t len, const char *answer)
{
	struct jd_resp r = {0};
	char method[32] = "", target[2048] = "";
	const char *eol, *sp1, *sp2, *head_end, *p;
	size_t hl;
	int nhdr = 0;

	if (getenv("JOBD_OPENAPI_LOG") == NULL || answer == NULL ||
	    strncmp(answer, "HTTP/1.", 7) != 0 || strlen(answer) < 12)
		return;
	/* The request line: METHOD SP target SP version. */
	eol = memchr(bytes, '\n', len);
	hl = eol ? (size_t)(eol - bytes) : len;
	sp1 = memchr(bytes, ' ', hl);
	sp2 = sp1 ? memchr(sp1 + 1, ' ', hl - (size_t)(sp1 + 1 - bytes)) : NULL;
	if (sp1 != NULL && (size_t)(sp1 - bytes) < sizeof(method))
		snprintf(method, sizeof(method), "%.*s", (int)(sp1 - bytes),
		         bytes);
	if (sp1 != NULL) {
		size_t tl = (sp2 ? (size_t)(sp2 - sp1) : hl -
		             (size_t)(sp1 - bytes)) - 1;
		snprintf(target, sizeof(target), "%.*s",
		         (int)(tl < sizeof(target) ? tl : sizeof(target) - 1),
		         sp1 + 1);
	}
	r.status = atoi(answer + 9);
	head_end = strstr(answer, "\r\n\r\n");
	p = strstr(answer, "\r\n");
	struct jd_header h[64];
	while (p != NULL && head_end != NULL && p < head_end && nhdr < 64) {
		const char *ls = p + 2, *le = strstr(ls, "\r\n"), *c;
		if (le == NULL || le > head_end + 2)
			break;
		c = memchr(ls, ':', (size_t)(le - ls));
		if (c != NULL) {
			const char *v = c + 1;
			while (v < le && (*v == ' ' || *v == '\t'))
				v++;
			h[nhdr].name = strndup(ls, (size_t)(c - ls));
			h[nhdr].value = strndup(v, (size_t)(le - v));
			if (h[nhdr].name == NULL || h[nhdr].value == NULL) {
				free(h[nhdr].name);
				free(h[nhdr].value);
				break;
			}
			nhdr++;
		}
		p = le;
	}
	r.headers = h;
	r.nheaders = (size_t)nhdr;
	r.body = (char *)(head_end ? head_end + 4 : "");
	r.body_len = strlen(r.body);
	/* Only the first answer's body (Content-Length), when said. */
	const char *cl = NULL;
	for (int i = 0; i < nhdr; i++)
		if (strcasecmp(h[i].name, "Content-Length") == 0)
			cl = h[i].value;
	if (cl != NULL && strtoul(cl, NULL, 10) < r.body_len)
		r.body_len = strtoul(cl, NULL, 10);
	oapi_log("raw", method[0] ? method : "-", target, NULL, NULL, 0, &r);
	for (int i = 0; i < nhdr; i++) {
		free(h[i].name);
		free(h[i].value);
	}
}

struct jd_resp *
jd_client_request(jd_client *c, const char *method, const char *path,
                  const char *const headers[], const char *body)
{
	struct jd_resp *r = calloc(1, sizeof(*r));
	struct curl_slist *list = NULL, *tmp;
	char url[2048];
	CURL *curl = c->curl;
	CURLcode cc;

	if (r == NULL)
		return NULL;
	r->body = calloc(1, 1);
	if (r->body == NULL) {
		free(r);
		return NULL;
	}
	if (strcmp(method, "POST") == 0 || strcmp(method, "PUT") == 0 ||
	    strcmp(method, "PATCH") == 0) {
		if (body == NULL)
			body = "";
	}
	for (size_t i = 0; headers != NULL && headers[i] != NULL; i++) {
		tmp = curl_slist_append(list, headers[i]);
		if (tmp == NULL)
			goto oom;
		list = tmp;
	}
	/* No Content-Type unless the test sends one (libcurl would add a
	 * form type), no Expect: 100-continue unless the test asks. */
	if (!has_header(headers, "Content-Type")) {
		if ((tmp = curl_slist_append(list, "Content-Type:")) == NULL)
			goto oom;
		list = tmp;
	}
	if (!has_header(headers, "Expect")) {
		if ((tmp = curl_slist_append(list, "Expect:")) == NULL)
			goto oom;
		list = tmp;
	}
	snprintf(url, sizeof(url), "http://127.0.0.1:%d%s", c->port, path);

	/* curl_easy_reset keeps the connection cache: keep-alive stays. */
	curl_easy_reset(curl);
	curl_easy_setopt(curl, CURLOPT_URL, url);
	curl_easy_setopt(curl, CURLOPT_PROXY, "");
	curl_easy_setopt(curl, CURLOPT_NOPROXY, "*");
	curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT_MS, 5000L);
	curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, 30000L);
	curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, r->error);
	curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(curl, CURLOPT_WRITEDATA, r);
	curl_easy_setopt(curl, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(curl, CURLOPT_HEADERDATA, r);
	curl_easy_setopt(curl, CURLOPT_HTTPHEADER, list);
	if (strcmp(method, "HEAD") == 0) {
		curl_easy_setopt(curl, CURLOPT_NOBODY, 1L);
	} else if (body != NULL) {
		curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE_LARGE,
		                 (curl_off_t)strlen(body));
		curl_easy_setopt(curl, CURLOPT_COPYPOSTFIELDS, body);
		if (strcmp(method, "POST") != 0)
			curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, method);
	} else if (strcmp(method, "GET") != 0) {
		curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, method);
	}
	cc = curl_easy_perform(curl);
	if (cc == CURLE_OK) {
		curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &r->status);
	} else {
		r->status = 0;
		if (r->error[0] == '\0')
			snprintf(r->error, sizeof(r->error), "%s",
			         curl_easy_strerror(cc));
	}
	oapi_log("curl", method, path, headers, body,
	         body != NULL ? strlen(body) : 0, r);
	/* The list must outlive the transfer only. */
	curl_easy_setopt(curl, CURLOPT_HTTPHEADER, NULL);
	curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, NULL);
	curl_slist_free_all(list);
	return r;
oom:
	curl_slist_free_all(list);
	jd_resp_free(r);
	return NULL;
}

struct jd_resp *
jd_request(jd *d, const char *method, const char *path,
           const char *const headers[], const char *body)
{
	return jd_client_request(d->client, method, path, headers, body);
}

const char *
jd_header(const struct jd_resp *r, const char *name)
{
	for (size_t i = 0; r != NULL && i < r->nheaders; i++)
		if (strcasecmp(r->headers[i].name, name) == 0)
			return r->headers[i].value;
	return NULL;
}

static const char *const json_ct[] = {
	"Content-Type: application/json", NULL,
};

char *
jd_client_submit(jd_client *c, const char *json, long *status_out)
{
	struct jd_resp *r = jd_client_request(c, "POST", "/jobs", json_ct,
	                                      json);
	char *id = NULL;

	if (status_out != NULL)
		*status_out = r ? r->status : 0;
	if (r != NULL && r->status == 202) {
		const char *s = jd_resp_str(r, "id");
		if (s != NULL)
			id = strdup(s);
	}
	jd_resp_free(r);
	return id;
}

char *
jd_submit(jd *d, const char *json)
{
	struct jd_resp *r = jd_request(d, "POST", "/jobs", json_ct, json);
	char *id = NULL;

	if (r != NULL && r->status == 202) {
		const char *s = jd_resp_str(r, "id");
		if (s != NULL)
			id = strdup(s);
	}
	if (id == NULL)
		fprintf(stderr, "harness: POST /jobs %s -> %ld %s %s\n", json,
		        r ? r->status : 0L, r ? r->body : "",
		        r ? r->error : "out of memory");
	jd_resp_free(r);
	return id;
}

struct jd_resp *
jd_wait_for_status(jd *d, const char *id, const char *status, int timeout_ms)
{
	int64_t deadline = jd_mono_ms() + timeout_ms;
	char path[128];

	snprintf(path, sizeof(path), "/jobs/%s", id);
	for (;;) {
		struct jd_resp *r = jd_request(d, "GET", path, NULL, NULL);
		const char *s = r && r->status == 200 ? jd_resp_str(r, "status")
		                                      : NULL;
		if (s != NULL && strcmp(s, status) == 0)
			return r;
		if (jd_mono_ms() >= deadline) {
			fprintf(stderr, "harness: job %s not %s within %d ms; "
			        "last answer %ld %s\n", id, status, timeout_ms,
			        r ? r->status : 0L, r ? r->body : "");
			jd_resp_free(r);
			return NULL;
		}
		jd_resp_free(r);
		jd_pause_ms(20);
	}
}

/* Parses the status line and, when the header block is complete, the
 * answer's total length; 0 when more bytes are needed. */
static size_t
answer_length(const char *buf, size_t len)
{
	const char *end = memmem(buf, len, "\r\n\r\n", 4);
	size_t head, body = 0;

	if (end == NULL)
		return 0;
	head = (size_t)(end - buf) + 4;
	for (const char *p = buf; p < end; ) {
		const char *eol = memmem(p, (size_t)(end - p) + 2, "\r\n", 2);
		if (eol == NULL)
			break;
		if ((size_t)(eol - p) > 15 &&
		    strncasecmp(p, "Content-Length:", 15) == 0)
			body = strtoul(p + 15, NULL, 10);
		p = eol + 2;
	}
	return head + body;
}

int
jd_raw(jd *d, const void *bytes, size_t len, int timeout_ms, char **answer)
{
	struct sockaddr_in sa = {.sin_family = AF_INET};
	int64_t deadline = jd_mono_ms() + timeout_ms;
	char *buf = NULL;
	size_t have = 0, cap = 0, sent = 0;
	int fd, status = -1;

	if (answer != NULL)
		*answer = NULL;
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	sa.sin_port = htons((uint16_t)d->port);
	fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
		fprintf(stderr, "harness: connect: %s\n", strerror(errno));
		close(fd);
		return -1;
	}
	/* Send everything we can; the server may answer and close early,
	 * which is fine: the answer is what we want. */
	while (sent < len) {
		ssize_t n = send(fd, (const char *)bytes + sent, len - sent,
		                 MSG_NOSIGNAL);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		sent += (size_t)n;
	}
	for (;;) {
		struct pollfd p = {.fd = fd, .events = POLLIN};
		int64_t left = deadline - jd_mono_ms();
		size_t want;
		ssize_t n;

		if (have > 0 && (want = answer_length(buf, have)) > 0 &&
		    have >= want)
			break;
		if (left <= 0)
			break;
		if (poll(&p, 1, (int)left) <= 0)
			continue;
		if (have + 4096 + 1 > cap) {
			size_t ncap = cap ? cap * 2 : 8192;
			char *b = realloc(buf, ncap);
			if (b == NULL)
				break;
			buf = b;
			cap = ncap;
		}
		n = recv(fd, buf + have, cap - have - 1, 0);
		if (n <= 0)
			break; /* EOF, or a reset after the answer */
		have += (size_t)n;
		buf[have] = '\0';
	}
	close(fd);
	if (have >= 12 && strncmp(buf, "HTTP/1.", 7) == 0)
		status = atoi(buf + 9);
	if (buf != NULL)
		oapi_log_raw(bytes, len, buf);
	if (answer != NULL && buf != NULL) {
		*answer = buf;
		buf = NULL;
	}
	free(buf);
	return status;
}

/* ---- JSON ---- */

cJSON *
jd_json(struct jd_resp *r)
{
	if (r == NULL)
		return NULL;
	if (r->json == NULL && r->body_len > 0)
		r->json = cJSON_ParseWithLength(r->body, r->body_len);
	return r->json;
}

const char *
jd_str(const cJSON *obj, const char *field)
{
	const cJSON *it = cJSON_GetObjectItemCaseSensitive(obj, field);

	return cJSON_IsString(it) ? it->valuestring : NULL;
}

double
jd_num(const cJSON *obj, const char *field, double def)
{
	const cJSON *it = cJSON_GetObjectItemCaseSensitive(obj, field);

	return cJSON_IsNumber(it) ? it->valuedouble : def;
}

const char *
jd_resp_str(struct jd_resp *r, const char *field)
{
	return jd_str(jd_json(r), field);
}

int64_t
jd_parse_time_ms(const char *s)
{
	static const char shape[] = "dddd-dd-ddTdd:dd:dd.dddZ";
	struct tm tm = {0};
	int ms;

	if (s == NULL || strlen(s) != sizeof(shape) - 1)
		return -1;
	for (size_t i = 0; shape[i] != '\0'; i++) {
		if (shape[i] == 'd' ? (s[i] < '0' || s[i] > '9')
		                    : s[i] != shape[i])
			return -1;
	}
	if (sscanf(s, "%4d-%2d-%2dT%2d:%2d:%2d.%3d", &tm.tm_year, &tm.tm_mon,
	           &tm.tm_mday, &tm.tm_hour, &tm.tm_min, &tm.tm_sec, &ms) != 7)
		return -1;
	if (tm.tm_mon < 1 || tm.tm_mon > 12 || tm.tm_mday < 1 ||
	    tm.tm_mday > 31 || tm.tm_hour > 23 || tm.tm_min > 59 ||
	    tm.tm_sec > 60)
		return -1;
	tm.tm_year -= 1900;
	tm.tm_mon -= 1;
	return (int64_t)timegm(&tm) * 1000 + ms;
}

/* ---- the store, SQLite or PostgreSQL ---- */

/* d's database for the harness's own SQL: search_path = jobd, so that
 * the suites name the table jobs on either store. */
static void
pg_sql_uri(const jd *d, char *uri, size_t len)
{
	snprintf(uri, len, "%s?options=-csearch_path%%3Djobd", d->db_path);
}

char *
jd_sql_text(jd *d, const char *sql)
{
	char uri[400], *v = NULL;
	sqlite3 *db;

	if (d->pg_db[0] != '\0') {
		if (store_server() == NULL)
			return NULL;
		pg_sql_uri(d, uri, sizeof(uri));
		jd_pg_sql_value(&store_pg, uri, sql, &v);
		return v;
	}
	db = jd_db_open(d);
	if (db == NULL)
		return NULL;
	v = jd_db_text(db, sql);
	sqlite3_close(db);
	return v;
}

long long
jd_sql_int(jd *d, const char *sql)
{
	char uri[400], *v = NULL, *end;
	sqlite3 *db = NULL;
	sqlite3_stmt *st = NULL;
	long long n = -1;

	if (d->pg_db[0] != '\0') {
		if (store_server() == NULL)
			return -1;
		pg_sql_uri(d, uri, sizeof(uri));
		if (jd_pg_sql_value(&store_pg, uri, sql, &v) != 0)
			return -1;
		if (v == NULL)
			goto none;
		errno = 0;
		n = strtoll(v, &end, 10);
		if (v[0] == '\0' || *end != '\0' || errno != 0) {
			fprintf(stderr, "harness: %s: not an integer: '%s'\n",
			        sql, v);
			n = -1;
		}
		free(v);
		return n;
	}
	db = jd_db_open(d);
	if (db == NULL)
		return -1;
	if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK) {
		fprintf(stderr, "harness: %s: %s\n", sql, sqlite3_errmsg(db));
		goto out;
	}
	if (sqlite3_step(st) != SQLITE_ROW ||
	    sqlite3_column_type(st, 0) == SQLITE_NULL)
		goto none;
	if (sqlite3_column_type(st, 0) != SQLITE_INTEGER) {
		fprintf(stderr, "harness: %s: not an integer: '%s'\n", sql,
		        (const char *)sqlite3_column_text(st, 0));
		goto out;
	}
	n = sqlite3_column_int64(st, 0);
	goto out;
none:
	fprintf(stderr, "harness: %s: no row, or NULL\n", sql);
out:
	sqlite3_finalize(st);
	sqlite3_close(db);
	return n;
}

int
jd_sql_exec(jd *d, const char *sql)
{
	char uri[400], *msg = NULL;
	sqlite3 *db;
	int rc;

	if (d->pg_db[0] != '\0') {
		if (store_server() == NULL)
			return -1;
		pg_sql_uri(d, uri, sizeof(uri));
		return jd_pg_sql(&store_pg, uri, sql, NULL, 0);
	}
	db = jd_db_open(d);
	if (db == NULL)
		return -1;
	rc = sqlite3_exec(db, sql, NULL, NULL, &msg);
	if (rc != SQLITE_OK)
		fprintf(stderr, "harness: %s: %s\n", sql,
		        msg ? msg : sqlite3_errstr(rc));
	sqlite3_free(msg);
	sqlite3_close(db);
	return rc == SQLITE_OK ? 0 : -1;
}

char *
jd_sql_literal(const char *s)
{
	size_t n = 2;
	char *out, *p;

	for (const char *q = s; *q != '\0'; q++)
		n += *q == '\'' ? 2 : 1;
	out = malloc(n + 1);
	if (out == NULL)
		return NULL;
	p = out;
	*p++ = '\'';
	for (const char *q = s; *q != '\0'; q++) {
		if (*q == '\'')
			*p++ = '\'';
		*p++ = *q;
	}
	*p++ = '\'';
	*p = '\0';
	return out;
}

int
jd_store_made(jd *d)
{
	if (d->pg_db[0] != '\0') {
		long long n = jd_sql_int(d, "SELECT count(*) FROM pg_namespace"
		                         " WHERE nspname = 'jobd'");

		return n < 0 ? -1 : n > 0;
	}
	if (access(d->db_path, F_OK) == 0)
		return 1;
	return errno == ENOENT ? 0 : -1;
}

/* ---- SQLite only ---- */

sqlite3 *
jd_db_open(jd *d)
{
	sqlite3 *db = NULL;
	int rc = sqlite3_open_v2(d->db_path, &db, SQLITE_OPEN_READWRITE, NULL);

	if (rc != SQLITE_OK) {
		fprintf(stderr, "harness: open %s: %s\n", d->db_path,
		        db ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
		sqlite3_close(db);
		return NULL;
	}
	sqlite3_busy_timeout(db, 5000);
	return db;
}

char *
jd_db_text(sqlite3 *db, const char *sql)
{
	sqlite3_stmt *st = NULL;
	char *out = NULL;

	if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK) {
		fprintf(stderr, "harness: %s: %s\n", sql, sqlite3_errmsg(db));
		return NULL;
	}
	if (sqlite3_step(st) == SQLITE_ROW &&
	    sqlite3_column_type(st, 0) != SQLITE_NULL)
		out = strdup((const char *)sqlite3_column_text(st, 0));
	sqlite3_finalize(st);
	return out;
}

long long
jd_db_int(sqlite3 *db, const char *sql)
{
	sqlite3_stmt *st = NULL;
	long long v = -1;

	if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK) {
		fprintf(stderr, "harness: %s: %s\n", sql, sqlite3_errmsg(db));
		return -1;
	}
	if (sqlite3_step(st) == SQLITE_ROW)
		v = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	return v;
}

char *
jd_read_file(const char *path, size_t *len_out)
{
	FILE *f = fopen(path, "re");
	char *buf = NULL;
	size_t len = 0, cap = 0, n;

	if (f == NULL)
		return NULL;
	do {
		if (len + 65536 + 1 > cap) {
			char *b;
			cap = cap ? cap * 2 : 131072;
			b = realloc(buf, cap);
			if (b == NULL) {
				free(buf);
				fclose(f);
				return NULL;
			}
			buf = b;
		}
		n = fread(buf + len, 1, 65536, f);
		len += n;
	} while (n > 0);
	fclose(f);
	buf[len] = '\0';
	if (len_out != NULL)
		*len_out = len;
	return buf;
}

double
jd_metric(jd *d, const char *series)
{
	struct jd_resp *r = jd_request(d, "GET", "/metrics", NULL, NULL);
	size_t n = strlen(series);
	double v = -1;

	for (const char *l = r->status == 200 ? r->body : ""; *l != '\0';) {
		if (strncmp(l, series, n) == 0 && l[n] == ' ') {
			v = strtod(l + n + 1, NULL);
			break;
		}
		l = strchr(l, '\n');
		if (l == NULL)
			break;
		l++;
	}
	jd_resp_free(r);
	return v;
}

bool
jd_wait_metric(jd *d, const char *series, double want, int timeout_ms)
{
	int64_t deadline = jd_mono_ms() + timeout_ms;
	double v;

	while ((v = jd_metric(d, series)) != want) {
		if (jd_mono_ms() > deadline) {
			fprintf(stderr, "%s is %g, expected %g\n", series, v,
			        want);
			return false;
		}
		jd_pause_ms(10);
	}
	return true;
}

char *
jd_wait_log(const jd *d, const char *needle, int timeout_ms)
{
	int64_t deadline = jd_mono_ms() + timeout_ms;

	for (;;) {
		char *log = jd_read_file(d->log_path, NULL);
		if (log != NULL && strstr(log, needle) != NULL)
			return log;
		free(log);
		if (jd_mono_ms() >= deadline)
			return NULL;
		jd_pause_ms(20);
	}
}

long
jd_proc_status(pid_t pid, const char *field)
{
	char path[64], line[256];
	size_t n = strlen(field);
	long v = -1;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%ld/status", (long)pid);
	f = fopen(path, "re");
	if (f == NULL)
		return -1;
	while (fgets(line, sizeof(line), f) != NULL)
		if (strncmp(line, field, n) == 0) {
			v = strtol(line + n, NULL, 10);
			break;
		}
	fclose(f);
	return v;
}

bool
jd_proc_gone(pid_t pid)
{
	while (waitpid(pid, NULL, WNOHANG) < 0 && errno == EINTR)
		;
	return kill(pid, 0) == -1 && errno == ESRCH;
}

long long
jd_sql_count_ids(jd *d, const char *ids, size_t stride, size_t n)
{
	long long present = 0;

	for (size_t from = 0; from < n; from += 2000) {
		size_t to = from + 2000 < n ? from + 2000 : n;
		size_t len = 96 + (to - from) * 41, used;
		char *sql = malloc(len);
		long long got;

		if (sql == NULL)
			return -1;
		used = (size_t)snprintf(sql, len, "SELECT count(*) FROM jobs "
		                        "WHERE id::text IN (");
		for (size_t i = from; i < to; i++)
			used += (size_t)snprintf(sql + used, len - used,
			                         "%s'%.36s'", i > from ? "," : "",
			                         ids + i * stride);
		snprintf(sql + used, len - used, ")");
		got = jd_sql_int(d, sql);
		free(sql);
		if (got < 0)
			return -1;
		present += got;
	}
	return present;
}
