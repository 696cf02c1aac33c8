/*
 * clock.c - wall and monotonic clocks, RFC 3339 formatting and parsing,
 * and condition-variable waits against the monotonic clock.
 *
 * The wall clock's test offset (clock_set_offset_ms) exists only in the
 * test build (JOBD_TEST_HOOKS); a release daemon reads the clock as is.
 */
#include <ctype.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#include "clock.h"
#include "err.h"

#ifdef JOBD_TEST_HOOKS
static atomic_llong clock_offset_ms;
#define OFFSET_MS() ((int64_t)atomic_load(&clock_offset_ms))
#else
#define OFFSET_MS() ((int64_t)0)
#endif

int64_t
clock_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000 + OFFSET_MS();
}

int64_t
clock_now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000 +
	       OFFSET_MS() * 1000;
}

int64_t
clock_mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t
clock_mono_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

#ifdef JOBD_TEST_HOOKS
void
clock_set_offset_ms(int64_t offset_ms)
{
	atomic_store(&clock_offset_ms, offset_ms);
}
#endif

void
clock_format_rfc3339(int64_t ms, char *buf, size_t buflen)
{
	time_t secs = (time_t)(ms / 1000);
	int frac = (int)(ms % 1000);
	struct tm tm;

	if (frac < 0) {
		frac += 1000;
		secs -= 1;
	}
	gmtime_r(&secs, &tm);
	snprintf(buf, buflen, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ",
	         tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
	         tm.tm_min, tm.tm_sec, frac);
}

static int
parse_digits(const char **p, int n, int *out)
{
	int v = 0;

	for (int i = 0; i < n; i++) {
		if (!isdigit((unsigned char)(*p)[i]))
			return -1;
		v = v * 10 + ((*p)[i] - '0');
	}
	*p += n;
	*out = v;
	return 0;
}

static int
expect(const char **p, char c)
{
	if (**p != c)
		return -1;
	(*p)++;
	return 0;
}

int
clock_parse_rfc3339(const char *s, int64_t *out_ms)
{
	static const int mdays[] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
	const char *p = s;
	int year, mon, day, hour, min, sec, ms = 0;
	int off_sign = 0, off_h = 0, off_m = 0;
	struct tm tm;

	if (parse_digits(&p, 4, &year) || expect(&p, '-') ||
	    parse_digits(&p, 2, &mon) || expect(&p, '-') ||
	    parse_digits(&p, 2, &day))
		return JOBD_EINVAL;
	if (*p != 'T' && *p != 't' && *p != ' ')
		return JOBD_EINVAL;
	p++;
	if (parse_digits(&p, 2, &hour) || expect(&p, ':') ||
	    parse_digits(&p, 2, &min) || expect(&p, ':') ||
	    parse_digits(&p, 2, &sec))
		return JOBD_EINVAL;
	if (*p == '.') {
		int digits = 0;
		p++;
		if (!isdigit((unsigned char)*p))
			return JOBD_EINVAL;
		while (isdigit((unsigned char)*p)) {
			if (digits < 3)
				ms = ms * 10 + (*p - '0');
			digits++;
			p++;
		}
		for (; digits < 3; digits++)
			ms *= 10;
	}
	if (*p == 'Z' || *p == 'z') {
		p++;
	} else if (*p == '+' || *p == '-') {
		off_sign = *p == '+' ? 1 : -1;
		p++;
		if (parse_digits(&p, 2, &off_h) || expect(&p, ':') ||
		    parse_digits(&p, 2, &off_m) || off_h > 23 || off_m > 59)
			return JOBD_EINVAL;
	} else {
		return JOBD_EINVAL;
	}
	if (*p != '\0')
		return JOBD_EINVAL;
	if (year < 1970 || mon < 1 || mon > 12 || day < 1 ||
	    day > mdays[mon - 1] || hour > 23 || min > 59 || sec > 60)
		return JOBD_EINVAL;
	if (mon == 2 && day == 29 &&
	    !((year % 4 == 0 && year % 100 != 0) || year % 400 == 0))
		return JOBD_EINVAL;
	if (sec == 60)
		sec = 59; /* leap second: clamp */
	memset(&tm, 0, sizeof(tm));
	tm.tm_year = year - 1900;
	tm.tm_mon = mon - 1;
	tm.tm_mday = day;
	tm.tm_hour = hour;
	tm.tm_min = min;
	tm.tm_sec = sec;
	time_t t = timegm(&tm);
	*out_ms = (int64_t)t * 1000 + ms -
	          (int64_t)off_sign * (off_h * 3600 + off_m * 60) * 1000;
	return 0;
}

int
clock_cond_init(pthread_cond_t *cond)
{
	pthread_condattr_t attr;
	int rc;

	pthread_condattr_init(&attr);
	pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
	rc = pthread_cond_init(cond, &attr);
	pthread_condattr_destroy(&attr);
	return rc;
}

int
clock_cond_wait_until(pthread_cond_t *cond, pthread_mutex_t *mu,
                      int64_t deadline_mono_ms)
{
	struct timespec ts;

	if (deadline_mono_ms < 0)
		return pthread_cond_wait(cond, mu);
	ts.tv_sec = (time_t)(deadline_mono_ms / 1000);
	ts.tv_nsec = (long)(deadline_mono_ms % 1000) * 1000000L;
	return pthread_cond_timedwait(cond, mu, &ts);
}
