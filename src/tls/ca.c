/* ca.c — the local CA: root creation/reuse and short-lived leaf issuance.
 * File layout and renewal rules: see ca.h and docs/internals/tls.md. */
#include "tls/ca.h"
#include "tls/tls_int.h"
#include "core/log.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#define ROOT_DAYS 3650
#define MAX_SAN_TEXT 65536

struct tw_ca {
	char dir[PATH_MAX];       /* state_dir */
	char root_path[PATH_MAX]; /* state_dir/ca/root.crt */
	X509 *root;
	EVP_PKEY *key;
};

static int mkdir_private(const char *path, struct tw_err *err)
{
	char buf[PATH_MAX];
	size_t n = strlen(path);
	if (n == 0 || n >= sizeof buf)
		return tw_err_set(err, TW_EINVAL, "state_dir \"%s\": bad length", path);
	memcpy(buf, path, n + 1);
	for (size_t i = 1; i <= n; i++) {
		if (buf[i] != '/' && buf[i] != '\0')
			continue;
		char c = buf[i];
		buf[i] = '\0';
		if (mkdir(buf, 0700) == -1 && errno != EEXIST)
			return tw_err_set(err, TW_EIO, "cannot create %s: %s", buf, strerror(errno));
		buf[i] = c;
	}
	struct stat st;
	if (stat(path, &st) == -1 || !S_ISDIR(st.st_mode))
		return tw_err_set(err, TW_EIO, "%s is not a directory", path);
	return 0;
}

/* Directories tapwork owns inside state_dir are 0700, whatever they were. */
static int own_dir(const char *path, struct tw_err *err)
{
	int rc = mkdir_private(path, err);
	if (rc == 0 && chmod(path, 0700) == -1)
		return tw_err_set(err, TW_EIO, "cannot chmod %s: %s", path, strerror(errno));
	return rc;
}

/* Write a file atomically: PATH.tmp (mode), fsync, rename. */
static int write_file(const char *path, const void *data, size_t len, mode_t mode,
                      struct tw_err *err)
{
	char tmp[PATH_MAX + 8];
	snprintf(tmp, sizeof tmp, "%s.tmp", path);
	(void)unlink(tmp);
	int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
	if (fd == -1)
		return tw_err_set(err, TW_EIO, "cannot create %s: %s", tmp, strerror(errno));
	const char *p = data;
	size_t left = len;
	while (left > 0) {
		ssize_t w = write(fd, p, left);
		if (w == -1 && errno == EINTR)
			continue;
		if (w == -1) {
			int e = errno;
			close(fd);
			unlink(tmp);
			return tw_err_set(err, TW_EIO, "cannot write %s: %s", tmp, strerror(e));
		}
		p += w;
		left -= (size_t)w;
	}
	if (fchmod(fd, mode) == -1 || fsync(fd) == -1) {
		int e = errno;
		close(fd);
		unlink(tmp);
		return tw_err_set(err, TW_EIO, "cannot write %s: %s", tmp, strerror(e));
	}
	close(fd);
	if (rename(tmp, path) == -1) {
		int e = errno;
		unlink(tmp);
		return tw_err_set(err, TW_EIO, "cannot rename %s: %s", tmp, strerror(e));
	}
	return 0;
}

static int write_pem(const char *path, X509 *x, EVP_PKEY *k, struct tw_err *err)
{
	BIO *b = BIO_new(BIO_s_mem());
	int rc;
	if (b == NULL)
		return tw_err_set(err, TW_ENOMEM, "out of memory");
	if (x ? !PEM_write_bio_X509(b, x) : !PEM_write_bio_PrivateKey(b, k, NULL, NULL, 0, NULL, NULL)) {
		BIO_free(b);
		ERR_clear_error();
		return tw_err_set(err, TW_ECRYPTO, "cannot encode %s", path);
	}
	char *data = NULL;
	long n = BIO_get_mem_data(b, &data);
	rc = write_file(path, data, n > 0 ? (size_t)n : 0, x ? 0644 : 0600, err);
	BIO_free(b);
	return rc;
}

