/* schema_compress.c — the `compression:` block (top level, sites[], routes[]).
 *
 * `compression: off` or a mapping; the mapping's keys are declared here once
 * and reach the loader, `tapwork validate` and docs/config.md like every
 * other schema. See docs/compression.md. */
#include "conf/config.h"
#include "conf/schema.h"
#include "core/err.h"
#include "http/accept_enc.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>

#define FLD(T, m) .off = offsetof(T, m), .width = sizeof(((T *)0)->m)
#define END {.name = NULL}

static int parse_coding(struct cf_ctx *c, const struct cf_field *f, const char *text, void *dst, char *why,
			size_t wl)
{
	(void)c;
	(void)f;
	int k = tw_coding_parse(text, strlen(text));
	if (k <= TW_CODING_IDENTITY || strcmp(text, "x-gzip") == 0) {
		snprintf(why, wl, "unknown coding \"%s\" (one of: zstd, br, gzip)", text);
		return TW_EINVAL;
	}
	memcpy(dst, &k, sizeof k);
	return 0;
}

static int parse_mtype(struct cf_ctx *c, const struct cf_field *f, const char *text, void *dst, char *why,
		       size_t wl)
{
	(void)f;
	const char *slash = strchr(text, '/');
	size_t n = strlen(text);
	int ok = slash && slash > text && slash[1] && n <= 128;
	for (size_t i = 0; ok && i < n; i++) {
		unsigned char ch = (unsigned char)text[i];
		ok = isalnum(ch) || strchr("/!#$&-^_.+*", ch);
		if (ch == '*' && !(text + i == slash + 1 && i + 1 == n))
			ok = 0; /* a star only as the whole subtype */
	}
	if (!ok) {
		snprintf(why, wl, "\"%s\" is not a media type (type/subtype or type/*)", text);
		return TW_EINVAL;
	}
	char *s = tw_arena_strdup(c->arena, text);
	if (s == NULL)
		return TW_ENOMEM;
	for (char *p = s; *p; p++)
		*p = (char)tolower((unsigned char)*p);
	memcpy(dst, &s, sizeof s);
	return 0;
}

static const char *const default_types[] = {"text/*",	     "application/json", "application/javascript",
					    "application/xml", "image/svg+xml",	   "application/wasm",
					    "font/*"};

static int check_compress(struct cf_ctx *c, int node, void *obj)
{
	struct tw_conf_compress *z = obj;
	if (node == 0 || tw_conf_map_get(c, node, "encodings") == 0) {
		static const int def[] = {TW_CODING_ZSTD, TW_CODING_BR, TW_CODING_GZIP};
		z->encodings = tw_arena_alloc(c->arena, sizeof def);
		if (z->encodings == NULL)
			return TW_ENOMEM;
		memcpy(z->encodings, def, sizeof def);
		z->nencodings = 3;
	}
	for (size_t i = 0; i < z->nencodings; i++)
		for (size_t j = 0; j < i; j++)
			if (z->encodings[i] == z->encodings[j])
				return tw_conf_fail(c, tw_conf_seq_item(c, tw_conf_map_get(c, node, "encodings"), i), NULL,
						    "%s is listed twice", tw_coding_name((enum tw_coding)z->encodings[i]));
	if (node == 0 || tw_conf_map_get(c, node, "types") == 0) {
		size_t n = sizeof default_types / sizeof default_types[0];
		z->types = tw_arena_alloc(c->arena, n * sizeof *z->types);
		if (z->types == NULL)
			return TW_ENOMEM;
		for (size_t i = 0; i < n; i++)
			if ((z->types[i] = tw_arena_strdup(c->arena, default_types[i])) == NULL)
				return TW_ENOMEM;
		z->ntypes = n;
	}
	return 0;
}

#define L struct tw_conf_compress
static const struct cf_field levels_fields[] = {
    {.name = "zstd", .kind = CF_UINT, FLD(L, level_zstd), .min = 1, .max = 19, .def = "3",
     .doc = "zstd level (1..19; the window stays within 8 MiB, RFC 9659)."},
    {.name = "br", .kind = CF_UINT, FLD(L, level_br), .min = 0, .max = 11, .def = "5",
     .doc = "brotli quality (0..11). 5: smaller than gzip -6 on text at less CPU per byte (docs/compression.md); 4 is faster but larger than gzip -6 on JavaScript and CSS."},
    {.name = "gzip", .kind = CF_UINT, FLD(L, level_gzip), .min = 1, .max = 9, .def = "1",
     .doc = "gzip (zlib) level (1..9)."},
    END};
