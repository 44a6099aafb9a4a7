/* route.c — host/path routing table (see route.h and docs/internals/routing.md).
 *
 * Built once per config generation into cfg->arena:
 *   - `exact`: open-addressing hash table (linear probing, power-of-two size,
 *     load <= 1/2) from a normalized host name to a site index;
 *   - `wild`:  same shape, keyed by the suffix of a "*.suffix" pattern;
 *   - per site, its routes sorted so that the first match is the answer:
 *     longer (normalized) rule first, `exact` before `prefix` on equal length,
 *     config order otherwise.
 * Matching allocates nothing and only reads the table. */
#include "http/route.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define HOST_MAX 255 /* longest Host (after port/dot stripping) we look up */

struct rt_route {
	const struct tw_conf_route *conf;
	const char *path; /* prefix rules: trailing '/' removed ("/" -> "") */
	size_t len;
	enum tw_match match;
	size_t order; /* config order, for a stable sort */
};

struct rt_site {
	struct rt_route *routes;
	size_t nroutes;
	int any_depth; /* its wildcard host matches any number of labels */
	int has_matchers; /* some route has request matchers (ext) */
};

struct rt_slot {
	const char *name; /* NULL = empty slot */
	size_t len;
	uint64_t hash;
	size_t site;
};

struct rt_table {
	struct rt_slot *slots;
	size_t mask; /* capacity - 1; capacity 0 when the table is empty */
	size_t count;
};

struct tw_router {
	struct rt_site *sites;
	size_t nsites;
	int any_depth; /* some wildcard site matches any number of labels */
	struct rt_table exact;
	struct rt_table wild;
	size_t default_site; /* SIZE_MAX when none */
};

/* FNV-1a over already lower-cased bytes: host names are short, and the table
 * never leaves the process, so a simple hash is enough. */
static uint64_t host_hash(const char *s, size_t n)
{
	uint64_t h = 0xcbf29ce484222325ULL;
	for (size_t i = 0; i < n; i++) {
		h ^= (unsigned char)s[i];
		h *= 0x100000001b3ULL;
	}
	return h;
}

static int table_init(struct tw_arena *a, struct rt_table *t, size_t n)
{
	size_t cap = 8;
	while (cap < 2 * n)
		cap *= 2;
	t->slots = tw_arena_alloc(a, cap * sizeof *t->slots);
	if (t->slots == NULL)
		return TW_ENOMEM;
	t->mask = cap - 1;
	t->count = 0;
	return 0;
}

static const struct rt_slot *table_find(const struct rt_table *t, const char *name, size_t len)
{
	if (t->count == 0)
		return NULL;
	uint64_t h = host_hash(name, len);
	for (size_t i = (size_t)h & t->mask;; i = (i + 1) & t->mask) {
		const struct rt_slot *s = &t->slots[i];
		if (s->name == NULL)
			return NULL;
		if (s->hash == h && s->len == len && memcmp(s->name, name, len) == 0)
			return s;
	}
}

/* Returns 0, or TW_EEXIST with *other = the site that already has the name. */
static int table_put(struct rt_table *t, const char *name, size_t len, size_t site, size_t *other)
{
	uint64_t h = host_hash(name, len);
	size_t i = (size_t)h & t->mask;
	for (;; i = (i + 1) & t->mask) {
		struct rt_slot *s = &t->slots[i];
		if (s->name == NULL)
			break;
		if (s->hash == h && s->len == len && memcmp(s->name, name, len) == 0) {
			*other = s->site;
			return TW_EEXIST;
		}
	}
	t->slots[i] = (struct rt_slot){.name = name, .len = len, .hash = h, .site = site};
	t->count++;
	return 0;
}

static char lower(char c) { return (c >= 'A' && c <= 'Z') ? (char)(c - 'A' + 'a') : c; }

static int route_cmp(const void *pa, const void *pb)
{
	const struct rt_route *a = pa, *b = pb;
	if (a->len != b->len)
		return a->len > b->len ? -1 : 1;
	if (a->match != b->match)
		return a->match == TW_MATCH_EXACT ? -1 : 1;
	const struct tw_route_ext *x = a->conf->ext, *y = b->conf->ext;
	if (x != NULL || y != NULL) {
		int mx = x && x->method, my = y && y->method;
		if (mx != my)
			return mx ? -1 : 1;
		size_t hx = x ? x->nheaders : 0, hy = y ? y->nheaders : 0;
		if (hx != hy)
			return hx > hy ? -1 : 1;
		size_t qx = x ? x->nquery : 0, qy = y ? y->nquery : 0;
		if (qx != qy)
			return qx > qy ? -1 : 1;
		uint64_t ox = x ? x->order : 0, oy = y ? y->order : 0;
		if (ox != oy)
			return ox < oy ? -1 : 1;
	}
	return a->order < b->order ? -1 : (a->order > b->order ? 1 : 0);
}

