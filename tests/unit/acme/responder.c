/* Unit tests for src/acme/responder.c: the HTTP-01 token table (also from
 * threads), path matching, the standalone server, the dns-01 hook runner. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <arpa/inet.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "acme/responder.h"

static void table(void **state)
{
	struct tw_acme_http01 *t = NULL;
	char out[TW_ACME_KEYAUTHZ_MAX + 1];
	size_t n = 0;
	assert_int_equal(tw_acme_http01_new(&t), 0);
	assert_int_equal(tw_acme_http01_set(t, "tok1", "tok1.thumb"), 0);
	assert_int_equal(tw_acme_http01_set(t, "tok2", "tok2.thumb"), 0);
	assert_int_equal(tw_acme_http01_lookup(t, "tok1xyz", 4, out, sizeof out, &n), 0);
	assert_string_equal(out, "tok1.thumb");
	assert_int_equal(n, 10);
	assert_int_equal(tw_acme_http01_lookup(t, "tok", 3, out, sizeof out, &n), TW_ENOENT);
	assert_int_equal(tw_acme_http01_lookup(t, "tok2", 4, out, 5, &n), TW_ELIMIT);
	assert_int_equal(tw_acme_http01_set(t, "tok1", "tok1.other"), 0); /* replace */
	assert_int_equal(tw_acme_http01_lookup(t, "tok1", 4, out, sizeof out, &n), 0);
	assert_string_equal(out, "tok1.other");
	assert_int_equal(tw_acme_http01_clear(t, "tok1"), 0);
	assert_int_equal(tw_acme_http01_clear(t, "tok1"), TW_ENOENT);
	assert_int_equal(tw_acme_http01_lookup(t, "tok1", 4, out, sizeof out, &n), TW_ENOENT);
	assert_int_equal(tw_acme_http01_lookup(t, "tok2", 4, out, sizeof out, &n), 0);
	assert_int_equal(tw_acme_http01_set(t, "", "x"), TW_EINVAL);
	struct tw_acme_responder r = tw_acme_http01_responder(t);
	assert_int_equal(r.http01_set(r.ctx, "viaresp", "v.k"), 0);
	assert_int_equal(tw_acme_http01_lookup(t, "viaresp", 7, out, sizeof out, &n), 0);
	assert_null(r.tlsalpn01_set);
	tw_acme_http01_free(t);
	tw_acme_http01_free(NULL);
}

static void match(void **state)
{
	const char *tok;
	size_t tl;
#define M(p) tw_acme_http01_match(p, strlen(p), &tok, &tl)
	assert_int_equal(M("/.well-known/acme-challenge/abc_-1"), 1);
	assert_int_equal(tl, 6);
	assert_memory_equal(tok, "abc_-1", 6);
	assert_int_equal(M("/.well-known/acme-challenge/abc?x=1"), 1);
	assert_int_equal(tl, 3);
	assert_int_equal(M("/.well-known/acme-challenge/"), 0);
	assert_int_equal(M("/.well-known/acme-challenge/a/b"), 0);
	assert_int_equal(M("/.well-known/acme-challengeX/a"), 0);
	assert_int_equal(M("/index.html"), 0);
#undef M
}

struct hammer {
	struct tw_acme_http01 *t;
	int id;
};

static void *hammer_main(void *arg)
{
	struct hammer *h = arg;
	char tok[32], ka[64], out[TW_ACME_KEYAUTHZ_MAX + 1];
	size_t n;
	for (int i = 0; i < 2000; i++) {
		snprintf(tok, sizeof tok, "t%d-%d", h->id, i % 50);
		snprintf(ka, sizeof ka, "%s.ka", tok);
		if (tw_acme_http01_set(h->t, tok, ka) != 0)
			return (void *)1;
		if (tw_acme_http01_lookup(h->t, tok, strlen(tok), out, sizeof out, &n) != 0 ||
		    strcmp(out, ka) != 0)
			return (void *)1;
		if (i % 3 == 0 && tw_acme_http01_clear(h->t, tok) != 0)
			return (void *)1;
	}
	return NULL;
}

static void threads(void **state)
{
	struct tw_acme_http01 *t = NULL;
	pthread_t th[4];
	struct hammer h[4];
	assert_int_equal(tw_acme_http01_new(&t), 0);
	for (int i = 0; i < 4; i++) {
		h[i].t = t;
		h[i].id = i;
		pthread_create(&th[i], NULL, hammer_main, &h[i]);
	}
	for (int i = 0; i < 4; i++) {
		void *rv;
		pthread_join(th[i], &rv);
		assert_null(rv);
	}
	tw_acme_http01_free(t);
}

