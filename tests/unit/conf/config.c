/* Unit tests for the configuration loader (src/conf/load.c + schema.c):
 * the documented example, defaults, the embedded default and every class
 * of error with its exact FILE:LINE:COL and key path. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "conf/config.h"
#include "core/log.h"

static struct tw_config *load_ok(const char *yaml)
{
	struct tw_config *cfg = NULL;
	struct tw_err e = {0};
	int rc = tw_config_load_string("t.yaml", yaml, strlen(yaml), &cfg, &e);
	if (rc != 0)
		fail_msg("load failed: %s", e.msg);
	assert_non_null(cfg);
	return cfg;
}

/* Loading must fail with exactly this message. */
static void load_err(const char *yaml, const char *want)
{
	struct tw_config *cfg = (struct tw_config *)1;
	struct tw_err e = {0};
	int rc = tw_config_load_string("t.yaml", yaml, strlen(yaml), &cfg, &e);
	if (rc == 0) {
		tw_config_free(cfg);
		fail_msg("expected error \"%s\", but it loaded", want);
	}
	assert_null(cfg);
	if (strcmp(e.msg, want) != 0)
		fail_msg("wrong error:\n  got:  %s\n  want: %s", e.msg, want);
}

static unsigned ncpu(void)
{
	long n = sysconf(_SC_NPROCESSORS_ONLN);
	return n < 1 ? 1 : n > 256 ? 256 : (unsigned)n;
}

static void example_loads(void **state)
{
	struct tw_config *cfg = NULL;
	struct tw_err e = {0};
	if (tw_config_load_file("docs/examples/tapwork.yaml", &cfg, &e) != 0)
		fail_msg("%s", e.msg);
	assert_string_equal(cfg->source, "docs/examples/tapwork.yaml");
	assert_int_equal(cfg->has_http, 1);
	assert_string_equal(cfg->listen_http.text, "127.0.0.1:8080");
	assert_int_equal(cfg->workers, ncpu());
	assert_int_equal(cfg->has_admin, 1);
	assert_string_equal(cfg->admin_listen.text, "127.0.0.1:9090");

	assert_int_equal(cfg->nsites, 2);
	assert_int_equal(cfg->default_site, 1);
	const struct tw_conf_site *s0 = &cfg->sites[0];
	assert_int_equal(s0->nhosts, 2);
	assert_string_equal(s0->hosts[0], "app.example.test");
	assert_string_equal(s0->hosts[1], "*.app.example.test");
	assert_int_equal(s0->nroutes, 2);
	assert_string_equal(s0->routes[0].path, "/api");
	assert_int_equal(s0->routes[0].path_len, 4);
	assert_int_equal(s0->routes[0].match, TW_MATCH_PREFIX);
	assert_int_equal(s0->routes[0].handler, TW_HANDLER_PROXY);
	assert_string_equal(s0->routes[0].backend_name, "api");
	assert_string_equal(s0->routes[1].path, "/");
	assert_string_equal(s0->routes[1].backend_name, "web");
	const struct tw_conf_site *s1 = &cfg->sites[1];
	assert_int_equal(s1->nhosts, 1);
	assert_string_equal(s1->hosts[0], "*");
	assert_int_equal(s1->nroutes, 1);

	assert_int_equal(cfg->nbackends, 2);
	const struct tw_conf_backend *web = tw_config_backend(cfg, "web");
	const struct tw_conf_backend *api = tw_config_backend(cfg, "api");
	assert_non_null(web);
	assert_non_null(api);
	assert_null(tw_config_backend(cfg, "nope"));
	assert_ptr_equal(&cfg->backends[s0->routes[0].backend], api);
	assert_ptr_equal(&cfg->backends[s0->routes[1].backend], web);
	assert_ptr_equal(&cfg->backends[s1->routes[0].backend], web);

	assert_int_equal(web->nservers, 2);
	assert_string_equal(web->servers[0].addr.text, "127.0.0.1:3000");
	assert_int_equal(web->servers[0].weight, 1);
	assert_int_equal(web->servers[0].max_conns, 0);
	assert_string_equal(web->servers[1].addr.text, "127.0.0.1:3001");
	assert_int_equal(web->servers[1].weight, 2);
	assert_int_equal(web->balance, TW_BAL_ROUND_ROBIN);
	assert_int_equal(web->hash_src, TW_HASH_HEADER);
	assert_string_equal(web->hash_name, "X-User");
	assert_int_equal(web->health.enabled, 1);
	assert_string_equal(web->health.path, "/healthz");
	assert_null(web->health.host);
	assert_int_equal(web->health.interval_ms, 2000);
	assert_int_equal(web->health.timeout_ms, 1000);
	assert_int_equal(web->health.rise, 2);
	assert_int_equal(web->health.fall, 3);
	assert_int_equal(web->health.expect_min, 200);
	assert_int_equal(web->health.expect_max, 399);

	assert_int_equal(api->nservers, 1);
	assert_string_equal(api->servers[0].addr.text, "127.0.0.1:4000");
	assert_int_equal(api->health.enabled, 0);
	assert_null(api->health.path);
	assert_int_equal(api->hash_src, TW_HASH_CLIENT_IP);
	tw_config_free(cfg);
}

