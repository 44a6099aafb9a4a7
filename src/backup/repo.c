/* repo.c — open/init a repository, objects, index, snapshots, locks. */
#include "backup/repo.h"
#include "backup/delta.h"

#include <errno.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <openssl/rand.h>

#include "backup/chunker.h"
#include "core/log.h"

static int64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void host_name(char *buf, size_t cap)
{
	if (gethostname(buf, cap) != 0)
		snprintf(buf, cap, "unknown");
	buf[cap - 1] = '\0';
}

int tw_repo_put_object(struct tw_repo *r, enum tw_st_type t, const char *kind, const void *pt,
		       size_t n, char name_out[65], struct tw_err *e)
{
	return tw_repo_put_object_flags(r, t, kind, pt, n, 0, name_out, e);
}

int tw_repo_put_object_flags(struct tw_repo *r, enum tw_st_type t, const char *kind,
			     const void *pt, size_t n, int flags, char name_out[65], struct tw_err *e)
{
	uint8_t *sealed;
	size_t slen;
	int rc = tw_object_seal(&r->keys, kind, pt, n, &sealed, &slen);
	if (rc != 0)
		return tw_err_set(e, rc, "sealing %s object failed", kind);
	uint8_t h[32];
	char name[65];
	tw_crypto_sha256(sealed, slen, h);
	tw_hex(h, 32, name);
	rc = tw_storage_put(r->st, t, t == TW_ST_CONFIG ? "config" : name, sealed, slen, flags, e);
	free(sealed);
	if (rc == 0 && name_out != NULL)
		memcpy(name_out, name, 65);
	return rc;
}

int tw_repo_get_object(struct tw_repo *r, enum tw_st_type t, const char *kind, const char *name,
		       uint8_t **pt, size_t *n, struct tw_err *e)
{
	uint8_t *buf;
	size_t len;
	*pt = NULL;
	int rc = tw_storage_get(r->st, t, name, 0, TW_ST_WHOLE, &buf, &len, e);
	if (rc != 0)
		return rc;
	if (t != TW_ST_CONFIG) {
		uint8_t h[32];
		char hex[65];
		tw_crypto_sha256(buf, len, h);
		tw_hex(h, 32, hex);
		if (strcmp(hex, name) != 0) {
			free(buf);
			return tw_err_set(e, TW_ECORRUPT, "%s/%s: content does not match its name",
					  tw_storage_type_name(t), name);
		}
	}
	rc = tw_object_open(&r->keys, kind, buf, len, pt, n, e);
	free(buf);
	if (rc != 0)
		tw_err_wrap(e, "%s/%s", tw_storage_type_name(t), name);
	return rc;
}

static int write_key(struct tw_storage *st, const struct tw_keys *k, const char *pw, size_t pwlen,
		     char name_out[65], struct tw_err *e)
{
	struct tw_kdf_params kp;
	uint8_t w[TW_WRAPPED_LEN];
	int rc = tw_crypto_kdf_default(&kp, e);
	if (rc == 0)
		rc = tw_crypto_wrap(k, pw, pwlen, &kp, w, e);
	if (rc != 0)
		return rc;
	char salt[65], data[2 * TW_WRAPPED_LEN + 1], host[256], ts[48];
	tw_hex(kp.salt, 32, salt);
	tw_hex(w, TW_WRAPPED_LEN, data);
	host_name(host, sizeof host);
	tw_snapshot_time_str(now_ns(), ts, sizeof ts);
	json_t *o = json_pack("{s:i,s:s,s:I,s:i,s:i,s:s,s:s,s:s,s:s}", "version", 1, "kdf", "scrypt",
			      "N", (json_int_t)kp.n, "r", (int)kp.r, "p", (int)kp.p, "salt", salt,
			      "data", data, "created", ts, "hostname", host);
	char *txt = o ? json_dumps(o, JSON_COMPACT) : NULL;
	json_decref(o);
	if (txt == NULL)
		return tw_err_set(e, TW_ENOMEM, "out of memory");
	uint8_t h[32];
	char name[65];
	tw_crypto_sha256(txt, strlen(txt), h);
	tw_hex(h, 32, name);
	rc = tw_storage_put(st, TW_ST_KEY, name, txt, strlen(txt), TW_ST_EXCL, e);
	free(txt);
	if (rc == 0 && name_out)
		memcpy(name_out, name, 65);
	return rc;
}

static int setup_chunker(struct tw_repo *r, struct tw_err *e)
{
	struct tw_chunker c;
	if (tw_chunker_init(&c, r->gear, r->chunk_min, r->chunk_avg, r->chunk_max) != 0)
		return tw_err_set(e, TW_ECORRUPT, "config: bad chunker parameters");
	if (tw_chunker_gear(r->keys.seed, r->gear) != 0)
		return tw_err_set(e, TW_ECRYPTO, "gear table derivation failed");
	return 0;
}

static struct tw_repo *repo_new(void)
{
	struct tw_repo *r = calloc(1, sizeof *r);
	if (r == NULL)
		return NULL;
	tw_index_init(&r->index);
	pthread_mutex_init(&r->ix_mu, NULL);
	pthread_mutex_init(&r->tc_mu, NULL);
	pthread_mutex_init(&r->bc_mu, NULL);
	pthread_mutex_init(&r->lock_mu, NULL);
	pthread_cond_init(&r->lock_cv, NULL);
	tw_index_enc_init(&r->idx_enc);
	return r;
}

