/* control.h - the control socket server that relayctl talks to */
#ifndef MX_CONTROL_H
#define MX_CONTROL_H

#include <event2/event.h>
#include "config.h"

/* control_init - listen on cfg->control_socket (mode 0660, owner root or the
 * daemon's user, group of the daemon). Returns 0, or -1 with err set. */
int control_init(struct event_base *base, const struct config *cfg, char *err, size_t errlen);
void control_close(void);

#endif
