/* ingress_tls.c — the Ingress translator's TLS: spec.tls hosts to site TLS
 * modes, kubernetes.io/tls Secrets (base64 PEM, checked with OpenSSL, served
 * from memory), HSTS and the redirect. See docs/kubernetes.md "TLS". */
#include "k8s/ingress_int.h"

#include "acme/jws.h"
#include "tls/tls.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Base64 (padding optional, no whitespace) into the cfg arena: the decoder
 * the ACME client uses (it takes both alphabets). */
static int b64_decode(struct tw_arena *a, const char *in, const char **out, size_t *outlen)
{
	size_t n = strlen(in);
	if (n > (4u << 20))
		return TW_EINVAL;
	unsigned char *d = NULL;
	size_t dl = 0;
	int rc = tw_jws_b64url_decode(in, n, &d, &dl);
	if (rc < 0)
		return rc;
	unsigned char *o = tw_arena_alloc(a, dl ? dl : 1);
	if (o != NULL)
		memcpy(o, d, dl);
	free(d);
	if (o == NULL)
		return TW_ENOMEM;
	*out = (const char *)o;
	*outlen = dl;
	return 0;
}

/* The pair of Secret ns/name (cached per call). */
static int get_secret(struct tr *t, const char *ns, const char *name, const struct secret_state **out)
{
	char key[300];
	snprintf(key, sizeof key, "%s/%s", ns, name);
	size_t idx;
	if (tw_k8s_ing_smap_get(&t->smap_secrets, key, &idx) == 0) {
		*out = &((struct secret_state *)t->secrets.p)[idx];
		return 0;
	}
	struct secret_state *s = tw_k8s_ing_vec_push(&t->secrets);
	char *k = tw_arena_strdup(&t->scratch, key);
	if (s == NULL || k == NULL || tw_k8s_ing_smap_put(&t->smap_secrets, k, t->secrets.n - 1) < 0)
		return TW_ENOMEM;
	const struct tw_k8s_obj *o = t->v->secrets ? tw_k8s_store_get(t->v->secrets, ns, name) : NULL;
	const json_t *data = o ? json_object_get(o->obj, "data") : NULL;
	const char *type = o ? tw_k8s_ing_jstr(o->obj, "type") : NULL;
	const char *crt = tw_k8s_ing_jstr(data, "tls.crt"), *kp = tw_k8s_ing_jstr(data, "tls.key");
	struct tw_conf_certpair *p = &s->pair;
	int rc;
	if (o == NULL) {
		snprintf(s->why, sizeof s->why, "Secret %s not found", key);
	} else if (type != NULL && strcmp(type, "kubernetes.io/tls") != 0) {
		snprintf(s->why, sizeof s->why, "Secret %s has type %.60s, not kubernetes.io/tls", key, type);
	} else if (crt == NULL || kp == NULL) {
		snprintf(s->why, sizeof s->why, "Secret %s lacks tls.crt or tls.key", key);
	} else if ((rc = b64_decode(&t->cfg->arena, crt, &p->cert_pem, &p->cert_pem_len)) < 0 ||
	           (rc = b64_decode(&t->cfg->arena, kp, &p->key_pem, &p->key_pem_len)) < 0) {
		if (rc == TW_ENOMEM)
			return rc;
		snprintf(s->why, sizeof s->why, "Secret %s: data is not base64", key);
	} else {
		p->cert = tw_k8s_ing_sfmt(&t->cfg->arena, "secret:%s (tls.crt)", key);
		p->key = tw_k8s_ing_sfmt(&t->cfg->arena, "secret:%s (tls.key)", key);
		if (p->cert == NULL || p->key == NULL)
			return TW_ENOMEM;
		int kt, which;
		char why[256];
		if (tw_tls_pair_check_mem(p, &kt, &which, why, sizeof why) < 0)
			snprintf(s->why, sizeof s->why, "%s", why);
		else
			s->ok = 1;
	}
	*out = s;
	return 0;
}

