/*
 * submit.c - POST /jobs bodies: checks before parsing (UTF-8, depth), cJSON
 * parsing, and validation of every field of DESIGN.md §2.
 */
#include <cJSON.h>
#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "err.h"
#include "submit.h"

#define MAX_DELAY_MS (366LL * 86400 * 1000)   /* one year ahead at most */
#define MAX_TIMEOUT_MS (7LL * 86400 * 1000)   /* a week per attempt */

bool
submit_utf8_valid(const char *buf, size_t len)
{
	const unsigned char *s = (const unsigned char *)buf;
	size_t i = 0;

	while (i < len) {
		unsigned char c = s[i];
		size_t n;
		uint32_t cp;

		if (c < 0x80) {
			i++;
			continue;
		} else if ((c & 0xe0) == 0xc0) {
			n = 1;
			cp = c & 0x1f;
		} else if ((c & 0xf0) == 0xe0) {
			n = 2;
			cp = c & 0x0f;
		} else if ((c & 0xf8) == 0xf0) {
			n = 3;
			cp = c & 0x07;
		} else {
			return false;
		}
		if (len - i <= n)
			return false;
		for (size_t k = 1; k <= n; k++) {
			if ((s[i + k] & 0xc0) != 0x80)
				return false;
			cp = cp << 6 | (s[i + k] & 0x3f);
		}
		if ((n == 1 && cp < 0x80) || (n == 2 && cp < 0x800) ||
		    (n == 3 && cp < 0x10000) || cp > 0x10ffff ||
		    (cp >= 0xd800 && cp <= 0xdfff))
			return false;
		i += n + 1;
	}
	return true;
}

int
submit_json_depth(const char *buf, size_t len, int limit)
{
	int depth = 0, max = 0;
	bool in_string = false;

	for (size_t i = 0; i < len; i++) {
		char c = buf[i];
		if (in_string) {
			if (c == '\\')
				i++;
			else if (c == '"')
				in_string = false;
			continue;
		}
		if (c == '"') {
			in_string = true;
		} else if (c == '[' || c == '{') {
			if (++depth > max) {
				max = depth;
				if (max > limit)
					return limit + 1;
			}
		} else if (c == ']' || c == '}') {
			depth--;
		}
	}
	return max;
}

static bool
valid_type(const char *s)
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

/* An integral JSON number within [min, max]: 0, JOBD_EINVAL or JOBD_ERANGE. */
static int
get_int(const cJSON *item, const char *name, long min, long max, long *out,
        char *err, size_t errlen)
{
	double v;

	if (!cJSON_IsNumber(item))
		return jobd_seterr(err, errlen, JOBD_EINVAL,
		                   "\"%s\" must be an integer", name);
	v = item->valuedouble;
	if (!isfinite(v) || v != floor(v))
		return jobd_seterr(err, errlen, JOBD_EINVAL,
		                   "\"%s\" must be an integer", name);
	if (v < (double)min || v > (double)max)
		return jobd_seterr(err, errlen, JOBD_ERANGE,
		                   "\"%s\" must be between %ld and %ld", name, min,
		                   max);
	*out = (long)v;
	return 0;
}

