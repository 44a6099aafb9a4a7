/* Unit tests for page deltas (backup/delta.h) and the entries that carry a
 * base (version 3 of pack headers and index objects; version 1 still
 * reads). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>
#include <zstd.h>

#include "backup/delta.h"
#include "backup/index.h"
#include "backup/pack.h"

#define UNIT (8 * TW_DELTA_PAGE)

static void fill(uint8_t *p, size_t n, uint32_t seed)
{
	/* page-like: compressible, different per seed */
	for (size_t i = 0; i < n; i++)
		p[i] = (uint8_t)((i / 7) * 31 + seed * (i % 13 == 0));
}

/* seal a delta of pt against base, open it again with the base */
static int round_trip(const struct tw_keys *k, ZSTD_CCtx *cc, const uint8_t *base, size_t blen,
                      const uint8_t *pt, size_t n, uint8_t *flags_out, size_t *olen_out)
{
	uint8_t id[TW_ID_LEN], bid[TW_ID_LEN];
	assert_int_equal(tw_crypto_id(k, pt, n, id), 0);
	assert_int_equal(tw_crypto_id(k, base, blen, bid), 0);
	uint8_t *out = malloc(n + TW_SEAL_OVERHEAD), *back = malloc(n);
	size_t olen;
	uint8_t flags;
	int rc = tw_blob_seal_delta(k, cc, 3, id, bid, base, blen, pt, n, out + TW_NONCE_LEN, out,
	                            &olen, &flags);
	if (rc == 0) {
		struct tw_pack_entry en = {TW_BLOB_DATA,   flags,       {0}, 0,
		                           (uint32_t)olen, (uint32_t)n, {0}};
		memcpy(en.id, id, TW_ID_LEN);
		memcpy(en.base, bid, TW_ID_LEN);
		/* a delta cannot be opened without its base */
		uint8_t *pt2 = NULL;
		assert_int_equal(tw_blob_open(k, NULL, &en, out, &pt2, NULL), TW_EUNSUPP);
		/* the base is bound: another base ID fails authentication */
		en.base[0] ^= 1;
		uint8_t *copy = malloc(olen), *body;
		size_t bl;
		memcpy(copy, out, olen);
		assert_int_equal(tw_blob_decrypt(k, &en, copy, &body, &bl, NULL), TW_ECRYPTO);
		en.base[0] ^= 1;
		memcpy(copy, out, olen);
		assert_int_equal(tw_blob_decrypt(k, &en, copy, &body, &bl, NULL), 0);
		assert_int_equal(tw_delta_apply(body, bl, (flags & TW_BLOB_ZSTD) != 0, base, blen,
		                                back, n, NULL, NULL),
		                 0);
		assert_memory_equal(back, pt, n);
		/* another base (one byte of an unchanged page differs) rebuilds
		 * another unit: the reader's ID check catches that */
		uint8_t *other = malloc(blen);
		memcpy(other, base, blen);
		other[0] ^= 0xff;
		if (!(tw_delta_bmlen(n) && (body[0] & 1)) &&
		    tw_delta_apply(body, bl, (flags & TW_BLOB_ZSTD) != 0, other, blen, back, n,
		                   NULL, NULL) == 0)
			assert_true(memcmp(back, pt, n) != 0);
		free(other);
		free(copy);
		*flags_out = flags;
		*olen_out = olen;
	}
	free(out);
	free(back);
	return rc;
}

