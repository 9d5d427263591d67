/* store_priv.h - what store.c (index, loop thread) and store_db.c (SQLite,
 * worker thread) share; not for other modules */
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
	OP_DOMAIN_MODE, OP_SCHED_SET, OP_SCHED_CANCEL, OP_HISTORY,
	OP_ADDR_ROUTE, OP_MX_RECORD, OP_DOMAIN_VERIFY, OP_VERIFIED_PUT
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

/* store.c */
struct domain_entry *store_entry_new(const char *name, enum domain_mode mode,
    time_t created);
void store_entry_free(void *entry);
/* store_verified_apply - an OP_VERIFIED_PUT into the index */
void store_verified_apply(struct store_op *op);
/* store_changes_free - drop the import changes not applied to the index */
void store_changes_free(struct store_op *op);

/* store_db.c: store_db_open and store_db_load run on the loop thread before
 * the worker starts; store_db_job only on the worker afterwards */
int store_db_open(const char *path, char *err, size_t errlen);
int store_db_load(struct dict *domains, size_t *naddr, char *err, size_t errlen);
/* store_db_job - worker thread: run one op (a worker_job_fn) */
void store_db_job(void *op);
void store_db_close(void);

#endif
