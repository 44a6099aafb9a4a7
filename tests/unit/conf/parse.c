/* Unit tests for src/conf/parse.c: durations, sizes, addresses, CIDRs,
 * host names and the edit distance behind "did you mean". Table-driven. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>

#include "conf/config.h"
#include "conf/schema.h"

static void durations(void **state)
{
	static const struct {
		const char *in;
		int ok;
		uint64_t ms;
	} t[] = {
	    {"250ms", 1, 250},
	    {"2s", 1, 2000},
	    {"5m", 1, 300000},
	    {"1h", 1, 3600000},
	    {"1d", 1, 86400000},
	    {"1m30s", 1, 90000},
	    {"0", 1, 0},
	    {"0s", 1, 0},
	    {"18446744073709551615ms", 1, UINT64_MAX},
	    {"18446744073709551616ms", 0, 0}, /* overflows the number */
	    {"18446744073709551615s", 0, 0},  /* overflows the multiplication */
	    {"213503982334601d", 0, 0},
	    {"10", 0, 0}, /* unit missing */
	    {"", 0, 0},
	    {"s", 0, 0},
	    {"-1s", 0, 0},
	    {"1.5s", 0, 0},
	    {"2 s", 0, 0},
	    {"2sec", 0, 0},
	    {"2S", 0, 0},
	    {"1w", 0, 0},
	    {"2s ", 0, 0},
	};
	for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
		uint64_t ms = 12345;
		struct tw_err e = {0};
		int rc = tw_duration_parse(t[i].in, &ms, &e);
		if (t[i].ok) {
			if (rc != 0)
				fail_msg("\"%s\" should parse: %s", t[i].in, e.msg);
			assert_int_equal(ms, t[i].ms);
		} else {
			if (rc != TW_EINVAL)
				fail_msg("\"%s\" should fail", t[i].in);
			assert_true(strlen(e.msg) > 0);
		}
	}
}

static void sizes(void **state)
{
	static const struct {
		const char *in;
		int ok;
		uint64_t v;
	} t[] = {
	    {"512", 1, 512},
	    {"0", 1, 0},
	    {"16k", 1, 16384},
	    {"16K", 1, 16384},
	    {"16KiB", 1, 16384},
	    {"16KB", 1, 16000},
	    {"1MiB", 1, 1048576},
	    {"1m", 1, 1048576},
	    {"10GB", 1, 10000000000ull},
	    {"2GiB", 1, 2147483648ull},
	    {"1TiB", 1, 1099511627776ull},
	    {"100b", 1, 100},
	    {"16777216TiB", 0, 0}, /* 2^64: overflow in the multiplication */
	    {"99999999999999999999", 0, 0},
	    {"", 0, 0},
	    {"k", 0, 0},
	    {"-5", 0, 0},
	    {"1.5M", 0, 0},
	    {"16 k", 0, 0},
	    {"16kibi", 0, 0},
	    {"16x", 0, 0},
	    {"0x10", 0, 0},
	};
	for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
		uint64_t v = 7;
		struct tw_err e = {0};
		int rc = tw_size_parse(t[i].in, &v, &e);
		if (t[i].ok) {
			if (rc != 0)
				fail_msg("\"%s\" should parse: %s", t[i].in, e.msg);
			assert_int_equal(v, t[i].v);
		} else if (rc != TW_EINVAL) {
			fail_msg("\"%s\" should fail", t[i].in);
		}
	}
}

