/* Unit tests for src/k8s/cache.c: put/replace/get/del, the (ns, name) order
 * of tw_k8s_store_at, and 20,000 objects in random order. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "k8s/k8s.h"

static json_t *mk(const char *ns, const char *name, const char *rv)
{
	json_t *meta = json_pack("{s:s, s:s}", "name", name, "resourceVersion", rv);
	if (ns)
		json_object_set_new(meta, "namespace", json_string(ns));
	return json_pack("{s:o}", "metadata", meta);
}

static int put(struct tw_k8s_store *s, const char *ns, const char *name, const char *rv)
{
	json_t *o = mk(ns, name, rv);
	int rc = tw_k8s_store_put(s, o);
	json_decref(o);
	return rc;
}

static void basic(void **state)
{
	struct tw_k8s_store *s = tw_k8s_store_new();
	assert_non_null(s);
	assert_int_equal(tw_k8s_store_count(s), 0);
	assert_null(tw_k8s_store_at(s, 0));
	assert_int_equal(put(s, "b", "x", "1"), 0);
	assert_int_equal(put(s, "a", "y", "2"), 0);
	assert_int_equal(put(s, "a", "x", "3"), 0);
	assert_int_equal(put(s, NULL, "cluster", "4"), 0);
	assert_int_equal(tw_k8s_store_count(s), 4);
	const char *order[][2] = {{"", "cluster"}, {"a", "x"}, {"a", "y"}, {"b", "x"}};
	for (size_t i = 0; i < 4; i++) {
		const struct tw_k8s_obj *o = tw_k8s_store_at(s, i);
		assert_string_equal(o->ns, order[i][0]);
		assert_string_equal(o->name, order[i][1]);
	}
	/* replace keeps the count and updates rv */
	assert_int_equal(put(s, "a", "x", "30"), 0);
	assert_int_equal(tw_k8s_store_count(s), 4);
	assert_string_equal(tw_k8s_store_get(s, "a", "x")->rv, "30");
	assert_null(tw_k8s_store_get(s, "a", "z"));
	assert_non_null(tw_k8s_store_get(s, NULL, "cluster"));
	assert_int_equal(tw_k8s_store_del(s, "a", "x"), 0);
	assert_int_equal(tw_k8s_store_del(s, "a", "x"), TW_ENOENT);
	assert_int_equal(tw_k8s_store_count(s), 3);
	assert_string_equal(tw_k8s_store_at(s, 1)->name, "y");
	tw_k8s_store_free(s);
	tw_k8s_store_free(NULL);
}

static void invalid(void **state)
{
	struct tw_k8s_store *s = tw_k8s_store_new();
	json_t *o = json_pack("{s:{}}", "metadata");
	assert_int_equal(tw_k8s_store_put(s, o), TW_EINVAL);
	json_decref(o);
	o = json_string("x");
	assert_int_equal(tw_k8s_store_put(s, o), TW_EINVAL);
	json_decref(o);
	assert_int_equal(tw_k8s_store_put(s, NULL), TW_EINVAL);
	tw_k8s_store_free(s);
}

/* The store holds its own reference. */
static void reference(void **state)
{
	struct tw_k8s_store *s = tw_k8s_store_new();
	json_t *o = mk("ns", "n", "1");
	assert_int_equal(tw_k8s_store_put(s, o), 0);
	assert_int_equal(o->refcount, 2);
	json_decref(o);
	assert_ptr_equal(tw_k8s_store_get(s, "ns", "n")->obj, o);
	tw_k8s_store_free(s);
}

static void many(void **state)
{
	enum { N = 20000 };
	struct tw_k8s_store *s = tw_k8s_store_new();
	unsigned *perm = malloc(N * sizeof *perm);
	for (unsigned i = 0; i < N; i++)
		perm[i] = i;
	srand(7);
	for (unsigned i = N - 1; i > 0; i--) {
		unsigned j = (unsigned)rand() % (i + 1), t = perm[i];
		perm[i] = perm[j];
		perm[j] = t;
	}
	char ns[16], name[16];
	for (unsigned i = 0; i < N; i++) {
		snprintf(ns, sizeof ns, "ns%02u", perm[i] % 37);
		snprintf(name, sizeof name, "obj%06u", perm[i]);
		assert_int_equal(put(s, ns, name, "1"), 0);
	}
	assert_int_equal(tw_k8s_store_count(s), N);
	for (size_t i = 1; i < N; i++) {
		const struct tw_k8s_obj *a = tw_k8s_store_at(s, i - 1), *b = tw_k8s_store_at(s, i);
		int d = strcmp(a->ns, b->ns);
		assert_true(d < 0 || (d == 0 && strcmp(a->name, b->name) < 0));
	}
	for (unsigned i = 0; i < N; i += 2) {
		snprintf(ns, sizeof ns, "ns%02u", i % 37);
		snprintf(name, sizeof name, "obj%06u", i);
		assert_non_null(tw_k8s_store_get(s, ns, name));
		assert_int_equal(tw_k8s_store_del(s, ns, name), 0);
	}
	assert_int_equal(tw_k8s_store_count(s), N / 2);
	free(perm);
	tw_k8s_store_free(s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(basic),
	    cmocka_unit_test(invalid),
	    cmocka_unit_test(reference),
	    cmocka_unit_test(many),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
