/* milter.h - a message through the chain of milters (filters.milters)
 *
 * One transaction per message with filtered recipients: at DATA the session
 * opens one connection to every milter of the chain and hands over the
 * envelope; the message octets follow as they arrive (headers one by one,
 * body in chunks), and at the end of data the chain's verdict comes back on
 * the loop. Every milter answers within its timeout or gets its on_error.
 * Nothing here blocks: sockets are non-blocking, output is bounded.
 */
#ifndef MX_MILTER_H
#define MX_MILTER_H

#include <stddef.h>
#include <stdint.h>
#include <event2/event.h>

#include "config.h"
#include "milter_edit.h"
#include "milter_proto.h"

#define MILTER_QUEUE_MAX	(256 * 1024)	/* unsent octets per milter
						 * before the client waits */
#define MILTER_RCPT_EDITS_MAX	100		/* recipients a milter adds
						 * or removes per message */
#define MILTER_LOG_MAX		1024
#define MILTER_EDIT_BYTES_MAX	(1024 * 1024)	/* header changes of one
						 * milter per message */

/* what the chain decided; the first milter (in order) whose verdict is
 * not accept decides, quarantine only when none refused or discarded */
enum milter_action {
	MILTER_ACCEPT,
	MILTER_REJECT,		/* reply: the milter's 5xx or ours */
	MILTER_TEMPFAIL,	/* reply: the milter's 4xx, ours, or on_error */
	MILTER_DISCARD,
	MILTER_QUARANTINE,	/* reason in quarantine */
};

struct milter_result {
	enum milter_action action;
	char reply[MILTER_TEXT_MAX];	/* REJECT, TEMPFAIL: one SMTP reply line */
	char by[64];			/* the milter that decided */
	char quarantine[MILTER_TEXT_MAX];
	struct medits edits;		/* header and body changes, in order */
	char **add_rcpts;		/* recipients the milters added */
	int nadd;
	char **del_rcpts;		/* and removed */
	int ndel;
	char log[MILTER_LOG_MAX];	/* "rspamd=accept/12ms opendkim=..." */
};

void milter_result_free(struct milter_result *);

/* what the milters are told about the client and the envelope */
struct milter_info {
	const char *sid;		/* session id, for logs */
	const char *qid;		/* the queue id ({i}) */
	const char *client_addr;	/* after XCLIENT */
	int client_port;
	const char *helo;
	const char *tls_version;	/* NULL without TLS */
	const char *tls_cipher;
	int tls_bits;
	const char *sender;		/* "" for <> */
	const char *const *rcpts;	/* the filtered recipients */
	int nrcpts;
};

struct milter_txn;
typedef void (*milter_done_fn)(void *arg, struct milter_result *res);
typedef void (*milter_drain_fn)(void *arg);

/* milter_txn_start - connect to every milter of cfg and send the envelope.
 * NULL when cfg has no milters. */
struct milter_txn *milter_txn_start(struct event_base *, const struct config *,
    const struct milter_info *);
/* milter_txn_write - message octets (CRLF lines, unstuffed). Returns 1
 * when the caller should stop feeding until the drain callback */
int milter_txn_write(struct milter_txn *, const char *p, size_t n);
/* milter_txn_on_drain - fn(arg) once every milter took its output */
void milter_txn_on_drain(struct milter_txn *, milter_drain_fn, void *arg);
/* milter_txn_end - the message ended: done(arg, res) runs on the loop
 * once every milter answered or failed (never from inside this call);
 * res belongs to the callee. The transaction frees itself after done. */
void milter_txn_end(struct milter_txn *, milter_done_fn done, void *arg);
/* milter_txn_abort - the session gave up: close everything, no callback */
void milter_txn_abort(struct milter_txn *);

/* per-milter counters for relayctl stats (loop thread) */
struct milter_stat {
	uint64_t verdicts[5];		/* by enum milter_action */
	uint64_t errors;		/* down, timeout, protocol error */
	uint64_t time_ms;		/* sum over messages */
	uint64_t messages;
};
/* milter_stat_walk - fn for every milter that saw a message since start,
 * by name (a reload keeps a name's counters) */
typedef void (*milter_stat_fn)(const char *name, const struct milter_stat *,
    void *arg);
void milter_stat_walk(milter_stat_fn fn, void *arg);
const char *milter_action_name(enum milter_action);

#endif
