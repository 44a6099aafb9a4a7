/* health.c — active health checks and the end of passive ejections.
 *
 * Runs on the main thread's loop, off the request path. Each server of a
 * backend with `health:` gets one check state machine:
 *   IDLE --interval--> CONNECTING --writable--> READING --status line--> IDLE
 * with `timeout` covering connect + response. `fall` consecutive failures
 * mark the server down, `rise` consecutive successes mark it up again. The
 * verdict is published through atomics that the workers' balancers read.
 * A reload carries each server's verdict over (same backend name + address). */
#include "edge/edge.h"

#include "core/log.h"
#include "edge/proxyproto.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

enum hc_state { HC_IDLE = 0, HC_CONNECTING, HC_READING };

struct hc {
	struct tw_io io;
	struct tw_timer timer;
	struct tw_health *h;
	size_t b, s;
	enum hc_state st;
	char buf[256];
	size_t len;
	unsigned ok, fail;
};

struct tw_health {
	struct tw_edge *e;
	struct tw_gen *g;
	struct hc *hcs;
	size_t nhcs;
	struct tw_timer eject_timer;
};

static void publish(struct tw_gen *g, size_t b, size_t s)
{
	struct tw_srv_shared *ss = &g->be[b].srv[s];
	int up = atomic_load(&ss->health_up) && atomic_load(&ss->eject_until) == 0;
	atomic_store(&g->be[b].up[s], up);
}

int tw_srv_eject(struct tw_be_shared *b, size_t server, uint64_t until_ms)
{
	uint64_t zero = 0;
	if (!atomic_compare_exchange_strong(&b->srv[server].eject_until, &zero, until_ms))
		return 0;
	atomic_store(&b->up[server], 0);
	return 1;
}

static void hc_close(struct hc *c)
{
	if (c->st != HC_IDLE) {
		tw_loop_del(c->h->e->loop, &c->io);
		close(c->io.fd);
		c->io.fd = -1;
	}
	c->st = HC_IDLE;
	c->len = 0;
}

static void hc_result(struct hc *c, int ok, const char *why)
{
	struct tw_health *h = c->h;
	struct tw_gen *g = h->g;
	const struct tw_conf_backend *cb = &g->cfg->backends[c->b];
	struct tw_srv_shared *ss = &g->be[c->b].srv[c->s];
	hc_close(c);
	int up = atomic_load(&ss->health_up);
	if (ok) {
		c->ok++;
		c->fail = 0;
		if (!up && c->ok >= cb->health.rise) {
			atomic_store(&ss->health_up, 1);
			up = 1;
			tw_info("health: backend=%s server=%s is up (%u checks passed)", cb->name,
				cb->servers[c->s].addr.text, c->ok);
		}
		/* the check says up: a passive ejection ends now, not when it times out */
		if (up && atomic_exchange(&ss->eject_until, 0) != 0)
			tw_info("backend=%s server=%s: ejection ended by a passing health check", cb->name,
				cb->servers[c->s].addr.text);
	} else {
		c->fail++;
		c->ok = 0;
		if (up && c->fail >= cb->health.fall) {
			atomic_store(&ss->health_up, 0);
			tw_warn("health: backend=%s server=%s is down (%u checks failed, last: %s)", cb->name,
				cb->servers[c->s].addr.text, c->fail, why);
		} else {
			tw_debug("health: backend=%s server=%s check failed: %s", cb->name,
				 cb->servers[c->s].addr.text, why);
		}
	}
	publish(g, c->b, c->s);
	tw_timer_set(h->e->loop, &c->timer, cb->health.interval_ms);
}

static void hc_send(struct hc *c)
{
	const struct tw_conf_backend *cb = &c->h->g->cfg->backends[c->b];
	char req[1024 + 128];
	int n = 0;
	/* send_proxy: the check is the balancer's own connection (LOCAL / UNKNOWN) */
	int sp = cb->servers[c->s].send_proxy;
	if (sp == TW_SEND_PROXY_V1)
		n = (int)tw_pp_write_v1(req, sizeof req, NULL, NULL);
	else if (sp == TW_SEND_PROXY_V2)
		n = (int)tw_pp_write_v2(req, sizeof req, NULL, NULL, NULL);
	n += snprintf(req + n, sizeof req - (size_t)n,
			 "GET %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: tapwork-health\r\nConnection: close\r\n\r\n",
			 cb->health.path, cb->health.host ? cb->health.host : cb->servers[c->s].addr.text);
	if (n < 0 || (size_t)n >= sizeof req) {
		hc_result(c, 0, "check request too long");
		return;
	}
	ssize_t w = send(c->io.fd, req, (size_t)n, MSG_NOSIGNAL);
	if (w != n) {
		hc_result(c, 0, "send failed");
		return;
	}
	c->st = HC_READING;
}

static void hc_read(struct hc *c)
{
	const struct tw_conf_backend *cb = &c->h->g->cfg->backends[c->b];
	for (;;) {
		ssize_t n = read(c->io.fd, c->buf + c->len, sizeof c->buf - 1 - c->len);
		if (n > 0) {
			c->len += (size_t)n;
			c->buf[c->len] = '\0';
			char *eol = strstr(c->buf, "\r\n");
			if (eol != NULL || c->len == sizeof c->buf - 1) {
				unsigned st = 0;
				if (c->len >= 12 && memcmp(c->buf, "HTTP/1.", 7) == 0 && c->buf[8] == ' ') {
					for (int i = 9; i < 12; i++)
						st = st * 10 + (unsigned)(c->buf[i] >= '0' && c->buf[i] <= '9' ? c->buf[i] - '0' : 100);
				}
				char why[48];
				snprintf(why, sizeof why, "status %u", st);
				hc_result(c, st >= cb->health.expect_min && st <= cb->health.expect_max, why);
				return;
			}
			if (c->len >= sizeof c->buf - 1) {
				hc_result(c, 0, "bad status line");
				return;
			}
			continue;
		}
		if (n == 0) {
			hc_result(c, 0, "closed before a status line");
			return;
		}
		if (errno == EINTR)
			continue;
		if (errno != EAGAIN)
			hc_result(c, 0, strerror(errno));
		return;
	}
}

