/* smtp_milter.h - the milters' verdict on a received message, applied
 *
 * SPEC 5 and issue 13: nofilter recipients skip the milters. A refusal or
 * a discard therefore applies to the filtered recipients only; when the
 * transaction also has nofilter recipients the message is still queued for
 * them (the DATA reply is 250) and each refused copy is logged with the
 * milter's reason. A tempfail answers 451 for the whole message, so that
 * nothing the client was told is queued goes missing.
 */
#ifndef MX_SMTP_MILTER_H
#define MX_SMTP_MILTER_H

#include "milter.h"
#include "spool.h"

#define SMTP_MILTER_REPLY_MAX	MILTER_TEXT_MAX

/* the message and its envelope as the session holds them */
struct smtp_milter_msg {
	const char *sid;
	const char *qid;
	struct spool_msg *msg;
	char *const *rcpts;		/* canonical */
	char *const *orcpts;		/* as written, NULL when the same */
	const int *nofilter;		/* per recipient */
	int nrcpts;
	int smtputf8;
	char delimiter;			/* recipient_delimiter */
};

enum smtp_milter_step {
	SMTP_MILTER_COMMIT,	/* commit msg (its changes are attached) */
	SMTP_MILTER_DROP,	/* abort msg, reply 250 (discarded) */
	SMTP_MILTER_REFUSE,	/* abort msg, reply with reply */
};

/* smtp_milter_apply - what to do with m after the chain's verdict res
 * (taken over and freed); reply holds the refusal for SMTP_MILTER_REFUSE */
enum smtp_milter_step smtp_milter_apply(const struct smtp_milter_msg *m,
    struct milter_result *res, char *reply, size_t replylen);

#endif
