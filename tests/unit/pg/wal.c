/* Unit tests for src/pg/wal.c: LSNs, segment names, WAL file kinds,
 * timeline history files. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include "pg/wal.h"

#define SEG TW_PGWAL_SEG_DEFAULT

static void lsn_roundtrip(void **state)
{
	(void)state;
	uint64_t l;
	char buf[24];
	assert_int_equal(tw_pgwal_lsn_parse("16/B374D848", 11, &l), 0);
	assert_true(l == 0x16B374D848ull);
	tw_pgwal_lsn_str(l, buf, sizeof buf);
	assert_string_equal(buf, "16/B374D848");
	assert_int_equal(tw_pgwal_lsn_parse("0/0", 3, &l), 0);
	assert_true(l == 0);
	assert_int_equal(tw_pgwal_lsn_parse("FFFFFFFF/FFFFFFFF", 17, &l), 0);
	assert_true(l == UINT64_MAX);
	assert_int_equal(tw_pgwal_lsn_parse("0/3000060", 9, &l), 0);
	tw_pgwal_lsn_str(l, buf, sizeof buf);
	assert_string_equal(buf, "0/3000060");
	/* a slice: only the first 3 bytes count */
	assert_int_equal(tw_pgwal_lsn_parse("1/2junk", 3, &l), 0);
	assert_true(l == 0x100000002ull);
}

static void lsn_rejects(void **state)
{
	(void)state;
	uint64_t l;
	const char *bad[] = {"",    "/",    "1/",          "/1",          "123",  "1/2/3",
	                     "G/0", "0/-1", "100000000/0", "0/100000000", " 0/1", "0/1 "};
	for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
		assert_int_equal(tw_pgwal_lsn_parse(bad[i], strlen(bad[i]), &l), TW_EINVAL);
}

static void segment_names(void **state)
{
	(void)state;
	char buf[32];
	uint32_t tli;
	uint64_t segno;
	/* LSN 0/3000060 with 16 MiB segments: segment 3 */
	assert_true(tw_pgwal_segno(0x3000060, SEG) == 3);
	tw_pgwal_seg_name(1, 3, SEG, buf, sizeof buf);
	assert_string_equal(buf, "000000010000000000000003");
	/* 256 segments of 16 MiB per 4 GiB "log" */
	tw_pgwal_seg_name(2, 0x1FF, SEG, buf, sizeof buf);
	assert_string_equal(buf, "0000000200000001000000FF");
	assert_int_equal(tw_pgwal_seg_parse(buf, 24, SEG, &tli, &segno), 0);
	assert_int_equal(tli, 2);
	assert_true(segno == 0x1FF);
	/* 1 GiB segments: 4 per log */
	tw_pgwal_seg_name(1, 5, (uint64_t)1 << 30, buf, sizeof buf);
	assert_string_equal(buf, "000000010000000100000001");
	/* seg field beyond the segments of one log, timeline 0, bad length */
	assert_int_equal(tw_pgwal_seg_parse("000000010000000000000100", 24, SEG, &tli, &segno),
	                 TW_EINVAL);
	assert_int_equal(tw_pgwal_seg_parse("000000000000000000000001", 24, SEG, &tli, &segno),
	                 TW_EINVAL);
	assert_int_equal(tw_pgwal_seg_parse("00000001000000000000001", 23, SEG, &tli, &segno),
	                 TW_EINVAL);
	assert_int_equal(tw_pgwal_seg_parse("00000001000000000000000g", 24, SEG, &tli, &segno),
	                 TW_EINVAL);
}

static void kinds(void **state)
{
	(void)state;
	struct {
		const char *name;
		enum tw_pgwal_kind k;
	} v[] = {
	    {"000000010000000000000003", TW_PGWAL_SEGMENT},
	    {"000000010000000000000003.partial", TW_PGWAL_PARTIAL},
	    {"00000002.history", TW_PGWAL_HISTORY},
	    {"000000010000000000000003.00000028.backup", TW_PGWAL_BACKUP},
	    {"00000001000000000000000", TW_PGWAL_BAD},
	    {"0000000100000000000000030", TW_PGWAL_BAD},
	    {"0000000Z.history", TW_PGWAL_BAD},
	    {"../../etc/passwd", TW_PGWAL_BAD},
	    {"00000002.historx", TW_PGWAL_BAD},
	    {"", TW_PGWAL_BAD},
	};
	for (size_t i = 0; i < sizeof v / sizeof *v; i++)
		assert_int_equal(tw_pgwal_classify(v[i].name, strlen(v[i].name)), v[i].k);
}

static void history(void **state)
{
	(void)state;
	struct tw_pgwal_fork f[4];
	size_t n;
	const char *h = "1\t0/30000A0\tno recovery target specified\n"
	                "\n"
	                "# a comment\n"
	                "2\t0/5000000\tat restore point \"rp\"\n"
	                "5\t1/0\tbefore 2026-12-07 07:37:57.692961+00\n";
	assert_int_equal(tw_pgwal_history_parse((const uint8_t *)h, strlen(h), f, 4, &n), 0);
	assert_int_equal(n, 3);
	assert_int_equal(f[0].tli, 1);
	assert_true(f[0].switch_lsn == 0x30000A0);
	assert_int_equal(f[2].tli, 5);
	assert_true(f[2].switch_lsn == 0x100000000ull);
	/* no trailing newline, CRLF */
	const char *crlf = "1\t0/1\r\n3\t0/2";
	assert_int_equal(tw_pgwal_history_parse((const uint8_t *)crlf, strlen(crlf), f, 4, &n), 0);
	assert_int_equal(n, 2);
	/* empty file: no forks */
	assert_int_equal(tw_pgwal_history_parse((const uint8_t *)"", 0, f, 4, &n), 0);
	assert_int_equal(n, 0);
	/* over the cap */
	assert_int_equal(tw_pgwal_history_parse((const uint8_t *)h, strlen(h), f, 2, &n),
	                 TW_ELIMIT);
	const char *bad[] = {"x\t0/1\n", "0\t0/1\n", "1 0/1\n1\t0/2\n",    "2\t0/1\n1\t0/2\n",
	                     "1\n",      "1\tzz\n",  "99999999999\t0/1\n", "1\t0/1/2\n"};
	for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
		assert_int_equal(
		    tw_pgwal_history_parse((const uint8_t *)bad[i], strlen(bad[i]), f, 4, &n),
		    TW_EINVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(lsn_roundtrip), cmocka_unit_test(lsn_rejects),
	    cmocka_unit_test(segment_names), cmocka_unit_test(kinds),
	    cmocka_unit_test(history),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
