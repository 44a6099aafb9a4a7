/* proxy.c — the client connection state machine and the proxy path.
 *
 * One transition function, tw_conn_run(), advances a client connection (and
 * the upstream connection attached to it) as far as the sockets allow, then
 * returns; events on either socket call it again. States (enum
 * tw_conn_state): C_HEAD reads and parses a request head; C_WAIT waits for an
 * upstream connection (connecting, or queued behind max_conns); C_PROXY
 * streams the request body up and the response down through bounded buffers;
 * C_TUNNEL relays bytes both ways after a 101; C_LOCAL writes a response
 * tapwork made itself. Back-pressure is implicit: a side is read only while
 * the buffer toward the other side has room. */
#include "edge/edge.h"
#include "edge/rl_req.h"
#include "edge/h2.h"

#include "core/log.h"
#include "tls/tls.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#define LINGER_MS 2000

static const char *state_names[] = {"head", "body", "wait", "proxy", "tunnel", "local", "h2", "closed"};

static void set_state(struct tw_conn *c, enum tw_conn_state st)
{
	if (c->st == st)
		return;
	tw_debug("conn=%llu %s -> %s", (unsigned long long)c->id, state_names[c->st], state_names[st]);
	c->st = st;
}

static uint64_t now_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

/* ---------- small I/O helpers ---------- */

/* Read into b. Returns bytes read (0 when nothing); sets *ready = 0 on EAGAIN,
 * *eof on EOF; returns -1 on a hard error. */
static ssize_t read_some(int fd, struct tw_iobuf *b, uint8_t *ready, uint8_t *eof, uint8_t rdhup)
{
	if (tw_iobuf_room(b) == 0)
		tw_iobuf_compact(b);
	if (tw_iobuf_room(b) == 0)
		return 0;
	for (;;) {
		size_t want = tw_iobuf_room(b);
		ssize_t n = recv(fd, tw_iobuf_tail(b), want, 0);
		if (n > 0) {
			b->end += (uint32_t)n;
			/* A short read drained the socket: new data will raise a new
			 * edge, so skip the read that would only say EAGAIN. Not when
			 * the peer's FIN was already announced: no edge follows it. */
			if ((size_t)n < want && !rdhup)
				*ready = 0;
			return n;
		}
		if (n == 0) {
			*eof = 1;
			*ready = 0;
			return 0;
		}
		if (errno == EINTR)
			continue;
		if (errno == EAGAIN || errno == EWOULDBLOCK) {
			*ready = 0;
			return 0;
		}
		*ready = 0;
		return -1;
	}
}

/* writev(hdr window from *hdr_off .. hdr_end, then body[0..body_len)).
 * Returns bytes written (0 when blocked), -1 on error. */
/* Two parts up to this size together are copied into one send(). */
#define TW_SEND_GATHER 2048u

static ssize_t write_two(int fd, const char *a, size_t alen, const char *b, size_t blen, uint8_t *ready)
{
	struct iovec iov[2];
	int n = 0;
	if (alen) {
		iov[n].iov_base = (void *)a;
		iov[n++].iov_len = alen;
	}
	if (blen) {
		iov[n].iov_base = (void *)b;
		iov[n++].iov_len = blen;
	}
	if (n == 0)
		return 0;
	char small[TW_SEND_GATHER];
	if (n == 2 && alen + blen <= sizeof small) {
		/* a small head and body (the common short answer): one copy here
		 * costs less than sendmsg()'s iovec import and second segment */
		memcpy(small, a, alen);
		memcpy(small + alen, b, blen);
		iov[0].iov_base = small;
		iov[0].iov_len = alen + blen;
		n = 1;
	}
	struct msghdr mh = {.msg_iov = iov, .msg_iovlen = (size_t)n};
	for (;;) {
		/* send()/sendmsg() skip the VFS layer that write()/writev() pay for */
		ssize_t w = n == 1 ? send(fd, iov[0].iov_base, iov[0].iov_len, MSG_NOSIGNAL)
				   : sendmsg(fd, &mh, MSG_NOSIGNAL);
		if (w >= 0) {
			if ((size_t)w < alen + blen)
				*ready = 0; /* send buffer full: wait for EPOLLOUT */
			return w;
		}
		if (errno == EINTR)
			continue;
		if (errno == EAGAIN || errno == EWOULDBLOCK) {
			*ready = 0;
			return 0;
		}
		*ready = 0;
		return -1;
	}
}

/* ---------- the client side's transport (struct tw_front_ops) ----------
 * A client connection talks through its front: a plain TCP socket here, TLS
 * (tls_front.c), or an HTTP/2 stream (h2.c), which all look alike to the
 * state machine below. */

static ssize_t sock_recv(struct tw_conn *c, char *p, size_t len, uint8_t *ready, uint8_t *eof)
{
	for (;;) {
		ssize_t n = recv(c->io.fd, p, len, 0);
		if (n > 0) {
			if ((size_t)n < len && !c->rdhup)
				*ready = 0;
			return n;
		}
		if (n == 0) {
			*eof = 1;
			*ready = 0;
			return 0;
		}
		if (errno == EINTR)
			continue;
		*ready = 0;
		return errno == EAGAIN || errno == EWOULDBLOCK ? 0 : -1;
	}
}

static ssize_t sock_send(struct tw_conn *c, const char *a, size_t alen, const char *b, size_t blen,
			 uint8_t *ready)
{
	return write_two(c->io.fd, a, alen, b, blen, ready);
}

static void sock_shutdown_wr(struct tw_conn *c) { shutdown(c->io.fd, SHUT_WR); }

static void sock_close(struct tw_conn *c)
{
	if (!c->unpolled)
		tw_loop_del(c->w->loop, &c->io);
	close(c->io.fd);
}

const struct tw_front_ops tw_front_plain = {
	.name = "tcp",
	.recv = sock_recv,
	.send = sock_send,
	.shutdown_wr = sock_shutdown_wr,
	.close = sock_close,
};

/* Read from the client into c->in: bytes read (0 none), -1 on error. */
static ssize_t conn_read(struct tw_conn *c)
{
	struct tw_iobuf *b = c->in;
	if (tw_iobuf_room(b) == 0)
		tw_iobuf_compact(b);
	if (tw_iobuf_room(b) == 0)
		return 0;
	ssize_t n = c->fops->recv(c, tw_iobuf_tail(b), tw_iobuf_room(b), &c->rd_ready, &c->rd_eof);
	if (n > 0)
		b->end += (uint32_t)n;
	return n;
}

static ssize_t conn_write(struct tw_conn *c, const char *a, size_t alen, const char *b, size_t blen)
{
	if (alen + blen == 0)
		return 0;
	return c->fops->send(c, a, alen, b, blen, &c->wr_ready);
}

/* Classify bytes of b after the already-classified window as body bytes. */
static int flow_classify(struct tw_flow *f, struct tw_iobuf *b, int eof)
{
	if (f->done || f->mode == FLOW_NONE) {
		f->done = 1;
		return 0;
	}
	uint32_t have = tw_iobuf_len(b) - f->fwd;
	if (f->mode == FLOW_LENGTH) {
		uint64_t take = have < f->remaining ? have : f->remaining;
		f->fwd += (uint32_t)take;
		f->remaining -= take;
		if (f->remaining == 0)
			f->done = 1;
		return 0;
	}
	if (f->mode == FLOW_CHUNKED) {
		if (have == 0)
			return 0;
		char *p = tw_iobuf_head(b) + f->fwd;
		size_t used = 0, fwd;
		int rc;
		if (f->dechunk) {
			/* the payload alone, decoded in place; what was not scanned
			 * yet moves down behind it: one buffer, no copy out */
			rc = tw_h1_chunked_decode(&f->ch, p, have, &used, &fwd);
			memmove(p + fwd, p + used, have - used); /* nothing moves on an error: both 0 */
			b->end -= (uint32_t)(used - fwd);
		} else {
			rc = tw_h1_chunked_scan(&f->ch, p, have, &used, NULL, NULL);
			fwd = used;
		}
		f->fwd += (uint32_t)fwd;
		if (rc == 0)
			f->done = 1;
		else if (rc != TW_EAGAIN)
			return rc;
		return 0;
	}
	/* FLOW_UNTIL_CLOSE */
	f->fwd += have;
	if (eof)
		f->done = 1;
	return 0;
}

static void flow_init(struct tw_flow *f, int mode, uint64_t len, uint64_t max_body)
{
	memset(f, 0, sizeof *f);
	f->mode = mode;
	f->remaining = len;
	if (mode == FLOW_CHUNKED)
		tw_h1_chunked_init(&f->ch, max_body);
	if (mode == FLOW_NONE || (mode == FLOW_LENGTH && len == 0))
		f->done = 1;
}

