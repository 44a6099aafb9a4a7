/* static.c — `handler: static` (see static.h and docs/static.md).
 *
 * A request path is made safe by tw_static_path() (src/http/static_path.c)
 * and opened with openat2(RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS) under the
 * root, so neither "..", nor an absolute symbolic link, nor one that leads
 * out of the root can reach another file: the kernel refuses (EXDEV). */
#include "edge/edge.h"

#include "core/err.h"
#include "core/log.h"
#include "http/accept_enc.h"
#include "http/static_path.h"
#include "edge/filecache.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/sendfile.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

/* bodies up to this go out with the head in one write */
#define INLINE_MAX (32u * 1024u)
#define SENDFILE_MAX (1u << 20)

static const struct {
	const char *ext, *type;
} mime[] = {
    {"html", "text/html; charset=utf-8"},  {"htm", "text/html; charset=utf-8"},
    {"css", "text/css; charset=utf-8"},    {"js", "text/javascript; charset=utf-8"},
    {"mjs", "text/javascript; charset=utf-8"}, {"json", "application/json"},
    {"map", "application/json"},           {"txt", "text/plain; charset=utf-8"},
    {"xml", "application/xml"},            {"svg", "image/svg+xml"},
    {"png", "image/png"},                  {"jpg", "image/jpeg"},
    {"jpeg", "image/jpeg"},                {"gif", "image/gif"},
    {"webp", "image/webp"},                {"avif", "image/avif"},
    {"ico", "image/x-icon"},               {"woff", "font/woff"},
    {"woff2", "font/woff2"},               {"ttf", "font/ttf"},
    {"otf", "font/otf"},                   {"wasm", "application/wasm"},
    {"pdf", "application/pdf"},            {"mp4", "video/mp4"},
    {"webm", "video/webm"},                {"mp3", "audio/mpeg"},
    {"csv", "text/csv; charset=utf-8"},    {"md", "text/markdown; charset=utf-8"},
    {"webmanifest", "application/manifest+json"}, {"zip", "application/zip"},
};

static const char *type_of(const char *name)
{
	const char *slash = strrchr(name, '/');
	const char *dot = strrchr(slash ? slash : name, '.');
	if (dot && dot[1])
		for (size_t i = 0; i < sizeof mime / sizeof mime[0]; i++)
			if (strcasecmp(dot + 1, mime[i].ext) == 0)
				return mime[i].type;
	return "application/octet-stream";
}

/* The root directories a worker has open, by (generation, route): a
 * generation id is never reused, so an entry cannot name another config's
 * root; a reload opens the root again (a directory replaced by rename is
 * seen). Per thread: no locks. */
#define ROOT_CACHE 8
static __thread struct {
	uint64_t gen;
	const struct tw_conf_route *route;
	int fd; /* 0 = empty slot (+1 stored) */
} roots[ROOT_CACHE];
static __thread unsigned roots_next;

static int root_fd(const struct tw_req *r)
{
	for (unsigned i = 0; i < ROOT_CACHE; i++)
		if (roots[i].fd && roots[i].gen == r->gen->id && roots[i].route == r->route)
			return roots[i].fd - 1;
	int dfd = open(r->route->root, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0)
		return -1;
	unsigned k = roots_next++ % ROOT_CACHE;
	if (roots[k].fd)
		close(roots[k].fd - 1);
	roots[k].gen = r->gen->id;
	roots[k].route = r->route;
	roots[k].fd = dfd + 1;
	return dfd;
}

/* rel below the route's root, through the worker's open-file cache
 * (filecache.h): a reference the caller gives back, or NULL with errno */
static struct tw_fcache_ent *open_cached(const struct tw_conn *c, const struct tw_req *r, const char *rel)
{
	int dfd = root_fd(r);
	if (dfd < 0)
		return NULL;
	return tw_fcache_get(dfd, r->gen->id, r->route, rel, tw_loop_now(c->w->loop));
}

/* IMF-fixdate only ("Sun, 06 Nov 1994 08:49:37 GMT"); -1 when it is not one. */
static time_t parse_date(const char *p, size_t n)
{
	char s[64];
	if (n == 0 || n >= sizeof s)
		return -1;
	memcpy(s, p, n);
	s[n] = 0;
	struct tm tm;
	memset(&tm, 0, sizeof tm);
	const char *end = strptime(s, "%a, %d %b %Y %H:%M:%S GMT", &tm);
	if (end == NULL || *end)
		return -1;
	return timegm(&tm);
}

