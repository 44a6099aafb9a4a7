/* h1.c — strict incremental HTTP/1.1 head parser and chunked scanner.
 *
 * The head parser works line by line: memchr finds the next LF from where the
 * previous call stopped looking (p->mark), so bytes are searched once; a line
 * is validated once, when its CRLF has arrived. p->pos is the start of the
 * current (incomplete) line. Character classes are 256-entry tables. See
 * docs/internals/parser.md. */
#include "http/h1.h"

#include <string.h>

#include "core/err.h"

/* ---- character classes ---------------------------------------------------- */

/* C_TCHAR: RFC 9110 tchar (alnum and !#$%&'*+-.^_`|~)
 * C_VALUE: field-value byte: HTAB, SP, VCHAR, obs-text (>= 0x80); not DEL
 * C_TARGET: request-target byte: VCHAR except '#' (no fragments on the wire)
 * C_HEX: hex digit
 * C_HOST: reg-name / IPv4 byte: unreserved, '%', sub-delims (no '@', '/', ':')
 * C_QDTEXT: quoted-string text: HTAB, SP, VCHAR except '"' and '\', obs-text */
enum { C_TCHAR = 1, C_VALUE = 2, C_TARGET = 4, C_HEX = 8, C_HOST = 16, C_QDTEXT = 32 };

/* Generated once (by a short script; the rule for each class is in the enum
 * comment above); 1 = tchar, 2 = field-value byte, 4 = request-target byte,
 * 8 = hex digit, 16 = reg-name/IPv4 byte, 32 = qdtext. */
static const unsigned char cls[256] = {
	0, 0, 0, 0, 0, 0, 0, 0, 0, 34, 0, 0, 0, 0, 0, 0,
	0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
	34, 55, 6, 35, 55, 55, 55, 55, 54, 54, 55, 55, 54, 55, 55, 38,
	63, 63, 63, 63, 63, 63, 63, 63, 63, 63, 38, 54, 38, 54, 38, 38,
	38, 63, 63, 63, 63, 63, 63, 55, 55, 55, 55, 55, 55, 55, 55, 55,
	55, 55, 55, 55, 55, 55, 55, 55, 55, 55, 55, 38, 6, 38, 39, 55,
	39, 63, 63, 63, 63, 63, 63, 55, 55, 55, 55, 55, 55, 55, 55, 55,
	55, 55, 55, 55, 55, 55, 55, 55, 55, 55, 55, 38, 39, 38, 55, 0,
	34, 34, 34, 34, 34, 34, 34, 34, 34, 34, 34, 34, 34, 34, 34, 34,
	34, 34, 34, 34, 34, 34, 34, 34, 34, 34, 34, 34, 34, 34, 34, 34,
	34, 34, 34, 34, 34, 34, 34, 34, 34, 34, 34, 34, 34, 34, 34, 34,
	34, 34, 34, 34, 34, 34, 34, 34, 34, 34, 34, 34, 34, 34, 34, 34,
	34, 34, 34, 34, 34, 34, 34, 34, 34, 34, 34, 34, 34, 34, 34, 34,
	34, 34, 34, 34, 34, 34, 34, 34, 34, 34, 34, 34, 34, 34, 34, 34,
	34, 34, 34, 34, 34, 34, 34, 34, 34, 34, 34, 34, 34, 34, 34, 34,
	34, 34, 34, 34, 34, 34, 34, 34, 34, 34, 34, 34, 34, 34, 34, 34,
};

static const unsigned char lower[256] = {
	0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15,
	16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31,
	32, 33, 34, 35, 36, 37, 38, 39, 40, 41, 42, 43, 44, 45, 46, 47,
	48, 49, 50, 51, 52, 53, 54, 55, 56, 57, 58, 59, 60, 61, 62, 63,
	64, 97, 98, 99, 100, 101, 102, 103, 104, 105, 106, 107, 108, 109, 110, 111,
	112, 113, 114, 115, 116, 117, 118, 119, 120, 121, 122, 91, 92, 93, 94, 95,
	96, 97, 98, 99, 100, 101, 102, 103, 104, 105, 106, 107, 108, 109, 110, 111,
	112, 113, 114, 115, 116, 117, 118, 119, 120, 121, 122, 123, 124, 125, 126, 127,
	128, 129, 130, 131, 132, 133, 134, 135, 136, 137, 138, 139, 140, 141, 142, 143,
	144, 145, 146, 147, 148, 149, 150, 151, 152, 153, 154, 155, 156, 157, 158, 159,
	160, 161, 162, 163, 164, 165, 166, 167, 168, 169, 170, 171, 172, 173, 174, 175,
	176, 177, 178, 179, 180, 181, 182, 183, 184, 185, 186, 187, 188, 189, 190, 191,
	192, 193, 194, 195, 196, 197, 198, 199, 200, 201, 202, 203, 204, 205, 206, 207,
	208, 209, 210, 211, 212, 213, 214, 215, 216, 217, 218, 219, 220, 221, 222, 223,
	224, 225, 226, 227, 228, 229, 230, 231, 232, 233, 234, 235, 236, 237, 238, 239,
	240, 241, 242, 243, 244, 245, 246, 247, 248, 249, 250, 251, 252, 253, 254, 255,
};

