/* check.h — verify a repository.
 *
 * Structure: every index object decodes; every indexed pack exists and its
 * header decodes; every snapshot's trees are readable and every blob they
 * reference is in the index. With read_data (all packs, or a random
 * read_percent of them) every pack is read whole, its SHA-256 compared to
 * its name and every blob decrypted and re-hashed. Damage is reported
 * precisely: which pack/blob, and which snapshots and files are affected. */
#ifndef TW_BACKUP_CHECK_H
#define TW_BACKUP_CHECK_H

#include "backup/progress.h"
#include "backup/repo.h"

struct tw_check_opts {
	int read_data;
	unsigned read_percent; /* 100 = all */
	int threads;
	struct tw_progress *progress;
};

struct tw_check_stats {
	uint64_t packs, packs_read, blobs_checked, snapshots, errors, unreferenced_packs;
	uint64_t damaged_files;
	uint64_t index_damaged; /* index objects that could not be read (advice: repair index) */
};

/* 0 when the repository is sound, TW_ECORRUPT when errors were found
 * (printed with tw_error, counted in stats), another code on failure. */
int tw_check_run(struct tw_repo *r, const struct tw_check_opts *o, struct tw_check_stats *st,
		 struct tw_err *e);

#endif
