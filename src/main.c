/*
 * main.c - jobd's entry point: command line, start-up in dependency order,
 * signals, systemd notifications and orderly shutdown.  The only file that
 * exits the process (with sysexits codes).
 *
 * Start-up: config -> open-files limit -> tokens -> store (locked, so
 * that one daemon owns it; migrated) -> HTTP listener bound -> writer
 * recovery -> workers -> writer thread -> READY=1 -> answering.  Recovery
 * waits for the listener: a daemon that cannot serve must not requeue the
 * jobs of the store.  Shutdown (SIGTERM/SIGINT): stop
 * accepting, POST answers 503, workers finish or are stopped and requeued
 * within shutdown_grace, the writer flushes, then everything closes.
 */
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sysexits.h>
#include <systemd/sd-daemon.h>
#include <time.h>
#include <unistd.h>

#include "api.h"
#include "auth.h"
#include "client.h"
#include "clock.h"
#include "config.h"
#include "err.h"
#include "callback.h"
#include "events.h"
#include "handler_plugin.h"
#include "http.h"
#include "log.h"
#include "pgroups.h"
#include "sse.h"
#include "store.h"
#include "workers.h"
#include "writer.h"

#include "version.h"
#define DEFAULT_CONFIG "/etc/jobd/jobd.conf"

static bool
listen_is_loopback(const char *listen)
{
	return strncmp(listen, "127.", 4) == 0 ||
	       strncmp(listen, "[::1]:", 6) == 0 ||
	       strncmp(listen, "localhost:", 10) == 0;
}

/*
 * SIGHUP: reloads the handler sections from the same file.  A bad file is
 * rejected whole and the running config kept.  Other sections are read at
 * start-up only; changes there are reported as needing a restart.  Logs
 * go to stderr (journald), so there is no log file to reopen.
 */
static void
reload(const char *path, const struct config *base, auth *au)
{
	struct config *next = NULL;
	char err[8192], keys[1024];
	size_t ntokens = 0;

	if (config_load(path, &next, err, sizeof(err)) != 0) {
		for (char *line = strtok(err, "\n"); line;
		     line = strtok(NULL, "\n"))
			log_err("config", "%s", line);
		log_err("main", "SIGHUP: %s rejected; the running "
		        "configuration is kept", path);
		return;
	}
	/* Plugins of new or changed sections load now; loaded ones stay
	 * (a changed .so file at the same path needs a restart). */
	if (handler_plugin_attach(next, err, sizeof(err)) != 0) {
		for (char *line = strtok(err, "\n"); line;
		     line = strtok(NULL, "\n"))
			log_err("config", "%s", line);
		log_err("main", "SIGHUP: %s rejected; the running "
		        "configuration is kept", path);
		config_free(next);
		return;
	}
	/* The tokens first: a bad file keeps the old ones and the rest of
	 * the reload goes on (revoking a token must not need a restart). */
	if (au != NULL && next->auth.tokens_file != NULL) {
		if (auth_reload(au, next->auth.tokens_file, &ntokens, err,
		                sizeof(err)) == 0)
			log_notice("main", "SIGHUP: %zu token(s) from %s",
			           ntokens, next->auth.tokens_file);
		else
			log_err("auth", "SIGHUP: %s; the tokens in use are kept",
			        err);
	}
	log_set_level((int)next->server.log_level);
	if (config_restart_changes(base, next, keys, sizeof(keys)) > 0)
		log_warn("main", "SIGHUP: these changes take effect at the next "
		         "restart: %s", keys);
	log_notice("main", "SIGHUP: reloaded %zu handler(s) from %s; they "
	           "apply to attempts started from now on", next->nhandlers,
	           path);
	/* Schedules added, removed or changed apply at once (the thread is
	 * poked); a removed one's row stays in the store. */
	log_notice("main", "SIGHUP: %zu schedule(s) in effect",
	           next->nschedules);
	config_set_current(next);
}

