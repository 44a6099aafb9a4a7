/* Unit tests for src/http/keepalive.c: Keep-Alive header parameters. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include "http/keepalive.h"

static struct tw_keepalive parse(const char *s)
{
	/* an exact-size heap copy: ASan catches a read past the slice */
	size_t n = strlen(s);
	char *copy = malloc(n ? n : 1);
	assert_non_null(copy);
	memcpy(copy, s, n);
	struct tw_keepalive ka;
	tw_keepalive_parse(copy, n, &ka);
	free(copy);
	return ka;
}

static void common_forms(void **state)
{
	(void)state;
	struct tw_keepalive ka = parse("timeout=5, max=100");
	assert_int_equal(ka.timeout_s, 5);
	assert_int_equal(ka.max, 100);
	ka = parse("timeout=5");
	assert_int_equal(ka.timeout_s, 5);
	assert_int_equal(ka.max, -1);
	ka = parse("max=0");
	assert_int_equal(ka.timeout_s, -1);
	assert_int_equal(ka.max, 0);
	ka = parse(" Timeout = \"30\" ,MAX=7");
	assert_int_equal(ka.timeout_s, 30);
	assert_int_equal(ka.max, 7);
}

static void malformed_and_extremes(void **state)
{
	(void)state;
	struct tw_keepalive ka = parse("");
	assert_int_equal(ka.timeout_s, -1);
	assert_int_equal(ka.max, -1);
	ka = parse("timeout=, max=x, =3, timeout=5x, ,,");
	assert_int_equal(ka.timeout_s, -1);
	assert_int_equal(ka.max, -1);
	ka = parse("timeout=99999999999999999999999");
	assert_int_equal(ka.timeout_s, TW_KEEPALIVE_CAP);
	ka = parse("timeouts=5, xmax=1, timeout=4, timeout=9"); /* other names; the first valid wins */
	assert_int_equal(ka.timeout_s, 4);
	assert_int_equal(ka.max, -1);
	ka = parse("timeout=-1");
	assert_int_equal(ka.timeout_s, -1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(common_forms),
	    cmocka_unit_test(malformed_and_extremes),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
