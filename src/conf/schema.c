/* schema.c — THE configuration schema: every key tapwork accepts, its type,
 * default, limits and documentation, declared once as tables. The loader,
 * the validator and `tapwork config-docs` all read these tables.
 * To add a key: add a row (and a field in config.h); see docs/internals/config.md. */
#include "conf/config.h"
#include "conf/schema.h"
#include "backup/schedule.h"
#include "core/log.h"
#include "tls/tls.h"


#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

const char tw_config_default_yaml[] =
    "# tapwork's embedded default configuration: a welcome page on\n"
    "# http://127.0.0.1:8080/ and https://localhost:8443/ (certificate from\n"
    "# tapwork's local CA in state_dir; `tapwork cert trust` shows how to trust it).\n"
    "listen:\n"
    "  http: 127.0.0.1:8080\n"
    "  https: 127.0.0.1:8443\n"
    "workers: auto\n"
    "admin:\n"
    "  listen: 127.0.0.1:9090\n"
    "tls:\n"
    "  redirect_http: false\n"
    "sites:\n"
    "  - hosts: [\"*\"]\n"
    "    routes:\n"
    "      - {path: /, handler: welcome}\n";

/* Row helpers: each macro fills one struct cf_field. T is the parent struct. */
#define FLD(T, m) .off = offsetof(T, m), .width = sizeof(((T *)0)->m)
#define END                                                                                        \
	{                                                                                          \
		.name = NULL                                                                       \
	}

/* ---- custom scalar parsers ---------------------------------------------- */

static int parse_workers(struct cf_ctx *c, const struct cf_field *f, const char *text, void *dst,
                         char *why, size_t wl)
{
	uint64_t v;
	if (strcmp(text, "auto") == 0) {
		long n = sysconf(_SC_NPROCESSORS_ONLN);
		v = n < 1 ? 1 : n > 256 ? 256 : (uint64_t)n;
	} else if (tw_conf_parse_u64(text, &v) < 0 || v < 1 || v > 256) {
		snprintf(why, wl, "expected auto or a number 1..256, got \"%s\"", text);
		return TW_EINVAL;
	}
	unsigned u = (unsigned)v;
	memcpy(dst, &u, sizeof u);
	return 0;
}

static int token_ok(const char *s)
{
	if (*s == '\0')
		return 0;
	for (; *s; s++)
		if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
		      (*s >= '0' && *s <= '9') || strchr("!#$%&'*+-.^_`|~", *s) != NULL))
			return 0;
	return 1;
}

/* hash_key: client_ip | uri | header:NAME | cookie:NAME. dst is the backend. */
static int parse_hash_key(struct cf_ctx *c, const struct cf_field *f, const char *text, void *dst,
                          char *why, size_t wl)
{
	struct tw_conf_backend *b = dst;
	b->hash_name = NULL;
	if (strcmp(text, "client_ip") == 0) {
		b->hash_src = TW_HASH_CLIENT_IP;
		return 0;
	}
	if (strcmp(text, "uri") == 0) {
		b->hash_src = TW_HASH_URI;
		return 0;
	}
	const char *name = NULL;
	if (strncmp(text, "header:", 7) == 0) {
		b->hash_src = TW_HASH_HEADER;
		name = text + 7;
	} else if (strncmp(text, "cookie:", 7) == 0) {
		b->hash_src = TW_HASH_COOKIE;
		name = text + 7;
	}
	if (name == NULL || !token_ok(name)) {
		snprintf(why, wl,
		         "bad hash key \"%s\" (one of: client_ip, uri, header:NAME, cookie:NAME)",
		         text);
		return TW_EINVAL;
	}
	b->hash_name = tw_arena_strdup(c->arena, name);
	return b->hash_name ? 0 : TW_ENOMEM;
}

/* expect: "200-399" or "200". dst is the health struct. */
static int parse_expect(struct cf_ctx *c, const struct cf_field *f, const char *text, void *dst,
                        char *why, size_t wl)
{
	struct tw_conf_health *h = dst;
	char lo[8], hi[8];
	const char *dash = strchr(text, '-');
	size_t ll = dash ? (size_t)(dash - text) : strlen(text);
	uint64_t a, b;
	if (ll == 0 || ll >= sizeof lo || (dash && strlen(dash + 1) >= sizeof hi))
		goto bad;
	memcpy(lo, text, ll);
	lo[ll] = '\0';
	snprintf(hi, sizeof hi, "%s", dash ? dash + 1 : lo);
	if (tw_conf_parse_u64(lo, &a) < 0 || tw_conf_parse_u64(hi, &b) < 0 || a < 100 || b > 599 ||
	    a > b)
		goto bad;
	h->expect_min = (unsigned)a;
	h->expect_max = (unsigned)b;
	return 0;
bad:
	snprintf(why, wl, "bad status range \"%s\" (write e.g. 200-399 or 204; statuses 100..599)",
	         text);
	return TW_EINVAL;
}

static int parse_host(struct cf_ctx *c, const struct cf_field *f, const char *text, void *dst,
                      char *why, size_t wl)
{
	char *h = tw_arena_strdup(c->arena, text);
	const char *reason = NULL;
	if (h == NULL)
		return TW_ENOMEM;
	if (tw_conf_host_check(h, &reason) < 0) {
		snprintf(why, wl, "bad host \"%s\": %s", text, reason);
		return TW_EINVAL;
	}
	memcpy(dst, &h, sizeof h);
	return 0;
}

static int parse_token(struct cf_ctx *c, const struct cf_field *f, const char *text, void *dst,
                       char *why, size_t wl)
{
	if (!token_ok(text) || strlen(text) > 64) {
		snprintf(why, wl,
		         "\"%s\" must be a single word (letters, digits, .-_), at most 64 bytes",
		         text);
		return TW_EINVAL;
	}
	char *s = tw_arena_strdup(c->arena, text);
	if (s == NULL)
		return TW_ENOMEM;
	memcpy(dst, &s, sizeof s);
	return 0;
}

static int parse_path(struct cf_ctx *c, const struct cf_field *f, const char *text, void *dst,
                      char *why, size_t wl)
{
	if (text[0] != '/') {
		snprintf(why, wl, "path \"%s\" must start with '/'", text);
		return TW_EINVAL;
	}
	for (const char *p = text; *p; p++) {
		if ((unsigned char)*p <= 0x20 || *p == 0x7f || *p == '?' || *p == '#') {
			snprintf(
			    why, wl,
			    "path \"%s\" must not contain spaces, control characters, '?' or '#'",
			    text);
			return TW_EINVAL;
		}
	}
	char *s = tw_arena_strdup(c->arena, text);
	if (s == NULL)
		return TW_ENOMEM;
	memcpy(dst, &s, sizeof s);
	return 0;
}

/* hsts.max_age: a duration, also in years ("1y" = 365d); stored in seconds. */
static int parse_age(struct cf_ctx *c, const struct cf_field *f, const char *text, void *dst,
                     char *why, size_t wl)
{
	uint64_t v = 0, ms = 0;
	size_t n = strlen(text);
	if (n >= 2 && text[n - 1] == 'y') {
		char num[24];
		if (n - 1 >= sizeof num)
			goto bad;
		memcpy(num, text, n - 1);
		num[n - 1] = '\0';
		if (tw_conf_parse_u64(num, &v) < 0 || v > 10)
			goto bad;
		v *= 365ull * 86400;
	} else {
		struct tw_err e = {0};
		if (tw_duration_parse(text, &ms, &e) < 0)
			goto bad;
		v = ms / 1000;
		if (v > 10ull * 365 * 86400)
			goto bad;
	}
	memcpy(dst, &v, sizeof v);
	return 0;
bad:
	snprintf(why, wl, "bad max_age \"%s\" (a duration such as 1y, 180d, 1h or 0; at most 10y)",
	         text);
	return TW_EINVAL;
}

/* ---- per-site tls: internal | off | acme | {cert, key} | [{cert, key}, ...] ---- */

static int check_certpair(struct cf_ctx *c, int node, void *obj)
{
	struct tw_conf_certpair *p = obj;
	char why[384];
	int which = 0, ktype = 0;
	if (tw_tls_pair_check(p->cert, p->key, &ktype, &which, why, sizeof why) < 0) {
		const char *k = which ? "key" : "cert";
		return tw_conf_fail(c, tw_conf_map_get(c, node, k), k, "%s", why);
	}
	return 0;
}

#define CP struct tw_conf_certpair
static const struct cf_field certpair_fields[] = {
    {.name = "cert",
     .kind = CF_STRING,
     FLD(CP, cert),
     .flags = CF_REQUIRED,
     .doc = "PEM file: the certificate, then its intermediates (leaf first). Read at load and on "
            "every reload; a file that is missing or does not parse is an error."},
    {.name = "key",
     .kind = CF_STRING,
     FLD(CP, key),
     .flags = CF_REQUIRED,
     .doc = "PEM file with the certificate's private key (ECDSA or RSA; keep it 0600)."},
    END};
#undef CP
static const struct cf_schema certpair_schema = {
    .name = "sites[].tls (certificate files)",
    .fields = certpair_fields,
    .check = check_certpair,
    .doc = "A certificate and its key from files. `tls:` may also be a list of such pairs: one "
           "ECDSA and one RSA pair, and each client gets the one it supports. Relative paths are "
           "relative to the working directory."};
static const struct cf_field certpair_elem = {
    .kind = CF_STRUCT, .width = sizeof(struct tw_conf_certpair), .schema = &certpair_schema};
static const struct cf_field certpair_list = {.name = "tls",
                                              .kind = CF_LIST,
                                              .off = offsetof(struct tw_conf_site, certs),
                                              .width = sizeof(struct tw_conf_certpair *),
                                              .count_off = offsetof(struct tw_conf_site, ncerts),
                                              .min = 1,
                                              .max = 8,
                                              .elem = &certpair_elem};

static int parse_site_tls(struct cf_ctx *c, const struct cf_field *f, int node, void *dst)
{
	struct tw_conf_site *s = dst; /* the field has off 0: dst is the site */
	int kind = tw_conf_node_kind(c, node), rc = 0;
	if (kind == 's') {
		const char *t = tw_conf_scalar(c, node);
		if (t == NULL)
			return TW_ENOMEM;
		if (strcmp(t, "internal") == 0)
			s->tls_mode = TW_TLS_INTERNAL;
		else if (strcmp(t, "off") == 0)
			s->tls_mode = TW_TLS_OFF;
		else if (strcmp(t, "acme") == 0)
			s->tls_mode = TW_TLS_ACME;
		else
			return tw_conf_fail(c, node, NULL,
			                    "bad value \"%s\" (one of: internal, off, acme, "
			                    "{cert: FILE, key: FILE} or a list of such pairs)",
			                    t);
		return 0;
	}
	if (kind == 'm') {
		s->certs = tw_arena_alloc(c->arena, sizeof *s->certs);
		if (s->certs == NULL)
			return TW_ENOMEM;
		memset(s->certs, 0, sizeof *s->certs);
		rc = tw_conf_parse_field(c, &certpair_elem, node, s->certs);
		s->ncerts = 1;
	} else if (kind == 'l') {
		rc = tw_conf_parse_field(c, &certpair_list, node, &s->certs);
	} else {
		return tw_conf_fail(c, node, NULL,
		                    "expected internal, off, acme, {cert: FILE, key: FILE} or a "
		                    "list of such pairs, got nothing");
	}
	if (rc < 0)
		return rc;
	s->tls_mode = TW_TLS_FILES;
	/* At most one pair per key type: the handshake picks by type. */
	int seen[4] = {0};
	for (size_t i = 0; i < s->ncerts; i++) {
		char why[384];
		int which = 0, kt = 0;
		if (tw_tls_pair_check(s->certs[i].cert, s->certs[i].key, &kt, &which, why,
		                      sizeof why) < 0)
			return tw_conf_fail(c, node, NULL, "%s", why);
		if (kt < 0 || kt > 3)
			kt = 0;
		if (seen[kt]++)
			return tw_conf_fail(c, tw_conf_seq_item(c, node, i), NULL,
			                    "two certificates with %s keys: give at most one ECDSA "
			                    "and one RSA pair",
			                    tw_tls_key_type_name(kt));
	}
	return 0;
}

