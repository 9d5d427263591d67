/* filter.c - per-session filter state: DNSBL at connect, SPF per
 * transaction, HELO syntax, and the per-recipient verdict (SPEC 5)
 *
 * Lookups start as soon as their input is known and run in the background
 * (dnsbl.c on the loop, spf.c on worker threads). A filtered recipient
 * waits for the lookups it needs; a nofilter recipient never waits. Order
 * of the checks for a filtered recipient: allow-listed clients pass; then
 * HELO syntax, DNSBL, SPF. Each lookup's result is logged once, each
 * refusal once.
 */
#include "autoconf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dnsbl.h"
#include "filter.h"
#include "log.h"
#include "smtp_parse.h"
#include "spf.h"
#include "stats.h"
#include "util.h"

#define FILTER_HELO_MAX		256
#define FILTER_ADDR_MAX		64

enum spf_state { FS_SPF_IDLE, FS_SPF_RUNNING, FS_SPF_DONE };

struct filter {
	struct event_base *base;
	const struct config *cfg;
	char sid[32];

	/* the client as the checks see it (after XCLIENT: the real one) */
	struct sockaddr_storage ss;
	char addr[FILTER_ADDR_MAX];
	char helo[FILTER_HELO_MAX];	/* sanitised */
	int helo_seen, helo_valid;

	struct dnsbl_check *dnsbl;	/* running */
	int dnsbl_known;
	struct dnsbl_verdict dv;

	struct spf_check *spf;		/* running */
	enum spf_state spf_state;
	struct spf_verdict *sv;		/* from MAIL on, while SPF runs: not
					 * in every idle session (776 octets) */
	char *sender;

	filter_wake_fn wake;		/* a RCPT waits */
	void *wake_arg;
	struct event *wait_ev;
};

static void filter_wait_expired(evutil_socket_t, short, void *);

struct filter *
filter_new(struct event_base *base, const struct config *cfg, const char *sid)
{
	struct filter *f = mx_try_calloc(1, sizeof(*f));

	if (f == NULL)
		return NULL;
	f->base = base;
	f->cfg = cfg;
	mx_strlcpy(f->sid, sid, sizeof(f->sid));
	f->dnsbl_known = 1;
	if ((f->wait_ev = evtimer_new(base, filter_wait_expired, f)) == NULL) {
		free(f);
		return NULL;
	}
	return f;
}

/* filter_unwait - forget a waiting RCPT */
static void
filter_unwait(struct filter *f)
{
	f->wake = NULL;
	f->wake_arg = NULL;
	evtimer_del(f->wait_ev);
}

/* filter_wakeup - a lookup ended: let a waiting RCPT ask again */
static void
filter_wakeup(struct filter *f)
{
	filter_wake_fn wake = f->wake;
	void *arg = f->wake_arg;

	if (wake == NULL)
		return;
	filter_unwait(f);
	wake(arg);
}

static void
filter_dnsbl_stop(struct filter *f)
{
	dnsbl_check_cancel(f->dnsbl);
	f->dnsbl = NULL;
}

static void
filter_spf_stop(struct filter *f)
{
	spf_check_cancel(f->spf);
	f->spf = NULL;
	f->spf_state = FS_SPF_IDLE;
	free(f->sender);
	f->sender = NULL;
	free(f->sv);
	f->sv = NULL;
}

void
filter_free(struct filter *f)
{
	if (f == NULL)
		return;
	filter_dnsbl_stop(f);
	filter_spf_stop(f);
	event_free(f->wait_ev);
	free(f);
}

/* --- DNSBL ---------------------------------------------------------------- */

/* filter_dnsbl_log - one line per client and lookup */
static void
filter_dnsbl_log(struct filter *f)
{
	const struct dnsbl_verdict *v = &f->dv;

	if (v->nqueries == 0)
		return;
	if (v->allowed) {
		mx_stats.dnsbl_allowed++;
		log_info("%s filter dnsbl client=%s result=allowed zone=%s", f->sid,
		    f->addr, v->allow_zone);
	} else if (v->listed) {
		mx_stats.dnsbl_listed++;
		log_info("%s filter dnsbl client=%s result=listed zone=%s code=%s",
		    f->sid, f->addr, v->zone, v->code);
	} else if (v->tempfail) {
		mx_stats.dnsbl_tempfail++;
		log_info("%s filter dnsbl client=%s result=tempfail", f->sid, f->addr);
	} else {
		mx_stats.dnsbl_clean++;
		log_info("%s filter dnsbl client=%s result=clean", f->sid, f->addr);
	}
}

