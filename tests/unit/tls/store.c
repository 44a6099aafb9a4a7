/* Unit tests for the TLS store (src/tls/store.c) with real in-memory
 * handshakes over BIO pairs: SNI selection, ECDSA/RSA choice, protocol
 * versions and profiles, ALPN, ticket resumption and rotation, file swaps
 * and broken files. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <sys/stat.h>

#include "core/log.h"
#include "tls/tls.h"
#include "tls_test.h"

static char dir[64];
static char ec_crt[128], ec_key[128], rsa_crt[128], rsa_key[128];

static int setup(void **state)
{
	mk_tmpdir(dir, sizeof dir);
	snprintf(ec_crt, sizeof ec_crt, "%s/ec.crt", dir);
	snprintf(ec_key, sizeof ec_key, "%s/ec.key", dir);
	snprintf(rsa_crt, sizeof rsa_crt, "%s/rsa.crt", dir);
	snprintf(rsa_key, sizeof rsa_key, "%s/rsa.key", dir);
	if (write_selfsigned(ec_crt, ec_key, 0, "secure.example.com",
	                     "DNS:secure.example.com", 1) < 0 ||
	    write_selfsigned(rsa_crt, rsa_key, 1, "secure.example.com",
	                     "DNS:secure.example.com", 2) < 0)
		return -1;
	return 0;
}

static int teardown(void **state)
{
	rm_rf(dir);
	return 0;
}

/* Two internal sites, one file site (ECDSA + RSA), one public name, and a
 * default site. */
static struct tw_config *std_cfg(const char *extra)
{
	return cfg_fmt("listen: {http: 127.0.0.1:1, https: 127.0.0.1:2}\n"
	               "state_dir: %s/state\n"
	               "%s"
	               "sites:\n"
	               "  - hosts: [app.test, \"*.app.test\"]\n"
	               "    routes: [{path: /, handler: welcome}]\n"
	               "  - hosts: [api.test]\n"
	               "    routes: [{path: /, handler: welcome}]\n"
	               "  - hosts: [secure.example.com]\n"
	               "    tls: [{cert: %s, key: %s}, {cert: %s, key: %s}]\n"
	               "    routes: [{path: /, handler: welcome}]\n"
	               "  - hosts: [\"*\"]\n"
	               "    routes: [{path: /, handler: welcome}]\n",
	               dir, extra ? extra : "", ec_crt, ec_key, rsa_crt, rsa_key);
}

static struct tw_tls_store *build(const struct tw_config *cfg, const struct tw_tls_store *prev)
{
	struct tw_tls_store *s = NULL;
	struct tw_err e = {0};
	if (tw_tls_store_build(cfg, prev, &s, &e) != 0)
		fail_msg("build: %s", e.msg);
	assert_non_null(tw_tls_store_ctx(s));
	return s;
}

/* Handshake with sni; returns the client end (server freed), or NULL. */
static SSL *hs(SSL_CTX *cctx, struct tw_tls_store *s, const char *sni, SSL_SESSION *sess,
               size_t *site)
{
	SSL *c, *sv;
	int rc = connect_pair(cctx, tw_tls_store_ctx(s), sni, sess, &c, &sv);
	if (site)
		*site = tw_tls_ssl_site(sv);
	SSL_free(sv);
	if (rc != 0) {
		SSL_free(c);
		ERR_clear_error();
		return NULL;
	}
	return c;
}

