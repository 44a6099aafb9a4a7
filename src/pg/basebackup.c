/* basebackup.c — `tapwork backup --pg-data DIR`: an online physical
 * snapshot of a PostgreSQL cluster.
 *
 * One libpq session holds the backup: pg_backup_start(label, fast) before
 * the data directory is walked, pg_backup_stop(false) after every
 * file is stored and before the snapshot is written (the backup engine's
 * seal hook), then the wait for the stop segment in this repository. If
 * anything fails, closing the session aborts the backup on the server and
 * no snapshot is written. Relation files are cut at page boundaries
 * (pgdata.h), so a second backup stores only the changed runs of pages. */
#include <dirent.h>
#include <errno.h>
#include <libpq-fe.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "backup/backup.h"
#include "backup/cmdutil.h"
#include "cli/cli.h"
#include "pg/archive.h"
#include "pg/checksum.h"
#include "pg/keycache.h"
#include "pg/meta.h"
#include "pg/pgdata.h"
#include "pg/pitr.h"
#include "pg/wal.h"

int tw_pitr_wanted(int argc, char **argv)
{
	for (int i = 1; i < argc; i++)
		if (strcmp(argv[i], "--pg-data") == 0 || strncmp(argv[i], "--pg-data=", 10) == 0)
			return 1;
	return 0;
}

static void usage(FILE *out)
{
	fprintf(
	    out,
	    "usage: tapwork backup -r REPO --pg-data DIR [--postgres URL] [--tag T]...\n\n"
	    "An online physical snapshot of the PostgreSQL cluster in DIR (run it as a user\n"
	    "that can read DIR, e.g. postgres or root). The server must archive its WAL\n"
	    "into the same repository (archive_mode = on, archive_command =\n"
	    "'tapwork pg archive-push -r REPO %%p'). pg_backup_start and pg_backup_stop run on\n"
	    "one session; the snapshot is written only after pg_backup_stop returned and\n"
	    "the WAL the snapshot needs is archived. Unchanged 64 KiB runs of pages are\n"
	    "not stored again, so every backup after the first is incremental; files not\n"
	    "written since before the previous backup started are not even read.\n\n"
	    "options:\n"
	    "  --pg-data DIR            the data directory\n"
	    "  --postgres URL           how to connect (libpq URL or conninfo; default: libpq's\n"
	    "                           defaults, PGHOST/PGPORT/PGUSER...); a superuser or a role\n"
	    "                           granted pg_backup_start/pg_backup_stop\n"
	    "  --archive-timeout SECS   how long the backup waits for its stop segment to be\n"
	    "                           archived (default 600); then the backup fails\n"
	    "  --tag T                  tag the snapshot (repeatable)\n"
	    "  --threads N              worker threads (default: number of CPUs)\n" TW_BOPTS_HELP);
}

struct bb {
	PGconn *c;
	const char *root; /* realpath of PGDATA */
	size_t rootlen;
	struct tw_pgmeta m;
	char *meta_txt;
	struct tw_repo *r;
	unsigned long archive_timeout; /* seconds to wait for the stop segment in the archive */
	pthread_mutex_t mu;            /* guards m.damaged* (reader threads) */
	int oom;
};

/* The WAL the snapshot needs must be in *this* repository: an
 * archive_command that pushes elsewhere would make it unrestorable.
 * pg_backup_stop(false) switched to a new segment and returned at once; the
 * stop segment is waited for here, polled every 5 ms at first (PostgreSQL's
 * own wait, pg_backup_stop(true), sleeps a whole second between looks).
 * The server's archive_status/<stop>.done without the segment in this
 * repository means archive_command pushed it elsewhere. */
