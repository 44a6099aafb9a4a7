/* acme_glue.c — the ACME manager inside `tapwork run`.
 *
 * Sites with `tls: acme` get their certificates from the manager thread
 * (src/acme/manager.c). HTTP-01 challenges are answered by the proxy itself
 * from the manager's token table (before any redirect or route). A newly
 * installed certificate sets a flag that the main thread's once-a-second
 * certificate watcher turns into a reload: the TLS store of the new
 * generation loads the files the manager stored (state_dir/acme/certs/),
 * and connections in flight keep the old one. Until a site's first
 * certificate arrives it is served with a temporary local-CA certificate.
 *
 * TLS-ALPN-01: the responder's tlsalpn01_set builds the RFC 8737 validation
 * certificate and puts it in a small mutex-guarded table owned by the edge;
 * every generation's TLS store calls tw_edge_acme_tlsalpn01 (its acme hook)
 * when a client offers "acme-tls/1", which installs the pending certificate
 * whose name equals the SNI name (or fails the handshake). The table lives
 * from tw_edge_acme_start to tw_edge_acme_stop (after the workers joined). */
#include "acme/manager.h"
#include "acme/responder.h"
#include "acme/store.h"
#include "acme/x509.h"
#include "core/log.h"
#include "edge/edge.h"

#include <openssl/pem.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define ALPN_MAX 64 /* pending TLS-ALPN-01 validations at once */

struct alpn_cert {
	char name[256];
	X509 *x509;
	EVP_PKEY *pkey;
};

struct tw_edge_alpn {
	pthread_mutex_t mu;
	size_t n;
	struct alpn_cert c[ALPN_MAX];
};

static void alpn_cert_drop(struct alpn_cert *c)
{
	X509_free(c->x509);
	EVP_PKEY_free(c->pkey);
	memset(c, 0, sizeof *c);
}

static struct tw_edge_alpn *alpn_new(void)
{
	struct tw_edge_alpn *t = calloc(1, sizeof *t);
	if (t && pthread_mutex_init(&t->mu, NULL) != 0) {
		free(t);
		t = NULL;
	}
	return t;
}

static void alpn_free(struct tw_edge_alpn *t)
{
	if (t == NULL)
		return;
	for (size_t i = 0; i < t->n; i++)
		alpn_cert_drop(&t->c[i]);
	pthread_mutex_destroy(&t->mu);
	free(t);
}

static int pem_pair(const char *cert_pem, const char *key_pem, X509 **x509, EVP_PKEY **pkey)
{
	BIO *b = BIO_new_mem_buf(cert_pem, -1);
	*x509 = b ? PEM_read_bio_X509(b, NULL, NULL, NULL) : NULL;
	BIO_free(b);
	b = BIO_new_mem_buf(key_pem, -1);
	*pkey = b ? PEM_read_bio_PrivateKey(b, NULL, NULL, NULL) : NULL;
	BIO_free(b);
	if (*x509 && *pkey)
		return 0;
	X509_free(*x509);
	EVP_PKEY_free(*pkey);
	*x509 = NULL;
	*pkey = NULL;
	return TW_ENOMEM;
}

/* Responder: the ACME thread. */
static int r_tlsalpn01_set(void *ctx, const char *name, const char *key_authz)
{
	struct tw_edge *e = ctx;
	struct tw_edge_alpn *t = atomic_load(&e->acme_alpn);
	char *cert_pem = NULL, *key_pem = NULL;
	struct alpn_cert nc = {0};
	if (t == NULL || strlen(name) >= sizeof nc.name)
		return TW_EINVAL;
	int rc = tw_acme_x509_tlsalpn01(name, key_authz, &cert_pem, &key_pem);
	if (rc == 0)
		rc = pem_pair(cert_pem, key_pem, &nc.x509, &nc.pkey);
	if (key_pem)
		OPENSSL_cleanse(key_pem, strlen(key_pem));
	free(cert_pem);
	free(key_pem);
	if (rc != 0)
		return rc;
	memcpy(nc.name, name, strlen(name) + 1);
	pthread_mutex_lock(&t->mu);
	size_t i = 0;
	while (i < t->n && strcasecmp(t->c[i].name, name) != 0)
		i++;
	if (i < t->n)
		alpn_cert_drop(&t->c[i]);
	else if (t->n < ALPN_MAX)
		t->n++;
	else
		rc = TW_ELIMIT;
	if (rc == 0)
		t->c[i] = nc;
	pthread_mutex_unlock(&t->mu);
	if (rc != 0)
		alpn_cert_drop(&nc);
	else
		tw_debug("acme: tls-alpn-01 certificate for %s ready", name);
	return rc;
}

