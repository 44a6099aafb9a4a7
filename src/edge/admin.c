/* admin.c — the admin listener: /healthz, /readyz, /metrics.
 *
 * Served by the main thread (off the request path), one request per
 * connection, answered and closed. */
#include "edge/edge.h"

#include "core/log.h"
#include "k8s/controller.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#define ADMIN_REQ_MAX 8192

struct tw_admin {
	struct tw_io io;
	struct tw_edge *e;
	struct tw_addr addr;
};

struct adm_conn {
	struct tw_io io;
	struct tw_edge *e;
	struct tw_timer timer;
	char in[ADMIN_REQ_MAX];
	size_t len;
	struct tw_dbuf out;
	size_t sent;
	int responding, closed;
	struct tw_h1_parser p;
	struct tw_h1_msg msg;
};

static void adm_close(struct adm_conn *a)
{
	tw_timer_cancel(a->e->loop, &a->timer);
	tw_loop_del(a->e->loop, &a->io);
	close(a->io.fd);
	tw_dbuf_free(&a->out);
	a->closed = 1;
	tw_loop_defer_free(a->e->loop, a);
}

static void server_up_lines(struct tw_dbuf *out, void *arg)
{
	struct tw_edge *e = arg;
	struct tw_gen *g = e->gen;
	if (g == NULL)
		return;
	tw_dbuf_appendf(out, "# HELP tapwork_server_up Whether a server receives traffic (health and ejection).\n"
			     "# TYPE tapwork_server_up gauge\n");
	char esc_be[320], esc_srv[96];
	for (size_t b = 0; b < g->cfg->nbackends; b++) {
		const struct tw_conf_backend *cb = &g->cfg->backends[b];
		tw_metrics_escape(cb->name, esc_be, sizeof esc_be);
		for (size_t s = 0; s < cb->nservers; s++) {
			tw_metrics_escape(cb->servers[s].addr.text, esc_srv, sizeof esc_srv);
			tw_dbuf_appendf(out, "tapwork_server_up{backend=\"%s\",server=\"%s\"} %d\n", esc_be, esc_srv,
					atomic_load(&g->be[b].up[s]));
		}
	}
	tw_dbuf_appendf(out, "# HELP tapwork_log_lines_suppressed_total Per-event error-log lines left out by the "
			     "rate limit (log.rate).\n# TYPE tapwork_log_lines_suppressed_total counter\n"
			     "tapwork_log_lines_suppressed_total %llu\n",
			tw_log_suppressed_total());
	tw_edge_acme_metrics(e, out);
	if (e->k8s != NULL)
		tw_k8s_controller_metrics(e->k8s, out);
	tw_dbuf_appendf(out, "# HELP tapwork_config_generation Sequence number of the config in use.\n"
			     "# TYPE tapwork_config_generation gauge\ntapwork_config_generation %llu\n",
			(unsigned long long)g->id);
}

static void respond(struct adm_conn *a, int status, const char *ctype, const char *body, size_t len)
{
	tw_dbuf_appendf(&a->out, "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\nConnection: close\r\n\r\n",
			status, tw_h1_reason((unsigned)status), ctype, len);
	tw_dbuf_append(&a->out, body, len);
	a->responding = 1;
}

static void handle(struct adm_conn *a)
{
	const char *buf = a->in;
	struct tw_h1_msg *m = &a->msg;
	char path[256];
	size_t n = m->path.len < sizeof path - 1 ? m->path.len : sizeof path - 1;
	memcpy(path, buf + m->path.off, n);
	path[n] = '\0';
	int get = m->method.len == 3 && memcmp(buf + m->method.off, "GET", 3) == 0;
	if (!get) {
		respond(a, 405, "text/plain", "405 Method Not Allowed\n", 23);
		return;
	}
	if (strcmp(path, "/healthz") == 0) {
		respond(a, 200, "text/plain", "ok\n", 3);
	} else if (strcmp(path, "/readyz") == 0) {
		if (atomic_load(&a->e->draining))
			respond(a, 503, "text/plain", "draining\n", 9);
		else if (atomic_load(&a->e->k8s_waiting))
			respond(a, 503, "text/plain", "kubernetes: waiting for the first sync\n", 39);
		else
			respond(a, 200, "text/plain", "ready\n", 6);
	} else if (strcmp(path, "/metrics") == 0) {
		struct tw_dbuf body;
		tw_dbuf_init(&body, 16u << 20);
		tw_metrics_render(&body);
		respond(a, 200, "text/plain; version=0.0.4; charset=utf-8", body.data ? body.data : "", body.len);
		tw_dbuf_free(&body);
	} else {
		respond(a, 404, "text/plain", "404 Not Found\n", 14);
	}
}

