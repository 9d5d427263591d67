/* store_backend.h - the one interface between the state store and its
 * database engine (store_sqlite.c, store_pg.c)
 *
 * The store's operations (store_sql.c) are written once in the SQL both
 * engines accept: parameters are $1, $2, ...; upserts are INSERT ... ON
 * CONFLICT. A backend only connects, migrates its schema, runs statements
 * and hands rows back. Every call but open runs on the store's worker
 * thread, which owns the connection; none runs on the event loop.
 *
 * To add a column or table: append a step to the schema in store_sql.c
 * (one list for both engines) and use it there.
 */
#ifndef MX_STORE_BACKEND_H
#define MX_STORE_BACKEND_H

#include <stddef.h>

#include "config.h"

#define DB_DESC_MAX	512	/* "sqlite /var/lib/mxrelay/mxrelay.db" */

enum db_param_type { DBP_TEXT, DBP_INT };

struct db_param {
	enum db_param_type type;
	const char *s;			/* DBP_TEXT */
	long long i;			/* DBP_INT */
};
#define DB_TEXT(v)	{ DBP_TEXT, (v), 0 }
#define DB_INT(v)	{ DBP_INT, NULL, (long long)(v) }

struct db_rows;				/* a result, the backend's own */

struct store_backend {
	const char *name;		/* "sqlite", "postgresql" */
	/* shared - other hosts use the same database: every change goes to
	 * change_log for them (fleet.c), and begin serialises the fleet's
	 * writes so that change_log ids are in commit order */
	int shared;
	const char *id_column;		/* an auto-numbered key, in the schema */
	/* open - connect and bring the schema to this build's version: the
	 * first nsteps steps applied (or refuse a database with more); desc
	 * gets what the start line names. Returns 0, or -1 with err set. */
	int (*open)(const struct config *, const char *const *steps,
	    int nsteps, char *desc, size_t desclen, char *err, size_t errlen);
	/* begin - a write transaction; commit or rollback ends it */
	int (*begin)(void);
	int (*commit)(void);
	void (*rollback)(void);
	/* exec - a statement without rows; *changes (if not NULL) gets the
	 * number of rows it touched. 0, or -1 on error (errmsg says). */
	int (*exec)(const char *sql, const struct db_param *p, int np,
	    long long *changes);
	/* query - a statement's rows; NULL on error. next: 1 a row is
	 * current, 0 no more, -1 error. text never returns NULL. */
	struct db_rows *(*query)(const char *sql, const struct db_param *p,
	    int np);
	int (*next)(struct db_rows *);
	const char *(*text)(struct db_rows *, int col);
	long long (*integer)(struct db_rows *, int col);
	void (*rows_free)(struct db_rows *);
	/* errmsg - the last error, one line */
	const char *(*errmsg)(void);
	void (*close)(void);
};

/* store_pg_connect - a libpq connection per state.dsn and
 * state.password_file (store_pg.c; fleet.c opens its own with it) */
void *store_pg_connect(const struct config *, char *err, size_t errlen);

/* store_backend_open - b->open with the schema of this build in b's
 * dialect (store_sql.c) */
int store_backend_open(const struct store_backend *b, const struct config *,
    char *desc, size_t desclen, char *err, size_t errlen);

extern const struct store_backend store_backend_sqlite;
extern const struct store_backend store_backend_pg;

#endif