static void
usage(FILE *f)
{
	fprintf(f,
	        "usage: jobd [--config FILE] [--check-config]\n"
	        "       jobd --version | --help | --config-reference\n"
	        "       jobd COMMAND [ARGS] [OPTIONS]   the client (jobd help)\n"
	        "\n"
	        "  -c, --config FILE     configuration file (default %s)\n"
	        "  -t, --check-config    validate the configuration, print "
	        "\"config OK\" and exit\n"
	        "  -V, --version         print the version and exit\n"
	        "  -h, --help            print this help and exit\n"
	        "      --config-reference[=markdown|mdoc]  print every "
	        "configuration key\n", DEFAULT_CONFIG);
}

/* --config-reference: Markdown (README) or mdoc (jobd.conf(5)). */
static int
write_reference(const char *format)
{
	if (format == NULL || strcmp(format, "markdown") == 0)
		config_write_reference(stdout);
	else if (strcmp(format, "mdoc") == 0)
		config_write_mdoc(stdout);
	else {
		fprintf(stderr, "jobd: --config-reference: unknown format "
		        "\"%s\" (markdown, mdoc)\n", format);
		return EX_USAGE;
	}
	return fflush(stdout) == 0 && !ferror(stdout) ? EX_OK : EX_IOERR;
}

/* Open files an exec attempt may hold (pipes, pidfd) while it runs, and
 * the daemon's own (store, sockets, epoll, eventfds, logs). */
#define FDS_PER_WORKER 8
#define FDS_BASE 64

/*
 * Raises the soft open-files limit to the hard one (systemd's default soft
 * limit is 1024, far below server.max_connections), and warns when even
 * that is below what the configured connections and workers may need:
 * past it, accept() and exec attempts fail with EMFILE.
 */
static void
raise_nofile(const struct config *cfg)
{
	struct rlimit rl;
	rlim_t need = (rlim_t)cfg->server.max_connections +
	              (rlim_t)cfg->workers.threads * FDS_PER_WORKER + FDS_BASE;

	if (getrlimit(RLIMIT_NOFILE, &rl) != 0) {
		log_warn("main", "getrlimit(RLIMIT_NOFILE): %m");
		return;
	}
	if (rl.rlim_cur < rl.rlim_max) {
		struct rlimit up = {.rlim_cur = rl.rlim_max,
		                    .rlim_max = rl.rlim_max};
		FILE *f;
		unsigned long long nr_open;
		/* An infinite hard limit cannot be the soft one: the
		 * kernel's ceiling is fs.nr_open. */
		if (up.rlim_cur == RLIM_INFINITY &&
		    (f = fopen("/proc/sys/fs/nr_open", "re")) != NULL) {
			if (fscanf(f, "%llu", &nr_open) == 1)
				up.rlim_cur = (rlim_t)nr_open;
			fclose(f);
		}
		if (setrlimit(RLIMIT_NOFILE, &up) == 0) {
			log_info("main", "open files limit raised from %llu to "
			         "%llu", (unsigned long long)rl.rlim_cur,
			         (unsigned long long)up.rlim_cur);
			rl.rlim_cur = up.rlim_cur;
		} else {
			log_warn("main", "cannot raise the open files limit "
			         "from %llu to %llu: %m",
			         (unsigned long long)rl.rlim_cur,
			         (unsigned long long)up.rlim_cur);
		}
	}
	if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < need)
		log_warn("main", "the open files limit is %llu, below the %llu "
		         "that server.max_connections = %lld and workers.threads "
		         "= %lld may need: past it, connections are refused and "
		         "exec attempts fail (EMFILE); raise LimitNOFILE= (or "
		         "ulimit -n) or lower max_connections",
		         (unsigned long long)rl.rlim_cur, (unsigned long long)need,
		         (long long)cfg->server.max_connections,
		         (long long)cfg->workers.threads);
}

/*
 * --check-config: every check the start-up makes except opening the store
 * and binding - the file, the tokens file, the store's path, the listen
 * address, the TLS files - then the warnings.  Errors and warnings go to
 * stderr, "config OK" to stdout.  Frees cfg; returns the exit status.
 */