static void sni_selection(void **state)
{
	struct tw_config *cfg = std_cfg(NULL);
	assert_non_null(cfg);
	struct tw_tls_store *s = build(cfg, NULL);
	SSL_CTX *cc = client_ctx(0, 0, NULL);
	size_t site;
	SSL *c;

	c = hs(cc, s, "app.test", NULL, &site);
	assert_non_null(c);
	assert_true(peer_has_name(c, "app.test"));
	assert_int_equal(site, 0);
	SSL_free(c);

	c = hs(cc, s, "API.Test.", NULL, &site); /* case and trailing dot */
	assert_non_null(c);
	assert_true(peer_has_name(c, "api.test"));
	assert_false(peer_has_name(c, "app.test"));
	assert_int_equal(site, 1);
	SSL_free(c);

	c = hs(cc, s, "x.app.test", NULL, &site); /* one-label wildcard */
	assert_non_null(c);
	assert_int_equal(site, 0);
	SSL_free(c);

	c = hs(cc, s, "a.b.app.test", NULL, &site); /* two labels: default */
	assert_non_null(c);
	assert_int_equal(site, 3);
	assert_true(peer_has_name(c, "localhost"));
	SSL_free(c);

	c = hs(cc, s, "unknown.example", NULL, &site);
	assert_non_null(c);
	assert_int_equal(site, 3);
	assert_true(peer_has_name(c, "localhost"));
	SSL_free(c);

	c = hs(cc, s, NULL, NULL, &site); /* no SNI */
	assert_non_null(c);
	assert_int_equal(site, 3);
	assert_true(peer_has_name(c, "localhost"));
	SSL_free(c);

	/* The local CA's leaves verify against its root. */
	SSL_CTX *vc = client_ctx(0, 0, NULL);
	assert_int_equal(SSL_CTX_load_verify_locations(vc, tw_tls_store_root_path(s), NULL), 1);
	SSL_CTX_set_verify(vc, SSL_VERIFY_PEER, NULL);
	c = hs(vc, s, "app.test", NULL, NULL);
	assert_non_null(c);
	assert_int_equal(SSL_get_verify_result(c), X509_V_OK);
	SSL_free(c);
	SSL_CTX_free(vc);

	SSL_CTX_free(cc);
	tw_tls_store_release(s);
	tw_config_free(cfg);

	/* tls.default_host overrides the default. */
	cfg = std_cfg("tls: {default_host: api.test}\n");
	assert_non_null(cfg);
	s = build(cfg, NULL);
	cc = client_ctx(0, 0, NULL);
	c = hs(cc, s, NULL, NULL, &site);
	assert_non_null(c);
	assert_int_equal(site, 1);
	assert_true(peer_has_name(c, "api.test"));
	SSL_free(c);
	SSL_CTX_free(cc);
	tw_tls_store_release(s);
	tw_config_free(cfg);
}

static void ecdsa_or_rsa(void **state)
{
	struct tw_config *cfg = std_cfg(NULL);
	struct tw_tls_store *s = build(cfg, NULL);
	SSL_CTX *ec = client_ctx(0, TLS1_2_VERSION, "ECDHE-ECDSA-AES128-GCM-SHA256");
	SSL_CTX *rsa = client_ctx(0, TLS1_2_VERSION, "ECDHE-RSA-AES128-GCM-SHA256");
	SSL *c = hs(ec, s, "secure.example.com", NULL, NULL);
	assert_non_null(c);
	assert_int_equal(peer_key_id(c), EVP_PKEY_EC);
	SSL_free(c);
	c = hs(rsa, s, "secure.example.com", NULL, NULL);
	assert_non_null(c);
	assert_int_equal(peer_key_id(c), EVP_PKEY_RSA);
	SSL_free(c);
	/* TLS 1.3 clients offering only RSA signatures get the RSA one. */
	SSL_CTX *rsa13 = client_ctx(TLS1_3_VERSION, 0, NULL);
	assert_int_equal(SSL_CTX_set1_sigalgs_list(rsa13, "rsa_pss_rsae_sha256"), 1);
	c = hs(rsa13, s, "secure.example.com", NULL, NULL);
	assert_non_null(c);
	assert_int_equal(peer_key_id(c), EVP_PKEY_RSA);
	SSL_free(c);
	/* An internal (ECDSA-only) site cannot serve an RSA-only client. */
	c = hs(rsa, s, "app.test", NULL, NULL);
	assert_null(c);
	/* The certificate list for the file site: both pairs, with their paths. */
	int seen_ec = 0, seen_rsa = 0;
	for (size_t i = 0; i < tw_tls_store_ncerts(s); i++) {
		const struct tw_tls_cert_info *ci = tw_tls_store_cert(s, i);
		if (ci->source != TW_TLS_SRC_FILE)
			continue;
		assert_int_equal(ci->site, 2);
		assert_string_equal(ci->names, "secure.example.com");
		if (ci->key_type == TW_TLS_KEY_ECDSA) {
			seen_ec++;
			assert_string_equal(ci->cert_path, ec_crt);
			assert_string_equal(ci->key_desc, "ECDSA P-256");
		} else if (ci->key_type == TW_TLS_KEY_RSA) {
			seen_rsa++;
			assert_string_equal(ci->key_desc, "RSA 2048");
		}
	}
	assert_int_equal(seen_ec, 1);
	assert_int_equal(seen_rsa, 1);
	SSL_CTX_free(ec);
	SSL_CTX_free(rsa);
	SSL_CTX_free(rsa13);
	tw_tls_store_release(s);
	tw_config_free(cfg);
}

