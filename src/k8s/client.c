/* client.c — the Kubernetes API client. See client.h. */
#include "k8s/client.h"

#include "core/dbuf.h"
#include "core/log.h"

#include <curl/curl.h>
#include <openssl/crypto.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#define ERR_BODY_MAX (256u << 10) /* a Status body of a failed watch */

struct tw_k8s_client {
	struct tw_k8s_kubeconfig kc; /* own copies */
	const atomic_int *stop;
	CURL *curl;
	unsigned timeout_ms;
	char *token;
	uint64_t token_at_ms; /* monotonic time of the last read */
};

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static void curl_init_once(void)
{
	curl_global_init(CURL_GLOBAL_DEFAULT);
}

static uint64_t mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

void tw_k8s_resp_clear(struct tw_k8s_resp *r)
{
	if (r == NULL)
		return;
	json_decref(r->body);
	memset(r, 0, sizeof *r);
}

static int dup_mem(char **dst, const char *s, size_t n)
{
	if (s == NULL)
		return 0;
	*dst = malloc(n + 1);
	if (*dst == NULL)
		return TW_ENOMEM;
	memcpy(*dst, s, n);
	(*dst)[n] = '\0';
	return 0;
}

static int dup_str(char **dst, const char *s)
{
	return s ? dup_mem(dst, s, strlen(s)) : 0;
}

int tw_k8s_client_new(const struct tw_k8s_kubeconfig *kc, const atomic_int *stop,
                      struct tw_k8s_client **out, struct tw_err *err)
{
	if (kc->server == NULL)
		return tw_err_set(err, TW_EINVAL, "no API server");
	pthread_once(&curl_once, curl_init_once);
	struct tw_k8s_client *c = calloc(1, sizeof *c);
	if (c == NULL)
		return TW_ENOMEM;
	c->stop = stop;
	c->timeout_ms = 30000;
	struct tw_k8s_kubeconfig *d = &c->kc;
	d->insecure = kc->insecure;
	d->in_cluster = kc->in_cluster;
	d->ca_len = kc->ca_len;
	d->cert_len = kc->cert_len;
	d->key_len = kc->key_len;
	int rc = 0;
	rc |= dup_str(&d->server, kc->server);
	rc |= dup_str(&d->ca_file, kc->ca_file);
	rc |= dup_mem(&d->ca_pem, kc->ca_pem, kc->ca_len);
	rc |= dup_str(&d->token, kc->token);
	rc |= dup_str(&d->token_file, kc->token_file);
	rc |= dup_str(&d->cert_file, kc->cert_file);
	rc |= dup_str(&d->key_file, kc->key_file);
	rc |= dup_mem(&d->cert_pem, kc->cert_pem, kc->cert_len);
	rc |= dup_mem(&d->key_pem, kc->key_pem, kc->key_len);
	rc |= dup_str(&d->namespace, kc->namespace);
	rc |= dup_str(&d->source, kc->source);
	if (rc != 0 || (c->curl = curl_easy_init()) == NULL) {
		tw_k8s_client_free(c);
		return TW_ENOMEM;
	}
	if (d->token && dup_str(&c->token, d->token) < 0) {
		tw_k8s_client_free(c);
		return TW_ENOMEM;
	}
	if (d->token_file) {
		rc = tw_k8s_client_reload_token(c, err);
		if (rc < 0) {
			tw_k8s_client_free(c);
			return rc;
		}
	}
	*out = c;
	return 0;
}

void tw_k8s_client_free(struct tw_k8s_client *c)
{
	if (c == NULL)
		return;
	if (c->curl)
		curl_easy_cleanup(c->curl);
	if (c->token) {
		OPENSSL_cleanse(c->token, strlen(c->token));
		free(c->token);
	}
	tw_k8s_kubeconfig_clear(&c->kc);
	free(c);
}

void tw_k8s_client_set_timeout(struct tw_k8s_client *c, unsigned ms)
{
	c->timeout_ms = ms;
}

int tw_k8s_client_reload_token(struct tw_k8s_client *c, struct tw_err *err)
{
	if (c->kc.token_file == NULL)
		return 0;
	char *t;
	int rc = tw_k8s_kubeconfig_read_token(c->kc.token_file, &t, err);
	c->token_at_ms = mono_ms();
	if (rc < 0)
		return rc;
	if (c->token) {
		OPENSSL_cleanse(c->token, strlen(c->token));
		free(c->token);
	}
	c->token = t;
	return 0;
}

int tw_k8s_client_query(char *q, size_t cap, const char *name, const char *value)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t n = strlen(q);
	if (n + 2 + strlen(name) >= cap)
		return TW_ELIMIT;
	q[n++] = strchr(q, '?') ? '&' : '?';
	for (const char *p = name; *p; p++)
		q[n++] = *p;
	q[n++] = '=';
	for (const unsigned char *p = (const unsigned char *)value; *p; p++) {
		if (n + 4 >= cap)
			return TW_ELIMIT;
		if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
		    (*p >= '0' && *p <= '9') || *p == '-' || *p == '_' || *p == '.' || *p == '~') {
			q[n++] = (char)*p;
		} else {
			q[n++] = '%';
			q[n++] = hex[*p >> 4];
			q[n++] = hex[*p & 15];
		}
	}
	if (n >= cap)
		return TW_ELIMIT;
	q[n] = '\0';
	return 0;
}

