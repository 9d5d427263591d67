/* store_copy.c - mxrelayd -M DIR: copy a host's SQLite state into the
 * empty PostgreSQL database of the configuration (moving a host into a
 * fleet)
 *
 * Both ends go through the backend interface: the SQLite file is opened
 * (and brought to this build's schema) like a daemon would, the tables
 * are read in full and written to PostgreSQL in one transaction, so a
 * failed copy leaves the database empty. A database that holds any
 * row of these tables is refused. The change log
 * and the hosts table are not copied: they describe a fleet, not a state.
 * It runs before the daemon starts, in the foreground: no event loop.
 */
#include "autoconf.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "store.h"
#include "store_backend.h"
#include "store_copy.h"
#include "util.h"

#define COPY_COLS_MAX	10

struct copy_table {
	const char *name;
	const char *select;		/* columns in insert order */
	const char *insert;
	int ncols;
};

/* parents first (foreign keys); the history in its order, new ids */
static const struct copy_table tables[] = {
	{ "domains", "SELECT name, mode, created, verify_legacy FROM domains "
	    "ORDER BY name", "INSERT INTO domains (name, mode, created, "
	    "verify_legacy) VALUES ($1, $2, $3, $4)", 4 },
	{ "legacy_servers", "SELECT domain, host, port, pref, position FROM "
	    "legacy_servers ORDER BY domain, position",
	    "INSERT INTO legacy_servers (domain, host, port, pref, position) "
	    "VALUES ($1, $2, $3, $4, $5)", 5 },
	{ "addresses", "SELECT address, domain, kind, destinations, cc, "
	    "nofilter FROM addresses ORDER BY address",
	    "INSERT INTO addresses (address, domain, kind, destinations, cc, "
	    "nofilter) VALUES ($1, $2, $3, $4, $5, $6)", 6 },
	{ "address_routes", "SELECT address, domain, route FROM address_routes "
	    "ORDER BY address", "INSERT INTO address_routes (address, domain, "
	    "route) VALUES ($1, $2, $3)", 3 },
	{ "mx_watch", "SELECT domain, picture, checked, since, prev_ttl, "
	    "other_ttl FROM mx_watch ORDER BY domain",
	    "INSERT INTO mx_watch (domain, picture, checked, since, prev_ttl, "
	    "other_ttl) VALUES ($1, $2, $3, $4, $5, $6)", 6 },
	{ "verified_addresses", "SELECT address, domain, verified, expires "
	    "FROM verified_addresses ORDER BY address",
	    "INSERT INTO verified_addresses (address, domain, verified, expires) "
	    "VALUES ($1, $2, $3, $4)", 4 },
	{ "switch_schedule", "SELECT domain, at, to_mode, uid, force, created "
	    "FROM switch_schedule ORDER BY domain",
	    "INSERT INTO switch_schedule (domain, at, to_mode, uid, force, "
	    "created) VALUES ($1, $2, $3, $4, $5, $6)", 6 },
	{ "switch_history", "SELECT domain, time, from_mode, to_mode, uid, "
	    "note, applied, host, event, address FROM switch_history ORDER BY id",
	    "INSERT INTO switch_history (domain, time, from_mode, to_mode, uid, "
	    "note, applied, host, event, address) "
	    "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)", 10 },
};

/* dst_empty - 1 when no table of the state has a row, 0, -1 on error */
static int
dst_empty(const struct store_backend *dst, char *err, size_t errlen)
{
	char sql[128];

	for (size_t i = 0; i < MX_ARRAY_LEN(tables); i++) {
		struct db_rows *r;
		int rc;

		snprintf(sql, sizeof(sql), "SELECT 1 FROM %s LIMIT 1",
		    tables[i].name);
		if ((r = dst->query(sql, NULL, 0)) == NULL) {
			snprintf(err, errlen, "%s: %s", tables[i].name, dst->errmsg());
			return -1;
		}
		rc = dst->next(r);
		dst->rows_free(r);
		if (rc != 0) {
			if (rc == 1)
				snprintf(err, errlen, "the PostgreSQL database is not "
				    "empty (table %s has rows): nothing copied",
				    tables[i].name);
			else
				snprintf(err, errlen, "%s: %s", tables[i].name,
				    dst->errmsg());
			return rc == 1 ? 0 : -1;
		}
	}
	return 1;
}

/* copy_table - every row of t; returns the count, or -1 with err set */
static long
copy_table(const struct store_backend *src, const struct store_backend *dst,
    const struct copy_table *t, char *err, size_t errlen)
{
	struct db_param p[COPY_COLS_MAX];
	struct db_rows *r = src->query(t->select, NULL, 0);
	long n = 0;
	int rc;

	if (r == NULL) {
		snprintf(err, errlen, "reading %s: %s", t->name, src->errmsg());
		return -1;
	}
	while ((rc = src->next(r)) == 1) {
		for (int c = 0; c < t->ncols; c++) {
			p[c].type = DBP_TEXT;
			p[c].s = src->text(r, c);
		}
		if (dst->exec(t->insert, p, t->ncols, NULL) == -1) {
			snprintf(err, errlen, "writing %s: %s", t->name,
			    dst->errmsg());
			src->rows_free(r);
			return -1;
		}
		n++;
	}
	src->rows_free(r);
	if (rc == -1) {
		snprintf(err, errlen, "reading %s: %s", t->name, src->errmsg());
		return -1;
	}
	return n;
}

int
store_copy(const struct config *cfg, const char *statedir, FILE *out,
    char *err, size_t errlen)
{
	const struct store_backend *src = &store_backend_sqlite;
	const struct store_backend *dst = &store_backend_pg;
	struct config scfg = *cfg;
	char sdesc[DB_DESC_MAX], ddesc[DB_DESC_MAX];
	long counts[MX_ARRAY_LEN(tables)];
	int rc = -1;

	if (cfg->state_backend != STATE_POSTGRESQL) {
		snprintf(err, errlen, "-M copies into PostgreSQL: the "
		    "configuration must say state.backend = \"postgresql\"");
		return -1;
	}
	snprintf(sdesc, sizeof(sdesc), "%s/%s", statedir, STORE_DB_NAME);
	if (access(sdesc, R_OK) == -1) {
		snprintf(err, errlen, "%s: %s", sdesc, strerror(errno));
		return -1;
	}
	scfg.state = (char *)statedir;
	scfg.state_backend = STATE_SQLITE;
	if (store_backend_open(src, &scfg, sdesc, sizeof(sdesc), err,
	    errlen) == -1 || store_backend_open(dst, cfg, ddesc, sizeof(ddesc),
	    err, errlen) == -1)
		goto out;
	if (dst_empty(dst, err, errlen) != 1)
		goto out;
	if (dst->begin() == -1) {
		snprintf(err, errlen, "begin: %s", dst->errmsg());
		goto out;
	}
	for (size_t i = 0; i < MX_ARRAY_LEN(tables); i++)
		if ((counts[i] = copy_table(src, dst, &tables[i], err,
		    errlen)) == -1) {
			dst->rollback();
			goto out;
		}
	if (dst->commit() == -1) {
		snprintf(err, errlen, "commit: %s", dst->errmsg());
		dst->rollback();
		goto out;
	}
	fprintf(out, "copied %s to %s:", sdesc, ddesc);
	for (size_t i = 0; i < MX_ARRAY_LEN(tables); i++)
		fprintf(out, " %s=%ld", tables[i].name, counts[i]);
	fprintf(out, "\n");
	rc = 0;
out:
	src->close();
	dst->close();
	return rc;
}
