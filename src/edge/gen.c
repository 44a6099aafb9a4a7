/* gen.c — a config generation and its runtime state. */
#include "edge/edge.h"

#include "core/log.h"
#include "edge/ratelimit.h"
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
	if (g->rl != NULL) {
		for (size_t i = 0; i < g->cfg->nrate_limits; i++)
			tw_rl_table_put(g->rl[i]);
		free(g->rl);
	}
	struct tw_router_ref *rr = g->rref;
	if (rr == NULL || rr->owner != g->cfg)
		tw_config_free(g->cfg);
	if (rr != NULL && atomic_fetch_sub_explicit(&rr->refs, 1, memory_order_acq_rel) == 1) {
		tw_config_free(rr->owner);
		free(rr);
	}
	free(g);
}

/* Do a and b route alike: the same sites in the same order (hosts, routes:
 * path, match, handler, backend index and name)? Then a routing table built
 * from one serves the other (route.c reads nothing else). */
static int same_routing(const struct tw_config *a, const struct tw_config *b)
{
	if (a->nsites != b->nsites || a->default_site != b->default_site)
		return 0;
	for (size_t i = 0; i < a->nsites; i++) {
		const struct tw_conf_site *x = &a->sites[i], *y = &b->sites[i];
		if (x->nhosts != y->nhosts || x->nroutes != y->nroutes || x->wild_any_depth != y->wild_any_depth)
			return 0;
		for (size_t k = 0; k < x->nhosts; k++)
			if (strcmp(x->hosts[k], y->hosts[k]) != 0)
				return 0;
		for (size_t k = 0; k < x->nroutes; k++) {
			const struct tw_conf_route *r = &x->routes[k], *q = &y->routes[k];
			if (r->path_len != q->path_len || r->match != q->match || r->handler != q->handler ||
			    r->backend != q->backend || r->max_body != q->max_body || r->rate_limit != q->rate_limit ||
			    (r->rate_limit && strcmp(a->rate_limits[r->rate_limit - 1].name,
						     b->rate_limits[q->rate_limit - 1].name) != 0) ||
			    !tw_cz_conf_equal(r->compress, q->compress) || !tw_static_conf_equal(r, q) ||
			    memcmp(r->path, q->path, r->path_len) != 0 || !tw_route_ext_equal(r->ext, q->ext))
				return 0;
			if (r->handler == TW_HANDLER_PROXY &&
			    (r->backend >= a->nbackends || q->backend >= b->nbackends ||
			     strcmp(a->backends[r->backend].name, b->backends[q->backend].name) != 0))
				return 0;
		}
	}
	return 1;
}

void tw_gen_release(struct tw_gen *g)
{
	if (g == NULL)
		return;
	if (atomic_fetch_sub_explicit(&g->refs, 1, memory_order_acq_rel) == 1)
		gen_free(g);
}

/* The previous generation's backends and sites by name (open addressing,
 * indexes + 1), so that carrying health, ejection state and metric slots
 * over is linear in the backends: a Kubernetes cluster's generations have
 * thousands and come often. */
struct prev_index {
	const struct tw_gen *prev;
	size_t *be, *site;
	size_t be_cap, site_cap;
};

static size_t name_hash(const char *s)
{
	size_t h = 14695981039346656037u;
	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 1099511628211u;
	return h;
}

static size_t *index_names(size_t n, size_t *cap, const char *(*name)(const struct tw_gen *, size_t),
			   const struct tw_gen *prev)
{
	*cap = 2 * n;
	size_t *slot = calloc(*cap, sizeof *slot);
	if (slot == NULL)
		return NULL;
	for (size_t i = 0; i < n; i++) {
		size_t p = name_hash(name(prev, i)) % *cap;
		while (slot[p] != 0)
			p = (p + 1) % *cap;
		slot[p] = i + 1;
	}
	return slot;
}

static const char *be_name(const struct tw_gen *g, size_t i)
{
	return g->cfg->backends[i].name;
}

static const char *site_name(const struct tw_gen *g, size_t i)
{
	return g->site_label[i];
}

