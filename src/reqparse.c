/*
 * reqparse.c - request headers and query parameters as pure functions
 * (see reqparse.h for the rules).  Kept apart from api.c so that the
 * parsing of what any client may send can be fuzzed without a daemon.
 */
#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "err.h"
#include "job.h"
#include "reqparse.h"
#include "uuid.h"

/* Past this many whole seconds a wait is clamped anyway: counting stops
 * here, so that no number of digits can overflow. */
#define WAIT_SECONDS_CAP 1000000000000LL

static const char wait_rule[] =
	"wait must be a number of seconds >= 0 (e.g. 5 or 1.5, at most "
	"32 characters)";

int
reqparse_wait(const char *s, size_t len, int64_t max_wait_ms,
              int64_t *out_ms, char *err, size_t errlen)
{
	const char *p, *end;
	int64_t secs = 0, frac_ms = 0, ms;
	int frac_digits = 0;

	if (s == NULL || len == 0 || len > REQPARSE_WAIT_MAX_LEN)
		return jobd_seterr(err, errlen, JOBD_EINVAL, "%s", wait_rule);
	p = s;
	end = s + len;
	if (*p == '"') {
		if (len < 2 || end[-1] != '"')
			return jobd_seterr(err, errlen, JOBD_EINVAL, "%s",
			                   wait_rule);
		p++;
		end--;
	}
	if (p >= end || !isdigit((unsigned char)*p))
		return jobd_seterr(err, errlen, JOBD_EINVAL, "%s", wait_rule);
	for (; p < end && isdigit((unsigned char)*p); p++)
		if (secs < WAIT_SECONDS_CAP)
			secs = secs * 10 + (*p - '0');
	if (p < end && *p == '.') {
		p++;
		if (p >= end)
			return jobd_seterr(err, errlen, JOBD_EINVAL, "%s",
			                   wait_rule);
		for (; p < end && isdigit((unsigned char)*p); p++)
			if (frac_digits++ < 3)
				frac_ms = frac_ms * 10 + (*p - '0');
		for (int i = frac_digits; i < 3; i++)
			frac_ms *= 10;
	}
	if (p != end)
		return jobd_seterr(err, errlen, JOBD_EINVAL, "%s", wait_rule);
	if (secs > WAIT_SECONDS_CAP)
		secs = WAIT_SECONDS_CAP;
	ms = secs * 1000 + frac_ms; /* at most 1e15 + 999: no overflow */
	if (max_wait_ms < 0)
		max_wait_ms = 0;
	*out_ms = ms > max_wait_ms ? max_wait_ms : ms;
	return 0;
}

/* RFC 9110 tchar. */
static bool
is_tchar(unsigned char c)
{
	return isalnum(c) || (c != '\0' && strchr("!#$%&'*+-.^_`|~", c));
}

static const char *
skip_ows(const char *p)
{
	while (*p == ' ' || *p == '\t')
		p++;
	return p;
}

/* p at a '"': returns the char after the closing quote (or the end). */
static const char *
skip_quoted(const char *p)
{
	for (p++; *p != '\0'; p++) {
		if (*p == '\\' && p[1] != '\0')
			p++;
		else if (*p == '"')
			return p + 1;
	}
	return p;
}

/* Returns the start of the next list element (after a ',' outside quoted
 * strings), or the end of the string. */
static const char *
next_element(const char *p)
{
	while (*p != '\0' && *p != ',') {
		if (*p == '"')
			p = skip_quoted(p);
		else
			p++;
	}
	return *p == ',' ? p + 1 : p;
}

int
reqparse_prefer(const char *header, int64_t max_wait_ms,
                struct reqparse_prefer *out, char *err, size_t errlen)
{
	const char *p = header;
	bool seen_wait = false, seen_async = false;

