/* h2.c — HTTP/2 from clients: a libnghttp2 session on a client connection,
 * each stream proxied as a virtual HTTP/1.1 connection.
 *
 * Request direction: the decoded header fields of a stream become an
 * HTTP/1.1 head (tw_h2_req_*: pseudo-headers checked, connection-specific
 * fields refused, :authority and host must agree), DATA frames follow as the
 * body (as-is with content-length, chunk-encoded without). The virtual
 * connection's recv() hands those bytes to the proxy state machine, which
 * parses, routes and forwards them like any HTTP/1.1 request.
 *
 * Response direction: the proxy writes an HTTP/1.1 response into the
 * virtual connection's send(); it is parsed here (tw_h1_parse, then the body
 * by its framing) into one HEADERS submission and a data provider reading a
 * bounded per-stream buffer. A full buffer ends send()'s readiness; nghttp2
 * taking bytes (the peer's window opened) sets it again and runs the stream.
 *
 * Flow control both ways: request DATA is acknowledged (WINDOW_UPDATE) only
 * when the proxy has taken it, so a slow upstream slows the client.
 *
 * Floods: client RST_STREAM and SETTINGS/PING frames are counted per 10 s
 * window (GOAWAY ENHANCE_YOUR_CALM past the configured caps); header blocks
 * are capped in compressed size and CONTINUATION count, and in decoded size
 * (limits.max_header_bytes, answered 431). */
#include "edge/h2.h"

#include "core/err.h"
#include "core/log.h"
#include "edge/edge.h"

#include <nghttp2/nghttp2.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define H2_PREFACE "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
#define H2_PREFACE_LEN 24
#define H2_BODY_CAP TW_IOBUF_SIZE      /* response bytes buffered per stream (a pooled buffer) */
#define H2_RESP_HEAD_CAP TW_IOBUF_SIZE /* response head from the proxy (as large as the proxy's) */
#define H2_STREAM_WINDOW 65535u        /* initial per-stream receive window */
#define H2_OUT_GATHER (64u * 1024u)    /* frames gathered before one send */
#define H2_OUT_CAP (4u * 1024u * 1024u)
#define H2_FLOOD_WINDOW_MS 10000u
#define H2_MAX_CONTINUATIONS 16u
#define H2_FREE_STREAMS 32u /* recycled stream objects kept per session */
#define H2_TRIM_MS 1000u    /* idle time after which those (and the output buffer) are dropped */

enum { RS_HEAD = 0, RS_BODY, RS_DONE };

struct h2_stream {
	struct tw_h2_session *s;
	int32_t id;
	struct tw_conn *vc;
	struct h2_stream *prev, *next;
	struct h2_stream *pend_next;
	uint8_t pending, h2closed, aborted, req_ended, chunked, is_head, too_big, bad;
	uint8_t submitted, deferred, body_done, started;
	int64_t req_cl;
	uint64_t req_data;
	size_t unacked;
	size_t trailer_bytes;
	struct tw_h2_req x;
	struct tw_dbuf req; /* HTTP/1.1 bytes waiting for the proxy */
	/* response */
	int rs, bm; /* bm: the body's framing, FLOW_* */
	uint64_t body_left;
	struct tw_h1_chunked ch;
	struct tw_h1_parser p;
	struct tw_h1_msg *msg;
	struct tw_iobuf *hbuf, *bbuf; /* from the worker's pool */
	char *head;
	size_t head_len;
	char *body;
	size_t b_start, b_end;
};

struct tw_h2_session {
	nghttp2_session *ng;
	struct tw_conn *c;
	struct h2_stream *streams;
	size_t nstreams;
	struct h2_stream *pend_head, *pend_tail;
	struct h2_stream *free_streams; /* recycled, with their buffers */
	unsigned nfree;
	struct tw_dbuf out;
	struct tw_task kick; /* run the session after this batch of events */
	uint64_t win_start;
	unsigned resets, control;
	size_t hblock;
	unsigned hframes;
	uint8_t terminated, closing, idle_fired, drained, trim_due;
	/* from the config the session started on */
	size_t max_list, max_block;
	unsigned max_fields, max_resets, max_control, max_streams;
	uint64_t idle_ms;
};

/* ---------- nghttp2's memory: per-thread free lists ----------
 * nghttp2 allocates and frees a dozen small objects per stream (the stream,
 * outbound items, header copies, frame buffers). Blocks up to H2_MEM_MAX
 * bytes are kept on per-thread, per-size-class free lists (bounded; a
 * worker's sessions all run on its thread) instead of going back to malloc.
 * Each block starts with a 16-byte header holding its class and size.
 * Sanitizer builds pass everything to malloc, so that use-after-free stays
 * visible. */
#if defined(__SANITIZE_ADDRESS__)
#define H2_MEM_CACHE 0
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(memory_sanitizer)
#define H2_MEM_CACHE 0
#endif
#endif
#ifndef H2_MEM_CACHE
#define H2_MEM_CACHE 1
#endif

#define H2_MEM_CLASSES 6u /* 64 .. 2048 bytes, header included */
#define H2_MEM_MAX (64u << (H2_MEM_CLASSES - 1))
#define H2_MEM_BIG 0xffu

struct mem_hdr {
	uint32_t cls;
	uint32_t pad;
	size_t size; /* requested size */
};
_Static_assert(sizeof(struct mem_hdr) == 16, "nghttp2 blocks stay 16-byte aligned");

struct mem_free {
	struct mem_free *next;
};

struct mem_cache {
	struct mem_free *head[H2_MEM_CLASSES];
	unsigned n[H2_MEM_CLASSES];
};

static _Thread_local struct mem_cache mem_tls;
static pthread_key_t mem_key;
static pthread_once_t mem_once = PTHREAD_ONCE_INIT;

static void mem_cache_drop(void *arg)
{
	struct mem_cache *mc = arg;
	for (unsigned k = 0; k < H2_MEM_CLASSES; k++) {
		while (mc->head[k]) {
			struct mem_free *f = mc->head[k];
			mc->head[k] = f->next;
			free(f);
		}
		mc->n[k] = 0;
	}
}

static void mem_key_init(void)
{
	if (pthread_key_create(&mem_key, mem_cache_drop) != 0)
		mem_key = 0;
}

/* Blocks kept per class: the small ones are the per-stream objects. */
static unsigned mem_cap(unsigned cls) { return cls < 4 ? 256u : 64u; }

static void *mem_alloc(size_t size, void *ud)
{
	(void)ud;
	size_t total = size + sizeof(struct mem_hdr);
	if (total < size)
		return NULL;
	struct mem_hdr *h;
	unsigned cls = 0;
	if (!H2_MEM_CACHE || total > H2_MEM_MAX) {
		if ((h = malloc(total)) == NULL)
			return NULL;
		cls = H2_MEM_BIG;
	} else {
		while ((64u << cls) < total)
			cls++;
		struct mem_cache *mc = &mem_tls;
		if (mc->head[cls] != NULL) {
			struct mem_free *f = mc->head[cls];
			mc->head[cls] = f->next;
			mc->n[cls]--;
			h = (struct mem_hdr *)(void *)f;
		} else if ((h = malloc(64u << cls)) == NULL) {
			return NULL;
		}
	}
	h->cls = cls;
	h->size = size;
	return h + 1;
}

static void mem_release(void *p, void *ud)
{
	(void)ud;
	if (p == NULL)
		return;
	struct mem_hdr *h = (struct mem_hdr *)p - 1;
	unsigned cls = h->cls;
	struct mem_cache *mc = &mem_tls;
	if (cls == H2_MEM_BIG || mc->n[cls] >= mem_cap(cls)) {
		free(h);
		return;
	}
	if (mc->n[0] + mc->n[1] + mc->n[2] + mc->n[3] + mc->n[4] + mc->n[5] == 0) {
		/* first block this thread keeps: free the lists when it exits */
		pthread_once(&mem_once, mem_key_init);
		pthread_setspecific(mem_key, mc);
	}
	struct mem_free *f = (struct mem_free *)(void *)h;
	f->next = mc->head[cls];
	mc->head[cls] = f;
	mc->n[cls]++;
}

