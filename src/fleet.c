/* fleet.c - the hosts that share one PostgreSQL state: change log,
 * notifications, leases, switch acknowledgements (see fleet.h)
 *
 * Threads. The fleet thread owns its own libpq connection and does every
 * database call: it waits in poll() on PQsocket (notifications) and on a
 * pipe from the loop, reads change_log from the last id it read, renews
 * the lease, reports what the loop applied, polls the hosts table for
 * the switches waiting on it, and reconnects with a backoff after the
 * database went away. The loop thread applies what the thread posts (in
 * order, one batch per loop turn, so SMTP sessions are served between
 * batches) and answers fleet_may_deliver and fleet_await from memory.
 *
 * Why a switch holds on every host: the switch commits (change_log id C)
 * and then waits until every other host with a live lease has applied
 * C, or its lease expired by the database's clock. A host's own idea of
 * its lease ends earlier than the database's (it counts from before it
 * sent the renewal), and after a lapse it delivers again only once it
 * has applied the log up to the head it read with its new lease, which
 * is at least C.
 */
#include "autoconf.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <libpq-fe.h>
#include <event2/event.h>

#include "fleet.h"
#include "jsonw.h"
#include "log.h"
#include "queue.h"
#include "stats.h"
#include "store.h"
#include "store_backend.h"
#include "switch.h"
#include "util.h"

#define FLEET_BATCH_MAX		1000	/* change_log rows per read */
#define FLEET_AWAIT_POLL_MS	5	/* a switch waiting polls hosts */
#define FLEET_BACKOFF_MIN_MS	200	/* reconnect after a failure */
#define FLEET_BACKOFF_MAX_MS	5000
#define FLEET_INT_MAX		24

#define NOW_MS	"(extract(epoch from clock_timestamp()) * 1000)::bigint"

enum post_type { POST_BATCH, POST_LEASE, POST_AWAIT, POST_HOSTS };

struct fleet_host {
	char name[FLEET_NAME_MAX];
	long long lease_left_ms;	/* < 0: expired that long ago */
	long long applied;
	long long drained;
	long long queue;
	int pid;
};

struct await {
	struct await *next;
	long long version;
	int drained;			/* wait for drained, not applied */
	uint64_t t0;			/* mono us, when it was asked */
	int started;			/* hosts captured */
	struct fleet_answer ans[FLEET_HOSTS_MAX];
	int answered[FLEET_HOSTS_MAX];
	size_t n;
	fleet_await_fn fn;
	void *arg;
};

/* a message from the thread to the loop */
struct post {
	struct post *next;
	enum post_type type;
	struct store_change *ch;	/* POST_BATCH */
	size_t nch;
	long long upto;			/* POST_BATCH: last id; POST_LEASE: head */
	uint64_t lease_until;		/* POST_LEASE: mono us */
	struct await *aw;		/* POST_AWAIT */
	struct fleet_host *hosts;	/* POST_HOSTS */
	size_t nhosts;
};

static struct {
	const struct config *cfg;
	int enabled;
	pthread_t thread;
	int thread_started;
	pthread_mutex_t mu;
	int wake[2];			/* loop -> thread */
	struct event *post_ev;		/* thread -> loop */
	struct event *tick;		/* loop: lease lapse check */
	char *name;
	char *origin;
	int lease_ms, renew_ms;
	time_t started;

	/* under mu */
	struct post *posts, *posts_tail;
	struct await *awaits_new;	/* asked, not yet seen by the thread */
	long long applied;		/* id the loop has applied */
	long long drained;		/* ... and whose old routes are idle */
	long long queue;		/* messages queued here */
	int stop;

	/* loop thread only */
	uint64_t lease_until;		/* mono us */
	long long head_needed;		/* applied must reach it to deliver */
	int delivering;			/* last answer of may_deliver */
	long long *drains;		/* versions with deliveries to drain */
	size_t ndrains;
	struct fleet_host *hosts;	/* last snapshot of the hosts table */
	size_t nhosts;
	uint64_t hosts_at;

	/* fleet thread only */
	PGconn *conn;
	long long read_id;		/* change_log read up to */
	long long acked;		/* applied as written in hosts */
	long long acked_drained;
	struct await *awaits;
	int connected_once;
} fl;

/* Loop -> thread */

