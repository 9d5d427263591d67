/* queue.h - the queue manager: per-recipient state, scheduling, retry, bounce
 *
 * Every committed message (spool hook) and every message found by the
 * spool's recovery scan is held here with the state of each recipient.
 * A recipient is due at its next attempt time; due recipients of a message
 * are routed now (route_for_rcpt, or route_for_mx for bounces), grouped by
 * route key into mta jobs, and their results recorded durably as spool
 * state records (doc/spool.md). 4xx defers on delivery.retry_schedule, 5xx
 * bounces at once, max_lifetime bounces instead of deferring; a bounce is
 * an RFC 3464 DSN enqueued as a new message from <>.
 *
 * Hosted mode (SPEC 4, 6): a due recipient of a hosted domain that is an
 * alias or an auto-CC mailbox is expanded first (expand.c); the expansion
 * is appended to the message file as one "expand" record, and its
 * children are attempted once that record is durable: mailboxes and
 * addresses of our domains by route_for_leaf, external forwards by MX with
 * an SRS sender (srs.c), loops bounced with 5.4.6. A recipient under
 * srs.domain (a bounce to a forward) is reversed and delivered by MX.
 * Loop thread only.
 */
#ifndef MX_QUEUE_H
#define MX_QUEUE_H

#include <stdint.h>
#include <sys/types.h>
#include <time.h>
#include <event2/event.h>

#include "config.h"
#include "queue_sched.h"
#include "spool.h"

#define QUEUE_JOBS_MAX		1000	/* mta jobs (and message opens) in flight */
#define QUEUE_PREREAD_MAX	(128 * 1024)	/* bodies read whole with the open:
						 * what the reader's two buffers
						 * held (bench/README.md) */
#define QUEUE_STORY_MAX		32	/* story lines kept per message: the first
					 * and the latest ones */
#define QUEUE_STORY_LINE_MAX	512
#define QUEUE_LOG_LINE_MAX	2048	/* an attempt line, as log.c's */

enum queue_rstate {
	QUEUE_R_PENDING = 0,	/* waiting for r->next (deferred when attempts > 0) */
	QUEUE_R_ACTIVE,		/* in an attempt */
	QUEUE_R_BOUNCING,	/* failed; its DSN is being enqueued */
	QUEUE_R_DELIVERED,	/* final */
	QUEUE_R_BOUNCED,	/* final */
	QUEUE_R_EXPANDED,	/* final: hosted alias or auto-CC mailbox,
				 * replaced by its children (doc/spool.md) */
	QUEUE_R_DROPPED,	/* final: a dual-delivery copy given up
				 * (delivery.copy_lifetime), never bounced */
};

struct queue_rcpt {
	char *addr;		/* canonical, without <> */
	char *orig;		/* as the client wrote it, NULL when the same */
	enum spool_rkind kind;	/* envelope recipient or expansion child */
	int parent;		/* child: index of the expanded recipient; -1 */
	int held;		/* child whose expand record is not durable yet */
	char *dest;		/* RCPT TO when not addr (a reversed SRS
				 * address), NULL otherwise */
	enum queue_rstate state;
	int attempts;		/* failed attempts so far */
	time_t next;		/* PENDING: when it is due */
	time_t last;		/* time of the last attempt, 0 when none */
	char *reply;		/* last reply or reason, NULL when none */
	int not_tried;		/* "route changed" answers in a row */
	int copied;		/* envelope recipient: its dual-delivery
				 * copies exist (a "copy" record) */
	const char *route;	/* route of the last attempt ("legacy",
				 * "hosted", "mx"), NULL before the first */
};

struct queue_job;
struct queue_bounce_item;

/* failed recipients waiting for their DSN (private to queue.c and queue_expand.c) */
struct queue_bounces {
	int n, cap;
	struct queue_bounce_item *v;
};

struct queue_msg {
	char id[SPOOL_ID_LEN + 1];
	uint64_t arrival_us;	/* from the ID: microseconds */
	time_t arrival;
	char *sender;		/* "" for <> */
	int route_mx;		/* a bounce: routed by MX to its recipient's domain */
	int body_8bit;
	int smtputf8;
	off_t body_off;
	uint64_t size;
	uint32_t crc;
	int nrcpts;
	int nlive;		/* recipients not final yet */
	struct queue_rcpt *rcpts;
	char *held;		/* quarantined by a milter: the reason; no
				 * attempt until queue_release */
	/* what happened to it since this daemon has held it, one log line
	 * each with its time (relayctl queue show); not kept across restarts */
	char **story;
	int nstory;

