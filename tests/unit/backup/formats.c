/* Unit tests for the repository codecs: pack header, blob sealing, index
 * table and index objects, tree encoding, snapshots. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>
#include <zstd.h>

#include "backup/index.h"
#include "backup/pack.h"
#include "backup/snapshot.h"
#include "backup/tree.h"

static void fill_id(uint8_t id[32], uint32_t v)
{
	for (int i = 0; i < 32; i++)
		id[i] = (uint8_t)(v * 2654435761u >> (i % 4 * 8)) ^ (uint8_t)i;
	memcpy(id, &v, 4);
}

static void blob_seal_open_compress_and_tamper(void **state)
{
	struct tw_keys k;
	assert_int_equal(tw_crypto_keys_new(&k, NULL), 0);
	ZSTD_CCtx *cc = ZSTD_createCCtx();
	size_t n = 100000;
	uint8_t *pt = malloc(n), *scratch = malloc(n), *out = malloc(n + TW_SEAL_OVERHEAD);
	for (size_t i = 0; i < n; i++)
		pt[i] = (uint8_t)(i % 7); /* compressible */
	uint8_t id[32];
	assert_int_equal(tw_crypto_id(&k, pt, n, id), 0);
	size_t olen;
	uint8_t flags;
	assert_int_equal(tw_blob_seal(&k, cc, 3, TW_BLOB_DATA, id, pt, n, scratch, out, &olen, &flags), 0);
	assert_int_equal(flags, TW_BLOB_ZSTD);
	assert_true(olen < n / 10);
	struct tw_pack_entry en = {TW_BLOB_DATA, flags, {0}, 0, (uint32_t)olen, (uint32_t)n, {0}};
	memcpy(en.id, id, 32);
	uint8_t *back;
	assert_int_equal(tw_blob_open(&k, NULL, &en, out, &back, NULL), 0);
	assert_memory_equal(back, pt, n);
	free(back);
	/* the AAD binds type, flags and id */
	en.type = TW_BLOB_TREE;
	assert_int_equal(tw_blob_open(&k, NULL, &en, out, &back, NULL), TW_ECRYPTO);
	en.type = TW_BLOB_DATA;
	en.id[5] ^= 1;
	assert_int_equal(tw_blob_open(&k, NULL, &en, out, &back, NULL), TW_ECRYPTO);
	en.id[5] ^= 1;
	out[olen / 2] ^= 0x10;
	assert_int_equal(tw_blob_open(&k, NULL, &en, out, &back, NULL), TW_ECRYPTO);
	out[olen / 2] ^= 0x10;
	/* incompressible data is stored raw */
	for (size_t i = 0; i < n; i++)
		pt[i] = (uint8_t)(rand() >> 3);
	assert_int_equal(tw_crypto_id(&k, pt, n, id), 0);
	assert_int_equal(tw_blob_seal(&k, cc, 3, TW_BLOB_DATA, id, pt, n, scratch, out, &olen, &flags), 0);
	assert_int_equal(flags, 0);
	assert_int_equal(olen, n + TW_SEAL_OVERHEAD);
	struct tw_pack_entry en2 = {TW_BLOB_DATA, 0, {0}, 0, (uint32_t)olen, (uint32_t)n, {0}};
	memcpy(en2.id, id, 32);
	assert_int_equal(tw_blob_open(&k, NULL, &en2, out, &back, NULL), 0);
	assert_memory_equal(back, pt, n);
	free(back);
	/* a wrong ID with a valid seal (same key) is caught by the re-hash */
	uint8_t wrong[32];
	memset(wrong, 7, 32);
	assert_int_equal(tw_blob_seal(&k, NULL, 3, TW_BLOB_DATA, wrong, pt, n, scratch, out, &olen, &flags), 0);
	memcpy(en2.id, wrong, 32);
	assert_int_equal(tw_blob_open(&k, NULL, &en2, out, &back, NULL), TW_ECORRUPT);
	ZSTD_freeCCtx(cc);
	free(pt);
	free(scratch);
	free(out);
	tw_crypto_keys_clear(&k);
}

/* Sorted keys, as on btree leaf pages: the sorted profile must shrink them,
 * open like any blob, and TW_ZP_DEFAULT must give back the plain level's
 * output byte for byte (trees sealed after an index unit on one context). */
