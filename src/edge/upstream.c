/* upstream.c — connections to upstream servers and their per-worker pools.
 *
 * A pool holds the idle keep-alive connections to one address (LIFO, so the
 * warmest connection is reused first, and the coldest time out). Pools are
 * per worker and keyed by address, so they survive config reloads. An idle
 * connection that becomes readable (the server closed it or sent junk) is
 * closed at once; one that stays idle longer than the backend's idle_timeout
 * (or the server's own Keep-Alive: timeout) is closed by its timer.
 *
 * Sizing: without `max_idle` the pool sizes itself to the load. It counts
 * the connections it has handed out (busy) and keeps peak, the largest busy
 * seen recently: a connection coming back is kept idle while busy + idle
 * stays within peak (and idle within `idle_ceiling`), so steady load with any
 * number of concurrent requests reuses the same connections and opens none.
 * Once a second peak decays by 1/8 towards the largest busy of that second
 * and the coldest idle connections above it are closed: after a burst the
 * pool gives its connections back gradually, instead of all at once when
 * they time out or never. `max_idle` fixes the pool size instead. */
#include "edge/edge.h"

#include "core/log.h"
#include "http/keepalive.h"
#include "edge/ppout.h"

#include <errno.h>
#include <limits.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#define POOL_TICK_MS 1000
/* idle_ceiling of a backend built by code that predates the key (0) */
#define POOL_CEILING_DEFAULT 1024


static void up_free(struct tw_upconn *u)
{
	struct tw_worker *w = u->w;
	tw_timer_cancel(w->loop, &u->timer);
	tw_loop_del(w->loop, &u->io);
	close(u->io.fd);
	free(u->pp_hdr);
	u->pp_hdr = NULL;
	tw_iobuf_put(&w->upbufs, u->in);
	tw_iobuf_put(&w->bufs, u->out);
	u->dead = 1;
	tw_loop_defer_free(w->loop, u);
}

static void unlink_idle(struct tw_upconn *u)
{
	struct tw_pool *p = u->pool;
	if (u->prev_idle)
		u->prev_idle->next_idle = u->next_idle;
	else
		p->idle = u->next_idle;
	if (u->next_idle)
		u->next_idle->prev_idle = u->prev_idle;
	else
		p->idle_tail = u->prev_idle;
	u->next_idle = u->prev_idle = NULL;
	p->nidle--;
}

/* Close the coldest idle connections of a self-sizing pool above its size. */
static void pool_trim(struct tw_pool *p)
{
	struct tw_upconn *u;
	while ((u = p->idle_tail) != NULL && u->max_idle == UINT_MAX &&
	       (p->busy + p->nidle > p->peak || p->nidle > u->ceiling)) {
		unlink_idle(u);
		up_free(u);
	}
}

static void on_pool_tick(struct tw_loop *loop, struct tw_timer *t)
{
	struct tw_pool *p = (struct tw_pool *)((char *)t - offsetof(struct tw_pool, tick));
	unsigned keep = p->win > p->busy ? p->win : p->busy;
	unsigned decayed = p->peak - (p->peak + 7) / 8; /* reaches 0 */
	p->peak = keep > decayed ? keep : decayed;
	p->win = p->busy;
	pool_trim(p);
	if (p->busy + p->nidle > 0)
		tw_timer_set(loop, &p->tick, POOL_TICK_MS);
}

static void pool_take(struct tw_pool *p)
{
	p->busy++;
	if (p->busy > p->win)
		p->win = p->busy;
	if (p->busy > p->peak)
		p->peak = p->busy;
	if (!tw_timer_armed(&p->tick))
		tw_timer_set(p->w->loop, &p->tick, POOL_TICK_MS);
}

/* send_proxy: the header goes first, as soon as the connection is up. A
 * fresh socket's send buffer is empty, so the ~100 bytes go whole or the
 * connection counts as failed. */
static void send_pp(struct tw_upconn *u)
{
	if (u->pp_hdr == NULL)
		return;
	ssize_t n;
	do
		n = send(u->io.fd, u->pp_hdr, u->pp_len, MSG_NOSIGNAL);
	while (n == -1 && errno == EINTR);
	if (n != (ssize_t)u->pp_len) {
		u->failed = 1;
		u->err = n == -1 ? errno : EIO;
	}
	free(u->pp_hdr);
	u->pp_hdr = NULL;
}