static void defaults(void **state)
{
	struct tw_config *cfg = load_ok("listen: {http: ':8080'}\n"
	                                "sites: [{hosts: ['*'], routes: [{path: /, backend: b}]}]\n"
	                                "backends: {b: {servers: ['10.0.0.1:80']}}\n");
	assert_string_equal(cfg->listen_http.text, "0.0.0.0:8080");
	assert_int_equal(cfg->has_admin, 0);
	assert_int_equal(cfg->workers, ncpu());
	assert_int_equal(cfg->limits.max_header_bytes, 32768);
	assert_int_equal(cfg->limits.max_headers, 100);
	assert_int_equal(cfg->limits.max_uri, 8192);
	assert_int_equal(cfg->limits.max_body, 0);
	assert_int_equal(cfg->timeouts.client_header_ms, 10000);
	assert_int_equal(cfg->timeouts.client_body_ms, 60000);
	assert_int_equal(cfg->timeouts.keepalive_ms, 75000);
	assert_int_equal(cfg->timeouts.drain_ms, 30000);
	assert_int_equal(cfg->log.level, TW_LOG_INFO);
	assert_string_equal(cfg->log.access, "stdout");
	assert_int_equal(cfg->log.format, TW_LOGFMT_COMBINED);
	assert_int_equal(cfg->ntrusted_proxies, 0);
	assert_int_equal(cfg->request_id_trust, 1);
	assert_string_equal(cfg->via_name, "tapwork");
	const struct tw_conf_backend *b = &cfg->backends[0];
	assert_string_equal(b->name, "b");
	assert_int_equal(b->balance, TW_BAL_ROUND_ROBIN);
	assert_int_equal(b->hash_src, TW_HASH_CLIENT_IP);
	assert_int_equal(b->retries, 2);
	assert_int_equal(b->connect_timeout_ms, 5000);
	assert_int_equal(b->response_timeout_ms, 60000);
	assert_int_equal(b->idle_timeout_ms, 30000);
	assert_int_equal(b->has_max_idle, 0); /* self-sizing pool */
	assert_int_equal(b->idle_ceiling, 1024);
	assert_int_equal(b->queue_size, 128);
	assert_int_equal(b->queue_timeout_ms, 5000);
	assert_int_equal(b->passive_fails, 3);
	assert_int_equal(b->passive_eject_ms, 10000);
	assert_int_equal(b->servers[0].weight, 1);
	tw_config_free(cfg);
}

