/* Unit tests for the `kubernetes:` section of the config schema
 * (src/conf/schema.c): defaults, every key, and the validation errors with
 * their FILE:LINE:COL and key path. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <string.h>

#include "conf/config.h"

#define BASE                                                                                       \
	"listen: {http: 127.0.0.1:8080}\n"                                                         \
	"sites:\n"                                                                                 \
	"  - hosts: [a.example]\n"                                                                 \
	"    routes: [{path: /, backend: web}]\n"                                                  \
	"backends:\n"                                                                              \
	"  web: {servers: [{address: 127.0.0.1:9000}]}\n"                                          \
	"  fallback: {servers: [{address: 127.0.0.1:9001}]}\n"

static struct tw_config *load_ok(const char *yaml)
{
	struct tw_config *cfg = NULL;
	struct tw_err e = {0};
	if (tw_config_load_string("t.yaml", yaml, strlen(yaml), &cfg, &e) != 0)
		fail_msg("load failed: %s", e.msg);
	return cfg;
}

static void load_err(const char *yaml, const char *want)
{
	struct tw_config *cfg = NULL;
	struct tw_err e = {0};
	if (tw_config_load_string("t.yaml", yaml, strlen(yaml), &cfg, &e) == 0) {
		tw_config_free(cfg);
		fail_msg("expected error \"%s\", but it loaded", want);
	}
	if (strcmp(e.msg, want) != 0)
		fail_msg("wrong error:\n  got:  %s\n  want: %s", e.msg, want);
}

static void absent(void **state)
{
	struct tw_config *cfg = load_ok(BASE);
	assert_int_equal(cfg->has_k8s, 0);
	tw_config_free(cfg);
}

static void defaults(void **state)
{
	struct tw_config *cfg = load_ok(BASE "kubernetes: {}\n");
	const struct tw_conf_k8s *k = &cfg->k8s;
	assert_int_equal(cfg->has_k8s, 1);
	assert_null(k->kubeconfig);
	assert_null(k->context);
	assert_int_equal(k->has_ingress, 0);
	assert_string_equal(k->ingress.class_name, "tapwork");
	assert_string_equal(k->ingress.controller, "tapwork.dev/ingress-controller");
	assert_int_equal(k->ingress.watch_without_class, 0);
	assert_int_equal(k->ingress.nnamespaces, 0);
	assert_null(k->ingress.publish_service);
	assert_int_equal(k->ingress.npublish_address, 0);
	assert_null(k->ingress.default_backend);
	assert_int_equal(k->ingress.external_name, 0);
	assert_string_equal(k->lease_name, "tapwork-leader");
	assert_null(k->lease_namespace);
	assert_int_equal(k->lease_duration_ms, 15000);
	assert_null(k->identity);
	tw_config_free(cfg);
}

static void all_keys(void **state)
{
	struct tw_config *cfg =
	    load_ok(BASE "kubernetes:\n"
	                 "  api: {kubeconfig: /etc/kube/config, context: prod}\n"
	                 "  ingress:\n"
	                 "    class: edge\n"
	                 "    controller: example.com/edge\n"
	                 "    watch_without_class: true\n"
	                 "    namespaces: [team-a, team-b]\n"
	                 "    publish_service: ingress/tapwork\n"
	                 "    publish_address: [203.0.113.7, lb.example]\n"
	                 "    default_backend: fallback\n"
	                 "    external_name: true\n"
	                 "  leader_election: {lease: edge-lock, namespace: ingress, duration: 30s, "
	                 "identity: pod-1}\n");
	const struct tw_conf_k8s *k = &cfg->k8s;
	assert_string_equal(k->kubeconfig, "/etc/kube/config");
	assert_string_equal(k->context, "prod");
	assert_int_equal(k->has_ingress, 1);
	assert_string_equal(k->ingress.class_name, "edge");
	assert_string_equal(k->ingress.controller, "example.com/edge");
	assert_int_equal(k->ingress.watch_without_class, 1);
	assert_int_equal(k->ingress.nnamespaces, 2);
	assert_string_equal(k->ingress.namespaces[1], "team-b");
	assert_string_equal(k->ingress.publish_service, "ingress/tapwork");
	assert_int_equal(k->ingress.npublish_address, 2);
	assert_string_equal(k->ingress.publish_address[1], "lb.example");
	assert_string_equal(k->ingress.default_backend, "fallback");
	assert_int_equal(k->ingress.external_name, 1);
	assert_string_equal(k->lease_name, "edge-lock");
	assert_string_equal(k->lease_namespace, "ingress");
	assert_int_equal(k->lease_duration_ms, 30000);
	assert_string_equal(k->identity, "pod-1");
	tw_config_free(cfg);
}

static void gateway_section(void **state)
{
	struct tw_config *cfg = load_ok(BASE "kubernetes: {}\n");
	assert_int_equal(cfg->k8s.has_gateway, 0);
	tw_config_free(cfg);
	cfg = load_ok(BASE "kubernetes:\n  gateway: {}\n");
	assert_int_equal(cfg->k8s.has_gateway, 1);
	assert_string_equal(cfg->k8s.gateway.controller_name, "tapwork.dev/gateway-controller");
	tw_config_free(cfg);
	cfg = load_ok(BASE "kubernetes:\n  gateway: {controller_name: example.com/gw}\n");
	assert_string_equal(cfg->k8s.gateway.controller_name, "example.com/gw");
	tw_config_free(cfg);
	struct tw_err e = {0};
	static const char bad[] = BASE "kubernetes:\n  gateway: {controler_name: x}\n";
	assert_int_not_equal(tw_config_load_string("t.yaml", bad, strlen(bad), &cfg, &e), 0);
	assert_non_null(strstr(e.msg, "t.yaml:9:"));
	assert_non_null(strstr(e.msg, "controler_name"));
	assert_non_null(strstr(e.msg, "controller_name")); /* the suggestion */
}

