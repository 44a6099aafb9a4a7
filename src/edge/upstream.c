/* upstream.c — connections to upstream servers and their per-worker pools.
 *
 * A pool holds the idle keep-alive connections to one address (LIFO, so the
 * warmest connection is reused first, and the coldest time out). Pools are
 * per worker and keyed by address, so they survive config reloads. An idle
 * connection that becomes readable (the server closed it or sent junk) is
 * closed at once; one that stays idle longer than the backend's idle_timeout
 * is closed by its timer. */
#include "edge/edge.h"

#include "core/log.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>


static void up_free(struct tw_upconn *u)
{
	struct tw_worker *w = u->w;
	tw_timer_cancel(w->loop, &u->timer);
	tw_loop_del(w->loop, &u->io);
	close(u->io.fd);
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
	u->next_idle = u->prev_idle = NULL;
	p->nidle--;
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
		}
	}
	if (u->c)
		tw_conn_run(u->c);
}

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
	struct tw_upconn *u = p->idle;
	if (u != NULL) {
		unlink_idle(u);
		tw_timer_cancel(w->loop, &u->timer);
		u->st = U_BUSY;
		u->reused = 1;
		u->idle_ms = cb->idle_timeout_ms;
		u->max_idle = cb->max_idle;
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
	u->max_idle = cb->max_idle;
	tw_timer_init(&u->timer, on_up_timer);
	int rc = connect(fd, (const struct sockaddr *)&a->ss, a->len);
	if (rc == -1 && errno != EINPROGRESS) {
		tw_warn_rl("upstream connect errors", "connect %s: %s", a->text, strerror(errno));
		close(fd);
		free(u);
		return TW_EIO;
	}
	if (tw_loop_add(w->loop, &u->io, EPOLLIN | EPOLLOUT | EPOLLRDHUP) != 0) {
		close(fd);
		free(u);
		return TW_EIO;
	}
	if (rc == 0) {
		u->st = U_BUSY;
		u->wr_ready = 1;
	} else {
		u->st = U_CONNECTING;
		tw_timer_set(w->loop, &u->timer, cb->connect_timeout_ms);
	}
	(void)c;
	*out = u;
	return 0;
}

void tw_up_release(struct tw_upconn *u, int reusable)
{
	struct tw_worker *w = u->w;
	u->c = NULL;
	if (!reusable || w->draining || u->failed || u->rd_eof || u->rdhup || u->pool->nidle >= u->max_idle ||
	    (u->in && tw_iobuf_len(u->in))) {
		up_free(u);
		return;
	}
	tw_iobuf_put(&w->upbufs, u->in);
	tw_iobuf_put(&w->bufs, u->out);
	u->in = u->out = NULL;
	u->st = U_IDLE;
	u->rd_ready = 0;
	struct tw_pool *p = u->pool;
	u->prev_idle = NULL;
	u->next_idle = p->idle;
	if (p->idle)
		p->idle->prev_idle = u;
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
		struct tw_pool *next = p->next;
		free(p);
		p = next;
	}
	w->pools = NULL;
}
