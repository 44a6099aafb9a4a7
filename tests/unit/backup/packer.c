/* Unit tests for src/backup/packer.c: blobs of mixed sizes (staged small
 * ones, large ones written directly) land in packs in order, across pack
 * boundaries, and read back intact through the index; with a storage that
 * has no streaming writer (S3), full packs wait for the writer instead of
 * piling up in memory. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "backup/packer.h"
#include "backup/repo.h"
#include "../storage/passthru.h"

static char root[256];

static int setup(void **state)
{
	(void)state;
	snprintf(root, sizeof root, "/tmp/tw-packer-XXXXXX");
	assert_non_null(mkdtemp(root));
	strncat(root, "/r", sizeof root - strlen(root) - 1);
	struct tw_err e = {0};
	assert_int_equal(tw_repo_init(root, "pw", 2, 1u << 20, &e), 0); /* 1 MiB packs */
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	char cmd[400];
	snprintf(cmd, sizeof cmd, "rm -rf '%.*s'", (int)(strlen(root) - 2), root);
	return system(cmd) == 0 ? 0 : -1;
}

static uint64_t rnd_state = 0x9e3779b97f4a7c15ull;

static uint8_t rnd_byte(void)
{
	rnd_state ^= rnd_state << 13;
	rnd_state ^= rnd_state >> 7;
	rnd_state ^= rnd_state << 17;
	return (uint8_t)rnd_state;
}

static void mixed_sizes_round_trip(void **state)
{
	(void)state;
	struct tw_repo *r = NULL;
	struct tw_err e = {0};
	assert_int_equal(tw_repo_open(root, "pw", 2, &r, &e), 0);
	struct tw_packer pk;
	assert_int_equal(tw_packer_init(&pk, r, TW_BLOB_DATA), 0);
	assert_int_equal(tw_packer_start_writer(&pk, 1), 0);
	/* small (staged), just over half the stage, larger than the stage,
	 * and small again right after a large one */
	static const size_t sizes[] = {100,    5000,   600000, 10,     2000000, 300,
				       524288, 524289, 70000,  1048576, 1,     900000};
	enum { N = sizeof sizes / sizeof sizes[0] };
	uint8_t ids[N][TW_ID_LEN];
	uint8_t *plain[N];
	for (size_t i = 0; i < N; i++) {
		plain[i] = malloc(sizes[i]);
		assert_non_null(plain[i]);
		for (size_t k = 0; k < sizes[i]; k++)
			plain[i][k] = rnd_byte();
		plain[i][0] = (uint8_t)i; /* distinct even for tiny sizes */
		assert_int_equal(tw_crypto_id(&r->keys, plain[i], sizes[i], ids[i]), 0);
		uint8_t *out = malloc(sizes[i] + TW_SEAL_OVERHEAD);
		assert_non_null(out);
		size_t olen;
		uint8_t flags;
		assert_int_equal(tw_blob_seal(&r->keys, NULL, 3, TW_BLOB_DATA, ids[i], plain[i],
					      sizes[i], NULL, out, &olen, &flags),
				 0);
		assert_int_equal(tw_packer_add(&pk, ids[i], flags, out, olen, (uint32_t)sizes[i], &e), 0);
		free(out);
	}
	assert_int_equal(tw_packer_flush(&pk, &e), 0);
	assert_true(pk.packs_written >= 3);
	tw_packer_free(&pk);
	for (size_t i = 0; i < N; i++) {
		uint8_t *back = NULL;
		size_t n = 0;
		assert_int_equal(tw_repo_read_blob(r, ids[i], &back, &n, &e), 0);
		assert_int_equal(n, sizes[i]);
		assert_memory_equal(back, plain[i], sizes[i]);
		free(back);
		free(plain[i]);
	}
	tw_repo_close(r);
}

/* ---- buffered mode: a storage without a writer whose pack puts wait on a gate */

struct gate_st {
	struct passthru pt; /* first: the storage the repository sees */
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int open;
	atomic_int data_puts; /* pack puts begun */
};

static int g_put(struct tw_storage *s, enum tw_st_type t, const char *name, const void *buf,
		 size_t len, int flags, struct tw_err *e)
{
	struct gate_st *g = (struct gate_st *)s;
	if (t == TW_ST_DATA) {
		atomic_fetch_add(&g->data_puts, 1);
		pthread_mutex_lock(&g->mu);
		while (!g->open)
			pthread_cond_wait(&g->cv, &g->mu);
		pthread_mutex_unlock(&g->mu);
	}
	return passthru_put(s, t, name, buf, len, flags, e);
}

