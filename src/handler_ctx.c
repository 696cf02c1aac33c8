/*
 * handler_ctx.c - the attempt context (jobd_ctx): stop reason, deadline,
 * the exec child's process group, and the wake-ups of a stop request.
 *
 * LOCKING: ctx->mu guards stop_reason's transitions, pgid and the condition
 * variable builtins sleep on.  stop_reason is also atomic so that handlers
 * can poll it without the lock.  The spare wake eventfd is thread-specific
 * data, so it needs no lock.  The progress sink (prog, id, type, claim) is
 * set before the handler runs and only read after; reports may come from
 * any thread of the attempt (the table has its own lock), and reported
 * is atomic.
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "clock.h"
#include "err.h"
#include "handler_ctx.h"

struct jobd_ctx {
	pthread_mutex_t mu;
	pthread_cond_t cond;
	atomic_int stop_reason;     /* enum jobd_stop */
	int64_t deadline_mono_ms;   /* the attempt's timeout */
	int64_t kill_grace_ms;
	pid_t pgid;                 /* exec child's group, 0 = none; mu */
	int wake_fd;                /* eventfd written on stop, -1 = none; mu */
	/* where reports go (handler_ctx_set_job), borrowed */
	progress *prog;
	const char *id, *type, *claim;
	atomic_bool reported;       /* a report reached the table */
};

/*
 * Every exec attempt polls a wake eventfd, and a context lives for one
 * attempt.  So that an attempt does not cost an eventfd() and a close(),
 * a context freed on a thread leaves its eventfd, read back to zero, as
 * that thread's spare, and the thread's next context takes it.  The spare
 * is thread-specific data (fd + 1, 0 = none), closed when the thread
 * exits.
 */
static pthread_once_t spare_once = PTHREAD_ONCE_INIT;
static pthread_key_t spare_key;
static bool spare_ok; /* spare_key was created */

static void
spare_close(void *v)
{
	close((int)((intptr_t)v - 1));
}

static void
spare_init(void)
{
	spare_ok = pthread_key_create(&spare_key, spare_close) == 0;
}

/* This thread's spare eventfd, now the caller's; -1 when none. */
static int
spare_take(void)
{
	intptr_t v;

	pthread_once(&spare_once, spare_init);
	if (!spare_ok || (v = (intptr_t)pthread_getspecific(spare_key)) == 0)
		return -1;
	pthread_setspecific(spare_key, NULL);
	return (int)(v - 1);
}

/* Keeps fd, whose count is zero, as this thread's spare, or closes it. */
static void
spare_give(int fd)
{
	pthread_once(&spare_once, spare_init);
	if (!spare_ok || pthread_getspecific(spare_key) != NULL ||
	    pthread_setspecific(spare_key, (void *)((intptr_t)fd + 1)) != 0)
		close(fd);
}

int
handler_ctx_init(jobd_ctx **out, int64_t deadline_mono_ms,
                 int64_t kill_grace_ms)
{
	jobd_ctx *ctx = calloc(1, sizeof(*ctx));

	if (ctx == NULL)
		return JOBD_ENOMEM;
	pthread_mutex_init(&ctx->mu, NULL);
	if (clock_cond_init(&ctx->cond) != 0) {
		pthread_mutex_destroy(&ctx->mu);
		free(ctx);
		return JOBD_ESYS;
	}
	atomic_init(&ctx->stop_reason, JOBD_STOP_NONE);
	ctx->wake_fd = -1;
	ctx->deadline_mono_ms = deadline_mono_ms;
	ctx->kill_grace_ms = kill_grace_ms;
	*out = ctx;
	return 0;
}

void
handler_ctx_free(jobd_ctx *ctx)
{
	if (ctx == NULL)
		return;
	if (ctx->wake_fd >= 0) {
		/* No other thread can reach ctx now; a stop request has
		 * written the eventfd, else nothing has. */
		if (atomic_load(&ctx->stop_reason) != JOBD_STOP_NONE) {
			eventfd_t v;
			eventfd_read(ctx->wake_fd, &v);
		}
		spare_give(ctx->wake_fd);
	}
	pthread_cond_destroy(&ctx->cond);
	pthread_mutex_destroy(&ctx->mu);
	free(ctx);
}

