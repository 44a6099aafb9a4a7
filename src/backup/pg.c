/* pg.c — PostgreSQL logical backups as stream sources (see pg.h). */
#include "backup/pg.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/dbuf.h"
#include "core/hex.h"
#include "core/log.h"

#define DB_MAX 1024

struct pg_stream {
	struct tw_pg_plan *plan;
	char name[300];
	char *url;    /* connection for this stream (no password) */
	int globals;  /* pg_dumpall --globals-only */
	struct tw_proc proc;
	int running;
};

struct tw_pg_plan {
	enum tw_pg_kind kind;
	struct tw_pg_conn conn;
	char pg_dump[4096], pg_dumpall[4096];
	char envpw[1100];
	struct pg_stream *ps;
	struct tw_backup_stream *streams;
	size_t n;
};

static char *pct_decode(const char *s, size_t n)
{
	char *o = malloc(n + 1);
	size_t k = 0;
	for (size_t i = 0; o != NULL && i < n; i++) {
		if (s[i] == '%' && i + 2 < n && tw_hexval(s[i + 1]) >= 0 && tw_hexval(s[i + 2]) >= 0) {
			o[k++] = (char)(tw_hexval(s[i + 1]) * 16 + tw_hexval(s[i + 2]));
			i += 2;
		} else
			o[k++] = s[i];
	}
	if (o != NULL)
		o[k] = '\0';
	return o;
}

int tw_pg_conn_parse(const char *url, struct tw_pg_conn *c, struct tw_err *e)
{
	memset(c, 0, sizeof *c);
	const char *p;
	if (strncmp(url, "postgresql://", 13) == 0)
		p = url + 13;
	else if (strncmp(url, "postgres://", 11) == 0)
		p = url + 11;
	else
		return tw_err_set(e, TW_EINVAL, "expected a postgresql://USER@HOST[:PORT]/DB URL");
	size_t scheme = (size_t)(p - url);
	size_t authlen = strcspn(p, "/?");
	const char *at = memchr(p, '@', authlen);
	/* strip user:password@ -> user@ */
	const char *colon = at ? memchr(p, ':', (size_t)(at - p)) : NULL;
	struct tw_dbuf b;
	tw_dbuf_init(&b, 8192);
	int rc = 0;
	if (colon != NULL) {
		c->password = pct_decode(colon + 1, (size_t)(at - colon - 1));
		if (c->password == NULL || tw_dbuf_append(&b, url, (size_t)(colon - url)) != 0 ||
		    tw_dbuf_append(&b, at, strlen(at)) != 0)
			rc = TW_ENOMEM;
	} else if (tw_dbuf_append(&b, url, strlen(url)) != 0)
		rc = TW_ENOMEM;
	if (rc == 0 && tw_dbuf_append(&b, "", 1) != 0)
		rc = TW_ENOMEM;
	if (rc != 0) {
		tw_dbuf_free(&b);
		tw_pg_conn_free(c);
		return tw_err_set(e, rc, "URL too long");
	}
	c->url = strdup(b.data);
	tw_dbuf_free(&b);
	if (c->url == NULL) {
		tw_pg_conn_free(c);
		return tw_err_set(e, TW_ENOMEM, "out of memory");
	}
	const char *q = c->url + scheme;
	q += strcspn(q, "/?");
	if (*q == '/') {
		size_t dl = strcspn(q + 1, "?");
		if (dl > 0 && (c->dbname = pct_decode(q + 1, dl)) == NULL) {
			tw_pg_conn_free(c);
			return tw_err_set(e, TW_ENOMEM, "out of memory");
		}
	}
	return 0;
}

void tw_pg_conn_free(struct tw_pg_conn *c)
{
	if (c == NULL)
		return;
	free(c->url);
	if (c->password)
		explicit_bzero(c->password, strlen(c->password));
	free(c->password);
	free(c->dbname);
	memset(c, 0, sizeof *c);
}

char *tw_pg_conn_with_db(const struct tw_pg_conn *c, const char *db)
{
	const char *p = strstr(c->url, "://");
	p = p ? p + 3 : c->url;
	p += strcspn(p, "/?");
	const char *rest = p;
	if (*rest == '/')
		rest += 1 + strcspn(rest + 1, "?");
	struct tw_dbuf b;
	tw_dbuf_init(&b, 16384);
	int rc = tw_dbuf_append(&b, c->url, (size_t)(p - c->url));
	rc |= tw_dbuf_append(&b, "/", 1);
	for (const char *d = db; *d && rc == 0; d++) {
		unsigned char ch = (unsigned char)*d;
		if ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
		    ch == '_' || ch == '-' || ch == '.')
			rc = tw_dbuf_append(&b, d, 1);
		else {
			char h[4];
			snprintf(h, sizeof h, "%%%02X", ch);
			rc = tw_dbuf_append(&b, h, 3);
		}
	}
	rc |= tw_dbuf_append(&b, rest, strlen(rest) + 1);
	char *out = rc == 0 ? strdup(b.data) : NULL;
	tw_dbuf_free(&b);
	return out;
}

