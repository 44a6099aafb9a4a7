/* manager.c — issuance and renewal of ACME certificates. See manager.h. */
#include "acme/manager.h"

#include "acme/jws.h"
#include "acme/renew.h"
#include "acme/x509.h"
#include "core/log.h"

#include <jansson.h>
#include <openssl/rand.h>
#include <openssl/sha.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#define LOCK_LEASE_MS (10u * 60 * 1000)

static const char *const state_names[] = {"pending", "valid", "renewing", "failing"};

const char *tw_acme_cert_state_name(enum tw_acme_cert_state s)
{
	return (unsigned)s < 4 ? state_names[s] : "unknown";
}

/* ---- shared steps ----------------------------------------------------- */

struct session {
	struct tw_acme_client *c;
	EVP_PKEY *acct;
	int reused;
};

static void session_close(struct session *s)
{
	tw_acme_client_free(s->c);
	EVP_PKEY_free(s->acct);
	memset(s, 0, sizeof *s);
}

/* Store prefix of the account for one directory URL: accounts/<sha256[0..8] hex>. */
static void account_prefix(const char *directory, char *out, size_t cap)
{
	unsigned char md[SHA256_DIGEST_LENGTH];
	SHA256((const unsigned char *)directory, strlen(directory), md);
	snprintf(out, cap, "accounts/%02x%02x%02x%02x%02x%02x%02x%02x", md[0], md[1], md[2], md[3],
	         md[4], md[5], md[6], md[7]);
}

static int session_open(const struct tw_conf_acme *conf, struct tw_acme_store *st,
                        const atomic_int *cancel, struct session *s, struct tw_err *err)
{
	struct tw_acme_client_opts co = {
	    .directory = conf->directory,
	    .ca_roots = (const char *const *)conf->ca_roots,
	    .nca_roots = conf->nca_roots,
	    .email = conf->email,
	    .eab_kid = conf->has_eab ? conf->eab_kid : NULL,
	    .eab_hmac_key = conf->has_eab ? conf->eab_hmac_key : NULL,
	    .cancel = cancel,
	};
	char pre[64], kkey[96], ukey[96];
	struct tw_dbuf kb, ub;
	struct tw_acme_lock *lk = NULL;
	char *url = NULL;
	int rc;
	memset(s, 0, sizeof *s);
	tw_dbuf_init(&kb, 64 * 1024);
	tw_dbuf_init(&ub, 4096);
	account_prefix(conf->directory, pre, sizeof pre);
	snprintf(kkey, sizeof kkey, "%s/key.pem", pre);
	snprintf(ukey, sizeof ukey, "%s/url", pre);
	if ((rc = tw_acme_client_new(&co, &s->c, err)) < 0)
		goto out;
	/* One account per CA even when processes sharing the store start at once. */
	if ((rc = tw_acme_store_lock(st, "_account", LOCK_LEASE_MS, 60000, &lk, err)) < 0)
		goto out;
	rc = tw_acme_store_get(st, kkey, &kb, err);
	if (rc == 0) {
		if ((rc = tw_jws_key_from_pem(kb.data, kb.len, &s->acct)) < 0) {
			tw_err_set(err, TW_ECORRUPT, "stored account key %s is unreadable", kkey);
			goto out;
		}
	} else if (rc == TW_ENOENT) {
		char *pem = NULL;
		size_t pl = 0;
		if ((rc = tw_jws_key_new_p256(&s->acct)) < 0 ||
		    (rc = tw_jws_key_to_pem(s->acct, &pem, &pl)) < 0)
			goto out;
		rc = tw_acme_store_put(st, kkey, pem, pl, 1, err);
		OPENSSL_cleanse(pem, pl);
		free(pem);
		if (rc < 0)
			goto out;
	} else {
		goto out;
	}
	rc = tw_acme_store_get(st, ukey, &ub, err);
	if (rc == 0 && ub.len > 0) {
		s->reused = 1;
		tw_debug("[acme] reusing account %s", ub.data);
		rc = tw_acme_client_account(s->c, s->acct, ub.data, NULL, err);
	} else if (rc == 0 || rc == TW_ENOENT) {
		rc = tw_acme_client_account(s->c, s->acct, NULL, &url, err);
		if (rc == 0)
			rc = tw_acme_store_put(st, ukey, url, strlen(url), 0, err);
	}
out:
	tw_acme_store_unlock(st, lk);
	free(url);
	tw_dbuf_free(&kb);
	tw_dbuf_free(&ub);
	if (rc < 0)
		session_close(s);
	return rc;
}

