/* Unit tests for src/pg/walrec.c: WAL records read from crafted segments
 * (page headers, records across pages and segments, block references). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include "core/le.h"
#include "core/err.h"
#include "pg/walrec.h"

#define SEG ((size_t)1 << 20)
#define BLK 8192

/* A WAL stream of nseg segments being written, from LSN lsn0. */
struct wb {
	uint8_t *s;
	size_t n, pos;
	uint64_t lsn0;
};

static void wb_init(struct wb *b, size_t nseg, uint64_t lsn0)
{
	b->n = nseg * SEG;
	b->s = calloc(1, b->n);
	assert_non_null(b->s);
	b->pos = 0;
	b->lsn0 = lsn0;
}

static void page_hdr(struct wb *b, uint32_t rem)
{
	uint8_t *p = b->s + b->pos;
	int first = b->pos % SEG == 0;
	tw_le16_put(p, 0xD110);
	tw_le16_put(p + 2, (uint16_t)((first ? 0x0002 : 0) | (rem ? 0x0001 : 0)));
	tw_le32_put(p + 4, 1);
	tw_le64_put(p + 8, b->lsn0 + b->pos);
	tw_le32_put(p + 16, rem);
	if (first) {
		tw_le64_put(p + 24, 7449960134312345678ull);
		tw_le32_put(p + 32, (uint32_t)SEG);
		tw_le32_put(p + 36, BLK);
	}
	b->pos += first ? 40 : 24;
}

static void put_bytes(struct wb *b, const uint8_t *d, size_t len)
{
	size_t i = 0;
	while (i < len) {
		if (b->pos % BLK == 0)
			page_hdr(b, (uint32_t)(len - i));
		size_t room = BLK - b->pos % BLK, k = len - i < room ? len - i : room;
		assert_true(b->pos + k <= b->n);
		memcpy(b->s + b->pos, d + i, k);
		b->pos += k;
		i += k;
	}
}

/* Append a record whose body (after the 24-byte header) is body[0..bl). */
static uint64_t rec(struct wb *b, uint8_t rmid, uint8_t info, const uint8_t *body, size_t bl)
{
	b->pos = (b->pos + 7) & ~(size_t)7;
	if (b->pos % BLK == 0)
		page_hdr(b, 0);
	uint64_t lsn = b->lsn0 + b->pos;
	uint8_t *r = calloc(1, 24 + bl);
	assert_non_null(r);
	tw_le32_put(r, (uint32_t)(24 + bl));
	tw_le32_put(r + 4, 731);
	r[16] = info;
	r[17] = rmid;
	memcpy(r + 24, body, bl);
	put_bytes(b, r, 24 + bl);
	free(r);
	return lsn;
}

static uint64_t restore_point(struct wb *b, const char *name)
{
	uint8_t body[2 + 72] = {255, 72};
	tw_le64_put(body + 2, 818000000123456ull);
	memcpy(body + 10, name, strlen(name));
	return rec(b, 0, 0x70, body, sizeof body);
}

/* A filler record of about len bytes (main data only, DATA_LONG). */
static uint64_t filler(struct wb *b, size_t len)
{
	uint8_t *body = calloc(1, 5 + len);
	assert_non_null(body);
	body[0] = 254;
	tw_le32_put(body + 1, (uint32_t)len);
	memset(body + 5, 0xAB, len);
	uint64_t lsn = rec(b, 10, 0x00, body, 5 + len);
	free(body);
	return lsn;
}

/* A heap-like record: one block reference with a compressed image that has
 * a hole, block data, an origin, and main data. */
static uint64_t with_block(struct wb *b)
{
	uint8_t body[128], *p = body;
	*p++ = 253; /* origin */
	tw_le16_put(p, 7);
	p += 2;
	*p++ = 0;    /* block 0 */
	*p++ = 0x10; /* HAS_IMAGE, not SAME_REL */
	tw_le16_put(p, 10);
	p += 2;
	tw_le16_put(p, 40); /* image length */
	tw_le16_put(p + 2, 100);
	p[4] = 0x01 | 0x04; /* HAS_HOLE | COMPRESS_PGLZ */
	p += 5;
	tw_le16_put(p, 200); /* hole length */
	p += 2;
	memset(p, 1, 12); /* RelFileNode */
	p += 12;
	tw_le32_put(p, 42);
	p += 4;
	*p++ = 255;
	*p++ = 4;
	memset(p, 0xEE, 40 + 10); /* image, block data */
	p += 50;
	memcpy(p, "main", 4);
	p += 4;
	return rec(b, 10, 0x00, body, (size_t)(p - body));
}

