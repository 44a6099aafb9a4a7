/* ratelimit.h — request rate limits (GCRA), one table per policy shared by
 * all worker threads (docs/rate-limits.md).
 *
 * A table is an array of 8-slot buckets (16 bytes a slot: the key's 64-bit
 * keyed hash and its theoretical arrival time), split in 64 shards with a
 * lock each; its size is the policy's `memory`, allocated once, so memory is
 * bounded whatever the traffic. A key whose TAT is in the past is idle (its
 * bucket full again): its slot is reused first, losing nothing. A new key
 * whose bucket of slots holds 8 counting keys gets the policy's on_full.
 *
 * Tables outlive generations: tw_rl_table_get finds the live table of a
 * policy with the same name and settings (a reload keeps its state) or makes
 * one; tables are reference counted (one per generation using them). */
#ifndef TW_EDGE_RATELIMIT_H
#define TW_EDGE_RATELIMIT_H

#include "conf/config.h"

#include <stddef.h>
#include <stdint.h>

struct tw_rl_table;
struct tw_metrics_shard;

enum tw_rl_result { TW_RL_PASS = 0, TW_RL_LIMITED, TW_RL_EVICTED, TW_RL_FULL, TW_RL_NRESULTS };

struct tw_rl_verdict {
	int allow;          /* 1: serve the request */
	int result;         /* TW_RL_*: what the table did (EVICTED: a pass that reused an idle slot) */
	uint64_t wait_ms;   /* !allow: until the next request of this key would pass */
	uint64_t remaining; /* allow: requests the key could still send now */
	uint64_t reset_ms;  /* until the key's bucket is full again */
};

/* Main thread (generation build): the table for policy p (registers its
 * metrics). NULL on ENOMEM. */
struct tw_rl_table *tw_rl_table_get(const struct tw_conf_rate_limit *p);
void tw_rl_table_put(struct tw_rl_table *t); /* NULL ok; any thread */

/* Count one request of key (any bytes) at now_ns (CLOCK_MONOTONIC). */
void tw_rl_check(struct tw_rl_table *t, const void *key, size_t len, uint64_t now_ns, struct tw_rl_verdict *v);
/* The metric slot of result r (tapwork_ratelimit_total{policy,result}). */
uint32_t tw_rl_metric(const struct tw_rl_table *t, int r);
/* N for `cluster: divide` as seen in the cluster (the ready endpoints of
 * tapwork's own Service); 0 = unknown: each policy's `replicas`. Applies at
 * once to every live table (their keys' state kept). Any thread. */
void tw_rl_set_cluster_size(unsigned n);
/* The effective policy after `cluster: divide`. */
uint64_t tw_rl_emission_ns(const struct tw_rl_table *t);
unsigned tw_rl_burst(const struct tw_rl_table *t);
size_t tw_rl_capacity(const struct tw_rl_table *t); /* keys the table can hold */

#endif