static void *mem_calloc(size_t nmemb, size_t size, void *ud)
{
	if (size && nmemb > SIZE_MAX / size)
		return NULL;
	void *p = mem_alloc(nmemb * size, ud);
	if (p)
		memset(p, 0, nmemb * size);
	return p;
}

static void *mem_realloc(void *p, size_t size, void *ud)
{
	if (p == NULL)
		return mem_alloc(size, ud);
	struct mem_hdr *h = (struct mem_hdr *)p - 1;
	if (h->cls != H2_MEM_BIG && size + sizeof *h <= (64u << h->cls)) {
		h->size = size;
		return p;
	}
	void *q = mem_alloc(size, ud);
	if (q == NULL)
		return NULL;
	memcpy(q, p, h->size < size ? h->size : size);
	mem_release(p, ud);
	return q;
}

static nghttp2_mem h2_mem = {NULL, mem_alloc, mem_release, mem_calloc, mem_realloc};

nghttp2_mem *tw_h2_mem(void) { return &h2_mem; }

/* ---------- request translation (HTTP/2 fields -> HTTP/1.1 head) ---------- */

void tw_h2_req_init(struct tw_h2_req *x, size_t max_list, unsigned max_fields)
{
	memset(x, 0, sizeof *x);
	tw_dbuf_init(&x->fields, max_list + 1024);
	tw_dbuf_init(&x->pseudo, max_list + 1024);
	tw_dbuf_init(&x->cookie, max_list + 1024);
	x->content_length = -1;
	x->max_list = max_list;
	x->max_fields = max_fields;
}

void tw_h2_req_free(struct tw_h2_req *x)
{
	if (x == NULL)
		return;
	tw_dbuf_free(&x->fields);
	tw_dbuf_free(&x->pseudo);
	tw_dbuf_free(&x->cookie);
}

static int eq(const uint8_t *p, size_t n, const char *lit)
{
	size_t l = strlen(lit);
	return n == l && memcmp(p, lit, l) == 0;
}

static int eq_ci(const uint8_t *p, size_t n, const char *lit)
{
	size_t l = strlen(lit);
	return n == l && strncasecmp((const char *)p, lit, l) == 0;
}

static int fail(struct tw_h2_req *x, int rc, const char *why)
{
	x->why = why;
	return rc;
}

/* Host-ish: no controls, spaces, userinfo, path, query or fragment. The
 * bytes refused, one bit each: 0x00-0x20, 0x7f-0xff and @/?#\\"<>{}|^` */
static const uint32_t auth_bad[8] = {
    0xffffffffu,                                                                  /* 0x00-0x1f */
    (1u << 0) | (1u << ('"' - 32)) | (1u << ('#' - 32)) | (1u << ('/' - 32)) | (1u << ('<' - 32)) |
	(1u << ('>' - 32)) | (1u << ('?' - 32)),                                  /* 0x20-0x3f */
    (1u << ('@' - 64)) | (1u << ('\\' - 64)) | (1u << ('^' - 64)),                /* 0x40-0x5f */
    (1u << ('`' - 96)) | (1u << ('{' - 96)) | (1u << ('|' - 96)) | (1u << ('}' - 96)) | (1u << 31), /* 0x60-0x7f */
    0xffffffffu, 0xffffffffu, 0xffffffffu, 0xffffffffu};

static int valid_authority(const uint8_t *v, size_t n)
{
	if (n == 0)
		return 0;
	for (size_t i = 0; i < n; i++)
		if (auth_bad[v[i] >> 5] & (1u << (v[i] & 31)))
			return 0;
	return 1;
}

static int valid_path(const uint8_t *v, size_t n)
{
	if (n == 0)
		return 0;
	if (n == 1 && v[0] == '*')
		return 1;
	if (v[0] != '/')
		return 0;
	for (size_t i = 0; i < n; i++)
		if (v[i] <= 0x20 || v[i] >= 0x7f || v[i] == '#')
			return 0;
	return 1;
}

static int put_pseudo(struct tw_h2_req *x, int idx, const uint8_t *v, size_t n)
{
	if (x->pv_set[idx])
		return fail(x, TW_EPROTO, idx == TW_H2P_HOST ? "duplicate host" : "duplicate pseudo-header");
	x->pv_off[idx] = (uint32_t)x->pseudo.len;
	x->pv_len[idx] = (uint32_t)n;
	if (tw_dbuf_append(&x->pseudo, v, n) != 0)
		return fail(x, TW_ELIMIT, "header list too large");
	x->pv_set[idx] = 1;
	return 0;
}

int tw_h2_req_field(struct tw_h2_req *x, const uint8_t *name, size_t nlen, const uint8_t *value, size_t vlen)
{
	x->list_bytes += nlen + vlen + 32;
	if (x->list_bytes > x->max_list)
		return fail(x, TW_ELIMIT, "header list too large");
	if (++x->nfields > x->max_fields)
		return fail(x, TW_ELIMIT, "too many header fields");
	if (nlen == 0)
		return fail(x, TW_EPROTO, "empty field name");
	for (size_t i = 0; i < vlen; i++)
		if ((value[i] < 0x20 && value[i] != '\t') || value[i] == 0x7f)
			return fail(x, TW_EPROTO, "control character in a field value");
	if (name[0] == ':') {
		if (x->regular_seen)
			return fail(x, TW_EPROTO, "pseudo-header after a regular field");
		int idx;
		if (eq(name, nlen, ":method"))
			idx = TW_H2P_METHOD;
		else if (eq(name, nlen, ":scheme"))
			idx = TW_H2P_SCHEME;
		else if (eq(name, nlen, ":authority"))
			idx = TW_H2P_AUTHORITY;
		else if (eq(name, nlen, ":path"))
			idx = TW_H2P_PATH;
		else
			return fail(x, TW_EPROTO, "unknown or unsupported pseudo-header");
		int ok = 1;
		switch (idx) {
		case TW_H2P_METHOD: ok = vlen <= 15 && tw_h1_valid_header_name((const char *)value, vlen); break;
		case TW_H2P_SCHEME: ok = eq(value, vlen, "http") || eq(value, vlen, "https"); break;
		case TW_H2P_AUTHORITY: ok = valid_authority(value, vlen); break;
		default: ok = valid_path(value, vlen); break;
		}
		if (!ok)
			return fail(x, TW_EPROTO, "invalid pseudo-header value");
		return put_pseudo(x, idx, value, vlen);
	}
	x->regular_seen = 1;
	for (size_t i = 0; i < nlen; i++)
		if (name[i] >= 'A' && name[i] <= 'Z')
			return fail(x, TW_EPROTO, "upper-case field name");
	if (!tw_h1_valid_header_name((const char *)name, nlen))
		return fail(x, TW_EPROTO, "invalid field name");
	if (vlen > 0 && (value[0] == ' ' || value[0] == '\t' || value[vlen - 1] == ' ' || value[vlen - 1] == '\t'))
		return fail(x, TW_EPROTO, "field value with surrounding whitespace");
	if (eq(name, nlen, "connection") || eq(name, nlen, "keep-alive") || eq(name, nlen, "proxy-connection") ||
	    eq(name, nlen, "transfer-encoding") || eq(name, nlen, "upgrade"))
		return fail(x, TW_EPROTO, "connection-specific field");
	if (eq(name, nlen, "te")) {
		if (!eq_ci(value, vlen, "trailers"))
			return fail(x, TW_EPROTO, "te other than trailers");
		return 0; /* hop-by-hop: not forwarded */
	}
	if (eq(name, nlen, "host")) {
		if (!valid_authority(value, vlen))
			return fail(x, TW_EPROTO, "invalid host");
		return put_pseudo(x, TW_H2P_HOST, value, vlen);
	}
	if (eq(name, nlen, "content-length")) {
		if (vlen == 0 || vlen > 18)
			return fail(x, TW_EPROTO, "invalid content-length");
		int64_t v = 0;
		for (size_t i = 0; i < vlen; i++) {
			if (value[i] < '0' || value[i] > '9')
				return fail(x, TW_EPROTO, "invalid content-length");
			v = v * 10 + (value[i] - '0');
		}
		if (x->content_length >= 0 && x->content_length != v)
			return fail(x, TW_EPROTO, "conflicting content-length");
		x->content_length = v;
		return 0;
	}
	if (eq(name, nlen, "cookie")) {
		/* HTTP/2 may split cookies; HTTP/1.1 wants one field joined by "; " */
		if ((x->cookie.len && tw_dbuf_append(&x->cookie, "; ", 2) != 0) ||
		    tw_dbuf_append(&x->cookie, value, vlen) != 0)
			return fail(x, TW_ELIMIT, "header list too large");
		return 0;
	}
	if (tw_dbuf_append(&x->fields, name, nlen) != 0 || tw_dbuf_append(&x->fields, ": ", 2) != 0 ||
	    tw_dbuf_append(&x->fields, value, vlen) != 0 || tw_dbuf_append(&x->fields, "\r\n", 2) != 0)
		return fail(x, TW_ELIMIT, "header list too large");
	return 0;
}

