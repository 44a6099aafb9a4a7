/* Unit tests for src/pg/checksum.c: PostgreSQL page checksums and which
 * files carry them. The algorithm was checked against every page of an
 * `initdb -k` cluster (tests/e2e/pg/test_pitr_more.py backs one up and
 * expects no damage but the page it corrupts); here its values are pinned. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include "pg/checksum.h"

static uint8_t page[TW_PGCK_PAGE + 1];

static void fill(uint8_t *p)
{
	for (unsigned i = 0; i < TW_PGCK_PAGE; i++)
		p[i] = (uint8_t)(i * 7 + 3);
	memset(p, 0, 4); /* pd_lsn = 0/(something) */
}

static void values(void **state)
{
	(void)state;
	fill(page);
	assert_int_equal(tw_pgck_page(page, 0), 39931);
	assert_int_equal(tw_pgck_page(page, 1), 39930);
	assert_int_equal(tw_pgck_page(page, TW_PGCK_SEG_PAGES + 5), 39928);
	/* the stored checksum itself does not count */
	page[8] ^= 0xFF;
	page[9] ^= 0x0F;
	assert_int_equal(tw_pgck_page(page, 0), 39931);
	/* any other bit does */
	page[100] ^= 1;
	assert_int_not_equal(tw_pgck_page(page, 0), 39931);
	/* no alignment needed */
	fill(page + 1);
	assert_int_equal(tw_pgck_page(page + 1, 0), 39931);
}

static void verify(void **state)
{
	(void)state;
	uint16_t s, c;
	fill(page);
	uint16_t sum = tw_pgck_page(page, 7);
	page[8] = (uint8_t)sum;
	page[9] = (uint8_t)(sum >> 8);
	assert_int_equal(tw_pgck_verify(page, 7, UINT64_MAX, &s, &c), TW_PGCK_OK);
	assert_int_equal(s, sum);
	assert_int_equal(tw_pgck_verify(page, 8, UINT64_MAX, &s, &c), TW_PGCK_BAD);
	assert_int_equal(c, tw_pgck_page(page, 8));
	page[4000] ^= 0x40;
	assert_int_equal(tw_pgck_verify(page, 7, UINT64_MAX, &s, &c), TW_PGCK_BAD);
	/* written after the backup started: WAL replay rewrites it, not checked */
	page[0] = 1; /* pd_lsn = 1/... */
	assert_int_equal(tw_pgck_verify(page, 7, (uint64_t)1 << 32, &s, &c), TW_PGCK_LATER);
	assert_int_equal(tw_pgck_verify(page, 7, (uint64_t)2 << 32, &s, &c), TW_PGCK_BAD);
	memset(page, 0, TW_PGCK_PAGE);
	assert_int_equal(tw_pgck_verify(page, 7, UINT64_MAX, &s, &c), TW_PGCK_NEW);
}

static void relfiles(void **state)
{
	(void)state;
	struct {
		const char *rel;
		int ok;
		uint32_t seg;
	} v[] = {
	    {"base/5/16384", 1, 0},
	    {"base/5/16384.3", 1, 3},
	    {"base/5/16384_fsm", 1, 0},
	    {"base/5/16384_vm.1", 1, 1},
	    {"base/5/16384_init", 1, 0},
	    {"global/1260", 1, 0},
	    {"pg_tblspc/16390/PG_15_202209061/5/16391", 1, 0},
	    {"pg_tblspc/16390/PG_15_202209061/5/16391.2", 1, 2},
	    {"global/pg_control", 0, 0},
	    {"global/pg_filenode.map", 0, 0},
	    {"base/5/PG_VERSION", 0, 0},
	    {"base/5/pg_filenode.map", 0, 0},
	    {"base/5/16384_foo", 0, 0},
	    {"base/5/16384.", 0, 0},
	    {"base/5/16384.0", 0, 0},
	    {"base/5/16384.x", 0, 0},
	    {"base/5/t3_16384", 0, 0},
	    {"base/x/16384", 0, 0},
	    {"base/5/6/16384", 0, 0},
	    {"pg_xact/0000", 0, 0},
	    {"base/16384", 0, 0},
	    {"16384", 0, 0},
	    {"pg_tblspc/16390/15/5/16391", 0, 0},
	    {"pg_tblspc/16390/PG_15_202209061/5/16391/x", 0, 0},
	    {"base/5/16384.99999", 0, 0},
	    {"base/5/", 0, 0},
	    {"", 0, 0},
	};
	for (size_t i = 0; i < sizeof v / sizeof *v; i++) {
		uint32_t seg = 99;
		int ok = tw_pgck_relfile(v[i].rel, strlen(v[i].rel), &seg);
		if (ok != v[i].ok)
			fail_msg("%s: %d", v[i].rel, ok);
		if (ok)
			assert_int_equal(seg, v[i].seg);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(values),
	    cmocka_unit_test(verify),
	    cmocka_unit_test(relfiles),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
