/* Fuzz target: timeline history files (tw_pgwal_history_parse) and the
 * WAL name and LSN parsers; what parses must be ordered and reformat to
 * itself. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "pg/wal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct tw_pgwal_fork f[16];
	size_t n = 0;
	if (tw_pgwal_history_parse(data, size, f, 16, &n) == 0)
		for (size_t i = 1; i < n; i++)
			if (f[i].tli <= f[i - 1].tli)
				abort();
	uint64_t lsn, segno;
	uint32_t tli;
	if (tw_pgwal_lsn_parse((const char *)data, size, &lsn) == 0) {
		char buf[24];
		uint64_t again;
		tw_pgwal_lsn_str(lsn, buf, sizeof buf);
		if (tw_pgwal_lsn_parse(buf, strlen(buf), &again) != 0 || again != lsn)
			abort();
	}
	if (tw_pgwal_seg_parse((const char *)data, size, TW_PGWAL_SEG_DEFAULT, &tli, &segno) == 0) {
		char buf[32];
		tw_pgwal_seg_name(tli, segno, TW_PGWAL_SEG_DEFAULT, buf, sizeof buf);
		if (tw_pgwal_classify(buf, strlen(buf)) != TW_PGWAL_SEGMENT)
			abort();
	}
	(void)tw_pgwal_classify((const char *)data, size);
	return 0;
}
