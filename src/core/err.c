#include "core/err.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

const char *tw_strerror(int code)
{
	switch (code) {
	case TW_OK: return "ok";
	case TW_ENOMEM: return "out of memory";
	case TW_EAGAIN: return "not yet";
	case TW_EINVAL: return "invalid input";
	case TW_EIO: return "I/O error";
	case TW_ENOENT: return "not found";
	case TW_EEXIST: return "already exists";
	case TW_ELIMIT: return "limit exceeded";
	case TW_EPROTO: return "protocol error";
	case TW_ETIMEDOUT: return "timed out";
	case TW_ECRYPTO: return "authentication failed";
	case TW_ECORRUPT: return "data corrupt";
	case TW_ECLOSED: return "connection closed";
	case TW_ELOCKED: return "locked";
	case TW_EUNSUPP: return "not supported";
	case TW_EPERM: return "permission denied";
	case TW_ECANCELED: return "canceled";
	}
	return "unknown error";
}

int tw_err_set(struct tw_err *e, int code, const char *fmt, ...)
{
	if (e == NULL)
		return code;
	e->code = code;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(e->msg, sizeof e->msg, fmt, ap);
	va_end(ap);
	return code;
}

int tw_err_wrap(struct tw_err *e, const char *fmt, ...)
{
	if (e == NULL)
		return TW_EINVAL;
	char prefix[256];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(prefix, sizeof prefix, fmt, ap);
	va_end(ap);
	char old[sizeof e->msg];
	memcpy(old, e->msg, sizeof old);
	snprintf(e->msg, sizeof e->msg, "%s: %s", prefix, old);
	return e->code;
}
