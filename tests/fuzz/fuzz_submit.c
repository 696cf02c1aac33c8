/*
 * fuzz_submit.c - libFuzzer harness for the POST /jobs body parser and
 * validator (submit_parse) and the Idempotency-Key fingerprint
 * (submit_fingerprint), where untrusted bytes become a job.
 *
 * The input is the request body, verbatim and not NUL-terminated, as
 * http.c hands it over.  Besides the sanitizers, the harness checks the
 * contract of submit.h: a failure sets err and leaves the job clear; a
 * success yields a job whose type names a configured handler, whose fields
 * are within the documented ranges, and whose payload is JSON text (RFC
 * 8259, checked strictly below) that job_to_json() can embed raw (job.c)
 * into a valid JSON answer, and that holds the value the client sent.
 */
#include <cJSON.h>
#include <ctype.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "err.h"
#include "job.h"
#include "log.h"
#include "submit.h"

/* A fixed clock keeps runs reproducible: 2026-01-01T00:00:00Z. */
#define NOW_US 1767225600000000LL /* the store keeps µs */
#define MAX_DELAY_MS (366LL * 86400 * 1000)

static struct config *cfg;

/* Aborts with a message: libFuzzer saves the input as a crash. */
#define CHECK(cond, ...)                                                   \
	do {                                                               \
		if (!(cond)) {                                             \
			fprintf(stderr, "fuzz_submit: %s: ", #cond);       \
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
	/* Handlers like the shipped conf/jobd.conf: builtins, an exec
	 * handler, and a name using every allowed punctuation mark. */
	if (config_load_string("fuzz_submit.conf",
	                       "[handler.noop]\n"
	                       "builtin = noop\n"
	                       "[handler.echo]\n"
	                       "builtin = echo\n"
	                       "timeout = 30s\n"
	                       "max_attempts = 5\n"
	                       "[handler.wc]\n"
	                       "command = wc -c\n"
	                       "[handler.a.b-c_9]\n"
	                       "builtin = noop\n"
	                       "[callbacks]\n"
	                       "allow = http://a.example/ https://b.example/x\n",
	                       &cfg, err, sizeof(err)) != 0) {
		fprintf(stderr, "fuzz_submit: config: %s\n", err);
		abort();
	}
	return 0;
}

/*
 * A strict RFC 8259 recogniser.  cJSON is lenient (it skips any byte up to
 * 0x20 as whitespace, takes raw control characters in strings, and numbers
 * such as 01 or 1.), and what reaches clients must be JSON for any parser.
 */
struct scan {
	const unsigned char *p, *end;
	int depth;
};

static bool scan_value(struct scan *j);

static void
scan_ws(struct scan *j)
{
	while (j->p < j->end && (*j->p == ' ' || *j->p == '\t' ||
	                         *j->p == '\n' || *j->p == '\r'))
		j->p++;
}

static bool
scan_char(struct scan *j, unsigned char c)
{
	if (j->p >= j->end || *j->p != c)
		return false;
	j->p++;
	return true;
}

static bool
scan_literal(struct scan *j, const char *lit)
{
	size_t n = strlen(lit);

	if ((size_t)(j->end - j->p) < n || memcmp(j->p, lit, n) != 0)
		return false;
	j->p += n;
	return true;
}

static bool
scan_string(struct scan *j)
{
	if (!scan_char(j, '"'))
		return false;
	while (j->p < j->end) {
		unsigned char c = *j->p++;
		if (c == '"')
			return true;
		if (c < 0x20)
			return false; /* control characters must be escaped */
		if (c != '\\')
			continue;
		if (j->p >= j->end)
			return false;
		c = *j->p++;
		if (c == 'u') {
			for (int i = 0; i < 4; i++)
				if (j->p >= j->end || !isxdigit(*j->p++))
					return false;
		} else if (c == '\0' || strchr("\"\\/bfnrt", c) == NULL) {
			return false;
		}
	}
	return false;
}

static bool
scan_digits(struct scan *j)
{
	const unsigned char *start = j->p;

	while (j->p < j->end && isdigit(*j->p))
		j->p++;
	return j->p > start;
}

static bool
scan_number(struct scan *j)
{
	scan_char(j, '-');
	if (!scan_char(j, '0') && (j->p >= j->end || *j->p < '1' ||
	                           *j->p > '9' || !scan_digits(j)))
		return false;
	if (scan_char(j, '.') && !scan_digits(j))
		return false;
	if (scan_char(j, 'e') || scan_char(j, 'E')) {
		if (!scan_char(j, '+'))
			scan_char(j, '-');
		if (!scan_digits(j))
			return false;
	}
	return true;
}

static bool
scan_container(struct scan *j, unsigned char close)
{
	bool ok = true;

	if (++j->depth > 64)
		return false;
	scan_ws(j);
	if (scan_char(j, close))
		goto out;
	for (;;) {
		if (close == '}') {
			if (!scan_string(j))
				goto fail;
			scan_ws(j);
			if (!scan_char(j, ':'))
				goto fail;
		}
		if (!scan_value(j))
			goto fail;
		scan_ws(j);
		if (scan_char(j, close))
			goto out;
		if (!scan_char(j, ','))
			goto fail;
		scan_ws(j);
	}
fail:
	ok = false;
out:
	j->depth--;
	return ok;
}

static bool
scan_value(struct scan *j)
{
	scan_ws(j);
	if (j->p >= j->end)
		return false;
	switch (*j->p) {
	case '{': j->p++; return scan_container(j, '}');
	case '[': j->p++; return scan_container(j, ']');
	case '"': return scan_string(j);
	case 't': return scan_literal(j, "true");
	case 'f': return scan_literal(j, "false");
	case 'n': return scan_literal(j, "null");
	default: return scan_number(j);
	}
}

/* True when the C string s is one RFC 8259 JSON text and nothing else. */
static bool
is_json(const char *s)
{
	struct scan j = {(const unsigned char *)s,
	                 (const unsigned char *)s + strlen(s), 0};

	if (!scan_value(&j))
		return false;
	scan_ws(&j);
	return j.p == j.end;
}

/* cJSON's compact rendering of a value (NULL: absent), for comparisons. */
static char *
render(const cJSON *item)
{
	return item != NULL ? cJSON_PrintUnformatted(item) : strdup("null");
}

/*
 * True when the stored payload is the value the body's "payload" member
 * holds for a JSON parser (cJSON here), or null when there is none.
 */
static bool
payload_matches(const char *body, size_t size, const char *payload)
{
	cJSON *root = cJSON_ParseWithLength(body, size);
	cJSON *stored = cJSON_Parse(payload);
	char *want = NULL, *got = NULL;
	bool same;

	if (root != NULL)
		want = render(cJSON_GetObjectItemCaseSensitive(root, "payload"));
	if (stored != NULL)
		got = render(stored);
	same = want != NULL && got != NULL && strcmp(want, got) == 0;
	if (!same)
		fprintf(stderr, "fuzz_submit: payload sent %s, stored %s\n",
		        want ? want : "?", got ? got : "?");
	free(got);
	free(want);
	cJSON_Delete(stored);
	cJSON_Delete(root);
	return same;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *body = (const char *)data;
	struct job job;
	char err[256], fp[SUBMIT_FINGERPRINT_LEN + 1];
	int rc;

	job_init(&job);
	err[0] = '\0';
	rc = submit_parse(body, size, cfg, NOW_US, &job, err, sizeof(err));
	CHECK(rc == 0 || rc == JOBD_EINVAL || rc == JOBD_ERANGE,
	      "unexpected code %d", rc);
	if (rc != 0) {
		CHECK(err[0] != '\0', "failure without a reason");
		CHECK(job.payload == NULL, "failure left a payload");
		/* The fingerprint must cope with any bytes too. */
		rc = submit_fingerprint(body, size, fp);
		CHECK(rc == 0 || rc == JOBD_EINVAL, "fingerprint code %d", rc);
		return 0;
	}

	CHECK(config_handler(cfg, job.type) != NULL, "type \"%s\"", job.type);
	CHECK(job.priority >= -100 && job.priority <= 100, "priority %d",
	      job.priority);
	CHECK(job.max_attempts >= 1 && job.max_attempts <= 100,
	      "max_attempts %d", job.max_attempts);
	CHECK(job.timeout_ms >= 1 && job.timeout_ms <= 7LL * 86400 * 1000,
	      "timeout_ms %lld", (long long)job.timeout_ms);
	CHECK(job.created_at_us == NOW_US, "created_at_us");
	CHECK(job.run_at_us >= NOW_US &&
	      job.run_at_us <= NOW_US + MAX_DELAY_MS * 1000,
	      "run_at_us %lld", (long long)job.run_at_us);
	CHECK(job.payload != NULL, "no payload");
	/* job.c embeds the payload raw into every answer about the job. */
	CHECK(is_json(job.payload), "payload is not JSON: %s", job.payload);
	CHECK(payload_matches(body, size, job.payload), "payload changed");
	char *text = job_to_json(&job);
	CHECK(text != NULL, "job_to_json failed");
	CHECK(is_json(text), "answer is not JSON: %s", text);
	free(text);

	/* api.c fingerprints an accepted body when it has an
	 * Idempotency-Key. */
	memset(fp, 0, sizeof(fp));
	rc = submit_fingerprint(body, size, fp);
	CHECK(rc == 0, "fingerprint of an accepted body: %d", rc);
	CHECK(strlen(fp) == SUBMIT_FINGERPRINT_LEN &&
	      strspn(fp, "0123456789abcdef") == SUBMIT_FINGERPRINT_LEN,
	      "fingerprint \"%s\"", fp);
	job_clear(&job);
	return 0;
}
