/* ingress.c — networking.k8s.io/v1 Ingress objects -> sites, routes and
 * backends of one config generation (see ingress.h and docs/kubernetes.md,
 * "Ingress semantics").
 *
 * One pass, no I/O but the name resolution of ExternalName Services (off by
 * default), O(n log n) in the number of objects:
 *   1. select the Ingresses of our class (namespaces filter, ingressClassName,
 *      legacy annotation, default class), parse their tapwork.dev/
 *      annotations, fall back to last_good for the invalid ones;
 *   2. collect (host, path, type) entries and TLS hosts, sort them, and let
 *      the oldest Ingress win every duplicate (creationTimestamp, then
 *      namespace/name): deterministic, never flapping;
 *   3. drop hosts the file config serves (the file wins), build one site per
 *      remaining host and one backend per (namespace, Service, port,
 *      settings) that a winning route uses, with the pod addresses of the
 *      Service's EndpointSlices (indexed once per call);
 *   4. append them to cfg (file sites and backends keep their indexes).
 * Temporary state lives in a scratch arena; what the generation keeps is
 * allocated in cfg->arena. Backends and endpoints are in ingress_backend.c,
 * TLS and Secrets in ingress_tls.c, the shared state in ingress_int.h. */
#include "k8s/ingress_int.h"

#include "conf/schema.h"
#include "tls/tls.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- class selection ----------------------------------------------------- */

static int in_namespaces(const struct tw_conf_k8s_ingress *opt, const char *ns)
{
	if (opt->nnamespaces == 0)
		return 1;
	for (size_t i = 0; i < opt->nnamespaces; i++)
		if (strcmp(opt->namespaces[i], ns) == 0)
			return 1;
	return 0;
}

static const char *opt_class(const struct tw_conf_k8s_ingress *o)
{
	return o->class_name ? o->class_name : "tapwork";
}

static const char *opt_controller(const struct tw_conf_k8s_ingress *o)
{
	return o->controller ? o->controller : "tapwork.dev/ingress-controller";
}

/* Is some IngressClass of our controller marked the cluster default? */
static int we_are_default(const struct tr *t)
{
	const struct tw_k8s_store *cs = t->v->ingress_classes;
	size_t n = cs ? tw_k8s_store_count(cs) : 0;
	for (size_t i = 0; i < n; i++) {
		const json_t *c = tw_k8s_store_at(cs, i)->obj;
		const char *ctl = tw_k8s_ing_jpath_str(c, "spec", "controller");
		const char *def = tw_k8s_ing_jstr(json_object_get(json_object_get(c, "metadata"), "annotations"), DEFAULT_CLASS_ANN);
		if (ctl && strcmp(ctl, opt_controller(t->opt)) == 0 && def && strcmp(def, "true") == 0)
			return 1;
	}
	return 0;
}

/* 1 when the Ingress is ours; why gets the reason when not. */
static int is_ours(const struct tr *t, const json_t *ing, int dflt, char *why, size_t wl)
{
	const char *cls = tw_k8s_ing_jpath_str(ing, "spec", "ingressClassName");
	if (cls != NULL) {
		const struct tw_k8s_obj *c = t->v->ingress_classes ? tw_k8s_store_get(t->v->ingress_classes, "", cls) : NULL;
		if (c == NULL) {
			snprintf(why, wl, "IngressClass \"%s\" does not exist", cls);
			return 0;
		}
		const char *ctl = tw_k8s_ing_jpath_str(c->obj, "spec", "controller");
		if (ctl == NULL || strcmp(ctl, opt_controller(t->opt)) != 0) {
			snprintf(why, wl, "IngressClass \"%s\" belongs to controller \"%s\"", cls, ctl ? ctl : "");
			return 0;
		}
		return 1;
	}
	const char *legacy = tw_k8s_ing_jstr(json_object_get(json_object_get(ing, "metadata"), "annotations"), LEGACY_CLASS);
	if (legacy != NULL) {
		if (strcmp(legacy, opt_class(t->opt)) == 0)
			return 1;
		snprintf(why, wl, "class annotation \"%s\" is not \"%s\"", legacy, opt_class(t->opt));
		return 0;
	}
	if (t->opt->watch_without_class || dflt)
		return 1;
	snprintf(why, wl, "no class, and ours is not the default IngressClass");
	return 0;
}

/* ---- annotations --------------------------------------------------------- */

static int token_ok(const char *s)
{
	if (*s == '\0' || strlen(s) > 64)
		return 0;
	for (; *s; s++)
		if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
		      strchr("!#$%&'*+-.^_`|~", *s) != NULL))
			return 0;
	return 1;
}

static int parse_bool(const char *s, int *out)
{
	if (strcmp(s, "true") == 0)
		*out = 1;
	else if (strcmp(s, "false") == 0)
		*out = 0;
	else
		return TW_EINVAL;
	return 0;
}

static void ann_defaults(struct ann *a)
{
	memset(a, 0, sizeof *a);
	a->ssl_redirect = -1;
	a->hsts = -1;
	a->be.balance = TW_BAL_ROUND_ROBIN;
	a->be.hash_src = TW_HASH_CLIENT_IP;
	a->be.retries = 2;
	a->be.connect_ms = 5000;
	a->be.response_ms = 60000;
}

