/* restore.c — `tapwork restore [SNAPSHOT] --pg-data DIR --pg-target-...`:
 * a physical snapshot restored into DIR plus what PostgreSQL needs to
 * replay the WAL archive to the target: backup_label (and tablespace_map)
 * as pg_backup_stop returned them, recovery.signal, and restore_command +
 * recovery_target_* appended to postgresql.auto.conf. */
#include <errno.h>
#include <dirent.h>
#include <fcntl.h>
#include <ftw.h>
#include <pthread.h>
#include <signal.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

#include "backup/cmdutil.h"
#include "backup/restore.h"
#include "cli/cli.h"
#include "pg/archive.h"
#include "pg/keycache.h"
#include "pg/meta.h"
#include "pg/pitr.h"
#include "pg/spool.h"
#include "pg/wal.h"

#define TW_STR2(x) #x
#define TW_STR(x) TW_STR2(x)

static void usage(FILE *out)
{
	fprintf(
	    out,
	    "usage: tapwork restore -r REPO [SNAPSHOT] --pg-data DIR [TARGET] [options]\n\n"
	    "Restore a physical PostgreSQL snapshot into DIR (missing or empty; --force\n"
	    "replaces what is in it) and set up\n"
	    "recovery: PostgreSQL, started on DIR, fetches WAL from the repository with\n"
	    "`tapwork pg archive-get` and replays it to the target. Without SNAPSHOT the\n"
	    "newest snapshot that ended before the target is used.\n\n"
	    "TARGET (at most one; none: replay all archived WAL):\n"
	    "  --pg-target-time T       a time: 'YYYY-MM-DD HH:MM:SS[.frac][+HH[:MM]|Z]'\n"
	    "  --pg-target-lsn L        a WAL position, e.g. 0/3000060\n"
	    "  --pg-target-xid X        a transaction ID (stop at its commit)\n"
	    "  --pg-target-name N       a restore point made by pg_create_restore_point(N)\n"
	    "                           (without SNAPSHOT: found in the archived WAL, then\n"
	    "                           the newest snapshot that ended before it)\n"
	    "  --pg-target immediate    stop as soon as the snapshot is consistent\n\n"
	    "options:\n"
	    "  --pg-target-action A     pause (PostgreSQL's default), promote or shutdown\n"
	    "  --pg-target-timeline TL  latest (default), current or a number\n"
	    "  --pg-target-exclusive    stop just before the target (time, lsn, xid)\n"
	    "  --pg-tablespace T=DIR    restore tablespace T (its name or OID) into DIR instead\n"
	    "                           of where it was (repeatable; DIR missing or empty)\n"
	    "  --force                  DIR may hold files (an old data directory): they are\n"
	    "                           replaced once the restore is complete (never while a\n"
	    "                           PostgreSQL runs on DIR)\n"
	    "  --pg-password-file FILE  password file restore_command passes to archive-get\n"
	    "                           (default: --password-file or $TAPWORK_PASSWORD_FILE;\n"
	    "                           the server's user must be able to read it)\n"
	    "  --pg-wal-prefetch K      restore_command fetches K segments ahead during\n"
	    "                           recovery (archive-get --prefetch; default 8, 0 = off)\n"
	    "  --threads N              writer threads (default: number of CPUs)\n" TW_BOPTS_HELP);
}

enum tkind { T_NONE, T_TIME, T_LSN, T_XID, T_NAME, T_IMMEDIATE };

struct ropts {
	const char *spec, *pgdata, *value, *action, *timeline, *pwfile;
	enum tkind kind;
	int exclusive, ntargets, threads, force;
	int prefetch; /* -1: archive-get's default */
	const char *tsarg[TW_PGMETA_TS_MAX]; /* --pg-tablespace OID_OR_NAME=DIR */
	int ntsarg;
	int64_t time_ns;
	uint64_t lsn, xid;
	uint32_t tl; /* numeric timeline; 0 = latest/current */
};

