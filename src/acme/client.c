/* client.c — RFC 8555 ACME client over libcurl. See client.h and
 * docs/internals/acme.md. */
#include "acme/client.h"

#include "acme/jws.h"
#include "acme/x509.h"
#include "cli/cli.h"
#include "core/dbuf.h"
#include "core/log.h"

#include <curl/curl.h>
#include <jansson.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#define MAX_LINKS 8
#define MAX_PENDING TW_ACME_MAX_LIST

struct tw_acme_client {
	char *directory;
	char **ca_roots;
	size_t nca_roots;
	char *email, *eab_kid, *eab_hmac_key;
	unsigned timeout_ms;
	const atomic_int *cancel;

	CURL *curl;
	struct tw_arena arena; /* the directory */
	struct tw_acme_dir dir;
	int have_dir;
	char *nonce;
	EVP_PKEY *key; /* borrowed */
	char *kid;     /* account URL */
	uint64_t retry_after;
	struct tw_acme_client_stats stats;
};

/* One HTTP response. */
struct resp {
	long status;
	struct tw_dbuf body;
	char *location;
	char ctype[128];
	char *alt[MAX_LINKS]; /* Link rel="alternate" */
	size_t nalt;
	uint64_t retry_after;
	int has_retry_after;
};

static void resp_init(struct resp *r)
{
	memset(r, 0, sizeof *r);
	tw_dbuf_init(&r->body, TW_ACME_MAX_DOC);
}

static void resp_free(struct resp *r)
{
	tw_dbuf_free(&r->body);
	free(r->location);
	for (size_t i = 0; i < r->nalt; i++)
		free(r->alt[i]);
	memset(r, 0, sizeof *r);
}

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static void curl_init_once(void)
{
	curl_global_init(CURL_GLOBAL_DEFAULT);
}

void tw_acme_issue_res_clear(struct tw_acme_issue_res *r)
{
	if (r == NULL)
		return;
	free(r->chain_pem);
	if (r->key_pem) {
		OPENSSL_cleanse(r->key_pem, r->key_len);
		free(r->key_pem);
	}
	memset(r, 0, sizeof *r);
}

static char *xstrdup(const char *s)
{
	return s ? strdup(s) : NULL;
}

int tw_acme_client_new(const struct tw_acme_client_opts *o, struct tw_acme_client **out,
                       struct tw_err *err)
{
	if (o->directory == NULL || strncmp(o->directory, "https://", 8) != 0)
		return tw_err_set(err, TW_EINVAL, "the ACME directory must be an https:// URL");
	if ((o->eab_kid == NULL) != (o->eab_hmac_key == NULL))
		return tw_err_set(err, TW_EINVAL, "EAB needs both kid and hmac_key");
	pthread_once(&curl_once, curl_init_once);
	struct tw_acme_client *c = calloc(1, sizeof *c);
	if (c == NULL)
		return TW_ENOMEM;
	tw_arena_init(&c->arena, 4096);
	c->directory = xstrdup(o->directory);
	c->email = xstrdup(o->email);
	c->eab_kid = xstrdup(o->eab_kid);
	c->eab_hmac_key = xstrdup(o->eab_hmac_key);
	c->timeout_ms = o->request_timeout_ms ? o->request_timeout_ms : 30000;
	c->cancel = o->cancel;
	c->curl = curl_easy_init();
	if (o->nca_roots) {
		c->ca_roots = calloc(o->nca_roots, sizeof(char *));
		if (c->ca_roots)
			for (size_t i = 0; i < o->nca_roots; i++)
				if ((c->ca_roots[c->nca_roots++] = strdup(o->ca_roots[i])) == NULL)
					break;
	}
	if (c->directory == NULL || c->curl == NULL || (o->email && !c->email) ||
	    (o->eab_kid && (!c->eab_kid || !c->eab_hmac_key)) ||
	    (o->nca_roots && (c->ca_roots == NULL || c->ca_roots[o->nca_roots - 1] == NULL))) {
		tw_acme_client_free(c);
		return TW_ENOMEM;
	}
	*out = c;
	return 0;
}

void tw_acme_client_free(struct tw_acme_client *c)
{
	if (c == NULL)
		return;
	if (c->curl)
		curl_easy_cleanup(c->curl);
	for (size_t i = 0; i < c->nca_roots; i++)
		free(c->ca_roots[i]);
	free(c->ca_roots);
	free(c->directory);
	free(c->email);
	free(c->eab_kid);
	if (c->eab_hmac_key) {
		OPENSSL_cleanse(c->eab_hmac_key, strlen(c->eab_hmac_key));
		free(c->eab_hmac_key);
	}
	free(c->nonce);
	free(c->kid);
	tw_arena_free(&c->arena);
	free(c);
}

uint64_t tw_acme_client_retry_after(const struct tw_acme_client *c)
{
	return c->retry_after;
}

void tw_acme_client_stats(const struct tw_acme_client *c, struct tw_acme_client_stats *out)
{
	*out = c->stats;
}

/* ---- HTTP ------------------------------------------------------------ */

static size_t on_body(char *p, size_t sz, size_t n, void *ud)
{
	struct resp *r = ud;
	if (tw_dbuf_append(&r->body, p, sz * n) < 0)
		return 0; /* over the cap: curl aborts the transfer */
	return sz * n;
}