static int lock_dir(const char *dir, struct tw_err *err)
{
	char p[PATH_MAX + 8];
	snprintf(p, sizeof p, "%s/.lock", dir);
	int fd = open(p, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (fd == -1)
		return tw_err_set(err, TW_EIO, "cannot open %s: %s", p, strerror(errno));
	while (flock(fd, LOCK_EX) == -1) {
		if (errno != EINTR) {
			int e = errno;
			close(fd);
			return tw_err_set(err, TW_EIO, "cannot lock %s: %s", p, strerror(e));
		}
	}
	return fd;
}

static void unlock_dir(int fd)
{
	if (fd >= 0)
		close(fd); /* releases the flock */
}

static int set_serial(X509 *x)
{
	unsigned char r[16];
	if (RAND_bytes(r, sizeof r) != 1)
		return -1;
	r[0] &= 0x7f; /* positive */
	r[0] |= 0x01; /* and not zero-length */
	BIGNUM *bn = BN_bin2bn(r, sizeof r, NULL);
	int ok = bn && BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x)) != NULL;
	BN_free(bn);
	return ok ? 0 : -1;
}

static int add_ext(X509 *x, X509 *issuer, int nid, const char *value)
{
	X509V3_CTX ctx;
	X509V3_set_ctx(&ctx, issuer, x, NULL, NULL, 0);
	X509_EXTENSION *e = X509V3_EXT_conf_nid(NULL, &ctx, nid, value);
	if (e == NULL)
		return -1;
	int ok = X509_add_ext(x, e, -1);
	X509_EXTENSION_free(e);
	return ok ? 0 : -1;
}

static int create_root(struct tw_ca *ca, struct tw_err *err)
{
	char host[64] = "localhost", cn[128], eb[160];
	unsigned char r[3];
	(void)gethostname(host, sizeof host - 1);
	host[sizeof host - 1] = '\0';
	if (RAND_bytes(r, sizeof r) != 1)
		return tw_err_set(err, TW_ECRYPTO, "no randomness");
	snprintf(cn, sizeof cn, "tapwork local CA %.40s %02x%02x%02x", host, r[0], r[1], r[2]);
	EVP_PKEY *key = EVP_EC_gen("P-256");
	X509 *x = X509_new();
	X509_NAME *name = NULL;
	time_t now = time(NULL);
	int rc = TW_ECRYPTO;
	if (key == NULL || x == NULL)
		goto out;
	name = X509_NAME_new();
	if (name == NULL ||
	    !X509_NAME_add_entry_by_txt(name, "O", MBSTRING_UTF8, (const unsigned char *)"tapwork",
	                                -1, -1, 0) ||
	    !X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8, (const unsigned char *)cn, -1,
	                                -1, 0))
		goto out;
	if (!X509_set_version(x, 2) || set_serial(x) < 0 || !X509_set_subject_name(x, name) ||
	    !X509_set_issuer_name(x, name) ||
	    !ASN1_TIME_set(X509_getm_notBefore(x), now - 3600) ||
	    !ASN1_TIME_set(X509_getm_notAfter(x), now + (time_t)ROOT_DAYS * 86400) ||
	    !X509_set_pubkey(x, key))
		goto out;
	if (add_ext(x, x, NID_basic_constraints, "critical,CA:TRUE,pathlen:0") < 0 ||
	    add_ext(x, x, NID_key_usage, "critical,keyCertSign,cRLSign") < 0 ||
	    add_ext(x, x, NID_subject_key_identifier, "hash") < 0 || !X509_sign(x, key, EVP_sha256()))
		goto out;
	char kp[PATH_MAX + 16];
	snprintf(kp, sizeof kp, "%s/ca/root.key", ca->dir);
	/* Key first: a root.crt without its key is never left behind. */
	if ((rc = write_pem(kp, NULL, key, err)) < 0 || (rc = write_pem(ca->root_path, x, NULL, err)) < 0)
		goto out;
	ca->root = x;
	ca->key = key;
	x = NULL;
	key = NULL;
	rc = 0;
out:
	if (rc == TW_ECRYPTO)
		tw_err_set(err, rc, "cannot create the local CA: %s",
		           tw_tls_ossl_err(eb, sizeof eb, "OpenSSL error"));
	X509_NAME_free(name);
	X509_free(x);
	EVP_PKEY_free(key);
	ERR_clear_error();
	return rc;
}

