/* walrec.h — a small reader of PostgreSQL WAL records, enough to find a
 * named restore point (pg_create_restore_point) in archived segments.
 *
 * A segment is a run of pages (xlp_xlog_blcksz bytes, normally 8 KiB);
 * each page starts with a header (24 bytes; 40 for the long header on the
 * segment's first page) whose xlp_rem_len says how many bytes of a record
 * begun on an earlier page continue here (XLP_FIRST_IS_CONTRECORD).
 * Records start at 8-byte aligned positions: a 24-byte XLogRecord header
 * (u32 xl_tot_len | u32 xl_xid | u64 xl_prev | u8 xl_info | u8 xl_rmid |
 * 2 pad | u32 xl_crc), then block reference headers, then the block data,
 * then the record's main data. A record (its header included) may cross
 * pages and segments; the reader carries it over. CRCs are not checked,
 * every length is bounds-checked: the bytes come from the repository and
 * are treated as untrusted (fuzz/pg_walrec.c). */
#ifndef TW_PG_WALREC_H
#define TW_PG_WALREC_H

#include <stddef.h>
#include <stdint.h>

#include "core/err.h"

#define TW_WALREC_KEEP 65536 /* records larger than this are skipped, not decoded */
#define TW_WALREC_RM_XLOG 0
#define TW_WALREC_RESTORE_POINT 0x70 /* XLOG_RESTORE_POINT */
#define TW_WALREC_RP_NAME 64         /* MAXFNAMELEN */

/* One record, as the callback sees it. main is NULL for a record larger
 * than TW_WALREC_KEEP (not decoded). */
struct tw_walrec {
	uint64_t lsn; /* where the record starts */
	uint32_t tot_len;
	uint8_t rmid, info;
	const uint8_t *main;
	uint32_t main_len;
};

struct tw_walrec_reader {
	uint16_t magic; /* of the first segment read; later ones must match */
	uint32_t blcksz;
	uint64_t seg_size;
	uint64_t next_seg; /* LSN a carried record continues at; 0 = none carried */
	/* the record being assembled across pages */
	uint64_t rec_lsn;
	uint32_t rec_len, rec_got;
	uint8_t *buf; /* TW_WALREC_KEEP bytes, malloc'd on first use */
};

void tw_walrec_init(struct tw_walrec_reader *rd);
void tw_walrec_free(struct tw_walrec_reader *rd);

/* Read one whole segment seg[0..n) whose first byte is at LSN seg_lsn,
 * calling cb(arg, rec) for each record that ends in it (a record begun in
 * the previous segment fed is completed when seg_lsn follows it). cb
 * returns 0 to go on, 1 to stop (then *stopped = 1). Reading stops at the
 * end of the records (a zero length: end of WAL or a segment switch).
 * TW_ECORRUPT (reason and LSN in e) when the bytes are not WAL. */
int tw_walrec_segment(struct tw_walrec_reader *rd, const uint8_t *seg, size_t n, uint64_t seg_lsn,
                      int (*cb)(void *arg, const struct tw_walrec *rec), void *arg, int *stopped,
                      struct tw_err *e);

/* 1 when rec is XLOG_RESTORE_POINT named name (then *rp_time, the
 * TimestampTz, microseconds since 2000-01-01, if rp_time != NULL). */
int tw_walrec_is_restore_point(const struct tw_walrec *rec, const char *name, int64_t *rp_time);

#endif
