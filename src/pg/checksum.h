/* checksum.h — PostgreSQL data page checksums, verified while a physical
 * backup reads the relation files of a cluster initialized with
 * `initdb --data-checksums` (pg_control's data_checksum_version = 1).
 *
 * The algorithm is PostgreSQL's (storage/checksum_impl.h): the 8 KiB page
 * is read as 64 rows of 32 little-endian u32 columns; each column j is
 * folded into its own FNV-1a-like state sums[j] (seeded with a fixed
 * per-column offset) by x = s ^ v; s = x * 16777619 ^ (x >> 17), with the
 * page's pd_checksum field (bytes 8..9) taken as zero; two more rounds of
 * zeros mix the states, they are XORed together, XORed with the block
 * number (the page's position in the relation, across 1 GiB segment files)
 * and reduced to 1..65535 by (c % 65535) + 1. Pure functions, tested in
 * tests/unit/pg/checksum.c. */
#ifndef TW_PG_CHECKSUM_H
#define TW_PG_CHECKSUM_H

#include <stddef.h>
#include <stdint.h>

#define TW_PGCK_PAGE 8192u
#define TW_PGCK_SEG_PAGES 131072u /* pages per 1 GiB segment file (RELSEG_SIZE) */

/* The checksum PostgreSQL would store for page (TW_PGCK_PAGE bytes, any
 * alignment) at block blkno. */
uint16_t tw_pgck_page(const uint8_t *page, uint32_t blkno);

enum tw_pgck_result {
	TW_PGCK_OK = 0, /* the stored checksum matches */
	TW_PGCK_NEW,    /* all zeros: a page extended but not yet written */
	TW_PGCK_LATER,  /* pd_lsn at or after the backup's start: WAL replay rewrites it */
	TW_PGCK_BAD     /* mismatch */
};
/* Verify one page; *stored and *computed get the two checksums. */
enum tw_pgck_result tw_pgck_verify(const uint8_t *page, uint32_t blkno, uint64_t start_lsn,
                                   uint16_t *stored, uint16_t *computed);

/* 1 if rel (relative to PGDATA) is a relation data file whose pages carry
 * checksums: base/DBOID/FILE, global/FILE or pg_tblspc/OID/VERSIONDIR/DBOID/FILE
 * where FILE is RELFILENODE[_fsm|_vm|_init][.SEGMENT]; *segno gets SEGMENT
 * (0 without one). 0 otherwise (pg_filenode.map, PG_VERSION, pg_control...). */
int tw_pgck_relfile(const char *rel, size_t n, uint32_t *segno);

#endif
