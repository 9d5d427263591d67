/* smtp_client.c - one outbound SMTP/LMTP session as a state machine
 *
 * States follow what we wait for from the server (greeting, the EHLO
 * reply, the MAIL reply...). Every reply is read into a struct sc_reply
 * and handed to the handler of the current state; sc_enter() is the one
 * place that changes state, sets the RFC 5321 4.5.3.2 timeout of the new
 * state and traces the transition.
 *
 * Contract with the owner (mta.c): events are the last thing a code path
 * does when they may free the session (SC_EV_CLOSED); SC_EV_READY and
 * SC_EV_JOB handlers may call smtp_client_start() / smtp_client_quit()
 * but never smtp_client_free().
 *
 * This file talks to bufferevent and OpenSSL directly: ioev.c is built for
 * the server side (accepted sockets, server-side handshakes), a client
 * needs non-blocking connect and a connecting TLS filter.
 */
#include "autoconf.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <sys/un.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <openssl/err.h>

#include "log.h"
#include "crc32.h"
#include "readahead.h"
#include "smtp_client.h"
#include "util.h"

enum sc_state {
	SC_CONNECT,	/* TCP or unix connect in progress */
	SC_GREETING,	/* waiting for the 220 greeting */
	SC_EHLO,	/* EHLO/LHLO sent */
	SC_HELO,	/* HELO sent after a 5xx to EHLO */
	SC_STARTTLS,	/* STARTTLS sent, waiting for 220 */
	SC_TLS,		/* TLS handshake in progress */
	SC_READY,	/* idle, waiting for a job */
	SC_MAIL,	/* waiting for the MAIL reply */
	SC_RCPT,	/* waiting for RCPT replies */
	SC_DATA,	/* waiting for 354 */
	SC_BODY,	/* sending the message */
	SC_DOT,		/* final dot sent, waiting for the reply (LMTP: replies) */
	SC_RSET,	/* RSET sent after an aborted transaction */
	SC_QUIT,	/* QUIT sent, waiting for 221 or the close */
	SC_CLOSED,	/* terminal */
};

/* per state: trace name, read timeout, what we were doing (for errors) */
static const struct sc_state_info {
	const char *name;
	int timeout;
	const char *doing;
} sc_states[] = {
	[SC_CONNECT] =	{ "connect", 0, "connecting" },
	[SC_GREETING] =	{ "greeting", SC_TIMEOUT_GREETING,
			  "receiving the initial server greeting" },
	[SC_EHLO] =	{ "ehlo", SC_TIMEOUT_EHLO, "performing the EHLO handshake" },
	[SC_HELO] =	{ "helo", SC_TIMEOUT_EHLO, "performing the HELO handshake" },
	[SC_STARTTLS] =	{ "starttls", SC_TIMEOUT_STARTTLS, "sending STARTTLS" },
	[SC_TLS] =	{ "tls", SC_TIMEOUT_STARTTLS, "performing the TLS handshake" },
	[SC_READY] =	{ "ready", 0, "idle" },
	[SC_MAIL] =	{ "mail", SC_TIMEOUT_MAIL, "sending MAIL FROM" },
	[SC_RCPT] =	{ "rcpt", SC_TIMEOUT_RCPT, "sending RCPT TO" },
	[SC_DATA] =	{ "data", SC_TIMEOUT_DATA_INIT, "sending DATA command" },
	[SC_BODY] =	{ "body", 0, "sending message body" },
	[SC_DOT] =	{ "dot", SC_TIMEOUT_DATA_TERM,
			  "sending end of data -- message may be sent more than once" },
	[SC_RSET] =	{ "rset", SC_TIMEOUT_RSET, "sending RSET" },
	[SC_QUIT] =	{ "quit", SC_TIMEOUT_QUIT, "sending QUIT" },
	[SC_CLOSED] =	{ "closed", 0, "closed" },
};

struct smtp_client {
	struct event_base *base;
	SSL_CTX *ssl_ctx;
	enum tls_outbound tls;
	int lmtp;
	char helo[256];
	char host[256];
	char relay[MTA_RELAY_MAX];
	int connect_timeout;

	struct bufferevent *bev;	/* socket, or the TLS filter over it */
	struct event *later;		/* CLOSED for a failure inside _new */
	smtp_client_cb cb;
	void *arg;

	enum sc_state state;
	struct sc_reply reply;
	int ext;			/* SC_EXT_* of the last EHLO */
	uint64_t size_max;
	int tls_on;
	char tls_desc[128];
	int jobs;			/* jobs started on this session */

	/* the transaction */
	struct mta_job *job;
	enum sc_disp disp;
	int pipelining;
	int mail_failed;
	int got_reply;			/* any reply to this job's commands */
	int rcpt_sent, rcpt_replied, naccepted, lmtp_next;
	unsigned char *rcpt_ok;		/* accepted at RCPT, waiting for the dot */
	struct sc_dot dot;
	uint64_t body_done;
	uint32_t crc;
	struct readahead *ra;		/* SC_BODY: the spool file, read ahead */

	struct sc_error err;
};

static void sc_readcb(struct bufferevent *, void *);
static void sc_writecb(struct bufferevent *, void *);
static void sc_eventcb(struct bufferevent *, short, void *);

/* ------------------------------------------------------------------ */
/* pure parts                                                          */

/* sc_reply_init - empty reply, before the first line */
void
sc_reply_init(struct sc_reply *r)
{
	memset(r, 0, sizeof(*r));
}

/* sc_reply_append - add text, printable ASCII only, capped */
static void
sc_reply_append(struct sc_reply *r, const char *s, size_t n)
{
	for (size_t i = 0; i < n && r->len + 1 < sizeof(r->text); i++) {
		unsigned char c = (unsigned char)s[i];
		r->text[r->len++] = c >= 0x20 && c < 0x7f ? (char)c : '?';
	}
	r->text[r->len] = '\0';
}

