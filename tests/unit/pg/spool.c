/* Unit tests for src/pg/spool.c: when archive-get uses the prefetch spool,
 * that it serves a segment only under its own name and only while its bytes
 * still hash to what the prefetcher checked, never waits on a marker no
 * prefetcher holds, never serves a spool written before the last boot (its
 * files are not fsynced), and that spool-clear removes everything. The
 * prefetcher itself (a forked process reading a repository) is driven by
 * tests/e2e/pg/test_pitr_prefetch.py. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "backup/crypto.h"
#include "pg/spool.h"

static char root[256];

static void put(const char *rel, const char *text)
{
	char p[512];
	snprintf(p, sizeof p, "%s/%s", root, rel);
	FILE *f = fopen(p, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
}

/* A spool segment as the prefetcher leaves it: its .sum- file (the SHA-256
 * of sum_of) first, then the file with text. */
static void put_seg(const char *name, const char *text, const char *sum_of)
{
	uint8_t h[32];
	char p[512];
	tw_crypto_sha256(sum_of, strlen(sum_of), h);
	snprintf(p, sizeof p, "%s/pg_wal/tapwork-spool/.sum-%s", root, name);
	FILE *f = fopen(p, "w");
	assert_non_null(f);
	assert_int_equal(fwrite(h, 1, sizeof h, f), sizeof h);
	fclose(f);
	snprintf(p, sizeof p, "pg_wal/tapwork-spool/%s", name);
	put(p, text);
}

static int exists(const char *rel)
{
	char p[512];
	snprintf(p, sizeof p, "%s/%s", root, rel);
	return access(p, F_OK) == 0;
}

/* The spool's boot file: this boot's id (what a prefetcher writes). */
static void put_this_boot(void)
{
	char id[64] = "";
	FILE *f = fopen("/proc/sys/kernel/random/boot_id", "r");
	assert_non_null(f);
	assert_non_null(fgets(id, sizeof id, f));
	fclose(f);
	id[strcspn(id, "\n")] = '\0';
	put("pg_wal/tapwork-spool/boot", id);
}

static int setup(void **state)
{
	(void)state;
	snprintf(root, sizeof root, "/tmp/tw-spool-unit-XXXXXX");
	assert_non_null(mkdtemp(root));
	char p[512];
	snprintf(p, sizeof p, "%s/pg_wal", root);
	assert_int_equal(mkdir(p, 0700), 0);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	struct tw_err e = {0};
	tw_pgspool_clear(root, &e);
	char p[600];
	snprintf(p, sizeof p, "rm -rf '%s'", root);
	return system(p) == 0 ? 0 : -1;
}

#define SEG5 "000000010000000000000005"
#define SEG5_TL2 "000000020000000000000005"

static void off_unless_recovery_and_segment(void **state)
{
	(void)state;
	struct tw_pgspool sp;
	tw_pgspool_open(&sp, root, 1, SEG5, 8); /* no recovery.signal */
	assert_int_equal(sp.dfd, -1);
	assert_false(exists("pg_wal/tapwork-spool"));
	put("recovery.signal", "");
	tw_pgspool_open(&sp, root, 1, "00000002.history", 8);
	assert_int_equal(sp.dfd, -1);
	tw_pgspool_open(&sp, root, 1, SEG5 ".partial", 8);
	assert_int_equal(sp.dfd, -1);
	tw_pgspool_open(&sp, root, 1, SEG5, 0); /* --prefetch 0 */
	assert_int_equal(sp.dfd, -1);
	tw_pgspool_open(&sp, root, 1, SEG5, 8);
	assert_int_not_equal(sp.dfd, -1);
	assert_true(exists("pg_wal/tapwork-spool"));
	tw_pgspool_close(&sp);
}

static void served_only_under_its_own_name(void **state)
{
	(void)state;
	put("recovery.signal", "");
	struct tw_pgspool sp;
	tw_pgspool_open(&sp, root, 1, SEG5_TL2, 8);
	assert_int_not_equal(sp.dfd, -1);
	/* timeline 1's segment 5 is there: timeline 2's request does not take it */
	put_seg(SEG5, "tl1", "tl1");
	char dest[512];
	snprintf(dest, sizeof dest, "%s/pg_wal/RECOVERYXLOG", root);
	assert_int_equal(tw_pgspool_take(&sp, SEG5_TL2, dest), 0);
	assert_false(exists("pg_wal/RECOVERYXLOG"));
	/* a marker without a prefetcher holding the lock: no wait */
	put("pg_wal/tapwork-spool/.want-" SEG5_TL2, "");
	struct timespec t0, t1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	assert_int_equal(tw_pgspool_take(&sp, SEG5_TL2, dest), 0);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	assert_true(t1.tv_sec - t0.tv_sec < 2);
	tw_pgspool_close(&sp);
	/* timeline 1's own request takes it, by a rename */
	tw_pgspool_open(&sp, root, 1, SEG5, 8);
	put_this_boot();
	assert_int_equal(tw_pgspool_take(&sp, SEG5, dest), 1);
	assert_true(exists("pg_wal/RECOVERYXLOG"));
	assert_false(exists("pg_wal/tapwork-spool/" SEG5));
	tw_pgspool_close(&sp);
}

