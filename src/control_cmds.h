/* control_cmds.h - the control commands, between control.c (socket,
 * framing, peer check) and control_cmds.c (what each command does) */
#ifndef MX_CONTROL_CMDS_H
#define MX_CONTROL_CMDS_H

#include <sys/types.h>
#include <event2/buffer.h>

#include "ctlproto.h"

struct ctl_conn;

/* One command being served. A handler answers with control_reply or
 * control_fail, at once or later from a store completion; exactly once. */
struct ctl_ctx {
	struct ctl_conn *conn;
	uid_t uid;			/* the caller, from SO_PEERCRED */
	int json;			/* --json */
	const struct ctl_command_spec *spec;
	struct ctl_request req;
	struct ctl_args args;
	struct evbuffer *out;		/* the body of the answer */
};

typedef void (*ctl_handler_fn)(struct ctl_ctx *);

#define CTL_CMD_WRITES	0x1	/* changes the state store (logged with the uid) */

struct ctl_handler {
	const char *name;		/* as in ctlproto's table: "domain add" */
	ctl_handler_fn fn;
	unsigned flags;
};

/* control_cmds_find - the handler of a command name, or NULL */
const struct ctl_handler *control_cmds_find(const char *name);

/* control_reply - send status and ctx->out; ctx is gone afterwards */
void control_reply(struct ctl_ctx *, int status);
/* control_fail - replace the body with one message (a JSON object
 * {"error": ...} with --json) and reply with status */
void control_fail(struct ctl_ctx *, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* control_import_text - import text (taken over: freed when done) into
 * domain as relayctl import does, label naming it in the report */
void control_import_text(struct ctl_ctx *, const char *domain,
    const char *label, char *text, size_t len);

#endif
