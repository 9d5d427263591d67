/* mxwatch.c - the MX watch (SPEC 10; see mxwatch.h)
 *
 * A look is a small state machine of DNS questions, all on the loop:
 *
 *   LOOK_START -> resolver MX + NS of the domain (walking up to the zone
 *   apex on NODATA) -> each NS host's address -> MX asked of each one
 *   -> LOOK_DONE: the picture, a store write when it changed, callers.
 *
 * A timer starts the looks of domains whose last one is older than
 * switch.mx_watch_interval, at most MXW_MAX_LOOKS at once.
 */
#include "autoconf.h"

#include <arpa/inet.h>
#include <arpa/nameser.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dict.h"
#include "log.h"
#include "mxwatch.h"
#include "switch.h"
#include "util.h"

struct mxw_waiter {
	mxwatch_fn fn;
	void *arg;
	struct mxw_waiter *next;
};

struct look;

/* one question of a look */
struct mxw_q {
	struct look *look;
	int index;			/* auth[index], or -1 */
	struct dns_req *req;
};

struct look {
	struct mxw_dom *dom;
	struct mxw_view view;
	char zone[DNS_NAME_MAX];
	int zone_up;
	int pending;			/* questions out */
	int recording;			/* the store write is under way */
	struct mxw_q resolver_q, ns_q, addr_q[MXW_MAX_NS], auth_q[MXW_MAX_NS];
	struct mxw_waiter *waiters;
};

/* what the watch knows of one domain */
struct mxw_dom {
	char *name;
	time_t looked;			/* last look started */
	struct look *look;		/* under way, or NULL */
};

static struct {
	struct event_base *base;
	const struct config *cfg;
	struct dict *doms;		/* name -> struct mxw_dom */
	struct event *tick;
	int nlooks;
	int closing;
} mw;


/* Pure parts */

time_t
mxwatch_propagation(const struct store_mx *m)
{
	if (m->picture != MX_OURS || m->since == 0)
		return 0;
	return m->since + (time_t)(m->prev_ttl > 0 ? m->prev_ttl : 0);
}

struct store_mx
mxwatch_next(const struct store_mx *m, enum mx_picture p, long ttl, time_t now,
    int *assumed)
{
	struct store_mx n = *m;

	*assumed = 0;
	if (p == MX_UNKNOWN)
		return n;
	n.picture = p;
	n.checked = now;
	if (p != MX_OURS) {
		/* the TTL caches may hold these records for, should they be
		 * replaced by ours next */
		n.since = 0;
		n.prev_ttl = 0;
		n.other_ttl = ttl;
		return n;
	}
	if (m->picture == MX_OURS && m->since != 0)
		return n;
	n.since = now;
	if (m->picture == MX_OTHER || m->picture == MX_MIXED)
		n.prev_ttl = m->other_ttl;
	else {
		/* never seen anything else: what was published before is
		 * unknown; the current TTL is the best guess we have */
		n.prev_ttl = ttl;
		*assumed = 1;
	}
	return n;
}

int
mxwatch_gate(const char *domain, const struct store_mx *m, time_t now,
    char *why, size_t len)
{
	char when[SWITCH_TIME_MAX];
	time_t t;

	if (m->picture != MX_OURS) {
		snprintf(why, len, "the MX records of %s do not all point at "
		    "us (%s%s); relayctl check %s shows them", domain,
		    store_mx_picture_name(m->picture), m->picture == MX_UNKNOWN ?
		    ": not looked at yet, or DNS trouble" : "", domain);
		return -1;
	}
	t = mxwatch_propagation(m);
	if (now >= t)
		return 0;
	snprintf(why, len, "the MX change of %s has not propagated yet: caches "
	    "may hold the old records (TTL %ld s) until %s (in %lld s)", domain,
	    m->prev_ttl, switch_format_time(t, when, sizeof(when)),
	    (long long)(t - now));
	return -1;
}

/* mx_is_ours - is host one of server.mx_names? */
static int
mx_is_ours(const char *host)
{
	for (int i = 0; i < mw.cfg->nmx_names; i++)
		if (strcasecmp(host, mw.cfg->mx_names[i]) == 0)
			return 1;
	return 0;
}

