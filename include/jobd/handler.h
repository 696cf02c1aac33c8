/*
 * jobd/handler.h - the interface between jobd's workers and a job handler.
 *
 * Builtin and exec handlers implement it inside jobd; a plugin (a shared
 * object named by "plugin = PATH.so" in a [handler.NAME] section)
 * implements it from outside, and this is the only jobd header it needs:
 * it exports "const struct jobd_plugin jobd_plugin" (below).  A handler
 * runs one attempt on a worker thread: it reads the job (borrowed), does
 * the work, checks the context for a stop request (the C equivalent of
 * Go's ctx.Done()) and fills a result.  It never sees a connection, a
 * request or the store.
 *
 * Plain C11 (and C++: the declarations have C linkage); installed as
 * /usr/include/jobd/handler.h.
 */
#ifndef JOBD_HANDLER_H
#define JOBD_HANDLER_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

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

/*
 * What a handler returns.  result and error are malloc'ed by the handler
 * (malloc, strdup, asprintf: the C library's allocator) and owned by jobd
 * once the handler has returned; jobd frees them.
 */
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

/*
 * Plugins.
 *
 * The version of the plugin interface this header describes: struct
 * jobd_plugin, struct jobd_job_view, struct jobd_result, the enums and the
 * jobd_ctx_* functions.  It changes whenever one of them changes
 * incompatibly.  jobd refuses to start (naming the file) with a plugin
 * whose abi is not the JOBD_HANDLER_ABI jobd was built with.
 */
#define JOBD_HANDLER_ABI 1

/*
 * What a plugin exports, under the name jobd_plugin (declared below, so
 * that the definition is checked against it and exported with C linkage
 * even from C++):
 *
 *     const struct jobd_plugin jobd_plugin = {
 *             .abi = JOBD_HANDLER_ABI, .name = "hello",
 *             .init = hello_init, .run = hello_run, .fini = hello_fini,
 *     };
 *
 * jobd loads the shared object with dlopen(RTLD_NOW | RTLD_LOCAL) at
 * start-up (and at a reload that adds a section naming it), and calls
 * init once per plugin_config text that the [handler.NAME] sections
 * naming it give (sections with the same text share one state);
 * jobd --check-config calls init and then fini too.  Then run is called
 * for every attempt of those sections' jobs, on worker threads: SEVERAL AT ONCE, with the same
 * state, so run must be thread-safe (state read-only, or guarded by the
 * plugin's own locks).  fini is called once per successful init, at
 * shutdown, after every worker has stopped.  A plugin runs inside the
 * daemon: a crash or a memory error in it takes jobd down.  Signals are
 * blocked on every jobd thread; do not change the process's signal
 * handlers, working directory or environment.
 */
struct jobd_plugin {
	/* JOBD_HANDLER_ABI, as this header defines it. */
	int abi;

	/* A short name for jobd's logs ("sha256"); may be NULL. */
	const char *name;

	/*
	 * Called once per plugin_config text, on jobd's main thread, before
	 * any run.  config is the section's plugin_config text (borrowed;
	 * valid during the call only), or NULL when it has none.  Stores
	 * what run needs in *state (NULL is fine; it starts NULL).  Returns
	 * 0, or any other value to refuse: then jobd refuses to start (or
	 * rejects a reload), naming the file and the value, and fini is not
	 * called.  To say why, write one line to stderr first (jobd's
	 * stderr: the journal under systemd).  May be NULL (state stays
	 * NULL).
	 */
	int (*init)(const char *config, void **state);

	/*
	 * Runs one attempt of job (every pointer in job borrowed, valid
	 * during the call only) and returns its outcome, an enum
	 * jobd_outcome: JOBD_SUCCEEDED, JOBD_RETRY (retried while
	 * attempts remain), JOBD_FAILED_FOR_GOOD (never retried) or
	 * JOBD_STOPPED (after a stop request: jobd_ctx_stop_reason says
	 * why).  result arrives zeroed; the plugin may set result->result
	 * (JSON text; text that is not JSON is kept as a JSON string; over
	 * the section's max_output it is dropped) and result->error (a
	 * message, shown as the job's "error"), both malloc'ed and freed by
	 * jobd; result->outcome is ignored (the return value is the
	 * outcome).  Long work polls jobd_ctx_stop_reason (or waits with
	 * jobd_ctx_sleep) and returns JOBD_STOPPED soon after a stop is
	 * requested: a cancelled job becomes "cancelled" only when run has
	 * returned.  Required.
	 */
	int (*run)(void *state, const struct jobd_job_view *job,
	           jobd_ctx *ctx, struct jobd_result *result);

	/* Frees state; called once, at shutdown.  May be NULL. */
	void (*fini)(void *state);
};

/* The symbol jobd looks up in a plugin (dlsym "jobd_plugin"). */
#if defined(__GNUC__)
__attribute__((visibility("default")))
#endif
extern const struct jobd_plugin jobd_plugin;

#ifdef __cplusplus
}
#endif

#endif
