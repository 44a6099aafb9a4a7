/* rl_req.c — rate limits on the request path: the key of a request, the
 * table's verdict, the 429 answer (docs/rate-limits.md). Runs in dispatch
 * (proxy.c) for HTTP/1.1 requests and HTTP/2 streams alike. */
#include "edge/rl_req.h"

#include "core/log.h"
#include "core/loop.h"
#include "edge/balance.h"
#include "edge/edge.h"
#include "edge/ratelimit.h"

#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

/* The client address as key bytes: IPv4 (also IPv4-mapped) 4 bytes, IPv6
 * its first `prefix` bits. */
static size_t ip_key(const struct tw_conn *c, unsigned prefix, uint8_t out[17])
{
	const struct sockaddr *sa = (const struct sockaddr *)&c->peer;
	if (sa->sa_family == AF_INET) {
		out[0] = 4;
		memcpy(out + 1, &((const struct sockaddr_in *)sa)->sin_addr, 4);
		return 5;
	}
	if (sa->sa_family != AF_INET6) {
		out[0] = 0;
		return 1;
	}
	const uint8_t *a = ((const struct sockaddr_in6 *)sa)->sin6_addr.s6_addr;
	static const uint8_t mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
	if (memcmp(a, mapped, 12) == 0) {
		out[0] = 4;
		memcpy(out + 1, a + 12, 4);
		return 5;
	}
	out[0] = 6;
	memset(out + 1, 0, 16);
	unsigned full = prefix / 8, bits = prefix % 8;
	memcpy(out + 1, a, full);
	if (bits && full < 16)
		out[1 + full] = (uint8_t)(a[full] & (0xFF00u >> bits));
	return 17;
}

/* The value of cookie `name` in the request's Cookie fields; 0 when absent. */
static int cookie_value(const char *buf, const struct tw_h1_msg *m, const char *name, const char **v, size_t *vl)
{
	size_t nl = strlen(name);
	for (int i = tw_h1_find_header(buf, m, "cookie", 0); i >= 0;
	     i = tw_h1_find_header(buf, m, "cookie", (unsigned)i + 1)) {
		const char *p = buf + m->headers[i].value.off, *end = p + m->headers[i].value.len;
		while (p < end) {
			while (p < end && (*p == ' ' || *p == ';'))
				p++;
			const char *eq = memchr(p, '=', (size_t)(end - p));
			const char *semi = memchr(p, ';', (size_t)(end - p));
			if (semi == NULL)
				semi = end;
			if (eq && eq < semi && (size_t)(eq - p) == nl && memcmp(p, name, nl) == 0) {
				*v = eq + 1;
				*vl = (size_t)(semi - eq - 1);
				return 1;
			}
			p = semi;
		}
	}
	return 0;
}

static int exempt(const struct tw_conf_rate_limit *p, const struct tw_conn *c)
{
	for (size_t i = 0; i < p->nexempt; i++)
		if (tw_cidr_contains(&p->exempt[i], (const struct sockaddr *)&c->peer))
			return 1;
	return 0;
}

/* `"name";q=N;w=SECONDS` (the configured policy) */
static int policy_value(const struct tw_conf_rate_limit *p, char *out, size_t cap)
{
	int n = snprintf(out, cap, "\"%s\";q=%llu;w=%llu", p->name, (unsigned long long)p->rate.count,
			 (unsigned long long)(p->rate.period_ms + 999) / 1000);
	return n < 0 ? 0 : (size_t)n < cap ? n : (int)cap - 1;
}

int tw_rl_fields(const struct tw_req *r, int (*fn)(void *ctx, const char *name, size_t nlen, const char *value,
						    size_t vlen),
		 void *ctx)
{
	const struct tw_config *cfg = r->gen->cfg;
	if (r->rl_policy == 0 || r->rl_policy > cfg->nrate_limits)
		return 0;
	const struct tw_conf_rate_limit *p = &cfg->rate_limits[r->rl_policy - 1];
	char v[200];
	int n = policy_value(p, v, sizeof v);
	int rc = fn(ctx, "RateLimit-Policy", 16, v, (size_t)n);
	n = snprintf(v, sizeof v, "\"%s\";r=%u;t=%u", p->name, r->rl_remaining, r->rl_reset_s);
	if (rc == 0 && n > 0 && (size_t)n < sizeof v)
		rc = fn(ctx, "RateLimit", 9, v, (size_t)n);
	return rc;
}

