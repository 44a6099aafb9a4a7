/* Unit tests for the nghttp2 allocator of src/edge/h2.c (tw_h2_mem):
 * alignment, contents kept by realloc across size classes, calloc zeroing a
 * recycled block, big blocks, overflow. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include "edge/h2.h"

static void alloc_free_reuse(void **state)
{
	(void)state;
	nghttp2_mem *m = tw_h2_mem();
	size_t sizes[] = {0, 1, 47, 48, 49, 100, 240, 500, 1000, 2032, 2033, 5000, 100000};
	for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
		unsigned char *p = m->malloc(sizes[i], m->mem_user_data);
		assert_non_null(p);
		assert_int_equal((uintptr_t)p % 16, 0);
		memset(p, 0xa5, sizes[i]);
		m->free(p, m->mem_user_data);
	}
	/* a block freed dirty comes back zeroed from calloc */
	for (int round = 0; round < 3; round++) {
		unsigned char *p = m->malloc(200, m->mem_user_data);
		assert_non_null(p);
		memset(p, 0xff, 200);
		m->free(p, m->mem_user_data);
		unsigned char *q = m->calloc(50, 4, m->mem_user_data);
		assert_non_null(q);
		for (int k = 0; k < 200; k++)
			assert_int_equal(q[k], 0);
		m->free(q, m->mem_user_data);
	}
	m->free(NULL, m->mem_user_data);
	assert_null(m->calloc(SIZE_MAX / 2, 4, m->mem_user_data));
	assert_null(m->malloc(SIZE_MAX - 4, m->mem_user_data));
}

static void realloc_keeps_contents(void **state)
{
	(void)state;
	nghttp2_mem *m = tw_h2_mem();
	unsigned char *p = m->realloc(NULL, 10, m->mem_user_data);
	assert_non_null(p);
	for (int k = 0; k < 10; k++)
		p[k] = (unsigned char)k;
	size_t grow[] = {20, 60, 300, 1500, 3000, 70000, 40, 5};
	size_t have = 10;
	for (size_t i = 0; i < sizeof grow / sizeof grow[0]; i++) {
		p = m->realloc(p, grow[i], m->mem_user_data);
		assert_non_null(p);
		assert_int_equal((uintptr_t)p % 16, 0);
		size_t keep = have < grow[i] ? have : grow[i];
		for (size_t k = 0; k < keep; k++)
			assert_int_equal(p[k], (unsigned char)(k * 7 % 251 * (k >= 10) + k * (k < 10)));
		for (size_t k = keep; k < grow[i]; k++)
			p[k] = (unsigned char)(k * 7 % 251 * (k >= 10) + k * (k < 10));
		have = grow[i];
	}
	m->free(p, m->mem_user_data);
}

/* Many blocks of one class at once: more than the free list keeps. */
static void many_blocks(void **state)
{
	(void)state;
	nghttp2_mem *m = tw_h2_mem();
	enum { N = 1000 };
	static void *blk[N];
	for (int r = 0; r < 2; r++) {
		for (int i = 0; i < N; i++) {
			blk[i] = m->malloc(100 + (size_t)(i % 3), m->mem_user_data);
			assert_non_null(blk[i]);
			memset(blk[i], i & 0xff, 100);
		}
		for (int i = 0; i < N; i++) {
			assert_int_equal(((unsigned char *)blk[i])[99], i & 0xff);
			m->free(blk[i], m->mem_user_data);
		}
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(alloc_free_reuse),
	    cmocka_unit_test(realloc_keeps_contents),
	    cmocka_unit_test(many_blocks),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
