/* storage.h — where repository objects live: one small interface, several drivers.
 *
 * A storage holds named objects grouped by type (config, keys, data, index,
 * snapshots, locks). Names are short ASCII strings chosen by the repository
 * layer (64 hex chars, or "config"). Drivers: local directory (local.c) and
 * S3 (s3.c). See docs/internals/storage.md. All functions return 0 or a
 * negative TW_E* code; detail goes to the struct tw_err. Thread-safe: the
 * backup pipeline calls put/get from several threads at once. */
#ifndef TW_STORAGE_STORAGE_H
#define TW_STORAGE_STORAGE_H

#include <stddef.h>
#include <stdint.h>

#include "core/err.h"

enum tw_st_type {
	TW_ST_CONFIG = 0,
	TW_ST_KEY,
	TW_ST_DATA,
	TW_ST_INDEX,
	TW_ST_SNAPSHOT,
	TW_ST_LOCK,
	TW_ST_WAL, /* PostgreSQL WAL files, named by the cluster and the file (src/pg/archive.h) */
	TW_ST_NTYPES
};

/* put flags */
#define TW_ST_EXCL 1 /* conditional put: fail with TW_EEXIST if the name exists */
/* The name is the lowercase hex SHA-256 of the bytes put (packs). A backend may
 * use it as the payload digest instead of hashing the bytes again (S3 signs it;
 * the server checks the payload against it). */
#define TW_ST_SHA256_NAME 2

/* Whole object for get(): len = TW_ST_WHOLE. */
#define TW_ST_WHOLE UINT64_MAX

typedef int (*tw_st_list_cb)(void *arg, const char *name, uint64_t size);
/* A leftover temporary object: id names it for tmp_del (driver-specific,
 * e.g. "data/.tmp-w-4242-7"), age_s since it was last written. */
typedef int (*tw_st_tmp_cb)(void *arg, const char *id, uint64_t size, uint64_t age_s);

struct tw_storage;
struct tw_st_writer; /* a driver's object being written in pieces */

struct tw_storage_ops {
	/* Durable and atomic: readers see the whole object or nothing. */
	int (*put)(struct tw_storage *s, enum tw_st_type t, const char *name, const void *buf,
		   size_t len, int flags, struct tw_err *e);
	/* Read [off, off+len) (len = TW_ST_WHOLE: to the end) into a malloc'd
	 * buffer *out of *out_len bytes (fewer only at end of object). */
	int (*get)(struct tw_storage *s, enum tw_st_type t, const char *name, uint64_t off,
		   uint64_t len, uint8_t **out, size_t *out_len, struct tw_err *e);
	/* Call cb for every object of type t (any order). A non-zero return
	 * from cb stops the listing and is returned. */
	int (*list)(struct tw_storage *s, enum tw_st_type t, tw_st_list_cb cb, void *arg,
		    struct tw_err *e);
	int (*del)(struct tw_storage *s, enum tw_st_type t, const char *name, struct tw_err *e);
	int (*stat)(struct tw_storage *s, enum tw_st_type t, const char *name, uint64_t *size,
		    struct tw_err *e);
	void (*close)(struct tw_storage *s);
	/* Optional (NULL if unsupported): write an object in pieces whose name
	 * is known only at the end (packs are named by their hash), so large
	 * objects need not sit in memory. commit = durable + atomic under name,
	 * like put; commit and abort free the writer. */
	int (*writer_open)(struct tw_storage *s, enum tw_st_type t, struct tw_st_writer **w,
			   struct tw_err *e);
	int (*writer_write)(struct tw_st_writer *w, const void *buf, size_t len, struct tw_err *e);
	int (*writer_commit)(struct tw_st_writer *w, const char *name, struct tw_err *e);
	void (*writer_abort)(struct tw_st_writer *w);
	/* Optional (NULL: the driver leaves none): temporary objects a put or a
	 * writer killed midway left behind (local ".tmp-*" files, S3 multipart
	 * uploads never completed). tmp_del removes one by its id; it refuses
	 * an id that does not name a temporary object. */
	int (*tmp_list)(struct tw_storage *s, tw_st_tmp_cb cb, void *arg, struct tw_err *e);
	int (*tmp_del)(struct tw_storage *s, const char *id, struct tw_err *e);
};

struct tw_storage {
	const struct tw_storage_ops *ops;
};

/* Convenience wrappers (inline dispatch). */
int tw_storage_put(struct tw_storage *s, enum tw_st_type t, const char *name, const void *buf,
		   size_t len, int flags, struct tw_err *e);
int tw_storage_get(struct tw_storage *s, enum tw_st_type t, const char *name, uint64_t off,
		   uint64_t len, uint8_t **out, size_t *out_len, struct tw_err *e);
int tw_storage_list(struct tw_storage *s, enum tw_st_type t, tw_st_list_cb cb, void *arg,
		    struct tw_err *e);
int tw_storage_del(struct tw_storage *s, enum tw_st_type t, const char *name, struct tw_err *e);
int tw_storage_stat(struct tw_storage *s, enum tw_st_type t, const char *name, uint64_t *size,
		    struct tw_err *e);
void tw_storage_close(struct tw_storage *s); /* s may be NULL */
int tw_storage_has_writer(const struct tw_storage *s);
/* Temporary leftovers (0 and no call when the driver has none). */
int tw_storage_tmp_list(struct tw_storage *s, tw_st_tmp_cb cb, void *arg, struct tw_err *e);
int tw_storage_tmp_del(struct tw_storage *s, const char *id, struct tw_err *e);
const char *tw_storage_type_name(enum tw_st_type t);
/* 1 if name may name an object: [A-Za-z0-9._-]{1,128}, not starting with '.'
 * (so it can never be a path outside the store); 0 if not. Drivers check it. */
int tw_storage_name_ok(const char *name);

/* Open a storage by URL-ish location: a plain path is a local directory. */
int tw_storage_open(const char *location, int create, struct tw_storage **out, struct tw_err *e);

/* local.c: the local-directory driver. create=1 makes the directory layout
 * (fails TW_EEXIST when a config already exists). */
int tw_storage_local_open(const char *dir, int create, struct tw_storage **out,
			  struct tw_err *e);

#endif
