/* cmd_acme.c — `tapwork acme issue|renew|revoke|show`: the ACME client as an
 * operator tool (standalone issuance like `certbot certonly --standalone`). */
#include "acme/manager.h"
#include "acme/responder.h"
#include "cli/cli.h"
#include "conf/config.h"
#include "core/log.h"

#include <getopt.h>
#include <openssl/bn.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/time.h>
#include <time.h>

#define MAX_ROOTS 16
#define MAX_CHAL 3

static void usage(FILE *f)
{
	fprintf(f,
	        "usage: tapwork acme issue  [options] NAME...\n"
	        "       tapwork acme renew  [options] NAME...\n"
	        "       tapwork acme revoke [options] [--reason N] NAME\n"
	        "       tapwork acme show   --state-dir DIR NAME\n"
	        "       tapwork acme run    [options] NAME[,NAME...]...\n"
	        "\n"
	        "Obtain, renew, revoke or inspect ACME certificates (RFC 8555) without running\n"
	        "the proxy. Certificates and the account key are kept in STATE_DIR/acme/.\n"
	        "`issue` does nothing when a stored certificate for the same names is not yet\n"
	        "due for renewal; `renew` always orders a new one. `run` keeps one certificate\n"
	        "per argument (comma-separated names) issued and renewed until SIGTERM, and\n"
	        "prints \"installed NAME SERIAL NOT_AFTER\" for each certificate it installs.\n"
	        "\n"
	        "  -c FILE                take the acme: section of this config file\n"
	        "  --state-dir DIR        where state is kept (required)\n"
	        "  --directory URL        ACME directory (default Let's Encrypt)\n"
	        "  --ca-roots PEM         extra root(s) trusted for the directory's HTTPS\n"
	        "                         (repeatable)\n"
	        "  --email ADDR           account contact\n"
	        "  --eab-kid KID          External Account Binding key id; the HMAC key is read\n"
	        "                         from $TAPWORK_EAB_HMAC_KEY (or --eab-hmac-key KEY)\n"
	        "  --http01-listen ADDR   answer http-01 on ADDR with a built-in server\n"
	        "  --dns-hook PROG        answer dns-01 with PROG set|clear RECORD VALUE\n"
	        "  --challenge TYPE       http-01 | dns-01 (repeatable, in preference order)\n"
	        "  --key-type ec|rsa      certificate key: P-256 (default) or RSA 2048\n"
	        "  --preferred-chain CN   pick the alternate chain whose top issuer is CN\n"
	        "  --profile NAME         ACME profile\n"
	        "  --timeout SECONDS      give up after this long (default 180)\n"
	        "  --reason N             revocation reason code (default 0)\n"
	        "  -v                     debug logging\n"
	        "\nExit status: 0 done, 1 failed, 2 usage.\n");
}