static int hdr_is(const char *line, size_t len, const char *name, const char **val, size_t *vlen)
{
	size_t nl = strlen(name);
	if (len <= nl || line[nl] != ':' || strncasecmp(line, name, nl) != 0)
		return 0;
	const char *v = line + nl + 1, *e = line + len;
	while (v < e && (*v == ' ' || *v == '\t'))
		v++;
	while (e > v && (e[-1] == '\r' || e[-1] == '\n' || e[-1] == ' ' || e[-1] == '\t'))
		e--;
	*val = v;
	*vlen = (size_t)(e - v);
	return 1;
}

/* Link: <url>;rel="alternate", <url2>;rel=up */
static void parse_links(struct resp *r, const char *v, size_t len)
{
	const char *p = v, *end = v + len;
	while (p < end && r->nalt < MAX_LINKS) {
		const char *lt = memchr(p, '<', (size_t)(end - p));
		if (lt == NULL)
			return;
		const char *gt = memchr(lt, '>', (size_t)(end - lt));
		if (gt == NULL)
			return;
		const char *next = memchr(gt, ',', (size_t)(end - gt));
		const char *pe = next ? next : end;
		int alt = 0;
		for (const char *q = gt; q + 3 <= pe; q++)
			if (strncasecmp(q, "rel=", 4) == 0 &&
			    (strncasecmp(q + 4, "\"alternate\"", 11) == 0 ||
			     strncasecmp(q + 4, "alternate", 9) == 0))
				alt = 1;
		size_t ul = (size_t)(gt - lt - 1);
		if (alt && ul > 0 && ul <= TW_ACME_MAX_URL) {
			char *u = strndup(lt + 1, ul);
			if (u)
				r->alt[r->nalt++] = u;
		}
		p = next ? next + 1 : end;
	}
}

struct hctx {
	struct tw_acme_client *c;
	struct resp *r;
};

static size_t on_header(char *p, size_t sz, size_t n, void *ud)
{
	struct hctx *h = ud;
	size_t len = sz * n;
	const char *v;
	size_t vl;
	if (len >= 5 && memcmp(p, "HTTP/", 5) == 0) { /* a new response (after 100/redirect) */
		h->r->has_retry_after = 0;
		return len;
	}
	if (hdr_is(p, len, "Replay-Nonce", &v, &vl)) {
		if (vl > 0 && vl < 256) {
			char *nn = strndup(v, vl);
			if (nn) {
				free(h->c->nonce);
				h->c->nonce = nn;
			}
		}
	} else if (hdr_is(p, len, "Location", &v, &vl)) {
		if (vl <= TW_ACME_MAX_URL) {
			free(h->r->location);
			h->r->location = strndup(v, vl);
		}
	} else if (hdr_is(p, len, "Content-Type", &v, &vl)) {
		if (vl >= sizeof h->r->ctype)
			vl = sizeof h->r->ctype - 1;
		memcpy(h->r->ctype, v, vl);
		h->r->ctype[vl] = '\0';
	} else if (hdr_is(p, len, "Retry-After", &v, &vl)) {
		char tmp[64];
		uint64_t s;
		if (vl < sizeof tmp) {
			memcpy(tmp, v, vl);
			tmp[vl] = '\0';
			if (tw_acme_parse_retry_after(tmp, time(NULL), &s) == 0) {
				h->r->retry_after = s;
				h->r->has_retry_after = 1;
			}
		}
	} else if (hdr_is(p, len, "Link", &v, &vl)) {
		parse_links(h->r, v, vl);
	}
	return len;
}

static CURLcode on_ssl_ctx(CURL *curl, void *sslctx, void *ud)
{
	struct tw_acme_client *c = ud;
	X509_STORE *st = SSL_CTX_get_cert_store((SSL_CTX *)sslctx);
	for (size_t i = 0; i < c->nca_roots; i++)
		if (X509_STORE_load_file(st, c->ca_roots[i]) != 1) {
			tw_error("[acme] cannot load CA roots from %s", c->ca_roots[i]);
			return CURLE_SSL_CACERT_BADFILE;
		}
	return CURLE_OK;
}

