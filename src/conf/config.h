/* config.h — the typed, validated configuration of `tapwork run`.
 *
 * One struct tw_config is one *generation*: everything it points to lives in
 * its arena and is freed with it (tw_config_free). A reload builds a new
 * generation and swaps a pointer; connections in flight keep a reference to
 * the one they started with (refcount managed by the edge, not here).
 *
 * The loader (src/conf/load.c) fills these structs from YAML through the
 * schema declared once in src/conf/schema.c, which also drives validation
 * errors (file:line:col and key) and docs/config.md. After loading, every
 * cross reference is resolved (route -> backend index) and every value is in
 * its limits; the edge trusts it without re-checking.
 *
 * Contract for the rest of the code: fields may be added; existing ones keep
 * their names and meaning. Durations are milliseconds, sizes are bytes. */
#ifndef TW_CONF_CONFIG_H
#define TW_CONF_CONFIG_H

#include "core/arena.h"
#include "core/err.h"

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

/* A parsed listen/connect address: "127.0.0.1:8080", "[::1]:8080",
 * ":8080" (all IPv4 interfaces), "localhost:8080" (resolved at load). */
struct tw_addr {
	struct sockaddr_storage ss;
	socklen_t len;
	char text[64]; /* as written, normalized "host:port" / "[v6]:port" */
};

/* A CIDR for trusted_proxies. family AF_INET or AF_INET6; addr in network order. */
struct tw_cidr {
	int family;
	unsigned char addr[16];
	unsigned prefix;
};

enum tw_balance { TW_BAL_ROUND_ROBIN = 0, TW_BAL_LEAST_CONN, TW_BAL_RANDOM_TWO, TW_BAL_HASH };
enum tw_hash_src { TW_HASH_CLIENT_IP = 0, TW_HASH_HEADER, TW_HASH_COOKIE, TW_HASH_URI };
enum tw_match { TW_MATCH_PREFIX = 0, TW_MATCH_EXACT };
/* EXT: answered from the route's ext (status or redirect), no backend */
enum tw_handler { TW_HANDLER_PROXY = 0, TW_HANDLER_WELCOME, TW_HANDLER_EXT, TW_HANDLER_STATIC };
/* Request bodies are read (up to limits.body_buffer) before an upstream
 * connection is taken, unless a route turns it off (streaming uploads). */
enum tw_reqbuf { TW_REQBUF_ON = 0, TW_REQBUF_OFF };
/* When every server of a backend is down or ejected, balance over all of them. */
enum tw_panic { TW_PANIC_ON = 0, TW_PANIC_OFF };
enum tw_log_format { TW_LOGFMT_COMBINED = 0, TW_LOGFMT_JSON };

struct tw_conf_server {
	struct tw_addr addr;
	unsigned weight;    /* 1..256, default 1 */
	unsigned max_conns; /* 0 = unlimited; else per worker thread */
	int send_proxy;     /* TW_SEND_PROXY_*: PROXY header first on each connection */
};

enum tw_send_proxy { TW_SEND_PROXY_OFF = 0, TW_SEND_PROXY_V1, TW_SEND_PROXY_V2 };

struct tw_conf_health {
	int enabled;          /* 1 when `health:` is present */
	char *path;           /* default "/healthz" (only when enabled) */
	char *host;           /* Host header sent; NULL = server address */
	uint64_t interval_ms; /* default 2000 */
	uint64_t timeout_ms;  /* default 1000 */
	unsigned rise;        /* default 2 */
	unsigned fall;        /* default 3 */
	unsigned expect_min, expect_max; /* healthy statuses, default 200..399 */
};

struct tw_conf_backend {
	char *name;
	struct tw_conf_server *servers;
	size_t nservers;
	enum tw_balance balance;
	enum tw_hash_src hash_src; /* for TW_BAL_HASH; default client_ip */
	char *hash_name;           /* header or cookie name for hash_src HEADER/COOKIE */
	struct tw_conf_health health;
	unsigned retries;              /* extra tries on other servers, default 2 */
	uint64_t connect_timeout_ms;   /* default 5000 */
	uint64_t response_timeout_ms;  /* time to first response byte, default 60000 */
	uint64_t idle_timeout_ms;      /* pooled upstream keep-alive, default 30000 */
	unsigned max_idle;             /* fixed pool size per server per worker (has_max_idle), 0 = no pooling */
	int has_max_idle;              /* max_idle given: no self-sizing */
	unsigned idle_ceiling;         /* self-sizing pool's upper bound, default 1024 */
	unsigned queue_size;           /* waiters when all servers at max_conns, default 128 */
	uint64_t queue_timeout_ms;     /* default 5000 */
	unsigned passive_fails;        /* consecutive failures that eject a server, default 3; 0 = off */
	uint64_t passive_eject_ms;     /* how long an ejected server stays out, default 10000 */
	enum tw_panic panic;           /* TW_PANIC_ON (0, default): when no server is up, balance over all */
	int dynamic;                   /* servers come and go (Kubernetes endpoints): per-server metric
					* series are folded into one server="*" series per backend */
};

