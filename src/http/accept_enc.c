/* accept_enc.c — Accept-Encoding: #( codings [ OWS ";" OWS "q=" qvalue ] ).
 *
 * One pass over the slice, element by element: a token, then parameters.
 * Only q matters (others are skipped); a malformed element is skipped up to
 * the next comma that is not inside a quoted string. */
#include "http/accept_enc.h"

#include <string.h>
#include <strings.h>

static const char *const names[TW_CODING_N] = {"identity", "zstd", "br", "gzip"};
static const char *const suffixes[TW_CODING_N] = {"", ".zst", ".br", ".gz"};

const char *tw_coding_name(enum tw_coding c) { return (unsigned)c < TW_CODING_N ? names[c] : "identity"; }
const char *tw_coding_suffix(enum tw_coding c) { return (unsigned)c < TW_CODING_N ? suffixes[c] : ""; }

int tw_coding_parse(const char *p, size_t n)
{
	for (int i = 0; i < TW_CODING_N; i++)
		if (strlen(names[i]) == n && strncasecmp(p, names[i], n) == 0)
			return i;
	if (n == 6 && strncasecmp(p, "x-gzip", 6) == 0)
		return TW_CODING_GZIP;
	return -1;
}

void tw_ae_init(struct tw_ae *ae)
{
	for (int i = 0; i < TW_CODING_N; i++)
		ae->q[i] = TW_AE_UNSET;
	ae->star = TW_AE_UNSET;
	ae->nskipped = 0;
}

static int is_tchar(unsigned char ch)
{
	if ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9'))
		return 1;
	return ch != 0 && strchr("!#$%&'*+-.^_`|~", ch) != NULL;
}

static int is_ows(unsigned char ch) { return ch == ' ' || ch == '\t'; }

/* qvalue = ( "0" [ "." 0*3DIGIT ] ) / ( "1" [ "." 0*3("0") ] ); -1 when bad. */
static int parse_qvalue(const char *p, size_t n)
{
	if (n == 0 || (p[0] != '0' && p[0] != '1'))
		return -1;
	int v = (p[0] - '0') * 1000;
	if (n == 1)
		return v;
	if (p[1] != '.' || n > 5)
		return -1;
	int scale = 100;
	for (size_t i = 2; i < n; i++, scale /= 10) {
		if (p[i] < '0' || p[i] > '9')
			return -1;
		v += (p[i] - '0') * scale;
	}
	return v > 1000 ? -1 : v;
}

/* Skip to just past the next top-level comma (or to the end). */
static size_t skip_element(const char *p, size_t n, size_t i)
{
	int quoted = 0;
	for (; i < n; i++) {
		if (quoted) {
			if (p[i] == '\\' && i + 1 < n)
				i++;
			else if (p[i] == '"')
				quoted = 0;
		} else if (p[i] == '"') {
			quoted = 1;
		} else if (p[i] == ',') {
			return i + 1;
		}
	}
	return n;
}

static void merge(int16_t *slot, int q)
{
	if (*slot == TW_AE_UNSET || q > *slot)
		*slot = (int16_t)q;
}

void tw_ae_parse(struct tw_ae *ae, const char *p, size_t n)
{
	size_t i = 0;
	while (i < n) {
		while (i < n && (is_ows((unsigned char)p[i]) || p[i] == ','))
			i++;
		if (i == n)
			break;
		size_t t0 = i;
		while (i < n && is_tchar((unsigned char)p[i]))
			i++;
		size_t tlen = i - t0;
		int q = 1000, bad = tlen == 0;
		while (!bad) {
			while (i < n && is_ows((unsigned char)p[i]))
				i++;
			if (i == n || p[i] == ',')
				break;
			if (p[i] != ';') {
				bad = 1;
				break;
			}
			i++;
			while (i < n && is_ows((unsigned char)p[i]))
				i++;
			size_t k0 = i;
			while (i < n && is_tchar((unsigned char)p[i]))
				i++;
			size_t klen = i - k0;
			if (klen == 0 || i == n || p[i] != '=') {
				bad = 1;
				break;
			}
			i++;
			size_t v0 = i;
			if (i < n && p[i] == '"') { /* quoted-string: allowed for other parameters */
				i++;
				while (i < n && p[i] != '"') {
					if (p[i] == '\\' && i + 1 < n)
						i++;
					i++;
				}
				if (i == n) {
					bad = 1;
					break;
				}
				i++;
				if (klen == 1 && (p[k0] == 'q' || p[k0] == 'Q'))
					bad = 1; /* a weight is never quoted */
				continue;
			}
			while (i < n && is_tchar((unsigned char)p[i]))
				i++;
			if (klen == 1 && (p[k0] == 'q' || p[k0] == 'Q')) {
				q = parse_qvalue(p + v0, i - v0);
				if (q < 0)
					bad = 1;
			} else if (i == v0) {
				bad = 1;
			}
		}
		if (bad) {
			if (ae->nskipped < UINT16_MAX)
				ae->nskipped++;
			i = skip_element(p, n, i);
			continue;
		}
		if (tlen == 1 && p[t0] == '*') {
			merge(&ae->star, q);
			continue;
		}
		int c = tw_coding_parse(p + t0, tlen);
		if (c >= 0)
			merge(&ae->q[c], q);
	}
}

int tw_ae_q(const struct tw_ae *ae, enum tw_coding c)
{
	if ((unsigned)c >= TW_CODING_N)
		return 0;
	if (ae->q[c] != TW_AE_UNSET)
		return ae->q[c];
	if (ae->star != TW_AE_UNSET)
		return ae->star;
	return c == TW_CODING_IDENTITY ? 1000 : 0;
}

enum tw_coding tw_ae_choose(const struct tw_ae *ae, const enum tw_coding *prefs, size_t n)
{
	int best = TW_CODING_IDENTITY, bestq = 0;
	for (size_t i = 0; i < n; i++) {
		if (prefs[i] == TW_CODING_IDENTITY || (unsigned)prefs[i] >= TW_CODING_N)
			continue;
		int q = tw_ae_q(ae, prefs[i]);
		if (q > bestq) {
			best = prefs[i];
			bestq = q;
		}
	}
	/* identity named explicitly above every coding we could use: honour it */
	if (best != TW_CODING_IDENTITY && ae->q[TW_CODING_IDENTITY] != TW_AE_UNSET && ae->q[TW_CODING_IDENTITY] > bestq)
		return TW_CODING_IDENTITY;
	return (enum tw_coding)best;
}
