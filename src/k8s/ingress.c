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
 * allocated in cfg->arena. */
#include "k8s/ingress.h"

#include "conf/schema.h"
#include "tls/tls.h"

#include <arpa/inet.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The object stores are implemented by src/k8s/cache.c, written beside this
 * file: weak references let the program link before it lands (nothing calls
 * the translator yet) and are plain references once it is there. */
#pragma weak tw_k8s_store_get
#pragma weak tw_k8s_store_count
#pragma weak tw_k8s_store_at
#pragma weak tw_k8s_store_put
#pragma weak tw_k8s_store_del

#define ANN_PREFIX "tapwork.dev/"
#define LEGACY_CLASS "kubernetes.io/ingress.class"
#define DEFAULT_CLASS_ANN "ingressclass.kubernetes.io/is-default-class"
#define SERVICE_NAME_LABEL "kubernetes.io/service-name"

/* What one Ingress may create: a bigger object is rejected, not truncated. */
#define MAX_RULES 256     /* spec.rules */
#define MAX_PATHS 1024    /* paths over all rules */
#define MAX_TLS 64        /* spec.tls entries */
#define MAX_TLS_HOSTS 256 /* hosts over all spec.tls entries */
#define MAX_PATH_LEN 2048
#define MAX_SERVERS 1024  /* pods per backend (as the file's servers: list) */
#define MAX_NOTE 1024     /* report reason text per Ingress */

/* ---- small containers ---------------------------------------------------- */

static uint64_t fnv(const char *s, size_t n)
{
	uint64_t h = 0xcbf29ce484222325ULL;
	for (size_t i = 0; i < n; i++) {
		h ^= (unsigned char)s[i];
		h *= 0x100000001b3ULL;
	}
	return h;
}

/* String -> size_t, open addressing; keys are borrowed (scratch arena). */
struct smap {
	struct sm_slot {
		const char *k;
		size_t len;
		uint64_t h;
		size_t v;
	} *s;
	size_t cap, n;
};

static int smap_grow(struct smap *m)
{
	size_t cap = m->cap ? m->cap * 2 : 64;
	struct sm_slot *s = calloc(cap, sizeof *s);
	if (s == NULL)
		return TW_ENOMEM;
	for (size_t i = 0; i < m->cap; i++) {
		if (m->s[i].k == NULL)
			continue;
		size_t j = (size_t)m->s[i].h & (cap - 1);
		while (s[j].k != NULL)
			j = (j + 1) & (cap - 1);
		s[j] = m->s[i];
	}
	free(m->s);
	m->s = s;
	m->cap = cap;
	return 0;
}

static struct sm_slot *smap_find(const struct smap *m, const char *k, size_t len, uint64_t h)
{
	if (m->cap == 0)
		return NULL;
	for (size_t i = (size_t)h & (m->cap - 1);; i = (i + 1) & (m->cap - 1)) {
		struct sm_slot *s = &m->s[i];
		if (s->k == NULL)
			return s;
		if (s->h == h && s->len == len && memcmp(s->k, k, len) == 0)
			return s;
	}
}

static int smap_get(const struct smap *m, const char *k, size_t *v)
{
	size_t len = strlen(k);
	struct sm_slot *s = smap_find(m, k, len, fnv(k, len));
	if (s == NULL || s->k == NULL)
		return TW_ENOENT;
	*v = s->v;
	return 0;
}

/* Insert (k must outlive the map). An existing key keeps its value. */
static int smap_put(struct smap *m, const char *k, size_t v)
{
	if (2 * (m->n + 1) > m->cap && smap_grow(m) < 0)
		return TW_ENOMEM;
	size_t len = strlen(k);
	uint64_t h = fnv(k, len);
	struct sm_slot *s = smap_find(m, k, len, h);
	if (s->k != NULL)
		return 0;
	*s = (struct sm_slot){k, len, h, v};
	m->n++;
	return 0;
}

/* A growable array in malloc memory. */
struct vec {
	void *p;
	size_t n, cap, width;
};

static void *vec_push(struct vec *v)
{
	if (v->n == v->cap) {
		size_t cap = v->cap ? v->cap * 2 : 16;
		void *p = realloc(v->p, cap * v->width);
		if (p == NULL)
			return NULL;
		v->p = p;
		v->cap = cap;
	}
	void *e = (char *)v->p + v->n++ * v->width;
	memset(e, 0, v->width);
	return e;
}

