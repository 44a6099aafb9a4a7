/* cmd_restore.c — `tapwork restore`. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backup/cmdutil.h"
#include "backup/restore.h"
#include "cli/cli.h"

static void usage(FILE *out)
{
	fprintf(out, "usage: tapwork restore -r REPO SNAPSHOT --target DIR [--include PATH]\n\n"
		     "Restore a snapshot (\"latest\" or an ID prefix) into DIR. Every blob is\n"
		     "verified before it is written; nothing is written outside DIR.\n"
		     "--include PATH restores only PATH (as shown by `tapwork ls`).\n"
		     "Exit status: 0 ok, 1 error or damaged data.\n\noptions:\n"
		     "  --target DIR             where to restore (created if missing)\n"
		     "  --include PATH           restore only this file or directory\n"
		     "  --threads N              writer threads (default: number of CPUs)\n" TW_BOPTS_HELP);
}

static int cmd_restore(int argc, char **argv)
{
	if (tw_cli_wants_help(argc, argv)) {
		usage(stdout);
		return 0;
	}
	struct tw_bopts o = {0};
	struct tw_restore_opts ro = {0};
	const char *spec = NULL;
	for (int i = 1; i < argc; i++) {
		int c = tw_bopts_parse(&o, argc, argv, &i);
		if (c < 0)
			return TW_EXIT_USAGE;
		if (c)
			continue;
		const char *a = argv[i];
		if (strcmp(a, "--target") == 0 && i + 1 < argc)
			ro.target = argv[++i];
		else if (strcmp(a, "--include") == 0 && i + 1 < argc)
			ro.include = argv[++i];
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
	if (spec == NULL || ro.target == NULL) {
		usage(stderr);
		return TW_EXIT_USAGE;
	}
	tw_bopts_env(&o);
	struct tw_repo *r;
	int rc = tw_bopts_open(&o, &r);
	if (rc != 0)
		return rc;
	struct tw_err e = {0};
	struct tw_snapshot **v = NULL, *s = NULL;
	size_t n = 0;
	struct tw_restore_stats st = {0};
	struct tw_progress pg;
	double t0 = tw_progress_now();
	int err = tw_repo_load_index(r, &e);
	if (err == 0)
		err = tw_repo_list_snapshots(r, &v, &n, &e);
	if (err == 0)
		err = tw_repo_find_snapshot(v, n, spec, &s, &e);
	if (err == 0) {
		tw_progress_start(&pg, "restore", o.json, o.quiet);
		ro.progress = &pg;
		err = tw_restore_run(r, s, &ro, &st, &e);
		tw_progress_stop(&pg);
	}
	double el = tw_progress_now() - t0;
	if (err != 0)
		tw_bcli_fail("restore", &e);
	if (s != NULL && o.json)
		printf("{\"type\":\"summary\",\"snapshot_id\":\"%s\",\"files\":%llu,\"dirs\":%llu,"
		       "\"bytes\":%llu,\"errors\":%llu,\"seconds\":%.3f}\n",
		       s->id, (unsigned long long)st.files, (unsigned long long)st.dirs,
		       (unsigned long long)st.bytes, (unsigned long long)st.errors, el);
	else if (s != NULL && !o.quiet)
		printf("restored snapshot %.8s to %s: %llu files, %llu dirs, %.1f MiB, %llu errors, "
		       "%.2fs\n",
		       s->id, ro.target, (unsigned long long)st.files, (unsigned long long)st.dirs,
		       st.bytes / 1048576.0, (unsigned long long)st.errors, el);
	tw_repo_free_snapshots(v, n);
	tw_repo_close(r);
	return err ? TW_EXIT_ERROR : TW_EXIT_OK;
}

TW_CLI_COMMAND(restore, "restore", "restore a snapshot into a directory", cmd_restore)
