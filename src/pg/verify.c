/* verify.c — `tapwork pg check` (is WAL archiving working right now?) and
 * `tapwork pg verify` (is the WAL archive complete for every snapshot?). */
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "backup/cmdutil.h"
#include "cli/cli.h"
#include "pg/archive.h"
#include "pg/meta.h"
#include "pg/pitr.h"
#include "pg/wal.h"

int tw_pitr_check_cmd(int argc, char **argv)
{
	struct tw_bopts o = {0};
	const char *pgdata = ".", *url = "";
	unsigned long timeout = 60;
	for (int i = 1; i < argc; i++) {
		int c = tw_bopts_parse(&o, argc, argv, &i);
		if (c < 0)
			return TW_EXIT_USAGE;
		if (c)
			continue;
		if (strcmp(argv[i], "--pg-data") == 0 && i + 1 < argc)
			pgdata = argv[++i];
		else if (strcmp(argv[i], "--postgres") == 0 && i + 1 < argc)
			url = argv[++i];
		else if (strcmp(argv[i], "--timeout") == 0 && i + 1 < argc &&
		         tw_bcli_uint(argv[i + 1], 86400, &timeout) == 0)
			i++;
		else {
			fprintf(stderr, "tapwork pg check: unexpected argument %s\n", argv[i]);
			return TW_EXIT_USAGE;
		}
	}
	struct tw_err e = {0};
	uint64_t sysid;
	if (tw_pgarch_sysid(pgdata, &sysid, &e) != 0) {
		tw_bcli_fail("pg check", &e);
		return TW_EXIT_ERROR;
	}
	struct tw_repo *r;
	int rc = tw_bopts_open(&o, "pg check", 0, &r);
	if (rc != 0)
		return rc;
	rc = TW_EXIT_ERROR;
	PGconn *c = PQconnectdb(url);
	PGresult *res = NULL;
	if (c == NULL || PQstatus(c) != CONNECTION_OK) {
		const char *m = c ? PQerrorMessage(c) : "out of memory";
		fprintf(stderr, "tapwork pg check: cannot connect to PostgreSQL: %.*s\n",
		        (int)strcspn(m, "\n"), m);
		goto done;
	}
	res = PQexec(c, "SELECT pg_walfile_name(pg_switch_wal()), (SELECT system_identifier::text "
	                "FROM pg_control_system())");
	if (PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1) {
		const char *m = PQresultErrorMessage(res);
		fprintf(stderr, "tapwork pg check: pg_switch_wal: %.*s\n", (int)strcspn(m, "\n"),
		        m);
		goto done;
	}
	if (strtoull(PQgetvalue(res, 0, 1), NULL, 10) != sysid) {
		fprintf(stderr, "tapwork pg check: %s is not the data directory of that server\n",
		        pgdata);
		goto done;
	}
	char wal[32], name[96];
	snprintf(wal, sizeof wal, "%s", PQgetvalue(res, 0, 0));
	tw_pgarch_name(sysid, wal, name, sizeof name);
	double t0 = tw_progress_now();
	for (;;) {
		uint64_t size;
		if (tw_storage_stat(r->st, TW_ST_WAL, name, &size, NULL) == 0) {
			if (o.json)
				printf("{\"type\":\"summary\",\"wal\":\"%s\",\"archived\":true,"
				       "\"seconds\":%.3f}\n",
				       wal, tw_progress_now() - t0);
			else if (!o.quiet)
				printf("WAL segment %s archived (%.1fs after the switch)\n", wal,
				       tw_progress_now() - t0);
			rc = TW_EXIT_OK;
			break;
		}
		if (tw_progress_now() - t0 > (double)timeout) {
			fprintf(
			    stderr,
			    "tapwork pg check: WAL segment %s was not archived within %lus: check "
			    "archive_mode, archive_command and the server log\n",
			    wal, timeout);
			break;
		}
		struct timespec nap = {0, 200 * 1000 * 1000};
		nanosleep(&nap, NULL);
	}
done:
	PQclear(res);
	if (c != NULL)
		PQfinish(c);
	tw_repo_close(r);
	return rc;
}

/* ---- verify ---- */

struct seg {
	uint32_t tli;
	uint64_t segno;
};

struct walset {
	struct seg *segs;
	size_t n, cap;
	char **names; /* every WAL object, for --read-data */
	size_t nnames, capnames;
	uint64_t seg_size;
	int oom;
};

static int collect(void *arg, const char *wal, uint64_t size)
{
	struct walset *w = arg;
	(void)size;
	if (w->nnames == w->capnames) {
		size_t nc = w->capnames ? w->capnames * 2 : 256;
		char **nv = realloc(w->names, nc * sizeof *nv);
		if (nv == NULL)
			return w->oom = TW_ENOMEM;
		w->names = nv;
		w->capnames = nc;
	}
	if ((w->names[w->nnames] = strdup(wal)) == NULL)
		return w->oom = TW_ENOMEM;
	w->nnames++;
	struct seg s;
	if (tw_pgwal_seg_parse(wal, strlen(wal), w->seg_size, &s.tli, &s.segno) != 0)
		return 0;
	if (w->n == w->cap) {
		size_t nc = w->cap ? w->cap * 2 : 256;
		struct seg *nv = realloc(w->segs, nc * sizeof *nv);
		if (nv == NULL)
			return w->oom = TW_ENOMEM;
		w->segs = nv;
		w->cap = nc;
	}
	w->segs[w->n++] = s;
	return 0;
}

