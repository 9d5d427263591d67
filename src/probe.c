/* probe.c - RCPT probe of the hosting before a switch (SPEC 7 preflight)
 *
 * A small outbound session of its own rather than an mta job: mta delivers
 * messages, this never sends DATA, and it must see every RCPT reply rather
 * than a delivery result. The commands form one stream (per batch: MAIL,
 * RCPTs, RSET; then QUIT) written through a window: the whole batch at
 * once when the server offers PIPELINING, one command at a time otherwise.
 * Replies are matched to commands in order (RFC 2920 3.1).
 */
#include "autoconf.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

#include "dns.h"
#include "log.h"
#include "probe.h"
#include "smtp_client.h"
#include "util.h"

#define PROBE_ADDRS_MAX		16	/* addresses of the server tried in turn */
#define PROBE_WINDOW		(PROBE_BATCH + 2)	/* MAIL + RCPTs + RSET */

enum probe_state {
	PR_RESOLVE,	/* DNS lookups */
	PR_CONNECT,	/* connect in progress */
	PR_GREETING,	/* waiting for 220 */
	PR_HELLO,	/* EHLO/LHLO sent */
	PR_HELO,	/* HELO sent after EHLO was refused */
	PR_RUN,		/* the MAIL/RCPT/RSET stream, then QUIT */
	PR_DONE,
};

static const char *const probe_state_name[] = {
	[PR_RESOLVE] = "resolve", [PR_CONNECT] = "connect",
	[PR_GREETING] = "greeting", [PR_HELLO] = "hello", [PR_HELO] = "helo",
	[PR_RUN] = "run", [PR_DONE] = "done",
};

enum probe_cmd { CMD_MAIL, CMD_RCPT, CMD_RSET, CMD_QUIT };

struct probe_pending {
	enum probe_cmd cmd;
	size_t idx;		/* CMD_RCPT: the address */
};

struct probe {
	struct event_base *base;
	enum probe_state state;
	struct destination dest;
	int port;
	char helo[256];
	int connect_timeout;
	char **addrs;
	size_t n;
	probe_done_fn done;
	void *arg;

	struct dns_req *dns;
	struct dns_addr ips[PROBE_ADDRS_MAX];
	int nips, ipnext;
	struct bufferevent *bev;
	struct event *later;	/* the first step, outside probe_start */
	int pipelining;
	int reading;		/* inside read_cb */
	int pipe_seen;		/* EHLO/LHLO reply listed PIPELINING */
	struct sc_reply reply;	/* the reply being read */

	/* the command stream: next to write, replies awaited (FIFO) */
	size_t batch;		/* first address of the current batch */
	size_t pos;		/* 0: MAIL, 1..k: RCPTs, k+1: RSET */
	int quit_sent;
	struct probe_pending pend[PROBE_WINDOW];
	int phead, npend;

	/* the reply being read */
	int code;
	char text[PROBE_LINE_MAX];

	struct probe_result res;
	size_t refcap;
};

static void probe_connect_next(struct probe *);

/* probe_enter - the one place that changes state */
static void
probe_enter(struct probe *p, enum probe_state st)
{
	log_debug("probe %s -> %s", probe_state_name[p->state],
	    probe_state_name[st]);
	p->state = st;
}

static void
probe_free(struct probe *p)
{
	if (p->dns)
		dns_cancel(p->dns);
	if (p->bev)
		bufferevent_free(p->bev);
	if (p->later)
		event_free(p->later);
	for (size_t i = 0; i < p->n; i++)
		free(p->addrs[i]);
	free(p->addrs);
	for (size_t i = 0; i < p->res.nrefused; i++) {
		free(p->res.refused[i].addr);
		free(p->res.refused[i].reply);
	}
	free(p->res.refused);
	free(p);
}

/* probe_finish - report and free */
static void
probe_finish(struct probe *p)
{
	probe_enter(p, PR_DONE);
	if (p->bev) {
		bufferevent_free(p->bev);
		p->bev = NULL;
	}
	log_info("probe done server=%s ok=%d accepted=%zu refused=%zu%s%s%s",
	    p->res.server[0] ? p->res.server : "-", p->res.ok, p->res.naccepted,
	    p->res.nrefused, p->res.ok ? "" : " error=\"",
	    p->res.ok ? "" : p->res.error, p->res.ok ? "" : "\"");
	p->done(&p->res, p->arg);
	if (!p->reading)	/* else read_cb frees it when it unwinds */
		probe_free(p);
}

static void probe_fail(struct probe *, const char *, ...)
    __attribute__((format(printf, 2, 3)));

/* probe_fail - the probe cannot finish: the switch is refused */
static void
probe_fail(struct probe *p, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(p->res.error, sizeof(p->res.error), fmt, ap);
	va_end(ap);
	p->res.ok = 0;
	probe_finish(p);
}


