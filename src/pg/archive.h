/* archive.h — the WAL namespace of a repository (docs/repository-format.md
 * "WAL archive").
 *
 * Every WAL file PostgreSQL archives (segments, .history, .backup and
 * .partial files) is one object of type "wal" named SYSID-FILENAME, where
 * SYSID is the cluster's system identifier in 16 hex digits, so several
 * clusters can archive into one repository. Objects are written and read
 * without the index and without a lock: a WAL object is never rewritten
 * (conditional put), and pushing it again with the same content succeeds.
 * Plaintext (version 2, what is written): a 16-byte header
 * (version, codec, raw length) and the raw bytes or one zstd frame with its
 * XXH64 content checksum, sealed with the repository key and the object's
 * name as associated data. Version 1 (read, no longer written) has a 48-byte
 * header that adds the SHA-256 of the raw file; its frames have no
 * checksum. The AEAD tag authenticates every byte; the frame checksum (or
 * the v1 SHA-256) re-checks the decompressor. */
#ifndef TW_PG_ARCHIVE_H
#define TW_PG_ARCHIVE_H

#include <stddef.h>
#include <stdint.h>

#include "backup/repo.h"
#include "pg/walhdr.h"

#define TW_PGARCH_MAX ((size_t)1 << 30) /* largest WAL file accepted */
#define TW_PGARCH_HDR1 48 /* plaintext header, version 1 */
#define TW_PGARCH_HDR2 16 /* version 2 */

/* A parsed plaintext header; body/sha256 point into the plaintext. */
struct tw_pgarch_hdr {
	unsigned version;      /* 1 or 2 */
	unsigned codec;        /* 0 raw, 1 zstd */
	uint64_t raw;          /* length of the WAL file */
	const uint8_t *sha256; /* version 1: the stored SHA-256 of the file; else NULL */
	const uint8_t *body;   /* the raw bytes or the zstd frame */
	size_t blen;
};

/* The plaintext of a version 2 object for data[0..n): header and one zstd
 * frame at `level` with its content checksum, or the raw bytes when zstd
 * does not make them smaller. *pt malloc'd. 0 or TW_ENOMEM. */
int tw_pgarch_encode(const uint8_t *data, size_t n, int level, uint8_t **pt, size_t *plen);
/* Parse a plaintext's header (either version): 0, or TW_ECORRUPT when the
 * version, codec, length or zstd frame header do not fit (a version 2
 * frame without checksum, more than one frame, a content size that is not
 * the header's). Reads nothing beyond pt[0..plen). */
int tw_pgarch_parse(const uint8_t *pt, size_t plen, struct tw_pgarch_hdr *h);
/* Parse and decode a plaintext into *data (malloc'd, *n bytes): length,
 * frame checksum (v2) or SHA-256 (v1) checked. TW_ECORRUPT on damage. */
int tw_pgarch_decode(const uint8_t *pt, size_t plen, const char *wal, uint8_t **data, size_t *n,
                     struct tw_err *e);

/* The system identifier in PGDATA/global/pg_control. */
int tw_pgarch_sysid(const char *pgdata, uint64_t *sysid, struct tw_err *e);
/* "SYSID-walname" into out (>= 64 bytes). */
void tw_pgarch_name(uint64_t sysid, const char *wal, char *out, size_t cap);
/* Store WAL file `wal` (a name tw_pgwal_classify accepts). *existed = 1
 * when it was there already with the same content; TW_EEXIST when it was
 * there with other content (never overwritten). */
int tw_pgarch_push(struct tw_repo *r, uint64_t sysid, const char *wal, const uint8_t *data,
                   size_t n, int *existed, struct tw_err *e);
/* Fetch, authenticate, decompress and check WAL file `wal`; *data malloc'd.
 * TW_ENOENT when it is not in the repository. */
int tw_pgarch_get(struct tw_repo *r, uint64_t sysid, const char *wal, uint8_t **data, size_t *n,
                  struct tw_err *e);
/* The same into fd (at its current position) without a buffer the size of
 * the file: decompressed, checked and written in 256 KiB steps. The bytes
 * written are only valid when it returns 0 (then *n = their count and, when
 * sha256 is not NULL, it holds the SHA-256 of exactly those bytes, computed
 * as they were written; a version 1 object's is also the stored one): on
 * TW_ECORRUPT (frame checksum or hash, length, decompression) the caller
 * throws them away. Pass sha256 = NULL unless the hash is needed: it is
 * most of the cost of a version 2 read. */
int tw_pgarch_get_fd(struct tw_repo *r, uint64_t sysid, const char *wal, int fd, uint64_t *n,
                     uint8_t *sha256, struct tw_err *e);
/* Call cb(arg, walname, stored size) for every WAL object of cluster sysid. */
int tw_pgarch_list(struct tw_repo *r, uint64_t sysid,
                   int (*cb)(void *arg, const char *wal, uint64_t size), void *arg,
                   struct tw_err *e);
/* The registration of cluster want->sysid: object "SYSID-cluster" in the
 * WAL namespace, sealed like a WAL file, holding tw_pgreg JSON. Reads it
 * into *got; when there is none yet and create is set, writes want
 * (conditional put: of two concurrent first writers one wins, the other
 * reads the winner's) and *got = *want, *created = 1; without create
 * TW_ENOENT. Only archive-push creates it: it runs as the server's user,
 * which must be able to read it later (a backup may run as root). */
int tw_pgarch_register(struct tw_repo *r, const struct tw_pgreg *want, int create,
                       struct tw_pgreg *got, int *created, struct tw_err *e);
/* Delete one WAL object. */
int tw_pgarch_del(struct tw_repo *r, uint64_t sysid, const char *wal, struct tw_err *e);

#endif
