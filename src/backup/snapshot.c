/* snapshot.c — snapshot JSON codec (jansson). */
#include "backup/snapshot.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

void tw_snapshot_time_str(int64_t time_ns, char *buf, size_t cap)
{
	time_t t = (time_t)(time_ns / 1000000000);
	long ns = (long)(time_ns % 1000000000);
	if (ns < 0) {
		ns += 1000000000;
		t -= 1;
	}
	struct tm tm;
	gmtime_r(&t, &tm);
	char d[32];
	strftime(d, sizeof d, "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(buf, cap, "%s.%09ldZ", d, ns);
}

static json_t *str_array(char **v, size_t n)
{
	json_t *a = json_array();
	for (size_t i = 0; a != NULL && i < n; i++)
		json_array_append_new(a, json_string(v[i]));
	return a;
}

int tw_snapshot_encode(const struct tw_snapshot *s, struct tw_dbuf *out)
{
	char tree[2 * TW_ID_LEN + 1], ts[48];
	tw_hex(s->tree, TW_ID_LEN, tree);
	tw_snapshot_time_str(s->time_ns, ts, sizeof ts);
	json_t *o = json_object();
	if (o == NULL)
		return TW_ENOMEM;
	json_object_set_new(o, "version", json_integer(1));
	json_object_set_new(o, "time", json_string(ts));
	json_object_set_new(o, "time_ns", json_integer(s->time_ns));
	json_object_set_new(o, "tree", json_string(tree));
	json_object_set_new(o, "paths", str_array(s->paths, s->npaths));
	json_object_set_new(o, "hostname", json_string(s->hostname ? s->hostname : ""));
	json_object_set_new(o, "username", json_string(s->username ? s->username : ""));
	if (s->ntags)
		json_object_set_new(o, "tags", str_array(s->tags, s->ntags));
	if (s->parent[0])
		json_object_set_new(o, "parent", json_string(s->parent));
	if (s->nexcludes)
		json_object_set_new(o, "excludes", str_array(s->excludes, s->nexcludes));
	json_object_set_new(o, "stats",
			    json_pack("{s:I,s:I,s:I,s:I}", "files", (json_int_t)s->files, "dirs",
				      (json_int_t)s->dirs, "bytes", (json_int_t)s->bytes,
				      "new_bytes", (json_int_t)s->new_bytes));
	if (s->pg != NULL) {
		json_t *pg = json_loads(s->pg, 0, NULL);
		if (!json_is_object(pg)) {
			json_decref(pg);
			json_decref(o);
			return TW_EINVAL;
		}
		json_object_set_new(o, "pg", pg);
	}
	char *txt = json_dumps(o, JSON_COMPACT);
	json_decref(o);
	if (txt == NULL)
		return TW_ENOMEM;
	int rc = tw_dbuf_append(out, txt, strlen(txt));
	free(txt);
	return rc;
}

static int get_list(json_t *o, const char *key, int required, char ***out, size_t *n)
{
	json_t *a = json_object_get(o, key);
	*out = NULL;
	*n = 0;
	if (a == NULL)
		return required ? TW_ECORRUPT : 0;
	if (!json_is_array(a) || json_array_size(a) > TW_SNAP_MAX_LIST)
		return TW_ECORRUPT;
	size_t cnt = json_array_size(a);
	char **v = calloc(cnt + 1, sizeof *v);
	if (v == NULL)
		return TW_ENOMEM;
	*out = v; /* partially filled lists are freed by the caller */
	for (size_t i = 0; i < cnt; i++) {
		json_t *s = json_array_get(a, i);
		if (!json_is_string(s))
			return TW_ECORRUPT;
		v[i] = strdup(json_string_value(s));
		if (v[i] == NULL)
			return TW_ENOMEM;
		*n = i + 1;
	}
	return 0;
}

static uint64_t stat_of(json_t *st, const char *k)
{
	json_t *v = json_object_get(st, k);
	return json_is_integer(v) && json_integer_value(v) >= 0 ? (uint64_t)json_integer_value(v)
								: 0;
}

int tw_snapshot_decode(const uint8_t *p, size_t n, struct tw_snapshot **out, struct tw_err *e)
{
	*out = NULL;
	json_error_t je;
	json_t *o = json_loadb((const char *)p, n, JSON_REJECT_DUPLICATES, &je);
	if (o == NULL)
		return tw_err_set(e, TW_ECORRUPT, "snapshot: bad JSON: %s", je.text);
	int rc = TW_ECORRUPT;
	struct tw_snapshot *s = calloc(1, sizeof *s);
	if (s == NULL) {
		json_decref(o);
		return tw_err_set(e, TW_ENOMEM, "out of memory");
	}
	json_t *v = json_object_get(o, "version"), *t = json_object_get(o, "time_ns"),
	       *tr = json_object_get(o, "tree"), *h = json_object_get(o, "hostname"),
	       *u = json_object_get(o, "username"), *par = json_object_get(o, "parent");
	if (!json_is_object(o) || !json_is_integer(v) || json_integer_value(v) != 1 ||
	    !json_is_integer(t) || !json_is_string(tr) || !json_is_string(h) || !json_is_string(u))
		goto done;
	s->time_ns = json_integer_value(t);
	const char *trs = json_string_value(tr);
	if (tw_unhex(trs, strlen(trs), s->tree, TW_ID_LEN) != 0)
		goto done;
	if (par != NULL) {
		const char *ps = json_is_string(par) ? json_string_value(par) : "";
		uint8_t tmp[TW_ID_LEN];
		if (tw_unhex(ps, strlen(ps), tmp, TW_ID_LEN) != 0)
			goto done;
		memcpy(s->parent, ps, 2 * TW_ID_LEN);
	}
	s->hostname = strdup(json_string_value(h));
	s->username = strdup(json_string_value(u));
	if (s->hostname == NULL || s->username == NULL) {
		rc = TW_ENOMEM;
		goto done;
	}
	if ((rc = get_list(o, "paths", 1, &s->paths, &s->npaths)) != 0 ||
	    (rc = get_list(o, "tags", 0, &s->tags, &s->ntags)) != 0 ||
	    (rc = get_list(o, "excludes", 0, &s->excludes, &s->nexcludes)) != 0)
		goto done;
	json_t *st = json_object_get(o, "stats");
	if (json_is_object(st)) {
		s->files = stat_of(st, "files");
		s->dirs = stat_of(st, "dirs");
		s->bytes = stat_of(st, "bytes");
		s->new_bytes = stat_of(st, "new_bytes");
	}
	json_t *pg = json_object_get(o, "pg");
	if (pg != NULL) {
		if (!json_is_object(pg))
			goto done;
		if ((s->pg = json_dumps(pg, JSON_COMPACT)) == NULL) {
			rc = TW_ENOMEM;
			goto done;
		}
	}
	rc = 0;
done:
	json_decref(o);
	if (rc != 0) {
		tw_snapshot_free(s);
		return tw_err_set(e, rc, "snapshot: malformed");
	}
	*out = s;
	return 0;
}

static void free_list(char **v, size_t n)
{
	if (v == NULL)
		return;
	for (size_t i = 0; i < n; i++)
		free(v[i]);
	free(v);
}

void tw_snapshot_free(struct tw_snapshot *s)
{
	if (s == NULL)
		return;
	free(s->hostname);
	free(s->username);
	free_list(s->paths, s->npaths);
	free_list(s->tags, s->ntags);
	free_list(s->excludes, s->nexcludes);
	free(s->pg);
	free(s);
}

int tw_snapshot_has_tag(const struct tw_snapshot *s, const char *tag)
{
	for (size_t i = 0; i < s->ntags; i++)
		if (strcmp(s->tags[i], tag) == 0)
			return 1;
	return 0;
}