struct seen {
	const char *name;
	int nrec, found, big;
	uint64_t lsn, last;
	int64_t t;
	int stop_at_match;
};

static int cb(void *arg, const struct tw_walrec *r)
{
	struct seen *s = arg;
	s->nrec++;
	s->last = r->lsn;
	if (r->main == NULL)
		s->big++;
	if (r->rmid == 10 && r->main_len == 4)
		assert_memory_equal(r->main, "main", 4);
	if (tw_walrec_is_restore_point(r, s->name, &s->t)) {
		s->found++;
		s->lsn = r->lsn;
		return s->stop_at_match;
	}
	return 0;
}

static int read_all(struct wb *b, struct seen *s, struct tw_err *e)
{
	struct tw_walrec_reader rd;
	tw_walrec_init(&rd);
	int rc = 0, stopped = 0;
	for (size_t k = 0; rc == 0 && !stopped && k < b->n / SEG; k++)
		rc = tw_walrec_segment(&rd, b->s + k * SEG, SEG, b->lsn0 + k * SEG, cb, s, &stopped,
		                       e);
	tw_walrec_free(&rd);
	return rc;
}

static void finds_point_in_first_page(void **state)
{
	(void)state;
	struct wb b;
	wb_init(&b, 1, 0x3000000);
	filler(&b, 100);
	uint64_t other = restore_point(&b, "other");
	uint64_t at = restore_point(&b, "rp1");
	struct seen s = {.name = "rp1"};
	struct tw_err e = {0};
	assert_int_equal(read_all(&b, &s, &e), 0);
	assert_int_equal(s.nrec, 3);
	assert_int_equal(s.found, 1);
	assert_true(at == 0x3000000 + 280); /* 40 + 129 -> 176 + 98 -> 280 */
	assert_true(s.lsn == at && other < at);
	assert_true(s.t == 818000000123456ll);
	/* a prefix of the name, or the name with more, does not match */
	struct seen p = {.name = "rp"}, q = {.name = "rp12"};
	assert_int_equal(read_all(&b, &p, &e), 0);
	assert_int_equal(read_all(&b, &q, &e), 0);
	assert_int_equal(p.found + q.found, 0);
	free(b.s);
}

static void crosses_pages_and_skips_blocks(void **state)
{
	(void)state;
	struct wb b;
	wb_init(&b, 1, 0x5000000);
	with_block(&b);
	/* the restore point's header straddles the first page boundary */
	size_t f = (b.pos + 7) & ~(size_t)7;
	filler(&b, BLK - 16 - f - 29);
	uint64_t at = restore_point(&b, "crossing");
	assert_true(at == 0x5000000 + BLK - 16);
	/* a record larger than what the reader keeps, over several pages */
	filler(&b, TW_WALREC_KEEP + 3 * BLK);
	uint64_t at2 = restore_point(&b, "after-big");
	struct seen s = {.name = "crossing"}, s2 = {.name = "after-big"};
	struct tw_err e = {0};
	assert_int_equal(read_all(&b, &s, &e), 0);
	assert_int_equal(s.found, 1);
	assert_true(s.lsn == at);
	assert_int_equal(s.big, 1);
	assert_int_equal(s.nrec, 5);
	assert_int_equal(read_all(&b, &s2, &e), 0);
	assert_true(s2.found == 1 && s2.lsn == at2);
	free(b.s);
}

