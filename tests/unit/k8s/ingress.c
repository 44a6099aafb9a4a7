/* Unit tests for src/k8s/ingress.c, the Ingress -> config translator:
 * class selection, hosts and wildcards, path types and precedence, merges
 * and conflicts, default backends, Service ports and EndpointSlices,
 * ExternalName, TLS from Secrets, tapwork.dev/ annotations with the
 * last-good fallback, limits and determinism. Results are checked through
 * the real router (src/http/route.c). Ends with a timing check (printed). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <time.h>

#include "core/log.h"
#include "http/route.h"
#include "k8s/ingress.h"
#include "tls/tls.h"
#include "tls/tls_test.h"


/* ---- fixtures ------------------------------------------------------------ */

/* JSON with ' for " (readable literals). */
static json_t *J(const char *text)
{
	char *t = strdup(text);
	for (char *p = t; *p; p++)
		if (*p == '\'')
			*p = '"';
	json_error_t e;
	json_t *j = json_loads(t, 0, &e);
	if (j == NULL)
		fail_msg("bad JSON (%s) in: %s", e.text, t);
	free(t);
	return j;
}

static void put(struct tw_k8s_store *s, const char *text)
{
	json_t *j = J(text);
	assert_int_equal(tw_k8s_store_put(s, j), 0);
	json_decref(j);
}

struct world {
	struct tw_k8s_store *ing, *cls, *svc, *eps, *sec, *last_good;
	struct tw_k8s_view v;
	struct tw_config *cfg;
	struct tw_router *router;
	struct tw_k8s_report rep;
};

static char dir[64];

static void world_init(struct world *w)
{
	memset(w, 0, sizeof *w);
	w->ing = tw_k8s_store_new();
	w->cls = tw_k8s_store_new();
	w->svc = tw_k8s_store_new();
	w->eps = tw_k8s_store_new();
	w->sec = tw_k8s_store_new();
	w->last_good = tw_k8s_store_new();
	w->v = (struct tw_k8s_view){.ingresses = w->ing, .ingress_classes = w->cls, .services = w->svc, .endpointslices = w->eps, .secrets = w->sec};
	put(w->cls, "{'metadata':{'name':'tapwork'},'spec':{'controller':'tapwork.dev/ingress-controller'}}");
	put(w->cls, "{'metadata':{'name':'nginx'},'spec':{'controller':'k8s.io/ingress-nginx'}}");
	put(w->svc, "{'metadata':{'namespace':'default','name':'web'},'spec':{'ports':[{'name':'http','port':80,'targetPort':8080}]}}");
	put(w->eps, "{'metadata':{'namespace':'default','name':'web-1','labels':{'kubernetes.io/service-name':'web'}},"
	            "'addressType':'IPv4','ports':[{'name':'http','port':8080,'protocol':'TCP'}],"
	            "'endpoints':[{'addresses':['10.0.0.1'],'conditions':{'ready':true}},{'addresses':['10.0.0.2']}]}");
}

static void world_free(struct world *w)
{
	tw_k8s_store_free(w->ing);
	tw_k8s_store_free(w->cls);
	tw_k8s_store_free(w->svc);
	tw_k8s_store_free(w->eps);
	tw_k8s_store_free(w->sec);
	tw_k8s_store_free(w->last_good);
	tw_config_free(w->cfg);
	tw_k8s_report_clear(&w->rep);
}

/* A fresh file config (http, optionally https), with our options. */
static struct tw_config *file_cfg(int https, const char *extra_sites)
{
	char y[2048];
	snprintf(y, sizeof y,
	         "listen: {http: 127.0.0.1:1%s}\n"
	         "state_dir: %s/state\n"
	         "backends: {fallback: {servers: [127.0.0.1:9]}}\n"
	         "sites:\n"
	         "  - hosts: [file.test]\n"
	         "    routes: [{path: /, handler: welcome}]\n%s",
	         https ? ", https: 127.0.0.1:2" : "", dir, extra_sites ? extra_sites : "");
	struct tw_config *c = NULL;
	struct tw_err e = {0};
	if (tw_config_load_string("t.yaml", y, strlen(y), &c, &e) != 0)
		fail_msg("config: %s", e.msg);
	c->has_k8s = 1;
	c->k8s.has_ingress = 1;
	c->k8s.ingress.class_name = "tapwork";
	c->k8s.ingress.controller = "tapwork.dev/ingress-controller";
	return c;
}

/* Translate into w->cfg (replacing the previous one) and build a router. */
static void apply_cfg(struct world *w, struct tw_config *cfg)
{
	tw_config_free(w->cfg);
	w->cfg = cfg;
	struct tw_err e = {0};
	if (tw_k8s_ingress_apply(w->cfg, &w->v, w->last_good, &w->rep, &e) != 0)
		fail_msg("apply: %s", e.msg);
	if (tw_router_build(w->cfg, &w->router, &e) != 0)
		fail_msg("router: %s", e.msg);
}

static void apply(struct world *w)
{
	apply_cfg(w, file_cfg(0, NULL));
}

/* The backend name a request goes to, "welcome", or NULL (404). */
static const char *route(const struct world *w, const char *host, const char *path)
{
	const struct tw_conf_route *r = tw_router_match(w->router, host, strlen(host), path, strlen(path), NULL);
	if (r == NULL)
		return NULL;
	if (r->handler == TW_HANDLER_WELCOME)
		return "welcome";
	assert_true(r->backend < w->cfg->nbackends);
	assert_string_equal(r->backend_name, w->cfg->backends[r->backend].name);
	return w->cfg->backends[r->backend].name;
}

static const struct tw_k8s_ingress_report *item(const struct world *w, const char *ns, const char *name)
{
	for (size_t i = 0; i < w->rep.nitems; i++)
		if (strcmp(w->rep.items[i].ns, ns) == 0 && strcmp(w->rep.items[i].name, name) == 0)
			return &w->rep.items[i];
	fail_msg("no report for %s/%s", ns, name);
	return NULL;
}