static void
wake_thread(void)
{
	char c = 1;

	if (write(fl.wake[1], &c, 1) == -1 && errno != EAGAIN)
		log_warnx("fleet: wake: %s", strerror(errno));
}

/* Thread -> loop */

static void
post_send(struct post *p)
{
	pthread_mutex_lock(&fl.mu);
	p->next = NULL;
	if (fl.posts_tail)
		fl.posts_tail->next = p;
	else
		fl.posts = p;
	fl.posts_tail = p;
	pthread_mutex_unlock(&fl.mu);
	event_active(fl.post_ev, EV_READ, 0);
}

/* The fleet thread: database */

static int
th_exec(const char *sql, int np, const char *const *vals, PGresult **out)
{
	PGresult *res = PQexecParams(fl.conn, sql, np, NULL, vals, NULL, NULL, 0);
	ExecStatusType st = PQresultStatus(res);

	if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
		const char *m = res ? PQresultErrorMessage(res) :
		    PQerrorMessage(fl.conn);
		log_warnx("fleet database error: %.*s", (int)strcspn(m, "\n"), m);
		PQclear(res);
		return -1;
	}
	if (out)
		*out = res;
	else
		PQclear(res);
	return 0;
}

/* servers_parse - "host port pref,host port pref" in position order */
static int
servers_parse(const char *s, struct legacy_server **out)
{
	struct legacy_server *v = xcalloc(STORE_MAX_SERVERS + 1, sizeof(*v));
	int n = 0;

	while (s && *s && n < STORE_MAX_SERVERS) {
		if (sscanf(s, "%255s %d %d", v[n].host, &v[n].port, &v[n].pref) == 3)
			n++;
		s = strchr(s, ',');
		if (s)
			s++;
	}
	*out = v;
	return n;
}

/* change_from_row - one change_log row with the current state of its key */
static void
change_from_row(PGresult *res, int i, struct store_change *c)
{
	memset(c, 0, sizeof(*c));
	c->key = xstrdup(PQgetvalue(res, i, 1));
	c->version = strtoll(PQgetvalue(res, i, 16), NULL, 10);
	if (strcmp(PQgetvalue(res, i, 0), "domain") == 0) {
		c->kind = STORE_CH_DOMAIN;
		c->present = !PQgetisnull(res, i, 3);
		if (!c->present)
			return;
		c->mode = strcmp(PQgetvalue(res, i, 3), "hosted") == 0 ?
		    MODE_HOSTED : MODE_LEGACY;
		c->created = (time_t)strtoll(PQgetvalue(res, i, 4), NULL, 10);
		c->nservers = servers_parse(PQgetvalue(res, i, 5), &c->servers);
		c->has_sched = !PQgetisnull(res, i, 6);
		if (c->has_sched) {
			c->sched.at = (time_t)strtoll(PQgetvalue(res, i, 6), NULL, 10);
			c->sched.mode = strcmp(PQgetvalue(res, i, 7), "hosted") == 0 ?
			    MODE_HOSTED : MODE_LEGACY;
			c->sched.uid = (uid_t)strtoll(PQgetvalue(res, i, 8), NULL, 10);
			c->sched.force = atoi(PQgetvalue(res, i, 9)) != 0;
			c->sched.created = (time_t)strtoll(PQgetvalue(res, i, 10),
			    NULL, 10);
		}
		c->verify_legacy = atoi(PQgetvalue(res, i, 17)) != 0;
		if (!PQgetisnull(res, i, 18)) {
			c->mx.picture = store_mx_picture_parse(PQgetvalue(res, i,
			    18));
			c->mx.checked = (time_t)strtoll(PQgetvalue(res, i, 19),
			    NULL, 10);
			c->mx.since = (time_t)strtoll(PQgetvalue(res, i, 20), NULL,
			    10);
			c->mx.prev_ttl = strtol(PQgetvalue(res, i, 21), NULL, 10);
			c->mx.other_ttl = strtol(PQgetvalue(res, i, 22), NULL, 10);
		}
		return;
	}
	c->kind = STORE_CH_ADDRESS;
	/* the old server's verification is apart from the table entry: an
	 * address may have either, both or none */
	c->has_verified = !PQgetisnull(res, i, 24);
	if (c->has_verified) {
		c->verified.verified = (time_t)strtoll(PQgetvalue(res, i, 24),
		    NULL, 10);
		c->verified.expires = (time_t)strtoll(PQgetvalue(res, i, 25),
		    NULL, 10);
	}
	c->present = !PQgetisnull(res, i, 11);
	if (!c->present)
		return;
	c->addr = store_addr_from_columns(PQgetvalue(res, i, 11),
	    PQgetvalue(res, i, 12), PQgetvalue(res, i, 13),
	    PQgetvalue(res, i, 14), atoi(PQgetvalue(res, i, 15)));
	if (!PQgetisnull(res, i, 23))
		store_route_parse(PQgetvalue(res, i, 23), &c->addr->route);
}

