/* s3.c — the S3 storage driver.
 *
 * Objects live under PREFIX with the local driver's logical layout:
 * PREFIX/config, PREFIX/keys/N, PREFIX/data/NN/N, PREFIX/index/N,
 * PREFIX/snapshots/N, PREFIX/locks/N. Requests are signed by libcurl
 * (CURLOPT_AWS_SIGV4); we only supply x-amz-content-sha256 (which curl
 * signs as given) and Content-MD5. One easy handle per request; DNS, TLS
 * sessions and connections are shared through a CURLSH with mutexes.
 * Retries, conditional writes and the multipart path are described in
 * docs/internals/s3.md. */
#include "storage/s3.h"

#include <curl/curl.h>
#include <errno.h>
#include <limits.h>
#include <openssl/evp.h>
#include <openssl/md5.h>
#include <openssl/rand.h>
#include <openssl/sha.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/dbuf.h"
#include "core/log.h"

/* Packs (16 MiB target, a little over when the last blob lands) go in one PUT:
 * a multipart upload costs three extra round trips and, on some servers, a copy
 * of every part at completion. Objects above this are sent in parts. */
#define SINGLE_PUT_MAX ((size_t)64 << 20)
#define PART_SIZE ((size_t)8 << 20)
#define MAX_PARTS 10000
#define MP_THREADS 4
#define GET_CAP ((uint64_t)1 << 34)
#define XML_CAP ((size_t)8 << 20) /* list and error bodies */
#define KEY_CAP 1024
#define LIST_MAX_ENTRIES 100000
#define CRED_FILE_CAP ((size_t)1 << 20)
#define BAD_STATUS 1 /* internal: exchange done, status not 2xx */

/* ------------------------------------------------------------------ */
/* Parsers of untrusted input: credentials file and XML responses.     */

static int is_space(char c) { return c == ' ' || c == '\t' || c == '\r'; }

static void trim(const char **p, size_t *n)
{
	while (*n > 0 && is_space(**p)) {
		(*p)++;
		(*n)--;
	}
	while (*n > 0 && is_space((*p)[*n - 1]))
		(*n)--;
}

static int slice_eq(const char *p, size_t n, const char *s)
{
	return strlen(s) == n && memcmp(p, s, n) == 0;
}

static int copy_value(char *dst, size_t cap, const char *p, size_t n)
{
	if (n >= cap)
		return TW_ELIMIT;
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)p[i] < 0x20 || (unsigned char)p[i] == 0x7f)
			return TW_EINVAL;
	memcpy(dst, p, n);
	dst[n] = '\0';
	return 0;
}

int tw_s3_parse_credentials(const char *buf, size_t len, const char *profile,
			    struct tw_s3_creds *out, struct tw_err *e)
{
	memset(out, 0, sizeof *out);
	if (len > CRED_FILE_CAP)
		return tw_err_set(e, TW_ELIMIT, "credentials file larger than %zu bytes",
				  CRED_FILE_CAP);
	int in_profile = 0, found = 0;
	unsigned lineno = 0;
	size_t pos = 0;
	while (pos < len) {
		const char *line = buf + pos;
		const char *nl = memchr(line, '\n', len - pos);
		size_t n = nl ? (size_t)(nl - line) : len - pos;
		pos += n + (nl ? 1 : 0);
		lineno++;
		if (n > 8192)
			return tw_err_set(e, TW_ELIMIT, "credentials line %u too long", lineno);
		trim(&line, &n);
		if (n == 0 || line[0] == '#' || line[0] == ';')
			continue;
		if (line[0] == '[') {
			if (line[n - 1] != ']' || n < 2)
				return tw_err_set(e, TW_EINVAL, "credentials line %u: bad section",
						  lineno);
			const char *sec = line + 1;
			size_t sn = n - 2;
			trim(&sec, &sn);
			if (sn > 8 && memcmp(sec, "profile ", 8) == 0) {
				sec += 8;
				sn -= 8;
				trim(&sec, &sn);
			}
			in_profile = slice_eq(sec, sn, profile);
			found |= in_profile;
			continue;
		}
		const char *eq = memchr(line, '=', n);
		if (eq == NULL)
			return tw_err_set(e, TW_EINVAL, "credentials line %u: expected key = value",
					  lineno);
		if (!in_profile)
			continue;
		const char *k = line, *v = eq + 1;
		size_t kn = (size_t)(eq - line), vn = n - kn - 1;
		trim(&k, &kn);
		trim(&v, &vn);
		int rc = 0;
		if (slice_eq(k, kn, "aws_access_key_id"))
			rc = copy_value(out->key_id, sizeof out->key_id, v, vn);
		else if (slice_eq(k, kn, "aws_secret_access_key"))
			rc = copy_value(out->secret, sizeof out->secret, v, vn);
		else if (slice_eq(k, kn, "aws_session_token"))
			rc = copy_value(out->token, sizeof out->token, v, vn);
		if (rc != 0)
			return tw_err_set(e, rc, "credentials line %u: bad value", lineno);
	}
	if (!found)
		return tw_err_set(e, TW_ENOENT, "no profile [%s] in credentials file", profile);
	if (out->key_id[0] == '\0' || out->secret[0] == '\0')
		return tw_err_set(e, TW_ENOENT, "profile [%s] lacks aws_access_key_id or "
						"aws_secret_access_key", profile);
	return 0;
}

/* Find <tag>..</tag> in [p, p+n): sets body and blen; 0, TW_ENOENT, or
 * TW_EPROTO for an unterminated element. */
static int xml_find(const char *p, size_t n, const char *tag, const char **body, size_t *blen,
		    const char **after)
{
	char open[64], close[64];
	int on = snprintf(open, sizeof open, "<%s>", tag);
	int cn = snprintf(close, sizeof close, "</%s>", tag);
	if (on <= 0 || cn <= 0 || (size_t)cn >= sizeof close)
		return TW_EINVAL;
	const char *s = memmem(p, n, open, (size_t)on);
	if (s == NULL)
		return TW_ENOENT;
	const char *b = s + on;
	const char *end = memmem(b, n - (size_t)(b - p), close, (size_t)cn);
	if (end == NULL)
		return TW_EPROTO;
	*body = b;
	*blen = (size_t)(end - b);
	if (after)
		*after = end + cn;
	return 0;
}

int tw_s3_xml_text(const char *buf, size_t len, const char *tag, char *out, size_t cap)
{
	const char *b;
	size_t n;
	if (cap == 0)
		return TW_EINVAL;
	out[0] = '\0';
	if (xml_find(buf, len, tag, &b, &n, NULL) != 0)
		return TW_ENOENT;
	if (n >= cap)
		n = cap - 1;
	memcpy(out, b, n);
	out[n] = '\0';
	return 0;
}

/* Decode the five XML entities and numeric ones below 0x80. */
static int xml_unescape(const char *p, size_t n, char *out, size_t cap, size_t *olen)
{
	size_t o = 0;
	for (size_t i = 0; i < n;) {
		char c = p[i];
		if (c == '&') {
			const char *semi = memchr(p + i, ';', n - i < 12 ? n - i : 12);
			if (semi == NULL)
				return TW_EPROTO;
			const char *ent = p + i + 1;
			size_t en = (size_t)(semi - ent);
			if (slice_eq(ent, en, "amp"))
				c = '&';
			else if (slice_eq(ent, en, "lt"))
				c = '<';
			else if (slice_eq(ent, en, "gt"))
				c = '>';
			else if (slice_eq(ent, en, "quot"))
				c = '"';
			else if (slice_eq(ent, en, "apos"))
				c = '\'';
			else if (en >= 2 && en <= 4 && ent[0] == '#') {
				unsigned v = 0;
				for (size_t k = 1; k < en; k++) {
					if (ent[k] < '0' || ent[k] > '9')
						return TW_EPROTO;
					v = v * 10 + (unsigned)(ent[k] - '0');
				}
				if (v == 0 || v >= 0x80)
					return TW_EPROTO;
				c = (char)v;
			} else
				return TW_EPROTO;
			i = (size_t)(semi - p) + 1;
		} else {
			if (c == '<' || c == '\0')
				return TW_EPROTO;
			i++;
		}
		if (o + 1 >= cap)
			return TW_EPROTO;
		out[o++] = c;
	}
	out[o] = '\0';
	*olen = o;
	return 0;
}

static int parse_u64(const char *p, size_t n, uint64_t *v)
{
	if (n == 0 || n > 20)
		return TW_EPROTO;
	uint64_t x = 0;
	for (size_t i = 0; i < n; i++) {
		if (p[i] < '0' || p[i] > '9')
			return TW_EPROTO;
		unsigned d = (unsigned)(p[i] - '0');
		if (x > (UINT64_MAX - d) / 10)
			return TW_EPROTO;
		x = x * 10 + d;
	}
	*v = x;
	return 0;
}

/* The repeated <tag> elements of one S3 listing page, in order and at most
 * LIST_MAX_ENTRIES of them: 1 with the element's body, 0 after the last, or
 * a negative code with `what` (the listing's name) in the message. */
struct xml_iter {
	const char *p;
	size_t n;
	const char *tag;
	const char *what;
	unsigned count;
};

static int xml_next(struct xml_iter *it, const char **body, size_t *blen, struct tw_err *e)
{
	const char *after;
	int rc = xml_find(it->p, it->n, it->tag, body, blen, &after);
	if (rc == TW_ENOENT)
		return 0;
	if (rc != 0)
		return tw_err_set(e, TW_EPROTO, "%s: unterminated <%s>", it->what, it->tag);
	if (++it->count > LIST_MAX_ENTRIES)
		return tw_err_set(e, TW_EPROTO, "%s: too many entries in one page", it->what);
	it->n -= (size_t)(after - it->p);
	it->p = after;
	return 1;
}

/* <IsTruncated>true</IsTruncated> anywhere in the page */
static int xml_truncated(const char *buf, size_t len)
{
	const char *t;
	size_t tn;
	return xml_find(buf, len, "IsTruncated", &t, &tn, NULL) == 0 && slice_eq(t, tn, "true");
}

