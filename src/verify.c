/* verify.c - recipient verification at the old server (see verify.h)
 *
 * Three tables: pending probes by address (RCPTs for the same address
 * join the one under way), recent answers by address (positive and
 * negative, each with its lifetime; the positive ones are also written to
 * the store so that they survive a restart and can be learnt), and per
 * domain a token bucket of probes (the rate limit: a flood of unknown
 * recipients is not a flood of probes). A sweep every
 * VERIFY_SWEEP_SECS drops expired answers.
 *
 * Catch-all servers: a server that accepts any address proves nothing by
 * accepting one. Per domain we keep what its old server did with a random
 * local part (verify_catchall_address), asked in the same transaction as
 * the first probe and again once that knowledge is older than
 * verify.positive_lifetime: a catch-all makes every unknown address get the
 * table's own answer (VERIFY_NO: 550, or 450 with --unknown tempfail)
 * without a probe, and is counted (stats verify_catchall).
 */
#include "autoconf.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "dict.h"
#include "log.h"
#include "probe.h"
#include "route.h"
#include "stats.h"
#include "util.h"
#include "verify.h"

#define VERIFY_SWEEP_SECS	60

struct vprobe;

struct verify_wait {
	struct vprobe *vp;
	verify_fn fn;
	void *arg;
	struct event *timer;		/* verify.timeout */
	struct verify_wait *prev, *next;
};

/* a probe under way for one address */
struct vprobe {
	char *addr;			/* the key: canonical, lower case */
	char *sent;			/* as the old server is asked */
	char *random;			/* the catch-all check beside it, or NULL */
	char *domain;
	struct probe *probe;
	struct verify_wait *waiters;
};

/* what a domain's old server does with a random local part */
enum catch_state { CATCH_UNKNOWN = 0, CATCH_NO, CATCH_YES };
struct vcatch {
	enum catch_state state;
	time_t until;			/* then ask again */
};

/* a recent answer */
struct vanswer {
	int ok;
	time_t until;
	char reply[VERIFY_REPLY_MAX];
};

/* a domain's probe budget: a token bucket of max_probes_per_minute
 * tokens, refilled at that rate (no burst at each minute's start) */
struct vrate {
	double tokens;
	uint64_t last_us;
};

static struct {
	struct event_base *base;
	const struct config *cfg;
	struct dict *pending;		/* address -> struct vprobe */
	struct dict *answers;		/* address -> struct vanswer */
	struct dict *rates;		/* domain -> struct vrate */
	struct dict *catchall;		/* domain -> struct vcatch */
	struct event *sweep;
	int nprobes;
} vf;

static void
vprobe_free(struct vprobe *vp)
{
	free(vp->addr);
	free(vp->sent);
	free(vp->random);
	free(vp->domain);
	free(vp);
}

void
verify_catchall_address(const char *domain, char *buf, size_t len)
{
	snprintf(buf, len, "mxrelay-catchall-check-%08x%08x@%s", arc4random(),
	    arc4random(), domain);
}

/* wait_end - unlink and free a waiter (its fn already ran, or never will) */
static void
wait_end(struct verify_wait *w)
{
	if (w->prev)
		w->prev->next = w->next;
	else if (w->vp && w->vp->waiters == w)
		w->vp->waiters = w->next;
	if (w->next)
		w->next->prev = w->prev;
	if (w->timer)
		event_free(w->timer);
	free(w);
}

static void
count(enum verify_result r)
{
	if (r == VERIFY_YES)
		mx_stats.verify_accepted++;
	else if (r == VERIFY_NO)
		mx_stats.verify_rejected++;
	else
		mx_stats.verify_tempfail++;
}

/* wait_timeout - the RCPT waited verify.timeout: 450; the probe goes on
 * and its answer still fills the cache */
static void
wait_timeout(evutil_socket_t fd, short ev, void *arg)
{
	struct verify_wait *w = arg;
	verify_fn fn = w->fn;
	void *farg = w->arg;

	log_info("verify timeout address=%s after=%ds", w->vp->addr,
	    vf.cfg->verify_timeout);
	wait_end(w);
	count(VERIFY_TEMP);
	fn(VERIFY_TEMP, "the old server did not answer in time", farg);
}