static const char *pv(const struct tw_h2_req *x, int idx) { return x->pseudo.data + x->pv_off[idx]; }

int tw_h2_req_is_head(const struct tw_h2_req *x)
{
	return x->pv_set[TW_H2P_METHOD] && x->pv_len[TW_H2P_METHOD] == 4 && memcmp(pv(x, TW_H2P_METHOD), "HEAD", 4) == 0;
}

int tw_h2_req_head(struct tw_h2_req *x, int end_stream, struct tw_dbuf *out, int *chunked)
{
	*chunked = 0;
	if (x->pv_set[TW_H2P_METHOD] && x->pv_len[TW_H2P_METHOD] == 7 && memcmp(pv(x, TW_H2P_METHOD), "CONNECT", 7) == 0)
		return fail(x, TW_EPROTO, "CONNECT is not supported");
	if (!x->pv_set[TW_H2P_METHOD] || !x->pv_set[TW_H2P_SCHEME] || !x->pv_set[TW_H2P_PATH])
		return fail(x, TW_EPROTO, "missing :method, :scheme or :path");
	if (x->pv_len[TW_H2P_PATH] == 1 && pv(x, TW_H2P_PATH)[0] == '*' &&
	    !(x->pv_len[TW_H2P_METHOD] == 7 && memcmp(pv(x, TW_H2P_METHOD), "OPTIONS", 7) == 0))
		return fail(x, TW_EPROTO, ":path * without OPTIONS");
	int hidx = -1;
	if (x->pv_set[TW_H2P_AUTHORITY]) {
		hidx = TW_H2P_AUTHORITY;
		if (x->pv_set[TW_H2P_HOST] &&
		    (x->pv_len[TW_H2P_HOST] != x->pv_len[TW_H2P_AUTHORITY] ||
		     strncasecmp(pv(x, TW_H2P_HOST), pv(x, TW_H2P_AUTHORITY), x->pv_len[TW_H2P_HOST]) != 0))
			return fail(x, TW_EPROTO, ":authority and host differ");
	} else if (x->pv_set[TW_H2P_HOST]) {
		hidx = TW_H2P_HOST;
	}
	if (end_stream && x->content_length > 0)
		return fail(x, TW_EPROTO, "content-length without DATA");
	int rc = 0;
	rc |= tw_dbuf_append(out, pv(x, TW_H2P_METHOD), x->pv_len[TW_H2P_METHOD]);
	rc |= tw_dbuf_append(out, " ", 1);
	rc |= tw_dbuf_append(out, pv(x, TW_H2P_PATH), x->pv_len[TW_H2P_PATH]);
	rc |= tw_dbuf_append(out, " HTTP/1.1\r\n", 11);
	if (hidx >= 0) {
		/* absent host: the HTTP/1.1 parser answers 400 */
		rc |= tw_dbuf_append(out, "host: ", 6);
		rc |= tw_dbuf_append(out, pv(x, hidx), x->pv_len[hidx]);
		rc |= tw_dbuf_append(out, "\r\n", 2);
	}
	rc |= tw_dbuf_append(out, x->fields.data ? x->fields.data : "", x->fields.len);
	if (x->cookie.len) {
		rc |= tw_dbuf_append(out, "cookie: ", 8);
		rc |= tw_dbuf_append(out, x->cookie.data, x->cookie.len);
		rc |= tw_dbuf_append(out, "\r\n", 2);
	}
	if (x->content_length >= 0) {
		rc |= tw_dbuf_appendf(out, "content-length: %lld\r\n", (long long)x->content_length);
	} else if (!end_stream) {
		rc |= tw_dbuf_append(out, "transfer-encoding: chunked\r\n", 28);
		*chunked = 1;
	}
	rc |= tw_dbuf_append(out, "\r\n", 2);
	if (rc != 0)
		return fail(x, TW_ELIMIT, "request head too large");
	return 0;
}

int tw_h2_preface(const char *buf, size_t len)
{
	size_t n = len < H2_PREFACE_LEN ? len : H2_PREFACE_LEN;
	if (memcmp(buf, H2_PREFACE, n) != 0)
		return 0;
	return len >= H2_PREFACE_LEN ? 1 : TW_EAGAIN;
}

/* ---------- streams ---------- */

static const struct tw_front_ops stream_ops, stream_ops_secure;

static void want_flush(struct tw_h2_session *s);

static void pend(struct h2_stream *st)
{
	struct tw_h2_session *s = st->s;
	if (st->pending || s->closing)
		return;
	st->pending = 1;
	st->pend_next = NULL;
	if (s->pend_tail)
		s->pend_tail->pend_next = st;
	else
		s->pend_head = st;
	s->pend_tail = st;
	want_flush(s);
}

static void unpend(struct h2_stream *st)
{
	struct tw_h2_session *s = st->s;
	if (!st->pending)
		return;
	struct h2_stream *prev = NULL;
	for (struct h2_stream *p = s->pend_head; p; prev = p, p = p->pend_next) {
		if (p != st)
			continue;
		if (prev)
			prev->pend_next = p->pend_next;
		else
			s->pend_head = p->pend_next;
		if (s->pend_tail == p)
			s->pend_tail = prev;
		break;
	}
	st->pending = 0;
}

static struct h2_stream *stream_new(struct tw_h2_session *s, int32_t id)
{
	struct h2_stream *st = s->free_streams;
	if (st != NULL) {
		/* recycled: keep the allocations, clear the rest */
		s->free_streams = st->next;
		s->nfree--;
		struct tw_h1_msg *msg = st->msg;
		struct tw_dbuf keep[4] = {st->x.fields, st->x.pseudo, st->x.cookie, st->req};
		memset(st, 0, sizeof *st);
		st->msg = msg;
		tw_h2_req_init(&st->x, s->max_list, s->max_fields);
		st->x.fields = keep[0];
		st->x.pseudo = keep[1];
		st->x.cookie = keep[2];
		st->req = keep[3];
		tw_dbuf_reset(&st->x.fields);
		tw_dbuf_reset(&st->x.pseudo);
		tw_dbuf_reset(&st->x.cookie);
		tw_dbuf_reset(&st->req);
	} else {
		if ((st = calloc(1, sizeof *st)) == NULL)
			return NULL;
		tw_h2_req_init(&st->x, s->max_list, s->max_fields);
		/* the head, plus a window of DATA with its chunk framing */
		tw_dbuf_init(&st->req, s->max_list + 2048 + 4 * (size_t)H2_STREAM_WINDOW);
	}
	st->s = s;
	st->id = id;
	st->req_cl = -1;
	st->next = s->streams;
	if (s->streams)
		s->streams->prev = st;
	s->streams = st;
	s->nstreams++;
	return st;
}

