#include "edge/metrics.h"

#include "core/err.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Bucket upper bounds in microseconds. */
static const uint64_t bucket_us[TW_HIST_NBUCKETS] = {
	1000, 2500, 5000, 10000, 25000, 50000, 100000, 250000, 500000, 1000000, 2500000, 10000000};

struct slot_desc {
	const char *family; /* interned: one copy per family */
	const char *help;   /* interned with the family */
	char *labels;       /* owned by the head slot; continuation slots share it */
	enum tw_metric_kind kind;
};

static struct slot_desc slots[TW_METRICS_MAX];
static _Atomic uint32_t nslots; /* published after the desc is written */
static pthread_mutex_t reg_lock = PTHREAD_MUTEX_INITIALIZER;
#define MAX_SHARDS 300
static struct tw_metrics_shard *shards[MAX_SHARDS];
static _Atomic size_t nshards;
static void (*extra_fn)(struct tw_dbuf *, void *);
static void *extra_arg;

/* (family, labels) -> head slot: open addressing, 2x the slots, so that a
 * generation with tens of thousands of series (Kubernetes backends) registers
 * in O(1) each. Entries hold slot + 1 (0 = empty). Under reg_lock. */
#define INDEX_CAP (2u * TW_METRICS_MAX)
static uint32_t slot_index[INDEX_CAP];

/* Families (name + help), interned: a handful of strings shared by every slot. */
struct family {
	char *name, *help;
	struct family *next;
};
static struct family *families;

static uint32_t hash_key(const char *family, const char *labels)
{
	uint32_t h = 2166136261u; /* FNV-1a */
	for (const unsigned char *p = (const unsigned char *)family; *p; p++)
		h = (h ^ *p) * 16777619u;
	h = (h ^ 0xffu) * 16777619u;
	for (const unsigned char *p = (const unsigned char *)labels; *p; p++)
		h = (h ^ *p) * 16777619u;
	return h;
}

static const struct family *intern_family(const char *name, const char *help)
{
	for (struct family *f = families; f != NULL; f = f->next)
		if (strcmp(f->name, name) == 0)
			return f;
	struct family *f = calloc(1, sizeof *f);
	if (f == NULL)
		return NULL;
	f->name = strdup(name);
	f->help = strdup(help);
	if (f->name == NULL || f->help == NULL) {
		free(f->name);
		free(f->help);
		free(f);
		return NULL;
	}
	f->next = families;
	families = f;
	return f;
}

void tw_metrics_escape(const char *in, char *out, size_t outlen)
{
	size_t o = 0;
	for (; *in && o + 3 < outlen; in++) {
		if (*in == '\\' || *in == '"') {
			out[o++] = '\\';
			out[o++] = *in;
		} else if (*in == '\n') {
			out[o++] = '\\';
			out[o++] = 'n';
		} else {
			out[o++] = *in;
		}
	}
	out[o] = '\0';
}

int tw_metrics_register(const char *family, const char *help, enum tw_metric_kind kind,
			const char *labels, uint32_t *slot)
{
	pthread_mutex_lock(&reg_lock);
	uint32_t n = atomic_load(&nslots);
	uint32_t pos = hash_key(family, labels) % INDEX_CAP;
	for (; slot_index[pos] != 0; pos = (pos + 1) % INDEX_CAP) {
		uint32_t i = slot_index[pos] - 1;
		if (strcmp(slots[i].family, family) == 0 && strcmp(slots[i].labels, labels) == 0) {
			pthread_mutex_unlock(&reg_lock);
			*slot = i;
			return 0;
		}
	}
	uint32_t need = kind == TW_METRIC_HISTOGRAM ? TW_HIST_SLOTS : 1;
	if (n + need > TW_METRICS_MAX) {
		pthread_mutex_unlock(&reg_lock);
		return TW_ELIMIT;
	}
	const struct family *f = intern_family(family, help);
	char *lb = strdup(labels);
	if (f == NULL || lb == NULL) {
		free(lb);
		pthread_mutex_unlock(&reg_lock);
		return TW_ENOMEM;
	}
	for (uint32_t k = 0; k < need; k++) {
		slots[n + k].family = f->name;
		slots[n + k].help = f->help;
		slots[n + k].labels = lb;
		slots[n + k].kind = k == 0 ? kind : TW_METRIC_HISTOGRAM + 1; /* continuation */
	}
	slot_index[pos] = n + 1;
	atomic_store(&nslots, n + need);
	pthread_mutex_unlock(&reg_lock);
	*slot = n;
	return 0;
}

int tw_metrics_add_shard(struct tw_metrics_shard **out)
{
	struct tw_metrics_shard *s = calloc(1, sizeof *s);
	if (s == NULL)
		return TW_ENOMEM;
	pthread_mutex_lock(&reg_lock);
	size_t n = atomic_load(&nshards);
	if (n == MAX_SHARDS) {
		pthread_mutex_unlock(&reg_lock);
		free(s);
		return TW_ELIMIT;
	}
	shards[n] = s;
	atomic_store(&nshards, n + 1);
	pthread_mutex_unlock(&reg_lock);
	*out = s;
	return 0;
}

