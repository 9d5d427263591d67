/* probe.h - the switch's preflight: does the hosting accept every mailbox?
 *
 * For each batch of PROBE_BATCH addresses, one RCPT-only mta job to
 * hosting.destination: MAIL FROM:<>, one RCPT TO per address and RSET,
 * pipelined when the server offers PIPELINING (RFC 2920), with the
 * delivery's MX and address failover and STARTTLS. No DATA is ever sent,
 * so no message is delivered.
 */
#ifndef MX_PROBE_H
#define MX_PROBE_H

#include <stddef.h>
#include <event2/event.h>

#define PROBE_BATCH		100	/* RCPTs per MAIL transaction */
#define PROBE_ERR_MAX		512

/* an address the hosting did not accept, with its reply */
struct probe_refusal {
	char *addr;
	char *reply;
};

struct probe_result {
	int ok;				/* every address got an answer to RCPT */
	char error[PROBE_ERR_MAX];	/* !ok: why the probe could not finish */
	char server[320];		/* "HOST[IP]:PORT" or the unix path */
	char tls[128];			/* the TLS of the last batch, or "" */
	size_t naccepted;
	struct probe_refusal *refused;	/* in address order */
	size_t nrefused;
};

struct probe;
/* done - on the loop; the result is valid during the call only */
typedef void (*probe_done_fn)(const struct probe_result *, void *arg);

/* probe_start - probe addrs (copied) at hosting.destination. done runs
 * exactly once, never from inside probe_start. */
struct probe *probe_start(struct event_base *, char *const *addrs, size_t n,
    probe_done_fn done, void *arg);
struct route;
/* probe_start_route - as probe_start, at route instead of the hosting
 * (a legacy server, for relayctl check) */
struct probe *probe_start_route(struct event_base *, const struct route *,
    char *const *addrs, size_t n, probe_done_fn done, void *arg);
/* probe_cancel - stop; done will not run */
void probe_cancel(struct probe *);

#endif
