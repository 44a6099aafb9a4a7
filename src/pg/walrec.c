/* walrec.c — WAL record reader (see walrec.h). */
#include <stdlib.h>
#include <string.h>

#include "core/le.h"
#include "pg/wal.h"
#include "pg/walhdr.h"
#include "pg/walrec.h"

#define SHORT_PHD 24
#define REC_HDR 24
#define XLP_FIRST_IS_CONTRECORD 0x0001
#define XLP_ALL_FLAGS 0x000F
#define XLR_MAX_BLOCK_ID 32
#define BLOCK_ID_DATA_SHORT 255
#define BLOCK_ID_DATA_LONG 254
#define BLOCK_ID_ORIGIN 253
#define BLOCK_ID_TOPLEVEL_XID 252
#define BKPBLOCK_HAS_IMAGE 0x10
#define BKPBLOCK_SAME_REL 0x80
#define BKPIMAGE_HAS_HOLE 0x01

static size_t align8(size_t v)
{
	return (v + 7) & ~(size_t)7;
}

void tw_walrec_init(struct tw_walrec_reader *rd)
{
	memset(rd, 0, sizeof *rd);
}

void tw_walrec_free(struct tw_walrec_reader *rd)
{
	if (rd == NULL)
		return;
	free(rd->buf);
	rd->buf = NULL;
}

/* Decode the record in b[0..len) (whole): find its main data. */
static int decode(const uint8_t *b, uint32_t len, unsigned major, struct tw_walrec *rec,
                  struct tw_err *e)
{
	char at[24];
	tw_pgwal_lsn_str(rec->lsn, at, sizeof at);
	size_t p = REC_HDR, datatotal = 0;
	uint32_t main_len = 0;
	while (p < len && len - p > datatotal) {
		uint8_t id = b[p++];
		if (id == BLOCK_ID_DATA_SHORT) {
			if (p + 1 > len)
				goto trunc;
			main_len = b[p++];
			datatotal += main_len;
			break; /* by convention the last header */
		} else if (id == BLOCK_ID_DATA_LONG) {
			if (p + 4 > len)
				goto trunc;
			main_len = tw_le32_get(b + p);
			p += 4;
			if (main_len > len)
				goto trunc;
			datatotal += main_len;
			break;
		} else if (id == BLOCK_ID_ORIGIN) {
			if (p + 2 > len)
				goto trunc;
			p += 2;
		} else if (id == BLOCK_ID_TOPLEVEL_XID) {
			if (p + 4 > len)
				goto trunc;
			p += 4;
		} else if (id <= XLR_MAX_BLOCK_ID) {
			if (p + 3 > len)
				goto trunc;
			uint8_t fork_flags = b[p];
			datatotal += tw_le16_get(b + p + 1);
			p += 3;
			if (fork_flags & BKPBLOCK_HAS_IMAGE) {
				if (p + 5 > len)
					goto trunc;
				uint16_t bimg_len = tw_le16_get(b + p);
				uint8_t bimg_info = b[p + 4];
				p += 5;
				/* compressed: 0x02 up to 14; PGLZ/LZ4/ZSTD 0x04|0x08|0x10 from 15
				 */
				int compressed =
				    major >= 15 ? (bimg_info & 0x1C) != 0 : (bimg_info & 0x02) != 0;
				if ((bimg_info & BKPIMAGE_HAS_HOLE) && compressed)
					p += 2;
				datatotal += bimg_len;
			}
			if (!(fork_flags & BKPBLOCK_SAME_REL))
				p += 12; /* RelFileNode */
			p += 4;          /* BlockNumber */
			if (p > len)
				goto trunc;
		} else
			return tw_err_set(e, TW_ECORRUPT, "WAL record at %s: bad block id %u", at,
			                  (unsigned)id);
		if (datatotal > len)
			goto trunc;
	}
	if (p > len || datatotal != len - p)
		return tw_err_set(
		    e, TW_ECORRUPT,
		    "WAL record at %s: headers and data (%zu + %zu bytes) do not fill "
		    "its length %u",
		    at, p, datatotal, (unsigned)len);
	rec->main = b + len - main_len;
	rec->main_len = main_len;
	return 0;
trunc:
	return tw_err_set(e, TW_ECORRUPT, "WAL record at %s: truncated block headers", at);
}

/* The carried record is complete: hand it to cb. */
static int emit(struct tw_walrec_reader *rd, int (*cb)(void *, const struct tw_walrec *), void *arg,
                int *stopped, struct tw_err *e)
{
	struct tw_walrec rec = {.lsn = rd->rec_lsn, .tot_len = rd->rec_len};
	rd->next_seg = 0;
	uint32_t len = rd->rec_len;
	rd->rec_len = rd->rec_got = 0;
	if (len <= TW_WALREC_KEEP) {
		rec.info = rd->buf[16];
		rec.rmid = rd->buf[17];
		int rc = decode(rd->buf, len, tw_pgwalhdr_major(rd->magic), &rec, e);
		if (rc != 0)
			return rc;
	} else {
		rec.info = rd->buf[16];
		rec.rmid = rd->buf[17];
	}
	if (cb(arg, &rec) != 0)
		*stopped = 1;
	return 0;
}

/* Take up to avail bytes of the carried record from p. */
static uint32_t take(struct tw_walrec_reader *rd, const uint8_t *p, size_t avail)
{
	uint32_t want = rd->rec_len - rd->rec_got;
	uint32_t k = avail < want ? (uint32_t)avail : want;
	if (rd->rec_got < TW_WALREC_KEEP) {
		uint32_t c = TW_WALREC_KEEP - rd->rec_got;
		if (c > k)
			c = k;
		memcpy(rd->buf + rd->rec_got, p, c);
	}
	rd->rec_got += k;
	return k;
}