static int wal_archived_here(struct bb *b, struct tw_err *e)
{
	char stop[96], start[96], done[PATH_MAX];
	uint64_t size;
	tw_pgarch_name(b->m.sysid, b->m.stop_wal, stop, sizeof stop);
	tw_pgarch_name(b->m.sysid, b->m.start_wal, start, sizeof start);
	snprintf(done, sizeof done, "%s/pg_wal/archive_status/%s.done", b->root, b->m.stop_wal);
	struct timespec t0, now;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	long pause_us = 5000;
	const char *missing = NULL;
	for (;;) {
		if (tw_storage_stat(b->r->st, TW_ST_WAL, stop, &size, NULL) == 0) {
			if (tw_storage_stat(b->r->st, TW_ST_WAL, start, &size, NULL) != 0)
				missing = b->m.start_wal;
			break;
		}
		struct stat sb;
		if (stat(done, &sb) == 0) {
			/* archived: here after all (a race with the look above), or elsewhere */
			if (tw_storage_stat(b->r->st, TW_ST_WAL, stop, &size, NULL) != 0)
				missing = b->m.stop_wal;
			else if (tw_storage_stat(b->r->st, TW_ST_WAL, start, &size, NULL) != 0)
				missing = b->m.start_wal;
			break;
		}
		clock_gettime(CLOCK_MONOTONIC, &now);
		if (now.tv_sec - t0.tv_sec >= (time_t)b->archive_timeout)
			return tw_err_set(e, TW_ETIMEDOUT,
			                  "WAL segment %s was not archived within %lu s (is "
			                  "archive_command failing? see the server log); no snapshot "
			                  "written",
			                  b->m.stop_wal, b->archive_timeout);
		struct timespec ts = {0, pause_us * 1000};
		nanosleep(&ts, NULL);
		if (pause_us < 100000)
			pause_us *= 2;
	}
	if (missing != NULL)
		return tw_err_set(e, TW_ENOENT,
		                  "WAL segment %s is not in this repository: archive_command "
		                  "must push into it (tapwork pg archive-push -r REPO %%p); no "
		                  "snapshot written",
		                  missing);
	return 0;
}

static int pq_fail(struct bb *b, PGresult *res, const char *what, struct tw_err *e)
{
	const char *msg = res ? PQresultErrorMessage(res) : PQerrorMessage(b->c);
	int rc = tw_err_set(e, TW_EIO, "%s: %.*s", what, (int)strcspn(msg, "\n"), msg);
	PQclear(res);
	return rc;
}

/* Run sql with params; one row of ncols expected. */
static PGresult *query(struct bb *b, const char *sql, int nparams, const char *const *params,
                       int ncols, const char *what, struct tw_err *e)
{
	PGresult *res = PQexecParams(b->c, sql, nparams, NULL, params, NULL, NULL, 0);
	if (res == NULL || PQresultStatus(res) != PGRES_TUPLES_OK) {
		pq_fail(b, res, what, e);
		return NULL;
	}
	if (PQntuples(res) != 1 || PQnfields(res) != ncols) {
		PQclear(res);
		tw_err_set(e, TW_EPROTO, "%s: unexpected answer", what);
		return NULL;
	}
	return res;
}

/* The path of `full` as PostgreSQL names it from the data directory: for a
 * file in a tablespace "pg_tblspc/OID/..." (into buf). NULL: neither. */
static const char *rel_of(const struct bb *b, const char *full, char *buf, size_t cap)
{
	if (strncmp(full, b->root, b->rootlen) == 0 && full[b->rootlen] == '/')
		return full + b->rootlen + 1;
	for (size_t i = 0; i < b->m.nts; i++) {
		size_t l = strlen(b->m.ts[i].path);
		if (strncmp(full, b->m.ts[i].path, l) == 0 && full[l] == '/') {
			int n = snprintf(buf, cap, "pg_tblspc/%u/%s", (unsigned)b->m.ts[i].oid,
			                 full + l + 1);
			return n > 0 && (size_t)n < cap ? buf : NULL;
		}
	}
	return NULL;
}

static int skip(void *arg, const char *full)
{
	struct bb *b = arg;
	char buf[PATH_MAX];
	const char *rel = rel_of(b, full, buf, sizeof buf);
	if (rel == NULL)
		return 0;
	if (tw_pgdata_skip(rel, strlen(rel)))
		return 1;
	/* a fork of an unlogged relation (it has an init fork): not copied */
	const char *slash = strrchr(rel, '/'), *fslash = strrchr(full, '/');
	char init[32], path[PATH_MAX];
	if (slash == NULL ||
	    (strncmp(rel, "base/", 5) != 0 && strncmp(rel, "global/", 7) != 0 &&
	     strncmp(rel, "pg_tblspc/", 10) != 0) ||
	    !tw_pgdata_init_fork(slash + 1, strlen(slash + 1), init, sizeof init))
		return 0;
	struct stat st;
	int n = snprintf(path, sizeof path, "%.*s/%s", (int)(fslash - full), full, init);
	return n > 0 && (size_t)n < sizeof path && stat(path, &st) == 0;
}

