/* watch.c — the watch event parser and the informer. See watch.h and
 * docs/internals/k8s.md. */
#include "k8s/watch.h"

#include "core/log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* ---- the event parser -------------------------------------------------- */

static const char *const ev_names[] = {"ADDED", "MODIFIED", "DELETED", "BOOKMARK", "ERROR"};

const char *tw_k8s_ev_type_name(enum tw_k8s_ev_type t)
{
	return (unsigned)t < 5 ? ev_names[t] : "?";
}

void tw_k8s_event_clear(struct tw_k8s_event *ev)
{
	if (ev == NULL)
		return;
	json_decref(ev->object);
	memset(ev, 0, sizeof *ev);
}

void tw_k8s_watch_lines_init(struct tw_k8s_watch_lines *p, size_t cap)
{
	tw_dbuf_init(&p->line, cap ? cap : TW_K8S_WATCH_LINE_MAX);
}

void tw_k8s_watch_lines_free(struct tw_k8s_watch_lines *p)
{
	tw_dbuf_free(&p->line);
}

static int blank(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (s[i] != ' ' && s[i] != '\t' && s[i] != '\r')
			return 0;
	return 1;
}

int tw_k8s_watch_event_parse(const char *line, size_t len, struct tw_k8s_event *ev,
                             struct tw_err *err)
{
	json_error_t je;
	memset(ev, 0, sizeof *ev);
	json_t *root = json_loadb(line, len, JSON_REJECT_DUPLICATES, &je);
	if (root == NULL)
		return tw_err_set(err, TW_EPROTO, "watch event: not JSON (%s at %d)", je.text,
		                  je.position);
	int rc = 0;
	const char *type = json_string_value(json_object_get(root, "type"));
	json_t *obj = json_object_get(root, "object");
	size_t t;
	if (!json_is_object(root) || type == NULL) {
		rc = tw_err_set(err, TW_EPROTO, "watch event: no \"type\"");
		goto out;
	}
	for (t = 0; t < 5; t++)
		if (strcmp(type, ev_names[t]) == 0)
			break;
	if (t == 5) {
		rc = tw_err_set(err, TW_EPROTO, "watch event: unknown type \"%.32s\"", type);
		goto out;
	}
	if (!json_is_object(obj)) {
		rc =
		    tw_err_set(err, TW_EPROTO, "watch event %s: \"object\" is not an object", type);
		goto out;
	}
	ev->type = (enum tw_k8s_ev_type)t;
	if (ev->type == TW_K8S_EV_ERROR) {
		json_t *code = json_object_get(obj, "code");
		ev->code = json_is_integer(code) && json_integer_value(code) > 0 &&
		                   json_integer_value(code) < 1000
		               ? (long)json_integer_value(code)
		               : 500;
	} else {
		json_t *md = json_object_get(obj, "metadata");
		const char *rv = json_string_value(json_object_get(md, "resourceVersion"));
		if (rv == NULL) {
			rc = tw_err_set(err, TW_EPROTO,
			                "watch event %s: no metadata.resourceVersion", type);
			goto out;
		}
		if (ev->type != TW_K8S_EV_BOOKMARK) {
			const char *name = json_string_value(json_object_get(md, "name"));
			json_t *ns = json_object_get(md, "namespace");
			if (name == NULL || name[0] == '\0' || (ns && !json_is_string(ns))) {
				rc =
				    tw_err_set(err, TW_EPROTO,
				               "watch event %s: bad metadata.name/namespace", type);
				goto out;
			}
		}
	}
	ev->object = json_incref(obj);
out:
	json_decref(root);
	return rc;
}

