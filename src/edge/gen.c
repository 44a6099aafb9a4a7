/* gen.c — a config generation and its runtime state. */
#include "edge/edge.h"

#include "core/log.h"
#include "tls/tls.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct tw_gen *tw_gen_acquire(struct tw_gen *g)
{
	atomic_fetch_add_explicit(&g->refs, 1, memory_order_relaxed);
	return g;
}

static void gen_free(struct tw_gen *g)
{
	if (g->wk != NULL) {
		for (unsigned w = 0; w < g->nworkers; w++) {
			if (g->wk[w].be == NULL)
				continue;
			for (size_t b = 0; b < g->cfg->nbackends; b++)
				if (g->wk[w].be[b].lb.ops != NULL)
					tw_lb_destroy(&g->wk[w].be[b].lb);
		}
	}
	tw_tls_store_release(g->tls);
	tw_config_free(g->cfg);
	free(g);
}

void tw_gen_release(struct tw_gen *g)
{
	if (g == NULL)
		return;
	if (atomic_fetch_sub_explicit(&g->refs, 1, memory_order_acq_rel) == 1)
		gen_free(g);
}

/* The previous generation's backends by name (open addressing, indexes + 1),
 * so that carrying health and ejection state over is linear in the backends:
 * a Kubernetes cluster's generations have thousands and come often. */
struct prev_index {
	const struct tw_gen *prev;
	size_t *slot;
	size_t cap;
};

static size_t name_hash(const char *s)
{
	size_t h = 14695981039346656037u;
	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 1099511628211u;
	return h;
}

static int prev_index_build(struct prev_index *pi, const struct tw_gen *prev)
{
	pi->prev = prev;
	pi->slot = NULL;
	pi->cap = 0;
	if (prev == NULL || prev->cfg->nbackends == 0)
		return 0;
	pi->cap = 2 * prev->cfg->nbackends;
	pi->slot = calloc(pi->cap, sizeof *pi->slot);
	if (pi->slot == NULL)
		return TW_ENOMEM;
	for (size_t b = 0; b < prev->cfg->nbackends; b++) {
		size_t p = name_hash(prev->cfg->backends[b].name) % pi->cap;
		while (pi->slot[p] != 0)
			p = (p + 1) % pi->cap;
		pi->slot[p] = b + 1;
	}
	return 0;
}

static const struct tw_srv_shared *find_prev(const struct prev_index *pi, const char *be_name,
					     const struct tw_addr *addr)
{
	if (pi->cap == 0)
		return NULL;
	const struct tw_gen *prev = pi->prev;
	for (size_t p = name_hash(be_name) % pi->cap; pi->slot[p] != 0; p = (p + 1) % pi->cap) {
		size_t b = pi->slot[p] - 1;
		const struct tw_conf_backend *pb = &prev->cfg->backends[b];
		if (strcmp(pb->name, be_name) != 0)
			continue;
		for (size_t s = 0; s < pb->nservers; s++)
			if (strcmp(pb->servers[s].addr.text, addr->text) == 0)
				return &prev->be[b].srv[s];
		return NULL;
	}
	return NULL;
}

int tw_gen_build(struct tw_edge *e, struct tw_config *cfg, const struct tw_gen *prev, struct tw_gen **out,
		 struct tw_err *err)
{
	struct tw_gen *g = calloc(1, sizeof *g);
	if (g == NULL) {
		tw_config_free(cfg);
		return tw_err_set(err, TW_ENOMEM, "out of memory");
	}
	g->cfg = cfg;
	atomic_init(&g->refs, 1);
	g->edge = e;
	g->id = ++e->gen_seq;
	g->nworkers = e->nworkers;
	struct tw_arena *a = &cfg->arena;
	struct prev_index pi = {0};
	int rc = tw_router_build(cfg, &g->router, err);
	if (rc != 0)
		goto fail;
	if (cfg->has_https) {
		rc = tw_tls_store_build(cfg, prev ? prev->tls : NULL, &g->tls, err);
		if (rc != 0)
			goto fail;
		tw_tls_store_set_alpn(g->tls, "h2,http/1.1");
		if (cfg->has_acme)
			tw_tls_store_set_acme_hook(g->tls, tw_edge_acme_tlsalpn01, e);
	}
	rc = TW_ENOMEM;
	size_t nb = cfg->nbackends;
	g->be = tw_arena_alloc(a, (nb ? nb : 1) * sizeof *g->be);
	g->wk = tw_arena_alloc(a, g->nworkers * sizeof *g->wk);
	if (g->be == NULL || g->wk == NULL)
		goto nomem;

