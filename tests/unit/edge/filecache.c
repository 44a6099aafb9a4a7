/* Unit tests for src/edge/filecache.c: hits within the time, a change in
 * place seen at once (new validators), a rename seen only after the time,
 * remembered failures, paths out of the root refused, references that
 * outlive an eviction. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "edge/filecache.h"

static char dir[64];
static int dfd;
static const int route_a = 1, route_b = 2;

static void put_file(const char *name, const char *text)
{
	char p[256];
	snprintf(p, sizeof p, "%s/%s", dir, name);
	FILE *f = fopen(p, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
}

static int setup(void **state)
{
	(void)state;
	snprintf(dir, sizeof dir, "/tmp/tw-fcache-XXXXXX");
	assert_non_null(mkdtemp(dir));
	dfd = open(dir, O_PATH | O_DIRECTORY);
	assert_true(dfd >= 0);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	char cmd[128];
	snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
	assert_int_equal(system(cmd), 0);
	close(dfd);
	return 0;
}

static void hit_and_change_in_place(void **state)
{
	(void)state;
	put_file("a.txt", "one\n");
	struct tw_fcache_ent *e = tw_fcache_get(dfd, 1, &route_a, "a.txt", 1000);
	assert_non_null(e);
	assert_int_equal(e->st.st_size, 4);
	char etag[48];
	memcpy(etag, e->etag, sizeof etag);
	assert_true(e->etag[0] == '"' && e->lm_len > 20);
	struct tw_fcache_ent *again = tw_fcache_get(dfd, 1, &route_a, "a.txt", 1500);
	assert_ptr_equal(again, e); /* the same descriptor */
	tw_fcache_put(again);
	/* written in place: the next lookup says so */
	put_file("a.txt", "two, longer\n");
	again = tw_fcache_get(dfd, 1, &route_a, "a.txt", 1600);
	assert_ptr_equal(again, e);
	assert_int_equal(again->st.st_size, 12);
	assert_true(strcmp(again->etag, etag) != 0);
	tw_fcache_put(again);
	tw_fcache_put(e);
	/* another generation or route is another entry */
	struct tw_fcache_ent *g2 = tw_fcache_get(dfd, 2, &route_a, "a.txt", 1600);
	struct tw_fcache_ent *rb = tw_fcache_get(dfd, 1, &route_b, "a.txt", 1600);
	assert_non_null(g2);
	assert_non_null(rb);
	assert_ptr_not_equal(g2, rb);
	tw_fcache_put(g2);
	tw_fcache_put(rb);
}

static void rename_seen_after_the_time(void **state)
{
	(void)state;
	put_file("b.txt", "old\n");
	struct tw_fcache_ent *e = tw_fcache_get(dfd, 1, &route_a, "b.txt", 10000);
	assert_non_null(e);
	put_file("b.new", "brand new\n");
	char from[256], to[256];
	snprintf(from, sizeof from, "%s/b.new", dir);
	snprintf(to, sizeof to, "%s/b.txt", dir);
	assert_int_equal(rename(from, to), 0);
	/* within the time: the old file, whole and with its own validators */
	struct tw_fcache_ent *h =
	    tw_fcache_get(dfd, 1, &route_a, "b.txt", 10000 + TW_FCACHE_TTL_MS - 1);
	assert_ptr_equal(h, e);
	assert_int_equal(h->st.st_size, 4);
	char buf[16];
	assert_int_equal(pread(h->fd, buf, sizeof buf, 0), 4);
	tw_fcache_put(h);
	/* after: the new one; the old entry still sends for its holder */
	struct tw_fcache_ent *n =
	    tw_fcache_get(dfd, 1, &route_a, "b.txt", 10000 + TW_FCACHE_TTL_MS);
	assert_non_null(n);
	assert_ptr_not_equal(n, e);
	assert_int_equal(n->st.st_size, 10);
	assert_int_equal(pread(e->fd, buf, sizeof buf, 0), 4);
	assert_memory_equal(buf, "old\n", 4);
	tw_fcache_put(e); /* the last reference closes it */
	tw_fcache_put(n);
}

static void failures_remembered_and_escapes_refused(void **state)
{
	(void)state;
	errno = 0;
	assert_null(tw_fcache_get(dfd, 1, &route_a, "missing.txt", 20000));
	assert_int_equal(errno, ENOENT);
	put_file("missing.txt", "now here\n");
	errno = 0;
	assert_null(tw_fcache_get(dfd, 1, &route_a, "missing.txt", 20500)); /* remembered */
	assert_int_equal(errno, ENOENT);
	struct tw_fcache_ent *e =
	    tw_fcache_get(dfd, 1, &route_a, "missing.txt", 20000 + TW_FCACHE_TTL_MS);
	assert_non_null(e);
	tw_fcache_put(e);
	/* RESOLVE_BENEATH: no way out of the root, by .. or by a link */
	errno = 0;
	assert_null(tw_fcache_get(dfd, 1, &route_a, "../etc/passwd", 20000));
	assert_int_equal(errno, EXDEV);
	char link[256];
	snprintf(link, sizeof link, "%s/out", dir);
	assert_int_equal(symlink("/etc/passwd", link), 0);
	errno = 0;
	assert_null(tw_fcache_get(dfd, 1, &route_a, "out", 20000));
	assert_int_equal(errno, EXDEV);
	tw_fcache_put(NULL);
}

static void table_is_bounded(void **state)
{
	(void)state;
	for (int i = 0; i < 3 * TW_FCACHE_SLOTS; i++) {
		char name[32];
		snprintf(name, sizeof name, "f%d", i);
		put_file(name, "x");
		struct tw_fcache_ent *e = tw_fcache_get(dfd, 1, &route_a, name, 30000);
		assert_non_null(e);
		tw_fcache_put(e);
	}
	assert_true(tw_fcache_count() <= TW_FCACHE_SLOTS);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(hit_and_change_in_place),
	    cmocka_unit_test(rename_seen_after_the_time),
	    cmocka_unit_test(failures_remembered_and_escapes_refused),
	    cmocka_unit_test(table_is_bounded),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