/* ---------- connection lifetime ---------- */

static void on_client_event(struct tw_loop *loop, struct tw_io *io, uint32_t ev);
static void on_conn_timer(struct tw_loop *loop, struct tw_timer *t);
static void choose_and_connect(struct tw_conn *c);
static void start_body(struct tw_conn *c);
static void body_timer(struct tw_conn *c);

#define REQ_MAP_SIZE (((sizeof(struct tw_req) + 4095) / 4096) * 4096)
#define REQ_FREE_MAX 1024

static void req_free(struct tw_worker *w, struct tw_req *r)
{
	if (r == NULL)
		return;
	tw_iobuf_put(&w->bufs, r->hdr);
	tw_cz_release(w, r);
	tw_static_release(r);
	tw_gen_release(r->gen);
	w->inflight--;
	if (w->nfree_reqs < REQ_FREE_MAX) {
		r->next_free = w->free_reqs;
		w->free_reqs = r;
		w->nfree_reqs++;
		return;
	}
	munmap(r, REQ_MAP_SIZE);
}

/* Requests are recycled through a per-worker free list; beyond it they come
 * from mmap so that a burst leaves no heap fragments behind. */
static struct tw_req *req_alloc(struct tw_worker *w)
{
	struct tw_req *r = w->free_reqs;
	if (r != NULL) {
		w->free_reqs = r->next_free;
		w->nfree_reqs--;
	} else {
		r = mmap(NULL, REQ_MAP_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (r == MAP_FAILED)
			return NULL;
	}
	/* Zero everything but the big header array (the parser fills it). */
	memset(r, 0, offsetof(struct tw_req, msg));
	memset((char *)&r->msg + sizeof r->msg, 0, sizeof *r - offsetof(struct tw_req, msg) - sizeof r->msg);
	memset(&r->msg, 0, offsetof(struct tw_h1_msg, headers));
	size_t tail = offsetof(struct tw_h1_msg, headers) + sizeof r->msg.headers;
	memset((char *)&r->msg + tail, 0, sizeof r->msg - tail);
	w->inflight++;
	w->started++;
	return r;
}

void tw_req_pool_trim(struct tw_worker *w, size_t keep)
{
	while (w->nfree_reqs > keep) {
		struct tw_req *r = w->free_reqs;
		w->free_reqs = r->next_free;
		w->nfree_reqs--;
		munmap(r, REQ_MAP_SIZE);
	}
}

static struct tw_be_worker *req_bw(struct tw_conn *c)
{
	struct tw_req *r = c->req;
	return &r->gen->wk[c->w->idx].be[r->backend];
}

static void unqueue(struct tw_conn *c)
{
	if (!c->queued)
		return;
	struct tw_be_worker *bw = req_bw(c);
	struct tw_conn **pp = &bw->q_head, *prev = NULL;
	while (*pp && *pp != c) {
		prev = *pp;
		pp = &(*pp)->q_next;
	}
	if (*pp == c) {
		*pp = c->q_next;
		if (bw->q_tail == c)
			bw->q_tail = prev;
		bw->q_len--;
	}
	c->q_next = NULL;
	c->queued = 0;
}

/* Detach the upstream from the request. reusable: back to the pool. */
static void detach_upstream(struct tw_conn *c, int reusable)
{
	struct tw_upconn *u = c->up;
	if (u == NULL)
		return;
	struct tw_req *r = c->req;
	c->up = NULL;
	u->c = NULL;
	int had = r && r->have_server;
	size_t backend = had ? r->backend : 0;
	struct tw_gen *g = had ? r->gen : NULL;
	if (had) {
		struct tw_be_worker *bw = req_bw(c);
		if (bw->lb.servers[r->server].active > 0)
			bw->lb.servers[r->server].active--;
		r->have_server = 0;
	}
	tw_up_release(u, reusable);
	if (had)
		tw_conn_dequeue_backend(c->w, g, backend);
}

static void conn_close(struct tw_conn *c)
{
	if (c->st == C_CLOSED)
		return;
	struct tw_worker *w = c->w;
	unqueue(c);
	detach_upstream(c, 0);
	if (c->st == C_H2)
		tw_h2_close(c); /* closes the streams first */
	set_state(c, C_CLOSED);
	tw_timer_cancel(w->loop, &c->timer);
	c->fops->close(c);
	tw_iobuf_put(&w->bufs, c->in);
	tw_iobuf_put(&w->bufs, c->out);
	c->in = c->out = NULL;
	req_free(w, c->req);
	c->req = NULL;
	if (c->prev)
		c->prev->next = c->next;
	else
		w->conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	w->nconns--;
	if (!c->virt)
		tw_metric_sub(w->m, w->edge->m_conns, 1);
	c->dead = 1;
	tw_loop_defer_free(w->loop, c);
}

void tw_conn_accept(struct tw_worker *w, int fd, const struct sockaddr *sa, socklen_t len,
		    const struct tw_front_ops *fops)
{
	struct tw_conn *c = calloc(1, sizeof *c);
	if (c == NULL) {
		close(fd);
		return;
	}
	c->fops = fops ? fops : &tw_front_plain;
	c->io.fd = fd; /* TCP_NODELAY comes from the listener (tw_listen_socket) */
	c->io.cb = on_client_event;
	c->w = w;
	memcpy(&c->peer, sa, len);
	c->peerlen = len;
	if (sa->sa_family == AF_INET)
		inet_ntop(AF_INET, &((const struct sockaddr_in *)sa)->sin_addr, c->peer_ip, sizeof c->peer_ip);
	else if (sa->sa_family == AF_INET6)
		inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)sa)->sin6_addr, c->peer_ip, sizeof c->peer_ip);
	else
		snprintf(c->peer_ip, sizeof c->peer_ip, "unix");
	c->id = ((uint64_t)w->idx << 48) | ++w->rng[1];
	tw_timer_init(&c->timer, on_conn_timer);
	if (c->fops == &tw_front_plain) {
		/* A client's request is usually in the socket by the time it is
		 * accepted: read it at once and enter epoll only when the socket
		 * must be waited for (conn_poll). A connection answered and closed
		 * in one go (Connection: close) then costs no epoll_ctl at all. */
		c->unpolled = 1;
	} else if (tw_loop_add(w->loop, &c->io, EPOLLIN | EPOLLOUT | EPOLLRDHUP) != 0) {
		close(fd);
		free(c);
		return;
	}
	c->next = w->conns;
	if (w->conns)
		w->conns->prev = c;
	w->conns = c;
	w->nconns++;
	tw_metric_add(w->m, w->edge->m_conns, 1);
	c->st = C_HEAD;
	tw_timer_set(w->loop, &c->timer, w->gen->cfg->timeouts.client_header_ms);
	c->rd_ready = 1;
	c->wr_ready = 1;
	if (c->fops->open && c->fops->open(c) != 0) {
		conn_close(c);
		return;
	}
	tw_conn_run(c);
}

void tw_conn_close(struct tw_conn *c) { conn_close(c); }

void tw_conn_start_h2(struct tw_conn *c)
{
	req_free(c->w, c->req);
	c->req = NULL;
	if (tw_h2_start(c) != 0)
		conn_close(c);
}

struct tw_conn *tw_conn_new_virtual(struct tw_worker *w, struct tw_conn *parent, const struct tw_front_ops *ops,
				    void *fctx)
{
	struct tw_conn *c = calloc(1, sizeof *c);
	if (c == NULL)
		return NULL;
	c->fops = ops;
	c->fctx = fctx;
	c->virt = 1;
	c->io.fd = -1;
	c->w = w;
	memcpy(&c->peer, &parent->peer, sizeof c->peer);
	c->peerlen = parent->peerlen;
	memcpy(c->peer_ip, parent->peer_ip, sizeof c->peer_ip);
	c->id = ((uint64_t)w->idx << 48) | ++w->rng[1];
	tw_timer_init(&c->timer, on_conn_timer);
	c->next = w->conns;
	if (w->conns)
		w->conns->prev = c;
	w->conns = c;
	w->nconns++;
	c->st = C_HEAD;
	tw_timer_set(w->loop, &c->timer, w->gen->cfg->timeouts.client_header_ms);
	c->rd_ready = 1;
	c->wr_ready = 1;
	return c;
}

static void on_client_event(struct tw_loop *loop, struct tw_io *io, uint32_t ev)
{
	struct tw_conn *c = (struct tw_conn *)io;
	if (c->dead)
		return;
	if (ev & (EPOLLRDHUP | EPOLLHUP | EPOLLERR))
		c->rdhup = 1;
	if (ev & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR))
		c->rd_ready = 1;
	if (ev & (EPOLLOUT | EPOLLHUP | EPOLLERR))
		c->wr_ready = 1;
	tw_conn_run(c);
}

