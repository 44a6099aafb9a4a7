/* keepalive.c — Keep-Alive header parameters (see keepalive.h). */
#include "http/keepalive.h"

#include <strings.h>

static int ows(char ch) { return ch == ' ' || ch == '\t'; }

void tw_keepalive_parse(const char *v, size_t len, struct tw_keepalive *out)
{
	const char *p = v, *end = v + len;
	out->timeout_s = -1;
	out->max = -1;
	while (p < end) {
		while (p < end && (ows(*p) || *p == ','))
			p++;
		const char *k = p;
		while (p < end && *p != '=' && *p != ',')
			p++;
		size_t klen = (size_t)(p - k);
		while (klen && ows(k[klen - 1]))
			klen--;
		uint64_t n = 0;
		int digits = 0;
		if (p < end && *p == '=') {
			p++;
			while (p < end && ows(*p))
				p++;
			if (p < end && *p == '"') /* a quoted-string value: "5" */
				p++;
			for (; p < end && *p >= '0' && *p <= '9'; p++, digits++)
				if (n < TW_KEEPALIVE_CAP)
					n = n * 10 + (uint64_t)(*p - '0');
			if (n > TW_KEEPALIVE_CAP)
				n = TW_KEEPALIVE_CAP;
		}
		int clean = p >= end || *p == ',' || ows(*p) || *p == '"';
		while (p < end && *p != ',')
			p++;
		if (!digits || !clean)
			continue;
		if (klen == 7 && strncasecmp(k, "timeout", 7) == 0 && out->timeout_s < 0)
			out->timeout_s = (int64_t)n;
		else if (klen == 3 && strncasecmp(k, "max", 3) == 0 && out->max < 0)
			out->max = (int64_t)n;
	}
}
