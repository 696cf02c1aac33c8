/*
 * job.h - a job as jobd keeps it in memory, its status names, and its JSON
 * rendering for the API.  A struct job owns its strings; job_free() frees
 * them.  Nothing here is shared between threads: jobs are copied or handed
 * over whole.
 */
#ifndef JOBD_JOB_H
#define JOBD_JOB_H

#include <stdbool.h>
#include <stdint.h>

#include "uuid.h"

enum job_status {
	JOB_QUEUED = 0,
	JOB_RUNNING,
	JOB_SUCCEEDED,
	JOB_FAILED,
	JOB_CANCELLED,
	JOB_WAITING,              /* for its dependencies (depends_on) */
	JOB_NSTATUS
};

#define JOB_TYPE_MAX 64
#define CLAIM_TOKEN_MAX 48

struct job {
	char id[UUID_STR_LEN];
	char type[JOB_TYPE_MAX + 1];
	int status;               /* enum job_status */
	int priority;             /* -100..100, higher first */
	int attempt;              /* attempts started so far */
	int max_attempts;
	int64_t timeout_ms;
	/* Times in µs since the epoch (the API shows them in ms): pickup
	 * latency well under a millisecond can be measured from the store. */
	int64_t created_at_us;
	int64_t run_at_us;
	int64_t started_at_us;    /* -1: never started */
	int64_t finished_at_us;   /* -1: not finished */
	char *payload;            /* compact JSON text, never NULL once made */
	char *result;             /* JSON text or NULL */
	char *error;              /* plain text or NULL */
	bool has_exit_code;
	int exit_code;            /* exit status, or 128 + signal */
	bool output_truncated;    /* stdout was cut at max_output */
	bool cancel_on_disconnect;
	/* store_insert() of a job inserted running: its first attempt's
	 * start is recorded with the insert (a worker takes it now) */
	bool attempt_started;
	char *idem_key;           /* Idempotency-Key or NULL */
	char *idem_fp;            /* fingerprint of the submission or NULL */
	char claim[CLAIM_TOKEN_MAX]; /* token of the current claim ("" none) */
	/* The ids it depends on, lowercase, separated by one space, as
	 * JOBD_DEPENDS_ON shows them; NULL when none. */
	char *depends_on;
	/* The last progress its handler reported (one compact JSON object,
	 * at most 4 KiB; progress.h), or NULL. */
	char *progress;
	/* callback_url as submitted (store_insert() keeps it), or NULL. */
	char *callback_url;
	/* Read from the store: the "callback" object of the API as JSON
	 * text ({"url", "status", "attempts", "last_error"}), or NULL. */
	char *callback;
};
#define JOB_CALLBACK_URL_MAX 2048

#define JOB_MAX_DEPENDS_ON 100

/*
 * Walks the ids of a depends_on text: copies the next id into out, moves
 * *p past it and returns true; false at the end (also for *p NULL).
 */
bool job_depends_on_next(const char **p, char out[UUID_STR_LEN]);

/* Status name ("queued", ...) or NULL for an out-of-range value. */
const char *job_status_name(int status);

/* Parses a status name; returns the status or -1. */
int job_status_parse(const char *name);

/* True for succeeded, failed and cancelled. */
bool job_status_is_final(int status);

/* True when s is a valid job type / handler name: [A-Za-z0-9_.-]{1,64}. */
bool job_type_valid(const char *s);

/* Initialises a job to empty values (all times -1, no strings). */
void job_init(struct job *job);

/* Frees the strings a job owns (not the struct) and re-initialises it. */
void job_clear(struct job *job);

/* Frees a heap-allocated job and its strings; NULL is fine. */
void job_free(struct job *job);

/* Copies src into dst (whose old strings are not freed), strings too.
 * 0, or JOBD_ENOMEM with dst left clear. */
int job_copy(struct job *dst, const struct job *src);

/* Moves src's contents into dst (dst must be clear); src becomes clear. */
void job_move(struct job *dst, struct job *src);

/* qsort() order of claimed jobs: highest priority first, then oldest (the
 * claim order; a store's RETURNING gives rows in no order). */
int job_cmp_claim_order(const void *a, const void *b);

/*
 * Renders the job as the API's JSON object text (compact).  Returns a new
 * string the caller frees, or NULL when out of memory.
 */
char *job_to_json(const struct job *job);

/*
 * Adds the job's JSON object to a cJSON array or object (void * to keep
 * cJSON out of this header).  Returns 0 or JOBD_ENOMEM.
 */
int job_add_to_cjson_array(const struct job *job, void *cjson_array);

#endif
