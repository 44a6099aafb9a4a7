/* balance.c — tw_lb setup, the stable 64-bit hash, and helpers shared by the
 * algorithm files (balance_rr.c, balance_lc.c, balance_p2c.c, balance_hash.c).
 * See docs/internals/balancing.md. */
#include "edge/balance.h"

#include "edge/balance_int.h"

#include <stdlib.h>
#include <string.h>

int tw_lb_init(struct tw_lb *lb, const struct tw_conf_backend *be, const atomic_int *up_flags,
	       uint64_t seed)
{
	memset(lb, 0, sizeof *lb);
	switch (be->balance) {
	case TW_BAL_ROUND_ROBIN: lb->ops = &tw_lb_round_robin; break;
	case TW_BAL_LEAST_CONN: lb->ops = &tw_lb_least_conn; break;
	case TW_BAL_RANDOM_TWO: lb->ops = &tw_lb_random_two; break;
	case TW_BAL_HASH: lb->ops = &tw_lb_hash; break;
	default: return TW_EINVAL;
	}
	if (be->nservers > 0) {
		lb->servers = calloc(be->nservers, sizeof *lb->servers);
		if (lb->servers == NULL)
			return TW_ENOMEM;
	}
	lb->nservers = be->nservers;
	for (size_t i = 0; i < be->nservers; i++) {
		struct tw_lb_server *s = &lb->servers[i];
		s->conf = &be->servers[i];
		s->weight = be->servers[i].weight ? be->servers[i].weight : 1;
		s->up = up_flags ? &up_flags[i] : NULL;
	}
	/* xorshift needs a non-zero state; spread the seed's bits first. */
	uint64_t z = seed + 0x9e3779b97f4a7c15ULL;
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	z ^= z >> 31;
	lb->rng = z ? z : 0x2545f4914f6cdd1dULL;
	int rc = lb->ops->init ? lb->ops->init(lb) : 0;
	if (rc != 0) {
		free(lb->servers);
		memset(lb, 0, sizeof *lb);
	}
	return rc;
}

void tw_lb_destroy(struct tw_lb *lb)
{
	if (lb == NULL)
		return;
	if (lb->ops != NULL && lb->ops->destroy != NULL)
		lb->ops->destroy(lb);
	free(lb->servers);
	memset(lb, 0, sizeof *lb);
}

enum tw_lb_avail tw_lb_avail(const struct tw_lb *lb, size_t i, const size_t *exclude, size_t nexclude)
{
	const struct tw_lb_server *s = &lb->servers[i];
	if (s->up != NULL && !lb->ignore_up && atomic_load_explicit(s->up, memory_order_relaxed) == 0)
		return TW_LB_UNUSABLE;
	for (size_t k = 0; k < nexclude; k++)
		if (exclude[k] == i)
			return TW_LB_UNUSABLE;
	if (s->conf != NULL && s->conf->max_conns != 0 && s->active >= s->conf->max_conns)
		return TW_LB_FULL;
	return TW_LB_USABLE;
}

uint64_t tw_lb_rand(struct tw_lb *lb)
{
	uint64_t x = lb->rng;
	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	lb->rng = x;
	return x * 0x2545f4914f6cdd1dULL;
}

uint64_t tw_lb_rand_below(struct tw_lb *lb, uint64_t n)
{
	/* Multiply-shift on the high 32 bits: bias is below 2^-32 * n, and n
	 * (a sum of weights <= 256 per server) stays far below 2^32. */
	uint64_t r = tw_lb_rand(lb) >> 32;
	if (n <= UINT32_MAX)
		return (r * n) >> 32;
	return tw_lb_rand(lb) % n;
}

int tw_lb_swrr(struct tw_lb *lb, const size_t *exclude, size_t nexclude, size_t *out)
{
	struct tw_lb_server *best = NULL;
	int64_t total = 0;
	int saw_full = 0;
	for (size_t i = 0; i < lb->nservers; i++) {
		enum tw_lb_avail av = tw_lb_avail(lb, i, exclude, nexclude);
		if (av != TW_LB_USABLE) {
			saw_full |= av == TW_LB_FULL;
			continue;
		}
		struct tw_lb_server *s = &lb->servers[i];
		s->current += s->weight;
		total += s->weight;
		if (best == NULL || s->current > best->current)
			best = s;
	}
	if (best == NULL)
		return tw_lb_none(saw_full);
	best->current -= total;
	*out = (size_t)(best - lb->servers);
	return 0;
}

/* tw_lb_hash64 — our own 64-bit hash. Its output decides which server owns a
 * key on the consistent-hash ring, so it is part of tapwork's observable
 * behaviour: the function below must never change (byte order is fixed,
 * little-endian words, independent of the host CPU). The unit test pins
 * known outputs. Structure: the length seeds the state; each 8-byte word is
 * multiplied and xor-shifted on its own, folded into the state, which is
 * rotated and multiplied; the tail (1..7 bytes) is one more zero-padded
 * word; a final xor-shift-multiply avalanche spreads every input bit over
 * every output bit. */
#define HK0 0x9e3779b97f4a7c15ULL
#define HK1 0xbf58476d1ce4e5b9ULL
#define HK2 0x94d049bb133111ebULL
#define HK3 0xd6e8feb86659fd93ULL

static uint64_t rotl64(uint64_t x, unsigned r) { return (x << r) | (x >> (64 - r)); }

static uint64_t word_round(uint64_t h, uint64_t w)
{
	w *= HK1;
	w ^= w >> 29;
	w *= HK2;
	h ^= w;
	return rotl64(h, 27) * HK0 + HK3;
}

uint64_t tw_lb_hash64(const void *p, size_t n)
{
	const unsigned char *b = p;
	uint64_t h = HK3 ^ ((uint64_t)n * HK0);
	while (n >= 8) {
		uint64_t w = 0;
		for (unsigned i = 0; i < 8; i++)
			w |= (uint64_t)b[i] << (8 * i);
		h = word_round(h, w);
		b += 8;
		n -= 8;
	}
	if (n > 0) {
		uint64_t w = 0;
		for (unsigned i = 0; i < n; i++)
			w |= (uint64_t)b[i] << (8 * i);
		h = word_round(h, w);
	}
	h ^= h >> 31;
	h *= HK1;
	h ^= h >> 29;
	h *= HK2;
	h ^= h >> 32;
	return h;
}
