/* restore.c — restore pipeline (see restore.h). */
#include "backup/restore.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/openat2.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "core/log.h"

struct rfile {
	char *dir;  /* parent, relative to the target ("" = target) */
	char *name; /* NUL-terminated (tree names never contain NUL) */
	char *path; /* for messages */
	uint8_t type, sparse, is_link_copy;
	uint32_t mode, uid, gid;
	int64_t mtime_ns;
	uint64_t size;
	uint8_t *xattrs; /* encoded, malloc'd copy */
	uint32_t xattrs_len;
	uint32_t left; /* phase 2: blob writes still to do (atomic) */
	uint8_t done;  /* metadata set (by phase 1 or 2) */
	uint8_t lazy;  /* not created yet: phase 2 creates it on its first write */
	uint8_t bad;   /* some data could not be restored (atomic) */
};

/* a hard link to files[first], made after phase 2 */
struct lnk {
	char *dir, *name, *path;
	uint32_t first;
};

struct wr {
	uint32_t file;
	uint32_t pack;
	uint64_t off;
	uint32_t boff, blen, raw;
	uint8_t type, flags;
	uint8_t id[TW_ID_LEN];
};

struct hl {
	uint64_t dev, ino;
	uint32_t file; /* index + 1; 0 = empty slot */
};

struct rctx {
	struct tw_repo *r;
	const struct tw_restore_opts *o;
	struct tw_restore_stats *st;
	int rootfd;
	struct rfile *files;
	size_t nfiles, cap_files;
	struct rfile *dirs;
	size_t ndirs, cap_dirs;
	struct wr *wrs;
	size_t nwrs, cap_wrs;
	struct hl *hls;
	size_t hl_cap, hl_n;
	struct lnk *links;
	size_t nlinks, cap_links;
	char **inc;
	size_t ninc;
	/* phase 2 */
	size_t *groups; /* start index of each pack group in wrs */
	size_t ngroups, next_group;
	pthread_mutex_t mu;
	size_t damage_cap; /* st->damage, under mu */
	int fatal;
	int fs_full; /* errno of the first ENOSPC/EDQUOT/EROFS: nothing more can be written */
	char fs_full_path[512]; /* where it happened (set once, under mu) */
	struct tw_err err;
};

static void count(uint64_t *c, uint64_t v) { __atomic_add_fetch(c, v, __ATOMIC_RELAXED); }

