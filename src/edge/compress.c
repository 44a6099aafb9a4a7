/* compress.c — response compression on the proxy path (see compress.h and
 * docs/compression.md).
 *
 * Per worker (thread): a few idle encoders per coding, reused stream after
 * stream, and the count of streams compressing now (max_streams). Per
 * answer: struct tw_cz, an encoder and one output buffer from the worker's
 * pool. The output is chunk-framed with fixed-width sizes ("%06x\r\n"): an
 * HTTP/1.1 client reads it as it is, an HTTP/2 stream decodes the framing
 * into DATA frames. */
#include "edge/compress.h"

#include "core/err.h"
#include "core/log.h"
#include "edge/edge.h"
#include "http/accept_enc.h"
#include "http/zenc.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define POOL_PER_CODING 8
#define CHUNK_HDR 8        /* "%06x\r\n" */
#define CHUNK_TRAILER 2    /* "\r\n" */
#define LAST_CHUNK 5       /* "0\r\n\r\n" */
#define MIN_ROOM (CHUNK_HDR + CHUNK_TRAILER + LAST_CHUNK + 64)

struct tw_cz {
	struct tw_zenc *enc;
	struct tw_iobuf *out;
	uint8_t coding;
	uint8_t finished, unflushed, failed;
	uint64_t in_bytes, out_bytes;
};

/* ---- per worker ---- */

struct cz_worker {
	struct tw_zenc *idle[TW_CODING_N][POOL_PER_CODING];
	unsigned nidle[TW_CODING_N];
	unsigned active;
};

static pthread_key_t wkey;
static pthread_once_t once = PTHREAD_ONCE_INIT;

enum { R_OK = 0, R_ERROR, R_FALLBACK, R_BUSY, R_N };
static const char *const result_names[R_N] = {"ok", "error", "fallback", "busy"};
static uint32_t m_total[TW_CODING_N][R_N], m_in[TW_CODING_N], m_out[TW_CODING_N];
static int metrics_ok;

static void worker_free(void *p)
{
	struct cz_worker *cw = p;
	for (int c = 0; c < TW_CODING_N; c++)
		for (unsigned i = 0; i < cw->nidle[c]; i++)
			tw_zenc_free(cw->idle[c][i]);
	free(cw);
}

static void init_once(void)
{
	pthread_key_create(&wkey, worker_free);
	int rc = 0;
	for (int c = 1; c < TW_CODING_N; c++) {
		char lb[64];
		for (int k = 0; k < R_N; k++) {
			snprintf(lb, sizeof lb, "coding=\"%s\",result=\"%s\"", tw_coding_name((enum tw_coding)c),
				 result_names[k]);
			rc |= tw_metrics_register("tapwork_compress_total",
						  "Answers chosen for compression, by coding and outcome.",
						  TW_METRIC_COUNTER, lb, &m_total[c][k]);
		}
		snprintf(lb, sizeof lb, "coding=\"%s\"", tw_coding_name((enum tw_coding)c));
		rc |= tw_metrics_register("tapwork_compress_in_bytes_total", "Body bytes fed to the encoders.",
					  TW_METRIC_COUNTER, lb, &m_in[c]);
		rc |= tw_metrics_register("tapwork_compress_out_bytes_total", "Encoded body bytes sent.",
					  TW_METRIC_COUNTER, lb, &m_out[c]);
	}
	metrics_ok = rc == 0;
}

static struct cz_worker *worker_get(void)
{
	pthread_once(&once, init_once);
	struct cz_worker *cw = pthread_getspecific(wkey);
	if (cw == NULL) {
		cw = calloc(1, sizeof *cw);
		if (cw == NULL || pthread_setspecific(wkey, cw) != 0) {
			free(cw);
			return NULL;
		}
	}
	return cw;
}

static void count(struct tw_worker *w, int coding, int result)
{
	if (metrics_ok && coding > 0 && coding < TW_CODING_N)
		tw_metric_add(w->m, m_total[coding][result], 1);
}

/* ---- configuration ---- */

static const struct tw_conf_compress *conf_for(const struct tw_req *r)
{
	const struct tw_config *cfg = r->gen->cfg;
	const struct tw_conf_compress *z = cfg->compress;
	if (r->site < cfg->nsites && cfg->sites[r->site].compress)
		z = cfg->sites[r->site].compress;
	if (r->route && r->route->compress)
		z = r->route->compress;
	return z && !z->off ? z : NULL;
}