int tw_k8s_watch_lines_next(struct tw_k8s_watch_lines *p, const char *data, size_t len,
                            size_t *consumed, struct tw_k8s_event *ev, struct tw_err *err)
{
	size_t off = 0;
	memset(ev, 0, sizeof *ev);
	while (off < len) {
		const char *nl = memchr(data + off, '\n', len - off);
		if (nl == NULL) {
			if (tw_dbuf_append(&p->line, data + off, len - off) < 0) {
				tw_dbuf_reset(&p->line);
				*consumed = len;
				return tw_err_set(err, TW_ELIMIT,
				                  "watch event longer than %zu bytes", p->line.cap);
			}
			*consumed = len;
			return TW_EAGAIN;
		}
		size_t n = (size_t)(nl - (data + off));
		const char *line = data + off;
		size_t ll = n;
		off += n + 1;
		if (p->line.len > 0) {
			if (tw_dbuf_append(&p->line, line, n) < 0) {
				tw_dbuf_reset(&p->line);
				*consumed = off;
				return tw_err_set(err, TW_ELIMIT,
				                  "watch event longer than %zu bytes", p->line.cap);
			}
			line = p->line.data;
			ll = p->line.len;
		} else if (n > p->line.cap) {
			*consumed = off;
			return tw_err_set(err, TW_ELIMIT, "watch event longer than %zu bytes",
			                  p->line.cap);
		}
		if (blank(line, ll)) {
			tw_dbuf_reset(&p->line);
			continue;
		}
		int rc = tw_k8s_watch_event_parse(line, ll, ev, err);
		tw_dbuf_reset(&p->line);
		*consumed = off;
		return rc;
	}
	*consumed = len;
	return TW_EAGAIN;
}

/* ---- the informer -------------------------------------------------------- */

struct tw_k8s_watch {
	struct tw_k8s_watch_opts o;
	char *kind, *path, *ns, *lsel, *fsel;
	struct tw_k8s_client *c;
	const atomic_int *stop;
	enum tw_k8s_watch_state state;
	char rv[128];      /* watch from here */
	unsigned failures; /* consecutive, for the backoff */
	uint64_t retry_after_s;
	struct tw_k8s_watch_lines lines;
	int stream_rc; /* why the stream callback stopped */
	int gone;      /* 410 seen in the stream */
	size_t stream_events;
	struct tw_k8s_watch_stats st;
};

static const char *const state_names[] = {"list", "watch", "backoff", "stopped"};

const char *tw_k8s_watch_state_name(enum tw_k8s_watch_state s)
{
	return (unsigned)s < 4 ? state_names[s] : "?";
}

/* The one place the state changes. */
static void set_state(struct tw_k8s_watch *w, enum tw_k8s_watch_state to, const char *why)
{
	if (w->state == to)
		return;
	TW_LOG(to == TW_K8S_W_BACKOFF ? TW_LOG_WARN : TW_LOG_DEBUG, "[k8s %s] %s -> %s (%s)",
	       w->kind, tw_k8s_watch_state_name(w->state), tw_k8s_watch_state_name(to), why);
	w->state = to;
}

static uint64_t real_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static char *sdup(const char *s)
{
	return s ? strdup(s) : NULL;
}

int tw_k8s_watch_new(const struct tw_k8s_watch_opts *o, struct tw_k8s_client *c,
                     const atomic_int *stop, struct tw_k8s_watch **out)
{
	struct tw_k8s_watch *w = calloc(1, sizeof *w);
	if (w == NULL)
		return TW_ENOMEM;
	w->o = *o;
	w->kind = sdup(o->kind ? o->kind : "objects");
	w->path = sdup(o->path);
	w->ns = sdup(o->ns);
	w->lsel = sdup(o->label_selector);
	w->fsel = sdup(o->field_selector);
	w->c = c;
	w->stop = stop;
	if (!w->o.page_limit)
		w->o.page_limit = 500;
	if (!w->o.timeout_s)
		w->o.timeout_s = 300;
	if (!w->o.backoff_min_ms)
		w->o.backoff_min_ms = 1000;
	if (!w->o.backoff_max_ms)
		w->o.backoff_max_ms = 30000;
	tw_k8s_watch_lines_init(&w->lines, o->line_max);
	if (w->kind == NULL || w->path == NULL || (o->ns && !w->ns) ||
	    (o->label_selector && !w->lsel) || (o->field_selector && !w->fsel)) {
		tw_k8s_watch_free(w);
		return TW_ENOMEM;
	}
	*out = w;
	return 0;
}

void tw_k8s_watch_free(struct tw_k8s_watch *w)
{
	if (w == NULL)
		return;
	tw_k8s_watch_lines_free(&w->lines);
	free(w->kind);
	free(w->path);
	free(w->ns);
	free(w->lsel);
	free(w->fsel);
	free(w);
}

const struct tw_k8s_watch_stats *tw_k8s_watch_stats(const struct tw_k8s_watch *w)
{
	return &w->st;
}

const char *tw_k8s_watch_kind(const struct tw_k8s_watch *w)
{
	return w->kind;
}

