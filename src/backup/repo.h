/* repo.h — an open repository: storage + keys + config + index + lock.
 *
 * Objects are sealed with the master keys and named by the SHA-256 of their
 * stored bytes. Blob reads go through the in-memory index. The index is
 * filled by tw_repo_load_index(); writers add to it under r->ix_mu. */
#ifndef TW_BACKUP_REPO_H
#define TW_BACKUP_REPO_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include "backup/crypto.h"
#include "backup/index.h"
#include "backup/pack.h"
#include "backup/snapshot.h"
#include "backup/tree.h"
#include "storage/storage.h"

#define TW_LOCK_LEASE_S 300

struct tw_repo {
	struct tw_storage *st;
	struct tw_keys keys;
	uint64_t gear[256];
	uint32_t chunk_min, chunk_avg, chunk_max, pack_size;
	int level;
	char key_name[2 * TW_ID_LEN + 1];
	struct tw_index index;
	pthread_mutex_t ix_mu;
	unsigned index_errors; /* index objects that could not be read by load_index */
	/* pending index object (packs written, not yet named by an index) */
	struct tw_index_enc idx_enc;
	uint32_t idx_pending;
	/* tree packs read whole and kept (bounded, LRU): a remote repository
	 * answers one GET per tree pack instead of one per directory */
	struct {
		uint32_t pack;
		uint8_t *data;
		size_t len;
		uint64_t used;
	} tcache[16];
	size_t tcache_bytes;
	uint64_t tcache_tick;
	pthread_mutex_t tc_mu;
	/* local directory storage: a backup may store page deltas (reading a
	 * base back is a pread; on S3 it would be a GET per unit) */
	int local;
	/* plaintexts of delta bases read lately (a restore reads a base for
	 * every delta; the bases of neighbouring deltas repeat along a chain) */
	struct {
		uint8_t id[TW_ID_LEN];
		uint8_t *data;
		size_t len;
		uint64_t used;
	} bcache[32];
	uint64_t bcache_tick;
	pthread_mutex_t bc_mu;
	/* lock */
	char lock_name[2 * TW_ID_LEN + 1];
	int lock_exclusive;
	pthread_t lock_thread;
	int lock_thread_on, lock_stop;
	pthread_mutex_t lock_mu;
	pthread_cond_t lock_cv;
};

/* Create a repository at location with one key for the password.
 * pack_size 0 = default (16 MiB); otherwise 1..256 MiB. */
int tw_repo_init(const char *location, const char *pw, size_t pwlen, uint32_t pack_size,
		 struct tw_err *e);
int tw_repo_open(const char *location, const char *pw, size_t pwlen, struct tw_repo **out,
		 struct tw_err *e);
/* Open with the master keys (enc | mac | seed) instead of a password, e.g.
 * kept by src/pg/keycache.c: the config object must authenticate with them
 * (TW_ECRYPTO otherwise). */
int tw_repo_open_master(const char *location, const uint8_t master[TW_MASTER_LEN],
			struct tw_repo **out, struct tw_err *e);
void tw_repo_close(struct tw_repo *r); /* releases the lock; r may be NULL */

/* Add a key file for another password (name of the new key in name_out). */
int tw_repo_add_key(struct tw_repo *r, const char *pw, size_t pwlen, char name_out[65],
		    struct tw_err *e);

int tw_repo_put_object(struct tw_repo *r, enum tw_st_type t, const char *kind, const void *pt,
		       size_t n, char name_out[65], struct tw_err *e);
/* Same with storage put flags (TW_ST_EXCL: conditional put, TW_EEXIST if the
 * name exists). Locks use it; content-named objects need not. */
int tw_repo_put_object_flags(struct tw_repo *r, enum tw_st_type t, const char *kind,
			     const void *pt, size_t n, int flags, char name_out[65], struct tw_err *e);
/* Fetch, verify name == SHA-256(stored), open. *pt malloc'd. */
int tw_repo_get_object(struct tw_repo *r, enum tw_st_type t, const char *kind, const char *name,
		       uint8_t **pt, size_t *n, struct tw_err *e);

/* Load every index object into r->index. */
int tw_repo_load_index(struct tw_repo *r, struct tw_err *e);
/* Read a blob by ID (index lookup + range read + open). *pt malloc'd. */
int tw_repo_read_blob(struct tw_repo *r, const uint8_t id[TW_ID_LEN], uint8_t **pt, size_t *n,
		      struct tw_err *e);
/* Open a stored blob as tw_blob_open_inplace does (stored is overwritten,
 * *pt points into stored or *raw), reading a delta blob's base (through
 * the base cache) to rebuild it; the result's ID is checked either way. */
int tw_repo_blob_open(struct tw_repo *r, const struct tw_pack_entry *en, uint8_t *stored,
		      uint8_t **raw, size_t *raw_cap, const uint8_t **pt, struct tw_err *e);
/* The plaintext of blob id, read as a delta base (its own ID is not
 * checked: the ID of what is rebuilt from it is), into *buf (replaced by a
 * malloc'd buffer; free it when done), *n bytes. Not kept in the base cache. */
int tw_repo_read_base(struct tw_repo *r, const uint8_t id[TW_ID_LEN], uint8_t **buf,
		      size_t *cap, size_t *n, struct tw_err *e);
/* Read and decode a tree; free *buf and *nodes. */
int tw_repo_read_tree(struct tw_repo *r, const uint8_t id[TW_ID_LEN], uint8_t **buf,
		      struct tw_node **nodes, uint32_t *count, struct tw_err *e);
/* Read and decode the header of pack `name` of `size` bytes. */
int tw_repo_pack_header(struct tw_repo *r, const char *name, uint64_t size,
			struct tw_pack_entry **ents, uint32_t *count, struct tw_err *e);
/* Seal a header for ents and append it (and its length) to buf. */
int tw_repo_pack_trailer(struct tw_repo *r, const struct tw_pack_entry *ents, uint32_t n,
			 struct tw_dbuf *buf);

/* A pack was written: remember it for the next index object (and in the
 * in-memory index). Every 32 packs an index object is written. */
int tw_repo_pack_written(struct tw_repo *r, const uint8_t pack_id[TW_ID_LEN],
			 const struct tw_pack_entry *ents, uint32_t n, struct tw_err *e);
/* Write the pending index object (if any). */
int tw_repo_flush_index(struct tw_repo *r, struct tw_err *e);

/* Snapshots sorted by time (oldest first). Free with tw_repo_free_snapshots. */
int tw_repo_list_snapshots(struct tw_repo *r, struct tw_snapshot ***out, size_t *n,
			   struct tw_err *e);
void tw_repo_free_snapshots(struct tw_snapshot **v, size_t n);
/* "latest" or a unique id prefix; returns a pointer into v. */
int tw_repo_find_snapshot(struct tw_snapshot **v, size_t n, const char *spec,
			  struct tw_snapshot **out, struct tw_err *e);
int tw_repo_save_snapshot(struct tw_repo *r, struct tw_snapshot *s, struct tw_err *e);

/* Locks (docs/repository-format.md "Locks"): 0, TW_ELOCKED or an error. */
int tw_repo_lock(struct tw_repo *r, int exclusive, struct tw_err *e);
void tw_repo_unlock(struct tw_repo *r);

#endif
