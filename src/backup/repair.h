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

/* `tapwork repair snapshots`: a snapshot whose trees reference blobs the
 * index does not have (lost packs) is rewritten without what was lost — a
 * file with a missing chunk, a directory whose tree is missing or
 * unreadable — as a new snapshot tagged "repaired" (same time, host, paths);
 * the original is kept unless forget. New tree blobs and their index are
 * durable before a new snapshot is saved, and it before an original is
 * deleted. Run `repair index` first: blobs the index lists are trusted here
 * (check --read-data verifies them). The caller holds an exclusive lock and
 * has loaded the index. */
struct tw_repair_snap_stats {
	uint64_t snapshots, repaired, unrepairable, forgotten, files_dropped, dirs_dropped;
};
int tw_repair_snapshots(struct tw_repo *r, int forget, int dry_run, struct tw_repair_snap_stats *st,
			struct tw_err *e);

#endif