static void hc_event(struct tw_loop *loop, struct tw_io *io, uint32_t ev)
{
	struct hc *c = (struct hc *)io;
	if (c->st == HC_IDLE)
		return;
	if (c->st == HC_CONNECTING && (ev & (EPOLLOUT | EPOLLERR | EPOLLHUP))) {
		int err = 0;
		socklen_t len = sizeof err;
		getsockopt(io->fd, SOL_SOCKET, SO_ERROR, &err, &len);
		if (err) {
			hc_result(c, 0, strerror(err));
			return;
		}
		hc_send(c);
	}
	if (c->st == HC_READING && (ev & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)))
		hc_read(c);
}

static void hc_timer(struct tw_loop *loop, struct tw_timer *t)
{
	struct hc *c = (struct hc *)((char *)t - offsetof(struct hc, timer));
	if (c->st != HC_IDLE) {
		hc_result(c, 0, "timeout");
		return;
	}
	const struct tw_conf_backend *cb = &c->h->g->cfg->backends[c->b];
	const struct tw_addr *a = &cb->servers[c->s].addr;
	int fd = socket(a->ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd == -1) {
		tw_timer_set(loop, &c->timer, cb->health.interval_ms);
		return;
	}
	c->io.fd = fd;
	c->io.cb = hc_event;
	c->len = 0;
	if (connect(fd, (const struct sockaddr *)&a->ss, a->len) == -1 && errno != EINPROGRESS) {
		int e = errno;
		close(fd);
		c->io.fd = -1;
		hc_result(c, 0, strerror(e));
		return;
	}
	c->st = HC_CONNECTING;
	if (tw_loop_add(loop, &c->io, EPOLLIN | EPOLLOUT | EPOLLRDHUP) != 0) {
		close(fd);
		c->st = HC_IDLE;
		tw_timer_set(loop, &c->timer, cb->health.interval_ms);
		return;
	}
	tw_timer_set(loop, &c->timer, cb->health.timeout_ms);
}

static void eject_tick(struct tw_loop *loop, struct tw_timer *t)
{
	struct tw_health *h = (struct tw_health *)((char *)t - offsetof(struct tw_health, eject_timer));
	struct tw_gen *g = h->g;
	uint64_t now = tw_clock_ms();
	for (size_t b = 0; b < g->cfg->nbackends; b++) {
		for (size_t s = 0; s < g->cfg->backends[b].nservers; s++) {
			struct tw_srv_shared *ss = &g->be[b].srv[s];
			uint64_t until = atomic_load(&ss->eject_until);
			if (until && now >= until && atomic_compare_exchange_strong(&ss->eject_until, &until, 0)) {
				tw_info("backend=%s server=%s: ejection over, back in rotation", g->cfg->backends[b].name,
					g->cfg->backends[b].servers[s].addr.text);
			}
			publish(g, b, s);
		}
	}
	tw_timer_set(loop, t, 100);
}

int tw_health_start(struct tw_edge *e, struct tw_gen *g)
{
	struct tw_health *h = calloc(1, sizeof *h);
	if (h == NULL)
		return TW_ENOMEM;
	h->e = e;
	h->g = tw_gen_acquire(g);
	size_t n = 0;
	for (size_t b = 0; b < g->cfg->nbackends; b++)
		if (g->cfg->backends[b].health.enabled)
			n += g->cfg->backends[b].nservers;
	h->hcs = calloc(n ? n : 1, sizeof *h->hcs);
	if (h->hcs == NULL) {
		tw_gen_release(h->g);
		free(h);
		return TW_ENOMEM;
	}
	size_t k = 0;
	for (size_t b = 0; b < g->cfg->nbackends; b++) {
		if (!g->cfg->backends[b].health.enabled)
			continue;
		for (size_t s = 0; s < g->cfg->backends[b].nservers; s++, k++) {
			struct hc *c = &h->hcs[k];
			c->h = h;
			c->b = b;
			c->s = s;
			c->io.fd = -1;
			/* a server that is down keeps needing `rise` passes */
			if (!atomic_load(&g->be[b].srv[s].health_up))
				c->ok = 0;
			tw_timer_init(&c->timer, hc_timer);
			tw_timer_set(e->loop, &c->timer, (uint64_t)(k * 7 % 50));
		}
	}
	h->nhcs = n;
	tw_timer_init(&h->eject_timer, eject_tick);
	tw_timer_set(e->loop, &h->eject_timer, 100);
	e->health = h;
	return 0;
}

void tw_health_stop(struct tw_edge *e)
{
	struct tw_health *h = e->health;
	if (h == NULL)
		return;
	for (size_t i = 0; i < h->nhcs; i++) {
		hc_close(&h->hcs[i]);
		tw_timer_cancel(e->loop, &h->hcs[i].timer);
	}
	tw_timer_cancel(e->loop, &h->eject_timer);
	/* events of this batch may still name the checks: free after it */
	tw_loop_defer_free(e->loop, h->hcs);
	tw_gen_release(h->g);
	tw_loop_defer_free(e->loop, h);
	e->health = NULL;
}
