/* load.c — the generic, schema-driven YAML loader.
 *
 * libyaml's document API gives a node tree with a start mark per node; we
 * walk it alongside the schema tables of schema.c. Everything the result
 * points to comes from the config's own arena (the struct itself included). */
#include "conf/config.h"
#include "conf/schema.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MAX_FILE_BYTES (4u << 20) /* a config larger than this is a mistake */
#define MAX_SCALAR 4096
#define MAX_VISITS 200000ul

static int parse_field(struct cf_ctx *c, const struct cf_field *f, int node, void *dst);
static int apply_defaults(struct cf_ctx *c, const struct cf_schema *s, void *obj);

static yaml_node_t *node_at(struct cf_ctx *c, int id)
{
	return id > 0 ? yaml_document_get_node(c->doc, id) : NULL;
}

int tw_conf_fail(struct cf_ctx *c, int node, const char *extra, const char *fmt, ...)
{
	char msg[384];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	yaml_node_t *n = node_at(c, node);
	unsigned long line = n ? (unsigned long)n->start_mark.line + 1 : 1;
	unsigned long col = n ? (unsigned long)n->start_mark.column + 1 : 1;
	char path[600];
	snprintf(path, sizeof path, "%.*s%s%s", (int)c->plen, c->path, extra && c->plen ? "." : "",
	         extra ? extra : "");
	if (path[0] != '\0')
		return tw_err_set(c->err, TW_EINVAL, "%s:%lu:%lu: %s: %s", c->file, line, col, path,
		                  msg);
	return tw_err_set(c->err, TW_EINVAL, "%s:%lu:%lu: %s", c->file, line, col, msg);
}

int tw_conf_map_get(struct cf_ctx *c, int node, const char *key)
{
	yaml_node_t *n = node_at(c, node);
	if (n == NULL || n->type != YAML_MAPPING_NODE)
		return 0;
	for (yaml_node_pair_t *p = n->data.mapping.pairs.start; p < n->data.mapping.pairs.top;
	     p++) {
		yaml_node_t *k = node_at(c, p->key);
		if (k && k->type == YAML_SCALAR_NODE && strlen(key) == k->data.scalar.length &&
		    memcmp(k->data.scalar.value, key, k->data.scalar.length) == 0)
			return p->value;
	}
	return 0;
}

int tw_conf_seq_item(struct cf_ctx *c, int node, size_t i)
{
	yaml_node_t *n = node_at(c, node);
	if (n == NULL || n->type != YAML_SEQUENCE_NODE)
		return 0;
	size_t cnt = (size_t)(n->data.sequence.items.top - n->data.sequence.items.start);
	return i < cnt ? n->data.sequence.items.start[i] : 0;
}

