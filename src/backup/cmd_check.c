/* cmd_check.c — `tapwork check`. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backup/check.h"
#include "backup/cmdutil.h"
#include "backup/leftovers.h"
#include "cli/cli.h"
#include "core/log.h"

static void usage(FILE *out)
{
	fprintf(out, "usage: tapwork check -r REPO [--read-data | --read-data-subset N%%]\n\n"
		     "Verify the repository structure: index, pack headers, every snapshot's\n"
		     "trees and that every referenced blob is indexed. --read-data also reads\n"
		     "every pack, decrypts and re-hashes every blob; --read-data-subset reads a\n"
		     "random N%% of the packs. Damage is reported with the snapshots and files\n"
		     "it affects. Exit status: 0 sound, 1 errors found.\n\noptions:\n" TW_BOPTS_HELP);
}

static void print_leftover(void *arg, const char *id, uint64_t size, uint64_t age_s, int deleted)
{
	const struct tw_bopts *o = arg;
	(void)deleted;
	if (o->json)
		printf("{\"type\":\"temporary_object\",\"id\":\"%s\",\"size\":%llu,\"age_seconds\":%llu}\n", id,
		       (unsigned long long)size, (unsigned long long)age_s);
	else if (!o->quiet)
		printf("temporary object %s: %.1f MiB, last written %llus ago\n", id, size / 1048576.0,
		       (unsigned long long)age_s);
}

static int cmd_check(int argc, char **argv)
{
	if (tw_cli_wants_help(argc, argv)) {
		usage(stdout);
		return 0;
	}
	struct tw_bopts o = {0};
	struct tw_check_opts co = {0};
	for (int i = 1; i < argc; i++) {
		int c = tw_bopts_parse(&o, argc, argv, &i);
		if (c < 0)
			return TW_EXIT_USAGE;
		if (c)
			continue;
		if (strcmp(argv[i], "--read-data") == 0) {
			co.read_data = 1;
			co.read_percent = 100;
		} else if (strcmp(argv[i], "--read-data-subset") == 0 && i + 1 < argc) {
			if (tw_bcli_percent(argv[++i], &co.read_percent) != 0) {
				fprintf(stderr, "tapwork check: bad --read-data-subset (want N%%)\n");
				return TW_EXIT_USAGE;
			}
			co.read_data = 1;
		} else {
			fprintf(stderr, "tapwork check: unknown argument %s\n", argv[i]);
			return TW_EXIT_USAGE;
		}
	}
	struct tw_repo *r;
	int rc = tw_bopts_open(&o, "check", TW_BOPEN_LOCK, &r);
	if (rc != 0)
		return rc;
	struct tw_err e = {0};
	struct tw_check_stats st;
	struct tw_progress pg;
	double t0 = tw_progress_now();
	tw_progress_start(&pg, "check", o.json, o.quiet);
	co.progress = &pg;
	int err = tw_check_run(r, &co, &st, &e);
	tw_progress_stop(&pg);
	double el = tw_progress_now() - t0;
	struct tw_leftover_stats ls = {0};
	if (err == 0 || err == TW_ECORRUPT) {
		/* temporary objects of interrupted runs: listed, not errors */
		struct tw_err le = {0};
		if (tw_leftovers_run(r, 0, 1, print_leftover, &o, &ls, &le) != 0)
			tw_warn("could not list temporary objects: %s", le.msg);
	}
	tw_repo_close(r);
	if (err != 0 && err != TW_ECORRUPT) {
		tw_bcli_fail("check", &e);
		return TW_EXIT_ERROR;
	}
	if (o.json)
		printf("{\"type\":\"summary\",\"ok\":%s,\"errors\":%llu,\"packs\":%llu,\"packs_read\":%llu,"
		       "\"blobs_checked\":%llu,\"snapshots\":%llu,\"damaged_files\":%llu,"
		       "\"unreferenced_packs\":%llu,\"index_damaged\":%llu,\"tmp_objects\":%llu,\"tmp_bytes\":%llu,\"seconds\":%.3f}\n",
		       err ? "false" : "true", (unsigned long long)st.errors,
		       (unsigned long long)st.packs, (unsigned long long)st.packs_read,
		       (unsigned long long)st.blobs_checked, (unsigned long long)st.snapshots,
		       (unsigned long long)st.damaged_files, (unsigned long long)st.unreferenced_packs,
		       (unsigned long long)st.index_damaged, (unsigned long long)ls.found, (unsigned long long)ls.bytes, el);
	else if (!o.quiet) {
		printf("checked %llu packs (%llu read, %llu blobs verified), %llu snapshots in %.2fs\n",
		       (unsigned long long)st.packs, (unsigned long long)st.packs_read,
		       (unsigned long long)st.blobs_checked, (unsigned long long)st.snapshots, el);
		if (st.unreferenced_packs)
			printf("%llu unreferenced packs (left by interrupted runs; prune removes them)\n",
			       (unsigned long long)st.unreferenced_packs);
		if (ls.found)
			printf("%llu temporary objects (%.1f MiB) left by interrupted runs; prune deletes "
			       "those not written for %d min (the lock lease)\n",
			       (unsigned long long)ls.found, ls.bytes / 1048576.0, TW_LOCK_LEASE_S / 60);
		if (st.index_damaged)
			printf("advice: %llu index objects are damaged; `tapwork repair index` rebuilds the "
			       "index from the pack headers, then run `tapwork check --read-data` again\n",
			       (unsigned long long)st.index_damaged);
		printf(err ? "errors found: %llu\n" : "no errors were found\n",
		       (unsigned long long)st.errors);
	}
	return err ? TW_EXIT_ERROR : TW_EXIT_OK;
}

TW_CLI_COMMAND(check, "check", "verify the repository (optionally reading all data)", cmd_check)