static void zstd_profiles(void **state)
{
	(void)state;
	struct tw_keys k;
	assert_int_equal(tw_crypto_keys_new(&k, NULL), 0);
	ZSTD_CCtx *cc = ZSTD_createCCtx(), *fresh = ZSTD_createCCtx();
	size_t n = 65536;
	uint8_t *pt = malloc(n), *scratch = malloc(n), *out = malloc(n + TW_SEAL_OVERHEAD);
	uint64_t x = 88172645463325252ull;
	for (size_t i = 0; i + 16 <= n; i += 16) { /* index tuple: ctid, header, 8-byte key */
		x ^= x << 13, x ^= x >> 7, x ^= x << 17;
		uint32_t key = (uint32_t)(i / 16 * 3 + (x & 1));
		uint8_t t[16] = {0, 0, (uint8_t)(x >> 8), (uint8_t)(x >> 16), (uint8_t)(x >> 24), 0, 16, 0,
				 (uint8_t)key, (uint8_t)(key >> 8), (uint8_t)(key >> 16), 0, 0, 0, 0, 0};
		memcpy(pt + i, t, 16);
	}
	uint8_t id[32];
	assert_int_equal(tw_crypto_id(&k, pt, n, id), 0);
	size_t plain, sorted, again, ref;
	uint8_t flags;
	assert_int_equal(tw_blob_seal(&k, fresh, 3, TW_BLOB_DATA, id, pt, n, scratch, out, &ref, &flags), 0);
	tw_zstd_profile(cc, TW_ZP_SORTED);
	assert_int_equal(tw_blob_seal(&k, cc, 3, TW_BLOB_DATA, id, pt, n, scratch, out, &sorted, &flags), 0);
	assert_int_equal(flags, TW_BLOB_ZSTD);
	struct tw_pack_entry en = {TW_BLOB_DATA, flags, {0}, 0, (uint32_t)sorted, (uint32_t)n, {0}};
	memcpy(en.id, id, 32);
	uint8_t *back;
	assert_int_equal(tw_blob_open(&k, NULL, &en, out, &back, NULL), 0);
	assert_memory_equal(back, pt, n);
	free(back);
	tw_zstd_profile(cc, TW_ZP_DEFAULT);
	assert_int_equal(tw_blob_seal(&k, cc, 3, TW_BLOB_DATA, id, pt, n, scratch, out, &plain, &flags), 0);
	assert_int_equal(plain, ref);
	assert_true(sorted < plain);
	tw_zstd_profile(cc, TW_ZP_SORTED);
	assert_int_equal(tw_blob_seal(&k, cc, 3, TW_BLOB_DATA, id, pt, n, scratch, out, &again, &flags), 0);
	assert_int_equal(again, sorted);
	ZSTD_freeCCtx(cc);
	ZSTD_freeCCtx(fresh);
	tw_crypto_keys_clear(&k);
	free(pt);
	free(scratch);
	free(out);
}

static void pack_header_round_trip(void **state)
{
	struct tw_pack_entry e[3];
	uint32_t off = 0;
	for (int i = 0; i < 3; i++) {
		e[i].type = TW_BLOB_DATA;
		e[i].flags = 0;
		fill_id(e[i].id, (uint32_t)i);
		e[i].offset = off;
		e[i].raw_length = 100u * (uint32_t)(i + 1);
		e[i].length = e[i].raw_length + TW_SEAL_OVERHEAD;
		off += e[i].length;
	}
	struct tw_dbuf b;
	tw_dbuf_init(&b, 1 << 20);
	assert_int_equal(tw_pack_header_encode(e, 3, &b), 0);
	struct tw_pack_entry *back;
	uint32_t n;
	assert_int_equal(tw_pack_header_decode((uint8_t *)b.data, b.len, off, &back, &n, NULL), 0);
	assert_int_equal(n, 3);
	for (int i = 0; i < 3; i++) {
		assert_int_equal(back[i].type, e[i].type);
		assert_memory_equal(back[i].id, e[i].id, 32);
		assert_int_equal(back[i].offset, e[i].offset);
		assert_int_equal(back[i].length, e[i].length);
		assert_int_equal(back[i].raw_length, e[i].raw_length);
	}
	free(back);
	/* wrong data end, gap, truncated, bad magic */
	assert_int_equal(tw_pack_header_decode((uint8_t *)b.data, b.len, off + 1, &back, &n, NULL), TW_ECORRUPT);
	assert_int_equal(tw_pack_header_decode((uint8_t *)b.data, b.len - 1, off, &back, &n, NULL), TW_ECORRUPT);
	b.data[0] = 'X';
	assert_int_equal(tw_pack_header_decode((uint8_t *)b.data, b.len, off, &back, &n, NULL), TW_ECORRUPT);
	b.data[0] = 'T';
	b.data[12 + TW_PACK_ENTRY_LEN + 34] ^= 1; /* second entry's offset */
	assert_int_equal(tw_pack_header_decode((uint8_t *)b.data, b.len, off, &back, &n, NULL), TW_ECORRUPT);
	tw_dbuf_free(&b);
}