static int r_tlsalpn01_clear(void *ctx, const char *name)
{
	struct tw_edge *e = ctx;
	struct tw_edge_alpn *t = atomic_load(&e->acme_alpn);
	int rc = TW_ENOENT;
	if (t == NULL)
		return rc;
	pthread_mutex_lock(&t->mu);
	for (size_t i = 0; i < t->n; i++) {
		if (strcasecmp(t->c[i].name, name) == 0) {
			alpn_cert_drop(&t->c[i]);
			t->c[i] = t->c[--t->n];
			memset(&t->c[t->n], 0, sizeof t->c[t->n]);
			rc = 0;
			break;
		}
	}
	pthread_mutex_unlock(&t->mu);
	return rc;
}

static int r_http01_set(void *ctx, const char *token, const char *key_authz)
{
	struct tw_edge *e = ctx;
	return tw_acme_http01_set(e->acme_http01, token, key_authz);
}

static int r_http01_clear(void *ctx, const char *token)
{
	struct tw_edge *e = ctx;
	return tw_acme_http01_clear(e->acme_http01, token);
}

/* TLS store hook: a worker thread, inside the ClientHello callback. */
int tw_edge_acme_tlsalpn01(SSL *ssl, const char *servername, void *arg)
{
	struct tw_edge *e = arg;
	struct tw_edge_alpn *t = atomic_load(&e->acme_alpn);
	int rc = -1;
	if (t == NULL || servername == NULL || servername[0] == '\0')
		return -1;
	pthread_mutex_lock(&t->mu);
	for (size_t i = 0; i < t->n; i++) {
		if (strcasecmp(t->c[i].name, servername) == 0) {
			SSL_certs_clear(ssl);
			rc = SSL_use_cert_and_key(ssl, t->c[i].x509, t->c[i].pkey, NULL, 1) == 1 ? 0 : -1;
			break;
		}
	}
	pthread_mutex_unlock(&t->mu);
	if (rc != 0)
		tw_debug("acme: acme-tls/1 handshake for %s: no pending validation", servername);
	return rc;
}

static void on_certificate(void *ud, const char *const *names, size_t nnames, const char *chain_pem,
			   size_t chain_len, const char *key_pem, size_t key_len)
{
	struct tw_edge *e = ud;
	/* A shared store (S3): copy the certificate to state_dir/acme/certs/,
	 * where the TLS store loads it from. Key first, like the manager. */
	if (e->acme_mirror && nnames > 0) {
		char sname[256], k[300];
		struct tw_err err = {0};
		int rc = tw_acme_store_cert_name(names[0], sname, sizeof sname);
		if (rc == 0) {
			snprintf(k, sizeof k, "certs/%s/key.pem", sname);
			rc = tw_acme_store_put(e->acme_mirror, k, key_pem, key_len, 1, &err);
		}
		if (rc == 0) {
			snprintf(k, sizeof k, "certs/%s/chain.pem", sname);
			rc = tw_acme_store_put(e->acme_mirror, k, chain_pem, chain_len, 0, &err);
		}
		if (rc != 0) {
			tw_error("acme: cannot copy the certificate of %s to the state directory: %s",
				 names[0], err.msg);
			return;
		}
	}
	tw_info("acme: certificate for %s%s installed; the TLS store reloads", nnames ? names[0] : "?",
		nnames > 1 ? " (and more)" : "");
	atomic_store(&e->acme_changed, 1);
	tw_loop_wake(e->loop);
}

