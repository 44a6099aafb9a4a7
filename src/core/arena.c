#include "core/arena.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

struct tw_arena_block {
	struct tw_arena_block *next;
	size_t size, used;
	_Alignas(16) unsigned char data[];
};

void tw_arena_init(struct tw_arena *a, size_t block_size)
{
	a->head = NULL;
	a->block_size = block_size ? block_size : 4096;
	a->total = 0;
}

void tw_arena_free(struct tw_arena *a)
{
	if (a == NULL)
		return;
	struct tw_arena_block *b = a->head;
	while (b != NULL) {
		struct tw_arena_block *next = b->next;
		free(b);
		b = next;
	}
	a->head = NULL;
	a->total = 0;
}

void *tw_arena_alloc(struct tw_arena *a, size_t n)
{
	if (n > SIZE_MAX - 15)
		return NULL;
	n = (n + 15) & ~(size_t)15;
	struct tw_arena_block *b = a->head;
	if (b == NULL || b->size - b->used < n) {
		size_t size = n > a->block_size ? n : a->block_size;
		b = malloc(sizeof *b + size);
		if (b == NULL)
			return NULL;
		b->size = size;
		b->used = 0;
		a->total += sizeof *b + size;
		/* A big one-off allocation goes behind the current block so the
		 * current block's free space is not wasted. */
		if (a->head != NULL && size > a->block_size) {
			b->next = a->head->next;
			a->head->next = b;
		} else {
			b->next = a->head;
			a->head = b;
		}
	}
	void *p = b->data + b->used;
	b->used += n;
	memset(p, 0, n);
	return p;
}

char *tw_arena_strndup(struct tw_arena *a, const char *s, size_t n)
{
	char *p = tw_arena_alloc(a, n + 1);
	if (p == NULL)
		return NULL;
	memcpy(p, s, n);
	p[n] = '\0';
	return p;
}

char *tw_arena_strdup(struct tw_arena *a, const char *s) { return tw_arena_strndup(a, s, strlen(s)); }
