/* ingress_backend.c — the Ingress translator's backends: Services, their
 * ports and EndpointSlices (ready, else serving-and-terminating endpoints),
 * ExternalName, and the small containers the translator shares (see
 * ingress_int.h). */
#include "k8s/ingress_int.h"

#include <arpa/inet.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- small containers ---------------------------------------------------- */

uint64_t tw_k8s_ing_hash(const char *s, size_t n)
{
	uint64_t h = 0xcbf29ce484222325ULL;
	for (size_t i = 0; i < n; i++) {
		h ^= (unsigned char)s[i];
		h *= 0x100000001b3ULL;
	}
	return h;
}


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

struct sm_slot *tw_k8s_ing_smap_find(const struct smap *m, const char *k, size_t len, uint64_t h)
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

int tw_k8s_ing_smap_get(const struct smap *m, const char *k, size_t *v)
{
	size_t len = strlen(k);
	struct sm_slot *s = tw_k8s_ing_smap_find(m, k, len, tw_k8s_ing_hash(k, len));
	if (s == NULL || s->k == NULL)
		return TW_ENOENT;
	*v = s->v;
	return 0;
}

/* Insert (k must outlive the map). An existing key keeps its value. */
int tw_k8s_ing_smap_put(struct smap *m, const char *k, size_t v)
{
	if (2 * (m->n + 1) > m->cap && smap_grow(m) < 0)
		return TW_ENOMEM;
	size_t len = strlen(k);
	uint64_t h = tw_k8s_ing_hash(k, len);
	struct sm_slot *s = tw_k8s_ing_smap_find(m, k, len, h);
	if (s->k != NULL)
		return 0;
	*s = (struct sm_slot){k, len, h, v};
	m->n++;
	return 0;
}


void *tw_k8s_ing_vec_push(struct vec *v)
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

char *tw_k8s_ing_sfmt(struct tw_arena *a, const char *fmt, ...)
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

const char *tw_k8s_ing_jstr(const json_t *o, const char *key)
{
	return json_string_value(json_object_get(o, key));
}

const char *tw_k8s_ing_jpath_str(const json_t *o, const char *a, const char *b)
{
	return tw_k8s_ing_jstr(json_object_get(o, a), b);
}

int tw_k8s_ing_path_ok(const char *p)
{
	if (p[0] != '/' || strlen(p) > MAX_PATH_LEN)
		return 0;
	for (; *p; p++)
		if ((unsigned char)*p <= 0x20 || *p == 0x7f || *p == '?' || *p == '#')
			return 0;
	return 1;
}

