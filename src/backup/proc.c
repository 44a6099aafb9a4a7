/* proc.c — child processes for backup sources (see proc.h). */
#include "backup/proc.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

#define TAIL_MAX 1024

int tw_proc_find(const char *bin_dir, const char *prog, char *out, size_t cap, struct tw_err *e)
{
	int n;
	if (bin_dir != NULL && bin_dir[0] != '\0') {
		n = snprintf(out, cap, "%s/%s", bin_dir, prog);
		if (n > 0 && (size_t)n < cap && access(out, X_OK) == 0)
			return 0;
		return tw_err_set(e, TW_ENOENT, "%s not found in %s", prog, bin_dir);
	}
	const char *path = getenv("PATH");
	while (path != NULL && *path != '\0') {
		const char *colon = strchr(path, ':');
		size_t len = colon ? (size_t)(colon - path) : strlen(path);
		n = snprintf(out, cap, "%.*s/%s", (int)len, len ? path : ".", prog);
		if (len > 0 && n > 0 && (size_t)n < cap && access(out, X_OK) == 0)
			return 0;
		path = colon ? colon + 1 : NULL;
	}
	n = snprintf(out, cap, "/usr/lib/postgresql/15/bin/%s", prog);
	if (n > 0 && (size_t)n < cap && access(out, X_OK) == 0)
		return 0;
	return tw_err_set(e, TW_ENOENT,
			  "%s not found in PATH nor in /usr/lib/postgresql/15/bin (use --pg-bin DIR)",
			  prog);
}

static char **build_env(const char *const extra[])
{
	size_t n = 0, k = 0, x = 0;
	while (environ[n])
		n++;
	while (extra && extra[x])
		x++;
	char **env = calloc(n + x + 1, sizeof *env);
	if (env == NULL)
		return NULL;
	for (size_t i = 0; i < n; i++) {
		int overridden = 0;
		for (size_t j = 0; j < x; j++) {
			const char *eq = strchr(extra[j], '=');
			size_t kl = eq ? (size_t)(eq - extra[j]) + 1 : strlen(extra[j]);
			if (strncmp(environ[i], extra[j], kl) == 0)
				overridden = 1;
		}
		if (!overridden)
			env[k++] = environ[i];
	}
	for (size_t j = 0; j < x; j++)
		env[k++] = (char *)extra[j];
	env[k] = NULL;
	return env;
}

int tw_proc_start(struct tw_proc *p, const char *path, char *const argv[],
		  const char *const env_extra[], enum tw_proc_io in, enum tw_proc_io out,
		  struct tw_err *e)
{
	const char *base = strrchr(path, '/');
	snprintf(p->name, sizeof p->name, "%s", base ? base + 1 : path);
	p->pid = -1;
	p->in_fd = p->out_fd = -1;
	p->err_fd = memfd_create("tapwork-stderr", MFD_CLOEXEC);
	int ip[2] = {-1, -1}, op[2] = {-1, -1}, nullfd = -1, rc = 0;
	char **env = build_env(env_extra);
	posix_spawn_file_actions_t fa;
	posix_spawnattr_t at;
	int fa_ok = 0, at_ok = 0;
	if (p->err_fd == -1 || env == NULL) {
		rc = tw_err_set(e, TW_ENOMEM, "%s: cannot set up: %s", p->name, strerror(errno));
		goto fail;
	}
	if ((in == TW_PROC_PIPE && pipe2(ip, O_CLOEXEC) == -1) ||
	    (out == TW_PROC_PIPE && pipe2(op, O_CLOEXEC) == -1) ||
	    (nullfd = open("/dev/null", O_RDWR | O_CLOEXEC)) == -1) {
		rc = tw_err_set(e, TW_EIO, "%s: pipe: %s", p->name, strerror(errno));
		goto fail;
	}
	if (posix_spawn_file_actions_init(&fa) != 0 || (fa_ok = 1, posix_spawnattr_init(&at) != 0)) {
		rc = tw_err_set(e, TW_ENOMEM, "%s: spawn setup failed", p->name);
		goto fail;
	}
	at_ok = 1;
	posix_spawn_file_actions_adddup2(&fa, in == TW_PROC_PIPE ? ip[0] : in == TW_PROC_NULL ? nullfd : 0, 0);
	posix_spawn_file_actions_adddup2(&fa,
					 out == TW_PROC_PIPE   ? op[1]
					 : out == TW_PROC_NULL ? nullfd
					 : out == TW_PROC_STDERR ? 2
								 : 1,
					 1);
	posix_spawn_file_actions_adddup2(&fa, p->err_fd, 2);
	sigset_t def, none;
	sigemptyset(&def);
	sigaddset(&def, SIGPIPE);
	sigaddset(&def, SIGTERM);
	sigaddset(&def, SIGINT);
	sigaddset(&def, SIGHUP);
	sigemptyset(&none);
	posix_spawnattr_setsigdefault(&at, &def);
	posix_spawnattr_setsigmask(&at, &none);
	posix_spawnattr_setflags(&at, POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK);
	int src = posix_spawn(&p->pid, path, &fa, &at, argv, env);
	if (src != 0) {
		p->pid = -1;
		rc = tw_err_set(e, TW_EIO, "cannot run %s: %s", path, strerror(src));
		goto fail;
	}
	p->in_fd = ip[1];
	p->out_fd = op[0];
	ip[1] = op[0] = -1;
	goto done;
fail:
	if (p->err_fd >= 0)
		close(p->err_fd);
	p->err_fd = -1;
done:
	if (fa_ok)
		posix_spawn_file_actions_destroy(&fa);
	if (at_ok)
		posix_spawnattr_destroy(&at);
	for (int i = 0; i < 2; i++) {
		if (ip[i] >= 0)
			close(ip[i]);
		if (op[i] >= 0)
			close(op[i]);
	}
	if (nullfd >= 0)
		close(nullfd);
	free(env);
	return rc;
}