static void versions_and_profiles(void **state)
{
	struct tw_config *cfg = std_cfg(NULL);
	struct tw_tls_store *s = build(cfg, NULL);
	/* A client that really offers TLS 1.0/1.1 (security level 0 allows it). */
	SSL_CTX *old = client_ctx(TLS1_VERSION, TLS1_1_VERSION, "DEFAULT:@SECLEVEL=0");
	SSL *c, *sv;
	/* -2: the server failed the handshake (the client did send its hello) */
	assert_int_equal(connect_pair(old, tw_tls_store_ctx(s), "app.test", NULL, &c, &sv), -2);
	assert_int_equal(ERR_GET_REASON(ERR_peek_last_error()), SSL_R_UNSUPPORTED_PROTOCOL);
	ERR_clear_error();
	SSL_free(c);
	SSL_free(sv);
	SSL_CTX *t12 = client_ctx(TLS1_2_VERSION, TLS1_2_VERSION, NULL);
	c = hs(t12, s, "app.test", NULL, NULL);
	assert_non_null(c);
	assert_int_equal(SSL_version(c), TLS1_2_VERSION);
	/* Only AEAD + ECDHE for 1.2 */
	const char *cipher = SSL_get_cipher_name(c);
	assert_true(strstr(cipher, "ECDHE-") == cipher);
	assert_true(strstr(cipher, "GCM") || strstr(cipher, "CHACHA20"));
	SSL_free(c);
	SSL_CTX *cbc = client_ctx(TLS1_2_VERSION, TLS1_2_VERSION, "ECDHE-ECDSA-AES128-SHA:AES128-GCM-SHA256");
	assert_null(hs(cbc, s, "app.test", NULL, NULL)); /* no CBC, no static RSA */
	SSL_CTX_free(cbc);
	SSL_CTX *any = client_ctx(0, 0, NULL);
	c = hs(any, s, "app.test", NULL, NULL);
	assert_non_null(c);
	assert_int_equal(SSL_version(c), TLS1_3_VERSION);
	assert_int_equal(SSL_get_current_compression(c) == NULL, 1);
	SSL_free(c);
	tw_tls_store_release(s);
	tw_config_free(cfg);

	cfg = std_cfg("tls: {profile: modern}\n");
	s = build(cfg, NULL);
	assert_int_equal(connect_pair(t12, tw_tls_store_ctx(s), "app.test", NULL, &c, &sv), -2);
	assert_int_equal(ERR_GET_REASON(ERR_peek_last_error()), SSL_R_UNSUPPORTED_PROTOCOL);
	ERR_clear_error();
	SSL_free(c);
	SSL_free(sv); /* modern refuses 1.2 */
	c = hs(any, s, "app.test", NULL, NULL);
	assert_non_null(c);
	assert_int_equal(SSL_version(c), TLS1_3_VERSION);
	SSL_free(c);
	SSL_CTX_free(old);
	SSL_CTX_free(t12);
	SSL_CTX_free(any);
	tw_tls_store_release(s);
	tw_config_free(cfg);
}