/* compression: (top level, per site, per route; docs/compression.md). A block
 * stands alone: keys it leaves out take their defaults, not the outer block's. */
struct tw_conf_compress {
	int off;                /* `compression: off` */
	int *encodings;         /* enum tw_coding (http/accept_enc.h), our order of preference */
	size_t nencodings;      /* default zstd, br, gzip */
	unsigned level_zstd, level_br, level_gzip; /* default 3, 4, 1 */
	uint64_t min_size;      /* default 512 */
	char **types;           /* lower-case media types; "text/" + "*" = a whole top-level type */
	size_t ntypes;
	unsigned max_streams;   /* compressing streams per worker, default 256 */
	int skip_private;       /* leave alone answers that set cookies or say Cache-Control: private */
};

struct tw_conf_route {
	char *path;         /* starts with '/' */
	size_t path_len;
	enum tw_match match;
	enum tw_handler handler; /* PROXY when backend given, WELCOME for `handler: welcome` */
	char *backend_name;
	size_t backend;          /* index into tw_config.backends (resolved) */
	uint64_t max_body;       /* request body cap for this route, 0 = limits.max_body alone
				  * (set by an Ingress's tapwork.dev/proxy-body-size) */
	/* Request matchers, header edits, redirects, rewrites and weighted
	 * backends (a Gateway API HTTPRoute rule); NULL = a plain route (the
	 * fast path: nothing of it is looked at). See struct tw_route_ext. */
	const struct tw_route_ext *ext;
	struct tw_conf_compress *compress; /* NULL = the site's */
	/* handler: static (docs/static.md) */
	char *root;              /* directory served (for a proxy route: = fallback_static) */
	char *fallback_static;   /* proxy route: try a file under this directory first (try_files) */
	int *precompressed;      /* enum tw_coding: variants looked for beside a file (.zst .br .gz) */
	size_t nprecompressed;
	int immutable;           /* Cache-Control: public, max-age=31536000, immutable */
	char *index;             /* file for a directory, default index.html */
	int allow_hidden;        /* serve names starting with '.', default 0 */
	char *rate_limit_name;   /* rate_limit: a policy of rate_limits, NULL = none */
	size_t rate_limit;       /* 1 + index into tw_config.rate_limits (resolved); 0 = none */
	enum tw_reqbuf request_buffering; /* TW_REQBUF_ON (0, the default) | TW_REQBUF_OFF */
};

/* One name/value pair: an exact header or query-parameter match (header
 * names compared case-insensitively, values and query names exactly), or a
 * header to set/add. */
struct tw_nv {
	char *name;
	char *value;
};

struct tw_hdr_mod {
	struct tw_nv *set; /* replace every field of that name (or add it) */
	size_t nset;
	struct tw_nv *add; /* append a field */
	size_t nadd;
	char **remove;     /* drop every field of that name */
	size_t nremove;
};

enum tw_path_mod { TW_PATH_KEEP = 0, TW_PATH_FULL, TW_PATH_PREFIX };

/* A backend of a weighted route and its share. */
struct tw_wbackend {
	size_t backend; /* index into tw_config.backends */
	char *backend_name;
	unsigned weight; /* > 0 */
};

