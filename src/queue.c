/* queue.c - per-recipient state, scheduling, retry, bounce
 *
 * Messages come from the spool: the recovery scan at start-up and the
 * commit hook afterwards. Each message with a recipient waiting sits in a
 * min-heap keyed by its earliest due time; one timer fires for the top.
 * A due message is opened on the reader worker (no file I/O on the loop),
 * then its due recipients are routed now and grouped by route key into
 * mta jobs. Results become spool state records, appended and synced in
 * groups on the spool worker; a message whose recipients are all final is
 * unlinked. Failed recipients of one event get one DSN (bounce.c), which
 * is enqueued like any message and routed by MX.
 *
 * Recipient states: PENDING -> ACTIVE (in a job) -> DELIVERED | PENDING
 * (deferred) | BOUNCING -> BOUNCED once the DSN is durable (back to PENDING
 * when it could not be written); PENDING -> EXPANDED (final) for a hosted
 * alias or auto-CC mailbox, whose children join the message as PENDING
 * recipients, held until their expand record is durable (queue_expand.c,
 * which shares the internals of queue_priv.h).
 */
#include "autoconf.h"

#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "bounce.h"
#include "dict.h"
#include "fleet.h"
#include "log.h"
#include "mta.h"
#include "queue.h"
#include "queue_priv.h"
#include "route.h"
#include "smtp_parse.h"
#include "srs.h"
#include "stats.h"
#include "store.h"
#include "util.h"
#include "worker.h"

#define QUEUE_OPEN_BATCH	256	/* messages opened per reader job */
#define QUEUE_BACKOFF_WAIT	60	/* not tried, same route: the destination
					 * is backed off; look again then */
#define QUEUE_NOT_TRIED_MAX	5	/* immediate retries after "route
					 * changed" before waiting as above */
#define QUEUE_ERROR_WAIT	300	/* queue file unreadable: retry then */
#define QUEUE_RECORD_MAX	(SPOOL_REPLY_MAX + 128)
#define QUEUE_HOST_MAX		256

/* our own reasons, with their enhanced status codes (RFC 3463) */
#define DSN_NO_ROUTE_TEMP	"4.4.4"	/* no route now */
#define DSN_NO_ROUTE_PERM	"5.4.4"	/* never routable any more */
#define DSN_EXPIRED		"5.4.7"	/* delivery time expired */
#define DSN_DELETED		"5.0.0"	/* removed by the operator */
#define DSN_LOCAL_TEMP		"4.3.0"	/* our own trouble */

/* one mta job: recipients of one message sharing a route and a sender */
struct queue_job {
	struct mta_job mj;
	int flying;			/* counted in q.flight (may_start said yes) */
	struct queue_msg *m;
	char sender[SRS_ADDR_MAX];	/* MAIL FROM of this job */
	struct mta_rcpt rcpts[];
};

/* recipients of one attempt round sharing a route key and a sender */
struct attempt_group {
	struct route rt;
	int fwd;			/* external forwards: the SRS sender */
	int count;
};

/* a batch of messages opened on the reader worker */
struct open_batch {
	int n;
	struct queue_msg *m[QUEUE_OPEN_BATCH];
	off_t off[QUEUE_OPEN_BATCH];	/* the body, copied on the loop */
	uint64_t size[QUEUE_OPEN_BATCH];
	int fd[QUEUE_OPEN_BATCH];
	int err[QUEUE_OPEN_BATCH];
	char *body[QUEUE_OPEN_BATCH];	/* read whole, or NULL */
};

/* one failed recipient waiting for its DSN */
struct queue_bounce_item {
	int index;
	char status[16];
	char remote[QUEUE_HOST_MAX];	/* "" when no server was reached */
	int code;
	char *reply;			/* the reply, code first; or our reason */
	char *reason;			/* expiry: why; reply is the last error */
};

/* one DSN being made: headers read on the reader worker, then enqueued */
struct bounce_job {
	struct queue_msg *m;
	struct queue_bounces list;
	char *headers;
	size_t hlen;
};

struct queue_delete_req {
	queue_delete_fn cb;
	void *arg;
	int bounce;			/* relayctl queue delete --bounce */
	int nbounced;
};

struct show_req {
	char id[SPOOL_ID_LEN + 1];
	struct spool_entry *e;
	char *headers;
	queue_show_fn cb;
	void *arg;
};

static struct {
	const struct config *cfg;
	struct dict *msgs;		/* id -> struct queue_msg */
	struct dict *flight;		/* "domain\nroute key" -> long, see flight_add */
	struct dict *recent;		/* domain -> struct recent_legacy */
	struct qsched_heap heap;
	struct event *timer;
	struct worker *reader;		/* opens files, reads headers */
	int inflight;			/* jobs + opens */
	int loading;
	int closing;			/* callbacks still to come let go */
} q;

static void queue_arm(void);
static void bounce_start(struct queue_msg *, struct queue_bounces *);

/* Deliveries to the legacy servers in the last hour (relayctl check):
 * per domain, one counter per minute of the last RECENT_MINUTES */
#define RECENT_MINUTES	60

struct recent_legacy {
	time_t minute[RECENT_MINUTES];	/* the minute (t / 60) of each slot */
	unsigned count[RECENT_MINUTES];
};

static void
recent_add(const char *addr, time_t now)
{
	const char *at = strrchr(addr, '@');
	char dom[SMTP_DOMAIN_MAX + 1];
	struct recent_legacy *r;
	time_t m = now / 60;
	int i = (int)(m % RECENT_MINUTES);

	if (at == NULL || q.recent == NULL)
		return;
	mx_strlcpy(dom, at + 1, sizeof(dom));
	mx_lower(dom);
	if ((r = dict_get(q.recent, dom)) == NULL) {
		r = xcalloc(1, sizeof(*r));
		dict_put(q.recent, dom, r);
	}
	if (r->minute[i] != m) {
		r->minute[i] = m;
		r->count[i] = 0;
	}
	r->count[i]++;
}

int
queue_legacy_recent(const char *domain)
{
	const struct recent_legacy *r = q.recent ? dict_get(q.recent, domain) :
	    NULL;
	time_t m = time(NULL) / 60;
	int n = 0;

	for (int i = 0; r && i < RECENT_MINUTES; i++)
		if (m - r->minute[i] < RECENT_MINUTES)
			n += (int)r->count[i];
	return n;
}

const char *
queue_rstate_name(enum queue_rstate s)
{
	static const char *const names[] = {
		[QUEUE_R_PENDING] = "pending", [QUEUE_R_ACTIVE] = "active",
		[QUEUE_R_BOUNCING] = "bouncing", [QUEUE_R_DELIVERED] = "delivered",
		[QUEUE_R_BOUNCED] = "bounced", [QUEUE_R_EXPANDED] = "expanded",
		[QUEUE_R_DROPPED] = "dropped",
	};

	return (unsigned)s < MX_ARRAY_LEN(names) ? names[s] : "?";
}

/* queue_cfg - the configuration in force, for queue_expand.c */
const struct config *
queue_cfg(void)
{
	return q.cfg;
}

/* queue_closing - queue_close has begun, for late callbacks */
int
queue_closing(void)
{
	return q.closing;
}

/* queue_rcpt_domain - the domain part of an address as written */
const char *
queue_rcpt_domain(const char *addr)
{
	const char *at = strrchr(addr, '@');

	return at ? at + 1 : "";
}

int
queue_rcpt_in_domain(const char *addr, const char *domain)
{
	return strcasecmp(queue_rcpt_domain(addr), domain) == 0;
}

/* The cutover safety net: held domains and per-domain lifetimes */