static void on_up_event(struct tw_loop *loop, struct tw_io *io, uint32_t ev)
{
	struct tw_upconn *u = (struct tw_upconn *)io;
	if (u->dead)
		return;
	if (u->st == U_IDLE) {
		/* Edge-triggered: a write-space edge (ACKs of the last request arriving late)
		 * can be reported after the connection went back to the pool. Only input,
		 * hang-up or error mean the server closed it or sent something unasked. */
		if (!(ev & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)))
			return;
		unlink_idle(u);
		up_free(u);
		return;
	}
	if (ev & (EPOLLRDHUP | EPOLLHUP | EPOLLERR))
		u->rdhup = 1;
	if (ev & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR))
		u->rd_ready = 1;
	if (ev & (EPOLLOUT | EPOLLHUP | EPOLLERR))
		u->wr_ready = 1;
	if (u->st == U_CONNECTING && (ev & (EPOLLOUT | EPOLLERR | EPOLLHUP))) {
		int err = 0;
		socklen_t len = sizeof err;
		if (getsockopt(u->io.fd, SOL_SOCKET, SO_ERROR, &err, &len) == -1)
			err = errno;
		if (err == 0 && (ev & EPOLLERR))
			err = ECONNREFUSED;
		tw_timer_cancel(loop, &u->timer);
		if (err) {
			u->failed = 1;
			u->err = err;
		} else {
			u->st = U_BUSY;
			send_pp(u);
		}
	}
	if (u->c)
		tw_conn_run(u->c);
}

/* An idle connection's timeout or a connect's. A busy connection taken from
 * the pool may still have its idle timer armed (tw_up_get): nothing to do. */
static void on_up_timer(struct tw_loop *loop, struct tw_timer *t)
{
	struct tw_upconn *u = (struct tw_upconn *)((char *)t - offsetof(struct tw_upconn, timer));
	if (u->st == U_IDLE) {
		unlink_idle(u);
		up_free(u);
		return;
	}
	if (u->st == U_CONNECTING) {
		u->failed = 1;
		u->err = ETIMEDOUT;
		if (u->c)
			tw_conn_run(u->c);
	}
}

static struct tw_pool *pool_for(struct tw_worker *w, const struct tw_addr *a)
{
	for (struct tw_pool *p = w->pools; p; p = p->next)
		if (p->addr.len == a->len && memcmp(&p->addr.ss, &a->ss, a->len) == 0)
			return p;
	struct tw_pool *p = calloc(1, sizeof *p);
	if (p == NULL)
		return NULL;
	p->addr = *a;
	p->w = w;
	tw_timer_init(&p->tick, on_pool_tick);
	p->next = w->pools;
	w->pools = p;
	return p;
}

