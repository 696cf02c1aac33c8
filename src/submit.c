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
#include <strings.h>

#include "callback.h"
#include "clock.h"
#include "err.h"
#include <openssl/evp.h>

#include "submit.h"
#include "utf8.h"
#include "uuid.h"

#define MAX_DELAY_MS (366LL * 86400 * 1000)   /* one year ahead at most */
#define MAX_TIMEOUT_MS (7LL * 86400 * 1000)   /* a week per attempt */


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

/*
 * A strict RFC 8259 grammar check (no tree is built: cJSON parses after).
 * cJSON is lax - any byte <= 0x20 counts as whitespace, raw control
 * characters pass inside strings, "01" and "1." pass as numbers - and the
 * payload is kept as the client's own text, so it must be real JSON.
 */
struct jcheck {
	const char *p, *end;
	int max_depth;
	bool too_deep;
};

static void
j_ws(struct jcheck *j)
{
	while (j->p < j->end && (*j->p == ' ' || *j->p == '\t' ||
	                         *j->p == '\n' || *j->p == '\r'))
		j->p++;
}

static bool j_value(struct jcheck *j, int depth);

static bool
j_string(struct jcheck *j)
{
	j->p++; /* the opening quote */
	while (j->p < j->end) {
		unsigned char c = (unsigned char)*j->p++;
		if (c == '"')
			return true;
		if (c < 0x20)
			return false;
		if (c != '\\')
			continue;
		if (j->p >= j->end)
			return false;
		c = (unsigned char)*j->p++;
		if (c == 'u') {
			for (int i = 0; i < 4; i++, j->p++)
				if (j->p >= j->end || !isxdigit((unsigned char)*j->p))
					return false;
		} else if (!strchr("\"\\/bfnrt", c) || c == '\0') {
			return false;
		}
	}
	return false;
}

static bool
j_digits(struct jcheck *j)
{
	const char *start = j->p;

	while (j->p < j->end && isdigit((unsigned char)*j->p))
		j->p++;
	return j->p > start;
}

static bool
j_number(struct jcheck *j)
{
	if (*j->p == '-')
		j->p++;
	if (j->p >= j->end)
		return false;
	if (*j->p == '0')
		j->p++;
	else if (!j_digits(j))
		return false;
	if (j->p < j->end && *j->p == '.') {
		j->p++;
		if (!j_digits(j))
			return false;
	}
	if (j->p < j->end && (*j->p == 'e' || *j->p == 'E')) {
		j->p++;
		if (j->p < j->end && (*j->p == '+' || *j->p == '-'))
			j->p++;
		if (!j_digits(j))
			return false;
	}
	return true;
}

static bool
j_literal(struct jcheck *j, const char *word)
{
	size_t n = strlen(word);

	if ((size_t)(j->end - j->p) < n || memcmp(j->p, word, n) != 0)
		return false;
	j->p += n;
	return true;
}

static bool
j_value(struct jcheck *j, int depth)
{
	j_ws(j);
	if (j->p >= j->end)
		return false;
	switch (*j->p) {
	case '{':
	case '[': {
		char close = *j->p == '{' ? '}' : ']';
		bool object = close == '}';
		if (depth + 1 > j->max_depth) {
			j->too_deep = true;
			return false;
		}
		j->p++;
		j_ws(j);
		if (j->p < j->end && *j->p == close) {
			j->p++;
			return true;
		}
		for (;;) {
			if (object) {
				j_ws(j);
				if (j->p >= j->end || *j->p != '"' || !j_string(j))
					return false;
				j_ws(j);
				if (j->p >= j->end || *j->p++ != ':')
					return false;
			}
			if (!j_value(j, depth + 1))
				return false;
			j_ws(j);
			if (j->p >= j->end)
				return false;
			if (*j->p == ',') {
				j->p++;
				continue;
			}
			if (*j->p++ != close)
				return false;
			return true;
		}
	}
	case '"':
		return j_string(j);
	case 't':
		return j_literal(j, "true");
	case 'f':
		return j_literal(j, "false");
	case 'n':
		return j_literal(j, "null");
	default:
		if (*j->p == '-' || isdigit((unsigned char)*j->p))
			return j_number(j);
		return false;
	}
}

