/* manager.h — keeps ACME certificates issued and renewed, on its own thread.
 *
 * The proxy builds one manager from the `acme:` config, adds one
 * certificate per site with `tls: acme` (its host names), and starts it.
 * The manager then, per certificate:
 *   - at start, installs a stored certificate that is still valid (no
 *     request to the CA: a restart re-issues nothing);
 *   - issues when there is none, the names changed, or renewal is due
 *     (ARI window when the CA offers renewalInfo, else 1/3 of lifetime left,
 *     1/2 under 10 days; see renew.h), under the store lock so processes
 *     sharing the store issue once;
 *   - calls on_certificate(names, chain, key) from the manager thread after
 *     each install; the callee copies what it keeps;
 *   - on failure keeps the current certificate, backs off (1 min .. 6 h,
 *     Retry-After wins) and records the error for `tapwork cert list`.
 * Issuance is serial (one order at a time across all names).
 *
 * tw_acme_obtain() is the same work done once, synchronously, for the CLI. */
#ifndef TW_ACME_MANAGER_H
#define TW_ACME_MANAGER_H

#include "acme/client.h"
#include "acme/store.h"
#include "acme/x509.h"
#include "conf/config.h"
#include "core/dbuf.h"
#include "core/err.h"

#include <stddef.h>
#include <stdint.h>
#include <time.h>

typedef void (*tw_acme_install_fn)(void *ud, const char *const *names, size_t nnames,
                                   const char *chain_pem, size_t chain_len, const char *key_pem,
                                   size_t key_len);

struct tw_acme_mgr_opts {
	const struct tw_conf_acme *conf;           /* copied */
	struct tw_acme_store *store;               /* borrowed; outlives the manager */
	const struct tw_acme_responder *responder; /* borrowed; NULL = dns-01 only */
	tw_acme_install_fn on_certificate;         /* may be NULL */
	void *ud;
	enum tw_acme_keytype key_type; /* certificate keys; default P-256 */
	const char *preferred_issuer;  /* alternate chain choice, or NULL */
	unsigned issue_timeout_ms;     /* per issuance; 0 = 180 s */
};

enum tw_acme_cert_state {
	TW_ACME_CERT_PENDING = 0, /* no certificate yet */
	TW_ACME_CERT_VALID,       /* installed; renewal scheduled */
	TW_ACME_CERT_RENEWING,    /* an order is running */
	TW_ACME_CERT_FAILING      /* last attempt failed; retry at next_attempt */
};
const char *tw_acme_cert_state_name(enum tw_acme_cert_state s);

struct tw_acme_cert_status {
	char name[256]; /* first name (the store name uses '_' for '*') */
	size_t nnames;
	enum tw_acme_cert_state state;
	time_t not_after;     /* 0 = no certificate */
	time_t renew_at;      /* planned renewal (0 = unknown) */
	time_t next_attempt;  /* when the manager looks at it next */
	unsigned failures;    /* consecutive */
	char last_error[256]; /* "" when none */
};

struct tw_acme_mgr;

int tw_acme_mgr_new(const struct tw_acme_mgr_opts *o, struct tw_acme_mgr **out, struct tw_err *err);
/* Add a certificate for names (copied). Thread-safe; before or after start. */
int tw_acme_mgr_add(struct tw_acme_mgr *m, const char *const *names, size_t nnames,
                    struct tw_err *err);
int tw_acme_mgr_start(struct tw_acme_mgr *m, struct tw_err *err);
/* Renew the certificate whose first name is `name` now. TW_ENOENT if unknown. */
int tw_acme_mgr_renew_now(struct tw_acme_mgr *m, const char *name);
/* Snapshot of every certificate (cap entries); *n gets how many exist. */
int tw_acme_mgr_status(struct tw_acme_mgr *m, struct tw_acme_cert_status *out, size_t cap,
                       size_t *n);
/* Prometheus text: tapwork_cert_expiry_seconds{name}, tapwork_acme_issuance_total{result}. */
int tw_acme_mgr_metrics(struct tw_acme_mgr *m, struct tw_dbuf *out);
/* Stops the thread (an order in flight is cancelled) and frees. NULL ok. */
void tw_acme_mgr_free(struct tw_acme_mgr *m);

/* ---- one-shot issuance (the CLI; the manager uses the same steps) ----- */

struct tw_acme_obtain_opts {
	const struct tw_conf_acme *conf;
	struct tw_acme_store *store;
	const struct tw_acme_responder *responder;
	enum tw_acme_keytype key_type;
	const char *preferred_issuer;
	unsigned issue_timeout_ms;
	int force; /* issue even when the stored one is not due */
	const atomic_int *cancel;
};
struct tw_acme_obtain_result {
	int issued;                   /* 0 = stored certificate still good */
	int account_reused;           /* 1 = account URL came from the store */
	struct tw_acme_certinfo info; /* of the certificate now stored */
	time_t renew_at;
	struct tw_acme_client_stats stats;
	char store_name[256];
};
int tw_acme_obtain(const struct tw_acme_obtain_opts *o, const char *const *names, size_t nnames,
                   struct tw_acme_obtain_result *res, struct tw_err *err);

/* Load a stored certificate: chain and key appended to the dbufs. */
int tw_acme_stored_cert(struct tw_acme_store *s, const char *store_name, struct tw_dbuf *chain,
                        struct tw_dbuf *key, struct tw_err *err);
/* Revoke the stored certificate of store_name (and mark it revoked). */
int tw_acme_revoke_stored(const struct tw_acme_obtain_opts *o, const char *store_name,
                          unsigned reason, struct tw_err *err);

#endif
