/* k8s.h — the seams of tapwork's Kubernetes mode (issue 11), shared by the
 * API client / informers (src/k8s/client.c, watch.c, cache.c, lease.c,
 * controller.c) and the pure translator (src/k8s/ingress.c).
 *
 * Data flow: informers list+watch the API server and keep one tw_k8s_store
 * per kind (objects as jansson values, keyed "namespace/name"). When a store
 * changes, the controller takes a consistent read of all stores (a
 * tw_k8s_view), asks the translator for a new struct tw_config — the file's
 * config plus the sites, routes and backends the Ingresses declare — and
 * hands it to the edge as a new generation (data, never config text). The
 * translator knows nothing of HTTP or threads; the data path knows nothing of
 * Kubernetes. */
#ifndef TW_K8S_K8S_H
#define TW_K8S_K8S_H

#include "conf/config.h"
#include "core/err.h"

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

/* One cached API object. `obj` is the whole object as the API server sent it
 * (owned: one reference held by the store). */
struct tw_k8s_obj {
	char *ns;   /* metadata.namespace; "" for cluster-scoped kinds */
	char *name; /* metadata.name */
	char *rv;   /* metadata.resourceVersion */
	json_t *obj;
};

/* The objects of one kind, keyed "ns/name". Implementation in cache.c. */
struct tw_k8s_store;

struct tw_k8s_store *tw_k8s_store_new(void);
void tw_k8s_store_free(struct tw_k8s_store *s); /* NULL ok */
/* Insert or replace (takes a reference of obj). 0 or TW_ENOMEM / TW_EINVAL
 * (no metadata.name). */
int tw_k8s_store_put(struct tw_k8s_store *s, json_t *obj);
/* Remove; 0, or TW_ENOENT. */
int tw_k8s_store_del(struct tw_k8s_store *s, const char *ns, const char *name);
/* Lend an object; NULL when absent. */
const struct tw_k8s_obj *tw_k8s_store_get(const struct tw_k8s_store *s, const char *ns, const char *name);
size_t tw_k8s_store_count(const struct tw_k8s_store *s);
/* The i-th object in a stable order (ns, then name), 0 <= i < count. */
const struct tw_k8s_obj *tw_k8s_store_at(const struct tw_k8s_store *s, size_t i);

/* A consistent read of every kind the Ingress translator needs. */
struct tw_k8s_view {
	const struct tw_k8s_store *ingresses;       /* networking.k8s.io/v1 Ingress */
	const struct tw_k8s_store *ingress_classes; /* networking.k8s.io/v1 IngressClass */
	const struct tw_k8s_store *services;        /* v1 Service */
	const struct tw_k8s_store *endpointslices;  /* discovery.k8s.io/v1 EndpointSlice */
	const struct tw_k8s_store *secrets;         /* v1 Secret, type kubernetes.io/tls */
	/* Gateway API (kubernetes.gateway set; else NULL) */
	const struct tw_k8s_store *gateway_classes; /* gateway.networking.k8s.io/v1 GatewayClass */
	const struct tw_k8s_store *gateways;        /* .../v1 Gateway */
	const struct tw_k8s_store *httproutes;      /* .../v1 HTTPRoute */
	const struct tw_k8s_store *referencegrants; /* .../v1beta1 ReferenceGrant */
	const struct tw_k8s_store *namespaces;      /* v1 Namespace (labels only) */
};

/* What the translator reports about each Ingress it looked at. */
enum tw_k8s_verdict {
	TW_K8S_NOT_OURS = 0, /* other class, or unknown class: no traffic, no status */
	TW_K8S_SERVED,       /* ours and applied (possibly with warnings) */
	TW_K8S_REJECTED      /* ours, but invalid (bad annotation): its last good state keeps serving */
};

struct tw_k8s_ingress_report {
	char *ns, *name;
	enum tw_k8s_verdict verdict;
	char *reason;  /* one line for the Event/log (rejection or warnings); NULL when none */
	char *message; /* human text */
};

struct tw_k8s_report {
	struct tw_k8s_ingress_report *items;
	size_t nitems;
	unsigned conflicts;      /* host+path or TLS host conflicts decided by age */
	unsigned warnings;       /* missing Secrets, resource backends, missing Services ... */
	/* Gateway API: the status each of our objects should have, an array of
	 * {"kind": plural, "ns", "name", "status": {...}} (lastTransitionTime
	 * left out: the leader keeps the current one for unchanged conditions).
	 * NULL when the Gateway API is off. */
	json_t *gw_status;
};
void tw_k8s_report_clear(struct tw_k8s_report *r);

#endif