static void all_keys_set(void **state)
{
	struct tw_config *cfg = load_ok(
	    "listen: {http: '[::1]:8081'}\n"
	    "workers: 3\n"
	    "sites:\n"
	    "  - hosts: [Example.COM]\n"
	    "    routes: [{path: /x, match: exact, backend: b}, {path: /, handler: welcome}]\n"
	    "backends:\n"
	    "  b:\n"
	    "    servers: [{address: 10.0.0.1:80, weight: 256, max_conns: 10}]\n"
	    "    balance: hash\n"
	    "    hash_key: cookie:sid\n"
	    "    health: {path: /up, host: h.test, interval: 500ms, timeout: 250ms, rise: 1, fall: "
	    "5,"
	    " expect: '204'}\n"
	    "    retries: 0\n    connect_timeout: 1s\n    response_timeout: 2m\n    idle_timeout: "
	    "1h\n"
	    "    max_idle: 0\n    idle_ceiling: 9\n    queue_size: 7\n    queue_timeout: 100ms\n    passive_fails: 0\n"
	    "    passive_eject: 1d\n"
	    "limits: {max_header_bytes: 16k, max_headers: 50, max_uri: 1KiB, max_body: 10MB}\n"
	    "timeouts: {client_header: 1s, client_body: 2s, keepalive: 0, drain: 5m}\n"
	    "log: {level: debug, access: /tmp/a.log, format: json}\n"
	    "trusted_proxies: [10.0.0.0/8, '::1/128', 127.0.0.1]\n"
	    "request_id_trust: false\n"
	    "via: edge-1\n");
	assert_string_equal(cfg->listen_http.text, "[::1]:8081");
	assert_int_equal(cfg->workers, 3);
	assert_int_equal(cfg->default_site, SIZE_MAX);
	assert_string_equal(cfg->sites[0].hosts[0], "example.com");
	assert_int_equal(cfg->sites[0].routes[0].match, TW_MATCH_EXACT);
	assert_int_equal(cfg->sites[0].routes[1].handler, TW_HANDLER_WELCOME);
	assert_null(cfg->sites[0].routes[1].backend_name);
	const struct tw_conf_backend *b = &cfg->backends[0];
	assert_int_equal(b->servers[0].weight, 256);
	assert_int_equal(b->servers[0].max_conns, 10);
	assert_int_equal(b->balance, TW_BAL_HASH);
	assert_int_equal(b->hash_src, TW_HASH_COOKIE);
	assert_string_equal(b->hash_name, "sid");
	assert_string_equal(b->health.path, "/up");
	assert_string_equal(b->health.host, "h.test");
	assert_int_equal(b->health.interval_ms, 500);
	assert_int_equal(b->health.timeout_ms, 250);
	assert_int_equal(b->health.rise, 1);
	assert_int_equal(b->health.fall, 5);
	assert_int_equal(b->health.expect_min, 204);
	assert_int_equal(b->health.expect_max, 204);
	assert_int_equal(b->retries, 0);
	assert_int_equal(b->connect_timeout_ms, 1000);
	assert_int_equal(b->response_timeout_ms, 120000);
	assert_int_equal(b->idle_timeout_ms, 3600000);
	assert_int_equal(b->max_idle, 0);
	assert_int_equal(b->has_max_idle, 1);
	assert_int_equal(b->idle_ceiling, 9);
	assert_int_equal(b->queue_size, 7);
	assert_int_equal(b->queue_timeout_ms, 100);
	assert_int_equal(b->passive_fails, 0);
	assert_int_equal(b->passive_eject_ms, 86400000);
	assert_int_equal(cfg->limits.max_header_bytes, 16384);
	assert_int_equal(cfg->limits.max_headers, 50);
	assert_int_equal(cfg->limits.max_uri, 1024);
	assert_int_equal(cfg->limits.max_body, 10000000);
	assert_int_equal(cfg->timeouts.client_header_ms, 1000);
	assert_int_equal(cfg->timeouts.client_body_ms, 2000);
	assert_int_equal(cfg->timeouts.keepalive_ms, 0);
	assert_int_equal(cfg->timeouts.drain_ms, 300000);
	assert_int_equal(cfg->log.level, TW_LOG_DEBUG);
	assert_string_equal(cfg->log.access, "/tmp/a.log");
	assert_int_equal(cfg->log.format, TW_LOGFMT_JSON);
	assert_int_equal(cfg->ntrusted_proxies, 3);
	assert_int_equal(cfg->trusted_proxies[0].prefix, 8);
	assert_int_equal(cfg->trusted_proxies[1].prefix, 128);
	assert_int_equal(cfg->trusted_proxies[2].prefix, 32);
	assert_int_equal(cfg->request_id_trust, 0);
	assert_string_equal(cfg->via_name, "edge-1");
	tw_config_free(cfg);
}

static void embedded_default(void **state)
{
	struct tw_config *cfg = NULL;
	struct tw_err e = {0};
	assert_int_equal(tw_config_load_default(&cfg, &e), 0);
	assert_string_equal(cfg->source, "<embedded>");
	assert_string_equal(cfg->listen_http.text, "127.0.0.1:8080");
	assert_int_equal(cfg->has_admin, 1);
	assert_string_equal(cfg->admin_listen.text, "127.0.0.1:9090");
	assert_int_equal(cfg->workers, ncpu());
	assert_int_equal(cfg->nsites, 1);
	assert_int_equal(cfg->default_site, 0);
	assert_int_equal(cfg->sites[0].nroutes, 1);
	assert_int_equal(cfg->sites[0].routes[0].handler, TW_HANDLER_WELCOME);
	assert_int_equal(cfg->nbackends, 0);
	tw_config_free(cfg);
	tw_config_free(NULL);
}

/* A valid base; the error tests append or vary one thing. */
#define HEAD "listen: {http: 127.0.0.1:8080}\n"
#define SITES "sites: [{hosts: ['*'], routes: [{path: /, backend: web}]}]\n"
#define WEB "backends:\n  web:\n    servers: [127.0.0.1:3000]\n"

