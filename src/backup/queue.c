/* queue.c — bounded MPMC queue (mutex + two condition variables). */
#include "backup/queue.h"

#include <sched.h>
#include <stdlib.h>

#include "core/err.h"

int tw_queue_init(struct tw_queue *q, size_t cap)
{
	q->items = calloc(cap, sizeof *q->items);
	if (q->items == NULL)
		return TW_ENOMEM;
	q->cap = cap;
	q->head = q->len = 0;
	q->closed = 0;
	pthread_mutex_init(&q->mu, NULL);
	pthread_cond_init(&q->not_empty, NULL);
	pthread_cond_init(&q->not_full, NULL);
	return 0;
}

void tw_queue_destroy(struct tw_queue *q)
{
	free(q->items);
	pthread_mutex_destroy(&q->mu);
	pthread_cond_destroy(&q->not_empty);
	pthread_cond_destroy(&q->not_full);
}

void tw_queue_push(struct tw_queue *q, void *item)
{
	pthread_mutex_lock(&q->mu);
	while (q->len == q->cap)
		pthread_cond_wait(&q->not_full, &q->mu);
	q->items[(q->head + q->len) % q->cap] = item;
	q->len++;
	pthread_cond_signal(&q->not_empty);
	pthread_mutex_unlock(&q->mu);
}

void *tw_queue_pop(struct tw_queue *q)
{
	pthread_mutex_lock(&q->mu);
	while (q->len == 0 && !q->closed)
		pthread_cond_wait(&q->not_empty, &q->mu);
	void *item = NULL;
	if (q->len > 0) {
		item = q->items[q->head];
		q->head = (q->head + 1) % q->cap;
		q->len--;
		pthread_cond_signal(&q->not_full);
	}
	pthread_mutex_unlock(&q->mu);
	return item;
}

void tw_queue_close(struct tw_queue *q)
{
	pthread_mutex_lock(&q->mu);
	q->closed = 1;
	pthread_cond_broadcast(&q->not_empty);
	pthread_mutex_unlock(&q->mu);
}

void tw_queue_consumer_thread(void)
{
	struct sched_param sp = {0};
	(void)pthread_setschedparam(pthread_self(), SCHED_BATCH, &sp);
}
