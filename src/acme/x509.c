/* x509.c — CSR, acme-tls/1 certificate, ARI identifier. See x509.h. */
#include "acme/x509.h"

#include "acme/jws.h"

#include <openssl/asn1.h>
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/objects.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/sha.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static STACK_OF(GENERAL_NAME) * san_of(const char *const *names, size_t n)
{
	STACK_OF(GENERAL_NAME) *gens = sk_GENERAL_NAME_new_null();
	if (gens == NULL)
		return NULL;
	for (size_t i = 0; i < n; i++) {
		GENERAL_NAME *g = GENERAL_NAME_new();
		ASN1_IA5STRING *s = ASN1_IA5STRING_new();
		if (g == NULL || s == NULL || ASN1_STRING_set(s, names[i], -1) != 1) {
			GENERAL_NAME_free(g);
			ASN1_IA5STRING_free(s);
			sk_GENERAL_NAME_pop_free(gens, GENERAL_NAME_free);
			return NULL;
		}
		GENERAL_NAME_set0_value(g, GEN_DNS, s);
		if (sk_GENERAL_NAME_push(gens, g) == 0) {
			GENERAL_NAME_free(g);
			sk_GENERAL_NAME_pop_free(gens, GENERAL_NAME_free);
			return NULL;
		}
	}
	return gens;
}

int tw_acme_x509_csr(EVP_PKEY *key, const char *const *names, size_t nnames, unsigned char **der,
                     size_t *derlen)
{
	STACK_OF(GENERAL_NAME) *gens = NULL;
	STACK_OF(X509_EXTENSION) *exts = NULL;
	X509_EXTENSION *ext = NULL;
	int rc = TW_ECRYPTO;
	if (nnames == 0)
		return TW_EINVAL;
	X509_REQ *req = X509_REQ_new();
	if (req == NULL)
		return TW_ENOMEM;
	X509_NAME *subj = X509_REQ_get_subject_name(req);
	if (strlen(names[0]) <= 64 &&
	    X509_NAME_add_entry_by_txt(subj, "CN", MBSTRING_ASC, (const unsigned char *)names[0],
	                               -1, -1, 0) != 1)
		goto out;
	if ((gens = san_of(names, nnames)) == NULL)
		goto out;
	if ((ext = X509V3_EXT_i2d(NID_subject_alt_name, 0, gens)) == NULL)
		goto out;
	if ((exts = sk_X509_EXTENSION_new_null()) == NULL || sk_X509_EXTENSION_push(exts, ext) == 0)
		goto out;
	ext = NULL; /* owned by exts */
	if (X509_REQ_set_version(req, 0) != 1 || X509_REQ_add_extensions(req, exts) != 1 ||
	    X509_REQ_set_pubkey(req, key) != 1 || X509_REQ_sign(req, key, EVP_sha256()) <= 0)
		goto out;
	unsigned char *buf = NULL;
	int n = i2d_X509_REQ(req, &buf);
	if (n <= 0)
		goto out;
	*der = buf;
	*derlen = (size_t)n;
	rc = 0;
out:
	X509_EXTENSION_free(ext);
	sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
	sk_GENERAL_NAME_pop_free(gens, GENERAL_NAME_free);
	X509_REQ_free(req);
	return rc;
}

static int pem_of_cert(X509 *x, char **out)
{
	BIO *b = BIO_new(BIO_s_mem());
	int rc = TW_ECRYPTO;
	if (b == NULL)
		return TW_ENOMEM;
	if (PEM_write_bio_X509(b, x) == 1) {
		char *p;
		long n = BIO_get_mem_data(b, &p);
		char *s = malloc((size_t)n + 1);
		if (s == NULL) {
			rc = TW_ENOMEM;
		} else {
			memcpy(s, p, (size_t)n);
			s[n] = '\0';
			*out = s;
			rc = 0;
		}
	}
	BIO_free(b);
	return rc;
}

