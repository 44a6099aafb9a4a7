/* local.c — the local-directory storage driver.
 *
 * Layout (docs/repository-format.md): REPO/config, REPO/keys/N,
 * REPO/data/xx/N, REPO/index/N, REPO/snapshots/N, REPO/locks/N.
 * put = write to ".tmp-*" in the target directory, fsync, rename (or link()
 * for a conditional put), fsync the directory. */
#include "storage/storage.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

struct local {
	struct tw_storage base;
	char root[PATH_MAX];
	atomic_uint tmp_seq;
};

/* Directory holding objects of type t named name (name may be NULL for the
 * type's top directory). */
static int dir_of(struct local *l, enum tw_st_type t, const char *name, char *out, size_t cap)
{
	int n;
	if (t == TW_ST_CONFIG)
		n = snprintf(out, cap, "%s", l->root);
	else if (t == TW_ST_DATA && name != NULL)
		n = snprintf(out, cap, "%s/data/%.2s", l->root, name);
	else
		n = snprintf(out, cap, "%s/%s", l->root, tw_storage_type_name(t));
	return n < 0 || (size_t)n >= cap ? TW_ELIMIT : 0;
}

static int path_of(struct local *l, enum tw_st_type t, const char *name, char *out, size_t cap,
		   struct tw_err *e)
{
	if ((unsigned)t >= TW_ST_NTYPES || !tw_storage_name_ok(name))
		return tw_err_set(e, TW_EINVAL, "bad object name");
	if (t == TW_ST_CONFIG && strcmp(name, "config") != 0)
		return tw_err_set(e, TW_EINVAL, "config object must be named config");
	if (t == TW_ST_DATA && strlen(name) < 2)
		return tw_err_set(e, TW_EINVAL, "pack name too short");
	char dir[PATH_MAX];
	if (dir_of(l, t, name, dir, sizeof dir) != 0)
		return tw_err_set(e, TW_ELIMIT, "path too long");
	int n = snprintf(out, cap, "%s/%s", dir, name);
	if (n < 0 || (size_t)n >= cap)
		return tw_err_set(e, TW_ELIMIT, "path too long");
	return 0;
}

static int fsync_dir(const char *dir)
{
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd == -1)
		return -1;
	int rc = fsync(fd);
	close(fd);
	return rc;
}

static int write_all(int fd, const uint8_t *p, size_t n)
{
	while (n > 0) {
		ssize_t w = write(fd, p, n);
		if (w == -1) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

static int io_err(struct tw_err *e, const char *what, const char *path)
{
	int err = errno;
	int code = err == ENOENT ? TW_ENOENT : err == EEXIST ? TW_EEXIST : err == EACCES || err == EPERM ? TW_EPERM : TW_EIO;
	return tw_err_set(e, code, "%s %s: %s", what, path, strerror(err));
}

static int local_put(struct tw_storage *s, enum tw_st_type t, const char *name, const void *buf,
		     size_t len, int flags, struct tw_err *e)
{
	struct local *l = (struct local *)s;
	char path[PATH_MAX], dir[PATH_MAX], tmp[PATH_MAX];
	int rc = path_of(l, t, name, path, sizeof path, e);
	if (rc != 0)
		return rc;
	dir_of(l, t, name, dir, sizeof dir);
	unsigned seq = atomic_fetch_add(&l->tmp_seq, 1);
	int n = snprintf(tmp, sizeof tmp, "%s/.tmp-%s-%ld-%u", dir, name, (long)getpid(), seq);
	if (n < 0 || (size_t)n >= sizeof tmp)
		return tw_err_set(e, TW_ELIMIT, "path too long");
	int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd == -1 && errno == ENOENT && (t == TW_ST_DATA || t == TW_ST_WAL)) {
		/* fan-out directory not there yet (or wal/ in a repository made
		 * before that type existed) */
		if (mkdir(dir, 0700) == -1 && errno != EEXIST)
			return io_err(e, "mkdir", dir);
		char parent[PATH_MAX];
		dir_of(l, t, NULL, parent, sizeof parent);
		if (fsync_dir(parent) == -1)
			return io_err(e, "fsync", parent);
		fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	}
	if (fd == -1)
		return io_err(e, "create", tmp);
	if (write_all(fd, buf, len) == -1 || fsync(fd) == -1) {
		rc = io_err(e, "write", tmp);
		close(fd);
		unlink(tmp);
		return rc;
	}
	if (close(fd) == -1) {
		rc = io_err(e, "close", tmp);
		unlink(tmp);
		return rc;
	}
	if (flags & TW_ST_EXCL) {
		if (link(tmp, path) == -1) {
			rc = errno == EEXIST ? tw_err_set(e, TW_EEXIST, "%s exists", path)
					     : io_err(e, "link", path);
			unlink(tmp);
			return rc;
		}
		unlink(tmp);
	} else if (rename(tmp, path) == -1) {
		rc = io_err(e, "rename", path);
		unlink(tmp);
		return rc;
	}
	if (fsync_dir(dir) == -1)
		return io_err(e, "fsync", dir);
	return 0;
}

static int local_get(struct tw_storage *s, enum tw_st_type t, const char *name, uint64_t off,
		     uint64_t len, uint8_t **out, size_t *out_len, struct tw_err *e)
{
	struct local *l = (struct local *)s;
	char path[PATH_MAX];
	*out = NULL;
	*out_len = 0;
	int rc = path_of(l, t, name, path, sizeof path, e);
	if (rc != 0)
		return rc;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd == -1)
		return io_err(e, "open", path);
	struct stat st;
	if (fstat(fd, &st) == -1) {
		rc = io_err(e, "stat", path);
		close(fd);
		return rc;
	}
	uint64_t size = (uint64_t)st.st_size;
	if (off > size) {
		close(fd);
		return tw_err_set(e, TW_EINVAL, "%s: offset %llu past end", path,
				  (unsigned long long)off);
	}
	uint64_t want = size - off;
	if (len != TW_ST_WHOLE && len < want)
		want = len;
	if (want > (uint64_t)1 << 34) {
		close(fd);
		return tw_err_set(e, TW_ELIMIT, "%s: object too large", path);
	}
	uint8_t *buf = malloc(want ? want : 1);
	if (buf == NULL) {
		close(fd);
		return tw_err_set(e, TW_ENOMEM, "out of memory");
	}
	size_t got = 0;
	while (got < want) {
		ssize_t r = pread(fd, buf + got, want - got, (off_t)(off + got));
		if (r == -1) {
			if (errno == EINTR)
				continue;
			rc = io_err(e, "read", path);
			free(buf);
			close(fd);
			return rc;
		}
		if (r == 0)
			break;
		got += (size_t)r;
	}
	close(fd);
	*out = buf;
	*out_len = got;
	return 0;
}

