/* proxyproto.c — PROXY protocol v1/v2 parser and writer (proxyproto.h).
 *
 * One byte at a time through an explicit state; each piece (v1 line, v2
 * fixed part, address block, TLV head) is gathered in p->buf, which is never
 * larger than the biggest piece (216 bytes, a v2 UNIX address block). TLV
 * values are not buffered: the few we keep are copied straight into
 * p->info, cut to their field and made printable. */
#include "edge/proxyproto.h"

#include "core/err.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>

static const uint8_t v2sig[12] = {0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A};
static const char v1sig[6] = {'P', 'R', 'O', 'X', 'Y', ' '};

enum { PP2_LOCAL = 0, PP2_PROXY = 1 };
enum { PP2_AF_UNSPEC = 0, PP2_AF_INET, PP2_AF_INET6, PP2_AF_UNIX };
enum { PP2_TYPE_ALPN = 0x01, PP2_TYPE_AUTHORITY = 0x02, PP2_TYPE_AWS = 0xEA, PP2_SUBTYPE_AWS_VPCE_ID = 0x01 };

void tw_pp_init(struct tw_pp_parser *p)
{
	memset(p, 0, sizeof *p);
}

static int fail(struct tw_pp_parser *p, const char *why)
{
	p->st = TW_PP_ERROR;
	p->why = why;
	return TW_EPROTO;
}

/* ---- v1 ---- */

/* Next space-separated token of line[*pos..n): exactly one space between
 * tokens, none at the ends. */
static int token(const char *line, size_t n, size_t *pos, const char **tok, size_t *tlen)
{
	size_t s = *pos;
	if (s >= n)
		return -1;
	size_t e = s;
	while (e < n && line[e] != ' ')
		e++;
	if (e == s)
		return -1;
	*tok = line + s;
	*tlen = e - s;
	*pos = e < n ? e + 1 : e;
	if (e < n && e + 1 == n)
		return -1; /* trailing space */
	return 0;
}

static int parse_port(const char *t, size_t n, uint16_t *out)
{
	if (n == 0 || n > 5)
		return -1;
	unsigned v = 0;
	for (size_t i = 0; i < n; i++) {
		if (t[i] < '0' || t[i] > '9')
			return -1;
		v = v * 10 + (unsigned)(t[i] - '0');
	}
	if (v > 65535)
		return -1;
	*out = (uint16_t)v;
	return 0;
}

static int parse_ip(int fam, const char *t, size_t n, struct sockaddr_storage *ss, socklen_t *len, uint16_t port)
{
	char tmp[48];
	if (n == 0 || n >= sizeof tmp)
		return -1;
	memcpy(tmp, t, n);
	tmp[n] = '\0';
	memset(ss, 0, sizeof *ss);
	if (fam == AF_INET) {
		struct sockaddr_in *in = (struct sockaddr_in *)ss;
		if (inet_pton(AF_INET, tmp, &in->sin_addr) != 1)
			return -1;
		in->sin_family = AF_INET;
		in->sin_port = htons(port);
		*len = sizeof *in;
	} else {
		struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)ss;
		if (inet_pton(AF_INET6, tmp, &in6->sin6_addr) != 1)
			return -1;
		in6->sin6_family = AF_INET6;
		in6->sin6_port = htons(port);
		*len = sizeof *in6;
	}
	return 0;
}

