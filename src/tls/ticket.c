/* ticket.c — session ticket keys: two-key ring, lazy rotation, shared by
 * every thread and by consecutive store generations. */
#include "tls/ticket.h"
#include "core/err.h"
#include "core/loop.h"

#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

struct tkey {
	unsigned char name[16], aes[32], hmac[32];
	uint64_t born_ms;
};

struct tw_tickets {
	pthread_rwlock_t lock;
	struct tkey cur, prev;
	int have_prev;
	_Atomic uint64_t rotation_ms;
	_Atomic uint64_t next_ms; /* lazy rotation deadline (read without the lock) */
	atomic_int refs;
};

static int fresh(struct tkey *k)
{
	k->born_ms = tw_clock_ms();
	return RAND_bytes(k->name, sizeof k->name) == 1 && RAND_bytes(k->aes, sizeof k->aes) == 1 &&
	               RAND_bytes(k->hmac, sizeof k->hmac) == 1
	           ? 0
	           : TW_ECRYPTO;
}

int tw_tickets_new(uint64_t rotation_ms, struct tw_tickets **out)
{
	struct tw_tickets *t = calloc(1, sizeof *t);
	*out = NULL;
	if (t == NULL)
		return TW_ENOMEM;
	if (fresh(&t->cur) < 0 || pthread_rwlock_init(&t->lock, NULL) != 0) {
		free(t);
		return TW_ECRYPTO;
	}
	atomic_store(&t->rotation_ms, rotation_ms);
	atomic_store(&t->next_ms, t->cur.born_ms + rotation_ms);
	atomic_store(&t->refs, 1);
	*out = t;
	return 0;
}

struct tw_tickets *tw_tickets_acquire(struct tw_tickets *t)
{
	atomic_fetch_add(&t->refs, 1);
	return t;
}

void tw_tickets_release(struct tw_tickets *t)
{
	if (t == NULL || atomic_fetch_sub(&t->refs, 1) != 1)
		return;
	pthread_rwlock_destroy(&t->lock);
	OPENSSL_cleanse(t, sizeof *t);
	free(t);
}

void tw_tickets_set_rotation(struct tw_tickets *t, uint64_t rotation_ms)
{
	pthread_rwlock_wrlock(&t->lock);
	atomic_store(&t->rotation_ms, rotation_ms);
	atomic_store(&t->next_ms, t->cur.born_ms + rotation_ms);
	pthread_rwlock_unlock(&t->lock);
}

static void rotate_locked(struct tw_tickets *t)
{
	struct tkey k;
	if (fresh(&k) < 0)
		return; /* keep the current key rather than none */
	t->prev = t->cur;
	t->have_prev = 1;
	t->cur = k;
	atomic_store(&t->next_ms, k.born_ms + atomic_load(&t->rotation_ms));
	OPENSSL_cleanse(&k, sizeof k);
}

void tw_tickets_rotate(struct tw_tickets *t)
{
	pthread_rwlock_wrlock(&t->lock);
	rotate_locked(t);
	pthread_rwlock_unlock(&t->lock);
}

/* The ticket cipher, fetched from the provider once: EVP_aes_256_cbc() is
 * a legacy handle that OpenSSL 3 resolves by name (a method-store lookup
 * under a lock) on every EVP_*Init_ex, i.e. on every ticket issued or
 * opened. Falls back to the legacy handle if the fetch fails. */
static EVP_CIPHER *ticket_cipher;
static pthread_once_t ticket_cipher_once = PTHREAD_ONCE_INIT;
static void fetch_ticket_cipher(void) { ticket_cipher = EVP_CIPHER_fetch(NULL, "AES-256-CBC", NULL); }

static const EVP_CIPHER *aes_cbc(void)
{
	pthread_once(&ticket_cipher_once, fetch_ticket_cipher);
	return ticket_cipher ? ticket_cipher : EVP_aes_256_cbc();
}

static int set_keys(const struct tkey *k, unsigned char *iv, EVP_CIPHER_CTX *cctx,
                    EVP_MAC_CTX *hctx, int enc)
{
	OSSL_PARAM params[3];
	params[0] = OSSL_PARAM_construct_octet_string(OSSL_MAC_PARAM_KEY, (void *)k->hmac,
	                                              sizeof k->hmac);
	params[1] = OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, (char *)"SHA256", 0);
	params[2] = OSSL_PARAM_construct_end();
	if (!EVP_MAC_CTX_set_params(hctx, params))
		return -1;
	if (enc)
		return EVP_EncryptInit_ex(cctx, aes_cbc(), NULL, k->aes, iv) ? 0 : -1;
	return EVP_DecryptInit_ex(cctx, aes_cbc(), NULL, k->aes, iv) ? 0 : -1;
}

int tw_tickets_crypt(struct tw_tickets *t, unsigned char name[16], unsigned char *iv,
                     EVP_CIPHER_CTX *cctx, EVP_MAC_CTX *hctx, int enc)
{
	struct tkey k;
	int rc;
	if (enc) {
		if (tw_clock_ms() >= atomic_load(&t->next_ms)) {
			pthread_rwlock_wrlock(&t->lock);
			if (tw_clock_ms() >= atomic_load(&t->next_ms))
				rotate_locked(t);
			pthread_rwlock_unlock(&t->lock);
		}
		if (RAND_bytes(iv, EVP_CIPHER_get_iv_length(aes_cbc())) != 1)
			return -1;
		pthread_rwlock_rdlock(&t->lock);
		k = t->cur;
		pthread_rwlock_unlock(&t->lock);
		memcpy(name, k.name, sizeof k.name);
		rc = set_keys(&k, iv, cctx, hctx, 1) == 0 ? 1 : -1;
	} else {
		int which = 0;
		pthread_rwlock_rdlock(&t->lock);
		if (memcmp(name, t->cur.name, sizeof t->cur.name) == 0) {
			k = t->cur;
			which = 1;
		} else if (t->have_prev && memcmp(name, t->prev.name, sizeof t->prev.name) == 0) {
			k = t->prev;
			which = 2; /* decrypt, then issue a ticket under the current key */
		}
		pthread_rwlock_unlock(&t->lock);
		if (which == 0)
			return 0; /* unknown key: full handshake */
		rc = set_keys(&k, iv, cctx, hctx, 0) == 0 ? which : -1;
	}
	OPENSSL_cleanse(&k, sizeof k);
	return rc;
}
