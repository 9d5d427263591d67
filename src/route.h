/* route.h - where a recipient goes, decided at each delivery attempt
 *
 * From the recipient's domain as it is now (SPEC 6), or the address's own
 * override when it is a pilot (SPEC 10): legacy -> the
 * domain's servers by preference (address records, not MX); hosted ->
 * hosting.destination, after alias expansion (route_expand); a bounce or
 * an external forward -> its domain by MX.
 */
#ifndef MX_ROUTE_H
#define MX_ROUTE_H

#include "config.h"

#define ROUTE_MAX_HOPS	16	/* legacy servers of a domain */
#define ROUTE_KEY_MAX	320

enum route_kind {
	ROUTE_LEGACY,		/* the domain's old servers */
	ROUTE_HOSTED,		/* hosting.destination */
	ROUTE_MX,		/* by MX lookup: bounces, external forwards */
};

/* one candidate server, tried in order */
struct route_hop {
	char host[256];		/* name or numeric address, no brackets */
	int port;
	int mx_lookup;		/* 1: resolve host's MX first, then addresses */
	char unix_path[108];	/* lmtp:unix:/PATH */
};

struct route {
	enum route_kind kind;
	int lmtp;
	/* deliveries with the same key may share a connection */
	char key[ROUTE_KEY_MAX];
	int nhops;
	struct route_hop hops[ROUTE_MAX_HOPS];
};

enum route_result {
	ROUTE_OK = 0,
	ROUTE_DEFER,		/* no route now (no legacy server, no hosting): retry later */
	ROUTE_FAIL,		/* never deliverable (domain no longer hosted): bounce */
	ROUTE_EXPAND,		/* hosted alias or auto-CC mailbox: expand it
				 * first (route_expand), then route the children */
};

/* route_init - keep cfg for hosting.destination and delivery.smtp_port */
void route_init(const struct config *cfg);
/* route_kind_name - "legacy", "hosted" or "mx" (logs, metrics labels) */
const char *route_kind_name(enum route_kind);
/* route_for_rcpt - the route of rcpt (as written, local@domain) now.
 * why gets the reason for ROUTE_DEFER / ROUTE_FAIL. Loop thread. */
enum route_result route_for_rcpt(const char *rcpt, struct route *r, char *why, size_t whylen);
/* route_for_leaf - as route_for_rcpt, for an address that is delivered
 * as it is (a child of an expansion: never ROUTE_EXPAND) */
enum route_result route_for_leaf(const char *rcpt, struct route *r, char *why, size_t whylen);
/* route_expand - the expansion of addr now, against the store's index
 * and the domains' current modes (expand.h; free res with
 * expand_result_free). 0, or -1 when it lists too many addresses. */
struct expand_result;
int route_expand(const char *addr, struct expand_result *res);
/* route_for_hosting - hosting.destination as a route (hosted mailboxes,
 * the switch's preflight): 0, or -1 with why */
int route_for_hosting(struct route *r, char *why, size_t whylen);
struct legacy_server;
struct domain_info;
/* route_for_legacy - d's legacy servers, whatever its mode (recipient
 * verification asks them); ROUTE_DEFER when it has none */
enum route_result route_for_legacy(const struct domain_info *d,
    struct route *r, char *why, size_t whylen);
/* route_for_server - one legacy server alone (relayctl check asks each) */
void route_for_server(const struct legacy_server *s, struct route *r);
/* route_for_mx - delivery by MX lookup to domain (bounces) */
void route_for_mx(const char *domain, struct route *r);
/* route_is_current - is r still the route its domain would get now (for
 * rcpt delivered as it is)? */
int route_is_current(const struct route *r, const char *rcpt);

#endif
