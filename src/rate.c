/*
 * rate.c - token buckets for per-type start rates (see rate.h).
 *
 * LOCKING: none; a bucket belongs to its caller (the writer's sched).
 */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

#include "err.h"
#include "rate.h"

#define SECOND_US 1000000LL

int
rate_parse(const char *s, int64_t *n, int64_t *period_us, char *why,
           size_t whylen)
{
	const char *p = s;
	char *end;
	long long v;

	while (isblank((unsigned char)*p))
		p++;
	if (!isdigit((unsigned char)*p))
		goto bad;
	errno = 0;
	v = strtoll(p, &end, 10);
	if (errno != 0 || v < 1 || v > RATE_MAX_N)
		return jobd_seterr(why, whylen, JOBD_EINVAL, "\"%s\": the "
		                   "number of starts must be 1..%d", s,
		                   RATE_MAX_N);
	p = end;
	while (isblank((unsigned char)*p))
		p++;
	if (*p++ != '/')
		goto bad;
	while (isblank((unsigned char)*p))
		p++;
	switch (*p++) {
	case 's': *period_us = SECOND_US; break;
	case 'm': *period_us = 60 * SECOND_US; break;
	case 'h': *period_us = 3600 * SECOND_US; break;
	default: goto bad;
	}
	while (isblank((unsigned char)*p))
		p++;
	if (*p != '\0')
		goto bad;
	*n = v;
	return 0;
bad:
	return jobd_seterr(why, whylen, JOBD_EINVAL, "\"%s\" is not a rate "
	                   "(N/s, N/m or N/h, e.g. 20/s)", s);
}

void
rate_format(int64_t n, int64_t period_us, char *buf, size_t len)
{
	char unit = period_us >= 3600 * SECOND_US ? 'h'
	    : period_us >= 60 * SECOND_US ? 'm' : 's';

	if (n <= 0)
		snprintf(buf, len, "%s", "");
	else
		snprintf(buf, len, "%lld/%c", (long long)n, unit);
}

void
rate_init(struct rate_bucket *b, int64_t n, int64_t period_us,
          int64_t capacity, int64_t now_us)
{
	b->interval_us = n > 0 && period_us > 0 ? (period_us + n - 1) / n : 0;
	b->capacity = capacity > 0 ? capacity : 1;
	b->credit_us = b->capacity * b->interval_us;
	b->last_us = now_us;
}

/* The credit at now_us (a clock that went back adds nothing). */
static int64_t
credit_at(const struct rate_bucket *b, int64_t now_us)
{
	int64_t full = b->capacity * b->interval_us;
	int64_t c = b->credit_us;

	if (now_us > b->last_us)
		c = now_us - b->last_us >= full ? full : c + (now_us - b->last_us);
	return c > full ? full : c;
}

bool
rate_ready(struct rate_bucket *b, int64_t now_us)
{
	if (b->interval_us <= 0)
		return true;
	b->credit_us = credit_at(b, now_us);
	if (now_us > b->last_us)
		b->last_us = now_us;
	return b->credit_us >= b->interval_us;
}

bool
rate_take(struct rate_bucket *b, int64_t now_us)
{
	if (!rate_ready(b, now_us))
		return false;
	if (b->interval_us > 0)
		b->credit_us -= b->interval_us;
	return true;
}

int64_t
rate_next_us(const struct rate_bucket *b, int64_t now_us)
{
	int64_t c;

	if (b->interval_us <= 0)
		return -1;
	c = credit_at(b, now_us);
	if (c >= b->interval_us)
		return now_us;
	return (now_us > b->last_us ? now_us : b->last_us) +
	       (b->interval_us - c);
}
