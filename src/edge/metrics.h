/* metrics.h — Prometheus metrics without locks on the request path.
 *
 * A process-wide registry maps (family, labels) to a slot number. Slots are
 * registered only by the main thread, when a config generation is built, so
 * label cardinality is bounded by the config (never by request data); slots
 * are never reused, so counters survive reloads. Each thread that counts owns
 * a shard (one uint64 per slot) and is its only writer (relaxed atomics, no
 * lock prefix); /metrics sums the shards. Histograms take TW_HIST_SLOTS
 * consecutive slots: one per bucket (non-cumulative), then sum (microseconds)
 * and count. */
#ifndef TW_EDGE_METRICS_H
#define TW_EDGE_METRICS_H

#include "core/dbuf.h"

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

/* Series (slots) in all. A shard is TW_METRICS_MAX * 8 bytes of zeroed
 * memory, touched only where a slot counts: 8 MiB of address space, a few
 * pages resident. Sized for a Kubernetes cluster's backends (a histogram
 * each: 14 slots). */
#define TW_METRICS_MAX (1u << 20)
#define TW_HIST_NBUCKETS 12
#define TW_HIST_SLOTS (TW_HIST_NBUCKETS + 2)

enum tw_metric_kind { TW_METRIC_COUNTER = 0, TW_METRIC_GAUGE, TW_METRIC_HISTOGRAM };

struct tw_metrics_shard {
	_Atomic uint64_t v[TW_METRICS_MAX];
};

/* Register (or find) a slot. labels: Prometheus label text without braces,
 * e.g. `backend="web",code="2xx"` (values must already be escaped with
 * tw_metrics_escape). Returns 0 and *slot, or TW_ELIMIT when full. */
int tw_metrics_register(const char *family, const char *help, enum tw_metric_kind kind,
			const char *labels, uint32_t *slot);
/* Escape a label value (\\, \", \n) into out (capped). */
void tw_metrics_escape(const char *in, char *out, size_t outlen);

/* Shards: one per counting thread; tw_metrics_add_shard at thread setup. */
int tw_metrics_add_shard(struct tw_metrics_shard **out);

static inline void tw_metric_add(struct tw_metrics_shard *s, uint32_t slot, uint64_t d)
{
	uint64_t v = atomic_load_explicit(&s->v[slot], memory_order_relaxed);
	atomic_store_explicit(&s->v[slot], v + d, memory_order_relaxed);
}
static inline void tw_metric_sub(struct tw_metrics_shard *s, uint32_t slot, uint64_t d)
{
	uint64_t v = atomic_load_explicit(&s->v[slot], memory_order_relaxed);
	atomic_store_explicit(&s->v[slot], v - d, memory_order_relaxed);
}
void tw_metric_observe(struct tw_metrics_shard *s, uint32_t hist_slot, uint64_t usec);

/* Append the text exposition of every registered family to out. */
int tw_metrics_render(struct tw_dbuf *out);

/* Extra lines appended by a callback (for state that is not a counter). */
void tw_metrics_set_extra(void (*fn)(struct tw_dbuf *out, void *arg), void *arg);

void tw_metrics_reset_for_tests(void);

#endif
