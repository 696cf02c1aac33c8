/*
 * fuzz_cron.c - libFuzzer harness for the cron expression parser and the
 * next-fire search (cron_parse_len / cron_parse, cron_next,
 * cron_matches).
 *
 * The input is the expression, any bytes.  It is parsed from its bytes
 * and, when it holds no NUL, from a NUL-terminated copy: both must agree.
 * Error buffers are heap-allocated with no slack so that ASan sees any
 * write past errlen.  Besides the sanitizers, the harness checks cron.h's
 * contract: a failure is JOBD_EINVAL with a message of printable ASCII
 * and a zeroed struct; a success has every bitset inside its field's
 * range and not empty.  Then, from a few instants (fixed ones near the
 * edges, and one derived from the input), in UTC: the next fire time is
 * strictly later, at second 0, matches the expression (cron_matches),
 * and no minute of the day before it (or of the day after the start,
 * when there is none) matches; searching again from one second before it
 * finds it again.  In local time (a POSIX TZ with summer time, set once)
 * the next fire time is strictly later and either matches or ends a gap.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cron.h"
#include "err.h"

#define ERRLEN 256
/* Minutes checked minute by minute before a fire time: one day. */
#define SCAN_MINUTES 1440

#define CHECK(cond, ...)                                                   \
	do {                                                               \
		if (!(cond)) {                                             \
			fprintf(stderr, "fuzz_cron: %s: ", #cond);         \
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
	/* Central Europe: a gap in March, an overlap in October. */
	setenv("TZ", "CET-1CEST,M3.5.0,M10.5.0/3", 1);
	tzset();
	return 0;
}

static bool
same(const struct cron *a, const struct cron *b)
{
	return a->minutes == b->minutes && a->hours == b->hours &&
	       a->days == b->days && a->months == b->months &&
	       a->weekdays == b->weekdays && a->flags == b->flags;
}

static void
check_error(const char *err, int rc, const struct cron *c)
{
	static const struct cron zero;

	CHECK(rc == JOBD_EINVAL, "unexpected code %d", rc);
	CHECK(err[0] != '\0', "failure without a reason");
	for (const char *p = err; *p; p++)
		CHECK(*p >= 0x20 && *p < 0x7f, "byte 0x%02X in message \"%s\"",
		      (unsigned char)*p, err);
	CHECK(same(c, &zero), "struct not zeroed on failure");
}

static void
check_bits(const struct cron *c)
{
	CHECK(c->minutes != 0 && c->minutes >> 60 == 0, "minutes %llx",
	      (unsigned long long)c->minutes);
	CHECK(c->hours != 0 && c->hours >> 24 == 0, "hours %x", c->hours);
	CHECK(c->days != 0 && (c->days & 1) == 0, "days %x", c->days);
	CHECK(c->months != 0 && (c->months & 1) == 0 && c->months >> 13 == 0,
	      "months %x", c->months);
	CHECK(c->weekdays != 0 && c->weekdays >> 7 == 0, "weekdays %x",
	      c->weekdays);
	CHECK((c->flags & ~(CRON_DOM_STAR | CRON_DOW_STAR)) == 0, "flags %x",
	      c->flags);
}

static void
check_utc(const struct cron *c, int64_t after)
{
	int64_t next = 0, again = 0, t, stop;
	int rc = cron_next(c, after, true, &next);

	CHECK(rc == 0 || rc == JOBD_ENOTFOUND, "cron_next: %d after %lld", rc,
	      (long long)after);
	t = after - (after % 60 + 60) % 60 + 60; /* the next minute */
	if (rc == 0) {
		CHECK(next > after, "%lld not after %lld", (long long)next,
		      (long long)after);
		CHECK(next % 60 == 0, "%lld not at second 0", (long long)next);
		CHECK(cron_matches(c, next, true), "%lld does not match",
		      (long long)next);
		if (next - t > SCAN_MINUTES * 60LL)
			t = next - SCAN_MINUTES * 60LL;
		stop = next;
		CHECK(cron_next(c, next - 1, true, &again) == 0 && again == next,
		      "from %lld: %lld, then from one second before: %lld",
		      (long long)after, (long long)next, (long long)again);
	} else {
		stop = t + SCAN_MINUTES * 60LL;
	}
	for (; t < stop && t <= 253402300799LL; t += 60)
		CHECK(!cron_matches(c, t, true),
		      "%lld matches, before %lld (rc %d) from %lld",
		      (long long)t, (long long)next, rc, (long long)after);
}

static void
check_local(const struct cron *c, int64_t after)
{
	int64_t next = 0;
	int rc = cron_next(c, after, false, &next);
	struct tm a, b;
	time_t t0, t1;

	CHECK(rc == 0 || rc == JOBD_ENOTFOUND, "cron_next local: %d", rc);
	if (rc != 0)
		return;
	CHECK(next > after, "local: %lld not after %lld", (long long)next,
	      (long long)after);
	if (cron_matches(c, next, false))
		return;
	/* Else it must be the end of a gap: the offset changed there. */
	t0 = (time_t)(next - 1);
	t1 = (time_t)next;
	CHECK(localtime_r(&t0, &a) && localtime_r(&t1, &b) &&
	              a.tm_gmtoff < b.tm_gmtoff,
	      "local: %lld neither matches nor ends a gap", (long long)next);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const int64_t instants[] = {
		0,            /* 1970-01-01 */
		1796083200,   /* 2026-12-01T00:00:00Z */
		1806195600,   /* 2027-03-28T01:00:00Z, a change in CET */
		4012934399,   /* 2097-02-28T23:59:59Z, before 2104-02-29 */
		253402297199, /* 9999-12-31T22:59:59Z */
		-62135596800, /* 0001-01-01T00:00:00Z */
	};
	char *s = malloc(size + 1), *err = malloc(ERRLEN), *err2 = NULL;
	struct cron c, c2;
	uint64_t h = 1469598103934665603ULL;
	int rc, rc2;

	if (s == NULL || err == NULL)
		goto out;
	memcpy(s, data, size);
	s[size] = '\0';
	err[0] = '\0';

	rc = cron_parse_len(&c, s, size, err, ERRLEN);
	if (memchr(data, '\0', size) == NULL) {
		if ((err2 = malloc(ERRLEN)) == NULL)
			goto out;
		err2[0] = '\0';
		rc2 = cron_parse(&c2, s, err2, ERRLEN);
		CHECK(rc == rc2 && same(&c, &c2) && strcmp(err, err2) == 0,
		      "with and without the length: %d \"%s\", %d \"%s\"", rc,
		      err, rc2, err2);
	}
	if (rc != 0) {
		check_error(err, rc, &c);
		goto out;
	}
	check_bits(&c);

	for (size_t i = 0; i < size; i++)
		h = (h ^ data[i]) * 1099511628211ULL;
	for (size_t i = 0; i < sizeof(instants) / sizeof(instants[0]); i++)
		check_utc(&c, instants[i]);
	/* 1970 .. 2200, any second */
	check_utc(&c, (int64_t)(h % 7258118400ULL));
	check_local(&c, instants[1]);
	check_local(&c, instants[2] - 3600);
	check_local(&c, (int64_t)(h % 7258118400ULL));
out:
	free(err2);
	free(err);
	free(s);
	return 0;
}
