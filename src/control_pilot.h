/* control_pilot.h - relayctl address set ADDRESS --route (SPEC 10) */
#ifndef MX_CONTROL_PILOT_H
#define MX_CONTROL_PILOT_H

#include <stddef.h>
#include <event2/buffer.h>
#include <event2/event.h>

#include "control_cmds.h"

/* control_pilot_init - the loop the preflight probes run on */
void control_pilot_init(struct event_base *);
void cmd_address_set(struct ctl_ctx *);

struct jsonw;
struct domain_info;
/* control_pilot_json - "overrides": [ {address, route} ] of d */
void control_pilot_json(struct jsonw *, const struct domain_info *d);
/* control_pilot_human - "pilot addresses: a -> hosted" lines; the count */
size_t control_pilot_human(struct evbuffer *, const struct domain_info *d);

#endif