/* One tapwork.dev/ key. 0, or TW_EINVAL with why set. */
static int parse_one(struct tr *t, struct ing *g, const char *key, const char *val, char *why, size_t wl)
{
	struct ann *a = &g->ann;
	struct tw_err e = {0};
	uint64_t v;
	if (strcmp(key, "ssl-redirect") == 0 || strcmp(key, "hsts") == 0) {
		int b;
		if (parse_bool(val, &b) < 0) {
			snprintf(why, wl, "expected \"true\" or \"false\"");
			return TW_EINVAL;
		}
		if (key[0] == 's')
			a->ssl_redirect = b;
		else
			a->hsts = b;
		return 0;
	}
	if (strcmp(key, "proxy-body-size") == 0) {
		if (tw_size_parse(val, &v, &e) < 0) {
			snprintf(why, wl, "%s", e.msg);
			return TW_EINVAL;
		}
		if (v == 0) {
			snprintf(why, wl, "must be above 0 (leave it out for no limit of its own)");
			return TW_EINVAL;
		}
		a->max_body = v;
		return 0;
	}
	if (strcmp(key, "proxy-connect-timeout") == 0 || strcmp(key, "proxy-read-timeout") == 0) {
		int connect = key[6] == 'c';
		uint64_t max = connect ? 3600000 : 86400000;
		if (tw_duration_parse(val, &v, &e) < 0) {
			snprintf(why, wl, "%s", e.msg);
			return TW_EINVAL;
		}
		if (v < 1 || v > max) {
			snprintf(why, wl, "out of range (1ms..%s)", connect ? "1h" : "24h");
			return TW_EINVAL;
		}
		if (connect)
			a->be.connect_ms = v;
		else
			a->be.response_ms = v;
		a->be.set = 1;
		return 0;
	}
	if (strcmp(key, "load-balance") == 0) {
		static const char *const names[] = {"round_robin", "least_conn", "random_two", "hash"};
		for (int i = 0; i < 4; i++)
			if (strcmp(val, names[i]) == 0) {
				a->be.balance = (enum tw_balance)i;
				a->be.set = 1;
				return 0;
			}
		snprintf(why, wl, "one of round_robin, least_conn, random_two, hash");
		return TW_EINVAL;
	}
	if (strcmp(key, "hash-key") == 0) {
		const char *name = NULL;
		a->be.hash_name = NULL;
		if (strcmp(val, "client_ip") == 0) {
			a->be.hash_src = TW_HASH_CLIENT_IP;
		} else if (strcmp(val, "uri") == 0) {
			a->be.hash_src = TW_HASH_URI;
		} else if (strncmp(val, "header:", 7) == 0 || strncmp(val, "cookie:", 7) == 0) {
			a->be.hash_src = val[0] == 'h' ? TW_HASH_HEADER : TW_HASH_COOKIE;
			name = val + 7;
			if (!token_ok(name)) {
				snprintf(why, wl, "bad header or cookie name");
				return TW_EINVAL;
			}
			if ((a->be.hash_name = tw_arena_strdup(&t->cfg->arena, name)) == NULL)
				return TW_ENOMEM;
		} else {
			snprintf(why, wl, "one of client_ip, uri, header:NAME, cookie:NAME");
			return TW_EINVAL;
		}
		a->be.set = 1;
		return 0;
	}
	if (strcmp(key, "retries") == 0) {
		if (tw_conf_parse_u64(val, &v) < 0 || v > 10) {
			snprintf(why, wl, "expected an integer 0..10");
			return TW_EINVAL;
		}
		a->be.retries = (unsigned)v;
		a->be.set = 1;
		return 0;
	}
	snprintf(why, wl, "unknown annotation (known: ssl-redirect, hsts, proxy-body-size, "
	                  "proxy-connect-timeout, proxy-read-timeout, load-balance, hash-key, retries)");
	return TW_EINVAL;
}

/* All tapwork.dev/ annotations of obj into g->ann, in key order (so the
 * reason names the same key every time). 0, TW_EINVAL (reason set), TW_ENOMEM. */
static int parse_annotations(struct tr *t, struct ing *g, const json_t *obj, char *reason, size_t rl)
{
	ann_defaults(&g->ann);
	const json_t *anns = json_object_get(json_object_get(obj, "metadata"), "annotations");
	const char *keys[64];
	size_t nk = 0;
	const char *k;
	json_t *val;
	json_object_foreach((json_t *)anns, k, val)
	{
		if (strncmp(k, ANN_PREFIX, strlen(ANN_PREFIX)) != 0)
			continue;
		if (nk == 64) {
			snprintf(reason, rl, "more than 64 %s annotations", ANN_PREFIX);
			return TW_EINVAL;
		}
		keys[nk++] = k;
	}
	for (size_t i = 1; i < nk; i++) /* insertion sort: a handful of keys */
		for (size_t j = i; j > 0 && strcmp(keys[j - 1], keys[j]) > 0; j--) {
			const char *x = keys[j];
			keys[j] = keys[j - 1];
			keys[j - 1] = x;
		}
	for (size_t i = 0; i < nk; i++) {
		const char *s = json_string_value(json_object_get(anns, keys[i]));
		char why[256];
		int rc;
		if (s == NULL) {
			snprintf(why, sizeof why, "expected a string");
			rc = TW_EINVAL;
		} else {
			rc = parse_one(t, g, keys[i] + strlen(ANN_PREFIX), s, why, sizeof why);
		}
		if (rc == TW_ENOMEM)
			return rc;
		if (rc < 0) {
			snprintf(reason, rl, "annotation %s: \"%.100s\": %s", keys[i], s ? s : "", why);
			return rc;
		}
	}
	return 0;
}

