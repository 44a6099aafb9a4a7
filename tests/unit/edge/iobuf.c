/* Unit tests for src/edge/iobuf.c: window, compaction, caps, pool. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include "core/err.h"
#include "edge/iobuf.h"

static void window_and_compaction(void **state)
{
	struct tw_iobuf_pool pool = {.max_free = 2};
	struct tw_iobuf *b = tw_iobuf_get(&pool);
	assert_non_null(b);
	assert_int_equal(b->cap, TW_IOBUF_SIZE);
	static char big[TW_IOBUF_SIZE];
	memset(big, 'x', sizeof big);
	assert_int_equal(tw_iobuf_append(b, big, TW_IOBUF_SIZE - 10), 0);
	assert_int_equal(tw_iobuf_append(b, "0123456789A", 11), TW_ELIMIT); /* capped */
	tw_iobuf_consume(b, 100);
	assert_int_equal(tw_iobuf_append(b, "0123456789A", 11), 0); /* compaction made room */
	assert_int_equal(b->start, 0);
	assert_int_equal(tw_iobuf_len(b), TW_IOBUF_SIZE - 10 - 100 + 11);
	assert_memory_equal(tw_iobuf_tail(b) - 11, "0123456789A", 11);
	tw_iobuf_consume(b, tw_iobuf_len(b));
	assert_int_equal(b->start, 0);
	assert_int_equal(b->end, 0);
	assert_int_equal(tw_iobuf_grow(b, 2 * TW_IOBUF_SIZE), 0);
	assert_int_equal(b->cap, 2 * TW_IOBUF_SIZE);
	tw_iobuf_put(&pool, b); /* grown buffers are not pooled */
	assert_int_equal(pool.nfree, 0);
	tw_iobuf_pool_drain(&pool);
}

static void pool_reuse_and_trim(void **state)
{
	struct tw_iobuf_pool pool = {.max_free = 2};
	struct tw_iobuf *a = tw_iobuf_get(&pool), *b = tw_iobuf_get(&pool), *c = tw_iobuf_get(&pool);
	tw_iobuf_put(&pool, a);
	tw_iobuf_put(&pool, b);
	tw_iobuf_put(&pool, c); /* beyond max_free: released */
	assert_int_equal(pool.nfree, 2);
	struct tw_iobuf *d = tw_iobuf_get(&pool);
	assert_ptr_equal(d, b); /* LIFO */
	tw_iobuf_put(&pool, d);
	tw_iobuf_pool_trim(&pool, 1);
	assert_int_equal(pool.nfree, 1);
	tw_iobuf_put(&pool, NULL);
	tw_iobuf_pool_drain(&pool);
	assert_int_equal(pool.nfree, 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(window_and_compaction),
		cmocka_unit_test(pool_reuse_and_trim),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
