/* kubeconfig.h — where the Kubernetes API server is and how to log in.
 *
 * Precedence (tw_k8s_kubeconfig_resolve): the config's `kubeconfig:` path,
 * else $KUBECONFIG (its first entry), else in-cluster: the service account
 * directory (/var/run/secrets/kubernetes.io/serviceaccount, or
 * $TAPWORK_K8S_SA_DIR for tests) with token, ca.crt and namespace, and
 * https://$KUBERNETES_SERVICE_HOST:$KUBERNETES_SERVICE_PORT.
 *
 * A kubeconfig file is YAML (JSON is YAML too): clusters[].cluster.server,
 * certificate-authority(-data), insecure-skip-tls-verify;
 * users[].user.token / tokenFile / client-certificate(-data) +
 * client-key(-data); contexts[].context.{cluster,user,namespace};
 * current-context, or the context named by the caller. Relative file paths
 * are taken relative to the kubeconfig's directory. *-data fields are
 * base64 and are decoded here. Secrets (token, key) are never logged. */
#ifndef TW_K8S_KUBECONFIG_H
#define TW_K8S_KUBECONFIG_H

#include "core/err.h"

#include <stddef.h>

#define TW_K8S_SA_DIR "/var/run/secrets/kubernetes.io/serviceaccount"
#define TW_K8S_KUBECONFIG_MAX (4u << 20) /* bytes of a kubeconfig or token file */

struct tw_k8s_kubeconfig {
	char *server;  /* "https://host:port" (no trailing slash) */
	char *ca_file; /* PEM file of the cluster CA, or NULL */
	char *ca_pem;  /* decoded certificate-authority-data, or NULL */
	size_t ca_len;
	int insecure;               /* insecure-skip-tls-verify */
	char *token;                /* a static bearer token, or NULL */
	char *token_file;           /* re-read periodically and on 401, or NULL */
	char *cert_file, *key_file; /* client certificate and key files, or NULL */
	char *cert_pem, *key_pem;   /* decoded *-data, or NULL */
	size_t cert_len, key_len;
	char *namespace; /* the context's namespace, the pod's in cluster; NULL = none */
	int in_cluster;
	char *source; /* for messages: the file, or "in-cluster" */
};

/* Load a kubeconfig file; context NULL = current-context. */
int tw_k8s_kubeconfig_load(const char *path, const char *context, struct tw_k8s_kubeconfig *out,
                           struct tw_err *err);
/* Load from YAML/JSON text; dir is where relative paths start (may be NULL). */
int tw_k8s_kubeconfig_parse(const char *text, size_t len, const char *dir, const char *context,
                            struct tw_k8s_kubeconfig *out, struct tw_err *err);
/* The in-cluster service account (sa_dir NULL = $TAPWORK_K8S_SA_DIR or the
 * standard directory). */
int tw_k8s_kubeconfig_in_cluster(const char *sa_dir, struct tw_k8s_kubeconfig *out,
                                 struct tw_err *err);
/* The precedence above: path (may be NULL), then $KUBECONFIG, then in-cluster. */
int tw_k8s_kubeconfig_resolve(const char *path, const char *context, struct tw_k8s_kubeconfig *out,
                              struct tw_err *err);
/* Read a token file (trailing whitespace trimmed) into a new string. */
int tw_k8s_kubeconfig_read_token(const char *file, char **out, struct tw_err *err);
void tw_k8s_kubeconfig_clear(struct tw_k8s_kubeconfig *k); /* NULL ok; wipes secrets */

#endif
