/* store.c — ACME state store: the interface and the local-directory driver.
 * See store.h. */
#include "acme/store.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

int tw_acme_store_key_ok(const char *key)
{
	size_t n = strlen(key);
	if (n == 0 || n > 255 || key[0] == '/' || key[n - 1] == '/')
		return TW_EINVAL;
	const char *seg = key;
	for (const char *p = key;; p++) {
		if (*p == '/' || *p == '\0') {
			size_t sl = (size_t)(p - seg);
			if (sl == 0 || (sl == 1 && seg[0] == '.') ||
			    (sl == 2 && seg[0] == '.' && seg[1] == '.'))
				return TW_EINVAL;
			if (*p == '\0')
				return 0;
			seg = p + 1;
		} else if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
		             (*p >= '0' && *p <= '9') || *p == '.' || *p == '_' || *p == '-')) {
			return TW_EINVAL;
		}
	}
}

int tw_acme_store_cert_name(const char *first_name, char *out, size_t cap)
{
	size_t n = strlen(first_name);
	if (n == 0 || n + 1 > cap || n > 253)
		return TW_EINVAL;
	for (size_t i = 0; i <= n; i++)
		out[i] = first_name[i] == '*' ? '_' : first_name[i];
	return tw_acme_store_key_ok(out);
}

int tw_acme_store_get(struct tw_acme_store *s, const char *key, struct tw_dbuf *out,
                      struct tw_err *err)
{
	if (tw_acme_store_key_ok(key) < 0)
		return tw_err_set(err, TW_EINVAL, "bad store key \"%s\"", key);
	return s->ops->get(s, key, out, err);
}

int tw_acme_store_put(struct tw_acme_store *s, const char *key, const void *data, size_t len,
                      int secret, struct tw_err *err)
{
	if (tw_acme_store_key_ok(key) < 0)
		return tw_err_set(err, TW_EINVAL, "bad store key \"%s\"", key);
	if (len > TW_ACME_STORE_VALUE_MAX)
		return tw_err_set(err, TW_ELIMIT, "value for %s too large", key);
	return s->ops->put(s, key, data, len, secret, err);
}

int tw_acme_store_del(struct tw_acme_store *s, const char *key, struct tw_err *err)
{
	if (tw_acme_store_key_ok(key) < 0)
		return tw_err_set(err, TW_EINVAL, "bad store key \"%s\"", key);
	return s->ops->del(s, key, err);
}

int tw_acme_store_list(struct tw_acme_store *s, const char *prefix,
                       int (*cb)(void *ud, const char *name), void *ud, struct tw_err *err)
{
	if (tw_acme_store_key_ok(prefix) < 0)
		return tw_err_set(err, TW_EINVAL, "bad store prefix \"%s\"", prefix);
	return s->ops->list(s, prefix, cb, ud, err);
}

int tw_acme_store_lock(struct tw_acme_store *s, const char *name, uint64_t lease_ms,
                       uint64_t wait_ms, struct tw_acme_lock **out, struct tw_err *err)
{
	if (tw_acme_store_key_ok(name) < 0 || strchr(name, '/') != NULL)
		return tw_err_set(err, TW_EINVAL, "bad lock name \"%s\"", name);
	for (uint64_t waited = 0;; waited += 100) {
		int rc = s->ops->lock(s, name, lease_ms, out, err);
		if (rc != TW_ELOCKED || waited >= wait_ms)
			return rc;
		struct timespec ts = {0, 100 * 1000000L};
		nanosleep(&ts, NULL);
	}
}

void tw_acme_store_unlock(struct tw_acme_store *s, struct tw_acme_lock *l)
{
	if (s && l)
		s->ops->unlock(l);
}

void tw_acme_store_free(struct tw_acme_store *s)
{
	if (s)
		s->ops->free(s);
}

/* ---- local directory driver ------------------------------------------ */

struct local {
	struct tw_acme_store base;
	char root[4096]; /* STATE_DIR/acme */
};

struct tw_acme_lock {
	int fd;
};

static int path_of(struct local *l, const char *key, char *out, size_t cap)
{
	return (size_t)snprintf(out, cap, "%s/%s", l->root, key) < cap ? 0 : TW_ELIMIT;
}

/* mkdir -p of the parent directories of path (below root), mode 0700. */
static int mkparents(struct local *l, char *path)
{
	size_t rl = strlen(l->root);
	for (char *p = path + rl + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		int r = mkdir(path, 0700);
		int e = errno;
		*p = '/';
		if (r == -1 && e != EEXIST)
			return TW_EIO;
	}
	return 0;
}

static int local_get(struct tw_acme_store *s, const char *key, struct tw_dbuf *out,
                     struct tw_err *err)
{
	struct local *l = (struct local *)s;
	char path[4400];
	if (path_of(l, key, path, sizeof path) < 0)
		return tw_err_set(err, TW_ELIMIT, "path too long");
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd == -1)
		return errno == ENOENT ? TW_ENOENT
		                       : tw_err_set(err, TW_EIO, "%s: %s", path, strerror(errno));
	char buf[8192];
	int rc = 0;
	for (;;) {
		ssize_t n = read(fd, buf, sizeof buf);
		if (n == 0)
			break;
		if (n == -1) {
			if (errno == EINTR)
				continue;
			rc = tw_err_set(err, TW_EIO, "%s: %s", path, strerror(errno));
			break;
		}
		if ((rc = tw_dbuf_append(out, buf, (size_t)n)) < 0) {
			tw_err_set(err, rc, "%s: too large", path);
			break;
		}
	}
	close(fd);
	return rc;
}

