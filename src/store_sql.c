/* store_sql.c - the state store's operations, in SQL (worker thread)
 *
 * The start-up load into the index and the jobs that store.c submits to
 * the worker: each write is one transaction, committed before its
 * completion reaches the loop. The SQL is written once, for both engines,
 * through the backend interface (store_backend.h): SQLite for one host,
 * PostgreSQL for a fleet.
 */
#include "autoconf.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>

#include "dict.h"
#include "log.h"
#include "store.h"
#include "store_backend.h"
#include "store_priv.h"
#include "table_import.h"
#include "util.h"

static const struct store_backend *be;
static char *host_name;			/* who runs the commands (history) */
static char origin[STORE_ORIGIN_MAX];	/* this process, in change_log */

/* The schema, one list for both engines: each step is applied once, in
 * order, in its own transaction, and the database records how many it has
 * (SQLite: PRAGMA user_version; PostgreSQL: mxrelay_schema). @ID@ is the
 * engine's auto-numbered key (store_backend.id_column); BIGINT is a 64-bit
 * integer on both. Append new steps at the end; never edit one that has
 * shipped. */
static const char *const schema[] = {
	/* 1: initial schema */
	"CREATE TABLE domains ("
	"  name TEXT PRIMARY KEY NOT NULL,"
	"  mode TEXT NOT NULL CHECK (mode IN ('legacy', 'hosted')),"
	"  created BIGINT NOT NULL);"
	"CREATE TABLE legacy_servers ("
	"  domain TEXT NOT NULL REFERENCES domains(name) ON DELETE CASCADE,"
	"  host TEXT NOT NULL,"
	"  port INTEGER NOT NULL,"
	"  pref INTEGER NOT NULL,"
	"  position INTEGER NOT NULL,"
	"  PRIMARY KEY (domain, position));"
	"CREATE TABLE addresses ("
	"  address TEXT PRIMARY KEY NOT NULL,"
	"  domain TEXT NOT NULL REFERENCES domains(name) ON DELETE CASCADE,"
	"  kind TEXT NOT NULL CHECK (kind IN ('mailbox', 'alias')),"
	"  destinations TEXT NOT NULL DEFAULT '',"
	"  cc TEXT NOT NULL DEFAULT '',"
	"  nofilter INTEGER NOT NULL DEFAULT 0);"
	"CREATE INDEX addresses_domain ON addresses (domain, address);"
	/* kept when a domain is removed: it is an audit trail */
	"CREATE TABLE switch_history ("
	"  id @ID@,"
	"  domain TEXT NOT NULL,"
	"  time BIGINT NOT NULL,"
	"  from_mode TEXT NOT NULL,"
	"  to_mode TEXT NOT NULL,"
	"  uid BIGINT NOT NULL,"
	"  note TEXT NOT NULL DEFAULT '');"
	"CREATE INDEX switch_history_domain ON switch_history (domain, time);",
	/* 2: scheduled switches (relayctl switch --at); refused scheduled
	 * switches stay in the history with applied = 0 */
	"ALTER TABLE switch_history ADD COLUMN applied INTEGER NOT NULL DEFAULT 1;"
	"CREATE TABLE switch_schedule ("
	"  domain TEXT PRIMARY KEY NOT NULL REFERENCES domains(name) ON DELETE CASCADE,"
	"  at BIGINT NOT NULL,"
	"  to_mode TEXT NOT NULL CHECK (to_mode IN ('legacy', 'hosted')),"
	"  uid BIGINT NOT NULL,"
	"  force INTEGER NOT NULL DEFAULT 0,"
	"  created BIGINT NOT NULL);",
	/* 3: the history names the host that ran the command; a fleet on
	 * one database (PostgreSQL) logs every change for the other hosts
	 * (change_log) and keeps its hosts' leases (hosts). SQLite has them
	 * too, so that the logical schema is the same, but leaves them empty. */
	"ALTER TABLE switch_history ADD COLUMN host TEXT NOT NULL DEFAULT '';"
	"CREATE TABLE change_log ("
	"  id @ID@,"
	"  kind TEXT NOT NULL CHECK (kind IN ('domain', 'address')),"
	"  key TEXT NOT NULL,"
	"  origin TEXT NOT NULL);"
	"CREATE TABLE hosts ("
	"  name TEXT PRIMARY KEY NOT NULL,"
	"  pid INTEGER NOT NULL,"
	"  version TEXT NOT NULL,"
	"  started BIGINT NOT NULL,"
	"  lease_until BIGINT NOT NULL,"
	"  applied BIGINT NOT NULL DEFAULT 0,"
	"  queue BIGINT NOT NULL DEFAULT 0);",
	/* 4: a scheduled switch is claimed by the host that runs it (its
	 * preflight included), for STORE_CLAIM_SECS; a host reports up to
	 * which change its deliveries to the old routes have ended (switch
	 * --wait in a fleet) */
	"ALTER TABLE switch_schedule ADD COLUMN claimed_by TEXT NOT NULL DEFAULT '';"
	"ALTER TABLE switch_schedule ADD COLUMN claimed_until BIGINT NOT NULL DEFAULT 0;"
	"ALTER TABLE hosts ADD COLUMN drained BIGINT NOT NULL DEFAULT 0;",
	/* 5: the migration assistant. History rows of other events than a
	 * switch: a pilot's override ('route', naming the address; from/to
	 * hold route names) and a change of the MX picture ('mx'; from/to
	 * hold picture names). Pilot overrides beside the entry (address
	 * add and import update the entry and keep them; removing it drops
	 * its override). The MX watch's picture, one for the fleet. The
	 * domain's recipient verification flag and the addresses its old
	 * server accepted. */
	"ALTER TABLE switch_history ADD COLUMN event TEXT NOT NULL DEFAULT 'switch';"
	"ALTER TABLE switch_history ADD COLUMN address TEXT NOT NULL DEFAULT '';"
	"CREATE TABLE address_routes ("
	"  address TEXT PRIMARY KEY NOT NULL REFERENCES addresses(address) ON DELETE CASCADE,"
	"  domain TEXT NOT NULL REFERENCES domains(name) ON DELETE CASCADE,"
	"  route TEXT NOT NULL CHECK (route IN ('hosted', 'legacy')));"
	"CREATE TABLE mx_watch ("
	"  domain TEXT PRIMARY KEY NOT NULL REFERENCES domains(name) ON DELETE CASCADE,"
	"  picture TEXT NOT NULL,"
	"  checked BIGINT NOT NULL,"
	"  since BIGINT NOT NULL,"
	"  prev_ttl BIGINT NOT NULL,"
	"  other_ttl BIGINT NOT NULL);"
	"ALTER TABLE domains ADD COLUMN verify_legacy INTEGER NOT NULL DEFAULT 0;"
	"CREATE TABLE verified_addresses ("
	"  address TEXT PRIMARY KEY NOT NULL,"
	"  domain TEXT NOT NULL REFERENCES domains(name) ON DELETE CASCADE,"
	"  verified BIGINT NOT NULL,"
	"  expires BIGINT NOT NULL);",
};

