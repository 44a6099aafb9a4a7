/* check.c — repository verification (see check.h). */
#include "backup/check.h"
#include "backup/delta.h"

#include <openssl/evp.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/log.h"

struct pk {
	char name[65];
	uint64_t size;
};

struct cctx {
	struct tw_repo *r;
	const struct tw_check_opts *o;
	struct tw_check_stats *st;
	struct pk *store; /* packs present in storage, sorted */
	size_t nstore, cap;
	uint8_t *pack_bad; /* per pack number: 1 missing/damaged header */
	uint8_t *pack_read; /* per pack number: selected for reading */
	uint32_t *per_pack; /* per pack number: blobs the index places there */
	struct tw_index damaged; /* damaged blob IDs */
	struct tw_index trees;   /* tree id -> flags 1 clean, 2 damaged */
	pthread_mutex_t mu;
	uint32_t next;
};

static void err_count(struct cctx *c) { __atomic_add_fetch(&c->st->errors, 1, __ATOMIC_RELAXED); }

static int collect(void *arg, const char *name, uint64_t size)
{
	struct cctx *c = arg;
	if (c->nstore == c->cap) {
		size_t nc = c->cap ? c->cap * 2 : 256;
		void *nv = realloc(c->store, nc * sizeof *c->store);
		if (nv == NULL)
			return TW_ENOMEM;
		c->store = nv;
		c->cap = nc;
	}
	snprintf(c->store[c->nstore].name, 65, "%s", name);
	c->store[c->nstore++].size = size;
	return 0;
}

static int pk_cmp(const void *a, const void *b)
{
	return strcmp(((const struct pk *)a)->name, ((const struct pk *)b)->name);
}

static void mark_damaged(struct cctx *c, const uint8_t id[TW_ID_LEN])
{
	struct tw_pack_entry en = {0};
	memcpy(en.id, id, TW_ID_LEN);
	int added;
	pthread_mutex_lock(&c->mu);
	tw_index_add(&c->damaged, &en, 0, &added);
	pthread_mutex_unlock(&c->mu);
}

static void mark_pack_blobs(struct cctx *c, uint32_t p)
{
	for (size_t i = 0; i < c->r->index.cap; i++)
		if (c->r->index.slots[i].used && c->r->index.slots[i].pack == p)
			mark_damaged(c, c->r->index.slots[i].id);
}

/* The index must describe blobs exactly where the pack header says they are. */
static void compare_header(struct cctx *c, uint32_t p, const char *name,
			   const struct tw_pack_entry *ents, uint32_t n)
{
	uint32_t in_index = 0;
	for (uint32_t i = 0; i < n; i++) {
		const struct tw_idx_slot *s = tw_index_get(&c->r->index, ents[i].id);
		if (s == NULL || s->pack != p)
			continue; /* indexed elsewhere (a duplicate) or not at all */
		in_index++;
		if (s->offset != ents[i].offset || s->length != ents[i].length ||
		    s->raw_length != ents[i].raw_length || s->flags != ents[i].flags ||
		    s->type != ents[i].type ||
		    ((s->flags & TW_BLOB_DELTA) &&
		     (tw_index_base(&c->r->index, s) == NULL ||
		      memcmp(tw_index_base(&c->r->index, s), ents[i].base, TW_ID_LEN) != 0))) {
			char hex[65];
			tw_hex(ents[i].id, TW_ID_LEN, hex);
			tw_error("pack %s: index and pack header disagree about blob %s", name, hex);
			err_count(c);
			mark_damaged(c, ents[i].id);
		}
	}
	uint32_t expected = c->per_pack[p];
	if (expected != in_index) {
		tw_error("pack %s: the index lists %u blobs the pack header does not have", name,
			 expected - in_index);
		err_count(c);
	}
}

/* per checker thread: decompression buffer */
struct cwork {
	uint8_t *raw;
	size_t raw_cap;
};

#define WINDOW ((uint64_t)4 << 20)

