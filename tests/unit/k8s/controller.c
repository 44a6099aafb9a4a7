/* Unit tests for src/k8s/controller.c (with client.c, watch.c, lease.c)
 * against a scripted API server on loopback (plain HTTP, one thread per
 * connection): paged lists, a watch that adds an object and a bookmark, a
 * re-watch from the bookmark's resourceVersion answered by a 410 ERROR
 * event, the relist that drops the object added while watching, bearer
 * auth, Lease create + release, the leader's status PATCH and one Event. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "k8s/controller.h"

/* ---- the fake API server ---- */

static int lfd;
static int port;
static atomic_int srv_stop;
static pthread_mutex_t smu = PTHREAD_MUTEX_INITIALIZER;
static int ingress_watches;
static char watch2_query[1024];
static int pages_served;
static int unauthorized;
static char lease[4096]; /* the stored Lease, "" = none */
static int lease_rv;
static int status_patches, events_posted, lease_released;
static char last_patch[2048];
static int services_429;

static void sleep_ms(int ms)
{
	struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
	nanosleep(&ts, NULL);
}

static void send_all(int fd, const char *p, size_t n)
{
	while (n > 0) {
		ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
		if (w <= 0)
			return;
		p += w;
		n -= (size_t)w;
	}
}

static void respond(int fd, int status, const char *body)
{
	char h[256];
	int n = snprintf(h, sizeof h,
	                 "HTTP/1.1 %d X\r\nContent-Type: application/json\r\nContent-Length: "
	                 "%zu\r\nConnection: close\r\n\r\n",
	                 status, strlen(body));
	send_all(fd, h, (size_t)n);
	send_all(fd, body, strlen(body));
}

/* A watch: headers, then lines, then hold the connection open (hold=1)
 * until the client goes away or the server stops. */
static void stream(int fd, const char *lines, int hold)
{
	const char *h =
	    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n\r\n";
	send_all(fd, h, strlen(h));
	/* in small pieces, to cross chunk boundaries */
	for (size_t off = 0, n = strlen(lines); off < n; off += 7) {
		send_all(fd, lines + off, n - off < 7 ? n - off : 7);
		if (off % 70 == 0)
			sleep_ms(1);
	}
	while (hold && !atomic_load(&srv_stop)) {
		struct pollfd p = {fd, POLLIN, 0};
		if (poll(&p, 1, 100) > 0) {
			char b[64];
			if (recv(fd, b, sizeof b, 0) <= 0)
				break;
		}
	}
}

static const char *item(const char *name, const char *rv)
{
	static __thread char b[512];
	snprintf(b, sizeof b,
	         "{\"metadata\":{\"name\":\"%s\",\"namespace\":\"default\",\"resourceVersion\":\"%"
	         "s\",\"uid\":\"uid-%s\"},"
	         "\"spec\":{}}",
	         name, rv, name);
	return b;
}

