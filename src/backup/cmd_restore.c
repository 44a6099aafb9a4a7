/* cmd_restore.c — `tapwork restore`. */
#include <errno.h>
#include <libpq-fe.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "backup/cmdutil.h"
#include "backup/pg.h"
#include "backup/restore.h"
#include "cli/cli.h"
#include "pg/pitr.h"

/* A path as a JSON string: names are byte strings, so bytes outside
 * printable ASCII are written as \u00XX (as `ls --json` does). */
static void json_str(const char *p)
{
	putchar('"');
	for (; *p; p++) {
		unsigned char ch = (unsigned char)*p;
		if (ch == '"' || ch == '\\')
			printf("\\%c", ch);
		else if (ch < 0x20 || ch >= 0x7f)
			printf("\\u%04x", ch);
		else
			putchar(ch);
	}
	putchar('"');
}

static void usage(FILE *out)
{
	fprintf(out, "usage: tapwork restore -r REPO SNAPSHOT --target DIR [--include PATH]\n"
		     "       tapwork restore -r REPO SNAPSHOT --postgres URL [--create] [--dump NAME]\n"
		     "       tapwork restore -r REPO SNAPSHOT --list [--dump NAME]\n"
		     "       tapwork restore -r REPO [SNAPSHOT] --pg-data DIR --pg-target-...   "
		     "(see --pg-data --help)\n\n"
		     "Restore a snapshot (\"latest\" or an ID prefix) into DIR. Every blob is\n"
		     "verified before it is written; nothing is written outside DIR.\n"
		     "--include PATH restores only PATH (as shown by `tapwork ls`).\n"
		     "Data that fails verification is never written: its range stays zeros, every\n"
		     "damaged range is reported as file, offset and length, a closing list names\n"
		     "every damaged file, and a damaged file is renamed NAME.damaged.\n"
		     "Exit status: 0 ok, 1 error or damaged data.\n\noptions:\n"
		     "  --target DIR             where to restore (created if missing)\n"
		     "  --include PATH           restore only this file or directory\n"
		     "  --keep-damaged-names     leave damaged files under their own names\n"
		     "  --threads N              writer threads (default: number of CPUs)\n"
		     "  --postgres URL           feed a PostgreSQL dump of the snapshot to pg_restore -d URL\n"
		     "                           (an existing empty database; the dump is postgres/DB.dump\n"
		     "                           for the URL's DB, or the only dump in the snapshot)\n"
		     "  --create                 pg_restore --create: URL names a maintenance database\n"
		     "                           (e.g. /postgres) and the dumped database is created\n"
		     "  --dump NAME              which dump of postgres/ (e.g. app.dump)\n"
		     "  --list, --postgres-list  print the dump's table of contents (pg_restore --list)\n"
		     "  --pg-bin DIR             where pg_restore is (default: PATH, then PG 15's)\n" TW_BOPTS_HELP);
}

/* The file postgres/NAME of snapshot s (NAME from --dump, the URL's
 * database, or the only .dump there); its chunk IDs copied to *chunks. */
static int find_dump(struct tw_repo *r, const struct tw_snapshot *s, const char *want,
		     const char *db, uint8_t **chunks, uint32_t *n, char *name, size_t ncap,
		     struct tw_err *e)
{
	uint8_t *b1 = NULL, *b2 = NULL;
	struct tw_node *root = NULL, *pg = NULL;
	uint32_t nr = 0, np = 0;
	int rc = tw_repo_read_tree(r, s->tree, &b1, &root, &nr, e);
	if (rc != 0)
		return rc;
	const struct tw_node *d = tw_tree_find(root, nr, (const uint8_t *)TW_PG_DIR, strlen(TW_PG_DIR));
	if (d == NULL || d->type != TW_NODE_DIR) {
		rc = tw_err_set(e, TW_ENOENT, "snapshot %.8s holds no PostgreSQL dump", s->id);
		goto done;
	}
	if ((rc = tw_repo_read_tree(r, d->subtree, &b2, &pg, &np, e)) != 0)
		goto done;
	char guess[300] = "";
	if (want == NULL && db != NULL) {
		snprintf(guess, sizeof guess, "%s.dump", db);
		if (tw_tree_find(pg, np, (const uint8_t *)guess, strlen(guess)) != NULL)
			want = guess;
	}
	const struct tw_node *f = NULL;
	if (want != NULL)
		f = tw_tree_find(pg, np, (const uint8_t *)want, strlen(want));
	else {
		int k = 0;
		for (uint32_t i = 0; i < np; i++)
			if (pg[i].name_len > 5 &&
			    memcmp(pg[i].name + pg[i].name_len - 5, ".dump", 5) == 0) {
				f = &pg[i];
				k++;
			}
		if (k > 1) {
			rc = tw_err_set(e, TW_EINVAL,
					"snapshot %.8s holds several dumps: choose one with --dump NAME",
					s->id);
			goto done;
		}
	}
	if (f == NULL || f->type != TW_NODE_FILE) {
		rc = tw_err_set(e, TW_ENOENT, "no dump %s/%s in snapshot %.8s", TW_PG_DIR,
				want ? want : "*.dump", s->id);
		goto done;
	}
	snprintf(name, ncap, "%.*s", (int)f->name_len, (const char *)f->name);
	*n = f->nchunks;
	*chunks = malloc((size_t)f->nchunks * TW_ID_LEN + 1);
	if (*chunks == NULL)
		rc = tw_err_set(e, TW_ENOMEM, "out of memory");
	else
		memcpy(*chunks, f->chunks, (size_t)f->nchunks * TW_ID_LEN);
done:
	free(root);
	free(pg);
	free(b1);
	free(b2);
	return rc;
}

