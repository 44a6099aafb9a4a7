/* rewrite.c — request and response heads as they cross the proxy.
 *
 * Hop-by-hop headers are dropped both ways (Connection, Keep-Alive,
 * Proxy-Connection, TE, Trailer, Transfer-Encoding, Upgrade, and every header
 * a Connection header names); the framing we use is added back. Toward the
 * upstream we add X-Forwarded-For/-Proto/-Host, Forwarded, Via and
 * X-Request-Id (incoming forwarding headers are kept and appended to only
 * when the peer is a trusted proxy). The client gets Via and X-Request-Id.
 * An HTTP/1.0 client's request goes up as HTTP/1.0 so the answer needs no
 * chunked coding the client cannot read. */
#include "edge/edge.h"

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

static int hop_by_hop(const char *buf, struct tw_slice n)
{
	static const char *const names[] = {"connection", "keep-alive", "proxy-connection", "te",
					    "trailer", "transfer-encoding", "upgrade"};
	for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
		if (name_is(buf, n, names[i]))
			return 1;
	return 0;
}

static int put(struct tw_iobuf *out, const char *p, size_t n) { return tw_iobuf_append(out, p, n); }
static int puts_(struct tw_iobuf *out, const char *s) { return put(out, s, strlen(s)); }
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
			*rc |= puts_(out, ", ");
		*rc |= put_slice(out, buf, m->headers[i].value);
		any = 1;
	}
	return any;
}

int tw_rewrite_request(struct tw_conn *c, struct tw_req *r, const char *buf, struct tw_iobuf *out)
{
	const struct tw_h1_msg *m = &r->msg;
	const struct tw_config *cfg = r->gen->cfg;
	int trusted = 0;
	for (size_t i = 0; i < cfg->ntrusted_proxies && !trusted; i++)
		trusted = tw_cidr_contains(&cfg->trusted_proxies[i], (const struct sockaddr *)&c->peer);
	struct tokens tk;
	collect_connection_tokens(buf, m, &tk);
	int rc = 0;
	rc |= put_slice(out, buf, m->method);
	rc |= puts_(out, " ");
	if (m->target.len && buf[m->target.off] != '/' && buf[m->target.off] != '*' && m->path.len) {
		/* absolute-form -> origin-form */
		rc |= put_slice(out, buf, m->path);
		if (m->query.len) {
			rc |= puts_(out, "?");
			rc |= put_slice(out, buf, m->query);
		}
	} else {
		rc |= put_slice(out, buf, m->target);
	}
	rc |= puts_(out, m->version_minor == 0 ? " HTTP/1.0\r\n" : " HTTP/1.1\r\n");
	int have_host = 0;
	for (unsigned i = 0; i < m->nheaders; i++) {
		struct tw_slice n = m->headers[i].name;
		if (hop_by_hop(buf, n) || named_in_connection(buf, n, &tk) || name_is(buf, n, "expect") ||
		    name_is(buf, n, "x-forwarded-for") || name_is(buf, n, "x-forwarded-proto") ||
		    name_is(buf, n, "x-forwarded-host") || name_is(buf, n, "forwarded") ||
		    name_is(buf, n, "x-request-id") || name_is(buf, n, "via"))
			continue;
		if (name_is(buf, n, "host"))
			have_host = 1;
		rc |= put_slice(out, buf, n);
		rc |= puts_(out, ": ");
		rc |= put_slice(out, buf, m->headers[i].value);
		rc |= puts_(out, "\r\n");
	}
	if (!have_host && m->authority.len) {
		rc |= puts_(out, "Host: ");
		rc |= put_slice(out, buf, m->authority);
		rc |= puts_(out, "\r\n");
	}
	if (m->chunked)
		rc |= puts_(out, "Transfer-Encoding: chunked\r\n");
	if (r->want_upgrade) {
		int u = tw_h1_find_header(buf, m, "upgrade", 0);
		rc |= puts_(out, "Connection: upgrade\r\nUpgrade: ");
		if (u >= 0)
			rc |= put_slice(out, buf, m->headers[u].value);
		rc |= puts_(out, "\r\n");
	}
	const char *ip = c->peer_ip;
	rc |= puts_(out, "X-Forwarded-For: ");
	if (trusted && put_joined(out, buf, m, "x-forwarded-for", &rc))
		rc |= puts_(out, ", ");
	rc |= puts_(out, ip);
	const char *proto = c->fops->secure ? "https" : "http";
	rc |= puts_(out, "\r\nX-Forwarded-Proto: ");
	if (!(trusted && put_joined(out, buf, m, "x-forwarded-proto", &rc)))
		rc |= puts_(out, proto);
	rc |= puts_(out, "\r\nX-Forwarded-Host: ");
	if (!(trusted && put_joined(out, buf, m, "x-forwarded-host", &rc)))
		rc |= put_slice(out, buf, m->authority);
	rc |= puts_(out, "\r\nForwarded: ");
	if (trusted && put_joined(out, buf, m, "forwarded", &rc))
		rc |= puts_(out, ", ");
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
		rc |= puts_(out, "\"");
	rc |= put_slice(out, buf, m->authority);
	rc |= puts_(out, quote ? "\";proto=" : ";proto=");
	rc |= puts_(out, proto);
	rc |= puts_(out, "\r\nVia: ");
	if (put_joined(out, buf, m, "via", &rc))
		rc |= puts_(out, ", ");
	rc |= puts_(out, m->version_minor == 0 ? "1.0 " : "1.1 ");
	rc |= puts_(out, cfg->via_name ? cfg->via_name : "tapwork");
	rc |= puts_(out, "\r\nX-Request-Id: ");
	rc |= puts_(out, r->rid);
	rc |= puts_(out, "\r\n\r\n");
	return rc ? TW_ELIMIT : 0;
}

