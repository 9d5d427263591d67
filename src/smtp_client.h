/* smtp_client.h - one outbound SMTP/LMTP session (RFC 5321, RFC 2033)
 *
 * A session is one connection to one server address: connect, greeting,
 * EHLO/LHLO (HELO fallback), STARTTLS per tls.outbound, then any number of
 * transactions, one job at a time, until QUIT. mta.c owns sessions and
 * decides which address to try and which job to run; the session reports
 * three events: READY (idle, give it a job), JOB (the job is handed back,
 * results filled), CLOSED (gone: free it). Loop thread only.
 *
 * The pure parts (reply parsing, EHLO keywords, dot-stuffing, CRC-32) are
 * exported for the unit tests.
 */
#ifndef MX_SMTP_CLIENT_H
#define MX_SMTP_CLIENT_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <event2/event.h>
#include <openssl/ssl.h>

#include "config.h"
#include "mta.h"

/* RFC 5321 4.5.3.2 client timeouts, seconds */
#define SC_TIMEOUT_GREETING	300
#define SC_TIMEOUT_EHLO		300	/* "MAIL" class: other commands */
#define SC_TIMEOUT_MAIL		300
#define SC_TIMEOUT_RCPT		300
#define SC_TIMEOUT_DATA_INIT	120
#define SC_TIMEOUT_DATA_BLOCK	180
#define SC_TIMEOUT_DATA_TERM	600
#define SC_TIMEOUT_STARTTLS	300	/* 220 and the handshake */
#define SC_TIMEOUT_RSET		300
#define SC_TIMEOUT_QUIT		5	/* we are leaving: do not wait long */

#define SC_LINE_MAX		4096	/* a reply line (RFC 5321 4.5.3.1.5: 512) */
#define SC_REPLY_LINES_MAX	200	/* lines of one multi-line reply */
#define SC_BODY_LOWAT		(64 * 1024)	/* refill output below this */

/* ---- pure parts ---- */

/* one (possibly multi-line) server reply, fed line by line */
struct sc_reply {
	int code;		/* 0 until the first line is seen */
	int nlines;
	int done;
	char status[16];	/* enhanced status of the first line, "" if none */
	char text[MTA_REPLY_MAX]; /* "CODE text text..." sanitised, capped */
	size_t len;
};

enum sc_feed {
	SC_FEED_MORE,		/* continuation line: more to come */
	SC_FEED_DONE,		/* last line: the reply is complete */
	SC_FEED_ERROR,		/* not a reply line (or code changed) */
};

void sc_reply_init(struct sc_reply *);
/* sc_reply_feed - add one line (no CRLF). The text after the code of
 * each line is in *linetext (for EHLO keywords). */
enum sc_feed sc_reply_feed(struct sc_reply *, const char *line,
    const char **linetext);
/* sc_status_parse - the enhanced status code (RFC 3463) at the start of
 * text when its class matches code's first digit: copied to status, the
 * return is its length (0: none). */
size_t sc_status_parse(const char *text, int code, char *status, size_t len);
/* sc_status_make - status from the reply, or made up "X.0.0" */
void sc_status_make(int code, const char *parsed, char *status, size_t len);

/* EHLO keywords we use (RFC 5321 4.1.1.1, 2920, 1870, 6152, 3207, 6531,
 * 2034) */
#define SC_EXT_PIPELINING	0x01
#define SC_EXT_SIZE		0x02
#define SC_EXT_8BITMIME		0x04
#define SC_EXT_STARTTLS		0x08
#define SC_EXT_SMTPUTF8		0x10
#define SC_EXT_ENHANCED		0x20

/* sc_ehlo_keyword - the SC_EXT_ bit of one EHLO line's text ("SIZE
 * 1000000"), 0 when unknown; *size gets SIZE's argument (0: no limit) */
int sc_ehlo_keyword(const char *linetext, uint64_t *size);

/* the message stream: bare LF -> CRLF, leading dot doubled (RFC 5321
 * 4.5.2). out must hold 2 * n octets. */
struct sc_dot {
	int bol;		/* at the beginning of a line */
	int cr;			/* last octet was CR */
};
void sc_dot_init(struct sc_dot *);
size_t sc_dot_stuff(struct sc_dot *, const char *in, size_t n, char *out);
/* sc_dot_end - the terminator: CRLF first when the last line was not
 * ended (or only by CR), then ".\r\n". out must hold 6 octets. */
size_t sc_dot_end(struct sc_dot *, char *out);


/* ---- sessions ---- */

struct smtp_client;

enum sc_event {
	SC_EV_READY,	/* idle and usable: smtp_client_start() may be called */
	SC_EV_JOB,	/* the job is handed back, results filled; see
			 * smtp_client_job_disp(). Never free the session here. */
	SC_EV_CLOSED,	/* the connection is gone or never was: see
			 * smtp_client_error(), then smtp_client_free() it */
};

enum sc_disp {
	SC_JOB_FINAL,	/* results are final */
	SC_JOB_FAILOVER,/* 4xx to MAIL (results TEMP): may try the next server */
	SC_JOB_REQUEUE,	/* reused connection lost before any reply to MAIL:
			 * nothing reached the server, retry elsewhere */
};

typedef void (*smtp_client_cb)(struct smtp_client *, enum sc_event, void *arg);

/* what one session needs to know */
struct sc_params {
	struct event_base *base;
	SSL_CTX *ssl_ctx;
	enum tls_outbound tls;	/* TLS_OUT_NONE for the no-TLS retry */
	int lmtp;
	const char *helo_name;
	int connect_timeout;
	const char *host;	/* server name (SNI, relay) */
	const struct sockaddr *sa;
	socklen_t salen;
	const char *relay;	/* "HOST[IP]:PORT" for logs and job->relay */
};

/* why a session ended */
struct sc_error {
	int code;		/* reply code, 0 for connection trouble */
	char status[16];
	char text[MTA_REPLY_MAX];
	int tls_failed;		/* the TLS handshake failed (retry without) */
	int answered;		/* the server greeted us with 220 */
	int perm;		/* the failure is permanent (5xx), for logs */
};

/* smtp_client_new - start connecting; every outcome arrives as an event
 * (never from inside this call). */
struct smtp_client *smtp_client_new(const struct sc_params *, smtp_client_cb,
    void *arg);
/* smtp_client_start - run job on a READY session. Calls job->may_start
 * first. Returns 1 when started (SC_EV_JOB follows), 0 when the job was
 * finished at once without a word to the server (results set: may_start
 * said no -> MTA_NOT_TRIED; SMTPUTF8 needed but not offered -> MTA_PERM
 * 5.6.7); the session stays READY. */
int smtp_client_start(struct smtp_client *, struct mta_job *);
enum sc_disp smtp_client_job_disp(const struct smtp_client *);
/* smtp_client_quit - say QUIT and close; SC_EV_CLOSED follows */
void smtp_client_quit(struct smtp_client *);
/* smtp_client_free - close at once; no more events */
void smtp_client_free(struct smtp_client *);
void smtp_client_set_cb(struct smtp_client *, smtp_client_cb, void *arg);
const struct sc_error *smtp_client_error(const struct smtp_client *);
int smtp_client_ready(const struct smtp_client *);

#endif
