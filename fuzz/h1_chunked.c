/* Fuzz target: the chunked scanner. The input is scanned whole, one byte per
 * call and in data-dependent pieces; the outcome, the bytes consumed and the
 * decoded data (on_data concatenation) must agree. The in-place decoder
 * (tw_h1_chunked_decode) must give the same data, never more bytes than it
 * consumed, and nothing at all on an error. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "http/h1.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct out {
	int rc;
	size_t consumed;
	uint64_t hash;
	size_t dlen;
};

static void on_data(void *ctx, const char *p, size_t n)
{
	struct out *o = ctx;
	if (n == 0)
		abort();
	for (size_t i = 0; i < n; i++)
		o->hash = (o->hash ^ (unsigned char)p[i]) * 1099511628211ull;
	o->dlen += n;
}

static void scan(const uint8_t *data, size_t size, size_t step, uint64_t max_body, int inplace, struct out *o)
{
	struct tw_h1_chunked c;
	tw_h1_chunked_init(&c, max_body);
	memset(o, 0, sizeof *o);
	o->hash = 1469598103934665603ull;
	o->rc = TW_EAGAIN;
	size_t at = 0;
	while (at < size) {
		size_t k = size - at < step ? size - at : step;
		char *b = malloc(k);
		if (!b)
			abort();
		memcpy(b, data + at, k);
		size_t used = (size_t)-1;
		if (inplace) {
			size_t payload = (size_t)-1;
			o->rc = tw_h1_chunked_decode(&c, b, k, &used, &payload);
			if (o->rc != 0 && o->rc != TW_EAGAIN && (used != 0 || payload != 0))
				abort();
			if (payload > used)
				abort();
			if (payload)
				on_data(o, b, payload);
		} else {
			o->rc = tw_h1_chunked_scan(&c, b, k, &used, on_data, o);
		}
		free(b);
		if (o->rc == TW_EAGAIN) {
			if (used != k)
				abort();
			at += k;
			continue;
		}
		if (o->rc == 0) {
			if (used > k)
				abort();
			o->consumed = at + used;
		} else if (o->rc != TW_EPROTO && o->rc != TW_ELIMIT) {
			abort();
		}
		break;
	}
	if (max_body && o->dlen > max_body)
		abort();
	if (o->rc == 0 && c.total != o->dlen)
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const uint64_t bodies[] = {0, 64};
	for (int m = 0; m < 2; m++) {
		struct out a, b;
		scan(data, size, size ? size : 1, bodies[m], 0, &a);
		size_t steps[] = {1, 2 + (size ? data[0] % 13 : 0)};
		for (int s = 0; s < 2; s++) {
			scan(data, size, steps[s], bodies[m], 0, &b);
			/* errors are found at the same byte whatever the split, so even
			 * the data delivered before an error must be the same */
			if (a.rc != b.rc || a.consumed != b.consumed || a.hash != b.hash || a.dlen != b.dlen)
				abort();
			scan(data, size, steps[s], bodies[m], 1, &b);
			if (a.rc != b.rc || a.consumed != b.consumed)
				abort();
			/* on an error the decoder gives nothing for the failing piece */
			if (a.rc == 0 && (a.hash != b.hash || a.dlen != b.dlen))
				abort();
		}
	}
	return 0;
}