/* th_read_changes - post every change_log row after read_id, with the
 * current rows of its key; this host's own changes are in its index
 * already and are passed over (but counted as applied) */
static int
th_read_changes(void)
{
	static const char sql[] =
	    "SELECT c.kind, c.key, c.origin, d.mode, d.created,"
	    " (SELECT string_agg(l.host || ' ' || l.port || ' ' || l.pref, ','"
	    "   ORDER BY l.position) FROM legacy_servers l"
	    "   WHERE c.kind = 'domain' AND l.domain = c.key),"
	    " s.at, s.to_mode, s.uid, s.force, s.created,"
	    " a.address, a.kind, a.destinations, a.cc, a.nofilter, c.id,"
	    " d.verify_legacy, m.picture, m.checked, m.since, m.prev_ttl,"
	    " m.other_ttl, r.route, v.verified, v.expires"
	    " FROM change_log c"
	    " LEFT JOIN domains d ON c.kind = 'domain' AND d.name = c.key"
	    " LEFT JOIN switch_schedule s ON c.kind = 'domain' AND s.domain = c.key"
	    " LEFT JOIN mx_watch m ON c.kind = 'domain' AND m.domain = c.key"
	    " LEFT JOIN addresses a ON c.kind = 'address' AND a.address = c.key"
	    " LEFT JOIN address_routes r ON c.kind = 'address' AND r.address = c.key"
	    " LEFT JOIN verified_addresses v ON c.kind = 'address'"
	    " AND v.address = c.key"
	    " WHERE c.id > $1 ORDER BY c.id LIMIT $2";
	char from[FLEET_INT_MAX], limit[FLEET_INT_MAX];
	const char *vals[] = { from, limit };
	PGresult *res;
	int n;

	do {
		struct post *p;

		snprintf(from, sizeof(from), "%lld", fl.read_id);
		snprintf(limit, sizeof(limit), "%d", FLEET_BATCH_MAX);
		if (th_exec(sql, 2, vals, &res) == -1)
			return -1;
		n = PQntuples(res);
		if (n > 0) {
			p = xcalloc(1, sizeof(*p));
			p->type = POST_BATCH;
			p->ch = xcalloc((size_t)n, sizeof(*p->ch));
			for (int i = 0; i < n; i++)
				if (strcmp(PQgetvalue(res, i, 2), fl.origin) != 0)
					change_from_row(res, i, &p->ch[p->nch++]);
			fl.read_id = strtoll(PQgetvalue(res, n - 1, 16), NULL, 10);
			p->upto = fl.read_id;
			post_send(p);
		}
		PQclear(res);
	} while (n == FLEET_BATCH_MAX);
	return 0;
}

/* th_hosts - the hosts table, as the database's clock sees the leases */
static int
th_hosts(struct fleet_host **out, size_t *n)
{
	PGresult *res;
	struct fleet_host *v;

	if (th_exec("SELECT name, lease_until - " NOW_MS ", applied, queue, pid, "
	    "drained FROM hosts ORDER BY name", 0, NULL, &res) == -1)
		return -1;
	*n = (size_t)PQntuples(res);
	v = xcalloc(*n + 1, sizeof(*v));
	for (size_t i = 0; i < *n; i++) {
		mx_strlcpy(v[i].name, PQgetvalue(res, (int)i, 0), sizeof(v[i].name));
		v[i].lease_left_ms = strtoll(PQgetvalue(res, (int)i, 1), NULL, 10);
		v[i].applied = strtoll(PQgetvalue(res, (int)i, 2), NULL, 10);
		v[i].queue = strtoll(PQgetvalue(res, (int)i, 3), NULL, 10);
		v[i].pid = atoi(PQgetvalue(res, (int)i, 4));
		v[i].drained = strtoll(PQgetvalue(res, (int)i, 5), NULL, 10);
	}
	PQclear(res);
	*out = v;
	return 0;
}

