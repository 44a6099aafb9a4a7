/* Fuzz target: pack header plaintext (tw_pack_header_decode) and pack
 * entries, i.e. what a pack trailer holds after decryption. The first 4
 * bytes choose the data end the header must match. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "backup/pack.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 4)
		return 0;
	uint64_t end = tw_le32_get(data);
	struct tw_pack_entry *ents;
	uint32_t n;
	if (tw_pack_header_decode(data + 4, size - 4, end, &ents, &n, NULL) == 0) {
		uint64_t sum = 0;
		for (uint32_t i = 0; i < n; i++)
			sum += ents[i].length;
		if (sum != end)
			abort(); /* the decoder promised contiguous entries ending at `end` */
		free(ents);
	}
	return 0;
}