static void
probe_send(struct probe *p, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void
probe_send(struct probe *p, const char *fmt, ...)
{
	struct evbuffer *out = bufferevent_get_output(p->bev);
	va_list ap;

	va_start(ap, fmt);
	evbuffer_add_vprintf(out, fmt, ap);
	va_end(ap);
	evbuffer_add(out, "\r\n", 2);
}

static void
refusal_add(struct probe *p, size_t idx)
{
	char reply[PROBE_LINE_MAX + 8];

	if (p->res.nrefused == p->refcap) {
		p->refcap = p->refcap ? p->refcap * 2 : 16;
		p->res.refused = xrealloc(p->res.refused,
		    p->refcap * sizeof(*p->res.refused));
	}
	snprintf(reply, sizeof(reply), "%d %s", p->code, p->text);
	p->res.refused[p->res.nrefused].addr = xstrdup(p->addrs[idx]);
	p->res.refused[p->res.nrefused].reply = xstrdup(reply);
	p->res.nrefused++;
}

/* batch_len - addresses in the current batch */
static size_t
batch_len(const struct probe *p)
{
	size_t left = p->n - p->batch;

	return left < PROBE_BATCH ? left : PROBE_BATCH;
}

/* stream_next - the next command of the stream; 0 when all are written */
static int
stream_next(struct probe *p, struct probe_pending *c)
{
	size_t k;

	if (p->quit_sent)
		return 0;
	if (p->batch >= p->n) {
		c->cmd = CMD_QUIT;
		p->quit_sent = 1;
		return 1;
	}
	k = batch_len(p);
	if (p->pos == 0)
		c->cmd = CMD_MAIL;
	else if (p->pos <= k) {
		c->cmd = CMD_RCPT;
		c->idx = p->batch + p->pos - 1;
	} else {
		c->cmd = CMD_RSET;
		p->batch += k;
		p->pos = 0;
		return 1;
	}
	p->pos++;
	return 1;
}

/* stream_fill - write commands while the window has room */
static void
stream_fill(struct probe *p)
{
	int window = p->pipelining ? PROBE_WINDOW : 1;
	struct probe_pending c;

	while (p->npend < window && stream_next(p, &c)) {
		switch (c.cmd) {
		case CMD_MAIL: probe_send(p, "MAIL FROM:<>"); break;
		case CMD_RCPT: probe_send(p, "RCPT TO:<%s>", p->addrs[c.idx]); break;
		case CMD_RSET: probe_send(p, "RSET"); break;
		case CMD_QUIT: probe_send(p, "QUIT"); break;
		}
		p->pend[(p->phead + p->npend) % PROBE_WINDOW] = c;
		p->npend++;
	}
}

/* on_stream_reply - the reply to the oldest command written */
static void
on_stream_reply(struct probe *p)
{
	struct probe_pending c;

	if (p->npend == 0) {
		probe_fail(p, "unexpected reply from %s: %d %s", p->res.server,
		    p->code, p->text);
		return;
	}
	c = p->pend[p->phead];
	p->phead = (p->phead + 1) % PROBE_WINDOW;
	p->npend--;
	switch (c.cmd) {
	case CMD_MAIL:
		if (p->code / 100 != 2) {
			probe_fail(p, "%s refused MAIL FROM:<>: %d %s",
			    p->res.server, p->code, p->text);
			return;
		}
		break;
	case CMD_RCPT:
		if (p->code / 100 == 2)
			p->res.naccepted++;
		else
			refusal_add(p, c.idx);
		break;
	case CMD_RSET:
		break;
	case CMD_QUIT:
		p->res.ok = 1;
		probe_finish(p);
		return;
	}
	stream_fill(p);
}

/* on_reply - a complete reply in the current state */
static void
on_reply(struct probe *p)
{
	switch (p->state) {
	case PR_GREETING:
		if (p->code != 220) {
			probe_fail(p, "%s greeted with %d %s", p->res.server,
			    p->code, p->text);
			return;
		}
		probe_send(p, "%s %s", p->dest.lmtp ? "LHLO" : "EHLO", p->helo);
		probe_enter(p, PR_HELLO);
		break;
	case PR_HELLO:
		if (p->code / 100 != 2 && !p->dest.lmtp) {
			probe_send(p, "HELO %s", p->helo);
			probe_enter(p, PR_HELO);
			break;
		}
		/* FALLTHROUGH */
	case PR_HELO:
		if (p->code / 100 != 2) {
			probe_fail(p, "%s refused %s: %d %s", p->res.server,
			    p->state == PR_HELO ? "HELO" : p->dest.lmtp ? "LHLO" :
			    "EHLO", p->code, p->text);
			return;
		}
		p->pipelining = p->state == PR_HELLO && p->pipe_seen;
		probe_enter(p, PR_RUN);
		stream_fill(p);
		break;
	case PR_RUN:
		on_stream_reply(p);
		break;
	default:
		break;
	}
}

/* read_cb - split replies (RFC 5321 4.2.1 multi-line) and hand them on */
static void
read_cb(struct bufferevent *bev, void *arg)
{
	struct probe *p = arg;
	struct evbuffer *in = bufferevent_get_input(bev);
	char *line;
	size_t len;

	p->reading = 1;
	while (p->state != PR_DONE &&
	    (line = evbuffer_readln(in, &len, EVBUFFER_EOL_CRLF)) != NULL) {
		const char *linetext = "";
		enum sc_feed f = sc_reply_feed(&p->reply, line, &linetext);
		uint64_t size;

		if (f == SC_FEED_ERROR) {
			probe_fail(p, "malformed reply from %s: %.100s",
			    p->res.server, line);
			free(line);
			break;
		}
		/* linetext points into line */
		if (p->state == PR_HELLO &&
		    sc_ehlo_keyword(linetext, &size) == SC_EXT_PIPELINING)
			p->pipe_seen = 1;
		free(line);
		if (f == SC_FEED_DONE) {
			p->code = p->reply.code;
			/* sc_reply's text is "CODE text": keep the text */
			mx_strlcpy(p->text, p->reply.text + (p->reply.text[3] ? 4 : 3),
			    sizeof(p->text));
			sc_reply_init(&p->reply);
			on_reply(p);
		}
	}
	if (p->state != PR_DONE && evbuffer_get_length(in) > PROBE_LINE_MAX)
		probe_fail(p, "reply line from %s longer than %d bytes",
		    p->res.server, PROBE_LINE_MAX);
	p->reading = 0;
	if (p->state == PR_DONE)
		probe_free(p);
}

static void
event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct probe *p = arg;
	struct timeval rtv = { PROBE_REPLY_TIMEOUT, 0 };

	if (p->state == PR_CONNECT && (what & BEV_EVENT_CONNECTED)) {
		probe_enter(p, PR_GREETING);
		bufferevent_set_timeouts(p->bev, &rtv, &rtv);
		bufferevent_enable(p->bev, EV_READ | EV_WRITE);
		return;
	}
	if (p->state == PR_CONNECT) {
		log_info("probe connect failed server=%s reason=\"%s\"",
		    p->res.server, what & BEV_EVENT_TIMEOUT ? "timeout" :
		    evutil_socket_error_to_string(EVUTIL_SOCKET_ERROR()));
		bufferevent_free(p->bev);
		p->bev = NULL;
		probe_connect_next(p);
		return;
	}
	if (p->state == PR_RUN && p->quit_sent && p->npend == 1 &&
	    (what & BEV_EVENT_EOF)) {
		/* the server closed after QUIT without a 221: all answered */
		p->res.ok = 1;
		probe_finish(p);
		return;
	}
	probe_fail(p, "%s with %s in state %s", what & BEV_EVENT_TIMEOUT ?
	    "timeout" : "lost connection", p->res.server,
	    probe_state_name[p->state]);
}