/* th_renew - register or renew this host's lease, then read the change
 * log; posts the new local lease end with the log head read in the same
 * statement, after the changes (the loop must have applied up to the
 * head before it delivers again) */
static int
th_renew(void)
{
	char pid[FLEET_INT_MAX], started[FLEET_INT_MAX], lease[FLEET_INT_MAX],
	    applied[FLEET_INT_MAX], queue[FLEET_INT_MAX];
	const char *vals[] = { fl.name, pid, PACKAGE_VERSION, started, lease,
	    applied, queue };
	uint64_t t_send = mx_mono_us();
	struct fleet_host *hosts;
	size_t nhosts;
	struct post *p;
	PGresult *res;
	long long head;

	pthread_mutex_lock(&fl.mu);
	snprintf(applied, sizeof(applied), "%lld", fl.applied);
	snprintf(queue, sizeof(queue), "%lld", fl.queue);
	pthread_mutex_unlock(&fl.mu);
	snprintf(pid, sizeof(pid), "%ld", (long)getpid());
	snprintf(started, sizeof(started), "%lld", (long long)fl.started);
	snprintf(lease, sizeof(lease), "%d", fl.lease_ms);
	if (th_exec("INSERT INTO hosts (name, pid, version, started, lease_until, "
	    "applied, queue) VALUES ($1, $2, $3, $4, " NOW_MS " + $5, $6, $7) "
	    "ON CONFLICT (name) DO UPDATE SET pid = excluded.pid, "
	    "version = excluded.version, started = excluded.started, "
	    "lease_until = excluded.lease_until, applied = excluded.applied, "
	    "queue = excluded.queue "
	    "RETURNING (SELECT coalesce(max(id), 0) FROM change_log)",
	    7, vals, &res) == -1)
		return -1;
	head = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
	PQclear(res);
	if (th_read_changes() == -1)
		return -1;
	p = xcalloc(1, sizeof(*p));
	p->type = POST_LEASE;
	p->lease_until = t_send + (uint64_t)fl.lease_ms * 1000;
	p->upto = head;
	post_send(p);
	if (th_hosts(&hosts, &nhosts) == 0) {
		p = xcalloc(1, sizeof(*p));
		p->type = POST_HOSTS;
		p->hosts = hosts;
		p->nhosts = nhosts;
		post_send(p);
	}
	return 0;
}

/* th_ack - write what the loop has applied (a switch on another host
 * waits for it) */
static int
th_ack(void)
{
	char applied[FLEET_INT_MAX], drained[FLEET_INT_MAX];
	const char *vals[] = { fl.name, applied, drained };
	long long a, d;

	pthread_mutex_lock(&fl.mu);
	a = fl.applied;
	d = fl.drained;
	pthread_mutex_unlock(&fl.mu);
	if (a == fl.acked && d == fl.acked_drained)
		return 0;
	snprintf(applied, sizeof(applied), "%lld", a);
	snprintf(drained, sizeof(drained), "%lld", d);
	if (th_exec("UPDATE hosts SET applied = $2, drained = $3 WHERE name = $1",
	    3, vals, NULL) == -1)
		return -1;
	fl.acked = a;
	fl.acked_drained = d;
	return 0;
}

/* await_check - one look at the hosts for aw; 1 when it is answered */
static int
await_check(struct await *aw, const struct fleet_host *h, size_t nh)
{
	double ms = (double)(mx_mono_us() - aw->t0) / 1000.0;
	int left = 0;

	if (!aw->started) {
		/* the hosts that must answer: every other one with a live lease */
		for (size_t i = 0; i < nh && aw->n < FLEET_HOSTS_MAX; i++)
			if (strcmp(h[i].name, fl.name) != 0 && h[i].lease_left_ms > 0)
				mx_strlcpy(aw->ans[aw->n++].name, h[i].name,
				    sizeof(aw->ans[0].name));
		aw->started = 1;
	}
	for (size_t k = 0; k < aw->n; k++) {
		const struct fleet_host *x = NULL;

		if (aw->answered[k])
			continue;
		for (size_t i = 0; i < nh; i++)
			if (strcmp(h[i].name, aw->ans[k].name) == 0)
				x = &h[i];
		if (x != NULL && (aw->drained ? x->drained : x->applied) >=
		    aw->version) {
			aw->ans[k].applied = 1;
		} else if (x == NULL || x->lease_left_ms <= 0) {
			aw->ans[k].applied = 0;
		} else {
			left++;
			continue;
		}
		aw->ans[k].ms = ms;
		aw->answered[k] = 1;
	}
	return left == 0;
}

