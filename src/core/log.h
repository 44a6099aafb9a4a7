/* log.h — leveled logging that costs nothing when off.
 *
 * TW_LOG checks the level before any formatting. Lines go to the error log
 * (stderr by default) as: "2026-11-25T20:00:00.123Z level [ctx] message".
 * Callers put the connection/request id into ctx. Never log secrets. */
#ifndef TW_CORE_LOG_H
#define TW_CORE_LOG_H

#include <stdio.h>

enum tw_log_level { TW_LOG_ERROR = 0, TW_LOG_WARN, TW_LOG_INFO, TW_LOG_DEBUG };

extern int tw_log_level;

#define TW_LOG(lvl, ...)                                                                           \
	do {                                                                                       \
		if ((lvl) <= tw_log_level)                                                         \
			tw_log_write((lvl), __VA_ARGS__);                                          \
	} while (0)
#define tw_error(...) TW_LOG(TW_LOG_ERROR, __VA_ARGS__)
#define tw_warn(...) TW_LOG(TW_LOG_WARN, __VA_ARGS__)
#define tw_info(...) TW_LOG(TW_LOG_INFO, __VA_ARGS__)
#define tw_debug(...) TW_LOG(TW_LOG_DEBUG, __VA_ARGS__)

void tw_log_write(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Rate-limited lines: one limiter per kind of per-event line (a call site,
 * or a status code). At most tw_log_burst lines of a kind are written per
 * second; the rest are counted, and the next line of the kind in a later
 * second — or tw_log_limits_flush(), which the edge calls once a second —
 * writes "... and N more like this in the last second (KIND)". So a storm of
 * identical failures costs a few lines a second, whatever the request rate.
 * Limiters are zero-initialised statics; only `kind` is set. */
extern unsigned tw_log_burst; /* lines per second per kind; 0 = no limit (config log.rate) */
struct tw_log_limit {
	const char *kind;           /* names the lines in the summary */
	_Atomic unsigned long long sec; /* the second (CLOCK_MONOTONIC_COARSE) being counted */
	_Atomic unsigned n;         /* lines of that second, written or not */
	_Atomic unsigned dropped;   /* suppressed in that second, not yet summarised */
	_Atomic int level;          /* level of the suppressed lines */
	_Atomic int listed;         /* on the list tw_log_limits_flush walks */
	struct tw_log_limit *next;
};
/* 1: write the line; 0: suppressed (counted). */
int tw_log_allow(struct tw_log_limit *lim, int level);
/* Write the summaries of seconds that have ended (call about once a second). */
void tw_log_limits_flush(void);
/* Lines suppressed since start (tapwork_log_lines_suppressed_total). */
unsigned long long tw_log_suppressed_total(void);

#define TW_LOG_RL(lvl, kindname, ...)                                                              \
	do {                                                                                       \
		static struct tw_log_limit tw_lim_ = {.kind = (kindname)};                        \
		if ((lvl) <= tw_log_level && tw_log_allow(&tw_lim_, (lvl)))                      \
			tw_log_write((lvl), __VA_ARGS__);                                          \
	} while (0)
#define tw_warn_rl(kind, ...) TW_LOG_RL(TW_LOG_WARN, kind, __VA_ARGS__)
#define tw_info_rl(kind, ...) TW_LOG_RL(TW_LOG_INFO, kind, __VA_ARGS__)

/* Parse "error|warn|info|debug"; returns 0 or TW_EINVAL. */
int tw_log_parse_level(const char *s, int *level);
const char *tw_log_level_name(int level);

/* Redirect the error log to an open stream (default stderr). Not owned. */
void tw_log_set_stream(FILE *f);

#endif
