/* Unit tests for the PROXY protocol parser and writer (src/edge/proxyproto.c):
 * whole, split at every byte, trickled one byte at a time, followed by
 * stream bytes, oversize, garbage; the writer's output read back. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "edge/proxyproto.h"

static const uint8_t SIG[12] = {0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A};

/* Feed in one piece; returns rc and *used. */
static int feed_all(struct tw_pp_parser *p, const void *b, size_t n, size_t *used)
{
	tw_pp_init(p);
	return tw_pp_feed(p, b, n, used);
}

/* Feed split at every position and trickled; every way must agree with
 * the one-piece answer (rc, bytes used, client address). */
static void agree(const void *b, size_t n)
{
	struct tw_pp_parser whole, part;
	size_t used_whole = 0;
	int rc_whole = feed_all(&whole, b, n, &used_whole);
	for (size_t cut = 0; cut <= n; cut++) {
		tw_pp_init(&part);
		size_t u1 = 0, u2 = 0;
		int rc = tw_pp_feed(&part, b, cut, &u1);
		if (rc == TW_EAGAIN) {
			assert_int_equal(u1, cut);
			rc = tw_pp_feed(&part, (const char *)b + cut, n - cut, &u2);
		}
		assert_int_equal(rc, rc_whole);
		if (rc == 0) {
			assert_int_equal(u1 + u2, used_whole);
			assert_int_equal(part.info.local, whole.info.local);
			assert_memory_equal(&part.info.src, &whole.info.src, sizeof part.info.src);
			assert_string_equal(part.info.vpce, whole.info.vpce);
			assert_string_equal(part.info.alpn, whole.info.alpn);
		}
	}
	/* one byte at a time */
	tw_pp_init(&part);
	size_t total = 0;
	int rc = TW_EAGAIN;
	for (size_t i = 0; i < n && rc == TW_EAGAIN; i++) {
		size_t u = 0;
		rc = tw_pp_feed(&part, (const char *)b + i, 1, &u);
		total += u;
	}
	assert_int_equal(rc, rc_whole);
	if (rc == 0)
		assert_int_equal(total, used_whole);
}

static const char *src_text(const struct tw_pp_info *i, char *buf, size_t cap)
{
	tw_pp_addr_text((const struct sockaddr *)&i->src, buf, cap);
	return buf;
}

static unsigned src_port(const struct tw_pp_info *i)
{
	return i->src.ss_family == AF_INET ? ntohs(((const struct sockaddr_in *)&i->src)->sin_port)
					   : ntohs(((const struct sockaddr_in6 *)&i->src)->sin6_port);
}

static void v1_tcp4(void **state)
{
	const char *in = "PROXY TCP4 192.0.2.7 10.0.0.1 51234 443\r\nGET / HTTP/1.1\r\n";
	struct tw_pp_parser p;
	size_t used;
	char b[64];
	assert_int_equal(feed_all(&p, in, strlen(in), &used), 0);
	assert_int_equal(used, strlen("PROXY TCP4 192.0.2.7 10.0.0.1 51234 443\r\n"));
	assert_int_equal(p.info.version, 1);
	assert_int_equal(p.info.local, 0);
	assert_string_equal(src_text(&p.info, b, sizeof b), "192.0.2.7");
	assert_int_equal(src_port(&p.info), 51234);
	agree(in, strlen(in));
}

static void v1_tcp6_and_unknown(void **state)
{
	const char *in = "PROXY TCP6 2001:db8::1 2001:db8::2 65535 0\r\n";
	struct tw_pp_parser p;
	size_t used;
	char b[64];
	assert_int_equal(feed_all(&p, in, strlen(in), &used), 0);
	assert_string_equal(src_text(&p.info, b, sizeof b), "2001:db8::1");
	assert_int_equal(src_port(&p.info), 65535);
	agree(in, strlen(in));
	const char *unk = "PROXY UNKNOWN ffff::1 ffff::2 1 2\r\n";
	assert_int_equal(feed_all(&p, unk, strlen(unk), &used), 0);
	assert_int_equal(p.info.local, 1);
	assert_int_equal(feed_all(&p, "PROXY UNKNOWN\r\n", 15, &used), 0);
	assert_int_equal(p.info.local, 1);
	assert_int_equal(used, 15);
}

