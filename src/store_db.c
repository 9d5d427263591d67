/* store_db.c - the state store's SQLite side (worker thread)
 *
 * Schema migrations, the start-up load into the index, and the jobs that
 * store.c submits to the worker: each write is one IMMEDIATE transaction,
 * committed with synchronous=FULL before its completion reaches the loop.
 */
#include "autoconf.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <sqlite3.h>
#include <event2/buffer.h>

#include "dict.h"
#include "log.h"
#include "store.h"
#include "store_priv.h"
#include "table_import.h"
#include "util.h"

#define STORE_BUSY_TIMEOUT_MS	5000

static sqlite3 *db;

/* Schema migrations, applied in order, each in its own transaction; the
 * database's PRAGMA user_version counts those already applied. Append new
 * steps at the end; never edit one that has shipped. */
static const char *const store_migrations[] = {
	/* 1: initial schema */
	"CREATE TABLE domains ("
	"  name TEXT PRIMARY KEY NOT NULL,"
	"  mode TEXT NOT NULL CHECK (mode IN ('legacy', 'hosted')),"
	"  created INTEGER NOT NULL);"
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
	"  id INTEGER PRIMARY KEY,"
	"  domain TEXT NOT NULL,"
	"  time INTEGER NOT NULL,"
	"  from_mode TEXT NOT NULL,"
	"  to_mode TEXT NOT NULL,"
	"  uid INTEGER NOT NULL,"
	"  note TEXT NOT NULL DEFAULT '');"
	"CREATE INDEX switch_history_domain ON switch_history (domain, time);",
	/* 2: scheduled switches (relayctl switch --at); refused scheduled
	 * switches stay in the history with applied = 0 */
	"ALTER TABLE switch_history ADD COLUMN applied INTEGER NOT NULL DEFAULT 1;"
	"CREATE TABLE switch_schedule ("
	"  domain TEXT PRIMARY KEY NOT NULL REFERENCES domains(name) ON DELETE CASCADE,"
	"  at INTEGER NOT NULL,"
	"  to_mode TEXT NOT NULL CHECK (to_mode IN ('legacy', 'hosted')),"
	"  uid INTEGER NOT NULL,"
	"  force INTEGER NOT NULL DEFAULT 0,"
	"  created INTEGER NOT NULL);",
	/* 3: the migration assistant. History rows of other events than a
	 * switch: a pilot's override ('route', naming the address; from/to
	 * hold route names) and a change of the MX picture ('mx'; from/to
	 * hold picture names). Pilot overrides beside the entry, which
	 * address add and import replace. The MX watch's last picture. */
	"ALTER TABLE switch_history ADD COLUMN event TEXT NOT NULL DEFAULT 'switch';"
	"ALTER TABLE switch_history ADD COLUMN address TEXT NOT NULL DEFAULT '';"
	"CREATE TABLE address_routes ("
	"  address TEXT PRIMARY KEY NOT NULL,"
	"  domain TEXT NOT NULL REFERENCES domains(name) ON DELETE CASCADE,"
	"  route TEXT NOT NULL CHECK (route IN ('hosted', 'legacy')));"
	"CREATE TABLE mx_watch ("
	"  domain TEXT PRIMARY KEY NOT NULL REFERENCES domains(name) ON DELETE CASCADE,"
	"  picture TEXT NOT NULL,"
	"  checked INTEGER NOT NULL,"
	"  since INTEGER NOT NULL,"
	"  prev_ttl INTEGER NOT NULL,"
	"  other_ttl INTEGER NOT NULL);"
	/* recipient verification at the old server: the domain's flag and
	 * the addresses the old server accepted */
	"ALTER TABLE domains ADD COLUMN verify_legacy INTEGER NOT NULL DEFAULT 0;"
	"CREATE TABLE verified_addresses ("
	"  address TEXT PRIMARY KEY NOT NULL,"
	"  domain TEXT NOT NULL REFERENCES domains(name) ON DELETE CASCADE,"
	"  verified INTEGER NOT NULL,"
	"  expires INTEGER NOT NULL);",
};


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