static void stream_destroy(struct h2_stream *st);

static void stream_free(struct h2_stream *st)
{
	struct tw_h2_session *s = st->s;
	unpend(st);
	if (st->prev)
		st->prev->next = st->next;
	else
		s->streams = st->next;
	if (st->next)
		st->next->prev = st->prev;
	s->nstreams--;
	tw_iobuf_put(&s->c->w->bufs, st->hbuf);
	tw_iobuf_put(&s->c->w->bufs, st->bbuf);
	st->hbuf = st->bbuf = NULL;
	if (!s->closing && s->nfree < H2_FREE_STREAMS && st->req.alloc <= 16384 && st->x.fields.alloc <= 16384) {
		st->next = s->free_streams;
		s->free_streams = st;
		s->nfree++;
		return;
	}
	stream_destroy(st);
}

static void stream_destroy(struct h2_stream *st)
{
	tw_h2_req_free(&st->x);
	tw_dbuf_free(&st->req);
	free(st->msg);
	free(st);
}

static void rst(struct h2_stream *st, uint32_t code)
{
	struct tw_h2_session *s = st->s;
	if (!st->h2closed && !s->closing)
		nghttp2_submit_rst_stream(s->ng, NGHTTP2_FLAG_NONE, st->id, code);
	st->aborted = 1;
	if (st->vc)
		pend(st);
	want_flush(s);
}

/* An answer made here, without the proxy (431 for a header list too large). */
static void respond_simple(struct h2_stream *st, unsigned status)
{
	char code[4];
	snprintf(code, sizeof code, "%03u", status % 1000);
	nghttp2_nv nv[] = {{(uint8_t *)":status", (uint8_t *)code, 7, 3, NGHTTP2_NV_FLAG_NONE},
			   {(uint8_t *)"content-length", (uint8_t *)"0", 14, 1, NGHTTP2_NV_FLAG_NONE}};
	if (nghttp2_submit_response(st->s->ng, st->id, nv, 2, NULL) != 0)
		rst(st, NGHTTP2_INTERNAL_ERROR);
	st->submitted = 1;
	st->rs = RS_DONE;
	st->body_done = 1;
}

static void start_request(struct h2_stream *st, int end_stream)
{
	struct tw_h2_session *s = st->s;
	int chunked = 0;
	st->started = 1;
	st->is_head = (uint8_t)tw_h2_req_is_head(&st->x);
	int rc = tw_h2_req_head(&st->x, end_stream, &st->req, &chunked);
	if (rc == TW_ELIMIT) {
		respond_simple(st, 431);
		return;
	}
	if (rc != 0) {
		tw_info_rl("HTTP/2 stream and session errors", "conn=%llu client=%s h2 stream %d refused: %s", (unsigned long long)s->c->id, s->c->peer_ip,
			st->id, st->x.why ? st->x.why : "?");
		rst(st, NGHTTP2_PROTOCOL_ERROR);
		return;
	}
	st->chunked = (uint8_t)chunked;
	st->req_cl = st->x.content_length;
	st->req_ended = (uint8_t)end_stream;
	st->vc = tw_conn_new_virtual(s->c->w, s->c, s->c->fops->secure ? &stream_ops_secure : &stream_ops, st);
	if (st->vc == NULL) {
		rst(st, NGHTTP2_INTERNAL_ERROR);
		return;
	}
	pend(st);
}

static void request_end(struct h2_stream *st)
{
	if (st->req_ended || st->aborted)
		return;
	st->req_ended = 1;
	if (st->req_cl >= 0 && st->req_data != (uint64_t)st->req_cl) {
		tw_info_rl("HTTP/2 stream and session errors", "conn=%llu h2 stream %d: content-length %lld but %llu DATA bytes", (unsigned long long)st->s->c->id,
			st->id, (long long)st->req_cl, (unsigned long long)st->req_data);
		rst(st, NGHTTP2_PROTOCOL_ERROR);
		return;
	}
	if (st->chunked && tw_dbuf_append(&st->req, "0\r\n\r\n", 5) != 0) {
		rst(st, NGHTTP2_INTERNAL_ERROR);
		return;
	}
	if (st->vc) {
		st->vc->rd_ready = 1;
		pend(st);
	}
}

/* ---------- the virtual connection's front ---------- */

static ssize_t vs_recv(struct tw_conn *vc, char *p, size_t len, uint8_t *ready, uint8_t *eof)
{
	struct h2_stream *st = vc->fctx;
	(void)eof;
	if (st->aborted || (st->h2closed && !st->req_ended)) {
		*ready = 0;
		return -1;
	}
	size_t n = st->req.len < len ? st->req.len : len;
	if (n == 0) {
		*ready = 0;
		return 0;
	}
	memcpy(p, st->req.data, n);
	tw_dbuf_consume(&st->req, n);
	if (st->req.len == 0)
		*ready = 0;
	size_t ack = st->unacked < n ? st->unacked : n;
	if (ack) { /* a closed stream still gives back the connection window */
		nghttp2_session_consume(st->s->ng, st->id, ack);
		st->unacked -= ack;
		want_flush(st->s);
	}
	return (ssize_t)n;
}

static void on_chunk_data(void *ctx, const char *p, size_t n)
{
	struct h2_stream *st = ctx;
	memcpy(st->body + st->b_end, p, n);
	st->b_end += n;
}

/* Body bytes of the proxy's response: bytes accepted, -1 on error. */
static ssize_t resp_body(struct h2_stream *st, const char *p, size_t len)
{
	if (st->bm == FLOW_NONE || st->body_done)
		return (ssize_t)len; /* nothing is expected: ignore */
	if (st->b_start > 0 && st->b_start == st->b_end)
		st->b_start = st->b_end = 0;
	if (st->b_start > H2_BODY_CAP / 2) {
		memmove(st->body, st->body + st->b_start, st->b_end - st->b_start);
		st->b_end -= st->b_start;
		st->b_start = 0;
	}
	size_t room = H2_BODY_CAP - st->b_end;
	size_t take = len < room ? len : room;
	if (st->bm == FLOW_LENGTH) {
		if (take > st->body_left)
			take = (size_t)st->body_left;
		memcpy(st->body + st->b_end, p, take);
		st->b_end += take;
		st->body_left -= take;
		if (st->body_left == 0)
			st->body_done = 1;
		return (ssize_t)take;
	}
	if (st->bm == FLOW_CHUNKED) {
		size_t used = 0;
		int rc = tw_h1_chunked_scan(&st->ch, p, take, &used, on_chunk_data, st);
		if (rc == 0)
			st->body_done = 1;
		else if (rc != TW_EAGAIN)
			return -1;
		return (ssize_t)used;
	}
	memcpy(st->body + st->b_end, p, take); /* FLOW_UNTIL_CLOSE: ends when the proxy closes */
	st->b_end += take;
	return (ssize_t)take;
}

static ssize_t data_read(nghttp2_session *ng, int32_t id, uint8_t *buf, size_t length, uint32_t *flags,
			 nghttp2_data_source *src, void *ud)
{
	struct h2_stream *st = src->ptr;
	(void)ng;
	(void)id;
	(void)ud;
	size_t have = st->b_end - st->b_start;
	size_t n = have < length ? have : length;
	if (n) {
		memcpy(buf, st->body + st->b_start, n);
		st->b_start += n;
		if (st->b_start == st->b_end)
			st->b_start = st->b_end = 0;
		if (st->vc && !st->vc->wr_ready) {
			st->vc->wr_ready = 1;
			pend(st);
		}
	}
	if (st->body_done && st->b_start == st->b_end) {
		*flags |= NGHTTP2_DATA_FLAG_EOF;
		st->rs = RS_DONE;
		return (ssize_t)n;
	}
	if (n == 0) {
		st->deferred = 1;
		return NGHTTP2_ERR_DEFERRED;
	}
	return (ssize_t)n;
}