/* method: "GET", "HEAD" or "POST" (body = JWS). */
static int http(struct tw_acme_client *c, const char *method, const char *url, const char *body,
                const char *accept, struct resp *r, struct tw_err *err)
{
	CURL *h = c->curl;
	struct curl_slist *hdrs = NULL;
	struct hctx hc = {c, r};
	char ab[128];
	curl_easy_reset(h);
	curl_easy_setopt(h, CURLOPT_URL, url);
	curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "https");
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, (long)c->timeout_ms);
	curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS,
	                 (long)(c->timeout_ms < 10000 ? c->timeout_ms : 10000));
	curl_easy_setopt(h, CURLOPT_USERAGENT, "tapwork/" TW_VERSION " acme");
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, r);
	curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(h, CURLOPT_HEADERDATA, &hc);
	if (c->nca_roots) {
		curl_easy_setopt(h, CURLOPT_SSL_CTX_FUNCTION, on_ssl_ctx);
		curl_easy_setopt(h, CURLOPT_SSL_CTX_DATA, c);
	}
	if (accept) {
		snprintf(ab, sizeof ab, "Accept: %s", accept);
		hdrs = curl_slist_append(hdrs, ab);
	}
	if (strcmp(method, "POST") == 0) {
		hdrs = curl_slist_append(hdrs, "Content-Type: application/jose+json");
		curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
		curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE, (long)strlen(body));
	} else if (strcmp(method, "HEAD") == 0) {
		curl_easy_setopt(h, CURLOPT_NOBODY, 1L);
	}
	if (hdrs)
		curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
	c->stats.requests++;
	CURLcode cc = curl_easy_perform(h);
	curl_slist_free_all(hdrs);
	if (cc != CURLE_OK)
		return tw_err_set(err, cc == CURLE_OPERATION_TIMEDOUT ? TW_ETIMEDOUT : TW_EIO,
		                  "%s %s: %s", method, url, curl_easy_strerror(cc));
	curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &r->status);
	tw_debug("[acme] %s %s -> %ld", method, url, r->status);
	return 0;
}

static int cancelled(struct tw_acme_client *c)
{
	return c->cancel && atomic_load(c->cancel);
}

int tw_acme_client_dir(struct tw_acme_client *c, const struct tw_acme_dir **out, struct tw_err *err)
{
	if (!c->have_dir) {
		struct resp r;
		resp_init(&r);
		int rc = http(c, "GET", c->directory, NULL, "application/json", &r, err);
		if (rc == 0 && r.status != 200)
			rc = tw_err_set(err, TW_EPROTO, "directory %s: HTTP %ld", c->directory,
			                r.status);
		if (rc == 0)
			rc = tw_acme_parse_dir(r.body.data, r.body.len, &c->arena, &c->dir, err);
		if (rc < 0 && err)
			tw_err_wrap(err, "directory");
		resp_free(&r);
		if (rc < 0)
			return rc;
		c->have_dir = 1;
	}
	*out = &c->dir;
	return 0;
}

static int new_nonce(struct tw_acme_client *c, struct tw_err *err)
{
	const struct tw_acme_dir *d;
	int rc = tw_acme_client_dir(c, &d, err);
	if (rc < 0)
		return rc;
	struct resp r;
	resp_init(&r);
	free(c->nonce);
	c->nonce = NULL;
	rc = http(c, "HEAD", d->new_nonce, NULL, NULL, &r, err);
	resp_free(&r);
	if (rc == 0 && c->nonce == NULL)
		rc = tw_err_set(err, TW_EPROTO, "newNonce gave no Replay-Nonce");
	return rc;
}

/* Map an error response to a TW_E* code and detail; sets c->retry_after. */
static int problem(struct tw_acme_client *c, const char *what, struct resp *r, char *type,
                   size_t typecap, struct tw_err *err)
{
	struct tw_arena a;
	struct tw_acme_problem p;
	tw_arena_init(&a, 1024);
	c->retry_after = r->has_retry_after ? r->retry_after : 0;
	int rc = tw_acme_parse_problem(r->body.data, r->body.len, &a, &p, NULL);
	const char *t = rc == 0 ? p.type : "";
	const char *short_t = strncmp(t, "urn:ietf:params:acme:error:", 27) == 0 ? t + 27 : t;
	if (type)
		snprintf(type, typecap, "%s", short_t);
	int code = TW_EPROTO;
	if (strcmp(short_t, "rateLimited") == 0)
		code = TW_ELIMIT;
	else if (strcmp(short_t, "unauthorized") == 0 ||
	         strcmp(short_t, "rejectedIdentifier") == 0 ||
	         strcmp(short_t, "externalAccountRequired") == 0)
		code = TW_EPERM;
	else if (r->status >= 500)
		code = TW_EIO;
	tw_err_set(err, code, "%s: HTTP %ld %s%s%s", what, r->status, short_t[0] ? short_t : "",
	           rc == 0 && p.detail[0] ? ": " : "", rc == 0 ? p.detail : "");
	tw_arena_free(&a);
	return code;
}

/* Signed POST. payload NULL = POST-as-GET. use_jwk: sign with the JWK
 * (newAccount, revocation by key), else with the account kid. */
static int post(struct tw_acme_client *c, const char *url, const char *payload, int use_jwk,
                const char *accept, struct resp *r, struct tw_err *err)
{
	int rc = 0;
	for (int attempt = 0; attempt < 2; attempt++) {
		char *jws = NULL;
		if (c->nonce == NULL && (rc = new_nonce(c, err)) < 0)
			return rc;
		char *nonce = c->nonce;
		c->nonce = NULL; /* each nonce is used once */
		rc = tw_jws_sign(c->key, use_jwk ? NULL : c->kid, nonce, url, payload, &jws);
		free(nonce);
		if (rc < 0)
			return tw_err_set(err, rc, "cannot sign the request to %s", url);
		resp_free(r);
		resp_init(r);
		rc = http(c, "POST", url, jws, accept, r, err);
		free(jws);
		if (rc < 0)
			return rc;
		if (r->status < 400) {
			c->retry_after = 0;
			return 0;
		}
		char type[64];
		rc = problem(c, url, r, type, sizeof type, err);
		if (strcmp(type, "badNonce") == 0 && attempt == 0) {
			c->stats.bad_nonce_retries++;
			tw_info("[acme] badNonce from %s, retrying once with the fresh nonce", url);
			continue;
		}
		return rc;
	}
	return rc;
}

