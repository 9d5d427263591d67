/* store.c - domains, legacy servers, addresses and switch history
 *
 * The database (store_sql.c over SQLite or PostgreSQL) is the durable
 * truth. At start-up everything is loaded into an in-memory index (a dict
 * of domains, each with a dict of its addresses), which answers RCPT
 * lookups on the event loop without touching the database. Every write
 * and every scan runs as a job on the store's single worker thread, which
 * owns the connection, so that no disk or network wait ever blocks the
 * loop. When a job has committed, its
 * completion is queued on the loop thread and applied to the index in
 * submission order; a large import is applied STORE_APPLY_SLICE entries
 * per loop turn, so SMTP sessions keep being served meanwhile, and its
 * caller hears back only when the last slice is in. Changes other hosts
 * of a shared database made come from fleet.c (store_apply_change).
 */
#include "autoconf.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <event2/buffer.h>
#include <event2/event.h>

#include "dict.h"
#include "log.h"
#include "smtp_parse.h"
#include "store.h"
#include "store_backend.h"
#include "store_priv.h"
#include "table_import.h"
#include "util.h"
#include "worker.h"

#define STORE_DIR_MODE		0750
#define STORE_KEY_MAX		(SMTP_LOCAL_MAX * 4 + SMTP_DOMAIN_MAX + 2)

static struct {
	struct event_base *base;
	struct worker *worker;
	struct dict *domains;		/* name -> struct domain_entry */
	struct event *apply_ev;
	struct store_op *head, *tail;	/* completed jobs, to apply in order */
	int closing;
	char desc[DB_DESC_MAX];		/* the database, for the start line */
	long long head_id;		/* change_log head at the load */
} st;

/* Index (loop thread) */

const struct domain_info *
store_domain(const char *domain)
{
	char key[SMTP_DOMAIN_MAX + 1];
	struct domain_entry *d;

	if (st.domains == NULL || mx_strlcpy(key, domain, sizeof(key)) >= sizeof(key))
		return NULL;
	d = dict_get(st.domains, mx_lower(key));
	return d ? &d->info : NULL;
}

const struct addr_info *
store_address(const char *addr, char delim)
{
	char key[STORE_KEY_MAX];
	const char *at = strrchr(addr, '@'), *cut;
	struct domain_entry *d;
	const struct addr_info *a;
	size_t llen;

	if (at == NULL || (d = (struct domain_entry *)store_domain(at + 1)) == NULL)
		return NULL;
	llen = (size_t)(at - addr);
	if (llen + strlen(d->info.name) + 2 > sizeof(key))
		return NULL;
	snprintf(key, sizeof(key), "%.*s@%s", (int)llen, addr, d->info.name);
	if ((a = dict_get(d->addrs, mx_lower(key))) != NULL)
		return a;
	/* joe+tag@d falls back to joe@d; the base must not be empty. A quoted
	 * local part is one string: no tag in it. */
	if (delim == '\0' || addr[0] == '"' ||
	    (cut = memchr(addr, delim, llen)) == NULL || cut == addr)
		return NULL;
	snprintf(key, sizeof(key), "%.*s@%s", (int)(cut - addr), addr,
	    d->info.name);
	return dict_get(d->addrs, mx_lower(key));
}

struct count_arg {
	enum domain_mode mode;
	int n;
};

static int
count_cb(const char *key, void *val, void *arg)
{
	struct count_arg *c = arg;

	if (((struct domain_entry *)val)->info.mode == c->mode)
		c->n++;
	return 0;
}

int
store_count_domains(enum domain_mode mode)
{
	struct count_arg c = { mode, 0 };

	if (st.domains)
		dict_walk(st.domains, count_cb, &c);
	return c.n;
}

struct list_arg {
	const struct domain_info **v;
	size_t n;
};

static int
list_cb(const char *key, void *val, void *arg)
{
	struct list_arg *l = arg;

	l->v[l->n++] = &((struct domain_entry *)val)->info;
	return 0;
}

