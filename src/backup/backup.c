/* backup.c — the backup pipeline (see backup.h and docs/internals/backup-pipeline.md). */
#include "backup/backup.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <grp.h>
#include <limits.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <time.h>
#include <unistd.h>
#include <zstd.h>

#include "backup/chunker.h"
#include "backup/delta.h"
#include "backup/packer.h"
#include "backup/queue.h"
#include "core/arena.h"
#include "core/log.h"

/* A slab holds a partial chunk (< max chunk, 4 MiB) plus at least one read. */
#define SLAB_SIZE ((size_t)6 << 20)
#define READ_BLOCK ((size_t)1 << 20)

struct slab {
	int refs; /* atomic */
	struct slab *next;
	uint8_t data[];
};

struct wctx {
	ZSTD_CCtx *cctx;
	uint8_t *scratch, *out;
	int zprofile; /* TW_ZP_* cctx is set up for */
	uint8_t *base; /* a delta base's plaintext (grown as needed) */
	size_t base_cap;
};

struct dirnode {
	struct dirnode *parent;
	uint32_t slot;
	struct tw_node *nodes;
	uint8_t *owned; /* owned[i]: nodes[i].chunks is malloc'd by a file job */
	uint32_t n;
	int pending; /* atomic: unfinished children + 1 while the walker fills it */
	struct tw_arena arena;
};

struct filejob {
	struct dirnode *d;
	uint32_t slot;
	int fd;
	char *path;
	uint64_t size;
	uint8_t *chunks;
	uint32_t cap, nchunks;
	int pending; /* atomic: chunks in flight + 1 for the reader */
	const struct tw_backup_stream *stream; /* size unknown: read to EOF */
	uint8_t *base; /* fixed-size units: the parent snapshot's chunk IDs of this file */
	uint32_t nbase;
	uint32_t delta_tries, delta_misses; /* atomic: deltas tried, and not worth it */
};

struct chunkjob {
	struct filejob *f;
	uint32_t idx;
	struct slab *s;
	const uint8_t *p;
	uint32_t len;
};

struct eng {
	struct tw_repo *r;
	const struct tw_backup_opts *o;
	struct tw_backup_stats *st;
	struct tw_progress *pg;
	struct tw_queue fileq, chunkq;
	struct tw_packer data_pk, tree_pk;
	pthread_mutex_t slab_mu;
	pthread_cond_t slab_cv;
	struct slab *free_slabs;
	int slabs_out, slabs_max;
	pthread_mutex_t err_mu;
	int failed;
	struct tw_err err;
	uint8_t root_id[TW_ID_LEN];
	int root_done;
	/* walker-only caches */
	struct {
		uint32_t id;
		char name[64];
		int ok;
	} users[32], groups[32];
	unsigned nusers, ngroups;
	char *xnames, *xvalue; /* walker's xattr buffers */
};

static uint64_t dummy_counter;
#define PG(g, field) ((g)->pg ? &(g)->pg->field : &dummy_counter)

static void fail(struct eng *g, const struct tw_err *e, int code)
{
	pthread_mutex_lock(&g->err_mu);
	if (!g->failed) {
		g->failed = 1;
		if (e != NULL && e->code != 0)
			g->err = *e;
		else
			tw_err_set(&g->err, code, "%s", tw_strerror(code));
	}
	pthread_mutex_unlock(&g->err_mu);
}

static int is_failed(struct eng *g)
{
	if (g->o->cancel != NULL && *g->o->cancel && !__atomic_load_n(&g->failed, __ATOMIC_RELAXED)) {
		struct tw_err e = {0};
		tw_err_set(&e, TW_ECANCELED, "backup cancelled");
		fail(g, &e, TW_ECANCELED);
	}
	return __atomic_load_n(&g->failed, __ATOMIC_RELAXED);
}

static void stat_add(uint64_t *c, uint64_t v) { __atomic_add_fetch(c, v, __ATOMIC_RELAXED); }

/* ---- slabs ---- */

static struct slab *slab_get(struct eng *g)
{
	pthread_mutex_lock(&g->slab_mu);
	while (g->free_slabs == NULL && g->slabs_out >= g->slabs_max)
		pthread_cond_wait(&g->slab_cv, &g->slab_mu);
	struct slab *s = g->free_slabs;
	if (s != NULL)
		g->free_slabs = s->next;
	g->slabs_out++;
	pthread_mutex_unlock(&g->slab_mu);
	if (s == NULL)
		s = malloc(sizeof *s + SLAB_SIZE);
	if (s != NULL)
		s->refs = 1;
	return s;
}

static void slab_unref(struct eng *g, struct slab *s)
{
	if (s == NULL || __atomic_sub_fetch(&s->refs, 1, __ATOMIC_ACQ_REL) != 0)
		return;
	pthread_mutex_lock(&g->slab_mu);
	s->next = g->free_slabs;
	g->free_slabs = s;
	g->slabs_out--;
	pthread_cond_signal(&g->slab_cv);
	pthread_mutex_unlock(&g->slab_mu);
}

/* ---- worker contexts ---- */

/* Workers compress straight into their output buffer (after the nonce) and
 * encrypt in place: one chunk-sized buffer per worker. Readers and the
 * walker only encode trees and need no buffer. */
static int wctx_init(struct wctx *w, struct tw_repo *r, int with_buffer)
{
	w->cctx = ZSTD_createCCtx();
	w->out = with_buffer ? malloc((size_t)r->chunk_max + TW_SEAL_OVERHEAD) : NULL;
	w->scratch = w->out ? w->out + TW_NONCE_LEN : NULL;
	w->zprofile = TW_ZP_DEFAULT;
	return w->cctx && (w->out || !with_buffer) ? 0 : TW_ENOMEM;
}

static void wctx_free(struct wctx *w)
{
	ZSTD_freeCCtx(w->cctx);
	free(w->out);
	free(w->base);
}

/* Claim a blob ID: 1 when new (caller must store it), 0 when known. */
static int claim(struct eng *g, const uint8_t id[TW_ID_LEN], uint8_t type, int *isnew)
{
	struct tw_pack_entry en = {0};
	en.type = type;
	memcpy(en.id, id, TW_ID_LEN);
	pthread_mutex_lock(&g->r->ix_mu);
	int rc = tw_index_add(&g->r->index, &en, TW_PACK_NEW, isnew);
	pthread_mutex_unlock(&g->r->ix_mu);
	return rc;
}

/* ---- directories ---- */

static void dir_free(struct dirnode *d)
{
	for (uint32_t i = 0; i < d->n; i++)
		if (d->owned[i] == 1)
			free((void *)d->nodes[i].chunks);
	tw_arena_free(&d->arena);
	free(d->nodes);
	free(d->owned);
	free(d);
}