/* line: the whole v1 header without its CRLF. */
static int v1_line(struct tw_pp_parser *p, const char *line, size_t n)
{
	size_t pos = sizeof v1sig;
	const char *t[5];
	size_t tl[5];
	if (token(line, n, &pos, &t[0], &tl[0]) != 0)
		return fail(p, "v1: no protocol");
	p->info.version = 1;
	if (tl[0] == 7 && memcmp(t[0], "UNKNOWN", 7) == 0) {
		p->info.local = 1; /* the rest of the line is ignored (spec) */
		return 0;
	}
	int fam;
	if (tl[0] == 4 && memcmp(t[0], "TCP4", 4) == 0)
		fam = AF_INET;
	else if (tl[0] == 4 && memcmp(t[0], "TCP6", 4) == 0)
		fam = AF_INET6;
	else
		return fail(p, "v1: protocol is not TCP4, TCP6 or UNKNOWN");
	for (int i = 1; i < 5; i++)
		if (token(line, n, &pos, &t[i], &tl[i]) != 0)
			return fail(p, "v1: expected source, destination and two ports");
	if (pos != n)
		return fail(p, "v1: extra fields after the ports");
	uint16_t sport, dport;
	if (parse_port(t[3], tl[3], &sport) != 0 || parse_port(t[4], tl[4], &dport) != 0)
		return fail(p, "v1: bad port");
	if (parse_ip(fam, t[1], tl[1], &p->info.src, &p->info.srclen, sport) != 0 ||
	    parse_ip(fam, t[2], tl[2], &p->info.dst, &p->info.dstlen, dport) != 0)
		return fail(p, "v1: bad address for the protocol");
	return 0;
}

/* ---- v2 ---- */

static void keep_char(char *dst, size_t cap, uint16_t pos, uint8_t ch)
{
	if (pos + 1u >= cap)
		return;
	dst[pos] = ch > 0x20 && ch < 0x7f ? (char)ch : '?';
	dst[pos + 1] = '\0';
}

static int v2_head(struct tw_pp_parser *p)
{
	const uint8_t *b = p->buf;
	if ((b[12] >> 4) != 2)
		return fail(p, "v2: version is not 2");
	p->cmd = b[12] & 0x0F;
	if (p->cmd != PP2_LOCAL && p->cmd != PP2_PROXY)
		return fail(p, "v2: command is neither LOCAL nor PROXY");
	p->fam = b[13] >> 4;
	unsigned proto = b[13] & 0x0F;
	if (p->fam > PP2_AF_UNIX || proto > 2)
		return fail(p, "v2: unknown family or protocol");
	p->v2len = (uint16_t)((b[14] << 8) | b[15]);
	if (16u + p->v2len > TW_PP_MAX)
		return fail(p, "v2: header longer than 4096 bytes");
	p->info.version = 2;
	p->addrneed = 0;
	if (p->cmd == PP2_LOCAL || p->fam == PP2_AF_UNSPEC) {
		p->info.local = 1;
	} else {
		if (p->fam != PP2_AF_UNIX && proto != 1)
			return fail(p, "v2: not a stream protocol");
		p->addrneed = p->fam == PP2_AF_INET ? 12 : p->fam == PP2_AF_INET6 ? 36 : 216;
		if (p->fam == PP2_AF_UNIX)
			p->info.local = 1;
		if (p->v2len < p->addrneed)
			return fail(p, "v2: length shorter than the address block");
	}
	return 0;
}

static void v2_addr(struct tw_pp_parser *p)
{
	const uint8_t *b = p->buf;
	struct tw_pp_info *i = &p->info;
	memset(&i->src, 0, sizeof i->src);
	memset(&i->dst, 0, sizeof i->dst);
	if (p->fam == PP2_AF_INET) {
		struct sockaddr_in *s = (struct sockaddr_in *)&i->src, *d = (struct sockaddr_in *)&i->dst;
		s->sin_family = d->sin_family = AF_INET;
		memcpy(&s->sin_addr, b, 4);
		memcpy(&d->sin_addr, b + 4, 4);
		memcpy(&s->sin_port, b + 8, 2);
		memcpy(&d->sin_port, b + 10, 2);
		i->srclen = i->dstlen = sizeof(struct sockaddr_in);
	} else if (p->fam == PP2_AF_INET6) {
		struct sockaddr_in6 *s = (struct sockaddr_in6 *)&i->src, *d = (struct sockaddr_in6 *)&i->dst;
		s->sin6_family = d->sin6_family = AF_INET6;
		memcpy(&s->sin6_addr, b, 16);
		memcpy(&d->sin6_addr, b + 16, 16);
		memcpy(&s->sin6_port, b + 32, 2);
		memcpy(&d->sin6_port, b + 34, 2);
		i->srclen = i->dstlen = sizeof(struct sockaddr_in6);
	}
}