int
submit_json_strict(const char *buf, size_t len, int max_depth, char *err,
                   size_t errlen)
{
	struct jcheck j = {.p = buf, .end = buf + len, .max_depth = max_depth};

	if (j_value(&j, 0)) {
		j_ws(&j);
		if (j.p == j.end)
			return 0;
	}
	if (j.too_deep)
		return jobd_seterr(err, errlen, JOBD_EINVAL,
		                   "JSON nested deeper than %d levels", max_depth);
	return jobd_seterr(err, errlen, JOBD_EINVAL,
	                   "malformed JSON at byte %zu", (size_t)(j.p - buf));
}

/*
 * The raw text of the body's top-level members.  cJSON has validated the
 * syntax already; this only finds where each member's key and value lie,
 * so that the payload reaches the handler verbatim (cJSON would turn
 * 9007199254740993 into 9.00719925474099e+15) and so that keys and the
 * type are checked as sent (cJSON cuts strings at an escaped NUL).
 */
struct member {
	const char *key;   /* inside the quotes, raw (escapes not decoded) */
	size_t key_len;
	const char *val;   /* the value's text */
	size_t val_len;
};

#define MAX_MEMBERS 16

static const char *
skip_ws(const char *p, const char *end)
{
	while (p < end && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r'))
		p++;
	return p;
}

/* p at a '"': returns the char after the closing quote. */
static const char *
skip_string(const char *p, const char *end)
{
	for (p++; p < end; p++) {
		if (*p == '\\')
			p++;
		else if (*p == '"')
			return p + 1;
	}
	return end;
}

static const char *
skip_value(const char *p, const char *end)
{
	int depth = 0;

	if (p < end && *p == '"')
		return skip_string(p, end);
	if (p < end && *p != '{' && *p != '[') {
		while (p < end && *p != ',' && *p != '}' && *p != ']' &&
		       *p != ' ' && *p != '\t' && *p != '\n' && *p != '\r')
			p++;
		return p;
	}
	while (p < end) {
		if (*p == '"') {
			p = skip_string(p, end);
			continue;
		}
		if (*p == '{' || *p == '[')
			depth++;
		else if ((*p == '}' || *p == ']') && --depth == 0)
			return p + 1;
		p++;
	}
	return end;
}

/* Fills m[] with the members of a syntactically valid JSON object. */
static size_t
scan_members(const char *body, size_t len, struct member *m, size_t max)
{
	const char *p = body, *end = body + len;
	size_t n = 0;

	p = skip_ws(p, end);
	if (p >= end || *p != '{')
		return 0;
	p = skip_ws(p + 1, end);
	while (p < end && *p == '"' && n < max) {
		const char *k = p + 1;
		p = skip_string(p, end);
		m[n].key = k;
		m[n].key_len = (size_t)(p - 1 - k);
		p = skip_ws(p, end);
		if (p < end && *p == ':')
			p = skip_ws(p + 1, end);
		m[n].val = p;
		p = skip_value(p, end);
		m[n].val_len = (size_t)(p - m[n].val);
		n++;
		p = skip_ws(p, end);
		if (p < end && *p == ',')
			p = skip_ws(p + 1, end);
	}
	return n;
}

char *
submit_json_compact(const char *s, size_t len)
{
	char *out = malloc(len + 1), *o = out;
	const char *end = s + len;

	if (out == NULL)
		return NULL;
	while (s < end) {
		if (*s == '"') {
			const char *e = skip_string(s, end);
			memcpy(o, s, (size_t)(e - s));
			o += e - s;
			s = e;
		} else if (*s == ' ' || *s == '\t' || *s == '\n' || *s == '\r') {
			s++;
		} else {
			*o++ = *s++;
		}
	}
	*o = '\0';
	return out;
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

/*
 * The body as one JSON object: not empty, UTF-8, strict RFC 8259 within
 * the depth limit, nothing after the value.  0 and the parsed root in
 * *out (caller deletes), or JOBD_EINVAL with err.
 */
static int
parse_document(const char *body, size_t len, bool checked, cJSON **out,
               char *err, size_t errlen)
{
	const char *end = NULL;
	cJSON *root;
	int rc;

	if (len == 0)
		return jobd_seterr(err, errlen, JOBD_EINVAL,
		                   "the body is empty; send a JSON object");
	if (!checked && !utf8_valid(body, len))
		return jobd_seterr(err, errlen, JOBD_EINVAL,
		                   "the body is not valid UTF-8");
	rc = checked ? 0 : submit_json_strict(body, len, SUBMIT_MAX_DEPTH, err,
	                                      errlen);
	if (rc != 0)
		return rc;
	root = cJSON_ParseWithLengthOpts(body, len, &end, 0);
	if (root == NULL)
		return jobd_seterr(err, errlen, JOBD_EINVAL,
		                   "malformed JSON");
	/* Only whitespace may follow the value. */
	while (end < body + len && (*end == ' ' || *end == '\t' ||
	                            *end == '\n' || *end == '\r'))
		end++;
	if (end != body + len || !cJSON_IsObject(root)) {
		rc = jobd_seterr(err, errlen, JOBD_EINVAL, end != body + len
		                 ? "malformed JSON: trailing characters after the "
		                   "object" : "the body must be a JSON object");
		cJSON_Delete(root);
		return rc;
	}
	*out = root;
	return 0;
}

/*
 * Unknown or repeated fields are mistakes the client wants to hear of.
 * Keys are checked as sent: an escaped key never matches.  Fills the raw
 * members of "type" and "payload" (NULL when absent).
 */
static int
check_members(const char *body, size_t len, const cJSON *root,
              struct member *members, const struct member **type_m,
              const struct member **payload_m, const struct member **deps_m,
              const struct member **cb_m, char *err, size_t errlen)
{
	static const char *const known[] = {
		"type", "payload", "priority", "delay", "run_at",
		"max_attempts", "timeout", "cancel_on_disconnect",
		"depends_on", "callback_url", NULL,
	};
	size_t nmembers, nitems = 0;

	*type_m = *payload_m = *deps_m = *cb_m = NULL;
	for (const cJSON *item = root->child; item != NULL; item = item->next)
		nitems++;
	if (nitems > MAX_MEMBERS)
		return jobd_seterr(err, errlen, JOBD_ERANGE,
		                   "too many fields (%zu)", nitems);
	nmembers = scan_members(body, len, members, MAX_MEMBERS);
	for (size_t i = 0; i < nmembers; i++) {
		const struct member *mi = &members[i];
		int k;
		for (k = 0; known[k] != NULL; k++)
			if (strlen(known[k]) == mi->key_len &&
			    memcmp(mi->key, known[k], mi->key_len) == 0)
				break;
		if (known[k] == NULL)
			return jobd_seterr(err, errlen, JOBD_ERANGE,
			                   "unknown field \"%.*s\"",
			                   (int)(mi->key_len > 64 ? 64
			                                          : mi->key_len),
			                   mi->key);
		for (size_t j = 0; j < i; j++)
			if (members[j].key_len == mi->key_len &&
			    memcmp(members[j].key, mi->key, mi->key_len) == 0)
				return jobd_seterr(err, errlen, JOBD_EINVAL,
				                   "field \"%s\" appears twice",
				                   known[k]);
		if (k == 0)
			*type_m = mi;
		else if (k == 1)
			*payload_m = mi;
		else if (k == 8)
			*deps_m = mi;
		else if (k == 9)
			*cb_m = mi;
	}
	return 0;
}

/*
 * "callback_url": an http(s) URL of printable ASCII (no space, no
 * control, no escaped NUL that would cut it short), at most
 * JOB_CALLBACK_URL_MAX bytes, starting with one of [callbacks] allow.
 */
static int
parse_callback_url(const cJSON *root, const struct member *cb_m,
                   const struct config *cfg, struct job *job, char *err,
                   size_t errlen)
{
	const cJSON *item = cJSON_GetObjectItemCaseSensitive(root,
	                                                     "callback_url");
	const char *url;
	size_t n;
	bool allowed;

	if (item == NULL)
		return 0;
	if (!cJSON_IsString(item))
		return jobd_seterr(err, errlen, JOBD_EINVAL,
		                   "\"callback_url\" must be a string");
	url = item->valuestring;
	n = strlen(url);
	if (n > JOB_CALLBACK_URL_MAX)
		return jobd_seterr(err, errlen, JOBD_ERANGE, "\"callback_url\" "
		                   "is longer than %d bytes",
		                   JOB_CALLBACK_URL_MAX);
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)url[i] <= 0x20 ||
		    (unsigned char)url[i] >= 0x7f)
			return jobd_seterr(err, errlen, JOBD_ERANGE,
			                   "\"callback_url\" must be printable "
			                   "ASCII without spaces");
	for (size_t i = 0; cb_m != NULL && i + 6 <= cb_m->val_len; i++)
		if (cb_m->val[i] == '\\' && cb_m->val[i + 1] == 'u' &&
		    strncmp(cb_m->val + i + 2, "0000", 4) == 0)
			return jobd_seterr(err, errlen, JOBD_ERANGE,
			                   "\"callback_url\" must not contain "
			                   "\\u0000");
	if (strncmp(url, "http://", 7) != 0 && strncmp(url, "https://", 8) != 0)
		return jobd_seterr(err, errlen, JOBD_ERANGE, "\"callback_url\" "
		                   "must be an http:// or https:// URL");
	allowed = callback_url_allowed(cfg->callbacks.allow, url);
	if (!allowed)
		return jobd_seterr(err, errlen, JOBD_ERANGE, "\"callback_url\" "
		                   "is not allowed by [callbacks] allow");
	job->callback_url = strdup(url);
	if (job->callback_url == NULL)
		return jobd_seterr(err, errlen, JOBD_ENOMEM, "out of memory");
	return 0;
}