static int parse_args(int argc, char **argv, struct tw_bopts *o, struct ropts *ro)
{
	for (int i = 1; i < argc; i++) {
		int c = tw_bopts_parse(o, argc, argv, &i);
		if (c < 0)
			return -1;
		if (c)
			continue;
		const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
		enum tkind k = T_NONE;
		if (strcmp(a, "--pg-target-time") == 0)
			k = T_TIME;
		else if (strcmp(a, "--pg-target-lsn") == 0)
			k = T_LSN;
		else if (strcmp(a, "--pg-target-xid") == 0)
			k = T_XID;
		else if (strcmp(a, "--pg-target-name") == 0)
			k = T_NAME;
		else if (strcmp(a, "--pg-target") == 0)
			k = T_IMMEDIATE;
		if (k != T_NONE && v != NULL) {
			ro->kind = k;
			ro->value = v;
			ro->ntargets++;
			i++;
			continue;
		}
		if (strcmp(a, "--pg-data") == 0 && v != NULL)
			ro->pgdata = argv[++i];
		else if (strncmp(a, "--pg-data=", 10) == 0)
			ro->pgdata = a + 10;
		else if (strcmp(a, "--pg-target-action") == 0 && v != NULL)
			ro->action = argv[++i];
		else if (strcmp(a, "--pg-target-timeline") == 0 && v != NULL)
			ro->timeline = argv[++i];
		else if (strcmp(a, "--pg-password-file") == 0 && v != NULL)
			ro->pwfile = argv[++i];
		else if (strcmp(a, "--pg-target-exclusive") == 0)
			ro->exclusive = 1;
		else if (strcmp(a, "--force") == 0)
			ro->force = 1;
		else if (strcmp(a, "--pg-tablespace") == 0 && v != NULL) {
			if (ro->ntsarg == TW_PGMETA_TS_MAX || strchr(v, '=') == NULL ||
			    strchr(v, '=') == v || strchr(v, '=')[1] == '\0') {
				fprintf(stderr, "tapwork restore: --pg-tablespace takes OID_OR_NAME=DIR\n");
				return -1;
			}
			ro->tsarg[ro->ntsarg++] = argv[++i];
		}
		else if (strcmp(a, "--threads") == 0 && v != NULL) {
			unsigned long n;
			if (tw_bcli_uint(argv[++i], 64, &n) != 0)
				return -1;
			ro->threads = (int)n;
		} else if (strcmp(a, "--pg-wal-prefetch") == 0 && v != NULL) {
			unsigned long n;
			if (tw_bcli_uint(argv[++i], TW_PGSPOOL_MAX, &n) != 0) {
				fprintf(stderr, "tapwork restore: --pg-wal-prefetch: 0..%d\n",
				        TW_PGSPOOL_MAX);
				return -1;
			}
			ro->prefetch = (int)n;
		} else if (a[0] != '-' && ro->spec == NULL)
			ro->spec = a;
		else {
			fprintf(stderr, "tapwork restore: with --pg-data: unexpected argument %s\n",
			        a);
			return -1;
		}
	}
	const char *bad = NULL;
	if (ro->pgdata == NULL)
		bad = "--pg-data DIR is needed";
	else if (ro->ntargets > 1)
		bad = "give at most one --pg-target-*";
	else if (ro->kind == T_TIME && tw_pitr_parse_time(ro->value, &ro->time_ns) != 0)
		bad = "bad --pg-target-time (YYYY-MM-DD HH:MM:SS[.frac][+HH:MM])";
	else if (ro->kind == T_LSN &&
	         tw_pgwal_lsn_parse(ro->value, strlen(ro->value), &ro->lsn) != 0)
		bad = "bad --pg-target-lsn (e.g. 0/3000060)";
	else if (ro->kind == T_XID &&
	         tw_bcli_uint(ro->value, ULONG_MAX, (unsigned long *)&ro->xid) != 0)
		bad = "bad --pg-target-xid";
	else if (ro->kind == T_NAME && (ro->value[0] == '\0' || strlen(ro->value) >= 64))
		bad = "bad --pg-target-name (1..63 bytes)";
	else if (ro->kind == T_IMMEDIATE && strcmp(ro->value, "immediate") != 0)
		bad = "--pg-target takes 'immediate'";
	else if (ro->action != NULL && strcmp(ro->action, "pause") != 0 &&
	         strcmp(ro->action, "promote") != 0 && strcmp(ro->action, "shutdown") != 0)
		bad = "--pg-target-action takes pause, promote or shutdown";
	else if (ro->exclusive && ro->kind != T_TIME && ro->kind != T_LSN && ro->kind != T_XID)
		bad = "--pg-target-exclusive needs --pg-target-time, -lsn or -xid";
	if (bad == NULL && ro->timeline != NULL && strcmp(ro->timeline, "latest") != 0 &&
	    strcmp(ro->timeline, "current") != 0) {
		unsigned long n;
		if (tw_bcli_uint(ro->timeline, UINT32_MAX, &n) != 0 || n == 0)
			bad = "--pg-target-timeline takes latest, current or a number";
		else
			ro->tl = (uint32_t)n;
	}
	if (bad != NULL) {
		fprintf(stderr, "tapwork restore: %s\n", bad);
		return -1;
	}
	return 0;
}

/* Does snapshot m end before the target (so recovery from it can reach it)? */
static int ends_before(const struct ropts *ro, const struct tw_pgmeta *m)
{
	switch (ro->kind) {
	case T_TIME: return m->stop_ns <= ro->time_ns;
	case T_LSN: return m->stop_lsn <= ro->lsn;
	case T_XID: return m->next_xid <= ro->xid;
	default: return 1;
	}
}

/* --pg-target-name without SNAPSHOT: find the restore point in the WAL
 * archive, then take the newest snapshot that ended before it. Snapshots
 * are tried newest first; each one's WAL is read from its start up to where
 * the newer one's started (the newest's to the end of the archive), so the
 * point found is the first one recovery from that snapshot meets. Segments
 * come from the timeline path recovery follows (tw_pitr_tlpath); a snapshot
 * off that path is read along its own timeline. At most
 * TW_PITR_RP_SCAN_MAX segments are read in all: past that, the oldest
 * snapshot is taken, as PostgreSQL then finds the point itself. Not found:
 * an error. */