struct tw_route_ext {
	/* matchers: every one must hold */
	char *method; /* NULL = any */
	struct tw_nv *headers;
	size_t nheaders;
	struct tw_nv *query;
	size_t nquery;
	uint64_t order; /* tie-break among equally specific routes of a site: lower first */
	/* what happens on a match */
	int status;   /* answer this status without an upstream (500 for invalid references); 0 = none */
	int redirect; /* 301/302/303/307/308: answer with a Location; 0 = proxy */
	char *redir_scheme; /* NULL = the request's */
	char *redir_host;   /* NULL = the request's (without port) */
	unsigned redir_port; /* 0 = derived (the scheme's well-known port, else the listener's) */
	enum tw_path_mod path_mod; /* redirect or rewrite of the path */
	char *path_value;
	char *rewrite_host; /* Host sent upstream; NULL = the client's */
	struct tw_hdr_mod req, resp;
	/* weighted backends (route.backend is the first); nwb == 0: the route's backend alone */
	struct tw_wbackend *wb;
	size_t nwb;
	uint32_t *wseq; /* smooth weighted round robin over the weights: indexes into wb */
	size_t nwseq;
	uint64_t *wctr; /* position in wseq, shared by the workers (atomic) */
};

/* Per-site TLS mode. AUTO only in tls_mode (= no `tls:` key); tls_effective
 * is always resolved (see tw_conf_site). */
enum tw_tls_mode { TW_TLS_AUTO = 0, TW_TLS_OFF, TW_TLS_INTERNAL, TW_TLS_ACME, TW_TLS_FILES };

struct tw_conf_certpair {
	char *cert; /* PEM chain (leaf first), path as written */
	char *key;  /* PEM private key, path as written */
	/* From memory instead (Kubernetes Secrets, src/k8s/ingress.c): when
	 * cert_pem is set the pair is loaded from these bytes, cert and key are
	 * only labels for messages ("secret:NS/NAME"), and no file is watched. */
	const char *cert_pem;
	size_t cert_pem_len;
	const char *key_pem;
	size_t key_pem_len;
};

struct tw_conf_site {
	char **hosts; /* lower-case; "*" = default site; "*.example.com" = one-label wildcard */
	size_t nhosts;
	struct tw_conf_route *routes;
	size_t nroutes;
	/* tls: */
	enum tw_tls_mode tls_mode;      /* as written; AUTO when the key is absent */
	struct tw_conf_certpair *certs; /* TW_TLS_FILES: 1..8 pairs (checked readable at load) */
	size_t ncerts;
	/* Resolved at load: never AUTO. Absent key + listen.https: INTERNAL when
	 * every host is internal (localhost, *.localhost, *.test, *.internal, an
	 * IP address, "*"), else ACME; absent key without listen.https: OFF. */
	enum tw_tls_mode tls_effective;
	int tls_public; /* some host is a public name (decides HSTS) */
	int hsts;       /* send Strict-Transport-Security on this site's HTTPS answers */
	int no_redirect; /* never answer 308 to https on HTTP for this site (Ingress
	                    annotation tapwork.dev/ssl-redirect: "false"); default 0 */
	int wild_any_depth; /* a "*.suffix" host matches any number of labels, not one
	                       (Gateway API hostnames); a one-label match still wins */
	struct tw_conf_compress *compress; /* NULL = the top level's */
};

struct tw_conf_limits {
	size_t max_header_bytes; /* request line + headers, default 32 KiB -> 431 */
	unsigned max_headers;    /* default 100 -> 431 */
	size_t max_uri;          /* default 8 KiB -> 414 */
	uint64_t max_body;       /* 0 = unlimited -> 413 */
	size_t body_buffer;      /* body bytes read before an upstream is taken, default 16 KiB */
	uint64_t min_body_rate;  /* bytes/s a body must average after body_rate_grace, default 500; 0 = off */
};

struct tw_conf_timeouts {
	uint64_t client_header_ms; /* default 10000 -> 408 */
	uint64_t client_body_ms;   /* idle between body reads, default 60000 -> 408 */
	uint64_t body_rate_grace_ms; /* a body's first part free of min_body_rate, default 20000 */
	uint64_t keepalive_ms;     /* idle client keep-alive, default 75000 */
	uint64_t drain_ms;         /* SIGTERM: how long in-flight may finish, default 30000 */
};

struct tw_conf_http2 {
	int h2c;                   /* accept cleartext HTTP/2 with prior knowledge, default 1 */
	unsigned max_concurrent_streams; /* SETTINGS_MAX_CONCURRENT_STREAMS, default 128 */
	uint64_t idle_ms;          /* session without streams closes after this, default 120 s */
	unsigned max_resets;       /* client RST_STREAMs per 10 s before GOAWAY, default 200 */
	unsigned max_control;      /* client SETTINGS + PING frames per 10 s before GOAWAY, default 500 */
	size_t max_header_block;   /* compressed header block (HEADERS + CONTINUATION), default 64 KiB */
};

