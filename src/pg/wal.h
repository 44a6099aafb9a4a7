/* wal.h — PostgreSQL WAL arithmetic and names, pure functions (no I/O).
 *
 * An LSN is a 64-bit byte position written "X/Y" (two hex halves). WAL is
 * cut into segments of 16 MiB (the default; the size is a parameter here)
 * named TTTTTTTTXXXXXXXXYYYYYYYY: timeline, then the segment number split
 * into "log" (segno / segments-per-4GiB) and "seg" (segno % that). A
 * timeline's history file TTTTTTTT.history lists the timelines it forked
 * from, one "parentTLI<tab>switchpoint LSN<tab>reason" line each.
 * Parsers read slices (pointer + length) of untrusted bytes and never
 * need a terminating NUL; fuzz/pg_history.c drives tw_pgwal_history_parse. */
#ifndef TW_PG_WAL_H
#define TW_PG_WAL_H

#include <stddef.h>
#include <stdint.h>

#include "core/err.h"

#define TW_PGWAL_SEG_DEFAULT ((uint64_t)16 << 20)
#define TW_PGWAL_NAME_LEN 24
#define TW_PGWAL_HISTORY_MAX 1024 /* entries kept from one history file */

/* "16/B374D848" -> 0x16B374D848. 0 or TW_EINVAL. */
int tw_pgwal_lsn_parse(const char *s, size_t n, uint64_t *lsn);
/* Into buf (>= 18 bytes): "16/B374D848" (PostgreSQL's %X/%X). */
void tw_pgwal_lsn_str(uint64_t lsn, char *buf, size_t cap);

/* Segment number holding byte lsn. seg_size: a power of two, 1 MiB..1 GiB. */
uint64_t tw_pgwal_segno(uint64_t lsn, uint64_t seg_size);
/* Name of segment segno on timeline tli into buf (>= 25 bytes). */
void tw_pgwal_seg_name(uint32_t tli, uint64_t segno, uint64_t seg_size, char *buf, size_t cap);
/* Parse a 24-hex segment name (exactly; not .partial etc.). */
int tw_pgwal_seg_parse(const char *name, size_t n, uint64_t seg_size, uint32_t *tli,
                       uint64_t *segno);

/* What a file in pg_wal (or in the WAL namespace) is. */
enum tw_pgwal_kind {
	TW_PGWAL_BAD = 0,
	TW_PGWAL_SEGMENT, /* 000000010000000000000003 */
	TW_PGWAL_PARTIAL, /* 000000010000000000000003.partial */
	TW_PGWAL_HISTORY, /* 00000002.history */
	TW_PGWAL_BACKUP   /* 000000010000000000000003.00000028.backup */
};
enum tw_pgwal_kind tw_pgwal_classify(const char *name, size_t n);

/* One line of a timeline history file. */
struct tw_pgwal_fork {
	uint32_t tli;        /* the parent timeline */
	uint64_t switch_lsn; /* where the child left it */
};
/* Parse a history file: up to cap entries into v (ascending tli, as
 * PostgreSQL writes them); comment ('#') and blank lines are skipped.
 * *n gets the count. TW_EINVAL on a malformed line, TW_ELIMIT over cap. */
int tw_pgwal_history_parse(const uint8_t *p, size_t len, struct tw_pgwal_fork *v, size_t cap,
                           size_t *n);

#endif
