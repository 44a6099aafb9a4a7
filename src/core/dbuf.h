/* dbuf.h — growable byte buffer with a hard cap (curl's DYNBUF idea).
 *
 * Every growable buffer in tapwork has a cap: appending past it fails with
 * TW_ELIMIT and leaves the buffer unchanged. The contents are always
 * NUL-terminated for convenience, but callers read them as (ptr, len). */
#ifndef TW_CORE_DBUF_H
#define TW_CORE_DBUF_H

#include <stddef.h>

struct tw_dbuf {
	char *data;
	size_t len, alloc, cap;
};

void tw_dbuf_init(struct tw_dbuf *b, size_t cap);
void tw_dbuf_free(struct tw_dbuf *b); /* b may be NULL */
void tw_dbuf_reset(struct tw_dbuf *b); /* len = 0, keeps memory */
int tw_dbuf_append(struct tw_dbuf *b, const void *p, size_t n);
int tw_dbuf_appendf(struct tw_dbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int tw_dbuf_reserve(struct tw_dbuf *b, size_t n); /* room for n more bytes */
/* Drop the first n bytes (n <= len). */
void tw_dbuf_consume(struct tw_dbuf *b, size_t n);

#endif
