/* local.c — responses tapwork makes itself: errors and the welcome page. */
#include "edge/edge.h"

#include "core/log.h"
#include "tls/tls.h"

#include <netinet/in.h>

#include <stdio.h>
#include <string.h>

static const char welcome_html[] =
	"<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n"
	"<title>tapwork is running</title>\n"
	"<style>body{font:16px/1.5 system-ui,sans-serif;max-width:40em;margin:4em auto;padding:0 1em;color:#222}"
	"code{background:#f3f3f3;padding:.1em .3em}</style></head>\n"
	"<body><h1>tapwork is running</h1>\n"
	"<p>This page comes from tapwork's embedded default configuration.</p>\n"
	"<p>Write a config (see <code>docs/config.md</code> and <code>docs/examples/tapwork.yaml</code>), "
	"check it with <code>tapwork validate -c tapwork.yaml</code> and start the edge with "
	"<code>tapwork run -c tapwork.yaml</code>.</p>\n"
	"<p>Health, readiness and metrics: the admin listener's <code>/healthz</code>, "
	"<code>/readyz</code> and <code>/metrics</code>.</p>\n</body></html>\n";

const char *tw_req_hsts(const struct tw_conn *c, const struct tw_req *r)
{
	if (!c->fops->secure || r == NULL || r->site >= r->gen->cfg->nsites)
		return NULL;
	return tw_tls_site_hsts(r->gen->cfg, r->site);
}

static void respond_ex(struct tw_conn *c, int status, const char *ctype, const char *body, size_t len,
		       const char *extra);

static void respond(struct tw_conn *c, int status, const char *ctype, const char *body, size_t len)
{
	respond_ex(c, status, ctype, body, len, "");
}

/* The length of host without its port ("[v6]" kept). */
static size_t host_noport_len(const char *host)
{
	const char *colon = NULL;
	if (host[0] == '[') {
		const char *rb = strchr(host, ']');
		if (rb && rb[1] == ':')
			colon = rb + 1;
	} else {
		colon = strrchr(host, ':');
	}
	return colon ? (size_t)(colon - host) : strlen(host);
}

/* The port of a listen address, 0 when there is none. */
static unsigned listen_port(const struct sockaddr_storage *ss)
{
	if (ss->ss_family == AF_INET)
		return ntohs(((const struct sockaddr_in *)ss)->sin_port);
	if (ss->ss_family == AF_INET6)
		return ntohs(((const struct sockaddr_in6 *)ss)->sin6_port);
	return 0;
}

void tw_local_redirect_https(struct tw_conn *c)
{
	struct tw_req *r = c->req;
	const struct tw_config *cfg = r->gen->cfg;
	/* host without port ("[v6]" kept), then the HTTPS port unless 443 */
	char host[256];
	snprintf(host, sizeof host, "%.*s", (int)host_noport_len(r->host), r->host);
	unsigned port = listen_port(&cfg->listen_https.ss);
	char portbuf[16] = "";
	if (port != 0 && port != 443)
		snprintf(portbuf, sizeof portbuf, ":%u", port);
	const char *uri = r->uri;
	if (uri[0] != '/') { /* absolute-form: keep the path */
		const char *p = strstr(uri, "://");
		p = p ? strchr(p + 3, '/') : NULL;
		uri = p ? p : "/";
	}
	char extra[1400];
	snprintf(extra, sizeof extra, "Location: https://%s%s%s\r\n", host, portbuf, uri);
	tw_local_status(c, 308, extra);
}

size_t tw_route_path(const struct tw_conf_route *rt, const char *path, size_t plen, char *out, size_t cap)
{
	const struct tw_route_ext *x = rt->ext;
	const char *a = path, *b = "";
	size_t al = plen, bl = 0;
	if (x != NULL && x->path_mod == TW_PATH_FULL) {
		a = x->path_value;
		al = strlen(a);
	} else if (x != NULL && x->path_mod == TW_PATH_PREFIX) {
		/* the matched prefix (trailing '/' of the rule ignored) becomes the
		 * value; "/" + "/rest" gives "/rest", never "//rest" */
		size_t ml = rt->path_len;
		while (ml > 0 && rt->path[ml - 1] == '/')
			ml--;
		if (rt->match == TW_MATCH_EXACT)
			ml = plen;
		if (ml > plen)
			ml = plen;
		a = x->path_value;
		al = strlen(a);
		b = path + ml;
		bl = plen - ml;
		if (bl > 0 && al > 0 && a[al - 1] == '/')
			al--;
	}
	if (al + bl == 0) {
		a = "/";
		al = 1;
	}
	if (al + bl + 1 > cap)
		return 0;
	memcpy(out, a, al);
	memcpy(out + al, b, bl);
	out[al + bl] = '\0';
	return al + bl;
}

