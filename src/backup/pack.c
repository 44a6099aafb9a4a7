/* pack.c — pack header codec, blob and object sealing. */
#include "backup/pack.h"
#include "backup/delta.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zstd.h>

size_t tw_pack_entry_put(uint8_t out[TW_PACK_ENTRY_MAX], const struct tw_pack_entry *en)
{
	out[0] = en->type;
	out[1] = en->flags;
	memcpy(out + 2, en->id, TW_ID_LEN);
	tw_le32_put(out + 34, en->offset);
	tw_le32_put(out + 38, en->length);
	tw_le32_put(out + 42, en->raw_length);
	if (!(en->flags & TW_BLOB_DELTA))
		return TW_PACK_ENTRY_LEN;
	memcpy(out + TW_PACK_ENTRY_LEN, en->base, TW_ID_LEN);
	return TW_PACK_ENTRY_MAX;
}

int tw_pack_entry_get(const uint8_t *in, size_t avail, int version, struct tw_pack_entry *en,
		      size_t *used)
{
	if (avail < TW_PACK_ENTRY_LEN)
		return TW_ECORRUPT;
	en->type = in[0];
	en->flags = in[1];
	memcpy(en->id, in + 2, TW_ID_LEN);
	en->offset = tw_le32_get(in + 34);
	en->length = tw_le32_get(in + 38);
	en->raw_length = tw_le32_get(in + 42);
	memset(en->base, 0, TW_ID_LEN);
	*used = TW_PACK_ENTRY_LEN;
	if (en->type != TW_BLOB_DATA && en->type != TW_BLOB_TREE)
		return TW_ECORRUPT;
	uint8_t known = version >= 3 ? TW_BLOB_ZSTD | TW_BLOB_DELTA : TW_BLOB_ZSTD;
	if ((en->flags & ~known) != 0 || en->raw_length > TW_BLOB_MAX_RAW)
		return TW_ECORRUPT;
	if (en->length < TW_SEAL_OVERHEAD)
		return TW_ECORRUPT;
	if (en->flags & TW_BLOB_DELTA) {
		/* data only, a whole unit of at most TW_DELTA_MAX_RAW (8 MiB):
		 * the body is a bitmap and at most the unit's bytes */
		if (en->type != TW_BLOB_DATA || en->raw_length == 0 || en->raw_length > TW_DELTA_MAX_RAW ||
		    en->length - TW_SEAL_OVERHEAD > en->raw_length + tw_delta_bmlen(en->raw_length) + 1024)
			return TW_ECORRUPT;
		if (avail < TW_PACK_ENTRY_MAX)
			return TW_ECORRUPT;
		memcpy(en->base, in + TW_PACK_ENTRY_LEN, TW_ID_LEN);
		*used = TW_PACK_ENTRY_MAX;
		return 0;
	}
	if (!(en->flags & TW_BLOB_ZSTD) && en->length != en->raw_length + TW_SEAL_OVERHEAD)
		return TW_ECORRUPT;
	if ((en->flags & TW_BLOB_ZSTD) && en->length - TW_SEAL_OVERHEAD > TW_BLOB_MAX_RAW + 1024)
		return TW_ECORRUPT;
	return 0;
}

int tw_meta_pack(struct tw_dbuf *b)
{
	if (b->len < 12 || (b->data[4] != 1 && b->data[4] != 3))
		return TW_EINVAL;
	if (b->len > UINT32_MAX)
		return 0;
	size_t cap = 12 + ZSTD_compressBound(b->len);
	uint8_t *z = malloc(cap);
	if (z == NULL)
		return TW_ENOMEM;
	/* the IDs (32 of every 46 bytes) are random; the rest compresses */
	size_t r = ZSTD_compress(z + 12, cap - 12, b->data, b->len, 3);
	if (ZSTD_isError(r) || 12 + r >= b->len) {
		free(z);
		return 0;
	}
	memcpy(z, b->data, 4);
	z[4] = 2;
	z[5] = z[6] = z[7] = 0;
	tw_le32_put(z + 8, (uint32_t)b->len);
	b->len = 0;
	int rc = tw_dbuf_append(b, z, 12 + r);
	free(z);
	return rc;
}