static int
check_config(struct config *cfg)
{
	char err[8192], warn[8192];
	int status = EX_OK;
	auth *au = NULL;

	if (cfg->auth.tokens_file != NULL) {
		if (auth_load(cfg->auth.tokens_file, &au, err,
		              sizeof(err)) != 0) {
			fprintf(stderr, "%s: [auth] tokens_file: %s\n", cfg->file,
			        err);
			status = EX_CONFIG;
		}
		auth_free(au);
	} else if (!listen_is_loopback(cfg->server.listen)) {
		fprintf(stderr, "warning: %s: no [auth] tokens_file and listen "
		        "= %s is not loopback: anyone who can reach it can "
		        "submit and cancel jobs\n", cfg->file, cfg->server.listen);
	}
	if (store_check_path(cfg->store.path, err, sizeof(err)) != 0) {
		fprintf(stderr, "%s: [store] path: %s\n", cfg->file, err);
		status = EX_CONFIG;
	}
	if (config_check_runtime(cfg, err, sizeof(err)) != 0) {
		fprintf(stderr, "%s\n", err);
		status = EX_CONFIG;
	}
	/* Plugins are loaded and initialised as at start-up, then let go
	 * (quietly: only problems are printed). */
	log_set_level(LOG_WARN_);
	if (handler_plugin_attach(cfg, err, sizeof(err)) != 0) {
		fprintf(stderr, "%s\n", err);
		status = EX_CONFIG;
	}
	handler_plugin_unload_all();
	if (config_warnings(cfg, warn, sizeof(warn)) > 0)
		for (char *line = strtok(warn, "\n"); line;
		     line = strtok(NULL, "\n"))
			fprintf(stderr, "warning: %s\n", line);
	if (status == EX_OK)
		printf("config OK\n");
	config_free(cfg);
	return status;
}

/* What the writer's hooks reach: the workers and the waiters. */
struct hooks {
	worker_pool *pool;
	events *ev;
	writer *w;
	store *st;
	schedules *sc;
};

static void
on_dispatch(struct writer_op **ops, size_t n, void *arg)
{
	struct hooks *h = arg;

	worker_pool_dispatch(h->pool, ops, n);
}

static bool
on_cancel(const char *id, void *arg)
{
	struct hooks *h = arg;

	return worker_pool_cancel(h->pool, id);
}

static void
read_gauges(struct metrics_gauges *g, void *arg)
{
	struct hooks *h = arg;

	writer_counts(h->w, g->jobs);
	g->workers_busy = worker_pool_busy(h->pool);
	g->waiters = (int64_t)events_count(h->ev);
	g->leader = store_is_leader(h->st);
	g->nodes = store_live_nodes(h->st);
}

static void
on_event(const char *id, int status, void *arg)
{
	struct hooks *h = arg;

	events_publish(h->ev, id, status);
}

/* Another node asked to cancel a job running here. */
static void
on_remote_cancel(void *arg, const char *id)
{
	struct hooks *h = arg;

	worker_pool_cancel(h->pool, id);
}

/* This node was declared dead: its attempts run elsewhere now. */
static void
on_fenced(void *arg)
{
	struct hooks *h = arg;

	worker_pool_fence(h->pool);
}

/* Due work may wait in the shared store: the writer claims if it can. */
static void
on_work(void *arg)
{
	struct hooks *h = arg;

	writer_poke(h->w);
	/* Also when this node has just become the leader. */
	schedules_leader_hint(h->sc);
}

/* The leader's writer wakes at the earliest delayed job's run_at. */
static void
on_due_at(void *arg, int64_t run_at_us)
{
	struct hooks *h = arg;

	writer_due_at(h->w, run_at_us);
}