static char *sfmt(struct tw_arena *a, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static char *sfmt(struct tw_arena *a, const char *fmt, ...)
{
	char buf[1024];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(buf, sizeof buf, fmt, ap);
	va_end(ap);
	if (n < 0)
		return NULL;
	return tw_arena_strndup(a, buf, (size_t)n < sizeof buf ? (size_t)n : sizeof buf - 1);
}

/* ---- JSON helpers -------------------------------------------------------- */

static const char *jstr(const json_t *o, const char *key)
{
	return json_string_value(json_object_get(o, key));
}

static const char *jpath_str(const json_t *o, const char *a, const char *b)
{
	return jstr(json_object_get(o, a), b);
}

/* ---- per-Ingress state --------------------------------------------------- */

/* Backend settings from annotations; `set` says some differ from the defaults. */
struct be_opts {
	int set;
	enum tw_balance balance;
	enum tw_hash_src hash_src;
	const char *hash_name;
	unsigned retries;
	uint64_t connect_ms, response_ms;
};

struct ann {
	int ssl_redirect; /* -1 = not given */
	int hsts;         /* -1 = not given */
	struct be_opts be;
};

struct ing {
	const struct tw_k8s_obj *o; /* the current object */
	const json_t *eff;          /* what is served: o->obj, or its last good version */
	const char *ns, *name, *created;
	size_t rank; /* 0 = oldest */
	size_t item; /* report index */
	struct ann ann;
	const char *warned_host; /* last host reported as served by the file */
	char note[MAX_NOTE]; /* warnings, "; "-separated */
	size_t note_len;
	unsigned nwarn;
};

enum entry_kind { E_RULE = 0, E_DEFAULT, E_OPTION };

struct entry {
	const char *host; /* lower-case; "" = every host */
	const char *path; /* as written (cfg arena) */
	size_t klen;      /* compared length: Prefix without trailing '/' */
	enum tw_match match;
	enum entry_kind kind;
	size_t ing;  /* index in ings; SIZE_MAX for E_OPTION */
	size_t rank; /* the Ingress's age rank; SIZE_MAX for E_OPTION */
	size_t order;
	const json_t *backend; /* IngressBackend; NULL for E_OPTION */
	size_t file_be;        /* E_OPTION: index of the file backend */
	int lost;              /* 1 = a duplicate key, 2 = the file serves the host */
};

struct tls_entry {
	const char *host;
	const char *secret; /* NULL = none (ACME) */
	size_t ing, rank, order;
};

struct secret_state {
	int ok;
	struct tw_conf_certpair pair;
	char why[300];
};

struct backend_state {
	char *note; /* a warning for every Ingress that routes to it; NULL = none */
	size_t last_ing;
};

struct tr {
	struct tw_config *cfg;
	const struct tw_k8s_view *v;
	const struct tw_conf_k8s_ingress *opt;
	struct tw_k8s_report *rep;
	struct tw_err *err;
	struct tw_arena scratch;
	struct ing *ings;
	size_t nings;
	struct vec entries, tls, backends, bstate, secrets;
	struct smap bmap, smap_secrets, slices;
	size_t *slice_next; /* chain of EndpointSlices by service */
	int slices_built;
};

static void note(struct tr *t, struct ing *g, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void note(struct tr *t, struct ing *g, const char *fmt, ...)
{
	char buf[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof buf, fmt, ap);
	va_end(ap);
	t->rep->warnings++;
	g->nwarn++;
	if (g->note_len + 8 >= sizeof g->note)
		return;
	int n = snprintf(g->note + g->note_len, sizeof g->note - g->note_len, "%s%s",
	                 g->note_len ? "; " : "", buf);
	if (n < 0)
		return;
	g->note_len += (size_t)n < sizeof g->note - g->note_len ? (size_t)n : sizeof g->note - g->note_len - 1;
	if (g->note_len + 8 >= sizeof g->note)
		memcpy(g->note + sizeof g->note - 5, "...", 4);
}

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
		const char *ctl = jpath_str(c, "spec", "controller");
		const char *def = jstr(json_object_get(json_object_get(c, "metadata"), "annotations"), DEFAULT_CLASS_ANN);
		if (ctl && strcmp(ctl, opt_controller(t->opt)) == 0 && def && strcmp(def, "true") == 0)
			return 1;
	}
	return 0;
}