/* a (length n) equals the lowercase literal lit (length n), ignoring case */
static inline int ieq(const char *a, const char *lit, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (lower[(unsigned char)a[i]] != (unsigned char)lit[i])
			return 0;
	return 1;
}

static inline int is_ows(char c) { return c == ' ' || c == '\t'; }

/* Index of the first byte in p[0,n) that is not a field-value byte (C_VALUE),
 * or n. Eight bytes at a time: a word with no byte < 0x20 and no 0x7f is all
 * valid (bytes >= 0x80 are obs-text, allowed); otherwise check it bytewise. */
static inline size_t value_scan(const char *p, size_t n)
{
	const uint64_t ones = 0x0101010101010101ull, highs = 0x8080808080808080ull;
	size_t i = 0;
	while (n - i >= 8) {
		uint64_t x, y;
		memcpy(&x, p + i, 8);
		y = x ^ (ones * 0x7f);
		if (((x - ones * 0x20) & ~x & highs) | ((y - ones) & ~y & highs))
			break;
		i += 8;
	}
	for (; i < n; i++)
		if (!(cls[(unsigned char)p[i]] & C_VALUE))
			break;
	return i;
}

int tw_h1_valid_header_name(const char *s, size_t n)
{
	if (n == 0)
		return 0;
	for (size_t i = 0; i < n; i++)
		if (!(cls[(unsigned char)s[i]] & C_TCHAR))
			return 0;
	return 1;
}

int tw_h1_valid_header_value(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (!(cls[(unsigned char)s[i]] & C_VALUE))
			return 0;
	return 1;
}

/* ---- head parser ------------------------------------------------------------ */

enum { ST_START = 0, ST_HEADERS, ST_DONE, ST_FAILED };

enum {
	SEEN_HOST = 1 << 0,
	SEEN_CL = 1 << 1,
	SEEN_TE = 1 << 2,
	SEEN_TE_CHUNKED_LAST = 1 << 3,
	SEEN_TE_CHUNKED_ANY = 1 << 4,
	SEEN_ABSOLUTE = 1 << 5,
};

#define MAX_LEADING_CRLF 4
#define CL_MAX ((uint64_t)1 << 62)

void tw_h1_parser_init(struct tw_h1_parser *p, enum tw_h1_kind kind, const struct tw_h1_limits *limits)
{
	memset(p, 0, sizeof *p);
	p->kind = kind;
	if (limits)
		p->limits = *limits;
	if (!p->limits.max_head_bytes)
		p->limits.max_head_bytes = 32 * 1024;
	if (!p->limits.max_headers)
		p->limits.max_headers = 100;
	if (p->limits.max_headers > TW_H1_MAX_HEADERS_HARD)
		p->limits.max_headers = TW_H1_MAX_HEADERS_HARD;
	if (!p->limits.max_uri)
		p->limits.max_uri = 8 * 1024;
	p->state = ST_START;
}

static int fail(struct tw_h1_parser *p, unsigned status, const char *why)
{
	p->state = ST_FAILED;
	p->status = status;
	p->why = why;
	return status == 400 ? TW_EPROTO : TW_ELIMIT;
}

static inline struct tw_slice sl(size_t off, size_t len)
{
	struct tw_slice s = {(uint32_t)off, (uint32_t)len};
	return s;
}

/* Validate host [":" port] in buf[s,e). port_required for CONNECT. 0 if ok. */
static int check_authority(const char *buf, size_t s, size_t e, int port_required)
{
	size_t i = s;
	if (i >= e)
		return -1;
	if (buf[i] == '[') { /* IP-literal: IPv6 hex, ':' and '.' only (no zone, no IPvFuture) */
		i++;
		size_t st = i;
		while (i < e && ((cls[(unsigned char)buf[i]] & C_HEX) || buf[i] == ':' || buf[i] == '.'))
			i++;
		if (i == st || i >= e || buf[i] != ']')
			return -1;
		i++;
	} else {
		size_t st = i;
		while (i < e && (cls[(unsigned char)buf[i]] & C_HOST))
			i++;
		if (i == st)
			return -1;
	}
	if (i == e)
		return port_required ? -1 : 0;
	if (buf[i] != ':')
		return -1;
	i++;
	if (i == e || e - i > 5)
		return -1;
	unsigned port = 0;
	for (; i < e; i++) {
		if (buf[i] < '0' || buf[i] > '9')
			return -1;
		port = port * 10 + (unsigned)(buf[i] - '0');
	}
	return port <= 65535 ? 0 : -1;
}

