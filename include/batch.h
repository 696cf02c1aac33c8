/*
 * batch.h - POST /jobs with a JSON array (DESIGN.md §2 "POST /jobs with an
 * array"): parsing and validation of a batch into jobs, and the keys that
 * let an Idempotency-Key cover the whole batch.
 *
 * Pure functions (batch_assign_ids aside, which reads random bytes): no
 * store, no globals; safe from any thread.  The writer commits a batch as
 * one op (WOP_BATCH): all of its jobs or none.
 *
 * Idempotency: the batch's key K goes on its first job, unchanged, with
 * the fingerprint of the whole body, so that K is one name whether a
 * single job or a batch took it (a single POST and a batch with the same
 * key conflict).  Job i >= 1 gets the key "K\x1f<i>\x1f<id of job 0>": a
 * client key never holds \x1f (reqparse_idem_key), so these never meet a
 * client's key, and the first job's id makes them unique to this batch (a
 * key whose first job was purged may be used again).  A replay finds job
 * 0 by K, then each other job by its key.
 */
#ifndef JOBD_BATCH_H
#define JOBD_BATCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "job.h"

/* The longest key of a batch's job i >= 1 (K of 255, index, id). */
#define BATCH_KEY_MAX (255 + 1 + 10 + 1 + 36 + 1)

/* One invalid element: its 0-based index, JOBD_EINVAL (400) or
 * JOBD_ERANGE (422), and why. */
struct batch_error {
	size_t index;
	int rc;
	char detail[200];
};

/* True when the body's first non-whitespace byte is '[' (a batch). */
bool batch_is_array(const char *body, size_t len);

/*
 * Parses and validates a batch: body[0..len) must be one strict JSON
 * array (UTF-8, nested at most SUBMIT_MAX_DEPTH + 1 deep) of 1 to
 * max_batch elements, each of them a job object that submit_parse()
 * accepts.  On success returns 0 with *jobs (a new array of *njobs jobs,
 * in the order given, ids not set; free with batch_jobs_free).  On
 * failure returns JOBD_EINVAL (400) or JOBD_ERANGE (422) with the reason
 * in err; when elements are invalid, *errs is a new array (the caller
 * frees it) of *nerrs entries, one per invalid element in index order,
 * and the status is 400 if any of them is malformed, else 422.
 * JOBD_ENOMEM when out of memory.  cfg is borrowed.
 */
int batch_parse(const char *body, size_t len, const struct config *cfg,
                int64_t max_batch, int64_t now_us, struct job **jobs,
                size_t *njobs, struct batch_error **errs, size_t *nerrs,
                char *err, size_t errlen);

/*
 * Gives the jobs fresh UUIDv7 ids, in order (so they sort like the
 * batch).  After it, jobs[N].id is the id element N will have; "#N"
 * references stay in depends_on for the writer.  Returns 0 or
 * JOBD_EBUSY (no random bytes).
 */
int batch_assign_ids(struct job *jobs, size_t n);

/*
 * The writer's part of depends_on in a batch (DESIGN §2), inside its
 * transaction and before the first insert: the ids named outside the
 * batch must all exist (store_deps_missing), so that an unknown one
 * refuses the whole batch with its element's index; then the "#N"
 * references become the ids of elements N.
 *
 * batch_outside_deps() lists the ids that are not "#N" (d->ids, with the
 * index of the element that names each in d->element; free with
 * batch_deps_free).  batch_resolve_refs() replaces every "#N" with
 * jobs[N].id (dropping repeats).  0 or JOBD_ENOMEM (JOBD_ERANGE for a
 * "#N" not below its element, which batch_parse refused already).
 */
struct batch_deps {
	char (*ids)[UUID_STR_LEN];
	size_t *element;
	size_t n;
};
int batch_outside_deps(const struct job *jobs, size_t n,
                       struct batch_deps *d);
void batch_deps_free(struct batch_deps *d);
int batch_resolve_refs(struct job *jobs, size_t n);

/*
 * Sets the batch's Idempotency-Key (borrowed key, fingerprint fp of the
 * whole body) on its jobs as described above; ids must be assigned.
 * Returns 0 or JOBD_ENOMEM.
 */
int batch_set_keys(struct job *jobs, size_t n, const char *key,
                   const char *fp);

/* The key of job i >= 1 of the batch whose key is key and whose job 0 is
 * first_id, in out (BATCH_KEY_MAX + 1 bytes). */
void batch_element_key(const char *key, size_t i, const char *first_id,
                       char *out, size_t outlen);

/* Frees n jobs and the array; NULL is fine. */
void batch_jobs_free(struct job *jobs, size_t n);

#endif
