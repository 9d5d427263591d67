/* milter.c - one message through the chain of milters, on the event loop
 *
 * Every milter of the chain gets its own connection per message and its
 * own queue of packets: the envelope is queued at start, the headers and
 * body chunks as the client sends them. A connection sends one command at
 * a time and waits for its reply (unless the milter said at negotiation
 * that it does not answer that step, or does not want it at all); macros
 * ('D') never get a reply. At the end of the body the milter sends its
 * changes and a final verdict. A milter that cannot be reached, does not
 * answer within its timeout or sends something malformed fails: its
 * on_error decides (tempfail: 451 for the message; accept: as if it had
 * accepted, without changes).
 *
 * This file talks to bufferevent directly, as smtp_client.c does: ioev.c
 * serves accepted server sockets, we need a non-blocking connect.
 */
#include "autoconf.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>

#include "dict.h"
#include "log.h"
#include "milter.h"
#include "util.h"

enum mc_state {
	MC_CONNECT,	/* connecting */
	MC_NEGOTIATE,	/* OPTNEG sent */
	MC_IDLE,	/* nothing to send until more is queued */
	MC_WAIT,	/* a command sent, its reply awaited */
	MC_DONE,	/* verdict known (or failed) */
};

static const char *const mc_state_names[] = {
	"connect", "negotiate", "idle", "wait", "done",
};

static const char *const action_names[] = {
	"accept", "reject", "tempfail", "discard", "quarantine",
};

/* one milter's connection for the message */
struct mconn {
	struct milter_txn *t;
	const struct milter_conf *mc;	/* &conf */
	struct milter_conf conf;	/* a copy: a reload may free cfg */
	enum mc_state state;
	struct bufferevent *bev;
	struct event *timer;
	struct evbuffer *q;		/* packets not sent yet */
	uint32_t actions, protocol;	/* negotiated */
	char waiting;			/* the command whose reply we await */
	int skip_body;			/* SMFIR_SKIP: no more body chunks */
	int failed;			/* down, timeout, garbage: on_error */
	enum milter_action verdict;
	char reply[MILTER_TEXT_MAX];
	char quarantine[MILTER_TEXT_MAX];
	struct medits edits;
	char **add, **del;
	int nadd, ndel;
	size_t edit_bytes;		/* header changes so far */
	uint64_t started, ended;	/* monotonic microseconds */
};

struct milter_txn {
	struct event_base *base;
	char sid[32];
	char qid[32];
	struct mconn *v;
	int n;
	/* the header section while it arrives (mhdr_section) */
	struct evbuffer *head;
	int in_body;
	uint64_t max_body;		/* a new body: limits.max_message_size */
	int ended;			/* milter_txn_end was called */
	milter_done_fn done;
	void *done_arg;
	milter_drain_fn drain;
	void *drain_arg;
	struct event *check_ev;		/* txn_run: drain or verdict, deferred
					 * so that callbacks never run inside
					 * a milter's read or a session call */
};

static struct dict *stats_by_name;	/* name -> struct milter_stat */

static void mc_send_next(struct mconn *);
static void mc_fail(struct mconn *, const char *why);
static void txn_check(struct milter_txn *);
static void txn_run(evutil_socket_t, short, void *);

const char *
milter_action_name(enum milter_action a)
{
	return action_names[a];
}

static struct milter_stat *
stat_for(const char *name)
{
	struct milter_stat *st;

	if (stats_by_name == NULL)
		stats_by_name = dict_new();
	if ((st = dict_get(stats_by_name, name)) == NULL) {
		st = xcalloc(1, sizeof(*st));
		dict_put(stats_by_name, name, st);
	}
	return st;
}

struct stat_walk {
	milter_stat_fn fn;
	void *arg;
};

static int
stat_walk_one(const char *name, void *val, void *arg)
{
	struct stat_walk *w = arg;

	w->fn(name, val, w->arg);
	return 0;
}

void
milter_stat_walk(milter_stat_fn fn, void *arg)
{
	struct stat_walk w = { fn, arg };

	if (stats_by_name != NULL)
		dict_walk(stats_by_name, stat_walk_one, &w);
}

