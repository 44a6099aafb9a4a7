/* Unit tests for src/core/loop.c: timer heap order, cancel, re-arm, io, wake. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <pthread.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <fcntl.h>
#include <unistd.h>

#include "core/loop.h"

struct rec {
	struct tw_timer t;
	int id;
};
static int fired[64];
static int nfired;
static struct tw_loop *g_loop;

static void on_timer(struct tw_loop *loop, struct tw_timer *t)
{
	struct rec *r = (struct rec *)t;
	fired[nfired++] = r->id;
	if (nfired == 5)
		tw_loop_stop(loop);
}

static void timers_fire_in_order(void **state)
{
	struct tw_loop *loop;
	assert_int_equal(tw_loop_new(&loop), 0);
	struct rec r[8];
	/* the one left over (1000) is far enough behind the fifth (40) that a
	 * loaded machine does not reach it in the same pass (it was 50 and fired
	 * too, at load 11) */
	int delays[8] = {40, 10, 30, 20, 1000, 5, 60, 15};
	nfired = 0;
	for (int i = 0; i < 8; i++) {
		r[i].id = delays[i];
		tw_timer_init(&r[i].t, on_timer);
		tw_timer_set(loop, &r[i].t, (uint64_t)delays[i]);
	}
	tw_timer_cancel(loop, &r[5].t); /* 5 */
	tw_timer_cancel(loop, &r[7].t); /* 15 */
	tw_timer_set(loop, &r[6].t, 1);  /* 60 -> first */
	assert_int_equal(tw_loop_ntimers(loop), 6);
	assert_int_equal(tw_loop_run(loop), 0);
	int want[5] = {60, 10, 20, 30, 40};
	for (int i = 0; i < 5; i++)
		assert_int_equal(fired[i], want[i]);
	assert_int_equal(tw_loop_ntimers(loop), 1);
	tw_loop_free(loop);
}

static void random_heap_stress(void **state)
{
	struct tw_loop *loop;
	assert_int_equal(tw_loop_new(&loop), 0);
	enum { N = 500 };
	static struct tw_timer ts[N];
	srand(7);
	for (int i = 0; i < N; i++) {
		tw_timer_init(&ts[i], on_timer);
		tw_timer_set(loop, &ts[i], (uint64_t)(rand() % 100000));
	}
	for (int i = 0; i < N; i += 3)
		tw_timer_cancel(loop, &ts[i]);
	for (int i = 1; i < N; i += 5)
		tw_timer_set(loop, &ts[i], (uint64_t)(rand() % 100000));
	size_t armed = 0;
	for (int i = 0; i < N; i++)
		armed += tw_timer_armed(&ts[i]) ? 1 : 0;
	assert_int_equal(armed, tw_loop_ntimers(loop));
	for (int i = 0; i < N; i++)
		tw_timer_cancel(loop, &ts[i]);
	assert_int_equal(tw_loop_ntimers(loop), 0);
	tw_loop_free(loop);
}

/* A timer pushed later keeps its old heap key (tw_timer_set's lazy path):
 * it must still fire only at its new deadline and in deadline order, also
 * when pushed back again after its key was renewed, and pulled earlier. */
static uint64_t fired_at[64];
static void on_timer_at(struct tw_loop *loop, struct tw_timer *t)
{
	struct rec *r = (struct rec *)t;
	fired_at[nfired] = tw_clock_ms();
	fired[nfired++] = r->id;
	if (nfired == 4)
		tw_loop_stop(loop);
}

static void timer_pushed_later(void **state)
{
	struct tw_loop *loop;
	assert_int_equal(tw_loop_new(&loop), 0);
	struct rec r[4];
	int delays[4] = {10, 30, 20, 200};
	nfired = 0;
	for (int i = 0; i < 4; i++) {
		r[i].id = i;
		tw_timer_init(&r[i].t, on_timer_at);
		tw_timer_set(loop, &r[i].t, (uint64_t)delays[i]);
	}
	uint64_t t0 = tw_clock_ms();
	tw_timer_set(loop, &r[0].t, 60); /* 10 -> 60: lazy, keeps key 10 */
	tw_timer_set(loop, &r[0].t, 80); /* and again */
	tw_timer_set(loop, &r[3].t, 40); /* 200 -> 40: earlier, re-heaped */
	tw_timer_set(loop, &r[2].t, 50); /* 20 -> 50 */
	tw_timer_set(loop, &r[2].t, 45); /* 50 -> 45: still later than its key */
	assert_int_equal(tw_loop_ntimers(loop), 4);
	assert_int_equal(tw_loop_run(loop), 0);
	int want[4] = {1, 3, 2, 0}; /* 30, 40, 45, 80 */
	uint64_t at[4] = {30, 40, 45, 80};
	for (int i = 0; i < 4; i++) {
		assert_int_equal(fired[i], want[i]);
		assert_true(fired_at[i] - t0 + 1 >= at[i]); /* never early (1 ms clock granularity) */
	}
	assert_int_equal(tw_loop_ntimers(loop), 0);
	tw_loop_free(loop);
}

