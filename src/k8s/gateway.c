/* gateway.c — Gateway API objects (gateway.networking.k8s.io: GatewayClass,
 * Gateway, HTTPRoute, ReferenceGrant) -> routes of the same generation as the
 * Ingresses (see ingress_int.h and docs/kubernetes.md, "Gateway API").
 *
 * The translator stays one pass: HTTPRoutes become ING_ROUTE members of
 * t->ings, ranked by age together with the Ingresses, and their matches
 * become entries of the same sorted list — so an Ingress path and an
 * HTTPRoute match for the same host, path and matchers are decided by age
 * like two Ingresses. What Ingress entries lack (request matchers, filters,
 * weighted backends) rides along in struct gw_match and becomes the route's
 * tw_route_ext in build(). Services and Secrets are resolved by the
 * Ingress code (tw_k8s_ing_backend, tw_k8s_ing_site_tls) through ING_AUX
 * stand-ins that carry the namespace. Pure: the statuses the objects should
 * have go to rep->gw_status; the leader writes them. */
#include "k8s/ingress_int.h"

#include "conf/schema.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define GW_API "gateway.networking.k8s.io"
#define MAX_PARENTS 32
#define MAX_GW_RULES 64 /* HTTPRoute spec.rules (the CRD allows 16; some clusters patch it) */
#define MAX_GW_MATCHES 64
#define MAX_GW_REFS 16
#define MAX_GW_HOSTS 16
#define MAX_GW_LISTENERS 64
#define WSEQ_MAX 10000 /* longest weighted sequence: larger weight sums are scaled down */

struct gw_listener {
	const json_t *l;
	const char *name, *proto;
	json_int_t port;
	const char *host; /* lower-case; NULL = any */
	int acc_ok, ref_ok;
	const char *acc_reason, *ref_reason;
	char acc_msg[200], ref_msg[200];
	int from; /* 0 Same, 1 All, 2 Selector */
	const json_t *selector;
	const char *secret; /* HTTPS: the certificate Secret's name */
	size_t tls_ing;     /* HTTPS: the ING_AUX of the Secret's namespace */
	int conflicted;     /* an earlier listener has the same port and hostname */
	int no_kinds;       /* supportedKinds is empty: an unsupported protocol, or no kind we serve */
	unsigned attached;
};

struct gw_gateway {
	const struct tw_k8s_obj *o;
	struct gw_listener *ls;
	size_t nl;
	const char *rejected; /* Accepted=False reason of the whole Gateway (nothing attaches); NULL = none */
	char rej_msg[200];
};

struct gw_ref {
	const char *ns;
	const json_t *be; /* a synthetic IngressBackend {"service": {"name", "port": {"number"}}}; NULL = invalid */
	unsigned weight;
};

struct gw_rule {
	struct gw_ref refs[MAX_GW_REFS];
	size_t nrefs;
	int status; /* 500: no valid backend (and no redirect) */
	uint64_t response_ms; /* timeouts.request / backendRequest; 0 = default */
	struct tw_route_ext tmpl; /* filters: req/resp header edits, redirect, rewrite */
};

struct gw_match {
	struct tw_route_ext tmpl; /* the rule's filters plus this match's matchers */
	const struct gw_rule *rule;
};

struct gw_state {
	const char *ctl;
	struct gw_gateway *gws; /* our Gateways, in store order (ns, name) */
	size_t ngw;
	size_t helper;  /* ING_AUX used for backends: its ns is set per call */
	size_t nroutes; /* ING_ROUTEs start at route0 */
	size_t route0;
	json_t *owned;  /* synthetic IngressBackends */
	json_t *status; /* rep->gw_status being built */
	json_t **route_parents; /* per ING_ROUTE: its status.parents (ours) */
	struct vec remap;       /* struct tw_wbackend * to map through pos[] */
};

/* ---- small helpers ---------------------------------------------------------- */

static const char *jstr(const json_t *o, const char *k)
{
	return tw_k8s_ing_jstr(o, k);
}

static const char *str_or(const char *s, const char *d)
{
	return s ? s : d;
}

static unsigned addr_port(const struct tw_addr *a)
{
	if (a->ss.ss_family == AF_INET)
		return ntohs(((const struct sockaddr_in *)&a->ss)->sin_port);
	if (a->ss.ss_family == AF_INET6)
		return ntohs(((const struct sockaddr_in6 *)&a->ss)->sin6_port);
	return 0;
}

static json_int_t generation(const json_t *obj)
{
	return json_integer_value(json_object_get(json_object_get(obj, "metadata"), "generation"));
}

static json_t *cond(const char *type, int ok, const char *reason, const char *msg, json_int_t gen)
{
	return json_pack("{s:s, s:s, s:s, s:s, s:I}", "type", type, "status", ok ? "True" : "False", "reason", reason,
			 "message", msg ? msg : "", "observedGeneration", (json_int_t)gen);
}

/* A host name of an object into the cfg arena, lower-cased and checked;
 * "*.suffix" allowed. NULL when invalid. */
static const char *gw_host(struct tr *t, const char *h)
{
	if (h == NULL || h[0] == '\0')
		return NULL;
	char *c = tw_arena_strdup(&t->cfg->arena, h);
	const char *why = NULL;
	if (c == NULL || strcmp(c, "*") == 0 || tw_conf_host_check(c, &why) < 0)
		return NULL;
	return c;
}

/* Hostname intersection of a listener's (NULL = any) and a route's (NULL =
 * none given): the more specific of the two, or NULL when they share no
 * name. *none is set when there is no intersection. */
static const char *isect(const char *l, const char *h, int *none)
{
	*none = 0;
	if (l == NULL)
		return h;
	if (h == NULL || strcmp(l, h) == 0)
		return l;
	size_t ll = strlen(l), hl = strlen(h);
	if (l[0] == '*') { /* "*.s": h must end with ".s" below it */
		const char *suf = l + 1; /* ".s" */
		size_t sl = ll - 1;
		const char *hb = h[0] == '*' ? h + 1 : h;
		size_t hbl = h[0] == '*' ? hl - 1 : hl;
		if (hbl > sl && strcmp(hb + hbl - sl, suf) == 0)
			return h;
	}
	if (h[0] == '*' && l[0] != '*') {
		const char *suf = h + 1;
		size_t sl = hl - 1;
		if (ll > sl && strcmp(l + ll - sl, suf) == 0)
			return l;
	}
	*none = 1;
	return NULL;
}

/* Does a ReferenceGrant in to_ns let (from_kind in from_ns) refer to
 * (to_group, to_kind, to_name)? */
