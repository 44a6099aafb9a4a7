/* tree.c — tree blob codec. */
#include "backup/tree.h"

#include <stdlib.h>
#include <string.h>

#include "backup/pack.h"

int tw_tree_name_ok(const uint8_t *name, size_t len)
{
	if (len == 0 || len > TW_NAME_MAX)
		return 0;
	if ((len == 1 && name[0] == '.') || (len == 2 && name[0] == '.' && name[1] == '.'))
		return 0;
	return memchr(name, '/', len) == NULL && memchr(name, '\0', len) == NULL;
}

int tw_tree_name_cmp(const uint8_t *a, size_t alen, const uint8_t *b, size_t blen)
{
	int c = memcmp(a, b, alen < blen ? alen : blen);
	if (c != 0)
		return c;
	return alen < blen ? -1 : alen > blen ? 1 : 0;
}

/* fixed part after the name: type flags mode uid gid */
#define FIX1 (1 + 1 + 4 + 4 + 4)
/* after user/group: mtime ctime size dev ino nlink rdev */
#define FIX2 (8 + 8 + 8 + 8 + 8 + 4 + 8)

int tw_tree_encode(const struct tw_node *nodes, uint32_t n, struct tw_dbuf *out)
{
	uint8_t head[12] = {'T', 'W', 'T', 'R', 1, 0, 0, 0};
	tw_le32_put(head + 8, n);
	int rc = tw_dbuf_append(out, head, sizeof head);
	for (uint32_t i = 0; rc == 0 && i < n; i++) {
		const struct tw_node *nd = &nodes[i];
		uint8_t b[2 + FIX1 + 1], c[1 + FIX2 + 4], *q;
		tw_le16_put(b, nd->name_len);
		q = b + 2;
		*q++ = nd->type;
		*q++ = nd->flags;
		tw_le32_put(q, nd->mode);
		tw_le32_put(q + 4, nd->uid);
		tw_le32_put(q + 8, nd->gid);
		q += 12;
		if ((rc = tw_dbuf_append(out, b, 2)) || (rc = tw_dbuf_append(out, nd->name, nd->name_len)) ||
		    (rc = tw_dbuf_append(out, b + 2, FIX1)))
			break;
		uint8_t ul = nd->user_len, gl = nd->group_len;
		if ((rc = tw_dbuf_append(out, &ul, 1)) || (rc = tw_dbuf_append(out, nd->user, ul)) ||
		    (rc = tw_dbuf_append(out, &gl, 1)) || (rc = tw_dbuf_append(out, nd->group, gl)))
			break;
		q = c;
		tw_le64_put(q, (uint64_t)nd->mtime_ns);
		tw_le64_put(q + 8, (uint64_t)nd->ctime_ns);
		tw_le64_put(q + 16, nd->size);
		tw_le64_put(q + 24, nd->dev);
		tw_le64_put(q + 32, nd->ino);
		tw_le32_put(q + 40, nd->nlink);
		tw_le64_put(q + 44, nd->rdev);
		if ((rc = tw_dbuf_append(out, c, FIX2)))
			break;
		tw_le16_put(c, nd->nxattrs);
		if ((rc = tw_dbuf_append(out, c, 2)) ||
		    (rc = tw_dbuf_append(out, nd->xattrs, nd->xattrs_len)))
			break;
		if (nd->type == TW_NODE_FILE) {
			tw_le32_put(c, nd->nchunks);
			if ((rc = tw_dbuf_append(out, c, 4)) ||
			    (rc = tw_dbuf_append(out, nd->chunks, (size_t)nd->nchunks * TW_ID_LEN)))
				break;
		} else if (nd->type == TW_NODE_DIR) {
			rc = tw_dbuf_append(out, nd->subtree, TW_ID_LEN);
		} else if (nd->type == TW_NODE_SYMLINK) {
			tw_le16_put(c, nd->target_len);
			if ((rc = tw_dbuf_append(out, c, 2)) ||
			    (rc = tw_dbuf_append(out, nd->target, nd->target_len)))
				break;
		}
	}
	return rc;
}

struct rd {
	const uint8_t *p;
	size_t n, pos;
};

static const uint8_t *take(struct rd *r, size_t k)
{
	if (r->n - r->pos < k)
		return NULL;
	const uint8_t *q = r->p + r->pos;
	r->pos += k;
	return q;
}

