/* Unit tests for src/acme/renew.c: renewal windows (table-driven, incl. 6-
 * and 45-day certificates), ARI clamping, backoff with Retry-After. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include "acme/renew.h"
#include "core/err.h"

#define DAY 86400
#define HOUR 3600

static void default_windows(void **state)
{
	static const struct {
		time_t life;       /* notAfter - notBefore */
		time_t start, end; /* expected window, seconds after notBefore */
	} t[] = {
	    {90 * DAY, 60 * DAY, 60 * DAY + 90 * DAY / 20}, /* 1/3 left */
	    {45 * DAY, 30 * DAY, 30 * DAY + 45 * DAY / 20}, /* 1/3 left */
	    {6 * DAY, 3 * DAY, 3 * DAY + 6 * DAY / 20},     /* short: 1/2 left */
	    {10 * DAY, 10 * DAY - 10 * DAY / 3,
	     10 * DAY - 10 * DAY / 3 + DAY / 2}, /* 10 d: a third */
	    {10 * DAY - 1, (10 * DAY - 1) - (10 * DAY - 1) / 2,
	     (10 * DAY - 1) - (10 * DAY - 1) / 2 + (10 * DAY - 1) / 20},
	    {160 * HOUR, 80 * HOUR, 80 * HOUR + 8 * HOUR},
	};
	const time_t nb = 1700000000;
	for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
		struct tw_acme_window w = tw_acme_renew_window(nb, nb + t[i].life);
		assert_int_equal(w.start - nb, t[i].start);
		assert_int_equal(w.end - nb, t[i].end);
		struct tw_acme_window none = {0, 0};
		assert_int_equal(tw_acme_renew_at(nb, nb + t[i].life, 0, none, 0.0), w.start);
		time_t mid = tw_acme_renew_at(nb, nb + t[i].life, 0, none, 0.5);
		assert_int_equal(mid, w.start + (w.end - w.start) / 2);
		/* jitter outside [0,1) is treated as 0 */
		assert_int_equal(tw_acme_renew_at(nb, nb + t[i].life, 0, none, 1.5), w.start);
	}
}

static void always_before_last_twentieth(void **state)
{
	const time_t nb = 1000;
	for (time_t life = HOUR; life < 400 * DAY; life = life * 3 / 2) {
		for (int j = 0; j <= 10; j++) {
			struct tw_acme_window none = {0, 0};
			time_t at = tw_acme_renew_at(nb, nb + life, 0, none, j / 10.001);
			assert_true(at > nb);
			assert_true(at <= nb + life - life / 20);
		}
	}
}

static void ari_window_used_and_clamped(void **state)
{
	const time_t nb = 0, na = 90 * DAY;
	struct tw_acme_window ari = {50 * DAY, 52 * DAY};
	assert_int_equal(tw_acme_renew_at(nb, na, 1, ari, 0.0), 50 * DAY);
	assert_int_equal(tw_acme_renew_at(nb, na, 1, ari, 0.5), 51 * DAY);
	/* A window reaching into the last twentieth is cut at notAfter - L/20. */
	struct tw_acme_window late = {85 * DAY, 89 * DAY};
	assert_int_equal(tw_acme_renew_at(nb, na, 1, late, 0.0), 85 * DAY);
	assert_int_equal(tw_acme_renew_at(nb, na, 1, late, 0.5), na - na / 20);
	/* A window in the past (renew now) stays in the past. */
	struct tw_acme_window past = {-2 * DAY, -DAY};
	assert_true(tw_acme_renew_at(nb, na, 1, past, 0.3) < 0);
	/* An inverted window is a point. */
	struct tw_acme_window inv = {40 * DAY, 30 * DAY};
	assert_int_equal(tw_acme_renew_at(nb, na, 1, inv, 0.9), 40 * DAY);
}

static void backoff_table(void **state)
{
	static const struct {
		unsigned failures;
		uint64_t retry_after, want;
	} t[] = {
	    {1, 0, 60},    {2, 0, 120},    {3, 0, 240},           {8, 0, 7680},
	    {9, 0, 15360}, {10, 0, 21600}, {11, 0, 21600},        {1000, 0, 21600},
	    {1, 30, 60},   {1, 600, 600},  {10, 3600, 21600},     {10, 86400, 86400},
	    {0, 0, 60},    {3, 240, 240},  {1, 7 * DAY, 7 * DAY}, /* Retry-After: no cap */
	};
	for (size_t i = 0; i < sizeof t / sizeof t[0]; i++)
		assert_int_equal(tw_acme_backoff_s(t[i].failures, t[i].retry_after), t[i].want);
	/* acme: retry_min: 1s doubles from 1 s, still capped at 6 h. */
	assert_int_equal(tw_acme_backoff_from(1, 0, 1), 1);
	assert_int_equal(tw_acme_backoff_from(4, 0, 1), 8);
	assert_int_equal(tw_acme_backoff_from(40, 0, 1), 21600);
	assert_int_equal(tw_acme_backoff_from(2, 5, 1), 5);
}

static void retry_after_header(void **state)
{
	uint64_t s = 0;
	assert_int_equal(tw_acme_parse_retry_after("120", 0, &s), 0);
	assert_int_equal(s, 120);
	assert_int_equal(tw_acme_parse_retry_after(" 7\r\n", 0, &s), 0);
	assert_int_equal(s, 7);
	/* Wed, 21 Oct 2015 07:28:00 GMT = 1445412480 */
	assert_int_equal(tw_acme_parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", 1445412450, &s),
	                 0);
	assert_int_equal(s, 30);
	assert_int_equal(tw_acme_parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", 1445412490, &s),
	                 0);
	assert_int_equal(s, 0);
	assert_int_equal(tw_acme_parse_retry_after("soon", 0, &s), TW_EINVAL);
	assert_int_equal(tw_acme_parse_retry_after("-5", 0, &s), TW_EINVAL);
	assert_int_equal(tw_acme_parse_retry_after("12x", 0, &s), TW_EINVAL);
	assert_int_equal(tw_acme_parse_retry_after("99999999999999999999", 0, &s), TW_EINVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(default_windows),
	    cmocka_unit_test(always_before_last_twentieth),
	    cmocka_unit_test(ari_window_used_and_clamped),
	    cmocka_unit_test(backoff_table),
	    cmocka_unit_test(retry_after_header),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
