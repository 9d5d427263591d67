/* mta.c - outbound delivery: destinations, connection pools, failover
 *
 * A destination is everything that shares a route key. It owns:
 * - its addresses: the route's hops resolved in order (MX, then A/AAAA;
 *   legacy and literal hosts: A/AAAA), cached for MTA_ADDR_TTL_SECS;
 * - a FIFO of jobs waiting for a connection;
 * - up to delivery.max_connections_per_destination connections. A
 *   connection walks the address list with the job that opened it until a
 *   server greets it properly (failover on connect failure, timeout, 4xx
 *   or 5xx to greeting/EHLO), then carries jobs one after the other and
 *   lingers MTA_IDLE_SECS before QUIT;
 * - its health: when a connection ran out of addresses and no other
 *   connection of the destination is up, the destination is down until
 *   now + the retry_schedule step of its failure count, and jobs submitted
 *   meanwhile complete at once as MTA_TEMP "destination backed off". Only
 *   one connection is opened while no connection is up (one probe, not
 *   one attempt per message).
 *
 * Jobs are completed (done) from the event loop only: mta_submit queues
 * and activates a zero-delay kick event.
 */
#include "autoconf.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include "dict.h"
#include "dns.h"
#include "log.h"
#include "mta.h"
#include "smtp_client.h"
#include "util.h"

#define MTA_IDLE_SECS		5	/* keep an idle connection, then QUIT */
#define MTA_ADDR_TTL_SECS	60	/* reuse a destination's addresses */
#define MTA_MAX_ADDRS		32	/* addresses tried per connection */
#define MTA_MAX_MX		10	/* MX hosts used per hop */
#define MTA_SWEEP_SECS		30	/* forget unused destinations */
#define MTA_LIMIT_SECS		60	/* lowered concurrency after a refusal */
#define MTA_DEFAULT_BACKOFF	60	/* when retry_schedule is empty */
#define MTA_US			1000000ULL

struct mta_addr {
	char host[256];			/* server name (SNI), or the path */
	struct sockaddr_storage ss;
	socklen_t sslen;
	char relay[MTA_RELAY_MAX];	/* HOST[IP]:PORT or unix:PATH */
};

/* the resolved address list, shared by connections (refcounted) */
struct mta_addrs {
	int refs;
	int n;
	struct mta_addr a[MTA_MAX_ADDRS];
};

struct mta_dest;

/* one connection slot: its session and the addresses it walks */
struct mta_conn {
	struct mta_dest *d;
	struct mta_conn *next;
	struct smtp_client *sc;
	struct mta_addrs *addrs;
	int ai;				/* address being tried / talked to */
	unsigned gen;			/* the destination's route generation */
	int notls;			/* retry of this address without TLS */
	int established;		/* sc greeted us and is usable */
	int answered;			/* some address of this walk was usable */
	struct mta_job *job;		/* carried: running or waiting for sc */
	int job_has_result;		/* job holds a server's reply (failover) */
	struct sc_error lasterr;
	struct event *idle;
};

enum res_phase { RES_HOP, RES_MX_HOSTS, RES_HOST };
enum res_error { RES_ERR_NONE, RES_ERR_TEMP, RES_ERR_NOTFOUND, RES_ERR_NULLMX };

/* a resolution of the destination's hops in progress */
struct mta_resolve {
	struct mta_dest *d;
	struct mta_addrs *addrs;
	int hop;
	enum res_phase phase;
	struct dns_mx mx[MTA_MAX_MX];
	int nmx, mxi;
	struct dns_req *req;
	enum res_error err;
	char errtext[MTA_REPLY_MAX];
};

struct mta_dest {
	char key[ROUTE_KEY_MAX];
	struct route route;		/* the hops now in use */
	unsigned gen;			/* bumped when the hops change */
	struct mta_addrs *addrs;	/* NULL until resolved */
	uint64_t addrs_at;
	struct mta_resolve *res;
	struct mta_job *qhead, *qtail;
	struct mta_conn *conns;
	int nconns;
	/* health */
	uint64_t down_until;		/* monotonic us; 0: not down */
	int failures;
	int down_code;
	char down_status[16];
	char down_text[MTA_REPLY_MAX];
	char down_relay[MTA_RELAY_MAX];
	int limit;			/* lowered concurrency ... */
	uint64_t limit_until;		/* ... until then */
	int kick_pending;
	struct mta_dest *kick_next;
};

/* a session leaving (QUIT sent), kept to be freed by mta_close */
struct mta_quitting {
	struct smtp_client *sc;
	struct mta_quitting *prev, *next;
};

static struct {
	struct event_base *base;
	const struct config *cfg;
	SSL_CTX *ssl;
	struct dict *dests;
	struct mta_dest *kicks;
	struct event *kick;
	struct event *sweep;
	struct mta_quitting *quitting;
	int closing;
	struct mta_job *late, *late_tail;	/* submitted during mta_close */
} mta;

