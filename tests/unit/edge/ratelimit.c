/* Unit tests for the GCRA tables (src/edge/ratelimit.c) with a synthetic
 * clock: exact admissions (burst + rate x t), the wait, idle slots reused,
 * a full bucket, cluster: divide, reuse across reloads, threads sharing one
 * table, and a million distinct keys in a bounded table. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "edge/ratelimit.h"

#define SEC 1000000000ull

static struct tw_conf_rate_limit pol(const char *name, uint64_t count, uint64_t period_ms, unsigned burst,
				     uint64_t memory)
{
	struct tw_conf_rate_limit p;
	memset(&p, 0, sizeof p);
	p.name = (char *)name;
	p.rate.count = count;
	p.rate.period_ms = period_ms;
	p.burst = burst;
	p.memory = memory;
	p.ipv6_prefix = 64;
	p.replicas = 1;
	return p;
}

static int hit(struct tw_rl_table *t, const char *key, uint64_t now, struct tw_rl_verdict *v)
{
	tw_rl_check(t, key, strlen(key), now, v);
	return v->allow;
}

static void exact_admissions(void **state)
{
	struct tw_conf_rate_limit p = pol("t1", 10, 60000, 5, 1 << 20); /* 10/m: one per 6 s */
	struct tw_rl_table *t = tw_rl_table_get(&p);
	assert_non_null(t);
	struct tw_rl_verdict v;
	uint64_t t0 = 1000 * SEC;
	int n = 0;
	for (int i = 0; i < 20; i++)
		n += hit(t, "k", t0, &v);
	assert_int_equal(n, 5); /* the burst at once */
	assert_false(v.allow);
	assert_int_equal(v.result, TW_RL_LIMITED);
	assert_int_equal(v.wait_ms, 6000); /* the next one in 6 s */
	assert_false(hit(t, "k", t0 + 6 * SEC - 1, &v));
	assert_int_equal(v.wait_ms, 1);
	assert_true(hit(t, "k", t0 + 6 * SEC, &v));
	assert_int_equal(v.remaining, 0);
	/* over 60 s at 10 ms steps: 5 + 10 in all (rate x t + burst) */
	struct tw_rl_table *t2 = tw_rl_table_get(&(struct tw_conf_rate_limit){.name = "t2", .rate = {10, 60000},
									    .burst = 5, .memory = 1 << 20,
									    .replicas = 1});
	n = 0;
	for (uint64_t ms = 0; ms < 60000; ms += 10)
		n += hit(t2, "k", t0 + ms * 1000000ull, &v);
	assert_int_equal(n, 5 + 9); /* the 10th refill lands at 60 s exactly */
	n += hit(t2, "k", t0 + 60 * SEC, &v);
	assert_int_equal(n, 15);
	/* another key is not affected; remaining counts down */
	assert_true(hit(t, "other", t0, &v));
	assert_int_equal(v.remaining, 4);
	assert_int_equal(v.result, TW_RL_PASS);
	tw_rl_table_put(t);
	tw_rl_table_put(t2);
}

static void divide_and_reuse(void **state)
{
	struct tw_conf_rate_limit p = pol("d", 30, 1000, 7, 1 << 20);
	p.cluster = TW_RL_CLUSTER_DIVIDE;
	p.replicas = 3;
	struct tw_rl_table *t = tw_rl_table_get(&p);
	assert_int_equal(tw_rl_burst(t), 3);                 /* ceil(7/3) */
	assert_int_equal(tw_rl_emission_ns(t), SEC / 10);    /* 10/s each */
	struct tw_rl_verdict v;
	assert_true(hit(t, "k", 5 * SEC, &v));
	/* the same settings: the same table, its state kept */
	struct tw_rl_table *again = tw_rl_table_get(&p);
	assert_ptr_equal(again, t);
	assert_true(hit(again, "k", 5 * SEC, &v));
	assert_true(hit(again, "k", 5 * SEC, &v));
	assert_false(hit(again, "k", 5 * SEC, &v));
	/* changed settings: a new table */
	p.burst = 8;
	struct tw_rl_table *other = tw_rl_table_get(&p);
	assert_ptr_not_equal(other, t);
	assert_true(hit(other, "k", 5 * SEC, &v));
	tw_rl_table_put(t);
	tw_rl_table_put(again);
	tw_rl_table_put(other);
}

/* N from the cluster (tw_rl_set_cluster_size): every live divide table
 * follows at once, keeping its keys; local tables are not touched; 0 goes
 * back to `replicas`; a table made later starts with the cluster's N. */