/* rcpt_domain - the hosted domain a recipient's mail belongs to: its
 * envelope recipient's (an alias's children are its domain's mail); NULL
 * for a bounce, which is no hosted domain's mail */
static const struct domain_info *
rcpt_domain(const struct queue_msg *m, int i)
{
	if (m->route_mx)
		return NULL;
	while (m->rcpts[i].parent >= 0 && m->rcpts[i].parent != i)
		i = m->rcpts[i].parent;
	return store_domain(queue_rcpt_domain(m->rcpts[i].addr));
}

/* queue_rcpt_on_hold - no attempt may start for recipient i: its
 * envelope recipient's domain, or its own (a mailbox of another hosted
 * domain), is held (relayctl domain set --hold on) */
int
queue_rcpt_on_hold(const struct queue_msg *m, int i)
{
	const struct domain_info *d = rcpt_domain(m, i), *own;

	if (m->route_mx)
		return 0;
	own = store_domain(queue_rcpt_domain(m->rcpts[i].addr));
	return (d && d->hold) || (own && own->hold);
}

/* rcpt_lifetime - recipient i's lifetime (its domain's --max-lifetime, or
 * delivery.max_lifetime) and the arrival it is counted from: moved on by
 * the time its domain was held, so that a hold bounces nothing */
static int
rcpt_lifetime(const struct queue_msg *m, int i, time_t now, time_t *arrival)
{
	const struct domain_info *d = rcpt_domain(m, i);

	*arrival = m->arrival;
	if (d != NULL)
		*arrival += store_domain_held(d, m->arrival, now);
	/* a copy has its own, shorter life: it is dropped, not bounced */
	if (spool_rkind_copy(m->rcpts[i].kind))
		return q.cfg->copy_lifetime;
	return d && d->max_lifetime ? d->max_lifetime : q.cfg->max_lifetime;
}

/* Messages in memory */

/* story_add - a line of the message's story (QUEUE_STORY_MAX lines: the
 * first, how it arrived, and the latest others) */
static void __attribute__((format(printf, 2, 3)))
story_add(struct queue_msg *m, const char *fmt, ...)
{
	char line[QUEUE_STORY_LINE_MAX];
	struct tm tm;
	time_t now = time(NULL);
	size_t n;
	va_list ap;

	localtime_r(&now, &tm);
	n = strftime(line, sizeof(line), "%Y-%m-%d %H:%M:%S ", &tm);
	va_start(ap, fmt);
	vsnprintf(line + n, sizeof(line) - n, fmt, ap);
	va_end(ap);
	if (m->nstory == QUEUE_STORY_MAX) {
		free(m->story[1]);
		memmove(&m->story[1], &m->story[2],
		    sizeof(*m->story) * (QUEUE_STORY_MAX - 2));
		m->nstory--;
	} else	/* most messages have a few lines: grow one at a time */
		m->story = xrealloc(m->story, sizeof(*m->story) *
		    (size_t)(m->nstory + 1));
	m->story[m->nstory++] = xstrdup(line);
}

/* msg_new - the queue's copy of a spool entry; takes its strings over */
static struct queue_msg *
msg_new(struct spool_entry *e)
{
	struct queue_msg *m = xcalloc(1, sizeof(*m));
	char *end;

	mx_strlcpy(m->id, e->id, sizeof(m->id));
	m->arrival = e->arrival;
	m->arrival_us = strtoull(e->id, &end, 16);
	if (*end != '\0' || m->arrival_us / 1000000 + 1 < (uint64_t)e->arrival)
		m->arrival_us = (uint64_t)e->arrival * 1000000;
	m->sender = e->sender;
	e->sender = NULL;
	m->route_mx = e->route_mx;
	m->body_8bit = e->body_8bit;
	m->smtputf8 = e->smtputf8;
	m->body_off = e->body_off;
	m->size = e->body_size;
	m->crc = e->body_crc;
	m->nrcpts = e->nrcpts;
	m->rcpts = xcalloc((size_t)e->nrcpts, sizeof(*m->rcpts));
	m->held = e->held;
	e->held = NULL;
	m->fd = -1;
	qsched_node_init(&m->sched);
	for (int i = 0; i < e->nrcpts; i++) {
		struct spool_rcpt *sr = &e->rcpts[i];
		struct queue_rcpt *r = &m->rcpts[i];

		r->addr = sr->addr;
		r->orig = sr->orig;
		sr->addr = sr->orig = NULL;
		r->kind = sr->kind;
		r->parent = sr->parent;
		r->copied = sr->copied;
		r->reply = sr->reply;
		sr->reply = NULL;
		r->attempts = sr->attempts;
		r->last = sr->state == SPOOL_R_PENDING ? 0 : sr->time;
		switch (sr->state) {
		case SPOOL_R_DELIVERED:
			r->state = QUEUE_R_DELIVERED;
			break;
		case SPOOL_R_BOUNCED:
			r->state = QUEUE_R_BOUNCED;
			break;
		case SPOOL_R_EXPANDED:
			r->state = QUEUE_R_EXPANDED;
			break;
		case SPOOL_R_DROPPED:
			r->state = QUEUE_R_DROPPED;
			break;
		case SPOOL_R_DEFERRED:
			r->next = sr->next;
			m->nlive++;
			break;
		default:
			m->nlive++;	/* never tried: due at once (next = 0) */
		}
	}
	return m;
}

/* msg_close_body - the jobs are done with the body: its file and copy */
static void
msg_close_body(struct queue_msg *m)
{
	if (m->fd >= 0)
		close(m->fd);
	m->fd = -1;
	free(m->body);
	m->body = NULL;
}

static void
msg_free(struct queue_msg *m)
{
	msg_close_body(m);
	for (int i = 0; i < m->nrcpts; i++) {
		free(m->rcpts[i].addr);
		free(m->rcpts[i].orig);
		free(m->rcpts[i].reply);
		free(m->rcpts[i].dest);
	}
	free(m->rcpts);
	free(m->sender);
	free(m->held);
	for (int i = 0; i < m->nstory; i++)
		free(m->story[i]);
	free(m->story);
	free(m->rec);
	free(m->del);
	for (int k = 0; k < m->bpend.n; k++) {
		free(m->bpend.v[k].reply);
		free(m->bpend.v[k].reason);
	}
	free(m->bpend.v);
	free(m);
}

/* msg_due - the earliest due time of a waiting recipient; 0 when none
 * waits (time 0 itself is stored as 1: "due long ago") */
static time_t
msg_due(const struct queue_msg *m)
{
	time_t due = 0;

	/* held: looked at again when it expires (queue_run) */
	if (m->held)
		return qsched_end(m->arrival, q.cfg->max_lifetime);
	for (int i = 0; i < m->nrcpts; i++) {
		const struct queue_rcpt *r = &m->rcpts[i];
		time_t t = r->next > 0 ? r->next : 1;
		if (r->state == QUEUE_R_PENDING && !r->held && (due == 0 || t < due) &&
		    !queue_rcpt_on_hold(m, i))
			due = t;
	}
	return due;
}

static int
msg_idle(const struct queue_msg *m)
{
	return !m->opening && m->njobs == 0 && m->nbounces == 0 &&
	    m->nexpanding == 0;
}

/* delete_removed - the unlink of a deleted message is durable */
static void
delete_removed(int ok, void *arg)
{
	struct queue_delete_req *del = arg;

	del->cb(ok, del->nbounced, del->arg);
	free(del);
}

