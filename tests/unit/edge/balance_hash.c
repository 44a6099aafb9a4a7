/* Unit tests for tw_lb_hash64 (src/edge/balance.c) and the consistent-hash
 * ring (src/edge/balance_hash.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <string.h>

#include "edge/balance.h"

#define MAXS 128
#define NKEYS 10000

struct fx {
	struct tw_conf_backend be;
	struct tw_conf_server srv[MAXS];
	atomic_int up[MAXS];
	struct tw_lb lb;
};

/* Server i is "10.0.0.<id[i]>:8080" so tests can reorder the same servers. */
static void fx_init(struct fx *f, const unsigned *weights, const unsigned *ids, size_t n)
{
	memset(f, 0, sizeof *f);
	for (size_t i = 0; i < n; i++) {
		snprintf(f->srv[i].addr.text, sizeof f->srv[i].addr.text, "10.0.%u.%u:8080",
			 (ids ? ids[i] : (unsigned)i) / 200, (ids ? ids[i] : (unsigned)i) % 200 + 1);
		f->srv[i].weight = weights ? weights[i] : 1;
		atomic_init(&f->up[i], 1);
	}
	f->be.servers = f->srv;
	f->be.nservers = n;
	f->be.balance = TW_BAL_HASH;
	assert_int_equal(tw_lb_init(&f->lb, &f->be, f->up, 1), 0);
}

static size_t key_pick(struct fx *f, unsigned k)
{
	char key[32];
	int n = snprintf(key, sizeof key, "client-%u", k);
	size_t out = SIZE_MAX;
	assert_int_equal(tw_lb_pick(&f->lb, key, (size_t)n, NULL, 0, &out), 0);
	assert_true(out < f->lb.nservers);
	return out;
}

/* The hash decides stickiness across restarts and versions: it must never
 * change. These values were produced by the first version of tw_lb_hash64. */
static void hash64_pinned(void **state)
{
	static const struct {
		const char *in;
		uint64_t want;
	} t[] = {
		{"", 0x5c1cd7799c012db2ULL},
		{"a", 0x74421d0a4ba95d6aULL},
		{"abc", 0x7bf8f402e0c0039dULL},
		{"12345678", 0x395cccb20e0088deULL},
		{"123456789", 0x8768ad72b7818942ULL},
		{"10.0.0.1:8080#0", 0xaef4060ef19ae1bcULL},
		{"The quick brown fox jumps over the lazy dog", 0x870d185e3e7a273cULL},
	};
	for (size_t i = 0; i < sizeof t / sizeof t[0]; i++)
		assert_int_equal(tw_lb_hash64(t[i].in, strlen(t[i].in)), t[i].want);
	/* length is part of the input: trailing zero bytes matter */
	assert_int_not_equal(tw_lb_hash64("a\0", 2), tw_lb_hash64("a", 1));
	assert_int_not_equal(tw_lb_hash64("\0\0\0\0\0\0\0\0", 8), tw_lb_hash64("", 0));
	/* does not depend on alignment */
	char buf[64];
	for (size_t off = 0; off < 8; off++) {
		memcpy(buf + off, "123456789", 9);
		assert_int_equal(tw_lb_hash64(buf + off, 9), 0x8768ad72b7818942ULL);
	}
}

/* Every output bit is set about half the time, and flipping one input bit
 * flips about half the output bits (avalanche). */
static void hash64_quality(void **state)
{
	unsigned ones[64] = {0};
	double flips = 0;
	size_t nflip = 0;
	for (unsigned k = 0; k < 4096; k++) {
		char key[40];
		int n = snprintf(key, sizeof key, "key-%u", k);
		uint64_t h = tw_lb_hash64(key, (size_t)n);
		for (unsigned b = 0; b < 64; b++)
			ones[b] += (h >> b) & 1;
		unsigned bit = k % ((unsigned)n * 8);
		key[bit / 8] ^= (char)(1u << (bit % 8));
		flips += __builtin_popcountll(h ^ tw_lb_hash64(key, (size_t)n));
		nflip++;
	}
	for (unsigned b = 0; b < 64; b++)
		assert_in_range(ones[b], 1848, 2248); /* 2048 +- ~6 sigma */
	double avg = flips / (double)nflip;
	assert_true(avg > 31.0 && avg < 33.0);
}

static void same_key_same_server(void **state)
{
	const unsigned ids_a[] = {1, 2, 3, 4}, ids_b[] = {3, 1, 4, 2};
	struct fx a, b;
	fx_init(&a, NULL, ids_a, 4);
	fx_init(&b, NULL, ids_b, 4); /* same servers, other order (e.g. another replica) */
	for (unsigned k = 0; k < 2000; k++) {
		size_t x = key_pick(&a, k);
		assert_int_equal(key_pick(&a, k), x);
		size_t y = key_pick(&b, k);
		assert_string_equal(a.srv[x].addr.text, b.srv[y].addr.text);
	}
	tw_lb_destroy(&a.lb);
	tw_lb_destroy(&b.lb);
}

