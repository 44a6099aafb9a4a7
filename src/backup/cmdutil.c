/* cmdutil.c — shared command-line plumbing of the backup commands. */
#include "backup/cmdutil.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"

int tw_bopts_parse(struct tw_bopts *o, int argc, char **argv, int *i)
{
	const char *a = argv[*i];
	const char **dst = NULL;
	if (strcmp(a, "-r") == 0 || strcmp(a, "--repo") == 0)
		dst = &o->repo;
	else if (strcmp(a, "--password-file") == 0)
		dst = &o->password_file;
	else if (strcmp(a, "--json") == 0) {
		o->json = 1;
		return 1;
	} else if (strcmp(a, "-q") == 0 || strcmp(a, "--quiet") == 0) {
		o->quiet = 1;
		return 1;
	} else if (strncmp(a, "--repo=", 7) == 0) {
		o->repo = a + 7;
		return 1;
	} else if (strncmp(a, "--password-file=", 16) == 0) {
		o->password_file = a + 16;
		return 1;
	} else
		return 0;
	if (*i + 1 >= argc) {
		fprintf(stderr, "tapwork: %s needs a value\n", a);
		return -1;
	}
	*dst = argv[++*i];
	return 1;
}

void tw_bopts_env(struct tw_bopts *o)
{
	if (o->repo == NULL)
		o->repo = getenv("TAPWORK_REPOSITORY");
}

static int read_file(const char *path, char **pw, size_t *len)
{
	FILE *f = fopen(path, "rb");
	if (f == NULL) {
		fprintf(stderr, "tapwork: cannot read password file %s: %s\n", path, strerror(errno));
		return -1;
	}
	char *buf = malloc(4097);
	size_t n = buf ? fread(buf, 1, 4096, f) : 0;
	fclose(f);
	if (buf == NULL)
		return -1;
	while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
		n--;
	buf[n] = '\0';
	*pw = buf;
	*len = n;
	return 0;
}

int tw_bopts_password(const struct tw_bopts *o, const char *env_name, const char *env_file,
		      char **pw, size_t *len)
{
	*pw = NULL;
	if (o != NULL && o->password_file != NULL)
		return read_file(o->password_file, pw, len);
	const char *p = getenv(env_name);
	if (p != NULL) {
		*pw = strdup(p);
		*len = strlen(p);
		return *pw ? 0 : -1;
	}
	const char *f = getenv(env_file);
	if (f != NULL)
		return read_file(f, pw, len);
	fprintf(stderr, "tapwork: no password: set %s or %s, or use --password-file\n", env_name,
		env_file);
	return -1;
}

void tw_bcli_fail(const char *cmd, const struct tw_err *e)
{
	fprintf(stderr, "tapwork %s: %s\n", cmd, e->msg[0] ? e->msg : tw_strerror(e->code));
}

int tw_bopts_open(struct tw_bopts *o, const char *cmd, unsigned flags, struct tw_repo **r)
{
	struct tw_err e = {0};
	char *pw;
	size_t len;
	*r = NULL;
	tw_bopts_env(o);
	if (o->repo == NULL || o->repo[0] == '\0') {
		fprintf(stderr, "tapwork: no repository: use -r REPO or set TAPWORK_REPOSITORY\n");
		return TW_EXIT_ERROR;
	}
	if (tw_bopts_password(o, "TAPWORK_PASSWORD", "TAPWORK_PASSWORD_FILE", &pw, &len) != 0)
		return TW_EXIT_ERROR;
	int rc = tw_repo_open(o->repo, pw, len, r, &e);
	free(pw);
	if (rc != 0) {
		fprintf(stderr, "tapwork: %s\n", e.msg);
		return TW_EXIT_ERROR;
	}
	return tw_bopts_ready(r, cmd, flags);
}

int tw_bopts_ready(struct tw_repo **r, const char *cmd, unsigned flags)
{
	struct tw_err e = {0};
	int rc = 0;
	if ((flags & (TW_BOPEN_LOCK | TW_BOPEN_EXCL)) != 0)
		rc = tw_repo_lock(*r, (flags & TW_BOPEN_EXCL) != 0, &e);
	if (rc == 0 && (flags & TW_BOPEN_INDEX) != 0)
		rc = tw_repo_load_index(*r, &e);
	if (rc != 0) {
		tw_bcli_fail(cmd, &e);
		tw_repo_close(*r);
		*r = NULL;
		return TW_EXIT_ERROR;
	}
	return 0;
}

int tw_bcli_find_snapshots(struct tw_repo *r, const char *cmd, const char *const *specs,
			   size_t nspecs, struct tw_snapshot **found, struct tw_snapshot ***v,
			   size_t *n)
{
	struct tw_err e = {0};
	*v = NULL;
	*n = 0;
	int rc = tw_repo_load_index(r, &e);
	if (rc == 0)
		rc = tw_repo_list_snapshots(r, v, n, &e);
	for (size_t i = 0; rc == 0 && i < nspecs; i++)
		rc = tw_repo_find_snapshot(*v, *n, specs[i], &found[i], &e);
	if (rc != 0) {
		tw_bcli_fail(cmd, &e);
		tw_repo_free_snapshots(*v, *n);
		*v = NULL;
		*n = 0;
		return TW_EXIT_ERROR;
	}
	return 0;
}

int tw_bcli_uint(const char *s, unsigned long max, unsigned long *out)
{
	char *end;
	errno = 0;
	if (s == NULL || *s < '0' || *s > '9')
		return TW_EINVAL;
	unsigned long v = strtoul(s, &end, 10);
	if (errno != 0 || *end != '\0' || v > max)
		return TW_EINVAL;
	*out = v;
	return 0;
}

int tw_bcli_percent(const char *s, unsigned *out)
{
	char buf[16];
	snprintf(buf, sizeof buf, "%s", s);
	size_t l = strlen(buf);
	if (l > 0 && buf[l - 1] == '%')
		buf[l - 1] = '\0';
	unsigned long v;
	if (tw_bcli_uint(buf, 100, &v) != 0)
		return TW_EINVAL;
	*out = (unsigned)v;
	return 0;
}
