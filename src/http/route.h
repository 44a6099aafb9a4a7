/* route.h — host/path routing with Kubernetes Ingress semantics.
 *
 * Built once per config generation from cfg->sites; read-only afterwards, so
 * every worker thread uses it without locks.
 *   Host: exact names first, then "*.suffix" wildcards (exactly one label:
 *   "*.example.com" matches "a.example.com", not "example.com" nor
 *   "a.b.example.com"; a site with wild_any_depth — Gateway API hostnames —
 *   also takes deeper names when no more specific wildcard does), then the
 *   default site ("*"). The Host is compared
 *   lower-case, without port and without a trailing dot.
 *   Path: `exact` matches the path exactly; `prefix` matches whole path
 *   segments ("/api" matches "/api", "/api/", "/api/x", not "/apix"; "/"
 *   matches everything; a trailing "/" in the rule is ignored for matching).
 *   The longest matching rule wins; on equal length `exact` beats `prefix`.
 *   No match -> NULL (the proxy answers 404). */
#ifndef TW_HTTP_ROUTE_H
#define TW_HTTP_ROUTE_H

#include "conf/config.h"

#include <stddef.h>

struct tw_router;

/* Allocates from cfg->arena; lives as long as cfg. */
int tw_router_build(const struct tw_config *cfg, struct tw_router **out, struct tw_err *err);

/* host: Host header value as received (may include ":port", any case).
 * path: the path without query. Returns the route or NULL; *site_idx (may
 * be NULL) gets the index of the matched site, or SIZE_MAX when no site
 * matched (a site can match while no route does: NULL with *site_idx set).
 * The host site is chosen first; a path miss there does not fall back to a
 * wildcard or the default site. A Host longer than 255 bytes (after ":port"
 * and one trailing dot are removed) matches nothing, not even "*"; an empty
 * Host goes to the default site. The path is compared as received (no
 * percent-decoding, no dot-segment removal), case-sensitively. Allocation-free. */
const struct tw_conf_route *tw_router_match(const struct tw_router *r, const char *host, size_t host_len,
					    const char *path, size_t path_len, size_t *site_idx);

/* What routes with request matchers (tw_conf_route.ext: method, headers,
 * query parameters) look at. header_is(ctx, name, value) is 1 when the
 * request has a field `name` (case-insensitive) whose value is exactly
 * `value`. */
struct tw_route_req {
	const char *method;
	size_t method_len;
	const char *query; /* without '?'; may be NULL */
	size_t query_len;
	int (*header_is)(void *ctx, const char *name, const char *value);
	void *ctx;
};

/* tw_router_match that also checks the matchers of routes that have them
 * (q NULL: such routes never match). Among routes of the same path and
 * type, one with a method match comes first, then the one with more header
 * matches, then more query matches, then ext->order. Allocation-free. */
const struct tw_conf_route *tw_router_match_req(const struct tw_router *r, const char *host, size_t host_len,
						const char *path, size_t path_len, const struct tw_route_req *q,
						size_t *site_idx);

/* Do two routes' extensions (matchers, filters, weights) behave alike?
 * Both NULL: yes. Backends are compared by name. */
int tw_route_ext_equal(const struct tw_route_ext *a, const struct tw_route_ext *b);

#endif
