/* tree.h — directory objects (tree blobs), docs/repository-format.md "Trees".
 *
 * Decoding copies nothing: nodes point into the plaintext buffer, which the
 * caller keeps alive. The decoder validates names (no '/', no NUL, not "."
 * or "..", 1..255 bytes), sort order and every length, so code that walks
 * a decoded tree may join names into paths safely. fuzz/backup_tree.c calls
 * tw_tree_decode() directly. */
#ifndef TW_BACKUP_TREE_H
#define TW_BACKUP_TREE_H

#include <stddef.h>
#include <stdint.h>

#include "backup/crypto.h"
#include "core/dbuf.h"
#include "core/err.h"

enum tw_node_type {
	TW_NODE_FILE = 1,
	TW_NODE_DIR,
	TW_NODE_SYMLINK,
	TW_NODE_FIFO,
	TW_NODE_CHR,
	TW_NODE_BLK,
	TW_NODE_SOCK
};
#define TW_NODE_SPARSE 1
#define TW_NODE_HARDLINK 2
#define TW_NAME_MAX 255
#define TW_TREE_MAX_NODES (1u << 22)

struct tw_node {
	const uint8_t *name;
	uint16_t name_len;
	uint8_t type, flags;
	uint32_t mode, uid, gid;
	const uint8_t *user, *group;
	uint8_t user_len, group_len;
	int64_t mtime_ns, ctime_ns;
	uint64_t size, dev, ino, rdev;
	uint32_t nlink;
	const uint8_t *chunks; /* file: nchunks × 32-byte IDs */
	uint32_t nchunks;
	uint8_t subtree[TW_ID_LEN]; /* dir */
	const uint8_t *target;      /* symlink */
	uint16_t target_len;
	const uint8_t *xattrs; /* nxattrs encoded entries, xattrs_len bytes */
	uint32_t xattrs_len;
	uint16_t nxattrs;
};

#define TW_XATTR_VALUE_MAX 65536

int tw_tree_name_ok(const uint8_t *name, size_t len);
/* Sort order of nodes by name (memcmp, shorter first on a common prefix). */
int tw_tree_name_cmp(const uint8_t *a, size_t alen, const uint8_t *b, size_t blen);
/* Encode nodes (already sorted, names valid) into out. */
int tw_tree_encode(const struct tw_node *nodes, uint32_t n, struct tw_dbuf *out);
/* Decode; *nodes is malloc'd (caller frees) and points into p. */
int tw_tree_decode(const uint8_t *p, size_t n, struct tw_node **nodes, uint32_t *count,
		   struct tw_err *e);
/* Iterate encoded xattrs (u8 name_len | name | u32 value_len | value):
 * 1 and the next entry, or 0 at the end. *pos starts at 0. */
int tw_xattr_next(const uint8_t *p, uint32_t len, uint32_t *pos, const uint8_t **name,
		  uint8_t *name_len, const uint8_t **value, uint32_t *value_len);
/* Append one encoded xattr to b. */
int tw_xattr_append(struct tw_dbuf *b, const char *name, const void *value, uint32_t value_len);
/* Binary search by name; NULL when absent. */
const struct tw_node *tw_tree_find(const struct tw_node *nodes, uint32_t n, const uint8_t *name,
				   size_t len);

#endif
