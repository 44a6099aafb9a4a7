/* packer.c — pack builder.
 *
 * Two modes. Streaming (the storage driver offers a writer): every blob is
 * appended to the driver's temporary object as it arrives and hashed on the
 * fly, so a pack never sits in memory; closing a pack writes the sealed
 * header, names the pack by its SHA-256 and commits it (fsync + rename).
 * Buffered (no writer): the pack is collected in memory and put whole.
 * Closing and committing happen on the background writer thread when one
 * was started, else on the thread that filled the pack. */
#include "backup/packer.h"

#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>

#define PACK_CAP ((size_t)96 << 20)
#define STAGE_CAP ((size_t)1 << 20)

struct wjob {
	struct tw_dbuf buf;       /* buffered mode */
	struct tw_st_writer *w;   /* streaming mode */
	EVP_MD_CTX *sha;
	struct tw_pack_entry *ents;
	uint32_t n;
};

int tw_packer_init(struct tw_packer *p, struct tw_repo *r, uint8_t type)
{
	memset(p, 0, sizeof *p);
	p->r = r;
	p->type = type;
	p->stream = tw_storage_has_writer(r->st);
	pthread_mutex_init(&p->mu, NULL);
	pthread_mutex_init(&p->emu, NULL);
	pthread_cond_init(&p->cv, NULL);
	tw_dbuf_init(&p->buf, PACK_CAP);
	return 0;
}

static int finish(struct tw_packer *p, struct wjob *j, struct tw_err *e)
{
	struct tw_repo *r = p->r;
	uint8_t id[TW_ID_LEN];
	char name[65];
	int rc;
	if (j->w != NULL) {
		struct tw_dbuf t;
		tw_dbuf_init(&t, (size_t)64 << 20);
		unsigned int hl = 0;
		rc = tw_repo_pack_trailer(r, j->ents, j->n, &t);
		if (rc != 0)
			tw_err_set(e, rc, "pack header encoding failed");
		if (rc == 0)
			rc = r->st->ops->writer_write(j->w, t.data, t.len, e);
		if (rc == 0 && (EVP_DigestUpdate(j->sha, t.data, t.len) != 1 ||
				EVP_DigestFinal_ex(j->sha, id, &hl) != 1))
			rc = tw_err_set(e, TW_ECRYPTO, "SHA-256 failed");
		uint64_t total = j->buf.len + t.len;
		tw_dbuf_free(&t);
		if (rc != 0) {
			r->st->ops->writer_abort(j->w);
			j->w = NULL;
			return rc;
		}
		tw_hex(id, TW_ID_LEN, name);
		rc = r->st->ops->writer_commit(j->w, name, e);
		j->w = NULL;
		if (rc != 0)
			return rc;
		__atomic_add_fetch(&p->bytes_written, total, __ATOMIC_RELAXED);
	} else {
		rc = tw_repo_pack_trailer(r, j->ents, j->n, &j->buf);
		if (rc != 0)
			return tw_err_set(e, rc, "pack header encoding failed");
		tw_crypto_sha256(j->buf.data, j->buf.len, id);
		tw_hex(id, TW_ID_LEN, name);
		rc = tw_storage_put(r->st, TW_ST_DATA, name, j->buf.data, j->buf.len,
				    TW_ST_SHA256_NAME, e);
		if (rc != 0)
			return rc;
		__atomic_add_fetch(&p->bytes_written, j->buf.len, __ATOMIC_RELAXED);
	}
	__atomic_add_fetch(&p->packs_written, 1, __ATOMIC_RELAXED);
	return tw_repo_pack_written(r, id, j->ents, j->n, e);
}

static void job_free(struct tw_packer *p, struct wjob *j)
{
	if (j == NULL)
		return;
	if (j->w != NULL)
		p->r->st->ops->writer_abort(j->w);
	EVP_MD_CTX_free(j->sha);
	tw_dbuf_free(&j->buf);
	free(j->ents);
	free(j);
}

/* Streaming mode, p->mu held: write and hash what is staged. */
static int stage_flush(struct tw_packer *p, struct tw_err *e)
{
	if (p->stage_len == 0)
		return 0;
	int rc = p->r->st->ops->writer_write(p->w, p->stage, p->stage_len, e);
	if (rc == 0 && EVP_DigestUpdate(p->sha, p->stage, p->stage_len) != 1)
		rc = tw_err_set(e, TW_ECRYPTO, "SHA-256 failed");
	p->stage_len = 0;
	return rc;
}

