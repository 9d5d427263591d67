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
#include <sys/types.h>
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
/* store_address - the entry of addr, a canonical address
 * (smtp_mailbox_canonical), trying local+tag's base local part when delim
 * is set and the full address is absent. Case-insensitive. NULL when not
 * in the table. */
const struct addr_info *store_address(const char *addr, char delim);
/* store_count_domains - how many domains are in mode (for status) */
int store_count_domains(enum domain_mode mode);

const char *store_mode_name(enum domain_mode);

/*
 * Writes and scans (control commands). Each runs as a job on the store's
 * worker thread; the SQLite transaction has committed before done runs on
 * the loop thread, and the in-memory index already shows the change then.
 * Completions run in submission order.
 */
#include <time.h>
#include <event2/buffer.h>

#define STORE_MAX_SERVERS	16	/* legacy servers of one domain */
#define STORE_MSG_MAX		512
#define STORE_APPLY_SLICE	2000	/* index entries applied per loop turn */
#define STORE_IMPORT_LINES_MAX	2000000	/* lines of one import */

enum store_outcome { STORE_ADDED, STORE_UPDATED, STORE_UNCHANGED, STORE_REMOVED };

struct store_result {
	int status;			/* 0 done, 1 refused (msg says why) */
	char msg[STORE_MSG_MAX];
	enum store_outcome outcome;	/* address put */
	long count;			/* domain remove: addresses removed with it */
	struct evbuffer *body;		/* import and scans: what the renderer wrote */
	enum domain_mode from_mode;	/* domain mode writes: the mode before */
};
/* done - on the loop thread; the result is only valid during the call
 * (take res->body with evbuffer_add_buffer if it is wanted) */
typedef void (*store_done_fn)(struct store_result *res, void *arg);

/* store_domain_add - refused when it exists; servers may be empty */
void store_domain_add(const char *name, enum domain_mode mode,
    const struct legacy_server *servers, int nservers, store_done_fn, void *);
/* store_domain_set_servers - replace the legacy servers */
void store_domain_set_servers(const char *name,
    const struct legacy_server *servers, int nservers, store_done_fn, void *);
/* store_domain_remove - the domain and all its addresses; res->count */
void store_domain_remove(const char *name, store_done_fn, void *);
/* store_address_put - add or replace (a is copied; its domain must exist);
 * res->outcome is STORE_ADDED, STORE_UPDATED or STORE_UNCHANGED */
void store_address_put(const struct addr_info *a, store_done_fn, void *);
void store_address_remove(const char *address, store_done_fn, void *);

/* import: one line's fate */
enum store_import_kind {
	STORE_IMP_ADDED, STORE_IMP_UPDATED, STORE_IMP_UNCHANGED,
	STORE_IMP_INVALID, STORE_IMP_WARNING
};
struct store_import_line {
	int line;			/* 1-based */
	enum store_import_kind kind;
	char *text;			/* the address, or the reason (invalid) */
	char *written;			/* the line's own (quoted) form of the
					 * address when it differs, or NULL */
};
struct store_import_report {
	const char *domain;
	const char *file;		/* as the caller named it */
	int dry_run, strict, nofilter;
	int applied;			/* the changes were committed */
	struct store_import_line *lines;	/* in line order */
	size_t nlines;
	size_t added, updated, unchanged, invalid, warnings, passwords;
};
/* runs on the worker thread: render the report into out (status and msg
 * of res are already set; the renderer may also refuse by setting them) */
typedef void (*store_import_render_fn)(const struct store_import_report *,
    struct store_result *res, struct evbuffer *out, void *arg);

struct store_import_params {
	const char *domain;		/* lower case */
	const char *file;
	const char *text;		/* the file; must stay valid until done */
	size_t len;
	int dry_run, strict, nofilter;
	store_import_render_fn render;
	void *render_arg;
};
/* store_import - parse text (table_import formats) and apply it in one
 * transaction; refused (status 1) when strict and a line is invalid */
void store_import(const struct store_import_params *, store_done_fn, void *);

/* runs on the worker thread with the domain's addresses sorted by address */
typedef void (*store_scan_render_fn)(const char *domain,
    struct addr_info *const *rows, size_t n, struct evbuffer *out, void *arg);
/* store_address_scan - read the domain's addresses from the database
 * (off the loop) and render them; refused when the domain does not exist */
void store_address_scan(const char *domain, store_scan_render_fn render,
    void *render_arg, store_done_fn, void *);

/* Loop-thread reads of the index. */
/* store_domain_list - every domain sorted by name; free(*out) afterwards */
size_t store_domain_list(const struct domain_info ***out);
time_t store_domain_created(const struct domain_info *);
size_t store_domain_naddresses(const struct domain_info *);

/*
 * The switch (SPEC 7): mode changes with their history, and switches
 * scheduled for later. Loop-thread reads, worker-thread writes as above.
 */
#define STORE_NOTE_MAX		1024	/* history note, bytes */

/* a switch scheduled with relayctl switch --at */
struct store_sched {
	time_t at;
	enum domain_mode mode;		/* the mode to switch to */
	uid_t uid;			/* who scheduled it */
	int force;			/* skip the preflight when it fires */
	time_t created;
};

/* one row of the switch history */
struct store_switch_rec {
	long long id;
	time_t time;
	enum domain_mode from, to;
	uid_t uid;
	int applied;			/* 0: a refused scheduled switch */
	const char *note;
};

/* store_domain_set_mode - set the domain's mode and append a history row
 * (time now, from, to, uid, note) in one transaction; res->from_mode is
 * the mode before, and switching to the current mode changes nothing and
 * writes no row. The index shows the new mode before done runs. */
void store_domain_set_mode(const char *domain, enum domain_mode mode,
    uid_t uid, const char *note, store_done_fn, void *);
/* store_schedule_fire - a scheduled switch (the one due at `at`) has run:
 * drop it and, in the same transaction, set the mode as
 * store_domain_set_mode (applied) or only record the refusal in the
 * history with note (not applied) */
void store_schedule_fire(const char *domain, time_t at, enum domain_mode mode,
    uid_t uid, int applied, const char *note, store_done_fn, void *);
/* store_schedule_set - schedule a switch (replacing the domain's pending
 * one: res->outcome STORE_UPDATED, else STORE_ADDED) */
void store_schedule_set(const char *domain, const struct store_sched *,
    store_done_fn, void *);
/* store_schedule_cancel - drop the pending one; refused when none */
void store_schedule_cancel(const char *domain, store_done_fn, void *);
/* store_domain_sched - the pending scheduled switch of d, or NULL */
const struct store_sched *store_domain_sched(const struct domain_info *d);
/* store_domain_mailboxes - the mailbox addresses of d (not aliases),
 * sorted; *out and each string are malloc'd */
size_t store_domain_mailboxes(const struct domain_info *d, char ***out);

/* runs on the worker thread with the domain's history, oldest first */
typedef void (*store_history_render_fn)(const char *domain,
    const struct store_switch_rec *rows, size_t n, struct evbuffer *out,
    void *arg);
/* store_history_scan - read the switch history of domain (also of a
 * removed domain: the history is an audit trail) and render it; refused
 * when the domain is unknown and has no history */
void store_history_scan(const char *domain, store_history_render_fn render,
    void *render_arg, store_done_fn, void *);

/* addr_info helpers */
struct addr_info *store_addr_dup(const struct addr_info *);
void store_addr_free(struct addr_info *);
int store_addr_equal(const struct addr_info *, const struct addr_info *);
/* store_server_format - "host:port" ("[v6]:port") into buf */
void store_server_format(const struct legacy_server *, char *buf, size_t len);

#endif
