/*
 * api.h - the HTTP API of DESIGN.md §2 without HTTP plumbing: routes,
 * validation, JSON bodies, RFC 9457 problems and the mapping of JOBD_E*
 * codes to statuses.  http.c (libmicrohttpd) fills a struct api_call from
 * a request and sends what api writes back; api knows no libmicrohttpd and
 * no SQL.
 *
 * A call that needs the writer (submit, cancel, retry) is asynchronous:
 * api_handle() returns API_PENDING, http suspends the connection, then
 * calls api_start(); when the writer has committed, the call's resume()
 * callback is invoked (on the writer thread) and http, back on its own
 * thread, calls api_finish() to build the answer.
 */
#ifndef JOBD_API_H
#define JOBD_API_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "auth.h"
#include "config.h"
#include "events.h"
#include "metrics.h"
#include "progress.h"
#include "schedule.h"
#include "store.h"
#include "writer.h"

typedef struct api api;

enum api_method {
	API_GET, API_HEAD, API_POST, API_DELETE, API_PUT, API_PATCH,
	API_OPTIONS, API_OTHER
};

enum api_route {
	ROUTE_NONE = 0,   /* 404 */
	ROUTE_ROOT,       /* / */
	ROUTE_HEALTHZ,    /* /healthz */
	ROUTE_READYZ,     /* /readyz */
	ROUTE_JOBS,       /* /jobs */
	ROUTE_JOB,        /* /jobs/<id> */
	ROUTE_JOB_RETRY,  /* /jobs/<id>/retry */
	ROUTE_METRICS,    /* /metrics */
	ROUTE_STATS,      /* /stats: recent rates (stats.h) */
	ROUTE_TYPES,      /* /types */
	ROUTE_NODES,      /* /nodes */
	ROUTE_TYPE_PAUSE, /* /types/<name>/pause */
	ROUTE_TYPE_RESUME, /* /types/<name>/resume */
	ROUTE_SCHEDULES,  /* /schedules */
	ROUTE_SCHEDULE_TRIGGER, /* /schedules/<name>/trigger */
	ROUTE_SCHEDULE_PAUSE,   /* /schedules/<name>/pause */
	ROUTE_SCHEDULE_RESUME,  /* /schedules/<name>/resume */
	ROUTE_EVENTS,     /* /events: server-sent events (sse.h) */
	ROUTE_OPENAPI,    /* /openapi.json */
	ROUTE_COUNT       /* not a route: how many there are */
};

enum api_result { API_DONE, API_PENDING, API_CONTINUE };

#define API_MAX_HEADERS 6

struct api_header {
	const char *name;       /* static string */
	char value[128];
};

struct api_call {
	/* Request, borrowed from http for the call's life. */
	int method;             /* enum api_method */
	const char *path;       /* without the query string */
	const char *(*arg)(void *h, const char *name);
	const char *(*header)(void *h, const char *name);
	void *h;
	const char *body;
	size_t body_len;
	void (*resume)(void *h); /* any thread: the pending call is done */
	int fd;                 /* the client's socket, watched while waiting */
	int64_t start_us;       /* when the request arrived (monotonic) */

	/* Response, owned by the call until api_call_clear(). */
	int status;
	const char *content_type;
	char *body_out;
	size_t body_out_len;
	/*
	 * A body shared with other calls instead of body_out (the rendering
	 * of a finished job, one for all who ask for it, e.g. its waiters):
	 * set only when http set shared_ok.  Then body_out is NULL and the
	 * bytes are body_shared_data[0..body_out_len).  http hands the
	 * call's reference to its response (and sets body_shared to NULL);
	 * the response calls api_body_release(body) when it is done.
	 */
	bool shared_ok;         /* set by http: it can send body_shared */
	struct api_body *body_shared;
	const char *body_shared_data;
	struct api_header headers[API_MAX_HEADERS];
	int nheaders;
	/* GET /events: the stream to answer with (status 200, no body);
	 * http takes it (sse_response) and sets it to NULL. */
	struct sse_stream *stream;

	/* Private to api.c. */
	api *api;
	int route;
	char id[37];
	int pending;            /* what a pending call waits for */
	struct wait_req *wait;  /* a pending call's op and wait (wait.h) */
	int64_t wait_ms;        /* asked for, then honoured; -1 none */
	bool respond_async;     /* Prefer: respond-async */
	char token_name[65];    /* who authenticated, "" none */
};

/* Parses a path into a route; fills id for job routes.  Pure. */
int api_route(const char *path, char id[37]);

/* Methods a route allows, as an Allow header value. */
const char *api_route_allow(int route);

/*
 * Creates the API over the (borrowed) config, store, writer, events and
 * auth (NULL: no authentication).
 */
api *api_new(const struct config *cfg, store *st, writer *w, events *ev,
             auth *au);
void api_free(api *a);

/* Where GET /metrics reads its gauges (set once by main). */
typedef void (*api_gauges_fn)(struct metrics_gauges *g, void *arg);
void api_set_gauges(api *a, api_gauges_fn fn, void *arg);

/* The schedules' thread, poked after a pause or resume (set once by
 * main; NULL: none). */
void api_set_schedules(api *a, schedules *sc);

/* The progress of the attempts running here (borrowed): GET shows it at
 * once, where the store's may be a second old.  Before serving. */
void api_set_progress(api *a, progress *p);

/* From now on POST /jobs answers 503 (shutdown).  Any thread. */
void api_set_draining(api *a);

/* Sets the call's request fields to zero values. */
void api_call_init(struct api_call *call);

/* Frees what the call owns. */
void api_call_clear(struct api_call *call);

/* The job a call is about, for the access log: the one it submitted, or
 * the one its path names; "-" when none.  Borrowed from the call. */
const char *api_call_job_id(const struct api_call *call);

/*
 * Drops one reference to a shared body (struct api_body *, as void * to
 * match libmicrohttpd's free callback); the last one frees it.  Any
 * thread.
 */
void api_body_release(void *body);

/*
 * Checks a request before its body is read: route, method, content type,
 * announced length.  Returns API_DONE with an error response in call, or
 * API_CONTINUE.  content_length < 0 when not announced.
 */
int api_precheck(api *a, struct api_call *call, int64_t content_length);

/* Whether the route/method of call takes a body worth keeping. */
bool api_wants_body(const struct api_call *call);

/* Handles a complete request: API_DONE (response set) or API_PENDING. */
int api_handle(api *a, struct api_call *call);

/* After http suspended a pending call: hands its op to the writer. */
void api_start(api *a, struct api_call *call);

/* Back on the http thread after resume(): builds the response. */
void api_finish(api *a, struct api_call *call);

/* Sets an RFC 9457 problem response (for errors found by http). */
void api_problem(struct api_call *call, int status, const char *slug,
                 const char *title, const char *detail);

/* HTTP status for a JOBD_E* code. */
int api_status_for(int code);

#endif