/* list_split - the column form back into a list; returns the count */
static int
list_split(const char *s, char ***out)
{
	int n = 0, cap = 0;
	char **l = NULL;
	const char *comma;

	while (s && *s) {
		comma = strchr(s, ',');
		if (n + 1 >= cap) {
			cap = cap ? cap * 2 : 4;
			l = xrealloc(l, (size_t)cap * sizeof(char *));
		}
		l[n++] = comma ? xstrndup(s, (size_t)(comma - s)) : xstrdup(s);
		s = comma ? comma + 1 : NULL;
	}
	if (l == NULL)
		l = xcalloc(1, sizeof(char *));
	*out = l;
	return n;
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

/* SQLite helpers (worker thread, and store_open before the worker starts) */

/* db_fail - a database error refuses the command; the log has the detail */
static void
db_fail(struct store_op *op, const char *what)
{
	const char *msg = sqlite3_errmsg(db);

	log_warnx("store error op=%s reason=\"%s\"", what, msg);
	op->res.status = 1;
	snprintf(op->res.msg, sizeof(op->res.msg), "state store error (%s): %s",
	    what, msg);
}

static int
db_exec(const char *sql)
{
	return sqlite3_exec(db, sql, NULL, NULL, NULL) == SQLITE_OK ? 0 : -1;
}

static sqlite3_stmt *
db_prepare(const char *sql)
{
	sqlite3_stmt *s = NULL;

	if (sqlite3_prepare_v2(db, sql, -1, &s, NULL) != SQLITE_OK)
		return NULL;
	return s;
}

/* db_domain_exists - 1, 0, or -1 on error */
static int
db_domain_exists(const char *name)
{
	sqlite3_stmt *s = db_prepare("SELECT 1 FROM domains WHERE name = ?1");
	int rc;

	if (s == NULL)
		return -1;
	sqlite3_bind_text(s, 1, name, -1, SQLITE_STATIC);
	rc = sqlite3_step(s);
	sqlite3_finalize(s);
	return rc == SQLITE_ROW ? 1 : rc == SQLITE_DONE ? 0 : -1;
}

/* db_insert_servers - the ordered server list of a domain */
static int
db_insert_servers(const char *name, const struct legacy_server *sv, int n)
{
	sqlite3_stmt *s = db_prepare("INSERT INTO legacy_servers "
	    "(domain, host, port, pref, position) VALUES (?1, ?2, ?3, ?4, ?5)");
	int ok = s != NULL;

	for (int i = 0; ok && i < n; i++) {
		sqlite3_bind_text(s, 1, name, -1, SQLITE_STATIC);
		sqlite3_bind_text(s, 2, sv[i].host, -1, SQLITE_STATIC);
		sqlite3_bind_int(s, 3, sv[i].port);
		sqlite3_bind_int(s, 4, sv[i].pref);
		sqlite3_bind_int(s, 5, i);
		ok = sqlite3_step(s) == SQLITE_DONE;
		sqlite3_reset(s);
	}
	sqlite3_finalize(s);
	return ok ? 0 : -1;
}

/* addr_from_row - columns address, kind, destinations, cc, nofilter */
static struct addr_info *
addr_from_row(sqlite3_stmt *s)
{
	struct addr_info *a = xcalloc(1, sizeof(*a));

	a->address = xstrdup((const char *)sqlite3_column_text(s, 0));
	a->kind = strcmp((const char *)sqlite3_column_text(s, 1), "alias") == 0 ?
	    ADDR_ALIAS : ADDR_MAILBOX;
	a->ndests = list_split((const char *)sqlite3_column_text(s, 2), &a->dests);
	a->ncc = list_split((const char *)sqlite3_column_text(s, 3), &a->cc);
	a->nofilter = sqlite3_column_int(s, 4) != 0;
	return a;
}

/* db_get_addr - the stored definition of address, or NULL (*err on error) */
static struct addr_info *
db_get_addr(sqlite3_stmt *s, const char *address, int *err)
{
	struct addr_info *a = NULL;
	int rc;

	sqlite3_bind_text(s, 1, address, -1, SQLITE_STATIC);
	rc = sqlite3_step(s);
	if (rc == SQLITE_ROW)
		a = addr_from_row(s);
	*err = rc != SQLITE_ROW && rc != SQLITE_DONE;
	sqlite3_reset(s);
	return a;
}

/* db_put_addr - insert or replace one address */
static int
db_put_addr(sqlite3_stmt *s, const struct addr_info *a)
{
	char *dests = list_join(a->dests, a->ndests);
	char *cc = list_join(a->cc, a->ncc);
	int rc;

	sqlite3_bind_text(s, 1, a->address, -1, SQLITE_STATIC);
	sqlite3_bind_text(s, 2, import_address_domain(a->address), -1, SQLITE_STATIC);
	sqlite3_bind_text(s, 3, a->kind == ADDR_ALIAS ? "alias" : "mailbox", -1,
	    SQLITE_STATIC);
	sqlite3_bind_text(s, 4, dests, -1, SQLITE_STATIC);
	sqlite3_bind_text(s, 5, cc, -1, SQLITE_STATIC);
	sqlite3_bind_int(s, 6, a->nofilter ? 1 : 0);
	rc = sqlite3_step(s);
	sqlite3_reset(s);
	free(dests);
	free(cc);
	return rc == SQLITE_DONE ? 0 : -1;
}

#define SQL_GET_ADDR "SELECT address, kind, destinations, cc, nofilter " \
	"FROM addresses WHERE address = ?1"
#define SQL_PUT_ADDR "INSERT OR REPLACE INTO addresses " \
	"(address, domain, kind, destinations, cc, nofilter) " \
	"VALUES (?1, ?2, ?3, ?4, ?5, ?6)"

/* tx_end - commit, or roll back after an error (db_fail already called) */
static void
tx_end(struct store_op *op, int commit)
{
	if (commit && op->res.status == 0) {
		if (db_exec("COMMIT") == -1) {
			db_fail(op, "commit");
			db_exec("ROLLBACK");
		}
	} else
		db_exec("ROLLBACK");
}

static int
tx_begin(struct store_op *op)
{
	/* IMMEDIATE: take the write lock now, not half-way through */
	if (db_exec("BEGIN IMMEDIATE") == -1) {
		db_fail(op, "begin");
		return -1;
	}
	return 0;
}

static int db_exec_name(struct store_op *, const char *, int);
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

/* Jobs (worker thread) */

static void
job_domain_add(struct store_op *op)
{
	sqlite3_stmt *s;
	int rc;

	if (tx_begin(op) == -1)
		return;
	if ((s = db_prepare("INSERT INTO domains (name, mode, created) "
	    "VALUES (?1, ?2, ?3)")) == NULL) {
		db_fail(op, "domain add");
		goto out;
	}
	sqlite3_bind_text(s, 1, op->name, -1, SQLITE_STATIC);
	sqlite3_bind_text(s, 2, store_mode_name(op->mode), -1, SQLITE_STATIC);
	sqlite3_bind_int64(s, 3, (sqlite3_int64)op->created);
	rc = sqlite3_step(s);
	sqlite3_finalize(s);
	if (rc == SQLITE_CONSTRAINT)
		refuse(op, "domain %s: already exists", op->name);
	else if (rc != SQLITE_DONE ||
	    db_insert_servers(op->name, op->servers, op->nservers) == -1)
		db_fail(op, "domain add");
out:
	tx_end(op, 1);
}

static void
job_domain_servers(struct store_op *op)
{
	sqlite3_stmt *s;
	int ex;

	if (tx_begin(op) == -1)
		return;
	if ((ex = db_domain_exists(op->name)) == 0)
		refuse(op, "domain %s: not found", op->name);
	else if (ex < 0 || (s = db_prepare("DELETE FROM legacy_servers "
	    "WHERE domain = ?1")) == NULL)
		db_fail(op, "domain set");
	else {
		sqlite3_bind_text(s, 1, op->name, -1, SQLITE_STATIC);
		if (sqlite3_step(s) != SQLITE_DONE ||
		    db_insert_servers(op->name, op->servers, op->nservers) == -1)
			db_fail(op, "domain set");
		sqlite3_finalize(s);
	}
	tx_end(op, 1);
}

static void
job_domain_remove(struct store_op *op)
{
	sqlite3_stmt *s;

	if (tx_begin(op) == -1)
		return;
	if ((s = db_prepare("SELECT count(*) FROM addresses WHERE domain = ?1")) ==
	    NULL) {
		db_fail(op, "domain remove");
		goto out;
	}
	sqlite3_bind_text(s, 1, op->name, -1, SQLITE_STATIC);
	if (sqlite3_step(s) == SQLITE_ROW)
		op->res.count = (long)sqlite3_column_int64(s, 0);
	sqlite3_finalize(s);
	/* the addresses and servers go with it: ON DELETE CASCADE */
	if ((s = db_prepare("DELETE FROM domains WHERE name = ?1")) == NULL) {
		db_fail(op, "domain remove");
		goto out;
	}
	sqlite3_bind_text(s, 1, op->name, -1, SQLITE_STATIC);
	if (sqlite3_step(s) != SQLITE_DONE)
		db_fail(op, "domain remove");
	else if (sqlite3_changes(db) == 0)
		refuse(op, "domain %s: not found", op->name);
	sqlite3_finalize(s);
out:
	tx_end(op, 1);
}

static void
job_addr_put(struct store_op *op)
{
	sqlite3_stmt *get = NULL, *put = NULL;
	struct addr_info *old;
	int ex, err;

	if (tx_begin(op) == -1)
		return;
	if ((ex = db_domain_exists(import_address_domain(op->addr->address))) == 0) {
		refuse(op, "domain %s: not found",
		    import_address_domain(op->addr->address));
		goto out;
	}
	if (ex < 0 || (get = db_prepare(SQL_GET_ADDR)) == NULL ||
	    (put = db_prepare(SQL_PUT_ADDR)) == NULL) {
		db_fail(op, "address add");
		goto out;
	}
	old = db_get_addr(get, op->addr->address, &err);
	if (err)
		db_fail(op, "address add");
	else if (old && store_addr_equal(old, op->addr))
		op->res.outcome = STORE_UNCHANGED;
	else if (db_put_addr(put, op->addr) == -1)
		db_fail(op, "address add");
	else
		op->res.outcome = old ? STORE_UPDATED : STORE_ADDED;
	store_addr_free(old);
out:
	sqlite3_finalize(get);
	sqlite3_finalize(put);
	tx_end(op, 1);
}

/* job_addr_remove - the entry and its pilot override, if any */
static void
job_addr_remove(struct store_op *op)
{
	sqlite3_stmt *s;

	if (tx_begin(op) == -1)
		return;
	if ((s = db_prepare("DELETE FROM addresses WHERE address = ?1")) == NULL) {
		db_fail(op, "address remove");
		goto out;
	}
	sqlite3_bind_text(s, 1, op->name, -1, SQLITE_STATIC);
	if (sqlite3_step(s) != SQLITE_DONE)
		db_fail(op, "address remove");
	else if (sqlite3_changes(db) == 0)
		refuse(op, "address %s: not found", op->name);
	else if (db_exec_name(op, "DELETE FROM address_routes "
	    "WHERE address = ?1", 0) == -1)
		db_fail(op, "address remove");
	else
		op->res.outcome = STORE_REMOVED;
	sqlite3_finalize(s);
out:
	tx_end(op, 1);
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
	struct addr_info **rows = NULL;
	size_t n = 0, cap = 0;
	sqlite3_stmt *s;
	int ex, rc;

	if ((ex = db_domain_exists(op->name)) == 0) {
		refuse(op, "domain %s: not found", op->name);
		return;
	}
	if (ex < 0 || (s = db_prepare("SELECT address, kind, destinations, cc, "
	    "nofilter FROM addresses WHERE domain = ?1")) == NULL) {
		db_fail(op, "scan");
		return;
	}
	sqlite3_bind_text(s, 1, op->name, -1, SQLITE_STATIC);
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		if (n == cap) {
			cap = cap ? cap * 2 : 64;
			rows = xrealloc(rows, cap * sizeof(*rows));
		}
		rows[n++] = addr_from_row(s);
	}
	if (rc != SQLITE_DONE)
		db_fail(op, "scan");
	sqlite3_finalize(s);
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
    int lineno, const struct import_entry *e, sqlite3_stmt *get,
    sqlite3_stmt *put, size_t *chcap)
{
	struct addr_info *a = addr_from_entry(e), *old;
	int err;

	if (op->imp.nofilter)
		a->nofilter = 1;
	old = db_get_addr(get, a->address, &err);
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
	if (db_put_addr(put, a) == -1)
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
import_lines(struct store_op *op, struct store_import_report *r,
    sqlite3_stmt *get, sqlite3_stmt *put)
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
		rc = import_one(op, r, &cap, lineno, e, get, put, &chcap);
		continue;
invalid:
		report_add(r, &cap, lineno, STORE_IMP_INVALID, why, NULL);
		r->invalid++;
	}
	free(buf);
	free(e);
	return rc;
}

