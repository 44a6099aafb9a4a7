/* balance_p2c.c — power of two random choices.
 * Two distinct candidates are drawn among the usable servers, each with
 * probability proportional to its weight; the one with the lower
 * active/weight wins (the first drawn on a tie). With one usable server it is
 * the answer. priv holds a scratch array of usable indices (one per server),
 * so a pick allocates nothing. */
#include "edge/balance_int.h"

#include <stdlib.h>

static int p2c_init(struct tw_lb *lb)
{
	if (lb->nservers == 0)
		return 0;
	lb->priv = calloc(lb->nservers, sizeof(size_t));
	return lb->priv ? 0 : TW_ENOMEM;
}

static void p2c_destroy(struct tw_lb *lb)
{
	free(lb->priv);
	lb->priv = NULL;
}

/* Index into `usable` of the server that owns weight point r, skipping `skip`. */
static size_t draw(const struct tw_lb *lb, const size_t *usable, size_t n, uint64_t r, size_t skip)
{
	for (size_t k = 0; k < n; k++) {
		if (k == skip)
			continue;
		unsigned w = lb->servers[usable[k]].weight;
		if (r < w)
			return k;
		r -= w;
	}
	return n - 1 == skip ? n - 2 : n - 1; /* not reached: r < total */
}

static int p2c_pick(struct tw_lb *lb, const void *key, size_t key_len, const size_t *exclude,
		    size_t nexclude, size_t *out)
{
	(void)key;
	(void)key_len;
	size_t *usable = lb->priv;
	size_t n = 0;
	uint64_t total = 0;
	int saw_full = 0;
	for (size_t i = 0; i < lb->nservers; i++) {
		enum tw_lb_avail av = tw_lb_avail(lb, i, exclude, nexclude);
		if (av != TW_LB_USABLE) {
			saw_full |= av == TW_LB_FULL;
			continue;
		}
		usable[n++] = i;
		total += lb->servers[i].weight;
	}
	if (n == 0)
		return tw_lb_none(saw_full);
	if (n == 1) {
		*out = usable[0];
		return 0;
	}
	size_t a = draw(lb, usable, n, tw_lb_rand_below(lb, total), SIZE_MAX);
	uint64_t rest = total - lb->servers[usable[a]].weight;
	size_t b = draw(lb, usable, n, tw_lb_rand_below(lb, rest), a);
	const struct tw_lb_server *sa = &lb->servers[usable[a]], *sb = &lb->servers[usable[b]];
	/* sb strictly less loaded: active_b / weight_b < active_a / weight_a */
	int take_b = (uint64_t)sb->active * sa->weight < (uint64_t)sa->active * sb->weight;
	*out = take_b ? usable[b] : usable[a];
	return 0;
}

const struct tw_lb_ops tw_lb_random_two = {
	.name = "random_two",
	.init = p2c_init,
	.destroy = p2c_destroy,
	.pick = p2c_pick,
};