int tw_s3_parse_list(const char *buf, size_t len, tw_s3_key_cb cb, void *arg,
		     struct tw_s3_list_page *page, struct tw_err *e)
{
	memset(page, 0, sizeof *page);
	struct xml_iter it = {buf, len, "Contents", "S3 list", 0};
	char key[KEY_CAP + 1];
	const char *body;
	size_t blen;
	int rc;
	while ((rc = xml_next(&it, &body, &blen, e)) == 1) {
		const char *k, *sz;
		size_t kn, szn, klen;
		uint64_t size;
		if (xml_find(body, blen, "Key", &k, &kn, NULL) != 0 ||
		    xml_find(body, blen, "Size", &sz, &szn, NULL) != 0)
			return tw_err_set(e, TW_EPROTO, "S3 list: entry without Key or Size");
		if (xml_unescape(k, kn, key, sizeof key, &klen) != 0)
			return tw_err_set(e, TW_EPROTO, "S3 list: bad or oversized Key");
		if (parse_u64(sz, szn, &size) != 0)
			return tw_err_set(e, TW_EPROTO, "S3 list: bad Size");
		rc = cb(arg, key, klen, size);
		if (rc != 0)
			return rc;
	}
	if (rc < 0)
		return rc;
	page->nkeys = it.count;
	page->truncated = xml_truncated(buf, len);
	const char *t;
	size_t tn;
	if (xml_find(buf, len, "NextContinuationToken", &t, &tn, NULL) == 0) {
		size_t ol;
		if (xml_unescape(t, tn, page->next_token, sizeof page->next_token, &ol) != 0)
			return tw_err_set(e, TW_EPROTO, "S3 list: bad continuation token");
	}
	if (page->truncated && page->next_token[0] == '\0')
		return tw_err_set(e, TW_EPROTO, "S3 list: truncated without a continuation token");
	return 0;
}

/* Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant). */
static int64_t days_from_civil(int64_t y, unsigned m, unsigned d)
{
	y -= m <= 2;
	int64_t era = (y >= 0 ? y : y - 399) / 400;
	unsigned yoe = (unsigned)(y - era * 400);
	unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
	unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + (int64_t)doe - 719468;
}

static int digits(const char *p, size_t n, unsigned *v)
{
	unsigned x = 0;
	for (size_t i = 0; i < n; i++) {
		if (p[i] < '0' || p[i] > '9')
			return TW_EPROTO;
		x = x * 10 + (unsigned)(p[i] - '0');
	}
	*v = x;
	return 0;
}

int tw_s3_parse_time(const char *p, size_t n, int64_t *t)
{
	/* YYYY-MM-DDTHH:MM:SS then optional .fraction, then Z */
	unsigned y, mo, d, h, mi, s;
	if (n < 20 || p[4] != '-' || p[7] != '-' || p[10] != 'T' || p[13] != ':' || p[16] != ':' ||
	    digits(p, 4, &y) || digits(p + 5, 2, &mo) || digits(p + 8, 2, &d) ||
	    digits(p + 11, 2, &h) || digits(p + 14, 2, &mi) || digits(p + 17, 2, &s))
		return TW_EPROTO;
	size_t i = 19;
	if (p[i] == '.') {
		size_t f = ++i;
		while (i < n && p[i] >= '0' && p[i] <= '9')
			i++;
		if (i == f || i - f > 9)
			return TW_EPROTO;
	}
	if (i + 1 != n || p[i] != 'Z')
		return TW_EPROTO;
	static const unsigned mdays[] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
	if (y < 1970 || mo < 1 || mo > 12 || d < 1 || d > mdays[mo - 1] || h > 23 || mi > 59 ||
	    s > 60)
		return TW_EPROTO;
	int leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
	if (mo == 2 && d == 29 && !leap)
		return TW_EPROTO;
	*t = days_from_civil(y, mo, d) * 86400 + (int64_t)h * 3600 + mi * 60 + s;
	return 0;
}

static int upload_id_ok(const char *id, size_t n)
{
	if (n == 0 || n > TW_S3_UPLOAD_ID_MAX)
		return 0;
	for (size_t i = 0; i < n; i++) {
		char c = id[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '.' || c == '_' || c == '~' || c == '+' || c == '/' || c == '=' || c == '-'))
			return 0;
	}
	return 1;
}

int tw_s3_parse_uploads(const char *buf, size_t len, tw_s3_upload_cb cb, void *arg,
			struct tw_s3_uploads_page *page, struct tw_err *e)
{
	memset(page, 0, sizeof *page);
	struct xml_iter it = {buf, len, "Upload", "S3 uploads list", 0};
	char key[KEY_CAP + 1], id[TW_S3_UPLOAD_ID_MAX + 1];
	const char *body;
	size_t blen;
	int rc;
	while ((rc = xml_next(&it, &body, &blen, e)) == 1) {
		const char *k, *u, *ti;
		size_t kn, un, tn, klen, ulen;
		int64_t initiated;
		if (xml_find(body, blen, "Key", &k, &kn, NULL) != 0 ||
		    xml_find(body, blen, "UploadId", &u, &un, NULL) != 0 ||
		    xml_find(body, blen, "Initiated", &ti, &tn, NULL) != 0)
			return tw_err_set(e, TW_EPROTO,
					  "S3 uploads list: entry without Key, UploadId or Initiated");
		if (xml_unescape(k, kn, key, sizeof key, &klen) != 0)
			return tw_err_set(e, TW_EPROTO, "S3 uploads list: bad or oversized Key");
		if (xml_unescape(u, un, id, sizeof id, &ulen) != 0 || !upload_id_ok(id, ulen))
			return tw_err_set(e, TW_EPROTO, "S3 uploads list: bad UploadId");
		if (tw_s3_parse_time(ti, tn, &initiated) != 0)
			return tw_err_set(e, TW_EPROTO, "S3 uploads list: bad Initiated time");
		rc = cb(arg, key, klen, id, initiated);
		if (rc != 0)
			return rc;
	}
	if (rc < 0)
		return rc;
	page->nuploads = it.count;
	page->truncated = xml_truncated(buf, len);
	const char *t;
	size_t tn, ol;
	if (xml_find(buf, len, "NextKeyMarker", &t, &tn, NULL) == 0 &&
	    xml_unescape(t, tn, page->next_key, sizeof page->next_key, &ol) != 0)
		return tw_err_set(e, TW_EPROTO, "S3 uploads list: bad NextKeyMarker");
	if (xml_find(buf, len, "NextUploadIdMarker", &t, &tn, NULL) == 0 &&
	    (xml_unescape(t, tn, page->next_upload, sizeof page->next_upload, &ol) != 0 ||
	     (ol > 0 && !upload_id_ok(page->next_upload, ol))))
		return tw_err_set(e, TW_EPROTO, "S3 uploads list: bad NextUploadIdMarker");
	if (page->truncated && page->next_key[0] == '\0')
		return tw_err_set(e, TW_EPROTO, "S3 uploads list: truncated without a key marker");
	return 0;
}

int tw_s3_parse_parts(const char *buf, size_t len, struct tw_s3_parts_page *page,
		      struct tw_err *e)
{
	memset(page, 0, sizeof *page);
	struct xml_iter it = {buf, len, "Part", "S3 parts list", 0};
	const char *body;
	size_t blen;
	int rc;
	while ((rc = xml_next(&it, &body, &blen, e)) == 1) {
		const char *sz, *lm;
		size_t szn, lmn;
		uint64_t size;
		int64_t mod;
		if (xml_find(body, blen, "Size", &sz, &szn, NULL) != 0 ||
		    xml_find(body, blen, "LastModified", &lm, &lmn, NULL) != 0)
			return tw_err_set(e, TW_EPROTO, "S3 parts list: part without Size or LastModified");
		if (parse_u64(sz, szn, &size) != 0 || size > UINT64_MAX - page->bytes)
			return tw_err_set(e, TW_EPROTO, "S3 parts list: bad Size");
		if (tw_s3_parse_time(lm, lmn, &mod) != 0)
			return tw_err_set(e, TW_EPROTO, "S3 parts list: bad LastModified");
		page->bytes += size;
		if (mod > page->newest)
			page->newest = mod;
	}
	if (rc < 0)
		return rc;
	page->nparts = it.count;
	page->truncated = xml_truncated(buf, len);
	const char *t;
	size_t tn;
	if (xml_find(buf, len, "NextPartNumberMarker", &t, &tn, NULL) == 0) {
		uint64_t m;
		if (parse_u64(t, tn, &m) != 0 || m > 100000)
			return tw_err_set(e, TW_EPROTO, "S3 parts list: bad NextPartNumberMarker");
		page->next_marker = (unsigned)m;
	}
	if (page->truncated && page->next_marker == 0)
		return tw_err_set(e, TW_EPROTO, "S3 parts list: truncated without a marker");
	return 0;
}

/* ------------------------------------------------------------------ */
/* Driver state.                                                        */

struct s3 {
	struct tw_storage base;
	char scheme[8];
	char host[256]; /* host[:port] */
	char bucket[64];
	char prefix[512]; /* "" or "a/b/" */
	int vhost;
	char region[64];
	char sigv4[128];
	struct tw_s3_creds creds;
	char ca[PATH_MAX];
	curl_off_t rate;
	long stall_secs;
	unsigned tries, base_ms, cap_ms;
	CURLSH *share;
	pthread_mutex_t locks[CURL_LOCK_DATA_LAST];
	/* Some servers (moto) canonicalize '/' in query values unescaped;
	 * learned on the first signature mismatch of a list request. */
	atomic_int raw_slash;
	uint64_t upload_age_bias; /* TAPWORK_S3_UPLOAD_AGE_BIAS_S, for tests */
};

static void share_lock(CURL *h, curl_lock_data d, curl_lock_access a, void *u)
{
	struct s3 *s = u;
	if ((unsigned)d < CURL_LOCK_DATA_LAST)
		pthread_mutex_lock(&s->locks[d]);
}

static void share_unlock(CURL *h, curl_lock_data d, void *u)
{
	struct s3 *s = u;
	if ((unsigned)d < CURL_LOCK_DATA_LAST)
		pthread_mutex_unlock(&s->locks[d]);
}

/* Key of the directory of type t ("PREFIX/data/"), or of an object. */
static int key_of(const struct s3 *s, enum tw_st_type t, const char *name, char *out, size_t cap,
		  struct tw_err *e)
{
	int n;
	if ((unsigned)t >= TW_ST_NTYPES)
		return tw_err_set(e, TW_EINVAL, "bad type");
	if (name == NULL)
		n = snprintf(out, cap, "%s%s/", s->prefix, tw_storage_type_name(t));
	else {
		if (!tw_storage_name_ok(name))
			return tw_err_set(e, TW_EINVAL, "bad object name");
		if (t == TW_ST_CONFIG && strcmp(name, "config") != 0)
			return tw_err_set(e, TW_EINVAL, "config object must be named config");
		if (t == TW_ST_DATA && strlen(name) < 2)
			return tw_err_set(e, TW_EINVAL, "pack name too short");
		if (t == TW_ST_CONFIG)
			n = snprintf(out, cap, "%sconfig", s->prefix);
		else if (t == TW_ST_DATA)
			n = snprintf(out, cap, "%sdata/%.2s/%s", s->prefix, name, name);
		else
			n = snprintf(out, cap, "%s%s/%s", s->prefix, tw_storage_type_name(t), name);
	}
	if (n < 0 || (size_t)n >= cap)
		return tw_err_set(e, TW_ELIMIT, "object key too long");
	return 0;
}

