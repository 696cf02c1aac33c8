/*
 * cron.c - cron expressions: the parser (text to bitsets) and the search
 * for the next fire time.  See cron.h for the grammar and the semantics.
 *
 * The search works on wall-clock time as a calendar (year, month, day,
 * hour, minute) of our own, proleptic Gregorian, and skips a whole month,
 * day or hour that cannot match, so a search is at most 9 years x 12
 * months x (a week of days when both day fields are restricted, else the
 * days of the month that are in the set) of cheap steps.  Only the mapping of a wall-clock
 * minute to an instant asks libc about the local time zone.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "cron.h"
#include "err.h"

/* The instants we answer for: 0001-01-01T00:00:00Z .. 9999-12-31T23:59:59Z. */
#define CRON_T_MIN (-62135596800LL)
#define CRON_T_MAX 253402300799LL
#define CRON_YEAR_MAX 9999
/* Years searched after the start: 2096-03-01 to 2104-02-29 is the longest
 * wait for any day that exists at all (see cron.h). */
#define CRON_YEARS 8
/* A safety net far above the real bound (a few hundred steps). */
#define CRON_MAX_STEPS 100000

/* ---- the parser ---- */

struct field {
	const char *name;
	int lo, hi;               /* values allowed; hi is also the top step */
	const char *const *names; /* three-letter names, or NULL */
	int nnames;
	int names_base;           /* the value of names[0] */
};

static const char *const month_names[] = {
	"jan", "feb", "mar", "apr", "may", "jun",
	"jul", "aug", "sep", "oct", "nov", "dec",
};
static const char *const weekday_names[] = {
	"sun", "mon", "tue", "wed", "thu", "fri", "sat",
};

enum { F_MINUTE, F_HOUR, F_DOM, F_MONTH, F_DOW, F_COUNT };

static const struct field fields[F_COUNT] = {
	{ "minute", 0, 59, NULL, 0, 0 },
	{ "hour", 0, 23, NULL, 0, 0 },
	{ "day-of-month", 1, 31, NULL, 0, 0 },
	{ "month", 1, 12, month_names, 12, 1 },
	{ "day-of-week", 0, 7, weekday_names, 7, 0 },
};

static const struct {
	const char *name;
	const char *expr;
} macros[] = {
	{ "@yearly", "0 0 1 1 *" },
	{ "@annually", "0 0 1 1 *" },
	{ "@monthly", "0 0 1 * *" },
	{ "@weekly", "0 0 * * 0" },
	{ "@daily", "0 0 * * *" },
	{ "@midnight", "0 0 * * *" },
	{ "@hourly", "0 * * * *" },
};

static bool
is_blank(char ch)
{
	return ch == ' ' || ch == '\t';
}

static bool
is_digit(char ch)
{
	return ch >= '0' && ch <= '9';
}

static bool
is_alpha(char ch)
{
	return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z');
}

static char
lower(char ch)
{
	return ch >= 'A' && ch <= 'Z' ? (char)(ch - 'A' + 'a') : ch;
}

static bool
same_ascii_nocase(const char *a, size_t alen, const char *b)
{
	if (alen != strlen(b))
		return false;
	for (size_t i = 0; i < alen; i++)
		if (lower(a[i]) != b[i])
			return false;
	return true;
}

/*
 * Copies the n bytes at s into buf for a message: printable ASCII as it
 * is, any other byte as \xNN, cut with "..." after 24 bytes, so that no
 * message carries a control character or broken UTF-8 into a log.
 */
static const char *
printable(const char *s, size_t n, char *buf, size_t buflen)
{
	size_t o = 0, i;

	for (i = 0; i < n && i < 24 && o + 5 < buflen; i++) {
		unsigned char ch = (unsigned char)s[i];
		if (ch >= 0x20 && ch < 0x7f)
			buf[o++] = (char)ch;
		else
			o += (size_t)snprintf(buf + o, buflen - o, "\\x%02X", ch);
	}
	if (i < n && o + 4 <= buflen) {
		memcpy(buf + o, "...", 3);
		o += 3;
	}
	buf[o] = '\0';
	return buf;
}