/* pg_restore without --create restores into an existing database. If the
 * URL's database does not exist, say how to create it instead of passing
 * pg_restore's "database ... does not exist" through. Any other connection
 * failure is left to pg_restore to report. */
static int db_must_exist(const char *url, const char *dbname, struct tw_err *e)
{
	PGconn *c = PQconnectdb(url);
	int rc = 0;
	if (c != NULL && PQstatus(c) != CONNECTION_OK) {
		const char *m = PQerrorMessage(c);
		if (strstr(m, "does not exist") != NULL && strstr(m, "database \"") != NULL)
			rc = tw_err_set(
			    e, TW_ENOENT,
			    "database \"%s\" does not exist: to create it from the dump, pass "
			    "--create with a URL naming a maintenance database (e.g. the same URL "
			    "with /postgres instead of /%s); or create it empty first",
			    dbname ? dbname : "?", dbname ? dbname : "DB");
	}
	PQfinish(c);
	return rc;
}

/* Stream the dump's blobs into pg_restore's stdin. */
static int pg_restore_snapshot(struct tw_repo *r, const struct tw_snapshot *s, const char *url,
			       const char *want, const char *pgbin, int list, int create,
			       uint64_t *bytes, struct tw_err *e)
{
	struct tw_pg_conn c = {0};
	if (url != NULL && tw_pg_conn_parse(url, &c, e) != 0)
		return e->code;
	uint8_t *chunks = NULL;
	uint32_t n = 0;
	char name[300];
	int rc = find_dump(r, s, want, create ? NULL : c.dbname, &chunks, &n, name, sizeof name, e);
	if (rc == 0 && url != NULL && !list && !create)
		rc = db_must_exist(url, c.dbname, e);
	tw_pg_conn_free(&c);
	if (rc != 0) {
		free(chunks);
		return rc;
	}
	struct tw_pg_restore pr;
	if ((rc = tw_pg_restore_start(&pr, url, pgbin, list, create, e)) != 0) {
		free(chunks);
		return rc;
	}
	signal(SIGPIPE, SIG_IGN);
	int broken = 0;
	for (uint32_t i = 0; i < n && rc == 0 && !broken; i++) {
		uint8_t *pt = NULL;
		size_t len = 0;
		if ((rc = tw_repo_read_blob(r, chunks + (size_t)i * TW_ID_LEN, &pt, &len, e)) != 0)
			break;
		for (size_t off = 0; off < len;) {
			ssize_t w = write(pr.proc.in_fd, pt + off, len - off);
			if (w < 0 && errno == EINTR)
				continue;
			if (w < 0) {
				broken = 1; /* pg_restore stopped reading: its status decides */
				break;
			}
			off += (size_t)w;
			*bytes += (uint64_t)w;
		}
		free(pt);
	}
	free(chunks);
	struct tw_err pe = {0};
	int prc = tw_pg_restore_finish(&pr, rc != 0, &pe);
	if (rc == 0 && prc != 0)
		rc = tw_err_set(e, prc, "restoring %s/%s: %s", TW_PG_DIR, name, pe.msg);
	return rc;
}