/* AWS query encoding: unreserved characters stay, the rest is %XX. */
static int query_encode(const char *v, int raw_slash, char *out, size_t cap)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t o = 0;
	for (const unsigned char *p = (const unsigned char *)v; *p; p++) {
		int keep = (*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') ||
			   (*p >= '0' && *p <= '9') || *p == '-' || *p == '_' || *p == '.' ||
			   *p == '~' || (raw_slash && *p == '/');
		if (o + (keep ? 1 : 3) >= cap)
			return TW_ELIMIT;
		if (keep)
			out[o++] = (char)*p;
		else {
			out[o++] = '%';
			out[o++] = hex[*p >> 4];
			out[o++] = hex[*p & 15];
		}
	}
	out[o] = '\0';
	return 0;
}

static void hex_of(const uint8_t *d, size_t n, char *out)
{
	static const char hex[] = "0123456789abcdef";
	for (size_t i = 0; i < n; i++) {
		out[2 * i] = hex[d[i] >> 4];
		out[2 * i + 1] = hex[d[i] & 15];
	}
	out[2 * n] = '\0';
}

/* ------------------------------------------------------------------ */
/* One HTTP request with retries.                                       */

struct req {
	const char *method;
	const char *key;   /* object key, NULL for the bucket itself */
	const char *query; /* encoded and sorted by name, or NULL */
	const uint8_t *body;
	size_t body_len;
	int has_body;
	const char *range;
	int if_none_match;
	int want_md5; /* send Content-MD5, verify the ETag */
	int sha_given; /* sha256 already holds the payload's digest */
	size_t resp_cap;
	/* filled per attempt */
	size_t up_off;
	long status;
	CURLcode cc;
	int overflow;
	struct tw_dbuf resp;
	char etag[80];
	uint64_t content_length;
	int have_cl;
	time_t date; /* the server's Date header, 0 if none */
	char curl_err[CURL_ERROR_SIZE];
	const struct s3 *s; /* set by perform_once, for messages */
	/* computed once */
	char sha256[65];
	char md5_b64[32];
	char md5_hex[33];
};

static size_t on_read(char *dst, size_t size, size_t nmemb, void *u)
{
	struct req *r = u;
	size_t want = size * nmemb, left = r->body_len - r->up_off;
	if (want > left)
		want = left;
	if (want)
		memcpy(dst, r->body + r->up_off, want);
	r->up_off += want;
	return want;
}

static size_t on_write(char *p, size_t size, size_t nmemb, void *u)
{
	struct req *r = u;
	size_t n = size * nmemb;
	if (tw_dbuf_append(&r->resp, p, n) != 0) {
		r->overflow = 1;
		return 0;
	}
	return n;
}

static size_t on_header(char *p, size_t size, size_t nmemb, void *u)
{
	struct req *r = u;
	size_t n = size * nmemb;
	const char *v;
	size_t vn;
	if (n > 5 && strncasecmp(p, "ETag:", 5) == 0) {
		v = p + 5;
		vn = n - 5;
		trim(&v, &vn);
		while (vn && (v[vn - 1] == '\n' || is_space(v[vn - 1])))
			vn--;
		if (vn >= 2 && v[0] == '"' && v[vn - 1] == '"') {
			v++;
			vn -= 2;
		}
		if (vn < sizeof r->etag) {
			memcpy(r->etag, v, vn);
			r->etag[vn] = '\0';
		}
	} else if (n > 5 && n < 128 && strncasecmp(p, "Date:", 5) == 0) {
		char d[128];
		memcpy(d, p + 5, n - 5);
		d[n - 5] = '\0';
		time_t t = curl_getdate(d, NULL);
		r->date = t > 0 ? t : 0;
	} else if (n > 15 && strncasecmp(p, "Content-Length:", 15) == 0) {
		v = p + 15;
		vn = n - 15;
		trim(&v, &vn);
		while (vn && (v[vn - 1] == '\n' || is_space(v[vn - 1])))
			vn--;
		uint64_t cl;
		if (parse_u64(v, vn, &cl) == 0) {
			r->content_length = cl;
			r->have_cl = 1;
			/* preallocate a GET body (bounded by the cap) */
			if (strcmp(r->method, "GET") == 0 && cl <= r->resp_cap && cl > r->resp.alloc)
				tw_dbuf_reserve(&r->resp, (size_t)cl);
		}
	}
	return n;
}

static int add_header(struct curl_slist **l, const char *fmt, const char *v)
{
	char h[TW_S3_TOKEN_MAX + 64];
	int n = snprintf(h, sizeof h, fmt, v);
	if (n < 0 || (size_t)n >= sizeof h)
		return TW_ELIMIT;
	struct curl_slist *nl = curl_slist_append(*l, h);
	if (nl == NULL)
		return TW_ENOMEM;
	*l = nl;
	return 0;
}

static int perform_once(struct s3 *s, struct req *r)
{
	char url[2048];
	int n;
	const char *q = r->query ? r->query : "";
	const char *qm = r->query ? "?" : "";
	const char *key = r->key ? r->key : "";
	if (s->vhost)
		n = snprintf(url, sizeof url, "%s://%s.%s/%s%s%s", s->scheme, s->bucket, s->host, key,
			     qm, q);
	else
		n = snprintf(url, sizeof url, "%s://%s/%s%s%s%s%s", s->scheme, s->host, s->bucket,
			     r->key ? "/" : "", key, qm, q);
	if (n < 0 || (size_t)n >= sizeof url)
		return TW_ELIMIT;

	r->s = s;
	r->up_off = 0;
	r->status = 0;
	r->overflow = 0;
	r->etag[0] = '\0';
	r->have_cl = 0;
	r->date = 0;
	r->curl_err[0] = '\0';
	tw_dbuf_free(&r->resp);
	tw_dbuf_init(&r->resp, r->resp_cap);

	CURL *h = curl_easy_init();
	if (h == NULL)
		return TW_ENOMEM;
	struct curl_slist *hl = NULL;
	int rc = add_header(&hl, "x-amz-content-sha256: %s", r->sha256);
	if (rc == 0 && s->creds.token[0])
		rc = add_header(&hl, "x-amz-security-token: %s", s->creds.token);
	if (rc == 0 && r->want_md5 && r->has_body)
		rc = add_header(&hl, "Content-MD5: %s", r->md5_b64);
	if (rc == 0 && r->if_none_match)
		rc = add_header(&hl, "If-None-Match: %s", "*");
	if (rc == 0 && r->range)
		rc = add_header(&hl, "Range: %s", r->range);
	if (rc == 0 && r->has_body)
		rc = add_header(&hl, "Content-Type: %s", "application/octet-stream");
	if (rc != 0) {
		curl_slist_free_all(hl);
		curl_easy_cleanup(h);
		return rc;
	}

	curl_easy_setopt(h, CURLOPT_URL, url);
	curl_easy_setopt(h, CURLOPT_SHARE, s->share);
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(h, CURLOPT_AWS_SIGV4, s->sigv4);
	curl_easy_setopt(h, CURLOPT_USERNAME, s->creds.key_id);
	curl_easy_setopt(h, CURLOPT_PASSWORD, s->creds.secret);
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, hl);
	curl_easy_setopt(h, CURLOPT_ERRORBUFFER, r->curl_err);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_write);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, r);
	curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(h, CURLOPT_HEADERDATA, r);
	curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT, 10L);
	/* No "Expect:" removal header: curl 7.88 would sign it although it is
	 * never sent. Do not wait for 100-continue instead. */
	curl_easy_setopt(h, CURLOPT_EXPECT_100_TIMEOUT_MS, 0L);
	curl_easy_setopt(h, CURLOPT_LOW_SPEED_LIMIT, 1L);
	curl_easy_setopt(h, CURLOPT_LOW_SPEED_TIME, s->stall_secs);
	if (s->ca[0])
		curl_easy_setopt(h, CURLOPT_CAINFO, s->ca);
	if (s->rate > 0) {
		curl_easy_setopt(h, CURLOPT_MAX_SEND_SPEED_LARGE, s->rate);
		curl_easy_setopt(h, CURLOPT_MAX_RECV_SPEED_LARGE, s->rate);
	}
	if (strcmp(r->method, "HEAD") == 0)
		curl_easy_setopt(h, CURLOPT_NOBODY, 1L);
	else if (strcmp(r->method, "PUT") == 0) {
		curl_easy_setopt(h, CURLOPT_UPLOAD, 1L);
		curl_easy_setopt(h, CURLOPT_READFUNCTION, on_read);
		curl_easy_setopt(h, CURLOPT_READDATA, r);
		curl_easy_setopt(h, CURLOPT_INFILESIZE_LARGE, (curl_off_t)r->body_len);
	} else if (strcmp(r->method, "POST") == 0) {
		curl_easy_setopt(h, CURLOPT_POST, 1L);
		curl_easy_setopt(h, CURLOPT_POSTFIELDS, r->body ? (const char *)r->body : "");
		curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)r->body_len);
	} else if (strcmp(r->method, "GET") != 0)
		curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, r->method);

	r->cc = curl_easy_perform(h);
	curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &r->status);
	if (r->cc != CURLE_OK && r->curl_err[0] == '\0')
		snprintf(r->curl_err, sizeof r->curl_err, "%s", curl_easy_strerror(r->cc));
	curl_slist_free_all(hl);
	curl_easy_cleanup(h);
	if (r->overflow)
		return TW_ELIMIT;
	return 0;
}

static int ok_status(long st) { return st >= 200 && st < 300; }

static int transient(const struct req *r)
{
	switch (r->cc) {
	case CURLE_OK:
		break;
	case CURLE_COULDNT_CONNECT:
	case CURLE_COULDNT_RESOLVE_HOST:
	case CURLE_OPERATION_TIMEDOUT:
	case CURLE_SEND_ERROR:
	case CURLE_RECV_ERROR:
	case CURLE_GOT_NOTHING:
	case CURLE_PARTIAL_FILE:
	case CURLE_SSL_CONNECT_ERROR:
	case CURLE_HTTP2:
	case CURLE_HTTP2_STREAM:
		return 1;
	default:
		return 0;
	}
	if (r->status >= 500 || r->status == 429)
		return 1;
	if (r->status == 400 && r->resp.len > 0 &&
	    memmem(r->resp.data, r->resp.len, "<Code>RequestTimeout</Code>", 27) != NULL)
		return 1;
	return 0;
}

/* Did the request possibly reach the server? (connection refused: no) */
static int maybe_landed(const struct req *r)
{
	return !(r->cc == CURLE_COULDNT_CONNECT || r->cc == CURLE_COULDNT_RESOLVE_HOST ||
		 r->status == 503 || r->status == 429);
}