static int resolve_tls(struct cf_ctx *c, struct tw_config *cfg)
{
	for (size_t i = 0; i < cfg->nsites; i++) {
		struct tw_conf_site *s = &cfg->sites[i];
		s->tls_public = 0;
		for (size_t j = 0; j < s->nhosts; j++)
			if (!tw_tls_name_is_internal(s->hosts[j]))
				s->tls_public = 1;
		if (s->tls_mode != TW_TLS_AUTO)
			s->tls_effective = s->tls_mode;
		else if (!cfg->has_https)
			s->tls_effective = TW_TLS_OFF;
		else
			s->tls_effective = s->tls_public ? TW_TLS_ACME : TW_TLS_INTERNAL;
		s->hsts = s->tls_effective != TW_TLS_OFF && (s->tls_public || cfg->tls.hsts_internal);
	}
	char hv[128];
	snprintf(hv, sizeof hv, "max-age=%llu%s%s", (unsigned long long)cfg->tls.hsts.max_age_s,
	         cfg->tls.hsts.include_subdomains ? "; includeSubDomains" : "",
	         cfg->tls.hsts.preload ? "; preload" : "");
	cfg->tls.hsts_header = tw_arena_strdup(c->arena, hv);
	if (cfg->tls.hsts_header == NULL)
		return TW_ENOMEM;
	if (cfg->tls.default_host == NULL)
		return 0;
	for (size_t i = 0; i < cfg->nsites; i++)
		for (size_t j = 0; j < cfg->sites[i].nhosts; j++)
			if (strcmp(cfg->sites[i].hosts[j], cfg->tls.default_host) == 0) {
				if (cfg->sites[i].tls_effective != TW_TLS_OFF)
					return 0;
				snprintf(c->path, sizeof c->path, "tls.default_host");
				c->plen = strlen(c->path);
				return tw_conf_fail(
				    c, tw_conf_map_get(c, tw_conf_map_get(c, 1, "tls"), "default_host"),
				    NULL, "\"%s\" belongs to sites[%zu], which has no TLS",
				    cfg->tls.default_host, i);
			}
	snprintf(c->path, sizeof c->path, "tls.default_host");
	c->plen = strlen(c->path);
	return tw_conf_fail(c, tw_conf_map_get(c, tw_conf_map_get(c, 1, "tls"), "default_host"),
	                    NULL, "\"%s\" is not a host of any site", cfg->tls.default_host);
}

/* ---- checks across fields ---------------------------------------------- */

static int check_listen(struct cf_ctx *c, int node, void *obj)
{
	struct tw_config *cfg = obj;
	if (!cfg->has_http && !cfg->has_https)
		return tw_conf_fail(c, node, NULL, "needs at least one listener (http)");
	return 0;
}

static int check_route(struct cf_ctx *c, int node, void *obj)
{
	struct tw_conf_route *r = obj;
	int has_backend = tw_conf_map_get(c, node, "backend") != 0;
	int has_handler = tw_conf_map_get(c, node, "handler") != 0;
	if (has_backend == has_handler)
		return tw_conf_fail(c, node, NULL,
		                    "a route needs exactly one of \"backend\" or \"handler\"");
	r->handler = has_backend ? TW_HANDLER_PROXY : r->handler;
	r->path_len = strlen(r->path);
	int has_root = tw_conf_map_get(c, node, "root") != 0;
	if (r->handler == TW_HANDLER_STATIC) {
		struct stat sb;
		if (!has_root)
			return tw_conf_fail(c, node, NULL, "handler: static needs \"root\"");
		if (stat(r->root, &sb) != 0 || !S_ISDIR(sb.st_mode))
			return tw_conf_fail(c, tw_conf_map_get(c, node, "root"), NULL, "\"%s\" is not a directory", r->root);
	} else if (has_root) {
		return tw_conf_fail(c, node, NULL, "root belongs to handler: static (fallback_static tries files before a backend)");
	}
	if (r->fallback_static) {
		struct stat sb;
		int fnode = tw_conf_map_get(c, node, "fallback_static");
		if (r->handler != TW_HANDLER_PROXY)
			return tw_conf_fail(c, fnode, NULL, "fallback_static needs a backend to fall back to");
		if (stat(r->fallback_static, &sb) != 0 || !S_ISDIR(sb.st_mode))
			return tw_conf_fail(c, fnode, NULL, "\"%s\" is not a directory", r->fallback_static);
		r->root = r->fallback_static; /* static.c looks files up under root */
	}
	return 0;
}

static int find_host_node(struct cf_ctx *c, size_t site, size_t host)
{
	int s = tw_conf_seq_item(c, tw_conf_map_get(c, 1, "sites"), site);
	return tw_conf_seq_item(c, tw_conf_map_get(c, s, "hosts"), host);
}

static void set_path(struct cf_ctx *c, const char *fmt, size_t a, size_t b)
{
	int n = snprintf(c->path, sizeof c->path, fmt, a, b);
	c->plen = n < 0 ? 0 : (size_t)n < sizeof c->path ? (size_t)n : sizeof c->path - 1;
}

struct host_ref { /* also used for backends: site = backend index */
	const char *name;
	size_t site, idx;
};

static int cmp_pos(const struct host_ref *a, const struct host_ref *b)
{
	if (a->site != b->site)
		return a->site < b->site ? -1 : 1;
	return a->idx < b->idx ? -1 : a->idx > b->idx;
}

static int cmp_host(const void *pa, const void *pb)
{
	const struct host_ref *a = pa, *b = pb;
	int r = strcmp(a->name, b->name);
	return r ? r : cmp_pos(a, b);
}

/* One "*" site at most; every host in one place only. Sorting keeps this
 * O(n log n); the reported duplicate is the first one in document order. */
static int check_hosts(struct cf_ctx *c, struct tw_config *cfg)
{
	size_t n = 0, k = 0;
	for (size_t i = 0; i < cfg->nsites; i++)
		n += cfg->sites[i].nhosts;
	struct host_ref *refs = tw_arena_alloc(c->arena, (n ? n : 1) * sizeof *refs);
	if (refs == NULL)
		return TW_ENOMEM;
	for (size_t i = 0; i < cfg->nsites; i++)
		for (size_t j = 0; j < cfg->sites[i].nhosts; j++)
			refs[k++] = (struct host_ref){cfg->sites[i].hosts[j], i, j};
	qsort(refs, n, sizeof *refs, cmp_host);
	const struct host_ref *dup = NULL, *first = NULL;
	for (size_t i = 1; i < n; i++) {
		if (strcmp(refs[i].name, refs[i - 1].name) != 0)
			continue;
		size_t g = i - 1; /* refs[g] is the group's first occurrence */
		while (g > 0 && strcmp(refs[g - 1].name, refs[i].name) == 0)
			g--;
		if (dup == NULL || cmp_pos(&refs[i], dup) < 0) {
			dup = &refs[i];
			first = &refs[g];
		}
	}
	cfg->default_site = SIZE_MAX;
	for (size_t i = 0; i < n; i++)
		if (strcmp(refs[i].name, "*") == 0 && cfg->default_site == SIZE_MAX)
			cfg->default_site = refs[i].site; /* sorted: the first "*" */
	if (dup == NULL)
		return 0;
	set_path(c, "sites[%zu].hosts[%zu]", dup->site, dup->idx);
	int hn = find_host_node(c, dup->site, dup->idx);
	if (strcmp(dup->name, "*") == 0 && dup->site != first->site)
		return tw_conf_fail(c, hn, NULL,
		                    "more than one default site \"*\" (first is sites[%zu])",
		                    first->site);
	return tw_conf_fail(c, hn, NULL, "host \"%s\" already appears in sites[%zu].hosts[%zu]",
	                    dup->name, first->site, first->idx);
}

static int cmp_name(const void *pa, const void *pb)
{
	return strcmp(((const struct host_ref *)pa)->name, ((const struct host_ref *)pb)->name);
}

/* Resolve every route's backend name to an index (sorted names + bsearch). */
static int resolve_routes(struct cf_ctx *c, struct tw_config *cfg)
{
	size_t nb = cfg->nbackends;
	struct host_ref *order = tw_arena_alloc(c->arena, (nb ? nb : 1) * sizeof *order);
	if (order == NULL)
		return TW_ENOMEM;
	for (size_t b = 0; b < nb; b++)
		order[b] = (struct host_ref){cfg->backends[b].name, b, 0};
	qsort(order, nb, sizeof *order, cmp_name);
	for (size_t i = 0; i < cfg->nsites; i++) {
		struct tw_conf_site *s = &cfg->sites[i];
		for (size_t j = 0; j < s->nroutes; j++) {
			struct tw_conf_route *r = &s->routes[j];
			if (r->handler != TW_HANDLER_PROXY)
				continue;
			size_t lo = 0, hi = nb;
			while (lo < hi) {
				size_t mid = lo + (hi - lo) / 2;
				int d = strcmp(order[mid].name, r->backend_name);
				if (d == 0) {
					lo = mid;
					break;
				}
				if (d < 0)
					lo = mid + 1;
				else
					hi = mid;
			}
			if (lo < nb && strcmp(order[lo].name, r->backend_name) == 0) {
				r->backend = order[lo].site;
				continue;
			}
			const char *names[256];
			size_t nn = 0;
			for (size_t b = 0; b < nb && nn < 256; b++)
				names[nn++] = cfg->backends[b].name;
			int sn = tw_conf_seq_item(c, tw_conf_map_get(c, 1, "sites"), i);
			int rn = tw_conf_seq_item(c, tw_conf_map_get(c, sn, "routes"), j);
			int vn = tw_conf_map_get(c, rn, "backend");
			set_path(c, "sites[%zu].routes[%zu].backend", i, j);
			const char *sug = tw_conf_suggest(r->backend_name, names, nn);
			if (sug)
				return tw_conf_fail(c, vn, NULL,
				                    "unknown backend \"%s\" (did you mean %s?)",
				                    r->backend_name, sug);
			return tw_conf_fail(c, vn, NULL, "unknown backend \"%s\"%s",
			                    r->backend_name,
			                    nb ? "" : " (no backends are defined)");
		}
	}
	return 0;
}

static int resolve_k8s(struct cf_ctx *c, struct tw_config *cfg);

