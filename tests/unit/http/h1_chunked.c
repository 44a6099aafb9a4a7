/* Unit tests for the chunked scanner of src/http/h1.c (tw_h1_chunked_*). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "http/h1.h"

struct sink {
	char data[8192];
	size_t len;
	size_t calls;
};

static void on_data(void *ctx, const char *p, size_t n)
{
	struct sink *s = ctx;
	assert_true(n > 0);
	assert_true(s->len + n <= sizeof s->data);
	memcpy(s->data + s->len, p, n);
	s->len += n;
	s->calls++;
}

struct outcome {
	int rc;
	size_t consumed; /* total body bytes consumed when rc == 0 */
	struct sink sink;
};

/* Feed text in pieces of `step` bytes (0 = all at once); each piece is an
 * exact-size heap copy so that ASan sees any overread. */
static void scan(const char *text, size_t n, size_t step, uint64_t max_body, struct outcome *o)
{
	struct tw_h1_chunked c;
	tw_h1_chunked_init(&c, max_body);
	memset(o, 0, sizeof *o);
	int rc = TW_EAGAIN;
	size_t at = 0;
	if (step == 0)
		step = n;
	while (at < n) {
		size_t k = n - at < step ? n - at : step;
		char *b = malloc(k);
		assert_non_null(b);
		memcpy(b, text + at, k);
		size_t used = 99999;
		rc = tw_h1_chunked_scan(&c, b, k, &used, on_data, &o->sink);
		free(b);
		if (rc == TW_EAGAIN)
			assert_int_equal(used, k);
		if (rc == 0) {
			assert_true(used <= k);
			o->consumed = at + used;
		}
		if (rc != TW_EAGAIN) {
			if (rc != 0)
				assert_non_null(c.why);
			break;
		}
		at += k;
	}
	o->rc = rc;
	if (rc == 0) {
		size_t used = 1;
		assert_int_equal(tw_h1_chunked_scan(&c, "x", 1, &used, NULL, NULL), 0);
		assert_int_equal(used, 0);
	} else if (rc != TW_EAGAIN) {
		size_t used;
		assert_int_equal(tw_h1_chunked_scan(&c, "0", 1, &used, NULL, NULL), rc);
	}
}

/* All at once, byte by byte and in steps of 2,3,7: same outcome. */
static void scan_checked(const char *text, size_t n, uint64_t max_body, struct outcome *o)
{
	static const size_t steps[] = {1, 2, 3, 7};
	struct outcome *x = malloc(sizeof *x);
	assert_non_null(x);
	scan(text, n, 0, max_body, o);
	for (size_t i = 0; i < sizeof steps / sizeof steps[0]; i++) {
		scan(text, n, steps[i], max_body, x);
		assert_int_equal(x->rc, o->rc);
		if (o->rc == 0)
			assert_int_equal(x->consumed, o->consumed);
		assert_int_equal(x->sink.len, o->sink.len);
		assert_memory_equal(x->sink.data, o->sink.data, o->sink.len);
	}
	free(x);
}

#define G(t, d) {t, sizeof(t) - 1, d, sizeof(d) - 1}
static const struct {
	const char *text;
	size_t n;
	const char *decoded;
	size_t dn;
} good[] = {
	G("0\r\n\r\n", ""),
	G("5\r\nhello\r\n0\r\n\r\n", "hello"),
	G("5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n", "hello world"),
	G("A\r\n0123456789\r\n0\r\n\r\n", "0123456789"),
	G("a\r\n0123456789\r\n000\r\n\r\n", "0123456789"),
	G("0000000000000003\r\nabc\r\n0\r\n\r\n", "abc"),
	G("3;ext\r\nabc\r\n0\r\n\r\n", "abc"),
	G("3;a=b;c=\"q\\\"x\" ; d = e\r\nabc\r\n0;last\r\n\r\n", "abc"),
	G("3 ;a\r\nabc\r\n0\r\n\r\n", "abc"),
	G("3\r\n\r\n\n\r\n0\r\n\r\n", "\r\n\n"),
	G("2\r\n\x00\xff\r\n0\r\n\r\n", "\x00\xff"),
	G("3\r\nabc\r\n0\r\nX-Sum: 1\r\nY: a b\t\r\n\r\n", "abc"),
	G("0\r\nX:\r\n\r\n", ""),
};

static void valid_bodies(void **state)
{
	struct outcome *o = malloc(sizeof *o);
	assert_non_null(o);
	for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
		const char *t = good[i].text;
		size_t n = good[i].n, dn = good[i].dn; /* literals may hold NULs */
		char *buf = malloc(n + 9);
		assert_non_null(buf);
		memcpy(buf, t, n);
		memcpy(buf + n, "GET / HT", 8); /* pipelined bytes after the body */
		scan_checked(buf, n + 8, 0, o);
		if (o->rc != 0)
			fail_msg("case %zu rc %d", i, o->rc);
		assert_int_equal(o->consumed, n);
		assert_int_equal(o->sink.len, dn);
		assert_memory_equal(o->sink.data, good[i].decoded, dn);
		free(buf);
	}
	free(o);
}

