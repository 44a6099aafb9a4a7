/* parse.h — the ACME server's JSON documents, read from untrusted
 * (ptr, len) bytes into plain structs (RFC 8555 §7.1, RFC 9773 §4.2).
 *
 * Every string is copied into the caller's arena and capped (URLs at
 * 2048 bytes, lists at TW_ACME_MAX_LIST items); a document that breaks a
 * cap or misses a required member is TW_EPROTO with detail in err.
 * fuzz/acme_json.c drives every parser here. */
#ifndef TW_ACME_PARSE_H
#define TW_ACME_PARSE_H

#include "core/arena.h"
#include "core/err.h"

#include <stddef.h>
#include <time.h>

#define TW_ACME_MAX_LIST 100
#define TW_ACME_MAX_URL 2048
#define TW_ACME_MAX_DOC (1u << 20) /* largest JSON document read */

enum tw_acme_status {
	TW_ACME_ST_UNKNOWN = 0,
	TW_ACME_ST_PENDING,
	TW_ACME_ST_READY,
	TW_ACME_ST_PROCESSING,
	TW_ACME_ST_VALID,
	TW_ACME_ST_INVALID,
	TW_ACME_ST_DEACTIVATED,
	TW_ACME_ST_EXPIRED,
	TW_ACME_ST_REVOKED
};
const char *tw_acme_status_name(enum tw_acme_status s);

struct tw_acme_dir {
	char *new_nonce, *new_account, *new_order, *revoke_cert, *key_change;
	char *renewal_info; /* NULL when the CA has no ARI */
	char *terms;        /* meta.termsOfService, NULL when absent */
	int eab_required;   /* meta.externalAccountRequired */
	char **profiles;    /* meta.profiles names */
	size_t nprofiles;
};

struct tw_acme_problem {
	char *type;   /* "urn:ietf:params:acme:error:badNonce" ...; "" when absent */
	char *detail; /* "" when absent */
	unsigned status;
	/* subproblems are not kept: detail names the first one when the top has none */
};

struct tw_acme_order {
	enum tw_acme_status status;
	char **authz;
	size_t nauthz;
	char *finalize;
	char *certificate;            /* NULL until valid */
	struct tw_acme_problem error; /* type "" when none */
};

struct tw_acme_chal {
	char *type; /* "http-01", ... (any string the CA sends) */
	char *url;
	char *token; /* NULL when absent */
	enum tw_acme_status status;
	struct tw_acme_problem error;
};

struct tw_acme_authz {
	enum tw_acme_status status;
	char *ident; /* identifier value (without "*." for wildcards) */
	int wildcard;
	struct tw_acme_chal *chal;
	size_t nchal;
};

struct tw_acme_renewal_info {
	time_t start, end; /* suggestedWindow */
	char *explanation; /* explanationURL, NULL when absent */
};

int tw_acme_parse_dir(const char *p, size_t len, struct tw_arena *a, struct tw_acme_dir *out,
                      struct tw_err *err);
int tw_acme_parse_problem(const char *p, size_t len, struct tw_arena *a,
                          struct tw_acme_problem *out, struct tw_err *err);
int tw_acme_parse_order(const char *p, size_t len, struct tw_arena *a, struct tw_acme_order *out,
                        struct tw_err *err);
int tw_acme_parse_authz(const char *p, size_t len, struct tw_arena *a, struct tw_acme_authz *out,
                        struct tw_err *err);
int tw_acme_parse_renewal_info(const char *p, size_t len, struct tw_arena *a,
                               struct tw_acme_renewal_info *out, struct tw_err *err);
/* The status member of any object (account, challenge); TW_ACME_ST_UNKNOWN if absent. */
int tw_acme_parse_status(const char *p, size_t len, enum tw_acme_status *out, struct tw_err *err);

/* RFC 3339 date-time ("2026-11-25T20:00:00Z", fractions and offsets
 * accepted) to seconds since the epoch. */
int tw_acme_parse_time(const char *s, size_t len, time_t *out);

#endif
