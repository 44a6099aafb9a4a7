/* retention.c — keep rules for forget. */
#include "backup/retention.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

int tw_retention_empty(const struct tw_keep_policy *p)
{
	return !p->last && !p->hourly && !p->daily && !p->weekly && !p->monthly && !p->yearly &&
	       !p->ntags;
}

long tw_retention_bucket(int64_t time_ns, int rule)
{
	time_t t = (time_t)(time_ns / 1000000000);
	if (time_ns < 0 && time_ns % 1000000000)
		t--;
	struct tm tm;
	gmtime_r(&t, &tm);
	long y = tm.tm_year + 1900L;
	switch (rule) {
	case 0: return ((y * 100 + tm.tm_mon + 1) * 100 + tm.tm_mday) * 100 + tm.tm_hour;
	case 1: return (y * 100 + tm.tm_mon + 1) * 100 + tm.tm_mday;
	case 2: {
		char b[16];
		strftime(b, sizeof b, "%G%V", &tm);
		long v = 0;
		for (const char *p = b; *p >= '0' && *p <= '9'; p++)
			v = v * 10 + (*p - '0');
		return v;
	}
	case 3: return y * 100 + tm.tm_mon + 1;
	default: return y;
	}
}

void tw_retention_apply(struct tw_ret_item *items, size_t n, const struct tw_keep_policy *p)
{
	static const char *const names[5] = {"hourly", "daily", "weekly", "monthly", "yearly"};
	int counts[5] = {p->hourly, p->daily, p->weekly, p->monthly, p->yearly};
	long last[5];
	int have[5] = {0};
	int lastn = p->last;
	for (size_t i = 0; i < n; i++) {
		struct tw_ret_item *it = &items[i];
		it->keep = 0;
		it->reason[0] = '\0';
		size_t off = 0;
#define REASON(s)                                                                                  \
	do {                                                                                       \
		if (off < sizeof it->reason)                                                       \
			off += (size_t)snprintf(it->reason + off, sizeof it->reason - off, "%s%s",  \
						off ? "," : "", (s));                               \
		it->keep = 1;                                                                      \
	} while (0)
		if (lastn != 0) {
			REASON("last");
			if (lastn > 0)
				lastn--;
		}
		for (int k = 0; k < 5; k++) {
			if (counts[k] == 0)
				continue;
			long b = tw_retention_bucket(it->time_ns, k);
			if (!have[k] || b != last[k]) {
				have[k] = 1;
				last[k] = b;
				REASON(names[k]);
				if (counts[k] > 0)
					counts[k]--;
			}
		}
		for (size_t t = 0; t < p->ntags; t++)
			for (size_t j = 0; j < it->ntags; j++)
				if (strcmp(p->tags[t], it->tags[j]) == 0) {
					REASON("tag");
					t = p->ntags - 1;
					break;
				}
#undef REASON
	}
}
