/* balance.h — load-balancing algorithms behind one interface.
 *
 * Each worker thread owns one struct tw_lb per backend (no locks). The
 * servers' health is shared across workers through `up` pointers to atomic
 * flags maintained by the health checker; an algorithm reads them with
 * relaxed loads and never picks a server that is down or excluded.
 *
 * Algorithms (one file each): balance_rr.c (smooth weighted round robin, as
 * nginx), balance_lc.c (least active connections, weighted; ties broken
 * round-robin), balance_p2c.c (power of two random choices on active/weight),
 * balance_hash.c (consistent hashing on a ring with virtual nodes
 * proportional to weight; a down server's keys move to the next server on
 * the ring, the others keep theirs). */
#ifndef TW_EDGE_BALANCE_H
#define TW_EDGE_BALANCE_H

#include "conf/config.h"

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

struct tw_lb_server {
	const struct tw_conf_server *conf;
	unsigned weight;
	const atomic_int *up; /* 1 = may receive traffic (health + passive ejection) */
	unsigned active;      /* in-flight requests from this worker (edge updates) */
	int64_t current;      /* smooth round-robin state */
};

struct tw_lb;

struct tw_lb_ops {
	const char *name;
	int (*init)(struct tw_lb *lb);      /* build per-algorithm state */
	void (*destroy)(struct tw_lb *lb);
	/* Pick a server index. key/key_len: hash input (hash only; NULL/0 when the
	 * request lacks it -> any up server). exclude: indices already tried for
	 * this request. Returns 0 and *out, or TW_ENOENT when no server is usable.
	 * A server whose conf->max_conns is non-zero and whose `active` has
	 * reached it counts as full and is skipped too; when every server that is
	 * up and not excluded is full, pick returns TW_ELIMIT instead of
	 * TW_ENOENT (the edge may queue the request rather than answer 503).
	 * *out is only written on success. */
	int (*pick)(struct tw_lb *lb, const void *key, size_t key_len, const size_t *exclude,
		    size_t nexclude, size_t *out);
};

struct tw_lb {
	const struct tw_lb_ops *ops;
	struct tw_lb_server *servers;
	size_t nservers;
	uint64_t rng; /* xorshift state, per worker */
	int ignore_up; /* panic mode: a server's up flag is not consulted (edge sets it around one pick) */
	void *priv;   /* algorithm state, freed by destroy */
};

extern const struct tw_lb_ops tw_lb_round_robin, tw_lb_least_conn, tw_lb_random_two, tw_lb_hash;

/* Set up lb for a backend: servers[i].conf = &be->servers[i], weight
 * (0 -> 1), up = &up_flags[i] (array of be->nservers atomics owned by the
 * caller; up_flags NULL = every server always up). seed: per-worker seed of
 * the xorshift state (any value, 0 included). lb->servers is malloc'ed and
 * freed by tw_lb_destroy; be must outlive lb. Returns 0, TW_ENOMEM, or
 * TW_EINVAL for an unknown be->balance. */
int tw_lb_init(struct tw_lb *lb, const struct tw_conf_backend *be, const atomic_int *up_flags,
	       uint64_t seed);
void tw_lb_destroy(struct tw_lb *lb); /* NULL ok */
static inline int tw_lb_pick(struct tw_lb *lb, const void *key, size_t key_len, const size_t *exclude,
			     size_t nexclude, size_t *out)
{
	return lb->ops->pick(lb, key, key_len, exclude, nexclude, out);
}

/* 64-bit hash used for consistent hashing. Its output is a compatibility
 * promise (it decides which server a key sticks to, across restarts, replicas
 * and versions): never change it; tests/unit/edge/balance_hash.c pins it.
 * Independent of CPU byte order and alignment. Not for hostile-input hash
 * tables (it is unkeyed). */
uint64_t tw_lb_hash64(const void *p, size_t n);

#endif
