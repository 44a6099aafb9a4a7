/* balance_rr.c — smooth weighted round robin (nginx's algorithm).
 * Weights 5,1,1 give a a b a c a a; servers that are down, excluded or full
 * take no part in the round (their `current` is left as it was). */
#include "edge/balance_int.h"

static int rr_pick(struct tw_lb *lb, const void *key, size_t key_len, const size_t *exclude,
		   size_t nexclude, size_t *out)
{
	(void)key;
	(void)key_len;
	return tw_lb_swrr(lb, exclude, nexclude, out);
}

const struct tw_lb_ops tw_lb_round_robin = {
	.name = "round_robin",
	.init = NULL,
	.destroy = NULL,
	.pick = rr_pick,
};
