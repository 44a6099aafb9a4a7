/* balance_int.h — helpers shared by the balancing algorithms (balance_*.c).
 * Not for the rest of the program: use balance.h. */
#ifndef TW_EDGE_BALANCE_INT_H
#define TW_EDGE_BALANCE_INT_H

#include "edge/balance.h"

enum tw_lb_avail {
	TW_LB_USABLE = 0, /* up, not excluded, below max_conns */
	TW_LB_FULL,       /* up and not excluded, but at max_conns */
	TW_LB_UNUSABLE    /* down or excluded */
};

/* Availability of server i for this pick. */
enum tw_lb_avail tw_lb_avail(const struct tw_lb *lb, size_t i, const size_t *exclude, size_t nexclude);

/* What pick returns when nothing was usable: TW_ELIMIT if some server was
 * only full, else TW_ENOENT. */
static inline int tw_lb_none(int saw_full) { return saw_full ? TW_ELIMIT : TW_ENOENT; }

/* xorshift64* step on lb->rng; tw_lb_rand_below: uniform-enough in [0, n), n > 0. */
uint64_t tw_lb_rand(struct tw_lb *lb);
uint64_t tw_lb_rand_below(struct tw_lb *lb, uint64_t n);

/* Smooth weighted round robin over the usable servers (nginx's algorithm):
 * every usable server gains its weight, the highest `current` wins and pays
 * back the sum of the weights. Used by round_robin and by hash without a key. */
int tw_lb_swrr(struct tw_lb *lb, const size_t *exclude, size_t nexclude, size_t *out);

#endif
