/* Fuzz target: the ListObjectsV2 XML scanner (tw_s3_parse_list) and the
 * element text helper used for error bodies and UploadId. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "storage/s3.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int on_key(void *arg, const char *key, size_t len, uint64_t sz)
{
	size_t *total = arg;
	if (strlen(key) != len || len > 1024)
		abort();
	*total += len;
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct tw_s3_list_page page;
	struct tw_err e = {0};
	size_t total = 0;
	if (tw_s3_parse_list((const char *)data, size, on_key, &total, &page, &e) == 0 &&
	    strlen(page.next_token) >= sizeof page.next_token)
		abort();
	char code[64];
	tw_s3_xml_text((const char *)data, size, "Code", code, sizeof code);
	if (strlen(code) >= sizeof code)
		abort();
	return 0;
}
