/* keepalive.h — the parameters of a Keep-Alive response header
 * (RFC 2068 section 19.7.1.1; sent by Apache, Node.js and others):
 * `timeout=N` (the server closes an idle connection after N seconds) and
 * `max=M` (requests it still accepts on this connection).
 *
 * The value comes from an upstream server: it is read as a slice (pointer +
 * length, no NUL), unknown parameters and malformed items are skipped, and
 * numbers are capped, so any bytes give a defined result. */
#ifndef TW_HTTP_KEEPALIVE_H
#define TW_HTTP_KEEPALIVE_H

#include <stddef.h>
#include <stdint.h>

#define TW_KEEPALIVE_CAP 1000000000u /* larger numbers read as this */

struct tw_keepalive {
	int64_t timeout_s; /* -1 when absent */
	int64_t max;       /* -1 when absent */
};

/* Parse one Keep-Alive header value: comma-separated `name=value` items,
 * names case-insensitive, optional whitespace; the first valid item of a
 * name wins. */
void tw_keepalive_parse(const char *v, size_t len, struct tw_keepalive *out);

#endif
