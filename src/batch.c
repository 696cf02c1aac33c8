/*
 * batch.c - POST /jobs with a JSON array: the body checked once as a
 * whole (UTF-8, strict JSON, depth), cut into its elements, and each
 * element validated as a single submission (submit_parse), so that a
 * batch accepts exactly what a single POST does.  See batch.h.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "batch.h"
#include "err.h"
#include "submit.h"
#include "utf8.h"
#include "uuid.h"

static bool
is_ws(char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

bool
batch_is_array(const char *body, size_t len)
{
	size_t i = 0;

	while (i < len && is_ws(body[i]))
		i++;
	return i < len && body[i] == '[';
}

/* The end of the JSON value at p (the text is strict JSON already). */
static const char *
value_end(const char *p, const char *end)
{
	int depth = 0;

	while (p < end) {
		char c = *p;
		if (c == '"') {
			for (p++; p < end && *p != '"'; p++)
				if (*p == '\\')
					p++;
			p++;
			if (depth == 0)
				return p;
			continue;
		}
		if (c == '[' || c == '{') {
			depth++;
		} else if (c == ']' || c == '}') {
			if (depth == 0)
				return p; /* the end of a number or literal */
			if (--depth == 0)
				return p + 1;
		} else if (depth == 0 && (c == ',' || is_ws(c))) {
			return p; /* the end of a number or literal */
		}
		p++;
	}
	return end;
}

struct span {
	size_t off, len;
};

/*
 * The elements of the array body[0..len) (strict JSON): their spans in
 * *spans (new array), at most limit + 1 of them counted.
 */
static int
cut_elements(const char *body, size_t len, size_t limit,
             struct span **spans, size_t *n)
{
	const char *p = body, *end = body + len;
	size_t cap = 0;

	*spans = NULL;
	*n = 0;
	while (p < end && is_ws(*p))
		p++;
	p++; /* '[' */
	for (;;) {
		while (p < end && (is_ws(*p) || *p == ','))
			p++;
		if (p >= end || *p == ']')
			break;
		const char *e = value_end(p, end);
		if (*n == cap) {
			cap = cap ? cap * 2 : 64;
			if (cap > limit + 1)
				cap = limit + 1;
			struct span *s = realloc(*spans, cap * sizeof(*s));
			if (s == NULL) {
				free(*spans);
				*spans = NULL;
				return JOBD_ENOMEM;
			}
			*spans = s;
		}
		(*spans)[*n] = (struct span){(size_t)(p - body),
		                             (size_t)(e - p)};
		if (++*n > limit)
			break;
		p = e;
	}
	return 0;
}

/* Adds an element's error (the array grows as needed). */
static int
add_error(struct batch_error **errs, size_t *nerrs, size_t *cap,
          size_t index, int rc, const char *detail)
{
	if (*nerrs == *cap) {
		size_t c = *cap ? *cap * 2 : 8;
		struct batch_error *e = realloc(*errs, c * sizeof(*e));
		if (e == NULL)
			return JOBD_ENOMEM;
		*errs = e;
		*cap = c;
	}
	(*errs)[*nerrs].index = index;
	(*errs)[*nerrs].rc = rc;
	snprintf((*errs)[*nerrs].detail, sizeof((*errs)[0].detail), "%s",
	         detail);
	(*nerrs)++;
	return 0;
}

