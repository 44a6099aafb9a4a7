/* Unit tests for src/backup/chunker.c: bounds, determinism, shift resistance. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include "backup/chunker.h"
#include "core/err.h"

#define DATA_LEN (24u * 1024 * 1024)
#define MAXC 256

static uint8_t *data;

static int setup(void **state)
{
	data = malloc(DATA_LEN + 1);
	uint64_t x = 0x9E3779B97F4A7C15ull;
	for (size_t i = 0; i < DATA_LEN + 1; i++) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		data[i] = (uint8_t)(x >> 24);
	}
	return 0;
}

static int teardown(void **state)
{
	free(data);
	return 0;
}

/* Cut positions of p[0..n), fed in pieces of `step` bytes. */
static size_t cuts(const uint64_t *gear, const uint8_t *p, size_t n, size_t step, size_t *out)
{
	struct tw_chunker c;
	assert_int_equal(tw_chunker_init(&c, gear, TW_CHUNK_MIN, TW_CHUNK_AVG, TW_CHUNK_MAX), 0);
	size_t k = 0, pos = 0;
	while (pos < n) {
		size_t m = n - pos < step ? n - pos : step;
		size_t off = 0;
		while (off < m) {
			int cut;
			off += tw_chunker_scan(&c, p + pos + off, m - off, &cut);
			if (cut && k < MAXC)
				out[k++] = pos + off;
		}
		pos += m;
	}
	if (k < MAXC && (k == 0 || out[k - 1] != n))
		out[k++] = n; /* the end closes the last chunk */
	return k;
}

static void gear_for(uint8_t b, uint64_t gear[256])
{
	uint8_t seed[32];
	memset(seed, b, sizeof seed);
	assert_int_equal(tw_chunker_gear(seed, gear), 0);
}

static void bounds_and_incremental(void **state)
{
	uint64_t gear[256];
	gear_for(1, gear);
	size_t a[MAXC], b[MAXC];
	size_t na = cuts(gear, data, DATA_LEN, DATA_LEN, a);
	size_t nb = cuts(gear, data, DATA_LEN, 65537, b); /* odd piece size */
	assert_int_equal(na, nb);
	assert_memory_equal(a, b, na * sizeof a[0]);
	size_t prev = 0, total = 0;
	for (size_t i = 0; i < na; i++) {
		size_t len = a[i] - prev;
		if (i + 1 < na)
			assert_true(len >= TW_CHUNK_MIN);
		assert_true(len <= TW_CHUNK_MAX);
		total += len;
		prev = a[i];
	}
	assert_int_equal(total, DATA_LEN);
	/* average near 1 MiB: 24 MiB of random data gives roughly 12..40 chunks */
	assert_true(na >= 12 && na <= 40);
	/* all-zero input: max-size chunks, deterministic */
	uint8_t *z = calloc(1, 9u * 1024 * 1024);
	size_t nz = cuts(gear, z, 9u * 1024 * 1024, 1u << 20, a);
	for (size_t i = 0; i + 1 < nz; i++)
		assert_true(a[i + 1] - a[i] <= TW_CHUNK_MAX);
	free(z);
	/* bad parameters */
	struct tw_chunker c;
	assert_int_equal(tw_chunker_init(&c, gear, 100, 1000, 4000), TW_EINVAL); /* avg not 2^k */
	assert_int_equal(tw_chunker_init(&c, gear, 4096, 1024, 8192), TW_EINVAL);
	assert_int_equal(tw_chunker_init(&c, gear, 1024, 4096, 16u << 20), TW_EINVAL);
}

static void shift_resistance(void **state)
{
	uint64_t gear[256];
	gear_for(2, gear);
	size_t a[MAXC], b[MAXC];
	size_t na = cuts(gear, data + 1, DATA_LEN, DATA_LEN, a);
	size_t nb = cuts(gear, data, DATA_LEN + 1, DATA_LEN, b); /* one byte inserted in front */
	/* count boundaries that survive (same content position) */
	size_t same = 0;
	for (size_t i = 0; i < na; i++)
		for (size_t j = 0; j < nb; j++)
			if (b[j] == a[i] + 1)
				same++;
	assert_true(same + 1 >= na); /* at most the first boundary may move */
	/* insert in the middle: boundaries before and well after it stay */
	uint8_t *m = malloc(DATA_LEN + 100);
	memcpy(m, data, DATA_LEN / 2);
	memset(m + DATA_LEN / 2, 'x', 100);
	memcpy(m + DATA_LEN / 2 + 100, data + DATA_LEN / 2, DATA_LEN / 2);
	size_t c0[MAXC], c1[MAXC];
	size_t n0 = cuts(gear, data, DATA_LEN, DATA_LEN, c0);
	size_t n1 = cuts(gear, m, DATA_LEN + 100, DATA_LEN, c1);
	same = 0;
	for (size_t i = 0; i < n0; i++)
		for (size_t j = 0; j < n1; j++)
			if (c1[j] == c0[i] || (c0[i] > DATA_LEN / 2 && c1[j] == c0[i] + 100))
				same++;
	assert_true(same + 3 >= n0);
	free(m);
}

static void keyed(void **state)
{
	uint64_t g1[256], g2[256], g1b[256];
	gear_for(3, g1);
	gear_for(3, g1b);
	gear_for(4, g2);
	assert_memory_equal(g1, g1b, sizeof g1);
	size_t a[MAXC], b[MAXC], c[MAXC];
	size_t na = cuts(g1, data, DATA_LEN, DATA_LEN, a);
	size_t nb = cuts(g1b, data, DATA_LEN, DATA_LEN, b);
	size_t nc = cuts(g2, data, DATA_LEN, DATA_LEN, c);
	assert_int_equal(na, nb);
	assert_memory_equal(a, b, na * sizeof a[0]);
	/* another key: different boundaries (all but the final end differ almost surely) */
	size_t same = 0;
	for (size_t i = 0; i + 1 < na; i++)
		for (size_t j = 0; j + 1 < nc; j++)
			if (a[i] == c[j])
				same++;
	assert_true(same <= 1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(bounds_and_incremental),
		cmocka_unit_test(shift_resistance),
		cmocka_unit_test(keyed),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
