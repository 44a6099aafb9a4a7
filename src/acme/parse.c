/* parse.c — ACME JSON documents into structs. See parse.h. */
#include "acme/parse.h"

#include <jansson.h>
#include <stdint.h>
#include <string.h>

static const char *const status_names[] = {"unknown",     "pending", "ready",
                                           "processing",  "valid",   "invalid",
                                           "deactivated", "expired", "revoked"};

const char *tw_acme_status_name(enum tw_acme_status s)
{
	return (unsigned)s < sizeof status_names / sizeof status_names[0] ? status_names[s]
	                                                                  : "unknown";
}

static enum tw_acme_status status_of(json_t *o)
{
	const char *s = json_string_value(json_object_get(o, "status"));
	if (s == NULL)
		return TW_ACME_ST_UNKNOWN;
	for (size_t i = 1; i < sizeof status_names / sizeof status_names[0]; i++)
		if (strcmp(s, status_names[i]) == 0)
			return (enum tw_acme_status)i;
	return TW_ACME_ST_UNKNOWN;
}

static json_t *load(const char *p, size_t len, struct tw_err *err)
{
	json_error_t je;
	if (len > TW_ACME_MAX_DOC) {
		tw_err_set(err, TW_ELIMIT, "document of %zu bytes is too large", len);
		return NULL;
	}
	json_t *j = json_loadb(p, len, JSON_REJECT_DUPLICATES, &je);
	if (j == NULL) {
		tw_err_set(err, TW_EPROTO, "bad JSON: %s", je.text);
		return NULL;
	}
	if (!json_is_object(j)) {
		json_decref(j);
		tw_err_set(err, TW_EPROTO, "expected a JSON object");
		return NULL;
	}
	return j;
}

/* Copy string member `key` (NULL when absent). Caps at `cap` bytes. */
static int str_member(json_t *o, const char *key, int required, size_t cap, struct tw_arena *a,
                      char **out, struct tw_err *err)
{
	json_t *v = json_object_get(o, key);
	*out = NULL;
	if (v == NULL || json_is_null(v)) {
		if (required)
			return tw_err_set(err, TW_EPROTO, "missing \"%s\"", key);
		return 0;
	}
	if (!json_is_string(v))
		return tw_err_set(err, TW_EPROTO, "\"%s\" is not a string", key);
	size_t n = json_string_length(v);
	if (n > cap)
		return tw_err_set(err, TW_EPROTO, "\"%s\" longer than %zu bytes", key, cap);
	const char *s = json_string_value(v);
	if (memchr(s, '\0', n) != NULL)
		return tw_err_set(err, TW_EPROTO, "\"%s\" holds a NUL byte", key);
	*out = tw_arena_strndup(a, s, n);
	return *out ? 0 : TW_ENOMEM;
}

static int url_member(json_t *o, const char *key, int required, struct tw_arena *a, char **out,
                      struct tw_err *err)
{
	int rc = str_member(o, key, required, TW_ACME_MAX_URL, a, out, err);
	if (rc == 0 && *out && strncmp(*out, "https://", 8) != 0 &&
	    strncmp(*out, "http://", 7) != 0)
		return tw_err_set(err, TW_EPROTO, "\"%s\" is not an http(s) URL", key);
	return rc;
}

static int problem_of(json_t *o, struct tw_arena *a, struct tw_acme_problem *out,
                      struct tw_err *err)
{
	int rc;
	memset(out, 0, sizeof *out);
	if ((rc = str_member(o, "type", 0, 256, a, &out->type, err)) < 0 ||
	    (rc = str_member(o, "detail", 0, 1024, a, &out->detail, err)) < 0)
		return rc;
	json_int_t st = json_integer_value(json_object_get(o, "status"));
	out->status = st > 0 && st < 1000 ? (unsigned)st : 0;
	if (out->detail == NULL) {
		json_t *sub = json_array_get(json_object_get(o, "subproblems"), 0);
		if (json_is_object(sub) &&
		    (rc = str_member(sub, "detail", 0, 1024, a, &out->detail, err)) < 0)
			return rc;
	}
	if (out->type == NULL)
		out->type = tw_arena_strdup(a, "");
	if (out->detail == NULL)
		out->detail = tw_arena_strdup(a, "");
	return out->type && out->detail ? 0 : TW_ENOMEM;
}

