/* packer.h — collects sealed blobs of one type into pack files.
 *
 * tw_packer_add() appends under a mutex; when the pack reaches the
 * repository's pack size it is detached and written (header, SHA-256 name,
 * storage put, then tw_repo_pack_written) by the adding thread outside the
 * lock, so other threads keep packing meanwhile. */
#ifndef TW_BACKUP_PACKER_H
#define TW_BACKUP_PACKER_H

#include <pthread.h>

#include "backup/repo.h"

struct tw_packer {
	struct tw_repo *r;
	uint8_t type;
	pthread_mutex_t mu;
	struct tw_dbuf buf;
	struct tw_pack_entry *ents;
	uint32_t n, cap;
	uint64_t packs_written, bytes_written;
};

int tw_packer_init(struct tw_packer *p, struct tw_repo *r, uint8_t type);
void tw_packer_free(struct tw_packer *p);
int tw_packer_add(struct tw_packer *p, const uint8_t id[TW_ID_LEN], uint8_t flags,
		  const uint8_t *stored, size_t len, uint32_t raw_len, struct tw_err *e);
/* Write the partial pack, if any. */
int tw_packer_flush(struct tw_packer *p, struct tw_err *e);

#endif