/* th_awaits - poll the hosts for the switches waiting */
static int
th_awaits(void)
{
	struct fleet_host *h;
	struct await **pp, *aw;
	size_t nh;

	pthread_mutex_lock(&fl.mu);
	while ((aw = fl.awaits_new) != NULL) {
		fl.awaits_new = aw->next;
		aw->next = fl.awaits;
		fl.awaits = aw;
	}
	pthread_mutex_unlock(&fl.mu);
	if (fl.awaits == NULL)
		return 0;
	if (th_hosts(&h, &nh) == -1)
		return -1;
	for (pp = &fl.awaits; (aw = *pp) != NULL; ) {
		if (await_check(aw, h, nh)) {
			struct post *p = xcalloc(1, sizeof(*p));

			*pp = aw->next;
			p->type = POST_AWAIT;
			p->aw = aw;
			post_send(p);
		} else
			pp = &aw->next;
	}
	free(h);
	return 0;
}

/* th_connect - (re)connect, LISTEN, and catch up from read_id */
static int
th_connect(void)
{
	char err[CONFIG_ERR_MAX];

	if ((fl.conn = store_pg_connect(fl.cfg, err, sizeof(err))) == NULL) {
		log_warnx("fleet: %s", err);
		return -1;
	}
	if (th_exec("LISTEN " FLEET_CHANNEL, 0, NULL, NULL) == -1)
		return -1;
	if (fl.connected_once) {
		log_info("fleet reconnected: catching up from change %lld",
		    fl.read_id);
		__atomic_add_fetch(&mx_stats.fleet_catchups, 1, __ATOMIC_RELAXED);
	}
	fl.connected_once = 1;
	fl.acked = fl.acked_drained = -1;
	return th_renew();
}

static void
th_disconnect(void)
{
	PQfinish(fl.conn);
	fl.conn = NULL;
}

/* th_drain - read the notifications; 1 when there was one */
static int
th_drain(void)
{
	PGnotify *n;
	int any = 0;

	if (PQconsumeInput(fl.conn) == 0)
		return -1;
	while ((n = PQnotifies(fl.conn)) != NULL) {
		any = 1;
		PQfreemem(n);
	}
	if (any)
		__atomic_add_fetch(&mx_stats.fleet_notifications, 1,
		    __ATOMIC_RELAXED);
	return any;
}

/* th_round - wait for a notification, the loop or the next renewal, and
 * do what is due; -1 when the connection failed */
static int
th_round(uint64_t *next_renew)
{
	struct pollfd pfd[2];
	uint64_t now = mx_mono_us();
	int timeout, got, waiting;
	char buf[64];

	timeout = now >= *next_renew ? 0 : (int)((*next_renew - now) / 1000) + 1;
	pthread_mutex_lock(&fl.mu);
	waiting = fl.awaits != NULL || fl.awaits_new != NULL;
	pthread_mutex_unlock(&fl.mu);
	if (waiting)
		timeout = timeout < FLEET_AWAIT_POLL_MS ? timeout :
		    FLEET_AWAIT_POLL_MS;
	pfd[0].fd = PQsocket(fl.conn);
	pfd[0].events = POLLIN;
	pfd[1].fd = fl.wake[0];
	pfd[1].events = POLLIN;
	if (poll(pfd, 2, timeout) == -1 && errno != EINTR)
		return -1;
	if (pfd[1].revents & POLLIN)
		while (read(fl.wake[0], buf, sizeof(buf)) > 0)
			;
	if ((got = th_drain()) == -1)
		return -1;
	if (got && th_read_changes() == -1)
		return -1;
	if (mx_mono_us() >= *next_renew) {
		/* the renewal also reads what a lost notification hid */
		*next_renew = mx_mono_us() + (uint64_t)fl.renew_ms * 1000;
		if (th_renew() == -1)
			return -1;
	}
	if (th_ack() == -1 || th_awaits() == -1)
		return -1;
	return 0;
}