struct tw_conf_log {
	int level;                /* TW_LOG_* from core/log.h, default info */
	char *access;             /* "stdout" (default), "off", or a file path */
	enum tw_log_format format; /* combined (default) | json */
	unsigned rate;            /* per-event error-log lines per second per kind, default 10; 0 = all */
};

enum tw_tls_profile { TW_TLS_PROFILE_INTERMEDIATE = 0, TW_TLS_PROFILE_MODERN };

struct tw_conf_hsts {
	uint64_t max_age_s;     /* default 1y = 31536000; 0 = send max-age=0 */
	int include_subdomains; /* default 0 */
	int preload;            /* default 0 */
};

struct tw_conf_tls {
	enum tw_tls_profile profile;     /* intermediate (TLS 1.2+1.3) | modern (1.3 only) */
	char *default_host;              /* certificate for no/unknown SNI; NULL = automatic */
	uint64_t ticket_key_rotation_ms; /* default 12h */
	struct tw_conf_hsts hsts;
	int hsts_internal; /* HSTS also for internal-only sites, default 0 */
	int redirect_http; /* HTTP listener answers 308 to https for TLS sites, default 1 */
	char *hsts_header; /* resolved: the Strict-Transport-Security value */
};

/* acme: the ACME client (src/acme/, docs/acme.md). Certificates for names whose
 * site says `tls: acme` are obtained and renewed from `directory`. */
struct tw_conf_acme {
	char *email;             /* contact; NULL = none */
	char *directory;         /* default Let's Encrypt production */
	char **ca_roots;         /* extra PEM roots trusted for the directory's HTTPS */
	size_t nca_roots;
	char **challenges;       /* "http-01" "tls-alpn-01" "dns-01", in order of preference */
	size_t nchallenges;
	char *dns_hook;          /* executable: HOOK set|clear RECORD VALUE */
	int has_eab;
	char *eab_kid;           /* External Account Binding key id */
	char *eab_hmac_key;      /* base64url HMAC key (a secret: never logged) */
	char *profile;           /* ACME profile name; NULL = CA default */
	uint64_t retry_min_ms;   /* first retry delay after a failure (doubles), default 1m; 0 = 1m */
	char *store;             /* NULL = state_dir; "s3:http://HOST/BUCKET/PREFIX" or a directory */
};

/* backup: (docs/backup.md "Jobs"). A source is a path, a PostgreSQL URL
 * (logical: pg_dump) or a PostgreSQL data directory (physical, with WAL
 * archiving: docs/backup.md "Point-in-time recovery"). */
struct tw_conf_pg_data {
	char *dir;                   /* the data directory, absolute */
	char *postgres;              /* libpq URL or conninfo; NULL = libpq defaults */
	uint64_t archive_timeout_ms; /* how long pg_backup_stop may wait for the archiver */
};

struct tw_conf_backup_source {
	char *path;     /* directory (or file) to back up */
	char *postgres; /* postgresql://USER@HOST:PORT/DB */
	int all;        /* postgres: globals and every database */
	int has_pg_data;
	struct tw_conf_pg_data pg_data; /* physical: the job's only source */
	char *pre;      /* hook run (sh -c) before the backup; failure aborts the run */
	char *post;     /* hook run after the backup when pre succeeded (also on failure) */
	char **exclude; /* path sources: globs */
	size_t nexclude;
};

struct tw_conf_retention {
	unsigned keep_last, keep_hourly, keep_daily, keep_weekly, keep_monthly, keep_yearly;
};

struct tw_conf_backup_check {
	unsigned read_data_percent; /* 0 = structure only */
	char *schedule;             /* default "weekly" */
};

struct tw_conf_backup_job {
	char *name;
	char *repository;    /* resolved: the job's or backup.repository */
	char *password_file; /* resolved likewise; NULL = $TAPWORK_PASSWORD(_FILE) */
	char *schedule;      /* validated schedule text; NULL = on demand only */
	uint64_t jitter_ms;  /* random delay added to each scheduled run, default 0 */
	struct tw_conf_backup_source *sources;
	size_t nsources;
	char **tags;
	size_t ntags;
	int has_retention;
	struct tw_conf_retention retention;
	char *prune;         /* schedule for prune; NULL = never */
	int has_check;
	struct tw_conf_backup_check check;
	char *pg_bin;        /* directory of pg_dump & co; NULL = PATH, then PG 15's */
	uint64_t hook_timeout_ms; /* default 10m */
};

