/* Unit tests for src/http/accept_enc.c: q-values, identity;q=0, "*",
 * malformed elements, and the choice of a coding. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include "http/accept_enc.h"

static const enum tw_coding ours[] = {TW_CODING_ZSTD, TW_CODING_BR, TW_CODING_GZIP};

/* parse an exact-size heap copy (ASan catches reads past the slice) and choose */
static enum tw_coding pick(const char *hdr, struct tw_ae *ae)
{
	size_t n = strlen(hdr);
	char *b = malloc(n ? n : 1);
	assert_non_null(b);
	memcpy(b, hdr, n);
	tw_ae_init(ae);
	tw_ae_parse(ae, b, n);
	free(b);
	return tw_ae_choose(ae, ours, 3);
}

static void test_plain_lists(void **state)
{
	(void)state;
	struct tw_ae ae;
	assert_int_equal(pick("gzip, deflate, br, zstd", &ae), TW_CODING_ZSTD);
	assert_int_equal(pick("gzip, deflate, br", &ae), TW_CODING_BR);
	assert_int_equal(pick("gzip", &ae), TW_CODING_GZIP);
	assert_int_equal(pick("x-gzip", &ae), TW_CODING_GZIP);
	assert_int_equal(pick("GZIP", &ae), TW_CODING_GZIP);
	assert_int_equal(pick("deflate", &ae), TW_CODING_IDENTITY);
	assert_int_equal(pick("", &ae), TW_CODING_IDENTITY);
	assert_int_equal(pick("identity", &ae), TW_CODING_IDENTITY);
	assert_int_equal(pick(" ,, gzip ,", &ae), TW_CODING_GZIP);
}

static void test_qvalues(void **state)
{
	(void)state;
	struct tw_ae ae;
	assert_int_equal(pick("gzip;q=1.0, zstd;q=0.5, br;q=0.8", &ae), TW_CODING_GZIP);
	assert_int_equal(tw_ae_q(&ae, TW_CODING_ZSTD), 500);
	assert_int_equal(tw_ae_q(&ae, TW_CODING_BR), 800);
	assert_int_equal(pick("gzip;q=0.5, br;q=0.5", &ae), TW_CODING_BR); /* tie: our order */
	assert_int_equal(pick("zstd;q=0, gzip", &ae), TW_CODING_GZIP);
	assert_int_equal(pick("zstd;q=0.000, br;q=0", &ae), TW_CODING_IDENTITY);
	assert_int_equal(pick("gzip ; q=0.001", &ae), TW_CODING_GZIP);
	assert_int_equal(tw_ae_q(&ae, TW_CODING_GZIP), 1);
	assert_int_equal(pick("gzip;Q=0.3", &ae), TW_CODING_GZIP);
	assert_int_equal(tw_ae_q(&ae, TW_CODING_GZIP), 300);
	/* the higher of two mentions counts */
	assert_int_equal(pick("gzip;q=0, gzip;q=0.4", &ae), TW_CODING_GZIP);
	assert_int_equal(tw_ae_q(&ae, TW_CODING_GZIP), 400);
	/* identity preferred above every coding we have */
	assert_int_equal(pick("identity;q=1, gzip;q=0.5", &ae), TW_CODING_IDENTITY);
	assert_int_equal(pick("identity;q=0.5, gzip;q=0.5", &ae), TW_CODING_GZIP);
}

static void test_star_and_identity(void **state)
{
	(void)state;
	struct tw_ae ae;
	assert_int_equal(pick("*", &ae), TW_CODING_ZSTD);
	assert_int_equal(pick("*;q=0.5, zstd;q=0.1", &ae), TW_CODING_BR);
	assert_int_equal(pick("*;q=0", &ae), TW_CODING_IDENTITY);
	assert_int_equal(tw_ae_q(&ae, TW_CODING_IDENTITY), 0);
	assert_int_equal(pick("gzip, identity;q=0", &ae), TW_CODING_GZIP);
	assert_int_equal(tw_ae_q(&ae, TW_CODING_IDENTITY), 0);
	assert_int_equal(pick("br", &ae), TW_CODING_BR);
	assert_int_equal(tw_ae_q(&ae, TW_CODING_IDENTITY), 1000); /* not named: acceptable */
	assert_int_equal(pick("*;q=0, identity", &ae), TW_CODING_IDENTITY);
	assert_int_equal(tw_ae_q(&ae, TW_CODING_IDENTITY), 1000);
}

static void test_malformed(void **state)
{
	(void)state;
	struct tw_ae ae;
	/* bad weights: the element is skipped, the rest counts */
	assert_int_equal(pick("zstd;q=2, gzip", &ae), TW_CODING_GZIP);
	assert_int_equal(ae.nskipped, 1);
	assert_int_equal(pick("zstd;q=0.1234, gzip", &ae), TW_CODING_GZIP);
	assert_int_equal(pick("zstd;q=1.001, br", &ae), TW_CODING_BR);
	assert_int_equal(pick("zstd;q=, br", &ae), TW_CODING_BR);
	assert_int_equal(pick("zstd;q=\"1\", br", &ae), TW_CODING_BR);
	assert_int_equal(pick("zstd q=1, br", &ae), TW_CODING_BR);
	assert_int_equal(pick("zstd;;, gzip", &ae), TW_CODING_GZIP);
	assert_int_equal(pick("zstd;q=-1", &ae), TW_CODING_IDENTITY);
	assert_int_equal(pick("gzip;q=0.5;q=0.1", &ae), TW_CODING_GZIP); /* last weight wins inside one element */
	assert_int_equal(tw_ae_q(&ae, TW_CODING_GZIP), 100);
	/* quoted parameters of other names are fine, commas inside them do not split */
	assert_int_equal(pick("br;x=\"a,zstd\";q=0.2, gzip;q=0.1", &ae), TW_CODING_BR);
	assert_int_equal(tw_ae_q(&ae, TW_CODING_ZSTD), 0);
	assert_int_equal(pick("br;x=\"unterminated, zstd", &ae), TW_CODING_IDENTITY);
	assert_int_equal(pick("\xff\xfe, gzip", &ae), TW_CODING_GZIP);
	assert_int_equal(pick("gzip\0zstd", &ae), TW_CODING_GZIP);
}

static void test_names(void **state)
{
	(void)state;
	assert_string_equal(tw_coding_name(TW_CODING_BR), "br");
	assert_string_equal(tw_coding_suffix(TW_CODING_ZSTD), ".zst");
	assert_int_equal(tw_coding_parse("ZSTD", 4), TW_CODING_ZSTD);
	assert_int_equal(tw_coding_parse("deflate", 7), -1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_plain_lists), cmocka_unit_test(test_qvalues),
	    cmocka_unit_test(test_star_and_identity), cmocka_unit_test(test_malformed),
	    cmocka_unit_test(test_names),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