static void
answer_keep(const char *addr, int ok, const char *reply, time_t now)
{
	struct vanswer *a;

	/* the probe budget limits how fast this grows, the cap how far: a
	 * full cache still keeps the old server's yes (it goes to the store
	 * too), a no is simply asked again later */
	if (!ok && dict_count(vf.answers) >= VERIFY_ANSWERS_MAX &&
	    dict_get(vf.answers, addr) == NULL)
		return;
	a = xcalloc(1, sizeof(*a));
	a->ok = ok;
	a->until = now + (ok ? vf.cfg->verify_positive_lifetime :
	    vf.cfg->verify_negative_lifetime);
	mx_strlcpy(a->reply, reply, sizeof(a->reply));
	free(dict_put(vf.answers, addr, a));
	if (ok)
		store_verified_put(addr, now, a->until, NULL, NULL);
}

/* refusal_of - the probe's refusal of addr, or NULL: it was accepted */
static const struct probe_refusal *
refusal_of(const struct probe_result *pr, const char *addr)
{
	for (size_t i = 0; i < pr->nrefused; i++)
		if (strcmp(pr->refused[i].addr, addr) == 0)
			return &pr->refused[i];
	return NULL;
}

/* catch_get - the domain's catch-all knowledge at now */
static enum catch_state
catch_get(const char *domain, time_t now)
{
	const struct vcatch *c = dict_get(vf.catchall, domain);

	return c != NULL && c->until > now ? c->state : CATCH_UNKNOWN;
}

/* catch_learn - the random local part beside vp's address got rr (NULL:
 * accepted); returns the domain's state now */
static enum catch_state
catch_learn(const struct vprobe *vp, const struct probe_refusal *rr,
    const char *server, time_t now)
{
	struct vcatch *c = dict_get(vf.catchall, vp->domain);
	enum catch_state st;

	/* a 4xx to the random address tells nothing */
	if (rr != NULL && rr->reply[0] != '5')
		return CATCH_UNKNOWN;
	st = rr == NULL ? CATCH_YES : CATCH_NO;
	if (c == NULL) {
		c = xcalloc(1, sizeof(*c));
		dict_put(vf.catchall, vp->domain, c);
	}
	if (c->state != st)
		log_info("verify domain=%s server=%s catchall=%s%s", vp->domain,
		    server, st == CATCH_YES ? "yes" : "no", st == CATCH_YES ?
		    " (accepts any address: verification cannot help)" : "");
	c->state = st;
	c->until = now + vf.cfg->verify_positive_lifetime;
	return st;
}

/* probe_done - the old server's word: every waiter hears it */
static void
probe_done(const struct probe_result *pr, void *arg)
{
	struct vprobe *vp = arg;
	const struct probe_refusal *rr = NULL;
	enum catch_state cs = CATCH_NO;
	enum verify_result r;
	char reply[VERIFY_REPLY_MAX];
	time_t now = time(NULL);

	vp->probe = NULL;
	vf.nprobes--;
	dict_del(vf.pending, vp->addr);
	if (pr->ok) {
		rr = refusal_of(pr, vp->sent);
		if (vp->random)
			cs = catch_learn(vp, refusal_of(pr, vp->random),
			    pr->server, now);
	}
	if (!pr->ok) {
		r = VERIFY_TEMP;
		mx_strlcpy(reply, pr->error, sizeof(reply));
	} else if (rr == NULL && cs == CATCH_YES) {
		/* it accepts anything: the table's own answer */
		r = VERIFY_NO;
		mx_stats.verify_catchall++;
		snprintf(reply, sizeof(reply), "%s accepts any address",
		    pr->server);
	} else if (rr == NULL && cs == CATCH_UNKNOWN) {
		r = VERIFY_TEMP;
		snprintf(reply, sizeof(reply), "%s accepts it, but cannot be "
		    "told from a catch-all now", pr->server);
	} else if (rr == NULL) {
		r = VERIFY_YES;
		snprintf(reply, sizeof(reply), "accepted by %s", pr->server);
	} else {
		mx_strlcpy(reply, rr->reply, sizeof(reply));
		/* RFC 5321 4.2.1: only a 5yz reply is permanent */
		r = reply[0] == '5' ? VERIFY_NO : VERIFY_TEMP;
	}
	log_info("verify address=%s result=%s server=%s reply=\"%s\"", vp->addr,
	    r == VERIFY_YES ? "accepted" : r == VERIFY_NO ? "rejected" :
	    "unknown", pr->server[0] ? pr->server : "-", reply);
	if (r != VERIFY_TEMP)
		answer_keep(vp->addr, r == VERIFY_YES, reply, now);
	while (vp->waiters) {
		struct verify_wait *w = vp->waiters;
		verify_fn fn = w->fn;
		void *farg = w->arg;

		wait_end(w);
		count(r);
		fn(r, reply, farg);
	}
	vprobe_free(vp);
}

