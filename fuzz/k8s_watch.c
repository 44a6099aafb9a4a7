/* fuzz/k8s_watch.c — libFuzzer target for the Kubernetes watch stream
 * parser (src/k8s/watch.c: tw_k8s_watch_lines_next).
 *
 * Input: one byte seeding the slice sizes, then the stream. The stream is
 * parsed twice — whole, and cut into pseudo-random slices (1..64 bytes) —
 * with a small line cap (4 KiB); both must give the same events (type,
 * code, object text) and stop on the same error: chunk boundaries never
 * matter. Every event must carry an object. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "k8s/watch.h"

#define CAP 4096
#define MAXEV 256

struct run {
	int type[MAXEV];
	long code[MAXEV];
	unsigned long hash[MAXEV];
	size_t n;
	int end; /* TW_EAGAIN at the end, or the error */
};

static unsigned long hash_obj(json_t *o)
{
	char *s = json_dumps(o, JSON_COMPACT | JSON_SORT_KEYS);
	unsigned long h = 5381;
	if (s == NULL)
		abort();
	for (const char *p = s; *p; p++)
		h = h * 33 + (unsigned char)*p;
	free(s);
	return h;
}

static void parse(const uint8_t *data, size_t size, unsigned seed, int chunked, struct run *r)
{
	struct tw_k8s_watch_lines p;
	tw_k8s_watch_lines_init(&p, CAP);
	memset(r, 0, sizeof *r);
	r->end = TW_EAGAIN;
	size_t off = 0;
	while (off < size && r->end == TW_EAGAIN) {
		size_t n = size - off;
		if (chunked) {
			seed = seed * 1103515245u + 12345u;
			size_t want = 1 + (seed >> 16) % 64;
			if (want < n)
				n = want;
		}
		const char *s = (const char *)data + off;
		size_t left = n;
		while (left > 0) {
			struct tw_k8s_event ev;
			struct tw_err e = {0};
			size_t used = 0;
			int rc = tw_k8s_watch_lines_next(&p, s, left, &used, &ev, &e);
			if (used > left)
				abort();
			s += used;
			left -= used;
			if (rc == TW_EAGAIN) {
				if (left != 0 || ev.object != NULL)
					abort();
				break;
			}
			if (rc < 0) {
				if (ev.object != NULL || e.msg[0] == '\0')
					abort();
				r->end = rc;
				break;
			}
			if (ev.object == NULL || !json_is_object(ev.object))
				abort();
			if (r->n < MAXEV) {
				r->type[r->n] = (int)ev.type;
				r->code[r->n] = ev.code;
				r->hash[r->n] = hash_obj(ev.object);
			}
			r->n++;
			tw_k8s_event_clear(&ev);
		}
		off += n;
	}
	tw_k8s_watch_lines_free(&p);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	static struct run a, b;
	parse(data + 1, size - 1, data[0], 0, &a);
	parse(data + 1, size - 1, data[0], 1, &b);
	if (a.n != b.n || a.end != b.end)
		abort();
	for (size_t i = 0; i < a.n && i < MAXEV; i++)
		if (a.type[i] != b.type[i] || a.code[i] != b.code[i] || a.hash[i] != b.hash[i])
			abort();
	return 0;
}