static void handle(int fd, const char *method, const char *target, const char *body)
{
	char path[1024];
	const char *q = strchr(target, '?');
	size_t pl = q ? (size_t)(q - target) : strlen(target);
	snprintf(path, sizeof path, "%.*s", (int)pl, target);
	q = q ? q : "";
	int watch = strstr(q, "watch=1") != NULL;
	char buf[4096];
	if (strstr(path, "/leases")) {
		pthread_mutex_lock(&smu);
		if (strcmp(method, "GET") == 0) {
			if (lease[0])
				respond(fd, 200, lease);
			else
				respond(
				    fd, 404,
				    "{\"kind\":\"Status\",\"code\":404,\"message\":\"not found\"}");
		} else {
			json_t *l = json_loads(body, 0, NULL);
			const char *rv = json_string_value(
			    json_object_get(json_object_get(l, "metadata"), "resourceVersion"));
			char want[16];
			snprintf(want, sizeof want, "%d", lease_rv);
			if (strcmp(method, "PUT") == 0 && (rv == NULL || strcmp(rv, want) != 0)) {
				respond(fd, 409, "{\"kind\":\"Status\",\"code\":409}");
			} else {
				const char *holder = json_string_value(
				    json_object_get(json_object_get(l, "spec"), "holderIdentity"));
				if (strcmp(method, "PUT") == 0 && holder && holder[0] == '\0')
					lease_released = 1;
				snprintf(want, sizeof want, "%d", ++lease_rv);
				json_object_set_new(json_object_get(l, "metadata"),
				                    "resourceVersion", json_string(want));
				char *t = json_dumps(l, JSON_COMPACT);
				snprintf(lease, sizeof lease, "%s", t);
				free(t);
				respond(fd, strcmp(method, "POST") == 0 ? 201 : 200, lease);
			}
			json_decref(l);
		}
		pthread_mutex_unlock(&smu);
		return;
	}
	if (strcmp(method, "PATCH") == 0) {
		pthread_mutex_lock(&smu);
		status_patches++;
		snprintf(last_patch, sizeof last_patch, "%s %s", path, body);
		pthread_mutex_unlock(&smu);
		respond(fd, 200, "{}");
		return;
	}
	if (strcmp(method, "POST") == 0 && strstr(path, "/events")) {
		pthread_mutex_lock(&smu);
		events_posted++;
		pthread_mutex_unlock(&smu);
		respond(fd, 201, "{}");
		return;
	}
	if (strstr(path, "/ingresses") && strstr(path, "ingressclasses") == NULL) {
		if (watch) {
			pthread_mutex_lock(&smu);
			int nth = ++ingress_watches;
			if (nth == 2)
				snprintf(watch2_query, sizeof watch2_query, "%s", q);
			pthread_mutex_unlock(&smu);
			if (nth == 1) {
				snprintf(buf, sizeof buf,
				         "{\"type\":\"ADDED\",\"object\":%s}\n"
				         "{\"type\":\"BOOKMARK\",\"object\":{\"metadata\":{"
				         "\"resourceVersion\":\"14\"}}}\n",
				         item("c", "13"));
				stream(fd, buf, 0);
			} else if (nth == 2) {
				sleep_ms(300); /* let an apply see c first (bursts are coalesced) */
				stream(fd,
				       "{\"type\":\"ERROR\",\"object\":{\"kind\":\"Status\","
				       "\"code\":410,\"reason\":\"Expired\","
				       "\"message\":\"too old resource version\"}}\n",
				       0);
			} else {
				stream(fd, "", 1);
			}
			return;
		}
		pthread_mutex_lock(&smu);
		pages_served++;
		pthread_mutex_unlock(&smu);
		if (strstr(q, "continue=p2"))
			snprintf(buf, sizeof buf,
			         "{\"metadata\":{\"resourceVersion\":\"12\"},\"items\":[%s]}",
			         item("b", "11"));
		else
			snprintf(buf, sizeof buf,
			         "{\"metadata\":{\"resourceVersion\":\"12\",\"continue\":\"p2\"},"
			         "\"items\":[%s]}",
			         item("a", "10"));
		respond(fd, 200, buf);
		return;
	}
	if (watch) {
		stream(fd, "", 1);
		return;
	}
	if (strstr(path, "/services")) {
		pthread_mutex_lock(&smu);
		int busy = services_429 > 0 ? services_429-- : 0;
		pthread_mutex_unlock(&smu);
		if (busy) {
			const char *b =
			    "{\"kind\":\"Status\",\"code\":429,\"message\":\"slow down\"}";
			char h[256];
			int n = snprintf(h, sizeof h,
			                 "HTTP/1.1 429 X\r\nRetry-After: 2\r\nContent-Length: "
			                 "%zu\r\nConnection: close\r\n\r\n",
			                 strlen(b));
			send_all(fd, h, (size_t)n);
			send_all(fd, b, strlen(b));
			return;
		}
	}
	respond(fd, 200, "{\"metadata\":{\"resourceVersion\":\"5\"},\"items\":[]}");
}