static void backoff(const struct s3 *s, unsigned attempt)
{
	uint64_t d = s->base_ms;
	for (unsigned i = 0; i < attempt && d < s->cap_ms; i++)
		d *= 2;
	if (d > s->cap_ms)
		d = s->cap_ms;
	uint32_t rnd = 0;
	if (RAND_bytes((unsigned char *)&rnd, sizeof rnd) != 1)
		rnd = (uint32_t)time(NULL);
	/* "equal jitter": half fixed, half random */
	uint64_t ms = d / 2 + (d / 2 ? rnd % (d / 2 + 1) : 0);
	struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};
	while (nanosleep(&ts, &ts) == -1 && errno == EINTR)
		;
}

/* Server text goes into messages and logs: keep it on one printable line. */
static void printable(char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s < 0x20 || (unsigned char)*s >= 0x7f)
			*s = '?';
}

static void prepare_digests(struct req *r)
{
	if (!r->sha_given) {
		uint8_t d[SHA256_DIGEST_LENGTH];
		SHA256(r->body_len ? r->body : (const uint8_t *)"", r->body_len, d);
		hex_of(d, sizeof d, r->sha256);
	}
	if (r->want_md5) {
		uint8_t m[MD5_DIGEST_LENGTH];
		EVP_Digest(r->body_len ? r->body : (const uint8_t *)"", r->body_len, m, NULL,
			   EVP_md5(), NULL);
		hex_of(m, sizeof m, r->md5_hex);
		EVP_EncodeBlock((unsigned char *)r->md5_b64, m, sizeof m);
	}
}

/* The ETag of a single-part upload is the hex MD5 of the payload (S3 and
 * moto; SSE-KMS stores differ, so only a 32-hex ETag is compared). */
static int etag_mismatch(const struct req *r)
{
	if (!r->want_md5 || strlen(r->etag) != 32)
		return 0;
	return strcasecmp(r->etag, r->md5_hex) != 0;
}

/* Run r; retry transient failures when idempotent. Returns 0 when the
 * exchange completed (any HTTP status: the caller looks at r->status) or a
 * negative code for transport failures after the last try. */
static int run_req(struct s3 *s, struct req *r, int idempotent)
{
	prepare_digests(r);
	for (unsigned attempt = 0;; attempt++) {
		int rc = perform_once(s, r);
		if (rc != 0)
			return rc;
		int again = transient(r);
		if (!again && ok_status(r->status) && etag_mismatch(r)) {
			printable(r->etag);
			tw_warn("S3 %s %s: ETag %s is not the payload MD5", r->method,
				r->key ? r->key : "", r->etag);
			again = 1;
			r->status = 0;
		}
		if (!again || !idempotent || attempt + 1 >= s->tries)
			return r->cc == CURLE_OK ? 0 : TW_EIO;
		tw_debug("S3 %s %s: %s, retry %u", r->method, r->key ? r->key : "",
			 r->cc != CURLE_OK ? r->curl_err : "server error", attempt + 1);
		backoff(s, attempt);
	}
}

/* Turn a failed exchange into a TW_E* code and a clear message. */
static int req_fail(const struct req *r, struct tw_err *e)
{
	char what[KEY_CAP + 400];
	if (r->s == NULL)
		snprintf(what, sizeof what, "%s", r->key ? r->key : "(bucket)");
	else if (r->key)
		snprintf(what, sizeof what, "%s in bucket %s at %s", r->key, r->s->bucket,
			 r->s->host);
	else
		snprintf(what, sizeof what, "bucket %s at %s", r->s->bucket, r->s->host);
	if (r->overflow)
		return tw_err_set(e, TW_ELIMIT, "S3 %s %s: response larger than %zu bytes",
				  r->method, what, r->resp_cap);
	if (r->cc != CURLE_OK)
		return tw_err_set(e, r->cc == CURLE_OPERATION_TIMEDOUT ? TW_ETIMEDOUT : TW_EIO,
				  "S3 %s %s: %s", r->method, what, r->curl_err);
	char code[64] = "", msg[256] = "";
	if (r->resp.len) {
		tw_s3_xml_text(r->resp.data, r->resp.len, "Code", code, sizeof code);
		tw_s3_xml_text(r->resp.data, r->resp.len, "Message", msg, sizeof msg);
		printable(code);
		printable(msg);
	}
	int c = r->status == 404 ? TW_ENOENT
		: r->status == 403 ? TW_EPERM
		: r->status == 412 ? TW_EEXIST
		: r->status == 416 ? TW_EINVAL
				   : TW_EIO;
	if (r->status == 0)
		return tw_err_set(e, TW_ECORRUPT, "S3 %s %s: ETag does not match the payload MD5",
				  r->method, what);
	return tw_err_set(e, c, "S3 %ld %s%s%s (%s %s)", r->status, code[0] ? code : "error",
			  msg[0] ? ": " : "", msg, r->method, what);
}

static void req_init(struct req *r, const char *method, const char *key, size_t resp_cap)
{
	memset(r, 0, sizeof *r);
	r->method = method;
	r->key = key;
	r->resp_cap = resp_cap;
	tw_dbuf_init(&r->resp, resp_cap);
}

/* ------------------------------------------------------------------ */
/* Operations.                                                          */

static int head_object(struct s3 *s, const char *key, uint64_t *size, char *etag, size_t ecap,
		       struct tw_err *e)
{
	struct req r;
	req_init(&r, "HEAD", key, 0);
	int rc = run_req(s, &r, 1);
	if (rc == 0 && !ok_status(r.status))
		rc = BAD_STATUS;
	if (rc != 0)
		rc = rc == TW_ELIMIT || rc == TW_ENOMEM ? tw_err_set(e, rc, "S3 HEAD %s failed", key)
							 : req_fail(&r, e);
	else {
		if (size)
			*size = r.have_cl ? r.content_length : 0;
		if (etag)
			snprintf(etag, ecap, "%s", r.etag);
	}
	tw_dbuf_free(&r.resp);
	return rc;
}

/* A payload digest the caller vouches for: 64 lowercase hex digits. */
static int is_sha256_hex(const char *name)
{
	size_t i = 0;
	for (; name[i] != '\0'; i++)
		if (!((name[i] >= '0' && name[i] <= '9') || (name[i] >= 'a' && name[i] <= 'f')))
			return 0;
	return i == 64;
}

/* sha256_hex: the payload's digest when the caller has it (packs are named by
 * it), else NULL. With it, the signed x-amz-content-sha256 is what protects the
 * transfer (the server recomputes it and refuses a mismatch), so the payload
 * is not read twice more for SHA-256 and MD5. */
static int put_single(struct s3 *s, const char *key, const void *buf, size_t len, int excl,
		      const char *sha256_hex, struct tw_err *e)
{
	struct req r;
	req_init(&r, "PUT", key, 64 << 10);
	r.body = buf;
	r.body_len = len;
	r.has_body = 1;
	r.want_md5 = sha256_hex == NULL || excl;
	if (sha256_hex != NULL) {
		memcpy(r.sha256, sha256_hex, 65);
		r.sha_given = 1;
	}
	r.if_none_match = excl;
	int rc;
	if (!excl) {
		rc = run_req(s, &r, 1);
		if (rc == 0 && !ok_status(r.status))
			rc = BAD_STATUS;
		if (rc != 0)
			rc = req_fail(&r, e);
		tw_dbuf_free(&r.resp);
		return rc;
	}
	/* Conditional put: a lost reply is ambiguous. Never resend blindly:
	 * look with HEAD whether our object landed (same MD5) first. */
	prepare_digests(&r);
	int ambiguous = 0;
	for (unsigned attempt = 0;; attempt++) {
		rc = perform_once(s, &r);
		if (rc != 0)
			break;
		if (r.cc == CURLE_OK && ok_status(r.status)) {
			if (etag_mismatch(&r))
				rc = tw_err_set(e, TW_ECORRUPT, "S3 PUT %s: ETag is not the payload MD5",
						key);
			break;
		}
		if (r.cc == CURLE_OK && r.status == 412 && !ambiguous) {
			rc = tw_err_set(e, TW_EEXIST, "S3 %s exists", key);
			break;
		}
		if (r.status != 412 && !transient(&r)) {
			rc = req_fail(&r, e);
			break;
		}
		if (r.status == 412 || maybe_landed(&r)) {
			ambiguous = 1;
			char etag[80];
			int hr = head_object(s, key, NULL, etag, sizeof etag, e);
			if (hr == 0) {
				if (strcasecmp(etag, r.md5_hex) == 0) {
					tw_debug("S3 PUT %s: reply lost, object landed", key);
					rc = 0;
				} else
					rc = tw_err_set(e, TW_EEXIST, "S3 %s exists", key);
				break;
			}
			if (hr != TW_ENOENT) {
				rc = hr;
				break;
			}
		}
		if (attempt + 1 >= s->tries) {
			rc = req_fail(&r, e);
			break;
		}
		backoff(s, attempt);
	}
	tw_dbuf_free(&r.resp);
	return rc;
}

/* Multipart upload, parts sent by up to MP_THREADS threads. */
struct mp {
	struct s3 *s;
	const char *key;
	const uint8_t *buf;
	size_t len;
	char upload_enc[512];
	unsigned nparts;
	atomic_uint next;
	atomic_int failed;
	char (*etags)[80];
	pthread_mutex_t mu;
	struct tw_err err;
};

static int put_part(struct mp *m, unsigned i)
{
	char q[640];
	int n = snprintf(q, sizeof q, "partNumber=%u&uploadId=%s", i + 1, m->upload_enc);
	if (n < 0 || (size_t)n >= sizeof q)
		return TW_ELIMIT;
	struct req r;
	req_init(&r, "PUT", m->key, 64 << 10);
	r.query = q;
	size_t off = (size_t)i * PART_SIZE;
	r.body = m->buf + off;
	r.body_len = m->len - off < PART_SIZE ? m->len - off : PART_SIZE;
	r.has_body = 1;
	r.want_md5 = 1;
	struct tw_err e = {0};
	int rc = run_req(m->s, &r, 1);
	/* the ETag goes back into the completion XML: keep it plain */
	if (rc == 0 && (!ok_status(r.status) || r.etag[0] == '\0' ||
			strpbrk(r.etag, "<>&\"") != NULL))
		rc = BAD_STATUS;
	if (rc != 0) {
		if (r.cc == CURLE_OK && ok_status(r.status))
			rc = tw_err_set(&e, TW_EPROTO, "S3 part %u of %s: missing or odd ETag",
					i + 1, m->key);
		else
			rc = req_fail(&r, &e);
		pthread_mutex_lock(&m->mu);
		if (m->err.code == 0)
			m->err = e;
		pthread_mutex_unlock(&m->mu);
	} else
		snprintf(m->etags[i], sizeof m->etags[i], "%s", r.etag);
	tw_dbuf_free(&r.resp);
	return rc;
}

static void *mp_worker(void *arg)
{
	struct mp *m = arg;
	for (;;) {
		if (atomic_load(&m->failed))
			break;
		unsigned i = atomic_fetch_add(&m->next, 1);
		if (i >= m->nparts)
			break;
		if (put_part(m, i) != 0)
			atomic_store(&m->failed, 1);
	}
	return NULL;
}

