/* tls_test.h — helpers shared by the tests/unit/tls programs (static, header
 * only: every .c under tests/unit is its own program). Temporary state
 * directories, self-signed certificate files, and in-memory handshakes over
 * BIO pairs. */
#ifndef TW_TEST_TLS_TEST_H
#define TW_TEST_TLS_TEST_H

#include <ftw.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "conf/config.h"

static __attribute__((unused)) int rm_one(const char *p, const struct stat *st, int flag, struct FTW *f)
{
	(void)st;
	(void)flag;
	(void)f;
	return remove(p);
}

static __attribute__((unused)) void rm_rf(const char *dir)
{
	nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

static __attribute__((unused)) void mk_tmpdir(char *buf, size_t n)
{
	snprintf(buf, n, "/tmp/tw-tls-test-XXXXXX");
	if (mkdtemp(buf) == NULL)
		abort();
}

/* A self-signed certificate for `names` ("DNS:a,DNS:b") with a P-256 or
 * RSA-2048 key, written as PEM to crt/key. Returns 0. */
static __attribute__((unused)) int write_selfsigned(const char *crt, const char *key, int rsa, const char *cn,
                            const char *san, long serial)
{
	EVP_PKEY *k = rsa ? EVP_RSA_gen(2048) : EVP_EC_gen("P-256");
	X509 *x = X509_new();
	int rc = -1;
	if (k == NULL || x == NULL)
		goto out;
	X509_set_version(x, 2);
	ASN1_INTEGER_set(X509_get_serialNumber(x), serial);
	X509_NAME *n = X509_get_subject_name(x);
	X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_UTF8, (const unsigned char *)cn, -1, -1, 0);
	X509_set_issuer_name(x, n);
	X509_gmtime_adj(X509_getm_notBefore(x), -3600);
	X509_gmtime_adj(X509_getm_notAfter(x), 86400L * 30);
	X509_set_pubkey(x, k);
	X509V3_CTX ctx;
	X509V3_set_ctx(&ctx, x, x, NULL, NULL, 0);
	X509_EXTENSION *e = X509V3_EXT_conf_nid(NULL, &ctx, NID_subject_alt_name, san);
	if (e == NULL)
		goto out;
	X509_add_ext(x, e, -1);
	X509_EXTENSION_free(e);
	if (!X509_sign(x, k, EVP_sha256()))
		goto out;
	FILE *f = fopen(crt, "w");
	if (f == NULL)
		goto out;
	PEM_write_X509(f, x);
	fclose(f);
	f = fopen(key, "w");
	if (f == NULL)
		goto out;
	PEM_write_PrivateKey(f, k, NULL, NULL, 0, NULL, NULL);
	fclose(f);
	rc = 0;
out:
	X509_free(x);
	EVP_PKEY_free(k);
	ERR_clear_error();
	return rc;
}

static __attribute__((unused)) void write_text(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");
	if (f == NULL)
		abort();
	fputs(text, f);
	fclose(f);
}

/* Load a config from a printf-style template. */
static __attribute__((unused)) struct tw_config *cfg_fmt(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static __attribute__((unused)) struct tw_config *cfg_fmt(const char *fmt, ...)
{
	char buf[8192];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof buf, fmt, ap);
	va_end(ap);
	struct tw_config *cfg = NULL;
	struct tw_err e = {0};
	if (tw_config_load_string("t.yaml", buf, strlen(buf), &cfg, &e) != 0) {
		fprintf(stderr, "config failed: %s\n", e.msg);
		return NULL;
	}
	return cfg;
}

/* Drive both ends of a BIO pair until both finish the handshake or one
 * fails. Returns 0 when both completed. */
static __attribute__((unused)) int pump_handshake(SSL *c, SSL *s)
{
	int cdone = 0, sdone = 0;
	for (int i = 0; i < 200 && !(cdone && sdone); i++) {
		if (!cdone) {
			int r = SSL_do_handshake(c);
			if (r == 1)
				cdone = 1;
			else if (SSL_get_error(c, r) != SSL_ERROR_WANT_READ &&
			         SSL_get_error(c, r) != SSL_ERROR_WANT_WRITE)
				return -1;
		}
		if (!sdone) {
			int r = SSL_do_handshake(s);
			if (r == 1)
				sdone = 1;
			else if (SSL_get_error(s, r) != SSL_ERROR_WANT_READ &&
			         SSL_get_error(s, r) != SSL_ERROR_WANT_WRITE)
				return -2;
		}
	}
	/* Let the client read what the server sent last (TLS 1.3 tickets). */
	for (int i = 0; i < 4; i++) {
		unsigned char b[16];
		(void)SSL_read(c, b, sizeof b);
		(void)SSL_read(s, b, sizeof b);
	}
	return cdone && sdone ? 0 : -3;
}

/* One connection: client (with SNI when sni != NULL) against a server SSL
 * from sctx. On return *cl and *sv hold both ends (caller frees). */
static __attribute__((unused)) int connect_pair(SSL_CTX *cctx, SSL_CTX *sctx, const char *sni, SSL_SESSION *sess,
                        SSL **cl, SSL **sv)
{
	SSL *c = SSL_new(cctx), *s = SSL_new(sctx);
	BIO *cb = NULL, *sb = NULL;
	if (c == NULL || s == NULL || !BIO_new_bio_pair(&cb, 0, &sb, 0))
		abort();
	SSL_set_bio(c, cb, cb);
	SSL_set_bio(s, sb, sb);
	SSL_set_connect_state(c);
	SSL_set_accept_state(s);
	if (sni)
		SSL_set_tlsext_host_name(c, sni);
	if (sess)
		SSL_set_session(c, sess);
	int rc = pump_handshake(c, s);
	*cl = c;
	*sv = s;
	return rc;
}

/* A client context; max_version 0 = library default. ciphers may be NULL. */
static __attribute__((unused)) SSL_CTX *client_ctx(int min_version, int max_version, const char *ciphers)
{
	SSL_CTX *c = SSL_CTX_new(TLS_client_method());
	if (c == NULL)
		abort();
	if (min_version)
		SSL_CTX_set_min_proto_version(c, min_version);
	if (max_version)
		SSL_CTX_set_max_proto_version(c, max_version);
	if (ciphers)
		SSL_CTX_set_cipher_list(c, ciphers);
	SSL_CTX_set_session_cache_mode(c, SSL_SESS_CACHE_CLIENT);
	return c;
}

/* Does the peer certificate on c carry the DNS name? */
static __attribute__((unused)) int peer_has_name(SSL *c, const char *name)
{
	X509 *x = SSL_get1_peer_certificate(c);
	int ok = x && X509_check_host(x, name, 0, X509_CHECK_FLAG_NO_WILDCARDS, NULL) == 1;
	X509_free(x);
	return ok;
}

static __attribute__((unused)) int peer_key_id(SSL *c)
{
	X509 *x = SSL_get1_peer_certificate(c);
	int id = x ? EVP_PKEY_get_base_id(X509_get0_pubkey(x)) : 0;
	X509_free(x);
	return id;
}

#endif
