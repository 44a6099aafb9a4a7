/* filecache.c — the static handler's open-file cache (see filecache.h).
 *
 * A direct-mapped table per thread: a name hashes to one slot; another name
 * hashing there replaces it. Each lookup also looks at one more slot in turn
 * and drops it when it has expired, so a removed file's descriptor is not
 * kept open long by a table nobody asks for it. */
#include "edge/filecache.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

struct fcache {
	struct tw_fcache_ent *slot[TW_FCACHE_SLOTS];
	unsigned sweep;
	unsigned count;
};

static _Thread_local struct fcache fc_tls;
static _Thread_local int fc_registered;
static pthread_key_t fc_key;
static pthread_once_t fc_once = PTHREAD_ONCE_INIT;
static int fc_key_ok;

static void ent_unref(struct fcache *fc, struct tw_fcache_ent *e)
{
	if (e == NULL || --e->refs > 0)
		return;
	if (e->fd >= 0)
		close(e->fd);
	free(e->rel);
	free(e);
	if (fc)
		fc->count--;
}

static void fc_drop(void *arg)
{
	struct fcache *fc = arg;
	for (unsigned i = 0; i < TW_FCACHE_SLOTS; i++) {
		struct tw_fcache_ent *e = fc->slot[i];
		fc->slot[i] = NULL;
		if (e)
			ent_unref(fc, e);
	}
}

static void fc_key_init(void)
{
	fc_key_ok = pthread_key_create(&fc_key, fc_drop) == 0;
}

static struct fcache *fc_get_table(void)
{
	if (!fc_registered) {
		pthread_once(&fc_once, fc_key_init);
		if (fc_key_ok)
			pthread_setspecific(fc_key, &fc_tls);
		fc_registered = 1;
	}
	return &fc_tls;
}

static uint64_t hash_of(uint64_t gen, const void *route, const char *rel, size_t *len)
{
	uint64_t h =
	    0xcbf29ce484222325ull ^ gen * 0x9e3779b97f4a7c15ull ^ (uint64_t)(uintptr_t)route;
	size_t i = 0;
	for (; rel[i]; i++)
		h = (h ^ (uint8_t)rel[i]) * 0x100000001b3ull;
	*len = i;
	return h ^ (h >> 29);
}

static void http_date(time_t t, char *out, size_t cap)
{
	struct tm tm;
	gmtime_r(&t, &tm);
	static const char *const days[] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
	static const char *const months[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
	                                     "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
	snprintf(out, cap, "%s, %02d %s %04d %02d:%02d:%02d GMT", days[tm.tm_wday], tm.tm_mday,
	         months[tm.tm_mon], tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec);
}

/* ETag and Last-Modified from e->st (again only when the file changed) */
static void format_validators(struct tw_fcache_ent *e)
{
	int n = snprintf(e->etag, sizeof e->etag, "\"%llx-%llx\"",
	                 (unsigned long long)e->st.st_mtim.tv_sec * 1000000000ull +
	                     (unsigned long long)e->st.st_mtim.tv_nsec,
	                 (unsigned long long)e->st.st_size);
	e->etag_len = (uint8_t)(n > 0 && (size_t)n < sizeof e->etag ? n : 0);
	http_date(e->st.st_mtim.tv_sec, e->lm, sizeof e->lm);
	e->lm_len = (uint8_t)strlen(e->lm);
}

static int same_file_state(const struct stat *a, const struct stat *b)
{
	return a->st_size == b->st_size && a->st_mtim.tv_sec == b->st_mtim.tv_sec &&
	       a->st_mtim.tv_nsec == b->st_mtim.tv_nsec && a->st_mode == b->st_mode;
}

static int open_beneath(int dfd, const char *rel)
{
	struct open_how how;
	memset(&how, 0, sizeof how);
	how.flags = O_RDONLY | O_CLOEXEC | O_NOCTTY;
	how.resolve = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS;
	return (int)syscall(SYS_openat2, dfd, rel[0] ? rel : ".", &how, sizeof how);
}

static void evict(struct fcache *fc, unsigned k)
{
	struct tw_fcache_ent *e = fc->slot[k];
	fc->slot[k] = NULL;
	ent_unref(fc, e);
}

struct tw_fcache_ent *tw_fcache_get(int dfd, uint64_t gen, const void *route, const char *rel,
                                    uint64_t now_ms)
{
	struct fcache *fc = fc_get_table();
	size_t rlen;
	uint64_t h = hash_of(gen, route, rel, &rlen);
	unsigned k = (unsigned)(h % TW_FCACHE_SLOTS);
	/* one more slot in turn: expired entries do not keep files open */
	unsigned s = fc->sweep++ % TW_FCACHE_SLOTS;
	if (s != k && fc->slot[s] && fc->slot[s]->expires_ms <= now_ms)
		evict(fc, s);
	struct tw_fcache_ent *e = fc->slot[k];
	if (e && e->hash == h && e->gen == gen && e->route == route && strcmp(e->rel, rel) == 0 &&
	    e->expires_ms > now_ms) {
		if (e->fd < 0) {
			errno = e->err;
			return NULL;
		}
		struct stat st;
		if (fstat(e->fd, &st) == 0) {
			if (!same_file_state(&st, &e->st)) {
				e->st = st;
				format_validators(e);
			}
			e->refs++;
			return e;
		}
		evict(fc, k); /* cannot be: open again below */
		e = NULL;
	}
	if (e)
		evict(fc, k);
	struct tw_fcache_ent *n = calloc(1, sizeof *n);
	char *name = n ? malloc(rlen + 1) : NULL;
	if (name == NULL) {
		free(n);
		errno = ENOMEM;
		return NULL;
	}
	memcpy(name, rel, rlen + 1);
	n->gen = gen;
	n->route = route;
	n->hash = h;
	n->rel = name;
	n->refs = 1;
	n->expires_ms = now_ms + TW_FCACHE_TTL_MS;
	n->fd = open_beneath(dfd, rel);
	int err = errno;
	if (n->fd >= 0 && fstat(n->fd, &n->st) != 0) {
		err = errno;
		close(n->fd);
		n->fd = -1;
	}
	if (n->fd < 0) {
		n->err = err;
		/* only the answers that do not depend on the moment are remembered */
		if (err != ENOENT && err != ENOTDIR && err != EXDEV && err != ELOOP) {
			free(n->rel);
			free(n);
			errno = err;
			return NULL;
		}
	} else {
		format_validators(n);
	}
	fc->slot[k] = n;
	fc->count++;
	if (n->fd < 0) {
		errno = err;
		return NULL;
	}
	n->refs++;
	return n;
}

void tw_fcache_put(struct tw_fcache_ent *e)
{
	/* the count is the table's: an entry let go after its thread's table
	 * was dropped (cannot happen: requests end on their own thread) still
	 * frees itself */
	ent_unref(fc_registered ? &fc_tls : NULL, e);
}

unsigned tw_fcache_count(void)
{
	return fc_tls.count;
}