static void mp_abort(struct s3 *s, struct mp *m)
{
	char q[600];
	snprintf(q, sizeof q, "uploadId=%s", m->upload_enc);
	struct req r;
	req_init(&r, "DELETE", m->key, 64 << 10);
	r.query = q;
	if (run_req(s, &r, 1) != 0 || !ok_status(r.status))
		tw_warn("S3: could not abort multipart upload of %s (a lifecycle rule will have "
			"to clean it)", m->key);
	tw_dbuf_free(&r.resp);
}

static int put_multipart(struct s3 *s, const char *key, const void *buf, size_t len,
			 struct tw_err *e)
{
	struct mp m;
	memset(&m, 0, sizeof m);
	m.s = s;
	m.key = key;
	m.buf = buf;
	m.len = len;
	m.nparts = (unsigned)((len + PART_SIZE - 1) / PART_SIZE);
	if (m.nparts > MAX_PARTS)
		return tw_err_set(e, TW_ELIMIT, "S3 PUT %s: object too large", key);
	struct req r;
	req_init(&r, "POST", key, 64 << 10);
	r.query = "uploads=";
	r.has_body = 1;
	/* Not idempotent in theory (a retry starts a second upload), harmless
	 * in practice: the orphan is never completed. Retried. */
	int rc = run_req(s, &r, 1);
	char upload[400];
	if (rc == 0 && (!ok_status(r.status) ||
			tw_s3_xml_text(r.resp.data, r.resp.len, "UploadId", upload, sizeof upload) !=
				0))
		rc = BAD_STATUS;
	if (rc != 0) {
		rc = req_fail(&r, e);
		tw_dbuf_free(&r.resp);
		return rc ? rc : tw_err_set(e, TW_EPROTO, "S3 POST %s: no UploadId", key);
	}
	tw_dbuf_free(&r.resp);
	if (query_encode(upload, atomic_load(&s->raw_slash), m.upload_enc, sizeof m.upload_enc) !=
	    0)
		return tw_err_set(e, TW_EPROTO, "S3: UploadId too long");
	m.etags = calloc(m.nparts, sizeof *m.etags);
	if (m.etags == NULL) {
		mp_abort(s, &m);
		return tw_err_set(e, TW_ENOMEM, "out of memory");
	}
	pthread_mutex_init(&m.mu, NULL);
	pthread_t th[MP_THREADS];
	unsigned nth = m.nparts < MP_THREADS ? m.nparts : MP_THREADS, started = 0;
	for (unsigned i = 1; i < nth; i++)
		if (pthread_create(&th[started], NULL, mp_worker, &m) == 0)
			started++;
	mp_worker(&m);
	for (unsigned i = 0; i < started; i++)
		pthread_join(th[i], NULL);
	pthread_mutex_destroy(&m.mu);
	if (atomic_load(&m.failed)) {
		if (e != NULL)
			*e = m.err;
		rc = m.err.code ? m.err.code : TW_EIO;
		goto fail;
	}
	struct tw_dbuf x;
	tw_dbuf_init(&x, (size_t)m.nparts * 160 + 128);
	rc = tw_dbuf_appendf(&x, "<CompleteMultipartUpload>");
	for (unsigned i = 0; i < m.nparts && rc == 0; i++)
		rc = tw_dbuf_appendf(&x, "<Part><PartNumber>%u</PartNumber><ETag>\"%s\"</ETag></Part>",
				     i + 1, m.etags[i]);
	if (rc == 0)
		rc = tw_dbuf_appendf(&x, "</CompleteMultipartUpload>");
	if (rc != 0) {
		tw_dbuf_free(&x);
		rc = tw_err_set(e, rc, "S3: building the part list failed");
		goto fail;
	}
	char q[600];
	snprintf(q, sizeof q, "uploadId=%s", m.upload_enc);
	req_init(&r, "POST", key, 64 << 10);
	r.query = q;
	r.body = (const uint8_t *)x.data;
	r.body_len = x.len;
	r.has_body = 1;
	/* Completing the same upload twice is safe (same parts, same result). */
	rc = run_req(s, &r, 1);
	/* S3 may answer 200 and put an <Error> in the body. */
	if (rc == 0 && (!ok_status(r.status) ||
			(r.resp.len && memmem(r.resp.data, r.resp.len, "<Error>", 7) != NULL)))
		rc = BAD_STATUS;
	if (rc != 0) {
		rc = req_fail(&r, e);
		if (rc == 0)
			rc = tw_err_set(e, TW_EIO, "S3 complete multipart %s failed", key);
	}
	tw_dbuf_free(&r.resp);
	tw_dbuf_free(&x);
	if (rc != 0) {
		/* A retried complete may find the upload gone because the first
		 * one succeeded: accept if the object is there with our size. */
		uint64_t size;
		if (head_object(s, key, &size, NULL, 0, NULL) == 0 && size == len) {
			free(m.etags);
			return 0;
		}
		goto fail;
	}
	free(m.etags);
	return 0;
fail:
	mp_abort(s, &m);
	free(m.etags);
	return rc;
}

static int s3_put(struct tw_storage *st, enum tw_st_type t, const char *name, const void *buf,
		  size_t len, int flags, struct tw_err *e)
{
	struct s3 *s = (struct s3 *)st;
	char key[KEY_CAP];
	int rc = key_of(s, t, name, key, sizeof key, e);
	if (rc != 0)
		return rc;
	int excl = (flags & TW_ST_EXCL) != 0;
	/* Conditional puts stay single-part (If-None-Match on a multipart
	 * completion is not universally supported); S3 takes up to 5 GiB. */
	if (len > SINGLE_PUT_MAX && !excl)
		return put_multipart(s, key, buf, len, e);
	if (len > ((size_t)5 << 30))
		return tw_err_set(e, TW_ELIMIT, "S3 PUT %s: conditional object too large", key);
	return put_single(s, key, buf, len, excl,
			  (flags & TW_ST_SHA256_NAME) && is_sha256_hex(name) ? name : NULL, e);
}

static int s3_stat(struct tw_storage *st, enum tw_st_type t, const char *name, uint64_t *size,
		   struct tw_err *e)
{
	struct s3 *s = (struct s3 *)st;
	char key[KEY_CAP];
	int rc = key_of(s, t, name, key, sizeof key, e);
	if (rc != 0)
		return rc;
	return head_object(s, key, size, NULL, 0, e);
}

static int s3_get(struct tw_storage *st, enum tw_st_type t, const char *name, uint64_t off,
		  uint64_t len, uint8_t **out, size_t *out_len, struct tw_err *e)
{
	struct s3 *s = (struct s3 *)st;
	*out = NULL;
	*out_len = 0;
	char key[KEY_CAP], range[64];
	int rc = key_of(s, t, name, key, sizeof key, e);
	if (rc != 0)
		return rc;
	if (len == 0) {
		uint64_t size;
		rc = head_object(s, key, &size, NULL, 0, e);
		if (rc != 0)
			return rc;
		if (off > size)
			return tw_err_set(e, TW_EINVAL, "%s: offset %llu past end", key,
					  (unsigned long long)off);
		*out = malloc(1);
		return *out ? 0 : tw_err_set(e, TW_ENOMEM, "out of memory");
	}
	/* room for an error body, and for a server that ignores Range */
	uint64_t cap = GET_CAP;
	if (len != TW_ST_WHOLE && off < GET_CAP && len < GET_CAP - off)
		cap = off + len < (64 << 10) ? (64 << 10) : off + len;
	struct req r;
	req_init(&r, "GET", key, (size_t)cap);
	if (len != TW_ST_WHOLE) {
		if (off > UINT64_MAX - len)
			return tw_err_set(e, TW_EINVAL, "bad range");
		snprintf(range, sizeof range, "bytes=%llu-%llu", (unsigned long long)off,
			 (unsigned long long)(off + len - 1));
		r.range = range;
	} else if (off > 0) {
		snprintf(range, sizeof range, "bytes=%llu-", (unsigned long long)off);
		r.range = range;
	}
	rc = run_req(s, &r, 1);
	if (rc == 0 && r.status == 416) {
		/* range starts at or past the end: empty at the end, else error */
		uint64_t size;
		tw_dbuf_free(&r.resp);
		rc = head_object(s, key, &size, NULL, 0, e);
		if (rc != 0)
			return rc;
		if (off != size)
			return tw_err_set(e, TW_EINVAL, "%s: offset %llu past end", key,
					  (unsigned long long)off);
		*out = malloc(1);
		return *out ? 0 : tw_err_set(e, TW_ENOMEM, "out of memory");
	}
	if (rc == 0 && !ok_status(r.status))
		rc = BAD_STATUS;
	if (rc != 0) {
		rc = req_fail(&r, e);
		tw_dbuf_free(&r.resp);
		return rc;
	}
	if (r.have_cl && r.resp.len != r.content_length) {
		tw_dbuf_free(&r.resp);
		return tw_err_set(e, TW_EPROTO, "S3 GET %s: short body", key);
	}
	size_t skip = 0;
	if (r.status == 200 && r.range != NULL) {
		/* the server ignored Range: cut the slice ourselves */
		if (off > r.resp.len) {
			tw_dbuf_free(&r.resp);
			return tw_err_set(e, TW_EINVAL, "%s: offset past end", key);
		}
		skip = (size_t)off;
	}
	size_t n = r.resp.len - skip;
	if (len != TW_ST_WHOLE && n > len)
		n = (size_t)len;
	if (skip)
		memmove(r.resp.data, r.resp.data + skip, n);
	if (r.resp.data == NULL) {
		*out = malloc(1);
		if (*out == NULL)
			return tw_err_set(e, TW_ENOMEM, "out of memory");
	} else
		*out = (uint8_t *)r.resp.data;
	*out_len = n;
	return 0;
}

static int s3_del(struct tw_storage *st, enum tw_st_type t, const char *name, struct tw_err *e)
{
	struct s3 *s = (struct s3 *)st;
	char key[KEY_CAP];
	int rc = key_of(s, t, name, key, sizeof key, e);
	if (rc != 0)
		return rc;
	/* S3 DELETE succeeds on a missing key; the interface wants ENOENT. */
	rc = head_object(s, key, NULL, NULL, 0, e);
	if (rc != 0)
		return rc;
	struct req r;
	req_init(&r, "DELETE", key, 64 << 10);
	rc = run_req(s, &r, 1);
	if (rc == 0 && !ok_status(r.status))
		rc = BAD_STATUS;
	if (rc != 0)
		rc = req_fail(&r, e);
	tw_dbuf_free(&r.resp);
	return rc;
}

struct list_ctx {
	const struct s3 *s;
	enum tw_st_type t;
	size_t dir_len;
	tw_st_list_cb cb;
	void *arg;
};

