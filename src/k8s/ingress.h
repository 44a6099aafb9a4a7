/* ingress.h — the pure translator from Ingress objects to config (issue 11).
 *
 * tw_k8s_ingress_apply extends cfg (a freshly loaded file config, owned by the
 * caller; everything added is allocated in cfg->arena) with the sites, routes
 * and backends that the Ingresses of our class declare in v, following
 * networking.k8s.io/v1 semantics (docs/kubernetes.md). No I/O, no threads, no
 * clock: the same view gives the same config.
 *
 * last_good: the last accepted version of each Ingress (ns/name). An Ingress
 * that is ours but invalid (a bad tapwork.dev/ annotation) is served from its
 * entry there when one exists; accepted Ingresses are put there, and entries
 * of Ingresses that are gone or no longer ours are removed. May be NULL.
 *
 * rep receives one item per Ingress of v (verdict, reason). Returns 0, or a
 * negative TW_E* (ENOMEM, ELIMIT) with err set: then cfg is unusable. */
#ifndef TW_K8S_INGRESS_H
#define TW_K8S_INGRESS_H

#include "k8s/k8s.h"

int tw_k8s_ingress_apply(struct tw_config *cfg, const struct tw_k8s_view *v, struct tw_k8s_store *last_good,
			 struct tw_k8s_report *rep, struct tw_err *err);

#endif
