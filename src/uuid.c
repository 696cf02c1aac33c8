/*
 * uuid.c - monotonic UUIDv7 generation.
 *
 * LOCKING: uuid_mu guards last_ms and counter.
 */
#include <ctype.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>

#include "clock.h"
#include "err.h"
#include "uuid.h"

static pthread_mutex_t uuid_mu = PTHREAD_MUTEX_INITIALIZER;
static int64_t last_ms = -1; /* guarded by uuid_mu */
static uint32_t counter;     /* 12 bits; guarded by uuid_mu */

static int getrandom_all(void *buf, size_t len);

/* Random bytes from a per-thread pool refilled by getrandom(): one system
 * call per 400 ids instead of one per id. */
static int
fill_random(void *buf, size_t len)
{
	static _Thread_local uint8_t pool[4096];
	static _Thread_local size_t left;

	if (len > sizeof(pool))
		return getrandom_all(buf, len);
	if (left < len) {
		if (getrandom_all(pool, sizeof(pool)) != 0)
			return JOBD_ESYS;
		left = sizeof(pool);
	}
	memcpy(buf, pool + sizeof(pool) - left, len);
	/* Used bytes are not kept around. */
	memset(pool + sizeof(pool) - left, 0, len);
	left -= len;
	return 0;
}

static int
getrandom_all(void *buf, size_t len)
{
	uint8_t *p = buf;

	while (len > 0) {
		ssize_t n = getrandom(p, len, 0);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return JOBD_ESYS;
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

int
uuid_v7_new_at(int64_t unix_ms, char out[UUID_STR_LEN])
{
	uint8_t rnd[10];
	uint8_t b[16];
	int64_t ms;
	uint32_t ctr;

	if (fill_random(rnd, sizeof(rnd)) != 0)
		return JOBD_ESYS;

	pthread_mutex_lock(&uuid_mu);
	if (unix_ms > last_ms) {
		last_ms = unix_ms;
		/* Seed the counter in its lower half so that many ids fit. */
		counter = ((uint32_t)rnd[8] << 8 | rnd[9]) & 0x7ff;
	} else if (++counter > 0xfff) {
		/* Counter exhausted (or the clock went back): borrow the next ms. */
		last_ms++;
		counter = 0;
	}
	ms = last_ms;
	ctr = counter;
	pthread_mutex_unlock(&uuid_mu);

	b[0] = (uint8_t)(ms >> 40);
	b[1] = (uint8_t)(ms >> 32);
	b[2] = (uint8_t)(ms >> 24);
	b[3] = (uint8_t)(ms >> 16);
	b[4] = (uint8_t)(ms >> 8);
	b[5] = (uint8_t)ms;
	b[6] = (uint8_t)(0x70 | ((ctr >> 8) & 0x0f));
	b[7] = (uint8_t)(ctr & 0xff);
	b[8] = (uint8_t)(0x80 | (rnd[0] & 0x3f));
	memcpy(b + 9, rnd + 1, 7);

	/* By hand: snprintf was a tenth of a batch's parsing. */
	static const char hex[] = "0123456789abcdef";
	char *o = out;
	for (int i = 0; i < 16; i++) {
		if (i == 4 || i == 6 || i == 8 || i == 10)
			*o++ = '-';
		*o++ = hex[b[i] >> 4];
		*o++ = hex[b[i] & 0x0f];
	}
	*o = '\0';
	return 0;
}

int
uuid_v7_new(char out[UUID_STR_LEN])
{
	return uuid_v7_new_at(clock_now_ms(), out);
}

bool
uuid_is_valid(const char *s)
{
	for (int i = 0; i < 36; i++) {
		if (i == 8 || i == 13 || i == 18 || i == 23) {
			if (s[i] != '-')
				return false;
		} else if (!isxdigit((unsigned char)s[i])) {
			return false;
		}
	}
	return s[36] == '\0';
}

int64_t
uuid_v7_time_ms(const char *s)
{
	int64_t ms = 0;
	int digits = 0;

	for (int i = 0; s[i] && digits < 12; i++) {
		int c = (unsigned char)s[i];
		if (c == '-')
			continue;
		int v = isdigit(c) ? c - '0' : (tolower(c) - 'a' + 10);
		ms = ms << 4 | v;
		digits++;
	}
	return ms;
}