/* ---- collecting entries -------------------------------------------------- */

/* Lower-cased, validated host into the cfg arena; "" for none. NULL + why. */
static const char *norm_host(struct tr *t, const char *h, const char **why)
{
	if (h == NULL || h[0] == '\0')
		return "";
	char *c = tw_arena_strdup(&t->cfg->arena, h);
	if (c == NULL) {
		*why = "out of memory";
		return NULL;
	}
	if (strcmp(c, "*") == 0) {
		*why = "\"*\" alone is not a host (leave the host out)";
		return NULL;
	}
	return tw_conf_host_check(c, why) < 0 ? NULL : c;
}

static int add_entry(struct tr *t, const char *host, const char *path, enum tw_match m, enum entry_kind kind,
                     size_t ing, size_t order, const json_t *backend)
{
	struct entry *e = tw_k8s_ing_vec_push(&t->entries);
	if (e == NULL)
		return TW_ENOMEM;
	e->host = host;
	e->path = path;
	e->klen = strlen(path);
	if (m == TW_MATCH_PREFIX)
		while (e->klen > 0 && path[e->klen - 1] == '/')
			e->klen--;
	e->match = m;
	e->kind = kind;
	e->ing = ing;
	e->rank = ing == SIZE_MAX ? SIZE_MAX : t->ings[ing].rank;
	e->order = order;
	e->backend = backend;
	return 0;
}

/* The size caps of one Ingress: 0, or TW_ELIMIT with reason. */
static int check_caps(const json_t *spec, char *reason, size_t rl)
{
	const json_t *rules = json_object_get(spec, "rules"), *tls = json_object_get(spec, "tls");
	size_t npaths = 0, ntls_hosts = 0;
	if (json_array_size(rules) > MAX_RULES) {
		snprintf(reason, rl, "more than %d rules", MAX_RULES);
		return TW_ELIMIT;
	}
	for (size_t i = 0; i < json_array_size(rules); i++)
		npaths += json_array_size(json_object_get(json_object_get(json_array_get(rules, i), "http"), "paths"));
	if (npaths > MAX_PATHS) {
		snprintf(reason, rl, "more than %d paths", MAX_PATHS);
		return TW_ELIMIT;
	}
	if (json_array_size(tls) > MAX_TLS) {
		snprintf(reason, rl, "more than %d tls entries", MAX_TLS);
		return TW_ELIMIT;
	}
	for (size_t i = 0; i < json_array_size(tls); i++)
		ntls_hosts += json_array_size(json_object_get(json_array_get(tls, i), "hosts"));
	if (ntls_hosts > MAX_TLS_HOSTS) {
		snprintf(reason, rl, "more than %d tls hosts", MAX_TLS_HOSTS);
		return TW_ELIMIT;
	}
	return 0;
}