/* schema_steps - the steps in b's dialect (free with schema_free);
 * returns their number */
static int
schema_steps(const struct store_backend *b, char ***out)
{
	int n = (int)MX_ARRAY_LEN(schema);
	char **v = xcalloc((size_t)n + 1, sizeof(char *));

	for (int i = 0; i < n; i++) {
		const char *p = schema[i], *m;
		size_t len = 0;

		v[i] = xcalloc(strlen(p) + 4 * strlen(b->id_column) + 1, 1);
		while ((m = strstr(p, "@ID@")) != NULL) {
			memcpy(v[i] + len, p, (size_t)(m - p));
			len += (size_t)(m - p);
			len += (size_t)sprintf(v[i] + len, "%s", b->id_column);
			p = m + 4;
		}
		strcpy(v[i] + len, p);
	}
	*out = v;
	return n;
}

static void
schema_free(char **v, int n)
{
	for (int i = 0; i < n; i++)
		free(v[i]);
	free(v);
}

/* store_backend_open - open b with the schema of this build */
int
store_backend_open(const struct store_backend *b, const struct config *cfg,
    char *desc, size_t desclen, char *err, size_t errlen)
{
	char **steps;
	int n = schema_steps(b, &steps);
	int rc = b->open(cfg, (const char *const *)steps, n, desc, desclen,
	    err, errlen);

	schema_free(steps, n);
	return rc;
}

/* list_join - "a,b,c" (the database column form), malloc'd */
static char *
list_join(char *const *l, int n)
{
	size_t len = 1, off = 0;
	char *s;

	for (int i = 0; i < n; i++)
		len += strlen(l[i]) + 1;
	s = xmalloc(len);
	s[0] = '\0';
	for (int i = 0; i < n; i++)
		off += (size_t)sprintf(s + off, "%s%s", i ? "," : "", l[i]);
	return s;
}

/* addr_from_entry - a parsed import line as an addr_info */
static struct addr_info *
addr_from_entry(const struct import_entry *e)
{
	struct addr_info *a = xcalloc(1, sizeof(*a));

	a->address = xstrdup(e->address);
	a->kind = e->kind;
	a->nofilter = e->nofilter;
	a->dests = xcalloc((size_t)e->ndests + 1, sizeof(char *));
	for (int i = 0; i < e->ndests; i++)
		a->dests[a->ndests++] = xstrdup(e->dests[i]);
	a->cc = xcalloc((size_t)e->ncc + 1, sizeof(char *));
	for (int i = 0; i < e->ncc; i++)
		a->cc[a->ncc++] = xstrdup(e->cc[i]);
	return a;
}

/* Database helpers (worker thread, and store_sql_open before it starts) */

/* db_fail - a database error refuses the command; the log has the detail */
static void
db_fail(struct store_op *op, const char *what)
{
	const char *msg = be->errmsg();

	log_warnx("store error op=%s backend=%s reason=\"%s\"", what, be->name,
	    msg);
	op->res.status = 1;
	snprintf(op->res.msg, sizeof(op->res.msg), "state store error (%s, %s "
	    "database): %s", what, be->name, msg);
}

/* db_exists - does sql with $1 = key return a row: 1, 0, or -1 on error */
static int
db_exists(const char *sql, const char *key)
{
	struct db_param p[] = { DB_TEXT(key) };
	struct db_rows *r = be->query(sql, p, 1);
	int rc;

	if (r == NULL)
		return -1;
	rc = be->next(r);
	be->rows_free(r);
	return rc;
}

#define SQL_DOMAIN_EXISTS "SELECT 1 FROM domains WHERE name = $1"

static int
db_domain_exists(const char *name)
{
	return db_exists(SQL_DOMAIN_EXISTS, name);
}

/* db_exec_name - run sql with $1 = name (and $2 = at when sql has it:
 * PostgreSQL refuses a parameter the statement does not use) */
static int
db_exec_name(const char *sql, const char *name, time_t at, long long *changes)
{
	struct db_param p[] = { DB_TEXT(name), DB_INT(at) };

	return be->exec(sql, p, strstr(sql, "$2") ? 2 : 1, changes);
}

#define SQL_INSERT_SERVER "INSERT INTO legacy_servers " \
	"(domain, host, port, pref, position) VALUES ($1, $2, $3, $4, $5)"

/* db_insert_servers - the ordered server list of a domain */
static int
db_insert_servers(const char *name, const struct legacy_server *sv, int n)
{
	for (int i = 0; i < n; i++) {
		struct db_param p[] = { DB_TEXT(name), DB_TEXT(sv[i].host),
		    DB_INT(sv[i].port), DB_INT(sv[i].pref), DB_INT(i) };

		if (be->exec(SQL_INSERT_SERVER, p, 5, NULL) == -1)
			return -1;
	}
	return 0;
}

/* addr_from_row - columns address, kind, destinations, cc, nofilter */
static struct addr_info *
addr_from_row(struct db_rows *r)
{
	return store_addr_from_columns(be->text(r, 0), be->text(r, 1),
	    be->text(r, 2), be->text(r, 3), be->integer(r, 4) != 0);
}

#define SQL_GET_ADDR "SELECT address, kind, destinations, cc, nofilter " \
	"FROM addresses WHERE address = $1"
#define SQL_PUT_ADDR "INSERT INTO addresses " \
	"(address, domain, kind, destinations, cc, nofilter) " \
	"VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (address) DO UPDATE SET " \
	"domain = excluded.domain, kind = excluded.kind, " \
	"destinations = excluded.destinations, cc = excluded.cc, " \
	"nofilter = excluded.nofilter"

