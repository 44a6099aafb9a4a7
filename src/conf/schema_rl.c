/* schema_rl.c — the `rate_limits:` section and routes' `rate_limit:`
 * (schema as data, like schema.c; docs/rate-limits.md). */
#include "conf/schema.h"

#include <stdio.h>
#include <string.h>

#define FLD(T, m) .off = offsetof(T, m), .width = sizeof(((T *)0)->m)

static int token_char(char ch)
{
	return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') || ch == '-' ||
	       ch == '_' || ch == '.';
}

/* "client_ip" | "header:NAME" | "cookie:NAME" */
static int parse_key(struct cf_ctx *c, const struct cf_field *f, const char *text, void *dst, char *why, size_t wl)
{
	struct tw_rl_keyspec k = {0};
	const char *name = NULL;
	if (strcmp(text, "client_ip") == 0) {
		k.kind = TW_RL_KEY_CLIENT_IP;
	} else if (strncmp(text, "header:", 7) == 0) {
		k.kind = TW_RL_KEY_HEADER;
		name = text + 7;
	} else if (strncmp(text, "cookie:", 7) == 0) {
		k.kind = TW_RL_KEY_COOKIE;
		name = text + 7;
	} else {
		snprintf(why, wl, "\"%s\" is not client_ip, header:NAME or cookie:NAME", text);
		return TW_EINVAL;
	}
	if (name) {
		size_t n = strlen(name);
		if (n == 0 || n > 64) {
			snprintf(why, wl, "\"%s\": the name must have 1 to 64 characters", text);
			return TW_EINVAL;
		}
		for (size_t i = 0; i < n; i++)
			if (!token_char(name[i])) {
				snprintf(why, wl, "\"%s\": the name must be a token (letters, digits, -_.)", text);
				return TW_EINVAL;
			}
		if ((k.name = tw_arena_strdup(c->arena, name)) == NULL)
			return TW_ENOMEM;
	}
	memcpy(dst, &k, sizeof k);
	return 0;
}

/* "10/s" "10/m" "10/h" "10/d" "100/10s" */
static int parse_rate(struct cf_ctx *c, const struct cf_field *f, const char *text, void *dst, char *why, size_t wl)
{
	const char *slash = strchr(text, '/');
	char num[24];
	struct tw_rl_rate r = {0};
	if (slash == NULL || slash == text || (size_t)(slash - text) >= sizeof num)
		goto bad;
	memcpy(num, text, (size_t)(slash - text));
	num[slash - text] = '\0';
	if (tw_conf_parse_u64(num, &r.count) != 0 || r.count == 0 || r.count > 1000000000)
		goto bad;
	const char *per = slash + 1;
	if (strcmp(per, "s") == 0)
		r.period_ms = 1000;
	else if (strcmp(per, "m") == 0)
		r.period_ms = 60000;
	else if (strcmp(per, "h") == 0)
		r.period_ms = 3600000;
	else if (strcmp(per, "d") == 0)
		r.period_ms = 86400000;
	else {
		struct tw_err e = {0};
		if (tw_duration_parse(per, &r.period_ms, &e) != 0 || r.period_ms == 0 || r.period_ms > 86400000ull * 7)
			goto bad;
	}
	memcpy(dst, &r, sizeof r);
	return 0;
bad:
	snprintf(why, wl, "\"%s\" is not N/s, N/m, N/h, N/d or N/DURATION (N from 1)", text);
	return TW_EINVAL;
}

static int check_rl(struct cf_ctx *c, int node, void *obj)
{
	struct tw_conf_rate_limit *rl = obj;
	if (!rl->has_burst)
		rl->burst = rl->rate.count > 1000000 ? 1000000 : (unsigned)rl->rate.count;
	if (rl->memory / 16 < 64 * 8)
		return tw_conf_fail(c, tw_conf_map_get(c, node, "memory"), "memory", "at least 8 KiB");
	if (rl->cluster == TW_RL_CLUSTER_LOCAL && rl->replicas != 1 && tw_conf_map_get(c, node, "replicas"))
		return tw_conf_fail(c, tw_conf_map_get(c, node, "replicas"), "replicas",
				    "only with cluster: divide");
	return 0;
}

static const struct cf_enum missing_enum[] = {{"client_ip", TW_RL_MISSING_CLIENT_IP},
                                              {"allow", TW_RL_MISSING_ALLOW},
                                              {"deny", TW_RL_MISSING_DENY},
                                              {NULL, 0}};
static const struct cf_enum full_enum[] = {{"allow", TW_RL_FULL_ALLOW}, {"deny", TW_RL_FULL_DENY}, {NULL, 0}};
static const struct cf_enum cluster_enum[] = {
    {"local", TW_RL_CLUSTER_LOCAL}, {"divide", TW_RL_CLUSTER_DIVIDE}, {NULL, 0}};
static const struct cf_enum headers_enum[] = {
    {"limited", TW_RL_HEADERS_LIMITED}, {"always", TW_RL_HEADERS_ALWAYS}, {NULL, 0}};
static const struct cf_field cidr_elem = {.kind = CF_CIDR, .width = sizeof(struct tw_cidr)};