static int seg_cmp(const void *a, const void *b)
{
	const struct seg *x = a, *y = b;
	if (x->tli != y->tli)
		return x->tli < y->tli ? -1 : 1;
	return x->segno < y->segno ? -1 : x->segno > y->segno;
}

static int has_seg(const struct walset *w, uint32_t tli, uint64_t segno)
{
	struct seg k = {tli, segno};
	return bsearch(&k, w->segs, w->n, sizeof k, seg_cmp) != NULL;
}

static int has_name(const struct walset *w, const char *name)
{
	for (size_t i = 0; i < w->nnames; i++)
		if (strcmp(w->names[i], name) == 0)
			return 1;
	return 0;
}

/* Segments [lo, hi] of timeline tli: report up to 10 missing ones. */
static unsigned check_range(const struct walset *w, uint32_t tli, uint64_t lo, uint64_t hi,
                            const char *what)
{
	unsigned missing = 0;
	for (uint64_t s = lo; s <= hi; s++)
		if (!has_seg(w, tli, s)) {
			char nm[32];
			tw_pgwal_seg_name(tli, s, w->seg_size, nm, sizeof nm);
			if (missing++ < 10)
				fprintf(stderr,
				        "tapwork pg verify: %s: WAL segment %s is missing\n", what,
				        nm);
		}
	return missing;
}

/* One cluster: its snapshots (oldest first) and its WAL. */
static unsigned verify_cluster(struct tw_repo *r, uint64_t sysid, struct tw_pgmeta *ms,
                               struct tw_snapshot **ss, size_t nm, int read_data, int quiet,
                               uint64_t *nwal)
{
	struct walset w = {.seg_size = ms[0].seg_size};
	struct tw_err e = {0};
	unsigned bad = 0;
	if (tw_pgarch_list(r, sysid, collect, &w, &e) != 0 || w.oom) {
		tw_bcli_fail("pg verify", &e);
		bad++;
		goto done;
	}
	qsort(w.segs, w.n, sizeof *w.segs, seg_cmp);
	*nwal += w.nnames;
	/* every snapshot's own WAL: start..stop */
	for (size_t i = 0; i < nm; i++) {
		uint32_t t1, t2;
		uint64_t s1, s2;
		char what[64];
		snprintf(what, sizeof what, "snapshot %.8s", ss[i]->id);
		if (tw_pgwal_seg_parse(ms[i].start_wal, 24, w.seg_size, &t1, &s1) != 0 ||
		    tw_pgwal_seg_parse(ms[i].stop_wal, 24, w.seg_size, &t2, &s2) != 0) {
			fprintf(stderr, "tapwork pg verify: %s: bad WAL names\n", what);
			bad++;
		} else if (t1 == t2)
			bad += check_range(&w, t1, s1, s2, what);
		else
			bad +=
			    check_range(&w, t1, s1, s1, what) + check_range(&w, t2, s2, s2, what);
	}
	/* continuity per timeline, from the oldest snapshot on */
	uint32_t tli0;
	uint64_t lo0;
	tw_pgwal_seg_parse(ms[0].start_wal, 24, w.seg_size, &tli0, &lo0);
	for (size_t i = 0; i < w.n;) {
		uint32_t tli = w.segs[i].tli;
		size_t j = i;
		while (j < w.n && w.segs[j].tli == tli)
			j++;
		uint64_t hi = w.segs[j - 1].segno, lo = lo0;
		i = j;
		if (tli < tli0)
			continue;
		if (tli > tli0) {
			/* where this timeline forked: the last line of its history file */
			char hname[32];
			snprintf(hname, sizeof hname, "%08X.history", (unsigned)tli);
			uint8_t *h = NULL;
			size_t hl = 0, nf = 0;
			struct tw_pgwal_fork *forks = calloc(TW_PGWAL_HISTORY_MAX, sizeof *forks);
			int rc = forks ? tw_pgarch_get(r, sysid, hname, &h, &hl, &e) : TW_ENOMEM;
			if (rc == 0)
				rc =
				    tw_pgwal_history_parse(h, hl, forks, TW_PGWAL_HISTORY_MAX, &nf);
			if (rc == 0 && nf > 0)
				lo = forks[nf - 1].switch_lsn / w.seg_size;
			free(h);
			free(forks);
			if (rc != 0 || nf == 0) {
				fprintf(stderr,
				        "tapwork pg verify: timeline %u: history file %s %s\n", tli,
				        hname, rc == TW_ENOENT ? "is missing" : "is unreadable");
				bad++;
				continue;
			}
			if (lo < lo0) /* only WAL after the oldest snapshot's start matters */
				lo = lo0;
		}
		if (hi < lo)
			continue;
		char what[48];
		snprintf(what, sizeof what, "timeline %u", tli);
		bad += check_range(&w, tli, lo, hi, what);
		if (!quiet) {
			char a[32], b[32];
			tw_pgwal_seg_name(tli, lo, w.seg_size, a, sizeof a);
			tw_pgwal_seg_name(tli, hi, w.seg_size, b, sizeof b);
			printf("timeline %u: WAL %s..%s\n", tli, a, b);
		}
	}
	/* a history file for every timeline a snapshot is on (above 1) */
	for (size_t i = 0; i < nm; i++) {
		char hname[32];
		snprintf(hname, sizeof hname, "%08X.history", (unsigned)ms[i].tli);
		if (ms[i].tli > 1 && !has_name(&w, hname)) {
			fprintf(stderr, "tapwork pg verify: snapshot %.8s: %s is missing\n",
			        ss[i]->id, hname);
			bad++;
		}
	}
	if (read_data)
		for (size_t i = 0; i < w.nnames; i++) {
			uint8_t *d = NULL;
			size_t dl;
			if (tw_pgarch_get(r, sysid, w.names[i], &d, &dl, &e) != 0) {
				tw_bcli_fail("pg verify", &e);
				bad++;
			}
			free(d);
		}
done:
	for (size_t i = 0; i < w.nnames; i++)
		free(w.names[i]);
	free(w.names);
	free(w.segs);
	return bad;
}

