/* progress.h — progress reporting for backup, restore, check and prune.
 * On a TTY (stderr) a status line is redrawn twice a second (files, bytes,
 * rate, ETA when the total is known); with --json a status object per second
 * goes to stdout; --quiet prints nothing. Counters are updated lock-free. */
#ifndef TW_BACKUP_PROGRESS_H
#define TW_BACKUP_PROGRESS_H

#include <pthread.h>
#include <stdint.h>

struct tw_progress {
	const char *action;
	uint64_t files, bytes, total_files, total_bytes, errors; /* atomics */
	int json, quiet, tty;
	int stop;
	double start;
	pthread_t thread;
	int running;
	pthread_mutex_t mu;
	pthread_cond_t cv;
};

void tw_progress_start(struct tw_progress *p, const char *action, int json, int quiet);
void tw_progress_stop(struct tw_progress *p);
void tw_progress_add(uint64_t *counter, uint64_t v);
double tw_progress_now(void);

#endif
