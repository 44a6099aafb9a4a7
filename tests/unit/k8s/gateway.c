/* Unit tests for src/k8s/gateway.c, the Gateway API part of the translator:
 * a weighted rule's smooth-weighted-round-robin sequence (exact shares, a
 * weight-0 backend never chosen, an invalid reference's share answered
 * with 500), matchers and filters reaching the route, the statuses in the
 * report, and determinism. Routes are checked through the real router. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "http/route.h"
#include "k8s/ingress.h"

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

enum { ING, CLS, SVC, EPS, SEC, GC, GW, RT, RG, NS, N };

struct world {
	struct tw_k8s_store *s[N];
	struct tw_k8s_view v;
	struct tw_config *cfg;
	struct tw_router *router;
	struct tw_k8s_report rep;
};

static void world_init(struct world *w)
{
	memset(w, 0, sizeof *w);
	for (int i = 0; i < N; i++)
		w->s[i] = tw_k8s_store_new();
	w->v = (struct tw_k8s_view){.ingresses = w->s[ING], .ingress_classes = w->s[CLS], .services = w->s[SVC],
				    .endpointslices = w->s[EPS], .secrets = w->s[SEC], .gateway_classes = w->s[GC],
				    .gateways = w->s[GW], .httproutes = w->s[RT], .referencegrants = w->s[RG],
				    .namespaces = w->s[NS]};
	put(w->s[GC], "{'metadata':{'name':'tw','generation':4},'spec':{'controllerName':'tapwork.dev/gateway-controller'}}");
	put(w->s[GC], "{'metadata':{'name':'other'},'spec':{'controllerName':'example.com/x'}}");
	put(w->s[GW], "{'metadata':{'namespace':'web','name':'gw','generation':2},'spec':{'gatewayClassName':'tw',"
		      "'listeners':[{'name':'http','port':8080,'protocol':'HTTP'}]}}");
	put(w->s[GW], "{'metadata':{'namespace':'web','name':'theirs'},'spec':{'gatewayClassName':'other',"
		      "'listeners':[{'name':'http','port':8080,'protocol':'HTTP'}]}}");
	for (int i = 0; i < 3; i++) {
		char b[512];
		snprintf(b, sizeof b, "{'metadata':{'namespace':'web','name':'s%d'},'spec':{'ports':[{'name':'http','port':80,"
				      "'targetPort':8080}]}}", i);
		put(w->s[SVC], b);
		snprintf(b, sizeof b, "{'metadata':{'namespace':'web','name':'s%d-1','labels':{'kubernetes.io/service-name':"
				      "'s%d'}},'addressType':'IPv4','ports':[{'name':'http','port':8080}],"
				      "'endpoints':[{'addresses':['10.0.0.%d']}]}", i, i, i + 1);
		put(w->s[EPS], b);
	}
}

static void world_free(struct world *w)
{
	for (int i = 0; i < N; i++)
		tw_k8s_store_free(w->s[i]);
	tw_config_free(w->cfg);
	tw_k8s_report_clear(&w->rep);
}

static void apply(struct world *w)
{
	static const char y[] = "listen: {http: 127.0.0.1:8080, https: 127.0.0.1:8080}\nstate_dir: /nonexistent\n"
				"kubernetes:\n  gateway: {controller_name: tapwork.dev/gateway-controller}\n";
	tw_config_free(w->cfg);
	w->cfg = NULL;
	struct tw_err e = {0};
	assert_int_equal(tw_config_load_string("t.yaml", y, sizeof y - 1, &w->cfg, &e), 0);
	assert_int_equal(tw_k8s_ingress_apply(w->cfg, &w->v, NULL, &w->rep, &e), 0);
	assert_int_equal(tw_router_build(w->cfg, &w->router, &e), 0);
}

static const struct tw_conf_route *route_of(struct world *w, const char *host, const char *path)
{
	return tw_router_match(w->router, host, strlen(host), path, strlen(path), NULL);
}

/* The status the report wants for kind/ns/name. */
static const json_t *want_status(struct world *w, const char *kind, const char *ns, const char *name)
{
	size_t i;
	json_t *x;
	json_array_foreach(w->rep.gw_status, i, x)
	{
		if (strcmp(json_string_value(json_object_get(x, "kind")), kind) == 0 &&
		    strcmp(json_string_value(json_object_get(x, "ns")), ns) == 0 &&
		    strcmp(json_string_value(json_object_get(x, "name")), name) == 0)
			return json_object_get(x, "status");
	}
	return NULL;
}