static int collect(struct tr *t, size_t gi)
{
	struct ing *g = &t->ings[gi];
	const json_t *spec = json_object_get(g->eff, "spec");
	const json_t *rules = json_object_get(spec, "rules");
	const json_t *dflt = json_object_get(spec, "defaultBackend");
	size_t order = 0;
	int rc;
	if (json_is_object(dflt) && (rc = add_entry(t, "", "/", TW_MATCH_PREFIX, E_DEFAULT, gi, order++, dflt)) < 0)
		return rc;
	for (size_t i = 0; i < json_array_size(rules); i++) {
		const json_t *rule = json_array_get(rules, i);
		const char *why = NULL;
		const char *host = norm_host(t, tw_k8s_ing_jstr(rule, "host"), &why);
		if (host == NULL) {
			tw_k8s_ing_note(t, g, "rules[%zu]: bad host \"%.100s\": %s (rule ignored)", i, tw_k8s_ing_jstr(rule, "host"), why);
			continue;
		}
		if (host[0] && json_is_object(dflt) &&
		    (rc = add_entry(t, host, "/", TW_MATCH_PREFIX, E_DEFAULT, gi, order++, dflt)) < 0)
			return rc;
		const json_t *paths = json_object_get(json_object_get(rule, "http"), "paths");
		for (size_t j = 0; j < json_array_size(paths); j++) {
			const json_t *p = json_array_get(paths, j);
			const char *type = tw_k8s_ing_jstr(p, "pathType");
			const char *path = tw_k8s_ing_jstr(p, "path");
			const json_t *be = json_object_get(p, "backend");
			enum tw_match m = TW_MATCH_PREFIX;
			if (type != NULL && strcmp(type, "Exact") == 0)
				m = TW_MATCH_EXACT;
			else if (type != NULL && strcmp(type, "Prefix") != 0 && strcmp(type, "ImplementationSpecific") != 0) {
				tw_k8s_ing_note(t, g, "rules[%zu].paths[%zu]: unknown pathType \"%.40s\" (path ignored)", i, j, type);
				continue;
			}
			if (path == NULL || path[0] == '\0') {
				if (m == TW_MATCH_EXACT || (type && strcmp(type, "Prefix") == 0)) {
					tw_k8s_ing_note(t, g, "rules[%zu].paths[%zu]: no path (ignored)", i, j);
					continue;
				}
				path = "/";
			}
			if (!tw_k8s_ing_path_ok(path)) {
				tw_k8s_ing_note(t, g, "rules[%zu].paths[%zu]: bad path \"%.100s\" (ignored)", i, j, path);
				continue;
			}
			if (!json_is_object(be)) {
				tw_k8s_ing_note(t, g, "rules[%zu].paths[%zu]: no backend (ignored)", i, j);
				continue;
			}
			char *cp = tw_arena_strdup(&t->cfg->arena, path);
			if (cp == NULL || (rc = add_entry(t, host, cp, m, E_RULE, gi, order++, be)) < 0)
				return TW_ENOMEM;
		}
	}
	const json_t *tls = json_object_get(spec, "tls");
	for (size_t i = 0; i < json_array_size(tls); i++) {
		const json_t *te = json_array_get(tls, i);
		const json_t *hosts = json_object_get(te, "hosts");
		const char *secret = tw_k8s_ing_jstr(te, "secretName");
		if (json_array_size(hosts) == 0) {
			tw_k8s_ing_note(t, g, "tls[%zu]: no hosts (ignored)", i);
			continue;
		}
		for (size_t j = 0; j < json_array_size(hosts); j++) {
			const char *why = NULL;
			const char *h = norm_host(t, json_string_value(json_array_get(hosts, j)), &why);
			if (h == NULL || h[0] == '\0') {
				tw_k8s_ing_note(t, g, "tls[%zu].hosts[%zu]: bad host: %s (ignored)", i, j, why ? why : "empty");
				continue;
			}
			struct tls_entry *x = tw_k8s_ing_vec_push(&t->tls);
			if (x == NULL)
				return TW_ENOMEM;
			*x = (struct tls_entry){h, secret && secret[0] ? secret : NULL, gi, g->rank, order++};
		}
	}
	return 0;
}

/* ---- precedence ---------------------------------------------------------- */

static int cmp_size(size_t a, size_t b)
{
	return a < b ? -1 : a > b;
}

static const char *mkey(const struct entry *e)
{
	return e->mkey ? e->mkey : "";
}

static int same_key(const struct entry *a, const struct entry *b)
{
	return strcmp(a->host, b->host) == 0 && a->klen == b->klen && a->match == b->match &&
	       memcmp(a->path, b->path, a->klen) == 0 && strcmp(mkey(a), mkey(b)) == 0;
}

static int cmp_entry(const void *pa, const void *pb)
{
	const struct entry *a = pa, *b = pb;
	int r = strcmp(a->host, b->host);
	if (r)
		return r;
	size_t n = a->klen < b->klen ? a->klen : b->klen;
	if ((r = memcmp(a->path, b->path, n)) != 0)
		return r;
	if (a->klen != b->klen)
		return a->klen < b->klen ? -1 : 1;
	if (a->match != b->match)
		return a->match == TW_MATCH_EXACT ? -1 : 1;
	if ((r = strcmp(mkey(a), mkey(b))) != 0)
		return r;
	if (a->kind != b->kind)
		return a->kind < b->kind ? -1 : 1;
	if ((r = cmp_size(a->rank, b->rank)) != 0)
		return r;
	return cmp_size(a->order, b->order);
}

static int cmp_tls(const void *pa, const void *pb)
{
	const struct tls_entry *a = pa, *b = pb;
	int r = strcmp(a->host, b->host);
	if (r)
		return r;
	if ((r = cmp_size(a->rank, b->rank)) != 0)
		return r;
	return cmp_size(a->order, b->order);
}

static int cmp_age(const void *pa, const void *pb)
{
	const struct ing *a = *(const struct ing *const *)pa, *b = *(const struct ing *const *)pb;
	/* RFC 3339 in UTC ("2024-05-01T10:00:00Z") sorts as text; absent sorts last. */
	int r = strcmp(a->created[0] ? a->created : "~", b->created[0] ? b->created : "~");
	if (r)
		return r;
	if ((r = strcmp(a->ns, b->ns)) != 0)
		return r;
	return strcmp(a->name, b->name);
}

static const char *ing_label(const struct tr *t, size_t i, char *buf, size_t n)
{
	snprintf(buf, n, "%s/%s", t->ings[i].ns, t->ings[i].name);
	return buf;
}

/* Mark the losers of every duplicate key (the first of each run of equal
 * keys wins: sorted oldest first); report conflicts between Ingresses. */
