/*
 * submit.h - parsing and validation of a POST /jobs body into a job.
 *
 * Pure functions: no I/O, no globals; safe from any thread.  This is where
 * untrusted bytes become a struct job, so it checks everything: UTF-8,
 * nesting depth (our own limit, cJSON's compiled-in one is 1000), field
 * types and ranges, and that the type names a configured handler.
 */
#ifndef JOBD_SUBMIT_H
#define JOBD_SUBMIT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "job.h"

#define SUBMIT_MAX_DEPTH 32

/*
 * Returns the deepest nesting of arrays/objects in the JSON text (strings
 * are skipped), or stops counting and returns limit + 1 once it is passed.
 */
int submit_json_depth(const char *buf, size_t len, int limit);

/*
 * Checks that buf[0..len) is one strict RFC 8259 JSON text nested at most
 * max_depth deep.  Returns 0, or JOBD_EINVAL with the reason in err.
 */
int submit_json_strict(const char *buf, size_t len, int max_depth, char *err,
                       size_t errlen);

/*
 * A copy of the JSON text buf[0..len) (already checked) without the
 * whitespace outside its strings: the client's own bytes otherwise, so
 * that nothing is rounded or cut.  A new string the caller frees, or NULL
 * when out of memory.
 */
char *submit_json_compact(const char *buf, size_t len);

/*
 * Parses and validates a submission.  On success returns 0 and fills job
 * (which must be job_init'ed; its strings then belong to it) with type,
 * payload, priority, run_at, max_attempts, timeout and created_at = now_us;
 * the id is not set.  On failure returns JOBD_EINVAL (malformed: answer 400)
 * or JOBD_ERANGE (well-formed but unacceptable: answer 422), with the reason
 * in err, and leaves job clear.
 */
int submit_parse(const char *body, size_t len, const struct config *cfg,
                 int64_t now_us, struct job *job, char *err, size_t errlen);

/*
 * The same for element index of a batch, text already checked as UTF-8
 * and strict JSON within SUBMIT_MAX_DEPTH (with the whole body): its
 * depends_on may also name an earlier element as "#N" (see
 * submit_depends_on_batch), kept as "#N" in job->depends_on.
 */
int submit_parse_element(const char *body, size_t len, size_t index,
                         const struct config *cfg, int64_t now_us,
                         struct job *job, char *err, size_t errlen);

/*
 * The "depends_on" of a job from its ids (already resolved ids: a batch
 * turns its "#N" references into the ids it made first): checks that there
 * are at most JOB_MAX_DEPENDS_ON and that each is a job id (JOBD_ERANGE,
 * 422, naming the index), drops repeats, and returns in *out a new string
 * (the caller frees it) of the lowercase ids separated by one space, or
 * NULL when n is 0.  0, JOBD_ERANGE or JOBD_ENOMEM.
 */
int submit_depends_on(const char *const *ids, size_t n, char **out,
                      char *err, size_t errlen);

/*
 * The same for element index of a batch: an entry may also be "#N", the
 * element at 0-based index N of the same batch, N < index (else
 * JOBD_ERANGE naming the entry: itself, forward, or not a number).  The
 * "#N" entries stay as they are in *out until the batch's ids are made;
 * then submit_depends_on_resolve(&jobs[i].depends_on, jobs, i) turns them
 * into jobs[N].id (dropping repeats).  0, JOBD_ERANGE (a "#N" not below
 * njobs) or JOBD_ENOMEM; *depends_on is replaced only on success.
 */
int submit_depends_on_batch(const char *const *ids, size_t n, size_t index,
                            char **out, char *err, size_t errlen);
int submit_depends_on_resolve(char **depends_on, const struct job *jobs,
                              size_t njobs);

#define SUBMIT_FINGERPRINT_LEN 64

/*
 * Fingerprint of a submission for Idempotency-Key: SHA-256 of the body's
 * canonical text, as 64 hex digits: the client's own bytes for every
 * string, key and number (no re-print: 2^53 + 1 and 2^53, or "a\u0000b"
 * and "a\u0000c", stay apart), no whitespace between tokens, the members
 * of every object sorted by raw key bytes.  The body holds the type, so
 * type + body are covered.  A cryptographic hash, so that nobody can make
 * another body pass for a key's first one.  Returns 0, JOBD_EINVAL (not
 * strict JSON) or JOBD_ENOMEM.
 */
int submit_fingerprint(const char *body, size_t len,
                       char out[SUBMIT_FINGERPRINT_LEN + 1]);

#endif