static int check_root(struct cf_ctx *c, int node, void *obj)
{
	struct tw_config *cfg = obj;
	if (cfg->nsites == 0 && !cfg->has_k8s) {
		int sn = tw_conf_map_get(c, node, "sites");
		c->plen = 0;
		c->path[0] = '\0';
		if (sn > 0)
			return tw_conf_fail(c, sn, "sites", "must have at least 1 item");
		return tw_conf_fail(c, node, NULL, "missing required key \"sites\" (or a kubernetes: section)");
	}
	int rc = check_hosts(c, cfg);
	if (rc == 0)
		rc = resolve_routes(c, cfg);
	if (rc == 0)
		rc = resolve_tls(c, cfg);
	if (rc == 0)
		rc = resolve_k8s(c, cfg);
	if (rc == 0)
		rc = tw_conf_resolve_rate_limits(c, cfg);
	if (rc == 0) {
		c->plen = 0;
		c->path[0] = '\0';
	}
	return rc;
}

/* ---- the tables --------------------------------------------------------- */

static const struct cf_enum balance_enum[] = {{"round_robin", TW_BAL_ROUND_ROBIN},
                                              {"least_conn", TW_BAL_LEAST_CONN},
                                              {"random_two", TW_BAL_RANDOM_TWO},
                                              {"hash", TW_BAL_HASH},
                                              {NULL, 0}};
static const struct cf_enum match_enum[] = {
    {"prefix", TW_MATCH_PREFIX}, {"exact", TW_MATCH_EXACT}, {NULL, 0}};
static const struct cf_enum handler_enum[] = {
    {"welcome", TW_HANDLER_WELCOME}, {"static", TW_HANDLER_STATIC}, {NULL, 0}};
static const struct cf_enum panic_enum[] = {{"on", TW_PANIC_ON}, {"off", TW_PANIC_OFF}, {NULL, 0}};
static const struct cf_enum reqbuf_enum[] = {{"on", TW_REQBUF_ON}, {"off", TW_REQBUF_OFF}, {NULL, 0}};
static const struct cf_enum level_enum[] = {{"error", TW_LOG_ERROR},
                                            {"warn", TW_LOG_WARN},
                                            {"info", TW_LOG_INFO},
                                            {"debug", TW_LOG_DEBUG},
                                            {NULL, 0}};
static const struct cf_enum logfmt_enum[] = {
    {"combined", TW_LOGFMT_COMBINED}, {"json", TW_LOGFMT_JSON}, {NULL, 0}};

#define S struct tw_conf_server
static const struct cf_field server_fields[] = {
    {.name = "address",
     .kind = CF_ADDR,
     FLD(S, addr),
     .flags = CF_REQUIRED,
     .doc = "Where the server listens: `host:port`, `[v6]:port`; names are resolved at load."},
    {.name = "weight",
     .kind = CF_UINT,
     FLD(S, weight),
     .min = 1,
     .max = 256,
     .def = "1",
     .doc = "Relative share of requests (all algorithms honour it)."},
    {.name = "max_conns",
     .kind = CF_UINT,
     FLD(S, max_conns),
     .max = 1000000,
     .def = "0",
     .doc = "Concurrent requests per worker thread; 0 = unlimited. Excess requests wait in the "
            "backend's queue."},
    {.name = "send_proxy",
     .kind = CF_ENUM,
     FLD(S, send_proxy),
     .enums = tw_conf_send_proxy_enum,
     .def = "off",
     .doc = "Start each connection to this server with a PROXY protocol header (`v1` text, `v2` "
            "binary) carrying the client's address; such connections serve one client connection "
            "each (docs/proxy-protocol.md)."},
    END};
#undef S
static const struct cf_schema server_schema = {
    .name = "backends.NAME.servers[]",
    .fields = server_fields,
    .scalar_key = "address",
    .doc = "A server is either an address (`127.0.0.1:3000`) or a mapping with `address:` and "
           "options."};

#define H struct tw_conf_health
static const struct cf_field health_fields[] = {
    {.name = "path",
     .kind = CF_CUSTOM,
     FLD(H, path),
     .parse = parse_path,
     .type_name = "path",
     .def = "/healthz",
     .doc = "Path requested with GET."},
    {.name = "host",
     .kind = CF_STRING,
     FLD(H, host),
     .doc = "Host header sent with the check; absent = the server's address."},
    {.name = "interval",
     .kind = CF_DURATION,
     FLD(H, interval_ms),
     .min = 100,
     .max = 86400000,
     .def = "2s",
     .doc = "Time between two checks of one server."},
    {.name = "timeout",
     .kind = CF_DURATION,
     FLD(H, timeout_ms),
     .min = 10,
     .max = 3600000,
     .def = "1s",
     .doc = "A check that takes longer fails."},
    {.name = "rise",
     .kind = CF_UINT,
     FLD(H, rise),
     .min = 1,
     .max = 100,
     .def = "2",
     .doc = "Consecutive successes that bring a down server up."},
    {.name = "fall",
     .kind = CF_UINT,
     FLD(H, fall),
     .min = 1,
     .max = 100,
     .def = "3",
     .doc = "Consecutive failures that take an up server down."},
    {.name = "expect",
     .kind = CF_CUSTOM,
     .off = 0,
     .width = sizeof(H),
     .parse = parse_expect,
     .type_name = "status range",
     .def = "200-399",
     .doc = "Healthy response statuses: `LOW-HIGH` or one status."},
    END};
#undef H
static const struct cf_schema health_schema = {
    .name = "backends.NAME.health",
    .fields = health_fields,
    .doc = "Active health checks. Without `health:` servers are always considered up "
           "(passive ejection still applies)."};

#define B struct tw_conf_backend
static const struct cf_field server_elem = {
    .kind = CF_STRUCT, .width = sizeof(struct tw_conf_server), .schema = &server_schema};
static const struct cf_field backend_fields[] = {
    {.name = "servers",
     .kind = CF_LIST,
     FLD(B, servers),
     .count_off = offsetof(B, nservers),
     .flags = CF_REQUIRED,
     .min = 1,
     .max = 1024,
     .elem = &server_elem,
     .doc = "The upstream servers (at least one)."},
    {.name = "balance",
     .kind = CF_ENUM,
     FLD(B, balance),
     .enums = balance_enum,
     .def = "round_robin",
     .doc = "Load-balancing algorithm."},
    {.name = "hash_key",
     .kind = CF_CUSTOM,
     .off = 0,
     .width = sizeof(B),
     .parse = parse_hash_key,
     .type_name = "hash key",
     .def = "client_ip",
     .doc = "What `balance: hash` hashes: `client_ip`, `uri`, `header:NAME` or `cookie:NAME`. "
            "Ignored by the other algorithms."},
    {.name = "health",
     .kind = CF_STRUCT,
     .off = offsetof(B, health),
     .width = sizeof(struct tw_conf_health),
     .flags = CF_PRESENT | CF_OPTIONAL,
     .present_off = offsetof(B, health.enabled),
     .schema = &health_schema,
     .doc = "Active health checks (see below)."},
    {.name = "retries",
     .kind = CF_UINT,
     FLD(B, retries),
     .max = 10,
     .def = "2",
     .doc = "Extra tries on other servers after a failed attempt."},
    {.name = "connect_timeout",
     .kind = CF_DURATION,
     FLD(B, connect_timeout_ms),
     .min = 1,
     .max = 3600000,
     .def = "5s",
     .doc = "Time allowed to connect to a server."},
    {.name = "response_timeout",
     .kind = CF_DURATION,
     FLD(B, response_timeout_ms),
     .min = 1,
     .max = 86400000,
     .def = "60s",
     .doc = "Time allowed until the first byte of the response."},
    {.name = "idle_timeout",
     .kind = CF_DURATION,
     FLD(B, idle_timeout_ms),
     .min = 1,
     .max = 86400000,
     .def = "30s",
     .doc = "How long a pooled upstream keep-alive connection may stay idle."},
    {.name = "max_idle",
     .kind = CF_UINT,
     FLD(B, max_idle),
     .flags = CF_PRESENT,
     .present_off = offsetof(B, has_max_idle),
     .max = 100000,
     .doc = "A fixed number of pooled idle connections per server per worker, instead of the "
            "self-sizing pool (see `idle_ceiling`); 0 disables pooling."},
    {.name = "idle_ceiling",
     .kind = CF_UINT,
     FLD(B, idle_ceiling),
     .min = 1,
     .max = 100000,
     .def = "1024",
     .doc = "Most idle connections the self-sizing pool keeps per server per worker. Without "
            "`max_idle` the pool keeps as many as the recent peak of concurrent requests to the "
            "server needed (decaying by 1/8 a second after a burst), bounded by this ceiling "
            "and by the server's own `Keep-Alive: timeout=`."},
    {.name = "queue_size",
     .kind = CF_UINT,
     FLD(B, queue_size),
     .max = 1000000,
     .def = "128",
     .doc = "Requests that may wait when every server is at `max_conns`; more get 503."},
    {.name = "queue_timeout",
     .kind = CF_DURATION,
     FLD(B, queue_timeout_ms),
     .min = 1,
     .max = 3600000,
     .def = "5s",
     .doc = "How long a request may wait in the queue before 503."},
    {.name = "passive_fails",
     .kind = CF_UINT,
     FLD(B, passive_fails),
     .max = 1000,
     .def = "3",
     .doc = "Consecutive failures of live traffic that eject a server; 0 = never."},
    {.name = "passive_eject",
     .kind = CF_DURATION,
     FLD(B, passive_eject_ms),
     .min = 1,
     .max = 86400000,
     .def = "10s",
     .doc = "How long an ejected server stays out."},
    {.name = "panic",
     .kind = CF_ENUM,
     FLD(B, panic),
     .enums = panic_enum,
     .def = "on",
     .doc = "`on`: when every server is down (active checks) or ejected (passive), balance "
            "over all of them rather than answer 503 (Envoy's panic threshold at 100 %); "
            "logged once when it starts and once when it ends. `off`: answer 503."},
    END};
#undef B
static const struct cf_schema backend_schema = {
    .name = "backends.NAME",
    .fields = backend_fields,
    .has_key = 1,
    .key_off = offsetof(struct tw_conf_backend, name),
    .doc = "A named group of upstream servers. Backends no route uses are allowed."};