/* ---------- requests ---------- */

static int is_trusted(const struct tw_conn *c, const struct tw_config *cfg)
{
	for (size_t i = 0; i < cfg->ntrusted_proxies; i++)
		if (tw_cidr_contains(&cfg->trusted_proxies[i], (const struct sockaddr *)&c->peer))
			return 1;
	return 0;
}

static void copy_slice(char *dst, size_t cap, const char *buf, struct tw_slice s)
{
	size_t n = s.len < cap - 1 ? s.len : cap - 1;
	memcpy(dst, buf + s.off, n);
	dst[n] = '\0';
}

static int valid_rid(const char *p, size_t n)
{
	if (n == 0 || n > 64)
		return 0;
	for (size_t i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)p[i];
		if (!((ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
		      ch == '-' || ch == '_' || ch == '.'))
			return 0;
	}
	return 1;
}

static struct tw_req *req_new(struct tw_conn *c)
{
	struct tw_req *r = req_alloc(c->w);
	if (r == NULL)
		return NULL;
	r->gen = tw_gen_acquire(c->w->gen);
	const struct tw_conf_limits *l = &r->gen->cfg->limits;
	struct tw_h1_limits hl = {.max_head_bytes = l->max_header_bytes,
				  .max_headers = l->max_headers,
				  .max_uri = l->max_uri,
				  .max_body = l->max_body};
	tw_h1_parser_init(&r->p, TW_H1_REQUEST, &hl);
	r->version_minor = 1;
	r->site = r->gen->cfg->nsites; /* "-" until routed */
	r->backend = r->gen->cfg->nbackends;
	r->status = 0;
	r->t_start_us = now_us();
	return r;
}

/* Finish the current request: metrics, access log; then the next one or close. */
static void finish_request(struct tw_conn *c)
{
	struct tw_worker *w = c->w;
	struct tw_req *r = c->req;
	if (r != NULL) {
		if (r->status == 0)
			r->status = 499;
		uint64_t dur = now_us() - r->t_start_us;
		struct tw_gen *g = r->gen;
		tw_metric_add(w->m, tw_gen_req_slot(g, r->site, r->backend, (unsigned)r->status), 1);
		if (r->backend < g->cfg->nbackends)
			tw_metric_observe(w->m, g->be[r->backend].m_hist, dur);
		tw_alog_request(w, c, r, dur);
		c->quiet_close = r->client_close && r->reqbody.done;
		req_free(w, r);
		c->req = NULL;
	}
	c->nreq++;
}

static void start_linger(struct tw_conn *c)
{
	if (c->fops->oneshot) {
		conn_close(c);
		return;
	}
	/* The client asked to close and sent nothing more: nothing unread can
	 * make close() reset the connection under the answer, so no need to wait
	 * for its FIN (a shutdown, a read and a wake-up per connection). Over
	 * TLS: close_notify, then close (as nginx does), when the socket was
	 * drained; the client's own close_notify is not waited for. */
	if (c->quiet_close && (c->in == NULL || tw_iobuf_len(c->in) == 0) &&
	    (c->fops == &tw_front_plain || tw_front_tls_quiet_close(c))) {
		conn_close(c);
		return;
	}
	/* Half-close and discard what the client still sends, so our response
	 * is not destroyed by a reset before the client reads it. */
	c->fops->shutdown_wr(c);
	c->lingering = 1;
	c->rd_ready = 1;
	tw_timer_set(c->w->loop, &c->timer, LINGER_MS);
}

static void next_request(struct tw_conn *c)
{
	struct tw_worker *w = c->w;
	if (c->close_after || w->draining || c->fops->oneshot) {
		start_linger(c);
		return;
	}
	set_state(c, C_HEAD);
	if (c->out && tw_iobuf_len(c->out) == 0) {
		tw_iobuf_put(&w->bufs, c->out);
		c->out = NULL;
	}
	if (c->in && tw_iobuf_len(c->in) == 0) {
		tw_iobuf_put(&w->bufs, c->in);
		c->in = NULL;
		tw_timer_set(w->loop, &c->timer, w->gen->cfg->timeouts.keepalive_ms);
	} else {
		tw_timer_set(w->loop, &c->timer, w->gen->cfg->timeouts.client_header_ms);
	}
}

static int ensure_out(struct tw_conn *c)
{
	if (c->out == NULL)
		c->out = tw_iobuf_get(&c->w->bufs);
	return c->out ? 0 : TW_ENOMEM;
}

void tw_local_error(struct tw_conn *c, int status, const char *why);

static void respond_local_error(struct tw_conn *c, int status, const char *why)
{
	if (c->up)
		detach_upstream(c, 0);
	unqueue(c);
	tw_local_error(c, status, why);
}

struct hdr_ctx {
	const char *buf;
	const struct tw_h1_msg *m;
};

/* tw_route_req.header_is over a parsed request head */
static int header_is(void *ctx, const char *name, const char *value)
{
	const struct hdr_ctx *h = ctx;
	size_t nl = strlen(name), vl = strlen(value);
	for (unsigned k = 0; k < h->m->nheaders; k++) {
		const struct tw_h1_header *f = &h->m->headers[k];
		if (f->name.len == nl && f->value.len == vl && strncasecmp(h->buf + f->name.off, name, nl) == 0 &&
		    memcmp(h->buf + f->value.off, value, vl) == 0)
			return 1;
	}
	return 0;
}