static void *conn_main(void *arg)
{
	int fd = (int)(intptr_t)arg;
	char req[16384] = "";
	size_t n = 0;
	char *end = NULL;
	while (n < sizeof req - 1 && (end = strstr(req, "\r\n\r\n")) == NULL) {
		ssize_t r = recv(fd, req + n, sizeof req - 1 - n, 0);
		if (r <= 0)
			goto out;
		n += (size_t)r;
		req[n] = '\0';
	}
	if (end == NULL)
		goto out;
	size_t hlen = (size_t)(end - req) + 4, clen = 0;
	const char *cl = strcasestr(req, "\r\nContent-Length:");
	if (cl && cl < end)
		clen = strtoul(cl + 17, NULL, 10);
	while (n < hlen + clen && n < sizeof req - 1) {
		ssize_t r = recv(fd, req + n, sizeof req - 1 - n, 0);
		if (r <= 0)
			goto out;
		n += (size_t)r;
	}
	req[n] = '\0';
	char method[16], target[2048];
	if (sscanf(req, "%15s %2047s", method, target) != 2)
		goto out;
	const char *auth = strcasestr(req, "\r\nAuthorization: Bearer test-token\r\n");
	if (auth == NULL || auth > end) {
		pthread_mutex_lock(&smu);
		unauthorized++;
		pthread_mutex_unlock(&smu);
		respond(fd, 401, "{\"kind\":\"Status\",\"code\":401}");
		goto out;
	}
	handle(fd, method, target, req + hlen);
out:
	close(fd);
	return NULL;
}

static void *accept_main(void *arg)
{
	while (!atomic_load(&srv_stop)) {
		struct pollfd p = {lfd, POLLIN, 0};
		if (poll(&p, 1, 100) <= 0)
			continue;
		int fd = accept(lfd, NULL, NULL);
		if (fd < 0)
			continue;
		pthread_t t;
		if (pthread_create(&t, NULL, conn_main, (void *)(intptr_t)fd) == 0)
			pthread_detach(t);
		else
			close(fd);
	}
	return NULL;
}

/* ---- the edge's side ---- */

struct edge {
	struct tw_k8s_controller *ctl;
	atomic_int applies;
	atomic_int saw_c;
	atomic_int last_count;
};

static int apply(void *arg, struct tw_k8s_controller *ctl, const struct tw_k8s_view *v)
{
	struct edge *e = arg;
	size_t n = tw_k8s_store_count(v->ingresses);
	struct tw_k8s_ingress_report items[8];
	struct tw_k8s_report rep = {.items = items, .nitems = 0};
	for (size_t i = 0; i < n && i < 8; i++) {
		const struct tw_k8s_obj *o = tw_k8s_store_at(v->ingresses, i);
		if (strcmp(o->name, "c") == 0)
			atomic_store(&e->saw_c, 1);
		items[rep.nitems++] = (struct tw_k8s_ingress_report){
		    .ns = o->ns,
		    .name = o->name,
		    .verdict = strcmp(o->name, "a") == 0   ? TW_K8S_SERVED
		               : strcmp(o->name, "b") == 0 ? TW_K8S_REJECTED
		                                           : TW_K8S_NOT_OURS,
		    .reason = strcmp(o->name, "b") == 0 ? "bad annotation" : NULL,
		    .message =
		        strcmp(o->name, "b") == 0 ? "tapwork.dev/timeout: not a duration" : NULL};
	}
	atomic_store(&e->last_count, (int)n);
	atomic_fetch_add(&e->applies, 1);
	return tw_k8s_controller_report(ctl, &rep);
}

static int wait_for(int (*cond)(void *), void *arg, int ms)
{
	for (int t = 0; t < ms; t += 20) {
		if (cond(arg))
			return 1;
		sleep_ms(20);
	}
	return cond(arg);
}

static int relisted_without_c(void *arg)
{
	struct edge *e = arg;
	struct tw_k8s_controller_stats s;
	tw_k8s_controller_stats(e->ctl, &s);
	return atomic_load(&e->saw_c) && s.relists >= 1 && atomic_load(&e->last_count) == 2;
}