#define R struct tw_conf_route
static const struct cf_field route_fields[] = {
    {.name = "path",
     .kind = CF_CUSTOM,
     FLD(R, path),
     .parse = parse_path,
     .type_name = "path",
     .flags = CF_REQUIRED,
     .doc = "Request path this route matches; starts with `/`."},
    {.name = "match",
     .kind = CF_ENUM,
     FLD(R, match),
     .enums = match_enum,
     .def = "prefix",
     .doc = "`prefix` matches whole path segments (`/api` matches `/api/x`, not `/apix`); "
            "`exact` the path only."},
    {.name = "backend",
     .kind = CF_STRING,
     FLD(R, backend_name),
     .doc = "Name of the backend that serves the route (one of `backend` or `handler`)."},
    {.name = "handler",
     .kind = CF_ENUM,
     FLD(R, handler),
     .enums = handler_enum,
     .doc = "A built-in handler instead of a backend: `welcome` (tapwork's welcome page), `static` "
            "(files under `root`, docs/static.md)."},
    {.name = "root",
     .kind = CF_STRING,
     FLD(R, root),
     .doc = "`handler: static`: the directory served (must exist). Nothing outside it is reachable: "
            "no `..`, no symbolic link leading out."},
    {.name = "fallback_static",
     .kind = CF_STRING,
     FLD(R, fallback_static),
     .doc = "A proxy route: a GET or HEAD whose path names a file under this directory is answered with "
            "the file (as `handler: static` would, `precompressed`/`immutable` apply), anything else goes "
            "to the backend (nginx `try_files $uri @app`)."},
    {.name = "precompressed",
     .kind = CF_LIST,
     FLD(R, precompressed),
     .count_off = offsetof(R, nprecompressed),
     .max = 3,
     .elem = &tw_conf_coding_elem,
     .doc = "`handler: static`: codings whose variants (`FILE.zst`, `FILE.br`, `FILE.gz`) are served when "
            "the client accepts them, in this order of preference."},
    {.name = "immutable",
     .kind = CF_BOOL,
     FLD(R, immutable),
     .def = "false",
     .doc = "`handler: static`: files never change under their name (hashed asset names): "
            "`Cache-Control: public, max-age=31536000, immutable`."},
    {.name = "index",
     .kind = CF_STRING,
     FLD(R, index),
     .def = "index.html",
     .doc = "`handler: static`: the file served for a directory."},
    {.name = "allow_hidden",
     .kind = CF_BOOL,
     FLD(R, allow_hidden),
     .def = "false",
     .doc = "`handler: static`: serve names starting with `.` (refused with 404 by default; `..` always is)."},
    {.name = "compression",
     .kind = CF_NODE,
     FLD(R, compress),
     .parse_node = tw_conf_parse_compress,
     .type_name = "`off` \\| mapping",
     .doc = "Response compression for this route: `off`, or a block like the top-level `compression` "
            "(replacing the site's)."},
    {.name = "rate_limit",
     .kind = CF_STRING,
     FLD(R, rate_limit_name),
     .doc = "Name of a `rate_limits` policy applied to each request of this route "
            "(docs/rate-limits.md)."},
    {.name = "request_buffering",
     .kind = CF_ENUM,
     FLD(R, request_buffering),
     .enums = reqbuf_enum,
     .def = "on",
     .doc = "`on`: the request body is read (up to `limits.body_buffer`, or whole when "
            "smaller) before an upstream connection is taken, so slow uploads hold no "
            "upstream connection. `off`: the upstream is connected as soon as the head "
            "arrives and the body streams through (uploads that need it live)."},
    END};
#undef R
static const struct cf_schema route_schema = {
    .name = "sites[].routes[]",
    .fields = route_fields,
    .check = check_route,
    .doc = "A route sends matching requests to a backend or a built-in handler. "
           "The longest matching path wins; on a tie `exact` beats `prefix`."};

#define SI struct tw_conf_site
static const struct cf_field host_elem = {
    .kind = CF_CUSTOM, .width = sizeof(char *), .parse = parse_host, .type_name = "host name"};
static const struct cf_field route_elem = {
    .kind = CF_STRUCT, .width = sizeof(struct tw_conf_route), .schema = &route_schema};
static const struct cf_field site_fields[] = {
    {.name = "hosts",
     .kind = CF_LIST,
     FLD(SI, hosts),
     .count_off = offsetof(SI, nhosts),
     .flags = CF_REQUIRED,
     .min = 1,
     .max = 1024,
     .elem = &host_elem,
     .doc = "Host names served (lower-cased): `example.com`, `*.example.com` (exactly one more "
            "label), "
            "or `\"*\"` for the default site (one at most). A host belongs to one site only."},
    {.name = "routes",
     .kind = CF_LIST,
     FLD(SI, routes),
     .count_off = offsetof(SI, nroutes),
     .flags = CF_REQUIRED,
     .min = 1,
     .max = 4096,
     .elem = &route_elem,
     .doc = "The site's routes."},
    {.name = "tls",
     .kind = CF_NODE,
     .off = 0,
     .width = sizeof(SI),
     .parse_node = parse_site_tls,
     .schema = &certpair_schema,
     .type_name = "`internal` \\| `off` \\| `acme` \\| mapping \\| list of mappings",
     .doc = "HTTPS for this site: `internal` (certificate from tapwork's local CA), `acme` "
            "(public CA; until the ACME client lands, a temporary local-CA certificate), `off`, "
            "or `{cert: FILE, key: FILE}` / a list of such pairs. Absent: with `listen.https`, "
            "`internal` when every host is internal (`localhost`, `*.localhost`, `*.test`, "
            "`*.internal`, IP addresses, `\"*\"`), else `acme`; without it, `off`."},
    {.name = "compression",
     .kind = CF_NODE,
     FLD(SI, compress),
     .parse_node = tw_conf_parse_compress,
     .type_name = "`off` \\| mapping",
     .doc = "Response compression for this site: `off`, or a block like the top-level `compression` "
            "(replacing it)."},
    END};
#undef SI
static const struct cf_schema site_schema = {
    .name = "sites[]",
    .fields = site_fields,
    .doc = "A virtual host: which Host names it answers and its routes."};

#define C struct tw_config
static const struct cf_field listen_fields[] = {
    {.name = "http",
     .kind = CF_ADDR,
     FLD(C, listen_http),
     .flags = CF_PRESENT,
     .present_off = offsetof(C, has_http),
     .doc = "Plain HTTP listener address, e.g. `127.0.0.1:8080` or `:80`."},
    {.name = "https",
     .kind = CF_ADDR,
     FLD(C, listen_https),
     .flags = CF_PRESENT,
     .present_off = offsetof(C, has_https),
     .doc = "HTTPS listener address, e.g. `127.0.0.1:8443` or `:443`; sites get TLS by "
            "`sites[].tls`."},
    END};
static const struct cf_schema listen_schema = {
    .name = "listen",
    .fields = listen_fields,
    .check = check_listen,
    .doc = "Where tapwork accepts client connections. At least one "
           "listener is required."};

static const struct cf_field admin_fields[] = {
    {.name = "listen",
     .kind = CF_ADDR,
     FLD(C, admin_listen),
     .flags = CF_REQUIRED,
     .doc = "Address of the admin endpoint (`/healthz`, `/readyz`, `/metrics`). Keep it private."},
    END};
static const struct cf_schema admin_schema = {
    .name = "admin",
    .fields = admin_fields,
    .doc = "The admin HTTP endpoint; absent = no admin listener."};

#define L struct tw_conf_limits
static const struct cf_field limits_fields[] = {
    {.name = "max_header_bytes",
     .kind = CF_SIZE,
     FLD(L, max_header_bytes),
     .min = 1024,
     .max = 1u << 20,
     .def = "32KiB",
     .doc = "Request line plus headers; more is answered 431."},
    {.name = "max_headers",
     .kind = CF_UINT,
     FLD(L, max_headers),
     .min = 1,
     .max = 10000,
     .def = "100",
     .doc = "Number of request header fields; more is answered 431."},
    {.name = "max_uri",
     .kind = CF_SIZE,
     FLD(L, max_uri),
     .min = 64,
     .max = 1u << 20,
     .def = "8KiB",
     .doc = "Length of the request target; longer is answered 414."},
    {.name = "max_body",
     .kind = CF_SIZE,
     FLD(L, max_body),
     .def = "0",
     .doc = "Request body size; larger is answered 413. 0 = unlimited."},
    {.name = "body_buffer",
     .kind = CF_SIZE,
     FLD(L, body_buffer),
     .max = 64u << 10,
     .def = "16KiB",
     .doc = "With `request_buffering: on`, body bytes held in memory before an upstream "
            "connection is taken; a larger body streams from there on. Each upload waiting "
            "for its body holds at most this much (plus its head)."},
    {.name = "min_body_rate",
     .kind = CF_SIZE,
     FLD(L, min_body_rate),
     .max = 1u << 30,
     .def = "500",
     .doc = "Bytes per second a request body must average once `timeouts.body_rate_grace` "
            "has passed (the allowance grows by one second per this many bytes received, as "
            "Apache's mod_reqtimeout `MinRate`); a slower client gets 408 and is closed "
            "(`tapwork_slow_bodies_total`). 0 = no rate, only `timeouts.client_body`."},
    END};
#undef L
static const struct cf_schema limits_schema = {
    .name = "limits", .fields = limits_fields, .doc = "Caps on what a client may send."};

#define TM struct tw_conf_timeouts
static const struct cf_field timeouts_fields[] = {
    {.name = "client_header",
     .kind = CF_DURATION,
     FLD(TM, client_header_ms),
     .min = 1,
     .max = 3600000,
     .def = "10s",
     .doc = "Time to receive the request line and headers; then 408. It starts when the "
            "connection is accepted: listeners accept a connection once its first bytes "
            "arrive, or about 1 s after the connect if none do (TCP_DEFER_ACCEPT)."},
    {.name = "client_body",
     .kind = CF_DURATION,
     FLD(TM, client_body_ms),
     .min = 1,
     .max = 86400000,
     .def = "60s",
     .doc = "Longest idle gap between two reads of a request body; then 408."},
    {.name = "body_rate_grace",
     .kind = CF_DURATION,
     FLD(TM, body_rate_grace_ms),
     .max = 86400000,
     .def = "20s",
     .doc = "Time a request body may take before `limits.min_body_rate` applies."},
    {.name = "keepalive",
     .kind = CF_DURATION,
     FLD(TM, keepalive_ms),
     .max = 86400000,
     .def = "75s",
     .doc = "How long an idle client keep-alive connection stays open; 0 disables keep-alive."},
    {.name = "drain",
     .kind = CF_DURATION,
     FLD(TM, drain_ms),
     .max = 86400000,
     .def = "30s",
     .doc = "On SIGTERM, how long requests in flight may finish."},
    END};
#undef TM
static const struct cf_schema timeouts_schema = {
    .name = "timeouts", .fields = timeouts_fields, .doc = "Client-side timeouts."};

#define LG struct tw_conf_log
static const struct cf_field log_fields[] = {
    {.name = "level",
     .kind = CF_ENUM,
     FLD(LG, level),
     .enums = level_enum,
     .def = "info",
     .doc = "Error log verbosity (the error log goes to stderr)."},
    {.name = "access",
     .kind = CF_STRING,
     FLD(LG, access),
     .def = "stdout",
     .doc = "Access log: `stdout`, `off`, or a file path (opened for append)."},
    {.name = "format",
     .kind = CF_ENUM,
     FLD(LG, format),
     .enums = logfmt_enum,
     .def = "combined",
     .doc = "Access log format: `combined` (Apache/nginx style) or `json` (one object per line)."},
    {.name = "rate",
     .kind = CF_UINT,
     FLD(LG, rate),
     .max = 1000000,
     .def = "10",
     .doc = "Per-event error-log lines (a request answered with an error, an upstream failure, "
            "a client gone) written per second of each kind; the rest are counted and summarised "
            "as `... and N more like this in the last second (KIND)` "
            "(`tapwork_log_lines_suppressed_total`). 0 = write every line."},
    END};
#undef LG
static const struct cf_schema log_schema = {.name = "log", .fields = log_fields, .doc = "Logging."};

static const struct cf_enum profile_enum[] = {{"intermediate", TW_TLS_PROFILE_INTERMEDIATE},
                                              {"modern", TW_TLS_PROFILE_MODERN},
                                              {NULL, 0}};