/* After a piece of the v2 body: what comes next. */
static int v2_next(struct tw_pp_parser *p)
{
	p->fill = 0;
	if (p->body == p->v2len) {
		p->st = TW_PP_DONE;
		return 0;
	}
	if (p->cmd == PP2_LOCAL || p->fam == PP2_AF_UNSPEC) {
		p->st = TW_PP_V2_TLV_VAL; /* ignored (spec): skip the rest as one opaque value */
		p->tlv_type = 0;
		p->tlv_len = (uint16_t)(p->v2len - p->body);
		p->tlv_pos = 0;
		return TW_EAGAIN;
	}
	p->st = TW_PP_V2_TLV_HEAD;
	return TW_EAGAIN;
}

static void tlv_byte(struct tw_pp_parser *p, uint8_t ch)
{
	struct tw_pp_info *i = &p->info;
	uint16_t pos = p->tlv_pos;
	switch (p->tlv_type) {
	case PP2_TYPE_ALPN: keep_char(i->alpn, sizeof i->alpn, pos, ch); break;
	case PP2_TYPE_AUTHORITY: keep_char(i->authority, sizeof i->authority, pos, ch); break;
	case PP2_TYPE_AWS:
		if (pos == 0)
			p->buf[0] = ch; /* subtype */
		else if (p->buf[0] == PP2_SUBTYPE_AWS_VPCE_ID)
			keep_char(i->vpce, sizeof i->vpce, (uint16_t)(pos - 1), ch);
		break;
	default: break;
	}
}

/* One byte. 0 = header complete, TW_EAGAIN = more, TW_EPROTO = bad. */
static int step(struct tw_pp_parser *p, uint8_t ch)
{
	switch (p->st) {
	case TW_PP_START:
		if (ch == (uint8_t)v1sig[0])
			p->st = TW_PP_V1;
		else if (ch == v2sig[0])
			p->st = TW_PP_V2_HEAD;
		else
			return fail(p, "no PROXY protocol signature");
		p->buf[p->fill++] = ch;
		return TW_EAGAIN;
	case TW_PP_V1:
		if (p->fill < sizeof v1sig && ch != (uint8_t)v1sig[p->fill])
			return fail(p, "no PROXY protocol signature");
		if (ch == '\n') {
			if (p->buf[p->fill - 1] != '\r')
				return fail(p, "v1: line ends without CR");
			int rc = v1_line(p, (const char *)p->buf, p->fill - 1u);
			if (rc != 0)
				return rc;
			p->st = TW_PP_DONE;
			return 0;
		}
		if (p->fill > 0 && p->buf[p->fill - 1] == '\r')
			return fail(p, "v1: CR inside the line");
		if (p->fill + 1u >= TW_PP_V1_MAX)
			return fail(p, "v1: line longer than 107 bytes");
		if (ch < 0x20 && ch != '\r')
			return fail(p, "v1: control character in the line");
		p->buf[p->fill++] = ch;
		return TW_EAGAIN;
	case TW_PP_V2_HEAD:
		if (p->fill < sizeof v2sig && ch != v2sig[p->fill])
			return fail(p, "no PROXY protocol signature");
		p->buf[p->fill++] = ch;
		if (p->fill < 16)
			return TW_EAGAIN;
		if (v2_head(p) != 0)
			return TW_EPROTO;
		p->fill = 0;
		p->body = 0;
		if (p->addrneed > 0) {
			p->st = TW_PP_V2_ADDR;
			return TW_EAGAIN;
		}
		return v2_next(p);
	case TW_PP_V2_ADDR:
		p->buf[p->fill++] = ch;
		p->body++;
		if (p->fill < p->addrneed)
			return TW_EAGAIN;
		v2_addr(p);
		return v2_next(p);
	case TW_PP_V2_TLV_HEAD:
		p->buf[p->fill++] = ch;
		p->body++;
		if (p->fill < 3) {
			if (p->body == p->v2len)
				return fail(p, "v2: truncated TLV");
			return TW_EAGAIN;
		}
		p->tlv_type = p->buf[0];
		p->tlv_len = (uint16_t)((p->buf[1] << 8) | p->buf[2]);
		p->tlv_pos = 0;
		if (p->tlv_len > p->v2len - p->body)
			return fail(p, "v2: TLV longer than the header");
		p->fill = 0;
		if (p->tlv_len == 0)
			return v2_next(p);
		p->st = TW_PP_V2_TLV_VAL;
		return TW_EAGAIN;
	case TW_PP_V2_TLV_VAL:
		tlv_byte(p, ch);
		p->tlv_pos++;
		p->body++;
		if (p->tlv_pos < p->tlv_len)
			return TW_EAGAIN;
		return v2_next(p);
	case TW_PP_DONE: return 0;
	case TW_PP_ERROR: return TW_EPROTO;
	}
	return fail(p, "internal state");
}