static void split_path(const char *buf, size_t s, size_t e, struct tw_h1_msg *msg)
{
	const char *q = memchr(buf + s, '?', e - s);
	size_t qo = q ? (size_t)(q - buf) : e;
	msg->path = sl(s, qo - s);
	msg->query = q ? sl(qo + 1, e - qo - 1) : sl(e, 0);
}

/* Is the request-target (from the first SP to the second SP, or to x when
 * there is none yet) longer than max_uri within the line bytes [s, x)? The
 * method before the first SP must be a token. Monotone in x, so a partial line
 * and the whole line agree (the resumability contract). */
static int target_over(const struct tw_h1_parser *p, const char *buf, size_t s, size_t x)
{
	if (x <= s || x - s <= p->limits.max_uri + 1)
		return 0; /* the target is shorter than the line minus method and SP */
	const char *sp = memchr(buf + s, ' ', x - s);
	if (!sp)
		return 0;
	size_t t = (size_t)(sp - buf) + 1;
	if (x - t <= p->limits.max_uri)
		return 0;
	for (size_t i = s; i < t - 1; i++)
		if (!(cls[(unsigned char)buf[i]] & C_TCHAR))
			return 0;
	const char *sp2 = memchr(buf + t, ' ', x - t);
	size_t te = sp2 ? (size_t)(sp2 - buf) : x;
	return te - t > p->limits.max_uri;
}

static int request_line(struct tw_h1_parser *p, const char *buf, size_t s, size_t e, struct tw_h1_msg *msg)
{
	size_t i = s; /* 414 was decided by the caller (target_over) */
	while (i < e && (cls[(unsigned char)buf[i]] & C_TCHAR))
		i++;
	if (i == s || i == e || buf[i] != ' ')
		return fail(p, 400, i < e && buf[i] == '\r' ? "bare CR" : "invalid method");
	msg->method = sl(s, i - s);
	size_t t = ++i;
	while (i < e && (cls[(unsigned char)buf[i]] & C_TARGET))
		i++;
	size_t te = i;
	if (te == t)
		return fail(p, 400, "empty request-target");
	if (i == e || buf[i] != ' ')
		return fail(p, 400, i < e && buf[i] == '\r' ? "bare CR" : "invalid char in request-target");
	i++;
	if (e - i != 8 || memcmp(buf + i, "HTTP/1.", 7) != 0 || (buf[i + 7] != '0' && buf[i + 7] != '1'))
		return fail(p, 400, "unsupported HTTP version");
	msg->version_minor = (unsigned)(buf[i + 7] - '0');
	msg->target = sl(t, te - t);

	int is_connect = msg->method.len == 7 && memcmp(buf + s, "CONNECT", 7) == 0;
	int is_options = msg->method.len == 7 && memcmp(buf + s, "OPTIONS", 7) == 0;
	if (is_connect) {
		if (check_authority(buf, t, te, 1) != 0)
			return fail(p, 400, "CONNECT needs authority-form target");
		msg->authority = sl(t, te - t);
	} else if (buf[t] == '/') {
		split_path(buf, t, te, msg);
	} else if (te - t == 1 && buf[t] == '*') {
		if (!is_options)
			return fail(p, 400, "asterisk-form only for OPTIONS");
		msg->path = sl(t, 1);
	} else {
		size_t a;
		if (te - t > 7 && ieq(buf + t, "http://", 7))
			a = t + 7;
		else if (te - t > 8 && ieq(buf + t, "https://", 8))
			a = t + 8;
		else
			return fail(p, 400, "invalid request-target form");
		size_t ae = a;
		while (ae < te && buf[ae] != '/' && buf[ae] != '?')
			ae++;
		if (check_authority(buf, a, ae, 0) != 0)
			return fail(p, 400, "invalid authority in request-target");
		msg->authority = sl(a, ae - a);
		if (ae < te && buf[ae] == '?') {
			msg->path = sl(ae, 0);
			msg->query = sl(ae + 1, te - ae - 1);
		} else {
			split_path(buf, ae, te, msg);
		}
		p->seen |= SEEN_ABSOLUTE;
	}
	return 0;
}

static int status_line(struct tw_h1_parser *p, const char *buf, size_t s, size_t e, struct tw_h1_msg *msg)
{
	if (e - s < 12 || memcmp(buf + s, "HTTP/1.", 7) != 0 || (buf[s + 7] != '0' && buf[s + 7] != '1') ||
	    buf[s + 8] != ' ')
		return fail(p, 400, "invalid status line or version");
	msg->version_minor = (unsigned)(buf[s + 7] - '0');
	const char *d = buf + s + 9;
	if (d[0] < '1' || d[0] > '9' || d[1] < '0' || d[1] > '9' || d[2] < '0' || d[2] > '9')
		return fail(p, 400, "invalid status code");
	msg->status = (unsigned)((d[0] - '0') * 100 + (d[1] - '0') * 10 + (d[2] - '0'));
	size_t i = s + 12;
	if (i == e) {
		msg->reason = sl(e, 0);
		return 0;
	}
	if (buf[i] != ' ')
		return fail(p, 400, "invalid status code");
	i++;
	for (size_t k = i; k < e; k++)
		if (!(cls[(unsigned char)buf[k]] & C_VALUE))
			return fail(p, 400, buf[k] == '\r' ? "bare CR" : "control char in reason");
	msg->reason = sl(i, e - i);
	return 0;
}

