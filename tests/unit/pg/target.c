/* Unit tests for src/pg/target.c: recovery target times, quoting of
 * postgresql.conf values and shell words. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/err.h"
#include "pg/pitr.h"

static void times(void **state)
{
	(void)state;
	int64_t ns;
	const int64_t base = (int64_t)1796629077 * 1000000000; /* 2026-12-07 07:37:57Z */
	assert_int_equal(tw_pitr_parse_time("2026-12-07 07:37:57+00", &ns), 0);
	assert_true(ns == base);
	assert_int_equal(tw_pitr_parse_time("2026-12-07T07:37:57Z", &ns), 0);
	assert_true(ns == base);
	assert_int_equal(tw_pitr_parse_time("2026-12-07 07:37:57.692961+00", &ns), 0);
	assert_true(ns == base + 692961000);
	assert_int_equal(tw_pitr_parse_time("2026-12-07 09:37:57+02:00", &ns), 0);
	assert_true(ns == base);
	assert_int_equal(tw_pitr_parse_time("2026-12-07 02:07:57-0530", &ns), 0);
	assert_true(ns == base);
	assert_int_equal(tw_pitr_parse_time("2026-12-07 07:37:57 UTC", &ns), 0);
	assert_true(ns == base);
	/* no zone: local time */
	setenv("TZ", "UTC", 1);
	tzset();
	assert_int_equal(tw_pitr_parse_time("2026-12-07 07:37:57", &ns), 0);
	assert_true(ns == base);
	const char *bad[] = {"",
	                     "2026-12-07",
	                     "2026-13-07 00:00:00",
	                     "2026-12-07 24:00:00",
	                     "2026-12-07 07:37:57+",
	                     "2026-12-07 07:37:57 PST",
	                     "yesterday",
	                     "2026-12-07 07:37:57.",
	                     "2026-12-07 07:37:57+00 junk"};
	for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
		assert_int_equal(tw_pitr_parse_time(bad[i], &ns), TW_EINVAL);
}

static void quoting(void **state)
{
	(void)state;
	char b[64];
	assert_int_equal(tw_pitr_conf_quote("it's", b, sizeof b), 0);
	assert_string_equal(b, "'it''s'");
	assert_int_equal(tw_pitr_conf_quote("a\nrestore_command='x'", b, sizeof b), TW_EINVAL);
	assert_int_equal(tw_pitr_conf_quote("a\\b", b, sizeof b), TW_EINVAL);
	assert_int_equal(tw_pitr_sh_quote("/tmp/a b/it's", b, sizeof b), 0);
	assert_string_equal(b, "'/tmp/a b/it'\\''s'");
	assert_int_equal(tw_pitr_sh_quote("", b, sizeof b), 0);
	assert_string_equal(b, "''");
	assert_int_equal(tw_pitr_sh_quote("0123456789", b, 8), TW_ELIMIT);
}

int main(void)
{
	const struct CMUnitTest tests[] = {cmocka_unit_test(times), cmocka_unit_test(quoting)};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
