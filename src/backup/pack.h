/* pack.h — pack file format and blob sealing (docs/repository-format.md).
 *
 * Pack = blobs | sealed header | u32 header length. The header plaintext is
 * "TWPH" v1 + entries of (type, flags, id, offset, length, raw length).
 * tw_pack_header_decode() parses header plaintext AFTER decryption, so the
 * fuzzer (fuzz/backup_pack.c) calls it directly. */
#ifndef TW_BACKUP_PACK_H
#define TW_BACKUP_PACK_H

#include <stddef.h>
#include <stdint.h>

#include "core/le.h"

#include "backup/crypto.h"
#include "core/dbuf.h"
#include "core/err.h"

enum { TW_BLOB_DATA = 1, TW_BLOB_TREE = 2 };
#define TW_BLOB_ZSTD 1 /* flags bit: body is a zstd frame */
/* flags bit: a delta blob (data only): the body is a page delta against the
 * blob `base` (backup/delta.h); the entry carries the 32-byte base ID */
#define TW_BLOB_DELTA 2

#define TW_PACK_ENTRY_LEN 46 /* an entry without a base */
#define TW_PACK_ENTRY_MAX (TW_PACK_ENTRY_LEN + TW_ID_LEN)
#define TW_PACK_MAX_ENTRIES (1u << 20)
#define TW_PACK_TARGET (16u * 1024 * 1024)
#define TW_BLOB_MAX_RAW (64u * 1024 * 1024) /* largest plaintext a reader accepts (big trees) */

struct tw_pack_entry {
	uint8_t type, flags;
	uint8_t id[TW_ID_LEN];
	uint32_t offset, length, raw_length;
	uint8_t base[TW_ID_LEN]; /* TW_BLOB_DELTA only (else zero) */
};

/* Entry encoding: 46 bytes, + the base ID when flags has TW_BLOB_DELTA
 * (only in the version-3 forms of pack headers and index objects). Returns
 * the bytes written. */
size_t tw_pack_entry_put(uint8_t out[TW_PACK_ENTRY_MAX], const struct tw_pack_entry *en);
/* Decode one entry of a version-`version` (1 or 3) form from in[0..avail):
 * *used = its length. 0 or TW_ECORRUPT for a bad type/flags/length
 * combination, a delta flag in version 1 or a truncated entry. */
int tw_pack_entry_get(const uint8_t *in, size_t avail, int version, struct tw_pack_entry *en,
		      size_t *used);

/* Header plaintext for n entries. */
int tw_pack_header_encode(const struct tw_pack_entry *ents, uint32_t n, struct tw_dbuf *out);
/* Parse header plaintext; entries must be sorted, contiguous from 0 and end
 * at data_end. *ents is malloc'd (caller frees). */
int tw_pack_header_decode(const uint8_t *p, size_t n, uint64_t data_end,
			  struct tw_pack_entry **ents, uint32_t *count, struct tw_err *e);

/* Compress (zstd `level`, kept only if smaller) and seal plaintext pt[0..n)
 * as blob (type, id). scratch must hold n bytes, out n + TW_SEAL_OVERHEAD;
 * scratch may be out + TW_NONCE_LEN (compress, then encrypt in place).
 * cctx is a ZSTD_CCtx owned by the calling thread (NULL: no compression). */
int tw_blob_seal(const struct tw_keys *k, void *cctx, int level, uint8_t type,
		 const uint8_t id[TW_ID_LEN], const uint8_t *pt, size_t n, uint8_t *scratch,
		 uint8_t *out, size_t *out_len, uint8_t *flags);
/* Metadata plaintexts ("TWPH" pack headers, "TWIX" index objects) start
 * with 4 magic bytes, u8 version, 3 zero bytes. Version 1 is the plain
 * form; version 2 = magic | 2 | 3 zero | u32 length of the version-1 form |
 * zstd frame of the whole version-1 form (docs/repository-format.md).
 * tw_meta_pack() turns a version-1 plaintext in b into version 2 (kept as is
 * when that is not smaller or fails: both forms are valid).
 * tw_meta_unpack() gives the version-1 form of p[0..n): p itself for
 * version 1 (*tmp = NULL), else a malloc'd *tmp of at most `cap` bytes
 * (caller frees; also capped at 8n + 4096); TW_ECORRUPT for a bad version 2 (a version-1 form inside
 * it with another magic or version, a length over cap or not matching). */
int tw_meta_pack(struct tw_dbuf *b);
int tw_meta_unpack(const char magic[4], const uint8_t *p, size_t n, size_t cap,
		   const uint8_t **out, size_t *out_len, uint8_t **tmp, struct tw_err *e);

