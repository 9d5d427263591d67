/* queue_priv.h - what queue.c (state, scheduling, records, bounces) and
 * queue_expand.c (hosted mode: expansion, SRS) share; not for other
 * modules. The queue's state stays private to queue.c: queue_expand.c
 * reads it through queue_cfg() and queue_closing(). Loop thread only.
 */
#ifndef MX_QUEUE_PRIV_H
#define MX_QUEUE_PRIV_H

#include <stddef.h>
#include <time.h>

#include "config.h"
#include "queue.h"
#include "route.h"

#define QUEUE_WHY_MAX		256	/* our own reasons, as text */

/* queue.c */

/* queue_cfg - the configuration in force (queue_set_config) */
const struct config *queue_cfg(void);
/* queue_closing - queue_close has begun: late callbacks let go */
int queue_closing(void);
/* queue_rcpt_domain - the domain part of an address as written */
const char *queue_rcpt_domain(const char *addr);
/* queue_rec_append - record text for the next write to the message file */
void queue_rec_append(struct queue_msg *m, const char *text, size_t n);
/* queue_set_reply - recipient r's last reply or reason (NULL or "": none) */
void queue_set_reply(struct queue_rcpt *r, const char *reply);
/* queue_rcpt_bounce - log the failure of recipient i and queue it in bl
 * for a DSN */
void queue_rcpt_bounce(struct queue_msg *m, int i, const char *relay,
    const char *dsn, int code, const char *reply, const char *reason,
    struct queue_bounces *bl);
/* queue_msg_sync - after any change: write the records, remove the
 * message when nothing is left to do, otherwise (re)schedule it */
void queue_msg_sync(struct queue_msg *m);

/* queue_expand.c */

/* queue_expand_msg - expand the due recipients of m that need it (hosted
 * aliases and auto-CC mailboxes); failures join bl. The expand records go
 * out at once; the children stay held until they are durable. */
void queue_expand_msg(struct queue_msg *m, time_t now,
    struct queue_bounces *bl);
/* queue_expand_route_of - the route of recipient r of m now: ROUTE_OK, or
 * a reason in why and its enhanced status code in *dsn (NULL: the
 * default); sets r->dest for a reversed SRS address */
enum route_result queue_expand_route_of(const struct queue_msg *m,
    struct queue_rcpt *r, struct route *rt, char *why, size_t whylen,
    const char **dsn);
/* queue_expand_loop_bounce - loop child i fails at its first attempt
 * (5.4.6); it joins bl */
void queue_expand_loop_bounce(struct queue_msg *m, int i,
    struct queue_bounces *bl);
/* queue_expand_forward_sender - MAIL FROM for the external forwards of m:
 * the SRS address, or the original sender when that cannot be made */
void queue_expand_forward_sender(const struct queue_msg *m, time_t now,
    char *out, size_t len);

#endif
