/* cmd_pg.c — `tapwork pg SUBCOMMAND`: the commands PostgreSQL runs
 * (archive-push as archive_command, archive-get as restore_command) and
 * the checks of the WAL archive (check, verify). */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "backup/cmdutil.h"
#include "cli/cli.h"
#include "conf/config.h"
#include "pg/archive.h"
#include "pg/keycache.h"
#include "pg/pitr.h"
#include "pg/spool.h"
#include "pg/wal.h"
#include "pg/walhdr.h"

static void usage(FILE *out)
{
	fprintf(out,
	        "usage: tapwork pg archive-push [-r REPO] [--pg-data DIR] PATH\n"
	        "       tapwork pg archive-get [-r REPO] [--pg-data DIR] [--prefetch K] WALFILE DEST\n"
	        "       tapwork pg spool-clear [--pg-data DIR]\n"
	        "       tapwork pg check -r REPO --pg-data DIR [--postgres URL] [--timeout SECS]\n"
	        "       (-c CONFIG --job NAME instead of -r: the job's repository and password;\n"
	        "       for check also the job's pg_data directory and connection)\n"
	        "       tapwork pg verify -r REPO [--read-data]\n\n"
	        "archive-push stores one WAL file in the repository's WAL archive; use it as\n"
	        "  archive_command = 'tapwork pg archive-push -r REPO %%p'\n"
	        "Pushing a file that is archived already with the same content succeeds; with\n"
	        "other content it fails and the archived file is kept.\n"
	        "archive-get writes an archived WAL file to DEST (through a temporary file and a\n"
	        "rename); exit status 1 when it is not archived (recovery ends there), 126 on\n"
	        "any other failure (PostgreSQL stops instead of ending recovery early). Use it as\n"
	        "  restore_command = 'tapwork pg archive-get -r REPO %%f %%p'\n"
	        "`tapwork restore --pg-data` writes that line itself. While the data directory\n"
	        "is in recovery (recovery.signal or standby.signal), serving segment N leaves a\n"
	        "background fetch of the next K segments (--prefetch, default %d, 0 = off)\n"
	        "into DIR/" TW_PGSPOOL_DIR "/, so the next calls are a rename.\n"
	        "spool-clear stops that and removes the directory (restore writes it as\n"
	        "recovery_end_command).\n"
	        "check switches to a new WAL segment and waits until it is archived.\n"
	        "verify checks that the WAL archive is continuous on every timeline from the\n"
	        "oldest PostgreSQL snapshot on, following .history files, and that every\n"
	        "snapshot's WAL is there; --read-data also reads and authenticates every file.\n\n"
	        "options:\n"
	        "  --pg-data DIR            the data directory (default: the current directory,\n"
	        "                           where PostgreSQL runs these commands); the cluster's\n"
	        "                           system identifier is read from "
	        "DIR/global/pg_control\n" TW_BOPTS_HELP,
	        TW_PGSPOOL_DEFAULT);
}

/* Map the file read-only (MAP_POPULATE: one pass over the page cache, no
 * copy); *n may be 0 (then *out is NULL). Unmap with munmap(*out, *n). */
static int map_file(const char *path, uint8_t **out, size_t *n, struct tw_err *e)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	struct stat st;
	if (fd == -1 || fstat(fd, &st) == -1 || !S_ISREG(st.st_mode)) {
		int rc = tw_err_set(e, TW_ENOENT, "%s: %s", path,
		                    fd == -1 || errno ? strerror(errno) : "not a file");
		if (fd != -1)
			close(fd);
		return rc;
	}
	if ((uint64_t)st.st_size > TW_PGARCH_MAX) {
		close(fd);
		return tw_err_set(e, TW_ELIMIT, "%s: too large", path);
	}
	*n = (size_t)st.st_size;
	*out = NULL;
	if (*n > 0) {
		void *m = mmap(NULL, *n, PROT_READ, MAP_PRIVATE | MAP_POPULATE, fd, 0);
		if (m == MAP_FAILED) {
			int rc = tw_err_set(e, TW_EIO, "mmap %s: %s", path, strerror(errno));
			close(fd);
			return rc;
		}
		*out = m;
	}
	close(fd);
	return 0;
}

static const char *base_name(const char *p)
{
	const char *s = strrchr(p, '/');
	return s ? s + 1 : p;
}