/* Read page blkno_in_file of full again (a page being written while we
 * copied it is not damage). 0 on success. */
static int reread(const char *full, uint64_t off, uint8_t *page)
{
	int fd = open(full, O_RDONLY | O_CLOEXEC);
	if (fd == -1)
		return -1;
	ssize_t n = pread(fd, page, TW_PGCK_PAGE, (off_t)off);
	close(fd);
	return n == (ssize_t)TW_PGCK_PAGE ? 0 : -1;
}

/* The inspect hook: verify the checksum of every whole page of a relation
 * file (only when the cluster has data checksums). */
static void inspect(void *arg, const char *full, uint64_t off, const uint8_t *p, size_t n)
{
	struct bb *b = arg;
	uint32_t segno;
	char buf[PATH_MAX];
	const char *rel = rel_of(b, full, buf, sizeof buf);
	if (rel == NULL || off % TW_PGCK_PAGE != 0 || !tw_pgck_relfile(rel, strlen(rel), &segno))
		return;
	for (size_t i = 0; i + TW_PGCK_PAGE <= n; i += TW_PGCK_PAGE) {
		uint64_t at = off + i;
		uint32_t blk = segno * TW_PGCK_SEG_PAGES + (uint32_t)(at / TW_PGCK_PAGE);
		uint16_t stored, computed;
		if (tw_pgck_verify(p + i, blk, b->m.start_lsn, &stored, &computed) != TW_PGCK_BAD)
			continue;
		uint8_t again[TW_PGCK_PAGE];
		if (reread(full, at, again) != 0 ||
		    tw_pgck_verify(again, blk, b->m.start_lsn, &stored, &computed) != TW_PGCK_BAD)
			continue;
		pthread_mutex_lock(&b->mu);
		fprintf(stderr,
		        "tapwork backup: warning: page checksum mismatch in %s block %u (stored "
		        "%u, computed %u): the page is damaged on disk (recorded in the snapshot)\n",
		        rel, (unsigned)(at / TW_PGCK_PAGE), stored, computed);
		if (tw_pgmeta_add_damaged(&b->m, rel, (uint32_t)(at / TW_PGCK_PAGE)) != 0)
			b->oom = 1;
		pthread_mutex_unlock(&b->mu);
	}
}

static int64_t micros_to_ns(const char *s)
{
	return (int64_t)strtoll(s, NULL, 10) * 1000;
}

/* pg_backup_stop, then record what restore needs in the snapshot. */
static int seal(void *arg, struct tw_snapshot *s, struct tw_err *e)
{
	struct bb *b = arg;
	PGresult *res;
	res = query(
	    b,
	    "SELECT s.lsn::text, s.labelfile, coalesce(s.spcmapfile, ''), "
	    "pg_walfile_name(s.lsn), (extract(epoch from clock_timestamp()) * 1000000)::bigint, "
	    "pg_snapshot_xmax(pg_current_snapshot())::text FROM pg_backup_stop(false) s",
	    0, NULL, 6, "pg_backup_stop", e);
	if (res == NULL)
		return e->code;
	int rc = 0;
	const char *lsn = PQgetvalue(res, 0, 0);
	if (tw_pgwal_lsn_parse(lsn, strlen(lsn), &b->m.stop_lsn) != 0 ||
	    strlen(PQgetvalue(res, 0, 3)) != 24)
		rc = tw_err_set(e, TW_EPROTO, "pg_backup_stop: unexpected answer");
	if (rc == 0 && b->oom)
		rc = tw_err_set(e, TW_ENOMEM, "out of memory");
	if (rc == 0) {
		memcpy(b->m.stop_wal, PQgetvalue(res, 0, 3), 25);
		b->m.stop_ns = micros_to_ns(PQgetvalue(res, 0, 4));
		b->m.next_xid = strtoull(PQgetvalue(res, 0, 5), NULL, 10);
		b->m.backup_label = strdup(PQgetvalue(res, 0, 1));
		b->m.tablespace_map = strdup(PQgetvalue(res, 0, 2));
		if (b->m.backup_label == NULL || b->m.tablespace_map == NULL ||
		    tw_pgmeta_encode(&b->m, &b->meta_txt) != 0)
			rc = tw_err_set(e, TW_ENOMEM, "out of memory");
	}
	PQclear(res);
	if (rc == 0)
		rc = wal_archived_here(b, e);
	if (rc == 0)
		s->pg = b->meta_txt;
	return rc;
}

