/*
 * handler.c - the kinds of handlers behind one ops table, chosen in one
 * place (handler_kind_of), as store.c chooses a store backend.
 *
 * LOCKING: none; the table is constant.
 */
#include "config.h"
#include "handler.h"
#include "handler_plugin.h"

const struct handler_kind *
handler_kind_of(const struct handler_conf *h)
{
	if (h->plugin != NULL)
		return &handler_plugin_kind;
	return h->builtin != BUILTIN_NONE ? &handler_builtin_kind
	                                  : &handler_exec_kind;
}

void
handler_run(const struct handler_conf *h, const struct jobd_job_view *job,
            jobd_ctx *ctx, struct jobd_result *res)
{
	handler_kind_of(h)->run(h, job, ctx, res);
}