const char *tw_k8s_status_message(const json_t *body)
{
	const char *m = json_string_value(json_object_get(body, "message"));
	return m ? m : "";
}

/* ---- transfer --------------------------------------------------------- */

struct xfer {
	struct tw_k8s_client *c;
	struct tw_k8s_resp *r;
	struct tw_dbuf body;
	tw_k8s_data_fn on_data; /* streaming */
	void *arg;
	int cb_rc;   /* a stop from on_data */
	int checked; /* status looked at (streaming) */
	int stream;  /* 1: pass the body to on_data */
};

static size_t on_body(char *p, size_t sz, size_t n, void *ud)
{
	struct xfer *x = ud;
	size_t len = sz * n;
	if (x->on_data && !x->checked) {
		long st = 0;
		curl_easy_getinfo(x->c->curl, CURLINFO_RESPONSE_CODE, &st);
		x->stream = st >= 200 && st < 300;
		x->checked = 1;
	}
	if (x->stream) {
		int rc = x->on_data(x->arg, p, len);
		if (rc < 0) {
			x->cb_rc = rc;
			return 0;
		}
		return len;
	}
	if (tw_dbuf_append(&x->body, p, len) < 0) {
		x->cb_rc = TW_ELIMIT;
		return 0;
	}
	return len;
}

static size_t on_header(char *p, size_t sz, size_t n, void *ud)
{
	struct xfer *x = ud;
	size_t len = sz * n;
	if (len > 12 && strncasecmp(p, "Retry-After:", 12) == 0) {
		const char *v = p + 12, *e = p + len;
		uint64_t s = 0;
		while (v < e && (*v == ' ' || *v == '\t'))
			v++;
		const char *d = v;
		while (v < e && *v >= '0' && *v <= '9' && s < 86400)
			s = s * 10 + (uint64_t)(*v++ - '0');
		if (v > d)
			x->r->retry_after_s = s < 86400 ? s : 86400;
	} else if (len >= 5 && memcmp(p, "HTTP/", 5) == 0) {
		x->r->retry_after_s = 0;
	}
	return len;
}

static int on_progress(void *ud, curl_off_t a, curl_off_t b, curl_off_t c2, curl_off_t d)
{
	struct tw_k8s_client *c = ud;
	return c->stop && atomic_load(c->stop) ? 1 : 0;
}

static int perform(struct tw_k8s_client *c, const char *method, const char *path, const char *body,
                   struct xfer *x, struct tw_err *err)
{
	CURL *h = c->curl;
	struct curl_slist *hdrs = NULL;
	char url[8192], auth[8192];
	if (c->stop && atomic_load(c->stop))
		return tw_err_set(err, TW_ECANCELED, "stopping");
	if (c->kc.token_file && mono_ms() - c->token_at_ms >= TW_K8S_TOKEN_REREAD_S * 1000u) {
		struct tw_err e2;
		if (tw_k8s_client_reload_token(c, &e2) < 0)
			tw_warn("[k8s] %s (keeping the previous token)", e2.msg);
	}
	if ((size_t)snprintf(url, sizeof url, "%s%s", c->kc.server, path) >= sizeof url)
		return tw_err_set(err, TW_ELIMIT, "URL too long");
	curl_easy_reset(h);
	curl_easy_setopt(h, CURLOPT_URL, url);
	curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "https,http");
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, (long)c->timeout_ms);
	curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, 10000L);
	curl_easy_setopt(h, CURLOPT_TCP_KEEPALIVE, 1L);
	curl_easy_setopt(h, CURLOPT_USERAGENT, "tapwork-ingress-controller");
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, x);
	curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(h, CURLOPT_HEADERDATA, x);
	curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L);
	curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, on_progress);
	curl_easy_setopt(h, CURLOPT_XFERINFODATA, c);
	curl_easy_setopt(h, CURLOPT_ACCEPT_ENCODING, "");
	if (c->kc.insecure) {
		curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 0L);
		curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 0L);
	} else if (c->kc.ca_pem) {
		struct curl_blob b = {c->kc.ca_pem, c->kc.ca_len, CURL_BLOB_NOCOPY};
		curl_easy_setopt(h, CURLOPT_CAINFO_BLOB, &b);
	} else if (c->kc.ca_file) {
		curl_easy_setopt(h, CURLOPT_CAINFO, c->kc.ca_file);
	}
	if (c->kc.cert_pem) {
		struct curl_blob cb = {c->kc.cert_pem, c->kc.cert_len, CURL_BLOB_NOCOPY};
		struct curl_blob kb = {c->kc.key_pem, c->kc.key_len, CURL_BLOB_NOCOPY};
		curl_easy_setopt(h, CURLOPT_SSLCERT_BLOB, &cb);
		curl_easy_setopt(h, CURLOPT_SSLCERTTYPE, "PEM");
		curl_easy_setopt(h, CURLOPT_SSLKEY_BLOB, &kb);
		curl_easy_setopt(h, CURLOPT_SSLKEYTYPE, "PEM");
	} else if (c->kc.cert_file) {
		curl_easy_setopt(h, CURLOPT_SSLCERT, c->kc.cert_file);
		curl_easy_setopt(h, CURLOPT_SSLKEY, c->kc.key_file);
	}
	hdrs = curl_slist_append(hdrs, "Accept: application/json");
	if (c->token) {
		if ((size_t)snprintf(auth, sizeof auth, "Authorization: Bearer %s", c->token) >=
		    sizeof auth) {
			curl_slist_free_all(hdrs);
			return tw_err_set(err, TW_ELIMIT, "token too long");
		}
		hdrs = curl_slist_append(hdrs, auth);
		OPENSSL_cleanse(auth, sizeof auth);
	}
	if (body) {
		hdrs = curl_slist_append(hdrs, strcmp(method, "PATCH") == 0
		                                   ? "Content-Type: application/merge-patch+json"
		                                   : "Content-Type: application/json");
		curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
		curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE, (long)strlen(body));
	}
	if (strcmp(method, "GET") != 0 && strcmp(method, "POST") != 0)
		curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
	else if (strcmp(method, "POST") == 0 && body == NULL)
		curl_easy_setopt(h, CURLOPT_POSTFIELDS, "");
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
	CURLcode cc = curl_easy_perform(h);
	curl_slist_free_all(hdrs);
	curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &x->r->status);
	if (cc == CURLE_OK) {
		tw_debug("[k8s] %s %s -> %ld", method, path, x->r->status);
		return 0;
	}
	if (x->cb_rc < 0)
		return tw_err_set(err, x->cb_rc, "%s %s: stopped by the reader (%s)", method, path,
		                  tw_strerror(x->cb_rc));
	if (cc == CURLE_ABORTED_BY_CALLBACK)
		return tw_err_set(err, TW_ECANCELED, "%s %s: stopping", method, path);
	return tw_err_set(err, cc == CURLE_OPERATION_TIMEDOUT ? TW_ETIMEDOUT : TW_EIO,
	                  "%s %s%s: %s", method, c->kc.server, path, curl_easy_strerror(cc));
}