int tw_walrec_segment(struct tw_walrec_reader *rd, const uint8_t *seg, size_t n, uint64_t seg_lsn,
                      int (*cb)(void *arg, const struct tw_walrec *rec), void *arg, int *stopped,
                      struct tw_err *e)
{
	*stopped = 0;
	char at[24];
	tw_pgwal_lsn_str(seg_lsn, at, sizeof at);
	struct tw_pgwalhdr h;
	int rc = tw_pgwalhdr_parse(seg, n, &h, e);
	if (rc != 0)
		return tw_err_wrap(e, "WAL segment at %s", at);
	if (h.pageaddr != seg_lsn || n != h.seg_size || h.blcksz < 64)
		return tw_err_set(e, TW_ECORRUPT,
		                  "WAL segment at %s: page address %llx, size %zu (header says %u)",
		                  at, (unsigned long long)h.pageaddr, n, (unsigned)h.seg_size);
	if (rd->magic == 0) {
		rd->magic = h.magic;
		rd->blcksz = h.blcksz;
		rd->seg_size = h.seg_size;
	} else if (h.magic != rd->magic || h.blcksz != rd->blcksz || h.seg_size != rd->seg_size)
		return tw_err_set(e, TW_ECORRUPT, "WAL segment at %s: another WAL format", at);
	if (rd->buf == NULL && (rd->buf = malloc(TW_WALREC_KEEP)) == NULL)
		return tw_err_set(e, TW_ENOMEM, "out of memory");
	if (rd->rec_len != 0 && rd->next_seg != seg_lsn)
		rd->rec_len = rd->rec_got = 0; /* not the segment that follows: drop it */
	for (size_t off = 0; off < n; off += h.blcksz) {
		const uint8_t *pg = seg + off;
		uint16_t magic = tw_le16_get(pg), info = tw_le16_get(pg + 2);
		uint64_t addr = tw_le64_get(pg + 8);
		uint32_t rem = tw_le32_get(pg + 16);
		size_t hdr = off == 0 ? TW_PGWALHDR_LEN : SHORT_PHD;
		if (magic != h.magic || (info & ~XLP_ALL_FLAGS) != 0 || addr != seg_lsn + off ||
		    ((info & TW_PGWALHDR_LONG) != 0) != (off == 0)) {
			tw_pgwal_lsn_str(seg_lsn + off, at, sizeof at);
			return tw_err_set(e, TW_ECORRUPT, "WAL page at %s: bad page header", at);
		}
		size_t pos = hdr;
		if (rd->rec_len != 0) {
			if (!(info & XLP_FIRST_IS_CONTRECORD)) {
				rd->rec_len = rd->rec_got = 0; /* abandoned (overwritten) record */
			} else {
				if (rem != rd->rec_len - rd->rec_got) {
					tw_pgwal_lsn_str(seg_lsn + off, at, sizeof at);
					return tw_err_set(
					    e, TW_ECORRUPT,
					    "WAL page at %s: continues %u bytes of a record, "
					    "%u expected",
					    at, (unsigned)rem,
					    (unsigned)(rd->rec_len - rd->rec_got));
				}
				pos += take(rd, pg + pos, h.blcksz - pos);
				if (rd->rec_got < rd->rec_len)
					continue; /* the record goes on past this page */
				if ((rc = emit(rd, cb, arg, stopped, e)) != 0 || *stopped)
					return rc;
				pos = align8(pos);
			}
		} else if (info & XLP_FIRST_IS_CONTRECORD) {
			/* the tail of a record begun before what we read: skip it */
			if (rem >= h.blcksz - pos)
				continue;
			pos = align8(pos + rem);
		}
		while (pos < h.blcksz) {
			uint32_t tot = tw_le32_get(pg + pos);
			if (tot == 0)
				return 0; /* end of the records in this segment */
			if (tot < REC_HDR) {
				tw_pgwal_lsn_str(seg_lsn + off + pos, at, sizeof at);
				return tw_err_set(e, TW_ECORRUPT, "WAL record at %s: length %u", at,
				                  (unsigned)tot);
			}
			rd->rec_lsn = seg_lsn + off + pos;
			rd->rec_len = tot;
			rd->rec_got = 0;
			pos += take(rd, pg + pos, h.blcksz - pos);
			if (rd->rec_got < rd->rec_len)
				break;
			if ((rc = emit(rd, cb, arg, stopped, e)) != 0 || *stopped)
				return rc;
			pos = align8(pos);
		}
	}
	if (rd->rec_len != 0)
		rd->next_seg = seg_lsn + n;
	return 0;
}

int tw_walrec_is_restore_point(const struct tw_walrec *rec, const char *name, int64_t *rp_time)
{
	if (rec->rmid != TW_WALREC_RM_XLOG || (rec->info & 0xF0) != TW_WALREC_RESTORE_POINT ||
	    rec->main == NULL || rec->main_len != 8 + TW_WALREC_RP_NAME)
		return 0;
	const char *rp = (const char *)rec->main + 8;
	size_t nl = strlen(name);
	if (nl >= TW_WALREC_RP_NAME || memcmp(rp, name, nl) != 0 || rp[nl] != '\0')
		return 0;
	if (rp_time != NULL)
		*rp_time = (int64_t)tw_le64_get(rec->main);
	return 1;
}