static int
domain_cmp(const void *a, const void *b)
{
	const struct domain_info *const *x = a, *const *y = b;

	return strcmp((*x)->name, (*y)->name);
}

size_t
store_domain_list(const struct domain_info ***out)
{
	struct list_arg l;

	l.v = xcalloc(st.domains ? dict_count(st.domains) + 1 : 1, sizeof(*l.v));
	l.n = 0;
	if (st.domains)
		dict_walk(st.domains, list_cb, &l);
	qsort(l.v, l.n, sizeof(*l.v), domain_cmp);
	*out = l.v;
	return l.n;
}

time_t
store_domain_created(const struct domain_info *d)
{
	return ((const struct domain_entry *)d)->created;
}

size_t
store_domain_naddresses(const struct domain_info *d)
{
	return dict_count(((const struct domain_entry *)d)->addrs);
}

/* Applying completed jobs to the index (loop thread) */

static void
changes_free(struct store_op *op)
{
	for (size_t i = op->napplied; i < op->nchanges; i++)
		store_addr_free(op->changes[i]);
	free(op->changes);
	op->changes = NULL;
	op->nchanges = op->napplied = 0;
}

static void
op_free(struct store_op *op)
{
	changes_free(op);
	store_addr_free(op->addr);
	free(op->servers);
	free(op->name);
	free(op->note);
	if (op->res.body)
		evbuffer_free(op->res.body);
	free(op);
}

/* domain_settings_set - a domain's cutover safety-net settings (dual,
 * hold, max_lifetime, unknown) and past holds, as committed here or, in a
 * fleet, by another host */
static void
domain_settings_set(struct domain_entry *d, const struct domain_info *s,
    const struct store_hold *holds, int nholds)
{
	d->info.dual = s->dual;
	d->info.hold = s->hold;
	d->info.hold_since = s->hold_since;
	d->info.max_lifetime = s->max_lifetime;
	d->info.unknown = s->unknown;
	memcpy(d->holds, holds, sizeof(d->holds));
	d->nholds = nholds;
}

static struct domain_entry *
apply_domain(const char *name)
{
	struct domain_entry *d = dict_get(st.domains, name);

	if (d == NULL)
		log_warnx("store index: domain %s missing while applying a change",
		    name);
	return d;
}

/* apply_addr - put a (taken over) into its domain's table; a pilot's
 * override is not part of the definition and stays */
static void
apply_addr(struct addr_info *a)
{
	struct domain_entry *d = apply_domain(import_address_domain(a->address));
	const struct addr_info *old;

	if (d == NULL) {
		store_addr_free(a);
		return;
	}
	if ((old = dict_get(d->addrs, a->address)) != NULL)
		a->route = old->route;
	store_addr_free(dict_put(d->addrs, a->address, a));
}

/* apply_route - a committed pilot override */
static void
apply_route(struct store_op *op)
{
	struct domain_entry *d = apply_domain(import_address_domain(op->name));
	struct addr_info *a = d ? dict_get(d->addrs, op->name) : NULL;

	if (a != NULL)
		a->route = op->route;
}

/* verified_set - the old server's verification of address in d (v NULL:
 * none) */
static void
verified_set(struct domain_entry *d, const char *address,
    const struct store_verified *v)
{
	struct store_verified *c;

	if (v == NULL) {
		store_verified_entry_free(dict_del(d->verified, address));
		return;
	}
	c = xcalloc(1, sizeof(*c));
	*c = *v;
	c->address = xstrdup(address);
	store_verified_entry_free(dict_put(d->verified, c->address, c));
}

/* apply_mode - a committed mode change (and/or a fired schedule) */
static void
apply_mode(struct store_op *op)
{
	struct domain_entry *d = apply_domain(op->name);

	if (d == NULL)
		return;
	/* count -1: another host of the fleet fired this schedule first */
	if (op->applied && op->res.count != -1)
		d->info.mode = op->mode;
	/* only the schedule that fired: a newer one stays */
	if (op->sched_fire && d->has_sched && d->sched.at == op->sched.at)
		d->has_sched = 0;
}

