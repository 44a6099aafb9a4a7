/* Fuzz target: the "pg" object of a snapshot (tw_pgmeta_decode); what
 * decodes must encode and decode to the same values. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "pg/meta.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *txt = malloc(size + 1);
	if (txt == NULL)
		return 0;
	memcpy(txt, data, size);
	txt[size] = '\0';
	struct tw_pgmeta m, again;
	if (tw_pgmeta_decode(txt, &m, NULL) == 0) {
		char *enc = NULL;
		if (tw_pgmeta_encode(&m, &enc) != 0 || tw_pgmeta_decode(enc, &again, NULL) != 0 ||
		    again.sysid != m.sysid || again.stop_lsn != m.stop_lsn ||
		    again.start_lsn != m.start_lsn ||
		    strcmp(again.backup_label, m.backup_label) != 0 ||
		    again.data_checksums != m.data_checksums ||
		    again.damaged_total != m.damaged_total || again.ndamaged != m.ndamaged)
			abort();
		tw_pgmeta_clear(&again);
		free(enc);
		tw_pgmeta_clear(&m);
	}
	free(txt);
	return 0;
}
