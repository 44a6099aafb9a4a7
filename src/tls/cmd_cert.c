/* cmd_cert.c — `tapwork cert list|trust|renew`: the certificates a config
 * serves, how to trust the local CA, and asking for an ACME renewal. */
#include "acme/store.h"
#include "cli/cli.h"
#include "conf/config.h"
#include "tls/ca.h"
#include "tls/tls.h"

#include <jansson.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

static const char usage[] =
    "usage: tapwork cert list [-c FILE]\n"
    "       tapwork cert trust [-c FILE]\n"
    "       tapwork cert renew [-c FILE] NAME\n"
    "\n"
    "  list    every certificate the configuration serves: site, source (internal,\n"
    "          file, acme, acme-temporary), names, issuer, expiry, key and path; for\n"
    "          ACME ones also the CA, when it was issued and a pending renewal request.\n"
    "          Issues the local-CA certificates that are missing or due for renewal.\n"
    "  renew   ask for a new ACME certificate for the site whose hosts include NAME:\n"
    "          leaves a request in the ACME store that the running `tapwork run`\n"
    "          takes within 5 seconds (renewing even when not due). Without a running\n"
    "          process, `tapwork acme renew NAME` renews standalone.\n"
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

/* ACME details from the store directory of a certificate (dirname of path). */
static void acme_details(const char *cert_path)
{
	char dir[1024], p[1100];
	const char *slash = strrchr(cert_path, '/');
	if (slash == NULL || (size_t)(slash - cert_path) >= sizeof dir)
		return;
	memcpy(dir, cert_path, (size_t)(slash - cert_path));
	dir[slash - cert_path] = '\0';
	snprintf(p, sizeof p, "%s/meta.json", dir);
	json_t *m = json_load_file(p, 0, NULL);
	if (m) {
		char at[32];
		json_t *ia = json_object_get(m, "issued_at");
		const char *d = json_string_value(json_object_get(m, "directory"));
		fmt_time(json_is_integer(ia) ? (time_t)json_integer_value(ia) : 0, at, sizeof at);
		printf("  acme:    issued %s by %s\n", at, d ? d : "?");
		json_decref(m);
	}
	snprintf(p, sizeof p, "%s/renew", dir);
	if (access(p, F_OK) == 0)
		printf("  renewal: requested (tapwork cert renew), not yet taken by tapwork run\n");
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
		if (c->source == TW_TLS_SRC_ACME)
			acme_details(c->cert_path);
		else if (c->source == TW_TLS_SRC_ACME_TEMP)
			printf("  acme:    no certificate from the CA yet (tapwork run obtains it)\n");
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

static int cert_renew(const struct tw_config *cfg, const char *name)
{
	const struct tw_conf_site *site = NULL;
	for (size_t i = 0; i < cfg->nsites && site == NULL; i++) {
		const struct tw_conf_site *s = &cfg->sites[i];
		for (size_t h = 0; h < s->nhosts && site == NULL; h++)
			if (s->tls_effective == TW_TLS_ACME && strcasecmp(s->hosts[h], name) == 0)
				site = s;
	}
	if (site == NULL) {
		fprintf(stderr, "tapwork cert: no site with `tls: acme` has the host %s\n", name);
		return 1;
	}
	char sname[256], key[300], val[64];
	struct tw_acme_store *st = NULL;
	struct tw_err e = {0};
	int rc = tw_acme_store_cert_name(site->hosts[0], sname, sizeof sname);
	if (rc == 0)
		rc = tw_acme_store_open(cfg->acme.store, cfg->state_dir, &st, &e);
	if (rc == 0) {
		snprintf(key, sizeof key, "certs/%s/renew", sname);
		snprintf(val, sizeof val, "%lld\n", (long long)time(NULL));
		rc = tw_acme_store_put(st, key, val, strlen(val), 0, &e);
	}
	tw_acme_store_free(st);
	if (rc < 0) {
		fprintf(stderr, "tapwork cert: %s\n", e.msg[0] ? e.msg : "cannot store the request");
		return 1;
	}
	printf("renewal of %s requested: a running `tapwork run` renews it within a few seconds\n"
	       "(without one, run `tapwork acme renew %s`)\n",
	       site->hosts[0], site->hosts[0]);
	return 0;
}

static int cmd_cert(int argc, char **argv)
{
	if (tw_cli_wants_help(argc, argv)) {
		fputs(usage, stdout);
		return 0;
	}
	const char *sub = NULL, *path = NULL, *name = NULL;
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "-c") == 0 && i + 1 < argc)
			path = argv[++i];
		else if (strncmp(argv[i], "--config=", 9) == 0)
			path = argv[i] + 9;
		else if (sub == NULL && argv[i][0] != '-')
			sub = argv[i];
		else if (sub && strcmp(sub, "renew") == 0 && name == NULL && argv[i][0] != '-')
			name = argv[i];
		else {
			fputs(usage, stderr);
			return 2;
		}
	}
	if (sub == NULL ||
	    (strcmp(sub, "list") != 0 && strcmp(sub, "trust") != 0 && strcmp(sub, "renew") != 0) ||
	    (strcmp(sub, "renew") == 0) != (name != NULL)) {
		fputs(usage, stderr);
		return 2;
	}
	struct tw_config *cfg = NULL;
	if (load(path, &cfg) < 0)
		return 1;
	int rc = strcmp(sub, "list") == 0    ? cert_list(cfg)
	         : strcmp(sub, "renew") == 0 ? cert_renew(cfg, name)
	                                     : cert_trust(cfg);
	tw_config_free(cfg);
	return rc;
}

TW_CLI_COMMAND(cert, "cert", "list certificates, trust the local CA, request ACME renewals",
               cmd_cert)
