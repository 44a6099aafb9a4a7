/* Unit tests for src/acme/x509.c: CSR contents, the RFC 8737 acme-tls/1
 * certificate, the RFC 9773 ARI certID of a known certificate. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <openssl/pem.h>
#include <openssl/sha.h>
#include <openssl/x509v3.h>
#include <stdlib.h>
#include <string.h>

#include "acme/jws.h"
#include "acme/x509.h"

static void san_names(STACK_OF(GENERAL_NAME) * gens, const char **want, int n)
{
	assert_int_equal(sk_GENERAL_NAME_num(gens), n);
	for (int i = 0; i < n; i++) {
		GENERAL_NAME *g = sk_GENERAL_NAME_value(gens, i);
		assert_int_equal(g->type, GEN_DNS);
		assert_string_equal((const char *)ASN1_STRING_get0_data(g->d.dNSName), want[i]);
	}
}

static void csr_contents(void **state)
{
	const char *names[] = {"example.com", "*.example.com", "www.example.com"};
	for (int kt = 0; kt < 2; kt++) {
		EVP_PKEY *k = NULL;
		assert_int_equal(kt ? tw_jws_key_new_rsa(2048, &k) : tw_jws_key_new_p256(&k), 0);
		unsigned char *der = NULL;
		size_t dl = 0;
		assert_int_equal(tw_acme_x509_csr(k, names, 3, &der, &dl), 0);
		const unsigned char *p = der;
		X509_REQ *req = d2i_X509_REQ(NULL, &p, (long)dl);
		assert_non_null(req);
		assert_int_equal(X509_REQ_verify(req, k), 1);
		EVP_PKEY *pub = X509_REQ_get0_pubkey(req);
		assert_int_equal(EVP_PKEY_eq(pub, k), 1);
		char cn[256];
		X509_NAME_get_text_by_NID(X509_REQ_get_subject_name(req), NID_commonName, cn,
		                          sizeof cn);
		assert_string_equal(cn, "example.com");
		STACK_OF(X509_EXTENSION) *exts = X509_REQ_get_extensions(req);
		STACK_OF(GENERAL_NAME) *gens =
		    X509V3_get_d2i(exts, NID_subject_alt_name, NULL, NULL);
		assert_non_null(gens);
		san_names(gens, names, 3);
		assert_int_equal(X509_REQ_get_signature_nid(req),
		                 kt ? NID_sha256WithRSAEncryption : NID_ecdsa_with_SHA256);
		GENERAL_NAMES_free(gens);
		sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
		X509_REQ_free(req);
		OPENSSL_free(der);
		EVP_PKEY_free(k);
	}
	/* A first name longer than 64 bytes gets no CN (SAN only). */
	const char *lng[] = {
	    "a-very-long-label-that-goes-on-and-on-and-on-for-a-while.example.com"};
	EVP_PKEY *k = NULL;
	unsigned char *der = NULL;
	size_t dl;
	assert_int_equal(tw_jws_key_new_p256(&k), 0);
	assert_int_equal(tw_acme_x509_csr(k, lng, 1, &der, &dl), 0);
	const unsigned char *p = der;
	X509_REQ *req = d2i_X509_REQ(NULL, &p, (long)dl);
	assert_int_equal(X509_NAME_entry_count(X509_REQ_get_subject_name(req)), 0);
	assert_int_equal(tw_acme_x509_csr(k, lng, 0, &der, &dl), TW_EINVAL);
	X509_REQ_free(req);
	OPENSSL_free(der);
	EVP_PKEY_free(k);
}

static void tlsalpn01_cert(void **state)
{
	const char *ka = "evaGxfADs6pSRb2LAv9IZf17Dt3juxGJ-PCt92wr-oA.thumbprint";
	char *cert = NULL, *key = NULL;
	assert_int_equal(tw_acme_x509_tlsalpn01("alpn.example.com", ka, &cert, &key), 0);
	BIO *b = BIO_new_mem_buf(cert, -1);
	X509 *x = PEM_read_bio_X509(b, NULL, NULL, NULL);
	BIO_free(b);
	b = BIO_new_mem_buf(key, -1);
	EVP_PKEY *k = PEM_read_bio_PrivateKey(b, NULL, NULL, NULL);
	BIO_free(b);
	assert_non_null(x);
	assert_non_null(k);
	assert_int_equal(X509_check_private_key(x, k), 1);
	assert_int_equal(X509_verify(x, k), 1); /* self-signed */
	const char *want[] = {"alpn.example.com"};
	STACK_OF(GENERAL_NAME) *gens = X509_get_ext_d2i(x, NID_subject_alt_name, NULL, NULL);
	san_names(gens, want, 1);
	GENERAL_NAMES_free(gens);
	ASN1_OBJECT *oid = OBJ_txt2obj("1.3.6.1.5.5.7.1.31", 1);
	int idx = X509_get_ext_by_OBJ(x, oid, -1);
	assert_true(idx >= 0);
	X509_EXTENSION *ext = X509_get_ext(x, idx);
	assert_int_equal(X509_EXTENSION_get_critical(ext), 1);
	ASN1_OCTET_STRING *v = X509_EXTENSION_get_data(ext);
	unsigned char md[32];
	SHA256((const unsigned char *)ka, strlen(ka), md);
	assert_int_equal(ASN1_STRING_length(v), 34);
	const unsigned char *d = ASN1_STRING_get0_data(v);
	assert_int_equal(d[0], 0x04); /* DER OCTET STRING of 32 bytes */
	assert_int_equal(d[1], 0x20);
	assert_memory_equal(d + 2, md, 32);
	ASN1_OBJECT_free(oid);
	EVP_PKEY_free(k);
	X509_free(x);
	free(cert);
	free(key);
}