/* Is Secret ns/name a usable kubernetes.io/tls pair? 1 yes, 0 no (why set),
 * TW_ENOMEM. The answer is cached for the rest of the translation. */
int tw_k8s_ing_secret_check(struct tr *t, const char *ns, const char *name, char *why, size_t wl)
{
	const struct secret_state *ss;
	int rc = get_secret(t, ns, name, &ss);
	if (rc < 0)
		return rc;
	if (!ss->ok)
		snprintf(why, wl, "%s", ss->why);
	return ss->ok;
}

static const struct tls_entry *tls_find(const struct tr *t, const char *host)
{
	const struct tls_entry *x = t->tls.p;
	size_t lo = 0, hi = t->tls.n;
	while (lo < hi) { /* first entry of host: the winner */
		size_t mid = lo + (hi - lo) / 2;
		if (strcmp(x[mid].host, host) < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo < t->tls.n && strcmp(x[lo].host, host) == 0 ? &x[lo] : NULL;
}

/* Exact TLS host, else a "*.suffix" TLS host one label above an exact host,
 * when the Ingress that lists it also has rules for the host (run: the
 * host's entries): a wildcard never turns on TLS for other Ingresses' hosts. */
static const struct tls_entry *tls_for(const struct tr *t, const char *host, const struct entry *run, size_t n)
{
	const struct tls_entry *x = tls_find(t, host);
	const char *dot = strchr(host, '.');
	if (x != NULL || host[0] == '*' || dot == NULL || dot == host)
		return x;
	char w[300];
	snprintf(w, sizeof w, "*%s", dot);
	if ((x = tls_find(t, w)) == NULL)
		return NULL;
	for (size_t k = 0; k < n; k++)
		if (!run[k].lost && run[k].ing == x->ing)
			return x;
	return NULL;
}

int tw_k8s_ing_site_tls(struct tr *t, struct tw_conf_site *s, const char *host, size_t owner, const struct entry *run,
                    size_t nrun)
{
	const struct tls_entry *x = host[0] ? tls_for(t, host, run, nrun) : NULL;
	struct tw_config *cfg = t->cfg;
	s->tls_public = host[0] && !tw_tls_name_is_internal(host);
	s->tls_mode = TW_TLS_OFF;
	if (x != NULL && !cfg->has_https) {
		tw_k8s_ing_note(t, &t->ings[x->ing], "TLS for %s: no HTTPS listener (served over HTTP only)", host);
	} else if (x != NULL && x->secret != NULL) {
		const struct secret_state *ss;
		int rc = get_secret(t, t->ings[x->ing].ns, x->secret, &ss);
		if (rc < 0)
			return rc;
		if (ss->ok) {
			s->tls_mode = TW_TLS_FILES;
			if ((s->certs = tw_arena_alloc(&cfg->arena, sizeof *s->certs)) == NULL)
				return TW_ENOMEM;
			*s->certs = ss->pair; /* the PEM bytes are shared, read-only */
			s->ncerts = 1;
		} else {
			s->tls_mode = TW_TLS_INTERNAL;
			tw_k8s_ing_note(t, &t->ings[x->ing], "TLS for %s: %s: serving the default (internal CA) certificate", host,
			     ss->why);
		}
	} else if (x != NULL) {
		s->tls_mode = cfg->has_acme ? TW_TLS_ACME : TW_TLS_INTERNAL;
		if (!cfg->has_acme)
			tw_k8s_ing_note(t, &t->ings[x->ing], "TLS for %s without secretName needs acme: (internal CA certificate)", host);
	}
	s->tls_effective = s->tls_mode;
	const struct ann *an = &t->ings[owner].ann;
	s->hsts = s->tls_effective != TW_TLS_OFF && (s->tls_public || cfg->tls.hsts_internal);
	if (an->hsts >= 0)
		s->hsts = s->tls_effective != TW_TLS_OFF && an->hsts;
	s->no_redirect = an->ssl_redirect == 0;
	return 0;
}
