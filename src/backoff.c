/*
 * backoff.c - exponential backoff with full jitter (the AWS Architecture
 * Blog's "full jitter": sleep = random(0, min(cap, base * 2^n))).
 */
#include <sys/random.h>

#include "backoff.h"

int64_t
backoff_cap_ms(int attempt, int64_t base_ms, int64_t max_ms)
{
	int64_t cap = base_ms;

	if (attempt < 1)
		attempt = 1;
	for (int i = 1; i < attempt && cap < max_ms; i++) {
		if (cap > INT64_MAX / 2) {
			cap = max_ms;
			break;
		}
		cap *= 2;
	}
	return cap < max_ms ? cap : max_ms;
}

int64_t
backoff_delay_ms(int attempt, int64_t base_ms, int64_t max_ms, uint64_t r)
{
	int64_t cap = backoff_cap_ms(attempt, base_ms, max_ms);

	if (cap <= 0)
		return 0;
	return (int64_t)(r % ((uint64_t)cap + 1));
}

static _Thread_local uint64_t rng_state;

static uint64_t
next_random(void)
{
	uint64_t x;

	if (rng_state == 0) {
		if (getrandom(&rng_state, sizeof(rng_state), 0) !=
		    (ssize_t)sizeof(rng_state) || rng_state == 0)
			rng_state = 0x9e3779b97f4a7c15ULL;
	}
	/* xorshift64* */
	x = rng_state;
	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	rng_state = x;
	return x * 0x2545f4914f6cdd1dULL;
}

int64_t
backoff_jitter_ms(int attempt, int64_t base_ms, int64_t max_ms)
{
	return backoff_delay_ms(attempt, base_ms, max_ms, next_random());
}
