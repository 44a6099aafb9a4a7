/* h1.h — strict, incremental, zero-copy HTTP/1.1 message-head parser and
 * chunked-body scanner.
 *
 * The head parser reads a request (or response) head from a buffer that the
 * caller owns and keeps stable until the head is complete. It copies
 * nothing: methods, targets and headers are (offset, length) slices into
 * that buffer. It is resumable at any byte: call again with the same buffer
 * grown by new bytes; the parser continues where it stopped (state lives in
 * struct tw_h1_parser) and never rescans what it already accepted.
 *
 * Return convention (core/err.h):
 *   0          head complete; p->head_len = bytes of the head (incl. final CRLF)
 *   TW_EAGAIN  need more bytes (everything so far is valid)
 *   TW_EPROTO  malformed: p->status is the answer (400), p->why a short reason
 *   TW_ELIMIT  a limit hit: p->status is 431 (header bytes/count), 414 (URI)
 *              or 413 (Content-Length above max_body)
 *
 * What is rejected (the smuggling list): both Content-Length and
 * Transfer-Encoding; duplicate Content-Length (even equal values) or invalid
 * ones (non-digits, sign, empty, list, above 2^62); Transfer-Encoding other
 * than exactly one `chunked` coding in one header (requests); Transfer-Encoding
 * in any HTTP/1.0 message; bare LF or bare CR; obs-fold; whitespace between
 * name and colon; empty or non-token header names; control characters (except
 * HTAB) and DEL in values; invalid method tokens; request targets with
 * spaces, controls, non-ASCII or '#', or of the wrong form for the method;
 * versions other than HTTP/1.0 and HTTP/1.1; more than one Host or an invalid
 * or empty Host (requests, 400); missing Host in HTTP/1.1 (400); absolute-form
 * targets whose authority differs from Host (400); more than 4 empty lines
 * before a request line, or any before a status line.
 *
 * Responses: Transfer-Encoding whose final coding is chunked sets chunked;
 * any other Transfer-Encoding, or neither header on a status that has a
 * body, sets until_close. Full rules: docs/internals/parser.md.
 */
#ifndef TW_HTTP_H1_H
#define TW_HTTP_H1_H

#include <stddef.h>
#include <stdint.h>

#define TW_H1_MAX_HEADERS_HARD 256 /* array size; the configured cap may be lower */

struct tw_slice {
	uint32_t off; /* offset in the parsed buffer */
	uint32_t len;
};

struct tw_h1_header {
	struct tw_slice name;  /* as sent (case preserved) */
	struct tw_slice value; /* leading/trailing OWS stripped */
};

/* Connection header tokens and other facts derived while parsing. */
enum {
	TW_H1_CONN_CLOSE = 1 << 0,
	TW_H1_CONN_KEEPALIVE = 1 << 1,
	TW_H1_CONN_UPGRADE = 1 << 2,
};

struct tw_h1_limits {
	size_t max_head_bytes; /* request line/status line + headers; 0 = 32 KiB */
	unsigned max_headers;  /* <= TW_H1_MAX_HEADERS_HARD; 0 = 100 */
	size_t max_uri;        /* 0 = 8 KiB */
	uint64_t max_body;     /* 0 = unlimited (Content-Length checked at head time) */
};

enum tw_h1_kind { TW_H1_REQUEST = 0, TW_H1_RESPONSE };

struct tw_h1_msg {
	/* request */
	struct tw_slice method;
	struct tw_slice target;    /* as sent (origin-form, absolute-form, authority-form, "*") */
	struct tw_slice path;      /* origin-form path without query ("/a/b"); for absolute-form the path part */
	struct tw_slice query;     /* after '?', without it; len 0 when none */
	struct tw_slice authority; /* Host value, or absolute-form authority */
	/* response */
	unsigned status;
	struct tw_slice reason;
	/* both */
	unsigned version_minor; /* 0 or 1 */
	struct tw_h1_header headers[TW_H1_MAX_HEADERS_HARD];
	unsigned nheaders;
	/* derived */
	int64_t content_length; /* -1 when absent */
	int chunked;            /* Transfer-Encoding: chunked */
	unsigned conn_flags;    /* TW_H1_CONN_* from Connection */
	int expect_continue;    /* Expect: 100-continue (requests) */
	int has_upgrade;        /* an Upgrade header is present */
	int keep_alive;         /* persistent after this message per version + Connection */
	int until_close;        /* responses: body ends at connection close (TE without a final
				   chunked, or neither CL nor TE on a status that has a body);
				   keep_alive is then 0. The caller overrides for HEAD. */
};

