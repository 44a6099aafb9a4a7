/* tls.h — the TLS layer of the edge: certificates and one server SSL_CTX
 * per config generation. See docs/internals/tls.md.
 *
 * A struct tw_tls_store is built from one struct tw_config (the local CA and
 * its leaves, certificate files, the SSL_CTX with SNI/ALPN/ticket callbacks)
 * and is immutable once published, except for the ticket key ring it shares
 * with earlier and later stores. It is reference counted: the edge holds one
 * reference for the current generation and every client connection holds
 * one while its SSL object lives (the SSL_CTX callbacks use the store).
 *
 * Thread rules: build, set_alpn, set_acme_hook and stale run on the main
 * thread; the SSL_CTX and every read-only accessor may be used by all worker
 * threads at once. */
#ifndef TW_TLS_TLS_H
#define TW_TLS_TLS_H

#include "conf/config.h"
#include "core/err.h"

#include <openssl/ssl.h>
#include <stddef.h>
#include <time.h>

struct tw_tls_store;

enum tw_tls_source {
	TW_TLS_SRC_INTERNAL = 0, /* issued by the local CA (`tls: internal`) */
	TW_TLS_SRC_FILE,         /* `tls: {cert, key}` */
	TW_TLS_SRC_ACME_TEMP,    /* local-CA stand-in until the first ACME certificate */
	TW_TLS_SRC_ACME          /* issued by the ACME CA (state_dir/acme/certs/NAME/) */
};

enum tw_tls_key_type { TW_TLS_KEY_OTHER = 0, TW_TLS_KEY_ECDSA, TW_TLS_KEY_RSA, TW_TLS_KEY_EDDSA };

/* One certificate the store serves (for `tapwork cert list` and metrics). */
struct tw_tls_cert_info {
	size_t site;               /* index into cfg->sites */
	enum tw_tls_source source;
	enum tw_tls_key_type key_type;
	char key_desc[32];         /* "ECDSA P-256", "RSA 2048" */
	char names[1024];          /* SANs, ", "-separated ("..." when cut) */
	char subject[256];         /* RFC 2253 */
	char issuer[256];          /* RFC 2253 */
	time_t not_before, not_after;
	char cert_path[512], key_path[512];
};

/* ---- the store ---- */

/* Build everything for one generation. prev (may be NULL) lends its ticket
 * key ring so resumption survives reloads. Creates the local CA in
 * cfg->state_dir/ca on first use and issues/renews internal leaves in
 * cfg->state_dir/certs. On failure *out is NULL and err names the file and
 * the problem; nothing that was serving is affected. */
int tw_tls_store_build(const struct tw_config *cfg, const struct tw_tls_store *prev,
                       struct tw_tls_store **out, struct tw_err *err);
struct tw_tls_store *tw_tls_store_acquire(struct tw_tls_store *s); /* returns s */
void tw_tls_store_release(struct tw_tls_store *s);                  /* frees at zero; NULL ok */
void tw_tls_store_free(struct tw_tls_store *s);                     /* = release */

/* The server SSL_CTX shared by all workers; NULL when no site has TLS.
 * Borrowed: valid while the caller holds a store reference. SSL_new(ctx)
 * per connection; nonblocking I/O is the caller's. */
SSL_CTX *tw_tls_store_ctx(const struct tw_tls_store *s);

/* ALPN protocols offered, comma-separated in preference order
 * ("h2,http/1.1"). Default "http/1.1". Main thread, before publishing. */
int tw_tls_store_set_alpn(struct tw_tls_store *s, const char *list);

/* Seam for ACME TLS-ALPN-01 (next issue): when a client offers only
 * "acme-tls/1" and a hook is set, the hook installs the challenge
 * certificate on ssl (SSL_use_cert_and_key) and returns 0; ALPN then selects
 * "acme-tls/1". A negative return fails the handshake. Without a hook,
 * "acme-tls/1" is never selected. Main thread, before publishing. */
typedef int (*tw_tls_acme_hook)(SSL *ssl, const char *servername, void *arg);
void tw_tls_store_set_acme_hook(struct tw_tls_store *s, tw_tls_acme_hook fn, void *arg);

/* Should the store be rebuilt? 1 when a certificate or key file changed
 * (inode, size or mtime) since the last call, or an internal leaf is due
 * for renewal; else 0. Reports each file change once (so a broken
 * replacement is tried once, then again when the file changes again).
 * Main thread; meant to be called about once a second. */
int tw_tls_store_stale(struct tw_tls_store *s);

/* Force a ticket key rotation now (the ring also rotates by itself every
 * tls.ticket_key_rotation). Any thread. */
void tw_tls_store_rotate_tickets(struct tw_tls_store *s);

/* The site the handshake on ssl picked (SNI or default), SIZE_MAX when the
 * store's callback did not run. Any thread, after the ClientHello. */
size_t tw_tls_ssl_site(const SSL *ssl);

/* Certificates served, in site order. */
size_t tw_tls_store_ncerts(const struct tw_tls_store *s);
const struct tw_tls_cert_info *tw_tls_store_cert(const struct tw_tls_store *s, size_t i);
/* Path of the local CA's root certificate, "" when no site uses it. */
const char *tw_tls_store_root_path(const struct tw_tls_store *s);

/* ---- config helpers (tls.c) ---- */

/* 1 when site site_idx has TLS and the HTTP listener should answer 308 to
 * https (listen.https set, tls.redirect_http true, effective mode not off). */
int tw_tls_site_wants_redirect(const struct tw_config *cfg, size_t site_idx);
/* The Strict-Transport-Security value for the site's HTTPS answers, or
 * NULL when the site sends none. Points into cfg. */
const char *tw_tls_site_hsts(const struct tw_config *cfg, size_t site_idx);
/* A name the local CA serves by default: localhost, *.localhost, *.test,
 * *.internal, an IP address, or "*". */
int tw_tls_name_is_internal(const char *host);

/* Load and check a certificate/key file pair (the loader calls this for
 * every `tls: {cert, key}`). On failure why names the file and the problem
 * and *which is 0 (cert) or 1 (key). */
int tw_tls_pair_check(const char *cert, const char *key, int *key_type, int *which, char *why,
                      size_t wl);
/* The same for a pair held in memory (p->cert_pem/key_pem; p->cert and
 * p->key label the messages): the Ingress translator checks Secrets with it. */
int tw_tls_pair_check_mem(const struct tw_conf_certpair *p, int *key_type, int *which, char *why,
                          size_t wl);
const char *tw_tls_key_type_name(int key_type); /* "ECDSA", "RSA", ... */
const char *tw_tls_source_name(enum tw_tls_source src); /* "internal", "file", "acme-temporary" */

#endif
