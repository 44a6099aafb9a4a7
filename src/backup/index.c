/* index.c — blob index: hash table and index object codec. */
#include "backup/index.h"

#include <stdlib.h>
#include <string.h>

void tw_index_init(struct tw_index *ix) { memset(ix, 0, sizeof *ix); }

void tw_index_free(struct tw_index *ix)
{
	if (ix == NULL)
		return;
	free(ix->slots);
	free(ix->packs);
	free(ix->pack_tab);
	free(ix->bases);
	memset(ix, 0, sizeof *ix);
}

static uint64_t hash_of(const uint8_t *id)
{
	uint64_t h;
	memcpy(&h, id, sizeof h);
	return h;
}

/* Slot of a hash: multiply-shift maps it onto [0, cap) for any cap, so the
 * table can grow by 1.5x and stay >= 56% full (<= ~93 bytes per blob). */
static size_t home(uint64_t h, size_t cap) { return (size_t)(((unsigned __int128)h * cap) >> 64); }

static size_t next_slot(size_t j, size_t cap) { return j + 1 == cap ? 0 : j + 1; }

static int grow_slots(struct tw_index *ix)
{
	size_t ncap = ix->cap ? ix->cap + ix->cap / 2 : 1024;
	struct tw_idx_slot *ns = calloc(ncap, sizeof *ns);
	if (ns == NULL)
		return TW_ENOMEM;
	for (size_t i = 0; i < ix->cap; i++) {
		if (!ix->slots[i].used)
			continue;
		size_t j = home(hash_of(ix->slots[i].id), ncap);
		while (ns[j].used)
			j = next_slot(j, ncap);
		ns[j] = ix->slots[i];
	}
	free(ix->slots);
	ix->slots = ns;
	ix->cap = ncap;
	return 0;
}

const struct tw_idx_slot *tw_index_get(const struct tw_index *ix, const uint8_t id[TW_ID_LEN])
{
	if (ix->cap == 0)
		return NULL;
	size_t j = home(hash_of(id), ix->cap);
	while (ix->slots[j].used) {
		if (memcmp(ix->slots[j].id, id, TW_ID_LEN) == 0)
			return &ix->slots[j];
		j = next_slot(j, ix->cap);
	}
	return NULL;
}

static const struct tw_idx_base *base_find(const struct tw_index *ix, const uint8_t id[TW_ID_LEN])
{
	if (ix->bases_cap == 0)
		return NULL;
	static const uint8_t zero[TW_ID_LEN]; /* an empty slot (no HMAC is all zero) */
	size_t j = home(hash_of(id), ix->bases_cap);
	while (memcmp(ix->bases[j].id, zero, TW_ID_LEN) != 0) {
		if (memcmp(ix->bases[j].id, id, TW_ID_LEN) == 0)
			return &ix->bases[j];
		j = next_slot(j, ix->bases_cap);
	}
	return NULL;
}

const uint8_t *tw_index_base(const struct tw_index *ix, const struct tw_idx_slot *s)
{
	if (!(s->flags & TW_BLOB_DELTA))
		return NULL;
	const struct tw_idx_base *b = base_find(ix, s->id);
	return b != NULL ? b->base : NULL;
}

void tw_index_entry(const struct tw_index *ix, const struct tw_idx_slot *s,
		    struct tw_pack_entry *en)
{
	memset(en, 0, sizeof *en);
	en->type = s->type;
	en->flags = s->flags;
	memcpy(en->id, s->id, TW_ID_LEN);
	en->offset = s->offset;
	en->length = s->length;
	en->raw_length = s->raw_length;
	const uint8_t *b = tw_index_base(ix, s);
	if (b != NULL)
		memcpy(en->base, b, TW_ID_LEN);
}

int tw_index_depth(const struct tw_index *ix, const uint8_t id[TW_ID_LEN], int cap)
{
	int d = 0;
	const struct tw_idx_slot *s = tw_index_get(ix, id);
	while (s != NULL && d < cap) {
		const uint8_t *b = tw_index_base(ix, s);
		if (b == NULL)
			break;
		d++;
		s = tw_index_get(ix, b);
	}
	return d;
}

