/* ingress_int.h — internal to the Ingress translator (src/k8s/ingress.c,
 * ingress_backend.c, ingress_tls.c): its limits, its per-call state and the
 * helpers the three files share. */
#ifndef TW_K8S_INGRESS_INT_H
#define TW_K8S_INGRESS_INT_H

#include "k8s/ingress.h"

#include <stddef.h>
#include <stdint.h>

#define ANN_PREFIX "tapwork.dev/"
#define LEGACY_CLASS "kubernetes.io/ingress.class"
#define DEFAULT_CLASS_ANN "ingressclass.kubernetes.io/is-default-class"
#define SERVICE_NAME_LABEL "kubernetes.io/service-name"

/* What one Ingress may create: a bigger object is rejected, not truncated. */
#define MAX_RULES 256     /* spec.rules */
#define MAX_PATHS 1024    /* paths over all rules */
#define MAX_TLS 64        /* spec.tls entries */
#define MAX_TLS_HOSTS 256 /* hosts over all spec.tls entries */
#define MAX_PATH_LEN 2048
#define MAX_SERVERS 1024  /* pods per backend (as the file's servers: list) */
#define MAX_NOTE 1024     /* report reason text per Ingress */

/* String -> size_t, open addressing; keys are borrowed (scratch arena). */
struct smap {
	struct sm_slot {
		const char *k;
		size_t len;
		uint64_t h;
		size_t v;
	} *s;
	size_t cap, n;
};

/* A growable array in malloc memory. */
struct vec {
	void *p;
	size_t n, cap, width;
};

/* ---- per-call state ------------------------------------------------------ */

/* Backend settings from annotations; `set` says some differ from the defaults. */
struct be_opts {
	int set;
	enum tw_balance balance;
	enum tw_hash_src hash_src;
	const char *hash_name;
	unsigned retries;
	uint64_t connect_ms, response_ms;
};

struct ann {
	int ssl_redirect; /* -1 = not given */
	int hsts;         /* -1 = not given */
	uint64_t max_body; /* proxy-body-size; 0 = not given */
	struct be_opts be;
};

enum ing_kind {
	ING_INGRESS = 0,
	ING_ROUTE, /* a Gateway API HTTPRoute (gateway.c): ranked by age with the Ingresses */
	ING_AUX    /* gateway.c's stand-in for a namespace (backends, TLS Secrets): no report */
};

struct ing {
	const struct tw_k8s_obj *o; /* the current object */
	enum ing_kind kind;
	const json_t *eff;          /* what is served: o->obj, or its last good version */
	const char *ns, *name, *created;
	size_t rank; /* 0 = oldest */
	size_t item; /* report index */
	struct ann ann;
	const char *warned_host; /* last host reported as served by the file */
	char note[MAX_NOTE]; /* warnings, "; "-separated */
	size_t note_len;
	unsigned nwarn;
};

enum entry_kind { E_RULE = 0, E_DEFAULT, E_OPTION };

struct entry {
	const char *host; /* lower-case; "" = every host */
	const char *path; /* as written (cfg arena) */
	size_t klen;      /* compared length: Prefix without trailing '/' */
	enum tw_match match;
	enum entry_kind kind;
	size_t ing;  /* index in ings; SIZE_MAX for E_OPTION */
	size_t rank; /* the Ingress's age rank; SIZE_MAX for E_OPTION */
	size_t order;
	const json_t *backend; /* IngressBackend; NULL for E_OPTION */
	size_t file_be;        /* E_OPTION: index of the file backend */
	const struct gw_match *gw; /* an HTTPRoute rule's match (gateway.c); NULL for Ingresses */
	const char *mkey;          /* its request matchers as one string ("" = none): part of the key */
	int lost;              /* 1 = a duplicate key, 2 = the file serves the host */
};

struct tls_entry {
	const char *host;
	const char *secret; /* NULL = none (ACME) */
	size_t ing, rank, order;
};

