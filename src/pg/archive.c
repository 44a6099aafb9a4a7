/* archive.c — the WAL namespace (see archive.h). */
#include "pg/archive.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <openssl/evp.h>
#include <zstd.h>

#include "backup/pack.h"
#include "pg/wal.h"

int tw_pgarch_sysid(const char *pgdata, uint64_t *sysid, struct tw_err *e)
{
	char path[4096];
	snprintf(path, sizeof path, "%s/global/pg_control", pgdata);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd == -1)
		return tw_err_set(e, TW_ENOENT,
		                  "cannot read %s: %s (run in PGDATA or give --pg-data)", path,
		                  strerror(errno));
	uint8_t b[8];
	ssize_t n = read(fd, b, sizeof b);
	close(fd);
	if (n != (ssize_t)sizeof b)
		return tw_err_set(e, TW_ECORRUPT, "%s: too short", path);
	memcpy(sysid, b, sizeof b); /* native byte order, as PostgreSQL writes it */
	if (*sysid == 0)
		return tw_err_set(e, TW_ECORRUPT, "%s: no system identifier", path);
	return 0;
}

void tw_pgarch_name(uint64_t sysid, const char *wal, char *out, size_t cap)
{
	snprintf(out, cap, "%016llX-%s", (unsigned long long)sysid, wal);
}

static int check_name(const char *wal, struct tw_err *e)
{
	if (tw_pgwal_classify(wal, strlen(wal)) == TW_PGWAL_BAD)
		return tw_err_set(e, TW_EINVAL, "'%s' is not a WAL file name", wal);
	return 0;
}

/* Sealed object for data[0..n). */
static int seal(struct tw_repo *r, const char *kind, const uint8_t *data, size_t n, uint8_t **out,
                size_t *olen, uint8_t hash[32], struct tw_err *e)
{
	size_t bound = ZSTD_compressBound(n);
	uint8_t *pt = malloc(TW_PGARCH_HDR + (bound > n ? bound : n));
	if (pt == NULL)
		return tw_err_set(e, TW_ENOMEM, "out of memory");
	memset(pt, 0, TW_PGARCH_HDR);
	pt[0] = 1;
	tw_le64_put(pt + 8, n);
	tw_crypto_sha256(data, n, hash);
	memcpy(pt + 16, hash, 32);
	size_t z = ZSTD_compress(pt + TW_PGARCH_HDR, bound, data, n, r->level);
	size_t plen;
	if (!ZSTD_isError(z) && z < n) {
		pt[1] = 1;
		plen = TW_PGARCH_HDR + z;
	} else {
		memcpy(pt + TW_PGARCH_HDR, data, n);
		plen = TW_PGARCH_HDR + n;
	}
	int rc = tw_object_seal(&r->keys, kind, pt, plen, out, olen);
	free(pt);
	return rc != 0 ? tw_err_set(e, rc, "sealing WAL failed") : 0;
}

/* Open a sealed object: the header, and with want_data the raw bytes. */
static int unseal(struct tw_repo *r, const char *kind, const char *wal, const uint8_t *in, size_t n,
                  uint8_t hash[32], uint8_t **data, size_t *dlen, struct tw_err *e)
{
	uint8_t *pt;
	size_t plen;
	int rc = tw_object_open(&r->keys, kind, in, n, &pt, &plen, e);
	if (rc != 0)
		return tw_err_wrap(e, "WAL %s", wal);
	uint64_t raw = plen >= TW_PGARCH_HDR ? tw_le64_get(pt + 8) : 0;
	if (plen < TW_PGARCH_HDR || pt[0] != 1 || pt[1] > 1 || raw > TW_PGARCH_MAX) {
		free(pt);
		return tw_err_set(e, TW_ECORRUPT, "WAL %s: bad header", wal);
	}
	memcpy(hash, pt + 16, 32);
	if (data == NULL) {
		free(pt);
		return 0;
	}
	uint8_t *out = malloc(raw ? raw : 1);
	rc = out ? 0 : tw_err_set(e, TW_ENOMEM, "out of memory");
	if (rc == 0 && pt[1] == 1) {
		size_t z = ZSTD_decompress(out, raw, pt + TW_PGARCH_HDR, plen - TW_PGARCH_HDR);
		if (ZSTD_isError(z) || z != raw)
			rc = tw_err_set(e, TW_ECORRUPT, "WAL %s: does not decompress", wal);
	} else if (rc == 0) {
		if (plen - TW_PGARCH_HDR != raw)
			rc = tw_err_set(e, TW_ECORRUPT, "WAL %s: bad length", wal);
		else
			memcpy(out, pt + TW_PGARCH_HDR, raw);
	}
	free(pt);
	uint8_t h[32];
	if (rc == 0) {
		tw_crypto_sha256(out, raw, h);
		if (memcmp(h, hash, 32) != 0)
			rc = tw_err_set(e, TW_ECORRUPT, "WAL %s: content does not match its hash",
			                wal);
	}
	if (rc != 0) {
		free(out);
		return rc;
	}
	*data = out;
	*dlen = raw;
	return 0;
}

