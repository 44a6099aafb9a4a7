/* store.c — one generation of TLS state: certificates per site, the name
 * tables SNI uses, and the server SSL_CTX with its callbacks.
 * See docs/internals/tls.md. */
#include "core/log.h"
#include "tls/ca.h"
#include "tls/ticket.h"
#include "tls/tls_int.h"

#include <errno.h>
#include <openssl/err.h>
#include <openssl/tls1.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <strings.h>
#include <sys/stat.h>

#define MAX_ALPN 64

#define CIPHERS_12                                                                                 \
	"ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"                               \
	"ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"                               \
	"ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305"
#define SUITES_13 "TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256"
#define GROUPS "X25519:P-256:P-384"
#define GROUPS_PQ "X25519MLKEM768:" GROUPS /* only where the linked OpenSSL knows it */

struct file_id {
	dev_t dev;
	ino_t ino;
	off_t size;
	struct timespec mtime;
	int missing;
};

struct cert {
	struct tw_tls_pair pair;
	struct tw_tls_cert_info info;
	struct file_id id[2]; /* cert, key (files only) */
	int mem;              /* loaded from memory (cert_pem): nothing to watch */
	time_t renew_at;      /* internal leaves; 0 = never */
};

struct name_ent {
	const char *name; /* owned copy; wildcards without the "*." */
	size_t site;
};

struct tw_tls_store {
	atomic_int refs;
	SSL_CTX *ctx;
	struct cert *certs;
	size_t ncerts;
	size_t *site_first, *site_n; /* [nsites] range in certs */
	size_t nsites;
	struct name_ent *exact, *wild; /* sorted; wild keys drop the "*." */
	size_t nexact, nwild;
	size_t default_site; /* SIZE_MAX when no site has TLS */
	struct tw_tickets *tickets;
	unsigned char alpn[MAX_ALPN];
	size_t alpn_len;
	tw_tls_acme_hook acme_hook;
	void *acme_arg;
	time_t next_renew_report;
	char root_path[512];
};

static int ex_store = -1, ex_site = -1;
static pthread_once_t ex_once = PTHREAD_ONCE_INIT;

static void ex_init(void)
{
	ex_store = SSL_CTX_get_ex_new_index(0, NULL, NULL, NULL, NULL);
	ex_site = SSL_get_ex_new_index(0, NULL, NULL, NULL, NULL);
}

/* ---- lookups ---- */

static int cmp_ent(const void *a, const void *b)
{
	return strcmp(((const struct name_ent *)a)->name, ((const struct name_ent *)b)->name);
}