static const json_t *cond(const json_t *conds, const char *type)
{
	size_t i;
	json_t *c;
	json_array_foreach(conds, i, c)
	{
		if (strcmp(json_string_value(json_object_get(c, "type")), type) == 0)
			return c;
	}
	return NULL;
}

static void weighted_sequence_is_exact(void **state)
{
	(void)state;
	struct world w;
	world_init(&w);
	put(w.s[RT], "{'metadata':{'namespace':'web','name':'r','generation':5},'spec':{'parentRefs':[{'name':'gw'}],"
		     "'hostnames':['w.test'],'rules':[{'backendRefs':[{'name':'s0','port':80,'weight':7},"
		     "{'name':'s1','port':80,'weight':3},{'name':'s2','port':80,'weight':0},"
		     "{'name':'missing','port':80,'weight':2}]}]}}");
	apply(&w);
	const struct tw_conf_route *r = route_of(&w, "w.test", "/");
	assert_non_null(r);
	assert_non_null(r->ext);
	const struct tw_route_ext *x = r->ext;
	assert_int_equal(x->nwb, 3); /* weight 0 left out */
	assert_int_equal(x->nwseq, 12);
	unsigned got[3] = {0};
	size_t longest_run = 0, run = 0, prev = SIZE_MAX;
	for (size_t i = 0; i < x->nwseq; i++) {
		got[x->wseq[i]]++;
		run = x->wseq[i] == prev ? run + 1 : 1;
		prev = x->wseq[i];
		if (run > longest_run)
			longest_run = run;
	}
	assert_int_equal(got[0], 7);
	assert_int_equal(got[1], 3);
	assert_int_equal(got[2], 2);
	assert_true(longest_run <= 2); /* smooth: spread out, not 7 in a row */
	assert_string_equal(x->wb[0].backend_name, "k8s:web/s0:80");
	assert_true(x->wb[2].backend == SIZE_MAX); /* the missing Service's share: 500 */
	/* statuses */
	const json_t *rs = want_status(&w, "httproutes", "web", "r");
	assert_non_null(rs);
	const json_t *p = json_array_get(json_object_get(rs, "parents"), 0);
	assert_string_equal(json_string_value(json_object_get(p, "controllerName")), "tapwork.dev/gateway-controller");
	const json_t *rr = cond(json_object_get(p, "conditions"), "ResolvedRefs");
	assert_string_equal(json_string_value(json_object_get(rr, "reason")), "BackendNotFound");
	assert_int_equal(json_integer_value(json_object_get(rr, "observedGeneration")), 5);
	const json_t *gc = want_status(&w, "gatewayclasses", "", "tw");
	assert_int_equal(json_integer_value(json_object_get(cond(json_object_get(gc, "conditions"), "Accepted"),
							    "observedGeneration")), 4);
	assert_null(want_status(&w, "gatewayclasses", "", "other"));
	assert_null(want_status(&w, "gateways", "web", "theirs"));
	const json_t *l0 = json_array_get(json_object_get(want_status(&w, "gateways", "web", "gw"), "listeners"), 0);
	assert_int_equal(json_integer_value(json_object_get(l0, "attachedRoutes")), 1);
	/* the same view gives the same statuses */
	json_t *first = json_deep_copy(w.rep.gw_status);
	apply(&w);
	assert_true(json_equal(first, w.rep.gw_status));
	json_decref(first);
	world_free(&w);
}

