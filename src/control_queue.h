/* control_queue.h - relayctl queue list|show|flush|delete|release (SPEC 8, 10) */
#ifndef MX_CONTROL_QUEUE_H
#define MX_CONTROL_QUEUE_H

#include "control_cmds.h"

void cmd_queue_list(struct ctl_ctx *);
void cmd_queue_show(struct ctl_ctx *);
void cmd_queue_flush(struct ctl_ctx *);
void cmd_queue_delete(struct ctl_ctx *);
void cmd_queue_release(struct ctl_ctx *);

#endif
