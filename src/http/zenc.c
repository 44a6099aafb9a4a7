/* zenc.c — zstd, brotli and gzip behind struct zenc_ops (see zenc.h). */
#include "http/zenc.h"

#include "core/err.h"

#include <brotli/encode.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>
#include <zstd.h>

/* RFC 9659: a zstd Content-Encoding window is at most 8 MiB. */
#define ZSTD_WINDOW_LOG_MAX 23
#define ZSTD_WINDOW_LOG_STREAM 20
/* brotli: a window of 256 KiB when the length is not known (its memory is
 * several times the window), up to 4 MiB sized to a known length */
#define BR_LGWIN_STREAM 18
#define BR_LGWIN_MAX 22

struct zenc_ops {
	int (*init)(struct tw_zenc *z);
	int (*reset)(struct tw_zenc *z, uint64_t hint);
	int (*step)(struct tw_zenc *z, const void *in, size_t inlen, size_t *used, void *out, size_t outcap,
		    size_t *produced, enum tw_zenc_op op, int *more);
	void (*fini)(struct tw_zenc *z);
};

struct tw_zenc {
	const struct zenc_ops *ops;
	enum tw_coding coding;
	int level;
	union {
		ZSTD_CCtx *zstd;
		BrotliEncoderState *br;
		struct {
			z_stream s;
			int live;
		} gz;
	} u;
};

/* ---- zstd ---- */

static int zstd_init(struct tw_zenc *z)
{
	z->u.zstd = ZSTD_createCCtx();
	return z->u.zstd ? 0 : TW_ENOMEM;
}

static int zstd_reset(struct tw_zenc *z, uint64_t hint)
{
	ZSTD_CCtx *cc = z->u.zstd;
	ZSTD_CCtx_reset(cc, ZSTD_reset_session_and_parameters);
	if (ZSTD_isError(ZSTD_CCtx_setParameter(cc, ZSTD_c_compressionLevel, z->level)))
		return TW_EIO;
	/* levels 1..19 (tw_zenc_new clamps) use windows of 2^19..2^23: within
	 * RFC 9659's bound; only the levels from 17 reach 2^23 */
	if (z->level >= 17 && ZSTD_isError(ZSTD_CCtx_setParameter(cc, ZSTD_c_windowLog, ZSTD_WINDOW_LOG_MAX)))
		return TW_EIO;
	/* a stream of unknown length: a 1 MiB window bounds its memory (~2 MiB in all) */
	if (hint == 0 && z->level < 17 && ZSTD_isError(ZSTD_CCtx_setParameter(cc, ZSTD_c_windowLog, ZSTD_WINDOW_LOG_STREAM)))
		return TW_EIO;
	if (hint && ZSTD_isError(ZSTD_CCtx_setPledgedSrcSize(cc, hint)))
		return TW_EIO;
	return 0;
}

static int zstd_step(struct tw_zenc *z, const void *in, size_t inlen, size_t *used, void *out, size_t outcap,
		     size_t *produced, enum tw_zenc_op op, int *more)
{
	ZSTD_inBuffer ib = {in, inlen, 0};
	ZSTD_outBuffer ob = {out, outcap, 0};
	ZSTD_EndDirective d = op == TW_ZENC_END ? ZSTD_e_end : op == TW_ZENC_FLUSH ? ZSTD_e_flush : ZSTD_e_continue;
	size_t rem = ZSTD_compressStream2(z->u.zstd, &ob, &ib, d);
	*used = ib.pos;
	*produced = ob.pos;
	if (ZSTD_isError(rem))
		return TW_EIO;
	*more = op == TW_ZENC_RUN ? ob.pos == outcap : rem != 0 || ib.pos < inlen;
	return 0;
}

static void zstd_fini(struct tw_zenc *z) { ZSTD_freeCCtx(z->u.zstd); }

static const struct zenc_ops zstd_ops = {zstd_init, zstd_reset, zstd_step, zstd_fini};

/* ---- brotli ---- */

static int br_init(struct tw_zenc *z)
{
	z->u.br = NULL;
	return 0;
}

static int br_reset(struct tw_zenc *z, uint64_t hint)
{
	if (z->u.br)
		BrotliEncoderDestroyInstance(z->u.br);
	z->u.br = BrotliEncoderCreateInstance(NULL, NULL, NULL);
	if (z->u.br == NULL)
		return TW_ENOMEM;
	int lgwin = BR_LGWIN_STREAM;
	if (hint) {
		lgwin = 10; /* BROTLI_MIN_WINDOW_BITS */
		while (lgwin < BR_LGWIN_MAX && ((uint64_t)1 << lgwin) - 16 < hint)
			lgwin++;
		BrotliEncoderSetParameter(z->u.br, BROTLI_PARAM_SIZE_HINT, hint > (1u << 30) ? (1u << 30) : (uint32_t)hint);
	}
	if (!BrotliEncoderSetParameter(z->u.br, BROTLI_PARAM_QUALITY, (uint32_t)z->level) ||
	    !BrotliEncoderSetParameter(z->u.br, BROTLI_PARAM_LGWIN, (uint32_t)lgwin))
		return TW_EIO;
	return 0;
}

static int br_step(struct tw_zenc *z, const void *in, size_t inlen, size_t *used, void *out, size_t outcap,
		   size_t *produced, enum tw_zenc_op op, int *more)
{
	BrotliEncoderOperation o = op == TW_ZENC_END     ? BROTLI_OPERATION_FINISH
				   : op == TW_ZENC_FLUSH ? BROTLI_OPERATION_FLUSH
							 : BROTLI_OPERATION_PROCESS;
	size_t ain = inlen, aout = outcap;
	const uint8_t *nin = in;
	uint8_t *nout = out;
	int ok = BrotliEncoderCompressStream(z->u.br, o, &ain, &nin, &aout, &nout, NULL);
	*used = inlen - ain;
	*produced = outcap - aout;
	if (!ok)
		return TW_EIO;
	if (op == TW_ZENC_RUN)
		*more = aout == 0;
	else if (op == TW_ZENC_END)
		*more = !BrotliEncoderIsFinished(z->u.br);
	else
		*more = ain != 0 || BrotliEncoderHasMoreOutput(z->u.br);
	return 0;
}

