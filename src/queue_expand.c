/* queue_expand.c - hosted mode at delivery time (SPEC 4, 6)
 *
 * Before a message's due recipients are routed, those of a hosted domain
 * that are an alias or an auto-CC mailbox are expanded (expand.c): the
 * expansion is appended to the message file as one "expand" record, and
 * its children join the message as PENDING recipients, held until that
 * record is durable. Children are routed by their kind: mailboxes and
 * addresses of our domains by route_for_leaf, external forwards by MX with
 * an SRS sender (srs.c), loops bounced with 5.4.6. A recipient under
 * srs.domain (a bounce to a forward) is reversed and delivered by MX.
 *
 * Dual delivery (SPEC 10): an envelope recipient of a domain with --dual
 * on gets its copies at its first attempt, one "copy" record appended the
 * same way: to the legacy servers (the address as written) when its
 * primary route is the hosting, or to the hosting (its hosted mailboxes:
 * the expansion as if the domain were hosted, mailboxes only) when it is
 * the legacy servers. Copies are recipients of their own (state records,
 * retries) that never bounce (queue.c).
 * The queue's state and records stay in queue.c (queue_priv.h).
 * Loop thread only.
 */
#include "autoconf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "config.h"
#include "dict.h"
#include "expand.h"
#include "log.h"
#include "queue.h"
#include "queue_priv.h"
#include "route.h"
#include "smtp_parse.h"
#include "spool.h"
#include "srs.h"
#include "store.h"
#include "util.h"

/* our own reasons, with their enhanced status codes (RFC 3463) */
#define DSN_LOOP		"5.4.6"	/* alias (routing) loop */
#define DSN_EXPANSION		"5.2.4"	/* expansion too large */
#define DSN_NO_SRS		"4.3.5"	/* external forward without srs.* */
#define DSN_BAD_SRS		"5.7.1"	/* SRS address no longer valid */

/* Routing: recipient kinds and SRS reversal */

/* srs_ready - both srs.domain and srs.secret are set */
static int
srs_ready(void)
{
	const struct config *c = queue_cfg();

	return c->srs_domain && *c->srs_domain && c->srs_secret && *c->srs_secret;
}

/* rcpt_is_srs - an envelope recipient under srs.domain with an SRS local
 * part: a bounce (or a reply) to one of our forwards */
static int
rcpt_is_srs(const struct queue_rcpt *r)
{
	return r->kind == SPOOL_K_RCPT && srs_ready() &&
	    strcasecmp(queue_rcpt_domain(r->addr), queue_cfg()->srs_domain) ==
	    0 && srs_is_srs(r->addr);
}

/* route_srs - reverse an SRS recipient (the hash only: its age was
 * checked at RCPT) into r->dest and route that: ours by its domain's
 * route, others by MX */
static enum route_result
route_srs(struct queue_rcpt *r, struct route *rt, char *why, size_t whylen,
    const char **dsn)
{
	const char *at = strrchr(r->addr, '@');
	char local[SRS_ADDR_MAX], orig[SRS_ADDR_MAX];
	enum srs_result sr;

	snprintf(local, sizeof(local), "%.*s", (int)(at - r->addr), r->addr);
	sr = srs_reverse(queue_cfg()->srs_secret, local, time(NULL), 0, orig,
	    sizeof(orig));
	if (sr != SRS_OK) {
		snprintf(why, whylen, "%s: %s", r->addr, srs_result_name(sr));
		*dsn = DSN_BAD_SRS;
		return ROUTE_FAIL;
	}
	free(r->dest);
	r->dest = xstrdup(orig);
	if (store_domain(queue_rcpt_domain(orig)) != NULL)
		return route_for_leaf(orig, rt, why, whylen);
	route_for_mx(queue_rcpt_domain(orig), rt);
	return ROUTE_OK;
}

/* route_copy_legacy - a copy to the legacy servers of its domain,
 * whatever the domain's mode */
static enum route_result
route_copy_legacy(const struct queue_rcpt *r, struct route *rt, char *why,
    size_t whylen)
{
	const struct domain_info *d = store_domain(queue_rcpt_domain(r->addr));

	if (d == NULL) {
		snprintf(why, whylen, "domain of %s is no longer hosted here",
		    r->addr);
		return ROUTE_FAIL;
	}
	return route_for_legacy(d, rt, why, whylen);
}

/* queue_expand_route_of - the route of recipient r now; ROUTE_OK or a
 * reason (and the enhanced status code for it in *dsn, NULL: the default) */