/* "type": a configured handler's name, whose defaults the job takes. */
static int
parse_type(const cJSON *root, const struct member *type_m,
           const struct config *cfg, int64_t now_us, struct job *job,
           char *err, size_t errlen)
{
	const cJSON *item = cJSON_GetObjectItemCaseSensitive(root, "type");
	const struct handler_conf *h;

	if (item == NULL)
		return jobd_seterr(err, errlen, JOBD_EINVAL,
		                   "\"type\" is required");
	if (!cJSON_IsString(item))
		return jobd_seterr(err, errlen, JOBD_EINVAL,
		                   "\"type\" must be a string");
	if (!job_type_valid(item->valuestring) ||
	    (type_m != NULL && memchr(type_m->val, '\\', type_m->val_len)))
		return jobd_seterr(err, errlen, JOBD_ERANGE,
		                   "\"type\" must match [A-Za-z0-9_.-]{1,64}");
	h = config_handler(cfg, item->valuestring);
	if (h == NULL)
		return jobd_seterr(err, errlen, JOBD_ERANGE,
		                   "no handler is configured for type \"%s\"",
		                   item->valuestring);
	strcpy(job->type, item->valuestring);
	job->max_attempts = (int)h->max_attempts;
	job->timeout_ms = h->timeout_ms;
	job->created_at_us = now_us;
	job->run_at_us = now_us;
	return 0;
}