static void addresses(void **state)
{
	static const struct {
		const char *in;
		int ok;
		int family;
		const char *text;
		unsigned port;
	} t[] = {
	    {"127.0.0.1:8080", 1, AF_INET, "127.0.0.1:8080", 8080},
	    {":8080", 1, AF_INET, "0.0.0.0:8080", 8080},
	    {"[::1]:8080", 1, AF_INET6, "[::1]:8080", 8080},
	    {"[0:0::1]:443", 1, AF_INET6, "[::1]:443", 443},
	    {"localhost:8080", 1, -1, "localhost:8080", 8080},
	    {"LocalHost:1", 1, -1, "localhost:1", 1},
	    {"10.1.2.3:65535", 1, AF_INET, "10.1.2.3:65535", 65535},
	    {"127.0.0.1:0", 0, 0, NULL, 0},
	    {"127.0.0.1:65536", 0, 0, NULL, 0},
	    {"127.0.0.1:99999999999999999999", 0, 0, NULL, 0},
	    {"127.0.0.1", 0, 0, NULL, 0},
	    {"127.0.0.1:", 0, 0, NULL, 0},
	    {"127.0.0.1:80x", 0, 0, NULL, 0},
	    {"::1:8080", 0, 0, NULL, 0},
	    {"[::1]8080", 0, 0, NULL, 0},
	    {"[::1:8080", 0, 0, NULL, 0},
	    {"[nope]:80", 0, 0, NULL, 0},
	    {"bad host:80", 0, 0, NULL, 0},
	    {"", 0, 0, NULL, 0},
	};
	for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
		struct tw_addr a;
		struct tw_err e = {0};
		int rc = tw_addr_parse(t[i].in, &a, &e);
		if (!t[i].ok) {
			if (rc != TW_EINVAL)
				fail_msg("\"%s\" should fail", t[i].in);
			continue;
		}
		if (rc != 0)
			fail_msg("\"%s\" should parse: %s", t[i].in, e.msg);
		assert_string_equal(a.text, t[i].text);
		if (t[i].family != -1)
			assert_int_equal(a.ss.ss_family, t[i].family);
		if (a.ss.ss_family == AF_INET) {
			assert_int_equal(a.len, sizeof(struct sockaddr_in));
			assert_int_equal(ntohs(((struct sockaddr_in *)&a.ss)->sin_port), t[i].port);
		} else {
			assert_int_equal(a.ss.ss_family, AF_INET6);
			assert_int_equal(a.len, sizeof(struct sockaddr_in6));
			assert_int_equal(ntohs(((struct sockaddr_in6 *)&a.ss)->sin6_port),
			                 t[i].port);
		}
	}
	/* With resolution off, names fail but numbers still work. */
	struct tw_addr a;
	struct tw_err e = {0};
	tw_config_set_dns(0);
	assert_int_equal(tw_addr_parse("localhost:80", &a, &e), TW_EINVAL);
	assert_non_null(strstr(e.msg, "disabled"));
	assert_int_equal(tw_addr_parse("127.0.0.1:80", &a, &e), 0);
	tw_config_set_dns(1);
}

static void cidrs(void **state)
{
	static const struct {
		const char *in;
		int ok;
		int family;
		unsigned prefix;
	} t[] = {
	    {"10.0.0.0/8", 1, AF_INET, 8},
	    {"127.0.0.1", 1, AF_INET, 32},
	    {"0.0.0.0/0", 1, AF_INET, 0},
	    {"::1/128", 1, AF_INET6, 128},
	    {"::1", 1, AF_INET6, 128},
	    {"fd00::/8", 1, AF_INET6, 8},
	    {"10.0.0.1/8", 0, 0, 0}, /* host bits */
	    {"10.0.0.0/33", 0, 0, 0},
	    {"::/129", 0, 0, 0},
	    {"10.0.0.0/", 0, 0, 0},
	    {"10.0.0.0/-1", 0, 0, 0},
	    {"10.0.0.0/0008", 0, 0, 0},
	    {"10.0.0.0/99999999999999999999", 0, 0, 0},
	    {"/8", 0, 0, 0},
	    {"10.0.0/8", 0, 0, 0},
	    {"example.com/8", 0, 0, 0},
	    {"", 0, 0, 0},
	};
	for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
		struct tw_cidr c;
		struct tw_err e = {0};
		int rc = tw_cidr_parse(t[i].in, &c, &e);
		if (!t[i].ok) {
			if (rc != TW_EINVAL)
				fail_msg("\"%s\" should fail", t[i].in);
			continue;
		}
		if (rc != 0)
			fail_msg("\"%s\" should parse: %s", t[i].in, e.msg);
		assert_int_equal(c.family, t[i].family);
		assert_int_equal(c.prefix, t[i].prefix);
	}
}

