/* store_pg.c - the state store's PostgreSQL backend (a fleet of hosts)
 *
 * libpq's synchronous calls, made only on the store's worker thread (and
 * at start-up, before the event loop runs): the loop never waits for the
 * database. The schema version is the one row of mxrelay_schema; the host
 * that starts first migrates under an advisory lock while the others wait
 * for it. A connection that broke is reset before the next statement.
 */
#include "autoconf.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <libpq-fe.h>

#include "log.h"
#include "fleet.h"
#include "store_backend.h"
#include "util.h"

#define PG_LOCK_KEY		"7887486510260547393"	/* "mxrelay\x01" */
#define PG_WRITE_LOCK_KEY	"7887486510260547394"	/* "mxrelay\x02" */
#define PG_CONNECT_TIMEOUT	"5"	/* seconds; the dsn may say otherwise */
#define PG_TCP_USER_TIMEOUT_MS	"10000"	/* unacknowledged data: give up */
#define PG_PASSWORD_MAX		1024
#define PG_ERR_MAX		512
#define PG_INT_MAX		24	/* a long long in decimal */
#define PG_PARAMS_MAX		16
#define PG_APPNAME_MAX		64	/* NAMEDATALEN */
#define PG_OPEN_RETRY_MIN_MS	250	/* start-up: the database is down */
#define PG_OPEN_RETRY_MAX_MS	10000

struct db_rows {
	PGresult *res;
	int row, nrows;
};

static PGconn *conn;
static char errbuf[PG_ERR_MAX];

/* set_err - libpq's message on one line */
static void
set_err(const char *msg)
{
	size_t n;

	mx_strlcpy(errbuf, msg && *msg ? msg : "unknown error", sizeof(errbuf));
	for (char *p = errbuf; *p; p++)
		if (*p == '\n' || *p == '\r')
			*p = ' ';
	n = strlen(errbuf);
	while (n > 0 && errbuf[n - 1] == ' ')
		errbuf[--n] = '\0';
}

/* pg_ready - the connection is usable, reset once if it broke */
static int
pg_ready(void)
{
	if (PQstatus(conn) == CONNECTION_OK)
		return 0;
	PQreset(conn);
	if (PQstatus(conn) == CONNECTION_OK) {
		log_info("store database reconnected");
		return 0;
	}
	set_err(PQerrorMessage(conn));
	return -1;
}

/* pg_run - one statement with text parameters; NULL (errbuf set) unless
 * the server answered with rows or a command completion */
static PGresult *
pg_run(const char *sql, const struct db_param *p, int np)
{
	char ints[PG_PARAMS_MAX][PG_INT_MAX];
	const char *vals[PG_PARAMS_MAX];
	PGresult *res;
	ExecStatusType st;

	if (np > PG_PARAMS_MAX) {
		set_err("too many parameters");
		return NULL;
	}
	if (pg_ready() == -1)
		return NULL;
	for (int i = 0; i < np; i++) {
		if (p[i].type == DBP_INT) {
			snprintf(ints[i], sizeof(ints[i]), "%lld", p[i].i);
			vals[i] = ints[i];
		} else
			vals[i] = p[i].s;
	}
	res = PQexecParams(conn, sql, np, NULL, vals, NULL, NULL, 0);
	st = PQresultStatus(res);
	if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK)
		return res;
	set_err(res ? PQresultErrorMessage(res) : PQerrorMessage(conn));
	PQclear(res);
	return NULL;
}

static struct db_rows *
pg_query(const char *sql, const struct db_param *p, int np)
{
	PGresult *res = pg_run(sql, p, np);
	struct db_rows *r;

	if (res == NULL)
		return NULL;
	r = xcalloc(1, sizeof(*r));
	r->res = res;
	r->row = -1;
	r->nrows = PQntuples(res);
	return r;
}

static int
pg_next(struct db_rows *r)
{
	return ++r->row < r->nrows ? 1 : 0;
}

static const char *
pg_text(struct db_rows *r, int col)
{
	return PQgetvalue(r->res, r->row, col);
}

static long long
pg_integer(struct db_rows *r, int col)
{
	return strtoll(PQgetvalue(r->res, r->row, col), NULL, 10);
}

static void
pg_rows_free(struct db_rows *r)
{
	if (r == NULL)
		return;
	PQclear(r->res);
	free(r);
}

