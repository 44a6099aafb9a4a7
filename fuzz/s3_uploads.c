/* Fuzz target: the ListMultipartUploads and ListParts XML scanners
 * (tw_s3_parse_uploads, tw_s3_parse_parts) and the S3 timestamp parser,
 * all fed the same untrusted bytes. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "storage/s3.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int on_upload(void *arg, const char *key, size_t len, const char *id, int64_t initiated)
{
	size_t *total = arg;
	if (strlen(key) != len || len > 1024 || strlen(id) == 0 ||
	    strlen(id) > TW_S3_UPLOAD_ID_MAX || strpbrk(id, "\"\\<>& ") != NULL || initiated < 0)
		abort();
	*total += len;
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *p = (const char *)data;
	struct tw_err e = {0};
	size_t total = 0;
	struct tw_s3_uploads_page up;
	if (tw_s3_parse_uploads(p, size, on_upload, &total, &up, &e) == 0 &&
	    (strlen(up.next_key) >= sizeof up.next_key ||
	     strlen(up.next_upload) >= sizeof up.next_upload || (up.truncated && !up.next_key[0])))
		abort();
	struct tw_s3_parts_page pp;
	if (tw_s3_parse_parts(p, size, &pp, &e) == 0 &&
	    (pp.newest < 0 || (pp.truncated && !pp.next_marker)))
		abort();
	int64_t t;
	if (tw_s3_parse_time(p, size, &t) == 0 && t < 0)
		abort();
	return 0;
}