static int granted(const struct tr *t, const char *from_kind, const char *from_ns, const char *to_group,
		   const char *to_kind, const char *to_ns, const char *to_name)
{
	const struct tw_k8s_store *st = t->v->referencegrants;
	size_t n = st ? tw_k8s_store_count(st) : 0;
	for (size_t i = 0; i < n; i++) {
		const struct tw_k8s_obj *o = tw_k8s_store_at(st, i);
		if (strcmp(o->ns, to_ns) != 0)
			continue;
		const json_t *spec = json_object_get(o->obj, "spec");
		int from_ok = 0, to_ok = 0;
		size_t k;
		json_t *f;
		json_array_foreach(json_object_get(spec, "from"), k, f)
		{
			if (strcmp(str_or(jstr(f, "group"), ""), GW_API) == 0 &&
			    strcmp(str_or(jstr(f, "kind"), ""), from_kind) == 0 &&
			    strcmp(str_or(jstr(f, "namespace"), ""), from_ns) == 0)
				from_ok = 1;
		}
		json_array_foreach(json_object_get(spec, "to"), k, f)
		{
			const char *nm = jstr(f, "name");
			if (strcmp(str_or(jstr(f, "group"), ""), to_group) == 0 &&
			    strcmp(str_or(jstr(f, "kind"), ""), to_kind) == 0 && (nm == NULL || strcmp(nm, to_name) == 0))
				to_ok = 1;
		}
		if (from_ok && to_ok)
			return 1;
	}
	return 0;
}

/* metav1.LabelSelector against a namespace's labels. */
static int selector_matches(const json_t *sel, const json_t *labels)
{
	const char *k;
	json_t *v;
	json_object_foreach((json_t *)json_object_get(sel, "matchLabels"), k, v)
	{
		const char *have = json_string_value(json_object_get(labels, k));
		if (have == NULL || !json_is_string(v) || strcmp(have, json_string_value(v)) != 0)
			return 0;
	}
	size_t i;
	json_t *e;
	json_array_foreach(json_object_get(sel, "matchExpressions"), i, e)
	{
		const char *key = jstr(e, "key"), *op = jstr(e, "operator");
		if (key == NULL || op == NULL)
			return 0;
		const char *have = json_string_value(json_object_get(labels, key));
		int in = 0;
		size_t j;
		json_t *val;
		json_array_foreach(json_object_get(e, "values"), j, val)
		{
			if (have && json_is_string(val) && strcmp(have, json_string_value(val)) == 0)
				in = 1;
		}
		if ((strcmp(op, "In") == 0 && !in) || (strcmp(op, "NotIn") == 0 && in) ||
		    (strcmp(op, "Exists") == 0 && have == NULL) || (strcmp(op, "DoesNotExist") == 0 && have != NULL))
			return 0;
		if (strcmp(op, "In") != 0 && strcmp(op, "NotIn") != 0 && strcmp(op, "Exists") != 0 &&
		    strcmp(op, "DoesNotExist") != 0)
			return 0;
	}
	return 1;
}

static size_t add_ing(struct tr *t, enum ing_kind kind, const struct tw_k8s_obj *o, const char *ns)
{
	struct ing *g = &t->ings[t->nings];
	memset(g, 0, sizeof *g);
	g->kind = kind;
	g->o = o;
	g->eff = o ? o->obj : NULL;
	g->ns = ns;
	g->name = o ? o->name : "";
	g->item = SIZE_MAX;
	g->ann.ssl_redirect = 0; /* Gateway listeners never redirect by themselves */
	g->ann.hsts = 0;
	g->ann.be.balance = TW_BAL_ROUND_ROBIN;
	g->ann.be.hash_src = TW_HASH_CLIENT_IP;
	g->ann.be.retries = 2;
	g->ann.be.connect_ms = 5000;
	g->ann.be.response_ms = 60000;
	const char *cr = o ? tw_k8s_ing_jpath_str(o->obj, "metadata", "creationTimestamp") : NULL;
	g->created = cr ? cr : "";
	return t->nings++;
}

/* ---- selection: classes, Gateways, listeners -------------------------------- */

static int class_is_ours(const struct tr *t, const char *name)
{
	const struct tw_k8s_obj *c = name && t->v->gateway_classes ? tw_k8s_store_get(t->v->gateway_classes, "", name) : NULL;
	const char *ctl = c ? tw_k8s_ing_jpath_str(c->obj, "spec", "controllerName") : NULL;
	return ctl != NULL && strcmp(ctl, t->gw->ctl) == 0;
}

static int listener_eval(struct tr *t, struct gw_gateway *gw, struct gw_listener *L, size_t *naux)
{
	const json_t *l = L->l;
	const struct tw_config *cfg = t->cfg;
	L->name = str_or(jstr(l, "name"), "");
	L->proto = str_or(jstr(l, "protocol"), "");
	L->port = json_integer_value(json_object_get(l, "port"));
	L->host = gw_host(t, jstr(l, "hostname"));
	L->acc_ok = L->ref_ok = 1;
	L->acc_reason = "Accepted";
	L->ref_reason = "ResolvedRefs";
	L->tls_ing = SIZE_MAX;
	int https = strcmp(L->proto, "HTTPS") == 0;
	if (!https && strcmp(L->proto, "HTTP") != 0) {
		L->acc_ok = 0;
		L->no_kinds = 1;
		L->acc_reason = "UnsupportedProtocol";
		snprintf(L->acc_msg, sizeof L->acc_msg, "protocol %.40s is not supported (HTTP and HTTPS are)", L->proto);
	} else if (https ? !cfg->has_https || (json_int_t)addr_port(&cfg->listen_https) != L->port
			 : !cfg->has_http || (json_int_t)addr_port(&cfg->listen_http) != L->port) {
		L->acc_ok = 0;
		L->acc_reason = "PortUnavailable";
		snprintf(L->acc_msg, sizeof L->acc_msg, "tapwork listens for %s on port %u, not %lld", https ? "HTTPS" : "HTTP",
			 addr_port(https ? &cfg->listen_https : &cfg->listen_http), (long long)L->port);
	} else if (jstr(l, "hostname") && L->host == NULL) {
		L->acc_ok = 0;
		L->acc_reason = "UnsupportedValue";
		snprintf(L->acc_msg, sizeof L->acc_msg, "bad hostname \"%.100s\"", jstr(l, "hostname"));
	}
	/* allowedRoutes */
	const json_t *ar = json_object_get(l, "allowedRoutes");
	const json_t *nsel = json_object_get(ar, "namespaces");
	const char *from = str_or(jstr(nsel, "from"), "Same");
	L->from = strcmp(from, "All") == 0 ? 1 : strcmp(from, "Selector") == 0 ? 2 : 0;
	L->selector = json_object_get(nsel, "selector");
	const json_t *kinds = json_object_get(ar, "kinds");
	if (json_array_size(kinds) > 0) {
		int any = 0, bad = 0;
		size_t i;
		json_t *k;
		json_array_foreach(kinds, i, k)
		{
			if (strcmp(str_or(jstr(k, "group"), GW_API), GW_API) == 0 && strcmp(str_or(jstr(k, "kind"), ""), "HTTPRoute") == 0)
				any = 1;
			else
				bad = 1;
		}
		if (bad) {
			L->ref_ok = 0;
			L->ref_reason = "InvalidRouteKinds";
			snprintf(L->ref_msg, sizeof L->ref_msg, "only HTTPRoute is supported");
		}
		if (!any)
			L->from = -1; /* no kind we serve: nothing attaches */
	}
	if (L->no_kinds)
		L->from = -1;
	else if (L->from < 0)
		L->no_kinds = 1;
	if (https && L->acc_ok) {
		const json_t *tls = json_object_get(l, "tls");
		const char *mode = str_or(jstr(tls, "mode"), "Terminate");
		const json_t *ref = json_array_get(json_object_get(tls, "certificateRefs"), 0);
		const char *rns = str_or(jstr(ref, "namespace"), gw->o->ns), *rname = jstr(ref, "name");
		if (strcmp(mode, "Terminate") != 0) {
			L->acc_ok = 0;
			L->acc_reason = "UnsupportedValue";
			snprintf(L->acc_msg, sizeof L->acc_msg, "tls.mode %.40s is not supported (Terminate is)", mode);
		} else if (ref == NULL || rname == NULL || strcmp(str_or(jstr(ref, "group"), ""), "") != 0 ||
			   strcmp(str_or(jstr(ref, "kind"), "Secret"), "Secret") != 0) {
			L->ref_ok = 0;
			L->ref_reason = "InvalidCertificateRef";
			snprintf(L->ref_msg, sizeof L->ref_msg, "tls.certificateRefs[0] must name a Secret");
		} else if (strcmp(rns, gw->o->ns) != 0 && !granted(t, "Gateway", gw->o->ns, "", "Secret", rns, rname)) {
			L->ref_ok = 0;
			L->ref_reason = "RefNotPermitted";
			snprintf(L->ref_msg, sizeof L->ref_msg, "no ReferenceGrant in %.60s allows Secret %.100s", rns, rname);
		} else if (t->v->secrets == NULL || tw_k8s_store_get(t->v->secrets, rns, rname) == NULL) {
			L->ref_ok = 0;
			L->ref_reason = "InvalidCertificateRef";
			snprintf(L->ref_msg, sizeof L->ref_msg, "Secret %.60s/%.100s (kubernetes.io/tls) not found", rns, rname);
		} else if ((L->ref_ok = tw_k8s_ing_secret_check(t, rns, rname, L->ref_msg, sizeof L->ref_msg)) <= 0) {
			if (L->ref_ok < 0)
				return L->ref_ok;
			L->ref_reason = "InvalidCertificateRef"; /* malformed: not a certificate and its key */
		} else {
			L->secret = rname;
			L->tls_ing = add_ing(t, ING_AUX, NULL, rns);
			(*naux)++;
		}
	}
	return 0;
}