const char *tw_k8s_watch_rv(const struct tw_k8s_watch *w)
{
	return w->rv;
}

static int mine(const struct tw_k8s_watch *w, const struct tw_k8s_obj *o)
{
	return w->ns == NULL || strcmp(o->ns, w->ns) == 0;
}

static void count_objects(struct tw_k8s_watch *w)
{
	size_t n = 0, total = tw_k8s_store_count(w->o.store);
	if (w->ns == NULL) {
		n = total;
	} else {
		for (size_t i = 0; i < total; i++)
			n += mine(w, tw_k8s_store_at(w->o.store, i));
	}
	atomic_store(&w->st.objects, n);
}

/* a and b equal but for status and metadata.resourceVersion */
static int same_but_status(json_t *a, json_t *b)
{
	const char *k;
	json_t *v;
	if (json_object_size(a) != json_object_size(b) + (json_object_get(a, "status") != NULL) -
	                               (json_object_get(b, "status") != NULL))
		return 0;
	json_object_foreach(a, k, v)
	{
		if (strcmp(k, "status") == 0)
			continue;
		json_t *u = json_object_get(b, k);
		if (u == NULL)
			return 0;
		if (strcmp(k, "metadata") != 0) {
			if (!json_equal(v, u))
				return 0;
			continue;
		}
		if (!json_is_object(v) || !json_is_object(u))
			return 0;
		if (json_object_size(v) - (json_object_get(v, "resourceVersion") != NULL) !=
		    json_object_size(u) - (json_object_get(u, "resourceVersion") != NULL))
			return 0;
		const char *mk;
		json_t *mv;
		json_object_foreach(v, mk, mv)
		{
			if (strcmp(mk, "resourceVersion") != 0 && !json_equal(mv, json_object_get(u, mk)))
				return 0;
		}
	}
	return 1;
}

static void lock(struct tw_k8s_watch *w)
{
	if (w->o.lock)
		pthread_mutex_lock(w->o.lock);
}

static void unlock(struct tw_k8s_watch *w)
{
	if (w->o.lock)
		pthread_mutex_unlock(w->o.lock);
}

int tw_k8s_watch_replace(struct tw_k8s_watch *w, const struct tw_k8s_store *fresh, size_t *changed)
{
	size_t n = 0;
	int rc = 0;
	lock(w);
	struct tw_k8s_store *s = w->o.store;
	/* deletions first: everything of ours that the list does not have */
	for (size_t i = tw_k8s_store_count(s); i-- > 0;) {
		const struct tw_k8s_obj *o = tw_k8s_store_at(s, i);
		if (mine(w, o) && tw_k8s_store_get(fresh, o->ns, o->name) == NULL) {
			tw_debug("[k8s %s] %s/%s gone while not watching", w->kind, o->ns, o->name);
			tw_k8s_store_del(s, o->ns, o->name);
			n++;
		}
	}
	for (size_t i = 0; i < tw_k8s_store_count(fresh) && rc == 0; i++) {
		const struct tw_k8s_obj *f = tw_k8s_store_at(fresh, i);
		if (!mine(w, f))
			continue;
		const struct tw_k8s_obj *o = tw_k8s_store_get(s, f->ns, f->name);
		if (o && strcmp(o->rv, f->rv) == 0)
			continue;
		rc = tw_k8s_store_put(s, f->obj);
		n += rc == 0;
	}
	count_objects(w);
	unlock(w);
	atomic_fetch_add(&w->st.events, n);
	*changed = n;
	if (n > 0 && w->o.on_change)
		w->o.on_change(w->o.arg);
	return rc;
}

