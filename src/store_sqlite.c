/* store_sqlite.c - the state store's SQLite backend (one host)
 *
 * One file under paths.state, WAL with synchronous=FULL: a commit is on
 * disk before it returns, so "done" means durable (SPEC 4). The schema
 * version is PRAGMA user_version. Statements are prepared once and kept
 * (the SQL texts are the static strings of store_sql.c).
 */
#include "autoconf.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sqlite3.h>

#include "log.h"
#include "store.h"
#include "store_backend.h"
#include "util.h"

#define SQLITE_BUSY_TIMEOUT_MS	5000
#define SQLITE_STMT_CACHE	48	/* distinct statements of store_sql.c */
#define SQLITE_PARAM_NAME_MAX	16

struct db_rows {
	sqlite3_stmt *s;
};

static sqlite3 *db;
static struct {
	const char *sql;		/* compared by address: static texts */
	sqlite3_stmt *s;
} cache[SQLITE_STMT_CACHE];

static int
raw_exec(const char *sql)
{
	return sqlite3_exec(db, sql, NULL, NULL, NULL) == SQLITE_OK ? 0 : -1;
}

/* stmt_get - the prepared statement of sql, from the cache when there */
static sqlite3_stmt *
stmt_get(const char *sql)
{
	sqlite3_stmt *s = NULL;
	size_t i;

	for (i = 0; i < MX_ARRAY_LEN(cache) && cache[i].sql; i++)
		if (cache[i].sql == sql)
			return cache[i].s;
	if (sqlite3_prepare_v2(db, sql, -1, &s, NULL) != SQLITE_OK)
		return NULL;
	if (i < MX_ARRAY_LEN(cache)) {
		cache[i].sql = sql;
		cache[i].s = s;
	}
	return s;
}

/* stmt_put - done with s: reset a cached one, finalize another */
static void
stmt_put(sqlite3_stmt *s)
{
	for (size_t i = 0; i < MX_ARRAY_LEN(cache) && cache[i].sql; i++)
		if (cache[i].s == s) {
			sqlite3_reset(s);
			sqlite3_clear_bindings(s);
			return;
		}
	sqlite3_finalize(s);
}

/* stmt_bind - $1..$np; a parameter the statement does not use is skipped */
static int
stmt_bind(sqlite3_stmt *s, const struct db_param *p, int np)
{
	char name[SQLITE_PARAM_NAME_MAX];
	int idx, rc;

	for (int i = 0; i < np; i++) {
		snprintf(name, sizeof(name), "$%d", i + 1);
		if ((idx = sqlite3_bind_parameter_index(s, name)) == 0)
			continue;
		rc = p[i].type == DBP_INT ?
		    sqlite3_bind_int64(s, idx, (sqlite3_int64)p[i].i) :
		    sqlite3_bind_text(s, idx, p[i].s, -1, SQLITE_STATIC);
		if (rc != SQLITE_OK)
			return -1;
	}
	return 0;
}

static struct db_rows *
sq_query(const char *sql, const struct db_param *p, int np)
{
	sqlite3_stmt *s = stmt_get(sql);
	struct db_rows *r;

	if (s == NULL)
		return NULL;
	if (stmt_bind(s, p, np) == -1) {
		stmt_put(s);
		return NULL;
	}
	r = xcalloc(1, sizeof(*r));
	r->s = s;
	return r;
}

static int
sq_next(struct db_rows *r)
{
	int rc = sqlite3_step(r->s);

	return rc == SQLITE_ROW ? 1 : rc == SQLITE_DONE ? 0 : -1;
}

static const char *
sq_text(struct db_rows *r, int col)
{
	const unsigned char *t = sqlite3_column_text(r->s, col);

	return t ? (const char *)t : "";
}

static long long
sq_integer(struct db_rows *r, int col)
{
	return (long long)sqlite3_column_int64(r->s, col);
}

static void
sq_rows_free(struct db_rows *r)
{
	if (r == NULL)
		return;
	stmt_put(r->s);
	free(r);
}

static int
sq_exec(const char *sql, const struct db_param *p, int np, long long *changes)
{
	struct db_rows *r = sq_query(sql, p, np);
	int rc;

	if (r == NULL)
		return -1;
	while ((rc = sq_next(r)) == 1)
		;
	if (changes)
		*changes = sqlite3_changes(db);
	sq_rows_free(r);
	return rc == 0 ? 0 : -1;
}

static int
sq_begin(void)
{
	/* IMMEDIATE: take the write lock now, not half-way through */
	return raw_exec("BEGIN IMMEDIATE");
}

static int
sq_commit(void)
{
	return raw_exec("COMMIT");
}

static void
sq_rollback(void)
{
	raw_exec("ROLLBACK");
}

static const char *
sq_errmsg(void)
{
	return db ? sqlite3_errmsg(db) : "not open";
}

/* A state written by a single-host build of the migration assistant
 * (before the fleet) has version 3 with that step's content: what steps
 * 3 and 4 add is missing and what step 5 adds is there. It gets steps 3
 * and 4, and is then at 5. */
