/* control_check.h - relayctl check DOMAIN (SPEC 10) */
#ifndef MX_CONTROL_CHECK_H
#define MX_CONTROL_CHECK_H

#include <event2/event.h>

#include "config.h"
#include "control_cmds.h"

/* control_check_init - the loop the probes run on, the configuration */
void control_check_init(struct event_base *, const struct config *);
/* control_check_set_config - after a reload */
void control_check_set_config(const struct config *);
void cmd_check(struct ctl_ctx *);

#endif
