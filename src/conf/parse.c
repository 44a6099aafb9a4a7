/* parse.c — the scalar parsers of the configuration: addresses, durations,
 * sizes, CIDRs, host names, plus the "did you mean" edit distance.
 * They read NUL-terminated text that the loader already bounded in length. */
#include "conf/config.h"
#include "conf/schema.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int dns_enabled = 1;

void tw_config_set_dns(int enabled)
{
	dns_enabled = enabled;
}

/* Digits only, no sign, no spaces; fails on overflow. *end gets the first non-digit. */
static int read_u64(const char *s, uint64_t *v, const char **end)
{
	uint64_t x = 0;
	const char *p = s;
	if (!isdigit((unsigned char)*p))
		return -1;
	for (; isdigit((unsigned char)*p); p++) {
		unsigned d = (unsigned)(*p - '0');
		if (x > (UINT64_MAX - d) / 10)
			return -2;
		x = x * 10 + d;
	}
	*v = x;
	*end = p;
	return 0;
}

int tw_conf_parse_u64(const char *text, uint64_t *out)
{
	const char *end;
	uint64_t v;
	int rc = read_u64(text, &v, &end);
	if (rc < 0 || *end != '\0')
		return TW_EINVAL;
	*out = v;
	return 0;
}

int tw_duration_parse(const char *text, uint64_t *ms, struct tw_err *err)
{
	static const struct {
		const char *unit;
		uint64_t ms;
	} units[] = {{"ms", 1}, {"s", 1000}, {"m", 60000}, {"h", 3600000}, {"d", 86400000}};
	const char *p = text;
	uint64_t total = 0;
	if (strcmp(text, "0") == 0) {
		*ms = 0;
		return 0;
	}
	if (*p == '\0')
		return tw_err_set(err, TW_EINVAL, "empty duration");
	while (*p != '\0') {
		uint64_t v;
		const char *end;
		int rc = read_u64(p, &v, &end);
		if (rc == -2)
			return tw_err_set(err, TW_EINVAL, "duration \"%s\" is too large", text);
		if (rc < 0)
			return tw_err_set(err, TW_EINVAL,
			                  "bad duration \"%s\" (write e.g. 250ms, 2s, 5m, 1h, 1d)",
			                  text);
		size_t ulen = 0;
		while (isalpha((unsigned char)end[ulen]))
			ulen++;
		uint64_t mul = 0;
		for (size_t i = 0; i < sizeof units / sizeof units[0]; i++)
			if (strlen(units[i].unit) == ulen && memcmp(end, units[i].unit, ulen) == 0)
				mul = units[i].ms;
		if (mul == 0)
			return tw_err_set(err, TW_EINVAL,
			                  ulen == 0
			                      ? "duration \"%s\" needs a unit (ms, s, m, h, d)"
			                      : "bad duration unit in \"%s\" (ms, s, m, h, d)",
			                  text);
		if (v > UINT64_MAX / mul || total > UINT64_MAX - v * mul)
			return tw_err_set(err, TW_EINVAL, "duration \"%s\" is too large", text);
		total += v * mul;
		p = end + ulen;
	}
	*ms = total;
	return 0;
}