/* rate_take - may domain start one more probe now? */
static int
rate_take(const char *domain)
{
	struct vrate *rt = dict_get(vf.rates, domain);
	uint64_t now = mx_mono_us();
	double cap = vf.cfg->verify_rate;

	if (rt == NULL) {
		rt = xcalloc(1, sizeof(*rt));
		rt->tokens = cap;
		rt->last_us = now;
		dict_put(vf.rates, domain, rt);
	}
	rt->tokens += cap * (double)(now - rt->last_us) / 60e6;
	if (rt->tokens > cap)
		rt->tokens = cap;
	rt->last_us = now;
	if (rt->tokens < 1.0)
		return 0;
	rt->tokens -= 1.0;
	return 1;
}

/* wait_add - a waiter on vp, with its timeout */
static struct verify_wait *
wait_add(struct vprobe *vp, verify_fn fn, void *arg)
{
	struct verify_wait *w = xcalloc(1, sizeof(*w));
	struct timeval tv = { vf.cfg->verify_timeout, 0 };

	w->vp = vp;
	w->fn = fn;
	w->arg = arg;
	if ((w->timer = evtimer_new(vf.base, wait_timeout, w)) == NULL)
		fatalx("verify: evtimer_new failed");
	evtimer_add(w->timer, &tv);
	w->next = vp->waiters;
	if (vp->waiters)
		vp->waiters->prev = w;
	vp->waiters = w;
	return w;
}

/* cached - the recent answer of canon: 1 yes, 0 no, -1 none */
static int
cached(const char *canon, time_t now)
{
	const struct vanswer *a = dict_get(vf.answers, canon);

	if (a != NULL && a->until > now)
		return a->ok;
	/* after a restart the accepted ones are in the store */
	return store_verified_get(canon, now) != NULL ? 1 : -1;
}

enum verify_result
verify_rcpt(const char *canon, const struct domain_info *d, verify_fn fn,
    void *arg, struct verify_wait **w)
{
	const char *canon_key;
	struct vprobe *vp;
	struct route rt;
	char why[256], *addrs[2], key[VERIFY_ADDR_MAX], rnd[VERIFY_ADDR_MAX];
	time_t now = time(NULL);
	enum catch_state cs;
	int c;

	*w = NULL;
	if (!d->verify_legacy || vf.pending == NULL ||
	    mx_strlcpy(key, canon, sizeof(key)) >= sizeof(key))
		return VERIFY_NO;
	/* its old server accepts anything: asking proves nothing */
	if ((cs = catch_get(d->name, now)) == CATCH_YES) {
		mx_stats.verify_catchall++;
		log_info("verify address=%s result=table reason=catchall", key);
		return VERIFY_NO;
	}
	/* keyed as the table is: the canonical form, compared
	 * case-insensitively (SPEC 4) */
	canon_key = mx_lower(key);
	if ((c = cached(canon_key, now)) >= 0) {
		if (c)
			mx_stats.verify_cache_positive++;
		else
			mx_stats.verify_cache_negative++;
		return c ? VERIFY_YES : VERIFY_NO;
	}
	if ((vp = dict_get(vf.pending, canon_key)) != NULL) {
		*w = wait_add(vp, fn, arg);
		return VERIFY_WAIT;
	}
	if (vf.nprobes >= VERIFY_PROBES_MAX || !rate_take(d->name)) {
		mx_stats.verify_rate_limited++;
		mx_stats.verify_tempfail++;
		log_info("verify address=%s result=unknown reason=rate", canon_key);
		return VERIFY_TEMP;
	}
	if (route_for_legacy(d, &rt, why, sizeof(why)) != ROUTE_OK) {
		mx_stats.verify_tempfail++;
		log_info("verify address=%s result=unknown reason=\"%s\"", canon_key,
		    why);
		return VERIFY_TEMP;
	}
	vp = xcalloc(1, sizeof(*vp));
	vp->addr = xstrdup(canon_key);
	vp->sent = xstrdup(canon);
	vp->domain = xstrdup(d->name);
	dict_put(vf.pending, vp->addr, vp);
	vf.nprobes++;
	mx_stats.verify_probes++;
	*w = wait_add(vp, fn, arg);
	/* the old server is asked about the address as it was written, and
	 * in the same transaction about a random one when we do not know
	 * (any more) whether it accepts anything */
	addrs[0] = vp->sent;
	if (cs == CATCH_UNKNOWN) {
		verify_catchall_address(d->name, rnd, sizeof(rnd));
		addrs[1] = vp->random = xstrdup(rnd);
	}
	/* probe_start_route answers from the loop, never inside the call */
	vp->probe = probe_start_route(vf.base, &rt, addrs, vp->random ? 2 : 1,
	    probe_done, vp);
	return VERIFY_WAIT;
}