static int
pg_exec(const char *sql, const struct db_param *p, int np, long long *changes)
{
	PGresult *res = pg_run(sql, p, np);

	if (res == NULL)
		return -1;
	if (changes)
		*changes = strtoll(PQcmdTuples(res), NULL, 10);
	PQclear(res);
	return 0;
}

/* pg_simple - a statement (or several) without parameters */
static int
pg_simple(const char *sql)
{
	PGresult *res;
	int ok;

	if (pg_ready() == -1)
		return -1;
	res = PQexec(conn, sql);
	ok = PQresultStatus(res) == PGRES_COMMAND_OK ||
	    PQresultStatus(res) == PGRES_TUPLES_OK;
	if (!ok)
		set_err(res ? PQresultErrorMessage(res) : PQerrorMessage(conn));
	PQclear(res);
	return ok ? 0 : -1;
}

/* pg_begin - one writer at a time in the whole fleet (an advisory lock
 * held to the end of the transaction): change_log ids are then handed out
 * in commit order, so a host reading the log up to id N never misses a
 * smaller id committed later; and a check-then-write job (address put,
 * switch) sees no other host's write in between */
#define PG_BEGIN "BEGIN; SELECT pg_advisory_xact_lock(" PG_WRITE_LOCK_KEY ")"

static int
pg_begin(void)
{
	if (pg_simple(PG_BEGIN) == 0)
		return 0;
	/* a connection that died while idle (a partition, a server restart)
	 * is found broken only when used: nothing of the transaction was
	 * done, so one more try on a new connection is safe */
	if (PQstatus(conn) == CONNECTION_OK)
		return -1;
	return pg_simple(PG_BEGIN);
}

/* pg_commit - the other hosts hear of it when it is committed */
static int
pg_commit(void)
{
	return pg_simple("NOTIFY " FLEET_CHANNEL "; COMMIT");
}

static void
pg_rollback(void)
{
	/* after a broken connection there is nothing to roll back */
	if (PQstatus(conn) == CONNECTION_OK)
		pg_simple("ROLLBACK");
}

static const char *
pg_errmsg(void)
{
	return errbuf;
}

/* pg_schema_version - the row of mxrelay_schema (made when missing) */
static int
pg_schema_version(int *have)
{
	PGresult *res;

	if (pg_simple("CREATE TABLE IF NOT EXISTS mxrelay_schema "
	    "(version INTEGER NOT NULL)") == -1 ||
	    pg_simple("INSERT INTO mxrelay_schema (version) SELECT 0 "
	    "WHERE NOT EXISTS (SELECT 1 FROM mxrelay_schema)") == -1)
		return -1;
	if ((res = pg_run("SELECT version FROM mxrelay_schema", NULL, 0)) == NULL)
		return -1;
	*have = PQntuples(res) == 1 ? atoi(PQgetvalue(res, 0, 0)) : 0;
	PQclear(res);
	return 0;
}

/* pg_migrate_locked - with the advisory lock held: one transaction per
 * step; a schema newer than this build is refused */
static int
pg_migrate_locked(const char *const *steps, int want, char *err,
    size_t errlen)
{
	int have = 0;
	char sql[64];

	if (pg_schema_version(&have) == -1) {
		snprintf(err, errlen, "schema version: %s", errbuf);
		return -1;
	}
	if (have > want) {
		snprintf(err, errlen, "database schema version %d is newer than "
		    "this mxrelayd (%d): upgrade mxrelayd", have, want);
		return -1;
	}
	for (int v = have; v < want; v++) {
		snprintf(sql, sizeof(sql), "UPDATE mxrelay_schema SET version = %d",
		    v + 1);
		if (pg_simple("BEGIN") == -1 || pg_simple(steps[v]) == -1 ||
		    pg_simple(sql) == -1 || pg_simple("COMMIT") == -1) {
			snprintf(err, errlen, "schema migration %d: %s", v + 1,
			    errbuf);
			pg_rollback();
			return -1;
		}
		log_info("store schema migrated version=%d", v + 1);
	}
	return 0;
}

/* pg_migrate - the first host to start migrates; the others wait on the
 * lock and then find the schema current */
static int
pg_migrate(const char *const *steps, int nsteps, char *err, size_t errlen)
{
	int rc;

	if (pg_simple("SELECT pg_advisory_lock(" PG_LOCK_KEY ")") == -1) {
		snprintf(err, errlen, "schema lock: %s", errbuf);
		return -1;
	}
	rc = pg_migrate_locked(steps, nsteps, err, errlen);
	pg_simple("SELECT pg_advisory_unlock(" PG_LOCK_KEY ")");
	return rc;
}