static int level_of(const struct tw_conf_compress *z, int coding)
{
	return coding == TW_CODING_ZSTD ? (int)z->level_zstd : coding == TW_CODING_BR ? (int)z->level_br : (int)z->level_gzip;
}

int tw_cz_conf_equal(const struct tw_conf_compress *a, const struct tw_conf_compress *b)
{
	if (a == NULL || b == NULL)
		return a == b;
	if (a->off != b->off || a->nencodings != b->nencodings || a->level_zstd != b->level_zstd ||
	    a->level_br != b->level_br || a->level_gzip != b->level_gzip || a->min_size != b->min_size ||
	    a->ntypes != b->ntypes || a->max_streams != b->max_streams || a->skip_private != b->skip_private)
		return 0;
	for (size_t i = 0; i < a->nencodings; i++)
		if (a->encodings[i] != b->encodings[i])
			return 0;
	for (size_t i = 0; i < a->ntypes; i++)
		if (strcmp(a->types[i], b->types[i]) != 0)
			return 0;
	return 1;
}

/* ---- the request ---- */

static int name_is(const char *buf, struct tw_slice s, const char *name, size_t n)
{
	return s.len == n && strncasecmp(buf + s.off, name, n) == 0;
}

void tw_cz_request(struct tw_conn *c, struct tw_req *r, const char *buf)
{
	(void)c;
	memset(&r->czq, 0, sizeof r->czq);
	const struct tw_conf_compress *z = conf_for(r);
	if (z == NULL)
		return;
	r->czq.conf = z;
	const struct tw_h1_msg *m = &r->msg;
	struct tw_ae ae;
	tw_ae_init(&ae);
	int any = 0;
	for (unsigned i = 0; i < m->nheaders; i++) {
		struct tw_slice n = m->headers[i].name, v = m->headers[i].value;
		if (name_is(buf, n, "accept-encoding", 15)) {
			tw_ae_parse(&ae, buf + v.off, v.len);
			any = 1;
		} else if (name_is(buf, n, "range", 5)) {
			r->czq.range = 1;
		} else if (name_is(buf, n, "if-none-match", 13)) {
			for (uint32_t k = 0; k + 2 < v.len; k++)
				if (buf[v.off + k] == 'W' && buf[v.off + k + 1] == '/' && buf[v.off + k + 2] == '"')
					r->czq.inm_weak = 1;
		}
	}
	if (any) {
		enum tw_coding prefs[TW_CODING_N];
		size_t np = 0;
		for (size_t i = 0; i < z->nencodings && np < TW_CODING_N; i++)
			prefs[np++] = (enum tw_coding)z->encodings[i];
		r->czq.coding = (uint8_t)tw_ae_choose(&ae, prefs, np);
	}
}

int tw_cz_if_none_match(struct tw_req *r, const char *v, size_t n, char *out, size_t cap, size_t *outlen)
{
	if (r->czq.conf == NULL || r->czq.coding == TW_CODING_IDENTITY || !r->czq.inm_weak || n + 2 > cap)
		return 0;
	size_t o = 0;
	memcpy(out, v, n);
	o = n;
	/* each W/"tag" adds , "tag" */
	for (size_t i = 0; i + 2 < n; i++) {
		if (v[i] != 'W' || v[i + 1] != '/' || v[i + 2] != '"')
			continue;
		size_t s = i + 2, e = s + 1;
		while (e < n && v[e] != '"')
			e++;
		if (e == n)
			break;
		size_t tl = e - s + 1;
		if (o + 2 + tl > cap)
			return 0;
		memcpy(out + o, ", ", 2);
		memcpy(out + o + 2, v + s, tl);
		o += 2 + tl;
		i = e;
	}
	*outlen = o;
	return o != n;
}

/* ---- the decision ---- */

/* Is the media type of Content-Type value v one of the list? */
static int type_listed(const struct tw_conf_compress *z, const char *v, size_t n)
{
	size_t e = 0;
	while (e < n && v[e] != ';' && v[e] != ' ' && v[e] != '\t')
		e++;
	for (size_t i = 0; i < z->ntypes; i++) {
		const char *t = z->types[i];
		size_t tl = strlen(t);
		if (tl >= 2 && t[tl - 1] == '*') {
			if (e >= tl - 1 && strncasecmp(v, t, tl - 1) == 0)
				return 1;
		} else if (tl == e && strncasecmp(v, t, tl) == 0) {
			return 1;
		}
	}
	return 0;
}