int tw_up_get(struct tw_worker *w, struct tw_gen *g, size_t backend, size_t server, struct tw_conn *c,
	      struct tw_upconn **out)
{
	const struct tw_conf_backend *cb = &g->cfg->backends[backend];
	struct tw_be_worker *bw = &g->wk[w->idx].be[backend];
	struct tw_pool *p = bw->pools[server];
	if (p == NULL && (p = bw->pools[server] = pool_for(w, &cb->servers[server].addr)) == NULL)
		return TW_ENOMEM;
	const struct tw_srv_shared *ss = &g->be[backend].srv[server];
	unsigned max_idle = cb->has_max_idle ? cb->max_idle : UINT_MAX;
	unsigned ceiling = cb->idle_ceiling ? cb->idle_ceiling : POOL_CEILING_DEFAULT;
	int sp = cb->servers[server].send_proxy;
	struct tw_upconn *u = sp ? NULL : p->idle; /* a pooled one never carried a header */
	if (u != NULL) {
		unlink_idle(u);
		/* The idle timer stays armed: firing on a busy connection does
		 * nothing (on_up_timer), and the release that ends this request
		 * only pushes it later, which costs no heap operation. Under steady
		 * load a pooled connection so pays no timer work per request
		 * instead of an insert and a removal. */
		u->st = U_BUSY;
		u->reused = 1;
		u->idle_ms = cb->idle_timeout_ms;
		u->max_idle = max_idle;
		u->ceiling = ceiling;
		pool_take(p);
		tw_metric_add(w->m, ss->m_up_reuse, 1);
		*out = u;
		return 0;
	}
	const struct tw_addr *a = &cb->servers[server].addr;
	int fd = socket(a->ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd == -1)
		return TW_EIO;
	int one = 1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	u = calloc(1, sizeof *u);
	if (u == NULL) {
		close(fd);
		return TW_ENOMEM;
	}
	u->io.fd = fd;
	u->io.cb = on_up_event;
	u->w = w;
	u->pool = p;
	u->idle_ms = cb->idle_timeout_ms;
	u->max_idle = max_idle;
	u->ceiling = ceiling;
	tw_timer_init(&u->timer, on_up_timer);
	if (sp && tw_ppout_make(c, sp, &u->pp_hdr, &u->pp_len) != 0) {
		close(fd);
		free(u);
		return TW_ENOMEM;
	}
	u->pp_private = sp != 0;
	int rc = connect(fd, (const struct sockaddr *)&a->ss, a->len);
	if (rc == -1 && errno != EINPROGRESS) {
		tw_warn_rl("upstream connect errors", "connect %s: %s", a->text, strerror(errno));
		close(fd);
		free(u->pp_hdr);
		free(u);
		return TW_EIO;
	}
	if (tw_loop_add(w->loop, &u->io, EPOLLIN | EPOLLOUT | EPOLLRDHUP) != 0) {
		close(fd);
		free(u->pp_hdr);
		free(u);
		return TW_EIO;
	}
	if (rc == 0) {
		u->st = U_BUSY;
		u->wr_ready = 1;
		send_pp(u);
	} else {
		u->st = U_CONNECTING;
		tw_timer_set(w->loop, &u->timer, cb->connect_timeout_ms);
	}
	pool_take(p);
	tw_metric_add(w->m, ss->m_up_open, 1);
	*out = u;
	return 0;
}

/* Keep-Alive: timeout=N, max=M (http/keepalive.h): the server closes the
 * connection after N idle seconds, or after M more requests. A pooled
 * connection must not outlive either, or the next request on it races the
 * server's close. */
void tw_up_note_keepalive(struct tw_upconn *u, const char *buf, const struct tw_h1_msg *m)
{
	int i = tw_h1_find_header(buf, m, "keep-alive", 0);
	if (i < 0)
		return;
	const struct tw_h1_header *h = &m->headers[i];
	struct tw_keepalive ka;
	tw_keepalive_parse(buf + h->value.off, h->value.len, &ka);
	if (ka.timeout_s >= 0) {
		/* a second's margin for the request on its way when the server's timer fires */
		uint64_t ms = ka.timeout_s > 1 ? (uint64_t)(ka.timeout_s - 1) * 1000 : 0;
		if (ms < u->idle_ms)
			u->idle_ms = ms;
	}
	if (ka.max == 0)
		u->ka_last = 1; /* no request may follow */
}

void tw_up_release(struct tw_upconn *u, int reusable)
{
	struct tw_worker *w = u->w;
	struct tw_pool *p = u->pool;
	u->c = NULL;
	if (p->busy > 0)
		p->busy--;
	int room = u->max_idle != UINT_MAX ? p->nidle < u->max_idle
					   : p->nidle < u->ceiling && p->busy + p->nidle < p->peak;
	if (!reusable || u->pp_private || !room || w->draining || u->failed || u->rd_eof || u->rdhup || u->ka_last ||
	    u->idle_ms == 0 || (u->in && tw_iobuf_len(u->in))) {
		up_free(u);
		return;
	}
	tw_iobuf_put(&w->upbufs, u->in);
	tw_iobuf_put(&w->bufs, u->out);
	u->in = u->out = NULL;
	u->st = U_IDLE;
	u->rd_ready = 0;
	u->prev_idle = NULL;
	u->next_idle = p->idle;
	if (p->idle)
		p->idle->prev_idle = u;
	else
		p->idle_tail = u;
	p->idle = u;
	p->nidle++;
	tw_timer_set(w->loop, &u->timer, u->idle_ms);
}

void tw_up_pools_free(struct tw_worker *w)
{
	struct tw_pool *p = w->pools;
	while (p) {
		while (p->idle) {
			struct tw_upconn *u = p->idle;
			unlink_idle(u);
			up_free(u);
		}
		tw_timer_cancel(w->loop, &p->tick);
		struct tw_pool *next = p->next;
		free(p);
		p = next;
	}
	w->pools = NULL;
}