static int list_key(void *arg, const char *key, size_t klen, uint64_t size)
{
	struct list_ctx *c = arg;
	if (klen <= c->dir_len)
		return 0;
	const char *rest = key + c->dir_len;
	const char *name = rest;
	if (c->t == TW_ST_DATA) {
		/* "NN/NAME" with NN the first two characters of NAME */
		if (strlen(rest) < 5 || rest[2] != '/' || memcmp(rest, rest + 3, 2) != 0)
			return 0;
		name = rest + 3;
	}
	if (strchr(name, '/') != NULL || !tw_storage_name_ok(name))
		return 0;
	return c->cb(c->arg, name, size);
}

static int list_query(struct s3 *s, const char *prefix, const char *token, int max_keys,
		      int raw_slash, struct req *r, struct tw_err *e)
{
	char pfx[KEY_CAP * 3], tok[TW_S3_TOKEN_CAP * 3], q[sizeof pfx + sizeof tok + 96];
	req_init(r, "GET", NULL, XML_CAP);
	if (query_encode(prefix, raw_slash, pfx, sizeof pfx) != 0 ||
	    query_encode(token, raw_slash, tok, sizeof tok) != 0)
		return tw_err_set(e, TW_ELIMIT, "S3 list: query too long");
	char mk[32] = "";
	if (max_keys > 0)
		snprintf(mk, sizeof mk, "max-keys=%d&", max_keys);
	/* names sorted, as the canonical request wants them */
	int n = snprintf(q, sizeof q, "%s%s%slist-type=2&%sprefix=%s",
			 token[0] ? "continuation-token=" : "", tok, token[0] ? "&" : "", mk, pfx);
	if (n < 0 || (size_t)n >= sizeof q)
		return tw_err_set(e, TW_ELIMIT, "S3 list: query too long");
	r->query = q;
	int rc = run_req(s, r, 1);
	r->query = NULL;
	if (rc == 0 && !ok_status(r->status))
		rc = BAD_STATUS;
	return rc == 0 ? 0 : req_fail(r, e);
}

static int sig_mismatch(const struct req *r)
{
	return r->cc == CURLE_OK && r->status == 403 && r->resp.len &&
	       memmem(r->resp.data, r->resp.len, "SignatureDoesNotMatch", 21) != NULL;
}

/* One ListObjectsV2 page into r (2xx) or an error in e. moto signs a '/'
 * in query values unescaped: on a signature mismatch with a '/' in the
 * query, try once that way and keep it if it works. */
static int list_page(struct s3 *s, const char *prefix, const char *token, int max_keys,
		     struct req *r, struct tw_err *e)
{
	int raw = atomic_load(&s->raw_slash);
	int rc = list_query(s, prefix, token, max_keys, raw, r, e);
	if (rc == 0 || raw || !sig_mismatch(r) || (!strchr(prefix, '/') && !strchr(token, '/')))
		return rc;
	struct req r2;
	struct tw_err e2 = {0};
	int rc2 = list_query(s, prefix, token, max_keys, 1, &r2, &e2);
	if (rc2 == 0) {
		tw_debug("S3: server signs '/' in query values unescaped");
		atomic_store(&s->raw_slash, 1);
	}
	if (sig_mismatch(&r2)) { /* the same answer: a real mismatch */
		tw_dbuf_free(&r2.resp);
		return rc;
	}
	tw_dbuf_free(&r->resp);
	*r = r2;
	if (rc2 != 0 && e != NULL)
		*e = e2;
	return rc2;
}

static int s3_list(struct tw_storage *st, enum tw_st_type t, tw_st_list_cb cb, void *arg,
		   struct tw_err *e)
{
	struct s3 *s = (struct s3 *)st;
	if ((unsigned)t >= TW_ST_NTYPES)
		return tw_err_set(e, TW_EINVAL, "bad type");
	if (t == TW_ST_CONFIG) {
		uint64_t size;
		if (s3_stat(st, t, "config", &size, NULL) == 0)
			return cb(arg, "config", size);
		return 0;
	}
	char dir[KEY_CAP];
	int rc = key_of(s, t, NULL, dir, sizeof dir, e);
	if (rc != 0)
		return rc;
	struct list_ctx c = {s, t, strlen(dir), cb, arg};
	char *token = calloc(1, TW_S3_TOKEN_CAP);
	if (token == NULL)
		return tw_err_set(e, TW_ENOMEM, "out of memory");
	for (unsigned pages = 0;; pages++) {
		struct req r;
		rc = list_page(s, dir, token, 0, &r, e);
		if (rc != 0) {
			tw_dbuf_free(&r.resp);
			break;
		}
		struct tw_s3_list_page page;
		rc = tw_s3_parse_list(r.resp.data ? r.resp.data : "", r.resp.len, list_key, &c,
				      &page, e);
		tw_dbuf_free(&r.resp);
		if (rc != 0 || !page.truncated)
			break;
		if (pages > 1000000) {
			rc = tw_err_set(e, TW_ELIMIT, "S3 list: too many pages");
			break;
		}
		memcpy(token, page.next_token, TW_S3_TOKEN_CAP);
	}
	free(token);
	return rc;
}

/* ---- leftovers: multipart uploads never completed ----
 * Puts are atomic and leave nothing; a process killed during a multipart
 * put (objects above SINGLE_PUT_MAX) leaves an upload whose parts are stored
 * and billed until it is aborted. ids are "REL?uploadId=ID", REL the key
 * below the prefix; only keys with the repository layout are ours. */

/* rel names an object of ours: "config", TYPE/NAME, or data/NN/NAME. */
static int rel_key_ok(const char *rel)
{
	if (strcmp(rel, "config") == 0)
		return 1;
	const char *sl = strchr(rel, '/');
	if (sl == NULL)
		return 0;
	for (int t = TW_ST_KEY; t < TW_ST_NTYPES; t++) {
		const char *tn = tw_storage_type_name((enum tw_st_type)t);
		size_t tl = strlen(tn);
		if ((size_t)(sl - rel) != tl || strncmp(rel, tn, tl) != 0)
			continue;
		const char *name = sl + 1;
		if (t == TW_ST_DATA) {
			if (strlen(name) < 5 || name[2] != '/' || memcmp(name, name + 3, 2) != 0)
				return 0;
			name += 3;
		}
		return strchr(name, '/') == NULL && tw_storage_name_ok(name);
	}
	return 0;
}

#define QUERY_CAP 8192
typedef int (*query_fn)(const void *ctx, int raw_slash, char *q, size_t cap);

/* GET key?query into r (2xx) or an error in e; r->resp is the caller's to
 * free either way. A signature mismatch with an encoded '/' in the query is
 * retried once with '/' raw, as list_page does (moto). */
static int get_query(struct s3 *s, const char *key, query_fn qf, const void *ctx, struct req *r,
		     struct tw_err *e)
{
	char *q = malloc(QUERY_CAP);
	if (q == NULL) {
		req_init(r, "GET", key, XML_CAP);
		return tw_err_set(e, TW_ENOMEM, "out of memory");
	}
	int raw = atomic_load(&s->raw_slash), rc;
	for (int pass = 0;; pass++) {
		req_init(r, "GET", key, XML_CAP);
		if (qf(ctx, raw, q, QUERY_CAP) != 0) {
			rc = tw_err_set(e, TW_ELIMIT, "S3: query too long");
			break;
		}
		r->query = q;
		rc = run_req(s, r, 1);
		r->query = NULL;
		if (rc == 0 && ok_status(r->status)) {
			if (pass > 0)
				atomic_store(&s->raw_slash, 1);
			break;
		}
		if (pass == 0 && !raw && sig_mismatch(r) && strstr(q, "%2F") != NULL) {
			tw_dbuf_free(&r->resp);
			raw = 1;
			continue;
		}
		rc = req_fail(r, e);
		break;
	}
	free(q);
	return rc;
}

struct uploads_q {
	const char *prefix, *key_marker, *upload_marker;
};

/* names sorted, as the canonical request wants them */
static int uploads_query(const void *ctx, int raw, char *q, size_t cap)
{
	const struct uploads_q *u = ctx;
	char km[(KEY_CAP + 1) * 3], pf[sizeof ((struct s3 *)0)->prefix * 3],
		um[(TW_S3_UPLOAD_ID_MAX + 1) * 3];
	if (query_encode(u->key_marker, raw, km, sizeof km) != 0 ||
	    query_encode(u->prefix, raw, pf, sizeof pf) != 0 ||
	    query_encode(u->upload_marker, raw, um, sizeof um) != 0)
		return TW_ELIMIT;
	int n = snprintf(q, cap, "%s%s%sprefix=%s&%s%s%suploads=", km[0] ? "key-marker=" : "", km,
			 km[0] ? "&" : "", pf, um[0] ? "upload-id-marker=" : "", um, um[0] ? "&" : "");
	return n < 0 || (size_t)n >= cap ? TW_ELIMIT : 0;
}

struct parts_q {
	const char *upload_id;
	unsigned marker;
};

static int parts_query(const void *ctx, int raw, char *q, size_t cap)
{
	const struct parts_q *p = ctx;
	char id[(TW_S3_UPLOAD_ID_MAX + 1) * 3], mk[48] = "";
	if (query_encode(p->upload_id, raw, id, sizeof id) != 0)
		return TW_ELIMIT;
	if (p->marker)
		snprintf(mk, sizeof mk, "part-number-marker=%u&", p->marker);
	int n = snprintf(q, cap, "%suploadId=%s", mk, id);
	return n < 0 || (size_t)n >= cap ? TW_ELIMIT : 0;
}

struct upload {
	char *rel;
	char id[TW_S3_UPLOAD_ID_MAX + 1];
	int64_t initiated;
};

struct uploads {
	const struct s3 *s;
	size_t plen;
	struct upload *v;
	size_t n, cap;
};

static int collect_upload(void *arg, const char *key, size_t klen, const char *id,
			  int64_t initiated)
{
	struct uploads *u = arg;
	/* another application's upload in the same bucket is none of ours */
	if (klen <= u->plen || strncmp(key, u->s->prefix, u->plen) != 0 ||
	    !rel_key_ok(key + u->plen))
		return 0;
	if (u->n == u->cap) {
		if (u->cap >= 1000000)
			return TW_ELIMIT;
		size_t cap = u->cap ? u->cap * 2 : 16;
		struct upload *v = realloc(u->v, cap * sizeof *v);
		if (v == NULL)
			return TW_ENOMEM;
		u->v = v;
		u->cap = cap;
	}
	struct upload *x = &u->v[u->n];
	if ((x->rel = strdup(key + u->plen)) == NULL)
		return TW_ENOMEM;
	snprintf(x->id, sizeof x->id, "%s", id);
	x->initiated = initiated;
	u->n++;
	return 0;
}

/* Size and time of the last part of one upload; TW_ENOENT when it is gone
 * (completed or aborted since it was listed). */