int
handler_ctx_wake_fd(jobd_ctx *ctx)
{
	int fd;

	pthread_mutex_lock(&ctx->mu);
	if (ctx->wake_fd < 0) {
		ctx->wake_fd = spare_take();
		if (ctx->wake_fd < 0)
			ctx->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
		/* A stop that came before the fd existed must still wake. */
		if (ctx->wake_fd >= 0 &&
		    atomic_load(&ctx->stop_reason) != JOBD_STOP_NONE)
			eventfd_write(ctx->wake_fd, 1);
	}
	fd = ctx->wake_fd;
	pthread_mutex_unlock(&ctx->mu);
	return fd;
}

void
handler_ctx_request_stop(jobd_ctx *ctx, int reason)
{
	int none = JOBD_STOP_NONE;

	pthread_mutex_lock(&ctx->mu);
	if (atomic_compare_exchange_strong(&ctx->stop_reason, &none, reason)) {
		pthread_cond_broadcast(&ctx->cond);
		if (ctx->wake_fd >= 0)
			eventfd_write(ctx->wake_fd, 1);
		/* The exec handler's own loop escalates to SIGKILL after
		 * kill_grace; this SIGTERM makes the group start stopping now. */
		if (ctx->pgid > 0)
			kill(-ctx->pgid, SIGTERM);
	}
	pthread_mutex_unlock(&ctx->mu);
}

void
handler_ctx_set_pgid(jobd_ctx *ctx, pid_t pgid)
{
	pthread_mutex_lock(&ctx->mu);
	ctx->pgid = pgid;
	pthread_mutex_unlock(&ctx->mu);
}

int64_t
handler_ctx_kill_grace_ms(jobd_ctx *ctx)
{
	return ctx->kill_grace_ms;
}

int
jobd_ctx_stop_reason(jobd_ctx *ctx)
{
	int r = atomic_load(&ctx->stop_reason);

	if (r == JOBD_STOP_NONE && clock_mono_ms() >= ctx->deadline_mono_ms) {
		handler_ctx_request_stop(ctx, JOBD_STOP_TIMEOUT);
		r = atomic_load(&ctx->stop_reason);
	}
	return r;
}

int
jobd_ctx_sleep(jobd_ctx *ctx, int64_t ms)
{
	int64_t until = clock_mono_ms() + ms;
	int reason;

	pthread_mutex_lock(&ctx->mu);
	for (;;) {
		reason = atomic_load(&ctx->stop_reason);
		if (reason != JOBD_STOP_NONE)
			break;
		int64_t now = clock_mono_ms();
		if (now >= ctx->deadline_mono_ms) {
			reason = JOBD_STOP_TIMEOUT;
			atomic_store(&ctx->stop_reason, reason);
			break;
		}
		if (now >= until)
			break;
		clock_cond_wait_until(&ctx->cond, &ctx->mu,
		                      until < ctx->deadline_mono_ms
		                          ? until : ctx->deadline_mono_ms);
	}
	pthread_mutex_unlock(&ctx->mu);
	return reason;
}

int64_t
jobd_ctx_deadline_ms(jobd_ctx *ctx)
{
	return ctx->deadline_mono_ms;
}

void
handler_ctx_set_job(jobd_ctx *ctx, progress *p, const char *id,
                    const char *type, const char *claim)
{
	ctx->prog = p;
	ctx->id = id;
	ctx->type = type;
	ctx->claim = claim;
}

bool
handler_ctx_reported(jobd_ctx *ctx)
{
	return atomic_load(&ctx->reported);
}

int
handler_ctx_progress_len(jobd_ctx *ctx, const char *text, size_t len)
{
	char *compact = NULL;

	if (ctx == NULL || text == NULL ||
	    progress_parse(text, len, &compact) != 0)
		return -1;
	if (ctx->prog == NULL || ctx->id == NULL) {
		free(compact); /* nowhere to go (a context made by a test) */
		return 0;
	}
	/* Set first: the worker ends the entry it may have made. */
	atomic_store(&ctx->reported, true);
	return progress_report(ctx->prog, ctx->id, ctx->type, ctx->claim,
	                       compact) == 0 ? 0 : -1;
}

int
jobd_ctx_progress(jobd_ctx *ctx, const char *json)
{
	if (json == NULL)
		return -1;
	/* A longer text is refused without reading all of it. */
	return handler_ctx_progress_len(ctx, json,
	                                strnlen(json, PROGRESS_MAX + 2));
}
