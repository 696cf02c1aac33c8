/*
 * api.c - routes, validation, JSON answers and problems (DESIGN.md §2).
 *
 * Reads go straight to the store's reader connections; writes go through
 * the writer, and a request that waits (for the writer, or for its job's
 * end) is handed to wait.c while it is suspended.
 *
 * LOCKING: api runs on the HTTP threads only; a call belongs to the HTTP
 * thread that handles its request, except while it is pending, when only
 * wait.c's callbacks (writer thread, events) touch its wait_req (wait.h).
 * The shared answer bodies are the one state several threads reach (any
 * HTTP thread, and libmicrohttpd releasing a sent body): bodies_mu guards
 * bodies[] and every body's refs, and is a leaf lock.  draining is atomic.
 */
#include <cJSON.h>
#include <ctype.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <strings.h>
#include <time.h>

#include "api.h"
#include "batch.h"
#include "clock.h"
#include "dashboard.h"
#include "err.h"
#include "handler.h"
#include "log.h"
#include "rate.h"
#include "sse.h"
#include "reqparse.h"
#include "stats.h"
#include "submit.h"
#include "uuid.h"
#include "wait.h"

/*
 * A finished job rendered once and shared by every answer that carries it
 * while it is being sent (the waiters woken by its end, and anyone who
 * GETs it meanwhile): however many wait for a big job, they hold one
 * copy.  A final job changes only through a retry, which gives it
 * another attempt and finished_at: those and the status are the key.
 * Bodies are looked up in a small table while someone holds them; the
 * last release takes them out and frees them, so nothing is kept for
 * nobody.
 */
struct api_body {
	api *owner;
	int refs;               /* guarded by owner->bodies_mu */
	char id[UUID_STR_LEN];
	int status;
	int attempt;
	int64_t finished_at_us;
	size_t len;
	char *data;
};

#define API_SHARED_BODIES 64

/*
 * LOCKING: bodies_mu guards bodies[] and every api_body's refs.  It is a
 * leaf lock (nothing else is taken under it).
 */
struct api {
	const struct config *cfg;
	store *st;
	writer *w;
	events *ev;
	auth *au;
	atomic_bool draining;
	api_gauges_fn gauges;
	void *gauges_arg;
	pthread_mutex_t bodies_mu;
	struct api_body *bodies[API_SHARED_BODIES];
	int64_t started_at_ms;   /* GET /nodes of an unshared store */
	schedules *sched;        /* poked after a pause or resume */
	progress *prog;          /* running attempts' reports, or NULL */
};

enum { PENDING_NONE, PENDING_WRITER, PENDING_WAIT };

/* ---- routes ---- */

/* "/schedules/<name>/<action>": the schedule's name into out (a valid
 * name, else ""). */
static void
schedule_name(const char *path, char out[JOB_TYPE_MAX + 1])
{
	size_t n;

	out[0] = '\0';
	if (strncmp(path, "/schedules/", 11) != 0)
		return;
	path += 11;
	n = strcspn(path, "/");
	if (n == 0 || n > JOB_TYPE_MAX)
		return;
	memcpy(out, path, n);
	out[n] = '\0';
	if (!job_type_valid(out))
		out[0] = '\0';
}

static int
schedule_route(const char *path)
{
	char name[JOB_TYPE_MAX + 1];
	const char *act;

	schedule_name(path, name);
	if (name[0] == '\0')
		return ROUTE_NONE;
	act = path + 11 + strlen(name);
	if (strcmp(act, "/trigger") == 0)
		return ROUTE_SCHEDULE_TRIGGER;
	if (strcmp(act, "/pause") == 0)
		return ROUTE_SCHEDULE_PAUSE;
	if (strcmp(act, "/resume") == 0)
		return ROUTE_SCHEDULE_RESUME;
	return ROUTE_NONE;
}

int
api_route(const char *path, char id[37])
{
	size_t n;

	id[0] = '\0';
	if (path == NULL)
		return ROUTE_NONE;
	if (strcmp(path, "/") == 0)
		return ROUTE_ROOT;
	if (strcmp(path, "/healthz") == 0)
		return ROUTE_HEALTHZ;
	if (strcmp(path, "/readyz") == 0)
		return ROUTE_READYZ;
	if (strcmp(path, "/metrics") == 0)
		return ROUTE_METRICS;
	if (strcmp(path, "/stats") == 0)
		return ROUTE_STATS;
	if (strcmp(path, "/types") == 0)
		return ROUTE_TYPES;
	if (strcmp(path, "/nodes") == 0)
		return ROUTE_NODES;
	if (strcmp(path, "/events") == 0)
		return ROUTE_EVENTS;
	if (strcmp(path, "/openapi.json") == 0)
		return ROUTE_OPENAPI;
	if (strncmp(path, "/types/", 7) == 0) {
		char name[JOB_TYPE_MAX + 1];
		n = strcspn(path + 7, "/");
		if (n < 1 || n > JOB_TYPE_MAX)
			return ROUTE_NONE;
		memcpy(name, path + 7, n);
		name[n] = '\0';
		if (!job_type_valid(name))
			return ROUTE_NONE;
		if (strcmp(path + 7 + n, "/pause") == 0)
			return ROUTE_TYPE_PAUSE;
		if (strcmp(path + 7 + n, "/resume") == 0)
			return ROUTE_TYPE_RESUME;
		return ROUTE_NONE;
	}
	if (strcmp(path, "/schedules") == 0)
		return ROUTE_SCHEDULES;
	if (strncmp(path, "/schedules/", 11) == 0)
		return schedule_route(path);
	if (strcmp(path, "/jobs") == 0 || strcmp(path, "/jobs/") == 0)
		return ROUTE_JOBS;
	if (strncmp(path, "/jobs/", 6) != 0)
		return ROUTE_NONE;
	path += 6;
	n = strcspn(path, "/");
	if (n != 36)
		return ROUTE_NONE;
	memcpy(id, path, 36);
	id[36] = '\0';
	if (!uuid_is_valid(id)) {
		id[0] = '\0';
		return ROUTE_NONE;
	}
	for (int i = 0; i < 36; i++)
		id[i] = (char)tolower((unsigned char)id[i]);
	path += 36;
	if (*path == '\0')
		return ROUTE_JOB;
	if (strcmp(path, "/retry") == 0)
		return ROUTE_JOB_RETRY;
	id[0] = '\0';
	return ROUTE_NONE;
}

const char *
api_route_allow(int route)
{
	switch (route) {
	case ROUTE_JOBS: return "GET, HEAD, POST";
	case ROUTE_JOB: return "GET, HEAD, DELETE";
	case ROUTE_JOB_RETRY: return "POST";
	case ROUTE_TYPE_PAUSE: return "POST";
	case ROUTE_TYPE_RESUME: return "POST";
	case ROUTE_SCHEDULE_TRIGGER:
	case ROUTE_SCHEDULE_PAUSE:
	case ROUTE_SCHEDULE_RESUME: return "POST";
	default: return "GET, HEAD";
	}
}

