/* Unit tests for src/backup/repo.c: init/open, objects, locks and leases. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/wait.h>
#include <unistd.h>

#include "backup/repo.h"

static char root[256];

static int setup(void **state)
{
	snprintf(root, sizeof root, "/tmp/tw-repo-XXXXXX");
	assert_non_null(mkdtemp(root));
	strncat(root, "/r", sizeof root - strlen(root) - 1);
	struct tw_err e = {0};
	assert_int_equal(tw_repo_init(root, "pw", 2, 0, &e), 0);
	return 0;
}

static int teardown(void **state)
{
	char cmd[400];
	snprintf(cmd, sizeof cmd, "rm -rf '%.*s'", (int)(strlen(root) - 2), root);
	return system(cmd) == 0 ? 0 : -1;
}

static int64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static int count_cb(void *arg, const char *name, uint64_t size)
{
	(*(int *)arg)++;
	return 0;
}

static int nlocks(struct tw_repo *r)
{
	int n = 0;
	assert_int_equal(tw_storage_list(r->st, TW_ST_LOCK, count_cb, &n, NULL), 0);
	return n;
}

static void put_lock(struct tw_repo *r, int exclusive, const char *host, long pid, int64_t t)
{
	char json[512];
	snprintf(json, sizeof json,
		 "{\"exclusive\":%s,\"hostname\":\"%s\",\"pid\":%ld,\"time_ns\":%lld,\"lease_s\":300}",
		 exclusive ? "true" : "false", host, pid, (long long)t);
	assert_int_equal(tw_repo_put_object(r, TW_ST_LOCK, "lock", json, strlen(json), NULL, NULL), 0);
}

static void open_and_objects(void **state)
{
	struct tw_repo *r;
	struct tw_err e = {0};
	assert_int_equal(tw_repo_open(root, "nope", 4, &r, &e), TW_ECRYPTO);
	assert_int_equal(tw_repo_open(root, "pw", 2, &r, &e), 0);
	assert_int_equal(r->chunk_avg, 1024 * 1024);
	char name[65];
	assert_int_equal(tw_repo_put_object(r, TW_ST_SNAPSHOT, "snapshot", "{}", 2, name, &e), 0);
	uint8_t *pt;
	size_t n;
	assert_int_equal(tw_repo_get_object(r, TW_ST_SNAPSHOT, "snapshot", name, &pt, &n, &e), 0);
	assert_int_equal(n, 2);
	free(pt);
	/* kind is bound: a snapshot cannot be read as an index */
	assert_int_equal(tw_repo_get_object(r, TW_ST_SNAPSHOT, "index", name, &pt, &n, &e), TW_ECRYPTO);
	/* a second password opens the same keys */
	char kname[65];
	assert_int_equal(tw_repo_add_key(r, "two", 3, kname, &e), 0);
	struct tw_repo *r2;
	assert_int_equal(tw_repo_open(root, "two", 3, &r2, &e), 0);
	assert_memory_equal(r2->keys.enc, r->keys.enc, 32);
	assert_memory_equal(r2->gear, r->gear, sizeof r->gear);
	tw_repo_close(r2);
	tw_repo_close(r);
	/* init refuses an existing repository */
	assert_int_equal(tw_repo_init(root, "pw", 2, 0, &e), TW_EEXIST);
}

static void locks_and_leases(void **state)
{
	struct tw_repo *a, *b;
	struct tw_err e = {0};
	char host[256];
	gethostname(host, sizeof host);
	assert_int_equal(tw_repo_open(root, "pw", 2, &a, &e), 0);
	assert_int_equal(tw_repo_open(root, "pw", 2, &b, &e), 0);
	/* shared + shared coexist; exclusive is refused while they are held */
	assert_int_equal(tw_repo_lock(a, 0, &e), 0);
	assert_int_equal(tw_repo_lock(b, 0, &e), 0);
	assert_int_equal(nlocks(a), 2);
	tw_repo_unlock(b);
	assert_int_equal(tw_repo_lock(b, 1, &e), TW_ELOCKED);
	assert_int_equal(nlocks(a), 1); /* the refused attempt left nothing */
	tw_repo_unlock(a);
	assert_int_equal(nlocks(a), 0);
	assert_int_equal(tw_repo_lock(b, 1, &e), 0);
	assert_int_equal(tw_repo_lock(a, 0, &e), TW_ELOCKED);
	tw_repo_unlock(b);

	/* an expired lease from another host is stale: ignored and removed */
	put_lock(a, 1, "elsewhere", 1, now_ns() - (int64_t)400 * 1000000000);
	assert_int_equal(nlocks(a), 1);
	assert_int_equal(tw_repo_lock(b, 1, &e), 0);
	assert_int_equal(nlocks(a), 1); /* only b's own lock remains */
	tw_repo_unlock(b);
	/* a live lease from another host blocks an exclusive lock */
	put_lock(a, 0, "elsewhere", 1, now_ns());
	assert_int_equal(tw_repo_lock(b, 1, &e), TW_ELOCKED);
	assert_int_equal(tw_repo_lock(b, 0, &e), 0); /* shared is fine */
	tw_repo_unlock(b);
	tw_repo_close(a);
	tw_repo_close(b);
}

static void dead_process_lock_is_stale(void **state)
{
	struct tw_repo *a;
	struct tw_err e = {0};
	char host[256];
	gethostname(host, sizeof host);
	host[sizeof host - 1] = '\0';
	assert_int_equal(tw_repo_open(root, "pw", 2, &a, &e), 0);
	pid_t child = fork();
	assert_true(child >= 0);
	if (child == 0)
		_exit(0);
	int st;
	assert_int_equal(waitpid(child, &st, 0), child);
	/* an exclusive lock of this host, fresh lease, but its process is gone */
	put_lock(a, 1, host, child, now_ns());
	/* and one of a live process (ours): blocks */
	put_lock(a, 1, host, getpid(), now_ns());
	assert_int_equal(tw_repo_lock(a, 0, &e), TW_ELOCKED);
	assert_int_equal(nlocks(a), 1); /* the dead one was removed */
	tw_repo_close(a);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(open_and_objects, setup, teardown),
		cmocka_unit_test_setup_teardown(locks_and_leases, setup, teardown),
		cmocka_unit_test_setup_teardown(dead_process_lock_is_stale, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
