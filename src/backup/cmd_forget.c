/* cmd_forget.c — `tapwork forget`: apply retention rules. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backup/cmdutil.h"
#include "backup/prune.h"
#include "backup/retention.h"
#include "cli/cli.h"

static void usage(FILE *out)
{
	fprintf(out,
		"usage: tapwork forget -r REPO [--keep-last N] [--keep-hourly N] [--keep-daily N]\n"
		"                      [--keep-weekly N] [--keep-monthly N] [--keep-yearly N]\n"
		"                      [--keep-tag T]... [--prune] [--dry-run]\n\n"
		"Remove snapshots not kept by any rule (restic semantics, UTC calendar; ISO\n"
		"weeks). Snapshots are grouped by host and paths; rules apply per group.\n"
		"N = -1 means unlimited. --prune runs prune afterwards.\n\noptions:\n" TW_BOPTS_HELP);
}

static int same_group(const struct tw_snapshot *a, const struct tw_snapshot *b)
{
	if (strcmp(a->hostname, b->hostname) != 0 || a->npaths != b->npaths)
		return 0;
	for (size_t i = 0; i < a->npaths; i++)
		if (strcmp(a->paths[i], b->paths[i]) != 0)
			return 0;
	return 1;
}

static int cmd_forget(int argc, char **argv)
{
	if (tw_cli_wants_help(argc, argv)) {
		usage(stdout);
		return 0;
	}
	struct tw_bopts o = {0};
	struct tw_keep_policy kp = {0};
	char **tags = calloc((size_t)argc, sizeof *tags);
	int prune = 0, dry = 0;
	if (tags == NULL)
		return TW_EXIT_ERROR;
	for (int i = 1; i < argc; i++) {
		int c = tw_bopts_parse(&o, argc, argv, &i);
		if (c < 0)
			goto usage_err;
		if (c)
			continue;
		const char *a = argv[i];
		int *dst = strcmp(a, "--keep-last") == 0      ? &kp.last
			   : strcmp(a, "--keep-hourly") == 0  ? &kp.hourly
			   : strcmp(a, "--keep-daily") == 0   ? &kp.daily
			   : strcmp(a, "--keep-weekly") == 0  ? &kp.weekly
			   : strcmp(a, "--keep-monthly") == 0 ? &kp.monthly
			   : strcmp(a, "--keep-yearly") == 0  ? &kp.yearly
							      : NULL;
		if (dst != NULL && i + 1 < argc) {
			unsigned long v;
			const char *val = argv[++i];
			if (strcmp(val, "-1") == 0)
				*dst = -1;
			else if (tw_bcli_uint(val, 1000000, &v) == 0)
				*dst = (int)v;
			else {
				fprintf(stderr, "tapwork forget: bad value for %s\n", a);
				goto usage_err;
			}
		} else if (strcmp(a, "--keep-tag") == 0 && i + 1 < argc)
			tags[kp.ntags++] = argv[++i];
		else if (strcmp(a, "--prune") == 0)
			prune = 1;
		else if (strcmp(a, "--dry-run") == 0 || strcmp(a, "-n") == 0)
			dry = 1;
		else {
			fprintf(stderr, "tapwork forget: unknown argument %s\n", a);
			goto usage_err;
		}
	}
	kp.tags = tags;
	if (tw_retention_empty(&kp)) {
		fprintf(stderr, "tapwork forget: no --keep-* rule given; refusing to remove everything\n");
		goto usage_err;
	}
	struct tw_repo *r;
	int rc = tw_bopts_open(&o, "forget", dry ? 0 : TW_BOPEN_EXCL, &r);
	if (rc != 0) {
		free(tags);
		return rc;
	}
	struct tw_err e = {0};
	struct tw_snapshot **v = NULL;
	size_t n = 0;
	if (tw_repo_list_snapshots(r, &v, &n, &e) != 0) {
		tw_bcli_fail("forget", &e);
		tw_repo_close(r);
		free(tags);
		return TW_EXIT_ERROR;
	}
	struct tw_ret_item *items = calloc(n + 1, sizeof *items);
	struct tw_snapshot **grp = calloc(n + 1, sizeof *grp);
	uint8_t *done = calloc(n + 1, 1);
	char **gone = calloc(n + 1, sizeof *gone); /* ids, for prune --dry-run */
	size_t ngone = 0;
	int fails = 0;
	size_t removed = 0;
	if (o.json)
		printf("[");
	int first_json = 1;
	for (size_t i = n; items && grp && done && i-- > 0;) {
		if (done[i])
			continue;
		size_t g = 0;
		for (size_t j = i + 1; j-- > 0;) /* newest first */
			if (!done[j] && same_group(v[i], v[j])) {
				done[j] = 1;
				grp[g] = v[j];
				items[g].time_ns = v[j]->time_ns;
				items[g].tags = v[j]->tags;
				items[g].ntags = v[j]->ntags;
				g++;
			}
		tw_retention_apply(items, g, &kp);
		if (!o.json && !o.quiet)
			printf("snapshots of %s:%s%s\n", v[i]->hostname, v[i]->npaths ? " " : "",
			       v[i]->npaths ? v[i]->paths[0] : "");
		for (size_t k = 0; k < g; k++) {
			char ts[48];
			tw_snapshot_time_str(grp[k]->time_ns, ts, sizeof ts);
			if (o.json) {
				printf("%s{\"id\":\"%s\",\"time\":\"%s\",\"keep\":%s,\"reasons\":\"%s\"}",
				       first_json ? "" : ",", grp[k]->id, ts,
				       items[k].keep ? "true" : "false", items[k].reason);
				first_json = 0;
			} else if (!o.quiet)
				printf("  %s %.8s  %s  %s\n", items[k].keep ? "keep  " : "remove",
				       grp[k]->id, ts, items[k].reason);
			if (!items[k].keep) {
				removed++;
				if (gone != NULL && (gone[ngone] = strdup(grp[k]->id)) != NULL)
					ngone++;
				if (!dry && tw_storage_del(r->st, TW_ST_SNAPSHOT, grp[k]->id, &e) != 0) {
					tw_bcli_fail("forget", &e);
					fails++;
				}
			}
		}
	}
	if (o.json)
		printf("]\n");
	else if (!o.quiet)
		printf("%s%zu snapshots\n", dry ? "would remove " : "removed ", removed);
	free(items);
	free(grp);
	free(done);
	tw_repo_free_snapshots(v, n);
	rc = fails ? TW_EXIT_ERROR : TW_EXIT_OK;
	if (rc == 0 && prune) {
		struct tw_prune_opts po = {0};
		po.dry_run = dry;
		po.max_unused_percent = 20;
		if (dry) { /* nothing was removed: prune must act as if it had been */
			po.forget_ids = gone;
			po.nforget = ngone;
		}
		struct tw_bopts q = o;
		q.json = 0;
		rc = tw_bcli_prune(r, &q, &po);
	}
	for (size_t i = 0; i < ngone; i++)
		free(gone[i]);
	free(gone);
	tw_repo_close(r);
	free(tags);
	return rc;
usage_err:
	free(tags);
	return TW_EXIT_USAGE;
}

TW_CLI_COMMAND(forget, "forget", "remove snapshots according to retention rules", cmd_forget)