int tw_tree_decode(const uint8_t *p, size_t n, struct tw_node **nodes, uint32_t *count,
		   struct tw_err *e)
{
	*nodes = NULL;
	*count = 0;
	if (n < 12 || memcmp(p, "TWTR", 4) != 0)
		return tw_err_set(e, TW_ECORRUPT, "tree: bad magic");
	if (p[4] != 1 || p[5] || p[6] || p[7])
		return tw_err_set(e, TW_ECORRUPT, "tree: unknown version %u", p[4]);
	uint32_t cnt = tw_le32_get(p + 8);
	/* every node takes at least 2+1+FIX1+2+FIX2+2 bytes */
	if (cnt > TW_TREE_MAX_NODES || (uint64_t)cnt * (2 + 1 + FIX1 + 2 + FIX2 + 2) > n - 12)
		return tw_err_set(e, TW_ECORRUPT, "tree: bad node count %u", cnt);
	struct tw_node *v = calloc(cnt ? cnt : 1, sizeof *v);
	if (v == NULL)
		return tw_err_set(e, TW_ENOMEM, "out of memory");
	struct rd r = {p, n, 12};
	const uint8_t *q;
	for (uint32_t i = 0; i < cnt; i++) {
		struct tw_node *nd = &v[i];
		if (!(q = take(&r, 2)))
			goto bad;
		nd->name_len = tw_le16_get(q);
		if (!(nd->name = take(&r, nd->name_len)) || !tw_tree_name_ok(nd->name, nd->name_len))
			goto bad;
		if (i > 0 && tw_tree_name_cmp(v[i - 1].name, v[i - 1].name_len, nd->name,
					      nd->name_len) >= 0)
			goto bad;
		if (!(q = take(&r, FIX1)))
			goto bad;
		nd->type = q[0];
		nd->flags = q[1];
		nd->mode = tw_le32_get(q + 2);
		nd->uid = tw_le32_get(q + 6);
		nd->gid = tw_le32_get(q + 10);
		if (nd->type < TW_NODE_FILE || nd->type > TW_NODE_SOCK || (nd->flags & ~3u) ||
		    (nd->mode & ~07777u))
			goto bad;
		if (!(q = take(&r, 1)))
			goto bad;
		nd->user_len = q[0];
		if (!(nd->user = take(&r, nd->user_len)) || !(q = take(&r, 1)))
			goto bad;
		nd->group_len = q[0];
		if (!(nd->group = take(&r, nd->group_len)) || !(q = take(&r, FIX2)))
			goto bad;
		nd->mtime_ns = (int64_t)tw_le64_get(q);
		nd->ctime_ns = (int64_t)tw_le64_get(q + 8);
		nd->size = tw_le64_get(q + 16);
		nd->dev = tw_le64_get(q + 24);
		nd->ino = tw_le64_get(q + 32);
		nd->nlink = tw_le32_get(q + 40);
		nd->rdev = tw_le64_get(q + 44);
		if (!(q = take(&r, 2)))
			goto bad;
		nd->nxattrs = tw_le16_get(q);
		nd->xattrs = r.p + r.pos;
		for (uint16_t k = 0; k < nd->nxattrs; k++) {
			const uint8_t *nl, *name, *vl;
			if (!(nl = take(&r, 1)) || nl[0] == 0 || !(name = take(&r, nl[0])) ||
			    memchr(name, '\0', nl[0]) || !(vl = take(&r, 4)) ||
			    tw_le32_get(vl) > TW_XATTR_VALUE_MAX || !take(&r, tw_le32_get(vl)))
				goto bad;
		}
		nd->xattrs_len = (uint32_t)(r.p + r.pos - nd->xattrs);
		if (nd->type == TW_NODE_FILE) {
			if (!(q = take(&r, 4)))
				goto bad;
			nd->nchunks = tw_le32_get(q);
			if ((uint64_t)nd->nchunks * TW_ID_LEN > r.n - r.pos)
				goto bad;
			nd->chunks = take(&r, (size_t)nd->nchunks * TW_ID_LEN);
		} else if (nd->type == TW_NODE_DIR) {
			if (!(q = take(&r, TW_ID_LEN)))
				goto bad;
			memcpy(nd->subtree, q, TW_ID_LEN);
		} else if (nd->type == TW_NODE_SYMLINK) {
			if (!(q = take(&r, 2)))
				goto bad;
			nd->target_len = tw_le16_get(q);
			if (nd->target_len == 0 || !(nd->target = take(&r, nd->target_len)) ||
			    memchr(nd->target, '\0', nd->target_len))
				goto bad;
		}
	}
	if (r.pos != n)
		goto bad;
	*nodes = v;
	*count = cnt;
	return 0;
bad:
	free(v);
	return tw_err_set(e, TW_ECORRUPT, "tree: malformed node at byte %zu", r.pos);
}

int tw_xattr_next(const uint8_t *p, uint32_t len, uint32_t *pos, const uint8_t **name,
		  uint8_t *name_len, const uint8_t **value, uint32_t *value_len)
{
	if (*pos >= len || len - *pos < 1)
		return 0;
	uint8_t nl = p[*pos];
	if (nl == 0 || len - *pos < 1u + nl + 4u)
		return 0;
	uint32_t vl = tw_le32_get(p + *pos + 1 + nl);
	if (vl > len - *pos - 1 - nl - 4)
		return 0;
	*name = p + *pos + 1;
	*name_len = nl;
	*value = p + *pos + 1 + nl + 4;
	*value_len = vl;
	*pos += 1u + nl + 4u + vl;
	return 1;
}

int tw_xattr_append(struct tw_dbuf *b, const char *name, const void *value, uint32_t value_len)
{
	size_t nl = strlen(name);
	if (nl == 0 || nl > 255 || value_len > TW_XATTR_VALUE_MAX)
		return TW_EINVAL;
	uint8_t h[5];
	h[0] = (uint8_t)nl;
	int rc = tw_dbuf_append(b, h, 1);
	if (rc == 0)
		rc = tw_dbuf_append(b, name, nl);
	tw_le32_put(h, value_len);
	if (rc == 0)
		rc = tw_dbuf_append(b, h, 4);
	if (rc == 0)
		rc = tw_dbuf_append(b, value, value_len);
	return rc;
}

const struct tw_node *tw_tree_find(const struct tw_node *nodes, uint32_t n, const uint8_t *name,
				   size_t len)
{
	uint32_t lo = 0, hi = n;
	while (lo < hi) {
		uint32_t mid = lo + (hi - lo) / 2;
		int c = tw_tree_name_cmp(nodes[mid].name, nodes[mid].name_len, name, len);
		if (c == 0)
			return &nodes[mid];
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return NULL;
}
