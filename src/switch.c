/* switch.c - relayctl switch: preflight, durable switch, queued mail,
 * in-flight deliveries, scheduled switches (SPEC 7)
 *
 * Why the guarantee holds: the store write commits (fsync) on its worker,
 * then its completion sets the mode in the index on the loop thread, and
 * only then does our done run and the answer go out. Every attempt routes
 * from the index (route_for_rcpt), and a job routed before the switch is
 * given up by the mta's may_start hook (route_is_current, right before
 * MAIL FROM) and retried at once on the new route. Nothing is rewritten
 * per message, so the cost does not grow with the queue; the reschedule
 * of deferred recipients is one walk of the in-memory queue.
 *
 * In-flight deliveries to the old route are counted by the queue per
 * recipient domain and route key (queue_inflight), from the moment the
 * may_start hook lets an attempt start until its result is in.
 */
#include "autoconf.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/event.h>

#include "fleet.h"
#include "log.h"
#include "probe.h"
#include "queue.h"
#include "route.h"
#include "smtp_parse.h"
#include "stats.h"
#include "store.h"
#include "mxwatch.h"
#include "switch.h"
#include "util.h"

#define SWITCH_NOTE_LIST_MAX	10	/* refused addresses named in a note */
#define SWITCH_HOLD_SECS	60	/* after a scheduled switch failed to commit */
#define SWITCH_CLAIMED_SECS	2	/* another host of the fleet runs it */

struct switch_op {
	struct switch_op *prev, *next;	/* ops with a probe running */
	char *domain;
	enum domain_mode to;
	uid_t uid;
	int force;
	int fire;			/* a scheduled switch firing */
	time_t fire_at;
	char *note;
	struct probe *probe;
	int preflight;
	uint64_t t0;
	struct switch_route old;
	struct switch_outcome oc;	/* committed, waiting for the fleet */
	switch_done_fn done;
	void *arg;
};

struct switch_wait {
	struct switch_wait *prev, *next;
	struct event *ev;
	struct switch_route old;
	uint64_t t0;
	switch_wait_fn fn;
	void *arg;
};

struct switch_resched {
	struct switch_resched *next;
	struct event *ev;
	char *domain;
};

struct sched_req {
	store_done_fn done;
	void *arg;
};

static struct {
	struct event_base *base;
	const struct config *cfg;
	struct event *timer;		/* next scheduled switch */
	char *firing;			/* domain of the scheduled switch running */
	time_t hold_until;		/* no due switch fires before (store trouble) */
	struct switch_op *ops;		/* probing */
	struct switch_wait *waits;
	struct switch_resched *rescheds;	/* waiting for the next loop turn */
	int closing;
} sw;

static void switch_arm(void);

/* Time */

const char *
switch_format_time(time_t t, char *buf, size_t len)
{
	struct tm tm;

	if (localtime_r(&t, &tm) == NULL ||
	    strftime(buf, len, "%Y-%m-%dT%H:%M:%S%z", &tm) == 0) {
		snprintf(buf, len, "%lld", (long long)t);
		return buf;
	}
	/* ISO 8601 extended offset: +0100 -> +01:00 */
	size_t n = strlen(buf);
	if (n >= 5 && n + 2 <= len) {
		memmove(buf + n - 1, buf + n - 2, 3);
		buf[n - 2] = ':';
	}
	return buf;
}

/* parse_num - exactly n digits at *p */
static int
parse_num(const char **p, int n, int *out)
{
	int v = 0;

	for (int i = 0; i < n; i++) {
		if ((*p)[i] < '0' || (*p)[i] > '9')
			return -1;
		v = v * 10 + ((*p)[i] - '0');
	}
	*p += n;
	*out = v;
	return 0;
}