static void
mc_enter(struct mconn *c, enum mc_state st)
{
	log_debug("%s milter %s state %s -> %s", c->t->sid, c->mc->name,
	    mc_state_names[c->state], mc_state_names[st]);
	c->state = st;
	/* idle: we wait for the client, the milter's clock stops */
	if (st == MC_IDLE)
		evtimer_del(c->timer);
}

static void
mc_arm(struct mconn *c)
{
	struct timeval tv = { c->mc->timeout, 0 };

	evtimer_add(c->timer, &tv);
}

static void
mc_close(struct mconn *c)
{
	if (c->bev) {
		bufferevent_free(c->bev);
		c->bev = NULL;
	}
	if (c->timer)
		evtimer_del(c->timer);
}

/* mc_finish - the milter's verdict is known: stop talking to it */
static void
mc_finish(struct mconn *c, enum milter_action a)
{
	if (c->state == MC_DONE)
		return;
	c->verdict = a;
	c->ended = mx_mono_us();
	/* a polite goodbye; nothing more is read */
	if (c->bev && !c->failed) {
		milter_put(bufferevent_get_output(c->bev), SMFIC_QUIT, NULL, 0);
		bufferevent_disable(c->bev, EV_READ);
	}
	if (c->timer)
		evtimer_del(c->timer);
	mc_enter(c, MC_DONE);
	txn_check(c->t);
}

static void
mc_fail(struct mconn *c, const char *why)
{
	if (c->state == MC_DONE)
		return;
	log_warnx("%s milter %s error=\"%s\" on_error=%s", c->t->sid, c->mc->name,
	    why, c->mc->on_error_accept ? "accept" : "tempfail");
	c->failed = 1;
	mc_close(c);
	medits_free(&c->edits);
	mc_finish(c, c->mc->on_error_accept ? MILTER_ACCEPT : MILTER_TEMPFAIL);
}

/* reply_text - keep a REPLYCODE as one line: its first, with a final space */
static void
reply_text(char *dst, size_t len, const char *t)
{
	size_t i;

	mx_strlcpy(dst, t, len);
	dst[strcspn(dst, "\r\n")] = '\0';
	if (strlen(dst) > 3 && dst[3] == '-')
		dst[3] = ' ';
	for (i = 0; dst[i]; i++)
		if ((unsigned char)dst[i] < ' ')
			dst[i] = ' ';
}

static void
add_rcpt_edit(char ***v, int *n, const char *rcpt)
{
	char *a = xstrdup(rcpt);
	size_t l = strlen(a);

	/* milters write <addr> or addr */
	if (l >= 2 && a[0] == '<' && a[l - 1] == '>') {
		memmove(a, a + 1, l - 2);
		a[l - 2] = '\0';
	}
	*v = xrealloc(*v, sizeof(char *) * (size_t)(*n + 1));
	(*v)[(*n)++] = a;
}

/* mc_modify - a change at the end of the message: check it was
 * negotiated, keep it; -1 when the milter broke the protocol */
