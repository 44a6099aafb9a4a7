/* worker.c — worker threads: one loop, one SO_REUSEPORT listener each. */
#include "edge/edge.h"

#include "core/log.h"
#include "edge/ppin.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

/* Seconds a connection may wait in the kernel for its first bytes before it
 * is accepted anyway (TCP_DEFER_ACCEPT). Every edge listener's protocol has
 * the client speak first (HTTP, a TLS ClientHello, a PROXY header), so a
 * connection is handed to accept4 with its request already there: the read
 * that follows never finds the socket empty (no EAGAIN, no epoll_ctl, no
 * second wake-up per connection). A client that connects and sends nothing
 * is accepted once the kernel's first SYN-ACK retransmission (after ~1 s) is
 * acknowledged; its timeouts.client_header starts then. Until then it holds
 * no file descriptor, only a request socket in the SYN queue (bounded by the
 * listen backlog and SYN cookies). docs/internals/event-loop.md. Set before
 * listen(): a socket of the SO_REUSEPORT group that listens without it (the
 * start-up bind probe a worker inherits) would take connections at once
 * until the worker got to it. */
#define DEFER_ACCEPT_S 1

static void defer_accept(int fd, const char *text)
{
	int defer = DEFER_ACCEPT_S;
	if (setsockopt(fd, IPPROTO_TCP, TCP_DEFER_ACCEPT, &defer, sizeof defer) == -1)
		tw_debug("TCP_DEFER_ACCEPT on %s: %s", text, strerror(errno));
}

/* reuseport: an edge listener (SO_REUSEPORT group, deferred accept); 0 for
 * the admin listener. */
int tw_listen_socket(const struct tw_addr *a, int reuseport, struct tw_err *err)
{
	int fd = socket(a->ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd == -1)
		return tw_err_set(err, TW_EIO, "socket: %s", strerror(errno));
	int one = 1;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
	if (reuseport)
		setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
	if (a->ss.ss_family == AF_INET6)
		setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
	/* accepted sockets inherit it: no setsockopt per connection */
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	if (bind(fd, (const struct sockaddr *)&a->ss, a->len) == -1) {
		int e = errno;
		close(fd);
		return tw_err_set(err, TW_EIO, "bind %s: %s", a->text, strerror(e));
	}
	if (reuseport)
		defer_accept(fd, a->text);
	if (listen(fd, 4096) == -1) {
		int e = errno;
		close(fd);
		return tw_err_set(err, TW_EIO, "listen %s: %s", a->text, strerror(e));
	}
	return fd;
}

/* TLS connections accepted per loop turn. Serving one starts its handshake
 * (a key exchange and a signature or ticket decryption: ~100-300 us of CPU
 * each), and the requests of connections already in their handshake wait
 * meanwhile: a full batch of 64 held every request then in flight for
 * ~20 ms, the tail of the latency under a connection-per-request load
 * (wrk Connection: close, issue 13). The connections not taken wait in the
 * kernel's accept queue, served from the next turn on, after the events
 * of the connections already open. */
#define TLS_ACCEPT_TURN 8u

/* Accept what is queued (up to a batch), but serve nothing yet: a client's
 * first bytes usually follow its connect by a few microseconds, and reading
 * at once would mostly find the socket empty (a recv that says EAGAIN and an
 * epoll_ctl per connection). The batch is served after the loop's other
 * events (serve_accepted, from on_idle), by when the request is there. */
static void accept_on(struct tw_worker *w, struct tw_io *io, int *listening, const struct tw_front_ops *fops)
{
	unsigned batch = fops == &tw_front_tls ? TLS_ACCEPT_TURN : TW_ACCEPT_BATCH;
	while (*listening) {
		if (w->nacc >= batch) {
			w->acc_more = 1; /* edge-triggered: come back after serving these */
			return;
		}
		struct tw_accepted *a = &w->acc[w->nacc];
		a->len = sizeof a->ss;
		int fd = accept4(io->fd, (struct sockaddr *)&a->ss, &a->len, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd == -1) {
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				return;
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			if (errno == EMFILE || errno == ENFILE) {
				tw_warn("worker %u: accept: %s", w->idx, strerror(errno));
				return;
			}
			tw_error("worker %u: accept: %s", w->idx, strerror(errno));
			return;
		}
		a->fd = fd;
		a->fops = fops;
		w->nacc++;
	}
}