/* The optional "error" member of an order or challenge. */
static int error_member(json_t *o, struct tw_arena *a, struct tw_acme_problem *out,
                        struct tw_err *err)
{
	json_t *e = json_object_get(o, "error");
	if (json_is_object(e))
		return problem_of(e, a, out, err);
	memset(out, 0, sizeof *out);
	out->type = tw_arena_strdup(a, "");
	out->detail = tw_arena_strdup(a, "");
	return out->type && out->detail ? 0 : TW_ENOMEM;
}

int tw_acme_parse_dir(const char *p, size_t len, struct tw_arena *a, struct tw_acme_dir *out,
                      struct tw_err *err)
{
	json_t *j = load(p, len, err);
	int rc;
	memset(out, 0, sizeof *out);
	if (j == NULL)
		return err ? err->code : TW_EPROTO;
	if ((rc = url_member(j, "newNonce", 1, a, &out->new_nonce, err)) < 0 ||
	    (rc = url_member(j, "newAccount", 1, a, &out->new_account, err)) < 0 ||
	    (rc = url_member(j, "newOrder", 1, a, &out->new_order, err)) < 0 ||
	    (rc = url_member(j, "revokeCert", 0, a, &out->revoke_cert, err)) < 0 ||
	    (rc = url_member(j, "keyChange", 0, a, &out->key_change, err)) < 0 ||
	    (rc = url_member(j, "renewalInfo", 0, a, &out->renewal_info, err)) < 0)
		goto out;
	json_t *meta = json_object_get(j, "meta");
	if (json_is_object(meta)) {
		if ((rc = str_member(meta, "termsOfService", 0, TW_ACME_MAX_URL, a, &out->terms,
		                     err)) < 0)
			goto out;
		out->eab_required = json_is_true(json_object_get(meta, "externalAccountRequired"));
		json_t *prof = json_object_get(meta, "profiles");
		if (json_is_object(prof)) {
			size_t n = json_object_size(prof);
			if (n > TW_ACME_MAX_LIST) {
				rc = tw_err_set(err, TW_EPROTO, "too many profiles");
				goto out;
			}
			out->profiles = tw_arena_alloc(a, (n ? n : 1) * sizeof(char *));
			if (out->profiles == NULL) {
				rc = TW_ENOMEM;
				goto out;
			}
			const char *k;
			json_t *v;
			json_object_foreach(prof, k, v)
			{
				if (strlen(k) > 64) {
					rc = tw_err_set(err, TW_EPROTO, "profile name too long");
					goto out;
				}
				if ((out->profiles[out->nprofiles++] = tw_arena_strdup(a, k)) ==
				    NULL) {
					rc = TW_ENOMEM;
					goto out;
				}
			}
		}
	}
	rc = 0;
out:
	json_decref(j);
	return rc;
}

int tw_acme_parse_problem(const char *p, size_t len, struct tw_arena *a,
                          struct tw_acme_problem *out, struct tw_err *err)
{
	json_t *j = load(p, len, err);
	memset(out, 0, sizeof *out);
	if (j == NULL)
		return err ? err->code : TW_EPROTO;
	int rc = problem_of(j, a, out, err);
	json_decref(j);
	return rc;
}