int tw_ca_open(const char *state_dir, struct tw_ca **out, struct tw_err *err)
{
	struct tw_ca *ca = calloc(1, sizeof *ca);
	char cadir[PATH_MAX + 8], kp[PATH_MAX + 16];
	int rc, lk = -1;
	*out = NULL;
	if (ca == NULL)
		return tw_err_set(err, TW_ENOMEM, "out of memory");
	if (strlen(state_dir) >= sizeof ca->dir - 32) {
		rc = tw_err_set(err, TW_EINVAL, "state_dir is too long");
		goto out;
	}
	snprintf(ca->dir, sizeof ca->dir, "%s", state_dir);
	snprintf(ca->root_path, sizeof ca->root_path, "%s/ca/root.crt", state_dir);
	snprintf(cadir, sizeof cadir, "%s/ca", state_dir);
	snprintf(kp, sizeof kp, "%s/ca/root.key", state_dir);
	if ((rc = mkdir_private(state_dir, err)) < 0 || (lk = rc = lock_dir(state_dir, err)) < 0 ||
	    (rc = own_dir(cadir, err)) < 0)
		goto out;
	if (access(ca->root_path, F_OK) == 0 || access(kp, F_OK) == 0) {
		struct tw_tls_pair p;
		int which;
		char why[512];
		if (tw_tls_pair_load(ca->root_path, kp, &p, &which, why, sizeof why) < 0) {
			rc = tw_err_set(err, TW_ECORRUPT,
			                "local CA: %s (move %s away to create a new CA)", why, cadir);
			goto out;
		}
		if (chmod(kp, 0600) == -1) {
			tw_tls_pair_clear(&p);
			rc = tw_err_set(err, TW_EIO, "cannot chmod %s: %s", kp, strerror(errno));
			goto out;
		}
		ca->root = p.x509;
		ca->key = p.pkey;
		p.x509 = NULL;
		p.pkey = NULL;
		tw_tls_pair_clear(&p);
	} else if ((rc = create_root(ca, err)) < 0) {
		goto out;
	} else {
		tw_info("local CA created: %s", ca->root_path);
	}
	rc = 0;
out:
	unlock_dir(lk);
	if (rc < 0) {
		tw_ca_free(ca);
		return rc;
	}
	*out = ca;
	return 0;
}

void tw_ca_free(struct tw_ca *ca)
{
	if (ca == NULL)
		return;
	X509_free(ca->root);
	EVP_PKEY_free(ca->key);
	free(ca);
}

const char *tw_ca_root_path(const struct tw_ca *ca)
{
	return ca->root_path;
}

X509 *tw_ca_root(const struct tw_ca *ca)
{
	return ca->root;
}

void tw_ca_leaf_clear(struct tw_ca_leaf *l)
{
	if (l == NULL)
		return;
	X509_free(l->cert);
	EVP_PKEY_free(l->key);
	memset(l, 0, sizeof *l);
}

/* ---- names ---- */

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Canonical "a,b,1.2.3.4" of a name set: sorted, IPs in inet_ntop form. */
static char *canon_names(char **names, size_t n)
{
	size_t cap = 1;
	for (size_t i = 0; i < n; i++)
		cap += strlen(names[i]) + 48;
	char **v = calloc(n ? n : 1, sizeof *v);
	char *out = malloc(cap);
	if (v == NULL || out == NULL) {
		free(v);
		free(out);
		return NULL;
	}
	for (size_t i = 0; i < n; i++)
		v[i] = names[i];
	qsort(v, n, sizeof *v, cmp_str);
	size_t l = 0;
	out[0] = '\0';
	for (size_t i = 0; i < n; i++) {
		if (i > 0 && strcmp(v[i], v[i - 1]) == 0)
			continue;
		int k = snprintf(out + l, cap - l, "%s%s", l ? "," : "", v[i]);
		if (k > 0)
			l += (size_t)k < cap - l ? (size_t)k : cap - l - 1;
	}
	free(v);
	return out;
}

static int ip_text(const char *s, unsigned char *bin, int *fam, char *txt, size_t tl)
{
	if (inet_pton(AF_INET, s, bin) == 1)
		*fam = AF_INET;
	else if (inet_pton(AF_INET6, s, bin) == 1)
		*fam = AF_INET6;
	else
		return 0;
	inet_ntop(*fam, bin, txt, (socklen_t)tl);
	return 1;
}

/* Canonical form of the wanted names (IPs normalised). Caller frees. */
static char *canon_wanted(char *const *names, size_t n)
{
	char **v = calloc(n ? n : 1, sizeof *v);
	char *res = NULL;
	if (v == NULL)
		return NULL;
	for (size_t i = 0; i < n; i++) {
		unsigned char bin[16];
		char txt[INET6_ADDRSTRLEN];
		int fam;
		v[i] = strdup(ip_text(names[i], bin, &fam, txt, sizeof txt) ? txt : names[i]);
		if (v[i] == NULL)
			goto out;
	}
	res = canon_names(v, n);
out:
	for (size_t i = 0; i < n; i++)
		free(v[i]);
	free(v);
	return res;
}