static void v1_bad(void **state)
{
	static const char *const bad[] = {
		"PROXY TCP4 192.0.2.7 10.0.0.1 51234\r\n",         /* missing port */
		"PROXY TCP4 192.0.2.7 10.0.0.1 51234 443 x\r\n",   /* extra field */
		"PROXY TCP4 2001:db8::1 10.0.0.1 1 2\r\n",         /* family mismatch */
		"PROXY TCP6 192.0.2.7 10.0.0.1 1 2\r\n",
		"PROXY TCP4 192.0.2.7 10.0.0.1 65536 443\r\n",     /* port range */
		"PROXY TCP4 192.0.2.7 10.0.0.1 -1 443\r\n",
		"PROXY TCP4  192.0.2.7 10.0.0.1 1 443\r\n",        /* double space */
		"PROXY TCP4 192.0.2.7 10.0.0.1 1 443 \r\n",        /* trailing space */
		"PROXY TCP4 192.0.2.7 10.0.0.1 1 443\n",           /* bare LF */
		"PROXY TCP4 192.0.2.7\r10.0.0.1 1 443\r\n",        /* CR inside */
		"PROXY UDP4 192.0.2.7 10.0.0.1 1 443\r\n",
		"PROXY \r\n",
		"PROXY\r\n",
		"proxy TCP4 192.0.2.7 10.0.0.1 1 443\r\n",
		"GET / HTTP/1.1\r\nHost: x\r\n\r\n",               /* no header at all */
		"PROXY TCP4 192.0.2.7 10.0.0.1 1 4\x01\r\n",
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		struct tw_pp_parser p;
		size_t used;
		int rc = feed_all(&p, bad[i], strlen(bad[i]), &used);
		if (rc != TW_EPROTO)
			fail_msg("case %zu accepted: %s", i, bad[i]);
		assert_non_null(p.why);
		agree(bad[i], strlen(bad[i]));
	}
	/* garbage fails at the first byte, before any more is read */
	struct tw_pp_parser p;
	size_t used;
	assert_int_equal(feed_all(&p, "\x16\x03\x01", 3, &used), TW_EPROTO);
	assert_int_equal(used, 1);
	assert_int_equal(feed_all(&p, "PRX", 3, &used), TW_EPROTO);
	assert_int_equal(used, 3);
}

static void v1_length_cap(void **state)
{
	/* the longest valid line is 107 bytes; 108 is refused without waiting for LF */
	char line[200];
	int n = snprintf(line, sizeof line, "PROXY UNKNOWN %s\r\n", "");
	assert_true(n > 0);
	memset(line, 0, sizeof line);
	memcpy(line, "PROXY UNKNOWN ", 14);
	memset(line + 14, 'a', 107 - 14 - 2);
	memcpy(line + 105, "\r\n", 2);
	struct tw_pp_parser p;
	size_t used;
	assert_int_equal(feed_all(&p, line, 107, &used), 0);
	assert_int_equal(used, 107);
	memset(line + 14, 'a', 108 - 14 - 2);
	memcpy(line + 106, "\r\n", 2);
	assert_int_equal(feed_all(&p, line, 108, &used), TW_EPROTO);
	/* a long line without LF is refused at byte 107, not buffered on */
	memset(line, 'a', sizeof line);
	memcpy(line, "PROXY ", 6);
	assert_int_equal(feed_all(&p, line, sizeof line, &used), TW_EPROTO);
	assert_true(used <= 107);
}

/* v2 builder for tests */
static size_t v2(uint8_t *out, uint8_t vc, uint8_t fam, const uint8_t *body, size_t blen, int lenfield)
{
	memcpy(out, SIG, 12);
	out[12] = vc;
	out[13] = fam;
	size_t l = lenfield >= 0 ? (size_t)lenfield : blen;
	out[14] = (uint8_t)(l >> 8);
	out[15] = (uint8_t)l;
	memcpy(out + 16, body, blen);
	return 16 + blen;
}

