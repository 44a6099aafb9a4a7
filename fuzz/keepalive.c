/* Fuzz target: Keep-Alive header values from upstream servers
 * (src/http/keepalive.c): any bytes give a defined, capped result. */
#include "http/keepalive.h"

#include <stdint.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct tw_keepalive ka;
	tw_keepalive_parse((const char *)data, size, &ka);
	if (ka.timeout_s < -1 || ka.timeout_s > (int64_t)TW_KEEPALIVE_CAP || ka.max < -1 ||
	    ka.max > (int64_t)TW_KEEPALIVE_CAP)
		abort();
	return 0;
}