static void
job_import(struct store_op *op)
{
	struct store_import_report r;
	sqlite3_stmt *get = NULL, *put = NULL;
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
	if (ex < 0 || (get = db_prepare(SQL_GET_ADDR)) == NULL ||
	    (put = db_prepare(SQL_PUT_ADDR)) == NULL ||
	    import_lines(op, &r, get, put) == -1) {
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
	sqlite3_finalize(get);
	sqlite3_finalize(put);
	/* a dry run wrote inside the transaction too (so that a repeated
	 * address is reported as it would be) and now takes it back */
	tx_end(op, commit);
	r.applied = commit && op->res.status == 0;
	if (!r.applied)
		store_changes_free(op);
	if (op->imp.render && (r.nlines > 0 || op->res.status == 0 || r.strict))
		op->imp.render(&r, &op->res, op->res.body, op->imp.render_arg);
	report_clear(&r);
}

/* The switch (worker thread) */

static enum domain_mode
mode_of(const unsigned char *s)
{
	return s && strcmp((const char *)s, "hosted") == 0 ? MODE_HOSTED :
	    MODE_LEGACY;
}

/* db_domain_mode - the stored mode: 1 found, 0 not found, -1 error */
static int
db_domain_mode(const char *name, enum domain_mode *mode)
{
	sqlite3_stmt *s = db_prepare("SELECT mode FROM domains WHERE name = ?1");
	int rc;

	if (s == NULL)
		return -1;
	sqlite3_bind_text(s, 1, name, -1, SQLITE_STATIC);
	rc = sqlite3_step(s);
	if (rc == SQLITE_ROW)
		*mode = mode_of(sqlite3_column_text(s, 0));
	sqlite3_finalize(s);
	return rc == SQLITE_ROW ? 1 : rc == SQLITE_DONE ? 0 : -1;
}

/* db_history_add - one history row */
static int
db_history_add(struct store_op *op, enum domain_mode from)
{
	sqlite3_stmt *s = db_prepare("INSERT INTO switch_history "
	    "(domain, time, from_mode, to_mode, uid, note, applied) "
	    "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)");
	int rc;

	if (s == NULL)
		return -1;
	sqlite3_bind_text(s, 1, op->name, -1, SQLITE_STATIC);
	sqlite3_bind_int64(s, 2, (sqlite3_int64)time(NULL));
	sqlite3_bind_text(s, 3, store_mode_name(from), -1, SQLITE_STATIC);
	sqlite3_bind_text(s, 4, store_mode_name(op->mode), -1, SQLITE_STATIC);
	sqlite3_bind_int64(s, 5, (sqlite3_int64)op->uid);
	sqlite3_bind_text(s, 6, op->note ? op->note : "", -1, SQLITE_STATIC);
	sqlite3_bind_int(s, 7, op->applied ? 1 : 0);
	rc = sqlite3_step(s);
	sqlite3_finalize(s);
	return rc == SQLITE_DONE ? 0 : -1;
}

/* db_exec_name - run sql with ?1 = op->name (and ?2 = at when at_too) */
static int
db_exec_name(struct store_op *op, const char *sql, int at_too)
{
	sqlite3_stmt *s = db_prepare(sql);
	int rc;

	if (s == NULL)
		return -1;
	sqlite3_bind_text(s, 1, op->name, -1, SQLITE_STATIC);
	if (at_too)
		sqlite3_bind_int64(s, 2, (sqlite3_int64)op->sched.at);
	rc = sqlite3_step(s);
	sqlite3_finalize(s);
	return rc == SQLITE_DONE ? 0 : -1;
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
	/* a switch to the current mode is no switch: no history row */
	if (op->applied && from != op->mode && db_exec_name(op,
	    op->mode == MODE_HOSTED ?
	    "UPDATE domains SET mode = 'hosted' WHERE name = ?1" :
	    "UPDATE domains SET mode = 'legacy' WHERE name = ?1", 0) == -1) {
		db_fail(op, "switch");
		goto out;
	}
	if ((!op->applied || from != op->mode) && db_history_add(op, from) == -1) {
		db_fail(op, "switch");
		goto out;
	}
	if (op->sched_fire && db_exec_name(op, "DELETE FROM switch_schedule "
	    "WHERE domain = ?1 AND at = ?2", 1) == -1) {
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
	sqlite3_stmt *s;
	int ex, rc;

	if (tx_begin(op) == -1)
		return;
	if ((ex = db_domain_exists(op->name)) == 0) {
		refuse(op, "domain %s: not found", op->name);
		goto out;
	}
	if (ex < 0 || (s = db_prepare("SELECT 1 FROM switch_schedule "
	    "WHERE domain = ?1")) == NULL) {
		db_fail(op, "switch schedule");
		goto out;
	}
	sqlite3_bind_text(s, 1, op->name, -1, SQLITE_STATIC);
	op->res.outcome = sqlite3_step(s) == SQLITE_ROW ? STORE_UPDATED :
	    STORE_ADDED;
	sqlite3_finalize(s);
	if ((s = db_prepare("INSERT OR REPLACE INTO switch_schedule "
	    "(domain, at, to_mode, uid, force, created) "
	    "VALUES (?1, ?2, ?3, ?4, ?5, ?6)")) == NULL) {
		db_fail(op, "switch schedule");
		goto out;
	}
	sqlite3_bind_text(s, 1, op->name, -1, SQLITE_STATIC);
	sqlite3_bind_int64(s, 2, (sqlite3_int64)op->sched.at);
	sqlite3_bind_text(s, 3, store_mode_name(op->sched.mode), -1, SQLITE_STATIC);
	sqlite3_bind_int64(s, 4, (sqlite3_int64)op->sched.uid);
	sqlite3_bind_int(s, 5, op->sched.force ? 1 : 0);
	sqlite3_bind_int64(s, 6, (sqlite3_int64)op->sched.created);
	rc = sqlite3_step(s);
	sqlite3_finalize(s);
	if (rc != SQLITE_DONE)
		db_fail(op, "switch schedule");
out:
	tx_end(op, 1);
}

static void
job_sched_cancel(struct store_op *op)
{
	if (db_exec_name(op, "DELETE FROM switch_schedule WHERE domain = ?1",
	    0) == -1)
		db_fail(op, "switch cancel");
	else if (sqlite3_changes(db) == 0)
		refuse(op, "domain %s: no scheduled switch", op->name);
	else
		op->res.outcome = STORE_REMOVED;
}

/* history_event - columns 7 and 8, and for other events than a switch
 * the texts of columns 2 and 3 */
static void
history_event(sqlite3_stmt *s, struct store_switch_rec *r)
{
	const char *ev = (const char *)sqlite3_column_text(s, 7);
	const char *addr = (const char *)sqlite3_column_text(s, 8);

	r->event = ev && strcmp(ev, "route") == 0 ? STORE_EV_ROUTE :
	    ev && strcmp(ev, "mx") == 0 ? STORE_EV_MX : STORE_EV_SWITCH;
	r->address = addr && *addr ? xstrdup(addr) : NULL;
	r->from_text = r->to_text = NULL;
	if (r->event == STORE_EV_SWITCH)
		return;
	r->from_text = xstrdup((const char *)sqlite3_column_text(s, 2));
	r->to_text = xstrdup((const char *)sqlite3_column_text(s, 3));
}

static void
job_history(struct store_op *op)
{
	struct store_switch_rec *rows = NULL;
	size_t n = 0, cap = 0;
	sqlite3_stmt *s;
	int ex, rc;

	if ((s = db_prepare("SELECT id, time, from_mode, to_mode, uid, note, "
	    "applied, event, address FROM switch_history WHERE domain = ?1 "
	    "ORDER BY id")) == NULL) {
		db_fail(op, "history");
		return;
	}
	sqlite3_bind_text(s, 1, op->name, -1, SQLITE_STATIC);
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		if (n == cap) {
			cap = cap ? cap * 2 : 16;
			rows = xrealloc(rows, cap * sizeof(*rows));
		}
		rows[n].id = (long long)sqlite3_column_int64(s, 0);
		rows[n].time = (time_t)sqlite3_column_int64(s, 1);
		rows[n].from = mode_of(sqlite3_column_text(s, 2));
		rows[n].to = mode_of(sqlite3_column_text(s, 3));
		rows[n].uid = (uid_t)sqlite3_column_int64(s, 4);
		rows[n].note = xstrdup((const char *)sqlite3_column_text(s, 5));
		rows[n].applied = sqlite3_column_int(s, 6) != 0;
		history_event(s, &rows[n]);
		n++;
	}
	if (rc != SQLITE_DONE)
		db_fail(op, "history");
	sqlite3_finalize(s);
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
	sqlite3_stmt *s = db_prepare("SELECT r.route FROM addresses a "
	    "LEFT JOIN address_routes r ON r.address = a.address "
	    "WHERE a.address = ?1");
	const unsigned char *t;
	int rc;

	if (s == NULL)
		return -1;
	sqlite3_bind_text(s, 1, address, -1, SQLITE_STATIC);
	*route = ADDR_ROUTE_DOMAIN;
	rc = sqlite3_step(s);
	if (rc == SQLITE_ROW && (t = sqlite3_column_text(s, 0)) != NULL)
		store_route_parse((const char *)t, route);
	sqlite3_finalize(s);
	return rc == SQLITE_ROW ? 1 : rc == SQLITE_DONE ? 0 : -1;
}

/* db_route_history - the override's history row in its domain's history */
static int
db_route_history(struct store_op *op, enum addr_route from)
{
	sqlite3_stmt *s = db_prepare("INSERT INTO switch_history "
	    "(domain, time, from_mode, to_mode, uid, note, applied, event, "
	    "address) VALUES (?1, ?2, ?3, ?4, ?5, ?6, 1, 'route', ?7)");
	int rc;

	if (s == NULL)
		return -1;
	sqlite3_bind_text(s, 1, import_address_domain(op->name), -1, SQLITE_STATIC);
	sqlite3_bind_int64(s, 2, (sqlite3_int64)time(NULL));
	sqlite3_bind_text(s, 3, store_route_name(from), -1, SQLITE_STATIC);
	sqlite3_bind_text(s, 4, store_route_name(op->route), -1, SQLITE_STATIC);
	sqlite3_bind_int64(s, 5, (sqlite3_int64)op->uid);
	sqlite3_bind_text(s, 6, op->note ? op->note : "", -1, SQLITE_STATIC);
	sqlite3_bind_text(s, 7, op->name, -1, SQLITE_STATIC);
	rc = sqlite3_step(s);
	sqlite3_finalize(s);
	return rc == SQLITE_DONE ? 0 : -1;
}

/* job_addr_route - the override and its history row, one transaction */
static void
job_addr_route(struct store_op *op)
{
	enum addr_route from;
	sqlite3_stmt *s = NULL;
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
	if (ex < 0 || from == op->route)
		goto out;
	if (op->route == ADDR_ROUTE_DOMAIN)
		ex = db_exec_name(op, "DELETE FROM address_routes "
		    "WHERE address = ?1", 0);
	else if ((s = db_prepare("INSERT OR REPLACE INTO address_routes "
	    "(address, domain, route) VALUES (?1, ?2, ?3)")) == NULL)
		ex = -1;
	else {
		sqlite3_bind_text(s, 1, op->name, -1, SQLITE_STATIC);
		sqlite3_bind_text(s, 2, import_address_domain(op->name), -1,
		    SQLITE_STATIC);
		sqlite3_bind_text(s, 3, store_route_name(op->route), -1,
		    SQLITE_STATIC);
		ex = sqlite3_step(s) == SQLITE_DONE ? 0 : -1;
		sqlite3_finalize(s);
	}
	if (ex == 0)
		ex = db_route_history(op, from);
out:
	if (ex < 0)
		db_fail(op, "address set");
	tx_end(op, 1);
}

/* The MX watch (worker thread) */

/* job_mx_record - the picture, and a history row when it changed */
static void
job_mx_record(struct store_op *op)
{
	const struct store_mx *m = &op->mx;
	sqlite3_stmt *s;
	int ok;

	if (tx_begin(op) == -1)
		return;
	if ((s = db_prepare("INSERT OR REPLACE INTO mx_watch (domain, picture, "
	    "checked, since, prev_ttl, other_ttl) "
	    "SELECT ?1, ?2, ?3, ?4, ?5, ?6 WHERE EXISTS "
	    "(SELECT 1 FROM domains WHERE name = ?1)")) == NULL) {
		db_fail(op, "mx record");
		goto out;
	}
	sqlite3_bind_text(s, 1, op->name, -1, SQLITE_STATIC);
	sqlite3_bind_text(s, 2, store_mx_picture_name(m->picture), -1,
	    SQLITE_STATIC);
	sqlite3_bind_int64(s, 3, (sqlite3_int64)m->checked);
	sqlite3_bind_int64(s, 4, (sqlite3_int64)m->since);
	sqlite3_bind_int64(s, 5, (sqlite3_int64)m->prev_ttl);
	sqlite3_bind_int64(s, 6, (sqlite3_int64)m->other_ttl);
	ok = sqlite3_step(s) == SQLITE_DONE;
	sqlite3_finalize(s);
	if (!ok) {
		db_fail(op, "mx record");
		goto out;
	}
	if (sqlite3_changes(db) == 0) {
		refuse(op, "domain %s: not found", op->name);
		goto out;
	}
	/* a first look finding the records elsewhere is no news worth a row */
	if (op->from_picture == m->picture ||
	    (op->from_picture == MX_UNKNOWN && m->picture == MX_OTHER))
		goto out;
	if ((s = db_prepare("INSERT INTO switch_history (domain, time, "
	    "from_mode, to_mode, uid, note, applied, event) "
	    "VALUES (?1, ?2, ?3, ?4, ?5, ?6, 1, 'mx')")) == NULL) {
		db_fail(op, "mx record");
		goto out;
	}
	sqlite3_bind_text(s, 1, op->name, -1, SQLITE_STATIC);
	sqlite3_bind_int64(s, 2, (sqlite3_int64)m->checked);
	sqlite3_bind_text(s, 3, store_mx_picture_name(op->from_picture), -1,
	    SQLITE_STATIC);
	sqlite3_bind_text(s, 4, store_mx_picture_name(m->picture), -1,
	    SQLITE_STATIC);
	sqlite3_bind_int64(s, 5, (sqlite3_int64)getuid());
	sqlite3_bind_text(s, 6, op->note ? op->note : "", -1, SQLITE_STATIC);
	if (sqlite3_step(s) != SQLITE_DONE)
		db_fail(op, "mx record");
	sqlite3_finalize(s);
out:
	tx_end(op, 1);
}

/* Recipient verification (worker thread) */

static void
job_domain_verify(struct store_op *op)
{
	sqlite3_stmt *s = db_prepare("UPDATE domains SET verify_legacy = ?2 "
	    "WHERE name = ?1");

	if (s == NULL) {
		db_fail(op, "domain set");
		return;
	}
	sqlite3_bind_text(s, 1, op->name, -1, SQLITE_STATIC);
	sqlite3_bind_int(s, 2, op->flag);
	if (sqlite3_step(s) != SQLITE_DONE)
		db_fail(op, "domain set");
	else if (sqlite3_changes(db) == 0)
		refuse(op, "domain %s: not found", op->name);
	sqlite3_finalize(s);
}

static void
job_verified_put(struct store_op *op)
{
	sqlite3_stmt *s = db_prepare("INSERT OR REPLACE INTO verified_addresses "
	    "(address, domain, verified, expires) SELECT ?1, ?2, ?3, ?4 "
	    "WHERE EXISTS (SELECT 1 FROM domains WHERE name = ?2)");

	if (s == NULL) {
		db_fail(op, "verified");
		return;
	}
	sqlite3_bind_text(s, 1, op->name, -1, SQLITE_STATIC);
	sqlite3_bind_text(s, 2, import_address_domain(op->name), -1, SQLITE_STATIC);
	sqlite3_bind_int64(s, 3, (sqlite3_int64)op->verified.verified);
	sqlite3_bind_int64(s, 4, (sqlite3_int64)op->verified.expires);
	if (sqlite3_step(s) != SQLITE_DONE)
		db_fail(op, "verified");
	else if (sqlite3_changes(db) == 0)
		refuse(op, "domain %s: not found", import_address_domain(op->name));
	sqlite3_finalize(s);
}

/* store_db_job - worker thread: one job */
void
store_db_job(void *arg)
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
	case OP_HISTORY: job_history(op); break;
	case OP_ADDR_ROUTE: job_addr_route(op); break;
	case OP_MX_RECORD: job_mx_record(op); break;
	case OP_DOMAIN_VERIFY: job_domain_verify(op); break;
	case OP_VERIFIED_PUT: job_verified_put(op); break;
	}
}

