/* proxyproto.h — the PROXY protocol (HAProxy's spec, v1 text and v2 binary).
 *
 * The parser reads the header a load balancer puts in front of a TCP stream
 * (before TLS) and says who the client was. It is incremental and resumable
 * at any byte: tw_pp_feed takes the bytes in whatever pieces they arrive and
 * answers "done, N bytes were the header" (0), "need more" (TW_EAGAIN) or
 * "this is no valid header" (TW_EPROTO, with a reason in p->why). It never
 * reads past the header: what follows (a TLS ClientHello, an HTTP request)
 * is left to its owner. Nothing is guessed: the caller decides whether a
 * header must be there (the listener's `from` list).
 *
 * v1: "PROXY TCP4|TCP6|UNKNOWN ...\r\n", at most 107 bytes.
 * v2: 12-byte signature, version/command, family/protocol, length, the
 * address block and TLVs (ALPN, authority and the AWS VPC endpoint id are
 * kept; others skipped). The whole v2 header is capped at TW_PP_MAX bytes.
 *
 * LOCAL commands, v1 UNKNOWN, the UNSPEC and UNIX families leave
 * info.local = 1: the connection keeps its socket address.
 *
 * The writer side (tw_pp_write_v1/v2) makes the header tapwork sends to an
 * upstream server configured with `send_proxy`. docs/proxy-protocol.md. */
#ifndef TW_EDGE_PROXYPROTO_H
#define TW_EDGE_PROXYPROTO_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#define TW_PP_V1_MAX 107
#define TW_PP_MAX 4096 /* a whole v2 header (16 + address block + TLVs) */

struct tw_pp_info {
	uint8_t version; /* 1 or 2 */
	uint8_t local;   /* keep the socket's addresses (LOCAL, UNKNOWN, UNSPEC, UNIX) */
	struct sockaddr_storage src, dst; /* when !local: the client and the address it reached */
	socklen_t srclen, dstlen;
	char alpn[64];       /* v2 PP2_TYPE_ALPN, "" when absent (cut at 63 bytes) */
	char authority[256]; /* v2 PP2_TYPE_AUTHORITY (the SNI the balancer saw) */
	char vpce[64];       /* v2 PP2_TYPE_AWS / PP2_SUBTYPE_AWS_VPCE_ID */
};

enum tw_pp_state {
	TW_PP_START = 0, /* nothing seen */
	TW_PP_V1,        /* "PROXY " ... collecting the line */
	TW_PP_V2_HEAD,   /* collecting the 16 fixed bytes */
	TW_PP_V2_ADDR,   /* collecting the address block */
	TW_PP_V2_TLV_HEAD, /* a TLV's type and length */
	TW_PP_V2_TLV_VAL,  /* a TLV's value */
	TW_PP_DONE,
	TW_PP_ERROR
};

struct tw_pp_parser {
	enum tw_pp_state st;
	uint32_t total;    /* header bytes consumed so far */
	uint16_t v2len;    /* v2: length field (address block + TLVs) */
	uint16_t body;     /* v2: bytes of it consumed */
	uint16_t addrneed; /* v2: address block size for the family */
	uint16_t fill;     /* bytes in buf for the current piece */
	uint8_t cmd, fam;
	uint8_t tlv_type;
	uint16_t tlv_len, tlv_pos;
	uint8_t buf[216];  /* v1 line, v2 fixed part, address block, TLV head */
	const char *why;   /* TW_EPROTO: what was wrong (static text) */
	struct tw_pp_info info;
};

void tw_pp_init(struct tw_pp_parser *p);
/* Feed the next len bytes. Returns 0 when the header is complete (*used =
 * bytes of buf that belonged to it; the rest is the stream), TW_EAGAIN when
 * all len bytes were header and more is needed (*used = len), TW_EPROTO on a
 * bad header (p->why). After 0 or TW_EPROTO further calls return the same. */
int tw_pp_feed(struct tw_pp_parser *p, const void *buf, size_t len, size_t *used);

/* A client address as text (no port), for logs and X-Forwarded-For. */
void tw_pp_addr_text(const struct sockaddr *sa, char *out, size_t cap);

/* Write a PROXY header for a connection from src to dst (AF_INET or AF_INET6;
 * with one of each the IPv4 one is sent IPv4-mapped; NULL or another family
 * gives v1 UNKNOWN / v2 LOCAL+UNSPEC: a connection of the sender's own). Returns
 * the length written, or 0 when cap is too small (v1 needs 108, v2 at most
 * 16 + 36 + 3 + alpn length). alpn (may be NULL) goes into a v2 ALPN TLV. */
size_t tw_pp_write_v1(char *out, size_t cap, const struct sockaddr *src, const struct sockaddr *dst);
size_t tw_pp_write_v2(char *out, size_t cap, const struct sockaddr *src, const struct sockaddr *dst,
		      const char *alpn);

#endif