static void another_boots_spool_is_not_served(void **state)
{
	(void)state;
	put("recovery.signal", "");
	struct tw_pgspool sp;
	tw_pgspool_open(&sp, root, 1, SEG5, 8);
	assert_int_not_equal(sp.dfd, -1);
	put_seg(SEG5, "written before a crash", "written before a crash");
	char dest[512];
	snprintf(dest, sizeof dest, "%s/pg_wal/RECOVERYXLOG", root);
	/* no boot file, then another boot's: fetched directly, file left */
	assert_int_equal(tw_pgspool_take(&sp, SEG5, dest), 0);
	put("pg_wal/tapwork-spool/boot", "00000000-0000-0000-0000-000000000000");
	assert_int_equal(tw_pgspool_take(&sp, SEG5, dest), 0);
	assert_false(exists("pg_wal/RECOVERYXLOG"));
	assert_true(exists("pg_wal/tapwork-spool/" SEG5));
	/* this boot's: served */
	put_this_boot();
	assert_int_equal(tw_pgspool_take(&sp, SEG5, dest), 1);
	assert_true(exists("pg_wal/RECOVERYXLOG"));
	tw_pgspool_close(&sp);
}

static void served_only_when_its_bytes_match_their_hash(void **state)
{
	(void)state;
	put("recovery.signal", "");
	struct tw_pgspool sp;
	tw_pgspool_open(&sp, root, 1, SEG5, 8);
	assert_int_not_equal(sp.dfd, -1);
	put_this_boot();
	char dest[512];
	snprintf(dest, sizeof dest, "%s/pg_wal/RECOVERYXLOG", root);
	/* bytes that changed after the prefetcher checked them (a writeback
	 * error): not served, and the damaged file and its sum are gone */
	put_seg(SEG5, "zeroes where WAL was", "the WAL the repository held");
	assert_int_equal(tw_pgspool_take(&sp, SEG5, dest), 0);
	assert_false(exists("pg_wal/RECOVERYXLOG"));
	assert_false(exists("pg_wal/tapwork-spool/" SEG5));
	assert_false(exists("pg_wal/tapwork-spool/.sum-" SEG5));
	/* a file without its sum: not served either */
	put("pg_wal/tapwork-spool/" SEG5, "no sum");
	assert_int_equal(tw_pgspool_take(&sp, SEG5, dest), 0);
	assert_false(exists("pg_wal/RECOVERYXLOG"));
	/* intact: served, and its sum goes with it */
	put_seg(SEG5, "the WAL the repository held", "the WAL the repository held");
	assert_int_equal(tw_pgspool_take(&sp, SEG5, dest), 1);
	assert_true(exists("pg_wal/RECOVERYXLOG"));
	assert_false(exists("pg_wal/tapwork-spool/.sum-" SEG5));
	tw_pgspool_close(&sp);
}

static void clear_removes_everything(void **state)
{
	(void)state;
	put("recovery.signal", "");
	struct tw_pgspool sp;
	tw_pgspool_open(&sp, root, 1, SEG5, 8);
	tw_pgspool_close(&sp);
	put("pg_wal/tapwork-spool/" SEG5, "x");
	put("pg_wal/tapwork-spool/.tmp-" SEG5, "x");
	put("pg_wal/tapwork-spool/.want-" SEG5, "");
	struct tw_err e = {0};
	assert_int_equal(tw_pgspool_clear(root, &e), 0);
	assert_false(exists("pg_wal/tapwork-spool"));
	/* nothing to clear is fine too */
	assert_int_equal(tw_pgspool_clear(root, &e), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(off_unless_recovery_and_segment, setup, teardown),
	    cmocka_unit_test_setup_teardown(served_only_under_its_own_name, setup, teardown),
	    cmocka_unit_test_setup_teardown(another_boots_spool_is_not_served, setup, teardown),
	    cmocka_unit_test_setup_teardown(served_only_when_its_bytes_match_their_hash, setup, teardown),
	    cmocka_unit_test_setup_teardown(clear_removes_everything, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
