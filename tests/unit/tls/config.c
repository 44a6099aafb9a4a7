/* Unit tests for the TLS configuration keys (src/conf/schema.c rows for
 * listen.https, state_dir, tls, sites[].tls) and the helpers in
 * src/tls/tls.c: defaults, effective modes, HSTS, redirects, and every
 * error with its FILE:LINE:COL and key path. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "core/log.h"
#include "tls/tls.h"
#include "tls_test.h"

static char dir[64], crt[128], key[128], rsacrt[128], rsakey[128], ec2crt[128], ec2key[128];

static int setup(void **state)
{
	mk_tmpdir(dir, sizeof dir);
	snprintf(crt, sizeof crt, "%s/a.crt", dir);
	snprintf(key, sizeof key, "%s/a.key", dir);
	snprintf(rsacrt, sizeof rsacrt, "%s/r.crt", dir);
	snprintf(rsakey, sizeof rsakey, "%s/r.key", dir);
	snprintf(ec2crt, sizeof ec2crt, "%s/b.crt", dir);
	snprintf(ec2key, sizeof ec2key, "%s/b.key", dir);
	if (write_selfsigned(crt, key, 0, "a.example", "DNS:a.example", 1) < 0 ||
	    write_selfsigned(rsacrt, rsakey, 1, "a.example", "DNS:a.example", 2) < 0 ||
	    write_selfsigned(ec2crt, ec2key, 0, "a.example", "DNS:a.example", 3) < 0)
		return -1;
	return 0;
}

static int teardown(void **state)
{
	rm_rf(dir);
	return 0;
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

#define ROUTE "    routes: [{path: /, handler: welcome}]\n"

static void defaults_without_https(void **state)
{
	struct tw_config *cfg = cfg_fmt("listen: {http: 127.0.0.1:1}\n"
	                                "sites:\n  - hosts: [app.test]\n" ROUTE
	                                "  - hosts: [www.example.com]\n" ROUTE);
	assert_non_null(cfg);
	assert_int_equal(cfg->has_https, 0);
	assert_string_equal(cfg->state_dir, "/var/lib/tapwork");
	assert_int_equal(cfg->tls.profile, TW_TLS_PROFILE_INTERMEDIATE);
	assert_null(cfg->tls.default_host);
	assert_int_equal(cfg->tls.ticket_key_rotation_ms, 12ull * 3600 * 1000);
	assert_int_equal(cfg->tls.hsts.max_age_s, 365ull * 86400);
	assert_int_equal(cfg->tls.hsts.include_subdomains, 0);
	assert_int_equal(cfg->tls.hsts.preload, 0);
	assert_int_equal(cfg->tls.hsts_internal, 0);
	assert_int_equal(cfg->tls.redirect_http, 1);
	for (size_t i = 0; i < 2; i++) {
		assert_int_equal(cfg->sites[i].tls_mode, TW_TLS_AUTO);
		assert_int_equal(cfg->sites[i].tls_effective, TW_TLS_OFF);
		assert_int_equal(tw_tls_site_wants_redirect(cfg, i), 0);
		assert_null(tw_tls_site_hsts(cfg, i));
	}
	tw_config_free(cfg);
}

static void effective_modes(void **state)
{
	struct tw_config *cfg = cfg_fmt(
	    "listen: {http: 127.0.0.1:1, https: 127.0.0.1:2}\n"
	    "state_dir: /tmp/x\n"
	    "sites:\n"
	    "  - hosts: [localhost, a.localhost, b.test, c.internal, 10.0.0.1, \"*.d.test\"]\n" ROUTE
	    "  - hosts: [www.example.com]\n" ROUTE
	    "  - hosts: [mixed.test, mixed.example.com]\n" ROUTE
	    "  - hosts: [off.example.com]\n    tls: off\n" ROUTE
	    "  - hosts: [int.example.com]\n    tls: internal\n" ROUTE
	    "  - hosts: [acme.test]\n    tls: acme\n" ROUTE
	    "  - hosts: [\"*\"]\n" ROUTE
	    "  - hosts: [file.example.com]\n    tls: {cert: %s, key: %s}\n" ROUTE
	    "  - hosts: [two.example.com]\n    tls: [{cert: %s, key: %s}, {cert: %s, key: %s}]\n" ROUTE,
	    crt, key, crt, key, rsacrt, rsakey);
	assert_non_null(cfg);
	assert_int_equal(cfg->has_https, 1);
	assert_string_equal(cfg->listen_https.text, "127.0.0.1:2");
	assert_string_equal(cfg->state_dir, "/tmp/x");
	static const enum tw_tls_mode want[] = {TW_TLS_INTERNAL, TW_TLS_ACME,   TW_TLS_ACME,
	                                        TW_TLS_OFF,      TW_TLS_INTERNAL, TW_TLS_ACME,
	                                        TW_TLS_INTERNAL, TW_TLS_FILES,  TW_TLS_FILES};
	static const int pub[] = {0, 1, 1, 1, 1, 0, 0, 1, 1};
	assert_int_equal(cfg->nsites, 9);
	for (size_t i = 0; i < 9; i++) {
		if (cfg->sites[i].tls_effective != want[i])
			fail_msg("site %zu: effective %d, want %d", i, cfg->sites[i].tls_effective,
			         want[i]);
		assert_int_equal(cfg->sites[i].tls_public, pub[i]);
		assert_int_equal(tw_tls_site_wants_redirect(cfg, i), want[i] != TW_TLS_OFF);
		const char *h = tw_tls_site_hsts(cfg, i);
		if (pub[i] && want[i] != TW_TLS_OFF)
			assert_string_equal(h, "max-age=31536000");
		else
			assert_null(h);
	}
	assert_int_equal(cfg->sites[7].ncerts, 1);
	assert_string_equal(cfg->sites[7].certs[0].cert, crt);
	assert_string_equal(cfg->sites[7].certs[0].key, key);
	assert_int_equal(cfg->sites[8].ncerts, 2);
	assert_string_equal(cfg->sites[8].certs[1].key, rsakey);
	assert_int_equal(tw_tls_site_wants_redirect(cfg, 99), 0);
	assert_null(tw_tls_site_hsts(cfg, 99));
	/* A site may opt out of the redirect (Ingress tapwork.dev/ssl-redirect). */
	for (size_t i = 0; i < 9; i++)
		if (want[i] != TW_TLS_OFF) {
			cfg->sites[i].no_redirect = 1;
			assert_int_equal(tw_tls_site_wants_redirect(cfg, i), 0);
			cfg->sites[i].no_redirect = 0;
			assert_int_equal(tw_tls_site_wants_redirect(cfg, i), 1);
		}
	tw_config_free(cfg);
}