/* msg_remove - the message leaves the queue: unlink its file */
static void
msg_remove(struct queue_msg *m)
{
	struct queue_delete_req *del = m->del;

	for (int i = 0; i < m->nrcpts; i++)
		if (m->rcpts[i].state < QUEUE_R_DELIVERED)
			spool_rcpt_done(m->rcpts[i].addr);
	qsched_remove(&q.heap, &m->sched);
	dict_del(q.msgs, m->id);
	if (m->deleted)
		log_info("%s removed by the operator", m->id);
	else
		log_info("%s removed", m->id);
	m->del = NULL;
	/* an operator's delete is answered once the unlink is durable */
	spool_msg_remove(m->id, del ? delete_removed : NULL, del);
	msg_free(m);
}

/* queue_rec_append - record text for the next write to the message file */
void
queue_rec_append(struct queue_msg *m, const char *text, size_t n)
{
	if (m->reclen + n > m->reccap) {
		m->reccap = (m->reclen + n) * 2;
		m->rec = xrealloc(m->rec, m->reccap);
	}
	memcpy(m->rec + m->reclen, text, n);
	m->reclen += n;
}

/* rec_add - a state record for recipient i, written at the next
 * queue_msg_sync */
static void
rec_add(struct queue_msg *m, int i, enum spool_rstate st, time_t now,
    const char *reply)
{
	struct spool_state s;
	char line[QUEUE_RECORD_MAX];
	size_t n;

	memset(&s, 0, sizeof(s));
	s.index = i;
	s.state = st;
	s.time = now;
	s.attempts = m->rcpts[i].attempts;
	s.next = st == SPOOL_R_DEFERRED ? m->rcpts[i].next : 0;
	mx_strlcpy(s.reply, reply ? reply : "", sizeof(s.reply));
	if ((n = spool_format_state(line, sizeof(line), &s)) == 0)
		return;
	queue_rec_append(m, line, n);
}

/* queue_msg_sync - after any change: write the records, remove the message
 * when nothing is left to do, otherwise (re)schedule it */
void
queue_msg_sync(struct queue_msg *m)
{
	time_t due;

	if ((m->nlive == 0 || m->deleted) && msg_idle(m)) {
		msg_remove(m);
		queue_arm();
		return;
	}
	if (m->reclen && !m->deleted)
		spool_append_state(m->id, m->rec, m->reclen, NULL, NULL);
	m->reclen = 0;
	/* a message in an attempt is looked at again when the attempt ends */
	if (m->deleted || m->opening || m->njobs > 0 || (due = msg_due(m)) == 0)
		qsched_remove(&q.heap, &m->sched);
	else
		qsched_set(&q.heap, &m->sched, due);
	if (!q.loading)
		queue_arm();
}

/* Results of one recipient */

/* log_result - the one line per recipient per attempt (SPEC 6), also
 * kept in the message's story */
static void
log_result(struct queue_msg *m, const struct queue_rcpt *r,
    const char *relay, const char *dsn, const char *status, const char *reply)
{
	double delay = (double)(mx_now_us() - m->arrival_us) / 1e6;
	const char *rl = relay && *relay ? relay : "none";
	const char *route = r->route ? r->route : "none";
	char line[QUEUE_LOG_LINE_MAX];

	if (delay < 0)
		delay = 0;
	snprintf(line, sizeof(line), "to=<%s>%s%s%s relay=%s route=%s delay=%.1f "
	    "dsn=%s status=%s%s (%s)", r->addr, r->orig ? " orig_to=<" : "",
	    r->orig ? r->orig : "", r->orig ? ">" : "", rl, route, delay, dsn,
	    status, spool_rkind_copy(r->kind) ? " copy=yes" : "",
	    reply ? reply : "");
	log_info("%s %s", m->id, line);
	story_add(m, "%s", line);
}

/* rcpt_final - recipient i reached a final state */
static void
rcpt_final(struct queue_msg *m, int i, enum queue_rstate st, time_t now,
    const char *reply)
{
	struct queue_rcpt *r = &m->rcpts[i];

	r->state = st;
	r->last = now;
	m->nlive--;
	spool_rcpt_done(r->addr);
	rec_add(m, i, st == QUEUE_R_DELIVERED ? SPOOL_R_DELIVERED :
	    st == QUEUE_R_DROPPED ? SPOOL_R_DROPPED : SPOOL_R_BOUNCED, now,
	    reply);
}

/* queue_set_reply - the last reply or reason of r ("" or NULL: none) */
void
queue_set_reply(struct queue_rcpt *r, const char *reply)
{
	free(r->reply);
	r->reply = reply && *reply ? xstrdup(reply) : NULL;
}

/* bounce_add - recipient i failed for good: it joins the event's DSN */
static void
bounce_add(struct queue_bounces *bl, int i, const char *status,
    const char *relay, int code, const char *reply, const char *reason)
{
	struct queue_bounce_item *it;

	if (bl->n == bl->cap) {
		bl->cap = bl->cap ? bl->cap * 2 : 4;
		bl->v = xrealloc(bl->v, (size_t)bl->cap * sizeof(*bl->v));
	}
	it = &bl->v[bl->n++];
	memset(it, 0, sizeof(*it));
	it->index = i;
	mx_strlcpy(it->status, status && *status ? status : "5.0.0",
	    sizeof(it->status));
	if (!bounce_relay_host(relay, it->remote, sizeof(it->remote)))
		it->remote[0] = '\0';
	it->code = code;
	it->reason = reason ? xstrdup(reason) : NULL;
	reply = reply ? reply : "";
	/* Diagnostic-Code: smtp; wants the whole reply, code first */
	if (code && !(reply[0] >= '2' && reply[0] <= '5'))
		xasprintf(&it->reply, "%d %s %s", code, it->status, reply);
	else
		it->reply = xstrdup(reply);
}

/* bounce_merge - move the items of src to the end of dst */
static void
bounce_merge(struct queue_bounces *dst, struct queue_bounces *src)
{
	for (int k = 0; k < src->n; k++) {
		if (dst->n == dst->cap) {
			dst->cap = dst->cap ? dst->cap * 2 : 4;
			dst->v = xrealloc(dst->v, (size_t)dst->cap * sizeof(*dst->v));
		}
		dst->v[dst->n++] = src->v[k];
	}
	free(src->v);
	src->v = NULL;
	src->n = src->cap = 0;
}

static void
bounce_list_free(struct queue_bounces *bl)
{
	for (int i = 0; i < bl->n; i++) {
		free(bl->v[i].reply);
		free(bl->v[i].reason);
	}
	free(bl->v);
	bl->v = NULL;
	bl->n = bl->cap = 0;
}

/* copy_drop - dual-delivery copy i is given up (SPEC 10: a copy never
 * bounces and never makes a DSN): logged with copy=yes, counted, final */
static void
copy_drop(struct queue_msg *m, int i, const char *relay, const char *dsn,
    const char *why)
{
	char line[SPOOL_REPLY_MAX];

	snprintf(line, sizeof(line), "copy dropped, never bounced: %s", why);
	log_result(m, &m->rcpts[i], relay, dsn, "expired", line);
	mx_stats.copies_expired++;
	queue_set_reply(&m->rcpts[i], line);
	rcpt_final(m, i, QUEUE_R_DROPPED, time(NULL), line);
}

/* queue_rcpt_bounce - log the failure and queue the recipient for a DSN
 * (a copy is dropped instead) */
void
queue_rcpt_bounce(struct queue_msg *m, int i, const char *relay,
    const char *dsn, int code, const char *reply, const char *reason,
    struct queue_bounces *bl)
{
	struct queue_rcpt *r = &m->rcpts[i];
	char line[SPOOL_REPLY_MAX];

	if (reason)
		snprintf(line, sizeof(line), "%s; last error: %s", reason,
		    reply ? reply : "");
	else
		mx_strlcpy(line, reply ? reply : "", sizeof(line));
	if (spool_rkind_copy(r->kind)) {
		copy_drop(m, i, relay, dsn, line);
		return;
	}
	log_result(m, r, relay, dsn, "bounced", line);
	mx_stats.deliveries_bounced++;
	r->state = QUEUE_R_BOUNCING;
	r->last = time(NULL);
	queue_set_reply(r, line);
	bounce_add(bl, i, dsn, relay, code, reply, reason);
}

