/* tls.c — config helpers of the TLS layer and certificate/key file loading
 * (used by the config loader at load time and by the store at build time). */
#include "tls/tls_int.h"

#include <arpa/inet.h>
#include <errno.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int tw_tls_site_wants_redirect(const struct tw_config *cfg, size_t site_idx)
{
	if (cfg == NULL || site_idx >= cfg->nsites || !cfg->has_https || !cfg->tls.redirect_http)
		return 0;
	return cfg->sites[site_idx].tls_effective != TW_TLS_OFF && !cfg->sites[site_idx].no_redirect;
}

const char *tw_tls_site_hsts(const struct tw_config *cfg, size_t site_idx)
{
	if (cfg == NULL || site_idx >= cfg->nsites || !cfg->sites[site_idx].hsts)
		return NULL;
	return cfg->tls.hsts_header;
}

int tw_tls_name_is_internal(const char *h)
{
	static const char *const suffixes[] = {".localhost", ".test", ".internal"};
	size_t n = strlen(h);
	unsigned char ip[16];
	if (strcmp(h, "*") == 0 || strcmp(h, "localhost") == 0)
		return 1;
	if (inet_pton(AF_INET, h, ip) == 1 || inet_pton(AF_INET6, h, ip) == 1)
		return 1;
	for (size_t i = 0; i < sizeof suffixes / sizeof suffixes[0]; i++) {
		size_t l = strlen(suffixes[i]);
		if (n > l && strcmp(h + n - l, suffixes[i]) == 0)
			return 1;
	}
	return 0;
}

const char *tw_tls_key_type_name(int key_type)
{
	switch (key_type) {
	case TW_TLS_KEY_ECDSA: return "ECDSA";
	case TW_TLS_KEY_RSA: return "RSA";
	case TW_TLS_KEY_EDDSA: return "EdDSA";
	default: return "other";
	}
}

const char *tw_tls_source_name(enum tw_tls_source src)
{
	switch (src) {
	case TW_TLS_SRC_INTERNAL: return "internal";
	case TW_TLS_SRC_FILE: return "file";
	case TW_TLS_SRC_ACME_TEMP: return "acme-temporary";
	case TW_TLS_SRC_ACME: return "acme";
	}
	return "?";
}

const char *tw_tls_ossl_err(char *buf, size_t n, const char *fallback)
{
	unsigned long e = ERR_peek_error(); /* the first: the root cause */
	if (e != 0) {
		const char *r = ERR_reason_error_string(e);
		snprintf(buf, n, "%s", r ? r : fallback);
	} else {
		snprintf(buf, n, "%s", fallback);
	}
	ERR_clear_error();
	return buf;
}

int tw_tls_pkey_type(EVP_PKEY *k, char *desc, size_t dl)
{
	int id = EVP_PKEY_get_base_id(k), t = TW_TLS_KEY_OTHER;
	char grp[64] = "";
	if (id == EVP_PKEY_EC) {
		size_t gl = 0;
		t = TW_TLS_KEY_ECDSA;
		if (!EVP_PKEY_get_utf8_string_param(k, "group", grp, sizeof grp, &gl))
			snprintf(grp, sizeof grp, "?");
		if (strcmp(grp, "prime256v1") == 0)
			snprintf(grp, sizeof grp, "P-256");
		else if (strcmp(grp, "secp384r1") == 0)
			snprintf(grp, sizeof grp, "P-384");
		else if (strcmp(grp, "secp521r1") == 0)
			snprintf(grp, sizeof grp, "P-521");
		snprintf(desc, dl, "ECDSA %s", grp);
	} else if (id == EVP_PKEY_RSA || id == EVP_PKEY_RSA_PSS) {
		t = TW_TLS_KEY_RSA;
		snprintf(desc, dl, "RSA %d", EVP_PKEY_get_bits(k));
	} else if (id == EVP_PKEY_ED25519 || id == EVP_PKEY_ED448) {
		t = TW_TLS_KEY_EDDSA;
		snprintf(desc, dl, "%s", id == EVP_PKEY_ED25519 ? "Ed25519" : "Ed448");
	} else {
		snprintf(desc, dl, "%s", OBJ_nid2sn(id));
	}
	return t;
}

void tw_tls_pair_clear(struct tw_tls_pair *p)
{
	if (p == NULL)
		return;
	X509_free(p->x509);
	sk_X509_pop_free(p->chain, X509_free);
	EVP_PKEY_free(p->pkey);
	memset(p, 0, sizeof *p);
}

#define MAX_PEM_FILE (1u << 20) /* a certificate chain or key is a few KiB */

/* The whole file in a memory BIO: regular files of at most 1 MiB only (a
 * path like /dev/zero must not hang the loader). */