static void check_pack(struct cctx *c, struct cwork *w, uint32_t p)
{
	struct tw_repo *r = c->r;
	char name[65];
	tw_hex(r->index.packs[p], TW_ID_LEN, name);
	struct pk key, *found;
	snprintf(key.name, sizeof key.name, "%s", name);
	found = c->nstore ? bsearch(&key, c->store, c->nstore, sizeof *c->store, pk_cmp) : NULL;
	if (found == NULL) {
		tw_error("pack %s is missing", name);
		err_count(c);
		c->pack_bad[p] = 1;
		mark_pack_blobs(c, p);
		return;
	}
	struct tw_err e = {0};
	struct tw_pack_entry *ents = NULL;
	uint32_t n = 0;
	if (!c->pack_read[p]) {
		if (tw_repo_pack_header(r, name, found->size, &ents, &n, &e) != 0) {
			tw_error("pack %s: %s", name, e.msg);
			err_count(c);
			c->pack_bad[p] = 1;
			mark_pack_blobs(c, p);
		} else
			compare_header(c, p, name, ents, n);
		free(ents);
		return;
	}
	/* Read the pack in windows of whole blobs (at most WINDOW bytes unless
	 * one blob is larger), hashing as we go: a checker thread never holds a
	 * whole pack. The header (read first) says where the blobs are. */
	EVP_MD_CTX *sha = EVP_MD_CTX_new();
	if (sha == NULL || EVP_DigestInit_ex(sha, EVP_sha256(), NULL) != 1) {
		EVP_MD_CTX_free(sha);
		tw_error("pack %s: SHA-256 not available", name);
		err_count(c);
		return;
	}
	char hex[65];
	int hdr_rc = tw_repo_pack_header(r, name, found->size, &ents, &n, &e);
	uint64_t pos = 0, data_end = 0;
	if (hdr_rc == 0 && n > 0)
		data_end = (uint64_t)ents[n - 1].offset + ents[n - 1].length;
	uint32_t i = 0;
	int io_bad = 0;
	while (!io_bad && (hdr_rc == 0 ? i < n : pos < found->size)) {
		uint64_t start = pos, end;
		uint32_t lo = i;
		if (hdr_rc == 0) {
			end = (uint64_t)ents[i].offset + ents[i].length;
			while (++i < n && (uint64_t)ents[i].offset + ents[i].length - start <= WINDOW)
				end = (uint64_t)ents[i].offset + ents[i].length;
		} else {
			end = start + WINDOW < found->size ? start + WINDOW : found->size;
		}
		uint8_t *buf;
		size_t len;
		if (tw_storage_get(r->st, TW_ST_DATA, name, start, end - start, &buf, &len, &e) != 0) {
			io_bad = 1;
			break;
		}
		EVP_DigestUpdate(sha, buf, len);
		if (c->o->progress)
			tw_progress_add(&c->o->progress->bytes, len);
		pos = start + len;
		for (uint32_t k = lo; hdr_rc == 0 && k < i; k++) {
			const uint8_t *pt;
			struct tw_err be = {0};
			__atomic_add_fetch(&c->st->blobs_checked, 1, __ATOMIC_RELAXED);
			if ((uint64_t)ents[k].offset + ents[k].length - start > len ||
			    tw_repo_blob_open(r, &ents[k], buf + (ents[k].offset - start), &w->raw,
					      &w->raw_cap, &pt, &be) != 0) {
				tw_hex(ents[k].id, TW_ID_LEN, hex);
				tw_error("pack %s: blob %s (%s) damaged: %s", name, hex,
					 ents[k].type == TW_BLOB_TREE ? "tree" : "data",
					 be.msg[0] ? be.msg : "truncated pack");
				err_count(c);
				mark_damaged(c, ents[k].id);
			}
		}
		free(buf);
		if (len < end - start)
			break; /* shorter than its header says: the hash tells */
	}
	/* the header and its length: the rest of the file */
	while (!io_bad && hdr_rc == 0 && pos >= data_end && pos < found->size) {
		uint8_t *buf;
		size_t len;
		if (tw_storage_get(r->st, TW_ST_DATA, name, pos, found->size - pos, &buf, &len, &e) != 0) {
			io_bad = 1;
			break;
		}
		EVP_DigestUpdate(sha, buf, len);
		if (c->o->progress)
			tw_progress_add(&c->o->progress->bytes, len);
		free(buf);
		if (len == 0)
			break;
		pos += len;
	}
	uint8_t h[32];
	unsigned int hl = 0;
	EVP_DigestFinal_ex(sha, h, &hl);
	EVP_MD_CTX_free(sha);
	if (io_bad) {
		tw_error("pack %s: %s", name, e.msg);
		err_count(c);
		mark_pack_blobs(c, p);
		free(ents);
		return;
	}
	__atomic_add_fetch(&c->st->packs_read, 1, __ATOMIC_RELAXED);
	tw_hex(h, 32, hex);
	if (strcmp(hex, name) != 0) {
		tw_error("pack %s: content does not match its name (damaged)", name);
		err_count(c);
	}
	if (hdr_rc != 0) {
		tw_error("pack %s: %s", name, e.msg);
		err_count(c);
		mark_pack_blobs(c, p);
		return;
	}
	compare_header(c, p, name, ents, n);
	free(ents);
}

