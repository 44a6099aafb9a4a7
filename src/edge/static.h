/* static.h — `handler: static`: files under a root directory (docs/static.md).
 *
 * tw_static_serve() answers a routed request from the file system: it
 * writes the head (and a small body) to c->out and leaves the rest of the
 * file in r->sf, which step_local() drains through tw_static_fill(): sendfile
 * on a plain TCP socket, reads into c->out otherwise (TLS, HTTP/2). */
#ifndef TW_EDGE_STATIC_H
#define TW_EDGE_STATIC_H

#include <stdint.h>
#include <sys/types.h>
#include <time.h>

struct tw_conn;
struct tw_req;
struct tw_conf_route;
struct tw_fcache_ent;

struct tw_static_body {
	int fd;                   /* fce->fd: lent by the open-file cache */
	struct tw_fcache_ent *fce;
	uint8_t open;
	uint8_t fresh;            /* just opened and checked: the first piece skips the fstat */
	uint64_t off, left;       /* next file offset, bytes still to send */
	off_t size;               /* the file as it was opened: a change while */
	struct timespec mtime;    /* it is sent cuts the answer */
};

void tw_static_serve(struct tw_conn *c, struct tw_req *r, const char *buf);
/* fallback_static: answer like tw_static_serve when the path names a file
 * (or a directory's index file) under the route's root, and return 1;
 * otherwise answer nothing and return 0 (the request goes to the backend). */
int tw_static_try(struct tw_conn *c, struct tw_req *r, const char *buf);
/* More of the file toward the client: 1 progress, 0 blocked or nothing
 * left, a negative TW_E* when the answer must be cut (the file changed or
 * could not be read). */
int tw_static_fill(struct tw_conn *c);
void tw_static_release(struct tw_req *r); /* closes the file; safe without one */
int tw_static_conf_equal(const struct tw_conf_route *a, const struct tw_conf_route *b);

#endif
