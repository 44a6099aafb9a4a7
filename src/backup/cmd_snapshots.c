/* cmd_snapshots.c — `tapwork snapshots`. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backup/cmdutil.h"
#include "cli/cli.h"
#include "pg/meta.h"
#include "pg/wal.h"

static int cmd_snapshots(int argc, char **argv)
{
	if (tw_cli_wants_help(argc, argv)) {
		printf("usage: tapwork snapshots -r REPO [--json]\n\nList the snapshots, oldest "
		       "first.\n\noptions:\n" TW_BOPTS_HELP);
		return 0;
	}
	struct tw_bopts o = {0};
	for (int i = 1; i < argc; i++) {
		int c = tw_bopts_parse(&o, argc, argv, &i);
		if (c <= 0) {
			if (c == 0)
				fprintf(stderr, "tapwork snapshots: unknown argument %s\n", argv[i]);
			return TW_EXIT_USAGE;
		}
	}
	struct tw_repo *r;
	int rc = tw_bopts_open(&o, "snapshots", 0, &r);
	if (rc != 0)
		return rc;
	struct tw_err e = {0};
	struct tw_snapshot **v;
	size_t n;
	if (tw_repo_list_snapshots(r, &v, &n, &e) != 0) {
		tw_bcli_fail("snapshots", &e);
		tw_repo_close(r);
		return TW_EXIT_ERROR;
	}
	json_t *arr = o.json ? json_array() : NULL;
	if (!o.json)
		printf("%-8s  %-30s  %-12s  %-10s  %s\n", "ID", "Time (UTC)", "Host", "Tags", "Paths");
	for (size_t i = 0; i < n; i++) {
		struct tw_snapshot *s = v[i];
		char ts[48], tree[65];
		tw_snapshot_time_str(s->time_ns, ts, sizeof ts);
		tw_hex(s->tree, TW_ID_LEN, tree);
		if (o.json) {
			json_t *paths = json_array(), *tags = json_array();
			for (size_t k = 0; k < s->npaths; k++)
				json_array_append_new(paths, json_string(s->paths[k]));
			for (size_t k = 0; k < s->ntags; k++)
				json_array_append_new(tags, json_string(s->tags[k]));
			json_array_append_new(
				arr, json_pack("{s:s,s:s%,s:s,s:I,s:s,s:s,s:s,s:o,s:o,s:I,s:I}", "id", s->id,
					       "short_id", s->id, (size_t)8, "time", ts, "time_ns",
					       (json_int_t)s->time_ns, "tree", tree, "hostname",
					       s->hostname, "username", s->username, "paths", paths,
					       "tags", tags, "files", (json_int_t)s->files, "bytes",
					       (json_int_t)s->bytes));
			if (s->pg != NULL) /* a PostgreSQL physical snapshot (src/pg/meta.h) */
				json_object_set_new(json_array_get(arr, json_array_size(arr) - 1),
						    "pg", json_loads(s->pg, 0, NULL));
		} else {
			char tags[256] = "";
			size_t off = 0;
			for (size_t k = 0; k < s->ntags && off < sizeof tags; k++)
				off += (size_t)snprintf(tags + off, sizeof tags - off, "%s%s",
							k ? "," : "", s->tags[k]);
			printf("%.8s  %-30s  %-12s  %-10s  ", s->id, ts, s->hostname, tags);
			for (size_t k = 0; k < s->npaths; k++)
				printf("%s%s", k ? " " : "", s->paths[k]);
			struct tw_pgmeta m;
			if (s->pg != NULL && tw_pgmeta_decode(s->pg, &m, NULL) == 0) {
				char a[24], b[24];
				tw_pgwal_lsn_str(m.start_lsn, a, sizeof a);
				tw_pgwal_lsn_str(m.stop_lsn, b, sizeof b);
				printf("  [PostgreSQL: timeline %u, LSN %s..%s", m.tli, a, b);
				if (m.damaged_total > 0)
					printf(", %llu damaged pages",
					       (unsigned long long)m.damaged_total);
				printf("]");
				tw_pgmeta_clear(&m);
			}
			printf("\n");
		}
	}
	if (o.json) {
		char *txt = json_dumps(arr, JSON_COMPACT);
		printf("%s\n", txt ? txt : "[]");
		free(txt);
		json_decref(arr);
	} else
		printf("%zu snapshots\n", n);
	tw_repo_free_snapshots(v, n);
	tw_repo_close(r);
	return 0;
}

TW_CLI_COMMAND(snapshots, "snapshots", "list the snapshots of a repository", cmd_snapshots)