int tw_acme_client_account(struct tw_acme_client *c, EVP_PKEY *key, const char *known_url,
                           char **url_out, struct tw_err *err)
{
	const struct tw_acme_dir *d;
	json_t *p = NULL;
	char *payload = NULL, *eab = NULL;
	struct resp r;
	int rc;
	c->key = key;
	free(c->kid);
	c->kid = NULL;
	if (known_url) {
		if ((c->kid = strdup(known_url)) == NULL)
			return TW_ENOMEM;
		if (url_out && (*url_out = strdup(known_url)) == NULL)
			return TW_ENOMEM;
		return 0;
	}
	if ((rc = tw_acme_client_dir(c, &d, err)) < 0)
		return rc;
	if (d->eab_required && c->eab_kid == NULL)
		return tw_err_set(err, TW_EPERM,
		                  "the CA requires External Account Binding (set acme.eab)");
	resp_init(&r);
	rc = TW_ENOMEM;
	if ((p = json_object()) == NULL)
		goto out;
	json_object_set_new(p, "termsOfServiceAgreed", json_true());
	if (c->email) {
		char mail[512];
		snprintf(mail, sizeof mail, "mailto:%s", c->email);
		json_t *a = json_array();
		json_array_append_new(a, json_string(mail));
		json_object_set_new(p, "contact", a);
	}
	if (c->eab_kid) {
		if ((rc = tw_jws_eab(key, c->eab_kid, c->eab_hmac_key, d->new_account, &eab)) < 0) {
			tw_err_set(err, rc,
			           "cannot build the external account binding (hmac_key must "
			           "be base64url)");
			goto out;
		}
		json_t *e = json_loads(eab, 0, NULL);
		if (e == NULL) {
			rc = TW_ENOMEM;
			goto out;
		}
		json_object_set_new(p, "externalAccountBinding", e);
	}
	if ((payload = json_dumps(p, JSON_COMPACT)) == NULL)
		goto out;
	if ((rc = post(c, d->new_account, payload, 1, NULL, &r, err)) < 0) {
		tw_err_wrap(err, "newAccount");
		goto out;
	}
	if (r.location == NULL) {
		rc = tw_err_set(err, TW_EPROTO, "newAccount: no Location");
		goto out;
	}
	if ((c->kid = strdup(r.location)) == NULL ||
	    (url_out && (*url_out = strdup(r.location)) == NULL)) {
		rc = TW_ENOMEM;
		goto out;
	}
	tw_info("[acme] account %s (%s)", c->kid, r.status == 201 ? "created" : "existing");
	rc = 0;
out:
	resp_free(&r);
	free(payload);
	free(eab);
	json_decref(p);
	return rc;
}

/* ---- issuance: one order as a state machine ------------------------- */

enum ostate {
	OS_NEW_ORDER = 0,
	OS_AUTHORIZE,
	OS_FINALIZE,
	OS_WAIT_ORDER,
	OS_DOWNLOAD,
	OS_DONE,
	OS_FAILED
};
static const char *const ostate_names[] = {"new-order", "authorize", "finalize", "wait-order",
                                           "download",  "done",      "failed"};

struct pending {
	char *authz_url;
	char *type;  /* challenge type used */
	char *key;   /* token (http-01), name (tls-alpn-01) or record (dns-01) */
	char *value; /* dns-01 TXT value */
	int set;
};

struct order_run {
	struct tw_acme_client *c;
	const struct tw_acme_issue_req *req;
	struct tw_acme_issue_res *res;
	struct tw_err *err;
	const char *const *types; /* allowed challenge types, in order */
	size_t ntypes;
	enum ostate st;
	struct tw_arena arena;
	struct tw_acme_order order;
	char *order_url;
	struct pending pend[MAX_PENDING];
	size_t npend;
	char failed_type[32]; /* challenge type that made an authorization invalid */
	uint64_t deadline_ms;
};

static uint64_t mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void set_state(struct order_run *o, enum ostate st)
{
	tw_debug("[acme] order %s: %s -> %s", o->req->names[0], ostate_names[o->st],
	         ostate_names[st]);
	o->st = st;
}

/* Sleep before the next poll: Retry-After when the server gave one, else
 * `fallback_ms`; fails when the deadline would pass or on cancel. */
static int poll_sleep(struct order_run *o, const struct resp *r, uint64_t fallback_ms)
{
	uint64_t ms = r->has_retry_after ? r->retry_after * 1000 : fallback_ms;
	if (mono_ms() + ms > o->deadline_ms)
		return tw_err_set(o->err, TW_ETIMEDOUT, "issuance for %s timed out while polling",
		                  o->req->names[0]);
	uint64_t end = mono_ms() + ms;
	while (mono_ms() < end) {
		if (cancelled(o->c))
			return tw_err_set(o->err, TW_ECANCELED, "stopped");
		uint64_t left = end - mono_ms();
		struct timespec ts = {0, (long)((left < 50 ? left : 50) * 1000000)};
		nanosleep(&ts, NULL);
	}
	return 0;
}

