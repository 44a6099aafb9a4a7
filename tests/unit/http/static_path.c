/* Unit tests for src/http/static_path.c: the traversal corpus (plain,
 * encoded, double-encoded, overlong UTF-8, backslashes, NUL), hidden files,
 * directories and collapsing. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "http/static_path.h"

static int norm(const char *p, size_t n, int hidden, char *out, int *dir)
{
	char *b = malloc(n ? n : 1); /* exact size: ASan catches reads past n */
	assert_non_null(b);
	memcpy(b, p, n);
	int rc = tw_static_path(b, n, hidden, out, 256, dir);
	free(b);
	return rc;
}

#define OK(in, want, wantdir)                                                   \
	do {                                                                    \
		char o[256];                                                    \
		int d;                                                          \
		assert_int_equal(norm(in, strlen(in), 0, o, &d), 0);            \
		assert_string_equal(o, want);                                   \
		assert_int_equal(d, wantdir);                                   \
	} while (0)
#define BAD(in, code)                                                           \
	do {                                                                    \
		char o[256];                                                    \
		int d;                                                          \
		assert_int_equal(norm(in, sizeof(in) - 1, 0, o, &d), code);     \
	} while (0)

static void test_good(void **state)
{
	(void)state;
	OK("/", "", 1);
	OK("/app.js", "app.js", 0);
	OK("/a/b/c.css", "a/b/c.css", 0);
	OK("/dir/", "dir", 1);
	OK("//a///b", "a/b", 0);
	OK("/a%20b.txt", "a b.txt", 0);
	OK("/%e2%82%ac.txt", "\xe2\x82\xac.txt", 0);
	OK("/a..b", "a..b", 0);
	OK("/%252e%252e/x", "%2e%2e/x", 0); /* double-encoded: a literal name, never decoded twice */
}

static void test_traversal(void **state)
{
	(void)state;
	BAD("/..", TW_EPERM);
	BAD("/a/../../etc/passwd", TW_EPERM);
	BAD("/./a", TW_EPERM);
	BAD("/%2e%2e/etc/passwd", TW_EPERM);
	BAD("/%2E%2e/", TW_EPERM);
	BAD("/.%2e/x", TW_EPERM);
	BAD("/a%2f..%2fb", TW_EINVAL);  /* encoded slash */
	BAD("/a%2Fb", TW_EINVAL);
	BAD("/a\\..\\b", TW_EINVAL);    /* Windows separators */
	BAD("/a%5c..%5cb", TW_EINVAL);
	BAD("/a%00b", TW_EINVAL);       /* NUL */
	BAD("/a\0b", TW_EINVAL);
	BAD("/%c0%ae%c0%ae/x", TW_EINVAL); /* overlong '.' */
	BAD("/%c0%af", TW_EINVAL);      /* overlong '/' */
	BAD("/%e0%80%ae", TW_EINVAL);
	BAD("/%ed%a0%80", TW_EINVAL);   /* a surrogate */
	BAD("/%ff", TW_EINVAL);
	BAD("/a%0a", TW_EINVAL);        /* control byte */
	BAD("/a%", TW_EINVAL);
	BAD("/a%4", TW_EINVAL);
	BAD("/a%zz", TW_EINVAL);
	BAD("a/b", TW_EINVAL);          /* not absolute */
	BAD("", TW_EINVAL);
}

static void test_hidden(void **state)
{
	(void)state;
	BAD("/.env", TW_EPERM);
	BAD("/.git/config", TW_EPERM);
	BAD("/a/%2egit/x", TW_EPERM);
	char o[256];
	int d;
	assert_int_equal(norm("/.well-known/x", 14, 1, o, &d), 0);
	assert_string_equal(o, ".well-known/x");
	assert_int_equal(norm("/../x", 5, 1, o, &d), TW_EPERM); /* never ".." */
}

static void test_limits(void **state)
{
	(void)state;
	char o[8];
	int d;
	assert_int_equal(tw_static_path("/abcdefghij", 11, 0, o, sizeof o, &d), TW_ELIMIT);
	assert_int_equal(tw_static_path("/abc", 4, 0, o, sizeof o, &d), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_good), cmocka_unit_test(test_traversal), cmocka_unit_test(test_hidden),
	    cmocka_unit_test(test_limits),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
