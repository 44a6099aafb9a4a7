/* tls_front.c — the client transport over TLS (struct tw_front_ops).
 *
 * Nonblocking OpenSSL on the accepted socket: the handshake happens inside
 * the first reads (SSL_read on an accept-state SSL). Each connection holds a
 * reference to the TLS store of the generation it was accepted on, so a
 * certificate swap (a new generation) never disturbs connections in flight.
 * Reads continue until OpenSSL says WANT_READ (a short TLS read does not mean
 * the socket is drained). Writes of a head plus body that fit one record are
 * coalesced into one SSL_write. A write of more than one record (a static
 * file, a large answer) has all its records but the last encrypted into a
 * per-thread staging buffer and sent with one send() (MSG_MORE), then the
 * last record directly: one system call for up to four records instead of
 * one each. Bytes of the staging buffer the socket did not take wait in the
 * connection's pend buffer, sent before anything else; since the last
 * record of a write is never staged, the caller always comes back (it still
 * holds that record's bytes) and nothing is left behind unsent. kTLS
 * (SSL_sendfile) would avoid the copy, but needs the kernel's "tls" module
 * (CONFIG_TLS), which the kernels we run on lack; docs/static.md. */
#include "edge/edge.h"

#include "core/log.h"
#include "tls/tls.h"

#include <errno.h>
#include <openssl/bio.h>
#include <openssl/err.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

struct tls_front {
	SSL *ssl;
	struct tw_tls_store *store;
	int handshake_done;
	int fd;
	int drained; /* the last socket read was short: no bytes left in the kernel */
	int in_recv; /* inside tls_recv's SSL_read */
	int short_now; /* ... and a read in it was short */
	struct tw_conn *c;
	int staging;     /* tls_send is encrypting records into stage[] */
	char *pend;      /* staged bytes the socket has not taken yet */
	size_t pend_off, pend_len;
	/* Records held back to go out with the next ones (see "Coalescing"):
	 * hold[0..hold_len) is encrypted output not handed to the kernel yet. */
	int holding;    /* bio_write appends to hold[] instead of sending */
	int app_sent;   /* an application record went out (or is held) */
	char *hold;     /* HOLD_CAP bytes, allocated on first use */
	size_t hold_len;
	struct tls_front *held_prev, *held_next; /* on held_list: flushed before the loop waits */
	int on_list;
	int fin_after_pend; /* shutdown_wr came while pend was not empty */
};

#define REC_PLAIN 16384u /* plaintext bytes in a full TLS record */
/* four records with their overhead (header, tag, TLS 1.3 type, CBC padding) */
#define STAGE_CAP (4u * (REC_PLAIN + 512u))
static _Thread_local char stage[STAGE_CAP];
static _Thread_local size_t stage_len;

/* Coalescing (issue 13). A connection's TLS 1.3 NewSessionTicket is written
 * by OpenSSL inside the SSL_read that completes the handshake; a client that
 * sends its request with its Finished (every HTTP client) then gets the
 * ticket, the answer and, on Connection: close, close_notify and the FIN as
 * one send and one segment instead of four (each loopback segment costs the
 * sender a softirq pass and the receiver a wake-up). What is held:
 *   - the ticket, when the same SSL_read also returned application data
 *     (a request, so an answer follows); otherwise it is sent at once;
 *   - the first answer of a connection whose client asked to close, if it
 *     fits HOLD_ANSWER: held until close_notify joins it (tw_front_tls_
 *     quiet_close), or until the loop is about to wait (tw_front_tls_flush,
 *     from the worker's idle hook), whichever is first.
 * Any other write sends what is held in the same sendmsg, first. Held bytes
 * are at most HOLD_CAP and go to a socket whose queue holds nothing of ours
 * but the (acknowledged) handshake flight, so the kernel takes them whole;
 * should it not, the rest waits in pend like staged records. */
#define HOLD_ANSWER 4096u
#define HOLD_CAP (HOLD_ANSWER + 2048u)
static _Thread_local struct tls_front *held_list;