/* Does an If-None-Match value name etag (weak comparison)? */
static int inm_matches(const char *v, size_t n, const char *etag)
{
	size_t el = strlen(etag);
	size_t i = 0;
	while (i < n) {
		while (i < n && (v[i] == ' ' || v[i] == '\t' || v[i] == ','))
			i++;
		if (i < n && v[i] == '*')
			return 1;
		if (i + 1 < n && v[i] == 'W' && v[i + 1] == '/')
			i += 2;
		size_t s = i;
		while (i < n && v[i] != ',')
			i++;
		size_t e = i;
		while (e > s && (v[e - 1] == ' ' || v[e - 1] == '\t'))
			e--;
		if (e - s == el && memcmp(v + s, etag, el) == 0)
			return 1;
	}
	return 0;
}

/* bytes=A-B, A-, -N (one range). 1 and [*a, *b] inclusive; 0 to ignore the
 * header (several ranges, another unit, malformed); -1 unsatisfiable. */
static int parse_range(const char *v, size_t n, uint64_t size, uint64_t *a, uint64_t *b)
{
	if (n < 7 || strncasecmp(v, "bytes=", 6) != 0)
		return 0;
	v += 6, n -= 6;
	for (size_t i = 0; i < n; i++)
		if (v[i] == ',')
			return 0; /* several ranges: the whole file (documented) */
	size_t i = 0;
	uint64_t x = 0, y = 0;
	int hx = 0, hy = 0;
	while (i < n && v[i] >= '0' && v[i] <= '9' && x < (UINT64_MAX / 10 - 10))
		x = x * 10 + (uint64_t)(v[i++] - '0'), hx = 1;
	if (i == n || v[i] != '-')
		return 0;
	i++;
	while (i < n && v[i] >= '0' && v[i] <= '9' && y < (UINT64_MAX / 10 - 10))
		y = y * 10 + (uint64_t)(v[i++] - '0'), hy = 1;
	if (i != n || (!hx && !hy))
		return 0;
	if (!hx) { /* suffix: the last y bytes */
		if (y == 0 || size == 0)
			return -1;
		*a = y >= size ? 0 : size - y;
		*b = size - 1;
		return 1;
	}
	if (hy && y < x)
		return 0;
	if (x >= size)
		return -1;
	*a = x;
	*b = hy && y < size ? y : size - 1;
	return 1;
}

static void fail(struct tw_conn *c, int status, const char *why) { tw_local_error(c, status, why); }

static const char *hdr(const char *buf, const struct tw_h1_msg *m, const char *name, size_t *len)
{
	int i = tw_h1_find_header(buf, m, name, 0);
	if (i < 0)
		return NULL;
	*len = m->headers[i].value.len;
	return buf + m->headers[i].value.off;
}

/* The precompressed variant of rel the client takes (not for a range):
 * its coding and *fe (a cache reference); TW_CODING_IDENTITY and *fe NULL
 * when none. */
static int find_variant(struct tw_conn *c, struct tw_req *r, const char *buf, int range, const char *rel,
			struct tw_fcache_ent **fe)
{
	const struct tw_conf_route *rt = r->route;
	*fe = NULL;
	size_t ael;
	const char *ae = rt->nprecompressed && !range ? hdr(buf, &r->msg, "accept-encoding", &ael) : NULL;
	if (ae == NULL)
		return TW_CODING_IDENTITY;
	struct tw_ae pa;
	tw_ae_init(&pa);
	tw_ae_parse(&pa, ae, ael);
	enum tw_coding prefs[TW_CODING_N];
	size_t np = 0;
	for (size_t i = 0; i < rt->nprecompressed && np < TW_CODING_N; i++)
		prefs[np++] = (enum tw_coding)rt->precompressed[i];
	while (np > 0) {
		enum tw_coding ch = tw_ae_choose(&pa, prefs, np);
		if (ch == TW_CODING_IDENTITY)
			break;
		char vrel[1040];
		snprintf(vrel, sizeof vrel, "%s%s", rel, tw_coding_suffix(ch));
		struct tw_fcache_ent *v = open_cached(c, r, vrel);
		if (v && S_ISREG(v->st.st_mode)) {
			*fe = v;
			return ch;
		}
		tw_fcache_put(v);
		size_t k = 0; /* this one is not there: choose among the others */
		for (size_t i = 0; i < np; i++)
			if (prefs[i] != ch)
				prefs[k++] = prefs[i];
		np = k;
	}
	return TW_CODING_IDENTITY;
}

/* the response head, built without printf (it is on every request) */
struct head {
	char b[2048];
	size_t n;
};