/* parse_offset - "Z", "+HH", "+HHMM", "+HH:MM"; seconds east of UTC */
static int
parse_offset(const char *p, long *off)
{
	int sign, hh, mm = 0;

	if (strcmp(p, "Z") == 0 || strcmp(p, "z") == 0) {
		*off = 0;
		return 0;
	}
	if (*p != '+' && *p != '-')
		return -1;
	sign = *p++ == '-' ? -1 : 1;
	if (parse_num(&p, 2, &hh) == -1)
		return -1;
	if (*p == ':')
		p++;
	if (*p && parse_num(&p, 2, &mm) == -1)
		return -1;
	if (*p || hh > 23 || mm > 59)
		return -1;
	*off = sign * (hh * 3600L + mm * 60L);
	return 0;
}

int
switch_parse_time(const char *s, time_t *out, char *err, size_t errlen)
{
	const char *p = s;
	struct tm tm;
	int y, mo, d, h, mi, sec = 0;
	long off = 0;
	int has_off = 0;
	time_t t;

	memset(&tm, 0, sizeof(tm));
	if (parse_num(&p, 4, &y) == -1 || *p++ != '-' ||
	    parse_num(&p, 2, &mo) == -1 || *p++ != '-' ||
	    parse_num(&p, 2, &d) == -1 || (*p != 'T' && *p != 't' && *p != ' '))
		goto bad;
	p++;
	if (parse_num(&p, 2, &h) == -1 || *p++ != ':' ||
	    parse_num(&p, 2, &mi) == -1)
		goto bad;
	if (*p == ':') {
		p++;
		if (parse_num(&p, 2, &sec) == -1)
			goto bad;
	}
	if (*p) {
		if (parse_offset(p, &off) == -1)
			goto bad;
		has_off = 1;
	}
	if (mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 ||
	    sec > 60)
		goto bad;
	tm.tm_year = y - 1900;
	tm.tm_mon = mo - 1;
	tm.tm_mday = d;
	tm.tm_hour = h;
	tm.tm_min = mi;
	tm.tm_sec = sec;
	if (has_off) {
		t = timegm(&tm);
		t -= off;
	} else {
		tm.tm_isdst = -1;	/* local time, DST as it is on that day */
		t = mktime(&tm);
	}
	if (t == (time_t)-1)
		goto bad;
	*out = t;
	return 0;
bad:
	snprintf(err, errlen, "--at %.64s: not an ISO 8601 time "
	    "(YYYY-MM-DDTHH:MM[:SS][Z|+HH:MM])", s);
	return -1;
}

/* The old route */

/* old_route - the domain's route now (before the switch). route.c keys a
 * route by its server set, so one key names it whatever the order. */
static void
old_route(const struct domain_info *d, struct switch_route *o)
{
	struct route r;
	char rcpt[SMTP_DOMAIN_MAX + 2], why[256];

	memset(o, 0, sizeof(*o));
	o->mode = d->mode;
	mx_strlcpy(o->domain, d->name, sizeof(o->domain));
	/* an empty local part names no alias: the domain's plain route */
	snprintf(rcpt, sizeof(rcpt), "@%s", d->name);
	if (route_for_rcpt(rcpt, &r, why, sizeof(why)) != ROUTE_OK) {
		o->none = 1;
		return;
	}
	mx_strlcpy(o->key, r.key, sizeof(o->key));
}

/* switch_inflight - attempts of the domain's recipients on the old route
 * whose MAIL FROM went out and whose result is not in yet */
int
switch_inflight(const struct switch_route *o)
{
	if (sw.closing || o->none)
		return 0;
	return queue_inflight(o->domain, o->key);
}

/* Running a switch */

static void
op_free(struct switch_op *op)
{
	free(op->domain);
	free(op->note);
	free(op);
}

static void
op_unlink(struct switch_op *op)
{
	if (op->prev)
		op->prev->next = op->next;
	else if (sw.ops == op)
		sw.ops = op->next;
	if (op->next)
		op->next->prev = op->prev;
	op->prev = op->next = NULL;
}

static void
outcome_init(struct switch_outcome *oc, const struct switch_op *op)
{
	memset(oc, 0, sizeof(*oc));
	oc->domain = op->domain;
	oc->to = op->to;
	oc->from = op->old.mode;
	oc->preflight = op->preflight;
	oc->old = &op->old;
	oc->elapsed_us = mx_mono_us() - op->t0;
}

