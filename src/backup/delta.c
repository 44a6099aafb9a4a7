/* delta.c — page deltas (delta.h). */
#include "backup/delta.h"

#include <stdlib.h>
#include <string.h>
#include <zstd.h>

static size_t page_len(size_t i, size_t n)
{
	size_t off = i * TW_DELTA_PAGE;
	return n - off < TW_DELTA_PAGE ? n - off : TW_DELTA_PAGE;
}

size_t tw_delta_diff(const uint8_t *base, size_t base_len, const uint8_t *pt, size_t n, uint8_t *bm,
                     uint8_t *pages, size_t *plen, uint8_t *prefix, size_t *xlen)
{
	size_t np = tw_delta_npages(n), changed = 0;
	memset(bm, 0, tw_delta_bmlen(n));
	*plen = *xlen = 0;
	for (size_t i = 0; i < np; i++) {
		size_t off = i * TW_DELTA_PAGE, len = page_len(i, n);
		if (off + len <= base_len && memcmp(base + off, pt + off, len) == 0)
			continue;
		bm[i / 8] |= (uint8_t)(1u << (i % 8));
		changed++;
		memcpy(pages + *plen, pt + off, len);
		*plen += len;
		if (off < base_len) {
			size_t bl = base_len - off < len ? base_len - off : len;
			memcpy(prefix + *xlen, base + off, bl);
			*xlen += bl;
		}
	}
	return changed;
}

int tw_delta_apply(const uint8_t *body, size_t blen, int zstd, const uint8_t *base, size_t base_len,
                   uint8_t *out, size_t n, void *dctx, struct tw_err *e)
{
	if (n == 0 || n > TW_DELTA_MAX_RAW)
		return tw_err_set(e, TW_ECORRUPT, "delta: bad unit length %zu", n);
	size_t np = tw_delta_npages(n), bml = tw_delta_bmlen(n);
	if (blen < bml)
		return tw_err_set(e, TW_ECORRUPT, "delta: truncated bitmap");
	const uint8_t *bm = body;
	if (np % 8 != 0 && (bm[bml - 1] >> (np % 8)) != 0)
		return tw_err_set(e, TW_ECORRUPT, "delta: bitmap names pages past the end");
	/* lengths first: the data and the prefix it was compressed against */
	size_t dlen = 0, xlen = 0;
	for (size_t i = 0; i < np; i++) {
		size_t off = i * TW_DELTA_PAGE, len = page_len(i, n);
		if (bm[i / 8] & (1u << (i % 8))) {
			dlen += len;
			if (off < base_len)
				xlen += base_len - off < len ? base_len - off : len;
		} else if (off + len > base_len) {
			return tw_err_set(e, TW_ECORRUPT,
			                  "delta: page %zu is past the end of its base", i);
		}
	}
	const uint8_t *data = body + bml;
	size_t have = blen - bml;
	uint8_t *tmp = NULL;
	int rc = 0;
	if (zstd) {
		unsigned long long fcs = ZSTD_getFrameContentSize(data, have);
		if (fcs != dlen)
			return tw_err_set(e, TW_ECORRUPT,
			                  "delta: frame size does not match its bitmap");
		tmp = malloc(dlen + xlen + 1);
		if (tmp == NULL)
			return tw_err_set(e, TW_ENOMEM, "out of memory");
		uint8_t *prefix = tmp + dlen;
		size_t x = 0;
		for (size_t i = 0; i < np; i++) {
			size_t off = i * TW_DELTA_PAGE, len = page_len(i, n);
			if ((bm[i / 8] & (1u << (i % 8))) && off < base_len) {
				size_t bl = base_len - off < len ? base_len - off : len;
				memcpy(prefix + x, base + off, bl);
				x += bl;
			}
		}
		ZSTD_DCtx *d = dctx;
		ZSTD_DCtx *own = NULL;
		if (d == NULL && (d = own = ZSTD_createDCtx()) == NULL) {
			free(tmp);
			return tw_err_set(e, TW_ENOMEM, "out of memory");
		}
		size_t r = ZSTD_DCtx_refPrefix(d, prefix, xlen);
		if (!ZSTD_isError(r))
			r = ZSTD_decompressDCtx(d, tmp, dlen, data, have);
		if (ZSTD_isError(r) || r != dlen)
			rc = tw_err_set(e, TW_ECORRUPT, "delta: bad compressed data");
		/* a prefix is used for one frame only; drop it on failure too */
		ZSTD_DCtx_reset(d, ZSTD_reset_session_only);
		ZSTD_freeDCtx(own);
		data = tmp;
		have = dlen;
	} else if (have != dlen) {
		return tw_err_set(e, TW_ECORRUPT, "delta: %zu data bytes, its bitmap names %zu",
		                  have, dlen);
	}
	if (rc == 0) {
		size_t pos = 0;
		for (size_t i = 0; i < np; i++) {
			size_t off = i * TW_DELTA_PAGE, len = page_len(i, n);
			if (bm[i / 8] & (1u << (i % 8))) {
				memcpy(out + off, data + pos, len);
				pos += len;
			} else {
				memcpy(out + off, base + off, len);
			}
		}
	}
	free(tmp);
	return rc;
}
