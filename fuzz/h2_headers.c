/* Fuzz target: the HTTP/2 -> HTTP/1.1 request head translation (edge/h2.c).
 *
 * Input: byte 0 bit 0 = END_STREAM on HEADERS; then records
 * [name_len:1][value_len:2 big-endian][name][value]. Every accepted request
 * must come out as exactly one complete HTTP/1.1 head that the project's own
 * parser reads to its last byte (nothing smuggled behind it), with the same
 * framing the translation announced. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/dbuf.h"
#include "core/err.h"
#include "edge/h2.h"
#include "http/h1.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct tw_h1_msg msg;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	int end_stream = data[0] & 1;
	size_t pos = 1;
	struct tw_h2_req x;
	tw_h2_req_init(&x, 16384, 100);
	int rc = 0;
	while (rc == 0 && pos + 3 <= size) {
		size_t nl = data[pos];
		size_t vl = ((size_t)data[pos + 1] << 8) | data[pos + 2];
		pos += 3;
		if (pos + nl + vl > size)
			break;
		rc = tw_h2_req_field(&x, data + pos, nl, data + pos + nl, vl);
		pos += nl + vl;
		if (rc != 0 && rc != TW_EPROTO && rc != TW_ELIMIT)
			abort();
	}
	if (rc == 0) {
		struct tw_dbuf out;
		tw_dbuf_init(&out, 1 << 20);
		int chunked = 0;
		rc = tw_h2_req_head(&x, end_stream, &out, &chunked);
		if (rc == 0) {
			struct tw_h1_parser p;
			struct tw_h1_limits lim = {.max_head_bytes = 1 << 20, .max_headers = TW_H1_MAX_HEADERS_HARD,
						   .max_uri = 1 << 20};
			tw_h1_parser_init(&p, TW_H1_REQUEST, &lim);
			int prc = tw_h1_parse(&p, out.data, out.len, &msg);
			if (prc == TW_EAGAIN)
				abort(); /* an incomplete head: a later byte could extend it */
			if (prc == 0) {
				if (p.head_len != out.len)
					abort(); /* bytes after the head: a second request */
				if (msg.chunked != chunked)
					abort();
				if (x.content_length != msg.content_length)
					abort();
				if (msg.method.len != x.pv_len[TW_H2P_METHOD] ||
				    memcmp(out.data + msg.method.off, x.pseudo.data + x.pv_off[TW_H2P_METHOD], msg.method.len))
					abort();
			}
		} else if (rc != TW_EPROTO && rc != TW_ELIMIT) {
			abort();
		}
		tw_dbuf_free(&out);
	}
	tw_h2_req_free(&x);
	return 0;
}