/* Another node finished a job: for the waiters and /events here. */
static void
on_remote_finished(void *arg, const char *id, int status)
{
	struct hooks *h = arg;
	struct job job;

	events_publish(h->ev, id, status);
	if (!sse_remote_new(events_sse(h->ev), id, status))
		return; /* told before */
	job_init(&job);
	if (store_get(h->st, id, &job, NULL, 0) == 0)
		events_job(h->ev, id, job.type, status, job.attempt);
	else
		events_job(h->ev, id, "", status, -1);
	job_clear(&job);
}

/* Another node started a job (seen at its heartbeat): for /events. */
static void
on_remote_started(void *arg, const char *id, const char *type, int attempt)
{
	struct hooks *h = arg;

	events_job(h->ev, id, type, JOB_RUNNING, attempt);
}

/* Another node's job reported progress (its store write, seen at the
 * heartbeat): for /events. */
static void
on_remote_progress(void *arg, const char *id, const char *type,
                   const char *json)
{
	struct hooks *h = arg;

	events_progress(h->ev, id, type, json);
}

/* The store's counts, for admission and /metrics (a shared store). */
static void
on_store_counts(void *arg, int64_t queued, int64_t waiting, int64_t running)
{
	struct hooks *h = arg;

	writer_set_counts(h->w, queued, waiting, running);
}

/* Every state change here, for /events: what the writer did not know
 * (a cancel's type and attempt) is read from the store (rare). */
static void
on_change(const char *id, const char *type, int status, int attempt,
          void *arg)
{
	struct hooks *h = arg;
	struct job job;

	if (type[0] != '\0' && attempt >= 0) {
		events_job(h->ev, id, type, status, attempt);
		return;
	}
	job_init(&job);
	if (store_get(h->st, id, &job, NULL, 0) == 0)
		events_job(h->ev, id, type[0] ? type : job.type, status,
		           attempt >= 0 ? attempt : job.attempt);
	else
		events_job(h->ev, id, type, status, attempt);
	job_clear(&job);
}

/* Everything the daemon runs, for the steps below. */
struct daemon {
	const char *config_path;
	struct config *cfg;
	store *st;
	writer *w;
	worker_pool *pool;
	events *ev;
	sse *sse;
	auth *au;
	api *a;
	schedules *sc;
	progress *prog;
	callback *cb;
	http_server *srv;
	struct hooks hooks;
	sigset_t sigs;          /* what the main thread waits for */
};

/*
 * Parses the command line.  Returns -1 to go on (daemon, or --check-config
 * in *check_only), else the exit status (--help, --version, bad usage).
 */
static int
parse_args(int argc, char **argv, const char **config_path, bool *check_only)
{
	static const struct option longopts[] = {
		{"config", required_argument, NULL, 'c'},
		{"check-config", no_argument, NULL, 't'},
		{"version", no_argument, NULL, 'V'},
		{"help", no_argument, NULL, 'h'},
		{"config-reference", optional_argument, NULL, 'R'},
		{NULL, 0, NULL, 0},
	};
	int opt;

	while ((opt = getopt_long(argc, argv, "c:tVh", longopts, NULL)) != -1) {
		switch (opt) {
		case 'c': *config_path = optarg; break;
		case 't': *check_only = true; break;
		case 'V': printf("jobd %s\n", JOBD_VERSION); return EX_OK;
		case 'h': usage(stdout); return EX_OK;
		case 'R':
			/* "--config-reference mdoc" would print Markdown. */
			if (optarg == NULL && optind < argc &&
			    argv[optind][0] != '-') {
				fprintf(stderr, "jobd: the format follows an "
				        "'=': --config-reference=%s\n",
				        argv[optind]);
				return EX_USAGE;
			}
			return write_reference(optarg);
		default: usage(stderr); return EX_USAGE;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "jobd: unexpected argument: %s\n", argv[optind]);
		usage(stderr);
		return EX_USAGE;
	}
	return -1;
}

/*
 * Signals are handled by the main thread, with sigwait; every thread
 * blocks them (threads inherit the mask).
 */