int
submit_parse(const char *body, size_t len, const struct config *cfg,
             int64_t now_ms, struct job *job, char *err, size_t errlen)
{
	cJSON *root = NULL;
	const cJSON *item, *delay = NULL, *run_at = NULL;
	const struct handler_conf *h;
	long v;
	int rc;

	if (len == 0)
		return jobd_seterr(err, errlen, JOBD_EINVAL,
		                   "the body is empty; send a JSON object");
	if (!submit_utf8_valid(body, len))
		return jobd_seterr(err, errlen, JOBD_EINVAL,
		                   "the body is not valid UTF-8");
	if (submit_json_depth(body, len, SUBMIT_MAX_DEPTH) > SUBMIT_MAX_DEPTH)
		return jobd_seterr(err, errlen, JOBD_EINVAL,
		                   "JSON nested deeper than %d levels",
		                   SUBMIT_MAX_DEPTH);
	const char *end = NULL;
	root = cJSON_ParseWithLengthOpts(body, len, &end, 0);
	if (root == NULL)
		return jobd_seterr(err, errlen, JOBD_EINVAL,
		                   "malformed JSON");
	/* Only whitespace may follow the value. */
	while (end < body + len && (*end == ' ' || *end == '\t' ||
	                            *end == '\n' || *end == '\r'))
		end++;
	if (end != body + len) {
		rc = jobd_seterr(err, errlen, JOBD_EINVAL,
		                 "malformed JSON: trailing characters after the "
		                 "object");
		goto out;
	}
	if (!cJSON_IsObject(root)) {
		rc = jobd_seterr(err, errlen, JOBD_EINVAL,
		                 "the body must be a JSON object");
		goto out;
	}
	/* Unknown or repeated fields are mistakes the client wants to hear of. */
	for (item = root->child; item != NULL; item = item->next) {
		static const char *const known[] = {
			"type", "payload", "priority", "delay", "run_at",
			"max_attempts", "timeout", "cancel_on_disconnect", NULL,
		};
		int k;
		for (k = 0; known[k] != NULL; k++)
			if (strcmp(item->string, known[k]) == 0)
				break;
		if (known[k] == NULL) {
			rc = jobd_seterr(err, errlen, JOBD_ERANGE,
			                 "unknown field \"%.64s\"", item->string);
			goto out;
		}
		for (const cJSON *o = root->child; o != item; o = o->next)
			if (strcmp(o->string, item->string) == 0) {
				rc = jobd_seterr(err, errlen, JOBD_EINVAL,
				                 "field \"%s\" appears twice",
				                 item->string);
				goto out;
			}
	}

	item = cJSON_GetObjectItemCaseSensitive(root, "type");
	if (item == NULL) {
		rc = jobd_seterr(err, errlen, JOBD_EINVAL,
		                 "\"type\" is required");
		goto out;
	}
	if (!cJSON_IsString(item)) {
		rc = jobd_seterr(err, errlen, JOBD_EINVAL,
		                 "\"type\" must be a string");
		goto out;
	}
	if (!valid_type(item->valuestring)) {
		rc = jobd_seterr(err, errlen, JOBD_ERANGE,
		                 "\"type\" must match [A-Za-z0-9_.-]{1,64}");
		goto out;
	}
	h = config_handler(cfg, item->valuestring);
	if (h == NULL) {
		rc = jobd_seterr(err, errlen, JOBD_ERANGE,
		                 "no handler is configured for type \"%s\"",
		                 item->valuestring);
		goto out;
	}
	strcpy(job->type, item->valuestring);
	job->max_attempts = (int)h->max_attempts;
	job->timeout_ms = h->timeout_ms;
	job->created_at_ms = now_ms;
	job->run_at_ms = now_ms;

	item = cJSON_GetObjectItemCaseSensitive(root, "priority");
	if (item != NULL) {
		if ((rc = get_int(item, "priority", -100, 100, &v, err, errlen)))
			goto out;
		job->priority = (int)v;
	}
	item = cJSON_GetObjectItemCaseSensitive(root, "max_attempts");
	if (item != NULL) {
		if ((rc = get_int(item, "max_attempts", 1, 100, &v, err, errlen)))
			goto out;
		job->max_attempts = (int)v;
	}
	item = cJSON_GetObjectItemCaseSensitive(root, "timeout");
	if (item != NULL) {
		if (!cJSON_IsNumber(item) || !isfinite(item->valuedouble)) {
			rc = jobd_seterr(err, errlen, JOBD_EINVAL,
			                 "\"timeout\" must be a number of seconds");
			goto out;
		}
		double ms = item->valuedouble * 1000.0;
		if (ms < 1.0 || ms > (double)MAX_TIMEOUT_MS) {
			rc = jobd_seterr(err, errlen, JOBD_ERANGE,
			                 "\"timeout\" must be > 0 and at most "
			                 "%lld seconds",
			                 (long long)(MAX_TIMEOUT_MS / 1000));
			goto out;
		}
		job->timeout_ms = (int64_t)llround(ms);
	}
	delay = cJSON_GetObjectItemCaseSensitive(root, "delay");
	run_at = cJSON_GetObjectItemCaseSensitive(root, "run_at");
	if (delay != NULL && run_at != NULL) {
		rc = jobd_seterr(err, errlen, JOBD_ERANGE,
		                 "give \"delay\" or \"run_at\", not both");
		goto out;
	}
	if (delay != NULL) {
		if (!cJSON_IsNumber(delay) || !isfinite(delay->valuedouble)) {
			rc = jobd_seterr(err, errlen, JOBD_EINVAL,
			                 "\"delay\" must be a number of seconds");
			goto out;
		}
		double ms = delay->valuedouble * 1000.0;
		if (ms < 0 || ms > (double)MAX_DELAY_MS) {
			rc = jobd_seterr(err, errlen, JOBD_ERANGE,
			                 "\"delay\" must be between 0 and %lld "
			                 "seconds", (long long)(MAX_DELAY_MS / 1000));
			goto out;
		}
		job->run_at_ms = now_ms + (int64_t)llround(ms);
	}
	if (run_at != NULL) {
		int64_t at;
		if (!cJSON_IsString(run_at)) {
			rc = jobd_seterr(err, errlen, JOBD_EINVAL,
			                 "\"run_at\" must be an RFC 3339 string");
			goto out;
		}
		if (clock_parse_rfc3339(run_at->valuestring, &at) != 0) {
			rc = jobd_seterr(err, errlen, JOBD_EINVAL,
			                 "\"run_at\" is not an RFC 3339 date-time "
			                 "(e.g. 2026-01-02T03:04:05Z)");
			goto out;
		}
		if (at > now_ms + MAX_DELAY_MS) {
			rc = jobd_seterr(err, errlen, JOBD_ERANGE,
			                 "\"run_at\" is more than a year ahead");
			goto out;
		}
		/* A time in the past means "now": the job is due. */
		job->run_at_ms = at > now_ms ? at : now_ms;
	}
	item = cJSON_GetObjectItemCaseSensitive(root, "cancel_on_disconnect");
	if (item != NULL) {
		if (!cJSON_IsBool(item)) {
			rc = jobd_seterr(err, errlen, JOBD_EINVAL,
			                 "\"cancel_on_disconnect\" must be a "
			                 "boolean");
			goto out;
		}
		job->cancel_on_disconnect = cJSON_IsTrue(item);
	}
	item = cJSON_GetObjectItemCaseSensitive(root, "payload");
	job->payload = item != NULL ? cJSON_PrintUnformatted(item)
	                            : strdup("null");
	if (job->payload == NULL) {
		rc = jobd_seterr(err, errlen, JOBD_ENOMEM, "out of memory");
		goto out;
	}
	rc = 0;
out:
	cJSON_Delete(root);
	if (rc != 0)
		job_clear(job);
	return rc;
}

