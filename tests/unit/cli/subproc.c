/* Unit tests for src/cli/subproc.c: exit codes, output caps, deadlines. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>
#include <time.h>

#include "cli/subproc.h"
#include "core/dbuf.h"
#include "core/err.h"

static void captures_stdout_and_status(void **state)
{
	char *argv[] = {"sh", "-c", "echo out; echo err >&2; exit 3", NULL};
	struct tw_dbuf b;
	struct tw_err e = {0};
	int status = -1;
	tw_dbuf_init(&b, 1024);
	assert_int_equal(tw_subproc_capture(argv, 1, 5000, &b, &status, &e), 0);
	assert_int_equal(status, 3);
	assert_true(b.len == 8 && memcmp(b.data, "out\nerr\n", 8) == 0);
	tw_dbuf_free(&b);
}

static void missing_program_is_enoent(void **state)
{
	char *argv[] = {"tapwork-no-such-program-xyz", NULL};
	struct tw_dbuf b;
	struct tw_err e = {0};
	int status = 0;
	tw_dbuf_init(&b, 1024);
	assert_int_equal(tw_subproc_capture(argv, 0, 1000, &b, &status, &e), TW_ENOENT);
	assert_int_equal(status, -1);
	assert_non_null(strstr(e.msg, "tapwork-no-such-program-xyz"));
	tw_dbuf_free(&b);
}

static void output_cap_kills_the_child(void **state)
{
	char *argv[] = {"yes", NULL};
	struct tw_dbuf b;
	struct tw_err e = {0};
	int status = 0;
	tw_dbuf_init(&b, 10000);
	assert_int_equal(tw_subproc_capture(argv, 0, 5000, &b, &status, &e), TW_ELIMIT);
	assert_true(b.len <= 10000);
	tw_dbuf_free(&b);
}

static void deadline_kills_the_child(void **state)
{
	char *argv[] = {"sleep", "10", NULL};
	struct tw_dbuf b;
	struct tw_err e = {0};
	int status = 0;
	struct timespec t0, t1;
	tw_dbuf_init(&b, 1024);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	assert_int_equal(tw_subproc_capture(argv, 0, 200, &b, &status, &e), TW_ETIMEDOUT);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	long ms = (t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000;
	assert_true(ms >= 190 && ms < 3000);
	tw_dbuf_free(&b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(captures_stdout_and_status),
	    cmocka_unit_test(missing_program_is_enoent),
	    cmocka_unit_test(output_cap_kills_the_child),
	    cmocka_unit_test(deadline_kills_the_child),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