int tw_restore_open_beneath(int rootfd, const char *rel)
{
	int fd = dup(rootfd);
	if (fd == -1 || rel[0] == '\0')
		return fd;
	char buf[PATH_MAX];
	snprintf(buf, sizeof buf, "%s", rel);
	char *p = buf;
	while (p && *p) {
		char *slash = strchr(p, '/');
		if (slash)
			*slash = '\0';
		if (strcmp(p, "..") == 0 || strcmp(p, ".") == 0 || *p == '\0') {
			close(fd);
			errno = EINVAL;
			return -1;
		}
		int nfd = openat(fd, p, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		int saved = errno;
		close(fd);
		if (nfd == -1) {
			errno = saved;
			return -1;
		}
		fd = nfd;
		p = slash ? slash + 1 : NULL;
	}
	return fd;
}

/* 0 once openat2 turned out to be unavailable (old kernel, seccomp). */
static int have_openat2 = 1;

/* Open `path` ("a/b/name", relative to rootfd) without following any
 * symlink and without leaving rootfd: one openat2(RESOLVE_BENEATH |
 * RESOLVE_NO_SYMLINKS) call, or a walk over the components where openat2 is
 * missing. path = dir + "/" + name (dir may be ""). */
static int open_rel(int rootfd, const char *dir, const char *name, const char *path, int flags)
{
	flags |= O_NOFOLLOW | O_CLOEXEC;
	const mode_t mode = (flags & O_CREAT) ? 0600 : 0;
#ifdef SYS_openat2
	if (__atomic_load_n(&have_openat2, __ATOMIC_RELAXED)) {
		struct open_how how;
		memset(&how, 0, sizeof how);
		how.flags = (uint64_t)flags;
		how.mode = mode;
		how.resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS;
		long fd = syscall(SYS_openat2, rootfd, path, &how, sizeof how);
		if (fd >= 0)
			return (int)fd;
		if (errno != ENOSYS && errno != EPERM)
			return -1;
		if (errno == ENOSYS)
			__atomic_store_n(&have_openat2, 0, __ATOMIC_RELAXED);
	}
#endif
	int dfd = tw_restore_open_beneath(rootfd, dir);
	if (dfd == -1)
		return -1;
	int fd = openat(dfd, name, flags, mode);
	int saved = errno;
	close(dfd);
	errno = saved;
	return fd;
}

/* Directory `rel` below rootfd ("" = rootfd itself, duplicated). */
static int open_dir(int rootfd, const char *rel)
{
	if (rel[0] == '\0')
		return dup(rootfd);
	const char *sl = strrchr(rel, '/');
	char dir[PATH_MAX];
	size_t dl = sl ? (size_t)(sl - rel) : 0;
	if (dl >= sizeof dir) {
		errno = ENAMETOOLONG;
		return -1;
	}
	memcpy(dir, rel, dl);
	dir[dl] = '\0';
	return open_rel(rootfd, dir, sl ? sl + 1 : rel, rel, O_RDONLY | O_DIRECTORY);
}

static void *grow(void *v, size_t *cap, size_t n, size_t size)
{
	if (n < *cap)
		return v;
	size_t nc = *cap ? *cap * 2 : 256;
	void *nv = realloc(v, nc * size);
	if (nv != NULL)
		*cap = nc;
	return nv;
}

/* A full (or read-only) target file system fails every later write the
 * same way: the first one is logged and stops the data phase; the rest are
 * counted, not logged a thousand times over. */
static int fs_wide(int err) { return err == ENOSPC || err == EDQUOT || err == EROFS; }

static int warn_err(struct rctx *c, const char *what, const char *path)
{
	int err = errno;
	count(&c->st->errors, 1);
	if (fs_wide(err)) {
		int first = 0;
		pthread_mutex_lock(&c->mu);
		if (!c->fs_full) {
			c->fs_full = err;
			snprintf(c->fs_full_path, sizeof c->fs_full_path, "%s %s", what, path);
			first = 1;
		}
		pthread_mutex_unlock(&c->mu);
		if (!first)
			return -1;
	}
	tw_warn("%s %s: %s", what, path, strerror(err));
	return -1;
}

static char *join(const char *dir, const uint8_t *name, size_t len)
{
	size_t dl = strlen(dir);
	char *p = malloc(dl + len + 2);
	if (p == NULL)
		return NULL;
	memcpy(p, dir, dl);
	size_t o = dl;
	if (dl)
		p[o++] = '/';
	memcpy(p + o, name, len);
	p[o + len] = '\0';
	return p;
}

static struct rfile *add_file(struct rctx *c, const char *dir, const struct tw_node *nd, int is_dir)
{
	struct rfile **v = is_dir ? &c->dirs : &c->files;
	size_t *n = is_dir ? &c->ndirs : &c->nfiles, *cap = is_dir ? &c->cap_dirs : &c->cap_files;
	struct rfile *nv = grow(*v, cap, *n, sizeof **v);
	if (nv == NULL)
		return NULL;
	*v = nv;
	struct rfile *f = &nv[*n];
	memset(f, 0, sizeof *f);
	f->dir = strdup(dir);
	f->name = join("", nd->name, nd->name_len);
	f->path = join(dir, nd->name, nd->name_len);
	if (!f->dir || !f->name || !f->path) {
		free(f->dir);
		free(f->name);
		free(f->path);
		return NULL;
	}
	f->type = nd->type;
	f->sparse = (nd->flags & TW_NODE_SPARSE) != 0;
	f->mode = nd->mode;
	f->uid = nd->uid;
	f->gid = nd->gid;
	f->mtime_ns = nd->mtime_ns;
	f->size = nd->size;
	if (nd->xattrs_len > 0 && (f->xattrs = malloc(nd->xattrs_len)) != NULL) {
		memcpy(f->xattrs, nd->xattrs, nd->xattrs_len);
		f->xattrs_len = nd->xattrs_len;
	}
	(*n)++;
	return f;
}

/* hard links: (dev, ino) -> first restored file */
static struct hl *hl_find(struct rctx *c, uint64_t dev, uint64_t ino, int insert)
{
	if (insert && (c->hl_n + 1) * 2 > c->hl_cap) {
		size_t nc = c->hl_cap ? c->hl_cap * 2 : 64;
		struct hl *nt = calloc(nc, sizeof *nt);
		if (nt == NULL)
			return NULL;
		for (size_t i = 0; i < c->hl_cap; i++) {
			if (!c->hls[i].file)
				continue;
			size_t j = (c->hls[i].ino * 31 + c->hls[i].dev) & (nc - 1);
			while (nt[j].file)
				j = (j + 1) & (nc - 1);
			nt[j] = c->hls[i];
		}
		free(c->hls);
		c->hls = nt;
		c->hl_cap = nc;
	}
	if (c->hl_cap == 0)
		return NULL;
	size_t j = (ino * 31 + dev) & (c->hl_cap - 1);
	while (c->hls[j].file) {
		if (c->hls[j].dev == dev && c->hls[j].ino == ino)
			return &c->hls[j];
		j = (j + 1) & (c->hl_cap - 1);
	}
	if (!insert)
		return NULL;
	c->hls[j].dev = dev;
	c->hls[j].ino = ino;
	c->hl_n++;
	return &c->hls[j];
}

/* Create an empty file; returns its fd (write-only) or -1. Only sparse
 * files are pre-sized (so trailing holes exist); the others grow as their
 * data is written. */
static int create_file(struct rctx *c, int dirfd, const struct tw_node *nd, const char *path)
{
	int fd = openat(dirfd, (const char *)nd->name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd == -1 && errno == EEXIST) {
		struct stat sb;
		if (fstatat(dirfd, (const char *)nd->name, &sb, AT_SYMLINK_NOFOLLOW) == 0 &&
		    !S_ISDIR(sb.st_mode))
			unlinkat(dirfd, (const char *)nd->name, 0);
		fd = openat(dirfd, (const char *)nd->name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	}
	if (fd == -1)
		return warn_err(c, "create", path);
	if ((nd->flags & TW_NODE_SPARSE) && nd->size > 0 && ftruncate(fd, (off_t)nd->size) == -1) {
		close(fd);
		return warn_err(c, "truncate", path);
	}
	return fd;
}

static void set_xattrs_fd(struct rctx *c, int fd, const struct rfile *f)
{
	uint32_t pos = 0, vl;
	const uint8_t *name, *value;
	uint8_t nl;
	while (tw_xattr_next(f->xattrs, f->xattrs_len, &pos, &name, &nl, &value, &vl)) {
		char key[256];
		memcpy(key, name, nl);
		key[nl] = '\0';
		if (fsetxattr(fd, key, value, vl, 0) == -1) {
			/* file systems without xattrs, or namespaces we may not
			 * write (trusted.*, security.* as a user): not an error */
			if (errno == ENOTSUP || errno == EPERM || errno == EACCES)
				tw_debug("setxattr %s %s: %s", f->path, key, strerror(errno));
			else
				warn_err(c, "setxattr", f->path);
		}
	}
}

/* xattrs, owner, mode, times of a regular file or directory through its fd */
static void meta_fd(struct rctx *c, int fd, const struct rfile *f)
{
	if (f->xattrs_len)
		set_xattrs_fd(c, fd, f);
	if (fchown(fd, f->uid, f->gid) == -1 && errno != EPERM)
		warn_err(c, "chown", f->path);
	if (fchmod(fd, f->mode) == -1)
		warn_err(c, "chmod", f->path);
	struct timespec ts[2] = {{f->mtime_ns / 1000000000, f->mtime_ns % 1000000000},
				 {f->mtime_ns / 1000000000, f->mtime_ns % 1000000000}};
	if (futimens(fd, ts) == -1)
		warn_err(c, "utimes", f->path);
}

static void replace_existing(int dirfd, const char *name)
{
	struct stat sb;
	if (fstatat(dirfd, name, &sb, AT_SYMLINK_NOFOLLOW) == 0 && !S_ISDIR(sb.st_mode))
		unlinkat(dirfd, name, 0);
}

/* included(depth, node): 1 = restore it and everything below, 2 = descend only, 0 = skip */
static int included(struct rctx *c, size_t depth, const struct tw_node *nd)
{
	if (depth >= c->ninc)
		return 1;
	const char *comp = c->inc[depth];
	if (strlen(comp) != nd->name_len || memcmp(comp, nd->name, nd->name_len) != 0)
		return 0;
	return depth + 1 == c->ninc ? 1 : 2;
}

/* every chunk of a file is in the index */
static int all_indexed(struct rctx *c, const struct tw_node *nd)
{
	for (uint32_t k = 0; k < nd->nchunks; k++)
		if (tw_index_get(&c->r->index, nd->chunks + (size_t)k * TW_ID_LEN) == NULL)
			return 0;
	return 1;
}

/* fresh: dirfd was created by this restore (it held nothing before), so its
 * files with data can be created by phase 2 on their first write. */
static int walk(struct rctx *c, const uint8_t tree_id[TW_ID_LEN], int dirfd, const char *rel,
		size_t depth, int all, int fresh)
{
	uint8_t *buf;
	struct tw_node *nodes;
	uint32_t n;
	struct tw_err e = {0};
	if (tw_repo_read_tree(c->r, tree_id, &buf, &nodes, &n, &e) != 0) {
		tw_warn("directory %s: %s", rel[0] ? rel : ".", e.msg);
		count(&c->st->errors, 1);
		return 0;
	}
	/* names are NUL-terminated copies: the tree buffer is not */
	for (uint32_t i = 0; i < n && !c->fatal; i++) {
		struct tw_node nd = nodes[i];
		int inc = all ? 1 : included(c, depth, &nd);
		if (inc == 0)
			continue;
		if (!tw_tree_name_ok(nd.name, nd.name_len)) {
			count(&c->st->errors, 1);
			continue;
		}
		char name[TW_NAME_MAX + 1];
		memcpy(name, nd.name, nd.name_len);
		name[nd.name_len] = '\0';
		nd.name = (const uint8_t *)name;
		char *path = join(rel, nd.name, nd.name_len);
		if (path == NULL) {
			c->fatal = 1;
			break;
		}
		if (c->o->skip != NULL && c->o->skip(c->o->skip_arg, path)) {
			free(path);
			continue;
		}
		if (inc == 2) {
			if (nd.type == TW_NODE_DIR) {
				int made = mkdirat(dirfd, name, 0700) == 0;
				if (!made && errno != EEXIST)
					warn_err(c, "mkdir", path);
				int fd = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
				if (fd >= 0) {
					walk(c, nd.subtree, fd, path, depth + 1, 0, made);
					close(fd);
				} else
					warn_err(c, "open", path);
			}
			free(path);
			continue;
		}
		switch (nd.type) {
		case TW_NODE_DIR: {
			int made = mkdirat(dirfd, name, 0700) == 0;
			if (!made && errno != EEXIST) {
				warn_err(c, "mkdir", path);
				break;
			}
			int fd = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
			if (fd == -1) {
				warn_err(c, "open", path);
				break;
			}
			if (!made)
				fchmod(fd, 0700);
			walk(c, nd.subtree, fd, path, depth + 1, 1, made);
			close(fd);
			if (add_file(c, rel, &nd, 1) == NULL)
				c->fatal = 1;
			count(&c->st->dirs, 1);
			break;
		}
		case TW_NODE_FILE: {
			if (nd.flags & TW_NODE_HARDLINK) {
				struct hl *h = hl_find(c, nd.dev, nd.ino, 0);
				if (h != NULL) {
					/* linked after phase 2, when the first one exists */
					struct lnk *nl = grow(c->links, &c->cap_links, c->nlinks, sizeof *c->links);
					if (nl == NULL) {
						c->fatal = 1;
						break;
					}
					c->links = nl;
					struct lnk *l = &nl[c->nlinks];
					l->dir = strdup(rel);
					l->name = strdup(name);
					l->path = path;
					path = NULL;
					l->first = h->file - 1;
					if (l->dir == NULL || l->name == NULL) {
						free(l->dir);
						free(l->name);
						free(l->path);
						c->fatal = 1;
						break;
					}
					c->nlinks++;
					count(&c->st->files, 1);
					break;
				}
			}
			int lazy = fresh && nd.nchunks > 0 && all_indexed(c, &nd);
			int ffd = -1;
			if (!lazy && (ffd = create_file(c, dirfd, &nd, path)) < 0)
				break;
			struct rfile *f = add_file(c, rel, &nd, 0);
			if (f == NULL) {
				if (ffd >= 0)
					close(ffd);
				c->fatal = 1;
				break;
			}
			f->lazy = (uint8_t)lazy;
			uint32_t fi = (uint32_t)(c->nfiles - 1);
			if (nd.flags & TW_NODE_HARDLINK) {
				struct hl *h = hl_find(c, nd.dev, nd.ino, 1);
				if (h != NULL)
					h->file = fi + 1;
			}
			count(&c->st->files, 1);
			count(&c->o->progress->total_bytes, nd.size);
			uint64_t off = 0;
			for (uint32_t k = 0; k < nd.nchunks; k++) {
				const uint8_t *id = nd.chunks + (size_t)k * TW_ID_LEN;
				const struct tw_idx_slot *s = tw_index_get(&c->r->index, id);
				if (s == NULL) {
					char hex[65];
					tw_hex(id, TW_ID_LEN, hex);
					tw_warn("%s: chunk %.16s missing from the index", path, hex);
					count(&c->st->errors, 1);
					break;
				}
				struct wr *nw = grow(c->wrs, &c->cap_wrs, c->nwrs, sizeof *c->wrs);
				if (nw == NULL) {
					c->fatal = 1;
					break;
				}
				c->wrs = nw;
				struct wr *w = &nw[c->nwrs++];
				w->file = fi;
				w->pack = s->pack;
				w->off = off;
				w->boff = s->offset;
				w->blen = s->length;
				w->raw = s->raw_length;
				w->type = s->type;
				w->flags = s->flags;
				memcpy(w->id, id, TW_ID_LEN);
				off += s->raw_length;
				c->files[fi].left++;
			}
			if (c->files[fi].left == 0 && ffd >= 0) {
				/* no data to write: finish it now, the fd is open */
				meta_fd(c, ffd, &c->files[fi]);
				c->files[fi].done = 1;
			}
			if (ffd >= 0)
				close(ffd);
			break;
		}
		case TW_NODE_SYMLINK: {
			char target[65536];
			memcpy(target, nd.target, nd.target_len);
			target[nd.target_len] = '\0';
			replace_existing(dirfd, name);
			if (symlinkat(target, dirfd, name) == -1) {
				warn_err(c, "symlink", path);
				break;
			}
			if (fchownat(dirfd, name, nd.uid, nd.gid, AT_SYMLINK_NOFOLLOW) == -1 &&
			    errno != EPERM)
				warn_err(c, "chown", path);
			struct timespec ts[2] = {{nd.mtime_ns / 1000000000, nd.mtime_ns % 1000000000},
						 {nd.mtime_ns / 1000000000, nd.mtime_ns % 1000000000}};
			utimensat(dirfd, name, ts, AT_SYMLINK_NOFOLLOW);
			count(&c->st->others, 1);
			break;
		}
		case TW_NODE_FIFO:
		case TW_NODE_CHR:
		case TW_NODE_BLK: {
			replace_existing(dirfd, name);
			mode_t m = nd.type == TW_NODE_FIFO ? S_IFIFO : nd.type == TW_NODE_CHR ? S_IFCHR : S_IFBLK;
			if (mknodat(dirfd, name, m | 0600, (dev_t)nd.rdev) == -1) {
				warn_err(c, "mknod", path);
				break;
			}
			if (add_file(c, rel, &nd, 0) == NULL)
				c->fatal = 1;
			count(&c->st->others, 1);
			break;
		}
		default:
			count(&c->st->others, 1); /* sockets are not recreated */
			break;
		}
		free(path);
	}
	free(nodes);
	free(buf);
	return 0;
}

static int wr_cmp(const void *a, const void *b)
{
	const struct wr *x = a, *y = b;
	if (x->pack != y->pack)
		return x->pack < y->pack ? -1 : 1;
	if (x->boff != y->boff)
		return x->boff < y->boff ? -1 : 1;
	if (x->file != y->file)
		return x->file < y->file ? -1 : 1;
	return x->off < y->off ? -1 : x->off > y->off;
}

static int all_zero(const uint8_t *p, size_t n)
{
	static const uint8_t z[4096];
	while (n >= sizeof z) {
		if (memcmp(p, z, sizeof z) != 0)
			return 0;
		p += sizeof z;
		n -= sizeof z;
	}
	return memcmp(p, z, n) == 0;
}

static int write_all_at(int fd, const uint8_t *p, size_t n, uint64_t off)
{
	size_t done = 0;
	while (done < n) {
		ssize_t w = pwrite(fd, p + done, n - done, (off_t)(off + done));
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return -1;
		done += (size_t)w;
	}
	return 0;
}

/* Sparse files: skip file-system blocks that are all zero, so holes stay
 * holes (the file was pre-sized with ftruncate). */
static int write_range(int fd, const uint8_t *p, size_t n, uint64_t off, int sparse)
{
	if (!sparse)
		return write_all_at(fd, p, n, off);
	const size_t bs = 4096;
	size_t i = 0;
	while (i < n) {
		size_t step = bs - (size_t)((off + i) % bs);
		if (step > n - i)
			step = n - i;
		if (all_zero(p + i, step)) {
			i += step;
			continue;
		}
		size_t j = i + step;
		while (j < n) {
			size_t s2 = bs < n - j ? bs : n - j;
			if (all_zero(p + j, s2))
				break;
			j += s2;
		}
		if (write_all_at(fd, p + i, j - i, off + i) != 0)
			return -1;
		i = j;
	}
	return 0;
}

/* Per-thread state of phase 2: a small cache of open output files (a file's
 * blobs are mostly neighbours in pack order, and a deduplicated blob is
 * written to several files in a row), the decompression buffer. */
#define FD_SLOTS 16

struct worker {
	struct {
		uint32_t file;
		int fd;
		uint64_t used;
		uint64_t dirty; /* bytes written since the last write-back kick */
	} slot[FD_SLOTS];
	uint64_t tick;
	uint8_t *raw;
	size_t raw_cap;
};

/* With opts.writeback: once KICK_BYTES were written through a slot's fd,
 * start their write-back (sync_file_range WRITE submits the dirty pages
 * and does not wait for them), so the disk works while the CPUs decrypt
 * and decompress and the caller's sync at the end finds little. One call
 * per few MiB: a call per 64 KiB blob costs more system time than it
 * saves. */
#define KICK_BYTES ((uint64_t)8 << 20)

static void kick(struct worker *wk, int fd, uint64_t n)
{
	for (int i = 0; i < FD_SLOTS; i++)
		if (wk->slot[i].fd == fd) {
			wk->slot[i].dirty += n;
			if (wk->slot[i].dirty >= KICK_BYTES) {
				sync_file_range(fd, 0, 0, SYNC_FILE_RANGE_WRITE);
				wk->slot[i].dirty = 0;
			}
			return;
		}
}

/* close a slot's fd, kicking the write-back of what it wrote last */
static void slot_close(struct worker *wk, int i)
{
	if (wk->slot[i].dirty > 0)
		sync_file_range(wk->slot[i].fd, 0, 0, SYNC_FILE_RANGE_WRITE);
	close(wk->slot[i].fd);
	wk->slot[i].fd = -1;
	wk->slot[i].dirty = 0;
}

static int wk_fd(struct rctx *c, struct worker *wk, uint32_t file)
{
	int victim = 0;
	for (int i = 0; i < FD_SLOTS; i++) {
		if (wk->slot[i].fd >= 0 && wk->slot[i].file == file) {
			wk->slot[i].used = ++wk->tick;
			return wk->slot[i].fd;
		}
		if (wk->slot[victim].fd >= 0 &&
		    (wk->slot[i].fd < 0 || wk->slot[i].used < wk->slot[victim].used))
			victim = i;
	}
	if (wk->slot[victim].fd >= 0)
		slot_close(wk, victim);
	struct rfile *f = &c->files[file];
	int fd = open_rel(c->rootfd, f->dir, f->name, f->path, O_WRONLY | (f->lazy ? O_CREAT : 0));
	wk->slot[victim].fd = fd;
	if (fd == -1)
		return warn_err(c, "open", f->path);
	wk->slot[victim].file = file;
	wk->slot[victim].used = ++wk->tick;
	return fd;
}

static void wk_close(struct worker *wk, uint32_t file)
{
	for (int i = 0; i < FD_SLOTS; i++)
		if (wk->slot[i].fd >= 0 && wk->slot[i].file == file)
			slot_close(wk, i);
}

/* One blob write of `file` is done (or failed): the last one sets the
 * file's metadata through the open fd and closes it. */
static void wrote(struct rctx *c, struct worker *wk, uint32_t file)
{
	struct rfile *f = &c->files[file];
	if (__atomic_sub_fetch(&f->left, 1, __ATOMIC_ACQ_REL) != 0)
		return;
	int fd = wk_fd(c, wk, file);
	if (fd < 0)
		return;
	/* holes at the end of sparse files; damaged files keep their size */
	if ((f->sparse || __atomic_load_n(&f->bad, __ATOMIC_ACQUIRE)) &&
	    ftruncate(fd, (off_t)f->size) == -1)
		warn_err(c, "truncate", f->path);
	meta_fd(c, fd, f);
	f->done = 1;
	wk_close(wk, file);
}

/* Record a damaged range of file f (zeros there; the file is marked bad). */
static void damaged(struct rctx *c, struct rfile *f, uint64_t off, uint64_t len, const char *why)
{
	tw_warn("file %s is damaged at offset %llu, %llu bytes: %s", f->path, (unsigned long long)off,
		(unsigned long long)len, why);
	__atomic_store_n(&f->bad, 1, __ATOMIC_RELEASE);
	count(&c->st->errors, 1);
	pthread_mutex_lock(&c->mu);
	struct tw_restore_stats *st = c->st;
	if (st->ndamage == c->damage_cap) {
		size_t cap = c->damage_cap ? 2 * c->damage_cap : 16;
		struct tw_restore_damage *v = realloc(st->damage, cap * sizeof *v);
		if (v != NULL) {
			st->damage = v;
			c->damage_cap = cap;
		}
	}
	if (st->ndamage < c->damage_cap && (st->damage[st->ndamage].path = strdup(f->path)) != NULL) {
		st->damage[st->ndamage].off = off;
		st->damage[st->ndamage].len = len;
		st->ndamage++;
	}
	pthread_mutex_unlock(&c->mu);
}

static void restore_group(struct rctx *c, struct worker *wk, size_t lo, size_t hi)
{
	struct wr *w = c->wrs;
	uint64_t start = w[lo].boff, end = 0;
	for (size_t i = lo; i < hi; i++)
		if ((uint64_t)w[i].boff + w[i].blen > end)
			end = (uint64_t)w[i].boff + w[i].blen;
	char pname[65];
	tw_hex(c->r->index.packs[w[lo].pack], TW_ID_LEN, pname);
	uint8_t *buf = NULL;
	size_t got = 0;
	struct tw_err e = {0};
	if (tw_storage_get(c->r->st, TW_ST_DATA, pname, start, end - start, &buf, &got, &e) != 0) {
		char why[600];
		snprintf(why, sizeof why, "pack %.16s: %s", pname, e.msg);
		for (size_t i = lo; i < hi; i++) {
			damaged(c, &c->files[w[i].file], w[i].off, w[i].raw, why);
			wrote(c, wk, w[i].file);
		}
		return;
	}
	const uint8_t *pt = NULL;
	int bad = 0;
	char why[600] = "";
	for (size_t i = lo; i < hi; i++) {
		if (i == lo || w[i].boff != w[i - 1].boff) {
			pt = NULL;
			bad = 0;
			struct tw_pack_entry en = {w[i].type, w[i].flags, {0}, w[i].boff, w[i].blen, w[i].raw, {0}};
			memcpy(en.id, w[i].id, TW_ID_LEN);
			if (en.flags & TW_BLOB_DELTA) /* its base: restore reads it through the base cache */
				tw_index_entry(&c->r->index, tw_index_get(&c->r->index, en.id), &en);
			if ((uint64_t)w[i].boff + w[i].blen - start > got ||
			    tw_repo_blob_open(c->r, &en, buf + (w[i].boff - start), &wk->raw,
					      &wk->raw_cap, &pt, &e) != 0) {
				char hex[65];
				tw_hex(w[i].id, TW_ID_LEN, hex);
				snprintf(why, sizeof why, "blob %.16s in pack %.16s: %s", hex, pname,
					 e.msg[0] ? e.msg : "past the end of the pack (truncated)");
				bad = 1;
			}
		}
		struct rfile *f = &c->files[w[i].file];
		if (bad) {
			damaged(c, f, w[i].off, w[i].raw, why);
		} else {
			count(&c->o->progress->bytes, w[i].raw);
			if (!(f->sparse && all_zero(pt, w[i].raw))) {
				int fd = wk_fd(c, wk, w[i].file);
				if (fd >= 0 && write_range(fd, pt, w[i].raw, w[i].off, f->sparse) != 0)
					warn_err(c, "write", f->path);
				else if (fd >= 0 && c->o->writeback)
					kick(wk, fd, w[i].raw);
			}
		}
		wrote(c, wk, w[i].file);
	}
	free(buf);
}

/* A pack is read in windows of at most 4 MiB (one range request each, one
 * group of phase 2), so a writer thread never holds a whole pack. */
#define RANGE_MAX ((uint64_t)4 << 20)

static void *data_main(void *arg)
{
	struct rctx *c = arg;
	struct worker wk;
	memset(&wk, 0, sizeof wk);
	for (int i = 0; i < FD_SLOTS; i++)
		wk.slot[i].fd = -1;
	for (;;) {
		pthread_mutex_lock(&c->mu);
		size_t g = c->next_group++;
		int full = c->fs_full;
		pthread_mutex_unlock(&c->mu);
		if (g >= c->ngroups || full)
			break;
		size_t lo = c->groups[g], hi = g + 1 < c->ngroups ? c->groups[g + 1] : c->nwrs;
		restore_group(c, &wk, lo, hi);
	}
	for (int i = 0; i < FD_SLOTS; i++)
		if (wk.slot[i].fd >= 0)
			slot_close(&wk, i);
	free(wk.raw);
	return NULL;
}

/* Phase 3: what phase 2 did not finish (files whose data could not all be
 * written, fifos and devices), then directories. */
static void set_meta(struct rctx *c, const struct rfile *f)
{
	if (f->type == TW_NODE_FILE || f->type == TW_NODE_DIR) {
		int fd = open_rel(c->rootfd, f->dir, f->name, f->path,
				  f->type == TW_NODE_DIR ? O_RDONLY | O_DIRECTORY : O_RDONLY | O_NONBLOCK);
		if (fd == -1) {
			warn_err(c, "open", f->path);
			return;
		}
		meta_fd(c, fd, f);
		close(fd);
		return;
	}
	int dfd = open_dir(c->rootfd, f->dir);
	if (dfd == -1) {
		warn_err(c, "open", f->dir);
		return;
	}
	if (fchownat(dfd, f->name, f->uid, f->gid, AT_SYMLINK_NOFOLLOW) == -1 && errno != EPERM)
		warn_err(c, "chown", f->path);
	if (fchmodat(dfd, f->name, f->mode, 0) == -1)
		warn_err(c, "chmod", f->path);
	struct timespec ts[2] = {{f->mtime_ns / 1000000000, f->mtime_ns % 1000000000},
				 {f->mtime_ns / 1000000000, f->mtime_ns % 1000000000}};
	if (utimensat(dfd, f->name, ts, AT_SYMLINK_NOFOLLOW) == -1)
		warn_err(c, "utimes", f->path);
	close(dfd);
}

static int damage_cmp(const void *a, const void *b)
{
	const struct tw_restore_damage *x = a, *y = b;
	int c = strcmp(x->path, y->path);
	if (c != 0)
		return c;
	return x->off < y->off ? -1 : x->off > y->off;
}

void tw_restore_stats_free(struct tw_restore_stats *st)
{
	for (size_t i = 0; i < st->ndamage; i++)
		free(st->damage[i].path);
	free(st->damage);
	for (size_t i = 0; i < st->ndamaged_paths; i++)
		free(st->damaged_paths[i]);
	free(st->damaged_paths);
	st->damage = NULL;
	st->damaged_paths = NULL;
	st->ndamage = st->ndamaged_paths = 0;
}

int tw_restore_run(struct tw_repo *r, const struct tw_snapshot *s, const struct tw_restore_opts *o,
		   struct tw_restore_stats *st, struct tw_err *e)
{
	struct rctx c;
	memset(&c, 0, sizeof c);
	memset(st, 0, sizeof *st);
	c.r = r;
	c.o = o;
	c.st = st;
	pthread_mutex_init(&c.mu, NULL);
	int rc = 0;
	char incbuf[PATH_MAX];
	char *incv[256];
	if (o->include != NULL) {
		snprintf(incbuf, sizeof incbuf, "%s", o->include);
		for (char *p = incbuf; *p;) {
			char *sl = strchr(p, '/');
			if (sl)
				*sl = '\0';
			if (*p && c.ninc < 256)
				incv[c.ninc++] = p;
			if (!sl)
				break;
			p = sl + 1;
		}
		c.inc = incv;
	}
	int fresh = mkdir(o->target, 0700) == 0;
	if (!fresh && errno != EEXIST)
		return tw_err_set(e, TW_EIO, "mkdir %s: %s", o->target, strerror(errno));
	c.rootfd = open(o->target, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (c.rootfd == -1)
		return tw_err_set(e, TW_EIO, "open %s: %s", o->target, strerror(errno));
	/* phase 1: structure */
	walk(&c, s->tree, c.rootfd, "", 0, c.ninc == 0, fresh);
	if (c.fatal) {
		rc = tw_err_set(e, TW_ENOMEM, "out of memory");
		goto done;
	}
	/* phase 2: data in pack order */
	if (c.nwrs > 1)
		qsort(c.wrs, c.nwrs, sizeof *c.wrs, wr_cmp);
	c.groups = malloc((c.nwrs + 1) * sizeof *c.groups);
	if (c.groups == NULL) {
		rc = tw_err_set(e, TW_ENOMEM, "out of memory");
		goto done;
	}
	/* one group per read window (a range of one pack of at most
	 * RANGE_MAX), not per pack: a repository of a few large packs still
	 * spreads over every thread. A blob written to several files stays in
	 * one group (it is decrypted once). */
	uint64_t wstart = 0;
	for (size_t i = 0; i < c.nwrs; i++) {
		struct wr *w = &c.wrs[i];
		if (i == 0 || w->pack != c.wrs[i - 1].pack ||
		    (w->boff != c.wrs[i - 1].boff && (uint64_t)w->boff + w->blen - wstart > RANGE_MAX)) {
			c.groups[c.ngroups++] = i;
			wstart = w->boff;
		}
	}
	long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
	int nt = o->threads > 0 ? o->threads : (ncpu > 0 ? (int)ncpu : 2);
	if ((size_t)nt > c.ngroups)
		nt = c.ngroups ? (int)c.ngroups : 1;
	pthread_t th[64];
	int started = 0;
	for (int i = 0; i < nt && i < 64; i++)
		if (pthread_create(&th[i], NULL, data_main, &c) == 0)
			started++;
	if (started == 0)
		data_main(&c);
	for (int i = 0; i < started; i++)
		pthread_join(th[i], NULL);
	if (c.fs_full) { /* files not reached do not exist: no links, no metadata */
		rc = tw_err_set(e, TW_EIO,
				"the target's file system is %s (%s: %s); the restore stopped there "
				"and is incomplete: make room and run it again",
				c.fs_full == EROFS ? "read-only" : "full", c.fs_full_path,
				strerror(c.fs_full));
		st->bytes = o->progress->bytes;
		goto done;
	}
	/* hard links, now that the files they point to exist */
	for (size_t i = 0; i < c.nlinks; i++) {
		struct lnk *l = &c.links[i];
		struct rfile *first = &c.files[l->first];
		int dfd = open_dir(c.rootfd, l->dir), ofd = open_dir(c.rootfd, first->dir);
		if (dfd >= 0)
			replace_existing(dfd, l->name);
		if (dfd == -1 || ofd == -1 || linkat(ofd, first->name, dfd, l->name, 0) == -1)
			warn_err(&c, "link", l->path);
		if (dfd >= 0)
			close(dfd);
		if (ofd >= 0)
			close(ofd);
	}
	/* phase 3: metadata, files then directories (post-order) */
	for (size_t i = 0; i < c.nfiles; i++)
		if (!c.files[i].done)
			set_meta(&c, &c.files[i]);
	for (size_t i = 0; i < c.ndirs; i++)
		set_meta(&c, &c.dirs[i]);
	/* damaged files do not sit under their real names as if they were good */
	for (size_t i = 0; i < c.nfiles; i++) {
		struct rfile *f = &c.files[i];
		if (!f->bad)
			continue;
		char *shown = NULL;
		if (!o->keep_damaged_names) {
			char nn[NAME_MAX + 16];
			snprintf(nn, sizeof nn, "%s.damaged", f->name);
			int dfd = open_dir(c.rootfd, f->dir);
			if (dfd == -1 || renameat(dfd, f->name, dfd, nn) == -1)
				warn_err(&c, "rename", f->path);
			else if (asprintf(&shown, "%s.damaged", f->path) < 0)
				shown = NULL;
			if (dfd >= 0)
				close(dfd);
		}
		if (shown == NULL)
			shown = strdup(f->path);
		char **v = realloc(st->damaged_paths, (st->ndamaged_paths + 1) * sizeof *v);
		if (v == NULL || shown == NULL) {
			free(shown);
			if (v != NULL)
				st->damaged_paths = v;
			continue;
		}
		st->damaged_paths = v;
		st->damaged_paths[st->ndamaged_paths++] = shown;
	}
	if (st->ndamage > 1)
		qsort(st->damage, st->ndamage, sizeof *st->damage, damage_cmp);
	st->bytes = o->progress->bytes;
	if (st->errors)
		rc = tw_err_set(e, TW_ECORRUPT, "%llu errors during restore",
				(unsigned long long)st->errors);
done:
	for (size_t i = 0; i < c.nfiles; i++) {
		free(c.files[i].dir);
		free(c.files[i].name);
		free(c.files[i].path);
		free(c.files[i].xattrs);
	}
	for (size_t i = 0; i < c.ndirs; i++) {
		free(c.dirs[i].dir);
		free(c.dirs[i].name);
		free(c.dirs[i].path);
		free(c.dirs[i].xattrs);
	}
	for (size_t i = 0; i < c.nlinks; i++) {
		free(c.links[i].dir);
		free(c.links[i].name);
		free(c.links[i].path);
	}
	free(c.links);
	free(c.files);
	free(c.dirs);
	free(c.wrs);
	free(c.hls);
	free(c.groups);
	close(c.rootfd);
	pthread_mutex_destroy(&c.mu);
	return rc;
}