static void errors_syntax_and_shape(void **state)
{
	load_err("", "t.yaml:1:1: the configuration is empty");
	load_err("# only a comment\n", "t.yaml:1:1: the configuration is empty");
	load_err("listen: [\n", "t.yaml:2:1: YAML syntax error: did not find expected node content "
	                        "while parsing a flow node");
	load_err("a: b: c\n",
	         "t.yaml:1:5: YAML syntax error: mapping values are not allowed in this context");
	load_err("- 1\n", "t.yaml:1:1: expected a mapping, got a list");
	load_err(HEAD SITES WEB "---\nx: 1\n", "t.yaml:7:1: more than one YAML document");
	load_err(HEAD SITES WEB "listen: {http: 127.0.0.1:1}\n",
	         "t.yaml:6:1: listen: duplicate key (first at line 1)");
	load_err(
	    HEAD SITES
	    "backends:\n  web:\n    servers: [127.0.0.1:3000]\n    retries: 1\n    retries: 2\n",
	    "t.yaml:7:5: backends.web.retries: duplicate key (first at line 6)");
	load_err(HEAD SITES
	         "backends:\n  web: {servers: [127.0.0.1:1]}\n  web: {servers: [127.0.0.1:2]}\n",
	         "t.yaml:5:3: backends.web: duplicate key \"web\"");
	load_err(SITES WEB, "t.yaml:1:1: missing required key \"listen\"");
	load_err("listen: {}\n" SITES WEB,
	         "t.yaml:1:9: listen: needs at least one listener (http)");
	load_err(HEAD WEB, "t.yaml:1:1: missing required key \"sites\" (or a kubernetes: section)");
	load_err(HEAD "sites: []\n", "t.yaml:2:8: sites: must have at least 1 item");
}

static void errors_unknown_keys(void **state)
{
	load_err(HEAD SITES WEB "    balanse: hash\n",
	         "t.yaml:6:5: backends.web.balanse: unknown key (did you mean balance?)");
	load_err("lisen: {http: 127.0.0.1:8080}\n" SITES WEB,
	         "t.yaml:1:1: lisen: unknown key (did you mean listen?)");
	load_err(HEAD SITES WEB "frobnicate: 1\n", "t.yaml:6:1: frobnicate: unknown key");
	load_err(HEAD
	         "sites: [{hosts: ['*'], routes: [{path: /, backend: web, mtach: exact}]}]\n" WEB,
	         "t.yaml:2:57: sites[0].routes[0].mtach: unknown key (did you mean match?)");
	load_err(HEAD SITES "backends:\n  web:\n    servers: [{address: 127.0.0.1:1, wieght: 2}]\n",
	         "t.yaml:5:38: backends.web.servers[0].wieght: unknown key (did you mean weight?)");
	load_err(
	    HEAD SITES WEB "    health: {intervall: 2s}\n",
	    "t.yaml:6:14: backends.web.health.intervall: unknown key (did you mean interval?)");
}

