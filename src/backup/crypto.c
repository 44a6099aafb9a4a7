/* crypto.c — OpenSSL 3 EVP: scrypt key wrapping, HMAC-SHA-256 IDs, AES-256-GCM. */
#include "backup/crypto.h"

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>
#include <openssl/params.h>
#include <openssl/rand.h>
#include <string.h>

#include "core/hex.h"

static EVP_MAC *hmac_alg(void)
{
	static EVP_MAC *mac; /* fetched once; benign race: fetch is idempotent */
	if (mac == NULL)
		mac = EVP_MAC_fetch(NULL, "HMAC", NULL);
	return mac;
}

int tw_crypto_keys_ready(struct tw_keys *k, struct tw_err *e)
{
	EVP_MAC *mac = hmac_alg();
	if (mac == NULL)
		return tw_err_set(e, TW_ECRYPTO, "HMAC not available");
	EVP_MAC_CTX *ctx = EVP_MAC_CTX_new(mac);
	OSSL_PARAM params[] = {OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, "SHA256", 0),
			       OSSL_PARAM_construct_end()};
	if (ctx == NULL || EVP_MAC_init(ctx, k->mac, TW_KEY_LEN, params) != 1) {
		EVP_MAC_CTX_free(ctx);
		return tw_err_set(e, TW_ECRYPTO, "HMAC init failed");
	}
	EVP_MAC_CTX_free(k->mac_tmpl);
	k->mac_tmpl = ctx;
	return 0;
}

int tw_crypto_keys_new(struct tw_keys *k, struct tw_err *e)
{
	memset(k, 0, sizeof *k);
	if (RAND_bytes(k->enc, TW_KEY_LEN) != 1 || RAND_bytes(k->mac, TW_KEY_LEN) != 1 ||
	    RAND_bytes(k->seed, TW_KEY_LEN) != 1)
		return tw_err_set(e, TW_ECRYPTO, "random generator failed");
	return tw_crypto_keys_ready(k, e);
}

void tw_crypto_keys_clear(struct tw_keys *k)
{
	if (k == NULL)
		return;
	EVP_MAC_CTX_free(k->mac_tmpl);
	OPENSSL_cleanse(k, sizeof *k);
}

int tw_crypto_kdf_default(struct tw_kdf_params *kp, struct tw_err *e)
{
	kp->n = 1u << 15;
	kp->r = 8;
	kp->p = 1;
	if (RAND_bytes(kp->salt, sizeof kp->salt) != 1)
		return tw_err_set(e, TW_ECRYPTO, "random generator failed");
	return 0;
}

int tw_crypto_kdf_check(const struct tw_kdf_params *kp)
{
	if (kp->n < (1u << 10) || kp->n > (1u << 20) || (kp->n & (kp->n - 1)) != 0)
		return TW_EINVAL;
	if (kp->r < 1 || kp->r > 32 || kp->p < 1 || kp->p > 16)
		return TW_EINVAL;
	return 0;
}

static int derive(const char *pw, size_t pwlen, const struct tw_kdf_params *kp,
		  uint8_t kek[TW_KEY_LEN], struct tw_err *e)
{
	if (tw_crypto_kdf_check(kp) != 0)
		return tw_err_set(e, TW_EINVAL, "scrypt parameters out of range");
	EVP_KDF *kdf = EVP_KDF_fetch(NULL, "SCRYPT", NULL);
	EVP_KDF_CTX *ctx = kdf ? EVP_KDF_CTX_new(kdf) : NULL;
	EVP_KDF_free(kdf);
	if (ctx == NULL)
		return tw_err_set(e, TW_ECRYPTO, "scrypt not available");
	uint64_t n = kp->n;
	uint32_t r = kp->r, p = kp->p;
	uint64_t maxmem = (uint64_t)1 << 31;
	OSSL_PARAM params[] = {
		OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_PASSWORD, (void *)pw, pwlen),
		OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_SALT, (void *)kp->salt,
						  sizeof kp->salt),
		OSSL_PARAM_construct_uint64(OSSL_KDF_PARAM_SCRYPT_N, &n),
		OSSL_PARAM_construct_uint32(OSSL_KDF_PARAM_SCRYPT_R, &r),
		OSSL_PARAM_construct_uint32(OSSL_KDF_PARAM_SCRYPT_P, &p),
		OSSL_PARAM_construct_uint64(OSSL_KDF_PARAM_SCRYPT_MAXMEM, &maxmem),
		OSSL_PARAM_construct_end()};
	int ok = EVP_KDF_derive(ctx, kek, TW_KEY_LEN, params);
	EVP_KDF_CTX_free(ctx);
	return ok == 1 ? 0 : tw_err_set(e, TW_ECRYPTO, "scrypt failed");
}

static const char key_aad[] = "tapwork/v1/key";

int tw_crypto_wrap(const struct tw_keys *k, const char *pw, size_t pwlen,
		   const struct tw_kdf_params *kp, uint8_t out[TW_WRAPPED_LEN], struct tw_err *e)
{
	uint8_t kek[TW_KEY_LEN], pt[TW_MASTER_LEN];
	int rc = derive(pw, pwlen, kp, kek, e);
	if (rc != 0)
		return rc;
	memcpy(pt, k->enc, TW_KEY_LEN);
	memcpy(pt + TW_KEY_LEN, k->mac, TW_KEY_LEN);
	memcpy(pt + 2 * TW_KEY_LEN, k->seed, TW_KEY_LEN);
	rc = tw_crypto_seal(kek, key_aad, sizeof key_aad - 1, pt, sizeof pt, out);
	OPENSSL_cleanse(kek, sizeof kek);
	OPENSSL_cleanse(pt, sizeof pt);
	return rc == 0 ? 0 : tw_err_set(e, rc, "key wrapping failed");
}