static double jitter(void)
{
	uint32_t r;
	if (RAND_bytes((unsigned char *)&r, sizeof r) != 1)
		return 0.5;
	return (double)r / 4294967296.0;
}

/* When to renew the certificate described by ci (ARI when offered). */
static time_t plan_renewal(struct tw_acme_client *c, const struct tw_acme_certinfo *ci)
{
	struct tw_acme_window w = {0, 0};
	uint64_t ra = 0;
	int has_ari = 0;
	if (c && ci->ari_id[0]) {
		struct tw_err e = {0};
		int rc = tw_acme_client_renewal_info(c, ci->ari_id, &w, &ra, &e);
		if (rc == 0)
			has_ari = 1;
		else if (rc != TW_EUNSUPP)
			tw_warn("[acme] renewalInfo: %s (using the default window)", e.msg);
	}
	return tw_acme_renew_at(ci->not_before, ci->not_after, has_ari, w, jitter());
}

static int meta_names_match(struct tw_acme_store *st, const char *sname, const char *const *names,
                            size_t n)
{
	char key[300];
	struct tw_dbuf b;
	int match = 0;
	tw_dbuf_init(&b, 256 * 1024);
	snprintf(key, sizeof key, "certs/%s/meta.json", sname);
	if (tw_acme_store_get(st, key, &b, NULL) == 0) {
		json_t *j = json_loadb(b.data, b.len, 0, NULL);
		json_t *a = json_object_get(j, "names");
		if (json_is_array(a) && json_array_size(a) == n) {
			match = 1;
			for (size_t i = 0; i < n && match; i++) {
				const char *s = json_string_value(json_array_get(a, i));
				match = s && strcmp(s, names[i]) == 0;
			}
		}
		json_decref(j);
	}
	tw_dbuf_free(&b);
	return match;
}

int tw_acme_stored_cert(struct tw_acme_store *s, const char *store_name, struct tw_dbuf *chain,
                        struct tw_dbuf *key, struct tw_err *err)
{
	char k[300];
	snprintf(k, sizeof k, "certs/%s/chain.pem", store_name);
	int rc = tw_acme_store_get(s, k, chain, err);
	if (rc == 0 && key) {
		snprintf(k, sizeof k, "certs/%s/key.pem", store_name);
		rc = tw_acme_store_get(s, k, key, err);
	}
	return rc;
}

static int store_cert(struct tw_acme_store *st, const char *sname, const char *const *names,
                      size_t n, const struct tw_acme_issue_res *r, const char *directory,
                      struct tw_err *err)
{
	char k[300];
	int rc;
	json_t *m = json_object(), *a = json_array();
	char *txt = NULL;
	for (size_t i = 0; i < n; i++)
		json_array_append_new(a, json_string(names[i]));
	json_object_set_new(m, "names", a);
	json_object_set_new(m, "directory", json_string(directory));
	json_object_set_new(m, "issued_at", json_integer((json_int_t)time(NULL)));
	txt = json_dumps(m, JSON_INDENT(1));
	json_decref(m);
	if (txt == NULL)
		return TW_ENOMEM;
	/* Key first: a reader that sees the new chain finds its key. */
	snprintf(k, sizeof k, "certs/%s/key.pem", sname);
	rc = tw_acme_store_put(st, k, r->key_pem, r->key_len, 1, err);
	if (rc == 0) {
		snprintf(k, sizeof k, "certs/%s/chain.pem", sname);
		rc = tw_acme_store_put(st, k, r->chain_pem, r->chain_len, 0, err);
	}
	if (rc == 0) {
		snprintf(k, sizeof k, "certs/%s/meta.json", sname);
		rc = tw_acme_store_put(st, k, txt, strlen(txt), 0, err);
	}
	free(txt);
	return rc;
}

/* Stored certificate of sname for exactly these names: info + 0, else TW_ENOENT. */
static int stored_info(struct tw_acme_store *st, const char *sname, const char *const *names,
                       size_t n, struct tw_acme_certinfo *ci)
{
	struct tw_dbuf b;
	int rc;
	tw_dbuf_init(&b, TW_ACME_STORE_VALUE_MAX);
	rc = tw_acme_stored_cert(st, sname, &b, NULL, NULL);
	if (rc == 0)
		rc = tw_acme_x509_info(b.data, b.len, ci);
	if (rc == 0 && !meta_names_match(st, sname, names, n))
		rc = TW_ENOENT;
	tw_dbuf_free(&b);
	return rc < 0 ? TW_ENOENT : 0;
}