static void dispatch(struct tw_conn *c)
{
	struct tw_req *r = c->req;
	struct tw_h1_msg *m = &r->msg;
	const char *buf = tw_iobuf_head(c->in);
	const struct tw_config *cfg = r->gen->cfg;

	copy_slice(r->method, sizeof r->method, buf, m->method);
	copy_slice(r->uri, sizeof r->uri, buf, m->target);
	copy_slice(r->host, sizeof r->host, buf, m->authority);
	/* One pass over the headers for the few this function needs. */
	int i_ref = -1, i_ua = -1, i_rid = -1, i_upg = -1;
	for (unsigned k = 0; k < m->nheaders; k++) {
		const struct tw_slice n = m->headers[k].name;
		const char *p = buf + n.off;
		if (n.len == 7 && strncasecmp(p, "referer", 7) == 0)
			i_ref = (int)k;
		else if (n.len == 10 && strncasecmp(p, "user-agent", 10) == 0)
			i_ua = (int)k;
		else if (n.len == 12 && i_rid < 0 && strncasecmp(p, "x-request-id", 12) == 0)
			i_rid = (int)k;
		else if (n.len == 7 && i_upg < 0 && strncasecmp(p, "upgrade", 7) == 0)
			i_upg = (int)k;
	}
	if (i_ref >= 0)
		copy_slice(r->referer, sizeof r->referer, buf, m->headers[i_ref].value);
	if (i_ua >= 0)
		copy_slice(r->ua, sizeof r->ua, buf, m->headers[i_ua].value);
	r->version_minor = (int)m->version_minor;
	int trusted = cfg->ntrusted_proxies && is_trusted(c, cfg);
	int i = i_rid;
	if (i >= 0 && trusted && cfg->request_id_trust &&
	    valid_rid(buf + m->headers[i].value.off, m->headers[i].value.len))
		copy_slice(r->rid, sizeof r->rid, buf, m->headers[i].value);
	else
		tw_make_request_id(c->w, r->rid);
	r->client_close = !m->keep_alive;
	if (r->client_close || c->w->draining)
		c->close_after = 1;
	r->is_head = strcmp(r->method, "HEAD") == 0;
	r->idempotent = r->is_head || !strcmp(r->method, "GET") || !strcmp(r->method, "OPTIONS") ||
			!strcmp(r->method, "PUT") || !strcmp(r->method, "DELETE") || !strcmp(r->method, "TRACE");
	i = i_upg;
	r->want_upgrade = m->has_upgrade && (m->conn_flags & TW_H1_CONN_UPGRADE) && i >= 0 &&
			  tw_h1_header_has_token(buf, &m->headers[i], "websocket");
	r->expect_continue = m->expect_continue;
	if (m->chunked)
		flow_init(&r->reqbody, FLOW_CHUNKED, 0, cfg->limits.max_body);
	else if (m->content_length > 0)
		flow_init(&r->reqbody, FLOW_LENGTH, (uint64_t)m->content_length, 0);
	else
		flow_init(&r->reqbody, FLOW_NONE, 0, 0);

	size_t site = 0;
	struct hdr_ctx hc = {buf, m};
	struct tw_route_req rq = {.method = buf + m->method.off,
				  .method_len = m->method.len,
				  .query = m->query.len ? buf + m->query.off : NULL,
				  .query_len = m->query.len,
				  .header_is = header_is,
				  .ctx = &hc};
	r->route = tw_router_match_req(r->gen->router, buf + m->authority.off, m->authority.len,
				       buf + m->path.off, m->path.len, &rq, &site);
	if (site < cfg->nsites)
		r->site = site;
	/* ACME HTTP-01 challenges come before any redirect or route. */
	char ka[512];
	size_t kal = 0;
	int acme = tw_edge_acme_http01(c->w->edge, buf + m->path.off, m->path.len, ka, sizeof ka, &kal);
	if (acme != TW_EINVAL) {
		tw_iobuf_consume(c->in, (uint32_t)r->p.head_len);
		if (!r->reqbody.done)
			c->close_after = 1;
		if (acme == 0)
			tw_local_text(c, 200, ka, kal);
		else
			tw_local_error(c, 404, "unknown ACME challenge token");
		return;
	}
	if (site < cfg->nsites && !c->fops->secure && tw_tls_site_wants_redirect(cfg, site) &&
	    !(m->path.len >= 28 && memcmp(buf + m->path.off, "/.well-known/acme-challenge/", 28) == 0)) {
		tw_iobuf_consume(c->in, (uint32_t)r->p.head_len);
		if (!r->reqbody.done)
			c->close_after = 1;
		tw_local_redirect_https(c);
		return;
	}
	if (r->route != NULL && r->route->rate_limit && tw_rl_request(c, r, buf)) {
		tw_iobuf_consume(c->in, (uint32_t)r->p.head_len);
		if (!r->reqbody.done)
			c->close_after = 1;
		return; /* answered 429 (rl_req.c) */
	}
	const struct tw_route_ext *x = r->route ? r->route->ext : NULL;
	if (x != NULL && (x->status || x->redirect)) {
		tw_iobuf_consume(c->in, (uint32_t)r->p.head_len);
		if (!r->reqbody.done)
			c->close_after = 1;
		if (x->redirect)
			tw_local_redirect_route(c, r->route, buf + m->path.off, m->path.len,
						m->query.len ? buf + m->query.off : NULL, m->query.len);
		else
			tw_local_error(c, x->status, "the route's backends are invalid");
		return;
	}
	if (r->route == NULL || r->route->handler == TW_HANDLER_WELCOME) {
		/* Answered here: the head is no longer needed. */
		tw_iobuf_consume(c->in, (uint32_t)r->p.head_len);
		if (!r->reqbody.done)
			c->close_after = 1; /* we do not read the body: cannot find the next request */
		if (r->route == NULL)
			tw_local_error(c, 404, "no route");
		else
			tw_local_welcome(c);
		return;
	}
	if (r->route->handler == TW_HANDLER_STATIC) {
		/* files (static.c): the head is read before it is let go */
		if (!r->reqbody.done)
			c->close_after = 1;
		tw_static_serve(c, r, buf);
		if (c->in) {
			tw_iobuf_consume(c->in, (uint32_t)r->p.head_len);
			if (tw_iobuf_len(c->in) == 0) {
				/* nothing more read until the answer is out: the
				 * buffer serves other connections meanwhile (10,000
				 * slow readers of a file hold no input buffers) */
				tw_iobuf_put(&c->w->bufs, c->in);
				c->in = NULL;
			}
		}
		return;
	}
	uint64_t rmax = r->route->max_body; /* a route's own cap (an Ingress's proxy-body-size) */
	if (rmax != 0) {
		if (m->content_length > 0 && (uint64_t)m->content_length > rmax) {
			tw_iobuf_consume(c->in, (uint32_t)r->p.head_len);
			if (!r->reqbody.done)
				c->close_after = 1;
			tw_local_error(c, 413, "Content-Length above the route's body limit");
			return;
		}
		if (m->chunked && (r->reqbody.ch.max_body == 0 || r->reqbody.ch.max_body > rmax))
			r->reqbody.ch.max_body = rmax;
	}
	if (r->route->fallback_static && tw_static_try(c, r, buf)) {
		/* a file under fallback_static answered it (static.c) */
		if (!r->reqbody.done)
			c->close_after = 1;
		tw_iobuf_consume(c->in, (uint32_t)r->p.head_len);
		return;
	}
	r->backend = r->route->backend;
	if (x != NULL && x->nwb > 0) {
		/* smooth weighted round robin, one sequence shared by the workers:
		 * over nwseq consecutive requests each backend gets its weight exactly */
		uint64_t n = __atomic_fetch_add(x->wctr, 1, __ATOMIC_RELAXED);
		r->backend = x->wb[x->wseq[n % x->nwseq]].backend;
		if (r->backend == SIZE_MAX) { /* an invalid reference's share */
			tw_iobuf_consume(c->in, (uint32_t)r->p.head_len);
			if (!r->reqbody.done)
				c->close_after = 1;
			r->backend = r->route->backend;
			tw_local_error(c, 500, "the route's backend reference is invalid");
			return;
		}
	}
	tw_cz_request(c, r, buf); /* before the head is rewritten (If-None-Match) and its buffer reused */
	r->hdr = tw_iobuf_get(&c->w->bufs);
	if (r->hdr == NULL || tw_rewrite_request(c, r, buf, r->hdr) != 0) {
		tw_iobuf_consume(c->in, (uint32_t)r->p.head_len);
		c->close_after = 1;
		tw_local_error(c, 431, "request head too large after rewriting");
		return;
	}
	tw_iobuf_consume(c->in, (uint32_t)r->p.head_len);
	/* The message struct is reused for the response head from here on. */
	r->body_start_ms = tw_clock_ms();
	/* a small body usually came with the head: then it is all here already
	 * and the upstream is taken at once (no C_BODY, no timer) */
	if (r->reqbody.mode == FLOW_LENGTH)
		flow_classify(&r->reqbody, c->in, 0);
	if (!r->reqbody.done && !r->want_upgrade && r->route->request_buffering == TW_REQBUF_ON &&
	    cfg->limits.body_buffer > 0)
		start_body(c);
	else
		choose_and_connect(c);
}

/* ---------- request buffering (C_BODY) ----------
 * The body is read into c->in before an upstream connection is taken: the
 * whole body when it is at most limits.body_buffer, else that much, after
 * which the request goes up and the rest streams. A client that trickles its
 * body therefore holds a buffer (the pages its bytes touched), never an
 * upstream connection. limits.min_body_rate bounds how long it may trickle. */

static void start_body(struct tw_conn *c)
{
	set_state(c, C_BODY);
	body_timer(c);
}

/* The body's timer: the idle gap (timeouts.client_body), or sooner the
 * moment its average rate would fall below limits.min_body_rate: grace plus
 * one second per min_body_rate bytes received so far. */
static void body_timer(struct tw_conn *c)
{
	struct tw_req *r = c->req;
	const struct tw_config *cfg = r->gen->cfg;
	uint64_t ms = cfg->timeouts.client_body_ms;
	if (cfg->limits.min_body_rate) {
		uint64_t got = r->reqbody.total + r->reqbody.fwd;
		uint64_t deadline = r->body_start_ms + cfg->timeouts.body_rate_grace_ms +
				    got * 1000u / cfg->limits.min_body_rate;
		uint64_t now = tw_clock_ms();
		uint64_t left = deadline > now ? deadline - now : 1;
		if (left < ms)
			ms = left;
	}
	tw_timer_set(c->w->loop, &c->timer, ms);
}

/* The body was too slow (timer in C_BODY, or in C_PROXY before its end). */
static void body_too_slow(struct tw_conn *c)
{
	struct tw_req *r = c->req;
	char why[128];
	uint64_t got = r->reqbody.total + r->reqbody.fwd;
	uint64_t ms = tw_clock_ms() - r->body_start_ms;
	snprintf(why, sizeof why, "request body too slow: %llu bytes in %llu ms", (unsigned long long)got,
		 (unsigned long long)ms);
	tw_metric_add(c->w->m, c->w->edge->m_slow_bodies, 1);
	c->close_after = 1;
	respond_local_error(c, 408, why);
}

