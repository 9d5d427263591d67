/* stats.h - counters since start, read by relayctl status/stats and the
 * Prometheus endpoint (loop thread)
 *
 * Adding a counter: a field here, the code that counts it, and one row in
 * stats_rows[] (stats.c); relayctl stats and GET /metrics both read that
 * table.
 */
#ifndef MX_STATS_H
#define MX_STATS_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#define STATS_HIST_BUCKETS_MAX	16	/* finite upper bounds of a histogram */

/* a histogram: counts per bucket (not cumulative), the last is +Inf */
struct mx_hist {
	const double *bounds;		/* ascending, nbounds of them */
	int nbounds;
	uint64_t counts[STATS_HIST_BUCKETS_MAX + 1];
	uint64_t count;
	double sum;
};

struct mx_stats {
	time_t started;
	int64_t connections_current;
	uint64_t connections_total;
	uint64_t connections_refused;	/* 421 at the greeting, any reason */
	uint64_t refused_spool_busy;	/* 421 4.3.2 at connect (admission.c) */
	uint64_t refused_queue_full;	/* 452 4.3.1 at MAIL */
	uint64_t refused_disk_space;	/* 452 4.3.1 at MAIL */
	uint64_t messages_accepted;
	uint64_t messages_refused;	/* at end of data: bare LF, size, hops */
	uint64_t messages_refused_bare_lf;	/* 550 5.6.11 */
	uint64_t messages_refused_size;		/* 552 5.3.4 */
	uint64_t messages_refused_hops;		/* 554 5.4.6 */
	uint64_t rcpt_accepted;
	uint64_t rcpt_relay_denied;
	uint64_t rcpt_unknown;
	uint64_t tls_sessions;
	int64_t queue_messages;		/* messages in the spool now */
	int64_t queue_recipients;	/* pending recipients in the spool now */

	/* delivery (queue.c): recipient attempts by outcome, DSNs enqueued */
	uint64_t deliveries_sent;
	uint64_t deliveries_deferred;
	uint64_t deliveries_bounced;
	uint64_t bounces_sent;
	/* deliveries (2xx) by route: index enum route_kind */
	uint64_t deliveries_by_route[3];
	/* attempts answered 4xx (or failed to connect) / 5xx, by route */
	uint64_t attempts_deferred_by_route[3];
	uint64_t attempts_bounced_by_route[3];
	uint64_t switches;		/* mode changes committed */

	/* fleet (fleet.c, state.backend postgresql); the first two are
	 * counted on the fleet thread */
	uint64_t fleet_notifications;	/* NOTIFY wake-ups */
	uint64_t fleet_catchups;	/* reconnections that caught up */
	uint64_t fleet_lease_lapses;	/* deliveries held: lease or log */

	/* filters (filter.c, spf.c, dnsbl.c): evaluations and verdicts */
	uint64_t filter_pregreet;	/* clients that talked before the banner */
	uint64_t filter_rate_limited;	/* connections over filters.rate_limit */
	uint64_t filter_helo_refused;	/* recipients refused: invalid HELO */
	uint64_t filter_nofilter;	/* nofilter recipients (filters skipped) */
	uint64_t filter_xclient_refused;/* XCLIENT from outside xclient_hosts */
	uint64_t spf_results[7];	/* evaluations by result, enum spf_result */
	uint64_t spf_refused;		/* recipients refused: SPF fail (550) */
	uint64_t spf_deferred;		/* recipients deferred: SPF temperror (451) */
	uint64_t dnsbl_listed;		/* clients found in a blocking zone */
	uint64_t dnsbl_allowed;		/* clients found in an allow zone */
	uint64_t dnsbl_clean;		/* clients in no zone */
	uint64_t dnsbl_tempfail;	/* clients some zone did not answer for */
	uint64_t dnsbl_refused;		/* recipients refused: listed (554) */

	/* recipient verification at the old server (verify.c) */
	uint64_t verify_probes;		/* RCPT probes started */
	uint64_t verify_accepted;	/* RCPTs answered 250 by a probe */
	uint64_t verify_rejected;	/* ... 550 by a probe */
	uint64_t verify_tempfail;	/* ... 450: timeout, 4xx, rate, trouble */
	uint64_t verify_cache_positive;	/* answered 250 from the cache */
	uint64_t verify_cache_negative;	/* answered 550 from the cache */
	uint64_t verify_rate_limited;	/* 450: the domain's probe rate */
	uint64_t copies_sent;		/* dual-delivery copies delivered */
	uint64_t copies_deferred;	/* ... failed attempts, retried */
	uint64_t copies_expired;	/* ... dropped: copy_lifetime, or dual
					 * delivery turned off */
	uint64_t verify_catchall;	/* the table's answer: the old server
					 * accepts any address */

	/* seconds from arrival to a 2xx of the downstream, per recipient */
	struct mx_hist delivery_latency;
	/* seconds from MAIL accepted to "250 queued" */
	struct mx_hist smtp_transaction;
};

extern struct mx_stats mx_stats;

enum stats_kind { STATS_COUNTER, STATS_GAUGE };

/* one counter or gauge of struct mx_stats, as relayctl stats and
 * GET /metrics show it */
struct stats_row {
	const char *key;	/* relayctl stats name (and JSON key) */
	size_t off;		/* its int64_t/uint64_t field in struct mx_stats */
	enum stats_kind kind;
	const char *metric;	/* Prometheus family; NULL: relayctl only */
	const char *labels;	/* `name="value",...`, "" for none */
	const char *help;	/* the family's HELP (first row of a family) */
};

extern const struct stats_row stats_rows[];
extern const size_t stats_nrows;

/* stats_value - the current value of a row */
int64_t stats_value(const struct stats_row *);
/* stats_observe - count v (seconds) in histogram h */
void stats_observe(struct mx_hist *h, double v);

#endif