/* rcpt_defer - a temporary failure: retry on the schedule, or bounce when
 * the message has outlived max_lifetime */
static void
rcpt_defer(struct queue_msg *m, int i, time_t now, const char *relay,
    int code, const char *dsn, const char *reply, struct queue_bounces *bl)
{
	const struct config *c = q.cfg;
	struct queue_rcpt *r = &m->rcpts[i];
	char why[QUEUE_WHY_MAX];
	time_t arrival;
	int lifetime = rcpt_lifetime(m, i, now, &arrival);

	r->attempts++;
	if (qsched_expired(now, arrival, lifetime)) {
		/* the DSN carries the last error as its diagnostic */
		snprintf(why, sizeof(why), "delivery time expired after %d "
		    "attempt%s", r->attempts, r->attempts == 1 ? "" : "s");
		queue_rcpt_bounce(m, i, relay, DSN_EXPIRED, code, reply, why,
		    bl);
		return;
	}
	r->state = QUEUE_R_PENDING;
	r->last = now;
	r->next = qsched_next_attempt(now, arrival, lifetime,
	    c->retry_schedule, c->nretry_schedule, r->attempts);
	queue_set_reply(r, reply);
	log_result(m, r, relay, dsn, "deferred", reply);
	if (spool_rkind_copy(r->kind))
		mx_stats.copies_deferred++;
	else
		mx_stats.deliveries_deferred++;
	rec_add(m, i, SPOOL_R_DEFERRED, now, reply);
}

/* Attempts */

/* flight_add - recipients of a domain in flight on a route key, for the
 * switch's count of deliveries still running on the old route */
static void
flight_add(const struct mta_job *mj, int delta)
{
	char key[SMTP_DOMAIN_MAX + ROUTE_KEY_MAX + 2];
	const char *at;
	long *n;

	for (int i = 0; i < mj->nrcpts; i++) {
		at = strrchr(mj->rcpts[i].addr, '@');
		snprintf(key, sizeof(key), "%s\n%s", at ? at + 1 : "", mj->route.key);
		mx_lower(key);
		if ((n = dict_get(q.flight, key)) == NULL) {
			n = xcalloc(1, sizeof(*n));
			dict_put(q.flight, key, n);
		}
		if ((*n += delta) <= 0)
			free(dict_del(q.flight, key));
	}
}

int
queue_inflight(const char *domain, const char *route_key)
{
	char key[SMTP_DOMAIN_MAX + ROUTE_KEY_MAX + 2];
	long *n;

	snprintf(key, sizeof(key), "%s\n%s", domain, route_key);
	mx_lower(key);
	n = q.flight ? dict_get(q.flight, key) : NULL;
	return n ? (int)*n : 0;
}

/* copy_may_start - recipient i is no copy, or its domain's dual delivery
 * is still on (SPEC 10: after --dual off nothing more reaches the other
 * route once the command returned) */
static int
copy_may_start(const struct queue_msg *m, int i)
{
	const struct domain_info *d;

	if (!spool_rkind_copy(m->rcpts[i].kind))
		return 1;
	d = rcpt_domain(m, i);
	return d != NULL && d->dual;
}

static int
job_may_start(struct mta_job *mj, void *arg)
{
	struct queue_job *j = arg;

	/* a fleet: no attempt without a valid lease and the current state */
	if (!fleet_may_deliver())
		return 0;
	/* SPEC 7: an attempt that starts after a switch uses the new mode;
	 * the route is the canonical recipient's (a reversed SRS address's) */
	if (!j->m->route_mx)
		for (int i = 0; i < mj->nrcpts; i++) {
			int k = mj->rcpts[i].index;
			const struct queue_rcpt *r = &j->m->rcpts[k];
			if (!copy_may_start(j->m, k) ||
			    queue_rcpt_on_hold(j->m, k))
				return 0;
			/* a copy goes to the route the mode does not select */
			if (!spool_rkind_copy(r->kind) && !route_is_current(&mj->route,
			    r->dest ? r->dest : r->addr))
				return 0;
		}
	if (!j->flying) {
		j->flying = 1;
		flight_add(mj, 1);
	}
	return 1;
}

/* job_result - one recipient's outcome from mta */
static void
job_result(struct queue_job *j, struct mta_rcpt *mr, time_t now,
    struct queue_bounces *bl)
{
	struct queue_msg *m = j->m;
	struct queue_rcpt *r = &m->rcpts[mr->index];
	const char *relay;

	/* SPEC 7: a job that never reached MAIL FROM (its destination failed
	 * or was backed off) while the domain was switched goes to the new
	 * route at once instead of waiting for a retry */
	if (mr->cls == MTA_TEMP && !j->mj.attempted && !m->route_mx &&
	    !spool_rkind_copy(r->kind) && !route_is_current(&j->mj.route, mr->addr))
		mr->cls = MTA_NOT_TRIED;
	relay = j->mj.attempted || mr->cls != MTA_NOT_TRIED ? j->mj.relay : "";

	if (mr->cls != MTA_NOT_TRIED) {
		r->not_tried = 0;
		r->route = route_kind_name(j->mj.route.kind);
	}
	switch (mr->cls) {
	case MTA_OK:
		log_result(m, r, relay, mr->status, "sent", mr->reply);
		if (j->mj.route.kind == ROUTE_LEGACY)
			recent_add(mr->addr, now);
		if (spool_rkind_copy(r->kind)) {
			mx_stats.copies_sent++;
			queue_set_reply(r, mr->reply);
			rcpt_final(m, mr->index, QUEUE_R_DELIVERED, now, mr->reply);
			break;
		}
		mx_stats.deliveries_sent++;
		mx_stats.deliveries_by_route[j->mj.route.kind]++;
		stats_observe(&mx_stats.delivery_latency,
		    (double)(mx_now_us() - m->arrival_us) / 1e6);
		queue_set_reply(r, mr->reply);
		rcpt_final(m, mr->index, QUEUE_R_DELIVERED, now, mr->reply);
		break;
	case MTA_TEMP:
		mx_stats.attempts_deferred_by_route[j->mj.route.kind]++;
		rcpt_defer(m, mr->index, now, relay, mr->code, mr->status,
		    mr->reply, bl);
		break;
	case MTA_PERM:
		mx_stats.attempts_bounced_by_route[j->mj.route.kind]++;
		/* a copy is retried until copy_lifetime even after a 5xx: the
		 * other side may not know the address yet */
		if (spool_rkind_copy(r->kind))
			rcpt_defer(m, mr->index, now, relay, mr->code, mr->status,
			    mr->reply, bl);
		else
			queue_rcpt_bounce(m, mr->index, relay, mr->status,
			    mr->code, mr->reply, NULL, bl);
		break;
	default:
		/* not attempted: the route changed (retry at once on the new
		 * one), or the destination is backed off (look again later);
		 * no attempt is counted either way */
		r->state = QUEUE_R_PENDING;
		/* a route that changes at every attempt must not spin */
		if (!m->route_mx && (spool_rkind_copy(r->kind) ?
		    !copy_may_start(m, mr->index) :
		    !route_is_current(&j->mj.route, mr->addr)) &&
		    ++r->not_tried <= QUEUE_NOT_TRIED_MAX) {
			r->next = now;
			log_debug("%s to=<%s> not tried: route changed", m->id, r->addr);
		} else {
			r->next = now + QUEUE_BACKOFF_WAIT;
			queue_set_reply(r, mr->reply);
			log_debug("%s to=<%s> not tried (%s)", m->id, r->addr, mr->reply);
		}
	}
}