static void *pack_main(void *arg)
{
	struct cctx *c = arg;
	struct cwork w = {NULL, 0};
	for (;;) {
		pthread_mutex_lock(&c->mu);
		uint32_t p = c->next++;
		pthread_mutex_unlock(&c->mu);
		if (p >= c->r->index.npacks)
			break;
		check_pack(c, &w, p);
	}
	free(w.raw);
	return NULL;
}

/* Returns 1 when the subtree is damaged. */
static int walk(struct cctx *c, const struct tw_snapshot *s, const uint8_t id[TW_ID_LEN],
		const char *path, int depth)
{
	const struct tw_idx_slot *seen = tw_index_get(&c->trees, id);
	if (seen != NULL && seen->flags == 1)
		return 0;
	int bad = 0;
	uint8_t *buf;
	struct tw_node *nodes;
	uint32_t n;
	struct tw_err e = {0};
	if (depth > 4096 || tw_index_get(&c->damaged, id) != NULL ||
	    tw_repo_read_tree(c->r, id, &buf, &nodes, &n, &e) != 0) {
		tw_error("snapshot %.8s: directory %s unreadable: %s", s->id, path[0] ? path : "/",
			 e.msg[0] ? e.msg : "damaged blob");
		err_count(c);
		bad = 1;
		goto done;
	}
	for (uint32_t i = 0; i < n; i++) {
		const struct tw_node *nd = &nodes[i];
		char child[4096];
		snprintf(child, sizeof child, "%s/%.*s", path, (int)nd->name_len, nd->name);
		if (nd->type == TW_NODE_DIR) {
			bad |= walk(c, s, nd->subtree, child, depth + 1);
		} else if (nd->type == TW_NODE_FILE) {
			for (uint32_t k = 0; k < nd->nchunks; k++) {
				const uint8_t *cid = nd->chunks + (size_t)k * TW_ID_LEN;
				const char *why = NULL;
				if (tw_index_get(&c->r->index, cid) == NULL)
					why = "missing from the index";
				else if (tw_index_get(&c->damaged, cid) != NULL)
					why = "damaged";
				if (why) {
					char hex[65];
					tw_hex(cid, TW_ID_LEN, hex);
					tw_error("snapshot %.8s: file %s: chunk %.16s %s", s->id, child,
						 hex, why);
					err_count(c);
					c->st->damaged_files++;
					bad = 1;
					break;
				}
			}
		}
	}
	free(nodes);
	free(buf);
done:;
	struct tw_pack_entry en = {0};
	memcpy(en.id, id, TW_ID_LEN);
	en.flags = bad ? 2 : 1;
	int added;
	if (seen == NULL)
		tw_index_add(&c->trees, &en, 0, &added);
	return bad;
}

/* A delta blob is only as good as its base: one whose base is not in the
 * index, or is damaged, is damaged too (transitively, so a damaged base
 * names every delta built on it). */
