/* store_priv.h - what store.c (index, loop thread), store_sql.c (the
 * operations, worker thread) and store_types.c share; not for other modules
 *
 * Calls go one way: store.c -> store_sql.c -> store_backend.h, and both
 * use store_types.c. */
#ifndef MX_STORE_PRIV_H
#define MX_STORE_PRIV_H

#include <time.h>

#include "dict.h"
#include "store.h"

struct domain_entry {
	struct domain_info info;	/* first: store_domain hands out &info */
	time_t created;
	struct dict *addrs;		/* "local@domain" -> struct addr_info */
	int has_sched;			/* a switch is scheduled: sched */
	struct store_sched sched;
	struct store_mx mx;		/* the MX watch's last picture */
	struct dict *verified;		/* address -> struct store_verified */
};

enum op_type {
	OP_DOMAIN_ADD, OP_DOMAIN_SERVERS, OP_DOMAIN_REMOVE,
	OP_ADDR_PUT, OP_ADDR_REMOVE, OP_IMPORT, OP_SCAN,
	OP_DOMAIN_MODE, OP_SCHED_SET, OP_SCHED_CANCEL, OP_SCHED_CLAIM,
	OP_HISTORY, OP_ADDR_ROUTE, OP_MX_RECORD, OP_DOMAIN_VERIFY, OP_VERIFIED_PUT
};

struct store_op {
	enum op_type type;
	struct store_op *next;		/* apply queue */
	store_done_fn done;
	void *arg;
	struct store_result res;

	char *name;			/* domain or address */
	enum domain_mode mode;
	time_t created;
	struct legacy_server *servers;
	int nservers;
	struct addr_info *addr;		/* OP_ADDR_PUT */

	struct store_import_params imp;	/* OP_IMPORT */
	struct addr_info **changes;	/* committed, to apply to the index */
	size_t nchanges, napplied;

	store_scan_render_fn scan_render;	/* OP_SCAN */
	void *render_arg;

	/* OP_DOMAIN_MODE, OP_SCHED_*, OP_HISTORY */
	uid_t uid;
	char *note;
	int applied;			/* 0: record a refusal only */
	int sched_fire;			/* drop the schedule due at sched.at */
	struct store_sched sched;
	store_history_render_fn history_render;

	enum addr_route route;		/* OP_ADDR_ROUTE */
	struct store_mx mx;		/* OP_MX_RECORD, from in from_picture */
	enum mx_picture from_picture;
	int flag;			/* OP_DOMAIN_VERIFY */
	struct store_verified verified;	/* OP_VERIFIED_PUT (address: name) */
};

/* store_types.c */
struct domain_entry *store_entry_new(const char *name, enum domain_mode mode,
    time_t created);
void store_entry_free(void *entry);
/* store_verified_entry_free - a struct store_verified of the index */
void store_verified_entry_free(void *v);

/* store_sql.c: store_sql_open and store_sql_load run on the loop thread
 * before the worker starts; store_sql_job only on the worker afterwards.
 * desc: the database as the start line names it. */
struct config;
int store_sql_open(const struct config *, char *desc, size_t desclen,
    char *err, size_t errlen);
int store_sql_load(struct dict *domains, size_t *naddr, char *err,
    size_t errlen);
/* store_sql_job - worker thread: run one op (a worker_job_fn) */
void store_sql_job(void *op);
const char *store_sql_backend(void);
const char *store_sql_origin(void);
long long store_sql_head(void);
void store_sql_close(void);

#endif