/* Opening: schema, load */

/* store_migrate - bring the schema up to date, one transaction per step */
static int
store_migrate(char *err, size_t errlen)
{
	sqlite3_stmt *s = db_prepare("PRAGMA user_version");
	int have = 0, want = (int)MX_ARRAY_LEN(store_migrations);
	char sql[64];

	if (s && sqlite3_step(s) == SQLITE_ROW)
		have = sqlite3_column_int(s, 0);
	sqlite3_finalize(s);
	if (have > want) {
		snprintf(err, errlen, "database schema version %d is newer than "
		    "this mxrelayd (%d)", have, want);
		return -1;
	}
	for (int v = have; v < want; v++) {
		snprintf(sql, sizeof(sql), "PRAGMA user_version = %d", v + 1);
		if (db_exec("BEGIN IMMEDIATE") == -1 ||
		    db_exec(store_migrations[v]) == -1 || db_exec(sql) == -1 ||
		    db_exec("COMMIT") == -1) {
			snprintf(err, errlen, "schema migration %d: %s", v + 1,
			    sqlite3_errmsg(db));
			db_exec("ROLLBACK");
			return -1;
		}
		log_info("store schema migrated version=%d", v + 1);
	}
	return 0;
}

static int
load_domains(struct dict *domains)
{
	sqlite3_stmt *s = db_prepare("SELECT name, mode, created, verify_legacy "
	    "FROM domains");
	struct domain_entry *d;
	int rc;

	if (s == NULL)
		return -1;
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		const char *name = (const char *)sqlite3_column_text(s, 0);
		d = store_entry_new(name, strcmp((const char *)sqlite3_column_text(s, 1),
		    "hosted") == 0 ? MODE_HOSTED : MODE_LEGACY,
		    (time_t)sqlite3_column_int64(s, 2));
		d->info.verify_legacy = sqlite3_column_int(s, 3) != 0;
		store_entry_free(dict_put(domains, name, d));
	}
	sqlite3_finalize(s);
	return rc == SQLITE_DONE ? 0 : -1;
}

