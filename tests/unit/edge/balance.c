/* Unit tests for src/edge/balance.c, balance_rr.c, balance_lc.c and
 * balance_p2c.c (the hash ring is in balance_hash.c's test). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <string.h>

#include "edge/balance.h"

#define MAXS 16

struct fx {
	struct tw_conf_backend be;
	struct tw_conf_server srv[MAXS];
	atomic_int up[MAXS];
	struct tw_lb lb;
};

static void fx_init(struct fx *f, enum tw_balance bal, const unsigned *weights, size_t n, uint64_t seed)
{
	memset(f, 0, sizeof *f);
	for (size_t i = 0; i < n; i++) {
		snprintf(f->srv[i].addr.text, sizeof f->srv[i].addr.text, "10.0.0.%zu:8080", i + 1);
		f->srv[i].weight = weights[i];
		atomic_init(&f->up[i], 1);
	}
	f->be.servers = f->srv;
	f->be.nservers = n;
	f->be.balance = bal;
	assert_int_equal(tw_lb_init(&f->lb, &f->be, f->up, seed), 0);
	assert_int_equal(f->lb.nservers, n);
}

static size_t pick(struct fx *f)
{
	size_t out = SIZE_MAX;
	assert_int_equal(tw_lb_pick(&f->lb, NULL, 0, NULL, 0, &out), 0);
	assert_true(out < f->lb.nservers);
	return out;
}

static void set_up(struct fx *f, size_t i, int v) { atomic_store(&f->up[i], v); }

/* ---- init ---- */

static void init_selects_ops(void **state)
{
	static const struct {
		enum tw_balance b;
		const char *name;
	} t[] = {{TW_BAL_ROUND_ROBIN, "round_robin"},
		 {TW_BAL_LEAST_CONN, "least_conn"},
		 {TW_BAL_RANDOM_TWO, "random_two"},
		 {TW_BAL_HASH, "hash"}};
	const unsigned w[] = {3, 0};
	for (size_t i = 0; i < 4; i++) {
		struct fx f;
		fx_init(&f, t[i].b, w, 2, 1);
		assert_string_equal(f.lb.ops->name, t[i].name);
		assert_ptr_equal(f.lb.servers[1].conf, &f.srv[1]);
		assert_ptr_equal(f.lb.servers[1].up, &f.up[1]);
		assert_int_equal(f.lb.servers[0].weight, 3);
		assert_int_equal(f.lb.servers[1].weight, 1); /* 0 means the default, 1 */
		tw_lb_destroy(&f.lb);
	}
	struct fx f;
	memset(&f, 0, sizeof f);
	f.be.balance = (enum tw_balance)99;
	assert_int_equal(tw_lb_init(&f.lb, &f.be, NULL, 0), TW_EINVAL);
	tw_lb_destroy(NULL);
	/* no servers: every algorithm answers TW_ENOENT */
	for (size_t i = 0; i < 4; i++) {
		fx_init(&f, t[i].b, w, 0, 1);
		size_t out;
		assert_int_equal(tw_lb_pick(&f.lb, "k", 1, NULL, 0, &out), TW_ENOENT);
		tw_lb_destroy(&f.lb);
	}
}

/* ---- round robin ---- */

static void rr_smooth_sequence(void **state)
{
	struct fx f;
	const unsigned w[] = {5, 1, 1};
	fx_init(&f, TW_BAL_ROUND_ROBIN, w, 3, 0);
	char seq[22] = {0};
	for (size_t i = 0; i < 21; i++)
		seq[i] = (char)('a' + pick(&f));
	assert_string_equal(seq, "aabacaaaabacaaaabacaa");
	tw_lb_destroy(&f.lb);
}

static void rr_weights_exact(void **state)
{
	struct fx f;
	const unsigned w[] = {1, 2};
	fx_init(&f, TW_BAL_ROUND_ROBIN, w, 2, 0);
	size_t n[2] = {0};
	for (size_t i = 0; i < 3000; i++) {
		n[pick(&f)]++;
		if (i % 3 == 2) /* smooth: never more than one off the ideal share */
			assert_int_equal(n[0], (i + 1) / 3);
	}
	assert_in_range(n[0], 999, 1001);
	assert_in_range(n[1], 1999, 2001);
	tw_lb_destroy(&f.lb);
}

