/* Unit tests for src/acme/jws.c: base64url, DER->raw, JWK, ES256 JWS
 * (verified with the public key), EAB HS256, key authorizations. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <jansson.h>
#include <openssl/core_names.h>
#include <openssl/ecdsa.h>
#include <openssl/hmac.h>
#include <openssl/param_build.h>
#include <openssl/sha.h>
#include <stdlib.h>
#include <string.h>

#include "acme/jws.h"

static void b64url_vectors(void **state)
{
	/* RFC 4648 §10 vectors, unpadded, plus bytes that use - and _. */
	static const struct {
		const char *in, *out;
	} v[] = {{"", ""},
	         {"f", "Zg"},
	         {"fo", "Zm8"},
	         {"foo", "Zm9v"},
	         {"foob", "Zm9vYg"},
	         {"fooba", "Zm9vYmE"},
	         {"foobar", "Zm9vYmFy"},
	         {"\xfb\xff\xbf", "-_-_"}};
	for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
		char *s = NULL;
		assert_int_equal(tw_jws_b64url(v[i].in, strlen(v[i].in), &s), 0);
		assert_string_equal(s, v[i].out);
		unsigned char *d = NULL;
		size_t dl = 0;
		assert_int_equal(tw_jws_b64url_decode(s, strlen(s), &d, &dl), 0);
		assert_int_equal(dl, strlen(v[i].in));
		assert_memory_equal(d, v[i].in, dl);
		free(d);
		free(s);
	}
	unsigned char *d = NULL;
	size_t dl;
	assert_int_equal(tw_jws_b64url_decode("Zg==", 4, &d, &dl), 0); /* padding tolerated */
	assert_int_equal(dl, 1);
	free(d);
	assert_int_equal(tw_jws_b64url_decode("Z", 1, &d, &dl), TW_EINVAL);
	assert_int_equal(tw_jws_b64url_decode("Zm9*", 4, &d, &dl), TW_EINVAL);
}

static void der_to_raw(void **state)
{
	unsigned char raw[64];
	/* r = 0x01 (short: left-padded), s = 0x00 0x80.. (sign byte stripped). */
	unsigned char der1[] = {0x30, 0x26, 0x02, 0x01, 0x01, 0x02, 0x21, 0x00, 0x80, 1,
	                        2,    3,    4,    5,    6,    7,    8,    9,    10,   11,
	                        12,   13,   14,   15,   16,   17,   18,   19,   20,   21,
	                        22,   23,   24,   25,   26,   27,   28,   29,   30,   31};
	assert_int_equal(tw_jws_ecdsa_der_to_raw(der1, sizeof der1, raw, 32), 0);
	for (int i = 0; i < 31; i++)
		assert_int_equal(raw[i], 0);
	assert_int_equal(raw[31], 1);
	assert_int_equal(raw[32], 0x80);
	assert_int_equal(raw[63], 31);
	/* Too long an integer (33 significant bytes), bad tags, trailing bytes. */
	unsigned char der2[40] = {0x30, 0x26, 0x02, 0x21, 0x01};
	der2[2 + 2 + 33] = 0x02;
	assert_int_equal(tw_jws_ecdsa_der_to_raw(der2, 2 + 2 + 33 + 3, raw, 32), TW_EINVAL);
	unsigned char der3[] = {0x31, 0x06, 0x02, 0x01, 0x01, 0x02, 0x01, 0x01};
	assert_int_equal(tw_jws_ecdsa_der_to_raw(der3, sizeof der3, raw, 32), TW_EINVAL);
	unsigned char der4[] = {0x30, 0x06, 0x02, 0x01, 0x01, 0x02, 0x01, 0x01, 0x00};
	assert_int_equal(tw_jws_ecdsa_der_to_raw(der4, sizeof der4, raw, 32), TW_EINVAL);
	unsigned char der5[] = {0x30, 0x07, 0x02, 0x01, 0x01, 0x02, 0x01};
	assert_int_equal(tw_jws_ecdsa_der_to_raw(der5, sizeof der5, raw, 32), TW_EINVAL);
}

