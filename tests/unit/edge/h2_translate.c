/* Unit tests for the HTTP/2 -> HTTP/1.1 request translation (src/edge/h2.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include "core/dbuf.h"
#include "core/err.h"
#include "edge/h2.h"
#include "http/h1.h"

struct kv {
	const char *n, *v;
};

/* Feeds fields; returns the first error, or the result of building the head. */
static int translate(const struct kv *f, size_t n, int end_stream, struct tw_dbuf *out, int *chunked,
		     const char **why)
{
	struct tw_h2_req x;
	tw_h2_req_init(&x, 4096, 20);
	int rc = 0;
	for (size_t i = 0; i < n && rc == 0; i++)
		rc = tw_h2_req_field(&x, (const uint8_t *)f[i].n, strlen(f[i].n), (const uint8_t *)f[i].v, strlen(f[i].v));
	if (rc == 0)
		rc = tw_h2_req_head(&x, end_stream, out, chunked);
	*why = x.why;
	tw_h2_req_free(&x);
	return rc;
}

#define BASE {":method", "GET"}, {":scheme", "https"}, {":authority", "app.test"}, {":path", "/a?b=1"}

static void get_translates_to_h1(void **state)
{
	(void)state;
	struct kv f[] = {BASE, {"user-agent", "t"}, {"cookie", "a=1"}, {"cookie", "b=2"}, {"te", "trailers"}};
	struct tw_dbuf out;
	tw_dbuf_init(&out, 65536);
	int chunked = -1;
	const char *why;
	assert_int_equal(translate(f, sizeof f / sizeof f[0], 1, &out, &chunked, &why), 0);
	assert_int_equal(chunked, 0);
	const char *want = "GET /a?b=1 HTTP/1.1\r\nhost: app.test\r\nuser-agent: t\r\ncookie: a=1; b=2\r\n\r\n";
	assert_int_equal(out.len, strlen(want));
	assert_memory_equal(out.data, want, out.len);
	/* and the project's parser accepts it whole */
	struct tw_h1_parser p;
	static struct tw_h1_msg m;
	tw_h1_parser_init(&p, TW_H1_REQUEST, NULL);
	assert_int_equal(tw_h1_parse(&p, out.data, out.len, &m), 0);
	assert_int_equal(p.head_len, out.len);
	tw_dbuf_free(&out);
}

static void body_framing(void **state)
{
	(void)state;
	struct kv post[] = {{":method", "POST"}, {":scheme", "http"}, {":authority", "a"}, {":path", "/"}};
	struct kv post_cl[] = {{":method", "POST"}, {":scheme", "http"}, {":authority", "a"}, {":path", "/"},
			       {"content-length", "5"}};
	struct tw_dbuf out;
	tw_dbuf_init(&out, 65536);
	int chunked;
	const char *why;
	assert_int_equal(translate(post, 4, 0, &out, &chunked, &why), 0);
	assert_int_equal(chunked, 1);
	assert_non_null(strstr(out.data, "transfer-encoding: chunked\r\n"));
	tw_dbuf_reset(&out);
	assert_int_equal(translate(post_cl, 5, 0, &out, &chunked, &why), 0);
	assert_int_equal(chunked, 0);
	assert_non_null(strstr(out.data, "content-length: 5\r\n"));
	assert_null(strstr(out.data, "transfer-encoding"));
	tw_dbuf_reset(&out);
	/* END_STREAM on HEADERS with a non-zero content-length */
	assert_int_equal(translate(post_cl, 5, 1, &out, &chunked, &why), TW_EPROTO);
	tw_dbuf_reset(&out);
	assert_int_equal(translate(post, 4, 1, &out, &chunked, &why), 0);
	assert_int_equal(chunked, 0);
	assert_null(strstr(out.data, "transfer-encoding"));
	tw_dbuf_free(&out);
}