static int value_has(const char *v, size_t n, const char *word)
{
	size_t wl = strlen(word);
	for (size_t i = 0; i + wl <= n; i++)
		if (strncasecmp(v + i, word, wl) == 0)
			return 1;
	return 0;
}

/* Facts of the response head for the decision. */
struct head_facts {
	int compressible; /* a listed type, no Content-Encoding, no no-transform, not private (when asked) */
	int event_stream; /* text/event-stream: never held back */
};

static void facts(const struct tw_req *r, const struct tw_conf_compress *z, const char *buf, struct head_facts *hf)
{
	const struct tw_h1_msg *m = &r->msg;
	int typed = 0, blocked = 0;
	hf->event_stream = 0;
	for (unsigned i = 0; i < m->nheaders; i++) {
		struct tw_slice n = m->headers[i].name, v = m->headers[i].value;
		const char *vp = buf + v.off;
		if (name_is(buf, n, "content-type", 12)) {
			if (v.len >= 16 && strncasecmp(vp, "application/grpc", 16) == 0)
				blocked = 1;
			else if (type_listed(z, vp, v.len))
				typed = 1;
			if (v.len >= 17 && strncasecmp(vp, "text/event-stream", 17) == 0)
				hf->event_stream = 1;
		} else if (name_is(buf, n, "content-encoding", 16)) {
			if (!(v.len == 8 && strncasecmp(vp, "identity", 8) == 0))
				blocked = 1;
		} else if (name_is(buf, n, "cache-control", 13)) {
			if (value_has(vp, v.len, "no-transform"))
				blocked = 1;
			if (z->skip_private && value_has(vp, v.len, "private"))
				blocked = 1;
		} else if (name_is(buf, n, "set-cookie", 10)) {
			if (z->skip_private)
				blocked = 1;
		}
	}
	hf->compressible = typed && !blocked;
}

static void on_payload(void *ctx, const char *p, size_t n)
{
	(void)p;
	*(uint64_t *)ctx += n;
}

/* Body bytes of an answer of unknown length seen so far in buf (after the
 * head), and whether the body is complete there. */
static uint64_t seen_payload(const struct tw_req *r, const char *buf, size_t have, int eof, int *complete)
{
	size_t hl = r->p.head_len;
	const char *p = buf + hl;
	size_t n = have > hl ? have - hl : 0;
	*complete = 0;
	if (r->msg.chunked) {
		struct tw_h1_chunked ch;
		uint64_t got = 0;
		size_t used = 0;
		tw_h1_chunked_init(&ch, 0);
		int rc = tw_h1_chunked_scan(&ch, p, n, &used, on_payload, &got);
		*complete = rc == 0 || (rc != TW_EAGAIN); /* an error: decide now, the proxy reports it */
		return got;
	}
	*complete = eof;
	return n;
}

int tw_cz_hold(struct tw_conn *c, struct tw_req *r, const char *buf, size_t have, int eof, int full)
{
	(void)c;
	const struct tw_conf_compress *z = r->czq.conf;
	const struct tw_h1_msg *m = &r->msg;
	if (z == NULL || r->czq.coding == TW_CODING_IDENTITY || r->is_head || r->czq.range || full)
		return 0;
	if (!m->chunked && m->content_length >= 0)
		return 0; /* known length */
	if (m->status < 200 || m->status == 204 || m->status == 304 || m->status == 206)
		return 0;
	struct head_facts hf;
	facts(r, z, buf, &hf);
	if (!hf.compressible || hf.event_stream)
		return 0;
	int complete;
	uint64_t got = seen_payload(r, buf, have, eof, &complete);
	return !complete && got < z->min_size;
}