static int writes_done(void *arg)
{
	pthread_mutex_lock(&smu);
	int ok = status_patches >= 1 && events_posted >= 1;
	pthread_mutex_unlock(&smu);
	return ok;
}

static pthread_t server_start(void)
{
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t sl = sizeof sa;
	pthread_t at;
	atomic_store(&srv_stop, 0);
	pthread_mutex_lock(&smu);
	ingress_watches = pages_served = unauthorized = lease_rv = 0;
	status_patches = events_posted = lease_released = services_429 = 0;
	lease[0] = watch2_query[0] = last_patch[0] = '\0';
	pthread_mutex_unlock(&smu);
	lfd = socket(AF_INET, SOCK_STREAM, 0);
	assert_true(lfd >= 0);
	assert_int_equal(bind(lfd, (struct sockaddr *)&sa, sizeof sa), 0);
	assert_int_equal(listen(lfd, 64), 0);
	assert_int_equal(getsockname(lfd, (struct sockaddr *)&sa, &sl), 0);
	port = ntohs(sa.sin_port);
	assert_int_equal(pthread_create(&at, NULL, accept_main, NULL), 0);
	return at;
}

static void server_stop(pthread_t at)
{
	atomic_store(&srv_stop, 1);
	pthread_join(at, NULL);
	close(lfd);
	sleep_ms(200); /* let connection threads close */
}