/* Compression profiles for what a blob holds (a source hook picks one per
 * chunk, tw_backup_opts.zprofile). TW_ZP_SORTED: sorted keys repeated at
 * short and long distances (PostgreSQL index pages): zstd's lazy matching
 * with the smallest search compresses them ~15 % smaller than the default
 * level 3 at about 2/3 of its speed (level 6 gets the same
 * size at a third of the speed; docs/backup.md). */
enum { TW_ZP_DEFAULT = 0, TW_ZP_SORTED = 1 };
/* Set up cctx (a ZSTD_CCtx) for the profile; the level stays the one
 * tw_blob_seal() sets. TW_ZP_DEFAULT undoes any other profile. */
void tw_zstd_profile(void *cctx, int profile);

/* Seal pt[0..n) (ID id) as a delta blob against base[0..base_len) (ID
 * base_id): the pages that differ, compressed against the base's same pages
 * (backup/delta.h). scratch and out as for tw_blob_seal. TW_EAGAIN when a
 * delta does not pay (every page differs): seal the blob whole. *flags gets
 * TW_BLOB_DELTA (| TW_BLOB_ZSTD). */
int tw_blob_seal_delta(const struct tw_keys *k, void *cctx, int level, const uint8_t id[TW_ID_LEN],
		       const uint8_t base_id[TW_ID_LEN], const uint8_t *base, size_t base_len,
		       const uint8_t *pt, size_t n, uint8_t *scratch, uint8_t *out, size_t *out_len,
		       uint8_t *flags);
/* Decrypt a stored blob in place (stored[0..en->length) is overwritten):
 * *body, *blen = the sealed body (a zstd frame, plaintext or delta body as
 * en->flags say). */
int tw_blob_decrypt(const struct tw_keys *k, const struct tw_pack_entry *en, uint8_t *stored,
		    uint8_t **body, size_t *blen, struct tw_err *e);

/* The calling thread's own ZSTD_DCtx (freed at thread exit; NULL when out
 * of memory), for callers that decompress outside tw_blob_open*. */
void *tw_zstd_thread_dctx(void);

/* Open a stored blob described by en: decrypt, decompress, check the ID.
 * A delta blob (TW_BLOB_DELTA) needs its base: these return TW_ENOTSUP for
 * one (tw_repo_blob_open in backup/repo.h reads it).
 * *pt is malloc'd with en->raw_length bytes. dctx: ZSTD_DCtx, or NULL to use
 * one cached per thread (freed at thread exit). */
int tw_blob_open(const struct tw_keys *k, void *dctx, const struct tw_pack_entry *en,
		 const uint8_t *stored, uint8_t **pt, struct tw_err *e);

/* Like tw_blob_open without copies: decrypts in place (stored[0..en->length)
 * is overwritten), decompresses into *raw (a caller-owned buffer of *raw_cap
 * bytes, grown with malloc when too small; free it when done) with dctx (a
 * ZSTD_DCtx owned by the calling thread, or NULL for a per-thread one).
 * *pt points into stored or *raw and is valid until the next call. */
int tw_blob_open_inplace(const struct tw_keys *k, void *dctx, const struct tw_pack_entry *en,
			 uint8_t *stored, uint8_t **raw, size_t *raw_cap, const uint8_t **pt,
			 struct tw_err *e);

/* tw_blob_open_inplace without the final ID check, for the base of a delta
 * only: the base is authenticated (AES-GCM), and the unit rebuilt from it
 * has its ID checked, which covers every byte taken from the base. */
int tw_blob_open_base(const struct tw_keys *k, void *dctx, const struct tw_pack_entry *en,
		      uint8_t *stored, uint8_t **raw, size_t *raw_cap, const uint8_t **pt,
		      struct tw_err *e);

/* Seal/open a whole object (config, index, snapshot, lock, pack header):
 * AAD = "tapwork/v1/" + kind. open: *pt malloc'd, *pt_len bytes. */
int tw_object_seal(const struct tw_keys *k, const char *kind, const void *pt, size_t n,
		   uint8_t **out, size_t *out_len);
int tw_object_open(const struct tw_keys *k, const char *kind, const uint8_t *in, size_t n,
		   uint8_t **pt, size_t *pt_len, struct tw_err *e);
/* The same without a second buffer (WAL objects: no 16 MiB copy to fault
 * in). seal: buf = TW_NONCE_LEN free bytes, the n plaintext bytes, TW_TAG_LEN
 * free bytes; it becomes the sealed object (n + TW_SEAL_OVERHEAD bytes).
 * open: the plaintext is left at *pt = in + TW_NONCE_LEN (in is consumed;
 * free in, not *pt). */
int tw_object_seal_inplace(const struct tw_keys *k, const char *kind, uint8_t *buf, size_t n);
int tw_object_open_inplace(const struct tw_keys *k, const char *kind, uint8_t *in, size_t n,
                           uint8_t **pt, size_t *pt_len, struct tw_err *e);

#endif
