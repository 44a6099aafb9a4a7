#include "edge/iobuf.h"

#include "core/err.h"

#include <stdlib.h>
#include <string.h>

struct tw_iobuf *tw_iobuf_get(struct tw_iobuf_pool *pool)
{
	struct tw_iobuf *b = pool->free;
	if (b != NULL) {
		pool->free = b->next_free;
		pool->nfree--;
		b->next_free = NULL;
		b->start = b->end = 0;
		return b;
	}
	b = malloc(sizeof *b);
	if (b == NULL)
		return NULL;
	b->data = malloc(TW_IOBUF_SIZE);
	if (b->data == NULL) {
		free(b);
		return NULL;
	}
	b->cap = TW_IOBUF_SIZE;
	b->start = b->end = 0;
	b->next_free = NULL;
	return b;
}

void tw_iobuf_put(struct tw_iobuf_pool *pool, struct tw_iobuf *b)
{
	if (b == NULL)
		return;
	if (b->cap != TW_IOBUF_SIZE || pool->nfree >= pool->max_free) {
		free(b->data);
		free(b);
		return;
	}
	b->next_free = pool->free;
	pool->free = b;
	pool->nfree++;
}

void tw_iobuf_pool_drain(struct tw_iobuf_pool *pool)
{
	while (pool->free) {
		struct tw_iobuf *b = pool->free;
		pool->free = b->next_free;
		free(b->data);
		free(b);
	}
	pool->nfree = 0;
}

int tw_iobuf_grow(struct tw_iobuf *b, uint32_t cap)
{
	if (cap <= b->cap)
		return 0;
	char *d = realloc(b->data, cap);
	if (d == NULL)
		return TW_ENOMEM;
	b->data = d;
	b->cap = cap;
	return 0;
}

void tw_iobuf_compact(struct tw_iobuf *b)
{
	if (b->start == 0)
		return;
	uint32_t n = b->end - b->start;
	if (n)
		memmove(b->data, b->data + b->start, n);
	b->start = 0;
	b->end = n;
}

int tw_iobuf_append(struct tw_iobuf *b, const void *p, size_t n)
{
	if (tw_iobuf_room(b) < n)
		tw_iobuf_compact(b);
	if (tw_iobuf_room(b) < n)
		return TW_ELIMIT;
	memcpy(b->data + b->end, p, n);
	b->end += (uint32_t)n;
	return 0;
}
