/* tls_int.h — internal to src/tls: shared helpers of tls.c, ca.c, store.c. */
#ifndef TW_TLS_TLS_INT_H
#define TW_TLS_TLS_INT_H

#include "tls/tls.h"

#include <openssl/x509.h>
#include <sys/stat.h>

/* A loaded certificate/key pair. */
struct tw_tls_pair {
	X509 *x509;
	STACK_OF(X509) *chain; /* intermediates, may be empty */
	EVP_PKEY *pkey;
};

/* Read a PEM chain + key and check they match. why names file and problem;
 * *which = 0 cert, 1 key. Leaves the OpenSSL error queue empty. */
int tw_tls_pair_load(const char *cert, const char *key, struct tw_tls_pair *out, int *which,
                     char *why, size_t wl);
/* The same from memory: p->cert_pem / p->key_pem (p->cert and p->key are
 * the labels in messages). */
int tw_tls_pair_load_mem(const struct tw_conf_certpair *p, struct tw_tls_pair *out, int *which,
                         char *why, size_t wl);
void tw_tls_pair_clear(struct tw_tls_pair *p);
/* Key type and a short description ("ECDSA P-256"). */
int tw_tls_pkey_type(EVP_PKEY *k, char *desc, size_t dl);
/* Fill names/subject/issuer/validity of info from x509. */
void tw_tls_info_fill(struct tw_tls_cert_info *info, X509 *x509, EVP_PKEY *pkey);
/* Text of the first OpenSSL error (or fallback), and clear the queue. */
const char *tw_tls_ossl_err(char *buf, size_t n, const char *fallback);

/* The host name of a raw server_name extension body (untrusted bytes):
 * lower-cased, trailing dot dropped, printable ASCII only, shorter than
 * cap. Returns 0, or -1 when absent or malformed (the default site then). */
int tw_tls_sni_parse(const unsigned char *p, size_t len, char *out, size_t cap);

#endif