int tw_meta_unpack(const char magic[4], const uint8_t *p, size_t n, size_t cap,
		   const uint8_t **out, size_t *out_len, uint8_t **tmp, struct tw_err *e)
{
	*tmp = NULL;
	if (n < 12 || memcmp(p, magic, 4) != 0 || p[4] != 2) {
		*out = p; /* version 1 or garbage: the plain decoder says which */
		*out_len = n;
		return 0;
	}
	if (p[5] || p[6] || p[7])
		return tw_err_set(e, TW_ECORRUPT, "%.4s: bad header", magic);
	uint32_t raw = tw_le32_get(p + 8);
	unsigned long long fcs = ZSTD_getFrameContentSize(p + 12, n - 12);
	/* every entry holds a 32-byte random ID: a real plain form is less
	 * than twice its compressed size; 8x bounds what a forged one costs */
	if (cap > 8 * (uint64_t)n + 4096)
		cap = 8 * (size_t)n + 4096;
	if (raw < 12 || raw > cap || fcs != raw)
		return tw_err_set(e, TW_ECORRUPT, "%.4s: bad compressed length", magic);
	uint8_t *v = malloc(raw);
	if (v == NULL)
		return tw_err_set(e, TW_ENOMEM, "out of memory");
	size_t r = ZSTD_decompress(v, raw, p + 12, n - 12);
	if (ZSTD_isError(r) || r != raw || memcmp(v, magic, 4) != 0 || (v[4] != 1 && v[4] != 3)) {
		free(v);
		return tw_err_set(e, TW_ECORRUPT, "%.4s: bad compressed data", magic);
	}
	*tmp = v;
	*out = v;
	*out_len = raw;
	return 0;
}

int tw_pack_header_encode(const struct tw_pack_entry *ents, uint32_t n, struct tw_dbuf *out)
{
	/* version 3 only when an entry carries a base: a pack without deltas
	 * stays readable by tapwork from before deltas */
	uint8_t version = 1;
	for (uint32_t i = 0; i < n; i++)
		if (ents[i].flags & TW_BLOB_DELTA)
			version = 3;
	uint8_t head[12] = {'T', 'W', 'P', 'H', version, 0, 0, 0};
	tw_le32_put(head + 8, n);
	int rc = tw_dbuf_reserve(out, 12 + (size_t)n * TW_PACK_ENTRY_LEN);
	if (rc == 0)
		rc = tw_dbuf_append(out, head, sizeof head);
	for (uint32_t i = 0; rc == 0 && i < n; i++) {
		uint8_t b[TW_PACK_ENTRY_MAX];
		size_t len = tw_pack_entry_put(b, &ents[i]);
		rc = tw_dbuf_append(out, b, len);
	}
	return rc;
}

static int header_decode(const uint8_t *p, size_t n, uint64_t data_end,
			 struct tw_pack_entry **ents, uint32_t *count, struct tw_err *e);

int tw_pack_header_decode(const uint8_t *p, size_t n, uint64_t data_end,
			  struct tw_pack_entry **ents, uint32_t *count, struct tw_err *e)
{
	*ents = NULL;
	*count = 0;
	uint8_t *tmp;
	int rc = tw_meta_unpack("TWPH", p, n, 12 + (size_t)TW_PACK_MAX_ENTRIES * TW_PACK_ENTRY_MAX,
				&p, &n, &tmp, e);
	if (rc == 0)
		rc = header_decode(p, n, data_end, ents, count, e);
	free(tmp);
	return rc;
}

