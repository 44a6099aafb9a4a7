/* lease.c — leader election on a coordination.k8s.io/v1 Lease. See lease.h. */
#include "k8s/lease.h"

#include "core/log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const action_names[] = {"wait", "create", "take", "renew"};

const char *tw_k8s_lease_action_name(enum tw_k8s_lease_action a)
{
	return (unsigned)a < 4 ? action_names[a] : "?";
}

int tw_k8s_lease_parse(const json_t *lease, struct tw_k8s_lease_obs *o)
{
	memset(o, 0, sizeof *o);
	if (lease == NULL)
		return 0;
	json_t *md = json_object_get(lease, "metadata"), *spec = json_object_get(lease, "spec");
	const char *rv = json_string_value(json_object_get(md, "resourceVersion"));
	if (!json_is_object(lease) || rv == NULL || strlen(rv) >= sizeof o->rv)
		return TW_EPROTO;
	o->exists = 1;
	snprintf(o->rv, sizeof o->rv, "%s", rv);
	const char *h = json_string_value(json_object_get(spec, "holderIdentity"));
	if (h && strlen(h) < sizeof o->holder)
		snprintf(o->holder, sizeof o->holder, "%s", h);
	else if (h) /* too long to be ours: someone else's */
		snprintf(o->holder, sizeof o->holder, "%.*s", (int)sizeof o->holder - 1, h);
	json_t *d = json_object_get(spec, "leaseDurationSeconds");
	if (json_is_integer(d) && json_integer_value(d) > 0 && json_integer_value(d) < 86400 * 365)
		o->duration_ms = (uint64_t)json_integer_value(d) * 1000u;
	json_t *t = json_object_get(spec, "leaseTransitions");
	if (json_is_integer(t) && json_integer_value(t) >= 0 && json_integer_value(t) < 0x7fffffff)
		o->transitions = (unsigned)json_integer_value(t);
	return 0;
}

void tw_k8s_lease_observe(struct tw_k8s_lease_clock *ck, const struct tw_k8s_lease_obs *o,
                          uint64_t now_ms)
{
	if (!o->exists) {
		ck->seen_rv[0] = '\0';
		ck->seen_at_ms = now_ms;
		return;
	}
	if (strcmp(ck->seen_rv, o->rv) != 0) {
		snprintf(ck->seen_rv, sizeof ck->seen_rv, "%s", o->rv);
		ck->seen_at_ms = now_ms;
	}
}

enum tw_k8s_lease_action tw_k8s_lease_decide(const struct tw_k8s_lease_clock *ck,
                                             const struct tw_k8s_lease_obs *o, const char *identity,
                                             uint64_t now_ms, uint64_t def_duration_ms)
{
	if (!o->exists)
		return TW_K8S_LEASE_CREATE;
	if (strcmp(o->holder, identity) == 0)
		return TW_K8S_LEASE_RENEW;
	if (o->holder[0] == '\0')
		return TW_K8S_LEASE_TAKE;
	uint64_t dur = o->duration_ms ? o->duration_ms : def_duration_ms;
	/* only a version we have watched standing still for a whole duration
	 * is expired; a version we have not seen yet is fresh */
	if (strcmp(ck->seen_rv, o->rv) == 0 && now_ms >= ck->seen_at_ms &&
	    now_ms - ck->seen_at_ms >= dur)
		return TW_K8S_LEASE_TAKE;
	return TW_K8S_LEASE_WAIT;
}

int tw_k8s_lease_is_leader(const struct tw_k8s_lease_clock *ck, uint64_t now_ms,
                           uint64_t duration_ms)
{
	return ck->renewed_at_ms != 0 && now_ms >= ck->renewed_at_ms &&
	       now_ms - ck->renewed_at_ms < duration_ms;
}

void tw_k8s_time_micro(const struct timespec *t, char *buf, size_t len)
{
	struct tm tm;
	time_t s = t->tv_sec;
	gmtime_r(&s, &tm);
	snprintf(buf, len, "%04d-%02d-%02dT%02d:%02d:%02d.%06ldZ", tm.tm_year + 1900, tm.tm_mon + 1,
	         tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, t->tv_nsec / 1000);
}

