/*
 * probe.c - a test plugin (tests/integration/test_plugins.c): its result
 * shows what reached it, and the payload picks how it misbehaves.
 *
 *   payload "config"    result: the plugin_config text, as given (raw:
 *                       jobd keeps text that is not JSON as a string)
 *   payload "json"      result {"n": [1, 2, 3]} with spaces, succeeded
 *   payload "outcome"   returns 42, not a jobd_outcome
 *   payload "forgood"   JOBD_FAILED_FOR_GOOD with an error message
 *   payload "badutf8"   an error and a result with bytes that are not UTF-8
 *   payload "big"       a 2 MiB result (over the default max_output)
 *   payload "stopped"   JOBD_STOPPED without any stop request
 *   payload "wait"      waits for a stop request, then JOBD_STOPPED
 *   anything else       JOBD_SUCCEEDED, no result
 *
 * Counts its inits and finis in the files named by plugin_config words
 * "count=<dir>" (init writes <dir>/init.<pid>, fini <dir>/fini.<pid>).
 */
#define _GNU_SOURCE /* strdup, strndup, realpath, O_CLOEXEC */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jobd/handler.h>

struct probe {
	char *config;
	char dir[512];
};

static void
touch(const struct probe *p, const char *what)
{
	char path[600];
	FILE *f;

	if (p->dir[0] == '\0')
		return;
	snprintf(path, sizeof(path), "%s/%s.%ld", p->dir, what, (long)getpid());
	f = fopen(path, "a");
	if (f != NULL) {
		fputs("x\n", f);
		fclose(f);
	}
}

static int
probe_init(const char *config, void **state)
{
	struct probe *p = calloc(1, sizeof(*p));
	const char *c;

	if (p == NULL)
		return -1;
	p->config = config ? strdup(config) : NULL;
	if (config != NULL && (c = strstr(config, "count=")) != NULL)
		snprintf(p->dir, sizeof(p->dir), "%.*s",
		         (int)strcspn(c + 6, " "), c + 6);
	touch(p, "init");
	*state = p;
	return 0;
}

static void
probe_fini(void *state)
{
	struct probe *p = state;

	touch(p, "fini");
	free(p->config);
	free(p);
}

static int
probe_run(void *state, const struct jobd_job_view *job, jobd_ctx *ctx,
          struct jobd_result *result)
{
	struct probe *p = state;
	const char *m = job->payload;

	if (strcmp(m, "\"config\"") == 0) {
		result->result = strdup(p->config ? p->config : "(none)");
		return JOBD_SUCCEEDED;
	}
	if (strcmp(m, "\"json\"") == 0) {
		result->result = strdup("  {\"n\": [1, 2, 3]}\n");
		return JOBD_SUCCEEDED;
	}
	if (strcmp(m, "\"outcome\"") == 0) {
		result->error = strdup("odd");
		return 42;
	}
	if (strcmp(m, "\"forgood\"") == 0) {
		result->error = strdup("probe: no use retrying");
		return JOBD_FAILED_FOR_GOOD;
	}
	if (strcmp(m, "\"badutf8\"") == 0) {
		result->error = strdup("bad \xff\xfe bytes");
		result->result = strdup("raw \xc3 text");
		return JOBD_FAILED_FOR_GOOD;
	}
	if (strcmp(m, "\"big\"") == 0) {
		size_t n = 2u << 20;
		result->result = malloc(n + 3);
		if (result->result != NULL) {
			result->result[0] = '"';
			memset(result->result + 1, 'a', n);
			result->result[n + 1] = '"';
			result->result[n + 2] = '\0';
		}
		return JOBD_SUCCEEDED;
	}
	if (strcmp(m, "\"stopped\"") == 0)
		return JOBD_STOPPED;
	if (strcmp(m, "\"wait\"") == 0) {
		jobd_ctx_progress(ctx, "{\"waiting\": true}");
		while (jobd_ctx_sleep(ctx, 60000) == JOBD_STOP_NONE)
			;
		return JOBD_STOPPED;
	}
	return JOBD_SUCCEEDED;
}

const struct jobd_plugin jobd_plugin = {
	.abi = JOBD_HANDLER_ABI,
	.name = "probe",
	.init = probe_init,
	.run = probe_run,
	.fini = probe_fini,
};