/* A byte named for a message: 'x', or "byte 0xNN" outside printable ASCII. */
static const char *
describe(char ch, char buf[16])
{
	unsigned char u = (unsigned char)ch;

	if (u > 0x20 && u < 0x7f)
		snprintf(buf, 16, "'%c'", ch);
	else
		snprintf(buf, 16, "byte 0x%02X", u);
	return buf;
}

static int
unexpected(const struct field *f, char ch, char *err, size_t errlen)
{
	char b[16];

	return jobd_seterr(err, errlen, JOBD_EINVAL, "%s: unexpected %s",
	                   f->name, describe(ch, b));
}

/* Digits at *pp (at least one) as a number, saturated above 10^6. */
static long
read_digits(const char **pp, const char *end)
{
	const char *p = *pp;
	long n = 0;

	while (p < end && is_digit(*p)) {
		if (n <= 1000000)
			n = n * 10 + (*p - '0');
		p++;
	}
	*pp = p;
	return n;
}

/*
 * A number or a name at *pp, which the caller has seen to start with a
 * digit or a letter.  *sun is set when it is the day-of-week name "sun".
 */
static int
read_value(const struct field *f, const char **pp, const char *end, int *v,
           bool *sun, char *err, size_t errlen)
{
	const char *start = *pp, *p = *pp;
	char b[128];

	*sun = false;
	if (is_digit(*p)) {
		long n = read_digits(&p, end);
		if (n < f->lo || n > f->hi)
			return jobd_seterr(err, errlen, JOBD_EINVAL,
			                   "%s: %s is out of range %d-%d", f->name,
			                   printable(start, (size_t)(p - start), b,
			                             sizeof(b)),
			                   f->lo, f->hi);
		*v = (int)n;
		*pp = p;
		return 0;
	}
	if (f->names == NULL)
		return unexpected(f, *p, err, errlen);
	while (p < end && is_alpha(*p))
		p++;
	for (int i = 0; i < f->nnames; i++) {
		if (same_ascii_nocase(start, (size_t)(p - start), f->names[i])) {
			*v = f->names_base + i;
			*sun = f->names == weekday_names && i == 0;
			*pp = p;
			return 0;
		}
	}
	return jobd_seterr(err, errlen, JOBD_EINVAL, "%s: unknown name \"%s\"",
	                   f->name,
	                   printable(start, (size_t)(p - start), b, sizeof(b)));
}

/* After '-' or '/': says what was expected, and what came instead. */
static int
expected(const struct field *f, const char *what, const char *after,
         const char *p, const char *end, char *err, size_t errlen)
{
	char b[16];

	if (p >= end || *p == ',')
		return jobd_seterr(err, errlen, JOBD_EINVAL,
		                   "%s: expected %s after '%s'", f->name, what,
		                   after);
	return jobd_seterr(err, errlen, JOBD_EINVAL,
	                   "%s: expected %s after '%s', got %s", f->name, what,
	                   after, describe(*p, b));
}

/* One element of a list, at *pp; its values are added to *bits. */
static int
parse_elem(const struct field *f, const char **pp, const char *end,
           uint64_t *bits, char *err, size_t errlen)
{
	const char *p = *pp, *range = *pp;
	const char *value_what = f->names ? "a number or a name" : "a number";
	int lo, hi, step = 1, rc;
	bool sun = false;
	char b[128];

	if (p >= end || *p == ',')
		return jobd_seterr(err, errlen, JOBD_EINVAL,
		                   "%s: empty list element", f->name);
	if (*p == '*') {
		p++;
		lo = f->lo;
		hi = f->hi;
	} else if (is_digit(*p) || is_alpha(*p)) {
		if ((rc = read_value(f, &p, end, &lo, &sun, err, errlen)) != 0)
			return rc;
		hi = lo;
		if (p < end && *p == '-') {
			p++;
			if (p >= end || !(is_digit(*p) || is_alpha(*p)))
				return expected(f, value_what, "-", p, end, err,
				                errlen);
			if ((rc = read_value(f, &p, end, &hi, &sun, err,
			                     errlen)) != 0)
				return rc;
			/* "fri-sun": Sunday as 7, the end of the week. */
			if (sun && lo > 0)
				hi = 7;
			if (hi < lo)
				return jobd_seterr(
					err, errlen, JOBD_EINVAL,
					"%s: range %s is reversed", f->name,
					printable(range, (size_t)(p - range), b,
					          sizeof(b)));
		} else if (p < end && *p == '/') {
			hi = f->hi; /* "a/n" is "a-max/n", as in Vixie cron */
		}
	} else {
		return unexpected(f, *p, err, errlen);
	}
	if (p < end && *p == '/') {
		const char *s = ++p;
		long n;

		if (p >= end || !is_digit(*p))
			return expected(f, "a step", "/", p, end, err, errlen);
		n = read_digits(&p, end);
		if (n < 1 || n > f->hi)
			return jobd_seterr(err, errlen, JOBD_EINVAL,
			                   "%s: step %s is out of range 1-%d",
			                   f->name,
			                   printable(s, (size_t)(p - s), b,
			                             sizeof(b)),
			                   f->hi);
		step = (int)n;
	}
	if (p < end && *p != ',')
		return unexpected(f, *p, err, errlen);
	for (int v = lo; v <= hi; v += step)
		*bits |= 1ULL << v;
	*pp = p;
	return 0;
}

