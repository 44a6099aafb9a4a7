/* client.h — a small blocking Kubernetes API client (libcurl + jansson).
 *
 * One client = one curl handle: use it from one thread at a time (each
 * informer and the leader loop own one). Calls block, so they never run on
 * the edge's worker threads. Authentication: bearer token (static, or a
 * token file re-read every TW_K8S_TOKEN_REREAD_S and after any 401) or a
 * client certificate; the server is verified against the kubeconfig's CA
 * (or the system roots) unless insecure-skip-tls-verify. A stop flag, when
 * set, aborts a call in progress within about a second (TW_ECANCELED). */
#ifndef TW_K8S_CLIENT_H
#define TW_K8S_CLIENT_H

#include "core/err.h"
#include "k8s/kubeconfig.h"

#include <jansson.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#define TW_K8S_TOKEN_REREAD_S 120
#define TW_K8S_MAX_BODY (64u << 20) /* bytes of one (list) response */

struct tw_k8s_client;

/* One response: status, parsed JSON body (owned; NULL when the body is
 * empty or not JSON), Retry-After in seconds (0 = none). */
struct tw_k8s_resp {
	long status;
	json_t *body;
	uint64_t retry_after_s;
};
void tw_k8s_resp_clear(struct tw_k8s_resp *r); /* NULL ok */

/* kc is copied. stop may be NULL. */
int tw_k8s_client_new(const struct tw_k8s_kubeconfig *kc, const atomic_int *stop,
                      struct tw_k8s_client **out, struct tw_err *err);
void tw_k8s_client_free(struct tw_k8s_client *c); /* NULL ok */

/* Per-call timeout (default 30 s; 0 = none, for watches). */
void tw_k8s_client_set_timeout(struct tw_k8s_client *c, unsigned ms);
/* Re-read the token file now (after a 401). 0, or the read error. */
int tw_k8s_client_reload_token(struct tw_k8s_client *c, struct tw_err *err);

/* method: GET POST PUT PATCH DELETE. path: "/api/v1/..." with any query
 * already escaped (see tw_k8s_client_query). body may be NULL; PATCH sends
 * application/merge-patch+json, others application/json. An HTTP error
 * status is not a failure: the return is 0 and r->status says it; failure
 * is a transport error (TW_EIO, TW_ETIMEDOUT, TW_ECANCELED, TW_ELIMIT). */
int tw_k8s_client_request(struct tw_k8s_client *c, const char *method, const char *path,
                          const json_t *body, struct tw_k8s_resp *r, struct tw_err *err);

/* A streamed GET (watch): on_data gets each slice of the body of a 2xx
 * response and returns 0 to go on or a negative TW_E* to stop (returned
 * from here). A non-2xx body is parsed into r->body instead. */
typedef int (*tw_k8s_data_fn)(void *arg, const char *p, size_t n);
int tw_k8s_client_stream(struct tw_k8s_client *c, const char *path, tw_k8s_data_fn on_data,
                         void *arg, struct tw_k8s_resp *r, struct tw_err *err);

/* Append "name=value" (value URL-escaped) to a query in q (capacity cap),
 * with '?' or '&' as needed. 0 or TW_ELIMIT. */
int tw_k8s_client_query(char *q, size_t cap, const char *name, const char *value);

/* The Status message of an error body ("" when none), for logs. */
const char *tw_k8s_status_message(const json_t *body);

#endif
