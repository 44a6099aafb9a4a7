/* index.h — where every blob lives: the in-memory table and index objects.
 *
 * In memory: an open-addressing hash table keyed by the 32-byte blob ID
 * (IDs are uniform HMAC outputs, so their first 8 bytes are the hash), with
 * linear probing, load factor between 0.56 and 0.85 (grows by 1.5x). A slot
 * is 52 bytes (ID, pack number, offset, length, raw length, type, flags), so
 * the table costs 61..93 bytes per blob. Pack IDs live once in a side array
 * (32 bytes per pack); the base IDs of delta blobs in a side table of their
 * own (ID -> base, 64 bytes a slot, at most half full).
 * Thread-safety: callers serialize (the engine wraps it with a mutex).
 *
 * Index object plaintext ("TWIX" v1, docs/repository-format.md) is parsed by
 * tw_index_decode() AFTER decryption (fuzz/backup_index.c calls it). */
#ifndef TW_BACKUP_INDEX_H
#define TW_BACKUP_INDEX_H

#include <stddef.h>
#include <stdint.h>

#include "backup/pack.h"

#define TW_PACK_NEW UINT32_MAX /* pack number of a blob not yet in a written pack */

struct tw_idx_slot {
	uint8_t id[TW_ID_LEN];
	uint32_t pack;
	uint32_t offset, length, raw_length;
	uint8_t type, flags, used;
};

struct tw_index {
	struct tw_idx_slot *slots;
	size_t cap, n;
	uint8_t (*packs)[TW_ID_LEN];
	uint32_t npacks, packs_cap;
	uint32_t *pack_tab; /* open-addressing map pack id -> pack number + 1 */
	size_t pack_tab_cap;
	struct tw_idx_base {
		uint8_t id[TW_ID_LEN], base[TW_ID_LEN];
	} *bases; /* open addressing: a delta blob's ID -> its base ID */
	size_t nbases, bases_cap;
};

void tw_index_init(struct tw_index *ix);
void tw_index_free(struct tw_index *ix); /* ix may be NULL */
/* Pack number for a pack ID, adding it if new. */
int tw_index_pack(struct tw_index *ix, const uint8_t pack_id[TW_ID_LEN], uint32_t *num);
/* Add a blob; *added = 0 when the ID was present already (kept as is,
 * except a TW_PACK_NEW slot is completed with the real location). */
int tw_index_add(struct tw_index *ix, const struct tw_pack_entry *en, uint32_t pack, int *added);
/* NULL when absent. The pointer is valid until the next add. */
const struct tw_idx_slot *tw_index_get(const struct tw_index *ix, const uint8_t id[TW_ID_LEN]);
/* The base ID of a delta blob's slot; NULL for a whole blob. */
const uint8_t *tw_index_base(const struct tw_index *ix, const struct tw_idx_slot *s);
/* The entry of a slot (offset etc. as stored, base filled for a delta). */
void tw_index_entry(const struct tw_index *ix, const struct tw_idx_slot *s,
		    struct tw_pack_entry *en);
/* How many deltas deep the blob id is: 0 for a whole blob (or an absent
 * one), 1 + its base's depth for a delta; stops counting at `cap`. */
int tw_index_depth(const struct tw_index *ix, const uint8_t id[TW_ID_LEN], int cap);

typedef int (*tw_index_cb)(void *arg, const uint8_t pack_id[TW_ID_LEN],
			   const struct tw_pack_entry *en);
/* Parse index plaintext, calling cb for every entry. 0, TW_ECORRUPT or cb's value. */
int tw_index_decode(const uint8_t *p, size_t n, tw_index_cb cb, void *arg, struct tw_err *e);

/* Encoder: one pack at a time. The plaintext is version 1 until a delta
 * entry is added, then version 3 (docs/repository-format.md). */
struct tw_index_enc {
	struct tw_dbuf buf;
	uint32_t npacks;
};
void tw_index_enc_init(struct tw_index_enc *w);
int tw_index_enc_pack(struct tw_index_enc *w, const uint8_t pack_id[TW_ID_LEN],
		      const struct tw_pack_entry *ents, uint32_t n);
/* Finished plaintext in w->buf (valid until tw_index_enc_free). */
void tw_index_enc_finish(struct tw_index_enc *w);
void tw_index_enc_free(struct tw_index_enc *w);

#endif