static void set_werr(struct tw_packer *p, int rc, const struct tw_err *e)
{
	pthread_mutex_lock(&p->emu);
	if (p->werr == 0) {
		if (e)
			p->werr_detail = *e;
		__atomic_store_n(&p->werr, rc, __ATOMIC_RELAXED);
	}
	pthread_mutex_unlock(&p->emu);
}

static void *writer_main(void *arg)
{
	struct tw_packer *p = arg;
	struct wjob *j;
	while ((j = tw_queue_pop(&p->wq)) != NULL) {
		struct tw_err e = {0};
		if (!__atomic_load_n(&p->werr, __ATOMIC_RELAXED)) {
			int rc = finish(p, j, &e);
			if (rc != 0)
				set_werr(p, rc, &e);
		}
		job_free(p, j); /* before a waiting thread starts the next pack */
		if (!p->stream) {
			pthread_mutex_lock(&p->mu);
			p->inflight--;
			pthread_cond_broadcast(&p->cv);
			pthread_mutex_unlock(&p->mu);
		}
	}
	return NULL;
}

int tw_packer_start_writer(struct tw_packer *p, size_t depth)
{
	/* a queued streamed pack holds no data (it is in the driver's temporary
	 * object), so let a few wait for their fsync instead of the workers */
	if (p->stream && depth < 4)
		depth = 4;
	if (depth < 1)
		depth = 1;
	p->max_inflight = (unsigned)depth;
	if (tw_queue_init(&p->wq, depth) != 0)
		return TW_ENOMEM;
	if (pthread_create(&p->writer, NULL, writer_main, p) != 0) {
		tw_queue_destroy(&p->wq);
		return TW_ENOMEM;
	}
	p->has_writer = 1;
	return 0;
}

static void stop_writer(struct tw_packer *p)
{
	if (!p->has_writer)
		return;
	tw_queue_close(&p->wq);
	pthread_join(p->writer, NULL);
	tw_queue_destroy(&p->wq);
	p->has_writer = 0;
}

void tw_packer_free(struct tw_packer *p)
{
	stop_writer(p);
	if (p->w != NULL)
		p->r->st->ops->writer_abort(p->w);
	EVP_MD_CTX_free((EVP_MD_CTX *)p->sha);
	tw_dbuf_free(&p->buf);
	free(p->ents);
	free(p->stage);
	pthread_mutex_destroy(&p->mu);
	pthread_mutex_destroy(&p->emu);
	pthread_cond_destroy(&p->cv);
}

/* Called with p->mu held: in buffered mode, wait until the writer has room
 * for one more full pack (or has failed). */
static void wait_for_writer(struct tw_packer *p)
{
	while (p->has_writer && !p->stream && p->inflight >= p->max_inflight &&
	       !__atomic_load_n(&p->werr, __ATOMIC_RELAXED))
		pthread_cond_wait(&p->cv, &p->mu);
}

/* Called with p->mu held; releases it. Hands the current pack to the
 * writer thread or finishes it here. */
static int detach_and_write(struct tw_packer *p, struct tw_err *e)
{
	if (p->w != NULL) {
		int rc = stage_flush(p, e);
		if (rc != 0) {
			pthread_mutex_unlock(&p->mu);
			return rc;
		}
	}
	struct wjob *j = calloc(1, sizeof *j);
	if (j == NULL) {
		pthread_mutex_unlock(&p->mu);
		return tw_err_set(e, TW_ENOMEM, "out of memory");
	}
	j->buf = p->buf;
	j->w = p->w;
	j->sha = p->sha;
	j->ents = p->ents;
	j->n = p->n;
	tw_dbuf_init(&p->buf, PACK_CAP);
	p->w = NULL;
	p->sha = NULL;
	p->ents = NULL;
	p->n = p->cap = 0;
	pthread_mutex_unlock(&p->mu);
	if (j->n == 0) {
		job_free(p, j);
		return 0;
	}
	if (p->has_writer) {
		int werr = __atomic_load_n(&p->werr, __ATOMIC_RELAXED);
		if (werr) {
			job_free(p, j);
			if (e)
				*e = p->werr_detail;
			return werr;
		}
		if (!p->stream) {
			pthread_mutex_lock(&p->mu);
			p->inflight++;
			pthread_mutex_unlock(&p->mu);
		}
		tw_queue_push(&p->wq, j); /* blocks while the writer is behind: bounded */
		return 0;
	}
	int rc = finish(p, j, e);
	job_free(p, j);
	return rc;
}