#define HS struct tw_conf_hsts
static const struct cf_field hsts_fields[] = {
    {.name = "max_age",
     .kind = CF_CUSTOM,
     FLD(HS, max_age_s),
     .parse = parse_age,
     .type_name = "duration (also `Ny` years)",
     .def = "1y",
     .doc = "`max-age` of Strict-Transport-Security, at most 10y; 0 tells browsers to forget."},
    {.name = "include_subdomains",
     .kind = CF_BOOL,
     FLD(HS, include_subdomains),
     .def = "false",
     .doc = "Add `includeSubDomains`."},
    {.name = "preload",
     .kind = CF_BOOL,
     FLD(HS, preload),
     .def = "false",
     .doc = "Add `preload` (only if you mean to submit the domain to the preload list)."},
    END};
#undef HS
static const struct cf_schema hsts_schema = {
    .name = "tls.hsts",
    .fields = hsts_fields,
    .doc = "The Strict-Transport-Security header sent on HTTPS answers of sites with a public "
           "name (and of internal-only sites when `tls.hsts_internal` is true)."};

#define TL struct tw_conf_tls
static const struct cf_field tls_fields[] = {
    {.name = "profile",
     .kind = CF_ENUM,
     FLD(TL, profile),
     .enums = profile_enum,
     .def = "intermediate",
     .doc = "`intermediate` (Mozilla's: TLS 1.2 and 1.3, ECDHE with AES-GCM/ChaCha20 for 1.2) "
            "or `modern` (TLS 1.3 only)."},
    {.name = "default_host",
     .kind = CF_CUSTOM,
     FLD(TL, default_host),
     .parse = parse_host,
     .type_name = "host name",
     .doc = "Whose certificate a client without SNI or with an unknown name gets; absent = the "
            "default site's (`\"*\"`) first certificate, else the first TLS site's."},
    {.name = "ticket_key_rotation",
     .kind = CF_DURATION,
     FLD(TL, ticket_key_rotation_ms),
     .min = 60000,
     .max = 604800000,
     .def = "12h",
     .doc = "How often the session ticket key changes; tickets under the previous key still "
            "resume."},
    {.name = "hsts",
     .kind = CF_STRUCT,
     .off = offsetof(TL, hsts),
     .schema = &hsts_schema,
     .doc = "Strict-Transport-Security (see below)."},
    {.name = "hsts_internal",
     .kind = CF_BOOL,
     FLD(TL, hsts_internal),
     .def = "false",
     .doc = "Send HSTS for sites whose names are all internal too."},
    {.name = "redirect_http",
     .kind = CF_BOOL,
     FLD(TL, redirect_http),
     .def = "true",
     .doc = "The HTTP listener answers `308` to the same URL on HTTPS for sites with TLS."},
    END};
#undef TL
static const struct cf_schema tls_schema = {
    .name = "tls",
    .fields = tls_fields,
    .doc = "TLS settings shared by every HTTPS site. See docs/tls.md."};

/* ---- acme: ---------------------------------------------------------------- */

static const char *const acme_challenge_names[] = {"http-01", "tls-alpn-01", "dns-01", NULL};

static int parse_acme_challenge(struct cf_ctx *c, const struct cf_field *f, const char *text,
                                void *dst, char *why, size_t wl)
{
	for (size_t i = 0; acme_challenge_names[i]; i++)
		if (strcmp(text, acme_challenge_names[i]) == 0) {
			char *s = tw_arena_strdup(c->arena, text);
			if (s == NULL)
				return TW_ENOMEM;
			memcpy(dst, &s, sizeof s);
			return 0;
		}
	snprintf(why, wl, "unknown challenge \"%s\" (one of: http-01, tls-alpn-01, dns-01)", text);
	return TW_EINVAL;
}

static int parse_https_url(struct cf_ctx *c, const struct cf_field *f, const char *text, void *dst,
                           char *why, size_t wl)
{
	if (strncmp(text, "https://", 8) != 0 || text[8] == '\0' || strlen(text) > 2048) {
		snprintf(why, wl, "expected an https:// URL, got \"%s\"", text);
		return TW_EINVAL;
	}
	char *s = tw_arena_strdup(c->arena, text);
	if (s == NULL)
		return TW_ENOMEM;
	memcpy(dst, &s, sizeof s);
	return 0;
}

/* ---- backup: jobs ------------------------------------------------------- */

static int parse_schedule(struct cf_ctx *c, const struct cf_field *f, const char *text, void *dst,
                          char *why, size_t wl)
{
	struct tw_sched sc;
	if (tw_sched_parse(text, &sc, why, wl) != 0)
		return TW_EINVAL;
	char *s = tw_arena_strdup(c->arena, text);
	if (s == NULL)
		return TW_ENOMEM;
	memcpy(dst, &s, sizeof s);
	return 0;
}

static int check_acme(struct cf_ctx *c, int node, void *obj)
{
	struct tw_conf_acme *a = obj;
	for (size_t i = 0; i < a->nchallenges; i++)
		if (strcmp(a->challenges[i], "dns-01") == 0 && a->dns_hook == NULL)
			return tw_conf_fail(c, tw_conf_map_get(c, node, "challenges"), NULL,
			                    "dns-01 needs `dns_hook`");
	return 0;
}

#define AC struct tw_conf_acme
static const struct cf_field eab_fields[] = {
    {.name = "kid",
     .kind = CF_STRING,
     FLD(AC, eab_kid),
     .flags = CF_REQUIRED,
     .doc = "Key identifier given by the CA."},
    {.name = "hmac_key",
     .kind = CF_STRING,
     FLD(AC, eab_hmac_key),
     .flags = CF_REQUIRED,
     .doc = "The CA's HMAC key, base64url as the CA gives it. A secret: never logged."},
    END};
static const struct cf_schema eab_schema = {
    .name = "acme.eab",
    .fields = eab_fields,
    .doc = "External Account Binding, for CAs that require it (ZeroSSL, Google, private CAs)."};
static const struct cf_field acme_str_elem = {.kind = CF_STRING, .width = sizeof(char *)};
static const struct cf_field acme_chal_elem = {.kind = CF_CUSTOM,
                                               .width = sizeof(char *),
                                               .parse = parse_acme_challenge,
                                               .type_name = "challenge type"};
static const struct cf_field acme_fields[] = {
    {.name = "email",
     .kind = CF_STRING,
     FLD(AC, email),
     .doc = "Contact address registered with the account (expiry mail from the CA)."},
    {.name = "directory",
     .kind = CF_CUSTOM,
     FLD(AC, directory),
     .parse = parse_https_url,
     .type_name = "https URL",
     .def = "https://acme-v02.api.letsencrypt.org/directory",
     .doc = "The ACME directory URL of the CA."},
    {.name = "ca_roots",
     .kind = CF_LIST,
     FLD(AC, ca_roots),
     .count_off = offsetof(AC, nca_roots),
     .max = 64,
     .elem = &acme_str_elem,
     .doc = "PEM files of extra roots trusted for the CA's HTTPS (a private ACME server); the "
            "system roots stay trusted."},
    {.name = "challenges",
     .kind = CF_LIST,
     FLD(AC, challenges),
     .count_off = offsetof(AC, nchallenges),
     .max = 3,
     .elem = &acme_chal_elem,
     .doc = "Challenge types tried in this order: `http-01`, `tls-alpn-01`, `dns-01` (dns-01 "
            "needs `dns_hook`; wildcard names need dns-01). Empty = `[http-01, tls-alpn-01]`."},
    {.name = "dns_hook",
     .kind = CF_STRING,
     FLD(AC, dns_hook),
     .doc = "Program run for dns-01 as `HOOK set _acme-challenge.NAME VALUE` (and `clear` after); exit 0 = "
            "done."},
    {.name = "eab",
     .kind = CF_STRUCT,
     .off = 0,
     .flags = CF_PRESENT | CF_OPTIONAL,
     .present_off = offsetof(AC, has_eab),
     .schema = &eab_schema,
     .doc = "External Account Binding (see below)."},
    {.name = "profile",
     .kind = CF_STRING,
     FLD(AC, profile),
     .doc = "ACME certificate profile asked for in new orders (kept across renewals)."},
    {.name = "retry_min",
     .kind = CF_DURATION,
     FLD(AC, retry_min_ms),
     .min = 1000,
     .max = 21600000,
     .def = "1m",
     .doc = "Delay before the first retry after a failed issuance; doubled per further failure up to "
            "6h (a longer server Retry-After wins)."},
    {.name = "store",
     .kind = CF_STRING,
     FLD(AC, store),
     .doc = "Where accounts, certificates and issuance locks live: absent = `state_dir`; "
            "`s3:http[s]://HOST[:PORT]/BUCKET/PREFIX` shares them between replicas (each "
            "certificate is ordered once; S3 credentials as for backups); another string = a "
            "directory."},
    END};
#undef AC
static const struct cf_schema acme_schema = {
    .name = "acme",
    .fields = acme_fields,
    .check = check_acme,
    .doc = "The built-in ACME client (Let's Encrypt or any RFC 8555 CA)."};

/* ---- kubernetes: ------------------------------------------------------------ */

/* "namespace/name", both DNS-1123 labels/subdomains (lower case, digits, '-', '.') */
static int parse_ns_name(struct cf_ctx *c, const struct cf_field *f, const char *text, void *dst,
                         char *why, size_t wl)
{
	const char *slash = strchr(text, '/');
	size_t len = strlen(text);
	int ok = slash != NULL && slash != text && slash[1] != '\0' && strchr(slash + 1, '/') == NULL &&
	         len <= 253 + 1 + 253;
	for (const char *p = text; ok && *p; p++)
		if (p != slash && !((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '-' ||
		                    *p == '.'))
			ok = 0;
	if (!ok) {
		snprintf(why, wl, "expected \"namespace/name\" of a Service, got \"%s\"", text);
		return TW_EINVAL;
	}
	char *s = tw_arena_strdup(c->arena, text);
	if (s == NULL)
		return TW_ENOMEM;
	memcpy(dst, &s, sizeof s);
	return 0;
}

/* DNS-1123 label: a namespace */
static int parse_k8s_label(struct cf_ctx *c, const struct cf_field *f, const char *text, void *dst,
                           char *why, size_t wl)
{
	size_t len = strlen(text);
	int ok = len > 0 && len <= 63 && text[0] != '-' && text[len - 1] != '-';
	for (const char *p = text; ok && *p; p++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '-'))
			ok = 0;
	if (!ok) {
		snprintf(why, wl, "\"%s\" is not a Kubernetes namespace name (lower-case DNS label)", text);
		return TW_EINVAL;
	}
	char *s = tw_arena_strdup(c->arena, text);
	if (s == NULL)
		return TW_ENOMEM;
	memcpy(dst, &s, sizeof s);
	return 0;
}

/* DNS-1035 label: a Service name */
static int parse_k8s_service(struct cf_ctx *c, const struct cf_field *f, const char *text, void *dst,
                             char *why, size_t wl)
{
	if (!(text[0] >= 'a' && text[0] <= 'z') || parse_k8s_label(c, f, text, dst, why, wl) != 0) {
		snprintf(why, wl, "\"%s\" is not a Kubernetes Service name (lower-case DNS label starting with a letter)",
		         text);
		return TW_EINVAL;
	}
	return 0;
}