static void dest_kick(struct mta_dest *);
static void dest_dispatch(struct mta_dest *);
static void conn_cb(struct smtp_client *, enum sc_event, void *);
static void conn_next_job(struct mta_conn *);
static void res_step(struct mta_resolve *);

/* ------------------------------------------------------------------ */
/* jobs                                                                */

/* job_fill - give every recipient without a result this one */
static void
job_fill(struct mta_job *job, enum mta_class cls, int code,
    const char *status, const char *text, int all)
{
	for (int i = 0; i < job->nrcpts; i++) {
		struct mta_rcpt *rc = &job->rcpts[i];

		if (!all && rc->cls != MTA_NOT_TRIED)
			continue;
		rc->cls = cls;
		rc->code = code;
		mx_strlcpy(rc->status, status, sizeof(rc->status));
		mx_strlcpy(rc->reply, text, sizeof(rc->reply));
	}
}

/* job_complete - done, exactly once; the job is the caller's again */
static void
job_complete(struct mta_job *job)
{
	job->next = NULL;
	job->done(job, job->arg);
}

/* soft_status - a failure that defers: the status with class 4 */
static void
soft_status(const char *in, char *out, size_t len)
{
	mx_strlcpy(out, in[0] ? in : "4.0.0", len);
	if (out[0] == '5' || out[0] == '2')
		out[0] = '4';
}

/* ------------------------------------------------------------------ */
/* addresses                                                           */

static struct mta_addrs *
addrs_ref(struct mta_addrs *a)
{
	if (a != NULL)
		a->refs++;
	return a;
}

/* addrs_unref - drop a reference, free with the last */
static void
addrs_unref(struct mta_addrs *a)
{
	if (a != NULL && --a->refs == 0)
		free(a);
}

/* addrs_add_ip - one resolved address of host */
static void
addrs_add_ip(struct mta_addrs *l, const char *host, const struct dns_addr *da,
    int port)
{
	struct mta_addr *a;
	char ip[INET6_ADDRSTRLEN];

	if (l->n >= MTA_MAX_ADDRS)
		return;
	a = &l->a[l->n];
	memset(a, 0, sizeof(*a));
	mx_strlcpy(a->host, host, sizeof(a->host));
	if (da->family == AF_INET6) {
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&a->ss;

		s6->sin6_family = AF_INET6;
		s6->sin6_addr = da->a.v6;
		s6->sin6_port = htons((uint16_t)port);
		a->sslen = sizeof(*s6);
		inet_ntop(AF_INET6, &da->a.v6, ip, sizeof(ip));
	} else if (da->family == AF_INET) {
		struct sockaddr_in *s4 = (struct sockaddr_in *)&a->ss;

		s4->sin_family = AF_INET;
		s4->sin_addr = da->a.v4;
		s4->sin_port = htons((uint16_t)port);
		a->sslen = sizeof(*s4);
		inet_ntop(AF_INET, &da->a.v4, ip, sizeof(ip));
	} else
		return;
	snprintf(a->relay, sizeof(a->relay), "%s[%s]:%d", host, ip, port);
	l->n++;
}

/* addrs_add_unix - lmtp:unix:/PATH */
static void
addrs_add_unix(struct mta_addrs *l, const char *path)
{
	struct mta_addr *a;
	struct sockaddr_un *su;

	if (l->n >= MTA_MAX_ADDRS)
		return;
	a = &l->a[l->n++];
	memset(a, 0, sizeof(*a));
	su = (struct sockaddr_un *)&a->ss;
	su->sun_family = AF_UNIX;
	mx_strlcpy(su->sun_path, path, sizeof(su->sun_path));
	a->sslen = sizeof(*su);
	mx_strlcpy(a->host, path, sizeof(a->host));
	snprintf(a->relay, sizeof(a->relay), "unix:%s", path);
}

/* ------------------------------------------------------------------ */
/* resolution of a destination's hops                                  */