static int step_body(struct tw_conn *c)
{
	struct tw_req *r = c->req;
	const struct tw_config *cfg = r->gen->cfg;
	int progress = 0;
	if (r->expect_continue && !r->sent_continue && tw_iobuf_len(c->in) == 0) {
		if (ensure_out(c) != 0 || tw_iobuf_append(c->out, "HTTP/1.1 100 Continue\r\n\r\n", 25) != 0) {
			conn_close(c);
			return 1;
		}
		r->sent_continue = 1;
		progress = 1;
	}
	if (c->out && tw_iobuf_len(c->out) && c->wr_ready) {
		ssize_t n = conn_write(c, tw_iobuf_head(c->out), tw_iobuf_len(c->out), NULL, 0);
		if (n < 0) {
			conn_close(c);
			return 1;
		}
		if (n > 0) {
			tw_iobuf_consume(c->out, (uint32_t)n);
			progress = 1;
		}
	}
	ssize_t n = c->rd_ready && !c->rd_eof ? conn_read(c) : 0;
	if (n > 0)
		progress = 1;
	int rc = n < 0 ? 0 : flow_classify(&r->reqbody, c->in, c->rd_eof);
	if (rc != 0) {
		c->close_after = 1;
		respond_local_error(c, rc == TW_ELIMIT ? 413 : 400,
				    r->reqbody.ch.why ? r->reqbody.ch.why : "bad chunked body");
		return 1;
	}
	if (n < 0 || (c->rd_eof && !r->reqbody.done)) {
		tw_info_rl("client closed during request body", "rid=%s client closed during request body", r->rid);
		r->status = 499;
		conn_close(c);
		return 1;
	}
	if (r->reqbody.done || r->reqbody.fwd >= cfg->limits.body_buffer ||
	    tw_iobuf_room(c->in) + c->in->start == 0) {
		/* the body (or as much as is held) is here: now take an upstream */
		if (c->out && tw_iobuf_len(c->out) == 0) {
			tw_iobuf_put(&c->w->bufs, c->out);
			c->out = NULL;
		}
		choose_and_connect(c);
		return 1;
	}
	if (progress)
		body_timer(c);
	return progress;
}

static void hash_key(struct tw_conn *c, const void **key, size_t *len)
{
	/* The rewritten head in r->hdr still holds the request headers. */
	struct tw_req *r = c->req;
	const struct tw_conf_backend *cb = &r->gen->cfg->backends[r->backend];
	*key = NULL;
	*len = 0;
	if (cb->balance != TW_BAL_HASH)
		return;
	switch (cb->hash_src) {
	case TW_HASH_CLIENT_IP:
		*key = c->peer_ip;
		*len = strlen(c->peer_ip);
		return;
	case TW_HASH_URI:
		*key = r->uri;
		*len = strlen(r->uri);
		return;
	case TW_HASH_HEADER:
	case TW_HASH_COOKIE: {
		/* Scan the rewritten head: "\r\nName: value\r\n". */
		const char *h = tw_iobuf_head(r->hdr);
		size_t n = tw_iobuf_len(r->hdr);
		const char *want = cb->hash_src == TW_HASH_HEADER ? cb->hash_name : "cookie";
		size_t wl = strlen(want);
		const char *p = memchr(h, '\n', n);
		while (p != NULL && (size_t)(p + 1 - h) < n) {
			const char *line = p + 1;
			const char *eol = memchr(line, '\r', n - (size_t)(line - h));
			if (eol == NULL || eol == line)
				break;
			if ((size_t)(eol - line) > wl + 1 && line[wl] == ':' && strncasecmp(line, want, wl) == 0) {
				const char *v = line + wl + 1;
				while (v < eol && (*v == ' ' || *v == '\t'))
					v++;
				if (cb->hash_src == TW_HASH_HEADER) {
					*key = v;
					*len = (size_t)(eol - v);
					return;
				}
				/* cookie: find NAME=value */
				size_t cl = strlen(cb->hash_name);
				const char *q = v;
				while (q < eol) {
					while (q < eol && (*q == ' ' || *q == ';'))
						q++;
					const char *semi = memchr(q, ';', (size_t)(eol - q));
					const char *end = semi ? semi : eol;
					if ((size_t)(end - q) > cl && q[cl] == '=' && memcmp(q, cb->hash_name, cl) == 0) {
						*key = q + cl + 1;
						*len = (size_t)(end - q - (ptrdiff_t)cl - 1);
						return;
					}
					q = end;
				}
			}
			p = eol + 1;
		}
		return;
	}
	}
}

static int no_server_up(struct tw_be_shared *bs, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (atomic_load_explicit(&bs->up[i], memory_order_relaxed))
			return 0;
	return 1;
}

/* Pick a server (not yet tried, not at max_conns) and attach a connection. */
static void choose_and_connect(struct tw_conn *c)
{
	struct tw_req *r = c->req;
	struct tw_worker *w = c->w;
	struct tw_be_worker *bw = req_bw(c);
	const struct tw_conf_backend *cb = &r->gen->cfg->backends[r->backend];
	size_t excl[sizeof r->tried / sizeof r->tried[0]];
	size_t nexcl = 0;
	for (size_t i = 0; i < r->ntried; i++)
		excl[nexcl++] = r->tried[i];
	const void *key;
	size_t klen;
	hash_key(c, &key, &klen);
	size_t s = 0;
	int rc = tw_lb_pick(&bw->lb, key, klen, excl, nexcl, &s);
	struct tw_be_shared *bs = &r->gen->be[r->backend];
	if (rc == TW_ENOENT && cb->panic == TW_PANIC_ON && no_server_up(bs, cb->nservers)) {
		/* panic: every server is down or ejected; 503 to everyone helps no one */
		bw->lb.ignore_up = 1;
		rc = tw_lb_pick(&bw->lb, key, klen, excl, nexcl, &s);
		bw->lb.ignore_up = 0;
		if (rc != TW_ENOENT && atomic_exchange(&bs->panic, 1) == 0)
			tw_warn("backend=%s: every server is down or ejected; panic mode: balancing over all of them",
				cb->name);
	} else if (rc == 0 && atomic_load_explicit(&bs->panic, memory_order_relaxed) &&
		   atomic_exchange(&bs->panic, 0) == 1) {
		tw_info("backend=%s: a server is up again; panic mode over", cb->name);
	}
	if (rc == TW_ELIMIT) {
		/* every usable server is at max_conns: wait for a slot */
		if (bw->q_len >= cb->queue_size) {
			respond_local_error(c, 503, "queue full");
			return;
		}
		c->queued = 1;
		c->q_next = NULL;
		if (bw->q_tail)
			bw->q_tail->q_next = c;
		else
			bw->q_head = c;
		bw->q_tail = c;
		bw->q_len++;
		set_state(c, C_WAIT);
		tw_timer_set(w->loop, &c->timer, cb->queue_timeout_ms);
		return;
	}
	if (rc != 0) {
		if (r->ntried > 0)
			respond_local_error(c, 502, "upstream connect failed on every try");
		else
			respond_local_error(c, 503, "no server available");
		return;
	}
	r->server = s;
	if (r->ntried < sizeof r->tried / sizeof r->tried[0])
		r->tried[r->ntried++] = s;
	r->have_server = 1;
	bw->lb.servers[s].active++;
	r->hdr_sent = 0;
	r->resp_seen = 0;
	struct tw_h1_limits rl = {.max_head_bytes = TW_RESP_HEAD_MAX, .max_headers = TW_H1_MAX_HEADERS_HARD};
	tw_h1_parser_init(&r->p, TW_H1_RESPONSE, &rl);
	struct tw_upconn *u = NULL;
	rc = tw_up_get(w, r->gen, r->backend, s, c, &u);
	if (rc != 0) {
		bw->lb.servers[s].active--;
		r->have_server = 0;
		tw_metric_add(w->m, r->gen->be[r->backend].srv[s].m_connect_err, 1);
		choose_and_connect(c); /* excludes s now */
		return;
	}
	c->up = u;
	u->c = c;
	if (u->st == U_CONNECTING) {
		set_state(c, C_WAIT);
		tw_timer_set(w->loop, &c->timer, cb->connect_timeout_ms + cb->response_timeout_ms);
	} else {
		set_state(c, C_PROXY);
		tw_timer_set(w->loop, &c->timer, cb->response_timeout_ms);
	}
}

void tw_conn_dequeue_backend(struct tw_worker *w, struct tw_gen *g, size_t backend)
{
	struct tw_be_worker *bw = &g->wk[w->idx].be[backend];
	struct tw_conn *c = bw->q_head;
	if (c == NULL)
		return;
	bw->q_head = c->q_next;
	if (bw->q_tail == c)
		bw->q_tail = NULL;
	bw->q_len--;
	c->queued = 0;
	c->q_next = NULL;
	choose_and_connect(c);
	tw_conn_run(c);
}