static void crosses_segments(void **state)
{
	(void)state;
	struct wb b;
	wb_init(&b, 2, 0x7000000);
	while (b.pos < SEG - BLK + 100)
		filler(&b, 1000);
	size_t f = (b.pos + 7) & ~(size_t)7;
	filler(&b, SEG - 40 - f - 29);
	uint64_t at = restore_point(&b, "spans"); /* 40 bytes here, 58 in the next segment */
	assert_true(at == 0x7000000 + SEG - 40);
	struct seen s = {.name = "spans", .stop_at_match = 1};
	struct tw_err e = {0};
	assert_int_equal(read_all(&b, &s, &e), 0);
	assert_int_equal(s.found, 1);
	assert_true(s.lsn == at);
	/* the second segment alone: the tail is skipped, nothing found */
	struct tw_walrec_reader rd;
	tw_walrec_init(&rd);
	struct seen t = {.name = "spans"};
	int stopped;
	assert_int_equal(
	    tw_walrec_segment(&rd, b.s + SEG, SEG, 0x7000000 + SEG, cb, &t, &stopped, &e), 0);
	assert_int_equal(t.found, 0);
	tw_walrec_free(&rd);
	free(b.s);
}

static void rejects_bad_bytes(void **state)
{
	(void)state;
	struct wb b;
	wb_init(&b, 1, 0x3000000);
	filler(&b, 3 * BLK);
	restore_point(&b, "x");
	struct seen s = {.name = "x"};
	struct tw_err e = {0};
	/* wrong segment address, short segment */
	struct tw_walrec_reader rd;
	tw_walrec_init(&rd);
	int stopped;
	assert_int_not_equal(tw_walrec_segment(&rd, b.s, SEG, 0x4000000, cb, &s, &stopped, &e), 0);
	assert_int_not_equal(
	    tw_walrec_segment(&rd, b.s, SEG - BLK, 0x3000000, cb, &s, &stopped, &e), 0);
	tw_walrec_free(&rd);
	/* a page header naming another address */
	uint8_t save[8];
	memcpy(save, b.s + 2 * BLK + 8, 8);
	tw_le64_put(b.s + 2 * BLK + 8, 0x9000000);
	assert_int_equal(read_all(&b, &s, &e), TW_ECORRUPT);
	assert_non_null(strstr(e.msg, "bad page header"));
	memcpy(b.s + 2 * BLK + 8, save, 8);
	/* a continuation length that does not fit the record */
	memcpy(save, b.s + BLK + 16, 4);
	tw_le32_put(b.s + BLK + 16, 5);
	assert_int_equal(read_all(&b, &s, &e), TW_ECORRUPT);
	assert_non_null(strstr(e.msg, "continues 5 bytes"));
	memcpy(b.s + BLK + 16, save, 4);
	assert_int_equal(read_all(&b, &s, &e), 0);
	assert_int_equal(s.found, 1);
	/* a record length below the header size */
	tw_le32_put(b.s + 40, 5);
	assert_int_equal(read_all(&b, &s, &e), TW_ECORRUPT);
	free(b.s);
	/* a bad block id, and block headers longer than the record */
	wb_init(&b, 1, 0x3000000);
	uint8_t body[8] = {99, 0, 0, 0, 0, 0, 0, 0};
	rec(&b, 10, 0, body, sizeof body);
	assert_int_equal(read_all(&b, &s, &e), TW_ECORRUPT);
	assert_non_null(strstr(e.msg, "bad block id"));
	body[0] = 3; /* block 3: 3 header bytes, then a RelFileNode that is not there */
	memcpy(b.s + 40, (uint8_t[4]){32, 0, 0, 0}, 4);
	memcpy(b.s + 40 + 24, body, sizeof body);
	assert_int_equal(read_all(&b, &s, &e), TW_ECORRUPT);
	/* main data longer than the record */
	uint8_t lng[8] = {254, 0xff, 0xff, 0, 0, 0, 0, 0};
	memcpy(b.s + 40 + 24, lng, sizeof lng);
	assert_int_equal(read_all(&b, &s, &e), TW_ECORRUPT);
	free(b.s);
}

static void end_of_records(void **state)
{
	(void)state;
	struct wb b;
	wb_init(&b, 1, 0x3000000);
	filler(&b, 100);
	/* zeros after the last record: reading stops there */
	struct seen s = {.name = "x"};
	struct tw_err e = {0};
	assert_int_equal(read_all(&b, &s, &e), 0);
	assert_int_equal(s.nrec, 1);
	free(b.s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(finds_point_in_first_page),
	    cmocka_unit_test(crosses_pages_and_skips_blocks),
	    cmocka_unit_test(crosses_segments),
	    cmocka_unit_test(rejects_bad_bytes),
	    cmocka_unit_test(end_of_records),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