static int header_decode(const uint8_t *p, size_t n, uint64_t data_end,
			 struct tw_pack_entry **ents, uint32_t *count, struct tw_err *e)
{
	if (n < 12 || memcmp(p, "TWPH", 4) != 0)
		return tw_err_set(e, TW_ECORRUPT, "pack header: bad magic");
	if ((p[4] != 1 && p[4] != 3) || p[5] || p[6] || p[7])
		return tw_err_set(e, TW_ECORRUPT, "pack header: unknown version %u", p[4]);
	uint32_t cnt = tw_le32_get(p + 8);
	if (cnt > TW_PACK_MAX_ENTRIES || (uint64_t)cnt * TW_PACK_ENTRY_LEN > n - 12 ||
	    (p[4] == 1 && (uint64_t)cnt * TW_PACK_ENTRY_LEN != n - 12))
		return tw_err_set(e, TW_ECORRUPT, "pack header: bad entry count %u", cnt);
	struct tw_pack_entry *v = calloc(cnt ? cnt : 1, sizeof *v);
	if (v == NULL)
		return tw_err_set(e, TW_ENOMEM, "out of memory");
	uint64_t pos = 0;
	size_t at = 12;
	for (uint32_t i = 0; i < cnt; i++) {
		size_t used;
		if (tw_pack_entry_get(p + at, n - at, p[4], &v[i], &used) != 0 || v[i].offset != pos) {
			free(v);
			return tw_err_set(e, TW_ECORRUPT, "pack header: bad entry %u", i);
		}
		at += used;
		pos += v[i].length;
	}
	if (at != n) {
		free(v);
		return tw_err_set(e, TW_ECORRUPT, "pack header: %zu trailing bytes", n - at);
	}
	if (pos != data_end) {
		free(v);
		return tw_err_set(e, TW_ECORRUPT, "pack header: blobs end at %llu, header at %llu",
				  (unsigned long long)pos, (unsigned long long)data_end);
	}
	*ents = v;
	*count = cnt;
	return 0;
}

#define TW_PROBE_LEN (64u * 1024)

static void blob_aad(uint8_t aad[3 + TW_ID_LEN], uint8_t type, uint8_t flags,
		     const uint8_t id[TW_ID_LEN])
{
	aad[0] = 'B';
	aad[1] = type;
	aad[2] = flags;
	memcpy(aad + 3, id, TW_ID_LEN);
}

/* A delta blob's AAD also binds its base: "B" | type | flags | id | base */
#define DELTA_AAD_LEN (3 + 2 * TW_ID_LEN)

int tw_blob_seal_delta(const struct tw_keys *k, void *cctx, int level, const uint8_t id[TW_ID_LEN],
		       const uint8_t base_id[TW_ID_LEN], const uint8_t *base, size_t base_len,
		       const uint8_t *pt, size_t n, uint8_t *scratch, uint8_t *out, size_t *out_len,
		       uint8_t *flags)
{
	if (n == 0 || n > TW_DELTA_MAX_RAW)
		return TW_EAGAIN;
	size_t bml = tw_delta_bmlen(n);
	uint8_t *pages = malloc(2 * n);
	if (pages == NULL)
		return TW_ENOMEM;
	uint8_t *prefix = pages + n;
	size_t plen, xlen;
	size_t changed = tw_delta_diff(base, base_len, pt, n, scratch, pages, &plen, prefix, &xlen);
	/* every page differs: nothing to take from the base. (A unit with
	 * most pages changed still pays: a changed page differs from its old
	 * version in a few tuples, and it is compressed against it.) */
	if (changed == tw_delta_npages(n) || bml + plen >= n) {
		free(pages);
		return TW_EAGAIN;
	}
	*flags = TW_BLOB_DELTA;
	size_t blen = bml + plen;
	if (cctx != NULL && plen > 64) {
		ZSTD_CCtx *c = cctx;
		ZSTD_CCtx_setParameter(c, ZSTD_c_compressionLevel, level);
		size_t r = xlen > 0 ? ZSTD_CCtx_refPrefix(c, prefix, xlen) : 0;
		if (!ZSTD_isError(r))
			r = ZSTD_compress2(c, scratch + bml, plen - 1, pages, plen);
		else
			ZSTD_CCtx_reset(c, ZSTD_reset_session_only);
		if (!ZSTD_isError(r) && r < plen) {
			*flags |= TW_BLOB_ZSTD;
			blen = bml + r;
		}
	}
	if (!(*flags & TW_BLOB_ZSTD))
		memcpy(scratch + bml, pages, plen);
	free(pages);
	uint8_t aad[DELTA_AAD_LEN];
	blob_aad(aad, TW_BLOB_DATA, *flags, id);
	memcpy(aad + 3 + TW_ID_LEN, base_id, TW_ID_LEN);
	int rc = tw_crypto_seal(k->enc, aad, sizeof aad, scratch, blen, out);
	if (rc != 0)
		return rc;
	*out_len = blen + TW_SEAL_OVERHEAD;
	return 0;
}

