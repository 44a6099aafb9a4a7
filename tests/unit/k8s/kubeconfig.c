/* Unit tests for src/k8s/kubeconfig.c: kubeconfig fixtures (token, token
 * file, client certificate data, named and current contexts, relative
 * paths), clear errors, the in-cluster service account and the precedence
 * path > $KUBECONFIG > in-cluster. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "k8s/kubeconfig.h"

/* base64("CA PEM") = Q0EgUEVN, base64("CERT") = Q0VSVA==, base64("KEY!") = S0VZIQ== */
static const char kc_main[] = "apiVersion: v1\n"
                              "kind: Config\n"
                              "current-context: dev\n"
                              "clusters:\n"
                              "- name: prod\n"
                              "  cluster:\n"
                              "    server: https://prod.example:6443/\n"
                              "    certificate-authority-data: Q0EgUEVN\n"
                              "- name: local\n"
                              "  cluster:\n"
                              "    server: https://127.0.0.1:6443\n"
                              "    certificate-authority: certs/ca.crt\n"
                              "    insecure-skip-tls-verify: true\n"
                              "users:\n"
                              "- name: admin\n"
                              "  user:\n"
                              "    client-certificate-data: Q0VSVA==\n"
                              "    client-key-data: S0VZIQ==\n"
                              "- name: dev\n"
                              "  user:\n"
                              "    tokenFile: token\n"
                              "- name: bot\n"
                              "  user:\n"
                              "    token: abc.def\n"
                              "- name: plugin\n"
                              "  user:\n"
                              "    exec: {command: aws}\n"
                              "contexts:\n"
                              "- name: dev\n"
                              "  context: {cluster: local, user: dev, namespace: team-a}\n"
                              "- name: prod\n"
                              "  context: {cluster: prod, user: admin}\n"
                              "- name: bot\n"
                              "  context: {cluster: prod, user: bot}\n"
                              "- name: broken\n"
                              "  context: {cluster: nowhere, user: bot}\n"
                              "- name: plugin\n"
                              "  context: {cluster: prod, user: plugin}\n"
                              "- name: nouser\n"
                              "  context: {cluster: prod, user: ghost}\n";

static void contexts(void **state)
{
	struct tw_k8s_kubeconfig k;
	struct tw_err e = {0};
	size_t n = strlen(kc_main);
	assert_int_equal(tw_k8s_kubeconfig_parse(kc_main, n, "/etc/kube", NULL, &k, &e), 0);
	assert_string_equal(k.server, "https://127.0.0.1:6443");
	assert_string_equal(k.ca_file, "/etc/kube/certs/ca.crt");
	assert_int_equal(k.insecure, 1);
	assert_string_equal(k.token_file, "/etc/kube/token");
	assert_null(k.token);
	assert_string_equal(k.namespace, "team-a");
	tw_k8s_kubeconfig_clear(&k);

	assert_int_equal(tw_k8s_kubeconfig_parse(kc_main, n, "/etc/kube", "prod", &k, &e), 0);
	assert_string_equal(k.server, "https://prod.example:6443");
	assert_int_equal(k.ca_len, 6);
	assert_memory_equal(k.ca_pem, "CA PEM", 6);
	assert_int_equal(k.cert_len, 4);
	assert_memory_equal(k.cert_pem, "CERT", 4);
	assert_int_equal(k.key_len, 4);
	assert_memory_equal(k.key_pem, "KEY!", 4);
	assert_int_equal(k.insecure, 0);
	assert_null(k.namespace);
	tw_k8s_kubeconfig_clear(&k);

	assert_int_equal(tw_k8s_kubeconfig_parse(kc_main, n, NULL, "bot", &k, &e), 0);
	assert_string_equal(k.token, "abc.def");
	tw_k8s_kubeconfig_clear(&k);
	tw_k8s_kubeconfig_clear(NULL);
}

static void errors(void **state)
{
	struct tw_k8s_kubeconfig k;
	struct tw_err e = {0};
	size_t n = strlen(kc_main);
	assert_int_equal(tw_k8s_kubeconfig_parse(kc_main, n, NULL, "nope", &k, &e), TW_ENOENT);
	assert_non_null(strstr(e.msg, "context \"nope\" not found"));
	assert_int_equal(tw_k8s_kubeconfig_parse(kc_main, n, NULL, "broken", &k, &e), TW_ENOENT);
	assert_non_null(strstr(e.msg, "cluster \"nowhere\""));
	assert_int_equal(tw_k8s_kubeconfig_parse(kc_main, n, NULL, "plugin", &k, &e), TW_EUNSUPP);
	assert_non_null(strstr(e.msg, "exec"));
	assert_int_equal(tw_k8s_kubeconfig_parse(kc_main, n, NULL, "nouser", &k, &e), TW_ENOENT);
	static const char *bad[] = {
	    "- a list\n",
	    "clusters: []\n",
	    "current-context: x\ncontexts: [{name: x, context: {cluster: c}}]\n"
	    "clusters: [{name: c, cluster: {server: ftp://x}}]\n",
	    "current-context: x\ncontexts: [{name: x, context: {cluster: c, user: u}}]\n"
	    "clusters: [{name: c, cluster: {server: https://x}}]\n"
	    "users: [{name: u, user: {client-certificate-data: Q0VSVA==}}]\n",
	    "current-context: x\ncontexts: [{name: x, context: {cluster: c}}]\n"
	    "clusters: [{name: c, cluster: {server: https://x, certificate-authority-data: "
	    "'!!!'}}]\n",
	    "a: [unclosed\n",
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		e.msg[0] = '\0';
		assert_true(tw_k8s_kubeconfig_parse(bad[i], strlen(bad[i]), NULL, NULL, &k, &e) <
		            0);
		assert_true(e.msg[0] != '\0');
	}
	/* JSON is YAML too */
	const char *json =
	    "{\"current-context\":\"x\",\"contexts\":[{\"name\":\"x\",\"context\":{\"cluster\":"
	    "\"c\"}}],"
	    "\"clusters\":[{\"name\":\"c\",\"cluster\":{\"server\":\"https://j:1\"}}]}";
	assert_int_equal(tw_k8s_kubeconfig_parse(json, strlen(json), NULL, NULL, &k, &e), 0);
	assert_string_equal(k.server, "https://j:1");
	tw_k8s_kubeconfig_clear(&k);
}

