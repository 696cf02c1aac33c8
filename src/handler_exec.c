/*
 * handler_exec.c - exec handlers: run a program for each attempt.
 *
 * The command is split into argv like shell words (shellwords.c) and run
 * with posix_spawn - never through a shell, and nothing from the job ever
 * becomes an argument.  The child gets its own session (so its own process
 * group), only fds 0-3 (closefrom 4; fd 3 is the progress pipe), an empty
 * signal mask with default dispositions, and a clean environment: PATH,
 * JOBD_JOB_ID, JOBD_JOB_TYPE, JOBD_ATTEMPT, JOBD_MAX_ATTEMPTS,
 * JOBD_DEPENDS_ON, JOBD_PROGRESS_FD=3 and the handler's env words.
 *
 * One poll loop services stdin (the payload), stdout (kept up to
 * max_output, the rest read and dropped), stderr (its last 4 KiB kept), fd
 * 3 (progress: lines, each a report when it is a JSON object of at most
 * 4 KiB, progress.h), a pidfd (the child's exit) and the context's eventfd
 * (cancel, shutdown).
 * Timeout and stop requests send SIGTERM to the process group and SIGKILL
 * after kill_grace.  When the child exits, the rest of its group is killed
 * before it is reaped (the zombie keeps the group id reserved), so no
 * process of a finished attempt outlives it; and the exit status alone
 * decides the outcome from then on.  While it runs, the group is recorded
 * (pgroups.c) so that a start after a crash of jobd can kill it.
 *
 * exec_run() finds the program, then spawn() starts it, io_loop()
 * services it until it is reaped and its output read, and decide() turns
 * that into the attempt's result.
 *
 * An attempt of a quick command costs little beside the spawn itself:
 * each worker thread keeps its last few command lines split into words
 * (and their env words) with the program's path; a payload that fits in
 * the pipe is written before the spawn; and jobd keeps its own copies of
 * the stdout, stderr and progress write ends until the child is reaped,
 * so that a quiet child's exit is one wake-up (the pidfd), not one for
 * the pipes' EOF and another for the pidfd.
 *
 * LOCKING: none.  Every worker thread may run attempts at once; the
 * command cache is thread-specific data, and spawn_attr is written once
 * (pthread_once) and only read after.
 */
#include <cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/pidfd.h>
#include <sys/wait.h>
#include <unistd.h>

#include "clock.h"
#include "err.h"
#include "handler.h"
#include "handler_ctx.h"
#include "log.h"
#include "pgroups.h"
#include "submit.h"
#include "utf8.h"
#include "shellwords.h"

#define EXEC_PATH "/usr/local/bin:/usr/bin:/bin"
#define STDERR_TAIL 4096
#define DRAIN_AFTER_EXIT_MS 1000
#define PROG_CACHE 4        /* command lines a worker thread keeps */
#define PATH_TTL_MS 1000    /* a PATH lookup is trusted this long */
#define ENV_OWN 7           /* environment strings made per attempt */
#define PROGRESS_FD 3       /* the child's end of the progress pipe */

/* A growable byte buffer with a cap; bytes past the cap are counted only. */
struct capbuf {
	char *data;
	size_t len, cap, limit;
	size_t dropped;
};

static int
capbuf_add(struct capbuf *b, const char *p, size_t n)
{
	size_t room = b->limit - b->len;
	size_t take = n < room ? n : room;

	if (take > 0) {
		if (b->len + take + 1 > b->cap) {
			size_t cap = b->cap ? b->cap : 4096;
			while (cap < b->len + take + 1)
				cap *= 2;
			if (cap > b->limit + 1)
				cap = b->limit + 1;
			char *d = realloc(b->data, cap);
			if (d == NULL)
				return JOBD_ENOMEM;
			b->data = d;
			b->cap = cap;
		}
		memcpy(b->data + b->len, p, take);
		b->len += take;
		b->data[b->len] = '\0';
	}
	b->dropped += n - take;
	return 0;
}

/* The last STDERR_TAIL bytes written. */
struct tail {
	char buf[STDERR_TAIL];
	size_t len;   /* bytes held (<= STDERR_TAIL) */
	size_t start; /* ring start */
};