static int store_tree(struct eng *g, struct wctx *w, struct dirnode *d, uint8_t id[TW_ID_LEN])
{
	struct tw_dbuf b;
	struct tw_err e = {0};
	tw_dbuf_init(&b, TW_BLOB_MAX_RAW);
	/* drop entries that turned out unreadable (owned == 2) */
	uint32_t k = 0;
	for (uint32_t i = 0; i < d->n; i++)
		if (d->owned[i] != 2) {
			d->owned[k] = d->owned[i];
			d->nodes[k++] = d->nodes[i];
		}
	d->n = k; /* all children are done: no slot index is used any more */
	int rc = tw_tree_encode(d->nodes, k, &b);
	if (rc != 0) {
		tw_dbuf_free(&b);
		tw_err_set(&e, rc, "directory too large to encode");
		fail(g, &e, rc);
		return rc;
	}
	int isnew = 0;
	rc = tw_crypto_id(&g->r->keys, b.data, b.len, id);
	if (rc == 0)
		rc = claim(g, id, TW_BLOB_TREE, &isnew);
	if (rc == 0 && isnew) {
		uint8_t *scratch = malloc(b.len + 1), *out = malloc(b.len + TW_SEAL_OVERHEAD);
		size_t olen;
		uint8_t flags;
		rc = scratch && out ? 0 : TW_ENOMEM;
		if (rc == 0 && w->zprofile != TW_ZP_DEFAULT) {
			tw_zstd_profile(w->cctx, TW_ZP_DEFAULT);
			w->zprofile = TW_ZP_DEFAULT;
		}
		if (rc == 0)
			rc = tw_blob_seal(&g->r->keys, w->cctx, g->r->level, TW_BLOB_TREE, id,
					  (const uint8_t *)b.data, b.len, scratch, out, &olen, &flags);
		if (rc == 0)
			rc = tw_packer_add(&g->tree_pk, id, flags, out, olen, (uint32_t)b.len, &e);
		free(scratch);
		free(out);
	}
	tw_dbuf_free(&b);
	if (rc != 0)
		fail(g, &e, rc);
	return rc;
}

static void dir_done(struct eng *g, struct wctx *w, struct dirnode *d)
{
	while (d != NULL && __atomic_sub_fetch(&d->pending, 1, __ATOMIC_ACQ_REL) == 0) {
		uint8_t id[TW_ID_LEN] = {0};
		if (!is_failed(g))
			store_tree(g, w, d, id);
		struct dirnode *parent = d->parent;
		if (parent != NULL)
			memcpy(parent->nodes[d->slot].subtree, id, TW_ID_LEN);
		else {
			memcpy(g->root_id, id, TW_ID_LEN);
			g->root_done = 1;
		}
		dir_free(d);
		d = parent;
	}
}

static void file_done(struct eng *g, struct wctx *w, struct filejob *f)
{
	if (__atomic_sub_fetch(&f->pending, 1, __ATOMIC_ACQ_REL) != 0)
		return;
	struct tw_node *nd = &f->d->nodes[f->slot];
	nd->size = f->size; /* what was actually read (the file may have shrunk) */
	nd->chunks = f->chunks;
	nd->nchunks = f->nchunks;
	f->d->owned[f->slot] = 1;
	struct dirnode *d = f->d;
	free(f->path);
	free(f->base);
	free(f);
	stat_add(PG(g, files), 1);
	dir_done(g, w, d);
}

/* ---- workers ---- */

/* A new fixed-size unit whose file had a unit at the same offset in the
 * parent snapshot: store it as a page delta against that one (read back
 * from the repository, docs/repository-format.md "Delta blobs") when the
 * base is stored, at most TW_DELTA_MAX_DEPTH - 1 deltas deep, and some
 * pages are unchanged. TW_EAGAIN: store it whole. */
static int seal_delta(struct eng *g, struct wctx *w, struct filejob *f,
		      const struct chunkjob *j, const uint8_t id[TW_ID_LEN], size_t *olen,
		      uint8_t *flags, const uint8_t **base_id)
{
	if (f->base == NULL || j->idx >= f->nbase || !g->r->local)
		return TW_EAGAIN;
	/* a file whose units mostly changed in every page (a bulk update):
	 * reading the bases back costs and saves nothing; try one unit in 16
	 * so a later stretch of lightly changed units is noticed */
	uint32_t tries = __atomic_load_n(&f->delta_tries, __ATOMIC_RELAXED);
	uint32_t misses = __atomic_load_n(&f->delta_misses, __ATOMIC_RELAXED);
	if (tries >= 8 && misses * 4 > tries * 3 && j->idx % 16 != 0)
		return TW_EAGAIN;
	const uint8_t *b = f->base + (size_t)j->idx * TW_ID_LEN;
	pthread_mutex_lock(&g->r->ix_mu);
	const struct tw_idx_slot *s = tw_index_get(&g->r->index, b);
	int ok = s != NULL && s->pack != TW_PACK_NEW && s->type == TW_BLOB_DATA &&
		 tw_index_depth(&g->r->index, b, TW_DELTA_MAX_DEPTH) < TW_DELTA_MAX_DEPTH;
	pthread_mutex_unlock(&g->r->ix_mu);
	if (!ok)
		return TW_EAGAIN;
	size_t bn;
	struct tw_err e = {0};
	if (tw_repo_read_base(g->r, b, &w->base, &w->base_cap, &bn, &e) != 0) {
		tw_debug("%s: base unit %u unreadable, stored whole: %s", f->path, j->idx, e.msg);
		return TW_EAGAIN;
	}
	*base_id = b;
	int rc = tw_blob_seal_delta(&g->r->keys, w->cctx, g->r->level, id, b, w->base, bn, j->p,
				    j->len, w->scratch, w->out, olen, flags);
	__atomic_add_fetch(&f->delta_tries, 1, __ATOMIC_RELAXED);
	if (rc == TW_EAGAIN)
		__atomic_add_fetch(&f->delta_misses, 1, __ATOMIC_RELAXED);
	return rc;
}

static void process_chunk(struct eng *g, struct wctx *w, struct chunkjob *j)
{
	struct filejob *f = j->f;
	if (!is_failed(g)) {
		uint8_t *id = f->chunks + (size_t)j->idx * TW_ID_LEN;
		int isnew = 0;
		int rc = tw_crypto_id(&g->r->keys, j->p, j->len, id);
		if (rc == 0)
			rc = claim(g, id, TW_BLOB_DATA, &isnew);
		if (rc == 0 && isnew) {
			size_t olen;
			uint8_t flags;
			struct tw_err e = {0};
			int prof = g->o->zprofile != NULL && f->stream == NULL
					   ? g->o->zprofile(j->p, j->len)
					   : TW_ZP_DEFAULT;
			if (prof != w->zprofile) {
				tw_zstd_profile(w->cctx, prof);
				w->zprofile = prof;
			}
			const uint8_t *base = NULL;
			rc = seal_delta(g, w, f, j, id, &olen, &flags, &base);
			if (rc == TW_EAGAIN)
				rc = tw_blob_seal(&g->r->keys, w->cctx, g->r->level, TW_BLOB_DATA, id,
						  j->p, j->len, w->scratch, w->out, &olen, &flags);
			if (rc == 0)
				rc = tw_packer_add_base(&g->data_pk, id, flags, base, w->out, olen,
							j->len, &e);
			if (rc != 0)
				fail(g, &e, rc);
			stat_add(&g->st->new_blobs, 1);
			if (flags & TW_BLOB_DELTA)
				stat_add(&g->st->delta_blobs, 1);
			stat_add(&g->st->new_bytes, j->len);
			stat_add(&g->st->stored_bytes, olen);
		} else if (rc != 0)
			fail(g, NULL, rc);
	}
	stat_add(PG(g, bytes), j->len);
	slab_unref(g, j->s);
	file_done(g, w, f);
	free(j);
}

