/* Unit tests for src/k8s/lease.c: the pure leader-election decision on our
 * own clock, Lease parsing, and the RFC 3339 micro time format. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <string.h>

#include "k8s/lease.h"

static struct tw_k8s_lease_obs obs(const char *holder, unsigned dur_s, const char *rv)
{
	struct tw_k8s_lease_obs o = {.exists = 1, .duration_ms = dur_s * 1000u};
	snprintf(o.holder, sizeof o.holder, "%s", holder);
	snprintf(o.rv, sizeof o.rv, "%s", rv);
	return o;
}

static void decide(void **state)
{
	struct tw_k8s_lease_clock ck = {0};
	struct tw_k8s_lease_obs none = {0};
	const uint64_t D = 15000;
	tw_k8s_lease_observe(&ck, &none, 1000);
	assert_int_equal(tw_k8s_lease_decide(&ck, &none, "me", 1000, D), TW_K8S_LEASE_CREATE);

	/* someone else's, fresh: wait; stays the same version for a whole duration: take */
	struct tw_k8s_lease_obs o = obs("other", 15, "5");
	tw_k8s_lease_observe(&ck, &o, 2000);
	assert_int_equal(tw_k8s_lease_decide(&ck, &o, "me", 2000, D), TW_K8S_LEASE_WAIT);
	assert_int_equal(tw_k8s_lease_decide(&ck, &o, "me", 2000 + D - 1, D), TW_K8S_LEASE_WAIT);
	tw_k8s_lease_observe(&ck, &o, 2000 + D);
	assert_int_equal(tw_k8s_lease_decide(&ck, &o, "me", 2000 + D, D), TW_K8S_LEASE_TAKE);

	/* a renewal (new version) restarts our clock */
	o = obs("other", 15, "6");
	tw_k8s_lease_observe(&ck, &o, 2000 + D + 10);
	assert_int_equal(tw_k8s_lease_decide(&ck, &o, "me", 2000 + D + 10, D), TW_K8S_LEASE_WAIT);
	assert_int_equal(tw_k8s_lease_decide(&ck, &o, "me", 2000 + 2 * D + 9, D),
	                 TW_K8S_LEASE_WAIT);
	assert_int_equal(tw_k8s_lease_decide(&ck, &o, "me", 2000 + 2 * D + 10, D),
	                 TW_K8S_LEASE_TAKE);

	/* the lease's own duration wins over ours */
	o = obs("other", 60, "7");
	tw_k8s_lease_observe(&ck, &o, 100000);
	assert_int_equal(tw_k8s_lease_decide(&ck, &o, "me", 100000 + D, D), TW_K8S_LEASE_WAIT);
	assert_int_equal(tw_k8s_lease_decide(&ck, &o, "me", 160000, D), TW_K8S_LEASE_TAKE);

	/* a version we have not observed is never expired, whatever the clock */
	struct tw_k8s_lease_clock fresh = {0};
	o = obs("other", 1, "8");
	assert_int_equal(tw_k8s_lease_decide(&fresh, &o, "me", 999999999, D), TW_K8S_LEASE_WAIT);

	/* released: take at once; ours: renew */
	o = obs("", 15, "9");
	assert_int_equal(tw_k8s_lease_decide(&ck, &o, "me", 0, D), TW_K8S_LEASE_TAKE);
	o = obs("me", 15, "9");
	assert_int_equal(tw_k8s_lease_decide(&ck, &o, "me", 0, D), TW_K8S_LEASE_RENEW);
}

static void leader_flag(void **state)
{
	struct tw_k8s_lease_clock ck = {0};
	assert_false(tw_k8s_lease_is_leader(&ck, 5000, 15000));
	ck.renewed_at_ms = 1000;
	assert_true(tw_k8s_lease_is_leader(&ck, 1000, 15000));
	assert_true(tw_k8s_lease_is_leader(&ck, 15999, 15000));
	assert_false(
	    tw_k8s_lease_is_leader(&ck, 16000, 15000)); /* step down before others take over */
}

static void parse(void **state)
{
	struct tw_k8s_lease_obs o;
	assert_int_equal(tw_k8s_lease_parse(NULL, &o), 0);
	assert_int_equal(o.exists, 0);
	json_t *l =
	    json_pack("{s:{s:s}, s:{s:s, s:i, s:i}}", "metadata", "resourceVersion", "42", "spec",
	              "holderIdentity", "pod-a", "leaseDurationSeconds", 15, "leaseTransitions", 3);
	assert_int_equal(tw_k8s_lease_parse(l, &o), 0);
	assert_int_equal(o.exists, 1);
	assert_string_equal(o.holder, "pod-a");
	assert_string_equal(o.rv, "42");
	assert_int_equal(o.duration_ms, 15000);
	assert_int_equal(o.transitions, 3);
	json_decref(l);
	l = json_pack("{s:{}}", "metadata");
	assert_int_equal(tw_k8s_lease_parse(l, &o), TW_EPROTO);
	json_decref(l);
	/* a spec without holder or duration */
	l = json_pack("{s:{s:s}}", "metadata", "resourceVersion", "1");
	assert_int_equal(tw_k8s_lease_parse(l, &o), 0);
	assert_string_equal(o.holder, "");
	assert_int_equal(o.duration_ms, 0);
	json_decref(l);
}

static void micro_time(void **state)
{
	struct timespec t = {1796628432, 123456789};
	char b[40];
	tw_k8s_time_micro(&t, b, sizeof b);
	assert_string_equal(b, "2026-12-07T07:27:12.123456Z");
	t.tv_nsec = 0;
	tw_k8s_time_micro(&t, b, sizeof b);
	assert_string_equal(b, "2026-12-07T07:27:12.000000Z");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(decide),
	    cmocka_unit_test(leader_flag),
	    cmocka_unit_test(parse),
	    cmocka_unit_test(micro_time),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