/* Issue under the lock. *issued = 0 when a good certificate was found. */
static int obtain_locked(const struct tw_acme_obtain_opts *o, struct session *sess,
                         const char *const *names, size_t n, const char *sname,
                         struct tw_acme_obtain_result *res, struct tw_err *err)
{
	struct tw_acme_certinfo old;
	int have_old = stored_info(o->store, sname, names, n, &old) == 0;
	time_t now = time(NULL);
	int rc = 0;
	/* A CA that cannot be reached does not matter while the stored
	 * certificate is not due (by the default window when ARI is unreachable). */
	if (sess->c == NULL)
		rc = session_open(o->conf, o->store, o->cancel, sess, err);
	if (rc < 0 && !(have_old && !o->force))
		return rc;
	res->account_reused = sess->reused;
	if (have_old && !o->force) {
		time_t at = plan_renewal(sess->c, &old);
		if (now < at && now < old.not_after) {
			if (rc < 0)
				tw_debug("[acme] %s not due; CA not reached: %s", names[0],
				         err ? err->msg : "");
			res->issued = 0;
			res->info = old;
			res->renew_at = at;
			return 0;
		}
	}
	if (rc < 0)
		return rc;
	const struct tw_acme_dir *d;
	if ((rc = tw_acme_client_dir(sess->c, &d, err)) < 0)
		return rc;
	struct tw_acme_issue_req req = {
	    .names = names,
	    .nnames = n,
	    .challenges = o->conf->nchallenges ? (const char *const *)o->conf->challenges : NULL,
	    .nchallenges = o->conf->nchallenges,
	    .responder = o->responder,
	    .dns_hook = o->conf->dns_hook,
	    .key_type = o->key_type,
	    .replaces = have_old && old.ari_id[0] && d->renewal_info ? old.ari_id : NULL,
	    .profile = o->conf->profile,
	    .preferred_issuer = o->preferred_issuer,
	    .timeout_ms = o->issue_timeout_ms,
	};
	struct tw_acme_issue_res ir;
	rc = tw_acme_client_issue(sess->c, &req, &ir, err);
	if (rc < 0 && sess->reused && err && strstr(err->msg, "accountDoesNotExist") != NULL) {
		/* The CA forgot the stored account (a test CA restarted, or the account
		 * was deleted): register again with the same key and retry once. */
		char pre[64], ukey[96];
		tw_warn("[acme] the CA does not know the stored account; registering again");
		account_prefix(o->conf->directory, pre, sizeof pre);
		snprintf(ukey, sizeof ukey, "%s/url", pre);
		tw_acme_store_del(o->store, ukey, NULL);
		session_close(sess);
		rc = session_open(o->conf, o->store, o->cancel, sess, err);
		if (rc == 0)
			rc = tw_acme_client_issue(sess->c, &req, &ir, err);
	}
	if (rc < 0)
		return rc;
	rc = store_cert(o->store, sname, names, n, &ir, o->conf->directory, err);
	if (rc == 0)
		rc = tw_acme_x509_info(ir.chain_pem, ir.chain_len, &res->info);
	tw_acme_issue_res_clear(&ir);
	if (rc < 0)
		return rc;
	res->issued = 1;
	res->renew_at = plan_renewal(sess->c, &res->info);
	tw_info("[acme] certificate for %s%s stored (expires %ld)", names[0],
	        n > 1 ? " and more" : "", (long)res->info.not_after);
	return 0;
}