/* delete_bounce - recipient i of a message deleted with --bounce: the
 * sender learns it was not delivered */
static void
delete_bounce(struct queue_msg *m, int i, struct queue_bounces *bl)
{
	queue_rcpt_bounce(m, i, NULL, DSN_DELETED, 0, "message deleted from "
	    "the queue by the mail system operator", NULL, bl);
	if (m->sender[0] && !m->route_mx && !spool_rkind_copy(m->rcpts[i].kind))
		m->del->nbounced++;
}

/* job_deleted_result - outcome for a message deleted meanwhile: log it,
 * record nothing; after a delete --bounce, a recipient this attempt did
 * not deliver is bounced like those that were waiting */
static void
job_deleted_result(struct queue_job *j, struct mta_rcpt *mr, time_t now,
    struct queue_bounces *bl)
{
	struct queue_msg *m = j->m;
	struct queue_rcpt *r = &m->rcpts[mr->index];
	static const char *const st[] = {
		[MTA_NOT_TRIED] = NULL, [MTA_OK] = "sent",
		[MTA_TEMP] = "deferred", [MTA_PERM] = "bounced",
	};

	r->state = QUEUE_R_PENDING;
	if (mr->cls == MTA_PERM && m->del != NULL && m->del->bounce) {
		queue_rcpt_bounce(m, mr->index, j->mj.relay, mr->status,
		    mr->code, mr->reply, NULL, bl);
		return;
	}
	if (mr->cls != MTA_NOT_TRIED && (unsigned)mr->cls < MX_ARRAY_LEN(st))
		log_result(m, r, j->mj.relay, mr->status, st[mr->cls], mr->reply);
	if (mr->cls == MTA_OK) {
		r->state = QUEUE_R_DELIVERED;
		r->last = now;
		m->nlive--;
		spool_rcpt_done(r->addr);
	} else if (m->del != NULL && m->del->bounce)
		delete_bounce(m, mr->index, bl);
}

static void
job_done(struct mta_job *mj, void *arg)
{
	struct queue_job *j = arg;
	struct queue_msg *m = j->m;
	struct queue_bounces bl = { 0, 0, NULL };
	time_t now = time(NULL);

	if (j->flying)
		flight_add(mj, -1);
	q.inflight--;
	m->njobs--;
	if (!q.closing) {
		for (int i = 0; i < j->mj.nrcpts; i++) {
			if (m->deleted)
				job_deleted_result(j, &j->rcpts[i], now, &bl);
			else
				job_result(j, &j->rcpts[i], now, &bl);
		}
	}
	free(j);
	if (m->njobs == 0)
		msg_close_body(m);
	if (q.closing) {
		bounce_list_free(&bl);
		return;
	}
	/* one DSN for what failed in this attempt round, all jobs together */
	bounce_merge(&m->bpend, &bl);
	if (m->njobs == 0 && m->bpend.n)
		bounce_start(m, &m->bpend);
	queue_msg_sync(m);
}

/* job_new - an mta job for n recipients of m on route r, from sender */
static struct queue_job *
job_new(struct queue_msg *m, const struct route *r, int n, const char *sender)
{
	struct queue_job *j = xcalloc(1, sizeof(*j) + (size_t)n * sizeof(struct mta_rcpt));

	j->m = m;
	mx_strlcpy(j->mj.msgid, m->id, sizeof(j->mj.msgid));
	mx_strlcpy(j->sender, sender, sizeof(j->sender));
	j->mj.sender = j->sender;
	j->mj.body_8bit = m->body_8bit;
	j->mj.smtputf8 = m->smtputf8;
	j->mj.body_fd = m->fd;
	j->mj.body_mem = m->body;
	j->mj.body_off = m->body_off;
	j->mj.body_size = m->size;
	j->mj.body_crc = m->crc;
	j->mj.route = *r;
	j->mj.rcpts = j->rcpts;
	j->mj.nrcpts = 0;
	j->mj.may_start = job_may_start;
	j->mj.done = job_done;
	j->mj.arg = j;
	return j;
}

/* rcpt_wire - the address RCPT TO names on route kind k: the reversed
 * SRS address; on the legacy route the form the client wrote (the old
 * server owns its addresses: a front-end is transparent to it); else the
 * canonical form */
static const char *
rcpt_wire(const struct queue_rcpt *r, enum route_kind k)
{
	if (r->dest != NULL)
		return r->dest;
	if (k == ROUTE_LEGACY && r->orig != NULL)
		return r->orig;
	return r->addr;
}

/* group_of - the attempt group of route rt (fwd: with the SRS sender) */
static int
group_of(struct attempt_group **groups, int *ngroups, const struct route *rt,
    int fwd)
{
	int g;

	for (g = 0; g < *ngroups; g++)
		if ((*groups)[g].fwd == fwd && strcmp((*groups)[g].rt.key, rt->key) == 0)
			return g;
	*groups = xrealloc(*groups, (size_t)(g + 1) * sizeof(**groups));
	(*groups)[g].rt = *rt;
	(*groups)[g].fwd = fwd;
	(*groups)[g].count = 0;
	(*ngroups)++;
	return g;
}

/* msg_attempt - the file is open: expand what needs it, then route the
 * due recipients now, one mta job per route key and sender */
static void
msg_attempt(struct queue_msg *m, int fd, char *body)
{
	struct queue_bounces bl = { 0, 0, NULL };
	struct attempt_group *groups = NULL;
	struct queue_job **jobs = NULL;
	struct route rt;
	int *group, ngroups = 0, g;
	char why[QUEUE_WHY_MAX], fwd_sender[SRS_ADDR_MAX];
	const char *dsn;
	time_t now = time(NULL);

	m->fd = fd;
	m->body = body;
	queue_expand_msg(m, now, &bl);
	group = xcalloc((size_t)m->nrcpts, sizeof(int));
	for (int i = 0; i < m->nrcpts; i++) {
		struct queue_rcpt *r = &m->rcpts[i];
		group[i] = -1;
		if (r->state != QUEUE_R_PENDING || r->next > now || r->held ||
		    queue_rcpt_on_hold(m, i))
			continue;
		if (r->kind == SPOOL_K_LOOP) {
			queue_expand_loop_bounce(m, i, &bl);
			continue;
		}
		if (!copy_may_start(m, i)) {
			copy_drop(m, i, NULL, "4.4.7", "dual delivery is off");
			continue;
		}
		why[0] = '\0';
		switch (queue_expand_route_of(m, r, &rt, why, sizeof(why),
		    &dsn)) {
		case ROUTE_DEFER:
		case ROUTE_EXPAND:	/* not reached: expanded above */
			rcpt_defer(m, i, now, NULL, 0, dsn ? dsn : DSN_NO_ROUTE_TEMP,
			    why, &bl);
			continue;
		case ROUTE_FAIL:
			queue_rcpt_bounce(m, i, NULL,
			    dsn ? dsn : DSN_NO_ROUTE_PERM, 0, why, NULL, &bl);
			continue;
		default:
			break;
		}
		g = group_of(&groups, &ngroups, &rt, r->kind == SPOOL_K_FWD);
		groups[g].count++;
		group[i] = g;
		r->state = QUEUE_R_ACTIVE;
		r->last = now;
	}
	if (ngroups) {
		jobs = xcalloc((size_t)ngroups, sizeof(*jobs));
		for (g = 0; g < ngroups; g++) {
			if (groups[g].fwd)
				queue_expand_forward_sender(m, now, fwd_sender,
				    sizeof(fwd_sender));
			jobs[g] = job_new(m, &groups[g].rt, groups[g].count,
			    groups[g].fwd ? fwd_sender : m->sender);
		}
		for (int i = 0; i < m->nrcpts; i++) {
			struct mta_job *mj;
			const struct queue_rcpt *r = &m->rcpts[i];
			if (group[i] < 0)
				continue;
			mj = &jobs[group[i]]->mj;
			mj->rcpts[mj->nrcpts].addr = rcpt_wire(r,
			    groups[group[i]].rt.kind);
			mj->rcpts[mj->nrcpts].index = i;
			mj->nrcpts++;
		}
	}
	/* the open took one in-flight slot; the jobs take it over */
	q.inflight += ngroups - 1;
	m->njobs += ngroups;
	if (ngroups == 0)
		msg_close_body(m);
	/* failures found now wait for the jobs: one DSN per round */
	bounce_merge(&m->bpend, &bl);
	if (ngroups == 0 && m->bpend.n)
		bounce_start(m, &m->bpend);
	for (g = 0; g < ngroups; g++)
		mta_submit(&jobs[g]->mj);
	free(jobs);
	free(groups);
	free(group);
	queue_msg_sync(m);
}

