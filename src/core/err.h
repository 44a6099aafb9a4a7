/* err.h — the one return convention of tapwork.
 *
 * Functions that can fail return int: 0 on success, a negative TW_E* code on
 * failure. TW_EAGAIN means "not yet" (need more input, would block). Counts
 * never share a return value with errors: they go through out-parameters.
 * Detail for humans goes into a struct tw_err supplied by the caller. */
#ifndef TW_CORE_ERR_H
#define TW_CORE_ERR_H

#include <stddef.h>

enum {
	TW_OK = 0,
	TW_ENOMEM = -1,    /* allocation failed */
	TW_EAGAIN = -2,    /* not yet: need more input / would block */
	TW_EINVAL = -3,    /* invalid argument or input */
	TW_EIO = -4,       /* I/O error (errno kept in tw_err if given) */
	TW_ENOENT = -5,    /* not found */
	TW_EEXIST = -6,    /* already exists (conditional put lost) */
	TW_ELIMIT = -7,    /* a configured cap was hit */
	TW_EPROTO = -8,    /* protocol violation by the peer */
	TW_ETIMEDOUT = -9, /* deadline passed */
	TW_ECRYPTO = -10,  /* authentication / crypto failure */
	TW_ECORRUPT = -11, /* stored data is damaged */
	TW_ECLOSED = -12,  /* peer closed */
	TW_ELOCKED = -13,  /* held by someone else */
	TW_EUNSUPP = -14,  /* not supported */
	TW_EPERM = -15,    /* permission denied */
	TW_ECANCELED = -16 /* stopped on request */
};

/* Human detail for the last failure. Fixed size: never allocates. */
struct tw_err {
	int code;
	char msg[512];
};

const char *tw_strerror(int code);

/* Set e->code and e->msg (printf format). Returns code, so callers can write
 * `return tw_err_set(e, TW_EINVAL, "bad %s", x);`. e may be NULL. */
int tw_err_set(struct tw_err *e, int code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Prefix existing detail: "ctx: old message". e may be NULL. */
int tw_err_wrap(struct tw_err *e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