static int
load_servers(struct dict *domains)
{
	sqlite3_stmt *s = db_prepare("SELECT domain, host, port, pref "
	    "FROM legacy_servers ORDER BY domain, position");
	struct domain_entry *d;
	struct legacy_server *ls;
	int rc;

	if (s == NULL)
		return -1;
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		d = dict_get(domains, (const char *)sqlite3_column_text(s, 0));
		if (d == NULL || d->info.nservers >= STORE_MAX_SERVERS)
			continue;
		d->info.servers = xrealloc(d->info.servers,
		    (size_t)(d->info.nservers + 1) * sizeof(*ls));
		ls = &d->info.servers[d->info.nservers++];
		memset(ls, 0, sizeof(*ls));
		mx_strlcpy(ls->host, (const char *)sqlite3_column_text(s, 1),
		    sizeof(ls->host));
		ls->port = sqlite3_column_int(s, 2);
		ls->pref = sqlite3_column_int(s, 3);
	}
	sqlite3_finalize(s);
	return rc == SQLITE_DONE ? 0 : -1;
}

static int
load_addresses(struct dict *domains, size_t *count)
{
	sqlite3_stmt *s = db_prepare("SELECT address, kind, destinations, cc, "
	    "nofilter, domain FROM addresses");
	struct domain_entry *d;
	int rc;

	if (s == NULL)
		return -1;
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		d = dict_get(domains, (const char *)sqlite3_column_text(s, 5));
		if (d == NULL)
			continue;
		struct addr_info *a = addr_from_row(s);
		store_addr_free(dict_put(d->addrs, a->address, a));
		(*count)++;
	}
	sqlite3_finalize(s);
	return rc == SQLITE_DONE ? 0 : -1;
}