static void held_unlink(struct tls_front *f)
{
	if (!f->on_list)
		return;
	if (f->held_prev)
		f->held_prev->held_next = f->held_next;
	else
		held_list = f->held_next;
	if (f->held_next)
		f->held_next->held_prev = f->held_prev;
	f->held_prev = f->held_next = NULL;
	f->on_list = 0;
}

static void held_link(struct tls_front *f)
{
	if (f->on_list)
		return;
	f->held_prev = NULL;
	f->held_next = held_list;
	if (held_list)
		held_list->held_prev = f;
	held_list = f;
	f->on_list = 1;
}

/* Append to hold[]: 0, or -1 when it would not fit (the caller sends). */
static int hold_put(struct tls_front *f, const char *p, size_t len)
{
	if (len > HOLD_CAP - f->hold_len)
		return -1;
	if (f->hold == NULL && (f->hold = malloc(HOLD_CAP)) == NULL)
		return -1;
	memcpy(f->hold + f->hold_len, p, len);
	f->hold_len += len;
	return 0;
}

static void hold_drop(struct tls_front *f)
{
	free(f->hold);
	f->hold = NULL;
	f->hold_len = 0;
	held_unlink(f);
}

/* A write OpenSSL makes inside SSL_read once the TLS 1.3 handshake is
 * complete: the NewSessionTicket (or a KeyUpdate answer). */
static int post_handshake(struct tls_front *f)
{
	if (SSL_version(f->ssl) != TLS1_3_VERSION)
		return 0;
	return SSL_is_init_finished(f->ssl) || SSL_get_state(f->ssl) == TLS_ST_SW_SESSION_TICKET;
}

/* Send hold[] then in[0..len) with one sendmsg. Returns bytes of in[] taken
 * (hold[] always goes first), or -1 with errno. Held bytes the socket did
 * not take stay in hold[]. */
static ssize_t send_with_hold(struct tls_front *f, const char *in, size_t len, int flags)
{
	struct iovec iov[2] = {{f->hold, f->hold_len}, {(void *)in, len}};
	struct msghdr mh = {.msg_iov = iov, .msg_iovlen = len ? 2 : 1};
	for (;;) {
		ssize_t n = sendmsg(f->fd, &mh, flags | MSG_NOSIGNAL);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -1;
		size_t got = (size_t)n;
		if (got < f->hold_len) {
			memmove(f->hold, f->hold + got, f->hold_len - got);
			f->hold_len -= got;
			errno = EAGAIN;
			return -1;
		}
		got -= f->hold_len;
		hold_drop(f);
		return (ssize_t)got;
	}
}

/* Send what is held: 1 all gone, 0 the rest moved to pend (socket full),
 * -1 error. */
static int hold_flush(struct tls_front *f, int flags)
{
	if (f->hold_len == 0) {
		hold_drop(f);
		return 1;
	}
	if (send_with_hold(f, NULL, 0, flags) == 0 || f->hold_len == 0)
		return 1;
	if (errno != EAGAIN && errno != EWOULDBLOCK) {
		hold_drop(f);
		return -1;
	}
	/* Cannot be with what is held (see above), but lose nothing: the rest
	 * goes out before any later byte (pend is flushed first). */
	char *p = malloc(f->hold_len + (f->pend ? f->pend_len - f->pend_off : 0));
	if (p == NULL) {
		hold_drop(f);
		return -1;
	}
	size_t n = 0;
	if (f->pend) {
		n = f->pend_len - f->pend_off;
		memcpy(p, f->pend + f->pend_off, n);
		free(f->pend);
	}
	memcpy(p + n, f->hold, f->hold_len);
	f->pend = p;
	f->pend_off = 0;
	f->pend_len = n + f->hold_len;
	hold_drop(f);
	return 0;
}

