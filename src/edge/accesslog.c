/* accesslog.c — one line per request, buffered per worker, written with one
 * write(2) per loop turn (lines never interleave: O_APPEND + whole lines). */
#include "edge/edge.h"

#include "core/log.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static const char *dash(const char *s) { return s && *s ? s : "-"; }

/* Escape for the combined format ("..." fields) and JSON strings. */
static void esc(struct tw_dbuf *b, const char *s, int json)
{
	static const char hex[] = "0123456789abcdef";
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		if (*p == '"' || *p == '\\') {
			char e[2] = {'\\', (char)*p};
			tw_dbuf_append(b, e, 2);
		} else if (*p < 0x20 || *p == 0x7f || (json && *p >= 0x80)) {
			char e[6] = {'\\', json ? 'u' : 'x', '0', '0', hex[*p >> 4], hex[*p & 15]};
			if (json)
				tw_dbuf_append(b, e, 6);
			else {
				char x[4] = {'\\', 'x', hex[*p >> 4], hex[*p & 15]};
				tw_dbuf_append(b, x, 4);
			}
		} else {
			tw_dbuf_append(b, p, 1);
		}
	}
}

void tw_alog_request(struct tw_worker *w, struct tw_conn *c, struct tw_req *r, uint64_t dur_us)
{
	if (w->alog_fd < 0)
		return;
	const struct tw_config *cfg = r->gen->cfg;
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	if (ts.tv_sec != w->log_sec) {
		struct tm tm;
		gmtime_r(&ts.tv_sec, &tm);
		strftime(w->log_time, sizeof w->log_time,
			 cfg->log.format == TW_LOGFMT_JSON ? "%Y-%m-%dT%H:%M:%SZ" : "%d/%b/%Y:%H:%M:%S +0000", &tm);
		w->log_sec = ts.tv_sec;
	}
	const char *site = r->site < cfg->nsites ? r->gen->site_label[r->site] : "-";
	const char *backend = r->backend < cfg->nbackends ? cfg->backends[r->backend].name : "-";
	const char *upstream = r->backend < cfg->nbackends && r->ntried
				       ? cfg->backends[r->backend].servers[r->tried[r->ntried - 1]].addr.text
				       : "-";
	unsigned long long dur_ms = dur_us / 1000u;
	struct tw_dbuf *b = &w->alog;
	size_t mark = b->len;
	const char *proto = c->fops->oneshot ? "HTTP/2.0" : r->version_minor == 0 ? "HTTP/1.0" : "HTTP/1.1";
	int rc = 0;
	if (cfg->log.format == TW_LOGFMT_JSON) {
		rc |= tw_dbuf_appendf(b, "{\"time\":\"%s\",\"client\":\"%s\",\"method\":\"", w->log_time, c->peer_ip);
		esc(b, dash(r->method), 1);
		rc |= tw_dbuf_appendf(b, "\",\"uri\":\"");
		esc(b, r->uri, 1);
		rc |= tw_dbuf_appendf(b, "\",\"proto\":\"%s\",\"status\":%d,\"bytes\":%llu,\"request_id\":\"%s\","
					 "\"site\":\"",
				      proto, r->status, (unsigned long long)r->bytes_out, r->rid);
		esc(b, site, 1);
		rc |= tw_dbuf_appendf(b, "\",\"backend\":\"");
		esc(b, backend, 1);
		rc |= tw_dbuf_appendf(b, "\",\"upstream\":\"%s\",\"duration_ms\":%llu}\n", upstream, dur_ms);
	} else {
		rc |= tw_dbuf_appendf(b, "%s - - [%s] \"", c->peer_ip, w->log_time);
		esc(b, dash(r->method), 0);
		tw_dbuf_append(b, " ", 1);
		esc(b, dash(r->uri), 0);
		rc |= tw_dbuf_appendf(b, " %s\" %d %llu \"", proto, r->status,
				      (unsigned long long)r->bytes_out);
		esc(b, dash(r->referer), 0);
		tw_dbuf_append(b, "\" \"", 3);
		esc(b, dash(r->ua), 0);
		rc |= tw_dbuf_appendf(b, "\" rid=%s site=%s backend=%s upstream=%s dur_ms=%llu\n", r->rid, site,
				      backend, upstream, dur_ms);
	}
	if (rc != 0) {
		/* buffer full: drop this line rather than block the request path */
		b->len = mark;
		return;
	}
	if (b->len > 64 * 1024)
		tw_alog_flush(w);
}

void tw_alog_flush(struct tw_worker *w)
{
	struct tw_dbuf *b = &w->alog;
	size_t off = 0;
	while (off < b->len) {
		ssize_t n = write(w->alog_fd, b->data + off, b->len - off);
		if (n > 0) {
			off += (size_t)n;
			continue;
		}
		if (n == -1 && errno == EINTR)
			continue;
		break; /* a blocked or failed log must not stall the proxy */
	}
	tw_dbuf_reset(b);
}