static void alpn(void **state)
{
	struct tw_config *cfg = std_cfg(NULL);
	struct tw_tls_store *s = build(cfg, NULL);
	SSL_CTX *cc = client_ctx(0, 0, NULL);
	static const unsigned char both[] = "\x02h2\x08http/1.1";
	const unsigned char *p;
	unsigned pl;
	assert_int_equal(SSL_CTX_set_alpn_protos(cc, both, sizeof both - 1), 0);
	SSL *c = hs(cc, s, "app.test", NULL, NULL);
	assert_non_null(c);
	SSL_get0_alpn_selected(c, &p, &pl);
	assert_int_equal(pl, 8);
	assert_memory_equal(p, "http/1.1", 8); /* h2 not enabled by default */
	SSL_free(c);
	assert_int_equal(tw_tls_store_set_alpn(s, "h2,http/1.1"), 0);
	c = hs(cc, s, "app.test", NULL, NULL);
	assert_non_null(c);
	SSL_get0_alpn_selected(c, &p, &pl);
	assert_int_equal(pl, 2);
	assert_memory_equal(p, "h2", 2);
	SSL_free(c);
	assert_int_equal(tw_tls_store_set_alpn(s, ""), TW_EINVAL);
	assert_int_equal(tw_tls_store_set_alpn(s, "h2,,x"), TW_EINVAL);
	/* No common protocol: the handshake goes on without ALPN. */
	static const unsigned char other[] = "\x03" "foo";
	assert_int_equal(SSL_CTX_set_alpn_protos(cc, other, sizeof other - 1), 0);
	c = hs(cc, s, "app.test", NULL, NULL);
	assert_non_null(c);
	SSL_get0_alpn_selected(c, &p, &pl);
	assert_int_equal(pl, 0);
	SSL_free(c);
	/* acme-tls/1 is never selected without the hook. */
	static const unsigned char acme[] = "\x0a" "acme-tls/1";
	assert_int_equal(SSL_CTX_set_alpn_protos(cc, acme, sizeof acme - 1), 0);
	c = hs(cc, s, "app.test", NULL, NULL);
	assert_non_null(c);
	SSL_get0_alpn_selected(c, &p, &pl);
	assert_int_equal(pl, 0);
	SSL_free(c);
	SSL_CTX_free(cc);
	tw_tls_store_release(s);
	tw_config_free(cfg);
}

/* A session from a full handshake on store a. */
static SSL_SESSION *first_session(SSL_CTX *cc, struct tw_tls_store *a)
{
	SSL *c = hs(cc, a, "app.test", NULL, NULL);
	assert_non_null(c);
	assert_int_equal(SSL_session_reused(c), 0);
	SSL_SESSION *sess = SSL_get1_session(c);
	assert_non_null(sess);
	assert_int_equal(SSL_SESSION_is_resumable(sess), 1);
	/* A clean close; freeing an unclosed SSL marks its session unusable. */
	SSL_set_shutdown(c, SSL_SENT_SHUTDOWN | SSL_RECEIVED_SHUTDOWN);
	SSL_free(c);
	return sess;
}

static int resumes(SSL_CTX *cc, struct tw_tls_store *b, SSL_SESSION *sess)
{
	SSL *c = hs(cc, b, "app.test", sess, NULL);
	assert_non_null(c);
	int r = SSL_session_reused(c);
	SSL_free(c);
	return r;
}

static void tickets_for(int version)
{
	struct tw_config *cfg = std_cfg(NULL);
	struct tw_tls_store *a = build(cfg, NULL);
	struct tw_tls_store *b = build(cfg, a); /* next generation shares the ring */
	struct tw_tls_store *other = build(cfg, NULL); /* unrelated ring */
	SSL_CTX *cc = client_ctx(version, version, NULL);

	SSL_SESSION *s1 = first_session(cc, a);
	assert_int_equal(resumes(cc, b, s1), 1);     /* across SSL_CTX users */
	assert_int_equal(resumes(cc, other, s1), 0); /* another ring: full handshake */

	SSL_SESSION *s2 = first_session(cc, a);
	tw_tls_store_rotate_tickets(a);
	assert_int_equal(resumes(cc, b, s2), 1); /* previous key still decrypts */

	SSL_SESSION *s3 = first_session(cc, b);
	tw_tls_store_rotate_tickets(b);
	tw_tls_store_rotate_tickets(a); /* same ring: two rotations */
	assert_int_equal(resumes(cc, a, s3), 0);

	SSL_SESSION_free(s1);
	SSL_SESSION_free(s2);
	SSL_SESSION_free(s3);
	SSL_CTX_free(cc);
	tw_tls_store_release(a);
	tw_tls_store_release(b);
	tw_tls_store_release(other);
	tw_config_free(cfg);
}

static void tickets_tls12(void **state)
{
	tickets_for(TLS1_2_VERSION);
}

