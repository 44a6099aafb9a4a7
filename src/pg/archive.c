/* archive.c — the WAL namespace (see archive.h). */
#include "pg/archive.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
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

/* Ask for 2 MiB pages in the 2 MiB-aligned part of a large buffer that is
 * about to be written (where transparent huge pages are "always" or
 * "madvise"): a few page faults instead of one per 4 KiB. A hint: failure
 * changes nothing. */
static void hint_huge(void *p, size_t n)
{
	const uintptr_t huge = (uintptr_t)2 << 20;
	uintptr_t lo = ((uintptr_t)p + huge - 1) & ~(huge - 1), hi = ((uintptr_t)p + n) & ~(huge - 1);
	if (hi > lo)
		(void)madvise((void *)lo, hi - lo, MADV_HUGEPAGE);
}

/* zstd's window for the fast levels: 512 KiB instead of their default
 * 2-8 MiB for a 16 MiB input. WAL matches close by (pgbench segments
 * compress as well or better at level 3), and the reader's streaming
 * decoder allocates and faults in a buffer of the window's size on every
 * archive-get. Slower levels keep their default window. */
#define WINDOW_LOG 19
#define WINDOW_LEVEL_MAX 9

/* The plaintext at buf + head (head free bytes before it, tail after):
 * *buf malloc'd. */
static int encode(const uint8_t *data, size_t n, int level, size_t head, size_t tail,
                  uint8_t **buf, size_t *plen)
{
	*buf = NULL;
	size_t bound = ZSTD_compressBound(n);
	size_t cap = head + TW_PGARCH_HDR2 + (bound > n ? bound : n) + tail;
	uint8_t *base = malloc(cap);
	ZSTD_CCtx *cz = ZSTD_createCCtx();
	if (base == NULL || cz == NULL) {
		free(base);
		ZSTD_freeCCtx(cz);
		return TW_ENOMEM;
	}
	if (cap >= ((size_t)4 << 20))
		hint_huge(base, cap);
	uint8_t *b = base + head;
	memset(b, 0, TW_PGARCH_HDR2);
	b[0] = 2;
	tw_le64_put(b + 8, n);
	/* the frame's XXH64 content checksum re-checks the decompressor on
	 * every read; the AEAD tag covers the bytes themselves */
	size_t z = ZSTD_isError(ZSTD_CCtx_setParameter(cz, ZSTD_c_compressionLevel, level)) ||
	                   ZSTD_isError(ZSTD_CCtx_setParameter(cz, ZSTD_c_checksumFlag, 1)) ||
	                   (level <= WINDOW_LEVEL_MAX &&
	                    ZSTD_isError(ZSTD_CCtx_setParameter(cz, ZSTD_c_windowLog, WINDOW_LOG)))
	               ? (size_t)-1
	               : ZSTD_compress2(cz, b + TW_PGARCH_HDR2, bound, data, n);
	ZSTD_freeCCtx(cz);
	if (!ZSTD_isError(z) && z < n) {
		b[1] = 1;
		*plen = TW_PGARCH_HDR2 + z;
	} else {
		if (n > 0)
			memcpy(b + TW_PGARCH_HDR2, data, n);
		*plen = TW_PGARCH_HDR2 + n;
	}
	*buf = base;
	return 0;
}

int tw_pgarch_encode(const uint8_t *data, size_t n, int level, uint8_t **pt, size_t *plen)
{
	return encode(data, n, level, 0, 0, pt, plen);
}

