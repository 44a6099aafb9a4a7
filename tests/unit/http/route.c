/* Unit tests for src/http/route.c: host precedence and normalization, path
 * rules (Kubernetes Ingress semantics), build-time errors. Configs are built
 * by hand; every route carries a distinct backend index used as its id. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "conf/config.h"
#include "http/route.h"

#define MAX_SITES 2048
#define NO_ROUTE ((size_t)-1)

struct rdef {
	const char *path;
	enum tw_match match;
	size_t id;
};

static struct tw_config *cfg_new(void)
{
	struct tw_config *c = test_calloc(1, sizeof *c);
	tw_arena_init(&c->arena, 0);
	c->sites = tw_arena_alloc(&c->arena, MAX_SITES * sizeof *c->sites);
	c->nbackends = 10000;
	c->default_site = SIZE_MAX;
	return c;
}

static void cfg_done(struct tw_config *c)
{
	tw_arena_free(&c->arena);
	test_free(c);
}

/* hosts: NULL-terminated list. Returns the site index. */
static size_t add_site(struct tw_config *c, const char *const *hosts, const struct rdef *rd, size_t nr)
{
	assert_true(c->nsites < MAX_SITES);
	struct tw_conf_site *s = &c->sites[c->nsites];
	size_t nh = 0;
	while (hosts[nh] != NULL)
		nh++;
	s->hosts = tw_arena_alloc(&c->arena, (nh + 1) * sizeof *s->hosts);
	for (size_t i = 0; i < nh; i++)
		s->hosts[i] = tw_arena_strdup(&c->arena, hosts[i]);
	s->nhosts = nh;
	s->routes = tw_arena_alloc(&c->arena, (nr + 1) * sizeof *s->routes);
	for (size_t j = 0; j < nr; j++) {
		struct tw_conf_route *r = &s->routes[j];
		r->path = tw_arena_strdup(&c->arena, rd[j].path);
		r->path_len = strlen(rd[j].path);
		r->match = rd[j].match;
		r->handler = TW_HANDLER_PROXY;
		r->backend = rd[j].id;
	}
	s->nroutes = nr;
	return c->nsites++;
}

/* A site whose only route is "/" (prefix) with id = the site index. */
static size_t add_simple(struct tw_config *c, const char *const *hosts)
{
	struct rdef rd = {"/", TW_MATCH_PREFIX, c->nsites};
	return add_site(c, hosts, &rd, 1);
}

static struct tw_router *build_ok(struct tw_config *c)
{
	struct tw_router *r = NULL;
	struct tw_err err = {0};
	int rc = tw_router_build(c, &r, &err);
	if (rc != 0)
		print_error("build: %s\n", err.msg);
	assert_int_equal(rc, 0);
	assert_non_null(r);
	return r;
}

static size_t match_id(const struct tw_router *r, const char *host, size_t host_len, const char *path,
		       size_t *site)
{
	const struct tw_conf_route *rt = tw_router_match(r, host, host_len, path, strlen(path), site);
	return rt ? rt->backend : NO_ROUTE;
}

static size_t host_site(const struct tw_router *r, const char *host)
{
	size_t site = 12345;
	size_t id = match_id(r, host, strlen(host), "/", &site);
	if (id != NO_ROUTE)
		assert_int_equal(id, site); /* add_simple: id == site index */
	return site;
}