static void
block_signals(sigset_t *sigs)
{
	sigset_t chld;

	sigemptyset(sigs);
	sigaddset(sigs, SIGTERM);
	sigaddset(sigs, SIGINT);
	sigaddset(sigs, SIGHUP);
	sigaddset(sigs, SIGUSR2); /* the writer: the store failed with EIO */
	pthread_sigmask(SIG_BLOCK, sigs, NULL);
	signal(SIGPIPE, SIG_IGN);
	/* Exec attempts are reaped through pidfds: nobody needs SIGCHLD.
	 * Blocked everywhere, else each child's exit interrupts main's
	 * sigtimedwait (the worker that spawned it blocks every signal, so
	 * the kernel queues it for another thread instead of dropping it). */
	sigemptyset(&chld);
	sigaddset(&chld, SIGCHLD);
	pthread_sigmask(SIG_BLOCK, &chld, NULL);
}

/*
 * Opens the store, binds, recovers and starts the threads, in that order:
 * a daemon that cannot serve leaves the store's running jobs alone, and
 * the writer starts last because it claims work as soon as it runs.
 * Returns EX_OK or the exit status (the reason is logged).
 */
/*
 * Where exec attempts' process groups are recorded: beside a store file
 * (<path>.pgroups), or for a store that is no file (PostgreSQL) in
 * systemd's StateDirectory (<dir>/jobd.pgroups); "" when neither.
 */
static const char *
pgroups_base(const char *store_path, char *buf, size_t len)
{
	const char *state = getenv("STATE_DIRECTORY");

	if (strstr(store_path, "://") == NULL)
		return store_path;
	if (state == NULL || state[0] != '/')
		return "";
	/* systemd may list several, separated by colons: the first. */
	snprintf(buf, len, "%.*s/jobd", (int)strcspn(state, ":"), state);
	return buf;
}

