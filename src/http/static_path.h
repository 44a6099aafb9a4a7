/* static_path.h — a request path made safe to look up under a static root.
 *
 * Untrusted input (a slice of the request's path, without the query). The
 * result is a relative path of '/'-separated segments, never starting with
 * '/', without empty, "." or ".." segments, NUL, backslashes, control
 * bytes, encoded slashes, or bytes that are not well-formed UTF-8 (overlong
 * forms included). A segment starting with '.' (a hidden file, or an
 * attempt at "..") is refused unless allow_hidden. Fuzzed by
 * fuzz/static_path.c. */
#ifndef TW_HTTP_STATIC_PATH_H
#define TW_HTTP_STATIC_PATH_H

#include <stddef.h>

/* 0 and out (NUL-terminated, *dir = 1 when the path ended in '/'),
 * TW_EINVAL for malformed input (bad escapes, NUL, bad UTF-8, control
 * bytes, backslash, encoded '/'), TW_EPERM for a dot segment or hidden
 * file, TW_ELIMIT when out is too small. */
int tw_static_path(const char *p, size_t n, int allow_hidden, char *out, size_t cap, int *dir);

#endif
