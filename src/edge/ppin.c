/* ppin.c — PROXY protocol on the accept path (ppin.h, docs/proxy-protocol.md). */
#include "edge/ppin.h"

#include "core/log.h"
#include "edge/edge.h"
#include "edge/proxyproto.h"

#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

struct tw_ppwait {
	struct tw_io io; /* first: the loop hands us &io */
	struct tw_timer timer;
	struct tw_worker *w;
	const struct tw_front_ops *fops;
	struct tw_ppwait *prev, *next;
	socklen_t peerlen;
	struct sockaddr_storage peer;
};

enum { PPM_OK = 0, PPM_LOCAL, PPM_TIMEOUT, PPM_MALFORMED, PPM_UNTRUSTED, PPM_N };
static const char *const ppm_names[PPM_N] = {"ok", "local", "timeout", "malformed", "untrusted"};
static uint32_t ppm_slot[PPM_N];

void tw_ppin_init(void)
{
	for (int i = 0; i < PPM_N; i++) {
		char labels[40];
		snprintf(labels, sizeof labels, "result=\"%s\"", ppm_names[i]);
		tw_metrics_register("tapwork_proxy_protocol_total",
				    "Connections from proxy_protocol peers by how their PROXY header went "
				    "(untrusted: a peer outside `from`).",
				    TW_METRIC_COUNTER, labels, &ppm_slot[i]);
	}
}

static void count(struct tw_worker *w, int r)
{
	tw_metric_add(w->m, ppm_slot[r], 1);
}

static int from_trusted(const struct tw_conf_proxy_protocol *pp, const struct sockaddr *sa)
{
	for (size_t i = 0; i < pp->nfrom; i++)
		if (tw_cidr_contains(&pp->from[i], sa))
			return 1;
	/* an IPv4 peer on an IPv6 socket (::ffff:a.b.c.d) */
	if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)sa;
		if (IN6_IS_ADDR_V4MAPPED(&s6->sin6_addr)) {
			struct sockaddr_in s4 = {.sin_family = AF_INET, .sin_port = s6->sin6_port};
			memcpy(&s4.sin_addr, s6->sin6_addr.s6_addr + 12, 4);
			for (size_t i = 0; i < pp->nfrom; i++)
				if (tw_cidr_contains(&pp->from[i], (const struct sockaddr *)&s4))
					return 1;
		}
	}
	return 0;
}

static void unlink_wait(struct tw_ppwait *pw)
{
	struct tw_worker *w = pw->w;
	if (pw->prev)
		pw->prev->next = pw->next;
	else
		w->ppwait = pw->next;
	if (pw->next)
		pw->next->prev = pw->prev;
	w->nppwait--;
	tw_timer_cancel(w->loop, &pw->timer);
	tw_loop_del(w->loop, &pw->io);
}

static void count_drop(struct tw_worker *w, const struct sockaddr *peer, int result, const char *why)
{
	count(w, result);
	if (why && tw_log_level >= TW_LOG_INFO) {
		char ip[48];
		tw_pp_addr_text(peer, ip, sizeof ip);
		tw_info("peer=%s PROXY header %s: %s; closed", ip, ppm_names[result], why);
	}
}

static void drop(struct tw_ppwait *pw, int result, const char *why)
{
	struct tw_worker *w = pw->w;
	count_drop(w, (const struct sockaddr *)&pw->peer, result, why);
	unlink_wait(pw);
	close(pw->io.fd);
	pw->io.fd = -1;
	tw_loop_defer_free(w->loop, pw);
}

/* Peek at what has arrived and, once the header is whole, take exactly its
 * bytes off the socket (the TLS or HTTP bytes behind it stay there for the
 * connection). 1: *p holds the header; 0: not all of it yet (nothing
 * taken); TW_E*: a bad header or a dead socket, *why says which. */
static int read_header(int fd, struct tw_pp_parser *p, const char **why)
{
	uint8_t buf[TW_PP_MAX];
	ssize_t n;
	do
		n = recv(fd, buf, sizeof buf, MSG_PEEK);
	while (n == -1 && errno == EINTR);
	if (n == -1) {
		if (errno == EAGAIN || errno == EWOULDBLOCK)
			return 0;
		*why = strerror(errno);
		return TW_EIO;
	}
	if (n == 0) {
		*why = "closed before a complete header";
		return TW_EIO;
	}
	tw_pp_init(p);
	size_t used = 0;
	int rc = tw_pp_feed(p, buf, (size_t)n, &used);
	if (rc == TW_EAGAIN)
		return 0; /* the next bytes raise a new edge */
	if (rc != 0) {
		*why = p->why;
		return rc;
	}
	ssize_t got;
	do
		got = recv(fd, buf, used, 0);
	while (got == -1 && errno == EINTR);
	if (got != (ssize_t)used) {
		*why = "short read of a peeked header";
		return TW_EIO;
	}
	return 1;
}

