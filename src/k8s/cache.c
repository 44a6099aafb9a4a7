/* cache.c — tw_k8s_store: the objects of one kind, keyed "ns/name".
 *
 * A sorted array of pointers, ordered by (namespace, name): get is a binary
 * search (O(log n)), tw_k8s_store_at is an index. Inserting in the middle
 * moves pointers (memmove of at most n * 8 bytes: a few microseconds at
 * 10,000 objects); a list arrives in (ns, name) order from the API server,
 * which makes every insert an append. Not thread-safe: the controller
 * serialises access (docs/internals/k8s.md). */
#include "k8s/k8s.h"

#include <stdlib.h>
#include <string.h>

#define STORE_MAX (1u << 24) /* objects per kind; far above any real cluster */

struct tw_k8s_store {
	struct tw_k8s_obj **v;
	size_t n, cap;
};

struct tw_k8s_store *tw_k8s_store_new(void)
{
	return calloc(1, sizeof(struct tw_k8s_store));
}

static void obj_free(struct tw_k8s_obj *o)
{
	if (o == NULL)
		return;
	free(o->ns);
	free(o->name);
	free(o->rv);
	json_decref(o->obj);
	free(o);
}

void tw_k8s_store_free(struct tw_k8s_store *s)
{
	if (s == NULL)
		return;
	for (size_t i = 0; i < s->n; i++)
		obj_free(s->v[i]);
	free(s->v);
	free(s);
}

static int key_cmp(const char *ns1, const char *n1, const char *ns2, const char *n2)
{
	int d = strcmp(ns1, ns2);
	return d ? d : strcmp(n1, n2);
}

/* Index of (ns, name), or where it would go; *found set. */
static size_t find(const struct tw_k8s_store *s, const char *ns, const char *name, int *found)
{
	size_t lo = 0, hi = s->n;
	/* fast path: appends in order */
	if (s->n > 0) {
		int d = key_cmp(s->v[s->n - 1]->ns, s->v[s->n - 1]->name, ns, name);
		if (d < 0) {
			*found = 0;
			return s->n;
		}
		if (d == 0) {
			*found = 1;
			return s->n - 1;
		}
	}
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int d = key_cmp(s->v[mid]->ns, s->v[mid]->name, ns, name);
		if (d == 0) {
			*found = 1;
			return mid;
		}
		if (d < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	*found = 0;
	return lo;
}

static const char *meta_str(json_t *obj, const char *key)
{
	json_t *m = json_object_get(obj, "metadata");
	const char *s = json_string_value(json_object_get(m, key));
	return s;
}

int tw_k8s_store_put(struct tw_k8s_store *s, json_t *obj)
{
	if (s == NULL || !json_is_object(obj))
		return TW_EINVAL;
	const char *name = meta_str(obj, "name");
	const char *ns = meta_str(obj, "namespace");
	const char *rv = meta_str(obj, "resourceVersion");
	if (name == NULL || name[0] == '\0')
		return TW_EINVAL;
	if (ns == NULL)
		ns = "";
	if (rv == NULL)
		rv = "";
	struct tw_k8s_obj *o = calloc(1, sizeof *o);
	if (o == NULL)
		return TW_ENOMEM;
	o->ns = strdup(ns);
	o->name = strdup(name);
	o->rv = strdup(rv);
	if (o->ns == NULL || o->name == NULL || o->rv == NULL) {
		obj_free(o);
		return TW_ENOMEM;
	}
	o->obj = json_incref(obj);
	int found;
	size_t i = find(s, ns, name, &found);
	if (found) {
		obj_free(s->v[i]);
		s->v[i] = o;
		return 0;
	}
	if (s->n == s->cap) {
		size_t nc = s->cap ? s->cap * 2 : 16;
		struct tw_k8s_obj **nv;
		if (s->n >= STORE_MAX || (nv = realloc(s->v, nc * sizeof *nv)) == NULL) {
			obj_free(o);
			return s->n >= STORE_MAX ? TW_ELIMIT : TW_ENOMEM;
		}
		s->v = nv;
		s->cap = nc;
	}
	memmove(&s->v[i + 1], &s->v[i], (s->n - i) * sizeof *s->v);
	s->v[i] = o;
	s->n++;
	return 0;
}

int tw_k8s_store_del(struct tw_k8s_store *s, const char *ns, const char *name)
{
	int found;
	if (s == NULL || name == NULL)
		return TW_ENOENT;
	size_t i = find(s, ns ? ns : "", name, &found);
	if (!found)
		return TW_ENOENT;
	obj_free(s->v[i]);
	memmove(&s->v[i], &s->v[i + 1], (s->n - i - 1) * sizeof *s->v);
	s->n--;
	return 0;
}

const struct tw_k8s_obj *tw_k8s_store_get(const struct tw_k8s_store *s, const char *ns,
                                          const char *name)
{
	int found;
	if (s == NULL || name == NULL)
		return NULL;
	size_t i = find(s, ns ? ns : "", name, &found);
	return found ? s->v[i] : NULL;
}

size_t tw_k8s_store_count(const struct tw_k8s_store *s)
{
	return s ? s->n : 0;
}

const struct tw_k8s_obj *tw_k8s_store_at(const struct tw_k8s_store *s, size_t i)
{
	return s && i < s->n ? s->v[i] : NULL;
}