static void on_accept(struct tw_loop *loop, struct tw_io *io, uint32_t events);
static void on_accept_tls(struct tw_loop *loop, struct tw_io *io, uint32_t events);

/* Serve the connections accepted in this turn; when a batch filled, accept
 * the next one (served on the next turn: the wake keeps the loop from
 * sleeping meanwhile). */
static void serve_accepted(struct tw_worker *w)
{
	unsigned n = w->nacc;
	w->nacc = 0;
	for (unsigned i = 0; i < n; i++) {
		struct tw_accepted *a = &w->acc[i];
		tw_ppin_accept(w, a->fd, (struct sockaddr *)&a->ss, a->len, a->fops);
	}
	if (w->acc_more) {
		w->acc_more = 0;
		if (w->listening)
			on_accept(w->loop, &w->lio, EPOLLIN);
		if (w->listening_tls)
			on_accept_tls(w->loop, &w->lio_tls, EPOLLIN);
		if (w->nacc)
			tw_loop_wake(w->loop);
	}
}

static void close_accepted(struct tw_worker *w)
{
	for (unsigned i = 0; i < w->nacc; i++)
		close(w->acc[i].fd);
	w->nacc = 0;
}

static void on_accept(struct tw_loop *loop, struct tw_io *io, uint32_t events)
{
	struct tw_worker *w = (struct tw_worker *)((char *)io - offsetof(struct tw_worker, lio));
	accept_on(w, io, &w->listening, &tw_front_plain);
}

static void on_accept_tls(struct tw_loop *loop, struct tw_io *io, uint32_t events)
{
	struct tw_worker *w = (struct tw_worker *)((char *)io - offsetof(struct tw_worker, lio_tls));
	accept_on(w, io, &w->listening_tls, &tw_front_tls);
}

static void close_one(struct tw_worker *w, struct tw_io *io, int *listening)
{
	if (!*listening)
		return;
	tw_loop_del(w->loop, io);
	close(io->fd);
	io->fd = -1;
	*listening = 0;
}

static void close_listener(struct tw_worker *w)
{
	close_one(w, &w->lio, &w->listening);
	close_one(w, &w->lio_tls, &w->listening_tls);
}


static int open_one(struct tw_worker *w, struct tw_io *io, const struct tw_addr *a, tw_io_cb cb, int fd)
{
	struct tw_err err = {0};
	if (fd < 0)
		fd = tw_listen_socket(a, 1, &err);
	if (fd < 0) {
		tw_error("worker %u: %s", w->idx, err.msg);
		return fd;
	}
	defer_accept(fd, a->text); /* an inherited socket too */
	io->fd = fd;
	io->cb = cb;
	if (tw_loop_add(w->loop, io, EPOLLIN) != 0) {
		close(fd);
		return TW_EIO;
	}
	return 0;
}

static int same_addr(const struct tw_addr *a, const struct tw_addr *b)
{
	return a->len == b->len && memcmp(&a->ss, &b->ss, a->len) == 0;
}

/* Make the worker's listeners match cfg: unchanged ones are kept. */
static int sync_listeners(struct tw_worker *w, const struct tw_config *cfg, int http_fd)
{
	int rc = 0;
	if (w->listening && (!cfg->has_http || !same_addr(&w->laddr, &cfg->listen_http)))
		close_one(w, &w->lio, &w->listening);
	if (cfg->has_http && !w->listening) {
		if (open_one(w, &w->lio, &cfg->listen_http, on_accept, http_fd) == 0) {
			w->laddr = cfg->listen_http;
			w->listening = 1;
		} else {
			rc = TW_EIO;
		}
	} else if (http_fd >= 0) {
		close(http_fd);
	}
	if (w->listening_tls && (!cfg->has_https || !same_addr(&w->laddr_tls, &cfg->listen_https)))
		close_one(w, &w->lio_tls, &w->listening_tls);
	if (cfg->has_https && !w->listening_tls) {
		if (open_one(w, &w->lio_tls, &cfg->listen_https, on_accept_tls, -1) == 0) {
			w->laddr_tls = cfg->listen_https;
			w->listening_tls = 1;
		} else {
			rc = TW_EIO;
		}
	}
	return rc;
}

