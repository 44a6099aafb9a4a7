/* filecache.h — the static handler's open-file cache, one per worker thread.
 *
 * A request for a file under a route's root costs openat2 + fstat + close
 * without it; with it, a file asked for again within TW_FCACHE_TTL_MS costs
 * one fstat on the descriptor already open. The fstat on every hit keeps the
 * answer true to the file as it is now when it is changed in place (size or
 * modification time: a new ETag); a file replaced by rename or removed is
 * seen when its entry expires (at most TW_FCACHE_TTL_MS later), and until
 * then the old file's bytes go out under the old file's own ETag — never
 * mixed. "No such file" is remembered as long (a file created is seen within
 * the same time). docs/static.md, "Open-file cache".
 *
 * Ownership: tw_fcache_get() lends the caller a reference on the entry (and
 * its descriptor) that tw_fcache_put() gives back; an entry evicted while a
 * request still sends from it closes its descriptor with the last reference.
 * Per thread, no locks; everything is freed when the thread exits. */
#ifndef TW_EDGE_FILECACHE_H
#define TW_EDGE_FILECACHE_H

#include <stdint.h>
#include <sys/stat.h>

#define TW_FCACHE_SLOTS 128
#define TW_FCACHE_TTL_MS 1000

struct tw_fcache_ent {
	uint64_t gen;      /* config generation id (never reused) */
	const void *route; /* the route of that generation */
	uint64_t hash;
	char *rel;             /* the name below the root */
	int fd;                /* -1: a remembered failure (err) */
	int err;               /* errno of the failed open */
	unsigned refs;         /* the cache's own + requests sending from it */
	uint64_t expires_ms;   /* tw_loop_now clock */
	struct stat st;        /* as of the last fstat */
	char etag[48], lm[32]; /* formatted from st (ETag, Last-Modified) */
	uint8_t etag_len, lm_len;
};

/* The file rel below the root dfd belongs to (gen, route), opened with
 * RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS, fstat'ed now; now_ms is the
 * loop's clock. Returns an entry with a reference for the caller, or NULL
 * with errno set (ENOENT, EXDEV for a path leaving the root, ...). */
struct tw_fcache_ent *tw_fcache_get(int dfd, uint64_t gen, const void *route, const char *rel,
                                    uint64_t now_ms);
void tw_fcache_put(struct tw_fcache_ent *e); /* NULL accepted */

/* Entries held and descriptors open by this thread's cache (for tests and
 * metrics). */
unsigned tw_fcache_count(void);

#endif
