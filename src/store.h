/* store.h - domains, legacy servers, modes, addresses and switch history
 *
 * The database (SQLite in paths.state, or PostgreSQL: state.backend) is
 * the durable truth; an in-memory
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
	int verify_legacy;	/* ask the old server about unknown RCPTs */
};

enum addr_kind { ADDR_MAILBOX = 0, ADDR_ALIAS = 1 };
/* a pilot's override of its domain's mode (see store_address_set_route) */
enum addr_route { ADDR_ROUTE_DOMAIN = 0, ADDR_ROUTE_HOSTED, ADDR_ROUTE_LEGACY };

struct addr_info {
	char *address;		/* lower case local@domain */
	enum addr_kind kind;
	char **dests;		/* alias destinations */
	int ndests;
	char **cc;		/* auto-CC destinations of a mailbox */
	int ncc;
	int nofilter;		/* 1: "Do Not Filter" */
	enum addr_route route;	/* a pilot's override of the domain's mode */
};

struct config;
/* store_open - open (create, migrate) the configured database, load the
 * index, start the worker thread. Returns 0, or -1 with err set. */
int store_open(struct event_base *base, const struct config *cfg, char *err,
    size_t errlen);
/* store_backend_name - "sqlite" or "postgresql"; store_database - the
 * file or "dbname on host:port" (for the start line and status) */
const char *store_backend_name(void);
const char *store_database(void);
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
#define STORE_ORIGIN_MAX	320	/* "hostname:pid:stamp" */
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
	enum addr_route from_route;	/* address route writes: the one before */
	long long version;		/* shared database: the change_log id
					 * of the write (0: none) */
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

/* what a history row records */
enum store_event {
	STORE_EV_SWITCH = 0,		/* a domain's mode (from, to) */
	STORE_EV_ROUTE,			/* a pilot's override (from_text, to_text) */
	STORE_EV_MX,			/* the MX picture changed (from_text, to_text) */
};