static int add_base(struct tw_index *ix, const uint8_t id[TW_ID_LEN], const uint8_t base[TW_ID_LEN])
{
	static const uint8_t zero[TW_ID_LEN];
	if ((ix->nbases + 1) * 2 > ix->bases_cap) {
		size_t ncap = ix->bases_cap ? ix->bases_cap * 2 : 256;
		struct tw_idx_base *nb = calloc(ncap, sizeof *nb);
		if (nb == NULL)
			return TW_ENOMEM;
		for (size_t i = 0; i < ix->bases_cap; i++) {
			if (memcmp(ix->bases[i].id, zero, TW_ID_LEN) == 0)
				continue;
			size_t j = home(hash_of(ix->bases[i].id), ncap);
			while (memcmp(nb[j].id, zero, TW_ID_LEN) != 0)
				j = next_slot(j, ncap);
			nb[j] = ix->bases[i];
		}
		free(ix->bases);
		ix->bases = nb;
		ix->bases_cap = ncap;
	}
	size_t j = home(hash_of(id), ix->bases_cap);
	while (memcmp(ix->bases[j].id, zero, TW_ID_LEN) != 0) {
		if (memcmp(ix->bases[j].id, id, TW_ID_LEN) == 0) {
			memcpy(ix->bases[j].base, base, TW_ID_LEN);
			return 0;
		}
		j = next_slot(j, ix->bases_cap);
	}
	memcpy(ix->bases[j].id, id, TW_ID_LEN);
	memcpy(ix->bases[j].base, base, TW_ID_LEN);
	ix->nbases++;
	return 0;
}

int tw_index_add(struct tw_index *ix, const struct tw_pack_entry *en, uint32_t pack, int *added)
{
	*added = 0;
	if ((en->flags & TW_BLOB_DELTA) && pack != TW_PACK_NEW) {
		const struct tw_idx_slot *old = tw_index_get(ix, en->id);
		if (old != NULL && old->pack != TW_PACK_NEW)
			return 0; /* kept as is */
		int rc = add_base(ix, en->id, en->base);
		if (rc != 0)
			return rc;
	}
	struct tw_idx_slot *s = (struct tw_idx_slot *)tw_index_get(ix, en->id);
	if (s != NULL) {
		if (!(s->pack == TW_PACK_NEW && pack != TW_PACK_NEW))
			return 0;
	} else {
		/* grow only when inserting: completing a slot never moves slots */
		if ((ix->n + 1) * 20 > ix->cap * 17) { /* load factor <= 0.85 */
			int rc = grow_slots(ix);
			if (rc != 0)
				return rc;
		}
		size_t j = home(hash_of(en->id), ix->cap);
		while (ix->slots[j].used)
			j = next_slot(j, ix->cap);
		s = &ix->slots[j];
		ix->n++;
		*added = 1;
	}
	memcpy(s->id, en->id, TW_ID_LEN);
	s->pack = pack;
	s->offset = en->offset;
	s->length = en->length;
	s->raw_length = en->raw_length;
	s->type = en->type;
	s->flags = en->flags;
	s->used = 1;
	return 0;
}

int tw_index_pack(struct tw_index *ix, const uint8_t pack_id[TW_ID_LEN], uint32_t *num)
{
	if ((ix->npacks + 1) * 2 > ix->pack_tab_cap) {
		size_t ncap = ix->pack_tab_cap ? ix->pack_tab_cap * 2 : 256;
		uint32_t *nt = calloc(ncap, sizeof *nt);
		if (nt == NULL)
			return TW_ENOMEM;
		for (uint32_t p = 0; p < ix->npacks; p++) {
			size_t j = hash_of(ix->packs[p]) & (ncap - 1);
			while (nt[j])
				j = (j + 1) & (ncap - 1);
			nt[j] = p + 1;
		}
		free(ix->pack_tab);
		ix->pack_tab = nt;
		ix->pack_tab_cap = ncap;
	}
	size_t j = hash_of(pack_id) & (ix->pack_tab_cap - 1);
	while (ix->pack_tab[j]) {
		uint32_t p = ix->pack_tab[j] - 1;
		if (memcmp(ix->packs[p], pack_id, TW_ID_LEN) == 0) {
			*num = p;
			return 0;
		}
		j = (j + 1) & (ix->pack_tab_cap - 1);
	}
	if (ix->npacks == ix->packs_cap) {
		uint32_t nc = ix->packs_cap ? ix->packs_cap * 2 : 64;
		void *np = realloc(ix->packs, (size_t)nc * TW_ID_LEN);
		if (np == NULL)
			return TW_ENOMEM;
		ix->packs = np;
		ix->packs_cap = nc;
	}
	memcpy(ix->packs[ix->npacks], pack_id, TW_ID_LEN);
	ix->pack_tab[j] = ix->npacks + 1;
	*num = ix->npacks++;
	return 0;
}