	out->wait_ms = -1;
	out->respond_async = false;
	while (p != NULL && *p != '\0') {
		const char *name, *val = NULL, *after;
		size_t name_len, val_len = 0;

		while (*p == ' ' || *p == '\t' || *p == ',')
			p++;
		if (*p == '\0')
			break;
		name = p;
		while (is_tchar((unsigned char)*p))
			p++;
		name_len = (size_t)(p - name);
		after = skip_ows(p);
		if (name_len > 0 && *after == '=') {
			val = skip_ows(after + 1);
			if (*val == '"')
				after = skip_quoted(val);
			else
				for (after = val; is_tchar((unsigned char)*after);)
					after++;
			val_len = (size_t)(after - val);
			after = skip_ows(after);
		}
		if (name_len == 4 && strncasecmp(name, "wait", 4) == 0 &&
		    !seen_wait) {
			seen_wait = true;
			/* Only ";" parameters (ignored) may follow the value. */
			if (val == NULL || (*after != '\0' && *after != ',' &&
			                    *after != ';'))
				return jobd_seterr(err, errlen, JOBD_EINVAL,
				                   "Prefer: %s", wait_rule);
			if (reqparse_wait(val, val_len, max_wait_ms,
			                  &out->wait_ms, NULL, 0) != 0) {
				out->wait_ms = -1;
				return jobd_seterr(err, errlen, JOBD_EINVAL,
				                   "Prefer: %s", wait_rule);
			}
		} else if (name_len == 13 &&
		           strncasecmp(name, "respond-async", 13) == 0 &&
		           !seen_async) {
			seen_async = true;
			out->respond_async = val == NULL;
		}
		p = next_element(p);
	}
	return 0;
}

void
reqparse_format_wait(int64_t ms, char *buf, size_t buflen)
{
	long long s = (long long)(ms / 1000);
	int f = (int)(ms % 1000);

	if (ms < 0) {
		s = 0;
		f = 0;
	}
	if (f == 0)
		snprintf(buf, buflen, "wait=%lld", s);
	else if (f % 100 == 0)
		snprintf(buf, buflen, "wait=%lld.%d", s, f / 100);
	else if (f % 10 == 0)
		snprintf(buf, buflen, "wait=%lld.%02d", s, f / 10);
	else
		snprintf(buf, buflen, "wait=%lld.%03d", s, f);
}

int
reqparse_idem_key(const char *key, char *err, size_t errlen)
{
	size_t n = key != NULL ? strlen(key) : 0;
	bool ok = n >= 1 && n <= REQPARSE_KEY_MAX;

	for (size_t i = 0; ok && i < n; i++)
		ok = key[i] >= 0x20 && key[i] <= 0x7e;
	if (!ok)
		return jobd_seterr(err, errlen, JOBD_EINVAL, "Idempotency-Key "
		                   "must be 1 to 255 printable ASCII characters");
	/* The keys of the schedules' jobs (schedule.h): a client's job
	 * under a tick's key would replace the tick's job. */
	if (strncmp(key, "schedule:", 9) == 0)
		return jobd_seterr(err, errlen, JOBD_EINVAL, "Idempotency-Key "
		                   "must not start with \"schedule:\" (reserved "
		                   "for the jobs of schedules)");
	return 0;
}

int
reqparse_limit(const char *s, size_t *out, char *err, size_t errlen)
{
	size_t v = 0;

	if (s == NULL) {
		*out = REQPARSE_LIMIT_DEFAULT;
		return 0;
	}
	if (*s == '\0')
		goto bad;
	for (const char *p = s; *p != '\0'; p++) {
		if (!isdigit((unsigned char)*p))
			goto bad;
		if (v <= REQPARSE_LIMIT_MAX)
			v = v * 10 + (size_t)(*p - '0');
	}
	if (v < 1)
		goto bad;
	*out = v > REQPARSE_LIMIT_MAX ? REQPARSE_LIMIT_MAX : v;
	return 0;
bad:
	return jobd_seterr(err, errlen, JOBD_EINVAL,
	                   "limit must be an integer from 1 to 1000");
}

int
reqparse_after(const char *s, char out[37], char *err, size_t errlen)
{
	if (s == NULL || strlen(s) != 36 || !uuid_is_valid(s))
		return jobd_seterr(err, errlen, JOBD_EINVAL,
		                   "after must be a job id (from \"next\")");
	for (int i = 0; i < 36; i++)
		out[i] = (char)tolower((unsigned char)s[i]);
	out[36] = '\0';
	return 0;
}

int
reqparse_status(const char *s, int *out, char *err, size_t errlen)
{
	int st = s != NULL ? job_status_parse(s) : -1;

	if (st < 0)
		return jobd_seterr(err, errlen, JOBD_EINVAL,
		                   "status must be one of queued, running, "
		                   "succeeded, failed, cancelled");
	*out = st;
	return 0;
}

int
reqparse_type(const char *s, char *err, size_t errlen)
{
	if (s == NULL || !job_type_valid(s))
		return jobd_seterr(err, errlen, JOBD_EINVAL,
		                   "type must match [A-Za-z0-9_.-]{1,64}");
	return 0;
}