static int
mc_modify(struct mconn *c, const struct milter_reply *r)
{
	uint32_t need;

	switch (r->cmd) {
	case SMFIR_ADDHEADER:	need = SMFIF_ADDHDRS; break;
	case SMFIR_INSHEADER:	need = SMFIF_ADDHDRS; break;
	case SMFIR_CHGHEADER:	need = SMFIF_CHGHDRS; break;
	case SMFIR_REPLBODY:	need = SMFIF_CHGBODY; break;
	case SMFIR_ADDRCPT:	need = SMFIF_ADDRCPT; break;
	case SMFIR_ADDRCPT_PAR:	need = SMFIF_ADDRCPT_PAR; break;
	case SMFIR_DELRCPT:	need = SMFIF_DELRCPT; break;
	case SMFIR_QUARANTINE:	need = SMFIF_QUARANTINE; break;
	default:		return -1;
	}
	if (!(c->actions & need) || c->waiting != SMFIC_BODYEOB)
		return -1;
	/* what a milter makes us keep is bounded like what a client sends */
	if (r->cmd == SMFIR_REPLBODY) {
		if (c->edits.bodylen + r->bodylen > c->t->max_body)
			return -1;
	} else {
		c->edit_bytes += (r->name ? strlen(r->name) : 0) +
		    (r->value ? strlen(r->value) : 0) +
		    (r->text ? strlen(r->text) : 0);
		if (c->edit_bytes > MILTER_EDIT_BYTES_MAX)
			return -1;
	}
	switch (r->cmd) {
	case SMFIR_ADDHEADER:
		return medits_add(&c->edits, MEDIT_ADD, 0, r->name, r->value);
	case SMFIR_INSHEADER:
		return medits_add(&c->edits, MEDIT_INSERT, r->index, r->name, r->value);
	case SMFIR_CHGHEADER:
		return medits_add(&c->edits, MEDIT_CHANGE, r->index, r->name, r->value);
	case SMFIR_REPLBODY:
		c->edits.body = xrealloc(c->edits.body, c->edits.bodylen + r->bodylen + 1);
		memcpy(c->edits.body + c->edits.bodylen, r->body, r->bodylen);
		c->edits.bodylen += r->bodylen;
		return 0;
	case SMFIR_ADDRCPT:
	case SMFIR_ADDRCPT_PAR:
		if (c->nadd >= MILTER_RCPT_EDITS_MAX)
			return -1;
		add_rcpt_edit(&c->add, &c->nadd, r->name);
		return 0;
	case SMFIR_DELRCPT:
		if (c->ndel >= MILTER_RCPT_EDITS_MAX)
			return -1;
		add_rcpt_edit(&c->del, &c->ndel, r->name);
		return 0;
	case SMFIR_QUARANTINE:
		reply_text(c->quarantine, sizeof(c->quarantine),
		    *r->text ? r->text : "quarantined");
		return 0;
	}
	return -1;
}

/* mc_reply - one packet from the milter; -1: protocol error */
static int
mc_reply(struct mconn *c, const struct milter_reply *r)
{
	if (c->state == MC_NEGOTIATE) {
		if (r->cmd != SMFIC_OPTNEG || r->version < 2)
			return -1;
		/* the milter may ask for less than we offered, never more */
		c->actions = r->actions & MILTER_ACTIONS;
		c->protocol = r->protocol & MILTER_PROTOCOL;
		if (r->actions & ~MILTER_ACTIONS & (SMFIF_CHGFROM))
			log_info("%s milter %s wants actions=0x%x, not offered",
			    c->t->sid, c->mc->name, (unsigned)r->actions);
		mc_enter(c, MC_IDLE);
		return 0;
	}
	if (c->state != MC_WAIT)
		return -1;
	switch (r->cmd) {
	case SMFIR_PROGRESS:
		mc_arm(c);	/* still working: a new timeout */
		return 0;
	case SMFIR_CONTINUE:
		if (c->waiting == SMFIC_BODYEOB) {	/* libmilter's "go on" at the end */
			mc_finish(c, c->quarantine[0] ? MILTER_QUARANTINE : MILTER_ACCEPT);
			return 0;
		}
		mc_enter(c, MC_IDLE);
		return 0;
	case SMFIR_SKIP:
		if (c->waiting != SMFIC_BODY)
			return -1;
		c->skip_body = 1;
		mc_enter(c, MC_IDLE);
		return 0;
	case SMFIR_ACCEPT:
		mc_finish(c, c->quarantine[0] ? MILTER_QUARANTINE : MILTER_ACCEPT);
		return 0;
	case SMFIR_DISCARD:
		mc_finish(c, MILTER_DISCARD);
		return 0;
	case SMFIR_REJECT:
	case SMFIR_CONNFAIL:
		mx_strlcpy(c->reply, "550 5.7.1 Message content rejected",
		    sizeof(c->reply));
		mc_finish(c, MILTER_REJECT);
		return 0;
	case SMFIR_TEMPFAIL:
		mx_strlcpy(c->reply, "451 4.7.1 Service unavailable - try again later",
		    sizeof(c->reply));
		mc_finish(c, MILTER_TEMPFAIL);
		return 0;
	case SMFIR_REPLYCODE:
		reply_text(c->reply, sizeof(c->reply), r->text);
		mc_finish(c, r->text[0] == '5' ? MILTER_REJECT : MILTER_TEMPFAIL);
		return 0;
	default:
		return mc_modify(c, r);
	}
}

