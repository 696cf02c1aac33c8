/*
 * rate.h - token buckets for per-type start rates ([handler.NAME]
 * rate = N/s, N/m or N/h; DESIGN §4).
 *
 * A bucket holds at most `capacity` tokens and gains one every
 * interval_us (the period divided by N, rounded up, so that never more
 * than N tokens come per period).  Starting an attempt takes a token; a
 * type without one waits for the next.  jobd's buckets hold one token (no
 * burst): starts of a rate-limited type are spaced by the interval, so no
 * window of one period ever sees more than N + 1 starts.
 *
 * Pure functions over a struct the caller owns: no locks, no clock (the
 * caller passes monotonic microseconds); tests/unit/test_rate.c drives
 * them with a fake clock.
 */
#ifndef JOBD_RATE_H
#define JOBD_RATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define RATE_MAX_N 1000000      /* most starts per period */
#define RATE_TEXT_MAX 24        /* "1000000/h" and a NUL, with room */

struct rate_bucket {
	int64_t interval_us;    /* one token per this long; 0: no limit */
	int64_t capacity;       /* most tokens held, >= 1 */
	int64_t credit_us;      /* refill time gathered, at most
	                           capacity * interval_us */
	int64_t last_us;        /* when credit_us was brought up to date */
};

/*
 * Parses "N/s", "N/m" or "N/h" (N from 1 to RATE_MAX_N, blanks around the
 * parts allowed).  Returns 0 with *n and *period_us, or JOBD_EINVAL with a
 * reason in why.
 */
int rate_parse(const char *s, int64_t *n, int64_t *period_us, char *why,
               size_t whylen);

/* "N/s" (or m, h) for n per period_us (1 s, 1 min or 1 h); "" when n <= 0. */
void rate_format(int64_t n, int64_t period_us, char *buf, size_t len);

/* A bucket for n per period_us (n <= 0: no limit), full at now_us. */
void rate_init(struct rate_bucket *b, int64_t n, int64_t period_us,
               int64_t capacity, int64_t now_us);

/* Whether a token is there at now_us (always with no limit). */
bool rate_ready(struct rate_bucket *b, int64_t now_us);

/* Takes a token at now_us: true, or false when there is none. */
bool rate_take(struct rate_bucket *b, int64_t now_us);

/* When the next token is there: now_us when one is, -1 with no limit. */
int64_t rate_next_us(const struct rate_bucket *b, int64_t now_us);

#endif
