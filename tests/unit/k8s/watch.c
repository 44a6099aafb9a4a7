/* Unit tests for src/k8s/watch.c: the event line parser at every chunk
 * boundary, its cap and errors; the informer's relist diff and event
 * application; and list paging + watch + 410 relist against a scripted
 * HTTP server on loopback. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "k8s/watch.h"

static const char stream[] =
    "{\"type\":\"ADDED\",\"object\":{\"metadata\":{\"name\":\"a\",\"namespace\":\"x\","
    "\"resourceVersion\":\"1\"}}}\n"
    "\r\n"
    "{\"type\":\"MODIFIED\",\"object\":{\"metadata\":{\"name\":\"a\",\"namespace\":\"x\","
    "\"resourceVersion\":\"2\"}}}\r\n"
    "{\"type\":\"BOOKMARK\",\"object\":{\"metadata\":{\"resourceVersion\":\"7\"}}}\n"
    "{\"type\":\"DELETED\",\"object\":{\"metadata\":{\"name\":\"a\",\"namespace\":\"x\","
    "\"resourceVersion\":\"8\"}}}\n"
    "{\"type\":\"ERROR\",\"object\":{\"kind\":\"Status\",\"code\":410,\"message\":\"too old\"}}\n";

/* Feed s in slices of `step` bytes; collect event types. */
static size_t feed(const char *s, size_t len, size_t step, size_t cap, int *types, long *codes,
                   int *end)
{
	struct tw_k8s_watch_lines p;
	tw_k8s_watch_lines_init(&p, cap);
	size_t n = 0;
	*end = TW_EAGAIN;
	for (size_t off = 0; off < len && *end == TW_EAGAIN; off += step) {
		size_t left = len - off < step ? len - off : step;
		const char *q = s + off;
		while (left > 0) {
			struct tw_k8s_event ev;
			struct tw_err e = {0};
			size_t used;
			int rc = tw_k8s_watch_lines_next(&p, q, left, &used, &ev, &e);
			q += used;
			left -= used;
			if (rc == TW_EAGAIN)
				break;
			if (rc < 0) {
				*end = rc;
				break;
			}
			types[n] = (int)ev.type;
			codes[n++] = ev.code;
			tw_k8s_event_clear(&ev);
		}
	}
	tw_k8s_watch_lines_free(&p);
	return n;
}

static void lines_any_boundary(void **state)
{
	size_t len = strlen(stream);
	for (size_t step = 1; step <= len; step++) {
		int types[16], end;
		long codes[16];
		size_t n = feed(stream, len, step, 0, types, codes, &end);
		assert_int_equal(n, 5);
		assert_int_equal(end, TW_EAGAIN);
		assert_int_equal(types[0], TW_K8S_EV_ADDED);
		assert_int_equal(types[1], TW_K8S_EV_MODIFIED);
		assert_int_equal(types[2], TW_K8S_EV_BOOKMARK);
		assert_int_equal(types[3], TW_K8S_EV_DELETED);
		assert_int_equal(types[4], TW_K8S_EV_ERROR);
		assert_int_equal(codes[4], 410);
	}
}

static void lines_cap_and_errors(void **state)
{
	int types[16], end;
	long codes[16];
	char big[300];
	int k = snprintf(big, sizeof big,
	                 "{\"type\":\"ADDED\",\"object\":{\"metadata\":{\"name\":\"%0200d\","
	                 "\"resourceVersion\":\"1\"}}}\n",
	                 0);
	assert_true(k > 200 && (size_t)k < sizeof big);
	for (size_t step = 1; step < 40; step += 7) {
		assert_int_equal(feed(big, (size_t)k, step, 128, types, codes, &end), 0);
		assert_int_equal(end, TW_ELIMIT);
		assert_int_equal(feed(big, (size_t)k, step, 0, types, codes, &end), 1);
		assert_int_equal(end, TW_EAGAIN);
	}
	static const char *bad[] = {
	    "nope\n",
	    "[]\n",
	    "{\"type\":\"ADDED\"}\n",
	    "{\"type\":\"ADDED\",\"object\":[]}\n",
	    "{\"type\":\"SOMETHING\",\"object\":{}}\n",
	    "{\"type\":\"ADDED\",\"object\":{\"metadata\":{\"name\":\"a\"}}}\n", /* no rv */
	    "{\"type\":\"ADDED\",\"object\":{\"metadata\":{\"resourceVersion\":\"1\"}}}\n", /* no
	                                                                                       name
	                                                                                     */
	    "{\"type\":\"ADDED\",\"type\":\"DELETED\",\"object\":{}}\n",
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		assert_int_equal(feed(bad[i], strlen(bad[i]), 3, 0, types, codes, &end), 0);
		assert_int_equal(end, TW_EPROTO);
	}
	/* a partial last line is not an event yet */
	const char *part = "{\"type\":\"ADDED\",\"object\":{\"metadata\":{\"name\":\"a\","
	                   "\"resourceVersion\":\"1\"}}}";
	assert_int_equal(feed(part, strlen(part), 5, 0, types, codes, &end), 0);
	assert_int_equal(end, TW_EAGAIN);
}