static const struct tw_conf_backend *backend(const struct world *w, const char *name)
{
	const struct tw_conf_backend *b = tw_config_backend(w->cfg, name);
	if (b == NULL)
		fail_msg("no backend %s", name);
	return b;
}

static const struct tw_conf_site *site_of(const struct world *w, const char *host)
{
	for (size_t i = 0; i < w->cfg->nsites; i++)
		for (size_t j = 0; j < w->cfg->sites[i].nhosts; j++)
			if (strcmp(w->cfg->sites[i].hosts[j], host) == 0)
				return &w->cfg->sites[i];
	fail_msg("no site %s", host);
	return NULL;
}

static int reason_has(const struct world *w, const char *ns, const char *name, const char *text)
{
	const struct tw_k8s_ingress_report *it = item(w, ns, name);
	return it->reason != NULL && strstr(it->reason, text) != NULL;
}

/* An Ingress: namespace, name, creation time, extra metadata members
 * (annotations ...; "" for none), spec body. */
static void ing(struct world *w, const char *ns, const char *name, const char *created, const char *meta,
                const char *spec)
{
	char t[16384];
	snprintf(t, sizeof t,
	         "{'metadata':{'namespace':'%s','name':'%s','resourceVersion':'1','creationTimestamp':'%s'%s%s},"
	         "'spec':{%s}}",
	         ns, name, created, meta[0] ? "," : "", meta, spec);
	put(w->ing, t);
}

#define WEB "{'service':{'name':'web','port':{'number':80}}}"
#define CLS "'ingressClassName':'tapwork',"
#define T0 "2024-01-01T00:00:00Z"
#define T1 "2024-02-01T00:00:00Z"
#define T2 "2024-03-01T00:00:00Z"
#define WEB_BE "k8s:default/web:80"

/* ---- tests --------------------------------------------------------------- */

static void class_selection(void **state)
{
	struct world w;
	world_init(&w);
	const char *rule = "'rules':[{'host':'%s.example.com','http':{'paths':[{'path':'/','pathType':'Prefix','backend':" WEB "}]}}]";
	char spec[512];
#define ING(name, meta, cls)                                                                                       \
	do {                                                                                                           \
		snprintf(spec, sizeof spec, "%s" , cls);                                                                   \
		size_t l = strlen(spec);                                                                                   \
		snprintf(spec + l, sizeof spec - l, rule, name);                                                          \
		ing(&w, "default", name, T0, meta, spec);                                                                 \
	} while (0)
	ING("byname", "", "'ingressClassName':'tapwork',");
	ING("othername", "", "'ingressClassName':'nginx',");
	ING("ghost", "", "'ingressClassName':'ghost',");
	ING("legacy", "'annotations':{'kubernetes.io/ingress.class':'tapwork'}", "");
	ING("legacyother", "'annotations':{'kubernetes.io/ingress.class':'nginx'}", "");
	ING("classless", "", "");
	apply(&w);
	assert_int_equal(w.rep.nitems, 6);
	assert_int_equal(item(&w, "default", "byname")->verdict, TW_K8S_SERVED);
	assert_int_equal(item(&w, "default", "othername")->verdict, TW_K8S_NOT_OURS);
	assert_int_equal(item(&w, "default", "ghost")->verdict, TW_K8S_NOT_OURS);
	assert_non_null(strstr(item(&w, "default", "ghost")->message, "does not exist"));
	assert_int_equal(item(&w, "default", "legacy")->verdict, TW_K8S_SERVED);
	assert_int_equal(item(&w, "default", "legacyother")->verdict, TW_K8S_NOT_OURS);
	assert_int_equal(item(&w, "default", "classless")->verdict, TW_K8S_NOT_OURS);
	assert_string_equal(route(&w, "byname.example.com", "/"), WEB_BE);
	assert_string_equal(route(&w, "legacy.example.com", "/x"), WEB_BE);
	assert_null(route(&w, "othername.example.com", "/"));
	assert_null(route(&w, "classless.example.com", "/"));

	/* watch_without_class takes the classless one (only). */
	struct tw_config *c = file_cfg(0, NULL);
	c->k8s.ingress.watch_without_class = 1;
	apply_cfg(&w, c);
	assert_int_equal(item(&w, "default", "classless")->verdict, TW_K8S_SERVED);
	assert_int_equal(item(&w, "default", "othername")->verdict, TW_K8S_NOT_OURS);
	assert_string_equal(route(&w, "classless.example.com", "/"), WEB_BE);

	/* Our IngressClass as the cluster default: classless ones are ours. */
	put(w.cls, "{'metadata':{'name':'tapwork','annotations':{'ingressclass.kubernetes.io/is-default-class':'true'}},"
	           "'spec':{'controller':'tapwork.dev/ingress-controller'}}");
	apply(&w);
	assert_int_equal(item(&w, "default", "classless")->verdict, TW_K8S_SERVED);
	assert_int_equal(item(&w, "default", "ghost")->verdict, TW_K8S_NOT_OURS);
	/* Another controller's default class does not make them ours. */
	put(w.cls, "{'metadata':{'name':'tapwork'},'spec':{'controller':'tapwork.dev/ingress-controller'}}");
	put(w.cls, "{'metadata':{'name':'nginx','annotations':{'ingressclass.kubernetes.io/is-default-class':'true'}},"
	           "'spec':{'controller':'k8s.io/ingress-nginx'}}");
	apply(&w);
	assert_int_equal(item(&w, "default", "classless")->verdict, TW_K8S_NOT_OURS);

	/* Namespaces filter. */
	ing(&w, "prod", "p", T0, "", CLS "'rules':[{'host':'prod.example.com','http':{'paths':[{'path':'/','pathType':'Prefix','backend':" WEB "}]}}]");
	c = file_cfg(0, NULL);
	char *nss[] = {"prod"};
	c->k8s.ingress.namespaces = nss;
	c->k8s.ingress.nnamespaces = 1;
	apply_cfg(&w, c);
	assert_int_equal(item(&w, "prod", "p")->verdict, TW_K8S_SERVED);
	assert_int_equal(item(&w, "default", "byname")->verdict, TW_K8S_NOT_OURS);
	assert_non_null(strstr(item(&w, "default", "byname")->message, "namespace"));
	assert_null(route(&w, "byname.example.com", "/"));
	/* the Service lives in default: prod/web has no Service -> 503 backend */
	assert_string_equal(route(&w, "prod.example.com", "/"), "k8s:prod/web:80");
	assert_int_equal(backend(&w, "k8s:prod/web:80")->nservers, 0);
	assert_true(reason_has(&w, "prod", "p", "not found"));
	c->k8s.ingress.namespaces = NULL; /* not arena memory */
	c->k8s.ingress.nnamespaces = 0;
	world_free(&w);
#undef ING
}