static int build_site(struct tw_arena *a, const struct tw_config *cfg, size_t si, struct rt_site *out,
		      struct tw_err *err)
{
	const struct tw_conf_site *cs = &cfg->sites[si];
	out->nroutes = cs->nroutes;
	if (cs->nroutes == 0)
		return 0;
	out->routes = tw_arena_alloc(a, cs->nroutes * sizeof *out->routes);
	if (out->routes == NULL)
		return tw_err_set(err, TW_ENOMEM, "router: out of memory");
	for (size_t j = 0; j < cs->nroutes; j++) {
		const struct tw_conf_route *cr = &cs->routes[j];
		if (cr->path == NULL || cr->path_len == 0 || cr->path[0] != '/')
			return tw_err_set(err, TW_EINVAL, "router: site %zu route %zu: path must start with '/'",
					  si, j);
		if (cr->handler == TW_HANDLER_PROXY && cr->backend >= cfg->nbackends)
			return tw_err_set(err, TW_EINVAL, "router: site %zu route %zu: backend index %zu out of range",
					  si, j, cr->backend);
		struct rt_route *r = &out->routes[j];
		r->conf = cr;
		r->path = cr->path;
		r->len = cr->path_len;
		r->match = cr->match;
		r->order = j;
		if (cr->ext && (cr->ext->method || cr->ext->nheaders || cr->ext->nquery))
			out->has_matchers = 1;
		if (r->match == TW_MATCH_PREFIX)
			while (r->len > 0 && r->path[r->len - 1] == '/')
				r->len--;
	}
	qsort(out->routes, out->nroutes, sizeof *out->routes, route_cmp);
	return 0;
}

/* Normalize a configured host name into the arena: lower-case, one trailing
 * dot removed. */
static char *norm_conf_host(struct tw_arena *a, const char *h, size_t *len)
{
	size_t n = strlen(h);
	if (n > 1 && h[n - 1] == '.')
		n--;
	char *s = tw_arena_strndup(a, h, n);
	if (s == NULL)
		return NULL;
	for (size_t i = 0; i < n; i++)
		s[i] = lower(s[i]);
	*len = n;
	return s;
}

int tw_router_build(const struct tw_config *cfg, struct tw_router **out, struct tw_err *err)
{
	/* The contract allocates from the generation's arena; cfg itself is
	 * only read. */
	struct tw_arena *a = (struct tw_arena *)&cfg->arena;
	*out = NULL;
	struct tw_router *r = tw_arena_alloc(a, sizeof *r);
	if (r == NULL)
		return tw_err_set(err, TW_ENOMEM, "router: out of memory");
	r->default_site = SIZE_MAX;
	r->nsites = cfg->nsites;
	if (cfg->nsites > 0) {
		r->sites = tw_arena_alloc(a, cfg->nsites * sizeof *r->sites);
		if (r->sites == NULL)
			return tw_err_set(err, TW_ENOMEM, "router: out of memory");
	}

	size_t nexact = 0, nwild = 0;
	for (size_t i = 0; i < cfg->nsites; i++) {
		for (size_t k = 0; k < cfg->sites[i].nhosts; k++) {
			const char *h = cfg->sites[i].hosts[k];
			if (h == NULL || h[0] == '\0' || strcmp(h, ".") == 0)
				return tw_err_set(err, TW_EINVAL, "router: site %zu: empty host name", i);
			if (strcmp(h, "*") == 0)
				continue;
			if (h[0] == '*')
				nwild++;
			else
				nexact++;
		}
	}
	if (table_init(a, &r->exact, nexact) != 0 || table_init(a, &r->wild, nwild) != 0)
		return tw_err_set(err, TW_ENOMEM, "router: out of memory");

	for (size_t i = 0; i < cfg->nsites; i++) {
		int rc = build_site(a, cfg, i, &r->sites[i], err);
		if (rc != 0)
			return rc;
		r->sites[i].any_depth = cfg->sites[i].wild_any_depth;
		for (size_t k = 0; k < cfg->sites[i].nhosts; k++) {
			const char *h = cfg->sites[i].hosts[k];
			if (strcmp(h, "*") == 0) {
				if (r->default_site != SIZE_MAX && r->default_site != i)
					return tw_err_set(err, TW_EINVAL,
							  "router: default site \"*\" in sites %zu and %zu",
							  r->default_site, i);
				r->default_site = i;
				continue;
			}
			size_t len;
			char *name = norm_conf_host(a, h, &len);
			if (name == NULL)
				return tw_err_set(err, TW_ENOMEM, "router: out of memory");
			struct rt_table *t = &r->exact;
			if (name[0] == '*') {
				if (cfg->sites[i].wild_any_depth)
					r->any_depth = 1;
				if (len < 3 || name[1] != '.' || memchr(name + 2, '*', len - 2) != NULL)
					return tw_err_set(err, TW_EINVAL,
							  "router: site %zu: bad wildcard \"%s\" (want \"*.name\")",
							  i, h);
				name += 2;
				len -= 2;
				t = &r->wild;
			} else if (memchr(name, '*', len) != NULL) {
				return tw_err_set(err, TW_EINVAL,
						  "router: site %zu: '*' only allowed as \"*\" or a leading \"*.\" in \"%s\"",
						  i, h);
			}
			/* A port can never match: the request's port is stripped. */
			const char *colon = memchr(name, ':', len);
			if (colon != NULL && !(name[0] == '[' && name[len - 1] == ']'))
				return tw_err_set(err, TW_EINVAL, "router: site %zu: host \"%s\" must not carry a port",
						  i, h);
			if (len > HOST_MAX)
				return tw_err_set(err, TW_EINVAL, "router: site %zu: host name longer than %d bytes",
						  i, HOST_MAX);
			size_t other = 0;
			if (table_put(t, name, len, i, &other) != 0)
				return tw_err_set(err, TW_EINVAL, "router: host \"%s\" appears in sites %zu and %zu",
						  h, other, i);
		}
	}
	/* A hand-built config may name the default site only by index. */
	if (r->default_site == SIZE_MAX && cfg->default_site < cfg->nsites)
		r->default_site = cfg->default_site;
	*out = r;
	return 0;
}