static void fire_refused(struct switch_op *, const struct switch_outcome *);

/* op_refuse - answer a refusal and end the op */
static void
op_refuse(struct switch_op *op, const struct probe_result *pr,
    const char *msg)
{
	struct switch_outcome oc;

	outcome_init(&oc, op);
	oc.status = 1;
	oc.probe = pr;
	mx_strlcpy(oc.msg, msg, sizeof(oc.msg));
	log_info("switch refused domain=%s to=%s uid=%u reason=\"%s\"",
	    op->domain, store_mode_name(op->to), (unsigned)op->uid, msg);
	if (op->fire) {
		fire_refused(op, &oc);
		return;
	}
	op->done(&oc, op->arg);
	op_free(op);
}

/* resched_cb - deferred recipients of the domain are due now */
static void
resched_cb(evutil_socket_t fd, short ev, void *arg)
{
	struct switch_resched *r = arg, **pp;
	uint64_t t0 = mx_mono_us();
	int n;

	for (pp = &sw.rescheds; *pp != r; pp = &(*pp)->next)
		;
	*pp = r->next;
	n = queue_make_due(r->domain);
	log_info("switch rescheduled domain=%s recipients=%d elapsed_ms=%.1f",
	    r->domain, n, (double)(mx_mono_us() - t0) / 1000.0);
	event_free(r->ev);
	free(r->domain);
	free(r);
}

/* resched_later - make the domain's deferred mail due from the next loop
 * turn: the walk is over the whole queue (tens of ms at 100,000
 * messages), and the answer, already written, goes out first (the loop
 * runs ready sockets before expired timers) */
static void
resched_later(const char *domain)
{
	struct switch_resched *r = xcalloc(1, sizeof(*r));
	struct timeval now = { 0, 0 };

	r->domain = xstrdup(domain);
	r->ev = evtimer_new(sw.base, resched_cb, r);
	if (r->ev == NULL)
		fatalx("switch: evtimer_new failed");
	r->next = sw.rescheds;
	sw.rescheds = r;
	evtimer_add(r->ev, &now);
}

/* fleet_done - every other host of the fleet has applied the switch, or
 * its lease expired: now the answer may go out */
static void
fleet_done(const struct fleet_answer *a, size_t n, void *arg)
{
	struct switch_op *op = arg;

	for (size_t i = 0; i < n; i++)
		log_info("switch fleet domain=%s host=%s answer=%s ms=%.1f",
		    op->domain, a[i].name, a[i].applied ? "applied" :
		    "lease-expired", a[i].ms);
	op->oc.hosts = a;
	op->oc.nhosts = n;
	op->oc.elapsed_us = mx_mono_us() - op->t0;
	op->done(&op->oc, op->arg);
	op_free(op);
}

/* commit_done - the switch is durable and in the index */
static void
commit_done(struct store_result *res, void *arg)
{
	struct switch_op *op = arg;
	struct switch_outcome oc;

	outcome_init(&oc, op);
	if (res->status != 0) {
		oc.status = 1;
		mx_strlcpy(oc.msg, res->msg, sizeof(oc.msg));
	} else {
		oc.from = res->from_mode;
		oc.changed = res->outcome == STORE_UPDATED;
		if (op->fire && res->count == -1)
			log_info("switch scheduled domain=%s at=%lld: already fired "
			    "by another host", op->domain, (long long)op->fire_at);
		if (oc.changed)
			mx_stats.switches++;
		/* Another switch between our look and this commit would make
		 * op->old stale; switches of one domain are serialised by the
		 * store worker, and the count below is the route we looked at. */
	}
	if (oc.status == 0 && oc.changed && !sw.closing) {
		oc.inflight = switch_inflight(&op->old);
		resched_later(op->domain);
	}
	if (oc.status == 0)
		log_info("switch domain=%s from=%s to=%s uid=%u changed=%d "
		    "inflight=%d preflight=%s scheduled=%d elapsed_ms=%.1f",
		    op->domain, store_mode_name(oc.from), store_mode_name(op->to),
		    (unsigned)op->uid, oc.changed, oc.inflight,
		    op->preflight ? "passed" : op->force ? "forced" : "none",
		    op->fire, (double)oc.elapsed_us / 1000.0);
	if (oc.status == 0 && oc.changed && fleet_enabled() && !sw.closing) {
		op->oc = oc;
		op->oc.version = res->version;
		fleet_await(res->version, 0, fleet_done, op);
		return;
	}
	op->done(&oc, op->arg);
	op_free(op);
}