int tw_repo_init(const char *location, const char *pw, size_t pwlen, uint32_t pack_size,
		 struct tw_err *e)
{
	if (pack_size == 0)
		pack_size = TW_PACK_TARGET;
	if (pack_size < (1u << 20) || pack_size > (256u << 20))
		return tw_err_set(e, TW_EINVAL, "pack size must be 1..256 MiB");
	struct tw_repo *r = repo_new();
	if (r == NULL)
		return tw_err_set(e, TW_ENOMEM, "out of memory");
	int rc = tw_storage_open(location, 1, &r->st, e);
	if (rc != 0)
		goto done;
	if ((rc = tw_crypto_keys_new(&r->keys, e)) != 0)
		goto done;
	uint8_t rid[32];
	char rid_hex[65];
	if (RAND_bytes(rid, sizeof rid) != 1) {
		rc = tw_err_set(e, TW_ECRYPTO, "random generator failed");
		goto done;
	}
	tw_hex(rid, 32, rid_hex);
	json_t *o = json_pack("{s:i,s:s,s:i,s:i,s:i,s:i,s:s,s:i}", "version", 1, "id", rid_hex,
			      "chunk_min", (int)TW_CHUNK_MIN, "chunk_avg", (int)TW_CHUNK_AVG,
			      "chunk_max", (int)TW_CHUNK_MAX, "pack_size", (int)pack_size,
			      "compression", "zstd", "level", 3);
	char *txt = o ? json_dumps(o, JSON_COMPACT) : NULL;
	json_decref(o);
	if (txt == NULL) {
		rc = tw_err_set(e, TW_ENOMEM, "out of memory");
		goto done;
	}
	/* key first: a config without a key would be a dead repository */
	rc = write_key(r->st, &r->keys, pw, pwlen, NULL, e);
	if (rc == 0)
		rc = tw_repo_put_object(r, TW_ST_CONFIG, "config", txt, strlen(txt), NULL, e);
	free(txt);
done:
	tw_repo_close(r);
	return rc;
}

struct key_try {
	struct tw_repo *r;
	const char *pw;
	size_t pwlen;
	int found, tried;
	struct tw_err *e;
};

static int try_key(void *arg, const char *name, uint64_t size)
{
	struct key_try *kt = arg;
	uint8_t *buf;
	size_t len;
	if (size > 65536 || tw_storage_get(kt->r->st, TW_ST_KEY, name, 0, TW_ST_WHOLE, &buf, &len, NULL) != 0)
		return 0;
	json_t *o = json_loadb((const char *)buf, len, 0, NULL);
	free(buf);
	if (o == NULL)
		return 0;
	struct tw_kdf_params kp;
	json_int_t n = 0;
	int rr = 0, pp = 0;
	const char *salt = NULL, *data = NULL, *kdf = NULL;
	uint8_t w[TW_WRAPPED_LEN];
	int ok = json_unpack(o, "{s:s,s:I,s:i,s:i,s:s,s:s}", "kdf", &kdf, "N", &n, "r", &rr, "p",
			     &pp, "salt", &salt, "data", &data) == 0 &&
		 strcmp(kdf, "scrypt") == 0 && n > 0 && rr > 0 && pp > 0 &&
		 tw_unhex(salt, strlen(salt), kp.salt, 32) == 0 &&
		 tw_unhex(data, strlen(data), w, sizeof w) == 0;
	json_decref(o);
	if (!ok)
		return 0;
	kp.n = (uint64_t)n;
	kp.r = (uint32_t)rr;
	kp.p = (uint32_t)pp;
	kt->tried++;
	if (tw_crypto_unwrap(&kt->r->keys, kt->pw, kt->pwlen, &kp, w, NULL) != 0)
		return 0;
	snprintf(kt->r->key_name, sizeof kt->r->key_name, "%s", name);
	kt->found = 1;
	return 1;
}

/* Open with a password (pw != NULL: try every key file) or with master keys
 * already unwrapped (master != NULL: the config must open with them). */
