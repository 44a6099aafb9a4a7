/* cmd_run.c — `tapwork run`: the edge daemon's main thread.
 *
 * Loads the config (or the embedded default), starts the admin listener,
 * health checks and one worker thread per configured worker, then serves
 * signals through a signalfd on its own loop: SIGHUP reloads, SIGTERM and
 * SIGINT drain and exit. */
#include "backup/sched.h"
#include "cli/cli.h"
#include "core/dbuf.h"
#include "core/log.h"
#include "edge/edge.h"
#include "edge/ratelimit.h"
#include "k8s/controller.h"
#include "k8s/ingress.h"
#include "tls/tls.h"

#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <unistd.h>

/* A config built on the Kubernetes controller's apply thread (the file's
 * config plus the cluster's Ingresses), waiting for the main thread to make
 * it the current generation. */
struct k8s_pending {
	struct tw_config *cfg;
	uint64_t hup_seq; /* the SIGHUP this build answers (file text it used) */
};

struct run_state {
	struct tw_edge e;
	struct tw_io sig_io;
	struct tw_timer cert_timer;
	int exiting;
	/* kubernetes: the file text the cluster's state is added to. Read at
	 * start and at each SIGHUP that loads; a file broken on disk between
	 * two SIGHUPs never stops cluster changes from applying. */
	pthread_mutex_t k8s_mu;
	char *k8s_file_text; /* under k8s_mu */
	uint64_t hup_seq;     /* under k8s_mu: SIGHUPs whose file text was taken */
	uint64_t hup_done;    /* main thread: the last SIGHUP reported as reloaded */
	_Atomic(struct k8s_pending *) k8s_pending;
	struct tw_k8s_store *k8s_last_good; /* apply thread only */
	char **k8s_lines;                   /* apply thread only: last report's lines (sorted), to log changes once */
	size_t k8s_nlines;
	uint32_t m_k8s_gen;                 /* tapwork_k8s_generations_total */
	uint32_t m_k8s_gen_err;
	uint64_t trimmed_at; /* tw_loop_now of the last malloc_trim */
};