int tw_blob_decrypt(const struct tw_keys *k, const struct tw_pack_entry *en, uint8_t *stored,
		    uint8_t **body, size_t *blen, struct tw_err *e)
{
	if (en->length < TW_SEAL_OVERHEAD || en->raw_length > TW_BLOB_MAX_RAW)
		return tw_err_set(e, TW_ECORRUPT, "blob: bad length");
	uint8_t aad[DELTA_AAD_LEN];
	size_t alen = 3 + TW_ID_LEN;
	blob_aad(aad, en->type, en->flags, en->id);
	if (en->flags & TW_BLOB_DELTA) {
		memcpy(aad + alen, en->base, TW_ID_LEN);
		alen += TW_ID_LEN;
	}
	*body = stored + TW_NONCE_LEN;
	*blen = en->length - TW_SEAL_OVERHEAD;
	if (tw_crypto_open(k->enc, aad, alen, stored, en->length, *body) != 0)
		return tw_err_set(e, TW_ECRYPTO, "blob: authentication failed");
	return 0;
}

int tw_blob_seal(const struct tw_keys *k, void *cctx, int level, uint8_t type,
		 const uint8_t id[TW_ID_LEN], const uint8_t *pt, size_t n, uint8_t *scratch,
		 uint8_t *out, size_t *out_len, uint8_t *flags)
{
	const uint8_t *body = pt;
	size_t blen = n;
	*flags = 0;
	if (cctx != NULL && n > 64) {
		ZSTD_CCtx *c = cctx;
		ZSTD_CCtx_setParameter(c, ZSTD_c_compressionLevel, level);
		size_t r = 0;
		/* incompressible data (media, archives, encrypted files) is common:
		 * probe 64 KiB first and skip the full attempt when it does not
		 * shrink by at least 3% */
		if (n > 4 * TW_PROBE_LEN) {
			size_t pr = ZSTD_compress2(c, scratch, n - 1, pt, TW_PROBE_LEN);
			if (ZSTD_isError(pr) || pr * 100 > (size_t)TW_PROBE_LEN * 97)
				goto seal;
		}
		r = ZSTD_compress2(c, scratch, n - 1, pt, n);
		if (!ZSTD_isError(r) && r < n) {
			body = scratch;
			blen = r;
			*flags = TW_BLOB_ZSTD;
		}
	}
seal:;
	uint8_t aad[3 + TW_ID_LEN];
	blob_aad(aad, type, *flags, id);
	int rc = tw_crypto_seal(k->enc, aad, sizeof aad, body, blen, out);
	if (rc != 0)
		return rc;
	*out_len = blen + TW_SEAL_OVERHEAD;
	return 0;
}

void tw_zstd_profile(void *cctx, int profile)
{
	ZSTD_CCtx *c = cctx;
	int sorted = profile == TW_ZP_SORTED;
	/* 0 = derive from the level; explicitly set values stick across
	 * later level changes */
	ZSTD_CCtx_setParameter(c, ZSTD_c_strategy, sorted ? ZSTD_lazy : 0);
	ZSTD_CCtx_setParameter(c, ZSTD_c_searchLog, sorted ? 1 : 0);
}

/* One decompression context per thread for callers that pass none: creating
 * one per blob cost ~6% of a restore. Freed when the thread exits. */
static pthread_key_t dctx_key;
static pthread_once_t dctx_once = PTHREAD_ONCE_INIT;

static void dctx_free(void *p) { ZSTD_freeDCtx(p); }
static void dctx_init(void) { pthread_key_create(&dctx_key, dctx_free); }

static ZSTD_DCtx *thread_dctx(void)
{
	pthread_once(&dctx_once, dctx_init);
	ZSTD_DCtx *d = pthread_getspecific(dctx_key);
	if (d == NULL && (d = ZSTD_createDCtx()) != NULL && pthread_setspecific(dctx_key, d) != 0) {
		ZSTD_freeDCtx(d);
		d = NULL;
	}
	return d;
}

void *tw_zstd_thread_dctx(void) { return thread_dctx(); }

