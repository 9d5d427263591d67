/* control_queue.h - relayctl queue list|show|flush|delete (SPEC 8) */
#ifndef MX_CONTROL_QUEUE_H
#define MX_CONTROL_QUEUE_H

#include "control_cmds.h"

void cmd_queue_list(struct ctl_ctx *);
void cmd_queue_show(struct ctl_ctx *);
void cmd_queue_flush(struct ctl_ctx *);
void cmd_queue_delete(struct ctl_ctx *);

#endif