/* db_get_addr - the stored definition of address, or NULL (*err on error) */
static struct addr_info *
db_get_addr(const char *address, int *err)
{
	struct db_param p[] = { DB_TEXT(address) };
	struct db_rows *r = be->query(SQL_GET_ADDR, p, 1);
	struct addr_info *a = NULL;
	int rc;

	if (r == NULL) {
		*err = 1;
		return NULL;
	}
	if ((rc = be->next(r)) == 1)
		a = addr_from_row(r);
	*err = rc == -1;
	be->rows_free(r);
	return a;
}

/* db_put_addr - insert or replace one address */
static int
db_put_addr(const struct addr_info *a)
{
	char *dests = list_join(a->dests, a->ndests);
	char *cc = list_join(a->cc, a->ncc);
	struct db_param p[] = { DB_TEXT(a->address),
	    DB_TEXT(import_address_domain(a->address)),
	    DB_TEXT(a->kind == ADDR_ALIAS ? "alias" : "mailbox"),
	    DB_TEXT(dests), DB_TEXT(cc), DB_INT(a->nofilter ? 1 : 0) };
	int rc = be->exec(SQL_PUT_ADDR, p, 6, NULL);

	free(dests);
	free(cc);
	return rc;
}

/* tx_end - commit, or roll back after an error (db_fail already called) */
static void
tx_end(struct store_op *op, int commit)
{
	if (commit && op->res.status == 0) {
		if (be->commit() == -1) {
			db_fail(op, "commit");
			be->rollback();
		}
	} else
		be->rollback();
}

static int
tx_begin(struct store_op *op)
{
	if (be->begin() == -1) {
		db_fail(op, "begin");
		return -1;
	}
	return 0;
}

static void refuse(struct store_op *, const char *, ...)
    __attribute__((format(printf, 2, 3)));

/* refuse - the command cannot be done; msg says why */
static void
refuse(struct store_op *op, const char *fmt, ...)
{
	va_list ap;

	op->res.status = 1;
	va_start(ap, fmt);
	vsnprintf(op->res.msg, sizeof(op->res.msg), fmt, ap);
	va_end(ap);
}

/* log_change - tell the other hosts of a shared database that key
 * changed (inside the job's transaction); *id gets the log row's id.
 * Nothing to do for a database of one host. 0, or -1 on error. */
static int
log_change(struct store_op *op, const char *kind, const char *key)
{
	struct db_param p[] = { DB_TEXT(kind), DB_TEXT(key), DB_TEXT(origin) };
	struct db_rows *r;
	int rc;

	if (!be->shared)
		return 0;
	if ((r = be->query("INSERT INTO change_log (kind, key, origin) "
	    "VALUES ($1, $2, $3) RETURNING id", p, 3)) == NULL)
		return -1;
	if ((rc = be->next(r)) == 1)
		op->res.version = be->integer(r, 0);
	be->rows_free(r);
	return rc == 1 ? 0 : -1;
}

/* Jobs (worker thread) */

static void
job_domain_add(struct store_op *op)
{
	struct db_param p[] = { DB_TEXT(op->name),
	    DB_TEXT(store_mode_name(op->mode)), DB_INT(op->created) };
	long long n = 0;

	if (tx_begin(op) == -1)
		return;
	if (be->exec("INSERT INTO domains (name, mode, created) "
	    "VALUES ($1, $2, $3) ON CONFLICT (name) DO NOTHING", p, 3, &n) == -1)
		db_fail(op, "domain add");
	else if (n == 0)
		refuse(op, "domain %s: already exists", op->name);
	else if (db_insert_servers(op->name, op->servers, op->nservers) == -1 ||
	    log_change(op, "domain", op->name) == -1)
		db_fail(op, "domain add");
	tx_end(op, 1);
}

static void
job_domain_servers(struct store_op *op)
{
	int ex;

	if (tx_begin(op) == -1)
		return;
	if ((ex = db_domain_exists(op->name)) == 0)
		refuse(op, "domain %s: not found", op->name);
	else if (ex < 0 || db_exec_name("DELETE FROM legacy_servers "
	    "WHERE domain = $1", op->name, 0, NULL) == -1 ||
	    db_insert_servers(op->name, op->servers, op->nservers) == -1 ||
	    log_change(op, "domain", op->name) == -1)
		db_fail(op, "domain set");
	tx_end(op, 1);
}

static void
job_domain_remove(struct store_op *op)
{
	struct db_param p[] = { DB_TEXT(op->name) };
	struct db_rows *r;
	long long n = 0;

	if (tx_begin(op) == -1)
		return;
	if ((r = be->query("SELECT count(*) FROM addresses WHERE domain = $1",
	    p, 1)) == NULL) {
		db_fail(op, "domain remove");
		goto out;
	}
	if (be->next(r) == 1)
		op->res.count = (long)be->integer(r, 0);
	be->rows_free(r);
	/* the addresses, servers and schedule go with it: ON DELETE CASCADE */
	if (db_exec_name("DELETE FROM domains WHERE name = $1", op->name, 0,
	    &n) == -1)
		db_fail(op, "domain remove");
	else if (n == 0)
		refuse(op, "domain %s: not found", op->name);
	else if (log_change(op, "domain", op->name) == -1)
		db_fail(op, "domain remove");
out:
	tx_end(op, 1);
}

static void
job_addr_put(struct store_op *op)
{
	const char *domain = import_address_domain(op->addr->address);
	struct addr_info *old;
	int ex, err;

	if (tx_begin(op) == -1)
		return;
	if ((ex = db_domain_exists(domain)) == 0) {
		refuse(op, "domain %s: not found", domain);
		goto out;
	}
	if (ex < 0) {
		db_fail(op, "address add");
		goto out;
	}
	old = db_get_addr(op->addr->address, &err);
	if (err)
		db_fail(op, "address add");
	else if (old && store_addr_equal(old, op->addr))
		op->res.outcome = STORE_UNCHANGED;
	else if (db_put_addr(op->addr) == -1 ||
	    log_change(op, "address", op->addr->address) == -1)
		db_fail(op, "address add");
	else
		op->res.outcome = old ? STORE_UPDATED : STORE_ADDED;
	store_addr_free(old);
out:
	tx_end(op, 1);
}

/* delete_one - delete the row named op->name, refused when there is none,
 * and then what also deletes (NULL: nothing); the change goes to the log
 * under kind */