/* Content-Length: 1*DIGIT, at most 2^62. */
static int parse_cl(const char *v, size_t n, int64_t *out)
{
	if (n == 0 || n > 19)
		return -1;
	uint64_t x = 0;
	for (size_t i = 0; i < n; i++) {
		if (v[i] < '0' || v[i] > '9')
			return -1;
		x = x * 10 + (uint64_t)(v[i] - '0');
	}
	if (x > CL_MAX)
		return -1;
	*out = (int64_t)x;
	return 0;
}

/* Transfer-Encoding list element handling. Returns 0 or a fail() code. */
static int transfer_encoding(struct tw_h1_parser *p, const char *buf, size_t vs, size_t ve)
{
	if (p->kind == TW_H1_REQUEST) {
		/* exactly one coding, `chunked`, in exactly one header */
		if (p->seen & SEEN_TE)
			return fail(p, 400, "multiple Transfer-Encoding");
		if (ve - vs != 7 || !ieq(buf + vs, "chunked", 7))
			return fail(p, 400, "unsupported Transfer-Encoding");
		p->seen |= SEEN_TE | SEEN_TE_CHUNKED_LAST | SEEN_TE_CHUNKED_ANY;
		return 0;
	}
	p->seen |= SEEN_TE;
	size_t i = vs;
	while (i < ve) {
		size_t es = i;
		while (i < ve && buf[i] != ',')
			i++;
		size_t ee = i;
		if (i < ve)
			i++; /* skip ',' */
		while (es < ee && is_ows(buf[es]))
			es++;
		while (ee > es && is_ows(buf[ee - 1]))
			ee--;
		if (es == ee)
			continue; /* empty list element */
		if (!(cls[(unsigned char)buf[es]] & C_TCHAR))
			return fail(p, 400, "invalid Transfer-Encoding");
		if (ee - es == 7 && ieq(buf + es, "chunked", 7)) {
			if (p->seen & SEEN_TE_CHUNKED_ANY)
				return fail(p, 400, "chunked applied twice");
			p->seen |= SEEN_TE_CHUNKED_ANY | SEEN_TE_CHUNKED_LAST;
		} else {
			p->seen &= ~(unsigned)SEEN_TE_CHUNKED_LAST;
		}
	}
	return 0;
}

static void connection_tokens(const char *buf, size_t vs, size_t ve, struct tw_h1_msg *msg)
{
	size_t i = vs;
	while (i < ve) {
		size_t es = i;
		while (i < ve && buf[i] != ',')
			i++;
		size_t ee = i;
		if (i < ve)
			i++;
		while (es < ee && is_ows(buf[es]))
			es++;
		while (ee > es && is_ows(buf[ee - 1]))
			ee--;
		size_t n = ee - es;
		if (n == 5 && ieq(buf + es, "close", 5))
			msg->conn_flags |= TW_H1_CONN_CLOSE;
		else if (n == 10 && ieq(buf + es, "keep-alive", 10))
			msg->conn_flags |= TW_H1_CONN_KEEPALIVE;
		else if (n == 7 && ieq(buf + es, "upgrade", 7))
			msg->conn_flags |= TW_H1_CONN_UPGRADE;
	}
}