/* One field: elements separated by commas, no blanks. */
static int
parse_field(const struct field *f, const char *s, size_t n, uint64_t *bits,
            char *err, size_t errlen)
{
	const char *p = s, *end = s + n;
	int rc;

	*bits = 0;
	for (;;) {
		if ((rc = parse_elem(f, &p, end, bits, err, errlen)) != 0)
			return rc;
		if (p >= end)
			return 0;
		p++; /* the ',' (parse_elem stops at nothing else) */
		if (p >= end)
			return jobd_seterr(err, errlen, JOBD_EINVAL,
			                   "%s: empty list element", f->name);
	}
}

static int
parse_macro(struct cron *c, const char *s, size_t n, const char *end,
            char *err, size_t errlen)
{
	const char *p = s + n;
	char b[128];

	while (p < end && is_blank(*p))
		p++;
	for (size_t i = 0; i < sizeof(macros) / sizeof(macros[0]); i++) {
		if (!same_ascii_nocase(s, n, macros[i].name))
			continue;
		if (p < end)
			return jobd_seterr(err, errlen, JOBD_EINVAL,
			                   "%s takes no fields", macros[i].name);
		return cron_parse(c, macros[i].expr, err, errlen);
	}
	if (same_ascii_nocase(s, n, "@reboot"))
		return jobd_seterr(err, errlen, JOBD_EINVAL,
		                   "@reboot is not supported: a schedule "
		                   "needs times of day");
	return jobd_seterr(err, errlen, JOBD_EINVAL,
	                   "unknown macro \"%s\" (expected @yearly, "
	                   "@annually, @monthly, @weekly, @daily, @midnight "
	                   "or @hourly)",
	                   printable(s, n, b, sizeof(b)));
}

int
cron_parse_len(struct cron *c, const char *expr, size_t len, char *err,
               size_t errlen)
{
	const char *p = expr, *end = expr + len;
	const char *start[F_COUNT];
	size_t flen[F_COUNT];
	uint64_t bits[F_COUNT];
	int nfields = 0, rc;

	memset(c, 0, sizeof(*c));
	for (;;) {
		const char *s;

		while (p < end && is_blank(*p))
			p++;
		if (p >= end)
			break;
		s = p;
		while (p < end && !is_blank(*p))
			p++;
		if (nfields == 0 && *s == '@') {
			rc = parse_macro(c, s, (size_t)(p - s), end, err, errlen);
			goto out;
		}
		if (nfields < F_COUNT) {
			start[nfields] = s;
			flen[nfields] = (size_t)(p - s);
		}
		nfields++;
	}
	if (nfields == 0) {
		rc = jobd_seterr(err, errlen, JOBD_EINVAL, "empty expression");
		goto out;
	}
	if (nfields != F_COUNT) {
		rc = jobd_seterr(err, errlen, JOBD_EINVAL,
		                 "expected 5 fields, got %d", nfields);
		goto out;
	}
	for (int i = 0; i < F_COUNT; i++)
		if ((rc = parse_field(&fields[i], start[i], flen[i], &bits[i],
		                      err, errlen)) != 0)
			goto out;

	/* Weekday 7 is Sunday, 0. */
	if (bits[F_DOW] & (1ULL << 7))
		bits[F_DOW] = (bits[F_DOW] | 1ULL) & ~(1ULL << 7);
	c->minutes = bits[F_MINUTE];
	c->hours = (uint32_t)bits[F_HOUR];
	c->days = (uint32_t)bits[F_DOM];
	c->months = (uint16_t)bits[F_MONTH];
	c->weekdays = (uint8_t)bits[F_DOW];
	if (*start[F_DOM] == '*')
		c->flags |= CRON_DOM_STAR;
	if (*start[F_DOW] == '*')
		c->flags |= CRON_DOW_STAR;
out:
	if (rc != 0)
		memset(c, 0, sizeof(*c));
	return rc;
}

