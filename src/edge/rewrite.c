/* rewrite.c — request and response heads as they cross the proxy.
 *
 * Hop-by-hop headers are dropped both ways (Connection, Keep-Alive,
 * Proxy-Connection, TE, Trailer, Transfer-Encoding, Upgrade, and every header
 * a Connection header names); the framing we use is added back. Toward the
 * upstream we add X-Forwarded-For/-Proto/-Host, Forwarded, Via and
 * X-Request-Id (incoming forwarding headers are kept and appended to only
 * when the peer is a trusted proxy). The client gets Via and X-Request-Id.
 * Requests go up as HTTP/1.1 whatever the client spoke. */
#include "edge/edge.h"
#include "edge/rl_req.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

#define MAX_CONN_TOKENS 16

struct tokens {
	struct tw_slice t[MAX_CONN_TOKENS];
	unsigned n;
};

static int name_is(const char *buf, struct tw_slice s, const char *name)
{
	size_t n = strlen(name);
	return s.len == n && strncasecmp(buf + s.off, name, n) == 0;
}

static void collect_connection_tokens(const char *buf, const struct tw_h1_msg *m, struct tokens *tk)
{
	tk->n = 0;
	for (unsigned i = 0; i < m->nheaders; i++) {
		if (!name_is(buf, m->headers[i].name, "connection"))
			continue;
		const char *p = buf + m->headers[i].value.off;
		const char *end = p + m->headers[i].value.len;
		while (p < end && tk->n < MAX_CONN_TOKENS) {
			while (p < end && (*p == ' ' || *p == '\t' || *p == ','))
				p++;
			const char *s = p;
			while (p < end && *p != ',' && *p != ' ' && *p != '\t')
				p++;
			if (p > s)
				tk->t[tk->n++] = (struct tw_slice){(uint32_t)(s - buf), (uint32_t)(p - s)};
		}
	}
}

static int named_in_connection(const char *buf, struct tw_slice name, const struct tokens *tk)
{
	for (unsigned i = 0; i < tk->n; i++)
		if (tk->t[i].len == name.len && strncasecmp(buf + tk->t[i].off, buf + name.off, name.len) == 0)
			return 1;
	return 0;
}

/* Header names the proxy treats specially, found with one switch on the
 * length and one case-insensitive compare (no scan over a list). */
enum hdr_kind {
	H_OTHER = 0,
	H_HOP,     /* hop-by-hop: connection keep-alive proxy-connection te trailer transfer-encoding upgrade */
	H_FWD,     /* forwarding headers we rebuild: x-forwarded-for/-proto/-host forwarded */
	H_RID,     /* x-request-id */
	H_VIA,     /* via */
	H_EXPECT,  /* expect */
	H_HOST     /* host */
};

static enum hdr_kind classify(const char *buf, struct tw_slice n)
{
	const char *p = buf + n.off;
#define IS(lit) (strncasecmp(p, lit, sizeof lit - 1) == 0)
	switch (n.len) {
	case 2: return IS("te") ? H_HOP : H_OTHER;
	case 3: return IS("via") ? H_VIA : H_OTHER;
	case 4: return IS("host") ? H_HOST : H_OTHER;
	case 6: return IS("expect") ? H_EXPECT : H_OTHER;
	case 7: return IS("trailer") || IS("upgrade") ? H_HOP : H_OTHER;
	case 9: return IS("forwarded") ? H_FWD : H_OTHER;
	case 10: return IS("connection") || IS("keep-alive") ? H_HOP : H_OTHER;
	case 12: return IS("x-request-id") ? H_RID : H_OTHER;
	case 15: return IS("x-forwarded-for") ? H_FWD : H_OTHER;
	case 16: return IS("proxy-connection") || IS("x-forwarded-host") ? (p[0] == 'p' || p[0] == 'P' ? H_HOP : H_FWD) : H_OTHER;
	case 17: return IS("transfer-encoding") || IS("x-forwarded-proto") ? (p[0] == 't' || p[0] == 'T' ? H_HOP : H_FWD) : H_OTHER;
	default: return H_OTHER;
	}
#undef IS
}

