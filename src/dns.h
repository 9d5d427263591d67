/* dns.h - every DNS lookup of mxrelayd, asynchronous on the event loop
 *
 * All queries go to dns.nameservers (or /etc/resolv.conf's). Address
 * records are resolved by libevent's evdns; other types (MX, TXT, PTR...)
 * by a small UDP client on the same loop (queries built and answers parsed
 * with libresolv's pure functions). Worker threads (libspf2) use
 * dns_query_sync(), which hands the query to the loop and waits.
 */
#ifndef MX_DNS_H
#define MX_DNS_H

#include <stddef.h>
#include <stdint.h>
#include <netinet/in.h>
#include <event2/event.h>

#include "config.h"

#define DNS_TIMEOUT_SECS	5	/* per try */
#define DNS_TRIES		2	/* per nameserver */
#define DNS_MAX_ANSWER		4096	/* UDP answer buffer (EDNS0 size we announce) */
#define DNS_MAX_RR		64	/* records kept from one answer */
#define DNS_NAME_MAX		256

enum dns_status {
	DNS_OK = 0,		/* records found */
	DNS_NXDOMAIN,		/* the name does not exist */
	DNS_NODATA,		/* the name exists, no record of that type */
	DNS_TEMPFAIL,		/* timeout, SERVFAIL, network trouble */
	DNS_PERMFAIL,		/* malformed name, REFUSED, FORMERR */
};

struct dns_mx {
	int pref;
	char host[DNS_NAME_MAX];
};

struct dns_addr {
	int family;		/* AF_INET or AF_INET6 */
	union {
		struct in_addr v4;
		struct in6_addr v6;
	} a;
};

/* a raw resource record of an answer (TXT: the character-strings
 * concatenated; MX: pref + host; PTR/CNAME/NS: host) */
struct dns_rr {
	int type;		/* ns_t_txt, ns_t_mx, ... */
	uint32_t ttl;
	int pref;		/* MX */
	char host[DNS_NAME_MAX];/* MX, PTR, CNAME, NS targets */
	struct dns_addr addr;	/* A, AAAA */
	char *txt;		/* TXT, NUL-terminated (malloc'd) */
	size_t txtlen;
};

struct dns_answer {
	enum dns_status status;
	int nrr;
	struct dns_rr rr[DNS_MAX_RR];
};

/* dns_init - configure from cfg->nameservers (empty: /etc/resolv.conf).
 * Returns 0, or -1 with err. */
int dns_init(struct event_base *, const struct config *, char *err, size_t errlen);
void dns_close(void);

struct dns_req;

typedef void (*dns_addr_cb)(enum dns_status, const struct dns_addr *, int n, void *arg);
typedef void (*dns_mx_cb)(enum dns_status, const struct dns_mx *, int n, void *arg);
typedef void (*dns_query_cb)(const struct dns_answer *, void *arg);

/* dns_resolve_addr - A and AAAA of host (both asked; n may be 0 with
 * DNS_OK never: empty is DNS_NODATA / DNS_NXDOMAIN). Numeric hosts are
 * answered at once (from the next loop turn). */
struct dns_req *dns_resolve_addr(const char *host, dns_addr_cb cb, void *arg);
/* dns_resolve_mx - MX records sorted by preference (equal preferences
 * shuffled, RFC 5321 5.1) */
struct dns_req *dns_resolve_mx(const char *domain, dns_mx_cb cb, void *arg);
/* dns_query - any type (ns_t_txt, ns_t_ptr, ...) */
struct dns_req *dns_query(const char *name, int type, dns_query_cb cb, void *arg);
/* dns_query_at - as dns_query, asking server:port only (a domain's
 * authoritative name server, whose answer is no cache's) */
struct dns_req *dns_query_at(const struct dns_addr *server, int port,
    const char *name, int type, dns_query_cb cb, void *arg);
/* dns_cancel - the callback will not run */
void dns_cancel(struct dns_req *);

/* dns_query_sync - for worker threads only: run dns_query on the loop and
 * wait for it. The answer is the caller's; free it with dns_answer_free. */
struct dns_answer *dns_query_sync(const char *name, int type);
void dns_answer_free(struct dns_answer *);

/* dns_status_name - "ok", "nxdomain", ... for logs */
const char *dns_status_name(enum dns_status);

#endif
