/*
 * utf8.c - the one UTF-8 decoder (see utf8.h).
 */
#include <stdlib.h>
#include <string.h>

#include "utf8.h"

size_t
utf8_decode(const char *buf, size_t len, uint32_t *cp)
{
	const unsigned char *s = (const unsigned char *)buf;
	size_t n;
	uint32_t c;

	if (len == 0)
		return 0;
	if (s[0] < 0x80) {
		*cp = s[0];
		return 1;
	}
	if ((s[0] & 0xe0) == 0xc0) {
		n = 2;
		c = s[0] & 0x1f;
	} else if ((s[0] & 0xf0) == 0xe0) {
		n = 3;
		c = s[0] & 0x0f;
	} else if ((s[0] & 0xf8) == 0xf0) {
		n = 4;
		c = s[0] & 0x07;
	} else {
		return 0;
	}
	if (len < n)
		return 0;
	for (size_t k = 1; k < n; k++) {
		if ((s[k] & 0xc0) != 0x80)
			return 0;
		c = c << 6 | (s[k] & 0x3f);
	}
	if ((n == 2 && c < 0x80) || (n == 3 && c < 0x800) ||
	    (n == 4 && c < 0x10000) || c > 0x10ffff ||
	    (c >= 0xd800 && c <= 0xdfff))
		return 0;
	*cp = c;
	return n;
}

bool
utf8_valid(const char *buf, size_t len)
{
	uint32_t cp;

	for (size_t i = 0, n; i < len; i += n)
		if ((n = utf8_decode(buf + i, len - i, &cp)) == 0)
			return false;
	return true;
}

char *
utf8_sanitize(const char *buf, size_t len)
{
	char *out = malloc(len * 3 + 1), *o = out;
	uint32_t cp;
	size_t n;

	if (out == NULL)
		return NULL;
	for (size_t i = 0; i < len; i += n) {
		n = utf8_decode(buf + i, len - i, &cp);
		if (n == 0 || cp == 0) {
			memcpy(o, "\xef\xbf\xbd", 3);
			o += 3;
			n = 1;
			continue;
		}
		memcpy(o, buf + i, n);
		o += n;
	}
	*o = '\0';
	return out;
}