static void spread_four(void **state)
{
	struct fx f;
	fx_init(&f, NULL, NULL, 4);
	size_t n[4] = {0};
	for (unsigned k = 0; k < NKEYS; k++)
		n[key_pick(&f, k)]++;
	for (size_t i = 0; i < 4; i++)
		assert_in_range(n[i], NKEYS * 15 / 100, NKEYS * 35 / 100);
	tw_lb_destroy(&f.lb);
}

static void down_moves_only_its_keys(void **state)
{
	static size_t before[NKEYS];
	struct fx f;
	fx_init(&f, NULL, NULL, 4);
	for (unsigned k = 0; k < NKEYS; k++)
		before[k] = key_pick(&f, k);
	atomic_store(&f.up[2], 0);
	size_t moved_to[4] = {0}, moved = 0;
	for (unsigned k = 0; k < NKEYS; k++) {
		size_t s = key_pick(&f, k);
		assert_int_not_equal(s, 2);
		if (before[k] != 2) {
			assert_int_equal(s, before[k]);
		} else {
			moved++;
			moved_to[s]++;
		}
	}
	assert_true(moved > 0);
	/* virtual nodes: the orphaned keys spread over all the others */
	for (size_t i = 0; i < 4; i++)
		if (i != 2)
			assert_true(moved_to[i] > moved / 10);
	/* back up: everything is where it was */
	atomic_store(&f.up[2], 1);
	for (unsigned k = 0; k < NKEYS; k++)
		assert_int_equal(key_pick(&f, k), before[k]);
	/* exclusion (a retry) walks on the same way */
	for (unsigned k = 0; k < 500; k++) {
		char key[32];
		int n = snprintf(key, sizeof key, "client-%u", k);
		size_t out;
		assert_int_equal(tw_lb_pick(&f.lb, key, (size_t)n, &before[k], 1, &out), 0);
		assert_int_not_equal(out, before[k]);
		size_t again;
		assert_int_equal(tw_lb_pick(&f.lb, key, (size_t)n, &before[k], 1, &again), 0);
		assert_int_equal(again, out);
	}
	for (size_t i = 0; i < 4; i++)
		atomic_store(&f.up[i], 0);
	size_t out;
	assert_int_equal(tw_lb_pick(&f.lb, "x", 1, NULL, 0, &out), TW_ENOENT);
	assert_int_equal(tw_lb_pick(&f.lb, NULL, 0, NULL, 0, &out), TW_ENOENT);
	tw_lb_destroy(&f.lb);
}

static void weights_proportional(void **state)
{
	const unsigned w[] = {1, 1, 2, 4};
	struct fx f;
	fx_init(&f, w, NULL, 4);
	size_t n[4] = {0};
	for (unsigned k = 0; k < NKEYS * 2; k++)
		n[key_pick(&f, k)]++;
	/* shares 1/8, 1/8, 2/8, 4/8 of 20000 = 2500, 2500, 5000, 10000 */
	assert_in_range(n[0], 1800, 3200);
	assert_in_range(n[1], 1800, 3200);
	assert_in_range(n[2], 4000, 6000);
	assert_in_range(n[3], 8500, 11500);
	tw_lb_destroy(&f.lb);
}

/* Large weights: the ring is scaled down to its cap and still works. */
static void big_ring_scaled(void **state)
{
	static struct fx f;
	unsigned w[100];
	for (size_t i = 0; i < 100; i++)
		w[i] = 256;
	fx_init(&f, w, NULL, 100);
	size_t n[100] = {0};
	for (unsigned k = 0; k < 20000; k++)
		n[key_pick(&f, k)]++;
	for (size_t i = 0; i < 100; i++)
		assert_in_range(n[i], 60, 400); /* 200 expected each */
	tw_lb_destroy(&f.lb);
}

/* Without a key the hash balancer is round robin over the up servers. */
static void no_key_round_robin(void **state)
{
	struct fx f;
	fx_init(&f, NULL, NULL, 3);
	atomic_store(&f.up[0], 0);
	size_t n[3] = {0}, out;
	for (size_t i = 0; i < 100; i++) {
		assert_int_equal(tw_lb_pick(&f.lb, NULL, 0, NULL, 0, &out), 0);
		n[out]++;
		assert_int_equal(tw_lb_pick(&f.lb, "ignored", 0, NULL, 0, &out), 0);
		n[out]++;
	}
	assert_int_equal(n[0], 0);
	assert_int_equal(n[1], 100);
	assert_int_equal(n[2], 100);
	tw_lb_destroy(&f.lb);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(hash64_pinned),
		cmocka_unit_test(hash64_quality),
		cmocka_unit_test(same_key_same_server),
		cmocka_unit_test(spread_four),
		cmocka_unit_test(down_moves_only_its_keys),
		cmocka_unit_test(weights_proportional),
		cmocka_unit_test(big_ring_scaled),
		cmocka_unit_test(no_key_round_robin),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