static void
mc_read(struct bufferevent *bev, void *arg)
{
	struct mconn *c = arg;
	struct evbuffer *in = bufferevent_get_input(bev);
	struct milter_reply r;
	char cmd, *data;
	size_t len;
	int k;

	while (c->state != MC_DONE && (k = milter_take(in, &cmd, &data, &len)) != 0) {
		if (k < 0) {
			unsigned char h[8] = { 0 };
			char why[64];

			evbuffer_copyout(in, h, sizeof(h));
			snprintf(why, sizeof(why), "bad packet length %02x%02x%02x%02x "
			    "in %s", h[0], h[1], h[2], h[3], mc_state_names[c->state]);
			mc_fail(c, why);
			return;
		}
		if (milter_parse_reply(cmd, data, len, &r) < 0 || mc_reply(c, &r) < 0) {
			char why[64];

			snprintf(why, sizeof(why), "unexpected reply '%c' in %s",
			    cmd >= ' ' && cmd <= '~' ? cmd : '?',
			    mc_state_names[c->state]);
			free(data);
			mc_fail(c, why);
			return;
		}
		free(data);
		if (c->state == MC_IDLE)
			mc_send_next(c);
	}
}

static void
mc_event(struct bufferevent *bev, short what, void *arg)
{
	struct mconn *c = arg;

	if (what & BEV_EVENT_CONNECTED) {
		int one = 1;

		/* small request-reply packets: no Nagle delay behind an ACK */
		if (c->mc->unix_path[0] == '\0')
			(void)setsockopt(bufferevent_getfd(bev), IPPROTO_TCP,
			    TCP_NODELAY, &one, sizeof(one));
		mc_enter(c, MC_NEGOTIATE);
		milter_put_optneg(bufferevent_get_output(bev));
		bufferevent_enable(bev, EV_READ);
		mc_arm(c);
		return;
	}
	if (what & BEV_EVENT_EOF)
		mc_fail(c, "connection closed");
	else if (what & BEV_EVENT_ERROR && c->state == MC_CONNECT &&
	    EVUTIL_SOCKET_ERROR() == ECONNREFUSED)
		mc_fail(c, "connection refused");
	else if (what & BEV_EVENT_ERROR)
		mc_fail(c, evutil_socket_error_to_string(EVUTIL_SOCKET_ERROR()));
}

static void
mc_timeout(evutil_socket_t fd, short ev, void *arg)
{
	struct mconn *c = arg;

	mc_fail(c, c->state == MC_CONNECT ? "connect timeout" : "timeout");
}

/* mc_wanted - does the milter want this command, and does it answer it? */
static int
mc_wanted(const struct mconn *c, char cmd, int *reply)
{
	static const struct { char cmd; uint32_t no, nr; } steps[] = {
		{ SMFIC_CONNECT, SMFIP_NOCONNECT, SMFIP_NR_CONN },
		{ SMFIC_HELO, SMFIP_NOHELO, SMFIP_NR_HELO },
		{ SMFIC_MAIL, SMFIP_NOMAIL, SMFIP_NR_MAIL },
		{ SMFIC_RCPT, SMFIP_NORCPT, SMFIP_NR_RCPT },
		{ SMFIC_DATA, SMFIP_NODATA, SMFIP_NR_DATA },
		{ SMFIC_HEADER, SMFIP_NOHDRS, SMFIP_NR_HDR },
		{ SMFIC_EOH, SMFIP_NOEOH, SMFIP_NR_EOH },
		{ SMFIC_BODY, SMFIP_NOBODY, SMFIP_NR_BODY },
	};

	*reply = cmd != SMFIC_MACRO;
	if (cmd == SMFIC_BODY && c->skip_body)
		return 0;
	for (size_t i = 0; i < MX_ARRAY_LEN(steps); i++)
		if (steps[i].cmd == cmd) {
			if (c->protocol & steps[i].no)
				return 0;
			*reply = !(c->protocol & steps[i].nr);
		}
	return 1;
}

