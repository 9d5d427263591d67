/* smtp_server.h - the inbound ESMTP server: listeners and sessions */
#ifndef MX_SMTP_SERVER_H
#define MX_SMTP_SERVER_H

#include <stddef.h>
#include <event2/event.h>
#include <openssl/ssl.h>

#include "config.h"

#define SMTP_MAX_ERRORS		50	/* 5xx replies in a session before 421 */
#define SMTP_OUTPUT_MAX		(256 * 1024) /* unread replies before we stop reading */
#define SMTP_HELO_MAX		255

struct smtp_server;

/* smtp_server_new - bind every server.listen address. Binding happens
 * before privileges are dropped. The server owns tls from then on.
 * NULL with err set on failure. */
struct smtp_server *smtp_server_new(struct event_base *, const struct config *,
    SSL_CTX *tls, char *err, size_t errlen);
/* smtp_server_start - begin accepting connections */
void smtp_server_start(struct smtp_server *);
/* smtp_server_reload - new limits and filter settings for every session from
 * its next command on; tls (may be NULL) for the next STARTTLS. The
 * server takes tls and frees the old context (established TLS sessions
 * keep theirs). */
void smtp_server_reload(struct smtp_server *, const struct config *, SSL_CTX *tls);
/* smtp_server_stop - stop accepting; 421 to every session, after the
 * 250 of a message being committed */
void smtp_server_stop(struct smtp_server *);
/* smtp_server_nsessions - sessions still open (closing ones included) */
int smtp_server_nsessions(const struct smtp_server *);
/* smtp_server_free - close listeners and every session */
void smtp_server_free(struct smtp_server *);

#endif