static void host_precedence(void **state)
{
	struct tw_config *c = cfg_new();
	size_t ex = add_simple(c, (const char *[]){"example.com", "www.example.com", NULL});
	size_t wild = add_simple(c, (const char *[]){"*.example.com", NULL});
	size_t def = add_simple(c, (const char *[]){"*", NULL});
	size_t a = add_simple(c, (const char *[]){"a.example.com", NULL});
	size_t v6 = add_simple(c, (const char *[]){"[::1]", "127.0.0.1", NULL});
	size_t wild2 = add_simple(c, (const char *[]){"*.b.example.com", NULL});
	struct tw_router *r = build_ok(c);

	/* exact > wildcard > default */
	assert_int_equal(host_site(r, "example.com"), ex);
	assert_int_equal(host_site(r, "www.example.com"), ex);
	assert_int_equal(host_site(r, "a.example.com"), a);
	assert_int_equal(host_site(r, "b.example.com"), wild);
	assert_int_equal(host_site(r, "zz-9.example.com"), wild);
	/* one label only: a.b.example.com is *.b.example.com, x.y.z.example.com is nothing */
	assert_int_equal(host_site(r, "a.b.example.com"), wild2);
	assert_int_equal(host_site(r, "x.y.z.example.com"), def);
	assert_int_equal(host_site(r, "other.org"), def);
	assert_int_equal(host_site(r, "com"), def);
	assert_int_equal(host_site(r, ".example.com"), def); /* empty first label */
	assert_int_equal(host_site(r, "example.com.evil.org"), def);
	assert_int_equal(host_site(r, "notexample.com"), def);
	/* case, port, trailing dot */
	assert_int_equal(host_site(r, "EXAMPLE.COM"), ex);
	assert_int_equal(host_site(r, "Example.Com:8080"), ex);
	assert_int_equal(host_site(r, "example.com."), ex);
	assert_int_equal(host_site(r, "example.com.:443"), ex);
	assert_int_equal(host_site(r, "example.com.."), def); /* only one dot is stripped */
	assert_int_equal(host_site(r, "B.Example.COM.:8443"), wild);
	assert_int_equal(host_site(r, "A.EXAMPLE.COM"), a);
	/* addresses */
	assert_int_equal(host_site(r, "127.0.0.1"), v6);
	assert_int_equal(host_site(r, "127.0.0.1:8080"), v6);
	assert_int_equal(host_site(r, "[::1]"), v6);
	assert_int_equal(host_site(r, "[::1]:8080"), v6);
	assert_int_equal(host_site(r, "[::2]:8080"), def);
	assert_int_equal(host_site(r, "[::1"), def); /* malformed: no port stripping, no match */
	/* empty Host (HTTP/1.0) goes to the default site */
	assert_int_equal(host_site(r, ""), def);
	size_t site = 0;
	assert_int_equal(match_id(r, NULL, 0, "/", &site), def);
	cfg_done(c);
}

static void host_no_default(void **state)
{
	struct tw_config *c = cfg_new();
	size_t ex = add_simple(c, (const char *[]){"example.com", NULL});
	add_simple(c, (const char *[]){"*.example.com", NULL});
	struct tw_router *r = build_ok(c);
	size_t site = 0;
	assert_int_equal(match_id(r, "example.com", 11, "/x", &site), ex);
	assert_int_equal(match_id(r, "other.org", 9, "/x", &site), NO_ROUTE);
	assert_int_equal(site, SIZE_MAX);
	assert_int_equal(match_id(r, "example.com.org", 15, "/", &site), NO_ROUTE);
	assert_int_equal(match_id(r, "", 0, "/", &site), NO_ROUTE);
	assert_int_equal(site, SIZE_MAX);
	assert_null(tw_router_match(r, "x", 1, "/", 1, NULL)); /* site_idx may be NULL */
	cfg_done(c);
}

static void host_length_cap(void **state)
{
	char name[400], host[400];
	memset(name, 'a', sizeof name);
	memcpy(name + 250, ".test", 5); /* 255 bytes: "aaa...a.test" */
	name[255] = '\0';
	struct tw_config *c = cfg_new();
	size_t longsite = add_simple(c, (const char *[]){name, NULL});
	size_t def = add_simple(c, (const char *[]){"*", NULL});
	struct tw_router *r = build_ok(c);
	size_t site = 0;

	assert_int_equal(host_site(r, name), longsite);
	snprintf(host, sizeof host, "%s:8080", name);
	assert_int_equal(host_site(r, host), longsite);
	snprintf(host, sizeof host, "%s.", name); /* 256 with the dot, 255 without */
	assert_int_equal(host_site(r, host), longsite);
	/* 256 bytes after stripping: no site at all, not even the default */
	snprintf(host, sizeof host, "b%s", name);
	assert_int_equal(match_id(r, host, strlen(host), "/", &site), NO_ROUTE);
	assert_int_equal(site, SIZE_MAX);
	snprintf(host, sizeof host, "B%s:80", name);
	assert_int_equal(match_id(r, host, strlen(host), "/", &site), NO_ROUTE);
	/* much longer, wildcard-shaped */
	memset(host, 'x', 399);
	host[1] = '.';
	assert_int_equal(match_id(r, host, 399, "/", &site), NO_ROUTE);
	/* but 255 bytes of an unknown name is fine and goes to the default */
	memset(host, 'x', 255);
	assert_int_equal(match_id(r, host, 255, "/", &site), def);
	cfg_done(c);
}

static void many_hosts(void **state)
{
	struct tw_config *c = cfg_new();
	char h[64];
	for (size_t i = 0; i < 1000; i++) {
		snprintf(h, sizeof h, i % 2 ? "h%zu.example.net" : "*.w%zu.example.net", i);
		add_simple(c, (const char *[]){h, NULL});
	}
	size_t def = add_simple(c, (const char *[]){"*", NULL});
	struct tw_router *r = build_ok(c);
	for (size_t i = 0; i < 1000; i++) {
		snprintf(h, sizeof h, i % 2 ? "H%zu.example.net" : "x.w%zu.example.net", i);
		assert_int_equal(host_site(r, h), i);
		snprintf(h, sizeof h, i % 2 ? "h%zu.example.org" : "w%zu.example.net", i);
		assert_int_equal(host_site(r, h), def);
	}
	cfg_done(c);
}