static int cmd_restore(int argc, char **argv)
{
	if (tw_pitr_wanted(argc, argv)) /* a PostgreSQL physical restore (src/pg) */
		return tw_pitr_restore_cmd(argc, argv);
	if (tw_cli_wants_help(argc, argv)) {
		usage(stdout);
		return 0;
	}
	struct tw_bopts o = {0};
	struct tw_restore_opts ro = {0};
	const char *spec = NULL, *pgurl = NULL, *dump = NULL, *pgbin = NULL;
	int pglist = 0, pgcreate = 0;
	for (int i = 1; i < argc; i++) {
		int c = tw_bopts_parse(&o, argc, argv, &i);
		if (c < 0)
			return TW_EXIT_USAGE;
		if (c)
			continue;
		const char *a = argv[i];
		if (strcmp(a, "--target") == 0 && i + 1 < argc)
			ro.target = argv[++i];
		else if (strcmp(a, "--keep-damaged-names") == 0)
			ro.keep_damaged_names = 1;
		else if (strcmp(a, "--include") == 0 && i + 1 < argc)
			ro.include = argv[++i];
		else if (strcmp(a, "--postgres") == 0 && i + 1 < argc)
			pgurl = argv[++i];
		else if (strcmp(a, "--dump") == 0 && i + 1 < argc)
			dump = argv[++i];
		else if (strcmp(a, "--pg-bin") == 0 && i + 1 < argc)
			pgbin = argv[++i];
		else if (strcmp(a, "--list") == 0 || strcmp(a, "--postgres-list") == 0)
			pglist = 1;
		else if (strcmp(a, "--create") == 0)
			pgcreate = 1;
		else if (strcmp(a, "--threads") == 0 && i + 1 < argc) {
			unsigned long v;
			if (tw_bcli_uint(argv[++i], 64, &v) != 0)
				return TW_EXIT_USAGE;
			ro.threads = (int)v;
		} else if (a[0] != '-' && spec == NULL)
			spec = a;
		else {
			fprintf(stderr, "tapwork restore: unexpected argument %s\n", a);
			return TW_EXIT_USAGE;
		}
	}
	int pgmode = pgurl != NULL || pglist;
	if (spec == NULL || (ro.target == NULL) == !pgmode || (pgcreate && pgurl == NULL)) {
		usage(stderr);
		return TW_EXIT_USAGE;
	}
	struct tw_repo *r;
	int rc = tw_bopts_open(&o, "restore", 0, &r);
	if (rc != 0)
		return rc;
	struct tw_err e = {0};
	struct tw_snapshot **v, *s;
	size_t n;
	struct tw_restore_stats st = {0};
	struct tw_progress pg;
	double t0 = tw_progress_now();
	if (tw_bcli_find_snapshots(r, "restore", &spec, 1, &s, &v, &n) != 0) {
		tw_repo_close(r);
		return TW_EXIT_ERROR;
	}
	int err;
	if (pgmode) {
		uint64_t bytes = 0;
		err = pg_restore_snapshot(r, s, pgurl, dump, pgbin, pglist, pgcreate, &bytes, &e);
		if (err != 0)
			tw_bcli_fail("restore", &e);
		else if (!pglist && o.json)
			printf("{\"type\":\"summary\",\"snapshot_id\":\"%s\",\"postgres\":true,"
			       "\"bytes\":%llu,\"seconds\":%.3f}\n",
			       s->id, (unsigned long long)bytes, tw_progress_now() - t0);
		else if (!pglist && !o.quiet)
			printf("restored the PostgreSQL dump of snapshot %.8s (%.1f MiB) in %.2fs\n",
			       s->id, bytes / 1048576.0, tw_progress_now() - t0);
		tw_repo_free_snapshots(v, n);
		tw_repo_close(r);
		return err ? TW_EXIT_ERROR : TW_EXIT_OK;
	}
	tw_progress_start(&pg, "restore", o.json, o.quiet);
	ro.progress = &pg;
	err = tw_restore_run(r, s, &ro, &st, &e);
	tw_progress_stop(&pg);
	double el = tw_progress_now() - t0;
	if (err != 0)
		tw_bcli_fail("restore", &e);
	if (o.json) {
		for (size_t i = 0; i < st.ndamage; i++) {
			printf("{\"type\":\"damaged_range\",\"path\":");
			json_str(st.damage[i].path);
			printf(",\"offset\":%llu,\"length\":%llu}\n", (unsigned long long)st.damage[i].off,
			       (unsigned long long)st.damage[i].len);
		}
		for (size_t i = 0; i < st.ndamaged_paths; i++) {
			printf("{\"type\":\"damaged_file\",\"path\":");
			json_str(st.damaged_paths[i]);
			printf("}\n");
		}
		printf("{\"type\":\"summary\",\"snapshot_id\":\"%s\",\"files\":%llu,\"dirs\":%llu,"
		       "\"bytes\":%llu,\"errors\":%llu,\"damaged_files\":%llu,\"seconds\":%.3f}\n",
		       s->id, (unsigned long long)st.files, (unsigned long long)st.dirs,
		       (unsigned long long)st.bytes, (unsigned long long)st.errors,
		       (unsigned long long)st.ndamaged_paths, el);
	}
	if (!o.json && !o.quiet)
		printf("%s snapshot %.8s to %s: %llu files, %llu dirs, %.1f MiB, %llu errors, "
		       "%.2fs\n",
		       err ? "incomplete restore of" : "restored", s->id, ro.target, (unsigned long long)st.files, (unsigned long long)st.dirs,
		       st.bytes / 1048576.0, (unsigned long long)st.errors, el);
	if (!o.json && !o.quiet && st.ndamaged_paths) {
		printf("%zu damaged files (their damaged ranges are zeros%s):\n", st.ndamaged_paths,
		       ro.keep_damaged_names ? "" : "; renamed NAME.damaged");
		for (size_t i = 0; i < st.ndamaged_paths; i++)
			printf("  %s\n", st.damaged_paths[i]);
	}
	tw_restore_stats_free(&st);
	tw_repo_free_snapshots(v, n);
	tw_repo_close(r);
	return err ? TW_EXIT_ERROR : TW_EXIT_OK;
}

TW_CLI_COMMAND(restore, "restore", "restore a snapshot into a directory", cmd_restore)
