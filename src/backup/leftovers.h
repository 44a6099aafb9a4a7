/* leftovers.h — temporary objects interrupted runs left in a repository.
 *
 * A backup killed while it writes a pack leaves the driver's temporary
 * object behind (local: data/.tmp-w-PID-N; S3: an incomplete multipart
 * upload). Nothing references them, so `check` lists them (they are not
 * errors) and `prune` deletes those not written to for longer than the lock
 * lease (TW_LOCK_LEASE_S): a run that is still writing one touches it far
 * more often, and a run whose lock lapsed is gone. */
#ifndef TW_BACKUP_LEFTOVERS_H
#define TW_BACKUP_LEFTOVERS_H

#include "backup/repo.h"

struct tw_leftover_stats {
	uint64_t found, bytes;          /* every temporary object seen */
	uint64_t deleted, bytes_deleted; /* removed (or, dry run, that would be) */
};

/* Called per object: its id, size, age, and whether it was (would be) deleted. */
typedef void (*tw_leftover_fn)(void *arg, const char *id, uint64_t size, uint64_t age_s, int deleted);

/* List the temporary objects; with min_age_s > 0 delete those at least that
 * old (dry_run: count them only). fn may be NULL. 0 or a TW_E* code. */
int tw_leftovers_run(struct tw_repo *r, uint64_t min_age_s, int dry_run, tw_leftover_fn fn, void *arg,
		     struct tw_leftover_stats *st, struct tw_err *e);

#endif
