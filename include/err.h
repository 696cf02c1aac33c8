/*
 * err.h - the one return convention of jobd (STYLE.md §5).
 *
 * Every fallible function returns 0 on success or a negative JOBD_E* code,
 * and writes a human-readable detail into a caller-supplied buffer.  The HTTP
 * layer maps codes to statuses in one table (api.c).
 */
#ifndef JOBD_ERR_H
#define JOBD_ERR_H

#include <stddef.h>

enum {
	JOBD_OK = 0,
	JOBD_EINVAL = -1,     /* bad input: malformed, wrong type */
	JOBD_ERANGE = -2,     /* well-formed value out of range / unknown name */
	JOBD_ENOMEM = -3,     /* allocation failed */
	JOBD_EIO = -4,        /* store I/O error (durability unknown): fail-stop */
	JOBD_EFULL = -5,      /* disk full / queue at max_queued */
	JOBD_EBUSY = -6,      /* store locked, or daemon draining */
	JOBD_ENOTFOUND = -7,  /* no such job */
	JOBD_ECONFLICT = -8,  /* job not in a state that allows the operation */
	JOBD_ESTALE = -9,     /* claim no longer current (fencing) */
	JOBD_ESYS = -10,      /* a system call failed */
	JOBD_EUNAVAIL = -11,  /* the store cannot be reached for now (a dropped
	                         connection): transient, retried, never
	                         fail-stop */
};

/* Returns a static, constant name for a JOBD_E* code ("EIO", ...). */
const char *jobd_strerror(int code);

/*
 * Formats into err (if err is not NULL and errlen > 0), printf-style, and
 * returns code, so that callers can write `return jobd_seterr(...)`.
 */
int jobd_seterr(char *err, size_t errlen, int code, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

#endif