int tw_k8s_watch_apply(struct tw_k8s_watch *w, const struct tw_k8s_event *ev, struct tw_err *err)
{
	json_t *md = json_object_get(ev->object, "metadata");
	const char *rv = json_string_value(json_object_get(md, "resourceVersion"));
	int rc = 0, changed = 0;
	if (ev->type == TW_K8S_EV_ERROR)
		return tw_err_set(err, ev->code == 410 ? TW_ENOENT : TW_EPROTO,
		                  "watch ERROR %ld: %s", ev->code,
		                  tw_k8s_status_message(ev->object));
	if (ev->type != TW_K8S_EV_BOOKMARK) {
		const char *name = json_string_value(json_object_get(md, "name"));
		const char *ns = json_string_value(json_object_get(md, "namespace"));
		if (ns == NULL)
			ns = "";
		if (w->ns && strcmp(ns, w->ns) != 0)
			return tw_err_set(err, TW_EPROTO,
			                  "watch event for %s/%s outside namespace %s", ns,
			                  name ? name : "", w->ns);
		lock(w);
		if (ev->type == TW_K8S_EV_DELETED) {
			changed = tw_k8s_store_del(w->o.store, ns, name) == 0;
			if (changed)
				atomic_fetch_sub(&w->st.objects, 1);
		} else {
			if (w->o.trim != NULL)
				w->o.trim(ev->object);
			const struct tw_k8s_obj *prev = tw_k8s_store_get(w->o.store, ns, name);
			int existed = prev != NULL;
			int quiet = existed && w->o.status_quiet && same_but_status(prev->obj, ev->object);
			rc = tw_k8s_store_put(w->o.store, ev->object);
			changed = rc == 0 && !quiet;
			if (changed && !existed)
				atomic_fetch_add(&w->st.objects, 1);
		}
		unlock(w);
		if (rc < 0)
			return tw_err_set(err, rc, "store %s/%s: %s", ns, name ? name : "",
			                  tw_strerror(rc));
	}
	if (rv && strlen(rv) < sizeof w->rv)
		snprintf(w->rv, sizeof w->rv, "%s", rv);
	atomic_store(&w->st.last_sync_ms, real_ms());
	if (changed) {
		atomic_fetch_add(&w->st.events, 1);
		if (w->o.on_change)
			w->o.on_change(w->o.arg);
	}
	return 0;
}

static int base_query(struct tw_k8s_watch *w, char *q, size_t cap)
{
	if ((size_t)snprintf(q, cap, "%s", w->path) >= cap)
		return TW_ELIMIT;
	int rc = 0;
	if (w->lsel)
		rc = tw_k8s_client_query(q, cap, "labelSelector", w->lsel);
	if (rc == 0 && w->fsel)
		rc = tw_k8s_client_query(q, cap, "fieldSelector", w->fsel);
	return rc;
}

/* An HTTP failure: code for the state machine, message in err. 410 is
 * TW_ENOENT (relist), 401 TW_EPERM (re-read the token). */
static int http_fail(struct tw_k8s_watch *w, const char *what, const struct tw_k8s_resp *r,
                     struct tw_err *err)
{
	w->retry_after_s = r->retry_after_s;
	int code = r->status == 410 ? TW_ENOENT : r->status == 401 ? TW_EPERM : r->status == 404 ? TW_EUNSUPP : TW_EIO;
	const char *m = tw_k8s_status_message(r->body);
	return tw_err_set(err, code, "%s %s: HTTP %ld%s%s", what, w->path, r->status,
	                  m[0] ? ": " : "", m);
}

int tw_k8s_watch_list(struct tw_k8s_watch *w, size_t *changed, struct tw_err *err)
{
	struct tw_k8s_store *fresh = tw_k8s_store_new();
	char cont[4096] = "", q[8192], lim[16];
	char rv[sizeof w->rv] = "";
	int rc = 0;
	if (fresh == NULL)
		return TW_ENOMEM;
	snprintf(lim, sizeof lim, "%u", w->o.page_limit);
	for (;;) {
		struct tw_k8s_resp r;
		if ((rc = base_query(w, q, sizeof q)) < 0 ||
		    (rc = tw_k8s_client_query(q, sizeof q, "limit", lim)) < 0 ||
		    (cont[0] && (rc = tw_k8s_client_query(q, sizeof q, "continue", cont)) < 0)) {
			rc = tw_err_set(err, rc, "list %s: query too long", w->path);
			break;
		}
		rc = tw_k8s_client_request(w->c, "GET", q, NULL, &r, err);
		if (rc == 0 && r.status != 200)
			rc = http_fail(w, "list", &r, err);
		json_t *items = json_object_get(r.body, "items");
		json_t *md = json_object_get(r.body, "metadata");
		if (rc == 0 && !json_is_array(items))
			rc = tw_err_set(err, TW_EPROTO, "list %s: no items", w->path);
		size_t i;
		json_t *it;
		json_array_foreach(rc == 0 ? items : NULL, i, it)
		{
			if (w->o.trim != NULL)
				w->o.trim(it);
			if (tw_k8s_store_put(fresh, it) < 0) {
				rc = tw_err_set(err, TW_EPROTO,
				                "list %s: item %zu has no metadata.name", w->path,
				                i);
				break;
			}
		}
		const char *lrv = json_string_value(json_object_get(md, "resourceVersion"));
		const char *c = json_string_value(json_object_get(md, "continue"));
		if (rc == 0 && (lrv == NULL || strlen(lrv) >= sizeof rv))
			rc = tw_err_set(err, TW_EPROTO, "list %s: no metadata.resourceVersion",
			                w->path);
		if (rc == 0) {
			snprintf(rv, sizeof rv, "%s", lrv);
			if (c && c[0] && strlen(c) < sizeof cont)
				snprintf(cont, sizeof cont, "%s", c);
			else
				cont[0] = '\0';
		}
		tw_k8s_resp_clear(&r);
		if (rc < 0 || cont[0] == '\0')
			break;
		if (w->stop && atomic_load(w->stop)) {
			rc = tw_err_set(err, TW_ECANCELED, "stopping");
			break;
		}
	}
	if (rc == 0) {
		rc = tw_k8s_watch_replace(w, fresh, changed);
		if (rc == 0) {
			memcpy(w->rv, rv, sizeof rv);
			atomic_store(&w->st.last_sync_ms, real_ms());
		} else {
			tw_err_set(err, rc, "list %s: %s", w->path, tw_strerror(rc));
		}
	}
	tw_k8s_store_free(fresh);
	return rc;
}