static void
delete_one(struct store_op *op, const char *sql, const char *also,
    const char *kind, const char *what, const char *missing)
{
	long long n = 0;

	if (tx_begin(op) == -1)
		return;
	if (db_exec_name(sql, op->name, 0, &n) == -1)
		db_fail(op, what);
	else if (n == 0)
		refuse(op, "%s %s: %s", kind, op->name, missing);
	else if ((also && db_exec_name(also, op->name, 0, NULL) == -1) ||
	    log_change(op, kind, op->name) == -1)
		db_fail(op, what);
	else
		op->res.outcome = STORE_REMOVED;
	tx_end(op, 1);
}

static void
job_addr_remove(struct store_op *op)
{
	/* its pilot override goes with it: by the foreign key, and by name
	 * for a state upgraded from the single-host schema, which has none */
	delete_one(op, "DELETE FROM addresses WHERE address = $1",
	    "DELETE FROM address_routes WHERE address = $1", "address",
	    "address remove", "not found");
}

static int
row_cmp(const void *a, const void *b)
{
	const struct addr_info *const *x = a, *const *y = b;

	return strcmp((*x)->address, (*y)->address);
}

static void
job_scan(struct store_op *op)
{
	struct db_param p[] = { DB_TEXT(op->name) };
	struct addr_info **rows = NULL;
	size_t n = 0, cap = 0;
	struct db_rows *r;
	int ex, rc;

	if ((ex = db_domain_exists(op->name)) == 0) {
		refuse(op, "domain %s: not found", op->name);
		return;
	}
	if (ex < 0 || (r = be->query("SELECT address, kind, destinations, cc, "
	    "nofilter FROM addresses WHERE domain = $1", p, 1)) == NULL) {
		db_fail(op, "scan");
		return;
	}
	while ((rc = be->next(r)) == 1) {
		if (n == cap) {
			cap = cap ? cap * 2 : 64;
			rows = xrealloc(rows, cap * sizeof(*rows));
		}
		rows[n++] = addr_from_row(r);
	}
	if (rc == -1)
		db_fail(op, "scan");
	be->rows_free(r);
	/* sorted here rather than by SQL: byte order, whatever the collation */
	if (n > 1)	/* qsort(NULL, 0) is undefined */
		qsort(rows, n, sizeof(*rows), row_cmp);
	if (op->res.status == 0)
		op->scan_render(op->name, rows, n, op->res.body, op->render_arg);
	for (size_t i = 0; i < n; i++)
		store_addr_free(rows[i]);
	free(rows);
}

/* report_add - one line's fate in the import report */
static void
report_add(struct store_import_report *r, size_t *cap, int line,
    enum store_import_kind kind, const char *text, const char *written)
{
	if (r->nlines == *cap) {
		*cap = *cap ? *cap * 2 : 256;
		r->lines = xrealloc(r->lines, *cap * sizeof(*r->lines));
	}
	r->lines[r->nlines].line = line;
	r->lines[r->nlines].kind = kind;
	r->lines[r->nlines].text = xstrdup(text);
	r->lines[r->nlines].written = written && *written ? xstrdup(written) : NULL;
	r->nlines++;
}

static void
report_clear(struct store_import_report *r)
{
	for (size_t i = 0; i < r->nlines; i++) {
		free(r->lines[i].text);
		free(r->lines[i].written);
	}
	free(r->lines);
	r->lines = NULL;
	r->nlines = 0;
}

/* import_one - classify and write one parsed line */
static int
import_one(struct store_op *op, struct store_import_report *r, size_t *cap,
    int lineno, const struct import_entry *e, size_t *chcap)
{
	struct addr_info *a = addr_from_entry(e), *old;
	int err;

	if (op->imp.nofilter)
		a->nofilter = 1;
	old = db_get_addr(a->address, &err);
	if (err)
		goto fail;
	if (old && store_addr_equal(old, a)) {
		report_add(r, cap, lineno, STORE_IMP_UNCHANGED, a->address,
		    e->written);
		r->unchanged++;
		store_addr_free(a);
		store_addr_free(old);
		return 0;
	}
	if (db_put_addr(a) == -1 || log_change(op, "address", a->address) == -1)
		goto fail;
	report_add(r, cap, lineno, old ? STORE_IMP_UPDATED : STORE_IMP_ADDED,
	    a->address, e->written);
	if (old)
		r->updated++;
	else
		r->added++;
	store_addr_free(old);
	if (op->nchanges == *chcap) {
		*chcap = *chcap ? *chcap * 2 : 256;
		op->changes = xrealloc(op->changes, *chcap * sizeof(*op->changes));
	}
	op->changes[op->nchanges++] = a;
	return 0;
fail:
	store_addr_free(a);
	store_addr_free(old);
	return -1;
}

/* import_lines - parse every line and apply the valid ones inside the
 * caller's transaction. Returns 0, or -1 on a database error. */
static int
import_lines(struct store_op *op, struct store_import_report *r)
{
	struct import_entry *e = xmalloc(sizeof(*e));
	char *buf = xmalloc(IMPORT_LINE_MAX + 2), why[IMPORT_WHY_MAX];
	const char *p = op->imp.text, *end = p + op->imp.len, *nl;
	size_t cap = 0, chcap = 0, n;
	int lineno = 0, rc = 0;

	for (; p < end && rc == 0; p = nl + 1) {
		if ((nl = memchr(p, '\n', (size_t)(end - p))) == NULL)
			nl = end;
		lineno++;
		n = (size_t)(nl - p);
		if (n > IMPORT_LINE_MAX) {
			snprintf(why, sizeof(why), "bad syntax: line longer than %d "
			    "bytes", IMPORT_LINE_MAX);
			goto invalid;
		}
		memcpy(buf, p, n);
		buf[n] = '\0';
		if (strlen(buf) != n) {
			snprintf(why, sizeof(why), "bad syntax: NUL byte");
			goto invalid;
		}
		switch (import_parse_line(buf, op->imp.domain, e, why, sizeof(why))) {
		case IMPORT_SKIP:
			continue;
		case IMPORT_INVALID:
			goto invalid;
		case IMPORT_OK:
			break;
		}
		if (e->had_password)
			r->passwords++;
		if (e->password_looks_like_address) {
			report_add(r, &cap, lineno, STORE_IMP_WARNING, e->address,
			    NULL);
			r->warnings++;
		}
		rc = import_one(op, r, &cap, lineno, e, &chcap);
		continue;
invalid:
		report_add(r, &cap, lineno, STORE_IMP_INVALID, why, NULL);
		r->invalid++;
	}
	free(buf);
	free(e);
	return rc;
}