static int open_access_log(const struct tw_config *cfg)
{
	const char *a = cfg->log.access;
	if (a == NULL || strcmp(a, "stdout") == 0)
		return dup(STDOUT_FILENO);
	if (strcmp(a, "off") == 0)
		return -1;
	if (strcmp(a, "stderr") == 0)
		return dup(STDERR_FILENO);
	int fd = open(a, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
	if (fd == -1)
		tw_error("access log %s: %s (access logging off)", a, strerror(errno));
	return fd;
}

static int same_addr(const struct tw_addr *a, const struct tw_addr *b)
{
	return a->len == b->len && memcmp(&a->ss, &b->ss, a->len) == 0;
}

static int load_config(const struct tw_edge *e, struct tw_config **cfg, struct tw_err *err)
{
	return e->config_text ? tw_config_load_string("<tapwork proxy>", e->config_text, strlen(e->config_text), cfg, err)
	       : e->config_path ? tw_config_load_file(e->config_path, cfg, err)
				: tw_config_load_default(cfg, err);
}

/* Make cfg (owned) the current generation: listeners checked first, then
 * a generation built beside the old one and swapped in. `what` names the
 * change in the log; counted as a file reload when reload is set. Returns
 * 0 or the reason it was refused (logged). */
static int install_config(struct run_state *rs, struct tw_config *cfg, int reload, const char *what)
{
	struct tw_edge *e = &rs->e;
	struct tw_err err = {0};
	struct tw_gen *old = e->gen;
	/* New listen addresses must bind before anything changes. */
	const struct tw_addr *want[2] = {cfg->has_http ? &cfg->listen_http : NULL,
					 cfg->has_https ? &cfg->listen_https : NULL};
	const struct tw_addr *have[2] = {old->cfg->has_http ? &old->cfg->listen_http : NULL,
					 old->cfg->has_https ? &old->cfg->listen_https : NULL};
	for (int i = 0; i < 2; i++) {
		if (want[i] == NULL || (have[i] && same_addr(want[i], have[i])))
			continue;
		int fd = tw_listen_socket(want[i], 1, &err);
		if (fd < 0) {
			tw_error("%s refused: %s", what, err.msg);
			tw_config_free(cfg);
			return -1;
		}
		close(fd);
	}
	if (cfg->workers != e->nworkers && reload)
		tw_warn("reload: workers %u -> %u takes effect at the next restart", e->nworkers, cfg->workers);
	struct tw_gen *g;
	int rc = tw_gen_build(e, cfg, old, &g, &err);
	if (rc != 0) {
		tw_error("%s refused: %s", what, err.msg);
		return rc;
	}
	if (g->cfg->has_admin && !tw_admin_same(e, &g->cfg->admin_listen)) {
		tw_admin_stop(e);
		if (tw_admin_start(e, &g->cfg->admin_listen, &err) != 0)
			tw_error("admin listener: %s", err.msg);
	} else if (!g->cfg->has_admin) {
		tw_admin_stop(e);
	}
	tw_log_level = g->cfg->log.level;
	tw_log_burst = g->cfg->log.rate;
	tw_health_stop(e);
	atomic_store(&e->current, g);
	e->gen = g;
	tw_health_start(e, g);
	tw_edge_acme_update(e, g->cfg);
	tw_gen_release(old);
	tw_workers_notify(e);
	if (tw_workers_wait_gen(e, g->id) != 0)
		tw_warn("%s: a worker is slow to take generation %llu", what, (unsigned long long)g->id);
	return 0;
}

/* The whole file, NUL-terminated (malloc'd), or NULL with errno set. */
static char *read_file(const char *path)
{
	FILE *f = fopen(path, "rb");
	if (f == NULL)
		return NULL;
	char *text = NULL;
	size_t len = 0;
	FILE *m = open_memstream(&text, &len);
	char buf[8192];
	size_t n;
	while (m != NULL && (n = fread(buf, 1, sizeof buf, f)) > 0)
		fwrite(buf, 1, n, m);
	int bad = ferror(f);
	fclose(f);
	if (m == NULL || fclose(m) != 0 || bad) {
		free(text);
		errno = bad ? EIO : ENOMEM;
		return NULL;
	}
	return text;
}

static void do_reload(struct run_state *rs)
{
	struct tw_edge *e = &rs->e;
	struct tw_err err = {0};
	struct tw_config *cfg = NULL;
	if (e->k8s != NULL && e->config_path != NULL) {
		/* Checked here; the controller then rebuilds from this very text
		 * with the cluster's state, and "config reloaded" is logged when
		 * that generation is in place. */
		char *text = read_file(e->config_path);
		if (text == NULL) {
			tw_error("reload refused: %s: %s", e->config_path, strerror(errno));
			tw_metric_add(e->m, e->m_reload_err, 1);
			return;
		}
		if (tw_config_load_string(e->config_path, text, strlen(text), &cfg, &err) != 0) {
			tw_error("reload refused: %s", err.msg);
			tw_metric_add(e->m, e->m_reload_err, 1);
			free(text);
			return;
		}
		tw_config_free(cfg);
		pthread_mutex_lock(&rs->k8s_mu);
		free(rs->k8s_file_text);
		rs->k8s_file_text = text;
		rs->hup_seq++;
		pthread_mutex_unlock(&rs->k8s_mu);
		tw_k8s_controller_kick(e->k8s);
		return;
	}
	int rc = load_config(e, &cfg, &err);
	if (rc != 0) {
		tw_error("reload refused: %s", err.msg);
		tw_metric_add(e->m, e->m_reload_err, 1);
		return;
	}
	if (install_config(rs, cfg, 1, "reload") != 0) {
		tw_metric_add(e->m, e->m_reload_err, 1);
		return;
	}
	tw_metric_add(e->m, e->m_reload_ok, 1);
	tw_info("config reloaded (generation %llu)", (unsigned long long)e->gen->id);
}

/* Main thread, after the apply thread posted a generation's config. */
static void k8s_install_pending(struct run_state *rs)
{
	struct tw_edge *e = &rs->e;
	struct k8s_pending *p = atomic_exchange(&rs->k8s_pending, NULL);
	if (p == NULL)
		return;
	if (atomic_load(&e->draining)) {
		tw_config_free(p->cfg);
		free(p);
		return;
	}
	int hup = p->hup_seq > rs->hup_done;
	int rc = install_config(rs, p->cfg, hup, hup ? "reload" : "kubernetes: generation");
	if (hup) {
		rs->hup_done = p->hup_seq;
		tw_metric_add(e->m, rc == 0 ? e->m_reload_ok : e->m_reload_err, 1);
		if (rc == 0)
			tw_info("config reloaded (generation %llu, with the cluster's Ingresses)",
				(unsigned long long)e->gen->id);
	}
	tw_metric_add(e->m, rc == 0 ? rs->m_k8s_gen : rs->m_k8s_gen_err, 1);
	if (rc == 0) {
		if (atomic_exchange(&e->k8s_waiting, 0))
			tw_info("kubernetes: first sync served (generation %llu): ready",
				(unsigned long long)e->gen->id);
		else
			tw_debug("kubernetes: generation %llu in place", (unsigned long long)e->gen->id);
	}
	free(p);
	/* Lists and generations free big blocks in the informer threads' malloc
	 * arenas; hand the pages back after the first sync and then at most
	 * every 10 s (a few ms for a cluster's worth of objects). */
	uint64_t now = tw_loop_now(e->loop);
	if (rs->trimmed_at == 0 || now - rs->trimmed_at >= 10000) {
		malloc_trim(0);
		rs->trimmed_at = now ? now : 1;
	}
}

/* Log each rejected or warned-about Ingress once per distinct reason (the
 * report repeats them at every apply). rs->k8s_lines keeps the last report's
 * lines sorted, so each apply is O(n log n) however many Ingresses have
 * warnings. Apply thread. */
static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static void k8s_log_report(struct run_state *rs, const struct tw_k8s_report *rep)
{
	char **lines = calloc(rep->nitems ? rep->nitems : 1, sizeof *lines);
	size_t n = 0;
	if (lines == NULL)
		return;
	for (size_t i = 0; i < rep->nitems; i++) {
		const struct tw_k8s_ingress_report *it = &rep->items[i];
		/* served: reason holds the warnings; rejected: message says why */
		const char *why = it->verdict == TW_K8S_REJECTED ? (it->message ? it->message : it->reason)
				  : it->verdict == TW_K8S_SERVED	 ? it->reason
									 : NULL;
		if (why == NULL)
			continue;
		if (asprintf(&lines[n], "%s/%s %s: %s", it->ns, it->name,
			     it->verdict == TW_K8S_REJECTED ? "rejected" : "served with warnings", why) < 0)
			break;
		for (char *q = lines[n]; *q; q++)
			if (*q == '\n')
				*q = ' ';
		if (rs->k8s_nlines == 0 ||
		    bsearch(&lines[n], rs->k8s_lines, rs->k8s_nlines, sizeof *lines, cmp_str) == NULL) {
			if (it->verdict == TW_K8S_REJECTED)
				tw_warn("kubernetes: Ingress %s", lines[n]);
			else
				tw_info("kubernetes: Ingress %s", lines[n]);
		}
		n++;
	}
	qsort(lines, n, sizeof *lines, cmp_str);
	for (size_t i = 0; i < rs->k8s_nlines; i++)
		free(rs->k8s_lines[i]);
	free(rs->k8s_lines);
	rs->k8s_lines = lines;
	rs->k8s_nlines = n;
}

/* The controller's apply thread, stores locked: the file's config (as last
 * loaded) plus the cluster's Ingresses, posted to the main thread. */
static int k8s_apply(void *arg, struct tw_k8s_controller *ctl, const struct tw_k8s_view *v)
{
	struct run_state *rs = arg;
	struct tw_edge *e = &rs->e;
	struct tw_err err = {0};
	struct tw_config *cfg = NULL;
	pthread_mutex_lock(&rs->k8s_mu);
	uint64_t seq = rs->hup_seq;
	int rc = rs->k8s_file_text != NULL
		     ? tw_config_load_string(e->config_path ? e->config_path : "<config>", rs->k8s_file_text,
					     strlen(rs->k8s_file_text), &cfg, &err)
		     : load_config(e, &cfg, &err);
	pthread_mutex_unlock(&rs->k8s_mu);
	if (rc != 0) {
		tw_error("kubernetes: the config file no longer loads: %s", err.msg);
		return rc;
	}
	struct tw_k8s_report rep = {0};
	rc = tw_k8s_ingress_apply(cfg, v, rs->k8s_last_good, &rep, &err);
	if (rc != 0) {
		tw_error("kubernetes: the cluster's Ingresses could not be applied: %s", err.msg);
		tw_config_free(cfg);
		tw_k8s_report_clear(&rep);
		return rc;
	}
	k8s_log_report(rs, &rep);
	tw_k8s_controller_report(ctl, &rep);
	tw_k8s_report_clear(&rep);
	struct k8s_pending *p = malloc(sizeof *p);
	if (p == NULL) {
		tw_config_free(cfg);
		return TW_ENOMEM;
	}
	p->cfg = cfg;
	p->hup_seq = seq;
	struct k8s_pending *old = atomic_exchange(&rs->k8s_pending, p);
	if (old != NULL) { /* not taken yet: this one supersedes it */
		if (old->hup_seq > p->hup_seq)
			p->hup_seq = old->hup_seq;
		tw_config_free(old->cfg);
		free(old);
	}
	tw_loop_wake(e->loop);
	return 0;
}

/* The controller's replicas informer: N of `cluster: divide` policies,
 * applied to the live tables at once (no new generation). */
static void k8s_replicas(void *arg, unsigned n)
{
	(void)arg;
	tw_rl_set_cluster_size(n);
}

static int k8s_start(struct run_state *rs, const struct tw_config *cfg)
{
	struct tw_edge *e = &rs->e;
	struct tw_err err = {0};
	pthread_mutex_init(&rs->k8s_mu, NULL);
	if (e->config_path != NULL && (rs->k8s_file_text = read_file(e->config_path)) == NULL)
		return tw_err_set(&err, TW_EIO, "%s: %s", e->config_path, strerror(errno));
	rs->k8s_last_good = tw_k8s_store_new();
	if (rs->k8s_last_good == NULL)
		return tw_err_set(&err, TW_ENOMEM, "out of memory");
	tw_metrics_register("tapwork_k8s_generations_total",
			    "Config generations built from the cluster's state, by result.", TW_METRIC_COUNTER,
			    "result=\"ok\"", &rs->m_k8s_gen);
	tw_metrics_register("tapwork_k8s_generations_total",
			    "Config generations built from the cluster's state, by result.", TW_METRIC_COUNTER,
			    "result=\"error\"", &rs->m_k8s_gen_err);
	atomic_store(&e->k8s_waiting, 1);
	struct tw_k8s_controller_cbs cbs = {.apply = k8s_apply, .replicas = k8s_replicas, .arg = rs};
	struct tw_k8s_controller *c = NULL;
	if (tw_k8s_controller_start(&cfg->k8s, &cbs, &c, &err) != 0) {
		fprintf(stderr, "tapwork: kubernetes: %s\n", err.msg);
		return -1;
	}
	e->k8s = c;
	tw_info("kubernetes: watching the API server; /readyz turns ready after the first sync");
	return 0;
}

static void k8s_stop(struct run_state *rs)
{
	if (rs->e.k8s == NULL)
		return;
	tw_k8s_controller_stop(rs->e.k8s);
	rs->e.k8s = NULL;
	struct k8s_pending *p = atomic_exchange(&rs->k8s_pending, NULL);
	if (p != NULL) {
		tw_config_free(p->cfg);
		free(p);
	}
	tw_k8s_store_free(rs->k8s_last_good);
	free(rs->k8s_file_text);
	for (size_t i = 0; i < rs->k8s_nlines; i++)
		free(rs->k8s_lines[i]);
	free(rs->k8s_lines);
	pthread_mutex_destroy(&rs->k8s_mu);
}

static void on_signal(struct tw_loop *loop, struct tw_io *io, uint32_t ev)
{
	struct run_state *rs = (struct run_state *)((char *)io - offsetof(struct run_state, sig_io));
	struct signalfd_siginfo si;
	while (read(io->fd, &si, sizeof si) == (ssize_t)sizeof si) {
		if (si.ssi_signo == SIGHUP) {
			if (!atomic_load(&rs->e.draining))
				do_reload(rs);
		} else if (si.ssi_signo == SIGTERM || si.ssi_signo == SIGINT) {
			if (!atomic_load(&rs->e.draining)) {
				tw_info("%s: draining (up to %llums), then exiting", si.ssi_signo == SIGTERM ? "SIGTERM" : "SIGINT",
					(unsigned long long)rs->e.gen->cfg->timeouts.drain_ms);
				atomic_store(&rs->e.draining, 1);
				tw_workers_notify(&rs->e);
			} else if (si.ssi_signo == SIGINT) {
				tw_warn("second SIGINT: exiting now");
				_exit(1);
			}
		}
	}
}

/* Once a second: replaced certificate files or internal certificates due
 * for renewal make a new generation (a broken file is refused and logged,
 * and the running certificates keep serving). */
static void on_cert_watch(struct tw_loop *loop, struct tw_timer *t)
{
	struct run_state *rs = (struct run_state *)((char *)t - offsetof(struct run_state, cert_timer));
	struct tw_gen *g = rs->e.gen;
	if (atomic_exchange(&rs->e.acme_changed, 0) && !atomic_load(&rs->e.draining)) {
		do_reload(rs);
		g = rs->e.gen;
	}
	if (g->tls && !atomic_load(&rs->e.draining) && tw_tls_store_stale(g->tls)) {
		tw_info("certificates changed on disk or due for renewal: reloading");
		do_reload(rs);
	}
	tw_timer_set(loop, t, 1000);
}

static void on_main_wake(struct tw_loop *loop, void *arg)
{
	struct run_state *rs = arg;
	if (rs->e.k8s != NULL || atomic_load(&rs->k8s_pending) != NULL)
		k8s_install_pending(rs);
	if (atomic_load(&rs->e.workers_exited) == rs->e.nworkers)
		tw_loop_stop(loop);
}

static void usage(FILE *out)
{
	fprintf(out, "usage: tapwork run [-c FILE]\n\n"
		     "Run the edge: the HTTP reverse proxy and load balancer.\n\n"
		     "  -c, --config FILE   configuration file (YAML); without it, the embedded\n"
		     "                      default serves a welcome page on 127.0.0.1:8080\n"
		     "  -h, --help          this help\n\n"
		     "Signals: SIGHUP reloads the config file (a bad file is refused and the running\n"
		     "config keeps serving); SIGTERM/SIGINT drain in-flight requests and exit.\n");
}

static int run_edge(const char *path, const char *text);

static int cmd_run(int argc, char **argv)
{
	const char *path = NULL;
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
			usage(stdout);
			return 0;
		}
		if ((!strcmp(argv[i], "-c") || !strcmp(argv[i], "--config")) && i + 1 < argc) {
			path = argv[++i];
		} else {
			fprintf(stderr, "tapwork run: unexpected argument '%s'\n", argv[i]);
			usage(stderr);
			return 2;
		}
	}
	return run_edge(path, NULL);
}