static void check_bases(struct cctx *c)
{
	struct tw_index *ix = &c->r->index;
	char hex[65], bhex[65];
	for (int round = 0; round < TW_DELTA_READ_DEPTH + 1; round++) {
		int more = 0;
		for (size_t i = 0; i < ix->cap; i++) {
			const struct tw_idx_slot *s = &ix->slots[i];
			const uint8_t *b = s->used ? tw_index_base(ix, s) : NULL;
			if (b == NULL || tw_index_get(&c->damaged, s->id) != NULL)
				continue;
			const char *why = NULL;
			if (tw_index_get(ix, b) == NULL)
				why = "is not in the index";
			else if (tw_index_get(&c->damaged, b) != NULL)
				why = "is damaged";
			if (why == NULL)
				continue;
			tw_hex(s->id, TW_ID_LEN, hex);
			tw_hex(b, TW_ID_LEN, bhex);
			tw_error("blob %s (data, a delta) cannot be rebuilt: its base %s %s", hex, bhex,
				 why);
			err_count(c);
			mark_damaged(c, s->id);
			more = 1;
		}
		if (!more)
			break;
	}
}

int tw_check_run(struct tw_repo *r, const struct tw_check_opts *o, struct tw_check_stats *st,
		 struct tw_err *e)
{
	struct cctx c;
	memset(&c, 0, sizeof c);
	memset(st, 0, sizeof *st);
	c.r = r;
	c.o = o;
	c.st = st;
	tw_index_init(&c.damaged);
	tw_index_init(&c.trees);
	pthread_mutex_init(&c.mu, NULL);
	struct tw_snapshot **v = NULL;
	size_t nsnap = 0;
	int rc = tw_repo_load_index(r, e);
	if (rc != 0)
		goto done;
	st->errors += r->index_errors;
	st->index_damaged = r->index_errors;
	if ((rc = tw_storage_list(r->st, TW_ST_DATA, collect, &c, e)) != 0)
		goto done;
	if (c.nstore > 1)
		qsort(c.store, c.nstore, sizeof *c.store, pk_cmp);
	uint32_t np = r->index.npacks;
	st->packs = np;
	c.pack_bad = calloc(np + 1, 1);
	c.pack_read = calloc(np + 1, 1);
	c.per_pack = calloc(np + 1, sizeof *c.per_pack);
	if (c.pack_bad == NULL || c.pack_read == NULL || c.per_pack == NULL) {
		rc = tw_err_set(e, TW_ENOMEM, "out of memory");
		goto done;
	}
	for (size_t i = 0; i < r->index.cap; i++)
		if (r->index.slots[i].used && r->index.slots[i].pack < np)
			c.per_pack[r->index.slots[i].pack]++;
	for (uint32_t p = 0; p < np; p++) {
		if (!o->read_data)
			continue;
		uint32_t rnd = 0;
		RAND_bytes((unsigned char *)&rnd, sizeof rnd);
		c.pack_read[p] = o->read_percent >= 100 || rnd % 100 < o->read_percent;
	}
	/* unreferenced packs: informational */
	for (size_t i = 0; i < c.nstore; i++) {
		uint8_t id[TW_ID_LEN];
		int known = 0;
		if (tw_unhex(c.store[i].name, strlen(c.store[i].name), id, TW_ID_LEN) == 0)
			for (uint32_t p = 0; p < np && !known; p++)
				known = memcmp(r->index.packs[p], id, TW_ID_LEN) == 0;
		if (!known)
			st->unreferenced_packs++;
	}
	long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
	int nt = o->threads > 0 ? o->threads : (ncpu > 0 ? (int)ncpu : 2);
	pthread_t th[64];
	int started = 0;
	for (int i = 0; i < nt && i < 64; i++)
		if (pthread_create(&th[i], NULL, pack_main, &c) == 0)
			started++;
	if (started == 0)
		pack_main(&c);
	for (int i = 0; i < started; i++)
		pthread_join(th[i], NULL);
	check_bases(&c);
	if ((rc = tw_repo_list_snapshots(r, &v, &nsnap, e)) != 0)
		goto done;
	st->snapshots = nsnap;
	for (size_t i = 0; i < nsnap; i++)
		walk(&c, v[i], v[i]->tree, "", 0);
	if (st->errors)
		rc = tw_err_set(e, TW_ECORRUPT, "%llu errors found", (unsigned long long)st->errors);
done:
	tw_repo_free_snapshots(v, nsnap);
	free(c.store);
	free(c.pack_bad);
	free(c.pack_read);
	free(c.per_pack);
	tw_index_free(&c.damaged);
	tw_index_free(&c.trees);
	pthread_mutex_destroy(&c.mu);
	return rc;
}
