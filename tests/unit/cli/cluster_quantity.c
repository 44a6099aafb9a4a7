/* Unit tests for tw_cluster_parse_quantity (src/cli/cmd_cluster.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include "cli/cluster.h"
#include "core/err.h"

static int q(const char *s, unsigned long long *v)
{
	return tw_cluster_parse_quantity(s, strlen(s), v);
}

static void quantities_parse(void **state)
{
	static const struct {
		const char *s;
		unsigned long long milli;
	} ok[] = {
	    {"4", 4000},
	    {"3500m", 3500},
	    {"3920m", 3920},
	    {"0.5", 500},
	    {"1.25", 1250},
	    {"+2", 2000},
	    {"16Gi", 16ULL * 1024 * 1024 * 1024 * 1000},
	    {"16393216Ki", 16393216ULL * 1024 * 1000},
	    {"1.5Gi", 1536ULL * 1024 * 1024 * 1000},
	    {"2k", 2000000},
	    {"1M", 1000000000ULL},
	    {"2e3", 2000000},
	    {"15E-1", 1500},
	};
	for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
		unsigned long long v = 0;
		assert_int_equal(q(ok[i].s, &v), 0);
		assert_true(v == ok[i].milli);
	}
	unsigned long long v = 0;
	/* 1Ei in thousandths is 1.15e21: more than 64 bits hold. */
	assert_int_equal(q("1Ei", &v), TW_ELIMIT);
	assert_int_equal(q("99999999999999999999", &v), TW_ELIMIT);
}

static void quantities_reject(void **state)
{
	const char *bad[] = {"",     "m",  "Gi",  "-4",    "4x", "4 Gi",
	                     "4KiB", "1e", "1e+", "4.Gix", "..1"};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		unsigned long long v = 0;
		assert_int_equal(q(bad[i], &v), TW_EINVAL);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(quantities_parse),
	    cmocka_unit_test(quantities_reject),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