static void *
fleet_thread(void *arg)
{
	unsigned backoff = FLEET_BACKOFF_MIN_MS;
	uint64_t next_renew = 0;

	for (;;) {
		pthread_mutex_lock(&fl.mu);
		int stop = fl.stop;
		pthread_mutex_unlock(&fl.mu);
		if (stop)
			break;
		if (fl.conn == NULL || PQstatus(fl.conn) != CONNECTION_OK) {
			if (fl.conn)
				th_disconnect();
			if (th_connect() == -1) {
				struct pollfd pfd = { fl.wake[0], POLLIN, 0 };

				th_disconnect();
				poll(&pfd, 1, (int)backoff);
				if ((backoff *= 2) > FLEET_BACKOFF_MAX_MS)
					backoff = FLEET_BACKOFF_MAX_MS;
				continue;
			}
			backoff = FLEET_BACKOFF_MIN_MS;
			next_renew = mx_mono_us() + (uint64_t)fl.renew_ms * 1000;
		}
		if (th_round(&next_renew) == -1) {
			log_warnx("fleet: lost the database: %s",
			    PQerrorMessage(fl.conn));
			th_disconnect();
		}
	}
	/* a clean stop gives up the lease: no switch waits for us */
	if (fl.conn && PQstatus(fl.conn) == CONNECTION_OK) {
		const char *vals[] = { fl.name };

		th_exec("UPDATE hosts SET lease_until = 0 WHERE name = $1", 1,
		    vals, NULL);
	}
	if (fl.conn)
		th_disconnect();
	return NULL;
}

/* The loop thread */

/* deliver_check - log and count a lapse, resume the queue after one */
static void
deliver_check(void)
{
	int ok = fleet_may_deliver();

	if (ok == fl.delivering)
		return;
	fl.delivering = ok;
	if (!ok) {
		mx_stats.fleet_lease_lapses++;
		log_warnx("fleet lease lapsed or behind the change log: no "
		    "delivery starts until this host has caught up");
	} else {
		log_info("fleet lease valid and caught up: deliveries resume");
		queue_make_due(NULL);
	}
}

/* drained_update - this host is drained below the oldest switch whose
 * old route still has deliveries in flight here */
static void
drained_update(void)
{
	long long d;

	pthread_mutex_lock(&fl.mu);
	d = fl.applied;
	for (size_t i = 0; i < fl.ndrains; i++)
		if (fl.drains[i] - 1 < d)
			d = fl.drains[i] - 1;
	fl.drained = d;
	pthread_mutex_unlock(&fl.mu);
}

void
fleet_drain_begin(long long version)
{
	if (!fl.enabled)
		return;
	fl.drains = xrealloc(fl.drains, (fl.ndrains + 1) * sizeof(*fl.drains));
	fl.drains[fl.ndrains++] = version;
	drained_update();
}

void
fleet_drain_end(long long version)
{
	if (!fl.enabled)
		return;
	for (size_t i = 0; i < fl.ndrains; i++)
		if (fl.drains[i] == version) {
			fl.drains[i] = fl.drains[--fl.ndrains];
			break;
		}
	drained_update();
	wake_thread();
}

static void
apply_batch(struct post *p)
{
	int flags;

	for (size_t i = 0; i < p->nch; i++) {
		struct store_change *c = &p->ch[i];
		struct switch_route old;
		int had = c->kind == STORE_CH_DOMAIN &&
		    switch_route_now(c->key, &old);

		flags = store_apply_change(c);
		if (flags && c->kind == STORE_CH_DOMAIN)
			switch_changed_elsewhere(c->key, c->version,
			    (flags & STORE_APPLIED_MODE) != 0,
			    (flags & STORE_APPLIED_SCHED) != 0, had ? &old : NULL);
		/* a pilot moved on another host: its waiting mail goes the
		 * new way now, as on the host that moved it */
		if ((flags & STORE_APPLIED_ROUTE) && strrchr(c->key, '@'))
			queue_make_due(strrchr(c->key, '@') + 1);
		store_change_clear(c);
	}
	free(p->ch);
	pthread_mutex_lock(&fl.mu);
	fl.applied = p->upto;
	fl.queue = mx_stats.queue_messages;
	pthread_mutex_unlock(&fl.mu);
	drained_update();
	if (p->nch > 0)
		log_debug("fleet applied changes=%zu upto=%lld", p->nch, p->upto);
	wake_thread();
}