/* op_commit - the durable switch: mode + history in one transaction */
static void
op_commit(struct switch_op *op)
{
	const struct domain_info *d = store_domain(op->domain);

	if (d == NULL) {
		char msg[SWITCH_MSG_MAX];
		snprintf(msg, sizeof(msg), "domain %s: not found", op->domain);
		op_refuse(op, NULL, msg);
		return;
	}
	/* the keys of the route in use now, before the index changes */
	old_route(d, &op->old);
	if (op->fire)
		store_schedule_fire(op->domain, op->fire_at, op->to, op->uid, 1,
		    op->note, commit_done, op);
	else
		store_domain_set_mode(op->domain, op->to, op->uid, op->note,
		    commit_done, op);
}

/* refusal_text - "N mailboxes not accepted by the hosting" */
static void
refusal_text(const struct probe_result *pr, char *msg, size_t len)
{
	if (!pr->ok)
		snprintf(msg, len, "preflight: the hosting cannot be used: %s",
		    pr->error);
	else
		snprintf(msg, len, "preflight: %zu mailbox%s not accepted by "
		    "the hosting (%s)", pr->nrefused, pr->nrefused == 1 ? "" :
		    "es", pr->server);
}

static void
probe_done(const struct probe_result *pr, void *arg)
{
	struct switch_op *op = arg;
	char msg[SWITCH_MSG_MAX];

	op->probe = NULL;
	op_unlink(op);
	if (!pr->ok || pr->nrefused > 0) {
		refusal_text(pr, msg, sizeof(msg));
		op_refuse(op, pr, msg);
		return;
	}
	op->preflight = 1;
	op_commit(op);
}

/* op_preflight - SPEC 7: the checks before the switch; 1 when a probe
 * was started (op continues in probe_done), 0 to go on, -1 refused */
static int
op_preflight(struct switch_op *op, const struct domain_info *d)
{
	char msg[SWITCH_MSG_MAX], **mb;
	size_t n;

	if (op->force || d->mode == op->to)
		return 0;
	if (op->to == MODE_LEGACY) {
		if (d->nservers > 0)
			return 0;
		snprintf(msg, sizeof(msg), "preflight: domain %s has no legacy "
		    "server (relayctl domain set %s --legacy HOST)", d->name,
		    d->name);
		op_refuse(op, NULL, msg);
		return -1;
	}
	if (sw.cfg->hosting_destination == NULL) {
		op_refuse(op, NULL, "preflight: hosting.destination is not set");
		return -1;
	}
	/* SPEC 10: mail still reaching the old server through cached MX
	 * records would miss the switch */
	if (sw.cfg->require_propagation && mxwatch_gate(d->name,
	    store_domain_mx(d), time(NULL), msg, sizeof(msg)) == -1) {
		op_refuse(op, NULL, msg);
		return -1;
	}
	/* a pilot kept at the old server is not asked (SPEC 10) */
	n = store_domain_mailboxes(d, MODE_HOSTED, &mb);
	op->probe = probe_start(sw.base, mb, n, probe_done, op);
	for (size_t i = 0; i < n; i++)
		free(mb[i]);
	free(mb);
	op->next = sw.ops;
	if (sw.ops)
		sw.ops->prev = op;
	sw.ops = op;
	return 1;
}