/* apply_op - make the index show a committed change. Returns the number of
 * entries applied; *more is set when an import has slices left. */
static size_t
apply_op(struct store_op *op, size_t budget, int *more)
{
	struct domain_entry *d;
	size_t n = 0;

	*more = 0;
	if (op->res.status != 0)
		return 1;
	switch (op->type) {
	case OP_DOMAIN_ADD:
		d = store_entry_new(op->name, op->mode, op->created);
		d->info.servers = op->servers;
		d->info.nservers = op->nservers;
		op->servers = NULL;
		store_entry_free(dict_put(st.domains, op->name, d));
		return 1;
	case OP_DOMAIN_SERVERS:
		if ((d = apply_domain(op->name)) != NULL) {
			free(d->info.servers);
			d->info.servers = op->servers;
			d->info.nservers = op->nservers;
			op->servers = NULL;
		}
		return 1;
	case OP_DOMAIN_REMOVE:
		d = dict_del(st.domains, op->name);
		n = d ? dict_count(d->addrs) : 0;
		store_entry_free(d);
		return n + 1;
	case OP_ADDR_PUT:
		if (op->res.outcome != STORE_UNCHANGED) {
			apply_addr(op->addr);
			op->addr = NULL;
		}
		return 1;
	case OP_ADDR_REMOVE:
		if ((d = apply_domain(import_address_domain(op->name))) != NULL)
			store_addr_free(dict_del(d->addrs, op->name));
		return 1;
	case OP_IMPORT:
		while (op->napplied < op->nchanges && n < budget) {
			apply_addr(op->changes[op->napplied++]);
			n++;
		}
		*more = op->napplied < op->nchanges;
		return n + 1;
	case OP_SCAN:
	case OP_HISTORY:
		return 1;
	case OP_DOMAIN_MODE:
		apply_mode(op);
		return 1;
	case OP_SCHED_SET:
		if ((d = apply_domain(op->name)) != NULL) {
			d->has_sched = 1;
			d->sched = op->sched;
		}
		return 1;
	case OP_SCHED_CANCEL:
		if ((d = apply_domain(op->name)) != NULL)
			d->has_sched = 0;
		return 1;
	case OP_SCHED_CLAIM:
		return 1;
	case OP_ADDR_ROUTE:
		apply_route(op);
		return 1;
	case OP_MX_RECORD:
		/* unchanged: another host of the fleet recorded it first, and
		 * its picture comes through the change log */
		if (op->res.outcome != STORE_UNCHANGED &&
		    (d = apply_domain(op->name)) != NULL)
			d->mx = op->mx;
		return 1;
	case OP_DOMAIN_VERIFY:
		if ((d = apply_domain(op->name)) != NULL)
			d->info.verify_legacy = op->flag;
		return 1;
	case OP_VERIFIED_PUT:
		if ((d = apply_domain(import_address_domain(op->name))) != NULL)
			verified_set(d, op->name, &op->verified);
		return 1;
	case OP_DOMAIN_SETTINGS:
		if ((d = apply_domain(op->name)) != NULL) {
			domain_settings_set(d, &op->now, op->holds, op->nholds);
		}
		return 1;
	}
	return 1;
}

/* apply_pump - apply queued completions within budget entries, answer
 * their callers, and come back next loop turn if anything is left */
static void
apply_pump(size_t budget)
{
	struct store_op *op;
	size_t used = 0;
	int more;

	while ((op = st.head) != NULL && used < budget) {
		used += apply_op(op, budget - used, &more);
		if (more)
			break;
		st.head = op->next;
		if (st.head == NULL)
			st.tail = NULL;
		if (op->done)
			op->done(&op->res, op->arg);
		op_free(op);
	}
	if (st.head != NULL && st.apply_ev != NULL) {
		/* a zero timeout: the loop polls its sockets before we go on */
		struct timeval now = { 0, 0 };
		evtimer_add(st.apply_ev, &now);
	}
}