/* The edge daemon on a config file (path), a generated config (text, from
 * `tapwork proxy`), or the embedded default (both NULL). */
static int run_edge(const char *path, const char *text)
{
	signal(SIGPIPE, SIG_IGN);
	static struct run_state rs;
	struct tw_edge *e = &rs.e;
	struct tw_err err = {0};
	struct tw_config *cfg = NULL;
	e->config_path = path;
	e->config_text = text;
	int rc = load_config(e, &cfg, &err);
	if (rc != 0) {
		fprintf(stderr, "tapwork: %s\n", err.msg);
		return 1;
	}
	tw_log_level = cfg->log.level;
	if (cfg->warnings)
		tw_warn("config: %.*s", (int)strcspn(cfg->warnings, "\n"), cfg->warnings);
	tw_log_burst = cfg->log.rate;
	e->nworkers = cfg->workers;
	e->alog_fd = open_access_log(cfg);
	if (tw_loop_new(&e->loop) != 0 || tw_metrics_add_shard(&e->m) != 0) {
		fprintf(stderr, "tapwork: out of memory\n");
		return 1;
	}
	tw_metrics_register("tapwork_connections_active", "Client connections open.", TW_METRIC_GAUGE, "",
			    &e->m_conns);
	tw_metrics_register("tapwork_config_reloads_total", "Config reloads by result.", TW_METRIC_COUNTER,
			    "result=\"ok\"", &e->m_reload_ok);
	tw_metrics_register("tapwork_config_reloads_total", "Config reloads by result.", TW_METRIC_COUNTER,
			    "result=\"error\"", &e->m_reload_err);
	tw_metrics_register("tapwork_router_builds_total",
			    "Routing tables built (generations whose sites and routes did not change share one).",
			    TW_METRIC_COUNTER, "", &e->m_router_builds);
	tw_metrics_register("tapwork_slow_bodies_total",
			    "Requests answered 408 and closed because their body came too slowly "
			    "(limits.min_body_rate, timeouts.client_body).",
			    TW_METRIC_COUNTER, "", &e->m_slow_bodies);
	struct tw_gen *g;
	if (tw_gen_build(e, cfg, NULL, &g, &err) != 0) {
		fprintf(stderr, "tapwork: %s\n", err.msg);
		return 1;
	}
	e->gen = g;
	atomic_store(&e->current, g);

	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGHUP);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	rs.sig_io.fd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
	rs.sig_io.cb = on_signal;
	tw_loop_add(e->loop, &rs.sig_io, EPOLLIN);
	tw_loop_set_wake(e->loop, on_main_wake, &rs);

	if (g->cfg->has_admin && tw_admin_start(e, &g->cfg->admin_listen, &err) != 0) {
		fprintf(stderr, "tapwork: admin listener: %s\n", err.msg);
		return 1;
	}
	if (tw_workers_start(e, &err) != 0) {
		fprintf(stderr, "tapwork: %s\n", err.msg);
		return 1;
	}
	tw_health_start(e, g);
	tw_edge_acme_start(e, g->cfg);
	if (g->cfg->has_k8s && k8s_start(&rs, g->cfg) != 0)
		return 1;
	tw_timer_init(&rs.cert_timer, on_cert_watch);
	tw_timer_set(e->loop, &rs.cert_timer, 1000);
	tw_info("tapwork %s: listening on%s%s%s%s with %u worker%s (config %s)%s%s", TW_VERSION,
		g->cfg->has_http ? " http://" : "", g->cfg->has_http ? g->cfg->listen_http.text : "",
		g->cfg->has_https ? " https://" : "", g->cfg->has_https ? g->cfg->listen_https.text : "", e->nworkers,
		e->nworkers == 1 ? "" : "s", g->cfg->source, g->cfg->has_admin ? ", admin on http://" : "",
		g->cfg->has_admin ? g->cfg->admin_listen.text : "");
	if (g->tls && tw_tls_store_root_path(g->tls)[0])
		tw_info("local CA root: %s (tapwork cert trust explains how to trust it)", tw_tls_store_root_path(g->tls));
	/* backup jobs: their own thread and config copy (src/backup/sched.c) */
	if (tw_backup_sched_start(path, &err) != 0)
		tw_error("backup scheduler: %s (backup jobs will not run)", err.msg);
	tw_loop_run(e->loop);
	k8s_stop(&rs);
	tw_backup_sched_stop();
	tw_workers_join(e);
	tw_edge_acme_stop(e);
	tw_health_stop(e);
	tw_admin_stop(e);
	tw_gen_release(e->gen);
	close(rs.sig_io.fd);
	tw_loop_free(e->loop);
	if (e->alog_fd >= 0)
		close(e->alog_fd);
	tw_info("stopped");
	return 0;
}