/* answer_fill - the MX records of a into ans */
static void
answer_fill(struct mxw_answer *ans, const struct dns_answer *a)
{
	ans->status = a->status;
	ans->nrecs = 0;
	for (int i = 0; a->status == DNS_OK && i < a->nrr &&
	    ans->nrecs < MXW_MAX_RECS; i++) {
		struct mxw_rec *r = &ans->recs[ans->nrecs++];
		size_t n;

		r->pref = a->rr[i].pref;
		r->ttl = a->rr[i].ttl;
		n = mx_strlcpy(r->host, a->rr[i].host, sizeof(r->host));
		if (n > 0 && n < sizeof(r->host) && r->host[n - 1] == '.')
			r->host[n - 1] = '\0';
		mx_lower(r->host);
		r->ours = mx_is_ours(r->host);
	}
}

/* answer_picture - fold one answer into the picture: *ours / *other
 * counts, *ttl the largest TTL; 0 when the answer tells nothing */
static int
answer_picture(const struct mxw_answer *a, int *ours, int *other, long *ttl)
{
	if (a->status == DNS_NXDOMAIN || a->status == DNS_NODATA) {
		(*other)++;		/* no MX: mail goes to the address */
		return 1;
	}
	if (a->status != DNS_OK)
		return 0;
	for (int i = 0; i < a->nrecs; i++) {
		if (a->recs[i].ours)
			(*ours)++;
		else
			(*other)++;
		if ((long)a->recs[i].ttl > *ttl)
			*ttl = (long)a->recs[i].ttl;
	}
	return 1;
}

/* view_picture - the authoritative answers when any came, else the
 * resolver's (a cache lags behind the zone) */
static enum mx_picture
view_picture(const struct mxw_view *v, long *ttl)
{
	int ours = 0, other = 0, told = 0;

	*ttl = 0;
	for (int i = 0; i < v->nauth; i++)
		told += answer_picture(&v->auth[i], &ours, &other, ttl);
	if (!told)
		told = answer_picture(&v->resolver, &ours, &other, ttl);
	if (!told)
		return MX_UNKNOWN;
	if (other == 0 && ours > 0)
		return MX_OURS;
	return ours == 0 ? MX_OTHER : MX_MIXED;
}

/* Looks */

static void
dom_free(void *p)
{
	struct mxw_dom *d = p;

	free(d->name);
	free(d);
}

static struct mxw_dom *
dom_get(const char *name)
{
	struct mxw_dom *d = dict_get(mw.doms, name);

	if (d == NULL) {
		d = xcalloc(1, sizeof(*d));
		d->name = xstrdup(name);
		dict_put(mw.doms, d->name, d);
	}
	return d;
}

/* look_note - "10 mx.example.net (ttl 300, ours), ..." for the history */
static void
look_note(const struct mxw_view *v, char *buf, size_t len)
{
	const struct mxw_answer *a = v->nauth ? &v->auth[0] : &v->resolver;
	size_t off = 0;

	buf[0] = '\0';
	for (int i = 0; i < a->nrecs && off < len; i++)
		off += (size_t)snprintf(buf + off, len - off, "%s%d %s (ttl %u%s)",
		    i ? ", " : "", a->recs[i].pref, a->recs[i].host,
		    a->recs[i].ttl, a->recs[i].ours ? ", ours" : "");
	if (a->nrecs == 0)
		snprintf(buf, len, "no MX record (%s)", dns_status_name(a->status));
	if (v->prev_ttl_assumed && strlen(buf) + 64 < len)
		strcat(buf, "; previous TTL unknown, the current one assumed");
}

/* look_finish - the callers, then the look goes */
static void
look_finish(struct look *l)
{
	struct mxw_waiter *w, *next;
	struct mxw_dom *d = l->dom;

	/* d is NULL when mxwatch_close let go of a look still recording */
	if (d != NULL) {
		d->look = NULL;
		mw.nlooks--;
	}
	for (w = l->waiters; w; w = next) {
		next = w->next;
		w->fn(&l->view, w->arg);
		free(w);
	}
	free(l);
}

static void
record_done(struct store_result *res, void *arg)
{
	struct look *l = arg;

	if (res->status != 0)
		log_warnx("mxwatch domain=%s not recorded: %s", l->view.domain,
		    res->msg);
	look_finish(l);
}