/* msg_open_failed - the file could not be opened for an attempt */
static void
msg_open_failed(struct queue_msg *m, int err)
{
	time_t now = time(NULL);

	q.inflight--;
	if (err == ENOENT) {
		/* removed behind our back: nothing left to deliver */
		log_warnx("%s queue file vanished; message dropped", m->id);
		m->deleted = 1;
		queue_msg_sync(m);
		return;
	}
	log_warnx("%s queue file open: %s; retry in %ds", m->id, strerror(err),
	    QUEUE_ERROR_WAIT);
	for (int i = 0; i < m->nrcpts; i++)
		if (m->rcpts[i].state == QUEUE_R_PENDING && m->rcpts[i].next <= now)
			m->rcpts[i].next = now + QUEUE_ERROR_WAIT;
	queue_msg_sync(m);
}

/* open_read_body - reader worker: a small body, whole, into memory. Its
 * sending then needs no reader round trip (readahead.c): most mail is
 * small, and at one client the trip's two thread wake-ups were a good part
 * of a 4 KB message's delivery. NULL when it is larger or unreadable (the
 * reads on the usual path meet the error and report it). */
static char *
open_read_body(int fd, off_t off, uint64_t size)
{
	char *p;

	if (size == 0 || size > QUEUE_PREREAD_MAX || (p = malloc(size)) == NULL)
		return NULL;
	if (mx_pread_full(fd, p, size, off) != (ssize_t)size) {
		free(p);
		return NULL;
	}
	return p;
}

/* open_job - reader worker: open the files of a batch */
static void
open_job(void *arg)
{
	struct open_batch *b = arg;

	for (int i = 0; i < b->n; i++) {
		b->fd[i] = spool_open_message(b->m[i]->id);
		b->err[i] = b->fd[i] < 0 ? errno : 0;
		if (b->fd[i] >= 0)
			b->body[i] = open_read_body(b->fd[i], b->off[i], b->size[i]);
	}
}

/* open_done - loop: start the attempts of an opened batch */
static void
open_done(void *arg)
{
	struct open_batch *b = arg;

	for (int i = 0; i < b->n; i++) {
		struct queue_msg *m = b->m[i];
		if (q.closing) {
			if (b->fd[i] >= 0)
				close(b->fd[i]);
			free(b->body[i]);
			continue;
		}
		m->opening = 0;
		if (m->deleted) {
			q.inflight--;
			if (b->fd[i] >= 0)
				close(b->fd[i]);
			free(b->body[i]);
			queue_msg_sync(m);
		} else if (b->fd[i] < 0)
			msg_open_failed(m, b->err[i]);
		else
			msg_attempt(m, b->fd[i], b->body[i]);
	}
	free(b);
	if (!q.closing)
		queue_arm();
}

static void
held_expired(int ok, int nbounced, void *arg)
{
	(void)ok;
	(void)nbounced;
	(void)arg;
}

/* held_expire - a quarantined message outlived max_lifetime: it goes as
 * other mail does, bounced, or dropped (filters.quarantine_expiry) */
static void
held_expire(struct queue_msg *m)
{
	int bounce = !q.cfg->quarantine_expiry_drop;

	log_info("%s queue held message expired action=%s reason=\"%s\"", m->id,
	    bounce ? "bounce" : "drop", m->held);
	story_add(m, "held message expired: %s", bounce ? "bounced" : "dropped");
	queue_delete(m->id, bounce, held_expired, NULL);
}

/* queue_run - timer: take due messages, as many as the in-flight limit
 * allows, and open them on the reader worker */
static void
queue_run(evutil_socket_t fd, short ev, void *arg)
{
	struct open_batch *b = NULL;
	struct qsched_node *nd;
	struct queue_msg *m;
	time_t now = time(NULL);

	(void)fd;
	(void)ev;
	(void)arg;
	/* the fleet makes everything due again when the lease is back */
	if (!fleet_may_deliver())
		return;
	while (q.inflight < QUEUE_JOBS_MAX && (nd = qsched_top(&q.heap)) != NULL &&
	    nd->due <= now) {
		qsched_pop(&q.heap);
		m = (struct queue_msg *)((char *)nd - offsetof(struct queue_msg, sched));
		if (m->held) {
			held_expire(m);
			continue;
		}
		if (b == NULL)
			b = xcalloc(1, sizeof(*b));
		m->opening = 1;
		q.inflight++;
		b->off[b->n] = m->body_off;
		b->size[b->n] = m->size;
		b->m[b->n++] = m;
		if (b->n == QUEUE_OPEN_BATCH) {
			worker_submit(q.reader, open_job, open_done, b);
			b = NULL;
		}
	}
	if (b)
		worker_submit(q.reader, open_job, open_done, b);
	queue_arm();
}

/* queue_arm - set the timer for the earliest due message; while the
 * in-flight limit is reached, finishing jobs call this again */
static void
queue_arm(void)
{
	struct qsched_node *nd = qsched_top(&q.heap);
	struct timeval tv = { 0, 0 };
	time_t now;

	if (q.closing || q.timer == NULL)
		return;
	if (nd == NULL || q.inflight >= QUEUE_JOBS_MAX) {
		evtimer_del(q.timer);
		return;
	}
	now = time(NULL);
	if (nd->due > now)
		tv.tv_sec = nd->due - now;
	evtimer_add(q.timer, &tv);
}

/* Bounces */

static void
bounce_job_free(struct bounce_job *bj)
{
	bounce_list_free(&bj->list);
	free(bj->headers);
	free(bj);
}

/* bounce_finish - the DSN is durable (ok) or could not be written */
static void
bounce_finish(struct bounce_job *bj, int ok)
{
	struct queue_msg *m = bj->m;
	time_t now = time(NULL);

	for (int k = 0; k < bj->list.n; k++) {
		struct queue_bounce_item *it = &bj->list.v[k];
		struct queue_rcpt *r = &m->rcpts[it->index];
		if (ok) {
			rcpt_final(m, it->index, QUEUE_R_BOUNCED, now, it->reply);
			continue;
		}
		/* keep it: the next attempt fails again and bounces again */
		r->state = QUEUE_R_PENDING;
		r->next = now + qsched_retry_delay(q.cfg->retry_schedule,
		    q.cfg->nretry_schedule, r->attempts > 0 ? r->attempts : 1);
	}
	m->nbounces--;
	bounce_job_free(bj);
	queue_msg_sync(m);
}

