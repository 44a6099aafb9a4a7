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

/* A source that is a producer's output rather than a file (e.g. pg_dump's
 * stdout), stored as the regular file DIR/NAME below a virtual directory DIR
 * at the snapshot root. A reader thread calls open when it starts on the
 * stream (so producers run one per reader, not all at once) and reads to
 * EOF; then finish(arg, aborted) reaps the producer: a nonzero return (the
 * producer failed, was killed, or the backup is aborting) fails the whole
 * snapshot, so a truncated stream is never committed. finish is called
 * exactly once after a successful open and owns closing the fd's producer
 * (the engine closes the fd itself before calling finish). */
struct tw_backup_stream {
	const char *dir;  /* virtual directory at the root, e.g. "postgres" */
	const char *name; /* file name inside it, e.g. "app.dump" */
	int (*open)(void *arg, int *fd, struct tw_err *e);
	int (*finish)(void *arg, int aborted, struct tw_err *e);
	void *arg;
};

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
	const struct tw_backup_stream *streams; /* recorded as paths "stream:DIR/NAME" */
	size_t nstreams;
	const volatile int *cancel; /* when it becomes nonzero the backup fails (TW_ECANCELED) */
	/* Hooks of a source that knows its files (src/pg: a PostgreSQL data
	 * directory). skip: 1 leaves the entry at `full` out. fixed_chunk > 0:
	 * every file is cut at multiples of that many bytes instead of by
	 * content. missing_ok: an entry that vanishes between listing and
	 * reading is dropped silently (not counted as an error). seal: called
	 * once everything is stored, before the snapshot is written; it may add
	 * to the snapshot (s->pg) and fails the backup with a nonzero return. */
	int (*skip)(void *arg, const char *full);
	void *skip_arg;
	uint32_t fixed_chunk;
	int missing_ok;
	/* > 0: a file is taken from the parent snapshot (files cache) only if
	 * its mtime is before this time: a copy made while the file was being
	 * written within one timestamp tick is never reused. */
	int64_t cache_before_ns;
	int (*seal)(void *arg, struct tw_snapshot *s, struct tw_err *e);
	void *seal_arg;
	/* inspect: called by a reader thread (several at once) with every
	 * chunk of a file it reads, and the chunk's offset in the file (files
	 * taken from the parent snapshot are not read, so not inspected). */
	void (*inspect)(void *arg, const char *full, uint64_t off, const uint8_t *p, size_t n);
	void *inspect_arg;
	/* zprofile: the compression profile (TW_ZP_*, backup/pack.h) for one
	 * new chunk of a file, at the repository's level; NULL: the default
	 * for all. Streams and trees always use the default. */
	int (*zprofile)(const uint8_t *p, size_t n);
};

struct tw_backup_stats {
	uint64_t files, dirs, others, bytes, files_unchanged, bytes_read;
	uint64_t new_blobs, new_bytes, stored_bytes, errors;
	uint64_t delta_blobs; /* new blobs stored as page deltas (of new_blobs) */
	char snapshot_id[65];
	char parent_id[65];
};

/* Back up opts->paths into r (index must be loaded, shared lock held).
 * Returns 0 (stats->errors may be > 0: some files unreadable) or an error. */
int tw_backup_run(struct tw_repo *r, const struct tw_backup_opts *opts,
		  struct tw_backup_stats *stats, struct tw_err *e);

#endif