static int prev_index_build(struct prev_index *pi, const struct tw_gen *prev)
{
	memset(pi, 0, sizeof *pi);
	pi->prev = prev;
	if (prev == NULL)
		return 0;
	if (prev->cfg->nbackends > 0 &&
	    (pi->be = index_names(prev->cfg->nbackends, &pi->be_cap, be_name, prev)) == NULL)
		return TW_ENOMEM;
	if ((pi->site = index_names(prev->cfg->nsites + 1, &pi->site_cap, site_name, prev)) == NULL)
		return TW_ENOMEM;
	return 0;
}

static void prev_index_free(struct prev_index *pi)
{
	free(pi->be);
	free(pi->site);
}

static size_t lookup(const size_t *slot, size_t cap, const char *key, const char *(*name)(const struct tw_gen *, size_t),
		     const struct tw_gen *prev)
{
	if (cap == 0)
		return SIZE_MAX;
	for (size_t p = name_hash(key) % cap; slot[p] != 0; p = (p + 1) % cap)
		if (strcmp(name(prev, slot[p] - 1), key) == 0)
			return slot[p] - 1;
	return SIZE_MAX;
}

/* The previous generation's backend of that name, or SIZE_MAX. */
static size_t prev_backend(const struct prev_index *pi, const char *name)
{
	return lookup(pi->be, pi->be_cap, name, be_name, pi->prev);
}