static int http_get(int port, const char *req, char *out, size_t cap)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
	inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
	if (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0)
		return -1;
	send(fd, req, strlen(req), 0);
	size_t len = 0;
	ssize_t r;
	while (len < cap - 1 && (r = recv(fd, out + len, cap - 1 - len, 0)) > 0)
		len += (size_t)r;
	out[len] = '\0';
	close(fd);
	return 0;
}

static void server(void **state)
{
	struct tw_acme_http01 *t = NULL;
	struct tw_acme_http01_server *s = NULL;
	struct tw_addr a;
	struct tw_err e = {0};
	char buf[2048];
	assert_int_equal(tw_acme_http01_new(&t), 0);
	/* Find a free port by binding 0 first. */
	int probe = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in sa = {.sin_family = AF_INET};
	inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
	socklen_t sl = sizeof sa;
	bind(probe, (struct sockaddr *)&sa, sizeof sa);
	getsockname(probe, (struct sockaddr *)&sa, &sl);
	int port = ntohs(sa.sin_port);
	close(probe);
	char addr[32];
	snprintf(addr, sizeof addr, "127.0.0.1:%d", port);
	assert_int_equal(tw_addr_parse(addr, &a, &e), 0);
	assert_int_equal(tw_acme_http01_server_start(&a, t, &s, &e), 0);
	tw_acme_http01_set(t, "TOKEN_1", "TOKEN_1.abc");
	assert_int_equal(http_get(port,
	                          "GET /.well-known/acme-challenge/TOKEN_1 HTTP/1.1\r\nHost: "
	                          "x\r\n\r\n",
	                          buf, sizeof buf),
	                 0);
	assert_non_null(strstr(buf, "HTTP/1.1 200 OK\r\n"));
	assert_non_null(strstr(buf, "Content-Length: 11\r\n"));
	assert_non_null(strstr(buf, "\r\n\r\nTOKEN_1.abc"));
	http_get(port, "GET /.well-known/acme-challenge/OTHER HTTP/1.1\r\n\r\n", buf, sizeof buf);
	assert_non_null(strstr(buf, "404 Not Found"));
	http_get(port, "GET / HTTP/1.1\r\n\r\n", buf, sizeof buf);
	assert_non_null(strstr(buf, "404 Not Found"));
	http_get(port, "POST /.well-known/acme-challenge/TOKEN_1 HTTP/1.1\r\n\r\n", buf,
	         sizeof buf);
	assert_non_null(strstr(buf, "404 Not Found"));
	tw_acme_http01_server_stop(s);
	/* The port is free again. */
	assert_int_equal(tw_acme_http01_server_start(&a, t, &s, &e), 0);
	tw_acme_http01_server_stop(s);
	tw_acme_http01_server_stop(NULL);
	tw_acme_http01_free(t);
}

static void hook(void **state)
{
	char path[] = "/tmp/tw-acme-hook-XXXXXX";
	int fd = mkstemp(path);
	const char *script =
	    "#!/bin/sh\n"
	    "[ \"$1\" = set ] && [ \"$2\" = _acme-challenge.x.example ] && [ \"$3\" = VAL ] "
	    "&& exit 0\n"
	    "[ \"$1\" = slow ] && sleep 5\n"
	    "exit 3\n";
	assert_int_equal(write(fd, script, strlen(script)), (ssize_t)strlen(script));
	close(fd);
	chmod(path, 0700);
	struct tw_err e = {0};
	assert_int_equal(
	    tw_acme_hook_run(path, "set", "_acme-challenge.x.example", "VAL", 5000, &e), 0);
	assert_int_equal(
	    tw_acme_hook_run(path, "clear", "_acme-challenge.x.example", "VAL", 5000, &e), TW_EIO);
	assert_non_null(strstr(e.msg, "exited 3"));
	struct timespec t0, t1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	assert_int_equal(tw_acme_hook_run(path, "slow", "n", "v", 300, &e), TW_ETIMEDOUT);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	assert_true(t1.tv_sec - t0.tv_sec < 3);
	assert_int_equal(tw_acme_hook_run("/nonexistent/hook", "set", "n", "v", 300, &e), TW_EIO);
	unlink(path);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(table),  cmocka_unit_test(match), cmocka_unit_test(threads),
	    cmocka_unit_test(server), cmocka_unit_test(hook),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