int tw_size_parse(const char *text, uint64_t *bytes, struct tw_err *err)
{
	/* Single letters and IEC names are powers of 1024; "KB", "MB"... are SI. */
	static const struct {
		const char *unit;
		uint64_t mul;
	} units[] = {{"", 1},
	             {"b", 1},
	             {"k", 1ull << 10},
	             {"kib", 1ull << 10},
	             {"kb", 1000ull},
	             {"m", 1ull << 20},
	             {"mib", 1ull << 20},
	             {"mb", 1000000ull},
	             {"g", 1ull << 30},
	             {"gib", 1ull << 30},
	             {"gb", 1000000000ull},
	             {"t", 1ull << 40},
	             {"tib", 1ull << 40},
	             {"tb", 1000000000000ull}};
	uint64_t v;
	const char *end;
	int rc = read_u64(text, &v, &end);
	if (rc == -2)
		return tw_err_set(err, TW_EINVAL, "size \"%s\" is too large", text);
	if (rc < 0)
		return tw_err_set(err, TW_EINVAL,
		                  "bad size \"%s\" (write e.g. 512, 16k, 16KiB, 1MiB, 10GB)", text);
	char unit[4];
	size_t ulen = strlen(end);
	if (ulen >= sizeof unit)
		goto bad_unit;
	for (size_t i = 0; i < ulen; i++)
		unit[i] = (char)tolower((unsigned char)end[i]);
	unit[ulen] = '\0';
	for (size_t i = 0; i < sizeof units / sizeof units[0]; i++) {
		if (strcmp(unit, units[i].unit) != 0)
			continue;
		if (v > UINT64_MAX / units[i].mul)
			return tw_err_set(err, TW_EINVAL, "size \"%s\" is too large", text);
		*bytes = v * units[i].mul;
		return 0;
	}
bad_unit:
	return tw_err_set(err, TW_EINVAL,
	                  "bad size unit in \"%s\" (B, k, KiB, KB, M, MiB, MB, G, GiB, GB, T)",
	                  text);
}

static int parse_port(const char *s, uint16_t *port)
{
	uint64_t v;
	if (tw_conf_parse_u64(s, &v) < 0 || v < 1 || v > 65535 || strlen(s) > 5)
		return -1;
	*port = (uint16_t)v;
	return 0;
}

int tw_addr_parse(const char *text, struct tw_addr *out, struct tw_err *err)
{
	char host[256];
	const char *colon, *portstr;
	size_t hlen;
	int bracket = 0;
	uint16_t port;

	memset(out, 0, sizeof *out);
	if (text[0] == '[') {
		const char *close = strchr(text, ']');
		if (close == NULL || close[1] != ':')
			return tw_err_set(err, TW_EINVAL,
			                  "bad address \"%s\" (write [v6addr]:port)", text);
		hlen = (size_t)(close - text - 1);
		memcpy(host, text + 1, hlen < sizeof host ? hlen : 0);
		if (hlen >= sizeof host)
			return tw_err_set(err, TW_EINVAL, "address \"%s\" is too long", text);
		portstr = close + 2;
		bracket = 1;
	} else {
		colon = strrchr(text, ':');
		if (colon == NULL)
			return tw_err_set(err, TW_EINVAL,
			                  "address \"%s\" has no port (write host:port)", text);
		hlen = (size_t)(colon - text);
		if (hlen >= sizeof host)
			return tw_err_set(err, TW_EINVAL, "address \"%s\" is too long", text);
		memcpy(host, text, hlen);
		if (memchr(host, ':', hlen) != NULL)
			return tw_err_set(err, TW_EINVAL,
			                  "IPv6 address \"%s\" needs brackets: [addr]:port", text);
		portstr = colon + 1;
	}
	host[hlen] = '\0';
	if (parse_port(portstr, &port) < 0)
		return tw_err_set(err, TW_EINVAL, "bad port in \"%s\" (1..65535)", text);

	struct sockaddr_in *sin = (struct sockaddr_in *)&out->ss;
	struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&out->ss;
	char numeric[INET6_ADDRSTRLEN];
	if (bracket) {
		if (inet_pton(AF_INET6, host, &sin6->sin6_addr) != 1)
			return tw_err_set(err, TW_EINVAL, "bad IPv6 address in \"%s\"", text);
		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons(port);
		out->len = sizeof *sin6;
		inet_ntop(AF_INET6, &sin6->sin6_addr, numeric, sizeof numeric);
		snprintf(out->text, sizeof out->text, "[%s]:%u", numeric, (unsigned)port);
		return 0;
	}
	if (hlen == 0 || inet_pton(AF_INET, host, &sin->sin_addr) == 1) {
		if (hlen == 0)
			sin->sin_addr.s_addr = htonl(INADDR_ANY);
		sin->sin_family = AF_INET;
		sin->sin_port = htons(port);
		out->len = sizeof *sin;
		inet_ntop(AF_INET, &sin->sin_addr, numeric, sizeof numeric);
		snprintf(out->text, sizeof out->text, "%s:%u", numeric, (unsigned)port);
		return 0;
	}
	/* A name: check its shape first, then resolve (first answer wins). */
	for (size_t i = 0; i < hlen; i++) {
		unsigned char ch = (unsigned char)host[i];
		if (!isalnum(ch) && ch != '-' && ch != '.' && ch != '_')
			return tw_err_set(err, TW_EINVAL, "bad host name in \"%s\"", text);
		host[i] = (char)tolower(ch);
	}
	if (hlen > 253)
		return tw_err_set(err, TW_EINVAL, "host name in \"%s\" is too long", text);
	if (!dns_enabled)
		return tw_err_set(err, TW_EINVAL,
		                  "cannot resolve \"%s\": name resolution is disabled", host);
	struct addrinfo hints, *res = NULL;
	memset(&hints, 0, sizeof hints);
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	int gai = getaddrinfo(host, NULL, &hints, &res);
	if (gai != 0 || res == NULL)
		return tw_err_set(err, TW_EINVAL, "cannot resolve \"%s\": %s", host,
		                  gai != 0 ? gai_strerror(gai) : "no address");
	if (res->ai_addrlen > sizeof out->ss ||
	    (res->ai_family != AF_INET && res->ai_family != AF_INET6)) {
		freeaddrinfo(res);
		return tw_err_set(err, TW_EINVAL, "cannot resolve \"%s\": unusable address", host);
	}
	memcpy(&out->ss, res->ai_addr, res->ai_addrlen);
	out->len = (socklen_t)res->ai_addrlen;
	freeaddrinfo(res);
	if (out->ss.ss_family == AF_INET)
		sin->sin_port = htons(port);
	else
		sin6->sin6_port = htons(port);
	snprintf(out->text, sizeof out->text, "%s:%u", host, (unsigned)port);
	return 0;
}