static void add(struct head *h, const char *s, size_t len)
{
	if (len > sizeof h->b - h->n)
		len = sizeof h->b - h->n;
	memcpy(h->b + h->n, s, len);
	h->n += len;
}
#define ADDS(h, lit) add((h), (lit), sizeof(lit) - 1)

static void add_u64(struct head *h, uint64_t v)
{
	char t[24];
	size_t i = sizeof t;
	do {
		t[--i] = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	add(h, t + i, sizeof t - i);
}

static int serve(struct tw_conn *c, struct tw_req *r, const char *buf, int try_only);

void tw_static_serve(struct tw_conn *c, struct tw_req *r, const char *buf) { serve(c, r, buf, 0); }

int tw_static_try(struct tw_conn *c, struct tw_req *r, const char *buf)
{
	if (!r->is_head && strcmp(r->method, "GET") != 0)
		return 0;
	return serve(c, r, buf, 1);
}

/* try_only: answer only with a file (1), else nothing at all (0) */
static int serve(struct tw_conn *c, struct tw_req *r, const char *buf, int try_only)
{
	const struct tw_conf_route *rt = r->route;
	const struct tw_h1_msg *m = &r->msg;
	if (!r->is_head && strcmp(r->method, "GET") != 0) {
		fail(c, 405, "static files answer GET and HEAD");
		return 1;
	}
	/* the part of the path below the route's prefix */
	const char *path = buf + m->path.off;
	size_t plen = m->path.len, pre = rt->path_len;
	while (pre > 0 && rt->path[pre - 1] == '/')
		pre--;
	if (plen < pre) {
		if (try_only)
			return 0;
		fail(c, 404, "static: path above the route");
		return 1;
	}
	char rel[1024];
	int dir = 0;
	const char *sub = path + pre;
	size_t sublen = plen - pre;
	int rc = sublen == 0 ? (rel[0] = 0, 0) : tw_static_path(sub, sublen, rt->allow_hidden, rel, sizeof rel - 16, &dir);
	if (rc == TW_EINVAL) {
		if (try_only)
			return 0;
		fail(c, 400, "static: malformed path");
		return 1;
	}
	if (rc != 0) {
		if (try_only)
			return 0;
		fail(c, 404, rc == TW_EPERM ? "static: dot segment or hidden file refused" : "static: path too long");
		return 1;
	}
	size_t rangel = 0;
	const char *range = hdr(buf, m, "range", &rangel);
	struct tw_fcache_ent *fe = NULL;
	int coding = TW_CODING_IDENTITY, oerr = ENOENT;
	/* a variant first: when the client takes one, the original is not opened */
	if (!dir && rel[0])
		coding = find_variant(c, r, buf, range != NULL, rel, &fe);
	if (fe == NULL && (fe = open_cached(c, r, rel)) == NULL)
		oerr = errno;
	if (fe && coding == TW_CODING_IDENTITY && S_ISDIR(fe->st.st_mode)) {
		tw_fcache_put(fe);
		fe = NULL;
		if (!dir && sublen > 0) {
			if (try_only)
				return 0;
			/* a directory named without its slash: send the client there */
			char loc[1200];
			snprintf(loc, sizeof loc, "Location: %.*s/\r\n", (int)(plen < 1024 ? plen : 1024), path);
			tw_local_status(c, 301, loc);
			return 1;
		}
		size_t rl = strlen(rel);
		if (rl + 1 + strlen(rt->index) + 1 > sizeof rel - 16) {
			if (try_only)
				return 0;
			fail(c, 404, "static: path too long");
			return 1;
		}
		snprintf(rel + rl, sizeof rel - rl, "%s%s", rl ? "/" : "", rt->index);
		coding = find_variant(c, r, buf, range != NULL, rel, &fe);
		if (fe == NULL && (fe = open_cached(c, r, rel)) == NULL)
			oerr = errno;
	}
	if (fe && !S_ISREG(fe->st.st_mode)) {
		tw_fcache_put(fe);
		fe = NULL;
	}
	if (fe == NULL) {
		if (try_only)
			return 0;
		fail(c, 404, oerr == EXDEV ? "static: outside the root" : "static: no such file");
		return 1;
	}
	const struct stat *st = &fe->st;
	const char *etag = fe->etag, *lm = fe->lm;
	size_t etag_len = fe->etag_len, lm_len = fe->lm_len;
	const char *ctype = type_of(rel);
	uint64_t size = (uint64_t)st->st_size;
	int status = 200;
	uint64_t a = 0, b = size ? size - 1 : 0;
	size_t inml = 0, imsl = 0, irl = 0;
	const char *inm = hdr(buf, m, "if-none-match", &inml);
	const char *ims = inm ? NULL : hdr(buf, m, "if-modified-since", &imsl);
	if (inm ? inm_matches(inm, inml, etag) : (ims && parse_date(ims, imsl) >= st->st_mtim.tv_sec)) {
		status = 304;
	} else if (range && coding == TW_CODING_IDENTITY) {
		const char *ir = hdr(buf, m, "if-range", &irl);
		int fresh = ir == NULL || (irl == etag_len && memcmp(ir, etag, irl) == 0) ||
			    (irl == lm_len && memcmp(ir, lm, irl) == 0);
		int pr = fresh ? parse_range(range, rangel, size, &a, &b) : 0;
		if (pr < 0) {
			tw_fcache_put(fe);
			char extra[80];
			snprintf(extra, sizeof extra, "Content-Range: bytes */%llu\r\n", (unsigned long long)size);
			tw_local_status(c, 416, extra);
			return 1;
		}
		if (pr > 0)
			status = 206;
	}
	uint64_t len = status == 304 ? 0 : size ? b - a + 1 : 0;
	/* the head */
	if (c->out == NULL && (c->out = tw_iobuf_get(&c->w->bufs)) == NULL) {
		tw_fcache_put(fe);
		tw_conn_close(c);
		return 1;
	}
	c->out->start = c->out->end = 0;
	if (!r->reqbody.done && r->reqbody.mode != FLOW_NONE)
		c->close_after = 1;
	if (c->w->draining)
		c->close_after = 1;
	const char *hsts = tw_req_hsts(c, r);
	struct head h = {.n = 0};
	const char *reason = tw_h1_reason((unsigned)status);
	ADDS(&h, "HTTP/1.");
	add(&h, r->version_minor == 0 ? "0 " : "1 ", 2);
	add_u64(&h, (uint64_t)status);
	add(&h, " ", 1);
	add(&h, reason, strlen(reason));
	ADDS(&h, "\r\nContent-Type: ");
	add(&h, ctype, strlen(ctype));
	if (status != 304) {
		ADDS(&h, "\r\nContent-Length: ");
		add_u64(&h, len);
	}
	ADDS(&h, "\r\nLast-Modified: ");
	add(&h, lm, lm_len);
	ADDS(&h, "\r\nETag: ");
	add(&h, etag, etag_len);
	if (coding == TW_CODING_IDENTITY) {
		ADDS(&h, "\r\nAccept-Ranges: bytes");
	} else {
		const char *cn = tw_coding_name((enum tw_coding)coding);
		ADDS(&h, "\r\nContent-Encoding: ");
		add(&h, cn, strlen(cn));
	}
	if (rt->nprecompressed)
		ADDS(&h, "\r\nVary: Accept-Encoding");
	if (rt->immutable)
		ADDS(&h, "\r\nCache-Control: public, max-age=31536000, immutable");
	if (status == 206) {
		ADDS(&h, "\r\nContent-Range: bytes ");
		add_u64(&h, a);
		add(&h, "-", 1);
		add_u64(&h, b);
		add(&h, "/", 1);
		add_u64(&h, size);
	}
	if (c->close_after)
		ADDS(&h, "\r\nConnection: close");
	else if (r->version_minor == 0)
		ADDS(&h, "\r\nConnection: keep-alive");
	if (hsts) {
		ADDS(&h, "\r\nStrict-Transport-Security: ");
		add(&h, hsts, strlen(hsts));
	}
	ADDS(&h, "\r\nX-Request-Id: ");
	add(&h, r->rid, strlen(r->rid));
	ADDS(&h, "\r\n\r\n");
	tw_iobuf_append(c->out, h.b, h.n);
	r->status = status;
	c->st = C_LOCAL;
	c->wr_ready = 1;
	if (r->is_head || len == 0) {
		tw_fcache_put(fe);
		return 1;
	}
	r->sf.fce = fe;
	r->sf.fd = fe->fd;
	r->sf.open = 1;
	r->sf.fresh = 1;
	r->sf.off = a;
	r->sf.left = len;
	r->sf.size = st->st_size;
	r->sf.mtime = st->st_mtim;
	r->bytes_out = len;
	/* a small body goes with the head in one write; over TLS and HTTP/2
	 * the body is read behind the head whatever its size, so the first
	 * record carries both */
	if ((len <= INLINE_MAX || c->fops != &tw_front_plain) && tw_iobuf_room(c->out) >= 4096) {
		if (tw_static_fill(c) < 0) {
			tw_static_release(r);
			tw_conn_close(c);
		}
	}
	return 1;
}

int tw_static_fill(struct tw_conn *c)
{
	struct tw_req *r = c->req;
	if (r == NULL || !r->sf.open || r->sf.left == 0)
		return 0;
	struct tw_static_body *f = &r->sf;
	struct tw_iobuf *out = c->out;
	/* A small rest rides in the output buffer behind what is there (the
	 * head: one write for both); over TLS and HTTP/2 every byte does. */
	int plain = c->fops == &tw_front_plain;
	int use_sendfile = plain && !(out && tw_iobuf_len(out) > 0 && f->left <= INLINE_MAX && f->left <= tw_iobuf_room(out));
	if (use_sendfile) {
		if (!c->wr_ready)
			return 0;
	} else {
		if (out == NULL && (out = c->out = tw_iobuf_get(&c->w->bufs)) == NULL)
			return TW_ENOMEM;
		if (tw_iobuf_room(out) < 4096 && tw_iobuf_room(out) < f->left)
			tw_iobuf_compact(out);
		if (tw_iobuf_room(out) == 0 || (tw_iobuf_room(out) < 4096 && tw_iobuf_room(out) < f->left))
			return 0; /* the buffer first goes out */
	}
	struct stat st;
	if (f->fresh)
		f->fresh = 0;
	else if (fstat(f->fd, &st) != 0 || st.st_size != f->size || st.st_mtim.tv_sec != f->mtime.tv_sec ||
		 st.st_mtim.tv_nsec != f->mtime.tv_nsec) {
		tw_warn("rid=%s static: the file changed while it was sent: the answer is cut", r->rid);
		return TW_EIO;
	}
	if (use_sendfile) {
		/* The head with MSG_MORE: it leaves in the same segment as the
		 * first bytes sendfile adds, not in a packet of its own (the
		 * kernel pushes at the end of sendfile). */
		uint32_t hl = out ? tw_iobuf_len(out) : 0;
		if (hl) {
			ssize_t n = send(c->io.fd, tw_iobuf_head(out), hl, MSG_NOSIGNAL | MSG_MORE);
			if (n < 0) {
				if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) {
					c->wr_ready = 0;
					return 0;
				}
				return TW_EIO;
			}
			tw_iobuf_consume(out, (uint32_t)n);
			if ((uint32_t)n < hl) {
				c->wr_ready = 0;
				return 1;
			}
		}
		if (out) {
			/* the head is out and the body goes by sendfile: the buffer
			 * serves other connections meanwhile (a slow reader of a
			 * large file holds none) */
			tw_iobuf_put(&c->w->bufs, out);
			c->out = NULL;
		}
		off_t off = (off_t)f->off;
		size_t want = f->left < SENDFILE_MAX ? (size_t)f->left : SENDFILE_MAX;
		ssize_t n = sendfile(c->io.fd, f->fd, &off, want);
		if (n < 0) {
			if (errno == EAGAIN || errno == EINTR) {
				c->wr_ready = 0;
				return hl ? 1 : 0;
			}
			return TW_EIO;
		}
		if (n == 0)
			return TW_EIO; /* shorter than it was */
		if ((size_t)n < want)
			c->wr_ready = 0;
		f->off += (uint64_t)n;
		f->left -= (uint64_t)n;
		return 1;
	}
	/* TLS, HTTP/2, a small body: read into the output buffer */
	size_t room = tw_iobuf_room(out);
	size_t want = f->left < room ? (size_t)f->left : room;
	ssize_t n = pread(f->fd, tw_iobuf_tail(out), want, (off_t)f->off);
	if (n <= 0)
		return TW_EIO;
	out->end += (uint32_t)n;
	f->off += (uint64_t)n;
	f->left -= (uint64_t)n;
	return 1;
}

void tw_static_release(struct tw_req *r)
{
	if (r->sf.open) {
		tw_fcache_put(r->sf.fce);
		r->sf.fce = NULL;
		r->sf.open = 0;
	}
}

static int str_eq(const char *a, const char *b) { return a == b || (a && b && strcmp(a, b) == 0); }

int tw_static_conf_equal(const struct tw_conf_route *a, const struct tw_conf_route *b)
{
	if (!str_eq(a->root, b->root) || !str_eq(a->index, b->index) || a->immutable != b->immutable ||
	    a->allow_hidden != b->allow_hidden || a->nprecompressed != b->nprecompressed)
		return 0;
	for (size_t i = 0; i < a->nprecompressed; i++)
		if (a->precompressed[i] != b->precompressed[i])
			return 0;
	return 1;
}
