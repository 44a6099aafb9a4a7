/* ratelimit.c — GCRA tables (ratelimit.h). */
#include "edge/ratelimit.h"

#include "edge/balance.h"
#include "edge/metrics.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

#define RL_SHARDS 64
#define RL_WAYS 8

struct rl_slot {
	uint64_t key; /* keyed hash | 1; 0 = never used */
	uint64_t tat; /* theoretical arrival time, ns */
};

struct rl_shard {
	pthread_mutex_t lock;
	struct rl_slot *b; /* [nbuckets * RL_WAYS] */
	char pad[64 - sizeof(pthread_mutex_t) % 64 - sizeof(void *)];
};

struct tw_rl_table {
	struct tw_rl_table *next; /* registry */
	int refs;                 /* under reg_lock */
	char *name;
	uint64_t sig;
	uint64_t seed;
	/* the effective policy: written under reg_lock when N changes, read
	 * without it (relaxed: a request racing a change sees the old or the
	 * new one) */
	_Atomic uint64_t T;   /* emission interval, ns */
	_Atomic uint64_t tau; /* burst tolerance, ns: (burst - 1) * T */
	_Atomic unsigned burst;
	struct tw_rl_rate rate; /* as configured */
	unsigned burst_conf;
	unsigned replicas_conf; /* divide: the configured N; 0 = cluster: local */
	size_t nbuckets; /* per shard */
	void *mem;
	size_t memlen;
	uint32_t m[TW_RL_NRESULTS];
	struct rl_shard shards[RL_SHARDS];
};

static pthread_mutex_t reg_lock = PTHREAD_MUTEX_INITIALIZER;
static struct tw_rl_table *reg;
static unsigned cluster_n; /* under reg_lock: N seen in the cluster, 0 = none */

static uint64_t mix(uint64_t x)
{
	x ^= x >> 33;
	x *= 0xff51afd7ed558ccdULL;
	x ^= x >> 33;
	x *= 0xc4ceb9fe1a85ec53ULL;
	x ^= x >> 33;
	return x;
}

/* The settings that decide a table's state: same ones, same table. */
static uint64_t signature(const struct tw_conf_rate_limit *p)
{
	uint64_t v[10] = {(uint64_t)p->key.kind, p->rate.count, p->rate.period_ms, p->burst, p->memory,
			  p->ipv6_prefix, (uint64_t)p->cluster, p->replicas, (uint64_t)p->per_route,
			  p->key.name ? tw_lb_hash64(p->key.name, strlen(p->key.name)) : 0};
	return tw_lb_hash64(v, sizeof v);
}

/* Under reg_lock: T, tau and burst for the current N. */
static void effective(struct tw_rl_table *t)
{
	unsigned n = 1;
	if (t->replicas_conf)
		n = cluster_n ? cluster_n : t->replicas_conf;
	/* T = period / (count / n) */
	long double x = (long double)t->rate.period_ms * 1e6L * n / (long double)t->rate.count;
	uint64_t T = x < 1 ? 1 : (uint64_t)x;
	unsigned burst = (t->burst_conf + n - 1) / n;
	if (burst == 0)
		burst = 1;
	atomic_store_explicit(&t->T, T, memory_order_relaxed);
	atomic_store_explicit(&t->tau, (uint64_t)(burst - 1) * T, memory_order_relaxed);
	atomic_store_explicit(&t->burst, burst, memory_order_relaxed);
}

void tw_rl_set_cluster_size(unsigned n)
{
	pthread_mutex_lock(&reg_lock);
	cluster_n = n;
	for (struct tw_rl_table *t = reg; t; t = t->next)
		if (t->replicas_conf)
			effective(t);
	pthread_mutex_unlock(&reg_lock);
}