int tw_cz_begin(struct tw_conn *c, struct tw_req *r, const char *buf, int mode, uint64_t body_len)
{
	const struct tw_conf_compress *z = r->czq.conf;
	const struct tw_h1_msg *m = &r->msg;
	r->czq.mode = 0;
	r->czq.vary_seen = 0;
	if (z == NULL)
		return 0;
	unsigned st = m->status;
	if (st == 304) {
		/* a tag we weakened comes back: keep it weak, as the 200 was */
		if (r->czq.coding != TW_CODING_IDENTITY && r->czq.inm_weak)
			r->czq.mode = TW_CZ_WEAK | TW_CZ_VARY;
		return 0;
	}
	if (st < 200 || st == 204 || r->tunnel)
		return 0;
	struct head_facts hf;
	facts(r, z, buf, &hf);
	if (!hf.compressible)
		return 0;
	r->czq.mode = TW_CZ_VARY; /* the answer depends on Accept-Encoding from here on */
	int coding = r->czq.coding;
	if (coding == TW_CODING_IDENTITY || r->is_head || st == 206 || r->czq.range || mode == 0 /* FLOW_NONE */ ||
	    (r->version_minor == 0 && !c->fops->resp_head))
		return 0;
	if (mode == FLOW_LENGTH) {
		if (body_len < z->min_size)
			return 0;
	} else if (!hf.event_stream) {
		int complete;
		uint64_t got = seen_payload(r, buf, tw_iobuf_len(c->up->in), c->up->rd_eof, &complete);
		if (complete && got < z->min_size)
			return 0;
	}
	struct tw_worker *w = c->w;
	struct cz_worker *cw = worker_get();
	if (cw == NULL) {
		count(w, coding, R_FALLBACK);
		return 0;
	}
	if (cw->active >= z->max_streams) {
		count(w, coding, R_BUSY);
		return 0;
	}
	struct tw_cz *cz = calloc(1, sizeof *cz);
	struct tw_zenc *enc = NULL;
	int level = level_of(z, coding);
	/* an idle encoder of this coding; one of another level is made anew */
	while (cw->nidle[coding] > 0 && enc == NULL) {
		enc = cw->idle[coding][--cw->nidle[coding]];
		if (tw_zenc_level(enc) != level) {
			tw_zenc_free(enc);
			enc = NULL;
		}
	}
	if (enc == NULL)
		enc = tw_zenc_new((enum tw_coding)coding, level);
	struct tw_iobuf *out = cz ? tw_iobuf_get(&w->bufs) : NULL;
	if (cz == NULL || enc == NULL || out == NULL ||
	    tw_zenc_reset(enc, mode == FLOW_LENGTH ? body_len : 0) != 0) {
		tw_zenc_free(enc);
		tw_iobuf_put(&w->bufs, out);
		free(cz);
		tw_info("rid=%s cannot start %s: the answer goes out uncompressed", r->rid,
			tw_coding_name((enum tw_coding)coding));
		count(w, coding, R_FALLBACK);
		return 0;
	}
	cz->enc = enc;
	cz->out = out;
	cz->coding = (uint8_t)coding;
	cw->active++;
	r->cz = cz;
	r->czq.mode = TW_CZ_VARY | TW_CZ_ENCODE | TW_CZ_WEAK;
	return 1;
}

/* ---- the body ---- */

static void put_hex6(char *p, size_t v)
{
	static const char hex[] = "0123456789abcdef";
	for (int i = 5; i >= 0; i--, v >>= 4)
		p[i] = hex[v & 15];
	p[6] = '\r';
	p[7] = '\n';
}

int tw_cz_pump(struct tw_req *r, struct tw_iobuf *in, struct tw_flow *f, int idle)
{
	struct tw_cz *z = r->cz;
	int moved = 0;
	while (!z->finished && !z->failed) {
		enum tw_zenc_op op;
		if (f->fwd > 0)
			op = TW_ZENC_RUN;
		else if (f->done)
			op = TW_ZENC_END;
		else if (idle && z->unflushed)
			op = TW_ZENC_FLUSH;
		else
			break;
		struct tw_iobuf *o = z->out;
		if (tw_iobuf_room(o) < MIN_ROOM)
			tw_iobuf_compact(o);
		size_t room = tw_iobuf_room(o);
		if (room < MIN_ROOM)
			break;
		size_t cap = room - CHUNK_HDR - CHUNK_TRAILER - LAST_CHUNK;
		if (cap > 0xffffff)
			cap = 0xffffff;
		char *dst = tw_iobuf_tail(o) + CHUNK_HDR;
		size_t used = 0, prod = 0;
		int more = 0;
		int rc = tw_zenc_step(z->enc, f->fwd ? tw_iobuf_head(in) : NULL, f->fwd, &used, dst, cap, &prod, op,
				      &more);
		if (rc != 0) {
			z->failed = 1;
			return TW_EIO;
		}
		if (used) {
			tw_iobuf_consume(in, (uint32_t)used);
			f->fwd -= (uint32_t)used;
			f->total += used;
			z->in_bytes += used;
			z->unflushed = 1;
			moved = 1;
		}
		if (prod) {
			put_hex6(tw_iobuf_tail(o), prod);
			memcpy(dst + prod, "\r\n", 2);
			o->end += (uint32_t)(CHUNK_HDR + prod + CHUNK_TRAILER);
			z->out_bytes += prod;
			moved = 1;
		}
		if (op == TW_ZENC_END && !more) {
			memcpy(tw_iobuf_tail(o), "0\r\n\r\n", LAST_CHUNK);
			o->end += LAST_CHUNK;
			z->finished = 1;
			moved = 1;
			break;
		}
		if (op == TW_ZENC_FLUSH && !more)
			z->unflushed = 0;
		if (!used && !prod && !(op == TW_ZENC_FLUSH && !more))
			break;
	}
	return moved;
}