int tw_acme_parse_order(const char *p, size_t len, struct tw_arena *a, struct tw_acme_order *out,
                        struct tw_err *err)
{
	json_t *j = load(p, len, err);
	int rc;
	memset(out, 0, sizeof *out);
	if (j == NULL)
		return err ? err->code : TW_EPROTO;
	out->status = status_of(j);
	if (out->status == TW_ACME_ST_UNKNOWN) {
		rc = tw_err_set(err, TW_EPROTO, "order without a known status");
		goto out;
	}
	if ((rc = url_member(j, "finalize", 1, a, &out->finalize, err)) < 0 ||
	    (rc = url_member(j, "certificate", 0, a, &out->certificate, err)) < 0 ||
	    (rc = error_member(j, a, &out->error, err)) < 0)
		goto out;
	json_t *az = json_object_get(j, "authorizations");
	if (!json_is_array(az) || json_array_size(az) == 0 ||
	    json_array_size(az) > TW_ACME_MAX_LIST) {
		rc = tw_err_set(err, TW_EPROTO, "order needs 1..%d authorizations",
		                TW_ACME_MAX_LIST);
		goto out;
	}
	out->authz = tw_arena_alloc(a, json_array_size(az) * sizeof(char *));
	if (out->authz == NULL) {
		rc = TW_ENOMEM;
		goto out;
	}
	for (size_t i = 0; i < json_array_size(az); i++) {
		json_t *v = json_array_get(az, i);
		size_t n = json_string_length(v);
		if (!json_is_string(v) || n > TW_ACME_MAX_URL ||
		    strncmp(json_string_value(v), "http", 4) != 0) {
			rc = tw_err_set(err, TW_EPROTO, "authorization %zu is not a URL", i);
			goto out;
		}
		if ((out->authz[out->nauthz++] = tw_arena_strndup(a, json_string_value(v), n)) ==
		    NULL) {
			rc = TW_ENOMEM;
			goto out;
		}
	}
	rc = 0;
out:
	json_decref(j);
	return rc;
}

int tw_acme_parse_authz(const char *p, size_t len, struct tw_arena *a, struct tw_acme_authz *out,
                        struct tw_err *err)
{
	json_t *j = load(p, len, err);
	int rc;
	memset(out, 0, sizeof *out);
	if (j == NULL)
		return err ? err->code : TW_EPROTO;
	out->status = status_of(j);
	out->wildcard = json_is_true(json_object_get(j, "wildcard"));
	json_t *id = json_object_get(j, "identifier");
	if (out->status == TW_ACME_ST_UNKNOWN || !json_is_object(id)) {
		rc = tw_err_set(err, TW_EPROTO, "authorization without status or identifier");
		goto out;
	}
	if ((rc = str_member(id, "value", 1, 253, a, &out->ident, err)) < 0)
		goto out;
	json_t *cs = json_object_get(j, "challenges");
	if (!json_is_array(cs) || json_array_size(cs) > TW_ACME_MAX_LIST) {
		rc = tw_err_set(err, TW_EPROTO, "authorization needs a list of challenges");
		goto out;
	}
	size_t n = json_array_size(cs);
	out->chal = tw_arena_alloc(a, (n ? n : 1) * sizeof *out->chal);
	if (out->chal == NULL) {
		rc = TW_ENOMEM;
		goto out;
	}
	for (size_t i = 0; i < n; i++) {
		json_t *c = json_array_get(cs, i);
		struct tw_acme_chal *ch = &out->chal[out->nchal];
		if (!json_is_object(c)) {
			rc = tw_err_set(err, TW_EPROTO, "challenge %zu is not an object", i);
			goto out;
		}
		if ((rc = str_member(c, "type", 1, 64, a, &ch->type, err)) < 0 ||
		    (rc = url_member(c, "url", 1, a, &ch->url, err)) < 0 ||
		    (rc = str_member(c, "token", 0, 256, a, &ch->token, err)) < 0 ||
		    (rc = error_member(c, a, &ch->error, err)) < 0)
			goto out;
		/* Tokens go into URLs and file names: base64url only (RFC 8555 §8.1). */
		for (const char *t = ch->token; t && *t; t++)
			if (!((*t >= 'A' && *t <= 'Z') || (*t >= 'a' && *t <= 'z') ||
			      (*t >= '0' && *t <= '9') || *t == '-' || *t == '_')) {
				rc = tw_err_set(err, TW_EPROTO, "challenge token is not base64url");
				goto out;
			}
		ch->status = status_of(c);
		out->nchal++;
	}
	rc = 0;
out:
	json_decref(j);
	return rc;
}