static int fetch_order(struct order_run *o, struct resp *r)
{
	int rc = post(o->c, o->order_url, NULL, 0, NULL, r, o->err);
	if (rc == 0)
		rc = tw_acme_parse_order(r->body.data, r->body.len, &o->arena, &o->order, o->err);
	return rc;
}

static int st_new_order(struct order_run *o)
{
	const struct tw_acme_dir *d;
	struct resp r;
	char *payload = NULL;
	json_t *p = json_object(), *ids = json_array();
	int rc = TW_ENOMEM;
	resp_init(&r);
	if (p == NULL || ids == NULL)
		goto out;
	if ((rc = tw_acme_client_dir(o->c, &d, o->err)) < 0)
		goto out;
	for (size_t i = 0; i < o->req->nnames; i++) {
		json_t *id = json_pack("{s:s,s:s}", "type", "dns", "value", o->req->names[i]);
		if (id == NULL || json_array_append_new(ids, id) < 0) {
			rc = TW_ENOMEM;
			goto out;
		}
	}
	json_object_set(p, "identifiers", ids);
	if (o->req->replaces && d->renewal_info)
		json_object_set_new(p, "replaces", json_string(o->req->replaces));
	if (o->req->profile)
		json_object_set_new(p, "profile", json_string(o->req->profile));
	if ((payload = json_dumps(p, JSON_COMPACT)) == NULL) {
		rc = TW_ENOMEM;
		goto out;
	}
	if ((rc = post(o->c, d->new_order, payload, 0, NULL, &r, o->err)) < 0) {
		tw_err_wrap(o->err, "newOrder");
		goto out;
	}
	if (r.location == NULL || (o->order_url = tw_arena_strdup(&o->arena, r.location)) == NULL) {
		rc =
		    r.location ? TW_ENOMEM : tw_err_set(o->err, TW_EPROTO, "newOrder: no Location");
		goto out;
	}
	if ((rc = tw_acme_parse_order(r.body.data, r.body.len, &o->arena, &o->order, o->err)) < 0)
		goto out;
	tw_info("[acme] order %s for %s: %s", o->order_url, o->req->names[0],
	        tw_acme_status_name(o->order.status));
	switch (o->order.status) {
	case TW_ACME_ST_PENDING: set_state(o, OS_AUTHORIZE); break;
	case TW_ACME_ST_READY: set_state(o, OS_FINALIZE); break;
	case TW_ACME_ST_PROCESSING:
	case TW_ACME_ST_VALID: set_state(o, OS_WAIT_ORDER); break;
	default:
		rc = tw_err_set(o->err, TW_EPROTO, "new order is %s",
		                tw_acme_status_name(o->order.status));
	}
out:
	resp_free(&r);
	free(payload);
	json_decref(ids);
	json_decref(p);
	return rc;
}

static int type_allowed(struct order_run *o, const char *type)
{
	const struct tw_acme_responder *rs = o->req->responder;
	if (strcmp(type, "http-01") == 0)
		return rs && rs->http01_set;
	if (strcmp(type, "tls-alpn-01") == 0)
		return rs && rs->tlsalpn01_set;
	if (strcmp(type, "dns-01") == 0)
		return o->req->dns_hook != NULL;
	return 0;
}

static void clear_pending(struct order_run *o)
{
	const struct tw_acme_responder *rs = o->req->responder;
	for (size_t i = 0; i < o->npend; i++) {
		struct pending *pd = &o->pend[i];
		if (pd->set) {
			struct tw_err e = {0};
			if (strcmp(pd->type, "http-01") == 0 && rs->http01_clear)
				rs->http01_clear(rs->ctx, pd->key);
			else if (strcmp(pd->type, "tls-alpn-01") == 0 && rs->tlsalpn01_clear)
				rs->tlsalpn01_clear(rs->ctx, pd->key);
			else if (strcmp(pd->type, "dns-01") == 0 &&
			         tw_acme_hook_run(o->req->dns_hook, "clear", pd->key, pd->value,
			                          o->req->hook_timeout_ms ? o->req->hook_timeout_ms
			                                                  : 60000,
			                          &e) < 0)
				tw_warn("[acme] %s", e.msg);
			pd->set = 0;
		}
	}
}