static void
apply_event(evutil_socket_t fd, short ev, void *arg)
{
	apply_pump(STORE_APPLY_SLICE);
}

/* op_done - loop thread: the job has committed (or failed) */
static void
op_done(void *arg)
{
	struct store_op *op = arg;

	op->next = NULL;
	if (st.tail)
		st.tail->next = op;
	else
		st.head = op;
	st.tail = op;
	/* an earlier import still being applied keeps the order */
	if (st.head == op)
		apply_pump(st.closing ? SIZE_MAX : STORE_APPLY_SLICE);
}

static struct store_op *
op_new(enum op_type type, store_done_fn done, void *arg)
{
	struct store_op *op = xcalloc(1, sizeof(*op));

	op->type = type;
	op->done = done;
	op->arg = arg;
	op->res.body = evbuffer_new();
	if (op->res.body == NULL)
		fatalx("store: evbuffer_new failed");
	return op;
}

static void
op_submit(struct store_op *op)
{
	if (st.worker == NULL || st.closing) {
		op->res.status = 1;
		snprintf(op->res.msg, sizeof(op->res.msg),
		    "state store is not open");
		if (op->done)
			op->done(&op->res, op->arg);
		op_free(op);
		return;
	}
	worker_submit(st.worker, store_sql_job, op_done, op);
}

static struct legacy_server *
servers_dup(const struct legacy_server *s, int n)
{
	struct legacy_server *c = xcalloc((size_t)n + 1, sizeof(*c));

	if (n > 0)
		memcpy(c, s, (size_t)n * sizeof(*c));
	return c;
}

/* Changes of other hosts (fleet.c, loop thread) */

void
store_change_clear(struct store_change *c)
{
	free(c->key);
	free(c->servers);
	store_addr_free(c->addr);
	memset(c, 0, sizeof(*c));
}

/* change_domain - the domain as the database has it now */
static int
change_domain(struct store_change *c)
{
	struct domain_entry *d = dict_get(st.domains, c->key);
	int flags = 0;

	if (!c->present) {
		if (d != NULL)
			flags = STORE_APPLIED_MODE | STORE_APPLIED_SCHED;
		store_entry_free(dict_del(st.domains, c->key));
		return flags;
	}
	/* removed and added again: its old addresses went with it */
	if (d != NULL && d->created != c->created) {
		store_entry_free(dict_del(st.domains, c->key));
		d = NULL;
	}
	if (d == NULL) {
		d = store_entry_new(c->key, c->mode, c->created);
		dict_put(st.domains, c->key, d);
		flags |= STORE_APPLIED_MODE;
	}
	if (d->info.mode != c->mode)
		flags |= STORE_APPLIED_MODE;
	d->info.mode = c->mode;
	free(d->info.servers);
	d->info.servers = c->servers;
	d->info.nservers = c->nservers;
	c->servers = NULL;
	if (d->has_sched != c->has_sched || (c->has_sched &&
	    memcmp(&d->sched, &c->sched, sizeof(d->sched)) != 0))
		flags |= STORE_APPLIED_SCHED;
	d->has_sched = c->has_sched;
	d->sched = c->sched;
	d->info.verify_legacy = c->verify_legacy;
	d->mx = c->mx;
	/* the cutover safety net: a hold released or dual delivery turned on
	 * elsewhere makes the domain's mail due here too */
	if (d->info.hold && !c->settings.hold)
		flags |= STORE_APPLIED_RELEASE;
	if (!d->info.dual && c->settings.dual)
		flags |= STORE_APPLIED_RELEASE;
	domain_settings_set(d, &c->settings, c->holds, c->nholds);
	return flags;
}