static int list_dir(const char *dir, tw_st_list_cb cb, void *arg, struct tw_err *e)
{
	DIR *d = opendir(dir);
	if (d == NULL) {
		if (errno == ENOENT)
			return 0;
		return io_err(e, "opendir", dir);
	}
	int rc = 0;
	struct dirent *de;
	while ((de = readdir(d)) != NULL) {
		if (de->d_name[0] == '.' || !tw_storage_name_ok(de->d_name))
			continue;
		struct stat st;
		if (fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) == -1 ||
		    !S_ISREG(st.st_mode))
			continue;
		rc = cb(arg, de->d_name, (uint64_t)st.st_size);
		if (rc != 0)
			break;
	}
	closedir(d);
	return rc;
}

static int local_list(struct tw_storage *s, enum tw_st_type t, tw_st_list_cb cb, void *arg,
		      struct tw_err *e)
{
	struct local *l = (struct local *)s;
	char dir[PATH_MAX];
	if ((unsigned)t >= TW_ST_NTYPES)
		return tw_err_set(e, TW_EINVAL, "bad type");
	if (t == TW_ST_CONFIG) {
		uint64_t size;
		if (s->ops->stat(s, t, "config", &size, NULL) == 0)
			return cb(arg, "config", size);
		return 0;
	}
	dir_of(l, t, NULL, dir, sizeof dir);
	if (t != TW_ST_DATA)
		return list_dir(dir, cb, arg, e);
	DIR *d = opendir(dir);
	if (d == NULL)
		return errno == ENOENT ? 0 : io_err(e, "opendir", dir);
	int rc = 0;
	struct dirent *de;
	while ((de = readdir(d)) != NULL) {
		if (strlen(de->d_name) != 2 || de->d_name[0] == '.')
			continue;
		char sub[PATH_MAX];
		int n = snprintf(sub, sizeof sub, "%s/%s", dir, de->d_name);
		if (n < 0 || (size_t)n >= sizeof sub)
			continue;
		rc = list_dir(sub, cb, arg, e);
		if (rc != 0)
			break;
	}
	closedir(d);
	return rc;
}

static int local_del(struct tw_storage *s, enum tw_st_type t, const char *name, struct tw_err *e)
{
	struct local *l = (struct local *)s;
	char path[PATH_MAX], dir[PATH_MAX];
	int rc = path_of(l, t, name, path, sizeof path, e);
	if (rc != 0)
		return rc;
	if (unlink(path) == -1)
		return io_err(e, "unlink", path);
	dir_of(l, t, name, dir, sizeof dir);
	if (fsync_dir(dir) == -1)
		return io_err(e, "fsync", dir);
	return 0;
}