static int
daemon_start(struct daemon *d)
{
	const struct config *cfg = d->cfg;
	char err[8192], pgbase[4096];
	int rc;

	if (cfg->auth.tokens_file != NULL) {
		rc = auth_load(cfg->auth.tokens_file, &d->au, err, sizeof(err));
		if (rc != 0) {
			log_err("auth", "%s", err);
			return EX_CONFIG;
		}
	} else if (!listen_is_loopback(cfg->server.listen) &&
	           sd_listen_fds(0) <= 0) {
		log_warn("auth", "WARNING: no [auth] tokens_file and listening "
		         "on %s, which is not loopback: ANYONE who can reach it "
		         "can submit and cancel jobs", cfg->server.listen);
	}
	block_signals(&d->sigs);
	/* Plugins before the store: one that cannot load refuses the start
	 * with the store untouched.  After block_signals: threads a plugin's
	 * init starts must not take the daemon's signals. */
	if (handler_plugin_attach(d->cfg, err, sizeof(err)) != 0) {
		for (char *line = strtok(err, "\n"); line;
		     line = strtok(NULL, "\n"))
			log_err("config", "%s", line);
		return EX_CONFIG;
	}

	struct store_options so = {
		.durability_full = cfg->store.durability == DURABILITY_FULL,
		.pool = (int)cfg->store.pool,
		.node = cfg->store.node,
		.lease_ms = cfg->store.lease_ms,
		.retention_ms = cfg->store.retention_ms,
	};
	rc = store_open(cfg->store.path, &so, &d->st, err, sizeof(err));
	if (rc != 0) {
		char shown[1024];
		store_display(cfg->store.path, shown, sizeof(shown));
		log_err("main", "cannot open the store %s: %s", shown,
		        err);
		return EX_CANTCREAT;
	}
	d->w = writer_new(d->st, cfg);
	d->pool = d->w ? worker_pool_new(cfg, d->w) : NULL;
	d->ev = d->pool ? events_new((size_t)cfg->server.max_waiters) : NULL;
	d->sse = d->ev ? sse_new((size_t)cfg->server.event_buffer, d->ev)
	                : NULL;
	d->a = d->sse ? api_new(cfg, d->st, d->w, d->ev, d->au) : NULL;
	d->sc = d->a ? schedules_new(d->st, d->w) : NULL;
	d->prog = d->sc ? progress_new(d->w, d->ev) : NULL;
	d->cb = d->prog ? callback_new(d->w, d->st, cfg) : NULL;
	if (d->cb == NULL) {
		log_err("main", "out of memory");
		return EX_OSERR;
	}
	d->hooks = (struct hooks){.pool = d->pool, .ev = d->ev, .w = d->w,
	                          .st = d->st, .sc = d->sc};
	api_set_schedules(d->a, d->sc);
	api_set_progress(d->a, d->prog);
	worker_pool_set_progress(d->pool, d->prog);
	store_set_hooks(d->st, &(struct store_hooks){
		.cancel = on_remote_cancel, .finished = on_remote_finished,
		.fence = on_fenced, .work = on_work, .due_at = on_due_at,
		.started = on_remote_started, .progress = on_remote_progress,
		.counts = on_store_counts, .arg = &d->hooks});
	writer_set_hooks(d->w, on_dispatch, on_cancel, on_event, &d->hooks);
	writer_set_change_hook(d->w, on_change);
	events_set_sse(d->ev, d->sse);
	writer_set_outbox_hook(d->w, callback_kick, d->cb);
	api_set_gauges(d->a, read_gauges, &d->hooks);
	rc = http_open(cfg, d->a, &d->srv, err, sizeof(err));
	if (rc != 0) {
		log_err("main", "%s", err);
		return EX_UNAVAILABLE;
	}
	if (pgroups_reap(pgroups_base(cfg->store.path, pgbase,
	                              sizeof(pgbase)),
	                 (int)cfg->workers.threads, err, sizeof(err)) != 0)
		log_warn("main", "%s; exec attempts are not recorded", err);
	rc = writer_recover(d->w, err, sizeof(err));
	if (rc == JOBD_EUNAVAIL) {
		/* PostgreSQL not up yet: serve 503s and /readyz false while
		 * the writer retries (it recovers before anything else). */
		log_warn("main", "the store is unreachable (%s): jobd waits "
		         "for it, not ready until then", err);
	} else if (rc != 0) {
		log_err("main", "recovery failed: %s", err);
		return EX_IOERR;
	}
	if (events_start(d->ev) != 0 || sse_start(d->sse) != 0 ||
	    worker_pool_start(d->pool) != 0 ||
	    writer_start(d->w) != 0 || schedules_start(d->sc) != 0 ||
	    progress_start(d->prog) != 0 || callback_start(d->cb) != 0) {
		log_err("main", "cannot start threads");
		return EX_OSERR;
	}
	/* READY=1 before the first answer: the store is open, recovery has
	 * run, the socket listens (the kernel queues connections); requests
	 * are answered from http_serve() on. */
	sd_notifyf(0, "READY=1\nSTATUS=ready: %lld queued\nMAINPID=%lu",
	           (long long)writer_queued(d->w), (unsigned long)getpid());
	rc = http_serve(d->srv, err, sizeof(err));
	if (rc != 0) {
		log_err("main", "%s", err);
		sd_notify(0, "STOPPING=1");
		return EX_UNAVAILABLE;
	}
	char shown[1024];
	store_display(cfg->store.path, shown, sizeof(shown));
	log_notice("main", "jobd %s ready: store %s (durability %s), %lld "
	           "worker(s), %zu handler(s), %lld job(s) queued",
	           JOBD_VERSION, shown,
	           cfg->store.durability == DURABILITY_FULL ? "full" : "normal",
	           (long long)cfg->workers.threads, cfg->nhandlers,
	           (long long)writer_queued(d->w));
	return EX_OK;
}

/* Once per tick under systemd: STATUS=, and WATCHDOG=1 while the workers
 * live and the writer is not stuck in one transaction (a hung store gets
 * the daemon restarted). */