static char *canon_cert(X509 *x)
{
	GENERAL_NAMES *gens = X509_get_ext_d2i(x, NID_subject_alt_name, NULL, NULL);
	int n = gens ? sk_GENERAL_NAME_num(gens) : 0;
	char **v = calloc(n > 0 ? (size_t)n : 1, sizeof *v);
	size_t k = 0;
	char *res = NULL;
	if (v == NULL)
		goto out;
	for (int i = 0; i < n; i++) {
		const GENERAL_NAME *g = sk_GENERAL_NAME_value(gens, i);
		char txt[INET6_ADDRSTRLEN] = "";
		if (g->type == GEN_DNS) {
			v[k] = strndup((const char *)g->d.dNSName->data,
			               (size_t)g->d.dNSName->length);
		} else if (g->type == GEN_IPADD && (g->d.iPAddress->length == 4 ||
		                                    g->d.iPAddress->length == 16)) {
			inet_ntop(g->d.iPAddress->length == 4 ? AF_INET : AF_INET6,
			          g->d.iPAddress->data, txt, sizeof txt);
			v[k] = strdup(txt);
		} else {
			continue;
		}
		if (v[k] == NULL)
			goto out;
		k++;
	}
	res = canon_names(v, k);
out:
	for (size_t i = 0; v && i < k; i++)
		free(v[i]);
	free(v);
	GENERAL_NAMES_free(gens);
	return res;
}

static void leaf_paths(const struct tw_ca *ca, const char *first, struct tw_ca_leaf *l)
{
	char base[256];
	size_t i = 0;
	for (; first[i] && i < sizeof base - 1 && i < 200; i++)
		base[i] = (first[i] == '*' || first[i] == ':' || first[i] == '/') ? '_' : first[i];
	base[i] = '\0';
	snprintf(l->cert_path, sizeof l->cert_path, "%s/certs/%s.crt", ca->dir, base);
	snprintf(l->key_path, sizeof l->key_path, "%s/certs/%s.key", ca->dir, base);
}

static time_t asn1_to_time(const ASN1_TIME *t)
{
	struct tm tm;
	if (ASN1_TIME_to_tm(t, &tm) != 1)
		return 0;
	return timegm(&tm);
}

static void leaf_times(struct tw_ca_leaf *l)
{
	l->not_before = asn1_to_time(X509_get0_notBefore(l->cert));
	l->not_after = asn1_to_time(X509_get0_notAfter(l->cert));
	l->renew_at = l->not_before + (l->not_after - l->not_before) * 2 / 3;
}

/* The cached leaf is good when it loads, is ours, has the names and is not
 * in its last third. */
static int cached_ok(struct tw_ca *ca, struct tw_ca_leaf *l, const char *want, time_t now)
{
	struct tw_tls_pair p;
	int which, ok = 0;
	char why[512];
	if (access(l->cert_path, F_OK) != 0 ||
	    tw_tls_pair_load(l->cert_path, l->key_path, &p, &which, why, sizeof why) < 0)
		return 0;
	l->cert = p.x509;
	l->key = p.pkey;
	p.x509 = NULL;
	p.pkey = NULL;
	tw_tls_pair_clear(&p);
	leaf_times(l);
	char *have = canon_cert(l->cert);
	if (X509_verify(l->cert, X509_get0_pubkey(ca->root)) == 1 && have && strcmp(have, want) == 0 &&
	    now >= l->not_before && now < l->renew_at)
		ok = 1;
	free(have);
	ERR_clear_error();
	if (!ok) {
		X509_free(l->cert);
		EVP_PKEY_free(l->key);
		l->cert = NULL;
		l->key = NULL;
	}
	return ok;
}

