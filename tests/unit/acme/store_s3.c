/* Unit tests for src/acme/store_s3.c run over the local storage driver
 * (same conditional-put semantics as S3): key escaping round trip, list of
 * names below a prefix, lease locks (busy, expired -> taken over, unlock
 * removes only its own lock, a conditional put that was not atomic). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "acme/store.h"
#include "storage/storage.h"
#include "../storage/passthru.h"

static char dir[256];
static struct tw_acme_store *st;
static struct tw_storage *raw; /* a second handle on the same directory */

static int setup(void **state)
{
	(void)state;
	snprintf(dir, sizeof dir, "/tmp/tw-acme-s3store-XXXXXX");
	if (mkdtemp(dir) == NULL)
		return -1;
	struct tw_storage *s = NULL;
	struct tw_err e = {0};
	if (tw_storage_local_open(dir, 1, &s, &e) < 0 || tw_acme_store_over(s, &st, &e) < 0)
		return -1;
	return tw_storage_local_open(dir, 0, &raw, &e);
}

static int teardown(void **state)
{
	(void)state;
	char cmd[300];
	tw_acme_store_free(st);
	tw_storage_close(raw);
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
	return system(cmd) == 0 ? 0 : -1;
}

static int collect(void *ud, const char *name)
{
	char *acc = ud;
	strncat(acc, name, 200);
	strncat(acc, ";", 2);
	return 0;
}

static void values_and_list(void **state)
{
	(void)state;
	struct tw_dbuf b;
	tw_dbuf_init(&b, 4096);
	assert_int_equal(tw_acme_store_get(st, "certs/_.ex_ample.com/chain.pem", &b, NULL), TW_ENOENT);
	assert_int_equal(tw_acme_store_put(st, "certs/_.ex_ample.com/chain.pem", "C1", 2, 0, NULL), 0);
	assert_int_equal(tw_acme_store_put(st, "certs/_.ex_ample.com/key.pem", "K", 1, 1, NULL), 0);
	assert_int_equal(tw_acme_store_put(st, "certs/b.example/chain.pem", "C2", 2, 0, NULL), 0);
	assert_int_equal(tw_acme_store_put(st, "accounts/x/key.pem", "A", 1, 1, NULL), 0);
	assert_int_equal(tw_acme_store_get(st, "certs/_.ex_ample.com/chain.pem", &b, NULL), 0);
	assert_int_equal(b.len, 2);
	assert_memory_equal(b.data, "C1", 2);
	/* The escaped object name is flat and decodes back. */
	uint64_t size = 0;
	assert_int_equal(tw_storage_stat(raw, TW_ST_KEY, "certs_s__.ex__ample.com_schain.pem", &size, NULL), 0);
	assert_int_equal(size, 2);
	char acc[512] = "";
	assert_int_equal(tw_acme_store_list(st, "certs", collect, acc, NULL), 0);
	assert_true(strstr(acc, "_.ex_ample.com;") != NULL);
	assert_true(strstr(acc, "b.example;") != NULL);
	assert_null(strstr(acc, "x;"));
	assert_int_equal(strlen(acc), strlen("_.ex_ample.com;b.example;"));
	assert_int_equal(tw_acme_store_del(st, "certs/b.example/chain.pem", NULL), 0);
	assert_int_equal(tw_acme_store_get(st, "certs/b.example/chain.pem", &b, NULL), TW_ENOENT);
	/* Too long once escaped. */
	char longkey[200];
	memset(longkey, 'a', sizeof longkey - 1);
	longkey[sizeof longkey - 1] = '\0';
	assert_int_equal(tw_acme_store_put(st, longkey, "x", 1, 0, NULL), TW_ELIMIT);
	tw_dbuf_free(&b);
}

static void lease_locks(void **state)
{
	(void)state;
	struct tw_acme_lock *a = NULL, *b = NULL;
	struct tw_err e = {0};
	assert_int_equal(tw_acme_store_lock(st, "n.example", 60000, 0, &a, &e), 0);
	assert_int_equal(tw_acme_store_lock(st, "n.example", 60000, 0, &b, &e), TW_ELOCKED);
	assert_int_equal(tw_acme_store_lock(st, "other.example", 60000, 0, &b, &e), 0);
	tw_acme_store_unlock(st, b);
	tw_acme_store_unlock(st, a);
	uint64_t size;
	assert_int_equal(tw_storage_stat(raw, TW_ST_LOCK, "n.example", &size, NULL), TW_ENOENT);
	/* A lease that ran out (holder died) is taken over. */
	assert_int_equal(tw_acme_store_lock(st, "n.example", 1, 0, &a, &e), 0);
	struct timespec ts = {0, 20 * 1000000L};
	nanosleep(&ts, NULL);
	assert_int_equal(tw_acme_store_lock(st, "n.example", 60000, 0, &b, &e), 0);
	/* The old holder's unlock does not remove the new holder's lock. */
	tw_acme_store_unlock(st, a);
	assert_int_equal(tw_storage_stat(raw, TW_ST_LOCK, "n.example", &size, NULL), 0);
	assert_int_equal(tw_acme_store_lock(st, "n.example", 60000, 0, &a, &e), TW_ELOCKED);
	tw_acme_store_unlock(st, b);
	assert_int_equal(tw_storage_stat(raw, TW_ST_LOCK, "n.example", &size, NULL), TW_ENOENT);
	/* Garbage in a lock object counts as expired. */
	assert_int_equal(tw_storage_put(raw, TW_ST_LOCK, "g.example", "junk", 4, TW_ST_EXCL, NULL), 0);
	assert_int_equal(tw_acme_store_lock(st, "g.example", 60000, 0, &a, &e), 0);
	tw_acme_store_unlock(st, a);
}

/* A storage whose conditional put checks, then writes: two racing puts of
 * a lock both succeed and the later write wins. racy_put plays the race
 * with the other writer landing just after ours. */
static int racy_put(struct tw_storage *s, enum tw_st_type t, const char *name, const void *buf,
                    size_t len, int flags, struct tw_err *e)
{
	int rc = passthru_put(s, t, name, buf, len, flags, e);
	if (rc == 0 && t == TW_ST_LOCK && (flags & TW_ST_EXCL)) {
		const char *other = "99999999999999 0123456789abcdef0123456789abcdef\n";
		rc = passthru_put(s, t, name, other, strlen(other), 0, e);
	}
	return rc;
}

static const struct tw_storage_ops racy_ops = PASSTHRU_OPS(racy_put);

static void lock_lost_to_a_racing_put(void **state)
{
	(void)state;
	struct passthru racy = {.base = {&racy_ops}, .owns_inner = 1};
	struct tw_acme_store *rs = NULL;
	struct tw_acme_lock *a = NULL;
	struct tw_err e = {0};
	assert_int_equal(tw_storage_local_open(dir, 0, &racy.inner, &e), 0);
	assert_int_equal(tw_acme_store_over(&racy.base, &rs, &e), 0);
	/* Our put "succeeded", but the object holds the other writer's id. */
	assert_int_equal(tw_acme_store_lock(rs, "race.example", 60000, 0, &a, &e), TW_ELOCKED);
	assert_null(a);
	/* The winner's lock is left alone. */
	uint64_t size = 0;
	assert_int_equal(tw_storage_stat(raw, TW_ST_LOCK, "race.example", &size, NULL), 0);
	tw_acme_store_free(rs);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(values_and_list, setup, teardown),
	    cmocka_unit_test_setup_teardown(lease_locks, setup, teardown),
	    cmocka_unit_test_setup_teardown(lock_lost_to_a_racing_put, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
