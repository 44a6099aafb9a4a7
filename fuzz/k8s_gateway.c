/* fuzz/k8s_gateway.c — libFuzzer target for the Gateway API translator
 * (src/k8s/gateway.c, through tw_k8s_ingress_apply): GatewayClasses,
 * Gateways, HTTPRoutes and ReferenceGrants are written by the cluster's
 * users, so they are untrusted input.
 *
 * Input: a JSON object {"gatewayclasses":[...], "gateways":[...],
 * "httproutes":[...], "referencegrants":[...], "namespaces":[...],
 * "services":[...], "slices":[...], "secrets":[...], "ingresses":[...]}
 * (anything else is ignored). The objects are translated twice onto a fresh
 * config; both must have the same shape and the same statuses (the
 * translation is deterministic), and the config must build a router. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "conf/config.h"
#include "core/log.h"
#include "http/route.h"
#include "k8s/ingress.h"

static const char base_yaml[] = "listen: {http: 127.0.0.1:8080, https: 127.0.0.1:8443}\n"
				"state_dir: /nonexistent\n"
				"kubernetes:\n  ingress: {class: tapwork}\n"
				"  gateway: {controller_name: tapwork.dev/gateway-controller}\n";

enum { S_CLASS, S_GW, S_ROUTE, S_GRANT, S_NS, S_SVC, S_SLICE, S_SECRET, S_ING, S_N };
static const char *const keys[S_N] = {"gatewayclasses", "gateways", "httproutes", "referencegrants", "namespaces",
				      "services",       "slices",   "secrets",    "ingresses"};

static struct tw_k8s_store *fill(json_t *root, const char *key)
{
	struct tw_k8s_store *s = tw_k8s_store_new();
	if (s == NULL)
		abort();
	size_t i;
	json_t *o;
	json_array_foreach(json_object_get(root, key), i, o)
	{
		if (i >= 64)
			break;
		(void)tw_k8s_store_put(s, o); /* objects without a name are refused */
	}
	return s;
}

static json_t *translate(const struct tw_k8s_view *v, size_t *nsites, size_t *nbackends)
{
	struct tw_config *cfg = NULL;
	struct tw_err err;
	if (tw_config_load_string("fuzz", base_yaml, sizeof base_yaml - 1, &cfg, &err) != 0)
		abort();
	struct tw_k8s_report rep = {0};
	int rc = tw_k8s_ingress_apply(cfg, v, NULL, &rep, &err);
	if (rc != 0 && rc != TW_ELIMIT)
		abort();
	struct tw_router *r = NULL;
	if (rc == 0 && tw_router_build(cfg, &r, &err) != 0)
		abort(); /* the translator must never hand the edge a config it refuses */
	*nsites = cfg->nsites;
	*nbackends = cfg->nbackends;
	json_t *st = json_incref(rep.gw_status);
	tw_k8s_report_clear(&rep);
	tw_config_free(cfg);
	return st;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static int init;
	if (!init) {
		tw_config_set_dns(0);
		tw_log_level = TW_LOG_ERROR - 1; /* quiet */
		init = 1;
	}
	if (size > 1 << 16)
		return 0;
	json_error_t je;
	json_t *root = json_loadb((const char *)data, size, 0, &je);
	if (!json_is_object(root)) {
		json_decref(root);
		return 0;
	}
	struct tw_k8s_store *st[S_N];
	for (int i = 0; i < S_N; i++)
		st[i] = fill(root, keys[i]);
	struct tw_k8s_store *classes = tw_k8s_store_new();
	struct tw_k8s_view v = {.ingresses = st[S_ING],
				.ingress_classes = classes,
				.services = st[S_SVC],
				.endpointslices = st[S_SLICE],
				.secrets = st[S_SECRET],
				.gateway_classes = st[S_CLASS],
				.gateways = st[S_GW],
				.httproutes = st[S_ROUTE],
				.referencegrants = st[S_GRANT],
				.namespaces = st[S_NS]};
	size_t s1, b1, s2, b2;
	json_t *j1 = translate(&v, &s1, &b1);
	json_t *j2 = translate(&v, &s2, &b2);
	if (s1 != s2 || b1 != b2 || !json_equal(j1, j2))
		abort();
	json_decref(j1);
	json_decref(j2);
	tw_k8s_store_free(classes);
	for (int i = 0; i < S_N; i++)
		tw_k8s_store_free(st[i]);
	json_decref(root);
	return 0;
}
