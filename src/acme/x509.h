/* x509.h — the certificates of ACME: CSR, the RFC 8737 acme-tls/1
 * validation certificate, the RFC 9773 ARI certificate identifier and the
 * validity dates of an issued chain. Returned strings are malloc'ed. */
#ifndef TW_ACME_X509_H
#define TW_ACME_X509_H

#include "core/err.h"

#include <openssl/evp.h>
#include <stddef.h>
#include <time.h>

/* DER CSR for `names` (SAN dNSName each; CN = names[0] when <= 64 bytes),
 * signed by key with SHA-256. */
int tw_acme_x509_csr(EVP_PKEY *key, const char *const *names, size_t nnames, unsigned char **der,
                     size_t *derlen);

/* The acme-tls/1 certificate for `name` (RFC 8737 §3): self-signed, SAN =
 * name, critical id-pe-acmeIdentifier (1.3.6.1.5.5.7.1.31) holding the
 * OCTET STRING SHA-256(key_authz); a fresh P-256 key. PEM outputs. */
int tw_acme_x509_tlsalpn01(const char *name, const char *key_authz, char **cert_pem,
                           char **key_pem);

/* Validity and identity of the first (leaf) certificate in a PEM chain. */
struct tw_acme_certinfo {
	time_t not_before, not_after;
	char ari_id[256];    /* base64url(AKI keyid) "." base64url(serial DER); "" if no AKI */
	char issuer_cn[256]; /* leaf issuer's CN ("" when none) */
};
int tw_acme_x509_info(const char *pem, size_t len, struct tw_acme_certinfo *out);
/* The CN of the issuer of the last certificate of a PEM chain: what
 * "preferred chain" selection compares (the top of the chain). */
int tw_acme_x509_top_issuer(const char *pem, size_t len, char *cn, size_t cnlen);

#endif