struct tw_rl_table *tw_rl_table_get(const struct tw_conf_rate_limit *p)
{
	uint64_t sig = signature(p);
	pthread_mutex_lock(&reg_lock);
	for (struct tw_rl_table *t = reg; t; t = t->next)
		if (t->sig == sig && strcmp(t->name, p->name) == 0) {
			t->refs++;
			pthread_mutex_unlock(&reg_lock);
			return t;
		}
	struct tw_rl_table *t = calloc(1, sizeof *t);
	if (t == NULL || (t->name = strdup(p->name)) == NULL)
		goto fail;
	t->sig = sig;
	t->refs = 1;
	t->rate = p->rate;
	t->burst_conf = p->burst;
	t->replicas_conf = p->cluster == TW_RL_CLUSTER_DIVIDE ? (p->replicas ? p->replicas : 1) : 0;
	effective(t);
	size_t slots = (size_t)(p->memory / sizeof(struct rl_slot));
	t->nbuckets = slots / RL_WAYS / RL_SHARDS;
	if (t->nbuckets == 0)
		t->nbuckets = 1;
	t->memlen = t->nbuckets * RL_WAYS * RL_SHARDS * sizeof(struct rl_slot);
	/* zero pages until a key lands in them: RSS grows with keys, up to memory */
	t->mem = mmap(NULL, t->memlen, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (t->mem == MAP_FAILED) {
		t->mem = NULL;
		goto fail;
	}
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	t->seed = mix((uint64_t)ts.tv_nsec ^ ((uint64_t)ts.tv_sec << 20) ^ (uint64_t)(uintptr_t)t);
	for (int i = 0; i < RL_SHARDS; i++) {
		pthread_mutex_init(&t->shards[i].lock, NULL);
		t->shards[i].b = (struct rl_slot *)t->mem + (size_t)i * t->nbuckets * RL_WAYS;
	}
	static const char *const rn[TW_RL_NRESULTS] = {"pass", "limited", "evicted", "full"};
	char pol[160], labels[256];
	tw_metrics_escape(p->name, pol, sizeof pol);
	for (int r = 0; r < TW_RL_NRESULTS; r++) {
		snprintf(labels, sizeof labels, "policy=\"%s\",result=\"%s\"", pol, rn[r]);
		tw_metrics_register("tapwork_ratelimit_total",
				    "Rate-limited requests by policy and result (evicted: a pass that reused an idle "
				    "key's slot; full: no room, on_full applied).",
				    TW_METRIC_COUNTER, labels, &t->m[r]);
	}
	t->next = reg;
	reg = t;
	pthread_mutex_unlock(&reg_lock);
	return t;
fail:
	pthread_mutex_unlock(&reg_lock);
	if (t)
		free(t->name);
	free(t);
	return NULL;
}

void tw_rl_table_put(struct tw_rl_table *t)
{
	if (t == NULL)
		return;
	pthread_mutex_lock(&reg_lock);
	if (--t->refs > 0) {
		pthread_mutex_unlock(&reg_lock);
		return;
	}
	for (struct tw_rl_table **pp = &reg; *pp; pp = &(*pp)->next)
		if (*pp == t) {
			*pp = t->next;
			break;
		}
	pthread_mutex_unlock(&reg_lock);
	for (int i = 0; i < RL_SHARDS; i++)
		pthread_mutex_destroy(&t->shards[i].lock);
	munmap(t->mem, t->memlen);
	free(t->name);
	free(t);
}

void tw_rl_check(struct tw_rl_table *t, const void *key, size_t len, uint64_t now, struct tw_rl_verdict *v)
{
	uint64_t h = mix(tw_lb_hash64(key, len) ^ t->seed) | 1;
	/* bit 0 is always set: the shard comes from bits 1-6, the bucket from
	 * the high 32 bits mapped onto [0, nbuckets) by a multiply (no division) */
	struct rl_shard *sh = &t->shards[(h >> 1) % RL_SHARDS];
	struct rl_slot *b = sh->b + (size_t)(((h >> 32) * (uint64_t)t->nbuckets) >> 32) * RL_WAYS;
	*v = (struct tw_rl_verdict){0};
	pthread_mutex_lock(&sh->lock);
	struct rl_slot *s = NULL, *free_slot = NULL, *idle = NULL;
	for (int i = 0; i < RL_WAYS; i++) {
		if (b[i].key == h) {
			s = &b[i];
			break;
		}
		if (b[i].key == 0) {
			if (free_slot == NULL)
				free_slot = &b[i];
		} else if (b[i].tat <= now && (idle == NULL || b[i].tat < idle->tat)) {
			idle = &b[i];
		}
	}
	int result = TW_RL_PASS;
	if (s == NULL) {
		s = free_slot ? free_slot : idle;
		if (s == NULL) {
			pthread_mutex_unlock(&sh->lock);
			v->result = TW_RL_FULL;
			return;
		}
		if (s == idle)
			result = TW_RL_EVICTED;
		s->key = h;
		s->tat = now;
	}
	uint64_t T = atomic_load_explicit(&t->T, memory_order_relaxed),
		 tau = atomic_load_explicit(&t->tau, memory_order_relaxed);
	uint64_t tat = s->tat > now ? s->tat : now;
	if (tat - now > tau) {
		pthread_mutex_unlock(&sh->lock);
		v->result = TW_RL_LIMITED;
		v->wait_ms = (tat - now - tau + 999999) / 1000000;
		v->reset_ms = (tat - now + 999999) / 1000000;
		return;
	}
	s->tat = tat + T;
	pthread_mutex_unlock(&sh->lock);
	v->allow = 1;
	v->result = result;
	v->remaining = (tau - (tat - now)) / T;
	v->reset_ms = (tat + T - now + 999999) / 1000000;
}

uint32_t tw_rl_metric(const struct tw_rl_table *t, int r) { return t->m[r]; }
uint64_t tw_rl_emission_ns(const struct tw_rl_table *t) { return atomic_load_explicit(&t->T, memory_order_relaxed); }
unsigned tw_rl_burst(const struct tw_rl_table *t) { return atomic_load_explicit(&t->burst, memory_order_relaxed); }
size_t tw_rl_capacity(const struct tw_rl_table *t) { return t->nbuckets * RL_WAYS * RL_SHARDS; }
