/* filter.h - a session's filter verdicts: DNSBL, SPF, HELO syntax
 *
 * The session tells the filter what it learns (client address at connect
 * and XCLIENT, HELO, MAIL FROM); lookups start at once in the background.
 * At RCPT the session asks for the verdict of a recipient: nofilter
 * recipients always pass; for the others the filter may need to wait for
 * a lookup, and then calls the session back (SPEC 5: verdicts applied per
 * recipient so that nofilter recipients still get their mail).
 */
#ifndef MX_FILTER_H
#define MX_FILTER_H

#include <stddef.h>
#include <sys/socket.h>
#include <event2/event.h>

#include "config.h"

#define FILTER_WAIT_MAX_SECS	60	/* a RCPT waits no longer for lookups */
#define FILTER_REPLY_MAX	512

enum filter_rc {
	FILTER_OK,		/* accept the recipient */
	FILTER_REFUSE,		/* reply holds the refusal */
	FILTER_WAIT,		/* a lookup is running: wake will be called */
};

struct filter;
typedef void (*filter_wake_fn)(void *arg);

/* filter_new - for session sid (a copy is kept); NULL when out of memory */
struct filter *filter_new(struct event_base *, const struct config *,
    const char *sid);
void filter_free(struct filter *);

/* filter_client - the client's address: at connect and after XCLIENT
 * (restarts the DNSBL lookups; forgets the SPF result) */
void filter_client(struct filter *, const struct sockaddr *sa, const char *addr);
/* filter_helo - the HELO/EHLO argument as sent (checked for syntax) */
void filter_helo(struct filter *, const char *helo);
/* filter_mail - a transaction starts: SPF of sender ("" for <>); 0, or
 * -1 when out of memory (the session is closed with 421) */
int filter_mail(struct filter *, const char *sender);
/* filter_reset - the transaction ended: cancel its lookups and any wait */
void filter_reset(struct filter *);

/* filter_rcpt - the verdict for one recipient (rcpt for logs). On
 * FILTER_WAIT, wake(arg) runs on the loop once the verdict can be given;
 * then call filter_rcpt again. */
enum filter_rc filter_rcpt(struct filter *, const char *rcpt, int nofilter,
    char *reply, size_t replylen, filter_wake_fn wake, void *arg);

/* filter_headers - trace headers of the filters (Received-SPF:,
 * Authentication-Results:) for the message, into buf; returns the length
 * (0: none, the SPF result is not known yet or SPF is off) */
size_t filter_headers(struct filter *, char *buf, size_t len);

#endif