static void hosts_and_wildcards(void **state)
{
	struct world w;
	world_init(&w);
	ing(&w, "default", "a", T0, "",
	    CLS "'rules':[{'host':'Foo.Example.COM','http':{'paths':[{'path':'/','pathType':'Prefix','backend':" WEB "}]}},"
	    "{'host':'*.example.com','http':{'paths':[{'path':'/w','pathType':'Prefix','backend':{'service':{'name':'wild','port':{'number':81}}}}]}},"
	    "{'http':{'paths':[{'path':'/any','pathType':'Prefix','backend':{'service':{'name':'any','port':{'number':82}}}}]}},"
	    "{'host':'file.test','http':{'paths':[{'path':'/','pathType':'Prefix','backend':" WEB "}]}},"
	    "{'host':'bad host!','http':{'paths':[{'path':'/','pathType':'Prefix','backend':" WEB "}]}}]");
	apply(&w);
	assert_int_equal(item(&w, "default", "a")->verdict, TW_K8S_SERVED);
	assert_string_equal(route(&w, "foo.example.com", "/x"), WEB_BE);
	assert_string_equal(route(&w, "FOO.example.com:8443", "/"), WEB_BE);
	assert_string_equal(route(&w, "bar.example.com", "/w/1"), "k8s:default/wild:81");
	assert_null(route(&w, "bar.example.com", "/x"));              /* host matched, path did not */
	assert_string_equal(route(&w, "a.b.example.com", "/any"), "k8s:default/any:82"); /* two labels: "*" */
	assert_string_equal(route(&w, "example.com", "/any/x"), "k8s:default/any:82");
	assert_string_equal(route(&w, "file.test", "/"), "welcome"); /* the file wins */
	assert_true(reason_has(&w, "default", "a", "file.test is served by the config file"));
	assert_true(reason_has(&w, "default", "a", "bad host"));
	assert_int_equal(w.cfg->default_site < w.cfg->nsites, 1);
	assert_string_equal(w.cfg->sites[w.cfg->default_site].hosts[0], "*");
	site_of(&w, "foo.example.com");
	site_of(&w, "*.example.com");

	/* A file "*" site keeps the hostless rules out. */
	apply_cfg(&w, file_cfg(0, "  - hosts: [\"*\"]\n    routes: [{path: /, handler: welcome}]\n"));
	assert_string_equal(route(&w, "nothing.example", "/any"), "welcome");
	assert_true(reason_has(&w, "default", "a", "host * is served by the config file"));
	world_free(&w);
}

static void path_types_and_precedence(void **state)
{
	struct world w;
	world_init(&w);
#define P(path, type, svc) "{'path':'" path "','pathType':'" type "','backend':{'service':{'name':'" svc "','port':{'number':80}}}}"
	ing(&w, "default", "a", T0, "",
	    CLS "'rules':[{'host':'p.example.com','http':{'paths':[" P("/foo", "Prefix", "prefix") "," P("/foo", "Exact", "exact") ","
	    P("/foo/bar/", "Prefix", "bar") "," P("/img", "ImplementationSpecific", "impl") "," P("/", "Prefix", "root") ","
	    P("/x/", "Exact", "xslash") "]}}]");
	apply(&w);
	assert_string_equal(route(&w, "p.example.com", "/foo"), "k8s:default/exact:80");   /* Exact wins the tie */
	assert_string_equal(route(&w, "p.example.com", "/foo/"), "k8s:default/prefix:80"); /* trailing slash */
	assert_string_equal(route(&w, "p.example.com", "/foo/baz"), "k8s:default/prefix:80");
	assert_string_equal(route(&w, "p.example.com", "/foobar"), "k8s:default/root:80"); /* element-wise */
	assert_string_equal(route(&w, "p.example.com", "/foo/bar"), "k8s:default/bar:80"); /* longest */
	assert_string_equal(route(&w, "p.example.com", "/foo/bar/baz"), "k8s:default/bar:80");
	assert_string_equal(route(&w, "p.example.com", "/foo/barbaz"), "k8s:default/prefix:80");
	assert_string_equal(route(&w, "p.example.com", "/img/a.png"), "k8s:default/impl:80");
	assert_string_equal(route(&w, "p.example.com", "/x/"), "k8s:default/xslash:80");
	assert_string_equal(route(&w, "p.example.com", "/x"), "k8s:default/root:80"); /* Exact: byte for byte */
	world_free(&w);
}

