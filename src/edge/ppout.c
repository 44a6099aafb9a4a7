/* ppout.c — the PROXY header tapwork sends to upstream servers configured
 * with `send_proxy: v1|v2` (docs/proxy-protocol.md).
 *
 * Source: the client connection's client address (a PROXY header's, when
 * one came in). Destination: the address the client reached — the client
 * socket's local address, or for an HTTP/2 stream (no socket of its own) the
 * listener's configured address. */
#include "edge/ppout.h"

#include "edge/edge.h"
#include "edge/proxyproto.h"

#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

int tw_ppout_make(const struct tw_conn *c, int version, char **out, uint16_t *len)
{
	struct sockaddr_storage dst;
	socklen_t dl = sizeof dst;
	memset(&dst, 0, sizeof dst);
	if (c->virt || c->io.fd < 0 || getsockname(c->io.fd, (struct sockaddr *)&dst, &dl) != 0) {
		const struct tw_addr *a = c->fops->secure ? &c->w->laddr_tls : &c->w->laddr;
		memcpy(&dst, &a->ss, a->len <= sizeof dst ? a->len : sizeof dst);
	}
	char buf[128];
	size_t n = version == TW_SEND_PROXY_V1
			   ? tw_pp_write_v1(buf, sizeof buf, (const struct sockaddr *)&c->peer, (const struct sockaddr *)&dst)
			   : tw_pp_write_v2(buf, sizeof buf, (const struct sockaddr *)&c->peer,
					    (const struct sockaddr *)&dst, NULL);
	if (n == 0)
		return TW_EINVAL;
	char *p = malloc(n);
	if (p == NULL)
		return TW_ENOMEM;
	memcpy(p, buf, n);
	*out = p;
	*len = (uint16_t)n;
	return 0;
}
