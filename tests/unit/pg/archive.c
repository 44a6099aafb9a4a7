/* Unit tests for the WAL object plaintext of src/pg/archive.c (what is left
 * once the AEAD tag has passed): version 2 encodes and decodes (zstd with
 * its frame checksum, or raw), version 1 objects as the old writer made
 * them still decode, and every kind of damage an authentic plaintext could
 * carry (a decompressor that returns other bytes, a frame without checksum,
 * lengths, versions, trailing bytes) is TW_ECORRUPT. The storage side
 * (push, get to a file, exit codes) is tests/e2e/pg/test_pg_archive.py. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>
#include <zstd.h>

#include "backup/crypto.h"
#include "core/le.h"
#include "pg/archive.h"

/* WAL-like bytes: compressible, not constant. */
static uint8_t *sample(size_t n)
{
	uint8_t *p = malloc(n);
	assert_non_null(p);
	for (size_t i = 0; i < n; i++)
		p[i] = (uint8_t)((i % 8192) < 600 ? (i * 2654435761u) >> 13 : i % 7);
	return p;
}

/* The version 1 writer as tapwork had it before version 2: the 48-byte
 * header with the SHA-256 of the file, a zstd frame without checksum (or
 * the raw bytes when that is not smaller). */
static uint8_t *encode_v1(const uint8_t *d, size_t n, size_t *plen)
{
	size_t bound = ZSTD_compressBound(n);
	uint8_t *pt = malloc(TW_PGARCH_HDR1 + (bound > n ? bound : n));
	assert_non_null(pt);
	memset(pt, 0, TW_PGARCH_HDR1);
	pt[0] = 1;
	tw_le64_put(pt + 8, n);
	tw_crypto_sha256(d, n, pt + 16);
	size_t z = ZSTD_compress(pt + TW_PGARCH_HDR1, bound, d, n, 3);
	if (!ZSTD_isError(z) && z < n) {
		pt[1] = 1;
		*plen = TW_PGARCH_HDR1 + z;
	} else {
		memcpy(pt + TW_PGARCH_HDR1, d, n);
		*plen = TW_PGARCH_HDR1 + n;
	}
	return pt;
}

static int decodes_to(const uint8_t *pt, size_t plen, const uint8_t *want, size_t n)
{
	struct tw_err e = {0};
	uint8_t *out;
	size_t got;
	int rc = tw_pgarch_decode(pt, plen, "w", &out, &got, &e);
	if (rc != 0)
		return rc;
	int same = got == n && (n == 0 || memcmp(out, want, n) == 0);
	free(out);
	return same ? 0 : 1;
}

static void version2_round_trip(void **state)
{
	(void)state;
	size_t n = 1 << 20, plen;
	uint8_t *d = sample(n), *pt;
	struct tw_pgarch_hdr h;
	assert_int_equal(tw_pgarch_encode(d, n, 3, &pt, &plen), 0);
	assert_int_equal(tw_pgarch_parse(pt, plen, &h), 0);
	assert_int_equal(h.version, 2);
	assert_int_equal(h.codec, 1);
	assert_true(h.raw == n && h.sha256 == NULL && h.body == pt + TW_PGARCH_HDR2);
	assert_true(plen < n / 2);
	assert_true(tw_le32_get(h.body) == ZSTD_MAGICNUMBER && (h.body[4] & 0x04));
	assert_int_equal(decodes_to(pt, plen, d, n), 0);
	free(pt);
	/* incompressible: raw; empty: raw, length 0 */
	static const uint8_t few[] = "0123456789";
	assert_int_equal(tw_pgarch_encode(few, 10, 3, &pt, &plen), 0);
	assert_true(plen == TW_PGARCH_HDR2 + 10 && pt[0] == 2 && pt[1] == 0);
	assert_int_equal(decodes_to(pt, plen, few, 10), 0);
	free(pt);
	assert_int_equal(tw_pgarch_encode(few, 0, 3, &pt, &plen), 0);
	assert_true(plen == TW_PGARCH_HDR2 && pt[1] == 0);
	assert_int_equal(decodes_to(pt, plen, few, 0), 0);
	free(pt);
	free(d);
}

