/* cmd_repo.c — `tapwork repo init|passwd`. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backup/cmdutil.h"
#include "cli/cli.h"

static void usage(FILE *out)
{
	fprintf(out, "usage: tapwork repo init   -r REPO [--pack-size MiB]\n"
		     "       tapwork repo passwd -r REPO [--add] [--new-password-file FILE]\n\n"
		     "init creates an encrypted repository protected by the password\n"
		     "(--pack-size: target pack size in MiB, default 16).\n"
		     "passwd wraps the repository keys with a new password (from\n"
		     "$TAPWORK_NEW_PASSWORD, $TAPWORK_NEW_PASSWORD_FILE or --new-password-file)\n"
		     "and removes the key that was opened, unless --add keeps both.\n\n"
		     "options:\n" TW_BOPTS_HELP);
}

static int cmd_repo(int argc, char **argv)
{
	if (tw_cli_wants_help(argc, argv) || argc < 2) {
		usage(argc < 2 ? stderr : stdout);
		return argc < 2 ? TW_EXIT_USAGE : 0;
	}
	const char *sub = argv[1];
	struct tw_bopts o = {0};
	const char *newfile = NULL;
	int add = 0;
	unsigned long pack_mib = 0;
	for (int i = 2; i < argc; i++) {
		int c = tw_bopts_parse(&o, argc, argv, &i);
		if (c < 0)
			return TW_EXIT_USAGE;
		if (c)
			continue;
		if (strcmp(argv[i], "--add") == 0)
			add = 1;
		else if (strcmp(argv[i], "--pack-size") == 0 && i + 1 < argc) {
			if (tw_bcli_uint(argv[++i], 256, &pack_mib) != 0 || pack_mib == 0) {
				fprintf(stderr, "tapwork repo: --pack-size wants 1..256 (MiB)\n");
				return TW_EXIT_USAGE;
			}
		} else if (strcmp(argv[i], "--new-password-file") == 0 && i + 1 < argc)
			newfile = argv[++i];
		else {
			fprintf(stderr, "tapwork repo: unknown argument %s\n", argv[i]);
			return TW_EXIT_USAGE;
		}
	}
	tw_bopts_env(&o);
	struct tw_err e = {0};
	if (strcmp(sub, "init") == 0) {
		char *pw;
		size_t len;
		if (o.repo == NULL) {
			fprintf(stderr, "tapwork repo init: no repository (-r or TAPWORK_REPOSITORY)\n");
			return TW_EXIT_ERROR;
		}
		if (tw_bopts_password(&o, "TAPWORK_PASSWORD", "TAPWORK_PASSWORD_FILE", &pw, &len) != 0)
			return TW_EXIT_ERROR;
		if (len == 0) {
			free(pw);
			fprintf(stderr, "tapwork repo init: empty password refused\n");
			return TW_EXIT_ERROR;
		}
		int rc = tw_repo_init(o.repo, pw, len, (uint32_t)(pack_mib << 20), &e);
		free(pw);
		if (rc != 0) {
			tw_bcli_fail("repo init", &e);
			return TW_EXIT_ERROR;
		}
		if (!o.quiet)
			printf("created repository at %s\n", o.repo);
		return 0;
	}
	if (strcmp(sub, "passwd") == 0) {
		struct tw_repo *r;
		int rc = tw_bopts_open(&o, "repo passwd", 0, &r);
		if (rc != 0)
			return rc;
		char *pw;
		size_t len;
		struct tw_bopts no = {0};
		no.password_file = newfile;
		int prc = tw_bopts_password(&no, "TAPWORK_NEW_PASSWORD", "TAPWORK_NEW_PASSWORD_FILE",
					    &pw, &len);
		if (prc != 0 || len == 0) {
			if (prc == 0)
				fprintf(stderr, "tapwork repo passwd: empty new password refused\n");
			free(pw);
			tw_repo_close(r);
			return TW_EXIT_ERROR;
		}
		char name[65];
		rc = tw_repo_add_key(r, pw, len, name, &e);
		free(pw);
		if (rc == 0 && !add)
			rc = tw_storage_del(r->st, TW_ST_KEY, r->key_name, &e);
		tw_repo_close(r);
		if (rc != 0) {
			tw_bcli_fail("repo passwd", &e);
			return TW_EXIT_ERROR;
		}
		if (!o.quiet)
			printf("%s key %.16s\n", add ? "added" : "password changed, new", name);
		return 0;
	}
	fprintf(stderr, "tapwork repo: unknown subcommand %s\n", sub);
	return TW_EXIT_USAGE;
}

TW_CLI_COMMAND(repo, "repo", "create a backup repository or change its password", cmd_repo)