/* The last line(s) of the child's stderr, on one line. */
static void tail(int fd, char *out, size_t cap)
{
	out[0] = '\0';
	struct stat st;
	if (fd < 0 || fstat(fd, &st) == -1 || st.st_size <= 0)
		return;
	char buf[TAIL_MAX + 1];
	off_t off = st.st_size > TAIL_MAX ? st.st_size - TAIL_MAX : 0;
	ssize_t n = pread(fd, buf, TAIL_MAX, off);
	if (n <= 0)
		return;
	while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == ' '))
		n--;
	buf[n] = '\0';
	for (ssize_t i = 0; i < n; i++)
		if (buf[i] == '\n' || buf[i] == '\r' || buf[i] == '\t')
			buf[i] = ' ';
	snprintf(out, cap, "%s%s", off > 0 ? "..." : "", buf);
}

int tw_proc_wait(struct tw_proc *p, int kill_first, struct tw_err *e)
{
	if (p->in_fd >= 0)
		close(p->in_fd);
	if (p->out_fd >= 0)
		close(p->out_fd);
	p->in_fd = p->out_fd = -1;
	int rc = 0, status = 0;
	if (p->pid > 0) {
		if (kill_first)
			kill(p->pid, SIGTERM);
		pid_t w;
		while ((w = waitpid(p->pid, &status, 0)) == -1 && errno == EINTR)
			;
		char t[TAIL_MAX + 8];
		tail(p->err_fd, t, sizeof t);
		if (w == -1)
			rc = tw_err_set(e, TW_EIO, "%s: waitpid: %s", p->name, strerror(errno));
		else if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
			rc = 0;
		else if (WIFEXITED(status))
			rc = tw_err_set(e, TW_EIO, "%s exited with status %d%s%s", p->name,
					WEXITSTATUS(status), t[0] ? ": " : "", t);
		else
			rc = tw_err_set(e, TW_EIO, "%s killed by signal %d%s%s", p->name,
					WIFSIGNALED(status) ? WTERMSIG(status) : 0, t[0] ? ": " : "",
					t);
		p->pid = -1;
	}
	if (p->err_fd >= 0)
		close(p->err_fd);
	p->err_fd = -1;
	return rc;
}

int tw_proc_run_shell(const char *what, const char *cmd, unsigned timeout_s, struct tw_err *e)
{
	struct tw_proc p;
	char *argv[] = {"sh", "-c", (char *)cmd, NULL};
	int rc = tw_proc_start(&p, "/bin/sh", argv, NULL, TW_PROC_NULL, TW_PROC_STDERR, e);
	if (rc != 0)
		return rc;
	snprintf(p.name, sizeof p.name, "%s", what);
	struct timespec t0, now, nap = {0, 20000000};
	clock_gettime(CLOCK_MONOTONIC, &t0);
	int status;
	for (;;) {
		pid_t w = waitpid(p.pid, &status, WNOHANG);
		if (w == p.pid) {
			/* reaped: report through a fake wait on the saved status */
			char t[TAIL_MAX + 8];
			tail(p.err_fd, t, sizeof t);
			close(p.err_fd);
			if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
				return 0;
			if (WIFEXITED(status))
				return tw_err_set(e, TW_EIO, "%s exited with status %d%s%s", what,
						  WEXITSTATUS(status), t[0] ? ": " : "", t);
			return tw_err_set(e, TW_EIO, "%s killed by signal %d%s%s", what,
					  WIFSIGNALED(status) ? WTERMSIG(status) : 0, t[0] ? ": " : "", t);
		}
		if (w == -1 && errno != EINTR) {
			close(p.err_fd);
			return tw_err_set(e, TW_EIO, "%s: waitpid: %s", what, strerror(errno));
		}
		clock_gettime(CLOCK_MONOTONIC, &now);
		if (timeout_s && now.tv_sec - t0.tv_sec >= (time_t)timeout_s) {
			kill(p.pid, SIGKILL);
			tw_proc_wait(&p, 0, NULL);
			return tw_err_set(e, TW_ETIMEDOUT, "%s timed out after %us", what, timeout_s);
		}
		nanosleep(&nap, NULL);
	}
}
