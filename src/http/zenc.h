/* zenc.h — streaming response encoders behind one small interface.
 *
 * Three codings (http/accept_enc.h's enum tw_coding): zstd (libzstd, window
 * at most 8 MiB as RFC 9659 asks), br (libbrotli) and gzip (zlib). An
 * encoder is made once and reused for stream after stream (tw_zenc_reset):
 * zstd and zlib keep their tables and windows between streams; brotli has
 * no reset, so its state is made again per stream. Memory per encoder is in
 * docs/compression.md ("Memory").
 *
 * tw_zenc_step() moves bytes: it consumes from in, produces into out, and
 * with TW_ZENC_FLUSH / TW_ZENC_END makes everything consumed so far
 * decodable. It returns 0 with *more = 1 when it has output left for a later
 * call (out was full), 0 with *more = 0 when done for this op, and TW_EIO
 * on an encoder failure (the encoder must be reset before reuse). */
#ifndef TW_HTTP_ZENC_H
#define TW_HTTP_ZENC_H

#include "http/accept_enc.h"

#include <stddef.h>
#include <stdint.h>

enum tw_zenc_op { TW_ZENC_RUN = 0, TW_ZENC_FLUSH, TW_ZENC_END };

struct tw_zenc;

/* level: zstd 1..19, br 0..11, gzip 1..9 (clamped). NULL on ENOMEM or
 * identity. */
struct tw_zenc *tw_zenc_new(enum tw_coding coding, int level);
/* Start a new stream; size_hint is the body length when known (0 = not
 * known): zstd and brotli size their windows to it. 0 or TW_EIO/TW_ENOMEM. */
int tw_zenc_reset(struct tw_zenc *z, uint64_t size_hint);
int tw_zenc_step(struct tw_zenc *z, const void *in, size_t inlen, size_t *used, void *out, size_t outcap,
		 size_t *produced, enum tw_zenc_op op, int *more);
enum tw_coding tw_zenc_coding(const struct tw_zenc *z);
int tw_zenc_level(const struct tw_zenc *z); /* after clamping */
void tw_zenc_free(struct tw_zenc *z); /* NULL ok */

/* One-shot helper (tests, benches): encode in[0..n) whole into a malloc'd
 * buffer. 0 or a negative TW_E*. */
int tw_zenc_oneshot(enum tw_coding coding, int level, const void *in, size_t n, char **out, size_t *outlen);

#endif