/* 1 when the Ingress is ours; why gets the reason when not. */
static int is_ours(const struct tr *t, const json_t *ing, int dflt, char *why, size_t wl)
{
	const char *cls = jpath_str(ing, "spec", "ingressClassName");
	if (cls != NULL) {
		const struct tw_k8s_obj *c = t->v->ingress_classes ? tw_k8s_store_get(t->v->ingress_classes, "", cls) : NULL;
		if (c == NULL) {
			snprintf(why, wl, "IngressClass \"%s\" does not exist", cls);
			return 0;
		}
		const char *ctl = jpath_str(c->obj, "spec", "controller");
		if (ctl == NULL || strcmp(ctl, opt_controller(t->opt)) != 0) {
			snprintf(why, wl, "IngressClass \"%s\" belongs to controller \"%s\"", cls, ctl ? ctl : "");
			return 0;
		}
		return 1;
	}
	const char *legacy = jstr(json_object_get(json_object_get(ing, "metadata"), "annotations"), LEGACY_CLASS);
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
		note(t, g, "%sproxy-body-size is not enforced per Ingress: the global limits.max_body applies",
		     ANN_PREFIX);
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

static int path_ok(const char *p)
{
	if (p[0] != '/' || strlen(p) > MAX_PATH_LEN)
		return 0;
	for (; *p; p++)
		if ((unsigned char)*p <= 0x20 || *p == 0x7f || *p == '?' || *p == '#')
			return 0;
	return 1;
}

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
	struct entry *e = vec_push(&t->entries);
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
		const char *host = norm_host(t, jstr(rule, "host"), &why);
		if (host == NULL) {
			note(t, g, "rules[%zu]: bad host \"%.100s\": %s (rule ignored)", i, jstr(rule, "host"), why);
			continue;
		}
		if (host[0] && json_is_object(dflt) &&
		    (rc = add_entry(t, host, "/", TW_MATCH_PREFIX, E_DEFAULT, gi, order++, dflt)) < 0)
			return rc;
		const json_t *paths = json_object_get(json_object_get(rule, "http"), "paths");
		for (size_t j = 0; j < json_array_size(paths); j++) {
			const json_t *p = json_array_get(paths, j);
			const char *type = jstr(p, "pathType");
			const char *path = jstr(p, "path");
			const json_t *be = json_object_get(p, "backend");
			enum tw_match m = TW_MATCH_PREFIX;
			if (type != NULL && strcmp(type, "Exact") == 0)
				m = TW_MATCH_EXACT;
			else if (type != NULL && strcmp(type, "Prefix") != 0 && strcmp(type, "ImplementationSpecific") != 0) {
				note(t, g, "rules[%zu].paths[%zu]: unknown pathType \"%.40s\" (path ignored)", i, j, type);
				continue;
			}
			if (path == NULL || path[0] == '\0') {
				if (m == TW_MATCH_EXACT || (type && strcmp(type, "Prefix") == 0)) {
					note(t, g, "rules[%zu].paths[%zu]: no path (ignored)", i, j);
					continue;
				}
				path = "/";
			}
			if (!path_ok(path)) {
				note(t, g, "rules[%zu].paths[%zu]: bad path \"%.100s\" (ignored)", i, j, path);
				continue;
			}
			if (!json_is_object(be)) {
				note(t, g, "rules[%zu].paths[%zu]: no backend (ignored)", i, j);
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
		const char *secret = jstr(te, "secretName");
		if (json_array_size(hosts) == 0) {
			note(t, g, "tls[%zu]: no hosts (ignored)", i);
			continue;
		}
		for (size_t j = 0; j < json_array_size(hosts); j++) {
			const char *why = NULL;
			const char *h = norm_host(t, json_string_value(json_array_get(hosts, j)), &why);
			if (h == NULL || h[0] == '\0') {
				note(t, g, "tls[%zu].hosts[%zu]: bad host: %s (ignored)", i, j, why ? why : "empty");
				continue;
			}
			struct tls_entry *x = vec_push(&t->tls);
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

static int same_key(const struct entry *a, const struct entry *b)
{
	return strcmp(a->host, b->host) == 0 && a->klen == b->klen && a->match == b->match &&
	       memcmp(a->path, b->path, a->klen) == 0;
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
		note(t, &t->ings[e[i].ing], "%s%s %s (%s) is served by the older Ingress %s",
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
		note(t, &t->ings[x[i].ing], "TLS for %s (conflict) comes from the older Ingress %s", x[i].host,
		     ing_label(t, x[w].ing, lab, sizeof lab));
	}
}

/* ---- endpoints and backends ---------------------------------------------- */

static int build_slice_index(struct tr *t)
{
	const struct tw_k8s_store *s = t->v->endpointslices;
	size_t n = s ? tw_k8s_store_count(s) : 0;
	t->slices_built = 1;
	t->slice_next = calloc(n ? n : 1, sizeof *t->slice_next);
	if (t->slice_next == NULL)
		return TW_ENOMEM;
	/* Walk backwards so that each chain lists its slices in store order. */
	for (size_t i = n; i-- > 0;) {
		const struct tw_k8s_obj *o = tw_k8s_store_at(s, i);
		const char *svc = jstr(json_object_get(json_object_get(o->obj, "metadata"), "labels"), SERVICE_NAME_LABEL);
		if (svc == NULL)
			continue;
		char *key = sfmt(&t->scratch, "%s/%s", o->ns, svc);
		if (key == NULL)
			return TW_ENOMEM;
		size_t head;
		if (smap_get(&t->slices, key, &head) == 0) {
			t->slice_next[i] = head;
			/* replace the head: find the slot and update it */
			size_t len = strlen(key);
			struct sm_slot *sl = smap_find(&t->slices, key, len, fnv(key, len));
			sl->v = i;
		} else {
			t->slice_next[i] = SIZE_MAX;
			if (smap_put(&t->slices, key, i) < 0)
				return TW_ENOMEM;
		}
	}
	return 0;
}

static int cmp_server(const void *pa, const void *pb)
{
	return strcmp(((const struct tw_conf_server *)pa)->addr.text, ((const struct tw_conf_server *)pb)->addr.text);
}

static int cond_true(const json_t *conds, const char *key, int absent)
{
	const json_t *v = json_object_get(conds, key);
	return json_is_boolean(v) ? json_is_true(v) : absent;
}

/* The pods of ns/svc for the Service port named pname ("" = unnamed):
 * ready endpoints, else serving-and-terminating ones (KEP-1669). */
static int endpoints(struct tr *t, const char *ns, const char *svc, const char *pname, struct tw_conf_backend *b)
{
	if (!t->slices_built && build_slice_index(t) < 0)
		return TW_ENOMEM;
	char key[300];
	snprintf(key, sizeof key, "%s/%s", ns, svc);
	size_t i;
	if (smap_get(&t->slices, key, &i) < 0)
		return 0;
	struct vec ready = {.width = sizeof(struct tw_conf_server)}, term = {.width = sizeof(struct tw_conf_server)};
	int rc = 0;
	for (; i != SIZE_MAX; i = t->slice_next[i]) {
		const json_t *sl = tw_k8s_store_at(t->v->endpointslices, i)->obj;
		const char *at = jstr(sl, "addressType");
		int v6 = at && strcmp(at, "IPv6") == 0;
		if (at == NULL || (!v6 && strcmp(at, "IPv4") != 0))
			continue;
		const json_t *ports = json_object_get(sl, "ports");
		json_int_t port = -1;
		for (size_t k = 0; k < json_array_size(ports); k++) {
			const json_t *p = json_array_get(ports, k);
			const char *nm = jstr(p, "name"), *proto = jstr(p, "protocol");
			if (strcmp(nm ? nm : "", pname) == 0 && (proto == NULL || strcmp(proto, "TCP") == 0)) {
				port = json_integer_value(json_object_get(p, "port"));
				break;
			}
		}
		if (port < 1 || port > 65535)
			continue;
		const json_t *eps = json_object_get(sl, "endpoints");
		for (size_t k = 0; k < json_array_size(eps); k++) {
			const json_t *ep = json_array_get(eps, k);
			const char *ip = json_string_value(json_array_get(json_object_get(ep, "addresses"), 0));
			const json_t *c = json_object_get(ep, "conditions");
			int rdy = cond_true(c, "ready", 1);
			int serving = cond_true(c, "serving", rdy), terminating = cond_true(c, "terminating", 0);
			if (ip == NULL || strlen(ip) > 45 || (!rdy && !(serving && terminating)))
				continue;
			char text[64];
			snprintf(text, sizeof text, v6 ? "[%s]:%d" : "%s:%d", ip, (int)port);
			struct tw_conf_server srv = {.weight = 1};
			struct tw_err e;
			unsigned char bin[16];
			/* An IP address of the slice's type only: never a name to resolve. */
			if (inet_pton(v6 ? AF_INET6 : AF_INET, ip, bin) != 1 || tw_addr_parse(text, &srv.addr, &e) < 0)
				continue;
			struct tw_conf_server *dst = vec_push(rdy ? &ready : &term);
			if (dst == NULL) {
				rc = TW_ENOMEM;
				goto out;
			}
			*dst = srv;
		}
	}
	struct vec *use = ready.n ? &ready : &term;
	struct tw_conf_server *sv = use->p;
	size_t n = 0;
	if (use->n)
		qsort(sv, use->n, sizeof *sv, cmp_server);
	for (size_t k = 0; k < use->n; k++)
		if (n == 0 || strcmp(sv[n - 1].addr.text, sv[k].addr.text) != 0)
			sv[n++] = sv[k];
	if (n > MAX_SERVERS)
		n = MAX_SERVERS; /* reported by the caller */
	b->nservers = n;
	b->servers = tw_arena_alloc(&t->cfg->arena, (n ? n : 1) * sizeof *sv);
	if (b->servers == NULL) {
		rc = TW_ENOMEM;
		goto out;
	}
	if (n)
		memcpy(b->servers, sv, n * sizeof *sv);
	if (use->n > MAX_SERVERS)
		rc = 1; /* truncated */
out:
	free(ready.p);
	free(term.p);
	return rc;
}

static void backend_defaults(struct tw_conf_backend *b, const struct be_opts *o)
{
	b->balance = o->balance;
	b->hash_src = o->hash_src;
	b->hash_name = (char *)o->hash_name;
	b->retries = o->retries;
	b->connect_timeout_ms = o->connect_ms;
	b->response_timeout_ms = o->response_ms;
	b->idle_timeout_ms = 30000;
	b->max_idle = 64;
	b->queue_size = 128;
	b->queue_timeout_ms = 5000;
	b->passive_fails = 3;
	b->passive_eject_ms = 10000;
}

/* "#xxxxxxxx" of the settings when they differ from the defaults, else "". */
static void opts_suffix(const struct be_opts *o, char *buf, size_t n)
{
	buf[0] = '\0';
	if (!o->set)
		return;
	char canon[256];
	int k = snprintf(canon, sizeof canon, "b=%d;h=%d:%s;r=%u;c=%llu;t=%llu", (int)o->balance, (int)o->hash_src,
	                 o->hash_name ? o->hash_name : "", o->retries, (unsigned long long)o->connect_ms,
	                 (unsigned long long)o->response_ms);
	uint64_t h = fnv(canon, k > 0 ? (size_t)k : 0);
	snprintf(buf, n, "#%08x", (unsigned)(h ^ (h >> 32)));
}

static void backend_note(struct tr *t, size_t gi, size_t bi)
{
	struct backend_state *bs = &((struct backend_state *)t->bstate.p)[bi];
	if (bs->note == NULL || bs->last_ing == gi)
		return;
	bs->last_ing = gi;
	note(t, &t->ings[gi], "%s", bs->note);
}

/* Create (or find) the backend a winning entry routes to: *out its index in
 * t->backends. */
static int get_backend(struct tr *t, size_t gi, const json_t *be, size_t *out)
{
	struct ing *g = &t->ings[gi];
	struct tw_arena *a = &t->cfg->arena;
	const json_t *svc = json_object_get(be, "service");
	const json_t *res = json_object_get(be, "resource");
	char name[512], sfx[16], why[400] = "";
	const struct tw_k8s_obj *so = NULL;
	const json_t *sport = NULL;
	const char *sname = jstr(svc, "name");
	const json_t *pnum = json_object_get(json_object_get(svc, "port"), "number");
	const char *pname = jpath_str(svc, "port", "name");
	opts_suffix(&g->ann.be, sfx, sizeof sfx);
	if (json_is_object(svc) && sname != NULL && (json_is_integer(pnum) || pname != NULL)) {
		so = t->v->services ? tw_k8s_store_get(t->v->services, g->ns, sname) : NULL;
		const json_t *ports = so ? json_object_get(json_object_get(so->obj, "spec"), "ports") : NULL;
		for (size_t i = 0; i < json_array_size(ports) && sport == NULL; i++) {
			const json_t *p = json_array_get(ports, i);
			if (json_is_integer(pnum) ? json_integer_value(json_object_get(p, "port")) == json_integer_value(pnum)
			                          : (jstr(p, "name") && strcmp(jstr(p, "name"), pname) == 0))
				sport = p;
		}
		if (sport != NULL)
			snprintf(name, sizeof name, "k8s:%s/%s:%lld%s", g->ns, sname,
			         (long long)json_integer_value(json_object_get(sport, "port")), sfx);
		else if (json_is_integer(pnum))
			snprintf(name, sizeof name, "k8s:%s/%s:%lld%s", g->ns, sname, (long long)json_integer_value(pnum), sfx);
		else
			snprintf(name, sizeof name, "k8s:%s/%s:%s%s", g->ns, sname, pname, sfx);
		if (so == NULL)
			snprintf(why, sizeof why, "Service %s/%s not found (503)", g->ns, sname);
		else if (sport == NULL)
			snprintf(why, sizeof why, "Service %s/%s has no port %s (503)", g->ns, sname, pname ? pname : "");
	} else if (json_is_object(res)) {
		snprintf(name, sizeof name, "k8s:%s/resource:%s/%s", g->ns, jstr(res, "kind") ? jstr(res, "kind") : "?",
		         jstr(res, "name") ? jstr(res, "name") : "?");
		snprintf(why, sizeof why, "resource backend %s/%s is not supported (503)",
		         jstr(res, "kind") ? jstr(res, "kind") : "?", jstr(res, "name") ? jstr(res, "name") : "?");
	} else {
		snprintf(name, sizeof name, "k8s:%s/invalid-backend", g->ns);
		snprintf(why, sizeof why, "a backend without service name and port (503)");
	}
	size_t idx;
	if (smap_get(&t->bmap, name, &idx) == 0) {
		backend_note(t, gi, idx);
		*out = idx;
		return 0;
	}
	struct tw_conf_backend *b = vec_push(&t->backends);
	struct backend_state *bs = vec_push(&t->bstate);
	if (b == NULL || bs == NULL)
		return TW_ENOMEM;
	idx = t->backends.n - 1;
	bs->last_ing = SIZE_MAX;
	backend_defaults(b, &g->ann.be);
	b->name = tw_arena_strdup(a, name);
	char *key = tw_arena_strdup(&t->scratch, name);
	if (b->name == NULL || key == NULL || smap_put(&t->bmap, key, idx) < 0)
		return TW_ENOMEM;
	if (why[0] == '\0' && sport != NULL) {
		const json_t *spec = json_object_get(so->obj, "spec");
		const char *type = jstr(spec, "type");
		json_int_t portno = json_integer_value(json_object_get(sport, "port"));
		if (type != NULL && strcmp(type, "ExternalName") == 0) {
			const char *ext = jstr(spec, "externalName");
			if (!t->opt->external_name) {
				snprintf(why, sizeof why, "Service %s/%s is ExternalName, which is off (kubernetes.ingress.external_name) (503)",
				         g->ns, sname);
			} else if (ext == NULL || strchr(ext, ':') != NULL) {
				snprintf(why, sizeof why, "Service %s/%s: bad externalName (503)", g->ns, sname);
			} else {
				char text[320];
				struct tw_err e = {0};
				b->servers = tw_arena_alloc(a, sizeof *b->servers);
				if (b->servers == NULL)
					return TW_ENOMEM;
				snprintf(text, sizeof text, "%s:%lld", ext, (long long)portno);
				if (tw_addr_parse(text, &b->servers[0].addr, &e) < 0) {
					snprintf(why, sizeof why, "Service %s/%s: %s (503)", g->ns, sname, e.msg);
				} else {
					b->servers[0].weight = 1;
					b->nservers = 1;
				}
			}
		} else {
			const char *spn = jstr(sport, "name");
			int rc = endpoints(t, g->ns, sname, spn ? spn : "", b);
			if (rc < 0)
				return rc;
			if (rc > 0)
				snprintf(why, sizeof why, "Service %s/%s has more than %d endpoints: the first %d serve", g->ns,
				         sname, MAX_SERVERS, MAX_SERVERS);
			else if (b->nservers == 0)
				snprintf(why, sizeof why, "Service %s/%s has no ready endpoints (503)", g->ns, sname);
		}
	}
	if (why[0] && (bs->note = tw_arena_strdup(&t->scratch, why)) == NULL)
		return TW_ENOMEM;
	backend_note(t, gi, idx);
	*out = idx;
	return 0;
}

/* ---- TLS ----------------------------------------------------------------- */

static int b64val(unsigned char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '+')
		return 62;
	if (c == '/')
		return 63;
	return -1;
}

/* Standard base64 (padding optional, no whitespace) into the cfg arena. */
static int b64_decode(struct tw_arena *a, const char *in, const char **out, size_t *outlen)
{
	size_t n = strlen(in);
	while (n > 0 && in[n - 1] == '=')
		n--;
	if (n % 4 == 1 || n > (4u << 20))
		return TW_EINVAL;
	unsigned char *o = tw_arena_alloc(a, n / 4 * 3 + 3);
	if (o == NULL)
		return TW_ENOMEM;
	size_t k = 0;
	uint32_t acc = 0;
	int bits = 0;
	for (size_t i = 0; i < n; i++) {
		int v = b64val((unsigned char)in[i]);
		if (v < 0)
			return TW_EINVAL;
		acc = (acc << 6) | (uint32_t)v;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			o[k++] = (unsigned char)(acc >> bits);
		}
	}
	*out = (const char *)o;
	*outlen = k;
	return 0;
}

/* The pair of Secret ns/name (cached per call). */
static int get_secret(struct tr *t, const char *ns, const char *name, const struct secret_state **out)
{
	char key[300];
	snprintf(key, sizeof key, "%s/%s", ns, name);
	size_t idx;
	if (smap_get(&t->smap_secrets, key, &idx) == 0) {
		*out = &((struct secret_state *)t->secrets.p)[idx];
		return 0;
	}
	struct secret_state *s = vec_push(&t->secrets);
	char *k = tw_arena_strdup(&t->scratch, key);
	if (s == NULL || k == NULL || smap_put(&t->smap_secrets, k, t->secrets.n - 1) < 0)
		return TW_ENOMEM;
	const struct tw_k8s_obj *o = t->v->secrets ? tw_k8s_store_get(t->v->secrets, ns, name) : NULL;
	const json_t *data = o ? json_object_get(o->obj, "data") : NULL;
	const char *type = o ? jstr(o->obj, "type") : NULL;
	const char *crt = jstr(data, "tls.crt"), *kp = jstr(data, "tls.key");
	struct tw_conf_certpair *p = &s->pair;
	int rc;
	if (o == NULL) {
		snprintf(s->why, sizeof s->why, "Secret %s not found", key);
	} else if (type != NULL && strcmp(type, "kubernetes.io/tls") != 0) {
		snprintf(s->why, sizeof s->why, "Secret %s has type %.60s, not kubernetes.io/tls", key, type);
	} else if (crt == NULL || kp == NULL) {
		snprintf(s->why, sizeof s->why, "Secret %s lacks tls.crt or tls.key", key);
	} else if ((rc = b64_decode(&t->cfg->arena, crt, &p->cert_pem, &p->cert_pem_len)) < 0 ||
	           (rc = b64_decode(&t->cfg->arena, kp, &p->key_pem, &p->key_pem_len)) < 0) {
		if (rc == TW_ENOMEM)
			return rc;
		snprintf(s->why, sizeof s->why, "Secret %s: data is not base64", key);
	} else {
		p->cert = sfmt(&t->cfg->arena, "secret:%s (tls.crt)", key);
		p->key = sfmt(&t->cfg->arena, "secret:%s (tls.key)", key);
		if (p->cert == NULL || p->key == NULL)
			return TW_ENOMEM;
		int kt, which;
		char why[256];
		if (tw_tls_pair_check_mem(p, &kt, &which, why, sizeof why) < 0)
			snprintf(s->why, sizeof s->why, "%s", why);
		else
			s->ok = 1;
	}
	*out = s;
	return 0;
}

static const struct tls_entry *tls_find(const struct tr *t, const char *host)
{
	const struct tls_entry *x = t->tls.p;
	size_t lo = 0, hi = t->tls.n;
	while (lo < hi) { /* first entry of host: the winner */
		size_t mid = lo + (hi - lo) / 2;
		if (strcmp(x[mid].host, host) < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo < t->tls.n && strcmp(x[lo].host, host) == 0 ? &x[lo] : NULL;
}

/* Exact TLS host, else a "*.suffix" TLS host one label above an exact host,
 * when the Ingress that lists it also has rules for the host (run: the
 * host's entries): a wildcard never turns on TLS for other Ingresses' hosts. */
static const struct tls_entry *tls_for(const struct tr *t, const char *host, const struct entry *run, size_t n)
{
	const struct tls_entry *x = tls_find(t, host);
	const char *dot = strchr(host, '.');
	if (x != NULL || host[0] == '*' || dot == NULL || dot == host)
		return x;
	char w[300];
	snprintf(w, sizeof w, "*%s", dot);
	if ((x = tls_find(t, w)) == NULL)
		return NULL;
	for (size_t k = 0; k < n; k++)
		if (!run[k].lost && run[k].ing == x->ing)
			return x;
	return NULL;
}

static int site_tls(struct tr *t, struct tw_conf_site *s, const char *host, size_t owner, const struct entry *run,
                    size_t nrun)
{
	const struct tls_entry *x = host[0] ? tls_for(t, host, run, nrun) : NULL;
	struct tw_config *cfg = t->cfg;
	s->tls_public = host[0] && !tw_tls_name_is_internal(host);
	s->tls_mode = TW_TLS_OFF;
	if (x != NULL && !cfg->has_https) {
		note(t, &t->ings[x->ing], "TLS for %s: no HTTPS listener (served over HTTP only)", host);
	} else if (x != NULL && x->secret != NULL) {
		const struct secret_state *ss;
		int rc = get_secret(t, t->ings[x->ing].ns, x->secret, &ss);
		if (rc < 0)
			return rc;
		if (ss->ok) {
			s->tls_mode = TW_TLS_FILES;
			if ((s->certs = tw_arena_alloc(&cfg->arena, sizeof *s->certs)) == NULL)
				return TW_ENOMEM;
			*s->certs = ss->pair; /* the PEM bytes are shared, read-only */
			s->ncerts = 1;
		} else {
			s->tls_mode = TW_TLS_INTERNAL;
			note(t, &t->ings[x->ing], "TLS for %s: %s: serving the default (internal CA) certificate", host,
			     ss->why);
		}
	} else if (x != NULL) {
		s->tls_mode = cfg->has_acme ? TW_TLS_ACME : TW_TLS_INTERNAL;
		if (!cfg->has_acme)
			note(t, &t->ings[x->ing], "TLS for %s without secretName needs acme: (internal CA certificate)", host);
	}
	s->tls_effective = s->tls_mode;
	const struct ann *an = &t->ings[owner].ann;
	s->hsts = s->tls_effective != TW_TLS_OFF && (s->tls_public || cfg->tls.hsts_internal);
	if (an->hsts >= 0)
		s->hsts = s->tls_effective != TW_TLS_OFF && an->hsts;
	s->no_redirect = an->ssl_redirect == 0;
	return 0;
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
				note(t, g, "host %s is served by the config file (Ingress rules for it ignored)",
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
			size_t bi = 0;
			if (e[k].kind == E_OPTION) {
				route_be[nr] = e[k].file_be | FILE_BIT;
			} else {
				if ((rc = get_backend(t, e[k].ing, e[k].backend, &bi)) < 0)
					break;
				route_be[nr] = bi;
			}
			route_ptr[nr++] = r;
		}
		if (rc == 0 && owner != SIZE_MAX)
			rc = site_tls(t, s, e[i].host, owner, e + i, j - i);
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
			note(t, &t->ings[x->ing], "TLS host %s has no rule (ignored)", x->host);
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
		r->backend = (route_be[i] & FILE_BIT) ? (route_be[i] & ~FILE_BIT) : pos[route_be[i]];
		r->backend_name = bes[r->backend].name;
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
		char *k = sfmt(&t->scratch, "%s/%s", t->ings[i].ns, t->ings[i].name);
		if (k == NULL || smap_put(&keep, k, i) < 0)
			goto out;
	}
	size_t n = tw_k8s_store_count(lg), dummy;
	for (size_t i = 0; i < n; i++) {
		const struct tw_k8s_obj *o = tw_k8s_store_at(lg, i);
		char key[300];
		snprintf(key, sizeof key, "%s/%s", o->ns, o->name);
		if (smap_get(&keep, key, &dummy) == 0)
			continue;
		char **pair = vec_push(&gone);
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
		g->created = jstr(md, "creationTimestamp") ? jstr(md, "creationTimestamp") : "";
		t.nings++;
	}
	if (last_good != NULL && (rc = prune_last_good(&t, last_good)) < 0)
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
		if ((rc = collect(&t, i)) < 0)
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

	for (size_t i = 0; i < t.nings; i++) {
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
