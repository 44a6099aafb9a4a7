/* passthru.h — a storage that hands every call to an inner one, for tests
 * that change one operation of a real driver: declare a struct passthru
 * first in your own, give PASSTHRU_OPS your put, and call passthru_put from
 * it for the real work (tests/unit/backup/packer.c holds pack puts at a
 * gate; tests/unit/acme/store_s3.c lets a racing writer win a lock). close()
 * closes the inner storage only when owns_inner is set; the wrapper itself
 * is the test's to free. */
#ifndef TW_TEST_STORAGE_PASSTHRU_H
#define TW_TEST_STORAGE_PASSTHRU_H

#include "storage/storage.h"

struct passthru {
	struct tw_storage base;
	struct tw_storage *inner;
	int owns_inner;
};

static inline struct tw_storage *passthru_inner(struct tw_storage *s)
{
	return ((struct passthru *)s)->inner;
}

static inline int passthru_put(struct tw_storage *s, enum tw_st_type t, const char *name,
                               const void *buf, size_t len, int flags, struct tw_err *e)
{
	return tw_storage_put(passthru_inner(s), t, name, buf, len, flags, e);
}

static inline int passthru_get(struct tw_storage *s, enum tw_st_type t, const char *name,
                               uint64_t off, uint64_t len, uint8_t **out, size_t *out_len,
                               struct tw_err *e)
{
	return tw_storage_get(passthru_inner(s), t, name, off, len, out, out_len, e);
}

static inline int passthru_list(struct tw_storage *s, enum tw_st_type t, tw_st_list_cb cb,
                                void *arg, struct tw_err *e)
{
	return tw_storage_list(passthru_inner(s), t, cb, arg, e);
}

static inline int passthru_del(struct tw_storage *s, enum tw_st_type t, const char *name,
                               struct tw_err *e)
{
	return tw_storage_del(passthru_inner(s), t, name, e);
}

static inline int passthru_stat(struct tw_storage *s, enum tw_st_type t, const char *name,
                                uint64_t *size, struct tw_err *e)
{
	return tw_storage_stat(passthru_inner(s), t, name, size, e);
}

static inline void passthru_close(struct tw_storage *s)
{
	if (((struct passthru *)s)->owns_inner)
		tw_storage_close(passthru_inner(s));
}

/* Writers are left out (NULL): callers then put whole objects. */
#define PASSTHRU_OPS(put_fn)                                                                       \
	{                                                                                          \
		.put = (put_fn), .get = passthru_get, .list = passthru_list, .del = passthru_del,  \
		.stat = passthru_stat, .close = passthru_close,                                    \
	}

#endif