/* changes_drop - an import that was not applied leaves the index alone */
static void
changes_drop(struct store_op *op)
{
	for (size_t i = 0; i < op->nchanges; i++)
		store_addr_free(op->changes[i]);
	free(op->changes);
	op->changes = NULL;
	op->nchanges = 0;
}

static void
job_import(struct store_op *op)
{
	struct store_import_report r;
	int ex, commit = 0;

	memset(&r, 0, sizeof(r));
	r.domain = op->imp.domain;
	r.file = op->imp.file;
	r.dry_run = op->imp.dry_run;
	r.strict = op->imp.strict;
	r.nofilter = op->imp.nofilter;
	if (tx_begin(op) == -1)
		return;
	if ((ex = db_domain_exists(op->imp.domain)) == 0) {
		refuse(op, "domain %s: not found", op->imp.domain);
		goto out;
	}
	if (ex < 0 || import_lines(op, &r) == -1) {
		db_fail(op, "import");
		goto out;
	}
	if (r.strict && r.invalid > 0) {
		op->res.status = 1;
		snprintf(op->res.msg, sizeof(op->res.msg), "import %s: %zu invalid "
		    "line%s, nothing imported (--strict)", op->imp.domain,
		    r.invalid, r.invalid == 1 ? "" : "s");
	} else if (!r.dry_run)
		commit = 1;
out:
	/* a dry run wrote inside the transaction too (so that a repeated
	 * address is reported as it would be) and now takes it back */
	tx_end(op, commit);
	r.applied = commit && op->res.status == 0;
	if (!r.applied)
		changes_drop(op);
	if (op->imp.render && (r.nlines > 0 || op->res.status == 0 || r.strict))
		op->imp.render(&r, &op->res, op->res.body, op->imp.render_arg);
	report_clear(&r);
}

/* The switch (worker thread) */

static enum domain_mode
mode_of(const char *s)
{
	return strcmp(s, "hosted") == 0 ? MODE_HOSTED : MODE_LEGACY;
}

/* db_domain_mode - the stored mode: 1 found, 0 not found, -1 error */
static int
db_domain_mode(const char *name, enum domain_mode *mode)
{
	struct db_param p[] = { DB_TEXT(name) };
	struct db_rows *r = be->query("SELECT mode FROM domains WHERE name = $1",
	    p, 1);
	int rc;

	if (r == NULL)
		return -1;
	if ((rc = be->next(r)) == 1)
		*mode = mode_of(be->text(r, 0));
	be->rows_free(r);
	return rc;
}

/* history_row - one history row of domain, naming this host: event
 * "switch" (from and to are modes), "route" (address is the pilot, from
 * and to its routes) or "mx" (from and to are MX pictures) */
static int
history_row(const char *domain, time_t t, const char *event,
    const char *address, const char *from, const char *to, uid_t uid,
    const char *note, int applied)
{
	struct db_param p[] = { DB_TEXT(domain), DB_INT(t), DB_TEXT(from),
	    DB_TEXT(to), DB_INT(uid), DB_TEXT(note ? note : ""),
	    DB_INT(applied ? 1 : 0), DB_TEXT(host_name), DB_TEXT(event),
	    DB_TEXT(address ? address : "") };

	return be->exec("INSERT INTO switch_history (domain, time, from_mode, "
	    "to_mode, uid, note, applied, host, event, address) "
	    "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)", p, 10, NULL);
}

/* db_history_add - the switch's history row */
static int
db_history_add(struct store_op *op, enum domain_mode from)
{
	return history_row(op->name, time(NULL), "switch", NULL,
	    store_mode_name(from), store_mode_name(op->mode), op->uid, op->note,
	    op->applied);
}

/* job_domain_mode - mode, history row and (for a fired schedule) the
 * schedule's removal: one transaction, so a crash keeps all or none */
static void
job_domain_mode(struct store_op *op)
{
	enum domain_mode from = MODE_LEGACY;
	int ex;

	if (tx_begin(op) == -1)
		return;
	if ((ex = db_domain_mode(op->name, &from)) == 0) {
		refuse(op, "domain %s: not found", op->name);
		goto out;
	}
	op->res.from_mode = from;
	if (ex < 0) {
		db_fail(op, "switch");
		goto out;
	}
	/* a scheduled switch fires once: the host that drops the schedule
	 * row runs it; on another host of the fleet (or a second time) it is
	 * gone, and nothing is written */
	if (op->sched_fire) {
		long long n = 0;

		if (db_exec_name("DELETE FROM switch_schedule WHERE domain = $1 "
		    "AND at = $2", op->name, op->sched.at, &n) == -1) {
			db_fail(op, "switch");
			goto out;
		}
		if (n == 0) {
			op->res.outcome = STORE_UNCHANGED;
			op->res.count = -1;
			goto out;
		}
	}
	/* a switch to the current mode is no switch: no history row */
	if (op->applied && from != op->mode && db_exec_name(op->mode ==
	    MODE_HOSTED ? "UPDATE domains SET mode = 'hosted' WHERE name = $1" :
	    "UPDATE domains SET mode = 'legacy' WHERE name = $1", op->name, 0,
	    NULL) == -1) {
		db_fail(op, "switch");
		goto out;
	}
	if ((!op->applied || from != op->mode) && db_history_add(op, from) == -1) {
		db_fail(op, "switch");
		goto out;
	}
	if (log_change(op, "domain", op->name) == -1) {
		db_fail(op, "switch");
		goto out;
	}
	op->res.outcome = op->applied && from != op->mode ? STORE_UPDATED :
	    STORE_UNCHANGED;
out:
	tx_end(op, 1);
}

static void
job_sched_set(struct store_op *op)
{
	struct db_param p[] = { DB_TEXT(op->name), DB_INT(op->sched.at),
	    DB_TEXT(store_mode_name(op->sched.mode)), DB_INT(op->sched.uid),
	    DB_INT(op->sched.force ? 1 : 0), DB_INT(op->sched.created) };
	int ex;

	if (tx_begin(op) == -1)
		return;
	if ((ex = db_domain_exists(op->name)) == 0) {
		refuse(op, "domain %s: not found", op->name);
		goto out;
	}
	if (ex < 0 || (ex = db_exists("SELECT 1 FROM switch_schedule "
	    "WHERE domain = $1", op->name)) < 0) {
		db_fail(op, "switch schedule");
		goto out;
	}
	op->res.outcome = ex ? STORE_UPDATED : STORE_ADDED;
	if (be->exec("INSERT INTO switch_schedule "
	    "(domain, at, to_mode, uid, force, created) "
	    "VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (domain) DO UPDATE SET "
	    "at = excluded.at, to_mode = excluded.to_mode, uid = excluded.uid, "
	    "force = excluded.force, created = excluded.created", p, 6,
	    NULL) == -1 || log_change(op, "domain", op->name) == -1)
		db_fail(op, "switch schedule");
out:
	tx_end(op, 1);
}

