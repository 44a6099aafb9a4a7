/* kubeconfig.c — kubeconfig files and the in-cluster service account. See
 * kubeconfig.h. */
#include "k8s/kubeconfig.h"

#include <errno.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

static void wipe_free(char *p, size_t n)
{
	if (p == NULL)
		return;
	OPENSSL_cleanse(p, n);
	free(p);
}

void tw_k8s_kubeconfig_clear(struct tw_k8s_kubeconfig *k)
{
	if (k == NULL)
		return;
	free(k->server);
	free(k->ca_file);
	free(k->ca_pem);
	if (k->token)
		wipe_free(k->token, strlen(k->token));
	free(k->token_file);
	free(k->cert_file);
	free(k->key_file);
	free(k->cert_pem);
	wipe_free(k->key_pem, k->key_len);
	free(k->namespace);
	free(k->source);
	memset(k, 0, sizeof *k);
}

static int read_file(const char *file, char **out, size_t *len, struct tw_err *err)
{
	FILE *f = fopen(file, "rb");
	if (f == NULL)
		return tw_err_set(err, errno == ENOENT ? TW_ENOENT : TW_EIO, "%s: %s", file,
		                  strerror(errno));
	size_t cap = 4096, n = 0;
	char *b = malloc(cap + 1);
	int rc = b ? 0 : TW_ENOMEM;
	while (rc == 0) {
		if (n == cap) {
			if (cap >= TW_K8S_KUBECONFIG_MAX) {
				rc = tw_err_set(err, TW_ELIMIT, "%s: larger than %u bytes", file,
				                TW_K8S_KUBECONFIG_MAX);
				break;
			}
			char *nb = realloc(b, cap * 2 + 1);
			if (nb == NULL) {
				rc = TW_ENOMEM;
				break;
			}
			b = nb;
			cap *= 2;
		}
		size_t got = fread(b + n, 1, cap - n, f);
		n += got;
		if (got == 0) {
			if (ferror(f))
				rc = tw_err_set(err, TW_EIO, "%s: read error", file);
			break;
		}
	}
	fclose(f);
	if (rc < 0) {
		wipe_free(b, b ? n : 0);
		return rc;
	}
	b[n] = '\0';
	*out = b;
	*len = n;
	return 0;
}

int tw_k8s_kubeconfig_read_token(const char *file, char **out, struct tw_err *err)
{
	char *b;
	size_t n;
	int rc = read_file(file, &b, &n, err);
	if (rc < 0)
		return tw_err_wrap(err, "token file"), rc;
	while (n > 0 &&
	       (b[n - 1] == '\n' || b[n - 1] == '\r' || b[n - 1] == ' ' || b[n - 1] == '\t'))
		b[--n] = '\0';
	if (n == 0 || memchr(b, '\n', n) != NULL || strlen(b) != n) {
		wipe_free(b, n);
		return tw_err_set(err, TW_EINVAL, "token file %s: empty or not one line", file);
	}
	*out = b;
	return 0;
}

/* ---- YAML navigation --------------------------------------------------- */

static yaml_node_t *map_get(yaml_document_t *d, yaml_node_t *m, const char *key)
{
	if (m == NULL || m->type != YAML_MAPPING_NODE)
		return NULL;
	for (yaml_node_pair_t *p = m->data.mapping.pairs.start; p < m->data.mapping.pairs.top;
	     p++) {
		yaml_node_t *k = yaml_document_get_node(d, p->key);
		if (k && k->type == YAML_SCALAR_NODE && strlen(key) == k->data.scalar.length &&
		    memcmp(k->data.scalar.value, key, k->data.scalar.length) == 0)
			return yaml_document_get_node(d, p->value);
	}
	return NULL;
}

/* The scalar text (NUL-terminated by libyaml), or NULL. */
static const char *scalar(yaml_node_t *n)
{
	if (n == NULL || n->type != YAML_SCALAR_NODE)
		return NULL;
	if (strlen((const char *)n->data.scalar.value) != n->data.scalar.length)
		return NULL;
	return (const char *)n->data.scalar.value;
}

static const char *map_str(yaml_document_t *d, yaml_node_t *m, const char *key)
{
	const char *s = scalar(map_get(d, m, key));
	return s && s[0] ? s : NULL;
}

