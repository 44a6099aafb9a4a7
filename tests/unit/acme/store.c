/* Unit tests for src/acme/store.c (local driver): keys, atomic put/get,
 * modes, list, flock-based locks. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "acme/store.h"

static char dir[256];

static int setup(void **state)
{
	snprintf(dir, sizeof dir, "/tmp/tw-acme-store-XXXXXX");
	return mkdtemp(dir) ? 0 : -1;
}

static int teardown(void **state)
{
	char cmd[300];
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
	return system(cmd) == 0 ? 0 : -1;
}

static void keys(void **state)
{
	assert_int_equal(tw_acme_store_key_ok("certs/a.example/chain.pem"), 0);
	assert_int_equal(tw_acme_store_key_ok("_.example.com"), 0);
	static const char *bad[] = {"",    "/abs",   "a//b",   "a/../b", "..",
	                            "a/.", "trail/", "sp ace", "a\nb",   "uni\xc3\xa9"};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
		assert_int_equal(tw_acme_store_key_ok(bad[i]), TW_EINVAL);
	char n[64];
	assert_int_equal(tw_acme_store_cert_name("*.example.com", n, sizeof n), 0);
	assert_string_equal(n, "_.example.com");
	assert_int_equal(tw_acme_store_cert_name("../x", n, sizeof n), TW_EINVAL);
}

static int collect(void *ud, const char *name)
{
	char *out = ud;
	size_t n = strlen(out);
	snprintf(out + n, 256 - n, "%s,", name);
	return 0;
}

static void put_get_list_modes(void **state)
{
	struct tw_acme_store *s = NULL;
	struct tw_err e = {0};
	assert_int_equal(tw_acme_store_local_new(dir, &s, &e), 0);
	assert_int_equal(tw_acme_store_put(s, "certs/a.example/key.pem", "SECRET", 6, 1, &e), 0);
	assert_int_equal(tw_acme_store_put(s, "certs/a.example/chain.pem", "CHAIN1", 6, 0, &e), 0);
	assert_int_equal(tw_acme_store_put(s, "certs/a.example/chain.pem", "CHAIN-2", 7, 0, &e), 0);
	assert_int_equal(tw_acme_store_put(s, "certs/b.example/chain.pem", "B", 1, 0, &e), 0);
	struct tw_dbuf b;
	tw_dbuf_init(&b, 1024);
	assert_int_equal(tw_acme_store_get(s, "certs/a.example/chain.pem", &b, &e), 0);
	assert_int_equal(b.len, 7);
	assert_memory_equal(b.data, "CHAIN-2", 7);
	tw_dbuf_reset(&b);
	assert_int_equal(tw_acme_store_get(s, "certs/none/chain.pem", &b, &e), TW_ENOENT);
	assert_int_equal(tw_acme_store_get(s, "../escape", &b, &e), TW_EINVAL);
	char path[512];
	struct stat st;
	snprintf(path, sizeof path, "%s/acme/certs/a.example/key.pem", dir);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	snprintf(path, sizeof path, "%s/acme/certs/a.example/chain.pem", dir);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0644);
	snprintf(path, sizeof path, "%s/acme", dir);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0700);
	char names[256] = "";
	assert_int_equal(tw_acme_store_list(s, "certs", collect, names, &e), 0);
	assert_true(strcmp(names, "a.example,b.example,") == 0 ||
	            strcmp(names, "b.example,a.example,") == 0);
	assert_int_equal(tw_acme_store_del(s, "certs/b.example/chain.pem", &e), 0);
	assert_int_equal(tw_acme_store_del(s, "certs/b.example/chain.pem", &e), TW_ENOENT);
	/* The value cap. */
	tw_dbuf_free(&b);
	tw_dbuf_init(&b, 3);
	assert_int_equal(tw_acme_store_get(s, "certs/a.example/chain.pem", &b, &e), TW_ELIMIT);
	tw_dbuf_free(&b);
	tw_acme_store_free(s);
}

static void locks(void **state)
{
	struct tw_acme_store *s = NULL;
	struct tw_err e = {0};
	struct tw_acme_lock *l1 = NULL, *l2 = NULL, *l3 = NULL;
	assert_int_equal(tw_acme_store_local_new(dir, &s, &e), 0);
	assert_int_equal(tw_acme_store_lock(s, "a.example", 60000, 0, &l1, &e), 0);
	assert_int_equal(tw_acme_store_lock(s, "a.example", 60000, 0, &l2, &e), TW_ELOCKED);
	assert_int_equal(tw_acme_store_lock(s, "a.example", 60000, 250, &l2, &e), TW_ELOCKED);
	assert_int_equal(tw_acme_store_lock(s, "b.example", 60000, 0, &l3, &e), 0);
	assert_int_equal(tw_acme_store_lock(s, "x/y", 60000, 0, &l2, &e), TW_EINVAL);
	/* Another process sees the lock too. */
	pid_t pid = fork();
	if (pid == 0) {
		struct tw_acme_store *s2 = NULL;
		struct tw_acme_lock *lx = NULL;
		tw_acme_store_local_new(dir, &s2, NULL);
		_exit(tw_acme_store_lock(s2, "a.example", 60000, 0, &lx, NULL) == TW_ELOCKED ? 0
		                                                                             : 1);
	}
	int st;
	assert_int_equal(waitpid(pid, &st, 0), pid);
	assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	tw_acme_store_unlock(s, l1);
	assert_int_equal(tw_acme_store_lock(s, "a.example", 60000, 0, &l2, &e), 0);
	tw_acme_store_unlock(s, l2);
	tw_acme_store_unlock(s, l3);
	tw_acme_store_unlock(s, NULL);
	tw_acme_store_free(s);
	tw_acme_store_free(NULL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(keys),
	    cmocka_unit_test_setup_teardown(put_get_list_modes, setup, teardown),
	    cmocka_unit_test_setup_teardown(locks, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
