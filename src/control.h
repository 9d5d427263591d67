/* control.h - the control socket server that relayctl talks to */
#ifndef MX_CONTROL_H
#define MX_CONTROL_H

#include <event2/event.h>
#include "config.h"

/* control_init - listen on cfg->control_socket (mode 0660, owner root or the
 * daemon's user, group of the daemon). Returns 0, or -1 with err set. */
int control_init(struct event_base *base, const struct config *cfg, char *err, size_t errlen);
void control_close(void);

/* the daemon's reload: 0, or -1 with the reason in err (old config kept) */
typedef int (*control_reload_fn)(char *err, size_t errlen);
/* control_set_reload - what `relayctl reload` calls */
void control_set_reload(control_reload_fn);

#endif
