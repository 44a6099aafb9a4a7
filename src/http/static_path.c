/* static_path.c — see static_path.h. One pass: percent-decode, check each
 * byte, cut segments; nothing is resolved against the file system here
 * (that is openat2(RESOLVE_BENEATH) in src/edge/static.c). */
#include "http/static_path.h"

#include "core/err.h"
#include "core/hex.h"

#include <stdint.h>

/* Length of the well-formed UTF-8 sequence at s[0..n), 0 when malformed. */
static size_t utf8_len(const unsigned char *s, size_t n)
{
	unsigned c = s[0];
	size_t len;
	uint32_t cp, min;
	if (c < 0x80)
		return 1;
	if (c >= 0xc2 && c <= 0xdf) {
		len = 2, cp = c & 0x1f, min = 0x80;
	} else if (c >= 0xe0 && c <= 0xef) {
		len = 3, cp = c & 0x0f, min = 0x800;
	} else if (c >= 0xf0 && c <= 0xf4) {
		len = 4, cp = c & 0x07, min = 0x10000;
	} else {
		return 0;
	}
	if (n < len)
		return 0;
	for (size_t i = 1; i < len; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		cp = (cp << 6) | (s[i] & 0x3f);
	}
	if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	return len;
}

int tw_static_path(const char *p, size_t n, int allow_hidden, char *out, size_t cap, int *dir)
{
	size_t o = 0, seg = 0; /* seg: where the current segment starts in out */
	*dir = 0;
	if (cap == 0)
		return TW_ELIMIT;
	if (n == 0 || p[0] != '/')
		return TW_EINVAL;
	for (size_t i = 1; i <= n; i++) {
		if (i == n || p[i] == '/') {
			size_t sl = o - seg;
			if (sl == 0) {
				/* an empty segment: "//" collapses, a trailing '/' means a directory */
				if (i == n)
					*dir = 1;
				continue;
			}
			int dots = sl == 1 || (sl == 2 && out[seg + 1] == '.'); /* "." or ".." */
			if (out[seg] == '.' && (dots || !allow_hidden))
				return TW_EPERM;
			if (i == n)
				break;
			if (o + 1 >= cap)
				return TW_ELIMIT;
			out[o++] = '/';
			seg = o;
			if (i + 1 == n)
				*dir = 1;
			continue;
		}
		unsigned char c = (unsigned char)p[i];
		if (c == '%') {
			if (i + 2 >= n)
				return TW_EINVAL;
			int h = tw_hexval(p[i + 1]), l = tw_hexval(p[i + 2]);
			if (h < 0 || l < 0)
				return TW_EINVAL;
			c = (unsigned char)(h * 16 + l);
			i += 2;
			if (c == '/')
				return TW_EINVAL; /* an encoded slash: never a separator, never a name */
		}
		if (c < 0x20 || c == 0x7f || c == '\\')
			return TW_EINVAL;
		if (o + 1 >= cap)
			return TW_ELIMIT;
		out[o++] = (char)c;
	}
	/* the last segment ended at n: strip a trailing separator we wrote */
	if (o > 0 && out[o - 1] == '/')
		o--;
	out[o] = '\0';
	/* well-formed UTF-8 over the decoded bytes (overlong forms of '.' and '/' included) */
	for (size_t i = 0; i < o;) {
		size_t l = utf8_len((const unsigned char *)out + i, o - i);
		if (l == 0)
			return TW_EINVAL;
		i += l;
	}
	return 0;
}
