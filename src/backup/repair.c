/* repair.c — `tapwork repair index` (repair.h). */
#include "backup/repair.h"

#include "backup/delta.h"
#include "backup/packer.h"
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

/* ---- repair snapshots ---- */

struct rsnap {
	struct tw_repo *r;
	struct tw_packer pk;
	struct tw_repair_snap_stats *st;
	const char *snap; /* id, for messages */
	int dry_run;
	uint8_t *present; /* [npacks]: the pack exists in storage */
	uint32_t npresent;
};

/* A blob is there when the index lists it in a pack that exists (an index
 * entry of a lost pack does not count; one written by this run does). */
static int have_blob(struct rsnap *c, const uint8_t id[TW_ID_LEN])
{
	/* a delta is there when its bases are */
	for (int d = 0; d <= TW_DELTA_READ_DEPTH; d++) {
		const struct tw_idx_slot *s = tw_index_get(&c->r->index, id);
		if (s == NULL || (s->pack < c->npresent && !c->present[s->pack]))
			return 0;
		if ((id = tw_index_base(&c->r->index, s)) == NULL)
			return 1;
	}
	return 0;
}

static int mark_present(void *arg, const char *name, uint64_t size)
{
	struct rsnap *c = arg;
	uint8_t id[TW_ID_LEN];
	(void)size;
	if (strlen(name) != 64 || tw_unhex(name, 64, id, TW_ID_LEN) != 0)
		return 0;
	uint32_t num = 0;
	if (tw_index_pack(&c->r->index, id, &num) != 0)
		return TW_ENOMEM;
	if (num < c->npresent)
		c->present[num] = 1;
	return 0;
}

/* Rewrite tree `id` (at path) without what is lost. *out: the new tree's ID
 * (= id when nothing changed); TW_ENOENT when the tree itself is lost. */
static int rewrite_tree(struct rsnap *c, const uint8_t id[TW_ID_LEN], const char *path, uint8_t out[TW_ID_LEN],
			int *changed, struct tw_err *e)
{
	struct tw_repo *r = c->r;
	*changed = 0;
	if (!have_blob(c, id))
		return TW_ENOENT;
	uint8_t *buf = NULL;
	struct tw_node *nodes = NULL;
	uint32_t n = 0;
	struct tw_err te = {0};
	if (tw_repo_read_tree(r, id, &buf, &nodes, &n, &te) != 0) {
		tw_warn("snapshot %.8s: directory %s unreadable: %s", c->snap, *path ? path : "/", te.msg);
		return TW_ENOENT;
	}
	struct tw_node *keep = malloc((n + 1) * sizeof *keep);
	int rc = keep ? 0 : tw_err_set(e, TW_ENOMEM, "out of memory");
	uint32_t k = 0;
	for (uint32_t i = 0; rc == 0 && i < n; i++) {
		struct tw_node nd = nodes[i];
		char child[4096];
		snprintf(child, sizeof child, "%s/%.*s", path, (int)nd.name_len, nd.name);
		if (nd.type == TW_NODE_FILE) {
			uint32_t lost = 0;
			for (uint32_t j = 0; j < nd.nchunks; j++)
				lost += !have_blob(c, nd.chunks + (size_t)j * TW_ID_LEN);
			if (lost) {
				tw_warn("snapshot %.8s: dropping file %s (%u of %u chunks lost)", c->snap, child, lost,
					nd.nchunks);
				c->st->files_dropped++;
				*changed = 1;
				continue;
			}
		} else if (nd.type == TW_NODE_DIR) {
			uint8_t sub[TW_ID_LEN];
			int ch = 0;
			int src = rewrite_tree(c, nd.subtree, child, sub, &ch, e);
			if (src == TW_ENOENT) {
				tw_warn("snapshot %.8s: dropping directory %s (its tree is lost)", c->snap, child);
				c->st->dirs_dropped++;
				*changed = 1;
				continue;
			}
			if (src != 0) {
				rc = src;
				break;
			}
			if (ch) {
				memcpy(nd.subtree, sub, TW_ID_LEN);
				*changed = 1;
			}
		}
		keep[k++] = nd;
	}
	if (rc == 0 && !*changed)
		memcpy(out, id, TW_ID_LEN);
	if (rc == 0 && *changed) {
		struct tw_dbuf b;
		tw_dbuf_init(&b, TW_BLOB_MAX_RAW);
		rc = tw_tree_encode(keep, k, &b);
		if (rc == 0)
			rc = tw_crypto_id(&r->keys, b.data, b.len, out);
		if (rc == 0 && !c->dry_run && !have_blob(c, out)) {
			uint8_t *scratch = malloc(b.len + 1), *sealed = malloc(b.len + TW_SEAL_OVERHEAD);
			size_t olen = 0;
			uint8_t flags = 0;
			rc = scratch && sealed ? 0 : TW_ENOMEM;
			if (rc == 0)
				rc = tw_blob_seal(&r->keys, NULL, r->level, TW_BLOB_TREE, out, (const uint8_t *)b.data, b.len,
						  scratch, sealed, &olen, &flags);
			if (rc == 0)
				rc = tw_packer_add(&c->pk, out, flags, sealed, olen, (uint32_t)b.len, e);
			free(scratch);
			free(sealed);
		}
		tw_dbuf_free(&b);
		if (rc != 0 && e->code == 0)
			tw_err_set(e, rc, "writing a repaired tree failed");
	}
	free(keep);
	free(nodes);
	free(buf);
	return rc;
}