static void matchers_and_filters_reach_the_route(void **state)
{
	(void)state;
	struct world w;
	world_init(&w);
	put(w.s[RT], "{'metadata':{'namespace':'web','name':'m'},'spec':{'parentRefs':[{'name':'gw'}],'hostnames':['m.test'],"
		     "'rules':[{'matches':[{'path':{'type':'Exact','value':'/a'},'headers':[{'name':'X-A','value':'1'}],"
		     "'method':'POST'}],'filters':[{'type':'RequestHeaderModifier','requestHeaderModifier':"
		     "{'set':[{'name':'X-S','value':'v'}],'remove':['X-R']}},{'type':'URLRewrite','urlRewrite':"
		     "{'hostname':'up.test','path':{'type':'ReplaceFullPath','replaceFullPath':'/b'}}}],"
		     "'backendRefs':[{'name':'s0','port':80}]},"
		     "{'matches':[{'path':{'type':'PathPrefix','value':'/r'}}],'filters':[{'type':'RequestRedirect',"
		     "'requestRedirect':{'statusCode':301,'scheme':'https'}}]},"
		     "{'matches':[{'path':{'type':'RegularExpression','value':'/x.*'}}],'backendRefs':[{'name':'s0','port':80}]}]}}");
	put(w.s[RT], "{'metadata':{'namespace':'other','name':'notallowed'},'spec':{'parentRefs':[{'name':'gw','namespace':'web'}],"
		     "'hostnames':['n.test'],'rules':[{'backendRefs':[{'name':'s0','port':80}]}]}}");
	apply(&w);
	assert_null(route_of(&w, "m.test", "/a")); /* needs its matchers */
	assert_null(route_of(&w, "n.test", "/")); /* Same namespace only */
	const json_t *p = json_array_get(json_object_get(want_status(&w, "httproutes", "other", "notallowed"), "parents"), 0);
	assert_string_equal(json_string_value(json_object_get(cond(json_object_get(p, "conditions"), "Accepted"), "reason")),
			    "NotAllowedByListeners");
	const struct tw_conf_route *r = route_of(&w, "m.test", "/r/x");
	assert_non_null(r);
	assert_int_equal(r->handler, TW_HANDLER_EXT);
	assert_int_equal(r->ext->redirect, 301);
	assert_string_equal(r->ext->redir_scheme, "https");
	/* the matcher route: found through the request matcher API */
	const struct tw_conf_route *found = NULL;
	for (size_t s = 0; s < w.cfg->nsites && !found; s++)
		for (size_t k = 0; k < w.cfg->sites[s].nroutes; k++)
			if (w.cfg->sites[s].routes[k].ext && w.cfg->sites[s].routes[k].ext->method)
				found = &w.cfg->sites[s].routes[k];
	assert_non_null(found);
	assert_string_equal(found->ext->method, "POST");
	assert_int_equal(found->ext->nheaders, 1);
	assert_int_equal(found->ext->req.nset, 1);
	assert_int_equal(found->ext->req.nremove, 1);
	assert_string_equal(found->ext->rewrite_host, "up.test");
	assert_int_equal(found->ext->path_mod, TW_PATH_FULL);
	assert_string_equal(found->ext->path_value, "/b");
	assert_int_equal(found->ext->nwb, 0); /* one backend: the plain path */
	world_free(&w);
}

static const char *reason_of(const json_t *conds, const char *type)
{
	const json_t *c = cond(conds, type);
	assert_non_null(c);
	return json_string_value(json_object_get(c, "reason"));
}

static const json_t *listener_status(struct world *w, const char *gw, const char *name)
{
	size_t i;
	json_t *l;
	json_array_foreach(json_object_get(want_status(w, "gateways", "web", gw), "listeners"), i, l)
	{
		if (strcmp(json_string_value(json_object_get(l, "name")), name) == 0)
			return l;
	}
	fail_msg("no listener %s in Gateway %s", name, gw);
	return NULL;
}

/* The conformance suite's Gateway-level cases: an unsupported protocol lists
 * no kinds, a parametersRef rejects the Gateway, a Secret that is no
 * certificate is InvalidCertificateRef, and a route on a listener that is not
 * programmed counts but is not served; filters on a backendRef answer 500. */
