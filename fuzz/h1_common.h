/* h1_common.h — shared by the h1 head fuzz targets: parse an input whole and
 * in several splits (each call on an exact-size copy), abort if they differ
 * or if a result points outside the head. */
#ifndef TW_FUZZ_H1_COMMON_H
#define TW_FUZZ_H1_COMMON_H

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "http/h1.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct h1_outcome {
	int rc;
	unsigned status;
	size_t head_len;
	struct tw_h1_msg msg;
};

static void h1_run(enum tw_h1_kind kind, const uint8_t *data, size_t size, const struct tw_h1_limits *lim,
		   const size_t *cuts, size_t ncuts, struct h1_outcome *o)
{
	struct tw_h1_parser p;
	tw_h1_parser_init(&p, kind, lim);
	int rc = TW_EAGAIN;
	for (size_t k = 0; k <= ncuts; k++) {
		size_t len = k < ncuts ? cuts[k] : size;
		char *b = malloc(len ? len : 1);
		if (!b)
			abort();
		memcpy(b, data, len);
		rc = tw_h1_parse(&p, b, len, &o->msg);
		free(b);
		if (rc != TW_EAGAIN)
			break;
	}
	o->rc = rc;
	o->status = rc == 0 || rc == TW_EAGAIN ? 0 : p.status;
	o->head_len = rc == 0 ? p.head_len : 0;
	if (rc != 0 && rc != TW_EAGAIN && rc != TW_EPROTO && rc != TW_ELIMIT)
		abort();
	if ((rc == TW_EPROTO && p.status != 400) || (rc == TW_ELIMIT && p.status != 413 && p.status != 414 &&
						      p.status != 431))
		abort();
	if (rc != 0)
		return;
	/* every slice lies inside the head */
	const struct tw_h1_msg *m = &o->msg;
	if (o->head_len > size || m->nheaders > TW_H1_MAX_HEADERS_HARD)
		abort();
	const struct tw_slice *s[] = {&m->method, &m->target, &m->path, &m->query, &m->authority, &m->reason};
	for (size_t i = 0; i < sizeof s / sizeof s[0]; i++)
		if ((size_t)s[i]->off + s[i]->len > o->head_len)
			abort();
	for (unsigned i = 0; i < m->nheaders; i++)
		if ((size_t)m->headers[i].name.off + m->headers[i].name.len > o->head_len ||
		    (size_t)m->headers[i].value.off + m->headers[i].value.len > o->head_len ||
		    m->headers[i].name.len == 0)
			abort();
	if (m->chunked && m->content_length >= 0)
		abort();
}

static void h1_same(const struct h1_outcome *a, const struct h1_outcome *b)
{
	if (a->rc != b->rc || a->status != b->status || a->head_len != b->head_len)
		abort();
	if (a->rc != 0)
		return;
	if (memcmp(&a->msg, &b->msg, offsetof(struct tw_h1_msg, headers)) != 0 ||
	    a->msg.nheaders != b->msg.nheaders ||
	    memcmp(a->msg.headers, b->msg.headers, a->msg.nheaders * sizeof a->msg.headers[0]) != 0 ||
	    a->msg.content_length != b->msg.content_length || a->msg.chunked != b->msg.chunked ||
	    a->msg.conn_flags != b->msg.conn_flags || a->msg.expect_continue != b->msg.expect_continue ||
	    a->msg.has_upgrade != b->msg.has_upgrade || a->msg.keep_alive != b->msg.keep_alive ||
	    a->msg.until_close != b->msg.until_close)
		abort();
}

static struct h1_outcome h1_a, h1_b; /* large: keep off the stack */

static void h1_fuzz(enum tw_h1_kind kind, const uint8_t *data, size_t size)
{
	static const struct tw_h1_limits small = {.max_head_bytes = 300, .max_headers = 6, .max_uri = 40,
						  .max_body = 1000};
	const struct tw_h1_limits *lims[] = {NULL, &small};
	for (int l = 0; l < 2; l++) {
		memset(&h1_a, 0, sizeof h1_a);
		h1_run(kind, data, size, lims[l], NULL, 0, &h1_a);
		size_t cuts[3];
		/* halves, thirds, and a data-dependent cut */
		size_t c1[] = {size / 2};
		size_t c2[] = {size / 3, 2 * size / 3};
		size_t h = size ? (size_t)data[size - 1] * 7 % size : 0;
		cuts[0] = h / 2;
		cuts[1] = h;
		cuts[2] = h + (size - h) / 2;
		const size_t *cs[] = {c1, c2, cuts};
		size_t ns[] = {1, 2, 3};
		for (int k = 0; k < 3; k++) {
			memset(&h1_b, 0xa5, sizeof h1_b);
			h1_run(kind, data, size, lims[l], cs[k], ns[k], &h1_b);
			h1_same(&h1_a, &h1_b);
		}
	}
}

#endif
