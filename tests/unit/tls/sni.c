/* Unit tests for the server_name extension parser (tw_tls_sni_parse in
 * src/tls/store.c): well-formed names, normalisation, every truncation of a
 * valid body, malformed lengths, and random bytes (bounded). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "tls/tls_int.h"

/* Build a server_name body with one entry of type t holding name. */
static size_t body(unsigned char *b, unsigned t, const char *name)
{
	size_t n = strlen(name);
	b[0] = (unsigned char)((n + 3) >> 8);
	b[1] = (unsigned char)(n + 3);
	b[2] = (unsigned char)t;
	b[3] = (unsigned char)(n >> 8);
	b[4] = (unsigned char)n;
	memcpy(b + 5, name, n);
	return n + 5;
}

static void good_names(void **state)
{
	unsigned char b[600];
	char out[256];
	size_t n = body(b, 0, "App.Test");
	assert_int_equal(tw_tls_sni_parse(b, n, out, sizeof out), 0);
	assert_string_equal(out, "app.test");
	n = body(b, 0, "www.example.com.");
	assert_int_equal(tw_tls_sni_parse(b, n, out, sizeof out), 0);
	assert_string_equal(out, "www.example.com");
	/* an unknown name type first, then the host name */
	unsigned char two[64];
	size_t k = 0;
	two[k++] = 0;
	two[k++] = 3 + 2 + 3 + 1;
	two[k++] = 7; /* type 7, 2 bytes */
	two[k++] = 0;
	two[k++] = 2;
	two[k++] = 'x';
	two[k++] = 'y';
	two[k++] = 0;
	two[k++] = 0;
	two[k++] = 1;
	two[k++] = 'a';
	assert_int_equal(tw_tls_sni_parse(two, k, out, sizeof out), 0);
	assert_string_equal(out, "a");
}

static void bad_names(void **state)
{
	unsigned char b[600] = {0};
	char out[256], small[8];
	assert_int_equal(tw_tls_sni_parse(b, 0, out, sizeof out), -1);
	size_t n = body(b, 0, "");
	assert_int_equal(tw_tls_sni_parse(b, n, out, sizeof out), -1);
	n = body(b, 0, ".");
	assert_int_equal(tw_tls_sni_parse(b, n, out, sizeof out), -1);
	n = body(b, 0, "a b.test"); /* space */
	assert_int_equal(tw_tls_sni_parse(b, n, out, sizeof out), -1);
	n = body(b, 0, "caf\xc3\xa9.test"); /* raw UTF-8 */
	assert_int_equal(tw_tls_sni_parse(b, n, out, sizeof out), -1);
	n = body(b, 0, "longer.than.eight");
	assert_int_equal(tw_tls_sni_parse(b, n, small, sizeof small), -1);
	char big[400];
	memset(big, 'a', sizeof big - 1);
	big[sizeof big - 1] = '\0';
	n = body(b, 0, big);
	assert_int_equal(tw_tls_sni_parse(b, n, out, sizeof out), -1); /* >= 256 */
	n = body(b, 0, "app.test");
	b[1]++; /* list length disagrees */
	assert_int_equal(tw_tls_sni_parse(b, n, out, sizeof out), -1);
	n = body(b, 0, "app.test");
	b[4] += 1; /* name longer than the list */
	assert_int_equal(tw_tls_sni_parse(b, n, out, sizeof out), -1);
	n = body(b, 5, "app.test"); /* no host_name entry */
	assert_int_equal(tw_tls_sni_parse(b, n, out, sizeof out), -1);
	/* every truncation of a valid body */
	n = body(b, 0, "truncated.example.com");
	for (size_t i = 0; i < n; i++)
		assert_int_equal(tw_tls_sni_parse(b, i, out, sizeof out), -1);
	assert_int_equal(tw_tls_sni_parse(b, n, out, sizeof out), 0);
}

static void random_bytes(void **state)
{
	unsigned char b[300];
	char out[256];
	srand(12345);
	for (int round = 0; round < 20000; round++) {
		size_t n = (size_t)(rand() % (int)sizeof b);
		for (size_t i = 0; i < n; i++)
			b[i] = (unsigned char)rand();
		if (n >= 2 && round % 2) { /* often a consistent outer length */
			b[0] = (unsigned char)((n - 2) >> 8);
			b[1] = (unsigned char)(n - 2);
		}
		if (tw_tls_sni_parse(b, n, out, sizeof out) == 0) {
			size_t l = strlen(out);
			assert_true(l > 0 && l < sizeof out);
			for (size_t i = 0; i < l; i++)
				assert_true(out[i] > 0x20 && out[i] < 0x7f && !(out[i] >= 'A' && out[i] <= 'Z'));
		}
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(good_names),
	    cmocka_unit_test(bad_names),
	    cmocka_unit_test(random_bytes),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
