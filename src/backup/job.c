/* job.c — one run of a configured backup job (see job.h). */
#include "backup/job.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "backup/check.h"
#include "backup/cmdutil.h"
#include "backup/pg.h"
#include "backup/proc.h"
#include "backup/prune.h"
#include "backup/retention.h"
#include "backup/snapshot.h"
#include "core/log.h"
#include "pg/pitr.h"

#include <jansson.h>

static double now_s(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + t.tv_nsec / 1e9;
}

static int read_password(const char *file, char **pw, size_t *len, struct tw_err *e)
{
	const char *env = getenv("TAPWORK_PASSWORD");
	if (file == NULL && env != NULL) {
		*pw = strdup(env);
		*len = env ? strlen(env) : 0;
		return *pw ? 0 : tw_err_set(e, TW_ENOMEM, "out of memory");
	}
	if (file == NULL)
		file = getenv("TAPWORK_PASSWORD_FILE");
	if (file == NULL)
		return tw_err_set(e, TW_EINVAL,
				  "no repository password (password_file, $TAPWORK_PASSWORD or "
				  "$TAPWORK_PASSWORD_FILE)");
	FILE *f = fopen(file, "rb");
	if (f == NULL)
		return tw_err_set(e, TW_EIO, "cannot read password file %s: %s", file,
				  strerror(errno));
	char *buf = malloc(4097);
	size_t n = buf ? fread(buf, 1, 4096, f) : 0;
	fclose(f);
	if (buf == NULL)
		return tw_err_set(e, TW_ENOMEM, "out of memory");
	while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
		n--;
	buf[n] = '\0';
	*pw = buf;
	*len = n;
	return 0;
}

static int open_repo(const struct tw_conf_backup_job *j, struct tw_repo **r, struct tw_err *e)
{
	char *pw = NULL;
	size_t len = 0;
	int rc = read_password(j->password_file, &pw, &len, e);
	if (rc != 0)
		return rc;
	rc = tw_repo_open(j->repository, pw, len, r, e);
	explicit_bzero(pw, len);
	free(pw);
	return rc;
}

static int has_tag(const struct tw_snapshot *s, const char *tag)
{
	for (size_t i = 0; i < s->ntags; i++)
		if (strcmp(s->tags[i], tag) == 0)
			return 1;
	return 0;
}

int tw_job_last_snapshot(const struct tw_conf_backup_job *j, int64_t *t_ns, struct tw_err *e)
{
	struct tw_repo *r;
	*t_ns = 0;
	int rc = open_repo(j, &r, e);
	if (rc != 0)
		return rc;
	char tag[300];
	snprintf(tag, sizeof tag, "job:%s", j->name);
	struct tw_snapshot **v = NULL;
	size_t n = 0;
	rc = tw_repo_list_snapshots(r, &v, &n, e);
	for (size_t i = 0; rc == 0 && i < n; i++)
		if (has_tag(v[i], tag) && v[i]->time_ns > *t_ns)
			*t_ns = v[i]->time_ns;
	tw_repo_free_snapshots(v, n);
	tw_repo_close(r);
	return rc;
}

/* forget: the job's snapshots (newest first) against its policy. */
static int apply_retention(struct tw_repo *r, const struct tw_conf_backup_job *j, const char *tag,
			   uint64_t *removed, struct tw_err *e)
{
	struct tw_snapshot **v = NULL;
	size_t n = 0;
	int rc = tw_repo_list_snapshots(r, &v, &n, e);
	if (rc != 0)
		return rc;
	struct tw_ret_item *items = calloc(n + 1, sizeof *items);
	struct tw_snapshot **grp = calloc(n + 1, sizeof *grp);
	size_t g = 0;
	if (items == NULL || grp == NULL)
		rc = tw_err_set(e, TW_ENOMEM, "out of memory");
	for (size_t i = n; rc == 0 && i-- > 0;)
		if (has_tag(v[i], tag)) {
			grp[g] = v[i];
			items[g].time_ns = v[i]->time_ns;
			g++;
		}
	struct tw_keep_policy kp = {(int)j->retention.keep_last,   (int)j->retention.keep_hourly,
				    (int)j->retention.keep_daily,  (int)j->retention.keep_weekly,
				    (int)j->retention.keep_monthly, (int)j->retention.keep_yearly,
				    NULL,                            0};
	if (rc == 0 && !tw_retention_empty(&kp)) {
		tw_retention_apply(items, g, &kp);
		for (size_t k = 0; k < g && rc == 0; k++)
			if (!items[k].keep) {
				rc = tw_storage_del(r->st, TW_ST_SNAPSHOT, grp[k]->id, e);
				if (rc == 0)
					(*removed)++;
			}
	}
	free(items);
	free(grp);
	tw_repo_free_snapshots(v, n);
	return rc;
}