/* "priority", "max_attempts", "timeout", "cancel_on_disconnect". */
static int
parse_options(const cJSON *root, struct job *job, char *err, size_t errlen)
{
	const cJSON *item;
	long v;
	int rc;

	item = cJSON_GetObjectItemCaseSensitive(root, "priority");
	if (item != NULL) {
		if ((rc = get_int(item, "priority", -100, 100, &v, err, errlen)))
			return rc;
		job->priority = (int)v;
	}
	item = cJSON_GetObjectItemCaseSensitive(root, "max_attempts");
	if (item != NULL) {
		if ((rc = get_int(item, "max_attempts", 1, 100, &v, err, errlen)))
			return rc;
		job->max_attempts = (int)v;
	}
	item = cJSON_GetObjectItemCaseSensitive(root, "timeout");
	if (item != NULL) {
		if (!cJSON_IsNumber(item) || !isfinite(item->valuedouble))
			return jobd_seterr(err, errlen, JOBD_EINVAL,
			                   "\"timeout\" must be a number of "
			                   "seconds");
		double ms = item->valuedouble * 1000.0;
		if (ms < 1.0 || ms > (double)MAX_TIMEOUT_MS)
			return jobd_seterr(err, errlen, JOBD_ERANGE,
			                   "\"timeout\" must be > 0 and at most "
			                   "%lld seconds",
			                   (long long)(MAX_TIMEOUT_MS / 1000));
		job->timeout_ms = (int64_t)llround(ms);
	}
	item = cJSON_GetObjectItemCaseSensitive(root, "cancel_on_disconnect");
	if (item != NULL) {
		if (!cJSON_IsBool(item))
			return jobd_seterr(err, errlen, JOBD_EINVAL,
			                   "\"cancel_on_disconnect\" must be a "
			                   "boolean");
		job->cancel_on_disconnect = cJSON_IsTrue(item);
	}
	return 0;
}

