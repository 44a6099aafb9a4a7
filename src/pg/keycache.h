/* keycache.h — open the repository for the WAL commands without paying the
 * password's scrypt on every call.
 *
 * PostgreSQL starts one archive-push/archive-get process per WAL file;
 * unwrapping the master keys with scrypt is most of what such a process
 * costs (about 0.45 s of CPU here: also a tenth of a physical incremental
 * backup or of a restore, which use the cache too). The first one that opens the repository with the password keeps
 * the master keys for an hour in the kernel's keyring of its user
 * (`keyctl show @u`: a "user" key "tapwork:v1:<hash of location and
 * password>", readable by processes of that user only — which can read the
 * password file anyway). Later calls find it and open the repository with
 * it (the config object must authenticate, so a stale key is never used).
 * Where the keyring is unavailable (e.g. blocked by a container's seccomp
 * profile) every call unwraps with the password, as before.
 * TAPWORK_KEY_CACHE=0 turns the cache off. */
#ifndef TW_PG_KEYCACHE_H
#define TW_PG_KEYCACHE_H

#include "backup/cmdutil.h"

/* Like tw_bopts_open(o, cmd, flags, r): prints failures, returns 0 or an
 * exit code. */
int tw_pgkc_open(struct tw_bopts *o, const char *cmd, unsigned flags, struct tw_repo **r);

#endif