static int index_decode(const uint8_t *p, size_t n, tw_index_cb cb, void *arg, struct tw_err *e);

int tw_index_decode(const uint8_t *p, size_t n, tw_index_cb cb, void *arg, struct tw_err *e)
{
	uint8_t *tmp;
	/* the plain form is at most 4 GiB (the encoder's cap) */
	int rc = tw_meta_unpack("TWIX", p, n, (size_t)UINT32_MAX, &p, &n, &tmp, e);
	if (rc == 0)
		rc = index_decode(p, n, cb, arg, e);
	free(tmp);
	return rc;
}

static int index_decode(const uint8_t *p, size_t n, tw_index_cb cb, void *arg, struct tw_err *e)
{
	if (n < 12 || memcmp(p, "TWIX", 4) != 0)
		return tw_err_set(e, TW_ECORRUPT, "index: bad magic");
	if ((p[4] != 1 && p[4] != 3) || p[5] || p[6] || p[7])
		return tw_err_set(e, TW_ECORRUPT, "index: unknown version %u", p[4]);
	uint32_t npacks = tw_le32_get(p + 8);
	size_t pos = 12;
	for (uint32_t i = 0; i < npacks; i++) {
		if (n - pos < TW_ID_LEN + 4)
			return tw_err_set(e, TW_ECORRUPT, "index: truncated at pack %u", i);
		const uint8_t *pid = p + pos;
		uint32_t cnt = tw_le32_get(p + pos + TW_ID_LEN);
		pos += TW_ID_LEN + 4;
		if (cnt > TW_PACK_MAX_ENTRIES || (uint64_t)cnt * TW_PACK_ENTRY_LEN > n - pos)
			return tw_err_set(e, TW_ECORRUPT, "index: bad entry count at pack %u", i);
		for (uint32_t k = 0; k < cnt; k++) {
			struct tw_pack_entry en;
			size_t used;
			if (tw_pack_entry_get(p + pos, n - pos, p[4], &en, &used) != 0)
				return tw_err_set(e, TW_ECORRUPT, "index: bad entry");
			pos += used;
			int rc = cb(arg, pid, &en);
			if (rc != 0)
				return rc;
		}
	}
	if (pos != n)
		return tw_err_set(e, TW_ECORRUPT, "index: %zu trailing bytes", n - pos);
	return 0;
}

void tw_index_enc_init(struct tw_index_enc *w)
{
	tw_dbuf_init(&w->buf, (size_t)1 << 32);
	w->npacks = 0;
	static const uint8_t head[12] = {'T', 'W', 'I', 'X', 1, 0, 0, 0, 0, 0, 0, 0};
	tw_dbuf_append(&w->buf, head, sizeof head);
}

int tw_index_enc_pack(struct tw_index_enc *w, const uint8_t pack_id[TW_ID_LEN],
		      const struct tw_pack_entry *ents, uint32_t n)
{
	uint8_t h[TW_ID_LEN + 4];
	memcpy(h, pack_id, TW_ID_LEN);
	tw_le32_put(h + TW_ID_LEN, n);
	int rc = tw_dbuf_append(&w->buf, h, sizeof h);
	for (uint32_t i = 0; rc == 0 && i < n; i++) {
		uint8_t b[TW_PACK_ENTRY_MAX];
		size_t len = tw_pack_entry_put(b, &ents[i]);
		if (len > TW_PACK_ENTRY_LEN)
			((uint8_t *)w->buf.data)[4] = 3; /* an entry with a base */
		rc = tw_dbuf_append(&w->buf, b, len);
	}
	if (rc == 0)
		w->npacks++;
	return rc;
}

void tw_index_enc_finish(struct tw_index_enc *w)
{
	tw_le32_put((uint8_t *)w->buf.data + 8, w->npacks);
	tw_meta_pack(&w->buf); /* version 2 when it is smaller; else version 1 stays */
}

void tw_index_enc_free(struct tw_index_enc *w) { tw_dbuf_free(&w->buf); }