static int archive_push(int argc, char **argv)
{
	struct tw_bopts o = {0};
	const char *pgdata = ".", *path = NULL;
	for (int i = 1; i < argc; i++) {
		int c = tw_bopts_parse(&o, argc, argv, &i);
		if (c < 0)
			return TW_EXIT_USAGE;
		if (c)
			continue;
		if (strcmp(argv[i], "--pg-data") == 0 && i + 1 < argc)
			pgdata = argv[++i];
		else if (argv[i][0] != '-' && path == NULL)
			path = argv[i];
		else {
			fprintf(stderr, "tapwork pg archive-push: unexpected argument %s\n",
			        argv[i]);
			return TW_EXIT_USAGE;
		}
	}
	if (path == NULL) {
		usage(stderr);
		return TW_EXIT_USAGE;
	}
	struct tw_err e = {0};
	uint64_t sysid;
	uint8_t *data = NULL;
	size_t n = 0;
	const char *wal = base_name(path);
	if (tw_pgwal_classify(wal, strlen(wal)) == TW_PGWAL_BAD) {
		fprintf(stderr, "tapwork pg archive-push: '%s' is not a WAL file name\n", wal);
		return TW_EXIT_USAGE;
	}
	if (tw_pgarch_sysid(pgdata, &sysid, &e) != 0 || map_file(path, &data, &n, &e) != 0) {
		tw_bcli_fail("pg archive-push", &e);
		return TW_EXIT_ERROR;
	}
	/* a segment names its database system and WAL format in its first page */
	enum tw_pgwal_kind kind = tw_pgwal_classify(wal, strlen(wal));
	struct tw_pgwalhdr h;
	int segment = kind == TW_PGWAL_SEGMENT || kind == TW_PGWAL_PARTIAL, err = 0;
	if (segment && tw_pgwalhdr_parse(data, n, &h, &e) != 0)
		err = tw_err_wrap(&e, "%s is not a WAL segment", path);
	else if (segment && h.sysid != sysid)
		err = tw_err_set(&e, TW_EINVAL,
		                 "WAL %s is from database system %llu, but the data directory %s "
		                 "is database system %llu (global/pg_control): run archive-push in "
		                 "the data directory of the cluster that wrote it (--pg-data); not "
		                 "archived",
		                 wal, (unsigned long long)h.sysid, pgdata, (unsigned long long)sysid);
	if (err != 0) {
		if (data != NULL)
			munmap(data, n);
		tw_bcli_fail("pg archive-push", &e);
		return TW_EXIT_ERROR;
	}
	struct tw_repo *r;
	int rc = tw_pgkc_open(&o, "pg archive-push", 0, &r);
	if (rc != 0) {
		if (data != NULL)
			munmap(data, n);
		return rc;
	}
	int existed = 0, created = 0;
	static const uint8_t empty[1];
	if (segment) {
		struct tw_pgreg want = {.sysid = sysid, .magic = h.magic, .seg_size = h.seg_size}, got;
		err = tw_pgarch_register(r, &want, 1, &got, &created, &e);
		if (err == 0)
			err = tw_pgreg_check(&got, &h, wal, &e);
	}
	if (err == 0)
		err = tw_pgarch_push(r, sysid, wal, data ? data : empty, n, &existed, &e);
	if (data != NULL)
		munmap(data, n);
	tw_repo_close(r);
	if (err != 0) {
		tw_bcli_fail("pg archive-push", &e);
		return TW_EXIT_ERROR;
	}
	if (existed && !o.quiet)
		fprintf(stderr, "tapwork pg archive-push: %s was archived already (same content)\n",
		        wal);
	return TW_EXIT_OK;
}

/* archive-get's exit status for anything but "not archived": PostgreSQL
 * treats an exit status above 125 as fatal and stops, where any other
 * failure would end recovery early, as if the archive had no more WAL. */
#define EXIT_GET_FATAL 126