	char lab[512], esc_be[320], esc_srv[96];
	if (prev_index_build(&pi, prev) != 0)
		goto nomem;
	for (size_t b = 0; b < nb; b++) {
		const struct tw_conf_backend *cb = &cfg->backends[b];
		struct tw_be_shared *bs = &g->be[b];
		bs->srv = tw_arena_alloc(a, cb->nservers * sizeof *bs->srv);
		bs->up = tw_arena_alloc(a, cb->nservers * sizeof *bs->up);
		if (bs->srv == NULL || bs->up == NULL)
			goto nomem;
		tw_metrics_escape(cb->name, esc_be, sizeof esc_be);
		snprintf(lab, sizeof lab, "backend=\"%s\"", esc_be);
		if (tw_metrics_register("tapwork_request_duration_seconds",
					"Time from request head received to response complete.",
					TW_METRIC_HISTOGRAM, lab, &bs->m_hist) != 0)
			goto limit;
		for (size_t s = 0; s < cb->nservers; s++) {
			struct tw_srv_shared *ss = &bs->srv[s];
			const struct tw_srv_shared *ps = find_prev(&pi, cb->name, &cb->servers[s].addr);
			int hup = ps ? atomic_load(&ps->health_up) : 1;
			uint64_t ej = ps ? atomic_load(&ps->eject_until) : 0;
			atomic_init(&ss->health_up, hup);
			atomic_init(&ss->eject_until, ej);
			atomic_init(&bs->up[s], hup && ej == 0);
			tw_metrics_escape(cb->servers[s].addr.text, esc_srv, sizeof esc_srv);
			/* registered series are never freed: a dynamic backend's pods
			 * (new addresses all the time) share one */
			snprintf(lab, sizeof lab, "backend=\"%s\",server=\"%s\"", esc_be, cb->dynamic ? "*" : esc_srv);
			if (tw_metrics_register("tapwork_upstream_connect_errors_total",
						"Failed connections to upstream servers.", TW_METRIC_COUNTER, lab,
						&ss->m_connect_err) != 0)
				goto limit;
		}
	}
	for (unsigned w = 0; w < g->nworkers; w++) {
		g->wk[w].be = tw_arena_alloc(a, (nb ? nb : 1) * sizeof *g->wk[w].be);
		if (g->wk[w].be == NULL)
			goto nomem;
		for (size_t b = 0; b < nb; b++) {
			struct tw_be_worker *bw = &g->wk[w].be[b];
			const struct tw_conf_backend *cb = &cfg->backends[b];
			bw->fails = tw_arena_alloc(a, cb->nservers * sizeof *bw->fails);
			bw->pools = tw_arena_alloc(a, cb->nservers * sizeof *bw->pools);
			if (bw->fails == NULL || bw->pools == NULL)
				goto nomem;
			rc = tw_lb_init(&bw->lb, cb, g->be[b].up, g->id * 7919u + w * 104729u + b + 1);
			if (rc != 0) {
				tw_err_set(err, rc, "backend %s: balancer setup failed", cb->name);
				goto fail;
			}
		}
	}
	/* requests_total slots: per site (+ "no site"), backend "-" and the
	 * backends its routes use. Series follow the routes, not sites x backends. */
	size_t ns = cfg->nsites + 1;
	g->site_req = tw_arena_alloc(a, ns * sizeof *g->site_req);
	g->site_label = tw_arena_alloc(a, ns * sizeof *g->site_label);
	size_t *used = calloc(nb + 1, sizeof *used); /* used[b] = 1 + site seen last, to dedupe */
	if (g->site_req == NULL || g->site_label == NULL || used == NULL) {
		free(used);
		goto nomem;
	}
	for (size_t s = 0; s < ns; s++) {
		const char *sl = s < cfg->nsites && cfg->sites[s].nhosts ? cfg->sites[s].hosts[0] : "-";
		g->site_label[s] = tw_arena_strdup(a, sl);
		size_t nr = s < cfg->nsites ? cfg->sites[s].nroutes : 0;
		struct tw_site_req *sr = &g->site_req[s];
		sr->e = tw_arena_alloc(a, (nr + 1) * sizeof *sr->e);
		if (g->site_label[s] == NULL || sr->e == NULL) {
			free(used);
			goto nomem;
		}
		char esc_site[300];
		tw_metrics_escape(sl, esc_site, sizeof esc_site);
		sr->e[0].backend = nb;
		sr->n = 1;
		for (size_t r = 0; r < nr; r++) {
			const struct tw_conf_route *rt = &cfg->sites[s].routes[r];
			if (rt->handler == TW_HANDLER_PROXY && rt->backend < nb && used[rt->backend] != s + 1) {
				used[rt->backend] = s + 1;
				sr->e[sr->n++].backend = rt->backend;
			}
		}
		for (size_t i = 0; i < sr->n; i++) {
			size_t b = sr->e[i].backend;
			tw_metrics_escape(b < nb ? cfg->backends[b].name : "-", esc_be, sizeof esc_be);
			for (unsigned k = 0; k < 5; k++) {
				char l2[512];
				snprintf(l2, sizeof l2, "site=\"%s\",backend=\"%s\",code=\"%uxx\"", esc_site, esc_be,
					 k + 1);
				if (tw_metrics_register("tapwork_requests_total", "Requests answered.",
							TW_METRIC_COUNTER, l2, &sr->e[i].slot[k]) != 0) {
					free(used);
					goto limit;
				}
			}
		}
	}
	free(used);
	free(pi.slot);
	*out = g;
	return 0;
nomem:
	rc = tw_err_set(err, TW_ENOMEM, "out of memory");
	goto fail;
limit:
	rc = tw_err_set(err, TW_ELIMIT, "too many metric series (more than %u): fewer sites/backends",
			TW_METRICS_MAX);
fail:
	free(pi.slot);
	gen_free(g);
	return rc;
}