static void version1_still_decodes(void **state)
{
	(void)state;
	size_t n = 1 << 20, plen;
	uint8_t *d = sample(n), *pt = encode_v1(d, n, &plen);
	struct tw_pgarch_hdr h;
	assert_int_equal(tw_pgarch_parse(pt, plen, &h), 0);
	assert_true(h.version == 1 && h.codec == 1 && h.sha256 == pt + 16);
	assert_false(h.body[4] & 0x04); /* the old frames have no checksum */
	assert_int_equal(decodes_to(pt, plen, d, n), 0);
	/* its SHA-256 is still checked */
	pt[20] ^= 1;
	assert_int_equal(decodes_to(pt, plen, d, n), TW_ECORRUPT);
	free(pt);
	static const uint8_t few[] = "0123456789";
	pt = encode_v1(few, 10, &plen);
	assert_int_equal(pt[1], 0);
	assert_int_equal(decodes_to(pt, plen, few, 10), 0);
	pt[TW_PGARCH_HDR1 + 3] ^= 1;
	assert_int_equal(decodes_to(pt, plen, few, 10), TW_ECORRUPT);
	free(pt);
	free(d);
}

static void version2_damage(void **state)
{
	(void)state;
	size_t n = 1 << 20, plen;
	uint8_t *d = sample(n), *pt, *bad;
	assert_int_equal(tw_pgarch_encode(d, n, 3, &pt, &plen), 0);
	bad = malloc(plen + 1);
	assert_non_null(bad);
	/* the frame checksum (its last 4 bytes): the decompressor's output is refused */
	memcpy(bad, pt, plen);
	bad[plen - 2] ^= 0x40;
	assert_int_equal(decodes_to(bad, plen, d, n), TW_ECORRUPT);
	/* a byte inside the compressed data: refused either way */
	for (size_t off = TW_PGARCH_HDR2 + 20; off < plen - 4; off += (plen - 40) / 7) {
		memcpy(bad, pt, plen);
		bad[off] ^= 0x01;
		assert_int_not_equal(decodes_to(bad, plen, d, n), 0);
	}
	/* the same frame without its checksum: version 2 requires one */
	memcpy(bad, pt, plen);
	bad[TW_PGARCH_HDR2 + 4] &= (uint8_t)~0x04;
	struct tw_pgarch_hdr h;
	assert_int_equal(tw_pgarch_parse(bad, plen - 4, &h), TW_ECORRUPT);
	assert_int_equal(decodes_to(bad, plen - 4, d, n), TW_ECORRUPT);
	/* header fields */
	struct {
		size_t off;
		uint8_t v;
	} hdr[] = {{0, 0}, {0, 3}, {1, 2}, {2, 1}, {7, 1}, {8, 0xFF}, {15, 0x40}};
	for (size_t i = 0; i < sizeof hdr / sizeof *hdr; i++) {
		memcpy(bad, pt, plen);
		bad[hdr[i].off] = hdr[i].v;
		assert_int_equal(tw_pgarch_parse(bad, plen, &h), TW_ECORRUPT);
		assert_int_equal(decodes_to(bad, plen, d, n), TW_ECORRUPT);
	}
	/* a byte after the frame, a frame cut short, a header cut short */
	memcpy(bad, pt, plen);
	bad[plen] = 0;
	assert_int_equal(decodes_to(bad, plen + 1, d, n), TW_ECORRUPT);
	assert_int_equal(decodes_to(pt, plen - 1, d, n), TW_ECORRUPT);
	assert_int_equal(tw_pgarch_parse(pt, TW_PGARCH_HDR2 - 1, &h), TW_ECORRUPT);
	/* raw: the length must be the header's */
	free(pt);
	static const uint8_t few[] = "0123456789";
	assert_int_equal(tw_pgarch_encode(few, 10, 3, &pt, &plen), 0);
	assert_int_equal(tw_pgarch_parse(pt, plen - 1, &h), TW_ECORRUPT);
	tw_le64_put(pt + 8, 11);
	assert_int_equal(tw_pgarch_parse(pt, plen, &h), TW_ECORRUPT);
	free(pt);
	free(bad);
	free(d);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(version2_round_trip),
	    cmocka_unit_test(version1_still_decodes),
	    cmocka_unit_test(version2_damage),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
