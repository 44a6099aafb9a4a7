/* rl_req.h — rate limits on the request path (rl_req.c). */
#ifndef TW_EDGE_RL_REQ_H
#define TW_EDGE_RL_REQ_H

#include <stddef.h>

struct tw_conn;
struct tw_req;

/* For a routed request whose route has a rate_limit (r->route->rate_limit
 * != 0), buf the request head: 0 = go on, 1 = answered 429 (the caller
 * consumes the head and stops). */
int tw_rl_request(struct tw_conn *c, struct tw_req *r, const char *buf);

/* A policy with `headers: always` admitted r (r->rl_policy != 0): its
 * RateLimit-Policy and RateLimit fields for the answer, through fn. */
int tw_rl_fields(const struct tw_req *r, int (*fn)(void *ctx, const char *name, size_t nlen, const char *value,
						    size_t vlen),
		 void *ctx);

#endif
