/*
 * handler.h - runs one attempt of a job with the handler its type names.
 *
 * The kinds of handlers (builtin, exec, plugin) share one ops table,
 * struct handler_kind; handler_kind_of() chooses a handler's kind in one
 * place.  A kind runs an attempt on the worker thread that calls it, with
 * the attempt context of handler_ctx.h.
 */
#ifndef JOBD_HANDLER_INTERNAL_H
#define JOBD_HANDLER_INTERNAL_H

#include "config.h"
#include "handler_ctx.h"
#include "jobd/handler.h"

struct handler_kind {
	const char *name;       /* "builtin", "exec", "plugin" (GET /types'
	                           kind) */
	/*
	 * Runs one attempt of job with handler h; fills res (zeroed by the
	 * caller), whose strings then belong to the caller.
	 */
	void (*run)(const struct handler_conf *h,
	            const struct jobd_job_view *job, jobd_ctx *ctx,
	            struct jobd_result *res);
};

extern const struct handler_kind handler_builtin_kind; /* handler_builtin.c */
extern const struct handler_kind handler_exec_kind;    /* handler_exec.c */
/* handler_plugin_kind: handler_plugin.h */

/* The kind of handler h. */
const struct handler_kind *handler_kind_of(const struct handler_conf *h);

/* Runs one attempt of job with handler h (its kind's run). */
void handler_run(const struct handler_conf *h, const struct jobd_job_view *job,
                 jobd_ctx *ctx, struct jobd_result *res);

#endif