static void rejects(void **state)
{
	(void)state;
	static const struct kv bad[][6] = {
	    {BASE, {"connection", "close"}},
	    {BASE, {"transfer-encoding", "chunked"}},
	    {BASE, {"keep-alive", "1"}},
	    {BASE, {"upgrade", "h2c"}},
	    {BASE, {"proxy-connection", "x"}},
	    {BASE, {"te", "gzip"}},
	    {BASE, {"host", "other.test"}},
	    {BASE, {"Upper", "x"}},
	    {BASE, {"x-a", " lead"}},
	    {BASE, {"x-a", "a\r\nb: c"}},
	    {BASE, {"content-length", "1"}, {"content-length", "2"}},
	    {BASE, {"content-length", "-1"}},
	    {BASE, {":path", "/again"}},
	    {{":method", "GET"}, {":scheme", "http"}, {"x", "1"}, {":path", "/"}},
	    {{":method", "GET"}, {":scheme", "http"}, {":authority", "a"}, {":path", "/ HTTP/1.1"}},
	    {{":method", "GET"}, {":scheme", "http"}, {":authority", "a b"}, {":path", "/"}},
	    {{":method", "GET"}, {":scheme", "ftp"}, {":authority", "a"}, {":path", "/"}},
	    {{":method", "G T"}, {":scheme", "http"}, {":authority", "a"}, {":path", "/"}},
	    {{":method", "GET"}, {":scheme", "http"}, {":authority", "a"}, {":path", "rel"}},
	    {{":method", "GET"}, {":scheme", "http"}, {":authority", "a"}, {":path", "*"}},
	    {{":method", "GET"}, {":scheme", "http"}, {":authority", "a"}},
	    {{":method", "CONNECT"}, {":authority", "a:443"}},
	    {{":method", "GET"}, {":scheme", "http"}, {":authority", "a"}, {":path", "/"}, {":protocol", "websocket"}},
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		size_t n = 0;
		while (n < 6 && bad[i][n].n)
			n++;
		struct tw_dbuf out;
		tw_dbuf_init(&out, 65536);
		int chunked;
		const char *why = NULL;
		int rc = translate(bad[i], n, 1, &out, &chunked, &why);
		if (rc != TW_EPROTO)
			fail_msg("case %zu: rc %d (%s)", i, rc, out.data ? out.data : "");
		assert_non_null(why);
		tw_dbuf_free(&out);
	}
}

static void host_rules(void **state)
{
	(void)state;
	struct kv same[] = {BASE, {"host", "APP.test"}};
	struct kv only_host[] = {{":method", "GET"}, {":scheme", "http"}, {":path", "/"}, {"host", "h.test"}};
	struct tw_dbuf out;
	tw_dbuf_init(&out, 65536);
	int chunked;
	const char *why;
	assert_int_equal(translate(same, 5, 1, &out, &chunked, &why), 0);
	assert_non_null(strstr(out.data, "\r\nhost: app.test\r\n"));
	assert_null(strstr(out.data, "APP"));
	tw_dbuf_reset(&out);
	assert_int_equal(translate(only_host, 4, 1, &out, &chunked, &why), 0);
	assert_non_null(strstr(out.data, "\r\nhost: h.test\r\n"));
	tw_dbuf_free(&out);
}

static void limits(void **state)
{
	(void)state;
	struct tw_h2_req x;
	tw_h2_req_init(&x, 4096, 20);
	char v[1000];
	memset(v, 'v', sizeof v);
	int rc = 0;
	for (int i = 0; i < 10 && rc == 0; i++)
		rc = tw_h2_req_field(&x, (const uint8_t *)"x-big", 5, (const uint8_t *)v, sizeof v);
	assert_int_equal(rc, TW_ELIMIT);
	tw_h2_req_free(&x);
	tw_h2_req_init(&x, 1 << 20, 5);
	rc = 0;
	for (int i = 0; i < 10 && rc == 0; i++)
		rc = tw_h2_req_field(&x, (const uint8_t *)"x-a", 3, (const uint8_t *)"1", 1);
	assert_int_equal(rc, TW_ELIMIT);
	assert_int_equal(x.nfields, 6);
	tw_h2_req_free(&x);
	tw_h2_req_free(NULL);
}

static void preface(void **state)
{
	(void)state;
	const char *p = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
	assert_int_equal(tw_h2_preface(p, 24), 1);
	assert_int_equal(tw_h2_preface(p, 10), TW_EAGAIN);
	assert_int_equal(tw_h2_preface("GET / HTTP/1.1\r\n", 16), 0);
	assert_int_equal(tw_h2_preface("PRI * HTTP/1.1", 14), 0);
}

/* :authority and host refuse exactly controls, space, DEL, bytes >= 0x80 and
 * @/?#\\"<>{}|^` — every byte value tried in the middle of a name. */
static void authority_bytes(void **state)
{
	(void)state;
	for (int b = 0; b < 256; b++) {
		int bad = b <= 0x20 || b >= 0x7f || (b != 0 && strchr("@/?#\\\"<>{}|^`", b) != NULL);
		uint8_t v[3] = {'a', (uint8_t)b, 'b'};
		for (int host = 0; host < 2; host++) {
			struct tw_h2_req x;
			tw_h2_req_init(&x, 4096, 20);
			int rc = tw_h2_req_field(&x, (const uint8_t *)":method", 7, (const uint8_t *)"GET", 3);
			if (host)
				rc |= tw_h2_req_field(&x, (const uint8_t *)"host", 4, v, 3);
			else
				rc |= tw_h2_req_field(&x, (const uint8_t *)":authority", 10, v, 3);
			if (bad != (rc != 0))
				fail_msg("byte 0x%02x as %s: rc %d", b, host ? "host" : ":authority", rc);
			tw_h2_req_free(&x);
		}
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(get_translates_to_h1), cmocka_unit_test(authority_bytes), cmocka_unit_test(body_framing), cmocka_unit_test(rejects),
	    cmocka_unit_test(host_rules),           cmocka_unit_test(limits),       cmocka_unit_test(preface),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
