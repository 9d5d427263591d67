/* dnsbl.h - DNS blocklist and allow-list lookups of the client address
 *
 * The client's address is looked up in every filters.dnsbl.zones and
 * filters.dnsbl.allow_zones zone at once, on the loop (dns_query), as soon
 * as the client connects (or is handed over by XCLIENT). The verdict is
 * applied later, per recipient, by the session.
 */
#ifndef MX_DNSBL_H
#define MX_DNSBL_H

#include <stddef.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include "config.h"

#define DNSBL_NAME_MAX	256

struct dnsbl_verdict {
	int listed;			/* in a blocking zone */
	char zone[DNSBL_NAME_MAX];	/* the first such zone (config order) */
	char code[INET_ADDRSTRLEN];	/* its answer, 127.0.0.x */
	int allowed;			/* in an allow zone: skip the filters */
	char allow_zone[DNSBL_NAME_MAX];
	int tempfail;			/* some zone did not answer */
	int nqueries;			/* zones asked (0: nothing configured) */
};

struct dnsbl_check;
typedef void (*dnsbl_done_fn)(const struct dnsbl_verdict *, void *arg);

/* dnsbl_check_start - look sa up in every configured zone; done runs on
 * the loop when all answered, after which the check is gone. Returns
 * NULL, with the verdict in *now, when no query is needed or possible. */
struct dnsbl_check *dnsbl_check_start(const struct config *,
    const struct sockaddr *sa, dnsbl_done_fn done, void *arg,
    struct dnsbl_verdict *now);
/* dnsbl_check_cancel - done will not run; the check is freed */
void dnsbl_check_cancel(struct dnsbl_check *);

/* dnsbl_query_name - "4.3.2.1.ZONE" for 1.2.3.4; IPv6 in nibble form
 * (RFC 5782 2.4). IPv4-mapped IPv6 is the IPv4 address. 0, or -1 when it
 * does not fit or the family is unknown. */
int dnsbl_query_name(const struct sockaddr *sa, const char *zone, char *buf,
    size_t len);
/* dnsbl_code_listed - does answer a count as a listing under m? */
int dnsbl_code_listed(const struct dnsbl_match *m, struct in_addr a);

#endif