static const struct tw_srv_shared *prev_server(const struct prev_index *pi, size_t pb, const struct tw_addr *addr)
{
	if (pb == SIZE_MAX)
		return NULL;
	const struct tw_conf_backend *b = &pi->prev->cfg->backends[pb];
	for (size_t s = 0; s < b->nservers; s++)
		if (strcmp(b->servers[s].addr.text, addr->text) == 0)
			return &pi->prev->be[pb].srv[s];
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
	int rc;
	if (prev != NULL && same_routing(prev->cfg, cfg)) {
		g->rref = prev->rref;
		atomic_fetch_add_explicit(&g->rref->refs, 1, memory_order_relaxed);
		g->router = g->rref->router;
	} else {
		struct tw_router_ref *rr = calloc(1, sizeof *rr);
		if (rr == NULL)
			goto nomem;
		if ((rc = tw_router_build(cfg, &rr->router, err)) != 0) {
			free(rr);
			goto fail;
		}
		rr->owner = cfg;
		atomic_init(&rr->refs, 1);
		g->rref = rr;
		g->router = rr->router;
		if (e->m != NULL)
			tw_metric_add(e->m, e->m_router_builds, 1);
	}
	if (cfg->has_https) {
		rc = tw_tls_store_build(cfg, prev ? prev->tls : NULL, &g->tls, err);
		if (rc != 0)
			goto fail;
		tw_tls_store_set_alpn(g->tls, "h2,http/1.1");
		if (cfg->has_acme)
			tw_tls_store_set_acme_hook(g->tls, tw_edge_acme_tlsalpn01, e);
	}
	if (cfg->nrate_limits) {
		if ((g->rl = calloc(cfg->nrate_limits, sizeof *g->rl)) == NULL)
			goto nomem;
		for (size_t i = 0; i < cfg->nrate_limits; i++)
			if ((g->rl[i] = tw_rl_table_get(&cfg->rate_limits[i])) == NULL)
				goto nomem;
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
		/* metric slots of a backend or server the previous generation had
		 * are taken from it: registering them again finds the same slots */
		size_t pb = prev_backend(&pi, cb->name);
		const struct tw_conf_backend *pcb = pb != SIZE_MAX ? &prev->cfg->backends[pb] : NULL;
		int dyn_slot = pcb != NULL && cb->dynamic && pcb->dynamic && pcb->nservers > 0;
		tw_metrics_escape(cb->name, esc_be, sizeof esc_be);
		snprintf(lab, sizeof lab, "backend=\"%s\"", esc_be);
		if (pcb != NULL)
			bs->m_hist = prev->be[pb].m_hist;
		else if (tw_metrics_register("tapwork_request_duration_seconds",
					     "Time from request head received to response complete.",
					     TW_METRIC_HISTOGRAM, lab, &bs->m_hist) != 0)
			goto limit;
		for (size_t s = 0; s < cb->nservers; s++) {
			struct tw_srv_shared *ss = &bs->srv[s];
			const struct tw_srv_shared *ps = prev_server(&pi, pb, &cb->servers[s].addr);
			int hup = ps ? atomic_load(&ps->health_up) : 1;
			uint64_t ej = ps ? atomic_load(&ps->eject_until) : 0;
			atomic_init(&ss->health_up, hup);
			atomic_init(&ss->eject_until, ej);
			atomic_init(&bs->up[s], hup && ej == 0);
			if (dyn_slot || (ps != NULL && !cb->dynamic && !pcb->dynamic)) {
				const struct tw_srv_shared *from = dyn_slot ? &prev->be[pb].srv[0] : ps;
				ss->m_connect_err = from->m_connect_err;
				ss->m_up_open = from->m_up_open;
				ss->m_up_reuse = from->m_up_reuse;
				continue;
			}
			tw_metrics_escape(cb->servers[s].addr.text, esc_srv, sizeof esc_srv);
			/* registered series are never freed: a dynamic backend's pods
			 * (new addresses all the time) share one */
			snprintf(lab, sizeof lab, "backend=\"%s\",server=\"%s\"", esc_be, cb->dynamic ? "*" : esc_srv);
			if (tw_metrics_register("tapwork_upstream_connect_errors_total",
						"Failed connections to upstream servers.", TW_METRIC_COUNTER, lab,
						&ss->m_connect_err) != 0)
				goto limit;
			char lab2[sizeof lab + 32];
			snprintf(lab2, sizeof lab2, "%s,how=\"opened\"", lab);
			if (tw_metrics_register("tapwork_upstream_connections_total",
						"Upstream connections handed to requests: opened new, or reused from the pool.",
						TW_METRIC_COUNTER, lab2, &ss->m_up_open) != 0)
				goto limit;
			snprintf(lab2, sizeof lab2, "%s,how=\"reused\"", lab);
			if (tw_metrics_register("tapwork_upstream_connections_total",
						"Upstream connections handed to requests: opened new, or reused from the pool.",
						TW_METRIC_COUNTER, lab2, &ss->m_up_reuse) != 0)
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
		size_t nr = s < cfg->nsites ? cfg->sites[s].nroutes : 0, nslots = nr;
		for (size_t r = 0; r < nr; r++) /* weighted routes: each of their backends */
			if (cfg->sites[s].routes[r].ext)
				nslots += cfg->sites[s].routes[r].ext->nwb;
		struct tw_site_req *sr = &g->site_req[s];
		sr->e = tw_arena_alloc(a, (nslots + 1) * sizeof *sr->e);
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
			for (size_t k = 0; rt->ext && k < rt->ext->nwb; k++) {
				size_t wbk = rt->ext->wb[k].backend;
				if (wbk < nb && used[wbk] != s + 1) {
					used[wbk] = s + 1;
					sr->e[sr->n++].backend = wbk;
				}
			}
		}
		size_t ps = prev != NULL ? lookup(pi.site, pi.site_cap, sl, site_name, prev) : SIZE_MAX;
		const struct tw_site_req *psr = ps != SIZE_MAX ? &prev->site_req[ps] : NULL;
		for (size_t i = 0; i < sr->n; i++) {
			size_t b = sr->e[i].backend;
			const char *bname = b < nb ? cfg->backends[b].name : NULL;
			const struct tw_req_slots *pe = NULL;
			for (size_t k = 0; psr != NULL && pe == NULL && k < psr->n; k++) {
				size_t pbk = psr->e[k].backend;
				const char *pn = pbk < prev->cfg->nbackends ? prev->cfg->backends[pbk].name : NULL;
				if ((bname == NULL && pn == NULL) || (bname && pn && strcmp(bname, pn) == 0))
					pe = &psr->e[k];
			}
			if (pe != NULL) {
				memcpy(sr->e[i].slot, pe->slot, sizeof pe->slot);
				continue;
			}
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
	prev_index_free(&pi);
	*out = g;
	return 0;
nomem:
	rc = tw_err_set(err, TW_ENOMEM, "out of memory");
	goto fail;
limit:
	rc = tw_err_set(err, TW_ELIMIT, "too many metric series (more than %u): fewer sites/backends",
			TW_METRICS_MAX);
fail:
	prev_index_free(&pi);
	gen_free(g);
	return rc;
}