void tw_local_redirect_route(struct tw_conn *c, const struct tw_conf_route *rt, const char *path, size_t plen,
			     const char *query, size_t qlen)
{
	struct tw_req *r = c->req;
	const struct tw_route_ext *x = rt->ext;
	const struct tw_config *cfg = r->gen->cfg;
	size_t hl = host_noport_len(r->host);
	const char *scheme = x->redir_scheme ? x->redir_scheme : (c->fops->secure ? "https" : "http");
	unsigned port = x->redir_port;
	if (port == 0 && x->redir_scheme == NULL) {
		/* no scheme given: the listener's port */
		port = listen_port(c->fops->secure ? &cfg->listen_https.ss : &cfg->listen_http.ss);
	}
	char portbuf[16] = "";
	if (port != 0 && !(port == 80 && strcmp(scheme, "http") == 0) && !(port == 443 && strcmp(scheme, "https") == 0))
		snprintf(portbuf, sizeof portbuf, ":%u", port);
	char p[1100];
	if (tw_route_path(rt, path, plen, p, sizeof p) == 0) {
		tw_local_error(c, 414, "redirect target too long");
		return;
	}
	char extra[1400];
	int n = snprintf(extra, sizeof extra, "Location: %s://%.*s%s%s%s%.*s\r\n", scheme,
			 x->redir_host ? (int)strlen(x->redir_host) : (int)hl, x->redir_host ? x->redir_host : r->host,
			 portbuf, p, qlen ? "?" : "", (int)qlen, query ? query : "");
	if (n < 0 || (size_t)n >= sizeof extra) {
		tw_local_error(c, 414, "redirect target too long");
		return;
	}
	tw_local_status(c, x->redirect, extra);
}

static void respond_ex(struct tw_conn *c, int status, const char *ctype, const char *body, size_t len,
		       const char *extra)
{
	struct tw_req *r = c->req;
	if (c->out == NULL)
		c->out = tw_iobuf_get(&c->w->bufs);
	if (c->out == NULL)
		return;
	c->out->start = c->out->end = 0;
	if (r && !r->reqbody.done && r->reqbody.mode != FLOW_NONE)
		c->close_after = 1;
	if (c->w->draining)
		c->close_after = 1;
	char head[2048];
	int minor = r && r->version_minor == 0 ? 0 : 1;
	const char *hsts = tw_req_hsts(c, r);
	int n = snprintf(head, sizeof head,
			 "HTTP/1.%d %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n%s%s%s%s%sX-Request-Id: %s\r\n\r\n",
			 minor, status, tw_h1_reason((unsigned)status), ctype, len,
			 c->close_after ? "Connection: close\r\n" : (minor == 0 ? "Connection: keep-alive\r\n" : ""),
			 extra, hsts ? "Strict-Transport-Security: " : "", hsts ? hsts : "", hsts ? "\r\n" : "",
			 r ? r->rid : "-");
	tw_iobuf_append(c->out, head, (size_t)n);
	if (!(r && r->is_head)) {
		tw_iobuf_append(c->out, body, len);
		if (r)
			r->bytes_out = len;
	}
	if (r)
		r->status = status;
	c->st = C_LOCAL;
	c->wr_ready = 1;
}

/* One log limiter per answered status (core/log.h): a 503 storm writes a few
 * lines a second and a count, not a line per request. */
static struct tw_log_limit status_lim[] = {
	{.kind = "status=400"}, {.kind = "status=404"}, {.kind = "status=408"}, {.kind = "status=413"},
	{.kind = "status=414"}, {.kind = "status=431"}, {.kind = "status=500"}, {.kind = "status=502"},
	{.kind = "status=503"}, {.kind = "status=504"}, {.kind = "other 4xx"},  {.kind = "other 5xx"}};

static struct tw_log_limit *limit_for(int status)
{
	static const int codes[] = {400, 404, 408, 413, 414, 431, 500, 502, 503, 504};
	for (size_t i = 0; i < sizeof codes / sizeof codes[0]; i++)
		if (codes[i] == status)
			return &status_lim[i];
	return &status_lim[status < 500 ? 10 : 11];
}

void tw_local_error(struct tw_conn *c, int status, const char *why)
{
	char body[128];
	int n = snprintf(body, sizeof body, "%d %s\n", status, tw_h1_reason((unsigned)status));
	respond(c, status, "text/plain; charset=utf-8", body, (size_t)n);
	const char *rid = c->req ? c->req->rid : "-";
	int level = status == 404 ? TW_LOG_INFO : TW_LOG_WARN;
	if (level > tw_log_level || !tw_log_allow(limit_for(status), level))
		return;
	if (status == 404)
		tw_info("status=404 (Not Found) rid=%s client=%s: %s", rid, c->peer_ip, why ? why : "");
	else
		tw_warn("status=%d (%s) rid=%s client=%s: %s", status, tw_h1_reason((unsigned)status), rid, c->peer_ip,
			why ? why : "");
}

void tw_local_status(struct tw_conn *c, int status, const char *extra)
{
	char body[128];
	int n = snprintf(body, sizeof body, "%d %s\n", status, tw_h1_reason((unsigned)status));
	respond_ex(c, status, "text/plain; charset=utf-8", body, (size_t)n, extra);
}

void tw_local_text(struct tw_conn *c, int status, const char *body, size_t len)
{
	respond(c, status, "text/plain", body, len);
}

void tw_local_text_extra(struct tw_conn *c, int status, const char *body, size_t len, const char *extra)
{
	respond_ex(c, status, "text/plain; charset=utf-8", body, len, extra);
}

void tw_local_welcome(struct tw_conn *c)
{
	respond(c, 200, "text/html; charset=utf-8", welcome_html, sizeof welcome_html - 1);
}