static int put(struct tw_iobuf *out, const char *p, size_t n) { return tw_iobuf_append(out, p, n); }
static int puts_(struct tw_iobuf *out, const char *s) { return put(out, s, strlen(s)); }
/* string literals: length known at compile time */
#define PUTL(out, lit) put((out), (lit), sizeof(lit) - 1)
static int put_slice(struct tw_iobuf *out, const char *buf, struct tw_slice s)
{
	return put(out, buf + s.off, s.len);
}

/* Append all values of header `name` joined by ", " (returns 1 when any). */
static int put_joined(struct tw_iobuf *out, const char *buf, const struct tw_h1_msg *m, const char *name,
		      int *rc)
{
	int any = 0;
	for (unsigned i = 0; i < m->nheaders; i++) {
		if (!name_is(buf, m->headers[i].name, name))
			continue;
		if (any)
			*rc |= PUTL(out, ", ");
		*rc |= put_slice(out, buf, m->headers[i].value);
		any = 1;
	}
	return any;
}

/* Is the field name one a header modifier sets or removes (those fields are
 * not passed on as they came)? */
static int mod_drops(const struct tw_hdr_mod *hm, const char *name, size_t nlen)
{
	for (size_t i = 0; i < hm->nset; i++)
		if (strlen(hm->set[i].name) == nlen && strncasecmp(hm->set[i].name, name, nlen) == 0)
			return 1;
	for (size_t i = 0; i < hm->nremove; i++)
		if (strlen(hm->remove[i]) == nlen && strncasecmp(hm->remove[i], name, nlen) == 0)
			return 1;
	return 0;
}

static int put_mod_fields(struct tw_iobuf *out, const struct tw_hdr_mod *hm)
{
	int rc = 0;
	for (size_t i = 0; i < hm->nset; i++) {
		rc |= puts_(out, hm->set[i].name);
		rc |= PUTL(out, ": ");
		rc |= puts_(out, hm->set[i].value);
		rc |= PUTL(out, "\r\n");
	}
	for (size_t i = 0; i < hm->nadd; i++) {
		rc |= puts_(out, hm->add[i].name);
		rc |= PUTL(out, ": ");
		rc |= puts_(out, hm->add[i].value);
		rc |= PUTL(out, "\r\n");
	}
	return rc;
}

