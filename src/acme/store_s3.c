/* store_s3.c — the ACME store on S3 (through the storage driver of
 * src/storage/s3.h), so several tapwork replicas share one account and one
 * certificate set.
 *
 * Layout under the location's PREFIX: values are objects of the storage's
 * "keys" type, locks of its "locks" type. The storage accepts flat names
 * of [A-Za-z0-9._-] only, so a store key is escaped: '_' -> "__",
 * '/' -> "_s" ("certs/_.example.com/chain.pem" ->
 * "certs_s__.example.com_schain.pem"); at most 128 bytes after escaping.
 *
 * A lock is the object locks/NAME holding "EXPIRES_MS OWNER\n", created
 * with a conditional put (If-None-Match: *) and read back (an emulation
 * that checks and then writes can let two racing puts succeed: only the
 * one whose owner id the object holds has the lock). Someone else's lock whose
 * expiry has passed (a holder that died) is deleted and the put tried
 * again once. unlock deletes the object if it still holds our owner id.
 * S3 has no conditional delete, so two processes taking over the same
 * expired lock at the same moment can both win; the holder re-reads the
 * store after locking, which keeps a double issuance to that rare case. */
#include "acme/store.h"
#include "core/log.h"
#include "storage/s3.h"
#include "storage/storage.h"

#include <inttypes.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define NAME_MAX_S3 128

struct s3store {
	struct tw_acme_store base;
	struct tw_storage *st;
};

struct tw_acme_lock {
	struct s3store *s;
	char name[NAME_MAX_S3 + 1];
	char owner[33];
};

static int esc(const char *key, char *out, size_t cap)
{
	size_t o = 0;
	for (const char *p = key; *p; p++) {
		const char *r = *p == '_' ? "__" : *p == '/' ? "_s" : NULL;
		size_t n = r ? 2 : 1;
		if (o + n >= cap)
			return TW_ELIMIT;
		if (r)
			memcpy(out + o, r, 2);
		else
			out[o] = *p;
		o += n;
	}
	out[o] = '\0';
	return 0;
}

static int unesc(const char *name, char *out, size_t cap)
{
	size_t o = 0;
	for (const char *p = name; *p; p++) {
		char c = *p;
		if (c == '_') {
			if (p[1] == '_')
				c = '_';
			else if (p[1] == 's')
				c = '/';
			else
				return TW_EINVAL;
			p++;
		}
		if (o + 1 >= cap)
			return TW_ELIMIT;
		out[o++] = c;
	}
	out[o] = '\0';
	return 0;
}

static int s3_get(struct tw_acme_store *s, const char *key, struct tw_dbuf *out,
                  struct tw_err *err)
{
	struct s3store *x = (struct s3store *)s;
	char n[NAME_MAX_S3 + 1];
	uint8_t *buf = NULL;
	size_t len = 0;
	if (esc(key, n, sizeof n) < 0)
		return tw_err_set(err, TW_ELIMIT, "store key too long for S3: %s", key);
	int rc = tw_storage_get(x->st, TW_ST_KEY, n, 0, TW_ST_WHOLE, &buf, &len, err);
	if (rc == 0 && len > TW_ACME_STORE_VALUE_MAX)
		rc = tw_err_set(err, TW_ELIMIT, "%s: too large", key);
	if (rc == 0 && tw_dbuf_append(out, buf, len) < 0)
		rc = tw_err_set(err, TW_ENOMEM, "out of memory");
	if (buf)
		OPENSSL_cleanse(buf, len); /* may be a private key */
	free(buf);
	return rc;
}

static int s3_put(struct tw_acme_store *s, const char *key, const void *data, size_t len,
                  int secret, struct tw_err *err)
{
	struct s3store *x = (struct s3store *)s;
	char n[NAME_MAX_S3 + 1];
	(void)secret; /* access to the bucket is the secret's protection */
	if (esc(key, n, sizeof n) < 0)
		return tw_err_set(err, TW_ELIMIT, "store key too long for S3: %s", key);
	return tw_storage_put(x->st, TW_ST_KEY, n, data, len, 0, err);
}

