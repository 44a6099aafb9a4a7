/* Unit tests for src/pg/walhdr.c: WAL long page headers, cluster
 * registrations and the check archive-push makes with them. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include "core/le.h"
#include "core/err.h"
#include "pg/walhdr.h"

/* The first page header of segment 0/3000000 of a PostgreSQL 15 cluster. */
static void sample(uint8_t *p)
{
	memset(p, 0, 64);
	tw_le16_put(p, 0xD110);
	tw_le16_put(p + 2, 0x0002 | 0x0004); /* XLP_LONG_HEADER | XLP_BKP_REMOVABLE */
	tw_le32_put(p + 4, 1);
	tw_le64_put(p + 8, 0x3000000);
	tw_le32_put(p + 16, 0);
	tw_le64_put(p + 24, 7449960134312345678ull);
	tw_le32_put(p + 32, 16u << 20);
	tw_le32_put(p + 36, 8192);
}

static void parse(void **state)
{
	(void)state;
	uint8_t p[64];
	struct tw_pgwalhdr h;
	struct tw_err e = {0};
	sample(p);
	assert_int_equal(tw_pgwalhdr_parse(p, sizeof p, &h, &e), 0);
	assert_int_equal(h.magic, 0xD110);
	assert_int_equal(h.tli, 1);
	assert_true(h.pageaddr == 0x3000000);
	assert_true(h.sysid == 7449960134312345678ull);
	assert_int_equal(h.seg_size, 16u << 20);
	assert_int_equal(h.blcksz, 8192);
	assert_int_equal(tw_pgwalhdr_parse(p, TW_PGWALHDR_LEN, &h, &e), 0);
	assert_int_equal(tw_pgwalhdr_parse(p, TW_PGWALHDR_LEN - 1, &h, &e), TW_EINVAL);
	/* each field out of range */
	struct {
		size_t off;
		int width;
		uint64_t v;
	} bad[] = {{2, 16, 0x0001},    {2, 16, 0x0012}, {32, 32, 3u << 20},
	           {32, 32, 1u << 19}, {36, 32, 100},   {36, 32, 1 << 17},
	           {8, 64, 0x3000001}, {24, 64, 0},     {4, 32, 0}};
	for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
		sample(p);
		if (bad[i].width == 16)
			tw_le16_put(p + bad[i].off, (uint16_t)bad[i].v);
		else if (bad[i].width == 32)
			tw_le32_put(p + bad[i].off, (uint32_t)bad[i].v);
		else
			tw_le64_put(p + bad[i].off, bad[i].v);
		assert_int_equal(tw_pgwalhdr_parse(p, sizeof p, &h, &e), TW_EINVAL);
		assert_true(e.msg[0] != '\0');
	}
}

static void versions(void **state)
{
	(void)state;
	assert_int_equal(tw_pgwalhdr_magic(150018), 0xD110);
	assert_int_equal(tw_pgwalhdr_magic(160004), 0xD113);
	assert_int_equal(tw_pgwalhdr_magic(120000), 0);
	assert_int_equal(tw_pgwalhdr_major(0xD110), 15);
	assert_int_equal(tw_pgwalhdr_major(0xD10D), 14);
	assert_int_equal(tw_pgwalhdr_major(0x1234), 0);
}

static void registration(void **state)
{
	(void)state;
	struct tw_pgreg g = {18446744073709551615ull, 0xD110, 16u << 20}, back;
	char *txt;
	struct tw_err e = {0};
	assert_int_equal(tw_pgreg_encode(&g, &txt), 0);
	assert_non_null(strstr(txt, "\"system_id\":\"18446744073709551615\""));
	assert_non_null(strstr(txt, "\"pg_major\":15"));
	assert_int_equal(tw_pgreg_decode((const uint8_t *)txt, strlen(txt), &back, &e), 0);
	assert_true(back.sysid == g.sysid && back.magic == g.magic && back.seg_size == g.seg_size);
	free(txt);
	const char *bad[] = {
	    "",
	    "{}",
	    "[1]",
	    "{\"version\":2,\"system_id\":\"1\",\"xlog_page_magic\":1,\"wal_segment_size\":"
	    "1048576}",
	    "{\"version\":1,\"system_id\":\"0\",\"xlog_page_magic\":1,\"wal_segment_size\":"
	    "1048576}",
	    "{\"version\":1,\"system_id\":\"-1\",\"xlog_page_magic\":1,\"wal_segment_size\":"
	    "1048576}",
	    "{\"version\":1,\"system_id\":\"99999999999999999999\",\"xlog_page_magic\":1,"
	    "\"wal_segment_size\":1048576}",
	    "{\"version\":1,\"system_id\":\"1x\",\"xlog_page_magic\":1,\"wal_segment_size\":"
	    "1048576}",
	    "{\"version\":1,\"system_id\":\"1\",\"xlog_page_magic\":65536,\"wal_segment_size\":"
	    "1048576}",
	    "{\"version\":1,\"system_id\":\"1\",\"xlog_page_magic\":1,\"wal_segment_size\":"
	    "1048577}",
	    "{\"version\":1,\"system_id\":\"1\",\"system_id\":\"2\",\"xlog_page_magic\":1,"
	    "\"wal_segment_size\":1048576}",
	};
	for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
		assert_int_equal(
		    tw_pgreg_decode((const uint8_t *)bad[i], strlen(bad[i]), &back, &e),
		    TW_ECORRUPT);
}

static void check(void **state)
{
	(void)state;
	uint8_t p[64];
	struct tw_pgwalhdr h;
	struct tw_err e = {0};
	sample(p);
	assert_int_equal(tw_pgwalhdr_parse(p, sizeof p, &h, &e), 0);
	struct tw_pgreg g = {h.sysid, 0xD110, 16u << 20};
	assert_int_equal(tw_pgreg_check(&g, &h, "000000010000000000000003", &e), 0);
	g.sysid = 42;
	assert_int_equal(tw_pgreg_check(&g, &h, "000000010000000000000003", &e), TW_EINVAL);
	assert_non_null(strstr(e.msg, "7449960134312345678"));
	assert_non_null(strstr(e.msg, " 42 "));
	assert_non_null(strstr(e.msg, "another cluster"));
	g.sysid = h.sysid;
	g.magic = 0xD113;
	assert_int_equal(tw_pgreg_check(&g, &h, "000000010000000000000003", &e), TW_EINVAL);
	assert_non_null(strstr(e.msg, "PostgreSQL 15"));
	assert_non_null(strstr(e.msg, "PostgreSQL 16"));
	g.magic = 0xD110;
	g.seg_size = 64u << 20;
	assert_int_equal(tw_pgreg_check(&g, &h, "000000010000000000000003", &e), TW_EINVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(parse),
	    cmocka_unit_test(versions),
	    cmocka_unit_test(registration),
	    cmocka_unit_test(check),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