int tw_pitr_verify_cmd(int argc, char **argv)
{
	struct tw_bopts o = {0};
	int read_data = 0;
	for (int i = 1; i < argc; i++) {
		int c = tw_bopts_parse(&o, argc, argv, &i);
		if (c < 0)
			return TW_EXIT_USAGE;
		if (c)
			continue;
		if (strcmp(argv[i], "--read-data") == 0)
			read_data = 1;
		else {
			fprintf(stderr, "tapwork pg verify: unexpected argument %s\n", argv[i]);
			return TW_EXIT_USAGE;
		}
	}
	struct tw_repo *r;
	int rc = tw_bopts_open(&o, "pg verify", 0, &r);
	if (rc != 0)
		return rc;
	struct tw_err e = {0};
	struct tw_snapshot **v = NULL, **ss = NULL;
	size_t n = 0, nm = 0;
	struct tw_pgmeta *ms = NULL;
	unsigned bad = 0, clusters = 0;
	uint64_t nwal = 0;
	if (tw_repo_list_snapshots(r, &v, &n, &e) != 0) {
		tw_bcli_fail("pg verify", &e);
		tw_repo_close(r);
		return TW_EXIT_ERROR;
	}
	ms = calloc(n + 1, sizeof *ms);
	ss = calloc(n + 1, sizeof *ss);
	uint8_t *done = calloc(n + 1, 1);
	if (ms == NULL || ss == NULL || done == NULL) {
		bad++;
		goto out;
	}
	/* one cluster (system identifier) at a time, snapshots oldest first */
	for (size_t i = 0; i < n; i++) {
		if (v[i]->pg == NULL || done[i])
			continue;
		struct tw_pgmeta first;
		if (tw_pgmeta_decode(v[i]->pg, &first, &e) != 0) {
			tw_bcli_fail("pg verify", &e);
			bad++;
			done[i] = 1;
			continue;
		}
		nm = 0;
		for (size_t k = i; k < n; k++) {
			if (v[k]->pg == NULL || done[k] ||
			    tw_pgmeta_decode(v[k]->pg, &ms[nm], &e) != 0)
				continue;
			if (ms[nm].sysid != first.sysid) {
				tw_pgmeta_clear(&ms[nm]);
				continue;
			}
			done[k] = 1;
			ss[nm++] = v[k];
		}
		clusters++;
		bad +=
		    verify_cluster(r, first.sysid, ms, ss, nm, read_data, o.quiet || o.json, &nwal);
		if (!o.quiet && !o.json)
			printf("cluster %llu: %zu snapshots\n", (unsigned long long)first.sysid,
			       nm);
		for (size_t k = 0; k < nm; k++)
			tw_pgmeta_clear(&ms[k]);
		tw_pgmeta_clear(&first);
	}
out:
	if (o.json)
		printf("{\"type\":\"summary\",\"clusters\":%u,\"wal_files\":%llu,\"errors\":%u,"
		       "\"read_data\":%s}\n",
		       clusters, (unsigned long long)nwal, bad, read_data ? "true" : "false");
	else if (!o.quiet)
		printf("%u clusters, %llu WAL files%s: %s\n", clusters, (unsigned long long)nwal,
		       read_data ? " read" : "", bad ? "ERRORS" : "no errors");
	free(done);
	free(ms);
	free(ss);
	tw_repo_free_snapshots(v, n);
	tw_repo_close(r);
	return bad ? TW_EXIT_ERROR : TW_EXIT_OK;
}
