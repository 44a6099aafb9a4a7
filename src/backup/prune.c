/* prune.c — garbage collection of packs (see prune.h). */
#include "backup/prune.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backup/packer.h"
#include "core/log.h"

struct name_list {
	char (*v)[65];
	uint64_t *size;
	size_t n, cap;
};

static int add_name(void *arg, const char *name, uint64_t size)
{
	struct name_list *l = arg;
	if (l->n == l->cap) {
		size_t nc = l->cap ? l->cap * 2 : 128;
		void *nv = realloc(l->v, nc * sizeof *l->v), *ns = NULL;
		if (nv != NULL)
			l->v = nv;
		ns = realloc(l->size, nc * sizeof *l->size);
		if (nv == NULL || ns == NULL)
			return TW_ENOMEM;
		l->size = ns;
		l->cap = nc;
	}
	snprintf(l->v[l->n], 65, "%s", name);
	l->size[l->n++] = size;
	return 0;
}

struct pctx {
	struct tw_repo *r;
	struct tw_index used;
};

static int mark(struct pctx *c, const uint8_t id[TW_ID_LEN], int *added)
{
	struct tw_pack_entry en = {0};
	memcpy(en.id, id, TW_ID_LEN);
	return tw_index_add(&c->used, &en, 0, added);
}

static int mark_tree(struct pctx *c, const uint8_t id[TW_ID_LEN], int depth, struct tw_err *e)
{
	int added;
	int rc = mark(c, id, &added);
	if (rc != 0 || !added)
		return rc;
	if (depth > 4096)
		return tw_err_set(e, TW_ECORRUPT, "tree nesting too deep");
	uint8_t *buf;
	struct tw_node *nodes;
	uint32_t n;
	if ((rc = tw_repo_read_tree(c->r, id, &buf, &nodes, &n, e)) != 0)
		return tw_err_wrap(e, "cannot read a tree (run check; prune refuses to guess)");
	for (uint32_t i = 0; rc == 0 && i < n; i++) {
		if (nodes[i].type == TW_NODE_DIR)
			rc = mark_tree(c, nodes[i].subtree, depth + 1, e);
		else if (nodes[i].type == TW_NODE_FILE)
			for (uint32_t k = 0; rc == 0 && k < nodes[i].nchunks; k++)
				rc = mark(c, nodes[i].chunks + (size_t)k * TW_ID_LEN, &added);
	}
	free(nodes);
	free(buf);
	return rc;
}

/* A kept delta keeps its base, and the base's base (docs/repository-format.md
 * "Delta blobs"): add the bases of every used blob until none is new. */
static int mark_bases(struct pctx *c, struct tw_err *e)
{
	const struct tw_index *ix = &c->r->index;
	size_t n = 0, cap = 256;
	uint8_t (*stack)[TW_ID_LEN] = malloc(cap * TW_ID_LEN);
	if (stack == NULL)
		return tw_err_set(e, TW_ENOMEM, "out of memory");
	for (size_t i = 0; i < c->used.cap; i++) {
		if (!c->used.slots[i].used)
			continue;
		const struct tw_idx_slot *s = tw_index_get(ix, c->used.slots[i].id);
		const uint8_t *b = s ? tw_index_base(ix, s) : NULL;
		if (b == NULL)
			continue;
		if (n == cap) {
			void *ns = realloc(stack, 2 * cap * TW_ID_LEN);
			if (ns == NULL) {
				free(stack);
				return tw_err_set(e, TW_ENOMEM, "out of memory");
			}
			stack = ns;
			cap *= 2;
		}
		memcpy(stack[n++], b, TW_ID_LEN);
	}
	int rc = 0;
	while (rc == 0 && n > 0) {
		uint8_t id[TW_ID_LEN];
		memcpy(id, stack[--n], TW_ID_LEN);
		int added;
		if ((rc = mark(c, id, &added)) != 0 || !added)
			continue;
		const struct tw_idx_slot *s = tw_index_get(ix, id);
		const uint8_t *b = s ? tw_index_base(ix, s) : NULL;
		if (b != NULL)
			memcpy(stack[n++], b, TW_ID_LEN); /* one popped, one pushed: fits */
	}
	free(stack);
	return rc != 0 ? tw_err_set(e, rc, "out of memory") : 0;
}

