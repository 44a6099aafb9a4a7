/* Fuzz target: the AWS shared credentials file parser
 * (tw_s3_parse_credentials). The first byte picks the profile asked for. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "storage/s3.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *const profiles[] = {"default", "ci", "profile x", ""};
	if (size == 0)
		return 0;
	const char *profile = profiles[data[0] % 4];
	struct tw_s3_creds c;
	struct tw_err e = {0};
	if (tw_s3_parse_credentials((const char *)data + 1, size - 1, profile, &c, &e) == 0) {
		if (c.key_id[0] == '\0' || c.secret[0] == '\0' ||
		    strlen(c.key_id) >= sizeof c.key_id || strlen(c.token) >= sizeof c.token)
			abort();
	}
	return 0;
}