/* Sorts an object's members by key, recursively (for canonical JSON). */
static void
sort_members(cJSON *item)
{
	cJSON *c;

	if (item == NULL)
		return;
	for (c = item->child; c != NULL; c = c->next)
		sort_members(c);
	if (!cJSON_IsObject(item) || item->child == NULL)
		return;
	/* Insertion sort of the linked list: objects here are small. */
	cJSON *sorted = NULL, *next;
	for (c = item->child; c != NULL; c = next) {
		next = c->next;
		c->next = c->prev = NULL;
		if (sorted == NULL || strcmp(c->string, sorted->string) < 0) {
			c->next = sorted;
			sorted = c;
			continue;
		}
		cJSON *at = sorted;
		while (at->next != NULL && strcmp(at->next->string, c->string) <= 0)
			at = at->next;
		c->next = at->next;
		at->next = c;
	}
	/* cJSON links: prev of the head points at the tail. */
	cJSON *prev = NULL, *tail = NULL;
	for (c = sorted; c != NULL; c = c->next) {
		c->prev = prev;
		prev = c;
		tail = c;
	}
	sorted->prev = tail;
	item->child = sorted;
}

int
submit_fingerprint(const char *body, size_t len, char out[17])
{
	cJSON *root = cJSON_ParseWithLength(body, len);
	char *text;
	uint64_t h = 14695981039346656037ULL;

	if (root == NULL)
		return JOBD_EINVAL;
	sort_members(root);
	text = cJSON_PrintUnformatted(root);
	cJSON_Delete(root);
	if (text == NULL)
		return JOBD_ENOMEM;
	for (const char *p = text; *p; p++)
		h = (h ^ (uint8_t)*p) * 1099511628211ULL;
	free(text);
	snprintf(out, 17, "%016llx", (unsigned long long)h);
	return 0;
}