static int repo_open(const char *location, const char *pw, size_t pwlen,
		     const uint8_t *master, struct tw_repo **out, struct tw_err *e)
{
	*out = NULL;
	struct tw_repo *r = repo_new();
	if (r == NULL)
		return tw_err_set(e, TW_ENOMEM, "out of memory");
	uint8_t *cfg = NULL;
	size_t clen;
	json_t *o = NULL;
	int rc = tw_storage_open(location, 0, &r->st, e);
	if (rc != 0)
		goto fail;
	r->local = strncmp(location, "s3:", 3) != 0;
	uint64_t csize;
	if (tw_storage_stat(r->st, TW_ST_CONFIG, "config", &csize, NULL) != 0) {
		rc = tw_err_set(e, TW_ENOENT, "%s: not a tapwork repository (no config)", location);
		goto fail;
	}
	if (master != NULL) {
		memcpy(r->keys.enc, master, TW_KEY_LEN);
		memcpy(r->keys.mac, master + TW_KEY_LEN, TW_KEY_LEN);
		memcpy(r->keys.seed, master + 2 * TW_KEY_LEN, TW_KEY_LEN);
		if ((rc = tw_crypto_keys_ready(&r->keys, e)) != 0)
			goto fail;
	} else {
		struct key_try kt = {r, pw, pwlen, 0, 0, e};
		rc = tw_storage_list(r->st, TW_ST_KEY, try_key, &kt, e);
		if (rc < 0)
			goto fail;
		if (!kt.found) {
			rc = tw_err_set(e, TW_ECRYPTO, "wrong password (no key file opens with it)");
			goto fail;
		}
	}
	if ((rc = tw_repo_get_object(r, TW_ST_CONFIG, "config", "config", &cfg, &clen, e)) != 0)
		goto fail;
	o = json_loadb((const char *)cfg, clen, 0, NULL);
	int ver = 0, cmin = 0, cavg = 0, cmax = 0, psize = 0, level = 3;
	if (o == NULL || json_unpack(o, "{s:i,s:i,s:i,s:i,s:i,s?i}", "version", &ver, "chunk_min",
				     &cmin, "chunk_avg", &cavg, "chunk_max", &cmax, "pack_size",
				     &psize, "level", &level) != 0 ||
	    ver != 1 || cmin <= 0 || cavg <= 0 || cmax <= 0 || psize < (1 << 20) ||
	    psize > (256 << 20) || level < 1 || level > 19) {
		rc = tw_err_set(e, TW_ECORRUPT, "config: malformed or unsupported");
		goto fail;
	}
	r->chunk_min = (uint32_t)cmin;
	r->chunk_avg = (uint32_t)cavg;
	r->chunk_max = (uint32_t)cmax;
	r->pack_size = (uint32_t)psize;
	r->level = level;
	if ((rc = setup_chunker(r, e)) != 0)
		goto fail;
	json_decref(o);
	free(cfg);
	*out = r;
	return 0;
fail:
	json_decref(o);
	free(cfg);
	tw_repo_close(r);
	return rc;
}

int tw_repo_open(const char *location, const char *pw, size_t pwlen, struct tw_repo **out,
		 struct tw_err *e)
{
	return repo_open(location, pw, pwlen, NULL, out, e);
}

int tw_repo_open_master(const char *location, const uint8_t master[TW_MASTER_LEN],
			struct tw_repo **out, struct tw_err *e)
{
	return repo_open(location, NULL, 0, master, out, e);
}

void tw_repo_close(struct tw_repo *r)
{
	if (r == NULL)
		return;
	tw_repo_unlock(r);
	tw_index_free(&r->index);
	tw_index_enc_free(&r->idx_enc);
	tw_crypto_keys_clear(&r->keys);
	tw_storage_close(r->st);
	pthread_mutex_destroy(&r->ix_mu);
	for (size_t i = 0; i < sizeof r->tcache / sizeof r->tcache[0]; i++)
		free(r->tcache[i].data);
	pthread_mutex_destroy(&r->tc_mu);
	for (size_t i = 0; i < sizeof r->bcache / sizeof r->bcache[0]; i++)
		free(r->bcache[i].data);
	pthread_mutex_destroy(&r->bc_mu);
	pthread_mutex_destroy(&r->lock_mu);
	pthread_cond_destroy(&r->lock_cv);
	free(r);
}

int tw_repo_add_key(struct tw_repo *r, const char *pw, size_t pwlen, char name_out[65],
		    struct tw_err *e)
{
	return write_key(r->st, &r->keys, pw, pwlen, name_out, e);
}

/* ---- index ---- */

static int load_entry(void *arg, const uint8_t pack_id[TW_ID_LEN], const struct tw_pack_entry *en)
{
	struct tw_repo *r = arg;
	uint32_t num;
	int added;
	int rc = tw_index_pack(&r->index, pack_id, &num);
	if (rc == 0)
		rc = tw_index_add(&r->index, en, num, &added);
	return rc;
}

struct load_ctx {
	struct tw_repo *r;
	struct tw_err *e;
	int bad;
};

static int load_one(void *arg, const char *name, uint64_t size)
{
	struct load_ctx *lc = arg;
	uint8_t *pt;
	size_t n;
	struct tw_err e2 = {0};
	int rc = tw_repo_get_object(lc->r, TW_ST_INDEX, "index", name, &pt, &n, &e2);
	if (rc == 0) {
		rc = tw_index_decode(pt, n, load_entry, lc->r, &e2);
		free(pt);
	}
	if (rc == TW_ENOMEM)
		return tw_err_set(lc->e, rc, "out of memory");
	if (rc != 0) {
		tw_warn("index %s unusable: %s", name, e2.msg);
		lc->r->index_errors++;
	}
	return 0;
}

int tw_repo_load_index(struct tw_repo *r, struct tw_err *e)
{
	struct load_ctx lc = {r, e, 0};
	return tw_storage_list(r->st, TW_ST_INDEX, load_one, &lc, e);
}

#define TCACHE_MAX_BYTES (24u << 20)
#define TCACHE_MAX_PACK (8u << 20)

/* A tree blob from a whole tree pack kept in memory. TW_EAGAIN when the pack
 * is too big to keep (the caller reads the blob alone). */
