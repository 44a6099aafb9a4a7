/* Fuzz target: request heads, whole and split (see h1_common.h). */
#include "h1_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	h1_fuzz(TW_H1_REQUEST, data, size);
	return 0;
}