int tw_acme_obtain(const struct tw_acme_obtain_opts *o, const char *const *names, size_t nnames,
                   struct tw_acme_obtain_result *res, struct tw_err *err)
{
	struct session sess;
	struct tw_acme_lock *lk = NULL;
	int rc;
	memset(res, 0, sizeof *res);
	memset(&sess, 0, sizeof sess);
	if (nnames == 0)
		return tw_err_set(err, TW_EINVAL, "no names");
	if (tw_acme_store_cert_name(names[0], res->store_name, sizeof res->store_name) < 0)
		return tw_err_set(err, TW_EINVAL, "bad name \"%s\"", names[0]);
	uint64_t wait = o->issue_timeout_ms ? o->issue_timeout_ms : 180000;
	if ((rc = tw_acme_store_lock(o->store, res->store_name, LOCK_LEASE_MS, wait, &lk, err)) <
	    0) {
		if (rc == TW_ELOCKED)
			tw_err_set(err, rc, "%s is being issued by another process", names[0]);
		return rc;
	}
	rc = obtain_locked(o, &sess, names, nnames, res->store_name, res, err);
	if (sess.c)
		tw_acme_client_stats(sess.c, &res->stats);
	tw_acme_store_unlock(o->store, lk);
	session_close(&sess);
	return rc;
}

int tw_acme_revoke_stored(const struct tw_acme_obtain_opts *o, const char *store_name,
                          unsigned reason, struct tw_err *err)
{
	struct session sess;
	struct tw_dbuf b;
	int rc;
	tw_dbuf_init(&b, TW_ACME_STORE_VALUE_MAX);
	if ((rc = tw_acme_stored_cert(o->store, store_name, &b, NULL, err)) < 0) {
		tw_dbuf_free(&b);
		return rc == TW_ENOENT ? tw_err_set(err, rc, "no stored certificate %s", store_name)
		                       : rc;
	}
	rc = session_open(o->conf, o->store, o->cancel, &sess, err);
	if (rc == 0) {
		rc = tw_acme_client_revoke(sess.c, b.data, b.len, reason, err);
		session_close(&sess);
	}
	if (rc == 0) {
		char k[300];
		snprintf(k, sizeof k, "certs/%s/chain.pem", store_name);
		tw_acme_store_del(o->store, k, NULL);
		snprintf(k, sizeof k, "certs/%s/key.pem", store_name);
		tw_acme_store_del(o->store, k, NULL);
	}
	tw_dbuf_free(&b);
	return rc;
}

/* ---- the manager thread ----------------------------------------------- */

struct mcert {
	char **names;
	size_t nnames;
	char sname[256];
	struct tw_acme_cert_status st;
	int installed;        /* stored cert checked at least once */
	int force;            /* renewal requested (store marker certs/NAME/renew) */
	uint64_t retry_after; /* from the last failure */
};

#define MARKER_POLL_S 5 /* how often the store is asked for renewal requests */

struct tw_acme_mgr {
	struct tw_arena arena; /* copied config */
	struct tw_conf_acme conf;
	struct tw_acme_obtain_opts oo;
	tw_acme_install_fn on_cert;
	void *ud;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	pthread_t thr;
	int started;
	atomic_int stop;
	struct mcert **certs; /* each allocated alone: pointers stay valid while certs grows */
	size_t n, cap;
	unsigned long ok_total, fail_total;
	struct session sess;
};

static char *adup(struct tw_arena *a, const char *s)
{
	return s ? tw_arena_strdup(a, s) : NULL;
}

static int copy_conf(struct tw_arena *a, const struct tw_conf_acme *src, struct tw_conf_acme *dst)
{
	memset(dst, 0, sizeof *dst);
	dst->email = adup(a, src->email);
	dst->directory = adup(a, src->directory);
	dst->dns_hook = adup(a, src->dns_hook);
	dst->has_eab = src->has_eab;
	dst->eab_kid = adup(a, src->eab_kid);
	dst->eab_hmac_key = adup(a, src->eab_hmac_key);
	dst->profile = adup(a, src->profile);
	dst->retry_min_ms = src->retry_min_ms;
	dst->store = adup(a, src->store);
	dst->ca_roots = tw_arena_alloc(a, (src->nca_roots + 1) * sizeof(char *));
	dst->challenges = tw_arena_alloc(a, (src->nchallenges + 1) * sizeof(char *));
	if (dst->directory == NULL || dst->ca_roots == NULL || dst->challenges == NULL)
		return TW_ENOMEM;
	for (size_t i = 0; i < src->nca_roots; i++)
		if ((dst->ca_roots[dst->nca_roots++] = adup(a, src->ca_roots[i])) == NULL)
			return TW_ENOMEM;
	for (size_t i = 0; i < src->nchallenges; i++)
		if ((dst->challenges[dst->nchallenges++] = adup(a, src->challenges[i])) == NULL)
			return TW_ENOMEM;
	return 0;
}