void tw_front_tls_flush(void)
{
	while (held_list) {
		struct tls_front *f = held_list;
		held_unlink(f);
		if (f->hold_len)
			hold_flush(f, 0); /* an error shows at the connection's next write or read */
	}
}

/* Send what waits in f->pend: 1 all gone, 0 some left (EAGAIN), -1 error. */
static int pend_flush(struct tls_front *f)
{
	while (f->pend_len > f->pend_off) {
		ssize_t n = send(f->fd, f->pend + f->pend_off, f->pend_len - f->pend_off, MSG_NOSIGNAL);
		if (n > 0) {
			f->pend_off += (size_t)n;
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return 0;
		return -1;
	}
	free(f->pend);
	f->pend = NULL;
	f->pend_off = f->pend_len = 0;
	return 1;
}

/* Our own socket BIO: recv/send with MSG_NOSIGNAL, and it notes whether the
 * last read drained the socket, so a TLS read that got everything can end
 * the read readiness without the extra read that would say EAGAIN. */
static BIO_METHOD *sock_bio_method;
static pthread_once_t sock_bio_once = PTHREAD_ONCE_INIT;

static int bio_read(BIO *b, char *out, size_t len, size_t *got)
{
	struct tls_front *f = BIO_get_data(b);
	BIO_clear_retry_flags(b);
	if (f->in_recv && f->short_now) {
		/* A read in this same SSL_read drained the socket (e.g. the
		 * ClientHello, before our flight was written): bytes that came
		 * since will raise a new edge, so skip the recv that would say
		 * EAGAIN now. */
		BIO_set_retry_read(b);
		return -1;
	}
	for (;;) {
		ssize_t n = recv(f->fd, out, len, 0);
		if (n > 0) {
			f->drained = (size_t)n < len && !f->c->rdhup;
			f->short_now = f->drained;
			*got = (size_t)n;
			return 1;
		}
		if (n == 0) {
			*got = 0;
			return 0;
		}
		if (errno == EINTR)
			continue;
		if (errno == EAGAIN || errno == EWOULDBLOCK)
			BIO_set_retry_read(b);
		f->drained = 1;
		return -1;
	}
}

static int bio_write(BIO *b, const char *in, size_t len, size_t *put)
{
	struct tls_front *f = BIO_get_data(b);
	BIO_clear_retry_flags(b);
	if (f->staging) {
		if (len > STAGE_CAP - stage_len)
			return -1; /* cannot be: tls_send stages what fits */
		memcpy(stage + stage_len, in, len);
		stage_len += len;
		*put = len;
		return 1;
	}
	if ((f->holding || (f->in_recv && post_handshake(f))) && !f->pend && hold_put(f, in, len) == 0) {
		*put = len;
		return 1;
	}
	if (f->pend) {
		int pr = pend_flush(f); /* staged bytes go first */
		if (pr < 0)
			return -1;
		if (pr == 0) {
			BIO_set_retry_write(b);
			return -1;
		}
	}
	if (f->hold_len) {
		ssize_t n = send_with_hold(f, in, len, 0);
		if (n > 0) {
			*put = (size_t)n;
			return 1;
		}
		if (n == 0 || errno == EAGAIN || errno == EWOULDBLOCK)
			BIO_set_retry_write(b);
		return -1;
	}
	for (;;) {
		ssize_t n = send(f->fd, in, len, MSG_NOSIGNAL);
		if (n >= 0) {
			*put = (size_t)n;
			return 1;
		}
		if (errno == EINTR)
			continue;
		if (errno == EAGAIN || errno == EWOULDBLOCK)
			BIO_set_retry_write(b);
		return -1;
	}
}

static long bio_ctrl(BIO *b, int cmd, long num, void *ptr)
{
	switch (cmd) {
	case BIO_CTRL_FLUSH: return 1;
	case BIO_CTRL_PUSH:
	case BIO_CTRL_POP: return 0;
	default: return 0;
	}
}

static int bio_create(BIO *b)
{
	BIO_set_init(b, 1);
	return 1;
}

static void make_method(void)
{
	BIO_METHOD *m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "tapwork socket");
	if (m == NULL)
		return;
	BIO_meth_set_read_ex(m, bio_read);
	BIO_meth_set_write_ex(m, bio_write);
	BIO_meth_set_ctrl(m, bio_ctrl);
	BIO_meth_set_create(m, bio_create);
	sock_bio_method = m;
}