/* sc_status_parse - RFC 3463 status at the start of a reply text */
size_t
sc_status_parse(const char *text, int code, char *status, size_t len)
{
	const char *p = text;
	int part, digits;

	/* RFC 3463: class "." subject "." detail, class = the reply class */
	if (code / 100 < 2 || code / 100 > 5 || code / 100 == 3 ||
	    *p != '0' + code / 100)
		return 0;
	p++;
	for (part = 0; part < 2; part++) {
		if (*p++ != '.')
			return 0;
		for (digits = 0; *p >= '0' && *p <= '9'; p++)
			digits++;
		if (digits < 1 || digits > 3)
			return 0;
	}
	if (*p != '\0' && *p != ' ')
		return 0;
	if ((size_t)(p - text) >= len)
		return 0;
	memcpy(status, text, (size_t)(p - text));
	status[p - text] = '\0';
	return (size_t)(p - text);
}

/* sc_status_make - the reply's status or one made up from the code class */
void
sc_status_make(int code, const char *parsed, char *status, size_t len)
{
	int cls = code / 100;

	if (parsed != NULL && parsed[0] != '\0')
		mx_strlcpy(status, parsed, len);
	else if (cls == 2 || cls == 4 || cls == 5)
		snprintf(status, len, "%d.0.0", cls);
	else
		mx_strlcpy(status, "4.5.0", len);	/* protocol trouble */
}

/* sc_reply_feed - one reply line: code, continuation, status, text */
enum sc_feed
sc_reply_feed(struct sc_reply *r, const char *line, const char **linetext)
{
	const char *text;
	char status[16];
	size_t n = strlen(line), sl;
	int code;

	/* RFC 5321 4.2: three digits, then SP, "-" or the end */
	if (n < 3 || line[0] < '1' || line[0] > '5' || line[1] < '0' ||
	    line[1] > '9' || line[2] < '0' || line[2] > '9')
		return SC_FEED_ERROR;
	if (n > 3 && line[3] != ' ' && line[3] != '-')
		return SC_FEED_ERROR;
	code = (line[0] - '0') * 100 + (line[1] - '0') * 10 + (line[2] - '0');
	if (r->nlines > 0 && code != r->code)
		return SC_FEED_ERROR;
	text = n > 3 ? line + 4 : "";
	if (linetext != NULL)
		*linetext = text;
	if (r->nlines == 0) {
		r->code = code;
		sc_reply_append(r, line, 3);
		sl = sc_status_parse(text, code, r->status, sizeof(r->status));
		(void)sl;
	} else {
		/* continuation lines repeat the status: keep it once */
		sl = sc_status_parse(text, code, status, sizeof(status));
		if (sl > 0 && strcmp(status, r->status) == 0)
			text += sl + (text[sl] == ' ');
	}
	if (*text != '\0') {
		sc_reply_append(r, " ", 1);
		sc_reply_append(r, text, strlen(text));
	}
	r->nlines++;
	if (n > 3 && line[3] == '-')
		return SC_FEED_MORE;
	r->done = 1;
	return SC_FEED_DONE;
}

/* sc_keyword_is - case-insensitive keyword match up to SP or the end */
static int
sc_keyword_is(const char *text, const char *kw, const char **arg)
{
	size_t n = strlen(kw);

	if (strncasecmp(text, kw, n) != 0 || (text[n] != '\0' && text[n] != ' '))
		return 0;
	*arg = text + n + (text[n] == ' ');
	return 1;
}

/* sc_ehlo_keyword - the extension an EHLO line announces */
int
sc_ehlo_keyword(const char *text, uint64_t *size)
{
	const char *arg;
	uint64_t v = 0;

	if (sc_keyword_is(text, "PIPELINING", &arg))
		return SC_EXT_PIPELINING;
	if (sc_keyword_is(text, "8BITMIME", &arg))
		return SC_EXT_8BITMIME;
	if (sc_keyword_is(text, "STARTTLS", &arg))
		return SC_EXT_STARTTLS;
	if (sc_keyword_is(text, "SMTPUTF8", &arg))
		return SC_EXT_SMTPUTF8;
	if (sc_keyword_is(text, "ENHANCEDSTATUSCODES", &arg))
		return SC_EXT_ENHANCED;
	if (sc_keyword_is(text, "SIZE", &arg)) {
		/* RFC 1870: optional limit, 0 or absent = none */
		for (; *arg >= '0' && *arg <= '9'; arg++) {
			if (v > (UINT64_MAX - 9) / 10) {
				v = 0;	/* absurd: treat as no limit */
				break;
			}
			v = v * 10 + (uint64_t)(*arg - '0');
		}
		if (size != NULL)
			*size = v;
		return SC_EXT_SIZE;
	}
	return 0;
}

/* sc_dot_init - a stream at the beginning of a line */
void
sc_dot_init(struct sc_dot *d)
{
	d->bol = 1;
	d->cr = 0;
}

/* sc_dot_stuff - CRLF line ends and doubled leading dots. Whole line
 * pieces are copied with memchr/memcpy: an octet-at-a-time loop here was
 * the first entry of the end-to-end profile (bench/README.md). */
size_t
sc_dot_stuff(struct sc_dot *d, const char *in, size_t n, char *out)
{
	size_t o = 0;

	while (n > 0) {
		const char *nl;
		size_t len;

		/* RFC 5321 4.5.2: a line starting with "." gets another */
		if (d->bol && *in == '.')
			out[o++] = '.';
		nl = memchr(in, '\n', n);
		len = nl ? (size_t)(nl - in) : n;
		if (len > 0) {
			memcpy(out + o, in, len);
			o += len;
			d->bol = 0;
			d->cr = in[len - 1] == '\r';
		}
		if (nl == NULL)
			break;
		/* a bare LF becomes CRLF: the spool holds CRLF, this is
		 * only a defence */
		if (!d->cr)
			out[o++] = '\r';
		out[o++] = '\n';
		d->bol = 1;
		d->cr = 0;
		in += len + 1;
		n -= len + 1;
	}
	return o;
}

/* sc_dot_end - end of data: CRLF if needed, then the dot line */
size_t
sc_dot_end(struct sc_dot *d, char *out)
{
	size_t o = 0;

	if (!d->bol) {
		if (!d->cr)
			out[o++] = '\r';
		out[o++] = '\n';
	}
	memcpy(out + o, ".\r\n", 3);
	return o + 3;
}

/* ------------------------------------------------------------------ */
/* session plumbing                                                    */

