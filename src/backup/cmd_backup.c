/* cmd_backup.c — `tapwork backup`. */
#include <stdio.h>
#include <stdlib.h>
#include <dirent.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <limits.h>
#include <pthread.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "backup/backup.h"
#include "backup/cmdutil.h"
#include "backup/job.h"
#include "backup/pg.h"
#include "cli/cli.h"
#include "pg/pitr.h"

static void usage(FILE *out)
{
	fprintf(out,
		"usage: tapwork backup -r REPO [--tag T]... [--exclude PATTERN]... [--force] PATH...\n"
		"       tapwork backup -r REPO --postgres URL [--all] [--pg-bin DIR] [PATH...]\n"
		"       tapwork backup --job NAME [-c CONFIG] [--json]\n"
		"       tapwork backup -r REPO --pg-data DIR [--postgres URL]   (see --pg-data --help)\n\n"
		"Back up the given files and directories into a new snapshot. Unchanged files\n"
		"(same inode, size, mtime and ctime as in the previous snapshot of the same\n"
		"paths) are not read again. Exit status: 0 ok, 1 error (no snapshot),\n"
		"3 some files were unreadable but the snapshot was written.\n\n"
		"options:\n"
		"  --tag T                  tag the snapshot (repeatable)\n"
		"  --exclude PATTERN        skip names or paths matching a glob (repeatable)\n"
		"  --force                  re-read every file (ignore the parent snapshot)\n"
		"  --threads N              worker threads (default: number of CPUs)\n"
		"  --time T                 snapshot time: YYYY-MM-DDTHH:MM:SSZ or unix seconds\n"
		"  --postgres URL           add a PostgreSQL database (postgresql://USER@HOST:PORT/DB):\n"
		"                           pg_dump's custom format, stored as postgres/DB.dump\n"
		"                           (repeatable; the password comes from PGPASSWORD or ~/.pgpass)\n"
		"  --all                    with --postgres: globals (postgres/globals.sql) and every\n"
		"                           database of that server\n"
		"  --pg-bin DIR             where pg_dump, pg_dumpall and psql are (default: PATH,\n"
		"                           then /usr/lib/postgresql/15/bin)\n"
		"  --job NAME               run backup job NAME of the config file once, now\n"
		"  -c, --config FILE        config file for --job (default /etc/tapwork/tapwork.yaml)\n" TW_BOPTS_HELP);
}

/* Progress scanner: counts files and bytes ahead of the backup so the
 * status line can show a total and an ETA. Runs only when progress is shown. */
struct scan {
	struct tw_progress *pg;
	char **paths;
	size_t npaths;
	char **excludes;
	size_t nexcludes;
	volatile int stop;
};

static int scan_excluded(struct scan *sc, const char *name, const char *full)
{
	for (size_t i = 0; i < sc->nexcludes; i++)
		if (fnmatch(sc->excludes[i], name, 0) == 0 || fnmatch(sc->excludes[i], full, 0) == 0)
			return 1;
	return 0;
}

static void scan_dir(struct scan *sc, const char *path, int depth)
{
	DIR *d = depth < 512 ? opendir(path) : NULL;
	if (d == NULL)
		return;
	struct dirent *de;
	while (!sc->stop && (de = readdir(d)) != NULL) {
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		char full[PATH_MAX];
		int n = snprintf(full, sizeof full, "%s/%s", path, de->d_name);
		if (n < 0 || (size_t)n >= sizeof full || scan_excluded(sc, de->d_name, full))
			continue;
		struct stat st;
		if (fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) == -1)
			continue;
		if (S_ISDIR(st.st_mode))
			scan_dir(sc, full, depth + 1);
		else if (S_ISREG(st.st_mode)) {
			tw_progress_add(&sc->pg->total_files, 1);
			tw_progress_add(&sc->pg->total_bytes, (uint64_t)st.st_size);
		}
	}
	closedir(d);
}

static void *scan_main(void *arg)
{
	struct scan *sc = arg;
	for (size_t i = 0; i < sc->npaths && !sc->stop; i++) {
		struct stat st;
		if (lstat(sc->paths[i], &st) == -1)
			continue;
		if (S_ISDIR(st.st_mode))
			scan_dir(sc, sc->paths[i], 0);
		else if (S_ISREG(st.st_mode))
			tw_progress_add(&sc->pg->total_bytes, (uint64_t)st.st_size);
	}
	return NULL;
}

