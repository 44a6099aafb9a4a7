/* responder.c — HTTP-01 token table and server, dns-01 hook. See responder.h. */
#include "acme/responder.h"

#include "core/log.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

#define HTTP01_MAX_TOKENS 1024

struct entry {
	char token[TW_ACME_TOKEN_MAX + 1];
	char authz[TW_ACME_KEYAUTHZ_MAX + 1];
	size_t toklen, authzlen;
};

struct tw_acme_http01 {
	pthread_mutex_t mu;
	struct entry *e;
	size_t n, cap;
};

int tw_acme_http01_new(struct tw_acme_http01 **out)
{
	struct tw_acme_http01 *t = calloc(1, sizeof *t);
	if (t == NULL)
		return TW_ENOMEM;
	pthread_mutex_init(&t->mu, NULL);
	*out = t;
	return 0;
}

void tw_acme_http01_free(struct tw_acme_http01 *t)
{
	if (t == NULL)
		return;
	pthread_mutex_destroy(&t->mu);
	free(t->e);
	free(t);
}

static ssize_t find(struct tw_acme_http01 *t, const char *tok, size_t len)
{
	for (size_t i = 0; i < t->n; i++)
		if (t->e[i].toklen == len && memcmp(t->e[i].token, tok, len) == 0)
			return (ssize_t)i;
	return -1;
}

int tw_acme_http01_set(struct tw_acme_http01 *t, const char *token, const char *key_authz)
{
	size_t tl = strlen(token), al = strlen(key_authz);
	if (tl == 0 || tl > TW_ACME_TOKEN_MAX || al > TW_ACME_KEYAUTHZ_MAX)
		return TW_EINVAL;
	int rc = 0;
	pthread_mutex_lock(&t->mu);
	ssize_t i = find(t, token, tl);
	if (i < 0) {
		if (t->n == HTTP01_MAX_TOKENS) {
			rc = TW_ELIMIT;
			goto out;
		}
		if (t->n == t->cap) {
			size_t nc = t->cap ? t->cap * 2 : 8;
			struct entry *ne = realloc(t->e, nc * sizeof *ne);
			if (ne == NULL) {
				rc = TW_ENOMEM;
				goto out;
			}
			t->e = ne;
			t->cap = nc;
		}
		i = (ssize_t)t->n++;
	}
	struct entry *e = &t->e[i];
	memcpy(e->token, token, tl + 1);
	memcpy(e->authz, key_authz, al + 1);
	e->toklen = tl;
	e->authzlen = al;
out:
	pthread_mutex_unlock(&t->mu);
	return rc;
}

int tw_acme_http01_clear(struct tw_acme_http01 *t, const char *token)
{
	int rc = TW_ENOENT;
	pthread_mutex_lock(&t->mu);
	ssize_t i = find(t, token, strlen(token));
	if (i >= 0) {
		t->e[i] = t->e[--t->n];
		rc = 0;
	}
	pthread_mutex_unlock(&t->mu);
	return rc;
}

int tw_acme_http01_lookup(struct tw_acme_http01 *t, const char *token, size_t tokenlen, char *out,
                          size_t outcap, size_t *outlen)
{
	int rc = TW_ENOENT;
	pthread_mutex_lock(&t->mu);
	ssize_t i = find(t, token, tokenlen);
	if (i >= 0) {
		struct entry *e = &t->e[i];
		if (e->authzlen + 1 > outcap) {
			rc = TW_ELIMIT;
		} else {
			memcpy(out, e->authz, e->authzlen + 1);
			*outlen = e->authzlen;
			rc = 0;
		}
	}
	pthread_mutex_unlock(&t->mu);
	return rc;
}

int tw_acme_http01_match(const char *path, size_t len, const char **token, size_t *toklen)
{
	const size_t pl = sizeof TW_ACME_HTTP01_PREFIX - 1;
	if (len <= pl || memcmp(path, TW_ACME_HTTP01_PREFIX, pl) != 0)
		return 0;
	size_t n = 0;
	while (pl + n < len && path[pl + n] != '?')
		n++;
	if (n == 0 || n > TW_ACME_TOKEN_MAX || memchr(path + pl, '/', n) != NULL)
		return 0;
	*token = path + pl;
	*toklen = n;
	return 1;
}

static int resp_set(void *ctx, const char *token, const char *key_authz)
{
	return tw_acme_http01_set(ctx, token, key_authz);
}

static int resp_clear(void *ctx, const char *token)
{
	return tw_acme_http01_clear(ctx, token);
}

struct tw_acme_responder tw_acme_http01_responder(struct tw_acme_http01 *t)
{
	struct tw_acme_responder r = {.ctx = t, .http01_set = resp_set, .http01_clear = resp_clear};
	return r;
}

/* ---- standalone HTTP-01 server ---------------------------------------- */

struct tw_acme_http01_server {
	int lfd;
	int stop[2];
	pthread_t thr;
	struct tw_acme_http01 *t;
};

static uint64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
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

