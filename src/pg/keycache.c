/* keycache.c — master keys kept in the kernel's user keyring (see keycache.h). */
#include "pg/keycache.h"

#include <linux/keyctl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "backup/crypto.h"

#define CACHE_SECONDS 3600
/* key permissions (keyutils.h; not in the kernel's uapi headers) */
#define POS_ALL 0x3f000000u
#define USR_VIEW 0x00010000u
#define USR_READ 0x00020000u
#define USR_SEARCH 0x00080000u

static void describe(const char *location, const char *pw, size_t pwlen, char out[64])
{
	/* SHA-256 over a label, the location and the password: a different
	 * password or repository never finds this key */
	size_t ll = strlen(location), n = 20 + ll + 1 + pwlen;
	uint8_t *b = malloc(n), h[32];
	char hex[65];
	if (b == NULL) {
		out[0] = '\0';
		return;
	}
	memcpy(b, "tapwork keycache v1", 20);
	memcpy(b + 20, location, ll + 1);
	memcpy(b + 21 + ll, pw, pwlen);
	tw_crypto_sha256(b, n, h);
	memset(b, 0, n);
	free(b);
	tw_hex(h, 16, hex);
	snprintf(out, 64, "tapwork:v1:%s", hex);
}

static int cache_get(const char *desc, uint8_t master[TW_MASTER_LEN])
{
	long id = syscall(SYS_keyctl, KEYCTL_SEARCH, KEY_SPEC_USER_KEYRING, "user", desc, 0);
	if (id < 0)
		return -1;
	long n = syscall(SYS_keyctl, KEYCTL_READ, id, master, (size_t)TW_MASTER_LEN);
	return n == TW_MASTER_LEN ? 0 : -1;
}

static void cache_put(const char *desc, const struct tw_keys *k)
{
	uint8_t m[TW_MASTER_LEN];
	memcpy(m, k->enc, TW_KEY_LEN);
	memcpy(m + TW_KEY_LEN, k->mac, TW_KEY_LEN);
	memcpy(m + 2 * TW_KEY_LEN, k->seed, TW_KEY_LEN);
	long id = syscall(SYS_add_key, "user", desc, m, sizeof m, KEY_SPEC_USER_KEYRING);
	memset(m, 0, sizeof m);
	if (id < 0)
		return;
	/* this user's processes may find and read it; nobody else */
	syscall(SYS_keyctl, KEYCTL_SETPERM, id,
	        (unsigned long)(POS_ALL | USR_VIEW | USR_READ | USR_SEARCH));
	syscall(SYS_keyctl, KEYCTL_SET_TIMEOUT, id, (unsigned long)CACHE_SECONDS);
}

int tw_pgkc_open(struct tw_bopts *o, const char *cmd, unsigned flags, struct tw_repo **r)
{
	const char *off = getenv("TAPWORK_KEY_CACHE");
	if (off != NULL && strcmp(off, "0") == 0)
		return tw_bopts_open(o, cmd, flags, r);
	*r = NULL;
	tw_bopts_env(o);
	if (o->repo == NULL || o->repo[0] == '\0')
		return tw_bopts_open(o, cmd, flags, r); /* prints the error */
	char *pw;
	size_t len;
	if (tw_bopts_password(o, "TAPWORK_PASSWORD", "TAPWORK_PASSWORD_FILE", &pw, &len) != 0)
		return TW_EXIT_ERROR;
	char desc[64];
	uint8_t master[TW_MASTER_LEN];
	struct tw_err e = {0};
	describe(o->repo, pw, len, desc);
	if (desc[0] != '\0' && cache_get(desc, master) == 0) {
		int rc = tw_repo_open_master(o->repo, master, r, &e);
		memset(master, 0, sizeof master);
		if (rc == 0) {
			memset(pw, 0, len);
			free(pw);
			return tw_bopts_ready(r, cmd, flags);
		}
	}
	int rc = tw_repo_open(o->repo, pw, len, r, &e);
	memset(pw, 0, len);
	free(pw);
	if (rc != 0) {
		fprintf(stderr, "tapwork: %s\n", e.msg);
		return TW_EXIT_ERROR;
	}
	if (desc[0] != '\0')
		cache_put(desc, &(*r)->keys);
	return tw_bopts_ready(r, cmd, flags);
}
