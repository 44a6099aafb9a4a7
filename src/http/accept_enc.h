/* accept_enc.h — the Accept-Encoding request header (RFC 9110 §12.5.3).
 *
 * A parser of untrusted bytes (a slice, never NUL-terminated) into the
 * q-value the client gives each content coding tapwork can send, and the
 * choice of a coding for a response. q-values are kept in thousandths
 * (0..1000). Elements that do not parse are skipped (the rest of the header
 * still counts); codings tapwork cannot send (deflate, compress, ...) are
 * ignored. `x-gzip` counts as `gzip`. See docs/compression.md. */
#ifndef TW_HTTP_ACCEPT_ENC_H
#define TW_HTTP_ACCEPT_ENC_H

#include <stddef.h>
#include <stdint.h>

enum tw_coding { TW_CODING_IDENTITY = 0, TW_CODING_ZSTD, TW_CODING_BR, TW_CODING_GZIP, TW_CODING_N };

/* The token of a coding ("identity", "zstd", "br", "gzip"). */
const char *tw_coding_name(enum tw_coding c);
/* The file suffix of a precompressed variant (".zst", ".br", ".gz"; "" for identity). */
const char *tw_coding_suffix(enum tw_coding c);
/* A coding by token (case-insensitive); -1 when unknown. */
int tw_coding_parse(const char *p, size_t n);

#define TW_AE_UNSET (-1)

struct tw_ae {
	int16_t q[TW_CODING_N]; /* explicit q of each coding, TW_AE_UNSET when not named */
	int16_t star;           /* q of "*", TW_AE_UNSET when absent */
	uint16_t nskipped;      /* elements that did not parse */
};

/* Parse one header value (several Accept-Encoding fields: call for each
 * over the same struct after tw_ae_init; a later mention of a coding wins
 * over an earlier one only when its q is higher, as a list merge). */
void tw_ae_init(struct tw_ae *ae);
void tw_ae_parse(struct tw_ae *ae, const char *p, size_t n);
/* The effective q (0..1000) of coding c: its own, else "*"'s, else 0 —
 * identity defaults to acceptable (1000 here, as the lowest preference). */
int tw_ae_q(const struct tw_ae *ae, enum tw_coding c);
/* The coding to answer with: among prefs[0..n) (our order of preference)
 * the one with the highest q > 0, ties to the earlier; TW_CODING_IDENTITY
 * when none is acceptable or identity's q is higher than all of theirs. */
enum tw_coding tw_ae_choose(const struct tw_ae *ae, const enum tw_coding *prefs, size_t n);

#endif