/* The element of a named list (clusters/users/contexts) whose name is name;
 * returns its `inner` mapping (cluster/user/context). */
static yaml_node_t *named(yaml_document_t *d, yaml_node_t *root, const char *list,
                          const char *inner, const char *name)
{
	yaml_node_t *l = map_get(d, root, list);
	if (l == NULL || l->type != YAML_SEQUENCE_NODE)
		return NULL;
	for (yaml_node_item_t *i = l->data.sequence.items.start; i < l->data.sequence.items.top;
	     i++) {
		yaml_node_t *e = yaml_document_get_node(d, *i);
		const char *n = map_str(d, e, "name");
		if (n && strcmp(n, name) == 0) {
			yaml_node_t *in = map_get(d, e, inner);
			return in ? in : e;
		}
	}
	return NULL;
}

static int b64_decode(const char *in, char **out, size_t *outlen)
{
	size_t n = strlen(in), j = 0;
	char *clean = malloc(n + 1);
	if (clean == NULL)
		return TW_ENOMEM;
	for (size_t i = 0; i < n; i++)
		if (in[i] != '\n' && in[i] != '\r' && in[i] != ' ' && in[i] != '\t')
			clean[j++] = in[i];
	if (j % 4 != 0 || j == 0) {
		free(clean);
		return TW_EINVAL;
	}
	unsigned char *dst = malloc(j / 4 * 3 + 1);
	if (dst == NULL) {
		free(clean);
		return TW_ENOMEM;
	}
	int r = EVP_DecodeBlock(dst, (const unsigned char *)clean, (int)j);
	size_t pad = (clean[j - 1] == '=') + (clean[j - 2] == '=');
	free(clean);
	if (r < 0 || (size_t)r < pad) {
		free(dst);
		return TW_EINVAL;
	}
	*outlen = (size_t)r - pad;
	dst[*outlen] = '\0';
	*out = (char *)dst;
	return 0;
}

/* A path from the kubeconfig, relative to dir unless absolute. */
static char *path_in(const char *dir, const char *p)
{
	if (p[0] == '/' || dir == NULL || dir[0] == '\0')
		return strdup(p);
	size_t n = strlen(dir) + strlen(p) + 2;
	char *s = malloc(n);
	if (s)
		snprintf(s, n, "%s/%s", dir, p);
	return s;
}

static int dup_to(char **dst, const char *s)
{
	if (s == NULL)
		return 0;
	*dst = strdup(s);
	return *dst ? 0 : TW_ENOMEM;
}