int tw_rewrite_request(struct tw_conn *c, struct tw_req *r, const char *buf, struct tw_iobuf *out)
{
	const struct tw_route_ext *x = r->route ? r->route->ext : NULL;
	const struct tw_h1_msg *m = &r->msg;
	const struct tw_config *cfg = r->gen->cfg;
	int trusted = 0;
	for (size_t i = 0; i < cfg->ntrusted_proxies && !trusted; i++)
		trusted = tw_cidr_contains(&cfg->trusted_proxies[i], (const struct sockaddr *)&c->peer);
	struct tokens tk;
	collect_connection_tokens(buf, m, &tk);
	int rc = 0;
	rc |= put_slice(out, buf, m->method);
	rc |= PUTL(out, " ");
	if (x != NULL && x->path_mod != TW_PATH_KEEP && m->path.len) {
		char p[2048];
		size_t pl = tw_route_path(r->route, buf + m->path.off, m->path.len, p, sizeof p);
		if (pl == 0)
			return TW_ELIMIT;
		rc |= put(out, p, pl);
		if (m->query.len) {
			rc |= PUTL(out, "?");
			rc |= put_slice(out, buf, m->query);
		}
	} else if (m->target.len && buf[m->target.off] != '/' && buf[m->target.off] != '*' && m->path.len) {
		/* absolute-form -> origin-form */
		rc |= put_slice(out, buf, m->path);
		if (m->query.len) {
			rc |= PUTL(out, "?");
			rc |= put_slice(out, buf, m->query);
		}
	} else {
		rc |= put_slice(out, buf, m->target);
	}
	/* Our own version, whatever the client's (RFC 9110 section 6.2): an
	 * HTTP/1.0 request goes up as HTTP/1.1 too, so the upstream connection
	 * stays pooled; a chunked answer is decoded for such a client. */
	rc |= PUTL(out, " HTTP/1.1\r\n");
	int have_host = 0;
	for (unsigned i = 0; i < m->nheaders; i++) {
		struct tw_slice n = m->headers[i].name;
		enum hdr_kind k = classify(buf, n);
		if (k != H_OTHER && k != H_HOST)
			continue;
		if (tk.n && named_in_connection(buf, n, &tk))
			continue;
		if (x != NULL && k != H_HOST && mod_drops(&x->req, buf + n.off, n.len))
			continue;
		if (k == H_HOST)
			have_host = 1;
		if (k == H_HOST && x != NULL && x->rewrite_host != NULL) {
			rc |= PUTL(out, "Host: ");
			rc |= puts_(out, x->rewrite_host);
			rc |= PUTL(out, "\r\n");
			continue;
		}
		rc |= put_slice(out, buf, n);
		rc |= PUTL(out, ": ");
		char inm[1024];
		size_t inml;
		if (r->czq.inm_weak && name_is(buf, n, "if-none-match") &&
		    tw_cz_if_none_match(r, buf + m->headers[i].value.off, m->headers[i].value.len, inm, sizeof inm, &inml))
			rc |= put(out, inm, inml); /* compress.c: weak tags we made match strictly too */
		else
			rc |= put_slice(out, buf, m->headers[i].value);
		rc |= PUTL(out, "\r\n");
	}
	if (!have_host && x != NULL && x->rewrite_host != NULL) {
		rc |= PUTL(out, "Host: ");
		rc |= puts_(out, x->rewrite_host);
		rc |= PUTL(out, "\r\n");
	} else if (!have_host && m->authority.len) {
		rc |= PUTL(out, "Host: ");
		rc |= put_slice(out, buf, m->authority);
		rc |= PUTL(out, "\r\n");
	} else if (!have_host) {
		/* HTTP/1.0 without Host: HTTP/1.1 needs one; the backend's name (as
		 * nginx sends its upstream group's) when it is a valid host name */
		const char *bn = cfg->backends[r->backend].name;
		rc |= PUTL(out, "Host: ");
		rc |= puts_(out, bn[0] && strspn(bn, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-_~") ==
					   strlen(bn) ? bn : "localhost");
		rc |= PUTL(out, "\r\n");
	}
	if (x != NULL)
		rc |= put_mod_fields(out, &x->req);
	if (m->chunked)
		rc |= PUTL(out, "Transfer-Encoding: chunked\r\n");
	if (r->want_upgrade) {
		int u = tw_h1_find_header(buf, m, "upgrade", 0);
		rc |= PUTL(out, "Connection: upgrade\r\nUpgrade: ");
		if (u >= 0)
			rc |= put_slice(out, buf, m->headers[u].value);
		rc |= PUTL(out, "\r\n");
	}
	const char *ip = c->peer_ip;
	rc |= PUTL(out, "X-Forwarded-For: ");
	if (trusted && put_joined(out, buf, m, "x-forwarded-for", &rc))
		rc |= PUTL(out, ", ");
	rc |= puts_(out, ip);
	const char *proto = c->fops->secure ? "https" : "http";
	rc |= PUTL(out, "\r\nX-Forwarded-Proto: ");
	if (!(trusted && put_joined(out, buf, m, "x-forwarded-proto", &rc)))
		rc |= puts_(out, proto);
	rc |= PUTL(out, "\r\nX-Forwarded-Host: ");
	if (!(trusted && put_joined(out, buf, m, "x-forwarded-host", &rc)))
		rc |= put_slice(out, buf, m->authority);
	rc |= PUTL(out, "\r\nForwarded: ");
	if (trusted && put_joined(out, buf, m, "forwarded", &rc))
		rc |= PUTL(out, ", ");
	int v6 = strchr(ip, ':') != NULL;
	rc |= puts_(out, v6 ? "for=\"[" : "for=");
	rc |= puts_(out, ip);
	rc |= puts_(out, v6 ? "]\";host=" : ";host=");
	int quote = 0;
	for (uint32_t k = 0; k < m->authority.len; k++) {
		char ch = buf[m->authority.off + k];
		if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') || ch == '.' ||
		      ch == '-' || ch == '_' || ch == '~'))
			quote = 1;
	}
	if (quote)
		rc |= PUTL(out, "\"");
	rc |= put_slice(out, buf, m->authority);
	rc |= puts_(out, quote ? "\";proto=" : ";proto=");
	rc |= puts_(out, proto);
	rc |= PUTL(out, "\r\nVia: ");
	if (put_joined(out, buf, m, "via", &rc))
		rc |= PUTL(out, ", ");
	rc |= puts_(out, m->version_minor == 0 ? "1.0 " : "1.1 ");
	rc |= puts_(out, cfg->via_name ? cfg->via_name : "tapwork");
	rc |= PUTL(out, "\r\nX-Request-Id: ");
	rc |= puts_(out, r->rid);
	rc |= PUTL(out, "\r\n\r\n");
	return rc ? TW_ELIMIT : 0;
}