static void v2_inet_tlvs(void **state)
{
	uint8_t body[128], msg[256];
	size_t n = 0;
	const uint8_t a[12] = {198, 51, 100, 9, 10, 0, 0, 1, 0x1F, 0x90, 0x01, 0xBB};
	memcpy(body, a, 12);
	n = 12;
	/* ALPN "h2" */
	body[n++] = 0x01, body[n++] = 0, body[n++] = 2, body[n++] = 'h', body[n++] = '2';
	/* NOOP 4 bytes */
	body[n++] = 0x04, body[n++] = 0, body[n++] = 4;
	memset(body + n, 0xEE, 4), n += 4;
	/* AWS VPCE id */
	const char *vpce = "vpce-08d2bf15fac5001c9";
	body[n++] = 0xEA, body[n++] = 0, body[n++] = (uint8_t)(1 + strlen(vpce)), body[n++] = 0x01;
	memcpy(body + n, vpce, strlen(vpce)), n += strlen(vpce);
	/* authority with a control byte (made printable) */
	body[n++] = 0x02, body[n++] = 0, body[n++] = 5;
	memcpy(body + n, "a.b\nc", 5), n += 5;
	size_t m = v2(msg, 0x21, 0x11, body, n, -1);
	memcpy(msg + m, "\x16\x03\x01", 3); /* a TLS record follows */
	struct tw_pp_parser p;
	size_t used;
	char b[64];
	assert_int_equal(feed_all(&p, msg, m + 3, &used), 0);
	assert_int_equal(used, m);
	assert_int_equal(p.info.version, 2);
	assert_int_equal(p.info.local, 0);
	assert_string_equal(src_text(&p.info, b, sizeof b), "198.51.100.9");
	assert_int_equal(src_port(&p.info), 8080);
	assert_string_equal(p.info.alpn, "h2");
	assert_string_equal(p.info.vpce, vpce);
	assert_string_equal(p.info.authority, "a.b?c");
	agree(msg, m + 3);
}

static void v2_inet6_local_unspec(void **state)
{
	uint8_t body[64], msg[128];
	memset(body, 0, sizeof body);
	body[0] = 0x20, body[1] = 0x01, body[2] = 0x0d, body[3] = 0xb8, body[15] = 0x05;
	body[32] = 0x30, body[33] = 0x39;
	size_t m = v2(msg, 0x21, 0x21, body, 36, -1);
	struct tw_pp_parser p;
	size_t used;
	char b[64];
	assert_int_equal(feed_all(&p, msg, m, &used), 0);
	assert_string_equal(src_text(&p.info, b, sizeof b), "2001:db8::5");
	assert_int_equal(src_port(&p.info), 12345);
	agree(msg, m);
	/* LOCAL with an (ignored) address block and junk */
	m = v2(msg, 0x20, 0x11, body, 20, -1);
	assert_int_equal(feed_all(&p, msg, m, &used), 0);
	assert_int_equal(p.info.local, 1);
	assert_int_equal(used, m);
	agree(msg, m);
	/* LOCAL, nothing after */
	m = v2(msg, 0x20, 0x00, body, 0, -1);
	assert_int_equal(feed_all(&p, msg, m, &used), 0);
	assert_int_equal(used, 16);
	assert_int_equal(p.info.local, 1);
	/* PROXY + UNSPEC: keep the socket's address */
	m = v2(msg, 0x21, 0x00, body, 7, -1);
	assert_int_equal(feed_all(&p, msg, m, &used), 0);
	assert_int_equal(p.info.local, 1);
	assert_int_equal(used, m);
}

