/* edge.h — types shared by the edge modules (internal to src/edge).
 *
 * Ownership, in one paragraph: struct tw_edge is the process (main thread:
 * signals, reloads, admin listener, health checks). A struct tw_gen is one
 * config generation plus its runtime (router, shared per-server health
 * flags, metric slots, per-worker balancer state); it is reference counted:
 * the edge holds one reference for the current generation, each worker one
 * for the generation it accepts new requests on, each request one for the
 * generation it started on. A struct tw_worker is one thread with its own
 * loop, listener (SO_REUSEPORT), buffer pool, upstream pools and metrics
 * shard; nothing it owns is touched by another thread. Client connections
 * (struct tw_conn) and upstream connections (struct tw_upconn) belong to one
 * worker. */
#ifndef TW_EDGE_EDGE_H
#define TW_EDGE_EDGE_H

#include "acme/responder.h"
#include "conf/config.h"
#include "core/dbuf.h"
#include "core/loop.h"
#include "edge/balance.h"
#include "edge/compress.h"
#include "edge/static.h"
#include "edge/iobuf.h"
#include "edge/metrics.h"
#include "http/h1.h"
#include "http/route.h"

#include <openssl/ssl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <sys/types.h>

struct tw_edge;
struct tw_edge_alpn;
struct tw_tls_store;
struct tw_worker;
struct tw_conn;
struct tw_upconn;
struct tw_h2_session;
struct tw_k8s_controller;
struct tw_ppwait;
struct tw_rl_table;

/* ---- generation ---- */

struct tw_srv_shared {
	atomic_int health_up;   /* verdict of active checks (1 when none) */
	_Atomic uint64_t eject_until; /* tw_clock_ms deadline of a passive ejection, 0 = none */
	uint32_t m_connect_err; /* metric slot */
	uint32_t m_up_open, m_up_reuse; /* tapwork_upstream_connections_total{how=opened|reused} */
};

struct tw_be_shared {
	struct tw_srv_shared *srv; /* [nservers] */
	atomic_int *up;            /* [nservers] what balancers read: health_up && !ejected */
	atomic_int panic;          /* no server was up at the last pick: balancing over all */
	uint32_t m_hist;           /* request duration histogram */
};

struct tw_pool; /* per-worker idle upstream connections for one address */

struct tw_be_worker {
	struct tw_lb lb;
	unsigned *fails;           /* consecutive failures per server (passive ejection) */
	struct tw_pool **pools;    /* per server, resolved lazily */
	struct tw_conn *q_head, *q_tail; /* requests waiting for a connection slot */
	unsigned q_len;
};

/* requests_total slots of one site: entry 0 is backend "-" (no backend:
 * redirects, 404s, errors before routing), then one per backend that a route
 * of the site uses. A site has a few, so a scan beats a (sites x backends)
 * table, which a Kubernetes cluster's thousands of sites would make huge. */
struct tw_req_slots {
	size_t backend; /* index into cfg->backends; nbackends for "-" */
	uint32_t slot[5]; /* 1xx .. 5xx */
};
struct tw_site_req {
	struct tw_req_slots *e;
	size_t n;
};

struct tw_gen_worker {
	struct tw_be_worker *be; /* [nbackends] */
};

/* A routing table and the config it was built from (its routes live in that
 * config's arena). Generations whose sites and routes are the same share one
 * (a Kubernetes endpoint change does not rebuild it); the owner config lives
 * as long as a generation uses the table. */
struct tw_router_ref {
	struct tw_router *router;
	struct tw_config *owner;
	atomic_int refs;
};

struct tw_gen {
	struct tw_config *cfg;
	struct tw_router *router; /* = rref->router */
	struct tw_router_ref *rref;
	atomic_int refs;
	uint64_t id;
	struct tw_be_shared *be;   /* [nbackends] */
	struct tw_gen_worker *wk;  /* [nworkers] */
	unsigned nworkers;
	struct tw_site_req *site_req; /* [nsites+1] requests_total slots; the last = no site */
	char **site_label;         /* [nsites+1] first host of site, "-" last */
	struct tw_tls_store *tls;  /* certificates + SSL_CTX; NULL without listen.https */
	struct tw_edge *edge;
	struct tw_rl_table **rl;   /* [cfg->nrate_limits] rate limit tables (ratelimit.c), kept across reloads */
};

struct tw_gen *tw_gen_acquire(struct tw_gen *g);
void tw_gen_release(struct tw_gen *g); /* frees at zero; NULL ok */
int tw_gen_build(struct tw_edge *e, struct tw_config *cfg, const struct tw_gen *prev, struct tw_gen **out,
		 struct tw_err *err);
