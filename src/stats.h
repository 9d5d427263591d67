/* stats.h - counters since start, read by relayctl status/stats (loop thread) */
#ifndef MX_STATS_H
#define MX_STATS_H

#include <stdint.h>
#include <time.h>

struct mx_stats {
	time_t started;
	int64_t connections_current;
	uint64_t connections_total;
	uint64_t connections_refused;	/* over max_connections(_per_client) */
	uint64_t messages_accepted;
	uint64_t messages_refused;	/* at end of data: bare LF, size, hops */
	uint64_t rcpt_accepted;
	uint64_t rcpt_relay_denied;
	uint64_t rcpt_unknown;
	uint64_t tls_sessions;
	int64_t queue_messages;		/* messages in the spool now */
	int64_t queue_recipients;	/* pending recipients in the spool now */
};

extern struct mx_stats mx_stats;

#endif
