/* chunker.c — FastCDC-style gear chunker with normalized chunking. */
#include "backup/chunker.h"

#include <openssl/evp.h>
#include <string.h>

#include "core/err.h"

int tw_chunker_gear(const uint8_t seed[32], uint64_t gear[256])
{
	for (int i = 0; i < 256; i++) {
		uint8_t msg[5] = {'g', 'e', 'a', 'r', (uint8_t)i}, out[32];
		size_t outl = 0;
		if (EVP_Q_mac(NULL, "HMAC", NULL, "SHA256", NULL, seed, 32, msg, sizeof msg, out,
			      sizeof out, &outl) == NULL)
			return TW_ECRYPTO;
		uint64_t v = 0;
		for (int j = 7; j >= 0; j--)
			v = v << 8 | out[j];
		gear[i] = v;
	}
	return 0;
}

static uint64_t top_mask(int bits) { return bits <= 0 ? 0 : ~(uint64_t)0 << (64 - bits); }

int tw_chunker_init(struct tw_chunker *c, const uint64_t *gear, uint32_t min, uint32_t avg,
		    uint32_t max)
{
	if (min <= 64 || min >= avg || avg >= max || max > TW_CHUNK_MAX_LIMIT ||
	    (avg & (avg - 1)) != 0)
		return TW_EINVAL;
	int bits = 0;
	while ((1u << bits) < avg)
		bits++;
	memset(c, 0, sizeof *c);
	c->gear = gear;
	c->min = min;
	c->avg = avg;
	c->max = max;
	c->mask_s = top_mask(bits + 2);
	c->mask_l = top_mask(bits - 2);
	return 0;
}

void tw_chunker_reset(struct tw_chunker *c)
{
	c->h = 0;
	c->len = 0;
}

size_t tw_chunker_scan(struct tw_chunker *c, const uint8_t *p, size_t n, int *cut)
{
	size_t i = 0;
	uint32_t len = c->len;
	uint64_t h = c->h;
	const uint64_t *g = c->gear;
	*cut = 0;
	/* bytes before min-64 cannot influence a cut: skip them */
	uint32_t warm = c->min - 64;
	if (len < warm) {
		size_t skip = warm - len;
		if (skip > n)
			skip = n;
		i = skip;
		len += (uint32_t)skip;
	}
	/* warm-up: hash without testing until min */
	while (i < n && len < c->min) {
		h = (h << 1) + g[p[i++]];
		len++;
	}
	/* below average: harder mask */
	uint64_t m = c->mask_s;
	while (i < n && len < c->avg) {
		h = (h << 1) + g[p[i++]];
		len++;
		if ((h & m) == 0)
			goto found;
	}
	m = c->mask_l;
	while (i < n && len < c->max) {
		h = (h << 1) + g[p[i++]];
		len++;
		if ((h & m) == 0)
			goto found;
	}
	if (len >= c->max)
		goto found;
	c->len = len;
	c->h = h;
	return i;
found:
	*cut = 1;
	c->len = 0;
	c->h = 0;
	return i;
}