static void resolve_conflicts(struct tr *t)
{
	struct entry *e = t->entries.p;
	char lab[300];
	for (size_t i = 1, w = 0; i < t->entries.n; i++) {
		if (!same_key(&e[w], &e[i])) {
			w = i;
			continue;
		}
		e[i].lost = 1;
		if (e[i].kind == E_OPTION || e[i].kind != e[w].kind || e[i].ing == e[w].ing)
			continue; /* a rule beats a defaultBackend by design; same Ingress: first wins */
		t->rep->conflicts++;
		tw_k8s_ing_note(t, &t->ings[e[i].ing], "%s%s %s (%s) is served by the older Ingress %s",
		     e[i].host[0] ? e[i].host : "*", e[i].path, e[i].match == TW_MATCH_EXACT ? "Exact" : "Prefix",
		     e[i].kind == E_DEFAULT ? "defaultBackend conflict" : "conflict",
		     ing_label(t, e[w].ing, lab, sizeof lab));
	}
	struct tls_entry *x = t->tls.p;
	for (size_t i = 1, w = 0; i < t->tls.n; i++) {
		if (strcmp(x[w].host, x[i].host) != 0) {
			w = i;
			continue;
		}
		const struct ing *gw = &t->ings[x[w].ing], *gi = &t->ings[x[i].ing];
		if (x[w].ing == x[i].ing ||
		    (strcmp(gw->ns, gi->ns) == 0 && ((x[w].secret == NULL && x[i].secret == NULL) ||
		                                     (x[w].secret && x[i].secret && strcmp(x[w].secret, x[i].secret) == 0))))
			continue; /* the same certificate either way */
		t->rep->conflicts++;
		tw_k8s_ing_note(t, &t->ings[x[i].ing], "TLS for %s (conflict) comes from the older Ingress %s", x[i].host,
		     ing_label(t, x[w].ing, lab, sizeof lab));
	}
}

/* ---- assembly ------------------------------------------------------------ */

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static int file_has_host(const char **sorted, size_t n, const char *host)
{
	const char *h = host[0] ? host : "*";
	return bsearch(&h, sorted, n, sizeof *sorted, cmp_str) != NULL;
}

struct bsort {
	const char *name;
	size_t idx;
};

static int cmp_bsort(const void *a, const void *b)
{
	return strcmp(((const struct bsort *)a)->name, ((const struct bsort *)b)->name);
}

