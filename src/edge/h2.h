/* h2.h — HTTP/2 from clients (libnghttp2), internal to src/edge.
 *
 * An HTTP/2 connection is a session on its client struct tw_conn (state
 * C_H2); its own bytes go through the connection's front (TCP or TLS). Each
 * stream is a virtual struct tw_conn whose front is the stream: the request
 * is handed to the proxy as HTTP/1.1 bytes (tw_h2_req_*), the proxy's
 * HTTP/1.1 response is parsed back into HEADERS and DATA. Everything after
 * the front (routing, balancing, retries, limits, logs) is the HTTP/1.1
 * path unchanged. See docs/internals/h2.md. */
#ifndef TW_EDGE_H2_H
#define TW_EDGE_H2_H

#include "core/dbuf.h"

#include <nghttp2/nghttp2.h>
#include <stddef.h>
#include <stdint.h>

struct tw_conn;

/* Does buf start with the HTTP/2 client preface? 1 yes, 0 no, TW_EAGAIN
 * when the bytes so far are a proper prefix of it. */
int tw_h2_preface(const char *buf, size_t len);

/* Turn client connection c (with c->req == NULL; tw_conn_start_h2 in
 * proxy.c ensures it and closes c on failure) into an HTTP/2 session;
 * bytes already in c->in are the session's first input (h2c: the preface;
 * TLS with ALPN "h2": whatever arrived with the handshake). The caller runs
 * the connection afterwards. 0 or a negative TW_E*. */
int tw_h2_start(struct tw_conn *c);
/* The C_H2 step of tw_conn_run: read, feed, run streams, write. 1 on progress. */
int tw_h2_step(struct tw_conn *c);
/* Connection timer fired in C_H2 (idle session). */
void tw_h2_timeout(struct tw_conn *c);
/* Drain: GOAWAY now, close when the last stream is done. */
void tw_h2_drain(struct tw_conn *c);
/* conn_close of a C_H2 connection: closes every stream, frees the session. */
void tw_h2_close(struct tw_conn *c);

/* The allocator every session uses (per-thread free lists for nghttp2's
 * small objects); exposed for the unit tests. */
nghttp2_mem *tw_h2_mem(void);

/* ---- request translation: HTTP/2 header fields -> an HTTP/1.1 head ----
 * Exposed for the unit tests and the fuzz target. Fields are fed in order
 * as decoded; errors are stream errors. */
enum { TW_H2P_METHOD = 0, TW_H2P_SCHEME, TW_H2P_AUTHORITY, TW_H2P_PATH, TW_H2P_HOST, TW_H2P_N };

struct tw_h2_req {
	struct tw_dbuf fields;  /* regular fields as "name: value\r\n" */
	struct tw_dbuf pseudo;  /* pseudo-header values (and host), back to back */
	struct tw_dbuf cookie;  /* cookie fields joined with "; " */
	uint32_t pv_off[TW_H2P_N], pv_len[TW_H2P_N];
	uint8_t pv_set[TW_H2P_N];
	int regular_seen;
	int64_t content_length; /* -1 absent */
	size_t list_bytes;      /* decoded header list size (RFC 9113: name + value + 32 each) */
	size_t max_list;
	unsigned nfields, max_fields;
	const char *why; /* reason of the last error */
};

/* max_list: cap on the decoded header list (bytes); max_fields: on the count. */
void tw_h2_req_init(struct tw_h2_req *x, size_t max_list, unsigned max_fields);
void tw_h2_req_free(struct tw_h2_req *x); /* NULL ok */
/* One decoded field. 0, TW_EPROTO (malformed: PROTOCOL_ERROR) or TW_ELIMIT
 * (header list too large: 431). */
int tw_h2_req_field(struct tw_h2_req *x, const uint8_t *name, size_t nlen, const uint8_t *value, size_t vlen);
/* Append the HTTP/1.1 head to out. end_stream: no body follows (END_STREAM
 * on HEADERS). *chunked = 1 when the body must be sent chunk-encoded (no
 * content-length). 0, TW_EPROTO or TW_ELIMIT (out full). */
int tw_h2_req_head(struct tw_h2_req *x, int end_stream, struct tw_dbuf *out, int *chunked);
/* Was the request a HEAD? (after the fields) */
int tw_h2_req_is_head(const struct tw_h2_req *x);

#endif