struct tw_h1_parser {
	enum tw_h1_kind kind;
	struct tw_h1_limits limits;
	/* resumable state (private) */
	int state;
	size_t pos;     /* next byte to examine */
	size_t mark;    /* start of the token in progress */
	uint32_t tmp[4];
	unsigned seen;   /* private: TW_H1_SEEN_* style bits (Host, CL, TE, ...) */
	unsigned nblank; /* private: leading empty lines skipped before the request line */
	/* results */
	size_t head_len;
	unsigned status; /* HTTP status to answer on error (400/413/414/431) */
	const char *why; /* static string: reason for a rejection, for the log */
};

/* Prepare p to parse one message head. limits may be NULL (defaults). For a
 * response to a HEAD request or a 1xx/204/304, the caller decides that there
 * is no body; the parser only reports the framing headers. */
void tw_h1_parser_init(struct tw_h1_parser *p, enum tw_h1_kind kind, const struct tw_h1_limits *limits);

/* Pass the same msg on every call for one head: it is filled as lines complete.
 * After an error the parser stays failed (same return, same status).
 * TW_EINVAL (state unchanged) if len is smaller than in a previous call. */
int tw_h1_parse(struct tw_h1_parser *p, const char *buf, size_t len, struct tw_h1_msg *msg);

/* Validation of header names/values the proxy adds or rewrites (same rules
 * as the parser: name = 1*tchar; value = no CTL except HTAB, no CR/LF). 1 if valid. */
int tw_h1_valid_header_name(const char *s, size_t n);
int tw_h1_valid_header_value(const char *s, size_t n);

/* Helpers over parsed results. */
static inline const char *tw_slice_ptr(const char *buf, struct tw_slice s) { return buf + s.off; }
/* Case-insensitive header lookup; returns index or -1. start lets callers iterate. */
int tw_h1_find_header(const char *buf, const struct tw_h1_msg *msg, const char *name, unsigned start);
/* Does the comma-separated value of header idx contain token (case-insensitive)? */
int tw_h1_header_has_token(const char *buf, const struct tw_h1_header *h, const char *token);

/* Chunked transfer-coding scanner: validates a chunked body incrementally and
 * tells where the data bytes are, so the proxy can pass the encoding through
 * unchanged (or a decoder can extract data). Resumable at any byte.
 *   0          the body ended (last chunk, trailers, final CRLF consumed);
 *              *consumed = bytes of this call that belong to the body
 *   TW_EAGAIN  all `len` bytes consumed, more needed
 *   TW_EPROTO  invalid (bad hex, size overflow > 2^62, missing CRLF, bare LF,
 *              invalid extension or trailer), c->why says which
 *   TW_ELIMIT  total data above max_body, trailers above 8 KiB, or a chunk-size
 *              line (with extensions) above 4 KiB
 * on_data (may be NULL) is called for each run of data bytes found. */
struct tw_h1_chunked {
	int state;
	uint64_t remaining;  /* data bytes left in the current chunk */
	uint64_t total;      /* data bytes seen so far */
	uint64_t max_body;   /* 0 = unlimited */
	size_t line_len;     /* bytes in the current size/trailer line (capped) */
	size_t trailer_bytes;
	unsigned ndigits;    /* hex digits in the current chunk-size */
	const char *why;
};

void tw_h1_chunked_init(struct tw_h1_chunked *c, uint64_t max_body);
int tw_h1_chunked_scan(struct tw_h1_chunked *c, const char *buf, size_t len, size_t *consumed,
		       void (*on_data)(void *ctx, const char *p, size_t n), void *ctx);
/* tw_h1_chunked_scan decoding in place: the data bytes of buf[0, *consumed)
 * are moved down over the framing to buf[0, *payload) (*payload <= *consumed;
 * bytes past *consumed are untouched). Same return values; on an error both
 * counts are 0 and the bytes before the error may have been rewritten. */
int tw_h1_chunked_decode(struct tw_h1_chunked *c, char *buf, size_t len, size_t *consumed, size_t *payload);

/* Status line reason for common codes ("Not Found"); "Unknown" otherwise. */
const char *tw_h1_reason(unsigned status);

#endif