static void gateway_and_listener_reasons(void **state)
{
	(void)state;
	struct world w;
	world_init(&w);
	put(w.s[GW], "{'metadata':{'namespace':'web','name':'proto'},'spec':{'gatewayClassName':'tw','listeners':["
		     "{'name':'http','port':8080,'protocol':'HTTP','hostname':'p.test'},"
		     "{'name':'bad','port':1111,'protocol':'INVALID'},"
		     "{'name':'tls','port':8080,'protocol':'HTTPS','hostname':'t.test','tls':{'certificateRefs':"
		     "[{'name':'junk'}]}}]}}");
	put(w.s[SEC], "{'metadata':{'namespace':'web','name':'junk'},'type':'kubernetes.io/tls',"
		      "'data':{'tls.crt':'SGVsbG8gd29ybGQK','tls.key':'SGVsbG8gd29ybGQK'}}");
	put(w.s[GW], "{'metadata':{'namespace':'web','name':'params'},'spec':{'gatewayClassName':'tw','listeners':"
		     "[{'name':'http','port':8080,'protocol':'HTTP','hostname':'q.test'}],'infrastructure':{'parametersRef':"
		     "{'group':'invalid.io','kind':'InvalidParameters','name':'x'}}}}");
	put(w.s[RT], "{'metadata':{'namespace':'web','name':'onparams'},'spec':{'parentRefs':[{'name':'params'}],"
		     "'rules':[{'backendRefs':[{'name':'s0','port':80}]}]}}");
	put(w.s[RT], "{'metadata':{'namespace':'web','name':'ontls'},'spec':{'parentRefs':[{'name':'proto','sectionName':'tls'}],"
		     "'rules':[{'backendRefs':[{'name':'s0','port':80}]}]}}");
	put(w.s[RT], "{'metadata':{'namespace':'web','name':'bf'},'spec':{'parentRefs':[{'name':'proto','sectionName':'http'}],"
		     "'rules':[{'matches':[{'path':{'value':'/f'}}],'backendRefs':[{'name':'s0','port':80,'filters':"
		     "[{'type':'RequestHeaderModifier','requestHeaderModifier':{'set':[{'name':'a','value':'b'}]}}]}]},"
		     "{'backendRefs':[{'name':'s1','port':80}]}]}}");
	apply(&w);
	const json_t *bad = listener_status(&w, "proto", "bad");
	assert_int_equal(json_array_size(json_object_get(bad, "supportedKinds")), 0);
	assert_string_equal(reason_of(json_object_get(bad, "conditions"), "Accepted"), "UnsupportedProtocol");
	assert_int_equal(json_array_size(json_object_get(listener_status(&w, "proto", "http"), "supportedKinds")), 1);
	const json_t *tls = listener_status(&w, "proto", "tls");
	assert_string_equal(reason_of(json_object_get(tls, "conditions"), "ResolvedRefs"), "InvalidCertificateRef");
	assert_string_equal(json_string_value(json_object_get(cond(json_object_get(tls, "conditions"), "Programmed"),
							      "status")), "False");
	assert_int_equal(json_integer_value(json_object_get(tls, "attachedRoutes")), 1);
	assert_null(route_of(&w, "t.test", "/")); /* counted, not served */
	const json_t *ps = want_status(&w, "gateways", "web", "params");
	assert_string_equal(reason_of(json_object_get(ps, "conditions"), "Accepted"), "InvalidParameters");
	assert_null(route_of(&w, "q.test", "/"));
	const json_t *p = json_array_get(json_object_get(want_status(&w, "httproutes", "web", "onparams"), "parents"), 0);
	assert_string_equal(reason_of(json_object_get(p, "conditions"), "Accepted"), "NoMatchingParent");
	const struct tw_conf_route *r = route_of(&w, "p.test", "/f");
	assert_non_null(r);
	assert_int_equal(r->ext ? r->ext->status : 0, 500);
	r = route_of(&w, "p.test", "/other");
	assert_non_null(r);
	assert_int_equal(r->handler, TW_HANDLER_PROXY);
	p = json_array_get(json_object_get(want_status(&w, "httproutes", "web", "bf"), "parents"), 0);
	assert_string_equal(reason_of(json_object_get(p, "conditions"), "PartiallyInvalid"), "UnsupportedValue");
	world_free(&w);
}

int main(void)
{
	tw_log_level = TW_LOG_ERROR - 1;
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(weighted_sequence_is_exact),
	    cmocka_unit_test(matchers_and_filters_reach_the_route),
	    cmocka_unit_test(gateway_and_listener_reasons),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