static void write_text(const char *file, const char *text)
{
	FILE *f = fopen(file, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
}

/* A rotated token (401 -> re-read the file -> retry) and a 429 with
 * Retry-After: 2 (the informer waits that long, not 1 s). */
static void token_and_retry_after(void **state)
{
	pthread_t at = server_start();
	pthread_mutex_lock(&smu);
	services_429 = 1;
	pthread_mutex_unlock(&smu);
	char dir[] = "/tmp/tw-k8s-ctl2-XXXXXX";
	assert_non_null(mkdtemp(dir));
	char kc[256], tok[256], text[1024];
	snprintf(kc, sizeof kc, "%s/config", dir);
	snprintf(tok, sizeof tok, "%s/token", dir);
	write_text(tok, "old-token\n");
	snprintf(text, sizeof text,
	         "current-context: t\n"
	         "contexts: [{name: t, context: {cluster: c, user: u}}]\n"
	         "clusters: [{name: c, cluster: {server: \"http://127.0.0.1:%d\"}}]\n"
	         "users: [{name: u, user: {tokenFile: token}}]\n",
	         port);
	write_text(kc, text);
	struct tw_conf_k8s conf = {
	    .kubeconfig = kc, .lease_namespace = "default", .identity = "pod-2"};
	static struct edge e;
	struct tw_k8s_controller_cbs cbs = {.apply = apply, .arg = &e};
	struct tw_err err = {0};
	struct tw_k8s_controller *ctl = NULL;
	struct timespec t0, t1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	if (tw_k8s_controller_start(&conf, &cbs, &ctl, &err) != 0)
		fail_msg("start: %s", err.msg);
	sleep_ms(100);
	write_text(tok, "test-token\n");
	assert_int_equal(tw_k8s_controller_wait_synced(ctl, 10000), 0);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	double secs = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
	assert_true(secs >= 1.9); /* Retry-After: 2 was honoured */
	pthread_mutex_lock(&smu);
	assert_true(unauthorized > 0);
	assert_int_equal(services_429, 0);
	pthread_mutex_unlock(&smu);
	struct tw_k8s_controller_stats s;
	tw_k8s_controller_stats(ctl, &s);
	assert_true(s.watch_errors >= 1);
	tw_k8s_controller_stop(ctl);
	server_stop(at);
	unlink(kc);
	unlink(tok);
	rmdir(dir);
}

static void end_to_end(void **state)
{
	pthread_t at = server_start();

	char kc[] = "/tmp/tw-k8s-ctl-XXXXXX";
	int kfd = mkstemp(kc);
	assert_true(kfd >= 0);
	char text[1024];
	int tl = snprintf(text, sizeof text,
	                  "current-context: t\n"
	                  "contexts: [{name: t, context: {cluster: c, user: u}}]\n"
	                  "clusters: [{name: c, cluster: {server: \"http://127.0.0.1:%d\"}}]\n"
	                  "users: [{name: u, user: {token: test-token}}]\n",
	                  port);
	assert_int_equal(write(kfd, text, (size_t)tl), tl);
	close(kfd);

	char *pub[] = {"203.0.113.7"};
	struct tw_conf_k8s conf = {.kubeconfig = kc,
	                           .ingress = {.publish_address = pub, .npublish_address = 1},
	                           .lease_name = "tapwork-leader",
	                           .lease_namespace = "default",
	                           .lease_duration_ms = 15000,
	                           .identity = "test-pod"};
	static struct edge e;
	struct tw_k8s_controller_cbs cbs = {.apply = apply, .arg = &e};
	struct tw_err err = {0};
	struct tw_k8s_controller *ctl = NULL;
	int rc = tw_k8s_controller_start(&conf, &cbs, &ctl, &err);
	if (rc != 0)
		fail_msg("start: %s", err.msg);
	e.ctl = ctl;
	assert_int_equal(tw_k8s_controller_wait_synced(ctl, 10000), 0);
	assert_true(tw_k8s_controller_synced(ctl));
	if (!wait_for(relisted_without_c, &e, 10000))
		fail_msg("no relist dropping c: saw_c=%d count=%d", atomic_load(&e.saw_c),
		         atomic_load(&e.last_count));
	if (!wait_for(writes_done, NULL, 10000))
		fail_msg("no status/event writes: patches=%d events=%d", status_patches,
		         events_posted);
	assert_true(tw_k8s_controller_leader(ctl));
	sleep_ms(300);
	pthread_mutex_lock(&smu);
	assert_true(pages_served >= 4); /* two pages, twice */
	assert_non_null(strstr(watch2_query, "resourceVersion=14"));
	assert_non_null(strstr(watch2_query, "allowWatchBookmarks=true"));
	assert_non_null(strstr(last_patch, "/namespaces/default/ingresses/a/status"));
	assert_non_null(strstr(last_patch, "203.0.113.7"));
	assert_int_equal(events_posted, 1); /* once per (ingress, resourceVersion) */
	assert_int_equal(unauthorized, 0);
	pthread_mutex_unlock(&smu);

	struct tw_k8s_controller_stats s;
	tw_k8s_controller_stats(ctl, &s);
	assert_int_equal(s.objects[0], 2);
	assert_true(s.applies_ok >= 2);
	assert_true(s.last_sync_age_ms < 60000);
	struct tw_dbuf m;
	tw_dbuf_init(&m, 1 << 20);
	assert_int_equal(tw_k8s_controller_metrics(ctl, &m), 0);
	assert_non_null(strstr(m.data, "tapwork_k8s_objects{kind=\"ingresses\"} 2\n"));
	assert_non_null(strstr(m.data, "tapwork_k8s_leader 1\n"));
	tw_dbuf_free(&m);

	struct timespec t0, t1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	tw_k8s_controller_stop(ctl);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	assert_true(t1.tv_sec - t0.tv_sec < 5); /* watches are interrupted */
	pthread_mutex_lock(&smu);
	assert_int_equal(lease_released, 1);
	pthread_mutex_unlock(&smu);

	server_stop(at);
	unlink(kc);
}

static void start_errors(void **state)
{
	struct tw_conf_k8s conf = {.kubeconfig = "/nonexistent/kubeconfig"};
	struct tw_k8s_controller_cbs cbs = {0};
	struct tw_k8s_controller *ctl = NULL;
	struct tw_err err = {0};
	assert_int_equal(tw_k8s_controller_start(&conf, &cbs, &ctl, &err), TW_ENOENT);
	assert_non_null(strstr(err.msg, "/nonexistent/kubeconfig"));
	assert_null(ctl);
	tw_k8s_controller_stop(NULL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(start_errors),
	    cmocka_unit_test(end_to_end),
	    cmocka_unit_test(token_and_retry_after),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