/* Version 2 metadata: the zstd-compressed version-1 form. */
static void meta_compressed_forms(void **state)
{
	(void)state;
	struct tw_pack_entry e[64];
	uint32_t off = 0;
	for (int i = 0; i < 64; i++) {
		e[i] = (struct tw_pack_entry){TW_BLOB_DATA, TW_BLOB_ZSTD, {0}, off, 1000, 65536, {0}};
		fill_id(e[i].id, (uint32_t)i);
		off += 1000;
	}
	struct tw_dbuf b;
	tw_dbuf_init(&b, 1 << 20);
	assert_int_equal(tw_pack_header_encode(e, 64, &b), 0);
	size_t plain = b.len;
	assert_int_equal(tw_meta_pack(&b), 0);
	assert_true(b.len < plain);
	assert_int_equal(b.data[4], 2);
	assert_int_equal(tw_le32_get((uint8_t *)b.data + 8), plain);
	struct tw_pack_entry *back;
	uint32_t n;
	assert_int_equal(tw_pack_header_decode((uint8_t *)b.data, b.len, off, &back, &n, NULL), 0);
	assert_int_equal(n, 64);
	assert_memory_equal(back[63].id, e[63].id, 32);
	assert_int_equal(back[63].offset, e[63].offset);
	free(back);
	/* a version-2 form is packed only once; truncated, a wrong length, a
	 * length beyond what the compressed size allows: refused */
	assert_int_equal(tw_meta_pack(&b), TW_EINVAL);
	assert_int_equal(tw_pack_header_decode((uint8_t *)b.data, b.len - 1, off, &back, &n, NULL), TW_ECORRUPT);
	tw_le32_put((uint8_t *)b.data + 8, (uint32_t)plain + 1);
	assert_int_equal(tw_pack_header_decode((uint8_t *)b.data, b.len, off, &back, &n, NULL), TW_ECORRUPT);
	tw_le32_put((uint8_t *)b.data + 8, 100u << 20);
	assert_int_equal(tw_pack_header_decode((uint8_t *)b.data, b.len, off, &back, &n, NULL), TW_ECORRUPT);
	tw_le32_put((uint8_t *)b.data + 8, (uint32_t)plain);
	b.data[5] = 1;
	assert_int_equal(tw_pack_header_decode((uint8_t *)b.data, b.len, off, &back, &n, NULL), TW_ECORRUPT);
	b.data[5] = 0;
	/* the magic inside must be the outer one: a compressed index is no pack header */
	uint8_t *tmp;
	const uint8_t *o;
	size_t on;
	memcpy(b.data, "TWIX", 4);
	assert_int_equal(tw_meta_unpack("TWIX", (uint8_t *)b.data, b.len, 1 << 20, &o, &on, &tmp, NULL), TW_ECORRUPT);
	assert_null(tmp);
	/* a version-1 form is handed through as it is */
	struct tw_dbuf v1;
	tw_dbuf_init(&v1, 1 << 20);
	assert_int_equal(tw_pack_header_encode(e, 2, &v1), 0);
	assert_int_equal(tw_meta_unpack("TWPH", (uint8_t *)v1.data, v1.len, 1 << 20, &o, &on, &tmp, NULL), 0);
	assert_ptr_equal(o, v1.data);
	assert_int_equal(on, v1.len);
	assert_null(tmp);
	/* tiny plaintexts that do not shrink stay version 1 */
	struct tw_dbuf one;
	tw_dbuf_init(&one, 1 << 20);
	assert_int_equal(tw_pack_header_encode(e, 1, &one), 0);
	size_t l1 = one.len;
	assert_int_equal(tw_meta_pack(&one), 0);
	assert_int_equal(one.len, l1);
	assert_int_equal(one.data[4], 1);
	tw_dbuf_free(&one);
	tw_dbuf_free(&v1);
	tw_dbuf_free(&b);
}

