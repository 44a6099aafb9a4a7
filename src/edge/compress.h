/* compress.h — response compression on the proxy path (h1 and h2 alike).
 *
 * The proxy calls in at four points: tw_cz_request() when the request is
 * routed (it reads Accept-Encoding, Range and If-None-Match before the head
 * buffer is reused), tw_cz_hold() while an answer of unknown length is
 * shorter than min_size, tw_cz_begin() when the response head is written
 * (the decision: compress, only add Vary, or leave it), then tw_cz_pump()
 * for each run of body bytes. rewrite.c asks tw_cz_field() about each
 * response field and tw_cz_extra() for the ones to add. The rules and the
 * memory bounds are in docs/compression.md. */
#ifndef TW_EDGE_COMPRESS_H
#define TW_EDGE_COMPRESS_H

#include <stddef.h>
#include <stdint.h>

struct tw_conn;
struct tw_req;
struct tw_flow;
struct tw_iobuf;
struct tw_conf_compress;
struct tw_worker;

/* Decision bits of one answer (struct tw_cz_req.mode). */
#define TW_CZ_VARY 0x1u   /* add Accept-Encoding to Vary */
#define TW_CZ_ENCODE 0x2u /* Content-Encoding, no Content-Length / Accept-Ranges */
#define TW_CZ_WEAK 0x4u   /* a strong ETag goes out weak */

/* What a request brings (filled by tw_cz_request; zero = compression off). */
struct tw_cz_req {
	const struct tw_conf_compress *conf; /* the route's, site's or top level's; NULL = off */
	uint8_t coding;   /* enum tw_coding the client and we agree on; 0 = identity */
	uint8_t range;    /* the request has Range */
	uint8_t inm_weak; /* its If-None-Match names a weak tag (one we may have made) */
	uint8_t mode;     /* TW_CZ_* for the answer, set by tw_cz_begin */
	uint8_t vary_seen, hold;
};

struct tw_cz; /* a compressing stream: encoder + output buffer */

void tw_cz_request(struct tw_conn *c, struct tw_req *r, const char *buf);
/* 1 when the answer (its head parsed in r->msg over buf, `have` bytes in
 * all with `eof` at the end) should wait for more body bytes before the
 * decision; 0 to go on. */
int tw_cz_hold(struct tw_conn *c, struct tw_req *r, const char *buf, size_t have, int eof, int full);
/* Decide for the parsed response head (r->msg over buf; body framing mode
 * FLOW_*, body_len for FLOW_LENGTH). 1 when the body is to be compressed
 * (r->cz is set: the caller frames the output chunked, and dechunks the
 * input), else 0. */
int tw_cz_begin(struct tw_conn *c, struct tw_req *r, const char *buf, int mode, uint64_t body_len);
/* Body bytes: the classified bytes at the start of in (f->fwd) go through the
 * encoder into the stream's output (chunk-framed); idle = the upstream has
 * nothing more for now (flush). 1 when something moved, 0 when not, a
 * negative TW_E* on an encoder failure (the answer must be cut). */
int tw_cz_pump(struct tw_req *r, struct tw_iobuf *in, struct tw_flow *f, int idle);
/* The encoded bytes ready for the client. */
struct tw_iobuf *tw_cz_out(struct tw_req *r);
/* Is the compressed body complete and written? (1 when r has no stream) */
int tw_cz_done(const struct tw_req *r);
/* End of the request: the encoder goes back to the worker's pool. */
void tw_cz_release(struct tw_worker *w, struct tw_req *r);

/* rewrite.c: a response field. 0 = pass it as it is; 1 = handled here (sent
 * through fn changed, or dropped); *rc gets fn's result. */
typedef int (*tw_cz_field_fn)(void *ctx, const char *name, size_t nlen, const char *value, size_t vlen);
int tw_cz_field(struct tw_req *r, const char *name, size_t nlen, const char *value, size_t vlen, tw_cz_field_fn fn,
		void *ctx, int *rc);
/* The fields to add (Content-Encoding, Vary). fn's result. */
int tw_cz_extra(struct tw_req *r, tw_cz_field_fn fn, void *ctx);
/* rewrite.c: If-None-Match toward the upstream: each weak tag W/"x" is
 * followed by its strong form "x" (an origin comparing strictly then still
 * matches the tag we weakened). 1 and the new value in out, or 0 to send
 * the value as it is. */
int tw_cz_if_none_match(struct tw_req *r, const char *v, size_t n, char *out, size_t cap, size_t *outlen);

/* gen.c: do two routes compress alike? */
int tw_cz_conf_equal(const struct tw_conf_compress *a, const struct tw_conf_compress *b);

#endif
