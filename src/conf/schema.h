/* schema.h — the configuration schema as data (internal to src/conf).
 *
 * One table of field descriptors per YAML mapping, declared once in
 * schema.c. The generic loader (load.c) walks them to parse, apply
 * defaults, check limits and report errors; docs.c walks the same tables
 * to print docs/config.md. See docs/internals/config.md. */
#ifndef TW_CONF_SCHEMA_H
#define TW_CONF_SCHEMA_H

#include "conf/config.h"

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <yaml.h>

enum cf_kind {
	CF_STRING,   /* char *, from the arena */
	CF_BOOL,     /* int 0/1: true/false/yes/no/on/off */
	CF_UINT,     /* unsigned / uint64_t / size_t (width), min..max */
	CF_DURATION, /* milliseconds, "250ms" "2s" "1h30m" */
	CF_SIZE,     /* bytes, "16k" "1MiB" "10GB" */
	CF_ADDR,     /* struct tw_addr */
	CF_CIDR,     /* struct tw_cidr */
	CF_ENUM,     /* int, one of enums[] */
	CF_CUSTOM,   /* scalar parsed by `parse` */
	CF_STRUCT,   /* mapping described by `schema`, stored at off */
	CF_LIST,     /* sequence of `elem`: pointer at off, size_t count at count_off */
	CF_MAP,      /* mapping name -> `elem` (a struct whose schema has key_off) */
	CF_NODE      /* any YAML node, parsed by `parse_node` (scalar-or-mapping-or-list keys) */
};

/* Field flags. */
#define CF_REQUIRED 0x1u /* the key must be present */
#define CF_PRESENT 0x2u  /* set int at present_off to 1 when the key is present */
#define CF_OPTIONAL 0x4u /* struct: defaults applied only when present */

struct cf_enum {
	const char *name;
	int value;
};

struct cf_ctx;
struct cf_field;

/* A custom scalar parser. Writes the value at dst; on error returns a
 * negative TW_E* and puts a message (without position or key) in why. */
typedef int (*cf_parse_fn)(struct cf_ctx *c, const struct cf_field *f, const char *text, void *dst,
                           char *why, size_t whylen);
/* A check run after a struct is filled: cross-field rules. node is the
 * struct's YAML mapping (or 0 when absent); report with tw_conf_fail(). */
/* A parser for a whole YAML node (CF_NODE): dst is parent + off. Reports
 * its own errors with tw_conf_fail(). */
typedef int (*cf_node_fn)(struct cf_ctx *c, const struct cf_field *f, int node, void *dst);
typedef int (*cf_check_fn)(struct cf_ctx *c, int node, void *obj);

struct cf_field {
	const char *name;
	enum cf_kind kind;
	size_t off;       /* value offset inside the parent object */
	size_t width;     /* size of the stored value (for list elements: element size) */
	size_t count_off; /* CF_LIST/CF_MAP: where the size_t count goes */
	size_t present_off;
	unsigned flags;
	uint64_t min,
	    max; /* CF_UINT/DURATION/SIZE value limits; CF_LIST item count (max 0 = none) */
	const struct cf_enum *enums;    /* CF_ENUM, NULL-name terminated */
	const struct cf_field *elem;    /* CF_LIST/CF_MAP element */
	const struct cf_schema *schema; /* CF_STRUCT */
	cf_parse_fn parse;              /* CF_CUSTOM */
	cf_node_fn parse_node;          /* CF_NODE */
	const char *type_name;          /* CF_CUSTOM: shown in docs and errors */
	const char *def;                /* default, as YAML text (parsed like a value) */
	const char *doc;
};

struct cf_schema {
	const char *name;              /* section title in the docs */
	const struct cf_field *fields; /* terminated by name == NULL */
	const char *scalar_key;        /* "string or struct": a scalar sets this key */
	int has_key;                   /* map element: the map key goes to a char * at key_off */
	size_t key_off;
	cf_check_fn check;
	const char *doc;
};

/* Loader context (load.c). */
struct cf_ctx {
	yaml_document_t *doc;
	const char *file;
	struct tw_arena *arena;
	struct tw_err *err;
	struct tw_config *cfg;
	char path[512];
	size_t plen;
	unsigned long budget; /* node visits left (aliases can multiply work) */
};

extern const struct cf_schema tw_conf_root_schema;
extern const struct cf_schema tw_conf_pp_schema;    /* schema_pp.c: proxy_protocol */
extern const struct cf_enum tw_conf_send_proxy_enum[]; /* schema_pp.c: servers[].send_proxy */
extern const struct cf_field tw_conf_rl_elem;          /* schema_rl.c: rate_limits.NAME */
/* schema_rl.c: routes' rate_limit names -> indexes (unknown names fail). */
int tw_conf_resolve_rate_limits(struct cf_ctx *c, struct tw_config *cfg);

/* Report "FILE:LINE:COL: PATH[.extra]: message" at node (0 = top). Returns TW_EINVAL. */
int tw_conf_fail(struct cf_ctx *c, int node, const char *extra, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* Look up key in a mapping node; 0 when absent or node is not a mapping. */
int tw_conf_map_get(struct cf_ctx *c, int node, const char *key);
/* Item i of a sequence node; 0 when absent. */
int tw_conf_seq_item(struct cf_ctx *c, int node, size_t i);

/* Parse one node as field f into dst (what the loader does for a key);
 * for CF_NODE parsers that delegate to ordinary schemas. */
int tw_conf_parse_field(struct cf_ctx *c, const struct cf_field *f, int node, void *dst);
/* Node kind of a node id: 's' scalar, 'm' mapping, 'l' list, 0 none/null. */
int tw_conf_node_kind(struct cf_ctx *c, int node);
/* The scalar text of a node (arena copy), NULL when not a scalar. */
const char *tw_conf_scalar(struct cf_ctx *c, int node);

/* Helpers from parse.c. */
int tw_conf_parse_u64(const char *text, uint64_t *out);
int tw_conf_host_check(char *h, const char **why); /* lower-cases h in place */
size_t tw_conf_edit_distance(const char *a, const char *b);
const char *tw_conf_suggest(const char *word, const char *const *cands, size_t n);

/* schema_compress.c: the `compression:` key (CF_NODE; dst is a struct
 * tw_conf_compress * to set) and its mapping's schema. */
extern const struct cf_schema tw_conf_compress_schema;
extern const struct cf_field tw_conf_coding_elem; /* a list element: zstd | br | gzip -> int */
int tw_conf_parse_compress(struct cf_ctx *c, const struct cf_field *f, int node, void *dst);

/* docs.c: write the markdown reference. */
void tw_conf_write_docs(FILE *out);

#endif
