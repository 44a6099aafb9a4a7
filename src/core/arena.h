/* arena.h — memory by lifetime.
 *
 * An arena hands out memory from large blocks and frees it all at once.
 * A config generation, a backup run's metadata, a request: each owns one.
 * Allocations are 16-byte aligned. tw_arena_free accepts NULL. */
#ifndef TW_CORE_ARENA_H
#define TW_CORE_ARENA_H

#include <stddef.h>

struct tw_arena_block;

struct tw_arena {
	struct tw_arena_block *head;
	size_t block_size; /* default size of new blocks */
	size_t total;      /* bytes obtained from malloc, for accounting */
};

void tw_arena_init(struct tw_arena *a, size_t block_size);
void tw_arena_free(struct tw_arena *a); /* frees every block; a may be NULL */

/* NULL when out of memory. Memory is zeroed. */
void *tw_arena_alloc(struct tw_arena *a, size_t n);
char *tw_arena_strndup(struct tw_arena *a, const char *s, size_t n);
char *tw_arena_strdup(struct tw_arena *a, const char *s);

#endif