/* mc_send_next - send queued packets up to the next one needing a reply */
static void
mc_send_next(struct mconn *c)
{
	unsigned char hdr[5];
	uint32_t n;
	int reply;

	while (c->state == MC_IDLE &&
	    evbuffer_copyout(c->q, hdr, sizeof(hdr)) == (ssize_t)sizeof(hdr)) {
		n = (uint32_t)hdr[0] << 24 | (uint32_t)hdr[1] << 16 |
		    (uint32_t)hdr[2] << 8 | hdr[3];
		if (!mc_wanted(c, (char)hdr[4], &reply)) {
			evbuffer_drain(c->q, 4 + n);
			continue;
		}
		/* macros go as they are: a milter ignores those of a step it
		 * switched off */
		evbuffer_remove_buffer(c->q, bufferevent_get_output(c->bev), 4 + n);
		if (reply) {
			c->waiting = (char)hdr[4];
			mc_enter(c, MC_WAIT);
			mc_arm(c);
		}
	}
	if (c->t->drain && evbuffer_get_length(c->q) < MILTER_QUEUE_MAX / 2)
		txn_check(c->t);
}

/* mc_connect - start the connection to the milter */
static int
mc_connect(struct mconn *c)
{
	struct sockaddr_storage ss;
	socklen_t sl;
	const struct milter_conf *mc = c->mc;

	memset(&ss, 0, sizeof(ss));
	if (mc->unix_path[0]) {
		struct sockaddr_un *su = (struct sockaddr_un *)&ss;

		su->sun_family = AF_UNIX;
		mx_strlcpy(su->sun_path, mc->unix_path, sizeof(su->sun_path));
		sl = sizeof(*su);
	} else {
		struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;

		if (inet_pton(AF_INET, mc->host, &s4->sin_addr) == 1) {
			s4->sin_family = AF_INET;
			s4->sin_port = htons((uint16_t)mc->port);
			sl = sizeof(*s4);
		} else if (inet_pton(AF_INET6, mc->host, &s6->sin6_addr) == 1) {
			s6->sin6_family = AF_INET6;
			s6->sin6_port = htons((uint16_t)mc->port);
			sl = sizeof(*s6);
		} else
			return -1;
	}
	c->bev = bufferevent_socket_new(c->t->base, -1, BEV_OPT_CLOSE_ON_FREE);
	bufferevent_setcb(c->bev, mc_read, NULL, mc_event, c);
	mc_arm(c);
	if (bufferevent_socket_connect(c->bev, (struct sockaddr *)&ss, (int)sl) < 0)
		return -1;
	return 0;
}

/* txn_queue - a packet for every milter still talking */
#define EACH_OPEN(t, c) \
	for (struct mconn *c = (t)->v; c < (t)->v + (t)->n; c++) \
		if (c->state != MC_DONE)

static void
txn_macros(struct milter_txn *t, char stage, const char *const *kv, int n)
{
	struct evbuffer *b = evbuffer_new();
	uint32_t len = 1 + 1, nl;
	char cmd = SMFIC_MACRO;
	int i;

	for (i = 0; i < n; i++)
		len += (uint32_t)strlen(kv[i]) + 1;
	nl = htonl(len);
	evbuffer_add(b, &nl, 4);
	evbuffer_add(b, &cmd, 1);
	evbuffer_add(b, &stage, 1);
	for (i = 0; i < n; i++)
		evbuffer_add(b, kv[i], strlen(kv[i]) + 1);
	EACH_OPEN(t, c)
		evbuffer_add(c->q, evbuffer_pullup(b, -1), evbuffer_get_length(b));
	evbuffer_free(b);
}

/* txn_push - the packets in b go to every milter still talking */
static void
txn_push(struct milter_txn *t, struct evbuffer *b)
{
	size_t n = evbuffer_get_length(b);

	EACH_OPEN(t, c) {
		evbuffer_add(c->q, evbuffer_pullup(b, -1), n);
		if (c->state == MC_IDLE)
			mc_send_next(c);
	}
	evbuffer_drain(b, n);
}