int
store_apply_change(struct store_change *c)
{
	struct domain_entry *d;
	const struct addr_info *old;
	int flags = 0;

	if (c->kind == STORE_CH_DOMAIN)
		return change_domain(c);
	if ((d = dict_get(st.domains, import_address_domain(c->key))) == NULL)
		return 0;	/* its domain is gone too (a later change) */
	old = dict_get(d->addrs, c->key);
	if (c->present && c->addr != NULL) {
		if ((old ? old->route : ADDR_ROUTE_DOMAIN) != c->addr->route)
			flags |= STORE_APPLIED_ROUTE;
		store_addr_free(dict_put(d->addrs, c->addr->address, c->addr));
		c->addr = NULL;
	} else {
		if (old != NULL && old->route != ADDR_ROUTE_DOMAIN)
			flags |= STORE_APPLIED_ROUTE;
		store_addr_free(dict_del(d->addrs, c->key));
	}
	verified_set(d, c->key, c->has_verified ? &c->verified : NULL);
	return flags;
}

long long
store_loaded_head(void)
{
	return st.head_id;
}

const char *
store_origin(void)
{
	return store_sql_origin();
}

/* Public writes */

void
store_domain_add(const char *name, enum domain_mode mode,
    const struct legacy_server *servers, int nservers, store_done_fn done,
    void *arg)
{
	struct store_op *op = op_new(OP_DOMAIN_ADD, done, arg);

	op->name = mx_lower(xstrdup(name));
	op->mode = mode;
	op->created = time(NULL);
	op->servers = servers_dup(servers, nservers);
	op->nservers = nservers;
	op_submit(op);
}

void
store_domain_set_servers(const char *name, const struct legacy_server *servers,
    int nservers, store_done_fn done, void *arg)
{
	struct store_op *op = op_new(OP_DOMAIN_SERVERS, done, arg);

	op->name = mx_lower(xstrdup(name));
	op->servers = servers_dup(servers, nservers);
	op->nservers = nservers;
	op_submit(op);
}

void
store_domain_remove(const char *name, store_done_fn done, void *arg)
{
	struct store_op *op = op_new(OP_DOMAIN_REMOVE, done, arg);

	op->name = mx_lower(xstrdup(name));
	op_submit(op);
}

void
store_address_put(const struct addr_info *a, store_done_fn done, void *arg)
{
	struct store_op *op = op_new(OP_ADDR_PUT, done, arg);

	op->addr = store_addr_dup(a);
	mx_lower(op->addr->address);
	op_submit(op);
}

void
store_address_remove(const char *address, store_done_fn done, void *arg)
{
	struct store_op *op = op_new(OP_ADDR_REMOVE, done, arg);

	op->name = mx_lower(xstrdup(address));
	op_submit(op);
}

void
store_import(const struct store_import_params *p, store_done_fn done, void *arg)
{
	struct store_op *op = op_new(OP_IMPORT, done, arg);

	op->imp = *p;
	op->name = mx_lower(xstrdup(p->domain));
	op->imp.domain = op->name;
	op_submit(op);
}

void
store_address_scan(const char *domain, store_scan_render_fn render,
    void *render_arg, store_done_fn done, void *arg)
{
	struct store_op *op = op_new(OP_SCAN, done, arg);

	op->name = mx_lower(xstrdup(domain));
	op->scan_render = render;
	op->render_arg = render_arg;
	op_submit(op);
}

/* The switch */

void
store_domain_set_mode(const char *domain, enum domain_mode mode, uid_t uid,
    const char *note, store_done_fn done, void *arg)
{
	struct store_op *op = op_new(OP_DOMAIN_MODE, done, arg);

	op->name = mx_lower(xstrdup(domain));
	op->mode = mode;
	op->uid = uid;
	op->note = xstrndup(note ? note : "", STORE_NOTE_MAX);
	op->applied = 1;
	op_submit(op);
}

