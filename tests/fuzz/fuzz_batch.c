/*
 * fuzz_batch.c - libFuzzer harness for POST /jobs with an array
 * (batch_parse), where untrusted bytes become many jobs at once.
 *
 * The input is the request body, verbatim and not NUL-terminated.  Besides
 * the sanitizers, the harness checks the contract of batch.h: a batch is
 * accepted whole (1 to max_batch jobs of configured types, no errors) or
 * refused whole (no jobs); the errors of a refused batch name each invalid
 * element once, in index order, and the status is 400 exactly when one of
 * them is malformed; whatever batch_is_array() says is not an array is
 * refused; each accepted job is what submit_parse() makes of the
 * element alone; and once ids are made, the writer's part of depends_on
 * (the ids outside the batch listed, then "#N" resolved) leaves only job
 * ids, each an outside one or an earlier element's.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "batch.h"
#include "config.h"
#include "err.h"
#include "job.h"
#include "log.h"
#include "submit.h"

#define NOW_US 1767225600000000LL
#define MAX_BATCH 8

static struct config *cfg;

#define CHECK(cond, ...)                                                   \
	do {                                                               \
		if (!(cond)) {                                             \
			fprintf(stderr, "fuzz_batch: %s: ", #cond);        \
			fprintf(stderr, __VA_ARGS__);                      \
			fputc('\n', stderr);                               \
			abort();                                           \
		}                                                          \
	} while (0)

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	char err[1024];

	(void)argc;
	(void)argv;
	log_set_level(0);
	if (config_load_string("fuzz_batch.conf",
	                       "[handler.noop]\nbuiltin = noop\n"
	                       "[handler.echo]\nbuiltin = echo\n"
	                       "timeout = 30s\nmax_attempts = 5\n",
	                       &cfg, err, sizeof(err)) != 0) {
		fprintf(stderr, "fuzz_batch: config: %s\n", err);
		abort();
	}
	return 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *body = (const char *)data;
	struct job *jobs = (struct job *)1, single;
	struct batch_error *errs = (struct batch_error *)1;
	size_t njobs = 99, nerrs = 99;
	char err[256] = "";
	int rc;

	rc = batch_parse(body, size, cfg, MAX_BATCH, NOW_US, &jobs, &njobs,
	                 &errs, &nerrs, err, sizeof(err));
	CHECK(rc == 0 || rc == JOBD_EINVAL || rc == JOBD_ERANGE ||
	      rc == JOBD_ENOMEM, "rc %d", rc);
	if (!batch_is_array(body, size))
		CHECK(rc == JOBD_EINVAL && nerrs == 0, "not an array: rc %d", rc);
	if (rc != 0) {
		CHECK(jobs == NULL && njobs == 0, "refused with jobs");
		CHECK(err[0] != '\0', "refused without a reason");
		CHECK((nerrs == 0) == (errs == NULL), "errs %zu", nerrs);
		bool malformed = false;
		for (size_t i = 0; i < nerrs; i++) {
			CHECK(errs[i].rc == JOBD_EINVAL ||
			      errs[i].rc == JOBD_ERANGE, "error rc %d",
			      errs[i].rc);
			CHECK(i == 0 || errs[i].index > errs[i - 1].index,
			      "indexes out of order");
			CHECK(errs[i].index < MAX_BATCH, "index %zu",
			      errs[i].index);
			CHECK(errs[i].detail[0] != '\0', "empty detail");
			malformed |= errs[i].rc == JOBD_EINVAL;
		}
		if (nerrs > 0)
			CHECK(rc == (malformed ? JOBD_EINVAL : JOBD_ERANGE),
			      "status %d for its errors", rc);
		free(errs);
		return 0;
	}
	CHECK(errs == NULL && nerrs == 0, "accepted with errors");
	CHECK(njobs >= 1 && njobs <= MAX_BATCH, "%zu jobs", njobs);
	CHECK(submit_json_strict(body, size, SUBMIT_MAX_DEPTH + 1, NULL, 0)
	      == 0, "accepted a body that is not strict JSON");
	/* Each job within the documented ranges. */
	for (size_t i = 0; i < njobs; i++) {
		CHECK(config_handler(cfg, jobs[i].type) != NULL, "type %s",
		      jobs[i].type);
		CHECK(jobs[i].payload != NULL, "job %zu without payload", i);
		CHECK(jobs[i].priority >= -100 && jobs[i].priority <= 100,
		      "priority %d", jobs[i].priority);
		CHECK(jobs[i].max_attempts >= 1 && jobs[i].max_attempts <= 100,
		      "max_attempts %d", jobs[i].max_attempts);
		CHECK(jobs[i].run_at_us >= NOW_US, "run_at");
	}
	/* A one-element batch is its element as a single job. */
	if (njobs == 1) {
		const char *p = body, *end = body + size;
		while (p < end && *p != '[')
			p++;
		const char *q = end;
		while (q > p && *(q - 1) != ']')
			q--;
		job_init(&single);
		rc = submit_parse(p + 1, (size_t)(q - 1 - (p + 1)), cfg, NOW_US,
		                  &single, err, sizeof(err));
		CHECK(rc == 0, "the element alone is refused: %s", err);
		CHECK(strcmp(single.type, jobs[0].type) == 0 &&
		      strcmp(single.payload, jobs[0].payload) == 0 &&
		      single.priority == jobs[0].priority &&
		      single.run_at_us == jobs[0].run_at_us &&
		      single.max_attempts == jobs[0].max_attempts &&
		      single.timeout_ms == jobs[0].timeout_ms,
		      "the element alone differs");
		job_clear(&single);
	}
	struct batch_deps d;
	CHECK(batch_assign_ids(jobs, njobs) == 0, "ids");
	rc = batch_outside_deps(jobs, njobs, &d);
	CHECK(rc == 0 || rc == JOBD_ENOMEM, "outside deps: %d", rc);
	for (size_t i = 0; rc == 0 && i < d.n; i++)
		CHECK(d.ids[i][0] != '#' && d.element[i] < njobs &&
		      (i == 0 || d.element[i] >= d.element[i - 1]),
		      "outside dep %zu", i);
	batch_deps_free(&d);
	rc = batch_resolve_refs(jobs, njobs);
	CHECK(rc == 0 || rc == JOBD_ENOMEM, "resolve: %d", rc);
	for (size_t i = 0; rc == 0 && i < njobs; i++) {
		const char *p = jobs[i].depends_on;
		char id[UUID_STR_LEN];
		while (p != NULL && job_depends_on_next(&p, id)) {
			CHECK(id[0] != '#', "job %zu kept %s", i, id);
			for (size_t k = i; k < njobs; k++)
				CHECK(strcmp(id, jobs[k].id) != 0,
				      "job %zu depends on job %zu", i, k);
		}
	}
	batch_jobs_free(jobs, njobs);
	return 0;
}