/* One connection: read the request head (<= 4 KiB, 3 s), answer, close. */
static void serve_one(struct tw_acme_http01_server *s, int fd)
{
	char buf[4096];
	size_t len = 0;
	uint64_t deadline = now_ms() + 3000;
	while (len < sizeof buf - 1) {
		if (memmem(buf, len, "\r\n\r\n", 4) != NULL || memmem(buf, len, "\n\n", 2) != NULL)
			break;
		uint64_t n = now_ms();
		if (n >= deadline)
			return;
		struct pollfd p = {.fd = fd, .events = POLLIN};
		if (poll(&p, 1, (int)(deadline - n)) <= 0)
			return;
		ssize_t r = recv(fd, buf + len, sizeof buf - 1 - len, 0);
		if (r <= 0)
			return;
		len += (size_t)r;
	}
	const char *sp1 = memchr(buf, ' ', len);
	const char *sp2 = sp1 ? memchr(sp1 + 1, ' ', len - (size_t)(sp1 + 1 - buf)) : NULL;
	char authz[TW_ACME_KEYAUTHZ_MAX + 1];
	size_t alen = 0;
	const char *tok;
	size_t toklen;
	int found = 0;
	int get = sp1 && ((sp1 - buf == 3 && memcmp(buf, "GET", 3) == 0) ||
	                  (sp1 - buf == 4 && memcmp(buf, "HEAD", 4) == 0));
	if (get && sp2 && tw_acme_http01_match(sp1 + 1, (size_t)(sp2 - sp1 - 1), &tok, &toklen) &&
	    tw_acme_http01_lookup(s->t, tok, toklen, authz, sizeof authz, &alen) == 0)
		found = 1;
	char head[256];
	int hl;
	if (found)
		hl = snprintf(
		    head, sizeof head,
		    "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: %zu\r\n"
		    "Connection: close\r\n\r\n",
		    alen);
	else
		hl = snprintf(
		    head, sizeof head,
		    "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
	tw_debug("[acme-http01] %.*s -> %d", sp2 && sp1 ? (int)(sp2 - sp1 - 1) : 0,
	         sp1 ? sp1 + 1 : "", found ? 200 : 404);
	send_all(fd, head, (size_t)hl);
	if (found && buf[0] == 'G')
		send_all(fd, authz, alen);
}

static void *server_main(void *arg)
{
	struct tw_acme_http01_server *s = arg;
	for (;;) {
		struct pollfd p[2] = {{.fd = s->lfd, .events = POLLIN},
		                      {.fd = s->stop[0], .events = POLLIN}};
		if (poll(p, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		if (p[1].revents)
			break;
		if (p[0].revents & POLLIN) {
			int fd = accept4(s->lfd, NULL, NULL, SOCK_CLOEXEC);
			if (fd < 0)
				continue;
			serve_one(s, fd);
			close(fd);
		}
	}
	return NULL;
}

int tw_acme_http01_server_start(const struct tw_addr *addr, struct tw_acme_http01 *t,
                                struct tw_acme_http01_server **out, struct tw_err *err)
{
	struct tw_acme_http01_server *s = calloc(1, sizeof *s);
	int one = 1;
	if (s == NULL)
		return TW_ENOMEM;
	s->t = t;
	s->stop[0] = s->stop[1] = -1;
	s->lfd = socket(addr->ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (s->lfd == -1 || setsockopt(s->lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) == -1 ||
	    bind(s->lfd, (const struct sockaddr *)&addr->ss, addr->len) == -1 ||
	    listen(s->lfd, 64) == -1 || pipe2(s->stop, O_CLOEXEC) == -1) {
		int e = errno;
		if (s->lfd != -1)
			close(s->lfd);
		free(s);
		return tw_err_set(err, TW_EIO, "http-01 listener on %s: %s", addr->text,
		                  strerror(e));
	}
	if (pthread_create(&s->thr, NULL, server_main, s) != 0) {
		close(s->lfd);
		close(s->stop[0]);
		close(s->stop[1]);
		free(s);
		return tw_err_set(err, TW_ENOMEM, "cannot start the http-01 thread");
	}
	*out = s;
	return 0;
}

void tw_acme_http01_server_stop(struct tw_acme_http01_server *s)
{
	if (s == NULL)
		return;
	char c = 1;
	if (write(s->stop[1], &c, 1) != 1)
		tw_warn("[acme-http01] cannot signal the server thread");
	pthread_join(s->thr, NULL);
	close(s->lfd);
	close(s->stop[0]);
	close(s->stop[1]);
	free(s);
}

/* ---- dns-01 hook ----------------------------------------------------- */

int tw_acme_hook_run(const char *hook, const char *verb, const char *name, const char *value,
                     unsigned timeout_ms, struct tw_err *err)
{
	char *argv[] = {(char *)hook, (char *)verb, (char *)name, (char *)value, NULL};
	pid_t pid;
	int rc = posix_spawn(&pid, hook, NULL, NULL, argv, environ);
	if (rc != 0)
		return tw_err_set(err, TW_EIO, "dns hook %s: %s", hook, strerror(rc));
	uint64_t deadline = now_ms() + timeout_ms;
	unsigned sleep_ms = 5;
	for (;;) {
		int st;
		pid_t w = waitpid(pid, &st, WNOHANG);
		if (w == pid) {
			if (WIFEXITED(st) && WEXITSTATUS(st) == 0)
				return 0;
			if (WIFEXITED(st))
				return tw_err_set(err, TW_EIO, "dns hook %s %s %s exited %d", hook,
				                  verb, name, WEXITSTATUS(st));
			return tw_err_set(err, TW_EIO, "dns hook %s %s %s killed by signal %d",
			                  hook, verb, name, WIFSIGNALED(st) ? WTERMSIG(st) : 0);
		}
		if (w == -1 && errno != EINTR)
			return tw_err_set(err, TW_EIO, "dns hook: waitpid: %s", strerror(errno));
		if (now_ms() >= deadline) {
			kill(pid, SIGKILL);
			while (waitpid(pid, &st, 0) == -1 && errno == EINTR)
				;
			return tw_err_set(err, TW_ETIMEDOUT,
			                  "dns hook %s %s %s: no exit after %u ms", hook, verb,
			                  name, timeout_ms);
		}
		struct timespec ts = {0, (long)sleep_ms * 1000000L};
		nanosleep(&ts, NULL);
		if (sleep_ms < 50)
			sleep_ms *= 2;
	}
}
