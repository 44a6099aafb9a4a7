/* Fuzz target: page delta bodies (tw_delta_apply) against a base, i.e. what
 * a delta blob holds after decryption. Input: u8 mode (bit 0: the data is a
 * zstd frame) | u24 unit length | u24 base length | base seed byte | body.
 * Lengths are capped at 256 KiB to keep runs fast; the base is a pattern
 * from the seed byte. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "backup/delta.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CAP (256u * 1024)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 8)
		return 0;
	int zstd = data[0] & 1;
	size_t n = (data[1] | (size_t)data[2] << 8 | (size_t)data[3] << 16) % (CAP + 1);
	size_t blen = (data[4] | (size_t)data[5] << 8 | (size_t)data[6] << 16) % (CAP + 1);
	uint8_t *base = malloc(blen + 1), *out = malloc(n + 1);
	if (base == NULL || out == NULL)
		abort();
	for (size_t i = 0; i < blen; i++)
		base[i] = (uint8_t)(data[7] + i / 13);
	if (tw_delta_apply(data + 8, size - 8, zstd, base, blen, out, n, NULL, NULL) == 0) {
		/* the pages the bitmap leaves out are the base's */
		for (size_t p = 0; p < tw_delta_npages(n); p++) {
			size_t off = p * TW_DELTA_PAGE;
			size_t len = n - off < TW_DELTA_PAGE ? n - off : TW_DELTA_PAGE;
			if (!(data[8 + p / 8] & (1u << (p % 8))) &&
			    memcmp(out + off, base + off, len) != 0)
				abort();
		}
	}
	free(base);
	free(out);
	return 0;
}