int tw_repair_snapshots(struct tw_repo *r, int forget, int dry_run, struct tw_repair_snap_stats *st,
			struct tw_err *e)
{
	struct rsnap c = {.r = r, .st = st, .dry_run = dry_run};
	struct tw_snapshot **v = NULL;
	size_t nv = 0;
	memset(st, 0, sizeof *st);
	tw_packer_init(&c.pk, r, TW_BLOB_TREE);
	uint8_t(*roots)[TW_ID_LEN] = NULL;
	uint8_t *fix = NULL;
	c.npresent = r->index.npacks;
	int rc = (c.present = calloc(c.npresent + 1, 1)) ? 0 : tw_err_set(e, TW_ENOMEM, "out of memory");
	if (rc == 0 && (rc = tw_storage_list(r->st, TW_ST_DATA, mark_present, &c, e)) == TW_ENOMEM)
		rc = tw_err_set(e, rc, "out of memory");
	if (rc == 0)
		rc = tw_repo_list_snapshots(r, &v, &nv, e);
	if (rc != 0)
		goto done;
	st->snapshots = nv;
	roots = malloc((nv + 1) * sizeof *roots);
	fix = calloc(nv + 1, 1);
	if (roots == NULL || fix == NULL) {
		rc = tw_err_set(e, TW_ENOMEM, "out of memory");
		goto done;
	}
	/* 1. new trees (a snapshot that lost nothing is left alone) */
	for (size_t i = 0; i < nv; i++) {
		int changed = 0;
		c.snap = v[i]->id;
		int trc = rewrite_tree(&c, v[i]->tree, "", roots[i], &changed, e);
		if (trc == TW_ENOENT) {
			tw_error("snapshot %.8s: its root tree is lost; nothing of it can be kept", v[i]->id);
			st->unrepairable++;
			continue;
		}
		if (trc != 0) {
			rc = trc;
			goto done;
		}
		fix[i] = (uint8_t)changed;
	}
	if (dry_run) {
		for (size_t i = 0; i < nv; i++)
			st->repaired += fix[i];
		goto done;
	}
	/* 2. the trees and their index are durable before any snapshot names them */
	if ((rc = tw_packer_flush(&c.pk, e)) != 0 || (rc = tw_repo_flush_index(r, e)) != 0)
		goto done;
	/* 3. the repaired snapshots, then (forget) the originals */
	for (size_t i = 0; i < nv; i++) {
		if (!fix[i])
			continue;
		struct tw_snapshot *s = v[i];
		char old[sizeof s->id];
		memcpy(old, s->id, sizeof old);
		memcpy(s->tree, roots[i], TW_ID_LEN);
		if (!tw_snapshot_has_tag(s, "repaired")) {
			char **t = realloc(s->tags, (s->ntags + 1) * sizeof *t);
			if (t == NULL || (t[s->ntags] = strdup("repaired")) == NULL) {
				if (t != NULL)
					s->tags = t;
				rc = tw_err_set(e, TW_ENOMEM, "out of memory");
				goto done;
			}
			s->tags = t;
			s->ntags++;
		}
		snprintf(s->parent, sizeof s->parent, "%s", old); /* the original it was repaired from */
		if ((rc = tw_repo_save_snapshot(r, s, e)) != 0)
			goto done;
		st->repaired++;
		tw_info("snapshot %.8s repaired as %.8s", old, s->id);
		if (forget) {
			struct tw_err de = {0};
			if (tw_storage_del(r->st, TW_ST_SNAPSHOT, old, &de) == 0)
				st->forgotten++;
			else
				tw_warn("could not forget snapshot %.8s: %s", old, de.msg);
		}
	}
done:
	tw_packer_free(&c.pk);
	free(c.present);
	free(roots);
	free(fix);
	tw_repo_free_snapshots(v, nv);
	return rc;
}