static const char *const bad[] = {
	"\r\n",                           /* empty size */
	"g\r\n",                          /* non-hex */
	"-1\r\n",                         /* sign */
	"+1\r\n",                         /* sign */
	"0x5\r\n",                        /* prefix */
	"00000000000000001\r\nx\r\n0\r\n\r\n", /* 17 hex digits */
	"4000000000000001\r\n",           /* > 2^62 */
	"FFFFFFFFFFFFFFFF\r\n",           /* overflow */
	"5\nhello\r\n0\r\n\r\n",          /* bare LF after size */
	"5\rhello\r\n0\r\n\r\n",          /* bare CR */
	"5 \r\nhello\r\n0\r\n\r\n",       /* BWS without extension */
	"5;\r\nhello\r\n0\r\n\r\n",       /* empty extension name */
	"5;a=\r\nhello\r\n0\r\n\r\n",     /* empty extension value */
	"5;a=\"x\r\nhello\r\n0\r\n\r\n",  /* unterminated quoted string */
	"5;a=\"x\"y\r\nhello\r\n0\r\n\r\n", /* junk after quoted string */
	"5;a\x01\r\nhello\r\n0\r\n\r\n",  /* CTL in extension */
	"5;a=\"\x7f\"\r\nhello\r\n0\r\n\r\n", /* DEL in quoted string */
	"5;a=b c\r\nhello\r\n0\r\n\r\n",   /* space inside value */
	"5\r\nhelloX\r\n0\r\n\r\n",       /* data longer than size */
	"5\r\nhello\n0\r\n\r\n",          /* bare LF after data */
	"5\r\nhello\rX0\r\n\r\n",         /* bare CR after data */
	"0\r\n\n",                        /* bare LF at end */
	"0\r\n\rX",                       /* bare CR at end */
	"0\r\nX: a\n\r\n",                /* bare LF in trailer */
	"0\r\nX: a\rb\r\n\r\n",           /* bare CR in trailer */
	"0\r\nX : a\r\n\r\n",             /* whitespace before colon */
	"0\r\n: a\r\n\r\n",               /* empty trailer name */
	"0\r\nX\r\n\r\n",                 /* no colon */
	"0\r\n X: a\r\n\r\n",             /* obs-fold */
	"0\r\nX: a\x01\r\n\r\n",          /* CTL in trailer value */
	"0\r\nX(: a\r\n\r\n",             /* non-tchar name */
};

static void invalid_bodies(void **state)
{
	struct outcome *o = malloc(sizeof *o);
	assert_non_null(o);
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		scan_checked(bad[i], strlen(bad[i]), 0, o);
		if (o->rc != TW_EPROTO)
			fail_msg("case %zu (%s): rc %d", i, bad[i], o->rc);
	}
	free(o);
}

static void limits(void **state)
{
	struct outcome *o = malloc(sizeof *o);
	assert_non_null(o);
	const char b[] = "5\r\nhello\r\n5\r\nworld\r\n0\r\n\r\n";
	scan_checked(b, sizeof b - 1, 10, o);
	assert_int_equal(o->rc, 0);
	scan_checked(b, sizeof b - 1, 9, o);
	assert_int_equal(o->rc, TW_ELIMIT);
	assert_int_equal(o->sink.len, 5); /* refused at the size line, before the data */

	/* a size line with extensions above 4 KiB */
	size_t n = 5000;
	char *s = malloc(n + 16);
	assert_non_null(s);
	memcpy(s, "1;", 2);
	memset(s + 2, 'e', n);
	memcpy(s + 2 + n, "\r\nx\r\n0\r\n\r\n", 10);
	scan_checked(s, n + 12, 0, o);
	assert_int_equal(o->rc, TW_ELIMIT);
	/* just under the cap is fine */
	memcpy(s + 4000, "\r\nx\r\n0\r\n\r\n", 10);
	scan_checked(s, 4010, 0, o);
	assert_int_equal(o->rc, 0);
	free(s);

	/* trailers above 8 KiB */
	s = malloc(10000);
	assert_non_null(s);
	size_t k = 0;
	memcpy(s, "0\r\n", 3);
	k = 3;
	for (int i = 0; i < 100; i++) {
		memcpy(s + k, "X-Trailer: ", 11);
		memset(s + k + 11, 'v', 80);
		memcpy(s + k + 91, "\r\n", 2);
		k += 93;
	}
	memcpy(s + k, "\r\n", 2);
	scan_checked(s, k + 2, 0, o);
	assert_int_equal(o->rc, TW_ELIMIT);
	scan_checked(s, 3 + 80 * 93, 0, o); /* 80 trailers (7440 bytes): not over yet */
	assert_int_equal(o->rc, TW_EAGAIN);
	free(s);
	free(o);
}

