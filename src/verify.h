/* verify.h - recipient verification at the old server (SPEC 10)
 *
 * For a RCPT to an address not in the table of a domain with
 * --verify-legacy on, the domain's legacy servers are asked with an RCPT
 * probe (probe.h: an RCPT-only mta job on a pooled connection, failover
 * between the servers, no message sent). The SMTP session waits; the loop
 * does not. 2xx: 250 (the address is kept as accepted, in the store, for
 * verify.positive_lifetime); 5xx: 550 5.1.1 (kept in memory for
 * verify.negative_lifetime); anything else - timeout (verify.timeout),
 * 4xx, no server, the domain's probe rate (verify.max_probes_per_minute)
 * - 450 4.1.1: never a 5xx for our own trouble. RCPTs for an address
 * being probed wait for that probe. A server that also accepts a random
 * local part (asked beside the first probe, and again once
 * verify.positive_lifetime has passed) accepts anything: its positive
 * answers prove nothing, and unknown addresses get VERIFY_NO (the table's
 * answer) without a probe. Loop thread only.
 */
#ifndef MX_VERIFY_H
#define MX_VERIFY_H

#include <event2/event.h>

#include "config.h"
#include "store.h"

#define VERIFY_REPLY_MAX	512
#define VERIFY_ADDR_MAX		1024	/* longer addresses are not verified */
#define VERIFY_PROBES_MAX	1000	/* probes under way at once, all domains */
#define VERIFY_ANSWERS_MAX	100000	/* answers cached in memory, all domains */

enum verify_result {
	VERIFY_YES,		/* the old server accepts the address */
	VERIFY_NO,		/* it rejects it (5xx), or no verification */
	VERIFY_TEMP,		/* cannot tell now */
	VERIFY_WAIT,		/* a probe runs: fn will be called */
};

struct verify_wait;
/* fn - the answer of a VERIFY_WAIT; reply is the old server's, or ours */
typedef void (*verify_fn)(enum verify_result, const char *reply, void *arg);

int verify_init(struct event_base *, const struct config *, char *err,
    size_t errlen);
void verify_set_config(const struct config *);
/* verify_close - before mta_close: waiting sessions get VERIFY_TEMP */
void verify_close(void);

/* verify_rcpt - canon (canonical, not in the table) of domain d: the
 * answer from the cache (YES, NO, TEMP), or VERIFY_WAIT with *w set, fn
 * called later (never inside this call) unless verify_cancel(*w). NO at
 * once when d does not verify. */
enum verify_result verify_rcpt(const char *canon, const struct domain_info *d,
    verify_fn fn, void *arg, struct verify_wait **w);
/* verify_cancel - the session went away: fn will not run */
void verify_cancel(struct verify_wait *);
/* verify_catchall_address - a random address of domain that no table
 * holds: what a server accepts only when it accepts anything */
void verify_catchall_address(const char *domain, char *buf, size_t len);

#endif