/* Start one pending authorization: choose a challenge, publish, trigger. */
static int start_authz(struct order_run *o, const char *url, struct resp *r)
{
	struct tw_acme_authz az;
	int rc = post(o->c, url, NULL, 0, NULL, r, o->err);
	if (rc == 0)
		rc = tw_acme_parse_authz(r->body.data, r->body.len, &o->arena, &az, o->err);
	if (rc < 0)
		return rc;
	if (az.status == TW_ACME_ST_VALID) {
		tw_info("[acme] authorization for %s already valid (reused)", az.ident);
		return 0;
	}
	if (az.status != TW_ACME_ST_PENDING)
		return tw_err_set(o->err, TW_EPROTO, "authorization for %s is %s", az.ident,
		                  tw_acme_status_name(az.status));
	const struct tw_acme_chal *ch = NULL;
	const char *type = NULL;
	for (size_t t = 0; t < o->ntypes && ch == NULL; t++) {
		if (!type_allowed(o, o->types[t]))
			continue;
		for (size_t i = 0; i < az.nchal; i++)
			if (strcmp(az.chal[i].type, o->types[t]) == 0 && az.chal[i].token) {
				ch = &az.chal[i];
				type = o->types[t];
				break;
			}
	}
	if (ch == NULL)
		return tw_err_set(o->err, TW_EUNSUPP, "no usable challenge for %s%s (configure %s)",
		                  az.wildcard ? "*." : "", az.ident,
		                  az.wildcard ? "dns-01 and dns_hook" : "a challenge type");
	struct pending *pd = &o->pend[o->npend++];
	char *ka = NULL;
	pd->authz_url = tw_arena_strdup(&o->arena, url);
	pd->type = tw_arena_strdup(&o->arena, type);
	if ((rc = tw_jws_key_authz(o->c->key, ch->token, &ka)) < 0)
		return rc;
	const struct tw_acme_responder *rs = o->req->responder;
	if (strcmp(type, "http-01") == 0) {
		pd->key = tw_arena_strdup(&o->arena, ch->token);
		rc = pd->key ? rs->http01_set(rs->ctx, ch->token, ka) : TW_ENOMEM;
	} else if (strcmp(type, "tls-alpn-01") == 0) {
		pd->key = tw_arena_strdup(&o->arena, az.ident);
		rc = pd->key ? rs->tlsalpn01_set(rs->ctx, az.ident, ka) : TW_ENOMEM;
	} else {
		char rec[300], *val = NULL;
		snprintf(rec, sizeof rec, "_acme-challenge.%s", az.ident);
		rc = tw_jws_dns01_value(ka, &val);
		if (rc == 0) {
			pd->key = tw_arena_strdup(&o->arena, rec);
			pd->value = tw_arena_strdup(&o->arena, val);
			rc = tw_acme_hook_run(
			    o->req->dns_hook, "set", rec, val,
			    o->req->hook_timeout_ms ? o->req->hook_timeout_ms : 60000, o->err);
		}
		free(val);
	}
	free(ka);
	if (rc < 0) {
		snprintf(o->failed_type, sizeof o->failed_type, "%s", type);
		return rc;
	}
	pd->set = 1;
	tw_info("[acme] %s: answering %s", az.ident, type);
	if ((rc = post(o->c, ch->url, "{}", 0, NULL, r, o->err)) < 0)
		tw_err_wrap(o->err, "challenge %s for %s", type, az.ident);
	return rc;
}

/* Poll one authorization until it is no longer pending. */
static int wait_authz(struct order_run *o, struct pending *pd, struct resp *r)
{
	uint64_t delay = 100;
	for (;;) {
		struct tw_acme_authz az;
		int rc = post(o->c, pd->authz_url, NULL, 0, NULL, r, o->err);
		if (rc == 0)
			rc = tw_acme_parse_authz(r->body.data, r->body.len, &o->arena, &az, o->err);
		if (rc < 0)
			return rc;
		if (az.status == TW_ACME_ST_VALID) {
			tw_info("[acme] %s%s: %s valid", az.wildcard ? "*." : "", az.ident,
			        pd->type);
			return 0;
		}
		if (az.status != TW_ACME_ST_PENDING) {
			const char *detail = "";
			for (size_t i = 0; i < az.nchal; i++)
				if (strcmp(az.chal[i].type, pd->type) == 0 &&
				    az.chal[i].error.detail[0])
					detail = az.chal[i].error.detail;
			snprintf(o->failed_type, sizeof o->failed_type, "%s", pd->type);
			return tw_err_set(o->err, TW_EPERM, "%s for %s failed: %s%s%s", pd->type,
			                  az.ident, tw_acme_status_name(az.status),
			                  detail[0] ? ": " : "", detail);
		}
		if ((rc = poll_sleep(o, r, delay)) < 0)
			return rc;
		if (delay < 2000)
			delay *= 2;
	}
}

static int st_authorize(struct order_run *o)
{
	struct resp r;
	int rc = 0;
	resp_init(&r);
	for (size_t i = 0; i < o->order.nauthz && rc == 0; i++)
		rc = start_authz(o, o->order.authz[i], &r);
	for (size_t i = 0; i < o->npend && rc == 0; i++)
		rc = wait_authz(o, &o->pend[i], &r);
	clear_pending(o);
	resp_free(&r);
	if (rc == 0)
		set_state(o, OS_WAIT_ORDER);
	return rc;
}