static void fmt_time(time_t t, char *buf, size_t cap)
{
	struct tm tm;
	gmtime_r(&t, &tm);
	strftime(buf, cap, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static double cpu_ms(void)
{
	struct rusage ru;
	getrusage(RUSAGE_SELF, &ru);
	return (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1000.0 +
	       (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1000.0;
}

static int show(const char *state_dir, const char *name)
{
	struct tw_acme_store *st = NULL;
	struct tw_err e = {0};
	struct tw_dbuf b;
	char sname[256], t1[32], t2[32], t3[32];
	struct tw_acme_certinfo ci;
	int rc = 1;
	tw_dbuf_init(&b, TW_ACME_STORE_VALUE_MAX);
	if (tw_acme_store_local_new(state_dir, &st, &e) < 0 ||
	    tw_acme_store_cert_name(name, sname, sizeof sname) < 0) {
		fprintf(stderr, "tapwork acme show: %s\n", e.msg[0] ? e.msg : "bad name");
		goto out;
	}
	if (tw_acme_stored_cert(st, sname, &b, NULL, &e) < 0 ||
	    tw_acme_x509_info(b.data, b.len, &ci) < 0) {
		fprintf(stderr, "tapwork acme show: no stored certificate for %s\n", name);
		goto out;
	}
	struct tw_acme_window w = tw_acme_renew_window(ci.not_before, ci.not_after);
	fmt_time(ci.not_before, t1, sizeof t1);
	fmt_time(ci.not_after, t2, sizeof t2);
	printf("name: %s\nnot_before: %s\nnot_after: %s\nissuer: %s\nari_id: %s\n", name, t1, t2,
	       ci.issuer_cn, ci.ari_id);
	fmt_time(w.start, t1, sizeof t1);
	fmt_time(w.end, t3, sizeof t3);
	printf("renewal_window: %s .. %s (without ARI)\nchain: %s/acme/certs/%s/chain.pem\n"
	       "key: %s/acme/certs/%s/key.pem\n",
	       t1, t3, state_dir, sname, state_dir, sname);
	rc = 0;
out:
	tw_dbuf_free(&b);
	tw_acme_store_free(st);
	return rc;
}

static void print_install(void *ud, const char *const *names, size_t nnames, const char *chain,
                          size_t chain_len, const char *key, size_t key_len)
{
	BIO *b = BIO_new_mem_buf(chain, (int)chain_len);
	X509 *x = b ? PEM_read_bio_X509(b, NULL, NULL, NULL) : NULL;
	char *hex = NULL;
	struct tw_acme_certinfo ci;
	if (x) {
		BIGNUM *bn = ASN1_INTEGER_to_BN(X509_get0_serialNumber(x), NULL);
		hex = bn ? BN_bn2hex(bn) : NULL;
		BN_free(bn);
	}
	if (tw_acme_x509_info(chain, chain_len, &ci) < 0)
		ci.not_after = 0;
	printf("installed %s %s %ld\n", names[0], hex ? hex : "?", (long)ci.not_after);
	fflush(stdout);
	OPENSSL_free(hex);
	X509_free(x);
	BIO_free(b);
}

/* `acme run`: the manager in the foreground until SIGTERM/SIGINT. */
static int run_manager(const struct tw_conf_acme *ac, struct tw_acme_store *st,
                       const struct tw_acme_responder *resp, enum tw_acme_keytype kt,
                       const char *chain, unsigned timeout_ms, char **args, int nargs,
                       struct tw_err *e)
{
	struct tw_acme_mgr *m = NULL;
	struct tw_acme_mgr_opts o = {.conf = ac,
	                             .store = st,
	                             .responder = resp,
	                             .on_certificate = print_install,
	                             .key_type = kt,
	                             .preferred_issuer = chain,
	                             .issue_timeout_ms = timeout_ms};
	sigset_t set;
	int rc, sig = 0;
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	pthread_sigmask(SIG_BLOCK, &set, NULL); /* the manager thread inherits the mask */
	if ((rc = tw_acme_mgr_new(&o, &m, e)) < 0)
		return rc;
	for (int i = 0; i < nargs && rc == 0; i++) {
		char buf[4096], *names[TW_ACME_MAX_LIST];
		size_t n = 0;
		snprintf(buf, sizeof buf, "%s", args[i]);
		for (char *t = buf; t && *t && n < TW_ACME_MAX_LIST;) {
			char *comma = strchr(t, ',');
			if (comma)
				*comma = '\0';
			if (*t)
				names[n++] = t;
			t = comma ? comma + 1 : NULL;
		}
		rc = n ? tw_acme_mgr_add(m, (const char *const *)names, n, e)
		       : tw_err_set(e, TW_EINVAL, "empty certificate \"%s\"", args[i]);
	}
	if (rc == 0)
		rc = tw_acme_mgr_start(m, e);
	if (rc == 0) {
		tw_info("[acme] running for %d certificate(s); SIGTERM stops", nargs);
		sigwait(&set, &sig);
		tw_info("[acme] signal %d: stopping", sig);
	}
	tw_acme_mgr_free(m);
	return rc;
}

static int cmd_acme(int argc, char **argv)
{
	if (argc < 2 || strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0 ||
	    tw_cli_wants_help(argc, argv)) {
		usage(argc < 2 ? stderr : stdout);
		return argc < 2 ? 2 : 0;
	}
	const char *sub = argv[1];
	int is_issue = strcmp(sub, "issue") == 0, is_renew = strcmp(sub, "renew") == 0;
	int is_revoke = strcmp(sub, "revoke") == 0, is_show = strcmp(sub, "show") == 0;
	int is_run = strcmp(sub, "run") == 0;
	if (!is_issue && !is_renew && !is_revoke && !is_show && !is_run) {
		fprintf(stderr, "tapwork acme: unknown subcommand \"%s\"\n", sub);
		usage(stderr);
		return 2;
	}
	enum {
		O_STATE = 256,
		O_DIR,
		O_ROOTS,
		O_EMAIL,
		O_KID,
		O_HMAC,
		O_HTTP,
		O_HOOK,
		O_CHAL,
		O_KEY,
		O_CHAIN,
		O_PROFILE,
		O_TIMEOUT,
		O_REASON
	};
	static const struct option lo[] = {{"state-dir", required_argument, NULL, O_STATE},
	                                   {"directory", required_argument, NULL, O_DIR},
	                                   {"ca-roots", required_argument, NULL, O_ROOTS},
	                                   {"email", required_argument, NULL, O_EMAIL},
	                                   {"eab-kid", required_argument, NULL, O_KID},
	                                   {"eab-hmac-key", required_argument, NULL, O_HMAC},
	                                   {"http01-listen", required_argument, NULL, O_HTTP},
	                                   {"dns-hook", required_argument, NULL, O_HOOK},
	                                   {"challenge", required_argument, NULL, O_CHAL},
	                                   {"key-type", required_argument, NULL, O_KEY},
	                                   {"preferred-chain", required_argument, NULL, O_CHAIN},
	                                   {"profile", required_argument, NULL, O_PROFILE},
	                                   {"timeout", required_argument, NULL, O_TIMEOUT},
	                                   {"reason", required_argument, NULL, O_REASON},
	                                   {NULL, 0, NULL, 0}};
	const char *state_dir = NULL, *cfile = NULL, *http_listen = NULL, *chain = NULL;
	struct tw_conf_acme ac;
	char *roots[MAX_ROOTS], *chals[MAX_CHAL];
	size_t nroots = 0, nchals = 0;
	enum tw_acme_keytype kt = TW_ACME_KEY_P256;
	unsigned long timeout_s = 180, reason = 0;
	struct tw_config *cfg = NULL;
	struct tw_err e = {0};
	int opt, rc = 1;
	memset(&ac, 0, sizeof ac);
	ac.directory = "https://acme-v02.api.letsencrypt.org/directory";
	optind = 1;
	opterr = 1;
	/* Options first, as given; -c is applied after parsing (flags win). */
	struct tw_conf_acme fl;
	memset(&fl, 0, sizeof fl);
	while ((opt = getopt_long(argc - 1, argv + 1, "c:v", lo, NULL)) != -1) {
		char *end;
		switch (opt) {
		case 'c': cfile = optarg; break;
		case 'v': tw_log_level = TW_LOG_DEBUG; break;
		case O_STATE: state_dir = optarg; break;
		case O_DIR: fl.directory = optarg; break;
		case O_ROOTS:
			if (nroots == MAX_ROOTS) {
				fprintf(stderr, "tapwork acme: at most %d --ca-roots\n", MAX_ROOTS);
				return 2;
			}
			roots[nroots++] = optarg;
			break;
		case O_EMAIL: fl.email = optarg; break;
		case O_KID: fl.eab_kid = optarg; break;
		case O_HMAC: fl.eab_hmac_key = optarg; break;
		case O_HTTP: http_listen = optarg; break;
		case O_HOOK: fl.dns_hook = optarg; break;
		case O_CHAL:
			if (nchals == MAX_CHAL ||
			    (strcmp(optarg, "http-01") != 0 && strcmp(optarg, "dns-01") != 0)) {
				fprintf(stderr,
				        "tapwork acme: --challenge http-01|dns-01 (tls-alpn-01 "
				        "needs the proxy)\n");
				return 2;
			}
			chals[nchals++] = optarg;
			break;
		case O_KEY:
			if (strcmp(optarg, "ec") == 0)
				kt = TW_ACME_KEY_P256;
			else if (strcmp(optarg, "rsa") == 0)
				kt = TW_ACME_KEY_RSA2048;
			else {
				fprintf(stderr, "tapwork acme: --key-type ec|rsa\n");
				return 2;
			}
			break;
		case O_CHAIN: chain = optarg; break;
		case O_PROFILE: fl.profile = optarg; break;
		case O_TIMEOUT:
		case O_REASON: {
			unsigned long v = strtoul(optarg, &end, 10);
			if (*optarg == '\0' || *end != '\0' || v > 86400) {
				fprintf(stderr, "tapwork acme: bad number \"%s\"\n", optarg);
				return 2;
			}
			if (opt == O_TIMEOUT)
				timeout_s = v ? v : 1;
			else
				reason = v;
			break;
		}
		default: usage(stderr); return 2;
		}
	}
	char **names = argv + 1 + optind;
	int nnames = argc - 1 - optind;
	if (state_dir == NULL || nnames < 1 || ((is_revoke || is_show) && nnames != 1)) {
		fprintf(stderr, "tapwork acme %s: needs --state-dir and %s\n", sub,
		        is_revoke || is_show ? "one NAME" : "at least one NAME");
		return 2;
	}
	if (is_show)
		return show(state_dir, names[0]);
	if (cfile) {
		if (tw_config_load_file(cfile, &cfg, &e) < 0) {
			fprintf(stderr, "tapwork acme: %s\n", e.msg);
			return 1;
		}
		if (cfg->has_acme)
			ac = cfg->acme;
	}
	if (fl.directory)
		ac.directory = fl.directory;
	if (fl.email)
		ac.email = fl.email;
	if (fl.dns_hook)
		ac.dns_hook = fl.dns_hook;
	if (fl.profile)
		ac.profile = fl.profile;
	if (fl.eab_kid) {
		ac.has_eab = 1;
		ac.eab_kid = fl.eab_kid;
		ac.eab_hmac_key =
		    fl.eab_hmac_key ? fl.eab_hmac_key : getenv("TAPWORK_EAB_HMAC_KEY");
		if (ac.eab_hmac_key == NULL) {
			fprintf(stderr, "tapwork acme: --eab-kid needs $TAPWORK_EAB_HMAC_KEY\n");
			goto out;
		}
	}
	if (nroots) {
		ac.ca_roots = roots;
		ac.nca_roots = nroots;
	}
	if (nchals) {
		ac.challenges = chals;
		ac.nchallenges = nchals;
	} else if (ac.nchallenges == 0) {
		static char *def_http[] = {"http-01"}, *def_dns[] = {"dns-01"};
		ac.challenges = http_listen ? def_http : def_dns;
		ac.nchallenges = 1;
	}

	struct tw_acme_store *st = NULL;
	struct tw_acme_http01 *tab = NULL;
	struct tw_acme_http01_server *srv = NULL;
	struct tw_acme_responder resp;
	if ((rc = tw_acme_store_local_new(state_dir, &st, &e)) < 0)
		goto fail;
	if (http_listen && !is_revoke) {
		struct tw_addr a;
		if ((rc = tw_addr_parse(http_listen, &a, &e)) < 0 ||
		    (rc = tw_acme_http01_new(&tab)) < 0 ||
		    (rc = tw_acme_http01_server_start(&a, tab, &srv, &e)) < 0)
			goto fail;
		resp = tw_acme_http01_responder(tab);
	}
	struct tw_acme_obtain_opts oo = {
	    .conf = &ac,
	    .store = st,
	    .responder = tab ? &resp : NULL,
	    .key_type = kt,
	    .preferred_issuer = chain,
	    .issue_timeout_ms = (unsigned)(timeout_s * 1000),
	    .force = is_renew,
	};
	if (is_run) {
		rc = run_manager(&ac, st, tab ? &resp : NULL, kt, chain,
		                 (unsigned)(timeout_s * 1000), names, nnames, &e);
		if (rc < 0)
			goto fail;
		goto done;
	}
	if (is_revoke) {
		char sname[256];
		if ((rc = tw_acme_store_cert_name(names[0], sname, sizeof sname)) < 0 ||
		    (rc = tw_acme_revoke_stored(&oo, sname, (unsigned)reason, &e)) < 0)
			goto fail;
		printf("revoked %s\n", names[0]);
		rc = 0;
		goto done;
	}
	struct timeval t0, t1;
	gettimeofday(&t0, NULL);
	double c0 = cpu_ms();
	struct tw_acme_obtain_result res;
	rc = tw_acme_obtain(&oo, (const char *const *)names, (size_t)nnames, &res, &e);
	gettimeofday(&t1, NULL);
	double wall =
	    (double)(t1.tv_sec - t0.tv_sec) * 1000.0 + (double)(t1.tv_usec - t0.tv_usec) / 1000.0;
	fprintf(stderr,
	        "acme: %lu requests, %lu badNonce retries, account %s, %.1f ms wall, %.1f ms cpu\n",
	        res.stats.requests, res.stats.bad_nonce_retries,
	        res.account_reused ? "reused" : "new", wall, cpu_ms() - c0);
	if (rc < 0)
		goto fail;
	char ta[32], tr[32];
	fmt_time(res.info.not_after, ta, sizeof ta);
	fmt_time(res.renew_at, tr, sizeof tr);
	printf("%s %s: %s/acme/certs/%s/chain.pem (expires %s, renew at %s)\n",
	       res.issued ? "issued" : "kept", names[0], state_dir, res.store_name, ta, tr);
	rc = 0;
	goto done;
fail:
	fprintf(stderr, "tapwork acme %s: %s\n", sub, e.msg[0] ? e.msg : tw_strerror(rc));
	rc = 1;
done:
	tw_acme_http01_server_stop(srv);
	tw_acme_http01_free(tab);
	tw_acme_store_free(st);
out:
	tw_config_free(cfg);
	return rc < 0 ? 1 : rc;
}

TW_CLI_COMMAND(acme, "acme", "obtain, renew, revoke or show ACME certificates", cmd_acme)