void
store_schedule_fire(const char *domain, time_t at, enum domain_mode mode,
    uid_t uid, int applied, const char *note, store_done_fn done, void *arg)
{
	struct store_op *op = op_new(OP_DOMAIN_MODE, done, arg);

	op->name = mx_lower(xstrdup(domain));
	op->mode = mode;
	op->uid = uid;
	op->note = xstrndup(note ? note : "", STORE_NOTE_MAX);
	op->applied = applied;
	op->sched_fire = 1;
	op->sched.at = at;
	op_submit(op);
}

void
store_schedule_set(const char *domain, const struct store_sched *sc,
    store_done_fn done, void *arg)
{
	struct store_op *op = op_new(OP_SCHED_SET, done, arg);

	op->name = mx_lower(xstrdup(domain));
	op->sched = *sc;
	op_submit(op);
}

void
store_schedule_cancel(const char *domain, store_done_fn done, void *arg)
{
	struct store_op *op = op_new(OP_SCHED_CANCEL, done, arg);

	op->name = mx_lower(xstrdup(domain));
	op_submit(op);
}

void
store_schedule_claim(const char *domain, time_t at, store_done_fn done,
    void *arg)
{
	struct store_op *op = op_new(OP_SCHED_CLAIM, done, arg);

	op->name = mx_lower(xstrdup(domain));
	op->sched.at = at;
	op_submit(op);
}

void
store_history_scan(const char *domain, store_history_render_fn render,
    void *render_arg, store_done_fn done, void *arg)
{
	struct store_op *op = op_new(OP_HISTORY, done, arg);

	op->name = mx_lower(xstrdup(domain));
	op->history_render = render;
	op->render_arg = render_arg;
	op_submit(op);
}

const struct store_sched *
store_domain_sched(const struct domain_info *d)
{
	const struct domain_entry *e = (const struct domain_entry *)d;

	return e->has_sched ? &e->sched : NULL;
}

struct mbox_arg {
	char **v;
	size_t n;
	struct domain_info as;		/* the domain in the mode asked */
	int all;			/* every address */
};

static int
mbox_cb(const char *key, void *val, void *arg)
{
	struct mbox_arg *m = arg;
	const struct addr_info *a = val;

	if (m->all || (a->kind == ADDR_MAILBOX &&
	    store_address_mode(&m->as, a) == MODE_HOSTED))
		m->v[m->n++] = xstrdup(key);
	return 0;
}

static int
str_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static size_t
domain_addresses(const struct domain_info *d, enum domain_mode mode, int all,
    char ***out)
{
	const struct domain_entry *e = (const struct domain_entry *)d;
	struct mbox_arg m;

	m.all = all;
	m.as = *d;
	m.as.mode = mode;
	m.v = xcalloc(dict_count(e->addrs) + 1, sizeof(char *));
	m.n = 0;
	dict_walk(e->addrs, mbox_cb, &m);
	if (m.n > 1)
		qsort(m.v, m.n, sizeof(*m.v), str_cmp);
	*out = m.v;
	return m.n;
}

/* Pilot addresses */

struct override_arg {
	struct store_override *v;
	size_t n;
};

static int
override_cb(const char *key, void *val, void *arg)
{
	struct override_arg *o = arg;
	const struct addr_info *a = val;

	if (a->route != ADDR_ROUTE_DOMAIN) {
		o->v[o->n].address = xstrdup(key);
		o->v[o->n++].route = a->route;
	}
	return 0;
}

static int
override_cmp(const void *a, const void *b)
{
	return strcmp(((const struct store_override *)a)->address,
	    ((const struct store_override *)b)->address);
}

size_t
store_domain_overrides(const struct domain_info *d, struct store_override **out)
{
	const struct domain_entry *e = (const struct domain_entry *)d;
	struct override_arg o;

	o.v = xcalloc(dict_count(e->addrs) + 1, sizeof(*o.v));
	o.n = 0;
	dict_walk(e->addrs, override_cb, &o);
	if (o.n > 1)
		qsort(o.v, o.n, sizeof(*o.v), override_cmp);
	*out = o.v;
	return o.n;
}

