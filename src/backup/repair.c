/* repair.c — `tapwork repair index` (repair.h). */
#include "backup/repair.h"

#include "core/log.h"

#include <stdlib.h>
#include <string.h>

struct names {
	char (*v)[65];
	uint64_t *size;
	size_t n, cap;
};

static int add_name(void *arg, const char *name, uint64_t size)
{
	struct names *l = arg;
	if (strlen(name) != 64)
		return 0;
	if (l->n == l->cap) {
		size_t cap = l->cap ? 2 * l->cap : 64;
		char(*v)[65] = realloc(l->v, cap * sizeof *v);
		if (v == NULL)
			return TW_ENOMEM;
		l->v = v;
		uint64_t *sz = realloc(l->size, cap * sizeof *sz);
		if (sz == NULL)
			return TW_ENOMEM;
		l->size = sz;
		l->cap = cap;
	}
	memcpy(l->v[l->n], name, 65);
	l->size[l->n++] = size;
	return 0;
}

static void names_free(struct names *l)
{
	free(l->v);
	free(l->size);
}

static int load_entry(void *arg, const uint8_t pack_id[TW_ID_LEN], const struct tw_pack_entry *en)
{
	struct tw_repo *r = arg;
	uint32_t num;
	int added;
	int rc = tw_index_pack(&r->index, pack_id, &num);
	return rc == 0 ? tw_index_add(&r->index, en, num, &added) : rc;
}

/* Verify pack `name`: whole bytes hash to the name, the sealed header opens. */
static int verify_pack(struct tw_repo *r, const char *name, uint64_t size, struct tw_pack_entry **ents,
		       uint32_t *n, struct tw_err *e)
{
	uint8_t *data = NULL;
	size_t len = 0;
	int rc = tw_storage_get(r->st, TW_ST_DATA, name, 0, TW_ST_WHOLE, &data, &len, e);
	if (rc != 0)
		return rc;
	uint8_t sum[32], id[TW_ID_LEN];
	tw_crypto_sha256(data, len, sum);
	free(data);
	if (tw_unhex(name, 64, id, TW_ID_LEN) != 0 || memcmp(sum, id, TW_ID_LEN) != 0)
		return tw_err_set(e, TW_ECORRUPT, "its contents do not hash to its name");
	return tw_repo_pack_header(r, name, size, ents, n, e);
}

int tw_repair_index(struct tw_repo *r, int dry_run, struct tw_repair_index_stats *st, struct tw_err *e)
{
	struct names idx = {0}, packs = {0};
	uint8_t *bad = NULL;
	struct tw_index_enc w;
	tw_index_enc_init(&w);
	memset(st, 0, sizeof *st);
	int rc;
	if ((rc = tw_storage_list(r->st, TW_ST_INDEX, add_name, &idx, e)) != 0 ||
	    (rc = tw_storage_list(r->st, TW_ST_DATA, add_name, &packs, e)) != 0) {
		if (rc == TW_ENOMEM)
			rc = tw_err_set(e, rc, "out of memory");
		goto done;
	}
	st->index_objects = idx.n;
	st->packs = packs.n;
	if ((bad = calloc(idx.n + 1, 1)) == NULL) {
		rc = tw_err_set(e, TW_ENOMEM, "out of memory");
		goto done;
	}
	/* 1. what the readable index objects say */
	for (size_t i = 0; i < idx.n; i++) {
		uint8_t *pt;
		size_t n;
		struct tw_err e2 = {0};
		int orc = tw_repo_get_object(r, TW_ST_INDEX, "index", idx.v[i], &pt, &n, &e2);
		if (orc == 0) {
			orc = tw_index_decode(pt, n, load_entry, r, &e2);
			free(pt);
		}
		if (orc == TW_ENOMEM) {
			rc = tw_err_set(e, orc, "out of memory");
			goto done;
		}
		if (orc != 0) {
			tw_warn("index %s is damaged: %s", idx.v[i], e2.msg);
			bad[i] = 1;
			st->index_damaged++;
		}
	}
	/* 2. every pack no readable index lists, verified, from its header */
	for (size_t i = 0; i < packs.n; i++) {
		uint8_t id[TW_ID_LEN];
		if (tw_unhex(packs.v[i], 64, id, TW_ID_LEN) != 0)
			continue;
		/* the in-memory index's pack table answers "listed?" (and learns the
		 * pack when not: harmless, nothing writes that table out) */
		uint32_t before = r->index.npacks, num = 0;
		if (tw_index_pack(&r->index, id, &num) != 0) {
			rc = tw_err_set(e, TW_ENOMEM, "out of memory");
			goto done;
		}
		if (num < before) {
			st->packs_indexed++;
			continue;
		}
		struct tw_pack_entry *ents = NULL;
		uint32_t n = 0;
		struct tw_err e2 = {0};
		int prc = verify_pack(r, packs.v[i], packs.size[i], &ents, &n, &e2);
		if (prc == TW_ENOMEM) {
			free(ents);
			rc = tw_err_set(e, prc, "out of memory");
			goto done;
		}
		if (prc != 0) {
			tw_error("pack %s is damaged and stays out of the index: %s", packs.v[i], e2.msg);
			st->packs_damaged++;
			free(ents);
			continue;
		}
		rc = tw_index_enc_pack(&w, id, ents, n);
		free(ents);
		if (rc != 0) {
			rc = tw_err_set(e, rc, "encoding the index failed");
			goto done;
		}
		st->packs_reindexed++;
		st->blobs_reindexed += n;
		if (w.npacks >= 4096) {
			tw_index_enc_finish(&w);
			if (!dry_run && (rc = tw_repo_put_object(r, TW_ST_INDEX, "index", w.buf.data, w.buf.len, NULL, e)) != 0)
				goto done;
			st->index_written++;
			tw_index_enc_free(&w);
			tw_index_enc_init(&w);
		}
	}
	if (w.npacks > 0) {
		tw_index_enc_finish(&w);
		if (!dry_run && (rc = tw_repo_put_object(r, TW_ST_INDEX, "index", w.buf.data, w.buf.len, NULL, e)) != 0)
			goto done;
		st->index_written++;
	}
	/* 3. the new index is durable: the damaged objects can go */
	for (size_t i = 0; i < idx.n; i++) {
		if (!bad[i] || dry_run)
			continue;
		struct tw_err e2 = {0};
		if (tw_storage_del(r->st, TW_ST_INDEX, idx.v[i], &e2) == 0)
			st->index_deleted++;
		else
			tw_warn("could not delete damaged index %s: %s", idx.v[i], e2.msg);
	}
	rc = 0;
done:
	tw_index_enc_free(&w);
	free(bad);
	names_free(&idx);
	names_free(&packs);
	return rc;
}
