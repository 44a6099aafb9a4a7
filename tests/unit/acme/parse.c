/* Unit tests for src/acme/parse.c: directory, order, authorization,
 * problem and renewalInfo documents; RFC 3339 times. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include "acme/parse.h"

#define S(x) x, strlen(x)

static void directory(void **state)
{
	struct tw_arena a;
	struct tw_acme_dir d;
	struct tw_err e = {0};
	tw_arena_init(&a, 1024);
	const char *doc = "{\"newNonce\":\"https://ca/nonce\",\"newAccount\":\"https://ca/acct\","
	                  "\"newOrder\":\"https://ca/order\",\"revokeCert\":\"https://ca/revoke\","
	                  "\"renewalInfo\":\"https://ca/ari/\",\"meta\":{\"termsOfService\":"
	                  "\"https://ca/tos\",\"externalAccountRequired\":true,\"profiles\":"
	                  "{\"classic\":\"x\",\"tlsserver\":\"y\"}}}";
	assert_int_equal(tw_acme_parse_dir(S(doc), &a, &d, &e), 0);
	assert_string_equal(d.new_nonce, "https://ca/nonce");
	assert_string_equal(d.new_order, "https://ca/order");
	assert_string_equal(d.renewal_info, "https://ca/ari/");
	assert_string_equal(d.terms, "https://ca/tos");
	assert_int_equal(d.eab_required, 1);
	assert_int_equal(d.nprofiles, 2);
	const char *noari = "{\"newNonce\":\"https://ca/n\",\"newAccount\":\"https://ca/a\","
	                    "\"newOrder\":\"https://ca/o\"}";
	assert_int_equal(tw_acme_parse_dir(S(noari), &a, &d, &e), 0);
	assert_null(d.renewal_info);
	assert_int_equal(d.eab_required, 0);
	const char *missing = "{\"newNonce\":\"https://ca/n\",\"newOrder\":\"https://ca/o\"}";
	assert_int_equal(tw_acme_parse_dir(S(missing), &a, &d, &e), TW_EPROTO);
	assert_non_null(strstr(e.msg, "newAccount"));
	const char *notstr =
	    "{\"newNonce\":1,\"newAccount\":\"https://a\",\"newOrder\":\"https://o\"}";
	assert_int_equal(tw_acme_parse_dir(S(notstr), &a, &d, &e), TW_EPROTO);
	const char *scheme =
	    "{\"newNonce\":\"file:///x\",\"newAccount\":\"https://a\",\"newOrder\":\"https://o\"}";
	assert_int_equal(tw_acme_parse_dir(S(scheme), &a, &d, &e), TW_EPROTO);
	assert_int_equal(tw_acme_parse_dir(S("[1,2]"), &a, &d, &e), TW_EPROTO);
	assert_int_equal(tw_acme_parse_dir(S("{\"a\":"), &a, &d, &e), TW_EPROTO);
	assert_int_equal(tw_acme_parse_dir(S("{\"a\":1,\"a\":2}"), &a, &d, &e), TW_EPROTO);
	tw_arena_free(&a);
}

static void order_and_problem(void **state)
{
	struct tw_arena a;
	struct tw_acme_order o;
	struct tw_acme_problem p;
	struct tw_err e = {0};
	tw_arena_init(&a, 1024);
	const char *doc = "{\"status\":\"pending\",\"expires\":\"2026-01-01T00:00:00Z\","
	                  "\"identifiers\":[{\"type\":\"dns\",\"value\":\"a.example\"}],"
	                  "\"authorizations\":[\"https://ca/authz/1\",\"https://ca/authz/2\"],"
	                  "\"finalize\":\"https://ca/finalize/1\"}";
	assert_int_equal(tw_acme_parse_order(S(doc), &a, &o, &e), 0);
	assert_int_equal(o.status, TW_ACME_ST_PENDING);
	assert_int_equal(o.nauthz, 2);
	assert_string_equal(o.authz[1], "https://ca/authz/2");
	assert_null(o.certificate);
	assert_string_equal(o.error.type, "");
	const char *inval = "{\"status\":\"invalid\",\"authorizations\":[\"https://ca/z\"],"
	                    "\"finalize\":\"https://ca/f\",\"error\":{\"type\":"
	                    "\"urn:ietf:params:acme:error:unauthorized\",\"detail\":\"no\"}}";
	assert_int_equal(tw_acme_parse_order(S(inval), &a, &o, &e), 0);
	assert_int_equal(o.status, TW_ACME_ST_INVALID);
	assert_string_equal(o.error.detail, "no");
	assert_int_equal(
	    tw_acme_parse_order(S("{\"status\":\"bogus\",\"authorizations\":[\"https://x\"],"
	                          "\"finalize\":\"https://f\"}"),
	                        &a, &o, &e),
	    TW_EPROTO);
	assert_int_equal(tw_acme_parse_order(S("{\"status\":\"ready\",\"authorizations\":[],"
	                                       "\"finalize\":\"https://f\"}"),
	                                     &a, &o, &e),
	                 TW_EPROTO);
	assert_int_equal(tw_acme_parse_order(S("{\"status\":\"ready\",\"authorizations\":[7],"
	                                       "\"finalize\":\"https://f\"}"),
	                                     &a, &o, &e),
	                 TW_EPROTO);
	const char *prob = "{\"type\":\"urn:ietf:params:acme:error:badNonce\",\"detail\":\"stale\","
	                   "\"status\":400}";
	assert_int_equal(tw_acme_parse_problem(S(prob), &a, &p, &e), 0);
	assert_string_equal(p.type, "urn:ietf:params:acme:error:badNonce");
	assert_string_equal(p.detail, "stale");
	assert_int_equal(p.status, 400);
	const char *sub = "{\"type\":\"urn:ietf:params:acme:error:compound\",\"subproblems\":"
	                  "[{\"type\":\"x\",\"detail\":\"first sub\"}]}";
	assert_int_equal(tw_acme_parse_problem(S(sub), &a, &p, &e), 0);
	assert_string_equal(p.detail, "first sub");
	tw_arena_free(&a);
}

static void authorization(void **state)
{
	struct tw_arena a;
	struct tw_acme_authz z;
	struct tw_err e = {0};
	tw_arena_init(&a, 1024);
	const char *doc =
	    "{\"status\":\"pending\",\"identifier\":{\"type\":\"dns\",\"value\":"
	    "\"example.com\"},\"wildcard\":true,\"challenges\":[{\"type\":\"dns-01\","
	    "\"url\":\"https://ca/chal/1\",\"token\":\"abc-_XYZ09\",\"status\":"
	    "\"pending\"},{\"type\":\"http-01\",\"url\":\"https://ca/chal/2\",\"status\":"
	    "\"invalid\",\"token\":\"t\",\"error\":{\"detail\":\"refused\"}}]}";
	assert_int_equal(tw_acme_parse_authz(S(doc), &a, &z, &e), 0);
	assert_string_equal(z.ident, "example.com");
	assert_int_equal(z.wildcard, 1);
	assert_int_equal(z.nchal, 2);
	assert_string_equal(z.chal[0].token, "abc-_XYZ09");
	assert_int_equal(z.chal[1].status, TW_ACME_ST_INVALID);
	assert_string_equal(z.chal[1].error.detail, "refused");
	/* Tokens end up in paths: only base64url characters. */
	const char *bad = "{\"status\":\"pending\",\"identifier\":{\"value\":\"x\"},\"challenges\":"
	                  "[{\"type\":\"http-01\",\"url\":\"https://c\",\"token\":\"../../etc\"}]}";
	assert_int_equal(tw_acme_parse_authz(S(bad), &a, &z, &e), TW_EPROTO);
	const char *noid = "{\"status\":\"pending\",\"challenges\":[]}";
	assert_int_equal(tw_acme_parse_authz(S(noid), &a, &z, &e), TW_EPROTO);
	tw_arena_free(&a);
}