static int count_cb(void *arg, const uint8_t pack_id[32], const struct tw_pack_entry *en)
{
	(*(int *)arg)++;
	return 0;
}

static void index_table_and_objects(void **state)
{
	struct tw_index ix;
	tw_index_init(&ix);
	enum { N = 50000 };
	uint8_t pid[32];
	memset(pid, 0xAA, 32);
	uint32_t pnum;
	assert_int_equal(tw_index_pack(&ix, pid, &pnum), 0);
	assert_int_equal(pnum, 0);
	for (uint32_t i = 0; i < N; i++) {
		struct tw_pack_entry en = {TW_BLOB_DATA, 0, {0}, i * 10, 38, 10, {0}};
		fill_id(en.id, i);
		int added;
		assert_int_equal(tw_index_add(&ix, &en, i % 2 ? pnum : TW_PACK_NEW, &added), 0);
		assert_int_equal(added, 1);
		if (i > 2000 && i % 997 == 0)
			assert_true(ix.cap * sizeof(struct tw_idx_slot) / (i + 1) <= 100);
	}
	assert_int_equal(ix.n, N);
	/* memory: <= 100 bytes per blob, at every size */
	assert_true(ix.cap * sizeof(struct tw_idx_slot) / N <= 100);
	assert_true(sizeof(struct tw_idx_slot) <= 52);
	for (uint32_t i = 0; i < N; i++) {
		uint8_t id[32];
		fill_id(id, i);
		const struct tw_idx_slot *s = tw_index_get(&ix, id);
		assert_non_null(s);
		assert_int_equal(s->offset, i * 10);
	}
	uint8_t absent[32];
	fill_id(absent, N + 5);
	assert_null(tw_index_get(&ix, absent));
	/* a NEW slot is completed by a later add; a located one is kept */
	struct tw_pack_entry en = {TW_BLOB_DATA, 0, {0}, 777, 38, 10, {0}};
	fill_id(en.id, 0);
	int added;
	assert_int_equal(tw_index_add(&ix, &en, pnum, &added), 0);
	assert_int_equal(added, 0);
	assert_int_equal(tw_index_get(&ix, en.id)->offset, 777);
	fill_id(en.id, 1);
	assert_int_equal(tw_index_add(&ix, &en, pnum, &added), 0);
	assert_int_equal(tw_index_get(&ix, en.id)->offset, 10);
	/* pack numbers are stable and deduplicated */
	uint8_t pid2[32];
	memset(pid2, 0xBB, 32);
	uint32_t p2, p1again;
	assert_int_equal(tw_index_pack(&ix, pid2, &p2), 0);
	assert_int_equal(tw_index_pack(&ix, pid, &p1again), 0);
	assert_int_equal(p2, 1);
	assert_int_equal(p1again, 0);
	tw_index_free(&ix);

	/* object codec */
	struct tw_index_enc w;
	tw_index_enc_init(&w);
	struct tw_pack_entry ents[4];
	for (int i = 0; i < 4; i++) {
		ents[i] = (struct tw_pack_entry){TW_BLOB_TREE, TW_BLOB_ZSTD, {0}, (uint32_t)i * 50, 50, 400, {0}};
		fill_id(ents[i].id, (uint32_t)i + 100);
	}
	assert_int_equal(tw_index_enc_pack(&w, pid, ents, 4), 0);
	assert_int_equal(tw_index_enc_pack(&w, pid2, ents, 2), 0);
	tw_index_enc_finish(&w);
	int cnt = 0;
	assert_int_equal(tw_index_decode((uint8_t *)w.buf.data, w.buf.len, count_cb, &cnt, NULL), 0);
	assert_int_equal(cnt, 6);
	cnt = 0;
	assert_int_equal(tw_index_decode((uint8_t *)w.buf.data, w.buf.len - 1, count_cb, &cnt, NULL), TW_ECORRUPT);
	tw_index_enc_free(&w);
	/* the version-1 form (older repositories) still reads */
	tw_index_enc_init(&w);
	assert_int_equal(tw_index_enc_pack(&w, pid, ents, 4), 0);
	tw_le32_put((uint8_t *)w.buf.data + 8, 1);
	cnt = 0;
	assert_int_equal(tw_index_decode((uint8_t *)w.buf.data, w.buf.len, count_cb, &cnt, NULL), 0);
	assert_int_equal(cnt, 4);
	w.buf.data[12 + 32 + 4] = 9; /* bad blob type */
	assert_int_equal(tw_index_decode((uint8_t *)w.buf.data, w.buf.len, count_cb, &cnt, NULL), TW_ECORRUPT);
	tw_index_enc_free(&w);
}