/* ---- HTTP glue ----------------------------------------------------------- */

struct tw_k8s_lease {
	struct tw_k8s_client *c;
	char *ns, *name, *identity;
	uint64_t duration_ms;
	struct tw_k8s_lease_clock ck;
	char path[1024]; /* the Lease */
	char coll[1024]; /* its collection */
	int was_leader;
};

int tw_k8s_lease_new(struct tw_k8s_client *c, const char *ns, const char *name,
                     const char *identity, uint64_t duration_ms, struct tw_k8s_lease **out)
{
	if (duration_ms < 1000 || ns == NULL || name == NULL || identity == NULL ||
	    identity[0] == '\0' || strlen(ns) > 253 || strlen(name) > 253 ||
	    strlen(identity) >= 256)
		return TW_EINVAL;
	struct tw_k8s_lease *l = calloc(1, sizeof *l);
	if (l == NULL)
		return TW_ENOMEM;
	l->c = c;
	l->ns = strdup(ns);
	l->name = strdup(name);
	l->identity = strdup(identity);
	l->duration_ms = duration_ms;
	if (l->ns == NULL || l->name == NULL || l->identity == NULL) {
		tw_k8s_lease_free(l);
		return TW_ENOMEM;
	}
	snprintf(l->coll, sizeof l->coll, "/apis/coordination.k8s.io/v1/namespaces/%s/leases", ns);
	snprintf(l->path, sizeof l->path, "%s/%s", l->coll, name);
	*out = l;
	return 0;
}

void tw_k8s_lease_free(struct tw_k8s_lease *l)
{
	if (l == NULL)
		return;
	free(l->ns);
	free(l->name);
	free(l->identity);
	free(l);
}

uint64_t tw_k8s_lease_period_ms(const struct tw_k8s_lease *l)
{
	return l->duration_ms / 3;
}

/* The Lease we write: cur (may be NULL) with our spec. */
static json_t *lease_body(struct tw_k8s_lease *l, const json_t *cur,
                          const struct tw_k8s_lease_obs *o, enum tw_k8s_lease_action a)
{
	struct timespec now;
	char ts[40];
	clock_gettime(CLOCK_REALTIME, &now);
	tw_k8s_time_micro(&now, ts, sizeof ts);
	json_t *b =
	    cur ? json_deep_copy(cur)
	        : json_pack("{s:s, s:s, s:{s:s, s:s}}", "apiVersion", "coordination.k8s.io/v1",
	                    "kind", "Lease", "metadata", "name", l->name, "namespace", l->ns);
	if (b == NULL)
		return NULL;
	json_t *spec = json_object_get(b, "spec");
	if (!json_is_object(spec)) {
		spec = json_object();
		json_object_set_new(b, "spec", spec);
	}
	json_object_del(b, "status");
	json_object_set_new(spec, "holderIdentity", json_string(l->identity));
	json_object_set_new(spec, "leaseDurationSeconds",
	                    json_integer((json_int_t)((l->duration_ms + 999) / 1000)));
	json_object_set_new(spec, "renewTime", json_string(ts));
	if (a != TW_K8S_LEASE_RENEW || json_object_get(spec, "acquireTime") == NULL)
		json_object_set_new(spec, "acquireTime", json_string(ts));
	json_object_set_new(spec, "leaseTransitions",
	                    json_integer(a == TW_K8S_LEASE_TAKE && o->holder[0]
	                                     ? (json_int_t)o->transitions + 1
	                                     : (json_int_t)o->transitions));
	return b;
}

