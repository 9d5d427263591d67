/* mxwatch.h - the MX watch: where do a domain's MX records point?
 *
 * SPEC 10. For every domain, every switch.mx_watch_interval seconds (and
 * when relayctl check asks), the domain's MX records are asked of the
 * resolver (dns.nameservers) and of the domain's authoritative name
 * servers (found by NS lookup, asked directly on dns.authoritative_port,
 * so that the answer is no cache's). Their targets are compared with
 * server.mx_names: the "picture" is ours, mixed or other. A change of the
 * picture is kept in the store with a history row. When every record
 * first points at us, the TTL published before that moment is kept: the
 * propagation time is then first-seen + that TTL, when every cache that
 * could hold the old records has expired. Every lookup is asynchronous on
 * the loop (dns.h). Loop thread only.
 */
#ifndef MX_MXWATCH_H
#define MX_MXWATCH_H

#include <stdint.h>
#include <time.h>
#include <event2/event.h>

#include "config.h"
#include "dns.h"
#include "store.h"

#define MXW_MAX_RECS		16	/* MX records kept from one answer */
#define MXW_MAX_NS		4	/* authoritative servers asked */
#define MXW_MAX_LOOKS		64	/* domains looked at at once */
#define MXW_ZONE_UP		3	/* labels stripped looking for the NS */
#define MXW_TICK_SECS		1	/* how often due domains are started */
#define MXW_NOTE_MAX		512

struct mxw_rec {
	int pref;
	char host[DNS_NAME_MAX];	/* lower case, no trailing dot */
	uint32_t ttl;
	int ours;			/* host is one of server.mx_names */
};

/* one answer: the resolver's, or one authoritative server's */
struct mxw_answer {
	char server[DNS_NAME_MAX];	/* the NS name ("" for the resolver) */
	char addr[64];			/* the address asked ("" for the resolver) */
	enum dns_status status;
	struct mxw_rec recs[MXW_MAX_RECS];
	int nrecs;
};

/* one look at a domain */
struct mxw_view {
	char domain[DNS_NAME_MAX];
	time_t time;			/* when the answers were in */
	struct mxw_answer resolver;
	struct mxw_answer auth[MXW_MAX_NS];
	int nauth;
	enum dns_status ns_status;	/* of the NS lookup */
	enum mx_picture picture;	/* MX_UNKNOWN: only DNS trouble */
	int prev_ttl_assumed;		/* never seen other: current TTL assumed */
};

/* done - on the loop, never inside mxwatch_look; the view and the store's
 * picture (store_domain_mx) are current during the call */
typedef void (*mxwatch_fn)(const struct mxw_view *, void *arg);

int mxwatch_init(struct event_base *, const struct config *, char *err,
    size_t errlen);
/* mxwatch_set_config - after a reload (mx_names, interval) */
void mxwatch_set_config(const struct config *);
/* mxwatch_close - looks under way are dropped, their callers told with
 * an unknown picture */
void mxwatch_close(void);

/* mxwatch_look - look at domain now (joining a look under way) */
void mxwatch_look(const char *domain, mxwatch_fn done, void *arg);

/* mxwatch_propagation - the propagation time of m (0: none, the records
 * do not all point at us) */
time_t mxwatch_propagation(const struct store_mx *m);
/* mxwatch_gate - may a domain with picture m switch to hosted at now?
 * 0 yes; -1 no, with the reason (and the time it passes) in why */
int mxwatch_gate(const char *domain, const struct store_mx *m, time_t now,
    char *why, size_t len);
/* mxwatch_next - pure: the picture after a look seeing picture p with the
 * largest TTL ttl at now (MX_UNKNOWN changes nothing). *assumed is set
 * when the previous TTL was never seen and ttl is taken instead. */
struct store_mx mxwatch_next(const struct store_mx *m, enum mx_picture p,
    long ttl, time_t now, int *assumed);

#endif
