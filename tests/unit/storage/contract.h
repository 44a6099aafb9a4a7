/* contract.h — what every storage driver must do the same way (src/storage/
 * storage.h), checked on an open, empty repository by each driver's test:
 * storage_contract_write_read() puts two data objects, a snapshot and an empty
 * index object and reads them back whole, in ranges, at and past the end;
 * storage_contract_list_delete() then lists, stats and deletes them, and
 * refuses bad names. A driver test may put its own checks in between (S3:
 * objects that do not fit the layout must not be listed). */
#ifndef TW_TEST_STORAGE_CONTRACT_H
#define TW_TEST_STORAGE_CONTRACT_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "storage/storage.h"

#define CONTRACT_A "aa11223344" /* "hello world" */
#define CONTRACT_B "bb55667788" /* "xyz" */

struct contract_seen {
	int n;
	uint64_t total;
	char last[160];
};

static int contract_count(void *arg, const char *name, uint64_t size)
{
	struct contract_seen *s = arg;
	s->n++;
	s->total += size;
	snprintf(s->last, sizeof s->last, "%s", name);
	return 0;
}

static void contract_get(struct tw_storage *st, enum tw_st_type t, const char *name, uint64_t off,
			 uint64_t len, const char *want, size_t want_len)
{
	struct tw_err e = {0};
	uint8_t *buf = NULL;
	size_t n = 0;
	assert_int_equal(tw_storage_get(st, t, name, off, len, &buf, &n, &e), 0);
	assert_int_equal(n, want_len);
	if (want_len)
		assert_memory_equal(buf, want, want_len);
	free(buf);
}

static void storage_contract_write_read(struct tw_storage *st)
{
	struct tw_err e = {0};
	assert_int_equal(tw_storage_put(st, TW_ST_DATA, CONTRACT_A, "hello world", 11, 0, &e), 0);
	assert_int_equal(tw_storage_put(st, TW_ST_DATA, CONTRACT_B, "xyz", 3, 0, &e), 0);
	assert_int_equal(tw_storage_put(st, TW_ST_SNAPSHOT, "s1", "snap", 4, 0, &e), 0);
	assert_int_equal(tw_storage_put(st, TW_ST_INDEX, "empty", "", 0, 0, &e), 0);

	contract_get(st, TW_ST_DATA, CONTRACT_A, 0, TW_ST_WHOLE, "hello world", 11);
	contract_get(st, TW_ST_DATA, CONTRACT_A, 6, 3, "wor", 3);
	contract_get(st, TW_ST_DATA, CONTRACT_A, 8, 100, "rld", 3); /* clipped at the end */
	contract_get(st, TW_ST_DATA, CONTRACT_A, 4, TW_ST_WHOLE, "o world", 7);
	contract_get(st, TW_ST_DATA, CONTRACT_A, 11, 5, "", 0); /* exactly at the end */
	contract_get(st, TW_ST_INDEX, "empty", 0, TW_ST_WHOLE, "", 0);
	uint8_t *buf = NULL;
	size_t n = 0;
	assert_int_equal(tw_storage_get(st, TW_ST_DATA, CONTRACT_A, 12, 5, &buf, &n, &e), TW_EINVAL);
}

static void storage_contract_list_delete(struct tw_storage *st)
{
	struct tw_err e = {0};
	struct contract_seen s = {0};
	assert_int_equal(tw_storage_list(st, TW_ST_DATA, contract_count, &s, &e), 0);
	assert_int_equal(s.n, 2);
	assert_int_equal(s.total, 14);
	memset(&s, 0, sizeof s);
	assert_int_equal(tw_storage_list(st, TW_ST_SNAPSHOT, contract_count, &s, &e), 0);
	assert_int_equal(s.n, 1);
	assert_string_equal(s.last, "s1");
	assert_int_equal(s.total, 4);

	uint64_t size;
	uint8_t *buf = NULL;
	size_t n = 0;
	assert_int_equal(tw_storage_stat(st, TW_ST_DATA, CONTRACT_B, &size, &e), 0);
	assert_int_equal(size, 3);
	assert_int_equal(tw_storage_del(st, TW_ST_DATA, CONTRACT_B, &e), 0);
	assert_int_equal(tw_storage_stat(st, TW_ST_DATA, CONTRACT_B, &size, &e), TW_ENOENT);
	assert_int_equal(tw_storage_get(st, TW_ST_DATA, CONTRACT_B, 0, TW_ST_WHOLE, &buf, &n, &e),
			 TW_ENOENT);
	assert_int_equal(tw_storage_del(st, TW_ST_DATA, CONTRACT_B, &e), TW_ENOENT);

	/* bad names are refused before any I/O */
	assert_int_equal(tw_storage_put(st, TW_ST_INDEX, "../x", "", 0, 0, &e), TW_EINVAL);
	assert_int_equal(tw_storage_put(st, TW_ST_INDEX, ".hidden", "", 0, 0, &e), TW_EINVAL);
	assert_int_equal(tw_storage_put(st, TW_ST_INDEX, "", "", 0, 0, &e), TW_EINVAL);
}

#endif