/* Host header -> lower-case name without port and trailing dot, into buf.
 * Returns 0, or TW_ELIMIT when the name is longer than HOST_MAX. */
static int norm_host(const char *host, size_t n, char *buf, size_t *len)
{
	*len = 0;
	if (n == 0)
		return 0;
	if (host[0] == '[') {
		/* "[v6]" or "[v6]:port": keep the brackets, drop the port. */
		const char *close = memchr(host, ']', n);
		if (close != NULL)
			n = (size_t)(close - host) + 1;
	} else {
		const char *colon = memchr(host, ':', n);
		if (colon != NULL)
			n = (size_t)(colon - host);
	}
	if (n > 0 && host[n - 1] == '.')
		n--;
	if (n > HOST_MAX)
		return TW_ELIMIT;
	for (size_t i = 0; i < n; i++)
		buf[i] = lower(host[i]);
	*len = n;
	return 0;
}

static size_t find_site(const struct tw_router *r, const char *host, size_t host_len)
{
	char buf[HOST_MAX];
	size_t n = 0;
	if (norm_host(host, host_len, buf, &n) != 0)
		return SIZE_MAX;
	if (n == 0)
		return r->default_site; /* HTTP/1.0 without Host */
	const struct rt_slot *s = table_find(&r->exact, buf, n);
	if (s != NULL)
		return s->site;
	if (r->wild.count > 0 && n > 0 && buf[0] != '[') {
		const char *dot = memchr(buf, '.', n);
		if (dot != NULL && dot != buf && dot + 1 < buf + n) {
			size_t off = (size_t)(dot + 1 - buf);
			s = table_find(&r->wild, buf + off, n - off);
			if (s != NULL)
				return s->site;
			/* deeper names: "*.example.com" of a Gateway also takes "a.b.example.com" */
			while (r->any_depth && (dot = memchr(buf + off, '.', n - off)) != NULL && dot + 1 < buf + n) {
				off = (size_t)(dot + 1 - buf);
				s = table_find(&r->wild, buf + off, n - off);
				if (s != NULL && r->sites[s->site].any_depth)
					return s->site;
			}
		}
	}
	return r->default_site;
}

static int path_matches(const struct rt_route *rt, const char *path, size_t path_len)
{
	if (rt->match == TW_MATCH_EXACT)
		return path_len == rt->len && memcmp(path, rt->path, path_len) == 0;
	if (rt->len == 0)
		return 1; /* "/" */
	if (path_len < rt->len || memcmp(path, rt->path, rt->len) != 0)
		return 0;
	return path_len == rt->len || path[rt->len] == '/';
}