/* txn_envelope - what the milters see before the message */
static void
txn_envelope(struct milter_txn *t, const struct config *cfg,
    const struct milter_info *in)
{
	struct evbuffer *b = evbuffer_new();
	char port[16], bits[16], ident[128], rcpt[1100];
	const char *v6 = strchr(in->client_addr, ':');
	const char *sv[2];

	snprintf(port, sizeof(port), "%d", in->client_port);
	snprintf(ident, sizeof(ident), "unknown [%s]", in->client_addr);
	{
		const char *kv[] = { "j", cfg->hostname, "{daemon_name}", "mxrelayd",
		    "{client_addr}", in->client_addr, "{client_port}", port,
		    "{client_name}", "unknown", "_", ident, "{i}", in->qid,
		    "i", in->qid };
		txn_macros(t, SMFIC_CONNECT, kv, (int)MX_ARRAY_LEN(kv));
	}
	milter_put_connect(b, "unknown", v6 != NULL, in->client_port, in->client_addr);
	if (in->tls_version) {
		snprintf(bits, sizeof(bits), "%d", in->tls_bits);
		const char *kv[] = { "{tls_version}", in->tls_version,
		    "{cipher}", in->tls_cipher, "{cipher_bits}", bits };
		txn_push(t, b);
		txn_macros(t, SMFIC_HELO, kv, (int)MX_ARRAY_LEN(kv));
	}
	sv[0] = in->helo;
	milter_put_strings(b, SMFIC_HELO, sv, 1);
	txn_push(t, b);
	snprintf(rcpt, sizeof(rcpt), "<%s>", in->sender);
	{
		const char *kv[] = { "{mail_addr}", in->sender, "i", in->qid };
		txn_macros(t, SMFIC_MAIL, kv, (int)MX_ARRAY_LEN(kv));
	}
	sv[0] = rcpt;
	milter_put_strings(b, SMFIC_MAIL, sv, 1);
	txn_push(t, b);
	for (int i = 0; i < in->nrcpts; i++) {
		const char *kv[] = { "{rcpt_addr}", in->rcpts[i] };

		txn_macros(t, SMFIC_RCPT, kv, (int)MX_ARRAY_LEN(kv));
		snprintf(rcpt, sizeof(rcpt), "<%s>", in->rcpts[i]);
		sv[0] = rcpt;
		milter_put_strings(b, SMFIC_RCPT, sv, 1);
		txn_push(t, b);
	}
	milter_put(b, SMFIC_DATA, NULL, 0);
	txn_push(t, b);
	evbuffer_free(b);
}

struct milter_txn *
milter_txn_start(struct event_base *base, const struct config *cfg,
    const struct milter_info *in)
{
	struct milter_txn *t;
	int i;

	if (cfg->nmilters == 0)
		return NULL;
	t = xcalloc(1, sizeof(*t));
	t->base = base;
	t->max_body = (uint64_t)cfg->max_message_size;
	mx_strlcpy(t->sid, in->sid, sizeof(t->sid));
	mx_strlcpy(t->qid, in->qid, sizeof(t->qid));
	t->head = evbuffer_new();
	t->check_ev = evtimer_new(base, txn_run, t);
	t->n = cfg->nmilters;
	t->v = xcalloc((size_t)t->n, sizeof(*t->v));
	for (i = 0; i < t->n; i++) {
		struct mconn *c = &t->v[i];

		c->t = t;
		c->conf = cfg->milters[i];
		c->conf.socket = NULL;
		c->mc = &c->conf;
		c->q = evbuffer_new();
		c->timer = evtimer_new(base, mc_timeout, c);
		c->started = mx_mono_us();
	}
	txn_envelope(t, cfg, in);
	for (i = 0; i < t->n; i++)
		if (mc_connect(&t->v[i]) < 0)
			mc_fail(&t->v[i], "cannot connect");
	return t;
}

/* txn_headers - the header section is complete: one packet per header,
 * then EOH, then what followed it as body */
static void
txn_headers(struct milter_txn *t)
{
	size_t len = evbuffer_get_length(t->head);
	size_t want = len < MILTER_HEADERS_MAX ? len : MILTER_HEADERS_MAX;
	const char *p = (const char *)evbuffer_pullup(t->head, -1);
	struct evbuffer *b = evbuffer_new();
	size_t hlen = mhdr_section(p, want);
	int n = mhdr_count(p, hlen), sep, i;
	struct mhdr *hv = xcalloc((size_t)n + 1, sizeof(*hv));

	mhdr_parse(p, hlen, hv, n, &sep);
	for (i = 0; i < n; i++) {
		/* values go with LF line ends, as Sendmail and Postfix send them */
		char *v = xmalloc(hv[i].valuelen + 1);
		size_t k = 0;

		for (size_t j = 0; j < hv[i].valuelen; j++)
			if (hv[i].value[j] != '\r')
				v[k++] = hv[i].value[j];
		milter_put_header(b, hv[i].line, hv[i].namelen, v, k);
		free(v);
		txn_push(t, b);
	}
	free(hv);
	milter_put(b, SMFIC_EOH, NULL, 0);
	txn_push(t, b);
	evbuffer_free(b);
	evbuffer_drain(t->head, hlen);
	t->in_body = 1;
	/* the rest (after the empty line) is body */
	len = evbuffer_get_length(t->head);
	if (len > 0) {
		struct evbuffer *rest = t->head;

		t->head = evbuffer_new();
		milter_txn_write(t, (const char *)evbuffer_pullup(rest, -1), len);
		evbuffer_free(rest);
	}
}