static size_t find(const struct name_ent *v, size_t n, const char *name)
{
	size_t lo = 0, hi = n;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int d = strcmp(v[mid].name, name);
		if (d == 0)
			return v[mid].site;
		if (d < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return SIZE_MAX;
}

/* Exact name, then the one-label wildcard, then the default. */
static size_t site_for(const struct tw_tls_store *s, const char *name)
{
	size_t site = find(s->exact, s->nexact, name);
	if (site != SIZE_MAX)
		return site;
	const char *dot = strchr(name, '.');
	if (dot && dot[1] != '\0') {
		site = find(s->wild, s->nwild, dot + 1);
		if (site != SIZE_MAX)
			return site;
	}
	return s->default_site;
}

int tw_tls_sni_parse(const unsigned char *p, size_t len, char *out, size_t cap)
{
	if (len < 2)
		return -1;
	size_t list = (size_t)p[0] << 8 | p[1];
	if (list + 2 != len)
		return -1;
	p += 2;
	len -= 2;
	while (len >= 3) {
		unsigned type = p[0];
		size_t nl = (size_t)p[1] << 8 | p[2];
		if (nl + 3 > len)
			return -1;
		if (type == TLSEXT_NAMETYPE_host_name) {
			if (nl == 0 || nl >= cap)
				return -1;
			for (size_t i = 0; i < nl; i++) {
				unsigned char c = p[3 + i];
				if (c <= 0x20 || c >= 0x7f)
					return -1;
				out[i] = (char)(c >= 'A' && c <= 'Z' ? c + 32 : c);
			}
			if (out[nl - 1] == '.')
				nl--;
			out[nl] = '\0';
			return nl ? 0 : -1;
		}
		p += 3 + nl;
		len -= 3 + nl;
	}
	return -1;
}

static int offers_alpn(SSL *ssl, const char *proto)
{
	const unsigned char *p;
	size_t len, pl = strlen(proto);
	if (!SSL_client_hello_get0_ext(ssl, TLSEXT_TYPE_application_layer_protocol_negotiation, &p,
	                               &len) ||
	    len < 2)
		return 0;
	p += 2;
	len -= 2;
	while (len > 0) {
		size_t l = p[0];
		if (l + 1 > len)
			return 0;
		if (l == pl && memcmp(p + 1, proto, pl) == 0)
			return 1;
		p += 1 + l;
		len -= 1 + l;
	}
	return 0;
}

static int install_site(SSL *ssl, const struct tw_tls_store *s, size_t site)
{
	SSL_certs_clear(ssl);
	for (size_t i = 0; i < s->site_n[site]; i++) {
		struct cert *c = &s->certs[s->site_first[site] + i];
		if (SSL_use_cert_and_key(ssl, c->pair.x509, c->pair.pkey, c->pair.chain, 1) != 1)
			return -1;
	}
	return 0;
}

static int on_client_hello(SSL *ssl, int *al, void *arg)
{
	struct tw_tls_store *s = arg;
	const unsigned char *ext;
	size_t extlen;
	char name[256] = "";
	size_t site = s->default_site;
	if (SSL_client_hello_get0_ext(ssl, TLSEXT_TYPE_server_name, &ext, &extlen) &&
	    tw_tls_sni_parse(ext, extlen, name, sizeof name) == 0)
		site = site_for(s, name);
	if (s->acme_hook && offers_alpn(ssl, "acme-tls/1")) {
		if (s->acme_hook(ssl, name, s->acme_arg) < 0) {
			*al = SSL_AD_INTERNAL_ERROR;
			return SSL_CLIENT_HELLO_ERROR;
		}
		SSL_set_ex_data(ssl, ex_site, (void *)(uintptr_t)SIZE_MAX); /* marks acme */
		return SSL_CLIENT_HELLO_SUCCESS;
	}
	/* The default site's certificates came with the SSL_CTX (SSL_new copied
	 * them): installing them again would only redo the key checks. */
	if (site == SIZE_MAX || (site != s->default_site && install_site(ssl, s, site) < 0)) {
		*al = SSL_AD_INTERNAL_ERROR;
		return SSL_CLIENT_HELLO_ERROR;
	}
	SSL_set_ex_data(ssl, ex_site, (void *)(uintptr_t)(site + 1));
	return SSL_CLIENT_HELLO_SUCCESS;
}

static int on_alpn(SSL *ssl, const unsigned char **out, unsigned char *outlen,
                   const unsigned char *in, unsigned int inlen, void *arg)
{
	struct tw_tls_store *s = arg;
	static const unsigned char acme[] = "\x0a"
	                                    "acme-tls/1";
	const unsigned char *srv = s->alpn;
	unsigned srvlen = (unsigned)s->alpn_len;
	if ((uintptr_t)SSL_get_ex_data(ssl, ex_site) == (uintptr_t)SIZE_MAX) {
		srv = acme;
		srvlen = sizeof acme - 1;
	}
	if (SSL_select_next_proto((unsigned char **)out, outlen, srv, srvlen, in, inlen) ==
	    OPENSSL_NPN_NEGOTIATED)
		return SSL_TLSEXT_ERR_OK;
	return SSL_TLSEXT_ERR_NOACK; /* no common protocol: go on without ALPN */
}

static int on_ticket(SSL *ssl, unsigned char name[16], unsigned char *iv, EVP_CIPHER_CTX *cctx,
                     EVP_MAC_CTX *hctx, int enc)
{
	struct tw_tls_store *s = SSL_CTX_get_ex_data(SSL_get_SSL_CTX(ssl), ex_store);
	if (s == NULL)
		return enc ? -1 : 0;
	int rc = tw_tickets_crypt(s->tickets, name, iv, cctx, hctx, enc);
	/* TLS 1.3: a resumption gets a fresh ticket (tickets are meant for one
	 * use, RFC 8446 C.4). Without "renew" (2) OpenSSL sends none after a
	 * resumed handshake, so a client that resumed has nothing to offer next
	 * time and every second connection became a full handshake (signature
	 * and certificate included). */
	if (!enc && rc == 1 && SSL_version(ssl) == TLS1_3_VERSION)
		rc = 2;
	return rc;
}

/* ---- building ---- */

static void file_id_of(const char *path, struct file_id *id)
{
	struct stat st;
	memset(id, 0, sizeof *id);
	if (stat(path, &st) == -1) {
		id->missing = 1;
		return;
	}
	id->dev = st.st_dev;
	id->ino = st.st_ino;
	id->size = st.st_size;
	id->mtime = st.st_mtim;
}

static int same_id(const struct file_id *a, const struct file_id *b)
{
	return a->missing == b->missing && a->dev == b->dev && a->ino == b->ino &&
	       a->size == b->size && a->mtime.tv_sec == b->mtime.tv_sec &&
	       a->mtime.tv_nsec == b->mtime.tv_nsec;
}

/* The names of a local-CA leaf for a site: its hosts; "*" stands for
 * localhost, 127.0.0.1 and ::1. */
static int leaf_names(const struct tw_conf_site *site, char ***out, size_t *n)
{
	char **v = calloc(site->nhosts + 3, sizeof *v);
	size_t k = 0;
	int star = 0;
	if (v == NULL)
		return TW_ENOMEM;
	for (size_t i = 0; i < site->nhosts; i++) {
		if (strcmp(site->hosts[i], "*") == 0)
			star = 1;
		else
			v[k++] = site->hosts[i];
	}
	if (star) {
		static const char *const local[] = {"localhost", "127.0.0.1", "::1"};
		for (size_t j = 0; j < 3; j++) {
			int have = 0;
			for (size_t i = 0; i < k; i++)
				have |= strcmp(v[i], local[j]) == 0;
			if (!have)
				v[k++] = (char *)local[j];
		}
	}
	*out = v;
	*n = k;
	return 0;
}

static const char *site_label(const struct tw_conf_site *site)
{
	return site->nhosts ? site->hosts[0] : "?";
}

static int add_internal(struct tw_tls_store *s, struct tw_ca *ca, const struct tw_conf_site *site,
                        size_t idx, enum tw_tls_source src, struct tw_err *err)
{
	char **names = NULL;
	size_t n = 0;
	struct tw_ca_leaf leaf;
	int rc = leaf_names(site, &names, &n);
	if (rc < 0)
		return tw_err_set(err, rc, "out of memory");
	rc = tw_ca_leaf_get(ca, names, n, time(NULL), &leaf, err);
	free(names);
	if (rc < 0)
		return tw_err_wrap(err, "sites[%zu] (%s)", idx, site_label(site));
	struct cert *c = &s->certs[s->ncerts];
	memset(c, 0, sizeof *c);
	c->pair.x509 = leaf.cert;
	c->pair.pkey = leaf.key;
	c->pair.chain = sk_X509_new_null();
	leaf.cert = NULL;
	leaf.key = NULL;
	if (c->pair.chain == NULL) {
		tw_tls_pair_clear(&c->pair);
		return tw_err_set(err, TW_ENOMEM, "out of memory");
	}
	c->renew_at = leaf.renew_at;
	tw_tls_info_fill(&c->info, c->pair.x509, c->pair.pkey);
	c->info.site = idx;
	c->info.source = src;
	snprintf(c->info.cert_path, sizeof c->info.cert_path, "%s", leaf.cert_path);
	snprintf(c->info.key_path, sizeof c->info.key_path, "%s", leaf.key_path);
	s->ncerts++;
	return 0;
}

static int add_file(struct tw_tls_store *s, const struct tw_conf_site *site, size_t idx,
                    const struct tw_conf_certpair *p, struct tw_err *err)
{
	struct cert *c = &s->certs[s->ncerts];
	char why[512];
	int which;
	int rc;
	memset(c, 0, sizeof *c);
	if (p->cert_pem != NULL) {
		c->mem = 1;
		rc = tw_tls_pair_load_mem(p, &c->pair, &which, why, sizeof why);
	} else {
		/* Identity first: a change racing the read shows up at the next check. */
		file_id_of(p->cert, &c->id[0]);
		file_id_of(p->key, &c->id[1]);
		rc = tw_tls_pair_load(p->cert, p->key, &c->pair, &which, why, sizeof why);
	}
	if (rc < 0)
		return tw_err_set(err, rc, "sites[%zu] (%s): %s", idx, site_label(site), why);
	tw_tls_info_fill(&c->info, c->pair.x509, c->pair.pkey);
	c->info.site = idx;
	c->info.source = TW_TLS_SRC_FILE;
	snprintf(c->info.cert_path, sizeof c->info.cert_path, "%s", p->cert);
	snprintf(c->info.key_path, sizeof c->info.key_path, "%s", p->key);
	if (c->info.not_after != 0 && c->info.not_after < time(NULL))
		tw_warn("tls: certificate %s for %s has expired", p->cert, site_label(site));
	s->ncerts++;
	return 0;
}

/* The ACME client keeps each certificate in STATE_DIR/acme/certs/NAME/
 * (NAME = the site's first host, '*' written '_'). When both files are
 * there and load, the site is served with them (and the watcher notices
 * when the client replaces them); otherwise the caller issues a temporary
 * local-CA certificate. 0 when installed. */
static int add_acme(struct tw_tls_store *s, const struct tw_config *cfg, const struct tw_conf_site *site,
                    size_t idx)
{
	if (site->nhosts == 0 || cfg->state_dir == NULL)
		return TW_ENOENT;
	char sname[256];
	snprintf(sname, sizeof sname, "%s", site->hosts[0]);
	for (char *p = sname; *p; p++)
		if (*p == '*')
			*p = '_';
	char cert[1024], key[1024];
	snprintf(cert, sizeof cert, "%s/acme/certs/%s/chain.pem", cfg->state_dir, sname);
	snprintf(key, sizeof key, "%s/acme/certs/%s/key.pem", cfg->state_dir, sname);
	if (access(cert, R_OK) != 0 || access(key, R_OK) != 0)
		return TW_ENOENT;
	struct tw_conf_certpair p = {.cert = cert, .key = key};
	struct tw_err e = {0};
	if (add_file(s, site, idx, &p, &e) < 0) {
		tw_warn("tls: site %s: stored ACME certificate unusable (%s): serving a temporary one",
		        site_label(site), e.msg);
		return TW_EINVAL;
	}
	s->certs[s->ncerts - 1].info.source = TW_TLS_SRC_ACME;
	return 0;
}

static int make_ctx(struct tw_tls_store *s, const struct tw_config *cfg, struct tw_err *err)
{
	char eb[160];
	SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
	if (ctx == NULL)
		goto fail;
	s->ctx = ctx;
	int min = cfg->tls.profile == TW_TLS_PROFILE_MODERN ? TLS1_3_VERSION : TLS1_2_VERSION;
	if (!SSL_CTX_set_min_proto_version(ctx, min) ||
	    !SSL_CTX_set_max_proto_version(ctx, TLS1_3_VERSION) ||
	    !SSL_CTX_set_cipher_list(ctx, CIPHERS_12) || !SSL_CTX_set_ciphersuites(ctx, SUITES_13))
		goto fail;
	if (!SSL_CTX_set1_groups_list(ctx, GROUPS_PQ)) {
		ERR_clear_error();
		if (!SSL_CTX_set1_groups_list(ctx, GROUPS))
			goto fail;
	}
	SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION |
	                             SSL_OP_NO_SSLv3 | SSL_OP_NO_TLSv1 | SSL_OP_NO_TLSv1_1);
	SSL_CTX_clear_options(ctx, SSL_OP_CIPHER_SERVER_PREFERENCE | SSL_OP_NO_TICKET);
	SSL_CTX_set_mode(ctx, SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER | SSL_MODE_RELEASE_BUFFERS);
	SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF); /* tickets only */
	if (!SSL_CTX_set_session_id_context(ctx, (const unsigned char *)"tapwork", 7) ||
	    !SSL_CTX_set_num_tickets(ctx, 1) || !SSL_CTX_set_ex_data(ctx, ex_store, s) ||
	    !SSL_CTX_set_tlsext_ticket_key_evp_cb(ctx, on_ticket))
		goto fail;
	SSL_CTX_set_client_hello_cb(ctx, on_client_hello, s);
	SSL_CTX_set_alpn_select_cb(ctx, on_alpn, s);
	/* The default site's certificates on the context too, so an SSL made
	 * from it is complete even before the ClientHello callback. */
	if (s->default_site != SIZE_MAX)
		for (size_t i = 0; i < s->site_n[s->default_site]; i++) {
			struct cert *c = &s->certs[s->site_first[s->default_site] + i];
			if (SSL_CTX_use_cert_and_key(ctx, c->pair.x509, c->pair.pkey, c->pair.chain,
			                             1) != 1)
				goto fail;
		}
	ERR_clear_error();
	return 0;