static int header_line(struct tw_h1_parser *p, const char *buf, size_t s, size_t e, struct tw_h1_msg *msg)
{
	unsigned char c0 = (unsigned char)buf[s];
	if (c0 == ' ' || c0 == '\t')
		return fail(p, 400, "obs-fold");
	size_t i = s;
	while (i < e && (cls[(unsigned char)buf[i]] & C_TCHAR))
		i++;
	if (i == e)
		return fail(p, 400, "header without colon");
	if (buf[i] != ':') {
		if (is_ows(buf[i]))
			return fail(p, 400, "whitespace before colon");
		return fail(p, 400, buf[i] == '\r' ? "bare CR" : "invalid char in header name");
	}
	if (i == s)
		return fail(p, 400, "empty header name");
	size_t ns = s, ne = i;
	size_t vs = i + 1;
	size_t bad = vs + value_scan(buf + vs, e - vs);
	if (bad < e)
		return fail(p, 400, buf[bad] == '\r' ? "bare CR" : "control char in header value");
	while (vs < e && is_ows(buf[vs]))
		vs++;
	size_t ve = e;
	while (ve > vs && is_ows(buf[ve - 1]))
		ve--;
	if (msg->nheaders >= p->limits.max_headers)
		return fail(p, 431, "too many headers");
	struct tw_h1_header *h = &msg->headers[msg->nheaders++];
	h->name = sl(ns, ne - ns);
	h->value = sl(vs, ve - vs);

	const char *n = buf + ns;
	switch (ne - ns) {
	case 4:
		if (p->kind == TW_H1_REQUEST && ieq(n, "host", 4)) {
			if (p->seen & SEEN_HOST)
				return fail(p, 400, "multiple Host");
			if (check_authority(buf, vs, ve, 0) != 0)
				return fail(p, 400, "invalid Host");
			p->seen |= SEEN_HOST;
			if (!(p->seen & SEEN_ABSOLUTE) && msg->authority.len == 0)
				msg->authority = h->value;
			else if (p->seen & SEEN_ABSOLUTE) {
				if (msg->authority.len != ve - vs)
					return fail(p, 400, "Host differs from target authority");
				for (size_t k = 0; k < ve - vs; k++)
					if (lower[(unsigned char)buf[msg->authority.off + k]] !=
					    lower[(unsigned char)buf[vs + k]])
						return fail(p, 400, "Host differs from target authority");
			}
		}
		break;
	case 6:
		if (p->kind == TW_H1_REQUEST && ieq(n, "expect", 6) && ve - vs == 12 &&
		    ieq(buf + vs, "100-continue", 12))
			msg->expect_continue = 1;
		break;
	case 7:
		if (ieq(n, "upgrade", 7))
			msg->has_upgrade = 1;
		break;
	case 10:
		if (ieq(n, "connection", 10))
			connection_tokens(buf, vs, ve, msg);
		break;
	case 14:
		if (ieq(n, "content-length", 14)) {
			if (p->seen & SEEN_CL)
				return fail(p, 400, "duplicate Content-Length");
			if (parse_cl(buf + vs, ve - vs, &msg->content_length) != 0)
				return fail(p, 400, "invalid Content-Length");
			p->seen |= SEEN_CL;
		}
		break;
	case 17:
		if (ieq(n, "transfer-encoding", 17))
			return transfer_encoding(p, buf, vs, ve);
		break;
	default:
		break;
	}
	return 0;
}

static int end_of_head(struct tw_h1_parser *p, struct tw_h1_msg *msg)
{
	int req = p->kind == TW_H1_REQUEST;
	if ((p->seen & SEEN_CL) && (p->seen & SEEN_TE))
		return fail(p, 400, "both Content-Length and Transfer-Encoding");
	if ((p->seen & SEEN_TE) && msg->version_minor == 0)
		return fail(p, 400, "Transfer-Encoding in HTTP/1.0");
	if (req && msg->version_minor == 1 && !(p->seen & SEEN_HOST))
		return fail(p, 400, "missing Host");
	msg->chunked = (p->seen & SEEN_TE_CHUNKED_LAST) ? 1 : 0;
	if (msg->version_minor == 1)
		msg->keep_alive = !(msg->conn_flags & TW_H1_CONN_CLOSE);
	else
		msg->keep_alive = (msg->conn_flags & TW_H1_CONN_KEEPALIVE) && !(msg->conn_flags & TW_H1_CONN_CLOSE);
	if (!req) {
		unsigned st = msg->status;
		int bodiless = (st >= 100 && st < 200) || st == 204 || st == 304;
		if (!bodiless && !msg->chunked && !(p->seen & SEEN_CL))
			msg->until_close = 1;
		if (msg->until_close)
			msg->keep_alive = 0;
	}
	if (p->limits.max_body && msg->content_length > 0 && (uint64_t)msg->content_length > p->limits.max_body)
		return fail(p, 413, "Content-Length above max_body");
	p->state = ST_DONE;
	return 0;
}

/* Called when the buffer ends inside an incomplete line. The answer must be
 * the one the complete line would get (see the head-limit check in
 * tw_h1_parse): a trailing CR may be the start of the CRLF, so it is not
 * counted as target. */
static int need_more(struct tw_h1_parser *p, const char *buf, size_t len)
{
	if (p->state == ST_START && p->kind == TW_H1_REQUEST) {
		size_t x = len > p->pos && buf[len - 1] == '\r' ? len - 1 : len;
		if (x > p->limits.max_head_bytes)
			x = p->limits.max_head_bytes;
		if (target_over(p, buf, p->pos, x))
			return fail(p, 414, "request-target too long");
	}
	if (len > p->limits.max_head_bytes)
		return fail(p, 431, "head too large");
	return TW_EAGAIN;
}

