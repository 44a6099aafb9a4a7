/* Unit tests for src/backup/retention.c: keep rules, table-driven on
 * synthetic snapshot times. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "backup/retention.h"

static int64_t at(int y, int mo, int d, int h, int mi)
{
	struct tm tm;
	memset(&tm, 0, sizeof tm);
	tm.tm_year = y - 1900;
	tm.tm_mon = mo - 1;
	tm.tm_mday = d;
	tm.tm_hour = h;
	tm.tm_min = mi;
	return (int64_t)timegm(&tm) * 1000000000;
}

/* snapshots, newest first */
#define NS 12
static int64_t times[NS];
static char *tag_daily[] = {"important"};

static void fill(struct tw_ret_item *it)
{
	times[0] = at(2027, 3, 1, 12, 0);   /* Mon, ISO 2027-W09 */
	times[1] = at(2027, 2, 28, 23, 59); /* Sun, W08 */
	times[2] = at(2027, 2, 28, 8, 0);   /* W08 */
	times[3] = at(2027, 2, 22, 8, 0);   /* Mon, W08 */
	times[4] = at(2027, 2, 21, 8, 0);   /* Sun, W07 */
	times[5] = at(2027, 1, 15, 8, 30);
	times[6] = at(2027, 1, 15, 8, 10);  /* same hour as [5] */
	times[7] = at(2027, 1, 1, 0, 0);    /* Fri, ISO 2026-W53 */
	times[8] = at(2026, 12, 31, 23, 0); /* Thu, 2026-W53 */
	times[9] = at(2026, 6, 1, 0, 0);
	times[10] = at(2025, 6, 1, 0, 0);
	times[11] = at(2024, 6, 1, 0, 0);
	for (int i = 0; i < NS; i++) {
		memset(&it[i], 0, sizeof it[i]);
		it[i].time_ns = times[i];
		if (i == 10) {
			it[i].tags = tag_daily;
			it[i].ntags = 1;
		}
	}
}

struct row {
	const char *name;
	struct tw_keep_policy p;
	const char *expect; /* one char per snapshot, newest first: k keep, - remove */
};

static char *important[] = {"important"};

static const struct row rows[] = {
	{"last 3", {.last = 3}, "kkk---------"},
	{"last -1", {.last = -1}, "kkkkkkkkkkkk"},
	{"hourly 6", {.hourly = 6}, "kkkkkk------"},
	{"hourly 7 skips the older one of an hour", {.hourly = 7}, "kkkkkk-k----"},
	{"daily 3", {.daily = 3}, "kk-k--------"},
	{"daily 6", {.daily = 6}, "kk-kkk-k----"},
	{"weekly 3 (ISO weeks)", {.weekly = 3}, "kk--k-------"},
	{"weekly 5: W53 spans two years", {.weekly = 5}, "kk--kk-k----"},
	{"monthly 4", {.monthly = 4}, "kk---k--k---"},
	{"yearly 10: the newest of each year", {.yearly = 10}, "k-------k-kk"},
	{"tag", {.tags = important, .ntags = 1}, "----------k-"},
	{"last 1 + monthly 2", {.last = 1, .monthly = 2}, "kk----------"},
	{"daily 2 + yearly 2", {.daily = 2, .yearly = 2}, "kk------k---"},
};

static void table(void **state)
{
	struct tw_ret_item it[NS];
	int bad = 0;
	for (size_t r = 0; r < sizeof rows / sizeof rows[0]; r++) {
		fill(it);
		tw_retention_apply(it, NS, &rows[r].p);
		char got[NS + 1];
		for (int i = 0; i < NS; i++)
			got[i] = it[i].keep ? 'k' : '-';
		got[NS] = '\0';
		if (strcmp(got, rows[r].expect) != 0) {
			print_error("%s: got %s want %s\n", rows[r].name, got, rows[r].expect);
			bad++;
		}
	}
	assert_int_equal(bad, 0);
}

static void buckets_and_reasons(void **state)
{
	/* ISO week: 2027-01-01 belongs to 2026-W53; 2027-01-04 to 2027-W01 */
	assert_int_equal(tw_retention_bucket(at(2027, 1, 1, 0, 0), 2), 202653);
	assert_int_equal(tw_retention_bucket(at(2027, 1, 4, 0, 0), 2), 202701);
	assert_int_equal(tw_retention_bucket(at(2027, 1, 4, 13, 0), 0), 2027010413);
	assert_int_equal(tw_retention_bucket(at(2027, 1, 4, 13, 0), 3), 202701);
	struct tw_ret_item it[NS];
	fill(it);
	struct tw_keep_policy p = {.last = 1, .daily = 1};
	tw_retention_apply(it, NS, &p);
	assert_string_equal(it[0].reason, "last,daily");
	assert_string_equal(it[1].reason, "");
	struct tw_keep_policy none = {0};
	assert_true(tw_retention_empty(&none));
	assert_false(tw_retention_empty(&p));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(table),
		cmocka_unit_test(buckets_and_reasons),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