static bool
method_allowed(int route, int method)
{
	switch (route) {
	case ROUTE_JOBS:
		return method == API_GET || method == API_HEAD ||
		       method == API_POST;
	case ROUTE_JOB:
		return method == API_GET || method == API_HEAD ||
		       method == API_DELETE;
	case ROUTE_JOB_RETRY:
	case ROUTE_TYPE_PAUSE:
	case ROUTE_TYPE_RESUME:
	case ROUTE_SCHEDULE_TRIGGER:
	case ROUTE_SCHEDULE_PAUSE:
	case ROUTE_SCHEDULE_RESUME:
		return method == API_POST;
	default:
		return method == API_GET || method == API_HEAD;
	}
}

/* ---- life ---- */

api *
api_new(const struct config *cfg, store *st, writer *w, events *ev,
        auth *au)
{
	api *a = calloc(1, sizeof(*a));

	if (a == NULL)
		return NULL;
	a->cfg = cfg;
	a->st = st;
	a->w = w;
	a->ev = ev;
	a->au = au;
	a->started_at_ms = clock_now_ms();
	pthread_mutex_init(&a->bodies_mu, NULL);
	return a;
}

void
api_free(api *a)
{
	if (a == NULL)
		return;
	/* Bodies still held by responses free themselves when released;
	 * by now libmicrohttpd has stopped and released them all. */
	pthread_mutex_destroy(&a->bodies_mu);
	free(a);
}

void
api_body_release(void *body)
{
	struct api_body *b = body;
	api *a;
	bool last;

	if (b == NULL)
		return;
	a = b->owner;
	pthread_mutex_lock(&a->bodies_mu);
	last = --b->refs == 0;
	if (last)
		for (int i = 0; i < API_SHARED_BODIES; i++)
			if (a->bodies[i] == b)
				a->bodies[i] = NULL;
	pthread_mutex_unlock(&a->bodies_mu);
	if (last) {
		free(b->data);
		free(b);
	}
}

/* The shared body of this finished job state, with a reference for the
 * caller; NULL when there is none. */
static struct api_body *
body_lookup(api *a, const struct job *job)
{
	struct api_body *found = NULL;

	pthread_mutex_lock(&a->bodies_mu);
	for (int i = 0; i < API_SHARED_BODIES && found == NULL; i++) {
		struct api_body *b = a->bodies[i];
		if (b != NULL && strcmp(b->id, job->id) == 0 &&
		    b->status == job->status && b->attempt == job->attempt &&
		    b->finished_at_us == job->finished_at_us) {
			b->refs++;
			found = b;
		}
	}
	pthread_mutex_unlock(&a->bodies_mu);
	return found;
}

/* Makes a shared body of text (taking it), with one reference for the
 * caller, and lists it when there is room (else it is shared by
 * nobody, and still sent).  NULL when out of memory (text is freed). */
static struct api_body *
body_share(api *a, const struct job *job, char *text)
{
	struct api_body *b = calloc(1, sizeof(*b));

	if (b == NULL) {
		free(text);
		return NULL;
	}
	b->owner = a;
	b->refs = 1;
	memcpy(b->id, job->id, sizeof(b->id));
	b->status = job->status;
	b->attempt = job->attempt;
	b->finished_at_us = job->finished_at_us;
	b->data = text;
	b->len = strlen(text);
	pthread_mutex_lock(&a->bodies_mu);
	for (int i = 0; i < API_SHARED_BODIES; i++)
		if (a->bodies[i] == NULL) {
			a->bodies[i] = b;
			break;
		}
	pthread_mutex_unlock(&a->bodies_mu);
	return b;
}

void
api_set_gauges(api *a, api_gauges_fn fn, void *arg)
{
	a->gauges = fn;
	a->gauges_arg = arg;
}

void
api_set_schedules(api *a, schedules *sc)
{
	a->sched = sc;
}

void
api_set_progress(api *a, progress *p)
{
	a->prog = p;
}

void
api_set_draining(api *a)
{
	atomic_store(&a->draining, true);
}

void
api_call_init(struct api_call *call)
{
	memset(call, 0, sizeof(*call));
	call->fd = -1;
	call->wait_ms = -1;
}

void
api_call_clear(struct api_call *call)
{
	free(call->body_out);
	call->body_out = NULL;
	api_body_release(call->body_shared);
	call->body_shared = NULL;
	call->body_shared_data = NULL;
	wait_free(call->wait);
	call->wait = NULL;
	sse_stream_abort(call->stream);
	call->stream = NULL;
}

/* ---- responses ---- */

const char *
api_call_job_id(const struct api_call *call)
{
	if (call->wait != NULL && wait_op(call->wait)->job.id[0] != '\0')
		return wait_op(call->wait)->job.id;
	return call->id[0] != '\0' ? call->id : "-";
}

int
api_status_for(int code)
{
	switch (code) {
	case JOBD_OK: return 200;
	case JOBD_EINVAL: return 400;
	case JOBD_ERANGE: return 422;
	case JOBD_ENOTFOUND: return 404;
	case JOBD_ECONFLICT: return 409;
	case JOBD_ENOMEM:
	case JOBD_EIO:
	case JOBD_EFULL:
	case JOBD_EUNAVAIL:
	case JOBD_EBUSY: return 503;
	default: return 500;
	}
}

