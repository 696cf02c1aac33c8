/*
 * handler_exec.c - exec handlers: run a program for each attempt.
 *
 * The command is split into argv like shell words (shellwords.c) and run
 * with posix_spawn - never through a shell, and nothing from the job ever
 * becomes an argument.  The child gets its own session (so its own process
 * group), only fds 0-2 (closefrom 3), an empty signal mask with default
 * dispositions, and a clean environment: PATH, JOBD_JOB_ID, JOBD_JOB_TYPE,
 * JOBD_ATTEMPT, JOBD_MAX_ATTEMPTS and the handler's env words.
 *
 * One poll loop services stdin (the payload), stdout (kept up to
 * max_output, the rest read and dropped), stderr (its last 4 KiB kept), a
 * pidfd (the child's exit) and the context's eventfd (cancel, shutdown).
 * Timeout and stop requests send SIGTERM to the process group and SIGKILL
 * after kill_grace.  When the child exits, the rest of its group is killed
 * before it is reaped (the zombie keeps the group id reserved), so no
 * process of a finished attempt outlives it.
 */
#include <cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
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
#include "log.h"
#include "shellwords.h"

#define EXEC_PATH "/usr/local/bin:/usr/bin:/bin"
#define STDERR_TAIL 4096
#define DRAIN_AFTER_EXIT_MS 1000

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

/*
 * Returns a new NUL-terminated copy of buf[0..len) that is valid UTF-8:
 * invalid bytes and NULs become U+FFFD.  NULL when out of memory.
 */
static char *
utf8_sanitize(const char *buf, size_t len)
{
	const unsigned char *s = (const unsigned char *)buf;
	char *out = malloc(len * 3 + 1), *o = out;
	size_t i = 0;

	if (out == NULL)
		return NULL;
	while (i < len) {
		unsigned char c = s[i];
		size_t n = 0;
		uint32_t cp = 0;
		if (c >= 0x01 && c < 0x80) {
			*o++ = (char)c;
			i++;
			continue;
		}
		if ((c & 0xe0) == 0xc0) { n = 1; cp = c & 0x1f; }
		else if ((c & 0xf0) == 0xe0) { n = 2; cp = c & 0x0f; }
		else if ((c & 0xf8) == 0xf0) { n = 3; cp = c & 0x07; }
		bool ok = n > 0 && len - i > n;
		for (size_t k = 1; ok && k <= n; k++) {
			if ((s[i + k] & 0xc0) != 0x80)
				ok = false;
			else
				cp = cp << 6 | (s[i + k] & 0x3f);
		}
		if (ok && ((n == 1 && cp < 0x80) || (n == 2 && cp < 0x800) ||
		           (n == 3 && cp < 0x10000) || cp > 0x10ffff ||
		           (cp >= 0xd800 && cp <= 0xdfff)))
			ok = false;
		if (!ok) {
			memcpy(o, "\xef\xbf\xbd", 3);
			o += 3;
			i++;
			continue;
		}
		memcpy(o, s + i, n + 1);
		o += n + 1;
		i += n + 1;
	}
	*o = '\0';
	return out;
}