static inline uint32_t tw_gen_req_slot(const struct tw_gen *g, size_t site, size_t backend, unsigned status)
{
	unsigned cls = status >= 100 && status < 600 ? status / 100 - 1 : 4;
	const struct tw_site_req *sr = &g->site_req[site < g->cfg->nsites ? site : g->cfg->nsites];
	for (size_t i = 1; i < sr->n; i++)
		if (sr->e[i].backend == backend)
			return sr->e[i].slot[cls];
	return sr->e[0].slot[cls];
}

/* ---- worker ---- */

/* A connection accepted in this turn of the loop, served once the turn's
 * other events are handled (worker.c: accept_on, serve_accepted). */
#define TW_ACCEPT_BATCH 64
struct tw_accepted {
	int fd;
	socklen_t len;
	const struct tw_front_ops *fops;
	struct sockaddr_storage ss;
};

struct tw_worker {
	unsigned idx;
	pthread_t thread;
	struct tw_loop *loop;
	struct tw_edge *edge;
	struct tw_io lio; /* listener */
	struct tw_addr laddr;
	int listening;
	struct tw_io lio_tls; /* HTTPS listener */
	struct tw_addr laddr_tls;
	int listening_tls;
	struct tw_gen *gen;
	_Atomic uint64_t gen_id; /* id of w->gen, for the main thread's reload handshake */
	struct tw_iobuf_pool bufs;
	/* upstream answers only (u->in): the buffer an answer takes is one an
	 * answer just left, still warm in the CPU's cache */
	struct tw_iobuf_pool upbufs;
	struct tw_metrics_shard *m;
	struct tw_conn *conns; /* all client connections (for drain) */
	size_t nconns;
	struct tw_pool *pools; /* list of upstream pools by address */
	struct tw_dbuf alog;
	int alog_fd;
	struct tw_req *free_reqs; /* recycled request objects (mmap'd) */
	size_t nfree_reqs;
	size_t inflight;          /* requests in progress on this worker */
	uint64_t started;         /* requests begun on this worker (trim: was the last second idle?) */
	uint64_t trim_started;    /* `started` at the previous trim tick */
	unsigned trim_ticks;
	struct tw_timer trim_timer;
	uint64_t rng[2];
	int draining;
	int exited;
	struct tw_timer drain_timer;
	time_t log_sec;
	char log_time[40];
	struct tw_ppwait *ppwait; /* connections waiting for their PROXY header (ppin.c) */
	size_t nppwait;
	struct tw_accepted *acc; /* accepted, not served yet: TW_ACCEPT_BATCH of them */
	unsigned nacc;
	uint8_t acc_more; /* a batch filled: more may wait in a listener's queue */
};

/* ---- edge (process) ---- */

struct tw_edge {
	const char *config_path; /* NULL = embedded default */
	const char *config_text; /* generated config (`tapwork proxy`), else NULL */
	_Atomic(struct tw_gen *) current;
	struct tw_gen *gen; /* main thread's reference to current */
	struct tw_worker *workers;
	unsigned nworkers;
	struct tw_loop *loop; /* main thread */
	struct tw_metrics_shard *m;
	atomic_int draining;
	atomic_uint workers_exited;
	uint64_t gen_seq;
	int alog_fd;     /* shared access log fd (-1 off) */
	uint32_t m_conns;          /* tapwork_connections_active */
	uint32_t m_reload_ok, m_reload_err;
	uint32_t m_router_builds;  /* tapwork_router_builds_total */
	uint32_t m_connect_err_total;
	uint32_t m_slow_bodies;    /* tapwork_slow_bodies_total */
	struct tw_health *health;
	struct tw_admin *admin;
	/* acme_glue.c */
	struct tw_acme_mgr *acme;
	struct tw_acme_store *acme_store;
	struct tw_acme_store *acme_mirror; /* state_dir copy when acme.store is elsewhere */
	struct tw_acme_http01 *acme_http01;
	struct tw_acme_responder acme_responder;
	_Atomic(struct tw_edge_alpn *) acme_alpn; /* pending TLS-ALPN-01 certificates */
	atomic_int acme_changed;
	/* kubernetes: (cmd_run.c) */
	struct tw_k8s_controller *k8s; /* NULL without a kubernetes: section */
	atomic_int k8s_waiting;        /* 1 until the first generation with the cluster's state: /readyz 503 */
};

/* ---- connections ---- */

