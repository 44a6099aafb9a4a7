/* fuzz/acme_json.c — libFuzzer target for the ACME response handling
 * (src/acme/parse.c, tw_acme_parse_retry_after).
 *
 * Input: one selector byte, then the document. Selector % 7 picks the
 * parser: 0 directory, 1 problem, 2 order, 3 authorization, 4 renewalInfo,
 * 5 status, 6 RFC 3339 time + Retry-After. A document that parses must
 * satisfy the invariants the client relies on (required URLs present,
 * lists within caps, tokens base64url, windows ordered). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "acme/parse.h"
#include "acme/renew.h"

static void check_url(const char *u)
{
	if (u == NULL || strlen(u) > TW_ACME_MAX_URL ||
	    (strncmp(u, "https://", 8) != 0 && strncmp(u, "http://", 7) != 0))
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	unsigned sel = data[0] % 7;
	const char *p = (const char *)data + 1;
	size_t len = size - 1;
	struct tw_arena a;
	struct tw_err e = {0};
	tw_arena_init(&a, 4096);
	switch (sel) {
	case 0: {
		struct tw_acme_dir d;
		if (tw_acme_parse_dir(p, len, &a, &d, &e) == 0) {
			check_url(d.new_nonce);
			check_url(d.new_account);
			check_url(d.new_order);
			if (d.renewal_info)
				check_url(d.renewal_info);
			if (d.nprofiles > TW_ACME_MAX_LIST)
				abort();
		}
		break;
	}
	case 1: {
		struct tw_acme_problem pr;
		if (tw_acme_parse_problem(p, len, &a, &pr, &e) == 0 &&
		    (pr.type == NULL || pr.detail == NULL || pr.status >= 1000))
			abort();
		break;
	}
	case 2: {
		struct tw_acme_order o;
		if (tw_acme_parse_order(p, len, &a, &o, &e) == 0) {
			if (o.nauthz == 0 || o.nauthz > TW_ACME_MAX_LIST ||
			    o.status == TW_ACME_ST_UNKNOWN)
				abort();
			check_url(o.finalize);
			for (size_t i = 0; i < o.nauthz; i++)
				if (strlen(o.authz[i]) > TW_ACME_MAX_URL)
					abort();
			if (o.certificate)
				check_url(o.certificate);
		}
		break;
	}
	case 3: {
		struct tw_acme_authz z;
		if (tw_acme_parse_authz(p, len, &a, &z, &e) == 0) {
			if (z.ident == NULL || z.nchal > TW_ACME_MAX_LIST)
				abort();
			for (size_t i = 0; i < z.nchal; i++) {
				check_url(z.chal[i].url);
				for (const char *t = z.chal[i].token; t && *t; t++)
					if (strchr("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstu"
					           "vwxyz"
					           "0123456789-_",
					           *t) == NULL)
						abort();
			}
		}
		break;
	}
	case 4: {
		struct tw_acme_renewal_info r;
		if (tw_acme_parse_renewal_info(p, len, &a, &r, &e) == 0 && r.end < r.start)
			abort();
		break;
	}
	case 5: {
		enum tw_acme_status st;
		(void)tw_acme_parse_status(p, len, &st, &e);
		break;
	}
	default: {
		time_t t;
		(void)tw_acme_parse_time(p, len, &t);
		char buf[128];
		size_t n = len < sizeof buf - 1 ? len : sizeof buf - 1;
		memcpy(buf, p, n);
		buf[n] = '\0';
		uint64_t s;
		(void)tw_acme_parse_retry_after(buf, 1700000000, &s);
		break;
	}
	}
	tw_arena_free(&a);
	return 0;
}