/* look_done - every answer is in: the picture, kept when it changed */
static void
look_done(struct look *l)
{
	const struct domain_info *di = store_domain(l->view.domain);
	const struct store_mx *was;
	struct store_mx now;
	char note[MXW_NOTE_MAX];
	long ttl;
	enum mx_picture p = view_picture(&l->view, &ttl);

	l->view.time = time(NULL);
	l->view.picture = p;
	if (di == NULL || mw.closing || p == MX_UNKNOWN) {
		if (p == MX_UNKNOWN)
			log_info("mxwatch domain=%s picture=unknown (DNS trouble)",
			    l->view.domain);
		look_finish(l);
		return;
	}
	was = store_domain_mx(di);
	now = mxwatch_next(was, p, ttl, l->view.time, &l->view.prev_ttl_assumed);
	/* the time of the look alone is not worth a write */
	if (now.picture == was->picture && now.since == was->since &&
	    now.prev_ttl == was->prev_ttl && now.other_ttl == was->other_ttl) {
		look_finish(l);
		return;
	}
	look_note(&l->view, note, sizeof(note));
	if (now.picture != was->picture)
		log_info("mxwatch domain=%s picture=%s from=%s records=\"%s\"",
		    l->view.domain, store_mx_picture_name(now.picture),
		    store_mx_picture_name(was->picture), note);
	l->recording = 1;
	store_mx_record(l->view.domain, &now, was->picture, note, record_done, l);
}

static void look_done(struct look *);

/* q_done - one question less; the next step when none is out */
static void
q_done(struct look *l)
{
	if (--l->pending == 0)
		look_done(l);
}

static void
resolver_cb(const struct dns_answer *a, void *arg)
{
	struct mxw_q *q = arg;

	q->req = NULL;
	answer_fill(&q->look->view.resolver, a);
	q_done(q->look);
}

static void
auth_cb(const struct dns_answer *a, void *arg)
{
	struct mxw_q *q = arg;

	q->req = NULL;
	answer_fill(&q->look->view.auth[q->index], a);
	q_done(q->look);
}

static void
addr_cb(enum dns_status st, const struct dns_addr *addrs, int n, void *arg)
{
	struct mxw_q *q = arg;
	struct look *l = q->look;
	struct mxw_answer *ans = &l->view.auth[q->index];

	q->req = NULL;
	if (st != DNS_OK || n == 0 || mw.closing) {
		ans->status = st == DNS_OK ? DNS_NODATA : st;
		q_done(l);
		return;
	}
	inet_ntop(addrs[0].family, &addrs[0].a, ans->addr, sizeof(ans->addr));
	l->auth_q[q->index].look = l;
	l->auth_q[q->index].index = q->index;
	l->pending++;
	l->auth_q[q->index].req = dns_query_at(&addrs[0],
	    mw.cfg->authoritative_port, l->view.domain, ns_t_mx, auth_cb,
	    &l->auth_q[q->index]);
	q_done(l);
}

static void
ns_cb(const struct dns_answer *a, void *arg)
{
	struct mxw_q *q = arg;
	struct look *l = q->look;
	const char *dot;

	q->req = NULL;
	l->view.ns_status = a->status;
	if ((a->status == DNS_NODATA || a->status == DNS_NXDOMAIN) &&
	    l->zone_up < MXW_ZONE_UP && (dot = strchr(l->zone, '.')) != NULL &&
	    strchr(dot + 1, '.') != NULL && !mw.closing) {
		/* not a zone apex: its parent's servers answer for it */
		memmove(l->zone, dot + 1, strlen(dot + 1) + 1);
		l->zone_up++;
		l->pending++;
		q->req = dns_query(l->zone, ns_t_ns, ns_cb, q);
		q_done(l);
		return;
	}
	for (int i = 0; a->status == DNS_OK && i < a->nrr &&
	    l->view.nauth < MXW_MAX_NS && !mw.closing; i++) {
		int k = l->view.nauth++;
		struct mxw_answer *ans = &l->view.auth[k];

		memset(ans, 0, sizeof(*ans));
		ans->status = DNS_TEMPFAIL;
		mx_strlcpy(ans->server, a->rr[i].host, sizeof(ans->server));
		l->addr_q[k].look = l;
		l->addr_q[k].index = k;
		l->pending++;
		l->addr_q[k].req = dns_resolve_addr(ans->server, addr_cb,
		    &l->addr_q[k]);
	}
	q_done(l);
}

