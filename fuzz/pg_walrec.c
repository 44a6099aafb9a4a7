/* Fuzz target: the WAL record reader (tw_walrec_segment). The input is laid
 * over two zeroed 1 MiB segments read in order (so records can cross pages
 * and the segment boundary); the first segment's address is the one its
 * header names. Records handed out must lie in what was read, in order,
 * with their main data inside the record. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "pg/walrec.h"

#define SEG ((size_t)1 << 20)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static uint8_t buf[2 * SEG];

struct chk {
	uint64_t lo, hi, last;
	int n;
};

static int cb(void *arg, const struct tw_walrec *r)
{
	struct chk *c = arg;
	if (r->lsn < c->lo || r->lsn >= c->hi || (c->n > 0 && r->lsn <= c->last) || r->tot_len < 24)
		abort();
	if (r->main != NULL && r->main_len > r->tot_len - 24)
		abort();
	c->last = r->lsn;
	c->n++;
	(void)tw_walrec_is_restore_point(r, "rp", NULL);
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	size_t n = size < sizeof buf ? size : sizeof buf;
	memset(buf, 0, sizeof buf);
	memcpy(buf, data, n);
	uint64_t lsn = 0;
	for (int i = 0; i < 8; i++)
		lsn |= (uint64_t)buf[8 + i] << (8 * i);
	lsn &= ~(uint64_t)(SEG - 1);
	if (lsn > UINT64_MAX - 4 * SEG)
		return 0;
	struct tw_walrec_reader rd;
	tw_walrec_init(&rd);
	struct chk c = {.lo = lsn, .hi = lsn + 2 * SEG};
	struct tw_err e;
	int stopped;
	if (tw_walrec_segment(&rd, buf, SEG, lsn, cb, &c, &stopped, &e) == 0)
		(void)tw_walrec_segment(&rd, buf + SEG, SEG, lsn + SEG, cb, &c, &stopped, &e);
	tw_walrec_free(&rd);
	return 0;
}