struct ref {
	uint32_t pack;
	size_t slot;
};

static int ref_cmp(const void *a, const void *b, void *arg)
{
	const struct ref *x = a, *y = b;
	const struct tw_index *ix = arg;
	if (x->pack != y->pack)
		return x->pack < y->pack ? -1 : 1;
	uint32_t ox = ix->slots[x->slot].offset, oy = ix->slots[y->slot].offset;
	return ox < oy ? -1 : ox > oy;
}

static int write_full_index(struct tw_repo *r, const uint8_t *drop, uint32_t npacks_before,
			    struct tw_prune_stats *st, struct tw_err *e)
{
	struct tw_index *ix = &r->index;
	struct ref *refs = malloc((ix->n + 1) * sizeof *refs);
	if (refs == NULL)
		return tw_err_set(e, TW_ENOMEM, "out of memory");
	size_t n = 0;
	for (size_t i = 0; i < ix->cap; i++) {
		const struct tw_idx_slot *s = &ix->slots[i];
		if (!s->used || s->pack == TW_PACK_NEW || (s->pack < npacks_before && drop[s->pack]))
			continue;
		refs[n].pack = s->pack;
		refs[n++].slot = i;
	}
	qsort_r(refs, n, sizeof *refs, ref_cmp, ix);
	struct tw_index_enc w;
	tw_index_enc_init(&w);
	struct tw_pack_entry *ents = malloc((n + 1) * sizeof *ents);
	int rc = ents ? 0 : TW_ENOMEM;
	size_t i = 0;
	while (rc == 0 && i < n) {
		size_t j = i, k = 0;
		while (j < n && refs[j].pack == refs[i].pack) {
			const struct tw_idx_slot *s = &ix->slots[refs[j].slot];
			tw_index_entry(ix, s, &ents[k++]);
			j++;
		}
		rc = tw_index_enc_pack(&w, ix->packs[refs[i].pack], ents, (uint32_t)k);
		i = j;
		if (rc == 0 && (w.npacks >= 4096 || i == n)) {
			tw_index_enc_finish(&w);
			rc = tw_repo_put_object(r, TW_ST_INDEX, "index", w.buf.data, w.buf.len, NULL, e);
			st->index_written++;
			tw_index_enc_free(&w);
			tw_index_enc_init(&w);
		}
	}
	if (rc == 0 && n == 0) {
		/* an empty repository still gets an (empty) index so that the
		 * old ones can go */
		tw_index_enc_finish(&w);
		rc = tw_repo_put_object(r, TW_ST_INDEX, "index", w.buf.data, w.buf.len, NULL, e);
		st->index_written++;
	}
	tw_index_enc_free(&w);
	free(ents);
	free(refs);
	if (rc != 0 && e->code == 0)
		tw_err_set(e, rc, "index writing failed");
	return rc;
}

