/* Unit tests for src/storage/local.c (the local-directory driver). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "storage/storage.h"

#include "contract.h"

static char root[256];

static int setup(void **state)
{
	snprintf(root, sizeof root, "/tmp/tw-st-XXXXXX");
	assert_non_null(mkdtemp(root));
	strncat(root, "/repo", sizeof root - strlen(root) - 1);
	return 0;
}

static int teardown(void **state)
{
	char cmd[400];
	snprintf(cmd, sizeof cmd, "rm -rf '%.*s'", (int)(strlen(root) - 5), root);
	return system(cmd) == 0 ? 0 : -1;
}

struct seen {
	int n;
	char names[8][80];
	uint64_t sizes[8];
};

static int collect(void *arg, const char *name, uint64_t size)
{
	struct seen *s = arg;
	if (s->n < 8) {
		snprintf(s->names[s->n], sizeof s->names[0], "%s", name);
		s->sizes[s->n] = size;
	}
	s->n++;
	return 0;
}

static void put_get_list_delete(void **state)
{
	struct tw_storage *st;
	struct tw_err e = {0};
	assert_int_equal(tw_storage_local_open(root, 1, &st, &e), 0);
	storage_contract_write_read(st);
	/* fan-out: data/aa/aa11223344 */
	char p[400];
	struct stat sb;
	snprintf(p, sizeof p, "%s/data/aa/%s", root, CONTRACT_A);
	assert_int_equal(stat(p, &sb), 0);
	storage_contract_list_delete(st);
	tw_storage_close(st);
	tw_storage_close(NULL);
}

static void conditional_put(void **state)
{
	struct tw_storage *st;
	struct tw_err e = {0};
	assert_int_equal(tw_storage_local_open(root, 1, &st, &e), 0);
	assert_int_equal(tw_storage_put(st, TW_ST_LOCK, "l1", "one", 3, TW_ST_EXCL, &e), 0);
	assert_int_equal(tw_storage_put(st, TW_ST_LOCK, "l1", "two", 3, TW_ST_EXCL, &e), TW_EEXIST);
	uint8_t *buf;
	size_t n;
	assert_int_equal(tw_storage_get(st, TW_ST_LOCK, "l1", 0, TW_ST_WHOLE, &buf, &n, &e), 0);
	assert_memory_equal(buf, "one", 3);
	free(buf);
	/* no temporary files left behind */
	struct seen s = {0};
	char p[400];
	snprintf(p, sizeof p, "ls -A '%s/locks' | wc -l | grep -qx 1", root);
	assert_int_equal(system(p), 0);
	/* unconditional put replaces */
	assert_int_equal(tw_storage_put(st, TW_ST_LOCK, "l1", "three", 5, 0, &e), 0);
	assert_int_equal(tw_storage_get(st, TW_ST_LOCK, "l1", 0, TW_ST_WHOLE, &buf, &n, &e), 0);
	assert_int_equal(n, 5);
	free(buf);
	assert_int_equal(tw_storage_list(st, TW_ST_LOCK, collect, &s, &e), 0);
	assert_int_equal(s.n, 1);
	/* a second create on an existing repository with config fails */
	assert_int_equal(tw_storage_put(st, TW_ST_CONFIG, "config", "c", 1, 0, &e), 0);
	tw_storage_close(st);
	assert_int_equal(tw_storage_local_open(root, 1, &st, &e), TW_EEXIST);
	assert_int_equal(tw_storage_local_open("/nonexistent/dir/x", 0, &st, &e), TW_ENOENT);
}

static void streaming_writer(void **state)
{
	struct tw_storage *st;
	struct tw_err e = {0};
	assert_int_equal(tw_storage_local_open(root, 1, &st, &e), 0);
	assert_true(tw_storage_has_writer(st));
	struct tw_st_writer *w;
	assert_int_equal(st->ops->writer_open(st, TW_ST_DATA, &w, &e), 0);
	assert_int_equal(st->ops->writer_write(w, "abc", 3, &e), 0);
	assert_int_equal(st->ops->writer_write(w, "def", 3, &e), 0);
	/* not visible before commit */
	struct seen s = {0};
	assert_int_equal(tw_storage_list(st, TW_ST_DATA, collect, &s, &e), 0);
	assert_int_equal(s.n, 0);
	assert_int_equal(st->ops->writer_commit(w, "cd0123", &e), 0);
	uint8_t *buf;
	size_t n;
	assert_int_equal(tw_storage_get(st, TW_ST_DATA, "cd0123", 0, TW_ST_WHOLE, &buf, &n, &e), 0);
	assert_int_equal(n, 6);
	assert_memory_equal(buf, "abcdef", 6);
	free(buf);
	/* abort leaves nothing; a bad name fails the commit and cleans up */
	assert_int_equal(st->ops->writer_open(st, TW_ST_DATA, &w, &e), 0);
	assert_int_equal(st->ops->writer_write(w, "x", 1, &e), 0);
	st->ops->writer_abort(w);
	assert_int_equal(st->ops->writer_open(st, TW_ST_DATA, &w, &e), 0);
	assert_int_equal(st->ops->writer_commit(w, "../evil", &e), TW_EINVAL);
	char cmd[400];
	snprintf(cmd, sizeof cmd, "test $(find '%s' -name '.tmp*' | wc -l) -eq 0", root);
	assert_int_equal(system(cmd), 0);
	memset(&s, 0, sizeof s);
	assert_int_equal(tw_storage_list(st, TW_ST_DATA, collect, &s, &e), 0);
	assert_int_equal(s.n, 1);
	tw_storage_close(st);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(put_get_list_delete, setup, teardown),
		cmocka_unit_test_setup_teardown(conditional_put, setup, teardown),
		cmocka_unit_test_setup_teardown(streaming_writer, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