/* post_event - one post per loop turn: a batch of changes is a slice */
static void
post_event(evutil_socket_t fd, short ev, void *arg)
{
	struct post *p;

	pthread_mutex_lock(&fl.mu);
	if ((p = fl.posts) != NULL && (fl.posts = p->next) == NULL)
		fl.posts_tail = NULL;
	pthread_mutex_unlock(&fl.mu);
	if (p == NULL)
		return;
	switch (p->type) {
	case POST_BATCH:
		apply_batch(p);
		break;
	case POST_LEASE:
		fl.lease_until = p->lease_until;
		if (p->upto > fl.head_needed)
			fl.head_needed = p->upto;
		break;
	case POST_AWAIT:
		p->aw->fn(p->aw->ans, p->aw->n, p->aw->arg);
		free(p->aw);
		break;
	case POST_HOSTS:
		free(fl.hosts);
		fl.hosts = p->hosts;
		fl.nhosts = p->nhosts;
		fl.hosts_at = mx_mono_us();
		break;
	}
	free(p);
	deliver_check();
	pthread_mutex_lock(&fl.mu);
	p = fl.posts;
	pthread_mutex_unlock(&fl.mu);
	if (p != NULL)
		event_active(fl.post_ev, EV_READ, 0);
}

static void
tick_event(evutil_socket_t fd, short ev, void *arg)
{
	deliver_check();
}

int
fleet_may_deliver(void)
{
	long long applied;

	if (!fl.enabled)
		return 1;
	pthread_mutex_lock(&fl.mu);
	applied = fl.applied;
	pthread_mutex_unlock(&fl.mu);
	return mx_mono_us() < fl.lease_until && applied >= fl.head_needed;
}

int
fleet_enabled(void)
{
	return fl.enabled;
}

void
fleet_await(long long version, int drained, fleet_await_fn fn, void *arg)
{
	struct await *aw;

	if (!fl.enabled || version <= 0) {
		fn(NULL, 0, arg);
		return;
	}
	aw = xcalloc(1, sizeof(*aw));
	aw->version = version;
	aw->drained = drained;
	aw->t0 = mx_mono_us();
	aw->fn = fn;
	aw->arg = arg;
	pthread_mutex_lock(&fl.mu);
	aw->next = fl.awaits_new;
	fl.awaits_new = aw;
	pthread_mutex_unlock(&fl.mu);
	wake_thread();
}

/* lease_age_text - "0.4 s" since the host last renewed (from the
 * snapshot: lease_left counts down from lease_ms) */
static double
lease_age(const struct fleet_host *h)
{
	double since = (double)(mx_mono_us() - fl.hosts_at) / 1e6;

	return (double)(fl.lease_ms - h->lease_left_ms) / 1000.0 + since;
}

void
fleet_status_text(struct evbuffer *out)
{
	if (!fl.enabled)
		return;
	evbuffer_add_printf(out, "fleet:        %zu host%s (this: %s, applied "
	    "change %lld, %s)\n", fl.nhosts, fl.nhosts == 1 ? "" : "s", fl.name,
	    fl.applied, fleet_may_deliver() ? "delivering" :
	    "not delivering: lease lapsed or catching up");
	for (size_t i = 0; i < fl.nhosts; i++) {
		const struct fleet_host *h = &fl.hosts[i];

		evbuffer_add_printf(out, "  %-30s lease age %.1f s%s  applied "
		    "%lld  queue %lld\n", h->name, lease_age(h),
		    h->lease_left_ms > 0 ? "" : " (expired)", h->applied,
		    h->queue);
	}
}

