/* dnsbl.c - DNS blocklists (RFC 5782) queried on the loop
 *
 * One A query per zone, all sent at connect time; the check completes when
 * every zone answered (or dns.c gave up on it). A zone that does not
 * answer is logged and counts as "not listed": a blocklist outage must not
 * stop mail.
 */
#include "autoconf.h"

#include <arpa/inet.h>
#include <arpa/nameser.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dns.h"
#include "dnsbl.h"
#include "log.h"
#include "util.h"

/* 127.255.255.0/24: what Spamhaus and others answer to refused queries */
#define DNSBL_ERROR_NET		0x7fffff00U
#define DNSBL_ERROR_MASK	0xffffff00U

struct dnsbl_query {
	struct dnsbl_check *check;
	struct dns_req *req;		/* NULL once answered */
	const char *zone;		/* the config's string */
	const struct dnsbl_match *match;
	int allow;			/* an allow zone */
	int hit;
	struct in_addr code;
};

struct dnsbl_check {
	struct dnsbl_query *q;		/* one per zone */
	int nq, pending;
	dnsbl_done_fn done;
	void *arg;
};

/* dnsbl_query_name - see dnsbl.h */
int
dnsbl_query_name(const struct sockaddr *sa, const char *zone, char *buf,
    size_t len)
{
	static const char hex[] = "0123456789abcdef";
	const unsigned char *b;
	char rev[72], *p = rev;
	int n;

	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *sin = (const struct sockaddr_in *)sa;
		b = (const unsigned char *)&sin->sin_addr;
	} else if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)sa;
		b = sin6->sin6_addr.s6_addr;
		if (!IN6_IS_ADDR_V4MAPPED(&sin6->sin6_addr)) {
			/* RFC 5782 2.4: nibbles, least significant first */
			for (int i = 15; i >= 0; i--) {
				*p++ = hex[b[i] & 0xf];
				*p++ = '.';
				*p++ = hex[b[i] >> 4];
				*p++ = '.';
			}
			*p = '\0';
			goto out;
		}
		b += 12;
	} else
		return -1;
	snprintf(rev, sizeof(rev), "%u.%u.%u.%u.", b[3], b[2], b[1], b[0]);
out:
	n = snprintf(buf, len, "%s%s", rev, zone);
	return n < 0 || (size_t)n >= len ? -1 : 0;
}

/* dnsbl_code_listed - see dnsbl.h */
int
dnsbl_code_listed(const struct dnsbl_match *m, struct in_addr a)
{
	uint32_t h = ntohl(a.s_addr);

	if (m != NULL && m->ncodes > 0) {
		for (int i = 0; i < m->ncodes; i++)
			if (m->codes[i].s_addr == a.s_addr)
				return 1;
		return 0;
	}
	return (h >> 24) == 127 && (h & DNSBL_ERROR_MASK) != DNSBL_ERROR_NET;
}

/* dnsbl_finish - every zone answered: the verdict, in config order */
static void
dnsbl_finish(struct dnsbl_check *c)
{
	struct dnsbl_verdict v;

	memset(&v, 0, sizeof(v));
	v.nqueries = c->nq;
	for (int i = 0; i < c->nq; i++) {
		struct dnsbl_query *q = &c->q[i];

		if (q->hit < 0)
			v.tempfail = 1;
		if (q->hit <= 0)
			continue;
		if (q->allow && !v.allowed) {
			v.allowed = 1;
			mx_strlcpy(v.allow_zone, q->zone, sizeof(v.allow_zone));
		} else if (!q->allow && !v.listed) {
			v.listed = 1;
			mx_strlcpy(v.zone, q->zone, sizeof(v.zone));
			inet_ntop(AF_INET, &q->code, v.code, sizeof(v.code));
		}
	}
	c->done(&v, c->arg);
	free(c->q);
	free(c);
}

/* dnsbl_answer - one zone's answer (loop) */
static void
dnsbl_answer(const struct dns_answer *a, void *arg)
{
	struct dnsbl_query *q = arg;
	struct dnsbl_check *c = q->check;

	q->req = NULL;
	if (a == NULL || a->status == DNS_TEMPFAIL || a->status == DNS_PERMFAIL) {
		log_info("dnsbl zone=%s status=%s: not used for this client", q->zone,
		    a ? dns_status_name(a->status) : "error");
		q->hit = -1;
	} else if (a->status == DNS_OK) {
		for (int i = 0; i < a->nrr; i++) {
			const struct dns_rr *r = &a->rr[i];
			if (r->type == ns_t_a && r->addr.family == AF_INET &&
			    dnsbl_code_listed(q->match, r->addr.a.v4)) {
				q->hit = 1;
				q->code = r->addr.a.v4;
				break;
			}
		}
	}
	if (--c->pending == 0)
		dnsbl_finish(c);
}

/* dnsbl_add - queue one zone's query into c */
static void
dnsbl_add(struct dnsbl_check *c, const struct sockaddr *sa, const char *zone,
    const struct dnsbl_match *m, int allow)
{
	struct dnsbl_query *q = &c->q[c->nq];
	char name[DNS_NAME_MAX];

	q->check = c;
	q->zone = zone;
	q->match = m;
	q->allow = allow;
	c->nq++;
	if (dnsbl_query_name(sa, zone, name, sizeof(name)) < 0) {
		q->hit = -1;
		return;
	}
	c->pending++;
	if ((q->req = dns_query(name, ns_t_a, dnsbl_answer, q)) == NULL) {
		c->pending--;
		q->hit = -1;
	}
}

struct dnsbl_check *
dnsbl_check_start(const struct config *cfg, const struct sockaddr *sa,
    dnsbl_done_fn done, void *arg, struct dnsbl_verdict *now)
{
	struct dnsbl_check *c;

	memset(now, 0, sizeof(*now));
	if (cfg->ndnsbl_zones + cfg->ndnsbl_allow_zones == 0)
		return NULL;
	c = xcalloc(1, sizeof(*c));
	c->q = xcalloc((size_t)(cfg->ndnsbl_zones + cfg->ndnsbl_allow_zones),
	    sizeof(*c->q));
	c->done = done;
	c->arg = arg;
	/* Allow zones first: an allow-listed client needs nothing else. */
	for (int i = 0; i < cfg->ndnsbl_allow_zones; i++)
		dnsbl_add(c, sa, cfg->dnsbl_allow_zones[i], &cfg->dnsbl_allow_match[i], 1);
	for (int i = 0; i < cfg->ndnsbl_zones; i++)
		dnsbl_add(c, sa, cfg->dnsbl_zones[i], &cfg->dnsbl_match[i], 0);
	if (c->pending == 0) {
		/* nothing could be asked: the verdict is known now */
		now->nqueries = c->nq;
		now->tempfail = 1;
		free(c->q);
		free(c);
		return NULL;
	}
	return c;
}

void
dnsbl_check_cancel(struct dnsbl_check *c)
{
	if (c == NULL)
		return;
	for (int i = 0; i < c->nq; i++)
		if (c->q[i].req != NULL)
			dns_cancel(c->q[i].req);
	free(c->q);
	free(c);
}