struct thr {
	struct eng *g;
	pthread_t t;
	struct wctx w;
	struct slab *cur;
	size_t fill;
	struct tw_chunker ch;
};

static void *worker_main(void *arg)
{
	struct thr *t = arg;
	struct chunkjob *j;
	tw_queue_consumer_thread();
	while ((j = tw_queue_pop(&t->g->chunkq)) != NULL)
		process_chunk(t->g, &t->w, j);
	return NULL;
}

/* ---- readers ---- */

static int emit(struct thr *t, struct filejob *f, size_t start, size_t len)
{
	struct eng *g = t->g;
	if (f->nchunks >= f->cap && f->stream != NULL && f->cap < (1u << 30)) {
		/* A stream's length is unknown: grow the chunk list once every
		 * chunk in flight is done (workers write into it by index). */
		struct timespec nap = {0, 200000};
		while (__atomic_load_n(&f->pending, __ATOMIC_ACQUIRE) != 1)
			nanosleep(&nap, NULL);
		uint8_t *nc = realloc(f->chunks, (size_t)f->cap * 2 * TW_ID_LEN);
		if (nc == NULL)
			return TW_ENOMEM;
		f->chunks = nc;
		f->cap *= 2;
	}
	if (f->nchunks >= f->cap)
		return TW_ELIMIT;
	struct chunkjob *j = malloc(sizeof *j);
	if (j == NULL)
		return TW_ENOMEM;
	j->f = f;
	j->idx = f->nchunks++;
	j->s = t->cur;
	j->p = t->cur->data + start;
	j->len = (uint32_t)len;
	__atomic_add_fetch(&t->cur->refs, 1, __ATOMIC_ACQ_REL);
	__atomic_add_fetch(&f->pending, 1, __ATOMIC_ACQ_REL);
	tw_queue_push(&g->chunkq, j);
	return 0;
}

/* The source's inspect hook sees each chunk (with its offset in the file)
 * before it is emitted. */
static int inspect_emit(struct thr *t, struct filejob *f, size_t start, size_t len, uint64_t *foff)
{
	const struct tw_backup_opts *o = t->g->o;
	if (o->inspect != NULL && f->stream == NULL)
		o->inspect(o->inspect_arg, f->path, *foff, t->cur->data + start, len);
	*foff += len;
	return emit(t, f, start, len);
}

static void read_file(struct thr *t, struct filejob *f)
{
	struct eng *g = t->g;
	struct tw_err se = {0};
	if (f->stream != NULL) {
		int src = is_failed(g) ? TW_ECANCELED : f->stream->open(f->stream->arg, &f->fd, &se);
		if (src != 0) {
			fail(g, &se, src);
			f->size = 0;
			f->stream = NULL; /* not started: nothing to finish */
			f->fd = -1;
		}
	}
	uint64_t remaining = f->size, foff = 0;
	tw_chunker_reset(&t->ch);
	size_t start = t->fill;
	int rc = 0;
	if (f->size > READ_BLOCK) /* one read() covers smaller files: skip the syscall */
		posix_fadvise(f->fd, 0, 0, POSIX_FADV_SEQUENTIAL);
	while (remaining > 0 && !is_failed(g)) {
		if (t->cur == NULL || SLAB_SIZE - t->fill < READ_BLOCK) {
			struct slab *ns = slab_get(g);
			if (ns == NULL) {
				rc = TW_ENOMEM;
				break;
			}
			size_t tail = t->cur ? t->fill - start : 0;
			if (tail)
				memcpy(ns->data, t->cur->data + start, tail);
			slab_unref(g, t->cur);
			t->cur = ns;
			start = 0;
			t->fill = tail;
		}
		size_t want = SLAB_SIZE - t->fill;
		if (want > READ_BLOCK)
			want = READ_BLOCK;
		if (want > remaining)
			want = (size_t)remaining;
		ssize_t n = read(f->fd, t->cur->data + t->fill, want);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			tw_warn("read %s: %s", f->path, strerror(errno));
			stat_add(&g->st->errors, 1);
			break;
		}
		if (n == 0)
			break; /* file shrank while we read it */
		size_t pos = t->fill, end = t->fill + (size_t)n;
		uint32_t fixed = g->o->fixed_chunk;
		while (pos < end && rc == 0) {
			int cut;
			if (fixed > 0) {
				size_t take = fixed - (pos - start);
				if (take > end - pos)
					take = end - pos;
				pos += take;
				cut = pos - start == fixed;
			} else
				pos += tw_chunker_scan(&t->ch, t->cur->data + pos, end - pos, &cut);
			if (cut) {
				rc = inspect_emit(t, f, start, pos - start, &foff);
				start = pos;
			}
		}
		t->fill = end;
		remaining -= (uint64_t)n;
		stat_add(&g->st->bytes_read, (uint64_t)n);
		if (rc != 0)
			break;
	}
	if (rc == 0 && t->cur != NULL && t->fill > start)
		rc = inspect_emit(t, f, start, t->fill - start, &foff);
	f->size -= remaining; /* bytes actually read */
	if (rc != 0)
		fail(g, NULL, rc);
	if (f->fd >= 0)
		close(f->fd);
	if (f->stream != NULL) {
		int aborted = is_failed(g) || remaining == 0;
		int frc = f->stream->finish(f->stream->arg, aborted, &se);
		if (frc != 0)
			fail(g, &se, frc);
		else if (remaining == 0) {
			tw_err_set(&se, TW_ELIMIT, "%s: stream too large", f->path);
			fail(g, &se, TW_ELIMIT);
		}
		stat_add(&g->st->bytes, f->size);
	}
	file_done(g, &t->w, f); /* the reader's own reference */
}

static void *reader_main(void *arg)
{
	struct thr *t = arg;
	struct filejob *f;
	tw_queue_consumer_thread();
	while ((f = tw_queue_pop(&t->g->fileq)) != NULL)
		read_file(t, f);
	slab_unref(t->g, t->cur);
	t->cur = NULL;
	return NULL;
}