int
batch_parse(const char *body, size_t len, const struct config *cfg,
            int64_t max_batch, int64_t now_us, struct job **jobs,
            size_t *njobs, struct batch_error **errs, size_t *nerrs,
            char *err, size_t errlen)
{
	struct span *spans = NULL;
	struct job *out = NULL;
	size_t n = 0, errcap = 0;
	bool malformed = false;
	int rc;

	*jobs = NULL;
	*njobs = 0;
	*errs = NULL;
	*nerrs = 0;
	if (!utf8_valid(body, len))
		return jobd_seterr(err, errlen, JOBD_EINVAL,
		                   "the body is not valid UTF-8");
	/* One level more than a single job: the array. */
	rc = submit_json_strict(body, len, SUBMIT_MAX_DEPTH + 1, err, errlen);
	if (rc != 0)
		return rc;
	if (!batch_is_array(body, len))
		return jobd_seterr(err, errlen, JOBD_EINVAL,
		                   "the body must be a JSON array of jobs");
	if (max_batch < 1)
		max_batch = 1;
	rc = cut_elements(body, len, (size_t)max_batch, &spans, &n);
	if (rc != 0)
		return jobd_seterr(err, errlen, rc, "out of memory");
	if (n == 0) {
		rc = jobd_seterr(err, errlen, JOBD_ERANGE, "the batch is empty; "
		                 "send 1 to %lld jobs", (long long)max_batch);
		goto out;
	}
	if (n > (size_t)max_batch) {
		rc = jobd_seterr(err, errlen, JOBD_ERANGE, "a batch holds at "
		                 "most server.max_batch = %lld jobs",
		                 (long long)max_batch);
		goto out;
	}
	out = calloc(n, sizeof(*out));
	if (out == NULL) {
		rc = jobd_seterr(err, errlen, JOBD_ENOMEM, "out of memory");
		goto out;
	}
	for (size_t i = 0; i < n; i++)
		job_init(&out[i]);
	for (size_t i = 0; i < n; i++) {
		const char *e = body + spans[i].off;
		char why[200];
		int erc;
		if (*e != '{') {
			erc = jobd_seterr(why, sizeof(why), JOBD_EINVAL,
			                  "each element must be a JSON object "
			                  "(a job)");
		} else {
			/* Checked with the whole body (an element is one
			 * level less deep than its array). */
			erc = submit_parse_element(e, spans[i].len, i, cfg,
			                           now_us, &out[i], why,
			                           sizeof(why));
		}
		if (erc == JOBD_ENOMEM) {
			rc = jobd_seterr(err, errlen, erc, "out of memory");
			goto out;
		}
		if (erc == 0)
			continue;
		malformed |= erc == JOBD_EINVAL;
		if (add_error(errs, nerrs, &errcap, i, erc, why) != 0) {
			rc = jobd_seterr(err, errlen, JOBD_ENOMEM,
			                 "out of memory");
			goto out;
		}
	}
	if (*nerrs > 0) {
		rc = jobd_seterr(err, errlen, malformed ? JOBD_EINVAL
		                 : JOBD_ERANGE, "%zu of the %zu jobs %s invalid "
		                 "(see errors); nothing was submitted", *nerrs,
		                 n, *nerrs == 1 ? "is" : "are");
		goto out;
	}
	*jobs = out;
	*njobs = n;
	out = NULL;
	rc = 0;
out:
	if (rc != 0 && rc != JOBD_EINVAL && rc != JOBD_ERANGE) {
		free(*errs);
		*errs = NULL;
		*nerrs = 0;
	}
	batch_jobs_free(out, n);
	free(spans);
	return rc;
}

int
batch_assign_ids(struct job *jobs, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (uuid_v7_new(jobs[i].id) != 0)
			return JOBD_EBUSY;
	/* "#N" references of depends_on stay until the writer, which
	 * checks the other ids first (batch_resolve_refs). */
	return 0;
}

int
batch_outside_deps(const struct job *jobs, size_t n, struct batch_deps *d)
{
	size_t cap = 0;

	memset(d, 0, sizeof(*d));
	for (size_t i = 0; i < n; i++) {
		const char *p = jobs[i].depends_on;
		char id[UUID_STR_LEN];
		while (p != NULL && job_depends_on_next(&p, id)) {
			if (id[0] == '#')
				continue;
			if (d->n == cap) {
				size_t c = cap ? cap * 2 : 16;
				char (*ids)[UUID_STR_LEN] =
				    realloc(d->ids, c * sizeof(*ids));
				size_t *el = ids ? realloc(d->element,
				                           c * sizeof(*el))
				                 : NULL;
				if (ids != NULL)
					d->ids = ids;
				if (el == NULL) {
					batch_deps_free(d);
					return JOBD_ENOMEM;
				}
				d->element = el;
				cap = c;
			}
			memcpy(d->ids[d->n], id, UUID_STR_LEN);
			d->element[d->n++] = i;
		}
	}
	return 0;
}

void
batch_deps_free(struct batch_deps *d)
{
	free(d->ids);
	free(d->element);
	memset(d, 0, sizeof(*d));
}

int
batch_resolve_refs(struct job *jobs, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		int rc = submit_depends_on_resolve(&jobs[i].depends_on, jobs,
		                                   i);
		if (rc != 0)
			return rc;
	}
	return 0;
}

void
batch_element_key(const char *key, size_t i, const char *first_id,
                  char *out, size_t outlen)
{
	snprintf(out, outlen, "%s\x1f%zu\x1f%s", key, i, first_id);
}

int
batch_set_keys(struct job *jobs, size_t n, const char *key, const char *fp)
{
	char k[BATCH_KEY_MAX + 1];

	for (size_t i = 0; i < n; i++) {
		if (i == 0)
			snprintf(k, sizeof(k), "%s", key);
		else
			batch_element_key(key, i, jobs[0].id, k, sizeof(k));
		free(jobs[i].idem_key);
		free(jobs[i].idem_fp);
		jobs[i].idem_key = strdup(k);
		jobs[i].idem_fp = strdup(fp);
		if (jobs[i].idem_key == NULL || jobs[i].idem_fp == NULL)
			return JOBD_ENOMEM;
	}
	return 0;
}

void
batch_jobs_free(struct job *jobs, size_t n)
{
	if (jobs == NULL)
		return;
	for (size_t i = 0; i < n; i++)
		job_clear(&jobs[i]);
	free(jobs);
}