void
fleet_status_json(struct jsonw *w)
{
	if (!fl.enabled)
		return;
	jsonw_key(w, "fleet");
	jsonw_object_begin(w);
	jsonw_kv_string(w, "host", fl.name);
	jsonw_kv_int(w, "applied", fl.applied);
	jsonw_kv_bool(w, "delivering", fleet_may_deliver());
	jsonw_key(w, "hosts");
	jsonw_array_begin(w);
	for (size_t i = 0; i < fl.nhosts; i++) {
		const struct fleet_host *h = &fl.hosts[i];

		jsonw_object_begin(w);
		jsonw_kv_string(w, "name", h->name);
		jsonw_kv_int(w, "pid", h->pid);
		jsonw_kv_int(w, "lease_age_ms", (int64_t)(lease_age(h) * 1000));
		jsonw_kv_bool(w, "lease_valid", h->lease_left_ms > 0);
		jsonw_kv_int(w, "applied", h->applied);
		jsonw_kv_int(w, "queue", h->queue);
		jsonw_object_end(w);
	}
	jsonw_array_end(w);
	jsonw_object_end(w);
}

int
fleet_init(struct event_base *base, const struct config *cfg, char *err,
    size_t errlen)
{
	struct timeval tv;

	memset(&fl, 0, sizeof(fl));
	if (cfg->state_backend != STATE_POSTGRESQL)
		return 0;
	fl.cfg = cfg;
	fl.name = xstrdup(cfg->hostname);
	fl.origin = xstrdup(store_origin());
	fl.started = time(NULL);
	fl.lease_ms = cfg->state_lease_time * 1000;
	fl.renew_ms = cfg->state_lease_renew * 1000;
	fl.read_id = store_loaded_head();
	fl.applied = fl.drained = fl.read_id;
	pthread_mutex_init(&fl.mu, NULL);
	if (pipe2(fl.wake, O_NONBLOCK | O_CLOEXEC) == -1) {
		snprintf(err, errlen, "fleet: pipe: %s", strerror(errno));
		return -1;
	}
	fl.post_ev = event_new(base, -1, 0, post_event, NULL);
	fl.tick = event_new(base, -1, EV_PERSIST, tick_event, NULL);
	if (fl.post_ev == NULL || fl.tick == NULL) {
		snprintf(err, errlen, "fleet: event_new failed");
		return -1;
	}
	tv.tv_sec = 0;
	tv.tv_usec = 100000;	/* a lapse is noticed within 0.1 s */
	evtimer_add(fl.tick, &tv);
	fl.enabled = 1;
	fl.delivering = 0;
	if (pthread_create(&fl.thread, NULL, fleet_thread, NULL) != 0) {
		snprintf(err, errlen, "fleet: pthread_create failed");
		return -1;
	}
	fl.thread_started = 1;
	log_info("fleet started host=%s lease=%d ms renew=%d ms from_change=%lld",
	    fl.name, fl.lease_ms, fl.renew_ms, fl.read_id);
	return 0;
}

/* awaits_end - the daemon stops: a waiting switch hears what it has */
static void
awaits_end(struct await **list)
{
	struct await *aw;

	while ((aw = *list) != NULL) {
		*list = aw->next;
		aw->fn(aw->ans, aw->n, aw->arg);
		free(aw);
	}
}

void
fleet_close(void)
{
	struct post *p;

	if (!fl.enabled)
		return;
	pthread_mutex_lock(&fl.mu);
	fl.stop = 1;
	pthread_mutex_unlock(&fl.mu);
	wake_thread();
	if (fl.thread_started)
		pthread_join(fl.thread, NULL);
	/* what the thread posted last is dropped; waiting switches hear
	 * that no host answered */
	while ((p = fl.posts) != NULL) {
		fl.posts = p->next;
		if (p->type == POST_BATCH) {
			for (size_t i = 0; i < p->nch; i++)
				store_change_clear(&p->ch[i]);
			free(p->ch);
		} else if (p->type == POST_AWAIT) {
			p->aw->fn(p->aw->ans, p->aw->n, p->aw->arg);
			free(p->aw);
		} else if (p->type == POST_HOSTS)
			free(p->hosts);
		free(p);
	}
	awaits_end(&fl.awaits);
	awaits_end(&fl.awaits_new);
	event_free(fl.post_ev);
	event_free(fl.tick);
	close(fl.wake[0]);
	close(fl.wake[1]);
	free(fl.hosts);
	free(fl.drains);
	free(fl.name);
	free(fl.origin);
	pthread_mutex_destroy(&fl.mu);
	fl.enabled = 0;
}
