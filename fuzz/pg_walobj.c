/* Fuzz target: the plaintext of a WAL object once its AEAD tag has passed
 * (tw_pgarch_parse, tw_pgarch_decode; docs/repository-format.md "WAL
 * archive"), versions 1 and 2. What decodes must have parsed and be as
 * long as its header says; and every input, encoded as a version 2
 * plaintext, must decode to itself. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "pg/archive.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct tw_err e;
	struct tw_pgarch_hdr h;
	uint8_t *out;
	size_t n;
	int parsed = tw_pgarch_parse(data, size, &h);
	if (tw_pgarch_decode(data, size, "fuzz", &out, &n, &e) == 0) {
		if (parsed != 0 || n != h.raw)
			abort();
		free(out);
	}
	uint8_t *pt;
	size_t plen;
	if (tw_pgarch_encode(data, size, 1, &pt, &plen) != 0)
		return 0;
	if (tw_pgarch_parse(pt, plen, &h) != 0 || h.version != 2 ||
	    tw_pgarch_decode(pt, plen, "fuzz", &out, &n, &e) != 0 || n != size ||
	    (size > 0 && memcmp(out, data, size) != 0))
		abort();
	free(out);
	free(pt);
	return 0;
}