static int pick_by_name(struct tw_repo *r, const struct ropts *ro, struct tw_snapshot **v,
                        size_t n, struct tw_snapshot **out, struct tw_pgmeta *m,
                        struct tw_err *e)
{
	unsigned budget = TW_PITR_RP_SCAN_MAX;
	struct tw_pgmeta newer = {0}, oldest = {0};
	struct tw_snapshot *oldest_s = NULL;
	struct tw_pitr_tlpath *path = malloc(sizeof *path), *own = malloc(sizeof *own);
	int have_newer = 0, have = 0, exhausted = 0, rc = 0, have_path = 0;
	int current = ro->timeline != NULL && strcmp(ro->timeline, "current") == 0;
	uint64_t at = 0, path_sysid = 0;
	uint32_t newer_key = 0;
	size_t npg = 0;
	if (path == NULL || own == NULL) {
		rc = tw_err_set(e, TW_ENOMEM, "out of memory");
		goto out;
	}
	for (size_t i = n; i-- > 0;) {
		if (v[i]->pg == NULL)
			continue;
		struct tw_pgmeta cand;
		if ((rc = tw_pgmeta_decode(v[i]->pg, &cand, e)) != 0) {
			rc = tw_err_wrap(e, "snapshot %.8s", v[i]->id);
			goto out;
		}
		if (ro->tl != 0 && cand.tli > ro->tl) {
			tw_pgmeta_clear(&cand);
			continue;
		}
		npg++;
		/* the timelines recovery from cand follows (see latest_fits) */
		if (!current && !have_path) {
			if ((rc = tw_pitr_tlpath(r, cand.sysid, ro->tl, path, e)) != 0) {
				tw_pgmeta_clear(&cand);
				goto out;
			}
			have_path = 1;
			path_sysid = cand.sysid;
		}
		const struct tw_pitr_tlpath *p = own;
		uint32_t key = cand.tli; /* 0: along path */
		if (!current && path_sysid == cand.sysid &&
		    tw_pitr_tlpath_has(path, cand.tli, cand.start_lsn)) {
			p = path;
			key = 0;
		} else {
			own->n = 1;
			own->tli[0] = cand.tli;
			own->begin[0] = 0;
		}
		int same = have_newer && newer.sysid == cand.sysid && newer_key == key;
		if (!same)
			have = 0; /* a match found for another cluster or timeline does not count */
		if (!exhausted) {
			int found, ex;
			uint64_t lsn;
			rc = tw_pitr_rp_scan(r, cand.sysid, p, cand.seg_size, cand.start_lsn,
			                     same ? newer.start_lsn : UINT64_MAX, ro->value, &budget,
			                     &found, &lsn, &ex, e);
			if (rc != 0) {
				tw_pgmeta_clear(&cand);
				rc = tw_err_wrap(e, "looking for restore point '%s'", ro->value);
				goto out;
			}
			exhausted = ex;
			if (found) {
				have = 1;
				at = lsn;
			}
		}
		if (have && cand.stop_lsn <= at) {
			char sl[24];
			tw_pgwal_lsn_str(at, sl, sizeof sl);
			fprintf(stderr, "tapwork restore: restore point '%s' is at LSN %s\n", ro->value,
			        sl);
			*m = cand;
			*out = v[i];
			goto out;
		}
		tw_pgmeta_clear(&oldest);
		if (have_newer)
			tw_pgmeta_clear(&newer);
		if ((rc = tw_pgmeta_decode(v[i]->pg, &oldest, e)) != 0) {
			tw_pgmeta_clear(&cand);
			goto out;
		}
		oldest_s = v[i];
		newer = cand;
		newer_key = key;
		have_newer = 1;
	}
	if (npg == 0) {
		rc = tw_err_set(e, TW_ENOENT, "the repository holds no PostgreSQL physical snapshot");
		goto out;
	}
	if (have) {
		char sl[24];
		tw_pgwal_lsn_str(at, sl, sizeof sl);
		rc = tw_err_set(e, TW_ENOENT,
		                "restore point '%s' (LSN %s) is before the end of every PostgreSQL "
		                "snapshot: no snapshot can recover to it",
		                ro->value, sl);
		goto out;
	}
	if (exhausted) { /* too far to look: let PostgreSQL find it, from the oldest */
		fprintf(stderr,
		        "tapwork restore: restore point '%s' not found in the first " TW_STR(
		            TW_PITR_RP_SCAN_MAX) " WAL segments read: restoring the oldest snapshot, "
		                                 "PostgreSQL looks for the point during recovery\n",
		        ro->value);
		*m = oldest;
		memset(&oldest, 0, sizeof oldest);
		*out = oldest_s;
		goto out;
	}
	rc = tw_err_set(e, TW_ENOENT,
	                "restore point '%s' is not in the WAL archive after any PostgreSQL "
	                "snapshot (made with pg_create_restore_point? its segment archived? "
	                "SELECT pg_switch_wal() archives it now)",
	                ro->value);
out:
	if (have_newer)
		tw_pgmeta_clear(&newer);
	tw_pgmeta_clear(&oldest);
	free(path);
	free(own);
	return rc;
}

static int pick(struct tw_repo *r, const struct ropts *ro, struct tw_snapshot **v, size_t n,
                struct tw_snapshot **out, struct tw_pgmeta *m, struct tw_err *e)
{
	*out = NULL;
	if (ro->spec == NULL && ro->kind == T_NAME)
		return pick_by_name(r, ro, v, n, out, m, e);
	if (ro->spec != NULL) {
		struct tw_snapshot *s;
		int rc = tw_repo_find_snapshot(v, n, ro->spec, &s, e);
		if (rc != 0)
			return rc;
		if (s->pg == NULL)
			return tw_err_set(e, TW_EINVAL,
			                  "snapshot %.8s is not a PostgreSQL physical backup",
			                  s->id);
		if ((rc = tw_pgmeta_decode(s->pg, m, e)) != 0)
			return rc;
		if (!ends_before(ro, m)) {
			tw_pgmeta_clear(m);
			return tw_err_set(
			    e, TW_EINVAL,
			    "snapshot %.8s ends after the target: recovery cannot stop "
			    "there (choose an older snapshot)",
			    s->id);
		}
		*out = s;
		return 0;
	}
	size_t npg = 0;
	for (size_t k = n; k-- > 0;) {
		size_t i = k;
		if (v[i]->pg == NULL)
			continue;
		struct tw_pgmeta cand;
		int rc = tw_pgmeta_decode(v[i]->pg, &cand, e);
		if (rc != 0)
			return tw_err_wrap(e, "snapshot %.8s", v[i]->id);
		npg++;
		if ((ro->tl == 0 || cand.tli <= ro->tl) && ends_before(ro, &cand)) {
			*m = cand;
			*out = v[i];
			return 0;
		}
		tw_pgmeta_clear(&cand);
	}
	if (npg == 0)
		return tw_err_set(e, TW_ENOENT,
		                  "the repository holds no PostgreSQL physical snapshot");
	return tw_err_set(e, TW_ENOENT,
	                  "the target is before the end of every PostgreSQL snapshot: no snapshot "
	                  "can recover to it");
}

/* What is in DIR: missing (*state 0), empty (1) or not (2). A non-empty DIR
 * is refused unless force; a DIR a running postmaster uses always is. */
