/*
 * err.c - names of the JOBD_E* codes and the helper that fills an error
 * buffer (Redis anetSetError style).
 */
#include <stdarg.h>
#include <stdio.h>

#include "err.h"

const char *
jobd_strerror(int code)
{
	switch (code) {
	case JOBD_OK: return "OK";
	case JOBD_EINVAL: return "EINVAL";
	case JOBD_ERANGE: return "ERANGE";
	case JOBD_ENOMEM: return "ENOMEM";
	case JOBD_EIO: return "EIO";
	case JOBD_EFULL: return "EFULL";
	case JOBD_EBUSY: return "EBUSY";
	case JOBD_ENOTFOUND: return "ENOTFOUND";
	case JOBD_ECONFLICT: return "ECONFLICT";
	case JOBD_ESTALE: return "ESTALE";
	case JOBD_ESYS: return "ESYS";
	case JOBD_EUNAVAIL: return "EUNAVAIL";
	}
	return "EUNKNOWN";
}

int
jobd_seterr(char *err, size_t errlen, int code, const char *fmt, ...)
{
	va_list ap;

	if (err != NULL && errlen > 0) {
		va_start(ap, fmt);
		vsnprintf(err, errlen, fmt, ap);
		va_end(ap);
	}
	return code;
}