/* Cross-section: kubernetes.ingress.default_backend names a file backend. */
static int resolve_k8s(struct cf_ctx *c, struct tw_config *cfg)
{
	const char *db = cfg->k8s.ingress.default_backend;
	if (!cfg->has_k8s || db == NULL || tw_config_backend(cfg, db) != NULL)
		return 0;
	int kn = tw_conf_map_get(c, 1, "kubernetes");
	int vn = tw_conf_map_get(c, tw_conf_map_get(c, kn, "ingress"), "default_backend");
	snprintf(c->path, sizeof c->path, "kubernetes.ingress.default_backend");
	c->plen = strlen(c->path);
	const char *names[256];
	size_t nn = 0;
	for (size_t b = 0; b < cfg->nbackends && nn < 256; b++)
		names[nn++] = cfg->backends[b].name;
	const char *sug = tw_conf_suggest(db, names, nn);
	if (sug)
		return tw_conf_fail(c, vn, NULL,
		                    "unknown backend \"%s\" (did you mean %s?); default_backend names a "
		                    "backend of this file",
		                    db, sug);
	return tw_conf_fail(c, vn, NULL,
	                    "unknown backend \"%s\"; default_backend names a backend of this file's "
	                    "`backends:`",
	                    db);
}

#define K struct tw_conf_k8s
#define KI struct tw_conf_k8s_ingress
static const struct cf_field k8s_str_elem = {.kind = CF_STRING, .width = sizeof(char *)};
static const struct cf_field k8s_ns_elem = {.kind = CF_CUSTOM,
                                            .width = sizeof(char *),
                                            .parse = parse_k8s_label,
                                            .type_name = "namespace"};
static const struct cf_field k8s_api_fields[] = {
    {.name = "kubeconfig",
     .kind = CF_STRING,
     FLD(K, kubeconfig),
     .doc = "A kubeconfig file. Absent: `$KUBECONFIG` (its first file), else the in-cluster service "
            "account (token, `ca.crt` and namespace under "
            "/var/run/secrets/kubernetes.io/serviceaccount, `KUBERNETES_SERVICE_HOST`/`PORT`)."},
    {.name = "context",
     .kind = CF_STRING,
     FLD(K, context),
     .doc = "The kubeconfig context to use; absent = its `current-context`."},
    END};
static const struct cf_schema k8s_api_schema = {
    .name = "kubernetes.api",
    .fields = k8s_api_fields,
    .doc = "How to reach the Kubernetes API server. Tokens from files are re-read every 2 minutes "
           "and after any 401."};
static const struct cf_field k8s_ingress_fields[] = {
    {.name = "class",
     .kind = CF_STRING,
     FLD(KI, class_name),
     .def = "tapwork",
     .doc = "The IngressClass name whose Ingresses are served."},
    {.name = "controller",
     .kind = CF_STRING,
     FLD(KI, controller),
     .def = "tapwork.dev/ingress-controller",
     .doc = "The `spec.controller` value of IngressClasses that are ours."},
    {.name = "watch_without_class",
     .kind = CF_BOOL,
     FLD(KI, watch_without_class),
     .def = "false",
     .doc = "Also serve Ingresses that name no class (when no default IngressClass says otherwise)."},
    {.name = "namespaces",
     .kind = CF_LIST,
     FLD(KI, namespaces),
     .count_off = offsetof(KI, nnamespaces),
     .max = 128,
     .elem = &k8s_ns_elem,
     .doc = "Watch only these namespaces (Ingresses, Services, EndpointSlices, Secrets); empty = all."},
    {.name = "publish_service",
     .kind = CF_CUSTOM,
     FLD(KI, publish_service),
     .parse = parse_ns_name,
     .type_name = "`namespace/name`",
     .doc = "A Service (usually this controller's LoadBalancer) whose "
            "`status.loadBalancer.ingress` is copied to the status of the Ingresses served."},
    {.name = "publish_address",
     .kind = CF_LIST,
     FLD(KI, publish_address),
     .count_off = offsetof(KI, npublish_address),
     .max = 16,
     .elem = &k8s_str_elem,
     .doc = "Fixed IP addresses or host names written to the status of the Ingresses served (with "
            "`publish_service`, both are written). Neither: status is left alone."},
    {.name = "default_backend",
     .kind = CF_STRING,
     FLD(KI, default_backend),
     .doc = "A backend of this file's `backends:` for requests that no Ingress matches; absent = 404."},
    {.name = "external_name",
     .kind = CF_BOOL,
     FLD(KI, external_name),
     .def = "false",
     .doc = "Allow Ingresses to route to ExternalName Services (off: a cluster user could point "
            "traffic anywhere)."},
    END};
static const struct cf_schema k8s_ingress_schema = {
    .name = "kubernetes.ingress",
    .fields = k8s_ingress_fields,
    .doc = "Which Ingresses are ours and what their status says."};
#define KG struct tw_conf_k8s_gateway
static const struct cf_field k8s_gateway_fields[] = {
    {.name = "controller_name",
     .kind = CF_STRING,
     FLD(KG, controller_name),
     .def = "tapwork.dev/gateway-controller",
     .doc = "The `spec.controllerName` of GatewayClasses that are ours: their Gateways and the "
            "HTTPRoutes attached to them are served."},
    END};
#undef KG
static const struct cf_schema k8s_gateway_schema = {
    .name = "kubernetes.gateway",
    .fields = k8s_gateway_fields,
    .doc = "The Gateway API (gateway.networking.k8s.io: GatewayClass, Gateway, HTTPRoute, "
           "ReferenceGrant). Absent: those kinds are not watched."};
static const struct cf_field k8s_leader_fields[] = {
    {.name = "lease",
     .kind = CF_STRING,
     FLD(K, lease_name),
     .def = "tapwork-leader",
     .doc = "Name of the coordination.k8s.io/v1 Lease; the replica holding it writes Ingress status "
            "and Events (every replica serves traffic)."},
    {.name = "namespace",
     .kind = CF_CUSTOM,
     FLD(K, lease_namespace),
     .parse = parse_k8s_label,
     .type_name = "namespace",
     .doc = "Namespace of the Lease; absent = the pod's namespace in a cluster, else the "
            "kubeconfig context's, else `default`."},
    {.name = "duration",
     .kind = CF_DURATION,
     FLD(K, lease_duration_ms),
     .min = 2000,
     .max = 300000,
     .def = "15s",
     .doc = "Lease duration: the leader renews every third of it; another replica takes over when "
            "it has not changed for this long."},
    {.name = "identity",
     .kind = CF_STRING,
     FLD(K, identity),
     .doc = "This replica's name in the Lease; absent = `$POD_NAME`, else the host name."},
    END};
static const struct cf_schema k8s_leader_schema = {
    .name = "kubernetes.leader_election",
    .fields = k8s_leader_fields,
    .doc = "Leader election among the replicas (only for writes to the API)."};
static const struct cf_field k8s_self_fields[] = {
    {.name = "service",
     .kind = CF_CUSTOM,
     FLD(K, self_service),
     .parse = parse_k8s_service,
     .type_name = "Service name",
     .flags = CF_REQUIRED,
     .doc = "tapwork's own Service (the Helm chart's): its ready endpoints, watched through "
            "EndpointSlices, are N for every rate limit with `cluster: divide`."},
    {.name = "namespace",
     .kind = CF_CUSTOM,
     FLD(K, self_namespace),
     .parse = parse_k8s_label,
     .type_name = "namespace",
     .doc = "Namespace of that Service; absent = `$POD_NAMESPACE`, else the pod's namespace in a "
            "cluster, else the kubeconfig context's, else `default`."},
    END};
static const struct cf_schema k8s_self_schema = {
    .name = "kubernetes.replicas_from",
    .fields = k8s_self_fields,
    .doc = "Where `cluster: divide` rate limits take N from: the number of ready endpoints of "
           "tapwork's own Service, followed without a reload. Until the first list, with no ready "
           "endpoint, or without this section, each policy's `replicas` is N; when the API server "
           "is unreachable the last N stays."};
static const struct cf_field k8s_fields[] = {
    {.name = "api",
     .kind = CF_STRUCT,
     .off = 0,
     .schema = &k8s_api_schema,
     .doc = "The API server (see below)."},
    {.name = "ingress",
     .kind = CF_STRUCT,
     .off = offsetof(K, ingress),
     .flags = CF_PRESENT,
     .present_off = offsetof(K, has_ingress),
     .schema = &k8s_ingress_schema,
     .doc = "The Ingress controller (see below)."},
    {.name = "gateway",
     .kind = CF_STRUCT,
     .off = offsetof(K, gateway),
     .flags = CF_PRESENT,
     .present_off = offsetof(K, has_gateway),
     .schema = &k8s_gateway_schema,
     .doc = "The Gateway API controller (see below)."},
    {.name = "leader_election",
     .kind = CF_STRUCT,
     .off = 0,
     .schema = &k8s_leader_schema,
     .doc = "Leader election (see below)."},
    {.name = "replicas_from",
     .kind = CF_STRUCT,
     .off = 0,
     .schema = &k8s_self_schema,
     .doc = "N for rate limits with `cluster: divide` (see below)."},
    END};
#undef KI
#undef K
static const struct cf_schema k8s_schema = {
    .name = "kubernetes",
    .fields = k8s_fields,
    .doc = "Kubernetes mode: `tapwork run` watches the API server and serves the Ingresses of its "
           "class next to this file's sites, as new config generations. See docs/kubernetes.md."};

#define H2 struct tw_conf_http2
static const struct cf_field http2_fields[] = {
    {.name = "h2c",
     .kind = CF_BOOL,
     FLD(H2, h2c),
     .def = "true",
     .doc = "Accept cleartext HTTP/2 with prior knowledge on `http` listeners (a connection that "
            "starts with the HTTP/2 preface)."},
    {.name = "max_concurrent_streams",
     .kind = CF_UINT,
     FLD(H2, max_concurrent_streams),
     .min = 1,
     .max = 1000,
     .def = "128",
     .doc = "Streams a client may have open at once on one connection (SETTINGS_MAX_CONCURRENT_STREAMS)."},
    {.name = "idle_timeout",
     .kind = CF_DURATION,
     FLD(H2, idle_ms),
     .min = 1,
     .max = 86400000,
     .def = "120s",
     .doc = "An HTTP/2 connection with no open stream is closed (GOAWAY) after this."},
    {.name = "max_resets",
     .kind = CF_UINT,
     FLD(H2, max_resets),
     .min = 1,
     .max = 1000000,
     .def = "200",
     .doc = "RST_STREAM frames a client may send per 10 seconds; more is answered GOAWAY "
            "ENHANCE_YOUR_CALM (rapid reset, CVE-2023-44487)."},
    {.name = "max_control_frames",
     .kind = CF_UINT,
     FLD(H2, max_control),
     .min = 1,
     .max = 1000000,
     .def = "500",
     .doc = "SETTINGS and PING frames a client may send per 10 seconds; more is answered GOAWAY "
            "ENHANCE_YOUR_CALM."},
    {.name = "max_header_block",
     .kind = CF_SIZE,
     FLD(H2, max_header_block),
     .min = 1024,
     .max = 1u << 24,
     .def = "64KiB",
     .doc = "Compressed size of one header block (HEADERS plus CONTINUATION frames); more closes the "
            "connection (CONTINUATION flood). The decoded size is capped by `limits.max_header_bytes`."},
    END};
