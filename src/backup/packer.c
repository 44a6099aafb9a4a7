/* packer.c — pack builder. */
#include "backup/packer.h"

#include <stdlib.h>
#include <string.h>

#define PACK_CAP ((size_t)96 << 20)

int tw_packer_init(struct tw_packer *p, struct tw_repo *r, uint8_t type)
{
	memset(p, 0, sizeof *p);
	p->r = r;
	p->type = type;
	pthread_mutex_init(&p->mu, NULL);
	tw_dbuf_init(&p->buf, PACK_CAP);
	return 0;
}

void tw_packer_free(struct tw_packer *p)
{
	tw_dbuf_free(&p->buf);
	free(p->ents);
	pthread_mutex_destroy(&p->mu);
}

static int write_pack(struct tw_packer *p, struct tw_dbuf *buf, struct tw_pack_entry *ents,
		      uint32_t n, struct tw_err *e)
{
	int rc = tw_repo_pack_trailer(p->r, ents, n, buf);
	if (rc != 0)
		return tw_err_set(e, rc, "pack header encoding failed");
	uint8_t id[TW_ID_LEN];
	char name[65];
	tw_crypto_sha256(buf->data, buf->len, id);
	tw_hex(id, TW_ID_LEN, name);
	rc = tw_storage_put(p->r->st, TW_ST_DATA, name, buf->data, buf->len, 0, e);
	if (rc != 0)
		return rc;
	__atomic_add_fetch(&p->packs_written, 1, __ATOMIC_RELAXED);
	__atomic_add_fetch(&p->bytes_written, buf->len, __ATOMIC_RELAXED);
	return tw_repo_pack_written(p->r, id, ents, n, e);
}

static int detach_and_write(struct tw_packer *p, struct tw_err *e)
{
	/* called with p->mu held; releases it */
	struct tw_dbuf buf = p->buf;
	struct tw_pack_entry *ents = p->ents;
	uint32_t n = p->n;
	tw_dbuf_init(&p->buf, PACK_CAP);
	p->ents = NULL;
	p->n = p->cap = 0;
	pthread_mutex_unlock(&p->mu);
	int rc = n ? write_pack(p, &buf, ents, n, e) : 0;
	tw_dbuf_free(&buf);
	free(ents);
	return rc;
}

int tw_packer_add(struct tw_packer *p, const uint8_t id[TW_ID_LEN], uint8_t flags,
		  const uint8_t *stored, size_t len, uint32_t raw_len, struct tw_err *e)
{
	pthread_mutex_lock(&p->mu);
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
	if (p->buf.len == 0)
		tw_dbuf_reserve(&p->buf, p->r->pack_size + ((size_t)5 << 20));
	struct tw_pack_entry *en = &p->ents[p->n];
	en->type = p->type;
	en->flags = flags;
	memcpy(en->id, id, TW_ID_LEN);
	en->offset = (uint32_t)p->buf.len;
	en->length = (uint32_t)len;
	en->raw_length = raw_len;
	int rc = tw_dbuf_append(&p->buf, stored, len);
	if (rc != 0) {
		pthread_mutex_unlock(&p->mu);
		return tw_err_set(e, rc, "pack buffer full");
	}
	p->n++;
	if (p->buf.len >= p->r->pack_size)
		return detach_and_write(p, e);
	pthread_mutex_unlock(&p->mu);
	return 0;
}

int tw_packer_flush(struct tw_packer *p, struct tw_err *e)
{
	pthread_mutex_lock(&p->mu);
	return detach_and_write(p, e);
}
