/* restore.h — restore a snapshot (or a part of it) into a target directory.
 *
 * Phase 1 walks the snapshot's trees and creates directories, symlinks,
 * fifos and devices (and regular files where it restores over existing
 * entries) — every name relative to an open directory fd, with
 * O_NOFOLLOW/O_EXCL, so neither repository data nor symlinks created by the
 * restore itself can make it write outside the target. Phase 2 writes file
 * data in pack order with one thread per CPU, opening files with
 * openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS) (creating those phase 1
 * left out): each pack range is read once, every blob is decrypted and its
 * ID re-computed before it is written; the last write of a file sets its
 * metadata through the open fd. Phase 3 makes hard links and restores the
 * metadata of everything else (directories last, deepest first).
 * docs/internals/backup-pipeline.md has the details. */
#ifndef TW_BACKUP_RESTORE_H
#define TW_BACKUP_RESTORE_H

#include "backup/progress.h"
#include "backup/repo.h"

struct tw_restore_opts {
	const char *target;
	const char *include; /* NULL: everything */
	/* skip: 1 leaves out the entry at rel ("dir/name", as in the snapshot)
	 * and everything below it (src/pg: global/pg_control comes last). */
	int (*skip)(void *arg, const char *rel);
	void *skip_arg;
	int threads;
	int keep_damaged_names; /* 0: a damaged file is renamed NAME.damaged */
	/* 1: start the write-back of each range as it is written
	 * (sync_file_range WRITE), for a caller that fsyncs the tree after */
	int writeback;
	struct tw_progress *progress;
};

/* A range of a restored file that could not be restored (zeros there). */
struct tw_restore_damage {
	char *path;       /* the file's path in the snapshot */
	uint64_t off, len;
};

struct tw_restore_stats {
	uint64_t files, dirs, others, bytes, errors;
	/* every damaged range (sorted by path, offset), and every damaged file
	 * as it is now named below the target (NAME.damaged unless kept) */
	struct tw_restore_damage *damage;
	size_t ndamage;
	char **damaged_paths;
	size_t ndamaged_paths;
};
/* Free the damage lists of st (st itself is the caller's). */
void tw_restore_stats_free(struct tw_restore_stats *st);

/* 0 when everything was restored and verified; TW_ECORRUPT when some data
 * failed verification (stats->errors > 0, the rest is restored). */
int tw_restore_run(struct tw_repo *r, const struct tw_snapshot *s, const struct tw_restore_opts *o,
		   struct tw_restore_stats *st, struct tw_err *e);

/* Open directory `rel` ("a/b", "" = root) below rootfd, never following a
 * symlink. Returns an fd or -1 (errno set). */
int tw_restore_open_beneath(int rootfd, const char *rel);

#endif
