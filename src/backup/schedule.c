/* schedule.c — schedule parsing and next-time computation (see schedule.h). */
#include "backup/schedule.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/err.h"

static const char *const wdays[] = {"sun", "mon", "tue", "wed", "thu", "fri", "sat"};

static int num(const char **p, unsigned *out)
{
	const char *s = *p;
	unsigned v = 0;
	int n = 0;
	while (*s >= '0' && *s <= '9' && n < 6) {
		v = v * 10 + (unsigned)(*s - '0');
		s++;
		n++;
	}
	if (n == 0 || (*s >= '0' && *s <= '9'))
		return -1;
	*p = s;
	*out = v;
	return 0;
}

/* One cron field: "*", "N", "A-B", "*\/S", "A-B/S", comma lists. */
static int field(const char *f, unsigned lo, unsigned hi, uint64_t *bits, int *any)
{
	*bits = 0;
	*any = strcmp(f, "*") == 0;
	const char *p = f;
	for (;;) {
		unsigned a, b, step = 1;
		if (*p == '*') {
			a = lo;
			b = hi;
			p++;
		} else {
			if (num(&p, &a) != 0)
				return -1;
			b = a;
			if (*p == '-') {
				p++;
				if (num(&p, &b) != 0)
					return -1;
			}
		}
		if (*p == '/') {
			p++;
			if (num(&p, &step) != 0 || step == 0)
				return -1;
		}
		if (a < lo || b > hi || a > b)
			return -1;
		for (unsigned v = a; v <= b; v += step)
			*bits |= (uint64_t)1 << v;
		if (*p == ',') {
			p++;
			continue;
		}
		return *p == '\0' ? 0 : -1;
	}
}

static int hhmm(const char *t, unsigned *h, unsigned *m)
{
	const char *p = t;
	if (num(&p, h) != 0 || *p != ':')
		return -1;
	p++;
	if (num(&p, m) != 0 || *p != '\0' || *h > 23 || *m > 59)
		return -1;
	return 0;
}

static int set_cron(struct tw_sched *s, unsigned m, unsigned h, int dow)
{
	memset(s, 0, sizeof *s);
	s->min = (uint64_t)1 << m;
	s->hour = h == 99 ? 0xffffffu : 1u << h;
	s->dom = 0xfffffffeu;
	s->dom_any = 1;
	s->mon = 0x1ffe;
	s->dow = dow < 0 ? 0x7f : 1u << dow;
	s->dow_any = dow < 0;
	return 0;
}

int tw_sched_parse(const char *text, struct tw_sched *s, char *why, size_t wl)
{
	char buf[128], *w[6];
	size_t n = 0;
	memset(s, 0, sizeof *s);
	if (strlen(text) >= sizeof buf)
		goto bad;
	snprintf(buf, sizeof buf, "%s", text);
	for (char *p = buf; *p && n < 6;) {
		while (*p == ' ' || *p == '\t')
			*p++ = '\0';
		if (*p == '\0')
			break;
		w[n++] = p;
		while (*p && *p != ' ' && *p != '\t')
			p++;
	}
	if (n == 0)
		goto bad;
	unsigned h = 0, m = 0;
	if (n == 1 && strcmp(w[0], "hourly") == 0)
		return set_cron(s, 0, 99, -1);
	if (strcmp(w[0], "daily") == 0 && n <= 2) {
		if (n == 2 && hhmm(w[1], &h, &m) != 0)
			goto bad;
		return set_cron(s, m, h, -1);
	}
	if (strcmp(w[0], "weekly") == 0 && n <= 3) {
		int d = 0;
		size_t k = 1;
		if (k < n && strchr(w[k], ':') == NULL) {
			d = -1;
			for (int i = 0; i < 7; i++)
				if (strncmp(w[k], wdays[i], 3) == 0)
					d = i;
			if (d < 0)
				goto bad;
			k++;
		}
		if (k < n && hhmm(w[k++], &h, &m) != 0)
			goto bad;
		if (k != n)
			goto bad;
		return set_cron(s, m, h, d);
	}
	if (n == 1 && strcmp(w[0], "monthly") == 0) {
		set_cron(s, 0, 0, -1);
		s->dom = 1u << 1;
		s->dom_any = 0;
		return 0;
	}
	if (strcmp(w[0], "every") == 0 && n == 2) {
		const char *p = w[1];
		unsigned v;
		if (num(&p, &v) != 0 || v == 0)
			goto bad;
		uint64_t mul = strcmp(p, "s") == 0 ? 1 : strcmp(p, "m") == 0 ? 60
			     : strcmp(p, "h") == 0 ? 3600 : strcmp(p, "d") == 0 ? 86400 : 0;
		if (mul == 0)
			goto bad;
		s->every = 1;
		s->every_s = v * mul;
		return 0;
	}
	if (n == 5) {
		uint64_t b;
		int any;
		if (field(w[0], 0, 59, &s->min, &any) != 0)
			goto bad;
		if (field(w[1], 0, 23, &b, &any) != 0)
			goto bad;
		s->hour = (uint32_t)b;
		if (field(w[2], 1, 31, &b, &s->dom_any) != 0)
			goto bad;
		s->dom = (uint32_t)b;
		if (field(w[3], 1, 12, &b, &any) != 0)
			goto bad;
		s->mon = (uint32_t)b;
		if (field(w[4], 0, 7, &b, &s->dow_any) != 0)
			goto bad;
		if (b & (1u << 7))
			b |= 1;
		s->dow = (uint32_t)(b & 0x7f);
		return 0;
	}
bad:
	snprintf(why, wl,
		 "bad schedule \"%s\" (hourly, daily [HH:MM], weekly [DAY] [HH:MM], monthly, "
		 "every N{s,m,h,d}, or 5-field cron \"MIN HOUR DOM MON DOW\")",
		 text);
	return TW_EINVAL;
}

static int day_ok(const struct tw_sched *s, const struct tm *tm)
{
	int d = (s->dom >> tm->tm_mday) & 1, w = (s->dow >> tm->tm_wday) & 1;
	if (s->dom_any && s->dow_any)
		return 1;
	if (s->dom_any)
		return w;
	if (s->dow_any)
		return d;
	return d || w;
}

int64_t tw_sched_next(const struct tw_sched *s, int64_t t, int utc)
{
	if (s->every)
		return (t / (int64_t)s->every_s + 1) * (int64_t)s->every_s;
	time_t c = (time_t)((t / 60 + 1) * 60);
	for (int guard = 0; guard < 200000; guard++) {
		struct tm tm;
		if ((utc ? gmtime_r(&c, &tm) : localtime_r(&c, &tm)) == NULL)
			return -1;
		if (!((s->mon >> (tm.tm_mon + 1)) & 1)) {
			tm.tm_mon++;
			tm.tm_mday = 1;
			tm.tm_hour = tm.tm_min = tm.tm_sec = 0;
		} else if (!day_ok(s, &tm)) {
			tm.tm_mday++;
			tm.tm_hour = tm.tm_min = tm.tm_sec = 0;
		} else if (!((s->hour >> tm.tm_hour) & 1)) {
			tm.tm_hour++;
			tm.tm_min = tm.tm_sec = 0;
		} else if (!((s->min >> tm.tm_min) & 1)) {
			tm.tm_min++;
			tm.tm_sec = 0;
		} else
			return (int64_t)c;
		tm.tm_isdst = -1;
		time_t nc = utc ? timegm(&tm) : mktime(&tm);
		if (nc <= c) /* DST fold: step a minute */
			nc = c + 60;
		c = nc;
	}
	return -1;
}