int tw_acme_mgr_new(const struct tw_acme_mgr_opts *o, struct tw_acme_mgr **out, struct tw_err *err)
{
	struct tw_acme_mgr *m = calloc(1, sizeof *m);
	if (m == NULL)
		return TW_ENOMEM;
	tw_arena_init(&m->arena, 4096);
	if (o->conf == NULL || o->store == NULL || copy_conf(&m->arena, o->conf, &m->conf) < 0) {
		tw_arena_free(&m->arena);
		free(m);
		return tw_err_set(err, o->conf && o->store ? TW_ENOMEM : TW_EINVAL,
		                  "acme manager: conf and store are required");
	}
	m->oo.conf = &m->conf;
	m->oo.store = o->store;
	m->oo.responder = o->responder;
	m->oo.key_type = o->key_type;
	m->oo.preferred_issuer = adup(&m->arena, o->preferred_issuer);
	m->oo.issue_timeout_ms = o->issue_timeout_ms;
	m->oo.cancel = &m->stop;
	m->on_cert = o->on_certificate;
	m->ud = o->ud;
	pthread_mutex_init(&m->mu, NULL);
	pthread_cond_init(&m->cv, NULL);
	*out = m;
	return 0;
}

int tw_acme_mgr_add(struct tw_acme_mgr *m, const char *const *names, size_t nnames,
                    struct tw_err *err)
{
	char sname[256];
	if (nnames == 0 || nnames > TW_ACME_MAX_LIST ||
	    tw_acme_store_cert_name(names[0], sname, sizeof sname) < 0)
		return tw_err_set(err, TW_EINVAL, "bad certificate names");
	int rc = 0;
	pthread_mutex_lock(&m->mu);
	for (size_t i = 0; i < m->n; i++)
		if (strcmp(m->certs[i]->sname, sname) == 0) {
			rc = tw_err_set(err, TW_EEXIST, "certificate %s already managed", names[0]);
			goto out;
		}
	if (m->n == m->cap) {
		size_t nc = m->cap ? m->cap * 2 : 8;
		struct mcert **nm = realloc(m->certs, nc * sizeof *nm);
		if (nm == NULL) {
			rc = TW_ENOMEM;
			goto out;
		}
		m->certs = nm;
		m->cap = nc;
	}
	struct mcert *c = tw_arena_alloc(&m->arena, sizeof *c);
	if (c == NULL) {
		rc = TW_ENOMEM;
		goto out;
	}
	c->names = tw_arena_alloc(&m->arena, nnames * sizeof(char *));
	if (c->names == NULL) {
		rc = TW_ENOMEM;
		goto out;
	}
	for (size_t i = 0; i < nnames; i++)
		if ((c->names[c->nnames++] = tw_arena_strdup(&m->arena, names[i])) == NULL) {
			rc = TW_ENOMEM;
			goto out;
		}
	memcpy(c->sname, sname, sizeof sname);
	snprintf(c->st.name, sizeof c->st.name, "%s", names[0]);
	c->st.nnames = nnames;
	m->certs[m->n++] = c;
	pthread_cond_signal(&m->cv);
out:
	pthread_mutex_unlock(&m->mu);
	return rc;
}

static void install(struct tw_acme_mgr *m, struct mcert *c)
{
	struct tw_dbuf ch, k;
	tw_dbuf_init(&ch, TW_ACME_STORE_VALUE_MAX);
	tw_dbuf_init(&k, 64 * 1024);
	if (tw_acme_stored_cert(m->oo.store, c->sname, &ch, &k, NULL) == 0 && m->on_cert)
		m->on_cert(m->ud, (const char *const *)c->names, c->nnames, ch.data, ch.len, k.data,
		           k.len);
	OPENSSL_cleanse(k.data, k.len);
	tw_dbuf_free(&ch);
	tw_dbuf_free(&k);
}

