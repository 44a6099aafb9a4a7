/* cmd_ls.c — `tapwork ls`: list the files of a snapshot. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backup/cmdutil.h"
#include "cli/cli.h"

struct lsctx {
	struct tw_repo *r;
	int json, longfmt;
	unsigned errors;
};

static void json_str(const char *p, size_t n)
{
	putchar('"');
	for (size_t i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)p[i];
		if (ch == '"' || ch == '\\')
			printf("\\%c", ch);
		else if (ch < 0x20 || ch >= 0x7f)
			printf("\\u%04x", ch); /* bytes, not code points: names are byte strings */
		else
			putchar(ch);
	}
	putchar('"');
}

static void print_node(struct lsctx *c, const char *path, const struct tw_node *nd)
{
	static const char types[] = "?fdlpcbs";
	if (c->json) {
		printf("{\"path\":");
		json_str(path, strlen(path));
		printf(",\"type\":\"%c\",\"mode\":%u,\"uid\":%u,\"gid\":%u,\"size\":%llu,"
		       "\"mtime_ns\":%lld}\n",
		       types[nd->type], nd->mode, nd->uid, nd->gid, (unsigned long long)nd->size,
		       (long long)nd->mtime_ns);
	} else if (c->longfmt)
		printf("%c %04o %5u %5u %12llu %s\n", types[nd->type], nd->mode, nd->uid, nd->gid,
		       (unsigned long long)nd->size, path);
	else
		printf("%s\n", path);
}

static void walk(struct lsctx *c, const uint8_t id[TW_ID_LEN], const char *prefix, char **comp,
		 size_t ncomp, int depth)
{
	uint8_t *buf;
	struct tw_node *nodes;
	uint32_t n;
	struct tw_err e = {0};
	if (depth > 4096 || tw_repo_read_tree(c->r, id, &buf, &nodes, &n, &e) != 0) {
		fprintf(stderr, "tapwork ls: %s: %s\n", prefix[0] ? prefix : "/", e.msg);
		c->errors++;
		return;
	}
	for (uint32_t i = 0; i < n; i++) {
		const struct tw_node *nd = &nodes[i];
		if (ncomp > 0 && (strlen(comp[0]) != nd->name_len ||
				  memcmp(comp[0], nd->name, nd->name_len) != 0))
			continue;
		char path[8192];
		snprintf(path, sizeof path, "%s/%.*s", prefix, (int)nd->name_len, nd->name);
		if (ncomp <= 1)
			print_node(c, path, nd);
		if (nd->type == TW_NODE_DIR)
			walk(c, nd->subtree, path, ncomp ? comp + 1 : comp, ncomp ? ncomp - 1 : 0,
			     depth + 1);
	}
	free(nodes);
	free(buf);
}

static int cmd_ls(int argc, char **argv)
{
	if (tw_cli_wants_help(argc, argv)) {
		printf("usage: tapwork ls -r REPO SNAPSHOT [PATH] [-l] [--json]\n\n"
		       "List the files of a snapshot (\"latest\" or an ID prefix), below PATH if\n"
		       "given. --json prints one object per line; name bytes outside printable\n"
		       "ASCII are escaped as \\u00XX (one per byte).\n\noptions:\n"
		       "  -l, --long               type, mode, owner, size\n" TW_BOPTS_HELP);
		return 0;
	}
	struct tw_bopts o = {0};
	struct lsctx c = {0};
	const char *spec = NULL, *path = NULL;
	for (int i = 1; i < argc; i++) {
		int k = tw_bopts_parse(&o, argc, argv, &i);
		if (k < 0)
			return TW_EXIT_USAGE;
		if (k)
			continue;
		if (strcmp(argv[i], "-l") == 0 || strcmp(argv[i], "--long") == 0)
			c.longfmt = 1;
		else if (spec == NULL && argv[i][0] != '-')
			spec = argv[i];
		else if (path == NULL && spec != NULL)
			path = argv[i];
		else {
			fprintf(stderr, "tapwork ls: unexpected argument %s\n", argv[i]);
			return TW_EXIT_USAGE;
		}
	}
	if (spec == NULL) {
		fprintf(stderr, "usage: tapwork ls -r REPO SNAPSHOT [PATH]\n");
		return TW_EXIT_USAGE;
	}
	c.json = o.json;
	struct tw_repo *r;
	int rc = tw_bopts_open(&o, "ls", 0, &r);
	if (rc != 0)
		return rc;
	c.r = r;
	struct tw_snapshot **v, *s;
	size_t n;
	char pbuf[4096], *comp[256];
	size_t ncomp = 0;
	if (path) {
		snprintf(pbuf, sizeof pbuf, "%s", path);
		for (char *p = pbuf; *p;) {
			char *sl = strchr(p, '/');
			if (sl)
				*sl = '\0';
			if (*p && ncomp < 256)
				comp[ncomp++] = p;
			if (!sl)
				break;
			p = sl + 1;
		}
	}
	if (tw_bcli_find_snapshots(r, "ls", &spec, 1, &s, &v, &n) != 0)
		rc = TW_EXIT_ERROR;
	else {
		walk(&c, s->tree, "", comp, ncomp, 0);
		rc = c.errors ? TW_EXIT_ERROR : TW_EXIT_OK;
	}
	tw_repo_free_snapshots(v, n);
	tw_repo_close(r);
	return rc;
}

TW_CLI_COMMAND(ls, "ls", "list the files in a snapshot", cmd_ls)
