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

/* What tw_bopts_open does once the repository is open (flags). */
#define TW_BOPEN_LOCK 1u  /* take a shared lock */
#define TW_BOPEN_EXCL 2u  /* take an exclusive lock */
#define TW_BOPEN_INDEX 4u /* load the index (after the lock) */

/* Fill defaults from the environment (tw_bopts_env), open the repository,
 * then lock it and load its index as flags say. Errors are printed (the lock
 * and the index as "tapwork CMD: message") and the repository closed again;
 * returns 0 or an exit code. */
int tw_bopts_open(struct tw_bopts *o, const char *cmd, unsigned flags, struct tw_repo **r);
/* The flags part of tw_bopts_open on an open repository: on failure prints
 * it, closes *r (NULL) and returns an exit code. */
int tw_bopts_ready(struct tw_repo **r, const char *cmd, unsigned flags);
/* For the commands that read snapshots (ls, diff, restore): load the index,
 * list the snapshots into *v, *n (oldest first; the caller frees them with
 * tw_repo_free_snapshots) and find specs[0..nspecs) ("latest" or an ID
 * prefix) into found[]. On failure prints "tapwork CMD: message", leaves
 * *v NULL and *n 0, and returns TW_EXIT_ERROR. */
int tw_bcli_find_snapshots(struct tw_repo *r, const char *cmd, const char *const *specs,
			   size_t nspecs, struct tw_snapshot **found, struct tw_snapshot ***v,
			   size_t *n);
/* Print "tapwork NAME: message" to stderr. */
void tw_bcli_fail(const char *cmd, const struct tw_err *e);
/* Run prune with progress and a summary (prune and forget --prune); exit code. */
int tw_bcli_prune(struct tw_repo *r, const struct tw_bopts *o, const struct tw_prune_opts *po);
/* Parse "N" as a non-negative integer <= max. */
int tw_bcli_uint(const char *s, unsigned long max, unsigned long *out);
/* Parse "N" or "N%" as a percentage, 0..100. */
int tw_bcli_percent(const char *s, unsigned *out);

#define TW_BOPTS_HELP                                                                              \
	"  -r, --repo REPO          repository (default $TAPWORK_REPOSITORY)\n"                        \
	"  --password-file FILE     read the password from FILE (default $TAPWORK_PASSWORD,\n"       \
	"                           then $TAPWORK_PASSWORD_FILE)\n"                                  \
	"  --json                   machine-readable output\n"                                       \
	"  -q, --quiet              no progress or summaries\n"

#endif
