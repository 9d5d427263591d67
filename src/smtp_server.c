/* smtp_server.c - inbound ESMTP sessions (RFC 5321) as a state machine
 *
 * One session per connection. Input is read as command lines until DATA,
 * then as the DATA byte stream (smtp_data.c) written to the spool. The
 * reply to the end of DATA waits for the spool's group commit: until then
 * the session stops reading, so pipelined commands behind the message are
 * answered in order afterwards. Recipient checks use the store's in-memory
 * index and never block. Filter verdicts (filter.c: DNSBL, SPF, HELO) are
 * given per recipient at RCPT; a filtered recipient whose lookups are still
 * running parks the session in S_FILTER (input paused) until they end.
 *
 * Out of memory: what a session holds (itself, its transaction, the
 * message buffers, its replies) is allocated with the fallible mx_try_
 * allocators (util.h). When one fails the session stops where it is
 * (smtp_oom), and once control is back at the loop it is freed: the
 * message being received is discarded from the spool, and the client
 * gets SMTP_OOM_REPLY, a static string written straight to the socket.
 * The daemon and the other sessions go on.
 */
#include "autoconf.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <event2/listener.h>

#include "accept_pause.h"
#include "admission.h"
#include "dict.h"
#include "filter.h"
#include "ioev.h"
#include "log.h"
#include "milter.h"
#include "ratelimit.h"
#include "refused.h"
#include "smtp_data.h"
#include "smtp_milter.h"
#include "smtp_parse.h"
#include "smtp_server.h"
#include "spf.h"
#include "nofile.h"
#include "spool.h"
#include "srs.h"
#include "stats.h"
#include "store.h"
#include "verify.h"
#include "util.h"

#define SMTP_ADDR_MAX	INET6_ADDRSTRLEN
/* The DATA phase must end within data_timeout plus one second per this
 * many octets received: a client trickling a byte now and then cannot
 * hold a session (and its spool file) forever, while a large message
 * on a slow link still gets the time it needs (SPEC 9, slow trickle). */
#define SMTP_MIN_DATA_RATE	1024	/* octets per second */
/* the last words of a session that ran out of memory: static, so that
 * saying them takes none */
#define SMTP_MILTER_LOG(s)	((s)->milter_log ? (s)->milter_log : "")
#define SMTP_OOM_REPLY	"421 4.3.0 Out of memory, closing connection\r\n"

enum smtp_state {
	S_PREGREET,	/* waiting filters.pregreet_wait before the banner */
	S_HELO,		/* banner sent, HELO/EHLO needed */
	S_READY,	/* no transaction */
	S_MAIL,		/* MAIL accepted */
	S_RCPT,		/* at least one recipient accepted */
	S_FILTER,	/* a RCPT waits for the filters' lookups */
	S_VERIFY,	/* a RCPT waits for the old server's word (verify.h) */
	S_DATA,		/* receiving the message */
	S_SPOOL,	/* DATA paused until the spool writer (or a milter)
			 * catches up */
	S_MILTER,	/* message received, waiting for the milters' verdict */
	S_COMMIT,	/* waiting for the spool's group commit */
	S_TLS,		/* TLS handshake in progress */
	S_CLOSING,	/* last reply being sent */
};

static const char *state_names[] = {
	"pregreet", "helo", "ready", "mail", "rcpt", "filter", "verify", "data",
	"spool", "milter", "commit", "tls", "closing",
};

struct smtp_server {
	struct event_base *base;
	const struct config *cfg;
	SSL_CTX *tls;
	struct evconnlistener *listeners[CONFIG_MAX_LISTEN];
	int nlisteners;
	struct dict *per_client;	/* client address -> int count */
	struct ratelimit *rate;		/* filters.rate_limit, NULL when off */
	struct smtp_session *sessions;	/* all live sessions */
	unsigned long next_id;
	int stopping;			/* SIGTERM: no new sessions or commands */
	struct accept_pause *pause;	/* out of descriptors: stop accepting */
};

struct smtp_session {
	char id[24];
	struct smtp_server *srv;
	struct io *io;
	enum smtp_state state;
	struct event *pregreet_ev;

	/* the client as seen by the socket: connection limits, XCLIENT rights */
	char peer[SMTP_ADDR_MAX];
	struct sockaddr_storage peer_ss;
	/* the client as the checks and headers see it (XCLIENT may change it) */
	char addr[SMTP_ADDR_MAX];
	int port;
	struct sockaddr_storage ss;
	/* the per_client key this session is counted under ("" = none):
	 * the peer, or the client a front proxy handed over by XCLIENT */
	char counted[SMTP_ADDR_MAX];
	struct filter *filter;

	char helo[SMTP_HELO_MAX + 1];	/* sanitised */
	int esmtp;
	int discarding;			/* inside an over-long command line */
	int errors;
	uint64_t cmd_start_us;		/* first octet of an incomplete command
					 * line (0: none): its deadline */
	uint64_t data_start_us;		/* the 354: the DATA phase's deadline */

	/* transaction */
	char *sender;			/* "" for <> */
	uint64_t txn_start_us;		/* MAIL accepted (monotonic) */
	struct smtp_mail_params mp;
	char **rcpts;			/* canonical (smtp_mailbox_canonical) */
	char **orcpts;			/* as written, NULL when the same */
	int *rcpt_nofilter;		/* per recipient: skips the milters */
	int nrcpts;
	char *pending_rcpt;		/* S_FILTER: the RCPT waiting for its verdict */
	char *pending_orcpt;		/* its written form, NULL when the same */
	int spool_busy;			/* the spool writer is behind: S_SPOOL */
	int pending_nofilter;
	struct milter_txn *milter;	/* filters.milters: this message's chain */
	int milter_busy;		/* a milter is behind: S_SPOOL */
	char *milter_log;		/* verdicts for the queued line, or NULL:
					 * allocated with them, not per session */
	struct verify_wait *verify;	/* S_VERIFY: the probe we wait for */
	struct smtp_data data;
	struct spool_msg *msg;
	char qid[SPOOL_ID_LEN + 1];

	int oom;			/* an allocation failed: closing */
	struct event *oom_ev;		/* frees the session from the loop */

	struct smtp_session *prev, *next;
};

typedef void (*smtp_handler)(struct smtp_session *, const char *args);

/* Command table: check flags first, then the handler acts. */
#define CF_NEED_HELO	0x01	/* 503 before HELO/EHLO */

struct smtp_cmd_def {
	enum smtp_cmd cmd;
	int flags;
	smtp_handler handler;
};

