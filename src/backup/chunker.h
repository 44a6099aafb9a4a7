/* chunker.h — content-defined chunking (FastCDC / Gear, normalized).
 *
 * The gear table is derived from the repository's secret chunker seed, so
 * chunk boundaries (and so chunk sizes) reveal nothing without the keys.
 * Defaults: min 256 KiB, average 1 MiB, max 4 MiB. Below the average the
 * cut test uses 2 more mask bits (harder), above it 2 fewer (easier): this
 * "normalized chunking" keeps sizes near the average. The hash is
 * h = (h << 1) + gear[byte]; a cut is where the top bits of h are all zero.
 * Since h depends only on the last 64 bytes, hashing starts 64 bytes before
 * min and boundaries are content-defined (they survive inserts/shifts).
 *
 * Incremental: feed any buffers in order; tw_chunker_scan() tells how many
 * bytes belong to the current chunk and whether the chunk ends there. */
#ifndef TW_BACKUP_CHUNKER_H
#define TW_BACKUP_CHUNKER_H

#include <stddef.h>
#include <stdint.h>

#define TW_CHUNK_MIN (256u * 1024)
#define TW_CHUNK_AVG (1024u * 1024)
#define TW_CHUNK_MAX (4u * 1024 * 1024)
#define TW_CHUNK_MAX_LIMIT (8u * 1024 * 1024)

struct tw_chunker {
	const uint64_t *gear;
	uint32_t min, avg, max;
	uint64_t mask_s, mask_l;
	uint64_t h;
	uint32_t len; /* bytes of the current chunk seen so far */
};

/* gear[i] = first 8 bytes of HMAC-SHA-256(seed, "gear" || i). 0 or TW_ECRYPTO. */
int tw_chunker_gear(const uint8_t seed[32], uint64_t gear[256]);
/* 0, or TW_EINVAL unless 64 < min < avg < max <= TW_CHUNK_MAX_LIMIT and avg is a power of 2. */
int tw_chunker_init(struct tw_chunker *c, const uint64_t *gear, uint32_t min, uint32_t avg,
		    uint32_t max);
void tw_chunker_reset(struct tw_chunker *c); /* start a new stream */
/* Consume p[0..n): returns how many bytes were taken into the current chunk;
 * *cut = 1 when the chunk ends right after them (the next byte starts a new
 * chunk), else all n bytes were taken. Call again with the rest. */
size_t tw_chunker_scan(struct tw_chunker *c, const uint8_t *p, size_t n, int *cut);

#endif
