/* schema_pp.c — the `proxy_protocol:` section and `send_proxy` (schema as
 * data, like schema.c; docs/proxy-protocol.md). */
#include "conf/schema.h"

#include <stdio.h>
#include <string.h>

#define FLD(T, m) .off = offsetof(T, m), .width = sizeof(((T *)0)->m)

/* Record a warning at node (same "FILE:LINE:COL: KEY: text" as errors) in
 * cfg->warnings; loading goes on. */
static int conf_warn(struct cf_ctx *c, int node, const char *extra, const char *text)
{
	struct tw_err tmp = {0}, *saved = c->err;
	c->err = &tmp;
	tw_conf_fail(c, node, extra, "%s", text);
	c->err = saved;
	const char *old = c->cfg->warnings ? c->cfg->warnings : "";
	size_t ol = strlen(old), nl = strlen(tmp.msg);
	char *w = tw_arena_alloc(c->arena, ol + nl + 2);
	if (w == NULL)
		return TW_ENOMEM;
	memcpy(w, old, ol);
	memcpy(w + ol, tmp.msg, nl);
	w[ol + nl] = '\n';
	w[ol + nl + 1] = '\0';
	c->cfg->warnings = w;
	return 0;
}

static int check_pp(struct cf_ctx *c, int node, void *obj)
{
	struct tw_conf_proxy_protocol *pp = obj;
	int from = tw_conf_map_get(c, node, "from");
	for (size_t i = 0; i < pp->nfrom; i++) {
		if (pp->from[i].prefix != 0)
			continue;
		char key[32];
		snprintf(key, sizeof key, "from[%zu]", i);
		int rc = conf_warn(c, tw_conf_seq_item(c, from, i), key,
				   "every peer may claim any client address: name the load balancers' ranges");
		if (rc < 0)
			return rc;
	}
	if (pp->nlisteners == 0) {
		pp->on_http = pp->on_https = 1;
	} else {
		for (size_t i = 0; i < pp->nlisteners; i++) {
			if (pp->listeners[i] == TW_PP_LISTEN_HTTP)
				pp->on_http = 1;
			else
				pp->on_https = 1;
		}
	}
	return 0;
}

static const struct cf_enum others_enum[] = {
    {"plain", TW_PP_OTHERS_PLAIN}, {"reject", TW_PP_OTHERS_REJECT}, {NULL, 0}};
static const struct cf_enum listener_enum[] = {
    {"http", TW_PP_LISTEN_HTTP}, {"https", TW_PP_LISTEN_HTTPS}, {NULL, 0}};
static const struct cf_field cidr_elem = {.kind = CF_CIDR, .width = sizeof(struct tw_cidr)};
static const struct cf_field listener_elem = {.kind = CF_ENUM, .width = sizeof(int), .enums = listener_enum};

#define PP struct tw_conf_proxy_protocol
static const struct cf_field pp_fields[] = {
    {.name = "from",
     .kind = CF_LIST,
     FLD(PP, from),
     .count_off = offsetof(PP, nfrom),
     .flags = CF_REQUIRED,
     .min = 1,
     .max = 1024,
     .elem = &cidr_elem,
     .doc = "Peers (CIDRs or addresses: the load balancers, or the nodes that forward for them) "
            "that must start every connection with a PROXY header. Required, not empty; "
            "`0.0.0.0/0` or `::/0` draws a warning."},
    {.name = "timeout",
     .kind = CF_DURATION,
     FLD(PP, timeout_ms),
     .min = 1,
     .max = 60000,
     .def = "3s",
     .doc = "The whole header must arrive within this; else the connection is closed."},
    {.name = "others",
     .kind = CF_ENUM,
     FLD(PP, others),
     .enums = others_enum,
     .def = "plain",
     .doc = "Peers outside `from`: `plain` serves them without a header (their socket "
            "address is the client), `reject` closes their connections at once."},
    {.name = "listeners",
     .kind = CF_LIST,
     FLD(PP, listeners),
     .count_off = offsetof(PP, nlisteners),
     .max = 2,
     .elem = &listener_elem,
     .doc = "Which listeners expect it: `http`, `https`; absent = both."},
    {.name = NULL}};
#undef PP

const struct cf_schema tw_conf_pp_schema = {
    .name = "proxy_protocol",
    .fields = pp_fields,
    .check = check_pp,
    .doc = "The PROXY protocol (v1 and v2, HAProxy's spec) from load balancers in front of "
           "tapwork: the header is read before TLS and its client address is the client address "
           "for the access log, `X-Forwarded-For`/`Forwarded`, `balance: hash` on `client_ip` and "
           "`trusted_proxies`. Whether a header must be there is decided by `from`, never guessed. "
           "See docs/proxy-protocol.md."};

const struct cf_enum tw_conf_send_proxy_enum[] = {
    {"off", TW_SEND_PROXY_OFF}, {"v1", TW_SEND_PROXY_V1}, {"v2", TW_SEND_PROXY_V2}, {NULL, 0}};