/* The P-256 key of RFC 7515 Appendix A.3. */
static EVP_PKEY *rfc7515_key(void)
{
	static const char *x = "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU";
	static const char *y = "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0";
	static const char *d = "jpsQnnGQmL-YBIffH1136cLyq9CEaEpq2_fhNj9Is8";
	unsigned char *xb, *yb, *db;
	size_t xl, yl, dl;
	assert_int_equal(tw_jws_b64url_decode(x, strlen(x), &xb, &xl), 0);
	assert_int_equal(tw_jws_b64url_decode(y, strlen(y), &yb, &yl), 0);
	assert_int_equal(tw_jws_b64url_decode(d, strlen(d), &db, &dl), 0);
	unsigned char pub[65];
	pub[0] = 4;
	memcpy(pub + 1, xb, 32);
	memcpy(pub + 33, yb, 32);
	BIGNUM *priv = BN_bin2bn(db, (int)dl, NULL);
	OSSL_PARAM_BLD *b = OSSL_PARAM_BLD_new();
	OSSL_PARAM_BLD_push_utf8_string(b, OSSL_PKEY_PARAM_GROUP_NAME, "prime256v1", 0);
	OSSL_PARAM_BLD_push_octet_string(b, OSSL_PKEY_PARAM_PUB_KEY, pub, sizeof pub);
	OSSL_PARAM_BLD_push_BN(b, OSSL_PKEY_PARAM_PRIV_KEY, priv);
	OSSL_PARAM *params = OSSL_PARAM_BLD_to_param(b);
	EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_name(NULL, "EC", NULL);
	EVP_PKEY *key = NULL;
	assert_int_equal(EVP_PKEY_fromdata_init(ctx), 1);
	assert_int_equal(EVP_PKEY_fromdata(ctx, &key, EVP_PKEY_KEYPAIR, params), 1);
	EVP_PKEY_CTX_free(ctx);
	OSSL_PARAM_free(params);
	OSSL_PARAM_BLD_free(b);
	BN_free(priv);
	free(xb);
	free(yb);
	free(db);
	return key;
}

static void jwk_and_thumbprint(void **state)
{
	EVP_PKEY *k = rfc7515_key();
	char *jwk = NULL, *tp = NULL, *ka = NULL, *txt = NULL;
	const char *want = "{\"crv\":\"P-256\",\"kty\":\"EC\",\"x\":"
	                   "\"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU\",\"y\":"
	                   "\"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0\"}";
	assert_int_equal(tw_jws_jwk(k, &jwk), 0);
	assert_string_equal(jwk, want);
	unsigned char md[32];
	char *expect = NULL;
	SHA256((const unsigned char *)want, strlen(want), md);
	assert_int_equal(tw_jws_b64url(md, 32, &expect), 0);
	assert_int_equal(tw_jws_thumbprint(k, &tp), 0);
	assert_string_equal(tp, expect);
	assert_int_equal(strlen(tp), 43);
	assert_int_equal(tw_jws_key_authz(k, "tok-EN_1", &ka), 0);
	assert_true(strncmp(ka, "tok-EN_1.", 9) == 0);
	assert_string_equal(ka + 9, tp);
	assert_int_equal(tw_jws_dns01_value(ka, &txt), 0);
	SHA256((const unsigned char *)ka, strlen(ka), md);
	char *t2 = NULL;
	assert_int_equal(tw_jws_b64url(md, 32, &t2), 0);
	assert_string_equal(txt, t2);
	free(t2);
	free(expect);
	free(jwk);
	free(tp);
	free(ka);
	free(txt);
	EVP_PKEY_free(k);
	/* RSA keys have no EC JWK here. */
	EVP_PKEY *r = NULL;
	assert_int_equal(tw_jws_key_new_rsa(2048, &r), 0);
	assert_int_equal(tw_jws_jwk(r, &jwk), TW_EUNSUPP);
	EVP_PKEY_free(r);
	assert_int_equal(tw_jws_key_new_rsa(1024, &r), TW_EINVAL);
}

static char *part(const char *jws, const char *name)
{
	json_t *j = json_loads(jws, 0, NULL);
	assert_non_null(j);
	char *s = strdup(json_string_value(json_object_get(j, name)));
	json_decref(j);
	return s;
}

static json_t *decode_json(const char *b64)
{
	unsigned char *d;
	size_t dl;
	assert_int_equal(tw_jws_b64url_decode(b64, strlen(b64), &d, &dl), 0);
	json_t *j = json_loadb((const char *)d, dl, 0, NULL);
	free(d);
	return j;
}

/* Verify an ES256 JWS with the public key: rebuild the DER signature. */
static int es256_verify(EVP_PKEY *k, const char *jws)
{
	char *p = part(jws, "protected"), *pl = part(jws, "payload"), *sig = part(jws, "signature");
	unsigned char *raw;
	size_t rl;
	assert_int_equal(tw_jws_b64url_decode(sig, strlen(sig), &raw, &rl), 0);
	assert_int_equal(rl, 64);
	ECDSA_SIG *es = ECDSA_SIG_new();
	ECDSA_SIG_set0(es, BN_bin2bn(raw, 32, NULL), BN_bin2bn(raw + 32, 32, NULL));
	unsigned char *der = NULL;
	int dl = i2d_ECDSA_SIG(es, &der);
	size_t inl = strlen(p) + 1 + strlen(pl);
	char *in = malloc(inl + 1);
	snprintf(in, inl + 1, "%s.%s", p, pl);
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	int ok = EVP_DigestVerifyInit(md, NULL, EVP_sha256(), NULL, k) == 1 &&
	         EVP_DigestVerify(md, der, (size_t)dl, (unsigned char *)in, inl) == 1;
	EVP_MD_CTX_free(md);
	OPENSSL_free(der);
	ECDSA_SIG_free(es);
	free(in);
	free(raw);
	free(p);
	free(pl);
	free(sig);
	return ok;
}

