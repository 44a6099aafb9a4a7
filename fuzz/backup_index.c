/* Fuzz target: index object plaintext (tw_index_decode) loaded into the
 * in-memory table the way tw_repo_load_index does. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "backup/index.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int add(void *arg, const uint8_t pack_id[TW_ID_LEN], const struct tw_pack_entry *en)
{
	struct tw_index *ix = arg;
	uint32_t num;
	int added;
	int rc = tw_index_pack(ix, pack_id, &num);
	if (rc == 0)
		rc = tw_index_add(ix, en, num, &added);
	if (rc == 0 && tw_index_get(ix, en->id) == NULL)
		abort();
	return rc;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct tw_index ix;
	tw_index_init(&ix);
	tw_index_decode(data, size, add, &ix, NULL);
	tw_index_free(&ix);
	return 0;
}