/* stdout -> result: compact JSON when it parses, else a JSON string. */
static char *
make_result(const char *out, size_t len)
{
	cJSON *v;
	const char *end = NULL;
	char *text = NULL, *clean;

	while (len > 0 && (out[len - 1] == '\n' || out[len - 1] == '\r' ||
	                   out[len - 1] == ' ' || out[len - 1] == '\t'))
		len--;
	if (len == 0)
		return NULL;
	v = cJSON_ParseWithLengthOpts(out, len, &end, 0);
	if (v != NULL && end == out + len) {
		text = cJSON_PrintUnformatted(v);
		cJSON_Delete(v);
		return text;
	}
	cJSON_Delete(v);
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

static void
set_error(struct jobd_result *res, int outcome, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

#include <stdarg.h>
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

/* Builds the child's environment; NULL when out of memory. */
static char **
make_env(const struct handler_conf *h, const struct jobd_job_view *job)
{
	char **words = NULL, **env;
	int nwords = 0, n = 0;

	if (h->env != NULL &&
	    shellwords_split(h->env, &words, &nwords, NULL, 0) != 0)
		return NULL;
	env = calloc((size_t)nwords + 6, sizeof(*env));
	if (env == NULL)
		goto fail;
	if (asprintf(&env[n++], "PATH=%s", EXEC_PATH) < 0 ||
	    asprintf(&env[n++], "JOBD_JOB_ID=%s", job->id) < 0 ||
	    asprintf(&env[n++], "JOBD_JOB_TYPE=%s", job->type) < 0 ||
	    asprintf(&env[n++], "JOBD_ATTEMPT=%d", job->attempt) < 0 ||
	    asprintf(&env[n++], "JOBD_MAX_ATTEMPTS=%d", job->max_attempts) < 0) {
		env[n - 1] = NULL;
		goto fail;
	}
	for (int i = 0; i < nwords; i++) {
		env[n++] = words[i];
		words[i] = NULL;
	}
	shellwords_free(words);
	return env;
fail:
	shellwords_free(words);
	shellwords_free(env);
	return NULL;
}

static void
close_fd(int *fd)
{
	if (*fd >= 0) {
		close(*fd);
		*fd = -1;
	}
}

void
handler_exec_run(const struct handler_conf *h, const struct jobd_job_view *job,
                 jobd_ctx *ctx, struct jobd_result *res)
{
	char **argv = NULL, **envp = NULL;
	int argc = 0, status = 0, rc;
	char path[4096], why[256];
	int in[2] = {-1, -1}, out[2] = {-1, -1}, errp[2] = {-1, -1};
	int pidfd = -1, wake;
	pid_t pid = -1;
	posix_spawn_file_actions_t fa;
	posix_spawnattr_t attr;
	sigset_t none, all;
	struct capbuf sout = {.limit = (size_t)h->max_output_bytes};
	struct tail serr = {0};
	size_t written = 0;
	bool exited = false, fa_init = false, attr_init = false;
	int64_t kill_at = -1, drain_until = -1;
	int stop = JOBD_STOP_NONE;

	if (shellwords_split(h->command, &argv, &argc, why, sizeof(why)) != 0 ||
	    argc == 0) {
		set_error(res, JOBD_FAILED_FOR_GOOD, "bad command: %s",
		          argc == 0 ? "empty" : why);
		goto out;
	}
	if (resolve(argv[0], path, sizeof(path)) != 0) {
		set_error(res, JOBD_RETRY, "cannot run %s: not found on %s",
		          argv[0], EXEC_PATH);
		goto out;
	}
	envp = make_env(h, job);
	if (envp == NULL) {
		set_error(res, JOBD_RETRY, "out of memory building the "
		          "environment");
		goto out;
	}
	if (pipe2(in, O_CLOEXEC) || pipe2(out, O_CLOEXEC) ||
	    pipe2(errp, O_CLOEXEC)) {
		set_error(res, JOBD_RETRY, "pipe: %s", strerror(errno));
		goto out;
	}
	posix_spawn_file_actions_init(&fa);
	fa_init = true;
	posix_spawnattr_init(&attr);
	attr_init = true;
	posix_spawn_file_actions_adddup2(&fa, in[0], 0);
	posix_spawn_file_actions_adddup2(&fa, out[1], 1);
	posix_spawn_file_actions_adddup2(&fa, errp[1], 2);
	posix_spawn_file_actions_addclosefrom_np(&fa, 3);
	if (h->workdir != NULL)
		posix_spawn_file_actions_addchdir_np(&fa, h->workdir);
	sigemptyset(&none);
	/* Back to default: what jobd ignores (SIGPIPE) and glibc's internal
	 * signals 32 and 33, which posix_spawn would otherwise start the
	 * child with ignored (sigaddset() refuses them, so start full and
	 * take out every other signal).  Caught signals reset themselves at
	 * exec; resetting only these saves the child ~60 sigaction calls. */
	memset(&all, 0xff, sizeof(all));
	for (int sig = 1; sig < NSIG; sig++)
		if (sig != SIGPIPE)
			sigdelset(&all, sig);
	posix_spawnattr_setsigmask(&attr, &none);
	posix_spawnattr_setsigdefault(&attr, &all);
	posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSID |
	                         POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
	rc = posix_spawn(&pid, path, &fa, &attr, argv, envp);
	if (rc != 0) {
		pid = -1;
		set_error(res, JOBD_RETRY, "cannot run %s: %s", path,
		          strerror(rc));
		goto out;
	}
	handler_ctx_set_pgid(ctx, pid);
	close_fd(&in[0]);
	close_fd(&out[1]);
	close_fd(&errp[1]);
	fcntl(in[1], F_SETFL, O_NONBLOCK);
	fcntl(out[0], F_SETFL, O_NONBLOCK);
	fcntl(errp[0], F_SETFL, O_NONBLOCK);
	if (job->payload_len == 0)
		close_fd(&in[1]);
	pidfd = pidfd_open(pid, 0);
	if (pidfd < 0) {
		log_err("exec", "pidfd_open: %s; killing the attempt",
		        strerror(errno));
		kill(-pid, SIGKILL);
	}
	wake = handler_ctx_wake_fd(ctx);

	for (;;) {
		struct pollfd fds[5];
		int nfds = 0, i_in = -1, i_out = -1, i_err = -1, i_pid = -1,
		    i_wake = -1;
		int64_t now = clock_mono_ms(), timeout = -1;

		if (exited && ((out[0] < 0 && errp[0] < 0) ||
		               now >= drain_until))
			break;
		/* Deadlines: the attempt's timeout, then the kill grace. */
		if (stop == JOBD_STOP_NONE) {
			stop = jobd_ctx_stop_reason(ctx); /* checks the deadline */
			if (stop != JOBD_STOP_NONE && !exited) {
				kill(-pid, SIGTERM);
				kill_at = now + handler_ctx_kill_grace_ms(ctx);
			}
		}
		if (kill_at >= 0 && now >= kill_at && !exited) {
			kill(-pid, SIGKILL);
			kill_at = -1;
		}
		if (stop == JOBD_STOP_NONE)
			timeout = jobd_ctx_deadline_ms(ctx) - now;
		if (kill_at >= 0 && (timeout < 0 || kill_at - now < timeout))
			timeout = kill_at - now;
		if (exited && (timeout < 0 || drain_until - now < timeout))
			timeout = drain_until - now;
		if (timeout < 0 && stop == JOBD_STOP_NONE)
			timeout = 0;

		if (in[1] >= 0) {
			i_in = nfds;
			fds[nfds++] = (struct pollfd){in[1], POLLOUT, 0};
		}
		if (out[0] >= 0) {
			i_out = nfds;
			fds[nfds++] = (struct pollfd){out[0], POLLIN, 0};
		}
		if (errp[0] >= 0) {
			i_err = nfds;
			fds[nfds++] = (struct pollfd){errp[0], POLLIN, 0};
		}
		if (!exited && pidfd >= 0) {
			i_pid = nfds;
			fds[nfds++] = (struct pollfd){pidfd, POLLIN, 0};
		}
		if (wake >= 0 && stop == JOBD_STOP_NONE) {
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
			kill(-pid, SIGKILL);
			break;
		}
		if (i_in >= 0 && fds[i_in].revents) {
			ssize_t w = write(in[1], job->payload + written,
			                  job->payload_len - written);
			if (w > 0)
				written += (size_t)w;
			if ((w < 0 && errno != EAGAIN) ||
			    written == job->payload_len)
				close_fd(&in[1]); /* EPIPE: the child did not read */
		}
		if (i_out >= 0 && fds[i_out].revents) {
			char buf[65536];
			ssize_t r = read(out[0], buf, sizeof(buf));
			if (r > 0) {
				if (capbuf_add(&sout, buf, (size_t)r) != 0)
					sout.dropped += (size_t)r;
			} else if (r == 0 || errno != EAGAIN) {
				close_fd(&out[0]);
			}
		}
		if (i_err >= 0 && fds[i_err].revents) {
			char buf[16384];
			ssize_t r = read(errp[0], buf, sizeof(buf));
			if (r > 0)
				tail_add(&serr, buf, (size_t)r);
			else if (r == 0 || errno != EAGAIN)
				close_fd(&errp[0]);
		}
		if (i_wake >= 0 && fds[i_wake].revents) {
			eventfd_t v;
			eventfd_read(wake, &v);
		}
		if (i_pid >= 0 && fds[i_pid].revents) {
			/* The child is a zombie: its pid, and so its group id,
			 * are still reserved.  Kill what is left of the group,
			 * then reap. */
			kill(-pid, SIGKILL);
			handler_ctx_set_pgid(ctx, 0);
			waitpid(pid, &status, 0);
			exited = true;
			close_fd(&in[1]);
			drain_until = clock_mono_ms() + DRAIN_AFTER_EXIT_MS;
		}
		if (pidfd < 0 && !exited) {
			/* No pidfd: the group was killed; reap it. */
			handler_ctx_set_pgid(ctx, 0);
			waitpid(pid, &status, 0);
			exited = true;
			drain_until = clock_mono_ms();
		}
	}

	stop = jobd_ctx_stop_reason(ctx);
	res->output_truncated = sout.dropped > 0;
	if (WIFEXITED(status)) {
		res->has_exit_code = 1;
		res->exit_code = WEXITSTATUS(status);
	} else if (WIFSIGNALED(status)) {
		res->has_exit_code = 1;
		res->exit_code = 128 + WTERMSIG(status);
	}
	if (stop == JOBD_STOP_CANCEL || stop == JOBD_STOP_SHUTDOWN) {
		res->outcome = JOBD_STOPPED;
	} else if (stop == JOBD_STOP_NONE && WIFEXITED(status) &&
	           WEXITSTATUS(status) == 0) {
		res->outcome = JOBD_SUCCEEDED;
	} else {
		char what[64];
		if (WIFSIGNALED(status))
			snprintf(what, sizeof(what), "killed by signal %d (%s)",
			         WTERMSIG(status), strsignal(WTERMSIG(status)));
		else
			snprintf(what, sizeof(what), "exited with status %d",
			         WEXITSTATUS(status));
		res->outcome = stop == JOBD_STOP_NONE && WIFEXITED(status) &&
		               WEXITSTATUS(status) == 65
		                   ? JOBD_FAILED_FOR_GOOD : JOBD_RETRY;
		char linear[STDERR_TAIL];
		for (size_t i = 0; i < serr.len; i++)
			linear[i] = serr.buf[(serr.start + i) % STDERR_TAIL];
		size_t tl = serr.len;
		while (tl > 0 && (linear[tl - 1] == '\n' || linear[tl - 1] == ' '))
			tl--;
		char *clean = tl > 0 ? utf8_sanitize(linear, tl) : NULL;
		char *msg = NULL;
		if (clean != NULL && clean[0] != '\0' &&
		    asprintf(&msg, "%s: %s", what, clean) >= 0) {
			free(res->error);
			res->error = msg;
		} else {
			set_error(res, res->outcome, "%s", what);
		}
		free(clean);
	}
	if (res->outcome == JOBD_SUCCEEDED || sout.len > 0)
		res->result = make_result(sout.data ? sout.data : "", sout.len);
out:
	if (pid > 0 && !exited) {
		kill(-pid, SIGKILL);
		handler_ctx_set_pgid(ctx, 0);
		waitpid(pid, NULL, 0);
	}
	if (fa_init)
		posix_spawn_file_actions_destroy(&fa);
	if (attr_init)
		posix_spawnattr_destroy(&attr);
	close_fd(&in[0]);
	close_fd(&in[1]);
	close_fd(&out[0]);
	close_fd(&out[1]);
	close_fd(&errp[0]);
	close_fd(&errp[1]);
	close_fd(&pidfd);
	free(sout.data);
	shellwords_free(argv);
	shellwords_free(envp);
}
