/* jws.c — base64url, keys, JWK, ES256/HS256 JWS for ACME. See jws.h. */
#include "acme/jws.h"

#include <jansson.h>
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <openssl/sha.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static const char b64u_alpha[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

int tw_jws_b64url(const void *data, size_t len, char **out)
{
	const unsigned char *p = data;
	if (len > (SIZE_MAX / 4) - 4)
		return TW_ELIMIT;
	char *s = malloc(len / 3 * 4 + 5);
	if (s == NULL)
		return TW_ENOMEM;
	size_t o = 0, i = 0;
	for (; i + 3 <= len; i += 3) {
		uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8 | p[i + 2];
		s[o++] = b64u_alpha[v >> 18 & 63];
		s[o++] = b64u_alpha[v >> 12 & 63];
		s[o++] = b64u_alpha[v >> 6 & 63];
		s[o++] = b64u_alpha[v & 63];
	}
	if (len - i == 1) {
		uint32_t v = (uint32_t)p[i] << 16;
		s[o++] = b64u_alpha[v >> 18 & 63];
		s[o++] = b64u_alpha[v >> 12 & 63];
	} else if (len - i == 2) {
		uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8;
		s[o++] = b64u_alpha[v >> 18 & 63];
		s[o++] = b64u_alpha[v >> 12 & 63];
		s[o++] = b64u_alpha[v >> 6 & 63];
	}
	s[o] = '\0';
	*out = s;
	return 0;
}

static int b64u_val(unsigned char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '-' || c == '+')
		return 62;
	if (c == '_' || c == '/')
		return 63;
	return -1;
}

int tw_jws_b64url_decode(const char *s, size_t len, unsigned char **out, size_t *outlen)
{
	while (len > 0 && s[len - 1] == '=')
		len--;
	if (len % 4 == 1)
		return TW_EINVAL;
	unsigned char *d = malloc(len / 4 * 3 + 3);
	if (d == NULL)
		return TW_ENOMEM;
	size_t o = 0;
	uint32_t acc = 0;
	unsigned bits = 0;
	for (size_t i = 0; i < len; i++) {
		int v = b64u_val((unsigned char)s[i]);
		if (v < 0) {
			free(d);
			return TW_EINVAL;
		}
		acc = acc << 6 | (uint32_t)v;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			d[o++] = (unsigned char)(acc >> bits);
			acc &= (1u << bits) - 1;
		}
	}
	*out = d;
	*outlen = o;
	return 0;
}

int tw_jws_key_new_p256(EVP_PKEY **out)
{
	*out = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
	return *out ? 0 : TW_ECRYPTO;
}

int tw_jws_key_new_rsa(unsigned bits, EVP_PKEY **out)
{
	if (bits < 2048 || bits > 8192)
		return TW_EINVAL;
	*out = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)bits);
	return *out ? 0 : TW_ECRYPTO;
}

int tw_jws_key_to_pem(EVP_PKEY *key, char **pem, size_t *len)
{
	BIO *b = BIO_new(BIO_s_mem());
	int rc = TW_ECRYPTO;
	if (b == NULL)
		return TW_ENOMEM;
	if (PEM_write_bio_PrivateKey(b, key, NULL, NULL, 0, NULL, NULL) == 1) {
		char *p;
		long n = BIO_get_mem_data(b, &p);
		char *s = n > 0 ? malloc((size_t)n + 1) : NULL;
		if (s) {
			memcpy(s, p, (size_t)n);
			s[n] = '\0';
			*pem = s;
			*len = (size_t)n;
			rc = 0;
		} else {
			rc = TW_ENOMEM;
		}
	}
	BIO_free(b);
	return rc;
}

int tw_jws_key_from_pem(const char *pem, size_t len, EVP_PKEY **out)
{
	if (len > INT32_MAX)
		return TW_EINVAL;
	BIO *b = BIO_new_mem_buf(pem, (int)len);
	if (b == NULL)
		return TW_ENOMEM;
	*out = PEM_read_bio_PrivateKey(b, NULL, NULL, NULL);
	BIO_free(b);
	return *out ? 0 : TW_ECRYPTO;
}

/* The affine coordinates of a P-256 public key, 32 bytes each. */
static int ec_xy(EVP_PKEY *key, unsigned char x[32], unsigned char y[32])
{
	BIGNUM *bx = NULL, *by = NULL;
	int rc = TW_ECRYPTO;
	char curve[32];
	if (EVP_PKEY_get_utf8_string_param(key, OSSL_PKEY_PARAM_GROUP_NAME, curve, sizeof curve,
	                                   NULL) != 1 ||
	    strcmp(curve, "prime256v1") != 0)
		return TW_EUNSUPP;
	if (EVP_PKEY_get_bn_param(key, OSSL_PKEY_PARAM_EC_PUB_X, &bx) == 1 &&
	    EVP_PKEY_get_bn_param(key, OSSL_PKEY_PARAM_EC_PUB_Y, &by) == 1 &&
	    BN_bn2binpad(bx, x, 32) == 32 && BN_bn2binpad(by, y, 32) == 32)
		rc = 0;
	BN_free(bx);
	BN_free(by);
	return rc;
}