/* load_routes - the pilots' overrides into their table entries */
static int
load_routes(struct dict *domains)
{
	sqlite3_stmt *s = db_prepare("SELECT domain, address, route "
	    "FROM address_routes");
	struct domain_entry *d;
	struct addr_info *a;
	int rc;

	if (s == NULL)
		return -1;
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		d = dict_get(domains, (const char *)sqlite3_column_text(s, 0));
		a = d ? dict_get(d->addrs, (const char *)sqlite3_column_text(s, 1)) :
		    NULL;
		if (a != NULL)
			store_route_parse((const char *)sqlite3_column_text(s, 2),
			    &a->route);
	}
	sqlite3_finalize(s);
	return rc == SQLITE_DONE ? 0 : -1;
}

/* load_mx - the MX watch's last pictures */
static int
load_mx(struct dict *domains)
{
	sqlite3_stmt *s = db_prepare("SELECT domain, picture, checked, since, "
	    "prev_ttl, other_ttl FROM mx_watch");
	struct domain_entry *d;
	const char *p;
	int rc;

	if (s == NULL)
		return -1;
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		if ((d = dict_get(domains, (const char *)sqlite3_column_text(s,
		    0))) == NULL)
			continue;
		p = (const char *)sqlite3_column_text(s, 1);
		d->mx.picture = MX_UNKNOWN;
		for (int i = MX_UNKNOWN; i <= MX_OURS; i++)
			if (strcmp(p, store_mx_picture_name(i)) == 0)
				d->mx.picture = i;
		d->mx.checked = (time_t)sqlite3_column_int64(s, 2);
		d->mx.since = (time_t)sqlite3_column_int64(s, 3);
		d->mx.prev_ttl = (long)sqlite3_column_int64(s, 4);
		d->mx.other_ttl = (long)sqlite3_column_int64(s, 5);
	}
	sqlite3_finalize(s);
	return rc == SQLITE_DONE ? 0 : -1;
}

