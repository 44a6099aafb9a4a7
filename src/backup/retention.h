/* retention.h — which snapshots a `forget` keeps (restic's semantics).
 *
 * Items are sorted newest first. keep-last N keeps the N newest. For each
 * calendar rule (hourly, daily, weekly = ISO week, monthly, yearly; UTC) the
 * newest snapshot of each period is kept, for the N most recent periods
 * that have a snapshot. keep-tag keeps every snapshot carrying the tag. A
 * snapshot is kept if any rule keeps it; reasons are recorded. A policy of
 * all zeros keeps everything (forget refuses to run with it). */
#ifndef TW_BACKUP_RETENTION_H
#define TW_BACKUP_RETENTION_H

#include <stddef.h>
#include <stdint.h>

struct tw_keep_policy {
	int last, hourly, daily, weekly, monthly, yearly; /* -1 = unlimited */
	char **tags;
	size_t ntags;
};

struct tw_ret_item {
	int64_t time_ns;
	char **tags;
	size_t ntags;
	int keep;
	char reason[96];
};

int tw_retention_empty(const struct tw_keep_policy *p);
/* items: newest first. Sets keep and reason of every item. */
void tw_retention_apply(struct tw_ret_item *items, size_t n, const struct tw_keep_policy *p);
/* The period of a time for rule k (0 hourly .. 4 yearly), UTC; exposed for tests. */
long tw_retention_bucket(int64_t time_ns, int rule);

#endif