#define RL struct tw_conf_rate_limit
static const struct cf_field rl_fields[] = {
    {.name = "key",
     .kind = CF_CUSTOM,
     FLD(RL, key),
     .parse = parse_key,
     .type_name = "`client_ip`, `header:NAME` or `cookie:NAME`",
     .def = "client_ip",
     .doc = "What is counted: the client address (after the PROXY protocol), a request header's "
            "value or a cookie's."},
    {.name = "rate",
     .kind = CF_CUSTOM,
     FLD(RL, rate),
     .parse = parse_rate,
     .type_name = "`N/s`, `N/m`, `N/h`, `N/d` or `N/DURATION`",
     .flags = CF_REQUIRED,
     .doc = "Sustained rate per key: one request every period/N."},
    {.name = "burst",
     .kind = CF_UINT,
     FLD(RL, burst),
     .flags = CF_PRESENT,
     .present_off = offsetof(RL, has_burst),
     .min = 1,
     .max = 1000000,
     .doc = "Requests a key may send at once (the bucket's depth); absent = N of `rate`. Over "
            "a time t a key gets at most burst + rate x t requests."},
    {.name = "missing",
     .kind = CF_ENUM,
     FLD(RL, missing),
     .enums = missing_enum,
     .def = "client_ip",
     .doc = "For header:/cookie: keys, a request without it: counted by `client_ip`, `allow`ed "
            "uncounted or `deny`ed (429)."},
    {.name = "ipv6_prefix",
     .kind = CF_UINT,
     FLD(RL, ipv6_prefix),
     .min = 1,
     .max = 128,
     .def = "64",
     .doc = "client_ip keys of IPv6 clients: the addresses of one prefix of this length count as one."},
    {.name = "memory",
     .kind = CF_SIZE,
     FLD(RL, memory),
     .max = 1ull << 34,
     .def = "16MiB",
     .doc = "The policy's table: 16 bytes per key, so 16 MiB holds about a million keys. Keys "
            "whose bucket is full again (idle) are reused first."},
    {.name = "on_full",
     .kind = CF_ENUM,
     FLD(RL, on_full),
     .enums = full_enum,
     .def = "allow",
     .doc = "A new key that finds no room (every key of its table slot still counting): "
            "`allow` it uncounted or `deny` it (429)."},
    {.name = "exempt",
     .kind = CF_LIST,
     FLD(RL, exempt),
     .count_off = offsetof(RL, nexempt),
     .max = 1024,
     .elem = &cidr_elem,
     .doc = "Client ranges never limited (nor counted)."},
    {.name = "cluster",
     .kind = CF_ENUM,
     FLD(RL, cluster),
     .enums = cluster_enum,
     .def = "local",
     .doc = "`local`: each replica applies the policy alone. `divide`: each applies rate/N and "
            "burst/N (rounded up), N = `replicas`, so N replicas behind an even balancer admit the "
            "configured total (docs/rate-limits.md says what this does not guarantee)."},
    {.name = "replicas",
     .kind = CF_UINT,
     FLD(RL, replicas),
     .min = 1,
     .max = 1000,
     .def = "1",
     .doc = "N for `cluster: divide`: the number of tapwork replicas sharing the traffic."},
    {.name = "per_route",
     .kind = CF_BOOL,
     FLD(RL, per_route),
     .def = "false",
     .doc = "Count each route that uses the policy apart (key + route) instead of together."},
    {.name = "headers",
     .kind = CF_ENUM,
     FLD(RL, headers),
     .enums = headers_enum,
     .def = "limited",
     .doc = "`RateLimit-Policy` and `RateLimit` (IETF draft) on 429 answers only (`limited`), or also "
            "on the admitted answers of the policy's routes (`always`: the client sees its remaining "
            "requests before it is limited)."},
    {.name = NULL}};
#undef RL

static const struct cf_schema rl_schema = {
    .name = "rate_limits.NAME",
    .fields = rl_fields,
    .has_key = 1,
    .key_off = offsetof(struct tw_conf_rate_limit, name),
    .check = check_rl,
    .doc = "A request rate limit policy (GCRA: one timestamp per key). Requests over it get 429 "
           "with `Retry-After`, `RateLimit-Policy` and `RateLimit`. One table per policy, shared "
           "by all worker threads; a reload keeps the state of policies whose settings did not "
           "change. See docs/rate-limits.md."};

const struct cf_field tw_conf_rl_elem = {
    .kind = CF_STRUCT, .width = sizeof(struct tw_conf_rate_limit), .schema = &rl_schema};

int tw_conf_resolve_rate_limits(struct cf_ctx *c, struct tw_config *cfg)
{
	for (size_t i = 0; i < cfg->nsites; i++) {
		struct tw_conf_site *s = &cfg->sites[i];
		for (size_t j = 0; j < s->nroutes; j++) {
			struct tw_conf_route *r = &s->routes[j];
			r->rate_limit = 0;
			if (r->rate_limit_name == NULL)
				continue;
			for (size_t k = 0; k < cfg->nrate_limits && !r->rate_limit; k++)
				if (strcmp(cfg->rate_limits[k].name, r->rate_limit_name) == 0)
					r->rate_limit = k + 1;
			if (r->rate_limit)
				continue;
			int sn = tw_conf_seq_item(c, tw_conf_map_get(c, 1, "sites"), i);
			int rn = tw_conf_seq_item(c, tw_conf_map_get(c, sn, "routes"), j);
			int n = snprintf(c->path, sizeof c->path, "sites[%zu].routes[%zu].rate_limit", i, j);
			c->plen = n < 0 ? 0 : (size_t)n < sizeof c->path ? (size_t)n : sizeof c->path - 1;
			return tw_conf_fail(c, tw_conf_map_get(c, rn, "rate_limit"), NULL,
					    "unknown rate limit policy \"%s\"", r->rate_limit_name);
		}
	}
	return 0;
}
