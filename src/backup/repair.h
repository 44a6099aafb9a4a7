/* repair.h — rebuild a damaged index from the packs themselves.
 *
 * `tapwork repair index`: every index object is read; those that cannot be
 * read (a flipped bit fails their SHA-256 name or their authentication) are
 * set aside. Every pack no readable index object lists is then verified —
 * its bytes hash to its name, its sealed header opens and decodes — and its
 * header's entries go into new index objects, written (durably) before the
 * damaged index objects are deleted. A pack that fails verification is
 * reported and left out, never trusted. Safe to interrupt (an interrupted
 * run leaves extra, valid index objects: a pack listed twice is harmless)
 * and to run beside backups (shared lock; a backup's new packs either have
 * their index object already or are indexed here too). */
#ifndef TW_BACKUP_REPAIR_H
#define TW_BACKUP_REPAIR_H

#include "backup/repo.h"

struct tw_repair_index_stats {
	uint64_t index_objects, index_damaged, index_deleted, index_written;
	uint64_t packs, packs_indexed, packs_reindexed, packs_damaged, blobs_reindexed;
};

/* dry_run: verify and count, write and delete nothing. */
int tw_repair_index(struct tw_repo *r, int dry_run, struct tw_repair_index_stats *st, struct tw_err *e);

#endif
