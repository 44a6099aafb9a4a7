/* jws.h — the crypto of ACME requests (RFC 7515/7517/7638, RFC 8555 §6.2).
 *
 * base64url without padding, ES256 account keys (P-256), the JWK and its
 * thumbprint, flattened JWS objects signed with ES256 (ECDSA signature
 * converted from DER to raw r||s, 64 bytes), External Account Binding
 * (HS256 over the account JWK) and key authorizations.
 * Strings returned through `char **out` are malloc'ed; the caller frees. */
#ifndef TW_ACME_JWS_H
#define TW_ACME_JWS_H

#include "core/err.h"

#include <openssl/evp.h>
#include <stddef.h>

/* base64url without '=' padding. *out is NUL-terminated. */
int tw_jws_b64url(const void *data, size_t len, char **out);
/* Decode base64url (padding tolerated); *out malloc'ed, *outlen its size. */
int tw_jws_b64url_decode(const char *s, size_t len, unsigned char **out, size_t *outlen);

/* A new P-256 key (account keys and, by default, certificate keys). */
int tw_jws_key_new_p256(EVP_PKEY **out);
/* A new RSA key of `bits` bits (2048..8192). */
int tw_jws_key_new_rsa(unsigned bits, EVP_PKEY **out);
/* PKCS#8 PEM of a private key, *pem malloc'ed, *len without the NUL. */
int tw_jws_key_to_pem(EVP_PKEY *key, char **pem, size_t *len);
int tw_jws_key_from_pem(const char *pem, size_t len, EVP_PKEY **out);

/* The public JWK of a P-256 key in canonical form (members sorted, no
 * spaces): {"crv":"P-256","kty":"EC","x":"...","y":"..."}. */
int tw_jws_jwk(EVP_PKEY *key, char **out);
/* RFC 7638 thumbprint: base64url(SHA-256(canonical JWK)). */
int tw_jws_thumbprint(EVP_PKEY *key, char **out);
/* Key authorization: TOKEN "." thumbprint (RFC 8555 §8.1). */
int tw_jws_key_authz(EVP_PKEY *key, const char *token, char **out);
/* base64url(SHA-256(key_authz)): the dns-01 TXT value. */
int tw_jws_dns01_value(const char *key_authz, char **out);

/* Convert an ECDSA DER signature to raw r||s of 2*n bytes (n = 32 for
 * P-256). Fails with TW_EINVAL on malformed DER or oversized integers. */
int tw_jws_ecdsa_der_to_raw(const unsigned char *der, size_t derlen, unsigned char *raw, size_t n);

/* Flattened JWS JSON: {"protected":..,"payload":..,"signature":..}.
 * Protected header: alg ES256, nonce, url, and `kid` when kid != NULL,
 * else the `jwk`. payload NULL = POST-as-GET (empty payload). */
int tw_jws_sign(EVP_PKEY *key, const char *kid, const char *nonce, const char *url,
                const char *payload, char **out);
/* The EAB inner JWS (RFC 8555 §7.3.4): HS256 with the base64url-decoded
 * hmac_key over the account JWK; protected {alg, kid, url}. */
int tw_jws_eab(EVP_PKEY *account_key, const char *kid, const char *hmac_key_b64url, const char *url,
               char **out);

#endif
