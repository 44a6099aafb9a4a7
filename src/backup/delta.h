/* delta.h — page deltas: a data blob stored as the pages that differ from
 * another blob (its base), docs/repository-format.md "Delta blobs".
 *
 * A unit of n bytes is cut into pages of TW_DELTA_PAGE bytes (the last one
 * may be shorter). A delta body is
 *
 *   bitmap (ceil(npages / 8) bytes, bit i of byte i/8 = page i differs) | data
 *
 * where data is the differing pages, in page order: as they are, or (the
 * blob's TW_BLOB_ZSTD flag) one zstd frame of them compressed with the
 * base's bytes at the same pages, in the same order, as zstd's prefix
 * (ZSTD_CCtx_refPrefix). An unchanged page is copied from the base, which
 * must hold all of it. tw_delta_apply() parses untrusted input (fuzz/
 * backup_delta.c): every length is checked before use. */
#ifndef TW_BACKUP_DELTA_H
#define TW_BACKUP_DELTA_H

#include <stddef.h>
#include <stdint.h>

#include "core/err.h"

#define TW_DELTA_PAGE 8192u
/* a writer stores a delta only against a base that is at most this many
 * deltas deep (restore then reads at most 4 more blobs for one) */
#define TW_DELTA_MAX_DEPTH 4
/* readers follow at most this many bases (a forged cycle ends here) */
#define TW_DELTA_READ_DEPTH 16
/* largest unit stored as a delta (readers reject larger raw lengths) */
#define TW_DELTA_MAX_RAW (8u << 20)

static inline size_t tw_delta_npages(size_t n)
{
	return (n + TW_DELTA_PAGE - 1) / TW_DELTA_PAGE;
}
static inline size_t tw_delta_bmlen(size_t n)
{
	return (tw_delta_npages(n) + 7) / 8;
}

/* Compare pt[0..n) with base[0..base_len): bm (tw_delta_bmlen(n) bytes)
 * gets the differing pages; pages (n bytes) their bytes, *plen in all;
 * prefix (n bytes) the base's bytes at those pages, *xlen in all. Returns
 * the number of differing pages. */
size_t tw_delta_diff(const uint8_t *base, size_t base_len, const uint8_t *pt, size_t n, uint8_t *bm,
                     uint8_t *pages, size_t *plen, uint8_t *prefix, size_t *xlen);

/* Rebuild the n-byte unit into out from a delta body[0..blen) and its base.
 * zstd: the data is a zstd frame (prefix as above); dctx a ZSTD_DCtx or
 * NULL. TW_ECORRUPT (never a crash) for a bitmap, length or frame that does
 * not match; the caller checks the result's ID. */
int tw_delta_apply(const uint8_t *body, size_t blen, int zstd, const uint8_t *base, size_t base_len,
                   uint8_t *out, size_t n, void *dctx, struct tw_err *e);

#endif
