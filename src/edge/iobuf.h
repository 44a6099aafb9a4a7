/* iobuf.h — the proxy's byte buffers.
 *
 * A contiguous buffer with a read window [start, end) inside [0, cap). Data
 * is appended at end and consumed at start; tw_iobuf_compact() moves the
 * window to the front when room runs out at the back. Buffers are taken from
 * and returned to a per-worker free list (no locks), so an idle connection
 * holds none. cap is fixed at creation (TW_IOBUF_SIZE unless grown for a
 * large request head, capped by the configured limit). */
#ifndef TW_EDGE_IOBUF_H
#define TW_EDGE_IOBUF_H

#include <stddef.h>
#include <stdint.h>

/* 128 KiB: a 64 KiB body and its head arrive in one recv and leave in one send
 * (with 64 KiB they took three system calls more: two recv, two send). Only
 * the pages a connection touches cost memory; idle connections hold none. */
#define TW_IOBUF_SIZE (128u * 1024u)
/* Largest upstream response head accepted (502 above). */
#define TW_RESP_HEAD_MAX (64u * 1024u)

struct tw_iobuf {
	struct tw_iobuf *next_free;
	uint32_t cap, start, end;
	char *data;
};

struct tw_iobuf_pool {
	struct tw_iobuf *free;
	size_t nfree, max_free;
};

struct tw_iobuf *tw_iobuf_get(struct tw_iobuf_pool *pool);
void tw_iobuf_put(struct tw_iobuf_pool *pool, struct tw_iobuf *b); /* NULL ok */
void tw_iobuf_pool_drain(struct tw_iobuf_pool *pool);
/* Release free buffers beyond `keep` back to the kernel. */
void tw_iobuf_pool_trim(struct tw_iobuf_pool *pool, size_t keep);
/* Grow capacity to at least cap (only when it differs from the standard size). */
int tw_iobuf_grow(struct tw_iobuf *b, uint32_t cap);

static inline uint32_t tw_iobuf_len(const struct tw_iobuf *b) { return b->end - b->start; }
static inline uint32_t tw_iobuf_room(const struct tw_iobuf *b) { return b->cap - b->end; }
static inline char *tw_iobuf_head(const struct tw_iobuf *b) { return b->data + b->start; }
static inline char *tw_iobuf_tail(const struct tw_iobuf *b) { return b->data + b->end; }
void tw_iobuf_compact(struct tw_iobuf *b);
static inline void tw_iobuf_consume(struct tw_iobuf *b, uint32_t n)
{
	b->start += n;
	if (b->start == b->end)
		b->start = b->end = 0;
}
/* Append; returns 0 or TW_ELIMIT when it does not fit (after compaction). */
int tw_iobuf_append(struct tw_iobuf *b, const void *p, size_t n);

#endif
