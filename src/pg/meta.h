/* meta.h — what a physical PostgreSQL snapshot records about itself: the
 * "pg" object of its snapshot JSON (docs/repository-format.md "PostgreSQL
 * physical snapshots"). Encoded and decoded here so the backup module only
 * carries it as text (struct tw_snapshot.pg). */
#ifndef TW_PG_META_H
#define TW_PG_META_H

#include <stddef.h>
#include <stdint.h>

#include "core/err.h"

struct tw_pgmeta {
	uint64_t sysid;    /* pg_control's system identifier */
	uint32_t version;  /* server_version_num, e.g. 150018 */
	uint32_t tli;      /* timeline the backup started on */
	uint64_t seg_size; /* wal_segment_size in bytes */
	uint64_t start_lsn, stop_lsn;
	int64_t start_ns, stop_ns; /* server clock at pg_backup_start / after pg_backup_stop */
	uint64_t next_xid;         /* first xid not yet assigned after pg_backup_stop */
	char start_wal[25], stop_wal[25];
	char *pgdata;                        /* absolute path backed up */
	char *backup_label, *tablespace_map; /* as pg_backup_stop returned them */
	/* data page checksums (optional in the JSON; absent = not verified) */
	int data_checksums;      /* 1: the cluster has them and the backup verified them */
	uint64_t damaged_total;  /* pages whose checksum did not match, twice */
	struct tw_pgmeta_page *damaged; /* the first TW_PGMETA_DAMAGED_MAX of them */
	size_t ndamaged;
	/* tablespaces (optional in the JSON): where each was backed up from; its
	 * contents are the snapshot's root entry named by the path's last component */
	struct tw_pgmeta_ts *ts;
	size_t nts;
};

#define TW_PGMETA_TS_MAX 64

struct tw_pgmeta_ts {
	uint32_t oid;
	char *name; /* spcname */
	char *path; /* absolute location when backed up */
};

/* Append a tablespace (strings copied). TW_ELIMIT over TW_PGMETA_TS_MAX. */
int tw_pgmeta_add_ts(struct tw_pgmeta *m, uint32_t oid, const char *name, const char *path);

#define TW_PGMETA_DAMAGED_MAX 100

struct tw_pgmeta_page {
	char *file; /* relative to the data directory */
	uint32_t block;
};

/* Append one damaged page (file copied); over the cap only counted. */
int tw_pgmeta_add_damaged(struct tw_pgmeta *m, const char *file, uint32_t block);

/* JSON text (malloc'd, NUL-terminated) of m. */
int tw_pgmeta_encode(const struct tw_pgmeta *m, char **out);
/* Parse JSON text; strings in m are malloc'd (tw_pgmeta_clear). */
int tw_pgmeta_decode(const char *txt, struct tw_pgmeta *m, struct tw_err *e);
void tw_pgmeta_clear(struct tw_pgmeta *m);

#endif
