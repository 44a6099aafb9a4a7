/* pg.h — PostgreSQL logical backups as stream sources of the backup
 * pipeline (docs/backup.md "PostgreSQL").
 *
 * A plan turns a connection URL into streams: one `pg_dump --format=custom
 * --compress=0` per database (file "<db>.dump" in the virtual directory
 * "postgres"), and with `all` first `pg_dumpall --globals-only`
 * ("globals.sql") plus every database that accepts connections (listed with
 * psql). A password in the URL is removed from it and handed to the
 * children as PGPASSWORD (environment, never argv); otherwise libpq's own
 * PGPASSWORD / ~/.pgpass apply.
 *
 * Seam for physical backups: a plan has a kind (only TW_PG_LOGICAL today);
 * a base backup (pg_basebackup -Ft to stdout) is one more stream kind in
 * the same directory, and WAL archiving (archive_command = `tapwork wal-push`)
 * would store segments as their own snapshots tagged "wal". */
#ifndef TW_BACKUP_PG_H
#define TW_BACKUP_PG_H

#include <stddef.h>

#include "backup/backup.h"
#include "backup/proc.h"

#define TW_PG_DIR "postgres"

enum tw_pg_kind { TW_PG_LOGICAL = 0 };

struct tw_pg_conn {
	char *url;      /* without password */
	char *password; /* NULL when none in the URL */
	char *dbname;   /* percent-decoded; NULL when the URL names none */
};

/* Split a postgresql:// (or postgres://) URL. Free with tw_pg_conn_free. */
int tw_pg_conn_parse(const char *url, struct tw_pg_conn *c, struct tw_err *e);
void tw_pg_conn_free(struct tw_pg_conn *c);
/* The same URL with the database replaced by db (malloc'd). */
char *tw_pg_conn_with_db(const struct tw_pg_conn *c, const char *db);

struct tw_pg_plan;

/* Build the streams for url (all: globals + every database). bin_dir may be NULL. */
int tw_pg_plan_new(const char *url, int all, const char *bin_dir, struct tw_pg_plan **out,
		   struct tw_err *e);
void tw_pg_plan_free(struct tw_pg_plan *p);
const struct tw_backup_stream *tw_pg_plan_streams(const struct tw_pg_plan *p, size_t *n);

/* Restore: feed `fd`'s producer into pg_restore. `list`: print the TOC
 * (pg_restore --list) to stdout instead. create: --create (connect to the
 * URL's database, usually "postgres", and create the dumped one). */
struct tw_pg_restore {
	struct tw_proc proc;
	char path[4096];
};
int tw_pg_restore_start(struct tw_pg_restore *r, const char *url, const char *bin_dir, int list,
			int create, struct tw_err *e);
int tw_pg_restore_finish(struct tw_pg_restore *r, int abort, struct tw_err *e);

#endif
