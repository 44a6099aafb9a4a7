/* Fuzz target: the static path normaliser (src/http/static_path.c). The
 * first byte picks allow_hidden, the rest is the path (an exact-size copy).
 * On success the output must be safe whatever the input: no leading '/',
 * no empty, "." or ".." segment, no NUL (before its end), backslash or
 * control byte, well-formed UTF-8, no hidden segment unless allowed; and
 * normalising the output again (as "/" + out) gives the same output. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "http/static_path.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(const char *out, int allow_hidden)
{
	size_t n = strlen(out);
	if (n && (out[0] == '/' || out[n - 1] == '/'))
		abort();
	size_t s = 0;
	for (size_t i = 0; i <= n; i++) {
		if (i < n && ((unsigned char)out[i] < 0x20 || out[i] == 0x7f || out[i] == '\\'))
			abort();
		if (i == n || out[i] == '/') {
			size_t l = i - s;
			if (n && l == 0)
				abort();
			if (l && out[s] == '.' && (!allow_hidden || l == 1 || (l == 2 && out[s + 1] == '.')))
				abort();
			s = i + 1;
		}
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size == 0)
		return 0;
	int allow_hidden = data[0] & 1;
	char *p = malloc(size - 1 ? size - 1 : 1);
	if (p == NULL)
		return 0;
	memcpy(p, data + 1, size - 1);
	char out[512];
	int dir;
	if (tw_static_path(p, size - 1, allow_hidden, out, sizeof out, &dir) == 0) {
		check(out, allow_hidden);
		/* idempotent (the output has no '%': encode it back first) */
		char again[1536], out2[512];
		size_t k = 0;
		again[k++] = '/';
		for (size_t i = 0; out[i]; i++) {
			if (out[i] == '%') {
				memcpy(again + k, "%25", 3);
				k += 3;
			} else {
				again[k++] = out[i];
			}
		}
		int dir2;
		if (tw_static_path(again, k, allow_hidden, out2, sizeof out2, &dir2) != 0 || strcmp(out, out2) != 0)
			abort();
	}
	free(p);
	return 0;
}