/* res_error - keep the most telling error: a temporary one wins */
static void
res_error(struct mta_resolve *r, enum res_error e, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void
res_error(struct mta_resolve *r, enum res_error e, const char *fmt, ...)
{
	va_list ap;

	if (r->err == RES_ERR_TEMP && e != RES_ERR_TEMP)
		return;
	r->err = e;
	va_start(ap, fmt);
	vsnprintf(r->errtext, sizeof(r->errtext), fmt, ap);
	va_end(ap);
}

/* res_addr_cb - A/AAAA answer of an MX host or a plain host */
static void
res_addr_cb(enum dns_status st, const struct dns_addr *a, int n, void *arg)
{
	struct mta_resolve *r = arg;
	const struct route_hop *h = &r->d->route.hops[r->hop];
	const char *host = r->phase == RES_MX_HOSTS ? r->mx[r->mxi].host : h->host;

	r->req = NULL;
	if (st == DNS_OK) {
		for (int i = 0; i < n; i++)
			addrs_add_ip(r->addrs, host, &a[i], h->port);
	} else if (st == DNS_NXDOMAIN || st == DNS_NODATA) {
		res_error(r, RES_ERR_NOTFOUND, "Host or domain name not found. "
		    "Name service error for name=%s type=A: Host not found", host);
	} else {
		res_error(r, RES_ERR_TEMP, "Host or domain name not found. "
		    "Name service error for name=%s type=A: %s", host,
		    dns_status_name(st));
	}
	if (r->phase == RES_MX_HOSTS && ++r->mxi < r->nmx) {
		res_step(r);
		return;
	}
	r->hop++;
	r->phase = RES_HOP;
	res_step(r);
}

/* res_mx_cb - MX answer of a hop: its hosts, the address fallback, or an error */
static void
res_mx_cb(enum dns_status st, const struct dns_mx *mx, int n, void *arg)
{
	struct mta_resolve *r = arg;
	const struct route_hop *h = &r->d->route.hops[r->hop];

	r->req = NULL;
	switch (st) {
	case DNS_OK:
		/* RFC 7505: a lone "." MX says the domain takes no mail */
		if (n == 1 && (mx[0].host[0] == '\0' || strcmp(mx[0].host, ".") == 0)) {
			res_error(r, RES_ERR_NULLMX, "Domain %s does not accept "
			    "mail (nullMX)", h->host);
			break;
		}
		r->nmx = n < MTA_MAX_MX ? n : MTA_MAX_MX;
		memcpy(r->mx, mx, (size_t)r->nmx * sizeof(*mx));
		r->mxi = 0;
		r->phase = RES_MX_HOSTS;
		res_step(r);
		return;
	case DNS_NODATA:
		/* RFC 5321 5.1: no MX, the name's own address records */
		r->phase = RES_HOST;
		res_step(r);
		return;
	case DNS_NXDOMAIN:
		res_error(r, RES_ERR_NOTFOUND, "Host or domain name not found. "
		    "Name service error for name=%s type=MX: Host not found",
		    h->host);
		break;
	default:
		res_error(r, RES_ERR_TEMP, "Host or domain name not found. "
		    "Name service error for name=%s type=MX: %s", h->host,
		    dns_status_name(st));
		break;
	}
	r->hop++;
	r->phase = RES_HOP;
	res_step(r);
}

/* res_finish - the list is complete (or empty: the destination fails) */
static void
res_finish(struct mta_resolve *r)
{
	struct mta_dest *d = r->d;
	struct mta_job *job;
	int perm;

	d->res = NULL;
	if (r->addrs->n > 0) {
		addrs_unref(d->addrs);
		d->addrs = r->addrs;
		d->addrs_at = mx_mono_us();
		free(r);
		dest_kick(d);
		return;
	}
	addrs_unref(r->addrs);
	if (r->err == RES_ERR_NONE)
		res_error(r, RES_ERR_TEMP, "no address for destination %s", d->key);
	/* A name that does not exist is final only for mail routed by MX
	 * (bounces, forwards): a legacy server or the hosting that does not
	 * resolve is our configuration's problem, and that can be fixed. */
	perm = r->err == RES_ERR_NULLMX ||
	    (r->err == RES_ERR_NOTFOUND && d->route.kind == ROUTE_MX);
	log_info("mta destination key=%s resolve failed perm=%d reason=\"%s\"",
	    d->key, perm, r->errtext);
	if (perm) {
		while ((job = d->qhead) != NULL) {
			d->qhead = job->next;
			job_fill(job, MTA_PERM, 0, r->err == RES_ERR_NULLMX ?
			    "5.1.10" : "5.4.4", r->errtext, 1);
			job_complete(job);
		}
		d->qtail = NULL;
	} else {
		int step;

		/* the lookup was the probe: back off as a whole */
		step = mta.cfg->nretry_schedule > 0 ? mta.cfg->retry_schedule[
		    d->failures < mta.cfg->nretry_schedule ? d->failures :
		    mta.cfg->nretry_schedule - 1] : MTA_DEFAULT_BACKOFF;
		d->failures++;
		d->down_until = mx_mono_us() + (uint64_t)step * MTA_US;
		d->down_code = 0;
		mx_strlcpy(d->down_status, r->err == RES_ERR_TEMP ? "4.4.3" :
		    "4.4.4", sizeof(d->down_status));
		mx_strlcpy(d->down_text, r->errtext, sizeof(d->down_text));
		d->down_relay[0] = '\0';
		log_info("mta destination key=%s down for=%ds failures=%d",
		    d->key, step, d->failures);
		/* the jobs that waited for this lookup get its own words */
		while ((job = d->qhead) != NULL) {
			d->qhead = job->next;
			job_fill(job, MTA_TEMP, 0, d->down_status, r->errtext, 1);
			job_complete(job);
		}
		d->qtail = NULL;
	}
	free(r);
	dest_kick(d);
}

/* res_step - the next lookup, or the end */
static void
res_step(struct mta_resolve *r)
{
	const struct route_hop *h;

	for (;;) {
		if (r->hop >= r->d->route.nhops) {
			res_finish(r);
			return;
		}
		h = &r->d->route.hops[r->hop];
		if (h->unix_path[0] != '\0') {
			addrs_add_unix(r->addrs, h->unix_path);
			r->hop++;
			continue;
		}
		switch (r->phase) {
		case RES_HOP:
			if (h->mx_lookup) {
				r->req = dns_resolve_mx(h->host, res_mx_cb, r);
				return;
			}
			r->phase = RES_HOST;
			continue;
		case RES_MX_HOSTS:
			r->req = dns_resolve_addr(r->mx[r->mxi].host, res_addr_cb, r);
			return;
		case RES_HOST:
			r->req = dns_resolve_addr(h->host, res_addr_cb, r);
			return;
		}
	}
}

/* dest_resolve - start resolving the hops unless already under way */
static void
dest_resolve(struct mta_dest *d)
{
	struct mta_resolve *r;

	if (d->res != NULL)
		return;
	r = xcalloc(1, sizeof(*r));
	r->d = d;
	r->addrs = xcalloc(1, sizeof(*r->addrs));
	r->addrs->refs = 1;
	r->phase = RES_HOP;
	d->res = r;
	res_step(r);
}

/* res_cancel - drop a resolution in progress */
static void
res_cancel(struct mta_dest *d)
{
	if (d->res == NULL)
		return;
	if (d->res->req != NULL)
		dns_cancel(d->res->req);
	addrs_unref(d->res->addrs);
	free(d->res);
	d->res = NULL;
}

/* ------------------------------------------------------------------ */
/* destinations                                                        */

/* hop_equal - the same server? */
static int
hop_equal(const struct route_hop *x, const struct route_hop *y)
{
	return strcmp(x->host, y->host) == 0 && x->port == y->port &&
	    x->mx_lookup == y->mx_lookup && strcmp(x->unix_path, y->unix_path) == 0;
}

/* hops_equal - the same servers? In any order: route.c shuffles servers
 * of equal preference per attempt, and that is no change of servers. */
static int
hops_equal(const struct route *a, const struct route *b)
{
	if (a->nhops != b->nhops || a->lmtp != b->lmtp)
		return 0;
	for (int i = 0; i < a->nhops; i++) {
		int found = 0;

		for (int j = 0; j < b->nhops && !found; j++)
			found = hop_equal(&a->hops[i], &b->hops[j]);
		if (!found)
			return 0;
	}
	return 1;
}

/* dest_get - the destination of route r, created on first use */
static struct mta_dest *
dest_get(const struct route *r)
{
	struct mta_dest *d = dict_get(mta.dests, r->key);

	if (d == NULL) {
		d = xcalloc(1, sizeof(*d));
		mx_strlcpy(d->key, r->key, sizeof(d->key));
		d->route = *r;
		dict_put(mta.dests, d->key, d);
		return d;
	}
	if (!hops_equal(&d->route, r)) {
		/* the servers changed (relayctl domain set): new connections
		 * only, the old ones finish their job and leave */
		log_info("mta destination key=%s servers changed", d->key);
		d->route = *r;
		d->gen++;
		addrs_unref(d->addrs);
		d->addrs = NULL;
		res_cancel(d);
		d->failures = 0;
		d->down_until = 0;
	}
	return d;
}

/* dest_push - queue a job at the tail */
static void
dest_push(struct mta_dest *d, struct mta_job *job)
{
	job->next = NULL;
	if (d->qtail != NULL)
		d->qtail->next = job;
	else
		d->qhead = job;
	d->qtail = job;
}

/* dest_push_front - give a job back at the head (it keeps its turn) */
static void
dest_push_front(struct mta_dest *d, struct mta_job *job)
{
	job->next = d->qhead;
	d->qhead = job;
	if (d->qtail == NULL)
		d->qtail = job;
}

/* dest_pop - the next waiting job, or NULL */
static struct mta_job *
dest_pop(struct mta_dest *d)
{
	struct mta_job *job = d->qhead;

	if (job != NULL) {
		d->qhead = job->next;
		if (d->qhead == NULL)
			d->qtail = NULL;
		job->next = NULL;
	}
	return job;
}

/* dest_established - connections of d that are up, but skip */
static int
dest_established(const struct mta_dest *d, const struct mta_conn *skip)
{
	int n = 0;

	for (const struct mta_conn *c = d->conns; c != NULL; c = c->next)
		n += c != skip && c->established;
	return n;
}

/* dest_can_open - room for one more connection? While none is up, the
 * one being opened is the probe: no second one. Then the count at most
 * doubles per round of greetings. */
static int
dest_can_open(const struct mta_dest *d)
{
	int max = mta.cfg->max_connections_per_destination, est;

	if (max < 1)
		max = 1;
	if (d->limit_until > mx_mono_us() && d->limit < max)
		max = d->limit;
	if (d->nconns >= max)
		return 0;
	if (d->nconns == 0)
		return 1;
	/* slow start: no more connections being opened than are up, so a
	 * server that takes only a few is found out after few refusals */
	est = dest_established(d, NULL);
	return est > 0 && d->nconns - est < est;
}

/* dest_backoff - every address failed and nothing is up: down until
 * now + retry_schedule[failures] */
static void
dest_backoff(struct mta_dest *d, const struct sc_error *err, const char *relay)
{
	int n = mta.cfg->nretry_schedule, step;

	step = n > 0 ? mta.cfg->retry_schedule[d->failures < n ? d->failures :
	    n - 1] : MTA_DEFAULT_BACKOFF;
	d->failures++;
	d->down_until = mx_mono_us() + (uint64_t)step * MTA_US;
	d->down_code = err->code;
	soft_status(err->status, d->down_status, sizeof(d->down_status));
	mx_strlcpy(d->down_text, err->text, sizeof(d->down_text));
	mx_strlcpy(d->down_relay, relay, sizeof(d->down_relay));
	log_info("mta destination key=%s down for=%ds failures=%d reason=\"%s\"",
	    d->key, step, d->failures, err->text);
}

/* dest_flush_down - complete the waiting jobs of a backed-off destination */
static void
dest_flush_down(struct mta_dest *d)
{
	struct mta_job *job;
	char text[MTA_REPLY_MAX];

	snprintf(text, sizeof(text), "destination backed off: %.*s",
	    (int)(sizeof(text) - 32), d->down_text);
	while ((job = dest_pop(d)) != NULL) {
		mx_strlcpy(job->relay, d->down_relay, sizeof(job->relay));
		job_fill(job, MTA_TEMP, d->down_code, d->down_status, text, 1);
		job_complete(job);
	}
}

/* dest_unused - nothing refers to d and it is not down */
static int
dest_unused(const struct mta_dest *d)
{
	return d->qhead == NULL && d->conns == NULL && d->res == NULL &&
	    !d->kick_pending && d->down_until <= mx_mono_us();
}

/* dest_free - free an unused destination */
static void
dest_free(struct mta_dest *d)
{
	res_cancel(d);
	addrs_unref(d->addrs);
	free(d);
}

/* dest_kick - run the destination's dispatch from the loop, soon */
static void
dest_kick(struct mta_dest *d)
{
	if (d->kick_pending)
		return;
	d->kick_pending = 1;
	d->kick_next = mta.kicks;
	mta.kicks = d;
	event_active(mta.kick, EV_TIMEOUT, 0);
}

/* mta_kick_cb - dispatch every kicked destination, free the unused ones */
static void
mta_kick_cb(evutil_socket_t fd, short what, void *arg)
{
	struct mta_dest *list = mta.kicks, *d;

	mta.kicks = NULL;
	while ((d = list) != NULL) {
		list = d->kick_next;
		d->kick_pending = 0;
		dest_dispatch(d);
		if (dest_unused(d)) {
			dict_del(mta.dests, d->key);
			dest_free(d);
		}
	}
}

/* ------------------------------------------------------------------ */
/* connections                                                         */

/* conn_idle_cb - MTA_IDLE_SECS without a job: QUIT */
static void
conn_idle_cb(evutil_socket_t fd, short what, void *arg);

/* conn_connect - a session to the current address */
static void
conn_connect(struct mta_conn *c)
{
	const struct mta_addr *a = &c->addrs->a[c->ai];
	struct sc_params p;

	memset(&p, 0, sizeof(p));
	p.base = mta.base;
	p.ssl_ctx = mta.ssl;
	/* a unix socket is local: no TLS there */
	p.tls = c->notls || a->ss.ss_family == AF_UNIX ? TLS_OUT_NONE :
	    mta.cfg->tls_outbound;
	p.lmtp = c->d->route.lmtp;
	p.helo_name = mta.cfg->hostname ? mta.cfg->hostname : "localhost";
	p.connect_timeout = mta.cfg->connect_timeout;
	p.host = a->host;
	p.sa = (const struct sockaddr *)&a->ss;
	p.salen = a->sslen;
	p.relay = a->relay;
	c->established = 0;
	c->sc = smtp_client_new(&p, conn_cb, c);
}

/* conn_open - a new connection for job: walks the addresses from the first */
static struct mta_conn *
conn_open(struct mta_dest *d, struct mta_job *job)
{
	struct mta_conn *c = xcalloc(1, sizeof(*c));

	c->d = d;
	c->addrs = addrs_ref(d->addrs);
	c->gen = d->gen;
	c->job = job;
	c->idle = evtimer_new(mta.base, conn_idle_cb, c);
	if (c->idle == NULL)
		fatalx("evtimer_new failed");
	c->next = d->conns;
	d->conns = c;
	d->nconns++;
	conn_connect(c);
	return c;
}

/* conn_free - unlink and free c (its session already gone or handed on) */
static void
conn_free(struct mta_conn *c)
{
	struct mta_dest *d = c->d;
	struct mta_conn **pp;

	for (pp = &d->conns; *pp != NULL; pp = &(*pp)->next)
		if (*pp == c) {
			*pp = c->next;
			break;
		}
	d->nconns--;
	event_free(c->idle);
	addrs_unref(c->addrs);
	free(c);
}

/* quit_cb - events of a leaving session: free it when closed */
static void
quit_cb(struct smtp_client *sc, enum sc_event ev, void *arg)
{
	struct mta_quitting *q = arg;

	if (ev != SC_EV_CLOSED)
		return;
	if (q->prev != NULL)
		q->prev->next = q->next;
	else
		mta.quitting = q->next;
	if (q->next != NULL)
		q->next->prev = q->prev;
	smtp_client_free(sc);
	free(q);
}

/* conn_release_session - the session says QUIT and lives on its own
 * until the server closes; c no longer has one */
static void
conn_release_session(struct mta_conn *c)
{
	struct mta_quitting *q = xcalloc(1, sizeof(*q));

	q->sc = c->sc;
	q->next = mta.quitting;
	if (q->next != NULL)
		q->next->prev = q;
	mta.quitting = q;
	smtp_client_set_cb(c->sc, quit_cb, q);
	smtp_client_quit(c->sc);
	c->sc = NULL;
	c->established = 0;
}

/* conn_quit - done with c: QUIT and forget it */
static void
conn_quit(struct mta_conn *c)
{
	struct mta_dest *d = c->d;

	evtimer_del(c->idle);
	if (c->sc != NULL)
		conn_release_session(c);
	conn_free(c);
	dest_kick(d);
}

/* conn_idle_cb - MTA_IDLE_SECS without a job: QUIT */
static void
conn_idle_cb(evutil_socket_t fd, short what, void *arg)
{
	struct mta_conn *c = arg;

	log_debug("mta destination key=%s relay=%s idle, closing", c->d->key,
	    c->addrs->a[c->ai].relay);
	conn_quit(c);
}

/* conn_run - start job on c's ready session. Returns 1 when started;
 * 0 when the session finished it at once (completed here). */
static int
conn_run(struct mta_conn *c, struct mta_job *job)
{
	c->job = job;
	if (smtp_client_start(c->sc, job))
		return 1;
	c->job = NULL;
	job_complete(job);
	return 0;
}

/* conn_next_job - c is ready: the next waiting job, or idle */
static void
conn_next_job(struct mta_conn *c)
{
	struct mta_dest *d = c->d;
	struct mta_job *job;
	struct timeval tv = { MTA_IDLE_SECS, 0 };

	while (c->sc != NULL && c->job == NULL && smtp_client_ready(c->sc)) {
		if (c->gen != d->gen) {
			conn_quit(c);	/* servers changed: do not reuse */
			return;
		}
		if ((job = dest_pop(d)) == NULL) {
			evtimer_add(c->idle, &tv);
			return;
		}
		evtimer_del(c->idle);
		c->job_has_result = 0;
		if (conn_run(c, job))
			return;
	}
}

/* conn_exhausted - c tried every address for its job without a usable
 * session: the job fails here, the destination may be down */
static void
conn_exhausted(struct mta_conn *c)
{
	struct mta_dest *d = c->d;
	struct mta_job *job = c->job;
	const char *relay = c->addrs->a[c->addrs->n - 1].relay;

	c->job = NULL;
	if (!c->answered && dest_established(d, c) > 0) {
		/* others are up: this one was refused (too many connections?):
		 * give the job back and open no more for a while */
		int est = dest_established(d, c);
		uint64_t now = mx_mono_us();

		if (d->limit_until <= now || est < d->limit)
			log_info("mta destination key=%s concurrency lowered "
			    "to %d: %s", d->key, est, c->lasterr.text);
		d->limit = est;
		d->limit_until = now + MTA_LIMIT_SECS * MTA_US;
		dest_push_front(d, job);
		conn_free(c);
		dest_kick(d);
		return;
	}
	if (!c->answered)
		dest_backoff(d, &c->lasterr, relay);
	if (!c->job_has_result) {
		char status[16];

		soft_status(c->lasterr.status, status, sizeof(status));
		mx_strlcpy(job->relay, relay, sizeof(job->relay));
		job_fill(job, MTA_TEMP, c->lasterr.code, status, c->lasterr.text, 1);
	}
	conn_free(c);
	job_complete(job);
	dest_kick(d);
}

/* conn_next_addr - the session to the current address is gone before it
 * was usable: the same address without TLS, the next one, or give up */
static void
conn_next_addr(struct mta_conn *c)
{
	if (c->lasterr.tls_failed && !c->notls &&
	    mta.cfg->tls_outbound == TLS_OUT_OPPORTUNISTIC) {
		/* opportunistic: a broken TLS stack is no reason to defer */
		log_info("mta relay=%s retrying without TLS",
		    c->addrs->a[c->ai].relay);
		c->notls = 1;
		conn_connect(c);
		return;
	}
	c->notls = 0;
	if (++c->ai < c->addrs->n) {
		conn_connect(c);
		return;
	}
	conn_exhausted(c);
}

/* conn_on_job - the session handed back c->job */
static void
conn_on_job(struct mta_conn *c)
{
	struct mta_dest *d = c->d;
	struct mta_job *job = c->job;

	c->job = NULL;
	switch (smtp_client_job_disp(c->sc)) {
	case SC_JOB_FINAL:
		job_complete(job);
		break;
	case SC_JOB_FAILOVER:
		/* SPEC 6: 4xx to MAIL or to every RCPT: the next server if
		 * there is one; this connection moves on with the job */
		if (c->ai + 1 < c->addrs->n) {
			log_info("%s mta relay=%s deferred the transaction, trying "
			    "the next server", job->msgid, c->addrs->a[c->ai].relay);
			c->job = job;
			c->job_has_result = 1;
			evtimer_del(c->idle);
			conn_release_session(c);
			c->notls = 0;
			c->ai++;
			conn_connect(c);
			return;
		}
		job_complete(job);
		break;
	case SC_JOB_REQUEUE:
		dest_push_front(d, job);
		dest_kick(d);
		break;
	}
}

/* conn_on_closed - c's session is gone */
static void
conn_on_closed(struct mta_conn *c)
{
	struct mta_dest *d = c->d;

	c->lasterr = *smtp_client_error(c->sc);
	smtp_client_free(c->sc);
	c->sc = NULL;
	c->established = 0;
	if (c->job != NULL) {
		/* the session never became usable for the carried job */
		conn_next_addr(c);
		return;
	}
	evtimer_del(c->idle);
	conn_free(c);
	dest_kick(d);
}

/* conn_cb - events of c's session */
static void
conn_cb(struct smtp_client *sc, enum sc_event ev, void *arg)
{
	struct mta_conn *c = arg;
	struct mta_dest *d = c->d;

	switch (ev) {
	case SC_EV_READY:
		if (!c->established) {
			c->established = 1;
			c->answered = 1;
			d->failures = 0;
			d->down_until = 0;
		}
		/* the job that opened c (or failed over to it), else the
		 * next waiting one */
		if (c->job == NULL || !conn_run(c, c->job))
			conn_next_job(c);
		if (d->qhead != NULL)
			dest_kick(d);	/* the probe got through: open more */
		break;
	case SC_EV_JOB:
		conn_on_job(c);
		break;
	case SC_EV_CLOSED:
		conn_on_closed(c);
		break;
	}
}

/* ------------------------------------------------------------------ */
/* dispatch                                                            */

static void
dest_dispatch(struct mta_dest *d)
{
	struct mta_conn *c, *next;
	uint64_t now = mx_mono_us();

	if (d->qhead == NULL)
		return;
	if (d->down_until > now) {
		dest_flush_down(d);
		return;
	}
	/* idle connections first */
	for (c = d->conns; c != NULL && d->qhead != NULL; c = next) {
		next = c->next;
		if (c->established && c->job == NULL && c->sc != NULL &&
		    smtp_client_ready(c->sc))
			conn_next_job(c);
	}
	while (d->qhead != NULL && dest_can_open(d)) {
		if (d->addrs == NULL ||
		    now - d->addrs_at > MTA_ADDR_TTL_SECS * MTA_US) {
			dest_resolve(d);	/* dispatch again when done */
			return;
		}
		conn_open(d, dest_pop(d));
	}
}

/* ------------------------------------------------------------------ */
/* API                                                                 */

/* mta_sweep_cb - forget destinations nobody uses and that are not down */
static void
mta_sweep_cb(evutil_socket_t fd, short what, void *arg);

struct sweep_ctx {
	struct mta_dest **v;
	size_t n;
};

/* sweep_collect - dict_walk helper of mta_sweep_cb */
static int
sweep_collect(const char *key, void *val, void *arg)
{
	struct sweep_ctx *sw = arg;

	if (dest_unused(val))
		sw->v[sw->n++] = val;
	return 0;
}

static void
mta_sweep_cb(evutil_socket_t fd, short what, void *arg)
{
	struct sweep_ctx sw;
	size_t n = dict_count(mta.dests);

	if (n == 0)
		return;
	sw.v = xcalloc(n, sizeof(*sw.v));
	sw.n = 0;
	dict_walk(mta.dests, sweep_collect, &sw);
	for (size_t i = 0; i < sw.n; i++) {
		dict_del(mta.dests, sw.v[i]->key);
		dest_free(sw.v[i]);
	}
	free(sw.v);
}

/* mta_init - client TLS context, destination table, kick and sweep events */
int
mta_init(struct event_base *base, const struct config *cfg, char *err,
    size_t errlen)
{
	struct timeval tv = { MTA_SWEEP_SECS, 0 };

	memset(&mta, 0, sizeof(mta));
	mta.base = base;
	mta.cfg = cfg;
	mta.ssl = SSL_CTX_new(TLS_client_method());
	if (mta.ssl == NULL) {
		snprintf(err, errlen, "SSL_CTX_new: %s",
		    ERR_error_string(ERR_get_error(), NULL));
		return -1;
	}
	/* TLS 1.2 at least (RFC 8996). No certificate verification: MX
	 * names come from unauthenticated DNS (RFC 7672 1.3), so even
	 * "required" means encryption, not authentication (Postfix's
	 * "encrypt" level). */
	SSL_CTX_set_min_proto_version(mta.ssl, TLS1_2_VERSION);
	SSL_CTX_set_options(mta.ssl, SSL_OP_NO_COMPRESSION |
	    SSL_OP_NO_RENEGOTIATION);
	SSL_CTX_set_verify(mta.ssl, SSL_VERIFY_NONE, NULL);
	SSL_CTX_set_mode(mta.ssl, SSL_MODE_RELEASE_BUFFERS);
	mta.dests = dict_new();
	mta.kick = event_new(base, -1, 0, mta_kick_cb, NULL);
	mta.sweep = event_new(base, -1, EV_PERSIST, mta_sweep_cb, NULL);
	if (mta.kick == NULL || mta.sweep == NULL) {
		snprintf(err, errlen, "event_new failed");
		return -1;
	}
	event_add(mta.sweep, &tv);
	return 0;
}

/* mta_reload - take the new configuration; connections keep theirs */
void
mta_reload(const struct config *cfg)
{
	mta.cfg = cfg;
}

/* mta_submit - queue job on its destination; dispatched from the loop */
void
mta_submit(struct mta_job *job)
{
	struct mta_dest *d;

	job->next = NULL;
	job->attempted = 0;
	job->relay[0] = '\0';
	job->tls[0] = '\0';
	job_fill(job, MTA_NOT_TRIED, 0, "", "", 1);
	if (mta.closing) {
		/* mta_close completes it, not this call */
		if (mta.late_tail != NULL)
			mta.late_tail->next = job;
		else
			mta.late = job;
		mta.late_tail = job;
		return;
	}
	if (mta.base == NULL)
		fatalx("mta_submit before mta_init");
	d = dest_get(&job->route);
	/* the operator's preflight is the destination's health probe: it
	 * is tried now even when deliveries are backed off */
	if (job->rcpt_only)
		d->down_until = 0;
	dest_push(d, job);
	dest_kick(d);
}

/* close_collect - take every job of d, free its connections */
static int
close_collect(const char *key, void *val, void *arg)
{
	struct mta_dest *d = val;
	struct mta_job **list = arg, *job;
	struct mta_conn *c;

	while ((c = d->conns) != NULL) {
		if (c->job != NULL) {
			c->job->next = *list;
			*list = c->job;
		}
		if (c->sc != NULL)
			smtp_client_free(c->sc);
		c->sc = NULL;
		conn_free(c);
	}
	while ((job = dest_pop(d)) != NULL) {
		job->next = *list;
		*list = job;
	}
	return 0;
}

/* close_free_dest - dict_free helper of mta_close */
static void
close_free_dest(void *val)
{
	dest_free(val);
}

/* mta_close - free everything, then complete what is left as not tried */
void
mta_close(void)
{
	struct mta_job *list = NULL, *job;
	struct mta_quitting *q;

	if (mta.base == NULL)
		return;
	mta.closing = 1;
	dict_walk(mta.dests, close_collect, &list);
	dict_free(mta.dests, close_free_dest);
	mta.dests = NULL;
	while ((q = mta.quitting) != NULL) {
		mta.quitting = q->next;
		smtp_client_free(q->sc);
		free(q);
	}
	event_free(mta.kick);
	event_free(mta.sweep);
	SSL_CTX_free(mta.ssl);
	/* what has no result yet was not tried */
	for (;;) {
		if (list == NULL) {
			list = mta.late;
			mta.late = mta.late_tail = NULL;
			if (list == NULL)
				break;
		}
		job = list;
		list = job->next;
		job_fill(job, MTA_NOT_TRIED, 0, "", "", 0);
		job_complete(job);
	}
	memset(&mta, 0, sizeof(mta));
}