static void proxy_usage(FILE *out)
{
	fprintf(out, "usage: tapwork proxy --from HOST[,HOST...] --to ADDR [options]\n\n"
		     "A one-line HTTPS reverse proxy: serves HOST over HTTPS in front of ADDR, with\n"
		     "the redirect from HTTP. Internal names (localhost, *.localhost, *.test,\n"
		     "*.internal, IP addresses) get a certificate from tapwork's local CA; public\n"
		     "names get one from Let's Encrypt when --email is given (ACME), else a\n"
		     "temporary local-CA certificate.\n\n"
		     "  --from HOSTS     host names to serve (comma-separated)\n"
		     "  --to ADDR        upstream address (host:port)\n"
		     "  --http ADDR      HTTP listener (default 127.0.0.1:8080; \"off\" for none)\n"
		     "  --https ADDR     HTTPS listener (default 127.0.0.1:8443)\n"
		     "  --admin ADDR     admin listener (/healthz /readyz /metrics; default off)\n"
		     "  --state-dir DIR  certificates and keys (default /var/lib/tapwork, or\n"
		     "                   ~/.local/state/tapwork when not root)\n"
		     "  --email ADDR     ACME account contact: enables ACME for public names\n"
		     "  --acme-directory URL  ACME directory (default Let's Encrypt)\n"
		     "  --print-config   print the generated configuration and exit\n");
}