struct stream_ctx {
	struct tw_k8s_watch *w;
	struct tw_err *err;
};

static int on_stream(void *arg, const char *p, size_t n)
{
	struct stream_ctx *sc = arg;
	struct tw_k8s_watch *w = sc->w;
	while (n > 0) {
		struct tw_k8s_event ev;
		size_t used;
		int rc = tw_k8s_watch_lines_next(&w->lines, p, n, &used, &ev, sc->err);
		p += used;
		n -= used;
		if (rc == TW_EAGAIN)
			break;
		if (rc == 0) {
			rc = tw_k8s_watch_apply(w, &ev, sc->err);
			if (rc == TW_ENOENT)
				w->gone = 1;
			tw_k8s_event_clear(&ev);
			w->stream_events++;
		}
		if (rc < 0)
			return w->stream_rc = rc;
	}
	return 0;
}

/* One watch request; returns when the stream ends. 0 = normal end. */
static int watch_once(struct tw_k8s_watch *w, struct tw_err *err)
{
	char q[8192], to[16];
	unsigned t = w->o.timeout_s + (unsigned)(rand() % (int)(w->o.timeout_s / 10 + 1));
	snprintf(to, sizeof to, "%u", t);
	int rc = base_query(w, q, sizeof q);
	if (rc == 0)
		rc = tw_k8s_client_query(q, sizeof q, "watch", "1");
	if (rc == 0)
		rc = tw_k8s_client_query(q, sizeof q, "resourceVersion", w->rv);
	if (rc == 0)
		rc = tw_k8s_client_query(q, sizeof q, "allowWatchBookmarks", "true");
	if (rc == 0)
		rc = tw_k8s_client_query(q, sizeof q, "timeoutSeconds", to);
	if (rc < 0)
		return tw_err_set(err, rc, "watch %s: query too long", w->path);
	struct stream_ctx sc = {w, err};
	struct tw_k8s_resp r;
	w->stream_rc = 0;
	w->gone = 0;
	w->stream_events = 0;
	tw_dbuf_reset(&w->lines.line);
	tw_k8s_client_set_timeout(w->c, (t + 30) * 1000u);
	rc = tw_k8s_client_stream(w->c, q, on_stream, &sc, &r, err);
	tw_k8s_client_set_timeout(w->c, 30000);
	if (rc == 0 && r.status != 200)
		rc = http_fail(w, "watch", &r, err);
	if (rc < 0 && w->gone)
		rc = tw_err_set(err, TW_ENOENT,
		                "watch %s from %s: 410 Gone (resourceVersion too old)", w->path,
		                w->rv);
	tw_k8s_resp_clear(&r);
	return rc;
}