int tw_blob_open(const struct tw_keys *k, void *dctx, const struct tw_pack_entry *en,
		 const uint8_t *stored, uint8_t **pt, struct tw_err *e)
{
	*pt = NULL;
	if (en->flags & TW_BLOB_DELTA)
		return tw_err_set(e, TW_EUNSUPP, "blob: a delta needs its base");
	if (en->length < TW_SEAL_OVERHEAD || en->raw_length > TW_BLOB_MAX_RAW)
		return tw_err_set(e, TW_ECORRUPT, "blob: bad length");
	size_t blen = en->length - TW_SEAL_OVERHEAD;
	uint8_t *body = malloc(blen ? blen : 1);
	if (body == NULL)
		return tw_err_set(e, TW_ENOMEM, "out of memory");
	uint8_t aad[3 + TW_ID_LEN];
	blob_aad(aad, en->type, en->flags, en->id);
	if (tw_crypto_open(k->enc, aad, sizeof aad, stored, en->length, body) != 0) {
		free(body);
		return tw_err_set(e, TW_ECRYPTO, "blob: authentication failed");
	}
	uint8_t *raw = body;
	if (en->flags & TW_BLOB_ZSTD) {
		raw = malloc(en->raw_length ? en->raw_length : 1);
		ZSTD_DCtx *d = dctx ? dctx : thread_dctx();
		size_t r = raw && d ? ZSTD_decompressDCtx(d, raw, en->raw_length, body, blen) : 0;
		free(body);
		if (raw == NULL || ZSTD_isError(r) || r != en->raw_length) {
			free(raw);
			return tw_err_set(e, TW_ECORRUPT, "blob: bad compressed data");
		}
	} else if (blen != en->raw_length) {
		free(body);
		return tw_err_set(e, TW_ECORRUPT, "blob: length mismatch");
	}
	uint8_t id[TW_ID_LEN];
	if (tw_crypto_id(k, raw, en->raw_length, id) != 0 || memcmp(id, en->id, TW_ID_LEN) != 0) {
		free(raw);
		return tw_err_set(e, TW_ECORRUPT, "blob: content does not match its ID");
	}
	*pt = raw;
	return 0;
}

static int open_inplace(const struct tw_keys *k, void *dctx, const struct tw_pack_entry *en,
			uint8_t *stored, uint8_t **raw, size_t *raw_cap, const uint8_t **pt,
			int check_id, struct tw_err *e);

int tw_blob_open_inplace(const struct tw_keys *k, void *dctx, const struct tw_pack_entry *en,
			 uint8_t *stored, uint8_t **raw, size_t *raw_cap, const uint8_t **pt,
			 struct tw_err *e)
{
	return open_inplace(k, dctx, en, stored, raw, raw_cap, pt, 1, e);
}

int tw_blob_open_base(const struct tw_keys *k, void *dctx, const struct tw_pack_entry *en,
		      uint8_t *stored, uint8_t **raw, size_t *raw_cap, const uint8_t **pt,
		      struct tw_err *e)
{
	return open_inplace(k, dctx, en, stored, raw, raw_cap, pt, 0, e);
}

static int open_inplace(const struct tw_keys *k, void *dctx, const struct tw_pack_entry *en,
			uint8_t *stored, uint8_t **raw, size_t *raw_cap, const uint8_t **pt,
			int check_id, struct tw_err *e)
{
	*pt = NULL;
	if (en->flags & TW_BLOB_DELTA)
		return tw_err_set(e, TW_EUNSUPP, "blob: a delta needs its base");
	if (en->length < TW_SEAL_OVERHEAD || en->raw_length > TW_BLOB_MAX_RAW)
		return tw_err_set(e, TW_ECORRUPT, "blob: bad length");
	size_t blen = en->length - TW_SEAL_OVERHEAD;
	uint8_t *body = stored + TW_NONCE_LEN;
	uint8_t aad[3 + TW_ID_LEN];
	blob_aad(aad, en->type, en->flags, en->id);
	/* GCM decrypts in place when input and output are the same bytes */
	if (tw_crypto_open(k->enc, aad, sizeof aad, stored, en->length, body) != 0)
		return tw_err_set(e, TW_ECRYPTO, "blob: authentication failed");
	const uint8_t *plain = body;
	if (en->flags & TW_BLOB_ZSTD) {
		if (dctx == NULL && (dctx = thread_dctx()) == NULL)
			return tw_err_set(e, TW_ENOMEM, "out of memory");
		if (*raw_cap < en->raw_length || *raw == NULL) {
			size_t nc = en->raw_length ? en->raw_length : 1;
			uint8_t *nb = malloc(nc);
			if (nb == NULL)
				return tw_err_set(e, TW_ENOMEM, "out of memory");
			free(*raw);
			*raw = nb;
			*raw_cap = nc;
		}
		size_t r = ZSTD_decompressDCtx(dctx, *raw, en->raw_length, body, blen);
		if (ZSTD_isError(r) || r != en->raw_length)
			return tw_err_set(e, TW_ECORRUPT, "blob: bad compressed data");
		plain = *raw;
	} else if (blen != en->raw_length) {
		return tw_err_set(e, TW_ECORRUPT, "blob: length mismatch");
	}
	uint8_t id[TW_ID_LEN];
	if (check_id &&
	    (tw_crypto_id(k, plain, en->raw_length, id) != 0 || memcmp(id, en->id, TW_ID_LEN) != 0))
		return tw_err_set(e, TW_ECORRUPT, "blob: content does not match its ID");
	*pt = plain;
	return 0;
}

