/* spool.h - durable message files, group commit, recovery scan
 *
 * On-disk format: doc/spool.md. A message is written to SPOOL/incoming/ID
 * while DATA arrives, then committed: renamed into SPOOL/queue/ID and made
 * durable by one sync shared by every message committed in the same batch
 * (group commit, through the commit journal: spool_journal.h) on the spool
 * worker thread. Only then is it acknowledged.
 */
#ifndef MX_SPOOL_H
#define MX_SPOOL_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>
#include <event2/event.h>

#define SPOOL_ID_LEN	16		/* hex digits of a queue ID */
#define SPOOL_MAGIC	"MXRELAY-SPOOL 1"
#define SPOOL_TRAILER	"MXRELAY-END"

struct spool_msg;

/* the envelope written in the message file's header */
struct spool_envelope {
	const char *client_addr;
	int client_port;
	const char *helo;		/* sanitised */
	const char *tls;		/* "TLSv1.3 CIPHER" or NULL */
	const char *sender;		/* "" for <> */
	int body_8bit;
	int smtputf8;
	const char *const *rcpts;	/* canonical */
	const char *const *orcpts;	/* as written, NULL (or NULL entries)
					 * when the same */
	int nrcpts;
	int route_mx;			/* a bounce: deliver by MX ("route mx") */
};

/* called on the loop thread; ok = 1 when durable, 0 on failure */
typedef void (*spool_commit_fn)(struct spool_msg *, int ok, void *arg);

/* spool_init - make the directories, run the recovery scan, start the
 * commit worker. Returns 0, or -1 with err set. */
int spool_init(struct event_base *, const char *dir, char *err, size_t errlen);
void spool_close(void);

/* spool_new_id - a fresh queue ID (SPOOL_ID_LEN upper-case hex) */
void spool_new_id(char id[SPOOL_ID_LEN + 1]);

/* spool_msg_open - start incoming/ID with the envelope header. No disk
 * call here: the file is created and written by the writer thread, and a
 * failure shows at commit (ok = 0, spool_msg_error). NULL only when out
 * of memory (the message's buffers are a session's: util.h mx_try_). */
/* spool_msgs_open - messages being received or committed: each may hold
 * a file descriptor (loop thread) */
int64_t spool_msgs_open(void);

struct spool_msg *spool_msg_open(const char *id, const struct spool_envelope *);
/* spool_msg_write - append message octets (buffered, written behind).
 * Returns 1 when the caller should stop feeding more until the drain
 * callback (spool_msg_on_drain) says the writer caught up, else 0; -1
 * when out of memory: the message is broken, only spool_msg_abort is
 * left to do with it. */
int spool_msg_write(struct spool_msg *, const char *, size_t);
/* called on the loop thread once fewer buffers are in flight */
typedef void (*spool_drain_fn)(void *arg);
/* spool_msg_on_drain - call fn once the writer caught up; one at a time,
 * dropped by commit and abort */
void spool_msg_on_drain(struct spool_msg *, spool_drain_fn fn, void *arg);
/* spool_msg_error - errno of the failed write, rename or sync; 0 if none */
int spool_msg_error(const struct spool_msg *);
/* spool_commit_lag_ms - how long the oldest message waiting for its
 * commit (its sync) has waited; 0 when none waits (loop thread) */
uint64_t spool_commit_lag_ms(void);
/* spool_msg_commit - finish the file and commit it in the next group;
 * cb runs once it is durable (or failed); the message is freed after cb. */
void spool_msg_commit(struct spool_msg *, spool_commit_fn cb, void *arg);
/* a change of the message made at commit, before it is durable (the
 * milters' verdict): fn reads the message (size octets at off in fd) and
 * writes the new one through wr; 0, or -1 with errno */
typedef int (*spool_write_fn)(void *warg, const char *p, size_t n);
typedef int (*spool_rewrite_fn)(void *arg, int fd, off_t off, uint64_t size,
    spool_write_fn wr, void *warg);
/* spool_msg_rewrite - before spool_msg_commit: at commit the worker writes
 * the message anew with these recipients (canonical; orcpts: their
 * written forms, NULL or NULL entries when the same) and fn's octets (fn
 * NULL: the octets as they are), then commits that file. The spool frees
 * arg with free_fn (may be NULL) once done. */