int tw_crypto_unwrap(struct tw_keys *k, const char *pw, size_t pwlen,
		     const struct tw_kdf_params *kp, const uint8_t in[TW_WRAPPED_LEN],
		     struct tw_err *e)
{
	uint8_t kek[TW_KEY_LEN], pt[TW_MASTER_LEN];
	int rc = derive(pw, pwlen, kp, kek, e);
	if (rc != 0)
		return rc;
	rc = tw_crypto_open(kek, key_aad, sizeof key_aad - 1, in, TW_WRAPPED_LEN, pt);
	OPENSSL_cleanse(kek, sizeof kek);
	if (rc != 0)
		return tw_err_set(e, TW_ECRYPTO, "wrong password or damaged key file");
	memset(k, 0, sizeof *k);
	memcpy(k->enc, pt, TW_KEY_LEN);
	memcpy(k->mac, pt + TW_KEY_LEN, TW_KEY_LEN);
	memcpy(k->seed, pt + 2 * TW_KEY_LEN, TW_KEY_LEN);
	OPENSSL_cleanse(pt, sizeof pt);
	return tw_crypto_keys_ready(k, e);
}

int tw_crypto_id(const struct tw_keys *k, const void *p, size_t n, uint8_t id[TW_ID_LEN])
{
	EVP_MAC_CTX *ctx = EVP_MAC_CTX_dup(k->mac_tmpl);
	size_t outl = 0;
	int ok = ctx != NULL && EVP_MAC_update(ctx, p, n) == 1 &&
		 EVP_MAC_final(ctx, id, &outl, TW_ID_LEN) == 1 && outl == TW_ID_LEN;
	EVP_MAC_CTX_free(ctx);
	return ok ? 0 : TW_ECRYPTO;
}

void tw_crypto_sha256(const void *p, size_t n, uint8_t out[32])
{
	unsigned int len = 32;
	EVP_Digest(p, n, out, &len, EVP_sha256(), NULL);
}

int tw_crypto_seal(const uint8_t key[TW_KEY_LEN], const void *aad, size_t aadlen,
		   const void *pt, size_t n, uint8_t *out)
{
	if (n > INT32_MAX || aadlen > INT32_MAX)
		return TW_ELIMIT;
	if (RAND_bytes(out, TW_NONCE_LEN) != 1)
		return TW_ECRYPTO;
	EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();
	int len = 0, rc = TW_ECRYPTO;
	if (c == NULL || EVP_EncryptInit_ex(c, EVP_aes_256_gcm(), NULL, key, out) != 1)
		goto done;
	if (aadlen > 0 && EVP_EncryptUpdate(c, NULL, &len, aad, (int)aadlen) != 1)
		goto done;
	if (n > 0 && EVP_EncryptUpdate(c, out + TW_NONCE_LEN, &len, pt, (int)n) != 1)
		goto done;
	if (EVP_EncryptFinal_ex(c, out + TW_NONCE_LEN + n, &len) != 1)
		goto done;
	if (EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_GET_TAG, TW_TAG_LEN, out + TW_NONCE_LEN + n) != 1)
		goto done;
	rc = 0;
done:
	EVP_CIPHER_CTX_free(c);
	return rc;
}

int tw_crypto_open(const uint8_t key[TW_KEY_LEN], const void *aad, size_t aadlen,
		   const uint8_t *in, size_t n, uint8_t *out)
{
	if (n < TW_SEAL_OVERHEAD)
		return TW_ECRYPTO;
	if (n > INT32_MAX || aadlen > INT32_MAX)
		return TW_ELIMIT;
	size_t ctlen = n - TW_SEAL_OVERHEAD;
	EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();
	int len = 0, rc = TW_ECRYPTO;
	uint8_t tag[TW_TAG_LEN];
	memcpy(tag, in + n - TW_TAG_LEN, TW_TAG_LEN);
	if (c == NULL || EVP_DecryptInit_ex(c, EVP_aes_256_gcm(), NULL, key, in) != 1)
		goto done;
	if (aadlen > 0 && EVP_DecryptUpdate(c, NULL, &len, aad, (int)aadlen) != 1)
		goto done;
	if (ctlen > 0 && EVP_DecryptUpdate(c, out, &len, in + TW_NONCE_LEN, (int)ctlen) != 1)
		goto done;
	if (EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_SET_TAG, TW_TAG_LEN, tag) != 1)
		goto done;
	if (EVP_DecryptFinal_ex(c, out + ctlen, &len) != 1)
		goto done;
	rc = 0;
done:
	EVP_CIPHER_CTX_free(c);
	if (rc != 0 && ctlen > 0)
		memset(out, 0, ctlen);
	return rc;
}

void tw_hex(const uint8_t *p, size_t n, char *out)
{
	static const char d[] = "0123456789abcdef";
	for (size_t i = 0; i < n; i++) {
		out[2 * i] = d[p[i] >> 4];
		out[2 * i + 1] = d[p[i] & 15];
	}
	out[2 * n] = '\0';
}

int tw_unhex(const char *s, size_t slen, uint8_t *out, size_t n)
{
	if (slen != 2 * n)
		return TW_EINVAL;
	for (size_t i = 0; i < n; i++) {
		int hi = tw_hexval(s[2 * i]), lo = tw_hexval(s[2 * i + 1]);
		if (hi < 0 || lo < 0)
			return TW_EINVAL;
		out[i] = (uint8_t)(hi << 4 | lo);
	}
	return 0;
}