static void
notify_tick(struct daemon *d, bool watchdog)
{
	int64_t counts[JOB_NSTATUS];
	bool alive = worker_pool_alive(d->pool) && !writer_stuck(d->w, 20000);

	writer_counts(d->w, counts);
	sd_notifyf(0, "STATUS=%lld queued, %d running, %zu waiting%s%s",
	           (long long)counts[JOB_QUEUED], worker_pool_busy(d->pool),
	           events_count(d->ev), writer_healthy(d->w)
	           ? "" : "; the last store write failed",
	           watchdog && alive ? "\nWATCHDOG=1" : "");
	if (watchdog && !alive)
		log_err("main", "not pinging the watchdog: %s",
		        worker_pool_alive(d->pool) ? "the writer is stuck"
		                                   : "a worker died");
}

/*
 * Fail-stop after a store I/O error: nothing the writer had not committed
 * was acknowledged; exit without touching the store again and let systemd
 * restart jobd (SQLite recovers its WAL when the file is reopened).
 */
static _Noreturn void
fail_stop(struct daemon *d)
{
	log_err("main", "the store failed with an I/O error; exiting with "
	        "status %d so that jobd restarts on a cleanly reopened store",
	        EX_IOERR);
	sd_notify(0, "STOPPING=1\nSTATUS=store I/O error");
	/* The writer answers 503 without writing from now on; stop taking
	 * work, answer everybody, then leave without closing the store
	 * (closing could checkpoint the WAL into a file whose state is
	 * unknown). */
	api_set_draining(d->a);
	store_set_hooks(d->st, &(struct store_hooks){0});
	schedules_stop(d->sc);
	events_stop(d->ev);
	writer_drain(d->w);
	worker_pool_stop(d->pool, 0);
	callback_stop(d->cb);
	writer_stop(d->w);
	/* Let the 503s go out; the exit closes the sockets. */
	http_wait_answered(d->srv, 1000);
	_exit(EX_IOERR);
}

/*
 * The main thread's life: wait for signals (and, under systemd, wake every
 * few seconds for STATUS= and the watchdog) until SIGTERM or SIGINT.
 */
static void
wait_for_stop(struct daemon *d)
{
	uint64_t wd_usec = 0;
	bool watchdog = sd_watchdog_enabled(0, &wd_usec) > 0 && wd_usec > 0;
	bool notify = getenv("NOTIFY_SOCKET") != NULL;
	int64_t tick_ms = 5000;

	if (watchdog && (int64_t)(wd_usec / 2000) < tick_ms)
		tick_ms = (int64_t)(wd_usec / 2000);
	int64_t next_tick = clock_mono_ms() + tick_ms;
	for (;;) {
		siginfo_t si;
		int64_t left = next_tick - clock_mono_ms();
		if (left < 0)
			left = 0;
		struct timespec ts = {.tv_sec = left / 1000,
		                      .tv_nsec = (left % 1000) * 1000000L};
		int sig = notify ? sigtimedwait(&d->sigs, &si, &ts)
		                 : sigwaitinfo(&d->sigs, &si);
		if (sig < 0 && clock_mono_ms() < next_tick)
			continue; /* interrupted early: not yet time to notify */
		if (sig < 0) {
			/* Once per tick: the notify socket is a datagram
			 * socket that blocks when its reader lags. */
			next_tick = clock_mono_ms() + tick_ms;
			notify_tick(d, watchdog);
			continue;
		}
		if (sig == SIGHUP) {
			reload(d->config_path, d->cfg, d->au);
			writer_poke(d->w); /* handlers or caps may have changed */
			schedules_poke(d->sc); /* and schedules */
			continue;
		}
		if (sig == SIGUSR2 && si.si_pid == getpid())
			fail_stop(d);
		if (sig == SIGUSR2)
			continue;
		log_notice("main", "%s: shutting down",
		           sig == SIGTERM ? "SIGTERM" : "SIGINT");
		return;
	}
}

/* Shutdown (DESIGN §6): stop taking work, let running attempts finish
 * for up to shutdown_grace, then stop them (their jobs go back). */