static int tls_open(struct tw_conn *c)
{
	struct tw_tls_store *st = c->w->gen->tls;
	SSL_CTX *ctx = st ? tw_tls_store_ctx(st) : NULL;
	if (ctx == NULL)
		return TW_EINVAL;
	struct tls_front *f = calloc(1, sizeof *f);
	if (f == NULL)
		return TW_ENOMEM;
	pthread_once(&sock_bio_once, make_method);
	f->fd = c->io.fd;
	f->c = c;
	f->ssl = SSL_new(ctx);
	BIO *bio = sock_bio_method ? BIO_new(sock_bio_method) : NULL;
	if (f->ssl == NULL || bio == NULL) {
		BIO_free(bio);
		SSL_free(f->ssl);
		free(f);
		return TW_ENOMEM;
	}
	BIO_set_data(bio, f);
	SSL_set_bio(f->ssl, bio, bio);
	SSL_set_mode(f->ssl, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
				     SSL_MODE_RELEASE_BUFFERS);
	SSL_set_read_ahead(f->ssl, 1); /* whole records (and more) per recv */
	SSL_set_accept_state(f->ssl);
	f->store = tw_tls_store_acquire(st);
	c->fctx = f;
	return 0;
}

static void handshake_finished(struct tw_conn *c, struct tls_front *f)
{
	f->handshake_done = 1;
	const unsigned char *alpn = NULL;
	unsigned alen = 0;
	SSL_get0_alpn_selected(f->ssl, &alpn, &alen);
	tw_debug("conn=%llu TLS %s %s alpn=%.*s", (unsigned long long)c->id, SSL_get_version(f->ssl),
		 SSL_get_cipher_name(f->ssl), (int)alen, alpn ? (const char *)alpn : "");
}

/* Map an SSL result to the front contract. */
static ssize_t ssl_result(struct tw_conn *c, struct tls_front *f, int ret, uint8_t *ready, uint8_t *eof,
			  int reading)
{
	int e = SSL_get_error(f->ssl, ret);
	switch (e) {
	case SSL_ERROR_WANT_READ:
		if (reading)
			*ready = 0;
		else
			c->rd_ready = 0, *ready = 0;
		return 0;
	case SSL_ERROR_WANT_WRITE:
		if (reading)
			c->wr_ready = 0;
		else
			*ready = 0;
		return 0;
	case SSL_ERROR_ZERO_RETURN:
		if (reading) {
			*eof = 1;
			*ready = 0;
			return 0;
		}
		return -1;
	case SSL_ERROR_SYSCALL:
		if (reading && ERR_peek_error() == 0 && (errno == 0 || errno == ECONNRESET)) {
			*eof = 1;
			*ready = 0;
			return 0;
		}
		/* fallthrough */
	default: {
		unsigned long err = ERR_get_error();
		if (!f->handshake_done && err != 0) {
			char buf[256];
			ERR_error_string_n(err, buf, sizeof buf);
			tw_info_rl("TLS handshake failures", "conn=%llu client=%s TLS handshake failed: %s", (unsigned long long)c->id, c->peer_ip,
				buf);
		}
		ERR_clear_error();
		*ready = 0;
		return -1;
	}
	}
}

/* SSL_get_error() needs an empty error queue before each call; failures
 * empty it after themselves, so it is almost always empty already and a peek
 * is cheaper than clearing all its slots on every record. */
static void err_reset(void)
{
	if (ERR_peek_error() != 0)
		ERR_clear_error();
}