static int inspect_target(const char *dir, int force, int *state, struct tw_err *e)
{
	DIR *d = opendir(dir);
	*state = 0;
	if (d == NULL)
		return errno == ENOENT ? 0 : tw_err_set(e, TW_EIO, "%s: %s", dir, strerror(errno));
	struct dirent *de;
	size_t n = 0;
	int pgver = 0, pid = 0;
	char first[64] = "";
	while ((de = readdir(d)) != NULL) {
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		if (n++ == 0)
			snprintf(first, sizeof first, "%s", de->d_name);
		pgver |= strcmp(de->d_name, "PG_VERSION") == 0;
		pid |= strcmp(de->d_name, "postmaster.pid") == 0;
	}
	closedir(d);
	*state = n ? 2 : 1;
	if (n == 0)
		return 0;
	if (pid) { /* a server may be running on it: never replace that */
		char path[PATH_MAX], line[32] = "";
		snprintf(path, sizeof path, "%s/postmaster.pid", dir);
		FILE *f = fopen(path, "re");
		long p = 0;
		if (f != NULL) {
			if (fgets(line, sizeof line, f) != NULL)
				p = strtol(line, NULL, 10);
			fclose(f);
		}
		if (p > 0 && (kill((pid_t)p, 0) == 0 || errno == EPERM))
			return tw_err_set(e, TW_EEXIST,
			                  "%s is the data directory of a running PostgreSQL (postmaster "
			                  "pid %ld): stop it first; nothing restored",
			                  dir, p);
	}
	if (force)
		return 0;
	if (pgver)
		return tw_err_set(e, TW_EEXIST,
		                  "%s is not empty: it holds a PostgreSQL data directory (PG_VERSION, "
		                  "%zu entries): pass --force to replace it (its contents are "
		                  "removed once the restore is complete), or restore elsewhere",
		                  dir, n);
	return tw_err_set(e, TW_EEXIST,
	                  "%s is not empty (%zu entries, e.g. %s): pass --force to replace its "
	                  "contents, or restore elsewhere",
	                  dir, n, first);
}

/* fsync every file and directory below path (not following symlinks). */
static int fsync_one(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)ftw;
	if (flag == FTW_SL || (!S_ISREG(sb->st_mode) && !S_ISDIR(sb->st_mode)))
		return 0;
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd == -1)
		return -1;
	int rc = fsync(fd);
	close(fd);
	return rc;
}

static int fsync_tree(const char *path, struct tw_err *e)
{
	if (nftw(path, fsync_one, 32, FTW_PHYS) != 0)
		return tw_err_set(e, TW_EIO, "fsync below %s: %s", path, strerror(errno));
	return 0;
}

/* Durability of a restored tree: syncfs(2) of the file system holding it
 * is one journal commit and one device cache flush, where an fsync per
 * file (a thousand files in a small cluster) costs one of each per file.
 * syncfs reports a write-back error of that file system that happened
 * after `fd` was opened (Linux 5.8 on; PostgreSQL's
 * recovery_init_sync_method=syncfs relies on the same), so the caller
 * opens fd before the restore writes the tree; on older kernels, or
 * without that fd, every file and directory is fsynced instead. */
static int syncfs_reports_errors(void)
{
	struct utsname u;
	unsigned maj = 0, min = 0;
	return uname(&u) == 0 && sscanf(u.release, "%u.%u", &maj, &min) == 2 &&
	       (maj > 5 || (maj == 5 && min >= 8));
}

static int sync_tree(int fsfd, const char *path, struct tw_err *e)
{
	if (fsfd == -1 || !syncfs_reports_errors())
		return fsync_tree(path, e);
	if (syncfs(fsfd) != 0)
		return tw_err_set(e, TW_EIO, "syncing the file system of %s: %s", path,
		                  strerror(errno));
	return 0;
}

/* an fd of the directory holding path (for sync_tree), or -1 */
static int open_parent(const char *path)
{
	char dir[PATH_MAX];
	snprintf(dir, sizeof dir, "%s", path);
	char *sl = strrchr(dir, '/');
	if (sl == dir)
		sl[1] = '\0';
	else if (sl != NULL)
		*sl = '\0';
	else
		snprintf(dir, sizeof dir, ".");
	return open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
}

static int fsync_dir_of(const char *path)
{
	int fd = open_parent(path);
	if (fd == -1)
		return -1;
	int rc = fsync(fd);
	close(fd);
	return rc;
}

static int remove_one(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb;
	(void)flag;
	(void)ftw;
	return remove(path) == 0 || errno == ENOENT ? 0 : -1;
}

/* Leaves out global/pg_control in the main restore (written last). */
struct pgctl_skip {
	char rel[PATH_MAX];
};

static int skip_pg_control(void *arg, const char *rel)
{
	return strcmp(rel, ((struct pgctl_skip *)arg)->rel) == 0;
}

static int write_file(const char *dir, const char *name, const char *txt, int append,
                      const struct stat *owner, struct tw_err *e)
{
	char path[PATH_MAX];
	snprintf(path, sizeof path, "%s/%s", dir, name);
	int fd =
	    open(path, O_WRONLY | O_CREAT | O_CLOEXEC | O_NOFOLLOW | (append ? O_APPEND : O_TRUNC),
	         0600);
	if (fd == -1)
		return tw_err_set(e, TW_EIO, "create %s: %s", path, strerror(errno));
	size_t n = strlen(txt), off = 0;
	while (off < n) {
		ssize_t w = write(fd, txt + off, n - off);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			break;
		off += (size_t)w;
	}
	if (geteuid() == 0 && fchown(fd, owner->st_uid, owner->st_gid) == -1)
		off = 0;
	int ok = off == n && fsync(fd) == 0;
	ok = close(fd) == 0 && ok;
	return ok ? 0 : tw_err_set(e, TW_EIO, "write %s: %s", path, strerror(errno));
}

static int conf_line(char *buf, size_t cap, size_t *off, const char *key, const char *val)
{
	char q[PATH_MAX * 3];
	if (tw_pitr_conf_quote(val, q, sizeof q) != 0)
		return TW_EINVAL;
	int n = snprintf(buf + *off, cap - *off, "%s = %s\n", key, q);
	if (n < 0 || (size_t)n >= cap - *off)
		return TW_ELIMIT;
	*off += (size_t)n;
	return 0;
}