static void
filter_dnsbl_done(const struct dnsbl_verdict *v, void *arg)
{
	struct filter *f = arg;

	f->dnsbl = NULL;
	f->dv = *v;
	f->dnsbl_known = 1;
	filter_dnsbl_log(f);
	filter_wakeup(f);
}

void
filter_client(struct filter *f, const struct sockaddr *sa, const char *addr)
{
	struct dnsbl_verdict now;

	filter_dnsbl_stop(f);
	filter_spf_stop(f);
	memcpy(&f->ss, sa, sa->sa_family == AF_INET6 ?
	    sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in));
	mx_strlcpy(f->addr, addr, sizeof(f->addr));
	f->helo_seen = 0;
	memset(&f->dv, 0, sizeof(f->dv));
	f->dnsbl = dnsbl_check_start(f->cfg, sa, filter_dnsbl_done, f, &now);
	f->dnsbl_known = f->dnsbl == NULL;
	if (f->dnsbl_known) {
		f->dv = now;
		filter_dnsbl_log(f);
	}
}

/* --- HELO ----------------------------------------------------------------- */

void
filter_helo(struct filter *f, const char *helo)
{
	f->helo_seen = 1;
	f->helo_valid = smtp_helo_valid(helo);
	smtp_sanitize(f->helo, sizeof(f->helo), helo);
	if (!f->helo_valid && f->cfg->helo_check)
		log_info("%s filter helo client=%s helo=<%s> result=invalid", f->sid,
		    f->addr, f->helo);
}

/* --- SPF ------------------------------------------------------------------ */

static void
filter_spf_done(const struct spf_verdict *v, void *arg)
{
	struct filter *f = arg;

	f->spf = NULL;
	*f->sv = *v;
	f->spf_state = FS_SPF_DONE;
	mx_stats.spf_results[v->result]++;
	log_info("%s filter spf client=%s identity=%s domain=%s result=%s "
	    "comment=\"%s\"", f->sid, f->addr, v->helo_identity ? "helo" : "mailfrom",
	    v->domain, spf_result_name(v->result), v->comment);
	filter_wakeup(f);
}

int
filter_mail(struct filter *f, const char *sender)
{
	filter_spf_stop(f);
	if (!f->cfg->spf_enabled)
		return 0;
	/* an allow-listed client is not checked further */
	if (f->dnsbl_known && f->dv.allowed)
		return 0;
	if ((f->sender = mx_try_strdup(sender)) == NULL ||
	    (f->sv = mx_try_calloc(1, sizeof(*f->sv))) == NULL)
		return -1;
	f->spf = spf_check_start(f->addr, f->helo, sender, filter_spf_done, f);
	if (f->spf != NULL)
		f->spf_state = FS_SPF_RUNNING;
	return 0;
}

void
filter_reset(struct filter *f)
{
	filter_spf_stop(f);
	filter_unwait(f);
}

/* --- the verdict ---------------------------------------------------------- */

/* filter_wait_expired - lookups took too long: give up on them */
static void
filter_wait_expired(evutil_socket_t fd, short ev, void *arg)
{
	struct filter *f = arg;

	if (f->dnsbl != NULL) {
		filter_dnsbl_stop(f);
		memset(&f->dv, 0, sizeof(f->dv));
		f->dv.tempfail = 1;
		f->dv.nqueries = 1;
		f->dnsbl_known = 1;
		filter_dnsbl_log(f);
	}
	if (f->spf_state == FS_SPF_RUNNING) {
		spf_check_cancel(f->spf);
		f->spf = NULL;
		memset(f->sv, 0, sizeof(*f->sv));
		f->sv->result = SPF_TEMPERROR;
		snprintf(f->sv->comment, sizeof(f->sv->comment),
		    "no answer within %d seconds", FILTER_WAIT_MAX_SECS);
		f->spf_state = FS_SPF_DONE;
		mx_stats.spf_results[SPF_TEMPERROR]++;
		log_info("%s filter spf client=%s result=temperror comment=\"%s\"",
		    f->sid, f->addr, f->sv->comment);
	}
	filter_wakeup(f);
}