static void errors_types_and_ranges(void **state)
{
	load_err(HEAD SITES "backends:\n  web:\n    servers: [127.0.0.1:3000, {address: "
	                    "127.0.0.1:3001, weight: 0}]\n",
	         "t.yaml:5:65: backends.web.servers[1].weight: 0 is out of range (1..256)");
	load_err(HEAD SITES
	         "backends:\n  web:\n    servers: [{address: 127.0.0.1:3001, weight: heavy}]\n",
	         "t.yaml:5:49: backends.web.servers[0].weight: expected a non-negative integer, "
	         "got \"heavy\"");
	load_err(HEAD SITES "backends:\n  web:\n    servers: []\n",
	         "t.yaml:5:14: backends.web.servers: must have at least 1 item");
	load_err(HEAD SITES "backends:\n  web:\n    balance: hash\n",
	         "t.yaml:5:5: backends.web: missing required key \"servers\"");
	load_err(HEAD SITES "backends:\n  web:\n    servers: 127.0.0.1:3000\n",
	         "t.yaml:5:14: backends.web.servers: expected a list, got a scalar");
	load_err(HEAD SITES WEB "    balance: rund_robin\n",
	         "t.yaml:6:14: backends.web.balance: bad value \"rund_robin\" (one of: "
	         "round_robin, least_conn, "
	         "random_two, hash; did you mean round_robin?)");
	load_err(HEAD SITES WEB "    balance: fastest\n",
	         "t.yaml:6:14: backends.web.balance: bad value \"fastest\" (one of: round_robin, "
	         "least_conn, "
	         "random_two, hash)");
	load_err(
	    HEAD SITES WEB "    hash_key: body\n",
	    "t.yaml:6:15: backends.web.hash_key: bad hash key \"body\" (one of: client_ip, uri, "
	    "header:NAME, cookie:NAME)");
	load_err(HEAD SITES WEB "    connect_timeout: 5\n",
	         "t.yaml:6:22: backends.web.connect_timeout: duration \"5\" needs a unit (ms, s, "
	         "m, h, d)");
	load_err(
	    HEAD SITES WEB "    connect_timeout: 2d\n",
	    "t.yaml:6:22: backends.web.connect_timeout: \"2d\" is out of range (1..3600000 ms)");
	load_err(HEAD SITES WEB "    health: {expect: 200-99}\n",
	         "t.yaml:6:22: backends.web.health.expect: bad status range \"200-99\" (write e.g. "
	         "200-399 or "
	         "204; statuses 100..599)");
	load_err(HEAD SITES WEB "    health: [1]\n",
	         "t.yaml:6:13: backends.web.health: expected a mapping, got a list");
	load_err(
	    HEAD SITES WEB "limits: {max_header_bytes: 5GB}\n",
	    "t.yaml:6:28: limits.max_header_bytes: \"5GB\" is out of range (1024..1048576 bytes)");
	load_err(HEAD SITES WEB "limits: {max_body: 1PB}\n",
	         "t.yaml:6:20: limits.max_body: bad size unit in \"1PB\" (B, k, KiB, KB, M, MiB, "
	         "MB, G, GiB, GB, T)");
	load_err(
	    HEAD SITES WEB "log: {level: verbose}\n",
	    "t.yaml:6:14: log.level: bad value \"verbose\" (one of: error, warn, info, debug)");
	load_err(HEAD SITES WEB "request_id_trust: maybe\n",
	         "t.yaml:6:19: request_id_trust: expected true or false, got \"maybe\"");
	load_err(HEAD SITES WEB "trusted_proxies: [10.0.0.0/8, 10.0.0.1/8]\n",
	         "t.yaml:6:31: trusted_proxies[1]: CIDR \"10.0.0.1/8\" has host bits set");
	load_err(HEAD SITES WEB "via: 'two words'\n",
	         "t.yaml:6:6: via: \"two words\" must be a single word (letters, digits, .-_), at "
	         "most 64 bytes");
	load_err("listen: {http: 127.0.0.1}\n" SITES WEB,
	         "t.yaml:1:16: listen.http: address \"127.0.0.1\" has no port (write host:port)");
	load_err("listen: {http: }\n" SITES WEB,
	         "t.yaml:1:16: listen.http: expected an address (host:port), got nothing");
	load_err("listen: {http: {a: 1}}\n" SITES WEB,
	         "t.yaml:1:16: listen.http: expected an address (host:port), got a mapping");
	load_err(HEAD "admin:\n" SITES WEB, "t.yaml:2:7: admin: expected a mapping, got nothing");
	load_err(HEAD SITES "backends:\n  web:\n    servers: [{weight: 2}]\n",
	         "t.yaml:5:15: backends.web.servers[0]: missing required key \"address\"");
	load_err(
	    HEAD SITES "backends:\n  web:\n    servers: [[127.0.0.1:1]]\n",
	    "t.yaml:5:15: backends.web.servers[0]: expected an address or a mapping, got a list");
	load_err(HEAD SITES "backends:\n  web:\n    servers: [127.0.0.1]\n",
	         "t.yaml:5:15: backends.web.servers[0]: address \"127.0.0.1\" has no port (write "
	         "host:port)");
	load_err(HEAD SITES "backends: [web]\n",
	         "t.yaml:3:11: backends: expected a mapping of names, got a list");
	load_err(HEAD "admin: {}\n" SITES WEB,
	         "t.yaml:2:8: admin: missing required key \"listen\"");
}

static void errors_workers(void **state)
{
	struct tw_config *cfg = load_ok(HEAD "workers: 256\n" SITES WEB);
	assert_int_equal(cfg->workers, 256);
	tw_config_free(cfg);
	cfg = load_ok(HEAD "workers: 1\n" SITES WEB);
	assert_int_equal(cfg->workers, 1);
	tw_config_free(cfg);
	load_err(HEAD "workers: 0\n" SITES WEB,
	         "t.yaml:2:10: workers: expected auto or a number 1..256, got \"0\"");
	load_err(HEAD "workers: 257\n" SITES WEB,
	         "t.yaml:2:10: workers: expected auto or a number 1..256, got \"257\"");
	load_err(HEAD "workers: many\n" SITES WEB,
	         "t.yaml:2:10: workers: expected auto or a number 1..256, got \"many\"");
}