static void adm_event(struct tw_loop *loop, struct tw_io *io, uint32_t ev)
{
	struct adm_conn *a = (struct adm_conn *)io;
	if (a->closed)
		return;
	if (!a->responding) {
		for (;;) {
			ssize_t n = read(io->fd, a->in + a->len, sizeof a->in - a->len);
			if (n > 0) {
				a->len += (size_t)n;
				int rc = tw_h1_parse(&a->p, a->in, a->len, &a->msg);
				if (rc == 0) {
					handle(a);
					break;
				}
				if (rc != TW_EAGAIN || a->len == sizeof a->in) {
					respond(a, 400, "text/plain", "400 Bad Request\n", 16);
					break;
				}
				continue;
			}
			if (n == 0 || (errno != EAGAIN && errno != EINTR)) {
				adm_close(a);
				return;
			}
			if (errno == EAGAIN)
				return;
		}
	}
	while (a->sent < a->out.len) {
		ssize_t n = send(io->fd, a->out.data + a->sent, a->out.len - a->sent, MSG_NOSIGNAL);
		if (n > 0) {
			a->sent += (size_t)n;
			continue;
		}
		if (n == -1 && errno == EAGAIN)
			return;
		break;
	}
	adm_close(a);
}

static void adm_timeout(struct tw_loop *loop, struct tw_timer *t)
{
	adm_close((struct adm_conn *)((char *)t - offsetof(struct adm_conn, timer)));
}

static void adm_accept(struct tw_loop *loop, struct tw_io *io, uint32_t ev)
{
	struct tw_admin *ad = (struct tw_admin *)io;
	for (;;) {
		int fd = accept4(io->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd == -1)
			return;
		struct adm_conn *a = calloc(1, sizeof *a);
		if (a == NULL) {
			close(fd);
			continue;
		}
		a->io.fd = fd;
		a->io.cb = adm_event;
		a->e = ad->e;
		tw_dbuf_init(&a->out, 32u << 20);
		tw_h1_parser_init(&a->p, TW_H1_REQUEST, NULL);
		tw_timer_init(&a->timer, adm_timeout);
		tw_timer_set(loop, &a->timer, 10000);
		if (tw_loop_add(loop, &a->io, EPOLLIN | EPOLLOUT | EPOLLRDHUP) != 0) {
			close(fd);
			tw_dbuf_free(&a->out);
			free(a);
		}
	}
}

int tw_admin_start(struct tw_edge *e, const struct tw_addr *addr, struct tw_err *err)
{
	int fd = tw_listen_socket(addr, 0, err);
	if (fd < 0)
		return fd;
	struct tw_admin *ad = calloc(1, sizeof *ad);
	if (ad == NULL) {
		close(fd);
		return tw_err_set(err, TW_ENOMEM, "out of memory");
	}
	ad->io.fd = fd;
	ad->io.cb = adm_accept;
	ad->e = e;
	ad->addr = *addr;
	if (tw_loop_add(e->loop, &ad->io, EPOLLIN) != 0) {
		close(fd);
		free(ad);
		return tw_err_set(err, TW_EIO, "epoll");
	}
	tw_metrics_set_extra(server_up_lines, e);
	e->admin = ad;
	return 0;
}

void tw_admin_stop(struct tw_edge *e)
{
	struct tw_admin *ad = e->admin;
	if (ad == NULL)
		return;
	tw_loop_del(e->loop, &ad->io);
	close(ad->io.fd);
	tw_loop_defer_free(e->loop, ad);
	e->admin = NULL;
}

int tw_admin_same(const struct tw_edge *e, const struct tw_addr *addr)
{
	return e->admin && e->admin->addr.len == addr->len && memcmp(&e->admin->addr.ss, &addr->ss, addr->len) == 0;
}
