/* cmd_cert.c — `tapwork cert list|trust`: the certificates a config serves
 * and how to trust the local CA. */
#include "cli/cli.h"
#include "conf/config.h"
#include "tls/ca.h"
#include "tls/tls.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

static const char usage[] =
    "usage: tapwork cert list [-c FILE]\n"
    "       tapwork cert trust [-c FILE]\n"
    "\n"
    "  list    every certificate the configuration serves: site, source (internal,\n"
    "          file, acme-temporary), names, issuer, expiry, key and path. Issues the\n"
    "          local-CA certificates that are missing or due for renewal.\n"
    "  trust   the local CA's root certificate (created if needed) and how to make\n"
    "          curl, the system and browsers trust it.\n"
    "\n"
    "  -c FILE  configuration file (default: the embedded default)\n";

static int load(const char *path, struct tw_config **cfg)
{
	struct tw_err e = {0};
	int rc = path ? tw_config_load_file(path, cfg, &e) : tw_config_load_default(cfg, &e);
	if (rc < 0)
		fprintf(stderr, "tapwork cert: %s\n", e.msg);
	return rc;
}

static void fmt_time(time_t t, char *buf, size_t n)
{
	struct tm tm;
	if (t == 0 || gmtime_r(&t, &tm) == NULL || strftime(buf, n, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
		snprintf(buf, n, "?");
}

static int cert_list(const struct tw_config *cfg)
{
	struct tw_tls_store *s = NULL;
	struct tw_err e = {0};
	if (tw_tls_store_build(cfg, NULL, &s, &e) < 0) {
		fprintf(stderr, "tapwork cert: %s\n", e.msg);
		return 1;
	}
	size_t n = tw_tls_store_ncerts(s);
	if (n == 0)
		printf("no site has TLS%s\n",
		       cfg->has_https ? "" : " (the configuration has no listen.https)");
	time_t now = time(NULL);
	for (size_t i = 0; i < n; i++) {
		const struct tw_tls_cert_info *c = tw_tls_store_cert(s, i);
		const struct tw_conf_site *site = &cfg->sites[c->site];
		char exp[32];
		fmt_time(c->not_after, exp, sizeof exp);
		long long left = c->not_after > now ? (long long)(c->not_after - now) / 86400 : -1;
		printf("%s%s\n", i ? "\n" : "", site->nhosts ? site->hosts[0] : "?");
		printf("  source:  %s\n", tw_tls_source_name(c->source));
		printf("  names:   %s\n", c->names[0] ? c->names : "(none)");
		printf("  subject: %s\n", c->subject);
		printf("  issuer:  %s\n", c->issuer);
		if (left >= 0)
			printf("  expires: %s (%lld days left)\n", exp, left);
		else
			printf("  expires: %s (EXPIRED)\n", exp);
		printf("  key:     %s\n", c->key_desc);
		printf("  path:    %s\n", c->cert_path);
	}
	tw_tls_store_release(s);
	return 0;
}

static int cert_trust(const struct tw_config *cfg)
{
	struct tw_ca *ca = NULL;
	struct tw_err e = {0};
	if (tw_ca_open(cfg->state_dir, &ca, &e) < 0) {
		fprintf(stderr, "tapwork cert: %s\n", e.msg);
		return 1;
	}
	const char *p = tw_ca_root_path(ca);
	printf("%s\n\n", p);
	printf("This is the root certificate of tapwork's local CA; it signs the certificates\n"
	       "of sites with `tls: internal`. Trust it only on machines you control.\n\n"
	       "  curl:            curl --cacert %s https://app.localhost/\n"
	       "  Debian/Ubuntu:   sudo cp %s /usr/local/share/ca-certificates/tapwork.crt\n"
	       "                   sudo update-ca-certificates\n"
	       "  Firefox/Chrome:  Settings > Certificates > Authorities > Import, pick the file\n"
	       "                   above and tick \"trust this CA to identify websites\"\n"
	       "                   (Chrome on Linux: chrome://certificate-manager).\n"
	       "  Python requests: REQUESTS_CA_BUNDLE=%s\n"
	       "\nTo stop trusting it: remove the file from /usr/local/share/ca-certificates and\n"
	       "run `sudo update-ca-certificates --fresh`.\n",
	       p, p, p);
	tw_ca_free(ca);
	return 0;
}

static int cmd_cert(int argc, char **argv)
{
	if (tw_cli_wants_help(argc, argv)) {
		fputs(usage, stdout);
		return 0;
	}
	const char *sub = NULL, *path = NULL;
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "-c") == 0 && i + 1 < argc)
			path = argv[++i];
		else if (strncmp(argv[i], "--config=", 9) == 0)
			path = argv[i] + 9;
		else if (sub == NULL && argv[i][0] != '-')
			sub = argv[i];
		else {
			fputs(usage, stderr);
			return 2;
		}
	}
	if (sub == NULL || (strcmp(sub, "list") != 0 && strcmp(sub, "trust") != 0)) {
		fputs(usage, stderr);
		return 2;
	}
	struct tw_config *cfg = NULL;
	if (load(path, &cfg) < 0)
		return 1;
	int rc = strcmp(sub, "list") == 0 ? cert_list(cfg) : cert_trust(cfg);
	tw_config_free(cfg);
	return rc;
}

TW_CLI_COMMAND(cert, "cert", "list certificates, trust the local CA", cmd_cert)
