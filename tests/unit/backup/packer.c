/* Unit tests for src/backup/packer.c: blobs of mixed sizes (staged small
 * ones, large ones written directly) land in packs in order, across pack
 * boundaries, and read back intact through the index. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "backup/packer.h"
#include "backup/repo.h"

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

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(mixed_sizes_round_trip, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