enum { API = 1, APIV2P, APIV2X, LOGIN, STATIC, ROOT, DOCS };

static void path_rules(void **state)
{
	struct tw_config *c = cfg_new();
	/* deliberately not in precedence order */
	const struct rdef rd[] = {
		{"/", TW_MATCH_PREFIX, ROOT},
		{"/api", TW_MATCH_PREFIX, API},
		{"/login", TW_MATCH_EXACT, LOGIN},
		{"/api/v2/", TW_MATCH_PREFIX, APIV2P},
		{"/static/", TW_MATCH_PREFIX, STATIC},
		{"/api/v2", TW_MATCH_EXACT, APIV2X},
		{"/docs//", TW_MATCH_PREFIX, DOCS},
	};
	add_site(c, (const char *[]){"*", NULL}, rd, sizeof rd / sizeof rd[0]);
	struct tw_router *r = build_ok(c);
	static const struct {
		const char *path;
		size_t want;
	} cases[] = {
		{"/api", API},
		{"/api/", API},
		{"/api/x", API},
		{"/api/x/y?no-query-here", API},
		{"/apix", ROOT},
		{"/ap", ROOT},
		{"/api/v2", APIV2X},   /* equal length: exact beats prefix "/api/v2/" */
		{"/api/v2/", APIV2P},  /* the exact rule does not match a trailing slash */
		{"/api/v2/users", APIV2P},
		{"/api/v2x", API},
		{"/api/v1/users", API},
		{"/login", LOGIN},
		{"/login/", ROOT},
		{"/loginx", ROOT},
		{"/static", STATIC},   /* "/static/" rule behaves as "/static" */
		{"/static/", STATIC},
		{"/static/app.css", STATIC},
		{"/staticfiles", ROOT},
		{"/docs", DOCS},
		{"/docs/a", DOCS},
		{"/", ROOT},
		{"/anything/else", ROOT},
		{"", ROOT},
		{"/API", ROOT},        /* case-sensitive */
		{"/api%2Fx", ROOT},    /* raw bytes, no decoding */
		{"/%61pi", ROOT},
		{"//api", ROOT},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		size_t got = match_id(r, "host", 4, cases[i].path, NULL);
		if (got != cases[i].want)
			fail_msg("path \"%s\": got %zu, want %zu", cases[i].path, got, cases[i].want);
	}
	cfg_done(c);
}

static void path_no_catch_all(void **state)
{
	struct tw_config *c = cfg_new();
	const struct rdef rd[] = {
		{"/api/", TW_MATCH_PREFIX, API},
		{"/", TW_MATCH_EXACT, ROOT},
	};
	size_t s = add_site(c, (const char *[]){"example.com", NULL}, rd, 2);
	size_t def = add_simple(c, (const char *[]){"*", NULL});
	struct tw_router *r = build_ok(c);
	size_t site = 0;
	assert_int_equal(match_id(r, "example.com", 11, "/api", &site), API);
	assert_int_equal(site, s);
	assert_int_equal(match_id(r, "example.com", 11, "/", &site), ROOT);
	/* a path miss on the matched host is a miss: no fallback to "*" */
	assert_int_equal(match_id(r, "example.com", 11, "/apix", &site), NO_ROUTE);
	assert_int_equal(site, s);
	assert_int_equal(match_id(r, "example.com", 11, "/x", &site), NO_ROUTE);
	assert_int_equal(match_id(r, "other", 5, "/x", &site), def);
	cfg_done(c);
}

