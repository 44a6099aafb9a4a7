/* lazylib.c — libcurl and libpq, loaded on first use.
 *
 * Linked normally, the two libraries and what they pull in (GnuTLS,
 * Kerberos, LDAP, SASL, libssh2, librtmp, ...) are 27 of the program's 38
 * shared objects, and mapping and relocating them is most of the cost of
 * starting the process: about 270 page faults and 15 ms here. That start is
 * paid on every call of the commands PostgreSQL runs once per WAL segment
 * (archive-push as archive_command, archive-get as restore_command), where
 * neither library is used with a local repository.
 *
 * So the program is not linked with them. This file defines the libcurl
 * and libpq functions tapwork calls, under their own names (the callers
 * include the libraries' headers unchanged); each forwards to the library's
 * function, which dlopen/dlsym find on the first call of any function of
 * that library. The executable does not export these names (no
 * -rdynamic), so the libraries' own internal calls never reach them.
 *
 * A library that cannot be loaded is reported once on stderr, and its
 * functions fail as the library's do on failure: curl_easy_init and
 * curl_share_init return NULL, curl_global_init CURLE_FAILED_INIT,
 * PQconnectdb NULL (PQstatus(NULL) is CONNECTION_BAD and PQerrorMessage
 * names the library). */
#define CURL_DISABLE_TYPECHECK 1
#include "core/lazylib.h"

#include <curl/curl.h>
#include <dlfcn.h>
#include <libpq-fe.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

/* The sonames the headers describe (Debian 12: libcurl4-openssl-dev,
 * libpq-dev). */
#define CURL_SONAME "libcurl.so.4"
#define PQ_SONAME "libpq.so.5"

typedef void (*fnptr)(void);

static struct {
	CURLcode (*global_init)(long);
	CURL *(*easy_init)(void);
	CURLcode (*easy_setopt)(CURL *, CURLoption, ...);
	CURLcode (*easy_perform)(CURL *);
	void (*easy_cleanup)(CURL *);
	void (*easy_reset)(CURL *);
	CURLcode (*easy_getinfo)(CURL *, CURLINFO, ...);
	const char *(*easy_strerror)(CURLcode);
	struct curl_slist *(*slist_append)(struct curl_slist *, const char *);
	void (*slist_free_all)(struct curl_slist *);
	CURLSH *(*share_init)(void);
	CURLSHcode (*share_setopt)(CURLSH *, CURLSHoption, ...);
	CURLSHcode (*share_cleanup)(CURLSH *);
	time_t (*getdate)(const char *, const time_t *);
	curl_version_info_data *(*version_info)(CURLversion);
} cu;

static struct {
	PGconn *(*connectdb)(const char *);
	void (*finish)(PGconn *);
	ConnStatusType (*status)(const PGconn *);
	char *(*error_message)(const PGconn *);
	PGresult *(*exec)(PGconn *, const char *);
	PGresult *(*exec_params)(PGconn *, const char *, int, const Oid *, const char *const *,
	                         const int *, const int *, int);
	ExecStatusType (*result_status)(const PGresult *);
	char *(*result_error_message)(const PGresult *);
	int (*ntuples)(const PGresult *);
	int (*nfields)(const PGresult *);
	char *(*getvalue)(const PGresult *, int, int);
	void (*clear)(PGresult *);
} pq;

static pthread_once_t cu_once = PTHREAD_ONCE_INIT, pq_once = PTHREAD_ONCE_INIT;
static int cu_ok, pq_ok;
static char pq_why[300];

/* dlsym into *slot; 0 when found. (The cast through a function pointer
 * type is POSIX's dlsym contract.) */
static int sym(void *h, const char *name, void *slot)
{
	void *p = dlsym(h, name);
	if (p == NULL)
		return -1;
	memcpy(slot, &p, sizeof p);
	return 0;
}

static void *load(const char *soname, char *why, size_t cap)
{
	void *h = dlopen(soname, RTLD_NOW | RTLD_LOCAL);
	if (h == NULL) {
		const char *d = dlerror();
		snprintf(why, cap, "cannot load %s: %s", soname, d ? d : "unknown error");
		fprintf(stderr, "tapwork: %s\n", why);
	}
	return h;
}

