/* spool.h - durable message files, group commit, recovery scan
 *
 * On-disk format: doc/spool.md. A message is written to SPOOL/incoming/ID
 * while DATA arrives, then committed: renamed into SPOOL/queue/ID and made
 * durable by one sync shared by every message committed in the same batch
 * (group commit) on the spool worker thread. Only then is it acknowledged.
 */
#ifndef MX_SPOOL_H
#define MX_SPOOL_H

#include <stddef.h>
#include <stdint.h>
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
	const char *const *rcpts;
	int nrcpts;
};

/* called on the loop thread; ok = 1 when durable, 0 on failure */
typedef void (*spool_commit_fn)(struct spool_msg *, int ok, void *arg);

/* spool_init - make the directories, run the recovery scan, start the
 * commit worker. Returns 0, or -1 with err set. */
int spool_init(struct event_base *, const char *dir, char *err, size_t errlen);
void spool_close(void);

/* spool_new_id - a fresh queue ID (SPOOL_ID_LEN upper-case hex) */
void spool_new_id(char id[SPOOL_ID_LEN + 1]);

/* spool_msg_open - create incoming/ID and write the envelope header.
 * NULL on error (errno set). */
struct spool_msg *spool_msg_open(const char *id, const struct spool_envelope *);
/* spool_msg_write - append message octets (buffered); -1 on write error */
int spool_msg_write(struct spool_msg *, const char *, size_t);
/* spool_msg_commit - finish the file and commit it in the next group;
 * cb runs once it is durable (or failed); the message is freed after cb. */
void spool_msg_commit(struct spool_msg *, spool_commit_fn cb, void *arg);
/* spool_msg_abort - discard the message: nothing is queued */
void spool_msg_abort(struct spool_msg *);
/* spool_msg_detach - the session went away: keep committing, no callback */
void spool_msg_detach(struct spool_msg *);
const char *spool_msg_id(const struct spool_msg *);

/* counters for status */
int64_t spool_count_messages(void);
/* spool_domain_recipients - recipients of domain waiting in the queue */
int64_t spool_domain_recipients(const char *domain);

#endif
