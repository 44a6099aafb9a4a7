/* acme_glue.c — the ACME manager inside `tapwork run`.
 *
 * Sites with `tls: acme` get their certificates from the manager thread
 * (src/acme/manager.c). HTTP-01 challenges are answered by the proxy itself
 * from the manager's token table (before any redirect or route). A newly
 * installed certificate sets a flag that the main thread's once-a-second
 * certificate watcher turns into a reload: the TLS store of the new
 * generation loads the files the manager stored (state_dir/acme/certs/),
 * and connections in flight keep the old one. Until a site's first
 * certificate arrives it is served with a temporary local-CA certificate. */
#include "acme/manager.h"
#include "acme/responder.h"
#include "acme/store.h"
#include "core/log.h"
#include "edge/edge.h"

#include <stdlib.h>
#include <string.h>

static void on_certificate(void *ud, const char *const *names, size_t nnames, const char *chain_pem,
			   size_t chain_len, const char *key_pem, size_t key_len)
{
	struct tw_edge *e = ud;
	tw_info("acme: certificate for %s%s installed; the TLS store reloads", nnames ? names[0] : "?",
		nnames > 1 ? " (and more)" : "");
	atomic_store(&e->acme_changed, 1);
	tw_loop_wake(e->loop);
}

static void add_sites(struct tw_edge *e, const struct tw_config *cfg)
{
	for (size_t i = 0; i < cfg->nsites; i++) {
		const struct tw_conf_site *s = &cfg->sites[i];
		if (s->tls_effective != TW_TLS_ACME || s->nhosts == 0)
			continue;
		struct tw_err err = {0};
		if (tw_acme_mgr_add(e->acme, (const char *const *)s->hosts, s->nhosts, &err) != 0)
			tw_warn("acme: %s: %s", s->hosts[0], err.msg);
	}
}

int tw_edge_acme_start(struct tw_edge *e, const struct tw_config *cfg)
{
	int want = 0;
	for (size_t i = 0; i < cfg->nsites; i++)
		want |= cfg->sites[i].tls_effective == TW_TLS_ACME;
	if (!want || !cfg->has_https)
		return 0;
	if (!cfg->has_acme) {
		tw_warn("acme: sites want ACME certificates but the config has no `acme:` section "
			"(email, directory): serving temporary local-CA certificates");
		return 0;
	}
	struct tw_err err = {0};
	int rc = tw_acme_store_local_new(cfg->state_dir, &e->acme_store, &err);
	if (rc == 0)
		rc = tw_acme_http01_new(&e->acme_http01) == 0 ? 0 : tw_err_set(&err, TW_ENOMEM, "out of memory");
	if (rc != 0) {
		tw_error("acme: %s", err.msg);
		return rc;
	}
	e->acme_responder = tw_acme_http01_responder(e->acme_http01);
	struct tw_acme_mgr_opts o = {
		.conf = &cfg->acme,
		.store = e->acme_store,
		.responder = &e->acme_responder,
		.on_certificate = on_certificate,
		.ud = e,
	};
	if ((rc = tw_acme_mgr_new(&o, &e->acme, &err)) != 0) {
		tw_error("acme: %s", err.msg);
		return rc;
	}
	add_sites(e, cfg);
	if ((rc = tw_acme_mgr_start(e->acme, &err)) != 0)
		tw_error("acme: %s", err.msg);
	return rc;
}

void tw_edge_acme_update(struct tw_edge *e, const struct tw_config *cfg)
{
	if (e->acme == NULL) {
		tw_edge_acme_start(e, cfg);
		return;
	}
	add_sites(e, cfg); /* names already managed are kept as they are */
}

void tw_edge_acme_stop(struct tw_edge *e)
{
	tw_acme_mgr_free(e->acme);
	e->acme = NULL;
	tw_acme_http01_free(e->acme_http01);
	e->acme_http01 = NULL;
	tw_acme_store_free(e->acme_store);
	e->acme_store = NULL;
}

int tw_edge_acme_http01(struct tw_edge *e, const char *path, size_t len, char *out, size_t cap,
			size_t *outlen)
{
	const char *tok;
	size_t tl;
	if (e->acme_http01 == NULL || !tw_acme_http01_match(path, len, &tok, &tl))
		return TW_EINVAL;
	return tw_acme_http01_lookup(e->acme_http01, tok, tl, out, cap, outlen);
}

void tw_edge_acme_metrics(struct tw_edge *e, struct tw_dbuf *out)
{
	if (e->acme)
		tw_acme_mgr_metrics(e->acme, out);
}
