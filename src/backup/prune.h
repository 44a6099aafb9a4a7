/* prune.h — remove data no snapshot references.
 *
 * Marks every blob reachable from a snapshot, then per pack: no live blob →
 * delete; more than max_unused_percent of its bytes dead → rewrite its live
 * blobs (verified, copied without re-encryption) into new packs; else keep.
 * Packs no index names (interrupted backups) are deleted. Order (crash-safe):
 * new packs, new index objects (durable), delete old index objects, delete
 * old packs. The caller holds an exclusive lock. */
#ifndef TW_BACKUP_PRUNE_H
#define TW_BACKUP_PRUNE_H

#include "backup/progress.h"
#include "backup/repo.h"

struct tw_prune_opts {
	int dry_run;
	unsigned max_unused_percent; /* default 20 */
	struct tw_progress *progress;
	/* forget --dry-run --prune: snapshots to treat as gone (their ids) */
	char *const *forget_ids;
	size_t nforget;
};

struct tw_prune_stats {
	uint64_t packs, packs_deleted, packs_rewritten, packs_unindexed, blobs_live, blobs_repacked;
	uint64_t bytes_freed, index_written, index_deleted;
};

int tw_prune_run(struct tw_repo *r, const struct tw_prune_opts *o, struct tw_prune_stats *st,
		 struct tw_err *e);

#endif
