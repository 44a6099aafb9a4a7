/* spool.c — WAL prefetch for archive-get (see spool.h). */
#include "pg/spool.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <openssl/evp.h>

#include "backup/repo.h"
#include "pg/archive.h"
#include "pg/keycache.h"
#include "pg/wal.h"
#include "pg/walhdr.h"

#define WAIT_MS 120000 /* longest wait for a segment the prefetcher is fetching */

static int exists_at(int dfd, const char *name)
{
	return faccessat(dfd, name, F_OK, AT_SYMLINK_NOFOLLOW) == 0;
}

static void sleep_ms(long ms)
{
	struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
	while (nanosleep(&ts, &ts) == -1 && errno == EINTR)
		;
}

/* Spool files are not fsynced. Data written to the page cache survives
 * anything but a kernel crash or power loss, and both end in a reboot: the
 * prefetcher writes the boot id (/proc/sys/kernel/random/boot_id) into
 * tapwork-spool/boot before its first file, and a spool whose boot id is
 * not this boot's is never served (its files are deleted by the next
 * prefetcher). Where the boot id cannot be read, every spool file is
 * fsynced before it gets its name, as before. An fsync of a 16 MiB file on
 * a busy disk costs more than the fetch itself (measured: 0.5-0.9 s per
 * segment of replay with it, on this shared machine). What a write error in
 * the kernel's writeback loses within one boot, the .sum- check of
 * spool_intact() catches before the file is served. */
static int boot_id(char out[40])
{
	int fd = open("/proc/sys/kernel/random/boot_id", O_RDONLY | O_CLOEXEC);
	ssize_t n = fd == -1 ? -1 : read(fd, out, 39);
	if (fd != -1)
		close(fd);
	if (n < 32)
		return -1;
	out[n] = '\0';
	out[strcspn(out, "\n")] = '\0';
	return 0;
}

/* 1 when the spool's files were written in this boot, or when no boot id
 * is available (then they were fsynced). */
