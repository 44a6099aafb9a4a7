/* queue.h — bounded multi-producer multi-consumer queue of pointers.
 * push blocks while full; pop blocks while empty and returns NULL once the
 * queue is closed and drained. Bounded queues keep the pipeline's memory
 * bounded whatever the data size. */
#ifndef TW_BACKUP_QUEUE_H
#define TW_BACKUP_QUEUE_H

#include <pthread.h>
#include <stddef.h>

struct tw_queue {
	pthread_mutex_t mu;
	pthread_cond_t not_empty, not_full;
	void **items;
	size_t cap, head, len;
	int closed;
};

int tw_queue_init(struct tw_queue *q, size_t cap);
void tw_queue_destroy(struct tw_queue *q);
void tw_queue_push(struct tw_queue *q, void *item);
void *tw_queue_pop(struct tw_queue *q);
void tw_queue_close(struct tw_queue *q);
/* Call first thing in a pipeline thread that mostly consumes from queues:
 * puts the calling thread in SCHED_BATCH, so a producer that wakes it is not
 * preempted on the spot (on few cores that ping-pong cost a context switch
 * per item). Best effort: errors are ignored. */
void tw_queue_consumer_thread(void);

#endif