fail:
	return tw_err_set(err, TW_ECRYPTO, "cannot set up the TLS context: %s",
	                  tw_tls_ossl_err(eb, sizeof eb, "OpenSSL error"));
}

static int build_names(struct tw_tls_store *s, const struct tw_config *cfg, struct tw_err *err)
{
	size_t n = 0;
	for (size_t i = 0; i < cfg->nsites; i++)
		if (s->site_n[i])
			n += cfg->sites[i].nhosts;
	s->exact = calloc(n ? n : 1, sizeof *s->exact);
	s->wild = calloc(n ? n : 1, sizeof *s->wild);
	if (s->exact == NULL || s->wild == NULL)
		return tw_err_set(err, TW_ENOMEM, "out of memory");
	for (size_t i = 0; i < cfg->nsites; i++) {
		if (s->site_n[i] == 0)
			continue;
		for (size_t j = 0; j < cfg->sites[i].nhosts; j++) {
			const char *h = cfg->sites[i].hosts[j];
			if (strcmp(h, "*") == 0)
				continue;
			int wild = h[0] == '*' && h[1] == '.';
			struct name_ent e = {strdup(wild ? h + 2 : h), i};
			if (e.name == NULL)
				return tw_err_set(err, TW_ENOMEM, "out of memory");
			if (wild)
				s->wild[s->nwild++] = e;
			else
				s->exact[s->nexact++] = e;
		}
	}
	qsort(s->exact, s->nexact, sizeof *s->exact, cmp_ent);
	qsort(s->wild, s->nwild, sizeof *s->wild, cmp_ent);
	/* Default: tls.default_host's site, else the "*" site, else the first. */
	s->default_site = SIZE_MAX;
	if (cfg->tls.default_host) {
		for (size_t i = 0; i < cfg->nsites && s->default_site == SIZE_MAX; i++)
			for (size_t j = 0; j < cfg->sites[i].nhosts; j++)
				if (s->site_n[i] &&
				    strcmp(cfg->sites[i].hosts[j], cfg->tls.default_host) == 0)
					s->default_site = i;
	}
	if (s->default_site == SIZE_MAX && cfg->default_site < cfg->nsites &&
	    s->site_n[cfg->default_site])
		s->default_site = cfg->default_site;
	for (size_t i = 0; i < cfg->nsites && s->default_site == SIZE_MAX; i++)
		if (s->site_n[i])
			s->default_site = i;
	return 0;
}

