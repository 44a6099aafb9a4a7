/* cmd_repair.c — `tapwork repair index|snapshots`. */
#include <stdio.h>
#include <string.h>

#include "backup/cmdutil.h"
#include "backup/repair.h"
#include "cli/cli.h"

static void usage(FILE *out)
{
	fprintf(out, "usage: tapwork repair index -r REPO [--dry-run]\n"
		     "       tapwork repair snapshots -r REPO [--forget] [--dry-run]\n\n"
		     "Rebuild the index from the packs: index objects that cannot be read are\n"
		     "replaced by new ones made from the headers of the packs no readable index\n"
		     "lists, each pack verified first (its bytes hash to its name, its sealed\n"
		     "header opens); a damaged pack is reported and left out. Safe to interrupt\n"
		     "and to run beside backups. Then run `tapwork check --read-data`.\n\n"
		     "repair snapshots: a snapshot that references blobs the index does not have\n"
		     "is saved again without what was lost (files with a missing chunk,\n"
		     "directories whose tree is missing), tagged \"repaired\"; the original is kept\n"
		     "unless --forget. Run repair index first.\n"
		     "Exit status: 0 repaired (or nothing to do), 1 failure or damaged packs.\n\noptions:\n"
		     "  --dry-run           verify and report, write and delete nothing\n"
		     "  --forget            (snapshots) delete each original once its repaired copy is saved\n" TW_BOPTS_HELP);
}

/* The repository options, --dry-run, and --forget where `forget` is given. */
static int parse_args(int argc, char **argv, const char *sub, struct tw_bopts *o, int *dry,
		      int *forget)
{
	for (int i = 2; i < argc; i++) {
		int c = tw_bopts_parse(o, argc, argv, &i);
		if (c < 0)
			return -1;
		if (c > 0)
			continue;
		if (strcmp(argv[i], "--dry-run") == 0) {
			*dry = 1;
		} else if (forget && strcmp(argv[i], "--forget") == 0) {
			*forget = 1;
		} else {
			fprintf(stderr, "tapwork repair %s: unknown argument %s\n", sub, argv[i]);
			return -1;
		}
	}
	return 0;
}

static int repair_index(int argc, char **argv)
{
	struct tw_bopts o = {0};
	int dry = 0;
	if (parse_args(argc, argv, "index", &o, &dry, NULL) != 0)
		return TW_EXIT_USAGE;
	struct tw_repo *r;
	int rc = tw_bopts_open(&o, "repair index", TW_BOPEN_LOCK, &r);
	if (rc != 0)
		return rc;
	struct tw_err e = {0};
	struct tw_repair_index_stats st;
	int err = tw_repair_index(r, dry, &st, &e);
	tw_repo_close(r);
	if (err != 0) {
		tw_bcli_fail("repair index", &e);
		return TW_EXIT_ERROR;
	}
	if (o.json)
		printf("{\"type\":\"summary\",\"action\":\"repair_index\",\"dry_run\":%s,\"index_objects\":%llu,"
		       "\"index_damaged\":%llu,\"index_deleted\":%llu,\"index_written\":%llu,\"packs\":%llu,"
		       "\"packs_indexed\":%llu,\"packs_reindexed\":%llu,\"packs_damaged\":%llu,"
		       "\"blobs_reindexed\":%llu}\n",
		       dry ? "true" : "false", (unsigned long long)st.index_objects,
		       (unsigned long long)st.index_damaged, (unsigned long long)st.index_deleted,
		       (unsigned long long)st.index_written, (unsigned long long)st.packs,
		       (unsigned long long)st.packs_indexed, (unsigned long long)st.packs_reindexed,
		       (unsigned long long)st.packs_damaged, (unsigned long long)st.blobs_reindexed);
	else if (!o.quiet)
		printf("%s%llu index objects (%llu damaged, %llu deleted); %llu packs: %llu already indexed, "
		       "%llu re-indexed from their headers (%llu blobs, %llu new index objects), %llu damaged\n",
		       dry ? "dry run: " : "", (unsigned long long)st.index_objects,
		       (unsigned long long)st.index_damaged, (unsigned long long)st.index_deleted,
		       (unsigned long long)st.packs, (unsigned long long)st.packs_indexed,
		       (unsigned long long)st.packs_reindexed, (unsigned long long)st.blobs_reindexed,
		       (unsigned long long)st.index_written, (unsigned long long)st.packs_damaged);
	return st.packs_damaged ? TW_EXIT_ERROR : TW_EXIT_OK;
}

static int repair_snapshots(int argc, char **argv)
{
	struct tw_bopts o = {0};
	int dry = 0, forget = 0;
	if (parse_args(argc, argv, "snapshots", &o, &dry, &forget) != 0)
		return TW_EXIT_USAGE;
	struct tw_repo *r;
	int rc = tw_bopts_open(&o, "repair snapshots", TW_BOPEN_EXCL | TW_BOPEN_INDEX, &r);
	if (rc != 0)
		return rc;
	struct tw_err e = {0};
	struct tw_repair_snap_stats st;
	int err = tw_repair_snapshots(r, forget, dry, &st, &e);
	tw_repo_close(r);
	if (err != 0) {
		tw_bcli_fail("repair snapshots", &e);
		return TW_EXIT_ERROR;
	}
	if (o.json)
		printf("{\"type\":\"summary\",\"action\":\"repair_snapshots\",\"dry_run\":%s,\"snapshots\":%llu,"
		       "\"repaired\":%llu,\"unrepairable\":%llu,\"forgotten\":%llu,\"files_dropped\":%llu,"
		       "\"dirs_dropped\":%llu}\n",
		       dry ? "true" : "false", (unsigned long long)st.snapshots, (unsigned long long)st.repaired,
		       (unsigned long long)st.unrepairable, (unsigned long long)st.forgotten,
		       (unsigned long long)st.files_dropped, (unsigned long long)st.dirs_dropped);
	else if (!o.quiet)
		printf("%s%llu snapshots: %llu repaired (%llu files, %llu directories dropped), %llu unrepairable, "
		       "%llu originals forgotten\n",
		       dry ? "dry run: " : "", (unsigned long long)st.snapshots, (unsigned long long)st.repaired,
		       (unsigned long long)st.files_dropped, (unsigned long long)st.dirs_dropped,
		       (unsigned long long)st.unrepairable, (unsigned long long)st.forgotten);
	return st.unrepairable ? TW_EXIT_ERROR : TW_EXIT_OK;
}

static int cmd_repair(int argc, char **argv)
{
	if (argc < 2 || tw_cli_wants_help(argc, argv)) {
		usage(argc < 2 ? stderr : stdout);
		return argc < 2 ? TW_EXIT_USAGE : 0;
	}
	if (strcmp(argv[1], "index") == 0)
		return repair_index(argc, argv);
	if (strcmp(argv[1], "snapshots") == 0)
		return repair_snapshots(argc, argv);
	fprintf(stderr, "tapwork repair: unknown subcommand %s (index, snapshots)\n", argv[1]);
	return TW_EXIT_USAGE;
}

TW_CLI_COMMAND(repair, "repair", "repair a damaged repository (index from the packs; snapshots without lost files)", cmd_repair)
