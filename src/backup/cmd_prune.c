/* cmd_prune.c — `tapwork prune`. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backup/cmdutil.h"
#include "backup/leftovers.h"
#include "backup/prune.h"
#include "cli/cli.h"
#include "pg/pitr.h"

static void say_wal(void *arg, const char *name, uint64_t size)
{
	printf("%s WAL %s (%.1f KiB)\n", *(int *)arg ? "would delete" : "deleted", name,
	       size / 1024.0);
}

int tw_bcli_prune(struct tw_repo *r, const struct tw_bopts *o, const struct tw_prune_opts *po)
{
	struct tw_err e = {0};
	struct tw_prune_stats st;
	struct tw_progress pg;
	struct tw_prune_opts opts = *po;
	double t0 = tw_progress_now();
	tw_progress_start(&pg, "prune", o->json, o->quiet);
	opts.progress = &pg;
	int err = tw_prune_run(r, &opts, &st, &e);
	struct tw_leftover_stats ls = {0};
	if (err == 0) /* temporary objects of interrupted runs, once the lock lease is over */
		err = tw_leftovers_run(r, TW_LOCK_LEASE_S, po->dry_run, NULL, NULL, &ls, &e);
	uint64_t wal_files = 0, wal_bytes = 0;
	if (err == 0) /* then the WAL archive: what kept PostgreSQL snapshots need (src/pg) */
	{
		int dry = po->dry_run, say = dry && !o->json && !o->quiet;
		err = tw_pitr_prune_wal_ex(r, dry, po->forget_ids, po->nforget,
		                           say ? say_wal : NULL, &dry, &wal_files, &wal_bytes, &e);
	}
	tw_progress_stop(&pg);
	double el = tw_progress_now() - t0;
	if (err != 0) {
		tw_bcli_fail("prune", &e);
		return TW_EXIT_ERROR;
	}
	if (o->json)
		printf("{\"type\":\"summary\",\"action\":\"prune\",\"dry_run\":%s,\"packs\":%llu,"
		       "\"packs_deleted\":%llu,\"packs_rewritten\":%llu,\"packs_unindexed\":%llu,"
		       "\"blobs_live\":%llu,\"blobs_repacked\":%llu,\"bytes_freed\":%llu,"
		       "\"index_written\":%llu,\"index_deleted\":%llu,\"wal_deleted\":%llu,"
		       "\"wal_bytes_freed\":%llu,\"tmp_deleted\":%llu,\"tmp_bytes_freed\":%llu,"
		       "\"tmp_kept\":%llu,\"seconds\":%.3f}\n",
		       po->dry_run ? "true" : "false", (unsigned long long)st.packs,
		       (unsigned long long)st.packs_deleted, (unsigned long long)st.packs_rewritten,
		       (unsigned long long)st.packs_unindexed, (unsigned long long)st.blobs_live,
		       (unsigned long long)st.blobs_repacked, (unsigned long long)st.bytes_freed,
		       (unsigned long long)st.index_written, (unsigned long long)st.index_deleted,
		       (unsigned long long)wal_files, (unsigned long long)wal_bytes, (unsigned long long)ls.deleted,
		       (unsigned long long)ls.bytes_deleted, (unsigned long long)(ls.found - ls.deleted), el);
	else if (!o->quiet)
		printf("%s%llu packs: %llu deleted, %llu rewritten (%llu blobs), %llu unindexed "
		       "removed; %.1f MiB freed; %.2fs\n",
		       po->dry_run ? "would prune: " : "", (unsigned long long)st.packs,
		       (unsigned long long)st.packs_deleted, (unsigned long long)st.packs_rewritten,
		       (unsigned long long)st.blobs_repacked, (unsigned long long)st.packs_unindexed,
		       st.bytes_freed / 1048576.0, el);
	if (!o->json && !o->quiet && ls.found)
		printf("%s%llu temporary objects of interrupted runs deleted (%.1f MiB); %llu kept (written "
		       "less than %d min ago)\n",
		       po->dry_run ? "would prune: " : "", (unsigned long long)ls.deleted, ls.bytes_deleted / 1048576.0,
		       (unsigned long long)(ls.found - ls.deleted), TW_LOCK_LEASE_S / 60);
	if (!o->json && !o->quiet && wal_files)
		printf("%s%llu WAL files no kept snapshot needs deleted (%.1f MiB)\n",
		       po->dry_run ? "would prune: " : "", (unsigned long long)wal_files,
		       wal_bytes / 1048576.0);
	return TW_EXIT_OK;
}

static int cmd_prune(int argc, char **argv)
{
	if (tw_cli_wants_help(argc, argv)) {
		printf("usage: tapwork prune -r REPO [--max-unused N%%] [--dry-run]\n\n"
		       "Delete packs no snapshot needs and rewrite packs that are mostly garbage\n"
		       "(more than N%% unused bytes, default 20). Takes an exclusive lock.\n\n"
		       "options:\n" TW_BOPTS_HELP);
		return 0;
	}
	struct tw_bopts o = {0};
	struct tw_prune_opts po = {0};
	po.max_unused_percent = 20;
	for (int i = 1; i < argc; i++) {
		int c = tw_bopts_parse(&o, argc, argv, &i);
		if (c < 0)
			return TW_EXIT_USAGE;
		if (c)
			continue;
		if (strcmp(argv[i], "--dry-run") == 0 || strcmp(argv[i], "-n") == 0)
			po.dry_run = 1;
		else if (strcmp(argv[i], "--max-unused") == 0 && i + 1 < argc) {
			if (tw_bcli_percent(argv[++i], &po.max_unused_percent) != 0)
				return TW_EXIT_USAGE;
		} else {
			fprintf(stderr, "tapwork prune: unknown argument %s\n", argv[i]);
			return TW_EXIT_USAGE;
		}
	}
	struct tw_repo *r;
	int rc = tw_bopts_open(&o, "prune", TW_BOPEN_EXCL, &r);
	if (rc != 0)
		return rc;
	rc = tw_bcli_prune(r, &o, &po);
	tw_repo_close(r);
	return rc;
}

TW_CLI_COMMAND(prune, "prune", "remove data no snapshot references", cmd_prune)