static void store_destroy(struct tw_tls_store *s)
{
	SSL_CTX_free(s->ctx);
	for (size_t i = 0; i < s->ncerts; i++)
		tw_tls_pair_clear(&s->certs[i].pair);
	free(s->certs);
	free(s->site_first);
	free(s->site_n);
	for (size_t i = 0; s->exact && i < s->nexact; i++)
		free((char *)s->exact[i].name);
	for (size_t i = 0; s->wild && i < s->nwild; i++)
		free((char *)s->wild[i].name);
	free(s->exact);
	free(s->wild);
	tw_tickets_release(s->tickets);
	free(s);
}

int tw_tls_store_build(const struct tw_config *cfg, const struct tw_tls_store *prev,
                       struct tw_tls_store **out, struct tw_err *err)
{
	struct tw_tls_store *s = calloc(1, sizeof *s);
	struct tw_ca *ca = NULL;
	int rc = 0;
	*out = NULL;
	pthread_once(&ex_once, ex_init);
	if (s == NULL || ex_store < 0 || ex_site < 0) {
		free(s);
		return tw_err_set(err, TW_ENOMEM, "out of memory");
	}
	atomic_store(&s->refs, 1);
	s->nsites = cfg->nsites;
	s->default_site = SIZE_MAX;
	size_t maxc = 0;
	for (size_t i = 0; i < cfg->nsites; i++)
		maxc += cfg->sites[i].ncerts ? cfg->sites[i].ncerts : 1;
	s->certs = calloc(maxc ? maxc : 1, sizeof *s->certs);
	s->site_first = calloc(cfg->nsites ? cfg->nsites : 1, sizeof *s->site_first);
	s->site_n = calloc(cfg->nsites ? cfg->nsites : 1, sizeof *s->site_n);
	if (s->certs == NULL || s->site_first == NULL || s->site_n == NULL) {
		rc = tw_err_set(err, TW_ENOMEM, "out of memory");
		goto out;
	}
	if (prev && prev->tickets) {
		s->tickets = tw_tickets_acquire(prev->tickets);
		tw_tickets_set_rotation(s->tickets, cfg->tls.ticket_key_rotation_ms);
	} else if ((rc = tw_tickets_new(cfg->tls.ticket_key_rotation_ms, &s->tickets)) < 0) {
		rc = tw_err_set(err, rc, "cannot create session ticket keys");
		goto out;
	}
	memcpy(s->alpn, "\x08http/1.1", 9);
	s->alpn_len = 9;
	for (size_t i = 0; i < cfg->nsites; i++) {
		const struct tw_conf_site *site = &cfg->sites[i];
		s->site_first[i] = s->ncerts;
		if (site->tls_effective == TW_TLS_OFF)
			continue;
		if (site->tls_effective == TW_TLS_FILES) {
			for (size_t j = 0; j < site->ncerts; j++)
				if ((rc = add_file(s, site, i, &site->certs[j], err)) < 0)
					goto out;
		} else {
			if (ca == NULL && (rc = tw_ca_open(cfg->state_dir, &ca, err)) < 0)
				goto out;
			enum tw_tls_source src = site->tls_effective == TW_TLS_ACME
			                             ? TW_TLS_SRC_ACME_TEMP
			                             : TW_TLS_SRC_INTERNAL;
			if (src == TW_TLS_SRC_ACME_TEMP && add_acme(s, cfg, site, i) == 0) {
				s->site_n[i] = s->ncerts - s->site_first[i];
				continue;
			}
			if (src == TW_TLS_SRC_ACME_TEMP)
				tw_info("tls: site %s: no ACME certificate yet, serving a temporary "
				        "local-CA certificate until it arrives",
				        site_label(site));
			if ((rc = add_internal(s, ca, site, i, src, err)) < 0)
				goto out;
		}
		s->site_n[i] = s->ncerts - s->site_first[i];
	}
	if (ca)
		snprintf(s->root_path, sizeof s->root_path, "%s", tw_ca_root_path(ca));
	if ((rc = build_names(s, cfg, err)) < 0)
		goto out;
	if (s->ncerts > 0 && (rc = make_ctx(s, cfg, err)) < 0)
		goto out;
	rc = 0;
out:
	tw_ca_free(ca);
	ERR_clear_error();
	if (rc < 0) {
		store_destroy(s);
		return rc;
	}
	*out = s;
	return 0;
}

