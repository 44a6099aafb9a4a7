/* meta.c — pg snapshot metadata <-> JSON (jansson). */
#include "pg/meta.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pg/wal.h"

int tw_pgmeta_encode(const struct tw_pgmeta *m, char **out)
{
	char sl[24], el[24], sys[24];
	tw_pgwal_lsn_str(m->start_lsn, sl, sizeof sl);
	tw_pgwal_lsn_str(m->stop_lsn, el, sizeof el);
	/* a JSON number would lose bits of a 64-bit identifier in many readers */
	snprintf(sys, sizeof sys, "%llu", (unsigned long long)m->sysid);
	json_t *o = json_pack(
	    "{s:s,s:i,s:i,s:I,s:s,s:s,s:s,s:s,s:I,s:I,s:I,s:s,s:s,s:s}", "system_id", sys,
	    "version", (int)m->version, "timeline", (int)m->tli, "wal_segment_size",
	    (json_int_t)m->seg_size, "start_lsn", sl, "stop_lsn", el, "start_wal", m->start_wal,
	    "stop_wal", m->stop_wal, "start_ns", (json_int_t)m->start_ns, "stop_ns",
	    (json_int_t)m->stop_ns, "next_xid", (json_int_t)m->next_xid, "pgdata",
	    m->pgdata ? m->pgdata : "", "backup_label", m->backup_label ? m->backup_label : "",
	    "tablespace_map", m->tablespace_map ? m->tablespace_map : "");
	if (o == NULL)
		return TW_ENOMEM;
	if (m->data_checksums) {
		json_t *a = json_array();
		for (size_t i = 0; a != NULL && i < m->ndamaged; i++)
			json_array_append_new(a, json_pack("{s:s,s:I}", "file", m->damaged[i].file,
			                                   "block", (json_int_t)m->damaged[i].block));
		if (a == NULL || json_object_set_new(o, "data_checksums", json_true()) != 0 ||
		    json_object_set_new(o, "damaged_pages_total",
		                        json_integer((json_int_t)m->damaged_total)) != 0 ||
		    json_object_set_new(o, "damaged_pages", a) != 0) {
			json_decref(o);
			return TW_ENOMEM;
		}
	}
	if (m->nts > 0) {
		json_t *a = json_array();
		for (size_t i = 0; a != NULL && i < m->nts; i++)
			json_array_append_new(a, json_pack("{s:I,s:s,s:s}", "oid",
			                                   (json_int_t)m->ts[i].oid, "name",
			                                   m->ts[i].name, "path", m->ts[i].path));
		if (a == NULL || json_object_set_new(o, "tablespaces", a) != 0) {
			json_decref(o);
			return TW_ENOMEM;
		}
	}
	*out = json_dumps(o, JSON_COMPACT);
	json_decref(o);
	return *out ? 0 : TW_ENOMEM;
}

int tw_pgmeta_add_damaged(struct tw_pgmeta *m, const char *file, uint32_t block)
{
	m->damaged_total++;
	if (m->ndamaged >= TW_PGMETA_DAMAGED_MAX)
		return 0;
	if (m->damaged == NULL &&
	    (m->damaged = calloc(TW_PGMETA_DAMAGED_MAX, sizeof *m->damaged)) == NULL)
		return TW_ENOMEM;
	if ((m->damaged[m->ndamaged].file = strdup(file)) == NULL)
		return TW_ENOMEM;
	m->damaged[m->ndamaged++].block = block;
	return 0;
}

int tw_pgmeta_add_ts(struct tw_pgmeta *m, uint32_t oid, const char *name, const char *path)
{
	if (m->nts >= TW_PGMETA_TS_MAX)
		return TW_ELIMIT;
	if (m->ts == NULL && (m->ts = calloc(TW_PGMETA_TS_MAX, sizeof *m->ts)) == NULL)
		return TW_ENOMEM;
	struct tw_pgmeta_ts *t = &m->ts[m->nts];
	t->oid = oid;
	t->name = strdup(name);
	t->path = strdup(path);
	m->nts++; /* counted even half-made: clear frees what is there */
	return t->name && t->path ? 0 : TW_ENOMEM;
}

static int decode_ts(json_t *o, struct tw_pgmeta *m)
{
	json_t *a = json_object_get(o, "tablespaces");
	if (a == NULL)
		return 0;
	if (!json_is_array(a) || json_array_size(a) > TW_PGMETA_TS_MAX)
		return TW_ECORRUPT;
	for (size_t i = 0; i < json_array_size(a); i++) {
		json_int_t oid;
		const char *name, *path;
		if (json_unpack(json_array_get(a, i), "{s:I,s:s,s:s}", "oid", &oid, "name", &name,
		                "path", &path) != 0 ||
		    oid <= 0 || oid > UINT32_MAX || path[0] != '/' || name[0] == '\0')
			return TW_ECORRUPT;
		for (size_t k = 0; k < m->nts; k++)
			if (m->ts[k].oid == (uint32_t)oid)
				return TW_ECORRUPT;
		int rc = tw_pgmeta_add_ts(m, (uint32_t)oid, name, path);
		if (rc != 0)
			return rc;
	}
	return 0;
}