int tw_h1_parse(struct tw_h1_parser *p, const char *buf, size_t len, struct tw_h1_msg *msg)
{
	if (p->state == ST_DONE)
		return 0;
	if (p->state == ST_FAILED)
		return p->status == 400 ? TW_EPROTO : TW_ELIMIT;
	if (p->pos == 0 && p->mark == 0 && p->nblank == 0) {
		/* first call: reset the scalar results (headers[] is filled as we go) */
		memset(msg, 0, offsetof(struct tw_h1_msg, headers));
		msg->nheaders = 0;
		msg->content_length = -1;
		msg->chunked = msg->expect_continue = msg->has_upgrade = 0;
		msg->conn_flags = 0;
		msg->keep_alive = msg->until_close = 0;
	}
	if (len > UINT32_MAX)
		len = UINT32_MAX; /* slices are 32-bit; the head cap is far below */
	if (len < p->mark)
		return TW_EINVAL; /* caller bug: the buffer shrank between calls */
	for (;;) {
		const char *nl = memchr(buf + p->mark, '\n', len - p->mark);
		if (!nl) {
			p->mark = len;
			return need_more(p, buf, len);
		}
		size_t eol = (size_t)(nl - buf);
		size_t s = p->pos, e = eol > s ? eol - 1 : s;
		/* Limits first, judged on the bytes that a partial line would have
		 * shown need_more(), so that any split gives the same answer: 414 if
		 * the target is too long within the head cap, else 431 past the cap. */
		if (p->state == ST_START && p->kind == TW_H1_REQUEST) {
			size_t x = eol > s && buf[eol - 1] == '\r' ? eol - 1 : eol;
			if (x > p->limits.max_head_bytes)
				x = p->limits.max_head_bytes;
			if (target_over(p, buf, s, x))
				return fail(p, 414, "request-target too long");
		}
		if (eol + 1 > p->limits.max_head_bytes)
			return fail(p, 431, "head too large");
		if (eol == s || buf[eol - 1] != '\r')
			return fail(p, 400, "bare LF");
		int rc;
		if (p->state == ST_START) {
			if (s == e) {
				if (p->kind == TW_H1_RESPONSE || ++p->nblank > MAX_LEADING_CRLF)
					return fail(p, 400, "empty line before start line");
				rc = 0;
			} else {
				rc = p->kind == TW_H1_REQUEST ? request_line(p, buf, s, e, msg)
							      : status_line(p, buf, s, e, msg);
				p->state = ST_HEADERS;
			}
		} else if (s == e) {
			p->pos = p->mark = eol + 1;
			p->head_len = eol + 1;
			return end_of_head(p, msg);
		} else {
			rc = header_line(p, buf, s, e, msg);
		}
		if (rc != 0)
			return rc;
		p->pos = p->mark = eol + 1;
	}
}

int tw_h1_find_header(const char *buf, const struct tw_h1_msg *msg, const char *name, unsigned start)
{
	size_t n = strlen(name);
	for (unsigned i = start; i < msg->nheaders; i++) {
		const struct tw_h1_header *h = &msg->headers[i];
		if (h->name.len != n)
			continue;
		size_t k = 0;
		while (k < n && lower[(unsigned char)buf[h->name.off + k]] == lower[(unsigned char)name[k]])
			k++;
		if (k == n)
			return (int)i;
	}
	return -1;
}

int tw_h1_header_has_token(const char *buf, const struct tw_h1_header *h, const char *token)
{
	size_t tn = strlen(token);
	size_t i = h->value.off, ve = h->value.off + h->value.len;
	while (i < ve) {
		size_t es = i;
		while (i < ve && buf[i] != ',')
			i++;
		size_t ee = i;
		if (i < ve)
			i++;
		while (es < ee && is_ows(buf[es]))
			es++;
		while (ee > es && is_ows(buf[ee - 1]))
			ee--;
		if (ee - es != tn)
			continue;
		size_t k = 0;
		while (k < tn && lower[(unsigned char)buf[es + k]] == lower[(unsigned char)token[k]])
			k++;
		if (k == tn)
			return 1;
	}
	return 0;
}

/* ---- chunked scanner ------------------------------------------------------ */

enum {
	CK_SIZE0 = 0, /* first hex digit of chunk-size */
	CK_SIZE,
	CK_EXT_BWS,  /* whitespace after size/value: only ';' may follow */
	CK_EXT_NAME0,
	CK_EXT_NAME,
	CK_EXT_AFTER_NAME,
	CK_EXT_VAL0,
	CK_EXT_VAL,
	CK_EXT_QS,
	CK_EXT_QP,
	CK_EXT_VAL_END,
	CK_SIZE_LF,
	CK_DATA,
	CK_DATA_CR,
	CK_DATA_LF,
	CK_TR_START,
	CK_TR_NAME,
	CK_TR_VAL,
	CK_TR_LF,
	CK_END_LF,
	CK_DONE,
	CK_FAIL_PROTO,
	CK_FAIL_LIMIT,
};

