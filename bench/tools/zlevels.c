/* zlevels.c — brotli levels and windows against gzip-6 on a corpus (bench/br-levels.sh).
 *
 * For each file: gzip level 6 (zlib, 32 KiB window, memLevel 8: nginx's gzip
 * defaults) and brotli at the given quality and window, each in one shot as a
 * whole file of known length; output bytes and CPU nanoseconds per input byte
 * (CLOCK_THREAD_CPUTIME_ID, the best of REPS runs of at least 0.2 s).
 * Usage: zlevels QUALITY,LGWIN[,...] FILE...   (LGWIN 0: sized to the file
 * as tapwork does for a known length: the smallest window >= the length,
 * 10..22). Prints TSV: file size coder out_bytes ns_per_byte. */
#include <brotli/encode.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <zlib.h>

static double now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static size_t gz6(const unsigned char *in, size_t n, unsigned char *out, size_t cap)
{
	z_stream z;
	memset(&z, 0, sizeof z);
	if (deflateInit2(&z, 6, Z_DEFLATED, 31, 8, Z_DEFAULT_STRATEGY) != Z_OK)
		return 0;
	z.next_in = (unsigned char *)in;
	z.avail_in = (uInt)n;
	z.next_out = out;
	z.avail_out = (uInt)cap;
	int rc = deflate(&z, Z_FINISH);
	size_t got = rc == Z_STREAM_END ? z.total_out : 0;
	deflateEnd(&z);
	return got;
}

static int window_for(size_t n)
{
	int w = 10;
	while (w < 22 && ((size_t)1 << w) - 16 < n)
		w++;
	return w;
}

static size_t br(const unsigned char *in, size_t n, unsigned char *out, size_t cap, int q, int lgwin)
{
	BrotliEncoderState *s = BrotliEncoderCreateInstance(NULL, NULL, NULL);
	if (s == NULL)
		return 0;
	BrotliEncoderSetParameter(s, BROTLI_PARAM_QUALITY, (uint32_t)q);
	BrotliEncoderSetParameter(s, BROTLI_PARAM_LGWIN, (uint32_t)(lgwin ? lgwin : window_for(n)));
	BrotliEncoderSetParameter(s, BROTLI_PARAM_SIZE_HINT, (uint32_t)n);
	size_t ain = n, aout = cap;
	const uint8_t *pi = in;
	uint8_t *po = out;
	int ok = BrotliEncoderCompressStream(s, BROTLI_OPERATION_FINISH, &ain, &pi, &aout, &po, NULL);
	size_t got = ok && BrotliEncoderIsFinished(s) ? cap - aout : 0;
	BrotliEncoderDestroyInstance(s);
	return got;
}

int main(int argc, char **argv)
{
	if (argc < 3) {
		fprintf(stderr, "usage: zlevels QUALITY,LGWIN[,QUALITY,LGWIN...] FILE...\n");
		return 2;
	}
	int qs[16], ws[16], nq = 0;
	for (char *p = argv[1]; *p && nq < 16;) {
		qs[nq] = (int)strtol(p, &p, 10);
		if (*p != ',')
			return 2;
		ws[nq++] = (int)strtol(p + 1, &p, 10);
		if (*p == ',')
			p++;
	}
	int reps = getenv("REPS") ? atoi(getenv("REPS")) : 3;
	printf("file\tsize\tcoder\tout_bytes\tns_per_byte\n");
	for (int a = 2; a < argc; a++) {
		FILE *f = fopen(argv[a], "rb");
		if (f == NULL)
			continue;
		fseek(f, 0, SEEK_END);
		long sz = ftell(f);
		fseek(f, 0, SEEK_SET);
		unsigned char *in = malloc((size_t)sz + 1), *out = malloc((size_t)sz * 2 + 65536);
		if (in == NULL || out == NULL || fread(in, 1, (size_t)sz, f) != (size_t)sz)
			return 1;
		fclose(f);
		const char *base = strrchr(argv[a], '/') ? strrchr(argv[a], '/') + 1 : argv[a];
		for (int k = -1; k < nq; k++) {
			double best = 1e30;
			size_t got = 0;
			for (int r = 0; r < reps; r++) {
				double t0 = now_ns(), t;
				long it = 0;
				do {
					got = k < 0 ? gz6(in, (size_t)sz, out, (size_t)sz * 2 + 65536)
						    : br(in, (size_t)sz, out, (size_t)sz * 2 + 65536, qs[k], ws[k]);
					it++;
					t = now_ns() - t0;
				} while (t < 2e8);
				if (t / (double)it / (double)sz < best)
					best = t / (double)it / (double)sz;
			}
			char name[32];
			if (k < 0)
				snprintf(name, sizeof name, "gzip-6");
			else
				snprintf(name, sizeof name, "br-%d/w%d", qs[k], ws[k] ? ws[k] : window_for((size_t)sz));
			printf("%s\t%ld\t%s\t%zu\t%.2f\n", base, sz, name, got, best);
		}
		free(in);
		free(out);
	}
	return 0;
}