static void
job_sched_cancel(struct store_op *op)
{
	delete_one(op, "DELETE FROM switch_schedule WHERE domain = $1", NULL,
	    "domain", "switch cancel", "no scheduled switch");
}

/* job_sched_claim - this host runs the scheduled switch due at sched.at
 * unless another host claimed it and its claim has not run out (the same
 * host name may claim again: a restart); outcome STORE_UPDATED when
 * claimed, STORE_UNCHANGED when not (another host runs it, or it is gone) */
static void
job_sched_claim(struct store_op *op)
{
	time_t now = time(NULL);
	struct db_param p[] = { DB_TEXT(op->name), DB_INT(op->sched.at),
	    DB_TEXT(host_name), DB_INT(now + STORE_CLAIM_SECS), DB_INT(now) };
	long long n = 0;

	if (be->exec("UPDATE switch_schedule SET claimed_by = $3, "
	    "claimed_until = $4 WHERE domain = $1 AND at = $2 AND "
	    "(claimed_by = '' OR claimed_by = $3 OR claimed_until < $5)", p, 5,
	    &n) == -1)
		db_fail(op, "switch claim");
	else
		op->res.outcome = n > 0 ? STORE_UPDATED : STORE_UNCHANGED;
}

/* history_event - columns 8 (event) and 9 (address), and for other
 * events than a switch the texts of columns 2 and 3 */
static void
history_event(struct db_rows *r, struct store_switch_rec *h)
{
	const char *ev = be->text(r, 8), *addr = be->text(r, 9);

	h->event = strcmp(ev, "route") == 0 ? STORE_EV_ROUTE :
	    strcmp(ev, "mx") == 0 ? STORE_EV_MX : STORE_EV_SWITCH;
	h->address = *addr ? xstrdup(addr) : NULL;
	h->from_text = h->to_text = NULL;
	if (h->event == STORE_EV_SWITCH)
		return;
	h->from_text = xstrdup(be->text(r, 2));
	h->to_text = xstrdup(be->text(r, 3));
}

static void
job_history(struct store_op *op)
{
	struct db_param p[] = { DB_TEXT(op->name) };
	struct store_switch_rec *rows = NULL;
	size_t n = 0, cap = 0;
	struct db_rows *r;
	int ex, rc;

	if ((r = be->query("SELECT id, time, from_mode, to_mode, uid, note, "
	    "applied, host, event, address FROM switch_history "
	    "WHERE domain = $1 ORDER BY id", p, 1)) == NULL) {
		db_fail(op, "history");
		return;
	}
	while ((rc = be->next(r)) == 1) {
		if (n == cap) {
			cap = cap ? cap * 2 : 16;
			rows = xrealloc(rows, cap * sizeof(*rows));
		}
		rows[n].id = be->integer(r, 0);
		rows[n].time = (time_t)be->integer(r, 1);
		rows[n].from = mode_of(be->text(r, 2));
		rows[n].to = mode_of(be->text(r, 3));
		rows[n].uid = (uid_t)be->integer(r, 4);
		rows[n].note = xstrdup(be->text(r, 5));
		rows[n].applied = be->integer(r, 6) != 0;
		rows[n].host = xstrdup(be->text(r, 7));
		history_event(r, &rows[n]);
		n++;
	}
	if (rc == -1)
		db_fail(op, "history");
	be->rows_free(r);
	if (op->res.status == 0 && n == 0 &&
	    (ex = db_domain_exists(op->name)) <= 0) {
		if (ex == 0)
			refuse(op, "domain %s: not found", op->name);
		else
			db_fail(op, "history");
	}
	if (op->res.status == 0)
		op->history_render(op->name, rows, n, op->res.body, op->render_arg);
	for (size_t i = 0; i < n; i++) {
		free((char *)rows[i].note);
		free((char *)rows[i].host);
		free((char *)rows[i].address);
		free((char *)rows[i].from_text);
		free((char *)rows[i].to_text);
	}
	free(rows);
}

/* Pilot addresses (worker thread) */

/* db_route_get - the stored override of address: 1 found (the entry
 * exists), 0 no such entry, -1 error */
static int
db_route_get(const char *address, enum addr_route *route)
{
	struct db_param p[] = { DB_TEXT(address) };
	struct db_rows *r = be->query("SELECT r.route FROM addresses a "
	    "LEFT JOIN address_routes r ON r.address = a.address "
	    "WHERE a.address = $1", p, 1);
	int rc;

	if (r == NULL)
		return -1;
	*route = ADDR_ROUTE_DOMAIN;
	if ((rc = be->next(r)) == 1)
		store_route_parse(be->text(r, 0), route);
	be->rows_free(r);
	return rc;
}

/* db_route_put - the override of op->name as op->route */
static int
db_route_put(struct store_op *op)
{
	struct db_param p[] = { DB_TEXT(op->name),
	    DB_TEXT(import_address_domain(op->name)),
	    DB_TEXT(store_route_name(op->route)) };

	if (op->route == ADDR_ROUTE_DOMAIN)
		return db_exec_name("DELETE FROM address_routes "
		    "WHERE address = $1", op->name, 0, NULL);
	return be->exec("INSERT INTO address_routes (address, domain, route) "
	    "VALUES ($1, $2, $3) ON CONFLICT (address) DO UPDATE SET "
	    "route = excluded.route", p, 3, NULL);
}

/* job_addr_route - the override, its history row and the change for the
 * other hosts: one transaction */
static void
job_addr_route(struct store_op *op)
{
	enum addr_route from;
	int ex;

	if (tx_begin(op) == -1)
		return;
	if ((ex = db_route_get(op->name, &from)) == 0) {
		refuse(op, "address %s: not found (a pilot address must be in "
		    "the table)", op->name);
		goto out;
	}
	op->res.from_route = from;
	op->res.outcome = from == op->route ? STORE_UNCHANGED : STORE_UPDATED;
	if (ex < 0 || (from != op->route && (db_route_put(op) == -1 ||
	    history_row(import_address_domain(op->name), time(NULL), "route",
	    op->name, store_route_name(from), store_route_name(op->route),
	    op->uid, op->note, 1) == -1 ||
	    log_change(op, "address", op->name) == -1)))
		db_fail(op, "address set");
out:
	tx_end(op, 1);
}

