/* fleet.h - the hosts that share one PostgreSQL state (state.backend
 * "postgresql"): change notifications, leases, switch acknowledgements
 *
 * Each host follows the others' changes through LISTEN/NOTIFY and the
 * change_log table, applied incrementally to its in-memory index; it
 * registers in the hosts table and renews a lease there. Deliveries start
 * only while this host's lease is valid and it has applied the log up to
 * the head it saw when it last renewed. A switch waits until every other
 * host with a live lease has applied it, or its lease has expired.
 *
 * All database work runs on the fleet thread with its own connection
 * (libpq, synchronous calls, poll() on PQsocket for notifications); the
 * loop thread only exchanges messages with it. With SQLite there is no
 * fleet: fleet_may_deliver is always true, fleet_await answers at once.
 */
#ifndef MX_FLEET_H
#define MX_FLEET_H

#include <stddef.h>
#include <stdint.h>
#include <event2/buffer.h>
#include <event2/event.h>

#include "config.h"

#define FLEET_CHANNEL		"mxrelay_changes"	/* NOTIFY channel */
#define FLEET_NAME_MAX		256
#define FLEET_HOSTS_MAX		64	/* hosts one switch reports */

/* a host's answer to a switch */
struct fleet_answer {
	char name[FLEET_NAME_MAX];
	int applied;			/* 1 applied, 0 its lease expired */
	double ms;			/* from the commit to the answer */
};

/* done - on the loop; answers valid during the call only */
typedef void (*fleet_await_fn)(const struct fleet_answer *a, size_t n,
    void *arg);

/* fleet_init - register this host, take the first lease, start following
 * the change log from the head the store loaded. After store_open and
 * queue_init. No-op for SQLite. */
int fleet_init(struct event_base *, const struct config *, char *err,
    size_t errlen);
/* fleet_close - stop the thread and release the lease (after the queue
 * stopped delivering) */
void fleet_close(void);
int fleet_enabled(void);

/* fleet_may_deliver - may a delivery attempt start now (loop thread) */
int fleet_may_deliver(void);

/* fleet_await - call fn once every other host with a live lease has
 * applied the change log up to version (drained: and its deliveries to
 * the routes that change replaced have ended), or its lease expired; at
 * once (n = 0) when there is no fleet or version is 0 */
void fleet_await(long long version, int drained, fleet_await_fn fn,
    void *arg);

/* fleet_drain_begin, fleet_drain_end - deliveries to the route that the
 * change version (another host's switch) replaced are in flight here, or
 * are over; until then this host reports itself drained only below it */
void fleet_drain_begin(long long version);
void fleet_drain_end(long long version);

/* fleet_status - the hosts for relayctl status (text, or JSON members
 * "fleet": [...] written by the caller's jsonw) */
struct jsonw;
void fleet_status_text(struct evbuffer *out);
void fleet_status_json(struct jsonw *w);

#endif