static BIO *open_file(const char *path, char *why, size_t wl)
{
	struct stat st;
	BIO *b = NULL;
	char *buf = NULL;
	FILE *f = fopen(path, "rb");
	if (f == NULL) {
		snprintf(why, wl, "cannot read %s: %s", path, strerror(errno));
		return NULL;
	}
	if (fstat(fileno(f), &st) == -1 || !S_ISREG(st.st_mode)) {
		snprintf(why, wl, "%s is not a regular file", path);
		goto out;
	}
	if (st.st_size > (off_t)MAX_PEM_FILE) {
		snprintf(why, wl, "%s is larger than 1 MiB", path);
		goto out;
	}
	buf = malloc((size_t)st.st_size + 1);
	if (buf == NULL) {
		snprintf(why, wl, "%s: out of memory", path);
		goto out;
	}
	size_t n = fread(buf, 1, (size_t)st.st_size + 1, f);
	if (ferror(f) || n > (size_t)st.st_size) {
		snprintf(why, wl, "cannot read %s: %s", path,
		         ferror(f) ? strerror(errno) : "file grew while reading");
		goto out;
	}
	b = BIO_new(BIO_s_mem());
	if (b == NULL || BIO_write(b, buf, (int)n) != (int)n) {
		BIO_free(b);
		b = NULL;
		snprintf(why, wl, "%s: out of memory", path);
	}
out:
	if (buf != NULL)
		OPENSSL_cleanse(buf, (size_t)st.st_size + 1); /* may hold a private key */
	free(buf);
	fclose(f);
	return b;
}

/* Never prompt for a passphrase (OpenSSL's default reads the terminal). */
static int no_pass(char *buf, int size, int rwflag, void *u)
{
	(void)buf;
	(void)size;
	(void)rwflag;
	*(int *)u = 1;
	return -1;
}

/* The leaf and up to 16 intermediates from b into out (label for messages). */
static int read_chain(BIO *b, const char *label, struct tw_tls_pair *out, char *why, size_t wl)
{
	char eb[160];
	int dummy = 0;
	out->x509 = PEM_read_bio_X509_AUX(b, NULL, no_pass, &dummy);
	if (out->x509 == NULL) {
		snprintf(why, wl, "%s: no PEM certificate found (%s)", label,
		         tw_tls_ossl_err(eb, sizeof eb, "not PEM"));
		return TW_EINVAL;
	}
	out->chain = sk_X509_new_null();
	if (out->chain == NULL) {
		snprintf(why, wl, "%s: out of memory", label);
		return TW_ENOMEM;
	}
	for (int i = 0; i < 16; i++) { /* intermediates: a bounded number */
		X509 *x = PEM_read_bio_X509(b, NULL, no_pass, &dummy);
		if (x == NULL)
			break;
		if (!sk_X509_push(out->chain, x)) {
			X509_free(x);
			return TW_ENOMEM;
		}
	}
	ERR_clear_error(); /* end of file reads as an error */
	return 0;
}

/* The private key from b, checked against out->x509. */
static int read_key(BIO *b, const char *key, const char *cert, struct tw_tls_pair *out, char *why,
                    size_t wl)
{
	int asked = 0;
	out->pkey = PEM_read_bio_PrivateKey(b, NULL, no_pass, &asked);
	if (out->pkey == NULL) {
		ERR_clear_error();
		if (asked)
			snprintf(why, wl, "%s: the key is encrypted; tapwork needs it unencrypted "
			         "(openssl pkey -in KEY -out NEWKEY)", key);
		else
			snprintf(why, wl, "%s: no PEM private key found (expected \"-----BEGIN "
			         "PRIVATE KEY-----\" or the EC/RSA form)", key);
		return TW_EINVAL;
	}
	if (X509_check_private_key(out->x509, out->pkey) != 1) {
		ERR_clear_error();
		snprintf(why, wl, "%s does not match the certificate in %s", key, cert);
		return TW_EINVAL;
	}
	return 0;
}

int tw_tls_pair_load(const char *cert, const char *key, struct tw_tls_pair *out, int *which,
                     char *why, size_t wl)
{
	int rc = TW_EINVAL;
	BIO *b = NULL;
	memset(out, 0, sizeof *out);
	*which = 0;
	ERR_clear_error();
	if ((b = open_file(cert, why, wl)) == NULL)
		goto out;
	if ((rc = read_chain(b, cert, out, why, wl)) < 0)
		goto out;
	BIO_free(b);
	*which = 1;
	rc = TW_EINVAL;
	if ((b = open_file(key, why, wl)) == NULL)
		goto out;
	rc = read_key(b, key, cert, out, why, wl);
out:
	BIO_free(b);
	if (rc < 0)
		tw_tls_pair_clear(out);
	ERR_clear_error();
	return rc;
}