static void cu_load(void)
{
	char why[300];
	void *h = load(CURL_SONAME, why, sizeof why);
	if (h == NULL)
		return;
	int bad = sym(h, "curl_global_init", &cu.global_init) |
	          sym(h, "curl_easy_init", &cu.easy_init) |
	          sym(h, "curl_easy_setopt", &cu.easy_setopt) |
	          sym(h, "curl_easy_perform", &cu.easy_perform) |
	          sym(h, "curl_easy_cleanup", &cu.easy_cleanup) |
	          sym(h, "curl_easy_reset", &cu.easy_reset) |
	          sym(h, "curl_easy_getinfo", &cu.easy_getinfo) |
	          sym(h, "curl_easy_strerror", &cu.easy_strerror) |
	          sym(h, "curl_slist_append", &cu.slist_append) |
	          sym(h, "curl_slist_free_all", &cu.slist_free_all) |
	          sym(h, "curl_share_init", &cu.share_init) |
	          sym(h, "curl_share_setopt", &cu.share_setopt) |
	          sym(h, "curl_share_cleanup", &cu.share_cleanup) |
	          sym(h, "curl_getdate", &cu.getdate) |
	          sym(h, "curl_version_info", &cu.version_info);
	if (bad)
		fprintf(stderr, "tapwork: %s lacks a function tapwork needs\n", CURL_SONAME);
	cu_ok = !bad;
}

static void pq_load(void)
{
	void *h = load(PQ_SONAME, pq_why, sizeof pq_why);
	if (h == NULL)
		return;
	int bad = sym(h, "PQconnectdb", &pq.connectdb) | sym(h, "PQfinish", &pq.finish) |
	          sym(h, "PQstatus", &pq.status) | sym(h, "PQerrorMessage", &pq.error_message) |
	          sym(h, "PQexec", &pq.exec) | sym(h, "PQexecParams", &pq.exec_params) |
	          sym(h, "PQresultStatus", &pq.result_status) |
	          sym(h, "PQresultErrorMessage", &pq.result_error_message) |
	          sym(h, "PQntuples", &pq.ntuples) | sym(h, "PQnfields", &pq.nfields) |
	          sym(h, "PQgetvalue", &pq.getvalue) | sym(h, "PQclear", &pq.clear);
	if (bad) {
		snprintf(pq_why, sizeof pq_why, "%s lacks a function tapwork needs", PQ_SONAME);
		fprintf(stderr, "tapwork: %s\n", pq_why);
	}
	pq_ok = !bad;
}

static int have_curl(void)
{
	pthread_once(&cu_once, cu_load);
	return cu_ok;
}

static int have_pq(void)
{
	pthread_once(&pq_once, pq_load);
	return pq_ok;
}

int tw_lazylib_loaded(const char *which)
{
	if (strcmp(which, "curl") == 0)
		return cu_ok;
	if (strcmp(which, "pq") == 0)
		return pq_ok;
	return 0;
}

/* ---- libcurl ---- */

CURLcode curl_global_init(long flags)
{
	return have_curl() ? cu.global_init(flags) : CURLE_FAILED_INIT;
}

CURL *curl_easy_init(void)
{
	return have_curl() ? cu.easy_init() : NULL;
}

/* The argument's type follows from the option's number, as in libcurl's
 * own curl_easy_setopt: long, object pointer, function pointer, curl_off_t,
 * struct curl_blob pointer. */
CURLcode curl_easy_setopt(CURL *h, CURLoption opt, ...)
{
	if (!have_curl() || h == NULL)
		return CURLE_BAD_FUNCTION_ARGUMENT;
	va_list ap;
	va_start(ap, opt);
	CURLcode rc;
	if (opt < CURLOPTTYPE_OBJECTPOINT)
		rc = cu.easy_setopt(h, opt, va_arg(ap, long));
	else if (opt < CURLOPTTYPE_FUNCTIONPOINT)
		rc = cu.easy_setopt(h, opt, va_arg(ap, void *));
	else if (opt < CURLOPTTYPE_OFF_T)
		rc = cu.easy_setopt(h, opt, va_arg(ap, fnptr));
	else if (opt < CURLOPTTYPE_BLOB)
		rc = cu.easy_setopt(h, opt, va_arg(ap, curl_off_t));
	else
		rc = cu.easy_setopt(h, opt, va_arg(ap, void *));
	va_end(ap);
	return rc;
}

CURLcode curl_easy_perform(CURL *h)
{
	return have_curl() ? cu.easy_perform(h) : CURLE_FAILED_INIT;
}