struct tw_conf_backup {
	char *repository;
	char *password_file;
	int utc; /* schedules in UTC (default: local time) */
	struct tw_conf_backup_job *jobs;
	size_t njobs;
};

/* kubernetes: (issue 11, docs/kubernetes.md). tapwork watches the API server
 * and serves the Ingress objects of its class beside the file's sites. */
struct tw_conf_k8s_ingress {
	char *class_name;        /* IngressClass name, default "tapwork" */
	char *controller;        /* IngressClass spec.controller, default "tapwork.dev/ingress-controller" */
	int watch_without_class; /* serve Ingresses without any class, default 0 */
	char **namespaces;       /* empty = all */
	size_t nnamespaces;
	char *publish_service;   /* "ns/name" whose load-balancer address goes to status; NULL = none */
	char **publish_address;  /* or fixed IPs / host names */
	size_t npublish_address;
	char *default_backend;   /* a backend of the file config for requests no Ingress matches; NULL = 404 */
	int external_name;       /* allow ExternalName Services, default 0 */
};

struct tw_conf_k8s_gateway {
	char *controller_name; /* GatewayClass spec.controllerName that is ours */
};

struct tw_conf_k8s {
	char *kubeconfig;        /* NULL = $KUBECONFIG, else in-cluster */
	char *context;           /* kubeconfig context; NULL = current-context */
	int has_ingress;
	struct tw_conf_k8s_ingress ingress;
	int has_gateway;
	struct tw_conf_k8s_gateway gateway; /* Gateway API (gateway.networking.k8s.io) */
	char *lease_name;        /* leader-election Lease, default "tapwork-leader" */
	char *lease_namespace;   /* default: the pod's namespace (in cluster), else "default" */
	uint64_t lease_duration_ms; /* default 15s */
	char *identity;          /* this replica's name; default $POD_NAME, else the host name */
	/* replicas_from: tapwork's own Service, whose ready endpoints are N for
	 * rate limits with `cluster: divide` (docs/rate-limits.md) */
	char *self_service;      /* NULL = not watched: each policy's `replicas` */
	char *self_namespace;    /* default: the pod's namespace (in cluster), else "default" */
};

/* proxy_protocol: (docs/proxy-protocol.md). Peers in `from` must open each
 * connection with a PROXY v1/v2 header (read before TLS); its client address
 * is then the connection's client address everywhere. */
enum tw_pp_others { TW_PP_OTHERS_PLAIN = 0, TW_PP_OTHERS_REJECT };
enum tw_pp_listener { TW_PP_LISTEN_HTTP = 0, TW_PP_LISTEN_HTTPS };
struct tw_conf_proxy_protocol {
	struct tw_cidr *from;  /* 1..1024 ranges */
	size_t nfrom;
	uint64_t timeout_ms;   /* the whole header within this, default 3s */
	int others;            /* TW_PP_OTHERS_*: peers outside `from`, default plain */
	int *listeners;        /* TW_PP_LISTEN_* as written; none = both */
	size_t nlisteners;
	int on_http, on_https; /* resolved from listeners */
};

/* rate_limits: (docs/rate-limits.md). GCRA per key, one table per policy. */
enum tw_rl_key_kind { TW_RL_KEY_CLIENT_IP = 0, TW_RL_KEY_HEADER, TW_RL_KEY_COOKIE };
enum tw_rl_missing { TW_RL_MISSING_CLIENT_IP = 0, TW_RL_MISSING_ALLOW, TW_RL_MISSING_DENY };
enum tw_rl_on_full { TW_RL_FULL_ALLOW = 0, TW_RL_FULL_DENY };
enum tw_rl_cluster { TW_RL_CLUSTER_LOCAL = 0, TW_RL_CLUSTER_DIVIDE };
enum tw_rl_headers { TW_RL_HEADERS_LIMITED = 0, TW_RL_HEADERS_ALWAYS };
struct tw_rl_keyspec {
	int kind;   /* TW_RL_KEY_* */
	char *name; /* header or cookie name */
};
struct tw_rl_rate {
	uint64_t count;     /* requests ... */
	uint64_t period_ms; /* ... per this long */
};
struct tw_conf_rate_limit {
	char *name;
	struct tw_rl_keyspec key;
	struct tw_rl_rate rate;
	unsigned burst;       /* requests that may come at once; default = rate.count */
	int has_burst;
	int missing;          /* TW_RL_MISSING_*: header/cookie absent, default client_ip */
	unsigned ipv6_prefix; /* client_ip of IPv6 clients grouped by this prefix, default 64 */
	uint64_t memory;      /* table size in bytes (16 per key), default 16 MiB */
	int on_full;          /* TW_RL_FULL_*: no room for a new key, default allow */
	struct tw_cidr *exempt; /* clients never limited */
	size_t nexempt;
	int cluster;          /* TW_RL_CLUSTER_* */
	unsigned replicas;    /* divide: rate and burst split N ways, default 1 */
	int per_route;        /* each route using the policy counts apart, default 0 */
	int headers;          /* TW_RL_HEADERS_*: RateLimit fields on 429s only, or on admitted answers too */
};