static int s3_del(struct tw_acme_store *s, const char *key, struct tw_err *err)
{
	struct s3store *x = (struct s3store *)s;
	char n[NAME_MAX_S3 + 1];
	if (esc(key, n, sizeof n) < 0)
		return tw_err_set(err, TW_ELIMIT, "store key too long for S3: %s", key);
	return tw_storage_del(x->st, TW_ST_KEY, n, err);
}

struct list_ctx {
	const char *prefix;
	size_t plen;
	int (*cb)(void *ud, const char *name);
	void *ud;
	char seen[64][256];
	size_t nseen;
	int stopped;
};

static int list_one(void *arg, const char *name, uint64_t size)
{
	struct list_ctx *lc = arg;
	char key[512], child[256];
	(void)size;
	if (unesc(name, key, sizeof key) < 0 || strncmp(key, lc->prefix, lc->plen) != 0 ||
	    key[lc->plen] != '/')
		return 0;
	const char *c = key + lc->plen + 1, *slash = strchr(c, '/');
	size_t cl = slash ? (size_t)(slash - c) : strlen(c);
	if (cl == 0 || cl >= sizeof child)
		return 0;
	memcpy(child, c, cl);
	child[cl] = '\0';
	for (size_t i = 0; i < lc->nseen; i++)
		if (strcmp(lc->seen[i], child) == 0)
			return 0;
	if (lc->nseen < sizeof lc->seen / sizeof lc->seen[0])
		memcpy(lc->seen[lc->nseen++], child, cl + 1);
	if (lc->cb(lc->ud, child) < 0) {
		lc->stopped = 1;
		return 1;
	}
	return 0;
}

static int s3_list(struct tw_acme_store *s, const char *prefix,
                   int (*cb)(void *ud, const char *name), void *ud, struct tw_err *err)
{
	struct s3store *x = (struct s3store *)s;
	struct list_ctx *lc = calloc(1, sizeof *lc);
	if (lc == NULL)
		return tw_err_set(err, TW_ENOMEM, "out of memory");
	lc->prefix = prefix;
	lc->plen = strlen(prefix);
	lc->cb = cb;
	lc->ud = ud;
	int rc = tw_storage_list(x->st, TW_ST_KEY, list_one, lc, err);
	if (lc->stopped)
		rc = 0;
	free(lc);
	return rc;
}

static uint64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* Read a lock object: its expiry and owner. TW_ENOENT when absent. */
static int read_lock(struct s3store *x, const char *n, uint64_t *exp, char *owner, size_t cap)
{
	uint8_t *buf = NULL;
	size_t len = 0;
	int rc = tw_storage_get(x->st, TW_ST_LOCK, n, 0, TW_ST_WHOLE, &buf, &len, NULL);
	if (rc < 0)
		return rc;
	char text[128];
	size_t l = len < sizeof text - 1 ? len : sizeof text - 1;
	memcpy(text, buf, l);
	text[l] = '\0';
	free(buf);
	char *end = NULL;
	*exp = strtoull(text, &end, 10);
	if (end == text || *end != ' ')
		*exp = 0; /* unreadable: treat as expired */
	owner[0] = '\0';
	if (end && *end == ' ') {
		size_t ol = strcspn(end + 1, "\n");
		if (ol >= cap)
			ol = cap - 1;
		memcpy(owner, end + 1, ol);
		owner[ol] = '\0';
	}
	return 0;
}

