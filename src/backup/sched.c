/* sched.c — the backup scheduler thread (see sched.h). */
#include "backup/sched.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "backup/job.h"
#include "backup/schedule.h"
#include "conf/config.h"
#include "core/log.h"
#include "edge/metrics.h"

enum { M_LAST_OK, M_DURATION, M_SIZE, M_ADDED, M_FILES, M_FAILURES, M_RUNS, M_RUNNING, M_N };

static const struct {
	const char *name, *help;
	enum tw_metric_kind kind;
} mdefs[M_N] = {
    {"tapwork_backup_last_success_timestamp_seconds",
     "Unix time of the start of the job's last successful backup.", TW_METRIC_GAUGE},
    {"tapwork_backup_last_duration_seconds", "Duration of the job's last run (seconds).",
     TW_METRIC_GAUGE},
    {"tapwork_backup_last_size_bytes", "Bytes in the job's last successful snapshot.",
     TW_METRIC_GAUGE},
    {"tapwork_backup_last_added_bytes",
     "New (not deduplicated) bytes added by the job's last successful run.", TW_METRIC_GAUGE},
    {"tapwork_backup_last_files", "Files in the job's last successful snapshot.",
     TW_METRIC_GAUGE},
    {"tapwork_backup_failures_total", "Failed runs of the job.", TW_METRIC_COUNTER},
    {"tapwork_backup_runs_total", "Runs of the job.", TW_METRIC_COUNTER},
    {"tapwork_backup_running", "1 while the job runs.", TW_METRIC_GAUGE},
};

struct sjob {
	const struct tw_conf_backup_job *j;
	struct tw_sched s, prune, check;
	int has_prune, has_check;
	int64_t next, next_prune, next_check; /* unix seconds */
	int catch_up;
	uint32_t slot[M_N];
};

static struct {
	struct tw_config *cfg;
	struct sjob *jobs;
	size_t n;
	struct tw_metrics_shard *m;
	pthread_t t;
	int started;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int stop;
	volatile int cancel;
	unsigned seed;
} S = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};

static void gauge(struct sjob *sj, int k, uint64_t v)
{
	atomic_store_explicit(&S.m->v[sj->slot[k]], v, memory_order_relaxed);
}

static int64_t now_s(void) { return (int64_t)time(NULL); }

static int64_t with_jitter(const struct sjob *sj, int64_t t)
{
	if (sj->j->jitter_ms < 1000)
		return t;
	return t + (int64_t)(rand_r(&S.seed) % (sj->j->jitter_ms / 1000 + 1));
}

static void run_job(struct sjob *sj)
{
	const struct tw_conf_backup_job *j = sj->j;
	int64_t now = now_s();
	struct tw_job_opts o = {1, sj->has_prune && now >= sj->next_prune,
				sj->has_check && now >= sj->next_check, &S.cancel};
	struct tw_job_result res;
	struct tw_err e = {0};
	tw_info("backup job %s: started%s%s", j->name, o.prune ? " (with prune)" : "",
		o.check ? " (with check)" : "");
	gauge(sj, M_RUNNING, 1);
	tw_metric_add(S.m, sj->slot[M_RUNS], 1);
	int rc = tw_job_run(j, &o, &res, &e);
	gauge(sj, M_RUNNING, 0);
	gauge(sj, M_DURATION, (uint64_t)(res.seconds + 0.5));
	if (rc == 0) {
		gauge(sj, M_LAST_OK, (uint64_t)(res.start_ns / 1000000000));
		gauge(sj, M_SIZE, res.st.bytes);
		gauge(sj, M_ADDED, res.st.new_bytes);
		gauge(sj, M_FILES, res.st.files);
		tw_info("backup job %s: snapshot %.8s, %llu files, %.1f MiB, %.1f MiB new, %llu "
			"forgotten%s%s, %.1fs",
			j->name, res.st.snapshot_id, (unsigned long long)res.st.files,
			res.st.bytes / 1048576.0, res.st.new_bytes / 1048576.0,
			(unsigned long long)res.forgotten, res.pruned ? ", pruned" : "",
			res.checked ? ", checked" : "", res.seconds);
		if (o.prune)
			sj->next_prune = tw_sched_next(&sj->prune, now_s(), S.cfg->backup.utc);
		if (o.check)
			sj->next_check = tw_sched_next(&sj->check, now_s(), S.cfg->backup.utc);
	} else {
		tw_metric_add(S.m, sj->slot[M_FAILURES], 1);
		tw_error("backup job %s: failed after %.1fs: %s", j->name, res.seconds, res.error);
	}
}

