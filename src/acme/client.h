/* client.h — an RFC 8555 ACME client: one CA directory, one account.
 *
 * Blocking; meant for one thread (the ACME manager's, or the CLI). All
 * HTTPS goes through one libcurl handle (keep-alive). Nonces: HEAD newNonce
 * when none is held, the Replay-Nonce of every response is kept, and a
 * request rejected with badNonce is re-sent once with the fresh nonce.
 *
 * Typical use:
 *   tw_acme_client_new(&opts, &c, err);
 *   tw_acme_client_account(c, key, stored_url_or_NULL, &url, err);
 *   tw_acme_client_issue(c, &req, &res, err);
 * Returned strings are malloc'ed and owned by the caller. */
#ifndef TW_ACME_CLIENT_H
#define TW_ACME_CLIENT_H

#include "acme/parse.h"
#include "acme/renew.h"
#include "acme/responder.h"
#include "core/err.h"

#include <openssl/evp.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

struct tw_acme_client_opts {
	const char *directory;       /* https URL (required) */
	const char *const *ca_roots; /* extra PEM root files for the CA's HTTPS */
	size_t nca_roots;
	const char *email;   /* NULL = no contact */
	const char *eab_kid; /* both or neither */
	const char *eab_hmac_key;
	unsigned request_timeout_ms; /* per HTTP request; 0 = 30 s */
	const atomic_int *cancel;    /* polls stop with TW_ECANCELED when *cancel != 0 */
};

enum tw_acme_keytype { TW_ACME_KEY_P256 = 0, TW_ACME_KEY_RSA2048 };

struct tw_acme_issue_req {
	const char *const *names; /* DNS names; "*.example.com" for wildcards */
	size_t nnames;
	const char *const *challenges; /* preference order; NULL = http-01, tls-alpn-01 */
	size_t nchallenges;
	const struct tw_acme_responder *responder; /* http-01 / tls-alpn-01 */
	const char *dns_hook;     /* dns-01: program run as HOOK set|clear RECORD VALUE */
	unsigned hook_timeout_ms; /* 0 = 60 s */
	enum tw_acme_keytype key_type;
	const char *replaces;         /* ARI certID of the certificate renewed, or NULL */
	const char *profile;          /* ACME profile, or NULL */
	const char *preferred_issuer; /* chain whose top issuer CN equals this, or NULL */
	unsigned timeout_ms;          /* whole issuance incl. polling; 0 = 180 s */
};

struct tw_acme_issue_res {
	char *chain_pem; /* leaf first */
	size_t chain_len;
	char *key_pem; /* the new certificate key (PKCS#8 PEM) */
	size_t key_len;
};
void tw_acme_issue_res_clear(struct tw_acme_issue_res *r);

/* Counters of one client (for logs, tests and metrics). */
struct tw_acme_client_stats {
	unsigned long requests; /* HTTP requests sent */
	unsigned long bad_nonce_retries;
};

struct tw_acme_client;

int tw_acme_client_new(const struct tw_acme_client_opts *o, struct tw_acme_client **out,
                       struct tw_err *err);
void tw_acme_client_free(struct tw_acme_client *c); /* NULL ok */

/* The directory (fetched on first use). Lent; valid until _free. */
int tw_acme_client_dir(struct tw_acme_client *c, const struct tw_acme_dir **out,
                       struct tw_err *err);

/* Use account key `key` (borrowed; must outlive c). When known_url is
 * given it is used as the account (no request); else newAccount registers
 * or finds the account (contact, termsOfServiceAgreed, EAB when configured)
 * and *url_out gets its URL (malloc'ed; may be NULL if not wanted). */
int tw_acme_client_account(struct tw_acme_client *c, EVP_PKEY *key, const char *known_url,
                           char **url_out, struct tw_err *err);

/* Order, authorize, finalize and download one certificate. When an order
 * fails because a challenge type failed, a new order is tried with the next
 * type. On success res holds the chain and key. */
int tw_acme_client_issue(struct tw_acme_client *c, const struct tw_acme_issue_req *req,
                         struct tw_acme_issue_res *res, struct tw_err *err);

/* ARI: the suggested window for certID. TW_EUNSUPP when the directory has no
 * renewalInfo. *retry_after_s gets the server's Retry-After (0 = none). */
int tw_acme_client_renewal_info(struct tw_acme_client *c, const char *cert_id,
                                struct tw_acme_window *w, uint64_t *retry_after_s,
                                struct tw_err *err);

/* Revoke the leaf of chain_pem (RFC 5280 reason code, 0 = unspecified). */
int tw_acme_client_revoke(struct tw_acme_client *c, const char *chain_pem, size_t len,
                          unsigned reason, struct tw_err *err);

/* Retry-After (seconds) of the last failed request, 0 when none. */
uint64_t tw_acme_client_retry_after(const struct tw_acme_client *c);
void tw_acme_client_stats(const struct tw_acme_client *c, struct tw_acme_client_stats *out);

#endif