static void tickets_tls13(void **state)
{
	tickets_for(TLS1_3_VERSION);
}

static void swap_and_broken_files(void **state)
{
	char crt[160], key[160];
	snprintf(crt, sizeof crt, "%s/swap.crt", dir);
	snprintf(key, sizeof key, "%s/swap.key", dir);
	assert_int_equal(write_selfsigned(crt, key, 0, "swap.example.com", "DNS:swap.example.com", 100), 0);
	struct tw_config *cfg = cfg_fmt("listen: {https: 127.0.0.1:2}\n"
	                                "state_dir: %s/state\n"
	                                "sites:\n"
	                                "  - hosts: [swap.example.com]\n"
	                                "    tls: {cert: %s, key: %s}\n"
	                                "    routes: [{path: /, handler: welcome}]\n",
	                                dir, crt, key);
	assert_non_null(cfg);
	struct tw_tls_store *s = build(cfg, NULL);
	assert_int_equal(tw_tls_store_stale(s), 0);
	assert_int_equal(tw_tls_store_ncerts(s), 1);
	assert_string_equal(tw_tls_store_root_path(s), ""); /* no local CA used */

	/* A new pair written in place (different size/mtime/inode). */
	char tmpc[170], tmpk[170];
	snprintf(tmpc, sizeof tmpc, "%s.new", crt);
	snprintf(tmpk, sizeof tmpk, "%s.new", key);
	assert_int_equal(write_selfsigned(tmpc, tmpk, 0, "swap.example.com",
	                                  "DNS:swap.example.com,DNS:www.swap.example.com", 200), 0);
	assert_int_equal(rename(tmpk, key), 0);
	assert_int_equal(rename(tmpc, crt), 0);
	assert_int_equal(tw_tls_store_stale(s), 1);
	assert_int_equal(tw_tls_store_stale(s), 0); /* each change reported once */
	struct tw_tls_store *s2 = build(cfg, s);
	SSL_CTX *cc = client_ctx(0, 0, NULL);
	SSL *c = hs(cc, s2, "swap.example.com", NULL, NULL);
	assert_non_null(c);
	X509 *x = SSL_get1_peer_certificate(c);
	assert_int_equal(ASN1_INTEGER_get(X509_get0_serialNumber(x)), 200);
	X509_free(x);
	SSL_free(c);
	/* The old store still serves the old certificate (in-flight handshakes). */
	c = hs(cc, s, "swap.example.com", NULL, NULL);
	assert_non_null(c);
	x = SSL_get1_peer_certificate(c);
	assert_int_equal(ASN1_INTEGER_get(X509_get0_serialNumber(x)), 100);
	X509_free(x);
	SSL_free(c);

	/* A broken replacement: the rebuild fails with file and problem named. */
	write_text(crt, "-----BEGIN CERTIFICATE-----\nnot base64 at all\n-----END CERTIFICATE-----\n");
	assert_int_equal(tw_tls_store_stale(s2), 1);
	struct tw_tls_store *s3 = (struct tw_tls_store *)1;
	struct tw_err e = {0};
	assert_true(tw_tls_store_build(cfg, s2, &s3, &e) < 0);
	assert_null(s3);
	assert_non_null(strstr(e.msg, crt));
	assert_non_null(strstr(e.msg, "no PEM certificate"));
	assert_non_null(strstr(e.msg, "swap.example.com"));
	/* A key that no longer matches. */
	assert_int_equal(write_selfsigned(crt, tmpk, 0, "swap.example.com", "DNS:swap.example.com", 300), 0);
	assert_true(tw_tls_store_build(cfg, s2, &s3, &e) < 0);
	assert_non_null(strstr(e.msg, "does not match"));
	/* A missing file. */
	remove(key);
	assert_int_equal(tw_tls_store_stale(s2), 1);
	assert_true(tw_tls_store_build(cfg, s2, &s3, &e) < 0);
	assert_non_null(strstr(e.msg, "No such file"));
	/* s2 keeps serving. */
	c = hs(cc, s2, "swap.example.com", NULL, NULL);
	assert_non_null(c);
	SSL_free(c);
	remove(tmpk);
	SSL_CTX_free(cc);
	tw_tls_store_release(s);
	tw_tls_store_release(s2);
	tw_config_free(cfg);
}