/* YAML double-quoted scalar (escape " and \\); values come from argv. */
static int yq(struct tw_dbuf *b, const char *v)
{
	int rc = tw_dbuf_append(b, "\"", 1);
	for (const char *p = v; *p; p++) {
		if (*p == '"' || *p == '\\')
			rc |= tw_dbuf_append(b, "\\", 1);
		if ((unsigned char)*p < 0x20)
			continue;
		rc |= tw_dbuf_append(b, p, 1);
	}
	return rc | tw_dbuf_append(b, "\"", 1);
}

static int cmd_proxy(int argc, char **argv)
{
	const char *from = NULL, *to = NULL, *http = "127.0.0.1:8080", *https = "127.0.0.1:8443", *admin = NULL,
		   *state = NULL, *email = NULL, *dir = NULL;
	int print = 0;
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		const char **dst = !strcmp(a, "--from") ? &from : !strcmp(a, "--to") ? &to
				 : !strcmp(a, "--http") ? &http : !strcmp(a, "--https") ? &https
				 : !strcmp(a, "--admin") ? &admin : !strcmp(a, "--state-dir") ? &state
				 : !strcmp(a, "--email") ? &email : !strcmp(a, "--acme-directory") ? &dir : NULL;
		if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
			proxy_usage(stdout);
			return 0;
		} else if (!strcmp(a, "--print-config")) {
			print = 1;
		} else if (dst != NULL && i + 1 < argc) {
			*dst = argv[++i];
		} else {
			fprintf(stderr, "tapwork proxy: unexpected argument '%s'\n", a);
			proxy_usage(stderr);
			return 2;
		}
	}
	if (from == NULL || to == NULL) {
		fprintf(stderr, "tapwork proxy: --from and --to are required\n");
		proxy_usage(stderr);
		return 2;
	}
	static struct tw_dbuf y;
	tw_dbuf_init(&y, 64 * 1024);
	int rc = tw_dbuf_appendf(&y, "# generated by tapwork proxy\nlisten:\n");
	if (strcmp(http, "off") != 0) {
		rc |= tw_dbuf_appendf(&y, "  http: ");
		rc |= yq(&y, http);
		rc |= tw_dbuf_appendf(&y, "\n");
	}
	rc |= tw_dbuf_appendf(&y, "  https: ");
	rc |= yq(&y, https);
	rc |= tw_dbuf_appendf(&y, "\n");
	if (admin) {
		rc |= tw_dbuf_appendf(&y, "admin:\n  listen: ");
		rc |= yq(&y, admin);
		rc |= tw_dbuf_appendf(&y, "\n");
	}
	if (state) {
		rc |= tw_dbuf_appendf(&y, "state_dir: ");
		rc |= yq(&y, state);
		rc |= tw_dbuf_appendf(&y, "\n");
	}
	if (email) {
		rc |= tw_dbuf_appendf(&y, "acme:\n  email: ");
		rc |= yq(&y, email);
		if (dir) {
			rc |= tw_dbuf_appendf(&y, "\n  directory: ");
			rc |= yq(&y, dir);
		}
		rc |= tw_dbuf_appendf(&y, "\n");
	}
	rc |= tw_dbuf_appendf(&y, "sites:\n  - hosts: [");
	char hosts[4096];
	snprintf(hosts, sizeof hosts, "%s", from);
	int first = 1;
	for (char *save = NULL, *h = strtok_r(hosts, ",", &save); h; h = strtok_r(NULL, ",", &save)) {
		if (!first)
			rc |= tw_dbuf_appendf(&y, ", ");
		rc |= yq(&y, h);
		first = 0;
	}
	rc |= tw_dbuf_appendf(&y, "]\n    routes:\n      - {path: /, backend: app}\nbackends:\n  app:\n    servers: [");
	rc |= yq(&y, to);
	rc |= tw_dbuf_appendf(&y, "]\n");
	if (rc != 0) {
		fprintf(stderr, "tapwork proxy: arguments too long\n");
		return 2;
	}
	if (print) {
		fwrite(y.data, 1, y.len, stdout);
		return 0;
	}
	return run_edge(NULL, y.data);
}

TW_CLI_COMMAND(run, "run", "run the edge (reverse proxy, load balancer)", cmd_run)
TW_CLI_COMMAND(proxy, "proxy", "one-line HTTPS reverse proxy: --from HOST --to ADDR", cmd_proxy)