static void longest_match_any_order(void **state)
{
	struct tw_config *c = cfg_new();
	const struct rdef rd[] = {
		{"/a", TW_MATCH_PREFIX, 1},     {"/a/b/c", TW_MATCH_PREFIX, 3}, {"/a/b", TW_MATCH_PREFIX, 2},
		{"/a/b", TW_MATCH_PREFIX, 4}, /* duplicate: the first one in config order wins */
		{"/a/b/c/d", TW_MATCH_EXACT, 5},
	};
	add_site(c, (const char *[]){"*", NULL}, rd, sizeof rd / sizeof rd[0]);
	struct tw_router *r = build_ok(c);
	assert_int_equal(match_id(r, "h", 1, "/a", NULL), 1);
	assert_int_equal(match_id(r, "h", 1, "/a/x", NULL), 1);
	assert_int_equal(match_id(r, "h", 1, "/a/b", NULL), 2);
	assert_int_equal(match_id(r, "h", 1, "/a/b/", NULL), 2);
	assert_int_equal(match_id(r, "h", 1, "/a/b/cc", NULL), 2);
	assert_int_equal(match_id(r, "h", 1, "/a/b/c/x", NULL), 3);
	assert_int_equal(match_id(r, "h", 1, "/a/b/c/d", NULL), 5);
	assert_int_equal(match_id(r, "h", 1, "/a/b/c/d/", NULL), 3);
	assert_int_equal(match_id(r, "h", 1, "/b", NULL), NO_ROUTE);
	cfg_done(c);
}

static int build_rc(struct tw_config *c)
{
	struct tw_router *r = (struct tw_router *)1;
	struct tw_err err = {0};
	int rc = tw_router_build(c, &r, &err);
	if (rc != 0) {
		assert_null(r);
		assert_true(err.msg[0] != '\0');
	}
	return rc;
}

static void build_errors(void **state)
{
	const char *bad_hosts[] = {"a.*.com", "*foo.com", "*.", "*.a*", "", "**.x", "a.com:80", "[::1]:80"};
	for (size_t i = 0; i < sizeof bad_hosts / sizeof bad_hosts[0]; i++) {
		struct tw_config *c = cfg_new();
		add_simple(c, (const char *[]){bad_hosts[i], NULL});
		if (build_rc(c) != TW_EINVAL)
			fail_msg("host \"%s\" accepted", bad_hosts[i]);
		cfg_done(c);
	}
	struct tw_config *c = cfg_new();
	add_simple(c, (const char *[]){"a.com", "b.com", NULL});
	add_simple(c, (const char *[]){"c.com", "B.com.", NULL});
	assert_int_equal(build_rc(c), TW_EINVAL);
	cfg_done(c);

	c = cfg_new();
	add_simple(c, (const char *[]){"*.a.com", NULL});
	add_simple(c, (const char *[]){"*.a.com", NULL});
	assert_int_equal(build_rc(c), TW_EINVAL);
	cfg_done(c);

	c = cfg_new();
	add_simple(c, (const char *[]){"*", NULL});
	add_simple(c, (const char *[]){"*", NULL});
	assert_int_equal(build_rc(c), TW_EINVAL);
	cfg_done(c);

	c = cfg_new();
	const struct rdef rd = {"api", TW_MATCH_PREFIX, 1};
	add_site(c, (const char *[]){"*", NULL}, &rd, 1);
	assert_int_equal(build_rc(c), TW_EINVAL);
	cfg_done(c);

	c = cfg_new();
	const struct rdef rd2 = {"/api", TW_MATCH_PREFIX, 20000}; /* backend out of range */
	add_site(c, (const char *[]){"*", NULL}, &rd2, 1);
	assert_int_equal(build_rc(c), TW_EINVAL);
	cfg_done(c);

	/* an empty config builds and matches nothing */
	c = cfg_new();
	assert_int_equal(build_rc(c), 0);
	cfg_done(c);
}

/* The default may also be given only by index (hand-built configs). */
static void default_by_index(void **state)
{
	struct tw_config *c = cfg_new();
	add_simple(c, (const char *[]){"a.com", NULL});
	size_t d = add_simple(c, (const char *[]){"b.com", NULL});
	c->default_site = d;
	struct tw_router *r = build_ok(c);
	assert_int_equal(host_site(r, "zzz"), d);
	cfg_done(c);
}

/* ---- request matchers (tw_route_ext) ---- */

struct fake_req {
	const char *hdrs[8][2];
};

static int fake_header_is(void *ctx, const char *name, const char *value)
{
	const struct fake_req *f = ctx;
	for (int i = 0; i < 8 && f->hdrs[i][0]; i++)
		if (strcasecmp(f->hdrs[i][0], name) == 0 && strcmp(f->hdrs[i][1], value) == 0)
			return 1;
	return 0;
}

static size_t match_req(const struct tw_router *r, const char *path, const char *method, const char *query,
			struct fake_req *f)
{
	struct tw_route_req q = {method, strlen(method), query, query ? strlen(query) : 0, fake_header_is, f};
	const struct tw_conf_route *rt = tw_router_match_req(r, "a.test", 6, path, strlen(path), &q, NULL);
	return rt ? rt->backend : NO_ROUTE;
}