/* ---- walker ---- */

struct ent {
	char *name;
	size_t nlen;
	const char *src; /* what to open relative to dirfd */
	struct stat st;
	int fd;
	const struct tw_node *cached;
	int vdir; /* a virtual directory of stream sources (root only) */
};

static int ent_cmp(const void *a, const void *b)
{
	const struct ent *x = a, *y = b;
	return tw_tree_name_cmp((const uint8_t *)x->name, x->nlen, (const uint8_t *)y->name,
				y->nlen);
}

static const char *id_name(struct eng *g, uint32_t id, int group)
{
	unsigned *n = group ? &g->ngroups : &g->nusers;
	__typeof__(g->users[0]) *c = group ? g->groups : g->users;
	for (unsigned i = 0; i < *n; i++)
		if (c[i].id == id)
			return c[i].ok ? c[i].name : NULL;
	unsigned slot = *n < 32 ? (*n)++ : id % 32;
	c[slot].id = id;
	c[slot].ok = 0;
	char buf[4096];
	if (group) {
		struct group gr, *res = NULL;
		if (getgrgid_r(id, &gr, buf, sizeof buf, &res) == 0 && res &&
		    strlen(res->gr_name) < sizeof c[slot].name) {
			snprintf(c[slot].name, sizeof c[slot].name, "%s", res->gr_name);
			c[slot].ok = 1;
		}
	} else {
		struct passwd pw, *res = NULL;
		if (getpwuid_r(id, &pw, buf, sizeof buf, &res) == 0 && res &&
		    strlen(res->pw_name) < sizeof c[slot].name) {
			snprintf(c[slot].name, sizeof c[slot].name, "%s", res->pw_name);
			c[slot].ok = 1;
		}
	}
	return c[slot].ok ? c[slot].name : NULL;
}

static int excluded(struct eng *g, const char *name, const char *full)
{
	for (size_t i = 0; i < g->o->nexcludes; i++)
		if (fnmatch(g->o->excludes[i], name, 0) == 0 ||
		    fnmatch(g->o->excludes[i], full, 0) == 0)
			return 1;
	return 0;
}

static uint8_t node_type(mode_t m)
{
	switch (m & S_IFMT) {
	case S_IFREG: return TW_NODE_FILE;
	case S_IFDIR: return TW_NODE_DIR;
	case S_IFLNK: return TW_NODE_SYMLINK;
	case S_IFIFO: return TW_NODE_FIFO;
	case S_IFCHR: return TW_NODE_CHR;
	case S_IFBLK: return TW_NODE_BLK;
	default: return TW_NODE_SOCK;
	}
}

/* Extended attributes of a file or directory (all namespaces the kernel
 * lets us read), encoded into the directory's arena. */
static void read_xattrs(struct eng *g, struct dirnode *d, struct tw_node *nd, const char *full)
{
	if (g->xnames == NULL)
		return;
	ssize_t n = llistxattr(full, g->xnames, TW_XATTR_VALUE_MAX);
	if (n <= 0)
		return;
	struct tw_dbuf b;
	tw_dbuf_init(&b, (size_t)4 << 20);
	uint16_t cnt = 0;
	for (char *p = g->xnames; p < g->xnames + n && cnt < UINT16_MAX; p += strlen(p) + 1) {
		ssize_t vl = lgetxattr(full, p, g->xvalue, TW_XATTR_VALUE_MAX);
		if (vl < 0)
			continue;
		if (tw_xattr_append(&b, p, g->xvalue, (uint32_t)vl) == 0)
			cnt++;
	}
	uint8_t *copy = b.len ? tw_arena_alloc(&d->arena, b.len) : NULL;
	if (copy != NULL) {
		memcpy(copy, b.data, b.len);
		nd->xattrs = copy;
		nd->xattrs_len = (uint32_t)b.len;
		nd->nxattrs = cnt;
	}
	tw_dbuf_free(&b);
}

/* Setting or removing an xattr changes ctime, so a file the files cache
 * found unchanged still has the xattrs the parent snapshot recorded. */
static void reuse_xattrs(struct dirnode *d, struct tw_node *nd, const struct tw_node *p)
{
	if (p->xattrs_len == 0)
		return;
	uint8_t *copy = tw_arena_alloc(&d->arena, p->xattrs_len);
	if (copy != NULL) {
		memcpy(copy, p->xattrs, p->xattrs_len);
		nd->xattrs = copy;
		nd->xattrs_len = p->xattrs_len;
		nd->nxattrs = p->nxattrs;
	}
}

static int64_t ts_ns(struct timespec t) { return (int64_t)t.tv_sec * 1000000000 + t.tv_nsec; }

static int cache_hit(struct eng *g, const struct tw_node *p, const struct stat *st)
{
	if (p == NULL || p->type != TW_NODE_FILE || p->size != (uint64_t)st->st_size ||
	    p->mtime_ns != ts_ns(st->st_mtim) || p->ctime_ns != ts_ns(st->st_ctim) ||
	    p->ino != (uint64_t)st->st_ino)
		return 0;
	if (g->o->cache_before_ns > 0 && (p->mtime_ns >= g->o->cache_before_ns ||
					  p->ctime_ns >= g->o->cache_before_ns))
		return 0;
	int ok = 1;
	pthread_mutex_lock(&g->r->ix_mu);
	for (uint32_t i = 0; ok && i < p->nchunks; i++)
		ok = tw_index_get(&g->r->index, p->chunks + (size_t)i * TW_ID_LEN) != NULL;
	pthread_mutex_unlock(&g->r->ix_mu);
	return ok;
}

static void walk_dir(struct eng *g, struct wctx *w, struct dirnode *parent, uint32_t slot,
		     const char *path, const struct tw_node *pnode);
static void stream_dir(struct eng *g, struct wctx *w, struct dirnode *parent, uint32_t slot,
		       const char *dir);

static struct dirnode *dir_new(struct dirnode *parent, uint32_t slot, uint32_t n)
{
	struct dirnode *d = calloc(1, sizeof *d);
	if (d == NULL)
		return NULL;
	d->parent = parent;
	d->slot = slot;
	d->n = n;
	d->pending = 1;
	d->nodes = calloc(n ? n : 1, sizeof *d->nodes);
	d->owned = calloc(n ? n : 1, 1);
	tw_arena_init(&d->arena, 64 * 1024);
	if (d->nodes == NULL || d->owned == NULL) {
		free(d->nodes);
		free(d->owned);
		free(d);
		return NULL;
	}
	return d;
}

/* Fill d from ents (sorted) and dispatch the work. dirfd/dirpath locate the
 * entries; ptree holds the parent snapshot's version of this directory. */