void
store_overrides_free(struct store_override *v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(v[i].address);
	free(v);
}

void
store_address_set_route(const char *address, enum addr_route route, uid_t uid,
    const char *note, store_done_fn done, void *arg)
{
	struct store_op *op = op_new(OP_ADDR_ROUTE, done, arg);

	op->name = mx_lower(xstrdup(address));
	op->route = route;
	op->uid = uid;
	op->note = xstrndup(note ? note : "", STORE_NOTE_MAX);
	op_submit(op);
}

/* The MX watch */

const struct store_mx *
store_domain_mx(const struct domain_info *d)
{
	return &((const struct domain_entry *)d)->mx;
}

void
store_mx_record(const char *domain, const struct store_mx *mx,
    enum mx_picture from, const char *note, store_done_fn done, void *arg)
{
	struct store_op *op = op_new(OP_MX_RECORD, done, arg);

	op->name = mx_lower(xstrdup(domain));
	op->mx = *mx;
	op->from_picture = from;
	op->note = xstrndup(note ? note : "", STORE_NOTE_MAX);
	op_submit(op);
}

size_t
store_domain_mailboxes(const struct domain_info *d, enum domain_mode mode,
    char ***out)
{
	return domain_addresses(d, mode, 0, out);
}

size_t
store_domain_addresses(const struct domain_info *d, char ***out)
{
	return domain_addresses(d, d->mode, 1, out);
}

/* Recipient verification */

void
store_domain_set_verify(const char *domain, int on, store_done_fn done,
    void *arg)
{
	struct store_op *op = op_new(OP_DOMAIN_VERIFY, done, arg);

	op->name = mx_lower(xstrdup(domain));
	op->flag = on != 0;
	op_submit(op);
}

void
store_verified_put(const char *address, time_t verified, time_t expires,
    store_done_fn done, void *arg)
{
	struct store_op *op = op_new(OP_VERIFIED_PUT, done, arg);

	op->name = xstrdup(address);
	op->verified.verified = verified;
	op->verified.expires = expires;
	op_submit(op);
}

const struct store_verified *
store_verified_get(const char *address, time_t now)
{
	const char *at = strrchr(address, '@');
	struct domain_entry *d;
	const struct store_verified *v;

	if (at == NULL ||
	    (d = (struct domain_entry *)store_domain(at + 1)) == NULL)
		return NULL;
	v = dict_get(d->verified, address);
	return v && v->expires > now ? v : NULL;
}

struct verified_arg {
	struct store_verified *v;
	size_t n;
};

static int
verified_cb(const char *key, void *val, void *arg)
{
	struct verified_arg *va = arg;
	const struct store_verified *v = val;

	va->v[va->n] = *v;
	va->v[va->n++].address = xstrdup(v->address);
	return 0;
}

static int
verified_cmp(const void *a, const void *b)
{
	return strcmp(((const struct store_verified *)a)->address,
	    ((const struct store_verified *)b)->address);
}

size_t
store_domain_verified(const struct domain_info *d, struct store_verified **out)
{
	const struct domain_entry *e = (const struct domain_entry *)d;
	struct verified_arg va;

	va.v = xcalloc(dict_count(e->verified) + 1, sizeof(*va.v));
	va.n = 0;
	dict_walk(e->verified, verified_cb, &va);
	if (va.n > 1)
		qsort(va.v, va.n, sizeof(*va.v), verified_cmp);
	*out = va.v;
	return va.n;
}

void
store_verified_free(struct store_verified *v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(v[i].address);
	free(v);
}