int tw_pgarch_push(struct tw_repo *r, uint64_t sysid, const char *wal, const uint8_t *data,
                   size_t n, int *existed, struct tw_err *e)
{
	char name[96], kind[112];
	*existed = 0;
	if (check_name(wal, e) != 0)
		return TW_EINVAL;
	if (n > TW_PGARCH_MAX)
		return tw_err_set(e, TW_ELIMIT, "WAL %s: too large", wal);
	tw_pgarch_name(sysid, wal, name, sizeof name);
	snprintf(kind, sizeof kind, "wal/%s", name);
	uint8_t *sealed = NULL, hash[32], old[32];
	size_t slen;
	int rc = seal(r, kind, data, n, &sealed, &slen, hash, e);
	if (rc != 0)
		return rc;
	rc = tw_storage_put(r->st, TW_ST_WAL, name, sealed, slen, TW_ST_EXCL, e);
	free(sealed);
	if (rc != TW_EEXIST)
		return rc;
	/* there already: the same file again (a retried archive_command) is fine */
	uint8_t *buf;
	size_t blen;
	if ((rc = tw_storage_get(r->st, TW_ST_WAL, name, 0, TW_ST_WHOLE, &buf, &blen, e)) != 0)
		return rc;
	rc = unseal(r, kind, wal, buf, blen, old, NULL, NULL, e);
	free(buf);
	if (rc != 0)
		return rc;
	if (memcmp(old, hash, 32) != 0)
		return tw_err_set(
		    e, TW_EEXIST,
		    "WAL %s is archived already with different content (not overwritten)", wal);
	*existed = 1;
	return 0;
}

int tw_pgarch_get(struct tw_repo *r, uint64_t sysid, const char *wal, uint8_t **data, size_t *n,
                  struct tw_err *e)
{
	char name[96], kind[112];
	if (check_name(wal, e) != 0)
		return TW_EINVAL;
	tw_pgarch_name(sysid, wal, name, sizeof name);
	snprintf(kind, sizeof kind, "wal/%s", name);
	uint8_t *buf, hash[32];
	size_t blen;
	int rc = tw_storage_get(r->st, TW_ST_WAL, name, 0, TW_ST_WHOLE, &buf, &blen, e);
	if (rc != 0)
		return rc;
	rc = unseal(r, kind, wal, buf, blen, hash, data, n, e);
	free(buf);
	return rc;
}

static int write_all(int fd, const uint8_t *p, size_t n)
{
	size_t off = 0;
	while (off < n) {
		ssize_t w = write(fd, p + off, n - off);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return -1;
		off += (size_t)w;
	}
	return 0;
}

#define STREAM_BUF ((size_t)256 << 10)

int tw_pgarch_get_fd(struct tw_repo *r, uint64_t sysid, const char *wal, int fd, uint64_t *n,
                     uint8_t *sha256, struct tw_err *e)
{
	char name[96], kind[112];
	if (check_name(wal, e) != 0)
		return TW_EINVAL;
	tw_pgarch_name(sysid, wal, name, sizeof name);
	snprintf(kind, sizeof kind, "wal/%s", name);
	uint8_t *buf, *pt;
	size_t blen, plen;
	int rc = tw_storage_get(r->st, TW_ST_WAL, name, 0, TW_ST_WHOLE, &buf, &blen, e);
	if (rc != 0)
		return rc;
	rc = tw_object_open(&r->keys, kind, buf, blen, &pt, &plen, e);
	free(buf);
	if (rc != 0)
		return tw_err_wrap(e, "WAL %s", wal);
	uint64_t raw = plen >= TW_PGARCH_HDR ? tw_le64_get(pt + 8) : 0;
	if (plen < TW_PGARCH_HDR || pt[0] != 1 || pt[1] > 1 || raw > TW_PGARCH_MAX) {
		free(pt);
		return tw_err_set(e, TW_ECORRUPT, "WAL %s: bad header", wal);
	}
	/* decompress into a small buffer, hash and write as it comes: no
	 * segment-sized buffer to fault in */
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	ZSTD_DCtx *dz = pt[1] == 1 ? ZSTD_createDCtx() : NULL;
	uint8_t *out = malloc(STREAM_BUF), h[32];
	uint64_t done = 0;
	if (md == NULL || out == NULL || (pt[1] == 1 && dz == NULL) ||
	    EVP_DigestInit_ex(md, EVP_sha256(), NULL) != 1)
		rc = tw_err_set(e, TW_ENOMEM, "out of memory");
	if (rc == 0 && pt[1] == 0) {
		if (plen - TW_PGARCH_HDR != raw)
			rc = tw_err_set(e, TW_ECORRUPT, "WAL %s: bad length", wal);
		else if (EVP_DigestUpdate(md, pt + TW_PGARCH_HDR, raw) != 1)
			rc = tw_err_set(e, TW_ENOMEM, "sha256 failed");
		else if (write_all(fd, pt + TW_PGARCH_HDR, raw) != 0)
			rc = tw_err_set(e, TW_EIO, "write WAL %s: %s", wal, strerror(errno));
		done = raw;
	} else if (rc == 0) {
		ZSTD_inBuffer in = {pt + TW_PGARCH_HDR, plen - TW_PGARCH_HDR, 0};
		size_t z = 1;
		while (rc == 0 && z != 0) {
			ZSTD_outBuffer o = {out, STREAM_BUF, 0};
			z = ZSTD_decompressStream(dz, &o, &in);
			if (ZSTD_isError(z) || (z != 0 && o.pos == 0 && in.pos == in.size) ||
			    done + o.pos > raw) {
				rc = tw_err_set(e, TW_ECORRUPT, "WAL %s: does not decompress", wal);
				break;
			}
			if (EVP_DigestUpdate(md, out, o.pos) != 1)
				rc = tw_err_set(e, TW_ENOMEM, "sha256 failed");
			else if (write_all(fd, out, o.pos) != 0)
				rc = tw_err_set(e, TW_EIO, "write WAL %s: %s", wal, strerror(errno));
			done += o.pos;
		}
		if (rc == 0 && (in.pos != in.size || done != raw))
			rc = tw_err_set(e, TW_ECORRUPT, "WAL %s: does not decompress", wal);
	}
	unsigned hl = 0;
	if (rc == 0 && (EVP_DigestFinal_ex(md, h, &hl) != 1 || hl != 32))
		rc = tw_err_set(e, TW_ENOMEM, "sha256 failed");
	if (rc == 0 && memcmp(h, pt + 16, 32) != 0)
		rc = tw_err_set(e, TW_ECORRUPT, "WAL %s: content does not match its hash", wal);
	EVP_MD_CTX_free(md);
	ZSTD_freeDCtx(dz);
	free(out);
	free(pt);
	if (rc == 0) {
		*n = done;
		if (sha256 != NULL)
			memcpy(sha256, h, 32);
	}
	return rc;
}