static int skipping(const struct tw_pp_parser *p)
{
	if (p->st != TW_PP_V2_TLV_VAL)
		return 0;
	if (p->tlv_type == PP2_TYPE_ALPN || p->tlv_type == PP2_TYPE_AUTHORITY)
		return 0;
	if (p->tlv_type == PP2_TYPE_AWS)
		return p->tlv_pos > 0 && p->buf[0] != PP2_SUBTYPE_AWS_VPCE_ID;
	return 1;
}

int tw_pp_feed(struct tw_pp_parser *p, const void *buf, size_t len, size_t *used)
{
	const uint8_t *b = buf;
	*used = 0;
	if (p->st == TW_PP_DONE)
		return 0;
	if (p->st == TW_PP_ERROR)
		return TW_EPROTO;
	for (size_t k = 0; k < len; k++) {
		/* A value nobody keeps goes in one step. */
		if (skipping(p)) {
			size_t want = (size_t)(p->tlv_len - p->tlv_pos), have = len - k;
			size_t n = want < have ? want : have;
			if (n > 1) {
				p->tlv_pos = (uint16_t)(p->tlv_pos + n - 1);
				p->body = (uint16_t)(p->body + n - 1);
				p->total += (uint32_t)(n - 1);
				k += n - 1;
			}
		}
		p->total++;
		int rc = step(p, b[k]);
		if (rc != TW_EAGAIN) {
			*used = k + 1;
			return rc;
		}
	}
	*used = len;
	return TW_EAGAIN;
}

void tw_pp_addr_text(const struct sockaddr *sa, char *out, size_t cap)
{
	if (sa->sa_family == AF_INET)
		inet_ntop(AF_INET, &((const struct sockaddr_in *)sa)->sin_addr, out, (socklen_t)cap);
	else if (sa->sa_family == AF_INET6)
		inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)sa)->sin6_addr, out, (socklen_t)cap);
	else
		snprintf(out, cap, "unix");
}

/* ---- writer ---- */

/* Both addresses as one family: an IPv4 one beside an IPv6 one becomes
 * ::ffff:a.b.c.d (as HAProxy does). 0 when either is neither. */
static int to_v6(const struct sockaddr *in, struct sockaddr_in6 *out)
{
	const struct sockaddr_in *s4 = (const struct sockaddr_in *)in;
	memset(out, 0, sizeof *out);
	out->sin6_family = AF_INET6;
	out->sin6_port = s4->sin_port;
	out->sin6_addr.s6_addr[10] = 0xff;
	out->sin6_addr.s6_addr[11] = 0xff;
	memcpy(out->sin6_addr.s6_addr + 12, &s4->sin_addr, 4);
	return 1;
}