static int build(struct tr *t)
{
	struct tw_config *cfg = t->cfg;
	struct tw_arena *a = &cfg->arena;
	struct entry *e = t->entries.p;
	size_t n = t->entries.n;
	int rc;

	/* The file's hosts, sorted, for "the file wins". */
	size_t nfh = 0;
	for (size_t i = 0; i < cfg->nsites; i++)
		nfh += cfg->sites[i].nhosts;
	const char **fh = tw_arena_alloc(&t->scratch, (nfh ? nfh : 1) * sizeof *fh);
	if (fh == NULL)
		return TW_ENOMEM;
	nfh = 0;
	for (size_t i = 0; i < cfg->nsites; i++)
		for (size_t j = 0; j < cfg->sites[i].nhosts; j++)
			fh[nfh++] = cfg->sites[i].hosts[j];
	qsort(fh, nfh, sizeof *fh, cmp_str);

	/* Sites: one per run of equal hosts among the winners. */
	size_t nsites_k = 0, nroutes = 0;
	for (size_t i = 0; i < n; i++) {
		if (e[i].lost)
			continue;
		if (file_has_host(fh, nfh, e[i].host)) {
			e[i].lost = 2;
			if (e[i].kind == E_OPTION)
				continue;
			/* Once per Ingress and host: equal hosts are adjacent. */
			struct ing *g = &t->ings[e[i].ing];
			if (g->warned_host == NULL || strcmp(g->warned_host, e[i].host) != 0)
				tw_k8s_ing_note(t, g, "host %s is served by the config file (Ingress rules for it ignored)",
				     e[i].host[0] ? e[i].host : "*");
			g->warned_host = e[i].host;
			continue;
		}
		nroutes++;
	}
	const char *prev = NULL;
	for (size_t i = 0; i < n; i++)
		if (!e[i].lost && (prev == NULL || strcmp(prev, e[i].host) != 0)) {
			nsites_k++;
			prev = e[i].host;
		}
	struct tw_conf_site *sites = tw_arena_alloc(a, (cfg->nsites + nsites_k + 1) * sizeof *sites);
	if (sites == NULL)
		return TW_ENOMEM;
	if (cfg->nsites)
		memcpy(sites, cfg->sites, cfg->nsites * sizeof *sites);
	size_t ns = cfg->nsites;
	size_t *route_be = calloc(nroutes ? nroutes : 1, sizeof *route_be); /* k8s backend index, or file index | FILE_BIT */
	if (route_be == NULL)
		return TW_ENOMEM;
	const size_t FILE_BIT = (size_t)1 << (sizeof(size_t) * 8 - 1);
	struct tw_conf_route **route_ptr = calloc(nroutes ? nroutes : 1, sizeof *route_ptr);
	if (route_ptr == NULL) {
		free(route_be);
		return TW_ENOMEM;
	}
	size_t nr = 0;
	rc = 0;
	for (size_t i = 0; i < n && rc == 0;) {
		if (e[i].lost) {
			i++;
			continue;
		}
		size_t j = i, cnt = 0, owner = SIZE_MAX;
		while (j < n && strcmp(e[j].host, e[i].host) == 0) {
			if (!e[j].lost) {
				cnt++;
				if (e[j].ing != SIZE_MAX && (owner == SIZE_MAX || t->ings[e[j].ing].rank < t->ings[owner].rank))
					owner = e[j].ing;
			}
			j++;
		}
		struct tw_conf_site *s = &sites[ns];
		memset(s, 0, sizeof *s);
		s->hosts = tw_arena_alloc(a, sizeof *s->hosts);
		s->routes = tw_arena_alloc(a, cnt * sizeof *s->routes);
		if (s->hosts == NULL || s->routes == NULL) {
			rc = TW_ENOMEM;
			break;
		}
		s->hosts[0] = e[i].host[0] ? (char *)e[i].host : tw_arena_strdup(a, "*");
		if (s->hosts[0] == NULL) {
			rc = TW_ENOMEM;
			break;
		}
		s->nhosts = 1;
		if (e[i].host[0] == '\0')
			cfg->default_site = ns;
		for (size_t k = i; k < j; k++) {
			if (e[k].lost)
				continue;
			struct tw_conf_route *r = &s->routes[s->nroutes++];
			r->path = (char *)e[k].path;
			r->path_len = strlen(e[k].path);
			r->match = e[k].match;
			r->handler = TW_HANDLER_PROXY;
			r->max_body = e[k].kind == E_OPTION ? 0 : t->ings[e[k].ing].ann.max_body;
			size_t bi = 0;
			if (e[k].gw != NULL) {
				if ((rc = tw_k8s_gw_route(t, &e[k], r, &bi)) < 0)
					break;
				route_be[nr] = bi;
				if (e[k].host[0] == '*')
					s->wild_any_depth = 1; /* a Gateway API wildcard: any depth */
			} else if (e[k].kind == E_OPTION) {
				route_be[nr] = e[k].file_be | FILE_BIT;
			} else {
				if ((rc = tw_k8s_ing_backend(t, e[k].ing, e[k].backend, &bi)) < 0)
					break;
				route_be[nr] = bi;
			}
			route_ptr[nr++] = r;
		}
		if (rc == 0 && owner != SIZE_MAX)
			rc = tw_k8s_ing_site_tls(t, s, e[i].host, owner, e + i, j - i);
		else if (rc == 0)
			s->tls_mode = s->tls_effective = TW_TLS_OFF;
		ns++;
		i = j;
	}
	/* TLS hosts without a site of their own. */
	for (size_t i = 0; rc == 0 && i < t->tls.n; i++) {
		const struct tls_entry *x = &((const struct tls_entry *)t->tls.p)[i];
		if (i > 0 && strcmp(x[-1].host, x->host) == 0)
			continue;
		/* Our sites are in host order ("" became "*", which sorts first as well). */
		size_t lo = cfg->nsites, hi = ns;
		while (lo < hi) {
			size_t mid = lo + (hi - lo) / 2;
			if (strcmp(sites[mid].hosts[0], x->host) < 0)
				lo = mid + 1;
			else
				hi = mid;
		}
		int found = lo < ns && strcmp(sites[lo].hosts[0], x->host) == 0;
		if (!found && x->host[0] != '*' && !file_has_host(fh, nfh, x->host))
			tw_k8s_ing_note(t, &t->ings[x->ing], "TLS host %s has no rule (ignored)", x->host);
	}
	if (rc < 0)
		goto out;

	/* Backends: the file's, then ours sorted by name (stable indexes). */
	size_t nk = t->backends.n;
	struct tw_conf_backend *bes = tw_arena_alloc(a, (cfg->nbackends + nk + 1) * sizeof *bes);
	struct bsort *order = calloc(nk ? nk : 1, sizeof *order);
	size_t *pos = calloc(nk ? nk : 1, sizeof *pos);
	if (bes == NULL || order == NULL || pos == NULL) {
		free(order);
		free(pos);
		rc = TW_ENOMEM;
		goto out;
	}
	if (cfg->nbackends)
		memcpy(bes, cfg->backends, cfg->nbackends * sizeof *bes);
	struct tw_conf_backend *kb = t->backends.p;
	for (size_t i = 0; i < nk; i++)
		order[i] = (struct bsort){kb[i].name, i};
	qsort(order, nk, sizeof *order, cmp_bsort);
	for (size_t i = 0; i < nk; i++) {
		bes[cfg->nbackends + i] = kb[order[i].idx];
		pos[order[i].idx] = cfg->nbackends + i;
	}
	for (size_t i = 0; i < nr; i++) {
		struct tw_conf_route *r = route_ptr[i];
		if (route_be[i] == SIZE_MAX) { /* a Gateway API rule answered without upstream */
			r->backend = SIZE_MAX;
			r->backend_name = NULL;
			continue;
		}
		r->backend = (route_be[i] & FILE_BIT) ? (route_be[i] & ~FILE_BIT) : pos[route_be[i]];
		r->backend_name = bes[r->backend].name;
	}
	if ((rc = tw_k8s_gw_finish(t, pos, bes)) < 0) {
		free(order);
		free(pos);
		goto out;
	}
	free(order);
	free(pos);
	cfg->sites = sites;
	cfg->nsites = ns;
	cfg->backends = bes;
	cfg->nbackends += nk;
out:
	free(route_be);
	free(route_ptr);
	return rc;
}

