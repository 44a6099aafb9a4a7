/* Unit tests for src/core/lazylib.c: libcurl and libpq are not mapped
 * until one of their functions is called, and then they work. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <curl/curl.h>
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/lazylib.h"

/* 1 when a shared object whose file name starts with `prefix` is mapped */
static int mapped(const char *prefix)
{
	FILE *f = fopen("/proc/self/maps", "r");
	assert_non_null(f);
	char line[4096];
	int found = 0;
	while (!found && fgets(line, sizeof line, f) != NULL) {
		char *sl = strrchr(line, '/');
		found = sl != NULL && strncmp(sl + 1, prefix, strlen(prefix)) == 0;
	}
	fclose(f);
	return found;
}

static void curl_loads_on_first_call(void **state)
{
	(void)state;
	assert_false(mapped("libcurl.so"));
	assert_false(tw_lazylib_loaded("curl"));
	const curl_version_info_data *d = curl_version_info(CURLVERSION_NOW);
	assert_non_null(d);
	assert_non_null(d->version);
	assert_true(mapped("libcurl.so"));
	assert_true(tw_lazylib_loaded("curl"));
	/* the forwarded variadic options reach libcurl with their types */
	CURL *h = curl_easy_init();
	assert_non_null(h);
	assert_int_equal(curl_easy_setopt(h, CURLOPT_URL, "http://127.0.0.1:1/"), CURLE_OK);
	assert_int_equal(curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, 2000L), CURLE_OK);
	assert_int_equal(curl_easy_setopt(h, CURLOPT_MAX_RECV_SPEED_LARGE, (curl_off_t)1 << 40),
	                 CURLE_OK);
	/* a long option with a bad value is refused by libcurl itself */
	assert_int_not_equal(curl_easy_setopt(h, CURLOPT_HTTP_VERSION, 999L), CURLE_OK);
	/* nothing listens on port 1: a real transfer attempt, a real error */
	assert_int_equal(curl_easy_perform(h), CURLE_COULDNT_CONNECT);
	long code = -1;
	assert_int_equal(curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &code), CURLE_OK);
	assert_int_equal(code, 0);
	assert_string_equal(curl_easy_strerror(CURLE_COULDNT_CONNECT), "Couldn't connect to server");
	struct curl_slist *l = curl_slist_append(NULL, "X-A: 1");
	assert_non_null(l);
	curl_slist_free_all(l);
	curl_easy_cleanup(h);
	assert_int_equal(curl_getdate("Sun, 06 Nov 1994 08:49:37 GMT", NULL), 784111777);
	CURLSH *sh = curl_share_init();
	assert_non_null(sh);
	assert_int_equal(curl_share_setopt(sh, CURLSHOPT_SHARE, CURL_LOCK_DATA_DNS), CURLSHE_OK);
	assert_int_equal(curl_share_cleanup(sh), CURLSHE_OK);
}

static void pq_loads_on_first_call(void **state)
{
	(void)state;
	assert_false(mapped("libpq.so"));
	assert_int_equal(PQstatus(NULL), CONNECTION_BAD);
	assert_false(mapped("libpq.so")); /* NULL needs no library */
	PGconn *c = PQconnectdb("host=/nonexistent-tapwork-test port=1 connect_timeout=2");
	assert_true(mapped("libpq.so"));
	assert_true(tw_lazylib_loaded("pq"));
	assert_non_null(c);
	assert_int_equal(PQstatus(c), CONNECTION_BAD);
	assert_non_null(strstr(PQerrorMessage(c), "nonexistent-tapwork-test"));
	PQfinish(c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(curl_loads_on_first_call),
		cmocka_unit_test(pq_loads_on_first_call),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