static int read_tree_cached(struct tw_repo *r, uint32_t pack, const char *pname, const struct tw_idx_slot *s,
			    const uint8_t id[TW_ID_LEN], uint8_t **pt, struct tw_err *e)
{
	const size_t nslots = sizeof r->tcache / sizeof r->tcache[0];
	pthread_mutex_lock(&r->tc_mu);
	size_t hit = nslots;
	for (size_t i = 0; i < nslots; i++)
		if (r->tcache[i].data != NULL && r->tcache[i].pack == pack)
			hit = i;
	if (hit == nslots) {
		uint64_t size = 0;
		int rc = tw_storage_stat(r->st, TW_ST_DATA, pname, &size, e);
		if (rc != 0 || size > TCACHE_MAX_PACK) {
			pthread_mutex_unlock(&r->tc_mu);
			return rc != 0 ? rc : TW_EAGAIN;
		}
		uint8_t *data;
		size_t len;
		rc = tw_storage_get(r->st, TW_ST_DATA, pname, 0, TW_ST_WHOLE, &data, &len, e);
		if (rc != 0) {
			pthread_mutex_unlock(&r->tc_mu);
			return rc;
		}
		/* make room: evict least recently used packs until it fits */
		for (;;) {
			size_t lru = nslots, empty = nslots;
			for (size_t i = 0; i < nslots; i++) {
				if (r->tcache[i].data == NULL) {
					if (empty == nslots)
						empty = i;
				} else if (lru == nslots || r->tcache[i].used < r->tcache[lru].used) {
					lru = i;
				}
			}
			if (empty != nslots && r->tcache_bytes + len <= TCACHE_MAX_BYTES) {
				hit = empty;
				break;
			}
			if (lru == nslots)
				break; /* nothing to evict and still no room */
			r->tcache_bytes -= r->tcache[lru].len;
			free(r->tcache[lru].data);
			r->tcache[lru].data = NULL;
		}
		if (hit == nslots) {
			free(data);
			pthread_mutex_unlock(&r->tc_mu);
			return TW_EAGAIN;
		}
		r->tcache[hit].pack = pack;
		r->tcache[hit].data = data;
		r->tcache[hit].len = len;
		r->tcache_bytes += len;
	}
	r->tcache[hit].used = ++r->tcache_tick;
	int rc;
	if ((uint64_t)s->offset + s->length > r->tcache[hit].len) {
		rc = tw_err_set(e, TW_ECORRUPT, "pack %.16s truncated", pname);
	} else {
		struct tw_pack_entry en = {s->type, s->flags, {0}, s->offset, s->length, s->raw_length, {0}};
		memcpy(en.id, id, TW_ID_LEN);
		rc = tw_blob_open(&r->keys, NULL, &en, r->tcache[hit].data + s->offset, pt, e);
		if (rc != 0) {
			char hex[65];
			tw_hex(id, TW_ID_LEN, hex);
			tw_err_wrap(e, "blob %.16s in pack %.16s", hex, pname);
		}
	}
	pthread_mutex_unlock(&r->tc_mu);
	return rc;
}

static int read_blob_depth(struct tw_repo *r, const uint8_t id[TW_ID_LEN], int depth,
			   uint8_t **pt, size_t *n, struct tw_err *e);
static int blob_open_depth(struct tw_repo *r, const struct tw_pack_entry *en, uint8_t *stored,
			   uint8_t **raw, size_t *raw_cap, const uint8_t **pt, int depth,
			   struct tw_err *e);

static int grow_buf(uint8_t **buf, size_t *cap, size_t need)
{
	if (*buf != NULL && *cap >= need)
		return 0;
	uint8_t *nb = malloc(need ? need : 1);
	if (nb == NULL)
		return TW_ENOMEM;
	free(*buf);
	*buf = nb;
	*cap = need ? need : 1;
	return 0;
}

static int base_get(struct tw_repo *r, const uint8_t id[TW_ID_LEN], int depth, uint8_t **buf,
		    size_t *cap, size_t *n, struct tw_err *e)
{
	const size_t nslots = sizeof r->bcache / sizeof r->bcache[0];
	pthread_mutex_lock(&r->bc_mu);
	for (size_t i = 0; i < nslots; i++) {
		if (r->bcache[i].data != NULL && memcmp(r->bcache[i].id, id, TW_ID_LEN) == 0) {
			int rc = grow_buf(buf, cap, r->bcache[i].len);
			if (rc == 0) {
				memcpy(*buf, r->bcache[i].data, r->bcache[i].len);
				*n = r->bcache[i].len;
				r->bcache[i].used = ++r->bcache_tick;
			}
			pthread_mutex_unlock(&r->bc_mu);
			return rc != 0 ? tw_err_set(e, rc, "out of memory") : 0;
		}
	}
	pthread_mutex_unlock(&r->bc_mu);
	uint8_t *pt;
	int rc = read_blob_depth(r, id, depth, &pt, n, e);
	if (rc != 0)
		return rc;
	if (grow_buf(buf, cap, *n) != 0) {
		free(pt);
		return tw_err_set(e, TW_ENOMEM, "out of memory");
	}
	memcpy(*buf, pt, *n);
	/* keep it: replace the least recently used slot */
	pthread_mutex_lock(&r->bc_mu);
	size_t lru = 0;
	for (size_t i = 0; i < nslots; i++) {
		if (r->bcache[i].data == NULL) {
			lru = i;
			break;
		}
		if (r->bcache[i].used < r->bcache[lru].used)
			lru = i;
	}
	free(r->bcache[lru].data);
	memcpy(r->bcache[lru].id, id, TW_ID_LEN);
	r->bcache[lru].data = pt;
	r->bcache[lru].len = *n;
	r->bcache[lru].used = ++r->bcache_tick;
	pthread_mutex_unlock(&r->bc_mu);
	return 0;
}

