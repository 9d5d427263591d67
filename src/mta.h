/* mta.h - outbound delivery: destinations, connections, SMTP/LMTP sessions
 *
 * The queue hands over jobs: one message, some of its recipients, one
 * route. mta resolves the route's hops (MX, then A/AAAA), keeps at most
 * delivery.max_connections_per_destination connections per route key,
 * reuses idle ones, backs off a destination that keeps failing, and
 * reports one result per recipient. Loop thread only.
 */
#ifndef MX_MTA_H
#define MX_MTA_H

#include <stdint.h>
#include <sys/types.h>
#include <event2/event.h>

#include "config.h"
#include "route.h"

#define MTA_REPLY_MAX	512
#define MTA_RELAY_MAX	320

enum mta_class {
	MTA_NOT_TRIED = 0,	/* not attempted: the route changed before MAIL (retry at once) */
	MTA_OK,			/* 2xx: delivered */
	MTA_TEMP,		/* 4xx, connection trouble, destination backed off: defer */
	MTA_PERM,		/* 5xx: bounce */
};

struct mta_rcpt {
	const char *addr;	/* as it goes into RCPT TO (caller's memory) */
	int index;		/* the caller's recipient index */
	/* result, filled by mta */
	enum mta_class cls;
	int code;		/* SMTP reply code, 0 when none */
	char status[16];	/* enhanced status "4.4.1" (made up from code when absent) */
	char reply[MTA_REPLY_MAX];/* the downstream's reply text, or our reason */
};

struct mta_job;
typedef void (*mta_done_fn)(struct mta_job *, void *arg);
/* called right before MAIL FROM is sent for this job (new or reused
 * connection): return 0 to give up the job with every recipient
 * MTA_NOT_TRIED (e.g. the domain was switched meanwhile). */
typedef int (*mta_may_start_fn)(struct mta_job *, void *arg);

struct mta_job {
	/* in: set by the caller */
	char msgid[32];
	const char *sender;	/* "" for <> */
	int body_8bit;
	int smtputf8;
	int body_fd;		/* open spool file (read with pread) */
	const char *body_mem;	/* or NULL: the whole body, in memory */
	off_t body_off;		/* first octet of the message in it */
	uint64_t body_size;
	uint32_t body_crc;	/* CRC-32 of the body: checked while sending */
	struct route route;
	struct mta_rcpt *rcpts;
	int nrcpts;
	int rcpt_only;		/* the switch's preflight: MAIL, RCPTs, RSET;
				 * no DATA. An accepted RCPT is MTA_OK */
	mta_may_start_fn may_start;
	mta_done_fn done;
	void *arg;

	/* out: set by mta before done runs */
	int attempted;		/* MAIL FROM was sent */
	int mail_refused;	/* MAIL FROM got no 2xx (the last server) */
	char relay[MTA_RELAY_MAX]; /* "HOST[IP]:PORT" of the last server talked to */
	char tls[128];		/* "TLSv1.3 TLS_AES_256_GCM_SHA384" or "" */

	/* private to mta */
	struct mta_job *next;
};

int mta_init(struct event_base *, const struct config *, char *err, size_t errlen);
/* mta_submit - deliver job; done runs exactly once, never from inside
 * mta_submit itself. */
void mta_submit(struct mta_job *);
/* mta_reload - use cfg from now on (limits, timeouts, tls.outbound) */
void mta_reload(const struct config *);
/* mta_close - drop connections; pending jobs complete as MTA_NOT_TRIED */
void mta_close(void);

#endif
