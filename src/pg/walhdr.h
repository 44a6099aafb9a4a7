/* walhdr.h — the long page header at the start of every WAL segment, and
 * the registration of a cluster in a repository's WAL archive.
 *
 * PostgreSQL begins each segment with an XLogLongPageHeaderData (native
 * byte order; little-endian on every platform tapwork builds for):
 *   u16 xlp_magic (XLOG_PAGE_MAGIC: changes with every WAL format, i.e.
 *   every major version) | u16 xlp_info (XLP_LONG_HEADER = 0x0002 set) |
 *   u32 xlp_tli | u64 xlp_pageaddr | u32 xlp_rem_len | 4 bytes padding |
 *   u64 xlp_sysid | u32 xlp_seg_size | u32 xlp_xlog_blcksz   (40 bytes)
 * archive-push reads it to refuse a segment of another database system or
 * another PostgreSQL major version than the repository registered for the
 * cluster (docs/repository-format.md "Cluster registration"). The
 * registration is a small JSON document; both parsers read untrusted bytes
 * as slices and are driven by fuzz/pg_walhdr.c. */
#ifndef TW_PG_WALHDR_H
#define TW_PG_WALHDR_H

#include <stddef.h>
#include <stdint.h>

#include "core/err.h"

#define TW_PGWALHDR_LEN 40
#define TW_PGWALHDR_LONG 0x0002 /* XLP_LONG_HEADER */

struct tw_pgwalhdr {
	uint16_t magic, info;
	uint32_t tli;
	uint64_t pageaddr;
	uint64_t sysid;
	uint32_t seg_size, blcksz;
};

/* Parse the long page header at p[0..n). TW_EINVAL (with a reason in e)
 * when it is not one: too short, no XLP_LONG_HEADER, unknown info bits,
 * a segment size that is not a power of two in 1 MiB..1 GiB, a block size
 * that is not a power of two in 1..64 KiB, a page address that is not the
 * start of a segment, a zero system identifier. */
int tw_pgwalhdr_parse(const uint8_t *p, size_t n, struct tw_pgwalhdr *h, struct tw_err *e);

/* PostgreSQL major version (13..17) whose WAL carries magic; 0 if unknown. */
unsigned tw_pgwalhdr_major(uint16_t magic);
/* XLOG_PAGE_MAGIC of server_version_num (e.g. 150018); 0 if unknown. */
uint16_t tw_pgwalhdr_magic(uint32_t server_version_num);

/* What the repository registered for one cluster: the first archive-push
 * (from the segment's header) or physical backup (from the server) writes it. */
struct tw_pgreg {
	uint64_t sysid;
	uint16_t magic;
	uint32_t seg_size;
};

/* JSON text (malloc'd, NUL-terminated). */
int tw_pgreg_encode(const struct tw_pgreg *g, char **out);
/* Parse p[0..n) (not NUL-terminated). TW_ECORRUPT when malformed. */
int tw_pgreg_decode(const uint8_t *p, size_t n, struct tw_pgreg *g, struct tw_err *e);

/* 0 when header h may be archived for a cluster registered as g; else
 * TW_EINVAL with a message that names both identifiers and what to do.
 * wal is the file's name, for the message. */
int tw_pgreg_check(const struct tw_pgreg *g, const struct tw_pgwalhdr *h, const char *wal,
                   struct tw_err *e);

#endif