static const struct tw_storage_ops gate_ops = PASSTHRU_OPS(g_put);

enum { NB = 16, BLOB = 300000 }; /* 1 MiB packs: a pack is full after 4 blobs */

struct adder {
	struct tw_packer *pk;
	struct tw_repo *r;
	uint8_t ids[NB][TW_ID_LEN];
	uint8_t *plain[NB];
	atomic_int done; /* tw_packer_add calls returned */
};

static void *add_all(void *arg)
{
	struct adder *a = arg;
	uint8_t *out = malloc(BLOB + TW_SEAL_OVERHEAD);
	for (int i = 0; i < NB && out != NULL; i++) {
		size_t olen;
		uint8_t flags;
		struct tw_err e = {0};
		if (tw_blob_seal(&a->r->keys, NULL, 3, TW_BLOB_DATA, a->ids[i], a->plain[i], BLOB,
				 NULL, out, &olen, &flags) != 0 ||
		    tw_packer_add(a->pk, a->ids[i], flags, out, olen, BLOB, &e) != 0)
			break;
		atomic_fetch_add(&a->done, 1);
	}
	free(out);
	return NULL;
}

static void buffered_packs_wait_for_writer(void **state)
{
	(void)state;
	struct tw_repo *r = NULL;
	struct tw_err e = {0};
	assert_int_equal(tw_repo_open(root, "pw", 2, &r, &e), 0);
	struct gate_st g = {.pt = {.base = {&gate_ops}, .inner = r->st}};
	pthread_mutex_init(&g.mu, NULL);
	pthread_cond_init(&g.cv, NULL);
	r->st = &g.pt.base;

	struct tw_packer pk;
	assert_int_equal(tw_packer_init(&pk, r, TW_BLOB_DATA), 0);
	assert_false(pk.stream);
	assert_int_equal(tw_packer_start_writer(&pk, 1), 0);
	static struct adder a;
	memset(&a, 0, sizeof a);
	a.pk = &pk;
	a.r = r;
	for (int i = 0; i < NB; i++) {
		a.plain[i] = malloc(BLOB);
		assert_non_null(a.plain[i]);
		for (size_t k = 0; k < BLOB; k++)
			a.plain[i][k] = rnd_byte();
		assert_int_equal(tw_crypto_id(&r->keys, a.plain[i], BLOB, a.ids[i]), 0);
	}
	pthread_t th;
	assert_int_equal(pthread_create(&th, NULL, add_all, &a), 0);
	/* the first pack reaches the (closed) gate; give the adder time to run ahead */
	for (int i = 0; i < 500 && atomic_load(&g.data_puts) == 0; i++)
		usleep(10000);
	assert_int_equal(atomic_load(&g.data_puts), 1);
	for (int i = 0; i < 1000 && atomic_load(&a.done) < 7; i++) /* ≤ 10 s on a busy machine */
		usleep(10000);
	usleep(300000); /* room to run further if nothing held it */
	/* depth 1: one pack at the storage, the next one full and waiting — the
	 * add that fills the second pack (the 8th blob) does not return */
	assert_int_equal(atomic_load(&a.done), 7);
	assert_int_equal(atomic_load(&g.data_puts), 1);

	pthread_mutex_lock(&g.mu);
	g.open = 1;
	pthread_cond_broadcast(&g.cv);
	pthread_mutex_unlock(&g.mu);
	assert_int_equal(pthread_join(th, NULL), 0);
	assert_int_equal(atomic_load(&a.done), NB);
	assert_int_equal(tw_packer_flush(&pk, &e), 0);
	assert_int_equal(pk.packs_written, 4);
	tw_packer_free(&pk);
	for (int i = 0; i < NB; i++) {
		uint8_t *back = NULL;
		size_t n = 0;
		assert_int_equal(tw_repo_read_blob(r, a.ids[i], &back, &n, &e), 0);
		assert_int_equal(n, BLOB);
		assert_memory_equal(back, a.plain[i], BLOB);
		free(back);
		free(a.plain[i]);
	}
	r->st = g.pt.inner;
	tw_repo_close(r);
	pthread_cond_destroy(&g.cv);
	pthread_mutex_destroy(&g.mu);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(mixed_sizes_round_trip, setup, teardown),
		cmocka_unit_test_setup_teardown(buffered_packs_wait_for_writer, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