static void merge_and_conflicts(void **state)
{
	/* Same objects, inserted in both orders and with names that sort
	 * against age: the older Ingress wins every time. */
	for (int round = 0; round < 2; round++) {
		struct world w;
		world_init(&w);
		const char *older = "{'host':'m.example.com','http':{'paths':[" P("/", "Prefix", "old") "," P("/a", "Prefix", "olda") "]}}";
		const char *newer = "{'host':'m.example.com','http':{'paths':[" P("/", "Prefix", "new") "," P("/b", "Prefix", "newb") "]}}";
		char s1[1024], s2[1024];
		snprintf(s1, sizeof s1, CLS "'rules':[%s]", older);
		snprintf(s2, sizeof s2, CLS "'rules':[%s]", newer);
		if (round == 0) {
			ing(&w, "default", "zz-old", T0, "", s1);
			ing(&w, "default", "aa-new", T1, "", s2);
		} else {
			ing(&w, "default", "aa-new", T1, "", s2);
			ing(&w, "default", "zz-old", T0, "", s1);
		}
		apply(&w);
		assert_string_equal(route(&w, "m.example.com", "/"), "k8s:default/old:80");
		assert_string_equal(route(&w, "m.example.com", "/a/1"), "k8s:default/olda:80");
		assert_string_equal(route(&w, "m.example.com", "/b"), "k8s:default/newb:80"); /* merged */
		assert_int_equal(w.rep.conflicts, 1);
		assert_true(reason_has(&w, "default", "aa-new", "served by the older Ingress default/zz-old"));
		assert_false(reason_has(&w, "default", "zz-old", "older Ingress"));
		assert_null(tw_config_backend(w.cfg, "k8s:default/new:80")); /* losers create nothing */
		/* Same creation time: namespace/name decides. */
		ing(&w, "default", "aa-new", T0, "", s2);
		apply(&w);
		assert_string_equal(route(&w, "m.example.com", "/"), "k8s:default/new:80");
		assert_true(reason_has(&w, "default", "zz-old", "older Ingress default/aa-new"));
		world_free(&w);
	}
}

static void default_backends(void **state)
{
	struct world w;
	world_init(&w);
	ing(&w, "default", "d", T0, "",
	    CLS "'defaultBackend':{'service':{'name':'dflt','port':{'number':80}}},"
	    "'rules':[{'host':'d.example.com','http':{'paths':[" P("/api", "Prefix", "api") "]}}]");
	ing(&w, "default", "e", T1, "",
	    CLS "'rules':[{'host':'d.example.com','http':{'paths':[" P("/", "Prefix", "eroot") "]}}]");
	apply(&w);
	assert_string_equal(route(&w, "d.example.com", "/api/x"), "k8s:default/api:80");
	assert_string_equal(route(&w, "d.example.com", "/other"), "k8s:default/eroot:80"); /* a rule beats defaultBackend */
	assert_string_equal(route(&w, "unknown.example", "/z"), "k8s:default/dflt:80");    /* no rule matches */
	assert_int_equal(w.rep.conflicts, 0);
	tw_k8s_store_del(w.ing, "default", "e");
	apply(&w);
	assert_string_equal(route(&w, "d.example.com", "/other"), "k8s:default/dflt:80");

	/* No Ingress defaultBackend: kubernetes.ingress.default_backend (a file backend), else 404. */
	tw_k8s_store_del(w.ing, "default", "d");
	ing(&w, "default", "f", T0, "", CLS "'rules':[{'host':'f.example.com','http':{'paths':[" P("/", "Prefix", "f") "]}}]");
	struct tw_config *c = file_cfg(0, NULL);
	c->k8s.ingress.default_backend = "fallback";
	apply_cfg(&w, c);
	assert_string_equal(route(&w, "nope.example", "/"), "fallback");
	assert_string_equal(route(&w, "f.example.com", "/"), "k8s:default/f:80");
	apply(&w);
	assert_null(route(&w, "nope.example", "/"));
	world_free(&w);
}

static void service_ports(void **state)
{
	struct world w;
	world_init(&w);
	/* Two named ports, targetPort by name; slices name ports after the Service port. */
	put(w.svc, "{'metadata':{'namespace':'default','name':'api'},'spec':{'ports':["
	           "{'name':'http','port':80,'targetPort':'web-port'},{'name':'admin','port':9000,'targetPort':9001}]}}");
	put(w.eps, "{'metadata':{'namespace':'default','name':'api-x','labels':{'kubernetes.io/service-name':'api'}},"
	           "'addressType':'IPv4','ports':[{'name':'http','port':8080},{'name':'admin','port':9001}],"
	           "'endpoints':[{'addresses':['10.1.0.1']}]}");
	/* One unnamed port. */
	put(w.svc, "{'metadata':{'namespace':'default','name':'solo'},'spec':{'ports':[{'port':8000,'targetPort':3000}]}}");
	put(w.eps, "{'metadata':{'namespace':'default','name':'solo-x','labels':{'kubernetes.io/service-name':'solo'}},"
	           "'addressType':'IPv4','ports':[{'port':3000}],'endpoints':[{'addresses':['10.2.0.1']}]}");
	ing(&w, "default", "p", T0, "",
	    CLS "'rules':[{'host':'p.example.com','http':{'paths':["
	    "{'path':'/n','pathType':'Prefix','backend':{'service':{'name':'api','port':{'name':'http'}}}},"
	    "{'path':'/num','pathType':'Prefix','backend':{'service':{'name':'api','port':{'number':80}}}},"
	    "{'path':'/admin','pathType':'Prefix','backend':{'service':{'name':'api','port':{'number':9000}}}},"
	    "{'path':'/solo','pathType':'Prefix','backend':{'service':{'name':'solo','port':{'number':8000}}}},"
	    "{'path':'/missing','pathType':'Prefix','backend':{'service':{'name':'api','port':{'name':'nope'}}}},"
	    "{'path':'/res','pathType':'Prefix','backend':{'resource':{'apiGroup':'k8s.example.com','kind':'Bucket','name':'b'}}}]}}]");
	apply(&w);
	/* by name and by number: the same backend, named by the Service port number */
	assert_string_equal(route(&w, "p.example.com", "/n"), "k8s:default/api:80");
	assert_string_equal(route(&w, "p.example.com", "/num"), "k8s:default/api:80");
	const struct tw_conf_backend *b = backend(&w, "k8s:default/api:80");
	assert_int_equal(b->nservers, 1);
	assert_string_equal(b->servers[0].addr.text, "10.1.0.1:8080");
	b = backend(&w, "k8s:default/api:9000");
	assert_int_equal(b->nservers, 1);
	assert_string_equal(b->servers[0].addr.text, "10.1.0.1:9001");
	b = backend(&w, "k8s:default/solo:8000");
	assert_int_equal(b->nservers, 1);
	assert_string_equal(b->servers[0].addr.text, "10.2.0.1:3000");
	assert_int_equal(backend(&w, "k8s:default/api:nope")->nservers, 0);
	assert_true(reason_has(&w, "default", "p", "has no port nope"));
	assert_string_equal(route(&w, "p.example.com", "/res"), "k8s:default/resource:Bucket/b");
	assert_int_equal(backend(&w, "k8s:default/resource:Bucket/b")->nservers, 0);
	assert_true(reason_has(&w, "default", "p", "resource backend Bucket/b is not supported"));
	/* defaults of a translated backend match the file's */
	assert_int_equal(b->retries, 2);
	assert_int_equal(b->connect_timeout_ms, 5000);
	assert_int_equal(b->response_timeout_ms, 60000);
	assert_int_equal(b->servers[0].weight, 1);
	world_free(&w);
}