void tw_metric_observe(struct tw_metrics_shard *s, uint32_t hist_slot, uint64_t usec)
{
	uint32_t b = 0;
	while (b < TW_HIST_NBUCKETS && usec > bucket_us[b])
		b++;
	if (b < TW_HIST_NBUCKETS)
		tw_metric_add(s, hist_slot + b, 1);
	tw_metric_add(s, hist_slot + TW_HIST_NBUCKETS, usec);
	tw_metric_add(s, hist_slot + TW_HIST_NBUCKETS + 1, 1);
}

static uint64_t sum_slot(uint32_t i)
{
	uint64_t v = 0;
	size_t n = atomic_load(&nshards);
	for (size_t k = 0; k < n; k++)
		v += atomic_load_explicit(&shards[k]->v[i], memory_order_relaxed);
	return v;
}

void tw_metrics_set_extra(void (*fn)(struct tw_dbuf *out, void *arg), void *arg)
{
	extra_fn = fn;
	extra_arg = arg;
}

static const char *type_name(enum tw_metric_kind k)
{
	return k == TW_METRIC_COUNTER ? "counter" : k == TW_METRIC_GAUGE ? "gauge" : "histogram";
}

int tw_metrics_render(struct tw_dbuf *out)
{
	uint32_t n = atomic_load(&nslots);
	char *done = calloc(n ? n : 1, 1);
	if (done == NULL)
		return TW_ENOMEM;
	int rc = 0;
	for (uint32_t i = 0; i < n && rc == 0; i++) {
		if (done[i] || slots[i].kind > TW_METRIC_HISTOGRAM)
			continue;
		const char *fam = slots[i].family;
		rc |= tw_dbuf_appendf(out, "# HELP %s %s\n# TYPE %s %s\n", fam, slots[i].help, fam,
				      type_name(slots[i].kind));
		for (uint32_t j = i; j < n && rc == 0; j++) {
			if (done[j] || slots[j].kind > TW_METRIC_HISTOGRAM || strcmp(slots[j].family, fam) != 0)
				continue;
			done[j] = 1;
			const char *lb = slots[j].labels;
			const char *sep = lb[0] ? "," : "";
			if (slots[j].kind == TW_METRIC_HISTOGRAM) {
				uint64_t cum = 0;
				for (int b = 0; b < TW_HIST_NBUCKETS; b++) {
					cum += sum_slot(j + (uint32_t)b);
					rc |= tw_dbuf_appendf(out, "%s_bucket{%s%sle=\"%g\"} %llu\n", fam, lb, sep,
							      (double)bucket_us[b] / 1e6, (unsigned long long)cum);
				}
				uint64_t count = sum_slot(j + TW_HIST_NBUCKETS + 1);
				rc |= tw_dbuf_appendf(out, "%s_bucket{%s%sle=\"+Inf\"} %llu\n", fam, lb, sep,
						      (unsigned long long)count);
				rc |= tw_dbuf_appendf(out, "%s_sum{%s} %.6f\n", fam, lb,
						      (double)sum_slot(j + TW_HIST_NBUCKETS) / 1e6);
				rc |= tw_dbuf_appendf(out, "%s_count{%s} %llu\n", fam, lb, (unsigned long long)count);
			} else if (slots[j].kind == TW_METRIC_GAUGE) {
				rc |= tw_dbuf_appendf(out, "%s%s%s%s %lld\n", fam, lb[0] ? "{" : "", lb, lb[0] ? "}" : "",
						      (long long)(int64_t)sum_slot(j));
			} else {
				rc |= tw_dbuf_appendf(out, "%s%s%s%s %llu\n", fam, lb[0] ? "{" : "", lb, lb[0] ? "}" : "",
						      (unsigned long long)sum_slot(j));
			}
		}
	}
	free(done);
	if (rc == 0 && extra_fn)
		extra_fn(out, extra_arg);
	return rc ? TW_ELIMIT : 0;
}

void tw_metrics_reset_for_tests(void)
{
	pthread_mutex_lock(&reg_lock);
	uint32_t n = atomic_load(&nslots);
	for (uint32_t i = 0; i < n; i++)
		if (slots[i].kind <= TW_METRIC_HISTOGRAM)
			free(slots[i].labels);
	memset(slot_index, 0, sizeof slot_index);
	while (families != NULL) {
		struct family *f = families;
		families = f->next;
		free(f->name);
		free(f->help);
		free(f);
	}
	atomic_store(&nslots, 0);
	size_t k = atomic_load(&nshards);
	for (size_t i = 0; i < k; i++)
		free(shards[i]);
	atomic_store(&nshards, 0);
	pthread_mutex_unlock(&reg_lock);
}