/* One look at one certificate (manager thread, without m->mu held). */
static void process(struct tw_acme_mgr *m, struct mcert *c)
{
	struct tw_acme_certinfo ci;
	time_t now = time(NULL);
	struct tw_err e = {0};
	/* First look: install what the store has, without asking the CA. */
	if (!c->installed) {
		c->installed = 1;
		if (stored_info(m->oo.store, c->sname, (const char *const *)c->names, c->nnames,
		                &ci) == 0 &&
		    ci.not_after > now) {
			install(m, c);
			pthread_mutex_lock(&m->mu);
			c->st.state = TW_ACME_CERT_VALID;
			c->st.not_after = ci.not_after;
			pthread_mutex_unlock(&m->mu);
		}
	}
	pthread_mutex_lock(&m->mu);
	if (c->st.state != TW_ACME_CERT_PENDING && c->st.state != TW_ACME_CERT_FAILING)
		c->st.state = TW_ACME_CERT_RENEWING;
	pthread_mutex_unlock(&m->mu);

	struct tw_acme_obtain_result res;
	struct tw_acme_lock *lk = NULL;
	memset(&res, 0, sizeof res);
	pthread_mutex_lock(&m->mu);
	m->oo.force = c->force; /* m->oo is the manager thread's own */
	time_t had = c->st.not_after;
	pthread_mutex_unlock(&m->mu);
	int rc = tw_acme_store_lock(m->oo.store, c->sname, LOCK_LEASE_MS, 0, &lk, &e);
	if (rc == 0) {
		rc = obtain_locked(&m->oo, &m->sess, (const char *const *)c->names, c->nnames,
		                   c->sname, &res, &e);
		tw_acme_store_unlock(m->oo.store, lk);
	}
	m->oo.force = 0;
	pthread_mutex_lock(&m->mu);
	if (rc == 0)
		c->force = 0;
	if (rc == 0) {
		c->st.state = TW_ACME_CERT_VALID;
		c->st.not_after = res.info.not_after;
		c->st.renew_at = res.renew_at;
		/* Look again at the renewal time, and at least every 6 h (ARI may move it). */
		c->st.next_attempt = res.renew_at < now + 6 * 3600 ? res.renew_at : now + 6 * 3600;
		c->st.failures = 0;
		c->st.last_error[0] = '\0';
		if (res.issued)
			m->ok_total++;
	} else if (rc == TW_ELOCKED) {
		/* Another process is issuing it: look again soon and pick it up. */
		c->st.next_attempt = now + 5;
	} else {
		uint64_t ra = m->sess.c ? tw_acme_client_retry_after(m->sess.c) : 0;
		c->st.failures++;
		c->st.state = TW_ACME_CERT_FAILING;
		uint64_t min_s = m->conf.retry_min_ms ? (m->conf.retry_min_ms + 999) / 1000 : 60;
		c->st.next_attempt = now + (time_t)tw_acme_backoff_from(c->st.failures, ra, min_s);
		snprintf(c->st.last_error, sizeof c->st.last_error, "%s", e.msg);
		m->fail_total++;
	}
	pthread_mutex_unlock(&m->mu);
	/* Issued here, or found in the store newer than what is installed
	 * (another process sharing the store issued it). */
	if (rc == 0 && (res.issued || res.info.not_after != had))
		install(m, c);
	else if (rc < 0 && rc != TW_ELOCKED) {
		tw_warn("[acme] %s: %s; next attempt in %lds", c->st.name, e.msg,
		        (long)(c->st.next_attempt - now));
		/* A broken session (stale account, CA restarted) is rebuilt next time. */
		session_close(&m->sess);
	}
}

/* Renewal requests left in the store by `tapwork cert renew` (another
 * process): certs/NAME/renew. Taken (deleted) here; the certificate is
 * then renewed at once even when not due. Called without m->mu held. */
static void take_markers(struct tw_acme_mgr *m)
{
	pthread_mutex_lock(&m->mu);
	size_t n = m->n;
	pthread_mutex_unlock(&m->mu);
	for (size_t i = 0; i < n && !atomic_load(&m->stop); i++) {
		pthread_mutex_lock(&m->mu);
		struct mcert *c = m->certs[i];
		pthread_mutex_unlock(&m->mu);
		char k[300];
		struct tw_dbuf b;
		tw_dbuf_init(&b, 4096);
		snprintf(k, sizeof k, "certs/%s/renew", c->sname);
		if (tw_acme_store_get(m->oo.store, k, &b, NULL) == 0 &&
		    tw_acme_store_del(m->oo.store, k, NULL) == 0) {
			tw_info("[acme] %s: renewal requested (tapwork cert renew)", c->st.name);
			pthread_mutex_lock(&m->mu);
			c->force = 1;
			c->st.next_attempt = 0;
			pthread_mutex_unlock(&m->mu);
		}
		tw_dbuf_free(&b);
	}
}

