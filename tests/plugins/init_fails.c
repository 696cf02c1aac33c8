/* init_fails.c - a test plugin whose init refuses, saying why (with its
 * plugin_config, to show it reached init). */
#define _GNU_SOURCE /* strdup, strndup, realpath, O_CLOEXEC */
#include <stdio.h>

#include <jobd/handler.h>

static int
nope_init(const char *config, void **state)
{
	(void)state;
	fprintf(stderr, "init_fails says no to \"%s\"\n",
	        config ? config : "(none)");
	return 7;
}

static int
nope_run(void *state, const struct jobd_job_view *job, jobd_ctx *ctx,
         struct jobd_result *result)
{
	(void)state, (void)job, (void)ctx, (void)result;
	return JOBD_SUCCEEDED;
}

const struct jobd_plugin jobd_plugin = {
	.abi = JOBD_HANDLER_ABI,
	.name = "init_fails",
	.init = nope_init,
	.run = nope_run,
};
