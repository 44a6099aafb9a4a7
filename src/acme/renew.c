/* renew.c — renewal windows and backoff. See renew.h. */
#include "acme/renew.h"

#include "core/err.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define DAY 86400

struct tw_acme_window tw_acme_renew_window(time_t not_before, time_t not_after)
{
	struct tw_acme_window w;
	time_t life = not_after > not_before ? not_after - not_before : 0;
	time_t left = life < 10 * DAY ? life / 2 : life / 3;
	w.start = not_after - left;
	w.end = w.start + life / 20;
	return w;
}

time_t tw_acme_renew_at(time_t not_before, time_t not_after, int has_ari, struct tw_acme_window ari,
                        double jitter)
{
	struct tw_acme_window w = has_ari ? ari : tw_acme_renew_window(not_before, not_after);
	time_t life = not_after > not_before ? not_after - not_before : 0;
	time_t latest = not_after - life / 20;
	if (jitter < 0 || jitter >= 1)
		jitter = 0;
	if (w.end < w.start)
		w.end = w.start;
	time_t t = w.start + (time_t)((double)(w.end - w.start) * jitter);
	return t > latest ? latest : t;
}

uint64_t tw_acme_backoff_s(unsigned failures, uint64_t retry_after_s)
{
	return tw_acme_backoff_from(failures, retry_after_s, 60);
}

uint64_t tw_acme_backoff_from(unsigned failures, uint64_t retry_after_s, uint64_t min_s)
{
	uint64_t d = min_s ? min_s : 1;
	const uint64_t cap = 6 * 3600;
	for (unsigned i = 1; i < failures && d < cap; i++)
		d *= 2;
	if (d > cap)
		d = cap;
	return retry_after_s > d ? retry_after_s : d;
}

int tw_acme_parse_retry_after(const char *v, time_t now, uint64_t *out_s)
{
	while (*v == ' ' || *v == '\t')
		v++;
	if (*v >= '0' && *v <= '9') {
		char *end;
		errno = 0;
		unsigned long long n = strtoull(v, &end, 10);
		while (*end == ' ' || *end == '\t' || *end == '\r' || *end == '\n')
			end++;
		if (errno != 0 || *end != '\0' || n > 100ull * 365 * DAY)
			return TW_EINVAL;
		*out_s = n;
		return 0;
	}
	struct tm tm = {0};
	const char *e = strptime(v, "%a, %d %b %Y %H:%M:%S GMT", &tm);
	if (e == NULL)
		return TW_EINVAL;
	time_t t = timegm(&tm);
	*out_s = t > now ? (uint64_t)(t - now) : 0;
	return 0;
}
