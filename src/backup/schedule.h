/* schedule.h — when backup jobs run (docs/backup.md "Schedules").
 *
 * Forms: "hourly", "daily [HH:MM]", "weekly [DAY] [HH:MM]", "monthly",
 * "every N{s,m,h,d}" (aligned on multiples of N since the epoch; seconds are
 * for tests) and 5-field cron "MIN HOUR DOM MON DOW" with *, lists, ranges
 * and steps (DOW 0-7, 0 and 7 = Sunday; when both DOM and DOW are
 * restricted either may match, as in cron). Times are local unless utc. */
#ifndef TW_BACKUP_SCHEDULE_H
#define TW_BACKUP_SCHEDULE_H

#include <stddef.h>
#include <stdint.h>

struct tw_sched {
	int every;         /* 1: every `every_s` seconds; 0: cron fields */
	uint64_t every_s;
	uint64_t min;      /* bit per minute 0..59 */
	uint32_t hour;     /* bit per hour 0..23 */
	uint32_t dom;      /* bit per day 1..31 */
	uint32_t mon;      /* bit per month 1..12 */
	uint32_t dow;      /* bit per weekday 0..6 */
	int dom_any, dow_any;
};

/* 0 or TW_EINVAL with a reason in why. */
int tw_sched_parse(const char *text, struct tw_sched *s, char *why, size_t wl);
/* The first fire time strictly after t (unix seconds); -1 if none within ~5 years. */
int64_t tw_sched_next(const struct tw_sched *s, int64_t t, int utc);

#endif