#define REG_SUFFIX "cluster"

static int reg_get(struct tw_repo *r, const char *name, const char *kind, struct tw_pgreg *g,
                   struct tw_err *e)
{
	uint8_t *buf, *txt, hash[32];
	size_t blen, tlen;
	int rc = tw_storage_get(r->st, TW_ST_WAL, name, 0, TW_ST_WHOLE, &buf, &blen, e);
	if (rc != 0)
		return rc;
	rc = unseal(r, kind, name, buf, blen, hash, &txt, &tlen, e);
	free(buf);
	if (rc != 0)
		return rc;
	rc = tw_pgreg_decode(txt, tlen, g, e);
	free(txt);
	return rc != 0 ? tw_err_wrap(e, "%s", name) : 0;
}

int tw_pgarch_register(struct tw_repo *r, const struct tw_pgreg *want, int create,
                       struct tw_pgreg *got, int *created, struct tw_err *e)
{
	char name[96], kind[112];
	*created = 0;
	tw_pgarch_name(want->sysid, REG_SUFFIX, name, sizeof name);
	snprintf(kind, sizeof kind, "wal/%s", name);
	int rc = reg_get(r, name, kind, got, e);
	if (rc != TW_ENOENT || !create)
		return rc;
	char *txt;
	if (tw_pgreg_encode(want, &txt) != 0)
		return tw_err_set(e, TW_ENOMEM, "out of memory");
	uint8_t *sealed = NULL, hash[32];
	size_t slen;
	rc = seal(r, kind, (const uint8_t *)txt, strlen(txt), &sealed, &slen, hash, e);
	free(txt);
	if (rc != 0)
		return rc;
	rc = tw_storage_put(r->st, TW_ST_WAL, name, sealed, slen, TW_ST_EXCL, e);
	free(sealed);
	if (rc == TW_EEXIST) /* another first push won */
		return reg_get(r, name, kind, got, e);
	if (rc != 0)
		return rc;
	*got = *want;
	*created = 1;
	return 0;
}

struct list_ctx {
	char prefix[18];
	int (*cb)(void *arg, const char *wal, uint64_t size);
	void *arg;
};

static int list_one(void *arg, const char *name, uint64_t size)
{
	struct list_ctx *c = arg;
	if (strncmp(name, c->prefix, 17) != 0 ||
	    tw_pgwal_classify(name + 17, strlen(name + 17)) == TW_PGWAL_BAD)
		return 0;
	return c->cb(c->arg, name + 17, size);
}

int tw_pgarch_list(struct tw_repo *r, uint64_t sysid,
                   int (*cb)(void *arg, const char *wal, uint64_t size), void *arg,
                   struct tw_err *e)
{
	struct list_ctx c = {.cb = cb, .arg = arg};
	snprintf(c.prefix, sizeof c.prefix, "%016llX-", (unsigned long long)sysid);
	return tw_storage_list(r->st, TW_ST_WAL, list_one, &c, e);
}

int tw_pgarch_del(struct tw_repo *r, uint64_t sysid, const char *wal, struct tw_err *e)
{
	char name[96];
	if (check_name(wal, e) != 0)
		return TW_EINVAL;
	tw_pgarch_name(sysid, wal, name, sizeof name);
	return tw_storage_del(r->st, TW_ST_WAL, name, e);
}