static int local_stat(struct tw_storage *s, enum tw_st_type t, const char *name, uint64_t *size,
		      struct tw_err *e)
{
	struct local *l = (struct local *)s;
	char path[PATH_MAX];
	int rc = path_of(l, t, name, path, sizeof path, e);
	if (rc != 0)
		return rc;
	struct stat st;
	if (stat(path, &st) == -1)
		return io_err(e, "stat", path);
	*size = (uint64_t)st.st_size;
	return 0;
}

static void local_close(struct tw_storage *s) { free(s); }

struct tw_st_writer {
	struct local *l;
	enum tw_st_type t;
	int fd;
	char tmp[PATH_MAX];
};

static int local_writer_open(struct tw_storage *s, enum tw_st_type t, struct tw_st_writer **out,
			     struct tw_err *e)
{
	struct local *l = (struct local *)s;
	*out = NULL;
	if ((unsigned)t >= TW_ST_NTYPES || t == TW_ST_CONFIG)
		return tw_err_set(e, TW_EINVAL, "bad type");
	struct tw_st_writer *w = calloc(1, sizeof *w);
	if (w == NULL)
		return tw_err_set(e, TW_ENOMEM, "out of memory");
	char dir[PATH_MAX];
	dir_of(l, t, NULL, dir, sizeof dir);
	unsigned seq = atomic_fetch_add(&l->tmp_seq, 1);
	int n = snprintf(w->tmp, sizeof w->tmp, "%s/.tmp-w-%ld-%u", dir, (long)getpid(), seq);
	if (n < 0 || (size_t)n >= sizeof w->tmp) {
		free(w);
		return tw_err_set(e, TW_ELIMIT, "path too long");
	}
	w->fd = open(w->tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (w->fd == -1) {
		int rc = io_err(e, "create", w->tmp);
		free(w);
		return rc;
	}
	w->l = l;
	w->t = t;
	*out = w;
	return 0;
}

static int local_writer_write(struct tw_st_writer *w, const void *buf, size_t len, struct tw_err *e)
{
	return write_all(w->fd, buf, len) == 0 ? 0 : io_err(e, "write", w->tmp);
}

static void local_writer_abort(struct tw_st_writer *w)
{
	if (w == NULL)
		return;
	close(w->fd);
	unlink(w->tmp);
	free(w);
}

static int local_writer_commit(struct tw_st_writer *w, const char *name, struct tw_err *e)
{
	char path[PATH_MAX], dir[PATH_MAX];
	int rc = path_of(w->l, w->t, name, path, sizeof path, e);
	if (rc == 0 && fsync(w->fd) == -1)
		rc = io_err(e, "fsync", w->tmp);
	if (rc == 0) {
		dir_of(w->l, w->t, name, dir, sizeof dir);
		if (mkdir(dir, 0700) == 0) {
			char parent[PATH_MAX];
			dir_of(w->l, w->t, NULL, parent, sizeof parent);
			fsync_dir(parent);
		}
		if (rename(w->tmp, path) == -1)
			rc = io_err(e, "rename", path);
		else if (fsync_dir(dir) == -1)
			rc = io_err(e, "fsync", dir);
	}
	if (rc != 0) {
		local_writer_abort(w);
		return rc;
	}
	close(w->fd);
	free(w);
	return 0;
}

/* ---- leftovers: ".tmp-*" files of puts and writers that never finished ----
 * They sit in a type's directory (writers) or beside the object (puts: for
 * packs, data/xx/). ids are paths relative to the root. */

static int tmp_id_ok(const char *id);

static int tmp_scan(const char *root, const char *rel, tw_st_tmp_cb cb, void *arg, time_t now,
		    struct tw_err *e)
{
	char dir[PATH_MAX];
	int n = snprintf(dir, sizeof dir, "%s/%s", root, rel);
	if (n < 0 || (size_t)n >= sizeof dir)
		return 0;
	DIR *d = opendir(dir);
	if (d == NULL)
		return errno == ENOENT ? 0 : io_err(e, "opendir", dir);
	int rc = 0;
	struct dirent *de;
	while (rc == 0 && (de = readdir(d)) != NULL) {
		if (strncmp(de->d_name, ".tmp-", 5) != 0)
			continue;
		struct stat st;
		if (fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) == -1 || !S_ISREG(st.st_mode))
			continue;
		char id[PATH_MAX];
		n = snprintf(id, sizeof id, "%s%s%s", rel, *rel ? "/" : "", de->d_name);
		if (n < 0 || (size_t)n >= sizeof id || !tmp_id_ok(id))
			continue; /* not a name we make */
		uint64_t age = now > st.st_mtime ? (uint64_t)(now - st.st_mtime) : 0;
		rc = cb(arg, id, (uint64_t)st.st_size, age);
	}
	closedir(d);
	return rc;
}

