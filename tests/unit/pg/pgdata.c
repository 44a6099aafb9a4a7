/* Unit tests for src/pg/pgdata.c: what a physical backup leaves out. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include "backup/pack.h"
#include "pg/pgdata.h"

static int skipped_rel(const char *rel)
{
	return tw_pgdata_skip(rel, strlen(rel));
}

static void kept(void **state)
{
	(void)state;
	const char *v[] = {"base",
	                   "base/1/1259",
	                   "base/16384/16385_fsm",
	                   "global/pg_control",
	                   "pg_xact/0000",
	                   "PG_VERSION",
	                   "postgresql.auto.conf",
	                   "pg_hba.conf",
	                   "pg_wal",
	                   "pg_replslot",
	                   "pg_stat_tmp",
	                   "pg_subtrans",
	                   "pg_notify",
	                   "pg_serial",
	                   "pg_snapshots",
	                   "pg_dynshmem",
	                   "pg_stat/pgstat.stat",
	                   "pg_tblspc",
	                   "pg_multixact/offsets/0000",
	                   "pg_logical/snapshots",
	                   "base/1/backup_label",
	                   "pg_walx/000000010000000000000001",
	                   "pg_wal_archive",
	                   "postmaster.pidx"};
	for (size_t i = 0; i < sizeof v / sizeof *v; i++)
		assert_int_equal(skipped_rel(v[i]), 0);
}

static void skipped(void **state)
{
	(void)state;
	const char *v[] = {"postmaster.pid",
	                   "postmaster.opts",
	                   "backup_label",
	                   "tablespace_map",
	                   "recovery.signal",
	                   "standby.signal",
	                   "backup_label.old",
	                   "pg_wal/000000010000000000000001",
	                   "pg_wal/archive_status",
	                   "pg_wal/archive_status/000000010000000000000001.done",
	                   "pg_replslot/slot1/state",
	                   "pg_stat_tmp/global.stat",
	                   "pg_subtrans/0000",
	                   "pg_notify/0000",
	                   "pg_serial/0000",
	                   "pg_snapshots/00000003-00000002-1",
	                   "pg_dynshmem/mmap.1",
	                   "base/pgsql_tmp",
	                   "base/pgsql_tmp/pgsql_tmp1234.0",
	                   "base/16384/pgsql_tmp_x",
	                   "base/16384/pg_internal.init",
	                   "global/pg_internal.init"};
	for (size_t i = 0; i < sizeof v / sizeof *v; i++)
		assert_int_equal(skipped_rel(v[i]), 1);
}

static void chunk_is_page_aligned(void **state)
{
	(void)state;
	assert_int_equal(TW_PGDATA_CHUNK % TW_PGDATA_PAGE, 0);
}

static void init_forks(void **state)
{
	(void)state;
	char b[32];
	struct {
		const char *name, *init;
	} v[] = {{"16385", "16385_init"},
	         {"16385.1", "16385_init"},
	         {"16385_fsm", "16385_init"},
	         {"16385_vm.12", "16385_init"},
	         {"1259", "1259_init"},
	         {"16385_init", NULL},
	         {"16385_init.1", NULL},
	         {"PG_VERSION", NULL},
	         {"pg_filenode.map", NULL},
	         {"16385_xyz", NULL},
	         {"16385.", NULL},
	         {"16385.a", NULL},
	         {"16385a", NULL},
	         {"", NULL},
	         {"pg_internal.init", NULL},
	         {"12345678901", NULL}};
	for (size_t i = 0; i < sizeof v / sizeof *v; i++) {
		int r = tw_pgdata_init_fork(v[i].name, strlen(v[i].name), b, sizeof b);
		assert_int_equal(r, v[i].init != NULL);
		if (r)
			assert_string_equal(b, v[i].init);
	}
}

/* an 8 KiB page header: lower, upper, special, pagesize|version */
static void page(unsigned char *p, unsigned lower, unsigned upper, unsigned special, unsigned sv)
{
	memset(p, 0, TW_PGDATA_PAGE);
	p[12] = (unsigned char)lower, p[13] = (unsigned char)(lower >> 8);
	p[14] = (unsigned char)upper, p[15] = (unsigned char)(upper >> 8);
	p[16] = (unsigned char)special, p[17] = (unsigned char)(special >> 8);
	p[18] = (unsigned char)sv, p[19] = (unsigned char)(sv >> 8);
}