static void
tail_add(struct tail *t, const char *p, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (t->len < STDERR_TAIL) {
			t->buf[(t->start + t->len) % STDERR_TAIL] = p[i];
			t->len++;
		} else {
			t->buf[t->start] = p[i];
			t->start = (t->start + 1) % STDERR_TAIL;
		}
	}
}

/* Results nested deeper than this are kept as a string. */
#define RESULT_MAX_DEPTH 64

/* stdout -> result: compact JSON when it parses, else a JSON string. */
static char *
make_result(const char *out, size_t len)
{
	cJSON *v;
	char *text = NULL, *clean;

	while (len > 0 && (out[len - 1] == '\n' || out[len - 1] == '\r' ||
	                   out[len - 1] == ' ' || out[len - 1] == '\t'))
		len--;
	if (len == 0)
		return NULL;
	/* JSON as the command wrote it (less whitespace): a re-print would
	 * round big numbers and cut strings at \u0000.  Anything else -
	 * not strict JSON, not UTF-8 - is kept as a string. */
	if (utf8_valid(out, len) &&
	    submit_json_strict(out, len, RESULT_MAX_DEPTH, NULL, 0) == 0)
		return submit_json_compact(out, len);
	clean = utf8_sanitize(out, len);
	if (clean == NULL)
		return NULL;
	v = cJSON_CreateString(clean);
	free(clean);
	if (v != NULL)
		text = cJSON_PrintUnformatted(v);
	cJSON_Delete(v);
	return text;
}

/* Finds a program on EXEC_PATH (names with a '/' are used as given). */
static int
resolve(const char *name, char *out, size_t outlen)
{
	const char *p = EXEC_PATH;

	if (strchr(name, '/') != NULL) {
		snprintf(out, outlen, "%s", name);
		return 0;
	}
	while (*p) {
		size_t n = strcspn(p, ":");
		snprintf(out, outlen, "%.*s/%s", (int)n, p, name);
		if (access(out, X_OK) == 0)
			return 0;
		p += n;
		if (*p == ':')
			p++;
	}
	return JOBD_ENOTFOUND;
}

/*
 * A handler's command line split into words, its env words, and where its
 * program was found.  Each worker thread keeps the last PROG_CACHE it ran
 * in thread-specific data (so no lock; freed when the thread exits).
 * Splitting depends on the text alone, so an entry is keyed by the
 * command and env text: a SIGHUP reload that changes either misses it.
 * The PATH lookup is redone once it is PATH_TTL_MS old, and at once after
 * a spawn fails, so a program installed or removed later is seen within
 * that time.
 */
struct prog {
	char *command;       /* key: the handler's command text */
	char *env;           /* key: its env text, NULL when none */
	char **argv;         /* the command's words, at least one */
	char **envw;         /* the env words, NULL when none */
	int nenv;
	char path[PATH_MAX]; /* argv[0] as found on EXEC_PATH */
	int64_t found_ms;    /* when path was found, -1 = look it up */
};

struct prog_cache {
	struct prog *e[PROG_CACHE];
	unsigned next;       /* the entry replaced next */
};

static pthread_once_t exec_once = PTHREAD_ONCE_INIT;
static pthread_key_t cache_key;
static bool cache_ok;                /* cache_key was created */
static posix_spawnattr_t spawn_attr; /* read-only after exec_init */

static void
prog_free(struct prog *pg)
{
	if (pg == NULL)
		return;
	free(pg->command);
	free(pg->env);
	shellwords_free(pg->argv);
	shellwords_free(pg->envw);
	free(pg);
}

static void
cache_free(void *v)
{
	struct prog_cache *c = v;

	for (int i = 0; i < PROG_CACHE; i++)
		prog_free(c->e[i]);
	free(c);
}

