/*
 * utf8.h - the one UTF-8 decoder (RFC 3629: no overlong forms, no
 * surrogates, nothing above U+10FFFF), for request bodies and for the
 * output of exec handlers.  Pure functions; any thread.
 */
#ifndef JOBD_UTF8_H
#define JOBD_UTF8_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/*
 * The length (1..4) of the well-formed sequence at s[0..len), with its
 * code point in *cp; 0 when s does not start with one (len 0, a stray or
 * invalid byte, a truncated, overlong or surrogate sequence).
 */
size_t utf8_decode(const char *s, size_t len, uint32_t *cp);

/* Whether buf[0..len) is well-formed UTF-8 (NULs included). */
bool utf8_valid(const char *buf, size_t len);

/*
 * A new NUL-terminated copy of buf[0..len) that is valid UTF-8 without
 * NULs: each byte that starts no well-formed sequence, and each NUL,
 * becomes U+FFFD.  The caller frees it; NULL when out of memory.
 */
char *utf8_sanitize(const char *buf, size_t len);

#endif
