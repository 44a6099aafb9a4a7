/* cmd_diff.c — `tapwork diff A B`: what changed between two snapshots. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backup/cmdutil.h"
#include "cli/cli.h"

struct dctx {
	struct tw_repo *r;
	unsigned added, removed, modified, errors;
};

static void report(struct dctx *c, char what, const char *prefix, const struct tw_node *nd);

static void all(struct dctx *c, char what, const char *prefix, const struct tw_node *nd, int depth)
{
	report(c, what, prefix, nd);
	if (nd->type != TW_NODE_DIR || depth > 4096)
		return;
	char path[8192];
	snprintf(path, sizeof path, "%s/%.*s", prefix, (int)nd->name_len, nd->name);
	uint8_t *buf;
	struct tw_node *nodes;
	uint32_t n;
	if (tw_repo_read_tree(c->r, nd->subtree, &buf, &nodes, &n, NULL) != 0) {
		c->errors++;
		return;
	}
	for (uint32_t i = 0; i < n; i++)
		all(c, what, path, &nodes[i], depth + 1);
	free(nodes);
	free(buf);
}

static void report(struct dctx *c, char what, const char *prefix, const struct tw_node *nd)
{
	printf("%c %s/%.*s%s\n", what, prefix, (int)nd->name_len, nd->name,
	       nd->type == TW_NODE_DIR ? "/" : "");
	if (what == '+')
		c->added++;
	else if (what == '-')
		c->removed++;
	else
		c->modified++;
}

static int content_differs(const struct tw_node *a, const struct tw_node *b)
{
	if (a->type != b->type || a->size != b->size)
		return 1;
	if (a->type == TW_NODE_FILE)
		return a->nchunks != b->nchunks ||
		       memcmp(a->chunks, b->chunks, (size_t)a->nchunks * TW_ID_LEN) != 0;
	if (a->type == TW_NODE_SYMLINK)
		return a->target_len != b->target_len || memcmp(a->target, b->target, a->target_len);
	return a->mode != b->mode || a->uid != b->uid || a->gid != b->gid ||
	       a->mtime_ns != b->mtime_ns;
}

static void diff(struct dctx *c, const uint8_t ta[TW_ID_LEN], const uint8_t tb[TW_ID_LEN],
		 const char *prefix, int depth)
{
	if (memcmp(ta, tb, TW_ID_LEN) == 0 || depth > 4096)
		return; /* Merkle: identical subtrees */
	uint8_t *ba = NULL, *bb = NULL;
	struct tw_node *na = NULL, *nb = NULL;
	uint32_t ca = 0, cb = 0;
	if (tw_repo_read_tree(c->r, ta, &ba, &na, &ca, NULL) != 0 ||
	    tw_repo_read_tree(c->r, tb, &bb, &nb, &cb, NULL) != 0) {
		c->errors++;
		goto done;
	}
	uint32_t i = 0, j = 0;
	while (i < ca || j < cb) {
		int cmp = i == ca ? 1 : j == cb ? -1 : tw_tree_name_cmp(na[i].name, na[i].name_len, nb[j].name, nb[j].name_len);
		if (cmp < 0) {
			all(c, '-', prefix, &na[i++], depth);
		} else if (cmp > 0) {
			all(c, '+', prefix, &nb[j++], depth);
		} else {
			const struct tw_node *x = &na[i++], *y = &nb[j++];
			if (x->type == TW_NODE_DIR && y->type == TW_NODE_DIR) {
				char path[8192];
				snprintf(path, sizeof path, "%s/%.*s", prefix, (int)x->name_len, x->name);
				diff(c, x->subtree, y->subtree, path, depth + 1);
			} else if (x->type != y->type) {
				all(c, '-', prefix, x, depth);
				all(c, '+', prefix, y, depth);
			} else if (content_differs(x, y))
				report(c, 'M', prefix, y);
		}
	}
done:
	free(na);
	free(nb);
	free(ba);
	free(bb);
}

static int cmd_diff(int argc, char **argv)
{
	if (tw_cli_wants_help(argc, argv)) {
		printf("usage: tapwork diff -r REPO SNAPSHOT_A SNAPSHOT_B\n\n"
		       "Show what changed from A to B: \"+ path\" added, \"- path\" removed,\n"
		       "\"M path\" modified. Unchanged subtrees are skipped without reading them.\n\n"
		       "options:\n" TW_BOPTS_HELP);
		return 0;
	}
	struct tw_bopts o = {0};
	const char *spec[2] = {NULL, NULL};
	for (int i = 1; i < argc; i++) {
		int k = tw_bopts_parse(&o, argc, argv, &i);
		if (k < 0)
			return TW_EXIT_USAGE;
		if (k)
			continue;
		if (spec[0] == NULL)
			spec[0] = argv[i];
		else if (spec[1] == NULL)
			spec[1] = argv[i];
		else {
			fprintf(stderr, "tapwork diff: unexpected argument %s\n", argv[i]);
			return TW_EXIT_USAGE;
		}
	}
	if (spec[1] == NULL) {
		fprintf(stderr, "usage: tapwork diff -r REPO SNAPSHOT_A SNAPSHOT_B\n");
		return TW_EXIT_USAGE;
	}
	struct tw_repo *r;
	int rc = tw_bopts_open(&o, "diff", 0, &r);
	if (rc != 0)
		return rc;
	struct dctx c = {r, 0, 0, 0, 0};
	struct tw_snapshot **v, *ab[2];
	size_t n;
	if (tw_bcli_find_snapshots(r, "diff", spec, 2, ab, &v, &n) != 0)
		rc = TW_EXIT_ERROR;
	else {
		diff(&c, ab[0]->tree, ab[1]->tree, "", 0);
		if (!o.quiet)
			printf("%u added, %u removed, %u modified\n", c.added, c.removed, c.modified);
		rc = c.errors ? TW_EXIT_ERROR : TW_EXIT_OK;
	}
	tw_repo_free_snapshots(v, n);
	tw_repo_close(r);
	return rc;
}

TW_CLI_COMMAND(diff, "diff", "show the differences between two snapshots", cmd_diff)