enum route_result
queue_expand_route_of(const struct queue_msg *m, struct queue_rcpt *r,
    struct route *rt, char *why, size_t whylen, const char **dsn)
{
	*dsn = NULL;
	if (m->route_mx) {
		/* a bounce goes to the sender's domain, which is not ours */
		route_for_mx(queue_rcpt_domain(r->addr), rt);
		return ROUTE_OK;
	}
	switch (r->kind) {
	case SPOOL_K_FWD:
		if (!srs_ready()) {
			snprintf(why, whylen, "external forward to %s needs "
			    "srs.domain and srs.secret", r->addr);
			*dsn = DSN_NO_SRS;
			return ROUTE_DEFER;
		}
		route_for_mx(queue_rcpt_domain(r->addr), rt);
		return ROUTE_OK;
	case SPOOL_K_LOCAL:
		return route_for_leaf(r->addr, rt, why, whylen);
	case SPOOL_K_COPYL:
		return route_copy_legacy(r, rt, why, whylen);
	case SPOOL_K_COPYH:
		return route_for_hosting(rt, why, whylen) == 0 ? ROUTE_OK :
		    ROUTE_DEFER;
	default:
		break;
	}
	if (rcpt_is_srs(r))
		return route_srs(r, rt, why, whylen, dsn);
	return route_for_rcpt(r->addr, rt, why, whylen);
}

/* Expansion */

static char leaf_mark;		/* the value of leaf_set entries */

/* leaf_put - remember an address delivered as it is (any case) */
static int
leaf_put(struct dict *leaves, const char *addr)
{
	char *k = mx_lower(xstrdup(addr));
	int had = dict_put(leaves, k, &leaf_mark) != NULL;

	free(k);
	return had;
}

/* leaf_set - the addresses m delivers as they are: children and envelope
 * recipients that do not expand (wants[i] = 0); an expansion drops what
 * is already among them (SPEC 6: duplicates removed) */
static struct dict *
leaf_set(const struct queue_msg *m, const int *wants, int nwants)
{
	struct dict *d = dict_new();

	for (int i = 0; i < m->nrcpts; i++) {
		const struct queue_rcpt *r = &m->rcpts[i];
		if (r->state == QUEUE_R_EXPANDED || r->kind == SPOOL_K_LOOP ||
		    spool_rkind_copy(r->kind) || (i < nwants && wants[i]))
			continue;
		leaf_put(d, r->addr);
	}
	return d;
}

/* expand_children - the expansion's nodes that become recipients:
 * delivered copies not delivered by m already, and loops */
static int
expand_children(const struct expand_result *res, struct dict *leaves,
    struct spool_child *cv)
{
	int n = 0;

	for (int k = 0; k < res->n; k++) {
		const struct expand_node *nd = &res->v[k];
		enum spool_rkind kind;
		switch (nd->kind) {
		case EXPAND_MAILBOX:
		case EXPAND_UNKNOWN:
		case EXPAND_LEGACY:
			kind = SPOOL_K_LOCAL;
			break;
		case EXPAND_EXTERNAL:
			kind = SPOOL_K_FWD;
			break;
		case EXPAND_LOOP:
			kind = SPOOL_K_LOOP;
			break;
		default:
			continue;	/* aliases, duplicates */
		}
		if (kind != SPOOL_K_LOOP && leaf_put(leaves, nd->addr))
			continue;
		cv[n].kind = kind;
		cv[n].addr = nd->addr;
		n++;
	}
	return n;
}

/* children_add - x's record (expand or copy, parent set) for the next
 * write, and its children into m as PENDING recipients, held until that
 * record is durable */
static void
children_add(struct queue_msg *m, struct spool_expand *x, time_t now)
{
	char *line;
	size_t len;

	x->first = m->nrcpts;
	x->time = now;
	line = spool_format_expand(x, &len);
	queue_rec_append(m, line, len);
	free(line);
	m->rcpts = xrealloc(m->rcpts, (size_t)(m->nrcpts + x->n) * sizeof(*m->rcpts));
	for (int k = 0; k < x->n; k++) {
		struct queue_rcpt *c = &m->rcpts[m->nrcpts++];
		memset(c, 0, sizeof(*c));
		c->addr = xstrdup(x->v[k].addr);
		c->kind = x->v[k].kind;
		c->parent = x->parent;
		c->held = 1;
		c->state = QUEUE_R_PENDING;
		m->nlive++;
		spool_rcpt_add(c->addr);
	}
}

/* rcpt_expand - replace recipient i by its expansion: one expand record
 * (written with the next records), children held until it is durable */