static void zprofile(void **state)
{
	(void)state;
	static unsigned char u[TW_PGDATA_CHUNK];
	const unsigned sv = TW_PGDATA_PAGE | 4;
	/* all zero (new pages, or no relation file): the default */
	memset(u, 0, sizeof u);
	assert_int_equal(tw_pgdata_zprofile(u, sizeof u), TW_ZP_DEFAULT);
	assert_int_equal(tw_pgdata_zprofile(u, 100), TW_ZP_DEFAULT); /* shorter than a page */
	/* heap pages: no special space */
	for (unsigned i = 0; i < 8; i++)
		page(u + i * TW_PGDATA_PAGE, 400, 500, TW_PGDATA_PAGE, sv);
	assert_int_equal(tw_pgdata_zprofile(u, sizeof u), TW_ZP_DEFAULT);
	/* btree pages: 16 bytes of special space */
	for (unsigned i = 0; i < 8; i++)
		page(u + i * TW_PGDATA_PAGE, 400, 500, TW_PGDATA_PAGE - 16, sv);
	assert_int_equal(tw_pgdata_zprofile(u, sizeof u), TW_ZP_SORTED);
	/* a btree meta page and zero pages after it (a just-created index) */
	memset(u + TW_PGDATA_PAGE, 0, sizeof u - TW_PGDATA_PAGE);
	assert_int_equal(tw_pgdata_zprofile(u, sizeof u), TW_ZP_SORTED);
	/* the majority decides; a tie is heap */
	for (unsigned i = 0; i < 4; i++)
		page(u + i * TW_PGDATA_PAGE, 400, 500, TW_PGDATA_PAGE, sv);
	for (unsigned i = 4; i < 8; i++)
		page(u + i * TW_PGDATA_PAGE, 400, 500, TW_PGDATA_PAGE - 16, sv);
	assert_int_equal(tw_pgdata_zprofile(u, sizeof u), TW_ZP_DEFAULT);
	page(u + 3 * TW_PGDATA_PAGE, 400, 500, TW_PGDATA_PAGE - 64, sv);
	assert_int_equal(tw_pgdata_zprofile(u, sizeof u), TW_ZP_SORTED);
	/* headers that are no page: wrong size/version, lower > upper,
	 * special beyond the page: not counted */
	page(u, 400, 500, TW_PGDATA_PAGE, 4096 | 4);
	page(u + TW_PGDATA_PAGE, 600, 500, TW_PGDATA_PAGE, sv);
	page(u + 2 * TW_PGDATA_PAGE, 400, 500, TW_PGDATA_PAGE + 8, sv);
	page(u + 3 * TW_PGDATA_PAGE, 10, 500, TW_PGDATA_PAGE, sv);
	assert_int_equal(tw_pgdata_zprofile(u, sizeof u), TW_ZP_SORTED);
	/* a partial trailing page is not looked at */
	assert_int_equal(tw_pgdata_zprofile(u, 4 * TW_PGDATA_PAGE + 100), TW_ZP_DEFAULT);
	assert_int_equal(tw_pgdata_zprofile(u + 4 * TW_PGDATA_PAGE, 4 * TW_PGDATA_PAGE), TW_ZP_SORTED);
}

int main(void)
{
	const struct CMUnitTest tests[] = {cmocka_unit_test(kept), cmocka_unit_test(skipped),
	                                   cmocka_unit_test(chunk_is_page_aligned),
	                                   cmocka_unit_test(init_forks), cmocka_unit_test(zprofile)};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