static int spool_fresh(int dfd)
{
	char cur[40], have[40];
	if (boot_id(cur) != 0)
		return 1;
	int fd = openat(dfd, "boot", O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	ssize_t n = fd == -1 ? -1 : read(fd, have, sizeof have - 1);
	if (fd != -1)
		close(fd);
	if (n <= 0)
		return 0;
	have[n] = '\0';
	return strcmp(have, cur) == 0;
}

/* The prefetcher (lock held): a spool of another boot loses its segment
 * files, then gets this boot's id. 0 = files need no fsync. */
static int spool_renew(int dfd)
{
	char cur[40];
	if (boot_id(cur) != 0)
		return -1;
	if (spool_fresh(dfd))
		return 0;
	int fd = openat(dfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	DIR *d = fd == -1 ? NULL : fdopendir(fd);
	if (d == NULL) {
		if (fd != -1)
			close(fd);
		return -1;
	}
	struct dirent *de;
	while ((de = readdir(d)) != NULL)
		if (tw_pgwal_classify(de->d_name, strlen(de->d_name)) == TW_PGWAL_SEGMENT)
			unlinkat(dirfd(d), de->d_name, 0);
	closedir(d);
	fd = openat(dfd, ".tmp-boot", O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
	size_t len = strlen(cur);
	int ok = fd != -1 && write(fd, cur, len) == (ssize_t)len;
	if (fd != -1)
		ok = close(fd) == 0 && ok;
	if (!ok || renameat(dfd, ".tmp-boot", dfd, "boot") == -1) {
		unlinkat(dfd, ".tmp-boot", 0);
		return -1;
	}
	return 0;
}

void tw_pgspool_open(struct tw_pgspool *sp, const char *pgdata, uint64_t sysid, const char *wal,
                     unsigned k)
{
	memset(sp, 0, sizeof *sp);
	sp->dfd = -1;
	sp->sysid = sysid;
	if (k == 0 || tw_pgwal_classify(wal, strlen(wal)) != TW_PGWAL_SEGMENT)
		return;
	char path[4200];
	snprintf(path, sizeof path, "%s/recovery.signal", pgdata);
	if (access(path, F_OK) != 0) {
		snprintf(path, sizeof path, "%s/standby.signal", pgdata);
		if (access(path, F_OK) != 0)
			return; /* not in recovery: e.g. a manual call on a running primary */
	}
	/* the timeline; the segment number needs the segment size, which
	 * tw_pgspool_ahead reads from the served segment's header */
	char hex[9];
	memcpy(hex, wal, 8);
	hex[8] = '\0';
	sp->tli = (uint32_t)strtoul(hex, NULL, 16);
	memcpy(sp->wal, wal, TW_PGWAL_NAME_LEN);
	sp->wal[TW_PGWAL_NAME_LEN] = '\0';
	int l = snprintf(path, sizeof path, "%s/" TW_PGSPOOL_DIR, pgdata);
	if (l < 0 || (size_t)l >= sizeof path)
		return;
	if (mkdir(path, 0700) == -1 && errno != EEXIST)
		return;
	sp->dfd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
	sp->k = k > TW_PGSPOOL_MAX ? TW_PGSPOOL_MAX : k;
}

void tw_pgspool_close(struct tw_pgspool *sp)
{
	if (sp->dfd != -1)
		close(sp->dfd);
	sp->dfd = -1;
}

/* The lock file, locked exclusively without waiting: its fd, or -1 when a
 * prefetcher holds it (or it cannot be opened). */
static int lock_try(int dfd)
{
	int fd = openat(dfd, "lock", O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd == -1)
		return -1;
	if (flock(fd, LOCK_EX | LOCK_NB) == -1) {
		close(fd);
		return -1;
	}
	return fd;
}

static int prefetcher_running(int dfd)
{
	int fd = lock_try(dfd);
	if (fd == -1)
		return 1;
	close(fd); /* releases it */
	return 0;
}

/* 1 when spool file `wal` holds the bytes its `.sum-` file names (the
 * SHA-256 the prefetcher checked while writing it): what the page cache or
 * the disk gives back now is what the repository held. */
static int spool_intact(int dfd, const char *wal)
{
	char sum[64];
	uint8_t want[32], got[32], buf[1 << 16];
	snprintf(sum, sizeof sum, ".sum-%s", wal);
	int fd = openat(dfd, sum, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd == -1)
		return 0;
	int ok = read(fd, want, sizeof want) == (ssize_t)sizeof want;
	close(fd);
	fd = ok ? openat(dfd, wal, O_RDONLY | O_CLOEXEC | O_NOFOLLOW) : -1;
	EVP_MD_CTX *md = fd != -1 ? EVP_MD_CTX_new() : NULL;
	ok = md != NULL && EVP_DigestInit_ex(md, EVP_sha256(), NULL) == 1;
	ssize_t got_n = 0;
	while (ok && (got_n = read(fd, buf, sizeof buf)) > 0)
		ok = EVP_DigestUpdate(md, buf, (size_t)got_n) == 1;
	unsigned hl = 0;
	ok = ok && got_n == 0 && EVP_DigestFinal_ex(md, got, &hl) == 1 && hl == 32 &&
	     memcmp(got, want, 32) == 0;
	EVP_MD_CTX_free(md);
	if (fd != -1)
		close(fd);
	return ok;
}

/* One try: 1 = served into dest; 0 = not in the spool (yet); -1 = there but
 * not servable (damaged: deleted, or dest on another file system). */
static int serve(int dfd, const char *wal, const char *dest)
{
	char sum[64];
	snprintf(sum, sizeof sum, ".sum-%s", wal);
	if (!exists_at(dfd, wal))
		return 0;
	if (!spool_intact(dfd, wal)) {
		unlinkat(dfd, wal, 0);
		unlinkat(dfd, sum, 0);
		return -1;
	}
	if (renameat(dfd, wal, AT_FDCWD, dest) != 0)
		return errno == ENOENT ? 0 : -1;
	unlinkat(dfd, sum, 0);
	return 1;
}

int tw_pgspool_take(struct tw_pgspool *sp, const char *wal, const char *dest)
{
	if (sp->dfd == -1 || !spool_fresh(sp->dfd))
		return 0;
	char want[64];
	snprintf(want, sizeof want, ".want-%s", wal);
	for (long waited = 0;; waited += 2) {
		int r = serve(sp->dfd, wal, dest);
		if (r != 0)
			return r == 1; /* -1: fetch directly */
		/* being fetched right now? then wait for it rather than fetch twice */
		if (waited >= WAIT_MS || !exists_at(sp->dfd, want) || !prefetcher_running(sp->dfd))
			break;
		sleep_ms(2);
	}
	/* it may have landed between the first try and the checks */
	return serve(sp->dfd, wal, dest) == 1;
}

/* Window of the prefetcher: segments segno+1 .. segno+k of timeline tli. */
static int in_window(const struct tw_pgspool *sp, const char *name)
{
	uint32_t tli;
	uint64_t segno;
	if (tw_pgwal_seg_parse(name, strlen(name), sp->seg_size, &tli, &segno) != 0)
		return 0;
	return segno > sp->segno && segno <= sp->segno + sp->k;
}

/* Delete what is outside the window; with locked (no prefetcher runs) also
 * temporary files and markers a killed prefetcher left. */
static void trim(const struct tw_pgspool *sp, int locked)
{
	int fd = openat(sp->dfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	DIR *d = fd == -1 ? NULL : fdopendir(fd);
	if (d == NULL) {
		if (fd != -1)
			close(fd);
		return;
	}
	struct dirent *de;
	while ((de = readdir(d)) != NULL) {
		const char *n = de->d_name;
		size_t len = strlen(n);
		int del;
		if (tw_pgwal_classify(n, len) == TW_PGWAL_SEGMENT)
			del = !in_window(sp, n);
		else if (strncmp(n, ".sum-", 5) == 0)
			del = !in_window(sp, n + 5);
		else
			del = locked && (strncmp(n, ".tmp-", 5) == 0 || strncmp(n, ".want-", 6) == 0);
		if (del)
			unlinkat(sp->dfd, n, 0);
	}
	closedir(d);
}

/* ---- the prefetcher (a forked process) ---- */

struct job {
	struct tw_repo *r;
	int dfd;
	int sync; /* fsync each file (no boot id to tell a reboot) */
	uint64_t sysid;
	char (*names)[32];
	size_t n;
	atomic_size_t next;
};

static void fetch_one(struct job *j, const char *name)
{
	char tmp[64], want[64], sum[64];
	snprintf(tmp, sizeof tmp, ".tmp-%s", name);
	snprintf(want, sizeof want, ".want-%s", name);
	snprintf(sum, sizeof sum, ".sum-%s", name);
	struct tw_err e = {0};
	uint64_t n;
	uint8_t h[32];
	/* authenticated, decompressed and hash-checked, as a direct fetch;
	 * complete before it gets its name. Its SHA-256 goes to .sum-NAME
	 * first: archive-get serves the file only when its bytes still hash to
	 * that (a write error in the kernel's writeback, a power loss), and
	 * after a reboot the boot id disowns the spool anyway (or, without one,
	 * the fsync kept it whole). */
	int fd = openat(j->dfd, tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
	int ok = fd != -1 && tw_pgarch_get_fd(j->r, j->sysid, name, fd, &n, h, &e) == 0 &&
	         (!j->sync || fsync(fd) == 0);
	if (fd != -1)
		ok = close(fd) == 0 && ok;
	if (ok) {
		int sfd = openat(j->dfd, sum, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
		ok = sfd != -1 && write(sfd, h, sizeof h) == (ssize_t)sizeof h &&
		     (!j->sync || fsync(sfd) == 0);
		if (sfd != -1)
			ok = close(sfd) == 0 && ok;
	}
	if (fd != -1 && (!ok || renameat(j->dfd, tmp, j->dfd, name) == -1))
		unlinkat(j->dfd, tmp, 0);
	/* done either way: a waiting archive-get looks for the file or fetches */
	unlinkat(j->dfd, want, 0);
}

static void *worker(void *arg)
{
	struct job *j = arg;
	for (;;) {
		size_t i = atomic_fetch_add(&j->next, 1);
		if (i >= j->n || exists_at(j->dfd, "stop"))
			break;
		fetch_one(j, j->names[i]);
	}
	return NULL;
}

static void prefetch(struct tw_pgspool *sp, struct tw_bopts *o)
{
	int sync = spool_renew(sp->dfd) != 0;
	char names[TW_PGSPOOL_MAX][32];
	size_t n = 0;
	for (unsigned i = 1; i <= sp->k; i++) {
		tw_pgwal_seg_name(sp->tli, sp->segno + i, sp->seg_size, names[n], sizeof names[n]);
		if (exists_at(sp->dfd, names[n]))
			continue;
		char want[64];
		snprintf(want, sizeof want, ".want-%s", names[n]);
		int fd = openat(sp->dfd, want, O_WRONLY | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
		if (fd != -1)
			close(fd);
		n++;
	}
	if (n == 0)
		return;
	struct job j = {.dfd = sp->dfd, .sync = sync, .sysid = sp->sysid, .names = names, .n = n};
	atomic_init(&j.next, 0);
	if (tw_pgkc_open(o, "pg archive-get", 0, &j.r) == 0) {
		pthread_t th[TW_PGSPOOL_WORKERS];
		int started[TW_PGSPOOL_WORKERS] = {0};
		/* leave a CPU to PostgreSQL's replay: one fetch at a time on <= 2 */
		long cpus = sysconf(_SC_NPROCESSORS_ONLN);
		size_t nw = cpus > 2 ? TW_PGSPOOL_WORKERS : 1;
		if (nw > n)
			nw = n;
		for (size_t i = 1; i < nw; i++)
			started[i] = pthread_create(&th[i], NULL, worker, &j) == 0;
		worker(&j);
		for (size_t i = 1; i < nw; i++)
			if (started[i])
				pthread_join(th[i], NULL);
		tw_repo_close(j.r);
	}
	for (size_t i = 0; i < n; i++) { /* what was never tried */
		char want[64];
		snprintf(want, sizeof want, ".want-%s", names[i]);
		unlinkat(sp->dfd, want, 0);
	}
}

void tw_pgspool_ahead(struct tw_pgspool *sp, struct tw_bopts *o, const char *dest)
{
	if (sp->dfd == -1 || exists_at(sp->dfd, "stop"))
		return;
	/* the segment size and number from the served segment's own header */
	uint8_t b[TW_PGWALHDR_LEN];
	struct tw_pgwalhdr h;
	struct tw_err e = {0};
	int fd = open(dest, O_RDONLY | O_CLOEXEC);
	ssize_t got = fd == -1 ? -1 : pread(fd, b, sizeof b, 0);
	if (fd != -1)
		close(fd);
	uint32_t tli;
	if (got != (ssize_t)sizeof b || tw_pgwalhdr_parse(b, sizeof b, &h, &e) != 0 ||
	    tw_pgwal_seg_parse(sp->wal, strlen(sp->wal), h.seg_size, &tli, &sp->segno) != 0 ||
	    tli != sp->tli || h.pageaddr != sp->segno * h.seg_size)
		return; /* not what its name says: no guessing ahead of it */
	sp->seg_size = h.seg_size;
	int lfd = lock_try(sp->dfd);
	trim(sp, lfd != -1);
	if (lfd == -1)
		return; /* one runs already: the next call starts the next one */
	int missing = !spool_fresh(sp->dfd);
	for (unsigned i = 1; i <= sp->k && !missing; i++) {
		char name[32];
		tw_pgwal_seg_name(sp->tli, sp->segno + i, sp->seg_size, name, sizeof name);
		missing = !exists_at(sp->dfd, name);
	}
	if (!missing) {
		close(lfd);
		return;
	}
	fflush(NULL);
	pid_t pid = fork();
	if (pid != 0) { /* the parent (or fork failed): the lock goes with the child */
		close(lfd);
		return;
	}
	/* the child: nothing to say to PostgreSQL's log or to a caller's pipe;
	 * it stays in the server's process group, so a server shutdown stops it */
	int nul = open("/dev/null", O_RDWR | O_CLOEXEC);
	if (nul != -1) {
		dup2(nul, 0);
		dup2(nul, 1);
		dup2(nul, 2);
		close(nul);
	}
	o->quiet = 1;
	prefetch(sp, o);
	close(lfd);
	_exit(0);
}

int tw_pgspool_clear(const char *pgdata, struct tw_err *e)
{
	char path[4200];
	int l = snprintf(path, sizeof path, "%s/" TW_PGSPOOL_DIR, pgdata);
	if (l < 0 || (size_t)l >= sizeof path)
		return tw_err_set(e, TW_ELIMIT, "path too long");
	int dfd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
	if (dfd == -1)
		return errno == ENOENT ? 0 : tw_err_set(e, TW_EIO, "%s: %s", path, strerror(errno));
	/* tell a running prefetcher to stop after the file it is on, wait for it */
	int sfd = openat(dfd, "stop", O_WRONLY | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (sfd != -1)
		close(sfd);
	int lfd = -1;
	for (int ms = 0; ms < 60000 && (lfd = lock_try(dfd)) == -1; ms += 10)
		sleep_ms(10);
	DIR *d = fdopendir(dfd);
	if (d == NULL) {
		close(dfd);
		if (lfd != -1)
			close(lfd);
		return tw_err_set(e, TW_EIO, "%s: %s", path, strerror(errno));
	}
	struct dirent *de;
	while ((de = readdir(d)) != NULL)
		if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0)
			unlinkat(dirfd(d), de->d_name, 0);
	closedir(d);
	if (lfd != -1)
		close(lfd);
	if (rmdir(path) == -1 && errno != ENOENT)
		return tw_err_set(e, TW_EIO, "remove %s: %s", path, strerror(errno));
	return 0;
}