static void incomplete(void **state)
{
	struct outcome *o = malloc(sizeof *o);
	assert_non_null(o);
	const char b[] = "5\r\nhel";
	scan_checked(b, sizeof b - 1, 0, o);
	assert_int_equal(o->rc, TW_EAGAIN);
	assert_int_equal(o->sink.len, 3);
	const char c[] = "5\r\nhello\r\n0\r\nX: y\r\n";
	scan_checked(c, sizeof c - 1, 0, o);
	assert_int_equal(o->rc, TW_EAGAIN);
	free(o);
}

/* A large body in random pieces: on_data concatenation equals the payload. */
static void random_pieces(void **state)
{
	size_t cap = 1 << 16, n = 0, dn = 0;
	char *enc = malloc(cap);
	char *dec = malloc(cap);
	assert_non_null(enc);
	assert_non_null(dec);
	uint32_t r = 12345;
	for (int i = 0; i < 40; i++) {
		r = r * 1103515245u + 12345u;
		size_t len = 1 + (r >> 16) % 150;
		n += (size_t)snprintf(enc + n, cap - n, "%zx%s\r\n", len, i % 3 ? "" : ";i=\"x\"");
		for (size_t j = 0; j < len; j++)
			enc[n + j] = dec[dn + j] = (char)('a' + (j + (size_t)i) % 26);
		n += len;
		dn += len;
		memcpy(enc + n, "\r\n", 2);
		n += 2;
	}
	n += (size_t)snprintf(enc + n, cap - n, "0\r\nT: 1\r\n\r\n");
	struct tw_h1_chunked c;
	struct sink *s = calloc(1, sizeof *s);
	assert_non_null(s);
	assert_true(dn < sizeof s->data);
	tw_h1_chunked_init(&c, 0);
	size_t at = 0, used = 0;
	int rc = TW_EAGAIN;
	while (rc == TW_EAGAIN && at < n) {
		r = r * 1103515245u + 12345u;
		size_t k = 1 + (r >> 16) % 64;
		if (k > n - at)
			k = n - at;
		rc = tw_h1_chunked_scan(&c, enc + at, k, &used, on_data, s);
		at += used;
	}
	assert_int_equal(rc, 0);
	assert_int_equal(at, n);
	assert_int_equal(s->len, dn);
	assert_memory_equal(s->data, dec, dn);
	assert_int_equal(c.total, dn);
	free(s);
	free(enc);
	free(dec);
}

/* In place: the payload moved down over the framing, the rest left alone,
 * resumable across calls, and nothing reported on an error. */
static void decode_in_place(void **state)
{
	(void)state;
	struct tw_h1_chunked c;
	size_t used = 99, out = 99;
	char b[] = "3\r\nabc\r\n2;x=y\r\nde\r\n0\r\nT: v\r\n\r\nNEXT";
	tw_h1_chunked_init(&c, 0);
	assert_int_equal(tw_h1_chunked_decode(&c, b, sizeof b - 1, &used, &out), 0);
	assert_int_equal(used, sizeof b - 1 - 4);
	assert_int_equal(out, 5);
	assert_memory_equal(b, "abcde", 5);
	assert_memory_equal(b + used, "NEXT", 4);

	char p1[] = "5\r\nhel", p2[] = "lo\r\n0\r\n\r\n";
	tw_h1_chunked_init(&c, 0);
	assert_int_equal(tw_h1_chunked_decode(&c, p1, sizeof p1 - 1, &used, &out), TW_EAGAIN);
	assert_int_equal(used, sizeof p1 - 1);
	assert_int_equal(out, 3);
	assert_memory_equal(p1, "hel", 3);
	assert_int_equal(tw_h1_chunked_decode(&c, p2, sizeof p2 - 1, &used, &out), 0);
	assert_int_equal(used, sizeof p2 - 1);
	assert_int_equal(out, 2);
	assert_memory_equal(p2, "lo", 2);

	/* data, then a bad chunk-size in the same piece: 0 and 0, so a caller
	 * that compacts its buffer by (used - out) moves nothing */
	char e[] = "5\r\nhello\r\nzz\r\n";
	tw_h1_chunked_init(&c, 0);
	assert_int_equal(tw_h1_chunked_decode(&c, e, sizeof e - 1, &used, &out), TW_EPROTO);
	assert_int_equal(used, 0);
	assert_int_equal(out, 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(valid_bodies),
		cmocka_unit_test(invalid_bodies),
		cmocka_unit_test(limits),
		cmocka_unit_test(incomplete),
		cmocka_unit_test(random_pieces),
		cmocka_unit_test(decode_in_place),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