static const struct cf_schema levels_schema = {
    .name = "compression.levels", .fields = levels_fields, .doc = "Compression level of each coding."};

const struct cf_field tw_conf_coding_elem = {
    .kind = CF_CUSTOM, .width = sizeof(int), .parse = parse_coding, .type_name = "coding"};
#define coding_elem tw_conf_coding_elem
static const struct cf_field mtype_elem = {
    .kind = CF_CUSTOM, .width = sizeof(char *), .parse = parse_mtype, .type_name = "media type"};

static const struct cf_field compress_fields[] = {
    {.name = "encodings",
     .kind = CF_LIST,
     FLD(L, encodings),
     .count_off = offsetof(L, nencodings),
     .min = 1,
     .max = 3,
     .elem = &coding_elem,
     .doc = "Codings offered, in our order of preference when the client's q-values tie: "
	    "`zstd`, `br`, `gzip`. Default `[zstd, br, gzip]`."},
    {.name = "levels",
     .kind = CF_STRUCT,
     .off = 0,
     .schema = &levels_schema,
     .doc = "Levels per coding: `{zstd: 3, br: 5, gzip: 1}` by default."},
    {.name = "min_size",
     .kind = CF_SIZE,
     FLD(L, min_size),
     .max = 1u << 20,
     .def = "512",
     .doc = "Smaller bodies go out as they are. A body of unknown length (chunked) is held until "
	    "this many bytes (or its end) arrived before deciding; at most 1 MiB."},
    {.name = "types",
     .kind = CF_LIST,
     FLD(L, types),
     .count_off = offsetof(L, ntypes),
     .max = 256,
     .elem = &mtype_elem,
     .doc = "Media types compressed (`type/subtype`, or `type/*`). Default `[text/*, application/json, "
	    "application/javascript, application/xml, image/svg+xml, application/wasm, font/*]`."},
    {.name = "max_streams",
     .kind = CF_UINT,
     FLD(L, max_streams),
     .min = 1,
     .max = 1u << 20,
     .def = "256",
     .doc = "Responses compressed at the same time per worker; beyond that answers go out uncompressed "
	    "(counted as `result=\"busy\"`)."},
    {.name = "skip_private",
     .kind = CF_BOOL,
     FLD(L, skip_private),
     .def = "false",
     .doc = "Leave answers that set cookies (`Set-Cookie`) or say `Cache-Control: private` uncompressed "
	    "(BREACH: see docs/compression.md)."},
    END};
#undef L

const struct cf_schema tw_conf_compress_schema = {
    .name = "compression",
    .fields = compress_fields,
    .check = check_compress,
    .doc = "Response compression (docs/compression.md). `compression: off` turns it off; a block under "
	   "`sites[]` or `routes[]` replaces the outer one whole (keys it leaves out take their defaults). "
	   "Without any block nothing is compressed."};

static const struct cf_field compress_elem = {
    .kind = CF_STRUCT, .width = sizeof(struct tw_conf_compress), .schema = &tw_conf_compress_schema};

int tw_conf_parse_compress(struct cf_ctx *c, const struct cf_field *f, int node, void *dst)
{
	(void)f;
	struct tw_conf_compress *z = tw_arena_alloc(c->arena, sizeof *z);
	if (z == NULL)
		return TW_ENOMEM;
	memset(z, 0, sizeof *z);
	int kind = tw_conf_node_kind(c, node);
	if (kind == 's') {
		const char *t = tw_conf_scalar(c, node);
		if (t == NULL)
			return TW_ENOMEM;
		if (strcmp(t, "off") != 0 && strcmp(t, "false") != 0)
			return tw_conf_fail(c, node, NULL, "bad value \"%s\" (`off` or a mapping)", t);
		z->off = 1;
	} else if (kind == 'm') {
		int rc = tw_conf_parse_field(c, &compress_elem, node, z);
		if (rc < 0)
			return rc;
	} else {
		return tw_conf_fail(c, node, NULL, "expected `off` or a mapping");
	}
	memcpy(dst, &z, sizeof z);
	return 0;
}