static void
bounce_committed(struct spool_msg *sm, int ok, void *arg)
{
	struct bounce_job *bj = arg;

	/* after queue_close (the spool finishes its commits last) bj->m is
	 * gone; the DSN itself is safely queued for the next start */
	if (q.closing) {
		bounce_job_free(bj);
		return;
	}
	if (ok) {
		mx_stats.bounces_sent++;
		log_info("%s bounce=%s to=<%s> recipients=%d", bj->m->id,
		    spool_msg_id(sm), bj->m->sender, bj->list.n);
		story_add(bj->m, "bounce=%s to=<%s> recipients=%d",
		    spool_msg_id(sm), bj->m->sender, bj->list.n);
	} else
		log_warnx("%s bounce could not be queued; retried later", bj->m->id);
	bounce_finish(bj, ok);
}

/* rcpt_original - the envelope recipient as the client wrote it, for the
 * DSN's Original-Recipient: of recipient i itself, or of the envelope
 * recipient an expansion child comes from; NULL when it is i's own
 * canonical form */
static const char *
rcpt_original(const struct queue_msg *m, int i)
{
	int root = i, hops = 0;

	while (m->rcpts[root].parent >= 0 && m->rcpts[root].parent < m->nrcpts &&
	    hops++ < m->nrcpts)
		root = m->rcpts[root].parent;
	if (root == i)
		return m->rcpts[i].orig;
	return m->rcpts[root].orig ? m->rcpts[root].orig : m->rcpts[root].addr;
}

/* bounce_enqueue - loop: build the DSN and commit it as a new message */
static void
bounce_enqueue(struct bounce_job *bj)
{
	struct queue_msg *m = bj->m;
	struct bounce_rcpt *br = xcalloc((size_t)bj->list.n, sizeof(*br));
	struct spool_envelope env;
	struct bounce_info bi;
	struct spool_msg *sm;
	char id[SPOOL_ID_LEN + 1], *text;
	const char *rcpts[1];
	size_t len;
	int is8;

	spool_new_id(id);
	for (int k = 0; k < bj->list.n; k++) {
		struct queue_bounce_item *it = &bj->list.v[k];
		br[k].addr = m->rcpts[it->index].addr;
		br[k].orig = rcpt_original(m, it->index);
		br[k].status = it->status;
		br[k].remote_mta = it->remote[0] ? it->remote : NULL;
		br[k].code = it->code;
		br[k].reply = it->reply;
		br[k].reason = it->reason;
	}
	memset(&bi, 0, sizeof(bi));
	bi.hostname = q.cfg->hostname;
	bi.dsn_id = id;
	bi.orig_id = m->id;
	bi.orig_sender = m->sender;
	bi.arrival = m->arrival;
	bi.now = time(NULL);
	bi.rcpts = br;
	bi.nrcpts = bj->list.n;
	bi.headers = bj->headers ? bj->headers : "";
	bi.headers_len = bj->hlen;
	text = bounce_build(&bi, &len, &is8);
	free(br);

	memset(&env, 0, sizeof(env));
	env.client_addr = "127.0.0.1";
	env.client_port = 0;
	env.helo = q.cfg->hostname;
	env.sender = "";
	rcpts[0] = m->sender;
	env.rcpts = rcpts;
	env.nrcpts = 1;
	env.body_8bit = is8;
	env.smtputf8 = m->smtputf8;
	env.route_mx = 1;
	/* written behind by the spool writer; a failure shows at commit. The
	 * spool's message buffers are fallible for sessions' sake; a bounce
	 * is the daemon's own work: out of memory here stops it, as xmalloc
	 * would (util.h). */
	if ((sm = spool_msg_open(id, &env)) == NULL || spool_msg_write(sm, text, len) < 0)
		fatalx("bounce %s: out of memory", id);
	free(text);
	spool_msg_commit(sm, bounce_committed, bj);
}

/* headers_job - reader worker: the failed message's headers */
static void
headers_job(void *arg)
{
	struct bounce_job *bj = arg;
	int fd = spool_open_message(bj->m->id);

	if (fd < 0)
		return;
	bj->headers = spool_read_headers(fd, bj->m->body_off, bj->m->size,
	    BOUNCE_HEADERS_MAX, &bj->hlen);
	close(fd);
}

static void
headers_done(void *arg)
{
	struct bounce_job *bj = arg;

	if (q.closing) {
		bounce_job_free(bj);
		return;
	}
	bounce_enqueue(bj);
}

/* bounce_start - the recipients in bl failed for good at the same time:
 * one DSN to the sender for all of them (never for <> or a DSN) */
static void
bounce_start(struct queue_msg *m, struct queue_bounces *bl)
{
	struct bounce_job *bj;
	time_t now = time(NULL);

	if (m->sender[0] == '\0' || m->route_mx) {
		for (int k = 0; k < bl->n; k++) {
			log_info("%s to=<%s> no bounce for the null sender",
			    m->id, m->rcpts[bl->v[k].index].addr);
			rcpt_final(m, bl->v[k].index, QUEUE_R_BOUNCED, now,
			    bl->v[k].reply);
		}
		bounce_list_free(bl);
		return;
	}
	bj = xcalloc(1, sizeof(*bj));
	bj->m = m;
	bj->list = *bl;
	memset(bl, 0, sizeof(*bl));
	m->nbounces++;
	worker_submit(q.reader, headers_job, headers_done, bj);
}

/* Loading and the commit hook */

/* queue_add - a message from the spool (recovered or just committed) */
static void
queue_add(struct spool_entry *e, void *arg)
{
	struct queue_msg *m = msg_new(e);

	(void)arg;
	story_add(m, "%s from=<%s> size=%" PRIu64 " nrcpt=%d",
	    q.loading ? "found in the spool at start" : "queued", m->sender,
	    m->size, m->nrcpts);
	if (m->held)
		story_add(m, "held (quarantine) reason=\"%s\"", m->held);
	spool_entry_free(e);
	if (dict_put(q.msgs, m->id, m) != NULL)
		fatalx("%s queue: duplicate queue ID", m->id);
	queue_msg_sync(m);
}

/* Operator and switch actions */

struct due_walk {
	const char *domain;
	time_t now;
	int count;
	int release;		/* a released domain: every waiting recipient */
};

static int
due_walk_fn(const char *key, void *val, void *arg)
{
	struct queue_msg *m = val;
	struct due_walk *w = arg;
	int moved = 0;

	(void)key;
	if (m->deleted)
		return 0;
	for (int i = 0; i < m->nrcpts; i++) {
		struct queue_rcpt *r = &m->rcpts[i];
		const struct domain_info *d;
		if (r->state != QUEUE_R_PENDING)
			continue;
		if (w->release) {
			/* held recipients were left out of the schedule */
			d = rcpt_domain(m, i);
			if ((d == NULL || strcmp(d->name, w->domain) != 0) &&
			    !queue_rcpt_in_domain(r->addr, w->domain))
				continue;
		} else if (r->next <= w->now ||
		    (w->domain && !queue_rcpt_in_domain(r->addr, w->domain)))
			continue;
		if (r->next > w->now)
			r->next = w->now;
		moved++;
	}
	if (moved) {
		w->count += moved;
		/* cannot remove m (it has a waiting recipient): the walk is safe */
		queue_msg_sync(m);
	}
	return 0;
}

/* due_walk_run - the walk over every message */
static int
due_walk_run(struct due_walk *w)
{
	if (q.msgs == NULL)
		return 0;
	q.loading = 1;		/* arm once at the end */
	dict_walk(q.msgs, due_walk_fn, w);
	q.loading = 0;
	queue_arm();
	return w->count;
}

int
queue_release_domain(const char *domain)
{
	struct due_walk w = { domain, time(NULL), 0, 1 };

	return due_walk_run(&w);
}