int tw_acme_parse_renewal_info(const char *p, size_t len, struct tw_arena *a,
                               struct tw_acme_renewal_info *out, struct tw_err *err)
{
	json_t *j = load(p, len, err);
	int rc;
	memset(out, 0, sizeof *out);
	if (j == NULL)
		return err ? err->code : TW_EPROTO;
	json_t *w = json_object_get(j, "suggestedWindow");
	const char *s = json_string_value(json_object_get(w, "start"));
	const char *e = json_string_value(json_object_get(w, "end"));
	if (s == NULL || e == NULL || tw_acme_parse_time(s, strlen(s), &out->start) < 0 ||
	    tw_acme_parse_time(e, strlen(e), &out->end) < 0 || out->end < out->start) {
		rc = tw_err_set(err, TW_EPROTO, "renewalInfo without a valid suggestedWindow");
		goto out;
	}
	rc = url_member(j, "explanationURL", 0, a, &out->explanation, err);
out:
	json_decref(j);
	return rc;
}

int tw_acme_parse_status(const char *p, size_t len, enum tw_acme_status *out, struct tw_err *err)
{
	json_t *j = load(p, len, err);
	if (j == NULL)
		return err ? err->code : TW_EPROTO;
	*out = status_of(j);
	json_decref(j);
	return 0;
}

static int digits(const char *s, size_t n, int *out)
{
	int v = 0;
	for (size_t i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return TW_EINVAL;
		v = v * 10 + (s[i] - '0');
	}
	*out = v;
	return 0;
}

int tw_acme_parse_time(const char *s, size_t len, time_t *out)
{
	int Y, M, D, h, m, sec;
	if (len < 20 || s[4] != '-' || s[7] != '-' || (s[10] != 'T' && s[10] != 't') ||
	    s[13] != ':' || s[16] != ':' || digits(s, 4, &Y) < 0 || digits(s + 5, 2, &M) < 0 ||
	    digits(s + 8, 2, &D) < 0 || digits(s + 11, 2, &h) < 0 || digits(s + 14, 2, &m) < 0 ||
	    digits(s + 17, 2, &sec) < 0)
		return TW_EINVAL;
	if (Y < 1970 || M < 1 || M > 12 || D < 1 || D > 31 || h > 23 || m > 59 || sec > 60)
		return TW_EINVAL;
	size_t i = 19;
	if (i < len && s[i] == '.') {
		i++;
		size_t st = i;
		while (i < len && s[i] >= '0' && s[i] <= '9' && i - st < 12)
			i++;
		if (i == st)
			return TW_EINVAL;
	}
	long off = 0;
	if (i < len && (s[i] == 'Z' || s[i] == 'z')) {
		i++;
	} else if (i + 6 == len && (s[i] == '+' || s[i] == '-') && s[i + 3] == ':') {
		int oh, om;
		if (digits(s + i + 1, 2, &oh) < 0 || digits(s + i + 4, 2, &om) < 0 || oh > 23 ||
		    om > 59)
			return TW_EINVAL;
		off = (oh * 60L + om) * 60L * (s[i] == '+' ? 1 : -1);
		i += 6;
	} else {
		return TW_EINVAL;
	}
	if (i != len)
		return TW_EINVAL;
	struct tm tm = {0};
	tm.tm_year = Y - 1900;
	tm.tm_mon = M - 1;
	tm.tm_mday = D;
	tm.tm_hour = h;
	tm.tm_min = m;
	tm.tm_sec = sec;
	*out = timegm(&tm) - off;
	return 0;
}