static void endpoint_slices(void **state)
{
	struct world w;
	world_init(&w);
	/* web: a second slice repeating 10.0.0.2, adding a not-ready one and an IPv6 one */
	put(w.eps, "{'metadata':{'namespace':'default','name':'web-2','labels':{'kubernetes.io/service-name':'web'}},"
	           "'addressType':'IPv4','ports':[{'name':'http','port':8080}],"
	           "'endpoints':[{'addresses':['10.0.0.2']},{'addresses':['10.0.0.3'],'conditions':{'ready':false}},"
	           "{'addresses':['pod.example']},{'addresses':['fd00::9']}]}"); /* not IPv4: skipped, never resolved */
	put(w.eps, "{'metadata':{'namespace':'default','name':'web-3','labels':{'kubernetes.io/service-name':'web'}},"
	           "'addressType':'IPv6','ports':[{'name':'http','port':8080}],'endpoints':[{'addresses':['fd00::1']}]}");
	put(w.eps, "{'metadata':{'namespace':'default','name':'web-4','labels':{'kubernetes.io/service-name':'web'}},"
	           "'addressType':'FQDN','ports':[{'name':'http','port':8080}],'endpoints':[{'addresses':['x.example']}]}");
	/* another namespace's slice with the same service name is not ours */
	put(w.eps, "{'metadata':{'namespace':'other','name':'web-1','labels':{'kubernetes.io/service-name':'web'}},"
	           "'addressType':'IPv4','ports':[{'name':'http','port':8080}],'endpoints':[{'addresses':['10.9.9.9']}]}");
	/* term: only terminating endpoints, one still serving */
	put(w.svc, "{'metadata':{'namespace':'default','name':'term'},'spec':{'ports':[{'name':'http','port':80}]}}");
	put(w.eps, "{'metadata':{'namespace':'default','name':'term-1','labels':{'kubernetes.io/service-name':'term'}},"
	           "'addressType':'IPv4','ports':[{'name':'http','port':80}],'endpoints':["
	           "{'addresses':['10.3.0.1'],'conditions':{'ready':false,'serving':true,'terminating':true}},"
	           "{'addresses':['10.3.0.2'],'conditions':{'ready':false,'serving':false,'terminating':true}}]}");
	/* empty: a Service without endpoints */
	put(w.svc, "{'metadata':{'namespace':'default','name':'empty'},'spec':{'ports':[{'name':'http','port':80}]}}");
	ing(&w, "default", "e", T0, "",
	    CLS "'rules':[{'host':'e.example.com','http':{'paths':[" P("/", "Prefix", "web") "," P("/t", "Prefix", "term") ","
	    P("/e", "Prefix", "empty") "]}}]");
	apply(&w);
	const struct tw_conf_backend *b = backend(&w, WEB_BE);
	assert_int_equal(b->nservers, 3);
	assert_string_equal(b->servers[0].addr.text, "10.0.0.1:8080");
	assert_string_equal(b->servers[1].addr.text, "10.0.0.2:8080");
	assert_string_equal(b->servers[2].addr.text, "[fd00::1]:8080");
	b = backend(&w, "k8s:default/term:80");
	assert_int_equal(b->nservers, 1);
	assert_string_equal(b->servers[0].addr.text, "10.3.0.1:80");
	/* a ready endpoint appears: terminating ones are no longer used */
	put(w.eps, "{'metadata':{'namespace':'default','name':'term-2','labels':{'kubernetes.io/service-name':'term'}},"
	           "'addressType':'IPv4','ports':[{'name':'http','port':80}],'endpoints':[{'addresses':['10.3.0.9']}]}");
	b = backend(&w, "k8s:default/empty:80");
	assert_int_equal(b->nservers, 0);
	assert_string_equal(route(&w, "e.example.com", "/e"), "k8s:default/empty:80"); /* 503 at the edge */
	assert_true(reason_has(&w, "default", "e", "empty has no ready endpoints"));
	apply(&w);
	b = backend(&w, "k8s:default/term:80");
	assert_int_equal(b->nservers, 1);
	assert_string_equal(b->servers[0].addr.text, "10.3.0.9:80");
	world_free(&w);
}

static void external_name(void **state)
{
	struct world w;
	world_init(&w);
	put(w.svc, "{'metadata':{'namespace':'default','name':'ext'},'spec':{'type':'ExternalName','externalName':'127.0.0.7',"
	           "'ports':[{'name':'http','port':8081}]}}");
	ing(&w, "default", "x", T0, "", CLS "'rules':[{'host':'x.example.com','http':{'paths':[" P("/", "Prefix", "ext") "]}}]");
	apply(&w);
	assert_int_equal(backend(&w, "k8s:default/ext:80")->nservers, 0);
	assert_true(reason_has(&w, "default", "x", "has no port"));
	ing(&w, "default", "x", T0, "",
	    CLS "'rules':[{'host':'x.example.com','http':{'paths':[{'path':'/','pathType':'Prefix','backend':"
	    "{'service':{'name':'ext','port':{'name':'http'}}}}]}}]");
	apply(&w);
	assert_int_equal(backend(&w, "k8s:default/ext:8081")->nservers, 0);
	assert_true(reason_has(&w, "default", "x", "ExternalName, which is off"));
	struct tw_config *c = file_cfg(0, NULL);
	c->k8s.ingress.external_name = 1;
	apply_cfg(&w, c);
	const struct tw_conf_backend *b = backend(&w, "k8s:default/ext:8081");
	assert_int_equal(b->nservers, 1);
	assert_string_equal(b->servers[0].addr.text, "127.0.0.7:8081");
	assert_null(item(&w, "default", "x")->reason);
	world_free(&w);
}

