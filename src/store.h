/* store.h - domains, legacy servers, modes, addresses and switch history
 *
 * The SQLite database in paths.state is the durable truth; an in-memory
 * index, kept in step with it, answers RCPT lookups on the event loop.
 * Every write runs on the store's worker thread; its completion updates the
 * index on the loop thread. Lookups are loop-thread only.
 */
#ifndef MX_STORE_H
#define MX_STORE_H

#include <stddef.h>
#include <event2/event.h>

#define STORE_DB_NAME		"mxrelay.db"
#define STORE_MAX_DESTS		64	/* destinations or cc of one address */

enum domain_mode { MODE_LEGACY = 0, MODE_HOSTED = 1 };

struct legacy_server {
	char host[256];		/* name or address literal, no brackets */
	int port;		/* default 25 */
	int pref;		/* lowest first */
};

struct domain_info {
	char *name;		/* lower case */
	enum domain_mode mode;
	struct legacy_server *servers;
	int nservers;
};

enum addr_kind { ADDR_MAILBOX = 0, ADDR_ALIAS = 1 };

struct addr_info {
	char *address;		/* lower case local@domain */
	enum addr_kind kind;
	char **dests;		/* alias destinations */
	int ndests;
	char **cc;		/* auto-CC destinations of a mailbox */
	int ncc;
	int nofilter;		/* 1: "Do Not Filter" */
};

/* store_open - open (create, migrate) the database under statedir, load the
 * index, start the worker thread. Returns 0, or -1 with err set. */
int store_open(struct event_base *base, const char *statedir, char *err, size_t errlen);
void store_close(void);

/* store_domain - the hosted domain (either mode) or NULL. Case-insensitive. */
const struct domain_info *store_domain(const char *domain);
/* store_address - the address entry for local@domain, trying local+tag's
 * base local part when delim is set and the full address is absent.
 * Case-insensitive. NULL when not in the table. */
const struct addr_info *store_address(const char *local, const char *domain, char delim);
/* store_count_domains - how many domains are in mode (for status) */
int store_count_domains(enum domain_mode mode);

const char *store_mode_name(enum domain_mode);

#endif