int tw_repo_read_base(struct tw_repo *r, const uint8_t id[TW_ID_LEN], uint8_t **buf,
		      size_t *cap, size_t *n, struct tw_err *e)
{
	/* a backup reads each base once: no use keeping it in the cache */
	uint8_t *pt;
	int rc = read_blob_depth(r, id, 1, &pt, n, e);
	if (rc != 0)
		return rc;
	free(*buf);
	*buf = pt;
	*cap = *n;
	return 0;
}

static int blob_open_depth(struct tw_repo *r, const struct tw_pack_entry *en, uint8_t *stored,
			   uint8_t **raw, size_t *raw_cap, const uint8_t **pt, int depth,
			   struct tw_err *e)
{
	/* depth > 0: read as the base of a delta, whose rebuilt unit has its
	 * ID checked (which covers every byte taken from here) */
	if (!(en->flags & TW_BLOB_DELTA))
		return depth > 0 ? tw_blob_open_base(&r->keys, NULL, en, stored, raw, raw_cap, pt, e)
				 : tw_blob_open_inplace(&r->keys, NULL, en, stored, raw, raw_cap, pt, e);
	*pt = NULL;
	char bhex[65];
	tw_hex(en->base, TW_ID_LEN, bhex);
	if (depth >= TW_DELTA_READ_DEPTH)
		return tw_err_set(e, TW_ECORRUPT, "delta chain deeper than %d at base %.16s",
				  TW_DELTA_READ_DEPTH, bhex);
	uint8_t *body;
	size_t blen;
	int rc = tw_blob_decrypt(&r->keys, en, stored, &body, &blen, e);
	if (rc != 0)
		return rc;
	uint8_t *base = NULL;
	size_t bcap = 0, bn = 0;
	rc = base_get(r, en->base, depth + 1, &base, &bcap, &bn, e);
	if (rc != 0) {
		free(base);
		return tw_err_wrap(e, "base %.16s of this delta", bhex);
	}
	rc = grow_buf(raw, raw_cap, en->raw_length);
	if (rc != 0) {
		free(base);
		return tw_err_set(e, rc, "out of memory");
	}
	rc = tw_delta_apply(body, blen, (en->flags & TW_BLOB_ZSTD) != 0, base, bn, *raw,
			    en->raw_length, tw_zstd_thread_dctx(), e);
	free(base);
	if (rc != 0)
		return rc;
	uint8_t id[TW_ID_LEN];
	if (depth == 0 && (tw_crypto_id(&r->keys, *raw, en->raw_length, id) != 0 ||
			   memcmp(id, en->id, TW_ID_LEN) != 0))
		return tw_err_set(e, TW_ECORRUPT, "blob: content does not match its ID (delta on base %.16s)",
				  bhex);
	*pt = *raw;
	return 0;
}

int tw_repo_blob_open(struct tw_repo *r, const struct tw_pack_entry *en, uint8_t *stored,
		      uint8_t **raw, size_t *raw_cap, const uint8_t **pt, struct tw_err *e)
{
	return blob_open_depth(r, en, stored, raw, raw_cap, pt, 0, e);
}

int tw_repo_read_blob(struct tw_repo *r, const uint8_t id[TW_ID_LEN], uint8_t **pt, size_t *n,
		      struct tw_err *e)
{
	return read_blob_depth(r, id, 0, pt, n, e);
}

static int read_blob_depth(struct tw_repo *r, const uint8_t id[TW_ID_LEN], int depth,
			   uint8_t **pt, size_t *n, struct tw_err *e)
{
	*pt = NULL;
	pthread_mutex_lock(&r->ix_mu);
	const struct tw_idx_slot *s = tw_index_get(&r->index, id);
	struct tw_idx_slot copy;
	struct tw_pack_entry en;
	uint8_t pack_id[TW_ID_LEN];
	if (s != NULL) {
		copy = *s;
		tw_index_entry(&r->index, s, &en);
		if (copy.pack != TW_PACK_NEW)
			memcpy(pack_id, r->index.packs[copy.pack], TW_ID_LEN);
	}
	pthread_mutex_unlock(&r->ix_mu);
	char hex[65];
	tw_hex(id, TW_ID_LEN, hex);
	if (s == NULL || copy.pack == TW_PACK_NEW)
		return tw_err_set(e, TW_ENOENT, "blob %.16s not in the index", hex);
	char pname[65];
	tw_hex(pack_id, TW_ID_LEN, pname);
	uint8_t *stored;
	size_t slen;
	if (copy.type == TW_BLOB_TREE) {
		int trc = read_tree_cached(r, copy.pack, pname, &copy, id, pt, e);
		if (trc != TW_EAGAIN) {
			if (trc == 0)
				*n = copy.raw_length;
			return trc;
		}
	}
	int rc = tw_storage_get(r->st, TW_ST_DATA, pname, copy.offset, copy.length, &stored, &slen, e);
	if (rc != 0)
		return rc;
	if (slen != copy.length) {
		free(stored);
		return tw_err_set(e, TW_ECORRUPT, "pack %.16s truncated", pname);
	}
	if ((en.flags & TW_BLOB_DELTA) || depth > 0) {
		uint8_t *raw = NULL;
		size_t cap = 0;
		const uint8_t *p;
		rc = blob_open_depth(r, &en, stored, &raw, &cap, &p, depth, e);
		if (rc == 0 && p != raw && grow_buf(&raw, &cap, en.raw_length) == 0)
			memcpy(raw, p, en.raw_length); /* stored uncompressed: p is in stored */
		else if (rc == 0 && p != raw)
			rc = tw_err_set(e, TW_ENOMEM, "out of memory");
		if (rc == 0)
			*pt = raw;
		else
			free(raw);
	} else {
		rc = tw_blob_open(&r->keys, NULL, &en, stored, pt, e);
	}
	free(stored);
	if (rc != 0)
		return tw_err_wrap(e, "blob %.16s in pack %.16s", hex, pname);
	*n = copy.raw_length;
	return 0;
}