void spool_msg_rewrite(struct spool_msg *, const char *const *rcpts,
    const char *const *orcpts, int nrcpts, spool_rewrite_fn fn,
    void (*free_fn)(void *), void *arg);
/* spool_msg_hold - after spool_msg_rewrite: the file also gets a "held
 * REASON" line (quarantine: no delivery until a release record) */
void spool_msg_hold(struct spool_msg *, const char *reason);
/* spool_release_record - the record line that ends a hold, newline
 * included, into buf; its length */
size_t spool_release_record(char *buf, size_t len, time_t now);
/* spool_msg_abort - discard the message: nothing is queued */
void spool_msg_abort(struct spool_msg *);
/* spool_msg_detach - the session went away: keep committing, no callback */
void spool_msg_detach(struct spool_msg *);
const char *spool_msg_id(const struct spool_msg *);
/* spool_msg_nrcpts - its recipients (after a rewrite: the new ones) */
int spool_msg_nrcpts(const struct spool_msg *);

/* Reading messages back (doc/spool.md "File format"). */

#define SPOOL_RCPTS_MAX		100000	/* recipients of one file we accept */
#define SPOOL_REPLY_MAX		512	/* reply text kept in a state record */
#define SPOOL_HEADER_MAX	(4 * 1024 * 1024)	/* envelope block of a file */
#define SPOOL_RECORDS_MAX	(64 * 1024 * 1024)	/* state records of a file */

enum spool_rstate {
	SPOOL_R_PENDING = 0,	/* no record yet: due */
	SPOOL_R_DELIVERED,
	SPOOL_R_DEFERRED,
	SPOOL_R_BOUNCED,
	SPOOL_R_DROPPED,	/* final: a dual-delivery copy given up after
				 * delivery.copy_lifetime (never bounced) */
	SPOOL_R_EXPANDED,	/* final: replaced by the children of its
				 * "expand" record (never in a state record) */
};

/* what a recipient is: from the envelope, or a child of an expansion */
enum spool_rkind {
	SPOOL_K_RCPT = 0,	/* a recipient of the envelope (rcpt line) */
	SPOOL_K_LOCAL,		/* child: an address of ours, delivered as is by
				 * its domain's route, never expanded again */
	SPOOL_K_FWD,		/* child: external forward (MX, SRS sender) */
	SPOOL_K_LOOP,		/* child: alias loop, bounced with 5.4.6 */
	SPOOL_K_COPYL,		/* child of a "copy" record: a dual-delivery
				 * copy to its domain's legacy servers */
	SPOOL_K_COPYH,		/* ... to the hosting (a hosted mailbox) */
};

/* spool_rkind_copy - is a recipient of this kind a dual-delivery copy? */
#define spool_rkind_copy(k)	((k) == SPOOL_K_COPYL || (k) == SPOOL_K_COPYH)

#define SPOOL_CHILDREN_MAX	1000	/* children of one expand record */
#define SPOOL_ADDR_MAX		512	/* a child address, as written */

/* one child of an expansion */
struct spool_child {
	enum spool_rkind kind;
	char *addr;
};

/* one expand record: "expand PARENT FIRST TIME N KIND ADDR..." (ADDR in
 * xtext, RFC 3461 4); the children get indices FIRST .. FIRST+N-1. A
 * "copy" record has the same fields; its parent stays as it is (the
 * primary) and its children are its dual-delivery copies. */
struct spool_expand {
	int parent;
	int first;
	time_t time;
	int n;
	struct spool_child *v;
	int copy;			/* a "copy" record */
};

/* one state record: "state INDEX STATE TIME ATTEMPTS NEXT REPLY" */
struct spool_state {
	int index;
	enum spool_rstate state;
	time_t time;			/* when it happened */
	int attempts;			/* delivery attempts so far */
	time_t next;			/* deferred: next attempt; else 0 */
	char reply[SPOOL_REPLY_MAX];	/* last reply or our reason, one line */
};

struct spool_rcpt {
	char *addr;			/* canonical (smtp_mailbox_canonical), without <> */
	char *orig;			/* as the client wrote it when that differs
					 * ("orcpt" line), else NULL */
	enum spool_rkind kind;
	int parent;			/* child: the expanded recipient; else -1 */
	int copied;			/* its "copy" record exists */
	enum spool_rstate state;	/* from its last state record */
	time_t time;
	int attempts;
	time_t next;
	char *reply;			/* NULL when none */
};

