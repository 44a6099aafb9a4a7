/* backup.h — the backup engine: a multi-threaded pipeline with bounded queues.
 *
 *   walker (calling thread) --files--> readers (read + chunk) --chunks-->
 *   workers (HMAC ID, dedup, zstd, AES-GCM) --> packers --> storage
 *
 * Directories complete bottom-up: a directory's tree blob is encoded when
 * its last file/subdirectory is done (by whichever thread finishes it) and
 * its ID goes into the parent (Merkle tree). Memory is bounded by the queue
 * sizes and a fixed pool of 8 MiB read slabs. docs/internals/backup-pipeline.md. */
#ifndef TW_BACKUP_BACKUP_H
#define TW_BACKUP_BACKUP_H

#include <stddef.h>
#include <stdint.h>

#include "backup/progress.h"
#include "backup/repo.h"

struct tw_backup_opts {
	char **paths;
	size_t npaths;
	char **tags;
	size_t ntags;
	char **excludes;
	size_t nexcludes;
	int force;   /* ignore the parent snapshot: re-read every file */
	int threads; /* 0 = number of CPUs */
	int64_t time_ns; /* snapshot time; 0 = now */
	struct tw_progress *progress; /* may be NULL */
};

struct tw_backup_stats {
	uint64_t files, dirs, others, bytes, files_unchanged, bytes_read;
	uint64_t new_blobs, new_bytes, stored_bytes, errors;
	char snapshot_id[65];
	char parent_id[65];
};

/* Back up opts->paths into r (index must be loaded, shared lock held).
 * Returns 0 (stats->errors may be > 0: some files unreadable) or an error. */
int tw_backup_run(struct tw_repo *r, const struct tw_backup_opts *opts,
		  struct tw_backup_stats *stats, struct tw_err *e);

#endif