static int io_events;
static void on_io(struct tw_loop *loop, struct tw_io *io, uint32_t ev)
{
	char buf[16];
	if (ev & EPOLLIN) {
		while (read(io->fd, buf, sizeof buf) > 0)
			io_events++;
		tw_loop_stop(loop);
	}
}

static int woke;
static void on_wake(struct tw_loop *loop, void *arg)
{
	woke++;
	tw_loop_stop(loop);
}

static void *waker(void *arg)
{
	usleep(10000);
	tw_loop_wake(g_loop);
	return NULL;
}

static void io_and_wake(void **state)
{
	struct tw_loop *loop;
	assert_int_equal(tw_loop_new(&loop), 0);
	int p[2];
	assert_int_equal(pipe2(p, O_NONBLOCK), 0);
	struct tw_io io = {.fd = p[0], .cb = on_io};
	assert_int_equal(tw_loop_add(loop, &io, EPOLLIN), 0);
	assert_int_equal(write(p[1], "x", 1), 1);
	assert_int_equal(tw_loop_run(loop), 0);
	assert_int_equal(io_events, 1);

	g_loop = loop;
	tw_loop_set_wake(loop, on_wake, NULL);
	pthread_t th;
	pthread_create(&th, NULL, waker, NULL);
	assert_int_equal(tw_loop_run(loop), 0);
	pthread_join(th, NULL);
	assert_int_equal(woke, 1);
	close(p[0]);
	close(p[1]);
	tw_loop_free(loop);
}

/* Posted tasks: FIFO, posting twice runs once, cancel, a task posted by a
 * task runs in the same pass, and they run before a zero-delay timer set
 * at the same time. */
struct trec {
	struct tw_task t;
	int id;
};
static int task_log[16];
static int ntask_log;
static struct trec tasks[4];
static struct tw_timer stop_timer;

static void on_task(struct tw_loop *loop, struct tw_task *t)
{
	struct trec *r = (struct trec *)t;
	task_log[ntask_log++] = r->id;
	if (r->id == 1)
		tw_task_post(loop, &tasks[3].t); /* runs in this pass, after 2 */
}

static void on_stop(struct tw_loop *loop, struct tw_timer *t)
{
	(void)t;
	task_log[ntask_log++] = 100;
	tw_loop_stop(loop);
}

static void tasks_run_once_in_order(void **state)
{
	(void)state;
	struct tw_loop *loop;
	assert_int_equal(tw_loop_new(&loop), 0);
	for (int i = 0; i < 4; i++) {
		tasks[i].id = i;
		tw_task_init(&tasks[i].t, on_task);
	}
	ntask_log = 0;
	tw_timer_init(&stop_timer, on_stop);
	tw_timer_set(loop, &stop_timer, 0);
	tw_task_post(loop, &tasks[1].t);
	tw_task_post(loop, &tasks[0].t);
	tw_task_post(loop, &tasks[2].t);
	tw_task_post(loop, &tasks[1].t); /* already posted: no-op */
	assert_true(tw_task_posted(&tasks[0].t));
	tw_task_cancel(loop, &tasks[0].t);
	assert_false(tw_task_posted(&tasks[0].t));
	tw_task_cancel(loop, &tasks[0].t); /* not posted: no-op */
	assert_int_equal(tw_loop_run(loop), 0);
	int want[] = {1, 2, 3, 100};
	assert_int_equal(ntask_log, 4);
	for (int i = 0; i < 4; i++)
		assert_int_equal(task_log[i], want[i]);
	for (int i = 0; i < 4; i++)
		assert_false(tw_task_posted(&tasks[i].t));
	tw_loop_free(loop);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(timers_fire_in_order),
		cmocka_unit_test(random_heap_stress),
		cmocka_unit_test(timer_pushed_later),
		cmocka_unit_test(io_and_wake),
		cmocka_unit_test(tasks_run_once_in_order),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