static void backoff_sleep(struct tw_k8s_watch *w)
{
	uint64_t ms = w->o.backoff_min_ms;
	for (unsigned i = 1; i < w->failures && ms < w->o.backoff_max_ms; i++)
		ms *= 2;
	if (ms > w->o.backoff_max_ms)
		ms = w->o.backoff_max_ms;
	if (w->retry_after_s * 1000u > ms)
		ms = w->retry_after_s * 1000u < 300000u ? w->retry_after_s * 1000u : 300000u;
	w->retry_after_s = 0;
	for (uint64_t slept = 0; slept < ms && !(w->stop && atomic_load(w->stop)); slept += 50) {
		struct timespec ts = {0, 50 * 1000000L};
		nanosleep(&ts, NULL);
	}
}

/* After a failure: what next. */
static void failed(struct tw_k8s_watch *w, int rc, struct tw_err *err)
{
	if (rc == TW_ECANCELED)
		return;
	atomic_fetch_add(&w->st.errors, 1);
	if (rc == TW_ENOENT) { /* 410: our resourceVersion is too old */
		tw_info("[k8s %s] %s: relisting", w->kind, err->msg);
		set_state(w, TW_K8S_W_LIST, "410 Gone");
		return;
	}
	/* a 401 (TW_EPERM) has already been answered by the client: the token
	 * file was re-read and, when it had changed, the call retried once */
	w->failures++;
	tw_warn("[k8s %s] %s", w->kind, err->msg);
	enum tw_k8s_watch_state back = w->state;
	set_state(w, TW_K8S_W_BACKOFF, tw_strerror(rc));
	backoff_sleep(w);
	/* a transport failure re-watches from where it was; a bad stream relists */
	int rewatch = back == TW_K8S_W_WATCH && w->rv[0] && (rc == TW_EIO || rc == TW_ETIMEDOUT);
	set_state(w, rewatch ? TW_K8S_W_WATCH : TW_K8S_W_LIST, "retry");
}

void tw_k8s_watch_run(struct tw_k8s_watch *w)
{
	int first = 1;
	w->state = TW_K8S_W_LIST;
	while (!(w->stop && atomic_load(w->stop))) {
		struct tw_err err = {0};
		size_t changed = 0;
		int rc;
		if (w->state == TW_K8S_W_LIST) {
			rc = tw_k8s_watch_list(w, &changed, &err);
			if (rc == TW_EUNSUPP && w->o.missing_ok) {
				/* the kind is not served (CRD not installed): empty and
				 * synced, so that the rest is served; look again later */
				struct tw_k8s_store *none = tw_k8s_store_new();
				if (none != NULL && tw_k8s_watch_replace(w, none, &changed) == 0) {
					if (first || changed)
						tw_warn("[k8s %s] %s: the API server does not serve this kind (CRD "
							"not installed?); empty until it does, listing again every %u s",
							w->kind, err.msg, w->o.backoff_max_ms / 1000);
					first = 0;
					atomic_store(&w->st.synced, 1);
					if (w->o.on_change)
						w->o.on_change(w->o.arg);
				}
				tw_k8s_store_free(none);
				set_state(w, TW_K8S_W_BACKOFF, "kind not served");
				w->failures = 1u << 20; /* the longest backoff */
				backoff_sleep(w);
				set_state(w, TW_K8S_W_LIST, "retry");
				continue;
			}
			if (rc < 0) {
				failed(w, rc, &err);
				continue;
			}
			if (!first)
				atomic_fetch_add(&w->st.relists, 1);
			if (first)
				tw_info("[k8s %s] listed %llu objects at resourceVersion %s",
				        w->kind, (unsigned long long)atomic_load(&w->st.objects),
				        w->rv);
			first = 0;
			w->failures = 0;
			atomic_store(&w->st.synced, 1);
			if (w->o.on_change)
				w->o.on_change(
				    w->o.arg); /* "synced" is news even without changes */
			set_state(w, TW_K8S_W_WATCH, "listed");
		} else if (w->state == TW_K8S_W_WATCH) {
			rc = watch_once(w, &err);
			if (rc == 0) {
				tw_debug("[k8s %s] watch ended after %zu events; again from %s",
				         w->kind, w->stream_events, w->rv);
				w->failures = 0;
				continue;
			}
			if (w->stream_events > 0)
				w->failures = 0;
			failed(w, rc, &err);
		} else {
			set_state(w, TW_K8S_W_LIST, "start");
		}
	}
	set_state(w, TW_K8S_W_STOPPED, "stop");
}