/* Path stack: push returns the old length to restore. */
static size_t push(struct cf_ctx *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static size_t push(struct cf_ctx *c, const char *fmt, ...)
{
	size_t old = c->plen;
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(c->path + c->plen, sizeof c->path - c->plen, fmt, ap);
	va_end(ap);
	if (n > 0)
		c->plen +=
		    (size_t)n < sizeof c->path - c->plen ? (size_t)n : sizeof c->path - c->plen - 1;
	return old;
}

static void pop(struct cf_ctx *c, size_t old)
{
	c->plen = old;
	c->path[old] = '\0';
}

static const char *kind_name(const struct cf_field *f)
{
	switch (f->kind) {
	case CF_STRING: return "a string";
	case CF_BOOL: return "a boolean (true/false)";
	case CF_UINT: return "a non-negative integer";
	case CF_DURATION: return "a duration";
	case CF_SIZE: return "a size";
	case CF_ADDR: return "an address (host:port)";
	case CF_CIDR: return "a CIDR";
	case CF_ENUM: return "one of the listed words";
	case CF_CUSTOM: return f->type_name;
	case CF_STRUCT: return f->schema->scalar_key ? "an address or a mapping" : "a mapping";
	case CF_LIST: return "a list";
	case CF_MAP: return "a mapping";
	case CF_NODE: return f->type_name;
	}
	return "?";
}

static int is_null(yaml_node_t *n)
{
	if (n->type != YAML_SCALAR_NODE || n->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
		return 0;
	const char *v = (const char *)n->data.scalar.value;
	size_t l = n->data.scalar.length;
	return l == 0 || (l == 1 && v[0] == '~') || (l == 4 && memcmp(v, "null", 4) == 0);
}

static const char *node_kind(yaml_node_t *n)
{
	if (is_null(n))
		return "nothing";
	if (n->type == YAML_MAPPING_NODE)
		return "a mapping";
	if (n->type == YAML_SEQUENCE_NODE)
		return "a list";
	return "a scalar";
}

static void store_uint(void *dst, size_t width, uint64_t v)
{
	if (width == sizeof(unsigned)) {
		unsigned u = (unsigned)v;
		memcpy(dst, &u, sizeof u);
	} else {
		memcpy(dst, &v, sizeof v); /* uint64_t and size_t are 8 bytes here */
	}
}

_Static_assert(sizeof(size_t) == sizeof(uint64_t), "size_t fields are stored as 64-bit");
_Static_assert(sizeof(enum tw_balance) == sizeof(int), "enums are stored as int");

static uint64_t width_max(size_t width)
{
	return width == sizeof(unsigned) ? (uint64_t)UINT32_MAX : UINT64_MAX;
}

static int parse_bool(const char *s, int *v)
{
	static const char *yes[] = {"true", "yes", "on"}, *no[] = {"false", "no", "off"};
	for (size_t i = 0; i < 3; i++) {
		if (strcmp(s, yes[i]) == 0) {
			*v = 1;
			return 0;
		}
		if (strcmp(s, no[i]) == 0) {
			*v = 0;
			return 0;
		}
	}
	return TW_EINVAL;
}

/* Parse a scalar value text into dst. On error, why holds the message. */
static int parse_scalar(struct cf_ctx *c, const struct cf_field *f, const char *text, void *dst,
                        char *why, size_t wl)
{
	struct tw_err e = {0};
	uint64_t v = 0;
	int rc = 0;
	switch (f->kind) {
	case CF_STRING: {
		if (text[0] == '\0') {
			snprintf(why, wl, "must not be empty");
			return TW_EINVAL;
		}
		char *s = tw_arena_strdup(c->arena, text);
		if (s == NULL)
			return TW_ENOMEM;
		memcpy(dst, &s, sizeof s);
		return 0;
	}
	case CF_BOOL: {
		int b;
		if (parse_bool(text, &b) < 0) {
			snprintf(why, wl, "expected true or false, got \"%s\"", text);
			return TW_EINVAL;
		}
		memcpy(dst, &b, sizeof b);
		return 0;
	}
	case CF_UINT:
		if (tw_conf_parse_u64(text, &v) < 0) {
			snprintf(why, wl, "expected a non-negative integer, got \"%s\"", text);
			return TW_EINVAL;
		}
		break;
	case CF_DURATION: rc = tw_duration_parse(text, &v, &e); break;
	case CF_SIZE: rc = tw_size_parse(text, &v, &e); break;
	case CF_ADDR:
		rc = tw_addr_parse(text, dst, &e);
		if (rc < 0)
			snprintf(why, wl, "%s", e.msg);
		return rc;
	case CF_CIDR:
		rc = tw_cidr_parse(text, dst, &e);
		if (rc < 0)
			snprintf(why, wl, "%s", e.msg);
		return rc;
	case CF_ENUM: {
		const char *names[32];
		size_t n = 0;
		char list[256] = "";
		size_t ll = 0;
		for (const struct cf_enum *en = f->enums; en->name; en++) {
			if (strcmp(en->name, text) == 0) {
				memcpy(dst, &en->value, sizeof en->value);
				return 0;
			}
			if (n < 32)
				names[n++] = en->name;
			int k =
			    snprintf(list + ll, sizeof list - ll, "%s%s", ll ? ", " : "", en->name);
			if (k > 0 && (size_t)k < sizeof list - ll)
				ll += (size_t)k;
		}
		const char *s = tw_conf_suggest(text, names, n);
		if (s)
			snprintf(why, wl, "bad value \"%s\" (one of: %s; did you mean %s?)", text,
			         list, s);
		else
			snprintf(why, wl, "bad value \"%s\" (one of: %s)", text, list);
		return TW_EINVAL;
	}
	case CF_CUSTOM: return f->parse(c, f, text, dst, why, wl);
	default: snprintf(why, wl, "expected %s", kind_name(f)); return TW_EINVAL;
	}
	if (rc < 0) {
		snprintf(why, wl, "%s", e.msg);
		return rc;
	}
	uint64_t max = f->max ? f->max : width_max(f->width);
	if (v < f->min || v > max) {
		if (f->kind == CF_UINT)
			snprintf(why, wl, "%llu is out of range (%llu..%llu)",
			         (unsigned long long)v, (unsigned long long)f->min,
			         (unsigned long long)max);
		else
			snprintf(why, wl, "\"%s\" is out of range (%llu..%llu %s)", text,
			         (unsigned long long)f->min, (unsigned long long)max,
			         f->kind == CF_DURATION ? "ms" : "bytes");
		return TW_EINVAL;
	}
	store_uint(dst, f->width, v);
	return 0;
}

static int visit(struct cf_ctx *c, int node)
{
	if (c->budget == 0)
		return tw_conf_fail(c, node, NULL, "document too large (more than %lu nodes)",
		                    MAX_VISITS);
	c->budget--;
	return 0;
}

static int scalar_text(struct cf_ctx *c, yaml_node_t *n, int node, char **out)
{
	size_t len = n->data.scalar.length;
	if (len > MAX_SCALAR)
		return tw_conf_fail(c, node, NULL, "value longer than %u bytes", MAX_SCALAR);
	if (memchr(n->data.scalar.value, '\0', len) != NULL)
		return tw_conf_fail(c, node, NULL, "value contains a NUL byte");
	*out = tw_arena_strndup(c->arena, (const char *)n->data.scalar.value, len);
	return *out ? 0 : TW_ENOMEM;
}

static int parse_struct(struct cf_ctx *c, const struct cf_schema *s, int node, void *obj);

/* The item count of a list or map against f->min, f->max and MAX_VISITS
 * (messages name the items one/many), and the array for them in the arena
 * (*arr NULL when there are none). */
static int alloc_items(struct cf_ctx *c, const struct cf_field *f, int node, size_t cnt,
                       const char *one, const char *many, unsigned char **arr)
{
	*arr = NULL;
	if (cnt < f->min)
		return tw_conf_fail(c, node, NULL, "must have at least %llu %s",
		                    (unsigned long long)f->min, f->min == 1 ? one : many);
	if (f->max && cnt > f->max)
		return tw_conf_fail(c, node, NULL, "must have at most %llu %s",
		                    (unsigned long long)f->max, many);
	if (cnt > MAX_VISITS)
		return tw_conf_fail(c, node, NULL, "too many %s", many);
	if (cnt > 0 && (*arr = tw_arena_alloc(c->arena, cnt * f->elem->width)) == NULL)
		return TW_ENOMEM;
	return 0;
}

/* The parsed array and its count into the parent struct (dst = parent + f->off). */
static void store_items(const struct cf_field *f, void *dst, unsigned char *arr, size_t cnt)
{
	memcpy(dst, &arr, sizeof arr);
	memcpy((unsigned char *)dst - f->off + f->count_off, &cnt, sizeof cnt);
}

static int parse_list(struct cf_ctx *c, const struct cf_field *f, int node, void *dst)
{
	yaml_node_t *n = node_at(c, node);
	if (n->type != YAML_SEQUENCE_NODE)
		return tw_conf_fail(c, node, NULL, "expected a list, got %s", node_kind(n));
	size_t cnt = (size_t)(n->data.sequence.items.top - n->data.sequence.items.start);
	unsigned char *arr;
	int rc = alloc_items(c, f, node, cnt, "item", "items", &arr);
	if (rc < 0)
		return rc;
	for (size_t i = 0; i < cnt; i++) {
		size_t old = push(c, "[%zu]", i);
		rc = parse_field(c, f->elem, n->data.sequence.items.start[i],
		                 arr + i * f->elem->width);
		pop(c, old);
		if (rc < 0)
			return rc;
	}
	store_items(f, dst, arr, cnt);
	return 0;
}

static int parse_map(struct cf_ctx *c, const struct cf_field *f, int node, void *dst)
{
	yaml_node_t *n = node_at(c, node);
	if (n->type != YAML_MAPPING_NODE)
		return tw_conf_fail(c, node, NULL, "expected a mapping of names, got %s",
		                    node_kind(n));
	size_t cnt = (size_t)(n->data.mapping.pairs.top - n->data.mapping.pairs.start);
	unsigned char *arr;
	int rc = alloc_items(c, f, node, cnt, "entries", "entries", &arr);
	if (rc < 0)
		return rc;
	for (size_t i = 0; i < cnt; i++) {
		yaml_node_pair_t *p = &n->data.mapping.pairs.start[i];
		yaml_node_t *k = node_at(c, p->key);
		char *name;
		if (k->type != YAML_SCALAR_NODE)
			return tw_conf_fail(c, p->key, NULL, "names must be strings, got %s",
			                    node_kind(k));
		rc = scalar_text(c, k, p->key, &name);
		if (rc < 0)
			return rc;
		if (name[0] == '\0')
			return tw_conf_fail(c, p->key, NULL, "empty name");
		for (size_t j = 0; j < i; j++) {
			char *other;
			memcpy(&other, arr + j * f->elem->width + f->elem->schema->key_off,
			       sizeof other);
			if (strcmp(other, name) == 0)
				return tw_conf_fail(c, p->key, name, "duplicate key \"%s\"", name);
		}
		unsigned char *elem = arr + i * f->elem->width;
		memcpy(elem + f->elem->schema->key_off, &name, sizeof name);
		size_t old = push(c, ".%s", name);
		rc = parse_field(c, f->elem, p->value, elem);
		pop(c, old);
		if (rc < 0)
			return rc;
	}
	store_items(f, dst, arr, cnt);
	return 0;
}

/* dst points at the value's storage (parent + f->off). */
static int parse_field(struct cf_ctx *c, const struct cf_field *f, int node, void *dst)
{
	int rc = visit(c, node);
	if (rc < 0)
		return rc;
	yaml_node_t *n = node_at(c, node);
	switch (f->kind) {
	case CF_STRUCT:
		if (n->type == YAML_SCALAR_NODE && f->schema->scalar_key) {
			/* "string or struct": the scalar is the value of scalar_key. */
			rc = apply_defaults(c, f->schema, dst);
			for (const struct cf_field *sf = f->schema->fields; rc == 0 && sf->name;
			     sf++)
				if (strcmp(sf->name, f->schema->scalar_key) == 0)
					rc = parse_field(c, sf, node,
					                 (unsigned char *)dst + sf->off);
			if (rc == 0 && f->schema->check)
				rc = f->schema->check(c, node, dst);
			return rc;
		}
		return parse_struct(c, f->schema, node, dst);
	case CF_LIST: return parse_list(c, f, node, dst);
	case CF_MAP: return parse_map(c, f, node, dst);
	case CF_NODE: return f->parse_node(c, f, node, dst);
	default: break;
	}
	if (n->type != YAML_SCALAR_NODE)
		return tw_conf_fail(c, node, NULL, "expected %s, got %s", kind_name(f),
		                    node_kind(n));
	if (is_null(n) && f->kind != CF_STRING)
		return tw_conf_fail(c, node, NULL, "expected %s, got nothing", kind_name(f));
	char *text;
	rc = scalar_text(c, n, node, &text);
	if (rc < 0)
		return rc;
	char why[384];
	why[0] = '\0';
	rc = parse_scalar(c, f, text, dst, why, sizeof why);
	if (rc == TW_ENOMEM)
		return rc;
	if (rc < 0)
		return tw_conf_fail(c, node, NULL, "%s", why);
	return 0;
}

int tw_conf_parse_field(struct cf_ctx *c, const struct cf_field *f, int node, void *dst)
{
	return parse_field(c, f, node, dst);
}

int tw_conf_node_kind(struct cf_ctx *c, int node)
{
	yaml_node_t *n = node_at(c, node);
	if (n == NULL || is_null(n))
		return 0;
	return n->type == YAML_MAPPING_NODE ? 'm' : n->type == YAML_SEQUENCE_NODE ? 'l' : 's';
}

const char *tw_conf_scalar(struct cf_ctx *c, int node)
{
	yaml_node_t *n = node_at(c, node);
	char *text = NULL;
	if (n == NULL || n->type != YAML_SCALAR_NODE || scalar_text(c, n, node, &text) < 0)
		return NULL;
	return text;
}

static int apply_defaults(struct cf_ctx *c, const struct cf_schema *s, void *obj)
{
	for (const struct cf_field *f = s->fields; f->name; f++) {
		unsigned char *dst = (unsigned char *)obj + f->off;
		if (f->kind == CF_STRUCT && !(f->flags & CF_OPTIONAL)) {
			int rc = apply_defaults(c, f->schema, dst);
			if (rc < 0)
				return rc;
			continue;
		}
		if (f->def == NULL || f->kind == CF_STRUCT || f->kind == CF_LIST ||
		    f->kind == CF_MAP || f->kind == CF_NODE)
			continue;
		char why[384];
		int rc = parse_scalar(c, f, f->def, dst, why, sizeof why);
		if (rc < 0)
			return rc == TW_ENOMEM
			           ? rc
			           : tw_err_set(c->err, TW_EINVAL,
			                        "internal: bad default for %s: %s", f->name, why);
	}
	return 0;
}

static int parse_struct(struct cf_ctx *c, const struct cf_schema *s, int node, void *obj)
{
	yaml_node_t *n = node_at(c, node);
	if (n->type != YAML_MAPPING_NODE)
		return tw_conf_fail(c, node, NULL, "expected %s, got %s",
		                    s->scalar_key ? "an address or a mapping" : "a mapping",
		                    node_kind(n));
	int rc = apply_defaults(c, s, obj);
	if (rc < 0)
		return rc;
	yaml_node_pair_t *start = n->data.mapping.pairs.start, *top = n->data.mapping.pairs.top;
	for (yaml_node_pair_t *p = start; p < top; p++) {
		yaml_node_t *k = node_at(c, p->key);
		if (k->type != YAML_SCALAR_NODE)
			return tw_conf_fail(c, p->key, NULL, "keys must be strings, got %s",
			                    node_kind(k));
		char *key;
		if ((rc = scalar_text(c, k, p->key, &key)) < 0)
			return rc;
		for (yaml_node_pair_t *q = start; q < p; q++) {
			yaml_node_t *qk = node_at(c, q->key);
			if (qk->type == YAML_SCALAR_NODE &&
			    qk->data.scalar.length == k->data.scalar.length &&
			    memcmp(qk->data.scalar.value, k->data.scalar.value,
			           k->data.scalar.length) == 0)
				return tw_conf_fail(c, p->key, key,
				                    "duplicate key (first at line %lu)",
				                    (unsigned long)qk->start_mark.line + 1);
		}
		const struct cf_field *f = s->fields;
		while (f->name && strcmp(f->name, key) != 0)
			f++;
		if (f->name == NULL) {
			const char *names[64];
			size_t nn = 0;
			for (const struct cf_field *g = s->fields; g->name && nn < 64; g++)
				names[nn++] = g->name;
			const char *sug = tw_conf_suggest(key, names, nn);
			if (sug)
				return tw_conf_fail(c, p->key, key,
				                    "unknown key (did you mean %s?)", sug);
			return tw_conf_fail(c, p->key, key, "unknown key");
		}
		size_t old = push(c, "%s%s", c->plen ? "." : "", key);
		unsigned char *dst = (unsigned char *)obj + f->off;
		if (f->kind == CF_STRUCT && (f->flags & CF_OPTIONAL)) {
			rc = apply_defaults(c, f->schema, dst);
			if (rc < 0)
				return rc;
		}
		rc = parse_field(c, f, p->value, dst);
		pop(c, old);
		if (rc < 0)
			return rc;
		if (f->flags & CF_PRESENT) {
			int one = 1;
			memcpy((unsigned char *)obj + f->present_off, &one, sizeof one);
		}
	}
	for (const struct cf_field *f = s->fields; f->name; f++)
		if ((f->flags & CF_REQUIRED) && tw_conf_map_get(c, node, f->name) == 0)
			return tw_conf_fail(c, node, NULL, "missing required key \"%s\"", f->name);
	if (s->check)
		return s->check(c, node, obj);
	return 0;
}

/* Load the single document of a YAML stream and run the schema over it. */
static int load(const char *name, const char *yaml, size_t len, struct tw_config **out,
                struct tw_err *err)
{
	yaml_parser_t parser;
	yaml_document_t doc;
	int have_doc = 0, rc;
	struct tw_arena arena;
	struct tw_config *cfg = NULL;
	struct tw_err scratch;

	*out = NULL;
	if (err == NULL)
		err = &scratch;
	tw_arena_init(&arena, 8192);
	if (!yaml_parser_initialize(&parser))
		return tw_err_set(err, TW_ENOMEM, "%s: cannot start the YAML parser", name);
	yaml_parser_set_input_string(&parser, (const unsigned char *)yaml, len);
	if (!yaml_parser_load(&parser, &doc)) {
		rc = tw_err_set(err, TW_EINVAL, "%s:%lu:%lu: YAML syntax error: %s%s%s", name,
		                (unsigned long)parser.problem_mark.line + 1,
		                (unsigned long)parser.problem_mark.column + 1,
		                parser.problem ? parser.problem : "unknown",
		                parser.context ? " " : "", parser.context ? parser.context : "");
		goto done;
	}
	have_doc = 1;
	yaml_node_t *root = yaml_document_get_root_node(&doc);
	if (root == NULL) {
		rc = tw_err_set(err, TW_EINVAL, "%s:1:1: the configuration is empty", name);
		goto done;
	}
	{
		yaml_document_t extra;
		if (!yaml_parser_load(&parser, &extra)) {
			rc = tw_err_set(err, TW_EINVAL, "%s:%lu:%lu: YAML syntax error: %s", name,
			                (unsigned long)parser.problem_mark.line + 1,
			                (unsigned long)parser.problem_mark.column + 1,
			                parser.problem ? parser.problem : "unknown");
			goto done;
		}
		yaml_node_t *r2 = yaml_document_get_root_node(&extra);
		unsigned long line = r2 ? (unsigned long)r2->start_mark.line + 1 : 0;
		yaml_document_delete(&extra);
		if (r2 != NULL) {
			rc = tw_err_set(err, TW_EINVAL, "%s:%lu:1: more than one YAML document",
			                name, line);
			goto done;
		}
	}
	cfg = tw_arena_alloc(&arena, sizeof *cfg);
	if (cfg == NULL) {
		rc = tw_err_set(err, TW_ENOMEM, "%s: out of memory", name);
		goto done;
	}
	cfg->arena = arena; /* from here on the arena lives inside cfg */
	struct cf_ctx c = {
	    .doc = &doc, .arena = &cfg->arena, .err = err, .cfg = cfg, .budget = MAX_VISITS};
	cfg->source = tw_arena_strdup(&cfg->arena, name);
	if (cfg->source == NULL) {
		rc = tw_err_set(err, TW_ENOMEM, "%s: out of memory", name);
		goto done;
	}
	c.file = cfg->source;
	rc = parse_struct(&c, &tw_conf_root_schema, 1, cfg);
	if (rc == TW_ENOMEM)
		tw_err_set(err, TW_ENOMEM, "%s: out of memory", name);
done:
	if (have_doc)
		yaml_document_delete(&doc);
	yaml_parser_delete(&parser);
	if (rc < 0) {
		if (cfg != NULL)
			tw_config_free(cfg);
		else
			tw_arena_free(&arena);
		return rc;
	}
	*out = cfg;
	return 0;
}

int tw_config_load_string(const char *name, const char *yaml, size_t len, struct tw_config **out,
                          struct tw_err *err)
{
	if (len > MAX_FILE_BYTES) {
		*out = NULL;
		return tw_err_set(err, TW_ELIMIT, "%s: larger than %u bytes", name, MAX_FILE_BYTES);
	}
	return load(name, yaml, len, out, err);
}

int tw_config_load_file(const char *path, struct tw_config **out, struct tw_err *err)
{
	*out = NULL;
	FILE *f = fopen(path, "rb");
	if (f == NULL)
		return tw_err_set(err, errno == ENOENT ? TW_ENOENT : TW_EIO, "%s: cannot open: %s",
		                  path, strerror(errno));
	char *buf = malloc(MAX_FILE_BYTES + 1);
	if (buf == NULL) {
		fclose(f);
		return tw_err_set(err, TW_ENOMEM, "%s: out of memory", path);
	}
	size_t n = fread(buf, 1, MAX_FILE_BYTES + 1, f);
	int rc;
	if (ferror(f))
		rc = tw_err_set(err, TW_EIO, "%s: read error", path);
	else if (n > MAX_FILE_BYTES)
		rc = tw_err_set(err, TW_ELIMIT, "%s: larger than %u bytes", path, MAX_FILE_BYTES);
	else
		rc = load(path, buf, n, out, err);
	free(buf);
	fclose(f);
	return rc;
}

int tw_config_load_default(struct tw_config **out, struct tw_err *err)
{
	/* root keeps state in /var/lib/tapwork (the schema default); anyone
	 * else in ~/.local/state/tapwork, so `tapwork run` works unprivileged. */
	const char *home = getenv("HOME");
	if (geteuid() == 0 || home == NULL || home[0] != '/')
		return load("<embedded>", tw_config_default_yaml, strlen(tw_config_default_yaml), out, err);
	char text[4096];
	int n = snprintf(text, sizeof text, "%sstate_dir: \"%s/.local/state/tapwork\"\n", tw_config_default_yaml, home);
	if (n < 0 || (size_t)n >= sizeof text || strchr(home, '"') || strchr(home, '\\'))
		return load("<embedded>", tw_config_default_yaml, strlen(tw_config_default_yaml), out, err);
	return load("<embedded>", text, (size_t)n, out, err);
}

void tw_config_free(struct tw_config *cfg)
{
	if (cfg == NULL)
		return;
	struct tw_arena a = cfg->arena; /* cfg lives in its own arena: copy first */
	tw_arena_free(&a);
}

const struct tw_conf_backend *tw_config_backend(const struct tw_config *cfg, const char *name)
{
	for (size_t i = 0; i < cfg->nbackends; i++)
		if (strcmp(cfg->backends[i].name, name) == 0)
			return &cfg->backends[i];
	return NULL;
}
