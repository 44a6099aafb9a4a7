/* ppout.h — PROXY headers to upstream servers (`send_proxy`). */
#ifndef TW_EDGE_PPOUT_H
#define TW_EDGE_PPOUT_H

#include <stdint.h>

struct tw_conn;

/* The header for a new upstream connection on behalf of client connection c
 * (version: TW_SEND_PROXY_V1 or _V2). *out is malloc'd (the caller frees). */
int tw_ppout_make(const struct tw_conn *c, int version, char **out, uint16_t *len);

#endif