static void delta_seal_apply(void **state)
{
	(void)state;
	struct tw_keys k;
	assert_int_equal(tw_crypto_keys_new(&k, NULL), 0);
	ZSTD_CCtx *cc = ZSTD_createCCtx();
	uint8_t *base = malloc(UNIT), *pt = malloc(UNIT);
	fill(base, UNIT, 1);
	memcpy(pt, base, UNIT);
	/* one page changed in a few bytes (an updated tuple) */
	pt[3 * TW_DELTA_PAGE + 100] ^= 0x5a;
	pt[3 * TW_DELTA_PAGE + 7000] ^= 0x33;
	uint8_t flags;
	size_t olen;
	assert_int_equal(round_trip(&k, cc, base, UNIT, pt, UNIT, &flags, &olen), 0);
	assert_int_equal(flags, TW_BLOB_DELTA | TW_BLOB_ZSTD);
	/* compressed against the old page: far smaller than the page */
	assert_true(olen < 200);
	/* the same without compression (no cctx): bitmap + the raw page */
	assert_int_equal(round_trip(&k, NULL, base, UNIT, pt, UNIT, &flags, &olen), 0);
	assert_int_equal(flags, TW_BLOB_DELTA);
	assert_int_equal(olen, 1 + TW_DELTA_PAGE + TW_SEAL_OVERHEAD);
	/* seven of eight pages changed: still a delta, far smaller than the
	 * unit; all eight: stored whole */
	for (size_t i = 0; i < 7; i++)
		pt[i * TW_DELTA_PAGE] ^= 1;
	assert_int_equal(round_trip(&k, cc, base, UNIT, pt, UNIT, &flags, &olen), 0);
	assert_true(olen < 1000);
	pt[7 * TW_DELTA_PAGE] ^= 1;
	assert_int_equal(round_trip(&k, cc, base, UNIT, pt, UNIT, &flags, &olen), TW_EAGAIN);
	/* a unit that grew past its base (the last unit of a growing file):
	 * the pages past the base are always "changed" */
	memcpy(pt, base, UNIT);
	pt[0] ^= 1;
	assert_int_equal(round_trip(&k, cc, base, 5 * TW_DELTA_PAGE, pt, UNIT, &flags, &olen), 0);
	/* a short last page */
	assert_int_equal(round_trip(&k, cc, base, UNIT, pt, UNIT - 100, &flags, &olen), 0);
	free(base);
	free(pt);
	ZSTD_freeCCtx(cc);
	tw_crypto_keys_clear(&k);
}

static void delta_apply_rejects_mismatches(void **state)
{
	(void)state;
	uint8_t base[UNIT], out[UNIT], body[1 + TW_DELTA_PAGE + 8];
	fill(base, UNIT, 2);
	memset(body, 0, sizeof body);
	body[0] = 1 << 2; /* page 2 changed: 8192 data bytes follow */
	assert_int_equal(
	    tw_delta_apply(body, 1 + TW_DELTA_PAGE, 0, base, UNIT, out, UNIT, NULL, NULL), 0);
	assert_memory_equal(out, base, 2 * TW_DELTA_PAGE);
	/* data shorter or longer than the bitmap says */
	assert_int_equal(tw_delta_apply(body, TW_DELTA_PAGE, 0, base, UNIT, out, UNIT, NULL, NULL),
	                 TW_ECORRUPT);
	assert_int_equal(
	    tw_delta_apply(body, 2 + TW_DELTA_PAGE, 0, base, UNIT, out, UNIT, NULL, NULL),
	    TW_ECORRUPT);
	/* bitmap missing; bits past the last page (a 3-page unit) */
	assert_int_equal(tw_delta_apply(body, 0, 0, base, UNIT, out, UNIT, NULL, NULL),
	                 TW_ECORRUPT);
	body[0] = 1 << 5;
	assert_int_equal(tw_delta_apply(body, 1 + TW_DELTA_PAGE, 0, base, UNIT, out,
	                                3 * TW_DELTA_PAGE, NULL, NULL),
	                 TW_ECORRUPT);
	/* an unchanged page the base does not hold */
	body[0] = 1;
	assert_int_equal(
	    tw_delta_apply(body, 1 + TW_DELTA_PAGE, 0, base, TW_DELTA_PAGE, out, UNIT, NULL, NULL),
	    TW_ECORRUPT);
	/* a zstd frame of another size, garbage as a frame, absurd unit sizes */
	uint8_t zb[64 + 1];
	zb[0] = 1;
	size_t zn = ZSTD_compress(zb + 1, sizeof zb - 1, "abc", 3, 1);
	assert_false(ZSTD_isError(zn));
	assert_int_equal(tw_delta_apply(zb, 1 + zn, 1, base, UNIT, out, UNIT, NULL, NULL),
	                 TW_ECORRUPT);
	memset(zb + 1, 0xee, 32);
	assert_int_equal(tw_delta_apply(zb, 33, 1, base, UNIT, out, UNIT, NULL, NULL), TW_ECORRUPT);
	assert_int_equal(tw_delta_apply(body, sizeof body, 0, base, UNIT, out, 0, NULL, NULL),
	                 TW_ECORRUPT);
	assert_int_equal(
	    tw_delta_apply(body, sizeof body, 0, base, UNIT, out, TW_DELTA_MAX_RAW + 1, NULL, NULL),
	    TW_ECORRUPT);
}