int tw_cidr_parse(const char *text, struct tw_cidr *out, struct tw_err *err)
{
	char host[INET6_ADDRSTRLEN + 1];
	const char *slash = strchr(text, '/');
	size_t hlen = slash ? (size_t)(slash - text) : strlen(text);
	memset(out, 0, sizeof *out);
	if (hlen == 0 || hlen >= sizeof host)
		return tw_err_set(err, TW_EINVAL,
		                  "bad CIDR \"%s\" (write e.g. 10.0.0.0/8 or ::1/128)", text);
	memcpy(host, text, hlen);
	host[hlen] = '\0';
	unsigned maxp;
	if (inet_pton(AF_INET, host, out->addr) == 1) {
		out->family = AF_INET;
		maxp = 32;
	} else if (inet_pton(AF_INET6, host, out->addr) == 1) {
		out->family = AF_INET6;
		maxp = 128;
	} else {
		return tw_err_set(err, TW_EINVAL,
		                  "bad CIDR \"%s\" (write e.g. 10.0.0.0/8 or ::1/128)", text);
	}
	uint64_t p = maxp;
	if (slash != NULL &&
	    (tw_conf_parse_u64(slash + 1, &p) < 0 || p > maxp || strlen(slash + 1) > 3))
		return tw_err_set(err, TW_EINVAL, "bad prefix length in \"%s\" (0..%u)", text,
		                  maxp);
	out->prefix = (unsigned)p;
	/* Host bits must be zero: "10.0.0.1/8" is almost certainly a typo. */
	for (unsigned bit = out->prefix; bit < maxp; bit++)
		if (out->addr[bit / 8] & (0x80u >> (bit % 8)))
			return tw_err_set(err, TW_EINVAL, "CIDR \"%s\" has host bits set", text);
	return 0;
}

static int prefix_match(const unsigned char *a, const unsigned char *b, unsigned prefix)
{
	unsigned full = prefix / 8, rest = prefix % 8;
	if (memcmp(a, b, full) != 0)
		return 0;
	if (rest == 0)
		return 1;
	unsigned char mask = (unsigned char)(0xffu << (8 - rest));
	return (a[full] & mask) == (b[full] & mask);
}