static void maybe_exit(struct tw_worker *w)
{
	if (w->draining && w->nconns == 0 && !w->exited) {
		w->exited = 1;
		tw_loop_stop(w->loop);
	}
}

static void on_drain_deadline(struct tw_loop *loop, struct tw_timer *t)
{
	struct tw_worker *w = (struct tw_worker *)((char *)t - offsetof(struct tw_worker, drain_timer));
	if (w->nconns)
		tw_warn("worker %u: drain deadline: closing %zu connections", w->idx, w->nconns);
	w->draining = 2;
	tw_conn_drain(w);
	w->exited = 1;
	tw_loop_stop(loop);
}

/* Runs on the worker thread after tw_workers_notify(). */
static void on_wake(struct tw_loop *loop, void *arg)
{
	struct tw_worker *w = arg;
	struct tw_edge *e = w->edge;
	if (atomic_load(&e->draining)) {
		if (!w->draining) {
			w->draining = 1;
			close_listener(w);
			tw_ppin_drain(w);
			tw_timer_init(&w->drain_timer, on_drain_deadline);
			tw_timer_set(loop, &w->drain_timer, w->gen->cfg->timeouts.drain_ms);
		}
		tw_conn_drain(w);
		maybe_exit(w);
		return;
	}
	/* Also reached from serve_accepted's self-wake: accept what is pending. */
	if (w->listening)
		on_accept(loop, &w->lio, EPOLLIN);
	if (w->listening_tls)
		on_accept_tls(loop, &w->lio_tls, EPOLLIN);
	struct tw_gen *cur = atomic_load(&e->current);
	if (cur == w->gen)
		return;
	struct tw_gen *g = tw_gen_acquire(cur);
	tw_gen_release(w->gen);
	w->gen = g;
	sync_listeners(w, g->cfg, -1);
	atomic_store(&w->gen_id, g->id);
}

static void on_idle(struct tw_loop *loop, void *arg)
{
	struct tw_worker *w = arg;
	if (w->nacc)
		serve_accepted(w);
	if (w->alog.len)
		tw_alog_flush(w);
	tw_front_tls_flush(); /* held TLS records go out before the loop waits */
	if (w->draining)
		maybe_exit(w);
}

/* Every TRIM_TICK_MS: when the worker stayed idle for the whole last tick (no
 * request begun, none in flight), give pooled memory back — within half a
 * second of the last request. Under load the in-flight count touches zero
 * now and then (a client waiting for its last answers before sending the
 * next batch); trimming at such a moment cost a munmap of every pooled
 * buffer and a fresh mmap + page faults for each a moment later (9 % of the
 * CPU under h2load -c32 -m10). */
#define TRIM_TICK_MS 250u
static void on_trim(struct tw_loop *loop, struct tw_timer *t)
{
	struct tw_worker *w = (struct tw_worker *)((char *)t - offsetof(struct tw_worker, trim_timer));
	if (w->idx == 0 && ++w->trim_ticks % (1000u / TRIM_TICK_MS) == 0)
		tw_log_limits_flush(); /* summaries of rate-limited log lines, once a second */
	int quiet = w->started == w->trim_started;
	w->trim_started = w->started;
	if (w->inflight == 0 && quiet) {
		tw_iobuf_pool_trim(&w->bufs, 4);
		tw_iobuf_pool_trim(&w->upbufs, 4);
		tw_req_pool_trim(w, 4);
	}
	tw_timer_set(loop, t, TRIM_TICK_MS);
}

static void *worker_main(void *arg)
{
	struct tw_worker *w = arg;
	tw_timer_init(&w->trim_timer, on_trim);
	tw_timer_set(w->loop, &w->trim_timer, TRIM_TICK_MS);
	tw_loop_run(w->loop);
	close_accepted(w);
	tw_alog_flush(w);
	tw_ppin_drain(w);
	tw_conn_drain(w);
	tw_up_pools_free(w);
	tw_iobuf_pool_drain(&w->bufs);
	tw_iobuf_pool_drain(&w->upbufs);
	tw_req_pool_trim(w, 0);
	atomic_fetch_add(&w->edge->workers_exited, 1);
	tw_loop_wake(w->edge->loop);
	return NULL;
}