int tw_jws_jwk(EVP_PKEY *key, char **out)
{
	unsigned char x[32], y[32];
	char *xs = NULL, *ys = NULL;
	int rc = ec_xy(key, x, y);
	if (rc == 0)
		rc = tw_jws_b64url(x, 32, &xs);
	if (rc == 0)
		rc = tw_jws_b64url(y, 32, &ys);
	if (rc == 0) {
		size_t n = strlen(xs) + strlen(ys) + 64;
		char *s = malloc(n);
		if (s == NULL)
			rc = TW_ENOMEM;
		else {
			snprintf(s, n,
			         "{\"crv\":\"P-256\",\"kty\":\"EC\",\"x\":\"%s\",\"y\":\"%s\"}", xs,
			         ys);
			*out = s;
		}
	}
	free(xs);
	free(ys);
	return rc;
}

int tw_jws_thumbprint(EVP_PKEY *key, char **out)
{
	char *jwk = NULL;
	int rc = tw_jws_jwk(key, &jwk);
	if (rc == 0) {
		unsigned char md[SHA256_DIGEST_LENGTH];
		SHA256((const unsigned char *)jwk, strlen(jwk), md);
		rc = tw_jws_b64url(md, sizeof md, out);
	}
	free(jwk);
	return rc;
}

int tw_jws_key_authz(EVP_PKEY *key, const char *token, char **out)
{
	char *tp = NULL;
	int rc = tw_jws_thumbprint(key, &tp);
	if (rc == 0) {
		size_t n = strlen(token) + strlen(tp) + 2;
		char *s = malloc(n);
		if (s == NULL)
			rc = TW_ENOMEM;
		else {
			snprintf(s, n, "%s.%s", token, tp);
			*out = s;
		}
	}
	free(tp);
	return rc;
}

int tw_jws_dns01_value(const char *key_authz, char **out)
{
	unsigned char md[SHA256_DIGEST_LENGTH];
	SHA256((const unsigned char *)key_authz, strlen(key_authz), md);
	return tw_jws_b64url(md, sizeof md, out);
}

/* Read one DER length at *p (definite form, at most 2 length bytes). */
static int der_len(const unsigned char **p, const unsigned char *end, size_t *len)
{
	if (*p >= end)
		return TW_EINVAL;
	unsigned char b = *(*p)++;
	if (b < 0x80) {
		*len = b;
	} else if (b == 0x81 || b == 0x82) {
		size_t nb = b & 0x7f, v = 0;
		if ((size_t)(end - *p) < nb)
			return TW_EINVAL;
		for (size_t i = 0; i < nb; i++)
			v = v << 8 | *(*p)++;
		*len = v;
	} else {
		return TW_EINVAL;
	}
	return (size_t)(end - *p) < *len ? TW_EINVAL : 0;
}

static int der_int_to_fixed(const unsigned char **p, const unsigned char *end, unsigned char *dst,
                            size_t n)
{
	size_t len;
	if (*p >= end || *(*p)++ != 0x02 || der_len(p, end, &len) < 0 || len == 0)
		return TW_EINVAL;
	const unsigned char *v = *p;
	*p += len;
	while (len > 0 && *v == 0) { /* strip sign/leading zeros */
		v++;
		len--;
	}
	if (len > n)
		return TW_EINVAL;
	memset(dst, 0, n - len);
	memcpy(dst + (n - len), v, len);
	return 0;
}

int tw_jws_ecdsa_der_to_raw(const unsigned char *der, size_t derlen, unsigned char *raw, size_t n)
{
	const unsigned char *p = der, *end = der + derlen;
	size_t len;
	if (derlen < 2 || *p++ != 0x30 || der_len(&p, end, &len) < 0 || p + len != end)
		return TW_EINVAL;
	if (der_int_to_fixed(&p, end, raw, n) < 0 || der_int_to_fixed(&p, end, raw + n, n) < 0)
		return TW_EINVAL;
	return p == end ? 0 : TW_EINVAL;
}

