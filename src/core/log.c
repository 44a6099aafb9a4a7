#include "core/log.h"

#include "core/err.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <string.h>
#include <time.h>

int tw_log_level = TW_LOG_INFO;
unsigned tw_log_burst = 10;
static FILE *log_stream;

static const char *const level_names[] = {"error", "warn", "info", "debug"};

void tw_log_set_stream(FILE *f) { log_stream = f; }

const char *tw_log_level_name(int level)
{
	if (level < 0 || level > TW_LOG_DEBUG)
		return "?";
	return level_names[level];
}

int tw_log_parse_level(const char *s, int *level)
{
	for (int i = 0; i <= TW_LOG_DEBUG; i++) {
		if (strcmp(s, level_names[i]) == 0) {
			*level = i;
			return 0;
		}
	}
	return TW_EINVAL;
}

void tw_log_write(int level, const char *fmt, ...)
{
	char line[2048];
	struct timespec ts;
	struct tm tm;
	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	size_t n = strftime(line, sizeof line, "%Y-%m-%dT%H:%M:%S", &tm);
	int k = snprintf(line + n, sizeof line - n, ".%03ldZ %s ", ts.tv_nsec / 1000000L,
			 tw_log_level_name(level));
	if (k > 0)
		n += (size_t)k;
	va_list ap;
	va_start(ap, fmt);
	int m = vsnprintf(line + n, sizeof line - n - 1, fmt, ap);
	va_end(ap);
	if (m < 0)
		m = 0;
	n += (size_t)m;
	if (n > sizeof line - 2)
		n = sizeof line - 2;
	line[n++] = '\n';
	/* One fwrite per line: stdio locks the stream, so lines never interleave. */
	fwrite(line, 1, n, log_stream ? log_stream : stderr);
	fflush(log_stream ? log_stream : stderr);
}

/* ---- rate-limited lines ---- */

static _Atomic unsigned long long suppressed_total;
static struct tw_log_limit *_Atomic limits; /* limiters that ever suppressed a line */

static unsigned long long coarse_sec(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
	return (unsigned long long)ts.tv_sec;
}

/* The second lim counts has ended (now > its second): the thread that moves
 * it on writes the summary of what was dropped. */
static void roll(struct tw_log_limit *lim, unsigned long long seen, unsigned long long now)
{
	if (!atomic_compare_exchange_strong(&lim->sec, &seen, now))
		return; /* another thread rolled it */
	unsigned d = atomic_exchange(&lim->dropped, 0);
	atomic_store(&lim->n, 0);
	if (d > 0)
		tw_log_write(atomic_load(&lim->level), "... and %u more like this in the last second (%s)", d,
			     lim->kind ? lim->kind : "?");
}

int tw_log_allow(struct tw_log_limit *lim, int level)
{
	unsigned long long now = coarse_sec();
	unsigned long long sec = atomic_load_explicit(&lim->sec, memory_order_relaxed);
	if (sec != now)
		roll(lim, sec, now);
	unsigned burst = tw_log_burst;
	if (burst == 0 || atomic_fetch_add_explicit(&lim->n, 1, memory_order_relaxed) < burst)
		return 1;
	atomic_store_explicit(&lim->level, level, memory_order_relaxed);
	atomic_fetch_add_explicit(&lim->dropped, 1, memory_order_relaxed);
	atomic_fetch_add_explicit(&suppressed_total, 1, memory_order_relaxed);
	if (atomic_exchange(&lim->listed, 1) == 0) {
		struct tw_log_limit *head = atomic_load(&limits);
		do
			lim->next = head;
		while (!atomic_compare_exchange_weak(&limits, &head, lim));
	}
	return 0;
}

void tw_log_limits_flush(void)
{
	unsigned long long now = coarse_sec();
	for (struct tw_log_limit *l = atomic_load(&limits); l != NULL; l = l->next) {
		unsigned long long sec = atomic_load(&l->sec);
		if (sec != now && atomic_load(&l->dropped) > 0)
			roll(l, sec, now);
	}
}

unsigned long long tw_log_suppressed_total(void) { return atomic_load(&suppressed_total); }