/* The restore_command: this binary, the repository, a password file. */
static int restore_command(const struct tw_bopts *o, const struct ropts *ro, char *out, size_t cap,
                           char *end, size_t endcap, struct tw_err *e)
{
	char self[PATH_MAX], repo[PATH_MAX], pw[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
	if (n <= 0)
		return tw_err_set(e, TW_EIO, "cannot find the tapwork binary");
	self[n] = '\0';
	if (strncmp(o->repo, "s3:", 3) == 0 || realpath(o->repo, repo) == NULL)
		snprintf(repo, sizeof repo, "%s", o->repo);
	const char *pwf = ro->pwfile         ? ro->pwfile
	                  : o->password_file ? o->password_file
	                                     : getenv("TAPWORK_PASSWORD_FILE");
	pw[0] = '\0';
	if (pwf != NULL && realpath(pwf, pw) == NULL)
		return tw_err_set(e, TW_ENOENT, "password file %s: %s", pwf, strerror(errno));
	char qs[PATH_MAX * 2 + 8], qr[PATH_MAX * 2 + 8], qp[PATH_MAX * 2 + 8];
	if (tw_pitr_sh_quote(self, qs, sizeof qs) != 0 ||
	    tw_pitr_sh_quote(repo, qr, sizeof qr) != 0 || tw_pitr_sh_quote(pw, qp, sizeof qp) != 0)
		return tw_err_set(e, TW_ELIMIT, "path too long");
	char pf[32] = "";
	if (ro->prefetch >= 0)
		snprintf(pf, sizeof pf, " --prefetch %d", ro->prefetch);
	int k = snprintf(out, cap, "%s pg archive-get -q%s -r %s%s%s %%f %%p", qs, pf, qr,
	                 pw[0] ? " --password-file " : "", pw[0] ? qp : "");
	if (k < 0 || (size_t)k >= cap)
		return tw_err_set(e, TW_ELIMIT, "restore_command too long");
	/* archive-get's prefetch spool goes when recovery ends */
	k = snprintf(end, endcap, "%s pg spool-clear", qs);
	if (k < 0 || (size_t)k >= endcap)
		return tw_err_set(e, TW_ELIMIT, "recovery_end_command too long");
	if (pw[0] == '\0')
		fprintf(stderr, "tapwork restore: warning: no password file for restore_command: "
		                "the server needs TAPWORK_PASSWORD_FILE in its environment\n");
	return 0;
}

/* The timelines with a history file in the archive (up to TL_SEEN_MAX). */
#define TL_SEEN_MAX 4096
struct tl_seen {
	size_t n;
	uint32_t tli[TL_SEEN_MAX];
};

static int note_history(void *arg, const char *wal, uint64_t size)
{
	struct tl_seen *h = arg;
	(void)size;
	unsigned long t;
	char hex[9];
	if (tw_pgwal_classify(wal, strlen(wal)) != TW_PGWAL_HISTORY)
		return 0;
	memcpy(hex, wal, 8);
	hex[8] = '\0';
	t = strtoul(hex, NULL, 16);
	if (t > 1 && t <= UINT32_MAX && h->n < TL_SEEN_MAX)
		h->tli[h->n++] = (uint32_t)t;
	return 0;
}

static int cmp_tli_desc(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
	return x < y ? 1 : x > y ? -1 : 0;
}

/* 1 when recovery along the timeline whose history is f[0..nf) starts at
 * the snapshot: PostgreSQL's check (tliOfPointInHistory) takes the first
 * entry, newest first, whose [begin, end) holds the checkpoint, and that
 * must be the snapshot's timeline. The newest entry (the timeline itself)
 * begins at the last switch point and has no end. A history need not be
 * ascending: a promotion after recovery along timeline N that stopped on an
 * older timeline copies N's history and appends "N <where it stopped>", so
 * the new timeline shadows N's and its parents' later ranges. */
static int history_holds(const struct tw_pgwal_fork *f, size_t nf, uint32_t tli, uint64_t ckpt)
{
	if (nf > 0 && ckpt >= f[nf - 1].switch_lsn)
		return 0; /* on the timeline itself */
	for (size_t i = nf; i-- > 0;) {
		uint64_t begin = i > 0 ? f[i - 1].switch_lsn : 0;
		if (ckpt >= begin && ckpt < f[i].switch_lsn)
			return f[i].tli == tli;
	}
	return 0;
}

/* PostgreSQL recovers along the newest timeline by default and stops with
 * "requested timeline N is not a child of this server's history" when that
 * timeline left the snapshot's timeline before the snapshot's checkpoint
 * (or never passed through it): after repeated promoted restores in one
 * archive the newest timeline may fork off anywhere. Every timeline of the
 * archive is considered, newest first: *best = the newest one whose history
 * holds the snapshot (the snapshot's own timeline when none does);
 * *newest = the newest timeline in the archive (what 'latest' picks). Only
 * when no --pg-target-timeline was given. */
static int latest_fits(struct tw_repo *r, const struct tw_pgmeta *m, uint32_t *best,
                       uint32_t *newest, struct tw_err *e)
{
	struct tl_seen *h = calloc(1, sizeof *h);
	struct tw_pgwal_fork *f = calloc(TW_PGWAL_HISTORY_MAX, sizeof *f);
	int rc = 0;
	*best = *newest = m->tli;
	if (h == NULL || f == NULL) {
		rc = tw_err_set(e, TW_ENOMEM, "out of memory");
		goto out;
	}
	if ((rc = tw_pgarch_list(r, m->sysid, note_history, h, e)) != 0)
		goto out;
	qsort(h->tli, h->n, sizeof h->tli[0], cmp_tli_desc);
	if (h->n > 0 && h->tli[0] > *newest)
		*newest = h->tli[0];
	/* the checkpoint recovery starts from (backup_label), else the start */
	uint64_t ckpt = m->start_lsn;
	const char *cl = strstr(m->backup_label, "CHECKPOINT LOCATION: ");
	if (cl != NULL) {
		cl += strlen("CHECKPOINT LOCATION: ");
		tw_pgwal_lsn_parse(cl, strcspn(cl, " \n"), &ckpt);
	}
	for (size_t k = 0; k < h->n && h->tli[k] > m->tli; k++) {
		char name[32];
		uint8_t *txt = NULL;
		size_t len = 0, nf = 0;
		snprintf(name, sizeof name, "%08X.history", (unsigned)h->tli[k]);
		if ((rc = tw_pgarch_get(r, m->sysid, name, &txt, &len, e)) != 0)
			goto out;
		int bad = tw_pgwal_history_parse(txt, len, f, TW_PGWAL_HISTORY_MAX, &nf) != 0;
		free(txt);
		if (bad) {
			rc = tw_err_set(e, TW_ECORRUPT, "%s: malformed", name);
			goto out;
		}
		if (history_holds(f, nf, m->tli, ckpt)) {
			*best = h->tli[k];
			break;
		}
	}
out:
	free(h);
	free(f);
	return rc;
}

static int setup_recovery(struct tw_repo *r, const struct tw_bopts *o, const struct ropts *ro,
                          const char *dir, const struct tw_snapshot *s, const struct tw_pgmeta *m,
                          const char *tsmap, struct tw_err *e)
{
	struct stat owner;
	if (stat(dir, &owner) == -1)
		return tw_err_set(e, TW_EIO, "%s: %s", dir, strerror(errno));
	int rc = write_file(dir, "backup_label", m->backup_label, 0, &owner, e);
	if (rc == 0 && tsmap[0] != '\0')
		rc = write_file(dir, "tablespace_map", tsmap, 0, &owner, e);
	if (rc == 0)
		rc = write_file(dir, "recovery.signal", "", 0, &owner, e);
	if (rc != 0)
		return rc;
	char cmd[PATH_MAX * 7], endcmd[PATH_MAX * 3], conf[PATH_MAX * 24], ts[48];
	if ((rc = restore_command(o, ro, cmd, sizeof cmd, endcmd, sizeof endcmd, e)) != 0)
		return rc;
	size_t off = 0;
	tw_snapshot_time_str(s->time_ns, ts, sizeof ts);
	int n = snprintf(conf, sizeof conf, "\n# tapwork restore: snapshot %s (%s)\n", s->id, ts);
	off = (size_t)n;
	const char *keys[] = {NULL,
	                      "recovery_target_time",
	                      "recovery_target_lsn",
	                      "recovery_target_xid",
	                      "recovery_target_name",
	                      "recovery_target"};
	rc = conf_line(conf, sizeof conf, &off, "restore_command", cmd);
	if (rc == 0)
		rc = conf_line(conf, sizeof conf, &off, "recovery_end_command", endcmd);
	if (rc == 0 && ro->kind != T_NONE)
		rc = conf_line(conf, sizeof conf, &off, keys[ro->kind], ro->value);
	if (rc == 0 && ro->exclusive)
		rc = conf_line(conf, sizeof conf, &off, "recovery_target_inclusive", "off");
	if (rc == 0 && ro->action != NULL)
		rc = conf_line(conf, sizeof conf, &off, "recovery_target_action", ro->action);
	if (rc == 0 && ro->timeline != NULL)
		rc = conf_line(conf, sizeof conf, &off, "recovery_target_timeline", ro->timeline);
	else if (rc == 0) {
		uint32_t best, newest;
		if ((rc = latest_fits(r, m, &best, &newest, e)) != 0)
			return rc;
		if (best != newest) {
			char num[16];
			snprintf(num, sizeof num, "%u", (unsigned)best);
			fprintf(stderr,
			        "tapwork restore: the newest timeline %u does not pass through this "
			        "snapshot (timeline %u): recovering along timeline %u, the newest one "
			        "that does (--pg-target-timeline chooses)\n",
			        newest, m->tli, best);
			rc = conf_line(conf, sizeof conf, &off, "recovery_target_timeline",
			               best == m->tli ? "current" : num);
		}
	}
	if (rc != 0)
		return tw_err_set(e, rc,
		                  "a recovery setting cannot be written to postgresql.auto.conf");
	return write_file(dir, "postgresql.auto.conf", conf, 1, &owner, e);
}

static const char *last_component(const char *p)
{
	const char *s = strrchr(p, '/');
	return s && s[1] ? s + 1 : "root";
}

/* Where each tablespace of m goes: --pg-tablespace or where it was. Each
 * target must be missing or empty (never replaced, even with --force: it
 * may be a running cluster's). dest[i] malloc'd. */
static int ts_targets(const struct ropts *ro, const struct tw_pgmeta *m, char **dest,
                      struct tw_err *e)
{
	for (int k = 0; k < ro->ntsarg; k++) {
		const char *a = ro->tsarg[k], *eq = strchr(a, '=');
		size_t i = 0;
		for (; i < m->nts; i++) {
			char oid[16];
			snprintf(oid, sizeof oid, "%u", (unsigned)m->ts[i].oid);
			if ((strlen(oid) == (size_t)(eq - a) && memcmp(oid, a, (size_t)(eq - a)) == 0) ||
			    (strlen(m->ts[i].name) == (size_t)(eq - a) &&
			     memcmp(m->ts[i].name, a, (size_t)(eq - a)) == 0))
				break;
		}
		if (i == m->nts)
			return tw_err_set(e, TW_EINVAL,
			                  "--pg-tablespace %s: the snapshot has no tablespace %.*s "
			                  "(it has %zu)",
			                  a, (int)(eq - a), a, m->nts);
		char *d = eq[1] == '/' ? strdup(eq + 1) : NULL;
		if (eq[1] != '/') {
			char cwd[PATH_MAX];
			if (getcwd(cwd, sizeof cwd) == NULL)
				return tw_err_set(e, TW_EIO, "getcwd: %s", strerror(errno));
			size_t l = strlen(cwd) + strlen(eq + 1) + 2;
			if ((d = malloc(l)) != NULL)
				snprintf(d, l, "%s/%s", cwd, eq + 1);
		}
		if (d == NULL)
			return tw_err_set(e, TW_ENOMEM, "out of memory");
		free(dest[i]);
		dest[i] = d;
	}
	for (size_t i = 0; i < m->nts; i++) {
		if (dest[i] == NULL && (dest[i] = strdup(m->ts[i].path)) == NULL)
			return tw_err_set(e, TW_ENOMEM, "out of memory");
		if (strchr(dest[i], '\n') != NULL || strchr(dest[i], '\r') != NULL)
			return tw_err_set(e, TW_EINVAL, "tablespace directory with a newline");
		int state;
		struct tw_err te = {0};
		if (inspect_target(dest[i], 0, &state, &te) != 0)
			return tw_err_set(e, TW_EEXIST,
			                  "tablespace %s (OID %u) would be restored into %s, which is "
			                  "not empty: give it another directory with --pg-tablespace "
			                  "%s=DIR",
			                  m->ts[i].name, (unsigned)m->ts[i].oid, dest[i], m->ts[i].name);
		for (size_t k = 0; k < i; k++)
			if (strcmp(dest[k], dest[i]) == 0)
				return tw_err_set(e, TW_EINVAL, "two tablespaces into %s", dest[i]);
	}
	return 0;
}

/* tablespace_map for the restored cluster: "OID DIR" lines, with '\' escaped
 * as PostgreSQL writes it (recovery re-creates pg_tblspc/OID from it). */
static char *ts_map_text(const struct tw_pgmeta *m, char *const *dest)
{
	size_t cap = 1;
	for (size_t i = 0; i < m->nts; i++)
		cap += 16 + 2 * strlen(dest[i]);
	char *t = malloc(cap), *p = t;
	if (t == NULL)
		return NULL;
	for (size_t i = 0; i < m->nts; i++) {
		p += snprintf(p, cap - (size_t)(p - t), "%u ", (unsigned)m->ts[i].oid);
		for (const char *c = dest[i]; *c; c++) {
			if (*c == '\\')
				*p++ = '\\';
			*p++ = *c;
		}
		*p++ = '\n';
	}
	*p = '\0';
	return t;
}

int tw_pitr_restore_cmd(int argc, char **argv)
{
	if (tw_cli_wants_help(argc, argv)) {
		usage(stdout);
		return 0;
	}
	struct tw_bopts o = {0};
	struct ropts ro = {.prefetch = -1};
	if (parse_args(argc, argv, &o, &ro) != 0)
		return TW_EXIT_USAGE;
	struct tw_repo *r;
	int rc = tw_pgkc_open(&o, "restore", 0, &r);
	if (rc != 0)
		return rc;
	struct tw_err e = {0};
	struct tw_snapshot **v = NULL, *s = NULL;
	size_t n = 0;
	struct tw_pgmeta m = {0};
	char stage[PATH_MAX] = "", from[PATH_MAX];
	char *tsdest[TW_PGMETA_TS_MAX] = {0}, *tsmap = NULL;
	char tsstage[TW_PGMETA_TS_MAX][PATH_MAX];
	size_t tsstaged = 0;
	double t0 = tw_progress_now();
	int state = 0, err = tw_repo_load_index(r, &e);
	if (err == 0)
		err = tw_repo_list_snapshots(r, &v, &n, &e);
	if (err == 0)
		err = pick(r, &ro, v, n, &s, &m, &e);
	if (err == 0)
		err = inspect_target(ro.pgdata, ro.force, &state, &e);
	if (err == 0)
		err = ts_targets(&ro, &m, tsdest, &e);
	if (err == 0 && m.nts > 0 && (tsmap = ts_map_text(&m, tsdest)) == NULL)
		err = tw_err_set(&e, TW_ENOMEM, "out of memory");
	if (err != 0)
		goto fail;
	/* Restore beside DIR, everything but global/pg_control; add the
	 * recovery files; fsync it all; then pg_control; then move the data
	 * directory into place in one rename. An interrupted restore leaves DIR
	 * as it was, and its staging copy has no pg_control: nothing startable. */
	snprintf(stage, sizeof stage, "%s.tapwork-restore-%ld", ro.pgdata, (long)getpid());
	const char *base = last_component(m.pgdata);
	snprintf(from, sizeof from, "%s/%s", stage, base);
	struct pgctl_skip sk;
	snprintf(sk.rel, sizeof sk.rel, "%s/global/pg_control", base);
	struct tw_restore_opts rso = {.target = stage,
	                              .include = base,
	                              .threads = ro.threads,
	                              .skip = skip_pg_control,
	                              .skip_arg = &sk,
	                              .writeback = 1};
	struct tw_restore_stats st = {0}, st2 = {0};
	struct tw_progress pg;
	rso.progress = &pg;
	tw_progress_start(&pg, "restore", o.json, o.quiet);
	int fsfd = open_parent(ro.pgdata), tsfd = -1;
	err = tw_restore_run(r, s, &rso, &st, &e);
	tw_progress_stop(&pg);
	/* each tablespace beside its target directory, then pg_tblspc/OID -> it */
	for (size_t i = 0; err == 0 && i < m.nts; i++) {
		snprintf(tsstage[i], sizeof tsstage[i], "%s.tapwork-restore-%ld", tsdest[i],
		         (long)getpid());
		tsstaged = i + 1;
		struct tw_progress tp;
		struct tw_restore_stats ts = {0};
		struct tw_restore_opts to = {.target = tsstage[i],
		                             .include = last_component(m.ts[i].path),
		                             .threads = ro.threads,
		                             .writeback = 1,
		                             .progress = &tp};
		tw_progress_start(&tp, "restore", 0, 1);
		tsfd = open_parent(tsdest[i]);
		err = tw_restore_run(r, s, &to, &ts, &e);
		tw_progress_stop(&tp);
		st.files += ts.files;
		st.bytes += ts.bytes;
		char link[PATH_MAX + 32];
		snprintf(link, sizeof link, "%s/pg_tblspc/%u", from, (unsigned)m.ts[i].oid);
		struct stat own;
		if (err == 0 && ((unlink(link) == -1 && errno != ENOENT) ||
		                 symlink(tsdest[i], link) == -1 || lstat(from, &own) == -1 ||
		                 (geteuid() == 0 && lchown(link, own.st_uid, own.st_gid) == -1)))
			err = tw_err_set(&e, TW_EIO, "%s: %s", link, strerror(errno));
		if (err == 0)
			err = sync_tree(tsfd, tsstage[i], &e);
		if (tsfd != -1)
			close(tsfd);
	}
	if (err == 0)
		err = setup_recovery(r, &o, &ro, from, s, &m, tsmap ? tsmap : "", &e);
	if (err == 0)
		err = sync_tree(fsfd, from, &e);
	if (fsfd != -1)
		close(fsfd);
	if (err != 0)
		goto fail;
	struct tw_progress quiet;
	struct tw_restore_opts last = {
	    .target = stage, .include = sk.rel, .threads = 1, .progress = &quiet};
	tw_progress_start(&quiet, "restore", 0, 1);
	err = tw_restore_run(r, s, &last, &st2, &e);
	tw_progress_stop(&quiet);
	if (err != 0)
		goto fail;
	char ctl[PATH_MAX + 32];
	snprintf(ctl, sizeof ctl, "%s/global/pg_control", from);
	int cfd = open(ctl, O_RDONLY | O_CLOEXEC);
	if (cfd == -1 || fsync(cfd) != 0 || fsync_dir_of(ctl) != 0) {
		err = tw_err_set(&e, TW_EIO, "%s: %s", ctl, strerror(errno));
		if (cfd != -1)
			close(cfd);
		goto fail;
	}
	close(cfd);
	st.files += st2.files;
	st.bytes += st2.bytes;
	/* the tablespaces into place, then the data directory (which commits) */
	for (size_t i = 0; i < m.nts; i++) {
		char src[PATH_MAX * 2];
		snprintf(src, sizeof src, "%s/%s", tsstage[i], last_component(m.ts[i].path));
		if ((rmdir(tsdest[i]) == -1 && errno != ENOENT) || rename(src, tsdest[i]) == -1) {
			err = tw_err_set(&e, TW_EIO, "moving %s to %s: %s", src, tsdest[i],
			                 strerror(errno));
			goto fail;
		}
		fsync_dir_of(tsdest[i]);
		rmdir(tsstage[i]);
	}
	tsstaged = 0;
	if (state == 2) {
		/* --force: swap the old contents out in one step, then remove them */
		if (renameat2(AT_FDCWD, from, AT_FDCWD, ro.pgdata, RENAME_EXCHANGE) == -1) {
			err = tw_err_set(&e, TW_EIO, "exchanging %s and %s: %s", from, ro.pgdata,
			                 strerror(errno));
			goto fail;
		}
		fsync_dir_of(ro.pgdata);
		if (nftw(from, remove_one, 32, FTW_DEPTH | FTW_PHYS) != 0)
			fprintf(stderr, "tapwork restore: warning: removing the old contents (%s): %s\n",
			        from, strerror(errno));
	} else if ((state == 1 && rmdir(ro.pgdata) == -1) || rename(from, ro.pgdata) == -1) {
		err =
		    tw_err_set(&e, TW_EIO, "moving %s to %s: %s", from, ro.pgdata, strerror(errno));
		goto fail;
	}
	fsync_dir_of(ro.pgdata);
	rmdir(stage);
	stage[0] = '\0';
	char sl[24];
	tw_pgwal_lsn_str(m.stop_lsn, sl, sizeof sl);
	if (o.json)
		printf("{\"type\":\"summary\",\"snapshot_id\":\"%s\",\"postgres\":\"physical\","
		       "\"stop_lsn\":\"%s\",\"timeline\":%u,\"files\":%llu,\"bytes\":%llu,"
		       "\"seconds\":%.3f}\n",
		       s->id, sl, m.tli, (unsigned long long)st.files, (unsigned long long)st.bytes,
		       tw_progress_now() - t0);
	else if (!o.quiet)
		printf(
		    "restored snapshot %.8s (consistent at LSN %s, timeline %u) to %s: %llu files, "
		    "%.1f MiB, %.2fs\nstart PostgreSQL on %s to replay the WAL archive%s%s\n",
		    s->id, sl, m.tli, ro.pgdata, (unsigned long long)st.files, st.bytes / 1048576.0,
		    tw_progress_now() - t0, ro.pgdata, ro.kind != T_NONE ? " to the target " : "",
		    ro.kind != T_NONE ? ro.value : "");
	for (size_t i = 0; i < TW_PGMETA_TS_MAX; i++)
		free(tsdest[i]);
	free(tsmap);
	tw_pgmeta_clear(&m);
	tw_repo_free_snapshots(v, n);
	tw_repo_close(r);
	return TW_EXIT_OK;
fail:
	tw_bcli_fail("restore", &e);
	if (stage[0] != '\0')
		fprintf(stderr, "tapwork restore: the partial restore is left in %s\n", stage);
	for (size_t i = 0; i < tsstaged; i++)
		fprintf(stderr, "tapwork restore: the partial restore of tablespace %s is left in %s\n",
		        m.ts[i].name, tsstage[i]);
	for (size_t i = 0; i < TW_PGMETA_TS_MAX; i++)
		free(tsdest[i]);
	free(tsmap);
	tw_pgmeta_clear(&m);
	tw_repo_free_snapshots(v, n);
	tw_repo_close(r);
	return TW_EXIT_ERROR;
}