static int rewrite_pack(struct tw_repo *r, struct tw_packer *pk, uint32_t p, const char *name,
			struct pctx *c, struct tw_prune_stats *st, struct tw_err *e)
{
	uint8_t *buf;
	size_t len;
	int rc = tw_storage_get(r->st, TW_ST_DATA, name, 0, TW_ST_WHOLE, &buf, &len, e);
	if (rc != 0)
		return rc;
	for (size_t i = 0; rc == 0 && i < r->index.cap; i++) {
		struct tw_idx_slot *s = &r->index.slots[i];
		if (!s->used || s->pack != p || tw_index_get(&c->used, s->id) == NULL)
			continue;
		if ((uint64_t)s->offset + s->length > len) {
			rc = tw_err_set(e, TW_ECORRUPT, "pack %.16s truncated", name);
			break;
		}
		struct tw_pack_entry en;
		tw_index_entry(&r->index, s, &en);
		if (en.flags & TW_BLOB_DELTA) {
			/* copied byte for byte: authenticating the stored bytes is
			 * the check (its base may be in a pack being rewritten) */
			uint8_t *copy = malloc(s->length), *body;
			size_t blen;
			rc = copy ? 0 : tw_err_set(e, TW_ENOMEM, "out of memory");
			if (rc == 0) {
				memcpy(copy, buf + s->offset, s->length);
				rc = tw_blob_decrypt(&r->keys, &en, copy, &body, &blen, e);
			}
			free(copy);
		} else {
			uint8_t *pt = NULL;
			rc = tw_blob_open(&r->keys, NULL, &en, buf + s->offset, &pt, e);
			free(pt);
		}
		if (rc != 0) {
			tw_err_wrap(e, "pack %.16s (run check)", name);
			break;
		}
		uint32_t off = s->offset, slen = s->length, raw = s->raw_length;
		s->pack = TW_PACK_NEW; /* re-located when the new pack is written */
		rc = tw_packer_add_base(pk + (en.type == TW_BLOB_TREE), en.id, en.flags, en.base,
					buf + off, slen, raw, e);
		st->blobs_repacked++;
	}
	free(buf);
	return rc;
}