static char dir[256];

static void write_file(const char *name, const char *text)
{
	char p[512];
	snprintf(p, sizeof p, "%s/%s", dir, name);
	FILE *f = fopen(p, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
}

static void files_and_precedence(void **state)
{
	snprintf(dir, sizeof dir, "/tmp/tw-k8s-kc-XXXXXX");
	assert_non_null(mkdtemp(dir));
	char p[512], sa[512];
	write_file("config", kc_main);
	write_file("token", "tok-from-file\n");
	snprintf(sa, sizeof sa, "%s/sa", dir);
	assert_int_equal(mkdir(sa, 0700), 0);
	write_file("sa/token", "sa-token\n");
	write_file("sa/ca.crt", "PEM");
	write_file("sa/namespace", "ingress-system\n");

	struct tw_k8s_kubeconfig k;
	struct tw_err e = {0};
	snprintf(p, sizeof p, "%s/config", dir);
	assert_int_equal(tw_k8s_kubeconfig_load(p, NULL, &k, &e), 0);
	char want[600];
	snprintf(want, sizeof want, "%s/token", dir);
	assert_string_equal(k.token_file, want);
	char *tok;
	assert_int_equal(tw_k8s_kubeconfig_read_token(k.token_file, &tok, &e), 0);
	assert_string_equal(tok, "tok-from-file");
	free(tok);
	tw_k8s_kubeconfig_clear(&k);

	/* missing file: a clear error */
	assert_int_equal(tw_k8s_kubeconfig_load("/nonexistent/kc", NULL, &k, &e), TW_ENOENT);
	assert_non_null(strstr(e.msg, "/nonexistent/kc"));

	/* in-cluster */
	setenv("KUBERNETES_SERVICE_HOST", "10.96.0.1", 1);
	setenv("KUBERNETES_SERVICE_PORT", "443", 1);
	assert_int_equal(tw_k8s_kubeconfig_in_cluster(sa, &k, &e), 0);
	assert_string_equal(k.server, "https://10.96.0.1:443");
	assert_string_equal(k.namespace, "ingress-system");
	assert_int_equal(k.in_cluster, 1);
	tw_k8s_kubeconfig_clear(&k);
	setenv("KUBERNETES_SERVICE_HOST", "fd00::1", 1);
	assert_int_equal(tw_k8s_kubeconfig_in_cluster(sa, &k, &e), 0);
	assert_string_equal(k.server, "https://[fd00::1]:443");
	tw_k8s_kubeconfig_clear(&k);

	/* precedence: path, then $KUBECONFIG, then in-cluster ($TAPWORK_K8S_SA_DIR) */
	setenv("TAPWORK_K8S_SA_DIR", sa, 1);
	setenv("KUBECONFIG", p, 1);
	assert_int_equal(tw_k8s_kubeconfig_resolve(NULL, "bot", &k, &e), 0);
	assert_string_equal(k.token, "abc.def");
	tw_k8s_kubeconfig_clear(&k);
	unsetenv("KUBECONFIG");
	assert_int_equal(tw_k8s_kubeconfig_resolve(NULL, NULL, &k, &e), 0);
	assert_int_equal(k.in_cluster, 1);
	assert_string_equal(k.source, "in-cluster");
	tw_k8s_kubeconfig_clear(&k);
	unsetenv("KUBERNETES_SERVICE_HOST");
	assert_int_equal(tw_k8s_kubeconfig_resolve(NULL, NULL, &k, &e), TW_ENOENT);
	assert_non_null(strstr(e.msg, "KUBECONFIG"));
	write_file("sa/token", "\n");
	setenv("KUBERNETES_SERVICE_HOST", "10.96.0.1", 1);
	assert_int_equal(tw_k8s_kubeconfig_resolve(NULL, NULL, &k, &e), TW_EINVAL);

	char cmd[600];
	snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
	assert_int_equal(system(cmd), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(contexts),
	    cmocka_unit_test(errors),
	    cmocka_unit_test(files_and_precedence),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
