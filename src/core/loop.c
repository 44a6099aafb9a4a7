#include "core/loop.h"

#include "core/err.h"
#include "core/log.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#define MAX_EVENTS 256

struct tw_loop {
	int epfd;
	int stop;
	uint64_t now;    /* ms */
	uint64_t now_ns; /* the same instant in ns */
	struct tw_timer **heap;
	size_t nheap, capheap;
	struct tw_io wake_io;
	atomic_int wake_pending;
	void **dead;
	size_t ndead, capdead;
	struct tw_task *task_head, *task_tail; /* posted, not yet run */
	tw_loop_cb wake_cb, idle_cb;
	void *wake_arg, *idle_arg;
};

uint64_t tw_clock_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* One clock read per loop iteration serves both resolutions. */
static void refresh(struct tw_loop *loop)
{
	loop->now_ns = tw_clock_ns();
	loop->now = loop->now_ns / 1000000u;
}

uint64_t tw_clock_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void wake_readable(struct tw_loop *loop, struct tw_io *io, uint32_t events)
{
	uint64_t v;
	while (read(io->fd, &v, sizeof v) == (ssize_t)sizeof v)
		;
	atomic_store(&loop->wake_pending, 0);
	if (loop->wake_cb)
		loop->wake_cb(loop, loop->wake_arg);
}

int tw_loop_new(struct tw_loop **out)
{
	struct tw_loop *loop = calloc(1, sizeof *loop);
	if (loop == NULL)
		return TW_ENOMEM;
	loop->epfd = epoll_create1(EPOLL_CLOEXEC);
	loop->wake_io.fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	loop->wake_io.cb = wake_readable;
	if (loop->epfd == -1 || loop->wake_io.fd == -1 ||
	    tw_loop_add(loop, &loop->wake_io, EPOLLIN) != 0) {
		tw_loop_free(loop);
		return TW_EIO;
	}
	refresh(loop);
	*out = loop;
	return 0;
}

void tw_loop_free(struct tw_loop *loop)
{
	if (loop == NULL)
		return;
	if (loop->epfd != -1)
		close(loop->epfd);
	if (loop->wake_io.fd > 0)
		close(loop->wake_io.fd);
	for (size_t i = 0; i < loop->ndead; i++)
		free(loop->dead[i]);
	free(loop->dead);
	free(loop->heap);
	free(loop);
}

void tw_loop_defer_free(struct tw_loop *loop, void *p)
{
	if (p == NULL)
		return;
	if (loop->ndead == loop->capdead) {
		size_t cap = loop->capdead ? loop->capdead * 2 : 64;
		void **d = realloc(loop->dead, cap * sizeof *d);
		if (d == NULL)
			return;
		loop->dead = d;
		loop->capdead = cap;
	}
	loop->dead[loop->ndead++] = p;
}

static void free_dead(struct tw_loop *loop)
{
	for (size_t i = 0; i < loop->ndead; i++)
		free(loop->dead[i]);
	loop->ndead = 0;
}

int tw_loop_add(struct tw_loop *loop, struct tw_io *io, uint32_t events)
{
	struct epoll_event ev = {.events = events | EPOLLET, .data.ptr = io};
	if (epoll_ctl(loop->epfd, EPOLL_CTL_ADD, io->fd, &ev) == -1)
		return TW_EIO;
	return 0;
}

int tw_loop_del(struct tw_loop *loop, struct tw_io *io)
{
	if (epoll_ctl(loop->epfd, EPOLL_CTL_DEL, io->fd, NULL) == -1)
		return TW_EIO;
	return 0;
}

void tw_loop_stop(struct tw_loop *loop) { loop->stop = 1; }

void tw_loop_set_idle(struct tw_loop *loop, tw_loop_cb cb, void *arg)
{
	loop->idle_cb = cb;
	loop->idle_arg = arg;
}

void tw_loop_set_wake(struct tw_loop *loop, tw_loop_cb cb, void *arg)
{
	loop->wake_cb = cb;
	loop->wake_arg = arg;
}

void tw_loop_wake(struct tw_loop *loop)
{
	if (atomic_exchange(&loop->wake_pending, 1))
		return;
	uint64_t one = 1;
	ssize_t n = write(loop->wake_io.fd, &one, sizeof one);
	(void)n;
}

uint64_t tw_loop_now(const struct tw_loop *loop) { return loop->now; }
uint64_t tw_loop_now_ns(const struct tw_loop *loop) { return loop->now_ns; }
size_t tw_loop_ntimers(const struct tw_loop *loop) { return loop->nheap; }

/* --- timer heap (1-based heap_idx in the timer, 0-based array) --- */

static void heap_place(struct tw_loop *loop, size_t i, struct tw_timer *t)
{
	loop->heap[i] = t;
	t->heap_idx = i + 1;
}

static void heap_up(struct tw_loop *loop, size_t i)
{
	struct tw_timer *t = loop->heap[i];
	while (i > 0) {
		size_t parent = (i - 1) / 2;
		if (loop->heap[parent]->key <= t->key)
			break;
		heap_place(loop, i, loop->heap[parent]);
		i = parent;
	}
	heap_place(loop, i, t);
}