/* probe_connect_sa - start a non-blocking connect to sa */
static void
probe_connect_sa(struct probe *p, const struct sockaddr *sa, int salen)
{
	struct timeval ctv = { p->connect_timeout, 0 };

	sc_reply_init(&p->reply);	/* nothing left from an earlier address */
	probe_enter(p, PR_CONNECT);
	p->bev = bufferevent_socket_new(p->base, -1, BEV_OPT_CLOSE_ON_FREE);
	if (p->bev == NULL)
		fatalx("probe: bufferevent_socket_new failed");
	bufferevent_setcb(p->bev, read_cb, NULL, event_cb, p);
	/* libevent times a pending connect with the write timeout */
	bufferevent_set_timeouts(p->bev, NULL, &ctv);
	if (bufferevent_socket_connect(p->bev, sa, salen) == -1) {
		/* event_cb may have run already (refused at once) */
		if (p->state == PR_CONNECT && p->bev) {
			bufferevent_free(p->bev);
			p->bev = NULL;
			probe_connect_next(p);
		}
	}
}

/* probe_connect_next - the next address of the server, or give up */
static void
probe_connect_next(struct probe *p)
{
	struct sockaddr_storage ss;
	char ip[INET6_ADDRSTRLEN];
	int salen;

	if (p->ipnext >= p->nips) {
		probe_fail(p, "cannot connect to %s", p->res.server[0] ?
		    p->res.server : p->dest.host);
		return;
	}
	memset(&ss, 0, sizeof(ss));
	const struct dns_addr *a = &p->ips[p->ipnext++];
	if (a->family == AF_INET6) {
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
		s6->sin6_family = AF_INET6;
		s6->sin6_addr = a->a.v6;
		s6->sin6_port = htons((uint16_t)p->port);
		salen = sizeof(*s6);
	} else {
		struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
		s4->sin_family = AF_INET;
		s4->sin_addr = a->a.v4;
		s4->sin_port = htons((uint16_t)p->port);
		salen = sizeof(*s4);
	}
	inet_ntop(a->family, &a->a, ip, sizeof(ip));
	snprintf(p->res.server, sizeof(p->res.server), "%s[%s]:%d", p->dest.host,
	    ip, p->port);
	probe_connect_sa(p, (struct sockaddr *)&ss, salen);
}

