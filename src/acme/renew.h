/* renew.h — when to renew a certificate and how long to wait after a
 * failure. Pure functions of their inputs (time and randomness are
 * parameters) so the unit tests can drive them with tables.
 *
 * Window without ARI: let L = notAfter - notBefore. Renewal is due when a
 * third of L is left (half of L when L < 10 days); the window is
 * [notAfter - L/3, notAfter - L/3 + L/20] (resp. L/2). With ARI the
 * server's suggestedWindow is used instead. Either way the time is
 * clamped so it never falls inside the last twentieth of L
 * (notAfter - L/20): there is always a twentieth left to retry in.
 * `jitter` in [0,1) picks the point inside the window. */
#ifndef TW_ACME_RENEW_H
#define TW_ACME_RENEW_H

#include <stdint.h>
#include <time.h>

struct tw_acme_window {
	time_t start, end;
};

/* The default (non-ARI) window of a certificate. */
struct tw_acme_window tw_acme_renew_window(time_t not_before, time_t not_after);
/* The moment to renew: inside `w` (the ARI window when has_ari, else the
 * default one) at `jitter` in [0,1), clamped to notAfter - L/20. */
time_t tw_acme_renew_at(time_t not_before, time_t not_after, int has_ari, struct tw_acme_window ari,
                        double jitter);

/* Delay before retry number `failures` (1 = first failure): 1 min doubled
 * per failure up to 6 h; a server Retry-After (seconds, 0 = none) longer
 * than that wins, without cap. */
uint64_t tw_acme_backoff_s(unsigned failures, uint64_t retry_after_s);
/* The same starting at min_s instead of 1 min (`acme: retry_min`). */
uint64_t tw_acme_backoff_from(unsigned failures, uint64_t retry_after_s, uint64_t min_s);

/* Retry-After header value: delta seconds or an HTTP-date. Seconds from now. */
int tw_acme_parse_retry_after(const char *v, time_t now, uint64_t *out_s);

#endif