/* Does the listener carry traffic? Accepted, and its references resolved
 * (a route kind it cannot serve beside HTTPRoute does not stop it). */
static int listener_serves(const struct gw_listener *L)
{
	return L->acc_ok && (L->ref_ok || strcmp(L->ref_reason, "InvalidRouteKinds") == 0);
}

static int ns_allowed(const struct tr *t, const struct gw_gateway *gw, const struct gw_listener *L, const char *rns)
{
	if (L->from == 0)
		return strcmp(rns, gw->o->ns) == 0;
	if (L->from == 1)
		return 1;
	if (L->from == 2) {
		const struct tw_k8s_obj *n = t->v->namespaces ? tw_k8s_store_get(t->v->namespaces, "", rns) : NULL;
		return n != NULL && json_is_object(L->selector) &&
		       selector_matches(L->selector, json_object_get(json_object_get(n->obj, "metadata"), "labels"));
	}
	return 0;
}

static const struct gw_gateway *find_gw(const struct gw_state *s, const char *ns, const char *name)
{
	size_t lo = 0, hi = s->ngw;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		const struct tw_k8s_obj *o = s->gws[mid].o;
		int r = strcmp(o->ns, ns);
		if (r == 0)
			r = strcmp(o->name, name);
		if (r == 0)
			return &s->gws[mid];
		if (r < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return NULL;
}

/* Does the HTTPRoute name one of our Gateways as a parent? */
static int route_is_ours(const struct gw_state *s, const struct tw_k8s_obj *o)
{
	size_t i;
	json_t *p;
	json_array_foreach(json_object_get(json_object_get(o->obj, "spec"), "parentRefs"), i, p)
	{
		if (strcmp(str_or(jstr(p, "group"), GW_API), GW_API) != 0 || strcmp(str_or(jstr(p, "kind"), "Gateway"), "Gateway") != 0)
			continue;
		const char *name = jstr(p, "name");
		if (name && find_gw(s, str_or(jstr(p, "namespace"), o->ns), name))
			return 1;
	}
	return 0;
}

int tw_k8s_gw_select(struct tr *t)
{
	const struct tw_k8s_view *v = t->v;
	if (!t->cfg->has_k8s || !t->cfg->k8s.has_gateway || v->gateways == NULL)
		return 0;
	struct gw_state *s = calloc(1, sizeof *s);
	if (s == NULL)
		return TW_ENOMEM;
	t->gw = s;
	s->ctl = t->cfg->k8s.gateway.controller_name ? t->cfg->k8s.gateway.controller_name : "tapwork.dev/gateway-controller";
	s->remap.width = sizeof(struct tw_wbackend *);
	s->owned = json_array();
	s->status = json_array();
	if (s->owned == NULL || s->status == NULL)
		return TW_ENOMEM;
	size_t ngw_all = tw_k8s_store_count(v->gateways), nr_all = v->httproutes ? tw_k8s_store_count(v->httproutes) : 0;
	size_t nls = 0;
	for (size_t i = 0; i < ngw_all; i++) {
		size_t nl = json_array_size(json_object_get(json_object_get(tw_k8s_store_at(v->gateways, i)->obj, "spec"), "listeners"));
		nls += nl < MAX_GW_LISTENERS ? nl : MAX_GW_LISTENERS;
	}
	/* room for every HTTPRoute, the helper and one stand-in per listener */
	struct ing *ni = realloc(t->ings, (t->nings + nr_all + 1 + nls + 1) * sizeof *ni);
	if (ni == NULL)
		return TW_ENOMEM;
	t->ings = ni;
	s->gws = calloc(ngw_all ? ngw_all : 1, sizeof *s->gws);
	if (s->gws == NULL)
		return TW_ENOMEM;
	/* GatewayClasses: ours are Accepted */
	size_t nc = v->gateway_classes ? tw_k8s_store_count(v->gateway_classes) : 0;
	for (size_t i = 0; i < nc; i++) {
		const struct tw_k8s_obj *o = tw_k8s_store_at(v->gateway_classes, i);
		const char *ctl = tw_k8s_ing_jpath_str(o->obj, "spec", "controllerName");
		if (ctl == NULL || strcmp(ctl, s->ctl) != 0)
			continue;
		json_t *st = json_pack("{s:s, s:s, s:s, s:{s:[o]}}", "kind", "gatewayclasses", "ns", "", "name", o->name,
				       "status", "conditions",
				       cond("Accepted", 1, "Accepted", "handled by tapwork", generation(o->obj)));
		if (st == NULL || json_array_append_new(s->status, st) < 0)
			return TW_ENOMEM;
	}
	size_t naux = 0;
	s->helper = add_ing(t, ING_AUX, NULL, "");
	for (size_t i = 0; i < ngw_all; i++) {
		const struct tw_k8s_obj *o = tw_k8s_store_at(v->gateways, i);
		if (!class_is_ours(t, tw_k8s_ing_jpath_str(o->obj, "spec", "gatewayClassName")))
			continue;
		if (t->opt->nnamespaces) {
			int in = 0;
			for (size_t k = 0; k < t->opt->nnamespaces; k++)
				in |= strcmp(t->opt->namespaces[k], o->ns) == 0;
			if (!in)
				continue;
		}
		struct gw_gateway *gw = &s->gws[s->ngw++];
		gw->o = o;
		const json_t *ls = json_object_get(json_object_get(o->obj, "spec"), "listeners");
		gw->nl = json_array_size(ls) < MAX_GW_LISTENERS ? json_array_size(ls) : MAX_GW_LISTENERS;
		gw->ls = calloc(gw->nl ? gw->nl : 1, sizeof *gw->ls);
		if (gw->ls == NULL)
			return TW_ENOMEM;
		/* tapwork takes no parameters: a Gateway that names some is rejected */
		const json_t *pref = json_object_get(json_object_get(json_object_get(o->obj, "spec"), "infrastructure"),
						     "parametersRef");
		if (pref != NULL && !json_is_null(pref)) {
			gw->rejected = "InvalidParameters";
			snprintf(gw->rej_msg, sizeof gw->rej_msg,
				 "infrastructure.parametersRef %.40s %.60s: tapwork takes no parameters",
				 str_or(jstr(pref, "kind"), "?"), str_or(jstr(pref, "name"), "?"));
		}
		for (size_t k = 0; k < gw->nl; k++) {
			struct gw_listener *L = &gw->ls[k];
			L->l = json_array_get(ls, k);
			int lrc = listener_eval(t, gw, L, &naux);
			if (lrc < 0)
				return lrc;
			for (size_t j = 0; j < k && !L->conflicted; j++) {
				const struct gw_listener *E = &gw->ls[j];
				if (E->port == L->port && !E->conflicted &&
				    ((E->host == NULL && L->host == NULL) ||
				     (E->host && L->host && strcmp(E->host, L->host) == 0)))
					L->conflicted = 1;
			}
			if (L->conflicted) { /* the first listener keeps the name; this one serves nothing */
				L->acc_ok = 0;
				L->acc_reason = "HostnameConflict";
				snprintf(L->acc_msg, sizeof L->acc_msg, "another listener has port %lld and this hostname",
					 (long long)L->port);
			}
		}
	}
	/* HTTPRoutes with a parent among our Gateways */
	s->route0 = t->nings;
	s->route_parents = calloc(nr_all ? nr_all : 1, sizeof *s->route_parents);
	if (s->route_parents == NULL)
		return TW_ENOMEM;
	for (size_t i = 0; i < nr_all; i++) {
		const struct tw_k8s_obj *o = tw_k8s_store_at(v->httproutes, i);
		if (!route_is_ours(s, o)) {
			/* no longer attached to a Gateway of ours: take our parents out */
			int had = 0;
			size_t k;
			json_t *p;
			json_array_foreach(json_object_get(json_object_get(o->obj, "status"), "parents"), k, p)
			{
				const char *cn = jstr(p, "controllerName");
				had |= cn != NULL && strcmp(cn, s->ctl) == 0;
			}
			json_t *st = had ? json_pack("{s:s, s:s, s:s, s:{s:[]}}", "kind", "httproutes", "ns", o->ns, "name",
						     o->name, "status", "parents")
					 : NULL;
			if (had && (st == NULL || json_array_append_new(s->status, st) < 0))
				return TW_ENOMEM;
			continue;
		}
		add_ing(t, ING_ROUTE, o, o->ns);
		s->nroutes++;
	}
	return 0;
}

/* ---- one HTTPRoute ------------------------------------------------------------- */

static int nv_list(struct tr *t, const json_t *arr, struct tw_nv **out, size_t *n, int lower_name)
{
	size_t cnt = json_array_size(arr);
	*out = NULL;
	*n = 0;
	if (cnt == 0)
		return 0;
	if (cnt > 64)
		return TW_EINVAL;
	struct tw_nv *v = tw_arena_alloc(&t->cfg->arena, cnt * sizeof *v);
	if (v == NULL)
		return TW_ENOMEM;
	for (size_t i = 0; i < cnt; i++) {
		const json_t *e = json_array_get(arr, i);
		const char *nm = jstr(e, "name"), *val = jstr(e, "value");
		if (nm == NULL || val == NULL || nm[0] == '\0' || strpbrk(nm, ": \t\r\n") || strpbrk(val, "\r\n"))
			return TW_EINVAL;
		if ((v[i].name = tw_arena_strdup(&t->cfg->arena, nm)) == NULL ||
		    (v[i].value = tw_arena_strdup(&t->cfg->arena, val)) == NULL)
			return TW_ENOMEM;
		for (char *p = v[i].name; lower_name && *p; p++)
			if (*p >= 'A' && *p <= 'Z')
				*p = (char)(*p - 'A' + 'a');
	}
	*out = v;
	*n = cnt;
	return 0;
}

static int hdr_mod(struct tr *t, const json_t *f, struct tw_hdr_mod *m)
{
	int rc = nv_list(t, json_object_get(f, "set"), &m->set, &m->nset, 0);
	if (rc == 0)
		rc = nv_list(t, json_object_get(f, "add"), &m->add, &m->nadd, 0);
	const json_t *rm = json_object_get(f, "remove");
	size_t n = json_array_size(rm);
	if (rc == 0 && n > 64)
		rc = TW_EINVAL;
	if (rc == 0 && n > 0) {
		if ((m->remove = tw_arena_alloc(&t->cfg->arena, n * sizeof *m->remove)) == NULL)
			return TW_ENOMEM;
		for (size_t i = 0; i < n; i++) {
			const char *s = json_string_value(json_array_get(rm, i));
			if (s == NULL || s[0] == '\0' || strpbrk(s, ": \t\r\n"))
				return TW_EINVAL;
			if ((m->remove[i] = tw_arena_strdup(&t->cfg->arena, s)) == NULL)
				return TW_ENOMEM;
		}
		m->nremove = n;
	}
	return rc;
}

static int path_mod(struct tr *t, const json_t *p, struct tw_route_ext *x)
{
	if (p == NULL)
		return 0;
	const char *type = str_or(jstr(p, "type"), "");
	const char *val = NULL;
	if (strcmp(type, "ReplaceFullPath") == 0) {
		x->path_mod = TW_PATH_FULL;
		val = jstr(p, "replaceFullPath");
	} else if (strcmp(type, "ReplacePrefixMatch") == 0) {
		x->path_mod = TW_PATH_PREFIX;
		val = jstr(p, "replacePrefixMatch");
	} else {
		return TW_EINVAL;
	}
	if (val == NULL || val[0] != '/' || strpbrk(val, " \t\r\n?#") || strlen(val) > 1024)
		return TW_EINVAL;
	return (x->path_value = tw_arena_strdup(&t->cfg->arena, val)) ? 0 : TW_ENOMEM;
}

/* The filters of a rule into r->tmpl. 0, TW_EINVAL (why set), TW_ENOMEM. */
static int rule_filters(struct tr *t, const json_t *filters, struct gw_rule *r, char *why, size_t wl)
{
	struct tw_route_ext *x = &r->tmpl;
	size_t i;
	json_t *f;
	json_array_foreach(filters, i, f)
	{
		const char *type = str_or(jstr(f, "type"), "");
		int rc = 0;
		if (strcmp(type, "RequestHeaderModifier") == 0) {
			rc = hdr_mod(t, json_object_get(f, "requestHeaderModifier"), &x->req);
		} else if (strcmp(type, "ResponseHeaderModifier") == 0) {
			rc = hdr_mod(t, json_object_get(f, "responseHeaderModifier"), &x->resp);
		} else if (strcmp(type, "RequestRedirect") == 0) {
			const json_t *rd = json_object_get(f, "requestRedirect");
			const char *sch = jstr(rd, "scheme"), *host = jstr(rd, "hostname");
			json_int_t code = json_is_integer(json_object_get(rd, "statusCode")) ? json_integer_value(json_object_get(rd, "statusCode")) : 302;
			json_int_t port = json_integer_value(json_object_get(rd, "port"));
			x->redirect = (int)code;
			if (code != 301 && code != 302 && code != 303 && code != 307 && code != 308)
				rc = TW_EINVAL;
			else if (sch && strcmp(sch, "http") != 0 && strcmp(sch, "https") != 0)
				rc = TW_EINVAL;
			else if (port < 0 || port > 65535)
				rc = TW_EINVAL;
			else if (host && (host = gw_host(t, host)) == NULL)
				rc = TW_EINVAL;
			else {
				x->redir_port = (unsigned)port;
				x->redir_host = (char *)host;
				if (sch && (x->redir_scheme = tw_arena_strdup(&t->cfg->arena, sch)) == NULL)
					return TW_ENOMEM;
				rc = path_mod(t, json_object_get(rd, "path"), x);
			}
		} else if (strcmp(type, "URLRewrite") == 0) {
			const json_t *rw = json_object_get(f, "urlRewrite");
			const char *host = jstr(rw, "hostname");
			if (host && (host = gw_host(t, host)) == NULL)
				rc = TW_EINVAL;
			else {
				x->rewrite_host = (char *)host;
				rc = path_mod(t, json_object_get(rw, "path"), x);
			}
		} else {
			snprintf(why, wl, "filter type %.40s is not supported", type);
			return TW_EINVAL;
		}
		if (rc == TW_ENOMEM)
			return rc;
		if (rc < 0) {
			snprintf(why, wl, "filters[%zu] (%.40s): invalid value", i, type);
			return rc;
		}
	}
	if (x->redirect && x->path_mod == TW_PATH_KEEP && x->rewrite_host) {
		snprintf(why, wl, "RequestRedirect and URLRewrite in one rule");
		return TW_EINVAL;
	}
	return 0;
}

/* The backendRefs of a rule. resolved/reason/msg: the first problem. */
static int rule_refs(struct tr *t, size_t gi, const json_t *refs, struct gw_rule *r, int *resolved,
		     const char **reason, char *msg, size_t ml)
{
	struct ing *g = &t->ings[gi];
	size_t n = json_array_size(refs);
	if (n > MAX_GW_REFS)
		n = MAX_GW_REFS;
	for (size_t i = 0; i < n; i++) {
		const json_t *b = json_array_get(refs, i);
		struct gw_ref *ref = &r->refs[r->nrefs++];
		const json_t *w = json_object_get(b, "weight");
		ref->weight = json_is_integer(w) ? (unsigned)(json_integer_value(w) < 0 ? 0 : json_integer_value(w) > 1000000 ? 1000000 : json_integer_value(w)) : 1;
		const char *grp = str_or(jstr(b, "group"), ""), *kind = str_or(jstr(b, "kind"), "Service");
		const char *name = jstr(b, "name");
		ref->ns = str_or(jstr(b, "namespace"), g->ns);
		const json_t *port = json_object_get(b, "port");
		const char *bad = NULL;
		char m[300] = "";
		if (strcmp(grp, "") != 0 || strcmp(kind, "Service") != 0) {
			bad = "InvalidKind";
			snprintf(m, sizeof m, "backendRefs: %.60s %.60s is not a Service", grp[0] ? grp : "core", kind);
		} else if (name == NULL) {
			bad = "BackendNotFound";
			snprintf(m, sizeof m, "backendRefs: a Service without name");
		} else if (strcmp(ref->ns, g->ns) != 0 && !granted(t, "HTTPRoute", g->ns, "", "Service", ref->ns, name)) {
			bad = "RefNotPermitted";
			snprintf(m, sizeof m, "no ReferenceGrant in %.60s allows Service %.100s", ref->ns, name);
		} else if (t->v->services == NULL || tw_k8s_store_get(t->v->services, ref->ns, name) == NULL) {
			bad = "BackendNotFound";
			snprintf(m, sizeof m, "Service %.60s/%.100s not found", ref->ns, name);
		} else if (!json_is_integer(port)) {
			bad = "UnsupportedValue";
			snprintf(m, sizeof m, "backendRefs to Service %.100s need a port", name);
		}
		if (bad) {
			if (*resolved) {
				*resolved = 0;
				*reason = bad;
				snprintf(msg, ml, "%s", m);
			}
			continue;
		}
		json_t *be = json_pack("{s:{s:s, s:{s:I}}}", "service", "name", name, "port", "number",
				       (json_int_t)json_integer_value(port));
		if (be == NULL || json_array_append_new(t->gw->owned, be) < 0)
			return TW_ENOMEM;
		ref->be = be;
	}
	return 0;
}

static int add_gw_entry(struct tr *t, size_t gi, const char *host, const char *path, enum tw_match m,
			const struct gw_match *gm, const char *mkey, size_t order)
{
	struct entry *e = tw_k8s_ing_vec_push(&t->entries);
	if (e == NULL)
		return TW_ENOMEM;
	e->host = host ? host : "";
	e->path = path;
	e->klen = strlen(path);
	if (m == TW_MATCH_PREFIX)
		while (e->klen > 0 && path[e->klen - 1] == '/')
			e->klen--;
	e->match = m;
	e->kind = E_RULE;
	e->ing = gi;
	e->rank = t->ings[gi].rank;
	e->order = order;
	e->gw = gm;
	e->mkey = mkey;
	return 0;
}

/* One match of a rule: its matchers on top of the rule's template, and a
 * canonical key of them. 0, TW_EINVAL (why), TW_ENOMEM. */
static int one_match(struct tr *t, const json_t *mt, const struct gw_rule *rule, uint64_t order, struct gw_match **out,
		     const char **path, enum tw_match *pm, const char **mkey, char *why, size_t wl)
{
	struct gw_match *gm = tw_arena_alloc(&t->scratch, sizeof *gm);
	if (gm == NULL)
		return TW_ENOMEM;
	memset(gm, 0, sizeof *gm);
	gm->tmpl = rule->tmpl;
	gm->rule = rule;
	gm->tmpl.order = order;
	const json_t *p = json_object_get(mt, "path");
	const char *ptype = str_or(jstr(p, "type"), "PathPrefix");
	*path = str_or(jstr(p, "value"), "/");
	if (strcmp(ptype, "Exact") == 0)
		*pm = TW_MATCH_EXACT;
	else if (strcmp(ptype, "PathPrefix") == 0)
		*pm = TW_MATCH_PREFIX;
	else {
		snprintf(why, wl, "path type %.40s is not supported", ptype);
		return TW_EINVAL;
	}
	if (!tw_k8s_ing_path_ok(*path)) {
		snprintf(why, wl, "bad path \"%.100s\"", *path);
		return TW_EINVAL;
	}
	if ((*path = tw_arena_strdup(&t->cfg->arena, *path)) == NULL)
		return TW_ENOMEM;
	size_t i;
	json_t *h;
	json_array_foreach(json_object_get(mt, "headers"), i, h)
	{
		if (strcmp(str_or(jstr(h, "type"), "Exact"), "Exact") != 0) {
			snprintf(why, wl, "header match type %.40s is not supported", jstr(h, "type"));
			return TW_EINVAL;
		}
	}
	json_array_foreach(json_object_get(mt, "queryParams"), i, h)
	{
		if (strcmp(str_or(jstr(h, "type"), "Exact"), "Exact") != 0) {
			snprintf(why, wl, "query match type %.40s is not supported", jstr(h, "type"));
			return TW_EINVAL;
		}
	}
	int rc = nv_list(t, json_object_get(mt, "headers"), &gm->tmpl.headers, &gm->tmpl.nheaders, 0);
	if (rc == 0)
		rc = nv_list(t, json_object_get(mt, "queryParams"), &gm->tmpl.query, &gm->tmpl.nquery, 0);
	if (rc == TW_EINVAL)
		snprintf(why, wl, "bad header or query match");
	if (rc < 0)
		return rc;
	const char *meth = jstr(mt, "method");
	if (meth && (gm->tmpl.method = tw_arena_strdup(&t->cfg->arena, meth)) == NULL)
		return TW_ENOMEM;
	/* the key: method, headers (names lower-case), query */
	char key[2048];
	size_t kl = 0;
	kl += (size_t)snprintf(key + kl, sizeof key - kl, "%s", meth ? meth : "");
	for (size_t k = 0; k < gm->tmpl.nheaders && kl < sizeof key; k++) {
		kl += (size_t)snprintf(key + kl, sizeof key - kl, "\001h");
		for (const char *c = gm->tmpl.headers[k].name; *c && kl + 1 < sizeof key; c++)
			key[kl++] = (*c >= 'A' && *c <= 'Z') ? (char)(*c - 'A' + 'a') : *c;
		key[kl] = '\0';
		if (kl < sizeof key)
			kl += (size_t)snprintf(key + kl, sizeof key - kl, "=%s", gm->tmpl.headers[k].value);
	}
	for (size_t k = 0; k < gm->tmpl.nquery && kl < sizeof key; k++)
		kl += (size_t)snprintf(key + kl, sizeof key - kl, "\001q%s=%s", gm->tmpl.query[k].name, gm->tmpl.query[k].value);
	if (kl >= sizeof key) {
		snprintf(why, wl, "matchers too long");
		return TW_EINVAL;
	}
	if ((*mkey = tw_arena_strdup(&t->scratch, key)) == NULL)
		return TW_ENOMEM;
	*out = gm;
	return 0;
}

int tw_k8s_gw_collect(struct tr *t, size_t gi)
{
	struct gw_state *s = t->gw;
	struct ing *g = &t->ings[gi];
	const json_t *spec = json_object_get(g->eff, "spec");
	json_int_t gen = generation(g->eff);
	int rc;
	/* rules: filters and backends */
	const json_t *rules = json_object_get(spec, "rules");
	size_t nrules = json_array_size(rules) < MAX_GW_RULES ? json_array_size(rules) : MAX_GW_RULES;
	struct gw_rule *rs = tw_arena_alloc(&t->scratch, (nrules ? nrules : 1) * sizeof *rs);
	if (rs == NULL)
		return TW_ENOMEM;
	memset(rs, 0, (nrules ? nrules : 1) * sizeof *rs);
	int resolved = 1, accepted = 1;
	size_t ninvalid = 0; /* rules with a filter we cannot apply: they answer 500 */
	const char *ref_reason = "ResolvedRefs", *acc_reason = "Accepted";
	char ref_msg[400] = "", acc_msg[400] = "";
	for (size_t i = 0; i < nrules; i++) {
		const json_t *r = json_array_get(rules, i);
		char why[300] = "";
		rc = rule_filters(t, json_object_get(r, "filters"), &rs[i], why, sizeof why);
		if (rc == TW_ENOMEM)
			return rc;
		size_t bi;
		json_t *bref;
		json_array_foreach(json_object_get(r, "backendRefs"), bi, bref)
		{
			/* a filter that cannot be applied must not be skipped: the rule answers 500 */
			if (rc == 0 && json_array_size(json_object_get(bref, "filters")) > 0) {
				snprintf(why, sizeof why, "backendRefs[%zu].filters are not supported", bi);
				rc = TW_EINVAL;
			}
		}
		if (rc < 0) {
			rs[i].status = 500;
			if (ninvalid++ == 0)
				snprintf(acc_msg, sizeof acc_msg, "rules[%zu]: %s (answers 500)", i, why);
			continue;
		}
		if ((rc = rule_refs(t, gi, json_object_get(r, "backendRefs"), &rs[i], &resolved, &ref_reason, ref_msg,
				    sizeof ref_msg)) < 0)
			return rc;
		const json_t *to = json_object_get(r, "timeouts");
		uint64_t ms = 0, v;
		struct tw_err e = {0};
		const char *tr_ = jstr(to, "request"), *tb = jstr(to, "backendRequest");
		if (tr_ && strcmp(tr_, "0s") != 0 && tw_duration_parse(tr_, &v, &e) == 0 && v > 0)
			ms = v;
		if (tb && strcmp(tb, "0s") != 0 && tw_duration_parse(tb, &v, &e) == 0 && v > 0 && (ms == 0 || v < ms))
			ms = v;
		rs[i].response_ms = ms;
		int any = 0;
		for (size_t k = 0; k < rs[i].nrefs; k++)
			any |= rs[i].refs[k].be != NULL && rs[i].refs[k].weight > 0;
		if (!any && !rs[i].tmpl.redirect)
			rs[i].status = 500;
	}
	if (nrules > 0 && ninvalid == nrules) { /* still served: every rule answers 500 */
		accepted = 0;
		acc_reason = "UnsupportedValue";
	}
	/* parents */
	json_t *parents = json_array();
	if (parents == NULL)
		return TW_ENOMEM;
	s->route_parents[gi - s->route0] = parents;
	const char *hosts[MAX_GW_HOSTS * 4];
	size_t nhosts = 0;
	struct {
		const char *host;
		const struct gw_listener *L;
	} served[MAX_GW_HOSTS * 8];
	size_t nserved = 0;
	const json_t *rhosts = json_object_get(spec, "hostnames");
	size_t nrh = json_array_size(rhosts) < MAX_GW_HOSTS ? json_array_size(rhosts) : MAX_GW_HOSTS;
	size_t i;
	json_t *p;
	json_array_foreach(json_object_get(spec, "parentRefs"), i, p)
	{
		if (i >= MAX_PARENTS)
			break;
		if (strcmp(str_or(jstr(p, "group"), GW_API), GW_API) != 0 || strcmp(str_or(jstr(p, "kind"), "Gateway"), "Gateway") != 0)
			continue;
		const char *pname = jstr(p, "name");
		const struct gw_gateway *gw = pname ? find_gw(s, str_or(jstr(p, "namespace"), g->ns), pname) : NULL;
		if (gw == NULL)
			continue;
		const char *section = jstr(p, "sectionName");
		const json_t *pport = json_object_get(p, "port");
		int pacc = accepted;
		const char *preason = acc_reason;
		char pmsg[400];
		snprintf(pmsg, sizeof pmsg, "%s", accepted ? "accepted" : acc_msg);
		int any_listener = 0, any_allowed = 0, any_host = 0;
		for (size_t k = 0; k < (gw->rejected ? 0 : gw->nl); k++) {
			struct gw_listener *L = &gw->ls[k];
			if (section && strcmp(section, L->name) != 0)
				continue;
			if (json_is_integer(pport) && json_integer_value(pport) != L->port)
				continue;
			any_listener = 1;
			if (!L->acc_ok || L->from < 0 || !ns_allowed(t, gw, L, g->ns))
				continue;
			any_allowed = 1;
			int attached = 0;
			/* a route counts on a listener that is not programmed (attachedRoutes), but
			 * nothing is served through it */
			size_t cap = listener_serves(L) ? sizeof served / sizeof served[0] : 0;
			if (nrh == 0) {
				int none;
				const char *h = isect(L->host, NULL, &none);
				if (nserved < cap) {
					served[nserved].host = h;
					served[nserved++].L = L;
				}
				attached = 1;
			}
			for (size_t j = 0; j < nrh; j++) {
				const char *rh = gw_host(t, json_string_value(json_array_get(rhosts, j)));
				int none;
				const char *h = rh ? isect(L->host, rh, &none) : NULL;
				if (h == NULL)
					continue;
				if (nserved < cap) {
					served[nserved].host = h;
					served[nserved++].L = L;
				}
				attached = 1;
			}
			if (attached) {
				any_host = 1;
				L->attached++;
			}
		}
		if (gw->rejected) {
			pacc = 0;
			preason = "NoMatchingParent";
			snprintf(pmsg, sizeof pmsg, "Gateway %s/%s is not accepted (%s)", gw->o->ns, gw->o->name, gw->rejected);
		} else if (!any_listener) {
			pacc = 0;
			preason = "NoMatchingParent";
			snprintf(pmsg, sizeof pmsg, "no listener of Gateway %s/%s matches sectionName/port", gw->o->ns,
				 gw->o->name);
		} else if (!any_allowed) {
			pacc = 0;
			preason = "NotAllowedByListeners";
			snprintf(pmsg, sizeof pmsg, "the listeners of Gateway %s/%s do not allow this route", gw->o->ns,
				 gw->o->name);
		} else if (!any_host) {
			pacc = 0;
			preason = "NoMatchingListenerHostname";
			snprintf(pmsg, sizeof pmsg, "no hostname in common with the listeners");
		}
		json_t *pe = json_pack("{s:o, s:s, s:[o, o]}", "parentRef", json_deep_copy(p), "controllerName",
				       s->ctl, "conditions", cond("Accepted", pacc, preason, pmsg, gen),
				       cond("ResolvedRefs", resolved, ref_reason, resolved ? "resolved" : ref_msg, gen));
		if (pe == NULL || json_array_append_new(parents, pe) < 0)
			return TW_ENOMEM;
		if (ninvalid > 0 && ninvalid < nrules &&
		    json_array_append_new(json_object_get(pe, "conditions"),
					  cond("PartiallyInvalid", 1, "UnsupportedValue", acc_msg, gen)) < 0)
			return TW_ENOMEM;
	}
	/* the hosts served, deduplicated; TLS for those on HTTPS listeners */
	for (size_t k = 0; k < nserved; k++) {
		const char *h = served[k].host ? served[k].host : "";
		int dup = 0;
		for (size_t j = 0; j < nhosts; j++)
			dup |= strcmp(hosts[j], h) == 0;
		if (!dup && nhosts < sizeof hosts / sizeof hosts[0])
			hosts[nhosts++] = h;
		const struct gw_listener *L = served[k].L;
		if (L->secret && h[0]) {
			struct tls_entry *x = tw_k8s_ing_vec_push(&t->tls);
			if (x == NULL)
				return TW_ENOMEM;
			*x = (struct tls_entry){h, L->secret, L->tls_ing, g->rank, 0};
		}
	}
	/* entries: hosts x rules x matches */
	size_t order = 0;
	for (size_t ri = 0; ri < nrules; ri++) {
		const json_t *r = json_array_get(rules, ri);
		const json_t *ms = json_object_get(r, "matches");
		size_t nm = json_array_size(ms);
		if (nm > MAX_GW_MATCHES)
			nm = MAX_GW_MATCHES;
		rs[ri].tmpl.status = rs[ri].status;
		for (size_t mi = 0; mi < (nm ? nm : 1); mi++) {
			const json_t *mt = nm ? json_array_get(ms, mi) : NULL; /* no matches: PathPrefix / */
			struct gw_match *gm = NULL;
			const char *path = NULL, *mkey = NULL;
			enum tw_match pm = TW_MATCH_PREFIX;
			char why[300];
			/* precedence among equals: older route, then rule and match order */
			uint64_t ord = ((uint64_t)g->rank << 24) | ((uint64_t)ri << 12) | mi;
			rc = one_match(t, mt, &rs[ri], ord, &gm, &path, &pm, &mkey, why, sizeof why);
			if (rc == TW_ENOMEM)
				return rc;
			if (rc < 0) {
				tw_k8s_ing_note(t, g, "rules[%zu].matches[%zu]: %s (ignored)", ri, mi, why);
				continue;
			}
			for (size_t hi = 0; hi < nhosts; hi++)
				if ((rc = add_gw_entry(t, gi, hosts[hi], path, pm, gm, mkey, order++)) < 0)
					return rc;
		}
	}
	return 0;
}

/* ---- build: a winning entry's route -------------------------------------------- */

int tw_k8s_gw_route(struct tr *t, const struct entry *e, struct tw_conf_route *r, size_t *be)
{
	struct tw_arena *a = &t->cfg->arena;
	const struct gw_match *gm = e->gw;
	const struct gw_rule *rule = gm->rule;
	struct tw_route_ext *x = tw_arena_alloc(a, sizeof *x);
	if (x == NULL)
		return TW_ENOMEM;
	*x = gm->tmpl;
	r->ext = x;
	*be = SIZE_MAX;
	if (x->status || x->redirect) {
		r->handler = TW_HANDLER_EXT;
		return 0;
	}
	/* backends with weight > 0; an invalid reference keeps its share as 500s */
	size_t n = 0;
	unsigned total = 0;
	for (size_t i = 0; i < rule->nrefs; i++)
		if (rule->refs[i].weight > 0) {
			n++;
			total += rule->refs[i].weight;
		}
	struct tw_wbackend *wb = tw_arena_alloc(a, (n ? n : 1) * sizeof *wb);
	if (wb == NULL)
		return TW_ENOMEM;
	size_t k = 0, valid = 0;
	struct ing *h = &t->ings[t->gw->helper];
	for (size_t i = 0; i < rule->nrefs; i++) {
		const struct gw_ref *ref = &rule->refs[i];
		if (ref->weight == 0)
			continue;
		wb[k].weight = ref->weight;
		wb[k].backend = SIZE_MAX;
		wb[k].backend_name = NULL;
		if (ref->be != NULL) {
			h->ns = ref->ns;
			h->ann.be.set = rule->response_ms != 0;
			h->ann.be.response_ms = rule->response_ms ? rule->response_ms : 60000;
			size_t bi;
			int rc = tw_k8s_ing_backend(t, t->gw->helper, ref->be, &bi);
			if (rc < 0)
				return rc;
			wb[k].backend = bi;
			if (*be == SIZE_MAX)
				*be = bi;
			valid++;
		}
		k++;
	}
	r->handler = TW_HANDLER_PROXY;
	if (*be == SIZE_MAX) { /* cannot happen: status 500 was set */
		r->handler = TW_HANDLER_EXT;
		x->status = 500;
		return 0;
	}
	if (n == 1 && valid == 1)
		return 0; /* one backend: the plain path */
	/* smooth weighted round robin over weights scaled to <= WSEQ_MAX */
	unsigned w[MAX_GW_REFS];
	unsigned sum = 0;
	for (size_t i = 0; i < n; i++) {
		uint64_t s = total > WSEQ_MAX ? (uint64_t)wb[i].weight * WSEQ_MAX / total : wb[i].weight;
		w[i] = s ? (unsigned)s : 1;
		sum += w[i];
	}
	uint32_t *seq = tw_arena_alloc(a, sum * sizeof *seq);
	uint64_t *ctr = tw_arena_alloc(a, 64); /* a cache line of its own */
	if (seq == NULL || ctr == NULL)
		return TW_ENOMEM;
	*ctr = 0;
	long cur[MAX_GW_REFS] = {0};
	for (unsigned step = 0; step < sum; step++) {
		size_t best = 0;
		for (size_t i = 0; i < n; i++) {
			cur[i] += w[i];
			if (cur[i] > cur[best])
				best = i;
		}
		cur[best] -= sum;
		seq[step] = (uint32_t)best;
	}
	x->wb = wb;
	x->nwb = n;
	x->wseq = seq;
	x->nwseq = sum;
	x->wctr = ctr;
	for (size_t i = 0; i < n; i++) {
		struct tw_wbackend **pp = tw_k8s_ing_vec_push(&t->gw->remap);
		if (pp == NULL)
			return TW_ENOMEM;
		*pp = &wb[i];
	}
	return 0;
}

/* ---- after build: weighted backends' indexes and the statuses ------------------ */

int tw_k8s_gw_finish(struct tr *t, const size_t *pos, const struct tw_conf_backend *bes)
{
	struct gw_state *s = t->gw;
	if (s == NULL)
		return 0;
	struct tw_wbackend **rm = s->remap.p;
	for (size_t i = 0; i < s->remap.n; i++)
		if (rm[i]->backend != SIZE_MAX) {
			rm[i]->backend = pos[rm[i]->backend];
			rm[i]->backend_name = bes[rm[i]->backend].name;
		}
	/* Gateways */
	for (size_t i = 0; i < s->ngw; i++) {
		const struct gw_gateway *gw = &s->gws[i];
		json_int_t gen = generation(gw->o->obj);
		json_t *ls = json_array();
		if (ls == NULL)
			return TW_ENOMEM;
		size_t nvalid = 0;
		for (size_t k = 0; k < gw->nl; k++) {
			const struct gw_listener *L = &gw->ls[k];
			int ok = listener_serves(L) && !gw->rejected;
			nvalid += ok;
			json_t *kinds = !L->no_kinds ? json_pack("[{s:s, s:s}]", "group", GW_API, "kind", "HTTPRoute") : json_array();
			json_t *le = json_pack("{s:s, s:o, s:i, s:[o, o, o, o]}", "name", L->name, "supportedKinds", kinds,
					       "attachedRoutes", (int)L->attached, "conditions",
					       cond("Accepted", L->acc_ok, L->acc_reason, L->acc_ok ? "accepted" : L->acc_msg, gen),
					       cond("ResolvedRefs", L->ref_ok, L->ref_reason, L->ref_ok ? "resolved" : L->ref_msg, gen),
					       cond("Programmed", ok, ok ? "Programmed" : "Invalid", ok ? "programmed" : "not served", gen),
					       L->conflicted ? cond("Conflicted", 1, "HostnameConflict", L->acc_msg, gen)
							     : cond("Conflicted", 0, "NoConflicts", "", gen));
			if (le == NULL || json_array_append_new(ls, le) < 0) {
				json_decref(ls);
				return TW_ENOMEM;
			}
		}
		int acc = !gw->rejected && (gw->nl == 0 || nvalid > 0);
		const char *areason = gw->rejected ? gw->rejected : nvalid == gw->nl ? "Accepted" : "ListenersNotValid";
		/* status.addresses: the leader adds them (publish_address, publish_service) */
		json_t *st = json_pack("{s:s, s:s, s:s, s:{s:[o, o], s:o}}", "kind", "gateways", "ns", gw->o->ns, "name",
				       gw->o->name, "status", "conditions",
				       cond("Accepted", acc, areason,
					    acc ? "accepted" : gw->rejected ? gw->rej_msg : "no valid listener", gen),
				       cond("Programmed", nvalid > 0, nvalid > 0 ? "Programmed" : "Invalid",
					    nvalid > 0 ? "programmed" : "no valid listener", gen),
				       "listeners", ls);
		if (st == NULL || json_array_append_new(s->status, st) < 0)
			return TW_ENOMEM;
	}
	/* HTTPRoutes */
	for (size_t i = 0; i < s->nroutes; i++) {
		const struct ing *g = &t->ings[s->route0 + i];
		json_t *parents = s->route_parents[i];
		if (parents == NULL)
			continue;
		s->route_parents[i] = NULL;
		json_t *st = json_pack("{s:s, s:s, s:s, s:{s:o}}", "kind", "httproutes", "ns", g->ns, "name", g->name,
				       "status", "parents", parents);
		if (st == NULL || json_array_append_new(s->status, st) < 0)
			return TW_ENOMEM;
	}
	t->rep->gw_status = s->status;
	s->status = NULL;
	return 0;
}

void tw_k8s_gw_free(struct tr *t)
{
	struct gw_state *s = t->gw;
	if (s == NULL)
		return;
	for (size_t i = 0; i < s->ngw; i++)
		free(s->gws[i].ls);
	free(s->gws);
	for (size_t i = 0; s->route_parents && i < s->nroutes; i++)
		json_decref(s->route_parents[i]);
	free(s->route_parents);
	free(s->remap.p);
	json_decref(s->status);
	json_decref(s->owned);
	free(s);
	t->gw = NULL;
}