static struct look *
look_start(struct mxw_dom *d)
{
	struct look *l = xcalloc(1, sizeof(*l));

	l->dom = d;
	d->look = l;
	d->looked = time(NULL);
	mw.nlooks++;
	mx_strlcpy(l->view.domain, d->name, sizeof(l->view.domain));
	mx_strlcpy(l->zone, d->name, sizeof(l->zone));
	l->view.resolver.status = DNS_TEMPFAIL;
	l->view.ns_status = DNS_TEMPFAIL;
	l->resolver_q.look = l->ns_q.look = l;
	l->resolver_q.index = l->ns_q.index = -1;
	/* both out before either can answer: answers come from the loop */
	l->pending = 2;
	l->resolver_q.req = dns_query(d->name, ns_t_mx, resolver_cb, &l->resolver_q);
	l->ns_q.req = dns_query(l->zone, ns_t_ns, ns_cb, &l->ns_q);
	return l;
}

void
mxwatch_look(const char *domain, mxwatch_fn done, void *arg)
{
	char name[DNS_NAME_MAX];
	struct mxw_dom *d;
	struct mxw_waiter *w = xcalloc(1, sizeof(*w));

	mx_strlcpy(name, domain, sizeof(name));
	mx_lower(name);
	d = dom_get(name);
	w->fn = done;
	w->arg = arg;
	if (d->look == NULL)
		look_start(d);
	w->next = d->look->waiters;
	d->look->waiters = w;
}

/* The timer */

static void
tick_cb(evutil_socket_t fd, short ev, void *arg)
{
	const struct domain_info **v;
	size_t n = store_domain_list(&v);
	time_t now = time(NULL);
	struct timeval tv = { MXW_TICK_SECS, 0 };

	for (size_t i = 0; i < n && mw.nlooks < MXW_MAX_LOOKS; i++) {
		struct mxw_dom *d = dom_get(v[i]->name);
		if (d->look == NULL &&
		    now - d->looked >= (time_t)mw.cfg->mx_watch_interval)
			look_start(d);
	}
	free(v);
	evtimer_add(mw.tick, &tv);
}

int
mxwatch_init(struct event_base *base, const struct config *cfg, char *err,
    size_t errlen)
{
	struct timeval now = { 0, 0 };

	memset(&mw, 0, sizeof(mw));
	mw.base = base;
	mw.cfg = cfg;
	mw.doms = dict_new();
	if ((mw.tick = evtimer_new(base, tick_cb, NULL)) == NULL) {
		snprintf(err, errlen, "mxwatch: evtimer_new failed");
		return -1;
	}
	evtimer_add(mw.tick, &now);
	return 0;
}

void
mxwatch_set_config(const struct config *cfg)
{
	mw.cfg = cfg;
}

/* close_walk - cancel a look's questions and tell its callers */
static int
close_walk(const char *key, void *val, void *arg)
{
	struct mxw_dom *d = val;
	struct look *l = d->look;

	if (l == NULL)
		return 0;
	if (l->recording) {
		/* record_done comes from store_close, after us */
		l->dom = NULL;
		d->look = NULL;
		return 0;
	}
	dns_cancel(l->resolver_q.req);
	dns_cancel(l->ns_q.req);
	for (int i = 0; i < MXW_MAX_NS; i++) {
		dns_cancel(l->addr_q[i].req);
		dns_cancel(l->auth_q[i].req);
	}
	l->view.picture = MX_UNKNOWN;
	look_finish(l);
	return 0;
}

void
mxwatch_close(void)
{
	if (mw.doms == NULL)
		return;
	mw.closing = 1;
	if (mw.tick)
		event_free(mw.tick);
	mw.tick = NULL;
	dict_walk(mw.doms, close_walk, NULL);
	dict_free(mw.doms, dom_free);
	mw.doms = NULL;
}
