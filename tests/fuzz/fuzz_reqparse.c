/*
 * fuzz_reqparse.c - libFuzzer harness for what a client puts in request
 * headers and query parameters: Prefer (wait, respond-async), the wait
 * value of ?wait=, Idempotency-Key, limit, after, status, type
 * (reqparse.c) and Authorization (auth_check, against a tokens file made
 * at start-up).
 *
 * The input is one header or parameter value; every parser gets it (the
 * wait parser with its exact bytes, NULs included; the others with the
 * NUL-terminated copy libmicrohttpd would hand over).  Besides the
 * sanitizers (a signed overflow aborts), the harness checks each
 * parser's contract in reqparse.h: a wait is within [0, max_wait] for
 * every max_wait, Preference-Applied text parses back to the same wait,
 * a limit is 1..1000, an after id is a lower-case UUID, and an accepted
 * key or type has only the bytes its rule allows.
 */
#include <ctype.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "auth.h"
#include "job.h"
#include "log.h"
#include "reqparse.h"
#include "uuid.h"

#define CHECK(cond, ...)                                                   \
	do {                                                               \
		if (!(cond)) {                                             \
			fprintf(stderr, "fuzz_reqparse: %s: ", #cond);     \
			fprintf(stderr, __VA_ARGS__);                      \
			fputc('\n', stderr);                               \
			abort();                                           \
		}                                                          \
	} while (0)

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static auth *tokens;

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	char path[] = "/tmp/fuzz_reqparse_tokensXXXXXX";
	char err[256];
	int fd;

	(void)argc;
	(void)argv;
	log_set_level(0);
	fd = mkstemp(path);
	if (fd < 0)
		return 0;
	fchmod(fd, 0600);
	if (write(fd, "ci:s3cret-token-1\nops:another-token-22\n", 39) == 39 &&
	    auth_load(path, &tokens, err, sizeof(err)) != 0)
		fprintf(stderr, "fuzz_reqparse: %s\n", err);
	close(fd);
	unlink(path);
	return 0;
}

static void
check_wait(const char *s, size_t len)
{
	static const int64_t maxes[] = {0, 1, 60000, INT64_MAX};
	int64_t ms;
	char applied[32];

	for (size_t i = 0; i < sizeof(maxes) / sizeof(maxes[0]); i++) {
		ms = -2;
		if (reqparse_wait(s, len, maxes[i], &ms, NULL, 0) != 0)
			continue;
		CHECK(ms >= 0 && ms <= maxes[i], "wait %lld of max %lld",
		      (long long)ms, (long long)maxes[i]);
		/* What Preference-Applied says is what was applied. */
		reqparse_format_wait(ms, applied, sizeof(applied));
		int64_t back = -1;
		CHECK(strncmp(applied, "wait=", 5) == 0 &&
		      reqparse_wait(applied + 5, strlen(applied + 5), INT64_MAX,
		                    &back, NULL, 0) == 0 && back == ms,
		      "\"%s\" for %lld ms", applied, (long long)ms);
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *s = malloc(size + 1);
	struct reqparse_prefer pref;
	char err[256], after[37];
	size_t limit;
	int status;

	if (s == NULL)
		return 0;
	memcpy(s, data, size);
	s[size] = '\0';

	check_wait((const char *)data, size);

	if (reqparse_prefer(s, 60000, &pref, err, sizeof(err)) == 0)
		CHECK(pref.wait_ms == -1 ||
		      (pref.wait_ms >= 0 && pref.wait_ms <= 60000),
		      "Prefer wait %lld", (long long)pref.wait_ms);
	else
		CHECK(err[0] != '\0', "no reason for a refused Prefer");

	if (reqparse_idem_key(s, err, sizeof(err)) == 0) {
		size_t n = strlen(s);
		CHECK(n >= 1 && n <= REQPARSE_KEY_MAX, "key of %zu bytes", n);
		for (size_t i = 0; i < n; i++)
			CHECK(s[i] >= 0x20 && s[i] <= 0x7e, "key byte %02x",
			      (unsigned char)s[i]);
	}

	if (reqparse_limit(s, &limit, err, sizeof(err)) == 0)
		CHECK(limit >= 1 && limit <= REQPARSE_LIMIT_MAX, "limit %zu",
		      limit);

	memset(after, 'x', sizeof(after));
	if (reqparse_after(s, after, err, sizeof(err)) == 0) {
		CHECK(strlen(after) == 36 && uuid_is_valid(after), "after %.37s",
		      after);
		for (int i = 0; i < 36; i++)
			CHECK(!isupper((unsigned char)after[i]), "after %s",
			      after);
	}

	if (reqparse_status(s, &status, err, sizeof(err)) == 0)
		CHECK(status >= 0 && status < JOB_NSTATUS &&
		      strcmp(job_status_name(status), s) == 0, "status %d",
		      status);

	if (reqparse_type(s, err, sizeof(err)) == 0) {
		size_t n = strlen(s);
		CHECK(n >= 1 && n <= JOB_TYPE_MAX, "type of %zu bytes", n);
		for (size_t i = 0; i < n; i++)
			CHECK(isalnum((unsigned char)s[i]) || s[i] == '_' ||
			      s[i] == '.' || s[i] == '-', "type byte %02x",
			      (unsigned char)s[i]);
	}

	if (tokens != NULL) {
		char who[65];
		bool ok = auth_check(tokens, s, who, sizeof(who));
		CHECK(!ok || strcmp(who, "ci") == 0 || strcmp(who, "ops") == 0,
		      "token name %s", who);
		CHECK(ok || who[0] == '\0', "a name without a match: %s", who);
	}
	free(s);
	return 0;
}