/* The MX watch (worker thread) */

/* db_mx_picture - the stored picture of domain (MX_UNKNOWN: none yet);
 * 0, or -1 on error */
static int
db_mx_picture(const char *domain, enum mx_picture *out)
{
	struct db_param p[] = { DB_TEXT(domain) };
	struct db_rows *r = be->query("SELECT picture FROM mx_watch "
	    "WHERE domain = $1", p, 1);
	int rc;

	if (r == NULL)
		return -1;
	*out = MX_UNKNOWN;
	if ((rc = be->next(r)) == 1)
		*out = store_mx_picture_parse(be->text(r, 0));
	be->rows_free(r);
	return rc == -1 ? -1 : 0;
}

/* job_mx_record - the picture, and a history row when it changed. Every
 * host of a fleet watches the same domains: the write is made only while
 * the stored picture is still the one this host saw before (from), so
 * the first host to see a change records it, with its time, and the
 * others find it done (outcome STORE_UNCHANGED, no second history row)
 * and take the stored picture from the change log. */
static void
job_mx_record(struct store_op *op)
{
	const struct store_mx *m = &op->mx;
	struct db_param p[] = { DB_TEXT(op->name),
	    DB_TEXT(store_mx_picture_name(m->picture)), DB_INT(m->checked),
	    DB_INT(m->since), DB_INT(m->prev_ttl), DB_INT(m->other_ttl) };
	enum mx_picture stored;
	int ex;

	if (tx_begin(op) == -1)
		return;
	if ((ex = db_domain_exists(op->name)) == 0) {
		refuse(op, "domain %s: not found", op->name);
		goto out;
	}
	if (ex < 0 || db_mx_picture(op->name, &stored) == -1) {
		db_fail(op, "mx record");
		goto out;
	}
	if (stored != op->from_picture) {
		op->res.outcome = STORE_UNCHANGED;
		goto out;
	}
	op->res.outcome = STORE_UPDATED;
	if (be->exec("INSERT INTO mx_watch (domain, picture, checked, since, "
	    "prev_ttl, other_ttl) VALUES ($1, $2, $3, $4, $5, $6) "
	    "ON CONFLICT (domain) DO UPDATE SET picture = excluded.picture, "
	    "checked = excluded.checked, since = excluded.since, "
	    "prev_ttl = excluded.prev_ttl, other_ttl = excluded.other_ttl",
	    p, 6, NULL) == -1 || log_change(op, "domain", op->name) == -1) {
		db_fail(op, "mx record");
		goto out;
	}
	/* a first look finding the records elsewhere is no news worth a row */
	if (op->from_picture == m->picture ||
	    (op->from_picture == MX_UNKNOWN && m->picture == MX_OTHER))
		goto out;
	if (history_row(op->name, m->checked, "mx", NULL,
	    store_mx_picture_name(op->from_picture),
	    store_mx_picture_name(m->picture), getuid(), op->note, 1) == -1)
		db_fail(op, "mx record");
out:
	tx_end(op, 1);
}

/* Recipient verification (worker thread) */

static void
job_domain_verify(struct store_op *op)
{
	struct db_param p[] = { DB_TEXT(op->name), DB_INT(op->flag) };
	long long n = 0;

	if (tx_begin(op) == -1)
		return;
	if (be->exec("UPDATE domains SET verify_legacy = $2 WHERE name = $1",
	    p, 2, &n) == -1)
		db_fail(op, "domain set");
	else if (n == 0)
		refuse(op, "domain %s: not found", op->name);
	else if (log_change(op, "domain", op->name) == -1)
		db_fail(op, "domain set");
	tx_end(op, 1);
}

/* job_verified_put - an address the old server accepted; the other hosts
 * of a fleet learn it through the change log (kind address) */
static void
job_verified_put(struct store_op *op)
{
	const char *domain = import_address_domain(op->name);
	struct db_param p[] = { DB_TEXT(op->name), DB_TEXT(domain),
	    DB_INT(op->verified.verified), DB_INT(op->verified.expires) };
	int ex;

	if (tx_begin(op) == -1)
		return;
	if ((ex = db_domain_exists(domain)) == 0)
		refuse(op, "domain %s: not found", domain);
	else if (ex < 0 || be->exec("INSERT INTO verified_addresses "
	    "(address, domain, verified, expires) VALUES ($1, $2, $3, $4) "
	    "ON CONFLICT (address) DO UPDATE SET verified = excluded.verified, "
	    "expires = excluded.expires", p, 4, NULL) == -1 ||
	    log_change(op, "address", op->name) == -1)
		db_fail(op, "verified");
	tx_end(op, 1);
}

/* store_sql_job - worker thread: one job */
void
store_sql_job(void *arg)
{
	struct store_op *op = arg;

	switch (op->type) {
	case OP_DOMAIN_ADD: job_domain_add(op); break;
	case OP_DOMAIN_SERVERS: job_domain_servers(op); break;
	case OP_DOMAIN_REMOVE: job_domain_remove(op); break;
	case OP_ADDR_PUT: job_addr_put(op); break;
	case OP_ADDR_REMOVE: job_addr_remove(op); break;
	case OP_IMPORT: job_import(op); break;
	case OP_SCAN: job_scan(op); break;
	case OP_DOMAIN_MODE: job_domain_mode(op); break;
	case OP_SCHED_SET: job_sched_set(op); break;
	case OP_SCHED_CANCEL: job_sched_cancel(op); break;
	case OP_SCHED_CLAIM: job_sched_claim(op); break;
	case OP_HISTORY: job_history(op); break;
	case OP_ADDR_ROUTE: job_addr_route(op); break;
	case OP_MX_RECORD: job_mx_record(op); break;
	case OP_DOMAIN_VERIFY: job_domain_verify(op); break;
	case OP_VERIFIED_PUT: job_verified_put(op); break;
	}
}

/* Loading the index */

/* load_rows - run sql and hand each row to fn; 0, or -1 on error */
static int
load_rows(const char *sql, void (*fn)(struct dict *, struct db_rows *,
    size_t *), struct dict *domains, size_t *count)
{
	struct db_rows *r = be->query(sql, NULL, 0);
	int rc;

	if (r == NULL)
		return -1;
	while ((rc = be->next(r)) == 1)
		fn(domains, r, count);
	be->rows_free(r);
	return rc;
}

