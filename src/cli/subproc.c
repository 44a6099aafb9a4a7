/* subproc.c — posix_spawnp + a pipe, bounded in time and bytes. */
#include "cli/subproc.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

static long long now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int tw_subproc_capture(char *const argv[], int merge_stderr, int timeout_ms, struct tw_dbuf *out,
                       int *status, struct tw_err *err)
{
	int fds[2] = {-1, -1};
	int rc = 0;
	pid_t pid = -1;
	int spawned = 0;
	posix_spawn_file_actions_t fa;
	int fa_ok = 0;

	*status = -1;
	if (pipe2(fds, O_CLOEXEC) == -1) {
		rc = tw_err_set(err, TW_EIO, "pipe: %s", strerror(errno));
		goto out;
	}
	if (posix_spawn_file_actions_init(&fa) != 0) {
		rc = tw_err_set(err, TW_ENOMEM, "spawn: out of memory");
		goto out;
	}
	fa_ok = 1;
	posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
	posix_spawn_file_actions_adddup2(&fa, fds[1], 1);
	if (merge_stderr)
		posix_spawn_file_actions_adddup2(&fa, fds[1], 2);
	int e = posix_spawnp(&pid, argv[0], &fa, NULL, argv, environ);
	if (e != 0) {
		rc = e == ENOENT ? TW_ENOENT : TW_EIO;
		tw_err_set(err, rc, "%s: %s", argv[0], strerror(e));
		goto out;
	}
	spawned = 1;
	close(fds[1]);
	fds[1] = -1;

	long long deadline = now_ms() + timeout_ms;
	char buf[4096];
	for (;;) {
		long long left = deadline - now_ms();
		if (left <= 0) {
			rc = tw_err_set(err, TW_ETIMEDOUT, "%s: no answer after %d ms", argv[0],
			                timeout_ms);
			break;
		}
		struct pollfd p = {.fd = fds[0], .events = POLLIN};
		int n = poll(&p, 1, (int)left);
		if (n == -1) {
			if (errno == EINTR)
				continue;
			rc = tw_err_set(err, TW_EIO, "poll: %s", strerror(errno));
			break;
		}
		if (n == 0)
			continue;
		ssize_t r = read(fds[0], buf, sizeof buf);
		if (r == -1) {
			if (errno == EINTR || errno == EAGAIN)
				continue;
			rc = tw_err_set(err, TW_EIO, "read: %s", strerror(errno));
			break;
		}
		if (r == 0)
			break;
		if (tw_dbuf_append(out, buf, (size_t)r) != 0) {
			rc = tw_err_set(err, TW_ELIMIT, "%s: output larger than %zu bytes", argv[0],
			                out->cap);
			break;
		}
	}
out:
	if (spawned) {
		int st = 0;
		if (rc != 0)
			kill(pid, SIGKILL);
		while (waitpid(pid, &st, 0) == -1 && errno == EINTR)
			;
		if (rc == 0)
			*status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
	}
	if (fa_ok)
		posix_spawn_file_actions_destroy(&fa);
	if (fds[0] != -1)
		close(fds[0]);
	if (fds[1] != -1)
		close(fds[1]);
	return rc;
}
