/* ca.h — tapwork's local certificate authority (internal to src/tls).
 *
 * The root lives in STATE_DIR/ca/ (directory 0700): root.crt and root.key
 * (0600), P-256 ECDSA, valid 10 years, created on first use and reused.
 * Leaves live in STATE_DIR/certs/ (0700) as NAME.crt + NAME.key (0600),
 * NAME = the first name, '*' and ':' written '_'. A leaf is P-256 ECDSA,
 * valid 7 days, and is re-issued when it is missing, unreadable, not signed
 * by the current root, its names differ, or less than a third of its
 * lifetime is left. A lock file (STATE_DIR/.lock, flock) serialises
 * processes that share the directory. */
#ifndef TW_TLS_CA_H
#define TW_TLS_CA_H

#include "core/err.h"

#include <openssl/x509.h>
#include <stddef.h>
#include <time.h>

#define TW_CA_LEAF_DAYS 7

struct tw_ca;

struct tw_ca_leaf {
	X509 *cert;
	EVP_PKEY *key;
	char cert_path[512], key_path[512];
	time_t not_before, not_after;
	time_t renew_at; /* not_before + two thirds of the lifetime */
	int issued;      /* 1 when this call issued it (0 = reused from disk) */
};

/* Open (create on first use) the CA under state_dir. */
int tw_ca_open(const char *state_dir, struct tw_ca **out, struct tw_err *err);
void tw_ca_free(struct tw_ca *ca); /* NULL ok */
const char *tw_ca_root_path(const struct tw_ca *ca);
X509 *tw_ca_root(const struct tw_ca *ca); /* borrowed */

/* A leaf for names (DNS names, "*.x" wildcards, IPv4/IPv6 literals), valid
 * at `now`: the cached one or a new one. out owns a reference to cert/key. */
int tw_ca_leaf_get(struct tw_ca *ca, char *const *names, size_t n, time_t now,
                   struct tw_ca_leaf *out, struct tw_err *err);
void tw_ca_leaf_clear(struct tw_ca_leaf *l); /* NULL ok */

#endif