void tw_k8s_ing_note(struct tr *t, struct ing *g, const char *fmt, ...)
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
		const char *svc = tw_k8s_ing_jstr(json_object_get(json_object_get(o->obj, "metadata"), "labels"), SERVICE_NAME_LABEL);
		if (svc == NULL)
			continue;
		char *key = tw_k8s_ing_sfmt(&t->scratch, "%s/%s", o->ns, svc);
		if (key == NULL)
			return TW_ENOMEM;
		size_t head;
		if (tw_k8s_ing_smap_get(&t->slices, key, &head) == 0) {
			t->slice_next[i] = head;
			/* replace the head: find the slot and update it */
			size_t len = strlen(key);
			struct sm_slot *sl = tw_k8s_ing_smap_find(&t->slices, key, len, tw_k8s_ing_hash(key, len));
			sl->v = i;
		} else {
			t->slice_next[i] = SIZE_MAX;
			if (tw_k8s_ing_smap_put(&t->slices, key, i) < 0)
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
	if (tw_k8s_ing_smap_get(&t->slices, key, &i) < 0)
		return 0;
	struct vec ready = {.width = sizeof(struct tw_conf_server)}, term = {.width = sizeof(struct tw_conf_server)};
	int rc = 0;
	for (; i != SIZE_MAX; i = t->slice_next[i]) {
		const json_t *sl = tw_k8s_store_at(t->v->endpointslices, i)->obj;
		const char *at = tw_k8s_ing_jstr(sl, "addressType");
		int v6 = at && strcmp(at, "IPv6") == 0;
		if (at == NULL || (!v6 && strcmp(at, "IPv4") != 0))
			continue;
		const json_t *ports = json_object_get(sl, "ports");
		json_int_t port = -1;
		for (size_t k = 0; k < json_array_size(ports); k++) {
			const json_t *p = json_array_get(ports, k);
			const char *nm = tw_k8s_ing_jstr(p, "name"), *proto = tw_k8s_ing_jstr(p, "protocol");
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
			struct tw_conf_server *dst = tw_k8s_ing_vec_push(rdy ? &ready : &term);
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
	b->idle_ceiling = 1024; /* self-sizing upstream pool (no max_idle) */
	b->queue_size = 128;
	b->queue_timeout_ms = 5000;
	b->passive_fails = 3;
	b->passive_eject_ms = 10000;
	b->dynamic = 1; /* pods come and go: no metric series per pod address */
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
	uint64_t h = tw_k8s_ing_hash(canon, k > 0 ? (size_t)k : 0);
	snprintf(buf, n, "#%08x", (unsigned)(h ^ (h >> 32)));
}

static void backend_note(struct tr *t, size_t gi, size_t bi)
{
	struct backend_state *bs = &((struct backend_state *)t->bstate.p)[bi];
	if (bs->note == NULL || bs->last_ing == gi)
		return;
	bs->last_ing = gi;
	tw_k8s_ing_note(t, &t->ings[gi], "%s", bs->note);
}

/* Create (or find) the backend a winning entry routes to: *out its index in
 * t->backends. */
int tw_k8s_ing_backend(struct tr *t, size_t gi, const json_t *be, size_t *out)
{
	struct ing *g = &t->ings[gi];
	struct tw_arena *a = &t->cfg->arena;
	const json_t *svc = json_object_get(be, "service");
	const json_t *res = json_object_get(be, "resource");
	char name[512], sfx[16], why[400] = "";
	const struct tw_k8s_obj *so = NULL;
	const json_t *sport = NULL;
	const char *sname = tw_k8s_ing_jstr(svc, "name");
	const json_t *pnum = json_object_get(json_object_get(svc, "port"), "number");
	const char *pname = tw_k8s_ing_jpath_str(svc, "port", "name");
	opts_suffix(&g->ann.be, sfx, sizeof sfx);
	if (json_is_object(svc) && sname != NULL && (json_is_integer(pnum) || pname != NULL)) {
		so = t->v->services ? tw_k8s_store_get(t->v->services, g->ns, sname) : NULL;
		const json_t *ports = so ? json_object_get(json_object_get(so->obj, "spec"), "ports") : NULL;
		for (size_t i = 0; i < json_array_size(ports) && sport == NULL; i++) {
			const json_t *p = json_array_get(ports, i);
			if (json_is_integer(pnum) ? json_integer_value(json_object_get(p, "port")) == json_integer_value(pnum)
			                          : (tw_k8s_ing_jstr(p, "name") && strcmp(tw_k8s_ing_jstr(p, "name"), pname) == 0))
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
		snprintf(name, sizeof name, "k8s:%s/resource:%s/%s", g->ns, tw_k8s_ing_jstr(res, "kind") ? tw_k8s_ing_jstr(res, "kind") : "?",
		         tw_k8s_ing_jstr(res, "name") ? tw_k8s_ing_jstr(res, "name") : "?");
		snprintf(why, sizeof why, "resource backend %s/%s is not supported (503)",
		         tw_k8s_ing_jstr(res, "kind") ? tw_k8s_ing_jstr(res, "kind") : "?", tw_k8s_ing_jstr(res, "name") ? tw_k8s_ing_jstr(res, "name") : "?");
	} else {
		snprintf(name, sizeof name, "k8s:%s/invalid-backend", g->ns);
		snprintf(why, sizeof why, "a backend without service name and port (503)");
	}
	size_t idx;
	if (tw_k8s_ing_smap_get(&t->bmap, name, &idx) == 0) {
		backend_note(t, gi, idx);
		*out = idx;
		return 0;
	}
	struct tw_conf_backend *b = tw_k8s_ing_vec_push(&t->backends);
	struct backend_state *bs = tw_k8s_ing_vec_push(&t->bstate);
	if (b == NULL || bs == NULL)
		return TW_ENOMEM;
	idx = t->backends.n - 1;
	bs->last_ing = SIZE_MAX;
	backend_defaults(b, &g->ann.be);
	b->name = tw_arena_strdup(a, name);
	char *key = tw_arena_strdup(&t->scratch, name);
	if (b->name == NULL || key == NULL || tw_k8s_ing_smap_put(&t->bmap, key, idx) < 0)
		return TW_ENOMEM;
	if (why[0] == '\0' && sport != NULL) {
		const json_t *spec = json_object_get(so->obj, "spec");
		const char *type = tw_k8s_ing_jstr(spec, "type");
		json_int_t portno = json_integer_value(json_object_get(sport, "port"));
		if (type != NULL && strcmp(type, "ExternalName") == 0) {
			const char *ext = tw_k8s_ing_jstr(spec, "externalName");
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
			const char *spn = tw_k8s_ing_jstr(sport, "name");
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
