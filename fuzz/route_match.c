/* fuzz/route_match.c — libFuzzer target for tw_router_match.
 *
 * Input: HOST '\n' PATH (no '\n': everything is the host, path "/"). Two
 * fixed routers are built once (with and without a default site); every
 * answer is checked against a slow reference matcher written independently
 * (linear scans, no hash tables, no pre-sorting). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "conf/config.h"
#include "http/route.h"

struct rdef {
	const char *path;
	enum tw_match match;
};

static const char *const site_hosts[][4] = {
	{"example.com", "www.example.com", NULL},
	{"*.example.com", NULL},
	{"a.example.com", "[::1]", "127.0.0.1", NULL},
	{"*.b.example.com", "xn--bcher-kva.example", NULL},
	{"*", NULL},
};
#define NSITES 5

static const struct rdef routes[] = {
	{"/", TW_MATCH_PREFIX},      {"/api", TW_MATCH_PREFIX},   {"/api/v2/", TW_MATCH_PREFIX},
	{"/api/v2", TW_MATCH_EXACT}, {"/login", TW_MATCH_EXACT},  {"/static//", TW_MATCH_PREFIX},
	{"/a/b", TW_MATCH_PREFIX},   {"/a", TW_MATCH_EXACT},      {"/a/b", TW_MATCH_PREFIX},
};
#define NROUTES (sizeof routes / sizeof routes[0])

static struct tw_config cfgs[2];
static struct tw_router *routers[2];

/* Site s gets routes s..NROUTES-1 (so the sites differ); backend = route index. */
static void build(struct tw_config *c, struct tw_router **r, size_t nsites)
{
	tw_arena_init(&c->arena, 0);
	c->sites = tw_arena_alloc(&c->arena, NSITES * sizeof *c->sites);
	c->nsites = nsites;
	c->nbackends = NROUTES;
	c->default_site = SIZE_MAX;
	for (size_t s = 0; s < nsites; s++) {
		struct tw_conf_site *site = &c->sites[s];
		site->hosts = (char **)site_hosts[s];
		while (site_hosts[s][site->nhosts] != NULL)
			site->nhosts++;
		site->routes = tw_arena_alloc(&c->arena, NROUTES * sizeof *site->routes);
		for (size_t j = s; j < NROUTES; j++) {
			struct tw_conf_route *rt = &site->routes[site->nroutes++];
			rt->path = (char *)routes[j].path;
			rt->path_len = strlen(routes[j].path);
			rt->match = routes[j].match;
			rt->backend = j;
		}
	}
	struct tw_err err;
	if (tw_router_build(c, r, &err) != 0)
		abort();
}

/* ---- reference ---- */

static int ieq(const char *a, size_t an, const char *b, size_t bn)
{
	if (an != bn)
		return 0;
	for (size_t i = 0; i < an; i++) {
		unsigned char x = (unsigned char)a[i], y = (unsigned char)b[i];
		if (x >= 'A' && x <= 'Z')
			x += 32;
		if (x != y)
			return 0;
	}
	return 1;
}

static size_t ref_site(const struct tw_config *c, const char *h, size_t n)
{
	size_t end = n;
	if (n > 0 && h[0] == '[') {
		for (size_t i = 0; i < n; i++)
			if (h[i] == ']') {
				end = i + 1;
				break;
			}
	} else {
		for (size_t i = 0; i < n; i++)
			if (h[i] == ':') {
				end = i;
				break;
			}
	}
	if (end > 0 && h[end - 1] == '.')
		end--;
	if (end > 255)
		return SIZE_MAX;
	size_t def = SIZE_MAX;
	for (size_t s = 0; s < c->nsites; s++)
		for (size_t k = 0; k < c->sites[s].nhosts; k++) {
			const char *p = c->sites[s].hosts[k];
			if (strcmp(p, "*") == 0)
				def = s;
			else if (p[0] != '*' && end > 0 && ieq(h, end, p, strlen(p)))
				return s;
		}
	if (end == 0)
		return def;
	for (size_t s = 0; s < c->nsites; s++)
		for (size_t k = 0; k < c->sites[s].nhosts; k++) {
			const char *p = c->sites[s].hosts[k];
			if (p[0] != '*' || p[1] != '.')
				continue;
			size_t sl = strlen(p) - 1; /* ".suffix" */
			if (end <= sl || h[0] == '[')
				continue;
			size_t label = end - sl;
			if (!ieq(h + label, sl, p + 1, sl) || memchr(h, '.', label) != NULL)
				continue;
			return s;
		}
	return def;
}

static const struct tw_conf_route *ref_route(const struct tw_conf_site *s, const char *p, size_t n)
{
	const struct tw_conf_route *best = NULL;
	size_t best_len = 0;
	for (size_t j = 0; j < s->nroutes; j++) {
		const struct tw_conf_route *r = &s->routes[j];
		size_t len = r->path_len;
		int ok;
		if (r->match == TW_MATCH_EXACT) {
			ok = n == len && memcmp(p, r->path, n) == 0;
		} else {
			while (len > 0 && r->path[len - 1] == '/')
				len--;
			ok = len == 0 || (n >= len && memcmp(p, r->path, len) == 0 && (n == len || p[len] == '/'));
		}
		if (!ok)
			continue;
		if (best == NULL || len > best_len ||
		    (len == best_len && r->match == TW_MATCH_EXACT && best->match != TW_MATCH_EXACT)) {
			best = r;
			best_len = len;
		}
	}
	return best;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (routers[0] == NULL) {
		build(&cfgs[0], &routers[0], NSITES);
		build(&cfgs[1], &routers[1], NSITES - 1);
	}
	const char *in = (const char *)data;
	const char *nl = memchr(in, '\n', size);
	size_t hn = nl ? (size_t)(nl - in) : size;
	const char *path = nl ? nl + 1 : "/";
	size_t pn = nl ? size - hn - 1 : 1;
	/* copy into exact-size heap buffers so ASan sees any over-read */
	char *h = malloc(hn ? hn : 1), *p = malloc(pn ? pn : 1);
	if (h == NULL || p == NULL)
		abort();
	memcpy(h, in, hn);
	memcpy(p, path, pn);
	for (int v = 0; v < 2; v++) {
		size_t site = 7;
		const struct tw_conf_route *got = tw_router_match(routers[v], h, hn, p, pn, &site);
		size_t want_site = ref_site(&cfgs[v], h, hn);
		if (site != want_site)
			abort();
		const struct tw_conf_route *want =
			want_site == SIZE_MAX ? NULL : ref_route(&cfgs[v].sites[want_site], p, pn);
		if (got != want)
			abort();
	}
	free(h);
	free(p);
	return 0;
}
