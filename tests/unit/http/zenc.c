/* Unit tests for src/http/zenc.c: every coding round-trips through its
 * reference decoder (libzstd, zlib, libbrotlidec) whether fed whole, in
 * small pieces through a small output buffer, or with flushes in between
 * (each flush makes all input so far decodable); encoders are reused. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include <brotli/decode.h>
#include <zlib.h>
#define ZSTD_STATIC_LINKING_ONLY /* ZSTD_getFrameHeader */
#include <zstd.h>

#include "core/err.h"
#include "http/zenc.h"

static char *make_input(size_t n)
{
	char *p = malloc(n);
	assert_non_null(p);
	static const char *const words[] = {"function ", "return ", "var ", "this.", "value", " = ", "{\"id\": ",
					    "null, ", "document", "();\n", "if (", "length", "0x1f", "window."};
	uint32_t x = 12345;
	size_t i = 0;
	while (i < n) { /* text-like: random words from a small list */
		x = x * 1103515245u + 12345u;
		const char *w = words[(x >> 16) % (sizeof words / sizeof words[0])];
		for (size_t k = 0; w[k] && i < n; k++)
			p[i++] = w[k];
	}
	return p;
}

static size_t decode(enum tw_coding c, const char *in, size_t n, char *out, size_t cap)
{
	if (c == TW_CODING_ZSTD) {
		ZSTD_DStream *d = ZSTD_createDStream();
		ZSTD_inBuffer ib = {in, n, 0};
		ZSTD_outBuffer ob = {out, cap, 0};
		while (ib.pos < ib.size) {
			size_t r = ZSTD_decompressStream(d, &ob, &ib);
			assert_false(ZSTD_isError(r));
		}
		ZSTD_freeDStream(d);
		return ob.pos;
	}
	if (c == TW_CODING_GZIP) {
		z_stream s;
		memset(&s, 0, sizeof s);
		assert_int_equal(inflateInit2(&s, 15 + 16), Z_OK);
		s.next_in = (Bytef *)(uintptr_t)in;
		s.avail_in = (uInt)n;
		s.next_out = (Bytef *)out;
		s.avail_out = (uInt)cap;
		int rc = inflate(&s, Z_SYNC_FLUSH);
		assert_true(rc == Z_OK || rc == Z_STREAM_END);
		size_t got = cap - s.avail_out;
		inflateEnd(&s);
		return got;
	}
	BrotliDecoderState *d = BrotliDecoderCreateInstance(NULL, NULL, NULL);
	size_t ain = n, aout = cap;
	const uint8_t *ni = (const uint8_t *)in;
	uint8_t *no = (uint8_t *)out;
	BrotliDecoderResult r = BrotliDecoderDecompressStream(d, &ain, &ni, &aout, &no, NULL);
	assert_true(r == BROTLI_DECODER_RESULT_SUCCESS || r == BROTLI_DECODER_RESULT_NEEDS_MORE_INPUT);
	BrotliDecoderDestroyInstance(d);
	return cap - aout;
}

/* Encode in pieces of `piece` input bytes through an output window of `ocap`
 * bytes, flushing every `flush_every` pieces (0: never), then end. */
static void roundtrip(struct tw_zenc *z, const char *in, size_t n, size_t piece, size_t ocap, size_t flush_every,
		      int hint)
{
	enum tw_coding c = tw_zenc_coding(z);
	assert_int_equal(tw_zenc_reset(z, hint ? n : 0), 0);
	size_t cap = n * 2 + 65536, len = 0, off = 0, k = 0;
	char *enc = malloc(cap), *dec = malloc(n + 16);
	assert_non_null(enc);
	assert_non_null(dec);
	while (off < n) {
		size_t take = n - off < piece ? n - off : piece;
		size_t done = 0;
		while (done < take) {
			size_t used, prod;
			int more;
			size_t oc = cap - len < ocap ? cap - len : ocap;
			assert_int_equal(tw_zenc_step(z, in + off + done, take - done, &used, enc + len, oc, &prod,
						      TW_ZENC_RUN, &more), 0);
			done += used;
			len += prod;
		}
		off += take;
		if (flush_every && ++k % flush_every == 0) {
			for (int more = 1; more;) {
				size_t used, prod;
				size_t oc = cap - len < ocap ? cap - len : ocap;
				assert_int_equal(tw_zenc_step(z, NULL, 0, &used, enc + len, oc, &prod, TW_ZENC_FLUSH, &more), 0);
				len += prod;
			}
			/* everything so far decodes now */
			assert_int_equal(decode(c, enc, len, dec, n + 16), off);
			assert_memory_equal(dec, in, off);
		}
	}
	for (int more = 1; more;) {
		size_t used, prod;
		size_t oc = cap - len < ocap ? cap - len : ocap;
		assert_int_equal(tw_zenc_step(z, NULL, 0, &used, enc + len, oc, &prod, TW_ZENC_END, &more), 0);
		len += prod;
	}
	assert_true(n < 4096 || len < n / 2); /* it did compress */
	assert_int_equal(decode(c, enc, len, dec, n + 16), n);
	assert_memory_equal(dec, in, n);
	free(enc);
	free(dec);
}

static void run_coding(enum tw_coding c, int level)
{
	size_t n = 300000;
	char *in = make_input(n);
	struct tw_zenc *z = tw_zenc_new(c, level);
	assert_non_null(z);
	roundtrip(z, in, n, n, 1u << 20, 0, 1);   /* whole */
	roundtrip(z, in, n, 4096, 333, 0, 0);     /* pieces, tiny output window, unknown size */
	roundtrip(z, in, n, 16384, 8192, 3, 0);   /* flushes between */
	roundtrip(z, in, 10, 10, 64, 0, 1);       /* tiny body, reused encoder */
	roundtrip(z, in, 0, 1, 64, 0, 0);         /* empty body */
	tw_zenc_free(z);
	char *out;
	size_t olen;
	assert_int_equal(tw_zenc_oneshot(c, level, in, n, &out, &olen), 0);
	char *dec = malloc(n);
	assert_int_equal(decode(c, out, olen, dec, n), n);
	assert_memory_equal(dec, in, n);
	free(dec);
	free(out);
	free(in);
}

static void test_zstd(void **state)
{
	(void)state;
	run_coding(TW_CODING_ZSTD, 3);
	run_coding(TW_CODING_ZSTD, 19);
}

static void test_gzip(void **state)
{
	(void)state;
	run_coding(TW_CODING_GZIP, 1);
	run_coding(TW_CODING_GZIP, 6);
}

static void test_br(void **state)
{
	(void)state;
	run_coding(TW_CODING_BR, 4);
	run_coding(TW_CODING_BR, 0);
}

static void test_zstd_window(void **state)
{
	(void)state;
	/* RFC 9659: at most 8 MiB even at the highest level we allow */
	size_t n = 1 << 20;
	char *in = make_input(n), *out;
	size_t olen;
	assert_int_equal(tw_zenc_oneshot(TW_CODING_ZSTD, 22, in, n, &out, &olen), 0);
	ZSTD_frameHeader fh;
	assert_int_equal(ZSTD_getFrameHeader(&fh, out, olen), 0);
	assert_true(fh.windowSize <= (8u << 20));
	assert_int_equal(fh.frameContentSize, n);
	free(out);
	free(in);
}

static void test_identity(void **state)
{
	(void)state;
	assert_null(tw_zenc_new(TW_CODING_IDENTITY, 1));
	tw_zenc_free(NULL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_zstd), cmocka_unit_test(test_gzip), cmocka_unit_test(test_br),
	    cmocka_unit_test(test_zstd_window), cmocka_unit_test(test_identity),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