/* "delay" or "run_at" (not both): when the job becomes due. */
static int
parse_when(const cJSON *root, int64_t now_us, struct job *job, char *err,
           size_t errlen)
{
	const cJSON *delay = cJSON_GetObjectItemCaseSensitive(root, "delay");
	const cJSON *run_at = cJSON_GetObjectItemCaseSensitive(root, "run_at");

	if (delay != NULL && run_at != NULL)
		return jobd_seterr(err, errlen, JOBD_ERANGE,
		                   "give \"delay\" or \"run_at\", not both");
	if (delay != NULL) {
		if (!cJSON_IsNumber(delay) || !isfinite(delay->valuedouble))
			return jobd_seterr(err, errlen, JOBD_EINVAL,
			                   "\"delay\" must be a number of seconds");
		double ms = delay->valuedouble * 1000.0;
		if (ms < 0 || ms > (double)MAX_DELAY_MS)
			return jobd_seterr(err, errlen, JOBD_ERANGE,
			                   "\"delay\" must be between 0 and %lld "
			                   "seconds",
			                   (long long)(MAX_DELAY_MS / 1000));
		job->run_at_us = now_us + (int64_t)llround(ms) * 1000;
	}
	if (run_at != NULL) {
		int64_t at;
		if (!cJSON_IsString(run_at))
			return jobd_seterr(err, errlen, JOBD_EINVAL,
			                   "\"run_at\" must be an RFC 3339 string");
		if (clock_parse_rfc3339(run_at->valuestring, &at) != 0)
			return jobd_seterr(err, errlen, JOBD_EINVAL,
			                   "\"run_at\" is not an RFC 3339 "
			                   "date-time (e.g. 2026-01-02T03:04:05Z)");
		at *= 1000; /* ms to the store's µs */
		if (at > now_us + MAX_DELAY_MS * 1000)
			return jobd_seterr(err, errlen, JOBD_ERANGE,
			                   "\"run_at\" is more than a year ahead");
		/* A time in the past means "now": the job is due. */
		job->run_at_us = at > now_us ? at : now_us;
	}
	return 0;
}

/* "#N", N a decimal index below limit (no sign, no leading zero): N,
 * else -1. */
static long
batch_ref(const char *s, size_t limit)
{
	long v = 0;

	if (s[0] != '#' || !isdigit((unsigned char)s[1]) ||
	    (s[1] == '0' && s[2] != '\0'))
		return -1;
	for (const char *p = s + 1; *p != '\0'; p++) {
		if (!isdigit((unsigned char)*p) || v > 1000000)
			return -1;
		v = v * 10 + (*p - '0');
	}
	return (size_t)v < limit ? v : -1;
}

/* refs_below for a job that is not in a batch: no "#N" at all. */
#define NO_BATCH SIZE_MAX

/* submit_depends_on(), with "#N" allowed for N < refs_below (in element
 * refs_below of a batch). */