int tw_repo_read_tree(struct tw_repo *r, const uint8_t id[TW_ID_LEN], uint8_t **buf,
		      struct tw_node **nodes, uint32_t *count, struct tw_err *e)
{
	size_t n;
	*nodes = NULL;
	int rc = tw_repo_read_blob(r, id, buf, &n, e);
	if (rc != 0)
		return rc;
	rc = tw_tree_decode(*buf, n, nodes, count, e);
	if (rc != 0) {
		free(*buf);
		*buf = NULL;
	}
	return rc;
}

int tw_repo_pack_header(struct tw_repo *r, const char *name, uint64_t size,
			struct tw_pack_entry **ents, uint32_t *count, struct tw_err *e)
{
	*ents = NULL;
	*count = 0;
	if (size < 4 + TW_SEAL_OVERHEAD)
		return tw_err_set(e, TW_ECORRUPT, "pack %.16s: too short", name);
	uint8_t *tail;
	size_t tlen;
	int rc = tw_storage_get(r->st, TW_ST_DATA, name, size - 4, 4, &tail, &tlen, e);
	if (rc != 0)
		return rc;
	uint32_t hlen = tlen == 4 ? tw_le32_get(tail) : 0;
	free(tail);
	if (hlen < TW_SEAL_OVERHEAD || hlen > size - 4 || hlen > (64u << 20))
		return tw_err_set(e, TW_ECORRUPT, "pack %.16s: bad header length", name);
	uint8_t *h;
	size_t hn;
	rc = tw_storage_get(r->st, TW_ST_DATA, name, size - 4 - hlen, hlen, &h, &hn, e);
	if (rc != 0)
		return rc;
	uint8_t *pt;
	size_t ptn;
	rc = tw_object_open(&r->keys, "pack-header", h, hn, &pt, &ptn, e);
	free(h);
	if (rc != 0)
		return tw_err_wrap(e, "pack %.16s", name);
	rc = tw_pack_header_decode(pt, ptn, size - 4 - hlen, ents, count, e);
	free(pt);
	return rc != 0 ? tw_err_wrap(e, "pack %.16s", name) : 0;
}

int tw_repo_pack_trailer(struct tw_repo *r, const struct tw_pack_entry *ents, uint32_t n,
			 struct tw_dbuf *buf)
{
	struct tw_dbuf h;
	tw_dbuf_init(&h, (size_t)64 << 20);
	int rc = tw_pack_header_encode(ents, n, &h);
	if (rc == 0)
		rc = tw_meta_pack(&h);
	uint8_t *sealed = NULL;
	size_t slen = 0;
	if (rc == 0)
		rc = tw_object_seal(&r->keys, "pack-header", h.data, h.len, &sealed, &slen);
	tw_dbuf_free(&h);
	if (rc != 0)
		return rc;
	uint8_t l[4];
	tw_le32_put(l, (uint32_t)slen);
	rc = tw_dbuf_append(buf, sealed, slen);
	if (rc == 0)
		rc = tw_dbuf_append(buf, l, 4);
	free(sealed);
	return rc;
}

static int flush_index_locked(struct tw_repo *r, struct tw_err *e)
{
	if (r->idx_pending == 0)
		return 0;
	tw_index_enc_finish(&r->idx_enc);
	int rc = tw_repo_put_object(r, TW_ST_INDEX, "index", r->idx_enc.buf.data,
				    r->idx_enc.buf.len, NULL, e);
	if (rc != 0)
		return rc;
	tw_index_enc_free(&r->idx_enc);
	tw_index_enc_init(&r->idx_enc);
	r->idx_pending = 0;
	return 0;
}