static int upload_parts(struct s3 *s, const struct upload *up, uint64_t *bytes, int64_t *newest,
			struct tw_err *e)
{
	char key[KEY_CAP];
	int n = snprintf(key, sizeof key, "%s%s", s->prefix, up->rel);
	if (n < 0 || (size_t)n >= sizeof key)
		return tw_err_set(e, TW_ELIMIT, "object key too long");
	struct parts_q pq = {up->id, 0};
	*bytes = 0;
	*newest = 0;
	for (unsigned pages = 0;; pages++) {
		struct req r;
		int rc = get_query(s, key, parts_query, &pq, &r, e);
		struct tw_s3_parts_page pg;
		if (rc == 0)
			rc = tw_s3_parse_parts(r.resp.data ? r.resp.data : "", r.resp.len, &pg, e);
		tw_dbuf_free(&r.resp);
		if (rc != 0)
			return rc;
		if (pg.bytes > UINT64_MAX - *bytes)
			return tw_err_set(e, TW_EPROTO, "S3 parts list: sizes overflow");
		*bytes += pg.bytes;
		if (pg.newest > *newest)
			*newest = pg.newest;
		if (!pg.truncated)
			return 0;
		if (pg.next_marker <= pq.marker || pages >= MAX_PARTS)
			return tw_err_set(e, TW_EPROTO, "S3 parts list: marker does not advance");
		pq.marker = pg.next_marker;
	}
}

static int s3_tmp_list(struct tw_storage *st, tw_st_tmp_cb cb, void *arg, struct tw_err *e)
{
	struct s3 *s = (struct s3 *)st;
	struct uploads u = {s, strlen(s->prefix), NULL, 0, 0};
	struct tw_s3_uploads_page *pg = calloc(2, sizeof *pg); /* [0] this page, [1] markers */
	if (pg == NULL)
		return tw_err_set(e, TW_ENOMEM, "out of memory");
	time_t now = 0;
	int rc = 0;
	for (unsigned pages = 0;; pages++) {
		struct uploads_q q = {s->prefix, pg[1].next_key, pg[1].next_upload};
		struct req r;
		rc = get_query(s, NULL, uploads_query, &q, &r, e);
		if (rc != 0 && pages == 0 && r.cc == CURLE_OK && (r.status == 403 || r.status == 501)) {
			/* a policy without s3:ListBucketMultipartUploads, or a store
			 * without the call: say so, and let check and prune go on */
			tw_warn("S3: cannot list multipart uploads (%s); incomplete uploads are not "
				"checked (a bucket lifecycle rule can abort them)",
				e != NULL ? e->msg : "refused");
			tw_dbuf_free(&r.resp);
			if (e != NULL)
				memset(e, 0, sizeof *e);
			rc = 0;
			break;
		}
		if (rc == 0 && now == 0)
			now = r.date; /* the server's clock: Initiated is on it */
		if (rc == 0)
			rc = tw_s3_parse_uploads(r.resp.data ? r.resp.data : "", r.resp.len,
						 collect_upload, &u, &pg[0], e);
		tw_dbuf_free(&r.resp);
		if (rc == TW_ENOMEM)
			rc = tw_err_set(e, TW_ENOMEM, "out of memory");
		else if (rc == TW_ELIMIT)
			rc = tw_err_set(e, TW_ELIMIT, "S3: too many multipart uploads");
		if (rc != 0 || !pg[0].truncated)
			break;
		if ((strcmp(pg[0].next_key, pg[1].next_key) == 0 &&
		     strcmp(pg[0].next_upload, pg[1].next_upload) == 0) ||
		    pages > 100000) {
			rc = tw_err_set(e, TW_EPROTO, "S3 uploads list: markers do not advance");
			break;
		}
		pg[1] = pg[0];
	}
	free(pg);
	if (now == 0)
		now = time(NULL);
	char id[KEY_CAP + TW_S3_UPLOAD_ID_MAX + 16];
	for (size_t i = 0; rc == 0 && i < u.n; i++) {
		const struct upload *up = &u.v[i];
		uint64_t bytes = 0;
		int64_t newest = 0;
		struct tw_err pe = {0};
		int pr = upload_parts(s, up, &bytes, &newest, &pe);
		if (pr == TW_ENOENT)
			continue; /* completed or aborted meanwhile */
		if (pr != 0) {
			rc = pr;
			if (e != NULL)
				*e = pe;
			break;
		}
		/* age since last written: the newest part, else the start */
		int64_t last = newest > up->initiated ? newest : up->initiated;
		uint64_t age = (int64_t)now > last ? (uint64_t)((int64_t)now - last) : 0;
		age += s->upload_age_bias;
		snprintf(id, sizeof id, "%s?uploadId=%s", up->rel, up->id);
		rc = cb(arg, id, bytes, age);
	}
	for (size_t i = 0; i < u.n; i++)
		free(u.v[i].rel);
	free(u.v);
	return rc;
}

static int s3_tmp_del(struct tw_storage *st, const char *id, struct tw_err *e)
{
	struct s3 *s = (struct s3 *)st;
	const char *sep = strstr(id, "?uploadId=");
	char rel[KEY_CAP], key[KEY_CAP];
	if (sep == NULL || (size_t)(sep - id) >= sizeof rel)
		return tw_err_set(e, TW_EINVAL, "%s: not a multipart upload", id);
	memcpy(rel, id, (size_t)(sep - id));
	rel[sep - id] = '\0';
	const char *up = sep + 10;
	if (!rel_key_ok(rel) || !upload_id_ok(up, strlen(up)))
		return tw_err_set(e, TW_EINVAL, "%s: not a multipart upload", id);
	int n = snprintf(key, sizeof key, "%s%s", s->prefix, rel);
	if (n < 0 || (size_t)n >= sizeof key)
		return tw_err_set(e, TW_ELIMIT, "object key too long");
	char enc[(TW_S3_UPLOAD_ID_MAX + 1) * 3], q[sizeof enc + 16];
	if (query_encode(up, atomic_load(&s->raw_slash), enc, sizeof enc) != 0)
		return tw_err_set(e, TW_ELIMIT, "S3: UploadId too long");
	snprintf(q, sizeof q, "uploadId=%s", enc);
	/* AbortMultipartUpload: frees the parts, never touches a completed object */
	struct req r;
	req_init(&r, "DELETE", key, 64 << 10);
	r.query = q;
	int rc = run_req(s, &r, 1);
	if (rc == 0 && !ok_status(r.status) && r.status != 404)
		rc = BAD_STATUS;
	if (rc != 0)
		rc = req_fail(&r, e);
	tw_dbuf_free(&r.resp);
	return rc;
}

static void s3_close(struct tw_storage *st)
{
	struct s3 *s = (struct s3 *)st;
	if (s == NULL)
		return;
	curl_share_cleanup(s->share);
	for (int i = 0; i < CURL_LOCK_DATA_LAST; i++)
		pthread_mutex_destroy(&s->locks[i]);
	OPENSSL_cleanse(&s->creds, sizeof s->creds);
	free(s);
}

/* No streaming writer: S3 cannot rename, and a pack's name is known only at
 * its end, so packs are put whole (multipart above SINGLE_PUT_MAX). */
static const struct tw_storage_ops s3_ops = {
	.put = s3_put,
	.get = s3_get,
	.list = s3_list,
	.del = s3_del,
	.stat = s3_stat,
	.close = s3_close,
	.writer_open = NULL,
	.writer_write = NULL,
	.writer_commit = NULL,
	.writer_abort = NULL,
	.tmp_list = s3_tmp_list,
	.tmp_del = s3_tmp_del,
};

/* ------------------------------------------------------------------ */
/* Opening: location, options, credentials, bucket check.              */

static int env_u(const char *name, unsigned long min, unsigned long max, unsigned long *v,
		 struct tw_err *e)
{
	const char *s = getenv(name);
	if (s == NULL || s[0] == '\0')
		return 0;
	char *end;
	errno = 0;
	unsigned long x = strtoul(s, &end, 10);
	if (errno != 0 || *end != '\0' || x < min || x > max)
		return tw_err_set(e, TW_EINVAL, "%s: expected a number in [%lu, %lu]", name, min,
				  max);
	*v = x;
	return 0;
}

static int load_creds(struct s3 *s, struct tw_err *e)
{
	const char *id = getenv("AWS_ACCESS_KEY_ID"), *sec = getenv("AWS_SECRET_ACCESS_KEY");
	if (id && id[0] && sec && sec[0]) {
		const char *tok = getenv("AWS_SESSION_TOKEN");
		if (copy_value(s->creds.key_id, sizeof s->creds.key_id, id, strlen(id)) != 0 ||
		    copy_value(s->creds.secret, sizeof s->creds.secret, sec, strlen(sec)) != 0 ||
		    (tok && copy_value(s->creds.token, sizeof s->creds.token, tok, strlen(tok)) != 0))
			return tw_err_set(e, TW_EINVAL, "AWS credentials in the environment are "
							"malformed");
		return 0;
	}
	char path[PATH_MAX];
	const char *f = getenv("AWS_SHARED_CREDENTIALS_FILE");
	const char *home = getenv("HOME");
	int n;
	if (f && f[0])
		n = snprintf(path, sizeof path, "%s", f);
	else if (home && home[0])
		n = snprintf(path, sizeof path, "%s/.aws/credentials", home);
	else
		return tw_err_set(e, TW_ENOENT, "no S3 credentials: set AWS_ACCESS_KEY_ID and "
						"AWS_SECRET_ACCESS_KEY");
	if (n < 0 || (size_t)n >= sizeof path)
		return tw_err_set(e, TW_ELIMIT, "credentials path too long");
	const char *profile = getenv("AWS_PROFILE");
	if (profile == NULL || profile[0] == '\0')
		profile = "default";
	FILE *fp = fopen(path, "re");
	if (fp == NULL)
		return tw_err_set(e, TW_ENOENT, "no S3 credentials: AWS_ACCESS_KEY_ID unset and "
						"%s: %s", path, strerror(errno));
	char *buf = malloc(CRED_FILE_CAP + 1);
	if (buf == NULL) {
		fclose(fp);
		return tw_err_set(e, TW_ENOMEM, "out of memory");
	}
	size_t len = fread(buf, 1, CRED_FILE_CAP + 1, fp);
	int err = ferror(fp);
	fclose(fp);
	int rc;
	if (err)
		rc = tw_err_set(e, TW_EIO, "%s: read error", path);
	else {
		rc = tw_s3_parse_credentials(buf, len, profile, &s->creds, e);
		if (rc != 0)
			tw_err_wrap(e, "%s", path);
	}
	OPENSSL_cleanse(buf, len);
	free(buf);
	return rc;
}