/* head_complete - has the header section surely ended in t->head? It
 * has at its empty line, or at a complete line that is not a header */
static int
head_complete(struct milter_txn *t)
{
	size_t len = evbuffer_get_length(t->head), s;
	const char *p;
	int sep;

	if (len >= MILTER_HEADERS_MAX)
		return 1;
	p = (const char *)evbuffer_pullup(t->head, -1);
	s = mhdr_section(p, len);
	mhdr_parse(p, s, NULL, 0, &sep);
	return sep || (s < len && memchr(p + s, '\n', len - s) != NULL);
}

int
milter_txn_write(struct milter_txn *t, const char *p, size_t n)
{
	struct evbuffer *b;
	size_t max = 0;

	if (!t->in_body) {
		evbuffer_add(t->head, p, n);
		if (head_complete(t))
			txn_headers(t);
	} else {
		b = evbuffer_new();
		while (n > 0) {
			size_t k = n < MILTER_CHUNK_MAX ? n : MILTER_CHUNK_MAX;

			milter_put(b, SMFIC_BODY, p, k);
			txn_push(t, b);
			p += k;
			n -= k;
		}
		evbuffer_free(b);
	}
	EACH_OPEN(t, c)
		if (evbuffer_get_length(c->q) > max)
			max = evbuffer_get_length(c->q);
	return max > MILTER_QUEUE_MAX;
}

void
milter_txn_on_drain(struct milter_txn *t, milter_drain_fn fn, void *arg)
{
	t->drain = fn;
	t->drain_arg = arg;
	txn_check(t);
}

static void
txn_free(struct milter_txn *t)
{
	for (int i = 0; i < t->n; i++) {
		struct mconn *c = &t->v[i];

		mc_close(c);
		if (c->timer)
			event_free(c->timer);
		evbuffer_free(c->q);
		medits_free(&c->edits);
		for (int k = 0; k < c->nadd; k++)
			free(c->add[k]);
		for (int k = 0; k < c->ndel; k++)
			free(c->del[k]);
		free(c->add);
		free(c->del);
	}
	free(t->v);
	evbuffer_free(t->head);
	event_free(t->check_ev);
	free(t);
}

void
milter_txn_abort(struct milter_txn *t)
{
	if (t != NULL)
		txn_free(t);
}

/* crlf_body - a replaced body with CRLF line ends (milters may send LF) */
static void
crlf_body(struct medits *e)
{
	size_t i, k = 0, extra = 0;
	char *b;

	for (i = 0; i < e->bodylen; i++)
		if (e->body[i] == '\n' && (i == 0 || e->body[i - 1] != '\r'))
			extra++;
	if (extra == 0)
		return;
	b = xmalloc(e->bodylen + extra + 1);
	for (i = 0; i < e->bodylen; i++) {
		if (e->body[i] == '\n' && (i == 0 || e->body[i - 1] != '\r'))
			b[k++] = '\r';
		b[k++] = e->body[i];
	}
	free(e->body);
	e->body = b;
	e->bodylen = k;
}

/* move_edits - append c's changes to the result's */
static void
move_edits(struct milter_result *r, struct mconn *c)
{
	for (int i = 0; i < c->edits.n; i++) {
		struct medit *e = &c->edits.v[i];

		medits_add(&r->edits, e->kind, e->index, e->name, e->value);
	}
	if (c->edits.body) {
		free(r->edits.body);
		r->edits.body = c->edits.body;
		r->edits.bodylen = c->edits.bodylen;
		c->edits.body = NULL;
		crlf_body(&r->edits);
	}
	for (int i = 0; i < c->nadd; i++)
		add_rcpt_edit(&r->add_rcpts, &r->nadd, c->add[i]);
	for (int i = 0; i < c->ndel; i++)
		add_rcpt_edit(&r->del_rcpts, &r->ndel, c->del[i]);
}

