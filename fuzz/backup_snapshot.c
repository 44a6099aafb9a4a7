/* Fuzz target: snapshot plaintext (tw_snapshot_decode); what decodes must
 * encode and decode again. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "backup/snapshot.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct tw_snapshot *s;
	if (tw_snapshot_decode(data, size, &s, NULL) != 0)
		return 0;
	struct tw_dbuf b;
	tw_dbuf_init(&b, 1 << 24);
	struct tw_snapshot *again = NULL;
	if (tw_snapshot_encode(s, &b) != 0 ||
	    tw_snapshot_decode((const uint8_t *)b.data, b.len, &again, NULL) != 0 ||
	    again->time_ns != s->time_ns || memcmp(again->tree, s->tree, TW_ID_LEN) != 0 ||
	    again->npaths != s->npaths)
		abort();
	tw_snapshot_free(again);
	tw_snapshot_free(s);
	tw_dbuf_free(&b);
	return 0;
}