static int valid_bucket(const char *b)
{
	size_t n = strlen(b);
	if (n < 3 || n > 63)
		return 0;
	for (size_t i = 0; i < n; i++)
		if (!((b[i] >= 'a' && b[i] <= 'z') || (b[i] >= '0' && b[i] <= '9') || b[i] == '-' ||
		      b[i] == '.'))
			return 0;
	return 1;
}

static int parse_location(struct s3 *s, const char *loc, struct tw_err *e)
{
	const char *p = loc + 3; /* after "s3:" */
	const char *rest;
	if (strncmp(p, "https://", 8) == 0) {
		snprintf(s->scheme, sizeof s->scheme, "https");
		rest = p + 8;
	} else if (strncmp(p, "http://", 7) == 0) {
		snprintf(s->scheme, sizeof s->scheme, "http");
		rest = p + 7;
	} else
		return tw_err_set(e, TW_EINVAL, "S3 location must be s3:https://HOST/BUCKET[/PREFIX]");
	const char *q = strchr(rest, '?');
	size_t rn = q ? (size_t)(q - rest) : strlen(rest);
	const char *slash = memchr(rest, '/', rn);
	if (slash == NULL || slash == rest)
		return tw_err_set(e, TW_EINVAL, "S3 location lacks a bucket: %s", loc);
	size_t hn = (size_t)(slash - rest);
	if (hn >= sizeof s->host)
		return tw_err_set(e, TW_EINVAL, "S3 host too long");
	for (size_t i = 0; i < hn; i++) {
		char c = rest[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '.' || c == '-' || c == ':' || c == '[' || c == ']'))
			return tw_err_set(e, TW_EINVAL, "S3 host has a bad character");
	}
	memcpy(s->host, rest, hn);
	s->host[hn] = '\0';
	const char *b = slash + 1, *bend = memchr(b, '/', rn - hn - 1);
	size_t bn = bend ? (size_t)(bend - b) : rn - hn - 1;
	if (bn >= sizeof s->bucket)
		return tw_err_set(e, TW_EINVAL, "S3 bucket name too long");
	memcpy(s->bucket, b, bn);
	s->bucket[bn] = '\0';
	if (!valid_bucket(s->bucket))
		return tw_err_set(e, TW_EINVAL, "bad S3 bucket name '%s' (3-63 of a-z 0-9 . -)",
				  s->bucket);
	s->prefix[0] = '\0';
	if (bend) {
		const char *pf = bend + 1;
		size_t pn = rn - hn - 1 - bn - 1;
		while (pn > 0 && pf[pn - 1] == '/')
			pn--;
		if (pn + 2 > sizeof s->prefix)
			return tw_err_set(e, TW_EINVAL, "S3 prefix too long");
		for (size_t i = 0; i < pn; i++) {
			char c = pf[i];
			if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
			      (c >= '0' && c <= '9') || c == '.' || c == '-' || c == '_' ||
			      c == '/'))
				return tw_err_set(e, TW_EINVAL, "S3 prefix: only A-Z a-z 0-9 . - _ /");
			if (c == '/' && (i == 0 || pf[i - 1] == '/'))
				return tw_err_set(e, TW_EINVAL, "S3 prefix: empty path segment");
		}
		if (pn) {
			memcpy(s->prefix, pf, pn);
			s->prefix[pn] = '/';
			s->prefix[pn + 1] = '\0';
		}
	}
	/* options: style=path|vhost, region=R */
	while (q && q[1]) {
		const char *opt = q + 1, *amp = strchr(opt, '&');
		size_t on = amp ? (size_t)(amp - opt) : strlen(opt);
		if (on > 6 && memcmp(opt, "style=", 6) == 0) {
			if (slice_eq(opt + 6, on - 6, "vhost"))
				s->vhost = 1;
			else if (slice_eq(opt + 6, on - 6, "path"))
				s->vhost = 0;
			else
				return tw_err_set(e, TW_EINVAL, "S3 style must be path or vhost");
		} else if (on > 7 && memcmp(opt, "region=", 7) == 0 && on - 7 < sizeof s->region) {
			if (copy_value(s->region, sizeof s->region, opt + 7, on - 7) != 0 ||
			    strchr(s->region, ':'))
				return tw_err_set(e, TW_EINVAL, "bad S3 region");
		} else
			return tw_err_set(e, TW_EINVAL, "unknown S3 option '%.*s'", (int)on, opt);
		q = amp;
	}
	return 0;
}

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static void curl_init_once(void) { curl_global_init(CURL_GLOBAL_DEFAULT); }

static int load_options(struct s3 *s, struct tw_err *e)
{
	unsigned long v;
	const char *vh = getenv("TAPWORK_S3_VHOST");
	if (vh && strcmp(vh, "1") == 0)
		s->vhost = 1;
	if (s->region[0] == '\0') {
		const char *r = getenv("AWS_REGION");
		if (r == NULL || r[0] == '\0')
			r = getenv("AWS_DEFAULT_REGION");
		if (r == NULL || r[0] == '\0')
			r = "us-east-1";
		if (copy_value(s->region, sizeof s->region, r, strlen(r)) != 0 || strchr(r, ':'))
			return tw_err_set(e, TW_EINVAL, "bad AWS_REGION");
	}
	snprintf(s->sigv4, sizeof s->sigv4, "aws:amz:%s:s3", s->region);
	const char *ca = getenv("TAPWORK_S3_CA_BUNDLE");
	if (ca == NULL || ca[0] == '\0')
		ca = getenv("AWS_CA_BUNDLE");
	if (ca && ca[0]) {
		int n = snprintf(s->ca, sizeof s->ca, "%s", ca);
		if (n < 0 || (size_t)n >= sizeof s->ca)
			return tw_err_set(e, TW_ELIMIT, "CA bundle path too long");
	}
	int rc;
	v = 0;
	if ((rc = env_u("TAPWORK_S3_LIMIT_RATE", 1024, (unsigned long)1 << 40, &v, e)) != 0)
		return rc;
	s->rate = (curl_off_t)v;
	v = 5;
	if ((rc = env_u("TAPWORK_S3_TRIES", 1, 20, &v, e)) != 0)
		return rc;
	s->tries = (unsigned)v;
	v = 200;
	if ((rc = env_u("TAPWORK_S3_RETRY_BASE_MS", 1, 60000, &v, e)) != 0)
		return rc;
	s->base_ms = (unsigned)v;
	s->cap_ms = 10000;
	v = 30;
	if ((rc = env_u("TAPWORK_S3_STALL_SECS", 1, 3600, &v, e)) != 0)
		return rc;
	s->stall_secs = (long)v;
	/* testing only: multipart uploads look this much older (prune's lease) */
	v = 0;
	if ((rc = env_u("TAPWORK_S3_UPLOAD_AGE_BIAS_S", 0, 86400, &v, e)) != 0)
		return rc;
	s->upload_age_bias = v;
	return 0;
}

/* Check the bucket with a one-key listing of our prefix (unlike HEAD it
 * gives an XML error with a code, and a policy limited to the prefix
 * allows it); create the bucket when asked. */
static int check_bucket(struct s3 *s, int create, struct tw_err *e)
{
	struct req r;
	int rc = list_page(s, s->prefix, "", 1, &r, e);
	if (rc == 0) {
		tw_dbuf_free(&r.resp);
		return 0;
	}
	int missing = r.cc == CURLE_OK && r.status == 404 && r.resp.len &&
		      memmem(r.resp.data, r.resp.len, "NoSuchBucket", 12) != NULL;
	if (!missing || !create) {
		tw_dbuf_free(&r.resp);
		if (missing)
			return tw_err_set(e, TW_ENOENT, "S3 bucket '%s' does not exist at %s "
							"(repo init creates it)", s->bucket, s->host);
		return rc;
	}
	tw_dbuf_free(&r.resp);
	char body[256];
	req_init(&r, "PUT", NULL, 64 << 10);
	if (strcmp(s->region, "us-east-1") != 0) {
		int n = snprintf(body, sizeof body,
				 "<CreateBucketConfiguration><LocationConstraint>%s</LocationConstraint>"
				 "</CreateBucketConfiguration>", s->region);
		if (n < 0 || (size_t)n >= sizeof body)
			return tw_err_set(e, TW_ELIMIT, "region too long");
		r.body = (const uint8_t *)body;
		r.body_len = (size_t)n;
	}
	r.has_body = 1;
	rc = run_req(s, &r, 1);
	if (rc == 0 && !ok_status(r.status) &&
	    !(r.status == 409 && r.resp.len && memmem(r.resp.data, r.resp.len, "BucketAlreadyOwnedByYou", 23)))
		rc = BAD_STATUS;
	if (rc != 0)
		rc = req_fail(&r, e);
	else
		tw_info("S3: created bucket %s", s->bucket);
	tw_dbuf_free(&r.resp);
	return rc;
}

int tw_s3_open(const char *location, int create, struct tw_storage **out, struct tw_err *e)
{
	*out = NULL;
	if (strncmp(location, "s3:", 3) != 0)
		return tw_err_set(e, TW_EINVAL, "not an S3 location");
	pthread_once(&curl_once, curl_init_once);
	struct s3 *s = calloc(1, sizeof *s);
	if (s == NULL)
		return tw_err_set(e, TW_ENOMEM, "out of memory");
	s->base.ops = &s3_ops;
	for (int i = 0; i < CURL_LOCK_DATA_LAST; i++)
		pthread_mutex_init(&s->locks[i], NULL);
	int rc = parse_location(s, location, e);
	if (rc == 0)
		rc = load_options(s, e);
	if (rc == 0)
		rc = load_creds(s, e);
	if (rc == 0) {
		s->share = curl_share_init();
		if (s->share == NULL)
			rc = tw_err_set(e, TW_ENOMEM, "curl_share_init failed");
	}
	if (rc == 0) {
		curl_share_setopt(s->share, CURLSHOPT_LOCKFUNC, share_lock);
		curl_share_setopt(s->share, CURLSHOPT_UNLOCKFUNC, share_unlock);
		curl_share_setopt(s->share, CURLSHOPT_USERDATA, s);
		curl_share_setopt(s->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_DNS);
		curl_share_setopt(s->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_SSL_SESSION);
		curl_share_setopt(s->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_CONNECT);
		rc = check_bucket(s, create, e);
	}
	if (rc == 0 && create) {
		uint64_t size;
		char key[KEY_CAP];
		key_of(s, TW_ST_CONFIG, "config", key, sizeof key, NULL);
		int hr = head_object(s, key, &size, NULL, 0, e);
		if (hr == 0)
			rc = tw_err_set(e, TW_EEXIST, "%s: a repository exists already", location);
		else if (hr != TW_ENOENT)
			rc = hr;
	}
	if (rc != 0) {
		s3_close(&s->base);
		return rc;
	}
	tw_debug("S3: %s://%s bucket %s prefix '%s' region %s %s-style", s->scheme, s->host,
		 s->bucket, s->prefix, s->region, s->vhost ? "vhost" : "path");
	*out = &s->base;
	return 0;
}