static void all_tls_options(void **state)
{
	struct tw_config *cfg = cfg_fmt(
	    "listen: {https: 127.0.0.1:2}\n"
	    "tls:\n"
	    "  profile: modern\n"
	    "  default_host: B.test\n"
	    "  ticket_key_rotation: 1h\n"
	    "  hsts: {max_age: 180d, include_subdomains: true, preload: yes}\n"
	    "  hsts_internal: true\n"
	    "  redirect_http: false\n"
	    "sites:\n  - hosts: [a.test]\n" ROUTE "  - hosts: [b.test]\n" ROUTE);
	assert_non_null(cfg);
	assert_int_equal(cfg->has_http, 0);
	assert_int_equal(cfg->tls.profile, TW_TLS_PROFILE_MODERN);
	assert_string_equal(cfg->tls.default_host, "b.test");
	assert_int_equal(cfg->tls.ticket_key_rotation_ms, 3600000);
	assert_int_equal(cfg->tls.hsts.max_age_s, 180ull * 86400);
	assert_string_equal(tw_tls_site_hsts(cfg, 0),
	                    "max-age=15552000; includeSubDomains; preload");
	assert_int_equal(tw_tls_site_wants_redirect(cfg, 0), 0);
	tw_config_free(cfg);
	cfg = cfg_fmt("listen: {https: 127.0.0.1:2}\ntls: {hsts: {max_age: 0}}\n"
	              "sites:\n  - hosts: [a.example.com]\n" ROUTE);
	assert_string_equal(tw_tls_site_hsts(cfg, 0), "max-age=0");
	tw_config_free(cfg);
}

