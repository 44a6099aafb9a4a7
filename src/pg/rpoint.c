/* rpoint.c — find a named restore point in the repository's WAL archive
 * (see pitr.h): archived segments are fetched and decrypted as archive-get
 * does, and read with the WAL record reader (walrec.h). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

static int newest_history(void *arg, const char *wal, uint64_t size)
{
	uint32_t *max = arg;
	(void)size;
	if (tw_pgwal_classify(wal, strlen(wal)) != TW_PGWAL_HISTORY)
		return 0;
	char hex[9];
	memcpy(hex, wal, 8);
	hex[8] = '\0';
	unsigned long t = strtoul(hex, NULL, 16);
	if (t > *max && t <= UINT32_MAX)
		*max = (uint32_t)t;
	return 0;
}

int tw_pitr_tlpath(struct tw_repo *r, uint64_t sysid, uint32_t target, struct tw_pitr_tlpath *p,
                   struct tw_err *e)
{
	p->n = 0;
	int rc;
	if (target == 0) {
		target = 1;
		if ((rc = tw_pgarch_list(r, sysid, newest_history, &target, e)) != 0)
			return rc;
	}
	struct tw_pgwal_fork *f = NULL;
	size_t nf = 0;
	uint8_t *txt = NULL;
	size_t len = 0;
	if (target > 1) {
		char name[32];
		snprintf(name, sizeof name, "%08X.history", (unsigned)target);
		rc = tw_pgarch_get(r, sysid, name, &txt, &len, e);
		if (rc == TW_ENOENT)
			rc = 0; /* no history: recovery sees only that timeline */
		else if (rc != 0)
			return rc;
		if (txt != NULL) {
			if ((f = calloc(TW_PGWAL_HISTORY_MAX, sizeof *f)) == NULL) {
				free(txt);
				return tw_err_set(e, TW_ENOMEM, "out of memory");
			}
			if (tw_pgwal_history_parse(txt, len, f, TW_PGWAL_HISTORY_MAX, &nf) != 0) {
				free(txt);
				free(f);
				return tw_err_set(e, TW_ECORRUPT, "%s: malformed", name);
			}
		}
	}
	uint64_t begin = 0;
	for (size_t i = 0; i < nf; i++) {
		if (f[i].tli >= target || (p->n > 0 && f[i].tli <= p->tli[p->n - 1]))
			break; /* not ascending: keep what is sound */
		p->tli[p->n] = f[i].tli;
		p->begin[p->n++] = begin;
		begin = f[i].switch_lsn;
	}
	p->tli[p->n] = target;
	p->begin[p->n++] = begin;
	free(txt);
	free(f);
	return 0;
}

int tw_pitr_tlpath_has(const struct tw_pitr_tlpath *p, uint32_t tli, uint64_t lsn)
{
	for (size_t i = 0; i < p->n; i++)
		if (p->tli[i] == tli)
			return i + 1 == p->n || lsn < p->begin[i + 1];
	return 0;
}

int tw_pitr_rp_scan(struct tw_repo *r, uint64_t sysid, const struct tw_pitr_tlpath *p,
                    uint64_t seg_size, uint64_t from_lsn, uint64_t until_lsn, const char *name,
                    unsigned *budget, int *found, uint64_t *lsn, int *exhausted, struct tw_err *e)
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
		/* newest timeline first that began at or before this segment */
		char wal[32];
		uint8_t *data = NULL;
		size_t n = 0;
		rc = TW_ENOENT;
		for (size_t k = p->n; k-- > 0 && rc == TW_ENOENT;) {
			if (tw_pgwal_segno(p->begin[k], seg_size) > segno)
				continue;
			tw_pgwal_seg_name(p->tli[k], segno, seg_size, wal, sizeof wal);
			rc = tw_pgarch_get(r, sysid, wal, &data, &n, e);
		}
		if (rc == TW_ENOENT) {
			rc = 0; /* the end of the archive on this path */
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