static const char *last_component(const char *p)
{
	const char *s = strrchr(p, '/');
	return s && s[1] ? s + 1 : "root";
}

/* The tablespaces, each backed up as one more path of the snapshot (a root
 * entry named by its directory's last component) and recorded with its OID
 * and location: restore puts it back there or where --pg-tablespace says. */
static int tablespaces(struct bb *b, struct tw_err *e)
{
	PGresult *res = PQexec(b->c, "SELECT oid::text, spcname, pg_tablespace_location(oid) FROM "
	                             "pg_tablespace WHERE pg_tablespace_location(oid) <> '' "
	                             "ORDER BY oid");
	if (res == NULL || PQresultStatus(res) != PGRES_TUPLES_OK || PQnfields(res) != 3)
		return pq_fail(b, res, "listing tablespaces", e);
	int rc = 0;
	for (int i = 0; rc == 0 && i < PQntuples(res); i++) {
		const char *oid = PQgetvalue(res, i, 0), *name = PQgetvalue(res, i, 1),
		           *loc = PQgetvalue(res, i, 2);
		char link[PATH_MAX], *real;
		snprintf(link, sizeof link, "%s/pg_tblspc/%s", b->root, oid);
		if (loc[0] != '/' || strchr(loc, '\n') != NULL)
			rc = tw_err_set(e, TW_EUNSUPP,
			                "tablespace %s: location '%s' is not an absolute path (an "
			                "in-place tablespace?): not supported",
			                name, loc);
		else if ((real = realpath(link, NULL)) == NULL)
			rc = tw_err_set(e, TW_EIO, "tablespace %s: %s: %s", name, link,
			                strerror(errno));
		else {
			const char *base = last_component(real);
			if (strcmp(base, last_component(b->root)) == 0)
				rc = tw_err_set(e, TW_EUNSUPP,
				                "tablespace %s (%s) has the same last path component "
				                "as the data directory: not supported",
				                name, real);
			for (size_t k = 0; rc == 0 && k < b->m.nts; k++)
				if (strcmp(base, last_component(b->m.ts[k].path)) == 0)
					rc = tw_err_set(e, TW_EUNSUPP,
					                "tablespaces %s and %s have the same last "
					                "path component (%s): not supported",
					                b->m.ts[k].name, name, base);
			if (rc == 0) {
				rc = tw_pgmeta_add_ts(&b->m, (uint32_t)strtoul(oid, NULL, 10), name,
				                      real);
				if (rc == TW_ELIMIT)
					rc = tw_err_set(e, rc, "more than %d tablespaces",
					                TW_PGMETA_TS_MAX);
				else if (rc != 0)
					rc = tw_err_set(e, rc, "out of memory");
			}
			free(real);
		}
	}
	PQclear(res);
	return rc;
}