static void matchers_precedence(void **state)
{
	(void)state;
	struct tw_config *c = cfg_new();
	struct rdef rd[] = {{"/", TW_MATCH_PREFIX, 1}, {"/", TW_MATCH_PREFIX, 2}, {"/", TW_MATCH_PREFIX, 3},
			    {"/", TW_MATCH_PREFIX, 4}, {"/", TW_MATCH_PREFIX, 5}, {"/x", TW_MATCH_EXACT, 6}};
	size_t si = add_site(c, (const char *[]){"a.test", NULL}, rd, 6);
	struct tw_conf_route *rt = c->sites[si].routes;
	static struct tw_nv h1[] = {{"X-A", "1"}}, h2[] = {{"X-A", "1"}, {"X-B", "2"}}, q1[] = {{"v", "3"}};
	static struct tw_route_ext e2 = {.headers = h1, .nheaders = 1, .order = 1};
	static struct tw_route_ext e3 = {.headers = h2, .nheaders = 2, .order = 2};
	static struct tw_route_ext e4 = {.query = q1, .nquery = 1, .order = 3};
	static struct tw_route_ext e5 = {.method = "DELETE", .order = 4};
	rt[1].ext = &e2;
	rt[2].ext = &e3;
	rt[3].ext = &e4;
	rt[4].ext = &e5;
	struct tw_router *r = build_ok(c);
	struct fake_req none = {{{NULL, NULL}}};
	struct fake_req one = {{{"x-a", "1"}}};
	struct fake_req two = {{{"x-a", "1"}, {"X-B", "2"}}};
	struct fake_req wrong = {{{"x-a", "10"}}};
	assert_int_equal(match_req(r, "/p", "GET", NULL, &none), 1);
	assert_int_equal(match_req(r, "/p", "GET", NULL, &one), 2);
	assert_int_equal(match_req(r, "/p", "GET", NULL, &two), 3); /* more header matches first */
	assert_int_equal(match_req(r, "/p", "GET", NULL, &wrong), 1);
	assert_int_equal(match_req(r, "/p", "GET", "a=1&v=3", &none), 4);
	assert_int_equal(match_req(r, "/p", "GET", "v=30", &none), 1);
	assert_int_equal(match_req(r, "/p", "GET", "v=3", &two), 3);      /* headers before query */
	assert_int_equal(match_req(r, "/p", "DELETE", "v=3", &two), 5);   /* method first */
	assert_int_equal(match_req(r, "/x", "DELETE", NULL, &two), 6);    /* a longer path beats matchers */
	/* without a request (tw_router_match): routes with matchers never match */
	assert_int_equal(match_id(r, "a.test", 6, "/p", NULL), 1);
	/* equality of extensions */
	assert_true(tw_route_ext_equal(NULL, NULL));
	assert_false(tw_route_ext_equal(&e2, NULL));
	assert_true(tw_route_ext_equal(&e2, &e2));
	assert_false(tw_route_ext_equal(&e2, &e3));
	struct tw_route_ext e2b = e2;
	assert_true(tw_route_ext_equal(&e2, &e2b));
	e2b.redirect = 301;
	assert_false(tw_route_ext_equal(&e2, &e2b));
	cfg_done(c);
}

static void wildcard_any_depth(void **state)
{
	(void)state;
	struct tw_config *c = cfg_new();
	size_t one = add_simple(c, (const char *[]){"*.one.test", NULL});
	size_t any = add_simple(c, (const char *[]){"*.any.test", NULL});
	size_t deeper = add_simple(c, (const char *[]){"*.b.any.test", NULL});
	c->sites[any].wild_any_depth = 1;
	struct tw_router *r = build_ok(c);
	assert_int_equal(host_site(r, "a.one.test"), one);
	assert_int_equal(host_site(r, "a.b.one.test"), SIZE_MAX); /* Ingress semantics: one label */
	assert_int_equal(host_site(r, "a.any.test"), any);
	assert_int_equal(host_site(r, "x.y.z.any.test"), any);
	assert_int_equal(host_site(r, "a.b.any.test"), deeper); /* the more specific wildcard wins */
	assert_int_equal(host_site(r, "a.c.b.any.test"), any);  /* *.b.any.test is one label only */
	assert_int_equal(host_site(r, "any.test"), SIZE_MAX);
	cfg_done(c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(host_precedence),   cmocka_unit_test(host_no_default),
		cmocka_unit_test(host_length_cap),   cmocka_unit_test(many_hosts),
		cmocka_unit_test(path_rules),        cmocka_unit_test(path_no_catch_all),
		cmocka_unit_test(longest_match_any_order), cmocka_unit_test(build_errors),
		cmocka_unit_test(default_by_index), cmocka_unit_test(matchers_precedence), cmocka_unit_test(wildcard_any_depth),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