struct tw_config {
	struct tw_arena arena; /* owns everything below */
	char *source;          /* file name, or "<embedded>" */

	/* listen: */
	int has_http;
	struct tw_addr listen_http;
	int has_https;
	struct tw_addr listen_https;

	char *state_dir;        /* default "/var/lib/tapwork": local CA, issued certificates */
	struct tw_conf_tls tls; /* top-level tls: */

	unsigned workers; /* resolved: `auto` = number of online CPUs; 1..256 */

	/* admin: */
	int has_admin;
	struct tw_addr admin_listen;

	struct tw_conf_site *sites;
	size_t nsites;
	size_t default_site; /* index of the "*" site, or SIZE_MAX when none */

	struct tw_conf_backend *backends;
	size_t nbackends;

	struct tw_conf_limits limits;
	struct tw_conf_timeouts timeouts;
	struct tw_conf_log log;
	struct tw_conf_http2 http2;

	struct tw_cidr *trusted_proxies;
	size_t ntrusted_proxies;
	int request_id_trust; /* keep an incoming X-Request-Id from a trusted proxy, default 1 */
	char *via_name;       /* name in `Via: 1.1 NAME`, default "tapwork" */

	int has_acme; /* 1 when `acme:` is present */
	struct tw_conf_acme acme;

	int has_backup;
	struct tw_conf_backup backup; /* backup jobs run by `tapwork run` */

	int has_k8s; /* 1 when `kubernetes:` is present */
	struct tw_conf_k8s k8s;

	struct tw_conf_compress *compress; /* NULL = no compression */

	struct tw_conf_rate_limit *rate_limits;
	size_t nrate_limits;

	int has_proxy_protocol; /* 1 when `proxy_protocol:` is present */
	struct tw_conf_proxy_protocol proxy_protocol;

	/* Warnings found while loading ("FILE:LINE:COL: KEY: text", one per
	 * line), NULL when none: `tapwork validate` prints them, `run` logs them. */
	char *warnings;
};

/* Load and validate. On failure returns a negative TW_E* code, *out is NULL,
 * and err->msg reads "FILE:LINE:COL: KEY: what is wrong[ (did you mean X?)]". */
int tw_config_load_file(const char *path, struct tw_config **out, struct tw_err *err);
/* Same from memory; `name` is used in error messages. */
int tw_config_load_string(const char *name, const char *yaml, size_t len, struct tw_config **out,
			  struct tw_err *err);
/* The embedded default (welcome page on 127.0.0.1:8080). Never fails but on ENOMEM. */
int tw_config_load_default(struct tw_config **out, struct tw_err *err);
void tw_config_free(struct tw_config *cfg); /* NULL ok */

/* The embedded default config text (also shown by `tapwork validate --print-default`). */
extern const char tw_config_default_yaml[];

/* Find a backend by name; NULL when absent. */
const struct tw_conf_backend *tw_config_backend(const struct tw_config *cfg, const char *name);

/* Parse helpers shared with other subsystems (CLI flags, ACME, backup jobs). */
int tw_addr_parse(const char *text, struct tw_addr *out, struct tw_err *err);
int tw_duration_parse(const char *text, uint64_t *ms, struct tw_err *err); /* "250ms" "2s" "5m" "1h" "1d" */
int tw_size_parse(const char *text, uint64_t *bytes, struct tw_err *err);  /* "16k" "1MiB" "10GB" "512" */
int tw_cidr_parse(const char *text, struct tw_cidr *out, struct tw_err *err);
int tw_cidr_contains(const struct tw_cidr *c, const struct sockaddr *sa);

/* Host names in addresses are resolved with getaddrinfo while loading
 * (default on). The fuzzer turns it off: names then fail to load. */
void tw_config_set_dns(int enabled);

#endif