#define CK_LINE_MAX 4096
#define CK_TRAILER_MAX 8192

void tw_h1_chunked_init(struct tw_h1_chunked *c, uint64_t max_body)
{
	memset(c, 0, sizeof *c);
	c->state = CK_SIZE0;
	c->max_body = max_body;
}

static int ck_fail(struct tw_h1_chunked *c, int limit, const char *why)
{
	c->state = limit ? CK_FAIL_LIMIT : CK_FAIL_PROTO;
	c->why = why;
	return limit ? TW_ELIMIT : TW_EPROTO;
}

int tw_h1_chunked_scan(struct tw_h1_chunked *c, const char *buf, size_t len, size_t *consumed,
		       void (*on_data)(void *ctx, const char *p, size_t n), void *ctx)
{
	size_t i = 0;
	*consumed = 0;
	if (c->state == CK_DONE)
		return 0;
	if (c->state == CK_FAIL_PROTO)
		return TW_EPROTO;
	if (c->state == CK_FAIL_LIMIT)
		return TW_ELIMIT;
	while (i < len) {
		if (c->state == CK_DATA) {
			size_t n = len - i;
			if ((uint64_t)n > c->remaining)
				n = (size_t)c->remaining;
			if (on_data && n)
				on_data(ctx, buf + i, n);
			i += n;
			c->remaining -= n;
			if (c->remaining == 0)
				c->state = CK_DATA_CR;
			continue;
		}
		unsigned char ch = (unsigned char)buf[i++];
		int st = c->state;
		if (st <= CK_SIZE_LF) {
			if (++c->line_len > CK_LINE_MAX)
				return ck_fail(c, 1, "chunk-size line too long");
		} else if (st >= CK_TR_START && st <= CK_END_LF) {
			if (++c->trailer_bytes > CK_TRAILER_MAX)
				return ck_fail(c, 1, "trailers too large");
		}
		switch (st) {
		case CK_SIZE0:
		case CK_SIZE:
			if (cls[ch] & C_HEX) {
				if (st == CK_SIZE0) {
					c->remaining = 0;
					c->ndigits = 0;
				}
				if (++c->ndigits > 16)
					return ck_fail(c, 0, "chunk-size too long");
				unsigned d = ch <= '9' ? (unsigned)(ch - '0') : (unsigned)(lower[ch] - 'a' + 10);
				c->remaining = (c->remaining << 4) | d;
				if (c->remaining > CL_MAX)
					return ck_fail(c, 0, "chunk-size overflow");
				c->state = CK_SIZE;
			} else if (st == CK_SIZE0) {
				return ck_fail(c, 0, ch == '\n' ? "bare LF" : "invalid chunk-size");
			} else if (ch == ';') {
				c->state = CK_EXT_NAME0;
			} else if (is_ows((char)ch)) {
				c->state = CK_EXT_BWS;
			} else if (ch == '\r') {
				c->state = CK_SIZE_LF;
			} else {
				return ck_fail(c, 0, ch == '\n' ? "bare LF" : "invalid chunk-size");
			}
			break;
		case CK_EXT_BWS:
			if (ch == ';')
				c->state = CK_EXT_NAME0;
			else if (!is_ows((char)ch))
				return ck_fail(c, 0, "invalid chunk extension");
			break;
		case CK_EXT_NAME0:
			if (cls[ch] & C_TCHAR)
				c->state = CK_EXT_NAME;
			else if (!is_ows((char)ch))
				return ck_fail(c, 0, "invalid chunk extension");
			break;
		case CK_EXT_NAME:
		case CK_EXT_AFTER_NAME:
			if ((cls[ch] & C_TCHAR) && st == CK_EXT_NAME)
				break;
			if (is_ows((char)ch))
				c->state = CK_EXT_AFTER_NAME;
			else if (ch == '=')
				c->state = CK_EXT_VAL0;
			else if (ch == ';')
				c->state = CK_EXT_NAME0;
			else if (ch == '\r')
				c->state = CK_SIZE_LF;
			else
				return ck_fail(c, 0, ch == '\n' ? "bare LF" : "invalid chunk extension");
			break;
		case CK_EXT_VAL0:
			if (ch == '"')
				c->state = CK_EXT_QS;
			else if (cls[ch] & C_TCHAR)
				c->state = CK_EXT_VAL;
			else if (!is_ows((char)ch))
				return ck_fail(c, 0, "invalid chunk extension");
			break;
		case CK_EXT_VAL:
		case CK_EXT_VAL_END:
			if ((cls[ch] & C_TCHAR) && st == CK_EXT_VAL)
				break;
			if (is_ows((char)ch))
				c->state = CK_EXT_BWS;
			else if (ch == ';')
				c->state = CK_EXT_NAME0;
			else if (ch == '\r')
				c->state = CK_SIZE_LF;
			else
				return ck_fail(c, 0, ch == '\n' ? "bare LF" : "invalid chunk extension");
			break;
		case CK_EXT_QS:
			if (ch == '"')
				c->state = CK_EXT_VAL_END;
			else if (ch == '\\')
				c->state = CK_EXT_QP;
			else if (!(cls[ch] & C_QDTEXT))
				return ck_fail(c, 0, "invalid quoted string in chunk extension");
			break;
		case CK_EXT_QP:
			if (!(cls[ch] & C_VALUE))
				return ck_fail(c, 0, "invalid quoted-pair in chunk extension");
			c->state = CK_EXT_QS;
			break;
		case CK_SIZE_LF:
			if (ch != '\n')
				return ck_fail(c, 0, "bare CR");
			c->line_len = 0;
			if (c->remaining == 0) {
				c->state = CK_TR_START;
			} else {
				if (c->max_body && c->remaining > c->max_body - c->total)
					return ck_fail(c, 1, "chunked body above max_body");
				c->total += c->remaining;
				c->state = CK_DATA;
			}
			break;
		case CK_DATA_CR:
			if (ch != '\r')
				return ck_fail(c, 0, "missing CRLF after chunk data");
			c->state = CK_DATA_LF;
			break;
		case CK_DATA_LF:
			if (ch != '\n')
				return ck_fail(c, 0, "bare CR after chunk data");
			c->state = CK_SIZE0;
			break;
		case CK_TR_START:
			if (ch == '\r')
				c->state = CK_END_LF;
			else if (cls[ch] & C_TCHAR)
				c->state = CK_TR_NAME;
			else if (is_ows((char)ch))
				return ck_fail(c, 0, "obs-fold in trailer");
			else
				return ck_fail(c, 0, ch == '\n' ? "bare LF" : "invalid trailer name");
			break;
		case CK_TR_NAME:
			if (ch == ':')
				c->state = CK_TR_VAL;
			else if (!(cls[ch] & C_TCHAR))
				return ck_fail(c, 0, is_ows((char)ch) ? "whitespace before colon in trailer"
								      : "invalid trailer name");
			break;
		case CK_TR_VAL:
			if (ch == '\r')
				c->state = CK_TR_LF;
			else if (!(cls[ch] & C_VALUE))
				return ck_fail(c, 0, ch == '\n' ? "bare LF" : "control char in trailer value");
			break;
		case CK_TR_LF:
			if (ch != '\n')
				return ck_fail(c, 0, "bare CR in trailer");
			c->state = CK_TR_START;
			break;
		case CK_END_LF:
			if (ch != '\n')
				return ck_fail(c, 0, "bare CR at end of body");
			c->state = CK_DONE;
			*consumed = i;
			return 0;
		default:
			return ck_fail(c, 0, "internal state");
		}
	}
	*consumed = len;
	return TW_EAGAIN;
}

