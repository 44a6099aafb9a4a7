/* controller.c — informer, apply and leader threads. See controller.h and
 * docs/internals/k8s.md. */
#include "k8s/controller.h"

#include "core/log.h"
#include "k8s/client.h"
#include "k8s/kubeconfig.h"
#include "k8s/lease.h"
#include "k8s/watch.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define DEBOUNCE_QUIET_MS 20
#define DEBOUNCE_MAX_MS 50
#define WRITE_RETRY_MS 5000
#define MAX_INFORMERS 512

enum kind {
	K_INGRESS = 0,
	K_CLASS,
	K_SERVICE,
	K_SLICE,
	K_SECRET,
	K_PUBLISH,
	/* Gateway API (kubernetes.gateway) */
	K_GWCLASS,
	K_GATEWAY,
	K_ROUTE,
	K_REFGRANT,
	K_NAMESPACE,
	/* kubernetes.replicas_from: EndpointSlices of tapwork's own Service */
	K_SELF,
	K_N
};
static const char *const kind_names[K_N] = {"ingresses",      "ingressclasses",  "services",
                                            "endpointslices", "secrets",         "publish_service",
                                            "gatewayclasses", "gateways",        "httproutes",
                                            "referencegrants", "namespaces",     "replicas_service"};
#define GW_GROUP "/apis/gateway.networking.k8s.io"

struct informer {
	struct tw_k8s_controller *ctl;
	enum kind kind;
	struct tw_k8s_client *client;
	struct tw_k8s_watch *w;
	pthread_t th;
	int running;
	int nogate; /* the first apply does not wait for this one's list */
};

/* One report item, copied out of the edge's report. */
struct item {
	char *ns, *name, *reason, *message;
	enum tw_k8s_verdict verdict;
};

struct tw_k8s_controller {
	struct tw_k8s_controller_cbs cbs;
	struct tw_k8s_kubeconfig kc;
	/* our copy of the config */
	char **namespaces;
	size_t nnamespaces;
	char *pub_ns, *pub_name; /* publish_service */
	char **pub_addr;
	size_t npub_addr;
	char *lease_ns, *lease_name, *identity;
	uint64_t lease_ms;

	atomic_int stop;
	pthread_mutex_t lock; /* the stores */
	struct tw_k8s_store *st[K_N];
	struct informer *inf;
	size_t ninf;

	pthread_mutex_t mu;       /* change signalling + report handoff */
	pthread_cond_t cv;        /* apply thread: a store changed */
	pthread_cond_t lcv;       /* leader thread: a new report */
	uint64_t gen;             /* store changes */
	uint64_t first_change_ms; /* of the pending burst, 0 = none */
	struct item *rep;
	size_t nrep;
	uint64_t rep_gen;
	int first_applied;

	char *self_ns, *self_name; /* kubernetes.replicas_from; NULL = not watched */
	atomic_int self_ready;     /* its ready endpoints at the last change; -1 before the first list */

	char *gw_controller; /* kubernetes.gateway.controller_name; NULL = Gateway API off */
	json_t *gw_status;   /* under mu: the last report's desired Gateway API statuses */
	json_t *gw_checked;  /* leader thread: "kind/ns/name" -> [want, resourceVersion] found up to date */

	pthread_t apply_th, leader_th;
	int apply_running, leader_running;
	atomic_int leader;
	_Atomic uint64_t applies_ok, applies_failed, status_writes, events_posted, write_errors,
	    apply_latency_us;

	/* leader thread only */
	char **posted; /* "ns/name@rv" of Events already posted */
	size_t nposted;
};

static uint64_t mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static uint64_t real_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* cv waits use CLOCK_MONOTONIC */
static void cond_wait_ms(pthread_cond_t *cv, pthread_mutex_t *mu, uint64_t ms)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	ts.tv_sec += (time_t)(ms / 1000);
	ts.tv_nsec += (long)(ms % 1000) * 1000000L;
	if (ts.tv_nsec >= 1000000000L) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000L;
	}
	pthread_cond_timedwait(cv, mu, &ts);
}

static void items_free(struct item *v, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(v[i].ns);
		free(v[i].name);
		free(v[i].reason);
		free(v[i].message);
	}
	free(v);
}

static void strv_free(char **v, size_t n)
{
	for (size_t i = 0; v && i < n; i++)
		free(v[i]);
	free(v);
}

static int strv_dup(char *const *in, size_t n, char ***out)
{
	*out = NULL;
	if (n == 0)
		return 0;
	char **v = calloc(n, sizeof *v);
	if (v == NULL)
		return TW_ENOMEM;
	for (size_t i = 0; i < n; i++)
		if ((v[i] = strdup(in[i])) == NULL) {
			strv_free(v, n);
			return TW_ENOMEM;
		}
	*out = v;
	return 0;
}

static void on_change(void *arg)
{
	struct tw_k8s_controller *c = arg;
	pthread_mutex_lock(&c->mu);
	if (c->first_change_ms == 0)
		c->first_change_ms = mono_ms();
	c->gen++;
	pthread_cond_signal(&c->cv);
	pthread_mutex_unlock(&c->mu);
}

static int all_synced(const struct tw_k8s_controller *c)
{
	for (size_t i = 0; i < c->ninf; i++)
		if (!c->inf[i].nogate && !atomic_load(&tw_k8s_watch_stats(c->inf[i].w)->synced))
			return 0;
	return 1;
}

