/* target.c — pure helpers of the PITR commands: recovery target times and
 * the quoting of postgresql.conf values and shell words (see pitr.h). */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "core/err.h"
#include "pg/pitr.h"

static int digits(const char **p, int n, int *out)
{
	int v = 0;
	for (int i = 0; i < n; i++) {
		char c = (*p)[i];
		if (c < '0' || c > '9')
			return -1;
		v = v * 10 + (c - '0');
	}
	*p += n;
	*out = v;
	return 0;
}

int tw_pitr_parse_time(const char *s, int64_t *ns)
{
	struct tm tm;
	memset(&tm, 0, sizeof tm);
	int y, mo, d, h, mi, se;
	const char *p = s;
	if (digits(&p, 4, &y) || *p++ != '-' || digits(&p, 2, &mo) || *p++ != '-' ||
	    digits(&p, 2, &d) || (*p != ' ' && *p != 'T') || (p++, digits(&p, 2, &h)) ||
	    *p++ != ':' || digits(&p, 2, &mi) || *p++ != ':' || digits(&p, 2, &se))
		return TW_EINVAL;
	if (mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || se > 60 || y < 1970)
		return TW_EINVAL;
	int64_t frac = 0;
	if (*p == '.') {
		p++;
		int64_t scale = 100000000;
		if (*p < '0' || *p > '9')
			return TW_EINVAL;
		while (*p >= '0' && *p <= '9') {
			frac += (*p - '0') * scale;
			scale /= 10;
			p++;
		}
	}
	while (*p == ' ')
		p++;
	tm.tm_year = y - 1900;
	tm.tm_mon = mo - 1;
	tm.tm_mday = d;
	tm.tm_hour = h;
	tm.tm_min = mi;
	tm.tm_sec = se;
	time_t t;
	if (*p == '\0') {
		tm.tm_isdst = -1;
		t = mktime(&tm); /* no zone: local time, as the server would read it */
	} else {
		int off = 0;
		if (*p == 'Z' || strcmp(p, "UTC") == 0 || strcmp(p, "GMT") == 0) {
			p += *p == 'Z' ? 1 : 3;
		} else if (*p == '+' || *p == '-') {
			int sign = *p++ == '-' ? -1 : 1, oh, om = 0;
			if (digits(&p, 2, &oh))
				return TW_EINVAL;
			if (*p == ':')
				p++;
			if (*p >= '0' && *p <= '9' && digits(&p, 2, &om))
				return TW_EINVAL;
			if (oh > 15 || om > 59)
				return TW_EINVAL;
			off = sign * (oh * 3600 + om * 60);
		} else
			return TW_EINVAL;
		if (*p != '\0')
			return TW_EINVAL;
		t = timegm(&tm) - off;
	}
	if (t == (time_t)-1)
		return TW_EINVAL;
	*ns = (int64_t)t * 1000000000 + frac;
	return 0;
}

static int quote(const char *s, const char *esc, char out_q, char *out, size_t cap)
{
	size_t o = 0, el = strlen(esc);
	if (cap < 3)
		return TW_ELIMIT;
	out[o++] = out_q;
	for (; *s; s++) {
		if (*s == '\'') {
			if (o + el + 2 > cap)
				return TW_ELIMIT;
			memcpy(out + o, esc, el);
			o += el;
		} else {
			if (o + 3 > cap)
				return TW_ELIMIT;
			out[o++] = *s;
		}
	}
	out[o++] = out_q;
	out[o] = '\0';
	return 0;
}

int tw_pitr_conf_quote(const char *s, char *out, size_t cap)
{
	for (const char *p = s; *p; p++)
		if (*p == '\n' || *p == '\r' || *p == '\\')
			return TW_EINVAL; /* never inject a line; backslashes are escapes there */
	return quote(s, "''", '\'', out, cap);
}

int tw_pitr_sh_quote(const char *s, char *out, size_t cap)
{
	return quote(s, "'\\''", '\'', out, cap);
}
