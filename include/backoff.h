/*
 * backoff.h - retry delays: exponential with full jitter.
 *
 * The delay before retry n (after attempt n failed) is uniformly random in
 * [0, min(backoff_max, backoff_base * 2^(n-1))].  Thread-safe.
 */
#ifndef JOBD_BACKOFF_H
#define JOBD_BACKOFF_H

#include <stdint.h>

/* The cap for attempt (>= 1): min(max_ms, base_ms * 2^(attempt-1)). */
int64_t backoff_cap_ms(int attempt, int64_t base_ms, int64_t max_ms);

/* A delay in [0, cap] chosen with random value r (any 64-bit value). */
int64_t backoff_delay_ms(int attempt, int64_t base_ms, int64_t max_ms,
                         uint64_t r);

/* Same, with r from a per-thread generator seeded by getrandom(). */
int64_t backoff_jitter_ms(int attempt, int64_t base_ms, int64_t max_ms);

#endif