#undef H2
static const struct cf_schema http2_schema = {
    .name = "http2", .fields = http2_fields, .doc = "HTTP/2 from clients (see docs/internals/h2.md)."};
static int parse_percent(struct cf_ctx *c, const struct cf_field *f, const char *text, void *dst,
                         char *why, size_t wl)
{
	char num[16];
	size_t n = strlen(text);
	uint64_t v;
	if (n > 0 && text[n - 1] == '%')
		n--;
	if (n == 0 || n >= sizeof num)
		goto bad;
	memcpy(num, text, n);
	num[n] = '\0';
	if (tw_conf_parse_u64(num, &v) < 0 || v > 100)
		goto bad;
	unsigned u = (unsigned)v;
	memcpy(dst, &u, sizeof u);
	return 0;
bad:
	snprintf(why, wl, "expected a percentage 0%%..100%%, got \"%s\"", text);
	return TW_EINVAL;
}

static int check_pg_data(struct cf_ctx *c, int node, void *obj)
{
	struct tw_conf_pg_data *p = obj;
	if (p->dir[0] != '/')
		return tw_conf_fail(c, tw_conf_map_get(c, node, "dir"), "dir",
		                    "must be an absolute path (the PostgreSQL data directory)");
	if (p->archive_timeout_ms % 1000 != 0)
		return tw_conf_fail(c, tw_conf_map_get(c, node, "archive_timeout"),
		                    "archive_timeout", "must be whole seconds");
	return 0;
}

#define PD struct tw_conf_pg_data
static const struct cf_field pg_data_fields[] = {
    {.name = "dir",
     .kind = CF_STRING,
     FLD(PD, dir),
     .flags = CF_REQUIRED,
     .doc = "The cluster's data directory (PGDATA), absolute; tapwork must be able to read it "
            "(run as root or as the server's user)."},
    {.name = "postgres",
     .kind = CF_STRING,
     FLD(PD, postgres),
     .doc = "How to connect: a libpq URL (`postgresql://postgres@127.0.0.1:5432/postgres`) or "
            "conninfo (`host=/var/run/postgresql user=postgres`); default libpq's (PGHOST, "
            "PGPORT, PGUSER...). A superuser or a role granted pg_backup_start/pg_backup_stop."},
    {.name = "archive_timeout",
     .kind = CF_DURATION,
     FLD(PD, archive_timeout_ms),
     .min = 1000,
     .max = 86400000,
     .def = "10m",
     .doc = "How long the backup waits for the WAL the snapshot needs to be archived; "
            "then the run fails and no snapshot is written."},
    END};
#undef PD
static const struct cf_schema pg_data_schema = {
    .name = "backup.jobs.NAME.sources[].pg_data",
    .fields = pg_data_fields,
    .check = check_pg_data,
    .doc = "A physical PostgreSQL source: an online snapshot of the data directory between "
           "pg_backup_start and pg_backup_stop, restored with `tapwork restore --pg-data` to any "
           "moment the WAL archive covers. The server must archive its WAL into the job's "
           "repository (`archive_command = 'tapwork pg archive-push -c FILE --job NAME %p'`). "
           "Such a source is the job's only source; the job's retention also expires the WAL "
           "no kept snapshot needs. See docs/backup.md \"Point-in-time recovery\"."};

static int check_source(struct cf_ctx *c, int node, void *obj)
{
	struct tw_conf_backup_source *s = obj;
	if (s->has_pg_data) {
		if (s->path || s->postgres)
			return tw_conf_fail(c, tw_conf_map_get(c, node, "pg_data"), "pg_data",
			                    "give exactly one of path:, postgres: or pg_data: per "
			                    "source");
		if (s->all)
			return tw_conf_fail(c, tw_conf_map_get(c, node, "all"), "all",
			                    "only for postgres: sources");
		if (s->nexclude)
			return tw_conf_fail(c, tw_conf_map_get(c, node, "exclude"), "exclude",
			                    "only for path: sources (pg_data: leaves out what "
			                    "PostgreSQL says to)");
		return 0;
	}
	if ((s->path == NULL) == (s->postgres == NULL))
		return tw_conf_fail(c, node, NULL, "give exactly one of path: or postgres:");
	if (s->path && s->path[0] != '/')
		return tw_conf_fail(c, tw_conf_map_get(c, node, "path"), "path",
		                    "must be an absolute path");
	if (s->postgres && strncmp(s->postgres, "postgresql://", 13) != 0 &&
	    strncmp(s->postgres, "postgres://", 11) != 0)
		return tw_conf_fail(c, tw_conf_map_get(c, node, "postgres"), "postgres",
		                    "expected a postgresql://USER@HOST[:PORT]/DB URL");
	if (s->all && s->postgres == NULL)
		return tw_conf_fail(c, tw_conf_map_get(c, node, "all"), "all",
		                    "only for postgres: sources");
	if (s->nexclude && s->path == NULL)
		return tw_conf_fail(c, tw_conf_map_get(c, node, "exclude"), "exclude",
		                    "only for path: sources");
	return 0;
}

static const struct cf_field glob_elem = {.kind = CF_STRING, .width = sizeof(char *)};

#define BS struct tw_conf_backup_source
static const struct cf_field bsource_fields[] = {
    {.name = "path",
     .kind = CF_STRING,
     FLD(BS, path),
     .doc = "A directory (or file) to back up, absolute. Stored at the snapshot root under its "
            "last component."},
    {.name = "postgres",
     .kind = CF_STRING,
     FLD(BS, postgres),
     .doc = "A PostgreSQL database `postgresql://USER@HOST[:PORT]/DB`, dumped with `pg_dump "
            "--format=custom --compress=0` into `postgres/DB.dump`. Passwords come from "
            "`PGPASSWORD` or `~/.pgpass` (a password in the URL is passed through the "
            "environment, never argv)."},
    {.name = "pg_data",
     .kind = CF_STRUCT,
     .off = offsetof(BS, pg_data),
     .flags = CF_PRESENT | CF_OPTIONAL,
     .present_off = offsetof(BS, has_pg_data),
     .schema = &pg_data_schema,
     .doc = "A PostgreSQL data directory, backed up physically for point-in-time recovery "
            "(see below); the job's only source."},
    {.name = "all",
     .kind = CF_BOOL,
     FLD(BS, all),
     .def = "false",
     .doc = "postgres: also the globals (`pg_dumpall --globals-only`, `postgres/globals.sql`) and "
            "every database of that server."},
    {.name = "pre",
     .kind = CF_STRING,
     FLD(BS, pre),
     .doc = "Command (run with `sh -c`) before the backup, e.g. an application quiesce or "
            "`fsfreeze -f`. A non-zero exit aborts the run: no snapshot is written."},
    {.name = "post",
     .kind = CF_STRING,
     FLD(BS, post),
     .doc = "Command run after the backup whenever `pre` succeeded (also when the backup "
            "failed), e.g. resume or `fsfreeze -u`. A failure marks the run failed; the snapshot "
            "stays."},
    {.name = "exclude",
     .kind = CF_LIST,
     FLD(BS, exclude),
     .count_off = offsetof(BS, nexclude),
     .max = 1024,
     .elem = &glob_elem,
     .doc = "path: globs of names or paths to skip."},
    END};
#undef BS
static const struct cf_schema bsource_schema = {
    .name = "backup.jobs.NAME.sources[]",
    .fields = bsource_fields,
    .check = check_source,
    .doc = "What a job backs up: `{path: DIR}`, `{postgres: URL}` or `{pg_data: {dir: PGDATA}}`, "
           "with optional hooks."};
static const struct cf_field bsource_elem = {
    .kind = CF_STRUCT, .width = sizeof(struct tw_conf_backup_source), .schema = &bsource_schema};

#define RT struct tw_conf_retention
static const struct cf_field retention_fields[] = {
    {.name = "keep_last", .kind = CF_UINT, FLD(RT, keep_last), .max = 100000, .def = "0",
     .doc = "Keep the N newest snapshots."},
    {.name = "keep_hourly", .kind = CF_UINT, FLD(RT, keep_hourly), .max = 100000, .def = "0",
     .doc = "Keep the newest snapshot of each of the last N hours that have one."},
    {.name = "keep_daily", .kind = CF_UINT, FLD(RT, keep_daily), .max = 100000, .def = "0",
     .doc = "Same per day (UTC)."},
    {.name = "keep_weekly", .kind = CF_UINT, FLD(RT, keep_weekly), .max = 100000, .def = "0",
     .doc = "Same per ISO week."},
    {.name = "keep_monthly", .kind = CF_UINT, FLD(RT, keep_monthly), .max = 100000, .def = "0",
     .doc = "Same per month."},
    {.name = "keep_yearly", .kind = CF_UINT, FLD(RT, keep_yearly), .max = 100000, .def = "0",
     .doc = "Same per year."},
    END};
#undef RT
static const struct cf_schema retention_schema = {
    .name = "backup.jobs.NAME.retention",
    .fields = retention_fields,
    .doc = "Which of the job's snapshots to keep (as `tapwork forget`); applied after every "
           "successful run to the snapshots tagged `job:NAME`. At least one rule must be non-zero."};

#define CK struct tw_conf_backup_check
static const struct cf_field bcheck_fields[] = {
    {.name = "read_data_subset",
     .kind = CF_CUSTOM,
     FLD(CK, read_data_percent),
     .parse = parse_percent,
     .type_name = "percentage",
     .def = "0%",
     .doc = "Also read and verify this share of the packs (chosen at random); 0% = structure "
            "only."},
    {.name = "schedule",
     .kind = CF_CUSTOM,
     FLD(CK, schedule),
     .parse = parse_schedule,
     .type_name = "schedule",
     .def = "weekly",
     .doc = "When the check runs (after the job's backup)."},
    END};
#undef CK
static const struct cf_schema bcheck_schema = {
    .name = "backup.jobs.NAME.check",
    .fields = bcheck_fields,
    .doc = "A periodic `tapwork check` of the job's repository."};

static int check_job(struct cf_ctx *c, int node, void *obj)
{
	struct tw_conf_backup_job *j = obj;
	if (j->has_retention) {
		const struct tw_conf_retention *r = &j->retention;
		if (!(r->keep_last | r->keep_hourly | r->keep_daily | r->keep_weekly |
		      r->keep_monthly | r->keep_yearly))
			return tw_conf_fail(c, tw_conf_map_get(c, node, "retention"), "retention",
			                    "keeps nothing: set at least one keep_* rule");
	}
	for (size_t i = 0; i < j->nsources; i++)
		if (j->sources[i].has_pg_data && j->nsources > 1) {
			int src = tw_conf_seq_item(c, tw_conf_map_get(c, node, "sources"), i);
			char where[48];
			snprintf(where, sizeof where, "sources[%zu].pg_data", i);
			return tw_conf_fail(c, tw_conf_map_get(c, src, "pg_data"), where,
			                    "a pg_data: source must be the job's only source (a "
			                    "physical snapshot holds the data directory alone; "
			                    "use another job for the rest)");
		}
	if (j->prune && !j->has_retention)
		return tw_conf_fail(c, tw_conf_map_get(c, node, "prune"), "prune",
		                    "needs a retention: policy (prune removes what forget released)");
	return 0;
}