static enum filter_rc
filter_wait(struct filter *f, filter_wake_fn wake, void *arg)
{
	struct timeval tv = { FILTER_WAIT_MAX_SECS, 0 };

	f->wake = wake;
	f->wake_arg = arg;
	if (!evtimer_pending(f->wait_ev, NULL))
		evtimer_add(f->wait_ev, &tv);
	return FILTER_WAIT;
}

/* filter_refuse - log and count a refusal whose reply is in reply */
static enum filter_rc
filter_refuse(struct filter *f, const char *rcpt, const char *name,
    uint64_t *counter, const char *reply)
{
	(*counter)++;
	log_info("%s filter refused to=<%s> client=%s filter=%s reply=\"%s\"",
	    f->sid, rcpt, f->addr, name, reply);
	return FILTER_REFUSE;
}

/* filter_spf_reason - the text after "SPF validation failed: " */
static const char *
filter_spf_reason(const struct spf_verdict *v)
{
	if (v->explanation[0])
		return v->explanation;
	if (v->comment[0])
		return v->comment;
	return "sender not authorized";
}

enum filter_rc
filter_rcpt(struct filter *f, const char *rcpt, int nofilter, char *reply,
    size_t replylen, filter_wake_fn wake, void *arg)
{
	const struct config *cfg = f->cfg;

	if (nofilter) {
		mx_stats.filter_nofilter++;
		return FILTER_OK;
	}
	if (!f->dnsbl_known)
		return filter_wait(f, wake, arg);
	if (f->dv.allowed)
		return FILTER_OK;
	if (cfg->helo_check && f->helo_seen && !f->helo_valid) {
		snprintf(reply, replylen, "501 5.5.2 <%s>: Helo command rejected: "
		    "Invalid HELO name", f->helo);
		return filter_refuse(f, rcpt, "helo", &mx_stats.filter_helo_refused, reply);
	}
	if (f->dv.listed) {
		snprintf(reply, replylen, "554 5.7.1 Service unavailable; client [%s] "
		    "blocked using %s", f->addr, f->dv.zone);
		return filter_refuse(f, rcpt, "dnsbl", &mx_stats.dnsbl_refused, reply);
	}
	/* Wait for SPF even when it refuses nothing: the filtered
	 * recipient's copy is to carry the Received-SPF: header. */
	if (f->spf_state == FS_SPF_RUNNING)
		return filter_wait(f, wake, arg);
	if (f->spf_state != FS_SPF_DONE || !cfg->spf_reject_fail)
		return FILTER_OK;
	if (f->sv->result == SPF_FAIL) {
		snprintf(reply, replylen, "550 5.7.23 SPF validation failed: %s",
		    filter_spf_reason(f->sv));
		return filter_refuse(f, rcpt, "spf", &mx_stats.spf_refused, reply);
	}
	if (f->sv->result == SPF_TEMPERROR) {
		/* RFC 7208 8.6: a DNS error is temporary, never a 5xx; SPEC 5
		 * gives our own trouble (a DNS timeout) 451 4.3.0, not RFC
		 * 7372's 4.7.24 */
		snprintf(reply, replylen, "451 4.3.0 SPF temporary error for %s, "
		    "try again later", f->sv->domain[0] ? f->sv->domain : "the sender");
		return filter_refuse(f, rcpt, "spf", &mx_stats.spf_deferred, reply);
	}
	return FILTER_OK;
}

size_t
filter_headers(struct filter *f, char *buf, size_t len)
{
	if (f->spf_state != FS_SPF_DONE || f->sender == NULL)
		return 0;
	return spf_headers(f->sv, f->cfg->hostname, f->addr, f->helo, f->sender,
	    buf, len);
}