/* a message file as read back: envelope, body position, recipient states */
struct spool_entry {
	char id[SPOOL_ID_LEN + 1];
	time_t arrival;
	char *sender;			/* "" for <> */
	char *client, *helo, *tls;	/* only when read with full = 1 */
	int body_8bit;
	int smtputf8;
	int route_mx;			/* "route mx": a bounce */
	off_t body_off;			/* first octet of the message */
	uint64_t body_size;
	uint32_t body_crc;		/* from the trailer */
	int nrcpts;
	struct spool_rcpt *rcpts;
	char *held;			/* "held REASON": quarantined until a
					 * "release" record; NULL when not */
};

void spool_entry_free(struct spool_entry *);

/* Pure parsing and formatting (no I/O; unit tested). */

/* spool_parse_header - the envelope block in buf. Returns its length
 * (= body_off, the empty line included), 0 when buf ends before the empty
 * line, -1 when malformed. full: also keep client/helo/tls. */
ssize_t spool_parse_header(const char *buf, size_t len, struct spool_entry *e,
    int full);
/* spool_parse_trailer - "MXRELAY-END crc32=HEX\n" at p: its length, or -1 */
ssize_t spool_parse_trailer(const char *p, size_t len, uint32_t *crc);
/* spool_parse_state - one record line (no newline): 0, or -1 if malformed */
int spool_parse_state(const char *line, size_t len, struct spool_state *st);
/* spool_format_state - the record line, newline included; its length
 * (reply control characters become spaces, long replies are cut) */
size_t spool_format_state(char *buf, size_t len, const struct spool_state *st);
/* spool_apply_records - apply every complete record line in p to e (the
 * last record of a recipient wins; an expand record marks its parent
 * expanded and appends its children); returns the octets of complete lines */
size_t spool_apply_records(struct spool_entry *e, const char *p, size_t len);
/* spool_format_expand - the expand record line, newline included,
 * malloc'd; *len its length */
char *spool_format_expand(const struct spool_expand *x, size_t *len);
/* spool_parse_expand - one expand line (no newline) into x (free it with
 * spool_expand_free): 0, or -1 if malformed */
int spool_parse_expand(const char *line, size_t len, struct spool_expand *x);
void spool_expand_free(struct spool_expand *x);
const char *spool_rkind_name(enum spool_rkind);

/* Handing messages to the queue manager (loop thread). */

/* the queue takes ownership of e */
typedef void (*spool_queued_fn)(struct spool_entry *e, void *arg);
/* spool_set_queued_hook - fn gets every message as its commit completes */
void spool_set_queued_hook(spool_queued_fn fn, void *arg);
/* spool_take_recovered - hand the messages found by the recovery scan in
 * spool_init to fn, once; returns how many */
size_t spool_take_recovered(spool_queued_fn fn, void *arg);

/* Changing queued messages: group-committed on the spool worker like new
 * messages; cb (may be NULL) runs on the loop once durable (ok = 1). */
typedef void (*spool_op_fn)(int ok, void *arg);
/* spool_append_state - append record lines (text, newline-terminated) */
void spool_append_state(const char *id, const char *text, size_t len,
    spool_op_fn cb, void *arg);
/* spool_msg_remove - unlink queue/ID; the message leaves the counters at once */
void spool_msg_remove(const char *id, spool_op_fn cb, void *arg);
/* spool_rcpt_done - a recipient (as written) reached a final state: it
 * leaves queue_recipients and spool_domain_recipients */
void spool_rcpt_done(const char *rcpt);
/* spool_rcpt_add - a recipient joined a queued message (an expansion's
 * child): it counts in queue_recipients and spool_domain_recipients */
void spool_rcpt_add(const char *rcpt);

/* Reading (any thread: the queue's reader worker). */

/* spool_open_message - queue/ID read-only; -1 with errno */
int spool_open_message(const char *id);
/* spool_read_entry - parse queue/ID from disk; NULL with errno */
struct spool_entry *spool_read_entry(const char *id, int full);
/* spool_read_headers - the message's header section (up to the empty
 * line, at most max octets, cut at a line end); malloc'd, NUL-terminated */
char *spool_read_headers(int fd, off_t body_off, uint64_t body_size,
    size_t max, size_t *len);

/* counters for status */
int64_t spool_count_messages(void);
/* spool_domain_recipients - recipients of domain waiting in the queue */
int64_t spool_domain_recipients(const char *domain);

#endif
