/* balance_hash.c — consistent hashing on a ring with virtual nodes.
 *
 * Each server gets 160 points per unit of weight (scaled down together when
 * the ring would exceed RING_MAX points, at least 1 each). A point is
 * tw_lb_hash64("<addr.text>#<replica>"), so the ring depends only on the
 * server addresses and weights, never on their order or on the process: every
 * worker and every replica of tapwork builds the same ring. A key goes to the
 * owner of the first point at or after tw_lb_hash64(key) (wrapping); when that
 * owner is down, excluded or full, the walk continues clockwise to the next
 * usable owner, so only the keys of an unusable server move. Without a key
 * the pick is smooth weighted round robin. */
#include "edge/balance_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define VNODES_PER_WEIGHT 160
#define RING_MAX 16384

struct point {
	uint64_t hash;
	size_t server;
};

struct ring {
	struct point *pts;
	size_t n;
};

static int point_cmp(const void *pa, const void *pb)
{
	const struct point *a = pa, *b = pb;
	if (a->hash != b->hash)
		return a->hash < b->hash ? -1 : 1;
	return a->server < b->server ? -1 : (a->server > b->server ? 1 : 0);
}

static int hash_init(struct tw_lb *lb)
{
	struct ring *r = calloc(1, sizeof *r);
	if (r == NULL)
		return TW_ENOMEM;
	lb->priv = r;
	uint64_t sumw = 0;
	for (size_t i = 0; i < lb->nservers; i++)
		sumw += lb->servers[i].weight;
	int scale = sumw * VNODES_PER_WEIGHT > RING_MAX;
	size_t total = 0;
	for (size_t i = 0; i < lb->nservers; i++) {
		uint64_t w = lb->servers[i].weight;
		uint64_t v = scale ? w * RING_MAX / sumw : w * VNODES_PER_WEIGHT;
		total += v ? v : 1;
	}
	if (total == 0)
		return 0;
	r->pts = calloc(total, sizeof *r->pts);
	if (r->pts == NULL) {
		free(r);
		lb->priv = NULL;
		return TW_ENOMEM;
	}
	for (size_t i = 0; i < lb->nservers; i++) {
		uint64_t w = lb->servers[i].weight;
		uint64_t v = scale ? w * RING_MAX / sumw : w * VNODES_PER_WEIGHT;
		if (v == 0)
			v = 1;
		const char *text = lb->servers[i].conf ? lb->servers[i].conf->addr.text : "";
		for (uint64_t k = 0; k < v; k++) {
			char buf[96];
			int len = snprintf(buf, sizeof buf, "%.64s#%llu", text, (unsigned long long)k);
			r->pts[r->n].hash = tw_lb_hash64(buf, (size_t)len);
			r->pts[r->n].server = i;
			r->n++;
		}
	}
	qsort(r->pts, r->n, sizeof *r->pts, point_cmp);
	return 0;
}

static void hash_destroy(struct tw_lb *lb)
{
	struct ring *r = lb->priv;
	if (r != NULL)
		free(r->pts);
	free(r);
	lb->priv = NULL;
}

static int hash_pick(struct tw_lb *lb, const void *key, size_t key_len, const size_t *exclude,
		     size_t nexclude, size_t *out)
{
	const struct ring *r = lb->priv;
	if (key == NULL || key_len == 0)
		return tw_lb_swrr(lb, exclude, nexclude, out);
	if (r == NULL || r->n == 0)
		return TW_ENOENT;
	uint64_t h = tw_lb_hash64(key, key_len);
	size_t lo = 0, hi = r->n; /* first point with hash >= h */
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (r->pts[mid].hash < h)
			lo = mid + 1;
		else
			hi = mid;
	}
	int saw_full = 0;
	size_t last = SIZE_MAX;
	for (size_t step = 0; step < r->n; step++) {
		size_t s = r->pts[(lo + step) % r->n].server;
		if (s == last)
			continue;
		last = s;
		enum tw_lb_avail av = tw_lb_avail(lb, s, exclude, nexclude);
		if (av == TW_LB_USABLE) {
			*out = s;
			return 0;
		}
		saw_full |= av == TW_LB_FULL;
	}
	return tw_lb_none(saw_full);
}

const struct tw_lb_ops tw_lb_hash = {
	.name = "hash",
	.init = hash_init,
	.destroy = hash_destroy,
	.pick = hash_pick,
};