/* ---- report and last_good ------------------------------------------------ */

void tw_k8s_report_clear(struct tw_k8s_report *r)
{
	if (r == NULL)
		return;
	for (size_t i = 0; i < r->nitems; i++) {
		free(r->items[i].ns);
		free(r->items[i].name);
		free(r->items[i].reason);
		free(r->items[i].message);
	}
	free(r->items);
	json_decref(r->gw_status);
	memset(r, 0, sizeof *r);
}

static int set_item(struct tw_k8s_ingress_report *it, const char *ns, const char *name, enum tw_k8s_verdict v,
                    const char *reason, const char *message)
{
	it->ns = strdup(ns);
	it->name = strdup(name);
	it->verdict = v;
	it->reason = reason && reason[0] ? strdup(reason) : NULL;
	it->message = message ? strdup(message) : NULL;
	if (it->ns == NULL || it->name == NULL || (reason && reason[0] && it->reason == NULL) ||
	    (message && it->message == NULL))
		return TW_ENOMEM;
	return 0;
}

/* Entries of last_good whose Ingress is gone or not ours any more. */
static int prune_last_good(struct tr *t, struct tw_k8s_store *lg)
{
	struct smap keep = {0};
	struct vec gone = {.width = 2 * sizeof(char *)};
	int rc = TW_ENOMEM;
	for (size_t i = 0; i < t->nings; i++) {
		char *k = tw_k8s_ing_sfmt(&t->scratch, "%s/%s", t->ings[i].ns, t->ings[i].name);
		if (k == NULL || tw_k8s_ing_smap_put(&keep, k, i) < 0)
			goto out;
	}
	size_t n = tw_k8s_store_count(lg), dummy;
	for (size_t i = 0; i < n; i++) {
		const struct tw_k8s_obj *o = tw_k8s_store_at(lg, i);
		char key[300];
		snprintf(key, sizeof key, "%s/%s", o->ns, o->name);
		if (tw_k8s_ing_smap_get(&keep, key, &dummy) == 0)
			continue;
		char **pair = tw_k8s_ing_vec_push(&gone);
		if (pair == NULL || (pair[0] = tw_arena_strdup(&t->scratch, o->ns)) == NULL ||
		    (pair[1] = tw_arena_strdup(&t->scratch, o->name)) == NULL)
			goto out;
	}
	for (size_t i = 0; i < gone.n; i++) {
		char **pair = (char **)gone.p + 2 * i;
		tw_k8s_store_del(lg, pair[0], pair[1]);
	}
	rc = 0;
out:
	free(keep.s);
	free(gone.p);
	return rc;
}

/* ---- the translator ------------------------------------------------------ */

int tw_k8s_ingress_apply(struct tw_config *cfg, const struct tw_k8s_view *v, struct tw_k8s_store *last_good,
                         struct tw_k8s_report *rep, struct tw_err *err)
{
	struct tr t = {.cfg = cfg, .v = v, .rep = rep, .err = err};
	static const struct tw_conf_k8s_ingress no_opts;
	t.opt = cfg->has_k8s && cfg->k8s.has_ingress ? &cfg->k8s.ingress : &no_opts;
	t.entries.width = sizeof(struct entry);
	t.tls.width = sizeof(struct tls_entry);
	t.backends.width = sizeof(struct tw_conf_backend);
	t.bstate.width = sizeof(struct backend_state);
	t.secrets.width = sizeof(struct secret_state);
	tw_arena_init(&t.scratch, 65536);
	tw_k8s_report_clear(rep);
	int rc = 0;
	unsigned char *ours = NULL;
	struct ing **by_age = NULL;
	size_t n = v->ingresses ? tw_k8s_store_count(v->ingresses) : 0;
	rep->items = calloc(n ? n : 1, sizeof *rep->items);
	t.ings = calloc(n ? n : 1, sizeof *t.ings);
	ours = calloc(n ? n : 1, 1);
	if (rep->items == NULL || t.ings == NULL || ours == NULL)
		goto nomem;
	rep->nitems = n;
	int dflt = we_are_default(&t);

