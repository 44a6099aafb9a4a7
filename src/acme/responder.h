/* responder.h — how ACME challenges get answered (the seam to the proxy and
 * the TLS layer) and the pieces tapwork ships to answer them.
 *
 * The client calls a struct tw_acme_responder: set before it asks the CA to
 * validate, clear afterwards (also on failure). dns-01 runs the operator's
 * hook program instead (tw_acme_hook_run).
 *
 * struct tw_acme_http01 is a thread-safe in-memory token table: the ACME
 * thread sets tokens, proxy workers look them up for
 * GET /.well-known/acme-challenge/TOKEN before routing. tw_acme_http01_responder
 * wires a table into a responder. tw_acme_http01_server is a minimal
 * standalone HTTP server answering only that path (for `tapwork acme issue
 * --http01-listen` when no proxy runs). */
#ifndef TW_ACME_RESPONDER_H
#define TW_ACME_RESPONDER_H

#include "conf/config.h"
#include "core/err.h"

#include <stddef.h>

struct tw_acme_responder {
	void *ctx;
	/* http-01: serve key_authz (text/plain) at /.well-known/acme-challenge/TOKEN. */
	int (*http01_set)(void *ctx, const char *token, const char *key_authz);
	int (*http01_clear)(void *ctx, const char *token);
	/* tls-alpn-01: for SNI `name` with ALPN "acme-tls/1", present the certificate
	 * built by tw_acme_x509_tlsalpn01(name, key_authz) and offer only acme-tls/1. */
	int (*tlsalpn01_set)(void *ctx, const char *name, const char *key_authz);
	int (*tlsalpn01_clear)(void *ctx, const char *name);
};

#define TW_ACME_HTTP01_PREFIX "/.well-known/acme-challenge/"
#define TW_ACME_TOKEN_MAX 256
#define TW_ACME_KEYAUTHZ_MAX 512

struct tw_acme_http01;

int tw_acme_http01_new(struct tw_acme_http01 **out);
void tw_acme_http01_free(struct tw_acme_http01 *t); /* NULL ok */
int tw_acme_http01_set(struct tw_acme_http01 *t, const char *token, const char *key_authz);
int tw_acme_http01_clear(struct tw_acme_http01 *t, const char *token);
/* Look up a token given as a slice (e.g. the path after the prefix). Copies
 * the key authorization into out (cap outcap, NUL-terminated) and its length
 * into *outlen. TW_ENOENT when unknown, TW_ELIMIT when out is too small.
 * Safe to call from any thread at any time; never blocks on I/O. */
int tw_acme_http01_lookup(struct tw_acme_http01 *t, const char *token, size_t tokenlen, char *out,
                          size_t outcap, size_t *outlen);
/* For the proxy: is this request path an ACME challenge? Returns 1 (and sets token, toklen)
 * pointing into path) or 0. Path as received (origin-form, query ignored). */
int tw_acme_http01_match(const char *path, size_t len, const char **token, size_t *toklen);
/* A responder whose http01_* go to table t (tls-alpn-01 entries NULL). */
struct tw_acme_responder tw_acme_http01_responder(struct tw_acme_http01 *t);

/* A standalone HTTP-01 server on its own thread. */
struct tw_acme_http01_server;
int tw_acme_http01_server_start(const struct tw_addr *addr, struct tw_acme_http01 *t,
                                struct tw_acme_http01_server **out, struct tw_err *err);
void tw_acme_http01_server_stop(struct tw_acme_http01_server *s); /* NULL ok; joins */

/* Run `hook verb name value` (posix_spawn, no shell), wait at most
 * timeout_ms, kill it after that. 0 when it exited 0. */
int tw_acme_hook_run(const char *hook, const char *verb, const char *name, const char *value,
                     unsigned timeout_ms, struct tw_err *err);

#endif
