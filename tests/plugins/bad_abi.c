/* bad_abi.c - a test plugin built for another ABI: jobd must refuse it. */
#include <jobd/handler.h>

static int
bad_run(void *state, const struct jobd_job_view *job, jobd_ctx *ctx,
        struct jobd_result *result)
{
	(void)state, (void)job, (void)ctx, (void)result;
	return JOBD_SUCCEEDED;
}

const struct jobd_plugin jobd_plugin = {
	.abi = JOBD_HANDLER_ABI + 1,
	.name = "bad_abi",
	.run = bad_run,
};