int tw_rl_request(struct tw_conn *c, struct tw_req *r, const char *buf)
{
	const struct tw_config *cfg = r->gen->cfg;
	size_t idx = r->route->rate_limit - 1;
	if (idx >= cfg->nrate_limits || r->gen->rl == NULL)
		return 0;
	const struct tw_conf_rate_limit *p = &cfg->rate_limits[idx];
	struct tw_rl_table *t = r->gen->rl[idx];
	struct tw_worker *w = c->w;
	if (p->nexempt && exempt(p, c))
		return 0;
	/* key = kind, value hash or address, route */
	uint8_t key[48];
	size_t kl = 0;
	const char *v = NULL;
	size_t vl = 0;
	int have = 0;
	if (p->key.kind == TW_RL_KEY_HEADER) {
		int i = tw_h1_find_header(buf, &r->msg, p->key.name, 0);
		if (i >= 0) {
			v = buf + r->msg.headers[i].value.off;
			vl = r->msg.headers[i].value.len;
			have = 1;
		}
	} else if (p->key.kind == TW_RL_KEY_COOKIE) {
		have = cookie_value(buf, &r->msg, p->key.name, &v, &vl);
	}
	if (have) {
		uint64_t h = tw_lb_hash64(v, vl);
		key[0] = 'v';
		memcpy(key + 1, &h, 8);
		kl = 9;
	} else if (p->key.kind != TW_RL_KEY_CLIENT_IP && p->missing != TW_RL_MISSING_CLIENT_IP) {
		if (p->missing == TW_RL_MISSING_ALLOW)
			return 0;
		tw_metric_add(w->m, tw_rl_metric(t, TW_RL_LIMITED), 1);
		char pv[200], extra[240];
		policy_value(p, pv, sizeof pv);
		snprintf(extra, sizeof extra, "RateLimit-Policy: %s\r\n", pv);
		static const char body[] = "429 Too Many Requests (no rate limit key)\n";
		tw_local_text_extra(c, 429, body, sizeof body - 1, extra);
		return 1;
	} else {
		kl = ip_key(c, p->ipv6_prefix, key);
	}
	if (p->per_route) {
		uint64_t rh = tw_lb_hash64(r->route->path, r->route->path_len) ^ (uint64_t)r->site * 0x9E3779B97F4A7C15ull;
		memcpy(key + kl, &rh, 8);
		kl += 8;
	}
	struct tw_rl_verdict vd;
	/* the loop's clock of this batch of events: no clock call per request
	 * (a batch counts as arriving at its start: never more admissions) */
	tw_rl_check(t, key, kl, tw_loop_now_ns(w->loop), &vd);
	tw_metric_add(w->m, tw_rl_metric(t, vd.result), 1);
	if (vd.allow) {
		if (p->headers == TW_RL_HEADERS_ALWAYS) {
			r->rl_policy = (uint32_t)idx + 1;
			r->rl_remaining = vd.remaining > UINT32_MAX ? UINT32_MAX : (uint32_t)vd.remaining;
			uint64_t reset_s = (vd.reset_ms + 999) / 1000;
			r->rl_reset_s = reset_s > UINT32_MAX ? UINT32_MAX : (uint32_t)reset_s;
		}
		return 0;
	}
	if (vd.result == TW_RL_FULL && p->on_full == TW_RL_FULL_ALLOW)
		return 0;
	uint64_t wait_s = vd.result == TW_RL_FULL ? 1 : (vd.wait_ms + 999) / 1000;
	if (wait_s == 0)
		wait_s = 1;
	uint64_t reset_s = (vd.reset_ms + 999) / 1000;
	char pv[200], extra[512];
	policy_value(p, pv, sizeof pv);
	snprintf(extra, sizeof extra, "Retry-After: %llu\r\nRateLimit-Policy: %s\r\nRateLimit: \"%s\";r=0;t=%llu\r\n",
		 (unsigned long long)wait_s, pv, p->name, (unsigned long long)(reset_s > wait_s ? wait_s : reset_s));
	static const char body[] = "429 Too Many Requests\n";
	tw_local_text_extra(c, 429, body, sizeof body - 1, extra);
	tw_debug("status=429 rid=%s client=%s policy=%s retry_after=%llu", r->rid, c->peer_ip, p->name,
		 (unsigned long long)wait_s);
	return 1;
}