static int parse_time(const char *s, int64_t *out)
{
	unsigned long v;
	if (tw_bcli_uint(s, 1UL << 40, &v) == 0) {
		*out = (int64_t)v * 1000000000;
		return 0;
	}
	struct tm tm;
	memset(&tm, 0, sizeof tm);
	const char *end = strptime(s, "%Y-%m-%dT%H:%M:%S", &tm);
	if (end == NULL || (*end != '\0' && strcmp(end, "Z") != 0))
		return -1;
	*out = (int64_t)timegm(&tm) * 1000000000;
	return 0;
}

static int cmd_backup(int argc, char **argv)
{
	if (tw_pitr_wanted(argc, argv)) /* a PostgreSQL physical backup (src/pg) */
		return tw_pitr_backup_cmd(argc, argv);
	if (tw_cli_wants_help(argc, argv)) {
		usage(stdout);
		return 0;
	}
	struct tw_bopts o = {0};
	struct tw_backup_opts bo = {0};
	char **paths = calloc((size_t)argc, sizeof *paths), **tags = calloc((size_t)argc, sizeof *tags),
	     **excl = calloc((size_t)argc, sizeof *excl), **pgurls = calloc((size_t)argc, sizeof *pgurls);
	struct tw_pg_plan **plans = calloc((size_t)argc, sizeof *plans);
	struct tw_backup_stream *streams = NULL;
	size_t npg = 0, nstreams = 0;
	const char *pgbin = NULL, *job = NULL, *config = "/etc/tapwork/tapwork.yaml";
	int pg_all = 0;
	int rc = TW_EXIT_USAGE;
	if (!paths || !tags || !excl || !pgurls || !plans)
		goto done;
	for (int i = 1; i < argc; i++) {
		int c = tw_bopts_parse(&o, argc, argv, &i);
		if (c < 0)
			goto done;
		if (c)
			continue;
		const char *a = argv[i];
		if (strcmp(a, "--tag") == 0 && i + 1 < argc)
			tags[bo.ntags++] = argv[++i];
		else if (strcmp(a, "--exclude") == 0 && i + 1 < argc)
			excl[bo.nexcludes++] = argv[++i];
		else if (strcmp(a, "--force") == 0)
			bo.force = 1;
		else if (strcmp(a, "--postgres") == 0 && i + 1 < argc)
			pgurls[npg++] = argv[++i];
		else if (strcmp(a, "--all") == 0)
			pg_all = 1;
		else if (strcmp(a, "--pg-bin") == 0 && i + 1 < argc)
			pgbin = argv[++i];
		else if (strcmp(a, "--job") == 0 && i + 1 < argc)
			job = argv[++i];
		else if ((strcmp(a, "-c") == 0 || strcmp(a, "--config") == 0) && i + 1 < argc)
			config = argv[++i];
		else if (strcmp(a, "--threads") == 0 && i + 1 < argc) {
			unsigned long v;
			if (tw_bcli_uint(argv[++i], 256, &v) != 0) {
				fprintf(stderr, "tapwork backup: bad --threads\n");
				goto done;
			}
			bo.threads = (int)v;
		} else if (strcmp(a, "--time") == 0 && i + 1 < argc) {
			if (parse_time(argv[++i], &bo.time_ns) != 0) {
				fprintf(stderr, "tapwork backup: bad --time\n");
				goto done;
			}
		} else if (a[0] == '-' && a[1] != '\0') {
			fprintf(stderr, "tapwork backup: unknown option %s\n", a);
			goto done;
		} else
			paths[bo.npaths++] = argv[i];
	}
	if (job != NULL) {
		if (bo.npaths || npg || bo.ntags || bo.nexcludes) {
			fprintf(stderr, "tapwork backup: --job takes its sources from the config file\n");
			goto done;
		}
		rc = tw_job_cli(config, job, o.json, o.quiet);
		goto done;
	}
	if (bo.npaths == 0 && npg == 0) {
		usage(stderr);
		goto done;
	}
	if (pg_all && npg == 0) {
		fprintf(stderr, "tapwork backup: --all needs --postgres URL\n");
		goto done;
	}
	for (size_t k = 0; k < npg; k++) {
		struct tw_err pe = {0};
		if (tw_pg_plan_new(pgurls[k], pg_all, pgbin, &plans[k], &pe) != 0) {
			tw_bcli_fail("backup", &pe);
			rc = TW_EXIT_ERROR;
			goto done;
		}
		size_t n;
		const struct tw_backup_stream *sv = tw_pg_plan_streams(plans[k], &n);
		struct tw_backup_stream *ns = realloc(streams, (nstreams + n + 1) * sizeof *ns);
		if (ns == NULL)
			goto done;
		streams = ns;
		memcpy(streams + nstreams, sv, n * sizeof *sv);
		nstreams += n;
	}
	bo.streams = streams;
	bo.nstreams = nstreams;
	struct tw_repo *r;
	if ((rc = tw_bopts_open(&o, "backup", TW_BOPEN_LOCK | TW_BOPEN_INDEX, &r)) != 0)
		goto done;
	bo.paths = paths;
	bo.tags = tags;
	bo.excludes = excl;
	struct tw_err e = {0};
	struct tw_backup_stats st;
	struct tw_progress pg;
	bo.progress = &pg;
	double t0 = tw_progress_now();
	tw_progress_start(&pg, "backup", o.json, o.quiet);
	struct scan sc = {&pg, paths, bo.npaths, excl, bo.nexcludes, 0};
	pthread_t scanner;
	int scanning = pg.running && pthread_create(&scanner, NULL, scan_main, &sc) == 0;
	int err = tw_backup_run(r, &bo, &st, &e);
	if (scanning) {
		sc.stop = 1;
		pthread_join(scanner, NULL);
	}
	tw_progress_stop(&pg);
	double el = tw_progress_now() - t0;
	tw_repo_close(r);
	if (err != 0) {
		tw_bcli_fail("backup", &e);
		rc = TW_EXIT_ERROR;
		goto done;
	}
	rc = st.errors ? TW_EXIT_PARTIAL : TW_EXIT_OK;
	if (o.json) {
		printf("{\"type\":\"summary\",\"snapshot_id\":\"%s\",\"parent\":\"%s\",\"files\":%llu,"
		       "\"files_unchanged\":%llu,\"dirs\":%llu,\"bytes\":%llu,\"bytes_read\":%llu,"
		       "\"new_blobs\":%llu,\"new_bytes\":%llu,\"stored_bytes\":%llu,\"errors\":%llu,"
		       "\"seconds\":%.3f}\n",
		       st.snapshot_id, st.parent_id, (unsigned long long)st.files,
		       (unsigned long long)st.files_unchanged, (unsigned long long)st.dirs,
		       (unsigned long long)st.bytes, (unsigned long long)st.bytes_read,
		       (unsigned long long)st.new_blobs, (unsigned long long)st.new_bytes,
		       (unsigned long long)st.stored_bytes, (unsigned long long)st.errors, el);
	} else if (!o.quiet) {
		printf("snapshot %.8s saved (%s)\n", st.snapshot_id, st.snapshot_id);
		printf("files: %llu (%llu unchanged), dirs: %llu, %.1f MiB processed, %.1f MiB read, "
		       "%.1f MiB new, %.1f MiB stored, %.2fs\n",
		       (unsigned long long)st.files, (unsigned long long)st.files_unchanged,
		       (unsigned long long)st.dirs, st.bytes / 1048576.0, st.bytes_read / 1048576.0,
		       st.new_bytes / 1048576.0, st.stored_bytes / 1048576.0, el);
		if (st.errors)
			printf("warning: %llu files or directories could not be read\n",
			       (unsigned long long)st.errors);
	}
done:
	for (size_t k = 0; plans && k < npg; k++)
		tw_pg_plan_free(plans[k]);
	free(plans);
	free(streams);
	free(pgurls);
	free(paths);
	free(tags);
	free(excl);
	return rc;
}

TW_CLI_COMMAND(backup, "backup", "back up files and directories into a repository", cmd_backup)