static void rr_down_and_back(void **state)
{
	struct fx f;
	const unsigned w[] = {1, 1, 1};
	fx_init(&f, TW_BAL_ROUND_ROBIN, w, 3, 0);
	set_up(&f, 1, 0);
	size_t n[3] = {0};
	for (size_t i = 0; i < 100; i++)
		n[pick(&f)]++;
	assert_int_equal(n[1], 0);
	assert_int_equal(n[0], 50);
	assert_int_equal(n[2], 50);
	set_up(&f, 1, 1);
	memset(n, 0, sizeof n);
	for (size_t i = 0; i < 300; i++)
		n[pick(&f)]++;
	assert_in_range(n[1], 99, 101);
	assert_in_range(n[0], 99, 101);
	for (size_t i = 0; i < 3; i++)
		set_up(&f, i, 0);
	size_t out = 77;
	assert_int_equal(tw_lb_pick(&f.lb, NULL, 0, NULL, 0, &out), TW_ENOENT);
	assert_int_equal(out, 77);
	set_up(&f, 2, 1);
	assert_int_equal(pick(&f), 2);
	tw_lb_destroy(&f.lb);
}

static void rr_exclude(void **state)
{
	struct fx f;
	const unsigned w[] = {1, 1, 1, 1};
	fx_init(&f, TW_BAL_ROUND_ROBIN, w, 4, 0);
	const size_t ex[] = {0, 2};
	size_t n[4] = {0}, out;
	for (size_t i = 0; i < 40; i++) {
		assert_int_equal(tw_lb_pick(&f.lb, NULL, 0, ex, 2, &out), 0);
		n[out]++;
	}
	assert_int_equal(n[0] + n[2], 0);
	assert_int_equal(n[1], 20);
	set_up(&f, 1, 0);
	set_up(&f, 3, 0);
	assert_int_equal(tw_lb_pick(&f.lb, NULL, 0, ex, 2, &out), TW_ENOENT);
	const size_t all[] = {3, 2, 1, 0};
	set_up(&f, 1, 1);
	assert_int_equal(tw_lb_pick(&f.lb, NULL, 0, all, 4, &out), TW_ENOENT);
	tw_lb_destroy(&f.lb);
}

static void max_conns_full(void **state)
{
	static const enum tw_balance algs[] = {TW_BAL_ROUND_ROBIN, TW_BAL_LEAST_CONN, TW_BAL_RANDOM_TWO,
					       TW_BAL_HASH};
	for (size_t a = 0; a < 4; a++) {
		struct fx f;
		const unsigned w[] = {1, 1};
		fx_init(&f, algs[a], w, 2, 5);
		f.srv[0].max_conns = 2;
		f.lb.servers[0].active = 2; /* full */
		for (size_t i = 0; i < 20; i++) {
			size_t out = 9;
			assert_int_equal(tw_lb_pick(&f.lb, "key", 3, NULL, 0, &out), 0);
			assert_int_equal(out, 1);
		}
		set_up(&f, 1, 0);
		size_t out;
		/* something is up but full: TW_ELIMIT (queue), not TW_ENOENT (503) */
		assert_int_equal(tw_lb_pick(&f.lb, "key", 3, NULL, 0, &out), TW_ELIMIT);
		assert_int_equal(tw_lb_pick(&f.lb, NULL, 0, NULL, 0, &out), TW_ELIMIT);
		f.lb.servers[0].active = 1;
		assert_int_equal(tw_lb_pick(&f.lb, "key", 3, NULL, 0, &out), 0);
		assert_int_equal(out, 0);
		set_up(&f, 0, 0);
		assert_int_equal(tw_lb_pick(&f.lb, "key", 3, NULL, 0, &out), TW_ENOENT);
		tw_lb_destroy(&f.lb);
	}
}

/* ---- least connections ---- */