/* Join every upstream Via value and ours into dst: the length, or 0 when it does not fit. */
static size_t join_via(const char *buf, const struct tw_h1_msg *m, const char *ours, char *dst, size_t cap)
{
	size_t n = 0;
	for (unsigned i = 0; i < m->nheaders; i++) {
		if (!name_is(buf, m->headers[i].name, "via"))
			continue;
		struct tw_slice v = m->headers[i].value;
		if (n + v.len + 2 > cap)
			return 0;
		memcpy(dst + n, buf + v.off, v.len);
		n += v.len;
		memcpy(dst + n, ", ", 2);
		n += 2;
	}
	size_t ol = strlen(ours);
	if (n + 4 + ol > cap)
		return 0;
	memcpy(dst + n, "1.1 ", 4);
	memcpy(dst + n + 4, ours, ol);
	return n + 4 + ol;
}

int tw_response_fields(struct tw_conn *c, struct tw_req *r, const char *buf, tw_field_fn fn, void *ctx)
{
	const struct tw_h1_msg *m = &r->msg;
	const struct tw_config *cfg = r->gen->cfg;
	const char *ours = cfg->via_name ? cfg->via_name : "tapwork";
	const struct tw_route_ext *x = r->route ? r->route->ext : NULL;
	char via[1024];
	size_t vl = join_via(buf, m, ours, via, sizeof via);
	struct tokens tk;
	collect_connection_tokens(buf, m, &tk);
	int rc = 0;
	for (unsigned i = 0; i < m->nheaders && rc == 0; i++) {
		struct tw_slice n = m->headers[i].name;
		enum hdr_kind k = classify(buf, n);
		/* Via is joined with ours below; when that is too long for one line the
		 * upstream's lines pass as they are and ours follows as its own line */
		if (k == H_HOP || k == H_RID || (k == H_VIA && vl) || (tk.n && named_in_connection(buf, n, &tk)))
			continue;
		if (x != NULL && mod_drops(&x->resp, buf + n.off, n.len))
			continue;
		/* compression's changes: Content-Length, Accept-Ranges, ETag, Vary (compress.c) */
		if (r->czq.mode && tw_cz_field(r, buf + n.off, n.len, buf + m->headers[i].value.off,
					       m->headers[i].value.len, fn, ctx, &rc))
			continue;
		rc = fn(ctx, buf + n.off, n.len, buf + m->headers[i].value.off, m->headers[i].value.len);
	}
	for (size_t i = 0; x != NULL && rc == 0 && i < x->resp.nset; i++)
		rc = fn(ctx, x->resp.set[i].name, strlen(x->resp.set[i].name), x->resp.set[i].value,
			strlen(x->resp.set[i].value));
	for (size_t i = 0; x != NULL && rc == 0 && i < x->resp.nadd; i++)
		rc = fn(ctx, x->resp.add[i].name, strlen(x->resp.add[i].name), x->resp.add[i].value,
			strlen(x->resp.add[i].value));
	const char *hsts = tw_req_hsts(c, r);
	if (rc == 0 && hsts && tw_h1_find_header(buf, m, "strict-transport-security", 0) < 0)
		rc = fn(ctx, "Strict-Transport-Security", 25, hsts, strlen(hsts));
	if (rc == 0 && vl)
		rc = fn(ctx, "Via", 3, via, vl);
	else if (rc == 0) {
		char own[80]; /* the name is a token of at most 64 bytes */
		int ol = snprintf(own, sizeof own, "1.1 %s", ours);
		rc = fn(ctx, "Via", 3, own, ol > 0 && (size_t)ol < sizeof own ? (size_t)ol : 0);
	}
	if (rc == 0)
		rc = fn(ctx, "X-Request-Id", 12, r->rid, strlen(r->rid));
	if (rc == 0 && r->czq.mode)
		rc = tw_cz_extra(r, fn, ctx);
	if (rc == 0 && r->rl_policy)
		rc = tw_rl_fields(r, fn, ctx);
	return rc;
}