static void
load_domain(struct dict *domains, struct db_rows *r, size_t *count)
{
	const char *name = be->text(r, 0);
	struct domain_entry *d = store_entry_new(name, mode_of(be->text(r, 1)),
	    (time_t)be->integer(r, 2));

	d->info.verify_legacy = be->integer(r, 3) != 0;
	store_entry_free(dict_put(domains, name, d));
}

static void
load_server(struct dict *domains, struct db_rows *r, size_t *count)
{
	struct domain_entry *d = dict_get(domains, be->text(r, 0));
	struct legacy_server *ls;

	if (d == NULL || d->info.nservers >= STORE_MAX_SERVERS)
		return;
	d->info.servers = xrealloc(d->info.servers,
	    (size_t)(d->info.nservers + 1) * sizeof(*ls));
	ls = &d->info.servers[d->info.nservers++];
	memset(ls, 0, sizeof(*ls));
	mx_strlcpy(ls->host, be->text(r, 1), sizeof(ls->host));
	ls->port = (int)be->integer(r, 2);
	ls->pref = (int)be->integer(r, 3);
}

static void
load_address(struct dict *domains, struct db_rows *r, size_t *count)
{
	struct domain_entry *d = dict_get(domains, be->text(r, 5));
	struct addr_info *a;

	if (d == NULL)
		return;
	a = addr_from_row(r);
	store_addr_free(dict_put(d->addrs, a->address, a));
	(*count)++;
}

/* load_schedule - a pending scheduled switch into its domain */
static void
load_schedule(struct dict *domains, struct db_rows *r, size_t *count)
{
	struct domain_entry *d = dict_get(domains, be->text(r, 0));

	if (d == NULL)
		return;
	d->has_sched = 1;
	d->sched.at = (time_t)be->integer(r, 1);
	d->sched.mode = mode_of(be->text(r, 2));
	d->sched.uid = (uid_t)be->integer(r, 3);
	d->sched.force = be->integer(r, 4) != 0;
	d->sched.created = (time_t)be->integer(r, 5);
}

/* load_route - a pilot's override into its table entry */
static void
load_route(struct dict *domains, struct db_rows *r, size_t *count)
{
	struct domain_entry *d = dict_get(domains, be->text(r, 0));
	struct addr_info *a = d ? dict_get(d->addrs, be->text(r, 1)) : NULL;

	if (a != NULL)
		store_route_parse(be->text(r, 2), &a->route);
}

/* load_mx - the MX watch's last picture of a domain */
static void
load_mx(struct dict *domains, struct db_rows *r, size_t *count)
{
	struct domain_entry *d = dict_get(domains, be->text(r, 0));

	if (d == NULL)
		return;
	d->mx.picture = store_mx_picture_parse(be->text(r, 1));
	d->mx.checked = (time_t)be->integer(r, 2);
	d->mx.since = (time_t)be->integer(r, 3);
	d->mx.prev_ttl = (long)be->integer(r, 4);
	d->mx.other_ttl = (long)be->integer(r, 5);
}

/* load_verified - an address the old server accepted */
static void
load_verified(struct dict *domains, struct db_rows *r, size_t *count)
{
	struct domain_entry *d = dict_get(domains, be->text(r, 1));
	struct store_verified *v;

	if (d == NULL)
		return;
	v = xcalloc(1, sizeof(*v));
	v->address = xstrdup(be->text(r, 0));
	v->verified = (time_t)be->integer(r, 2);
	v->expires = (time_t)be->integer(r, 3);
	store_verified_entry_free(dict_put(d->verified, v->address, v));
}

/* store_sql_load - the whole state into domains (before the worker runs) */
int
store_sql_load(struct dict *domains, size_t *naddr, char *err, size_t errlen)
{
	if (load_rows("SELECT name, mode, created, verify_legacy FROM domains",
	    load_domain, domains, naddr) == -1 ||
	    load_rows("SELECT domain, host, port, pref FROM legacy_servers "
	    "ORDER BY domain, position", load_server, domains, naddr) == -1 ||
	    load_rows("SELECT address, kind, destinations, cc, nofilter, domain "
	    "FROM addresses", load_address, domains, naddr) == -1 ||
	    load_rows("SELECT domain, at, to_mode, uid, force, created "
	    "FROM switch_schedule", load_schedule, domains, naddr) == -1 ||
	    load_rows("SELECT domain, address, route FROM address_routes",
	    load_route, domains, naddr) == -1 ||
	    load_rows("SELECT domain, picture, checked, since, prev_ttl, "
	    "other_ttl FROM mx_watch", load_mx, domains, naddr) == -1 ||
	    load_rows("SELECT address, domain, verified, expires "
	    "FROM verified_addresses", load_verified, domains, naddr) == -1) {
		snprintf(err, errlen, "loading the state store: %s", be->errmsg());
		return -1;
	}
	return 0;
}

/* store_sql_open - the configured backend, connected and migrated */
int
store_sql_open(const struct config *cfg, char *desc, size_t desclen,
    char *err, size_t errlen)
{
	int rc;

	be = cfg->state_backend == STATE_POSTGRESQL ? &store_backend_pg :
	    &store_backend_sqlite;
	free(host_name);
	host_name = xstrdup(cfg->hostname);
	rc = store_backend_open(be, cfg, desc, desclen, err, errlen);
	/* the host name alone is not enough: two daemons of one host name
	 * (a restart overlapping the old process) must tell their rows apart */
	snprintf(origin, sizeof(origin), "%s:%ld:%lld", cfg->hostname,
	    (long)getpid(), (long long)mx_mono_us());
	return rc;
}

/* store_sql_origin - this process's name in change_log */
const char *
store_sql_origin(void)
{
	return origin;
}

/* store_sql_head - the newest change_log id now (0: none); worker thread
 * or before it starts */
long long
store_sql_head(void)
{
	struct db_rows *r;
	long long id = 0;

	if (!be->shared || (r = be->query("SELECT coalesce(max(id), 0) FROM "
	    "change_log", NULL, 0)) == NULL)
		return 0;
	if (be->next(r) == 1)
		id = be->integer(r, 0);
	be->rows_free(r);
	return id;
}

/* store_sql_backend - "sqlite" or "postgresql" */
const char *
store_sql_backend(void)
{
	return be ? be->name : "none";
}

void
store_sql_close(void)
{
	if (be)
		be->close();
	free(host_name);
	host_name = NULL;
}
