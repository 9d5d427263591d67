/* control.h - the control socket server that relayctl talks to */
#ifndef MX_CONTROL_H
#define MX_CONTROL_H

#include <event2/event.h>
#include "config.h"

/* control_init - listen on cfg->control_socket (mode 0660, owner root or the
 * daemon's user, group of the daemon). Returns 0, or -1 with err set. */
int control_init(struct event_base *base, const struct config *cfg, char *err, size_t errlen);
void control_close(void);

/* the verdict of a reload: ok, or the reason (the old config is kept) */
typedef void (*control_reload_done)(int ok, const char *err, void *arg);
/* the daemon's reload: asynchronous, done runs on the loop */
typedef void (*control_reload_fn)(control_reload_done done, void *arg);
/* control_set_reload - what `relayctl reload` calls */
void control_set_reload(control_reload_fn);

#endif