static int start(struct bb *b, const char *pgdata, struct tw_err *e)
{
	PGresult *res = query(
	    b,
	    "SELECT pg_is_in_recovery()::text, current_setting('server_version_num'), "
	    "current_setting('archive_mode'), (SELECT setting FROM pg_settings WHERE "
	    "name = 'wal_segment_size'), (SELECT system_identifier::text FROM pg_control_system()), "
	    "(SELECT data_page_checksum_version FROM pg_control_init())::text",
	    0, NULL, 6, "connect", e);
	if (res == NULL)
		return e->code;
	int rc = 0;
	uint64_t disk_sysid = 0;
	if (strcmp(PQgetvalue(res, 0, 0), "true") == 0)
		rc = tw_err_set(e, TW_EUNSUPP, "the server is a standby: back up the primary");
	else if (strcmp(PQgetvalue(res, 0, 2), "off") == 0)
		rc =
		    tw_err_set(e, TW_EINVAL,
		               "archive_mode is off: without archived WAL a physical backup cannot "
		               "be restored (docs/backup.md \"Point-in-time recovery\")");
	b->m.version = (uint32_t)strtoul(PQgetvalue(res, 0, 1), NULL, 10);
	b->m.seg_size = strtoull(PQgetvalue(res, 0, 3), NULL, 10);
	b->m.sysid = strtoull(PQgetvalue(res, 0, 4), NULL, 10);
	b->m.data_checksums = strcmp(PQgetvalue(res, 0, 5), "0") != 0;
	PQclear(res);
	if (rc != 0)
		return rc;
	if (b->m.version < 150000)
		return tw_err_set(e, TW_EUNSUPP, "PostgreSQL %u: 15 or newer is needed",
		                  b->m.version);
	if (b->m.seg_size < (1 << 20) || b->m.seg_size > (1 << 30) ||
	    (b->m.seg_size & (b->m.seg_size - 1)) != 0)
		return tw_err_set(e, TW_EPROTO, "unexpected wal_segment_size");
	if ((rc = tw_pgarch_sysid(pgdata, &disk_sysid, e)) != 0)
		return rc;
	if (disk_sysid != b->m.sysid)
		return tw_err_set(e, TW_EINVAL, "%s is not the data directory of that server",
		                  pgdata);
	/* the first archive-push registered the cluster's WAL format: check it */
	struct tw_pgwalhdr h = {.magic = tw_pgwalhdr_magic(b->m.version),
	                        .sysid = b->m.sysid,
	                        .seg_size = (uint32_t)b->m.seg_size};
	if (h.magic != 0) {
		struct tw_pgreg want = {b->m.sysid, h.magic, h.seg_size}, got;
		int created;
		rc = tw_pgarch_register(b->r, &want, 0, &got, &created, e);
		if (rc == 0)
			rc = tw_pgreg_check(&got, &h, "of this server", e);
		if (rc != 0 && rc != TW_ENOENT)
			return rc;
		rc = 0;
	}
	if ((rc = tablespaces(b, e)) != 0)
		return rc;
	char label[64];
	snprintf(label, sizeof label, "tapwork %lld", (long long)time(NULL));
	const char *params[1] = {label};
	res = query(b,
	            "SELECT lsn::text, pg_walfile_name(lsn), "
	            "(extract(epoch from clock_timestamp()) * 1000000)::bigint "
	            "FROM pg_backup_start($1, true) lsn",
	            1, params, 3, "pg_backup_start", e);
	if (res == NULL)
		return e->code;
	const char *lsn = PQgetvalue(res, 0, 0), *wal = PQgetvalue(res, 0, 1);
	uint64_t segno;
	if (tw_pgwal_lsn_parse(lsn, strlen(lsn), &b->m.start_lsn) != 0 ||
	    tw_pgwal_seg_parse(wal, strlen(wal), b->m.seg_size, &b->m.tli, &segno) != 0)
		rc = tw_err_set(e, TW_EPROTO, "pg_backup_start: unexpected answer");
	else {
		memcpy(b->m.start_wal, wal, 25);
		b->m.start_ns = micros_to_ns(PQgetvalue(res, 0, 2));
	}
	PQclear(res);
	return rc;
}

/* The files cache (files unchanged since the parent snapshot are not read
 * again) is safe for a data directory only for files the parent copied
 * while nobody wrote them: PostgreSQL writes a file (mtime changes) after
 * every checkpoint that dirtied it, and a write during the parent's copy
 * might fall in the same timestamp tick as its stat. So a file is reused
 * only if its mtime and ctime are older than the parent backup's start
 * (less 2 s of margin). The parent is the one the engine picks: the newest
 * snapshot of this host with the same paths; if that is not a physical
 * PostgreSQL snapshot, every file is read. */
/* The engine records the paths sorted; bo's are not. */
static int same_paths(const struct tw_snapshot *s, const struct tw_backup_opts *bo)
{
	if (s->npaths != bo->npaths)
		return 0;
	for (size_t k = 0; k < bo->npaths; k++) {
		size_t j = 0;
		while (j < s->npaths && strcmp(s->paths[j], bo->paths[k]) != 0)
			j++;
		if (j == s->npaths)
			return 0;
	}
	return 1;
}

static int cache_cutoff(struct tw_repo *r, struct tw_backup_opts *bo, struct tw_err *e)
{
	struct tw_snapshot **v = NULL;
	size_t n = 0;
	char host[256];
	bo->force = 1;
	if (gethostname(host, sizeof host) != 0)
		return 0;
	host[sizeof host - 1] = '\0';
	int rc = tw_repo_list_snapshots(r, &v, &n, e);
	for (size_t i = n; rc == 0 && i-- > 0;) {
		if (strcmp(v[i]->hostname, host) != 0 || !same_paths(v[i], bo))
			continue;
		struct tw_pgmeta m;
		if (v[i]->pg != NULL && tw_pgmeta_decode(v[i]->pg, &m, NULL) == 0) {
			bo->force = 0;
			bo->cache_before_ns = m.start_ns - 2000000000LL;
			tw_pgmeta_clear(&m);
		}
		break;
	}
	tw_repo_free_snapshots(v, n);
	return rc;
}

