/*
 * fuzz_shellwords.c - libFuzzer harness for the exec argv splitter
 * (shellwords_split / shellwords_free), which turns a handler's
 * `command` and `env` into argv without a shell.
 *
 * The input is the command line (a NUL-terminated copy).  Besides the
 * sanitizers, the harness checks shellwords.h's contract (a NULL-
 * terminated vector of argc words, none longer than the input; a reason
 * on failure) and a round trip: the words, each re-quoted in single
 * quotes, must split back into the same words.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "log.h"
#include "shellwords.h"

#define CHECK(cond, ...)                                                   \
	do {                                                               \
		if (!(cond)) {                                             \
			fprintf(stderr, "fuzz_shellwords: %s: ", #cond);   \
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
	(void)argc;
	(void)argv;
	log_set_level(0);
	return 0;
}

/* The words quoted for a shell: 'it'\''s' and so on, blank-separated. */
static char *
requote(char **argv, int argc)
{
	size_t n = 1;
	char *out, *o;

	for (int i = 0; i < argc; i++)
		n += 4 * strlen(argv[i]) + 3;
	if ((out = malloc(n)) == NULL)
		return NULL;
	o = out;
	for (int i = 0; i < argc; i++) {
		if (i > 0)
			*o++ = ' ';
		*o++ = '\'';
		for (const char *p = argv[i]; *p; p++) {
			if (*p == '\'') {
				memcpy(o, "'\\''", 4);
				o += 4;
			} else {
				*o++ = *p;
			}
		}
		*o++ = '\'';
	}
	*o = '\0';
	return out;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *s = malloc(size + 1);
	char **argv = NULL, **again = NULL, *quoted = NULL;
	char err[128];
	int argc = -1, againc = -1, rc;

	if (s == NULL)
		return 0;
	memcpy(s, data, size);
	s[size] = '\0';
	err[0] = '\0';

	rc = shellwords_split(s, &argv, &argc, err, sizeof(err));
	if (rc != 0) {
		CHECK(rc == JOBD_EINVAL, "unexpected code %d", rc);
		CHECK(err[0] != '\0', "failure without a reason");
		goto out;
	}
	CHECK(argv != NULL && argc >= 0, "argv %p argc %d", (void *)argv, argc);
	CHECK(argv[argc] == NULL, "argv[%d] is not NULL", argc);
	size_t total = 0;
	for (int i = 0; i < argc; i++) {
		CHECK(argv[i] != NULL, "argv[%d] is NULL", i);
		total += strlen(argv[i]);
	}
	CHECK(total <= strlen(s), "%zu bytes of words from %zu", total,
	      strlen(s));

	quoted = requote(argv, argc);
	if (quoted == NULL)
		goto out;
	rc = shellwords_split(quoted, &again, &againc, err, sizeof(err));
	CHECK(rc == 0, "re-quoted words do not split: %s: %s", quoted, err);
	CHECK(againc == argc, "%d words, then %d from %s", argc, againc,
	      quoted);
	for (int i = 0; i < argc; i++)
		CHECK(strcmp(argv[i], again[i]) == 0, "word %d: \"%s\" vs \"%s\"",
		      i, argv[i], again[i]);
out:
	shellwords_free(again);
	shellwords_free(argv);
	free(quoted);
	free(s);
	return 0;
}
