/* stats.c - the counters, and the one table relayctl stats and GET /metrics
 * read them through (loop thread) */
#include "autoconf.h"

#include <string.h>

#include "route.h"
#include "stats.h"

/* Bucket bounds, seconds. Delivery: from a message that goes straight out
 * to one that waited a day in the queue. Transaction: MAIL to "queued",
 * which includes the client's own pace and the fsync. */
static const double latency_bounds[] = {
	1, 5, 15, 60, 300, 900, 3600, 14400, 86400,
};
static const double transaction_bounds[] = {
	0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60,
};

_Static_assert(sizeof(latency_bounds) / sizeof(latency_bounds[0]) <=
    STATS_HIST_BUCKETS_MAX, "latency buckets");
_Static_assert(sizeof(transaction_bounds) / sizeof(transaction_bounds[0]) <=
    STATS_HIST_BUCKETS_MAX, "transaction buckets");

struct mx_stats mx_stats = {
	.delivery_latency = { latency_bounds,
	    (int)(sizeof(latency_bounds) / sizeof(latency_bounds[0])), { 0 }, 0, 0 },
	.smtp_transaction = { transaction_bounds,
	    (int)(sizeof(transaction_bounds) / sizeof(transaction_bounds[0])), { 0 }, 0, 0 },
};

#define OFF(f)		offsetof(struct mx_stats, f)
#define C(key, f, metric, labels, help) \
	{ key, OFF(f), STATS_COUNTER, metric, labels, help }
#define G(key, f, metric, labels, help) \
	{ key, OFF(f), STATS_GAUGE, metric, labels, help }
/* relayctl only: a sum Prometheus computes itself, or a gauge metrics.c
 * exports with more labels */
#define ONLY(key, f)	{ key, OFF(f), STATS_GAUGE, NULL, "", NULL }

/* Rows print in this order in relayctl stats; GET /metrics groups them by
 * family. Label values are fixed words: no series depends on clients. */