	/* private to queue.c and queue_expand.c */
	struct qsched_node sched;
	int opening;		/* file being opened for an attempt */
	int njobs;		/* mta jobs in flight */
	int nbounces;		/* DSNs being enqueued */
	int nexpanding;		/* expand records not durable yet */
	int fd;			/* body, while jobs run */
	char *body;		/* the whole body, read with the open when it
				 * is at most QUEUE_PREREAD_MAX octets */
	int deleted;		/* queue delete: remove when idle */
	struct queue_delete_req *del;
	struct queue_bounces bpend;	/* failed in the current attempt round */
	char *rec;		/* state records not yet handed to the spool */
	size_t reclen, reccap;
};

/* queue_init - load the spool's recovered messages, hook new commits,
 * start scheduling. After spool_init, store_open, route_init, mta_init.
 * Returns 0, or -1 with err set. */
int queue_init(struct event_base *, const struct config *, char *err, size_t errlen);
/* queue_close - stop scheduling and free everything; call mta_close()
 * first (its jobs complete as MTA_NOT_TRIED) and spool_close() after. */
void queue_close(void);

/* queue_set_config - after a reload: retry_schedule, max_lifetime and
 * hostname come from cfg from now on (the queue keeps the pointer) */
void queue_set_config(const struct config *cfg);
/* queue_inflight - recipients of domain whose delivery attempt on the route
 * with route_key has started (MAIL FROM) and has no result yet */
int queue_inflight(const char *domain, const char *route_key);

/* queue_legacy_recent - deliveries of domain's recipients to its legacy
 * servers in the last hour (domain lower case) */
int queue_legacy_recent(const char *domain);
/* queue_make_due - every deferred recipient (of domain, when not NULL) is
 * due now (queue flush, the switch); returns how many it moved */
int queue_make_due(const char *domain_or_null);
/* queue_release_domain - a hold of domain (lower case) ended: every
 * waiting recipient of its mail is due now; returns how many */
int queue_release_domain(const char *domain);
/* queue_rcpt_on_hold - no attempt may start for m's recipient i now: its
 * domain is held (relayctl domain set --hold) */
int queue_rcpt_on_hold(const struct queue_msg *m, int i);

/* Inspection and operator actions (relayctl queue ...). */

const char *queue_rstate_name(enum queue_rstate);
/* queue_find - the message of a queue ID, NULL when unknown or deleted */
const struct queue_msg *queue_find(const char *id);
/* queue_snapshot - messages with a live recipient (of domain, when not
 * NULL), sorted by ID (= arrival); *out is malloc'd; valid until the next
 * return to the loop */
size_t queue_snapshot(const char *domain, const struct queue_msg ***out);
/* queue_walk - call fn on every message with a live recipient, in no
 * order, without copying or sorting (metrics); fn must not change the queue */
typedef void (*queue_walk_fn)(const struct queue_msg *m, void *arg);
void queue_walk(queue_walk_fn fn, void *arg);
/* queue_rcpt_in_domain - is the recipient's domain domain (any case)? */
int queue_rcpt_in_domain(const char *addr, const char *domain);

/* m: NULL when the message left the queue meanwhile; e: the file's
 * envelope (client, helo, tls) or NULL when it could not be read;
 * headers: the message's header section ("" when unreadable) */
typedef void (*queue_show_fn)(const struct queue_msg *m,
    const struct spool_entry *e, const char *headers, void *arg);
/* queue_show - read the file of id on the reader worker, then call cb.
 * -1 when id is unknown (cb is not called). */
int queue_show(const char *id, queue_show_fn cb, void *arg);

/* ok: the file is gone for good; nbounced: recipients in the DSN */
/* queue_release - end the quarantine of a held message: its release
 * record is made durable, then it is scheduled at once; cb(ok, arg).
 * -1 when id is unknown or not held (cb is not called). */
typedef void (*queue_release_fn)(int ok, void *arg);
int queue_release(const char *id, queue_release_fn cb, void *arg);

typedef void (*queue_delete_fn)(int ok, int nbounced, void *arg);
/* queue_delete - remove a message; bounce: send a DSN to its sender for
 * the waiting recipients first (not for <>). Recipients in an attempt
 * right now finish it. -1 when id is unknown (cb is not called). */
int queue_delete(const char *id, int bounce, queue_delete_fn cb, void *arg);

#endif