static int fill(yaml_document_t *d, const char *dir, const char *context,
                struct tw_k8s_kubeconfig *k, struct tw_err *err)
{
	yaml_node_t *root = yaml_document_get_root_node(d);
	if (root == NULL || root->type != YAML_MAPPING_NODE)
		return tw_err_set(err, TW_EINVAL, "not a kubeconfig (expected a mapping)");
	const char *ctxname = context ? context : map_str(d, root, "current-context");
	if (ctxname == NULL)
		return tw_err_set(err, TW_EINVAL,
		                  "no current-context and no context named in the config");
	yaml_node_t *ctx = named(d, root, "contexts", "context", ctxname);
	if (ctx == NULL)
		return tw_err_set(err, TW_ENOENT, "context \"%s\" not found", ctxname);
	const char *cname = map_str(d, ctx, "cluster"), *uname = map_str(d, ctx, "user");
	if (cname == NULL)
		return tw_err_set(err, TW_EINVAL, "context \"%s\" names no cluster", ctxname);
	yaml_node_t *cl = named(d, root, "clusters", "cluster", cname);
	if (cl == NULL)
		return tw_err_set(err, TW_ENOENT, "cluster \"%s\" (of context \"%s\") not found",
		                  cname, ctxname);
	const char *server = map_str(d, cl, "server");
	if (server == NULL ||
	    (strncmp(server, "https://", 8) != 0 && strncmp(server, "http://", 7) != 0))
		return tw_err_set(err, TW_EINVAL, "cluster \"%s\": server must be an https:// URL",
		                  cname);
	if (dup_to(&k->server, server) < 0)
		return TW_ENOMEM;
	size_t sl = strlen(k->server);
	while (sl > 8 && k->server[sl - 1] == '/')
		k->server[--sl] = '\0';
	const char *ins = map_str(d, cl, "insecure-skip-tls-verify");
	k->insecure = ins && strcmp(ins, "true") == 0;
	const char *cad = map_str(d, cl, "certificate-authority-data"),
	           *caf = map_str(d, cl, "certificate-authority");
	if (cad) {
		int rc = b64_decode(cad, &k->ca_pem, &k->ca_len);
		if (rc < 0)
			return tw_err_set(
			    err, rc, "cluster \"%s\": certificate-authority-data is not base64",
			    cname);
	} else if (caf && (k->ca_file = path_in(dir, caf)) == NULL) {
		return TW_ENOMEM;
	}
	if (dup_to(&k->namespace, map_str(d, ctx, "namespace")) < 0)
		return TW_ENOMEM;
	if (uname == NULL)
		return 0; /* anonymous */
	yaml_node_t *u = named(d, root, "users", "user", uname);
	if (u == NULL)
		return tw_err_set(err, TW_ENOENT, "user \"%s\" (of context \"%s\") not found",
		                  uname, ctxname);
	if (map_get(d, u, "exec") || map_get(d, u, "auth-provider"))
		if (!map_str(d, u, "token") && !map_str(d, u, "tokenFile") &&
		    !map_str(d, u, "client-certificate") &&
		    !map_str(d, u, "client-certificate-data"))
			return tw_err_set(
			    err, TW_EUNSUPP,
			    "user \"%s\": exec and auth-provider plugins are not supported "
			    "(use a token, tokenFile or client certificate)",
			    uname);
	const char *tok = map_str(d, u, "token"), *tf = map_str(d, u, "tokenFile");
	if (tok && dup_to(&k->token, tok) < 0)
		return TW_ENOMEM;
	if (!tok && tf && (k->token_file = path_in(dir, tf)) == NULL)
		return TW_ENOMEM;
	const char *ccd = map_str(d, u, "client-certificate-data"),
	           *ckd = map_str(d, u, "client-key-data");
	const char *ccf = map_str(d, u, "client-certificate"), *ckf = map_str(d, u, "client-key");
	if ((ccd || ccf) != (ckd || ckf))
		return tw_err_set(
		    err, TW_EINVAL,
		    "user \"%s\": a client certificate needs its key (and the key its certificate)",
		    uname);
	if (ccd && b64_decode(ccd, &k->cert_pem, &k->cert_len) < 0)
		return tw_err_set(err, TW_EINVAL,
		                  "user \"%s\": client-certificate-data is not base64", uname);
	if (!ccd && ccf && (k->cert_file = path_in(dir, ccf)) == NULL)
		return TW_ENOMEM;
	if (ckd && b64_decode(ckd, &k->key_pem, &k->key_len) < 0)
		return tw_err_set(err, TW_EINVAL, "user \"%s\": client-key-data is not base64",
		                  uname);
	if (!ckd && ckf && (k->key_file = path_in(dir, ckf)) == NULL)
		return TW_ENOMEM;
	return 0;
}

int tw_k8s_kubeconfig_parse(const char *text, size_t len, const char *dir, const char *context,
                            struct tw_k8s_kubeconfig *out, struct tw_err *err)
{
	yaml_parser_t p;
	yaml_document_t d;
	memset(out, 0, sizeof *out);
	if (!yaml_parser_initialize(&p))
		return TW_ENOMEM;
	yaml_parser_set_input_string(&p, (const unsigned char *)text, len);
	if (!yaml_parser_load(&p, &d)) {
		int rc = tw_err_set(err, TW_EINVAL, "line %zu: %s", p.problem_mark.line + 1,
		                    p.problem ? p.problem : "YAML error");
		yaml_parser_delete(&p);
		return rc;
	}
	int rc = fill(&d, dir, context, out, err);
	yaml_document_delete(&d);
	yaml_parser_delete(&p);
	if (rc < 0)
		tw_k8s_kubeconfig_clear(out);
	return rc;
}