static void renewal_info_and_time(void **state)
{
	struct tw_arena a;
	struct tw_acme_renewal_info r;
	struct tw_err e = {0};
	time_t t;
	tw_arena_init(&a, 1024);
	const char *doc = "{\"suggestedWindow\":{\"start\":\"2025-01-02T04:00:00Z\",\"end\":"
	                  "\"2025-01-03T04:00:00Z\"},\"explanationURL\":\"https://ca/why\"}";
	assert_int_equal(tw_acme_parse_renewal_info(S(doc), &a, &r, &e), 0);
	assert_int_equal(r.start, 1735790400);
	assert_int_equal(r.end, 1735790400 + 86400);
	assert_string_equal(r.explanation, "https://ca/why");
	const char *inv = "{\"suggestedWindow\":{\"start\":\"2025-01-03T04:00:00Z\",\"end\":"
	                  "\"2025-01-02T04:00:00Z\"}}";
	assert_int_equal(tw_acme_parse_renewal_info(S(inv), &a, &r, &e), TW_EPROTO);
	assert_int_equal(tw_acme_parse_time(S("2025-01-02T04:00:00.123456Z"), &t), 0);
	assert_int_equal(t, 1735790400);
	assert_int_equal(tw_acme_parse_time(S("2025-01-02T06:30:00+02:30"), &t), 0);
	assert_int_equal(t, 1735790400);
	assert_int_equal(tw_acme_parse_time(S("2025-01-01T23:00:00-05:00"), &t), 0);
	assert_int_equal(t, 1735790400);
	assert_int_equal(tw_acme_parse_time(S("2025-01-02 04:00:00Z"), &t), TW_EINVAL);
	assert_int_equal(tw_acme_parse_time(S("2025-13-02T04:00:00Z"), &t), TW_EINVAL);
	assert_int_equal(tw_acme_parse_time(S("2025-01-02T04:00:00"), &t), TW_EINVAL);
	assert_int_equal(tw_acme_parse_time(S("2025-01-02T04:00:00Zjunk"), &t), TW_EINVAL);
	assert_int_equal(tw_acme_parse_time(S("2025-01-02T04:00:00."), &t), TW_EINVAL);
	tw_arena_free(&a);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(directory),
	    cmocka_unit_test(order_and_problem),
	    cmocka_unit_test(authorization),
	    cmocka_unit_test(renewal_info_and_time),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
