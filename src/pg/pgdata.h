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

/* The compression profile (TW_ZP_*, backup/pack.h) of the unit p[0..n)
 * of a relation file: TW_ZP_SORTED when most of its valid pages (page size
 * 8192, layout version 4, sane lower/upper/special) have a special space at
 * the page end — index pages: btree, hash, GiST, GIN, SP-GiST, BRIN — whose
 * sorted keys compress ~15 % smaller with it; else TW_ZP_DEFAULT (heap
 * pages, other files, all-zero units). Measured in docs/backup.md. */
int tw_pgdata_zprofile(const unsigned char *p, size_t n);

#endif