/* read_password - the first line of state.password_file */
static int
read_password(const char *path, char *pw, size_t len, char *err,
    size_t errlen)
{
	FILE *fp = fopen(path, "r");

	if (fp == NULL) {
		snprintf(err, errlen, "state.password_file %s: %s", path,
		    strerror(errno));
		return -1;
	}
	if (fgets(pw, (int)len, fp) == NULL)
		pw[0] = '\0';
	fclose(fp);
	pw[strcspn(pw, "\r\n")] = '\0';
	return 0;
}

/* notice - the server's notices ("relation exists, skipping") are for
 * the debug log, not stderr */
static void
notice(void *arg, const char *msg)
{
	log_debug("store database notice: %.*s", (int)strcspn(msg, "\n"), msg);
}

/* store_pg_connect - connect as state.dsn and state.password_file say */
void *
store_pg_connect(const struct config *cfg, char *err, size_t errlen)
{
	char pw[PG_PASSWORD_MAX] = "";
	/* later keywords override earlier ones, and the dsn's own values
	 * override connect_timeout */
	/* a database that vanished without a word (a partition) is noticed
	 * within seconds, not at the kernel's TCP timeout */
	const char *keys[] = { "connect_timeout", "keepalives_idle",
	    "keepalives_interval", "keepalives_count", "tcp_user_timeout",
	    "application_name", "dbname",
	    cfg->state_password_file ? "password" : NULL, NULL };
	char app[PG_APPNAME_MAX];
	const char *vals[] = { PG_CONNECT_TIMEOUT, "5", "1", "3",
	    PG_TCP_USER_TIMEOUT_MS, app, cfg->state_dsn, pw, NULL };
	PGconn *c;

	/* pg_stat_activity tells the fleet's hosts apart */
	snprintf(app, sizeof(app), "mxrelayd %s", cfg->hostname);
	if (cfg->state_password_file && read_password(cfg->state_password_file,
	    pw, sizeof(pw), err, errlen) == -1)
		return NULL;
	c = PQconnectdbParams(keys, vals, 1);
	explicit_bzero(pw, sizeof(pw));
	if (c == NULL || PQstatus(c) != CONNECTION_OK) {
		char msg[PG_ERR_MAX];

		mx_strlcpy(msg, c ? PQerrorMessage(c) : "out of memory",
		    sizeof(msg));
		msg[strcspn(msg, "\n")] = '\0';
		snprintf(err, errlen, "database \"%s\": %s", cfg->state_dsn, msg);
		PQfinish(c);
		return NULL;
	}
	PQsetNoticeProcessor(c, notice, NULL);
	return c;
}

/* pg_open - connect (waiting for the database: a host of the fleet has no
 * state of its own to start from, see mxrelayd(8)) and migrate */
static int
pg_open(const struct config *cfg, const char *const *steps, int nsteps,
    char *desc, size_t desclen, char *err, size_t errlen)
{
	unsigned wait_ms = PG_OPEN_RETRY_MIN_MS;

	while ((conn = store_pg_connect(cfg, err, errlen)) == NULL) {
		if (cfg->state_password_file && access(cfg->state_password_file,
		    R_OK) == -1)
			return -1;
		log_warnx("store waiting for the database: %s; next try in %u ms",
		    err, wait_ms);
		usleep(wait_ms * 1000);
		if ((wait_ms *= 2) > PG_OPEN_RETRY_MAX_MS)
			wait_ms = PG_OPEN_RETRY_MAX_MS;
	}
	snprintf(desc, desclen, "%s on %s:%s", PQdb(conn), PQhost(conn),
	    PQport(conn));
	return pg_migrate(steps, nsteps, err, errlen);
}

static void
pg_close(void)
{
	if (conn)
		PQfinish(conn);
	conn = NULL;
}

const struct store_backend store_backend_pg = {
	.name = "postgresql",
	.id_column = "BIGSERIAL PRIMARY KEY",
	.shared = 1,
	.open = pg_open,
	.begin = pg_begin,
	.commit = pg_commit,
	.rollback = pg_rollback,
	.exec = pg_exec,
	.query = pg_query,
	.next = pg_next,
	.text = pg_text,
	.integer = pg_integer,
	.rows_free = pg_rows_free,
	.errmsg = pg_errmsg,
	.close = pg_close,
};
