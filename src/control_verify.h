/* control_verify.h - relayctl address list DOMAIN --verified and
 * relayctl address learn DOMAIN (SPEC 10, verify.h) */
#ifndef MX_CONTROL_VERIFY_H
#define MX_CONTROL_VERIFY_H

#include "control_cmds.h"

void cmd_address_list_verified(struct ctl_ctx *);
void cmd_address_learn(struct ctl_ctx *);

#endif