static int put_field(void *ctx, const char *name, size_t nlen, const char *value, size_t vlen)
{
	struct tw_iobuf *out = ctx;
	int rc = put(out, name, nlen);
	rc |= PUTL(out, ": ");
	rc |= put(out, value, vlen);
	rc |= PUTL(out, "\r\n");
	return rc;
}

int tw_rewrite_response(struct tw_conn *c, struct tw_req *r, const char *buf, struct tw_iobuf *out,
			int close_client, int chunked_out)
{
	const struct tw_h1_msg *m = &r->msg;
	char line[16] = "HTTP/1.1 000 ";
	int rc = 0;
	unsigned st = m->status % 1000;
	line[7] = r->version_minor == 0 ? '0' : '1';
	line[9] = (char)('0' + st / 100);
	line[10] = (char)('0' + st / 10 % 10);
	line[11] = (char)('0' + st % 10);
	rc |= put(out, line, 13);
	if (m->reason.len)
		rc |= put_slice(out, buf, m->reason);
	else
		rc |= puts_(out, tw_h1_reason(m->status));
	rc |= PUTL(out, "\r\n");
	/* the framing is ours: chunked toward the client, and the connection's fate */
	if (chunked_out)
		rc |= PUTL(out, "Transfer-Encoding: chunked\r\n");
	if (r->tunnel) {
		int u = tw_h1_find_header(buf, m, "upgrade", 0);
		rc |= PUTL(out, "Connection: upgrade\r\nUpgrade: ");
		if (u >= 0)
			rc |= put_slice(out, buf, m->headers[u].value);
		rc |= PUTL(out, "\r\n");
	} else if (close_client) {
		rc |= PUTL(out, "Connection: close\r\n");
	} else if (r->version_minor == 0) {
		rc |= PUTL(out, "Connection: keep-alive\r\n");
	}
	rc |= tw_response_fields(c, r, buf, put_field, out);
	rc |= PUTL(out, "\r\n");
	return rc ? TW_ELIMIT : 0;
}

static uint64_t xorshift128p(uint64_t s[2])
{
	uint64_t a = s[0];
	const uint64_t b = s[1];
	s[0] = b;
	a ^= a << 23;
	s[1] = a ^ b ^ (a >> 17) ^ (b >> 26);
	return s[1] + b;
}

void tw_make_request_id(struct tw_worker *w, char out[33])
{
	static const char hex[] = "0123456789abcdef";
	uint64_t v[2] = {xorshift128p(w->rng), xorshift128p(w->rng)};
	for (int i = 0; i < 2; i++)
		for (int k = 0; k < 16; k++)
			out[i * 16 + k] = hex[(v[i] >> (60 - 4 * k)) & 15];
	out[32] = '\0';
}
