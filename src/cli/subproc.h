/* subproc.h — run a helper program and capture its output (doctor, cluster).
 *
 * The program is searched in PATH, gets /dev/null as stdin, and its stdout
 * (plus stderr when merge_stderr; else stderr stays ours, so the user sees
 * the helper's complaints) is appended to `out` up to out's cap. The
 * child is killed when it runs longer than timeout_ms. */
#ifndef TW_CLI_SUBPROC_H
#define TW_CLI_SUBPROC_H

#include "core/dbuf.h"
#include "core/err.h"

/* Returns 0 when the program ran to completion (*status = its exit code, or
 * 128 + signal), TW_ENOENT when it is not in PATH, TW_ETIMEDOUT when it was
 * killed at the deadline, TW_ELIMIT when it printed more than out's cap,
 * TW_EIO otherwise. */
int tw_subproc_capture(char *const argv[], int merge_stderr, int timeout_ms, struct tw_dbuf *out,
                       int *status, struct tw_err *err);

#endif
