/* smtp_milter.c - the milters' verdict on a received message, applied
 *
 * See smtp_milter.h. Changes to the message (headers, body, recipients)
 * are attached to the spool message and written by the spool worker before
 * the commit's sync, so the 250 covers the changed message. A recipient a
 * milter adds must pass the same relay check as a RCPT (SPEC 9: a milter
 * cannot open a relay); one that does not is refused and logged.
 */
#include "autoconf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "log.h"
#include "smtp_milter.h"
#include "smtp_parse.h"
#include "store.h"
#include "util.h"

/* the envelope being built: canonical and written forms */
struct rcpt_list {
	const char **rc;
	const char **orc;
	int n;
};

static void
rcpt_push(struct rcpt_list *l, const char *rc, const char *orc)
{
	l->rc[l->n] = rc;
	l->orc[l->n++] = orc;
}

/* rcpt_ours - may a milter add this recipient? Same rule as RCPT. Its
 * canonical form into canon. */
static int
rcpt_ours(const struct smtp_milter_msg *m, const char *addr, char *canon,
    size_t len)
{
	struct smtp_path p;
	const char *rest;
	char buf[SMTP_PATH_MAX + 3];

	if (snprintf(buf, sizeof(buf), "<%s>", addr) >= (int)sizeof(buf) ||
	    smtp_parse_path(buf, 0, m->smtputf8, &p, &rest) != PARSE_OK ||
	    *rest != '\0' || smtp_mailbox_canonical(&p.mbox, canon, len) == 0)
		return 0;
	return !p.mbox.literal && strpbrk(p.mbox.local, "%!@") == NULL &&
	    store_domain(p.mbox.domain) != NULL &&
	    store_address(canon, m->delimiter) != NULL;
}

static int
in_list(char *const *v, int n, const char *a)
{
	for (int i = 0; i < n; i++)
		if (strcasecmp(v[i], a) == 0)
			return 1;
	return 0;
}

/* edits_rewrite - spool worker: the milters' header and body changes */
static int
edits_rewrite(void *arg, int fd, off_t off, uint64_t size, spool_write_fn wr,
    void *warg)
{
	return milter_edit_apply(arg, fd, off, size, wr, warg);
}

static void
edits_free(void *arg)
{
	medits_free(arg);
	free(arg);
}

/* keep_nofilter - the recipients that skipped the milters; the others are
 * logged as refused */
static int
keep_nofilter(const struct smtp_milter_msg *m, const struct milter_result *r,
    struct rcpt_list *keep)
{
	for (int i = 0; i < m->nrcpts; i++) {
		if (m->nofilter[i]) {
			rcpt_push(keep, m->rcpts[i], m->orcpts[i]);
			continue;
		}
		log_info("%s milter rcpt %s id=%s to=<%s> milter=%s reply=\"%s\"",
		    m->sid, r->action == MILTER_DISCARD ? "discarded" : "refused",
		    m->qid, m->rcpts[i], r->by,
		    r->action == MILTER_DISCARD ? "discard" : r->reply);
	}
	return keep->n;
}

/* final_rcpts - the envelope after the milters' changes: removals apply
 * to the filtered recipients (the only ones they saw), additions must be
 * ours; returns the count, 0 when none is left */
static int
final_rcpts(const struct smtp_milter_msg *m, const struct milter_result *r,
    struct rcpt_list *out, char **canon)
{
	for (int i = 0; i < m->nrcpts; i++) {
		if (!m->nofilter[i] && in_list(r->del_rcpts, r->ndel, m->rcpts[i])) {
			log_info("%s milter rcpt removed id=%s to=<%s>", m->sid,
			    m->qid, m->rcpts[i]);
			continue;
		}
		rcpt_push(out, m->rcpts[i], m->orcpts[i]);
	}
	for (int i = 0; i < r->nadd; i++) {
		const char *a = r->add_rcpts[i];
		char c[SMTP_PATH_MAX + 1];
		int dup = 0;

		if (!rcpt_ours(m, a, c, sizeof(c))) {
			log_info("%s milter rcpt add refused id=%s to=<%s> "
			    "reason=relay", m->sid, m->qid, a);
			continue;
		}
		for (int k = 0; k < out->n; k++)
			dup |= strcasecmp(out->rc[k], c) == 0;
		if (dup)
			continue;
		log_info("%s milter rcpt added id=%s to=<%s>", m->sid, m->qid, c);
		canon[i] = xstrdup(c);
		rcpt_push(out, canon[i], strcmp(c, a) == 0 ? NULL : a);
	}
	return out->n;
}

enum smtp_milter_step
smtp_milter_apply(const struct smtp_milter_msg *m, struct milter_result *r,
    char *reply, size_t replylen)
{
	int max = m->nrcpts + r->nadd;
	struct rcpt_list l = { xcalloc((size_t)max + 1, sizeof(char *)),
	    xcalloc((size_t)max + 1, sizeof(char *)), 0 };
	char **canon = xcalloc((size_t)r->nadd + 1, sizeof(char *));
	enum smtp_milter_step step = SMTP_MILTER_COMMIT;
	struct medits *ed;

	switch (r->action) {
	case MILTER_TEMPFAIL:
		mx_strlcpy(reply, r->reply, replylen);
		step = SMTP_MILTER_REFUSE;
		goto out;
	case MILTER_REJECT:
	case MILTER_DISCARD:
		if (keep_nofilter(m, r, &l) == 0) {
			mx_strlcpy(reply, r->reply, replylen);
			step = r->action == MILTER_REJECT ? SMTP_MILTER_REFUSE :
			    SMTP_MILTER_DROP;
			goto out;
		}
		/* queued for the nofilter recipients only, unchanged */
		spool_msg_rewrite(m->msg, l.rc, l.orc, l.n, NULL, NULL, NULL);
		goto out;
	case MILTER_ACCEPT:
	case MILTER_QUARANTINE:
		break;
	}
	if (final_rcpts(m, r, &l, canon) == 0) {
		step = SMTP_MILTER_DROP;
		goto out;
	}
	if (r->edits.n == 0 && r->edits.body == NULL && r->nadd == 0 &&
	    r->ndel == 0 && r->action != MILTER_QUARANTINE)
		goto out;
	if (r->edits.n > 0 || r->edits.body != NULL) {
		ed = xcalloc(1, sizeof(*ed));
		*ed = r->edits;
		memset(&r->edits, 0, sizeof(r->edits));
		spool_msg_rewrite(m->msg, l.rc, l.orc, l.n, edits_rewrite,
		    edits_free, ed);
	} else
		spool_msg_rewrite(m->msg, l.rc, l.orc, l.n, NULL, NULL, NULL);
	if (r->action == MILTER_QUARANTINE) {
		/* held as a whole: its nofilter recipients wait too (one file) */
		log_info("%s milter quarantine id=%s milter=%s reason=\"%s\"",
		    m->sid, m->qid, r->by, r->quarantine);
		spool_msg_hold(m->msg, r->quarantine);
	}
out:
	for (int i = 0; i < r->nadd; i++)
		free(canon[i]);
	free(canon);
	free(l.rc);
	free(l.orc);
	milter_result_free(r);
	return step;
}