#define SQ_ASSISTANT_V3		3
#define SQ_ASSISTANT_STEPS	2	/* the two it lacks: 3 and 4 */

/* sq_assistant_v3 - is this a version 3 of the single-host assistant?
 * (it has address_routes, which the fleet's step 3 does not create) */
static int
sq_assistant_v3(int have)
{
	sqlite3_stmt *s = NULL;
	int yes;

	if (have != SQ_ASSISTANT_V3)
		return 0;
	yes = sqlite3_prepare_v2(db, "SELECT 1 FROM sqlite_master WHERE "
	    "type = 'table' AND name = 'address_routes'", -1, &s, NULL) ==
	    SQLITE_OK && sqlite3_step(s) == SQLITE_ROW;
	sqlite3_finalize(s);
	return yes;
}

/* sq_migrate - bring the schema up to date, one transaction per step */
static int
sq_migrate(const char *const *steps, int want, char *err, size_t errlen)
{
	sqlite3_stmt *s = NULL;
	int have = 0;
	char sql[64];

	if (sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &s, NULL) ==
	    SQLITE_OK && sqlite3_step(s) == SQLITE_ROW)
		have = sqlite3_column_int(s, 0);
	sqlite3_finalize(s);
	if (have > want) {
		snprintf(err, errlen, "database schema version %d is newer than "
		    "this mxrelayd (%d): upgrade mxrelayd", have, want);
		return -1;
	}
	if (sq_assistant_v3(have) && want >= SQ_ASSISTANT_V3 +
	    SQ_ASSISTANT_STEPS) {
		snprintf(sql, sizeof(sql), "PRAGMA user_version = %d",
		    SQ_ASSISTANT_V3 + SQ_ASSISTANT_STEPS);
		if (raw_exec("BEGIN IMMEDIATE") == -1 ||
		    raw_exec(steps[SQ_ASSISTANT_V3 - 1]) == -1 ||
		    raw_exec(steps[SQ_ASSISTANT_V3]) == -1 ||
		    raw_exec(sql) == -1 || raw_exec("COMMIT") == -1) {
			snprintf(err, errlen, "schema migration of a version 3 "
			    "state: %s", sqlite3_errmsg(db));
			raw_exec("ROLLBACK");
			return -1;
		}
		have = SQ_ASSISTANT_V3 + SQ_ASSISTANT_STEPS;
		log_info("store schema migrated version=%d (from a single-host "
		    "version 3)", have);
	}
	for (int v = have; v < want; v++) {
		snprintf(sql, sizeof(sql), "PRAGMA user_version = %d", v + 1);
		if (raw_exec("BEGIN IMMEDIATE") == -1 ||
		    raw_exec(steps[v]) == -1 || raw_exec(sql) == -1 ||
		    raw_exec("COMMIT") == -1) {
			snprintf(err, errlen, "schema migration %d: %s", v + 1,
			    sqlite3_errmsg(db));
			raw_exec("ROLLBACK");
			return -1;
		}
		log_info("store schema migrated version=%d", v + 1);
	}
	return 0;
}

/* sq_open - the file under paths.state, the pragmas durability needs */
static int
sq_open(const struct config *cfg, const char *const *steps, int nsteps,
    char *desc, size_t desclen, char *err, size_t errlen)
{
	char *path;
	int rc = -1;

	xasprintf(&path, "%s/%s", cfg->state, STORE_DB_NAME);
	snprintf(desc, desclen, "%s", path);
	if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE |
	    SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX, NULL) != SQLITE_OK) {
		snprintf(err, errlen, "%s: %s", path,
		    db ? sqlite3_errmsg(db) : "cannot open");
		goto out;
	}
	sqlite3_busy_timeout(db, SQLITE_BUSY_TIMEOUT_MS);
	/* WAL: readers never block the writer; FULL: a commit is on disk
	 * before it returns */
	if (raw_exec("PRAGMA journal_mode = WAL") == -1 ||
	    raw_exec("PRAGMA synchronous = FULL") == -1 ||
	    raw_exec("PRAGMA foreign_keys = ON") == -1) {
		snprintf(err, errlen, "%s: %s", path, sqlite3_errmsg(db));
		goto out;
	}
	rc = sq_migrate(steps, nsteps, err, errlen);
out:
	free(path);
	return rc;
}

static void
sq_close(void)
{
	for (size_t i = 0; i < MX_ARRAY_LEN(cache); i++) {
		if (cache[i].s)
			sqlite3_finalize(cache[i].s);
		cache[i].sql = NULL;
		cache[i].s = NULL;
	}
	if (db)
		sqlite3_close(db);
	db = NULL;
}

const struct store_backend store_backend_sqlite = {
	.name = "sqlite",
	.id_column = "INTEGER PRIMARY KEY",
	.shared = 0,
	.open = sq_open,
	.begin = sq_begin,
	.commit = sq_commit,
	.rollback = sq_rollback,
	.exec = sq_exec,
	.query = sq_query,
	.next = sq_next,
	.text = sq_text,
	.integer = sq_integer,
	.rows_free = sq_rows_free,
	.errmsg = sq_errmsg,
	.close = sq_close,
};
