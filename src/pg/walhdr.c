/* walhdr.c — WAL long page headers and cluster registrations (see walhdr.h). */
#include "pg/walhdr.h"

#include "core/le.h"

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int pow2_in(uint64_t v, uint64_t lo, uint64_t hi)
{
	return v >= lo && v <= hi && (v & (v - 1)) == 0;
}

int tw_pgwalhdr_parse(const uint8_t *p, size_t n, struct tw_pgwalhdr *h, struct tw_err *e)
{
	if (n < TW_PGWALHDR_LEN)
		return tw_err_set(e, TW_EINVAL, "shorter than a WAL page header (%zu bytes)", n);
	h->magic = tw_le16_get(p);
	h->info = tw_le16_get(p + 2);
	h->tli = tw_le32_get(p + 4);
	h->pageaddr = tw_le64_get(p + 8);
	h->sysid = tw_le64_get(p + 24);
	h->seg_size = tw_le32_get(p + 32);
	h->blcksz = tw_le32_get(p + 36);
	if ((h->info & TW_PGWALHDR_LONG) == 0)
		return tw_err_set(e, TW_EINVAL, "no long page header at its start");
	if ((h->info & ~0x000Fu) != 0)
		return tw_err_set(e, TW_EINVAL, "unknown page header flags 0x%04X", h->info);
	if (!pow2_in(h->seg_size, 1u << 20, 1u << 30))
		return tw_err_set(e, TW_EINVAL, "page header names a segment size of %u bytes",
		                  h->seg_size);
	if (!pow2_in(h->blcksz, 1024, 65536))
		return tw_err_set(e, TW_EINVAL, "page header names a WAL block size of %u bytes",
		                  h->blcksz);
	if (h->pageaddr % h->seg_size != 0)
		return tw_err_set(e, TW_EINVAL, "page header is not at the start of a segment");
	if (h->sysid == 0)
		return tw_err_set(e, TW_EINVAL, "page header has no system identifier");
	if (h->tli == 0)
		return tw_err_set(e, TW_EINVAL, "page header has timeline 0");
	return 0;
}

/* XLOG_PAGE_MAGIC per major version (src/include/access/xlog_internal.h). */
static const struct {
	uint16_t magic;
	unsigned major;
} magics[] = {{0xD106, 13}, {0xD10D, 14}, {0xD110, 15}, {0xD113, 16}, {0xD116, 17}};

unsigned tw_pgwalhdr_major(uint16_t magic)
{
	for (size_t i = 0; i < sizeof magics / sizeof *magics; i++)
		if (magics[i].magic == magic)
			return magics[i].major;
	return 0;
}

uint16_t tw_pgwalhdr_magic(uint32_t server_version_num)
{
	for (size_t i = 0; i < sizeof magics / sizeof *magics; i++)
		if (magics[i].major == server_version_num / 10000)
			return magics[i].magic;
	return 0;
}

int tw_pgreg_encode(const struct tw_pgreg *g, char **out)
{
	char sys[24];
	snprintf(sys, sizeof sys, "%llu", (unsigned long long)g->sysid);
	json_t *o =
	    json_pack("{s:i,s:s,s:i,s:i,s:I}", "version", 1, "system_id", sys, "xlog_page_magic",
	              (int)g->magic, "pg_major", (int)tw_pgwalhdr_major(g->magic),
	              "wal_segment_size", (json_int_t)g->seg_size);
	if (o == NULL)
		return TW_ENOMEM;
	*out = json_dumps(o, JSON_COMPACT);
	json_decref(o);
	return *out ? 0 : TW_ENOMEM;
}

int tw_pgreg_decode(const uint8_t *p, size_t n, struct tw_pgreg *g, struct tw_err *e)
{
	memset(g, 0, sizeof *g);
	json_t *o = json_loadb((const char *)p, n, JSON_REJECT_DUPLICATES, NULL);
	const char *sys;
	int ver, magic;
	json_int_t seg;
	int rc = TW_ECORRUPT;
	if (o == NULL || json_unpack(o, "{s:i,s:s,s:i,s:I}", "version", &ver, "system_id", &sys,
	                             "xlog_page_magic", &magic, "wal_segment_size", &seg) != 0)
		goto done;
	char *end;
	if (ver != 1 || sys[0] < '0' || sys[0] > '9' || strlen(sys) > 20)
		goto done;
	errno = 0;
	unsigned long long s = strtoull(sys, &end, 10);
	if (*end != '\0' || errno != 0 || s == 0 || magic <= 0 || magic > 0xFFFF ||
	    !pow2_in((uint64_t)seg, 1u << 20, 1u << 30))
		goto done;
	g->sysid = s;
	g->magic = (uint16_t)magic;
	g->seg_size = (uint32_t)seg;
	rc = 0;
done:
	json_decref(o);
	return rc ? tw_err_set(e, rc, "malformed cluster registration") : 0;
}

static void describe(uint16_t magic, char *out, size_t cap)
{
	unsigned major = tw_pgwalhdr_major(magic);
	if (major)
		snprintf(out, cap, "PostgreSQL %u, XLOG_PAGE_MAGIC 0x%04X", major, magic);
	else
		snprintf(out, cap, "XLOG_PAGE_MAGIC 0x%04X", magic);
}

int tw_pgreg_check(const struct tw_pgreg *g, const struct tw_pgwalhdr *h, const char *wal,
                   struct tw_err *e)
{
	char have[64], want[64];
	describe(h->magic, have, sizeof have);
	describe(g->magic, want, sizeof want);
	if (h->sysid != g->sysid)
		return tw_err_set(
		    e, TW_EINVAL,
		    "WAL %s is from database system %llu, but this repository "
		    "registered database system %llu for this data directory: it is "
		    "the repository of another cluster (archive each cluster with its "
		    "own --pg-data, or into a repository of its own); not archived",
		    wal, (unsigned long long)h->sysid, (unsigned long long)g->sysid);
	if (h->magic != g->magic)
		return tw_err_set(e, TW_EINVAL,
		                  "WAL %s of database system %llu is %s, but this repository "
		                  "registered that system with %s: after a major upgrade archive "
		                  "into a new repository; not archived",
		                  wal, (unsigned long long)h->sysid, have, want);
	if (h->seg_size != g->seg_size)
		return tw_err_set(e, TW_EINVAL,
		                  "WAL %s has %u-byte segments, but this repository registered "
		                  "database system %llu with %u-byte segments: archive into a new "
		                  "repository; not archived",
		                  wal, h->seg_size, (unsigned long long)g->sysid, g->seg_size);
	return 0;
}