static void errors_sites_and_routes(void **state)
{
	load_err(
	    HEAD "sites: [{hosts: ['*'], routes: [{path: /, backend: wbe}]}]\n" WEB,
	    "t.yaml:2:52: sites[0].routes[0].backend: unknown backend \"wbe\" (did you mean web?)");
	load_err(HEAD "sites:\n  - hosts: ['*']\n    routes:\n      - {path: /, backend: web}\n"
	              "      - {path: /x, backend: nothing}\n" WEB,
	         "t.yaml:6:29: sites[0].routes[1].backend: unknown backend \"nothing\"");
	load_err(HEAD "sites: [{hosts: ['*'], routes: [{path: /, backend: web}]}]\n",
	         "t.yaml:2:52: sites[0].routes[0].backend: unknown backend \"web\" (no backends "
	         "are defined)");
	load_err(HEAD "sites: [{hosts: ['*'], routes: [{path: api, backend: web}]}]\n" WEB,
	         "t.yaml:2:40: sites[0].routes[0].path: path \"api\" must start with '/'");
	load_err(HEAD "sites: [{hosts: ['*'], routes: [{path: /}]}]\n" WEB,
	         "t.yaml:2:33: sites[0].routes[0]: a route needs exactly one of \"backend\" or "
	         "\"handler\"");
	load_err(
	    HEAD
	    "sites: [{hosts: ['*'], routes: [{path: /, backend: web, handler: welcome}]}]\n" WEB,
	    "t.yaml:2:33: sites[0].routes[0]: a route needs exactly one of \"backend\" or "
	    "\"handler\"");
	load_err(HEAD "sites: [{hosts: ['*'], routes: [{path: /, handler: hello}]}]\n" WEB,
	         "t.yaml:2:52: sites[0].routes[0].handler: bad value \"hello\" (one of: welcome, static)");
	load_err(HEAD "sites: [{hosts: ['*'], routes: [{backend: web}]}]\n" WEB,
	         "t.yaml:2:33: sites[0].routes[0]: missing required key \"path\"");
	load_err(HEAD "sites: [{hosts: ['*'], routes: []}]\n" WEB,
	         "t.yaml:2:32: sites[0].routes: must have at least 1 item");
	load_err(
	    HEAD "sites:\n  - hosts: ['*']\n    routes: [{path: /, backend: web}]\n"
	         "  - hosts: [a.test, '*']\n    routes: [{path: /, backend: web}]\n" WEB,
	    "t.yaml:5:21: sites[1].hosts[1]: more than one default site \"*\" (first is sites[0])");
	load_err(
	    HEAD "sites:\n  - hosts: [a.test]\n    routes: [{path: /, backend: web}]\n"
	         "  - hosts: [b.test, A.Test]\n    routes: [{path: /, backend: web}]\n" WEB,
	    "t.yaml:5:21: sites[1].hosts[1]: host \"a.test\" already appears in sites[0].hosts[0]");
	load_err(
	    HEAD "sites: [{hosts: [a.test, a.test], routes: [{path: /, backend: web}]}]\n" WEB,
	    "t.yaml:2:26: sites[0].hosts[1]: host \"a.test\" already appears in sites[0].hosts[0]");
	load_err(HEAD "sites: [{hosts: ['a.*.test'], routes: [{path: /, backend: web}]}]\n" WEB,
	         "t.yaml:2:18: sites[0].hosts[0]: bad host \"a.*.test\": '*' is only allowed alone "
	         "or as a "
	         "leading \"*.\"");
	load_err(
	    HEAD "sites: [{hosts: ['bad_host!'], routes: [{path: /, backend: web}]}]\n" WEB,
	    "t.yaml:2:18: sites[0].hosts[0]: bad host \"bad_host!\": host names hold only letters, "
	    "digits, '-', '_' and '.'");
	load_err(HEAD
	         "sites: [{hosts: ['*', a.test, '*'], routes: [{path: /, backend: web}]}]\n" WEB,
	         "t.yaml:2:31: sites[0].hosts[2]: host \"*\" already appears in sites[0].hosts[0]");
	load_err(HEAD "sites: [{hosts: ['*'], routes: [{path: /, backend: ''}]}]\n" WEB,
	         "t.yaml:2:52: sites[0].routes[0].backend: must not be empty");
	/* An unused backend and hash_key on a non-hash backend are fine. */
	struct tw_config *cfg =
	    load_ok(HEAD SITES WEB "    hash_key: uri\n  spare:\n    servers: [127.0.0.1:9]\n");
	assert_int_equal(cfg->nbackends, 2);
	assert_int_equal(cfg->backends[0].hash_src, TW_HASH_URI);
	tw_config_free(cfg);
}