static int st_finalize(struct order_run *o)
{
	EVP_PKEY *key = NULL;
	unsigned char *der = NULL;
	size_t derlen = 0;
	char *csr = NULL, *payload = NULL;
	struct resp r;
	int rc;
	resp_init(&r);
	rc = o->req->key_type == TW_ACME_KEY_RSA2048 ? tw_jws_key_new_rsa(2048, &key)
	                                             : tw_jws_key_new_p256(&key);
	if (rc < 0)
		goto out;
	if ((rc = tw_acme_x509_csr(key, o->req->names, o->req->nnames, &der, &derlen)) < 0 ||
	    (rc = tw_jws_b64url(der, derlen, &csr)) < 0)
		goto out;
	size_t n = strlen(csr) + 16;
	if ((payload = malloc(n)) == NULL) {
		rc = TW_ENOMEM;
		goto out;
	}
	snprintf(payload, n, "{\"csr\":\"%s\"}", csr);
	if ((rc = post(o->c, o->order.finalize, payload, 0, NULL, &r, o->err)) < 0) {
		tw_err_wrap(o->err, "finalize");
		goto out;
	}
	if ((rc = tw_jws_key_to_pem(key, &o->res->key_pem, &o->res->key_len)) < 0)
		goto out;
	if ((rc = tw_acme_parse_order(r.body.data, r.body.len, &o->arena, &o->order, o->err)) < 0)
		goto out;
	set_state(o, o->order.status == TW_ACME_ST_VALID ? OS_DOWNLOAD : OS_WAIT_ORDER);
out:
	resp_free(&r);
	free(payload);
	free(csr);
	OPENSSL_free(der);
	EVP_PKEY_free(key);
	return rc;
}

static int st_wait_order(struct order_run *o)
{
	struct resp r;
	uint64_t delay = 100;
	int rc;
	resp_init(&r);
	for (;;) {
		if ((rc = fetch_order(o, &r)) < 0)
			break;
		enum tw_acme_status s = o->order.status;
		if (s == TW_ACME_ST_VALID && o->order.certificate) {
			set_state(o, OS_DOWNLOAD);
			break;
		}
		if (s == TW_ACME_ST_READY && o->res->key_pem == NULL) {
			set_state(o, OS_FINALIZE);
			break;
		}
		if (s != TW_ACME_ST_READY && s != TW_ACME_ST_PROCESSING &&
		    s != TW_ACME_ST_PENDING && s != TW_ACME_ST_VALID) {
			rc =
			    tw_err_set(o->err, TW_EPROTO, "order is %s%s%s", tw_acme_status_name(s),
			               o->order.error.detail[0] ? ": " : "", o->order.error.detail);
			break;
		}
		if ((rc = poll_sleep(o, &r, delay)) < 0)
			break;
		if (delay < 2000)
			delay *= 2;
	}
	resp_free(&r);
	return rc;
}

static int st_download(struct order_run *o)
{
	struct resp r, alt;
	int rc;
	resp_init(&r);
	resp_init(&alt);
	rc = post(o->c, o->order.certificate, NULL, 0, "application/pem-certificate-chain", &r,
	          o->err);
	if (rc < 0) {
		tw_err_wrap(o->err, "certificate download");
		goto out;
	}
	struct resp *pick = &r;
	const char *want = o->req->preferred_issuer;
	char cn[256];
	if (want && (tw_acme_x509_top_issuer(r.body.data, r.body.len, cn, sizeof cn) < 0 ||
	             strcmp(cn, want) != 0)) {
		for (size_t i = 0; i < r.nalt; i++) {
			if (post(o->c, r.alt[i], NULL, 0, "application/pem-certificate-chain", &alt,
			         o->err) == 0 &&
			    tw_acme_x509_top_issuer(alt.body.data, alt.body.len, cn, sizeof cn) ==
			        0 &&
			    strcmp(cn, want) == 0) {
				pick = &alt;
				break;
			}
		}
		if (pick == &r)
			tw_warn("[acme] no chain issued by \"%s\" among %zu alternates; using the "
			        "default chain",
			        want, r.nalt);
	}
	struct tw_acme_certinfo ci;
	if (tw_acme_x509_info(pick->body.data, pick->body.len, &ci) < 0) {
		rc = tw_err_set(o->err, TW_EPROTO, "the CA sent no PEM certificate");
		goto out;
	}
	if ((o->res->chain_pem = strndup(pick->body.data, pick->body.len)) == NULL) {
		rc = TW_ENOMEM;
		goto out;
	}
	o->res->chain_len = pick->body.len;
	set_state(o, OS_DONE);
out:
	resp_free(&r);
	resp_free(&alt);
	return rc;
}

/* The one transition function: run the state's work. */
static int order_step(struct order_run *o)
{
	switch (o->st) {
	case OS_NEW_ORDER: return st_new_order(o);
	case OS_AUTHORIZE: return st_authorize(o);
	case OS_FINALIZE: return st_finalize(o);
	case OS_WAIT_ORDER: return st_wait_order(o);
	case OS_DOWNLOAD: return st_download(o);
	case OS_DONE:
	case OS_FAILED: return 0;
	}
	return TW_EINVAL;
}

static int run_order(struct order_run *o)
{
	int rc = 0;
	for (int steps = 0; steps < 16 && o->st != OS_DONE && rc == 0; steps++)
		rc = order_step(o);
	if (rc == 0 && o->st != OS_DONE)
		rc = tw_err_set(o->err, TW_EPROTO, "order did not complete");
	if (rc < 0) {
		clear_pending(o);
		set_state(o, OS_FAILED);
	}
	return rc;
}