static void lc_prefers_idle(void **state)
{
	struct fx f;
	const unsigned w[] = {1, 1, 1};
	fx_init(&f, TW_BAL_LEAST_CONN, w, 3, 0);
	f.lb.servers[0].active = 5;
	f.lb.servers[1].active = 0;
	f.lb.servers[2].active = 3;
	for (size_t i = 0; i < 10; i++)
		assert_int_equal(pick(&f), 1);
	/* requests that stay open fill the idle one up to the others */
	for (size_t i = 0; i < 3; i++)
		f.lb.servers[pick(&f)].active++;
	assert_int_equal(f.lb.servers[1].active, 3);
	assert_int_equal(f.lb.servers[0].active, 5);
	set_up(&f, 1, 0);
	set_up(&f, 2, 0);
	assert_int_equal(pick(&f), 0);
	const size_t ex[] = {0};
	size_t out;
	assert_int_equal(tw_lb_pick(&f.lb, NULL, 0, ex, 1, &out), TW_ENOENT);
	tw_lb_destroy(&f.lb);
}

static void lc_ties_rotate(void **state)
{
	struct fx f;
	const unsigned w[] = {1, 1, 1};
	fx_init(&f, TW_BAL_LEAST_CONN, w, 3, 0);
	/* all idle and the requests finish at once: equal servers share */
	for (size_t round = 0; round < 10; round++) {
		int seen[3] = {0};
		for (size_t i = 0; i < 3; i++)
			seen[pick(&f)] = 1;
		assert_true(seen[0] && seen[1] && seen[2]);
	}
	tw_lb_destroy(&f.lb);
}

static void lc_weights(void **state)
{
	struct fx f;
	const unsigned w[] = {1, 3, 4};
	fx_init(&f, TW_BAL_LEAST_CONN, w, 3, 0);
	/* long-lived connections: active ends up proportional to weight */
	for (size_t i = 0; i < 800; i++)
		f.lb.servers[pick(&f)].active++;
	assert_in_range(f.lb.servers[0].active, 99, 101);
	assert_in_range(f.lb.servers[1].active, 299, 301);
	assert_in_range(f.lb.servers[2].active, 399, 401);
	/* a weight-4 server with 3 in flight is less loaded than a weight-1 with 1 */
	f.lb.servers[0].active = 1;
	f.lb.servers[1].active = 9;
	f.lb.servers[2].active = 3;
	assert_int_equal(pick(&f), 2);
	/* idle with weights: the tie-break still follows the weights */
	for (size_t i = 0; i < 3; i++)
		f.lb.servers[i].active = 0;
	size_t n[3] = {0};
	for (size_t i = 0; i < 800; i++)
		n[pick(&f)]++;
	assert_in_range(n[0], 99, 101);
	assert_in_range(n[2], 399, 401);
	tw_lb_destroy(&f.lb);
}

/* ---- power of two choices ---- */

static void p2c_avoids_most_loaded(void **state)
{
	struct fx f;
	const unsigned w[] = {1, 1, 1};
	fx_init(&f, TW_BAL_RANDOM_TWO, w, 3, 42);
	f.lb.servers[0].active = 10;
	f.lb.servers[1].active = 4;
	f.lb.servers[2].active = 0;
	size_t n[3] = {0};
	for (size_t i = 0; i < 30000; i++)
		n[pick(&f)]++;
	assert_int_equal(n[0], 0);
	/* the idle one wins whenever it is drawn: 2 draws in 3 */
	assert_in_range(n[2], 19000, 21000);
	tw_lb_destroy(&f.lb);
}

static void p2c_spreads_when_equal(void **state)
{
	struct fx f;
	const unsigned w[] = {1, 1, 1, 1};
	fx_init(&f, TW_BAL_RANDOM_TWO, w, 4, 7);
	size_t n[4] = {0};
	for (size_t i = 0; i < 40000; i++)
		n[pick(&f)]++;
	for (size_t i = 0; i < 4; i++)
		assert_in_range(n[i], 9400, 10600);
	tw_lb_destroy(&f.lb);

	const unsigned w2[] = {1, 3};
	fx_init(&f, TW_BAL_RANDOM_TWO, w2, 2, 7);
	/* two servers are always both drawn: equal load -> the first drawn,
	 * which is drawn by weight */
	memset(n, 0, sizeof n);
	for (size_t i = 0; i < 40000; i++)
		n[pick(&f)]++;
	assert_in_range(n[0], 9400, 10600);
	tw_lb_destroy(&f.lb);
}