const struct stats_row stats_rows[] = {
	C("connections_total", connections_total, "mxrelay_connections_total", "",
	    "SMTP connections accepted since start"),
	G("connections_current", connections_current, "mxrelay_sessions", "",
	    "SMTP sessions open now"),
	C("connections_refused", connections_refused,
	    "mxrelay_connections_refused_total", "",
	    "SMTP connections refused at the greeting (421: limits, rate limit, "
	    "spool busy)"),
	C("refused_spool_busy", refused_spool_busy,
	    "mxrelay_overload_refusals_total", "reason=\"spool_busy\"",
	    "sessions (421 4.3.2) and transactions (452 4.3.1) refused because "
	    "the spool or the queue is behind, by reason"),
	C("refused_queue_full", refused_queue_full,
	    "mxrelay_overload_refusals_total", "reason=\"queue_full\"", NULL),
	C("refused_disk_space", refused_disk_space,
	    "mxrelay_overload_refusals_total", "reason=\"disk_space\"", NULL),
	C("tls_sessions", tls_sessions, "mxrelay_tls_sessions_total", "",
	    "SMTP sessions that started TLS"),
	C("messages_accepted", messages_accepted, "mxrelay_messages_accepted_total",
	    "", "messages queued (250 queued as)"),
	ONLY("messages_refused", messages_refused),
	C("messages_refused_bare_lf", messages_refused_bare_lf,
	    "mxrelay_messages_refused_total", "reason=\"bare_lf\"",
	    "messages refused at the end of DATA, by reason"),
	C("messages_refused_size", messages_refused_size,
	    "mxrelay_messages_refused_total", "reason=\"size\"", NULL),
	C("messages_refused_hops", messages_refused_hops,
	    "mxrelay_messages_refused_total", "reason=\"hops\"", NULL),
	C("recipients_accepted", rcpt_accepted, "mxrelay_recipients_accepted_total",
	    "", "recipients accepted at RCPT"),
	C("recipients_refused_relay", rcpt_relay_denied,
	    "mxrelay_recipients_refused_total", "reason=\"relay_denied\"",
	    "recipients refused at RCPT, by reason"),
	C("recipients_refused_unknown", rcpt_unknown,
	    "mxrelay_recipients_refused_total", "reason=\"unknown\"", NULL),
	G("queue_messages", queue_messages, "mxrelay_queue_messages", "",
	    "messages in the queue"),
	ONLY("queue_recipients", queue_recipients),
	C("deliveries_sent", deliveries_sent, "mxrelay_deliveries_total",
	    "status=\"sent\"", "recipients delivered, deferred or bounced, "
	    "by outcome (bounced includes expired and undeliverable ones)"),
	C("deliveries_sent_legacy", deliveries_by_route[ROUTE_LEGACY],
	    "mxrelay_delivery_attempts_total", "route=\"legacy\",status=\"sent\"",
	    "recipient delivery attempts by route and reply: sent 2xx, "
	    "deferred 4xx or no connection, bounced 5xx"),
	C("deliveries_sent_hosted", deliveries_by_route[ROUTE_HOSTED],
	    "mxrelay_delivery_attempts_total", "route=\"hosted\",status=\"sent\"", NULL),
	C("deliveries_sent_mx", deliveries_by_route[ROUTE_MX],
	    "mxrelay_delivery_attempts_total", "route=\"mx\",status=\"sent\"", NULL),
	C("attempts_deferred_legacy", attempts_deferred_by_route[ROUTE_LEGACY],
	    "mxrelay_delivery_attempts_total", "route=\"legacy\",status=\"deferred\"", NULL),
	C("attempts_deferred_hosted", attempts_deferred_by_route[ROUTE_HOSTED],
	    "mxrelay_delivery_attempts_total", "route=\"hosted\",status=\"deferred\"", NULL),
	C("attempts_deferred_mx", attempts_deferred_by_route[ROUTE_MX],
	    "mxrelay_delivery_attempts_total", "route=\"mx\",status=\"deferred\"", NULL),
	C("attempts_bounced_legacy", attempts_bounced_by_route[ROUTE_LEGACY],
	    "mxrelay_delivery_attempts_total", "route=\"legacy\",status=\"bounced\"", NULL),
	C("attempts_bounced_hosted", attempts_bounced_by_route[ROUTE_HOSTED],
	    "mxrelay_delivery_attempts_total", "route=\"hosted\",status=\"bounced\"", NULL),
	C("attempts_bounced_mx", attempts_bounced_by_route[ROUTE_MX],
	    "mxrelay_delivery_attempts_total", "route=\"mx\",status=\"bounced\"", NULL),
	C("deliveries_deferred", deliveries_deferred, "mxrelay_deliveries_total",
	    "status=\"deferred\"", NULL),
	C("deliveries_bounced", deliveries_bounced, "mxrelay_deliveries_total",
	    "status=\"bounced\"", NULL),
	C("bounces_sent", bounces_sent, "mxrelay_bounces_total", "",
	    "delivery status notifications queued for senders"),
	C("switches", switches, "mxrelay_switches_total", "",
	    "domain mode changes committed"),
	C("fleet_notifications", fleet_notifications,
	    "mxrelay_fleet_notifications_total", "",
	    "change notifications from the other hosts of the database"),
	C("fleet_catchups", fleet_catchups, "mxrelay_fleet_catchups_total", "",
	    "reconnections to the database that caught up from the change log"),
	C("fleet_lease_lapses", fleet_lease_lapses,
	    "mxrelay_fleet_lease_lapses_total", "",
	    "times deliveries were held: lease lapsed or behind the change log"),
	C("filter_pregreet_refused", filter_pregreet,
	    "mxrelay_filter_verdicts_total", "filter=\"pregreet\",verdict=\"refused\"",
	    "filter evaluations by filter and verdict"),
	C("filter_rate_limited", filter_rate_limited,
	    "mxrelay_filter_verdicts_total", "filter=\"rate_limit\",verdict=\"refused\"", NULL),
	C("filter_helo_refused", filter_helo_refused,
	    "mxrelay_recipients_refused_total", "reason=\"helo\"", NULL),
	C("filter_nofilter_recipients", filter_nofilter,
	    "mxrelay_recipients_nofilter_total", "",
	    "recipients marked nofilter (filters skipped)"),
	C("filter_xclient_refused", filter_xclient_refused,
	    "mxrelay_filter_verdicts_total", "filter=\"xclient\",verdict=\"refused\"", NULL),
	C("spf_none", spf_results[0], "mxrelay_filter_verdicts_total",
	    "filter=\"spf\",verdict=\"none\"", NULL),
	C("spf_neutral", spf_results[1], "mxrelay_filter_verdicts_total",
	    "filter=\"spf\",verdict=\"neutral\"", NULL),
	C("spf_pass", spf_results[2], "mxrelay_filter_verdicts_total",
	    "filter=\"spf\",verdict=\"pass\"", NULL),
	C("spf_fail", spf_results[3], "mxrelay_filter_verdicts_total",
	    "filter=\"spf\",verdict=\"fail\"", NULL),
	C("spf_softfail", spf_results[4], "mxrelay_filter_verdicts_total",
	    "filter=\"spf\",verdict=\"softfail\"", NULL),
	C("spf_temperror", spf_results[5], "mxrelay_filter_verdicts_total",
	    "filter=\"spf\",verdict=\"temperror\"", NULL),
	C("spf_permerror", spf_results[6], "mxrelay_filter_verdicts_total",
	    "filter=\"spf\",verdict=\"permerror\"", NULL),
	C("spf_refused", spf_refused, "mxrelay_recipients_refused_total",
	    "reason=\"spf\"", NULL),
	C("spf_deferred", spf_deferred, "mxrelay_recipients_deferred_total",
	    "reason=\"spf_temperror\"", "recipients answered 4xx at RCPT, by reason"),
	C("dnsbl_listed", dnsbl_listed, "mxrelay_filter_verdicts_total",
	    "filter=\"dnsbl\",verdict=\"listed\"", NULL),
	C("dnsbl_allowed", dnsbl_allowed, "mxrelay_filter_verdicts_total",
	    "filter=\"dnsbl\",verdict=\"allowed\"", NULL),
	C("dnsbl_clean", dnsbl_clean, "mxrelay_filter_verdicts_total",
	    "filter=\"dnsbl\",verdict=\"clean\"", NULL),
	C("dnsbl_tempfail", dnsbl_tempfail, "mxrelay_filter_verdicts_total",
	    "filter=\"dnsbl\",verdict=\"tempfail\"", NULL),
	C("dnsbl_refused", dnsbl_refused, "mxrelay_recipients_refused_total",
	    "reason=\"dnsbl\"", NULL),
	C("verify_probes", verify_probes, "mxrelay_verify_probes_total", "",
	    "RCPT probes of the old servers for recipients not in the table"),
	C("verify_accepted", verify_accepted, "mxrelay_verify_answers_total",
	    "answer=\"accepted\",source=\"probe\"",
	    "recipient verification answers by answer and source"),
	C("verify_rejected", verify_rejected, "mxrelay_verify_answers_total",
	    "answer=\"rejected\",source=\"probe\"", NULL),
	C("verify_tempfail", verify_tempfail, "mxrelay_verify_answers_total",
	    "answer=\"tempfail\",source=\"probe\"", NULL),
	C("verify_cache_positive", verify_cache_positive,
	    "mxrelay_verify_answers_total", "answer=\"accepted\",source=\"cache\"",
	    NULL),
	C("verify_cache_negative", verify_cache_negative,
	    "mxrelay_verify_answers_total", "answer=\"rejected\",source=\"cache\"",
	    NULL),
	C("verify_rate_limited", verify_rate_limited,
	    "mxrelay_verify_rate_limited_total", "",
	    "recipients answered 450 because the domain's probe budget was spent"),
	C("verify_catchall", verify_catchall, "mxrelay_verify_answers_total",
	    "answer=\"table\",source=\"catchall\"", NULL),
	C("copies_sent", copies_sent, "mxrelay_copies_total", "status=\"sent\"",
	    "dual-delivery copies by outcome (expired: dropped, never bounced)"),
	C("copies_deferred", copies_deferred, "mxrelay_copies_total",
	    "status=\"deferred\"", NULL),
	C("copies_expired", copies_expired, "mxrelay_copies_total",
	    "status=\"expired\"", NULL),
};
const size_t stats_nrows = sizeof(stats_rows) / sizeof(stats_rows[0]);

/* stats_value - every row's field is an 8-byte integer; signed and unsigned
 * read alike (counters never reach 2^63) */
int64_t
stats_value(const struct stats_row *r)
{
	int64_t v;

	memcpy(&v, (const char *)&mx_stats + r->off, sizeof(v));
	return v;
}

void
stats_observe(struct mx_hist *h, double v)
{
	int i = 0;

	if (v < 0)	/* the wall clock stepped back */
		v = 0;
	while (i < h->nbounds && v > h->bounds[i])
		i++;
	h->counts[i]++;
	h->count++;
	h->sum += v;
}