static void errors_odd_yaml(void **state)
{
	/* Anchors and aliases work; a self-referencing alias must not loop. */
	struct tw_config *cfg =
	    load_ok(HEAD "sites: [{hosts: ['*'], routes: &r [{path: /, backend: web}]},"
	                 " {hosts: [x.test], routes: *r}]\n" WEB);
	assert_int_equal(cfg->sites[1].nroutes, 1);
	tw_config_free(cfg);
	load_err(HEAD "sites: &s [*s]\n", "t.yaml:2:8: sites[0]: expected a mapping, got a list");
	load_err(HEAD SITES WEB "? [a]\n: 1\n", "t.yaml:6:3: keys must be strings, got a list");
	load_err(HEAD SITES WEB "via: \"a\\0b\"\n", "t.yaml:6:6: via: value contains a NUL byte");
	/* Billion-laughs style: 1000 aliases to one route, reused by 300 sites,
	 * would be 300k nodes to walk: the node budget stops it cleanly. */
	char *big = malloc(1 << 20);
	assert_non_null(big);
	size_t n = (size_t)snprintf(big, 1 << 20, HEAD WEB "sites:\n");
	for (int i = 0; i < 300; i++) {
		n += (size_t)snprintf(big + n, (1 << 20) - n,
		                      "  - hosts: [h%d.test]\n    routes: ", i);
		if (i == 0) {
			n += (size_t)snprintf(big + n, (1 << 20) - n,
			                      "&r [&x {path: /, backend: web}");
			for (int j = 1; j < 1000; j++)
				n += (size_t)snprintf(big + n, (1 << 20) - n, ", *x");
			n += (size_t)snprintf(big + n, (1 << 20) - n, "]\n");
		} else {
			n += (size_t)snprintf(big + n, (1 << 20) - n, "*r\n");
		}
	}
	struct tw_config *c2 = NULL;
	struct tw_err e = {0};
	int rc = tw_config_load_string("big.yaml", big, n, &c2, &e);
	assert_int_equal(rc, TW_EINVAL);
	assert_null(c2);
	if (strstr(e.msg, "document too large") == NULL)
		fail_msg("%s", e.msg);
	free(big);
}

static void many_hosts_and_backends(void **state)
{
	enum { NS = 2000 };
	size_t cap = 1 << 20, n = 0;
	char *y = malloc(cap);
	assert_non_null(y);
	n += (size_t)snprintf(y + n, cap - n, HEAD "backends:\n");
	for (int i = 0; i < NS; i++)
		n += (size_t)snprintf(y + n, cap - n, "  b%d: {servers: [127.0.0.1:%d]}\n", i,
		                      1000 + i);
	n += (size_t)snprintf(y + n, cap - n, "sites:\n");
	for (int i = 0; i < NS; i++)
		n += (size_t)snprintf(
		    y + n, cap - n,
		    "  - {hosts: [h%d.test, '*.h%d.test'], routes: [{path: /, backend: b%d}]}\n", i,
		    i, NS - 1 - i);
	struct tw_config *cfg = load_ok(y);
	assert_int_equal(cfg->nsites, NS);
	assert_int_equal(cfg->nbackends, NS);
	for (size_t i = 0; i < NS; i++)
		assert_int_equal(cfg->sites[i].routes[0].backend, NS - 1 - i);
	assert_int_equal(cfg->default_site, SIZE_MAX);
	tw_config_free(cfg);
	/* The same host again in the last site. */
	n += (size_t)snprintf(y + n, cap - n,
	                      "  - {hosts: [H7.test], routes: [{path: /, backend: b1}]}\n");
	char want[128];
	snprintf(want, sizeof want,
	         "t.yaml:%d:14: sites[%d].hosts[0]: host \"h7.test\" already appears in "
	         "sites[7].hosts[0]",
	         2 * NS + 4, NS);
	load_err(y, want);
	free(y);
}

static void load_file_errors(void **state)
{
	struct tw_config *cfg = (struct tw_config *)1;
	struct tw_err e = {0};
	assert_int_equal(tw_config_load_file("/nonexistent/tapwork.yaml", &cfg, &e), TW_ENOENT);
	assert_null(cfg);
	assert_string_equal(e.msg,
	                    "/nonexistent/tapwork.yaml: cannot open: No such file or directory");
	char big_name[] = "/tmp/tw-conf-test-XXXXXX";
	int fd = mkstemp(big_name);
	assert_true(fd >= 0);
	FILE *f = fdopen(fd, "w");
	assert_non_null(f);
	for (int i = 0; i < 6 * 1024; i++)
		fputs("# padding padding padding padding padding padding padding padding padding "
		      "padding "
		      "padding padding padding padding padding padding padding padding padding "
		      "padding "
		      "padding padding padding padding padding padding padding padding padding "
		      "padding "
		      "padding padding padding padding padding padding padding padding padding "
		      "padding "
		      "padding padding padding padding padding padding padding padding padding "
		      "padding "
		      "padding padding padding padding padding padding padding padding padding "
		      "padding "
		      "padding padding padding padding padding padding padding padding padding "
		      "padding "
		      "padding padding padding padding padding padding padding padding padding "
		      "padding "
		      "padding padding padding padding padding padding padding padding padding "
		      "padding "
		      "padding padding padding padding padding padding padding padding padding "
		      "padding\n",
		      f);
	fclose(f);
	assert_int_equal(tw_config_load_file(big_name, &cfg, &e), TW_ELIMIT);
	unlink(big_name);
}

