/* store_copy.h - mxrelayd -M DIR: a SQLite state into an empty PostgreSQL
 * database (see store_copy.c) */
#ifndef MX_STORE_COPY_H
#define MX_STORE_COPY_H

#include <stddef.h>
#include <stdio.h>

#include "config.h"

/* store_copy - copy DIR/mxrelay.db into cfg's PostgreSQL database, which
 * must be empty; one line of counts to out. 0, or -1 with err set (then
 * nothing was written). */
int store_copy(const struct config *cfg, const char *statedir, FILE *out,
    char *err, size_t errlen);

#endif