static int s3_lock(struct tw_acme_store *s, const char *name, uint64_t lease_ms,
                   struct tw_acme_lock **out, struct tw_err *err)
{
	struct s3store *x = (struct s3store *)s;
	struct tw_acme_lock *lk = calloc(1, sizeof *lk);
	unsigned char rnd[16];
	if (lk == NULL)
		return tw_err_set(err, TW_ENOMEM, "out of memory");
	if (esc(name, lk->name, sizeof lk->name) < 0) {
		free(lk);
		return tw_err_set(err, TW_ELIMIT, "lock name too long for S3: %s", name);
	}
	if (RAND_bytes(rnd, sizeof rnd) != 1) {
		free(lk);
		return tw_err_set(err, TW_EIO, "no randomness");
	}
	for (size_t i = 0; i < sizeof rnd; i++)
		snprintf(lk->owner + 2 * i, 3, "%02x", rnd[i]);
	lk->s = x;
	int rc = 0;
	for (int attempt = 0; attempt < 2; attempt++) {
		char body[96];
		int bl = snprintf(body, sizeof body, "%" PRIu64 " %s\n", now_ms() + lease_ms, lk->owner);
		rc = tw_storage_put(x->st, TW_ST_LOCK, lk->name, body, (size_t)bl, TW_ST_EXCL, err);
		if (rc != TW_EEXIST)
			break;
		uint64_t exp = 0;
		char owner[64];
		int r = read_lock(x, lk->name, &exp, owner, sizeof owner);
		if (r == TW_ENOENT)
			continue; /* released meanwhile: try again */
		if (r < 0 || exp > now_ms()) {
			rc = TW_ELOCKED;
			break;
		}
		tw_warn("[acme] S3 lock %s of %s expired: taking it over", name, owner);
		if (tw_storage_del(x->st, TW_ST_LOCK, lk->name, NULL) < 0) {
			rc = TW_ELOCKED;
			break;
		}
		rc = TW_ELOCKED;
	}
	if (rc == TW_EEXIST)
		rc = TW_ELOCKED;
	if (rc == 0) {
		/* Read the lock back: a store whose conditional put is not atomic
		 * (check, then write) lets two racing puts both succeed, and the
		 * later write wins the object; the one that lost sees it here
		 * unless its read came between the two writes (a far narrower
		 * window). A failed read keeps the lock: our put did succeed. */
		uint64_t exp = 0;
		char owner[64];
		int r = read_lock(x, lk->name, &exp, owner, sizeof owner);
		if (r == TW_ENOENT || (r == 0 && strcmp(owner, lk->owner) != 0))
			rc = TW_ELOCKED;
	}
	if (rc < 0) {
		free(lk);
		return rc == TW_ELOCKED ? tw_err_set(err, TW_ELOCKED, "%s is locked by another process",
		                                     name)
		                        : rc;
	}
	*out = lk;
	return 0;
}

static void s3_unlock(struct tw_acme_lock *lk)
{
	uint64_t exp;
	char owner[64];
	if (read_lock(lk->s, lk->name, &exp, owner, sizeof owner) == 0 &&
	    strcmp(owner, lk->owner) == 0)
		tw_storage_del(lk->s->st, TW_ST_LOCK, lk->name, NULL);
	free(lk);
}

static void s3_free(struct tw_acme_store *s)
{
	struct s3store *x = (struct s3store *)s;
	tw_storage_close(x->st);
	free(x);
}

static const struct tw_acme_store_ops s3_ops = {
    .get = s3_get,
    .put = s3_put,
    .del = s3_del,
    .list = s3_list,
    .lock = s3_lock,
    .unlock = s3_unlock,
    .free = s3_free,
};

int tw_acme_store_over(struct tw_storage *st, struct tw_acme_store **out, struct tw_err *err)
{
	struct s3store *x = calloc(1, sizeof *x);
	*out = NULL;
	if (x == NULL) {
		tw_storage_close(st);
		return tw_err_set(err, TW_ENOMEM, "out of memory");
	}
	x->st = st;
	x->base.ops = &s3_ops;
	*out = &x->base;
	return 0;
}

int tw_acme_store_s3_new(const char *location, struct tw_acme_store **out, struct tw_err *err)
{
	struct tw_storage *st = NULL;
	*out = NULL;
	/* create=1: makes the bucket when missing; no repository config is involved. */
	int rc = tw_s3_open(location, 1, &st, err);
	return rc < 0 ? rc : tw_acme_store_over(st, out, err);
}

int tw_acme_store_open(const char *location, const char *state_dir, struct tw_acme_store **out,
                       struct tw_err *err)
{
	if (location == NULL || location[0] == '\0')
		return tw_acme_store_local_new(state_dir, out, err);
	if (strncmp(location, "s3:", 3) == 0)
		return tw_acme_store_s3_new(location, out, err);
	return tw_acme_store_local_new(location, out, err);
}