/* base64 of a file's bytes. */
static char *b64_file(const char *path)
{
	FILE *f = fopen(path, "rb");
	assert_non_null(f);
	unsigned char buf[8192];
	size_t n = fread(buf, 1, sizeof buf, f);
	fclose(f);
	char *out = malloc(4 * (n / 3 + 2) + 1);
	EVP_EncodeBlock((unsigned char *)out, buf, (int)n);
	return out;
}

static void tls_hosts(void **state)
{
	struct world w;
	world_init(&w);
	char crt[128], key[128], sec[20000];
	snprintf(crt, sizeof crt, "%s/s.crt", dir);
	snprintf(key, sizeof key, "%s/s.key", dir);
	assert_int_equal(write_selfsigned(crt, key, 0, "s.example.com", "DNS:s.example.com", 42), 0);
	char *c64 = b64_file(crt), *k64 = b64_file(key);
	snprintf(sec, sizeof sec,
	         "{'metadata':{'namespace':'default','name':'s-tls'},'type':'kubernetes.io/tls','data':{'tls.crt':'%s','tls.key':'%s'}}",
	         c64, k64);
	put(w.sec, sec);
	snprintf(sec, sizeof sec,
	         "{'metadata':{'namespace':'default','name':'swapped'},'type':'kubernetes.io/tls','data':{'tls.crt':'%s','tls.key':'%s'}}",
	         k64, c64);
	put(w.sec, sec);
	put(w.sec, "{'metadata':{'namespace':'default','name':'junk'},'type':'kubernetes.io/tls','data':{'tls.crt':'!!','tls.key':'QQ=='}}");
	free(c64);
	free(k64);
#define R(h) "{'host':'" h "','http':{'paths':[" P("/", "Prefix", "web") "]}}"
	ing(&w, "default", "t", T0, "",
	    CLS "'tls':[{'hosts':['s.example.com'],'secretName':'s-tls'},{'hosts':['missing.example.com'],'secretName':'nope'},"
	    "{'hosts':['bad.example.com'],'secretName':'swapped'},{'hosts':['junk.example.com'],'secretName':'junk'},"
	    "{'hosts':['auto.example.com','orphan.example.com']}],"
	    "'rules':[" R("s.example.com") "," R("missing.example.com") "," R("bad.example.com") "," R("junk.example.com") ","
	    R("auto.example.com") "," R("plain.example.com") "]");
	ing(&w, "default", "u", T1, "'annotations':{'tapwork.dev/ssl-redirect':'false','tapwork.dev/hsts':'false'}",
	    CLS "'tls':[{'hosts':['s.example.com'],'secretName':'other'},{'hosts':['u.example.com'],'secretName':'s-tls'}],"
	    "'rules':[" R("u.example.com") "]");
	/* A wildcard TLS host covers the exact hosts of its own Ingress only. */
	ing(&w, "default", "v", T0, "", CLS "'tls':[{'hosts':['*.wild.example.com'],'secretName':'s-tls'}],"
	    "'rules':[" R("a.wild.example.com") "]");
	ing(&w, "other", "v", T0, "", CLS "'rules':[" R("b.wild.example.com") "]");
	struct tw_config *c = file_cfg(1, NULL);
	c->has_acme = 1;
	apply_cfg(&w, c);
	assert_int_equal(site_of(&w, "a.wild.example.com")->tls_effective, TW_TLS_FILES);
	assert_int_equal(site_of(&w, "b.wild.example.com")->tls_effective, TW_TLS_OFF);
	const struct tw_conf_site *s = site_of(&w, "s.example.com");
	size_t si = (size_t)(s - w.cfg->sites);
	assert_int_equal(s->tls_effective, TW_TLS_FILES);
	assert_int_equal(s->ncerts, 1);
	assert_non_null(s->certs[0].cert_pem);
	assert_string_equal(s->certs[0].cert, "secret:default/s-tls (tls.crt)");
	assert_true(s->hsts);
	assert_true(tw_tls_site_wants_redirect(w.cfg, si));
	assert_int_equal(site_of(&w, "missing.example.com")->tls_effective, TW_TLS_INTERNAL);
	assert_true(reason_has(&w, "default", "t", "Secret default/nope not found"));
	assert_int_equal(site_of(&w, "bad.example.com")->tls_effective, TW_TLS_INTERNAL);
	assert_true(reason_has(&w, "default", "t", "secret:default/swapped"));
	assert_int_equal(site_of(&w, "junk.example.com")->tls_effective, TW_TLS_INTERNAL);
	assert_true(reason_has(&w, "default", "t", "not base64"));
	assert_int_equal(site_of(&w, "auto.example.com")->tls_effective, TW_TLS_ACME);
	assert_true(reason_has(&w, "default", "t", "TLS host orphan.example.com has no rule"));
	s = site_of(&w, "plain.example.com");
	assert_int_equal(s->tls_effective, TW_TLS_OFF);
	assert_false(tw_tls_site_wants_redirect(w.cfg, (size_t)(s - w.cfg->sites)));
	/* u: TLS from a Secret, no redirect, no HSTS (annotations); its claim on
	 * s.example.com loses to the older t */
	s = site_of(&w, "u.example.com");
	assert_int_equal(s->tls_effective, TW_TLS_FILES);
	assert_false(s->hsts);
	assert_false(tw_tls_site_wants_redirect(w.cfg, (size_t)(s - w.cfg->sites)));
	assert_int_equal(w.rep.conflicts, 1);
	assert_true(reason_has(&w, "default", "u", "TLS for s.example.com (conflict)"));

	/* The store serves the Secret's certificate. */
	struct tw_tls_store *st = NULL;
	struct tw_err e = {0};
	if (tw_tls_store_build(w.cfg, NULL, &st, &e) != 0)
		fail_msg("store: %s", e.msg);
	int found = 0;
	for (size_t i = 0; i < tw_tls_store_ncerts(st); i++) {
		const struct tw_tls_cert_info *ci = tw_tls_store_cert(st, i);
		if (ci->site == si) {
			found = 1;
			assert_int_equal(ci->source, TW_TLS_SRC_FILE);
			assert_non_null(strstr(ci->names, "s.example.com"));
		}
	}
	assert_true(found);
	tw_tls_store_release(st);

	/* Without acme: the secretName-less host gets the internal CA, reported. */
	apply_cfg(&w, file_cfg(1, NULL));
	assert_int_equal(site_of(&w, "auto.example.com")->tls_effective, TW_TLS_INTERNAL);
	assert_true(reason_has(&w, "default", "t", "without secretName needs acme"));
	/* Without an HTTPS listener: plain HTTP, reported. */
	apply(&w);
	assert_int_equal(site_of(&w, "s.example.com")->tls_effective, TW_TLS_OFF);
	assert_true(reason_has(&w, "default", "t", "no HTTPS listener"));
	world_free(&w);
#undef R
}