int tw_packer_add(struct tw_packer *p, const uint8_t id[TW_ID_LEN], uint8_t flags,
		  const uint8_t *stored, size_t len, uint32_t raw_len, struct tw_err *e)
{
	return tw_packer_add_base(p, id, flags & (uint8_t)~TW_BLOB_DELTA, NULL, stored, len,
				  raw_len, e);
}

int tw_packer_add_base(struct tw_packer *p, const uint8_t id[TW_ID_LEN], uint8_t flags,
		       const uint8_t *base, const uint8_t *stored, size_t len, uint32_t raw_len,
		       struct tw_err *e)
{
	pthread_mutex_lock(&p->mu);
	int rc = 0;
	if (p->n == p->cap) {
		uint32_t nc = p->cap ? p->cap * 2 : 64;
		void *ne = realloc(p->ents, nc * sizeof *p->ents);
		if (ne == NULL) {
			pthread_mutex_unlock(&p->mu);
			return tw_err_set(e, TW_ENOMEM, "out of memory");
		}
		p->ents = ne;
		p->cap = nc;
	}
	struct tw_pack_entry *en = &p->ents[p->n];
	en->type = p->type;
	en->flags = flags;
	memcpy(en->id, id, TW_ID_LEN);
	if ((flags & TW_BLOB_DELTA) && base != NULL)
		memcpy(en->base, base, TW_ID_LEN);
	else
		memset(en->base, 0, TW_ID_LEN);
	en->length = (uint32_t)len;
	en->raw_length = raw_len;
	if (p->stream) {
		/* p->buf.len counts the bytes written to the driver */
		if (p->w == NULL) {
			rc = p->r->st->ops->writer_open(p->r->st, TW_ST_DATA, &p->w, e);
			if (rc == 0 && ((p->sha = EVP_MD_CTX_new()) == NULL ||
					EVP_DigestInit_ex(p->sha, EVP_sha256(), NULL) != 1))
				rc = tw_err_set(e, TW_ECRYPTO, "SHA-256 init failed");
		}
		en->offset = (uint32_t)p->buf.len;
		if (rc == 0 && p->stage == NULL && (p->stage = malloc(STAGE_CAP)) == NULL)
			rc = tw_err_set(e, TW_ENOMEM, "out of memory");
		/* bytes reach the writer in order: a blob too big to stage
		 * goes after what is staged */
		if (rc == 0 && (p->stage_len + len > STAGE_CAP || len > STAGE_CAP / 2))
			rc = stage_flush(p, e);
		if (rc == 0 && len <= STAGE_CAP / 2) {
			memcpy(p->stage + p->stage_len, stored, len);
			p->stage_len += len;
		} else if (rc == 0) {
			rc = p->r->st->ops->writer_write(p->w, stored, len, e);
			if (rc == 0 && EVP_DigestUpdate(p->sha, stored, len) != 1)
				rc = tw_err_set(e, TW_ECRYPTO, "SHA-256 failed");
		}
		if (rc == 0)
			p->buf.len += len;
	} else {
		if (p->buf.len == 0)
			tw_dbuf_reserve(&p->buf, p->r->pack_size + ((size_t)5 << 20));
		en->offset = (uint32_t)p->buf.len;
		rc = tw_dbuf_append(&p->buf, stored, len);
		if (rc != 0)
			tw_err_set(e, rc, "pack buffer full");
	}
	if (rc != 0) {
		pthread_mutex_unlock(&p->mu);
		return rc;
	}
	p->n++;
	if (p->buf.len >= p->r->pack_size) {
		wait_for_writer(p);
		/* another thread may have handed this pack over while we waited */
		if (p->buf.len >= p->r->pack_size)
			return detach_and_write(p, e);
	}
	pthread_mutex_unlock(&p->mu);
	return 0;
}

int tw_packer_flush(struct tw_packer *p, struct tw_err *e)
{
	pthread_mutex_lock(&p->mu);
	wait_for_writer(p);
	int rc = detach_and_write(p, e);
	stop_writer(p);
	if (rc == 0 && p->werr) {
		if (e)
			*e = p->werr_detail;
		rc = p->werr;
	}
	return rc;
}
