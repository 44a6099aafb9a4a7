#include "core/log.h"

#include "core/err.h"

#include <stdarg.h>
#include <string.h>
#include <time.h>

int tw_log_level = TW_LOG_INFO;
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
