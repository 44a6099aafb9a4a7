/* Unit tests for src/backup/crypto.c: round trips and tamper detection. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include "backup/crypto.h"

static void seal_open_round_trip_and_tamper(void **state)
{
	struct tw_keys k;
	assert_int_equal(tw_crypto_keys_new(&k, NULL), 0);
	uint8_t pt[1000], ct[1000 + TW_SEAL_OVERHEAD], back[1000];
	for (int i = 0; i < 1000; i++)
		pt[i] = (uint8_t)(i * 7);
	assert_int_equal(tw_crypto_seal(k.enc, "aad", 3, pt, sizeof pt, ct), 0);
	assert_int_equal(tw_crypto_open(k.enc, "aad", 3, ct, sizeof ct, back), 0);
	assert_memory_equal(pt, back, sizeof pt);
	/* two seals of the same plaintext differ (fresh nonce) */
	uint8_t ct2[sizeof ct];
	assert_int_equal(tw_crypto_seal(k.enc, "aad", 3, pt, sizeof pt, ct2), 0);
	assert_memory_not_equal(ct, ct2, sizeof ct);
	/* every single flipped byte is detected: nonce, body, tag */
	for (size_t pos = 0; pos < sizeof ct; pos += 37) {
		ct[pos] ^= 0x01;
		assert_int_equal(tw_crypto_open(k.enc, "aad", 3, ct, sizeof ct, back), TW_ECRYPTO);
		ct[pos] ^= 0x01;
	}
	ct[sizeof ct - 1] ^= 0x80;
	assert_int_equal(tw_crypto_open(k.enc, "aad", 3, ct, sizeof ct, back), TW_ECRYPTO);
	ct[sizeof ct - 1] ^= 0x80;
	/* other AAD, other key, truncation */
	assert_int_equal(tw_crypto_open(k.enc, "aae", 3, ct, sizeof ct, back), TW_ECRYPTO);
	assert_int_equal(tw_crypto_open(k.mac, "aad", 3, ct, sizeof ct, back), TW_ECRYPTO);
	assert_int_equal(tw_crypto_open(k.enc, "aad", 3, ct, sizeof ct - 1, back), TW_ECRYPTO);
	assert_int_equal(tw_crypto_open(k.enc, "aad", 3, ct, 5, back), TW_ECRYPTO);
	/* empty plaintext */
	uint8_t e0[TW_SEAL_OVERHEAD];
	assert_int_equal(tw_crypto_seal(k.enc, NULL, 0, "", 0, e0), 0);
	assert_int_equal(tw_crypto_open(k.enc, NULL, 0, e0, sizeof e0, back), 0);
	tw_crypto_keys_clear(&k);
}

static void ids_are_keyed(void **state)
{
	struct tw_keys a, b;
	assert_int_equal(tw_crypto_keys_new(&a, NULL), 0);
	assert_int_equal(tw_crypto_keys_new(&b, NULL), 0);
	uint8_t i1[32], i2[32], i3[32], sha[32];
	assert_int_equal(tw_crypto_id(&a, "data", 4, i1), 0);
	assert_int_equal(tw_crypto_id(&a, "data", 4, i2), 0);
	assert_int_equal(tw_crypto_id(&b, "data", 4, i3), 0);
	assert_memory_equal(i1, i2, 32);
	assert_memory_not_equal(i1, i3, 32);
	tw_crypto_sha256("data", 4, sha);
	assert_memory_not_equal(i1, sha, 32);
	/* RFC 4231 test case 2: HMAC-SHA-256(key="Jefe", "what do ya want for nothing?") */
	struct tw_keys j = {0};
	memcpy(j.mac, "Jefe", 4); /* zero-padded key == "Jefe" for HMAC (block-size padding) */
	assert_int_equal(tw_crypto_keys_ready(&j, NULL), 0);
	assert_int_equal(tw_crypto_id(&j, "what do ya want for nothing?", 28, i1), 0);
	char hex[65];
	tw_hex(i1, 32, hex);
	assert_string_equal(hex, "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
	uint8_t back[32];
	assert_int_equal(tw_unhex(hex, 64, back, 32), 0);
	assert_memory_equal(back, i1, 32);
	assert_int_equal(tw_unhex("zz", 2, back, 1), TW_EINVAL);
	assert_int_equal(tw_unhex("abc", 3, back, 1), TW_EINVAL);
	tw_crypto_keys_clear(&a);
	tw_crypto_keys_clear(&b);
	tw_crypto_keys_clear(&j);
}

static void wrap_unwrap_password(void **state)
{
	struct tw_keys k, back;
	struct tw_kdf_params kp;
	struct tw_err e = {0};
	assert_int_equal(tw_crypto_keys_new(&k, &e), 0);
	assert_int_equal(tw_crypto_kdf_default(&kp, &e), 0);
	kp.n = 1u << 10; /* fast for the test */
	uint8_t w[TW_WRAPPED_LEN];
	assert_int_equal(tw_crypto_wrap(&k, "secret", 6, &kp, w, &e), 0);
	assert_int_equal(tw_crypto_unwrap(&back, "secret", 6, &kp, w, &e), 0);
	assert_memory_equal(back.enc, k.enc, 32);
	assert_memory_equal(back.mac, k.mac, 32);
	assert_memory_equal(back.seed, k.seed, 32);
	tw_crypto_keys_clear(&back);
	assert_int_equal(tw_crypto_unwrap(&back, "secreT", 6, &kp, w, &e), TW_ECRYPTO);
	kp.salt[0] ^= 1;
	assert_int_equal(tw_crypto_unwrap(&back, "secret", 6, &kp, w, &e), TW_ECRYPTO);
	kp.salt[0] ^= 1;
	w[20] ^= 4;
	assert_int_equal(tw_crypto_unwrap(&back, "secret", 6, &kp, w, &e), TW_ECRYPTO);
	kp.n = 1000; /* not a power of two */
	assert_int_equal(tw_crypto_unwrap(&back, "secret", 6, &kp, w, &e), TW_EINVAL);
	tw_crypto_keys_clear(&k);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(seal_open_round_trip_and_tamper),
		cmocka_unit_test(ids_are_keyed),
		cmocka_unit_test(wrap_unwrap_password),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
