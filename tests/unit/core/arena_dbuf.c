/* Unit tests for src/core/arena.c and src/core/dbuf.c. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include "core/arena.h"
#include "core/dbuf.h"
#include "core/err.h"

static void arena_alloc_aligned_zeroed(void **state)
{
	struct tw_arena a;
	tw_arena_init(&a, 128);
	for (int i = 0; i < 100; i++) {
		unsigned char *p = tw_arena_alloc(&a, (size_t)i * 7 + 1);
		assert_non_null(p);
		assert_int_equal((uintptr_t)p % 16, 0);
		for (int j = 0; j < i * 7 + 1; j++)
			assert_int_equal(p[j], 0);
		memset(p, 0xAB, (size_t)i * 7 + 1);
	}
	char *big = tw_arena_alloc(&a, 10000);
	assert_non_null(big);
	char *s = tw_arena_strndup(&a, "hello world", 5);
	assert_string_equal(s, "hello");
	tw_arena_free(&a);
	tw_arena_free(NULL);
}

static void dbuf_cap_enforced(void **state)
{
	struct tw_dbuf b;
	tw_dbuf_init(&b, 10);
	assert_int_equal(tw_dbuf_append(&b, "hello", 5), 0);
	assert_int_equal(tw_dbuf_append(&b, "world", 5), 0);
	assert_int_equal(b.len, 10);
	assert_int_equal(tw_dbuf_append(&b, "!", 1), TW_ELIMIT);
	assert_int_equal(b.len, 10);
	assert_memory_equal(b.data, "helloworld", 10);
	tw_dbuf_consume(&b, 5);
	assert_string_equal(b.data, "world");
	assert_int_equal(tw_dbuf_appendf(&b, "%d", 12345), 0);
	assert_string_equal(b.data, "world12345");
	assert_int_equal(tw_dbuf_appendf(&b, "x"), TW_ELIMIT);
	tw_dbuf_free(&b);
	tw_dbuf_free(NULL);
}

static void err_set_and_wrap(void **state)
{
	struct tw_err e = {0};
	assert_int_equal(tw_err_set(&e, TW_EINVAL, "bad %s", "thing"), TW_EINVAL);
	assert_int_equal(tw_err_wrap(&e, "file %d", 3), TW_EINVAL);
	assert_string_equal(e.msg, "file 3: bad thing");
	assert_string_equal(tw_strerror(TW_ELIMIT), "limit exceeded");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(arena_alloc_aligned_zeroed),
		cmocka_unit_test(dbuf_cap_enforced),
		cmocka_unit_test(err_set_and_wrap),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
