/*
 * jobd/handler.h - the interface between jobd's workers and a job handler.
 *
 * Builtin and exec handlers implement it today; shared-object plugins will
 * implement the same interface later.  A handler runs one attempt on a
 * worker thread: it reads the job (borrowed), does the work, checks the
 * context for a stop request (the C equivalent of Go's ctx.Done()) and
 * fills a result.  It never sees a connection, a request or the store.
 */
#ifndef JOBD_HANDLER_H
#define JOBD_HANDLER_H

#include <stddef.h>
#include <stdint.h>

typedef struct jobd_ctx jobd_ctx;

/* Why an attempt is asked to stop (jobd_ctx_stop_reason). */
enum jobd_stop {
	JOBD_STOP_NONE = 0,
	JOBD_STOP_CANCEL = 1,   /* DELETE /jobs/<id>, or the waiter left */
	JOBD_STOP_SHUTDOWN = 2, /* the daemon is stopping: job is requeued */
	JOBD_STOP_TIMEOUT = 3,  /* the attempt's timeout passed */
};

/* How an attempt ended (struct jobd_result.outcome). */
enum jobd_outcome {
	JOBD_SUCCEEDED = 0,     /* done; result holds the output */
	JOBD_RETRY = 1,         /* failed; retry while attempts remain */
	JOBD_FAILED_FOR_GOOD = 2, /* failed; never retry (exit 65) */
	JOBD_STOPPED = 3,       /* stopped on request (see stop reason) */
};

/* The job as a handler sees it; every pointer is borrowed. */
struct jobd_job_view {
	const char *id;
	const char *type;
	int attempt;          /* 1 for the first attempt */
	int max_attempts;
	const char *payload;  /* compact JSON text, NUL-terminated */
	size_t payload_len;
	int64_t timeout_ms;
	const char *depends_on; /* the ids it depended on, separated by one
	                           space; "" when none */
};

/* What a handler returns; strings are malloc'ed and owned by jobd after. */
struct jobd_result {
	int outcome;          /* enum jobd_outcome */
	char *result;         /* JSON text or NULL (NULL means null) */
	char *error;          /* why it failed, or NULL */
	int has_exit_code;
	int exit_code;        /* exit status, or 128 + signal number */
	int output_truncated; /* stdout was longer than max_output */
};

/* Why the attempt is asked to stop, or JOBD_STOP_NONE.  Cheap; call often. */
int jobd_ctx_stop_reason(jobd_ctx *ctx);

/*
 * Sleeps up to ms milliseconds, returning early when a stop is requested or
 * the attempt's deadline passes.  Returns JOBD_STOP_NONE after a full sleep,
 * else the stop reason (JOBD_STOP_TIMEOUT when the deadline passed).
 */
int jobd_ctx_sleep(jobd_ctx *ctx, int64_t ms);

/* The attempt's deadline on the monotonic clock (ms), for poll loops. */
int64_t jobd_ctx_deadline_ms(jobd_ctx *ctx);

/*
 * Reports the attempt's progress: json must be one JSON object (at most
 * 4 KiB); it becomes the job's "progress" (the last report wins).  Returns
 * 0, or -1 when json is not an acceptable object (ignored).  Any thread of
 * the attempt; cheap (the store sees it at most once a second).
 */
int jobd_ctx_progress(jobd_ctx *ctx, const char *json);

#endif
