/* Unit tests for tw_storage_name_ok() (src/storage/storage.c): the one rule
 * every driver applies to object names. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include "storage/storage.h"

static void test_accepts(void **state)
{
	(void)state;
	assert_true(tw_storage_name_ok("config"));
	assert_true(tw_storage_name_ok("a"));
	assert_true(tw_storage_name_ok("0123456789abcdefABCDEF-_.x"));
	char max[129];
	memset(max, 'f', 128);
	max[128] = '\0';
	assert_true(tw_storage_name_ok(max));
}

static void test_rejects(void **state)
{
	(void)state;
	assert_false(tw_storage_name_ok(""));
	assert_false(tw_storage_name_ok("."));
	assert_false(tw_storage_name_ok(".."));
	assert_false(tw_storage_name_ok(".tmp-1"));
	assert_false(tw_storage_name_ok("../x"));
	assert_false(tw_storage_name_ok("a/b"));
	assert_false(tw_storage_name_ok("a b"));
	assert_false(tw_storage_name_ok("a\\b"));
	assert_false(tw_storage_name_ok("caf\xc3\xa9"));
	char big[130];
	memset(big, 'f', 129);
	big[129] = '\0';
	assert_false(tw_storage_name_ok(big));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_accepts),
		cmocka_unit_test(test_rejects),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
