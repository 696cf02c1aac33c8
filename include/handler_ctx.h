/*
 * handler_ctx.h - the attempt context (jobd_ctx) that workers make and
 * every handler kind uses: its stop reason, deadline and kill grace, the
 * exec child's process group, and an eventfd that a stop request wakes.
 * The public part (jobd_ctx_stop_reason, jobd_ctx_sleep, ...) is in
 * include/jobd/handler.h.
 *
 * A context is made per attempt by the worker that runs it.  Other threads
 * (the writer, on DELETE; the pool, on shutdown) may call
 * handler_ctx_request_stop() at any time; everything else is for the
 * worker thread that owns the context.
 */
#ifndef JOBD_HANDLER_CTX_H
#define JOBD_HANDLER_CTX_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "jobd/handler.h"
#include "progress.h"

/*
 * Initialises ctx for an attempt that must end by deadline_mono_ms.
 * Returns 0 or JOBD_ESYS.
 */
int handler_ctx_init(jobd_ctx **ctx, int64_t deadline_mono_ms,
                     int64_t kill_grace_ms);
void handler_ctx_free(jobd_ctx *ctx);

/*
 * Asks the attempt to stop for reason (the first reason wins); wakes a
 * sleeping builtin and signals an exec child's process group.  Thread-safe.
 */
void handler_ctx_request_stop(jobd_ctx *ctx, int reason);

/* Records the process group of the running exec child (0 = none). */
void handler_ctx_set_pgid(jobd_ctx *ctx, pid_t pgid);

/*
 * An eventfd (owned by ctx) that becomes readable when a stop is requested,
 * for poll loops; made on first use, or taken over from a context freed
 * earlier on the same thread.  -1 when it cannot be created.
 */
int handler_ctx_wake_fd(jobd_ctx *ctx);

/* Kill grace of the attempt in ms. */
int64_t handler_ctx_kill_grace_ms(jobd_ctx *ctx);

/*
 * Where the attempt's progress goes: table p (may be NULL), for the
 * attempt of job id, type, claim (all borrowed; they must outlive ctx).
 * The worker sets it before the handler runs.
 */
void handler_ctx_set_job(jobd_ctx *ctx, progress *p, const char *id,
                         const char *type, const char *claim);

/*
 * jobd_ctx_progress() with a length: text[0..len) need not be
 * NUL-terminated (an exec handler's line).  0 or -1 (not a report).
 */
int handler_ctx_progress_len(jobd_ctx *ctx, const char *text, size_t len);

/* Whether the attempt reported progress (then its entry must be ended
 * and forgotten, progress.h). */
bool handler_ctx_reported(jobd_ctx *ctx);

#endif
