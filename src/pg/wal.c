/* wal.c — PostgreSQL WAL arithmetic, names and history files (see wal.h). */
#include "pg/wal.h"

#include <stdio.h>
#include <string.h>

#include "core/hex.h"

/* 1..max hex digits at p[0..n) (all of it) into *v. */
static int hex_field(const char *p, size_t n, size_t max, uint64_t *v)
{
	if (n == 0 || n > max)
		return TW_EINVAL;
	uint64_t x = 0;
	for (size_t i = 0; i < n; i++) {
		int d = tw_hexval(p[i]);
		if (d < 0)
			return TW_EINVAL;
		x = x << 4 | (uint64_t)d;
	}
	*v = x;
	return 0;
}

int tw_pgwal_lsn_parse(const char *s, size_t n, uint64_t *lsn)
{
	const char *slash = memchr(s, '/', n);
	if (slash == NULL)
		return TW_EINVAL;
	size_t hl = (size_t)(slash - s);
	uint64_t hi, lo;
	if (hex_field(s, hl, 8, &hi) != 0 || hex_field(slash + 1, n - hl - 1, 8, &lo) != 0)
		return TW_EINVAL;
	*lsn = hi << 32 | lo;
	return 0;
}

void tw_pgwal_lsn_str(uint64_t lsn, char *buf, size_t cap)
{
	snprintf(buf, cap, "%X/%X", (unsigned)(lsn >> 32), (unsigned)lsn);
}

uint64_t tw_pgwal_segno(uint64_t lsn, uint64_t seg_size)
{
	return lsn / seg_size;
}

void tw_pgwal_seg_name(uint32_t tli, uint64_t segno, uint64_t seg_size, char *buf, size_t cap)
{
	uint64_t per = ((uint64_t)1 << 32) / seg_size;
	snprintf(buf, cap, "%08X%08X%08X", (unsigned)tli, (unsigned)(segno / per),
	         (unsigned)(segno % per));
}

int tw_pgwal_seg_parse(const char *name, size_t n, uint64_t seg_size, uint32_t *tli,
                       uint64_t *segno)
{
	uint64_t t, log, seg, per = ((uint64_t)1 << 32) / seg_size;
	if (n != TW_PGWAL_NAME_LEN || hex_field(name, 8, 8, &t) != 0 ||
	    hex_field(name + 8, 8, 8, &log) != 0 || hex_field(name + 16, 8, 8, &seg) != 0 ||
	    t == 0 || seg >= per)
		return TW_EINVAL;
	*tli = (uint32_t)t;
	*segno = log * per + seg;
	return 0;
}

static int all_hex(const char *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (tw_hexval(p[i]) < 0)
			return 0;
	return 1;
}

enum tw_pgwal_kind tw_pgwal_classify(const char *name, size_t n)
{
	if (n == 24 && all_hex(name, 24))
		return TW_PGWAL_SEGMENT;
	if (n == 32 && all_hex(name, 24) && memcmp(name + 24, ".partial", 8) == 0)
		return TW_PGWAL_PARTIAL;
	if (n == 16 && all_hex(name, 8) && memcmp(name + 8, ".history", 8) == 0)
		return TW_PGWAL_HISTORY;
	if (n == 40 && all_hex(name, 24) && name[24] == '.' && all_hex(name + 25, 8) &&
	    memcmp(name + 33, ".backup", 7) == 0)
		return TW_PGWAL_BACKUP;
	return TW_PGWAL_BAD;
}

static int is_space(char c)
{
	return c == ' ' || c == '\t';
}

int tw_pgwal_history_parse(const uint8_t *p, size_t len, struct tw_pgwal_fork *v, size_t cap,
                           size_t *n)
{
	const char *s = (const char *)p;
	size_t pos = 0, k = 0;
	*n = 0;
	while (pos < len) {
		const char *nl = memchr(s + pos, '\n', len - pos);
		size_t end = nl ? (size_t)(nl - s) : len, i = pos;
		pos = nl ? end + 1 : len;
		while (i < end && (is_space(s[i]) || s[i] == '\r'))
			i++;
		if (i == end || s[i] == '#')
			continue;
		/* parent timeline: decimal */
		uint64_t tli = 0;
		size_t d0 = i;
		while (i < end && s[i] >= '0' && s[i] <= '9' && i - d0 < 10)
			tli = tli * 10 + (uint64_t)(s[i++] - '0');
		if (i == d0 || tli == 0 || tli > UINT32_MAX || i == end || !is_space(s[i]))
			return TW_EINVAL;
		while (i < end && is_space(s[i]))
			i++;
		size_t l0 = i;
		while (i < end && !is_space(s[i]) && s[i] != '\r')
			i++;
		uint64_t lsn;
		if (tw_pgwal_lsn_parse(s + l0, i - l0, &lsn) != 0)
			return TW_EINVAL;
		/* the rest of the line is a free-text reason */
		if (k > 0 && tli <= v[k - 1].tli)
			return TW_EINVAL;
		if (k == cap)
			return TW_ELIMIT;
		v[k].tli = (uint32_t)tli;
		v[k].switch_lsn = lsn;
		*n = ++k;
	}
	return 0;
}