static void tree_round_trip_and_validation(void **state)
{
	uint8_t chunks[3 * 32];
	for (int i = 0; i < 3; i++)
		fill_id(chunks + 32 * i, (uint32_t)i);
	struct tw_node nodes[4];
	memset(nodes, 0, sizeof nodes);
	const char *names[4] = {"a\nb", "dir", "link", "\xff\xfe"};
	for (int i = 0; i < 4; i++) {
		nodes[i].name = (const uint8_t *)names[i];
		nodes[i].name_len = (uint16_t)strlen(names[i]);
		nodes[i].mode = 0644;
		nodes[i].uid = 1000;
		nodes[i].gid = 100;
		nodes[i].user = (const uint8_t *)"alice";
		nodes[i].user_len = 5;
		nodes[i].mtime_ns = 1600000000123456789LL;
		nodes[i].ctime_ns = -5;
		nodes[i].ino = 42 + (uint64_t)i;
	}
	nodes[0].type = TW_NODE_FILE;
	nodes[0].chunks = chunks;
	nodes[0].nchunks = 3;
	nodes[0].size = 3000000;
	nodes[0].flags = TW_NODE_SPARSE | TW_NODE_HARDLINK;
	nodes[1].type = TW_NODE_DIR;
	memset(nodes[1].subtree, 0x5A, 32);
	struct tw_dbuf xb;
	tw_dbuf_init(&xb, 1 << 20);
	assert_int_equal(tw_xattr_append(&xb, "user.one", "1", 1), 0);
	assert_int_equal(tw_xattr_append(&xb, "security.selinux", "ctx\0", 4), 0);
	assert_int_equal(tw_xattr_append(&xb, "", "x", 1), TW_EINVAL);
	nodes[1].xattrs = (const uint8_t *)xb.data;
	nodes[1].xattrs_len = (uint32_t)xb.len;
	nodes[1].nxattrs = 2;
	nodes[2].type = TW_NODE_SYMLINK;
	nodes[2].target = (const uint8_t *)"../x";
	nodes[2].target_len = 4;
	nodes[3].type = TW_NODE_FIFO;
	struct tw_dbuf b;
	tw_dbuf_init(&b, 1 << 20);
	assert_int_equal(tw_tree_encode(nodes, 4, &b), 0);
	struct tw_node *back;
	uint32_t n;
	assert_int_equal(tw_tree_decode((uint8_t *)b.data, b.len, &back, &n, NULL), 0);
	assert_int_equal(n, 4);
	for (int i = 0; i < 4; i++) {
		assert_int_equal(back[i].name_len, nodes[i].name_len);
		assert_memory_equal(back[i].name, nodes[i].name, nodes[i].name_len);
		assert_int_equal(back[i].type, nodes[i].type);
		assert_int_equal(back[i].mtime_ns, nodes[i].mtime_ns);
		assert_int_equal(back[i].ctime_ns, -5);
		assert_int_equal(back[i].ino, nodes[i].ino);
		assert_int_equal(back[i].user_len, 5);
	}
	assert_int_equal(back[0].nchunks, 3);
	assert_memory_equal(back[0].chunks, chunks, sizeof chunks);
	assert_int_equal(back[0].flags, TW_NODE_SPARSE | TW_NODE_HARDLINK);
	assert_memory_equal(back[1].subtree, nodes[1].subtree, 32);
	assert_int_equal(back[1].nxattrs, 2);
	uint32_t pos = 0, vl;
	const uint8_t *xn, *xv;
	uint8_t xnl;
	assert_true(tw_xattr_next(back[1].xattrs, back[1].xattrs_len, &pos, &xn, &xnl, &xv, &vl));
	assert_int_equal(xnl, 8);
	assert_memory_equal(xn, "user.one", 8);
	assert_int_equal(vl, 1);
	assert_true(tw_xattr_next(back[1].xattrs, back[1].xattrs_len, &pos, &xn, &xnl, &xv, &vl));
	assert_int_equal(vl, 4);
	assert_memory_equal(xv, "ctx\0", 4);
	assert_false(tw_xattr_next(back[1].xattrs, back[1].xattrs_len, &pos, &xn, &xnl, &xv, &vl));
	assert_int_equal(back[0].nxattrs, 0);
	assert_memory_equal(back[2].target, "../x", 4);
	assert_non_null(tw_tree_find(back, n, (const uint8_t *)"link", 4));
	assert_null(tw_tree_find(back, n, (const uint8_t *)"lin", 3));
	free(back);
	/* every truncation is rejected */
	for (size_t cut = 0; cut < b.len; cut += 7)
		assert_int_equal(tw_tree_decode((uint8_t *)b.data, cut, &back, &n, NULL), TW_ECORRUPT);
	tw_dbuf_free(&b);
	tw_dbuf_free(&xb);
	/* dangerous names are rejected by the decoder */
	const char *bad[] = {"..", ".", "a/b", "/"};
	for (int i = 0; i < 4; i++) {
		struct tw_node one = nodes[3];
		one.name = (const uint8_t *)bad[i];
		one.name_len = (uint16_t)strlen(bad[i]);
		tw_dbuf_init(&b, 1 << 20);
		assert_int_equal(tw_tree_encode(&one, 1, &b), 0);
		assert_int_equal(tw_tree_decode((uint8_t *)b.data, b.len, &back, &n, NULL), TW_ECORRUPT);
		tw_dbuf_free(&b);
	}
	/* unsorted or duplicate names are rejected */
	struct tw_node two[2] = {nodes[3], nodes[3]};
	tw_dbuf_init(&b, 1 << 20);
	assert_int_equal(tw_tree_encode(two, 2, &b), 0);
	assert_int_equal(tw_tree_decode((uint8_t *)b.data, b.len, &back, &n, NULL), TW_ECORRUPT);
	tw_dbuf_free(&b);
	assert_false(tw_tree_name_ok((const uint8_t *)"a\0b", 3));
	assert_true(tw_tree_name_cmp((const uint8_t *)"ab", 2, (const uint8_t *)"abc", 3) < 0);
}

