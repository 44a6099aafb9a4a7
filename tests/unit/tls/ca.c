/* Unit tests for the local CA (src/tls/ca.c): root creation and reuse,
 * permissions, leaf SANs, caching, re-issue on name change and renewal. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <sys/stat.h>

#include "core/log.h"
#include "tls/ca.h"
#include "tls_test.h"

static mode_t mode_of(const char *p)
{
	struct stat st;
	assert_int_equal(stat(p, &st), 0);
	return st.st_mode & 07777;
}

static void root_created_then_reused(void **state)
{
	char dir[64], sub[128], p[160];
	struct tw_ca *a = NULL, *b = NULL;
	struct tw_err e = {0};
	mk_tmpdir(dir, sizeof dir);
	snprintf(sub, sizeof sub, "%s/deep/state", dir); /* created with parents */
	assert_int_equal(tw_ca_open(sub, &a, &e), 0);
	snprintf(p, sizeof p, "%s/ca", sub);
	assert_int_equal(mode_of(p), 0700);
	snprintf(p, sizeof p, "%s/ca/root.key", sub);
	assert_int_equal(mode_of(p), 0600);
	snprintf(p, sizeof p, "%s/ca/root.crt", sub);
	assert_string_equal(tw_ca_root_path(a), p);
	X509 *r = tw_ca_root(a);
	assert_int_equal(X509_check_ca(r), 1);
	assert_int_equal(EVP_PKEY_get_base_id(X509_get0_pubkey(r)), EVP_PKEY_EC);
	/* 10 years, give or take a day */
	int days = 0, secs = 0;
	assert_int_equal(ASN1_TIME_diff(&days, &secs, X509_get0_notBefore(r), X509_get0_notAfter(r)), 1);
	assert_true(days >= 3649 && days <= 3651);
	/* A looser mode on the directory is tightened on the next open. */
	snprintf(p, sizeof p, "%s/ca", sub);
	assert_int_equal(chmod(p, 0755), 0);
	assert_int_equal(tw_ca_open(sub, &b, &e), 0);
	assert_int_equal(mode_of(p), 0700);
	assert_int_equal(X509_cmp(tw_ca_root(a), tw_ca_root(b)), 0); /* reused, not recreated */
	tw_ca_free(a);
	tw_ca_free(b);
	rm_rf(dir);
}

static void broken_root_is_an_error(void **state)
{
	char dir[64], p[160];
	struct tw_ca *a = NULL;
	struct tw_err e = {0};
	mk_tmpdir(dir, sizeof dir);
	assert_int_equal(tw_ca_open(dir, &a, &e), 0);
	tw_ca_free(a);
	snprintf(p, sizeof p, "%s/ca/root.key", dir);
	write_text(p, "garbage\n");
	a = (struct tw_ca *)1;
	assert_true(tw_ca_open(dir, &a, &e) < 0);
	assert_null(a);
	assert_non_null(strstr(e.msg, p));
	assert_non_null(strstr(e.msg, "no PEM private key"));
	rm_rf(dir);
}

