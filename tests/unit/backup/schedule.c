/* Unit tests for src/backup/schedule.c (parse forms, next fire time in UTC)
 * and src/backup/pg.c's URL handling (password never left in the URL). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "backup/pg.h"
#include "backup/schedule.h"

static int64_t at(int y, int mo, int d, int h, int mi, int s)
{
	struct tm tm;
	memset(&tm, 0, sizeof tm);
	tm.tm_year = y - 1900;
	tm.tm_mon = mo - 1;
	tm.tm_mday = d;
	tm.tm_hour = h;
	tm.tm_min = mi;
	tm.tm_sec = s;
	return (int64_t)timegm(&tm);
}

static int64_t next_of(const char *spec, int64_t t)
{
	struct tw_sched s;
	char why[256];
	assert_int_equal(tw_sched_parse(spec, &s, why, sizeof why), 0);
	return tw_sched_next(&s, t, 1);
}

static void test_forms(void **st)
{
	(void)st;
	int64_t t = at(2026, 11, 25, 21, 40, 10); /* a Wednesday */
	assert_true(next_of("hourly", t) == at(2026, 11, 25, 22, 0, 0));
	assert_true(next_of("daily", t) == at(2026, 11, 26, 0, 0, 0));
	assert_true(next_of("daily 02:30", t) == at(2026, 11, 26, 2, 30, 0));
	assert_true(next_of("daily 21:45", t) == at(2026, 11, 25, 21, 45, 0));
	assert_true(next_of("weekly sun 03:00", t) == at(2026, 11, 29, 3, 0, 0));
	assert_true(next_of("weekly", t) == at(2026, 11, 29, 0, 0, 0));
	assert_true(next_of("monthly", t) == at(2026, 12, 1, 0, 0, 0));
	assert_true(next_of("every 6h", t) == at(2026, 11, 26, 0, 0, 0));
	assert_true(next_of("every 5s", t) == t + 5);
	assert_true(next_of("every 5s", t + 1) == t + 5);
	assert_true(next_of("15 3 * * *", t) == at(2026, 11, 26, 3, 15, 0));
	assert_true(next_of("*/20 * * * *", t) == at(2026, 11, 25, 22, 0, 0));
	assert_true(next_of("0 0 29 2 *", t) == at(2028, 2, 29, 0, 0, 0));
	/* DOM and DOW both restricted: either matches (1st of month or a Monday) */
	assert_true(next_of("0 12 1 * 1", t) == at(2026, 11, 30, 12, 0, 0));
	assert_true(next_of("0 12 * * 7", t) == at(2026, 11, 29, 12, 0, 0)); /* 7 = Sunday */
	assert_true(next_of("30 1-3/2 * 1,6 *", t) == at(2027, 1, 1, 1, 30, 0));
	/* strictly after: a time on the schedule gives the next one */
	assert_true(next_of("daily 02:30", at(2026, 11, 26, 2, 30, 0)) == at(2026, 11, 27, 2, 30, 0));
}

static void test_rejects(void **st)
{
	(void)st;
	const char *bad[] = {"", "daily 25:00", "weekly xyz", "every", "every 0s", "every 5w",
			     "* * * *", "60 * * * *", "* 24 * * *", "* * 0 * *", "* * * 13 *",
			     "* * * * 8", "*/0 * * * *", "5-1 * * * *", "1,,2 * * * *",
			     "every tuesday", "daily 2:3x"};
	for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
		struct tw_sched s;
		char why[256] = "";
		assert_int_not_equal(tw_sched_parse(bad[i], &s, why, sizeof why), 0);
		assert_non_null(strstr(why, "bad schedule"));
	}
}

static void test_pg_url(void **st)
{
	(void)st;
	struct tw_pg_conn c;
	struct tw_err e = {0};
	assert_int_equal(tw_pg_conn_parse("postgresql://app:s%40cret@db:5433/my%20db?sslmode=require",
					  &c, &e), 0);
	assert_string_equal(c.password, "s@cret");
	assert_string_equal(c.dbname, "my db");
	assert_null(strstr(c.url, "cret"));
	assert_string_equal(c.url, "postgresql://app@db:5433/my%20db?sslmode=require");
	char *u = tw_pg_conn_with_db(&c, "other/db");
	assert_string_equal(u, "postgresql://app@db:5433/other%2Fdb?sslmode=require");
	free(u);
	tw_pg_conn_free(&c);
	assert_int_equal(tw_pg_conn_parse("postgres://db", &c, &e), 0);
	assert_null(c.dbname);
	assert_null(c.password);
	u = tw_pg_conn_with_db(&c, "x");
	assert_string_equal(u, "postgres://db/x");
	free(u);
	tw_pg_conn_free(&c);
	assert_int_not_equal(tw_pg_conn_parse("mysql://db/x", &c, &e), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_forms),
	    cmocka_unit_test(test_rejects),
	    cmocka_unit_test(test_pg_url),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