static void br_fini(struct tw_zenc *z)
{
	if (z->u.br)
		BrotliEncoderDestroyInstance(z->u.br);
}

static const struct zenc_ops br_ops = {br_init, br_reset, br_step, br_fini};

/* ---- gzip (zlib deflate with a gzip wrapper: windowBits 15 + 16) ---- */

static int gz_init(struct tw_zenc *z)
{
	memset(&z->u.gz.s, 0, sizeof z->u.gz.s);
	if (deflateInit2(&z->u.gz.s, z->level, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK)
		return TW_ENOMEM;
	z->u.gz.live = 1;
	return 0;
}

static int gz_reset(struct tw_zenc *z, uint64_t hint)
{
	(void)hint;
	return deflateReset(&z->u.gz.s) == Z_OK ? 0 : TW_EIO;
}

static int gz_step(struct tw_zenc *z, const void *in, size_t inlen, size_t *used, void *out, size_t outcap,
		   size_t *produced, enum tw_zenc_op op, int *more)
{
	z_stream *s = &z->u.gz.s;
	/* zlib counts in uInt: feed at most 1 GiB per call */
	uInt ain = inlen > (1u << 30) ? (1u << 30) : (uInt)inlen;
	uInt aout = outcap > (1u << 30) ? (1u << 30) : (uInt)outcap;
	s->next_in = (Bytef *)(uintptr_t)in;
	s->avail_in = ain;
	s->next_out = out;
	s->avail_out = aout;
	int flush = op == TW_ZENC_END ? Z_FINISH : op == TW_ZENC_FLUSH ? Z_SYNC_FLUSH : Z_NO_FLUSH;
	int rc = deflate(s, flush);
	*used = ain - s->avail_in;
	*produced = aout - s->avail_out;
	if (rc != Z_OK && rc != Z_STREAM_END && rc != Z_BUF_ERROR)
		return TW_EIO;
	if (op == TW_ZENC_RUN)
		*more = s->avail_out == 0;
	else if (op == TW_ZENC_END)
		*more = rc != Z_STREAM_END;
	else
		*more = s->avail_out == 0 || *used < inlen;
	return 0;
}

static void gz_fini(struct tw_zenc *z)
{
	if (z->u.gz.live)
		deflateEnd(&z->u.gz.s);
}

static const struct zenc_ops gz_ops = {gz_init, gz_reset, gz_step, gz_fini};

/* ---- the interface ---- */

static int clamp(int v, int lo, int hi) { return v < lo ? lo : v > hi ? hi : v; }

struct tw_zenc *tw_zenc_new(enum tw_coding coding, int level)
{
	const struct zenc_ops *ops;
	switch (coding) {
	case TW_CODING_ZSTD: ops = &zstd_ops; level = clamp(level, 1, 19); break;
	case TW_CODING_BR: ops = &br_ops; level = clamp(level, 0, 11); break;
	case TW_CODING_GZIP: ops = &gz_ops; level = clamp(level, 1, 9); break;
	default: return NULL;
	}
	struct tw_zenc *z = calloc(1, sizeof *z);
	if (z == NULL)
		return NULL;
	z->ops = ops;
	z->coding = coding;
	z->level = level;
	if (ops->init(z) != 0) {
		free(z);
		return NULL;
	}
	return z;
}

int tw_zenc_reset(struct tw_zenc *z, uint64_t size_hint) { return z->ops->reset(z, size_hint); }

int tw_zenc_step(struct tw_zenc *z, const void *in, size_t inlen, size_t *used, void *out, size_t outcap,
		 size_t *produced, enum tw_zenc_op op, int *more)
{
	*used = *produced = 0;
	*more = 0;
	return z->ops->step(z, in, inlen, used, out, outcap, produced, op, more);
}

enum tw_coding tw_zenc_coding(const struct tw_zenc *z) { return z->coding; }
int tw_zenc_level(const struct tw_zenc *z) { return z->level; }

void tw_zenc_free(struct tw_zenc *z)
{
	if (z == NULL)
		return;
	z->ops->fini(z);
	free(z);
}

int tw_zenc_oneshot(enum tw_coding coding, int level, const void *in, size_t n, char **out, size_t *outlen)
{
	*out = NULL;
	*outlen = 0;
	struct tw_zenc *z = tw_zenc_new(coding, level);
	if (z == NULL)
		return TW_ENOMEM;
	size_t cap = n + n / 8 + 1024, len = 0, off = 0;
	char *buf = malloc(cap);
	int rc = buf ? tw_zenc_reset(z, n) : TW_ENOMEM;
	for (int more = 1; rc == 0 && (more || off < n);) {
		if (cap - len < 256) {
			char *nb = realloc(buf, cap * 2);
			if (nb == NULL) {
				rc = TW_ENOMEM;
				break;
			}
			buf = nb;
			cap *= 2;
		}
		size_t used, prod;
		rc = tw_zenc_step(z, (const char *)in + off, n - off, &used, buf + len, cap - len, &prod, TW_ZENC_END,
				  &more);
		off += used;
		len += prod;
	}
	tw_zenc_free(z);
	if (rc != 0) {
		free(buf);
		return rc;
	}
	*out = buf;
	*outlen = len;
	return 0;
}