int tw_cidr_contains(const struct tw_cidr *c, const struct sockaddr *sa)
{
	static const unsigned char v4mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *sin = (const struct sockaddr_in *)sa;
		if (c->family != AF_INET)
			return 0;
		return prefix_match((const unsigned char *)&sin->sin_addr, c->addr, c->prefix);
	}
	if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)sa;
		const unsigned char *a = (const unsigned char *)&sin6->sin6_addr;
		if (c->family == AF_INET6)
			return prefix_match(a, c->addr, c->prefix);
		if (c->family == AF_INET && memcmp(a, v4mapped, 12) == 0)
			return prefix_match(a + 12, c->addr, c->prefix);
	}
	return 0;
}

int tw_conf_host_check(char *h, const char **why)
{
	size_t len = strlen(h);
	if (strcmp(h, "*") == 0)
		return 0;
	char *name = h;
	if (len >= 2 && h[0] == '*' && h[1] == '.')
		name = h + 2;
	size_t nlen = strlen(name);
	if (nlen == 0 || nlen > 253) {
		*why = "host name must be 1..253 characters";
		return TW_EINVAL;
	}
	size_t label = 0;
	for (size_t i = 0; i <= nlen; i++) {
		unsigned char ch = (unsigned char)name[i];
		if (ch == '.' || ch == '\0') {
			if (label == 0) {
				*why = "host name has an empty label";
				return TW_EINVAL;
			}
			if (name[i - 1] == '-' || name[i - label] == '-') {
				*why = "a host name label cannot start or end with '-'";
				return TW_EINVAL;
			}
			label = 0;
			continue;
		}
		if (ch == '*') {
			*why = "'*' is only allowed alone or as a leading \"*.\"";
			return TW_EINVAL;
		}
		if (!isalnum(ch) && ch != '-' && ch != '_') {
			*why = "host names hold only letters, digits, '-', '_' and '.'";
			return TW_EINVAL;
		}
		if (++label > 63) {
			*why = "a host name label is longer than 63 characters";
			return TW_EINVAL;
		}
		name[i] = (char)tolower(ch);
	}
	return 0;
}

size_t tw_conf_edit_distance(const char *a, const char *b)
{
	/* Optimal string alignment (Damerau-Levenshtein with adjacent swaps).
	 * Keys are short; longer inputs are cut to keep the table bounded. */
	enum { N = 64 };
	size_t la = strlen(a), lb = strlen(b);
	if (la >= N)
		la = N - 1;
	if (lb >= N)
		lb = N - 1;
	static _Thread_local size_t d[N][N];
	for (size_t i = 0; i <= la; i++)
		d[i][0] = i;
	for (size_t j = 0; j <= lb; j++)
		d[0][j] = j;
	for (size_t i = 1; i <= la; i++) {
		for (size_t j = 1; j <= lb; j++) {
			size_t cost =
			    tolower((unsigned char)a[i - 1]) == tolower((unsigned char)b[j - 1])
			        ? 0
			        : 1;
			size_t v = d[i - 1][j] + 1;
			if (d[i][j - 1] + 1 < v)
				v = d[i][j - 1] + 1;
			if (d[i - 1][j - 1] + cost < v)
				v = d[i - 1][j - 1] + cost;
			if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] &&
			    d[i - 2][j - 2] + 1 < v)
				v = d[i - 2][j - 2] + 1;
			d[i][j] = v;
		}
	}
	return d[la][lb];
}

const char *tw_conf_suggest(const char *word, const char *const *cands, size_t n)
{
	const char *best = NULL;
	size_t bestd = 3;
	size_t wl = strlen(word);
	for (size_t i = 0; i < n; i++) {
		size_t d = tw_conf_edit_distance(word, cands[i]);
		/* Short words: one edit at most, or everything would match. */
		size_t limit = wl <= 3 ? 1 : 2;
		if (d <= limit && d < bestd) {
			bestd = d;
			best = cands[i];
		}
	}
	return best;
}