/* one row of the switch history */
struct store_switch_rec {
	long long id;
	time_t time;
	enum domain_mode from, to;
	uid_t uid;
	int applied;			/* 0: a refused scheduled switch */
	const char *note;
	enum store_event event;		/* what the row records */
	const char *address;		/* STORE_EV_ROUTE: the pilot */
	const char *from_text, *to_text;	/* not a switch: the route names
					 * or the MX pictures, as stored */
	const char *host;		/* who ran it ("" before schema 3) */
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
/* store_schedule_claim - may this host run the switch scheduled at at?
 * res->outcome STORE_UPDATED: yes, for STORE_CLAIM_SECS (a fleet: no
 * other host runs it meanwhile); STORE_UNCHANGED: another host runs it,
 * or it is gone */
#define STORE_CLAIM_SECS	120
void store_schedule_claim(const char *domain, time_t at, store_done_fn done,
    void *arg);
/* store_schedule_cancel - drop the pending one; refused when none */
void store_schedule_cancel(const char *domain, store_done_fn, void *);
/* store_domain_sched - the pending scheduled switch of d, or NULL */
const struct store_sched *store_domain_sched(const struct domain_info *d);
/* store_domain_mailboxes - the mailbox addresses of d (not aliases) that
 * go to the hosting when d is in mode (pilots by their own route), sorted;
 * *out and each string are malloc'd */
size_t store_domain_mailboxes(const struct domain_info *d,
    enum domain_mode mode, char ***out);
/* store_domain_addresses - every table address of d, sorted, as above */
size_t store_domain_addresses(const struct domain_info *d, char ***out);

/* runs on the worker thread with the domain's history, oldest first */
typedef void (*store_history_render_fn)(const char *domain,
    const struct store_switch_rec *rows, size_t n, struct evbuffer *out,
    void *arg);
/* store_history_scan - read the switch history of domain (also of a
 * removed domain: the history is an audit trail) and render it; refused
 * when the domain is unknown and has no history */
void store_history_scan(const char *domain, store_history_render_fn render,
    void *render_arg, store_done_fn, void *);

/*
 * Pilot addresses (SPEC 10, relayctl address set ADDRESS --route): one
 * address routed by its own mode instead of its domain's. The override
 * lives beside the table entry (its own table, so that address add and
 * import, which replace the entry, keep it) and is dropped with it.
 */
struct store_override {
	char *address;
	enum addr_route route;
};

const char *store_route_name(enum addr_route);
/* store_route_parse - "hosted", "legacy" or "domain"; 0, or -1 */
int store_route_parse(const char *s, enum addr_route *out);
/* store_address_mode - the mode a's mail is routed by now: a's override,
 * else d's mode (a may be NULL: not in the table) */
enum domain_mode store_address_mode(const struct domain_info *d,
    const struct addr_info *a);
/* store_domain_overrides - d's pilot addresses sorted by address; free
 * with store_overrides_free */
size_t store_domain_overrides(const struct domain_info *d,
    struct store_override **out);
void store_overrides_free(struct store_override *, size_t n);
/* store_address_set_route - set (or with ADDR_ROUTE_DOMAIN drop) the
 * override of a table address and append a history row (uid, note) in one
 * transaction; refused when the address is not in the table.
 * res->outcome STORE_UPDATED or STORE_UNCHANGED, res->from_route the
 * override before. */
void store_address_set_route(const char *address, enum addr_route route,
    uid_t uid, const char *note, store_done_fn, void *);

/*
 * The MX watch (SPEC 10, mxwatch.h): what was last seen of each domain's
 * MX records, kept so that the propagation time survives a restart.
 */
enum mx_picture {
	MX_UNKNOWN = 0,			/* never looked, or only DNS trouble */
	MX_OTHER,			/* no record points at us (or no MX) */
	MX_MIXED,			/* some do, some do not */
	MX_OURS,			/* every record points at server.mx_names */
};

struct store_mx {
	enum mx_picture picture;
	time_t checked;			/* last answer */
	time_t since;			/* MX_OURS: first seen so, else 0 */
	long prev_ttl;			/* MX_OURS: the TTL published before
					 * since; -1 unknown (never seen other) */
	long other_ttl;			/* the largest TTL seen while not ours */
};

const char *store_mx_picture_name(enum mx_picture);
/* store_mx_picture_parse - a picture's name; MX_UNKNOWN for another */
enum mx_picture store_mx_picture_parse(const char *s);
/* store_domain_mx - the domain's last MX picture (zeroes: never looked) */
const struct store_mx *store_domain_mx(const struct domain_info *d);
/* store_mx_record - keep the domain's MX picture; when it changed, a
 * history row (STORE_EV_MX, from, to, note) in the same transaction
 * (not for a first look finding no record of ours: no news). Every host
 * of a fleet watches, and the picture is the fleet's: the write is
 * conditional on the stored picture still being from, so that when
 * several hosts see the same change only the first records it (and its
 * time); the others get res->outcome STORE_UNCHANGED and the stored
 * picture through the change log. */
void store_mx_record(const char *domain, const struct store_mx *mx,
    enum mx_picture from, const char *note, store_done_fn, void *);

/*
 * Recipient verification at the old server (SPEC 10, verify.h): the
 * domain's flag, and the addresses the old server accepted (the positive
 * cache, kept so that relayctl address learn can add them to the table).
 */
struct store_verified {
	char *address;
	time_t verified;		/* when the old server accepted it */
	time_t expires;			/* the cache entry's end */
};

/* store_domain_set_verify - the domain's --verify-legacy flag */
void store_domain_set_verify(const char *domain, int on, store_done_fn, void *);
/* store_verified_put - keep address as accepted by the old server */
void store_verified_put(const char *address, time_t verified, time_t expires,
    store_done_fn, void *);
/* store_verified_get - the unexpired entry of a (canonical) address at
 * now, or NULL */
const struct store_verified *store_verified_get(const char *address, time_t now);
/* store_domain_verified - d's entries sorted by address (expired ones
 * too); free with store_verified_free */
size_t store_domain_verified(const struct domain_info *d,
    struct store_verified **out);
void store_verified_free(struct store_verified *, size_t n);

/*
 * A shared database (PostgreSQL): what other hosts changed, as fleet.c
 * reads it from change_log and the tables, applied on the loop thread.
 */
enum store_change_kind { STORE_CH_DOMAIN, STORE_CH_ADDRESS };

struct store_change {
	enum store_change_kind kind;
	long long version;		/* its change_log id */
	char *key;			/* domain name or address */
	int present;			/* 0: it is gone */
	/* STORE_CH_DOMAIN */
	enum domain_mode mode;
	time_t created;
	struct legacy_server *servers;
	int nservers;
	int has_sched;
	struct store_sched sched;
	int verify_legacy;
	struct store_mx mx;		/* the MX watch's picture (zeroes: none) */
	/* STORE_CH_ADDRESS: the table entry (its pilot route in addr->route)
	 * and, apart from it, the old server's verification of the address */
	struct addr_info *addr;
	int has_verified;
	struct store_verified verified;	/* address: not set (key) */
};
#define STORE_APPLIED_MODE	0x1	/* the domain's mode changed */
#define STORE_APPLIED_SCHED	0x2	/* its scheduled switch changed */
#define STORE_APPLIED_ROUTE	0x4	/* an address's pilot route changed */

/* store_apply_change - make the index show c (its servers and addr are
 * taken over); returns STORE_APPLIED_* flags */
int store_apply_change(struct store_change *c);
void store_change_clear(struct store_change *c);
/* store_loaded_head - the change_log id the index was loaded at */
long long store_loaded_head(void);
/* store_origin - this process's name in change_log */
const char *store_origin(void);

/* addr_info helpers */
struct addr_info *store_addr_dup(const struct addr_info *);
/* store_addr_from_columns - from the table's columns: kind "mailbox" or
 * "alias", destinations and cc as "a,b,c" */
struct addr_info *store_addr_from_columns(const char *address,
    const char *kind, const char *dests, const char *cc, int nofilter);
void store_addr_free(struct addr_info *);
int store_addr_equal(const struct addr_info *, const struct addr_info *);
/* store_server_format - "host:port" ("[v6]:port") into buf */
void store_server_format(const struct legacy_server *, char *buf, size_t len);

#endif