static void add_sites(struct tw_edge *e, const struct tw_config *cfg)
{
	for (size_t i = 0; i < cfg->nsites; i++) {
		const struct tw_conf_site *s = &cfg->sites[i];
		if (s->tls_effective != TW_TLS_ACME || s->nhosts == 0)
			continue;
		struct tw_err err = {0};
		if (tw_acme_mgr_add(e->acme, (const char *const *)s->hosts, s->nhosts, &err) != 0)
			tw_warn("acme: %s: %s", s->hosts[0], err.msg);
	}
}

int tw_edge_acme_start(struct tw_edge *e, const struct tw_config *cfg)
{
	int want = 0;
	for (size_t i = 0; i < cfg->nsites; i++)
		want |= cfg->sites[i].tls_effective == TW_TLS_ACME;
	if (!want || !cfg->has_https)
		return 0;
	if (!cfg->has_acme) {
		tw_warn("acme: sites want ACME certificates but the config has no `acme:` section "
			"(email, directory): serving temporary local-CA certificates");
		return 0;
	}
	struct tw_err err = {0};
	int rc = tw_acme_store_open(cfg->acme.store, cfg->state_dir, &e->acme_store, &err);
	if (rc == 0 && cfg->acme.store && cfg->acme.store[0])
		rc = tw_acme_store_local_new(cfg->state_dir, &e->acme_mirror, &err);
	if (rc == 0)
		rc = tw_acme_http01_new(&e->acme_http01) == 0 ? 0 : tw_err_set(&err, TW_ENOMEM, "out of memory");
	struct tw_edge_alpn *t = rc == 0 ? alpn_new() : NULL;
	if (rc == 0 && t == NULL)
		rc = tw_err_set(&err, TW_ENOMEM, "out of memory");
	if (rc != 0) {
		tw_error("acme: %s", err.msg);
		return rc;
	}
	atomic_store(&e->acme_alpn, t);
	e->acme_responder = (struct tw_acme_responder){
		.ctx = e,
		.http01_set = r_http01_set,
		.http01_clear = r_http01_clear,
		.tlsalpn01_set = r_tlsalpn01_set,
		.tlsalpn01_clear = r_tlsalpn01_clear,
	};
	struct tw_acme_mgr_opts o = {
		.conf = &cfg->acme,
		.store = e->acme_store,
		.responder = &e->acme_responder,
		.on_certificate = on_certificate,
		.ud = e,
	};
	if ((rc = tw_acme_mgr_new(&o, &e->acme, &err)) != 0) {
		tw_error("acme: %s", err.msg);
		return rc;
	}
	add_sites(e, cfg);
	if ((rc = tw_acme_mgr_start(e->acme, &err)) != 0)
		tw_error("acme: %s", err.msg);
	return rc;
}

void tw_edge_acme_update(struct tw_edge *e, const struct tw_config *cfg)
{
	if (e->acme == NULL) {
		tw_edge_acme_start(e, cfg);
		return;
	}
	add_sites(e, cfg); /* names already managed are kept as they are */
}

void tw_edge_acme_stop(struct tw_edge *e)
{
	tw_acme_mgr_free(e->acme);
	e->acme = NULL;
	tw_acme_http01_free(e->acme_http01);
	e->acme_http01 = NULL;
	tw_acme_store_free(e->acme_store);
	e->acme_store = NULL;
	tw_acme_store_free(e->acme_mirror);
	e->acme_mirror = NULL;
	alpn_free(atomic_exchange(&e->acme_alpn, NULL));
}

int tw_edge_acme_http01(struct tw_edge *e, const char *path, size_t len, char *out, size_t cap,
			size_t *outlen)
{
	const char *tok;
	size_t tl;
	if (e->acme_http01 == NULL || !tw_acme_http01_match(path, len, &tok, &tl))
		return TW_EINVAL;
	return tw_acme_http01_lookup(e->acme_http01, tok, tl, out, cap, outlen);
}

void tw_edge_acme_metrics(struct tw_edge *e, struct tw_dbuf *out)
{
	if (e->acme)
		tw_acme_mgr_metrics(e->acme, out);
}