/* op_start - check, preflight, commit */
static void
op_start(struct switch_op *op)
{
	const struct domain_info *d = store_domain(op->domain);
	struct switch_outcome oc;
	char msg[SWITCH_MSG_MAX];

	if (d == NULL) {
		snprintf(msg, sizeof(msg), "domain %s: not found", op->domain);
		op_refuse(op, NULL, msg);
		return;
	}
	op->old.mode = d->mode;
	if (d->mode == op->to && !op->fire) {
		/* nothing to write: it is durable in that mode already */
		outcome_init(&oc, op);
		oc.from = d->mode;
		op->done(&oc, op->arg);
		op_free(op);
		return;
	}
	if (op_preflight(op, d) != 0)
		return;
	op_commit(op);
}

static struct switch_op *
op_new(const char *domain, enum domain_mode mode, uid_t uid, int force,
    switch_done_fn done, void *arg)
{
	struct switch_op *op = xcalloc(1, sizeof(*op));

	op->domain = mx_lower(xstrdup(domain));
	op->to = mode;
	op->uid = uid;
	op->force = force;
	op->done = done;
	op->arg = arg;
	op->t0 = mx_mono_us();
	return op;
}

void
switch_run(const char *domain, enum domain_mode mode, uid_t uid, int force,
    switch_done_fn done, void *arg)
{
	struct switch_op *op = op_new(domain, mode, uid, force, done, arg);

	op->note = xstrdup(force ? "relayctl switch --force" : "relayctl switch");
	if (sw.closing || sw.base == NULL) {
		op_refuse(op, NULL, sw.closing ? "the daemon is stopping" :
		    "the switch is not started (switch_init)");
		return;
	}
	op_start(op);
}

/* Waiting for the old route to drain */

static void
wait_free(struct switch_wait *w)
{
	if (w->prev)
		w->prev->next = w->next;
	else
		sw.waits = w->next;
	if (w->next)
		w->next->prev = w->prev;
	event_free(w->ev);
	free(w);
}

static void
wait_tick(evutil_socket_t fd, short ev, void *arg)
{
	struct switch_wait *w = arg;
	struct timeval tv = { 0, SWITCH_WAIT_TICK_MS * 1000 };
	switch_wait_fn fn = w->fn;
	void *fnarg = w->arg;
	uint64_t waited = mx_mono_us() - w->t0;

	if (switch_inflight(&w->old) > 0) {
		evtimer_add(w->ev, &tv);
		return;
	}
	wait_free(w);
	fn(0, waited, fnarg);
}

struct switch_wait *
switch_wait_start(const struct switch_route *old, switch_wait_fn fn,
    void *arg)
{
	struct switch_wait *w = xcalloc(1, sizeof(*w));
	struct timeval now = { 0, 0 };

	if (sw.closing) {
		/* a switch that committed during shutdown: nothing to wait on */
		free(w);
		fn(1, 0, arg);
		return NULL;
	}
	w->old = *old;
	w->fn = fn;
	w->arg = arg;
	w->t0 = mx_mono_us();
	w->ev = evtimer_new(sw.base, wait_tick, w);
	if (w->ev == NULL)
		fatalx("switch: evtimer_new failed");
	w->next = sw.waits;
	if (sw.waits)
		sw.waits->prev = w;
	sw.waits = w;
	evtimer_add(w->ev, &now);
	return w;
}

/* Scheduled switches */

static void
fire_recorded(struct store_result *res, void *arg)
{
	struct switch_op *op = arg;

	if (res->status != 0)
		log_warnx("switch scheduled domain=%s refusal not recorded: %s",
		    op->domain, res->msg);
	if (sw.firing && strcmp(sw.firing, op->domain) == 0) {
		free(sw.firing);
		sw.firing = NULL;
	}
	op_free(op);
	switch_arm();
}

/* fire_refused - a scheduled switch was refused: logged, left in the
 * history (applied = 0) with the reason, and dropped */