static void
daemon_drain(struct daemon *d)
{
	sd_notify(0, "STOPPING=1\nSTATUS=shutting down");
	/* Connections are still answered until the exit, but no job is
	 * taken any more (POST answers 503).  libmicrohttpd 0.9.75's
	 * MHD_quiesce_daemon() can abort the process with a thread pool on
	 * epoll ("Failed to remove listen FD from epoll set"), so it is not
	 * used. */
	api_set_draining(d->a);
	schedules_stop(d->sc); /* its submission in flight is answered */
	events_stop(d->ev); /* every waiter gets its answer now */
	sse_stop(d->sse);   /* and every /events stream its end */
	writer_drain(d->w);
	worker_pool_stop(d->pool, d->cfg->workers.shutdown_grace_ms);
	progress_stop(d->prog); /* the attempts' ends carry the rest */
	callback_stop(d->cb); /* deliveries in flight are sent again later */
	writer_stop(d->w);
	log_notice("main", "stopped: %lld job(s) queued",
	           (long long)writer_queued(d->w));
}

/* Frees what daemon_start made, after a stop or a failed start. */
static void
daemon_free(struct daemon *d, int status)
{
	/* The store's heartbeat calls into the pool and events: no more. */
	if (d->st != NULL)
		store_set_hooks(d->st, &(struct store_hooks){0});
	/* Every waiting request has been answered (events_stop, writer_stop);
	 * give libmicrohttpd the moment it needs to send those answers. */
	http_wait_answered(d->srv, 2000);
	http_stop(d->srv);
	if (d->pool != NULL && status != EX_OK) {
		writer_drain(d->w);
		worker_pool_stop(d->pool, 0);
	}
	schedules_free(d->sc); /* before the writer it submits to */
	progress_stop(d->prog);
	callback_stop(d->cb);  /* gives its deliveries back through the writer */
	if (d->w != NULL)
		writer_stop(d->w);
	callback_free(d->cb);  /* after the writer, which kicks it */
	if (d->ev != NULL)
		events_stop(d->ev);
	sse_stop(d->sse);
	worker_pool_free(d->pool);
	handler_plugin_unload_all(); /* no worker runs any more */
	if (d->ev != NULL)
		events_set_sse(d->ev, NULL);
	sse_free(d->sse);
	events_free(d->ev);
	writer_free(d->w);
	progress_free(d->prog); /* the writer has answered every op */
	api_free(d->a);
	auth_free(d->au);
	store_close(d->st);
	config_set_current(NULL);
	config_release(d->cfg);
}

int
main(int argc, char **argv)
{
	struct daemon d = {.config_path = DEFAULT_CONFIG};
	bool check_only = false;
	char err[8192];
	int rc, status;

	/* A command word (or nothing at all): the client (client.h). */
	if (client_selected(argc, argv))
		return client_main(argc, argv);
	status = parse_args(argc, argv, &d.config_path, &check_only);
	if (status >= 0)
		return status;
	rc = config_load(d.config_path, &d.cfg, err, sizeof(err));
	if (rc != 0) {
		if (check_only) {
			fprintf(stderr, "%s\n", err);
		} else {
			/* One log record per error line. */
			for (char *line = strtok(err, "\n"); line;
			     line = strtok(NULL, "\n"))
				log_err("config", "%s", line);
		}
		return rc == JOBD_ESYS ? EX_NOINPUT : EX_CONFIG;
	}
	if (check_only)
		return check_config(d.cfg);
	/* cfg stays the base config (main's reference); handler sections
	 * are read through config_acquire() so that SIGHUP can swap them. */
	d.cfg->refs = 1;
	config_set_current(d.cfg);
	log_set_level((int)d.cfg->server.log_level);
	if (config_warnings(d.cfg, err, sizeof(err)) > 0)
		for (char *line = strtok(err, "\n"); line;
		     line = strtok(NULL, "\n"))
			log_warn("config", "%s", line);
	raise_nofile(d.cfg);

	status = daemon_start(&d);
	if (status == EX_OK) {
		wait_for_stop(&d);
		daemon_drain(&d);
	}
	daemon_free(&d, status);
	return status;
}