int tw_rewrite_response(struct tw_conn *c, struct tw_req *r, const char *buf, struct tw_iobuf *out,
			int close_client, int chunked_out)
{
	const struct tw_h1_msg *m = &r->msg;
	const struct tw_config *cfg = r->gen->cfg;
	struct tokens tk;
	collect_connection_tokens(buf, m, &tk);
	char line[64];
	int rc = 0;
	snprintf(line, sizeof line, "HTTP/1.%d %u ", r->version_minor == 0 ? 0 : 1, m->status);
	rc |= puts_(out, line);
	if (m->reason.len)
		rc |= put_slice(out, buf, m->reason);
	else
		rc |= puts_(out, tw_h1_reason(m->status));
	rc |= puts_(out, "\r\n");
	for (unsigned i = 0; i < m->nheaders; i++) {
		struct tw_slice n = m->headers[i].name;
		if (hop_by_hop(buf, n) || named_in_connection(buf, n, &tk) || name_is(buf, n, "x-request-id") ||
		    name_is(buf, n, "via"))
			continue;
		rc |= put_slice(out, buf, n);
		rc |= puts_(out, ": ");
		rc |= put_slice(out, buf, m->headers[i].value);
		rc |= puts_(out, "\r\n");
	}
	if (chunked_out)
		rc |= puts_(out, "Transfer-Encoding: chunked\r\n");
	if (r->tunnel) {
		int u = tw_h1_find_header(buf, m, "upgrade", 0);
		rc |= puts_(out, "Connection: upgrade\r\nUpgrade: ");
		if (u >= 0)
			rc |= put_slice(out, buf, m->headers[u].value);
		rc |= puts_(out, "\r\n");
	} else if (close_client) {
		rc |= puts_(out, "Connection: close\r\n");
	} else if (r->version_minor == 0) {
		rc |= puts_(out, "Connection: keep-alive\r\n");
	}
	const char *hsts = tw_req_hsts(c, r);
	if (hsts && tw_h1_find_header(buf, m, "strict-transport-security", 0) < 0) {
		rc |= puts_(out, "Strict-Transport-Security: ");
		rc |= puts_(out, hsts);
		rc |= puts_(out, "\r\n");
	}
	rc |= puts_(out, "Via: ");
	if (put_joined(out, buf, m, "via", &rc))
		rc |= puts_(out, ", ");
	rc |= puts_(out, "1.1 ");
	rc |= puts_(out, cfg->via_name ? cfg->via_name : "tapwork");
	rc |= puts_(out, "\r\nX-Request-Id: ");
	rc |= puts_(out, r->rid);
	rc |= puts_(out, "\r\n\r\n");
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
