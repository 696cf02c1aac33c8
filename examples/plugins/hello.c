/* hello.c - the smallest useful jobd plugin (README "Writing a plugin"). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jobd/handler.h>

struct hello {
	int steps;          /* from plugin_config; read-only after init */
};

static int
hello_init(const char *config, void **state)
{
	struct hello *h = malloc(sizeof(*h));

	if (h == NULL) {
		fprintf(stderr, "hello: out of memory\n");
		return -1;
	}
	h->steps = config ? atoi(config) : 5;
	if (h->steps < 1 || h->steps > 100) {
		fprintf(stderr, "hello: plugin_config: 1..100 steps, not \"%s\"\n",
		         config);
		free(h);
		return -1;
	}
	*state = h;
	return 0;
}

static int
hello_run(void *state, const struct jobd_job_view *job, jobd_ctx *ctx,
          struct jobd_result *result)
{
	const struct hello *h = state;
	char buf[128];

	for (int i = 0; i < h->steps; i++) {
		snprintf(buf, sizeof(buf), "{\"percent\": %d}",
		         100 * i / h->steps);
		jobd_ctx_progress(ctx, buf);
		/* 100 ms of "work"; returns early on DELETE, timeout or
		 * shutdown. */
		if (jobd_ctx_sleep(ctx, 100) != JOBD_STOP_NONE)
			return JOBD_STOPPED;
	}
	if (strcmp(job->payload, "\"fail\"") == 0) {
		result->error = strdup("asked to fail");
		return JOBD_FAILED_FOR_GOOD;
	}
	snprintf(buf, sizeof(buf), "{\"hello\": \"%s\", \"attempt\": %d}",
	         job->id, job->attempt);
	result->result = strdup(buf);   /* jobd frees it */
	return JOBD_SUCCEEDED;
}

static void
hello_fini(void *state)
{
	free(state);
}

const struct jobd_plugin jobd_plugin = {
	.abi = JOBD_HANDLER_ABI,
	.name = "hello",
	.init = hello_init,
	.run = hello_run,
	.fini = hello_fini,
};