struct tw_tls_store *tw_tls_store_acquire(struct tw_tls_store *s)
{
	atomic_fetch_add(&s->refs, 1);
	return s;
}

void tw_tls_store_release(struct tw_tls_store *s)
{
	if (s != NULL && atomic_fetch_sub(&s->refs, 1) == 1)
		store_destroy(s);
}

void tw_tls_store_free(struct tw_tls_store *s)
{
	tw_tls_store_release(s);
}

SSL_CTX *tw_tls_store_ctx(const struct tw_tls_store *s)
{
	return s->ctx;
}

int tw_tls_store_set_alpn(struct tw_tls_store *s, const char *list)
{
	unsigned char buf[MAX_ALPN];
	size_t l = 0;
	const char *p = list;
	while (*p) {
		const char *e = strchr(p, ',');
		size_t n = e ? (size_t)(e - p) : strlen(p);
		if (n == 0 || n > 255 || l + 1 + n > sizeof buf)
			return TW_EINVAL;
		buf[l++] = (unsigned char)n;
		memcpy(buf + l, p, n);
		l += n;
		p += n + (e ? 1 : 0);
	}
	if (l == 0)
		return TW_EINVAL;
	memcpy(s->alpn, buf, l);
	s->alpn_len = l;
	return 0;
}