/* The upstream failed (connect error, reset, EOF before a full response). */
static void upstream_failed(struct tw_conn *c, int connect_phase, const char *what)
{
	struct tw_req *r = c->req;
	struct tw_worker *w = c->w;
	struct tw_upconn *u = c->up;
	const struct tw_conf_backend *cb = &r->gen->cfg->backends[r->backend];
	struct tw_be_worker *bw = req_bw(c);
	size_t s = r->server;
	int reused = u && u->reused;
	tw_warn_rl("upstream failures", "rid=%s backend=%s server=%s: %s%s", r->rid, cb->name, cb->servers[s].addr.text, what,
		reused ? " (pooled connection)" : "");
	if (connect_phase)
		tw_metric_add(w->m, r->gen->be[r->backend].srv[s].m_connect_err, 1);
	if (!reused && cb->passive_fails) {
		if (++bw->fails[s] >= cb->passive_fails) {
			if (tw_srv_eject(&r->gen->be[r->backend], s, tw_clock_ms() + cb->passive_eject_ms))
				tw_warn("backend=%s server=%s: ejected for %llums after %u consecutive failures",
					cb->name, cb->servers[s].addr.text, (unsigned long long)cb->passive_eject_ms,
					bw->fails[s]);
			bw->fails[s] = 0;
		}
	}
	detach_upstream(c, 0);
	int safe = !r->resp_seen && !r->req_sent_any &&
		   (connect_phase || reused || (r->idempotent && r->reqbody.mode == FLOW_NONE));
	if (safe && r->ntried <= cb->retries + (reused ? 1u : 0u)) {
		if (reused) /* a stale pooled connection is not the server's fault: try it again */
			r->ntried--;
		choose_and_connect(c);
		return;
	}
	if (!r->resp_head_done) {
		c->close_after = 1;
		respond_local_error(c, 502, connect_phase ? "upstream connect failed" : "upstream closed before responding");
		return;
	}
	conn_close(c);
}


/* ---------- the proxy pump ---------- */

static int pump_request(struct tw_conn *c)
{
	struct tw_req *r = c->req;
	struct tw_upconn *u = c->up;
	int progress = 0;
	if (c->in == NULL && (c->in = tw_iobuf_get(&c->w->bufs)) == NULL)
		return 0;
	if (!r->reqbody.done && c->rd_ready && !c->rd_eof) {
		ssize_t n = conn_read(c);
		if (n < 0 || (c->rd_eof && !r->reqbody.done && r->reqbody.mode != FLOW_UNTIL_CLOSE)) {
			tw_info_rl("client closed during request body", "rid=%s client closed during request body", r->rid);
			r->status = 499;
			conn_close(c);
			return 1;
		}
		if (n > 0)
			progress = 1;
	}
	if (!r->reqbody.done) {
		int rc = flow_classify(&r->reqbody, c->in, c->rd_eof);
		if (rc != 0) {
			int st = rc == TW_ELIMIT ? 413 : 400;
			c->close_after = 1;
			if (!r->resp_head_done) {
				respond_local_error(c, st, r->reqbody.ch.why ? r->reqbody.ch.why : "bad chunked body");
			} else {
				conn_close(c);
			}
			return 1;
		}
	}
	if (r->expect_continue && !r->sent_continue && !r->reqbody.done && tw_iobuf_len(c->in) == 0) {
		if (ensure_out(c) == 0 && tw_iobuf_append(c->out, "HTTP/1.1 100 Continue\r\n\r\n", 25) == 0) {
			r->sent_continue = 1;
			progress = 1;
		}
	}
	if (u->wr_ready && !u->wr_shut) {
		uint32_t hl = tw_iobuf_len(r->hdr) - r->hdr_sent;
		uint32_t bl = r->reqbody.fwd;
		if (hl || bl) {
			ssize_t n = write_two(u->io.fd, tw_iobuf_head(r->hdr) + r->hdr_sent, hl, tw_iobuf_head(c->in),
					      bl, &u->wr_ready);
			if (n < 0) {
				upstream_failed(c, 0, "write to upstream failed");
				return 1;
			}
			if (n > 0) {
				progress = 1;
				uint32_t nh = (uint32_t)n < hl ? (uint32_t)n : hl;
				r->hdr_sent += nh;
				uint32_t nb = (uint32_t)n - nh;
				if (nb) {
					r->req_sent_any = 1;
					r->reqbody.fwd -= nb;
					r->reqbody.total += nb;
					tw_iobuf_consume(c->in, nb);
				}
			}
		}
	}
	return progress;
}

static void begin_response(struct tw_conn *c)
{
	struct tw_req *r = c->req;
	struct tw_upconn *u = c->up;
	struct tw_h1_msg *m = &r->msg;
	unsigned st = m->status;
	int mode;
	uint64_t len = 0;
	if (st == 101 && r->want_upgrade) {
		r->tunnel = 1;
		mode = FLOW_NONE;
	} else if (r->is_head || st == 204 || st == 304) {
		mode = FLOW_NONE;
	} else if (m->chunked) {
		mode = FLOW_CHUNKED;
	} else if (m->content_length >= 0) {
		mode = FLOW_LENGTH;
		len = (uint64_t)m->content_length;
	} else {
		mode = FLOW_UNTIL_CLOSE;
	}
	flow_init(&r->respbody, mode, len, 0);
	r->up_reusable = m->keep_alive && mode != FLOW_UNTIL_CLOSE && !r->tunnel;
	if (r->up_reusable)
		tw_up_note_keepalive(u, tw_iobuf_head(u->in), m);
	/* An HTTP/1.0 client cannot read chunked coding: it gets the payload,
	 * delimited by the end of the connection. HTTP/2 streams frame it themselves. */
	int dechunk = mode == FLOW_CHUNKED && r->version_minor == 0 && !c->fops->resp_head;
	r->respbody.dechunk = dechunk;
	if (mode == FLOW_UNTIL_CLOSE || !r->reqbody.done || dechunk)
		c->close_after = 1;
	int close_client = c->close_after && !r->tunnel;
	/* compression (compress.c): the payload alone goes to the encoder, the
	 * client gets it chunked (an HTTP/2 stream turns chunks into DATA) */
	int out_mode = mode;
	if (tw_cz_begin(c, r, tw_iobuf_head(u->in), mode, len)) {
		r->respbody.dechunk = mode == FLOW_CHUNKED;
		out_mode = FLOW_CHUNKED;
	}
	r->status = (int)st;
	r->resp_head_done = 1;
	if (c->fops->resp_head) {
		/* an HTTP/2 stream takes the fields as they are: no HTTP/1.1 text to
		 * write here and parse again there */
		if (c->fops->resp_head(c, r, tw_iobuf_head(u->in), out_mode, len) != 0) {
			tw_info_rl("client went away", "rid=%s client went away before the response", r->rid);
			r->up_reusable = 0;
			conn_close(c);
			return;
		}
	} else if (ensure_out(c) != 0 ||
	    tw_rewrite_response(c, r, tw_iobuf_head(u->in), c->out, close_client, out_mode == FLOW_CHUNKED && !dechunk) != 0) {
		c->close_after = 1;
		r->up_reusable = 0;
		respond_local_error(c, 502, "upstream response head too large");
		return;
	}
	tw_iobuf_consume(u->in, (uint32_t)r->p.head_len);
}

/* Write what is ready for the client: c->out (head, interim answers), then
 * the classified body bytes at the start of u->in. 1 when something moved. */
static int write_response(struct tw_conn *c)
{
	struct tw_req *r = c->req;
	struct tw_upconn *u = c->up;
	uint32_t hl = c->out ? tw_iobuf_len(c->out) : 0;
	uint32_t bl = u->in ? r->respbody.fwd : 0;
	const char *bp = bl ? tw_iobuf_head(u->in) : NULL;
	int moved = 0;
	if (r->cz) {
		/* the body bytes go through the encoder first */
		moved = u->in ? tw_cz_pump(r, u->in, &r->respbody, !u->rd_ready || u->rd_eof) : 0;
		if (moved < 0) {
			tw_warn("rid=%s compression failed mid-body: the answer is cut", r->rid);
			conn_close(c);
			return 1;
		}
		bl = tw_iobuf_len(tw_cz_out(r));
		bp = tw_iobuf_head(tw_cz_out(r));
	}
	if (!c->wr_ready || (hl == 0 && bl == 0))
		return moved;
	ssize_t n = conn_write(c, c->out ? tw_iobuf_head(c->out) : NULL, hl, bp, bl);
	if (n < 0) {
		tw_info_rl("client went away", "rid=%s client went away during the response", r->rid);
		conn_close(c);
		return 1;
	}
	if (n == 0)
		return 0;
	uint32_t nh = (uint32_t)n < hl ? (uint32_t)n : hl;
	if (nh)
		tw_iobuf_consume(c->out, nh);
	uint32_t nb = (uint32_t)n - nh;
	if (nb && r->cz) {
		tw_iobuf_consume(tw_cz_out(r), nb);
	} else if (nb) {
		r->respbody.fwd -= nb;
		tw_iobuf_consume(u->in, nb);
	}
	r->bytes_out += nb;
	return 1;
}