static int is_hop_by_hop(const char *n, size_t l)
{
	switch (l) {
	case 2: return strncasecmp(n, "te", 2) == 0;
	case 7: return strncasecmp(n, "upgrade", 7) == 0 || strncasecmp(n, "trailer", 7) == 0;
	case 10: return strncasecmp(n, "connection", 10) == 0 || strncasecmp(n, "keep-alive", 10) == 0;
	case 16: return strncasecmp(n, "proxy-connection", 16) == 0;
	case 17: return strncasecmp(n, "transfer-encoding", 17) == 0;
	default: return 0;
	}
}

/* How the response body reaches the stream (FLOW_*): len bytes, chunked, until the end. */
static void body_mode(struct h2_stream *st, int bm, uint64_t len)
{
	st->bm = bm;
	if (bm == FLOW_LENGTH) {
		st->body_left = len;
		if (len == 0)
			st->bm = FLOW_NONE;
	} else if (bm == FLOW_CHUNKED) {
		tw_h1_chunked_init(&st->ch, 0);
	}
}

/* Submit HEADERS: nva[1..n) are the fields, nva[0] is set to :status here. -1 on error. */
static int submit_nv(struct h2_stream *st, unsigned status, nghttp2_nv *nva, size_t n)
{
	struct tw_h2_session *s = st->s;
	char code[4] = {(char)('0' + status / 100 % 10), (char)('0' + status / 10 % 10), (char)('0' + status % 10), 0};
	nva[0] = (nghttp2_nv){(uint8_t *)":status", (uint8_t *)code, 7, 3, NGHTTP2_NV_FLAG_NONE};
	nghttp2_data_provider prd = {.source.ptr = st, .read_callback = data_read};
	if (st->bm != FLOW_NONE && st->body == NULL) {
		if ((st->bbuf = tw_iobuf_get(&s->c->w->bufs)) == NULL)
			return -1;
		st->body = st->bbuf->data;
	}
	int rv = nghttp2_submit_response(s->ng, st->id, nva, n, st->bm == FLOW_NONE ? NULL : &prd);
	if (rv != 0)
		return -1;
	st->submitted = 1;
	if (st->bm == FLOW_NONE) {
		st->body_done = 1;
		st->rs = RS_DONE;
	} else {
		st->rs = RS_BODY;
	}
	return 0;
}

/* One field for HEADERS. nghttp2 copies the fields when the response is
 * submitted and lowercases the names as it copies them (HTTP/2 wants them
 * so), so name and value are used where they lie. */
static void nv_put(nghttp2_nv *nv, const char *name, size_t nl, const char *value, size_t vl)
{
	/* a value new in every response would only churn HPACK's table */
	uint8_t fl = nl == 12 && strncasecmp(name, "x-request-id", 12) == 0 ? NGHTTP2_NV_FLAG_NO_INDEX : NGHTTP2_NV_FLAG_NONE;
	*nv = (nghttp2_nv){(uint8_t *)name, (uint8_t *)value, nl, vl, fl};
}

/* The response head is complete in st->head (a response made by tapwork
 * itself, as HTTP/1.1 text): submit HEADERS. -1 on error. */
static int submit_head(struct h2_stream *st)
{
	struct tw_h1_msg *m = st->msg;
	unsigned status = m->status;
	if (st->is_head || status == 204 || status == 304 || (status >= 100 && status < 200))
		body_mode(st, FLOW_NONE, 0);
	else if (m->chunked)
		body_mode(st, FLOW_CHUNKED, 0);
	else if (m->content_length >= 0)
		body_mode(st, FLOW_LENGTH, (uint64_t)m->content_length);
	else
		body_mode(st, FLOW_UNTIL_CLOSE, 0);
	nghttp2_nv nva[TW_H1_MAX_HEADERS_HARD + 1];
	size_t n = 1;
	for (unsigned i = 0; i < m->nheaders; i++) {
		char *name = st->head + m->headers[i].name.off;
		size_t nl = m->headers[i].name.len;
		if (is_hop_by_hop(name, nl))
			continue;
		nv_put(&nva[n++], name, nl, st->head + m->headers[i].value.off, m->headers[i].value.len);
	}
	return submit_nv(st, status, nva, n);
}

#define NV_STACK_SCRATCH 4096u

/* Fields of a proxied response as tw_response_fields() hands them over. */
struct nv_list {
	nghttp2_nv nva[TW_H1_MAX_HEADERS_HARD + 4];
	size_t n;
	char *scratch; /* values made elsewhere (Via on the caller's stack): first a
			  buffer on vs_resp_head's stack, then the stream's hbuf */
	size_t used, cap;
	int in_hbuf;
	struct h2_stream *st;
	const char *head, *head_end; /* the upstream's response head: stays put until submission */
};

static int nv_collect(void *ctx, const char *name, size_t nlen, const char *value, size_t vlen)
{
	struct nv_list *l = ctx;
	if (l->n == sizeof l->nva / sizeof l->nva[0])
		return -1;
	/* A name or value inside the upstream's head is used where it lies
	 * (nghttp2 copies the fields when the response is submitted); a value
	 * made elsewhere may be on the caller's stack (Via) and is copied. Names
	 * from elsewhere are literals or the config's. */
	uintptr_t v0 = (uintptr_t)value;
	if (vlen && (v0 < (uintptr_t)l->head || v0 + vlen > (uintptr_t)l->head_end)) {
		if (vlen > l->cap - l->used) {
			struct h2_stream *st = l->st;
			if (l->in_hbuf || (st->hbuf == NULL && (st->hbuf = tw_iobuf_get(&st->s->c->w->bufs)) == NULL) ||
			    vlen > st->hbuf->cap)
				return -1;
			l->in_hbuf = 1;
			l->scratch = st->hbuf->data;
			l->used = 0;
			l->cap = st->hbuf->cap;
		}
		char *v = l->scratch + l->used;
		memcpy(v, value, vlen);
		value = v;
		l->used += vlen;
	}
	nv_put(&l->nva[l->n++], name, nlen, value, vlen);
	return 0;
}

/* The proxy's parsed response head, straight to HEADERS (struct tw_front_ops.resp_head). */
static int vs_resp_head(struct tw_conn *vc, struct tw_req *r, const char *buf, int flow, uint64_t len)
{
	struct h2_stream *st = vc->fctx;
	if (st->aborted || st->h2closed || st->s->closing || st->rs != RS_HEAD)
		return -1;
	body_mode(st, flow, len);
	char scratch[NV_STACK_SCRATCH];
	struct nv_list l; /* not zeroed: the array is filled as far as it is used */
	l.n = 1;
	l.scratch = scratch;
	l.used = 0;
	l.cap = sizeof scratch;
	l.in_hbuf = 0;
	l.st = st;
	size_t end = 0;
	for (unsigned i = 0; i < r->msg.nheaders; i++) {
		size_t e = r->msg.headers[i].value.off + r->msg.headers[i].value.len;
		end = e > end ? e : end;
	}
	l.head = buf;
	l.head_end = buf + end;
	if (tw_response_fields(vc, r, buf, nv_collect, &l) != 0 || submit_nv(st, r->msg.status % 1000, l.nva, l.n) != 0)
		return -1;
	want_flush(st->s);
	return 0;
}