static int
depends_on_text(const char *const *ids, size_t n, size_t refs_below,
                char **out, char *err, size_t errlen)
{
	char *text = NULL;
	size_t used = 0;

	*out = NULL;
	if (n > JOB_MAX_DEPENDS_ON)
		return jobd_seterr(err, errlen, JOBD_ERANGE, "\"depends_on\" "
		                   "lists %zu jobs; at most %d", n,
		                   JOB_MAX_DEPENDS_ON);
	for (size_t i = 0; i < n; i++) {
		if (uuid_is_valid(ids[i]))
			continue;
		if (refs_below != NO_BATCH && ids[i][0] == '#') {
			if (batch_ref(ids[i], refs_below) >= 0)
				continue;
			return jobd_seterr(err, errlen, JOBD_ERANGE,
			                   "\"depends_on\"[%zu]: \"#N\" must name "
			                   "an earlier element of the batch", i);
		}
		return jobd_seterr(err, errlen, JOBD_ERANGE,
		                   "\"depends_on\"[%zu]: no such job (not a job "
		                   "id)", i);
	}
	if (n == 0)
		return 0;
	/* Every entry is at most 36 characters (an id, or "#" and at most
	 * 7 digits), each followed by a space or the NUL. */
	text = malloc(n * UUID_STR_LEN);
	if (text == NULL)
		return jobd_seterr(err, errlen, JOBD_ENOMEM, "out of memory");
	text[0] = '\0';
	for (size_t i = 0; i < n; i++) {
		bool seen = false;
		/* A repeated id is one dependency. */
		for (size_t j = 0; j < i && !seen; j++)
			seen = strcasecmp(ids[j], ids[i]) == 0;
		if (seen)
			continue;
		if (used > 0)
			text[used++] = ' ';
		for (const char *c = ids[i]; *c != '\0'; c++)
			text[used++] = (char)tolower((unsigned char)*c);
		text[used] = '\0';
	}
	*out = text;
	return 0;
}

int
submit_depends_on(const char *const *ids, size_t n, char **out, char *err,
                  size_t errlen)
{
	return depends_on_text(ids, n, NO_BATCH, out, err, errlen);
}

int
submit_depends_on_batch(const char *const *ids, size_t n, size_t index,
                        char **out, char *err, size_t errlen)
{
	return depends_on_text(ids, n, index, out, err, errlen);
}

int
submit_depends_on_resolve(char **depends_on, const struct job *jobs,
                          size_t njobs)
{
	char ids[JOB_MAX_DEPENDS_ON][UUID_STR_LEN], *text = NULL;
	const char *toks[JOB_MAX_DEPENDS_ON], *p = *depends_on;
	size_t n = 0;
	int rc;

	if (p == NULL || strchr(p, '#') == NULL)
		return 0;
	while (n < JOB_MAX_DEPENDS_ON && job_depends_on_next(&p, ids[n])) {
		if (ids[n][0] == '#') {
			long r = batch_ref(ids[n], njobs);
			if (r < 0)
				return JOBD_ERANGE;
			snprintf(ids[n], UUID_STR_LEN, "%s", jobs[r].id);
		}
		toks[n] = ids[n];
		n++;
	}
	rc = depends_on_text(toks, n, NO_BATCH, &text, NULL, 0);
	if (rc != 0)
		return rc;
	free(*depends_on);
	*depends_on = text;
	return 0;
}

/* "depends_on": an array of job ids; in element refs_below of a batch,
 * also "#N" for N < refs_below (resolved by the writer). */
static int
parse_depends_on(const cJSON *root, const struct member *deps_m,
                 size_t refs_below, struct job *job, char *err,
                 size_t errlen)
{
	const cJSON *arr = cJSON_GetObjectItemCaseSensitive(root, "depends_on");
	const char *ids[JOB_MAX_DEPENDS_ON];
	const cJSON *item;
	size_t n = 0;

	if (arr == NULL)
		return 0;
	if (!cJSON_IsArray(arr))
		return jobd_seterr(err, errlen, JOBD_EINVAL, "\"depends_on\" "
		                   "must be an array of job ids");
	/* Ids need no escapes; an escaped one might hide a NUL, after
	 * which cJSON's string would stop at a job id it is not. */
	if (deps_m != NULL && memchr(deps_m->val, '\\', deps_m->val_len))
		return jobd_seterr(err, errlen, JOBD_ERANGE, "\"depends_on\": "
		                   "no such job (job ids have no escapes)");
	cJSON_ArrayForEach(item, arr) {
		if (!cJSON_IsString(item))
			return jobd_seterr(err, errlen, JOBD_EINVAL,
			                   "\"depends_on\"[%zu] must be a job id "
			                   "(a string)", n);
		if (n == JOB_MAX_DEPENDS_ON)
			return jobd_seterr(err, errlen, JOBD_ERANGE,
			                   "\"depends_on\" lists more than %d "
			                   "jobs", JOB_MAX_DEPENDS_ON);
		ids[n++] = item->valuestring;
	}
	return depends_on_text(ids, n, refs_below, &job->depends_on, err,
	                       errlen);
}

