/* loop.h — one event loop per thread: epoll (edge-triggered), timers, wakeups.
 *
 * A tw_io is registered once with EPOLLIN|EPOLLOUT|EPOLLRDHUP|EPOLLET; its
 * callback gets the ready events and must read/write until EAGAIN (edge
 * triggered: readiness is reported once per change). Timers live in a binary
 * min-heap keyed by absolute monotonic milliseconds; each tw_timer is embedded
 * in its owner (no allocation) and re-arming is O(log n) — O(1) when it moves
 * the deadline later (the usual case: an idle or request timeout pushed back
 * on every request): the timer keeps its place and, should its old key come
 * up first, is put back at its real deadline without firing. tw_loop_now() is
 * the loop's cached clock, refreshed once per iteration. Another thread
 * interrupts a loop with tw_loop_wake(), which runs the wake callback on the
 * loop's own thread. Nothing here locks; a loop belongs to one thread. */
#ifndef TW_CORE_LOOP_H
#define TW_CORE_LOOP_H

#include <stddef.h>
#include <stdint.h>

struct tw_loop;
struct tw_io;
struct tw_timer;
struct tw_task;

typedef void (*tw_io_cb)(struct tw_loop *loop, struct tw_io *io, uint32_t events);
typedef void (*tw_timer_cb)(struct tw_loop *loop, struct tw_timer *t);
typedef void (*tw_loop_cb)(struct tw_loop *loop, void *arg);
typedef void (*tw_task_cb)(struct tw_loop *loop, struct tw_task *t);

struct tw_io {
	int fd;
	tw_io_cb cb;
};

struct tw_timer {
	uint64_t when;   /* absolute ms (tw_loop_now clock) */
	uint64_t key;    /* the heap's order: <= when (pushed later lazily, see tw_timer_set) */
	size_t heap_idx; /* 0 = not armed; else index+1 */
	tw_timer_cb cb;
};

/* A call to make once the current batch of events is handled (a zero-delay
 * timer without the heap): posting is O(1), posting again before it ran is a
 * no-op, cancelling is O(1). Posted tasks run after the batch's events and
 * again after its timers, in the order posted; a task posted while tasks run
 * runs in the same pass. Embedded in its owner like a tw_timer. */
struct tw_task {
	struct tw_task *next, *prev;
	tw_task_cb cb;
	uint8_t posted;
};

int tw_loop_new(struct tw_loop **out);
void tw_loop_free(struct tw_loop *loop); /* NULL ok; does not close registered fds */

/* Register fd for edge-triggered in/out/rdhup (events: EPOLLIN etc. to pick a subset). */
int tw_loop_add(struct tw_loop *loop, struct tw_io *io, uint32_t events);
int tw_loop_del(struct tw_loop *loop, struct tw_io *io);

/* Run until tw_loop_stop(). Returns 0, or TW_EIO if epoll fails. */
int tw_loop_run(struct tw_loop *loop);
void tw_loop_stop(struct tw_loop *loop);

/* Called after every batch of events (e.g. to flush buffered logs). */
void tw_loop_set_idle(struct tw_loop *loop, tw_loop_cb cb, void *arg);
/* Called on the loop thread after another thread's tw_loop_wake(). */
void tw_loop_set_wake(struct tw_loop *loop, tw_loop_cb cb, void *arg);
/* Thread-safe: make the loop run its wake callback soon. */
void tw_loop_wake(struct tw_loop *loop);

/* Free p (with free()) after the current batch of events: an object closed
 * while handling one event may still be named by a later event of the same
 * epoll_wait batch. Callbacks of such objects must check their own "closed"
 * flag. Falls back to leaking p only if memory for the list runs out. */
void tw_loop_defer_free(struct tw_loop *loop, void *p);

uint64_t tw_loop_now(const struct tw_loop *loop);
/* The same cached instant in ns (CLOCK_MONOTONIC, read once per iteration:
 * for per-request timestamps that need no clock call). */
uint64_t tw_loop_now_ns(const struct tw_loop *loop);
uint64_t tw_clock_ms(void); /* CLOCK_MONOTONIC now, in ms */
uint64_t tw_clock_ns(void); /* CLOCK_MONOTONIC now, in ns */

void tw_timer_init(struct tw_timer *t, tw_timer_cb cb);
void tw_timer_set(struct tw_loop *loop, struct tw_timer *t, uint64_t after_ms);
void tw_timer_cancel(struct tw_loop *loop, struct tw_timer *t);
static inline int tw_timer_armed(const struct tw_timer *t) { return t->heap_idx != 0; }
size_t tw_loop_ntimers(const struct tw_loop *loop);

void tw_task_init(struct tw_task *t, tw_task_cb cb);
void tw_task_post(struct tw_loop *loop, struct tw_task *t);
void tw_task_cancel(struct tw_loop *loop, struct tw_task *t);
static inline int tw_task_posted(const struct tw_task *t) { return t->posted; }

#endif
