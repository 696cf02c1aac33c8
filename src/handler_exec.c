/*
 * handler_exec.c - exec handlers (placeholder until the exec issue lands).
 */
#include <string.h>

#include "handler.h"

void
handler_exec_run(const struct handler_conf *h, const struct jobd_job_view *job,
                 jobd_ctx *ctx, struct jobd_result *res)
{
	(void)h;
	(void)job;
	(void)ctx;
	res->outcome = JOBD_FAILED_FOR_GOOD;
	res->error = strdup("exec handlers are not available in this build");
}