static void annotations(void **state)
{
	struct world w;
	world_init(&w);
	const char *spec = CLS "'rules':[{'host':'an.example.com','http':{'paths':[" P("/", "Prefix", "web") "]}}]";
	ing(&w, "default", "a", T0,
	    "'annotations':{'tapwork.dev/load-balance':'hash','tapwork.dev/hash-key':'header:X-User','tapwork.dev/retries':'0',"
	    "'tapwork.dev/proxy-connect-timeout':'2s','tapwork.dev/proxy-read-timeout':'5m','tapwork.dev/proxy-body-size':'8m',"
	    "'other.io/ignored':'x'}",
	    spec);
	ing(&w, "default", "b", T1, "",
	    CLS "'rules':[{'host':'plainb.example.com','http':{'paths':[" P("/", "Prefix", "web") "]}}]");
	apply(&w);
	assert_int_equal(item(&w, "default", "a")->verdict, TW_K8S_SERVED);
	/* proxy-body-size: the Ingress's routes carry their own cap; others none */
	uint64_t eight = 0;
	assert_int_equal(tw_size_parse("8m", &eight, NULL), 0);
	const struct tw_conf_route *rt = tw_router_match(w.router, "an.example.com", 14, "/x", 2, NULL);
	assert_non_null(rt);
	assert_true(rt->max_body == eight && eight > 0);
	rt = tw_router_match(w.router, "plainb.example.com", 18, "/x", 2, NULL);
	assert_non_null(rt);
	assert_true(rt->max_body == 0);
	const char *name = route(&w, "an.example.com", "/");
	assert_non_null(name);
	assert_int_equal(strncmp(name, "k8s:default/web:80#", 19), 0); /* own settings, own backend */
	const struct tw_conf_backend *b = backend(&w, name);
	assert_int_equal(b->balance, TW_BAL_HASH);
	assert_int_equal(b->hash_src, TW_HASH_HEADER);
	assert_string_equal(b->hash_name, "X-User");
	assert_int_equal(b->retries, 0);
	assert_int_equal(b->connect_timeout_ms, 2000);
	assert_int_equal(b->response_timeout_ms, 300000);
	assert_int_equal(b->nservers, 2);
	assert_string_equal(route(&w, "plainb.example.com", "/"), WEB_BE); /* defaults: the shared one */
	char good_name[128];
	snprintf(good_name, sizeof good_name, "%s", name);
	assert_non_null(tw_k8s_store_get(w.last_good, "default", "a"));

	/* Invalid value: rejected, the last good version keeps serving. */
	static const char *const bad[] = {
	    "'tapwork.dev/retries':'11'", "'tapwork.dev/load-balance':'fastest'", "'tapwork.dev/hsts':'yes'",
	    "'tapwork.dev/proxy-read-timeout':'soon'", "'tapwork.dev/hash-key':'header:'", "'tapwork.dev/server-snippet':'x'",
	    "'tapwork.dev/proxy-body-size':'lots'"};
	static const char *const key[] = {"retries", "load-balance", "hsts", "proxy-read-timeout", "hash-key",
	                                  "server-snippet", "proxy-body-size"};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		char meta[256];
		snprintf(meta, sizeof meta, "'annotations':{%s}", bad[i]);
		ing(&w, "default", "a", T0, meta, spec);
		apply(&w);
		const struct tw_k8s_ingress_report *it = item(&w, "default", "a");
		assert_int_equal(it->verdict, TW_K8S_REJECTED);
		char want[64];
		snprintf(want, sizeof want, "tapwork.dev/%s", key[i]);
		if (strstr(it->reason, want) == NULL)
			fail_msg("reason \"%s\" does not name %s", it->reason, want);
		assert_non_null(strstr(it->message, "last accepted version keeps serving"));
		assert_string_equal(route(&w, "an.example.com", "/"), good_name);
	}
	/* Deleted: its last good entry goes too; a new invalid one is not served. */
	tw_k8s_store_del(w.ing, "default", "a");
	apply(&w);
	assert_null(tw_k8s_store_get(w.last_good, "default", "a"));
	assert_null(route(&w, "an.example.com", "/"));
	ing(&w, "default", "a", T0, "'annotations':{'tapwork.dev/retries':'-1'}", spec);
	apply(&w);
	assert_int_equal(item(&w, "default", "a")->verdict, TW_K8S_REJECTED);
	assert_non_null(strstr(item(&w, "default", "a")->message, "not served"));
	assert_null(route(&w, "an.example.com", "/"));
	/* Not ours any more: dropped from last_good. */
	ing(&w, "default", "b", T1, "", "'ingressClassName':'nginx'");
	apply(&w);
	assert_null(tw_k8s_store_get(w.last_good, "default", "b"));
	world_free(&w);
}