#define J struct tw_conf_backup_job
static const struct cf_field job_fields[] = {
    {.name = "repository",
     .kind = CF_STRING,
     FLD(J, repository),
     .doc = "Repository (local path or `s3:https://HOST/BUCKET/PREFIX`); default "
            "`backup.repository`."},
    {.name = "password_file",
     .kind = CF_STRING,
     FLD(J, password_file),
     .doc = "File holding the repository password; default `backup.password_file`, then "
            "`$TAPWORK_PASSWORD` / `$TAPWORK_PASSWORD_FILE`."},
    {.name = "schedule",
     .kind = CF_CUSTOM,
     FLD(J, schedule),
     .parse = parse_schedule,
     .type_name = "schedule",
     .doc = "When `tapwork run` runs the job: `hourly`, `daily [HH:MM]`, `weekly [DAY] [HH:MM]`, "
            "`monthly`, `every N{s,m,h,d}`, or 5-field cron (`15 3 * * *`). Absent = only "
            "`tapwork backup --job NAME`."},
    {.name = "jitter",
     .kind = CF_DURATION,
     FLD(J, jitter_ms),
     .max = 86400000,
     .def = "0s",
     .doc = "Random delay (0..jitter) added to each scheduled run, to spread load."},
    {.name = "sources",
     .kind = CF_LIST,
     FLD(J, sources),
     .count_off = offsetof(J, nsources),
     .flags = CF_REQUIRED,
     .min = 1,
     .max = 256,
     .elem = &bsource_elem,
     .doc = "What to back up (one snapshot per run holds all sources)."},
    {.name = "tags",
     .kind = CF_LIST,
     FLD(J, tags),
     .count_off = offsetof(J, ntags),
     .max = 64,
     .elem = &glob_elem,
     .doc = "Extra snapshot tags (every snapshot of the job is also tagged `job:NAME`)."},
    {.name = "retention",
     .kind = CF_STRUCT,
     .off = offsetof(J, retention),
     .flags = CF_PRESENT | CF_OPTIONAL,
     .present_off = offsetof(J, has_retention),
     .schema = &retention_schema,
     .doc = "Retention policy (see below); absent = keep everything."},
    {.name = "prune",
     .kind = CF_CUSTOM,
     FLD(J, prune),
     .parse = parse_schedule,
     .type_name = "schedule",
     .doc = "When to prune (delete data no snapshot needs) after a run, e.g. `weekly`; absent = "
            "never."},
    {.name = "check",
     .kind = CF_STRUCT,
     .off = offsetof(J, check),
     .flags = CF_PRESENT | CF_OPTIONAL,
     .present_off = offsetof(J, has_check),
     .schema = &bcheck_schema,
     .doc = "Periodic repository check (see below); absent = none."},
    {.name = "pg_bin",
     .kind = CF_STRING,
     FLD(J, pg_bin),
     .doc = "Directory of pg_dump, pg_dumpall and psql; default PATH, then "
            "/usr/lib/postgresql/15/bin."},
    {.name = "hook_timeout",
     .kind = CF_DURATION,
     FLD(J, hook_timeout_ms),
     .min = 1000,
     .max = 86400000,
     .def = "10m",
     .doc = "A pre/post hook running longer is killed and counts as failed."},
    END};
#undef J
static const struct cf_schema job_schema = {
    .name = "backup.jobs.NAME",
    .fields = job_fields,
    .has_key = 1,
    .key_off = offsetof(struct tw_conf_backup_job, name),
    .check = check_job,
    .doc = "A named backup job: sources, schedule, retention."};
static const struct cf_field job_elem = {
    .kind = CF_STRUCT, .width = sizeof(struct tw_conf_backup_job), .schema = &job_schema};

static int check_backup(struct cf_ctx *c, int node, void *obj)
{
	struct tw_conf_backup *b = obj;
	int jobs = tw_conf_map_get(c, node, "jobs");
	for (size_t i = 0; i < b->njobs; i++) {
		struct tw_conf_backup_job *j = &b->jobs[i];
		if (j->repository == NULL)
			j->repository = b->repository;
		if (j->password_file == NULL)
			j->password_file = b->password_file;
		if (j->repository == NULL)
			return tw_conf_fail(c, tw_conf_map_get(c, jobs, j->name), "repository",
			                    "job \"%s\" has no repository (set it or backup.repository)",
			                    j->name);
	}
	return 0;
}

#define BK struct tw_conf_backup
static const struct cf_field backup_fields[] = {
    {.name = "repository",
     .kind = CF_STRING,
     FLD(BK, repository),
     .doc = "Default repository of the jobs."},
    {.name = "password_file",
     .kind = CF_STRING,
     FLD(BK, password_file),
     .doc = "Default password file of the jobs."},
    {.name = "utc",
     .kind = CF_BOOL,
     FLD(BK, utc),
     .def = "false",
     .doc = "Read schedules in UTC instead of the local time zone (TZ)."},
    {.name = "jobs",
     .kind = CF_MAP,
     FLD(BK, jobs),
     .count_off = offsetof(BK, njobs),
     .max = 256,
     .elem = &job_elem,
     .doc = "Named backup jobs (see below)."},
    END};
#undef BK
static const struct cf_schema backup_schema = {
    .name = "backup",
    .fields = backup_fields,
    .check = check_backup,
    .doc = "Scheduled backups run by `tapwork run` on their own thread (never on the request "
           "path); `tapwork backup --job NAME -c FILE` runs one now. See docs/backup.md."};

static const struct cf_field site_elem = {
    .kind = CF_STRUCT, .width = sizeof(struct tw_conf_site), .schema = &site_schema};
static const struct cf_field backend_elem = {
    .kind = CF_STRUCT, .width = sizeof(struct tw_conf_backend), .schema = &backend_schema};
static const struct cf_field cidr_elem = {.kind = CF_CIDR, .width = sizeof(struct tw_cidr)};

static const struct cf_field root_fields[] = {
    {.name = "listen",
     .kind = CF_STRUCT,
     .off = 0,
     .flags = CF_REQUIRED,
     .schema = &listen_schema,
     .doc = "Client listeners (see below)."},
    {.name = "workers",
     .kind = CF_CUSTOM,
     FLD(C, workers),
     .parse = parse_workers,
     .type_name = "`auto` or 1..256",
     .def = "auto",
     .doc = "Worker threads; `auto` = one per online CPU (at most 256)."},
    {.name = "admin",
     .kind = CF_STRUCT,
     .off = 0,
     .flags = CF_PRESENT | CF_OPTIONAL,
     .present_off = offsetof(C, has_admin),
     .schema = &admin_schema,
     .doc = "Admin endpoint (see below)."},
    {.name = "state_dir",
     .kind = CF_STRING,
     FLD(C, state_dir),
     .def = "/var/lib/tapwork",
     .doc = "Directory for state tapwork creates: the local CA (`ca/`) and issued certificates "
            "(`certs/`)."},
    {.name = "tls",
     .kind = CF_STRUCT,
     .off = offsetof(C, tls),
     .schema = &tls_schema,
     .doc = "TLS options (see below)."},
    {.name = "sites",
     .kind = CF_LIST,
     FLD(C, sites),
     .count_off = offsetof(C, nsites),
     .max = 4096,
     .elem = &site_elem,
     .doc = "Virtual hosts and their routes (at least one, unless `kubernetes:` is there to bring them)."},
    {.name = "backends",
     .kind = CF_MAP,
     FLD(C, backends),
     .count_off = offsetof(C, nbackends),
     .max = 4096,
     .elem = &backend_elem,
     .doc = "Named groups of upstream servers."},
    {.name = "limits",
     .kind = CF_STRUCT,
     .off = offsetof(C, limits),
     .schema = &limits_schema,
     .doc = "Request size limits (see below)."},
    {.name = "timeouts",
     .kind = CF_STRUCT,
     .off = offsetof(C, timeouts),
     .schema = &timeouts_schema,
     .doc = "Client timeouts (see below)."},
    {.name = "log",
     .kind = CF_STRUCT,
     .off = offsetof(C, log),
     .schema = &log_schema,
     .doc = "Logging (see below)."},
    {.name = "http2",
     .kind = CF_STRUCT,
     .off = offsetof(C, http2),
     .schema = &http2_schema,
     .doc = "HTTP/2 to clients (see below)."},
    {.name = "trusted_proxies",
     .kind = CF_LIST,
     FLD(C, trusted_proxies),
     .count_off = offsetof(C, ntrusted_proxies),
     .max = 1024,
     .elem = &cidr_elem,
     .doc = "Peers (CIDRs or single addresses) whose `X-Forwarded-For` and `X-Request-Id` are "
            "believed."},
    {.name = "request_id_trust",
     .kind = CF_BOOL,
     FLD(C, request_id_trust),
     .def = "true",
     .doc = "Keep an incoming `X-Request-Id` when the peer is a trusted proxy (else a new id is "
            "made)."},
    {.name = "via",
     .kind = CF_CUSTOM,
     FLD(C, via_name),
     .parse = parse_token,
     .type_name = "token",
     .def = "tapwork",
     .doc = "Name in the `Via: 1.1 NAME` header added to requests and responses."},
    {.name = "acme",
     .kind = CF_STRUCT,
     .off = offsetof(C, acme),
     .flags = CF_PRESENT | CF_OPTIONAL,
     .present_off = offsetof(C, has_acme),
     .schema = &acme_schema,
     .doc = "ACME client settings (see below)."},
    {.name = "backup",
     .kind = CF_STRUCT,
     .off = offsetof(C, backup),
     .flags = CF_PRESENT | CF_OPTIONAL,
     .present_off = offsetof(C, has_backup),
     .schema = &backup_schema,
     .doc = "Backup jobs and their schedules (see below)."},
    {.name = "kubernetes",
     .kind = CF_STRUCT,
     .off = offsetof(C, k8s),
     .flags = CF_PRESENT | CF_OPTIONAL,
     .present_off = offsetof(C, has_k8s),
     .schema = &k8s_schema,
     .doc = "Kubernetes Ingress controller (see below)."},
    {.name = "compression",
     .kind = CF_NODE,
     FLD(C, compress),
     .parse_node = tw_conf_parse_compress,
     .schema = &tw_conf_compress_schema,
     .type_name = "`off` \\| mapping",
     .doc = "Response compression (see below); absent = nothing is compressed."},
    {.name = "rate_limits",
     .kind = CF_MAP,
     FLD(C, rate_limits),
     .count_off = offsetof(C, nrate_limits),
     .max = 256,
     .elem = &tw_conf_rl_elem,
     .doc = "Named request rate limit policies that routes attach with `rate_limit:` (see below)."},
    {.name = "proxy_protocol",
     .kind = CF_STRUCT,
     .off = offsetof(C, proxy_protocol),
     .flags = CF_PRESENT | CF_OPTIONAL,
     .present_off = offsetof(C, has_proxy_protocol),
     .schema = &tw_conf_pp_schema,
     .doc = "PROXY protocol from load balancers (see below)."},
    END};
#undef C

const struct cf_schema tw_conf_root_schema = {
    .name = "top level",
    .fields = root_fields,
    .check = check_root,
    .doc = "The keys of the top-level mapping. `listen` and `sites` are required (`sites` may be left out "
            "when a `kubernetes:` section brings them)."};