static void leaf_names_and_permissions(void **state)
{
	char dir[64];
	struct tw_ca *ca = NULL;
	struct tw_ca_leaf l;
	struct tw_err e = {0};
	char *names[] = {"app.test", "*.app.test", "127.0.0.1", "::1"};
	mk_tmpdir(dir, sizeof dir);
	assert_int_equal(tw_ca_open(dir, &ca, &e), 0);
	time_t now = time(NULL);
	assert_int_equal(tw_ca_leaf_get(ca, names, 4, now, &l, &e), 0);
	assert_int_equal(l.issued, 1);
	assert_int_equal(mode_of(l.key_path), 0600);
	char p[160];
	snprintf(p, sizeof p, "%s/certs", dir);
	assert_int_equal(mode_of(p), 0700);
	assert_int_equal(X509_check_host(l.cert, "app.test", 0, 0, NULL), 1);
	assert_int_equal(X509_check_host(l.cert, "x.app.test", 0, 0, NULL), 1);
	assert_int_equal(X509_check_host(l.cert, "a.b.app.test", 0, 0, NULL), 0);
	assert_int_equal(X509_check_host(l.cert, "other.test", 0, 0, NULL), 0);
	assert_int_equal(X509_check_ip_asc(l.cert, "127.0.0.1", 0), 1);
	assert_int_equal(X509_check_ip_asc(l.cert, "::1", 0), 1);
	assert_int_equal(X509_check_ip_asc(l.cert, "127.0.0.2", 0), 0);
	assert_int_equal(X509_check_ca(l.cert), 0);
	assert_int_equal(X509_verify(l.cert, X509_get0_pubkey(tw_ca_root(ca))), 1);
	assert_int_equal(X509_check_private_key(l.cert, l.key), 1);
	/* 7 days */
	assert_true(l.not_after - l.not_before >= 7 * 86400 - 7200 && l.not_after - l.not_before <= 7 * 86400);
	assert_true(l.not_before <= now);
	assert_true(strstr(l.cert_path, "/certs/app.test.crt") != NULL);
	long serial = ASN1_INTEGER_get(X509_get0_serialNumber(l.cert));
	tw_ca_leaf_clear(&l);

	/* Same names (same first name, others in any order), later but before the
	 * last third: the cached one. */
	char *again[] = {"app.test", "::1", "127.0.0.1", "*.app.test"};
	assert_int_equal(tw_ca_leaf_get(ca, again, 4, now + 3600, &l, &e), 0);
	assert_int_equal(l.issued, 0);
	assert_int_equal(ASN1_INTEGER_get(X509_get0_serialNumber(l.cert)), serial);
	tw_ca_leaf_clear(&l);

	/* Names changed: re-issued. */
	char *fewer[] = {"app.test", "*.app.test"};
	assert_int_equal(tw_ca_leaf_get(ca, fewer, 2, now, &l, &e), 0);
	assert_int_equal(l.issued, 1);
	assert_int_equal(X509_check_ip_asc(l.cert, "127.0.0.1", 0), 0);
	tw_ca_leaf_clear(&l);
	tw_ca_free(ca);
	rm_rf(dir);
}

static void renewal_threshold(void **state)
{
	char dir[64];
	struct tw_ca *ca = NULL;
	struct tw_ca_leaf l;
	struct tw_err e = {0};
	char *names[] = {"renew.test"};
	mk_tmpdir(dir, sizeof dir);
	assert_int_equal(tw_ca_open(dir, &ca, &e), 0);
	time_t now = time(NULL);
	assert_int_equal(tw_ca_leaf_get(ca, names, 1, now, &l, &e), 0);
	time_t nb = l.not_before, na = l.not_after, renew = l.renew_at;
	assert_true(renew == nb + (na - nb) * 2 / 3);
	tw_ca_leaf_clear(&l);
	assert_int_equal(tw_ca_leaf_get(ca, names, 1, renew - 60, &l, &e), 0);
	assert_int_equal(l.issued, 0); /* a third and a minute left: kept */
	tw_ca_leaf_clear(&l);
	assert_int_equal(tw_ca_leaf_get(ca, names, 1, renew + 60, &l, &e), 0);
	assert_int_equal(l.issued, 1); /* less than a third left: renewed */
	assert_true(l.not_after > na);
	tw_ca_leaf_clear(&l);
	/* A leaf signed by another CA (the root was replaced) is re-issued. */
	tw_ca_free(ca);
	char p[160];
	snprintf(p, sizeof p, "%s/ca", dir);
	char q[200];
	snprintf(q, sizeof q, "%s/ca/root.crt", dir);
	remove(q);
	snprintf(q, sizeof q, "%s/ca/root.key", dir);
	remove(q);
	assert_int_equal(tw_ca_open(dir, &ca, &e), 0);
	assert_int_equal(tw_ca_leaf_get(ca, names, 1, time(NULL), &l, &e), 0);
	assert_int_equal(l.issued, 1);
	assert_int_equal(X509_verify(l.cert, X509_get0_pubkey(tw_ca_root(ca))), 1);
	tw_ca_leaf_clear(&l);
	tw_ca_free(ca);
	rm_rf(dir);
}

int main(void)
{
	tw_log_level = TW_LOG_ERROR;
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(root_created_then_reused),
	    cmocka_unit_test(broken_root_is_an_error),
	    cmocka_unit_test(leaf_names_and_permissions),
	    cmocka_unit_test(renewal_threshold),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