int
store_open(struct event_base *base, const struct config *cfg, char *err,
    size_t errlen)
{
	size_t naddr = 0;

	if (cfg->state_backend == STATE_SQLITE &&
	    mkdir(cfg->state, STORE_DIR_MODE) == -1 && errno != EEXIST) {
		snprintf(err, errlen, "%s: %s", cfg->state, strerror(errno));
		return -1;
	}
	memset(&st, 0, sizeof(st));
	st.base = base;
	st.domains = dict_new();
	if (store_sql_open(cfg, st.desc, sizeof(st.desc), err, errlen) == -1)
		goto fail;
	/* the log's head before the load: a host of a fleet replays what
	 * was committed meanwhile (the changes are idempotent) */
	st.head_id = store_sql_head();
	if (store_sql_load(st.domains, &naddr, err, errlen) == -1)
		goto fail;
	st.apply_ev = evtimer_new(base, apply_event, NULL);
	if (st.apply_ev == NULL) {
		snprintf(err, errlen, "store: evtimer_new failed");
		goto fail;
	}
	/* from here on only the worker touches the database */
	st.worker = worker_new(base, "store");
	log_info("store opened backend=%s database=\"%s\" domains=%zu "
	    "addresses=%zu", store_sql_backend(), st.desc,
	    dict_count(st.domains), naddr);
	return 0;
fail:
	store_close();
	return -1;
}

const char *
store_backend_name(void)
{
	return store_sql_backend();
}

const char *
store_database(void)
{
	return st.desc;
}

void
store_close(void)
{
	st.closing = 1;
	if (st.worker) {
		/* runs what is queued; completions land in the apply queue */
		worker_free(st.worker);
		st.worker = NULL;
	}
	apply_pump(SIZE_MAX);
	if (st.apply_ev)
		event_free(st.apply_ev);
	st.apply_ev = NULL;
	store_sql_close();
	dict_free(st.domains, store_entry_free);
	st.domains = NULL;
	st.closing = 0;
}

/* The cutover safety net */

const char *
store_unknown_name(enum unknown_reply u)
{
	return u == UNKNOWN_TEMPFAIL ? "tempfail" : "reject";
}

void
store_domain_settings(const char *domain, const struct store_settings *set,
    uid_t uid, store_done_fn done, void *arg)
{
	struct store_op *op = op_new(OP_DOMAIN_SETTINGS, done, arg);

	op->name = mx_lower(xstrdup(domain));
	op->settings = *set;
	op->uid = uid;
	op_submit(op);
}

/* overlap - seconds that [a0, a1] and [b0, b1] share */
static long
overlap(time_t a0, time_t a1, time_t b0, time_t b1)
{
	time_t lo = a0 > b0 ? a0 : b0, hi = a1 < b1 ? a1 : b1;

	return hi > lo ? (long)(hi - lo) : 0;
}

long
store_domain_held(const struct domain_info *info, time_t from, time_t to)
{
	const struct domain_entry *d = (const struct domain_entry *)info;
	long held = 0;

	for (int i = 0; i < d->nholds; i++)
		held += overlap(from, to, d->holds[i].start, d->holds[i].end);
	if (info->hold)
		held += overlap(from, to, info->hold_since, to);
	return held;
}

void
store_holds_format(const struct store_hold *h, int n, char *buf, size_t len)
{
	size_t off = 0;

	buf[0] = '\0';
	for (int i = 0; i < n && off < len; i++)
		off += (size_t)snprintf(buf + off, len - off, "%s%lld-%lld",
		    i ? "," : "", (long long)h[i].start, (long long)h[i].end);
}

int
store_holds_parse(const char *s, struct store_hold *h)
{
	long long a, b;
	int n = 0, used;

	while (n < STORE_HOLDS_MAX && s && sscanf(s, "%lld-%lld%n", &a, &b,
	    &used) == 2) {
		h[n].start = (time_t)a;
		h[n].end = (time_t)b;
		n++;
		s += used;
		if (*s != ',')
			break;
		s++;
	}
	return n;
}