/* The header is read: the connection starts with its client address. */
static void hand_over(struct tw_worker *w, int fd, const struct tw_front_ops *fops, const struct sockaddr *peer,
		      socklen_t peerlen, const struct tw_pp_parser *p)
{
	const struct sockaddr *sa = peer;
	socklen_t salen = peerlen;
	if (!p->info.local) {
		sa = (const struct sockaddr *)&p->info.src;
		salen = p->info.srclen;
	}
	count(w, p->info.local ? PPM_LOCAL : PPM_OK);
	if (tw_log_level >= TW_LOG_DEBUG) {
		char ip[48], cl[48];
		tw_pp_addr_text(peer, ip, sizeof ip);
		tw_pp_addr_text(sa, cl, sizeof cl);
		tw_debug("peer=%s PROXY v%u client=%s%s%s%s%s", ip, p->info.version, cl,
			 p->info.authority[0] ? " authority=" : "", p->info.authority,
			 p->info.vpce[0] ? " vpce=" : "", p->info.vpce);
	}
	tw_conn_accept(w, fd, sa, salen, fops);
	if (p->info.vpce[0] && w->conns && w->conns->io.fd == fd)
		tw_info("conn=%llu client=%s vpce=%s", (unsigned long long)w->conns->id, w->conns->peer_ip,
			p->info.vpce);
}

/* A waiting connection's socket is readable. */
static void try_header(struct tw_ppwait *pw)
{
	struct tw_pp_parser p;
	const char *why = NULL;
	int rc = read_header(pw->io.fd, &p, &why);
	if (rc == 0)
		return;
	if (rc < 0) {
		drop(pw, PPM_MALFORMED, why);
		return;
	}
	struct tw_worker *w = pw->w;
	int fd = pw->io.fd;
	const struct tw_front_ops *fops = pw->fops;
	struct sockaddr_storage peer;
	socklen_t peerlen = pw->peerlen;
	memcpy(&peer, &pw->peer, peerlen);
	unlink_wait(pw);
	pw->io.fd = -1; /* an event still queued for pw must not touch the socket */
	tw_loop_defer_free(w->loop, pw);
	hand_over(w, fd, fops, (const struct sockaddr *)&peer, peerlen, &p);
}

static void on_event(struct tw_loop *loop, struct tw_io *io, uint32_t ev)
{
	struct tw_ppwait *pw = (struct tw_ppwait *)io;
	if (pw->io.fd < 0)
		return;
	try_header(pw);
}

static void on_timeout(struct tw_loop *loop, struct tw_timer *t)
{
	struct tw_ppwait *pw = (struct tw_ppwait *)((char *)t - offsetof(struct tw_ppwait, timer));
	drop(pw, PPM_TIMEOUT, "no complete header in time");
}

void tw_ppin_accept(struct tw_worker *w, int fd, const struct sockaddr *sa, socklen_t len,
		    const struct tw_front_ops *fops)
{
	const struct tw_config *cfg = w->gen->cfg;
	const struct tw_conf_proxy_protocol *pp = &cfg->proxy_protocol;
	int tls = fops == &tw_front_tls;
	if (!cfg->has_proxy_protocol || !(tls ? pp->on_https : pp->on_http)) {
		tw_conn_accept(w, fd, sa, len, fops);
		return;
	}
	if (!from_trusted(pp, sa)) {
		count(w, PPM_UNTRUSTED);
		if (pp->others == TW_PP_OTHERS_REJECT) {
			close(fd);
			return;
		}
		tw_conn_accept(w, fd, sa, len, fops);
		return;
	}
	/* Most load balancers send the header with their first bytes: when it
	 * is already here the connection never waits (no record, no timer, no
	 * epoll registration of its own). */
	struct tw_pp_parser p;
	const char *why = NULL;
	int rc = read_header(fd, &p, &why);
	if (rc == 1) {
		hand_over(w, fd, fops, sa, len, &p);
		return;
	}
	if (rc < 0) {
		count_drop(w, sa, PPM_MALFORMED, why);
		close(fd);
		return;
	}
	struct tw_ppwait *pw = calloc(1, sizeof *pw);
	if (pw == NULL) {
		close(fd);
		return;
	}
	pw->io.fd = fd;
	pw->io.cb = on_event;
	pw->w = w;
	pw->fops = fops;
	pw->peerlen = len <= sizeof pw->peer ? len : sizeof pw->peer;
	memcpy(&pw->peer, sa, pw->peerlen);
	tw_timer_init(&pw->timer, on_timeout);
	if (tw_loop_add(w->loop, &pw->io, EPOLLIN | EPOLLRDHUP) != 0) {
		close(fd);
		free(pw);
		return;
	}
	pw->next = w->ppwait;
	if (w->ppwait)
		w->ppwait->prev = pw;
	w->ppwait = pw;
	w->nppwait++;
	tw_timer_set(w->loop, &pw->timer, pp->timeout_ms);
	/* bytes that came after the peek raise an edge at the registration */
}

void tw_ppin_drain(struct tw_worker *w)
{
	while (w->ppwait) {
		struct tw_ppwait *pw = w->ppwait;
		unlink_wait(pw);
		close(pw->io.fd);
		pw->io.fd = -1;
		tw_loop_defer_free(w->loop, pw);
	}
}