static int
parse_job(const char *body, size_t len, bool checked, size_t refs_below,
          const struct config *cfg, int64_t now_us, struct job *job,
          char *err, size_t errlen)
{
	struct member members[MAX_MEMBERS];
	const struct member *type_m, *payload_m, *deps_m, *cb_m;
	cJSON *root = NULL;
	int rc;

	rc = parse_document(body, len, checked, &root, err, errlen);
	if (rc != 0)
		return rc;
	rc = check_members(body, len, root, members, &type_m, &payload_m,
	                   &deps_m, &cb_m, err, errlen);
	if (rc == 0)
		rc = parse_type(root, type_m, cfg, now_us, job, err, errlen);
	if (rc == 0)
		rc = parse_options(root, job, err, errlen);
	if (rc == 0)
		rc = parse_when(root, now_us, job, err, errlen);
	if (rc == 0)
		rc = parse_depends_on(root, deps_m, refs_below, job, err,
		                      errlen);
	if (rc == 0)
		rc = parse_callback_url(root, cb_m, cfg, job, err, errlen);
	if (rc == 0) {
		/* The payload as sent, less insignificant whitespace. */
		job->payload = payload_m != NULL
		    ? submit_json_compact(payload_m->val, payload_m->val_len)
		    : strdup("null");
		if (job->payload == NULL)
			rc = jobd_seterr(err, errlen, JOBD_ENOMEM,
			                 "out of memory");
	}
	cJSON_Delete(root);
	if (rc != 0)
		job_clear(job);
	return rc;
}

int
submit_parse(const char *body, size_t len, const struct config *cfg,
             int64_t now_us, struct job *job, char *err, size_t errlen)
{
	return parse_job(body, len, false, NO_BATCH, cfg, now_us, job, err,
	                 errlen);
}

int
submit_parse_element(const char *body, size_t len, size_t index,
                     const struct config *cfg, int64_t now_us,
                     struct job *job, char *err, size_t errlen)
{
	return parse_job(body, len, true, index, cfg, now_us, job, err,
	                 errlen);
}

/*
 * The canonical text of a submission, for its fingerprint: the client's
 * own bytes for every string, key and number (never a re-print, which
 * would round integers above 2^53 and cut strings at \u0000), without the
 * whitespace between tokens, and with the members of every object sorted
 * by their raw key bytes (then by value), so that member order and
 * spacing do not make two submissions of the same job differ.
 */
struct canon {
	char *buf;
	size_t len, cap;
	bool failed;
};

static void
canon_put(struct canon *c, const char *s, size_t n)
{
	if (c->failed)
		return;
	if (c->len + n > c->cap) {
		size_t cap = c->cap ? c->cap : 256;
		while (cap < c->len + n)
			cap *= 2;
		char *b = realloc(c->buf, cap);
		if (b == NULL) {
			c->failed = true;
			return;
		}
		c->buf = b;
		c->cap = cap;
	}
	memcpy(c->buf + c->len, s, n);
	c->len += n;
}

struct canon_member {
	const char *key;        /* raw, quotes included */
	size_t key_len;
	size_t val_off;         /* the value's canonical text in the buffer */
	size_t val_len;
	const char *base;       /* the buffer while sorting */
};

static int
canon_member_cmp(const void *pa, const void *pb)
{
	const struct canon_member *a = pa, *b = pb;
	size_t n = a->key_len < b->key_len ? a->key_len : b->key_len;
	int c = memcmp(a->key, b->key, n);

	if (c != 0)
		return c;
	if (a->key_len != b->key_len)
		return a->key_len < b->key_len ? -1 : 1;
	/* The same key twice: order by value, so the text is still one. */
	n = a->val_len < b->val_len ? a->val_len : b->val_len;
	c = memcmp(a->base + a->val_off, b->base + b->val_off, n);
	if (c != 0)
		return c;
	return a->val_len < b->val_len ? -1 : a->val_len > b->val_len;
}

