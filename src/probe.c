/* probe.c - RCPT probe of the hosting before a switch (SPEC 7 preflight),
 * and of a legacy server for relayctl check (SPEC 10)
 *
 * The probe is a series of mta jobs in RCPT-only mode: MAIL FROM:<>, one
 * RCPT TO per mailbox (pipelined when the server offers it), RSET, no
 * DATA. mta takes them to hosting.destination as it takes deliveries:
 * MX and address failover, STARTTLS per tls.outbound, LMTP, the same
 * connection limits and reuse. The batches run one after the other.
 */
#include "autoconf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "mta.h"
#include "probe.h"
#include "route.h"
#include "util.h"

struct probe {
	char **addrs;
	size_t n;
	size_t batch;			/* first address of the batch in flight */
	struct route route;
	struct mta_job job;
	struct mta_rcpt rcpts[PROBE_BATCH];
	int running;			/* a job is at mta */
	int cancelled;			/* probe_cancel during a job */
	struct event *later;		/* reports a start-up error */
	probe_done_fn done;
	void *arg;
	struct probe_result res;
	size_t refcap;
};

static void
probe_free(struct probe *p)
{
	if (p->later)
		event_free(p->later);
	for (size_t i = 0; i < p->n; i++)
		free(p->addrs[i]);
	free(p->addrs);
	for (size_t i = 0; i < p->res.nrefused; i++) {
		free(p->res.refused[i].addr);
		free(p->res.refused[i].reply);
	}
	free(p->res.refused);
	free(p);
}

/* probe_finish - report and free */
static void
probe_finish(struct probe *p)
{
	log_info("probe done server=%s ok=%d accepted=%zu refused=%zu%s%s%s",
	    p->res.server[0] ? p->res.server : "-", p->res.ok, p->res.naccepted,
	    p->res.nrefused, p->res.ok ? "" : " error=\"",
	    p->res.ok ? "" : p->res.error, p->res.ok ? "" : "\"");
	p->done(&p->res, p->arg);
	probe_free(p);
}

/* refusal_add - an address the hosting did not accept, with its reply */
static void
refusal_add(struct probe *p, const struct mta_rcpt *rc)
{
	if (p->res.nrefused == p->refcap) {
		p->refcap = p->refcap ? p->refcap * 2 : 16;
		p->res.refused = xrealloc(p->res.refused,
		    p->refcap * sizeof(*p->res.refused));
	}
	p->res.refused[p->res.nrefused].addr = xstrdup(rc->addr);
	p->res.refused[p->res.nrefused].reply = xstrdup(rc->reply);
	p->res.nrefused++;
}

static void probe_job_done(struct mta_job *, void *);

/* probe_submit - the next batch of addresses to mta */
static void
probe_submit(struct probe *p)
{
	struct mta_job *job = &p->job;
	size_t k = p->n - p->batch < PROBE_BATCH ? p->n - p->batch : PROBE_BATCH;

	memset(job, 0, sizeof(*job));
	mx_strlcpy(job->msgid, "preflight", sizeof(job->msgid));
	job->sender = "";
	job->rcpt_only = 1;
	job->body_fd = -1;
	job->route = p->route;
	job->rcpts = p->rcpts;
	job->nrcpts = (int)k;
	for (size_t i = 0; i < k; i++) {
		memset(&p->rcpts[i], 0, sizeof(p->rcpts[i]));
		p->rcpts[i].addr = p->addrs[p->batch + i];
		p->rcpts[i].index = (int)i;
	}
	job->done = probe_job_done;
	job->arg = p;
	p->running = 1;
	mta_submit(job);
}

/* probe_job_done - a batch came back: count it, the next one or the end */
static void
probe_job_done(struct mta_job *job, void *arg)
{
	struct probe *p = arg;

	p->running = 0;
	if (p->cancelled) {
		probe_free(p);
		return;
	}
	if (job->relay[0])
		mx_strlcpy(p->res.server, job->relay, sizeof(p->res.server));
	mx_strlcpy(p->res.tls, job->tls, sizeof(p->res.tls));
	if (!job->attempted || job->mail_refused) {
		/* no RCPT was asked: the hosting cannot be used now */
		snprintf(p->res.error, sizeof(p->res.error), "%s%.*s",
		    job->attempted ? "MAIL FROM:<> refused: " :
		    "cannot connect: ", PROBE_ERR_MAX - 32, job->rcpts[0].reply);
		p->res.ok = 0;
		probe_finish(p);
		return;
	}
	for (int i = 0; i < job->nrcpts; i++) {
		if (job->rcpts[i].cls == MTA_OK)
			p->res.naccepted++;
		else
			refusal_add(p, &job->rcpts[i]);
	}
	p->batch += (size_t)job->nrcpts;
	if (p->batch < p->n) {
		probe_submit(p);
		return;
	}
	p->res.ok = 1;
	probe_finish(p);
}

/* probe_begin - from the loop: an error found at start, or nothing to ask */
static void
probe_begin(evutil_socket_t fd, short ev, void *arg)
{
	probe_finish(arg);
}

struct probe *
probe_start(struct event_base *base, char *const *addrs, size_t n,
    probe_done_fn done, void *arg)
{
	return probe_start_route(base, NULL, addrs, n, done, arg);
}

struct probe *
probe_start_route(struct event_base *base, const struct route *route,
    char *const *addrs, size_t n, probe_done_fn done, void *arg)
{
	struct probe *p = xcalloc(1, sizeof(*p));
	struct timeval now = { 0, 0 };
	int ok = 0;

	p->done = done;
	p->arg = arg;
	p->addrs = xcalloc(n + 1, sizeof(char *));
	for (size_t i = 0; i < n; i++)
		p->addrs[i] = xstrdup(addrs[i]);
	p->n = n;
	if (route != NULL) {
		p->route = *route;
		ok = 1;
	} else
		ok = route_for_hosting(&p->route, p->res.error,
		    sizeof(p->res.error)) == 0;
	if (ok && n > 0) {
		probe_submit(p);	/* done never runs inside mta_submit */
		return p;
	}
	p->res.ok = n == 0 && p->res.error[0] == '\0';
	p->later = evtimer_new(base, probe_begin, p);
	if (p->later == NULL)
		fatalx("probe: evtimer_new failed");
	evtimer_add(p->later, &now);
	return p;
}

void
probe_cancel(struct probe *p)
{
	if (p == NULL)
		return;
	if (p->running)
		p->cancelled = 1;	/* probe_job_done frees it */
	else
		probe_free(p);
}
