/*
 * clock.h - time in jobd: wall-clock milliseconds for what is stored and
 * shown (RFC 3339 UTC with milliseconds), monotonic milliseconds for
 * deadlines and condition-variable waits.  All functions are thread-safe.
 */
#ifndef JOBD_CLOCK_H
#define JOBD_CLOCK_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

/* Wall-clock time, milliseconds since the Unix epoch. */
int64_t clock_now_ms(void);

/* Wall-clock time, microseconds since the Unix epoch (the store's unit). */
int64_t clock_now_us(void);

/* Monotonic time in milliseconds (CLOCK_MONOTONIC). */
int64_t clock_mono_ms(void);

/* Monotonic time in microseconds. */
int64_t clock_mono_us(void);

#ifdef JOBD_TEST_HOOKS
/*
 * Test hook: when set, clock_now_ms() and clock_now_us() are that far
 * ahead.  Only in the test build (-DJOBD_TEST_HOOKS: unit tests,
 * build/jobd-test); build/jobd has no offset at all.
 */
void clock_set_offset_ms(int64_t offset_ms);
#endif

/* Formats ms-since-epoch as "YYYY-MM-DDTHH:MM:SS.mmmZ" into buf (>= 25). */
void clock_format_rfc3339(int64_t ms, char *buf, size_t buflen);

/*
 * Parses an RFC 3339 date-time ("2026-01-02T03:04:05Z", optional fraction,
 * "Z" or "+hh:mm"/"-hh:mm") into ms since the epoch.  Returns 0 or
 * JOBD_EINVAL.
 */
int clock_parse_rfc3339(const char *s, int64_t *out_ms);

/* Initialises a condition variable that waits on CLOCK_MONOTONIC. */
int clock_cond_init(pthread_cond_t *cond);

/*
 * Waits on cond until the monotonic deadline (ms; < 0 waits forever).
 * Returns the pthread_cond_(timed)wait result.
 */
int clock_cond_wait_until(pthread_cond_t *cond, pthread_mutex_t *mu,
                          int64_t deadline_mono_ms);

#endif