/* sc_enter - the one transition function: trace, set the timeouts */
static void
sc_enter(struct smtp_client *s, enum sc_state st)
{
	struct timeval rtv = { sc_states[st].timeout, 0 };
	struct timeval wtv = rtv;

	log_debug("smtp client relay=%s %s -> %s", s->relay,
	    sc_states[s->state].name, sc_states[st].name);
	s->state = st;
	if (s->bev == NULL)
		return;
	switch (st) {
	case SC_CONNECT:
		/* libevent times a pending connect with the write timeout */
		wtv.tv_sec = s->connect_timeout;
		bufferevent_set_timeouts(s->bev, NULL, &wtv);
		break;
	case SC_BODY:
		/* 4.5.3.2.5: each data block must go out within 3 minutes */
		wtv.tv_sec = SC_TIMEOUT_DATA_BLOCK;
		bufferevent_set_timeouts(s->bev, NULL, &wtv);
		break;
	case SC_READY:
	case SC_CLOSED:
		/* idle time is mta's business */
		bufferevent_set_timeouts(s->bev, NULL, NULL);
		break;
	case SC_DOT:
		/* the last block may still be going out */
		wtv.tv_sec = SC_TIMEOUT_DATA_BLOCK;
		bufferevent_set_timeouts(s->bev, &rtv, &wtv);
		break;
	default:
		bufferevent_set_timeouts(s->bev, &rtv, &wtv);
		break;
	}
}

/* sc_emit - report an event to the owner */
static void
sc_emit(struct smtp_client *s, enum sc_event ev)
{
	s->cb(s, ev, s->arg);
}

