/* fuzz/proxyproto.c — libFuzzer target for the PROXY protocol parser
 * (src/edge/proxyproto.c).
 *
 * Input: the bytes a peer sends first. The parser is run on them in one
 * piece, split at a point taken from the input, and one byte at a time: the
 * three must agree (result, bytes used, client address) and never use more
 * than they were given. A parsed client address is written back with both
 * writers and must parse to the same address. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "edge/proxyproto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int run(const uint8_t *d, size_t n, size_t cut, int trickle, struct tw_pp_parser *p, size_t *used)
{
	tw_pp_init(p);
	*used = 0;
	if (trickle) {
		int rc = TW_EAGAIN;
		for (size_t i = 0; i < n && rc == TW_EAGAIN; i++) {
			size_t u = 0;
			rc = tw_pp_feed(p, d + i, 1, &u);
			*used += u;
		}
		return rc;
	}
	size_t u = 0;
	int rc = tw_pp_feed(p, d, cut, &u);
	*used = u;
	if (rc == TW_EAGAIN) {
		rc = tw_pp_feed(p, d + cut, n - cut, &u);
		*used += u;
	}
	return rc;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	/* exact-size heap copy so ASan sees any over-read */
	uint8_t *d = malloc(size ? size : 1);
	if (d == NULL)
		abort();
	memcpy(d, data, size);
	static struct tw_pp_parser a, b, c;
	size_t ua, ub, uc;
	int ra = run(d, size, size, 0, &a, &ua);
	int rb = run(d, size, size ? (size_t)data[size - 1] * 17 % size : 0, 0, &b, &ub);
	int rc = run(d, size, 0, 1, &c, &uc);
	if (ra != rb || ra != rc || ua != ub || ua != uc || ua > size)
		abort();
	if (ra != 0 && ra != TW_EAGAIN && ra != TW_EPROTO)
		abort();
	if (ra == TW_EPROTO && a.why == NULL)
		abort();
	if (ra == 0) {
		if (a.info.local != b.info.local || memcmp(&a.info.src, &c.info.src, sizeof a.info.src) != 0 ||
		    strcmp(a.info.vpce, c.info.vpce) != 0 || strcmp(a.info.authority, b.info.authority) != 0)
			abort();
		if (!a.info.local) {
			char out[512];
			struct tw_pp_parser r;
			size_t u;
			size_t n = tw_pp_write_v2(out, sizeof out, (struct sockaddr *)&a.info.src,
						  (struct sockaddr *)&a.info.dst, a.info.alpn);
			if (n == 0 || run((uint8_t *)out, n, n, 0, &r, &u) != 0 || u != n ||
			    memcmp(&r.info.src, &a.info.src, sizeof r.info.src) != 0)
				abort();
			n = tw_pp_write_v1(out, sizeof out, (struct sockaddr *)&a.info.src, (struct sockaddr *)&a.info.dst);
			if (n == 0 || run((uint8_t *)out, n, n, 0, &r, &u) != 0 || u != n ||
			    memcmp(&r.info.src, &a.info.src, sizeof r.info.src) != 0)
				abort();
		}
	}
	free(d);
	return 0;
}