/* Response bytes from the proxy: accepted count, -1 on error. */
static ssize_t resp_feed(struct h2_stream *st, const char *p, size_t len)
{
	if (st->rs == RS_BODY)
		return resp_body(st, p, len);
	if (st->rs == RS_DONE)
		return (ssize_t)len;
	if (st->head == NULL) {
		if (st->hbuf == NULL)
			st->hbuf = tw_iobuf_get(&st->s->c->w->bufs);
		if (st->msg == NULL)
			st->msg = malloc(sizeof *st->msg);
		if (st->hbuf == NULL || st->msg == NULL)
			return -1;
		st->head = st->hbuf->data;
		struct tw_h1_limits lim = {.max_head_bytes = H2_RESP_HEAD_CAP, .max_headers = TW_H1_MAX_HEADERS_HARD};
		tw_h1_parser_init(&st->p, TW_H1_RESPONSE, &lim);
	}
	size_t room = H2_RESP_HEAD_CAP - st->head_len;
	size_t take = len < room ? len : room;
	memcpy(st->head + st->head_len, p, take);
	st->head_len += take;
	for (;;) {
		int rc = tw_h1_parse(&st->p, st->head, st->head_len, st->msg);
		if (rc == TW_EAGAIN)
			return st->head_len == H2_RESP_HEAD_CAP ? -1 : (ssize_t)take;
		if (rc != 0)
			return -1;
		size_t hl = st->p.head_len;
		if (st->msg->status >= 100 && st->msg->status < 200) {
			/* interim (100 Continue): not forwarded */
			memmove(st->head, st->head + hl, st->head_len - hl);
			st->head_len -= hl;
			tw_h1_parser_init(&st->p, TW_H1_RESPONSE, &st->p.limits);
			if (st->head_len == 0)
				return (ssize_t)take;
			continue;
		}
		if (submit_head(st) != 0)
			return -1;
		/* bytes after the head are body bytes; the body buffer is empty
		 * and larger than the head buffer, so they all fit */
		if (st->head_len > hl && resp_body(st, st->head + hl, st->head_len - hl) < 0)
			return -1;
		return (ssize_t)take;
	}
}

static ssize_t vs_send(struct tw_conn *vc, const char *a, size_t alen, const char *b, size_t blen, uint8_t *ready)
{
	struct h2_stream *st = vc->fctx;
	if (st->aborted || st->h2closed || st->s->closing) {
		*ready = 0;
		return -1;
	}
	size_t total = 0;
	const char *part[2] = {a, b};
	size_t plen[2] = {alen, blen};
	for (int i = 0; i < 2; i++) {
		size_t off = 0;
		while (off < plen[i]) {
			ssize_t n = resp_feed(st, part[i] + off, plen[i] - off);
			if (n < 0) {
				tw_warn_rl("HTTP/2 stream and session errors", "conn=%llu h2 stream %d: cannot translate the response", (unsigned long long)st->s->c->id,
					st->id);
				*ready = 0;
				return -1;
			}
			if (n == 0)
				break;
			off += (size_t)n;
			total += (size_t)n;
		}
		if (off < plen[i])
			break;
	}
	if (total < alen + blen)
		*ready = 0;
	if (st->submitted && st->deferred && (st->b_end > st->b_start || st->body_done)) {
		st->deferred = 0;
		nghttp2_session_resume_data(st->s->ng, st->id);
	}
	want_flush(st->s);
	return (ssize_t)total;
}

static void vs_shutdown_wr(struct tw_conn *vc) { (void)vc; }

static void vs_close(struct tw_conn *vc)
{
	struct h2_stream *st = vc->fctx;
	struct tw_h2_session *s = st->s;
	st->vc = NULL;
	if (s->closing)
		return; /* the session frees its streams */
	if (st->unacked) {
		nghttp2_session_consume(s->ng, st->id, st->unacked);
		st->unacked = 0;
		want_flush(s);
	}
	if (!st->h2closed && !st->aborted) {
		int complete = vc->nreq > 0;
		if (complete && st->rs == RS_BODY && st->bm == FLOW_UNTIL_CLOSE)
			st->body_done = 1; /* the response ended with the upstream connection */
		if (!complete || !st->submitted || !st->body_done) {
			rst(st, NGHTTP2_INTERNAL_ERROR);
		} else if (st->deferred) {
			st->deferred = 0;
			nghttp2_session_resume_data(s->ng, st->id);
		}
		want_flush(s);
	}
	if (st->h2closed)
		stream_free(st);
}

static const struct tw_front_ops stream_ops = {
	.name = "h2",
	.recv = vs_recv,
	.send = vs_send,
	.shutdown_wr = vs_shutdown_wr,
	.close = vs_close,
	.resp_head = vs_resp_head,
	.oneshot = 1,
};

/* The same over TLS (X-Forwarded-Proto: https and friends follow `secure`). */
static const struct tw_front_ops stream_ops_secure = {
	.name = "h2",
	.recv = vs_recv,
	.send = vs_send,
	.shutdown_wr = vs_shutdown_wr,
	.close = vs_close,
	.resp_head = vs_resp_head,
	.oneshot = 1,
	.secure = 1,
};

/* ---------- nghttp2 callbacks ---------- */

static struct h2_stream *get_stream(struct tw_h2_session *s, int32_t id)
{
	return nghttp2_session_get_stream_user_data(s->ng, id);
}

static void calm(struct tw_h2_session *s, const char *what)
{
	if (s->terminated)
		return;
	tw_warn_rl("HTTP/2 stream and session errors", "conn=%llu client=%s h2: %s; GOAWAY ENHANCE_YOUR_CALM", (unsigned long long)s->c->id, s->c->peer_ip,
		what);
	nghttp2_session_terminate_session(s->ng, NGHTTP2_ENHANCE_YOUR_CALM);
	s->terminated = 1;
}

static void count_window(struct tw_h2_session *s)
{
	uint64_t now = tw_loop_now(s->c->w->loop);
	if (now - s->win_start >= H2_FLOOD_WINDOW_MS) {
		s->win_start = now;
		s->resets = s->control = 0;
	}
}

static int on_begin_frame(nghttp2_session *ng, const nghttp2_frame_hd *hd, void *ud)
{
	struct tw_h2_session *s = ud;
	(void)ng;
	if (hd->type == NGHTTP2_HEADERS) {
		s->hblock = hd->length;
		s->hframes = 0;
	} else if (hd->type == NGHTTP2_CONTINUATION) {
		s->hblock += hd->length;
		s->hframes++;
	} else {
		return 0;
	}
	if (s->hblock > s->max_block || s->hframes > H2_MAX_CONTINUATIONS) {
		calm(s, "header block too large (CONTINUATION flood)");
		return NGHTTP2_ERR_CALLBACK_FAILURE;
	}
	return 0;
}

static int on_begin_headers(nghttp2_session *ng, const nghttp2_frame *f, void *ud)
{
	struct tw_h2_session *s = ud;
	if (f->hd.type != NGHTTP2_HEADERS || f->headers.cat != NGHTTP2_HCAT_REQUEST || s->terminated)
		return 0;
	struct h2_stream *st = stream_new(s, f->hd.stream_id);
	if (st == NULL)
		return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
	nghttp2_session_set_stream_user_data(ng, f->hd.stream_id, st);
	return 0;
}

static int on_header(nghttp2_session *ng, const nghttp2_frame *f, const uint8_t *name, size_t nlen,
		     const uint8_t *value, size_t vlen, uint8_t flags, void *ud)
{
	struct tw_h2_session *s = ud;
	(void)ng;
	(void)flags;
	if (f->hd.type != NGHTTP2_HEADERS)
		return 0;
	struct h2_stream *st = get_stream(s, f->hd.stream_id);
	if (st == NULL)
		return 0;
	if (f->headers.cat != NGHTTP2_HCAT_REQUEST) {
		/* trailers: not forwarded, but their size is capped too */
		st->trailer_bytes += nlen + vlen + 32;
		if (st->trailer_bytes > s->max_list && !st->bad) {
			st->bad = 1;
			rst(st, NGHTTP2_ENHANCE_YOUR_CALM);
		}
		return 0;
	}
	if (st->bad || st->too_big)
		return 0;
	int rc = tw_h2_req_field(&st->x, name, nlen, value, vlen);
	if (rc == TW_ELIMIT)
		st->too_big = 1;
	else if (rc != 0)
		st->bad = 1;
	return 0;
}

