/* Unit tests for src/edge/metrics.c: registration, shards, rendering. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <string.h>

#include "edge/metrics.h"

static void counters_sum_over_shards(void **state)
{
	tw_metrics_reset_for_tests();
	uint32_t a, b, a2;
	assert_int_equal(tw_metrics_register("t_total", "help", TW_METRIC_COUNTER, "x=\"1\"", &a), 0);
	assert_int_equal(tw_metrics_register("t_total", "help", TW_METRIC_COUNTER, "x=\"2\"", &b), 0);
	assert_int_equal(tw_metrics_register("t_total", "help", TW_METRIC_COUNTER, "x=\"1\"", &a2), 0);
	assert_int_equal(a, a2); /* same label set, same slot */
	struct tw_metrics_shard *s1, *s2;
	assert_int_equal(tw_metrics_add_shard(&s1), 0);
	assert_int_equal(tw_metrics_add_shard(&s2), 0);
	tw_metric_add(s1, a, 3);
	tw_metric_add(s2, a, 4);
	tw_metric_add(s2, b, 1);
	struct tw_dbuf out;
	tw_dbuf_init(&out, 1 << 20);
	assert_int_equal(tw_metrics_render(&out), 0);
	assert_non_null(strstr(out.data, "# TYPE t_total counter\n"));
	assert_non_null(strstr(out.data, "t_total{x=\"1\"} 7\n"));
	assert_non_null(strstr(out.data, "t_total{x=\"2\"} 1\n"));
	/* one HELP/TYPE block per family */
	assert_null(strstr(strstr(out.data, "# TYPE t_total") + 1, "# TYPE t_total"));
	tw_dbuf_free(&out);
	tw_metrics_reset_for_tests();
}

static void gauge_and_histogram(void **state)
{
	tw_metrics_reset_for_tests();
	uint32_t g, h;
	assert_int_equal(tw_metrics_register("g_active", "help", TW_METRIC_GAUGE, "", &g), 0);
	assert_int_equal(tw_metrics_register("h_seconds", "help", TW_METRIC_HISTOGRAM, "b=\"web\"", &h), 0);
	struct tw_metrics_shard *s1, *s2;
	tw_metrics_add_shard(&s1);
	tw_metrics_add_shard(&s2);
	tw_metric_add(s1, g, 5);
	tw_metric_sub(s2, g, 2); /* a shard may go negative; the sum may not */
	tw_metric_observe(s1, h, 500);     /* 0.5 ms -> first bucket */
	tw_metric_observe(s2, h, 30000);   /* 30 ms */
	tw_metric_observe(s2, h, 20000000); /* 20 s -> only +Inf */
	struct tw_dbuf out;
	tw_dbuf_init(&out, 1 << 20);
	assert_int_equal(tw_metrics_render(&out), 0);
	assert_non_null(strstr(out.data, "g_active 3\n"));
	assert_non_null(strstr(out.data, "h_seconds_bucket{b=\"web\",le=\"0.001\"} 1\n"));
	assert_non_null(strstr(out.data, "h_seconds_bucket{b=\"web\",le=\"0.05\"} 2\n"));
	assert_non_null(strstr(out.data, "h_seconds_bucket{b=\"web\",le=\"10\"} 2\n"));
	assert_non_null(strstr(out.data, "h_seconds_bucket{b=\"web\",le=\"+Inf\"} 3\n"));
	assert_non_null(strstr(out.data, "h_seconds_count{b=\"web\"} 3\n"));
	assert_non_null(strstr(out.data, "h_seconds_sum{b=\"web\"} 20.030500\n"));
	tw_dbuf_free(&out);
	tw_metrics_reset_for_tests();
}

static void escaping_and_limits(void **state)
{
	char buf[32];
	tw_metrics_escape("a\"b\\c\nd", buf, sizeof buf);
	assert_string_equal(buf, "a\\\"b\\\\c\\nd");
	tw_metrics_escape("0123456789abcdefghijklmnopqrstuvwxyz", buf, 10);
	assert_true(strlen(buf) < 10);
	tw_metrics_reset_for_tests();
	uint32_t slot;
	char lab[64];
	int rc = 0;
	for (int i = 0; i < (int)TW_METRICS_MAX + 1 && rc == 0; i++) {
		snprintf(lab, sizeof lab, "i=\"%d\"", i);
		rc = tw_metrics_register("many_total", "help", TW_METRIC_COUNTER, lab, &slot);
	}
	assert_int_equal(rc, -7 /* TW_ELIMIT */);
	tw_metrics_reset_for_tests();
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(counters_sum_over_shards),
		cmocka_unit_test(gauge_and_histogram),
		cmocka_unit_test(escaping_and_limits),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