static void v2_bad(void **state)
{
	uint8_t body[64] = {0}, msg[128];
	struct tw_pp_parser p;
	size_t used;
	size_t m = v2(msg, 0x11, 0x11, body, 12, -1); /* version 1 */
	assert_int_equal(feed_all(&p, msg, m, &used), TW_EPROTO);
	m = v2(msg, 0x22, 0x11, body, 12, -1); /* command 2 */
	assert_int_equal(feed_all(&p, msg, m, &used), TW_EPROTO);
	m = v2(msg, 0x21, 0x41, body, 12, -1); /* family 4 */
	assert_int_equal(feed_all(&p, msg, m, &used), TW_EPROTO);
	m = v2(msg, 0x21, 0x12, body, 12, -1); /* DGRAM */
	assert_int_equal(feed_all(&p, msg, m, &used), TW_EPROTO);
	m = v2(msg, 0x21, 0x11, body, 8, -1); /* shorter than the INET block */
	assert_int_equal(feed_all(&p, msg, m, &used), TW_EPROTO);
	m = v2(msg, 0x21, 0x21, body, 12, -1); /* shorter than the INET6 block */
	assert_int_equal(feed_all(&p, msg, m, &used), TW_EPROTO);
	/* TLV longer than what is left */
	body[12] = 0x02, body[13] = 0, body[14] = 9;
	m = v2(msg, 0x21, 0x11, body, 12 + 3 + 4, -1);
	assert_int_equal(feed_all(&p, msg, m, &used), TW_EPROTO);
	agree(msg, m);
	/* truncated TLV head */
	m = v2(msg, 0x21, 0x11, body, 12 + 2, -1);
	assert_int_equal(feed_all(&p, msg, m, &used), TW_EPROTO);
	agree(msg, m);
	/* signature off by one byte */
	m = v2(msg, 0x21, 0x11, body, 12, -1);
	msg[7] = 'q';
	assert_int_equal(feed_all(&p, msg, m, &used), TW_EPROTO);
	assert_int_equal(used, 8);
}

static void v2_oversize(void **state)
{
	uint8_t msg[16 + 12];
	uint8_t body[12] = {127, 0, 0, 1, 127, 0, 0, 1, 0, 1, 0, 2};
	struct tw_pp_parser p;
	size_t used;
	/* length 0xFFFF: refused right after the 16 fixed bytes */
	size_t m = v2(msg, 0x21, 0x11, body, 12, 0xFFFF);
	assert_int_equal(feed_all(&p, msg, m, &used), TW_EPROTO);
	assert_int_equal(used, 16);
	/* the largest allowed: 4096 bytes in all, with a big skipped TLV */
	uint8_t *big = calloc(1, TW_PP_MAX + 8);
	assert_non_null(big);
	uint8_t *bb = calloc(1, TW_PP_MAX);
	assert_non_null(bb);
	memcpy(bb, body, 12);
	size_t tl = TW_PP_MAX - 16 - 12 - 3;
	bb[12] = 0xE0, bb[13] = (uint8_t)(tl >> 8), bb[14] = (uint8_t)tl;
	m = v2(big, 0x21, 0x11, bb, TW_PP_MAX - 16, -1);
	assert_int_equal(m, TW_PP_MAX);
	assert_int_equal(feed_all(&p, big, m, &used), 0);
	assert_int_equal(used, TW_PP_MAX);
	agree(big, m);
	/* one more byte is too much */
	bb[14] = (uint8_t)(tl + 1);
	m = v2(big, 0x21, 0x11, bb, TW_PP_MAX - 15, -1);
	assert_int_equal(feed_all(&p, big, m, &used), TW_EPROTO);
	free(big);
	free(bb);
}