static const char *const *pw_env(const struct tw_pg_plan *p, const char **buf)
{
	buf[0] = p->conn.password ? p->envpw : NULL;
	buf[1] = NULL;
	return buf;
}

static int stream_open(void *arg, int *fd, struct tw_err *e)
{
	struct pg_stream *s = arg;
	const char *envb[2];
	int rc;
	if (s->globals) {
		char *argv[] = {"pg_dumpall", "--globals-only", "--no-password", "-d", s->url, NULL};
		rc = tw_proc_start(&s->proc, s->plan->pg_dumpall, argv, pw_env(s->plan, envb),
				   TW_PROC_NULL, TW_PROC_PIPE, e);
	} else {
		/* one transaction (pg_dump's own snapshot); no compression so
		 * unchanged tables dedup; stdout is a pipe (no seeks) */
		char *argv[] = {"pg_dump", "--format=custom", "--compress=0", "--no-password",
				"-d", s->url, NULL};
		rc = tw_proc_start(&s->proc, s->plan->pg_dump, argv, pw_env(s->plan, envb),
				   TW_PROC_NULL, TW_PROC_PIPE, e);
	}
	if (rc != 0)
		return rc;
	s->running = 1;
	*fd = s->proc.out_fd;
	s->proc.out_fd = -1; /* the engine closes it */
	tw_debug("postgres: %s started (pid %d) for %s/%s", s->proc.name, (int)s->proc.pid,
		 TW_PG_DIR, s->name);
	return 0;
}

static int stream_finish(void *arg, int aborted, struct tw_err *e)
{
	struct pg_stream *s = arg;
	if (!s->running)
		return 0;
	s->running = 0;
	struct tw_err pe = {0};
	int rc = tw_proc_wait(&s->proc, aborted, &pe);
	if (rc != 0)
		return tw_err_set(e, rc, "postgres dump %s/%s failed: %s", TW_PG_DIR, s->name,
				  pe.msg);
	return aborted ? tw_err_set(e, TW_ECANCELED, "postgres dump %s/%s aborted", TW_PG_DIR,
				    s->name)
		       : 0;
}

/* Databases that accept connections, through psql. */
static int list_dbs(struct tw_pg_plan *p, const char *bin_dir, char ***out, size_t *n,
		    struct tw_err *e)
{
	char psql[4096];
	int rc = tw_proc_find(bin_dir, "psql", psql, sizeof psql, e);
	if (rc != 0)
		return rc;
	char *url = p->conn.dbname ? strdup(p->conn.url) : tw_pg_conn_with_db(&p->conn, "postgres");
	if (url == NULL)
		return tw_err_set(e, TW_ENOMEM, "out of memory");
	char *argv[] = {"psql", "-X", "-A", "-t", "--no-password", "-c",
			"SELECT datname FROM pg_database WHERE datallowconn AND NOT datistemplate "
			"ORDER BY 1",
			"-d", url, NULL};
	const char *envb[2];
	struct tw_proc pr;
	rc = tw_proc_start(&pr, psql, argv, pw_env(p, envb), TW_PROC_NULL, TW_PROC_PIPE, e);
	free(url);
	if (rc != 0)
		return rc;
	struct tw_dbuf b;
	tw_dbuf_init(&b, (size_t)1 << 20);
	char buf[4096];
	ssize_t r;
	while ((r = read(pr.out_fd, buf, sizeof buf)) != 0) {
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0 || tw_dbuf_append(&b, buf, (size_t)r) != 0)
			break;
	}
	struct tw_err pe = {0};
	rc = tw_proc_wait(&pr, r != 0, &pe);
	if (rc == 0 && tw_dbuf_append(&b, "", 1) != 0)
		rc = tw_err_set(&pe, TW_ELIMIT, "database list too long");
	if (rc != 0) {
		tw_dbuf_free(&b);
		return tw_err_set(e, rc, "listing databases: %s", pe.msg);
	}
	char **v = calloc(DB_MAX, sizeof *v);
	size_t k = 0;
	for (char *line = b.data; v != NULL && line && *line && k < DB_MAX;) {
		char *nl = strchr(line, '\n');
		if (nl)
			*nl = '\0';
		if (*line)
			v[k++] = strdup(line);
		line = nl ? nl + 1 : NULL;
	}
	tw_dbuf_free(&b);
	if (v == NULL)
		return tw_err_set(e, TW_ENOMEM, "out of memory");
	*out = v;
	*n = k;
	return 0;
}