/* sc_send - queue one command line */
static void
sc_send(struct smtp_client *s, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static void
sc_send(struct smtp_client *s, const char *fmt, ...)
{
	struct evbuffer *out = bufferevent_get_output(s->bev);
	va_list ap;

	va_start(ap, fmt);
	evbuffer_add_vprintf(out, fmt, ap);
	va_end(ap);
	evbuffer_add(out, "\r\n", 2);
}

/* sc_disconnect - drop the socket (and TLS) without a word */
static void
sc_disconnect(struct smtp_client *s)
{
	if (s->bev != NULL) {
		bufferevent_free(s->bev);
		s->bev = NULL;
	}
	readahead_free(s->ra);
	s->ra = NULL;
}

/* sc_set_error - record why the session failed */
static void
sc_set_error(struct smtp_client *s, int code, const char *status,
    const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static void
sc_set_error(struct smtp_client *s, int code, const char *status,
    const char *fmt, ...)
{
	va_list ap;

	s->err.code = code;
	mx_strlcpy(s->err.status, status, sizeof(s->err.status));
	s->err.perm = status[0] == '5';
	va_start(ap, fmt);
	vsnprintf(s->err.text, sizeof(s->err.text), fmt, ap);
	va_end(ap);
}

/* sc_set_error_reply - the failure is the server's last reply */
static void
sc_set_error_reply(struct smtp_client *s)
{
	char status[16];

	sc_status_make(s->reply.code, s->reply.status, status, sizeof(status));
	sc_set_error(s, s->reply.code, status, "%s", s->reply.text);
}

/* sc_rcpt_result - one recipient's result from a reply */
static void
sc_rcpt_result(struct mta_rcpt *rc, const struct sc_reply *r)
{
	int cls = r->code / 100;

	rc->cls = cls == 2 ? MTA_OK : cls == 5 ? MTA_PERM : MTA_TEMP;
	rc->code = r->code;
	sc_status_make(r->code, r->status, rc->status, sizeof(rc->status));
	mx_strlcpy(rc->reply, r->text, sizeof(rc->reply));
}

/* sc_rcpt_set - one recipient's result from our own reason */
static void
sc_rcpt_set(struct mta_rcpt *rc, enum mta_class cls, int code,
    const char *status, const char *text)
{
	rc->cls = cls;
	rc->code = code;
	mx_strlcpy(rc->status, status, sizeof(rc->status));
	mx_strlcpy(rc->reply, text, sizeof(rc->reply));
}

/* sc_job_release - hand the job back: SC_EV_JOB */
static void
sc_job_release(struct smtp_client *s)
{
	free(s->rcpt_ok);
	s->rcpt_ok = NULL;
	readahead_free(s->ra);
	s->ra = NULL;
	if (s->job == NULL)
		return;
	s->job = NULL;
	sc_emit(s, SC_EV_JOB);
}

/* sc_fail - the session is over: fill what the job still lacks with the
 * error, hand it back, close, SC_EV_CLOSED. Returns -1: s is gone. */
static int
sc_fail(struct smtp_client *s)
{
	struct mta_job *job = s->job;

	if (s->state == SC_READY)	/* the server closed an idle connection */
		log_debug("smtp client relay=%s closed while idle: %s", s->relay,
		    s->err.text);
	else
		log_info("smtp client relay=%s failed state=%s dsn=%s "
		    "reason=\"%s\"", s->relay, sc_states[s->state].name,
		    s->err.status, s->err.text);
	if (job != NULL) {
		/* Connection trouble is never final: recipients without a
		 * result (accepted ones included: no 250 after the dot) are
		 * deferred. */
		for (int i = 0; i < job->nrcpts; i++) {
			if (job->rcpts[i].cls != MTA_NOT_TRIED)
				continue;
			sc_rcpt_set(&job->rcpts[i], MTA_TEMP, s->err.code,
			    s->err.status[0] == '5' ? "4.4.2" : s->err.status,
			    s->err.text);
		}
		/* A server that closed our idle connection is the usual
		 * reason for this; nothing of the job reached it. */
		if (s->jobs > 1 && !s->got_reply && s->disp == SC_JOB_FINAL)
			s->disp = SC_JOB_REQUEUE;
	}
	sc_disconnect(s);
	sc_enter(s, SC_CLOSED);
	sc_job_release(s);
	sc_emit(s, SC_EV_CLOSED);
	return -1;
}

/* sc_fail_io - lost connection or timeout in the current state */
static int
sc_fail_io(struct smtp_client *s, int timeout, const char *why)
{
	if (timeout)
		sc_set_error(s, 0, "4.4.2", "conversation with %s timed out while %s",
		    s->relay, sc_states[s->state].doing);
	else if (why != NULL)
		sc_set_error(s, 0, "4.4.2", "lost connection with %s while %s: %s",
		    s->relay, sc_states[s->state].doing, why);
	else
		sc_set_error(s, 0, "4.4.2", "lost connection with %s while %s",
		    s->relay, sc_states[s->state].doing);
	return sc_fail(s);
}

/* sc_fail_reply - the server's reply ends the session (greeting, EHLO) */
static int
sc_fail_reply(struct smtp_client *s)
{
	sc_set_error_reply(s);
	return sc_fail(s);
}

/* sc_ready - settled and idle: SC_EV_READY */
static int
sc_ready(struct smtp_client *s)
{
	sc_enter(s, SC_READY);
	sc_emit(s, SC_EV_READY);
	return 0;
}

/* sc_send_ehlo - EHLO (LMTP: LHLO) with our name */
static void
sc_send_ehlo(struct smtp_client *s)
{
	s->ext = 0;
	s->size_max = 0;
	sc_send(s, "%s %s", s->lmtp ? "LHLO" : "EHLO", s->helo);
	sc_enter(s, SC_EHLO);
}

/* ------------------------------------------------------------------ */
/* reply handlers, one per state                                       */

static int
sc_on_greeting(struct smtp_client *s)
{
	if (s->reply.code != 220)
		return sc_fail_reply(s);
	s->err.answered = 1;
	sc_send_ehlo(s);
	return 0;
}

/* sc_tls_required_missing - tls.outbound required and no TLS here */
static int
sc_tls_required_missing(struct smtp_client *s, const char *how)
{
	sc_set_error(s, 0, "4.7.4", "TLS is required, but %s %s", how, s->relay);
	return sc_fail(s);
}

/* sc_after_hello - EHLO/HELO accepted: STARTTLS or ready */
static int
sc_after_hello(struct smtp_client *s)
{
	if (!s->tls_on && s->tls != TLS_OUT_NONE && (s->ext & SC_EXT_STARTTLS)) {
		sc_send(s, "STARTTLS");
		sc_enter(s, SC_STARTTLS);
		return 0;
	}
	if (!s->tls_on && s->tls == TLS_OUT_REQUIRED)
		return sc_tls_required_missing(s, "was not offered by host");
	return sc_ready(s);
}

/* sc_on_ehlo - EHLO/LHLO reply: extensions known; HELO after a 5xx */
static int
sc_on_ehlo(struct smtp_client *s)
{
	int cls = s->reply.code / 100;

	if (cls == 2)
		return sc_after_hello(s);
	/* RFC 5321 4.1.4: an old server refuses EHLO, try HELO (not LMTP) */
	if (cls == 5 && !s->lmtp && s->reply.code != 554) {
		s->ext = 0;
		sc_send(s, "HELO %s", s->helo);
		sc_enter(s, SC_HELO);
		return 0;
	}
	return sc_fail_reply(s);
}

/* sc_on_helo - HELO reply */
static int
sc_on_helo(struct smtp_client *s)
{
	if (s->reply.code / 100 != 2)
		return sc_fail_reply(s);
	return sc_after_hello(s);
}

/* sc_start_tls - stack a connecting TLS filter on the socket */
static int
sc_start_tls(struct smtp_client *s)
{
	struct bufferevent *f;
	struct evbuffer *in = bufferevent_get_input(s->bev);
	struct in6_addr a6;
	struct in_addr a4;
	SSL *ssl;

	/* RFC 3207 4.2: nothing the server sent before the handshake counts */
	evbuffer_drain(in, evbuffer_get_length(in));
	/* from now on the filter is timed, per state */
	bufferevent_set_timeouts(s->bev, NULL, NULL);
	if ((ssl = SSL_new(s->ssl_ctx)) == NULL) {
		s->err.tls_failed = 1;
		sc_set_error(s, 0, "4.7.5", "TLS with %s: cannot create session",
		    s->relay);
		return sc_fail(s);
	}
	/* SNI for names only (RFC 6066 3: not for address literals) */
	if (inet_pton(AF_INET, s->host, &a4) != 1 &&
	    inet_pton(AF_INET6, s->host, &a6) != 1 && s->host[0] != '\0')
		SSL_set_tlsext_host_name(ssl, s->host);
	f = bufferevent_openssl_filter_new(s->base, s->bev, ssl,
	    BUFFEREVENT_SSL_CONNECTING, BEV_OPT_CLOSE_ON_FREE);
	if (f == NULL) {
		SSL_free(ssl);
		s->err.tls_failed = 1;
		sc_set_error(s, 0, "4.7.5", "TLS with %s: cannot create filter",
		    s->relay);
		return sc_fail(s);
	}
	bufferevent_openssl_set_allow_dirty_shutdown(f, 1);
	s->bev = f;
	bufferevent_setcb(f, sc_readcb, sc_writecb, sc_eventcb, s);
	bufferevent_setwatermark(f, EV_WRITE, SC_BODY_LOWAT, 0);
	bufferevent_enable(f, EV_READ | EV_WRITE);
	sc_enter(s, SC_TLS);
	return 0;
}

/* sc_on_starttls - STARTTLS reply: handshake, plaintext or failure */
static int
sc_on_starttls(struct smtp_client *s)
{
	if (s->reply.code == 220)
		return sc_start_tls(s);
	if (s->tls == TLS_OUT_REQUIRED) {
		sc_set_error(s, s->reply.code, "4.7.4",
		    "TLS is required, but host %s refused to start TLS: %s",
		    s->relay, s->reply.text);
		return sc_fail(s);
	}
	/* RFC 3207 4: the session goes on in plaintext */
	log_info("smtp client relay=%s starttls refused reply=\"%s\" "
	    "continuing without TLS", s->relay, s->reply.text);
	return sc_ready(s);
}

/* sc_tls_ready - handshake done: log it, EHLO again (RFC 3207 4.2) */
static int
sc_tls_ready(struct smtp_client *s)
{
	SSL *ssl = bufferevent_openssl_get_ssl(s->bev);

	s->tls_on = 1;
	snprintf(s->tls_desc, sizeof(s->tls_desc), "%s %s",
	    SSL_get_version(ssl), SSL_get_cipher_name(ssl));
	log_info("smtp client relay=%s tls=%s cipher=%s bits=%d", s->relay,
	    SSL_get_version(ssl), SSL_get_cipher_name(ssl),
	    SSL_get_cipher_bits(ssl, NULL));
	sc_send_ehlo(s);
	return 0;
}

/* sc_abort - transaction over without a message: hand the job back,
 * RSET so that the connection can carry the next one */
static int
sc_abort(struct smtp_client *s)
{
	sc_send(s, "RSET");
	sc_enter(s, SC_RSET);
	sc_job_release(s);
	return 0;
}

/* sc_server_closing - 421 (RFC 5321 3.8): the server is going away */
static int
sc_server_closing(struct smtp_client *s)
{
	sc_set_error_reply(s);
	return sc_fail(s);
}

/* sc_send_rcpt - the next RCPT TO */
static void
sc_send_rcpt(struct smtp_client *s)
{
	sc_send(s, "RCPT TO:<%s>", s->job->rcpts[s->rcpt_sent].addr);
	s->rcpt_sent++;
}

/* sc_on_mail - MAIL reply: recipients next, or the job ends here */
static int
sc_on_mail(struct smtp_client *s)
{
	struct mta_job *job = s->job;

	s->got_reply = 1;
	if (s->reply.code / 100 == 2) {
		if (!s->pipelining)
			sc_send_rcpt(s);
		sc_enter(s, SC_RCPT);
		return 0;
	}
	/* refused sender: applies to every recipient */
	s->mail_failed = 1;
	job->mail_refused = 1;
	for (int i = 0; i < job->nrcpts; i++)
		sc_rcpt_result(&job->rcpts[i], &s->reply);
	/* SPEC 6: a 4xx to MAIL falls over to the next server */
	if (s->reply.code / 100 == 4)
		s->disp = SC_JOB_FAILOVER;
	if (s->reply.code == 421)
		return sc_server_closing(s);
	if (s->pipelining) {
		/* the RCPT and DATA replies are still coming: drain them */
		sc_enter(s, SC_RCPT);
		return 0;
	}
	return sc_abort(s);
}

/* sc_all_temp - did every recipient of job get a 4xx? */
static int
sc_all_temp(const struct mta_job *job)
{
	for (int i = 0; i < job->nrcpts; i++)
		if (job->rcpts[i].cls != MTA_TEMP)
			return 0;
	return job->nrcpts > 0;
}

/* sc_on_rcpt - RCPT reply: one recipient accepted or refused */
static int
sc_on_rcpt(struct smtp_client *s)
{
	struct mta_job *job = s->job;
	int i = s->rcpt_replied++;

	if (!s->mail_failed) {
		if (s->reply.code / 100 == 2) {
			s->rcpt_ok[i] = 1;
			s->naccepted++;
			if (job->rcpt_only)	/* the answer is the result */
				sc_rcpt_result(&job->rcpts[i], &s->reply);
		} else {
			/* a per-recipient refusal, not a failover */
			sc_rcpt_result(&job->rcpts[i], &s->reply);
		}
		if (s->reply.code == 421)
			return sc_server_closing(s);
	}
	if (s->rcpt_replied < job->nrcpts) {
		if (!s->pipelining)
			sc_send_rcpt(s);
		return 0;
	}
	/* SPEC 6: a server that defers every recipient is a 4xx like a
	 * deferred MAIL: the next server gets them in this attempt */
	if (!s->mail_failed && s->naccepted == 0 && sc_all_temp(job))
		s->disp = SC_JOB_FAILOVER;
	if (job->rcpt_only)
		return sc_abort(s);	/* the preflight asks no more */
	if (s->pipelining) {
		sc_enter(s, SC_DATA);	/* DATA went with the group */
		return 0;
	}
	if (s->naccepted == 0)
		return sc_abort(s);	/* every RCPT refused: RSET, no DATA */
	sc_send(s, "DATA");
	sc_enter(s, SC_DATA);
	return 0;
}

/* sc_body_damaged - the spool file is not what was accepted: never end
 * the data, drop the connection so that the server discards it */
static int
sc_body_damaged(struct smtp_client *s, const char *why)
{
	struct mta_job *job = s->job;

	log_warnx("%s smtp client relay=%s spool file damaged: %s", job->msgid,
	    s->relay, why);
	for (int i = 0; i < job->nrcpts; i++)
		if (s->rcpt_ok[i])
			sc_rcpt_set(&job->rcpts[i], MTA_TEMP, 0, "4.3.0",
			    "local: spool file damaged");
	sc_set_error(s, 0, "4.3.0", "local: spool file damaged");
	return sc_fail(s);
}

/* sc_body_fill - send the chunks read so far while the output is short:
 * memory stays bounded by SC_BODY_LOWAT + 2 * READAHEAD_CHUNK of output
 * plus the reader's two buffers */
static int
sc_body_fill(struct smtp_client *s)
{
	struct mta_job *job = s->job;
	struct evbuffer *out = bufferevent_get_output(s->bev);
	struct evbuffer_iovec v;
	const char *p;
	char end[8];
	ssize_t n;
	int err;

	while (evbuffer_get_length(out) < SC_BODY_LOWAT &&
	    s->body_done < job->body_size) {
		if ((n = readahead_take(s->ra, &p, &err)) == 0)
			return 0;	/* sc_body_ready when it is read */
		if (n < 0)
			return sc_body_damaged(s, err ? strerror(err) :
			    "unexpected end of file");
		s->crc = mx_crc32(s->crc, p, (size_t)n);
		if (evbuffer_reserve_space(out, (ev_ssize_t)(2 * (size_t)n), &v, 1) < 1)
			fatalx("evbuffer_reserve_space failed");
		v.iov_len = sc_dot_stuff(&s->dot, p, (size_t)n, v.iov_base);
		evbuffer_commit_space(out, &v, 1);
		s->body_done += (uint64_t)n;
	}
	if (s->body_done < job->body_size)
		return 0;	/* more when the output drains */
	if (s->crc != job->body_crc) {
		char why[64];

		snprintf(why, sizeof(why), "crc32 %08x, expected %08x",
		    (unsigned)s->crc, (unsigned)job->body_crc);
		return sc_body_damaged(s, why);
	}
	evbuffer_add(out, end, sc_dot_end(&s->dot, end));
	readahead_free(s->ra);
	s->ra = NULL;
	s->lmtp_next = 0;
	sc_enter(s, SC_DOT);
	return 0;
}

/* sc_body_ready - the reader has the chunk sc_body_fill waited for */
static void
sc_body_ready(void *arg)
{
	struct smtp_client *s = arg;

	if (s->state == SC_BODY)
		sc_body_fill(s);
}

/* sc_on_data - DATA reply: the message, or the job ends here */
static int
sc_on_data(struct smtp_client *s)
{
	struct mta_job *job = s->job;

	if (s->mail_failed || s->naccepted == 0) {
		/* pipelined DATA after a refused MAIL or all RCPTs */
		if (s->reply.code == 354) {
			sc_set_error(s, 0, "4.5.0", "protocol error with %s: "
			    "354 to DATA without recipients", s->relay);
			return sc_fail(s);
		}
		return sc_abort(s);
	}
	if (s->reply.code == 354) {
		s->ra = readahead_new(job->body_fd, job->body_off,
		    job->body_size, job->body_mem, sc_body_ready, s);
		s->crc = 0;
		s->body_done = 0;
		sc_dot_init(&s->dot);
		sc_enter(s, SC_BODY);
		return sc_body_fill(s);
	}
	for (int i = 0; i < job->nrcpts; i++)
		if (s->rcpt_ok[i])
			sc_rcpt_result(&job->rcpts[i], &s->reply);
	if (s->reply.code == 421)
		return sc_server_closing(s);
	return sc_abort(s);
}

/* sc_on_body - a reply while we are still sending: the server gave up
 * on the message (e.g. 552 over size); take it for every recipient */
static int
sc_on_body(struct smtp_client *s)
{
	struct mta_job *job = s->job;

	for (int i = 0; i < job->nrcpts; i++)
		if (s->rcpt_ok[i])
			sc_rcpt_result(&job->rcpts[i], &s->reply);
	sc_set_error_reply(s);
	return sc_fail(s);	/* the stream is out of sync: close */
}

/* sc_on_dot - reply after the dot (LMTP: one per accepted recipient) */
static int
sc_on_dot(struct smtp_client *s)
{
	struct mta_job *job = s->job;
	int i, left = 0;

	if (!s->lmtp) {
		/* SMTP: one reply for every accepted recipient */
		for (i = 0; i < job->nrcpts; i++)
			if (s->rcpt_ok[i])
				sc_rcpt_result(&job->rcpts[i], &s->reply);
	} else {
		/* RFC 2033 4.2: one reply per accepted RCPT, in order */
		for (i = s->lmtp_next; i < job->nrcpts && !s->rcpt_ok[i]; i++)
			;
		if (i < job->nrcpts) {
			sc_rcpt_result(&job->rcpts[i], &s->reply);
			s->lmtp_next = i + 1;
		}
		for (i = s->lmtp_next; i < job->nrcpts; i++)
			left += s->rcpt_ok[i];
		if (left > 0 && s->reply.code != 421)
			return 0;
	}
	if (s->reply.code == 421)
		return sc_server_closing(s);
	sc_enter(s, SC_READY);
	sc_job_release(s);
	/* the JOB handler may have sent us away (QUIT) */
	if (s->state == SC_READY)
		sc_emit(s, SC_EV_READY);
	return 0;
}

/* sc_on_rset - RSET reply: ready for the next job */
static int
sc_on_rset(struct smtp_client *s)
{
	if (s->reply.code / 100 != 2)
		return sc_fail_reply(s);
	return sc_ready(s);
}

/* sc_on_ready - an unsolicited reply while idle: 421 at an idle timeout */
static int
sc_on_ready(struct smtp_client *s)
{
	sc_set_error_reply(s);
	return sc_fail(s);
}

/* sc_on_quit - the answer to QUIT, whatever it is, ends the session: a
 * server that keeps talking does not keep the connection */
static int
sc_on_quit(struct smtp_client *s)
{
	sc_disconnect(s);
	sc_enter(s, SC_CLOSED);
	sc_emit(s, SC_EV_CLOSED);
	return -1;
}

/* sc_on_reply - dispatch a complete reply to the current state */
static int
sc_on_reply(struct smtp_client *s)
{
	log_debug("smtp client relay=%s <<< %s", s->relay, s->reply.text);
	switch (s->state) {
	case SC_GREETING:
		return sc_on_greeting(s);
	case SC_EHLO:
		return sc_on_ehlo(s);
	case SC_HELO:
		return sc_on_helo(s);
	case SC_STARTTLS:
		return sc_on_starttls(s);
	case SC_READY:
		return sc_on_ready(s);
	case SC_MAIL:
		return sc_on_mail(s);
	case SC_RCPT:
		return sc_on_rcpt(s);
	case SC_DATA:
		return sc_on_data(s);
	case SC_BODY:
		return sc_on_body(s);
	case SC_DOT:
		return sc_on_dot(s);
	case SC_RSET:
		return sc_on_rset(s);
	case SC_QUIT:
		return sc_on_quit(s);
	case SC_CONNECT:
	case SC_TLS:
	case SC_CLOSED:
		break;
	}
	sc_set_error(s, 0, "4.5.0", "protocol error with %s: unexpected reply "
	    "while %s: %s", s->relay, sc_states[s->state].doing, s->reply.text);
	return sc_fail(s);
}

/* sc_line - one reply line; keywords of the EHLO reply on the way */
static int
sc_line(struct smtp_client *s, const char *line)
{
	const char *text = NULL;
	enum sc_feed f;

	if (s->reply.done)
		sc_reply_init(&s->reply);
	f = sc_reply_feed(&s->reply, line, &text);
	if (f == SC_FEED_ERROR) {
		char shown[128];

		mx_strlcpy(shown, line, sizeof(shown));
		for (char *p = shown; *p; p++)
			if ((unsigned char)*p < 0x20 || (unsigned char)*p >= 0x7f)
				*p = '?';
		sc_set_error(s, 0, "4.5.0", "protocol error with %s: malformed "
		    "reply while %s: %s", s->relay, sc_states[s->state].doing,
		    shown);
		return sc_fail(s);
	}
	/* EHLO: the first line greets, the others are keywords */
	if (s->state == SC_EHLO && s->reply.nlines > 1 &&
	    s->reply.code / 100 == 2)
		s->ext |= sc_ehlo_keyword(text, &s->size_max);
	if (f == SC_FEED_MORE) {
		if (s->reply.nlines > SC_REPLY_LINES_MAX) {
			sc_set_error(s, 0, "4.5.0", "protocol error with %s: "
			    "reply of more than %d lines", s->relay,
			    SC_REPLY_LINES_MAX);
			return sc_fail(s);
		}
		return 0;
	}
	return sc_on_reply(s);
}

/* ------------------------------------------------------------------ */
/* libevent callbacks -> the state machine                             */

static void
sc_readcb(struct bufferevent *bev, void *arg)
{
	struct smtp_client *s = arg;
	struct evbuffer *in = bufferevent_get_input(bev);
	char *line;
	size_t n;

	while (s->state != SC_CLOSED &&
	    (line = evbuffer_readln(in, &n, EVBUFFER_EOL_CRLF)) != NULL) {
		int r = sc_line(s, line);

		free(line);
		if (r < 0)
			return;		/* s is gone */
		if (s->bev != bev)
			return;		/* STARTTLS: the filter reads now */
	}
	if (s->state != SC_CLOSED && evbuffer_get_length(in) > SC_LINE_MAX) {
		sc_set_error(s, 0, "4.5.0", "protocol error with %s: reply line "
		    "too long", s->relay);
		sc_fail(s);
	}
}

/* sc_writecb - output drained below SC_BODY_LOWAT: more of the message */
static void
sc_writecb(struct bufferevent *bev, void *arg)
{
	struct smtp_client *s = arg;

	if (s->state == SC_BODY)
		sc_body_fill(s);
}

/* sc_socket_error - the pending error of the socket under bev */
static int
sc_socket_error(struct bufferevent *bev)
{
	int e = EVUTIL_SOCKET_ERROR(), soerr = 0;
	socklen_t len = sizeof(soerr);
	evutil_socket_t fd = bufferevent_getfd(bev);

	if (fd >= 0 && getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &len) == 0 &&
	    soerr != 0)
		return soerr;
	return e;
}

/* sc_eventcb - connect, handshake, EOF, error and timeout */
static void
sc_eventcb(struct bufferevent *bev, short what, void *arg)
{
	struct smtp_client *s = arg;
	unsigned long e;
	char buf[160];

	if (what & BEV_EVENT_CONNECTED) {
		if (s->state == SC_CONNECT)
			sc_enter(s, SC_GREETING);
		else if (s->state == SC_TLS)
			sc_tls_ready(s);
		return;
	}
	if (s->state == SC_QUIT) {
		/* leaving anyway: EOF, error or timeout all end it */
		sc_disconnect(s);
		sc_enter(s, SC_CLOSED);
		sc_emit(s, SC_EV_CLOSED);
		return;
	}
	if (s->state == SC_CONNECT) {
		if (what & BEV_EVENT_TIMEOUT)
			sc_set_error(s, 0, "4.4.1", "connect to %s: Connection "
			    "timed out", s->relay);
		else
			sc_set_error(s, 0, "4.4.1", "connect to %s: %s", s->relay,
			    strerror(sc_socket_error(bev)));
		sc_fail(s);
		return;
	}
	if (s->state == SC_TLS && !(what & BEV_EVENT_TIMEOUT)) {
		e = bufferevent_get_openssl_error(bev);
		if (e != 0)
			ERR_error_string_n(e, buf, sizeof(buf));
		else
			mx_strlcpy(buf, what & BEV_EVENT_EOF ? "connection closed" :
			    strerror(sc_socket_error(bev)), sizeof(buf));
		ERR_clear_error();
		s->err.tls_failed = 1;
		sc_set_error(s, 0, "4.7.5", "TLS handshake with %s failed: %s",
		    s->relay, buf);
		sc_fail(s);
		return;
	}
	if (s->state == SC_TLS)
		s->err.tls_failed = 1;
	if (what & BEV_EVENT_TIMEOUT) {
		sc_fail_io(s, 1, NULL);
		return;
	}
	if (what & BEV_EVENT_EOF) {
		sc_fail_io(s, 0, NULL);
		return;
	}
	if (s->tls_on && (e = bufferevent_get_openssl_error(bev)) != 0) {
		ERR_error_string_n(e, buf, sizeof(buf));
		ERR_clear_error();
	} else
		mx_strlcpy(buf, strerror(sc_socket_error(bev)), sizeof(buf));
	sc_fail_io(s, 0, buf);
}

/* sc_later_cb - a failure found inside smtp_client_new, reported now */
static void
sc_later_cb(evutil_socket_t fd, short what, void *arg)
{
	struct smtp_client *s = arg;

	if (s->state == SC_CLOSED) {
		sc_emit(s, SC_EV_CLOSED);	/* smtp_client_quit before READY */
		return;
	}
	sc_fail(s);
}

/* ------------------------------------------------------------------ */
/* API                                                                 */

struct smtp_client *
smtp_client_new(const struct sc_params *p, smtp_client_cb cb, void *arg)
{
	struct smtp_client *s = xcalloc(1, sizeof(*s));

	s->base = p->base;
	s->ssl_ctx = p->ssl_ctx;
	s->tls = p->ssl_ctx != NULL ? p->tls : TLS_OUT_NONE;
	s->lmtp = p->lmtp;
	mx_strlcpy(s->helo, p->helo_name, sizeof(s->helo));
	mx_strlcpy(s->host, p->host, sizeof(s->host));
	mx_strlcpy(s->relay, p->relay, sizeof(s->relay));
	s->connect_timeout = p->connect_timeout;
	s->cb = cb;
	s->arg = arg;
	s->state = SC_CONNECT;
	s->later = event_new(s->base, -1, 0, sc_later_cb, s);
	if (s->later == NULL)
		fatalx("event_new failed");
	s->bev = bufferevent_socket_new(s->base, -1, BEV_OPT_CLOSE_ON_FREE);
	if (s->bev == NULL)
		fatalx("bufferevent_socket_new failed");
	bufferevent_setcb(s->bev, sc_readcb, sc_writecb, sc_eventcb, s);
	bufferevent_setwatermark(s->bev, EV_WRITE, SC_BODY_LOWAT, 0);
	bufferevent_enable(s->bev, EV_READ | EV_WRITE);
	sc_enter(s, SC_CONNECT);
	if (bufferevent_socket_connect(s->bev, (struct sockaddr *)(uintptr_t)p->sa,
	    (int)p->salen) < 0) {
		/* the bufferevent may have closed the socket already */
		sc_set_error(s, 0, "4.4.1", "connect to %s: %s", s->relay,
		    strerror(errno ? errno : ECONNREFUSED));
		event_active(s->later, EV_TIMEOUT, 0);
	}
	return s;
}

/* smtp_client_start - MAIL, RCPT (and DATA when pipelining) for job */
int
smtp_client_start(struct smtp_client *s, struct mta_job *job)
{
	char params[128] = "";
	size_t pl = 0;

	if (s->state != SC_READY)
		fatalx("smtp_client_start in state %s", sc_states[s->state].name);
	mx_strlcpy(job->relay, s->relay, sizeof(job->relay));
	mx_strlcpy(job->tls, s->tls_desc, sizeof(job->tls));
	for (int i = 0; i < job->nrcpts; i++)
		sc_rcpt_set(&job->rcpts[i], MTA_NOT_TRIED, 0, "", "");
	/* SPEC 7: the attempt starts with MAIL FROM, the route must still
	 * hold at that instant */
	if (job->may_start != NULL && !job->may_start(job, job->arg))
		return 0;
	if (job->nrcpts <= 0)
		return 0;
	if (job->smtputf8 && !(s->ext & SC_EXT_SMTPUTF8)) {
		char why[MTA_REPLY_MAX];

		/* RFC 6531 3.4: no downgrade */
		snprintf(why, sizeof(why), "SMTPUTF8 is required, but was not "
		    "offered by host %s", s->relay);
		for (int i = 0; i < job->nrcpts; i++)
			sc_rcpt_set(&job->rcpts[i], MTA_PERM, 0, "5.6.7", why);
		return 0;
	}
	if ((s->ext & SC_EXT_SIZE) && s->size_max > 0 && job->body_size > s->size_max) {
		char why[MTA_REPLY_MAX];

		/* RFC 1870 6: the server told its fixed limit; do not send */
		snprintf(why, sizeof(why), "message size %llu exceeds the fixed "
		    "limit %llu of host %s", (unsigned long long)job->body_size,
		    (unsigned long long)s->size_max, s->relay);
		for (int i = 0; i < job->nrcpts; i++)
			sc_rcpt_set(&job->rcpts[i], MTA_PERM, 552, "5.3.4", why);
		return 0;
	}
	if ((s->ext & SC_EXT_SIZE) && !job->rcpt_only)
		pl += (size_t)snprintf(params + pl, sizeof(params) - pl,
		    " SIZE=%llu", (unsigned long long)job->body_size);
	if (job->body_8bit) {
		if (s->ext & SC_EXT_8BITMIME)
			pl += (size_t)snprintf(params + pl, sizeof(params) - pl,
			    " BODY=8BITMIME");
		else
			/* we do no MIME downgrade (RFC 6152 3): send as is */
			log_info("%s smtp client relay=%s 8bit body sent without "
			    "8BITMIME", job->msgid, s->relay);
	}
	if (job->smtputf8)
		snprintf(params + pl, sizeof(params) - pl, " SMTPUTF8");

	s->job = job;
	s->disp = SC_JOB_FINAL;
	s->mail_failed = 0;
	s->got_reply = 0;
	s->rcpt_sent = s->rcpt_replied = s->naccepted = s->lmtp_next = 0;
	s->rcpt_ok = xcalloc((size_t)job->nrcpts, 1);
	s->pipelining = (s->ext & SC_EXT_PIPELINING) != 0;
	s->jobs++;

	sc_send(s, "MAIL FROM:<%s>%s", job->sender, params);
	job->attempted = 1;
	job->mail_refused = 0;
	if (s->pipelining) {
		/* RFC 2920 3.1: MAIL, every RCPT and DATA in one group */
		while (s->rcpt_sent < job->nrcpts)
			sc_send_rcpt(s);
		if (!job->rcpt_only)
			sc_send(s, "DATA");
	}
	sc_enter(s, SC_MAIL);
	return 1;
}

/* smtp_client_job_disp - what to do with the job handed back */
enum sc_disp
smtp_client_job_disp(const struct smtp_client *s)
{
	return s->disp;
}

/* smtp_client_quit - QUIT, then SC_EV_CLOSED */
void
smtp_client_quit(struct smtp_client *s)
{
	if (s->state == SC_QUIT || s->state == SC_CLOSED)
		return;
	if (s->state < SC_READY || s->job != NULL) {
		/* not talking yet (or mid-job): just close, CLOSED later */
		sc_set_error(s, 0, "4.4.2", "closed by us");
		sc_disconnect(s);
		s->job = NULL;
		sc_enter(s, SC_CLOSED);
		event_active(s->later, EV_TIMEOUT, 0);
		return;
	}
	sc_send(s, "QUIT");
	sc_enter(s, SC_QUIT);
	/* one deadline for the whole goodbye: a trickling server cannot
	 * reset it line by line (sc_later_cb closes the session) */
	{
		struct timeval tv = { SC_TIMEOUT_QUIT, 0 };
		evtimer_add(s->later, &tv);
	}
}

/* smtp_client_free - close at once, no more events */
void
smtp_client_free(struct smtp_client *s)
{
	if (s == NULL)
		return;
	sc_disconnect(s);
	free(s->rcpt_ok);
	event_free(s->later);
	free(s);
}

/* smtp_client_set_cb - hand the session's events to another owner */
void
smtp_client_set_cb(struct smtp_client *s, smtp_client_cb cb, void *arg)
{
	s->cb = cb;
	s->arg = arg;
}

/* smtp_client_error - why the session ended */
const struct sc_error *
smtp_client_error(const struct smtp_client *s)
{
	return &s->err;
}

/* smtp_client_ready - idle and usable? */
int
smtp_client_ready(const struct smtp_client *s)
{
	return s->state == SC_READY;
}