/* Is "name=value" one of the '&'-separated pairs of the query? */
static int query_has(const char *q, size_t qlen, const char *name, const char *value)
{
	size_t nl = strlen(name), vl = strlen(value);
	const char *p = q, *end = q + qlen;
	while (p < end) {
		const char *amp = memchr(p, '&', (size_t)(end - p));
		const char *e = amp ? amp : end;
		if ((size_t)(e - p) == nl + 1 + vl && memcmp(p, name, nl) == 0 && p[nl] == '=' &&
		    memcmp(p + nl + 1, value, vl) == 0)
			return 1;
		p = e + 1;
	}
	return 0;
}

static int req_matches(const struct tw_route_ext *x, const struct tw_route_req *q)
{
	if (x->method == NULL && x->nheaders == 0 && x->nquery == 0)
		return 1;
	if (q == NULL)
		return 0;
	if (x->method && (strlen(x->method) != q->method_len || memcmp(x->method, q->method, q->method_len) != 0))
		return 0;
	for (size_t i = 0; i < x->nheaders; i++)
		if (q->header_is == NULL || !q->header_is(q->ctx, x->headers[i].name, x->headers[i].value))
			return 0;
	for (size_t i = 0; i < x->nquery; i++)
		if (q->query == NULL || !query_has(q->query, q->query_len, x->query[i].name, x->query[i].value))
			return 0;
	return 1;
}

const struct tw_conf_route *tw_router_match(const struct tw_router *r, const char *host, size_t host_len,
					    const char *path, size_t path_len, size_t *site_idx)
{
	return tw_router_match_req(r, host, host_len, path, path_len, NULL, site_idx);
}

const struct tw_conf_route *tw_router_match_req(const struct tw_router *r, const char *host, size_t host_len,
						const char *path, size_t path_len, const struct tw_route_req *q,
						size_t *site_idx)
{
	size_t si = SIZE_MAX;
	const struct tw_conf_route *found = NULL;
	if (r != NULL)
		si = find_site(r, host, host_len);
	if (si != SIZE_MAX) {
		const struct rt_site *s = &r->sites[si];
		for (size_t j = 0; j < s->nroutes; j++) {
			if (path_matches(&s->routes[j], path, path_len) &&
			    (!s->has_matchers || s->routes[j].conf->ext == NULL ||
			     req_matches(s->routes[j].conf->ext, q))) {
				found = s->routes[j].conf;
				break;
			}
		}
	}
	if (site_idx != NULL)
		*site_idx = si;
	return found;
}

/* ---- comparing extensions (a generation may reuse the previous router) ---- */

static int str_eq(const char *a, const char *b)
{
	return (a == NULL && b == NULL) || (a != NULL && b != NULL && strcmp(a, b) == 0);
}

static int nv_eq(const struct tw_nv *a, size_t na, const struct tw_nv *b, size_t nb)
{
	if (na != nb)
		return 0;
	for (size_t i = 0; i < na; i++)
		if (!str_eq(a[i].name, b[i].name) || !str_eq(a[i].value, b[i].value))
			return 0;
	return 1;
}

static int mod_eq(const struct tw_hdr_mod *a, const struct tw_hdr_mod *b)
{
	if (!nv_eq(a->set, a->nset, b->set, b->nset) || !nv_eq(a->add, a->nadd, b->add, b->nadd) ||
	    a->nremove != b->nremove)
		return 0;
	for (size_t i = 0; i < a->nremove; i++)
		if (!str_eq(a->remove[i], b->remove[i]))
			return 0;
	return 1;
}

int tw_route_ext_equal(const struct tw_route_ext *a, const struct tw_route_ext *b)
{
	if (a == NULL || b == NULL)
		return a == b;
	if (!str_eq(a->method, b->method) || !nv_eq(a->headers, a->nheaders, b->headers, b->nheaders) ||
	    !nv_eq(a->query, a->nquery, b->query, b->nquery) || a->order != b->order || a->status != b->status ||
	    a->redirect != b->redirect || !str_eq(a->redir_scheme, b->redir_scheme) ||
	    !str_eq(a->redir_host, b->redir_host) || a->redir_port != b->redir_port || a->path_mod != b->path_mod ||
	    !str_eq(a->path_value, b->path_value) || !str_eq(a->rewrite_host, b->rewrite_host) ||
	    !mod_eq(&a->req, &b->req) || !mod_eq(&a->resp, &b->resp) || a->nwb != b->nwb)
		return 0;
	for (size_t i = 0; i < a->nwb; i++)
		if (a->wb[i].weight != b->wb[i].weight || a->wb[i].backend != b->wb[i].backend || !str_eq(a->wb[i].backend_name, b->wb[i].backend_name))
			return 0;
	return 1;
}