/* "<b64u(protected)>.<b64u(payload)>" signed; returns the three parts. */
static int build_jws(const char *prot_json, const char *payload, int hs256, EVP_PKEY *key,
                     const unsigned char *hkey, size_t hkeylen, char **out)
{
	char *p64 = NULL, *b64 = NULL, *sig64 = NULL, *input = NULL;
	unsigned char *der = NULL;
	EVP_MD_CTX *md = NULL;
	int rc = tw_jws_b64url(prot_json, strlen(prot_json), &p64);
	if (rc < 0)
		goto out;
	if ((rc = tw_jws_b64url(payload ? payload : "", payload ? strlen(payload) : 0, &b64)) < 0)
		goto out;
	size_t inlen = strlen(p64) + strlen(b64) + 1;
	if ((input = malloc(inlen + 1)) == NULL) {
		rc = TW_ENOMEM;
		goto out;
	}
	snprintf(input, inlen + 1, "%s.%s", p64, b64);
	if (hs256) {
		unsigned char mac[EVP_MAX_MD_SIZE];
		unsigned maclen = 0;
		if (HMAC(EVP_sha256(), hkey, (int)hkeylen, (const unsigned char *)input, inlen, mac,
		         &maclen) == NULL) {
			rc = TW_ECRYPTO;
			goto out;
		}
		rc = tw_jws_b64url(mac, maclen, &sig64);
	} else {
		size_t derlen = 0;
		unsigned char raw[64];
		rc = TW_ECRYPTO;
		if ((md = EVP_MD_CTX_new()) == NULL ||
		    EVP_DigestSignInit(md, NULL, EVP_sha256(), NULL, key) != 1 ||
		    EVP_DigestSign(md, NULL, &derlen, (const unsigned char *)input, inlen) != 1 ||
		    (der = malloc(derlen)) == NULL ||
		    EVP_DigestSign(md, der, &derlen, (const unsigned char *)input, inlen) != 1)
			goto out;
		if ((rc = tw_jws_ecdsa_der_to_raw(der, derlen, raw, 32)) < 0)
			goto out;
		rc = tw_jws_b64url(raw, sizeof raw, &sig64);
	}
	if (rc < 0)
		goto out;
	size_t n = strlen(p64) + strlen(b64) + strlen(sig64) + 64;
	char *s = malloc(n);
	if (s == NULL) {
		rc = TW_ENOMEM;
		goto out;
	}
	snprintf(s, n, "{\"protected\":\"%s\",\"payload\":\"%s\",\"signature\":\"%s\"}", p64, b64,
	         sig64);
	*out = s;
out:
	EVP_MD_CTX_free(md);
	free(der);
	free(input);
	free(p64);
	free(b64);
	free(sig64);
	return rc;
}

int tw_jws_sign(EVP_PKEY *key, const char *kid, const char *nonce, const char *url,
                const char *payload, char **out)
{
	json_t *h = json_object();
	char *jwk = NULL, *prot = NULL;
	int rc = TW_ENOMEM;
	if (h == NULL)
		return TW_ENOMEM;
	json_object_set_new(h, "alg", json_string("ES256"));
	if (nonce)
		json_object_set_new(h, "nonce", json_string(nonce));
	json_object_set_new(h, "url", json_string(url));
	if (kid) {
		json_object_set_new(h, "kid", json_string(kid));
	} else {
		if ((rc = tw_jws_jwk(key, &jwk)) < 0)
			goto out;
		json_t *j = json_loads(jwk, 0, NULL);
		if (j == NULL) {
			rc = TW_ENOMEM;
			goto out;
		}
		json_object_set_new(h, "jwk", j);
	}
	if ((prot = json_dumps(h, JSON_COMPACT | JSON_SORT_KEYS)) == NULL) {
		rc = TW_ENOMEM;
		goto out;
	}
	rc = build_jws(prot, payload, 0, key, NULL, 0, out);
out:
	free(prot);
	free(jwk);
	json_decref(h);
	return rc;
}

int tw_jws_eab(EVP_PKEY *account_key, const char *kid, const char *hmac_key_b64url, const char *url,
               char **out)
{
	unsigned char *hk = NULL;
	size_t hklen = 0;
	char *jwk = NULL, *prot = NULL;
	json_t *h = NULL;
	int rc = tw_jws_b64url_decode(hmac_key_b64url, strlen(hmac_key_b64url), &hk, &hklen);
	if (rc < 0)
		goto out;
	if ((rc = tw_jws_jwk(account_key, &jwk)) < 0)
		goto out;
	rc = TW_ENOMEM;
	if ((h = json_object()) == NULL)
		goto out;
	json_object_set_new(h, "alg", json_string("HS256"));
	json_object_set_new(h, "kid", json_string(kid));
	json_object_set_new(h, "url", json_string(url));
	if ((prot = json_dumps(h, JSON_COMPACT | JSON_SORT_KEYS)) == NULL)
		goto out;
	rc = build_jws(prot, jwk, 1, NULL, hk, hklen, out);
out:
	if (hk)
		OPENSSL_cleanse(hk, hklen);
	free(hk);
	free(jwk);
	free(prot);
	json_decref(h);
	return rc;
}
