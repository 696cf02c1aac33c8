/*
 * handler_builtin.c - the builtin handlers, for tests, benchmarks and health
 * checks: noop, echo, sleep and fail.  sleep reports its progress
 * ({"percent": N}) as it goes.
 */
#include <cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "handler.h"
#include "handler_ctx.h"

#define SLEEP_REPORT_MS 100 /* sleep's reports: at most this often */

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
	int64_t total, step;
	int reason;
	char report[32];

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
	total = (int64_t)llround(s * 1000.0);
	/* A report every 1 % or every SLEEP_REPORT_MS, whichever is
	 * rarer; the percentage is of the time slept so far. */
	step = total / 100 > SLEEP_REPORT_MS ? total / 100 : SLEEP_REPORT_MS;
	for (int64_t slept = 0; slept < total;) {
		int64_t ms = total - slept < step ? total - slept : step;
		reason = jobd_ctx_sleep(ctx, ms);
		if (reason != JOBD_STOP_NONE) {
			res->outcome = JOBD_STOPPED;
			return;
		}
		slept += ms;
		snprintf(report, sizeof(report), "{\"percent\": %d}",
		         (int)(slept * 100 / total));
		jobd_ctx_progress(ctx, report);
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