static int archive_get(int argc, char **argv)
{
	struct tw_bopts o = {0};
	const char *pgdata = ".", *args[2] = {NULL, NULL};
	int na = 0;
	unsigned long k = TW_PGSPOOL_DEFAULT;
	for (int i = 1; i < argc; i++) {
		int c = tw_bopts_parse(&o, argc, argv, &i);
		if (c < 0)
			return EXIT_GET_FATAL;
		if (c)
			continue;
		if (strcmp(argv[i], "--pg-data") == 0 && i + 1 < argc)
			pgdata = argv[++i];
		else if (strcmp(argv[i], "--prefetch") == 0 && i + 1 < argc) {
			if (tw_bcli_uint(argv[++i], TW_PGSPOOL_MAX, &k) != 0) {
				fprintf(stderr, "tapwork pg archive-get: --prefetch: 0..%d\n",
				        TW_PGSPOOL_MAX);
				return EXIT_GET_FATAL;
			}
		}
		else if (argv[i][0] != '-' && na < 2)
			args[na++] = argv[i];
		else {
			fprintf(stderr, "tapwork pg archive-get: unexpected argument %s\n",
			        argv[i]);
			return EXIT_GET_FATAL;
		}
	}
	if (na != 2) {
		usage(stderr);
		return EXIT_GET_FATAL;
	}
	struct tw_err e = {0};
	uint64_t sysid;
	if (tw_pgarch_sysid(pgdata, &sysid, &e) != 0) {
		tw_bcli_fail("pg archive-get", &e);
		return EXIT_GET_FATAL;
	}
	struct tw_pgspool sp;
	tw_pgspool_open(&sp, pgdata, sysid, args[0], (unsigned)k);
	if (tw_pgspool_take(&sp, args[0], args[1])) {
		/* fetched ahead by the prefetcher (verified then) */
		tw_pgspool_ahead(&sp, &o, args[1]);
		tw_pgspool_close(&sp);
		return TW_EXIT_OK;
	}
	struct tw_repo *r;
	if (tw_pgkc_open(&o, "pg archive-get", 0, &r) != 0) {
		tw_pgspool_close(&sp);
		return EXIT_GET_FATAL;
	}
	/* into DEST.tapwork-tmp, then renamed: PostgreSQL never sees a partial
	 * file at %p. Not fsynced: %p is PostgreSQL's scratch file, deleted
	 * before every restore_command, and fsynced by PostgreSQL itself when it
	 * keeps it (a standby's durable_rename). */
	char tmp[4200];
	int l = snprintf(tmp, sizeof tmp, "%s.tapwork-tmp", args[1]);
	int fd = l > 0 && (size_t)l < sizeof tmp
	             ? open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600)
	             : -1;
	int err = fd == -1 ? tw_err_set(&e, TW_EIO, "create %s: %s", tmp, strerror(errno)) : 0;
	uint64_t n = 0;
	if (err == 0)
		err = tw_pgarch_get_fd(r, sysid, args[0], fd, &n, NULL, &e);
	tw_repo_close(r);
	if (fd != -1 && close(fd) != 0 && err == 0)
		err = tw_err_set(&e, TW_EIO, "write %s: %s", tmp, strerror(errno));
	if (err == 0 && rename(tmp, args[1]) == -1)
		err = tw_err_set(&e, TW_EIO, "rename to %s: %s", args[1], strerror(errno));
	if (err != 0 && fd != -1)
		unlink(tmp);
	if (err == TW_ENOENT) {
		tw_pgspool_close(&sp);
		/* the normal end of recovery: PostgreSQL asks for the next file */
		if (!o.quiet)
			fprintf(stderr, "tapwork pg archive-get: %s is not archived\n", args[0]);
		return TW_EXIT_ERROR;
	}
	if (err != 0) {
		tw_pgspool_close(&sp);
		tw_bcli_fail("pg archive-get", &e);
		return EXIT_GET_FATAL;
	}
	tw_pgspool_ahead(&sp, &o, args[1]);
	tw_pgspool_close(&sp);
	return TW_EXIT_OK;
}

/* recovery_end_command of a restored cluster: the prefetch spool goes. */
static int spool_clear(int argc, char **argv)
{
	const char *pgdata = ".";
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--pg-data") == 0 && i + 1 < argc)
			pgdata = argv[++i];
		else {
			fprintf(stderr, "tapwork pg spool-clear: unexpected argument %s\n", argv[i]);
			return TW_EXIT_USAGE;
		}
	}
	struct tw_err e = {0};
	if (tw_pgspool_clear(pgdata, &e) != 0) {
		tw_bcli_fail("pg spool-clear", &e);
		return TW_EXIT_ERROR;
	}
	return TW_EXIT_OK;
}

/* -c CONFIG --job NAME (anywhere after the subcommand): the repository and
 * password file of backup job NAME, unless -r/--password-file say otherwise.
 * Consumed from argv; *cfg keeps the strings alive. 0, or an exit code. */