static void smtp_reply(struct smtp_session *, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void smtp_process(struct smtp_session *);
static void smtp_close(struct smtp_session *, const char *reason);
static void smtp_session_free(struct smtp_session *);

/* smtp_enter_state - the one place states change, traced in debug logs.
 * A session out of memory stays in S_CLOSING whatever its callers do
 * after the failure. */
static void
smtp_enter_state(struct smtp_session *s, enum smtp_state st)
{
	if (s->oom)
		return;
	log_debug("%s smtp state %s -> %s", s->id, state_names[s->state],
	    state_names[st]);
	s->state = st;
}

/* smtp_oom - an allocation for the session failed (what: for the log):
 * stop reading and replying now, and free the session from the loop
 * (smtp_oom_close), where no caller up the stack still uses it. */
static void
smtp_oom(struct smtp_session *s, const char *what)
{
	if (s->oom)
		return;
	log_warnx("%s smtp out of memory at %s state=%s: closing", s->id, what,
	    state_names[s->state]);
	/* a message in the group commit goes on without us, as in
	 * smtp_txn_reset; any other is aborted when the session is freed */
	if (s->state == S_COMMIT && s->msg != NULL) {
		spool_msg_detach(s->msg);
		s->msg = NULL;
	}
	smtp_enter_state(s, S_CLOSING);
	s->oom = 1;
	io_pause(s->io);
	event_active(s->oom_ev, EV_TIMEOUT, 1);
}

static void
smtp_reply(struct smtp_session *s, const char *fmt, ...)
{
	char buf[SMTP_LINE_MAX + 64];
	va_list ap;
	int n;

	if (s->oom)
		return;
	va_start(ap, fmt);
	n = vsnprintf(buf, sizeof(buf) - 2, fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	if ((size_t)n > sizeof(buf) - 3)
		n = sizeof(buf) - 3;	/* replies carry client text: cap them */
	log_debug("%s smtp reply %.*s", s->id, n, buf);
	if (buf[0] == '5')
		s->errors++;	/* every refusal counts: see smtp_too_many_errors */
	buf[n++] = '\r';
	buf[n++] = '\n';
	if (io_write(s->io, buf, (size_t)n) < 0)
		smtp_oom(s, "reply");
}

/* smtp_pending_clear - drop the RCPT waiting for its verdict */
static void
smtp_pending_clear(struct smtp_session *s)
{
	free(s->pending_rcpt);
	free(s->pending_orcpt);
	s->pending_rcpt = s->pending_orcpt = NULL;
	verify_cancel(s->verify);
	s->verify = NULL;
}

/* smtp_txn_reset - forget the transaction (RSET, EHLO, after DATA) */
static void
smtp_txn_reset(struct smtp_session *s)
{
	free(s->sender);
	s->sender = NULL;
	for (int i = 0; i < s->nrcpts; i++) {
		free(s->rcpts[i]);
		free(s->orcpts[i]);
	}
	free(s->rcpts);
	free(s->orcpts);
	s->rcpts = s->orcpts = NULL;
	free(s->rcpt_nofilter);
	s->rcpt_nofilter = NULL;
	s->nrcpts = 0;
	milter_txn_abort(s->milter);
	s->milter = NULL;
	s->milter_busy = 0;
	free(s->milter_log);
	s->milter_log = NULL;
	memset(&s->mp, 0, sizeof(s->mp));
	smtp_pending_clear(s);
	if (s->filter)
		filter_reset(s->filter);
	if (s->msg) {
		/* A message in the group commit goes on without us. */
		if (s->state == S_COMMIT)
			spool_msg_detach(s->msg);
		else
			spool_msg_abort(s->msg);
		s->msg = NULL;
	}
	s->spool_busy = 0;
	s->qid[0] = '\0';
	if (s->state >= S_READY && s->state <= S_MILTER)
		smtp_enter_state(s, S_READY);
}

static const char *
smtp_hostname(struct smtp_session *s)
{
	return s->srv->cfg->hostname;
}

static void
smtp_greet(struct smtp_session *s)
{
	smtp_reply(s, "220 %s ESMTP", smtp_hostname(s));
	smtp_enter_state(s, S_HELO);
}

/* --- commands ---------------------------------------------------------- */

static int
smtp_take_helo(struct smtp_session *s, const char *args, const char *verb)
{
	if (*args == '\0') {
		smtp_reply(s, "501 5.5.4 Syntax: %s hostname", verb);
		return -1;
	}
	smtp_sanitize(s->helo, sizeof(s->helo), args);
	filter_helo(s->filter, args);
	smtp_txn_reset(s);
	smtp_enter_state(s, S_READY);
	return 0;
}

static void
cmd_helo(struct smtp_session *s, const char *args)
{
	if (smtp_take_helo(s, args, "HELO") < 0)
		return;
	s->esmtp = 0;
	smtp_reply(s, "250 %s", smtp_hostname(s));
}

/* smtp_xclient_host - is the peer sa inside server.xclient_hosts? */
static int
smtp_xclient_host(const struct config *cfg, const struct sockaddr *sa)
{
	for (int i = 0; i < cfg->nxclient_hosts; i++)
		if (cidr_match(&cfg->xclient_hosts[i], sa))
			return 1;
	return 0;
}

static int
smtp_xclient_allowed(struct smtp_session *s)
{
	return smtp_xclient_host(s->srv->cfg, (struct sockaddr *)&s->peer_ss);
}

static void
cmd_ehlo(struct smtp_session *s, const char *args)
{
	const char *kw[12];
	char size[32];
	int n = 0;

	if (smtp_take_helo(s, args, "EHLO") < 0)
		return;
	s->esmtp = 1;
	kw[n++] = "PIPELINING";
	snprintf(size, sizeof(size), "SIZE %lld", (long long)s->srv->cfg->max_message_size);
	kw[n++] = size;
	if (s->srv->tls && !io_is_tls(s->io))
		kw[n++] = "STARTTLS";
	if (smtp_xclient_allowed(s))
		kw[n++] = "XCLIENT ADDR PORT NAME HELO PROTO";
	kw[n++] = "8BITMIME";
	kw[n++] = "ENHANCEDSTATUSCODES";
	kw[n++] = "SMTPUTF8";
	smtp_reply(s, "250-%s", smtp_hostname(s));
	for (int i = 0; i < n; i++)
		smtp_reply(s, "250%c%s", i == n - 1 ? ' ' : '-', kw[i]);
}

static void
cmd_mail(struct smtp_session *s, const char *args)
{
	struct smtp_path path;
	const char *rest, *why;
	char err[128];

	if (s->state != S_READY) {
		smtp_reply(s, "503 5.5.1 Error: nested MAIL command");
		return;
	}
	if (args == NULL) {
		smtp_reply(s, "501 5.5.4 Syntax: MAIL FROM:<address>");
		return;
	}
	/* The path may be UTF-8 only with SMTPUTF8 (RFC 6531 3.4), a parameter
	 * that follows it: parse leniently, then decide. */
	switch (smtp_parse_path(args, 1, 1, &path, &rest)) {
	case PARSE_OK:
		break;
	case PARSE_BAD_ADDRESS:
		smtp_reply(s, "501 5.1.3 Bad sender address syntax");
		return;
	default:
		smtp_reply(s, "501 5.5.4 Syntax: MAIL FROM:<address>");
		return;
	}
	memset(&s->mp, 0, sizeof(s->mp));
	switch (smtp_parse_mail_params(rest, &s->mp, err, sizeof(err))) {
	case PARSE_OK:
		break;
	case PARSE_UNKNOWN_PARAM:
		smtp_reply(s, "555 5.5.4 %s", err);
		return;
	default:
		smtp_reply(s, "501 5.5.4 Bad parameter: %s", err);
		return;
	}
	if (!path.null && path.mbox.utf8 && !s->mp.smtputf8) {
		smtp_reply(s, "553 5.6.7 Sender address needs SMTPUTF8");
		return;
	}
	if (s->mp.size > s->srv->cfg->max_message_size) {
		smtp_reply(s, "552 5.3.4 Message size exceeds fixed limit");
		return;
	}
	if ((why = admission_mail(s->srv->cfg,
	    s->mp.size > 0 ? (uint64_t)s->mp.size : 0)) != NULL) {
		log_info("%s smtp mail refused from=<%s> client=%s reason=\"%s\"",
		    s->id, path.null ? "" : path.mbox.text, s->addr, why);
		smtp_reply(s, "452 4.3.1 Error: %s", why);
		return;
	}
	if ((s->sender = mx_try_strdup(path.null ? "" : path.mbox.text)) == NULL ||
	    filter_mail(s->filter, s->sender) < 0) {
		smtp_oom(s, "mail");
		return;
	}
	s->txn_start_us = mx_mono_us();
	/* The queue ID is known from MAIL on, as Postfix's, so that every line
	 * of the transaction carries it: grep ID tells the message's story. */
	spool_new_id(s->qid);
	log_info("%s smtp mail id=%s from=<%s> client=%s helo=<%s> tls=%s", s->id,
	    s->qid, s->sender, s->addr, s->helo, io_is_tls(s->io) ? "yes" : "no");
	smtp_enter_state(s, S_MAIL);
	smtp_reply(s, "250 2.1.0 Ok");
}

/* smtp_is_srs_rcpt - a recipient for srs.domain that the SRS check
 * decides: an SRS local part, or any local part when srs.domain is not
 * also a hosted domain */
static int
smtp_is_srs_rcpt(const struct config *cfg, const struct smtp_mailbox *m)
{
	return cfg->srs_domain != NULL && cfg->srs_secret != NULL && !m->literal &&
	    strcasecmp(m->domain, cfg->srs_domain) == 0 &&
	    (srs_is_srs(m->local) || store_domain(m->domain) == NULL);
}

/* smtp_check_srs - a bounce (or reply) to one of our forwards (SPEC 6):
 * accepted when the SRS address is ours and not expired, as nofilter (its
 * hash proves we sent the forward; the bounce comes from the forward's
 * destination, which our filters must not hold against it); refused
 * with 550 otherwise. Returns 0 when accepted; else replies. */
static int
smtp_check_srs(struct smtp_session *s, const struct smtp_mailbox *m,
    const char *shown, int *nofilter)
{
	char orig[SRS_ADDR_MAX];
	enum srs_result r = srs_reverse(s->srv->cfg->srs_secret, m->local,
	    time(NULL), 1, orig, sizeof(orig));

	if (r == SRS_OK) {
		*nofilter = 1;
		log_info("%s smtp rcpt srs id=%s to=<%s> orig=<%s>", s->id, s->qid,
		    shown, orig);
		return 0;
	}
	mx_stats.rcpt_unknown++;
	if (r == SRS_NOT_SRS)
		smtp_reply(s, "550 5.1.1 <%s>: Recipient address rejected: User unknown", shown);
	else
		smtp_reply(s, "550 5.7.1 <%s>: Recipient address rejected: %s",
		    shown, r == SRS_EXPIRED ? "expired SRS address" : "invalid SRS address");
	log_info("%s smtp rcpt refused id=%s to=<%s> reason=srs (%s)", s->id,
	    s->qid, shown, srs_result_name(r));
	return -1;
}

/* smtp_check_rcpt - the relay decision (SPEC 5, 9). canon is the
 * recipient's canonical form: the table is looked up by it alone. Returns
 * 0 when the recipient is a known address of a hosted domain, or a valid
 * SRS address under srs.domain; 1 (no reply yet) when the address is not
 * in the table; else replies and returns -1. */
static int
smtp_check_rcpt(struct smtp_session *s, const struct smtp_path *p,
    const char *canon, int *nofilter)
{
	const struct smtp_mailbox *m = &p->mbox;
	const struct config *cfg = s->srv->cfg;
	const struct addr_info *a;
	char shown[SMTP_PATH_MAX + 1];

	smtp_sanitize(shown, sizeof(shown), m->text);
	if (smtp_is_srs_rcpt(cfg, m))
		return smtp_check_srs(s, m, shown, nofilter);
	/* Routing inside the local part (percent hack, bang paths, a quoted
	 * '@') would send mail on to another domain: that is relaying. */
	if (m->literal || strpbrk(m->local, "%!@") != NULL ||
	    store_domain(m->domain) == NULL) {
		mx_stats.rcpt_relay_denied++;
		smtp_reply(s, "554 5.7.1 <%s>: Relay access denied", shown);
		log_info("%s smtp rcpt refused id=%s to=<%s> reason=relay", s->id,
		    s->qid, shown);
		return -1;
	}
	if ((a = store_address(canon, cfg->recipient_delimiter)) == NULL)
		return 1;
	*nofilter = a->nofilter;
	return 0;
}

/* smtp_rcpt_unknown - SPEC 5's answer to an address not in the table
 * (canon, of a hosted domain): 550, or 450 while the domain's table is
 * being completed (domain set --unknown tempfail); counted for the
 * unknown-recipient report either way */
static void
smtp_rcpt_unknown(struct smtp_session *s, const char *shown, const char *canon)
{
	const char *at = strrchr(canon, '@');
	const struct domain_info *d = at ? store_domain(at + 1) : NULL;
	int soft = d && d->unknown == UNKNOWN_TEMPFAIL;

	mx_stats.rcpt_unknown++;
	refused_note(canon);
	if (soft)
		s->errors++;	/* a 450 probes the table as well as a 550 */
	smtp_reply(s, "%s <%s>: Recipient address rejected: User unknown",
	    soft ? "450 4.1.1" : "550 5.1.1", shown);
	log_info("%s smtp rcpt %s id=%s to=<%s> reason=unknown", s->id,
	    soft ? "deferred" : "refused", s->qid, shown);
}

static void smtp_rcpt_wake(void *arg);

/* smtp_rcpt_state - after a RCPT's verdict: S_RCPT once one was accepted */
static void
smtp_rcpt_state(struct smtp_session *s)
{
	enum smtp_state st = s->nrcpts > 0 ? S_RCPT : S_MAIL;

	if (s->state != st)
		smtp_enter_state(s, st);
}

/* smtp_grow - room for n + 1 elements of size sz in *v; -1 when out of
 * memory (*v is then as it was) */
static int
smtp_grow(void *v, int n, size_t sz)
{
	void **p = v, *q = mx_try_realloc(*p, sz * (size_t)(n + 1));

	if (q == NULL)
		return -1;
	*p = q;
	return 0;
}

/* smtp_rcpt_add - the pending RCPT joins the transaction; the same
 * recipient twice (in any written form) is delivered once. -1 when out of
 * memory (the RCPT stays pending, freed with the session). */
static int
smtp_rcpt_add(struct smtp_session *s)
{
	for (int i = 0; i < s->nrcpts; i++)
		if (strcasecmp(s->rcpts[i], s->pending_rcpt) == 0) {
			smtp_pending_clear(s);
			return 0;
		}
	if (smtp_grow(&s->rcpts, s->nrcpts, sizeof(char *)) < 0 ||
	    smtp_grow(&s->orcpts, s->nrcpts, sizeof(char *)) < 0 ||
	    smtp_grow(&s->rcpt_nofilter, s->nrcpts, sizeof(int)) < 0)
		return -1;
	s->rcpt_nofilter[s->nrcpts] = s->pending_nofilter;
	s->rcpts[s->nrcpts] = s->pending_rcpt;
	s->orcpts[s->nrcpts] = s->pending_orcpt;
	s->nrcpts++;
	s->pending_rcpt = s->pending_orcpt = NULL;
	return 0;
}

/* smtp_rcpt_verdict - the filters' word on the RCPT in s->pending_rcpt:
 * accept it, refuse it, or wait in S_FILTER for their lookups */
static void
smtp_rcpt_verdict(struct smtp_session *s)
{
	char reply[FILTER_REPLY_MAX], shown[SMTP_PATH_MAX + 1];

	smtp_sanitize(shown, sizeof(shown), s->pending_rcpt);
	switch (filter_rcpt(s->filter, shown, s->pending_nofilter, reply,
	    sizeof(reply), smtp_rcpt_wake, s)) {
	case FILTER_WAIT:
		if (s->state != S_FILTER) {
			smtp_enter_state(s, S_FILTER);
			io_pause(s->io);
		}
		return;
	case FILTER_REFUSE:
		/* filter.c logged which filter and why, under the session ID */
		log_info("%s smtp rcpt refused id=%s to=<%s> reason=filter", s->id,
		    s->qid, shown);
		smtp_pending_clear(s);
		smtp_rcpt_state(s);
		smtp_reply(s, "%s", reply);
		return;
	case FILTER_OK:
		break;
	}
	if (smtp_rcpt_add(s) < 0) {
		smtp_oom(s, "rcpt");
		return;
	}
	mx_stats.rcpt_accepted++;
	log_info("%s smtp rcpt accepted id=%s to=<%s>", s->id, s->qid, shown);
	smtp_rcpt_state(s);
	smtp_reply(s, "250 2.1.5 Ok");
}

/* smtp_rcpt_wake - the lookups a RCPT waited for ended (loop) */
static void
smtp_rcpt_wake(void *arg)
{
	struct smtp_session *s = arg;

	if (s->state != S_FILTER || s->pending_rcpt == NULL)
		return;
	smtp_rcpt_verdict(s);
	if (s->state == S_FILTER)
		return;
	io_resume(s->io);
	smtp_process(s);
}

/* smtp_verify_answer - the word on the pending RCPT of an address not in
 * the table: accepted (then the filters, as for a table address),
 * refused as unknown, or 450 when nobody can tell (SPEC 5: never a 5xx
 * for our own trouble) */
static void
smtp_verify_answer(struct smtp_session *s, enum verify_result r,
    const char *reply)
{
	char shown[SMTP_PATH_MAX + 1];

	/* as the client wrote it, as every other RCPT reply */
	smtp_sanitize(shown, sizeof(shown), s->pending_orcpt ? s->pending_orcpt :
	    s->pending_rcpt);
	switch (r) {
	case VERIFY_YES:
		log_info("%s smtp rcpt verified id=%s to=<%s>", s->id, s->qid,
		    shown);
		smtp_rcpt_verdict(s);
		return;
	case VERIFY_NO:
		smtp_rcpt_unknown(s, shown, s->pending_rcpt);
		smtp_pending_clear(s);
		smtp_rcpt_state(s);
		return;
	default:
		smtp_pending_clear(s);
		smtp_rcpt_state(s);
		smtp_reply(s, "450 4.1.1 <%s>: Recipient address rejected: "
		    "unverified address: %s", shown, reply);
		log_info("%s smtp rcpt deferred id=%s to=<%s> reason=unverified",
		    s->id, s->qid, shown);
	}
}

/* smtp_verify_wake - the probe a RCPT waited for answered (loop) */
static void
smtp_verify_wake(enum verify_result r, const char *reply, void *arg)
{
	struct smtp_session *s = arg;
	char text[VERIFY_REPLY_MAX];

	s->verify = NULL;
	if (s->state != S_VERIFY || s->pending_rcpt == NULL)
		return;
	/* the old server's text goes into our reply: no CR or LF from it */
	smtp_sanitize(text, sizeof(text), reply);
	smtp_verify_answer(s, r, text);
	if (s->state == S_FILTER)
		return;
	io_resume(s->io);
	smtp_process(s);
}

/* smtp_rcpt_verify - the pending RCPT is not in the table: ask the old
 * server when its domain verifies (waiting in S_VERIFY), else refuse */
static void
smtp_rcpt_verify(struct smtp_session *s)
{
	const char *at = strrchr(s->pending_rcpt, '@');
	const struct domain_info *d = at ? store_domain(at + 1) : NULL;
	enum verify_result r;

	if (d == NULL) {
		smtp_verify_answer(s, VERIFY_NO, "");
		return;
	}
	r = verify_rcpt(s->pending_rcpt, d, smtp_verify_wake, s, &s->verify);
	if (r != VERIFY_WAIT) {
		smtp_verify_answer(s, r, r == VERIFY_TEMP ?
		    "too many verifications, try again later" : "");
		return;
	}
	smtp_enter_state(s, S_VERIFY);
	io_pause(s->io);
}

static void
cmd_rcpt(struct smtp_session *s, const char *args)
{
	struct smtp_path path;
	const char *rest;
	char err[128], canon[SMTP_PATH_MAX + 1];
	int nofilter = 0, rc;

	if (s->state != S_MAIL && s->state != S_RCPT) {
		smtp_reply(s, "503 5.5.1 Error: need MAIL command");
		return;
	}
	if (args == NULL) {
		smtp_reply(s, "501 5.5.4 Syntax: RCPT TO:<address>");
		return;
	}
	switch (smtp_parse_path(args, 0, s->mp.smtputf8, &path, &rest)) {
	case PARSE_OK:
		break;
	case PARSE_NEED_UTF8:
		smtp_reply(s, "553 5.6.7 Recipient address needs SMTPUTF8");
		return;
	case PARSE_SYNTAX:
		smtp_reply(s, "501 5.5.4 Syntax: RCPT TO:<address>");
		return;
	default:
		smtp_reply(s, "501 5.1.3 Bad recipient address syntax");
		return;
	}
	if (smtp_parse_rcpt_params(rest, err, sizeof(err)) != PARSE_OK) {
		smtp_reply(s, "555 5.5.4 %s", err);
		return;
	}
	if (smtp_mailbox_canonical(&path.mbox, canon, sizeof(canon)) == 0) {
		smtp_reply(s, "501 5.1.3 Bad recipient address syntax");
		return;
	}
	if (s->nrcpts >= s->srv->cfg->max_recipients) {
		smtp_reply(s, "452 4.5.3 Too many recipients");
		return;
	}
	if ((rc = smtp_check_rcpt(s, &path, canon, &nofilter)) < 0)
		return;
	s->pending_rcpt = mx_try_strdup(canon);
	s->pending_orcpt = NULL;
	if (s->pending_rcpt == NULL || (strcmp(canon, path.mbox.text) != 0 &&
	    (s->pending_orcpt = mx_try_strdup(path.mbox.text)) == NULL)) {
		smtp_oom(s, "rcpt");
		return;
	}
	s->pending_nofilter = nofilter;
	if (rc == 1) {
		smtp_rcpt_verify(s);
		return;
	}
	smtp_rcpt_verdict(s);
}

/* smtp_received - our trace header (RFC 5321 4.4), first in the message */
static void
smtp_received(struct smtp_session *s, char *buf, size_t len)
{
	char date[64], tls[160] = "", helo[3 * SMTP_HELO_MAX + 1];
	const char *proto;
	time_t now = time(NULL);
	struct tm tm;

	localtime_r(&now, &tm);
	strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S %z", &tm);
	if (io_is_tls(s->io))
		snprintf(tls, sizeof(tls), "\r\n\t(using %s with cipher %s (%d bits))",
		    io_tls_version(s->io), io_tls_cipher(s->io), io_tls_bits(s->io));
	/* RFC 3848 and RFC 6531 3.7.3 WITH protocol types */
	if (s->mp.smtputf8)
		proto = io_is_tls(s->io) ? "UTF8SMTPS" : "UTF8SMTP";
	else if (s->esmtp)
		proto = io_is_tls(s->io) ? "ESMTPS" : "ESMTP";
	else
		proto = "SMTP";
	smtp_helo_header(helo, sizeof(helo), s->helo);
	snprintf(buf, len,
	    "Received: from %s ([%s])%s\r\n\tby %s (mxrelayd) with %s id %s;\r\n\t%s\r\n",
	    helo, s->addr, tls, smtp_hostname(s), proto, s->qid, date);
}

/* smtp_msg_write - message octets to the spool and the milters */
static void
smtp_msg_write(struct smtp_session *s, const char *p, size_t n)
{
	int r;

	if (s->oom)
		return;		/* the message is broken: aborted at the free */
	if ((r = spool_msg_write(s->msg, p, n)) < 0) {
		smtp_oom(s, "data");
		return;
	}
	if (r > 0)
		s->spool_busy = 1;
	if (s->milter && milter_txn_write(s->milter, p, n))
		s->milter_busy = 1;
}

/* smtp_milter_start - the milters see the message when it has filtered
 * recipients (nofilter ones skip them, SPEC 5); -1 when out of memory */
static int
smtp_milter_start(struct smtp_session *s)
{
	struct milter_info in;
	const char **rc;
	int n = 0;

	if (s->srv->cfg->nmilters == 0)
		return 0;
	if ((rc = mx_try_calloc((size_t)s->nrcpts, sizeof(char *))) == NULL)
		return -1;
	for (int i = 0; i < s->nrcpts; i++)
		if (!s->rcpt_nofilter[i])
			rc[n++] = s->rcpts[i];
	if (n > 0) {
		memset(&in, 0, sizeof(in));
		in.sid = s->id;
		in.qid = s->qid;
		in.client_addr = s->addr;
		in.client_port = s->port;
		in.helo = s->helo;
		if (io_is_tls(s->io)) {
			in.tls_version = io_tls_version(s->io);
			in.tls_cipher = io_tls_cipher(s->io);
			in.tls_bits = io_tls_bits(s->io);
		}
		in.sender = s->sender;
		in.rcpts = rc;
		in.nrcpts = n;
		s->milter = milter_txn_start(s->srv->base, s->srv->cfg, &in);
	}
	free(rc);
	return 0;
}

static void
cmd_data(struct smtp_session *s, const char *args)
{
	struct spool_envelope env;
	char received[2048], tlsdesc[160], trace[2048];
	const struct config *cfg = s->srv->cfg;
	size_t n;

	if (s->state == S_MAIL) {
		smtp_reply(s, "554 5.5.1 Error: no valid recipients");
		return;
	}
	if (s->state != S_RCPT) {
		smtp_reply(s, "503 5.5.1 Error: need RCPT command");
		return;
	}
	if (*args != '\0') {
		smtp_reply(s, "501 5.5.4 Syntax: DATA");
		return;
	}
	/* no descriptor for the message file: say so before the client
	 * sends the message, not after (nofile.c); the transaction stays */
	if (!nofile_file_room(mx_stats.connections_current, spool_msgs_open())) {
		log_info("%s smtp busy reason=nofile", s->id);
		smtp_reply(s, "451 4.3.0 Error: too busy, try again later");
		return;
	}
	memset(&env, 0, sizeof(env));
	env.client_addr = s->addr;
	env.client_port = s->port;
	env.helo = s->helo;
	if (io_is_tls(s->io)) {
		snprintf(tlsdesc, sizeof(tlsdesc), "%s %s", io_tls_version(s->io),
		    io_tls_cipher(s->io));
		env.tls = tlsdesc;
	}
	env.sender = s->sender;
	env.body_8bit = s->mp.body == BODY_8BITMIME;
	env.smtputf8 = s->mp.smtputf8;
	env.rcpts = (const char *const *)s->rcpts;
	env.orcpts = (const char *const *)s->orcpts;
	env.nrcpts = s->nrcpts;
	if ((s->msg = spool_msg_open(s->qid, &env)) == NULL ||
	    smtp_milter_start(s) < 0) {
		smtp_oom(s, "data");
		return;
	}
	/* RFC 7208 9.1: Received-SPF above our Received: */
	if ((n = filter_headers(s->filter, trace, sizeof(trace))) > 0)
		smtp_msg_write(s, trace, n);
	smtp_received(s, received, sizeof(received));
	smtp_msg_write(s, received, strlen(received));
	smtp_data_init(&s->data, (uint64_t)cfg->max_message_size,
	    (cfg->nul_bytes == NUL_STRIP ? DATA_OPT_STRIP_NUL : 0) |
	    (cfg->long_lines == LONG_LINES_FOLD ? DATA_OPT_FOLD : 0));
	s->data_start_us = mx_mono_us();
	smtp_enter_state(s, S_DATA);
	io_set_timeout(s->io, s->srv->cfg->data_timeout);
	smtp_reply(s, "354 End data with <CR><LF>.<CR><LF>");
}

static void
cmd_rset(struct smtp_session *s, const char *args)
{
	smtp_txn_reset(s);
	smtp_reply(s, "250 2.0.0 Ok");
}

static void
cmd_noop(struct smtp_session *s, const char *args)
{
	smtp_reply(s, "250 2.0.0 Ok");
}

static void
cmd_quit(struct smtp_session *s, const char *args)
{
	smtp_reply(s, "221 2.0.0 Bye");
	smtp_close(s, "quit");
}

static void
cmd_vrfy(struct smtp_session *s, const char *args)
{
	/* SPEC 5: reveal nothing about the address table. */
	smtp_reply(s, "252 2.0.0 Cannot VRFY user, but will accept message and attempt delivery");
}

static void
cmd_help(struct smtp_session *s, const char *args)
{
	smtp_reply(s, "214 2.0.0 Commands: HELO EHLO MAIL RCPT DATA RSET NOOP QUIT VRFY EXPN HELP%s",
	    s->srv->tls ? " STARTTLS" : "");
}

static void
cmd_starttls(struct smtp_session *s, const char *args)
{
	if (s->srv->tls == NULL) {
		smtp_reply(s, "502 5.5.1 Error: command not implemented");
		return;
	}
	if (io_is_tls(s->io)) {
		smtp_reply(s, "554 5.5.1 Error: TLS already active");
		return;
	}
	if (*args != '\0') {
		smtp_reply(s, "501 5.5.4 Syntax: STARTTLS");
		return;
	}
	smtp_reply(s, "220 2.0.0 Ready to start TLS");
	/* RFC 3207 4.2: forget everything learnt before TLS. */
	smtp_txn_reset(s);
	s->helo[0] = '\0';
	if (io_start_tls(s->io, s->srv->tls) < 0) {
		smtp_close(s, "tls-setup");
		return;
	}
	smtp_enter_state(s, S_TLS);
}

/* xclient_set_addr - XCLIENT ADDR=: IPv4, or IPv6 as "IPV6:addr" (the
 * Postfix form; a bare IPv6 address is taken too) */
static int
xclient_set_addr(struct smtp_session *s, const char *v)
{
	struct sockaddr_in *sin = (struct sockaddr_in *)&s->ss;
	struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&s->ss;
	struct in6_addr a6;
	struct in_addr a4;
	const char *v6 = strncasecmp(v, "IPV6:", 5) == 0 ? v + 5 : v;

	if (inet_pton(AF_INET6, v6, &a6) == 1) {
		memset(&s->ss, 0, sizeof(s->ss));
		sin6->sin6_family = AF_INET6;
		sin6->sin6_addr = a6;
		inet_ntop(AF_INET6, &a6, s->addr, sizeof(s->addr));
		return 0;
	}
	if (inet_pton(AF_INET, v, &a4) == 1) {
		memset(&s->ss, 0, sizeof(s->ss));
		sin->sin_family = AF_INET;
		sin->sin_addr = a4;
		inet_ntop(AF_INET, &a4, s->addr, sizeof(s->addr));
		return 0;
	}
	return -1;
}

/* xclient_unavailable - "[UNAVAILABLE]" / "[TEMPUNAVAIL]": keep the value */
static int
xclient_unavailable(const char *v)
{
	return strcasecmp(v, "[UNAVAILABLE]") == 0 || strcasecmp(v, "[TEMPUNAVAIL]") == 0;
}

static int smtp_client_admit(struct smtp_server *, const char *addr, const char **why);
static void smtp_client_release(struct smtp_session *);

/* xclient_attr - apply one NAME=value; -1 when unknown or malformed */
static int
xclient_attr(struct smtp_session *s, const char *name, const char *raw,
    char *helo, size_t helolen)
{
	char v[SMTP_LINE_MAX];
	char *end;
	long port;

	if (mx_xtext_decode(v, sizeof(v), raw, strlen(raw)) < 0)
		return -1;
	if (strcasecmp(name, "ADDR") == 0)
		return xclient_unavailable(v) ? 0 : xclient_set_addr(s, v);
	if (strcasecmp(name, "PORT") == 0) {
		if (xclient_unavailable(v))
			return 0;
		port = strtol(v, &end, 10);
		if (*v == '\0' || *end != '\0' || port < 0 || port > 65535)
			return -1;
		s->port = (int)port;
		return 0;
	}
	if (strcasecmp(name, "HELO") == 0) {
		if (!xclient_unavailable(v))
			smtp_sanitize(helo, helolen, v);
		return 0;
	}
	/* taken and not used: NAME (we do no reverse lookups), PROTO (EHLO
	 * decides), and what newer proxies send */
	if (strcasecmp(name, "NAME") == 0 || strcasecmp(name, "PROTO") == 0 ||
	    strcasecmp(name, "LOGIN") == 0 || strcasecmp(name, "DESTADDR") == 0 ||
	    strcasecmp(name, "DESTPORT") == 0)
		return 0;
	return -1;
}

/* cmd_xclient - the Postfix XCLIENT extension: a trusted proxy hands over
 * the real client's identity, and the session restarts with a new 220.
 * Every later check (DNSBL, SPF, connection limits, Received) uses it. */
static void
cmd_xclient(struct smtp_session *s, const char *args)
{
	char buf[SMTP_LINE_MAX], *tok, *save = NULL, *eq;
	char helo[SMTP_HELO_MAX + 1] = "", old[SMTP_ADDR_MAX];
	struct sockaddr_storage old_ss = s->ss;
	int old_port = s->port;
	const char *why;

	if (!smtp_xclient_allowed(s)) {
		mx_stats.filter_xclient_refused++;
		log_info("%s smtp xclient refused client=%s", s->id, s->peer);
		smtp_reply(s, "550 5.7.0 Error: insufficient authorization");
		return;
	}
	if (s->state != S_READY && s->state != S_HELO) {
		smtp_reply(s, "503 5.5.1 Error: MAIL transaction in progress");
		return;
	}
	mx_strlcpy(old, s->addr, sizeof(old));
	if (*args == '\0')
		goto bad;
	mx_strlcpy(buf, args, sizeof(buf));
	for (tok = strtok_r(buf, " ", &save); tok; tok = strtok_r(NULL, " ", &save)) {
		if ((eq = strchr(tok, '=')) == NULL)
			goto bad;
		*eq++ = '\0';
		if (xclient_attr(s, tok, eq, helo, sizeof(helo)) < 0)
			goto bad;
	}
	log_info("%s smtp xclient addr=%s port=%d helo=<%s>", s->id, s->addr,
	    s->port, helo);
	smtp_txn_reset(s);
	if (strcmp(old, s->addr) != 0) {
		/* the limits count the real client from now on */
		smtp_client_release(s);
		if (smtp_client_admit(s->srv, s->addr, &why) < 0) {
			smtp_reply(s, "421 4.7.0 %s Error: %s", smtp_hostname(s), why);
			smtp_close(s, "xclient-limit");
			return;
		}
		mx_strlcpy(s->counted, s->addr, sizeof(s->counted));
		filter_client(s->filter, (struct sockaddr *)&s->ss, s->addr);
	}
	mx_strlcpy(s->helo, helo, sizeof(s->helo));
	smtp_greet(s);
	return;
bad:
	/* nothing of a refused XCLIENT is kept */
	s->ss = old_ss;
	s->port = old_port;
	mx_strlcpy(s->addr, old, sizeof(s->addr));
	smtp_reply(s, "501 5.5.4 Bad XCLIENT attribute");
}

static const struct smtp_cmd_def smtp_cmds[] = {
	{ CMD_HELO,	0,		cmd_helo },
	{ CMD_EHLO,	0,		cmd_ehlo },
	{ CMD_MAIL,	CF_NEED_HELO,	cmd_mail },
	{ CMD_RCPT,	CF_NEED_HELO,	cmd_rcpt },
	{ CMD_DATA,	CF_NEED_HELO,	cmd_data },
	{ CMD_RSET,	0,		cmd_rset },
	{ CMD_NOOP,	0,		cmd_noop },
	{ CMD_QUIT,	0,		cmd_quit },
	{ CMD_VRFY,	0,		cmd_vrfy },
	{ CMD_EXPN,	0,		cmd_vrfy },
	{ CMD_HELP,	0,		cmd_help },
	{ CMD_STARTTLS,	CF_NEED_HELO,	cmd_starttls },
	{ CMD_XCLIENT,	0,		cmd_xclient },
};

/* smtp_too_many_errors - after SMTP_MAX_ERRORS 5xx replies (unknown
 * commands, refused recipients...), end the session: a client cannot
 * probe the address table or hold a session with refused commands
 * forever. Returns 1 when the session is closing. */
static int
smtp_too_many_errors(struct smtp_session *s)
{
	if (s->errors < SMTP_MAX_ERRORS || s->state == S_CLOSING)
		return s->state == S_CLOSING;
	smtp_reply(s, "421 4.7.0 %s Error: too many errors", smtp_hostname(s));
	smtp_close(s, "too-many-errors");
	return 1;
}

/* smtp_command - dispatch one complete command line */
static void
smtp_command(struct smtp_session *s, const char *line)
{
	const struct smtp_cmd_def *def = NULL;
	const char *args;
	enum smtp_cmd cmd;

	cmd = smtp_command_parse(line, &args);
	for (size_t i = 0; i < MX_ARRAY_LEN(smtp_cmds); i++)
		if (smtp_cmds[i].cmd == cmd)
			def = &smtp_cmds[i];
	if (def == NULL) {
		smtp_reply(s, "500 5.5.2 Error: command not recognized");
		return;
	}
	if ((def->flags & CF_NEED_HELO) && s->state == S_HELO) {
		smtp_reply(s, "503 5.5.1 Error: send HELO/EHLO first");
		return;
	}
	def->handler(s, args ? args : (cmd == CMD_MAIL || cmd == CMD_RCPT ? NULL : ""));
}

/* --- input ------------------------------------------------------------- */

/* smtp_deadline - a command line or the DATA phase took too long although
 * the client was never silent for a whole timeout: end as a timeout does */
static void
smtp_deadline(struct smtp_session *s, const char *what)
{
	log_info("%s smtp deadline exceeded in=%s client=%s", s->id, what, s->addr);
	smtp_reply(s, "421 4.4.2 %s Error: timeout exceeded", smtp_hostname(s));
	smtp_close(s, "deadline");
}

/* smtp_command_late - has the command line being received (first octet at
 * s->cmd_start_us) run past command_timeout? Starts the clock when a
 * partial line is waiting for more octets. */
static int
smtp_command_late(struct smtp_session *s)
{
	uint64_t now = mx_mono_us();

	if (s->cmd_start_us == 0) {
		s->cmd_start_us = now;
		return 0;
	}
	return now - s->cmd_start_us >= (uint64_t)s->srv->cfg->command_timeout * 1000000;
}

/* smtp_bare_lf - does the line ending at eol (an LF) lack its CR? */
static int
smtp_bare_lf(struct evbuffer *in, struct evbuffer_ptr eol)
{
	struct evbuffer_ptr p = eol;
	char c;

	if (eol.pos == 0)
		return 1;
	if (evbuffer_ptr_set(in, &p, (size_t)eol.pos - 1, EVBUFFER_PTR_SET) < 0 ||
	    evbuffer_copyout_from(in, &p, &c, 1) != 1)
		return 1;
	return c != '\r';
}

/* smtp_read_line - take one command line from the input. Returns 1 with a
 * line in buf, 0 when more input is needed, -1 when the line was refused
 * (replied to) and -2 when the session ended. Over-long lines are
 * discarded up to their end and answered with 500 5.5.2 (SPEC 5). A line
 * must be complete within command_timeout of its first octet. RFC 5321
 * 2.3.8: lines end with CRLF; a bare LF is refused with server.reject_bare_lf
 * (the default), as Postfix's smtpd_forbid_bare_newline does. */
static int
smtp_read_line(struct smtp_session *s, char *buf, size_t buflen)
{
	struct evbuffer *in = io_input(s->io);
	struct evbuffer_ptr eol;
	size_t eol_len = 0, len;
	int bare;

	eol = evbuffer_search_eol(in, NULL, &eol_len, EVBUFFER_EOL_LF);
	if (eol.pos < 0) {
		len = evbuffer_get_length(in);
		if (len >= SMTP_LINE_MAX) {
			/* Keep memory bounded: drop what we have of the line. */
			evbuffer_drain(in, len);
			s->discarding = 1;
		}
		if ((len > 0 || s->discarding) && smtp_command_late(s)) {
			smtp_deadline(s, "command");
			return -2;
		}
		return 0;
	}
	s->cmd_start_us = 0;
	len = (size_t)eol.pos;
	bare = smtp_bare_lf(in, eol);
	if (!bare) {
		len--;		/* the CR */
		eol_len = 2;
	}
	if (bare && s->srv->cfg->reject_bare_lf && !s->discarding &&
	    len + 1 <= SMTP_LINE_MAX) {
		evbuffer_drain(in, len + eol_len);
		smtp_reply(s, "500 5.5.2 Error: bare <LF> received");
		return -1;
	}
	if (s->discarding || len + 2 > SMTP_LINE_MAX) {
		evbuffer_drain(in, len + eol_len);
		s->discarding = 0;
		smtp_reply(s, "500 5.5.2 Line too long");
		return -1;
	}
	evbuffer_remove(in, buf, len);
	evbuffer_drain(in, eol_len);
	buf[len] = '\0';
	if (memchr(buf, '\0', len) != NULL) {
		smtp_reply(s, "500 5.5.2 Error: NUL in command");
		return -1;
	}
	return 1;
}

static void smtp_data_out(void *ctx, const char *p, size_t n);
static void smtp_milter_done(void *arg, struct milter_result *res);

/* smtp_shutdown_session - SIGTERM: tell the client and close (SPEC 2) */
static void
smtp_shutdown_session(struct smtp_session *s)
{
	smtp_reply(s, "421 4.3.2 %s Service shutting down, closing transmission channel",
	    smtp_hostname(s));
	smtp_close(s, "shutdown");
	if (io_queued(s->io) == 0)
		smtp_session_free(s);
}

static void
smtp_commit_done(struct spool_msg *m, int ok, void *arg)
{
	struct smtp_session *s = arg;

	s->msg = NULL;
	if (ok) {
		mx_stats.messages_accepted++;
		stats_observe(&mx_stats.smtp_transaction,
		    (double)(mx_mono_us() - s->txn_start_us) / 1e6);
		log_info("%s smtp queued id=%s from=<%s> nrcpt=%d size=%llu client=%s%s%s%s",
		    s->id, s->qid, s->sender, spool_msg_nrcpts(m),
		    (unsigned long long)s->data.size, s->addr,
		    s->milter_log ? " milters=\"" : "", SMTP_MILTER_LOG(s),
		    s->milter_log ? "\"" : "");
		smtp_reply(s, "250 2.0.0 Ok: queued as %s", s->qid);
	} else if (spool_msg_error(m) == ENOSPC || spool_msg_error(m) == EDQUOT)
		smtp_reply(s, "452 4.3.1 Error: insufficient system storage");
	else
		smtp_reply(s, "451 4.3.0 Error: queue file write error");
	smtp_enter_state(s, S_READY);
	smtp_txn_reset(s);
	if (s->srv->stopping) {
		smtp_shutdown_session(s);
		return;
	}
	io_set_timeout(s->io, s->srv->cfg->command_timeout);
	io_resume(s->io);
	smtp_process(s);
}

/* smtp_data_end - the terminator arrived: refuse, or commit and wait */
static void
smtp_data_end(struct smtp_session *s)
{
	const char *refusal = NULL;
	int f = s->data.flags;

	if (f & (DATA_BARE_LF | DATA_BARE_CR)) {
		refusal = "550 5.6.11 Bare LF/CR not allowed";
		mx_stats.messages_refused_bare_lf++;
	} else if (f & DATA_TOO_BIG) {
		refusal = "552 5.3.4 Message size exceeds fixed limit";
		mx_stats.messages_refused_size++;
	} else if (f & DATA_TOO_MANY_HOPS) {
		refusal = "554 5.4.6 Too many hops";
		mx_stats.messages_refused_hops++;
	} else if ((f & DATA_NUL) && !(s->data.opts & DATA_OPT_STRIP_NUL)) {
		/* server.nul_bytes = "reject" */
		refusal = "550 5.6.0 Message contains NUL characters";
	} else if ((f & DATA_LONG_LINE) && !(s->data.opts & DATA_OPT_FOLD)) {
		/* server.long_lines = "refuse" */
		refusal = "550 5.6.0 Message has lines over 998 characters";
	}
	io_set_timeout(s->io, s->srv->cfg->command_timeout);
	if (refusal) {
		mx_stats.messages_refused++;
		log_info("%s smtp message refused id=%s reply=\"%s\"", s->id, s->qid, refusal);
		smtp_reply(s, "%s", refusal);
		smtp_txn_reset(s);
		return;
	}
	io_pause(s->io);
	if (s->milter) {
		smtp_enter_state(s, S_MILTER);
		milter_txn_end(s->milter, smtp_milter_done, s);
		return;
	}
	smtp_enter_state(s, S_COMMIT);
	spool_msg_commit(s->msg, smtp_commit_done, s);
}

/* smtp_milter_done - the chain's verdict (loop): commit the message as
 * the milters left it, or refuse it */
static void
smtp_milter_done(void *arg, struct milter_result *res)
{
	struct smtp_session *s = arg;
	struct smtp_milter_msg m = { s->id, s->qid, s->msg, s->rcpts, s->orcpts,
	    s->rcpt_nofilter, s->nrcpts, s->mp.smtputf8,
	    s->srv->cfg->recipient_delimiter };
	char reply[SMTP_MILTER_REPLY_MAX];

	s->milter = NULL;	/* it freed itself */
	/* only for the log line: without memory for it the line goes without */
	free(s->milter_log);
	s->milter_log = res->log[0] ? mx_try_strdup(res->log) : NULL;
	switch (smtp_milter_apply(&m, res, reply, sizeof(reply))) {
	case SMTP_MILTER_COMMIT:
		smtp_enter_state(s, S_COMMIT);
		spool_msg_commit(s->msg, smtp_commit_done, s);
		return;
	case SMTP_MILTER_DROP:
		log_info("%s smtp message discarded id=%s from=<%s> milters=\"%s\"",
		    s->id, s->qid, s->sender, SMTP_MILTER_LOG(s));
		smtp_reply(s, "250 2.0.0 Ok: queued as %s", s->qid);
		break;
	case SMTP_MILTER_REFUSE:
		mx_stats.messages_refused++;
		log_info("%s smtp message refused id=%s from=<%s> reply=\"%s\" "
		    "milters=\"%s\"", s->id, s->qid, s->sender, reply, SMTP_MILTER_LOG(s));
		smtp_reply(s, "%s", reply);
		break;
	}
	smtp_enter_state(s, S_READY);
	smtp_txn_reset(s);
	if (s->srv->stopping) {
		smtp_shutdown_session(s);
		return;
	}
	io_resume(s->io);
	smtp_process(s);
}

static void
smtp_data_out(void *ctx, const char *p, size_t n)
{
	smtp_msg_write(ctx, p, n);
}

/* smtp_data_resume - the spool writer and the milters caught up: read
 * DATA again */
static void
smtp_data_resume(struct smtp_session *s)
{
	if (s->spool_busy || s->milter_busy)
		return;
	smtp_enter_state(s, S_DATA);
	io_resume(s->io);
	smtp_process(s);
}

static void
smtp_spool_drained(void *arg)
{
	struct smtp_session *s = arg;

	s->spool_busy = 0;
	smtp_data_resume(s);
}

static void
smtp_milter_drained(void *arg)
{
	struct smtp_session *s = arg;

	s->milter_busy = 0;
	smtp_data_resume(s);
}

/* smtp_data_late - is the DATA phase past data_timeout plus the time
 * SMTP_MIN_DATA_RATE allows for the octets received so far? */
static int
smtp_data_late(struct smtp_session *s)
{
	uint64_t allowed = (uint64_t)s->srv->cfg->data_timeout * 1000000 +
	    s->data.size / SMTP_MIN_DATA_RATE * 1000000;

	return mx_mono_us() - s->data_start_us > allowed;
}

/* smtp_data_input - feed the DATA stream; 1 when the message ended.
 * While the spool writer is behind, the session waits in S_SPOOL with
 * its input paused, so a fast client cannot fill our memory. */
static int
smtp_data_input(struct smtp_session *s)
{
	struct evbuffer *in = io_input(s->io);
	struct evbuffer_iovec v;
	size_t used;
	int done = 0;

	while (!done && !s->spool_busy && !s->milter_busy && !s->oom &&
	    evbuffer_peek(in, -1, NULL, &v, 1) > 0 && v.iov_len > 0) {
		used = smtp_data_feed(&s->data, v.iov_base, v.iov_len, &done,
		    smtp_data_out, s);
		evbuffer_drain(in, used);
	}
	if (s->oom)
		return 0;
	if (done) {
		s->spool_busy = 0;
		s->milter_busy = 0;
		smtp_data_end(s);
	} else if (smtp_data_late(s)) {
		smtp_deadline(s, "data");
	} else if (s->spool_busy || s->milter_busy) {
		smtp_enter_state(s, S_SPOOL);
		io_pause(s->io);
		if (s->spool_busy)
			spool_msg_on_drain(s->msg, smtp_spool_drained, s);
		if (s->milter_busy)
			milter_txn_on_drain(s->milter, smtp_milter_drained, s);
	}
	return done;
}

/* smtp_process_input - act on buffered input as far as the state allows */
static void
smtp_process_input(struct smtp_session *s)
{
	char line[SMTP_LINE_MAX + 1];
	int r;

	for (;;) {
		switch (s->state) {
		case S_DATA:
			if (!smtp_data_input(s))
				return;
			continue;
		case S_HELO:
		case S_READY:
		case S_MAIL:
		case S_RCPT:
			r = smtp_read_line(s, line, sizeof(line));
			if (r == 0)
				goto out;
			if (r > 0) {
				log_debug("%s smtp command %s", s->id, line);
				smtp_command(s, line);
			}
			if (smtp_too_many_errors(s))
				goto out;
			continue;
		default:
			goto out;
		}
	}
out:
	/* A client that never reads its replies is not fed more of them. */
	if (s->state != S_CLOSING && io_queued(s->io) > SMTP_OUTPUT_MAX) {
		io_pause(s->io);
		io_want_lowat(s->io, 1);
	}
}

/* smtp_process - the replies to a pipelined group of commands leave in one
 * send (RFC 2920 section 3.2), each other reply at once */
static void
smtp_process(struct smtp_session *s)
{
	struct io *io = s->io;

	io_cork(io);
	smtp_process_input(s);
	io_uncork(io);
}

/* --- connection life --------------------------------------------------- */

/* smtp_close - stop reading; the session ends once the output is sent */
static void
smtp_close(struct smtp_session *s, const char *reason)
{
	log_info("%s smtp disconnect reason=%s", s->id, reason);
	smtp_txn_reset(s);
	smtp_enter_state(s, S_CLOSING);
	io_pause(s->io);
	io_want_lowat(s->io, 1);
}

static void
smtp_io(struct io *io, enum io_event ev, void *arg)
{
	struct smtp_session *s = arg;

	switch (ev) {
	case IO_DATAIN:
		if (s->state == S_PREGREET) {
			mx_stats.filter_pregreet++;
			log_info("%s filter pregreet client=%s result=refused", s->id, s->addr);
			smtp_reply(s, "554 5.5.1 Error: talking before the greeting");
			smtp_close(s, "pregreet");
			break;
		}
		smtp_process(s);
		break;
	case IO_LOWAT:
		if (s->state == S_CLOSING) {
			smtp_session_free(s);
			return;
		}
		if (s->state == S_COMMIT || s->state == S_TLS ||
		    s->state == S_FILTER || s->state == S_VERIFY ||
		    s->state == S_SPOOL || s->state == S_MILTER)
			break;
		io_resume(s->io);
		smtp_process(s);
		break;
	case IO_TLSREADY:
		mx_stats.tls_sessions++;
		log_info("%s smtp tls version=%s cipher=%s", s->id,
		    io_tls_version(io), io_tls_cipher(io));
		smtp_enter_state(s, S_HELO);
		smtp_process(s);
		break;
	case IO_TIMEOUT:
		if (s->state == S_CLOSING) {
			smtp_session_free(s);
			return;
		}
		{
			/* A write timeout: the client does not read, and libevent
			 * stopped writing. Do not wait for our 421 to drain;
			 * io_free sends what it can for IO_LINGER_SECS. */
			int stuck = io_write_timed_out(s->io) ||
			    io_queued(s->io) > 0;

			smtp_reply(s, "421 4.4.2 %s Error: timeout exceeded", smtp_hostname(s));
			smtp_close(s, "timeout");
			if (stuck) {
				smtp_session_free(s);
				return;
			}
		}
		break;
	case IO_DISCONNECTED:
	case IO_ERROR:
		log_info("%s smtp disconnect reason=%s state=%s", s->id,
		    ev == IO_ERROR ? io_error_string(io) : "eof", state_names[s->state]);
		smtp_session_free(s);
		return;
	}
	if (s->state == S_CLOSING && io_queued(s->io) == 0)
		smtp_session_free(s);
}

static void
smtp_pregreet_done(evutil_socket_t fd, short ev, void *arg)
{
	struct smtp_session *s = arg;

	if (s->state != S_PREGREET)
		return;
	smtp_greet(s);
}

static int *
client_count(struct smtp_server *srv, const char *addr, int create)
{
	int *n = dict_get(srv->per_client, addr);

	if (n == NULL && create) {
		n = xcalloc(1, sizeof(*n));
		dict_put(srv->per_client, addr, n);
	}
	return n;
}

/* smtp_client_admit - one more connection of client addr: counted, or
 * refused (-1, why set) over limits.max_connections_per_client or
 * filters.rate_limit. The caller records addr in s->counted. */
static int
smtp_client_admit(struct smtp_server *srv, const char *addr, const char **why)
{
	const struct config *cfg = srv->cfg;
	int *count;

	if (srv->rate && ratelimit_hit(srv->rate, addr, mx_mono_us())) {
		mx_stats.filter_rate_limited++;
		log_info("filter ratelimit client=%s result=refused limit=%d/%ds",
		    addr, cfg->rate_connections, cfg->rate_period);
		*why = "too many connections from your address, slow down";
		return -1;
	}
	count = client_count(srv, addr, 1);
	if (*count >= cfg->max_connections_per_client) {
		if (*count == 0)
			free(dict_del(srv->per_client, addr));
		log_info("smtp refused client=%s reason=max_connections_per_client", addr);
		*why = "too many connections from your address";
		return -1;
	}
	(*count)++;
	return 0;
}

/* smtp_client_undo - undo smtp_client_admit of addr */
static void
smtp_client_undo(struct smtp_server *srv, const char *addr)
{
	int *n;

	if ((n = client_count(srv, addr, 0)) != NULL && --*n <= 0)
		free(dict_del(srv->per_client, addr));
}

/* smtp_client_release - undo smtp_client_admit of the session */
static void
smtp_client_release(struct smtp_session *s)
{
	if (s->counted[0] == '\0')
		return;
	smtp_client_undo(s->srv, s->counted);
	s->counted[0] = '\0';
}

static void
smtp_session_free(struct smtp_session *s)
{
	struct smtp_server *srv = s->srv;

	smtp_txn_reset(s);
	smtp_client_release(s);
	filter_free(s->filter);
	if (s->pregreet_ev)
		event_free(s->pregreet_ev);
	if (s->oom_ev)
		event_free(s->oom_ev);
	if (s->oom)
		io_abort(s->io, SMTP_OOM_REPLY);
	else
		io_free(s->io);
	if (s->prev)
		s->prev->next = s->next;
	else
		srv->sessions = s->next;
	if (s->next)
		s->next->prev = s->prev;
	mx_stats.connections_current--;
	free(s);
}

/* smtp_oom_close - free a session that ran out of memory (loop) */
static void
smtp_oom_close(evutil_socket_t fd, short ev, void *arg)
{
	smtp_session_free(arg);
}

/* smtp_oom_refuse - no memory for a new session: SMTP_OOM_REPLY, best
 * effort as in smtp_refuse, and close fd */
static void
smtp_oom_refuse(int fd, const char *addr)
{
	log_warnx("smtp out of memory at connect client=%s: closing", addr);
	if (send(fd, SMTP_OOM_REPLY, strlen(SMTP_OOM_REPLY),
	    MSG_NOSIGNAL | MSG_DONTWAIT) < 0)
		log_debug("smtp refuse send: %s", strerror(errno));
	close(fd);
}

/* smtp_refuse - answer 421 CODE on a socket we will not serve, and close it */
static void
smtp_refuse(struct smtp_server *srv, int fd, const char *code, const char *why)
{
	char buf[SMTP_LINE_MAX];
	int n;

	n = snprintf(buf, sizeof(buf), "421 %s %s Error: %s\r\n", code,
	    srv->cfg->hostname, why);
	/* Non-blocking best effort: a full socket buffer just loses the text. */
	if (n > 0 && send(fd, buf, (size_t)n, MSG_NOSIGNAL | MSG_DONTWAIT) < 0)
		log_debug("smtp refuse send: %s", strerror(errno));
	close(fd);
	mx_stats.connections_refused++;
}

static void
sockaddr_text(const struct sockaddr *sa, char *addr, size_t len, int *port)
{
	const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)sa;
	const struct sockaddr_in *sin = (const struct sockaddr_in *)sa;

	if (sa->sa_family == AF_INET6) {
		if (IN6_IS_ADDR_V4MAPPED(&sin6->sin6_addr))
			inet_ntop(AF_INET, &sin6->sin6_addr.s6_addr[12], addr, (socklen_t)len);
		else
			inet_ntop(AF_INET6, &sin6->sin6_addr, addr, (socklen_t)len);
		*port = ntohs(sin6->sin6_port);
	} else {
		inet_ntop(AF_INET, &sin->sin_addr, addr, (socklen_t)len);
		*port = ntohs(sin->sin_port);
	}
}

static void
smtp_accept(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa,
    int salen, void *arg)
{
	struct smtp_server *srv = arg;
	const struct config *cfg = srv->cfg;
	struct smtp_session *s;
	char addr[SMTP_ADDR_MAX];
	const char *why;
	int port, proxy;

	sockaddr_text(sa, addr, sizeof(addr), &port);
	mx_stats.connections_total++;
	accept_pause_ok(srv->pause);
	if (mx_stats.connections_current >= cfg->max_connections) {
		log_info("smtp refused client=%s reason=max_connections", addr);
		smtp_refuse(srv, fd, "4.7.0", "too many connections");
		return;
	}
	if (mx_stats.connections_current >= nofile_sessions_max()) {
		log_info("smtp refused client=%s reason=nofile", addr);
		smtp_refuse(srv, fd, "4.7.0", "too many connections");
		return;
	}
	if ((why = admission_session()) != NULL) {
		log_info("smtp refused client=%s reason=spool_busy", addr);
		smtp_refuse(srv, fd, "4.3.2", why);
		return;
	}
	/* A front proxy (xclient_hosts) carries many clients: the per-client
	 * limits apply to the client it hands over by XCLIENT instead. */
	proxy = smtp_xclient_host(cfg, sa);
	if (!proxy && smtp_client_admit(srv, addr, &why) < 0) {
		smtp_refuse(srv, fd, "4.7.0", why);
		return;
	}
	if ((s = mx_try_calloc(1, sizeof(*s))) == NULL) {
		if (!proxy)
			smtp_client_undo(srv, addr);
		smtp_oom_refuse(fd, addr);
		return;
	}
	s->srv = srv;
	snprintf(s->id, sizeof(s->id), "s%06lx", ++srv->next_id);
	memcpy(&s->peer_ss, sa, (size_t)salen < sizeof(s->ss) ? (size_t)salen : sizeof(s->ss));
	s->ss = s->peer_ss;
	mx_strlcpy(s->peer, addr, sizeof(s->peer));
	mx_strlcpy(s->addr, addr, sizeof(s->addr));
	s->port = port;
	s->state = S_HELO;
	if (!proxy)
		mx_strlcpy(s->counted, addr, sizeof(s->counted));
	if ((s->io = io_new(srv->base, fd, smtp_io, s)) == NULL ||
	    (s->filter = filter_new(srv->base, cfg, s->id)) == NULL ||
	    (s->oom_ev = event_new(srv->base, -1, 0, smtp_oom_close, s)) == NULL) {
		smtp_client_release(s);
		filter_free(s->filter);
		if (s->io != NULL) {
			log_warnx("%s smtp out of memory at connect client=%s: closing",
			    s->id, addr);
			io_abort(s->io, SMTP_OOM_REPLY);
		} else
			smtp_oom_refuse(fd, addr);
		free(s);
		return;
	}
	filter_client(s->filter, (struct sockaddr *)&s->ss, s->addr);
	mx_stats.connections_current++;
	s->next = srv->sessions;
	if (srv->sessions)
		srv->sessions->prev = s;
	srv->sessions = s;
	io_set_timeout(s->io, cfg->command_timeout);
	log_info("%s smtp connect client=%s port=%d", s->id, addr, port);
	if (cfg->pregreet_wait > 0) {
		struct timeval tv = { cfg->pregreet_wait, 0 };
		smtp_enter_state(s, S_PREGREET);
		if ((s->pregreet_ev = evtimer_new(srv->base, smtp_pregreet_done, s)) == NULL)
			smtp_oom(s, "connect");
		else
			evtimer_add(s->pregreet_ev, &tv);
		return;
	}
	smtp_greet(s);
}

/* smtp_accept_error - accept(2) failed (accept_pause.c) */
static void
smtp_accept_error(struct evconnlistener *l, void *arg)
{
	struct smtp_server *srv = arg;

	accept_pause_error(srv->pause);
}

static int
smtp_listen_one(struct smtp_server *srv, const struct listen_addr *la,
    char *err, size_t errlen)
{
	struct sockaddr_storage ss;
	int sslen = sizeof(ss);
	char text[300];
	struct evconnlistener *l;

	if (strchr(la->host, ':'))
		snprintf(text, sizeof(text), "[%s]:%d", la->host, la->port);
	else
		snprintf(text, sizeof(text), "%s:%d", la->host, la->port);
	memset(&ss, 0, sizeof(ss));
	if (evutil_parse_sockaddr_port(text, (struct sockaddr *)&ss, &sslen) < 0) {
		snprintf(err, errlen, "server.listen: bad address %s", text);
		return -1;
	}
	l = evconnlistener_new_bind(srv->base, smtp_accept, srv,
	    LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE | LEV_OPT_CLOSE_ON_EXEC |
	    (ss.ss_family == AF_INET6 ? LEV_OPT_BIND_IPV6ONLY : 0) | LEV_OPT_DISABLED,
	    1024, (struct sockaddr *)&ss, sslen);
	if (l == NULL) {
		snprintf(err, errlen, "server.listen: cannot bind %s: %s", text, strerror(errno));
		return -1;
	}
	evconnlistener_set_error_cb(l, smtp_accept_error);
	accept_pause_watch(srv->pause, l);
	srv->listeners[srv->nlisteners++] = l;
	log_info("smtp listening on %s", text);
	return 0;
}

struct smtp_server *
smtp_server_new(struct event_base *base, const struct config *cfg, SSL_CTX *tls,
    char *err, size_t errlen)
{
	struct smtp_server *srv = xcalloc(1, sizeof(*srv));

	srv->base = base;
	srv->cfg = cfg;
	srv->tls = tls;
	srv->per_client = dict_new();
	srv->pause = accept_pause_new(base, "smtp accept");
	for (int i = 0; i < cfg->nlisten; i++)
		if (smtp_listen_one(srv, &cfg->listen[i], err, errlen) < 0) {
			smtp_server_free(srv);
			return NULL;
		}
	return srv;
}

void
smtp_server_start(struct smtp_server *srv)
{
	const struct config *cfg = srv->cfg;

	/* After the privilege drop: the SPF threads run as the daemon's user. */
	if (cfg->spf_enabled && spf_init(srv->base, cfg->hostname) < 0)
		log_warnx("spf unavailable: mail is accepted without SPF checks");
	if (cfg->rate_connections > 0 && srv->rate == NULL)
		srv->rate = ratelimit_new(cfg->rate_connections, cfg->rate_period);
	for (int i = 0; i < srv->nlisteners; i++)
		evconnlistener_enable(srv->listeners[i]);
}

void
smtp_server_reload(struct smtp_server *srv, const struct config *cfg, SSL_CTX *tls)
{
	/* SSL objects hold a reference to their context: live sessions are safe */
	if (srv->tls)
		SSL_CTX_free(srv->tls);
	srv->tls = tls;
	srv->cfg = cfg;
}

void
smtp_server_stop(struct smtp_server *srv)
{
	struct smtp_session *s, *next;

	srv->stopping = 1;
	accept_pause_stop(srv->pause);
	for (int i = 0; i < srv->nlisteners; i++)
		evconnlistener_disable(srv->listeners[i]);
	for (s = srv->sessions; s; s = next) {
		next = s->next;
		/* A message in the group commit gets its 250 first. */
		if (s->state != S_COMMIT && s->state != S_CLOSING)
			smtp_shutdown_session(s);
	}
}

int
smtp_server_nsessions(const struct smtp_server *srv)
{
	int n = 0;

	for (const struct smtp_session *s = srv->sessions; s; s = s->next)
		n++;
	return n;
}

void
smtp_server_free(struct smtp_server *srv)
{
	if (srv == NULL)
		return;
	for (int i = 0; i < srv->nlisteners; i++)
		evconnlistener_free(srv->listeners[i]);
	accept_pause_free(srv->pause);
	while (srv->sessions)
		smtp_session_free(srv->sessions);
	spf_shutdown();
	ratelimit_free(srv->rate);
	if (srv->tls)
		SSL_CTX_free(srv->tls);
	dict_free(srv->per_client, free);
	free(srv);
}