static int cmp_strp(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Ready endpoints of tapwork's own Service: distinct first addresses over
 * its EndpointSlices (an endpoint may sit in two slices while the
 * EndpointSlice controller moves it), whose `ready` is not false (absent
 * means ready, as for the translator; terminating endpoints are not ready). */
static int count_ready(const struct tw_k8s_store *st)
{
	size_t cap = 0, n = 0;
	for (size_t i = 0; i < tw_k8s_store_count(st); i++)
		cap += json_array_size(json_object_get(tw_k8s_store_at(st, i)->obj, "endpoints"));
	if (cap == 0)
		return 0;
	const char **addr = malloc(cap * sizeof *addr);
	if (addr == NULL)
		return -1;
	for (size_t i = 0; i < tw_k8s_store_count(st); i++) {
		size_t k;
		json_t *ep;
		json_array_foreach(json_object_get(tw_k8s_store_at(st, i)->obj, "endpoints"), k, ep)
		{
			json_t *r = json_object_get(json_object_get(ep, "conditions"), "ready");
			const char *a = json_string_value(json_array_get(json_object_get(ep, "addresses"), 0));
			if (a != NULL && !json_is_false(r) && n < cap)
				addr[n++] = a;
		}
	}
	qsort(addr, n, sizeof *addr, cmp_strp);
	int ready = 0;
	for (size_t i = 0; i < n; i++)
		if (i == 0 || strcmp(addr[i], addr[i - 1]) != 0)
			ready++;
	free(addr);
	return ready;
}

/* The own Service's slices changed: hand the edge the new N (no apply: the
 * config does not change, only the rate limits' division). */
static void on_self_change(void *arg)
{
	struct tw_k8s_controller *c = arg;
	pthread_mutex_lock(&c->lock);
	int n = count_ready(c->st[K_SELF]);
	pthread_mutex_unlock(&c->lock);
	if (n < 0 || atomic_exchange(&c->self_ready, n) == n)
		return;
	if (n > 0)
		tw_info("[k8s] Service %s/%s: %d ready endpoints (rate limits with cluster: divide now use rate/%d)",
		        c->self_ns, c->self_name, n, n);
	else
		tw_warn("[k8s] Service %s/%s: no ready endpoint (rate limits with cluster: divide use their "
		        "`replicas`)",
		        c->self_ns, c->self_name);
	if (c->cbs.replicas)
		c->cbs.replicas(c->cbs.arg, (unsigned)n);
}

/* ---- informers ---------------------------------------------------------- */

static void *informer_main(void *arg)
{
	struct informer *in = arg;
	tw_k8s_watch_run(in->w);
	return NULL;
}

/* ---- trimming: what the translator and the leader never read ------------
 * Kept: metadata name, namespace, resourceVersion; Ingress and IngressClass
 * also creationTimestamp, uid and annotations (but kubectl's copy of the last
 * applied object); labels only on EndpointSlices (the Service name). */
static void trim_meta(json_t *obj, int keep_ingress_fields, int keep_labels)
{
	json_t *md = json_object_get(obj, "metadata");
	if (!json_is_object(md))
		return;
	static const char *const drop[] = {"managedFields", "ownerReferences", "finalizers", "generateName",
					   "selfLink", "generation", "deletionGracePeriodSeconds"};
	for (size_t i = 0; i < sizeof drop / sizeof drop[0]; i++)
		json_object_del(md, drop[i]);
	if (keep_ingress_fields) {
		json_object_del(json_object_get(md, "annotations"),
				"kubectl.kubernetes.io/last-applied-configuration");
	} else {
		json_object_del(md, "uid");
		json_object_del(md, "creationTimestamp");
		json_object_del(md, "annotations");
	}
	if (!keep_labels) {
		json_object_del(md, "labels");
	} else {
		json_t *lb = json_object_get(md, "labels");
		json_t *sn = json_incref(json_object_get(lb, "kubernetes.io/service-name"));
		json_object_clear(lb);
		if (sn != NULL)
			json_object_set_new(lb, "kubernetes.io/service-name", sn);
	}
}

static void trim_ingress(json_t *o)
{
	trim_meta(o, 1, 0);
}

static void trim_class(json_t *o)
{
	trim_meta(o, 1, 0);
}

static void trim_service(json_t *o)
{
	trim_meta(o, 0, 0);
	json_t *spec = json_object_get(o, "spec");
	static const char *const drop[] = {"selector", "clusterIP", "clusterIPs", "ipFamilies", "ipFamilyPolicy",
					   "sessionAffinity", "internalTrafficPolicy", "externalTrafficPolicy"};
	for (size_t i = 0; i < sizeof drop / sizeof drop[0]; i++)
		json_object_del(spec, drop[i]);
	json_object_del(o, "status"); /* the publish Service has its own informer, untrimmed */
}

/* Endpoint conditions are kept only where they differ from what an absent
 * one means to the translator: ready true, serving = ready, terminating false. */
static void trim_slice(json_t *o)
{
	trim_meta(o, 0, 1);
	size_t i;
	json_t *ep;
	json_array_foreach(json_object_get(o, "endpoints"), i, ep)
	{
		static const char *const drop[] = {"targetRef", "nodeName", "zone", "hints", "hostname", "deprecatedTopology"};
		for (size_t k = 0; k < sizeof drop / sizeof drop[0]; k++)
			json_object_del(ep, drop[k]);
		json_t *c = json_object_get(ep, "conditions");
		if (!json_is_object(c))
			continue;
		json_t *r = json_object_get(c, "ready"), *sv = json_object_get(c, "serving"),
		       *t = json_object_get(c, "terminating");
		int ready = json_is_boolean(r) ? json_is_true(r) : 1;
		if (json_is_boolean(sv) && json_is_true(sv) == ready)
			json_object_del(c, "serving");
		if (json_is_false(t))
			json_object_del(c, "terminating");
		if (json_is_true(r))
			json_object_del(c, "ready");
		if (json_object_size(c) == 0)
			json_object_del(ep, "conditions");
	}
}

static void trim_secret(json_t *o)
{
	trim_meta(o, 0, 0);
	json_t *d = json_object_get(o, "data");
	const char *k;
	void *tmp;
	json_t *v;
	json_object_foreach_safe(d, tmp, k, v)
	{
		if (strcmp(k, "tls.crt") != 0 && strcmp(k, "tls.key") != 0)
			json_object_del(d, k);
	}
}

/* Gateway API objects keep generation (observedGeneration), creation time
 * (conflicts by age) and status (compared before writing; an HTTPRoute's
 * parents of other controllers are written back as they are). */
static void trim_gw(json_t *o)
{
	json_t *md = json_object_get(o, "metadata");
	if (!json_is_object(md))
		return;
	static const char *const drop[] = {"managedFields", "ownerReferences", "finalizers", "generateName",
					   "selfLink", "deletionGracePeriodSeconds", "labels"};
	for (size_t i = 0; i < sizeof drop / sizeof drop[0]; i++)
		json_object_del(md, drop[i]);
	json_object_del(json_object_get(md, "annotations"), "kubectl.kubernetes.io/last-applied-configuration");
}

/* Namespaces: only their labels (allowedRoutes.namespaces.selector). */
static void trim_namespace(json_t *o)
{
	json_t *md = json_object_get(o, "metadata");
	static const char *const drop[] = {"managedFields", "ownerReferences", "finalizers", "annotations", "uid",
					   "creationTimestamp", "generation"};
	for (size_t i = 0; i < sizeof drop / sizeof drop[0]; i++)
		json_object_del(md, drop[i]);
	json_object_del(o, "spec");
	json_object_del(o, "status");
}

static void (*const trims[K_N])(json_t *) = {trim_ingress, trim_class,  trim_service, trim_slice,
					     trim_secret,  NULL,        trim_gw,      trim_gw,
					     trim_gw,      trim_gw,     trim_namespace, trim_slice};

/* Gateway API kinds are CRDs: a cluster without them still gets its Ingresses served. */
static int optional_kind(enum kind k)
{
	return k == K_GWCLASS || k == K_GATEWAY || k == K_ROUTE || k == K_REFGRANT;
}

static int add_informer_sel(struct tw_k8s_controller *c, enum kind k, const char *path, const char *ns,
                            const char *fsel, const char *lsel, struct tw_err *err)
{
	if (c->ninf >= MAX_INFORMERS)
		return tw_err_set(err, TW_ELIMIT, "more than %d watches", MAX_INFORMERS);
	struct informer *in = &c->inf[c->ninf];
	memset(in, 0, sizeof *in);
	in->ctl = c;
	in->kind = k;
	in->nogate = k == K_SELF;
	int rc = tw_k8s_client_new(&c->kc, &c->stop, &in->client, err);
	if (rc < 0)
		return rc;
	struct tw_k8s_watch_opts o = {.kind = kind_names[k],
	                              .path = path,
	                              .ns = ns,
	                              .label_selector = lsel,
	                              .field_selector = fsel,
	                              .store = c->st[k],
	                              .lock = &c->lock,
	                              .on_change = k == K_SELF ? on_self_change : on_change,
	                              .trim = trims[k],
	                              .arg = c,
	                              .missing_ok = optional_kind(k),
	                              .status_quiet = optional_kind(k)};
	if ((rc = tw_k8s_watch_new(&o, in->client, &c->stop, &in->w)) < 0) {
		tw_k8s_client_free(in->client);
		return rc;
	}
	c->ninf++;
	return 0;
}

static int add_informer(struct tw_k8s_controller *c, enum kind k, const char *path, const char *ns,
                        const char *fsel, struct tw_err *err)
{
	return add_informer_sel(c, k, path, ns, fsel, NULL, err);
}

static int add_kind(struct tw_k8s_controller *c, enum kind k, const char *group_ver,
                    const char *res, const char *fsel, struct tw_err *err)
{
	char path[1024];
	if (c->nnamespaces == 0) {
		snprintf(path, sizeof path, "%s/%s", group_ver, res);
		return add_informer(c, k, path, NULL, fsel, err);
	}
	for (size_t i = 0; i < c->nnamespaces; i++) {
		snprintf(path, sizeof path, "%s/namespaces/%s/%s", group_ver, c->namespaces[i],
		         res);
		int rc = add_informer(c, k, path, c->namespaces[i], fsel, err);
		if (rc < 0)
			return rc;
	}
	return 0;
}

/* ---- apply thread ------------------------------------------------------- */

static void *apply_main(void *arg)
{
	struct tw_k8s_controller *c = arg;
	uint64_t applied = 0;
	pthread_mutex_lock(&c->mu);
	while (!atomic_load(&c->stop)) {
		if (c->gen == applied) {
			cond_wait_ms(&c->cv, &c->mu, 1000);
			continue;
		}
		/* debounce: wait for DEBOUNCE_QUIET_MS without changes, at most
		 * DEBOUNCE_MAX_MS after the first change of the burst */
		uint64_t first = c->first_change_ms ? c->first_change_ms : mono_ms();
		for (;;) {
			uint64_t seen = c->gen, now = mono_ms();
			if (now - first >= DEBOUNCE_MAX_MS || atomic_load(&c->stop))
				break;
			uint64_t left = DEBOUNCE_MAX_MS - (now - first);
			cond_wait_ms(&c->cv, &c->mu,
			             left < DEBOUNCE_QUIET_MS ? left : DEBOUNCE_QUIET_MS);
			if (c->gen == seen && mono_ms() - now >= DEBOUNCE_QUIET_MS)
				break;
		}
		uint64_t target = c->gen;
		c->first_change_ms = 0;
		pthread_mutex_unlock(&c->mu);
		if (atomic_load(&c->stop)) {
			pthread_mutex_lock(&c->mu);
			break;
		}
		if (all_synced(c)) {
			pthread_mutex_lock(&c->lock);
			struct tw_k8s_view v = {.ingresses = c->st[K_INGRESS],
			                        .ingress_classes = c->st[K_CLASS],
			                        .services = c->st[K_SERVICE],
			                        .endpointslices = c->st[K_SLICE],
			                        .secrets = c->st[K_SECRET]};
			if (c->gw_controller) {
				v.gateway_classes = c->st[K_GWCLASS];
				v.gateways = c->st[K_GATEWAY];
				v.httproutes = c->st[K_ROUTE];
				v.referencegrants = c->st[K_REFGRANT];
				v.namespaces = c->st[K_NAMESPACE];
			}
			int rc = c->cbs.apply ? c->cbs.apply(c->cbs.arg, c, &v) : 0;
			size_t ning = tw_k8s_store_count(v.ingresses),
			       nsvc = tw_k8s_store_count(v.services),
			       nsl = tw_k8s_store_count(v.endpointslices);
			pthread_mutex_unlock(&c->lock);
			uint64_t lat = (mono_ms() - first) * 1000u;
			atomic_store(&c->apply_latency_us, lat);
			if (rc < 0) {
				atomic_fetch_add(&c->applies_failed, 1);
				tw_warn("[k8s] applying the cluster's Ingresses failed: %s (the "
				        "current "
				        "generation keeps serving)",
				        tw_strerror(rc));
			} else {
				atomic_fetch_add(&c->applies_ok, 1);
				tw_debug("[k8s] applied %zu Ingresses in %llu ms", ning,
				         (unsigned long long)(lat / 1000));
			}
			pthread_mutex_lock(&c->mu);
			if (!c->first_applied) {
				c->first_applied = 1;
				tw_info(
				    "[k8s] synced: %zu Ingresses, %zu Services, %zu EndpointSlices",
				    ning, nsvc, nsl);
			}
			pthread_cond_broadcast(&c->lcv);
		} else {
			pthread_mutex_lock(&c->mu);
		}
		applied = target;
	}
	pthread_mutex_unlock(&c->mu);
	return NULL;
}

int tw_k8s_controller_report(struct tw_k8s_controller *c, const struct tw_k8s_report *rep)
{
	struct item *v = rep->nitems ? calloc(rep->nitems, sizeof *v) : NULL;
	if (rep->nitems && v == NULL)
		return TW_ENOMEM;
	for (size_t i = 0; i < rep->nitems; i++) {
		const struct tw_k8s_ingress_report *r = &rep->items[i];
		v[i].verdict = r->verdict;
		v[i].ns = strdup(r->ns ? r->ns : "");
		v[i].name = strdup(r->name ? r->name : "");
		v[i].reason = r->reason ? strdup(r->reason) : NULL;
		v[i].message = r->message ? strdup(r->message) : NULL;
		if (!v[i].ns || !v[i].name || (r->reason && !v[i].reason) ||
		    (r->message && !v[i].message)) {
			items_free(v, rep->nitems);
			return TW_ENOMEM;
		}
	}
	/* the translator hands its statuses over: nobody changes them after this */
	json_t *gs = json_incref(rep->gw_status);
	pthread_mutex_lock(&c->mu);
	struct item *old = c->rep;
	size_t nold = c->nrep;
	json_t *old_gs = c->gw_status;
	c->gw_status = gs;
	c->rep = v;
	c->nrep = rep->nitems;
	c->rep_gen++;
	pthread_cond_broadcast(&c->lcv);
	pthread_mutex_unlock(&c->mu);
	items_free(old, nold); /* outside the lock: the leader need not wait for it */
	json_decref(old_gs);
	return 0;
}

/* ---- leader thread: status and Events ------------------------------------ */

/* Append the ip / hostname of each entry of a status.loadBalancer.ingress list. */
static void append_lb_addresses(json_t *a, const json_t *lb)
{
	size_t i;
	json_t *e;
	json_array_foreach(lb, i, e)
	{
		const char *ip = json_string_value(json_object_get(e, "ip"));
		const char *hn = json_string_value(json_object_get(e, "hostname"));
		if (ip)
			json_array_append_new(a, json_pack("{s:s}", "ip", ip));
		else if (hn)
			json_array_append_new(a, json_pack("{s:s}", "hostname", hn));
	}
}

/* The addresses to publish: [{"ip": ...} | {"hostname": ...}], or NULL. */
static json_t *desired_addresses(struct tw_k8s_controller *c)
{
	json_t *a = json_array();
	if (a == NULL)
		return NULL;
	for (size_t i = 0; i < c->npub_addr; i++) {
		const char *s = c->pub_addr[i];
		int ip = strspn(s, "0123456789.") == strlen(s) || strchr(s, ':') != NULL;
		json_array_append_new(a, json_pack("{s:s}", ip ? "ip" : "hostname", s));
	}
	if (c->pub_name) {
		pthread_mutex_lock(&c->lock);
		const struct tw_k8s_obj *o =
		    tw_k8s_store_get(c->st[K_PUBLISH], c->pub_ns, c->pub_name);
		json_t *lb = o ? json_object_get(json_object_get(json_object_get(o->obj, "status"),
		                                                 "loadBalancer"),
		                                 "ingress")
		               : NULL;
		append_lb_addresses(a, lb);
		pthread_mutex_unlock(&c->lock);
	}
	return a;
}

/* The Ingress's current addresses (only ip/hostname kept, for comparing). */
static json_t *current_addresses(const json_t *ing)
{
	json_t *a = json_array();
	if (a != NULL)
		append_lb_addresses(a, json_object_get(json_object_get(json_object_get(ing, "status"), "loadBalancer"),
						       "ingress"));
	return a;
}

static int write_status(struct tw_k8s_controller *c, struct tw_k8s_client *cl, const char *ns,
                        const char *name, json_t *addrs)
{
	char path[1024];
	struct tw_k8s_resp r;
	struct tw_err err;
	snprintf(path, sizeof path, "/apis/networking.k8s.io/v1/namespaces/%s/ingresses/%s/status",
	         ns, name);
	json_t *b = json_pack("{s:{s:{s:O}}}", "status", "loadBalancer", "ingress",
	                      addrs ? addrs : json_null());
	if (b == NULL)
		return TW_ENOMEM;
	int rc = tw_k8s_client_request(cl, "PATCH", path, b, &r, &err);
	json_decref(b);
	if (rc == 0 && r.status != 200 && r.status != 404)
		rc = tw_err_set(&err, TW_EIO, "HTTP %ld %s", r.status,
		                tw_k8s_status_message(r.body));
	tw_k8s_resp_clear(&r);
	if (rc < 0) {
		atomic_fetch_add(&c->write_errors, 1);
		tw_warn("[k8s] status of Ingress %s/%s: %s", ns, name, err.msg);
		return rc;
	}
	atomic_fetch_add(&c->status_writes, 1);
	tw_info("[k8s] status of Ingress %s/%s %s", ns, name, addrs ? "published" : "cleared");
	return 0;
}

static int post_event(struct tw_k8s_controller *c, struct tw_k8s_client *cl, const struct item *it,
                      const char *uid, const char *rv)
{
	char path[1024], ts[40], gen[300];
	struct timespec now;
	struct tw_k8s_resp r;
	struct tw_err err;
	clock_gettime(CLOCK_REALTIME, &now);
	tw_k8s_time_micro(&now, ts, sizeof ts);
	char sec[32]; /* Event first/lastTimestamp are second precision */
	snprintf(sec, sizeof sec, "%.19sZ", ts);
	snprintf(path, sizeof path, "/api/v1/namespaces/%s/events", it->ns);
	snprintf(gen, sizeof gen, "%.200s.", it->name);
	json_t *b = json_pack(
	    "{s:s, s:s, s:{s:s, s:s}, s:{s:s, s:s, s:s, s:s, s:s, s:s}, s:s, s:s, s:s, s:{s:s}, "
	    "s:s, s:s, s:i, s:s, s:s, s:s}",
	    "apiVersion", "v1", "kind", "Event", "metadata", "generateName", gen, "namespace",
	    it->ns, "involvedObject", "apiVersion", "networking.k8s.io/v1", "kind", "Ingress",
	    "namespace", it->ns, "name", it->name, "uid", uid ? uid : "", "resourceVersion",
	    rv ? rv : "", "reason", "Rejected", "message",
	    it->message ? it->message : (it->reason ? it->reason : "rejected"), "type", "Warning",
	    "source", "component", "tapwork", "firstTimestamp", sec, "lastTimestamp", sec, "count",
	    1, "reportingComponent", "tapwork.dev/ingress-controller", "reportingInstance",
	    c->identity, "action", "Reconcile");
	if (b == NULL)
		return TW_ENOMEM;
	int rc = tw_k8s_client_request(cl, "POST", path, b, &r, &err);
	json_decref(b);
	if (rc == 0 && r.status != 201 && r.status != 200)
		rc = tw_err_set(&err, TW_EIO, "HTTP %ld %s", r.status,
		                tw_k8s_status_message(r.body));
	tw_k8s_resp_clear(&r);
	if (rc < 0) {
		atomic_fetch_add(&c->write_errors, 1);
		tw_warn("[k8s] Event for Ingress %s/%s: %s", it->ns, it->name, err.msg);
		return rc;
	}
	atomic_fetch_add(&c->events_posted, 1);
	return 0;
}

static int posted_has(struct tw_k8s_controller *c, const char *key)
{
	for (size_t i = 0; i < c->nposted; i++)
		if (strcmp(c->posted[i], key) == 0)
			return 1;
	return 0;
}

/* ---- Gateway API status ---- */

static enum kind gw_kind(const char *plural)
{
	if (strcmp(plural, "gatewayclasses") == 0)
		return K_GWCLASS;
	if (strcmp(plural, "gateways") == 0)
		return K_GATEWAY;
	return K_ROUTE;
}

/* A copy of v without any "lastTransitionTime" (for comparing). */
static json_t *strip_ltt(const json_t *v)
{
	json_t *c = json_deep_copy(v);
	json_t *stack[64];
	size_t n = 0;
	if (c)
		stack[n++] = c;
	while (n > 0) {
		json_t *x = stack[--n];
		if (json_is_object(x)) {
			json_object_del(x, "lastTransitionTime");
			const char *k;
			json_t *e;
			json_object_foreach(x, k, e)
			{
				if ((json_is_object(e) || json_is_array(e)) && n < 64)
					stack[n++] = e;
			}
		} else if (json_is_array(x)) {
			size_t i;
			json_t *e;
			json_array_foreach(x, i, e)
			{
				if ((json_is_object(e) || json_is_array(e)) && n < 64)
					stack[n++] = e;
			}
		}
	}
	return c;
}

/* Set lastTransitionTime on every condition of v: the current one's when a
 * condition of the same type and status exists at the same place in cur
 * (same listener name / same parentRef), else now. */
static void fill_ltt(json_t *v, const json_t *cur, const char *now)
{
	if (json_is_object(v)) {
		const char *k;
		json_t *e;
		json_object_foreach(v, k, e)
		{
			const json_t *ce = json_object_get(cur, k);
			if (strcmp(k, "conditions") == 0 && json_is_array(e)) {
				size_t i;
				json_t *cd;
				json_array_foreach(e, i, cd)
				{
					const char *ty = json_string_value(json_object_get(cd, "type"));
					const char *st = json_string_value(json_object_get(cd, "status"));
					const char *t = NULL;
					size_t j;
					json_t *cc;
					json_array_foreach(ce, j, cc)
					{
						const char *cty = json_string_value(json_object_get(cc, "type"));
						const char *cst = json_string_value(json_object_get(cc, "status"));
						if (ty && st && cty && cst && strcmp(ty, cty) == 0 && strcmp(st, cst) == 0)
							t = json_string_value(json_object_get(cc, "lastTransitionTime"));
					}
					json_object_set_new(cd, "lastTransitionTime", json_string(t ? t : now));
				}
			} else if (json_is_array(e)) {
				/* listeners by name, parents by parentRef */
				size_t i;
				json_t *x;
				json_array_foreach(e, i, x)
				{
					const json_t *key = json_object_get(x, "name");
					const char *kf = "name";
					if (key == NULL) {
						key = json_object_get(x, "parentRef");
						kf = "parentRef";
					}
					const json_t *match = NULL;
					size_t j;
					json_t *y;
					json_array_foreach(ce, j, y)
					{
						if (key && json_equal((json_t *)key, json_object_get(y, kf)))
							match = y;
					}
					fill_ltt(x, match, now);
				}
			} else if (json_is_object(e)) {
				fill_ltt(e, ce, now);
			}
		}
	}
}

/* *uptodate_rv: the object's resourceVersion when its status already was
 * the wanted one (malloc'd; NULL when written or not found). */
static int write_gw_status(struct tw_k8s_controller *c, struct tw_k8s_client *cl, const json_t *want,
			   char **uptodate_rv)
{
	*uptodate_rv = NULL;
	const char *plural = json_string_value(json_object_get(want, "kind"));
	const char *ns = json_string_value(json_object_get(want, "ns"));
	const char *name = json_string_value(json_object_get(want, "name"));
	json_t *st = json_object_get(want, "status");
	if (plural == NULL || ns == NULL || name == NULL || st == NULL)
		return 0;
	enum kind k = gw_kind(plural);
	pthread_mutex_lock(&c->lock);
	const struct tw_k8s_obj *o = tw_k8s_store_get(c->st[k], ns, name);
	json_t *cur = o ? json_deep_copy(json_object_get(o->obj, "status")) : NULL;
	int exists = o != NULL;
	char *rv = o && o->rv ? strdup(o->rv) : NULL;
	pthread_mutex_unlock(&c->lock);
	if (!exists) {
		free(rv);
		return 0;
	}
	json_t *body_st = json_deep_copy(st);
	if (body_st == NULL) {
		json_decref(cur);
		free(rv);
		return TW_ENOMEM;
	}
	if (k == K_GATEWAY) {
		/* addresses: publish_address and the publish Service's load balancer */
		json_t *want_a = desired_addresses(c), *addrs = json_array();
		size_t i;
		json_t *a;
		json_array_foreach(want_a, i, a)
		{
			const char *ip = json_string_value(json_object_get(a, "ip"));
			const char *hn = json_string_value(json_object_get(a, "hostname"));
			json_array_append_new(addrs, json_pack("{s:s, s:s}", "type", ip ? "IPAddress" : "Hostname", "value",
							       ip ? ip : hn ? hn : ""));
		}
		json_decref(want_a);
		if (addrs != NULL)
			json_object_set_new(body_st, "addresses", addrs);
	}
	if (k == K_ROUTE) {
		/* other controllers' parents stay as they are */
		json_t *ours = json_object_get(body_st, "parents");
		size_t i;
		json_t *p;
		json_array_foreach(json_object_get(cur, "parents"), i, p)
		{
			const char *cn = json_string_value(json_object_get(p, "controllerName"));
			if (cn == NULL || strcmp(cn, c->gw_controller) != 0)
				json_array_append(ours, p);
		}
	}
	json_t *a = strip_ltt(body_st), *b = cur ? strip_ltt(cur) : NULL;
	int same = a && b && json_equal(a, b);
	json_decref(a);
	json_decref(b);
	if (same) {
		*uptodate_rv = rv;
		rv = NULL;
	}
	free(rv);
	int rc = 0;
	if (!same) {
		char ts[40], path[1024];
		struct timespec now;
		clock_gettime(CLOCK_REALTIME, &now);
		tw_k8s_time_micro(&now, ts, sizeof ts);
		char sec[32];
		snprintf(sec, sizeof sec, "%.19sZ", ts);
		fill_ltt(body_st, cur, sec);
		if (k == K_GWCLASS)
			snprintf(path, sizeof path, GW_GROUP "/v1/%s/%s/status", plural, name);
		else
			snprintf(path, sizeof path, GW_GROUP "/v1/namespaces/%s/%s/%s/status", ns, plural, name);
		json_t *body = json_pack("{s:O}", "status", body_st);
		struct tw_k8s_resp r = {0};
		struct tw_err err;
		rc = body ? tw_k8s_client_request(cl, "PATCH", path, body, &r, &err) : TW_ENOMEM;
		json_decref(body);
		if (rc == 0 && r.status != 200 && r.status != 404)
			rc = tw_err_set(&err, TW_EIO, "HTTP %ld %s", r.status, tw_k8s_status_message(r.body));
		tw_k8s_resp_clear(&r);
		if (rc < 0) {
			atomic_fetch_add(&c->write_errors, 1);
			tw_warn("[k8s] status of %s %s%s%s: %s", plural, ns, ns[0] ? "/" : "", name,
				rc == TW_ENOMEM ? "out of memory" : err.msg);
		} else {
			atomic_fetch_add(&c->status_writes, 1);
			tw_info("[k8s] status of %s %s%s%s written", plural, ns, ns[0] ? "/" : "", name);
		}
	}
	json_decref(body_st);
	json_decref(cur);
	return rc;
}

static int reconcile_gw(struct tw_k8s_controller *c, struct tw_k8s_client *cl)
{
	/* the report's statuses are never changed once handed over: share them */
	pthread_mutex_lock(&c->mu);
	json_t *want = json_incref(c->gw_status);
	pthread_mutex_unlock(&c->mu);
	if (c->gw_checked == NULL && (c->gw_checked = json_object()) == NULL) {
		json_decref(want);
		return TW_ENOMEM;
	}
	int rc = 0;
	size_t i;
	json_t *w;
	json_array_foreach(want, i, w)
	{
		if (atomic_load(&c->stop) || !atomic_load(&c->leader))
			break;
		/* An HTTPRoute or GatewayClass found up to date before, wanted the
		 * same and not changed since (same resourceVersion) is skipped: with
		 * a thousand routes, one change costs one check, not a thousand.
		 * Gateways are always checked (their addresses come from elsewhere). */
		const char *kind = json_string_value(json_object_get(w, "kind"));
		const char *ns = json_string_value(json_object_get(w, "ns"));
		const char *name = json_string_value(json_object_get(w, "name"));
		if (kind == NULL || ns == NULL || name == NULL)
			continue;
		char key[600];
		snprintf(key, sizeof key, "%s/%s/%s", kind, ns, name);
		const json_t *done = json_object_get(c->gw_checked, key);
		if (done != NULL && strcmp(kind, "gateways") != 0 && json_equal(json_array_get(done, 0), w)) {
			const char *drv = json_string_value(json_array_get(done, 1));
			pthread_mutex_lock(&c->lock);
			const struct tw_k8s_obj *o = tw_k8s_store_get(c->st[gw_kind(kind)], ns, name);
			int unchanged = o != NULL && o->rv != NULL && drv != NULL && strcmp(o->rv, drv) == 0;
			pthread_mutex_unlock(&c->lock);
			if (unchanged)
				continue;
		}
		char *rv = NULL;
		if (write_gw_status(c, cl, w, &rv) < 0)
			rc = TW_EIO;
		if (rv != NULL)
			json_object_set_new(c->gw_checked, key, json_pack("[O, s]", w, rv));
		else
			json_object_del(c->gw_checked, key);
		free(rv);
	}
	json_decref(want);
	return rc;
}

/* One pass over the report. Returns 0 when everything was written. */
static int reconcile(struct tw_k8s_controller *c, struct tw_k8s_client *cl)
{
	pthread_mutex_lock(&c->mu);
	size_t n = c->nrep;
	struct item *items = n ? calloc(n, sizeof *items) : NULL;
	int ok = 1;
	for (size_t i = 0; items && i < n;
	     i++) { /* shallow copies kept valid by holding ownership below */
		items[i] = c->rep[i];
		items[i].ns = strdup(c->rep[i].ns);
		items[i].name = strdup(c->rep[i].name);
		items[i].reason = c->rep[i].reason ? strdup(c->rep[i].reason) : NULL;
		items[i].message = c->rep[i].message ? strdup(c->rep[i].message) : NULL;
		if (!items[i].ns || !items[i].name)
			ok = 0;
	}
	pthread_mutex_unlock(&c->mu);
	if ((n && items == NULL) || !ok) {
		items_free(items, n);
		return TW_ENOMEM;
	}
	json_t *want = desired_addresses(c);
	int rc = 0;
	char **posted = n ? calloc(n, sizeof *posted) : NULL;
	size_t nposted = 0;
	for (size_t i = 0; i < n && !atomic_load(&c->stop) && atomic_load(&c->leader); i++) {
		const struct item *it = &items[i];
		json_t *cur = NULL;
		char uid[128] = "", rv[128] = "";
		pthread_mutex_lock(&c->lock);
		const struct tw_k8s_obj *o = tw_k8s_store_get(c->st[K_INGRESS], it->ns, it->name);
		if (o) {
			cur = current_addresses(o->obj);
			const char *u = json_string_value(
			    json_object_get(json_object_get(o->obj, "metadata"), "uid"));
			snprintf(uid, sizeof uid, "%s", u ? u : "");
			snprintf(rv, sizeof rv, "%s", o->rv);
		}
		pthread_mutex_unlock(&c->lock);
		if (o == NULL)
			continue; /* gone since the apply */
		size_t nwant = json_array_size(want);
		if (it->verdict == TW_K8S_SERVED && nwant > 0 && !json_equal(cur, want)) {
			if (write_status(c, cl, it->ns, it->name, want) < 0)
				rc = TW_EIO;
		} else if (it->verdict == TW_K8S_NOT_OURS && nwant > 0 && json_equal(cur, want)) {
			if (write_status(c, cl, it->ns, it->name, NULL) < 0)
				rc = TW_EIO;
		} else if (it->verdict == TW_K8S_REJECTED && posted) {
			char key[1024];
			snprintf(key, sizeof key, "%s/%s@%s", it->ns, it->name, rv);
			int done = posted_has(c, key);
			if (!done && post_event(c, cl, it, uid, rv) < 0)
				rc = TW_EIO;
			else if ((posted[nposted] = strdup(key)) != NULL)
				nposted++;
		}
		json_decref(cur);
	}
	/* keep only keys of Ingresses still rejected at that version */
	strv_free(c->posted, c->nposted);
	c->posted = posted;
	c->nposted = nposted;
	json_decref(want);
	items_free(items, n);
	return rc;
}

static void *leader_main(void *arg)
{
	struct tw_k8s_controller *c = arg;
	struct tw_k8s_client *cl = NULL;
	struct tw_k8s_lease *l = NULL;
	struct tw_err err;
	if (tw_k8s_client_new(&c->kc, NULL, &cl, &err) < 0 ||
	    tw_k8s_lease_new(cl, c->lease_ns, c->lease_name, c->identity, c->lease_ms, &l) < 0) {
		tw_error("[k8s] leader election cannot start (lease %s/%s, identity %s)",
		         c->lease_ns, c->lease_name, c->identity);
		tw_k8s_client_free(cl);
		return NULL;
	}
	tw_k8s_client_set_timeout(cl, (unsigned)(c->lease_ms / 3 > 2000 ? c->lease_ms / 3 : 2000));
	uint64_t next_lease = 0, done_gen = 0, retry_at = 0;
	int was_leader = 0;
	while (!atomic_load(&c->stop)) {
		uint64_t now = mono_ms();
		if (now >= next_lease) {
			int leader = 0;
			int rc = tw_k8s_lease_step(l, now, &leader, &err);
			if (rc < 0 && rc != TW_ECANCELED)
				tw_warn("[k8s lease] %s", err.msg);
			atomic_store(&c->leader, leader);
			next_lease = mono_ms() + (rc < 0 ? 1000 : tw_k8s_lease_period_ms(l));
			if (leader && !was_leader) {
				done_gen = 0; /* a new leader checks everything */
				json_decref(c->gw_checked);
				c->gw_checked = NULL;
			}
			was_leader = leader;
		}
		pthread_mutex_lock(&c->mu);
		uint64_t g = c->rep_gen;
		pthread_mutex_unlock(&c->mu);
		now = mono_ms();
		if (atomic_load(&c->leader) && g != 0 &&
		    (g != done_gen || (retry_at && now >= retry_at))) {
			int rc = reconcile(c, cl);
			if (c->gw_controller && reconcile_gw(c, cl) < 0)
				rc = TW_EIO;
			done_gen = g;
			retry_at = rc < 0 ? now + WRITE_RETRY_MS : 0;
		}
		pthread_mutex_lock(&c->mu);
		now = mono_ms();
		uint64_t wait = next_lease > now ? next_lease - now : 0;
		if (retry_at && retry_at > now && retry_at - now < wait)
			wait = retry_at - now;
		if (wait > 1000)
			wait = 1000;
		if (c->rep_gen == g && wait > 0 && !atomic_load(&c->stop))
			cond_wait_ms(&c->lcv, &c->mu, wait);
		pthread_mutex_unlock(&c->mu);
	}
	/* clean shutdown: give the lease up so another replica takes over at
	 * once (this client has no stop flag: its calls end by their timeout) */
	if (atomic_load(&c->leader) && tw_k8s_lease_release(l, &err) < 0)
		tw_warn("[k8s lease] %s", err.msg);
	atomic_store(&c->leader, 0);
	tw_k8s_lease_free(l);
	tw_k8s_client_free(cl);
	return NULL;
}

/* ---- start / stop ---------------------------------------------------------- */

static int copy_conf(struct tw_k8s_controller *c, const struct tw_conf_k8s *conf,
                     struct tw_err *err)
{
	const struct tw_conf_k8s_ingress *in = &conf->ingress;
	if (strv_dup(in->namespaces, in->nnamespaces, &c->namespaces) < 0 ||
	    strv_dup(in->publish_address, in->npublish_address, &c->pub_addr) < 0)
		return TW_ENOMEM;
	c->nnamespaces = in->nnamespaces;
	c->npub_addr = in->npublish_address;
	if (in->publish_service) {
		const char *slash = strchr(in->publish_service, '/');
		if (slash == NULL || slash == in->publish_service || slash[1] == '\0')
			return tw_err_set(err, TW_EINVAL,
			                  "publish_service must be \"namespace/name\"");
		c->pub_ns = strndup(in->publish_service, (size_t)(slash - in->publish_service));
		c->pub_name = strdup(slash + 1);
		if (c->pub_ns == NULL || c->pub_name == NULL)
			return TW_ENOMEM;
	}
	const char *ident = conf->identity;
	char host[256];
	if (ident == NULL)
		ident = getenv("POD_NAME");
	if (ident == NULL || ident[0] == '\0') {
		if (gethostname(host, sizeof host) != 0)
			snprintf(host, sizeof host, "tapwork-%ld", (long)getpid());
		host[sizeof host - 1] = '\0';
		ident = host;
	}
	const char *lns = conf->lease_namespace ? conf->lease_namespace
	                  : c->kc.namespace     ? c->kc.namespace
	                                        : "default";
	c->identity = strdup(ident);
	c->lease_ns = strdup(lns);
	c->lease_name = strdup(conf->lease_name ? conf->lease_name : "tapwork-leader");
	c->lease_ms = conf->lease_duration_ms >= 1000 ? conf->lease_duration_ms : 15000;
	if (conf->has_gateway &&
	    (c->gw_controller = strdup(conf->gateway.controller_name ? conf->gateway.controller_name
								      : "tapwork.dev/gateway-controller")) == NULL)
		return TW_ENOMEM;
	if (c->identity == NULL || c->lease_ns == NULL || c->lease_name == NULL)
		return TW_ENOMEM;
	if (conf->self_service) {
		const char *sns = conf->self_namespace;
		if (sns == NULL || sns[0] == '\0')
			sns = getenv("POD_NAMESPACE");
		if (sns == NULL || sns[0] == '\0')
			sns = c->kc.namespace ? c->kc.namespace : "default";
		if ((c->self_ns = strdup(sns)) == NULL || (c->self_name = strdup(conf->self_service)) == NULL)
			return TW_ENOMEM;
	}
	return 0;
}

static void free_all(struct tw_k8s_controller *c)
{
	for (size_t i = 0; i < c->ninf; i++) {
		tw_k8s_watch_free(c->inf[i].w);
		tw_k8s_client_free(c->inf[i].client);
	}
	free(c->inf);
	for (int k = 0; k < K_N; k++)
		tw_k8s_store_free(c->st[k]);
	items_free(c->rep, c->nrep);
	json_decref(c->gw_status);
	json_decref(c->gw_checked);
	free(c->gw_controller);
	free(c->self_ns);
	free(c->self_name);
	strv_free(c->posted, c->nposted);
	strv_free(c->namespaces, c->nnamespaces);
	strv_free(c->pub_addr, c->npub_addr);
	free(c->pub_ns);
	free(c->pub_name);
	free(c->identity);
	free(c->lease_ns);
	free(c->lease_name);
	tw_k8s_kubeconfig_clear(&c->kc);
	pthread_mutex_destroy(&c->lock);
	pthread_mutex_destroy(&c->mu);
	pthread_cond_destroy(&c->cv);
	pthread_cond_destroy(&c->lcv);
	free(c);
}

int tw_k8s_controller_start(const struct tw_conf_k8s *conf, const struct tw_k8s_controller_cbs *cbs,
                            struct tw_k8s_controller **out, struct tw_err *err)
{
	struct tw_k8s_controller *c = calloc(1, sizeof *c);
	if (c == NULL)
		return TW_ENOMEM;
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_mutex_init(&c->lock, NULL);
	pthread_mutex_init(&c->mu, NULL);
	pthread_cond_init(&c->cv, &ca);
	pthread_cond_init(&c->lcv, &ca);
	pthread_condattr_destroy(&ca);
	c->cbs = *cbs;
	atomic_store(&c->self_ready, -1);
	int rc = tw_k8s_kubeconfig_resolve(conf->kubeconfig, conf->context, &c->kc, err);
	if (rc == 0)
		rc = copy_conf(c, conf, err);
	for (int k = 0; rc == 0 && k < K_N; k++)
		if ((c->st[k] = tw_k8s_store_new()) == NULL)
			rc = TW_ENOMEM;
	size_t max = 3 + 4 * (c->nnamespaces ? c->nnamespaces : 1);
	if (c->gw_controller)
		max += 2 + 3 * (c->nnamespaces ? c->nnamespaces : 1);
	if (rc == 0 && (c->inf = calloc(max, sizeof *c->inf)) == NULL)
		rc = TW_ENOMEM;
	if (rc == 0)
		rc = add_informer(c, K_CLASS, "/apis/networking.k8s.io/v1/ingressclasses", NULL,
		                  NULL, err);
	if (rc == 0)
		rc = add_kind(c, K_INGRESS, "/apis/networking.k8s.io/v1", "ingresses", NULL, err);
	if (rc == 0)
		rc = add_kind(c, K_SERVICE, "/api/v1", "services", NULL, err);
	if (rc == 0)
		rc = add_kind(c, K_SLICE, "/apis/discovery.k8s.io/v1", "endpointslices", NULL, err);
	if (rc == 0)
		rc = add_kind(c, K_SECRET, "/api/v1", "secrets", "type=kubernetes.io/tls", err);
	if (rc == 0 && c->gw_controller) {
		rc = add_informer(c, K_GWCLASS, GW_GROUP "/v1/gatewayclasses", NULL, NULL, err);
		if (rc == 0)
			rc = add_informer(c, K_NAMESPACE, "/api/v1/namespaces", NULL, NULL, err);
		if (rc == 0)
			rc = add_kind(c, K_GATEWAY, GW_GROUP "/v1", "gateways", NULL, err);
		if (rc == 0)
			rc = add_kind(c, K_ROUTE, GW_GROUP "/v1", "httproutes", NULL, err);
		if (rc == 0)
			rc = add_kind(c, K_REFGRANT, GW_GROUP "/v1beta1", "referencegrants", NULL, err);
	}
	if (rc == 0 && c->pub_name) {
		char path[1024], fsel[512];
		snprintf(path, sizeof path, "/api/v1/namespaces/%s/services", c->pub_ns);
		snprintf(fsel, sizeof fsel, "metadata.name=%s", c->pub_name);
		rc = add_informer(c, K_PUBLISH, path, c->pub_ns, fsel, err);
	}
	if (rc == 0 && c->self_name) {
		char path[1024], lsel[512];
		snprintf(path, sizeof path, "/apis/discovery.k8s.io/v1/namespaces/%s/endpointslices", c->self_ns);
		snprintf(lsel, sizeof lsel, "kubernetes.io/service-name=%s", c->self_name);
		rc = add_informer_sel(c, K_SELF, path, c->self_ns, NULL, lsel, err);
	}
	if (rc < 0) {
		if (err && err->code != rc)
			tw_err_set(err, rc, "kubernetes: %s", tw_strerror(rc));
		free_all(c);
		return rc;
	}
	tw_info("[k8s] API server %s (%s), %zu watches, identity %s, lease %s/%s", c->kc.server,
	        c->kc.source, c->ninf, c->identity, c->lease_ns, c->lease_name);
	for (size_t i = 0; i < c->ninf; i++) {
		if (pthread_create(&c->inf[i].th, NULL, informer_main, &c->inf[i]) != 0) {
			rc = tw_err_set(err, TW_ENOMEM, "cannot start a watch thread");
			break;
		}
		c->inf[i].running = 1;
	}
	if (rc == 0) {
		if (pthread_create(&c->apply_th, NULL, apply_main, c) != 0)
			rc = tw_err_set(err, TW_ENOMEM, "cannot start the apply thread");
		else
			c->apply_running = 1;
	}
	if (rc == 0) {
		if (pthread_create(&c->leader_th, NULL, leader_main, c) != 0)
			rc = tw_err_set(err, TW_ENOMEM, "cannot start the leader thread");
		else
			c->leader_running = 1;
	}
	if (rc < 0) {
		tw_k8s_controller_stop(c);
		return rc;
	}
	*out = c;
	return 0;
}

void tw_k8s_controller_stop(struct tw_k8s_controller *c)
{
	if (c == NULL)
		return;
	atomic_store(&c->stop, 1);
	pthread_mutex_lock(&c->mu);
	pthread_cond_broadcast(&c->cv);
	pthread_cond_broadcast(&c->lcv);
	pthread_mutex_unlock(&c->mu);
	for (size_t i = 0; i < c->ninf; i++)
		if (c->inf[i].running)
			pthread_join(c->inf[i].th, NULL);
	if (c->apply_running)
		pthread_join(c->apply_th, NULL);
	if (c->leader_running)
		pthread_join(c->leader_th, NULL);
	free_all(c);
}

void tw_k8s_controller_kick(struct tw_k8s_controller *c)
{
	on_change(c);
}

int tw_k8s_controller_synced(const struct tw_k8s_controller *c)
{
	struct tw_k8s_controller *m = (struct tw_k8s_controller *)c;
	pthread_mutex_lock(&m->mu);
	int s = m->first_applied;
	pthread_mutex_unlock(&m->mu);
	return s;
}

int tw_k8s_controller_wait_synced(struct tw_k8s_controller *c, unsigned timeout_ms)
{
	uint64_t end = mono_ms() + timeout_ms;
	pthread_mutex_lock(&c->mu);
	while (!c->first_applied && mono_ms() < end && !atomic_load(&c->stop))
		cond_wait_ms(&c->lcv, &c->mu, 100);
	int s = c->first_applied;
	pthread_mutex_unlock(&c->mu);
	return s ? 0 : TW_ETIMEDOUT;
}

int tw_k8s_controller_leader(const struct tw_k8s_controller *c)
{
	return atomic_load(&c->leader);
}

static int kind_index(enum kind k)
{
	return k < K_PUBLISH ? (int)k : -1;
}

void tw_k8s_controller_stats(const struct tw_k8s_controller *c, struct tw_k8s_controller_stats *o)
{
	memset(o, 0, sizeof *o);
	o->synced = tw_k8s_controller_synced(c);
	o->leader = atomic_load(&c->leader);
	o->applies_ok = atomic_load(&c->applies_ok);
	o->applies_failed = atomic_load(&c->applies_failed);
	o->status_writes = atomic_load(&c->status_writes);
	o->events_posted = atomic_load(&c->events_posted);
	o->write_errors = atomic_load(&c->write_errors);
	o->last_apply_latency_us = atomic_load(&c->apply_latency_us);
	o->last_sync_age_ms = UINT64_MAX;
	uint64_t now = real_ms(), oldest = UINT64_MAX;
	int all = 1;
	for (size_t i = 0; i < c->ninf; i++) {
		const struct tw_k8s_watch_stats *s = tw_k8s_watch_stats(c->inf[i].w);
		int k = kind_index(c->inf[i].kind);
		if (k >= 0)
			o->objects[k] += atomic_load(&s->objects);
		o->events += atomic_load(&s->events);
		o->relists += atomic_load(&s->relists);
		o->watch_errors += atomic_load(&s->errors);
		uint64_t t = atomic_load(&s->last_sync_ms);
		if (t == 0)
			all = 0;
		else if (t < oldest)
			oldest = t;
	}
	if (all && oldest != UINT64_MAX)
		o->last_sync_age_ms = now > oldest ? now - oldest : 0;
}

int tw_k8s_controller_metrics(const struct tw_k8s_controller *c, struct tw_dbuf *out)
{
	static const char *const fam[][3] = {
	    {"tapwork_k8s_objects", "gauge", "Objects in the informer caches, by kind."},
	    {"tapwork_k8s_events_total", "counter",
	     "Watch events (and relist differences) applied to the caches."},
	    {"tapwork_k8s_relists_total", "counter",
	     "Full lists after the first (410 Gone, broken streams)."},
	    {"tapwork_k8s_watch_errors_total", "counter", "Failed lists and watches."},
	    {"tapwork_k8s_last_sync_age_seconds", "gauge",
	     "Seconds since the cache last heard from the API server."},
	};
	uint64_t v[K_N][5] = {{0}};
	uint64_t now = real_ms();
	for (int k = 0; k < K_N; k++)
		v[k][4] = UINT64_MAX;
	for (size_t i = 0; i < c->ninf; i++) {
		const struct tw_k8s_watch_stats *s = tw_k8s_watch_stats(c->inf[i].w);
		enum kind k = c->inf[i].kind;
		v[k][0] += atomic_load(&s->objects);
		v[k][1] += atomic_load(&s->events);
		v[k][2] += atomic_load(&s->relists);
		v[k][3] += atomic_load(&s->errors);
		uint64_t t = atomic_load(&s->last_sync_ms);
		uint64_t age = t ? (now > t ? now - t : 0) : UINT64_MAX;
		if (v[k][4] == UINT64_MAX || (age != UINT64_MAX && age > v[k][4]))
			v[k][4] = age;
	}
	int rc = 0;
	for (int f = 0; f < 5 && rc == 0; f++) {
		rc = tw_dbuf_appendf(out, "# HELP %s %s\n# TYPE %s %s\n", fam[f][0], fam[f][2],
		                     fam[f][0], fam[f][1]);
		for (int k = 0; k < K_N && rc == 0; k++) {
			int present = 0;
			for (size_t i = 0; i < c->ninf; i++)
				present |= c->inf[i].kind == (enum kind)k;
			if (!present)
				continue;
			if (f == 4) {
				if (v[k][4] != UINT64_MAX)
					rc = tw_dbuf_appendf(out, "%s{kind=\"%s\"} %.3f\n",
					                     fam[f][0], kind_names[k],
					                     (double)v[k][4] / 1000.0);
			} else {
				rc = tw_dbuf_appendf(out, "%s{kind=\"%s\"} %llu\n", fam[f][0],
				                     kind_names[k], (unsigned long long)v[k][f]);
			}
		}
	}
	int ready = atomic_load(&c->self_ready);
	if (rc == 0 && c->self_name && ready >= 0)
		rc = tw_dbuf_appendf(out,
		                     "# HELP tapwork_k8s_service_ready_endpoints Ready endpoints of tapwork's own "
		                     "Service (kubernetes.replicas_from): N of cluster: divide rate limits.\n"
		                     "# TYPE tapwork_k8s_service_ready_endpoints gauge\n"
		                     "tapwork_k8s_service_ready_endpoints{service=\"%s/%s\"} %d\n",
		                     c->self_ns, c->self_name, ready);
	struct tw_k8s_controller_stats s;
	tw_k8s_controller_stats(c, &s);
	if (rc == 0)
		rc = tw_dbuf_appendf(
		    out,
		    "# HELP tapwork_k8s_synced 1 once every cache has listed and the first apply "
		    "ran.\n"
		    "# TYPE tapwork_k8s_synced gauge\ntapwork_k8s_synced %d\n"
		    "# HELP tapwork_k8s_leader 1 while this replica holds the leader Lease.\n"
		    "# TYPE tapwork_k8s_leader gauge\ntapwork_k8s_leader %d\n"
		    "# HELP tapwork_k8s_applies_total Cluster states handed to the edge.\n"
		    "# TYPE tapwork_k8s_applies_total counter\n"
		    "tapwork_k8s_applies_total{result=\"ok\"} "
		    "%llu\ntapwork_k8s_applies_total{result=\"error\"} %llu\n"
		    "# HELP tapwork_k8s_writes_total Writes by the leader: Ingress status, Events, "
		    "failures.\n"
		    "# TYPE tapwork_k8s_writes_total counter\n"
		    "tapwork_k8s_writes_total{what=\"status\"} "
		    "%llu\ntapwork_k8s_writes_total{what=\"event\"} %llu\n"
		    "tapwork_k8s_writes_total{what=\"error\"} %llu\n"
		    "# HELP tapwork_k8s_apply_latency_seconds First change of the last burst to "
		    "applied.\n"
		    "# TYPE tapwork_k8s_apply_latency_seconds "
		    "gauge\ntapwork_k8s_apply_latency_seconds %.6f\n",
		    s.synced, s.leader, (unsigned long long)s.applies_ok,
		    (unsigned long long)s.applies_failed, (unsigned long long)s.status_writes,
		    (unsigned long long)s.events_posted, (unsigned long long)s.write_errors,
		    (double)s.last_apply_latency_us / 1e6);
	return rc;
}
