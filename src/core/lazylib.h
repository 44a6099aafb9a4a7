/* lazylib.h — libcurl and libpq are loaded on first use (lazylib.c says
 * why and how); callers include <curl/curl.h> and <libpq-fe.h> as usual. */
#ifndef TW_CORE_LAZYLIB_H
#define TW_CORE_LAZYLIB_H

/* 1 once library `which` ("curl" or "pq") has been loaded by a call of one
 * of its functions; 0 before (and when it could not be loaded). */
int tw_lazylib_loaded(const char *which);

#endif
