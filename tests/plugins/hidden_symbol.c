/* hidden_symbol.c - a test plugin that calls a jobd function that is not
 * part of the plugin interface (config_load): the executable does not
 * export it, so loading fails (RTLD_NOW) with an undefined symbol. */
#include <stddef.h>

#include <jobd/handler.h>

struct config;
int config_load(const char *path, struct config **out, char *err,
                size_t errlen);

static int
hidden_run(void *state, const struct jobd_job_view *job, jobd_ctx *ctx,
           struct jobd_result *result)
{
	(void)state, (void)job, (void)ctx, (void)result;
	return config_load("/nonexistent", NULL, NULL, 0) == 0
	           ? JOBD_SUCCEEDED : JOBD_RETRY;
}

const struct jobd_plugin jobd_plugin = {
	.abi = JOBD_HANDLER_ABI,
	.name = "hidden_symbol",
	.run = hidden_run,
};
