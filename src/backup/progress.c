/* progress.c — periodic progress lines on a TTY or as JSON. */
#include "backup/progress.h"

#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

double tw_progress_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

void tw_progress_add(uint64_t *counter, uint64_t v)
{
	__atomic_add_fetch(counter, v, __ATOMIC_RELAXED);
}

static uint64_t ld(const uint64_t *c) { return __atomic_load_n(c, __ATOMIC_RELAXED); }

static void report(struct tw_progress *p)
{
	double el = tw_progress_now() - p->start;
	uint64_t files = ld(&p->files), bytes = ld(&p->bytes), tb = ld(&p->total_bytes);
	double rate = el > 0 ? bytes / el : 0;
	if (p->json) {
		printf("{\"type\":\"status\",\"action\":\"%s\",\"files\":%llu,\"bytes\":%llu,"
		       "\"total_bytes\":%llu,\"elapsed_s\":%.1f}\n",
		       p->action, (unsigned long long)files, (unsigned long long)bytes,
		       (unsigned long long)tb, el);
		fflush(stdout);
		return;
	}
	char eta[32] = "";
	if (tb > bytes && rate > 0)
		snprintf(eta, sizeof eta, ", ETA %.0fs", (tb - bytes) / rate);
	fprintf(stderr, "\r\033[K%s: %llu files, %.1f MiB", p->action, (unsigned long long)files,
		bytes / 1048576.0);
	if (tb)
		fprintf(stderr, " of %.1f MiB", tb / 1048576.0);
	fprintf(stderr, ", %.1f MiB/s%s", rate / 1048576.0, eta);
	fflush(stderr);
}

static void *run(void *arg)
{
	struct tw_progress *p = arg;
	pthread_mutex_lock(&p->mu);
	while (!p->stop) {
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		long ms = p->json ? 1000 : 500;
		ts.tv_nsec += ms * 1000000L;
		ts.tv_sec += ts.tv_nsec / 1000000000L;
		ts.tv_nsec %= 1000000000L;
		pthread_cond_timedwait(&p->cv, &p->mu, &ts);
		if (!p->stop)
			report(p);
	}
	pthread_mutex_unlock(&p->mu);
	return NULL;
}

void tw_progress_start(struct tw_progress *p, const char *action, int json, int quiet)
{
	memset(p, 0, sizeof *p);
	p->action = action;
	p->json = json;
	p->quiet = quiet;
	p->tty = isatty(STDERR_FILENO);
	p->start = tw_progress_now();
	pthread_mutex_init(&p->mu, NULL);
	pthread_cond_init(&p->cv, NULL);
	if (!quiet && (json || p->tty) && pthread_create(&p->thread, NULL, run, p) == 0)
		p->running = 1;
}

void tw_progress_stop(struct tw_progress *p)
{
	if (p->running) {
		pthread_mutex_lock(&p->mu);
		p->stop = 1;
		pthread_cond_signal(&p->cv);
		pthread_mutex_unlock(&p->mu);
		pthread_join(p->thread, NULL);
		p->running = 0;
		if (!p->json && p->tty)
			fprintf(stderr, "\r\033[K");
	}
	pthread_mutex_destroy(&p->mu);
	pthread_cond_destroy(&p->cv);
}