static void move_down(void *ctx, const char *p, size_t n)
{
	char **dst = ctx;
	memmove(*dst, p, n); /* *dst <= p: the framing only ever leaves a gap */
	*dst += n;
}

int tw_h1_chunked_decode(struct tw_h1_chunked *c, char *buf, size_t len, size_t *consumed, size_t *payload)
{
	char *dst = buf;
	int rc = tw_h1_chunked_scan(c, buf, len, consumed, move_down, &dst);
	/* the scanner reports nothing consumed on an error, though data before
	 * it was moved: say nothing was produced either */
	*payload = rc == 0 || rc == TW_EAGAIN ? (size_t)(dst - buf) : 0;
	return rc;
}

const char *tw_h1_reason(unsigned status)
{
	switch (status) {
	case 100: return "Continue";
	case 101: return "Switching Protocols";
	case 200: return "OK";
	case 201: return "Created";
	case 202: return "Accepted";
	case 204: return "No Content";
	case 206: return "Partial Content";
	case 301: return "Moved Permanently";
	case 302: return "Found";
	case 303: return "See Other";
	case 304: return "Not Modified";
	case 307: return "Temporary Redirect";
	case 308: return "Permanent Redirect";
	case 400: return "Bad Request";
	case 401: return "Unauthorized";
	case 403: return "Forbidden";
	case 404: return "Not Found";
	case 405: return "Method Not Allowed";
	case 408: return "Request Timeout";
	case 411: return "Length Required";
	case 413: return "Content Too Large";
	case 414: return "URI Too Long";
	case 417: return "Expectation Failed";
	case 421: return "Misdirected Request";
	case 426: return "Upgrade Required";
	case 429: return "Too Many Requests";
	case 431: return "Request Header Fields Too Large";
	case 500: return "Internal Server Error";
	case 501: return "Not Implemented";
	case 502: return "Bad Gateway";
	case 503: return "Service Unavailable";
	case 504: return "Gateway Timeout";
	case 505: return "HTTP Version Not Supported";
	default: return "Unknown";
	}
}