static int local_put(struct tw_acme_store *s, const char *key, const void *data, size_t len,
                     int secret, struct tw_err *err)
{
	struct local *l = (struct local *)s;
	char path[4400], tmp[4500];
	if (path_of(l, key, path, sizeof path) < 0)
		return tw_err_set(err, TW_ELIMIT, "path too long");
	if (mkparents(l, path) < 0)
		return tw_err_set(err, TW_EIO, "cannot create the directories of %s: %s", path,
		                  strerror(errno));
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	snprintf(tmp, sizeof tmp, "%s.tmp.%ld.%ld", path, (long)getpid(), (long)ts.tv_nsec);
	int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, secret ? 0600 : 0644);
	if (fd == -1)
		return tw_err_set(err, TW_EIO, "%s: %s", tmp, strerror(errno));
	const char *p = data;
	size_t left = len;
	while (left > 0) {
		ssize_t n = write(fd, p, left);
		if (n == -1 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		p += n;
		left -= (size_t)n;
	}
	int ok = left == 0 && fsync(fd) == 0;
	int e = errno;
	if (close(fd) == -1)
		ok = 0;
	if (!ok || rename(tmp, path) == -1) {
		if (ok)
			e = errno;
		unlink(tmp);
		return tw_err_set(err, TW_EIO, "cannot write %s: %s", path, strerror(e));
	}
	return 0;
}

static int local_del(struct tw_acme_store *s, const char *key, struct tw_err *err)
{
	struct local *l = (struct local *)s;
	char path[4400];
	if (path_of(l, key, path, sizeof path) < 0)
		return tw_err_set(err, TW_ELIMIT, "path too long");
	if (unlink(path) == -1)
		return errno == ENOENT ? TW_ENOENT
		                       : tw_err_set(err, TW_EIO, "%s: %s", path, strerror(errno));
	return 0;
}

static int local_list(struct tw_acme_store *s, const char *prefix,
                      int (*cb)(void *ud, const char *name), void *ud, struct tw_err *err)
{
	struct local *l = (struct local *)s;
	char path[4400];
	if (path_of(l, prefix, path, sizeof path) < 0)
		return tw_err_set(err, TW_ELIMIT, "path too long");
	DIR *d = opendir(path);
	if (d == NULL)
		return errno == ENOENT ? 0
		                       : tw_err_set(err, TW_EIO, "%s: %s", path, strerror(errno));
	int rc = 0;
	struct dirent *de;
	while (rc == 0 && (de = readdir(d)) != NULL) {
		if (de->d_name[0] == '.' || strstr(de->d_name, ".tmp.") != NULL ||
		    tw_acme_store_key_ok(de->d_name) < 0)
			continue;
		rc = cb(ud, de->d_name);
	}
	closedir(d);
	return rc < 0 ? rc : 0;
}

static int local_lock(struct tw_acme_store *s, const char *name, uint64_t lease_ms,
                      struct tw_acme_lock **out, struct tw_err *err)
{
	struct local *l = (struct local *)s;
	char path[4400];
	if ((size_t)snprintf(path, sizeof path, "%s/locks/%s.lock", l->root, name) >= sizeof path)
		return tw_err_set(err, TW_ELIMIT, "path too long");
	if (mkparents(l, path) < 0)
		return tw_err_set(err, TW_EIO, "cannot create %s/locks", l->root);
	int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (fd == -1)
		return tw_err_set(err, TW_EIO, "%s: %s", path, strerror(errno));
	if (flock(fd, LOCK_EX | LOCK_NB) == -1) {
		int e = errno;
		close(fd);
		if (e == EWOULDBLOCK)
			return TW_ELOCKED;
		return tw_err_set(err, TW_EIO, "flock %s: %s", path, strerror(e));
	}
	struct tw_acme_lock *lk = malloc(sizeof *lk);
	if (lk == NULL) {
		close(fd);
		return TW_ENOMEM;
	}
	/* Who holds it, for operators (not used for the decision). */
	char info[64];
	int n = snprintf(info, sizeof info, "pid %ld\n", (long)getpid());
	if (ftruncate(fd, 0) == 0 && write(fd, info, (size_t)n) < 0)
		(void)0;
	lk->fd = fd;
	*out = lk;
	return 0;
}

static void local_unlock(struct tw_acme_lock *lk)
{
	flock(lk->fd, LOCK_UN);
	close(lk->fd);
	free(lk);
}

static void local_free(struct tw_acme_store *s)
{
	free(s);
}

static const struct tw_acme_store_ops local_ops = {
    .get = local_get,
    .put = local_put,
    .del = local_del,
    .list = local_list,
    .lock = local_lock,
    .unlock = local_unlock,
    .free = local_free,
};

int tw_acme_store_local_new(const char *state_dir, struct tw_acme_store **out, struct tw_err *err)
{
	struct local *l = calloc(1, sizeof *l);
	if (l == NULL)
		return TW_ENOMEM;
	l->base.ops = &local_ops;
	if ((size_t)snprintf(l->root, sizeof l->root, "%s/acme", state_dir) >=
	    sizeof l->root - 300) {
		free(l);
		return tw_err_set(err, TW_ELIMIT, "state_dir path too long");
	}
	if ((mkdir(state_dir, 0700) == -1 && errno != EEXIST) ||
	    (mkdir(l->root, 0700) == -1 && errno != EEXIST)) {
		int e = errno;
		free(l);
		return tw_err_set(err, TW_EIO, "cannot create %s/acme: %s", state_dir, strerror(e));
	}
	*out = &l->base;
	return 0;
}
