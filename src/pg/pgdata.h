/* pgdata.h — which parts of a PostgreSQL data directory a physical backup
 * copies, and how relation files are cut.
 *
 * The skip rules follow PostgreSQL's "Making a Base Backup Using the Low
 * Level API": the contents (not the directories) of pg_wal, pg_replslot,
 * pg_dynshmem, pg_notify, pg_serial, pg_snapshots, pg_stat_tmp and
 * pg_subtrans; postmaster.pid and postmaster.opts; pgsql_tmp* temporary
 * files and directories; pg_internal.init relcache files. A leftover
 * backup_label/tablespace_map and recovery/standby signal files are skipped
 * too: restore writes its own. Pure functions, tested in
 * tests/unit/pg/pgdata.c. */
#ifndef TW_PG_PGDATA_H
#define TW_PG_PGDATA_H

#include <stddef.h>

/* Relation files are cut every TW_PGDATA_CHUNK bytes (a multiple of the
 * 8 KiB page), so an unchanged run of pages is an unchanged blob. */
#define TW_PGDATA_PAGE 8192u
#define TW_PGDATA_CHUNK (8u * TW_PGDATA_PAGE)

/* 1 if the entry at rel[0..n) (relative to PGDATA, '/'-separated, no
 * leading '/') is left out of a physical backup; 0 if it is copied. */
int tw_pgdata_skip(const char *rel, size_t n);

/* Unlogged relations: PostgreSQL resets them from their init fork
 * (RELFILENODE_init) after a crash or a restore, so only that fork is
 * copied. For a file name in a database directory ("16385", "16385.1",
 * "16385_fsm", "16385_vm.2"), the name of its init fork ("16385_init") into
 * out (>= 32 bytes): 1, or 0 when name is no relation file or is the init
 * fork itself. */
int tw_pgdata_init_fork(const char *name, size_t n, char *out, size_t cap);

#endif
