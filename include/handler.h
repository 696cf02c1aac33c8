/*
 * handler.h - runs one attempt of a job with the handler its type names
 * (builtin or exec), and the attempt context workers use to stop it.
 *
 * A context is made per attempt by the worker that runs it.  Other threads
 * (the writer, on DELETE; the pool, on shutdown) may call
 * handler_ctx_request_stop() at any time; everything else is for the
 * worker thread that owns the context.
 */
#ifndef JOBD_HANDLER_INTERNAL_H
#define JOBD_HANDLER_INTERNAL_H

#include <sys/types.h>

#include "config.h"
#include "jobd/handler.h"

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
 * Runs one attempt of job with handler h; fills res (zeroed by the caller).
 * The result's strings then belong to the caller.
 */
void handler_run(const struct handler_conf *h, const struct jobd_job_view *job,
                 jobd_ctx *ctx, struct jobd_result *res);

/* Builtins (handler_builtin.c). */
void handler_builtin_run(int64_t kind, const struct jobd_job_view *job,
                         jobd_ctx *ctx, struct jobd_result *res);

/* Exec (handler_exec.c). */
void handler_exec_run(const struct handler_conf *h,
                      const struct jobd_job_view *job, jobd_ctx *ctx,
                      struct jobd_result *res);

#endif