static void parse_body(struct xfer *x)
{
	if (x->body.len > 0)
		x->r->body = json_loadb(x->body.data, x->body.len, 0, NULL);
}

/* After a 401: re-read the token file; 1 when the token changed (worth
 * one immediate retry). */
static int token_changed_after_401(struct tw_k8s_client *c)
{
	if (c->kc.token_file == NULL)
		return 0;
	char *old = c->token ? strdup(c->token) : NULL;
	struct tw_err e2;
	int changed = 0;
	if (tw_k8s_client_reload_token(c, &e2) < 0)
		tw_warn("[k8s] after 401: %s", e2.msg);
	else
		changed = old == NULL || strcmp(old, c->token) != 0;
	if (old) {
		OPENSSL_cleanse(old, strlen(old));
		free(old);
	}
	if (changed)
		tw_info("[k8s] token file %s changed: retrying", c->kc.token_file);
	return changed;
}

int tw_k8s_client_request(struct tw_k8s_client *c, const char *method, const char *path,
                          const json_t *body, struct tw_k8s_resp *r, struct tw_err *err)
{
	char *text = NULL;
	if (body && (text = json_dumps(body, JSON_COMPACT)) == NULL)
		return TW_ENOMEM;
	int rc;
	for (int attempt = 0;; attempt++) {
		struct xfer x = {.c = c, .r = r};
		memset(r, 0, sizeof *r);
		tw_dbuf_init(&x.body, TW_K8S_MAX_BODY);
		rc = perform(c, method, path, text, &x, err);
		if (rc == 0)
			parse_body(&x);
		tw_dbuf_free(&x.body);
		if (rc < 0 || r->status != 401 || attempt > 0 || !token_changed_after_401(c))
			break;
		tw_k8s_resp_clear(r);
	}
	free(text);
	return rc;
}

int tw_k8s_client_stream(struct tw_k8s_client *c, const char *path, tw_k8s_data_fn on_data,
                         void *arg, struct tw_k8s_resp *r, struct tw_err *err)
{
	int rc;
	for (int attempt = 0;; attempt++) {
		struct xfer x = {.c = c, .r = r, .on_data = on_data, .arg = arg};
		memset(r, 0, sizeof *r);
		tw_dbuf_init(&x.body, ERR_BODY_MAX);
		rc = perform(c, "GET", path, NULL, &x, err);
		if (!x.stream)
			parse_body(&x);
		tw_dbuf_free(&x.body);
		/* a 401 body was not streamed: the retry starts clean */
		if (rc < 0 || r->status != 401 || attempt > 0 || !token_changed_after_401(c))
			break;
		tw_k8s_resp_clear(r);
	}
	return rc;
}