struct tw_flow {
	int mode;            /* FLOW_* */
	uint64_t remaining;  /* FLOW_LENGTH */
	struct tw_h1_chunked ch;
	uint32_t fwd;        /* classified bytes at the buffer's start, ready to forward */
	int dechunk;         /* FLOW_CHUNKED: forward the payload alone (an HTTP/1.0 client) */
	int done;
	uint64_t total;      /* bytes forwarded */
};

enum { FLOW_NONE = 0, FLOW_LENGTH, FLOW_CHUNKED, FLOW_UNTIL_CLOSE };

struct tw_req {
	struct tw_gen *gen;
	struct tw_h1_parser p;
	struct tw_h1_msg msg; /* the request head, then reused for the response head */
	const struct tw_conf_route *route;
	size_t site, backend;
	size_t server;
	size_t tried[8];
	size_t ntried;
	int have_server;
	char rid[40];
	char method[16];
	char uri[1024];
	char referer[256];
	char ua[256];
	char host[256];
	int version_minor;
	int is_head, idempotent, want_upgrade, expect_continue, sent_continue;
	int status;
	int resp_started; /* a response byte reached the client (or was parsed) */
	int resp_head_done;
	int resp_seen;    /* an upstream byte arrived for this try */
	int req_sent_any; /* a request body byte reached the upstream */
	int up_reusable;  /* upstream may be pooled after this response */
	int tunnel;       /* 101 accepted: tunnel after the head */
	struct tw_iobuf *hdr; /* rewritten request head (kept for retries) */
	uint32_t hdr_sent;
	uint64_t bytes_out;
	int client_close; /* the client asked for the connection to close after this request */
	uint64_t t_start_us;
	uint64_t body_start_ms; /* tw_clock_ms when the body began (min_body_rate) */
	struct tw_flow reqbody, respbody;
	struct tw_cz_req czq; /* compression: what the request asked (compress.c) */
	struct tw_cz *cz;     /* compressing stream of the answer, NULL = none */
	struct tw_static_body sf; /* handler: static, the file being sent (static.c) */
	/* rate limit `headers: always`: the admitted request's RateLimit fields
	 * (rl_req.c); 0 = none */
	uint32_t rl_policy; /* 1 + index into cfg->rate_limits */
	uint32_t rl_remaining, rl_reset_s;
	struct tw_req *next_free;
};

enum tw_conn_state {
	C_HEAD = 0, /* reading a request head */
	C_BODY,     /* reading the request body before an upstream is taken (request_buffering) */
	C_WAIT,     /* waiting for an upstream connection (connecting or queued) */
	C_PROXY,    /* request/response streaming */
	C_TUNNEL,   /* after 101: bytes both ways */
	C_LOCAL,    /* writing a response made by tapwork */
	C_H2,       /* an HTTP/2 session: streams are virtual connections (h2.c) */
	C_CLOSED
};

/* The client side's transport: TCP, TLS, or an HTTP/2 stream. recv/send
 * return bytes moved (>0), 0 when they would block (and clear *ready) or at
 * EOF (and set *eof), -1 on a hard error. */
struct tw_front_ops {
	const char *name;
	int (*open)(struct tw_conn *c); /* optional: after accept (TLS: SSL_new) */
	ssize_t (*recv)(struct tw_conn *c, char *p, size_t len, uint8_t *ready, uint8_t *eof);
	ssize_t (*send)(struct tw_conn *c, const char *a, size_t alen, const char *b, size_t blen, uint8_t *ready);
	void (*shutdown_wr)(struct tw_conn *c);
	void (*close)(struct tw_conn *c); /* release the transport */
	/* optional: take the proxied response head as parsed fields (r->msg over
	 * buf) instead of HTTP/1.1 text through send(); the body then follows
	 * through send() framed as the upstream framed it: flow is FLOW_NONE,
	 * FLOW_LENGTH (len bytes), FLOW_CHUNKED or FLOW_UNTIL_CLOSE. 0 or -1. */
	int (*resp_head)(struct tw_conn *c, struct tw_req *r, const char *buf, int flow, uint64_t len);
	int oneshot;                      /* one request per connection (HTTP/2 streams) */
	int secure;                       /* requests arrived over TLS */
};

extern const struct tw_front_ops tw_front_plain, tw_front_tls;
int tw_front_tls_alpn_is(const struct tw_conn *c, const char *proto);
/* A TLS client that asked to close, and whose bytes were all read (the socket
 * drained, nothing pending in OpenSSL): sends close_notify and returns 1, so
 * the caller may close at once (a FIN, no reset); 0 otherwise. */
int tw_front_tls_quiet_close(struct tw_conn *c);
/* Send what TLS connections of this thread hold back to coalesce (see
 * tls_front.c): the worker calls it before its loop waits. */