void tw_tls_store_set_acme_hook(struct tw_tls_store *s, tw_tls_acme_hook fn, void *arg)
{
	s->acme_hook = fn;
	s->acme_arg = arg;
}

int tw_tls_store_stale(struct tw_tls_store *s)
{
	int stale = 0;
	time_t now = time(NULL);
	for (size_t i = 0; i < s->ncerts; i++) {
		struct cert *c = &s->certs[i];
		if (c->info.source == TW_TLS_SRC_FILE && !c->mem) {
			for (int k = 0; k < 2; k++) {
				struct file_id id;
				file_id_of(k ? c->info.key_path : c->info.cert_path, &id);
				if (!same_id(&id, &c->id[k])) {
					c->id[k] = id; /* report each change once */
					stale = 1;
				}
			}
		} else if (c->renew_at && now >= c->renew_at && now >= s->next_renew_report) {
			s->next_renew_report = now + 60;
			stale = 1;
		}
	}
	return stale;
}

void tw_tls_store_rotate_tickets(struct tw_tls_store *s)
{
	tw_tickets_rotate(s->tickets);
}

size_t tw_tls_ssl_site(const SSL *ssl)
{
	if (ex_site < 0)
		return SIZE_MAX;
	uintptr_t v = (uintptr_t)SSL_get_ex_data(ssl, ex_site);
	return v == 0 || v == (uintptr_t)SIZE_MAX ? SIZE_MAX : (size_t)(v - 1);
}

size_t tw_tls_store_ncerts(const struct tw_tls_store *s)
{
	return s->ncerts;
}

const struct tw_tls_cert_info *tw_tls_store_cert(const struct tw_tls_store *s, size_t i)
{
	return i < s->ncerts ? &s->certs[i].info : NULL;
}

const char *tw_tls_store_root_path(const struct tw_tls_store *s)
{
	return s->root_path;
}
