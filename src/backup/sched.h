/* sched.h — the backup scheduler of `tapwork run` (docs/backup.md "Jobs").
 *
 * One thread, off the request path, runs the configured jobs one at a time
 * (so a job never overlaps itself and two jobs never compete for a
 * repository; the repository lock still guards against other writers). The
 * scheduler loads its own copy of the config file at start, so reloads of
 * the edge do not touch it: job changes take effect at the next start.
 *
 * Missed runs: at start, for each scheduled job the newest snapshot tagged
 * job:NAME is looked up; when a scheduled time passed since it (the daemon
 * was down), the job runs once right away. A job that never ran waits for
 * its first scheduled time.
 *
 * Metrics (registered on the calling thread at start; the scheduler thread
 * owns its shard and is the only writer): tapwork_backup_last_success_
 * timestamp_seconds, _last_duration_seconds, _last_size_bytes,
 * _last_added_bytes, _last_files, _failures_total, _runs_total, _running,
 * all labelled {job="NAME"}. */
#ifndef TW_BACKUP_SCHED_H
#define TW_BACKUP_SCHED_H

#include "core/err.h"

/* Main thread, after the config loaded. config_path NULL: nothing to do. */
int tw_backup_sched_start(const char *config_path, struct tw_err *e);
/* Ask a running job to stop (its snapshot is not written) and join. */
void tw_backup_sched_stop(void);

#endif