static void snapshot_round_trip(void **state)
{
	char *paths[] = {"/data", "/srv/x"}, *tags[] = {"daily"};
	struct tw_snapshot s;
	memset(&s, 0, sizeof s);
	s.time_ns = 1795723200123456789LL;
	memset(s.tree, 0x11, 32);
	s.hostname = "h";
	s.username = "u";
	s.paths = paths;
	s.npaths = 2;
	s.tags = tags;
	s.ntags = 1;
	s.files = 7;
	struct tw_dbuf b;
	tw_dbuf_init(&b, 1 << 20);
	assert_int_equal(tw_snapshot_encode(&s, &b), 0);
	struct tw_snapshot *back;
	assert_int_equal(tw_snapshot_decode((uint8_t *)b.data, b.len, &back, NULL), 0);
	assert_int_equal(back->time_ns, s.time_ns);
	assert_memory_equal(back->tree, s.tree, 32);
	assert_int_equal(back->npaths, 2);
	assert_string_equal(back->paths[1], "/srv/x");
	assert_true(tw_snapshot_has_tag(back, "daily"));
	assert_false(tw_snapshot_has_tag(back, "weekly"));
	assert_int_equal(back->files, 7);
	tw_snapshot_free(back);
	const char *bad[] = {"{}", "[]", "{\"version\":1,\"time_ns\":1,\"tree\":\"zz\",\"hostname\":\"h\",\"username\":\"u\",\"paths\":[]}",
			     "{\"version\":2}", "not json"};
	for (int i = 0; i < 5; i++)
		assert_int_equal(tw_snapshot_decode((const uint8_t *)bad[i], strlen(bad[i]), &back, NULL), TW_ECORRUPT);
	char ts[48];
	tw_snapshot_time_str(s.time_ns, ts, sizeof ts);
	assert_string_equal(ts, "2026-11-26T20:00:00.123456789Z");
	tw_dbuf_free(&b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(blob_seal_open_compress_and_tamper),
		cmocka_unit_test(zstd_profiles), cmocka_unit_test(pack_header_round_trip),
		cmocka_unit_test(meta_compressed_forms),
		cmocka_unit_test(index_table_and_objects),
		cmocka_unit_test(tree_round_trip_and_validation),
		cmocka_unit_test(snapshot_round_trip),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
