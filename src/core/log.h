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

/* Parse "error|warn|info|debug"; returns 0 or TW_EINVAL. */
int tw_log_parse_level(const char *s, int *level);
const char *tw_log_level_name(int level);

/* Redirect the error log to an open stream (default stderr). Not owned. */
void tw_log_set_stream(FILE *f);

#endif
