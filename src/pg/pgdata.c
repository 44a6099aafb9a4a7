/* pgdata.c — PGDATA skip rules (see pgdata.h). */
#include "pg/pgdata.h"

#include "backup/pack.h"

#include <stdio.h>
#include <string.h>

/* Directories kept empty: PostgreSQL recreates or does not need what was in them. */
static const char *const emptied[] = {"pg_wal",    "pg_replslot",  "pg_dynshmem", "pg_notify",
                                      "pg_serial", "pg_snapshots", "pg_stat_tmp", "pg_subtrans"};
/* Files at the top of PGDATA that are never copied. */
static const char *const top_files[] = {"postmaster.pid",   "postmaster.opts", "backup_label",
                                        "backup_label.old", "tablespace_map",  "tablespace_map.old",
                                        "recovery.signal",  "standby.signal"};

static int eq(const char *p, size_t n, const char *s)
{
	return strlen(s) == n && memcmp(p, s, n) == 0;
}

int tw_pgdata_skip(const char *rel, size_t n)
{
	const char *slash = memchr(rel, '/', n);
	size_t first = slash ? (size_t)(slash - rel) : n;
	for (size_t i = 0; i < sizeof emptied / sizeof *emptied; i++)
		if (eq(rel, first, emptied[i]))
			return slash != NULL && first + 1 < n;
	if (slash == NULL)
		for (size_t i = 0; i < sizeof top_files / sizeof *top_files; i++)
			if (eq(rel, n, top_files[i]))
				return 1;
	/* by the name of any component */
	size_t start = 0;
	while (start < n) {
		const char *s2 = memchr(rel + start, '/', n - start);
		size_t end = s2 ? (size_t)(s2 - rel) : n, len = end - start;
		if (len >= 9 && memcmp(rel + start, "pgsql_tmp", 9) == 0)
			return 1;
		if (eq(rel + start, len, "pg_internal.init"))
			return 1;
		start = end + 1;
	}
	return 0;
}

int tw_pgdata_init_fork(const char *name, size_t n, char *out, size_t cap)
{
	size_t d = 0;
	while (d < n && d < 10 && name[d] >= '0' && name[d] <= '9')
		d++;
	if (d == 0 || (d < n && name[d] != '_' && name[d] != '.'))
		return 0;
	size_t i = d;
	if (i < n && name[i] == '_') {
		size_t f = ++i;
		while (i < n && name[i] >= 'a' && name[i] <= 'z')
			i++;
		size_t fl = i - f;
		if (fl == 4 && memcmp(name + f, "init", 4) == 0)
			return 0;
		if (!((fl == 3 && memcmp(name + f, "fsm", 3) == 0) ||
		      (fl == 2 && memcmp(name + f, "vm", 2) == 0)))
			return 0;
	}
	if (i < n) { /* segment number */
		if (name[i] != '.' || i + 1 == n)
			return 0;
		for (size_t k = i + 1; k < n; k++)
			if (name[k] < '0' || name[k] > '9')
				return 0;
	}
	int w = snprintf(out, cap, "%.*s_init", (int)d, name);
	return w > 0 && (size_t)w < cap;
}

int tw_pgdata_zprofile(const unsigned char *p, size_t n)
{
	size_t valid = 0, special = 0;
	for (size_t off = 0; off + TW_PGDATA_PAGE <= n; off += TW_PGDATA_PAGE) {
		const unsigned char *h = p + off;
		/* PageHeaderData: pd_lsn 8, pd_checksum 2, pd_flags 2, pd_lower 2,
		 * pd_upper 2, pd_special 2, pd_pagesize_version 2 (host order) */
		unsigned sizever = (unsigned)h[18] | (unsigned)h[19] << 8;
		unsigned lower = (unsigned)h[12] | (unsigned)h[13] << 8;
		unsigned upper = (unsigned)h[14] | (unsigned)h[15] << 8;
		unsigned spec = (unsigned)h[16] | (unsigned)h[17] << 8;
		if (sizever != (TW_PGDATA_PAGE | 4) || lower < 24 || lower > upper || upper > spec ||
		    spec > TW_PGDATA_PAGE)
			continue;
		valid++;
		special += spec < TW_PGDATA_PAGE;
	}
	return special * 2 > valid ? TW_ZP_SORTED : TW_ZP_DEFAULT;
}