static void
add_header(struct api_call *call, const char *name, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

#include <stdarg.h>
static void
add_header(struct api_call *call, const char *name, const char *fmt, ...)
{
	va_list ap;

	if (call->nheaders >= API_MAX_HEADERS)
		return;
	call->headers[call->nheaders].name = name;
	va_start(ap, fmt);
	vsnprintf(call->headers[call->nheaders].value,
	          sizeof(call->headers[0].value), fmt, ap);
	va_end(ap);
	call->nheaders++;
}

/*
 * JSON text as an answer body: followed by a newline, so that curl's
 * output does not run into the prompt.  Takes text (may be NULL); NULL
 * when out of memory.
 */
static char *
json_line(char *text)
{
	size_t n;
	char *more;

	if (text == NULL)
		return NULL;
	n = strlen(text);
	more = realloc(text, n + 2);
	if (more == NULL) {
		free(text);
		return NULL;
	}
	more[n] = '\n';
	more[n + 1] = '\0';
	return more;
}

static void
set_body(struct api_call *call, int status, const char *type, char *body)
{
	api_body_release(call->body_shared);
	call->body_shared = NULL;
	call->body_shared_data = NULL;
	free(call->body_out);
	call->status = status;
	call->content_type = type;
	call->body_out = body;
	call->body_out_len = body ? strlen(body) : 0;
}

static void
set_json(struct api_call *call, int status, cJSON *obj)
{
	char *text = obj ? json_line(cJSON_PrintUnformatted(obj)) : NULL;

	cJSON_Delete(obj);
	if (text == NULL) {
		api_problem(call, 503, "out-of-memory", "Service Unavailable",
		            "out of memory building the answer");
		return;
	}
	set_body(call, status, "application/json", text);
}

static const char *
status_title(int status)
{
	switch (status) {
	case 400: return "Bad Request";
	case 401: return "Unauthorized";
	case 403: return "Forbidden";
	case 404: return "Not Found";
	case 405: return "Method Not Allowed";
	case 409: return "Conflict";
	case 413: return "Content Too Large";
	case 415: return "Unsupported Media Type";
	case 422: return "Unprocessable Content";
	case 500: return "Internal Server Error";
	case 503: return "Service Unavailable";
	default: return "Error";
	}
}

void
api_problem(struct api_call *call, int status, const char *slug,
            const char *title, const char *detail)
{
	cJSON *o = cJSON_CreateObject();
	char type[96];
	char *text;

	snprintf(type, sizeof(type), "/problems/%s", slug);
	if (o == NULL ||
	    !cJSON_AddStringToObject(o, "type", type) ||
	    !cJSON_AddStringToObject(o, "title",
	                             title ? title : status_title(status)) ||
	    !cJSON_AddNumberToObject(o, "status", status) ||
	    !cJSON_AddStringToObject(o, "detail", detail ? detail : "")) {
		cJSON_Delete(o);
		set_body(call, status, "application/problem+json", NULL);
		return;
	}
	text = json_line(cJSON_PrintUnformatted(o));
	cJSON_Delete(o);
	set_body(call, status, "application/problem+json", text);
	if (status == 503)
		add_header(call, "Retry-After", "1");
}

/* A problem for a JOBD_E* code with the detail the code came with. */
static void
problem_for(struct api_call *call, int code, const char *detail)
{
	int status = api_status_for(code);
	const char *slug;

	switch (code) {
	case JOBD_EINVAL: slug = "bad-request"; break;
	case JOBD_ERANGE: slug = "invalid-field"; break;
	case JOBD_ENOTFOUND: slug = "not-found"; break;
	case JOBD_ECONFLICT: slug = "conflict"; break;
	case JOBD_EFULL: slug = "store-full"; break;
	case JOBD_EIO: slug = "store-error"; break;
	case JOBD_EBUSY: slug = "unavailable"; break;
	case JOBD_EUNAVAIL: slug = "store-unavailable"; break;
	default: slug = "internal"; break;
	}
	api_problem(call, status, slug, NULL, detail);
}


/* ---- prechecks ---- */

static bool
is_json_type(const char *ct)
{
	size_t n;

	if (ct == NULL)
		return false;
	while (*ct == ' ' || *ct == '\t')
		ct++;
	n = strcspn(ct, "; \t");
	if (n == 16 && strncasecmp(ct, "application/json", 16) == 0)
		return true;
	/* application/<anything>+json (RFC 6839). */
	return n > 17 && strncasecmp(ct, "application/", 12) == 0 &&
	       strncasecmp(ct + n - 5, "+json", 5) == 0;
}

bool
api_wants_body(const struct api_call *call)
{
	return call->route == ROUTE_JOBS && call->method == API_POST;
}

int
api_precheck(api *a, struct api_call *call, int64_t content_length)
{
	char detail[160];

	call->route = api_route(call->path, call->id);
	if (a->au != NULL && call->route != ROUTE_HEALTHZ &&
	    call->route != ROUTE_READYZ) {
		const char *hdr = call->header(call->h, "Authorization");
		if (!auth_check(a->au, hdr, call->token_name,
		                sizeof(call->token_name))) {
			if (call->route == ROUTE_ROOT)
				/* A browser cannot send the header when it opens
				 * the page: answer 401 with a page that asks for
				 * the token and loads the dashboard with it. */
				set_body(call, 401, "text/html; charset=utf-8",
				         strdup(login_html));
			else
				api_problem(call, 401, "unauthorized", NULL,
				            hdr == NULL
				            ? "send Authorization: Bearer <token>"
				            : "the token is not valid");
			if (hdr == NULL)
				add_header(call, "WWW-Authenticate",
				           "Bearer realm=\"jobd\"");
			else
				add_header(call, "WWW-Authenticate",
				           "Bearer realm=\"jobd\", "
				           "error=\"invalid_token\"");
			return API_DONE;
		}
	}
	if (call->route == ROUTE_NONE) {
		api_problem(call, 404, "not-found", NULL,
		            "no such resource");
		return API_DONE;
	}
	if (!method_allowed(call->route, call->method)) {
		api_problem(call, 405, "method-not-allowed", NULL,
		            "this method is not allowed here");
		add_header(call, "Allow", "%s", api_route_allow(call->route));
		return API_DONE;
	}
	if (!api_wants_body(call))
		return API_CONTINUE;
	if (!is_json_type(call->header(call->h, "Content-Type"))) {
		api_problem(call, 415, "unsupported-media-type", NULL,
		            "send the job as Content-Type: application/json");
		return API_DONE;
	}
	if (content_length > a->cfg->server.max_body_bytes) {
		snprintf(detail, sizeof(detail),
		         "the body is larger than server.max_body (%lld bytes)",
		         (long long)a->cfg->server.max_body_bytes);
		api_problem(call, 413, "too-large", NULL, detail);
		return API_DONE;
	}
	return API_CONTINUE;
}

/* ---- handlers ---- */

static void add_preference_applied(struct api_call *call);

/* Sets the answer to a shared body (taking the caller's reference). */
static void
set_shared_body(struct api_call *call, int status, struct api_body *b)
{
	set_body(call, status, "application/json", NULL);
	call->body_shared = b;
	call->body_shared_data = b->data;
	call->body_out_len = b->len;
}

/*
 * Answers with the job as stored now; returns its status, or -1.  A
 * finished job's rendering is shared with every answer that carries the
 * same state while they are sent (when http can send shared bodies).
 */
static int
answer_job(api *a, struct api_call *call, int status, const char *id)
{
	struct job job;
	struct api_body *b = NULL;
	char err[256];
	char *text = NULL;
	int rc, job_status;

	job_init(&job);
	rc = store_get(a->st, id, &job, err, sizeof(err));
	if (rc != 0) {
		problem_for(call, rc, rc == JOBD_ENOTFOUND ? "no job with this id"
		                                            : err);
		return -1;
	}
	job_status = job.status;
	progress_apply(a->prog, &job, 1);
	/* (A job with a callback is not shared: its "callback" changes
	 * after the job's final state.) */
	if (call->shared_ok && job_status_is_final(job_status) &&
	    job.callback == NULL && (b = body_lookup(a, &job)) == NULL) {
		text = json_line(job_to_json(&job));
		if (text != NULL && (b = body_share(a, &job, text)) == NULL)
			text = NULL; /* freed by body_share */
	} else if (b == NULL) {
		text = json_line(job_to_json(&job));
	}
	job_clear(&job);
	if (b != NULL) {
		set_shared_body(call, status, b);
		return job_status;
	}
	if (text == NULL) {
		problem_for(call, JOBD_ENOMEM, "out of memory");
		return -1;
	}
	set_body(call, status, "application/json", text);
	return job_status;
}

static void
handle_list(api *a, struct api_call *call)
{
	struct store_filter f = {.status = -1, .limit = REQPARSE_LIMIT_DEFAULT};
	const char *s;
	struct job *jobs = NULL;
	size_t n = 0;
	char err[256], after[37];
	cJSON *root, *arr;
	int rc;

	rc = 0;
	if ((s = call->arg(call->h, "status")) != NULL)
		rc = reqparse_status(s, &f.status, err, sizeof(err));
	if (rc == 0 && (s = call->arg(call->h, "type")) != NULL &&
	    (rc = reqparse_type(s, err, sizeof(err))) == 0)
		f.type = s;
	if (rc == 0)
		rc = reqparse_limit(call->arg(call->h, "limit"), &f.limit, err,
		                    sizeof(err));
	if (rc == 0 && (s = call->arg(call->h, "after")) != NULL &&
	    (rc = reqparse_after(s, after, err, sizeof(err))) == 0)
		f.after = after;
	if (rc != 0) {
		api_problem(call, 400, "bad-request", NULL, err);
		return;
	}
	f.limit++; /* one more tells whether there is a next page */
	rc = store_list(a->st, &f, &jobs, &n, err, sizeof(err));
	f.limit--;
	if (rc != 0) {
		problem_for(call, rc, err);
		return;
	}
	progress_apply(a->prog, jobs, n);
	root = cJSON_CreateObject();
	arr = cJSON_AddArrayToObject(root, "jobs");
	rc = arr ? 0 : JOBD_ENOMEM;
	for (size_t i = 0; rc == 0 && i < n && i < f.limit; i++) {
		rc = job_add_to_cjson_array(&jobs[i], arr);
		/* List items carry every field but these two (DESIGN §2);
		 * the store did not even read them. */
		if (rc == 0) {
			cJSON *item = cJSON_GetArrayItem(arr, (int)i);
			cJSON_DeleteItemFromObjectCaseSensitive(item, "payload");
			cJSON_DeleteItemFromObjectCaseSensitive(item, "result");
		}
	}
	if (rc == 0) {
		cJSON *next = n > f.limit ? cJSON_CreateString(jobs[f.limit - 1].id)
		                          : cJSON_CreateNull();
		if (!cJSON_AddItemToObject(root, "next", next))
			rc = JOBD_ENOMEM;
	}
	for (size_t i = 0; i < n; i++)
		job_clear(&jobs[i]);
	free(jobs);
	if (rc != 0) {
		cJSON_Delete(root);
		problem_for(call, JOBD_ENOMEM, "out of memory");
		return;
	}
	set_json(call, 200, root);
}

/* Sums the store's queued jobs of every type (store_counts_by_type). */
static void
add_queued(void *arg, const char *type, int status, int64_t n)
{
	(void)type;
	if (status == JOB_QUEUED)
		*(int64_t *)arg += n;
}

static void
handle_ready(api *a, struct api_call *call)
{
	cJSON *o;
	const char *why = NULL;
	int64_t queued = writer_queued(a->w);
	char err[256];

	if (atomic_load(&a->draining))
		why = "jobd is shutting down";
	else if (!writer_healthy(a->w))
		why = "the store's last write failed";
	else if (!store_ping(a->st))
		why = "the store cannot be read";
	if (why != NULL) {
		api_problem(call, 503, "not-ready", NULL, why);
		return;
	}
	/* On a store several nodes share, this writer has counted only its
	 * own submissions and claims (another node's claim of a job queued
	 * here leaves it counted here): ask the store. */
	if (store_is_shared(a->st)) {
		queued = 0;
		if (store_counts_by_type(a->st, add_queued, &queued, err,
		                         sizeof(err)) != 0) {
			api_problem(call, 503, "not-ready", NULL, err);
			return;
		}
	}
	o = cJSON_CreateObject();
	cJSON_AddStringToObject(o, "status", "ready");
	cJSON_AddNumberToObject(o, "queued", (double)queued);
	cJSON_AddNumberToObject(o, "running", (double)writer_inflight(a->w));
	set_json(call, 200, o);
}

/* One /types entry per handler, and its store counts (see handle_types). */
struct type_counts {
	const struct config *cfg;
	int64_t (*n)[2];        /* per handler: queued, running */
	bool *paused;           /* per handler */
};

static void
add_type_paused(void *arg, const char *type)
{
	struct type_counts *tc = arg;

	for (size_t i = 0; i < tc->cfg->nhandlers; i++)
		if (strcmp(tc->cfg->handlers[i].name, type) == 0)
			tc->paused[i] = true;
}

static void
add_type_count(void *arg, const char *type, int status, int64_t n)
{
	struct type_counts *tc = arg;

	for (size_t i = 0; i < tc->cfg->nhandlers; i++)
		if (strcmp(tc->cfg->handlers[i].name, type) == 0)
			tc->n[i][status == JOB_RUNNING] += n;
}

/*
 * GET /types (DESIGN §2): every configured handler (as reloaded), with
 * its pause (the store's pause table), its rate as configured, and the
 * queued and running counts of one store query.  Jobs of a type no longer
 * configured are not listed.  only != NULL: that type's object alone (the
 * answer to a pause or a resume), 404 when it has no handler.
 */
static void
handle_types(api *a, struct api_call *call, const char *only)
{
	struct config *cur = config_acquire();
	const struct config *cfg = cur ? cur : a->cfg;
	struct type_counts tc = {cfg, NULL, NULL};
	cJSON *root = NULL, *arr, *one = NULL;
	char err[256];
	int rc = JOBD_ENOMEM;

	tc.n = calloc(cfg->nhandlers + 1, sizeof(*tc.n));
	tc.paused = calloc(cfg->nhandlers + 1, sizeof(*tc.paused));
	if (tc.n == NULL || tc.paused == NULL)
		goto out;
	rc = store_counts_by_type(a->st, add_type_count, &tc, err, sizeof(err));
	if (rc == 0)
		rc = store_read_pauses(a->st, add_type_paused, &tc, err,
		                       sizeof(err));
	if (rc != 0)
		goto out;
	rc = JOBD_ENOMEM;
	root = cJSON_CreateObject();
	if (root == NULL || (arr = cJSON_AddArrayToObject(root, "types")) == NULL)
		goto out;
	for (size_t i = 0; i < cfg->nhandlers; i++) {
		const struct handler_conf *h = &cfg->handlers[i];
		char rate[RATE_TEXT_MAX];
		if (only != NULL && strcmp(h->name, only) != 0)
			continue;
		cJSON *o = cJSON_CreateObject();
		if (o == NULL || !cJSON_AddItemToArray(arr, o)) {
			cJSON_Delete(o);
			goto out;
		}
		one = o;
		rate_format(h->rate_n, h->rate_period_us, rate, sizeof(rate));
		if (!cJSON_AddStringToObject(o, "name", h->name) ||
		    !cJSON_AddStringToObject(o, "kind", handler_kind_of(h)->name) ||
		    !cJSON_AddBoolToObject(o, "paused", tc.paused[i]) ||
		    !(h->concurrency > 0
		      ? cJSON_AddNumberToObject(o, "concurrency",
		                                (double)h->concurrency)
		      : cJSON_AddNullToObject(o, "concurrency")) ||
		    !(rate[0] != '\0'
		      ? cJSON_AddStringToObject(o, "rate", rate)
		      : cJSON_AddNullToObject(o, "rate")) ||
		    !cJSON_AddNumberToObject(o, "queued", (double)tc.n[i][0]) ||
		    !cJSON_AddNumberToObject(o, "running", (double)tc.n[i][1]))
			goto out;
	}
	if (only != NULL && one == NULL) {
		rc = jobd_seterr(err, sizeof(err), JOBD_ENOTFOUND,
		                 "no handler for type %s", only);
		goto out;
	}
	if (only != NULL) {
		cJSON_DetachItemViaPointer(arr, one);
		cJSON_Delete(root);
		root = one;
	}
	rc = 0;
out:
	free(tc.n);
	free(tc.paused);
	config_release(cur);
	if (rc != 0) {
		cJSON_Delete(root);
		problem_for(call, rc, rc == JOBD_ENOMEM ? "out of memory" : err);
		return;
	}
	set_json(call, 200, root);
}

/* The type name of /types/<name>/pause|resume (api_route checked it). */
static void
route_type(const struct api_call *call, char name[JOB_TYPE_MAX + 1])
{
	size_t n = strcspn(call->path + 7, "/");

	if (n > JOB_TYPE_MAX)
		n = JOB_TYPE_MAX;
	memcpy(name, call->path + 7, n);
	name[n] = '\0';
}

static bool make_wait(api *a, struct api_call *call, int kind,
                      int64_t wait_ms);

/*
 * POST /types/<name>/pause, /resume: through the writer (the pause table
 * is in the store), then the type as GET /types shows it.  404 for a type
 * with no handler.
 */
static int
handle_pause(api *a, struct api_call *call, bool pause)
{
	struct config *cfg = config_acquire(); /* handlers as reloaded */
	char name[JOB_TYPE_MAX + 1];
	bool known;

	route_type(call, name);
	known = config_handler(cfg ? cfg : a->cfg, name) != NULL;
	config_release(cfg);
	if (!known) {
		char detail[128];
		snprintf(detail, sizeof(detail), "no handler for type %s", name);
		api_problem(call, 404, "not-found", NULL, detail);
		return API_DONE;
	}
	if (!make_wait(a, call, WOP_PAUSE, -1))
		return API_DONE;
	struct writer_op *op = wait_op(call->wait);
	snprintf(op->type, sizeof(op->type), "%s", name);
	op->pause = pause;
	call->pending = PENDING_WRITER;
	return API_PENDING;
}

/* One /nodes entry. */
static bool
add_node(cJSON *arr, const struct store_node *n)
{
	cJSON *o = cJSON_CreateObject();
	char started[40], seen[40];

	if (o == NULL || !cJSON_AddItemToArray(arr, o)) {
		cJSON_Delete(o);
		return false;
	}
	clock_format_rfc3339(n->started_at_ms, started, sizeof(started));
	clock_format_rfc3339(n->heartbeat_at_ms, seen, sizeof(seen));
	return cJSON_AddStringToObject(o, "name", n->name) &&
	       cJSON_AddStringToObject(o, "boot_id", n->boot_id) &&
	       cJSON_AddStringToObject(o, "started_at", started) &&
	       cJSON_AddStringToObject(o, "heartbeat_at", seen) &&
	       cJSON_AddNumberToObject(o, "running", (double)n->running) &&
	       cJSON_AddBoolToObject(o, "leader", n->leader);
}

struct node_list {
	cJSON *arr;
	bool failed;
};

static void
on_node(void *arg, const struct store_node *n)
{
	struct node_list *nl = arg;

	if (!nl->failed && !add_node(nl->arr, n))
		nl->failed = true;
}

/*
 * GET /nodes (DESIGN §2): the nodes of a shared store, oldest first; with
 * SQLite the one node, this daemon.
 */
static void
handle_nodes(api *a, struct api_call *call)
{
	cJSON *root = cJSON_CreateObject();
	struct node_list nl = {NULL, false};
	char err[256];
	int rc = JOBD_ENOMEM;

	if (root == NULL ||
	    (nl.arr = cJSON_AddArrayToObject(root, "nodes")) == NULL)
		goto out;
	rc = store_nodes(a->st, on_node, &nl, err, sizeof(err));
	if (rc == JOBD_ENOTFOUND) {
		struct store_node me = {.leader = true};
		char host[64] = "";
		gethostname(host, sizeof(host) - 1);
		snprintf(me.name, sizeof(me.name), "%s",
		         a->cfg->store.node ? a->cfg->store.node : host);
		snprintf(me.boot_id, sizeof(me.boot_id), "%s",
		         writer_boot_id(a->w));
		me.started_at_ms = a->started_at_ms;
		me.heartbeat_at_ms = clock_now_ms();
		me.running = writer_inflight(a->w);
		rc = add_node(nl.arr, &me) ? 0 : JOBD_ENOMEM;
	} else if (rc == 0 && nl.failed) {
		rc = JOBD_ENOMEM;
	}
out:
	if (rc != 0) {
		cJSON_Delete(root);
		problem_for(call, rc, rc == JOBD_ENOMEM ? "out of memory" : err);
		return;
	}
	set_json(call, 200, root);
}

/* Parses the Prefer header (reqparse.h has the rule).  Returns false with
 * a 400 answer set when its wait preference is malformed. */
static bool
parse_prefer(api *a, struct api_call *call)
{
	struct reqparse_prefer pref;
	char err[160];

	if (reqparse_prefer(call->header(call->h, "Prefer"),
	                    a->cfg->server.max_wait_ms, &pref, err,
	                    sizeof(err)) != 0) {
		api_problem(call, 400, "bad-request", NULL, err);
		return false;
	}
	call->wait_ms = pref.wait_ms;
	call->respond_async = pref.respond_async;
	return true;
}

/*
 * The call's wait (its writer op, and its waiter if any), made when the
 * call is about to become pending: kind as in wait_new().  False with a
 * 503 set when out of memory.
 */
static bool
make_wait(api *a, struct api_call *call, int kind, int64_t wait_ms)
{
	call->wait = wait_new(a->w, a->ev, a->st, kind, wait_ms, call->fd,
	                      call->start_us, call->resume, call->h);
	if (call->wait == NULL) {
		problem_for(call, JOBD_ENOMEM, "out of memory");
		return false;
	}
	return true;
}

static int
handle_submit(api *a, struct api_call *call)
{
	char err[256];
	const char *key;
	int rc;

	if (atomic_load(&a->draining)) {
		api_problem(call, 503, "shutting-down", NULL,
		            "jobd is shutting down; submit again shortly");
		return API_DONE;
	}
	if (!parse_prefer(a, call) ||
	    !make_wait(a, call, WOP_SUBMIT, call->wait_ms))
		return API_DONE;
	struct writer_op *op = wait_op(call->wait);
	struct config *cfg = config_acquire(); /* handlers as reloaded */
	rc = submit_parse(call->body, call->body_len, cfg ? cfg : a->cfg,
	                  clock_now_us(), &op->job, err, sizeof(err));
	config_release(cfg);
	if (rc != 0) {
		problem_for(call, rc, err);
		return API_DONE;
	}
	key = call->header(call->h, "Idempotency-Key");
	if (key != NULL) {
		if (reqparse_idem_key(key, err, sizeof(err)) != 0) {
			api_problem(call, 400, "bad-request", NULL, err);
			return API_DONE;
		}
		char fp[SUBMIT_FINGERPRINT_LEN + 1];
		op->job.idem_key = strdup(key);
		if (op->job.idem_key == NULL ||
		    submit_fingerprint(call->body, call->body_len, fp) != 0 ||
		    (op->job.idem_fp = strdup(fp)) == NULL) {
			problem_for(call, JOBD_ENOMEM, "out of memory");
			return API_DONE;
		}
	}
	if (uuid_v7_new(op->job.id) != 0) {
		problem_for(call, JOBD_EBUSY, "cannot read random bytes");
		return API_DONE;
	}
	call->pending = PENDING_WRITER;
	return API_PENDING;
}

/*
 * A refused batch: problem details with "errors": [{"index", "detail"}]
 * for every invalid element (none when the batch as a whole is refused).
 */
static void
batch_problem(struct api_call *call, int rc, const char *detail,
              const struct batch_error *errs, size_t nerrs)
{
	cJSON *o, *arr, *e;
	int status = api_status_for(rc);

	problem_for(call, rc, detail);
	if (nerrs == 0)
		return;
	o = cJSON_CreateObject();
	arr = cJSON_AddArrayToObject(o, "errors");
	if (arr == NULL ||
	    !cJSON_AddStringToObject(o, "type", rc == JOBD_EINVAL
	                             ? "/problems/bad-request"
	                             : "/problems/invalid-field") ||
	    !cJSON_AddStringToObject(o, "title", status_title(status)) ||
	    !cJSON_AddNumberToObject(o, "status", status) ||
	    !cJSON_AddStringToObject(o, "detail", detail))
		goto out;
	for (size_t i = 0; i < nerrs; i++) {
		e = cJSON_CreateObject();
		if (e == NULL || !cJSON_AddItemToArray(arr, e) ||
		    !cJSON_AddNumberToObject(e, "index", (double)errs[i].index) ||
		    !cJSON_AddStringToObject(e, "detail", errs[i].detail))
			goto out;
	}
	/* "errors" after the usual members. */
	cJSON_DetachItemViaPointer(o, arr);
	cJSON_AddItemToObject(o, "errors", arr);
	arr = NULL;
	char *text = json_line(cJSON_PrintUnformatted(o));
	if (text != NULL)
		set_body(call, status, "application/problem+json", text);
out:
	cJSON_Delete(o);
}

/* POST /jobs with an array (DESIGN.md §2): one op for the writer, all of
 * its jobs or none.  Prefer: wait is ignored for batches. */
static int
handle_batch(api *a, struct api_call *call)
{
	struct batch_error *errs = NULL;
	struct job *jobs = NULL;
	size_t n = 0, nerrs = 0;
	char err[256];
	const char *key;
	int rc;

	if (atomic_load(&a->draining)) {
		api_problem(call, 503, "shutting-down", NULL,
		            "jobd is shutting down; submit again shortly");
		return API_DONE;
	}
	if (!make_wait(a, call, WOP_BATCH, -1))
		return API_DONE;
	struct writer_op *op = wait_op(call->wait);
	struct config *cfg = config_acquire(); /* handlers as reloaded */
	rc = batch_parse(call->body, call->body_len, cfg ? cfg : a->cfg,
	                 a->cfg->server.max_batch, clock_now_us(), &jobs, &n,
	                 &errs, &nerrs, err, sizeof(err));
	config_release(cfg);
	if (rc != 0) {
		batch_problem(call, rc, err, errs, nerrs);
		free(errs);
		return API_DONE;
	}
	op->batch = jobs; /* the op's from now on */
	op->nbatch = n;
	if (batch_assign_ids(jobs, n) != 0) {
		problem_for(call, JOBD_EBUSY, "cannot read random bytes");
		return API_DONE;
	}
	key = call->header(call->h, "Idempotency-Key");
	if (key != NULL) {
		char fp[SUBMIT_FINGERPRINT_LEN + 1];
		if (reqparse_idem_key(key, err, sizeof(err)) != 0) {
			api_problem(call, 400, "bad-request", NULL, err);
			return API_DONE;
		}
		if (submit_fingerprint(call->body, call->body_len, fp) != 0 ||
		    batch_set_keys(jobs, n, key, fp) != 0) {
			problem_for(call, JOBD_ENOMEM, "out of memory");
			return API_DONE;
		}
	}
	call->pending = PENDING_WRITER;
	return API_PENDING;
}

/* The answer to a committed batch: its jobs' ids in the order given. */
static void
finish_batch(struct api_call *call, struct writer_op *op)
{
	/* {"id":"<36>","status":"<9>","href":"/jobs/<36>"}, (119 bytes) */
	size_t cap = 16 + op->nbatch * 128, len = 0;
	char *text;

	if (op->rc != 0 && op->err_element > 0) {
		struct batch_error e = {.index = op->err_element - 1,
		                        .rc = op->rc};
		snprintf(e.detail, sizeof(e.detail), "%.199s", op->err);
		batch_problem(call, op->rc, "1 of the jobs is invalid (see "
		              "errors); nothing was submitted", &e, 1);
		return;
	}
	if (op->rc != 0) {
		problem_for(call, op->rc, op->err);
		return;
	}
	text = malloc(cap);
	if (text == NULL) {
		problem_for(call, JOBD_ENOMEM, "out of memory");
		return;
	}
#define PUT(s, n) (memcpy(text + len, (s), (n)), len += (n))
	PUT("{\"jobs\":[", 9);
	for (size_t i = 0; i < op->nbatch; i++) {
		const struct job *j = &op->batch[i];
		const char *st = job_status_name(j->status);
		if (st == NULL)
			st = "queued";
		if (i > 0)
			PUT(",", 1);
		PUT("{\"id\":\"", 7);
		PUT(j->id, 36);
		PUT("\",\"status\":\"", 12);
		PUT(st, strlen(st));
		PUT("\",\"href\":\"/jobs/", 16);
		PUT(j->id, 36);
		PUT("\"}", 2);
	}
	PUT("]}\n", 4); /* with the NUL */
#undef PUT
	set_body(call, 202, "application/json", text);
	add_header(call, "Retry-After", "1");
	if (op->replayed)
		add_header(call, "Idempotent-Replayed", "true");
}

/* GET /jobs/<id>, long-polling with ?wait=N or Prefer: wait=N (the query
 * wins when both are there; both must be well-formed). */
/* GET /schedules, or one schedule's object (after a pause or resume). */
static void
answer_schedules(api *a, struct api_call *call, const char *name)
{
	struct config *cfg = config_acquire(); /* schedules as reloaded */
	char err[256];
	int code = 0;
	cJSON *o = schedules_json(cfg ? cfg : a->cfg, a->st, name,
	                          clock_now_ms(), &code, err, sizeof(err));

	config_release(cfg);
	if (o == NULL) {
		problem_for(call, code, code == JOBD_ENOTFOUND
		            ? "no schedule of this name" : err);
		return;
	}
	set_json(call, 200, o);
	add_header(call, "Cache-Control", "no-store");
}

/*
 * POST /schedules/<name>/trigger|pause|resume: through the writer.  A
 * trigger is a submission like POST /jobs (202), its key
 * "schedule:<name>:manual:<now, RFC 3339 in µs>"; a pause or a resume
 * puts the schedule's row (a resume moves its cursor to now: the ticks
 * of the pause are not caught up).
 */
static int
handle_schedule_action(api *a, struct api_call *call)
{
	char name[JOB_TYPE_MAX + 1], err[256];
	struct config *cfg;
	const struct schedule_conf *sc;
	struct writer_op *op;
	int64_t now_us = clock_now_us();
	int rc = 0;

	schedule_name(call->path, name);
	cfg = config_acquire();
	sc = config_schedule(cfg ? cfg : a->cfg, name);
	if (sc == NULL) {
		config_release(cfg);
		api_problem(call, 404, "not-found", NULL,
		            "no schedule of this name");
		return API_DONE;
	}
	if (call->route == ROUTE_SCHEDULE_TRIGGER &&
	    atomic_load(&a->draining)) {
		config_release(cfg);
		api_problem(call, 503, "shutting-down", NULL,
		            "jobd is shutting down; submit again shortly");
		return API_DONE;
	}
	if (!make_wait(a, call, call->route == ROUTE_SCHEDULE_TRIGGER
	               ? WOP_SUBMIT : WOP_SCHEDULE, -1)) {
		config_release(cfg);
		return API_DONE;
	}
	op = wait_op(call->wait);
	snprintf(op->schedule.name, sizeof(op->schedule.name), "%s", name);
	op->schedule.cursor_ms = -1;
	op->schedule.last_run_ms = -1;
	op->schedule.paused = -1;
	if (call->route == ROUTE_SCHEDULE_TRIGGER) {
		char when[40], key[SCHEDULE_KEY_MAX + 48];
		time_t t = (time_t)(now_us / 1000000);
		struct tm tm;
		gmtime_r(&t, &tm);
		strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%S", &tm);
		snprintf(key, sizeof(key), "schedule:%s:manual:%s.%06lldZ",
		         name, when, (long long)(now_us % 1000000));
		op->schedule.last_run_ms = now_us / 1000;
		rc = schedule_make_job(sc, cfg ? cfg : a->cfg, key, now_us,
		                       &op->job, err, sizeof(err));
	} else {
		op->schedule.paused = call->route == ROUTE_SCHEDULE_PAUSE;
		if (call->route == ROUTE_SCHEDULE_RESUME)
			op->schedule.cursor_ms = now_us / 1000;
	}
	config_release(cfg);
	if (rc != 0) {
		problem_for(call, rc, err);
		return API_DONE;
	}
	call->pending = PENDING_WRITER;
	return API_PENDING;
}

/*
 * GET /events: checks the filters, then opens a stream that http sends
 * (call->stream).  With ?job=, the job must exist; its state is read
 * again once the stream is open, so that an end between the two reads
 * is not missed.
 */
static void
handle_events(api *a, struct api_call *call)
{
	const char *type = call->arg(call->h, "type");
	const char *job = call->arg(call->h, "job");
	char err[160], id[UUID_STR_LEN] = "";
	struct job j;
	int rc;

	if (type != NULL && reqparse_type(type, err, sizeof(err)) != 0) {
		api_problem(call, 400, "bad-request", NULL, err);
		return;
	}
	if (job != NULL) {
		if (strlen(job) != 36 || !uuid_is_valid(job)) {
			api_problem(call, 400, "bad-request", NULL,
			            "job must be a job id (a UUID)");
			return;
		}
		for (int i = 0; i < 36; i++)
			id[i] = (char)tolower((unsigned char)job[i]);
		id[36] = '\0';
		job_init(&j);
		rc = store_get(a->st, id, &j, err, sizeof(err));
		job_clear(&j);
		if (rc != 0) {
			problem_for(call, rc, rc == JOBD_ENOTFOUND
			            ? "no job with this id" : err);
			return;
		}
	}
	if (call->method == API_HEAD) {
		set_body(call, 200, "text/event-stream", NULL);
		add_header(call, "Cache-Control", "no-store");
		return;
	}
	rc = sse_open(events_sse(a->ev), type, id[0] ? id : NULL,
	              call->header(call->h, "Last-Event-ID"), call->fd,
	              &call->stream);
	if (rc != 0) {
		problem_for(call, rc, rc == JOBD_EBUSY
		            ? "too many waiting clients (server.max_waiters), "
		              "or jobd is stopping" : "out of memory");
		return;
	}
	if (id[0] != '\0') {
		job_init(&j);
		if (store_get(a->st, id, &j, NULL, 0) == 0)
			sse_stream_job_state(call->stream, j.status, j.type,
			                     j.attempt);
		job_clear(&j);
	}
	set_body(call, 200, "text/event-stream", NULL);
	add_header(call, "Cache-Control", "no-store");
	add_header(call, "X-Accel-Buffering", "no");
}

/* GET /jobs/<id>, long-polling with ?wait=N or Prefer: wait=N (the query
 * wins when both are there; both must be well-formed). */
static int
handle_get(api *a, struct api_call *call)
{
	const char *s = call->arg(call->h, "wait");
	char err[160];

	if (!parse_prefer(a, call))
		return API_DONE;
	if (s != NULL && reqparse_wait(s, strlen(s), a->cfg->server.max_wait_ms,
	                               &call->wait_ms, err, sizeof(err)) != 0) {
		api_problem(call, 400, "bad-request", NULL, err);
		return API_DONE;
	}
	int status = answer_job(a, call, 200, call->id);
	if (status < 0 || call->wait_ms <= 0 || job_status_is_final(status)) {
		if (status >= 0)
			add_preference_applied(call);
		return API_DONE;
	}
	/* Not final yet: wait for its end. */
	if (!make_wait(a, call, -1, call->wait_ms))
		return API_DONE;
	free(call->body_out);
	call->body_out = NULL;
	call->pending = PENDING_WAIT;
	return API_PENDING;
}

int
api_handle(api *a, struct api_call *call)
{
	cJSON *o;

	call->api = a;
	switch (call->route) {
	case ROUTE_HEALTHZ:
		o = cJSON_CreateObject();
		cJSON_AddStringToObject(o, "status", "ok");
		set_json(call, 200, o);
		return API_DONE;
	case ROUTE_READYZ:
		handle_ready(a, call);
		return API_DONE;
	case ROUTE_ROOT: {
		char *page = malloc(dashboard_html_len + 1);
		if (page == NULL) {
			problem_for(call, JOBD_ENOMEM, "out of memory");
			return API_DONE;
		}
		memcpy(page, dashboard_html, dashboard_html_len + 1);
		set_body(call, 200, "text/html; charset=utf-8", page);
		add_header(call, "Cache-Control", "no-store");
		add_header(call, "Content-Security-Policy",
		           "default-src 'self'; script-src 'unsafe-inline'; "
		           "style-src 'unsafe-inline'; img-src 'self' data:");
		return API_DONE;
	}
	case ROUTE_METRICS: {
		struct metrics_gauges g = {0};
		if (a->gauges != NULL)
			a->gauges(&g, a->gauges_arg);
		char *text = metrics_render(&g);
		if (text == NULL) {
			problem_for(call, JOBD_ENOMEM, "out of memory");
			return API_DONE;
		}
		set_body(call, 200, "text/plain; version=0.0.4; charset=utf-8",
		         text);
		return API_DONE;
	}
	case ROUTE_OPENAPI: {
		/* The description embedded at build time (openapi/). */
		char *text = malloc(openapi_json_len + 1);
		if (text == NULL) {
			problem_for(call, JOBD_ENOMEM, "out of memory");
			return API_DONE;
		}
		memcpy(text, openapi_json, openapi_json_len + 1);
		set_body(call, 200, "application/json", text);
		return API_DONE;
	}
	case ROUTE_STATS:
		/* Counters only: no store query. */
		o = stats_json(stats_global(), clock_mono_ms(), clock_now_ms());
		if (o == NULL) {
			problem_for(call, JOBD_ENOMEM, "out of memory");
			return API_DONE;
		}
		set_json(call, 200, o);
		add_header(call, "Cache-Control", "no-store");
		return API_DONE;
	case ROUTE_TYPES:
		handle_types(a, call, NULL);
		add_header(call, "Cache-Control", "no-store");
		return API_DONE;
	case ROUTE_TYPE_PAUSE:
	case ROUTE_TYPE_RESUME:
		return handle_pause(a, call, call->route == ROUTE_TYPE_PAUSE);
	case ROUTE_EVENTS:
		handle_events(a, call);
		return API_DONE;
	case ROUTE_NODES:
		handle_nodes(a, call);
		add_header(call, "Cache-Control", "no-store");
		return API_DONE;
	case ROUTE_JOBS:
		if (call->method == API_POST)
			return batch_is_array(call->body, call->body_len)
			    ? handle_batch(a, call) : handle_submit(a, call);
		handle_list(a, call);
		return API_DONE;
	case ROUTE_JOB:
		if (call->method == API_DELETE) {
			if (!make_wait(a, call, WOP_CANCEL, -1))
				return API_DONE;
			memcpy(wait_op(call->wait)->id, call->id,
			       sizeof(call->id));
			call->pending = PENDING_WRITER;
			return API_PENDING;
		}
		return handle_get(a, call);
	case ROUTE_SCHEDULES:
		answer_schedules(a, call, NULL);
		return API_DONE;
	case ROUTE_SCHEDULE_TRIGGER:
	case ROUTE_SCHEDULE_PAUSE:
	case ROUTE_SCHEDULE_RESUME:
		return handle_schedule_action(a, call);
	case ROUTE_JOB_RETRY:
		if (!make_wait(a, call, WOP_RETRY, -1))
			return API_DONE;
		memcpy(wait_op(call->wait)->id, call->id, sizeof(call->id));
		call->pending = PENDING_WRITER;
		return API_PENDING;
	default:
		api_problem(call, 404, "not-found", NULL, "no such resource");
		return API_DONE;
	}
}

void
api_start(api *a, struct api_call *call)
{
	(void)a;
	if (call->pending == PENDING_WAIT)
		wait_job(call->wait, call->id);
	else
		wait_submit(call->wait);
}

static void
add_preference_applied(struct api_call *call)
{
	char applied[32];

	if (call->wait_ms >= 0) {
		reqparse_format_wait(call->wait_ms, applied, sizeof(applied));
		add_header(call, "Preference-Applied", "%s", applied);
	}
	else if (call->respond_async)
		add_header(call, "Preference-Applied", "respond-async");
}

void
api_finish(api *a, struct api_call *call)
{
	struct writer_op *op = wait_op(call->wait);
	cJSON *o;
	char href[64];

	call->wait_ms = wait_honoured_ms(call->wait);
	if (call->pending == PENDING_WAIT) {
		/* Long-poll over: the job as it is now. */
		if (answer_job(a, call, 200, call->id) >= 0)
			add_preference_applied(call);
		return;
	}
	switch (op->kind) {
	case WOP_BATCH:
		finish_batch(call, op);
		return;
	case WOP_SUBMIT:
		if (op->rc != 0) {
			problem_for(call, op->rc, op->err);
			return;
		}
		snprintf(href, sizeof(href), "/jobs/%s", op->job.id);
		if (call->wait_ms > 0 && (wait_waited(call->wait) ||
		                          job_status_is_final(op->status))) {
			/* Synchronous submit: the finished job, if it is. */
			int status = answer_job(a, call, 200, op->job.id);
			if (status >= 0 && job_status_is_final(status)) {
				add_header(call, "Location", "%s", href);
				if (op->replayed)
					add_header(call, "Idempotent-Replayed",
					           "true");
				add_preference_applied(call);
				return;
			}
			if (status >= 0)
				op->status = status;
		}
		o = cJSON_CreateObject();
		cJSON_AddStringToObject(o, "id", op->job.id);
		cJSON_AddStringToObject(o, "status", job_status_name(op->status));
		cJSON_AddStringToObject(o, "href", href);
		set_json(call, 202, o);
		if (call->status != 202)
			return;
		add_header(call, "Location", "%s", href);
		add_header(call, "Retry-After", "1");
		if (op->replayed)
			add_header(call, "Idempotent-Replayed", "true");
		add_preference_applied(call);
		return;
	case WOP_CANCEL:
		if (op->rc == 0) {
			answer_job(a, call, 200, op->id);
		} else if (op->rc == JOBD_ECONFLICT && op->status == JOB_RUNNING) {
			/* The attempt is being stopped; the job becomes
			 * cancelled when it has. */
			answer_job(a, call, 202, op->id);
		} else if (op->rc == JOBD_ECONFLICT) {
			char detail[96];
			snprintf(detail, sizeof(detail),
			         "the job is already %s",
			         job_status_name(op->status));
			api_problem(call, 409, "conflict", NULL, detail);
		} else {
			problem_for(call, op->rc, op->rc == JOBD_ENOTFOUND
			            ? "no job with this id" : op->err);
		}
		return;
	case WOP_SCHEDULE:
		if (op->rc != 0) {
			problem_for(call, op->rc, op->err);
			return;
		}
		schedules_poke(a->sched);
		answer_schedules(a, call, op->schedule.name);
		return;
	case WOP_RETRY:
		if (op->rc == 0) {
			answer_job(a, call, 200, op->id);
		} else if (op->rc == JOBD_ECONFLICT) {
			char detail[128];
			snprintf(detail, sizeof(detail),
			         "only failed or cancelled jobs can be retried; "
			         "this one is %s", job_status_name(op->status));
			api_problem(call, 409, "conflict", NULL, detail);
		} else {
			problem_for(call, op->rc, op->rc == JOBD_ENOTFOUND
			            ? "no job with this id" : op->err);
		}
		return;
	case WOP_PAUSE: {
		char name[JOB_TYPE_MAX + 1];
		if (op->rc != 0) {
			problem_for(call, op->rc, op->err);
			return;
		}
		snprintf(name, sizeof(name), "%s", op->type);
		handle_types(a, call, name);
		add_header(call, "Cache-Control", "no-store");
		return;
	}
	default:
		problem_for(call, JOBD_EINVAL, "unexpected operation");
	}
}