static int on_frame_recv(nghttp2_session *ng, const nghttp2_frame *f, void *ud)
{
	struct tw_h2_session *s = ud;
	struct h2_stream *st = NULL;
	(void)ng;
	switch (f->hd.type) {
	case NGHTTP2_HEADERS:
		st = get_stream(s, f->hd.stream_id);
		if (st == NULL)
			return 0;
		if (f->headers.cat == NGHTTP2_HCAT_REQUEST) {
			if (st->too_big) {
				tw_info_rl("HTTP/2 stream and session errors", "conn=%llu client=%s h2 stream %d: header list too large, 431",
					(unsigned long long)s->c->id, s->c->peer_ip, st->id);
				respond_simple(st, 431);
			} else if (st->bad) {
				tw_info_rl("HTTP/2 stream and session errors", "conn=%llu client=%s h2 stream %d refused: %s", (unsigned long long)s->c->id,
					s->c->peer_ip, st->id, st->x.why ? st->x.why : "?");
				rst(st, NGHTTP2_PROTOCOL_ERROR);
			} else {
				start_request(st, (f->hd.flags & NGHTTP2_FLAG_END_STREAM) != 0);
			}
		} else if (f->hd.flags & NGHTTP2_FLAG_END_STREAM) {
			request_end(st);
		}
		return 0;
	case NGHTTP2_DATA:
		st = get_stream(s, f->hd.stream_id);
		if (st != NULL && (f->hd.flags & NGHTTP2_FLAG_END_STREAM))
			request_end(st);
		return 0;
	case NGHTTP2_RST_STREAM:
		count_window(s);
		if (++s->resets > s->max_resets)
			calm(s, "too many stream resets (rapid reset)");
		return 0;
	case NGHTTP2_SETTINGS:
	case NGHTTP2_PING:
		if (f->hd.flags & NGHTTP2_FLAG_ACK)
			return 0;
		count_window(s);
		if (++s->control > s->max_control)
			calm(s, "too many SETTINGS/PING frames");
		return 0;
	default: return 0;
	}
}

static int on_data_chunk(nghttp2_session *ng, uint8_t flags, int32_t id, const uint8_t *data, size_t len, void *ud)
{
	struct tw_h2_session *s = ud;
	(void)flags;
	struct h2_stream *st = get_stream(s, id);
	if (st == NULL || st->vc == NULL || st->aborted || st->req_ended) {
		nghttp2_session_consume(ng, id, len); /* discarded: keep the windows open */
		return 0;
	}
	st->req_data += len;
	if (st->req_cl >= 0 && st->req_data > (uint64_t)st->req_cl) {
		nghttp2_session_consume(ng, id, len);
		tw_info_rl("HTTP/2 stream and session errors", "conn=%llu h2 stream %d: DATA beyond content-length", (unsigned long long)s->c->id, id);
		rst(st, NGHTTP2_PROTOCOL_ERROR);
		return 0;
	}
	int rc = 0;
	if (st->chunked && len)
		rc |= tw_dbuf_appendf(&st->req, "%zx\r\n", len);
	rc |= tw_dbuf_append(&st->req, data, len);
	if (st->chunked && len)
		rc |= tw_dbuf_append(&st->req, "\r\n", 2);
	if (rc != 0) {
		nghttp2_session_consume(ng, id, len);
		rst(st, NGHTTP2_ENHANCE_YOUR_CALM);
		return 0;
	}
	st->unacked += len;
	st->vc->rd_ready = 1;
	pend(st);
	return 0;
}

static int on_stream_close(nghttp2_session *ng, int32_t id, uint32_t code, void *ud)
{
	struct tw_h2_session *s = ud;
	(void)code;
	struct h2_stream *st = get_stream(s, id);
	if (st == NULL)
		return 0;
	nghttp2_session_set_stream_user_data(ng, id, NULL);
	st->h2closed = 1;
	if (st->vc == NULL) {
		stream_free(st);
		return 0;
	}
	if (st->rs != RS_DONE) {
		st->aborted = 1; /* reset by the client: the proxy lets go of it */
		pend(st);
	}
	return 0;
}

/* ---------- the session ---------- */

static void on_kick(struct tw_loop *loop, struct tw_task *t)
{
	struct tw_h2_session *s = (struct tw_h2_session *)((char *)t - offsetof(struct tw_h2_session, kick));
	(void)loop;
	tw_conn_run(s->c);
}

/* Output is pending: flush soon (now, when the session is running). */
static void want_flush(struct tw_h2_session *s)
{
	if (s->closing || s->c->in_run)
		return;
	tw_task_post(s->c->w->loop, &s->kick);
}

int tw_h2_start(struct tw_conn *c)
{
	const struct tw_config *cfg = c->w->gen->cfg;
	struct tw_h2_session *s = calloc(1, sizeof *s);
	if (s == NULL)
		return TW_ENOMEM;
	s->c = c;
	s->max_list = cfg->limits.max_header_bytes;
	s->max_fields = cfg->limits.max_headers;
	s->max_block = cfg->http2.max_header_block;
	s->max_resets = cfg->http2.max_resets;
	s->max_control = cfg->http2.max_control;
	s->max_streams = cfg->http2.max_concurrent_streams;
	s->idle_ms = cfg->http2.idle_ms;
	s->win_start = tw_loop_now(c->w->loop);
	tw_dbuf_init(&s->out, H2_OUT_CAP);
	tw_task_init(&s->kick, on_kick);

	nghttp2_session_callbacks *cb = NULL;
	nghttp2_option *opt = NULL;
	int rc = TW_ENOMEM;
	if (nghttp2_session_callbacks_new(&cb) != 0 || nghttp2_option_new(&opt) != 0)
		goto out;
	nghttp2_session_callbacks_set_on_begin_frame_callback(cb, on_begin_frame);
	nghttp2_session_callbacks_set_on_begin_headers_callback(cb, on_begin_headers);
	nghttp2_session_callbacks_set_on_header_callback(cb, on_header);
	nghttp2_session_callbacks_set_on_frame_recv_callback(cb, on_frame_recv);
	nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cb, on_data_chunk);
	nghttp2_session_callbacks_set_on_stream_close_callback(cb, on_stream_close);
	nghttp2_option_set_no_auto_window_update(opt, 1);
	nghttp2_option_set_max_continuations(opt, 2 * H2_MAX_CONTINUATIONS); /* ours answers first */
	nghttp2_option_set_stream_reset_rate_limit(opt, (uint64_t)s->max_resets * 2,
						   (uint64_t)(s->max_resets / 10 ? s->max_resets / 10 : 1));
	if (nghttp2_session_server_new3(&s->ng, cb, s, opt, &h2_mem) != 0)
		goto out;
	nghttp2_settings_entry iv[] = {
	    {NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, s->max_streams},
	    {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, H2_STREAM_WINDOW},
	    {NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE, (uint32_t)s->max_list},
	    {NGHTTP2_SETTINGS_ENABLE_PUSH, 0},
	};
	if (nghttp2_submit_settings(s->ng, NGHTTP2_FLAG_NONE, iv, sizeof iv / sizeof iv[0]) != 0)
		goto out;
	/* connection window: room for every stream's window */
	uint64_t win = (uint64_t)s->max_streams * H2_STREAM_WINDOW;
	if (win > (1u << 30))
		win = 1u << 30;
	if (win > 65535)
		nghttp2_session_set_local_window_size(s->ng, NGHTTP2_FLAG_NONE, 0, (int32_t)win);
	rc = 0;
out:
	nghttp2_session_callbacks_del(cb);
	nghttp2_option_del(opt);
	if (rc != 0) {
		if (s->ng)
			nghttp2_session_del(s->ng);
		tw_dbuf_free(&s->out);
		free(s);
		return rc;
	}
	c->h2 = s;
	c->st = C_H2;
	c->rd_ready = 1; /* the buffered bytes in c->in are read first */
	tw_iobuf_put(&c->w->bufs, c->out);
	c->out = NULL;
	tw_timer_set(c->w->loop, &c->timer, s->idle_ms);
	tw_debug("conn=%llu client=%s: HTTP/2", (unsigned long long)c->id, c->peer_ip);
	return 0;
}