static int issue(struct tw_ca *ca, char *const *names, size_t n, time_t now, struct tw_ca_leaf *l,
                 struct tw_err *err)
{
	char eb[160];
	int rc = TW_ECRYPTO;
	size_t cap = 16;
	for (size_t i = 0; i < n; i++)
		cap += strlen(names[i]) + 8;
	if (cap > MAX_SAN_TEXT)
		return tw_err_set(err, TW_ELIMIT, "too many names for one certificate");
	char *san = malloc(cap);
	EVP_PKEY *key = EVP_EC_gen("P-256");
	X509 *x = X509_new();
	X509_NAME *name = X509_NAME_new();
	if (san == NULL || key == NULL || x == NULL || name == NULL)
		goto out;
	size_t sl = 0;
	const char *cn = NULL;
	for (size_t i = 0; i < n; i++) {
		unsigned char bin[16];
		char txt[INET6_ADDRSTRLEN];
		int fam, ip = ip_text(names[i], bin, &fam, txt, sizeof txt);
		int k = snprintf(san + sl, cap - sl, "%s%s:%s", sl ? "," : "", ip ? "IP" : "DNS",
		                 ip ? txt : names[i]);
		if (k > 0)
			sl += (size_t)k;
		if (cn == NULL && strlen(names[i]) <= 64)
			cn = names[i];
	}
	if (cn && !X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8, (const unsigned char *)cn,
	                                      -1, -1, 0))
		goto out;
	if (!X509_set_version(x, 2) || set_serial(x) < 0 || !X509_set_subject_name(x, name) ||
	    !X509_set_issuer_name(x, X509_get_subject_name(ca->root)) ||
	    !ASN1_TIME_set(X509_getm_notBefore(x), now - 3600) ||
	    !ASN1_TIME_set(X509_getm_notAfter(x), now + (time_t)TW_CA_LEAF_DAYS * 86400 - 3600) ||
	    !X509_set_pubkey(x, key))
		goto out;
	if (add_ext(x, ca->root, NID_basic_constraints, "critical,CA:FALSE") < 0 ||
	    add_ext(x, ca->root, NID_key_usage, "critical,digitalSignature") < 0 ||
	    add_ext(x, ca->root, NID_ext_key_usage, "serverAuth") < 0 ||
	    add_ext(x, ca->root, NID_subject_alt_name, san) < 0 ||
	    add_ext(x, ca->root, NID_subject_key_identifier, "hash") < 0 ||
	    add_ext(x, ca->root, NID_authority_key_identifier, "keyid:always") < 0 ||
	    !X509_sign(x, ca->key, EVP_sha256()))
		goto out;
	if ((rc = write_pem(l->key_path, NULL, key, err)) < 0 ||
	    (rc = write_pem(l->cert_path, x, NULL, err)) < 0)
		goto out;
	l->cert = x;
	l->key = key;
	x = NULL;
	key = NULL;
	leaf_times(l);
	l->issued = 1;
	rc = 0;
out:
	if (rc == TW_ECRYPTO)
		tw_err_set(err, rc, "cannot issue a certificate for %s: %s", n ? names[0] : "?",
		           tw_tls_ossl_err(eb, sizeof eb, "OpenSSL error"));
	free(san);
	X509_NAME_free(name);
	X509_free(x);
	EVP_PKEY_free(key);
	ERR_clear_error();
	return rc;
}

int tw_ca_leaf_get(struct tw_ca *ca, char *const *names, size_t n, time_t now,
                   struct tw_ca_leaf *out, struct tw_err *err)
{
	char certs[PATH_MAX + 8];
	int rc, lk = -1;
	memset(out, 0, sizeof *out);
	if (n == 0)
		return tw_err_set(err, TW_EINVAL, "a certificate needs at least one name");
	char *want = canon_wanted(names, n);
	if (want == NULL)
		return tw_err_set(err, TW_ENOMEM, "out of memory");
	snprintf(certs, sizeof certs, "%s/certs", ca->dir);
	if ((lk = rc = lock_dir(ca->dir, err)) < 0 || (rc = own_dir(certs, err)) < 0)
		goto out;
	leaf_paths(ca, names[0], out);
	if (cached_ok(ca, out, want, now)) {
		rc = 0;
		goto out;
	}
	rc = issue(ca, names, n, now, out, err);
	if (rc == 0) {
		struct tm tm;
		char until[32] = "?";
		if (gmtime_r(&out->not_after, &tm) != NULL)
			strftime(until, sizeof until, "%Y-%m-%dT%H:%M:%SZ", &tm);
		tw_info("local CA issued a certificate for %s (valid until %s)", want, until);
	}
out:
	unlock_dir(lk);
	free(want);
	if (rc < 0)
		tw_ca_leaf_clear(out);
	return rc;
}