struct secret_state {
	int ok;
	struct tw_conf_certpair pair;
	char why[300];
};

struct backend_state {
	char *note; /* a warning for every Ingress that routes to it; NULL = none */
	size_t last_ing;
};

struct tr {
	struct tw_config *cfg;
	const struct tw_k8s_view *v;
	const struct tw_conf_k8s_ingress *opt;
	struct tw_k8s_report *rep;
	struct tw_err *err;
	struct tw_arena scratch;
	struct ing *ings;
	size_t nings;
	struct vec entries, tls, backends, bstate, secrets;
	struct smap bmap, smap_secrets, slices;
	size_t *slice_next; /* chain of EndpointSlices by service */
	int slices_built;
	struct gw_state *gw; /* the Gateway API part (gateway.c); NULL when off */
};

/* ---- shared helpers (ingress_backend.c) ---- */

uint64_t tw_k8s_ing_hash(const char *s, size_t n); /* FNV-1a */
struct sm_slot *tw_k8s_ing_smap_find(const struct smap *m, const char *k, size_t len, uint64_t h);
int tw_k8s_ing_smap_get(const struct smap *m, const char *k, size_t *v); /* 0 or TW_ENOENT */
int tw_k8s_ing_smap_put(struct smap *m, const char *k, size_t v);        /* k must outlive m */
void *tw_k8s_ing_vec_push(struct vec *v);                                /* zeroed; NULL = ENOMEM */
char *tw_k8s_ing_sfmt(struct tw_arena *a, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
const char *tw_k8s_ing_jstr(const json_t *o, const char *key);
const char *tw_k8s_ing_jpath_str(const json_t *o, const char *a, const char *b);
/* A path a route may match: absolute, <= MAX_PATH_LEN, no controls, space, '?' or '#'. */
int tw_k8s_ing_path_ok(const char *p);
/* A warning for Ingress g (its report reason; counted in rep->warnings). */
void tw_k8s_ing_note(struct tr *t, struct ing *g, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* The backend a winning entry of Ingress gi routes to (created on first
 * use): *out its index in t->backends. 0 or TW_ENOMEM. (ingress_backend.c) */
int tw_k8s_ing_backend(struct tr *t, size_t gi, const json_t *be, size_t *out);

/* The TLS of site s for host (its entries: run[0..nrun)), and its HSTS and
 * redirect from the owner Ingress's annotations. (ingress_tls.c) */
int tw_k8s_ing_site_tls(struct tr *t, struct tw_conf_site *s, const char *host, size_t owner, const struct entry *run,
                        size_t nrun);

/* Secret ns/name holds a usable certificate and key: 1, else 0 with why
 * set; TW_ENOMEM. (ingress_tls.c) */
int tw_k8s_ing_secret_check(struct tr *t, const char *ns, const char *name, char *why, size_t wl);

/* ---- the Gateway API (gateway.c) ----
 * select: after the Ingresses are chosen, add one ING_ROUTE per HTTPRoute
 * attached to one of our Gateways (and ING_AUX stand-ins) to t->ings.
 * collect: the entries of one HTTPRoute (like collect() of an Ingress),
 * TLS entries of HTTPS listeners included.
 * route: build() gives a winning entry's route its ext (matchers, filters,
 * weighted backends); *be the k8s backend index of route->backend, or
 * SIZE_MAX when the route has none (handler EXT).
 * finish: after build(): backend indexes of weighted routes (pos: k8s
 * backend index -> cfg index) and rep->gw_status.
 * free: always (NULL state ok). */
struct gw_state;
struct gw_match;
int tw_k8s_gw_select(struct tr *t);
int tw_k8s_gw_collect(struct tr *t, size_t gi);
int tw_k8s_gw_route(struct tr *t, const struct entry *e, struct tw_conf_route *r, size_t *be);
int tw_k8s_gw_finish(struct tr *t, const size_t *pos, const struct tw_conf_backend *bes);
void tw_k8s_gw_free(struct tr *t);

#endif
