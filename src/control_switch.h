/* control_switch.h - relayctl switch and relayctl history (SPEC 7, 8) */
#ifndef MX_CONTROL_SWITCH_H
#define MX_CONTROL_SWITCH_H

#include "control_cmds.h"

void cmd_switch(struct ctl_ctx *);
void cmd_history(struct ctl_ctx *);

#endif