int tw_acme_x509_tlsalpn01(const char *name, const char *key_authz, char **cert_pem, char **key_pem)
{
	EVP_PKEY *key = NULL;
	X509 *x = X509_new();
	STACK_OF(GENERAL_NAME) *gens = NULL;
	X509_EXTENSION *san = NULL, *acme = NULL;
	ASN1_OCTET_STRING *inner = NULL, *outer = NULL;
	ASN1_OBJECT *oid = NULL;
	unsigned char *innerder = NULL;
	char *kpem = NULL;
	size_t klen;
	int rc = TW_ECRYPTO;
	if (x == NULL)
		return TW_ENOMEM;
	if ((rc = tw_jws_key_new_p256(&key)) < 0)
		goto out;
	rc = TW_ECRYPTO;
	unsigned char serial[16];
	if (RAND_bytes(serial, sizeof serial) != 1)
		goto out;
	serial[0] &= 0x7f;
	BIGNUM *bn = BN_bin2bn(serial, sizeof serial, NULL);
	if (bn == NULL || BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x)) == NULL) {
		BN_free(bn);
		goto out;
	}
	BN_free(bn);
	X509_NAME *nm = X509_get_subject_name(x);
	if (X509_set_version(x, 2) != 1 ||
	    X509_NAME_add_entry_by_txt(nm, "CN", MBSTRING_ASC,
	                               (const unsigned char *)"acme-tls-alpn", -1, -1, 0) != 1 ||
	    X509_set_issuer_name(x, nm) != 1 ||
	    X509_gmtime_adj(X509_getm_notBefore(x), -3600) == NULL ||
	    X509_gmtime_adj(X509_getm_notAfter(x), 7 * 86400) == NULL ||
	    X509_set_pubkey(x, key) != 1)
		goto out;
	if ((gens = san_of(&name, 1)) == NULL ||
	    (san = X509V3_EXT_i2d(NID_subject_alt_name, 0, gens)) == NULL ||
	    X509_add_ext(x, san, -1) != 1)
		goto out;
	/* extnValue = DER(OCTET STRING(SHA-256(key_authz))). */
	unsigned char md[SHA256_DIGEST_LENGTH];
	SHA256((const unsigned char *)key_authz, strlen(key_authz), md);
	if ((inner = ASN1_OCTET_STRING_new()) == NULL ||
	    ASN1_OCTET_STRING_set(inner, md, sizeof md) != 1)
		goto out;
	int ilen = i2d_ASN1_OCTET_STRING(inner, &innerder);
	if (ilen <= 0 || (outer = ASN1_OCTET_STRING_new()) == NULL ||
	    ASN1_OCTET_STRING_set(outer, innerder, ilen) != 1)
		goto out;
	if ((oid = OBJ_txt2obj("1.3.6.1.5.5.7.1.31", 1)) == NULL ||
	    (acme = X509_EXTENSION_create_by_OBJ(NULL, oid, 1, outer)) == NULL ||
	    X509_add_ext(x, acme, -1) != 1)
		goto out;
	if (X509_sign(x, key, EVP_sha256()) <= 0)
		goto out;
	if ((rc = tw_jws_key_to_pem(key, &kpem, &klen)) < 0)
		goto out;
	if ((rc = pem_of_cert(x, cert_pem)) < 0)
		goto out;
	*key_pem = kpem;
	kpem = NULL;
out:
	free(kpem);
	OPENSSL_free(innerder);
	ASN1_OBJECT_free(oid);
	ASN1_OCTET_STRING_free(inner);
	ASN1_OCTET_STRING_free(outer);
	X509_EXTENSION_free(san);
	X509_EXTENSION_free(acme);
	sk_GENERAL_NAME_pop_free(gens, GENERAL_NAME_free);
	EVP_PKEY_free(key);
	X509_free(x);
	return rc;
}

static X509 *first_cert(const char *pem, size_t len)
{
	if (len > INT32_MAX)
		return NULL;
	BIO *b = BIO_new_mem_buf(pem, (int)len);
	if (b == NULL)
		return NULL;
	X509 *x = PEM_read_bio_X509(b, NULL, NULL, NULL);
	BIO_free(b);
	return x;
}

static int asn1_time_to_time_t(const ASN1_TIME *t, time_t *out)
{
	struct tm tm;
	if (ASN1_TIME_to_tm(t, &tm) != 1)
		return TW_EINVAL;
	*out = timegm(&tm);
	return 0;
}

static void issuer_cn(X509 *x, char *cn, size_t cnlen)
{
	cn[0] = '\0';
	int n = X509_NAME_get_text_by_NID(X509_get_issuer_name(x), NID_commonName, cn, (int)cnlen);
	if (n < 0)
		cn[0] = '\0';
}

int tw_acme_x509_info(const char *pem, size_t len, struct tw_acme_certinfo *out)
{
	X509 *x = first_cert(pem, len);
	char *a = NULL, *s = NULL;
	unsigned char *ser = NULL;
	int rc = TW_EINVAL;
	memset(out, 0, sizeof *out);
	if (x == NULL)
		return TW_EINVAL;
	if (asn1_time_to_time_t(X509_get0_notBefore(x), &out->not_before) < 0 ||
	    asn1_time_to_time_t(X509_get0_notAfter(x), &out->not_after) < 0)
		goto out;
	issuer_cn(x, out->issuer_cn, sizeof out->issuer_cn);
	const ASN1_OCTET_STRING *aki = X509_get0_authority_key_id(x);
	if (aki != NULL) {
		/* The serial's DER content octets (without tag and length). */
		int n = i2d_ASN1_INTEGER(X509_get0_serialNumber(x), &ser);
		const unsigned char *p = ser;
		long clen;
		int tag, cls;
		if (n <= 0 || (ASN1_get_object(&p, &clen, &tag, &cls, n) & 0x80))
			goto out;
		rc = tw_jws_b64url(ASN1_STRING_get0_data(aki), (size_t)ASN1_STRING_length(aki), &a);
		if (rc == 0)
			rc = tw_jws_b64url(p, (size_t)clen, &s);
		if (rc < 0)
			goto out;
		if ((size_t)snprintf(out->ari_id, sizeof out->ari_id, "%s.%s", a, s) >=
		    sizeof out->ari_id) {
			rc = TW_ELIMIT;
			goto out;
		}
	}
	rc = 0;
out:
	OPENSSL_free(ser);
	free(a);
	free(s);
	X509_free(x);
	return rc;
}

int tw_acme_x509_top_issuer(const char *pem, size_t len, char *cn, size_t cnlen)
{
	if (len > INT32_MAX)
		return TW_EINVAL;
	BIO *b = BIO_new_mem_buf(pem, (int)len);
	X509 *x, *last = NULL;
	if (b == NULL)
		return TW_ENOMEM;
	while ((x = PEM_read_bio_X509(b, NULL, NULL, NULL)) != NULL) {
		X509_free(last);
		last = x;
	}
	ERR_clear_error();
	BIO_free(b);
	if (last == NULL)
		return TW_EINVAL;
	issuer_cn(last, cn, cnlen);
	X509_free(last);
	return 0;
}