int tw_prune_run(struct tw_repo *r, const struct tw_prune_opts *o, struct tw_prune_stats *st,
		 struct tw_err *e)
{
	struct pctx c = {r, {0}};
	struct name_list idx = {0}, packs = {0};
	struct tw_snapshot **snaps = NULL;
	size_t nsnaps = 0;
	uint64_t *live = NULL;
	uint8_t *drop = NULL, *rewrite = NULL;
	struct tw_packer pk[2];
	int pk_init = 0;
	memset(st, 0, sizeof *st);
	tw_index_init(&c.used);
	int rc;
	if ((rc = tw_storage_list(r->st, TW_ST_INDEX, add_name, &idx, e)) != 0 ||
	    (rc = tw_storage_list(r->st, TW_ST_DATA, add_name, &packs, e)) != 0)
		goto done;
	if ((rc = tw_repo_load_index(r, e)) != 0)
		goto done;
	if (r->index_errors) {
		rc = tw_err_set(e, TW_ECORRUPT, "%u index objects unreadable; run check first",
				r->index_errors);
		goto done;
	}
	if ((rc = tw_repo_list_snapshots(r, &snaps, &nsnaps, e)) != 0)
		goto done;
	for (size_t i = 0; rc == 0 && i < nsnaps; i++)
		rc = mark_tree(&c, snaps[i]->tree, 0, e);
	if (rc == 0)
		rc = mark_bases(&c, e);
	if (rc != 0)
		goto done;
	uint32_t np = r->index.npacks;
	st->packs = np;
	live = calloc(np + 1, sizeof *live);
	drop = calloc(np + 1, 1);
	rewrite = calloc(np + 1, 1);
	if (!live || !drop || !rewrite) {
		rc = tw_err_set(e, TW_ENOMEM, "out of memory");
		goto done;
	}
	for (size_t i = 0; i < r->index.cap; i++) {
		const struct tw_idx_slot *s = &r->index.slots[i];
		if (s->used && tw_index_get(&c.used, s->id) != NULL) {
			live[s->pack] += s->length;
			st->blobs_live++;
		}
	}
	/* every used blob must be indexed */
	for (size_t i = 0; i < c.used.cap; i++)
		if (c.used.slots[i].used && tw_index_get(&r->index, c.used.slots[i].id) == NULL) {
			rc = tw_err_set(e, TW_ECORRUPT, "a referenced blob is not in the index; run check");
			goto done;
		}
	/* decide per indexed pack; packs in storage but not indexed go too */
	uint8_t *in_index = calloc(packs.n + 1, 1);
	if (in_index == NULL) {
		rc = tw_err_set(e, TW_ENOMEM, "out of memory");
		goto done;
	}
	for (uint32_t p = 0; p < np; p++) {
		char name[65];
		tw_hex(r->index.packs[p], TW_ID_LEN, name);
		uint64_t size = 0;
		int found = 0;
		for (size_t k = 0; k < packs.n; k++)
			if (strcmp(packs.v[k], name) == 0) {
				found = 1;
				size = packs.size[k];
				in_index[k] = 1;
				break;
			}
		if (!found) {
			if (live[p]) {
				free(in_index);
				rc = tw_err_set(e, TW_ECORRUPT, "pack %.16s with live data is missing; run check", name);
				goto done;
			}
			drop[p] = 1; /* its index entries go */
			continue;
		}
		if (live[p] == 0) {
			drop[p] = 1;
			st->packs_deleted++;
			st->bytes_freed += size;
		} else if (size > 0 && (size - live[p]) * 100 > size * o->max_unused_percent) {
			drop[p] = rewrite[p] = 1;
			st->packs_rewritten++;
			st->bytes_freed += size - live[p];
		}
	}
	for (size_t k = 0; k < packs.n; k++)
		if (!in_index[k]) {
			st->packs_unindexed++;
			st->bytes_freed += packs.size[k];
		}
	if (o->dry_run) {
		free(in_index);
		goto done;
	}
	/* 1. new packs with the live blobs of rewritten packs */
	tw_packer_init(&pk[0], r, TW_BLOB_DATA);
	tw_packer_init(&pk[1], r, TW_BLOB_TREE);
	pk_init = 1;
	for (uint32_t p = 0; rc == 0 && p < np; p++)
		if (rewrite[p]) {
			char name[65];
			tw_hex(r->index.packs[p], TW_ID_LEN, name);
			rc = rewrite_pack(r, pk, p, name, &c, st, e);
			if (o->progress)
				tw_progress_add(&o->progress->files, 1);
		}
	if (rc == 0)
		rc = tw_packer_flush(&pk[0], e);
	if (rc == 0)
		rc = tw_packer_flush(&pk[1], e);
	/* pending index entries of new packs are part of the full index below */
	pthread_mutex_lock(&r->ix_mu);
	tw_index_enc_free(&r->idx_enc);
	tw_index_enc_init(&r->idx_enc);
	r->idx_pending = 0;
	pthread_mutex_unlock(&r->ix_mu);
	/* 2. the new index, durable before anything is deleted */
	if (rc == 0)
		rc = write_full_index(r, drop, np, st, e);
	if (rc != 0) {
		free(in_index);
		goto done;
	}
	/* 3. old index objects, 4. old packs */
	for (size_t k = 0; k < idx.n; k++)
		if (tw_storage_del(r->st, TW_ST_INDEX, idx.v[k], NULL) == 0)
			st->index_deleted++;
	for (uint32_t p = 0; p < np; p++)
		if (drop[p]) {
			char name[65];
			tw_hex(r->index.packs[p], TW_ID_LEN, name);
			tw_storage_del(r->st, TW_ST_DATA, name, NULL);
		}
	for (size_t k = 0; k < packs.n; k++)
		if (!in_index[k])
			tw_storage_del(r->st, TW_ST_DATA, packs.v[k], NULL);
	free(in_index);
done:
	if (pk_init) {
		tw_packer_free(&pk[0]);
		tw_packer_free(&pk[1]);
	}
	tw_repo_free_snapshots(snaps, nsnaps);
	tw_index_free(&c.used);
	free(idx.v);
	free(idx.size);
	free(packs.v);
	free(packs.size);
	free(live);
	free(drop);
	free(rewrite);
	return rc;
}