/* The optional checksum members; TW_ECORRUPT when present but malformed. */
static int decode_damaged(json_t *o, struct tw_pgmeta *m)
{
	json_t *dc = json_object_get(o, "data_checksums");
	if (dc == NULL)
		return 0;
	json_t *tot = json_object_get(o, "damaged_pages_total"),
	       *a = json_object_get(o, "damaged_pages");
	if (!json_is_true(dc) || !json_is_integer(tot) || json_integer_value(tot) < 0 ||
	    !json_is_array(a) || json_array_size(a) > TW_PGMETA_DAMAGED_MAX ||
	    (json_int_t)json_array_size(a) > json_integer_value(tot))
		return TW_ECORRUPT;
	m->data_checksums = 1;
	for (size_t i = 0; i < json_array_size(a); i++) {
		const char *f;
		json_int_t b;
		if (json_unpack(json_array_get(a, i), "{s:s,s:I}", "file", &f, "block", &b) != 0 ||
		    b < 0 || b > UINT32_MAX)
			return TW_ECORRUPT;
		if (tw_pgmeta_add_damaged(m, f, (uint32_t)b) != 0)
			return TW_ENOMEM;
	}
	m->damaged_total = (uint64_t)json_integer_value(tot);
	return 0;
}

int tw_pgmeta_decode(const char *txt, struct tw_pgmeta *m, struct tw_err *e)
{
	memset(m, 0, sizeof *m);
	json_t *o = json_loads(txt, 0, NULL);
	const char *sys, *sl, *el, *sw, *ew, *pd, *bl, *tm;
	int ver, tli;
	json_int_t seg, sns, ens, xid;
	int rc = TW_ECORRUPT;
	if (o == NULL ||
	    json_unpack(o, "{s:s,s:i,s:i,s:I,s:s,s:s,s:s,s:s,s:I,s:I,s:I,s:s,s:s,s:s}", "system_id",
	                &sys, "version", &ver, "timeline", &tli, "wal_segment_size", &seg,
	                "start_lsn", &sl, "stop_lsn", &el, "start_wal", &sw, "stop_wal", &ew,
	                "start_ns", &sns, "stop_ns", &ens, "next_xid", &xid, "pgdata", &pd,
	                "backup_label", &bl, "tablespace_map", &tm) != 0)
		goto done;
	char *end;
	m->sysid = strtoull(sys, &end, 10);
	if (*end != '\0' || ver <= 0 || tli <= 0 || seg < (1 << 20) || seg > (1 << 30) ||
	    (seg & (seg - 1)) != 0 || xid < 0 || strlen(sw) != 24 || strlen(ew) != 24 ||
	    tw_pgwal_lsn_parse(sl, strlen(sl), &m->start_lsn) != 0 ||
	    tw_pgwal_lsn_parse(el, strlen(el), &m->stop_lsn) != 0)
		goto done;
	m->version = (uint32_t)ver;
	m->tli = (uint32_t)tli;
	m->seg_size = (uint64_t)seg;
	m->start_ns = sns;
	m->stop_ns = ens;
	m->next_xid = (uint64_t)xid;
	memcpy(m->start_wal, sw, 25);
	memcpy(m->stop_wal, ew, 25);
	m->pgdata = strdup(pd);
	m->backup_label = strdup(bl);
	m->tablespace_map = strdup(tm);
	rc = m->pgdata && m->backup_label && m->tablespace_map ? 0 : TW_ENOMEM;
	if (rc == 0 && (rc = decode_damaged(o, m)) != 0)
		goto done;
	if (rc == 0 && (rc = decode_ts(o, m)) != 0)
		goto done;
done:
	json_decref(o);
	if (rc != 0) {
		tw_pgmeta_clear(m);
		return tw_err_set(e, rc, "snapshot: malformed PostgreSQL metadata");
	}
	return 0;
}

void tw_pgmeta_clear(struct tw_pgmeta *m)
{
	free(m->pgdata);
	free(m->backup_label);
	free(m->tablespace_map);
	for (size_t i = 0; i < m->ndamaged; i++)
		free(m->damaged[i].file);
	free(m->damaged);
	for (size_t i = 0; i < m->nts; i++) {
		free(m->ts[i].name);
		free(m->ts[i].path);
	}
	free(m->ts);
	memset(m, 0, sizeof *m);
}