/* A certificate with the AKI and serial of RFC 9773 §4.1's example. */
static char *cert_with_aki_serial(const unsigned char *aki, int akilen, long serial)
{
	EVP_PKEY *k = NULL;
	assert_int_equal(tw_jws_key_new_p256(&k), 0);
	X509 *x = X509_new();
	X509_set_version(x, 2);
	ASN1_INTEGER_set(X509_get_serialNumber(x), serial);
	X509_NAME *n = X509_get_subject_name(x);
	X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_ASC, (const unsigned char *)"leaf", -1, -1, 0);
	X509_NAME *in = X509_NAME_new();
	X509_NAME_add_entry_by_txt(in, "CN", MBSTRING_ASC, (const unsigned char *)"Test Issuer R9",
	                           -1, -1, 0);
	X509_set_issuer_name(x, in);
	X509_NAME_free(in);
	ASN1_TIME_set(X509_getm_notBefore(x), 1700000000);
	ASN1_TIME_set(X509_getm_notAfter(x), 1700000000 + 90 * 86400);
	X509_set_pubkey(x, k);
	AUTHORITY_KEYID *ak = AUTHORITY_KEYID_new();
	ak->keyid = ASN1_OCTET_STRING_new();
	ASN1_OCTET_STRING_set(ak->keyid, aki, akilen);
	X509_add1_ext_i2d(x, NID_authority_key_identifier, ak, 0, 0);
	AUTHORITY_KEYID_free(ak);
	X509_sign(x, k, EVP_sha256());
	BIO *b = BIO_new(BIO_s_mem());
	PEM_write_bio_X509(b, x);
	char *p;
	long len = BIO_get_mem_data(b, &p);
	char *s = strndup(p, (size_t)len);
	BIO_free(b);
	X509_free(x);
	EVP_PKEY_free(k);
	return s;
}

static void ari_cert_id(void **state)
{
	/* RFC 9773 §4.1: keyIdentifier 69:88:5B:6B:87:46:40:41:E1:B3:7B:84:7B:A0:AE:2C:DE:01:C8:D4,
	 * serial 0x87654321 (DER 00 87 65 43 21) -> "aYhba4dGQEHhs3uEe6CuLN4ByNQ.AIdlQyE". */
	const unsigned char aki[] = {0x69, 0x88, 0x5B, 0x6B, 0x87, 0x46, 0x40, 0x41, 0xE1, 0xB3,
	                             0x7B, 0x84, 0x7B, 0xA0, 0xAE, 0x2C, 0xDE, 0x01, 0xC8, 0xD4};
	char *pem = cert_with_aki_serial(aki, sizeof aki, 0x87654321L);
	struct tw_acme_certinfo ci;
	assert_int_equal(tw_acme_x509_info(pem, strlen(pem), &ci), 0);
	assert_string_equal(ci.ari_id, "aYhba4dGQEHhs3uEe6CuLN4ByNQ.AIdlQyE");
	assert_int_equal(ci.not_before, 1700000000);
	assert_int_equal(ci.not_after, 1700000000 + 90 * 86400);
	assert_string_equal(ci.issuer_cn, "Test Issuer R9");
	char cn[64];
	assert_int_equal(tw_acme_x509_top_issuer(pem, strlen(pem), cn, sizeof cn), 0);
	assert_string_equal(cn, "Test Issuer R9");
	free(pem);
	/* Serial without the high bit: no leading zero. */
	pem = cert_with_aki_serial(aki, sizeof aki, 0x1234L);
	assert_int_equal(tw_acme_x509_info(pem, strlen(pem), &ci), 0);
	assert_string_equal(ci.ari_id, "aYhba4dGQEHhs3uEe6CuLN4ByNQ.EjQ");
	free(pem);
	assert_int_equal(tw_acme_x509_info("nope", 4, &ci), TW_EINVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(csr_contents),
	    cmocka_unit_test(tlsalpn01_cert),
	    cmocka_unit_test(ari_cert_id),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
