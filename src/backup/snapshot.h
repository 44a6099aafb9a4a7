/* snapshot.h — snapshot objects (JSON plaintext, docs/repository-format.md).
 * tw_snapshot_decode() parses plaintext AFTER decryption and validates it
 * (fuzz/backup_snapshot.c calls it directly). */
#ifndef TW_BACKUP_SNAPSHOT_H
#define TW_BACKUP_SNAPSHOT_H

#include <stddef.h>
#include <stdint.h>

#include "backup/crypto.h"
#include "core/dbuf.h"
#include "core/err.h"

#define TW_SNAP_MAX_LIST 1024

struct tw_snapshot {
	char id[2 * TW_ID_LEN + 1]; /* storage name; filled by the repository layer */
	int64_t time_ns;
	uint8_t tree[TW_ID_LEN];
	char *hostname, *username;
	char parent[2 * TW_ID_LEN + 1]; /* "" when none */
	char **paths, **tags, **excludes;
	size_t npaths, ntags, nexcludes;
	uint64_t files, dirs, bytes, new_bytes;
	char *pg; /* JSON object text of a physical PostgreSQL snapshot (src/pg/meta.h), or NULL */
};

int tw_snapshot_encode(const struct tw_snapshot *s, struct tw_dbuf *out);
/* *out is malloc'd; free with tw_snapshot_free. */
int tw_snapshot_decode(const uint8_t *p, size_t n, struct tw_snapshot **out, struct tw_err *e);
void tw_snapshot_free(struct tw_snapshot *s); /* s may be NULL */
int tw_snapshot_has_tag(const struct tw_snapshot *s, const char *tag);
/* "2026-11-25T20:00:00.123456789Z" (UTC) into buf (>= 40 bytes). */
void tw_snapshot_time_str(int64_t time_ns, char *buf, size_t cap);

#endif