static json_t *mk(const char *ns, const char *name, const char *rv)
{
	return json_pack("{s:{s:s, s:s, s:s}}", "metadata", "namespace", ns, "name", name,
	                 "resourceVersion", rv);
}

static int changes;
static void on_change(void *arg)
{
	changes++;
}

static void replace_diff(void **state)
{
	struct tw_k8s_store *s = tw_k8s_store_new(), *fresh = tw_k8s_store_new();
	struct tw_k8s_watch_opts o = {
	    .kind = "test", .path = "/x", .ns = "a", .store = s, .on_change = on_change};
	struct tw_k8s_watch *w;
	assert_int_equal(tw_k8s_watch_new(&o, NULL, NULL, &w), 0);
	json_t *j;
	/* the store: a/1 a/2 (ours), b/1 (another informer's) */
	const char *init[][3] = {{"a", "1", "10"}, {"a", "2", "11"}, {"b", "1", "12"}};
	for (size_t i = 0; i < 3; i++) {
		j = mk(init[i][0], init[i][1], init[i][2]);
		tw_k8s_store_put(s, j);
		json_decref(j);
	}
	/* the list: a/2 changed, a/3 new, a/1 gone; b/9 outside our namespace */
	const char *list[][3] = {{"a", "2", "20"}, {"a", "3", "21"}, {"b", "9", "22"}};
	for (size_t i = 0; i < 3; i++) {
		j = mk(list[i][0], list[i][1], list[i][2]);
		tw_k8s_store_put(fresh, j);
		json_decref(j);
	}
	size_t changed;
	changes = 0;
	assert_int_equal(tw_k8s_watch_replace(w, fresh, &changed), 0);
	assert_int_equal(changed, 3);
	assert_int_equal(changes, 1);
	assert_null(tw_k8s_store_get(s, "a", "1"));
	assert_string_equal(tw_k8s_store_get(s, "a", "2")->rv, "20");
	assert_non_null(tw_k8s_store_get(s, "a", "3"));
	assert_non_null(tw_k8s_store_get(s, "b", "1"));
	assert_null(tw_k8s_store_get(s, "b", "9"));
	assert_int_equal(atomic_load(&tw_k8s_watch_stats(w)->objects), 2);
	/* the same list again changes nothing */
	assert_int_equal(tw_k8s_watch_replace(w, fresh, &changed), 0);
	assert_int_equal(changed, 0);
	assert_int_equal(changes, 1);

	/* events */
	struct tw_k8s_event ev = {.type = TW_K8S_EV_DELETED, .object = mk("a", "2", "30")};
	struct tw_err err;
	assert_int_equal(tw_k8s_watch_apply(w, &ev, &err), 0);
	assert_null(tw_k8s_store_get(s, "a", "2"));
	assert_string_equal(tw_k8s_watch_rv(w), "30");
	assert_int_equal(atomic_load(&tw_k8s_watch_stats(w)->objects), 1);
	ev.type = TW_K8S_EV_ADDED; /* back, then modified: counted once */
	assert_int_equal(tw_k8s_watch_apply(w, &ev, &err), 0);
	assert_int_equal(tw_k8s_watch_apply(w, &ev, &err), 0);
	assert_int_equal(atomic_load(&tw_k8s_watch_stats(w)->objects), 2);
	ev.type = TW_K8S_EV_DELETED;
	assert_int_equal(tw_k8s_watch_apply(w, &ev, &err), 0);
	assert_int_equal(tw_k8s_watch_apply(w, &ev, &err), 0); /* already gone: no change */
	assert_int_equal(atomic_load(&tw_k8s_watch_stats(w)->objects), 1);
	tw_k8s_event_clear(&ev);
	ev = (struct tw_k8s_event){.type = TW_K8S_EV_BOOKMARK,
	                           .object =
	                               json_pack("{s:{s:s}}", "metadata", "resourceVersion", "40")};
	assert_int_equal(tw_k8s_watch_apply(w, &ev, &err), 0);
	assert_string_equal(tw_k8s_watch_rv(w), "40");
	tw_k8s_event_clear(&ev);
	ev = (struct tw_k8s_event){.type = TW_K8S_EV_ADDED, .object = mk("b", "5", "41")};
	assert_int_equal(tw_k8s_watch_apply(w, &ev, &err), TW_EPROTO); /* other namespace */
	tw_k8s_event_clear(&ev);
	ev = (struct tw_k8s_event){
	    .type = TW_K8S_EV_ERROR, .code = 410, .object = json_pack("{s:i}", "code", 410)};
	assert_int_equal(tw_k8s_watch_apply(w, &ev, &err), TW_ENOENT);
	tw_k8s_event_clear(&ev);
	tw_k8s_watch_free(w);
	tw_k8s_store_free(fresh);
	tw_k8s_store_free(s);
}

