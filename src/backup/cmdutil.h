/* cmdutil.h — what every backup command shares: -r/--repo, the password
 * (TAPWORK_PASSWORD, TAPWORK_PASSWORD_FILE, --password-file; never argv),
 * --json, --quiet, and opening the repository with a readable error. */
#ifndef TW_BACKUP_CMDUTIL_H
#define TW_BACKUP_CMDUTIL_H

#include <stddef.h>

#include "backup/prune.h"
#include "backup/repo.h"

/* Exit codes (docs/backup.md). */
#define TW_EXIT_OK 0
#define TW_EXIT_ERROR 1
#define TW_EXIT_USAGE 2
#define TW_EXIT_PARTIAL 3

struct tw_bopts {
	const char *repo;
	const char *password_file;
	int json, quiet;
};

/* Try to consume argv[*i] (and its value) as a common option: returns 1 if
 * consumed (advancing *i past a value), 0 if not a common option, -1 on a
 * missing value (message printed). */
int tw_bopts_parse(struct tw_bopts *o, int argc, char **argv, int *i);
/* Fill defaults from the environment. */
void tw_bopts_env(struct tw_bopts *o);
/* Read the password; malloc'd into *pw. Returns 0 or prints and fails. */
int tw_bopts_password(const struct tw_bopts *o, const char *env_name, const char *env_file,
		      char **pw, size_t *len);
/* Open the repository (prints errors); 0 or an exit code. */
int tw_bopts_open(const struct tw_bopts *o, struct tw_repo **r);
/* Print "tapwork NAME: message" to stderr. */
void tw_bcli_fail(const char *cmd, const struct tw_err *e);
/* Run prune with progress and a summary (prune and forget --prune); exit code. */
int tw_bcli_prune(struct tw_repo *r, const struct tw_bopts *o, const struct tw_prune_opts *po);
/* Parse "N" as a non-negative integer <= max. */
int tw_bcli_uint(const char *s, unsigned long max, unsigned long *out);

#define TW_BOPTS_HELP                                                                              \
	"  -r, --repo REPO          repository (default $TAPWORK_REPOSITORY)\n"                        \
	"  --password-file FILE     read the password from FILE (default $TAPWORK_PASSWORD,\n"       \
	"                           then $TAPWORK_PASSWORD_FILE)\n"                                  \
	"  --json                   machine-readable output\n"                                       \
	"  -q, --quiet              no progress or summaries\n"

#endif