static int run_hook(const struct tw_conf_backup_job *j, const char *which, size_t idx,
		    const char *cmd, struct tw_err *e)
{
	char what[300];
	snprintf(what, sizeof what, "job %s: source %zu %s hook", j->name, idx + 1, which);
	tw_info("backup job %s: running %s hook of source %zu", j->name, which, idx + 1);
	return tw_proc_run_shell(what, cmd, (unsigned)(j->hook_timeout_ms / 1000), e);
}

int tw_job_run(const struct tw_conf_backup_job *j, const struct tw_job_opts *o,
	       struct tw_job_result *res, struct tw_err *e)
{
	memset(res, 0, sizeof *res);
	struct timespec wall;
	clock_gettime(CLOCK_REALTIME, &wall);
	res->start_ns = (int64_t)wall.tv_sec * 1000000000 + wall.tv_nsec;
	double t0 = now_s();
	size_t ns = j->nsources, npaths = 0, nstreams = 0, ntags = 0, nexcl = 0, pre_done = 0;
	int physical = ns == 1 && j->sources[0].has_pg_data;
	struct tw_pg_plan **plans = calloc(ns + 1, sizeof *plans);
	char **paths = calloc(ns + 1, sizeof *paths), **tags = calloc(j->ntags + 2, sizeof *tags);
	struct tw_backup_stream *streams = NULL;
	char **excl = NULL;
	char tag[300];
	struct tw_repo *r = NULL;
	int rc = 0;
	snprintf(tag, sizeof tag, "job:%s", j->name);
	for (size_t i = 0; i < ns; i++)
		nexcl += j->sources[i].nexclude;
	excl = calloc(nexcl + 1, sizeof *excl);
	if (plans == NULL || paths == NULL || tags == NULL || excl == NULL) {
		rc = tw_err_set(e, TW_ENOMEM, "out of memory");
		goto done;
	}
	tags[ntags++] = tag;
	for (size_t i = 0; i < j->ntags; i++)
		tags[ntags++] = j->tags[i];
	if ((rc = open_repo(j, &r, e)) != 0)
		goto done;
	if ((rc = tw_repo_lock(r, 0, e)) != 0 || (rc = tw_repo_load_index(r, e)) != 0)
		goto done;
	/* pre hooks, in order; a failure aborts the run */
	for (; pre_done < ns; pre_done++) {
		const struct tw_conf_backup_source *s = &j->sources[pre_done];
		if (s->pre && (rc = run_hook(j, "pre", pre_done, s->pre, e)) != 0)
			goto hooks;
	}
	if (physical) { /* a pg_data source is the job's only one (config check) */
		const struct tw_conf_pg_data *pd = &j->sources[0].pg_data;
		struct tw_pitr_backup_req q = {0};
		struct tw_pitr_backup_info in;
		q.pgdata = pd->dir;
		q.conninfo = pd->postgres;
		q.archive_timeout = (unsigned long)(pd->archive_timeout_ms / 1000);
		q.tags = tags;
		q.ntags = ntags;
		q.cancel = o->cancel;
		rc = tw_pitr_backup_run(r, &q, &res->st, &in, e);
		if (rc == 0)
			tw_info(
			    "backup job %s: PostgreSQL physical backup, LSN %s..%s, timeline %u, "
			    "WAL %s..%s",
			    j->name, in.start_lsn, in.stop_lsn, in.tli, in.start_wal, in.stop_wal);
		goto hooks;
	}
	for (size_t i = 0; i < ns; i++) {
		const struct tw_conf_backup_source *s = &j->sources[i];
		if (s->path) {
			paths[npaths++] = s->path;
			continue;
		}
		if ((rc = tw_pg_plan_new(s->postgres, s->all, j->pg_bin, &plans[i], e)) != 0)
			goto hooks;
		size_t n;
		const struct tw_backup_stream *sv = tw_pg_plan_streams(plans[i], &n);
		struct tw_backup_stream *nv = realloc(streams, (nstreams + n + 1) * sizeof *nv);
		if (nv == NULL) {
			rc = tw_err_set(e, TW_ENOMEM, "out of memory");
			goto hooks;
		}
		streams = nv;
		memcpy(streams + nstreams, sv, n * sizeof *sv);
		nstreams += n;
	}
	{
		size_t k = 0;
		for (size_t i = 0; i < ns; i++)
			for (size_t x = 0; x < j->sources[i].nexclude; x++)
				excl[k++] = j->sources[i].exclude[x];
		nexcl = k;
	}
	struct tw_backup_opts bo = {0};
	bo.paths = paths;
	bo.npaths = npaths;
	bo.tags = tags;
	bo.ntags = ntags;
	bo.excludes = excl;
	bo.nexcludes = nexcl;
	bo.streams = streams;
	bo.nstreams = nstreams;
	bo.cancel = o->cancel;
	rc = tw_backup_run(r, &bo, &res->st, e);
	if (rc == 0 && res->st.errors)
		tw_warn("backup job %s: %llu files or directories could not be read", j->name,
			(unsigned long long)res->st.errors);
hooks:
	/* post hooks of the sources whose pre ran (or that have none), even after a failure */
	for (size_t i = 0; i < pre_done; i++) {
		const struct tw_conf_backup_source *s = &j->sources[i];
		struct tw_err he = {0};
		if (s->post && run_hook(j, "post", i, s->post, &he) != 0) {
			tw_error("backup job %s: %s", j->name, he.msg);
			if (rc == 0) {
				*e = he;
				rc = he.code ? he.code : TW_EIO;
			}
		}
	}
	/* forget/prune and check each load the index themselves: fresh handles */
	tw_repo_close(r);
	r = NULL;
	if (res->st.snapshot_id[0] && o->retention && j->has_retention && rc == 0) {
		struct tw_err fe = {0};
		int prune = o->prune && j->prune != NULL;
		/* a physical job expires its WAL with every forget, not only when it
		 * prunes: WAL is most of what it stores. Both need the exclusive lock;
		 * when another process holds the repository, WAL waits for the next run */
		int wal = prune || physical;
		int exclusive = wal;
		int frc = open_repo(j, &r, &fe);
		if (frc == 0) {
			frc = tw_repo_lock(r, exclusive, &fe);
			if (frc == TW_ELOCKED && !prune) {
				tw_warn(
				    "backup job %s: repository in use: WAL expiry postponed to the "
				    "next run",
				    j->name);
				exclusive = wal = 0;
				fe = (struct tw_err){0};
				frc = tw_repo_lock(r, 0, &fe);
			}
		}
		if (frc == 0)
			frc = apply_retention(r, j, tag, &res->forgotten, &fe);
		if (frc == 0 && prune) {
			struct tw_prune_opts po = {0};
			struct tw_prune_stats ps;
			po.max_unused_percent = 20;
			frc = tw_prune_run(r, &po, &ps, &fe);
			res->pruned = frc == 0;
		}
		if (frc == 0 && wal) { /* WAL no kept snapshot needs */
			frc = tw_pitr_prune_wal(r, 0, &res->wal_files, &res->wal_bytes, &fe);
			if (frc == 0 && res->wal_files)
				tw_info(
				    "backup job %s: %llu WAL files no kept snapshot needs deleted "
				    "(%.1f MiB)",
				    j->name, (unsigned long long)res->wal_files,
				    res->wal_bytes / 1048576.0);
		}
		tw_repo_close(r);
		r = NULL;
		if (frc != 0) {
			*e = fe;
			rc = frc;
		}
	}
	if (rc == 0 && o->check && j->has_check) {
		struct tw_check_opts co = {0};
		struct tw_check_stats cs;
		co.read_data = j->check.read_data_percent > 0;
		co.read_percent = j->check.read_data_percent;
		rc = open_repo(j, &r, e);
		if (rc == 0)
			rc = tw_repo_lock(r, 0, e);
		if (rc == 0)
			rc = tw_check_run(r, &co, &cs, e);
		res->checked = rc == 0;
	}
done:
	res->ok = rc == 0;
	res->seconds = now_s() - t0;
	if (rc != 0)
		snprintf(res->error, sizeof res->error, "%s", e && e->msg[0] ? e->msg : tw_strerror(rc));
	tw_repo_close(r);
	for (size_t i = 0; plans && i < ns; i++)
		tw_pg_plan_free(plans[i]);
	free(plans);
	free(streams);
	free(paths);
	free(tags);
	free(excl);
	return rc;
}

