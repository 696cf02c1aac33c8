/*
 * reqparse.h - the request headers and query parameters of DESIGN.md §2,
 * parsed by pure functions: Prefer (RFC 7240: wait, respond-async), the
 * wait value of ?wait= and Prefer: wait=, Idempotency-Key, and the list
 * parameters limit, after, status and type.
 *
 * No I/O, no globals, no allocation: safe from any thread, and fuzzed
 * (tests/fuzz/fuzz_reqparse.c).  Each returns 0, or JOBD_EINVAL with the
 * reason in err (the caller answers 400 with it).
 *
 * The wait rule, the same for ?wait=N and Prefer: wait=N, GET and POST:
 * N is a number of seconds, DIGITS [ "." DIGITS ], optionally in double
 * quotes (RFC 7240 allows a quoted-string), at most REQPARSE_WAIT_MAX_LEN
 * characters; fractions are kept to the millisecond (1.5 waits 1500 ms,
 * 0.0004 waits 0 ms, i.e. not at all).  Anything else - negative, empty,
 * garbage, longer - is an error.  A value above max_wait is clamped to it
 * and the caller says so in Preference-Applied (reqparse_format_wait).
 */
#ifndef JOBD_REQPARSE_H
#define JOBD_REQPARSE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Longest wait value accepted, quotes included. */
#define REQPARSE_WAIT_MAX_LEN 32
/* Longest Idempotency-Key (DESIGN §2). */
#define REQPARSE_KEY_MAX 255
#define REQPARSE_LIMIT_DEFAULT 50
#define REQPARSE_LIMIT_MAX 1000

/*
 * Parses a wait value s[0..len) (see above) into *out_ms, clamped to
 * [0, max_wait_ms].  Never overflows, whatever the digits.
 */
int reqparse_wait(const char *s, size_t len, int64_t max_wait_ms,
                  int64_t *out_ms, char *err, size_t errlen);

struct reqparse_prefer {
	int64_t wait_ms;        /* -1: no wait preference */
	bool respond_async;
};

/*
 * Parses a Prefer header value (NULL: none) into out: a comma-separated
 * list of preferences, each token [= value] with ";" parameters that are
 * ignored, names case-insensitive, values tokens or quoted strings; the
 * first occurrence of a preference counts (RFC 7240 §2); unknown
 * preferences are ignored.  A wait preference whose value breaks the wait
 * rule is an error.
 */
int reqparse_prefer(const char *header, int64_t max_wait_ms,
                    struct reqparse_prefer *out, char *err, size_t errlen);

/*
 * Writes the Preference-Applied value for an applied wait of ms (>= 0):
 * "wait=2", "wait=1.5", "wait=0.25".  buf of at least 32 bytes.
 */
void reqparse_format_wait(int64_t ms, char *buf, size_t buflen);

/* Idempotency-Key: 1..255 printable ASCII characters (0x20..0x7e), not
 * starting with "schedule:" (the keys of the schedules' jobs). */
int reqparse_idem_key(const char *key, char *err, size_t errlen);

/*
 * ?limit=N: decimal digits only, N >= 1; values above 1000 mean 1000.
 * NULL: the default (50).
 */
int reqparse_limit(const char *s, size_t *out, char *err, size_t errlen);

/* ?after=<job id>: a UUID, written to out in lower case. */
int reqparse_after(const char *s, char out[37], char *err, size_t errlen);

/* ?status=NAME: returns 0 and the enum job_status in *out. */
int reqparse_status(const char *s, int *out, char *err, size_t errlen);

/* ?type=NAME: [A-Za-z0-9_.-]{1,64}. */
int reqparse_type(const char *s, char *err, size_t errlen);

#endif
