/* spool.h — WAL prefetch for `tapwork pg archive-get` (docs/backup.md
 * "WAL prefetch during recovery").
 *
 * PostgreSQL runs one restore_command per WAL file and replays it before it
 * asks for the next one. When archive-get has served segment N of timeline T
 * to a cluster in recovery, it leaves a background process behind (the
 * prefetcher) that fetches T's segments N+1..N+k from the repository into
 * PGDATA/pg_wal/tapwork-spool/ while PostgreSQL replays N, so the next call
 * is a rename. Rules that keep it as safe as a direct fetch:
 * - a spool file is only ever served under its own name (timeline,
 *   segment), and WAL objects are never rewritten, so it holds exactly what
 *   a direct fetch would return; it is written by the prefetcher through
 *   `.tmp-NAME`, authenticated and hash-checked like any archive-get, its
 *   SHA-256 written to `.sum-NAME`, then renamed: a partial file never has a
 *   servable name, and a file is served only while its bytes still hash to
 *   its `.sum-` (files are not fsynced: a spool of another boot is never
 *   served, and the hash catches what the page cache or disk lost since);
 * - the prefetcher only ever adds files; a segment it could not fetch (not
 *   archived, damaged, I/O) is simply not there, and archive-get fetches it
 *   directly with today's exit codes (1 only when definitely absent, >= 126
 *   on anything else);
 * - only while PGDATA has recovery.signal or standby.signal, only for
 *   segment names (.history, .partial and .backup files are always fetched
 *   directly), one prefetcher at a time (flock on tapwork-spool/lock), at
 *   most k complete files plus one temporary file per worker; files outside
 *   N+1..N+k are deleted at each call; `tapwork pg spool-clear` (written as
 *   recovery_end_command by `tapwork restore --pg-data`) stops the
 *   prefetcher and removes the directory when recovery ends. */
#ifndef TW_PG_SPOOL_H
#define TW_PG_SPOOL_H

#include <stdint.h>

#include "backup/cmdutil.h"
#include "core/err.h"

#define TW_PGSPOOL_DIR "pg_wal/tapwork-spool"
#define TW_PGSPOOL_DEFAULT 8 /* segments fetched ahead */
#define TW_PGSPOOL_MAX 64
#define TW_PGSPOOL_WORKERS 2 /* parallel fetches of one prefetcher (1 on <= 2 CPUs) */

struct tw_pgspool {
	int dfd;          /* the spool directory, or -1: no prefetch */
	unsigned k;       /* segments ahead */
	uint32_t tli;     /* the request: timeline and segment number */
	uint64_t segno;
	uint64_t seg_size; /* from the served segment's header */
	uint64_t sysid;
	char wal[25];
};

/* Prepare prefetch for request `wal` in pgdata: sp->dfd = -1 (and nothing
 * else happens) unless wal is a segment name, k > 0 and pgdata is in
 * recovery; creates the spool directory. */
void tw_pgspool_open(struct tw_pgspool *sp, const char *pgdata, uint64_t sysid, const char *wal,
                     unsigned k);
/* Serve the request from the spool into dest (a rename, after its bytes
 * hashed to its .sum-). 1 = served; 0 = not in the spool or damaged (then
 * deleted; fetch it directly). While the prefetcher is fetching
 * it, waits for it (bounded). */
int tw_pgspool_take(struct tw_pgspool *sp, const char *wal, const char *dest);
/* After the request was served into dest: delete spool files outside the
 * window and start a prefetcher for the missing ones unless one runs. o:
 * the options the prefetcher opens the repository with. The caller has
 * closed its own repository (the prefetcher is a forked process). */
void tw_pgspool_ahead(struct tw_pgspool *sp, struct tw_bopts *o, const char *dest);
void tw_pgspool_close(struct tw_pgspool *sp);
/* Stop a running prefetcher and remove the spool directory of pgdata. */
int tw_pgspool_clear(const char *pgdata, struct tw_err *e);

#endif