int
cron_parse(struct cron *c, const char *expr, char *err, size_t errlen)
{
	return cron_parse_len(c, expr, strlen(expr), err, errlen);
}

/* ---- the calendar ---- */

static int64_t
floor_div(int64_t a, int64_t b)
{
	int64_t q = a / b;

	return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q;
}

/* Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant). */
static int64_t
days_from_civil(int64_t y, int m, int d)
{
	int64_t era, yoe, doy, doe;

	y -= m <= 2;
	era = floor_div(y, 400);
	yoe = y - era * 400;
	doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
	doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + doe - 719468;
}

static void
civil_from_days(int64_t z, int64_t *y, int *m, int *d)
{
	int64_t era, doe, yoe, doy, mp;

	z += 719468;
	era = floor_div(z, 146097);
	doe = z - era * 146097;
	yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
	doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
	mp = (5 * doy + 2) / 153;
	*d = (int)(doy - (153 * mp + 2) / 5 + 1);
	*m = (int)(mp < 10 ? mp + 3 : mp - 9);
	*y = yoe + era * 400 + (*m <= 2);
}

static int
days_in_month(int64_t y, int m)
{
	static const int dim[13] = { 0, 31, 28, 31, 30, 31, 30,
		                     31, 31, 30, 31, 30, 31 };
	bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;

	return m == 2 && leap ? 29 : dim[m];
}

/* 0 = Sunday; 1970-01-01 was a Thursday. */
static int
weekday(int64_t days)
{
	return (int)(((days % 7) + 7 + 4) % 7);
}

/* A wall-clock minute. */
struct civil {
	int64_t y;
	int mo, d, h, mi;
};

static void
civil_from_seconds(int64_t s, struct civil *t)
{
	int64_t days = floor_div(s, 86400), secs = s - days * 86400;

	civil_from_days(days, &t->y, &t->mo, &t->d);
	t->h = (int)(secs / 3600);
	t->mi = (int)(secs % 3600 / 60);
}

static int64_t
civil_to_seconds(const struct civil *t)
{
	return days_from_civil(t->y, t->mo, t->d) * 86400 + t->h * 3600 +
	       t->mi * 60;
}

static void
next_month(struct civil *t)
{
	t->d = 1;
	t->h = 0;
	t->mi = 0;
	if (++t->mo > 12) {
		t->mo = 1;
		t->y++;
	}
}

static void
next_day(struct civil *t)
{
	t->h = 0;
	t->mi = 0;
	if (++t->d > days_in_month(t->y, t->mo))
		next_month(t);
}

static void
next_hour(struct civil *t)
{
	t->mi = 0;
	if (++t->h > 23)
		next_day(t);
}

/* The lowest set bit at or above from, or -1. */
static int
next_bit(uint64_t bits, int from)
{
	uint64_t m;

	if (from > 63)
		return -1;
	m = bits & (~0ULL << from);
	return m ? __builtin_ctzll(m) : -1;
}

/* The day rule of Vixie cron (cron.h); the month is checked apart. */
static bool
day_matches(const struct cron *c, const struct civil *t)
{
	bool dom = (c->days >> t->d) & 1;
	bool dow = (c->weekdays >> weekday(days_from_civil(t->y, t->mo, t->d)))
	           & 1;

	if (c->flags & (CRON_DOM_STAR | CRON_DOW_STAR))
		return dom && dow;
	return dom || dow;
}

/* ---- local time ---- */

/* The offset of local time from UTC at instant s, in seconds. */
static int
local_offset(int64_t s, int64_t *off)
{
	time_t tt = (time_t)s;
	struct tm tm;

	if ((int64_t)tt != s || localtime_r(&tt, &tm) == NULL)
		return JOBD_ERANGE;
	*off = tm.tm_gmtoff;
	return 0;
}