/* load_verified - the addresses the old servers accepted */
static int
load_verified(struct dict *domains)
{
	sqlite3_stmt *s = db_prepare("SELECT address, domain, verified, "
	    "expires FROM verified_addresses");
	struct domain_entry *d;
	struct store_verified *v;
	int rc;

	if (s == NULL)
		return -1;
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		if ((d = dict_get(domains, (const char *)sqlite3_column_text(s,
		    1))) == NULL)
			continue;
		v = xcalloc(1, sizeof(*v));
		v->address = xstrdup((const char *)sqlite3_column_text(s, 0));
		v->verified = (time_t)sqlite3_column_int64(s, 2);
		v->expires = (time_t)sqlite3_column_int64(s, 3);
		free(dict_put(d->verified, v->address, v));
	}
	sqlite3_finalize(s);
	return rc == SQLITE_DONE ? 0 : -1;
}

/* load_schedules - the pending scheduled switches into their domains */
static int
load_schedules(struct dict *domains)
{
	sqlite3_stmt *s = db_prepare("SELECT domain, at, to_mode, uid, force, "
	    "created FROM switch_schedule");
	struct domain_entry *d;
	int rc;

	if (s == NULL)
		return -1;
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		d = dict_get(domains, (const char *)sqlite3_column_text(s, 0));
		if (d == NULL)
			continue;
		d->has_sched = 1;
		d->sched.at = (time_t)sqlite3_column_int64(s, 1);
		d->sched.mode = mode_of(sqlite3_column_text(s, 2));
		d->sched.uid = (uid_t)sqlite3_column_int64(s, 3);
		d->sched.force = sqlite3_column_int(s, 4) != 0;
		d->sched.created = (time_t)sqlite3_column_int64(s, 5);
	}
	sqlite3_finalize(s);
	return rc == SQLITE_DONE ? 0 : -1;
}

