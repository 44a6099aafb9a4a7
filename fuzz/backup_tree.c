/* Fuzz target: tree blob plaintext (tw_tree_decode). Whatever decodes must
 * re-encode to the same bytes and have only safe names. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "backup/tree.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct tw_node *nodes;
	uint32_t n;
	if (tw_tree_decode(data, size, &nodes, &n, NULL) != 0)
		return 0;
	for (uint32_t i = 0; i < n; i++)
		if (!tw_tree_name_ok(nodes[i].name, nodes[i].name_len))
			abort();
	struct tw_dbuf b;
	tw_dbuf_init(&b, size + 64);
	if (tw_tree_encode(nodes, n, &b) != 0 || b.len != size || memcmp(b.data, data, size) != 0)
		abort();
	tw_dbuf_free(&b);
	free(nodes);
	return 0;
}
