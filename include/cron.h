/*
 * cron.h - cron expressions: parse the five classic fields into bitsets,
 * and find the next fire time.  Used by config (to check `cron =` of a
 * [schedule.NAME]) and by the schedules (to know when to tick).
 *
 * Grammar (fields separated by blanks, i.e. spaces and tabs; leading and
 * trailing blanks are ignored):
 *
 *   expr   := field field field field field | macro
 *   fields :  minute 0-59, hour 0-23, day-of-month 1-31, month 1-12,
 *             day-of-week 0-7 (0 and 7 are Sunday)
 *   field  := elem ("," elem)*
 *   elem   := "*" ["/" step]
 *           | value ["-" value] ["/" step]   ; "a/n" means "a-max/n"
 *   value  := decimal digits | name
 *   name   := jan..dec (month), sun..sat (day-of-week); three letters,
 *             any case; not allowed as a step
 *   step   := decimal digits, 1 up to the field's maximum
 *   macro  := @yearly | @annually   = 0 0 1 1 *
 *           | @monthly              = 0 0 1 * *
 *           | @weekly               = 0 0 * * 0
 *           | @daily | @midnight    = 0 0 * * *
 *           | @hourly               = 0 * * * *
 *
 * A range must not go backwards ("5-1" is an error), except that a
 * day-of-week range ending in the name "sun" ends on Sunday as 7:
 * "fri-sun" is Friday, Saturday and Sunday.  Macros are matched without
 * regard to case; @reboot and anything else after "@" is an error, as
 * are Quartz and other extensions (?, L, W, #, seconds or year fields).
 *
 * Days, as in Vixie cron: a day matches when its month matches and
 *   - if the day-of-month or the day-of-week field starts with "*" (so
 *     "*" and "*" with a step), both fields must match the day, which
 *     means only the other (restricted) one counts;
 *   - if both are restricted, either one matching is enough:
 *     "0 0 13 * fri" fires on every 13th and on every Friday.
 * An expression may never fire ("0 0 30 2 *", "0 0 31 4 *"): it parses,
 * and cron_next answers JOBD_ENOTFOUND for it.
 *
 * Time zones: an expression is read in UTC or in the process's local
 * time zone (TZ, else /etc/localtime, as libc's localtime_r sees it).  In
 * local time, the search walks wall-clock minutes, and
 *   - a matching wall-clock minute skipped by a forward change (the gap
 *     of spring: 02:30 does not exist) fires at the first instant after
 *     the gap (the change itself, 03:00 new time), once even if several
 *     minutes of the gap match;
 *   - a matching wall-clock minute that happens twice (the overlap of
 *     autumn) fires once, at its first occurrence (the earlier, summer
 *     time one); the repeated hour fires nothing.
 * So "30 2 * * *" fires exactly once each day, and a job every 15
 * minutes has one hour without ticks in autumn and none in spring.
 * (cronie differs for wildcard jobs, which it runs in both passes.)
 *
 * Everything here is pure apart from reading the time zone; thread-safe.
 * Nothing is allocated: a struct cron is a plain value, copy it freely.
 */
#ifndef JOBD_CRON_H
#define JOBD_CRON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* struct cron flags: the field started with "*" (Vixie's DOM_STAR). */
#define CRON_DOM_STAR 0x01
#define CRON_DOW_STAR 0x02

/* A parsed expression.  Read-only for callers: fill it with cron_parse. */
struct cron {
	uint64_t minutes;  /* bit m set: minute m, 0-59 */
	uint32_t hours;    /* bit h: hour h, 0-23 */
	uint32_t days;     /* bit d: day of month d, 1-31 */
	uint16_t months;   /* bit m: month m, 1-12 */
	uint8_t weekdays;  /* bit w: weekday w, 0 = Sunday .. 6 = Saturday */
	uint8_t flags;     /* CRON_DOM_STAR | CRON_DOW_STAR */
};

/*
 * Parses the NUL-terminated expr into *c.  Returns 0, or JOBD_EINVAL
 * with a message in err naming the field ("minute: 61 is out of range
 * 0-59", "expected 5 fields, got 4"), to which the caller adds its own
 * "file:line: key: ".  Messages quote no byte outside printable ASCII.
 * On failure *c is zeroed.
 */
int cron_parse(struct cron *c, const char *expr, char *err, size_t errlen);

/* The same for the len bytes at expr, which may hold any byte (a NUL
 * included: it is an error like any other unexpected byte). */
int cron_parse_len(struct cron *c, const char *expr, size_t len, char *err,
                   size_t errlen);

/*
 * The first fire time strictly after `after` (Unix seconds): the start of
 * a matching minute, in UTC if utc, else in local time as described
 * above.  Returns 0 with the time in *next; JOBD_ENOTFOUND if the
 * expression does not fire in the 8 years that follow (then it never
 * does: that is the longest wait, for a 29 February across a century)
 * or not before the year 10000; JOBD_ERANGE if `after` is outside years
 * 1 to 9999.  Takes at most a few thousand steps of simple arithmetic.
 */
int cron_next(const struct cron *c, int64_t after, bool utc, int64_t *next);

/*
 * True if the minute holding t (in UTC if utc, else local time) matches
 * the expression; the seconds of t are ignored.  False outside years 1 to
 * 9999.
 */
bool cron_matches(const struct cron *c, int64_t t, bool utc);

#endif