static void p2c_load_follows(void **state)
{
	struct fx f;
	const unsigned w[] = {1, 1, 1, 1, 1};
	fx_init(&f, TW_BAL_RANDOM_TWO, w, 5, 3);
	/* long-lived requests: the spread between servers stays small */
	for (size_t i = 0; i < 5000; i++)
		f.lb.servers[pick(&f)].active++;
	unsigned lo = UINT32_MAX, hi = 0;
	for (size_t i = 0; i < 5; i++) {
		unsigned a = f.lb.servers[i].active;
		lo = a < lo ? a : lo;
		hi = a > hi ? a : hi;
	}
	assert_true(hi - lo <= 20);
	tw_lb_destroy(&f.lb);
}

static void p2c_single_and_none(void **state)
{
	struct fx f;
	const unsigned w[] = {1, 1, 1};
	fx_init(&f, TW_BAL_RANDOM_TWO, w, 3, 9);
	set_up(&f, 0, 0);
	const size_t ex[] = {2};
	size_t out;
	for (size_t i = 0; i < 50; i++) {
		assert_int_equal(tw_lb_pick(&f.lb, NULL, 0, ex, 1, &out), 0);
		assert_int_equal(out, 1);
	}
	set_up(&f, 1, 0);
	assert_int_equal(tw_lb_pick(&f.lb, NULL, 0, ex, 1, &out), TW_ENOENT);
	tw_lb_destroy(&f.lb);
}

static void p2c_seeded(void **state)
{
	struct fx a, b, c;
	const unsigned w[] = {1, 1, 1, 1, 1, 1, 1, 1};
	fx_init(&a, TW_BAL_RANDOM_TWO, w, 8, 1234);
	fx_init(&b, TW_BAL_RANDOM_TWO, w, 8, 1234);
	fx_init(&c, TW_BAL_RANDOM_TWO, w, 8, 1235);
	size_t same = 0, diff = 0;
	for (size_t i = 0; i < 200; i++) {
		size_t x = pick(&a), y = pick(&b), z = pick(&c);
		same += x == y;
		diff += x != z;
	}
	assert_int_equal(same, 200);
	assert_true(diff > 100);
	tw_lb_destroy(&a.lb);
	tw_lb_destroy(&b.lb);
	tw_lb_destroy(&c.lb);
}

/* Panic mode: with ignore_up every algorithm picks among all servers, still
 * honouring exclusions; without it, none is usable. */
static void ignore_up_panic(void **state)
{
	(void)state;
	static const enum tw_balance algs[] = {TW_BAL_ROUND_ROBIN, TW_BAL_LEAST_CONN, TW_BAL_RANDOM_TWO, TW_BAL_HASH};
	const unsigned w[] = {1, 1, 1};
	for (size_t a = 0; a < 4; a++) {
		struct fx f;
		fx_init(&f, algs[a], w, 3, 7);
		for (size_t i = 0; i < 3; i++)
			set_up(&f, i, 0);
		size_t out = SIZE_MAX;
		assert_int_equal(tw_lb_pick(&f.lb, NULL, 0, NULL, 0, &out), TW_ENOENT);
		f.lb.ignore_up = 1;
		int seen[3] = {0};
		for (size_t k = 0; k < 60; k++)
			seen[pick(&f)]++;
		assert_true(seen[0] > 0 && seen[1] > 0 && seen[2] > 0);
		const size_t ex[] = {0, 2};
		assert_int_equal(tw_lb_pick(&f.lb, "k", 1, ex, 2, &out), 0);
		assert_int_equal(out, 1);
		const size_t all[] = {0, 1, 2};
		assert_int_equal(tw_lb_pick(&f.lb, NULL, 0, all, 3, &out), TW_ENOENT);
		tw_lb_destroy(&f.lb);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(init_selects_ops),
		cmocka_unit_test(rr_smooth_sequence),
		cmocka_unit_test(rr_weights_exact),
		cmocka_unit_test(rr_down_and_back),
		cmocka_unit_test(rr_exclude),
		cmocka_unit_test(max_conns_full),
		cmocka_unit_test(lc_prefers_idle),
		cmocka_unit_test(lc_ties_rotate),
		cmocka_unit_test(lc_weights),
		cmocka_unit_test(p2c_avoids_most_loaded),
		cmocka_unit_test(p2c_spreads_when_equal),
		cmocka_unit_test(p2c_load_follows),
		cmocka_unit_test(p2c_single_and_none),
		cmocka_unit_test(p2c_seeded),
		cmocka_unit_test(ignore_up_panic),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
