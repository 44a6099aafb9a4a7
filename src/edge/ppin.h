/* ppin.h — accepting connections that start with a PROXY protocol header.
 *
 * Between accept() and the connection proper (struct tw_conn), a peer in
 * proxy_protocol.from is a small struct tw_ppwait (no buffers, no parser
 * state: a few hundred bytes) until its header is complete. The header is
 * read with MSG_PEEK and parsed from its first byte on each arrival (it is
 * at most 4 KiB); once whole, exactly its bytes are taken off the socket, so
 * TLS and HTTP start on the byte after it. Then tw_conn_accept() runs with
 * the header's client address (or the socket's, for LOCAL/UNKNOWN/UNSPEC).
 * A bad header, EOF or the timeout closes the socket without an answer.
 * Everything runs on the accepting worker's thread. */
#ifndef TW_EDGE_PPIN_H
#define TW_EDGE_PPIN_H

#include <sys/socket.h>

struct tw_worker;
struct tw_front_ops;

/* Register the metrics (main thread, before the workers start). */
void tw_ppin_init(void);
/* Instead of tw_conn_accept: decides by the worker's current config whether
 * a header is due on this listener from this peer. */
void tw_ppin_accept(struct tw_worker *w, int fd, const struct sockaddr *sa, socklen_t len,
		    const struct tw_front_ops *fops);
/* Close every connection still waiting for its header (drain, exit). */
void tw_ppin_drain(struct tw_worker *w);

#endif