int tw_pgarch_parse(const uint8_t *pt, size_t plen, struct tw_pgarch_hdr *h)
{
	memset(h, 0, sizeof *h);
	if (plen < TW_PGARCH_HDR2 || pt[1] > 1)
		return TW_ECORRUPT;
	h->version = pt[0];
	h->codec = pt[1];
	h->raw = tw_le64_get(pt + 8);
	if (h->raw > TW_PGARCH_MAX)
		return TW_ECORRUPT;
	if (h->version == 1) {
		if (plen < TW_PGARCH_HDR1)
			return TW_ECORRUPT;
		h->sha256 = pt + 16;
		h->body = pt + TW_PGARCH_HDR1;
		h->blen = plen - TW_PGARCH_HDR1;
	} else if (h->version == 2) {
		for (int i = 2; i < 8; i++)
			if (pt[i] != 0)
				return TW_ECORRUPT;
		h->body = pt + TW_PGARCH_HDR2;
		h->blen = plen - TW_PGARCH_HDR2;
	} else
		return TW_ECORRUPT;
	if (h->codec == 0)
		return h->blen == h->raw ? 0 : TW_ECORRUPT;
	/* zstd: one frame, nothing after it; its content size, where it names
	 * one, is the header's; a version 2 frame carries its checksum */
	if (h->blen < 5 || tw_le32_get(h->body) != ZSTD_MAGICNUMBER ||
	    ZSTD_findFrameCompressedSize(h->body, h->blen) != h->blen)
		return TW_ECORRUPT;
	unsigned long long cs = ZSTD_getFrameContentSize(h->body, h->blen);
	if (cs == ZSTD_CONTENTSIZE_ERROR || (cs != ZSTD_CONTENTSIZE_UNKNOWN && cs != h->raw))
		return TW_ECORRUPT;
	/* Frame_Header_Descriptor bit 2: Content_Checksum_flag (RFC 8878) */
	if (h->version == 2 && !(h->body[4] & 0x04))
		return TW_ECORRUPT;
	return 0;
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

/* The file's bytes of a parsed object: into dst (h->raw bytes), or to fd
 * in STREAM_BUF steps (no buffer the size of the file to fault in). Checks
 * the length, zstd's frame checksum (version 2) or the stored SHA-256
 * (version 1). sha256 != NULL: the SHA-256 of the bytes, computed as they
 * pass (version 1 always computes it, to check it). */
static int emit(const struct tw_pgarch_hdr *h, const char *wal, uint8_t *dst, int fd,
                uint8_t *sha256, struct tw_err *e)
{
	int rc = 0, hash = sha256 != NULL || h->sha256 != NULL;
	EVP_MD_CTX *md = hash ? EVP_MD_CTX_new() : NULL;
	ZSTD_DCtx *dz = h->codec == 1 ? ZSTD_createDCtx() : NULL;
	uint8_t *tmp = h->codec == 1 && dst == NULL ? malloc(STREAM_BUF) : NULL, got[32];
	if ((hash && (md == NULL || EVP_DigestInit_ex(md, EVP_sha256(), NULL) != 1)) ||
	    (h->codec == 1 && (dz == NULL || (dst == NULL && tmp == NULL))))
		rc = tw_err_set(e, TW_ENOMEM, "out of memory");
	if (rc == 0 && h->codec == 0) {
		if (md != NULL && EVP_DigestUpdate(md, h->body, h->blen) != 1)
			rc = tw_err_set(e, TW_ENOMEM, "sha256 failed");
		else if (dst != NULL)
			memcpy(dst, h->body, h->blen);
		else if (write_all(fd, h->body, h->blen) != 0)
			rc = tw_err_set(e, TW_EIO, "write WAL %s: %s", wal, strerror(errno));
	} else if (rc == 0) {
		ZSTD_inBuffer in = {h->body, h->blen, 0};
		uint64_t done = 0;
		size_t z = 1;
		while (rc == 0 && z != 0) {
			ZSTD_outBuffer o = dst != NULL ? (ZSTD_outBuffer){dst + done, h->raw - done, 0}
			                               : (ZSTD_outBuffer){tmp, STREAM_BUF, 0};
			size_t before = in.pos;
			z = ZSTD_decompressStream(dz, &o, &in);
			if (ZSTD_isError(z) || (z != 0 && o.pos == 0 && in.pos == before) ||
			    done + o.pos > h->raw) {
				rc = tw_err_set(e, TW_ECORRUPT, "WAL %s: does not decompress%s%s", wal,
				                ZSTD_isError(z) ? ": " : "",
				                ZSTD_isError(z) ? ZSTD_getErrorName(z) : "");
				break;
			}
			if (md != NULL && EVP_DigestUpdate(md, o.dst, o.pos) != 1)
				rc = tw_err_set(e, TW_ENOMEM, "sha256 failed");
			else if (dst == NULL && write_all(fd, o.dst, o.pos) != 0)
				rc = tw_err_set(e, TW_EIO, "write WAL %s: %s", wal, strerror(errno));
			done += o.pos;
		}
		if (rc == 0 && (in.pos != in.size || done != h->raw))
			rc = tw_err_set(e, TW_ECORRUPT, "WAL %s: does not decompress", wal);
	}
	unsigned hl = 0;
	if (rc == 0 && md != NULL && (EVP_DigestFinal_ex(md, got, &hl) != 1 || hl != 32))
		rc = tw_err_set(e, TW_ENOMEM, "sha256 failed");
	if (rc == 0 && h->sha256 != NULL && memcmp(got, h->sha256, 32) != 0)
		rc = tw_err_set(e, TW_ECORRUPT, "WAL %s: content does not match its hash", wal);
	if (rc == 0 && sha256 != NULL)
		memcpy(sha256, got, 32);
	EVP_MD_CTX_free(md);
	ZSTD_freeDCtx(dz);
	free(tmp);
	return rc;
}

int tw_pgarch_decode(const uint8_t *pt, size_t plen, const char *wal, uint8_t **data, size_t *n,
                     struct tw_err *e)
{
	struct tw_pgarch_hdr h;
	*data = NULL;
	if (tw_pgarch_parse(pt, plen, &h) != 0)
		return tw_err_set(e, TW_ECORRUPT, "WAL %s: bad header", wal);
	uint8_t *out = malloc(h.raw ? h.raw : 1);
	if (out == NULL)
		return tw_err_set(e, TW_ENOMEM, "out of memory");
	int rc = emit(&h, wal, out, -1, NULL, e);
	if (rc != 0) {
		free(out);
		return rc;
	}
	*data = out;
	*n = h.raw;
	return 0;
}

/* Sealed object (version 2) for data[0..n). */
static int seal(struct tw_repo *r, const char *kind, const uint8_t *data, size_t n, uint8_t **out,
                size_t *olen, struct tw_err *e)
{
	uint8_t *b;
	size_t plen;
	if (encode(data, n, r->level, TW_NONCE_LEN, TW_TAG_LEN, &b, &plen) != 0)
		return tw_err_set(e, TW_ENOMEM, "out of memory");
	int rc = tw_object_seal_inplace(&r->keys, kind, b, plen);
	if (rc != 0) {
		free(b);
		return tw_err_set(e, rc, "sealing WAL failed");
	}
	*out = b;
	*olen = plen + TW_SEAL_OVERHEAD;
	return 0;
}

/* Fetch and authenticate object `name`: its plaintext *pt, decrypted in
 * place inside *buf (malloc'd: free *buf). */
static int fetch_open(struct tw_repo *r, const char *name, const char *kind, const char *wal,
                      uint8_t **buf, uint8_t **pt, size_t *plen, struct tw_err *e)
{
	size_t blen;
	int rc = tw_storage_get(r->st, TW_ST_WAL, name, 0, TW_ST_WHOLE, buf, &blen, e);
	if (rc != 0)
		return rc;
	rc = tw_object_open_inplace(&r->keys, kind, *buf, blen, pt, plen, e);
	if (rc != 0) {
		free(*buf);
		*buf = NULL;
		return tw_err_wrap(e, "WAL %s", wal);
	}
	return 0;
}

/* Fetch, authenticate and decode object `name` into *data (malloc'd). */
static int fetch_decode(struct tw_repo *r, const char *name, const char *kind, const char *wal,
                        uint8_t **data, size_t *n, struct tw_err *e)
{
	uint8_t *buf, *pt;
	size_t plen;
	int rc = fetch_open(r, name, kind, wal, &buf, &pt, &plen, e);
	if (rc != 0)
		return rc;
	rc = tw_pgarch_decode(pt, plen, wal, data, n, e);
	free(buf);
	return rc;
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
	uint8_t *sealed = NULL;
	size_t slen;
	int rc = seal(r, kind, data, n, &sealed, &slen, e);
	if (rc != 0)
		return rc;
	rc = tw_storage_put(r->st, TW_ST_WAL, name, sealed, slen, TW_ST_EXCL, e);
	free(sealed);
	if (rc != TW_EEXIST)
		return rc;
	/* there already: the same file again (a retried archive_command) is
	 * fine. Rare, so the whole content is compared (either version). */
	uint8_t *old;
	size_t olen;
	if ((rc = fetch_decode(r, name, kind, wal, &old, &olen, e)) != 0)
		return rc;
	int same = olen == n && (n == 0 || memcmp(old, data, n) == 0);
	free(old);
	if (!same)
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
	return fetch_decode(r, name, kind, wal, data, n, e);
}

int tw_pgarch_get_fd(struct tw_repo *r, uint64_t sysid, const char *wal, int fd, uint64_t *n,
                     uint8_t *sha256, struct tw_err *e)
{
	char name[96], kind[112];
	if (check_name(wal, e) != 0)
		return TW_EINVAL;
	tw_pgarch_name(sysid, wal, name, sizeof name);
	snprintf(kind, sizeof kind, "wal/%s", name);
	uint8_t *buf, *pt;
	size_t plen;
	int rc = fetch_open(r, name, kind, wal, &buf, &pt, &plen, e);
	if (rc != 0)
		return rc;
	struct tw_pgarch_hdr h;
	if (tw_pgarch_parse(pt, plen, &h) != 0)
		rc = tw_err_set(e, TW_ECORRUPT, "WAL %s: bad header", wal);
	else
		rc = emit(&h, wal, NULL, fd, sha256, e);
	free(buf);
	if (rc == 0)
		*n = h.raw;
	return rc;
}

#define REG_SUFFIX "cluster"

static int reg_get(struct tw_repo *r, const char *name, const char *kind, struct tw_pgreg *g,
                   struct tw_err *e)
{
	uint8_t *txt;
	size_t tlen;
	int rc = fetch_decode(r, name, kind, name, &txt, &tlen, e);
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
	uint8_t *sealed = NULL;
	size_t slen;
	rc = seal(r, kind, (const uint8_t *)txt, strlen(txt), &sealed, &slen, e);
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