static void refcount_outlives_release(void **state)
{
	struct tw_config *cfg = std_cfg(NULL);
	struct tw_tls_store *s = build(cfg, NULL);
	struct tw_tls_store *conn_ref = tw_tls_store_acquire(s);
	assert_ptr_equal(conn_ref, s);
	tw_tls_store_release(s); /* the edge swaps generations */
	SSL_CTX *cc = client_ctx(0, 0, NULL);
	SSL *c = hs(cc, conn_ref, "api.test", NULL, NULL); /* still usable */
	assert_non_null(c);
	SSL_free(c);
	SSL_CTX_free(cc);
	tw_tls_store_free(conn_ref);
	tw_tls_store_free(NULL);
	tw_config_free(cfg);
}

/* Worker threads handshake (and resume) on one store while the main
 * thread rotates the ticket keys: no crash, no sanitizer report, every
 * handshake completes and picks the right site. */
struct hammer {
	struct tw_tls_store *s;
	int ok, resumed;
};

static void *hammer_thread(void *arg)
{
	struct hammer *h = arg;
	SSL_CTX *cc = client_ctx(0, 0, NULL);
	SSL_SESSION *sess = NULL;
	static const char *const names[] = {"app.test", "api.test", "x.app.test", "nope.example"};
	static const size_t want[] = {0, 1, 0, 3};
	for (int i = 0; i < 40; i++) {
		size_t site = SIZE_MAX;
		SSL *c = hs(cc, h->s, names[i % 4], i % 4 == 0 ? sess : NULL, &site);
		if (c == NULL || site != want[i % 4])
			break;
		if (i % 4 == 0) {
			h->resumed += SSL_session_reused(c);
			SSL_SESSION_free(sess);
			sess = SSL_get1_session(c);
		}
		SSL_set_shutdown(c, SSL_SENT_SHUTDOWN | SSL_RECEIVED_SHUTDOWN);
		SSL_free(c);
		h->ok++;
	}
	SSL_SESSION_free(sess);
	SSL_CTX_free(cc);
	return NULL;
}

static void threads_share_one_store(void **state)
{
	struct tw_config *cfg = std_cfg(NULL);
	struct tw_tls_store *s = build(cfg, NULL);
	struct hammer h[4];
	pthread_t t[4];
	for (int i = 0; i < 4; i++) {
		h[i] = (struct hammer){tw_tls_store_acquire(s), 0, 0};
		assert_int_equal(pthread_create(&t[i], NULL, hammer_thread, &h[i]), 0);
	}
	for (int i = 0; i < 20; i++) {
		tw_tls_store_rotate_tickets(s);
		usleep(2000);
	}
	int resumed = 0;
	for (int i = 0; i < 4; i++) {
		pthread_join(t[i], NULL);
		assert_int_equal(h[i].ok, 40);
		resumed += h[i].resumed;
		tw_tls_store_release(h[i].s);
	}
	assert_true(resumed > 0); /* some resumed despite the rotations */
	tw_tls_store_release(s);
	tw_config_free(cfg);
}

static void no_tls_sites(void **state)
{
	struct tw_config *cfg = cfg_fmt("listen: {http: 127.0.0.1:1}\n"
	                                "state_dir: %s/none\n"
	                                "sites: [{hosts: [app.test], routes: [{path: /, handler: welcome}]}]\n",
	                                dir);
	struct tw_tls_store *s = NULL;
	struct tw_err e = {0};
	assert_int_equal(tw_tls_store_build(cfg, NULL, &s, &e), 0);
	assert_null(tw_tls_store_ctx(s));
	assert_int_equal(tw_tls_store_ncerts(s), 0);
	char p[128];
	snprintf(p, sizeof p, "%s/none", dir);
	assert_int_not_equal(access(p, F_OK), 0); /* nothing created */
	tw_tls_store_release(s);
	tw_config_free(cfg);
}

/* A pair given as PEM bytes (Kubernetes Secrets): served like a file pair,
 * labelled in messages and cert info, never reported stale; broken bytes
 * fail the build with the label named; tw_tls_pair_check_mem agrees. */