static void cluster_size_live(void **state)
{
	struct tw_conf_rate_limit p = pol("cz", 30, 1000, 30, 1 << 20);
	p.cluster = TW_RL_CLUSTER_DIVIDE;
	p.replicas = 2;
	struct tw_conf_rate_limit l = pol("cz-local", 30, 1000, 30, 1 << 20);
	struct tw_rl_table *t = tw_rl_table_get(&p), *lt = tw_rl_table_get(&l);
	assert_int_equal(tw_rl_burst(t), 15);
	struct tw_rl_verdict v;
	int n = 0;
	for (int i = 0; i < 40; i++)
		n += hit(t, "k", 7 * SEC, &v);
	assert_int_equal(n, 15);
	tw_rl_set_cluster_size(3);
	assert_int_equal(tw_rl_burst(t), 10);
	assert_int_equal(tw_rl_emission_ns(t), SEC / 10);
	assert_int_equal(tw_rl_burst(lt), 30);
	assert_int_equal(tw_rl_emission_ns(lt), SEC / 30);
	/* the key's state is kept: still limited at once */
	assert_false(hit(t, "k", 7 * SEC, &v));
	n = 0;
	for (uint64_t ms = 0; ms < 10000; ms += 10)
		n += hit(t, "k", 8 * SEC + ms * 1000000ull, &v);
	assert_in_range(n, 109, 110); /* full again at 8 s: burst 10, then 10/s for 10 s */
	struct tw_rl_table *later = tw_rl_table_get(&(struct tw_conf_rate_limit){
	    .name = "cz2", .rate = {30, 1000}, .burst = 30, .memory = 1 << 20, .replicas = 5,
	    .cluster = TW_RL_CLUSTER_DIVIDE});
	assert_int_equal(tw_rl_burst(later), 10);
	tw_rl_set_cluster_size(1);
	assert_int_equal(tw_rl_burst(t), 30);
	assert_int_equal(tw_rl_emission_ns(t), SEC / 30);
	tw_rl_set_cluster_size(0);
	assert_int_equal(tw_rl_burst(t), 15);
	assert_int_equal(tw_rl_burst(later), 6);
	tw_rl_table_put(t);
	tw_rl_table_put(lt);
	tw_rl_table_put(later);
}

/* 8 KiB: 512 slots, 64 shards x 1 bucket of 8. */
static void full_and_idle_reuse(void **state)
{
	struct tw_conf_rate_limit p = pol("f", 1, 1000, 1, 8192);
	struct tw_rl_table *t = tw_rl_table_get(&p);
	assert_int_equal(tw_rl_capacity(t), 512);
	struct tw_rl_verdict v;
	char key[32];
	int pass = 0, full = 0;
	for (int i = 0; i < 5000; i++) {
		snprintf(key, sizeof key, "k%d", i);
		tw_rl_check(t, key, strlen(key), 10 * SEC, &v);
		pass += v.allow;
		full += v.result == TW_RL_FULL;
	}
	assert_int_equal(pass, 512); /* every slot taken, then none */
	assert_int_equal(full, 5000 - 512);
	/* 1 s later every key is idle again: new keys reuse their slots */
	int evicted = 0;
	for (int i = 5000; i < 5100; i++) {
		snprintf(key, sizeof key, "k%d", i);
		tw_rl_check(t, key, strlen(key), 11 * SEC, &v);
		assert_true(v.allow);
		evicted += v.result == TW_RL_EVICTED;
	}
	assert_true(evicted > 90);
	tw_rl_table_put(t);
}

struct thr {
	struct tw_rl_table *t;
	int pass;
};

static void *worker(void *arg)
{
	struct thr *a = arg;
	struct tw_rl_verdict v;
	for (int i = 0; i < 20000; i++)
		a->pass += hit(a->t, "shared", 77 * SEC, &v);
	return NULL;
}

static void threads_share_one_table(void **state)
{
	struct tw_conf_rate_limit p = pol("thr", 100, 1000, 250, 1 << 20);
	struct tw_rl_table *t = tw_rl_table_get(&p);
	struct thr a[4] = {{t, 0}, {t, 0}, {t, 0}, {t, 0}};
	pthread_t th[4];
	for (int i = 0; i < 4; i++)
		pthread_create(&th[i], NULL, worker, &a[i]);
	int total = 0;
	for (int i = 0; i < 4; i++) {
		pthread_join(th[i], NULL);
		total += a[i].pass;
	}
	assert_int_equal(total, 250);
	tw_rl_table_put(t);
}

static long rss_kib(void)
{
	FILE *f = fopen("/proc/self/status", "r");
	char line[256];
	long v = -1;
	while (f && fgets(line, sizeof line, f))
		if (sscanf(line, "VmRSS: %ld", &v) == 1)
			break;
	if (f)
		fclose(f);
	return v;
}

/* A flood of a million distinct client keys: the table never grows. */
static void million_keys_bounded(void **state)
{
	struct tw_conf_rate_limit p = pol("flood", 10, 1000, 5, 4u << 20);
	long before = rss_kib();
	struct tw_rl_table *t = tw_rl_table_get(&p);
	struct tw_rl_verdict v;
	int pass = 0;
	for (uint32_t i = 0; i < 1000000; i++) {
		uint8_t key[5] = {4, (uint8_t)(i >> 24), (uint8_t)(i >> 16), (uint8_t)(i >> 8), (uint8_t)i};
		tw_rl_check(t, key, sizeof key, 3 * SEC + i * 1000ull, &v);
		pass += v.allow;
	}
	long after = rss_kib();
#ifdef __SANITIZE_ADDRESS__
	long slack = 2048; /* ASan's shadow of the table (1/8) and its own bookkeeping */
#else
	long slack = 512;
#endif
	if (after - before > 4 * 1024 + slack)
		fail_msg("RSS grew by %ld KiB for a 4 MiB table", after - before);
	assert_true(pass > 200000);                   /* every key that found room passed */
	/* a counting key in a full table is still limited */
	uint8_t k[5] = {4, 1, 2, 3, 4};
	int n = 0;
	for (int i = 0; i < 10; i++) {
		tw_rl_check(t, k, sizeof k, 5 * SEC, &v);
		n += v.allow;
	}
	assert_true(n <= 5);
	tw_rl_table_put(t);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(exact_admissions),
		cmocka_unit_test(divide_and_reuse),
		cmocka_unit_test(cluster_size_live),
		cmocka_unit_test(full_and_idle_reuse),
		cmocka_unit_test(threads_share_one_table),
		cmocka_unit_test(million_keys_bounded),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