void tw_front_tls_flush(void);

struct tw_conn {
	struct tw_io io;
	struct tw_worker *w;
	const struct tw_front_ops *fops;
	void *fctx; /* the front's state (SSL *, HTTP/2 stream) */
	struct tw_conn *prev, *next; /* worker's list */
	struct tw_conn *q_next;      /* backend queue */
	enum tw_conn_state st;
	uint8_t rd_ready, wr_ready, rd_eof, close_after, queued, in_run, dead, lingering, rdhup;
	uint8_t quiet_close; /* the client asked to close and its request was read whole */
	uint8_t unpolled;    /* plain TCP: not in epoll yet (registered once it must wait, see conn_poll) */
	struct tw_timer timer;
	struct sockaddr_storage peer;
	socklen_t peerlen;
	char peer_ip[48];
	uint64_t id;
	struct tw_iobuf *in, *out;
	struct tw_req *req;
	struct tw_upconn *up;
	uint32_t nreq;
	uint8_t up_wr_shut, cl_wr_shut;
	uint8_t virt; /* an HTTP/2 stream (no socket, not counted in connections_active) */
	struct tw_h2_session *h2; /* C_H2: the HTTP/2 session (h2.c) */
};

enum tw_up_state { U_CONNECTING = 0, U_BUSY, U_IDLE };

/* Idle connections to one address, per worker. Self-sizing: busy + nidle
 * stays within peak, the decaying maximum of busy (see upstream.c). */
struct tw_pool {
	struct tw_pool *next;
	struct tw_worker *w;
	struct tw_addr addr;
	struct tw_upconn *idle, *idle_tail; /* LIFO: head warmest, tail coldest */
	unsigned nidle;
	unsigned busy;  /* handed out: connecting or carrying a request */
	unsigned peak;  /* what the pool is sized to: max of busy, decaying */
	unsigned win;   /* max of busy since the last decay tick */
	struct tw_timer tick; /* decay, armed while the pool has connections */
};

struct tw_upconn {
	struct tw_io io;
	struct tw_worker *w;
	struct tw_pool *pool;
	struct tw_upconn *next_idle, *prev_idle;
	struct tw_conn *c;
	enum tw_up_state st;
	uint8_t rd_ready, wr_ready, rd_eof, reused, failed, wr_shut, dead, rdhup;
	uint8_t ka_last; /* the server's Keep-Alive: max=0: no request may follow */
	int err; /* errno of a failure */
	struct tw_iobuf *in, *out;
	struct tw_timer timer;
	uint64_t idle_ms;    /* pooled: close after this long idle */
	unsigned max_idle;   /* fixed pool size (max_idle given), else UINT_MAX: self-sizing */
	unsigned ceiling;    /* self-sizing: idle_ceiling */
	char *pp_hdr;     /* send_proxy: the PROXY header, sent once connected (ppout.c) */
	uint16_t pp_len;
	uint8_t pp_private; /* carries one client's PROXY header: never pooled */
};

/* proxy.c */
void tw_conn_accept(struct tw_worker *w, int fd, const struct sockaddr *sa, socklen_t len,
		    const struct tw_front_ops *fops);
void tw_conn_run(struct tw_conn *c);
/* A connection without a socket (an HTTP/2 stream of parent): state C_HEAD,
 * rd_ready/wr_ready set; the caller runs it. NULL on ENOMEM. */
struct tw_conn *tw_conn_new_virtual(struct tw_worker *w, struct tw_conn *parent, const struct tw_front_ops *ops,
				    void *fctx);
void tw_conn_close(struct tw_conn *c); /* close now (safe on a closed one) */
/* Make c an HTTP/2 session (h2c preface seen, or TLS ALPN chose "h2"): drops
 * a request object in progress, keeps c->in as session input; closes c on
 * failure. Run c afterwards. */
void tw_conn_start_h2(struct tw_conn *c);
void tw_conn_drain(struct tw_worker *w);
void tw_conn_dequeue_backend(struct tw_worker *w, struct tw_gen *g, size_t backend);
void tw_req_pool_trim(struct tw_worker *w, size_t keep);

/* upstream.c */
int tw_up_get(struct tw_worker *w, struct tw_gen *g, size_t backend, size_t server, struct tw_conn *c,
	      struct tw_upconn **out);
void tw_up_release(struct tw_upconn *u, int reusable);
/* The upstream's keep-alive limits from a response head (Keep-Alive:
 * timeout=N, max=M): the connection is not kept idle longer than the server
 * keeps it, nor past its last allowed request. */
void tw_up_note_keepalive(struct tw_upconn *u, const char *buf, const struct tw_h1_msg *m);
void tw_up_pools_free(struct tw_worker *w);