/* status_quiet: our own status write coming back (status and
 * resourceVersion only) updates the store without waking the apply thread;
 * a spec change still does. */
static void status_quiet(void **state)
{
	(void)state;
	struct tw_k8s_store *s = tw_k8s_store_new();
	struct tw_k8s_watch_opts o = {.kind = "test", .path = "/x", .store = s, .on_change = on_change, .status_quiet = 1};
	struct tw_k8s_watch *w;
	assert_int_equal(tw_k8s_watch_new(&o, NULL, NULL, &w), 0);
	struct tw_err err;
	json_t *spec = json_pack("{s:i}", "x", 1);
	struct tw_k8s_event ev = {.type = TW_K8S_EV_ADDED,
	                          .object = json_pack("{s:{s:s, s:s, s:s, s:i}, s:O}", "metadata", "namespace", "a",
	                                              "name", "r", "resourceVersion", "1", "generation", 1, "spec",
	                                              spec)};
	changes = 0;
	assert_int_equal(tw_k8s_watch_apply(w, &ev, &err), 0);
	assert_int_equal(changes, 1);
	tw_k8s_event_clear(&ev);
	ev = (struct tw_k8s_event){.type = TW_K8S_EV_MODIFIED,
	                           .object = json_pack("{s:{s:s, s:s, s:s, s:i}, s:O, s:{s:[]}}", "metadata",
	                                               "namespace", "a", "name", "r", "resourceVersion", "2",
	                                               "generation", 1, "spec", spec, "status", "parents")};
	assert_int_equal(tw_k8s_watch_apply(w, &ev, &err), 0);
	assert_int_equal(changes, 1);                                 /* status only: quiet */
	assert_string_equal(tw_k8s_store_get(s, "a", "r")->rv, "2"); /* but stored */
	tw_k8s_event_clear(&ev);
	json_object_set_new(spec, "x", json_integer(2));
	ev = (struct tw_k8s_event){.type = TW_K8S_EV_MODIFIED,
	                           .object = json_pack("{s:{s:s, s:s, s:s, s:i}, s:O, s:{s:[]}}", "metadata",
	                                               "namespace", "a", "name", "r", "resourceVersion", "3",
	                                               "generation", 2, "spec", spec, "status", "parents")};
	assert_int_equal(tw_k8s_watch_apply(w, &ev, &err), 0);
	assert_int_equal(changes, 2); /* the spec changed */
	tw_k8s_event_clear(&ev);
	json_decref(spec);
	tw_k8s_watch_free(w);
	tw_k8s_store_free(s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(lines_any_boundary),
	    cmocka_unit_test(lines_cap_and_errors),
	    cmocka_unit_test(replace_diff),
	    cmocka_unit_test(status_quiet),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