static ssize_t tls_recv(struct tw_conn *c, char *p, size_t len, uint8_t *ready, uint8_t *eof)
{
	struct tls_front *f = c->fctx;
	size_t n = 0;
	if (f->pend && pend_flush(f) == 1 && f->fin_after_pend)
		shutdown(f->fd, SHUT_WR); /* see tls_shutdown_wr */
	size_t held = f->hold_len;
	err_reset();
	f->in_recv = 1;
	f->short_now = 0;
	int ret = SSL_read_ex(f->ssl, p, len, &n);
	f->in_recv = 0;
	if (!f->handshake_done && SSL_is_init_finished(f->ssl))
		handshake_finished(c, f);
	/* A ticket written by this read waits for the answer to the request it
	 * brought; with no request yet it goes now. */
	if (f->hold_len > held && ret != 1 && !f->on_list && hold_flush(f, 0) < 0) {
		*ready = 0;
		return -1;
	}
	if (ret == 1) {
		/* Everything the kernel had is decrypted and handed out. */
		if (f->drained && !SSL_has_pending(f->ssl) && n < len)
			*ready = 0;
		return (ssize_t)n;
	}
	return ssl_result(c, f, ret, ready, eof, 1);
}

static ssize_t tls_send(struct tw_conn *c, const char *a, size_t alen, const char *b, size_t blen,
			uint8_t *ready)
{
	struct tls_front *f = c->fctx;
	static _Thread_local char coalesce[16384];
	const char *p = a;
	size_t len = alen;
	if (alen && blen && alen + blen <= sizeof coalesce) {
		memcpy(coalesce, a, alen);
		memcpy(coalesce + alen, b, blen);
		p = coalesce;
		len = alen + blen;
	} else if (!alen) {
		p = b;
		len = blen;
	}
	if (f->pend) {
		int pr = pend_flush(f);
		if (pr < 0) {
			*ready = 0;
			return -1;
		}
		if (pr == 0) {
			*ready = 0;
			return 0;
		}
	}
	if (f->handshake_done && !f->app_sent && len <= HOLD_ANSWER && c->req && c->req->client_close) {
		/* The first answer of a connection that closes after it: held for
		 * close_notify (or the loop's next wait), with the ticket if any. */
		f->app_sent = 1;
		size_t n = 0;
		err_reset();
		f->holding = 1;
		int ret = SSL_write_ex(f->ssl, p, len, &n);
		f->holding = 0;
		if (f->hold_len)
			held_link(f);
		if (ret == 1)
			return (ssize_t)n;
		return ssl_result(c, f, ret, ready, NULL, 0);
	}
	f->app_sent = 1;
	if (f->hold_len && len > REC_PLAIN) {
		int hr = hold_flush(f, 0); /* before the staged records */
		if (hr <= 0) {
			*ready = 0;
			return hr;
		}
	}
	size_t done = 0;
	if (len > REC_PLAIN && f->handshake_done) {
		/* every record but the last into stage[], then one send */
		f->staging = 1;
		stage_len = 0;
		while (len - done > REC_PLAIN && STAGE_CAP - stage_len >= REC_PLAIN + 512u) {
			size_t n = 0;
			err_reset();
			if (SSL_write_ex(f->ssl, p + done, REC_PLAIN, &n) != 1 || n == 0)
				break;
			done += n;
		}
		f->staging = 0;
		err_reset();
		size_t off = 0;
		while (off < stage_len) {
			ssize_t w = send(f->fd, stage + off, stage_len - off, MSG_NOSIGNAL | MSG_MORE);
			if (w > 0) {
				off += (size_t)w;
				continue;
			}
			if (w < 0 && errno == EINTR)
				continue;
			if (w < 0 && errno != EAGAIN && errno != EWOULDBLOCK) {
				*ready = 0;
				return -1;
			}
			break;
		}
		if (off < stage_len) {
			/* the socket is full: the rest waits, sent first next time */
			f->pend = malloc(stage_len - off);
			if (f->pend == NULL) {
				*ready = 0;
				return -1;
			}
			memcpy(f->pend, stage + off, stage_len - off);
			f->pend_off = 0;
			f->pend_len = stage_len - off;
			*ready = 0;
			return (ssize_t)done;
		}
		if (len - done > REC_PLAIN)
			return (ssize_t)done; /* more than one record left: the caller comes back */
	}
	size_t n = 0;
	err_reset();
	int ret = SSL_write_ex(f->ssl, p + done, len - done, &n);
	if (ret == 1)
		return (ssize_t)(done + n);
	if (done > 0) {
		/* the staged records are out; the last waits for the socket */
		ssize_t r = ssl_result(c, f, ret, ready, NULL, 0);
		return r < 0 ? r : (ssize_t)done;
	}
	return ssl_result(c, f, ret, ready, NULL, 0);
}