int tw_repo_pack_written(struct tw_repo *r, const uint8_t pack_id[TW_ID_LEN],
			 const struct tw_pack_entry *ents, uint32_t n, struct tw_err *e)
{
	pthread_mutex_lock(&r->ix_mu);
	uint32_t num;
	int rc = tw_index_pack(&r->index, pack_id, &num);
	for (uint32_t i = 0; rc == 0 && i < n; i++) {
		int added;
		rc = tw_index_add(&r->index, &ents[i], num, &added);
	}
	if (rc == 0)
		rc = tw_index_enc_pack(&r->idx_enc, pack_id, ents, n);
	struct tw_index_enc full;
	int write_now = rc == 0 && ++r->idx_pending >= 32;
	if (write_now) {
		/* take the pending object and write it without holding the lock
		 * (workers claim blobs under it) */
		full = r->idx_enc;
		tw_index_enc_init(&r->idx_enc);
		r->idx_pending = 0;
	}
	pthread_mutex_unlock(&r->ix_mu);
	if (write_now) {
		tw_index_enc_finish(&full);
		rc = tw_repo_put_object(r, TW_ST_INDEX, "index", full.buf.data, full.buf.len, NULL, e);
		tw_index_enc_free(&full);
	}
	if (rc < 0 && e && e->code == 0)
		tw_err_set(e, rc, "index update failed");
	return rc;
}

int tw_repo_flush_index(struct tw_repo *r, struct tw_err *e)
{
	pthread_mutex_lock(&r->ix_mu);
	int rc = flush_index_locked(r, e);
	pthread_mutex_unlock(&r->ix_mu);
	return rc;
}

/* ---- snapshots ---- */

struct snap_list {
	struct tw_repo *r;
	struct tw_snapshot **v;
	size_t n, cap;
};

static int snap_one(void *arg, const char *name, uint64_t size)
{
	struct snap_list *sl = arg;
	uint8_t *pt;
	size_t n;
	struct tw_err e2 = {0};
	struct tw_snapshot *s;
	if (tw_repo_get_object(sl->r, TW_ST_SNAPSHOT, "snapshot", name, &pt, &n, &e2) != 0) {
		tw_warn("snapshot %s unreadable: %s", name, e2.msg);
		return 0;
	}
	int rc = tw_snapshot_decode(pt, n, &s, &e2);
	free(pt);
	if (rc != 0) {
		tw_warn("snapshot %s: %s", name, e2.msg);
		return 0;
	}
	snprintf(s->id, sizeof s->id, "%s", name);
	if (sl->n == sl->cap) {
		size_t nc = sl->cap ? sl->cap * 2 : 16;
		void *nv = realloc(sl->v, nc * sizeof *sl->v);
		if (nv == NULL) {
			tw_snapshot_free(s);
			return TW_ENOMEM;
		}
		sl->v = nv;
		sl->cap = nc;
	}
	sl->v[sl->n++] = s;
	return 0;
}

static int by_time(const void *a, const void *b)
{
	const struct tw_snapshot *x = *(struct tw_snapshot *const *)a,
				 *y = *(struct tw_snapshot *const *)b;
	if (x->time_ns != y->time_ns)
		return x->time_ns < y->time_ns ? -1 : 1;
	return strcmp(x->id, y->id);
}

int tw_repo_list_snapshots(struct tw_repo *r, struct tw_snapshot ***out, size_t *n,
			   struct tw_err *e)
{
	struct snap_list sl = {r, NULL, 0, 0};
	int rc = tw_storage_list(r->st, TW_ST_SNAPSHOT, snap_one, &sl, e);
	if (rc != 0) {
		tw_repo_free_snapshots(sl.v, sl.n);
		return rc < 0 ? rc : TW_EIO;
	}
	if (sl.n > 1)
		qsort(sl.v, sl.n, sizeof *sl.v, by_time);
	*out = sl.v;
	*n = sl.n;
	return 0;
}

void tw_repo_free_snapshots(struct tw_snapshot **v, size_t n)
{
	for (size_t i = 0; v != NULL && i < n; i++)
		tw_snapshot_free(v[i]);
	free(v);
}

int tw_repo_find_snapshot(struct tw_snapshot **v, size_t n, const char *spec,
			  struct tw_snapshot **out, struct tw_err *e)
{
	*out = NULL;
	if (strcmp(spec, "latest") == 0) {
		if (n == 0)
			return tw_err_set(e, TW_ENOENT, "no snapshots");
		*out = v[n - 1];
		return 0;
	}
	size_t len = strlen(spec);
	if (len == 0 || len > 64)
		return tw_err_set(e, TW_EINVAL, "bad snapshot id '%s'", spec);
	for (size_t i = 0; i < n; i++) {
		if (strncmp(v[i]->id, spec, len) != 0)
			continue;
		if (*out != NULL) {
			*out = NULL;
			return tw_err_set(e, TW_EINVAL, "snapshot id prefix '%s' is ambiguous", spec);
		}
		*out = v[i];
	}
	return *out ? 0 : tw_err_set(e, TW_ENOENT, "no snapshot '%s'", spec);
}

int tw_repo_save_snapshot(struct tw_repo *r, struct tw_snapshot *s, struct tw_err *e)
{
	struct tw_dbuf b;
	tw_dbuf_init(&b, (size_t)16 << 20);
	int rc = tw_snapshot_encode(s, &b);
	if (rc == 0)
		rc = tw_repo_put_object(r, TW_ST_SNAPSHOT, "snapshot", b.data, b.len, s->id, e);
	else
		tw_err_set(e, rc, "snapshot encoding failed");
	tw_dbuf_free(&b);
	return rc;
}