int tw_pitr_backup_run(struct tw_repo *r, const struct tw_pitr_backup_req *q,
                       struct tw_backup_stats *st, struct tw_pitr_backup_info *info,
                       struct tw_err *e)
{
	struct tw_backup_opts bo = {0};
	struct bb b = {.archive_timeout = q->archive_timeout ? q->archive_timeout : 600,
	               .r = r,
	               .mu = PTHREAD_MUTEX_INITIALIZER};
	int rc;
	memset(info, 0, sizeof *info);
	char *root = realpath(q->pgdata, NULL);
	if (root == NULL)
		return tw_err_set(e, TW_ENOENT, "%s: %s", q->pgdata, strerror(errno));
	b.root = root;
	b.rootlen = strlen(root);
	b.m.pgdata = root;
	b.c = PQconnectdb(q->conninfo ? q->conninfo : "");
	if (b.c == NULL || PQstatus(b.c) != CONNECTION_OK) {
		const char *m = b.c ? PQerrorMessage(b.c) : "out of memory";
		rc = tw_err_set(e, TW_EIO, "cannot connect to PostgreSQL: %.*s",
		                (int)strcspn(m, "\n"), m);
		goto close;
	}
	if ((rc = start(&b, root, e)) != 0)
		goto close;
	char *paths[1 + TW_PGMETA_TS_MAX] = {root};
	for (size_t i = 0; i < b.m.nts; i++)
		paths[1 + i] = b.m.ts[i].path;
	bo.paths = paths;
	bo.npaths = 1 + b.m.nts;
	bo.tags = q->tags;
	bo.ntags = q->ntags;
	bo.threads = q->threads;
	bo.progress = q->progress;
	bo.cancel = q->cancel;
	if ((rc = cache_cutoff(r, &bo, e)) != 0)
		goto close;
	bo.skip = skip;
	bo.skip_arg = &b;
	bo.fixed_chunk = TW_PGDATA_CHUNK;
	bo.zprofile = tw_pgdata_zprofile;
	bo.missing_ok = 1; /* relations dropped while we copy */
	bo.seal = seal;
	bo.seal_arg = &b;
	if (b.m.data_checksums) {
		bo.inspect = inspect;
		bo.inspect_arg = &b;
	}
	if ((rc = tw_backup_run(r, &bo, st, e)) != 0)
		goto close;
	tw_pgwal_lsn_str(b.m.start_lsn, info->start_lsn, sizeof info->start_lsn);
	tw_pgwal_lsn_str(b.m.stop_lsn, info->stop_lsn, sizeof info->stop_lsn);
	memcpy(info->start_wal, b.m.start_wal, sizeof info->start_wal);
	memcpy(info->stop_wal, b.m.stop_wal, sizeof info->stop_wal);
	info->tli = b.m.tli;
	info->data_checksums = b.m.data_checksums != 0;
	info->damaged_total = b.m.damaged_total;
close:
	if (b.c != NULL)
		PQfinish(b.c); /* aborts a backup still in progress */
	b.m.pgdata = NULL;
	tw_pgmeta_clear(&b.m);
	free(b.meta_txt);
	free(root);
	return rc;
}