/* close_notify joins what is held, and all of it goes out in one send that
 * leaves the segment open (MSG_MORE) for the FIN of the shutdown that
 * follows: answer, close_notify and FIN in one segment. 1 when everything
 * is with the kernel, 0 when some waits in pend (the FIN must wait too). */
static int send_close_notify(struct tls_front *f)
{
	if (!(SSL_get_shutdown(f->ssl) & SSL_SENT_SHUTDOWN)) {
		ERR_clear_error();
		f->holding = 1;
		SSL_shutdown(f->ssl); /* close_notify, best effort */
		f->holding = 0;
		ERR_clear_error();
	}
	if (f->pend && pend_flush(f) == 0)
		return 0;
	return f->hold_len == 0 || hold_flush(f, MSG_MORE) != 0;
}

static void tls_shutdown_wr(struct tw_conn *c)
{
	struct tls_front *f = c->fctx;
	if (f && f->handshake_done && !send_close_notify(f)) {
		/* the socket is full: the FIN follows the last pending byte
		 * (tls_recv flushes pend first; lingering reads come there) */
		f->fin_after_pend = 1;
		return;
	}
	shutdown(c->io.fd, SHUT_WR);
}

int tw_front_tls_quiet_close(struct tw_conn *c)
{
	struct tls_front *f = c->fctx;
	if (c->fops != &tw_front_tls || f == NULL || !f->handshake_done || !f->drained || SSL_has_pending(f->ssl))
		return 0;
	if (!send_close_notify(f))
		return 0; /* bytes wait for the socket: linger (tls_shutdown_wr) */
	/* The FIN now, on the still open segment. close() alone would add it
	 * too, but should bytes of the client have come in meanwhile it would
	 * send a reset instead and drop the unsent answer with it. */
	shutdown(c->io.fd, SHUT_WR);
	return 1;
}

static void tls_close(struct tw_conn *c)
{
	struct tls_front *f = c->fctx;
	tw_loop_del(c->w->loop, &c->io);
	if (f != NULL) {
		if (f->hold_len && f->pend == NULL)
			hold_flush(f, 0); /* a closing path that did not say goodbye: best effort */
		hold_drop(f);
		free(f->pend);
		SSL_free(f->ssl);
		tw_tls_store_release(f->store);
		free(f);
		c->fctx = NULL;
	}
	close(c->io.fd);
}

const struct tw_front_ops tw_front_tls = {
	.name = "tls",
	.open = tls_open,
	.recv = tls_recv,
	.send = tls_send,
	.shutdown_wr = tls_shutdown_wr,
	.close = tls_close,
	.secure = 1,
};

int tw_front_tls_alpn_is(const struct tw_conn *c, const char *proto)
{
	const struct tls_front *f = c->fctx;
	const unsigned char *alpn = NULL;
	unsigned alen = 0;
	if (f == NULL || c->fops != &tw_front_tls)
		return 0;
	SSL_get0_alpn_selected(f->ssl, &alpn, &alen);
	return alpn && alen == strlen(proto) && memcmp(alpn, proto, alen) == 0;
}