/* The writer's headers are read back by the parser. */
static void writer_roundtrip(void **state)
{
	struct sockaddr_in s4 = {.sin_family = AF_INET, .sin_port = htons(40000)};
	struct sockaddr_in d4 = {.sin_family = AF_INET, .sin_port = htons(443)};
	inet_pton(AF_INET, "203.0.113.77", &s4.sin_addr);
	inet_pton(AF_INET, "127.0.0.1", &d4.sin_addr);
	struct sockaddr_in6 s6 = {.sin6_family = AF_INET6, .sin6_port = htons(1)};
	struct sockaddr_in6 d6 = {.sin6_family = AF_INET6, .sin6_port = htons(2)};
	inet_pton(AF_INET6, "2001:db8:1::42", &s6.sin6_addr);
	inet_pton(AF_INET6, "::1", &d6.sin6_addr);
	char out[256], b[64];
	struct tw_pp_parser p;
	size_t used;
	size_t n = tw_pp_write_v1(out, sizeof out, (struct sockaddr *)&s4, (struct sockaddr *)&d4);
	assert_string_equal(out, "PROXY TCP4 203.0.113.77 127.0.0.1 40000 443\r\n");
	assert_int_equal(feed_all(&p, out, n, &used), 0);
	assert_int_equal(used, n);
	n = tw_pp_write_v2(out, sizeof out, (struct sockaddr *)&s6, (struct sockaddr *)&d6, "h2");
	assert_int_equal(feed_all(&p, out, n, &used), 0);
	assert_int_equal(used, n);
	assert_string_equal(src_text(&p.info, b, sizeof b), "2001:db8:1::42");
	assert_string_equal(p.info.alpn, "h2");
	n = tw_pp_write_v2(out, sizeof out, (struct sockaddr *)&s4, (struct sockaddr *)&d4, NULL);
	assert_int_equal(n, 28);
	assert_int_equal(feed_all(&p, out, n, &used), 0);
	assert_string_equal(src_text(&p.info, b, sizeof b), "203.0.113.77");
	/* mixed families: the IPv4 one is IPv4-mapped */
	n = tw_pp_write_v1(out, sizeof out, (struct sockaddr *)&s4, (struct sockaddr *)&d6);
	assert_string_equal(out, "PROXY TCP6 ::ffff:203.0.113.77 ::1 40000 2\r\n");
	n = tw_pp_write_v2(out, sizeof out, (struct sockaddr *)&s6, (struct sockaddr *)&d4, NULL);
	assert_int_equal(feed_all(&p, out, n, &used), 0);
	assert_int_equal(p.info.local, 0);
	assert_string_equal(src_text(&p.info, b, sizeof b), "2001:db8:1::42");
	/* no addresses (a health check): UNKNOWN / LOCAL */
	n = tw_pp_write_v1(out, sizeof out, NULL, NULL);
	assert_string_equal(out, "PROXY UNKNOWN\r\n");
	n = tw_pp_write_v2(out, sizeof out, NULL, NULL, NULL);
	assert_int_equal(n, 16);
	assert_int_equal(feed_all(&p, out, n, &used), 0);
	assert_int_equal(p.info.local, 1);
	/* too small a buffer */
	assert_int_equal(tw_pp_write_v1(out, 50, (struct sockaddr *)&s4, (struct sockaddr *)&d4), 0);
	assert_int_equal(tw_pp_write_v2(out, 20, (struct sockaddr *)&s4, (struct sockaddr *)&d4, NULL), 0);
}

/* Random bytes behind each signature: never a crash, never past the input. */
static void random_inputs(void **state)
{
	uint64_t x = 88172645463325252ull;
	uint8_t buf[300];
	for (int round = 0; round < 20000; round++) {
		size_t n = 0;
		if (round % 3 == 0) {
			memcpy(buf, SIG, 12);
			n = 12;
		} else if (round % 3 == 1) {
			memcpy(buf, "PROXY TCP4 ", 11);
			n = 11;
		}
		size_t len = n + (size_t)(x % (sizeof buf - n));
		for (; n < len; n++) {
			x ^= x << 13, x ^= x >> 7, x ^= x << 17;
			buf[n] = (uint8_t)x;
		}
		if (round % 3 == 0 && len > 15)
			buf[14] = 0; /* keep some lengths small so TLVs get parsed */
		struct tw_pp_parser p;
		size_t used = 0;
		int rc = feed_all(&p, buf, len, &used);
		assert_true(rc == 0 || rc == TW_EAGAIN || rc == TW_EPROTO);
		assert_true(used <= len);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(v1_tcp4),
		cmocka_unit_test(v1_tcp6_and_unknown),
		cmocka_unit_test(v1_bad),
		cmocka_unit_test(v1_length_cap),
		cmocka_unit_test(v2_inet_tlvs),
		cmocka_unit_test(v2_inet6_local_unspec),
		cmocka_unit_test(v2_bad),
		cmocka_unit_test(v2_oversize),
		cmocka_unit_test(writer_roundtrip),
		cmocka_unit_test(random_inputs),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
