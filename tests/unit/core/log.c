/* Unit tests for src/core/log.c: the per-kind rate limit of per-event lines. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "core/log.h"

static char captured[65536];

static FILE *capture(void)
{
	memset(captured, 0, sizeof captured);
	FILE *f = fmemopen(captured, sizeof captured - 1, "w");
	assert_non_null(f);
	tw_log_set_stream(f);
	return f;
}

static void wait_next_second(void)
{
	struct timespec a, b;
	clock_gettime(CLOCK_MONOTONIC_COARSE, &a);
	do {
		struct timespec d = {0, 20 * 1000 * 1000};
		nanosleep(&d, NULL);
		clock_gettime(CLOCK_MONOTONIC_COARSE, &b);
	} while (b.tv_sec == a.tv_sec);
}

static unsigned count(const char *hay, const char *needle)
{
	unsigned n = 0;
	for (const char *p = strstr(hay, needle); p; p = strstr(p + 1, needle))
		n++;
	return n;
}

static void burst_then_summary(void **state)
{
	(void)state;
	FILE *f = capture();
	tw_log_burst = 3;
	unsigned long long before = tw_log_suppressed_total();
	wait_next_second();
	for (int i = 0; i < 10; i++)
		tw_warn_rl("test kind", "event %d", i);
	fflush(f);
	assert_int_equal(count(captured, "warn event "), 3);
	assert_int_equal(tw_log_suppressed_total() - before, 7);
	assert_int_equal(count(captured, "more like this"), 0);
	wait_next_second();
	tw_log_limits_flush();
	fflush(f);
	assert_non_null(strstr(captured, "warn ... and 7 more like this in the last second (test kind)\n"));
	/* a flush with nothing new writes nothing more */
	tw_log_limits_flush();
	fflush(f);
	assert_int_equal(count(captured, "more like this"), 1);
	tw_log_set_stream(NULL);
	fclose(f);
}

static void kinds_are_separate_and_zero_is_unlimited(void **state)
{
	(void)state;
	FILE *f = capture();
	tw_log_burst = 2;
	wait_next_second();
	for (int i = 0; i < 5; i++) {
		tw_info_rl("kind a", "a-line %d", i);
		tw_info_rl("kind b", "b-line %d", i);
	}
	fflush(f);
	assert_int_equal(count(captured, "a-line"), 2);
	assert_int_equal(count(captured, "b-line"), 2);
	tw_log_burst = 0;
	for (int i = 0; i < 50; i++)
		tw_info_rl("kind c", "c-line %d", i);
	fflush(f);
	assert_int_equal(count(captured, "c-line"), 50);
	/* below the level: neither written nor counted */
	unsigned long long before = tw_log_suppressed_total();
	tw_log_burst = 1;
	tw_log_level = TW_LOG_WARN;
	for (int i = 0; i < 5; i++)
		tw_info_rl("kind d", "d-line %d", i);
	assert_int_equal(tw_log_suppressed_total(), before);
	tw_log_level = TW_LOG_INFO;
	tw_log_set_stream(NULL);
	fclose(f);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(burst_then_summary),
		cmocka_unit_test(kinds_are_separate_and_zero_is_unlimited),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