static void jws_es256_verifies(void **state)
{
	EVP_PKEY *k = NULL, *other = NULL;
	assert_int_equal(tw_jws_key_new_p256(&k), 0);
	assert_int_equal(tw_jws_key_new_p256(&other), 0);
	for (int i = 0; i < 20; i++) { /* many signatures: short r/s get padded right */
		char *jws = NULL;
		assert_int_equal(
		    tw_jws_sign(k, NULL, "nonce1", "https://ca/new-acct", "{\"a\":1}", &jws), 0);
		assert_true(es256_verify(k, jws));
		assert_false(es256_verify(other, jws));
		char *p = part(jws, "protected");
		json_t *h = decode_json(p);
		assert_string_equal(json_string_value(json_object_get(h, "alg")), "ES256");
		assert_string_equal(json_string_value(json_object_get(h, "nonce")), "nonce1");
		assert_string_equal(json_string_value(json_object_get(h, "url")),
		                    "https://ca/new-acct");
		assert_non_null(json_object_get(h, "jwk"));
		assert_null(json_object_get(h, "kid"));
		json_decref(h);
		free(p);
		free(jws);
	}
	/* kid form and POST-as-GET (empty payload). */
	char *jws = NULL;
	assert_int_equal(
	    tw_jws_sign(k, "https://ca/acct/1", "n2", "https://ca/order/1", NULL, &jws), 0);
	assert_true(es256_verify(k, jws));
	char *pl = part(jws, "payload"), *p = part(jws, "protected");
	assert_string_equal(pl, "");
	json_t *h = decode_json(p);
	assert_string_equal(json_string_value(json_object_get(h, "kid")), "https://ca/acct/1");
	assert_null(json_object_get(h, "jwk"));
	json_decref(h);
	free(pl);
	free(p);
	free(jws);
	/* Key PEM round trip keeps the JWK. */
	char *pem = NULL, *j1 = NULL, *j2 = NULL;
	size_t plen;
	EVP_PKEY *back = NULL;
	assert_int_equal(tw_jws_key_to_pem(k, &pem, &plen), 0);
	assert_int_equal(tw_jws_key_from_pem(pem, plen, &back), 0);
	assert_int_equal(tw_jws_jwk(k, &j1), 0);
	assert_int_equal(tw_jws_jwk(back, &j2), 0);
	assert_string_equal(j1, j2);
	EVP_PKEY *none = NULL;
	assert_int_equal(tw_jws_key_from_pem("garbage", 7, &none), TW_ECRYPTO);
	assert_null(none);
	free(pem);
	free(j1);
	free(j2);
	EVP_PKEY_free(back);
	EVP_PKEY_free(k);
	EVP_PKEY_free(other);
}

static void eab_hs256(void **state)
{
	EVP_PKEY *k = rfc7515_key();
	const char *hk = "zWNDZM6eQGHWpSRTPal5eIUYFTu7EajVIoguysqZ9wG44nMEtx3MUAsUDkMTQ12W";
	char *jws = NULL, *jwk = NULL;
	assert_int_equal(tw_jws_eab(k, "kid-1", hk, "https://ca/new-acct", &jws), 0);
	char *p = part(jws, "protected"), *pl = part(jws, "payload"), *sig = part(jws, "signature");
	json_t *h = decode_json(p);
	assert_string_equal(json_string_value(json_object_get(h, "alg")), "HS256");
	assert_string_equal(json_string_value(json_object_get(h, "kid")), "kid-1");
	assert_string_equal(json_string_value(json_object_get(h, "url")), "https://ca/new-acct");
	assert_null(json_object_get(h, "nonce")); /* RFC 8555 §7.3.4: no nonce */
	json_decref(h);
	/* Payload is the account JWK. */
	unsigned char *d;
	size_t dl;
	assert_int_equal(tw_jws_b64url_decode(pl, strlen(pl), &d, &dl), 0);
	assert_int_equal(tw_jws_jwk(k, &jwk), 0);
	assert_int_equal(dl, strlen(jwk));
	assert_memory_equal(d, jwk, dl);
	free(d);
	/* Signature = HMAC-SHA256(decoded key, protected.payload). */
	unsigned char *key;
	size_t kl;
	assert_int_equal(tw_jws_b64url_decode(hk, strlen(hk), &key, &kl), 0);
	char in[2048];
	snprintf(in, sizeof in, "%s.%s", p, pl);
	unsigned char mac[32];
	unsigned ml;
	HMAC(EVP_sha256(), key, (int)kl, (unsigned char *)in, strlen(in), mac, &ml);
	char *want = NULL;
	assert_int_equal(tw_jws_b64url(mac, ml, &want), 0);
	assert_string_equal(sig, want);
	assert_int_equal(tw_jws_eab(k, "kid-1", "not base64!", "https://ca/x", &jws), TW_EINVAL);
	free(want);
	free(key);
	free(p);
	free(pl);
	free(sig);
	free(jwk);
	free(jws);
	EVP_PKEY_free(k);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(b64url_vectors),     cmocka_unit_test(der_to_raw),
	    cmocka_unit_test(jwk_and_thumbprint), cmocka_unit_test(jws_es256_verifies),
	    cmocka_unit_test(eab_hs256),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
