#include "edge/iobuf.h"

#include "core/err.h"

#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

/* Buffer memory comes straight from mmap so that it goes back to the kernel
 * when released beyond the free list: after a burst of concurrent requests
 * an idle proxy holds no heap fragments (memory per idle connection stays
 * at the size of the connection struct). */

static char *map(size_t n)
{
	void *p = mmap(NULL, n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	return p == MAP_FAILED ? NULL : p;
}

static void release(struct tw_iobuf *b)
{
	munmap(b->data, b->cap);
	free(b);
}

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
	b->data = map(TW_IOBUF_SIZE);
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
		release(b);
		return;
	}
	b->next_free = pool->free;
	pool->free = b;
	pool->nfree++;
}

void tw_iobuf_pool_trim(struct tw_iobuf_pool *pool, size_t keep)
{
	while (pool->nfree > keep) {
		struct tw_iobuf *b = pool->free;
		pool->free = b->next_free;
		pool->nfree--;
		release(b);
	}
}

void tw_iobuf_pool_drain(struct tw_iobuf_pool *pool) { tw_iobuf_pool_trim(pool, 0); }

int tw_iobuf_grow(struct tw_iobuf *b, uint32_t cap)
{
	if (cap <= b->cap)
		return 0;
	char *d = map(cap);
	if (d == NULL)
		return TW_ENOMEM;
	memcpy(d, b->data, b->end);
	munmap(b->data, b->cap);
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