static void
addr_cb(enum dns_status st, const struct dns_addr *a, int n, void *arg)
{
	struct probe *p = arg;

	p->dns = NULL;
	if (st != DNS_OK || n == 0) {
		probe_fail(p, "cannot resolve %s: %s", p->dest.host,
		    dns_status_name(st));
		return;
	}
	p->nips = n < PROBE_ADDRS_MAX ? n : PROBE_ADDRS_MAX;
	memcpy(p->ips, a, (size_t)p->nips * sizeof(*a));
	p->ipnext = 0;
	probe_connect_next(p);
}

/* mx_cb - the best MX of the destination; none: the host itself (RFC
 * 5321 5.1 implicit MX) */
static void
mx_cb(enum dns_status st, const struct dns_mx *mx, int n, void *arg)
{
	struct probe *p = arg;

	p->dns = NULL;
	if (st == DNS_OK && n > 0)
		mx_strlcpy(p->dest.host, mx[0].host, sizeof(p->dest.host));
	else if (st != DNS_NXDOMAIN && st != DNS_NODATA) {
		probe_fail(p, "MX lookup of %s: %s", p->dest.host,
		    dns_status_name(st));
		return;
	}
	p->dns = dns_resolve_addr(p->dest.host, addr_cb, p);
}

/* probe_connect_unix - lmtp:unix:/PATH */
static void
probe_connect_unix(struct probe *p)
{
	struct sockaddr_un sun;

	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	mx_strlcpy(sun.sun_path, p->dest.unix_path, sizeof(sun.sun_path));
	mx_strlcpy(p->res.server, p->dest.unix_path, sizeof(p->res.server));
	p->nips = p->ipnext = 0;	/* one try */
	probe_connect_sa(p, (struct sockaddr *)&sun, sizeof(sun));
}

/* probe_begin - first step, from the loop (so that done never runs
 * inside probe_start): a start-up error, or resolve, or connect */
static void
probe_begin(evutil_socket_t fd, short ev, void *arg)
{
	struct probe *p = arg;

	if (p->res.error[0]) {
		probe_finish(p);
		return;
	}
	if (p->dest.unix_path[0])
		probe_connect_unix(p);
	else if (p->dest.mx_lookup)
		p->dns = dns_resolve_mx(p->dest.host, mx_cb, p);
	else
		p->dns = dns_resolve_addr(p->dest.host, addr_cb, p);
}

struct probe *
probe_start(struct event_base *base, const char *dest,
    const struct config *cfg, char *const *addrs, size_t n,
    probe_done_fn done, void *arg)
{
	struct probe *p = xcalloc(1, sizeof(*p));
	struct timeval now = { 0, 0 };
	char err[256];

	p->base = base;
	p->done = done;
	p->arg = arg;
	p->state = PR_RESOLVE;
	p->connect_timeout = cfg->connect_timeout > 0 ? cfg->connect_timeout : 30;
	mx_strlcpy(p->helo, cfg->hostname ? cfg->hostname : "localhost",
	    sizeof(p->helo));
	p->addrs = xcalloc(n + 1, sizeof(char *));
	for (size_t i = 0; i < n; i++)
		p->addrs[i] = xstrdup(addrs[i]);
	p->n = n;
	if (dest == NULL)
		mx_strlcpy(p->res.error, "hosting.destination is not set",
		    sizeof(p->res.error));
	else if (destination_parse(dest, &p->dest, err, sizeof(err)) == -1)
		snprintf(p->res.error, sizeof(p->res.error),
		    "hosting.destination: %s", err);
	p->port = p->dest.port_set || p->dest.lmtp ? p->dest.port : cfg->smtp_port;
	p->later = evtimer_new(base, probe_begin, p);
	if (p->later == NULL)
		fatalx("probe: evtimer_new failed");
	evtimer_add(p->later, &now);
	return p;
}

void
probe_cancel(struct probe *p)
{
	if (p != NULL)
		probe_free(p);
}
