/* crypto.h — keys, keyed blob IDs, authenticated encryption (OpenSSL 3 EVP).
 *
 * Master keys: enc (AES-256-GCM), mac (HMAC-SHA-256 blob IDs), chunker seed.
 * They are wrapped per password by scrypt + AES-256-GCM (docs/repository-format.md).
 * Sealed format: nonce(12) | ciphertext | tag(16), TW_SEAL_OVERHEAD bytes more
 * than the plaintext; nonces are fresh random 96-bit values. */
#ifndef TW_BACKUP_CRYPTO_H
#define TW_BACKUP_CRYPTO_H

#include <stddef.h>
#include <stdint.h>

#include "core/err.h"

#define TW_ID_LEN 32
#define TW_KEY_LEN 32
#define TW_NONCE_LEN 12
#define TW_TAG_LEN 16
#define TW_SEAL_OVERHEAD (TW_NONCE_LEN + TW_TAG_LEN)
#define TW_MASTER_LEN (3 * TW_KEY_LEN)
#define TW_WRAPPED_LEN (TW_MASTER_LEN + TW_SEAL_OVERHEAD)

struct tw_keys {
	uint8_t enc[TW_KEY_LEN];
	uint8_t mac[TW_KEY_LEN];
	uint8_t seed[TW_KEY_LEN];
	void *mac_tmpl; /* EVP_MAC_CTX keyed with mac, duplicated per ID */
};

struct tw_kdf_params {
	uint64_t n;
	uint32_t r, p;
	uint8_t salt[32];
};

/* Fresh random master keys. */
int tw_crypto_keys_new(struct tw_keys *k, struct tw_err *e);
/* Prepare derived state after enc/mac/seed were filled in. */
int tw_crypto_keys_ready(struct tw_keys *k, struct tw_err *e);
void tw_crypto_keys_clear(struct tw_keys *k); /* wipes; k may be NULL */

/* Default scrypt parameters with a random salt. */
int tw_crypto_kdf_default(struct tw_kdf_params *kp, struct tw_err *e);
int tw_crypto_kdf_check(const struct tw_kdf_params *kp); /* 0 or TW_EINVAL */
/* Wrap/unwrap the master keys; unwrap fails TW_ECRYPTO on a wrong password. */
int tw_crypto_wrap(const struct tw_keys *k, const char *pw, size_t pwlen,
		   const struct tw_kdf_params *kp, uint8_t out[TW_WRAPPED_LEN], struct tw_err *e);
int tw_crypto_unwrap(struct tw_keys *k, const char *pw, size_t pwlen,
		     const struct tw_kdf_params *kp, const uint8_t in[TW_WRAPPED_LEN],
		     struct tw_err *e);

/* id = HMAC-SHA-256(mac key, p[0..n)). */
int tw_crypto_id(const struct tw_keys *k, const void *p, size_t n, uint8_t id[TW_ID_LEN]);
void tw_crypto_sha256(const void *p, size_t n, uint8_t out[32]);

/* out must hold n + TW_SEAL_OVERHEAD bytes. */
int tw_crypto_seal(const uint8_t key[TW_KEY_LEN], const void *aad, size_t aadlen,
		   const void *pt, size_t n, uint8_t *out);
/* out must hold n - TW_SEAL_OVERHEAD bytes; TW_ECRYPTO when tampered. */
int tw_crypto_open(const uint8_t key[TW_KEY_LEN], const void *aad, size_t aadlen,
		   const uint8_t *in, size_t n, uint8_t *out);

/* Hex helpers: out holds 2n+1 chars; unhex wants exactly 2n hex chars. */
void tw_hex(const uint8_t *p, size_t n, char *out);
int tw_unhex(const char *s, size_t slen, uint8_t *out, size_t n);

#endif
