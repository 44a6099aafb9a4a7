/* store.h — where ACME state lives: account key, certificates, keys.
 *
 * A vtable (like the backup storage drivers): the local-directory driver
 * here keeps everything under STATE_DIR/acme/; an S3 driver comes later
 * behind the same interface so replicas can share certificates.
 *
 * Keys are relative paths of [A-Za-z0-9._-] segments joined by '/' (no
 * "..", no leading '/'), at most 255 bytes. Values are opaque bytes; `put`
 * replaces atomically (readers see the old or the new value, never a
 * mix); `secret` values are readable by the owner only (0600).
 *
 * Locks serialize issuance of one certificate across processes sharing a
 * store: lock(name) fails with TW_ELOCKED while another holder has it. The
 * holder re-reads the store after locking (someone else may have issued in
 * the meantime). lease_ms bounds how long a lock survives a holder that
 * died without unlocking on drivers that cannot tie a lock to a process
 * (S3); the local driver uses flock(2), released by the kernel when the
 * holder dies, and ignores it. */
#ifndef TW_ACME_STORE_H
#define TW_ACME_STORE_H

#include "core/dbuf.h"
#include "core/err.h"

#include <stddef.h>
#include <stdint.h>

#define TW_ACME_STORE_VALUE_MAX (1u << 20)

struct tw_acme_store;
struct tw_acme_lock;

struct tw_acme_store_ops {
	int (*get)(struct tw_acme_store *s, const char *key, struct tw_dbuf *out,
	           struct tw_err *err); /* TW_ENOENT when absent; out is appended to */
	int (*put)(struct tw_acme_store *s, const char *key, const void *data, size_t len,
	           int secret, struct tw_err *err);
	int (*del)(struct tw_acme_store *s, const char *key, struct tw_err *err);
	/* Names directly below `prefix` ("certs"), each passed to cb; cb < 0 stops. */
	int (*list)(struct tw_acme_store *s, const char *prefix,
	            int (*cb)(void *ud, const char *name), void *ud, struct tw_err *err);
	int (*lock)(struct tw_acme_store *s, const char *name, uint64_t lease_ms,
	            struct tw_acme_lock **out, struct tw_err *err);
	void (*unlock)(struct tw_acme_lock *l);
	void (*free)(struct tw_acme_store *s);
};

struct tw_acme_store {
	const struct tw_acme_store_ops *ops;
};

/* The local driver: STATE_DIR/acme/ (created 0700). */
int tw_acme_store_local_new(const char *state_dir, struct tw_acme_store **out, struct tw_err *err);
/* The S3 driver (store_s3.c): "s3:http[s]://HOST[:PORT]/BUCKET[/PREFIX]" as
 * for backup repositories (same credentials); creates the bucket if missing.
 * Locks are lease objects taken with conditional puts. */
int tw_acme_store_s3_new(const char *location, struct tw_acme_store **out, struct tw_err *err);
/* The same driver over any storage (takes ownership of st, also on error):
 * the unit tests run it over the local storage driver. */
struct tw_storage;
int tw_acme_store_over(struct tw_storage *st, struct tw_acme_store **out, struct tw_err *err);
/* `acme: store:` — NULL/"" = the local driver in state_dir, "s3:..." = S3,
 * another string = the local driver in that directory. */
int tw_acme_store_open(const char *location, const char *state_dir, struct tw_acme_store **out,
                       struct tw_err *err);

int tw_acme_store_get(struct tw_acme_store *s, const char *key, struct tw_dbuf *out,
                      struct tw_err *err);
int tw_acme_store_put(struct tw_acme_store *s, const char *key, const void *data, size_t len,
                      int secret, struct tw_err *err);
int tw_acme_store_del(struct tw_acme_store *s, const char *key, struct tw_err *err);
int tw_acme_store_list(struct tw_acme_store *s, const char *prefix,
                       int (*cb)(void *ud, const char *name), void *ud, struct tw_err *err);
/* Lock, retrying every 100 ms for up to wait_ms (0 = one try). */
int tw_acme_store_lock(struct tw_acme_store *s, const char *name, uint64_t lease_ms,
                       uint64_t wait_ms, struct tw_acme_lock **out, struct tw_err *err);
void tw_acme_store_unlock(struct tw_acme_store *s, struct tw_acme_lock *l); /* NULL ok */
void tw_acme_store_free(struct tw_acme_store *s);                           /* NULL ok */

/* Key check shared by drivers: 0 or TW_EINVAL. */
int tw_acme_store_key_ok(const char *key);
/* The store name of a certificate: its first name with '*' as '_'
 * ("*.example.com" -> "_.example.com"). */
int tw_acme_store_cert_name(const char *first_name, char *out, size_t cap);

#endif
