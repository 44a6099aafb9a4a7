/* balance_lc.c — least active connections relative to weight.
 * Server a is less loaded than b when active_a * weight_b < active_b * weight_a.
 * Among the equally least-loaded, smooth weighted round robin decides, so
 * equal servers share and weights still count while everything is idle. */
#include "edge/balance_int.h"

/* -1: a less loaded than b, 0: equal, 1: more. */
static int load_cmp(const struct tw_lb_server *a, const struct tw_lb_server *b)
{
	uint64_t x = (uint64_t)a->active * b->weight, y = (uint64_t)b->active * a->weight;
	return x < y ? -1 : (x > y ? 1 : 0);
}

static int lc_pick(struct tw_lb *lb, const void *key, size_t key_len, const size_t *exclude,
		   size_t nexclude, size_t *out)
{
	(void)key;
	(void)key_len;
	struct tw_lb_server *least = NULL;
	int saw_full = 0;
	for (size_t i = 0; i < lb->nservers; i++) {
		enum tw_lb_avail av = tw_lb_avail(lb, i, exclude, nexclude);
		if (av != TW_LB_USABLE) {
			saw_full |= av == TW_LB_FULL;
			continue;
		}
		if (least == NULL || load_cmp(&lb->servers[i], least) < 0)
			least = &lb->servers[i];
	}
	if (least == NULL)
		return tw_lb_none(saw_full);
	/* Second pass: smooth weighted round robin among the ties. */
	struct tw_lb_server *best = NULL;
	int64_t total = 0;
	for (size_t i = 0; i < lb->nservers; i++) {
		struct tw_lb_server *s = &lb->servers[i];
		if (load_cmp(s, least) != 0 || tw_lb_avail(lb, i, exclude, nexclude) != TW_LB_USABLE)
			continue;
		s->current += s->weight;
		total += s->weight;
		if (best == NULL || s->current > best->current)
			best = s;
	}
	best->current -= total;
	*out = (size_t)(best - lb->servers);
	return 0;
}

const struct tw_lb_ops tw_lb_least_conn = {
	.name = "least_conn",
	.init = NULL,
	.destroy = NULL,
	.pick = lc_pick,
};