static int run_pending(struct tw_h2_session *s)
{
	int ran = 0;
	for (int guard = 0; guard < 100000 && s->pend_head; guard++) {
		struct h2_stream *st = s->pend_head;
		s->pend_head = st->pend_next;
		if (s->pend_head == NULL)
			s->pend_tail = NULL;
		st->pending = 0;
		ran = 1;
		if (st->vc == NULL)
			continue;
		if (st->aborted)
			tw_conn_close(st->vc); /* may free st */
		else
			tw_conn_run(st->vc);
	}
	return ran;
}

/* Write what nghttp2 has to send. 1 progress, 0 none, -1 error. */
static int flush(struct tw_h2_session *s)
{
	struct tw_conn *c = s->c;
	int progress = 0;
	for (int guard = 0; guard < 256; guard++) {
		if (s->out.len) {
			if (!c->wr_ready)
				return progress;
			ssize_t n = c->fops->send(c, s->out.data, s->out.len, NULL, 0, &c->wr_ready);
			if (n < 0)
				return -1;
			if (n > 0) {
				tw_dbuf_consume(&s->out, (size_t)n);
				progress = 1;
			}
			if (s->out.len)
				return progress;
		}
		while (s->out.len < H2_OUT_GATHER) {
			const uint8_t *d = NULL;
			ssize_t n = nghttp2_session_mem_send(s->ng, &d);
			if (n < 0)
				return -1;
			if (n == 0)
				break;
			if (tw_dbuf_append(&s->out, d, (size_t)n) != 0)
				return -1;
		}
		if (s->out.len == 0)
			break;
	}
	return progress;
}

int tw_h2_step(struct tw_conn *c)
{
	struct tw_h2_session *s = c->h2;
	int progress = 0;
	/* input */
	for (int guard = 0; guard < 16 && !s->terminated; guard++) {
		if (c->in && tw_iobuf_len(c->in)) {
			ssize_t rv = nghttp2_session_mem_recv(s->ng, (const uint8_t *)tw_iobuf_head(c->in), tw_iobuf_len(c->in));
			tw_iobuf_consume(c->in, tw_iobuf_len(c->in));
			if (rv < 0) {
				tw_info_rl("HTTP/2 stream and session errors", "conn=%llu client=%s h2: %s", (unsigned long long)c->id, c->peer_ip,
					nghttp2_strerror((int)rv));
				if (!s->terminated) {
					nghttp2_session_terminate_session(s->ng, NGHTTP2_PROTOCOL_ERROR);
					s->terminated = 1;
				}
				break;
			}
			progress = 1;
		}
		if (!c->rd_ready || c->rd_eof || s->out.len > H2_OUT_GATHER)
			break;
		if (c->in == NULL && (c->in = tw_iobuf_get(&c->w->bufs)) == NULL)
			break;
		ssize_t n = c->fops->recv(c, tw_iobuf_tail(c->in), tw_iobuf_room(c->in), &c->rd_ready, &c->rd_eof);
		if (n < 0) {
			tw_conn_close(c);
			return 1;
		}
		if (n == 0)
			break;
		c->in->end += (uint32_t)n;
	}
	if (c->in && tw_iobuf_len(c->in) == 0) {
		tw_iobuf_put(&c->w->bufs, c->in);
		c->in = NULL;
	}
	if (c->rd_eof) {
		tw_conn_close(c); /* the client is gone: its streams go with it */
		return 1;
	}
	if (s->terminated && c->rd_ready) {
		/* after GOAWAY ENHANCE_YOUR_CALM or a protocol error: discard input */
		char junk[4096];
		for (int guard = 0; guard < 16 && c->rd_ready && !c->rd_eof; guard++)
			if (c->fops->recv(c, junk, sizeof junk, &c->rd_ready, &c->rd_eof) < 0)
				break;
	}
	progress |= run_pending(s);
	if (c->dead)
		return 1;
	int f = flush(s);
	if (f < 0) {
		tw_conn_close(c);
		return 1;
	}
	progress |= f;
	if (s->pend_head)
		progress = 1;
	if (s->out.len == 0 && !nghttp2_session_want_read(s->ng) && !nghttp2_session_want_write(s->ng)) {
		tw_conn_close(c);
		return 1;
	}
	if (s->nstreams == 0 && progress) {
		/* No stream open: the idle timer runs. A busy client often has
		 * none open for a moment between requests, so the recycled stream
		 * objects and the output buffer are dropped only once the session
		 * stayed idle for H2_TRIM_MS (tw_h2_timeout). */
		if (s->terminated) {
			tw_timer_set(c->w->loop, &c->timer, 1000);
		} else if (s->free_streams || s->out.alloc) {
			s->trim_due = 1;
			tw_timer_set(c->w->loop, &c->timer, s->idle_ms < H2_TRIM_MS ? s->idle_ms : H2_TRIM_MS);
		} else {
			s->trim_due = 0;
			tw_timer_set(c->w->loop, &c->timer, s->idle_ms);
		}
	}
	return progress;
}

/* Idle: hold no buffers beyond nghttp2's own state. */
static void trim(struct tw_h2_session *s)
{
	if (s->out.len == 0 && s->out.alloc) {
		tw_dbuf_free(&s->out);
		tw_dbuf_init(&s->out, H2_OUT_CAP);
	}
	while (s->free_streams) {
		struct h2_stream *st = s->free_streams;
		s->free_streams = st->next;
		s->nfree--;
		stream_destroy(st);
	}
}

void tw_h2_timeout(struct tw_conn *c)
{
	struct tw_h2_session *s = c->h2;
	if (s->nstreams > 0 && !s->terminated) {
		tw_timer_set(c->w->loop, &c->timer, s->idle_ms);
		return;
	}
	if (s->terminated || s->idle_fired) {
		tw_conn_close(c);
		return;
	}
	if (s->trim_due) {
		/* idle for H2_TRIM_MS: let go of the caches, then wait out the rest */
		s->trim_due = 0;
		trim(s);
		if (s->idle_ms > H2_TRIM_MS) {
			tw_timer_set(c->w->loop, &c->timer, s->idle_ms - H2_TRIM_MS);
			return;
		}
	}
	s->idle_fired = 1;
	nghttp2_session_terminate_session(s->ng, NGHTTP2_NO_ERROR);
	s->terminated = 1;
	tw_timer_set(c->w->loop, &c->timer, 1000);
	tw_conn_run(c);
}

void tw_h2_drain(struct tw_conn *c)
{
	struct tw_h2_session *s = c->h2;
	if (s->terminated || s->drained)
		return;
	s->drained = 1;
	nghttp2_submit_goaway(s->ng, NGHTTP2_FLAG_NONE, nghttp2_session_get_last_proc_stream_id(s->ng),
			      NGHTTP2_NO_ERROR, NULL, 0);
	want_flush(s);
}

void tw_h2_close(struct tw_conn *c)
{
	struct tw_h2_session *s = c->h2;
	if (s == NULL)
		return;
	s->closing = 1;
	s->pend_head = s->pend_tail = NULL;
	for (struct h2_stream *st = s->streams; st; st = st->next) {
		st->pending = 0;
		if (st->vc)
			tw_conn_close(st->vc);
	}
	while (s->streams)
		stream_free(s->streams);
	while (s->free_streams) {
		struct h2_stream *st = s->free_streams;
		s->free_streams = st->next;
		stream_destroy(st);
	}
	tw_task_cancel(c->w->loop, &s->kick);
	nghttp2_session_del(s->ng);
	tw_dbuf_free(&s->out);
	free(s);
	c->h2 = NULL;
}