/* Appends the canonical text of the JSON value at p (valid JSON, checked
 * by submit_parse); returns the end of the value in the input. */
static const char *
canon_value(struct canon *c, const char *p, const char *end)
{
	const char *q;

	p = skip_ws(p, end);
	if (p >= end || c->failed)
		return end;
	if (*p == '[') {
		canon_put(c, "[", 1);
		p = skip_ws(p + 1, end);
		for (bool first = true; p < end && *p != ']'; first = false) {
			if (!first)
				canon_put(c, ",", 1);
			p = skip_ws(canon_value(c, p, end), end);
			if (p < end && *p == ',')
				p++;
		}
		canon_put(c, "]", 1);
		return p < end ? p + 1 : end;
	}
	if (*p != '{') {
		q = skip_value(p, end);
		canon_put(c, p, (size_t)(q - p));
		return q;
	}
	/* An object: each value's canonical text goes to the buffer as it
	 * comes, then the members are written again in key order. */
	struct canon_member *m = NULL;
	size_t n = 0, cap = 0, start = c->len;

	p = skip_ws(p + 1, end);
	while (p < end && *p == '"' && !c->failed) {
		if (n == cap) {
			cap = cap ? cap * 2 : 8;
			struct canon_member *mm = realloc(m, cap * sizeof(*m));
			if (mm == NULL) {
				c->failed = true;
				break;
			}
			m = mm;
		}
		q = skip_string(p, end);
		m[n].key = p;
		m[n].key_len = (size_t)(q - p);
		p = skip_ws(q, end);
		if (p < end && *p == ':')
			p++;
		m[n].val_off = c->len;
		p = skip_ws(canon_value(c, p, end), end);
		m[n].val_len = c->len - m[n].val_off;
		n++;
		if (p < end && *p == ',')
			p = skip_ws(p + 1, end);
	}
	if (!c->failed) {
		size_t vals = c->len - start;
		char *tmp = malloc(vals ? vals : 1);
		if (tmp == NULL) {
			c->failed = true;
		} else {
			memcpy(tmp, c->buf + start, vals);
			for (size_t i = 0; i < n; i++) {
				m[i].val_off -= start;
				m[i].base = tmp;
			}
			if (n > 1)
				qsort(m, n, sizeof(*m), canon_member_cmp);
			c->len = start;
			canon_put(c, "{", 1);
			for (size_t i = 0; i < n; i++) {
				if (i > 0)
					canon_put(c, ",", 1);
				canon_put(c, m[i].key, m[i].key_len);
				canon_put(c, ":", 1);
				canon_put(c, tmp + m[i].val_off, m[i].val_len);
			}
			canon_put(c, "}", 1);
			free(tmp);
		}
	}
	free(m);
	return p < end ? p + 1 : end;
}

int
submit_fingerprint(const char *body, size_t len,
                   char out[SUBMIT_FINGERPRINT_LEN + 1])
{
	struct canon c = {0};
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;
	int ok;

	/* + 1: a batch's array around its jobs (a single job's depth was
	 * checked against SUBMIT_MAX_DEPTH before). */
	if (submit_json_strict(body, len, SUBMIT_MAX_DEPTH + 1, NULL, 0) != 0)
		return JOBD_EINVAL;
	/* The canonical text is never longer than the body. */
	c.cap = len + 1;
	c.buf = malloc(c.cap);
	if (c.buf == NULL)
		return JOBD_ENOMEM;
	canon_value(&c, body, body + len);
	if (c.failed) {
		free(c.buf);
		return JOBD_ENOMEM;
	}
	ok = EVP_Digest(c.buf, c.len, md, &mdlen, EVP_sha256(), NULL);
	free(c.buf);
	if (!ok || mdlen * 2 != SUBMIT_FINGERPRINT_LEN)
		return JOBD_ENOMEM;
	for (unsigned int i = 0; i < mdlen; i++)
		snprintf(out + 2 * i, 3, "%02x", md[i]);
	return 0;
}