static void heap_down(struct tw_loop *loop, size_t i)
{
	struct tw_timer *t = loop->heap[i];
	for (;;) {
		size_t l = 2 * i + 1, r = l + 1, m = i;
		uint64_t mw = t->key;
		if (l < loop->nheap && loop->heap[l]->key < mw) {
			m = l;
			mw = loop->heap[l]->key;
		}
		if (r < loop->nheap && loop->heap[r]->key < mw)
			m = r;
		if (m == i)
			break;
		heap_place(loop, i, loop->heap[m]);
		i = m;
	}
	heap_place(loop, i, t);
}

void tw_timer_init(struct tw_timer *t, tw_timer_cb cb)
{
	t->when = 0;
	t->key = 0;
	t->heap_idx = 0;
	t->cb = cb;
}

void tw_timer_cancel(struct tw_loop *loop, struct tw_timer *t)
{
	if (t->heap_idx == 0)
		return;
	size_t i = t->heap_idx - 1;
	t->heap_idx = 0;
	loop->nheap--;
	if (i == loop->nheap)
		return;
	heap_place(loop, i, loop->heap[loop->nheap]);
	heap_down(loop, i);
	heap_up(loop, i);
}

void tw_timer_set(struct tw_loop *loop, struct tw_timer *t, uint64_t after_ms)
{
	uint64_t when = loop->now + after_ms;
	if (t->heap_idx != 0) {
		t->when = when;
		if (when < t->key) {
			t->key = when;
			heap_up(loop, t->heap_idx - 1);
		}
		/* later: the heap keeps the earlier key; run_timers() re-keys it */
		return;
	}
	if (loop->nheap == loop->capheap) {
		size_t cap = loop->capheap ? loop->capheap * 2 : 64;
		struct tw_timer **h = realloc(loop->heap, cap * sizeof *h);
		if (h == NULL) {
			tw_error("timer heap: out of memory");
			abort();
		}
		loop->heap = h;
		loop->capheap = cap;
	}
	t->when = t->key = when;
	heap_place(loop, loop->nheap++, t);
	heap_up(loop, loop->nheap - 1);
}

/* --- posted tasks (a doubly linked FIFO) --- */

void tw_task_init(struct tw_task *t, tw_task_cb cb)
{
	t->next = t->prev = NULL;
	t->cb = cb;
	t->posted = 0;
}

void tw_task_post(struct tw_loop *loop, struct tw_task *t)
{
	if (t->posted)
		return;
	t->posted = 1;
	t->next = NULL;
	t->prev = loop->task_tail;
	if (loop->task_tail)
		loop->task_tail->next = t;
	else
		loop->task_head = t;
	loop->task_tail = t;
}

void tw_task_cancel(struct tw_loop *loop, struct tw_task *t)
{
	if (!t->posted)
		return;
	if (t->prev)
		t->prev->next = t->next;
	else
		loop->task_head = t->next;
	if (t->next)
		t->next->prev = t->prev;
	else
		loop->task_tail = t->prev;
	t->next = t->prev = NULL;
	t->posted = 0;
}

static void run_tasks(struct tw_loop *loop)
{
	/* bounded: a task that posts itself again every time waits for the next
	 * loop turn (epoll_wait then does not block) instead of spinning here */
	for (size_t guard = 0; loop->task_head != NULL && guard < 100000; guard++) {
		struct tw_task *t = loop->task_head;
		tw_task_cancel(loop, t);
		t->cb(loop, t);
	}
}

static void run_timers(struct tw_loop *loop)
{
	while (loop->nheap > 0 && loop->heap[0]->key <= loop->now) {
		struct tw_timer *t = loop->heap[0];
		if (t->when > loop->now) {
			/* pushed back since it was placed: to its real deadline */
			t->key = t->when;
			heap_down(loop, 0);
			continue;
		}
		tw_timer_cancel(loop, t);
		t->cb(loop, t);
	}
}

int tw_loop_run(struct tw_loop *loop)
{
	struct epoll_event events[MAX_EVENTS];
	loop->stop = 0;
	while (!loop->stop) {
		int timeout = -1;
		refresh(loop);
		if (loop->task_head != NULL) {
			timeout = 0;
		} else if (loop->nheap > 0) {
			uint64_t w = loop->heap[0]->key; /* may wake early once for a lazy key */
			timeout = w <= loop->now ? 0 : (int)(w - loop->now > 60000 ? 60000 : w - loop->now);
		}
		int n = epoll_wait(loop->epfd, events, MAX_EVENTS, timeout);
		if (n == -1) {
			if (errno == EINTR)
				continue;
			return TW_EIO;
		}
		refresh(loop);
		for (int i = 0; i < n; i++) {
			struct tw_io *io = events[i].data.ptr;
			io->cb(loop, io, events[i].events);
		}
		run_tasks(loop);
		run_timers(loop);
		run_tasks(loop);
		free_dead(loop);
		if (loop->idle_cb)
			loop->idle_cb(loop, loop->idle_arg);
	}
	return 0;
}
