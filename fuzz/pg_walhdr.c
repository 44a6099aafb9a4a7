/* Fuzz target: WAL long page headers (tw_pgwalhdr_parse) and cluster
 * registrations (tw_pgreg_decode). A header that parses is checked against
 * a registration made from it (must pass) and one that decodes must
 * encode and decode to the same values. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "pg/walhdr.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct tw_pgwalhdr h;
	struct tw_err e;
	if (tw_pgwalhdr_parse(data, size, &h, &e) == 0) {
		struct tw_pgreg g = {h.sysid, h.magic, h.seg_size};
		if (tw_pgreg_check(&g, &h, "000000010000000000000001", &e) != 0)
			abort();
	}
	struct tw_pgreg g, again;
	if (tw_pgreg_decode(data, size, &g, &e) == 0) {
		char *txt;
		if (tw_pgreg_encode(&g, &txt) != 0 ||
		    tw_pgreg_decode((const uint8_t *)txt, strlen(txt), &again, &e) != 0 ||
		    again.sysid != g.sysid || again.magic != g.magic ||
		    again.seg_size != g.seg_size)
			abort();
		free(txt);
	}
	return 0;
}
