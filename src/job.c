/*
 * job.c - job status names, life of the struct, and JSON rendering.
 *
 * payload and result are stored as JSON text; they are embedded raw into
 * the rendered object (cJSON_CreateRaw), never re-parsed.
 */
#include <cJSON.h>
#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "err.h"
#include "job.h"

static const char *const status_names[JOB_NSTATUS] = {
	"queued", "running", "succeeded", "failed", "cancelled",
	"waiting",
};

const char *
job_status_name(int status)
{
	if (status < 0 || status >= JOB_NSTATUS)
		return NULL;
	return status_names[status];
}

int
job_status_parse(const char *name)
{
	for (int i = 0; i < JOB_NSTATUS; i++)
		if (strcmp(status_names[i], name) == 0)
			return i;
	return -1;
}

bool
job_status_is_final(int status)
{
	return status == JOB_SUCCEEDED || status == JOB_FAILED ||
	       status == JOB_CANCELLED;
}

bool
job_type_valid(const char *s)
{
	size_t n = strlen(s);

	if (n < 1 || n > JOB_TYPE_MAX)
		return false;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if (!isalnum(c) && c != '_' && c != '.' && c != '-')
			return false;
	}
	return true;
}

void
job_init(struct job *job)
{
	memset(job, 0, sizeof(*job));
	job->created_at_us = -1;
	job->run_at_us = -1;
	job->started_at_us = -1;
	job->finished_at_us = -1;
	job->cancel_on_disconnect = true;
}

void
job_clear(struct job *job)
{
	free(job->payload);
	free(job->result);
	free(job->error);
	free(job->idem_key);
	free(job->idem_fp);
	free(job->depends_on);
	free(job->progress);
	free(job->callback_url);
	free(job->callback);
	job_init(job);
}

void
job_free(struct job *job)
{
	if (job == NULL)
		return;
	job_clear(job);
	free(job);
}

static int
dup_or_null(const char *s, char **out)
{
	*out = s != NULL ? strdup(s) : NULL;
	return s != NULL && *out == NULL ? -1 : 0;
}

int
job_copy(struct job *dst, const struct job *src)
{
	*dst = *src;
	dst->payload = dst->result = dst->error = NULL;
	dst->idem_key = dst->idem_fp = dst->depends_on = dst->progress = NULL;
	dst->callback_url = dst->callback = NULL;
	if (dup_or_null(src->depends_on, &dst->depends_on) ||
	    dup_or_null(src->progress, &dst->progress) ||
	    dup_or_null(src->callback_url, &dst->callback_url) ||
	    dup_or_null(src->callback, &dst->callback) ||
	    dup_or_null(src->payload, &dst->payload) ||
	    dup_or_null(src->result, &dst->result) ||
	    dup_or_null(src->error, &dst->error) ||
	    dup_or_null(src->idem_key, &dst->idem_key) ||
	    dup_or_null(src->idem_fp, &dst->idem_fp)) {
		job_clear(dst);
		return JOBD_ENOMEM;
	}
	return 0;
}

void
job_move(struct job *dst, struct job *src)
{
	*dst = *src;
	job_init(src);
}

/* A stored time (µs since the epoch) as the API shows it: RFC 3339 in ms. */
static cJSON *
time_or_null(int64_t us)
{
	char buf[40];

	if (us < 0)
		return cJSON_CreateNull();
	clock_format_rfc3339(us / 1000, buf, sizeof(buf));
	return cJSON_CreateString(buf);
}

/* The schedule that made the job, from its key
 * ("schedule:<name>:<tick>", a prefix clients may not use), or null. */
static cJSON *
schedule_or_null(const struct job *job)
{
	const char *k = job->idem_key, *end;
	char name[JOB_TYPE_MAX + 1];

	if (k == NULL || strncmp(k, "schedule:", 9) != 0)
		return cJSON_CreateNull();
	k += 9;
	end = strchr(k, ':');
	if (end == NULL || end == k || (size_t)(end - k) > JOB_TYPE_MAX)
		return cJSON_CreateNull();
	memcpy(name, k, (size_t)(end - k));
	name[end - k] = '\0';
	return cJSON_CreateString(name);
}

bool
job_depends_on_next(const char **p, char out[UUID_STR_LEN])
{
	while (*p != NULL && **p != '\0') {
		size_t n = strcspn(*p, " ");
		const char *id = *p;
		*p += n;
		*p += strspn(*p, " ");
		if (n > 0 && n < UUID_STR_LEN) {
			memcpy(out, id, n);
			out[n] = '\0';
			return true;
		}
	}
	return false;
}

