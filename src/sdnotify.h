/* sdnotify.h - the systemd notification protocol (sd_notify(3)) without libsystemd */
#ifndef MX_SDNOTIFY_H
#define MX_SDNOTIFY_H

#include <event2/event.h>

/* sdnotify - send STATE (e.g. "READY=1") to $NOTIFY_SOCKET; no-op when unset */
void sdnotify(const char *state);
/* sdnotify_watchdog_start - ping WATCHDOG=1 at half of $WATCHDOG_USEC from
 * the event loop, so a stuck loop is noticed. Returns the timer or NULL. */
struct event *sdnotify_watchdog_start(struct event_base *);

#endif