int tw_k8s_kubeconfig_load(const char *path, const char *context, struct tw_k8s_kubeconfig *out,
                           struct tw_err *err)
{
	char *text;
	size_t len;
	memset(out, 0, sizeof *out);
	int rc = read_file(path, &text, &len, err);
	if (rc < 0)
		return tw_err_wrap(err, "kubeconfig"), rc;
	char *dir = strdup(path);
	if (dir == NULL) {
		wipe_free(text, len);
		return TW_ENOMEM;
	}
	char *slash = strrchr(dir, '/');
	if (slash)
		*slash = '\0';
	else
		dir[0] = '\0';
	rc = tw_k8s_kubeconfig_parse(text, len, dir, context, out, err);
	free(dir);
	wipe_free(text, len);
	if (rc < 0)
		return tw_err_wrap(err, "kubeconfig %s", path), rc;
	if ((out->source = strdup(path)) == NULL) {
		tw_k8s_kubeconfig_clear(out);
		return TW_ENOMEM;
	}
	return 0;
}

int tw_k8s_kubeconfig_in_cluster(const char *sa_dir, struct tw_k8s_kubeconfig *out,
                                 struct tw_err *err)
{
	memset(out, 0, sizeof *out);
	if (sa_dir == NULL)
		sa_dir = getenv("TAPWORK_K8S_SA_DIR");
	if (sa_dir == NULL || sa_dir[0] == '\0')
		sa_dir = TW_K8S_SA_DIR;
	const char *host = getenv("KUBERNETES_SERVICE_HOST"),
	           *port = getenv("KUBERNETES_SERVICE_PORT");
	if (host == NULL || host[0] == '\0')
		return tw_err_set(
		    err, TW_ENOENT,
		    "not in a cluster (KUBERNETES_SERVICE_HOST unset) and no kubeconfig "
		    "(set kubernetes.api.kubeconfig or $KUBECONFIG)");
	if (port == NULL || port[0] == '\0')
		port = "443";
	size_t n = strlen(host) + strlen(port) + 16;
	char buf[4096];
	int rc = TW_ENOMEM;
	out->in_cluster = 1;
	if ((out->server = malloc(n)) == NULL)
		goto fail;
	snprintf(out->server, n, strchr(host, ':') ? "https://[%s]:%s" : "https://%s:%s", host,
	         port);
	snprintf(buf, sizeof buf, "%s/token", sa_dir);
	if ((out->token_file = strdup(buf)) == NULL)
		goto fail;
	char *tok;
	if ((rc = tw_k8s_kubeconfig_read_token(buf, &tok, err)) < 0) /* fail early, clearly */
		goto fail;
	wipe_free(tok, strlen(tok));
	snprintf(buf, sizeof buf, "%s/ca.crt", sa_dir);
	rc = TW_ENOMEM;
	if ((out->ca_file = strdup(buf)) == NULL)
		goto fail;
	snprintf(buf, sizeof buf, "%s/namespace", sa_dir);
	char *ns;
	size_t nl;
	if (read_file(buf, &ns, &nl, NULL) == 0) {
		while (nl > 0 && (ns[nl - 1] == '\n' || ns[nl - 1] == ' ' || ns[nl - 1] == '\r'))
			ns[--nl] = '\0';
		if (nl > 0)
			out->namespace = ns;
		else
			free(ns);
	}
	if ((out->source = strdup("in-cluster")) == NULL)
		goto fail;
	return 0;
fail:
	tw_k8s_kubeconfig_clear(out);
	return rc;
}

int tw_k8s_kubeconfig_resolve(const char *path, const char *context, struct tw_k8s_kubeconfig *out,
                              struct tw_err *err)
{
	if (path && path[0])
		return tw_k8s_kubeconfig_load(path, context, out, err);
	const char *env = getenv("KUBECONFIG");
	if (env && env[0]) {
		char first[4096];
		size_t n = strcspn(env, ":");
		if (n >= sizeof first)
			return tw_err_set(err, TW_EINVAL, "$KUBECONFIG: path too long");
		memcpy(first, env, n);
		first[n] = '\0';
		return tw_k8s_kubeconfig_load(first, context, out, err);
	}
	return tw_k8s_kubeconfig_in_cluster(NULL, out, err);
}
