/*
 * store_backend.h - the table of operations a store backend implements
 * (OpenSMTPD queue_backend style).  Only store.c and the backends include
 * this; everybody else uses store.h.
 */
#ifndef JOBD_STORE_BACKEND_H
#define JOBD_STORE_BACKEND_H

#include "store.h"

struct store_ops {
	const char *name;
	/* Other daemons may change the store (several nodes): the writer
	 * looks for due work now and then, not only when told. */
	bool shared;
	int (*open)(const char *path, const struct store_options *opt,
	            void **impl, char *err, size_t errlen);
	void (*close)(void *impl);
	int (*begin)(void *impl, char *err, size_t errlen);
	int (*commit)(void *impl, char *err, size_t errlen);
	void (*rollback)(void *impl);
	int (*insert)(void *impl, const struct job *job, char *err,
	              size_t errlen);
	/* queued jobs only; NULL: insert one by one */
	int (*insert_many)(void *impl, const struct job *jobs, size_t n,
	                   char *err, size_t errlen);
	int (*find_idem)(void *impl, const char *key, struct job *out,
	                 char *err, size_t errlen);
	int (*claim)(void *impl, const struct store_claim_req *req,
	             struct job **out, size_t *nout, char *err, size_t errlen);
	/* complete and put_back answer in *ans (NULL: not wanted), at once
	 * or by the next flush, claim or commit. */
	int (*complete)(void *impl, const struct store_completion *c,
	                struct store_answer *ans, char *err, size_t errlen);
	int (*start)(void *impl, const char *id, const char *claim,
	             int64_t started_at_us, char *err, size_t errlen);
	int (*put_back)(void *impl, const char *id, const char *claim,
	                int64_t now_us, struct store_answer *ans, char *err,
	                size_t errlen);
	int (*flush)(void *impl, char *err, size_t errlen);
	/* a running attempt's report, fenced by its claim (store.h) */
	int (*progress)(void *impl, const char *id, const char *claim,
	                const char *json, char *err, size_t errlen);
	int (*cancel)(void *impl, const char *id, int64_t now_us, int *status,
	              char *err, size_t errlen);
	int (*retry)(void *impl, const char *id, int64_t now_us, int *status,
	             char *err, size_t errlen);
	int (*recover)(void *impl, int64_t now_us, int *requeued, int *failed,
	               char *err, size_t errlen);
	int (*purge)(void *impl, int64_t cutoff_us, int limit,
	             int64_t deleted[JOB_NSTATUS], char *err, size_t errlen);
	int (*next_run_at)(void *impl, int64_t *out_us, char *err,
	                   size_t errlen);
	int (*get)(void *impl, const char *id, struct job *out, char *err,
	           size_t errlen);
	int (*list)(void *impl, const struct store_filter *f, struct job **out,
	            size_t *nout, char *err, size_t errlen);
	int (*counts)(void *impl, int64_t counts[JOB_NSTATUS], char *err,
	              size_t errlen);
	int (*counts_by_type)(void *impl, store_type_count_fn fn, void *arg,
	                      char *err, size_t errlen);
	/* paused types (store_pauses, store_read_pauses, store_set_pause) */
	int (*pauses)(void *impl, store_pause_fn fn, void *arg, char *err,
	              size_t errlen);
	int (*read_pauses)(void *impl, store_pause_fn fn, void *arg,
	                   char *err, size_t errlen);
	int (*set_pause)(void *impl, const char *type, bool paused,
	                 int64_t now_us, char *err, size_t errlen);
	bool (*ping)(void *impl);
	/* several nodes (NULL when not shared) */
	int (*nodes)(void *impl, store_node_fn fn, void *arg, char *err,
	             size_t errlen);
	bool (*is_leader)(void *impl);
	void (*set_hooks)(void *impl, const struct store_hooks *h);
	int (*live_nodes)(void *impl);
	bool (*may_claim)(void *impl);
	bool (*listening)(void *impl);
	int (*notify_work)(void *impl, char *err, size_t errlen);
	int (*check)(void *impl, char *err, size_t errlen);
	int (*schedules)(void *impl, store_schedule_fn fn, void *arg,
	                 char *err, size_t errlen);
	int (*schedule_put)(void *impl, const struct store_schedule *s,
	                    char *err, size_t errlen);
	/* dependencies (store.h) */
	int (*deps_link)(void *impl, const struct job *job, int64_t now_us,
	                 int *status, char *err, size_t errlen);
	int (*deps_resolve)(void *impl, const char *const *ids,
	                    const int *statuses, size_t n, int64_t now_us,
	                    store_dep_fn fn, void *arg, char *err,
	                    size_t errlen);
	int (*deps_sweep)(void *impl, int64_t now_us, store_dep_fn fn,
	                  void *arg, char *err, size_t errlen);
	int (*deps_cancel)(void *impl, const char *id, int64_t now_us,
	                   bool *cancelled, char *err, size_t errlen);
	int (*deps_missing)(void *impl, const char *const *ids, size_t n,
	                    size_t *missing, char *err, size_t errlen);
	/* callbacks (store.h): a new job's callback_url, the outbox */
	int (*set_callback)(void *impl, const char *id, const char *url,
	                    char *err, size_t errlen);
	int (*outbox_claim)(void *impl,
	                    const struct store_outbox_claim_req *req,
	                    struct store_outbox_row **out, size_t *nout,
	                    int64_t *next_us, char *err, size_t errlen);
	int (*outbox_done)(void *impl, const char *id, const char *claim,
	                   int status, int attempts, int64_t next_at_us,
	                   const char *last_error, char *err, size_t errlen);
};

extern const struct store_ops store_sqlite_ops;
extern const struct store_ops store_pg_ops;

#endif
