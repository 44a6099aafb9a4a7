/* packer.h — collects sealed blobs of one type into pack files.
 *
 * tw_packer_add() appends under a mutex — streamed to the storage driver's
 * writer when it has one (no pack in memory; small blobs are staged in a
 * 1 MiB buffer and written together), else into a buffer.
 * When the pack reaches the repository's pack size it is closed (header,
 * SHA-256 name, commit, then tw_repo_pack_written) outside the lock, on the
 * background writer thread if started. */
#ifndef TW_BACKUP_PACKER_H
#define TW_BACKUP_PACKER_H

#include <pthread.h>

#include "backup/queue.h"
#include "backup/repo.h"

struct tw_packer {
	/* optional background writer: full packs are queued to it so the
	 * thread that filled a pack goes back to work instead of waiting for
	 * the storage (fsync, upload) */
	struct tw_queue wq;
	pthread_t writer;
	int has_writer;
	int werr; /* first writer error (TW_E*), 0 if none */
	/* buffered mode: full packs handed to the writer and not yet stored; a
	 * thread that fills one more waits (cv) while max_inflight are out, so
	 * memory holds at most max_inflight + 1 packs */
	unsigned inflight, max_inflight;
	pthread_cond_t cv;
	struct tw_err werr_detail;
	pthread_mutex_t emu;
	/* streaming mode: the open storage writer and the running SHA-256 */
	int stream;
	struct tw_st_writer *w;
	void *sha;
	/* small blobs are gathered here and written (and hashed) in one go:
	 * one write() per ~1 MiB instead of one per blob under the mutex */
	uint8_t *stage;
	size_t stage_len;
	struct tw_repo *r;
	uint8_t type;
	pthread_mutex_t mu;
	struct tw_dbuf buf;
	struct tw_pack_entry *ents;
	uint32_t n, cap;
	uint64_t packs_written, bytes_written;
};

int tw_packer_init(struct tw_packer *p, struct tw_repo *r, uint8_t type);
/* Start a background writer thread; at most `depth` full packs wait for it or
 * are being stored (buffered mode: memory for depth + 1 packs). */
int tw_packer_start_writer(struct tw_packer *p, size_t depth);
void tw_packer_free(struct tw_packer *p);
int tw_packer_add(struct tw_packer *p, const uint8_t id[TW_ID_LEN], uint8_t flags,
		  const uint8_t *stored, size_t len, uint32_t raw_len, struct tw_err *e);
/* The same for a blob that may be a delta: base is its base ID when flags
 * has TW_BLOB_DELTA (else ignored, may be NULL). */
int tw_packer_add_base(struct tw_packer *p, const uint8_t id[TW_ID_LEN], uint8_t flags,
		       const uint8_t *base, const uint8_t *stored, size_t len, uint32_t raw_len,
		       struct tw_err *e);
/* Write the partial pack, if any, and wait until every queued pack is
 * durable (stops the writer). Returns the first error of any write. */
int tw_packer_flush(struct tw_packer *p, struct tw_err *e);

#endif