static int object_aad(const char *kind, char *aad, size_t cap, size_t *len)
{
	int n = snprintf(aad, cap, "tapwork/v1/%s", kind);
	if (n < 0 || (size_t)n >= cap)
		return TW_EINVAL;
	*len = (size_t)n;
	return 0;
}

int tw_object_seal(const struct tw_keys *k, const char *kind, const void *pt, size_t n,
		   uint8_t **out, size_t *out_len)
{
	char aad[128]; /* "tapwork/v1/" + kind (a WAL kind names its object) */
	size_t alen;
	*out = NULL;
	if (object_aad(kind, aad, sizeof aad, &alen) != 0)
		return TW_EINVAL;
	uint8_t *b = malloc(n + TW_SEAL_OVERHEAD);
	if (b == NULL)
		return TW_ENOMEM;
	int rc = tw_crypto_seal(k->enc, aad, alen, pt, n, b);
	if (rc != 0) {
		free(b);
		return rc;
	}
	*out = b;
	*out_len = n + TW_SEAL_OVERHEAD;
	return 0;
}

int tw_object_seal_inplace(const struct tw_keys *k, const char *kind, uint8_t *buf, size_t n)
{
	char aad[128];
	size_t alen;
	if (object_aad(kind, aad, sizeof aad, &alen) != 0)
		return TW_EINVAL;
	/* the cipher reads and writes buf + TW_NONCE_LEN: in place */
	return tw_crypto_seal(k->enc, aad, alen, buf + TW_NONCE_LEN, n, buf);
}

int tw_object_open_inplace(const struct tw_keys *k, const char *kind, uint8_t *in, size_t n,
                           uint8_t **pt, size_t *pt_len, struct tw_err *e)
{
	char aad[128];
	size_t alen;
	*pt = NULL;
	if (object_aad(kind, aad, sizeof aad, &alen) != 0 || n < TW_SEAL_OVERHEAD)
		return tw_err_set(e, TW_ECORRUPT, "%s object: too short", kind);
	if (tw_crypto_open(k->enc, aad, alen, in, n, in + TW_NONCE_LEN) != 0)
		return tw_err_set(e, TW_ECRYPTO, "%s object: authentication failed", kind);
	*pt = in + TW_NONCE_LEN;
	*pt_len = n - TW_SEAL_OVERHEAD;
	return 0;
}

int tw_object_open(const struct tw_keys *k, const char *kind, const uint8_t *in, size_t n,
		   uint8_t **pt, size_t *pt_len, struct tw_err *e)
{
	char aad[128]; /* "tapwork/v1/" + kind (a WAL kind names its object) */
	size_t alen;
	*pt = NULL;
	if (object_aad(kind, aad, sizeof aad, &alen) != 0 || n < TW_SEAL_OVERHEAD)
		return tw_err_set(e, TW_ECORRUPT, "%s object: too short", kind);
	uint8_t *b = malloc(n - TW_SEAL_OVERHEAD + 1);
	if (b == NULL)
		return tw_err_set(e, TW_ENOMEM, "out of memory");
	if (tw_crypto_open(k->enc, aad, alen, in, n, b) != 0) {
		free(b);
		return tw_err_set(e, TW_ECRYPTO, "%s object: authentication failed", kind);
	}
	b[n - TW_SEAL_OVERHEAD] = 0; /* convenience terminator for JSON */
	*pt = b;
	*pt_len = n - TW_SEAL_OVERHEAD;
	return 0;
}