/* rewrite.c */
int tw_rewrite_request(struct tw_conn *c, struct tw_req *r, const char *buf, struct tw_iobuf *out);
int tw_rewrite_response(struct tw_conn *c, struct tw_req *r, const char *buf, struct tw_iobuf *out,
			int close_client, int chunked_out);
/* The fields of r's upstream response head (parsed in r->msg over buf) that the
 * client gets, framing aside: the upstream's minus hop-by-hop ones, those named
 * in Connection and X-Request-Id, then Strict-Transport-Security when due, Via
 * (the upstream's joined with ours) and X-Request-Id. fn gets each in turn; a
 * nonzero return stops the walk and is returned. */
typedef int (*tw_field_fn)(void *ctx, const char *name, size_t nlen, const char *value, size_t vlen);
int tw_response_fields(struct tw_conn *c, struct tw_req *r, const char *buf, tw_field_fn fn, void *ctx);
void tw_make_request_id(struct tw_worker *w, char out[33]);

/* local.c */
void tw_local_error(struct tw_conn *c, int status, const char *why);
void tw_local_welcome(struct tw_conn *c);
void tw_local_redirect_https(struct tw_conn *c);
/* The redirect of a route with ext->redirect: Location from the route's
 * scheme/host/port/path settings and the request's path and query. */
void tw_local_redirect_route(struct tw_conn *c, const struct tw_conf_route *rt, const char *path, size_t plen,
			     const char *query, size_t qlen);
/* The path sent upstream or redirected to under a route's path modifier
 * (ReplaceFullPath / ReplacePrefixMatch) into out (NUL-terminated); its
 * length, or 0 when it does not fit. */
size_t tw_route_path(const struct tw_conf_route *rt, const char *path, size_t plen, char *out, size_t cap);
/* A short text answer with extra head lines ("Name: value\r\n"...). */
void tw_local_status(struct tw_conn *c, int status, const char *extra);
/* Strict-Transport-Security value for this request's answer, or NULL. */
const char *tw_req_hsts(const struct tw_conn *c, const struct tw_req *r);

/* accesslog.c */
/* dur_us: the request's duration, measured once by the caller (also in metrics). */
void tw_alog_request(struct tw_worker *w, struct tw_conn *c, struct tw_req *r, uint64_t dur_us);
void tw_alog_flush(struct tw_worker *w);

/* health.c */
int tw_health_start(struct tw_edge *e, struct tw_gen *g);
void tw_health_stop(struct tw_edge *e);
/* Eject a server until until_ms; 1 when this call ejected it, 0 when it was
 * already out (another worker got there first: log once per event). */
int tw_srv_eject(struct tw_be_shared *b, size_t server, uint64_t until_ms);

/* admin.c */
int tw_admin_start(struct tw_edge *e, const struct tw_addr *addr, struct tw_err *err);
void tw_admin_stop(struct tw_edge *e);
int tw_admin_same(const struct tw_edge *e, const struct tw_addr *addr);

/* acme_glue.c */
int tw_edge_acme_start(struct tw_edge *e, const struct tw_config *cfg);
void tw_edge_acme_update(struct tw_edge *e, const struct tw_config *cfg);
void tw_edge_acme_stop(struct tw_edge *e);
/* 0 and the key authorization for an ACME HTTP-01 path; TW_ENOENT unknown
 * token; TW_EINVAL when path is no challenge or ACME is off. */
int tw_edge_acme_http01(struct tw_edge *e, const char *path, size_t len, char *out, size_t cap,
			size_t *outlen);
void tw_edge_acme_metrics(struct tw_edge *e, struct tw_dbuf *out);
/* The TLS store's acme hook (tw_tls_acme_hook; arg = the edge): installs the
 * pending TLS-ALPN-01 certificate for servername on ssl; -1 when none. */
int tw_edge_acme_tlsalpn01(SSL *ssl, const char *servername, void *arg);
void tw_local_text(struct tw_conn *c, int status, const char *body, size_t len);
/* Same with extra header lines ("Name: value\r\n"...), text/plain; charset=utf-8. */
void tw_local_text_extra(struct tw_conn *c, int status, const char *body, size_t len, const char *extra);

/* worker.c */
int tw_workers_start(struct tw_edge *e, struct tw_err *err);
void tw_workers_notify(struct tw_edge *e);
int tw_workers_wait_gen(struct tw_edge *e, uint64_t id);
void tw_workers_join(struct tw_edge *e);
int tw_listen_socket(const struct tw_addr *a, int reuseport, struct tw_err *err);

#endif