static void
rcpt_expand(struct queue_msg *m, int i, time_t now, struct dict *leaves,
    struct queue_bounces *bl)
{
	struct expand_result res;
	struct spool_expand x;
	struct queue_rcpt *r;
	char why[QUEUE_WHY_MAX];
	int nfwd = 0, nloop = 0;

	if (route_expand(m->rcpts[i].addr, &res) < 0) {
		snprintf(why, sizeof(why), "%s expands to more than %d addresses",
		    m->rcpts[i].addr, EXPAND_NODES_MAX);
		expand_result_free(&res);
		queue_rcpt_bounce(m, i, NULL, DSN_EXPANSION, 0, why, NULL, bl);
		return;
	}
	memset(&x, 0, sizeof(x));
	x.v = xcalloc((size_t)res.n + 1, sizeof(*x.v));
	x.n = expand_children(&res, leaves, x.v);
	if (m->nrcpts + x.n > SPOOL_RCPTS_MAX) {
		snprintf(why, sizeof(why), "%s: the message would have more than "
		    "%d recipients", m->rcpts[i].addr, SPOOL_RCPTS_MAX);
		queue_rcpt_bounce(m, i, NULL, DSN_EXPANSION, 0, why, NULL, bl);
		goto out;
	}
	x.parent = i;
	children_add(m, &x, now);
	for (int k = m->nrcpts - x.n; k < m->nrcpts; k++) {
		const struct queue_rcpt *c = &m->rcpts[k];
		nfwd += c->kind == SPOOL_K_FWD;
		nloop += c->kind == SPOOL_K_LOOP;
		log_info("%s expand parent=<%s> child=<%s> kind=%s", m->id,
		    m->rcpts[i].addr, c->addr, spool_rkind_name(c->kind));
	}
	r = &m->rcpts[i];
	r->state = QUEUE_R_EXPANDED;
	r->last = now;
	m->nlive--;
	spool_rcpt_done(r->addr);
	snprintf(why, sizeof(why), "expanded to %d address%s", x.n,
	    x.n == 1 ? "" : "es");
	queue_set_reply(r, why);
	log_info("%s expand to=<%s> children=%d forwards=%d loops=%d", m->id,
	    r->addr, x.n, nfwd, nloop);
out:
	free(x.v);
	expand_result_free(&res);
}

/* copy_children - the copies of envelope recipient r of d into x->v:
 * to the legacy servers when its primary route is the hosting, else to
 * the hosting, its hosted mailboxes only (no forward, no auto-CC
 * outside). Addresses are borrowed from r or res. */
static void
copy_children(const struct queue_rcpt *r, const struct domain_info *d,
    struct expand_result *res, struct spool_expand *x)
{
	const struct addr_info *a = store_address(r->addr,
	    queue_cfg()->recipient_delimiter);

	memset(res, 0, sizeof(*res));
	if (store_address_mode(d, a) == MODE_HOSTED) {
		x->v = xcalloc(1, sizeof(*x->v));
		x->v[0].kind = SPOOL_K_COPYL;
		/* the old server owns the address as it was written */
		x->v[0].addr = r->orig ? r->orig : r->addr;
		x->n = 1;
		return;
	}
	if (route_expand_hosted(r->addr, d, res) < 0)
		res->n = 0;	/* too large to copy: the primary alone */
	x->v = xcalloc((size_t)res->n + 1, sizeof(*x->v));
	for (int k = 0; k < res->n; k++)
		if (res->v[k].kind == EXPAND_MAILBOX) {
			x->v[x->n].kind = SPOOL_K_COPYH;
			x->v[x->n++].addr = res->v[k].addr;
		}
}

/* rcpt_copy - the copies of envelope recipient i of d: one copy record
 * (written with the next records), copies held until it is durable */
static void
rcpt_copy(struct queue_msg *m, int i, time_t now, const struct domain_info *d)
{
	struct expand_result res;
	struct spool_expand x;

	memset(&x, 0, sizeof(x));
	copy_children(&m->rcpts[i], d, &res, &x);
	if (m->nrcpts + x.n > SPOOL_RCPTS_MAX)
		x.n = 0;
	x.copy = 1;
	x.parent = i;
	children_add(m, &x, now);
	m->rcpts[i].copied = 1;
	log_info("%s copy to=<%s> copies=%d route=%s", m->id, m->rcpts[i].addr,
	    x.n, x.n && x.v[0].kind == SPOOL_K_COPYL ? "legacy" : "hosted");
	free(x.v);
	expand_result_free(&res);
}