/* "depends_on": the ids as an array ([] when none). */
static bool
add_depends_on(cJSON *o, const char *ids)
{
	cJSON *a = cJSON_AddArrayToObject(o, "depends_on");
	char id[UUID_STR_LEN];

	if (a == NULL)
		return false;
	while (job_depends_on_next(&ids, id))
		if (!cJSON_AddItemToArray(a, cJSON_CreateString(id)))
			return false;
	return true;
}

/* "callback": the store's object (re-printed compact), or null. */
static bool
add_callback(cJSON *o, const struct job *job)
{
	cJSON *c = job->callback != NULL ? cJSON_Parse(job->callback) : NULL;

	if (c == NULL || !cJSON_IsObject(c)) {
		cJSON_Delete(c);
		c = cJSON_CreateNull();
	}
	return cJSON_AddItemToObject(o, "callback", c);
}

static cJSON *
job_to_cjson(const struct job *job)
{
	cJSON *o = cJSON_CreateObject();
	bool ok = o != NULL;

	if (!ok)
		return NULL;
	ok = ok && cJSON_AddStringToObject(o, "id", job->id);
	ok = ok && cJSON_AddStringToObject(o, "type", job->type);
	ok = ok && cJSON_AddStringToObject(o, "status",
	                                   job_status_name(job->status));
	ok = ok && cJSON_AddNumberToObject(o, "priority", job->priority);
	ok = ok && cJSON_AddNumberToObject(o, "attempt", job->attempt);
	ok = ok && cJSON_AddNumberToObject(o, "max_attempts", job->max_attempts);
	ok = ok && cJSON_AddItemToObject(o, "created_at",
	                                 time_or_null(job->created_at_us));
	ok = ok && cJSON_AddItemToObject(o, "run_at", time_or_null(job->run_at_us));
	ok = ok && cJSON_AddItemToObject(o, "started_at",
	                                 time_or_null(job->started_at_us));
	ok = ok && cJSON_AddItemToObject(o, "finished_at",
	                                 time_or_null(job->finished_at_us));
	ok = ok && cJSON_AddItemToObject(o, "payload",
	                                 job->payload ? cJSON_CreateRaw(job->payload)
	                                              : cJSON_CreateNull());
	ok = ok && cJSON_AddItemToObject(o, "result",
	                                 job->result ? cJSON_CreateRaw(job->result)
	                                             : cJSON_CreateNull());
	ok = ok && cJSON_AddItemToObject(o, "error",
	                                 job->error ? cJSON_CreateString(job->error)
	                                            : cJSON_CreateNull());
	ok = ok && cJSON_AddItemToObject(o, "exit_code",
	                                 job->has_exit_code
	                                     ? cJSON_CreateNumber(job->exit_code)
	                                     : cJSON_CreateNull());
	ok = ok && cJSON_AddBoolToObject(o, "output_truncated",
	                                 job->output_truncated);
	ok = ok && cJSON_AddNumberToObject(o, "timeout",
	                                   (double)job->timeout_ms / 1000.0);
	ok = ok && cJSON_AddItemToObject(o, "schedule", schedule_or_null(job));
	ok = ok && add_depends_on(o, job->depends_on);
	ok = ok && cJSON_AddItemToObject(o, "progress",
	                                 job->progress
	                                     ? cJSON_CreateRaw(job->progress)
	                                     : cJSON_CreateNull());
	ok = ok && add_callback(o, job);
	if (!ok) {
		cJSON_Delete(o);
		return NULL;
	}
	return o;
}

char *
job_to_json(const struct job *job)
{
	cJSON *o = job_to_cjson(job);
	char *s;

	if (o == NULL)
		return NULL;
	s = cJSON_PrintUnformatted(o);
	cJSON_Delete(o);
	return s;
}

int
job_add_to_cjson_array(const struct job *job, void *cjson_array)
{
	cJSON *o = job_to_cjson(job);

	if (o == NULL)
		return JOBD_ENOMEM;
	if (!cJSON_AddItemToArray(cjson_array, o)) {
		cJSON_Delete(o);
		return JOBD_ENOMEM;
	}
	return 0;
}

int
job_cmp_claim_order(const void *a, const void *b)
{
	const struct job *x = a, *y = b;

	if (x->priority != y->priority)
		return y->priority - x->priority;
	return strcmp(x->id, y->id);
}