void curl_easy_cleanup(CURL *h)
{
	if (h != NULL && have_curl())
		cu.easy_cleanup(h);
}

void curl_easy_reset(CURL *h)
{
	if (h != NULL && have_curl())
		cu.easy_reset(h);
}

/* every CURLINFO_* takes a pointer to where the answer goes */
CURLcode curl_easy_getinfo(CURL *h, CURLINFO info, ...)
{
	if (!have_curl() || h == NULL)
		return CURLE_BAD_FUNCTION_ARGUMENT;
	va_list ap;
	va_start(ap, info);
	void *p = va_arg(ap, void *);
	va_end(ap);
	return cu.easy_getinfo(h, info, p);
}

const char *curl_easy_strerror(CURLcode c)
{
	return have_curl() ? cu.easy_strerror(c) : "libcurl could not be loaded";
}

struct curl_slist *curl_slist_append(struct curl_slist *l, const char *s)
{
	return have_curl() ? cu.slist_append(l, s) : NULL;
}

void curl_slist_free_all(struct curl_slist *l)
{
	if (l != NULL && have_curl())
		cu.slist_free_all(l);
}

CURLSH *curl_share_init(void)
{
	return have_curl() ? cu.share_init() : NULL;
}

/* SHARE/UNSHARE take an int (a curl_lock_data), LOCKFUNC/UNLOCKFUNC a
 * function pointer, USERDATA an object pointer: libcurl reads them so. */
CURLSHcode curl_share_setopt(CURLSH *sh, CURLSHoption opt, ...)
{
	if (!have_curl() || sh == NULL)
		return CURLSHE_INVALID;
	va_list ap;
	va_start(ap, opt);
	CURLSHcode rc;
	if (opt == CURLSHOPT_SHARE || opt == CURLSHOPT_UNSHARE)
		rc = cu.share_setopt(sh, opt, va_arg(ap, int));
	else if (opt == CURLSHOPT_LOCKFUNC || opt == CURLSHOPT_UNLOCKFUNC)
		rc = cu.share_setopt(sh, opt, va_arg(ap, fnptr));
	else
		rc = cu.share_setopt(sh, opt, va_arg(ap, void *));
	va_end(ap);
	return rc;
}

CURLSHcode curl_share_cleanup(CURLSH *sh)
{
	return have_curl() ? cu.share_cleanup(sh) : CURLSHE_INVALID;
}

time_t curl_getdate(const char *p, const time_t *unused)
{
	return have_curl() ? cu.getdate(p, unused) : (time_t)-1;
}

curl_version_info_data *curl_version_info(CURLversion v)
{
	return have_curl() ? cu.version_info(v) : NULL;
}

/* ---- libpq ---- */

PGconn *PQconnectdb(const char *conninfo)
{
	return have_pq() ? pq.connectdb(conninfo) : NULL;
}

void PQfinish(PGconn *c)
{
	if (c != NULL && have_pq())
		pq.finish(c);
}

ConnStatusType PQstatus(const PGconn *c)
{
	return c != NULL && have_pq() ? pq.status(c) : CONNECTION_BAD;
}

char *PQerrorMessage(const PGconn *c)
{
	if (!have_pq())
		return pq_why;
	return pq.error_message(c);
}

PGresult *PQexec(PGconn *c, const char *q)
{
	return have_pq() ? pq.exec(c, q) : NULL;
}

PGresult *PQexecParams(PGconn *c, const char *q, int n, const Oid *types,
                       const char *const *values, const int *lengths, const int *formats,
                       int result_format)
{
	return have_pq() ? pq.exec_params(c, q, n, types, values, lengths, formats, result_format)
	                 : NULL;
}

ExecStatusType PQresultStatus(const PGresult *r)
{
	return have_pq() ? pq.result_status(r) : PGRES_FATAL_ERROR;
}

char *PQresultErrorMessage(const PGresult *r)
{
	return have_pq() ? pq.result_error_message(r) : pq_why;
}

int PQntuples(const PGresult *r)
{
	return have_pq() ? pq.ntuples(r) : 0;
}

int PQnfields(const PGresult *r)
{
	return have_pq() ? pq.nfields(r) : 0;
}

char *PQgetvalue(const PGresult *r, int row, int col)
{
	return have_pq() ? pq.getvalue(r, row, col) : NULL;
}

void PQclear(PGresult *r)
{
	if (r != NULL && have_pq())
		pq.clear(r);
}
