#include "core/dbuf.h"

#include "core/err.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void tw_dbuf_init(struct tw_dbuf *b, size_t cap)
{
	b->data = NULL;
	b->len = b->alloc = 0;
	b->cap = cap;
}

void tw_dbuf_free(struct tw_dbuf *b)
{
	if (b == NULL)
		return;
	free(b->data);
	b->data = NULL;
	b->len = b->alloc = 0;
}

void tw_dbuf_reset(struct tw_dbuf *b)
{
	b->len = 0;
	if (b->data)
		b->data[0] = '\0';
}

int tw_dbuf_reserve(struct tw_dbuf *b, size_t n)
{
	if (n > b->cap || b->len > b->cap - n)
		return TW_ELIMIT;
	size_t need = b->len + n + 1;
	if (need <= b->alloc)
		return 0;
	size_t a = b->alloc ? b->alloc : 64;
	while (a < need)
		a *= 2;
	if (a > b->cap + 1)
		a = b->cap + 1;
	char *p = realloc(b->data, a);
	if (p == NULL)
		return TW_ENOMEM;
	b->data = p;
	b->alloc = a;
	return 0;
}

int tw_dbuf_append(struct tw_dbuf *b, const void *p, size_t n)
{
	int rc = tw_dbuf_reserve(b, n);
	if (rc != 0)
		return rc;
	if (n)
		memcpy(b->data + b->len, p, n);
	b->len += n;
	b->data[b->len] = '\0';
	return 0;
}

int tw_dbuf_appendf(struct tw_dbuf *b, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0)
		return TW_EINVAL;
	int rc = tw_dbuf_reserve(b, (size_t)n);
	if (rc != 0)
		return rc;
	va_start(ap, fmt);
	vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
	va_end(ap);
	b->len += (size_t)n;
	return 0;
}

void tw_dbuf_consume(struct tw_dbuf *b, size_t n)
{
	if (n >= b->len) {
		tw_dbuf_reset(b);
		return;
	}
	memmove(b->data, b->data + n, b->len - n);
	b->len -= n;
	b->data[b->len] = '\0';
}
