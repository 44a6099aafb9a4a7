/* retention.c — WAL the kept snapshots no longer need (see pitr.h).
 *
 * Per cluster (system identifier) with at least one kept physical snapshot,
 * every WAL segment (and .partial, .backup file) whose segment number is
 * below the oldest kept snapshot's start segment is deleted, on every
 * timeline. History files are kept: they are tiny and recovery reads them
 * to choose a timeline. WAL of a cluster without any snapshot is kept.
 * archive-push only adds newer segments, so it may run meanwhile. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backup/repo.h"
#include "pg/meta.h"
#include "pg/pitr.h"
#include "pg/wal.h"

struct cut {
	uint64_t sysid, segno, seg_size;
};

struct pctx {
	struct cut *cuts;
	size_t ncuts;
	char **del;
	uint64_t *sizes;
	size_t ndel, cap;
	int oom;
};

static int consider(void *arg, const char *name, uint64_t size)
{
	struct pctx *c = arg;
	if (strlen(name) < 18 || name[16] != '-')
		return 0;
	char hex[17];
	memcpy(hex, name, 16);
	hex[16] = '\0';
	char *end;
	uint64_t sysid = strtoull(hex, &end, 16);
	const char *wal = name + 17;
	enum tw_pgwal_kind k = tw_pgwal_classify(wal, strlen(wal));
	if (*end != '\0' || k == TW_PGWAL_BAD || k == TW_PGWAL_HISTORY)
		return 0;
	for (size_t i = 0; i < c->ncuts; i++) {
		uint32_t tli;
		uint64_t segno;
		if (c->cuts[i].sysid != sysid ||
		    tw_pgwal_seg_parse(wal, 24, c->cuts[i].seg_size, &tli, &segno) != 0 ||
		    segno >= c->cuts[i].segno)
			continue;
		if (c->ndel == c->cap) {
			size_t nc = c->cap ? c->cap * 2 : 256;
			char **nd = realloc(c->del, nc * sizeof *nd);
			uint64_t *ns = nd ? realloc(c->sizes, nc * sizeof *ns) : NULL;
			if (nd != NULL)
				c->del = nd;
			if (ns == NULL)
				return c->oom = TW_ENOMEM;
			c->sizes = ns;
			c->cap = nc;
		}
		if ((c->del[c->ndel] = strdup(name)) == NULL)
			return c->oom = TW_ENOMEM;
		c->sizes[c->ndel++] = size;
		break;
	}
	return 0;
}

int tw_pitr_prune_wal(struct tw_repo *r, int dry_run, uint64_t *files, uint64_t *bytes,
                      struct tw_err *e)
{
	return tw_pitr_prune_wal_ex(r, dry_run, NULL, 0, NULL, NULL, files, bytes, e);
}

struct named {
	char *name;
	uint64_t size;
};

static int named_cmp(const void *a, const void *b)
{
	return strcmp(((const struct named *)a)->name, ((const struct named *)b)->name);
}

int tw_pitr_prune_wal_ex(struct tw_repo *r, int dry_run, char *const *forget, size_t nforget,
                         void (*each)(void *arg, const char *name, uint64_t size), void *arg,
                         uint64_t *files, uint64_t *bytes, struct tw_err *e)
{
	struct tw_snapshot **v = NULL;
	size_t n = 0;
	struct pctx c = {0};
	*files = *bytes = 0;
	int rc = tw_repo_list_snapshots(r, &v, &n, e);
	if (rc != 0)
		return rc;
	c.cuts = calloc(n + 1, sizeof *c.cuts);
	if (c.cuts == NULL) {
		rc = tw_err_set(e, TW_ENOMEM, "out of memory");
		goto done;
	}
	for (size_t i = 0; i < n; i++) {
		struct tw_pgmeta m;
		size_t f = 0;
		while (f < nforget && strcmp(forget[f], v[i]->id) != 0)
			f++;
		if (v[i]->pg == NULL || f < nforget) /* not kept */
			continue;
		if ((rc = tw_pgmeta_decode(v[i]->pg, &m, e)) != 0) {
			/* unsure what it needs: delete no WAL at all */
			tw_err_wrap(e, "snapshot %.8s", v[i]->id);
			goto done;
		}
		uint32_t tli;
		uint64_t segno;
		if (tw_pgwal_seg_parse(m.start_wal, 24, m.seg_size, &tli, &segno) == 0) {
			size_t k = 0;
			while (k < c.ncuts && c.cuts[k].sysid != m.sysid)
				k++;
			if (k == c.ncuts)
				c.cuts[c.ncuts++] = (struct cut){m.sysid, segno, m.seg_size};
			else if (segno < c.cuts[k].segno)
				c.cuts[k].segno = segno;
		}
		tw_pgmeta_clear(&m);
	}
	if (c.ncuts == 0)
		goto done;
	rc = tw_storage_list(r->st, TW_ST_WAL, consider, &c, e);
	if (rc == 0 && c.oom)
		rc = tw_err_set(e, TW_ENOMEM, "out of memory");
	struct named *sorted = rc == 0 && c.ndel ? calloc(c.ndel, sizeof *sorted) : NULL;
	if (rc == 0 && c.ndel && sorted == NULL)
		rc = tw_err_set(e, TW_ENOMEM, "out of memory");
	for (size_t i = 0; rc == 0 && i < c.ndel; i++)
		sorted[i] = (struct named){c.del[i], c.sizes[i]};
	if (sorted != NULL)
		qsort(sorted, c.ndel, sizeof *sorted, named_cmp);
	for (size_t i = 0; rc == 0 && i < c.ndel; i++) {
		if (!dry_run && (rc = tw_storage_del(r->st, TW_ST_WAL, sorted[i].name, e)) != 0)
			break;
		if (each != NULL)
			each(arg, sorted[i].name, sorted[i].size);
		(*files)++;
		*bytes += sorted[i].size;
	}
	free(sorted);
done:
	for (size_t i = 0; i < c.ndel; i++)
		free(c.del[i]);
	free(c.del);
	free(c.sizes);
	free(c.cuts);
	tw_repo_free_snapshots(v, n);
	return rc;
}