static int job_options(int *argc, char **argv, struct tw_config **cfg,
                       const struct tw_conf_backup_job **jobp)
{
	const char *config = "/etc/tapwork/tapwork.yaml", *job = NULL;
	int k = 1, given = 0;
	for (int i = 1; i < *argc; i++) {
		const char *a = argv[i];
		if ((strcmp(a, "-c") == 0 || strcmp(a, "--config") == 0) && i + 1 < *argc) {
			config = argv[++i];
			given = 1;
		} else if (strcmp(a, "--job") == 0 && i + 1 < *argc)
			job = argv[++i];
		else
			argv[k++] = argv[i];
	}
	*argc = k;
	argv[k] = NULL;
	if (job == NULL) {
		if (given) {
			fprintf(stderr, "tapwork pg: -c CONFIG needs --job NAME\n");
			return TW_EXIT_USAGE;
		}
		return 0;
	}
	struct tw_err e = {0};
	if (tw_config_load_file(config, cfg, &e) != 0) {
		fprintf(stderr, "tapwork pg: %s\n", e.msg);
		return TW_EXIT_ERROR;
	}
	for (size_t i = 0; (*cfg)->has_backup && i < (*cfg)->backup.njobs; i++) {
		const struct tw_conf_backup_job *j = &(*cfg)->backup.jobs[i];
		if (strcmp(j->name, job) != 0)
			continue;
		*jobp = j;
		/* as the job's defaults: -r and --password-file still win */
		if (j->repository != NULL)
			setenv("TAPWORK_REPOSITORY", j->repository, 1);
		if (j->password_file != NULL) {
			unsetenv("TAPWORK_PASSWORD");
			setenv("TAPWORK_PASSWORD_FILE", j->password_file, 1);
		}
		return 0;
	}
	fprintf(stderr, "tapwork pg: no job \"%s\" in %s\n", job, config);
	return TW_EXIT_USAGE;
}

static int cmd_pg(int argc, char **argv)
{
	if (argc < 2 || strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0) {
		usage(argc < 2 ? stderr : stdout);
		return argc < 2 ? TW_EXIT_USAGE : 0;
	}
	if (tw_cli_wants_help(argc - 1, argv + 1)) {
		usage(stdout);
		return 0;
	}
	const char *sub = argv[1];
	int (*run)(int, char **) = NULL;
	if (strcmp(sub, "archive-push") == 0)
		run = archive_push;
	else if (strcmp(sub, "archive-get") == 0)
		run = archive_get;
	else if (strcmp(sub, "spool-clear") == 0)
		run = spool_clear;
	else if (strcmp(sub, "check") == 0)
		run = tw_pitr_check_cmd;
	else if (strcmp(sub, "verify") == 0)
		run = tw_pitr_verify_cmd;
	else {
		fprintf(stderr, "tapwork pg: unknown subcommand '%s'\n", sub);
		usage(stderr);
		return TW_EXIT_USAGE;
	}
	struct tw_config *cfg = NULL;
	const struct tw_conf_backup_job *job = NULL;
	int sargc = argc - 1, rc = job_options(&sargc, argv + 1, &cfg, &job);
	if (rc != 0) {
		tw_config_free(cfg);
		/* archive-get: any failure but "not archived" must stop PostgreSQL */
		return run == archive_get ? EXIT_GET_FATAL : rc;
	}
	/* check of a job with a pg_data source: its directory and connection are
	 * the defaults (given first: --pg-data/--postgres on the line still win) */
	char **av = NULL;
	if (run == tw_pitr_check_cmd && job != NULL && job->nsources == 1 &&
	    job->sources[0].has_pg_data) {
		const struct tw_conf_pg_data *pd = &job->sources[0].pg_data;
		int k = 0;
		if ((av = calloc((size_t)sargc + 6, sizeof *av)) == NULL) {
			tw_config_free(cfg);
			return TW_EXIT_ERROR;
		}
		av[k++] = argv[1];
		av[k++] = "--pg-data";
		av[k++] = pd->dir;
		if (pd->postgres != NULL) {
			av[k++] = "--postgres";
			av[k++] = pd->postgres;
		}
		for (int i = 1; i < sargc; i++)
			av[k++] = argv[1 + i];
		sargc = k;
	}
	rc = run(sargc, av ? av : argv + 1);
	free(av);
	tw_config_free(cfg);
	return rc;
}

TW_CLI_COMMAND(pg, "pg", "PostgreSQL WAL archive: archive-push, archive-get, check, verify", cmd_pg)