/* A read-only BIO over one PEM of a pair held in memory. */
static BIO *mem_bio(const char *pem, size_t len, const char *label, int *rc, char *why, size_t wl)
{
	if (pem == NULL || len == 0 || len > MAX_PEM_FILE) {
		*rc = TW_EINVAL;
		snprintf(why, wl, "%s: empty or larger than 1 MiB", label);
		return NULL;
	}
	BIO *b = BIO_new_mem_buf(pem, (int)len);
	if (b == NULL) {
		*rc = TW_ENOMEM;
		snprintf(why, wl, "%s: out of memory", label);
	}
	return b;
}

int tw_tls_pair_load_mem(const struct tw_conf_certpair *p, struct tw_tls_pair *out, int *which,
                         char *why, size_t wl)
{
	int rc = TW_EINVAL;
	memset(out, 0, sizeof *out);
	*which = 0;
	ERR_clear_error();
	const char *cl = p->cert ? p->cert : "certificate", *kl = p->key ? p->key : "key";
	BIO *b = mem_bio(p->cert_pem, p->cert_pem_len, cl, &rc, why, wl);
	if (b == NULL || (rc = read_chain(b, cl, out, why, wl)) < 0)
		goto out;
	BIO_free(b);
	*which = 1;
	b = mem_bio(p->key_pem, p->key_pem_len, kl, &rc, why, wl);
	if (b != NULL)
		rc = read_key(b, kl, cl, out, why, wl);
out:
	BIO_free(b);
	if (rc < 0)
		tw_tls_pair_clear(out);
	ERR_clear_error();
	return rc;
}

int tw_tls_pair_check_mem(const struct tw_conf_certpair *p, int *key_type, int *which, char *why,
                          size_t wl)
{
	struct tw_tls_pair pr;
	char desc[32];
	int rc = tw_tls_pair_load_mem(p, &pr, which, why, wl);
	if (rc < 0)
		return rc;
	*key_type = tw_tls_pkey_type(pr.pkey, desc, sizeof desc);
	tw_tls_pair_clear(&pr);
	return 0;
}

int tw_tls_pair_check(const char *cert, const char *key, int *key_type, int *which, char *why,
                      size_t wl)
{
	struct tw_tls_pair p;
	char desc[32];
	int rc = tw_tls_pair_load(cert, key, &p, which, why, wl);
	if (rc < 0)
		return rc;
	*key_type = tw_tls_pkey_type(p.pkey, desc, sizeof desc);
	tw_tls_pair_clear(&p);
	return 0;
}

static time_t asn1_time(const ASN1_TIME *t)
{
	struct tm tm;
	if (t == NULL || ASN1_TIME_to_tm(t, &tm) != 1)
		return 0;
	return timegm(&tm);
}

static void name_text(X509_NAME *n, char *buf, size_t len)
{
	buf[0] = '\0';
	BIO *b = BIO_new(BIO_s_mem());
	if (b == NULL)
		return;
	if (X509_NAME_print_ex(b, n, 0, XN_FLAG_RFC2253 & ~ASN1_STRFLGS_ESC_MSB) >= 0) {
		int k = BIO_read(b, buf, (int)len - 1);
		buf[k > 0 ? k : 0] = '\0';
	}
	BIO_free(b);
}

void tw_tls_info_fill(struct tw_tls_cert_info *info, X509 *x509, EVP_PKEY *pkey)
{
	size_t l = 0;
	info->names[0] = '\0';
	GENERAL_NAMES *gens = X509_get_ext_d2i(x509, NID_subject_alt_name, NULL, NULL);
	for (int i = 0; gens && i < sk_GENERAL_NAME_num(gens); i++) {
		const GENERAL_NAME *g = sk_GENERAL_NAME_value(gens, i);
		char one[300] = "";
		if (g->type == GEN_DNS) {
			const ASN1_IA5STRING *s = g->d.dNSName;
			snprintf(one, sizeof one, "%.*s", s->length > 255 ? 255 : s->length,
			         (const char *)s->data);
		} else if (g->type == GEN_IPADD) {
			int fam = g->d.iPAddress->length == 4 ? AF_INET : AF_INET6;
			if (g->d.iPAddress->length == 4 || g->d.iPAddress->length == 16)
				inet_ntop(fam, g->d.iPAddress->data, one, sizeof one);
		} else {
			continue;
		}
		int k = snprintf(info->names + l, sizeof info->names - l, "%s%s", l ? ", " : "", one);
		if (k < 0 || (size_t)k >= sizeof info->names - l) {
			snprintf(info->names + sizeof info->names - 4, 4, "...");
			break;
		}
		l += (size_t)k;
	}
	GENERAL_NAMES_free(gens);
	name_text(X509_get_subject_name(x509), info->subject, sizeof info->subject);
	name_text(X509_get_issuer_name(x509), info->issuer, sizeof info->issuer);
	info->not_before = asn1_time(X509_get0_notBefore(x509));
	info->not_after = asn1_time(X509_get0_notAfter(x509));
	info->key_type = tw_tls_pkey_type(pkey, info->key_desc, sizeof info->key_desc);
	ERR_clear_error();
}
