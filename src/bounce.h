/* bounce.h - delivery status notifications (RFC 3464) for failed recipients
 *
 * Pure text building: the queue reads the original headers, fills a
 * bounce_info and enqueues the result as a new message from <>.
 */
#ifndef MX_BOUNCE_H
#define MX_BOUNCE_H

#include <stddef.h>
#include <time.h>

#define BOUNCE_HEADERS_MAX	(64 * 1024)	/* original headers returned */

/* one failed recipient */
struct bounce_rcpt {
	const char *addr;	/* the recipient (canonical), without <> */
	const char *status;	/* "5.1.1" */
	const char *remote_mta;	/* host name of the server that refused, or NULL */
	int code;		/* its SMTP reply code; 0: the failure is ours */
	const char *reply;	/* its reply text ("550 5.1.1 ..."), or our reason */
	const char *reason;	/* why it failed when reply is only the last
				 * error (delivery time expired), or NULL */
	const char *orig;	/* the envelope recipient as the client wrote
				 * it (RFC 3464 2.3.1), or NULL */
};

struct bounce_info {
	const char *hostname;	/* Reporting-MTA, From: MAILER-DAEMON@ */
	const char *dsn_id;	/* queue ID of the DSN: Message-ID, boundary */
	const char *orig_id;	/* queue ID of the failed message */
	const char *orig_sender;/* To: of the DSN */
	time_t arrival;		/* of the failed message */
	time_t now;		/* Date: */
	const struct bounce_rcpt *rcpts;
	int nrcpts;
	const char *headers;	/* the original header section, CRLF lines */
	size_t headers_len;
};

/* bounce_build - the whole DSN message (header and body, CRLF line ends);
 * malloc'd, NUL-terminated, length in *len. *is_8bit tells whether it
 * holds octets above 127 (8BITMIME needed). */
char *bounce_build(const struct bounce_info *, size_t *len, int *is_8bit);
/* bounce_date - an RFC 5322 date-time of t in local time */
void bounce_date(time_t t, char *buf, size_t len);
/* bounce_relay_host - "HOST" from a relay "HOST[IP]:PORT" (NULL or "" -> 0) */
int bounce_relay_host(const char *relay, char *host, size_t len);

#endif