int tw_pg_plan_new(const char *url, int all, const char *bin_dir, struct tw_pg_plan **out,
		   struct tw_err *e)
{
	struct tw_pg_plan *p = calloc(1, sizeof *p);
	char **dbs = NULL;
	size_t ndb = 0;
	int rc;
	if (p == NULL)
		return tw_err_set(e, TW_ENOMEM, "out of memory");
	if ((rc = tw_pg_conn_parse(url, &p->conn, e)) != 0)
		goto fail;
	if (p->conn.password &&
	    (size_t)snprintf(p->envpw, sizeof p->envpw, "PGPASSWORD=%s", p->conn.password) >=
		sizeof p->envpw) {
		rc = tw_err_set(e, TW_ELIMIT, "password too long");
		goto fail;
	}
	if ((rc = tw_proc_find(bin_dir, "pg_dump", p->pg_dump, sizeof p->pg_dump, e)) != 0)
		goto fail;
	if (all) {
		if ((rc = tw_proc_find(bin_dir, "pg_dumpall", p->pg_dumpall, sizeof p->pg_dumpall,
				       e)) != 0 ||
		    (rc = list_dbs(p, bin_dir, &dbs, &ndb, e)) != 0)
			goto fail;
	} else {
		if (p->conn.dbname == NULL) {
			rc = tw_err_set(e, TW_EINVAL,
					"the URL names no database (postgresql://USER@HOST/DB, or --all)");
			goto fail;
		}
		dbs = calloc(1, sizeof *dbs);
		if (dbs == NULL || (dbs[0] = strdup(p->conn.dbname)) == NULL) {
			rc = tw_err_set(e, TW_ENOMEM, "out of memory");
			goto fail;
		}
		ndb = 1;
	}
	size_t n = ndb + (all ? 1 : 0);
	p->ps = calloc(n, sizeof *p->ps);
	p->streams = calloc(n, sizeof *p->streams);
	if (p->ps == NULL || p->streams == NULL) {
		rc = tw_err_set(e, TW_ENOMEM, "out of memory");
		goto fail;
	}
	for (size_t i = 0; i < n; i++) {
		struct pg_stream *s = &p->ps[i];
		s->plan = p;
		s->globals = all && i == ndb;
		if (s->globals) {
			snprintf(s->name, sizeof s->name, "globals.sql");
			s->url = p->conn.dbname ? strdup(p->conn.url)
						: tw_pg_conn_with_db(&p->conn, "postgres");
		} else {
			if (strchr(dbs[i], '/') != NULL || strlen(dbs[i]) > 200 ||
			    strcmp(dbs[i], "globals") == 0) {
				rc = tw_err_set(e, TW_EINVAL, "database name '%s' cannot be a file name",
						dbs[i]);
				goto fail;
			}
			snprintf(s->name, sizeof s->name, "%s.dump", dbs[i]);
			s->url = tw_pg_conn_with_db(&p->conn, dbs[i]);
		}
		if (s->url == NULL) {
			rc = tw_err_set(e, TW_ENOMEM, "out of memory");
			goto fail;
		}
		p->streams[i] = (struct tw_backup_stream){TW_PG_DIR, s->name, stream_open,
							  stream_finish, s};
		p->n++;
	}
	for (size_t i = 0; i < ndb; i++)
		free(dbs[i]);
	free(dbs);
	*out = p;
	return 0;
fail:
	for (size_t i = 0; dbs && i < ndb; i++)
		free(dbs[i]);
	free(dbs);
	tw_pg_plan_free(p);
	return rc;
}

void tw_pg_plan_free(struct tw_pg_plan *p)
{
	if (p == NULL)
		return;
	for (size_t i = 0; p->ps && i < p->n; i++) {
		if (p->ps[i].running)
			tw_proc_wait(&p->ps[i].proc, 1, NULL);
		free(p->ps[i].url);
	}
	free(p->ps);
	free(p->streams);
	explicit_bzero(p->envpw, sizeof p->envpw);
	tw_pg_conn_free(&p->conn);
	free(p);
}

const struct tw_backup_stream *tw_pg_plan_streams(const struct tw_pg_plan *p, size_t *n)
{
	*n = p->n;
	return p->streams;
}

int tw_pg_restore_start(struct tw_pg_restore *r, const char *url, const char *bin_dir, int list,
			int create, struct tw_err *e)
{
	int rc = tw_proc_find(bin_dir, "pg_restore", r->path, sizeof r->path, e);
	if (rc != 0)
		return rc;
	if (list) {
		char *argv[] = {"pg_restore", "--list", NULL};
		return tw_proc_start(&r->proc, r->path, argv, NULL, TW_PROC_PIPE, TW_PROC_INHERIT, e);
	}
	struct tw_pg_conn c;
	if ((rc = tw_pg_conn_parse(url, &c, e)) != 0)
		return rc;
	char envpw[1100];
	const char *env[2] = {NULL, NULL};
	if (c.password) {
		snprintf(envpw, sizeof envpw, "PGPASSWORD=%s", c.password);
		env[0] = envpw;
	}
	char *argv[] = {"pg_restore", "--no-password", "--exit-on-error", "-d", c.url,
			create ? "--create" : NULL, NULL};
	rc = tw_proc_start(&r->proc, r->path, argv, env, TW_PROC_PIPE, TW_PROC_INHERIT, e);
	explicit_bzero(envpw, sizeof envpw);
	tw_pg_conn_free(&c);
	return rc;
}

int tw_pg_restore_finish(struct tw_pg_restore *r, int abort, struct tw_err *e)
{
	return tw_proc_wait(&r->proc, abort, e);
}