int tw_acme_client_issue(struct tw_acme_client *c, const struct tw_acme_issue_req *req,
                         struct tw_acme_issue_res *res, struct tw_err *err)
{
	static const char *const def_types[] = {"http-01", "tls-alpn-01"};
	const char *types[8];
	size_t ntypes = 0;
	const char *const *src = req->challenges ? req->challenges : def_types;
	size_t nsrc = req->challenges ? req->nchallenges : 2;
	if (c->kid == NULL)
		return tw_err_set(err, TW_EINVAL, "no account: call tw_acme_client_account first");
	if (req->nnames == 0 || req->nnames > TW_ACME_MAX_LIST)
		return tw_err_set(err, TW_EINVAL, "1..%d names per certificate", TW_ACME_MAX_LIST);
	for (size_t i = 0; i < nsrc && ntypes < 8; i++)
		types[ntypes++] = src[i];
	memset(res, 0, sizeof *res);
	uint64_t deadline = mono_ms() + (req->timeout_ms ? req->timeout_ms : 180000);
	int rc = TW_EINVAL;
	while (ntypes > 0) {
		struct order_run o;
		memset(&o, 0, sizeof o);
		o.c = c;
		o.req = req;
		o.res = res;
		o.err = err;
		o.types = types;
		o.ntypes = ntypes;
		o.deadline_ms = deadline;
		tw_arena_init(&o.arena, 8192);
		rc = run_order(&o);
		tw_arena_free(&o.arena);
		if (rc == 0)
			return 0;
		tw_acme_issue_res_clear(res);
		if (o.failed_type[0] == '\0' || rc == TW_ECANCELED || rc == TW_ETIMEDOUT)
			break;
		/* A challenge type failed: drop it and try a new order with the next. */
		size_t k = 0;
		for (size_t i = 0; i < ntypes; i++)
			if (strcmp(types[i], o.failed_type) != 0)
				types[k++] = types[i];
		if (k == ntypes)
			break;
		ntypes = k;
		if (ntypes)
			tw_warn("[acme] %s: %s; trying %s", req->names[0],
			        err ? err->msg : "failed", types[0]);
	}
	return rc;
}

int tw_acme_client_renewal_info(struct tw_acme_client *c, const char *cert_id,
                                struct tw_acme_window *w, uint64_t *retry_after_s,
                                struct tw_err *err)
{
	const struct tw_acme_dir *d;
	int rc = tw_acme_client_dir(c, &d, err);
	if (rc < 0)
		return rc;
	if (d->renewal_info == NULL)
		return TW_EUNSUPP;
	char url[TW_ACME_MAX_URL + 300];
	size_t dl = strlen(d->renewal_info);
	snprintf(url, sizeof url, "%s%s%s", d->renewal_info,
	         dl && d->renewal_info[dl - 1] == '/' ? "" : "/", cert_id);
	struct resp r;
	struct tw_arena a;
	struct tw_acme_renewal_info ri;
	resp_init(&r);
	tw_arena_init(&a, 1024);
	rc = http(c, "GET", url, NULL, "application/json", &r, err);
	if (rc == 0 && r.status != 200)
		rc = problem(c, "renewalInfo", &r, NULL, 0, err);
	if (rc == 0)
		rc = tw_acme_parse_renewal_info(r.body.data, r.body.len, &a, &ri, err);
	if (rc == 0) {
		w->start = ri.start;
		w->end = ri.end;
		*retry_after_s = r.has_retry_after ? r.retry_after : 0;
	}
	resp_free(&r);
	tw_arena_free(&a);
	return rc;
}

int tw_acme_client_revoke(struct tw_acme_client *c, const char *chain_pem, size_t len,
                          unsigned reason, struct tw_err *err)
{
	const struct tw_acme_dir *d;
	int rc = tw_acme_client_dir(c, &d, err);
	if (rc < 0)
		return rc;
	if (d->revoke_cert == NULL)
		return tw_err_set(err, TW_EUNSUPP, "the CA offers no revokeCert");
	if (c->kid == NULL)
		return tw_err_set(err, TW_EINVAL, "no account");
	if (len > INT32_MAX)
		return TW_EINVAL;
	BIO *b = BIO_new_mem_buf(chain_pem, (int)len);
	X509 *x = b ? PEM_read_bio_X509(b, NULL, NULL, NULL) : NULL;
	BIO_free(b);
	if (x == NULL)
		return tw_err_set(err, TW_EINVAL, "no certificate to revoke");
	unsigned char *der = NULL;
	char *b64 = NULL, *payload = NULL;
	struct resp r;
	resp_init(&r);
	int n = i2d_X509(x, &der);
	X509_free(x);
	rc = n > 0 ? tw_jws_b64url(der, (size_t)n, &b64) : TW_ECRYPTO;
	if (rc == 0) {
		size_t pl = strlen(b64) + 64;
		if ((payload = malloc(pl)) == NULL)
			rc = TW_ENOMEM;
		else
			snprintf(payload, pl, "{\"certificate\":\"%s\",\"reason\":%u}", b64,
			         reason);
	}
	if (rc == 0 && (rc = post(c, d->revoke_cert, payload, 0, NULL, &r, err)) < 0)
		tw_err_wrap(err, "revokeCert");
	resp_free(&r);
	OPENSSL_free(der);
	free(b64);
	free(payload);
	return rc;
}