static int pump_response(struct tw_conn *c)
{
	struct tw_req *r = c->req;
	struct tw_upconn *u = c->up;
	int progress = 0;
	/* The upstream buffer is taken when the answer is readable, not when the
	 * request goes up: the one the last response just left is then still in
	 * the CPU's cache (64 concurrent 64 KiB answers otherwise cycle through
	 * 8 MiB of cold buffers and the kernel's copy into them costs 3x). Until
	 * then only what waits in c->out (a 100 Continue) is written. */
	if (u->in == NULL) {
		if (!u->rd_ready)
			return write_response(c);
		if ((u->in = tw_iobuf_get(&c->w->upbufs)) == NULL)
			return 0;
	}
	if (u->rd_ready && !u->rd_eof) {
		ssize_t n = read_some(u->io.fd, u->in, &u->rd_ready, &u->rd_eof, u->rdhup);
		if (n < 0) {
			if (!r->resp_head_done) {
				upstream_failed(c, 0, "upstream reset the connection");
				return 1;
			}
			u->rd_eof = 1;
			r->up_reusable = 0;
		}
		if (n > 0) {
			progress = 1;
			r->resp_seen = 1;
		}
	}
	while (!r->resp_head_done) {
		if (tw_iobuf_len(u->in) == 0) {
			if (u->rd_eof) {
				upstream_failed(c, 0, "upstream closed before responding");
				return 1;
			}
			break;
		}
		int rc = tw_h1_parse(&r->p, tw_iobuf_head(u->in), tw_iobuf_len(u->in), &r->msg);
		if (rc == TW_EAGAIN) {
			if (u->rd_eof || tw_iobuf_room(u->in) + u->in->start == 0) {
				r->resp_seen = 1;
				c->close_after = 1;
				respond_local_error(c, 502, "incomplete or oversized upstream response head");
				return 1;
			}
			break;
		}
		if (rc != 0) {
			tw_warn_rl("invalid upstream response", "rid=%s invalid upstream response: %s", r->rid, r->p.why ? r->p.why : "?");
			c->close_after = 1;
			respond_local_error(c, 502, "invalid upstream response");
			return 1;
		}
		if (r->msg.status >= 100 && r->msg.status < 200 && r->msg.status != 101) {
			/* Interim response: ours (100 Continue) was already sent; drop it. */
			tw_iobuf_consume(u->in, (uint32_t)r->p.head_len);
			tw_h1_parser_init(&r->p, TW_H1_RESPONSE, &r->p.limits);
			continue;
		}
		if (r->msg.status == 101 && !r->want_upgrade) {
			c->close_after = 1;
			respond_local_error(c, 502, "unexpected 101 from upstream");
			return 1;
		}
		/* an answer of unknown length shorter than compression's min_size so
		 * far: wait for more before deciding (the head is parsed again) */
		if (tw_cz_hold(c, r, tw_iobuf_head(u->in), tw_iobuf_len(u->in), u->rd_eof,
			       tw_iobuf_room(u->in) + u->in->start == 0)) {
			tw_h1_parser_init(&r->p, TW_H1_RESPONSE, &r->p.limits);
			break;
		}
		begin_response(c);
		if (c->st != C_PROXY)
			return 1;
		progress = 1;
	}
	if (r->resp_head_done && !r->respbody.done) {
		int rc = flow_classify(&r->respbody, u->in, u->rd_eof);
		if (rc != 0) {
			tw_warn_rl("invalid upstream response", "rid=%s invalid chunked response from upstream: %s", r->rid,
				r->respbody.ch.why ? r->respbody.ch.why : "?");
			conn_close(c);
			return 1;
		}
		if (u->rd_eof && !r->respbody.done && r->respbody.fwd == tw_iobuf_len(u->in)) {
			tw_warn_rl("upstream closed mid-response", "rid=%s upstream closed mid-response", r->rid);
			r->up_reusable = 0;
			c->close_after = 1;
			if (tw_iobuf_len(c->out) == 0 && r->respbody.fwd == 0) {
				conn_close(c);
				return 1;
			}
		}
	}
	return write_response(c) | progress;
}

static void enter_tunnel(struct tw_conn *c)
{
	struct tw_req *r = c->req;
	flow_init(&r->reqbody, FLOW_UNTIL_CLOSE, 0, 0);
	flow_init(&r->respbody, FLOW_UNTIL_CLOSE, 0, 0);
	set_state(c, C_TUNNEL);
	tw_timer_set(c->w->loop, &c->timer, 3600000);
}

static int step_tunnel(struct tw_conn *c)
{
	struct tw_upconn *u = c->up;
	int err = 0, progress = 0;
	if (c->in == NULL)
		c->in = tw_iobuf_get(&c->w->bufs);
	if (u->in == NULL)
		u->in = tw_iobuf_get(&c->w->upbufs);
	if (c->in == NULL || u->in == NULL) {
		conn_close(c);
		return 1;
	}
	/* client -> upstream */
	if (c->rd_ready && !c->rd_eof) {
		ssize_t n = conn_read(c);
		if (n < 0)
			err = 1;
		else if (n > 0)
			progress = 1;
	}
	if (u->wr_ready && tw_iobuf_len(c->in)) {
		ssize_t n = write_two(u->io.fd, tw_iobuf_head(c->in), tw_iobuf_len(c->in), NULL, 0, &u->wr_ready);
		if (n < 0)
			err = 1;
		else if (n > 0) {
			tw_iobuf_consume(c->in, (uint32_t)n);
			progress = 1;
		}
	}
	/* upstream -> client (after what is left of the 101 head) */
	if (u->rd_ready && !u->rd_eof) {
		ssize_t n = read_some(u->io.fd, u->in, &u->rd_ready, &u->rd_eof, u->rdhup);
		if (n < 0)
			err = 1;
		else if (n > 0)
			progress = 1;
	}
	uint32_t hl = c->out ? tw_iobuf_len(c->out) : 0;
	if (c->wr_ready && (hl || tw_iobuf_len(u->in))) {
		ssize_t n = conn_write(c, hl ? tw_iobuf_head(c->out) : NULL, hl, tw_iobuf_head(u->in), tw_iobuf_len(u->in));
		if (n < 0)
			err = 1;
		else if (n > 0) {
			uint32_t nh = (uint32_t)n < hl ? (uint32_t)n : hl;
			if (nh)
				tw_iobuf_consume(c->out, nh);
			if ((uint32_t)n > nh)
				tw_iobuf_consume(u->in, (uint32_t)n - nh);
			progress = 1;
		}
	}
	if (c->rd_eof && tw_iobuf_len(c->in) == 0 && !c->up_wr_shut) {
		shutdown(u->io.fd, SHUT_WR);
		c->up_wr_shut = 1;
	}
	if (u->rd_eof && tw_iobuf_len(u->in) == 0 && (!c->out || tw_iobuf_len(c->out) == 0) && !c->cl_wr_shut) {
		c->fops->shutdown_wr(c);
		c->cl_wr_shut = 1;
	}
	if (err || (c->up_wr_shut && c->cl_wr_shut)) {
		c->close_after = 1;
		finish_request(c);
		conn_close(c);
		return 1;
	}
	if (progress)
		tw_timer_set(c->w->loop, &c->timer, 3600000);
	return progress;
}

static int step_proxy(struct tw_conn *c)
{
	struct tw_req *r = c->req;
	int progress = pump_request(c);
	if (c->st != C_PROXY)
		return 1;
	progress |= pump_response(c);
	if (c->st != C_PROXY)
		return 1;
	if (progress && !r->tunnel) {
		const struct tw_conf_backend *cb = &r->gen->cfg->backends[r->backend];
		if (r->reqbody.done)
			tw_timer_set(c->w->loop, &c->timer, cb->response_timeout_ms);
		else
			body_timer(c);
	}
	if (!r->resp_head_done || !r->respbody.done || r->respbody.fwd || (c->out && tw_iobuf_len(c->out)) ||
	    !tw_cz_done(r))
		return progress;
	if (r->tunnel) {
		enter_tunnel(c);
		return 1;
	}
	/* Response complete. */
	struct tw_upconn *u = c->up;
	int reusable = r->up_reusable && r->reqbody.done && !u->rd_eof && tw_iobuf_len(u->in) == 0;
	req_bw(c)->fails[r->server] = 0;
	detach_upstream(c, reusable);
	finish_request(c);
	next_request(c);
	return 1;
}

