/*
 * handler_builtin.c - the builtin handlers, for tests, benchmarks and health
 * checks: noop, echo, sleep and fail.
 */
#include <cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "handler.h"
#include "handler_ctx.h"

static void
set_error(struct jobd_result *res, int outcome, const char *msg)
{
	res->outcome = outcome;
	res->error = strdup(msg);
}

static void
run_sleep(const struct jobd_job_view *job, jobd_ctx *ctx,
          struct jobd_result *res)
{
	cJSON *root = cJSON_ParseWithLength(job->payload, job->payload_len);
	const cJSON *secs = cJSON_GetObjectItemCaseSensitive(root, "seconds");
	double s;
	int reason;

	if (!cJSON_IsNumber(secs) || !isfinite(secs->valuedouble) ||
	    secs->valuedouble < 0) {
		cJSON_Delete(root);
		set_error(res, JOBD_FAILED_FOR_GOOD,
		          "sleep: payload must be {\"seconds\": <number >= 0>}");
		return;
	}
	s = secs->valuedouble;
	cJSON_Delete(root);
	if (s > 1e7)
		s = 1e7;
	reason = jobd_ctx_sleep(ctx, (int64_t)llround(s * 1000.0));
	if (reason != JOBD_STOP_NONE) {
		res->outcome = JOBD_STOPPED;
		return;
	}
	res->outcome = JOBD_SUCCEEDED;
}

static void
builtin_run(const struct handler_conf *h, const struct jobd_job_view *job,
            jobd_ctx *ctx, struct jobd_result *res)
{
	switch (h->builtin) {
	case BUILTIN_NOOP:
		res->outcome = JOBD_SUCCEEDED;
		return;
	case BUILTIN_ECHO:
		res->outcome = JOBD_SUCCEEDED;
		res->result = strdup(job->payload);
		if (res->result == NULL)
			set_error(res, JOBD_RETRY, "echo: out of memory");
		return;
	case BUILTIN_SLEEP:
		run_sleep(job, ctx, res);
		return;
	case BUILTIN_FAIL:
		set_error(res, JOBD_RETRY, "fail: this handler always fails");
		return;
	default:
		set_error(res, JOBD_FAILED_FOR_GOOD, "unknown builtin");
		return;
	}
}

const struct handler_kind handler_builtin_kind = {
	.name = "builtin",
	.run = builtin_run,
};
