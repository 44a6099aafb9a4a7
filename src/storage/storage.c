/* storage.c — dispatch to the driver behind a struct tw_storage. */
#include "storage/storage.h"

#include <string.h>

#include "storage/s3.h"

int tw_storage_put(struct tw_storage *s, enum tw_st_type t, const char *name, const void *buf,
		   size_t len, int flags, struct tw_err *e)
{
	return s->ops->put(s, t, name, buf, len, flags, e);
}

int tw_storage_get(struct tw_storage *s, enum tw_st_type t, const char *name, uint64_t off,
		   uint64_t len, uint8_t **out, size_t *out_len, struct tw_err *e)
{
	return s->ops->get(s, t, name, off, len, out, out_len, e);
}

int tw_storage_list(struct tw_storage *s, enum tw_st_type t, tw_st_list_cb cb, void *arg,
		    struct tw_err *e)
{
	return s->ops->list(s, t, cb, arg, e);
}

int tw_storage_del(struct tw_storage *s, enum tw_st_type t, const char *name, struct tw_err *e)
{
	return s->ops->del(s, t, name, e);
}

int tw_storage_stat(struct tw_storage *s, enum tw_st_type t, const char *name, uint64_t *size,
		    struct tw_err *e)
{
	return s->ops->stat(s, t, name, size, e);
}

void tw_storage_close(struct tw_storage *s)
{
	if (s != NULL)
		s->ops->close(s);
}

const char *tw_storage_type_name(enum tw_st_type t)
{
	static const char *const names[TW_ST_NTYPES] = {"config", "keys",      "data",
							 "index",  "snapshots", "locks",
							 "wal"};
	return (unsigned)t < TW_ST_NTYPES ? names[t] : "?";
}

int tw_storage_open(const char *location, int create, struct tw_storage **out, struct tw_err *e)
{
	if (location == NULL || location[0] == '\0')
		return tw_err_set(e, TW_EINVAL, "no repository given (-r or TAPWORK_REPOSITORY)");
	if (strncmp(location, "s3:", 3) == 0)
		return tw_s3_open(location, create, out, e);
	return tw_storage_local_open(location, create, out, e);
}

int tw_storage_has_writer(const struct tw_storage *s)
{
	return s->ops->writer_open != NULL && s->ops->writer_write != NULL &&
	       s->ops->writer_commit != NULL && s->ops->writer_abort != NULL;
}

int tw_storage_tmp_list(struct tw_storage *s, tw_st_tmp_cb cb, void *arg, struct tw_err *e)
{
	return s->ops->tmp_list ? s->ops->tmp_list(s, cb, arg, e) : 0;
}

int tw_storage_tmp_del(struct tw_storage *s, const char *id, struct tw_err *e)
{
	if (s->ops->tmp_del == NULL)
		return tw_err_set(e, TW_EINVAL, "%s: this storage has no temporary objects", id);
	return s->ops->tmp_del(s, id, e);
}

int tw_storage_name_ok(const char *name)
{
	size_t n = strlen(name);
	if (n == 0 || n > 128 || name[0] == '.')
		return 0;
	for (size_t i = 0; i < n; i++) {
		char c = name[i];
		if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		      c == '-' || c == '_' || c == '.'))
			return 0;
	}
	return 1;
}
