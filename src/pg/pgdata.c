/* pgdata.c — PGDATA skip rules (see pgdata.h). */
#include "pg/pgdata.h"

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