static void entries_with_a_base(void **state)
{
	(void)state;
	struct tw_pack_entry ents[3];
	memset(ents, 0, sizeof ents);
	uint32_t off = 0;
	for (int i = 0; i < 3; i++) {
		ents[i].type = TW_BLOB_DATA;
		ents[i].flags = i == 1 ? TW_BLOB_DELTA | TW_BLOB_ZSTD : TW_BLOB_ZSTD;
		memset(ents[i].id, 0x10 + i, TW_ID_LEN);
		ents[i].offset = off;
		ents[i].length = 300;
		ents[i].raw_length = 65536;
		off += 300;
	}
	memset(ents[1].base, 0xbb, TW_ID_LEN);
	/* pack header: version 3 with the delta, 46 + 78 + 46 bytes of entries */
	struct tw_dbuf b;
	tw_dbuf_init(&b, 1 << 20);
	assert_int_equal(tw_pack_header_encode(ents, 3, &b), 0);
	assert_int_equal(((uint8_t *)b.data)[4], 3);
	assert_int_equal(b.len, 12 + 2 * TW_PACK_ENTRY_LEN + TW_PACK_ENTRY_MAX);
	struct tw_pack_entry *back;
	uint32_t n;
	assert_int_equal(tw_pack_header_decode((uint8_t *)b.data, b.len, off, &back, &n, NULL), 0);
	assert_int_equal(n, 3);
	assert_memory_equal(back[1].base, ents[1].base, TW_ID_LEN);
	assert_int_equal(back[1].flags, TW_BLOB_DELTA | TW_BLOB_ZSTD);
	free(back);
	/* compressed (version 2 around version 3) reads the same */
	assert_int_equal(tw_meta_pack(&b), 0);
	assert_int_equal(tw_pack_header_decode((uint8_t *)b.data, b.len, off, &back, &n, NULL), 0);
	assert_memory_equal(back[1].base, ents[1].base, TW_ID_LEN);
	free(back);
	/* a delta flag in version 1 is refused; a truncated base too */
	b.len = 0;
	assert_int_equal(tw_pack_header_encode(ents, 3, &b), 0);
	((uint8_t *)b.data)[4] = 1;
	assert_int_equal(tw_pack_header_decode((uint8_t *)b.data, b.len, off, &back, &n, NULL),
	                 TW_ECORRUPT);
	((uint8_t *)b.data)[4] = 3;
	assert_int_equal(tw_pack_header_decode((uint8_t *)b.data, b.len - 50, off, &back, &n, NULL),
	                 TW_ECORRUPT);
	/* a delta tree, or a delta longer than its unit + bitmap: refused */
	uint8_t e[TW_PACK_ENTRY_MAX];
	struct tw_pack_entry one = ents[1], got;
	size_t used;
	one.type = TW_BLOB_TREE;
	tw_pack_entry_put(e, &one);
	assert_int_equal(tw_pack_entry_get(e, sizeof e, 3, &got, &used), TW_ECORRUPT);
	one = ents[1];
	one.length = 65536 + 8 + 2048 + TW_SEAL_OVERHEAD;
	tw_pack_entry_put(e, &one);
	assert_int_equal(tw_pack_entry_get(e, sizeof e, 3, &got, &used), TW_ECORRUPT);
	/* without deltas the header stays version 1 (old readers read it) */
	ents[1].flags = TW_BLOB_ZSTD;
	b.len = 0;
	assert_int_equal(tw_pack_header_encode(ents, 3, &b), 0);
	assert_int_equal(((uint8_t *)b.data)[4], 1);
	assert_int_equal(b.len, 12 + 3 * TW_PACK_ENTRY_LEN);
	ents[1].flags = TW_BLOB_DELTA | TW_BLOB_ZSTD;
	tw_dbuf_free(&b);
}

struct seen {
	struct tw_index ix;
	int n;
};