/* store_db_open - open the file, set the pragmas durability needs, migrate */
int
store_db_open(const char *path, char *err, size_t errlen)
{
	if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE |
	    SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX, NULL) != SQLITE_OK) {
		snprintf(err, errlen, "%s: %s", path,
		    db ? sqlite3_errmsg(db) : "cannot open");
		return -1;
	}
	sqlite3_busy_timeout(db, STORE_BUSY_TIMEOUT_MS);
	/* WAL: readers never block the writer; FULL: a commit is on disk
	 * before it returns, so that "done" means durable (SPEC 4) */
	if (db_exec("PRAGMA journal_mode = WAL") == -1 ||
	    db_exec("PRAGMA synchronous = FULL") == -1 ||
	    db_exec("PRAGMA foreign_keys = ON") == -1) {
		snprintf(err, errlen, "%s: %s", path, sqlite3_errmsg(db));
		return -1;
	}
	return store_migrate(err, errlen);
}

int
store_db_load(struct dict *domains, size_t *naddr, char *err, size_t errlen)
{
	if (load_domains(domains) == -1 || load_servers(domains) == -1 ||
	    load_addresses(domains, naddr) == -1 ||
	    load_routes(domains) == -1 || load_schedules(domains) == -1 ||
	    load_mx(domains) == -1 || load_verified(domains) == -1) {
		snprintf(err, errlen, "loading the state store: %s",
		    sqlite3_errmsg(db));
		return -1;
	}
	return 0;
}

void
store_db_close(void)
{
	if (db)
		sqlite3_close(db);
	db = NULL;
}