struct tw_iobuf *tw_cz_out(struct tw_req *r) { return r->cz->out; }

int tw_cz_done(const struct tw_req *r)
{
	return r->cz == NULL || (r->cz->finished && tw_iobuf_len(r->cz->out) == 0);
}

void tw_cz_release(struct tw_worker *w, struct tw_req *r)
{
	struct tw_cz *z = r->cz;
	if (z == NULL)
		return;
	r->cz = NULL;
	int c = z->coding;
	int ok = z->finished && !z->failed && tw_iobuf_len(z->out) == 0;
	count(w, c, ok ? R_OK : R_ERROR);
	if (metrics_ok) {
		tw_metric_add(w->m, m_in[c], z->in_bytes);
		tw_metric_add(w->m, m_out[c], z->out_bytes);
	}
	tw_iobuf_put(&w->bufs, z->out);
	struct cz_worker *cw = worker_get();
	if (cw && cw->active)
		cw->active--;
	if (cw && ok && cw->nidle[c] < POOL_PER_CODING)
		cw->idle[c][cw->nidle[c]++] = z->enc;
	else
		tw_zenc_free(z->enc); /* a failed one is not reused */
	free(z);
}

/* ---- the head ---- */

int tw_cz_field(struct tw_req *r, const char *name, size_t nlen, const char *value, size_t vlen, tw_cz_field_fn fn,
		void *ctx, int *rc)
{
	unsigned mode = r->czq.mode;
	if (mode == 0)
		return 0;
	switch (nlen) {
	case 14:
		if ((mode & TW_CZ_ENCODE) && strncasecmp(name, "content-length", 14) == 0)
			return 1;
		return 0;
	case 13:
		if ((mode & TW_CZ_ENCODE) && strncasecmp(name, "accept-ranges", 13) == 0)
			return 1;
		return 0;
	case 4:
		if (strncasecmp(name, "etag", 4) == 0 && (mode & TW_CZ_WEAK) && vlen >= 2 && value[0] == '"') {
			char w[512];
			if (vlen + 2 > sizeof w)
				return 0;
			memcpy(w, "W/", 2);
			memcpy(w + 2, value, vlen);
			*rc = fn(ctx, name, nlen, w, vlen + 2);
			return 1;
		}
		if (strncasecmp(name, "vary", 4) == 0 && (mode & TW_CZ_VARY)) {
			r->czq.vary_seen = 1;
			if (value_has(value, vlen, "accept-encoding") || (vlen == 1 && value[0] == '*'))
				return 0;
			char v[1024];
			if (vlen + 17 > sizeof v)
				return 0;
			memcpy(v, value, vlen);
			memcpy(v + vlen, ", Accept-Encoding", 17);
			*rc = fn(ctx, name, nlen, v, vlen + 17);
			return 1;
		}
		return 0;
	default:
		return 0;
	}
}

int tw_cz_extra(struct tw_req *r, tw_cz_field_fn fn, void *ctx)
{
	unsigned mode = r->czq.mode;
	int rc = 0;
	if ((mode & TW_CZ_ENCODE) && r->cz) {
		const char *n = tw_coding_name((enum tw_coding)r->cz->coding);
		rc = fn(ctx, "Content-Encoding", 16, n, strlen(n));
	}
	if (rc == 0 && (mode & TW_CZ_VARY) && !r->czq.vary_seen)
		rc = fn(ctx, "Vary", 4, "Accept-Encoding", 15);
	return rc;
}