static void *mgr_main(void *arg)
{
	struct tw_acme_mgr *m = arg;
	time_t markers_at = 0;
	pthread_mutex_lock(&m->mu);
	while (!atomic_load(&m->stop)) {
		time_t now = time(NULL), next = now + 3600;
		if (now >= markers_at) {
			markers_at = now + MARKER_POLL_S;
			pthread_mutex_unlock(&m->mu);
			take_markers(m);
			pthread_mutex_lock(&m->mu);
			continue;
		}
		if (next > markers_at)
			next = markers_at;
		struct mcert *due = NULL;
		for (size_t i = 0; i < m->n; i++) {
			struct mcert *c = m->certs[i];
			if (c->st.next_attempt <= now && due == NULL)
				due = c;
			if (c->st.next_attempt < next)
				next = c->st.next_attempt;
		}
		if (due) {
			pthread_mutex_unlock(&m->mu);
			process(m, due);
			pthread_mutex_lock(&m->mu);
			continue;
		}
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_sec += next > now ? next - now : 1;
		pthread_cond_timedwait(&m->cv, &m->mu, &ts);
	}
	pthread_mutex_unlock(&m->mu);
	return NULL;
}

int tw_acme_mgr_start(struct tw_acme_mgr *m, struct tw_err *err)
{
	if (m->started)
		return 0;
	if (pthread_create(&m->thr, NULL, mgr_main, m) != 0)
		return tw_err_set(err, TW_ENOMEM, "cannot start the acme thread");
	m->started = 1;
	return 0;
}

int tw_acme_mgr_renew_now(struct tw_acme_mgr *m, const char *name)
{
	int rc = TW_ENOENT;
	pthread_mutex_lock(&m->mu);
	for (size_t i = 0; i < m->n; i++)
		if (strcmp(m->certs[i]->st.name, name) == 0) {
			m->certs[i]->st.next_attempt = 0;
			m->certs[i]->st.renew_at = 0;
			rc = 0;
		}
	pthread_cond_signal(&m->cv);
	pthread_mutex_unlock(&m->mu);
	return rc;
}

int tw_acme_mgr_status(struct tw_acme_mgr *m, struct tw_acme_cert_status *out, size_t cap,
                       size_t *n)
{
	pthread_mutex_lock(&m->mu);
	for (size_t i = 0; i < m->n && i < cap; i++)
		out[i] = m->certs[i]->st;
	*n = m->n;
	pthread_mutex_unlock(&m->mu);
	return 0;
}

int tw_acme_mgr_metrics(struct tw_acme_mgr *m, struct tw_dbuf *out)
{
	int rc = 0;
	time_t now = time(NULL);
	pthread_mutex_lock(&m->mu);
	rc = tw_dbuf_appendf(out, "# HELP tapwork_cert_expiry_seconds Seconds until the "
	                          "certificate expires (negative = expired).\n"
	                          "# TYPE tapwork_cert_expiry_seconds gauge\n");
	for (size_t i = 0; i < m->n && rc == 0; i++)
		if (m->certs[i]->st.not_after)
			rc = tw_dbuf_appendf(out, "tapwork_cert_expiry_seconds{name=\"%s\"} %ld\n",
			                     m->certs[i]->st.name,
			                     (long)(m->certs[i]->st.not_after - now));
	if (rc == 0)
		rc = tw_dbuf_appendf(out,
		                     "# HELP tapwork_acme_issuance_total Certificate issuances.\n"
		                     "# TYPE tapwork_acme_issuance_total counter\n"
		                     "tapwork_acme_issuance_total{result=\"success\"} %lu\n"
		                     "tapwork_acme_issuance_total{result=\"failure\"} %lu\n",
		                     m->ok_total, m->fail_total);
	pthread_mutex_unlock(&m->mu);
	return rc;
}

void tw_acme_mgr_free(struct tw_acme_mgr *m)
{
	if (m == NULL)
		return;
	if (m->started) {
		pthread_mutex_lock(&m->mu);
		atomic_store(&m->stop, 1);
		pthread_cond_signal(&m->cv);
		pthread_mutex_unlock(&m->mu);
		pthread_join(m->thr, NULL);
	}
	session_close(&m->sess);
	pthread_mutex_destroy(&m->mu);
	pthread_cond_destroy(&m->cv);
	free(m->certs);
	tw_arena_free(&m->arena);
	free(m);
}