static void
fire_refused(struct switch_op *op, const struct switch_outcome *oc)
{
	char note[STORE_NOTE_MAX];
	size_t len;

	len = (size_t)snprintf(note, sizeof(note), "scheduled switch refused: %s",
	    oc->msg);
	if (oc->probe && oc->probe->ok) {
		for (size_t i = 0; i < oc->probe->nrefused &&
		    i < SWITCH_NOTE_LIST_MAX && len < sizeof(note); i++)
			len += (size_t)snprintf(note + len, sizeof(note) - len,
			    "%s%s", i ? ", " : ": ", oc->probe->refused[i].addr);
		if (oc->probe->nrefused > SWITCH_NOTE_LIST_MAX && len < sizeof(note))
			snprintf(note + len, sizeof(note) - len, ", ...");
	}
	log_warnx("switch scheduled refused domain=%s to=%s at=%lld reason=\"%s\"",
	    op->domain, store_mode_name(op->to), (long long)op->fire_at, oc->msg);
	if (sw.closing) {
		/* it stays scheduled and fires again after the restart */
		fire_recorded(&(struct store_result){ .status = 0 }, op);
		return;
	}
	store_schedule_fire(op->domain, op->fire_at, op->to, op->uid, 0, note,
	    fire_recorded, op);
}

static void
fire_done(const struct switch_outcome *oc, void *arg)
{
	char *domain = arg;

	if (oc->status != 0) {
		/* the store refused the write: do not spin on it */
		log_warnx("switch scheduled domain=%s failed: %s; next try in %d s",
		    domain, oc->msg, SWITCH_HOLD_SECS);
		sw.hold_until = time(NULL) + SWITCH_HOLD_SECS;
	}
	if (sw.firing == domain)
		sw.firing = NULL;
	free(domain);
	switch_arm();
}

/* claim_done - this host runs the scheduled switch, or another does (its
 * commit will reach our index through the change log: look again a little
 * later) */
static void
claim_done(struct store_result *res, void *arg)
{
	struct switch_op *op = arg;
	char when[SWITCH_TIME_MAX];
	struct switch_outcome oc;

	switch_format_time(op->fire_at, when, sizeof(when));
	if (res->status == 0 && res->outcome == STORE_UPDATED && !sw.closing) {
		log_info("switch scheduled firing domain=%s to=%s at=%s uid=%u",
		    op->domain, store_mode_name(op->to), when, (unsigned)op->uid);
		op_start(op);
		return;
	}
	if (res->status == 0 && !sw.closing) {
		log_info("switch scheduled domain=%s at=%s: run by another host",
		    op->domain, when);
		sw.hold_until = time(NULL) + SWITCH_CLAIMED_SECS;
	}
	outcome_init(&oc, op);
	oc.status = res->status;
	mx_strlcpy(oc.msg, res->msg, sizeof(oc.msg));
	op->done(&oc, op->arg);
	op_free(op);
}

/* fire - start the scheduled switch of d */
static void
fire(const struct domain_info *d, const struct store_sched *sc)
{
	struct switch_op *op;
	char when[SWITCH_TIME_MAX], note[STORE_NOTE_MAX];

	sw.firing = xstrdup(d->name);
	op = op_new(d->name, sc->mode, sc->uid, sc->force, fire_done, sw.firing);
	op->fire = 1;
	op->fire_at = sc->at;
	snprintf(note, sizeof(note), "scheduled for %s%s",
	    switch_format_time(sc->at, when, sizeof(when)),
	    sc->force ? " (--force)" : "");
	op->note = xstrdup(note);
	/* a fleet: one host runs it, preflight included */
	store_schedule_claim(d->name, sc->at, claim_done, op);
}

static void
timer_cb(evutil_socket_t fd, short ev, void *arg)
{
	switch_arm();
}

/* switch_arm - fire what is due (one at a time), or wait for the next */
static void
switch_arm(void)
{
	const struct domain_info **v, *next = NULL;
	const struct store_sched *sc, *nsc = NULL;
	size_t n;
	time_t now = time(NULL);

	if (sw.closing || sw.timer == NULL)
		return;
	evtimer_del(sw.timer);
	if (sw.firing)
		return;		/* re-armed when it is done */
	n = store_domain_list(&v);
	for (size_t i = 0; i < n; i++)
		if ((sc = store_domain_sched(v[i])) != NULL &&
		    (nsc == NULL || sc->at < nsc->at)) {
			next = v[i];
			nsc = sc;
		}
	if (next != NULL && nsc->at <= now && now >= sw.hold_until)
		fire(next, nsc);
	else if (next != NULL) {
		time_t at = nsc->at > sw.hold_until ? nsc->at : sw.hold_until;
		struct timeval tv = { at - now, 0 };
		evtimer_add(sw.timer, &tv);
	}
	free(v);
}