int tw_job_cli(const char *config, const char *name, int json, int quiet)
{
	struct tw_config *cfg = NULL;
	struct tw_err e = {0};
	if (tw_config_load_file(config, &cfg, &e) != 0) {
		fprintf(stderr, "tapwork backup: %s\n", e.msg);
		return TW_EXIT_ERROR;
	}
	const struct tw_conf_backup_job *j = NULL;
	for (size_t i = 0; cfg->has_backup && i < cfg->backup.njobs; i++)
		if (strcmp(cfg->backup.jobs[i].name, name) == 0)
			j = &cfg->backup.jobs[i];
	if (j == NULL) {
		fprintf(stderr, "tapwork backup: no job \"%s\" in %s\n", name, config);
		tw_config_free(cfg);
		return TW_EXIT_USAGE;
	}
	struct tw_job_opts jo = {1, 0, 0, NULL};
	struct tw_job_result res;
	tw_info("backup job %s: started", j->name);
	int rc = tw_job_run(j, &jo, &res, &e);
	if (rc != 0)
		tw_error("backup job %s: failed after %.1fs: %s", j->name, res.seconds, res.error);
	else
		tw_info("backup job %s: snapshot %.8s, %.1f MiB, %.1f MiB new, %.1fs", j->name,
			res.st.snapshot_id, res.st.bytes / 1048576.0, res.st.new_bytes / 1048576.0,
			res.seconds);
	if (json) {
		json_t *o = json_pack("{s:s,s:s,s:b,s:s,s:s,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:f,s:s?}",
				      "type", "job", "job", j->name, "ok", rc == 0, "snapshot_id",
				      res.st.snapshot_id, "parent", res.st.parent_id, "files",
				      (json_int_t)res.st.files, "dirs", (json_int_t)res.st.dirs,
				      "bytes", (json_int_t)res.st.bytes, "new_bytes",
				      (json_int_t)res.st.new_bytes, "stored_bytes",
				      (json_int_t)res.st.stored_bytes, "errors",
				      (json_int_t)res.st.errors, "forgotten",
				      (json_int_t)res.forgotten, "seconds", res.seconds, "error",
				      rc ? res.error : NULL);
		if (o != NULL && j->nsources == 1 && j->sources[0].has_pg_data) {
			json_object_set_new(o, "postgres", json_string("physical"));
			json_object_set_new(o, "wal_deleted",
			                    json_integer((json_int_t)res.wal_files));
			json_object_set_new(o, "wal_bytes_freed",
			                    json_integer((json_int_t)res.wal_bytes));
		}
		char *txt = o ? json_dumps(o, JSON_COMPACT) : NULL;
		if (txt)
			printf("%s\n", txt);
		free(txt);
		json_decref(o);
	} else if (!quiet && rc == 0) {
		printf("job %s: snapshot %.8s saved (%s)\n", j->name, res.st.snapshot_id,
		       res.st.snapshot_id);
		printf("files: %llu, %.1f MiB processed, %.1f MiB new, %.1f MiB stored, %llu "
		       "snapshots forgotten, %.2fs\n",
		       (unsigned long long)res.st.files, res.st.bytes / 1048576.0,
		       res.st.new_bytes / 1048576.0, res.st.stored_bytes / 1048576.0,
		       (unsigned long long)res.forgotten, res.seconds);
	}
	if (rc != 0 && !json)
		fprintf(stderr, "tapwork backup: job %s: %s\n", j->name, res.error);
	tw_config_free(cfg);
	return rc == 0 ? (res.st.errors ? TW_EXIT_PARTIAL : TW_EXIT_OK) : TW_EXIT_ERROR;
}