/* ---- locks ---- */

struct lock_scan {
	struct tw_repo *r;
	int exclusive;
	int conflict;
	char host[256];
	int64_t now;
};

static int lock_one(void *arg, const char *name, uint64_t size)
{
	struct lock_scan *ls = arg;
	if (strcmp(name, ls->r->lock_name) == 0)
		return 0;
	uint8_t *pt;
	size_t n;
	if (tw_repo_get_object(ls->r, TW_ST_LOCK, "lock", name, &pt, &n, NULL) != 0)
		return 0; /* vanished meanwhile, or not ours to read */
	json_t *o = json_loadb((const char *)pt, n, 0, NULL);
	free(pt);
	int excl = 0, lease = 0;
	json_int_t pid = 0, t = 0;
	const char *host = "";
	if (o == NULL || json_unpack(o, "{s:b,s:s,s:I,s:I,s:i}", "exclusive", &excl, "hostname",
				     &host, "pid", &pid, "time_ns", &t, "lease_s", &lease) != 0) {
		json_decref(o);
		return 0;
	}
	int stale = ls->now > t + (int64_t)lease * 1000000000;
	if (!stale && strcmp(host, ls->host) == 0 && pid > 0 && kill((pid_t)pid, 0) == -1 &&
	    errno == ESRCH)
		stale = 1;
	json_decref(o);
	if (stale) {
		tw_info("removing stale lock %.16s", name);
		tw_storage_del(ls->r->st, TW_ST_LOCK, name, NULL);
		return 0;
	}
	if (excl || ls->exclusive)
		ls->conflict = 1;
	return 0;
}

static int conflicts(struct tw_repo *r, int exclusive, int *conflict, struct tw_err *e)
{
	struct lock_scan ls = {r, exclusive, 0, {0}, now_ns()};
	host_name(ls.host, sizeof ls.host);
	int rc = tw_storage_list(r->st, TW_ST_LOCK, lock_one, &ls, e);
	*conflict = ls.conflict;
	return rc;
}

static int write_lock(struct tw_repo *r, char name_out[65], struct tw_err *e)
{
	char host[256];
	host_name(host, sizeof host);
	json_t *o = json_pack("{s:b,s:s,s:I,s:I,s:i}", "exclusive", r->lock_exclusive, "hostname",
			      host, "pid", (json_int_t)getpid(), "time_ns", (json_int_t)now_ns(),
			      "lease_s", TW_LOCK_LEASE_S);
	char *txt = o ? json_dumps(o, JSON_COMPACT) : NULL;
	json_decref(o);
	if (txt == NULL)
		return tw_err_set(e, TW_ENOMEM, "out of memory");
	/* first writer wins: a lock is never replaced (TW_EEXIST otherwise) */
	int rc = tw_repo_put_object_flags(r, TW_ST_LOCK, "lock", txt, strlen(txt), TW_ST_EXCL,
					  name_out, e);
	free(txt);
	return rc;
}

static void *refresh_main(void *arg)
{
	struct tw_repo *r = arg;
	pthread_mutex_lock(&r->lock_mu);
	while (!r->lock_stop) {
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_sec += TW_LOCK_LEASE_S / 3;
		pthread_cond_timedwait(&r->lock_cv, &r->lock_mu, &ts);
		if (r->lock_stop)
			break;
		char old[65], fresh[65];
		memcpy(old, r->lock_name, sizeof old);
		if (write_lock(r, fresh, NULL) == 0) {
			memcpy(r->lock_name, fresh, sizeof fresh);
			tw_storage_del(r->st, TW_ST_LOCK, old, NULL);
		}
	}
	pthread_mutex_unlock(&r->lock_mu);
	return NULL;
}

int tw_repo_lock(struct tw_repo *r, int exclusive, struct tw_err *e)
{
	int conflict;
	r->lock_exclusive = exclusive;
	int rc = conflicts(r, exclusive, &conflict, e);
	if (rc != 0)
		return rc;
	if (conflict)
		return tw_err_set(e, TW_ELOCKED, "repository is locked by another process");
	if ((rc = write_lock(r, r->lock_name, e)) != 0)
		return rc;
	if ((rc = conflicts(r, exclusive, &conflict, e)) != 0 || conflict) {
		tw_storage_del(r->st, TW_ST_LOCK, r->lock_name, NULL);
		r->lock_name[0] = '\0';
		return rc ? rc : tw_err_set(e, TW_ELOCKED, "repository is locked by another process");
	}
	r->lock_stop = 0;
	if (pthread_create(&r->lock_thread, NULL, refresh_main, r) == 0)
		r->lock_thread_on = 1;
	return 0;
}

void tw_repo_unlock(struct tw_repo *r)
{
	if (r->lock_thread_on) {
		pthread_mutex_lock(&r->lock_mu);
		r->lock_stop = 1;
		pthread_cond_signal(&r->lock_cv);
		pthread_mutex_unlock(&r->lock_mu);
		pthread_join(r->lock_thread, NULL);
		r->lock_thread_on = 0;
	}
	if (r->lock_name[0]) {
		tw_storage_del(r->st, TW_ST_LOCK, r->lock_name, NULL);
		r->lock_name[0] = '\0';
	}
}