/*
 * The instant of wall-clock time g (seconds as if local time were UTC):
 * the earlier one if g happens twice; the end of the gap if g is skipped
 * (cron.h).  The offsets a day before and after are the candidates: no
 * zone changes twice within two days.
 */
static int
local_instant(int64_t g, int64_t *out)
{
	int64_t o[2], lo, hi, off;
	bool found = false;

	if (local_offset(g - 86400, &o[0]) != 0 ||
	    local_offset(g + 86400, &o[1]) != 0)
		return JOBD_ERANGE;
	for (int i = 0; i < 2; i++) {
		int64_t s = g - o[i];
		if (local_offset(s, &off) != 0)
			return JOBD_ERANGE;
		if (off == o[i] && (!found || s < *out)) {
			*out = s;
			found = true;
		}
	}
	if (found)
		return 0;
	/* A gap: the first instant whose wall clock is g or later. */
	lo = g - (o[0] > o[1] ? o[0] : o[1]);
	hi = g - (o[0] > o[1] ? o[1] : o[0]);
	while (lo < hi) {
		int64_t mid = lo + (hi - lo) / 2;
		if (local_offset(mid, &off) != 0)
			return JOBD_ERANGE;
		if (mid + off >= g)
			hi = mid;
		else
			lo = mid + 1;
	}
	*out = lo;
	return 0;
}

/* ---- the search ---- */

int
cron_next(const struct cron *c, int64_t after, bool utc, int64_t *next)
{
	int64_t off = 0, last_year, s;
	struct civil t;
	int rc;

	if (after < CRON_T_MIN || after > CRON_T_MAX)
		return JOBD_ERANGE;
	if (!utc && (rc = local_offset(after, &off)) != 0)
		return rc;
	/* The wall-clock minute after the one holding `after`. */
	civil_from_seconds((floor_div(after + off, 60) + 1) * 60, &t);
	last_year = t.y + CRON_YEARS;
	if (last_year > CRON_YEAR_MAX)
		last_year = CRON_YEAR_MAX;

	for (int steps = 0; steps < CRON_MAX_STEPS; steps++) {
		int h, mi;

		if (t.y > last_year)
			return JOBD_ENOTFOUND;
		if (!((c->months >> t.mo) & 1)) {
			next_month(&t);
			continue;
		}
		if (!day_matches(c, &t)) {
			/* With a star field the day of the month must match:
			 * go straight to the next one that does. */
			int d = next_bit(c->days, t.d + 1);
			if (!(c->flags & (CRON_DOM_STAR | CRON_DOW_STAR))) {
				next_day(&t);
			} else if (d < 0 || d > days_in_month(t.y, t.mo)) {
				next_month(&t);
			} else {
				t.d = d;
				t.h = 0;
				t.mi = 0;
			}
			continue;
		}
		if ((h = next_bit(c->hours, t.h)) < 0) {
			next_day(&t);
			continue;
		}
		if (h != t.h) {
			t.h = h;
			t.mi = 0;
		}
		if ((mi = next_bit(c->minutes, t.mi)) < 0) {
			next_hour(&t);
			continue;
		}
		t.mi = mi;
		s = civil_to_seconds(&t);
		if (!utc && (rc = local_instant(s, &s)) != 0)
			return rc;
		/* In local time, a minute of the overlap or of a gap that
		 * has fired already maps to `after` or before. */
		if (s > after) {
			if (s > CRON_T_MAX)
				return JOBD_ENOTFOUND;
			*next = s;
			return 0;
		}
		if (++t.mi > 59)
			next_hour(&t);
	}
	return JOBD_ENOTFOUND;
}

bool
cron_matches(const struct cron *c, int64_t t, bool utc)
{
	int64_t off = 0;
	struct civil w;

	if (t < CRON_T_MIN || t > CRON_T_MAX)
		return false;
	if (!utc && local_offset(t, &off) != 0)
		return false;
	civil_from_seconds(t + off, &w);
	return ((c->minutes >> w.mi) & 1) && ((c->hours >> w.h) & 1) &&
	       ((c->months >> w.mo) & 1) && day_matches(c, &w);
}