static void errors(void **state)
{
	load_err(BASE "kubernetes:\n  ingress: {default_backend: fallbak}\n",
	         "t.yaml:9:30: kubernetes.ingress.default_backend: unknown backend \"fallbak\" "
	         "(did you mean "
	         "fallback?); default_backend names a backend of this file");
	load_err(BASE "kubernetes:\n  ingress: {default_backend: zzzzzzzzzz}\n",
	         "t.yaml:9:30: kubernetes.ingress.default_backend: unknown backend \"zzzzzzzzzz\"; "
	         "default_backend names a backend of this file's `backends:`");
	load_err(BASE "kubernetes:\n  ingress: {publish_service: tapwork}\n",
	         "t.yaml:9:30: kubernetes.ingress.publish_service: expected \"namespace/name\" of "
	         "a Service, "
	         "got \"tapwork\"");
	load_err(BASE "kubernetes:\n  ingress: {publish_service: a/b/c}\n",
	         "t.yaml:9:30: kubernetes.ingress.publish_service: expected \"namespace/name\" of "
	         "a Service, "
	         "got \"a/b/c\"");
	load_err(BASE "kubernetes:\n  ingress: {namespaces: [Team_A]}\n",
	         "t.yaml:9:26: kubernetes.ingress.namespaces[0]: \"Team_A\" is not a Kubernetes "
	         "namespace "
	         "name (lower-case DNS label)");
	load_err(BASE "kubernetes:\n  leader_election: {duration: 1s}\n",
	         "t.yaml:9:31: kubernetes.leader_election.duration: \"1s\" is out of range "
	         "(2000..300000 ms)");
	load_err(BASE "kubernetes:\n  ingres: {}\n",
	         "t.yaml:9:3: kubernetes.ingres: unknown key (did you mean ingress?)");
}

int main(void)
{
	tw_config_set_dns(0);
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(absent),
	    cmocka_unit_test(defaults),
	    cmocka_unit_test(all_keys),
	    cmocka_unit_test(errors),
	    cmocka_unit_test(gateway_section),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