void
verify_cancel(struct verify_wait *w)
{
	if (w != NULL)
		wait_end(w);
}

/* The sweep of expired answers */

struct sweep_arg {
	char **keys;
	size_t n, cap;
	time_t now;
};

static int
sweep_cb(const char *key, void *val, void *arg)
{
	struct sweep_arg *sa = arg;

	if (((struct vanswer *)val)->until > sa->now)
		return 0;
	if (sa->n == sa->cap) {
		sa->cap = sa->cap ? sa->cap * 2 : 64;
		sa->keys = xrealloc(sa->keys, sa->cap * sizeof(char *));
	}
	sa->keys[sa->n++] = xstrdup(key);
	return 0;
}

static void
sweep(evutil_socket_t fd, short ev, void *arg)
{
	struct sweep_arg sa = { NULL, 0, 0, time(NULL) };
	struct timeval tv = { VERIFY_SWEEP_SECS, 0 };

	dict_walk(vf.answers, sweep_cb, &sa);
	for (size_t i = 0; i < sa.n; i++) {
		free(dict_del(vf.answers, sa.keys[i]));
		free(sa.keys[i]);
	}
	free(sa.keys);
	evtimer_add(vf.sweep, &tv);
}

int
verify_init(struct event_base *base, const struct config *cfg, char *err,
    size_t errlen)
{
	struct timeval tv = { VERIFY_SWEEP_SECS, 0 };

	memset(&vf, 0, sizeof(vf));
	vf.base = base;
	vf.cfg = cfg;
	vf.pending = dict_new();
	vf.answers = dict_new();
	vf.rates = dict_new();
	vf.catchall = dict_new();
	if ((vf.sweep = evtimer_new(base, sweep, NULL)) == NULL) {
		snprintf(err, errlen, "verify: evtimer_new failed");
		return -1;
	}
	evtimer_add(vf.sweep, &tv);
	return 0;
}

void
verify_set_config(const struct config *cfg)
{
	vf.cfg = cfg;
}

static int
close_cb(const char *key, void *val, void *arg)
{
	struct vprobe *vp = val;

	probe_cancel(vp->probe);
	while (vp->waiters) {
		struct verify_wait *w = vp->waiters;
		verify_fn fn = w->fn;
		void *farg = w->arg;

		wait_end(w);
		fn(VERIFY_TEMP, "the daemon is stopping", farg);
	}
	vprobe_free(vp);
	return 0;
}

void
verify_close(void)
{
	if (vf.pending == NULL)
		return;
	dict_walk(vf.pending, close_cb, NULL);
	dict_free(vf.pending, NULL);
	dict_free(vf.answers, free);
	dict_free(vf.rates, free);
	dict_free(vf.catchall, free);
	if (vf.sweep)
		event_free(vf.sweep);
	memset(&vf, 0, sizeof(vf));
}
