/* switch.h - relayctl switch: a domain's mode, at once or at a set time
 *
 * SPEC 7. A switch is one store write (mode + history row, one SQLite
 * transaction) whose completion updates the in-memory index before the
 * caller hears back; route_for_rcpt reads the mode at every attempt and
 * the mta's may_start hook (route_is_current) re-checks it right before
 * MAIL FROM, so no attempt to the old route starts after the answer.
 * Then the domain's deferred recipients are made due at once. Before
 * "hosted" the hosting must accept an RCPT probe for every mailbox
 * (probe.h); before "legacy" the domain needs a legacy server. Scheduled
 * switches are kept in the store and fired by a timer. With a fleet on one
 * database the answer waits until every other live host has applied the
 * switch (fleet_await). Loop thread only.
 */
#ifndef MX_SWITCH_H
#define MX_SWITCH_H

#include <stdint.h>
#include <sys/types.h>
#include <time.h>
#include <event2/event.h>

#include "config.h"
#include "fleet.h"
#include "probe.h"
#include "route.h"
#include "smtp_parse.h"
#include "store.h"

#define SWITCH_MSG_MAX		1024
#define SWITCH_WAIT_TICK_MS	100	/* --wait polls the in-flight count */
#define SWITCH_TIME_MAX		64	/* formatted time */

/* the old route, as mta keys its destinations */
struct switch_route {
	enum domain_mode mode;
	char domain[SMTP_DOMAIN_MAX + 1];
	int none;			/* no route: nothing can be in flight */
	char key[ROUTE_KEY_MAX];	/* the old route's key */
};

struct switch_outcome {
	int status;			/* 0 done, 1 refused */
	char msg[SWITCH_MSG_MAX];	/* refused: why */
	const char *domain;
	enum domain_mode from, to;
	int changed;			/* 0: it was in that mode already */
	int preflight;			/* the probe ran (and passed, when status 0) */
	const struct probe_result *probe;	/* probe refusals (status 1), or NULL */
	int inflight;			/* deliveries in flight to the old route */
	uint64_t elapsed_us;		/* from the request to this answer */
	const struct switch_route *old;	/* for switch_wait */
	/* a fleet (fleet.h): how each other host answered */
	const struct fleet_answer *hosts;
	size_t nhosts;
	long long version;		/* the switch's change_log id */
};
/* done - on the loop; the outcome is valid during the call only. It may
 * run before switch_run returns (a refusal found at once). */
typedef void (*switch_done_fn)(const struct switch_outcome *, void *arg);

/* switch_init - keep cfg, arm the timer of the scheduled switches (due
 * ones fire at once). After store_open and queue_init. */
int switch_init(struct event_base *, const struct config *, char *err, size_t errlen);
/* switch_set_config - after a reload (hosting.destination, hostname) */
void switch_set_config(const struct config *);
/* switch_close - before queue_close and mta_close: probes are stopped
 * and their callers told, waits end (interrupted) */
void switch_close(void);

/* switch_run - switch domain to mode now: preflight unless force, then
 * the durable switch, the reschedule and the in-flight count */
void switch_run(const char *domain, enum domain_mode mode, uid_t uid,
    int force, switch_done_fn done, void *arg);

/* switch_route_now - the route of domain now, before a change from the
 * fleet is applied; 0 when the domain is not in the index */
int switch_route_now(const char *domain, struct switch_route *o);
/* switch_changed_elsewhere - another host of the fleet changed domain's
 * mode at change version (its deferred mail is due at once, and the
 * deliveries in flight to old are drained for fleet_drain_*) or its
 * scheduled switch (re-arm) */
void switch_changed_elsewhere(const char *domain, long long version,
    int mode, int sched, const struct switch_route *old);

/* switch_inflight - deliveries in flight to the old route now */
int switch_inflight(const struct switch_route *old);

struct switch_wait;
/* fn - left: 0 when none is left; > 0 when the daemon is stopping */
typedef void (*switch_wait_fn)(int left, uint64_t waited_us, void *arg);
/* switch_wait_start - call fn (from the loop, never inside this call) once
 * no delivery to old is in flight; old is copied. While the daemon is
 * stopping fn runs at once (left > 0) and NULL is returned. */
struct switch_wait *switch_wait_start(const struct switch_route *old,
    switch_wait_fn fn, void *arg);

/* switch_schedule - keep a switch for later (replacing the domain's
 * pending one) and re-arm the timer before done runs */
void switch_schedule(const char *domain, const struct store_sched *,
    store_done_fn done, void *arg);
/* switch_cancel - drop the domain's scheduled switch */
void switch_cancel(const char *domain, store_done_fn done, void *arg);

/* switch_parse_time - ISO 8601 "YYYY-MM-DD[T ]HH:MM[:SS][Z|+HH[:MM]]",
 * local time when no offset is given. 0, or -1 with err set. */
int switch_parse_time(const char *s, time_t *out, char *err, size_t errlen);
/* switch_format_time - "YYYY-MM-DDTHH:MM:SS+HH:MM" in local time */
const char *switch_format_time(time_t t, char *buf, size_t len);

#endif