int tw_pitr_backup_cmd(int argc, char **argv)
{
	struct tw_bopts o = {0};
	struct tw_pitr_backup_req q = {.conninfo = "", .archive_timeout = 600};
	char **tags = calloc((size_t)argc + 1, sizeof *tags);
	int rc = TW_EXIT_USAGE;
	if (tags == NULL)
		return TW_EXIT_ERROR;
	q.tags = tags;
	for (int i = 1; i < argc; i++) {
		int c = tw_bopts_parse(&o, argc, argv, &i);
		if (c < 0)
			goto done;
		if (c)
			continue;
		const char *a = argv[i];
		if (strcmp(a, "--pg-data") == 0 && i + 1 < argc)
			q.pgdata = argv[++i];
		else if (strncmp(a, "--pg-data=", 10) == 0)
			q.pgdata = a + 10;
		else if (strcmp(a, "--postgres") == 0 && i + 1 < argc)
			q.conninfo = argv[++i];
		else if (strcmp(a, "--archive-timeout") == 0 && i + 1 < argc) {
			if (tw_bcli_uint(argv[++i], 86400, &q.archive_timeout) != 0 ||
			    q.archive_timeout == 0) {
				fprintf(stderr, "tapwork backup: bad --archive-timeout\n");
				goto done;
			}
		} else if (strcmp(a, "--tag") == 0 && i + 1 < argc)
			tags[q.ntags++] = argv[++i];
		else if (strcmp(a, "--threads") == 0 && i + 1 < argc) {
			unsigned long v;
			if (tw_bcli_uint(argv[++i], 256, &v) != 0) {
				fprintf(stderr, "tapwork backup: bad --threads\n");
				goto done;
			}
			q.threads = (int)v;
		} else if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
			usage(stdout);
			rc = 0;
			goto done;
		} else {
			fprintf(stderr, "tapwork backup: with --pg-data: unexpected argument %s\n",
			        a);
			goto done;
		}
	}
	if (q.pgdata == NULL) {
		usage(stderr);
		goto done;
	}
	rc = TW_EXIT_ERROR;
	struct tw_err e = {0};
	struct tw_repo *r = NULL;
	double t0 = tw_progress_now();
	/* open the repository first: a wrong password must not start a backup */
	if ((rc = tw_pgkc_open(&o, "backup", TW_BOPEN_LOCK | TW_BOPEN_INDEX, &r)) != 0)
		goto done;
	struct tw_backup_stats st;
	struct tw_pitr_backup_info in;
	struct tw_progress pg;
	q.progress = &pg;
	tw_progress_start(&pg, "backup", o.json, o.quiet);
	int err = tw_pitr_backup_run(r, &q, &st, &in, &e);
	tw_progress_stop(&pg);
	tw_repo_close(r);
	double el = tw_progress_now() - t0;
	if (err != 0) {
		tw_bcli_fail("backup", &e);
		rc = TW_EXIT_ERROR;
		goto done;
	}
	rc = st.errors ? TW_EXIT_PARTIAL : TW_EXIT_OK;
	if (o.json)
		printf(
		    "{\"type\":\"summary\",\"snapshot_id\":\"%s\",\"postgres\":\"physical\","
		    "\"start_lsn\":\"%s\",\"stop_lsn\":\"%s\",\"timeline\":%u,\"start_wal\":\"%s\","
		    "\"stop_wal\":\"%s\",\"files\":%llu,\"files_unchanged\":%llu,\"bytes\":%llu,"
		    "\"bytes_read\":%llu,\"new_bytes\":%llu,\"stored_bytes\":%llu,\"delta_blobs\":%llu,"
		    "\"errors\":%llu,\"data_checksums\":%s,\"damaged_pages\":%llu,\"seconds\":%.3f}\n",
		    st.snapshot_id, in.start_lsn, in.stop_lsn, in.tli, in.start_wal, in.stop_wal,
		    (unsigned long long)st.files, (unsigned long long)st.files_unchanged,
		    (unsigned long long)st.bytes, (unsigned long long)st.bytes_read,
		    (unsigned long long)st.new_bytes, (unsigned long long)st.stored_bytes,
		    (unsigned long long)st.delta_blobs, (unsigned long long)st.errors,
		    in.data_checksums ? "true" : "false",
		    (unsigned long long)in.damaged_total, el);
	else if (!o.quiet)
		printf("snapshot %.8s saved (%s)\nPostgreSQL physical backup: LSN %s..%s, timeline "
		       "%u, WAL %s..%s\nfiles: %llu (%llu unchanged), %.1f MiB processed, %.1f MiB "
		       "read, %.1f MiB new, %.1f MiB stored, %.2fs\n",
		       st.snapshot_id, st.snapshot_id, in.start_lsn, in.stop_lsn, in.tli,
		       in.start_wal, in.stop_wal, (unsigned long long)st.files,
		       (unsigned long long)st.files_unchanged, st.bytes / 1048576.0,
		       st.bytes_read / 1048576.0, st.new_bytes / 1048576.0,
		       st.stored_bytes / 1048576.0, el);
	if (!o.quiet && in.damaged_total > 0)
		fprintf(stderr,
		        "tapwork backup: warning: %llu damaged pages (page checksum mismatch); "
		        "the snapshot records them (tapwork snapshots --json)\n",
		        (unsigned long long)in.damaged_total);
done:
	free(tags);
	return rc;
}