static int load(void *arg, const uint8_t pack_id[TW_ID_LEN], const struct tw_pack_entry *en)
{
	struct seen *s = arg;
	uint32_t num;
	int added;
	s->n++;
	assert_int_equal(tw_index_pack(&s->ix, pack_id, &num), 0);
	return tw_index_add(&s->ix, en, num, &added);
}

static void index_objects_and_chains(void **state)
{
	(void)state;
	/* chain: c -> b -> a (a whole) */
	struct tw_pack_entry ents[3];
	memset(ents, 0, sizeof ents);
	for (int i = 0; i < 3; i++) {
		ents[i].type = TW_BLOB_DATA;
		ents[i].flags = i ? TW_BLOB_DELTA : 0;
		memset(ents[i].id, 0xa0 + i, TW_ID_LEN);
		ents[i].offset = (uint32_t)i * 100;
		ents[i].length = 100;
		ents[i].raw_length = i ? 8192 : 100 - TW_SEAL_OVERHEAD;
		if (i)
			memcpy(ents[i].base, ents[i - 1].id, TW_ID_LEN);
	}
	uint8_t pid[TW_ID_LEN];
	memset(pid, 7, sizeof pid);
	struct tw_index_enc w;
	tw_index_enc_init(&w);
	assert_int_equal(tw_index_enc_pack(&w, pid, ents, 1), 0); /* no delta yet */
	assert_int_equal(((uint8_t *)w.buf.data)[4], 1);
	assert_int_equal(tw_index_enc_pack(&w, pid, ents + 1, 2), 0);
	assert_int_equal(((uint8_t *)w.buf.data)[4], 3);
	tw_index_enc_finish(&w);
	struct seen s = {{0}, 0};
	tw_index_init(&s.ix);
	assert_int_equal(tw_index_decode((uint8_t *)w.buf.data, w.buf.len, load, &s, NULL), 0);
	assert_int_equal(s.n, 3);
	const struct tw_idx_slot *c = tw_index_get(&s.ix, ents[2].id);
	assert_non_null(c);
	assert_memory_equal(tw_index_base(&s.ix, c), ents[1].id, TW_ID_LEN);
	assert_null(tw_index_base(&s.ix, tw_index_get(&s.ix, ents[0].id)));
	assert_int_equal(tw_index_depth(&s.ix, ents[2].id, 16), 2);
	assert_int_equal(tw_index_depth(&s.ix, ents[2].id, 1), 1);
	assert_int_equal(tw_index_depth(&s.ix, ents[0].id, 16), 0);
	struct tw_pack_entry en;
	tw_index_entry(&s.ix, c, &en);
	assert_memory_equal(en.base, ents[1].id, TW_ID_LEN);
	assert_int_equal(en.offset, 200);
	/* many deltas: the side table grows */
	for (uint32_t i = 0; i < 5000; i++) {
		struct tw_pack_entry d = ents[2];
		memcpy(d.id, &i, 4);
		d.id[5] = (uint8_t)(i * 7);
		int added;
		assert_int_equal(tw_index_add(&s.ix, &d, 0, &added), 0);
	}
	for (uint32_t i = 0; i < 5000; i += 37) {
		uint8_t id[TW_ID_LEN];
		memcpy(id, ents[2].id, TW_ID_LEN);
		memcpy(id, &i, 4);
		id[5] = (uint8_t)(i * 7);
		assert_memory_equal(tw_index_base(&s.ix, tw_index_get(&s.ix, id)), ents[1].id,
		                    TW_ID_LEN);
	}
	tw_index_free(&s.ix);
	/* a version-1 index object (before deltas) still reads */
	tw_index_enc_free(&w);
	tw_index_enc_init(&w);
	assert_int_equal(tw_index_enc_pack(&w, pid, ents, 1), 0);
	tw_index_enc_finish(&w);
	struct seen s1 = {{0}, 0};
	tw_index_init(&s1.ix);
	assert_int_equal(tw_index_decode((uint8_t *)w.buf.data, w.buf.len, load, &s1, NULL), 0);
	assert_int_equal(s1.n, 1);
	tw_index_free(&s1.ix);
	tw_index_enc_free(&w);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(delta_seal_apply),
	    cmocka_unit_test(delta_apply_rejects_mismatches),
	    cmocka_unit_test(entries_with_a_base),
	    cmocka_unit_test(index_objects_and_chains),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
