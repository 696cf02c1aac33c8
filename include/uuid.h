/*
 * uuid.h - UUIDv7 job ids (RFC 9562).
 *
 * 48 bits of Unix milliseconds, version 7, a 12-bit counter in rand_a
 * (RFC 9562 §6.2 method 1, seeded at random each new millisecond) and 62
 * random bits from getrandom().  Ids made by one process are strictly
 * increasing, even within a millisecond and if the wall clock steps back.
 * Thread-safe.
 */
#ifndef JOBD_UUID_H
#define JOBD_UUID_H

#include <stdbool.h>
#include <stdint.h>

#define UUID_STR_LEN 37 /* 36 characters and NUL */

/* Writes a new lowercase UUIDv7 string into out.  Returns 0 or JOBD_ESYS. */
int uuid_v7_new(char out[UUID_STR_LEN]);

/* Same, with the millisecond timestamp given (for tests). */
int uuid_v7_new_at(int64_t unix_ms, char out[UUID_STR_LEN]);

/* True when s is a canonical lowercase or uppercase UUID string. */
bool uuid_is_valid(const char *s);

/* Milliseconds encoded in a UUIDv7 string (no validation of the version). */
int64_t uuid_v7_time_ms(const char *s);

#endif