static int step_head(struct tw_conn *c)
{
	struct tw_worker *w = c->w;
	int progress = 0;
	if (c->in == NULL) {
		if (!c->rd_ready)
			return 0;
		if ((c->in = tw_iobuf_get(&w->bufs)) == NULL) {
			conn_close(c);
			return 1;
		}
	}
	if (c->req == NULL && (c->req = req_new(c)) == NULL) {
		conn_close(c);
		return 1;
	}
	struct tw_req *r = c->req;
	for (;;) {
		if (tw_iobuf_len(c->in) > 0) {
			/* HTTP/2 over TLS: ALPN chose h2 during the handshake */
			if (c->nreq == 0 && !c->virt && c->fops->secure && tw_front_tls_alpn_is(c, "h2")) {
				tw_conn_start_h2(c);
				return 1;
			}
			/* HTTP/2 with prior knowledge (h2c): the client preface instead of a request */
			int pre = c->nreq == 0 && !c->virt && r->gen->cfg->http2.h2c
					  ? tw_h2_preface(tw_iobuf_head(c->in), tw_iobuf_len(c->in))
					  : 0;
			if (pre > 0) {
				tw_conn_start_h2(c);
				return 1;
			}
			int rc = pre < 0 ? TW_EAGAIN : tw_h1_parse(&r->p, tw_iobuf_head(c->in), tw_iobuf_len(c->in), &r->msg);
			if (rc == 0) {
				dispatch(c);
				return 1;
			}
			if (rc != TW_EAGAIN) {
				tw_make_request_id(w, r->rid);
				copy_slice(r->method, sizeof r->method, "-", (struct tw_slice){0, 1});
				c->close_after = 1;
				tw_iobuf_consume(c->in, tw_iobuf_len(c->in));
				tw_local_error(c, r->p.status ? (int)r->p.status : 400, r->p.why);
				return 1;
			}
			/* need more: make room (the parser's offsets are relative to the head start) */
			if (tw_iobuf_room(c->in) == 0) {
				tw_iobuf_compact(c->in);
				if (tw_iobuf_room(c->in) == 0) {
					size_t lim = r->gen->cfg->limits.max_header_bytes + 1024;
					if (c->in->cap >= lim || tw_iobuf_grow(c->in, (uint32_t)lim) != 0) {
						tw_make_request_id(w, r->rid);
						c->close_after = 1;
						tw_iobuf_consume(c->in, tw_iobuf_len(c->in));
						tw_local_error(c, 431, "request head too large");
						return 1;
					}
				}
			}
		}
		if (!c->rd_ready || c->rd_eof)
			break;
		int was_empty = tw_iobuf_len(c->in) == 0;
		ssize_t n = conn_read(c);
		if (n < 0) {
			conn_close(c);
			return 1;
		}
		if (n == 0)
			break;
		progress = 1;
		if (was_empty && c->nreq > 0)
			tw_timer_set(w->loop, &c->timer, r->gen->cfg->timeouts.client_header_ms);
	}
	if (c->rd_eof) {
		if (tw_iobuf_len(c->in) > 0)
			tw_info_rl("incomplete request head", "conn=%llu client=%s closed with an incomplete request head", (unsigned long long)c->id,
				c->peer_ip);
		conn_close(c);
		return 1;
	}
	if (tw_iobuf_len(c->in) == 0) {
		/* Idle keep-alive: hold no buffers. */
		tw_iobuf_put(&w->bufs, c->in);
		c->in = NULL;
		req_free(w, c->req);
		c->req = NULL;
	}
	return progress;
}

static int step_local(struct tw_conn *c)
{
	if (!c->wr_ready)
		return 0;
	struct tw_req *r = c->req;
	int progress = 0;
	if (r && r->sf.open && r->sf.left) {
		/* a static file (static.c): on plain TCP its head and body go out
		 * from there (sendfile); otherwise it fills c->out, written below */
		int rc = tw_static_fill(c);
		if (rc < 0) {
			conn_close(c);
			return 1;
		}
		progress = rc;
		if (!c->wr_ready)
			return progress;
	}
	uint32_t hl = c->out ? tw_iobuf_len(c->out) : 0; /* static.c lets it go under sendfile */
	if (hl) {
		ssize_t n = conn_write(c, tw_iobuf_head(c->out), hl, NULL, 0);
		if (n < 0) {
			conn_close(c);
			return 1;
		}
		if (n == 0)
			return progress;
		tw_iobuf_consume(c->out, (uint32_t)n);
		return 1;
	}
	if (r && r->sf.open && r->sf.left)
		return progress;
	finish_request(c);
	next_request(c);
	return 1;
}

static int step_linger(struct tw_conn *c)
{
	char junk[4096];
	while (c->rd_ready && !c->rd_eof) {
		ssize_t n = c->fops->recv(c, junk, sizeof junk, &c->rd_ready, &c->rd_eof);
		if (n < 0)
			break;
	}
	if (c->rd_eof || c->rd_ready) {
		conn_close(c); /* EOF or error */
		return 1;
	}
	return 0;
}

/* Lazy registration (plain TCP clients): after a run, enter epoll unless the
 * client side has nothing to wait for — its whole request read, the answer
 * not begun (upstream's events drive the connection then). Adding reports the
 * socket's current readiness, so nothing that arrived meanwhile is missed. */
static void conn_poll(struct tw_conn *c)
{
	if (!c->unpolled || c->dead)
		return;
	if (!c->lingering && (c->st == C_WAIT || c->st == C_PROXY) && c->req && c->req->reqbody.done && c->wr_ready)
		return;
	if (tw_loop_add(c->w->loop, &c->io, EPOLLIN | EPOLLOUT | EPOLLRDHUP) != 0) {
		tw_warn_rl("epoll_ctl failed", "conn=%llu: cannot watch the client socket; closing", (unsigned long long)c->id);
		conn_close(c);
		return;
	}
	c->unpolled = 0;
}

void tw_conn_run(struct tw_conn *c)
{
	if (c->in_run)
		return;
	c->in_run = 1;
	for (int guard = 0; guard < 10000 && !c->dead; guard++) {
		int progress = 0;
		if (c->lingering) {
			progress = step_linger(c);
		} else {
			switch (c->st) {
			case C_HEAD: progress = step_head(c); break;
			case C_BODY: progress = step_body(c); break;
			case C_WAIT:
				if (c->up && c->up->failed) {
					upstream_failed(c, 1, strerror(c->up->err));
					progress = 1;
				} else if (c->up && c->up->st == U_BUSY) {
					set_state(c, C_PROXY);
					progress = 1;
				}
				break;
			case C_PROXY:
				if (c->up && c->up->failed) {
					upstream_failed(c, 0, strerror(c->up->err));
					progress = 1;
				} else {
					progress = step_proxy(c);
				}
				break;
			case C_TUNNEL: progress = step_tunnel(c); break;
			case C_LOCAL: progress = step_local(c); break;
			case C_H2: progress = tw_h2_step(c); break;
			case C_CLOSED: break;
			}
		}
		if (!progress)
			break;
	}
	c->in_run = 0;
	conn_poll(c);
}

static void on_conn_timer(struct tw_loop *loop, struct tw_timer *t)
{
	struct tw_conn *c = (struct tw_conn *)((char *)t - offsetof(struct tw_conn, timer));
	struct tw_req *r = c->req;
	if (c->lingering) {
		conn_close(c);
		return;
	}
	switch (c->st) {
	case C_HEAD:
		if (c->in && tw_iobuf_len(c->in) > 0 && r != NULL) {
			tw_make_request_id(c->w, r->rid);
			c->close_after = 1;
			tw_iobuf_consume(c->in, tw_iobuf_len(c->in));
			tw_local_error(c, 408, "request head timeout");
			tw_conn_run(c);
		} else {
			conn_close(c);
		}
		return;
	case C_BODY:
		body_too_slow(c);
		tw_conn_run(c);
		return;
	case C_WAIT:
		if (c->queued) {
			respond_local_error(c, 503, "no connection slot within queue_timeout");
			tw_conn_run(c);
			return;
		}
		/* fallthrough */
	case C_PROXY:
		if (r && !r->resp_head_done) {
			c->close_after = 1;
			if (!r->reqbody.done && c->in && tw_iobuf_room(c->in) + c->in->start > 0)
				body_too_slow(c);
			else
				respond_local_error(c, 504, "upstream did not answer in time");
			tw_conn_run(c);
			return;
		}
		tw_warn_rl("transfer stalled", "rid=%s: transfer stalled; closing", r ? r->rid : "-");
		conn_close(c);
		return;
	case C_H2:
		tw_h2_timeout(c);
		return;
	default:
		conn_close(c);
		return;
	}
}


/* Drain: close idle connections; busy ones close after their response. */
void tw_conn_drain(struct tw_worker *w)
{
	struct tw_conn *c = w->conns;
	while (c != NULL) {
		struct tw_conn *next = c->next;
		c->close_after = 1;
		if (c->st == C_H2 && w->draining <= 1)
			tw_h2_drain(c); /* GOAWAY; the session ends with its last stream */
		else if (w->draining > 1 || (c->st == C_HEAD && (c->in == NULL || tw_iobuf_len(c->in) == 0)))
			conn_close(c);
		c = next;
	}
}