#define PGJOB_HEAD                                                                                 \
	"listen: {http: 127.0.0.1:8080}\n"                                                         \
	"sites: [{hosts: [\"*\"], routes: [{path: /, handler: welcome}]}]\n"                       \
	"backup:\n"                                                                                \
	"  repository: /srv/repo\n"                                                                \
	"  jobs:\n"                                                                                \
	"    db:\n"                                                                                \
	"      sources:\n"

/* backup jobs with a pg_data source (physical PostgreSQL): values, defaults, errors */
static void backup_pg_data_source(void **state)
{
	(void)state;
	struct tw_config *cfg =
	    load_ok(PGJOB_HEAD "        - pg_data: {dir: /var/lib/pg, postgres: \"host=/run\"}\n"
	                       "          pre: \"true\"\n");
	assert_int_equal(cfg->backup.njobs, 1);
	const struct tw_conf_backup_job *j = &cfg->backup.jobs[0];
	assert_int_equal(j->nsources, 1);
	assert_true(j->sources[0].has_pg_data);
	assert_string_equal(j->sources[0].pg_data.dir, "/var/lib/pg");
	assert_string_equal(j->sources[0].pg_data.postgres, "host=/run");
	assert_int_equal(j->sources[0].pg_data.archive_timeout_ms, 600000); /* default 10m */
	assert_null(j->sources[0].path);
	assert_string_equal(j->repository, "/srv/repo");
	tw_config_free(cfg);
	cfg = load_ok(PGJOB_HEAD "        - pg_data: {dir: /d, archive_timeout: 30s}\n");
	assert_int_equal(cfg->backup.jobs[0].sources[0].pg_data.archive_timeout_ms, 30000);
	assert_null(cfg->backup.jobs[0].sources[0].pg_data.postgres);
	tw_config_free(cfg);
	load_err(
	    PGJOB_HEAD "        - pg_data: {dir: rel/dir}\n",
	    "t.yaml:8:26: backup.jobs.db.sources[0].pg_data.dir: must be an absolute path (the "
	    "PostgreSQL data directory)");
	load_err(
	    PGJOB_HEAD "        - {path: /etc}\n        - pg_data: {dir: /d}\n",
	    "t.yaml:9:20: backup.jobs.db.sources[1].pg_data: a pg_data: source must be the "
	    "job's only source (a physical snapshot holds the data directory alone; use another "
	    "job for the rest)");
	load_err(PGJOB_HEAD "        - {pg_data: {dir: /d}, postgres: \"postgresql://a@b/c\"}\n",
	         "t.yaml:8:21: backup.jobs.db.sources[0].pg_data: give exactly one of path:, "
	         "postgres: or pg_data: per source");
	load_err(PGJOB_HEAD "        - {pg_data: {dir: /d}, exclude: [\"*.tmp\"]}\n",
	         "t.yaml:8:41: backup.jobs.db.sources[0].exclude: only for path: sources (pg_data: "
	         "leaves out what PostgreSQL says to)");
	load_err(PGJOB_HEAD "        - pg_data: {postgres: \"host=/run\"}\n",
	         "t.yaml:8:20: backup.jobs.db.sources[0].pg_data: missing required key \"dir\"");
	load_err(PGJOB_HEAD "        - pg_data: {dir: /d, archive_timeout: 1500ms}\n",
	         "t.yaml:8:47: backup.jobs.db.sources[0].pg_data.archive_timeout: must be whole "
	         "seconds");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(example_loads),
	    cmocka_unit_test(defaults),
	    cmocka_unit_test(all_keys_set),
	    cmocka_unit_test(embedded_default),
	    cmocka_unit_test(errors_syntax_and_shape),
	    cmocka_unit_test(errors_unknown_keys),
	    cmocka_unit_test(errors_types_and_ranges),
	    cmocka_unit_test(errors_workers),
	    cmocka_unit_test(errors_sites_and_routes),
	    cmocka_unit_test(errors_odd_yaml),
	    cmocka_unit_test(many_hosts_and_backends),
	    cmocka_unit_test(load_file_errors),
	    cmocka_unit_test(backup_pg_data_source),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
