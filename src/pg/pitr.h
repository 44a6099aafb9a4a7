/* pitr.h — the PostgreSQL point-in-time-recovery commands that extend the
 * backup commands: `tapwork backup --pg-data` (an online physical snapshot
 * under pg_backup_start/pg_backup_stop on one libpq session),
 * `tapwork restore --pg-data` (a snapshot plus recovery settings that
 * replay the WAL archive to a target), `tapwork pg check` and
 * `tapwork pg verify`. docs/backup.md "Point-in-time recovery". */
#ifndef TW_PG_PITR_H
#define TW_PG_PITR_H

#include <stddef.h>
#include <stdint.h>

#include "core/err.h"
#include "pg/wal.h"

/* 1 when argv[1..] holds --pg-data: backup/restore hand over to these. */
int tw_pitr_wanted(int argc, char **argv);

int tw_pitr_backup_cmd(int argc, char **argv);
int tw_pitr_restore_cmd(int argc, char **argv);
int tw_pitr_check_cmd(int argc, char **argv);
int tw_pitr_verify_cmd(int argc, char **argv);

struct tw_repo;
struct tw_backup_stats;
struct tw_progress;

/* One online physical snapshot (what `backup --pg-data` and a backup job's
 * pg_data source run). */
struct tw_pitr_backup_req {
	const char *pgdata;            /* the data directory */
	const char *conninfo;          /* libpq URL or conninfo; NULL or "" = libpq defaults */
	unsigned long archive_timeout; /* seconds pg_backup_stop may wait; 0 = 600 */
	char **tags;
	size_t ntags;
	int threads;                  /* 0 = number of CPUs */
	struct tw_progress *progress; /* may be NULL */
	const volatile int *cancel;   /* may be NULL */
};

struct tw_pitr_backup_info {
	char start_lsn[24], stop_lsn[24];
	char start_wal[25], stop_wal[25];
	uint32_t tli;
	int data_checksums;      /* the cluster has page checksums (verified) */
	uint64_t damaged_total;  /* pages whose checksum failed twice */
};

/* Back up q->pgdata into r (opened, shared lock held, index loaded): connect,
 * pg_backup_start, store the files, pg_backup_stop, wait for the stop segment
 * in r's WAL archive, write the snapshot. 0, or an error in e (no snapshot). */
int tw_pitr_backup_run(struct tw_repo *r, const struct tw_pitr_backup_req *q,
                       struct tw_backup_stats *st, struct tw_pitr_backup_info *info,
                       struct tw_err *e);

/* Delete WAL older than what the kept physical snapshots need (every
 * segment below the oldest snapshot's start segment of its cluster;
 * history files stay). With dry_run, only count. Exclusive lock held. */
int tw_pitr_prune_wal(struct tw_repo *r, int dry_run, uint64_t *files, uint64_t *bytes,
                      struct tw_err *e);
/* The same, as if the snapshots forget[0..nforget) (ids) were gone already
 * (forget --dry-run --prune), calling each(arg, object name, size) for
 * every WAL object deleted (or, with dry_run, that would be), in name order. */
int tw_pitr_prune_wal_ex(struct tw_repo *r, int dry_run, char *const *forget, size_t nforget,
                         void (*each)(void *arg, const char *name, uint64_t size), void *arg,
                         uint64_t *files, uint64_t *bytes, struct tw_err *e);

/* The timelines recovery passes through to reach timeline tli[n-1]:
 * tli[k] holds WAL from begin[k] (its parent's switch point) on. */
struct tw_pitr_tlpath {
	size_t n;
	uint32_t tli[TW_PGWAL_HISTORY_MAX + 1];
	uint64_t begin[TW_PGWAL_HISTORY_MAX + 1];
};
/* The path to timeline target of cluster sysid, from its .history file
 * (0 = the newest timeline with a .history file in the archive, else 1). */
int tw_pitr_tlpath(struct tw_repo *r, uint64_t sysid, uint32_t target, struct tw_pitr_tlpath *p,
                   struct tw_err *e);
/* 1 when WAL at lsn of timeline tli is on path p (recovery from a snapshot
 * that started there follows p). */
int tw_pitr_tlpath_has(const struct tw_pitr_tlpath *p, uint32_t tli, uint64_t lsn);

/* Find restore point `name` in the WAL archive of cluster sysid along
 * timeline path p: read the segments from the one holding from_lsn onwards
 * (through the one holding until_lsn, or to the first segment not in the
 * archive when until_lsn is UINT64_MAX), each from the newest timeline of p
 * that holds it (as PostgreSQL reads them), at most *budget of them (each
 * read is counted off *budget). Records before from_lsn or at/after
 * until_lsn do not count. *found = 1 and *lsn = the record's start at the
 * first match; *exhausted = 1 when the budget ran out first. */
int tw_pitr_rp_scan(struct tw_repo *r, uint64_t sysid, const struct tw_pitr_tlpath *p,
                    uint64_t seg_size, uint64_t from_lsn, uint64_t until_lsn, const char *name,
                    unsigned *budget, int *found, uint64_t *lsn, int *exhausted,
                    struct tw_err *e);
#define TW_PITR_RP_SCAN_MAX 1024 /* segments one restore-point search reads at most */

/* Recovery target time "YYYY-MM-DD[ T]HH:MM:SS[.frac][Z|+HH[:MM]|-HH[:MM]]"
 * (no zone: local time) to nanoseconds since the epoch. 0 or TW_EINVAL. */
int tw_pitr_parse_time(const char *s, int64_t *ns);

/* Quote s for postgresql.conf ('...' with '' for ') into out. */
int tw_pitr_conf_quote(const char *s, char *out, size_t cap);
/* Quote s as one shell word ('...' with '\'' for ') into out. */
int tw_pitr_sh_quote(const char *s, char *out, size_t cap);

#endif