int
queue_make_due(const char *domain)
{
	struct due_walk w = { domain, time(NULL), 0, 0 };

	if (due_walk_run(&w))
		log_info("queue flush domain=%s recipients=%d",
		    domain ? domain : "*", w.count);
	return w.count;
}

const struct queue_msg *
queue_find(const char *id)
{
	struct queue_msg *m = q.msgs ? dict_get(q.msgs, id) : NULL;

	return m && !m->deleted ? m : NULL;
}

struct snap {
	const char *domain;
	const struct queue_msg **v;
	size_t n, cap;
};

static int
snap_fn(const char *key, void *val, void *arg)
{
	struct queue_msg *m = val;
	struct snap *s = arg;
	int match = s->domain == NULL;

	(void)key;
	if (m->deleted || m->nlive == 0)
		return 0;
	for (int i = 0; !match && i < m->nrcpts; i++)
		match = m->rcpts[i].state < QUEUE_R_DELIVERED &&
		    queue_rcpt_in_domain(m->rcpts[i].addr, s->domain);
	if (!match)
		return 0;
	if (s->n == s->cap) {
		s->cap = s->cap ? s->cap * 2 : 64;
		s->v = xrealloc(s->v, s->cap * sizeof(*s->v));
	}
	s->v[s->n++] = m;
	return 0;
}

struct walk {
	queue_walk_fn fn;
	void *arg;
};

static int
walk_fn(const char *key, void *val, void *arg)
{
	const struct queue_msg *m = val;
	struct walk *w = arg;

	(void)key;
	if (!m->deleted && m->nlive > 0)
		w->fn(m, w->arg);
	return 0;
}

void
queue_walk(queue_walk_fn fn, void *arg)
{
	struct walk w = { fn, arg };

	if (q.msgs)
		dict_walk(q.msgs, walk_fn, &w);
}

static int
snap_cmp(const void *a, const void *b)
{
	const struct queue_msg *x = *(const struct queue_msg *const *)a;
	const struct queue_msg *y = *(const struct queue_msg *const *)b;

	return strcmp(x->id, y->id);
}

size_t
queue_snapshot(const char *domain, const struct queue_msg ***out)
{
	struct snap s = { domain, NULL, 0, 0 };

	if (q.msgs)
		dict_walk(q.msgs, snap_fn, &s);
	if (s.n)
		qsort(s.v, s.n, sizeof(*s.v), snap_cmp);
	*out = s.v;
	return s.n;
}

static void
show_job(void *arg)
{
	struct show_req *sr = arg;
	size_t len;
	int fd;

	if ((sr->e = spool_read_entry(sr->id, 1)) == NULL)
		return;
	if ((fd = spool_open_message(sr->id)) < 0)
		return;
	sr->headers = spool_read_headers(fd, sr->e->body_off, sr->e->body_size,
	    BOUNCE_HEADERS_MAX, &len);
	close(fd);
}

static void
show_done(void *arg)
{
	struct show_req *sr = arg;

	sr->cb(q.closing ? NULL : queue_find(sr->id), sr->e,
	    sr->headers ? sr->headers : "", sr->arg);
	spool_entry_free(sr->e);
	free(sr->headers);
	free(sr);
}

int
queue_show(const char *id, queue_show_fn cb, void *arg)
{
	struct show_req *sr;

	if (queue_find(id) == NULL)
		return -1;
	sr = xcalloc(1, sizeof(*sr));
	mx_strlcpy(sr->id, id, sizeof(sr->id));
	sr->cb = cb;
	sr->arg = arg;
	worker_submit(q.reader, show_job, show_done, sr);
	return 0;
}

int
queue_delete(const char *id, int bounce, queue_delete_fn cb, void *arg)
{
	struct queue_msg *m = q.msgs ? dict_get(q.msgs, id) : NULL;
	struct queue_bounces bl = { 0, 0, NULL };

	if (m == NULL || m->deleted)
		return -1;
	m->del = xcalloc(1, sizeof(*m->del));
	m->del->cb = cb;
	m->del->arg = arg;
	m->del->bounce = bounce;
	if (bounce) {
		/* recipients in an attempt now (QUEUE_R_ACTIVE) are bounced
		 * when it ends without delivering them (job_deleted_result) */
		for (int i = 0; i < m->nrcpts; i++)
			if (m->rcpts[i].state == QUEUE_R_PENDING)
				delete_bounce(m, i, &bl);
		if (bl.n)
			bounce_start(m, &bl);
	}
	/* after the bounce: it records the bounced recipients first */
	m->deleted = 1;
	log_info("%s delete requested bounce=%d", m->id, bounce);
	queue_msg_sync(m);
	return 0;
}

struct release_req {
	char id[SPOOL_ID_LEN + 1];
	queue_release_fn cb;
	void *arg;
};

/* release_done - the release record is durable: schedule the message */
static void
release_done(int ok, void *arg)
{
	struct release_req *rr = arg;
	struct queue_msg *m = q.msgs ? dict_get(q.msgs, rr->id) : NULL;

	if (ok && m != NULL && m->held) {
		log_info("%s queue released", m->id);
		story_add(m, "released from quarantine");
		free(m->held);
		m->held = NULL;
		queue_msg_sync(m);
	}
	rr->cb(ok && m != NULL, rr->arg);
	free(rr);
}

int
queue_release(const char *id, queue_release_fn cb, void *arg)
{
	struct queue_msg *m = q.msgs ? dict_get(q.msgs, id) : NULL;
	struct release_req *rr;
	char rec[64];
	size_t n;

	if (m == NULL || m->held == NULL || m->deleted)
		return -1;
	rr = xcalloc(1, sizeof(*rr));
	mx_strlcpy(rr->id, id, sizeof(rr->id));
	rr->cb = cb;
	rr->arg = arg;
	n = spool_release_record(rec, sizeof(rec), time(NULL));
	spool_append_state(m->id, rec, n, release_done, rr);
	return 0;
}

/* Start and stop */

int
queue_init(struct event_base *base, const struct config *cfg, char *err,
    size_t errlen)
{
	uint64_t t0 = mx_mono_us();
	size_t n;

	memset(&q, 0, sizeof(q));
	q.cfg = cfg;
	q.msgs = dict_new();
	q.flight = dict_new();
	q.recent = dict_new();
	qsched_init(&q.heap);
	if ((q.timer = evtimer_new(base, queue_run, NULL)) == NULL) {
		snprintf(err, errlen, "queue: evtimer_new failed");
		return -1;
	}
	q.reader = worker_new(base, "queue-reader");
	q.loading = 1;
	n = spool_take_recovered(queue_add, NULL);
	q.loading = 0;
	spool_set_queued_hook(queue_add, NULL);
	log_info("queue loaded messages=%zu waiting=%zu recipients=%" PRId64
	    " elapsed_ms=%" PRIu64, n, q.heap.n, mx_stats.queue_recipients,
	    (mx_mono_us() - t0) / 1000);
	queue_arm();
	return 0;
}

void
queue_set_config(const struct config *cfg)
{
	q.cfg = cfg;
}

static int
free_msg_fn(const char *key, void *val, void *arg)
{
	(void)key;
	(void)arg;
	msg_free(val);
	return 0;
}

void
queue_close(void)
{
	if (q.msgs == NULL)
		return;
	spool_set_queued_hook(NULL, NULL);
	q.closing = 1;
	/* pending reads finish; their callbacks see closing and let go */
	worker_free(q.reader);
	q.reader = NULL;
	event_free(q.timer);
	q.timer = NULL;
	qsched_free(&q.heap);
	dict_walk(q.msgs, free_msg_fn, NULL);
	dict_free(q.msgs, NULL);
	dict_free(q.flight, free);
	dict_free(q.recent, free);
	q.recent = NULL;
	q.flight = NULL;
	q.msgs = NULL;
}