int tw_workers_start(struct tw_edge *e, struct tw_err *err)
{
	e->workers = calloc(e->nworkers, sizeof *e->workers);
	if (e->workers == NULL)
		return tw_err_set(err, TW_ENOMEM, "out of memory");
	struct tw_gen *g = atomic_load(&e->current);
	tw_ppin_init();
	/* Bind once here so a busy port is reported before any thread starts. */
	int probe = -1;
	if (g->cfg->has_http && (probe = tw_listen_socket(&g->cfg->listen_http, 1, err)) < 0)
		return probe;
	if (g->cfg->has_https) {
		int p2 = tw_listen_socket(&g->cfg->listen_https, 1, err);
		if (p2 < 0) {
			if (probe >= 0)
				close(probe);
			return p2;
		}
		close(p2);
	}
	sigset_t all, old;
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &old);
	int rc = 0;
	for (unsigned i = 0; i < e->nworkers && rc == 0; i++) {
		struct tw_worker *w = &e->workers[i];
		w->idx = i;
		w->edge = e;
		if ((w->acc = calloc(TW_ACCEPT_BATCH, sizeof *w->acc)) == NULL) {
			rc = tw_err_set(err, TW_ENOMEM, "out of memory");
			break;
		}
		w->bufs.max_free = 1024; /* of 128 KiB (virtual; RSS is what was touched); trimmed once idle */
		w->upbufs.max_free = 1024;
		w->alog_fd = e->alog_fd;
		tw_dbuf_init(&w->alog, 1u << 20);
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		w->rng[0] = (uint64_t)ts.tv_nsec * 6364136223846793005ull + i + 1;
		w->rng[1] = ((uint64_t)getpid() << 32) ^ (uint64_t)ts.tv_sec ^ ((uint64_t)(i + 1) << 48);
		if (tw_loop_new(&w->loop) != 0 || tw_metrics_add_shard(&w->m) != 0) {
			rc = tw_err_set(err, TW_ENOMEM, "worker setup failed");
			break;
		}
		w->gen = tw_gen_acquire(g);
		atomic_store(&w->gen_id, g->id);
		/* Worker 0 takes over the probe socket. */
		if (sync_listeners(w, g->cfg, i == 0 ? probe : -1) != 0) {
			rc = tw_err_set(err, TW_EIO, "cannot open the listeners");
			break;
		}
		if (i == 0)
			probe = -1;
		tw_loop_set_wake(w->loop, on_wake, w);
		tw_loop_set_idle(w->loop, on_idle, w);
		if (pthread_create(&w->thread, NULL, worker_main, w) != 0) {
			rc = tw_err_set(err, TW_EIO, "pthread_create failed");
			break;
		}
	}
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (probe >= 0)
		close(probe);
	return rc;
}

/* After a reload: wait (briefly, bounded) until every worker serves the new
 * generation, so "config reloaded" in the log means new requests see it. */
int tw_workers_wait_gen(struct tw_edge *e, uint64_t id)
{
	for (int spin = 0; spin < 4000; spin++) {
		unsigned done = 0;
		for (unsigned i = 0; i < e->nworkers; i++)
			done += atomic_load(&e->workers[i].gen_id) >= id || e->workers[i].exited;
		if (done == e->nworkers)
			return 0;
		struct timespec ts = {0, 250000};
		nanosleep(&ts, NULL);
	}
	return TW_ETIMEDOUT;
}

void tw_workers_notify(struct tw_edge *e)
{
	for (unsigned i = 0; i < e->nworkers; i++)
		if (e->workers[i].loop)
			tw_loop_wake(e->workers[i].loop);
}

void tw_workers_join(struct tw_edge *e)
{
	for (unsigned i = 0; i < e->nworkers; i++) {
		struct tw_worker *w = &e->workers[i];
		if (w->thread)
			pthread_join(w->thread, NULL);
		close_listener(w);
		tw_gen_release(w->gen);
		tw_loop_free(w->loop);
		tw_dbuf_free(&w->alog);
		free(w->acc);
	}
	free(e->workers);
	e->workers = NULL;
}