static void internal_names(void **state)
{
	assert_true(tw_tls_name_is_internal("localhost"));
	assert_true(tw_tls_name_is_internal("x.localhost"));
	assert_true(tw_tls_name_is_internal("*.app.test"));
	assert_true(tw_tls_name_is_internal("db.internal"));
	assert_true(tw_tls_name_is_internal("192.168.1.1"));
	assert_true(tw_tls_name_is_internal("::1"));
	assert_true(tw_tls_name_is_internal("*"));
	assert_false(tw_tls_name_is_internal("test"));
	assert_false(tw_tls_name_is_internal("latest"));
	assert_false(tw_tls_name_is_internal("localhost.example.com"));
	assert_false(tw_tls_name_is_internal("example.com"));
	assert_false(tw_tls_name_is_internal("mytest.com"));
}

static void errors(void **state)
{
	char y[2048], want[512];
	load_err("listen: {https: 127.0.0.1:2}\nsites:\n  - hosts: [a.test]\n    tls: yes\n" ROUTE,
	         "t.yaml:4:10: sites[0].tls: bad value \"yes\" (one of: internal, off, acme, "
	         "{cert: FILE, key: FILE} or a list of such pairs)");
	load_err("listen: {https: 127.0.0.1:2}\nsites:\n  - hosts: [a.test]\n    tls:\n" ROUTE,
	         "t.yaml:4:9: sites[0].tls: expected internal, off, acme, {cert: FILE, key: FILE} "
	         "or a list of such pairs, got nothing");
	load_err("listen: {https: 127.0.0.1:2}\nsites:\n  - hosts: [a.test]\n    tls: {cert: x}\n" ROUTE,
	         "t.yaml:4:10: sites[0].tls: missing required key \"key\"");
	load_err("listen: {https: 127.0.0.1:2}\nsites:\n  - hosts: [a.test]\n    tls: {cert: x, key: y, kee: z}\n" ROUTE,
	         "t.yaml:4:28: sites[0].tls.kee: unknown key (did you mean key?)");
	load_err("listen: {https: 127.0.0.1:2}\nsites:\n  - hosts: [a.test]\n    tls: []\n" ROUTE,
	         "t.yaml:4:10: sites[0].tls: must have at least 1 item");
	snprintf(y, sizeof y,
	         "listen: {https: 127.0.0.1:2}\nsites:\n  - hosts: [a.test]\n"
	         "    tls: {cert: %s/missing.crt, key: %s}\n" ROUTE, dir, key);
	snprintf(want, sizeof want,
	         "t.yaml:4:17: sites[0].tls.cert: cannot read %s/missing.crt: No such file or "
	         "directory", dir);
	load_err(y, want);
	snprintf(y, sizeof y,
	         "listen: {https: 127.0.0.1:2}\nsites:\n  - hosts: [a.test]\n"
	         "    tls:\n      - {cert: %s, key: %s}\n      - {cert: %s, key: %s}\n" ROUTE,
	         crt, key, crt, rsakey);
	/* the column of the key value depends on the path length */
	snprintf(want, sizeof want, "t.yaml:6:%zu: sites[0].tls[1].key: %s does not match the certificate in %s",
	         strlen("      - {cert: ") + strlen(crt) + strlen(", key: ") + 1, rsakey, crt);
	load_err(y, want);
	snprintf(y, sizeof y,
	         "listen: {https: 127.0.0.1:2}\nsites:\n  - hosts: [a.test]\n"
	         "    tls:\n      - {cert: %s, key: %s}\n      - {cert: %s, key: %s}\n" ROUTE,
	         crt, key, ec2crt, ec2key);
	load_err(y, "t.yaml:6:9: sites[0].tls: two certificates with ECDSA keys: give at most "
	            "one ECDSA and one RSA pair");
	snprintf(y, sizeof y, "%s/junk.pem", dir);
	write_text(y, "hello\n");
	char y2[2048];
	snprintf(y2, sizeof y2,
	         "listen: {https: 127.0.0.1:2}\nsites:\n  - hosts: [a.test]\n"
	         "    tls: {cert: %s, key: %s}\n" ROUTE, y, key);
	snprintf(want, sizeof want,
	         "t.yaml:4:17: sites[0].tls.cert: %s: no PEM certificate found (no start line)", y);
	load_err(y2, want);
	snprintf(y2, sizeof y2,
	         "listen: {https: 127.0.0.1:2}\nsites:\n  - hosts: [a.test]\n"
	         "    tls: {cert: /dev/zero, key: %s}\n" ROUTE, key);
	load_err(y2, "t.yaml:4:17: sites[0].tls.cert: /dev/zero is not a regular file");
	snprintf(y, sizeof y, "%s/empty.pem", dir);
	write_text(y, "");
	snprintf(y2, sizeof y2,
	         "listen: {https: 127.0.0.1:2}\nsites:\n  - hosts: [a.test]\n"
	         "    tls: {cert: %s, key: %s}\n" ROUTE, crt, y);
	snprintf(want, sizeof want, "t.yaml:4:%zu: sites[0].tls.key: %s: no PEM private key found (expected \"-----BEGIN PRIVATE KEY-----\" or the EC/RSA form)",
	         strlen("    tls: {cert: ") + strlen(crt) + strlen(", key: ") + 1, y);
	load_err(y2, want);
	/* an encrypted key is refused, never prompted for */
	snprintf(y, sizeof y, "%s/enc.key", dir);
	char cmd[600];
	snprintf(cmd, sizeof cmd, "openssl pkey -in %s -out %s -aes256 -passout pass:secret 2>/dev/null", key, y);
	assert_int_equal(system(cmd), 0);
	snprintf(y2, sizeof y2,
	         "listen: {https: 127.0.0.1:2}\nsites:\n  - hosts: [a.test]\n"
	         "    tls: {cert: %s, key: %s}\n" ROUTE, crt, y);
	snprintf(want, sizeof want, "t.yaml:4:%zu: sites[0].tls.key: %s: the key is encrypted; tapwork needs it unencrypted (openssl pkey -in KEY -out NEWKEY)",
	         strlen("    tls: {cert: ") + strlen(crt) + strlen(", key: ") + 1, y);
	load_err(y2, want);
	load_err("listen: {https: 127.0.0.1:2}\ntls: {profile: old}\nsites:\n  - hosts: [a.test]\n" ROUTE,
	         "t.yaml:2:16: tls.profile: bad value \"old\" (one of: intermediate, modern)");
	load_err("listen: {https: 127.0.0.1:2}\ntls: {default_host: b.test}\nsites:\n  - hosts: [a.test]\n" ROUTE,
	         "t.yaml:2:21: tls.default_host: \"b.test\" is not a host of any site");
	load_err("listen: {https: 127.0.0.1:2}\ntls: {default_host: a.test}\nsites:\n  - hosts: [a.test]\n    tls: off\n" ROUTE,
	         "t.yaml:2:21: tls.default_host: \"a.test\" belongs to sites[0], which has no TLS");
	load_err("listen: {https: 127.0.0.1:2}\ntls: {ticket_key_rotation: 1s}\nsites:\n  - hosts: [a.test]\n" ROUTE,
	         "t.yaml:2:28: tls.ticket_key_rotation: \"1s\" is out of range (60000..604800000 ms)");
	load_err("listen: {https: 127.0.0.1:2}\ntls: {hsts: {max_age: 11y}}\nsites:\n  - hosts: [a.test]\n" ROUTE,
	         "t.yaml:2:23: tls.hsts.max_age: bad max_age \"11y\" (a duration such as 1y, 180d, "
	         "1h or 0; at most 10y)");
	load_err("listen: {https: nope}\nsites:\n  - hosts: [a.test]\n" ROUTE,
	         "t.yaml:1:17: listen.https: address \"nope\" has no port (write host:port)");
}

int main(void)
{
	tw_log_level = TW_LOG_ERROR;
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(defaults_without_https),
	    cmocka_unit_test(effective_modes),
	    cmocka_unit_test(all_tls_options),
	    cmocka_unit_test(internal_names),
	    cmocka_unit_test(errors),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
