/* watch.h — the watch stream parser and the informer (list + watch).
 *
 * The parser (tw_k8s_watch_lines_*) assembles newline-terminated lines from
 * arbitrary byte slices (the curl write callback) and turns each into one
 * event {"type": ADDED|MODIFIED|DELETED|BOOKMARK|ERROR, "object": {...}}.
 * It is untrusted input: a line longer than the cap is an error, every
 * field is checked (fuzz/k8s_watch.c).
 *
 * The informer (tw_k8s_watch_*) keeps one tw_k8s_store in step with the API
 * server: a paged list replaces the store's contents (diffing, so objects
 * deleted while nobody watched go away), then a watch from the list's
 * resourceVersion with bookmarks; a normal end re-watches from the last
 * resourceVersion seen; 410 Gone relists; other failures back off 1 s
 * doubling to 30 s (or the server's Retry-After); 401 re-reads the token.
 * States and transitions: docs/internals/k8s.md. */
#ifndef TW_K8S_WATCH_H
#define TW_K8S_WATCH_H

#include "core/dbuf.h"
#include "core/err.h"
#include "k8s/client.h"
#include "k8s/k8s.h"

#include <jansson.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#define TW_K8S_WATCH_LINE_MAX (16u << 20) /* default cap of one event line */

/* ---- the event parser ---- */

enum tw_k8s_ev_type {
	TW_K8S_EV_ADDED = 0,
	TW_K8S_EV_MODIFIED,
	TW_K8S_EV_DELETED,
	TW_K8S_EV_BOOKMARK,
	TW_K8S_EV_ERROR
};

struct tw_k8s_event {
	enum tw_k8s_ev_type type;
	json_t *object; /* owned: tw_k8s_event_clear */
	long code;      /* ERROR: the Status code (410 = expired), else 0 */
};
void tw_k8s_event_clear(struct tw_k8s_event *ev);
const char *tw_k8s_ev_type_name(enum tw_k8s_ev_type t);

struct tw_k8s_watch_lines {
	struct tw_dbuf line; /* the partial line carried between slices */
};
/* cap 0 = TW_K8S_WATCH_LINE_MAX. */
void tw_k8s_watch_lines_init(struct tw_k8s_watch_lines *p, size_t cap);
void tw_k8s_watch_lines_free(struct tw_k8s_watch_lines *p);
/* Take bytes from (data, len). Returns 0 with *ev filled when a line
 * completed, TW_EAGAIN when all of the slice was taken and no event is
 * complete yet, or an error: TW_ELIMIT (line over the cap), TW_EPROTO (not
 * JSON, not an event). *consumed says how much of the slice was used in
 * every case; call again with the rest. Blank lines are skipped. After an
 * error the parser is reset (the stream should be dropped). */
int tw_k8s_watch_lines_next(struct tw_k8s_watch_lines *p, const char *data, size_t len,
                            size_t *consumed, struct tw_k8s_event *ev, struct tw_err *err);
/* Check and decode one complete line (no newline). Used by _next. */
int tw_k8s_watch_event_parse(const char *line, size_t len, struct tw_k8s_event *ev,
                             struct tw_err *err);

/* ---- the informer ---- */

enum tw_k8s_watch_state {
	TW_K8S_W_LIST = 0, /* (re)list, then diff into the store */
	TW_K8S_W_WATCH,    /* streaming from rv */
	TW_K8S_W_BACKOFF,  /* waiting after a failure */
	TW_K8S_W_STOPPED
};
const char *tw_k8s_watch_state_name(enum tw_k8s_watch_state s);

/* Counters, readable from any thread. */
struct tw_k8s_watch_stats {
	_Atomic uint64_t events;       /* changes applied to the store (incl. by relist diffs) */
	_Atomic uint64_t relists;      /* full lists after the first */
	_Atomic uint64_t errors;       /* failed lists/watches */
	_Atomic uint64_t last_sync_ms; /* CLOCK_REALTIME ms of the last list or event, 0 = never */
	_Atomic uint64_t objects;      /* objects of this informer in the store */
	atomic_int synced;             /* 1 after the first full list */
};

struct tw_k8s_watch_opts {
	const char *kind;           /* for logs and metrics: "ingresses" */
	const char *path;           /* collection path: "/apis/networking.k8s.io/v1/ingresses" */
	const char *ns;             /* the namespace this path is limited to; NULL = all */
	const char *label_selector; /* NULL = none */
	const char *field_selector; /* NULL = none */
	struct tw_k8s_store *store; /* shared; changed only with *lock held */
	pthread_mutex_t *lock;
	void (*on_change)(void *arg); /* after a change (lock released) */
	/* Drops what nobody reads from an object before it is cached (in
	 * place; informer thread, no lock): the caches hold tens of thousands
	 * of objects. NULL = keep all. */
	void (*trim)(json_t *obj);
	void *arg;
	unsigned page_limit; /* list page size, default 500 */
	unsigned timeout_s;  /* watch timeoutSeconds, default 300 (+ up to 10% jitter) */
	size_t line_max;     /* 0 = TW_K8S_WATCH_LINE_MAX */
	unsigned backoff_min_ms, backoff_max_ms; /* default 1000, 30000 */
	/* A collection the server may not have (a CRD that is not installed):
	 * a 404 on list counts as an empty, synced list (so the first apply does
	 * not wait for it) and the list is tried again every backoff_max_ms. */
	int missing_ok;
	/* A change of only status and resourceVersion (our own status writes
	 * coming back) updates the store without on_change: the translation
	 * does not read it (Gateway API kinds, whose status is kept). */
	int status_quiet;
};

struct tw_k8s_watch;

int tw_k8s_watch_new(const struct tw_k8s_watch_opts *o, struct tw_k8s_client *c,
                     const atomic_int *stop, struct tw_k8s_watch **out);
void tw_k8s_watch_free(struct tw_k8s_watch *w); /* NULL ok; the client stays the caller's */
/* Run until *stop is set (blocking; on the informer's own thread). */
void tw_k8s_watch_run(struct tw_k8s_watch *w);
const struct tw_k8s_watch_stats *tw_k8s_watch_stats(const struct tw_k8s_watch *w);
const char *tw_k8s_watch_kind(const struct tw_k8s_watch *w);

/* One paged list + diff into the store (what the LIST state does); exposed
 * for tests. *changed counts the puts and deletes. */
int tw_k8s_watch_list(struct tw_k8s_watch *w, size_t *changed, struct tw_err *err);
/* Make the store's objects (of this informer's namespace) those of fresh:
 * objects missing from fresh are deleted, new or changed (resourceVersion)
 * ones put. fresh stays the caller's. */
int tw_k8s_watch_replace(struct tw_k8s_watch *w, const struct tw_k8s_store *fresh, size_t *changed);
/* Apply one event to the store (what the WATCH state does per event). */
int tw_k8s_watch_apply(struct tw_k8s_watch *w, const struct tw_k8s_event *ev, struct tw_err *err);
/* The resourceVersion to watch from ("" before the first list). */
const char *tw_k8s_watch_rv(const struct tw_k8s_watch *w);

#endif