static int local_tmp_list(struct tw_storage *s, tw_st_tmp_cb cb, void *arg, struct tw_err *e)
{
	struct local *l = (struct local *)s;
	time_t now = time(NULL);
	int rc = tmp_scan(l->root, "", cb, arg, now, e);
	for (int t = TW_ST_KEY; rc == 0 && t < TW_ST_NTYPES; t++)
		rc = tmp_scan(l->root, tw_storage_type_name((enum tw_st_type)t), cb, arg, now, e);
	for (unsigned i = 0; rc == 0 && i < 256; i++) {
		char rel[16];
		snprintf(rel, sizeof rel, "data/%02x", i);
		rc = tmp_scan(l->root, rel, cb, arg, now, e);
	}
	return rc;
}

/* An id is "[TYPE/[xx/]].tmp-NAME": a known type directory, for data an
 * optional two-hex-digit subdirectory, then a file starting ".tmp-" made of
 * [A-Za-z0-9._-] (no other '/', so never a path outside the store). */
static int tmp_id_ok(const char *id)
{
	const char *f = strrchr(id, '/');
	f = f ? f + 1 : id;
	if (strncmp(f, ".tmp-", 5) != 0 || strstr(f, "..") != NULL || strlen(f) > 200)
		return 0;
	for (const char *p = f; *p; p++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') || *p == '.' ||
		      *p == '_' || *p == '-'))
			return 0;
	size_t dl = (size_t)(f - id);
	if (dl == 0)
		return 1;
	for (int t = TW_ST_KEY; t < TW_ST_NTYPES; t++) {
		const char *tn = tw_storage_type_name((enum tw_st_type)t);
		size_t tl = strlen(tn);
		if (dl == tl + 1 && strncmp(id, tn, tl) == 0)
			return 1;
		if (t == TW_ST_DATA && dl == tl + 4 && strncmp(id, tn, tl) == 0 && id[tl] == '/' &&
		    strchr("0123456789abcdef", id[tl + 1]) && strchr("0123456789abcdef", id[tl + 2]) && id[tl + 3] == '/')
			return 1;
	}
	return 0;
}

static int local_tmp_del(struct tw_storage *s, const char *id, struct tw_err *e)
{
	struct local *l = (struct local *)s;
	if (!tmp_id_ok(id))
		return tw_err_set(e, TW_EINVAL, "%s: not a temporary object", id);
	char path[PATH_MAX];
	int n = snprintf(path, sizeof path, "%s/%s", l->root, id);
	if (n < 0 || (size_t)n >= sizeof path)
		return tw_err_set(e, TW_ELIMIT, "path too long");
	if (unlink(path) == -1 && errno != ENOENT)
		return io_err(e, "unlink", path);
	return 0;
}

static const struct tw_storage_ops local_ops = {
	.put = local_put,
	.get = local_get,
	.list = local_list,
	.del = local_del,
	.stat = local_stat,
	.close = local_close,
	.writer_open = local_writer_open,
	.writer_write = local_writer_write,
	.writer_commit = local_writer_commit,
	.writer_abort = local_writer_abort,
	.tmp_list = local_tmp_list,
	.tmp_del = local_tmp_del,
};

int tw_storage_local_open(const char *dir, int create, struct tw_storage **out, struct tw_err *e)
{
	*out = NULL;
	struct local *l = calloc(1, sizeof *l);
	if (l == NULL)
		return tw_err_set(e, TW_ENOMEM, "out of memory");
	l->base.ops = &local_ops;
	int n = snprintf(l->root, sizeof l->root, "%s", dir);
	if (n < 0 || (size_t)n >= sizeof l->root) {
		free(l);
		return tw_err_set(e, TW_ELIMIT, "repository path too long");
	}
	while (n > 1 && l->root[n - 1] == '/')
		l->root[--n] = '\0';
	struct stat st;
	if (create) {
		if (mkdir(l->root, 0700) == -1 && errno != EEXIST) {
			int rc = io_err(e, "mkdir", l->root);
			free(l);
			return rc;
		}
		char p[PATH_MAX];
		snprintf(p, sizeof p, "%s/config", l->root);
		if (stat(p, &st) == 0) {
			free(l);
			return tw_err_set(e, TW_EEXIST, "%s: a repository exists already", dir);
		}
		for (int t = TW_ST_KEY; t < TW_ST_NTYPES; t++) {
			dir_of(l, (enum tw_st_type)t, NULL, p, sizeof p);
			if (mkdir(p, 0700) == -1 && errno != EEXIST) {
				int rc = io_err(e, "mkdir", p);
				free(l);
				return rc;
			}
		}
		fsync_dir(l->root);
	} else if (stat(l->root, &st) == -1 || !S_ISDIR(st.st_mode)) {
		free(l);
		return tw_err_set(e, TW_ENOENT, "%s: no such repository directory", dir);
	}
	*out = &l->base;
	return 0;
}
