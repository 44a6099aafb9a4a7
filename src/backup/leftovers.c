/* leftovers.c — list and remove temporary objects of interrupted runs (leftovers.h). */
#include "backup/leftovers.h"

#include "core/log.h"
#include "storage/storage.h"

#include <stdlib.h>
#include <string.h>

struct item {
	char *id;
	uint64_t size, age;
};

struct items {
	struct item *v;
	size_t n, cap;
};

static int collect(void *arg, const char *id, uint64_t size, uint64_t age_s)
{
	struct items *l = arg;
	if (l->n == l->cap) {
		size_t cap = l->cap ? l->cap * 2 : 16;
		struct item *v = realloc(l->v, cap * sizeof *v);
		if (v == NULL)
			return TW_ENOMEM;
		l->v = v;
		l->cap = cap;
	}
	if ((l->v[l->n].id = strdup(id)) == NULL)
		return TW_ENOMEM;
	l->v[l->n].size = size;
	l->v[l->n].age = age_s;
	l->n++;
	return 0;
}

static int by_id(const void *a, const void *b)
{
	return strcmp(((const struct item *)a)->id, ((const struct item *)b)->id);
}

int tw_leftovers_run(struct tw_repo *r, uint64_t min_age_s, int dry_run, tw_leftover_fn fn, void *arg,
		     struct tw_leftover_stats *st, struct tw_err *e)
{
	struct items l = {0};
	memset(st, 0, sizeof *st);
	/* listed first, deleted after: a listing is never walked while it changes */
	int rc = tw_storage_tmp_list(r->st, collect, &l, e);
	if (rc == TW_ENOMEM)
		rc = tw_err_set(e, TW_ENOMEM, "out of memory");
	if (rc == 0 && l.n > 1)
		qsort(l.v, l.n, sizeof *l.v, by_id);
	for (size_t i = 0; rc == 0 && i < l.n; i++) {
		const struct item *it = &l.v[i];
		st->found++;
		st->bytes += it->size;
		int del = min_age_s > 0 && it->age >= min_age_s;
		if (del && !dry_run) {
			struct tw_err de = {0};
			if (tw_storage_tmp_del(r->st, it->id, &de) != 0) {
				tw_warn("could not delete temporary object %s: %s", it->id, de.msg);
				del = 0;
			}
		}
		if (del) {
			st->deleted++;
			st->bytes_deleted += it->size;
		}
		if (fn)
			fn(arg, it->id, it->size, it->age, del);
	}
	for (size_t i = 0; i < l.n; i++)
		free(l.v[i].id);
	free(l.v);
	return rc;
}
