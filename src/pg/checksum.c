/* checksum.c — PostgreSQL data page checksums (see checksum.h). */
#include "pg/checksum.h"

#include <string.h>

#include "core/le.h"

#define COLS 32
#define ROWS (TW_PGCK_PAGE / (4 * COLS))

/* Each column's starting state, fixed by PostgreSQL's page format. */
static const uint32_t seed[COLS] = {
    0x5B1F36E9, 0xB8525960, 0x02AB50AA, 0x1DE66D2A, 0x79FF467A, 0x9BB9F8A3, 0x217E7CD2, 0x83E13D2C,
    0xF8D4474F, 0xE39EB970, 0x42C6AE16, 0x993216FA, 0x7B093B5D, 0x98DAFF3C, 0xF718902A, 0x0B1C9CDB,
    0xE58F764B, 0x187636BC, 0x5D7B3BB1, 0xE73DE7DE, 0x92BEC979, 0xCCA6C0B2, 0x304A0979, 0x85AA43D4,
    0x783125BB, 0x6CA8EAA2, 0xE407EAC6, 0x4B5CFC3E, 0x9FBF8C76, 0x15CA20BE, 0xF2CA9FD3, 0x959BD756};

static inline uint32_t mix(uint32_t s, uint32_t v)
{
	uint32_t x = s ^ v;
	return x * 16777619u ^ (x >> 17);
}

uint16_t tw_pgck_page(const uint8_t *page, uint32_t blkno)
{
	uint32_t w[ROWS][COLS], s[COLS];
	memcpy(w, page, sizeof w); /* aligned words; x86/arm64 little-endian like the page */
	w[0][2] &= 0xFFFF0000u;    /* pd_checksum (bytes 8..9) counts as zero */
	memcpy(s, seed, sizeof s);
	for (unsigned r = 0; r < ROWS; r++)
		for (unsigned c = 0; c < COLS; c++)
			s[c] = mix(s[c], w[r][c]);
	for (unsigned r = 0; r < 2; r++)
		for (unsigned c = 0; c < COLS; c++)
			s[c] = mix(s[c], 0);
	uint32_t x = 0;
	for (unsigned c = 0; c < COLS; c++)
		x ^= s[c];
	x ^= blkno;
	return (uint16_t)(x % 65535u + 1);
}

static int all_zero(const uint8_t *p, size_t n)
{
	static const uint8_t zero[256];
	for (size_t i = 0; i < n; i += sizeof zero)
		if (memcmp(p + i, zero, sizeof zero) != 0)
			return 0;
	return 1;
}

enum tw_pgck_result tw_pgck_verify(const uint8_t *page, uint32_t blkno, uint64_t start_lsn,
                                   uint16_t *stored, uint16_t *computed)
{
	*stored = tw_le16_get(page + 8);
	*computed = 0;
	if (all_zero(page, TW_PGCK_PAGE))
		return TW_PGCK_NEW;
	/* pd_lsn: u32 xlogid (high half), u32 xrecoff */
	uint64_t lsn = (uint64_t)tw_le32_get(page) << 32 | tw_le32_get(page + 4);
	if (lsn >= start_lsn)
		return TW_PGCK_LATER;
	*computed = tw_pgck_page(page, blkno);
	return *computed == *stored ? TW_PGCK_OK : TW_PGCK_BAD;
}

/* p[0..n) is 1..10 decimal digits. */
static int digits(const char *p, size_t n)
{
	if (n == 0 || n > 10)
		return 0;
	for (size_t i = 0; i < n; i++)
		if (p[i] < '0' || p[i] > '9')
			return 0;
	return 1;
}

/* The next '/'-separated component of rel[*pos..n) into (*c, *cl). */
static int comp(const char *rel, size_t n, size_t *pos, const char **c, size_t *cl)
{
	if (*pos >= n)
		return 0;
	const char *s = memchr(rel + *pos, '/', n - *pos);
	size_t end = s ? (size_t)(s - rel) : n;
	*c = rel + *pos;
	*cl = end - *pos;
	*pos = s ? end + 1 : n;
	return *cl > 0;
}

int tw_pgck_relfile(const char *rel, size_t n, uint32_t *segno)
{
	const char *c[6];
	size_t cl[6], pos = 0, k = 0;
	while (k < 6 && comp(rel, n, &pos, &c[k], &cl[k]))
		k++;
	if (pos < n || k < 2)
		return 0;
	const char *f = c[k - 1];
	size_t fl = cl[k - 1];
	if (k == 2 && !(cl[0] == 6 && memcmp(c[0], "global", 6) == 0))
		return 0;
	if (k == 3 && !(cl[0] == 4 && memcmp(c[0], "base", 4) == 0 && digits(c[1], cl[1])))
		return 0;
	if (k == 5 && !(cl[0] == 9 && memcmp(c[0], "pg_tblspc", 9) == 0 && digits(c[1], cl[1]) &&
	                cl[2] > 3 && memcmp(c[2], "PG_", 3) == 0 && digits(c[3], cl[3])))
		return 0;
	if (k == 4 || k > 5)
		return 0;
	/* RELFILENODE[_fork][.SEGMENT] */
	size_t d = 0;
	while (d < fl && f[d] >= '0' && f[d] <= '9')
		d++;
	if (!digits(f, d))
		return 0;
	size_t i = d;
	if (i < fl && f[i] == '_') {
		size_t s0 = ++i;
		while (i < fl && f[i] >= 'a' && f[i] <= 'z')
			i++;
		size_t l = i - s0;
		if (!((l == 3 && memcmp(f + s0, "fsm", 3) == 0) ||
		      (l == 2 && memcmp(f + s0, "vm", 2) == 0) ||
		      (l == 4 && memcmp(f + s0, "init", 4) == 0)))
			return 0;
	}
	uint64_t seg = 0;
	if (i < fl) {
		if (f[i] != '.' || !digits(f + i + 1, fl - i - 1))
			return 0;
		for (size_t j = i + 1; j < fl; j++)
			seg = seg * 10 + (uint64_t)(f[j] - '0');
		if (seg == 0 || seg > 0xFFFFFFFFu / TW_PGCK_SEG_PAGES)
			return 0;
	}
	*segno = (uint32_t)seg;
	return 1;
}
