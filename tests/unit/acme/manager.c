/* Unit tests for src/acme/manager.c without a CA: a stored certificate is
 * installed at start without contacting the CA; an unreachable CA with no
 * certificate yields state failing, a recorded error, a 1-minute backoff
 * and a failure in the metrics. (Issuance itself: tests/e2e/acme.) */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "acme/manager.h"
#include "acme/x509.h"

static char dir[256];

static int setup(void **state)
{
	snprintf(dir, sizeof dir, "/tmp/tw-acme-mgr-XXXXXX");
	return mkdtemp(dir) ? 0 : -1;
}

static int teardown(void **state)
{
	char cmd[300];
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
	return system(cmd) == 0 ? 0 : -1;
}

struct installs {
	pthread_mutex_t mu;
	int n;
	char first[64];
	size_t chain_len;
};

static void on_cert(void *ud, const char *const *names, size_t nnames, const char *chain,
                    size_t chain_len, const char *key, size_t key_len)
{
	struct installs *in = ud;
	pthread_mutex_lock(&in->mu);
	in->n++;
	snprintf(in->first, sizeof in->first, "%s", names[0]);
	in->chain_len = chain_len;
	assert_true(key_len > 0 && strstr(key, "PRIVATE KEY") != NULL);
	pthread_mutex_unlock(&in->mu);
}

static struct tw_conf_acme unreachable_conf(void)
{
	struct tw_conf_acme c;
	memset(&c, 0, sizeof c);
	c.directory = "https://127.0.0.1:1/dir"; /* nothing listens on port 1 */
	return c;
}

static int wait_status(struct tw_acme_mgr *m, enum tw_acme_cert_state want,
                       struct tw_acme_cert_status *st)
{
	for (int i = 0; i < 200; i++) {
		size_t n = 0;
		tw_acme_mgr_status(m, st, 1, &n);
		if (n == 1 && st->state == want && (want != TW_ACME_CERT_FAILING || st->failures))
			return 0;
		usleep(25000);
	}
	return -1;
}

static void unreachable_ca_fails_with_backoff(void **state)
{
	struct tw_acme_store *s = NULL;
	struct tw_acme_mgr *m = NULL;
	struct tw_err e = {0};
	struct tw_conf_acme c = unreachable_conf();
	struct installs in = {.mu = PTHREAD_MUTEX_INITIALIZER};
	assert_int_equal(tw_acme_store_local_new(dir, &s, &e), 0);
	struct tw_acme_mgr_opts o = {.conf = &c, .store = s, .on_certificate = on_cert, .ud = &in};
	assert_int_equal(tw_acme_mgr_new(&o, &m, &e), 0);
	const char *names[] = {"down.example"};
	assert_int_equal(tw_acme_mgr_add(m, names, 1, &e), 0);
	assert_int_equal(tw_acme_mgr_add(m, names, 1, &e), TW_EEXIST);
	time_t t0 = time(NULL);
	assert_int_equal(tw_acme_mgr_start(m, &e), 0);
	struct tw_acme_cert_status st;
	assert_int_equal(wait_status(m, TW_ACME_CERT_FAILING, &st), 0);
	assert_string_equal(st.name, "down.example");
	assert_int_equal(st.failures, 1);
	assert_int_equal(st.not_after, 0);
	assert_true(st.next_attempt >= t0 + 60 && st.next_attempt <= time(NULL) + 60);
	assert_non_null(strstr(st.last_error, "directory"));
	struct tw_dbuf b;
	tw_dbuf_init(&b, 4096);
	assert_int_equal(tw_acme_mgr_metrics(m, &b), 0);
	assert_non_null(strstr(b.data, "tapwork_acme_issuance_total{result=\"failure\"} 1\n"));
	assert_non_null(strstr(b.data, "tapwork_acme_issuance_total{result=\"success\"} 0\n"));
	assert_null(strstr(b.data, "tapwork_cert_expiry_seconds{"));
	assert_int_equal(in.n, 0);
	assert_int_equal(tw_acme_mgr_renew_now(m, "nope.example"), TW_ENOENT);
	tw_dbuf_free(&b);
	tw_acme_mgr_free(m);
	tw_acme_store_free(s);
}

static void stored_cert_installed_without_ca(void **state)
{
	struct tw_acme_store *s = NULL;
	struct tw_acme_mgr *m = NULL;
	struct tw_err e = {0};
	struct tw_conf_acme c = unreachable_conf();
	struct installs in = {.mu = PTHREAD_MUTEX_INITIALIZER};
	assert_int_equal(tw_acme_store_local_new(dir, &s, &e), 0);
	/* A stored certificate (7 days valid) for exactly these names. */
	char *cert = NULL, *key = NULL;
	assert_int_equal(tw_acme_x509_tlsalpn01("kept.example", "x.y", &cert, &key), 0);
	const char *meta = "{\"names\":[\"kept.example\"]}";
	assert_int_equal(
	    tw_acme_store_put(s, "certs/kept.example/chain.pem", cert, strlen(cert), 0, &e), 0);
	assert_int_equal(
	    tw_acme_store_put(s, "certs/kept.example/key.pem", key, strlen(key), 1, &e), 0);
	assert_int_equal(
	    tw_acme_store_put(s, "certs/kept.example/meta.json", meta, strlen(meta), 0, &e), 0);
	struct tw_acme_certinfo ci;
	assert_int_equal(tw_acme_x509_info(cert, strlen(cert), &ci), 0);
	struct tw_acme_mgr_opts o = {.conf = &c, .store = s, .on_certificate = on_cert, .ud = &in};
	assert_int_equal(tw_acme_mgr_new(&o, &m, &e), 0);
	const char *names[] = {"kept.example"};
	assert_int_equal(tw_acme_mgr_add(m, names, 1, &e), 0);
	assert_int_equal(tw_acme_mgr_start(m, &e), 0);
	struct tw_acme_cert_status st;
	assert_int_equal(wait_status(m, TW_ACME_CERT_VALID, &st), 0);
	for (int i = 0; i < 100 && st.renew_at == 0; i++) {
		size_t n;
		usleep(20000);
		tw_acme_mgr_status(m, &st, 1, &n);
	}
	assert_int_equal(st.not_after, ci.not_after);
	assert_int_equal(st.failures, 0);
	/* 7-day cert (+1 h back-dated): renewal when half is left, not in the last 20th. */
	time_t life = ci.not_after - ci.not_before;
	assert_true(st.renew_at >= ci.not_after - life / 2);
	assert_true(st.renew_at <= ci.not_after - life / 20);
	pthread_mutex_lock(&in.mu);
	assert_int_equal(in.n, 1);
	assert_string_equal(in.first, "kept.example");
	assert_int_equal(in.chain_len, strlen(cert));
	pthread_mutex_unlock(&in.mu);
	struct tw_dbuf b;
	tw_dbuf_init(&b, 4096);
	assert_int_equal(tw_acme_mgr_metrics(m, &b), 0);
	char want[128];
	snprintf(want, sizeof want, "tapwork_cert_expiry_seconds{name=\"kept.example\"} ");
	char *p = strstr(b.data, want);
	assert_non_null(p);
	long secs = strtol(p + strlen(want), NULL, 10);
	assert_true(secs > 6 * 86400 && secs <= 7 * 86400);
	tw_dbuf_free(&b);
	tw_acme_mgr_free(m);
	tw_acme_store_free(s);
	free(cert);
	free(key);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(unreachable_ca_fails_with_backoff, setup, teardown),
	    cmocka_unit_test_setup_teardown(stored_cert_installed_without_ca, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
