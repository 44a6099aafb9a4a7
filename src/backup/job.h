/* job.h — one run of a configured backup job (config `backup.jobs.NAME`).
 *
 * A run: open the repository (job's password file, else $TAPWORK_PASSWORD /
 * $TAPWORK_PASSWORD_FILE), take the shared lock, run every source's `pre`
 * hook in order (a failure aborts the run; the `post` hooks of the sources
 * whose `pre` ran are still run), plan the PostgreSQL dumps, back up all
 * sources into one snapshot tagged `job:NAME`, run the `post` hooks, then —
 * when asked — apply retention (forget) and prune (exclusive lock) and check.
 * A `pg_data` source (the job's only one) is an online physical snapshot
 * (src/pg, tw_pitr_backup_run) instead, and its retention also expires the
 * WAL no kept snapshot needs. docs/backup.md "Jobs". */
#ifndef TW_BACKUP_JOB_H
#define TW_BACKUP_JOB_H

#include <stdint.h>

#include "backup/backup.h"
#include "conf/config.h"

struct tw_job_result {
	int ok;                    /* snapshot written and hooks fine */
	struct tw_backup_stats st; /* of the backup */
	double seconds;            /* whole run */
	int64_t start_ns;
	uint64_t forgotten; /* snapshots removed by retention */
	uint64_t wal_files, wal_bytes; /* WAL expired (pg_data jobs; any job that prunes) */
	int pruned, checked;
	char error[512];
};

struct tw_job_opts {
	int retention; /* apply the retention policy after a successful backup */
	int prune;     /* also prune (needs retention) */
	int check;     /* also check */
	const volatile int *cancel;
};

/* 0 when the run succeeded; else an error (res->error says why). */
int tw_job_run(const struct tw_conf_backup_job *j, const struct tw_job_opts *o,
	       struct tw_job_result *res, struct tw_err *e);

/* Time of the job's newest snapshot (tag job:NAME) in ns, 0 when none. */
int tw_job_last_snapshot(const struct tw_conf_backup_job *j, int64_t *t_ns, struct tw_err *e);

/* `tapwork backup --job NAME -c CONFIG`: exit code. */
int tw_job_cli(const char *config, const char *name, int json, int quiet);

#endif
