/* rpoint.c — find a named restore point in the repository's WAL archive
 * (see pitr.h): archived segments are fetched and decrypted as archive-get
 * does, and read with the WAL record reader (walrec.h). */
#include <stdint.h>
#include <stdlib.h>

#include "pg/archive.h"
#include "pg/pitr.h"
#include "pg/wal.h"
#include "pg/walrec.h"

struct want {
	const char *name;
	uint64_t from, until, lsn;
	int found;
};

static int on_record(void *arg, const struct tw_walrec *rec)
{
	struct want *w = arg;
	if (rec->lsn >= w->until)
		return 1;
	if (rec->lsn >= w->from && tw_walrec_is_restore_point(rec, w->name, NULL)) {
		w->found = 1;
		w->lsn = rec->lsn;
		return 1;
	}
	return 0;
}

int tw_pitr_rp_scan(struct tw_repo *r, uint64_t sysid, uint32_t tli, uint64_t seg_size,
                    uint64_t from_lsn, uint64_t until_lsn, const char *name, unsigned *budget,
                    int *found, uint64_t *lsn, int *exhausted, struct tw_err *e)
{
	*found = *exhausted = 0;
	struct want w = {.name = name, .from = from_lsn, .until = until_lsn};
	struct tw_walrec_reader rd;
	tw_walrec_init(&rd);
	uint64_t segno = tw_pgwal_segno(from_lsn, seg_size);
	uint64_t last = until_lsn == UINT64_MAX ? UINT64_MAX : tw_pgwal_segno(until_lsn, seg_size);
	int rc = 0;
	for (; segno <= last; segno++) {
		if (*budget == 0) {
			*exhausted = 1;
			break;
		}
		char wal[32];
		tw_pgwal_seg_name(tli, segno, seg_size, wal, sizeof wal);
		uint8_t *data = NULL;
		size_t n = 0;
		rc = tw_pgarch_get(r, sysid, wal, &data, &n, e);
		if (rc == TW_ENOENT) {
			rc = 0; /* the end of the archive on this timeline */
			break;
		}
		if (rc != 0)
			break;
		(*budget)--;
		int stopped;
		rc = tw_walrec_segment(&rd, data, n, segno * seg_size, on_record, &w, &stopped, e);
		free(data);
		if (rc != 0) {
			rc = tw_err_wrap(e, "%s", wal);
			break;
		}
		if (stopped)
			break;
	}
	tw_walrec_free(&rd);
	if (rc == 0 && w.found) {
		*found = 1;
		*lsn = w.lsn;
	}
	return rc;
}