static char *slurp(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	assert_non_null(f);
	static char bufs[2][8192];
	static int which;
	char *b = bufs[which++ & 1];
	*len = fread(b, 1, 8192, f);
	fclose(f);
	return b;
}

static void memory_pairs(void **state)
{
	char crt[160], key[160];
	snprintf(crt, sizeof crt, "%s/mem.crt", dir);
	snprintf(key, sizeof key, "%s/mem.key", dir);
	assert_int_equal(write_selfsigned(crt, key, 0, "mem.example.com", "DNS:mem.example.com", 77), 0);
	struct tw_config *cfg = cfg_fmt("listen: {https: 127.0.0.1:2}\n"
	                                "state_dir: %s/state\n"
	                                "sites:\n"
	                                "  - hosts: [mem.example.com]\n"
	                                "    tls: {cert: %s, key: %s}\n"
	                                "    routes: [{path: /, handler: welcome}]\n",
	                                dir, crt, key);
	assert_non_null(cfg);
	struct tw_conf_certpair *p = &cfg->sites[0].certs[0];
	p->cert_pem = slurp(crt, &p->cert_pem_len);
	p->key_pem = slurp(key, &p->key_pem_len);
	p->cert = "secret:default/mem-tls (tls.crt)";
	p->key = "secret:default/mem-tls (tls.key)";
	remove(crt); /* nothing reads the files any more */
	remove(key);
	int kt = -1, which = -1;
	char why[256];
	assert_int_equal(tw_tls_pair_check_mem(p, &kt, &which, why, sizeof why), 0);
	assert_int_equal(kt, TW_TLS_KEY_ECDSA);
	struct tw_tls_store *s = build(cfg, NULL);
	assert_int_equal(tw_tls_store_ncerts(s), 1);
	assert_string_equal(tw_tls_store_cert(s, 0)->cert_path, "secret:default/mem-tls (tls.crt)");
	assert_int_equal(tw_tls_store_stale(s), 0);
	SSL_CTX *cc = client_ctx(0, 0, NULL);
	SSL *c = hs(cc, s, "mem.example.com", NULL, NULL);
	assert_non_null(c);
	X509 *x = SSL_get1_peer_certificate(c);
	assert_int_equal(ASN1_INTEGER_get(X509_get0_serialNumber(x)), 77);
	X509_free(x);
	SSL_free(c);

	/* Key and certificate swapped, a truncated certificate, no key. */
	struct tw_conf_certpair bad = *p;
	bad.cert_pem = p->key_pem;
	bad.cert_pem_len = p->key_pem_len;
	assert_true(tw_tls_pair_check_mem(&bad, &kt, &which, why, sizeof why) < 0);
	assert_int_equal(which, 0);
	assert_non_null(strstr(why, "secret:default/mem-tls (tls.crt)"));
	bad = *p;
	bad.cert_pem_len = 40;
	assert_true(tw_tls_pair_check_mem(&bad, &kt, &which, why, sizeof why) < 0);
	bad = *p;
	bad.key_pem_len = 0;
	assert_true(tw_tls_pair_check_mem(&bad, &kt, &which, why, sizeof why) < 0);
	assert_int_equal(which, 1);
	*p = bad;
	struct tw_tls_store *s2 = (struct tw_tls_store *)1;
	struct tw_err e = {0};
	assert_true(tw_tls_store_build(cfg, s, &s2, &e) < 0);
	assert_null(s2);
	assert_non_null(strstr(e.msg, "tls.key"));
	SSL_CTX_free(cc);
	tw_tls_store_release(s);
	tw_config_free(cfg);
}

int main(void)
{
	tw_log_level = TW_LOG_ERROR;
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(sni_selection),
	    cmocka_unit_test(ecdsa_or_rsa),
	    cmocka_unit_test(versions_and_profiles),
	    cmocka_unit_test(alpn),
	    cmocka_unit_test(tickets_tls12),
	    cmocka_unit_test(tickets_tls13),
	    cmocka_unit_test(swap_and_broken_files),
	    cmocka_unit_test(refcount_outlives_release),
	    cmocka_unit_test(threads_share_one_store),
	    cmocka_unit_test(no_tls_sites),
	    cmocka_unit_test(memory_pairs),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