static void
sched_done(struct store_result *res, void *arg)
{
	struct sched_req *r = arg;

	switch_arm();
	r->done(res, r->arg);
	free(r);
}

void
switch_schedule(const char *domain, const struct store_sched *sc,
    store_done_fn done, void *arg)
{
	struct sched_req *r = xcalloc(1, sizeof(*r));

	r->done = done;
	r->arg = arg;
	store_schedule_set(domain, sc, sched_done, r);
}

void
switch_cancel(const char *domain, store_done_fn done, void *arg)
{
	struct sched_req *r = xcalloc(1, sizeof(*r));

	r->done = done;
	r->arg = arg;
	store_schedule_cancel(domain, sched_done, r);
}

/* Life cycle */

int
switch_init(struct event_base *base, const struct config *cfg, char *err,
    size_t errlen)
{
	memset(&sw, 0, sizeof(sw));
	sw.base = base;
	sw.cfg = cfg;
	sw.timer = evtimer_new(base, timer_cb, NULL);
	if (sw.timer == NULL) {
		snprintf(err, errlen, "switch: evtimer_new failed");
		return -1;
	}
	switch_arm();
	return 0;
}

int
switch_route_now(const char *domain, struct switch_route *o)
{
	const struct domain_info *d = store_domain(domain);

	if (d == NULL)
		return 0;
	old_route(d, o);
	return 1;
}

static void
drained(int left, uint64_t waited_us, void *arg)
{
	long long *version = arg;

	fleet_drain_end(*version);
	free(version);
}

/* switch_changed_elsewhere - another host of the fleet switched the
 * domain or (re)scheduled its switch; the index shows it already */
void
switch_changed_elsewhere(const char *domain, long long version, int mode,
    int sched, const struct switch_route *old)
{
	const struct domain_info *d;
	long long *v;

	if (sw.closing)
		return;
	if (mode && (d = store_domain(domain)) != NULL) {
		log_info("switch applied from the fleet domain=%s mode=%s "
		    "change=%lld inflight=%d", domain, store_mode_name(d->mode),
		    version, old ? switch_inflight(old) : 0);
		resched_later(domain);
	}
	/* the other host's --wait waits for these too */
	if (mode && old != NULL && switch_inflight(old) > 0) {
		v = xmalloc(sizeof(*v));
		*v = version;
		fleet_drain_begin(version);
		/* NULL: stopping, and drained ran already */
		(void)switch_wait_start(old, drained, v);
	}
	if (sched)
		switch_arm();
}

void
switch_set_config(const struct config *cfg)
{
	sw.cfg = cfg;
}

void
switch_close(void)
{
	struct switch_op *op;

	sw.closing = 1;
	if (sw.timer)
		event_free(sw.timer);
	sw.timer = NULL;
	while ((op = sw.ops) != NULL) {
		op_unlink(op);
		probe_cancel(op->probe);
		op->probe = NULL;
		op_refuse(op, NULL, "the daemon is stopping");
	}
	while (sw.waits != NULL) {
		struct switch_wait *w = sw.waits;
		switch_wait_fn fn = w->fn;
		void *arg = w->arg;
		uint64_t waited = mx_mono_us() - w->t0;
		int left = switch_inflight(&w->old);

		wait_free(w);
		fn(left > 0 ? left : 1, waited, arg);
	}
	while (sw.rescheds != NULL) {
		struct switch_resched *r = sw.rescheds;
		sw.rescheds = r->next;
		event_free(r->ev);
		free(r->domain);
		free(r);
	}
	/* a scheduled switch whose store write is still queued finishes in
	 * store_close; its completion sees sw.closing */
}