int tw_k8s_lease_step(struct tw_k8s_lease *l, uint64_t now_ms, int *leader, struct tw_err *err)
{
	struct tw_k8s_resp r;
	struct tw_k8s_lease_obs o;
	int rc = tw_k8s_client_request(l->c, "GET", l->path, NULL, &r, err);
	if (rc == 0 && r.status != 200 && r.status != 404)
		rc = tw_err_set(err, TW_EIO, "GET lease %s/%s: HTTP %ld %s", l->ns, l->name,
		                r.status, tw_k8s_status_message(r.body));
	if (rc == 0 && tw_k8s_lease_parse(r.status == 200 ? r.body : NULL, &o) < 0)
		rc = tw_err_set(err, TW_EPROTO, "lease %s/%s: no resourceVersion", l->ns, l->name);
	if (rc < 0) {
		tw_k8s_resp_clear(&r);
		goto out;
	}
	tw_k8s_lease_observe(&l->ck, &o, now_ms);
	enum tw_k8s_lease_action a =
	    tw_k8s_lease_decide(&l->ck, &o, l->identity, now_ms, l->duration_ms);
	if (a == TW_K8S_LEASE_WAIT) {
		l->ck.renewed_at_ms = 0;
		tw_k8s_resp_clear(&r);
		goto out;
	}
	json_t *b = lease_body(l, r.status == 200 ? r.body : NULL, &o, a);
	tw_k8s_resp_clear(&r);
	if (b == NULL)
		return TW_ENOMEM;
	rc = tw_k8s_client_request(l->c, a == TW_K8S_LEASE_CREATE ? "POST" : "PUT",
	                           a == TW_K8S_LEASE_CREATE ? l->coll : l->path, b, &r, err);
	json_decref(b);
	if (rc == 0) {
		if (r.status == 200 || r.status == 201) {
			l->ck.renewed_at_ms = now_ms;
			struct tw_k8s_lease_obs mine;
			if (tw_k8s_lease_parse(r.body, &mine) == 0)
				tw_k8s_lease_observe(&l->ck, &mine, now_ms);
		} else if (r.status == 409) { /* another replica wrote first */
			l->ck.renewed_at_ms = 0;
			tw_debug("[k8s lease] %s lost the race for %s/%s",
			         tw_k8s_lease_action_name(a), l->ns, l->name);
		} else {
			rc = tw_err_set(err, TW_EIO, "%s lease %s/%s: HTTP %ld %s",
			                tw_k8s_lease_action_name(a), l->ns, l->name, r.status,
			                tw_k8s_status_message(r.body));
		}
	}
	tw_k8s_resp_clear(&r);
out:
	*leader = tw_k8s_lease_is_leader(&l->ck, now_ms, l->duration_ms);
	if (*leader != l->was_leader)
		tw_info("[k8s lease] %s/%s: %s is %s", l->ns, l->name, l->identity,
		        *leader ? "now the leader" : "no longer the leader");
	l->was_leader = *leader;
	return rc;
}

int tw_k8s_lease_release(struct tw_k8s_lease *l, struct tw_err *err)
{
	struct tw_k8s_resp r;
	if (l->ck.renewed_at_ms == 0)
		return 0;
	l->ck.renewed_at_ms = 0;
	l->was_leader = 0;
	int rc = tw_k8s_client_request(l->c, "GET", l->path, NULL, &r, err);
	if (rc < 0)
		return rc;
	const char *h =
	    json_string_value(json_object_get(json_object_get(r.body, "spec"), "holderIdentity"));
	if (r.status != 200 || h == NULL || strcmp(h, l->identity) != 0) {
		tw_k8s_resp_clear(&r);
		return 0;
	}
	json_t *b = json_deep_copy(r.body);
	tw_k8s_resp_clear(&r);
	if (b == NULL)
		return TW_ENOMEM;
	json_t *spec = json_object_get(b, "spec");
	json_object_set_new(spec, "holderIdentity", json_string(""));
	json_object_set_new(spec, "leaseDurationSeconds", json_integer(1));
	rc = tw_k8s_client_request(l->c, "PUT", l->path, b, &r, err);
	json_decref(b);
	if (rc == 0 && r.status != 200)
		rc = tw_err_set(err, TW_EIO, "release lease %s/%s: HTTP %ld", l->ns, l->name,
		                r.status);
	if (rc == 0)
		tw_info("[k8s lease] %s/%s released by %s", l->ns, l->name, l->identity);
	tw_k8s_resp_clear(&r);
	return rc;
}