static void *sched_main(void *arg)
{
	(void)arg;
	/* last successes from the repositories: metrics and missed runs */
	for (size_t i = 0; i < S.n && !S.stop; i++) {
		struct sjob *sj = &S.jobs[i];
		int64_t last = 0;
		struct tw_err e = {0};
		if (tw_job_last_snapshot(sj->j, &last, &e) != 0) {
			tw_warn("backup job %s: cannot read its repository yet: %s", sj->j->name, e.msg);
			continue;
		}
		if (last > 0) {
			gauge(sj, M_LAST_OK, (uint64_t)(last / 1000000000));
			int64_t due = tw_sched_next(&sj->s, last / 1000000000, S.cfg->backup.utc);
			if (due > 0 && due <= now_s()) {
				tw_info("backup job %s: a scheduled run was missed: running now",
					sj->j->name);
				sj->catch_up = 1;
			}
		}
	}
	pthread_mutex_lock(&S.mu);
	while (!S.stop) {
		int64_t now = now_s(), wake = now + 3600;
		struct sjob *due = NULL;
		for (size_t i = 0; i < S.n; i++) {
			struct sjob *sj = &S.jobs[i];
			if (sj->catch_up || (sj->next > 0 && sj->next <= now)) {
				due = sj;
				break;
			}
			if (sj->next > 0 && sj->next < wake)
				wake = sj->next;
		}
		if (due != NULL) {
			due->catch_up = 0;
			pthread_mutex_unlock(&S.mu);
			run_job(due);
			pthread_mutex_lock(&S.mu);
			/* the next slot after the run ended: a long run skips slots */
			due->next = with_jitter(due, tw_sched_next(&due->s, now_s(), S.cfg->backup.utc));
			continue;
		}
		struct timespec ts = {(time_t)wake, 0};
		pthread_cond_timedwait(&S.cv, &S.mu, &ts);
	}
	pthread_mutex_unlock(&S.mu);
	return NULL;
}

int tw_backup_sched_start(const char *config_path, struct tw_err *e)
{
	if (config_path == NULL || S.started)
		return 0;
	int rc = tw_config_load_file(config_path, &S.cfg, e);
	if (rc != 0)
		return rc;
	size_t n = 0;
	for (size_t i = 0; S.cfg->has_backup && i < S.cfg->backup.njobs; i++)
		n += S.cfg->backup.jobs[i].schedule != NULL;
	if (n == 0) {
		tw_config_free(S.cfg);
		S.cfg = NULL;
		return 0;
	}
	S.jobs = calloc(n, sizeof *S.jobs);
	if (S.jobs == NULL || tw_metrics_add_shard(&S.m) != 0)
		return tw_err_set(e, TW_ENOMEM, "out of memory");
	S.seed = (unsigned)time(NULL) ^ (unsigned)(uintptr_t)&S;
	int utc = S.cfg->backup.utc;
	char why[256];
	for (size_t i = 0; i < S.cfg->backup.njobs; i++) {
		const struct tw_conf_backup_job *j = &S.cfg->backup.jobs[i];
		if (j->schedule == NULL)
			continue;
		struct sjob *sj = &S.jobs[S.n++];
		sj->j = j;
		tw_sched_parse(j->schedule, &sj->s, why, sizeof why); /* validated at load */
		sj->has_prune = j->prune != NULL && tw_sched_parse(j->prune, &sj->prune, why, sizeof why) == 0;
		sj->has_check = j->has_check &&
				tw_sched_parse(j->check.schedule, &sj->check, why, sizeof why) == 0;
		sj->next = with_jitter(sj, tw_sched_next(&sj->s, now_s(), utc));
		sj->next_prune = sj->has_prune ? tw_sched_next(&sj->prune, now_s(), utc) : 0;
		sj->next_check = sj->has_check ? tw_sched_next(&sj->check, now_s(), utc) : 0;
		char lbl[400], esc[300];
		tw_metrics_escape(j->name, esc, sizeof esc);
		snprintf(lbl, sizeof lbl, "job=\"%s\"", esc);
		for (int k = 0; k < M_N; k++)
			if ((rc = tw_metrics_register(mdefs[k].name, mdefs[k].help, mdefs[k].kind, lbl,
						      &sj->slot[k])) != 0)
				return tw_err_set(e, rc, "too many metrics");
		char when[64];
		time_t nt = (time_t)sj->next;
		struct tm tm;
		strftime(when, sizeof when, "%Y-%m-%d %H:%M:%S", utc ? gmtime_r(&nt, &tm) : localtime_r(&nt, &tm));
		tw_info("backup job %s: schedule \"%s\", next run %s%s", j->name, j->schedule, when,
			utc ? " UTC" : "");
	}
	S.stop = 0;
	S.cancel = 0;
	if (pthread_create(&S.t, NULL, sched_main, NULL) != 0)
		return tw_err_set(e, TW_ENOMEM, "cannot start the backup scheduler");
	S.started = 1;
	return 0;
}

void tw_backup_sched_stop(void)
{
	if (!S.started)
		return;
	pthread_mutex_lock(&S.mu);
	S.stop = 1;
	S.cancel = 1;
	pthread_cond_signal(&S.cv);
	pthread_mutex_unlock(&S.mu);
	pthread_join(S.t, NULL);
	S.started = 0;
	free(S.jobs);
	S.jobs = NULL;
	S.n = 0;
	tw_config_free(S.cfg);
	S.cfg = NULL;
}