static int same_inet(const struct sockaddr **src, const struct sockaddr **dst, struct sockaddr_in6 tmp[2])
{
	const struct sockaddr *s = *src, *d = *dst;
	if (s == NULL || d == NULL)
		return 0;
	int sf = s->sa_family, df = d->sa_family;
	if ((sf != AF_INET && sf != AF_INET6) || (df != AF_INET && df != AF_INET6))
		return 0;
	if (sf == df)
		return 1;
	if (sf == AF_INET && to_v6(s, &tmp[0]))
		*src = (const struct sockaddr *)&tmp[0];
	if (df == AF_INET && to_v6(d, &tmp[1]))
		*dst = (const struct sockaddr *)&tmp[1];
	return 1;
}

static unsigned port_of(const struct sockaddr *sa)
{
	return sa->sa_family == AF_INET ? ntohs(((const struct sockaddr_in *)sa)->sin_port)
					: ntohs(((const struct sockaddr_in6 *)sa)->sin6_port);
}

size_t tw_pp_write_v1(char *out, size_t cap, const struct sockaddr *src, const struct sockaddr *dst)
{
	if (cap < TW_PP_V1_MAX + 1)
		return 0;
	int n;
	struct sockaddr_in6 tmp[2];
	if (!same_inet(&src, &dst, tmp)) {
		n = snprintf(out, cap, "PROXY UNKNOWN\r\n");
	} else {
		char s[48], d[48];
		tw_pp_addr_text(src, s, sizeof s);
		tw_pp_addr_text(dst, d, sizeof d);
		n = snprintf(out, cap, "PROXY %s %s %s %u %u\r\n", src->sa_family == AF_INET ? "TCP4" : "TCP6", s, d,
			     port_of(src), port_of(dst));
	}
	return n > 0 && (size_t)n < cap ? (size_t)n : 0;
}

size_t tw_pp_write_v2(char *out, size_t cap, const struct sockaddr *src, const struct sockaddr *dst,
		      const char *alpn)
{
	size_t alen = alpn ? strlen(alpn) : 0;
	if (alen > 255)
		alen = 255;
	size_t need = 16 + 36 + (alen ? 3 + alen : 0);
	if (cap < need)
		return 0;
	uint8_t *b = (uint8_t *)out;
	memcpy(b, v2sig, sizeof v2sig);
	size_t n = 16;
	struct sockaddr_in6 tmp[2];
	if (!same_inet(&src, &dst, tmp)) {
		b[12] = 0x20; /* v2 LOCAL */
		b[13] = 0x00;
	} else if (src->sa_family == AF_INET) {
		const struct sockaddr_in *s = (const struct sockaddr_in *)src, *d = (const struct sockaddr_in *)dst;
		b[12] = 0x21;
		b[13] = 0x11;
		memcpy(b + n, &s->sin_addr, 4);
		memcpy(b + n + 4, &d->sin_addr, 4);
		memcpy(b + n + 8, &s->sin_port, 2);
		memcpy(b + n + 10, &d->sin_port, 2);
		n += 12;
	} else {
		const struct sockaddr_in6 *s = (const struct sockaddr_in6 *)src, *d = (const struct sockaddr_in6 *)dst;
		b[12] = 0x21;
		b[13] = 0x21;
		memcpy(b + n, &s->sin6_addr, 16);
		memcpy(b + n + 16, &d->sin6_addr, 16);
		memcpy(b + n + 32, &s->sin6_port, 2);
		memcpy(b + n + 34, &d->sin6_port, 2);
		n += 36;
	}
	if (alen && b[12] == 0x21) {
		b[n] = PP2_TYPE_ALPN;
		b[n + 1] = 0;
		b[n + 2] = (uint8_t)alen;
		memcpy(b + n + 3, alpn, alen);
		n += 3 + alen;
	}
	b[14] = (uint8_t)((n - 16) >> 8);
	b[15] = (uint8_t)(n - 16);
	return n;
}