/* txn_result - the chain's verdict, in chain order */
static struct milter_result *
txn_result(struct milter_txn *t)
{
	struct milter_result *r = xcalloc(1, sizeof(*r));
	size_t off = 0;

	r->action = MILTER_ACCEPT;
	for (int i = 0; i < t->n; i++) {
		struct mconn *c = &t->v[i];
		struct milter_stat *st = stat_for(c->mc->name);
		uint64_t ms = (c->ended - c->started) / 1000;
		int k;

		st->messages++;
		st->time_ms += ms;
		st->verdicts[c->verdict]++;
		if (c->failed)
			st->errors++;
		k = snprintf(r->log + off, sizeof(r->log) - off, "%s%s=%s%s/%llums",
		    off ? " " : "", c->mc->name, milter_action_name(c->verdict),
		    c->failed ? "(error)" : "", (unsigned long long)ms);
		if (k > 0 && (size_t)k < sizeof(r->log) - off)
			off += (size_t)k;
		if (r->action != MILTER_ACCEPT && r->action != MILTER_QUARANTINE)
			continue;	/* decided by an earlier milter */
		switch (c->verdict) {
		case MILTER_ACCEPT:
			move_edits(r, c);
			break;
		case MILTER_QUARANTINE:
			move_edits(r, c);
			if (r->action == MILTER_ACCEPT) {
				r->action = MILTER_QUARANTINE;
				mx_strlcpy(r->quarantine, c->quarantine, sizeof(r->quarantine));
				mx_strlcpy(r->by, c->mc->name, sizeof(r->by));
			}
			break;
		case MILTER_TEMPFAIL:
			if (c->failed)
				mx_strlcpy(c->reply, "451 4.7.1 Service unavailable - "
				    "content filter failed, try again later",
				    sizeof(c->reply));
			/* FALLTHROUGH */
		case MILTER_REJECT:
		case MILTER_DISCARD:
			r->action = c->verdict;
			mx_strlcpy(r->reply, c->reply, sizeof(r->reply));
			mx_strlcpy(r->by, c->mc->name, sizeof(r->by));
			break;
		}
	}
	return r;
}

/* txn_run - the deferred check: the session's drain callback once the
 * milters took their output, or the verdict once every milter is done */
static void
txn_run(evutil_socket_t fd, short ev, void *arg)
{
	struct milter_txn *t = arg;
	struct milter_result *r;
	milter_done_fn done;
	void *darg;
	int open = 0;
	size_t max = 0;

	EACH_OPEN(t, c) {
		open++;
		if (evbuffer_get_length(c->q) > max)
			max = evbuffer_get_length(c->q);
	}
	if (t->drain && max < MILTER_QUEUE_MAX / 2) {
		milter_drain_fn fn = t->drain;

		t->drain = NULL;
		fn(t->drain_arg);
		return;
	}
	if (!t->ended || open > 0)
		return;
	r = txn_result(t);
	done = t->done;
	darg = t->done_arg;
	txn_free(t);
	done(darg, r);
}

static void
txn_check(struct milter_txn *t)
{
	event_active(t->check_ev, EV_TIMEOUT, 0);
}

void
milter_txn_end(struct milter_txn *t, milter_done_fn done, void *arg)
{
	struct evbuffer *b = evbuffer_new();
	const char *kv[] = { "i", t->qid };

	/* a message that ended inside its headers */
	if (!t->in_body)
		txn_headers(t);
	t->drain = NULL;
	t->done = done;
	t->done_arg = arg;
	t->ended = 1;
	txn_macros(t, SMFIC_BODYEOB, kv, 2);
	milter_put(b, SMFIC_BODYEOB, NULL, 0);
	txn_push(t, b);
	evbuffer_free(b);
	txn_check(t);
}

void
milter_result_free(struct milter_result *r)
{
	if (r == NULL)
		return;
	medits_free(&r->edits);
	for (int i = 0; i < r->nadd; i++)
		free(r->add_rcpts[i]);
	for (int i = 0; i < r->ndel; i++)
		free(r->del_rcpts[i]);
	free(r->add_rcpts);
	free(r->del_rcpts);
	free(r);
}