static struct sockaddr_storage sa(const char *ip)
{
	struct sockaddr_storage ss;
	memset(&ss, 0, sizeof ss);
	struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
	struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
	if (inet_pton(AF_INET, ip, &s4->sin_addr) == 1)
		s4->sin_family = AF_INET;
	else if (inet_pton(AF_INET6, ip, &s6->sin6_addr) == 1)
		s6->sin6_family = AF_INET6;
	return ss;
}

static void cidr_contains(void **state)
{
	static const struct {
		const char *cidr, *ip;
		int in;
	} t[] = {
	    {"10.0.0.0/8", "10.255.1.2", 1},
	    {"10.0.0.0/8", "11.0.0.1", 0},
	    {"192.168.4.0/22", "192.168.7.255", 1},
	    {"192.168.4.0/22", "192.168.8.0", 0},
	    {"127.0.0.1", "127.0.0.1", 1},
	    {"127.0.0.1", "127.0.0.2", 0},
	    {"0.0.0.0/0", "8.8.8.8", 1},
	    {"::1/128", "::1", 1},
	    {"::1/128", "::2", 0},
	    {"10.0.0.0/8", "::ffff:10.1.1.1", 1},
	    {"10.0.0.0/8", "::ffff:11.1.1.1", 0},
	    {"::1/128", "127.0.0.1", 0},
	    {"fd00::/8", "fdab::1", 1},
	    {"fd00::/8", "fe80::1", 0},
	};
	for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
		struct tw_cidr c;
		assert_int_equal(tw_cidr_parse(t[i].cidr, &c, NULL), 0);
		struct sockaddr_storage ss = sa(t[i].ip);
		if (tw_cidr_contains(&c, (struct sockaddr *)&ss) != t[i].in)
			fail_msg("%s in %s should be %d", t[i].ip, t[i].cidr, t[i].in);
	}
}

static void hosts(void **state)
{
	static const struct {
		const char *in, *out;
	} t[] = {
	    {"*", "*"},
	    {"Example.COM", "example.com"},
	    {"*.App.example.test", "*.app.example.test"},
	    {"a-b.c_d.e1", "a-b.c_d.e1"},
	    {"", NULL},
	    {"a..b", NULL},
	    {"-a.b", NULL},
	    {"a-.b", NULL},
	    {"a.*.b", NULL},
	    {"**", NULL},
	    {"*.", NULL},
	    {"a.b.", NULL},
	    {"a b", NULL},
	    {"a:80", NULL},
	    {"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx.com",
	     NULL}, /* 65-char label */
	};
	for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
		char buf[128];
		const char *why = NULL;
		snprintf(buf, sizeof buf, "%s", t[i].in);
		int rc = tw_conf_host_check(buf, &why);
		if (t[i].out == NULL) {
			if (rc == 0)
				fail_msg("host \"%s\" should be refused", t[i].in);
			assert_non_null(why);
		} else {
			if (rc != 0)
				fail_msg("host \"%s\" refused: %s", t[i].in, why);
			assert_string_equal(buf, t[i].out);
		}
	}
}

static void edit_distance(void **state)
{
	assert_int_equal(tw_conf_edit_distance("balance", "balance"), 0);
	assert_int_equal(tw_conf_edit_distance("balanse", "balance"), 1);
	assert_int_equal(tw_conf_edit_distance("blaance", "balance"), 1); /* transposition */
	assert_int_equal(tw_conf_edit_distance("", "abc"), 3);
	assert_int_equal(tw_conf_edit_distance("kitten", "sitting"), 3);
	const char *names[] = {"servers", "balance", "hash_key", "health"};
	assert_string_equal(tw_conf_suggest("sevrers", names, 4), "servers");
	assert_string_equal(tw_conf_suggest("helth", names, 4), "health");
	assert_string_equal(tw_conf_suggest("hashkey", names, 4), "hash_key");
	assert_null(tw_conf_suggest("completely", names, 4));
	const char *short_names[] = {"web", "api"};
	assert_string_equal(tw_conf_suggest("wbe", short_names, 2), "web");
	assert_null(tw_conf_suggest("xyz", short_names, 2));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(durations),     cmocka_unit_test(sizes),
	    cmocka_unit_test(addresses),     cmocka_unit_test(cidrs),
	    cmocka_unit_test(cidr_contains), cmocka_unit_test(hosts),
	    cmocka_unit_test(edit_distance),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
