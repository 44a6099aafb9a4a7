/* proc.h — child processes for the backup sources: pg_dump, pg_restore,
 * psql and volume hooks.
 *
 * A child gets /dev/null (or a pipe we write) as stdin, a pipe we read (or
 * our stdout) as stdout, and an anonymous memory file as stderr, so that a
 * failure can be reported with the tail of what the child said. Signals are
 * reset to their defaults in the child (tapwork run ignores SIGPIPE and
 * blocks SIGTERM in its threads). Extra environment variables (e.g.
 * PGPASSWORD) go through the environment, never argv. Spawning is
 * posix_spawn, safe from any thread; every descriptor we keep is O_CLOEXEC
 * so concurrent children never inherit each other's pipes. */
#ifndef TW_BACKUP_PROC_H
#define TW_BACKUP_PROC_H

#include <stddef.h>
#include <sys/types.h>

#include "core/err.h"

/* NULL: /dev/null; PIPE: a pipe to us; INHERIT: our fd; STDERR (stdout only): our stderr */
enum tw_proc_io { TW_PROC_NULL = 0, TW_PROC_PIPE, TW_PROC_INHERIT, TW_PROC_STDERR };

struct tw_proc {
	pid_t pid;
	int in_fd;  /* write end of the child's stdin (TW_PROC_PIPE), else -1 */
	int out_fd; /* read end of the child's stdout (TW_PROC_PIPE), else -1 */
	int err_fd; /* memfd holding the child's stderr */
	char name[64];
};

/* Resolve program `prog`: DIR/prog when bin_dir is given; else the first
 * PATH entry that has it; else /usr/lib/postgresql/15/bin/prog. 0 or TW_ENOENT. */
int tw_proc_find(const char *bin_dir, const char *prog, char *out, size_t cap, struct tw_err *e);

/* Start path with argv; env_extra: NULL-terminated "K=V" strings added to
 * (and overriding) our environment; may be NULL. */
int tw_proc_start(struct tw_proc *p, const char *path, char *const argv[],
		  const char *const env_extra[], enum tw_proc_io in, enum tw_proc_io out,
		  struct tw_err *e);

/* Close our pipe ends, (optionally SIGTERM the child first), reap it. 0 when
 * it exited 0; else TW_EIO with "NAME exited with status N: <stderr tail>"
 * or "NAME killed by signal S: ...". */
int tw_proc_wait(struct tw_proc *p, int kill_first, struct tw_err *e);

/* Run `/bin/sh -c cmd` to completion (its stdout goes to our stderr, so
 * machine-readable output on our stdout stays clean), at most
 * timeout_s seconds (0 = no limit); 0 or an error naming `what`. */
int tw_proc_run_shell(const char *what, const char *cmd, unsigned timeout_s, struct tw_err *e);

#endif
