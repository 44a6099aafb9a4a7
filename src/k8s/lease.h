/* lease.h — leader election on a coordination.k8s.io/v1 Lease.
 *
 * Only the leader writes to the API (Ingress status, Events); every replica
 * serves traffic. The Lease holds holderIdentity, leaseDurationSeconds,
 * acquireTime, renewTime (RFC 3339 with microseconds) and leaseTransitions.
 * Expiry is judged on our own monotonic clock, never on the timestamps in
 * the object (clocks of replicas differ): a lease is expired when its
 * resourceVersion has not changed for leaseDurationSeconds since we first
 * saw that version. Writes carry the resourceVersion they read, so of two
 * replicas racing, one gets 409 Conflict and stays a follower. The leader
 * renews every duration/3 and counts itself leader only while its last
 * successful renew (timed from before the request was sent) is younger than
 * the duration, so it steps down before any other replica can take over.
 * See docs/internals/k8s.md. */
#ifndef TW_K8S_LEASE_H
#define TW_K8S_LEASE_H

#include "core/err.h"
#include "k8s/client.h"

#include <jansson.h>
#include <stdint.h>
#include <time.h>

/* What we read from the Lease object. */
struct tw_k8s_lease_obs {
	int exists;
	char holder[256];     /* "" = released */
	uint64_t duration_ms; /* spec.leaseDurationSeconds * 1000; 0 = absent */
	char rv[128];         /* metadata.resourceVersion */
	unsigned transitions; /* spec.leaseTransitions */
};

/* Our memory of it, on our monotonic clock. */
struct tw_k8s_lease_clock {
	char seen_rv[128];
	uint64_t seen_at_ms;    /* when seen_rv was first observed */
	uint64_t renewed_at_ms; /* start of our last successful write as holder; 0 = not leader */
};

enum tw_k8s_lease_action {
	TW_K8S_LEASE_WAIT = 0, /* someone else holds a live lease */
	TW_K8S_LEASE_CREATE,   /* no Lease object: create it, holding it */
	TW_K8S_LEASE_TAKE,     /* released or expired: take it over (transitions + 1) */
	TW_K8S_LEASE_RENEW     /* ours: renew */
};
const char *tw_k8s_lease_action_name(enum tw_k8s_lease_action a);

/* Parse a Lease object (NULL = absent). 0 or TW_EPROTO. */
int tw_k8s_lease_parse(const json_t *lease, struct tw_k8s_lease_obs *o);
/* Note the observation: a new resourceVersion restarts the expiry clock. */
void tw_k8s_lease_observe(struct tw_k8s_lease_clock *ck, const struct tw_k8s_lease_obs *o,
                          uint64_t now_ms);
/* The pure decision. def_duration_ms is used when the Lease has none. */
enum tw_k8s_lease_action tw_k8s_lease_decide(const struct tw_k8s_lease_clock *ck,
                                             const struct tw_k8s_lease_obs *o, const char *identity,
                                             uint64_t now_ms, uint64_t def_duration_ms);
int tw_k8s_lease_is_leader(const struct tw_k8s_lease_clock *ck, uint64_t now_ms,
                           uint64_t duration_ms);
/* "2026-12-07T07:27:12.123456Z" into buf (>= 32 bytes). */
void tw_k8s_time_micro(const struct timespec *t, char *buf, size_t len);

/* ---- the HTTP glue ---- */

struct tw_k8s_lease;
/* ns, name, identity are copied; duration_ms > 0. */
int tw_k8s_lease_new(struct tw_k8s_client *c, const char *ns, const char *name,
                     const char *identity, uint64_t duration_ms, struct tw_k8s_lease **out);
void tw_k8s_lease_free(struct tw_k8s_lease *l); /* NULL ok */
/* One round: read the Lease, decide, write. *leader tells the result.
 * Returns 0, or the transport/HTTP failure (then *leader says whether we
 * still count as leader on our clock). */
int tw_k8s_lease_step(struct tw_k8s_lease *l, uint64_t now_ms, int *leader, struct tw_err *err);
/* Give the lease up (holder ""), when we hold it: on clean shutdown. */
int tw_k8s_lease_release(struct tw_k8s_lease *l, struct tw_err *err);
/* Milliseconds until the next step should run (duration/3). */
uint64_t tw_k8s_lease_period_ms(const struct tw_k8s_lease *l);

#endif