/* copy_wanted - does envelope recipient r of m need its copies now? */
static const struct domain_info *
copy_wanted(const struct queue_msg *m, int i, time_t now)
{
	const struct queue_rcpt *r = &m->rcpts[i];
	const struct domain_info *d;

	if (r->kind != SPOOL_K_RCPT || r->copied || r->state != QUEUE_R_PENDING ||
	    r->next > now || rcpt_is_srs(r) || queue_rcpt_on_hold(m, i))
		return NULL;
	d = store_domain(queue_rcpt_domain(r->addr));
	return d != NULL && d->dual ? d : NULL;
}

/* expand_durable - the expand records of m are on disk: its children may
 * be attempted */
static void
expand_durable(int ok, void *arg)
{
	struct queue_msg *m = arg;

	if (queue_closing())
		return;		/* m is gone; the records are on disk or not */
	if (!ok)
		log_warnx("%s expand record not written; delivering anyway "
		    "(a restart may expand again)", m->id);
	if (--m->nexpanding == 0)
		for (int i = 0; i < m->nrcpts; i++)
			m->rcpts[i].held = 0;
	queue_msg_sync(m);
}

/* queue_expand_msg - expand the due recipients that need it (hosted aliases
 * and auto-CC mailboxes); their records go out at once, with a callback */
void
queue_expand_msg(struct queue_msg *m, time_t now, struct queue_bounces *bl)
{
	int n0 = m->nrcpts, *wants, nexp = 0;
	struct dict *leaves = NULL;
	struct route rt;
	char why[QUEUE_WHY_MAX];

	if (m->route_mx)
		return;
	/* the copies first: their parent is the envelope recipient as it is */
	for (int i = 0; i < n0; i++) {
		const struct domain_info *d = copy_wanted(m, i, now);
		if (d != NULL) {
			rcpt_copy(m, i, now, d);
			nexp++;
		}
	}
	wants = xcalloc((size_t)n0, sizeof(int));
	for (int i = 0; i < n0; i++) {
		struct queue_rcpt *r = &m->rcpts[i];
		wants[i] = r->kind == SPOOL_K_RCPT && r->state < QUEUE_R_DELIVERED &&
		    !rcpt_is_srs(r) &&
		    route_for_rcpt(r->addr, &rt, why, sizeof(why)) == ROUTE_EXPAND;
	}
	for (int i = 0; i < n0; i++) {
		struct queue_rcpt *r = &m->rcpts[i];
		if (!wants[i] || r->state != QUEUE_R_PENDING || r->next > now)
			continue;
		if (leaves == NULL)
			leaves = leaf_set(m, wants, n0);
		rcpt_expand(m, i, now, leaves, bl);
		nexp++;
	}
	free(wants);
	if (leaves)
		dict_free(leaves, NULL);
	if (nexp == 0 || m->reclen == 0)
		return;
	/* the children wait for this: delivered before their record is
	 * durable, a crash would expand and deliver them again */
	m->nexpanding++;
	spool_append_state(m->id, m->rec, m->reclen, expand_durable, m);
	m->reclen = 0;
}

/* queue_expand_loop_bounce - a loop child fails at its first attempt
 * (5.4.6) */
void
queue_expand_loop_bounce(struct queue_msg *m, int i, struct queue_bounces *bl)
{
	struct queue_rcpt *r = &m->rcpts[i];
	char why[QUEUE_WHY_MAX];
	const char *parent = r->parent >= 0 && r->parent < m->nrcpts ?
	    m->rcpts[r->parent].addr : "?";

	snprintf(why, sizeof(why), "mail forwarding loop: alias %s is reached "
	    "again while expanding %s", r->addr, parent);
	queue_rcpt_bounce(m, i, NULL, DSN_LOOP, 0, why, NULL, bl);
}

/* queue_expand_forward_sender - MAIL FROM for the external forwards of m
 * (SRS) */
void
queue_expand_forward_sender(const struct queue_msg *m, time_t now, char *out,
    size_t len)
{
	enum srs_result sr = srs_forward(queue_cfg()->srs_secret,
	    queue_cfg()->srs_domain, m->sender, now, out, len);

	const char *at;

	if (sr != SRS_OK) {
		log_warnx("%s srs sender=<%s>: %s; forwarding with the original "
		    "sender", m->id, m->sender, srs_result_name(sr));
		mx_strlcpy(out, m->sender, len);
		return;
	}
	/* RFC 5321 4.5.3.1.1: longer local parts are allowed to fail */
	if ((at = strrchr(out, '@')) != NULL && at - out > SMTP_LOCAL_RFC_MAX)
		log_warnx("%s srs sender=<%s> local part over %d octets: some "
		    "servers may refuse bounces to it", m->id, out, SMTP_LOCAL_RFC_MAX);
}