static void limits(void **state)
{
	struct world w;
	world_init(&w);
	char *spec = malloc(64 * 1024);
	size_t l = (size_t)snprintf(spec, 64 * 1024, CLS "'rules':[");
	for (int i = 0; i < 300; i++)
		l += (size_t)snprintf(spec + l, 64 * 1024 - l, "%s{'host':'h%d.example.com'}", i ? "," : "", i);
	snprintf(spec + l, 64 * 1024 - l, "]");
	ing(&w, "default", "huge", T0, "", spec);
	free(spec);
	apply(&w);
	assert_int_equal(item(&w, "default", "huge")->verdict, TW_K8S_REJECTED);
	assert_non_null(strstr(item(&w, "default", "huge")->reason, "more than 256 rules"));
	world_free(&w);
}

/* Two translations of one view give the same config. */
static void deterministic(void **state)
{
	struct world w;
	world_init(&w);
	ing(&w, "b", "one", T0, "", CLS "'rules':[{'host':'z.example.com','http':{'paths':[" P("/", "Prefix", "web") "]}}]");
	ing(&w, "a", "two", T0, "", CLS "'rules':[{'host':'y.example.com','http':{'paths':[" P("/", "Prefix", "web") "]}},"
	                            "{'http':{'paths':[" P("/", "Prefix", "web") "]}}]");
	char first[4096] = "", second[4096] = "";
	for (int round = 0; round < 2; round++) {
		apply(&w);
		char *out = round ? second : first;
		size_t l = 0;
		for (size_t i = 0; i < w.cfg->nsites; i++)
			for (size_t r = 0; r < w.cfg->sites[i].nroutes; r++)
				l += (size_t)snprintf(out + l, 4096 - l, "%s%s>%zu;", w.cfg->sites[i].hosts[0],
				                      w.cfg->sites[i].routes[r].path, w.cfg->sites[i].routes[r].backend);
		for (size_t b = 0; b < w.cfg->nbackends; b++)
			l += (size_t)snprintf(out + l, 4096 - l, "%s,", w.cfg->backends[b].name);
	}
	assert_string_equal(first, second);
	assert_non_null(strstr(first, "k8s:a/web:80,k8s:b/web:80,"));
	world_free(&w);
}

/* Not an assertion: how long 10,000 Ingresses and 50,000 endpoints take. */
static void timing(void **state)
{
	struct world w;
	world_init(&w);
	char buf[4096];
	for (int i = 0; i < 10000; i++) {
		snprintf(buf, sizeof buf, "{'metadata':{'namespace':'ns%d','name':'svc%d'},'spec':{'ports':[{'name':'http','port':80}]}}",
		         i % 100, i);
		put(w.svc, buf);
		size_t l = (size_t)snprintf(buf, sizeof buf,
		                            "{'metadata':{'namespace':'ns%d','name':'svc%d-x','labels':{'kubernetes.io/service-name':'svc%d'}},"
		                            "'addressType':'IPv4','ports':[{'name':'http','port':8080}],'endpoints':[",
		                            i % 100, i, i);
		for (int k = 0; k < 5; k++)
			l += (size_t)snprintf(buf + l, sizeof buf - l, "%s{'addresses':['10.%d.%d.%d']}", k ? "," : "",
			                      i / 256 % 256, i % 256, k + 1);
		snprintf(buf + l, sizeof buf - l, "]}");
		put(w.eps, buf);
		snprintf(buf, sizeof buf,
		         "{'metadata':{'namespace':'ns%d','name':'ing%d','creationTimestamp':'2024-01-01T00:00:00Z'},"
		         "'spec':{'ingressClassName':'tapwork','rules':[{'host':'h%d.example.com','http':{'paths':["
		         "{'path':'/','pathType':'Prefix','backend':{'service':{'name':'svc%d','port':{'number':80}}}},"
		         "{'path':'/api','pathType':'Exact','backend':{'service':{'name':'svc%d','port':{'name':'http'}}}}]}}]}}",
		         i % 100, i, i, i, i);
		put(w.ing, buf);
	}
	struct tw_config *c = file_cfg(0, NULL);
	struct timespec t0, t1;
	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t0);
	struct tw_err e = {0};
	assert_int_equal(tw_k8s_ingress_apply(c, &w.v, w.last_good, &w.rep, &e), 0);
	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t1);
	double ms = (double)(t1.tv_sec - t0.tv_sec) * 1e3 + (double)(t1.tv_nsec - t0.tv_nsec) / 1e6;
	size_t nsrv = 0;
	for (size_t b = 0; b < c->nbackends; b++)
		if (strncmp(c->backends[b].name, "k8s:", 4) == 0)
			nsrv += c->backends[b].nservers;
	printf("timing: 10000 Ingresses, 10000 Services, %zu endpoints -> %zu sites, %zu backends in %.1f ms CPU\n", nsrv,
	       c->nsites, c->nbackends, ms);
	assert_int_equal(nsrv, 50000);
	w.cfg = c;
	world_free(&w);
}

static int setup(void **state)
{
	mk_tmpdir(dir, sizeof dir);
	return 0;
}

static int teardown(void **state)
{
	rm_rf(dir);
	return 0;
}

int main(void)
{
	tw_log_level = TW_LOG_ERROR;
	tw_config_set_dns(0);
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(class_selection), cmocka_unit_test(hosts_and_wildcards),
	    cmocka_unit_test(path_types_and_precedence), cmocka_unit_test(merge_and_conflicts),
	    cmocka_unit_test(default_backends), cmocka_unit_test(service_ports),
	    cmocka_unit_test(endpoint_slices), cmocka_unit_test(external_name),
	    cmocka_unit_test(tls_hosts), cmocka_unit_test(annotations),
	    cmocka_unit_test(limits), cmocka_unit_test(deterministic),
	    cmocka_unit_test(timing),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