	/* 1. selection, annotations, last good versions */
	for (size_t i = 0; i < n; i++) {
		const struct tw_k8s_obj *o = tw_k8s_store_at(v->ingresses, i);
		char why[600] = "";
		if (!in_namespaces(t.opt, o->ns)) {
			snprintf(why, sizeof why, "namespace %s is not watched", o->ns);
		} else if (is_ours(&t, o->obj, dflt, why, sizeof why)) {
			ours[i] = 1;
		}
		if (!ours[i]) {
			if (set_item(&rep->items[i], o->ns, o->name, TW_K8S_NOT_OURS, NULL, why) < 0)
				goto nomem;
			continue;
		}
		struct ing *g = &t.ings[t.nings];
		g->o = o;
		g->eff = o->obj;
		g->ns = o->ns;
		g->name = o->name;
		g->item = i;
		char reason[400] = "";
		rc = check_caps(json_object_get(o->obj, "spec"), reason, sizeof reason);
		if (rc == 0)
			rc = parse_annotations(&t, g, o->obj, reason, sizeof reason);
		if (rc == TW_ENOMEM)
			goto nomem;
		if (rc < 0) {
			/* Rejected: its last good version serves, if there is one. */
			const struct tw_k8s_obj *lg = last_good ? tw_k8s_store_get(last_good, o->ns, o->name) : NULL;
			char r2[400] = "";
			g->note_len = 0;
			g->note[0] = '\0';
			int ok = lg != NULL && parse_annotations(&t, g, lg->obj, r2, sizeof r2) == 0;
			char msg[600];
			snprintf(msg, sizeof msg, "rejected: %s; %s", reason,
			         ok ? "its last accepted version keeps serving" : "not served");
			if (set_item(&rep->items[i], o->ns, o->name, TW_K8S_REJECTED, reason, msg) < 0)
				goto nomem;
			if (!ok)
				continue;
			g->eff = lg->obj;
		} else if (last_good != NULL) {
			const struct tw_k8s_obj *lg = tw_k8s_store_get(last_good, o->ns, o->name);
			int same = lg != NULL && (lg->obj == o->obj || (lg->rv && o->rv && strcmp(lg->rv, o->rv) == 0));
			if (!same && tw_k8s_store_put(last_good, o->obj) < 0)
				goto nomem;
		}
		const json_t *md = json_object_get(g->eff, "metadata");
		g->created = tw_k8s_ing_jstr(md, "creationTimestamp") ? tw_k8s_ing_jstr(md, "creationTimestamp") : "";
		t.nings++;
	}
	if (last_good != NULL && (rc = prune_last_good(&t, last_good)) < 0)
		goto fail;
	size_t ning = t.nings; /* the Ingresses; HTTPRoutes and stand-ins follow */
	if ((rc = tw_k8s_gw_select(&t)) < 0)
		goto fail;

	/* age ranks */
	by_age = calloc(t.nings ? t.nings : 1, sizeof *by_age);
	if (by_age == NULL)
		goto nomem;
	for (size_t i = 0; i < t.nings; i++)
		by_age[i] = &t.ings[i];
	qsort(by_age, t.nings, sizeof *by_age, cmp_age);
	for (size_t i = 0; i < t.nings; i++)
		by_age[i]->rank = i;

	/* 2. entries, precedence */
	for (size_t i = 0; i < t.nings; i++)
		if ((rc = t.ings[i].kind == ING_ROUTE ? tw_k8s_gw_collect(&t, i)
			  : t.ings[i].kind == ING_INGRESS ? collect(&t, i) : 0) < 0)
			goto fail;
	if (t.opt->default_backend != NULL) {
		const struct tw_conf_backend *fb = tw_config_backend(cfg, t.opt->default_backend);
		if (fb == NULL)
			rep->warnings++;
		else if ((rc = add_entry(&t, "", "/", TW_MATCH_PREFIX, E_OPTION, SIZE_MAX, 0, NULL)) < 0)
			goto fail;
		else
			((struct entry *)t.entries.p)[t.entries.n - 1].file_be = (size_t)(fb - cfg->backends);
	}
	if (t.entries.n > 0)
		qsort(t.entries.p, t.entries.n, sizeof(struct entry), cmp_entry);
	if (t.tls.n > 0)
		qsort(t.tls.p, t.tls.n, sizeof(struct tls_entry), cmp_tls);
	resolve_conflicts(&t);

	/* 3, 4. sites, backends */
	if ((rc = build(&t)) < 0)
		goto fail;

	for (size_t i = 0; i < ning; i++) {
		struct ing *g = &t.ings[i];
		struct tw_k8s_ingress_report *it = &rep->items[g->item];
		if (it->verdict == TW_K8S_REJECTED) {
			if (g->note_len) {
				char msg[MAX_NOTE + 700];
				snprintf(msg, sizeof msg, "%s; warnings of the served version: %s", it->message, g->note);
				free(it->message);
				if ((it->message = strdup(msg)) == NULL)
					goto nomem;
			}
			continue;
		}
		char msg[128];
		snprintf(msg, sizeof msg, "served%s", g->nwarn ? " with warnings" : "");
		if (set_item(it, g->ns, g->name, TW_K8S_SERVED, g->note, msg) < 0)
			goto nomem;
	}
	rc = 0;
	goto out;
nomem:
	rc = tw_err_set(err, TW_ENOMEM, "ingress: out of memory");
	goto out;
fail:
	if (rc == TW_ENOMEM)
		tw_err_set(err, TW_ENOMEM, "ingress: out of memory");
out:
	tw_k8s_gw_free(&t);
	free(by_age);
	free(ours);
	free(t.ings);
	free(t.entries.p);
	free(t.tls.p);
	free(t.backends.p);
	free(t.bstate.p);
	free(t.secrets.p);
	free(t.bmap.s);
	free(t.smap_secrets.s);
	free(t.slices.s);
	free(t.slice_next);
	tw_arena_free(&t.scratch);
	return rc;
}