static void fill_dir(struct eng *g, struct wctx *w, struct dirnode *d, int dirfd,
		     const char *dirpath, struct ent *ents, const struct tw_node *pnodes,
		     uint32_t pn)
{
	for (uint32_t i = 0; i < d->n && !is_failed(g); i++) {
		struct ent *en = &ents[i];
		struct tw_node *nd = &d->nodes[i];
		const struct stat *st = &en->st;
		char full[PATH_MAX];
		if (dirpath != NULL)
			snprintf(full, sizeof full, "%s/%s", strcmp(dirpath, "/") ? dirpath : "", en->name);
		else
			snprintf(full, sizeof full, "%s", en->src);
		nd->name = (const uint8_t *)tw_arena_strndup(&d->arena, en->name, en->nlen);
		nd->name_len = (uint16_t)en->nlen;
		nd->type = node_type(st->st_mode);
		nd->mode = st->st_mode & 07777;
		nd->uid = st->st_uid;
		nd->gid = st->st_gid;
		const char *u = id_name(g, st->st_uid, 0), *gr = id_name(g, st->st_gid, 1);
		if (u) {
			nd->user = (const uint8_t *)tw_arena_strdup(&d->arena, u);
			nd->user_len = (uint8_t)strlen(u);
		}
		if (gr) {
			nd->group = (const uint8_t *)tw_arena_strdup(&d->arena, gr);
			nd->group_len = (uint8_t)strlen(gr);
		}
		nd->mtime_ns = ts_ns(st->st_mtim);
		nd->ctime_ns = ts_ns(st->st_ctim);
		nd->dev = st->st_dev;
		nd->ino = st->st_ino;
		nd->nlink = (uint32_t)st->st_nlink;
		nd->rdev = st->st_rdev;
		const struct tw_node *pnode =
			pnodes ? tw_tree_find(pnodes, pn, (const uint8_t *)en->name, en->nlen) : NULL;
		if (nd->type == TW_NODE_FILE && en->cached != NULL && g->xnames != NULL && !en->vdir)
			reuse_xattrs(d, nd, en->cached);
		else if ((nd->type == TW_NODE_FILE || nd->type == TW_NODE_DIR) && !en->vdir)
			read_xattrs(g, d, nd, full);
		switch (nd->type) {
		case TW_NODE_FILE:
			nd->size = (uint64_t)st->st_size;
			if (st->st_size > 0 && (uint64_t)st->st_blocks * 512 < (uint64_t)st->st_size)
				nd->flags |= TW_NODE_SPARSE;
			if (st->st_nlink > 1)
				nd->flags |= TW_NODE_HARDLINK;
			stat_add(&g->st->files, 1);
			stat_add(&g->st->bytes, nd->size);
			if (en->cached) {
				size_t len = (size_t)en->cached->nchunks * TW_ID_LEN;
				uint8_t *c = tw_arena_alloc(&d->arena, len ? len : 1);
				if (c == NULL) {
					fail(g, NULL, TW_ENOMEM);
					break;
				}
				memcpy(c, en->cached->chunks, len);
				nd->chunks = c;
				nd->nchunks = en->cached->nchunks;
				stat_add(&g->st->files_unchanged, 1);
				stat_add(PG(g, files), 1);
				stat_add(PG(g, bytes), nd->size);
			} else if (en->fd == -2) {
				/* opened only now, so open files are bounded by the queue */
				en->fd = openat(dirfd, en->src, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NOATIME);
				if (en->fd == -1 && errno == EPERM)
					en->fd = openat(dirfd, en->src, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
				if (en->fd == -1) {
					if (errno != ENOENT || !g->o->missing_ok) {
						tw_warn("open %s: %s", full, strerror(errno));
						stat_add(&g->st->errors, 1);
					}
					stat_add(&g->st->files, (uint64_t)-1);
					stat_add(&g->st->bytes, (uint64_t)-nd->size);
					d->owned[i] = 2; /* dropped from the tree */
					break;
				}
				struct filejob *f = calloc(1, sizeof *f);
				uint32_t cmin = g->o->fixed_chunk ? g->o->fixed_chunk : g->r->chunk_min;
				uint32_t cap = (uint32_t)(nd->size / cmin + 2);
				if (f != NULL)
					f->chunks = malloc((size_t)cap * TW_ID_LEN);
				if (f == NULL || f->chunks == NULL || (f->path = strdup(full)) == NULL) {
					if (f)
						free(f->chunks);
					free(f);
					close(en->fd);
					en->fd = -1;
					fail(g, NULL, TW_ENOMEM);
					break;
				}
				if (g->o->fixed_chunk > 0 && g->r->local && pnode != NULL &&
				    pnode->type == TW_NODE_FILE && pnode->nchunks > 0 &&
				    (f->base = malloc((size_t)pnode->nchunks * TW_ID_LEN)) != NULL) {
					memcpy(f->base, pnode->chunks, (size_t)pnode->nchunks * TW_ID_LEN);
					f->nbase = pnode->nchunks;
				}
				f->d = d;
				f->slot = i;
				f->fd = en->fd;
				en->fd = -1;
				f->size = nd->size;
				f->cap = cap;
				f->pending = 1;
				__atomic_add_fetch(&d->pending, 1, __ATOMIC_ACQ_REL);
				tw_queue_push(&g->fileq, f);
			} else {
				stat_add(PG(g, files), 1);
			}
			break;
		case TW_NODE_DIR:
			stat_add(&g->st->dirs, 1);
			__atomic_add_fetch(&d->pending, 1, __ATOMIC_ACQ_REL);
			if (en->vdir)
				stream_dir(g, w, d, i, en->name);
			else
				walk_dir(g, w, d, i, full,
					 pnode && pnode->type == TW_NODE_DIR ? pnode : NULL);
			break;
		case TW_NODE_SYMLINK: {
			char *t = tw_arena_alloc(&d->arena, PATH_MAX);
			ssize_t n = t ? readlinkat(dirfd, en->src, t, PATH_MAX - 1) : -1;
			if (n <= 0) {
				tw_warn("readlink %s: %s", full, strerror(errno));
				stat_add(&g->st->errors, 1);
				t = "?";
				n = 1;
			}
			nd->target = (const uint8_t *)t;
			nd->target_len = (uint16_t)n;
			nd->size = (uint64_t)n;
			stat_add(&g->st->others, 1);
			break;
		}
		default:
			stat_add(&g->st->others, 1);
			break;
		}
	}
}

/* Decide per regular file: cached by the parent snapshot, or to be read. */
static size_t prepare(struct eng *g, int dirfd, const char *dirpath, struct ent *ents, size_t n,
		      const struct tw_node *pnodes, uint32_t pn)
{
	size_t k = 0;
	for (size_t i = 0; i < n; i++) {
		struct ent *en = &ents[i];
		en->fd = -1;
		en->cached = NULL;
		if (S_ISREG(en->st.st_mode)) {
			const struct tw_node *p =
				pnodes && !g->o->force
					? tw_tree_find(pnodes, pn, (const uint8_t *)en->name, en->nlen)
					: NULL;
			if (cache_hit(g, p, &en->st))
				en->cached = p;
			else if (en->st.st_size > 0)
				en->fd = -2; /* to be opened just before it is queued */
		}
		ents[k++] = *en;
	}
	return k;
}

static void walk_dir(struct eng *g, struct wctx *w, struct dirnode *parent, uint32_t slot,
		     const char *path, const struct tw_node *pnode)
{
	uint8_t *pbuf = NULL;
	struct tw_node *pnodes = NULL;
	uint32_t pn = 0;
	if (pnode != NULL && !g->o->force) {
		struct tw_err e = {0};
		if (tw_repo_read_tree(g->r, pnode->subtree, &pbuf, &pnodes, &pn, &e) != 0)
			tw_debug("parent tree of %s unreadable: %s", path, e.msg);
	}
	struct tw_arena names;
	tw_arena_init(&names, 64 * 1024);
	struct ent *ents = NULL;
	size_t n = 0, cap = 0;
	int fd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	DIR *dir = fd >= 0 ? fdopendir(fd) : NULL;
	if (dir == NULL) {
		if (errno != ENOENT || !g->o->missing_ok) {
			tw_warn("open directory %s: %s", path, strerror(errno));
			stat_add(&g->st->errors, 1);
		}
		if (fd >= 0)
			close(fd);
		fd = -1;
	}
	struct dirent *de;
	while (dir != NULL && (de = readdir(dir)) != NULL) {
		const char *nm = de->d_name;
		if (strcmp(nm, ".") == 0 || strcmp(nm, "..") == 0)
			continue;
		char full[PATH_MAX];
		snprintf(full, sizeof full, "%s/%s", strcmp(path, "/") ? path : "", nm);
		if (excluded(g, nm, full) ||
		    (g->o->skip != NULL && g->o->skip(g->o->skip_arg, full)))
			continue;
		if (n == cap) {
			cap = cap ? cap * 2 : 64;
			struct ent *ne = realloc(ents, cap * sizeof *ents);
			if (ne == NULL) {
				fail(g, NULL, TW_ENOMEM);
				break;
			}
			ents = ne;
		}
		struct ent *en = &ents[n];
		if (fstatat(fd, nm, &en->st, AT_SYMLINK_NOFOLLOW) == -1) {
			if (errno == ENOENT && g->o->missing_ok)
				continue;
			tw_warn("stat %s: %s", full, strerror(errno));
			stat_add(&g->st->errors, 1);
			continue;
		}
		en->nlen = strlen(nm);
		en->name = tw_arena_strndup(&names, nm, en->nlen);
		en->src = en->name;
		en->vdir = 0;
		if (en->name == NULL || en->nlen > TW_NAME_MAX) {
			tw_warn("skipping %s: name too long", full);
			stat_add(&g->st->errors, 1);
			continue;
		}
		n++;
	}
	if (n > 1)
		qsort(ents, n, sizeof *ents, ent_cmp);
	n = prepare(g, fd, path, ents, n, pnodes, pn);
	struct dirnode *d = dir_new(parent, slot, (uint32_t)n);
	if (d == NULL) {
		fail(g, NULL, TW_ENOMEM);
		for (size_t i = 0; i < n; i++)
			if (ents[i].fd >= 0)
				close(ents[i].fd);
	} else {
		fill_dir(g, w, d, fd, path, ents, pnodes, pn);
		for (size_t i = 0; i < n; i++)
			if (ents[i].fd >= 0)
				close(ents[i].fd);
	}
	if (dir != NULL)
		closedir(dir);
	free(ents);
	tw_arena_free(&names);
	free(pnodes);
	free(pbuf);
	if (d != NULL)
		dir_done(g, w, d);
	else
		dir_done(g, w, parent); /* account the child as finished */
}

/* ---- stream sources ---- */

static int stream_cmp(const void *a, const void *b)
{
	const struct tw_backup_stream *x = *(const struct tw_backup_stream *const *)a,
				      *y = *(const struct tw_backup_stream *const *)b;
	return tw_tree_name_cmp((const uint8_t *)x->name, strlen(x->name), (const uint8_t *)y->name,
				strlen(y->name));
}

/* The virtual directory `dir`: one file per stream, read by the readers. */
static void stream_dir(struct eng *g, struct wctx *w, struct dirnode *parent, uint32_t slot,
		       const char *dir)
{
	const struct tw_backup_stream **v = calloc(g->o->nstreams + 1, sizeof *v);
	size_t n = 0;
	for (size_t i = 0; v != NULL && i < g->o->nstreams; i++)
		if (strcmp(g->o->streams[i].dir, dir) == 0)
			v[n++] = &g->o->streams[i];
	struct dirnode *d = v ? dir_new(parent, slot, (uint32_t)n) : NULL;
	if (d == NULL) {
		free(v);
		fail(g, NULL, TW_ENOMEM);
		dir_done(g, w, parent);
		return;
	}
	qsort(v, n, sizeof *v, stream_cmp);
	struct timespec now;
	clock_gettime(CLOCK_REALTIME, &now);
	const char *u = id_name(g, getuid(), 0), *gr = id_name(g, getgid(), 1);
	for (uint32_t i = 0; i < n && !is_failed(g); i++) {
		struct tw_node *nd = &d->nodes[i];
		size_t nl = strlen(v[i]->name);
		if (nl == 0 || nl > TW_NAME_MAX || strchr(v[i]->name, '/') != NULL ||
		    (i > 0 && strcmp(v[i - 1]->name, v[i]->name) == 0)) {
			struct tw_err e = {0};
			tw_err_set(&e, TW_EINVAL, "bad or duplicate stream name '%s/%s'", dir,
				   v[i]->name);
			fail(g, &e, TW_EINVAL);
			break;
		}
		nd->name = (const uint8_t *)tw_arena_strndup(&d->arena, v[i]->name, nl);
		nd->name_len = (uint16_t)nl;
		nd->type = TW_NODE_FILE;
		nd->mode = 0600;
		nd->uid = getuid();
		nd->gid = getgid();
		if (u) {
			nd->user = (const uint8_t *)tw_arena_strdup(&d->arena, u);
			nd->user_len = (uint8_t)strlen(u);
		}
		if (gr) {
			nd->group = (const uint8_t *)tw_arena_strdup(&d->arena, gr);
			nd->group_len = (uint8_t)strlen(gr);
		}
		nd->mtime_ns = nd->ctime_ns = ts_ns(now);
		nd->nlink = 1;
		struct filejob *f = calloc(1, sizeof *f);
		char path[PATH_MAX];
		snprintf(path, sizeof path, "%s/%s", dir, v[i]->name);
		if (f != NULL)
			f->chunks = malloc((size_t)64 * TW_ID_LEN);
		if (f == NULL || f->chunks == NULL || (f->path = strdup(path)) == NULL) {
			if (f)
				free(f->chunks);
			free(f);
			fail(g, NULL, TW_ENOMEM);
			break;
		}
		f->d = d;
		f->slot = i;
		f->fd = -1;
		f->size = UINT64_MAX;
		f->cap = 64;
		f->pending = 1;
		f->stream = v[i];
		stat_add(&g->st->files, 1);
		__atomic_add_fetch(&d->pending, 1, __ATOMIC_ACQ_REL);
		tw_queue_push(&g->fileq, f);
	}
	/* the streams point into g->o, which outlives the pipeline */
	free(v);
	dir_done(g, w, d);
}

/* ---- parent snapshot ---- */

static int same_paths(const struct tw_snapshot *s, char **paths, size_t n)
{
	if (s->npaths != n)
		return 0;
	for (size_t i = 0; i < n; i++)
		if (strcmp(s->paths[i], paths[i]) != 0)
			return 0;
	return 1;
}

/* Absolute path without following a symlink in the last component (a
 * symlink given on the command line is backed up as a symlink). */
static char *abs_path(const char *p)
{
	char buf[PATH_MAX];
	int n = snprintf(buf, sizeof buf, "%s", p);
	if (n <= 0 || (size_t)n >= sizeof buf)
		return NULL;
	while (n > 1 && buf[n - 1] == '/')
		buf[--n] = '\0';
	char *slash = strrchr(buf, '/');
	const char *base = slash ? slash + 1 : buf;
	if (strcmp(base, ".") == 0 || strcmp(base, "..") == 0 || strcmp(buf, "/") == 0)
		return realpath(buf, NULL);
	char *dir;
	if (slash == NULL)
		dir = realpath(".", NULL);
	else if (slash == buf)
		dir = realpath("/", NULL);
	else {
		*slash = '\0';
		dir = realpath(buf, NULL);
	}
	if (dir == NULL)
		return NULL;
	size_t dl = strlen(dir), bl = strlen(base);
	char *out = malloc(dl + bl + 2);
	if (out != NULL) {
		memcpy(out, dir, dl);
		size_t o = dl;
		if (dl == 0 || dir[dl - 1] != '/')
			out[o++] = '/';
		memcpy(out + o, base, bl + 1);
	}
	free(dir);
	return out;
}

static int path_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

int tw_backup_run(struct tw_repo *r, const struct tw_backup_opts *opts,
		  struct tw_backup_stats *stats, struct tw_err *e)
{
	struct eng *g = calloc(1, sizeof *g);
	if (g == NULL)
		return tw_err_set(e, TW_ENOMEM, "out of memory");
	memset(stats, 0, sizeof *stats);
	g->r = r;
	g->o = opts;
	g->st = stats;
	g->pg = opts->progress;
	g->xnames = malloc(TW_XATTR_VALUE_MAX);
	g->xvalue = malloc(TW_XATTR_VALUE_MAX);
	pthread_mutex_init(&g->slab_mu, NULL);
	pthread_cond_init(&g->slab_cv, NULL);
	pthread_mutex_init(&g->err_mu, NULL);
	int rc = 0;
	size_t np = opts->npaths, ns = opts->nstreams, nr = np;
	char **abs = calloc(np ? np : 1, sizeof *abs);
	char **spaths = calloc(np + ns + 1, sizeof *spaths); /* recorded in the snapshot */
	struct ent *roots = calloc(np + ns + 1, sizeof *roots);
	struct tw_snapshot **snaps = NULL, *snap = NULL;
	size_t nsnaps = 0;
	uint8_t *pbuf = NULL;
	struct tw_node *pnodes = NULL;
	uint32_t pn = 0;
	long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
	int nworkers = opts->threads > 0 ? opts->threads : (ncpu > 0 ? (int)ncpu : 2);
	int nreaders = nworkers > 2 ? 2 : 1; /* one reader chunks > 1 GB/s */
	struct thr *ths = calloc((size_t)(nworkers + nreaders), sizeof *ths);
	struct wctx ww = {0};
	int started = 0, qinit = 0;
	if (abs == NULL || spaths == NULL || roots == NULL || ths == NULL) {
		rc = tw_err_set(e, TW_ENOMEM, "out of memory");
		goto done;
	}
	/* absolute, sorted paths; root entries named by their last component */
	for (size_t i = 0; i < np; i++) {
		struct stat tmp;
		abs[i] = abs_path(opts->paths[i]);
		if (abs[i] == NULL || lstat(abs[i], &tmp) == -1) {
			rc = tw_err_set(e, TW_ENOENT, "%s: %s", opts->paths[i], strerror(errno));
			goto done;
		}
	}
	qsort(abs, np, sizeof *abs, path_cmp);
	for (size_t i = 0; i < np; i++) {
		struct ent *en = &roots[i];
		const char *base = strrchr(abs[i], '/');
		base = base && base[1] ? base + 1 : "root";
		en->name = (char *)base;
		en->nlen = strlen(base);
		en->src = abs[i];
		if (lstat(abs[i], &en->st) == -1) {
			rc = tw_err_set(e, TW_EIO, "%s: %s", abs[i], strerror(errno));
			goto done;
		}
	}
	/* stream sources: one virtual directory per distinct dir at the root */
	for (size_t i = 0; i < ns; i++) {
		const struct tw_backup_stream *sm = &opts->streams[i];
		size_t pl = strlen(sm->dir) + strlen(sm->name) + 9;
		if ((spaths[np + i] = malloc(pl)) == NULL) {
			rc = tw_err_set(e, TW_ENOMEM, "out of memory");
			goto done;
		}
		snprintf(spaths[np + i], pl, "stream:%s/%s", sm->dir, sm->name);
		int seen = 0;
		for (size_t k = np; k < nr; k++)
			seen |= strcmp(roots[k].name, sm->dir) == 0;
		if (seen)
			continue;
		if (sm->dir[0] == '\0' || strchr(sm->dir, '/') != NULL ||
		    strlen(sm->dir) > TW_NAME_MAX) {
			rc = tw_err_set(e, TW_EINVAL, "bad stream directory '%s'", sm->dir);
			goto done;
		}
		struct ent *en = &roots[nr++];
		en->name = (char *)sm->dir;
		en->nlen = strlen(sm->dir);
		en->src = sm->dir;
		en->vdir = 1;
		en->st.st_mode = S_IFDIR | 0700;
		en->st.st_uid = getuid();
		en->st.st_gid = getgid();
		en->st.st_nlink = 1;
		clock_gettime(CLOCK_REALTIME, &en->st.st_mtim);
		en->st.st_ctim = en->st.st_mtim;
	}
	for (size_t i = 0; i < np; i++)
		spaths[i] = abs[i];
	if (ns > 1)
		qsort(spaths + np, ns, sizeof *spaths, path_cmp);
	qsort(roots, nr, sizeof *roots, ent_cmp);
	for (size_t i = 1; i < nr; i++)
		if (ent_cmp(&roots[i - 1], &roots[i]) == 0) {
			rc = tw_err_set(e, TW_EINVAL, "two paths end in the same name '%s'",
					roots[i].name);
			goto done;
		}
	/* parent snapshot: newest with the same host and paths */
	char host[256];
	if (gethostname(host, sizeof host) != 0)
		snprintf(host, sizeof host, "unknown");
	host[sizeof host - 1] = '\0';
	if ((rc = tw_repo_list_snapshots(r, &snaps, &nsnaps, e)) != 0)
		goto done;
	for (size_t i = nsnaps; i-- > 0;)
		if (strcmp(snaps[i]->hostname, host) == 0 && same_paths(snaps[i], spaths, np + ns)) {
			snprintf(stats->parent_id, sizeof stats->parent_id, "%s", snaps[i]->id);
			if (!opts->force &&
			    tw_repo_read_tree(r, snaps[i]->tree, &pbuf, &pnodes, &pn, NULL) != 0)
				tw_warn("parent snapshot %.8s unreadable: every file is read",
					snaps[i]->id);
			break;
		}

	/* pipeline */
	if ((rc = tw_queue_init(&g->fileq, 64)) != 0 ||
	    (rc = tw_queue_init(&g->chunkq, (size_t)nworkers * 2 + 2)) != 0) {
		tw_err_set(e, rc, "out of memory");
		goto done;
	}
	qinit = 1;
	tw_packer_init(&g->data_pk, r, TW_BLOB_DATA);
	tw_packer_init(&g->tree_pk, r, TW_BLOB_TREE);
	if (tw_packer_start_writer(&g->data_pk, 1) != 0) {
		rc = tw_err_set(e, TW_ENOMEM, "cannot start the pack writer");
		goto done;
	}
	g->slabs_max = nreaders + nworkers + 1;
	if ((rc = wctx_init(&ww, r, 0)) != 0) {
		tw_err_set(e, rc, "out of memory");
		goto done;
	}
	for (int i = 0; i < nworkers + nreaders; i++) {
		ths[i].g = g;
		if (i < nworkers && wctx_init(&ths[i].w, r, 1) != 0) {
			rc = tw_err_set(e, TW_ENOMEM, "out of memory");
			break;
		}
		if (i >= nworkers) {
			ths[i].w = (struct wctx){0};
			if (wctx_init(&ths[i].w, r, 0) != 0 ||
			    tw_chunker_init(&ths[i].ch, r->gear, r->chunk_min, r->chunk_avg,
					    r->chunk_max) != 0) {
				rc = tw_err_set(e, TW_ENOMEM, "chunker setup failed");
				break;
			}
		}
		if (pthread_create(&ths[i].t, NULL, i < nworkers ? worker_main : reader_main,
				   &ths[i]) != 0) {
			rc = tw_err_set(e, TW_ENOMEM, "cannot start threads");
			break;
		}
		started++;
	}
	if (rc == 0) {
		struct dirnode *root = dir_new(NULL, 0, (uint32_t)nr);
		if (root == NULL) {
			fail(g, NULL, TW_ENOMEM);
		} else {
			size_t k = prepare(g, AT_FDCWD, NULL, roots, nr, pnodes, pn);
			root->n = (uint32_t)k;
			fill_dir(g, &ww, root, AT_FDCWD, NULL, roots, pnodes, pn);
			for (size_t i = 0; i < k; i++)
				if (roots[i].fd >= 0)
					close(roots[i].fd);
			dir_done(g, &ww, root);
		}
	}
	tw_queue_close(&g->fileq);
	for (int i = nworkers; i < started; i++)
		pthread_join(ths[i].t, NULL);
	tw_queue_close(&g->chunkq);
	for (int i = 0; i < started && i < nworkers; i++)
		pthread_join(ths[i].t, NULL);
	if (rc != 0)
		goto done;
	if (g->failed) {
		*e = g->err;
		rc = g->err.code ? g->err.code : TW_EIO;
		goto done;
	}
	if (!g->root_done) {
		rc = tw_err_set(e, TW_EIO, "internal error: root tree not finished");
		goto done;
	}
	/* durable order: packs, index, then the snapshot */
	if ((rc = tw_packer_flush(&g->tree_pk, e)) != 0 ||
	    (rc = tw_packer_flush(&g->data_pk, e)) != 0 || (rc = tw_repo_flush_index(r, e)) != 0)
		goto done;
	snap = calloc(1, sizeof *snap);
	if (snap == NULL) {
		rc = tw_err_set(e, TW_ENOMEM, "out of memory");
		goto done;
	}
	struct timespec now;
	clock_gettime(CLOCK_REALTIME, &now);
	snap->time_ns = opts->time_ns ? opts->time_ns : ts_ns(now);
	memcpy(snap->tree, g->root_id, TW_ID_LEN);
	snap->hostname = host;
	const char *user = getenv("USER");
	snap->username = (char *)(user ? user : "");
	snap->paths = spaths;
	snap->npaths = np + ns;
	snap->tags = opts->tags;
	snap->ntags = opts->ntags;
	snap->excludes = opts->excludes;
	snap->nexcludes = opts->nexcludes;
	snprintf(snap->parent, sizeof snap->parent, "%s", stats->parent_id);
	snap->files = stats->files;
	snap->dirs = stats->dirs;
	snap->bytes = stats->bytes;
	snap->new_bytes = stats->new_bytes;
	stats->stored_bytes = g->data_pk.bytes_written + g->tree_pk.bytes_written;
	if (opts->seal != NULL && (rc = opts->seal(opts->seal_arg, snap, e)) != 0) {
		free(snap);
		goto done;
	}
	if ((rc = tw_repo_save_snapshot(r, snap, e)) == 0)
		snprintf(stats->snapshot_id, sizeof stats->snapshot_id, "%s", snap->id);
	free(snap);
done:
	for (int i = 0; i < nworkers + nreaders && ths; i++)
		wctx_free(&ths[i].w);
	wctx_free(&ww);
	if (qinit) {
		tw_queue_destroy(&g->fileq);
		tw_queue_destroy(&g->chunkq);
		tw_packer_free(&g->data_pk);
		tw_packer_free(&g->tree_pk);
	}
	while (g->free_slabs) {
		struct slab *s = g->free_slabs;
		g->free_slabs = s->next;
		free(s);
	}
	free(ths);
	free(pnodes);
	free(pbuf);
	tw_repo_free_snapshots(snaps, nsnaps);
	for (size_t i = 0; abs && i < np; i++)
		free(abs[i]);
	free(abs);
	for (size_t i = 0; spaths && i < ns; i++)
		free(spaths[np + i]);
	free(spaths);
	free(roots);
	pthread_mutex_destroy(&g->slab_mu);
	pthread_cond_destroy(&g->slab_cv);
	pthread_mutex_destroy(&g->err_mu);
	free(g->xnames);
	free(g->xvalue);
	free(g);
	return rc;
}