static void
exec_init(void)
{
	sigset_t none, all;

	cache_ok = pthread_key_create(&cache_key, cache_free) == 0;
	/* The child starts with an empty mask and every signal at its
	 * default, glibc's internal 32 and 33 included (sigaddset() refuses
	 * those, hence the memset); else what jobd ignores (SIGPIPE, and
	 * SIGINT and SIGQUIT when started in the background by a shell)
	 * would stay ignored across exec.  It is also the cheapest set:
	 * glibc's child makes one sigaction call for each signal in it, and
	 * for any other one a call to look, then (unless it is ignored) one
	 * to set. */
	sigemptyset(&none);
	memset(&all, 0xff, sizeof(all));
	posix_spawnattr_init(&spawn_attr);
	posix_spawnattr_setsigmask(&spawn_attr, &none);
	posix_spawnattr_setsigdefault(&spawn_attr, &all);
	posix_spawnattr_setflags(&spawn_attr, POSIX_SPAWN_SETSID |
	                         POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
}

static bool
same_text(const char *a, const char *b)
{
	return a == b || (a != NULL && b != NULL && strcmp(a, b) == 0);
}

/*
 * A new entry for h.  Returns 0, JOBD_EINVAL (a bad command or env, the
 * reason in why) or JOBD_ENOMEM.
 */
static int
prog_new(const struct handler_conf *h, struct prog **out, char *why,
         size_t whylen)
{
	struct prog *pg = calloc(1, sizeof(*pg));
	int argc = 0, rc = JOBD_ENOMEM;

	if (pg == NULL)
		return JOBD_ENOMEM;
	pg->found_ms = -1;
	pg->command = strdup(h->command);
	if (pg->command == NULL)
		goto fail;
	if (h->env != NULL && (pg->env = strdup(h->env)) == NULL)
		goto fail;
	rc = shellwords_split(h->command, &pg->argv, &argc, why, whylen);
	if (rc == 0 && argc == 0) {
		snprintf(why, whylen, "empty");
		rc = JOBD_EINVAL;
	}
	if (rc == 0 && h->env != NULL)
		rc = shellwords_split(h->env, &pg->envw, &pg->nenv, why,
		                      whylen);
	if (rc != 0)
		goto fail;
	*out = pg;
	return 0;
fail:
	prog_free(pg);
	return rc;
}

/*
 * h's entry in this thread's cache, made (and cached) when missing.  When
 * the cache cannot be had, *own gets an entry the caller frees.  Returns
 * what prog_new() returns.
 */
static int
prog_get(const struct handler_conf *h, struct prog **out, struct prog **own,
         char *why, size_t whylen)
{
	struct prog_cache *c = cache_ok ? pthread_getspecific(cache_key) : NULL;
	struct prog *pg;
	int rc;

	if (c != NULL) {
		for (int i = 0; i < PROG_CACHE; i++) {
			pg = c->e[i];
			if (pg != NULL && same_text(pg->command, h->command) &&
			    same_text(pg->env, h->env)) {
				*out = pg;
				return 0;
			}
		}
	} else if (cache_ok && (c = calloc(1, sizeof(*c))) != NULL &&
	           pthread_setspecific(cache_key, c) != 0) {
		free(c);
		c = NULL;
	}
	rc = prog_new(h, &pg, why, whylen);
	if (rc != 0)
		return rc;
	if (c == NULL) {
		*own = pg;
	} else {
		prog_free(c->e[c->next]);
		c->e[c->next] = pg;
		c->next = (c->next + 1) % PROG_CACHE;
	}
	*out = pg;
	return 0;
}

static void
set_error(struct jobd_result *res, int outcome, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void
set_error(struct jobd_result *res, int outcome, const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	res->outcome = outcome;
	free(res->error);
	res->error = strdup(msg);
}

static void
env_free(char **env)
{
	if (env == NULL)
		return;
	for (int i = 0; i < ENV_OWN && env[i] != NULL; i++)
		free(env[i]);
	free(env);
}

/*
 * Builds the child's environment: ENV_OWN strings of its own, then the
 * handler's env words (borrowed from pg).  NULL when out of memory; the
 * caller frees it with env_free().
 */
static char **
make_env(const struct prog *pg, const struct jobd_job_view *job)
{
	char **env = calloc((size_t)pg->nenv + ENV_OWN + 1, sizeof(*env));
	int n = 0;

	if (env == NULL)
		return NULL;
	if (asprintf(&env[n++], "PATH=%s", EXEC_PATH) < 0 ||
	    asprintf(&env[n++], "JOBD_JOB_ID=%s", job->id) < 0 ||
	    asprintf(&env[n++], "JOBD_JOB_TYPE=%s", job->type) < 0 ||
	    asprintf(&env[n++], "JOBD_ATTEMPT=%d", job->attempt) < 0 ||
	    asprintf(&env[n++], "JOBD_MAX_ATTEMPTS=%d", job->max_attempts) < 0 ||
	    asprintf(&env[n++], "JOBD_DEPENDS_ON=%s",
	             job->depends_on ? job->depends_on : "") < 0 ||
	    asprintf(&env[n++], "JOBD_PROGRESS_FD=%d", PROGRESS_FD) < 0) {
		env[n - 1] = NULL;
		env_free(env);
		return NULL;
	}
	for (int i = 0; i < pg->nenv; i++)
		env[n++] = pg->envw[i];
	return env;
}

static void
close_fd(int *fd)
{
	if (*fd >= 0) {
		close(*fd);
		*fd = -1;
	}
}

/*
 * One attempt's command: its pipes, what it has been given and has
 * written, and how it ended.  Each pipe is {read end, write end}; jobd
 * keeps the child's ends of stdout, stderr and fd 3 until the reap, so
 * that a quiet child's exit is one wake-up (the pidfd), not one for the
 * pipes' EOF and another for the pidfd.
 */
struct run {
	pid_t pid;           /* the command, its group's leader; -1 = none */
	int pidfd;
	int in[2], out[2], err[2], prog[2];
	size_t written;      /* payload bytes written to stdin */
	struct capbuf sout;  /* stdout, up to max_output */
	struct tail serr;    /* the end of stderr */
	struct progress_lines plines; /* fd 3, split into lines */
	int64_t kill_at;     /* SIGKILL the group then (mono ms); -1 = no */
	int64_t drain_until; /* after the exit: stop reading then */
	bool exited;         /* reaped; status is valid */
	int status;          /* waitpid status */
	int stop;            /* the stop request acted on; after the reap,
	                        the one in force then (stop_at_exit) */
};

/*
 * The stop request in force when the command was reaped, given the one
 * the poll loop acted on.  A timeout the loop did not act on (it passed
 * between the exit and the reap) ended nothing: the command exited by
 * itself, and its status decides.
 */
static int
stop_at_exit(jobd_ctx *ctx, int acted)
{
	int r = jobd_ctx_stop_reason(ctx);

	return r == JOBD_STOP_TIMEOUT && acted != JOBD_STOP_TIMEOUT
	           ? JOBD_STOP_NONE : r;
}

/*
 * Kills what is left of the command's group, then reaps its leader (a
 * zombie leader keeps the group id reserved until then, so the kill
 * cannot reach a reused number), and forgets the group.
 */
static void
reap(struct run *r, jobd_ctx *ctx)
{
	kill(-r->pid, SIGKILL);
	handler_ctx_set_pgid(ctx, 0);
	while (waitpid(r->pid, &r->status, 0) < 0 && errno == EINTR)
		;
	pgroups_clear();
	r->exited = true;
	r->stop = stop_at_exit(ctx, r->stop);
}

/*
 * Makes the pipes, writes what of the payload fits, and starts the
 * command in its own session.  Returns 0 when it runs and is watched (a
 * pidfd), else -1 with the attempt's error in res.
 */
static int
spawn(const struct handler_conf *h, struct prog *pg, char **envp,
      const struct jobd_job_view *job, jobd_ctx *ctx, struct run *r,
      struct jobd_result *res)
{
	posix_spawn_file_actions_t fa;
	int rc;

	if (pipe2(r->in, O_CLOEXEC) || pipe2(r->out, O_CLOEXEC) ||
	    pipe2(r->err, O_CLOEXEC) || pipe2(r->prog, O_CLOEXEC)) {
		set_error(res, JOBD_RETRY, "cannot run %s: pipe: %s",
		          pg->path, strerror(errno));
		return -1;
	}
	/* The payload goes into the empty pipe now: up to PIPE_BUF bytes
	 * always fit, so that write cannot block; a longer payload is
	 * written without blocking, as far as it fits, and the poll loop
	 * writes the rest as the child reads. */
	if (job->payload_len > PIPE_BUF)
		fcntl(r->in[1], F_SETFL, O_NONBLOCK);
	if (job->payload_len > 0) {
		ssize_t w = write(r->in[1], job->payload, job->payload_len);
		if (w > 0)
			r->written = (size_t)w;
	}
	if (r->written == job->payload_len)
		close_fd(&r->in[1]);
	else if (job->payload_len <= PIPE_BUF)
		fcntl(r->in[1], F_SETFL, O_NONBLOCK);

	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_adddup2(&fa, r->in[0], 0);
	posix_spawn_file_actions_adddup2(&fa, r->out[1], 1);
	posix_spawn_file_actions_adddup2(&fa, r->err[1], 2);
	posix_spawn_file_actions_adddup2(&fa, r->prog[1], PROGRESS_FD);
	posix_spawn_file_actions_addclosefrom_np(&fa, PROGRESS_FD + 1);
	if (h->workdir != NULL)
		posix_spawn_file_actions_addchdir_np(&fa, h->workdir);
	rc = posix_spawn(&r->pid, pg->path, &fa, &spawn_attr, pg->argv, envp);
	posix_spawn_file_actions_destroy(&fa);
	if (rc != 0) {
		r->pid = -1;
		pg->found_ms = -1; /* look again next time */
		set_error(res, JOBD_RETRY, "cannot run %s: %s", pg->path,
		          strerror(rc));
		return -1;
	}
	handler_ctx_set_pgid(ctx, r->pid);
	pgroups_record(r->pid);
	close_fd(&r->in[0]);
	r->pidfd = pidfd_open(r->pid, 0);
	if (r->pidfd < 0) {
		/* Nothing would tell the loop of the exit: end it now. */
		set_error(res, JOBD_RETRY, "cannot watch %s: pidfd_open: %s",
		          pg->path, strerror(errno));
		reap(r, ctx);
		return -1;
	}
	return 0;
}

/*
 * Before the exit: acts on a stop request or the passing deadline
 * (SIGTERM to the group, SIGKILL after the kill grace) and returns how
 * long the loop may sleep in ms (-1: until an fd wakes it).
 */
static int64_t
enforce_stop(struct run *r, jobd_ctx *ctx, int64_t now)
{
	int64_t timeout = -1;

	if (r->stop == JOBD_STOP_NONE) {
		r->stop = jobd_ctx_stop_reason(ctx); /* checks the deadline */
		if (r->stop != JOBD_STOP_NONE) {
			kill(-r->pid, SIGTERM);
			r->kill_at = now + handler_ctx_kill_grace_ms(ctx);
		}
	}
	if (r->kill_at >= 0 && now >= r->kill_at) {
		kill(-r->pid, SIGKILL);
		r->kill_at = -1;
	}
	if (r->stop == JOBD_STOP_NONE)
		timeout = jobd_ctx_deadline_ms(ctx) - now;
	if (r->kill_at >= 0 && (timeout < 0 || r->kill_at - now < timeout))
		timeout = r->kill_at - now;
	if (timeout < 0 && r->stop == JOBD_STOP_NONE)
		timeout = 0;
	return timeout;
}

/*
 * Services the running command in one poll loop - stdin (the rest of the
 * payload), stdout, stderr, the pidfd (its exit) and the context's wake
 * eventfd (cancel, shutdown) - until it has been reaped and its output
 * read to EOF, or DRAIN_AFTER_EXIT_MS after the reap when a process that
 * escaped the group still holds a pipe.  No deadline applies after the
 * reap: the exit status is known.
 */
/* progress_line_fn: a line of fd 3 (progress_parse says whether it is a
 * report; anything else is ignored). */
static void
progress_line(void *arg, const char *line, size_t len)
{
	handler_ctx_progress_len(arg, line, len);
}

static void
io_loop(struct run *r, const struct jobd_job_view *job, jobd_ctx *ctx)
{
	int wake = handler_ctx_wake_fd(ctx);

	for (;;) {
		struct pollfd fds[6];
		int nfds = 0, i_in = -1, i_out = -1, i_err = -1, i_pid = -1,
		    i_wake = -1, i_prog = -1;
		int64_t now = clock_mono_ms(), timeout;

		if (r->exited && ((r->out[0] < 0 && r->err[0] < 0 &&
		                   r->prog[0] < 0) || now >= r->drain_until))
			return;
		timeout = r->exited ? r->drain_until - now
		                    : enforce_stop(r, ctx, now);
		if (r->in[1] >= 0) {
			i_in = nfds;
			fds[nfds++] = (struct pollfd){r->in[1], POLLOUT, 0};
		}
		if (r->out[0] >= 0) {
			i_out = nfds;
			fds[nfds++] = (struct pollfd){r->out[0], POLLIN, 0};
		}
		if (r->err[0] >= 0) {
			i_err = nfds;
			fds[nfds++] = (struct pollfd){r->err[0], POLLIN, 0};
		}
		if (r->prog[0] >= 0) {
			i_prog = nfds;
			fds[nfds++] = (struct pollfd){r->prog[0], POLLIN, 0};
		}
		if (!r->exited) {
			i_pid = nfds;
			fds[nfds++] = (struct pollfd){r->pidfd, POLLIN, 0};
		}
		if (wake >= 0 && r->stop == JOBD_STOP_NONE && !r->exited) {
			i_wake = nfds;
			fds[nfds++] = (struct pollfd){wake, POLLIN, 0};
		}
		int n = poll(fds, (nfds_t)nfds,
		             timeout < 0 ? -1 : (int)(timeout > 60000 ? 60000
		                                                     : timeout));
		if (n < 0) {
			if (errno == EINTR)
				continue;
			log_err("exec", "poll: %s", strerror(errno));
			if (!r->exited)
				reap(r, ctx); /* killed: not a success */
			return;
		}
		if (i_in >= 0 && fds[i_in].revents) {
			ssize_t w = write(r->in[1], job->payload + r->written,
			                  job->payload_len - r->written);
			if (w > 0)
				r->written += (size_t)w;
			if ((w < 0 && errno != EAGAIN) ||
			    r->written == job->payload_len)
				close_fd(&r->in[1]); /* EPIPE: not read */
		}
		/* The read ends stay blocking: they are read only after poll
		 * says POLLIN, and jobd is their only reader.  POLLHUP
		 * without POLLIN: empty, and no writer is left. */
		if (i_out >= 0 && fds[i_out].revents) {
			char buf[65536];
			ssize_t rd = fds[i_out].revents & POLLIN
			                 ? read(r->out[0], buf, sizeof(buf)) : 0;
			if (rd > 0) {
				if (capbuf_add(&r->sout, buf, (size_t)rd) != 0)
					r->sout.dropped += (size_t)rd;
			} else if (rd == 0 || errno != EINTR) {
				close_fd(&r->out[0]);
			}
		}
		if (i_err >= 0 && fds[i_err].revents) {
			char buf[16384];
			ssize_t rd = fds[i_err].revents & POLLIN
			                 ? read(r->err[0], buf, sizeof(buf)) : 0;
			if (rd > 0)
				tail_add(&r->serr, buf, (size_t)rd);
			else if (rd == 0 || errno != EINTR)
				close_fd(&r->err[0]);
		}
		if (i_prog >= 0 && fds[i_prog].revents) {
			char buf[16384];
			ssize_t rd = fds[i_prog].revents & POLLIN
			                 ? read(r->prog[0], buf, sizeof(buf)) : 0;
			if (rd > 0) {
				progress_lines_feed(&r->plines, buf, (size_t)rd,
				                    progress_line, ctx);
			} else if (rd == 0 || errno != EINTR) {
				progress_lines_end(&r->plines, progress_line,
				                   ctx);
				close_fd(&r->prog[0]);
			}
		}
		if (i_wake >= 0 && fds[i_wake].revents) {
			eventfd_t v;
			eventfd_read(wake, &v);
		}
		if (i_pid >= 0 && fds[i_pid].revents) {
			reap(r, ctx);
			close_fd(&r->in[1]);
			close_fd(&r->out[1]); /* now EOF comes when the output */
			close_fd(&r->err[1]); /* has all been read */
			close_fd(&r->prog[1]);
			r->drain_until = clock_mono_ms() + DRAIN_AFTER_EXIT_MS;
		}
	}
}

/* A failed attempt's error: how the command ended, then its stderr. */
static void
set_failure(const struct run *r, struct jobd_result *res, int outcome)
{
	char what[64], linear[STDERR_TAIL], *clean = NULL, *msg = NULL;
	size_t tl = r->serr.len;

	if (WIFSIGNALED(r->status))
		snprintf(what, sizeof(what), "killed by signal %d (%s)",
		         WTERMSIG(r->status), strsignal(WTERMSIG(r->status)));
	else
		snprintf(what, sizeof(what), "exited with status %d",
		         WEXITSTATUS(r->status));
	for (size_t i = 0; i < tl; i++)
		linear[i] = r->serr.buf[(r->serr.start + i) % STDERR_TAIL];
	while (tl > 0 && (linear[tl - 1] == '\n' || linear[tl - 1] == ' '))
		tl--;
	if (tl > 0)
		clean = utf8_sanitize(linear, tl);
	res->outcome = outcome;
	if (clean != NULL && clean[0] != '\0' &&
	    asprintf(&msg, "%s: %s", what, clean) >= 0) {
		free(res->error);
		res->error = msg;
	} else {
		set_error(res, outcome, "%s", what);
	}
	free(clean);
}

/*
 * The attempt's outcome, from the stop request in force at the reap and
 * the wait status: a stop (cancel, shutdown) wins; exit 0 succeeds; 65
 * (EX_DATAERR) fails for good unless a stop made it; anything else is
 * retried.  stdout becomes the result when there is any, or on success.
 */
static void
decide(const struct run *r, struct jobd_result *res)
{
	int st = r->status;

	res->output_truncated = r->sout.dropped > 0;
	if (WIFEXITED(st)) {
		res->has_exit_code = 1;
		res->exit_code = WEXITSTATUS(st);
	} else if (WIFSIGNALED(st)) {
		res->has_exit_code = 1;
		res->exit_code = 128 + WTERMSIG(st);
	}
	if (r->stop == JOBD_STOP_CANCEL || r->stop == JOBD_STOP_SHUTDOWN)
		res->outcome = JOBD_STOPPED;
	else if (r->stop == JOBD_STOP_NONE && WIFEXITED(st) &&
	         WEXITSTATUS(st) == 0)
		res->outcome = JOBD_SUCCEEDED;
	else
		set_failure(r, res, r->stop == JOBD_STOP_NONE &&
		                    WIFEXITED(st) && WEXITSTATUS(st) == 65
		                        ? JOBD_FAILED_FOR_GOOD : JOBD_RETRY);
	if (res->outcome == JOBD_SUCCEEDED || r->sout.len > 0)
		res->result = make_result(r->sout.data ? r->sout.data : "",
		                          r->sout.len);
}

static void
exec_run(const struct handler_conf *h, const struct jobd_job_view *job,
         jobd_ctx *ctx, struct jobd_result *res)
{
	struct prog *pg = NULL, *own = NULL;
	struct run r = {
		.pid = -1, .pidfd = -1, .in = {-1, -1}, .out = {-1, -1},
		.err = {-1, -1}, .prog = {-1, -1}, .kill_at = -1,
		.drain_until = -1,
		.sout = {.limit = (size_t)h->max_output_bytes},
		.stop = JOBD_STOP_NONE,
	};
	char **envp = NULL;
	char why[256];
	int rc;

	pthread_once(&exec_once, exec_init);
	rc = prog_get(h, &pg, &own, why, sizeof(why));
	if (rc == JOBD_EINVAL) {
		set_error(res, JOBD_FAILED_FOR_GOOD, "bad command: %s", why);
		goto out;
	} else if (rc != 0) {
		set_error(res, JOBD_RETRY, "out of memory starting the command");
		goto out;
	}
	if (pg->found_ms < 0 || clock_mono_ms() - pg->found_ms >= PATH_TTL_MS) {
		if (resolve(pg->argv[0], pg->path, sizeof(pg->path)) != 0) {
			pg->found_ms = -1;
			set_error(res, JOBD_RETRY, "cannot run %s: not found "
			          "on %s", pg->argv[0], EXEC_PATH);
			goto out;
		}
		pg->found_ms = clock_mono_ms();
	}
	envp = make_env(pg, job);
	if (envp == NULL) {
		set_error(res, JOBD_RETRY, "out of memory building the "
		          "environment");
		goto out;
	}
	if (spawn(h, pg, envp, job, ctx, &r, res) == 0) {
		io_loop(&r, job, ctx);
		decide(&r, res);
	}
out:
	if (r.pid > 0 && !r.exited)
		reap(&r, ctx);
	for (int i = 0; i < 2; i++) {
		close_fd(&r.in[i]);
		close_fd(&r.out[i]);
		close_fd(&r.err[i]);
		close_fd(&r.prog[i]);
	}
	close_fd(&r.pidfd);
	free(r.sout.data);
	env_free(envp);
	prog_free(own);
}

const struct handler_kind handler_exec_kind = {
	.name = "exec",
	.run = exec_run,
};
