/* controller.h — the Kubernetes Ingress controller's threads (issue 11).
 *
 * tw_k8s_controller_start connects to the API server (kubeconfig.h), starts
 * one informer thread per watched collection (IngressClasses; Ingresses,
 * Services, EndpointSlices and TLS Secrets in all namespaces or in each
 * configured one; the publish Service), an apply thread and a leader thread.
 *
 * apply thread: once every informer has listed, and after every burst of
 * changes (20 ms quiet, at most 50 ms after the first change), it locks the
 * stores and calls cbs->apply with a consistent tw_k8s_view. The edge builds
 * and swaps a new generation inside the callback (tw_k8s_ingress_apply on a
 * fresh copy of the file config) and hands the translator's report back with
 * tw_k8s_controller_report() before returning. The view is valid only during
 * the call; never call into the controller's stop from inside it.
 *
 * replicas: with kubernetes.replicas_from, one more informer follows the
 * EndpointSlices of tapwork's own Service (label kubernetes.io/service-name)
 * and calls cbs->replicas with its ready endpoints whenever that number
 * changes; the first apply does not wait for it.
 *
 * leader thread: Lease-based election (lease.h). The leader writes
 * status.loadBalancer.ingress of SERVED Ingresses when it differs from the
 * publish address(es), clears it on Ingresses that are no longer ours and
 * carry exactly our address(es), and posts one Warning Event per REJECTED
 * (Ingress, resourceVersion). Followers write nothing. */
#ifndef TW_K8S_CONTROLLER_H
#define TW_K8S_CONTROLLER_H

#include "conf/config.h"
#include "core/dbuf.h"
#include "core/err.h"
#include "k8s/k8s.h"

#include <stdint.h>

struct tw_k8s_controller;

struct tw_k8s_controller_cbs {
	/* On the apply thread, stores locked. ctl is the calling controller
	 * (for tw_k8s_controller_report; the first apply may run before
	 * tw_k8s_controller_start has returned). 0, or a negative TW_E*
	 * (logged and counted; the edge keeps its current generation). */
	int (*apply)(void *arg, struct tw_k8s_controller *ctl, const struct tw_k8s_view *v);
	/* kubernetes.replicas_from: the ready endpoints of tapwork's own
	 * Service changed to n (0 = none ready). On that informer's thread, no
	 * lock held. NULL = not told. */
	void (*replicas)(void *arg, unsigned n);
	void *arg;
};

struct tw_k8s_controller_stats {
	int synced, leader;
	uint64_t applies_ok, applies_failed;
	uint64_t status_writes, events_posted, write_errors;
	uint64_t
	    objects[5]; /* by kind: ingresses, ingressclasses, services, endpointslices, secrets */
	uint64_t events, relists, watch_errors; /* all informers */
	uint64_t last_sync_age_ms;      /* oldest informer's; UINT64_MAX before the first sync */
	uint64_t last_apply_latency_us; /* first change of a burst -> apply returned */
};

/* conf is copied (the caller may free its config afterwards). Fails when
 * the kubeconfig cannot be loaded or the client cannot be made; API errors
 * after that are retried by the threads, never fatal. */
int tw_k8s_controller_start(const struct tw_conf_k8s *conf, const struct tw_k8s_controller_cbs *cbs,
                            struct tw_k8s_controller **out, struct tw_err *err);
/* Stop every thread (interrupting watches within ~1 s), release the Lease
 * if held, free. NULL ok. Not from inside apply. */
void tw_k8s_controller_stop(struct tw_k8s_controller *c);
/* Ask for an apply although no store changed (the edge's file config was
 * reloaded). Thread-safe; debounced like a change. */
void tw_k8s_controller_kick(struct tw_k8s_controller *c);
/* 1 once every informer has listed and the first apply has run. */
int tw_k8s_controller_synced(const struct tw_k8s_controller *c);
/* Wait for synced; 0, or TW_ETIMEDOUT. */
int tw_k8s_controller_wait_synced(struct tw_k8s_controller *c, unsigned timeout_ms);
int tw_k8s_controller_leader(const struct tw_k8s_controller *c);
/* From inside apply: hand over the translator's report (copied; rep stays
 * the caller's, who clears it with tw_k8s_report_clear). The leader thread
 * then writes statuses and Events. 0 or TW_ENOMEM. */
int tw_k8s_controller_report(struct tw_k8s_controller *c, const struct tw_k8s_report *rep);
void tw_k8s_controller_stats(const struct tw_k8s_controller *c,
                             struct tw_k8s_controller_stats *out);
/* Append Prometheus text (tapwork_k8s_* families) to out, e.g. from the
 * callback given to tw_metrics_set_extra. */
int tw_k8s_controller_metrics(const struct tw_k8s_controller *c, struct tw_dbuf *out);

#endif
